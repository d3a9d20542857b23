/*
 * DESIGN: the compile-time registry of adapter types (STYLE "Adapters"): the only list of
 * them, and the only place where a type may be left out by a build switch. Each entry is the
 * type's accessor; gw_adapter_find matches the config's "type" against ops->name.
 * Const data: any thread.
 */
#include <stddef.h>
#include <string.h>

#include "adapters/coap/gw_coap.h"
#include "adapters/http/gw_http.h"
#include "adapters/modbus/gw_modbus.h"
#include "adapters/mqtt/gw_mqtt.h"
#include "adapters/tcp/gw_tcp.h"
#include "adapters/udp/gw_udp.h"
#include "adapters/websocket/gw_websocket.h"
#include "gw_adapter.h"

typedef const struct gw_adapter_ops *(*gw_adapter_type_fn)(void);

static const gw_adapter_type_fn gw_adapter_types[] = {
    gw_mqtt_adapter_type,
    gw_coap_adapter_type,
    gw_http_adapter_type,
    gw_tcp_adapter_type,
    gw_udp_adapter_type,
    gw_websocket_adapter_type,
    gw_modbus_client_adapter_type,
    gw_modbus_server_adapter_type,
};

const struct gw_adapter_ops *gw_adapter_find(const char *type)
{
    if (!type)
        return NULL;
    for (size_t i = 0; i < sizeof(gw_adapter_types) / sizeof(gw_adapter_types[0]); i++) {
        const struct gw_adapter_ops *ops = gw_adapter_types[i]();
        if (ops && strcmp(ops->name, type) == 0)
            return ops;
    }
    return NULL;
}
