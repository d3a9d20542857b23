#ifndef GW_RUN_H
#define GW_RUN_H
/*
 * Runs the gateway with a loaded, validated configuration until SIGINT or SIGTERM, then
 * shuts down in order (admin API, adapters, core drain and commit, store close).
 * Main thread only; call before any other thread exists (it sets the signal mask that every
 * thread inherits). Returns the process exit code: 0 after a clean shutdown, 1 when
 * something could not start. A second signal during shutdown exits at once with 130.
 */
#include "gw_config.h"

int gw_run(const struct gw_config *cfg);

#endif
