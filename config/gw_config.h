#ifndef GW_CONFIG_H
#define GW_CONFIG_H
/*
 * The gateway configuration (DESIGN §7.3): a JSON file with comments, loaded and validated
 * in one go before anything starts. Every option is declared once in a table (config_*.c):
 * name, type, range, default, help. The same table parses, validates, fills defaults,
 * prints the effective configuration (gw_config_print) and the documentation
 * (gw_config_print_help), so they cannot drift.
 *
 * A loaded struct gw_config is a plain value tree: read it from any thread, never modify it
 * after start-up (gw_config_set_data_dir is for main() before anything starts). All strings
 * and arrays inside are owned by the config and freed by gw_config_free.
 *
 * Errors: every load function returns 0, GW_E_CONFIG or -ENOMEM and writes one line to err
 * naming the exact key path and the reason, e.g.
 *   config: adapters[2].framing.length_field_size: must be 1, 2 or 4 (got 3)
 *   config: admin.listen: expected "host:port" (got "localhost")
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "gw_framer.h"
#include "gw_log.h"

/* Stored in nullable integer and enum options that were left out (or given as null). */
#define GW_CONFIG_UNSET (-1)
#define GW_CONFIG_HOST_MAX 256
/* Registers used by the Modbus OTA profile from otaBase (DESIGN §5.6: +154, 16 registers). */
#define GW_CONFIG_MODBUS_OTA_REGS 170

/* A listen or connect address "host:port"; IPv6 as "[::1]:port" (host stored unbracketed).
 * host "" = not set (only for optional addresses such as coap.dtls_listen). port 0 asks the
 * kernel for any free port (tests). */
struct gw_config_addr {
    char host[GW_CONFIG_HOST_MAX];
    int port;
};

enum gw_config_adapter_type {
    GW_CONFIG_ADAPTER_MQTT = 0,
    GW_CONFIG_ADAPTER_COAP,
    GW_CONFIG_ADAPTER_HTTP,
    GW_CONFIG_ADAPTER_WEBSOCKET,
    GW_CONFIG_ADAPTER_TCP,
    GW_CONFIG_ADAPTER_UDP,
    GW_CONFIG_ADAPTER_MODBUS_TCP_CLIENT,
    GW_CONFIG_ADAPTER_MODBUS_TCP_SERVER,
    GW_CONFIG_ADAPTER__COUNT
};

enum gw_config_serializer {
    GW_CONFIG_SERIALIZER_JSON = 0,
    GW_CONFIG_SERIALIZER_BINARY,
};

/* Modbus raw data types (REFERENCE §4.10); register width: 1 for 16-bit types and BOOLEAN,
 * 2 for 32-bit types and FLOAT, 4 for DOUBLE. */
enum gw_config_modbus_type {
    GW_CONFIG_MODBUS_INT16 = 0,
    GW_CONFIG_MODBUS_UINT16,
    GW_CONFIG_MODBUS_INT32,
    GW_CONFIG_MODBUS_UINT32,
    GW_CONFIG_MODBUS_FLOAT,
    GW_CONFIG_MODBUS_DOUBLE,
    GW_CONFIG_MODBUS_BOOLEAN,
};

/* AB/BA for 16-bit types; ABCD (big-endian), CDAB (word swap), DCBA (reverse), BADC (byte
 * swap per word) for 32/64-bit types. */
enum gw_config_byte_order {
    GW_CONFIG_ORDER_AB = 0,
    GW_CONFIG_ORDER_BA,
    GW_CONFIG_ORDER_ABCD,
    GW_CONFIG_ORDER_CDAB,
    GW_CONFIG_ORDER_DCBA,
    GW_CONFIG_ORDER_BADC,
};

struct gw_config_modbus_point {
    char *identifier;      /* property identifier, unique within the device */
    int function_code;     /* 1 coils, 2 discrete inputs, 3 holding, 4 input registers */
    int address;           /* 0..65535; address + count <= 65536 */
    int count;             /* registers (FC 3/4: the type's width) or bits (FC 1/2: 1) */
    enum gw_config_modbus_type raw_type;
    enum gw_config_byte_order byte_order;
    double scale;          /* value = raw * scale; finite and non-zero */
    int poll_interval_ms;
};

/* One Modbus device bound to a device of the store. For modbus_tcp_server devices host,
 * port and unit_id are not configured (host NULL, port 0, unit_id 0): the dial-in connection
 * supplies them. */
struct gw_config_modbus_device {
    char *product_key;
    char *device_name;
    char *host;
    int port;
    int unit_id;           /* 0..247 */
    int timeout_ms;
    int retry_interval_ms;
    int ota_base;          /* first register of the §5.6 OTA block, GW_CONFIG_UNSET = no OTA */
    struct gw_config_modbus_point *points;
    size_t point_count;
};

struct gw_config_mqtt {
    char *broker;          /* "spawn" or "tcp://host:port" */
    bool spawn;            /* broker == "spawn" */
    struct gw_config_addr broker_addr; /* parsed from broker when !spawn */
    enum gw_config_serializer serializer;
    char *client_id;
    int max_inflight;
    int max_buffered;
    int reply_qos;
    int broker_queue_mb;
    int keepalive_s;
};

