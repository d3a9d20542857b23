#ifndef GW_COAP_H
#define GW_COAP_H
/*
 * The CoAP adapter type (config type "coap", DESIGN §7.5, REFERENCE §4.5): a libcoap 4.3.1
 * server on its own thread. Devices log in with POST /auth, send messages with
 * POST /topic/sys/{pk}/{dn}/{method path} (token in option 2088), receive downstream messages
 * as confirmable Observe notifications of GET /topic/sys/{pk}/{dn}/thing/ota/upgrade or
 * .../downstream, and fetch firmware over Block2 at /ota/firmware/{firmwareId}/{recordId}.
 *
 * Everything else goes through the returned ops (gw_adapter.h). Any thread; static storage.
 */
#include "gw_adapter.h"

const struct gw_adapter_ops *gw_coap_adapter_type(void);

#endif
