#ifndef GW_UDP_H
#define GW_UDP_H
/*
 * The UDP device adapter (config type "udp", DESIGN §4 tokens, §7.5): one libuv UDP socket on
 * its own loop thread; one datagram = one message in the listener's serializer. Devices log
 * in with `auth` (the reply carries a token) and put that token on every later message.
 *
 * Everything else goes through the returned ops (gw_adapter.h). Any thread; static storage.
 */
#include "gw_adapter.h"

const struct gw_adapter_ops *gw_udp_adapter_type(void);

#endif