struct gw_config_coap {
    struct gw_config_addr dtls_listen; /* host "" = DTLS off */
    int block_size;                    /* 16..1024, power of two */
};

struct gw_config_http {
    int max_wait_s;
};

struct gw_config_websocket {
    char *path;
    enum gw_config_serializer serializer;
    int idle_timeout_s;
};

struct gw_config_tcp {
    enum gw_config_serializer serializer;
    struct gw_framer_config framing; /* checked with gw_framer_config_check */
    int max_connections;
    int idle_timeout_s;              /* 0 = never */
    int write_queue_max_bytes;
    bool nodelay;                    /* TCP_NODELAY on accepted sockets */
};

struct gw_config_udp {
    enum gw_config_serializer serializer;
    int session_timeout_s;
};

struct gw_config_modbus_client {
    struct gw_config_modbus_device *devices;
    size_t device_count;
};

struct gw_config_modbus_server {
    int custom_function_code; /* 65..72 */
    struct gw_config_modbus_device *devices;
    size_t device_count;
};

struct gw_config_adapter {
    enum gw_config_adapter_type type;
    char *name;                   /* unique among adapters; a log tag */
    struct gw_config_addr listen; /* unused (host "") for modbus_tcp_client */
    union {
        struct gw_config_mqtt mqtt;
        struct gw_config_coap coap;
        struct gw_config_http http;
        struct gw_config_websocket websocket;
        struct gw_config_tcp tcp;
        struct gw_config_udp udp;
        struct gw_config_modbus_client modbus_client;
        struct gw_config_modbus_server modbus_server;
    } u;
};

struct gw_config_admin {
    struct gw_config_addr listen;
    char *token; /* "" = generate into <data_dir>/admin.token at start */
};

struct gw_config_firmware {
    char *base_url; /* never "" after load: derived from admin.listen when not given */
    char *sign_key; /* path of an ECDSA P-256 PEM key, "" = no signing */
    int max_upload_mb; /* largest firmware image accepted, MiB */
};

struct gw_config_storage {
    int map_size_mb;
};

/* Defaults for the OTA policy of DESIGN §5.4 (tasks may override them). */
struct gw_config_ota {
    int push_timeout_s;
    int upgrade_timeout_s;
    int max_retries;
    int retry_backoff_s;
    int max_concurrent;         /* 0 = unlimited */
    int rate_per_minute;        /* 0 = unlimited */
    double abort_failure_ratio; /* 0 = never abort, else 0 < r <= 1 */
    int abort_min_sample;
    int tick_ms;
};

struct gw_config_core {
    int queue_size;
    int batch_max;
};

struct gw_config {
    char *data_dir;
    enum gw_log_level log_level;
    struct gw_config_admin admin;
    struct gw_config_firmware firmware;
    struct gw_config_storage storage;
    struct gw_config_ota ota;
    struct gw_config_core core;
    struct gw_config_adapter *adapters;
    size_t adapter_count;
};

/*
 * Reads, parses and validates the file at path (borrowed). On success *out is a new config
 * owned by the caller (gw_config_free). On failure *out is NULL and err (errlen bytes, may
 * be 0) holds the message. Any thread; no global state.
 */
int gw_config_load_file(const char *path, struct gw_config **out, char *err, size_t errlen);

/* Same from text[0..len) (borrowed, need not be NUL-terminated). */
int gw_config_load_string(const char *text, size_t len, struct gw_config **out, char *err,
                          size_t errlen);

/* NULL is fine. */
void gw_config_free(struct gw_config *cfg);

/*
 * Replaces data_dir (the --data-dir override); dir is copied. Returns 0, GW_E_CONFIG (empty)
 * or -ENOMEM. Only before the config is shared with other threads.
 */
int gw_config_set_data_dir(struct gw_config *cfg, const char *dir, char *err, size_t errlen);

/*
 * Writes the effective configuration as JSON, every key with its value or default; the
 * admin token is shown as "<redacted>" when set. The output loads back to the same config
 * (except the token). Returns 0, -ENOMEM or -EIO.
 */
int gw_config_print(const struct gw_config *cfg, FILE *f);

/* Writes the documentation of every option (path, type, range, default, help). */
void gw_config_print_help(FILE *f);

/* Name of an adapter type ("mqtt", ...), or "?" when out of range. */
const char *gw_config_adapter_type_name(enum gw_config_adapter_type type);

/*
 * Calls fn once for every option in the tables: path is the documented path, e.g.
 * "adapters[type=tcp].framing.length_field_size", key its last component
 * ("length_field_size"). Used by the test that keeps config/iotgw.json and the table
 * in step. Borrowed strings, valid during the call.
 */
typedef void (*gw_config_option_fn)(const char *path, const char *key, void *arg);
void gw_config_foreach_option(gw_config_option_fn fn, void *arg);

#endif
