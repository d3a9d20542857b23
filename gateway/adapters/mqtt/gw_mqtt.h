#ifndef GW_MQTT_H
#define GW_MQTT_H
/*
 * The MQTT adapter type (config type "mqtt"): devices connect to a mosquitto broker that
 * loads the gateway's auth plugin (iotgw_auth.so); the gateway is a paho MQTTAsync client of
 * it. With `broker: "spawn"` the adapter runs that broker itself on `listen`.
 *
 * Everything else goes through the returned ops (gw_adapter.h). Any thread; static storage.
 */
#include "gw_adapter.h"

const struct gw_adapter_ops *gw_mqtt_adapter_type(void);

#endif
