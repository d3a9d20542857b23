#ifndef GW_TCP_H
#define GW_TCP_H
/*
 * The TCP device adapter (config type "tcp", DESIGN §4 framing, §7.5): a libuv listener on
 * its own loop thread; per listener one serializer (json | binary) and one framing
 * (delimiter | length_field | fixed_length). Devices log in with `auth` first.
 *
 * Everything else goes through the returned ops (gw_adapter.h). Any thread; static storage.
 */
#include "gw_adapter.h"

const struct gw_adapter_ops *gw_tcp_adapter_type(void);

#endif
