#ifndef GW_MODBUS_H
#define GW_MODBUS_H
/*
 * The Modbus adapter types (DESIGN §7.5, REFERENCE §4.9/§4.10; README.md in this directory):
 *  - "modbus_tcp_client": the gateway is Modbus TCP master of configured devices (libmodbus,
 *    one thread per host:port connection; several unit ids may share one connection);
 *  - "modbus_tcp_server": devices dial in (Modbus TCP or RTU framing, detected), log in with
 *    the custom function code and are polled over their own socket (libuv loop thread).
 * Both poll register points into thing.property.post, write thing.property.set, and upgrade
 * devices that speak the register profile of DESIGN §5.6 (gateway-driven OTA).
 *
 * Everything else goes through the returned ops (gw_adapter.h). Any thread; static storage.
 */
#include "gw_adapter.h"

const struct gw_adapter_ops *gw_modbus_client_adapter_type(void);
const struct gw_adapter_ops *gw_modbus_server_adapter_type(void);

#endif
