/*
 * DESIGN: process lifecycle of iotgw (DESIGN §7.2). Blocks SIGINT/SIGTERM in every thread
 * (the mask is inherited by the core, adapter and admin threads created after it), starts
 * the core and the admin API, waits for a signal with sigwait, then stops in order:
 *   1. admin API (no new operator commands),
 *   2. adapters (no new device messages; brokers and sockets closed, threads joined),
 *   3. the core thread drains its queue, commits the last batch, exits,
 *   4. the store is closed.
 * A watchdog thread waits for a second signal during that and exits at once (130).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/gw_admin.h"
#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_run.h"

#define GW_RUN_TAG "iotgw"

static void *gw__second_signal(void *arg)
{
    sigset_t *set = arg;
    int sig = 0;

    if (sigwait(set, &sig) == 0) {
        gw_log(GW_LOG_WARN, GW_RUN_TAG, "second signal (%d): exiting without a clean shutdown",
               sig);
        _exit(130);
    }
    return NULL;
}

int gw_run(const struct gw_config *cfg)
{
    static sigset_t set;
    struct gw_core *core = NULL;
    struct gw_admin *admin = NULL;
    pthread_t watchdog;
    int sig = 0, rc, code = 1;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* A device or peer closing a socket must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    /* Store, firmware and secrets are private to the gateway (and the broker's group). */
    umask(007);
    gw_log_set_level(cfg->log_level);

    rc = gw_core_create(cfg, &core);
    if (rc)
        goto out;
    rc = gw_admin_create(core, cfg, &admin);
    if (rc) {
        gw_log(GW_LOG_ERROR, GW_RUN_TAG, "admin API: %s", gw_strerror(rc));
        goto out;
    }
    rc = gw_core_start(core);
    if (rc)
        goto out;
    rc = gw_admin_start(admin);
    if (rc) {
        gw_log(GW_LOG_ERROR, GW_RUN_TAG, "admin API: %s", gw_strerror(rc));
        goto out;
    }
    gw_log(GW_LOG_INFO, GW_RUN_TAG, "ready (data in %s); SIGINT or SIGTERM stops", cfg->data_dir);
    while (sigwait(&set, &sig) != 0)
        ;
    gw_log(GW_LOG_INFO, GW_RUN_TAG, "signal %d: shutting down", sig);
    code = 0;
out:
    if (pthread_create(&watchdog, NULL, gw__second_signal, &set) == 0)
        pthread_detach(watchdog);
    if (admin)
        gw_admin_stop(admin);
    gw_core_stop(core);
    gw_admin_destroy(admin);
    gw_core_destroy(core);
    if (code == 0)
        gw_log(GW_LOG_INFO, GW_RUN_TAG, "stopped cleanly");
    return code;
}
