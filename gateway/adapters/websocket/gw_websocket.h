#ifndef GW_WEBSOCKET_H
#define GW_WEBSOCKET_H
/*
 * The WebSocket device adapter type (config type "websocket", DESIGN §7.5): devices connect
 * to `listen` on `path` (default 127.0.0.1:8094, /ws), log in with an `auth` message, then
 * exchange messages in the listener's serializer (JSON in text frames, binary in binary
 * frames). Every downstream method is delivered.
 *
 * Everything else goes through the returned ops (gw_adapter.h). Any thread; static storage.
 */
#include "gw_adapter.h"

const struct gw_adapter_ops *gw_websocket_adapter_type(void);

#endif
