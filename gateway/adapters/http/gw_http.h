#ifndef GW_HTTP_H
#define GW_HTTP_H
/*
 * The HTTP device adapter type (config type "http", DESIGN §7.5, REFERENCE §4.4): devices
 * log in with POST /auth (→ token), post messages to POST /topic/sys/{pk}/{dn}/{method path}
 * with the token in Authorization, and (beyond) long-poll their downstream messages with
 * GET /topic/sys/{pk}/{dn}/downstream?wait=S.
 *
 * Everything else goes through the returned ops (gw_adapter.h). Any thread; static storage.
 */
#include "gw_adapter.h"

const struct gw_adapter_ops *gw_http_adapter_type(void);

#endif
