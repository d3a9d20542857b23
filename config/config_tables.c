/*
 * DESIGN: the option tables of the gateway configuration (DESIGN §7.3): the root object, its
 * sections and one table per adapter type, each option declared exactly once with its key,
 * type, range, default and help. The finish hooks here hold the rules that span keys
 * (framing through gw_framer_config_check, the MQTT broker address, adapter names). Modbus
 * device tables live in config_modbus.c; root-level cross checks in config_load.c.
 * Constant data; any thread.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_config_table.h"
#include "gw_error.h"
#include "gw_framer.h"

_Static_assert(sizeof(enum gw_config_adapter_type) == sizeof(int), "enum options are int-sized");
_Static_assert(sizeof(enum gw_framer_type) == sizeof(int), "enum options are int-sized");
_Static_assert(sizeof(enum gw_log_level) == sizeof(int), "enum options are int-sized");

/* Option declarators. D is a default as text: the value itself for strings, enums and
 * addresses, JSON for numbers ("300", "0.5", "true"). */
#define F(T, f) .offset = offsetof(T, f)
#define OPT_STR(T, f, key, fl, D, maxlen, chk, text)                                         \
    { .name = key, .type = GW__CFG_STRING, F(T, f), .flags = fl, .def = D, .max = maxlen,     \
      .check = chk, .help = text }
#define OPT_INT(T, f, key, fl, D, lo, hi, text)                                               \
    { .name = key, .type = GW__CFG_INT, F(T, f), .width = sizeof(((T *)0)->f), .flags = fl,   \
      .def = D, .min = lo, .max = hi, .help = text }
#define OPT_INT_CHK(T, f, key, D, lo, hi, chk, text)                                          \
    { .name = key, .type = GW__CFG_INT, F(T, f), .width = sizeof(((T *)0)->f), .def = D,      \
      .min = lo, .max = hi, .check = chk, .help = text }
#define OPT_BOOL(T, f, key, D, text)                                                          \
    { .name = key, .type = GW__CFG_BOOL, F(T, f), .def = D, .help = text }
#define OPT_DBL(T, f, key, D, lo, hi, text)                                                   \
    { .name = key, .type = GW__CFG_DOUBLE, F(T, f), .def = D, .dmin = lo, .dmax = hi,         \
      .help = text }
#define OPT_ENUM(T, f, key, D, nm, text)                                                      \
    { .name = key, .type = GW__CFG_ENUM, F(T, f), .def = D, .names = nm, .help = text }
#define OPT_ADDR(T, f, key, fl, D, text)                                                      \
    { .name = key, .type = GW__CFG_ADDR, F(T, f), .flags = fl, .def = D, .help = text }
#define OPT_OBJ(T, f, key, tbl, text)                                                         \
    { .name = key, .type = GW__CFG_OBJECT, F(T, f), .sub = &tbl, .help = text }
#define TABLE(T, opts, fin) { sizeof(T), opts, sizeof(opts) / sizeof(opts[0]), fin }

const char *const gw__cfg_adapter_type_names[] = {
    "mqtt", "coap", "http", "websocket", "tcp", "udp", "modbus_tcp_client", "modbus_tcp_server",
    NULL,
};
_Static_assert(sizeof(gw__cfg_adapter_type_names) / sizeof(gw__cfg_adapter_type_names[0]) ==
                   GW_CONFIG_ADAPTER__COUNT + 1,
               "one name per adapter type");

const char *const gw__cfg_serializer_names[] = { "json", "binary", NULL };
static const char *const cfg_log_names[] = { "error", "warn", "info", "debug", NULL };
static const char *const cfg_framing_names[] = { "delimiter", "length_field", "fixed_length",
                                                 NULL };
static const int cfg_framing_values[] = { GW_FRAMER_DELIMITER, GW_FRAMER_LENGTH_FIELD,
                                          GW_FRAMER_FIXED_LENGTH };
static const int cfg_length_sizes[] = { 1, 2, 4 };

const char *gw_config_adapter_type_name(enum gw_config_adapter_type type)
{
    if ((int)type < 0 || type >= GW_CONFIG_ADAPTER__COUNT)
        return "?";
    return gw__cfg_adapter_type_names[type];
}

/* ---- value checks ------------------------------------------------------------------- */

/* Adapter names become log tags and stats keys: keep them short and plain. */
static bool cfg_check_name(const void *field, char *why, size_t whylen)
{
    const char *s = *(char *const *)field;

    for (const char *p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.')) {
            snprintf(why, whylen, "only letters, digits, '_', '-' and '.' are allowed");
            return false;
        }
    }
    return true;
}

/* The admin token travels in an Authorization header: printable ASCII, no spaces. */
static bool cfg_check_token(const void *field, char *why, size_t whylen)
{
    const char *s = *(char *const *)field;
    size_t len = strlen(s);

    if (len == 0)
        return true;
    if (len < 16) {
        snprintf(why, whylen, "must be empty (generated) or at least 16 characters (got %zu)", len);
        return false;
    }
    for (const char *p = s; *p; p++) {
        if (*p <= ' ' || *p > '~') {
            snprintf(why, whylen, "only printable ASCII without spaces is allowed");
            return false;
        }
    }
    return true;
}

static bool cfg_check_base_url(const void *field, char *why, size_t whylen)
{
    const char *s = *(char *const *)field;

    if (s[0] == '\0')
        return true;
    if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) {
        snprintf(why, whylen, "must start with http:// or https:// (or be empty to derive it)");
        return false;
    }
    if (strchr(s, ' ') || strchr(s, '?') || strchr(s, '#')) {
        snprintf(why, whylen, "must not contain spaces, '?' or '#'");
        return false;
    }
    /* "https:///" would lose its slashes to the trailing-'/' trim and print back as
     * "https:": the host must start right after the scheme. */
    if (s[s[4] == 's' ? 8 : 7] == '\0' || s[s[4] == 's' ? 8 : 7] == '/') {
        snprintf(why, whylen, "has no host");
        return false;
    }
    return true;
}

static bool cfg_check_ws_path(const void *field, char *why, size_t whylen)
{
    const char *s = *(char *const *)field;

    if (s[0] != '/' || strpbrk(s, " ?#")) {
        snprintf(why, whylen, "must start with '/' and contain no spaces, '?' or '#'");
        return false;
    }
    return true;
}

static bool cfg_check_block_size(const void *field, char *why, size_t whylen)
{
    int v = *(const int *)field;

    if (v & (v - 1)) {
        snprintf(why, whylen,
                 "must be a power of two: 16, 32, 64, 128, 256, 512 or 1024 (got %d)", v);
        return false;
    }
    return true;
}

/* ---- framing (struct gw_framer_config, rules from codecs/gw_framer.h) ----------------- */

static int cfg_delim_parse(void *obj, const cJSON *item, char *why, size_t whylen)
{
    struct gw_framer_config *fc = obj;
    const char *reason = NULL;

    if (!cJSON_IsString(item)) {
        snprintf(why, whylen, "expected a string (got %s)", gw__cfg_json_type(item));
        return GW_E_CONFIG;
    }
    if (gw_framer_config_set_delimiter(fc, item->valuestring, &reason) != 0) {
        snprintf(why, whylen, "%s", reason ? reason : "invalid delimiter");
        return GW_E_CONFIG;
    }
    return 0;
}

/* Text that loads back to the same bytes: CR, LF and TAB stay raw (JSON shows "\r\n"),
 * a backslash and other bytes outside printable ASCII become the framer's escapes. */
static cJSON *cfg_delim_print(const void *obj)
{
    const struct gw_framer_config *fc = obj;
    char buf[GW_FRAMER_DELIM_MAX * 4 + 1];
    size_t o = 0;

    for (size_t i = 0; i < fc->delimiter_len && i < GW_FRAMER_DELIM_MAX; i++) {
        uint8_t c = fc->delimiter[i];
        if (c == '\\')
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\\\\");
        else if ((c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c >= 0x7f)
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\\x%02x", c);
        else
            buf[o++] = (char)c;
    }
    buf[o] = '\0';
    return cJSON_CreateString(buf);
}

static const struct gw__cfg_custom cfg_delim = {
    .type_doc = "string with escapes \\r \\n \\t \\\\ \\xHH",
    .parse = cfg_delim_parse,
    .print = cfg_delim_print,
};

static int cfg_framing_finish(void *obj, struct gw__cfg_ctx *ctx)
{
    struct gw_framer_config *fc = obj;
    const char *reason = NULL;

    /* Unset strip = the whole header, so the deserializer sees the payload alone (the
     * reference's sample config; its bare default 0 would hand it the length bytes too). */
    if (fc->initial_bytes_to_strip == (size_t)GW_CONFIG_UNSET)
        fc->initial_bytes_to_strip = fc->length_field_offset + fc->length_field_size;
    if (fc->type == GW_FRAMER_FIXED_LENGTH && fc->fixed_length == 0)
        return gw__cfg_fail(ctx, "fixed_length", "required (1..%d) when type is fixed_length",
                            GW_FRAME_MAX);
    if (gw_framer_config_check(fc, &reason) != 0)
        return gw__cfg_fail(ctx, NULL, "%s", reason ? reason : "invalid framing");
    return 0;
}

#define FC struct gw_framer_config
static const struct gw__cfg_opt cfg_framing_opts[] = {
    { .name = "type", .type = GW__CFG_ENUM, F(FC, type), .def = "delimiter",
      .names = cfg_framing_names, .values = cfg_framing_values,
      .help = "How frames are cut from the TCP stream: payload + delimiter, a big-endian "
              "length field, or fixed-size frames. Options of the other types are ignored." },
    { .name = "delimiter", .type = GW__CFG_CUSTOM, .def = "\\n", .custom = &cfg_delim,
      .help = "delimiter: bytes that end each frame (1..8), e.g. \"\\n\" or \"\\r\\n\"." },
    { .name = "length_field_size", .type = GW__CFG_INT, F(FC, length_field_size),
      .width = sizeof(unsigned), .def = "4", .choices = cfg_length_sizes, .nchoices = 3,
      .help = "length_field: bytes of the big-endian unsigned length field." },
    OPT_INT(FC, length_field_offset, "length_field_offset", 0, "0", 0, GW_FRAMER_OFFSET_MAX,
            "length_field: bytes before the length field."),
    OPT_INT(FC, length_adjustment, "length_adjustment", 0, "0",
            -(GW_FRAME_MAX + GW_FRAMER_OFFSET_MAX + 4), GW_FRAME_MAX,
            "length_field: added to the field's value to get the body length (use "
            "-(offset + size) when the field counts the whole frame)."),
    OPT_INT(FC, initial_bytes_to_strip, "initial_bytes_to_strip", GW__CFG_NULLABLE, NULL, 0,
            GW_FRAMER_OFFSET_MAX + 4,
            "length_field: bytes dropped from the front of each frame before decoding; "
            "at most offset + size. Default: offset + size (the payload alone)."),
    OPT_INT(FC, fixed_length, "fixed_length", 0, "0", 0, GW_FRAME_MAX,
            "fixed_length: bytes per frame (1..65536); required with that type."),
};
#undef FC
static const struct gw__cfg_table cfg_framing = TABLE(struct gw_framer_config, cfg_framing_opts,
                                                      cfg_framing_finish);

/* ---- adapters ------------------------------------------------------------------------- */

#define A struct gw_config_adapter
#define TYPE_OPT                                                                              \
    { .name = "type", .type = GW__CFG_ENUM, F(A, type),                                       \
      .flags = GW__CFG_SELECTOR | GW__CFG_REQUIRED, .names = gw__cfg_adapter_type_names,      \
      .help = "Adapter type; selects the other options of the entry." }
#define NAME_OPT                                                                              \
    OPT_STR(A, name, "name", GW__CFG_EMPTY_OK, "", 32, cfg_check_name,                        \
            "Unique instance name, used in logs and stats. Default: the type.")
#define LISTEN_OPT(D) OPT_ADDR(A, listen, "listen", 0, D, "Address to listen on (host:port).")
#define SERIALIZER_OPT(f)                                                                     \
    OPT_ENUM(A, f, "serializer", "json", gw__cfg_serializer_names,                            \
             "Message encoding on this listener (DESIGN §4): json or binary.")

/* Name default and the checks every adapter shares. */
static int cfg_adapter_finish(void *obj, struct gw__cfg_ctx *ctx)
{
    struct gw_config_adapter *a = obj;

    if (a->name && a->name[0] == '\0') {
        char *copy = strdup(gw_config_adapter_type_name(a->type));
        if (!copy)
            return -ENOMEM;
        free(a->name);
        a->name = copy;
    }
    (void)ctx;
    return 0;
}

static int cfg_mqtt_finish(void *obj, struct gw__cfg_ctx *ctx)
{
    struct gw_config_adapter *a = obj;
    struct gw_config_mqtt *m = &a->u.mqtt;
    char why[160];

    m->spawn = strcmp(m->broker, "spawn") == 0;
    memset(&m->broker_addr, 0, sizeof(m->broker_addr));
    if (!m->spawn) {
        if (strncmp(m->broker, "tcp://", 6) != 0)
            return gw__cfg_fail(ctx, "broker", "must be \"spawn\" or \"tcp://host:port\"");
        if (!gw__cfg_parse_addr(m->broker + 6, &m->broker_addr, why, sizeof(why)))
            return gw__cfg_fail(ctx, "broker", "must be \"spawn\" or \"tcp://host:port\": %s", why);
        if (m->broker_addr.port == 0)
            return gw__cfg_fail(ctx, "broker", "port 0 is not a broker address");
    }
    return cfg_adapter_finish(obj, ctx);
}

static const struct gw__cfg_opt cfg_mqtt_opts[] = {
    TYPE_OPT, NAME_OPT,
    OPT_ADDR(A, listen, "listen", 0, "127.0.0.1:1883",
             "Where the spawned broker listens (devices connect here); unused with an "
             "external broker."),
    OPT_STR(A, u.mqtt.broker, "broker", 0, "spawn", 300, NULL,
            "\"spawn\": run a private mosquitto with the gateway's auth plugin; or "
            "\"tcp://host:port\" of an existing broker that runs the plugin."),
    SERIALIZER_OPT(u.mqtt.serializer),
    OPT_STR(A, u.mqtt.client_id, "client_id", 0, "iotgw", 128, NULL,
            "MQTT client id of the gateway's own broker connection."),
    OPT_INT(A, u.mqtt.max_inflight, "max_inflight", 0, "1000", 1, 65535,
            "QoS 1 publishes awaiting PUBACK at once (paho maxInflight)."),
    OPT_INT(A, u.mqtt.max_buffered, "max_buffered", 0, "10000", 1, 10000000,
            "Publishes paho may queue (maxBufferedMessages); beyond it submit returns "
            "-EAGAIN."),
    OPT_INT(A, u.mqtt.keepalive_s, "keepalive_s", 0, "60", 0, 65535,
            "MQTT keep-alive of the gateway's broker connection, seconds (0 = off)."),
    OPT_INT(A, u.mqtt.reply_qos, "reply_qos", 0, "0", 0, 1,
            "QoS of the replies the gateway publishes to device requests (*_reply topics); "
            "requests to devices (thing.ota.upgrade, ...) are always QoS 1."),
    OPT_INT(A, u.mqtt.broker_queue_mb, "broker_queue_mb", 0, "256", 1, 2047,
            "Spawned broker: megabytes of QoS 1 messages it queues for one client beyond those "
            "in flight (the gateway's own connection above all, while it catches up); beyond "
            "it the broker drops messages."),
};

static const struct gw__cfg_opt cfg_coap_opts[] = {
    TYPE_OPT, NAME_OPT, LISTEN_OPT("127.0.0.1:5683"),
    OPT_ADDR(A, u.coap.dtls_listen, "dtls_listen", GW__CFG_EMPTY_OK, "",
             "CoAP over DTLS listen address; empty = no DTLS listener."),
    OPT_INT_CHK(A, u.coap.block_size, "block_size", "1024", 16, 1024, cfg_check_block_size,
                "Block2 size for firmware downloads: a power of two, 16..1024."),
};

static const struct gw__cfg_opt cfg_http_opts[] = {
    TYPE_OPT, NAME_OPT, LISTEN_OPT("127.0.0.1:8092"),
    OPT_INT(A, u.http.max_wait_s, "max_wait_s", 0, "30", 0, 600,
            "Longest wait a downstream long-poll (GET .../downstream?wait=S) may ask for, "
            "seconds."),
};

static const struct gw__cfg_opt cfg_websocket_opts[] = {
    TYPE_OPT, NAME_OPT, LISTEN_OPT("127.0.0.1:8094"),
    OPT_STR(A, u.websocket.path, "path", 0, "/ws", 256, cfg_check_ws_path,
            "Upgrade path; other paths are refused."),
    SERIALIZER_OPT(u.websocket.serializer),
    OPT_INT(A, u.websocket.idle_timeout_s, "idle_timeout_s", 0, "300", 0, 86400,
            "Close a connection silent this long, seconds (0 = never)."),
};

static const struct gw__cfg_opt cfg_tcp_opts[] = {
    TYPE_OPT, NAME_OPT, LISTEN_OPT("127.0.0.1:8091"),
    SERIALIZER_OPT(u.tcp.serializer),
    OPT_OBJ(A, u.tcp.framing, "framing", cfg_framing,
            "How messages are delimited in the byte stream (DESIGN §4)."),
    OPT_INT(A, u.tcp.max_connections, "max_connections", 0, "10000", 1, 1000000,
            "Connections accepted at once; more are closed at accept."),
    OPT_INT(A, u.tcp.idle_timeout_s, "idle_timeout_s", 0, "300", 0, 86400,
            "Close a connection silent this long, seconds (0 = never)."),
    OPT_INT(A, u.tcp.write_queue_max_bytes, "write_queue_max_bytes", 0, "1048576", 1024,
            1073741824, "Bytes queued for one slow connection before submit refuses more."),
    OPT_BOOL(A, u.tcp.nodelay, "nodelay", "true", "Set TCP_NODELAY on accepted connections."),
};

static const struct gw__cfg_opt cfg_udp_opts[] = {
    TYPE_OPT, NAME_OPT, LISTEN_OPT("127.0.0.1:8093"),
    SERIALIZER_OPT(u.udp.serializer),
    OPT_INT(A, u.udp.session_timeout_s, "session_timeout_s", 0, "120", 1, 86400,
            "Forget a device's address after this long without a datagram, seconds."),
};

static int cfg_modbus_finish(void *obj, struct gw__cfg_ctx *ctx)
{
    int rc = gw__cfg_modbus_adapter_finish(obj, ctx);

    return rc ? rc : cfg_adapter_finish(obj, ctx);
}

#define DEVICES_OPT(f, tbl, text)                                                             \
    { .name = "devices", .type = GW__CFG_LIST, F(A, f.devices), .sub = &tbl,                  \
      .count_offset = offsetof(A, f.device_count), .max_items = 10000, .help = text }

static const struct gw__cfg_opt cfg_modbus_client_opts[] = {
    TYPE_OPT, NAME_OPT,
    DEVICES_OPT(u.modbus_client, gw__cfg_modbus_client_device,
                "Devices the gateway polls as Modbus TCP master (DESIGN §7.5)."),
};

static const struct gw__cfg_opt cfg_modbus_server_opts[] = {
    TYPE_OPT, NAME_OPT, LISTEN_OPT("127.0.0.1:1502"),
    OPT_INT(A, u.modbus_server.custom_function_code, "customFunctionCode", 0, "65", 65, 72,
            "Function code of the login frame dial-in devices send (user-defined 65..72)."),
    DEVICES_OPT(u.modbus_server, gw__cfg_modbus_server_device,
                "Devices that dial in and are then polled; host, port and unitId come from "
                "the connection."),
};

static const struct gw__cfg_table cfg_adapter_tables[GW_CONFIG_ADAPTER__COUNT] = {
    [GW_CONFIG_ADAPTER_MQTT] = TABLE(A, cfg_mqtt_opts, cfg_mqtt_finish),
    [GW_CONFIG_ADAPTER_COAP] = TABLE(A, cfg_coap_opts, cfg_adapter_finish),
    [GW_CONFIG_ADAPTER_HTTP] = TABLE(A, cfg_http_opts, cfg_adapter_finish),
    [GW_CONFIG_ADAPTER_WEBSOCKET] = TABLE(A, cfg_websocket_opts, cfg_adapter_finish),
    [GW_CONFIG_ADAPTER_TCP] = TABLE(A, cfg_tcp_opts, cfg_adapter_finish),
    [GW_CONFIG_ADAPTER_UDP] = TABLE(A, cfg_udp_opts, cfg_adapter_finish),
    [GW_CONFIG_ADAPTER_MODBUS_TCP_CLIENT] = TABLE(A, cfg_modbus_client_opts, cfg_modbus_finish),
    [GW_CONFIG_ADAPTER_MODBUS_TCP_SERVER] = TABLE(A, cfg_modbus_server_opts, cfg_modbus_finish),
};

static const struct gw__cfg_table *const cfg_adapter_variants[GW_CONFIG_ADAPTER__COUNT] = {
    &cfg_adapter_tables[0], &cfg_adapter_tables[1], &cfg_adapter_tables[2],
    &cfg_adapter_tables[3], &cfg_adapter_tables[4], &cfg_adapter_tables[5],
    &cfg_adapter_tables[6], &cfg_adapter_tables[7],
};
#undef A

/* ---- root and sections ---------------------------------------------------------------- */

#define T struct gw_config_admin
static const struct gw__cfg_opt cfg_admin_opts[] = {
    OPT_ADDR(T, listen, "listen", 0, "127.0.0.1:8080",
             "Admin HTTP API and firmware server address (host:port)."),
    { .name = "token", .type = GW__CFG_STRING, F(T, token),
      .flags = GW__CFG_EMPTY_OK | GW__CFG_SECRET,
      .def = "", .max = 256, .check = cfg_check_token,
      .help = "Bearer token of the admin API (16+ printable characters). Empty: generated "
              "at first start into <data_dir>/admin.token." },
};
#undef T
static const struct gw__cfg_table cfg_admin = TABLE(struct gw_config_admin, cfg_admin_opts, NULL);

#define T struct gw_config_firmware
static const struct gw__cfg_opt cfg_firmware_opts[] = {
    OPT_STR(T, base_url, "base_url", GW__CFG_EMPTY_OK, "", 512, cfg_check_base_url,
            "Base of the fileUrl sent to devices (http:// or https://). Empty: derived from "
            "admin.listen, e.g. http://127.0.0.1:8080."),
    OPT_STR(T, sign_key, "sign_key", GW__CFG_EMPTY_OK, "", 4096, NULL,
            "Path of an ECDSA P-256 private key (PEM) that signs firmware; empty = unsigned."),
    OPT_INT(T, max_upload_mb, "max_upload_mb", 0, "256", 1, 65536,
            "Largest firmware image accepted by upload or fetch, in MiB (streamed to disk, "
            "never held in memory)."),
};
#undef T
static const struct gw__cfg_table cfg_firmware = TABLE(struct gw_config_firmware,
                                                       cfg_firmware_opts, NULL);

static const struct gw__cfg_opt cfg_storage_opts[] = {
    OPT_INT(struct gw_config_storage, map_size_mb, "map_size_mb", 0, "1024", 16, 1048576,
            "LMDB map size in MiB: the most the database can hold."),
};
static const struct gw__cfg_table cfg_storage = TABLE(struct gw_config_storage,
                                                      cfg_storage_opts, NULL);

#define T struct gw_config_ota
static const struct gw__cfg_opt cfg_ota_opts[] = {
    OPT_INT(T, push_timeout_s, "push_timeout_s", 0, "300", 1, 604800,
            "A pushed record with no progress report this long times out, seconds."),
    OPT_INT(T, upgrade_timeout_s, "upgrade_timeout_s", 0, "1800", 1, 604800,
            "An upgrading record with no report this long times out, seconds."),
    OPT_INT(T, max_retries, "max_retries", 0, "3", 0, 100,
            "Re-pushes after a timeout before the record fails."),
    OPT_INT(T, retry_backoff_s, "retry_backoff_s", 0, "30", 0, 86400,
            "First retry delay, seconds; doubles with every retry."),
    OPT_INT(T, max_concurrent, "max_concurrent", 0, "0", 0, 10000000,
            "Records of one task pushed or upgrading at once (0 = unlimited)."),
    OPT_INT(T, rate_per_minute, "rate_per_minute", 0, "0", 0, 10000000,
            "Pushes per minute per task (0 = unlimited)."),
    OPT_DBL(T, abort_failure_ratio, "abort_failure_ratio", "0", 0.0, 1.0,
            "Cancel a task when failures / finished records exceed this (0 = never)."),
    OPT_INT(T, abort_min_sample, "abort_min_sample", 0, "10", 1, 10000000,
            "Finished records needed before abort_failure_ratio applies."),
    OPT_INT(T, tick_ms, "tick_ms", 0, "1000", 10, 60000,
            "Scheduler tick (timeouts, retries, rate limits), milliseconds."),
};
#undef T
static const struct gw__cfg_table cfg_ota = TABLE(struct gw_config_ota, cfg_ota_opts, NULL);

static const struct gw__cfg_opt cfg_core_opts[] = {
    OPT_INT(struct gw_config_core, queue_size, "queue_size", 0, "65536", 16, 16777216,
            "Messages the inbound queue holds; when full, adapters apply their full policy."),
    OPT_INT(struct gw_config_core, batch_max, "batch_max", 0, "1000", 1, 1000000,
            "Messages the core handles per write transaction (group commit)."),
};
static const struct gw__cfg_table cfg_core = TABLE(struct gw_config_core, cfg_core_opts, NULL);

#define T struct gw_config
static const struct gw__cfg_opt cfg_root_opts[] = {
    OPT_STR(T, data_dir, "data_dir", 0, "var/iotgw", 4096, NULL,
            "Directory of the database, firmware files, admin token and secrets "
            "(--data-dir overrides)."),
    OPT_ENUM(T, log_level, "log_level", "info", cfg_log_names,
             "Most verbose level logged: error, warn, info or debug."),
    OPT_OBJ(T, admin, "admin", cfg_admin, "Admin HTTP API."),
    OPT_OBJ(T, firmware, "firmware", cfg_firmware, "Firmware server and signing."),
    OPT_OBJ(T, storage, "storage", cfg_storage, "LMDB store."),
    OPT_OBJ(T, ota, "ota", cfg_ota, "Default OTA policy (tasks may override, DESIGN §5.4)."),
    OPT_OBJ(T, core, "core", cfg_core, "Core thread queue and batching."),
    { .name = "adapters", .type = GW__CFG_LIST, F(T, adapters),
      .variants = cfg_adapter_variants, .nvariants = GW_CONFIG_ADAPTER__COUNT,
      .count_offset = offsetof(T, adapter_count), .max_items = 64,
      .help = "Protocol listeners and pollers; \"type\" selects the options of each entry." },
};
#undef T
const struct gw__cfg_table gw__cfg_root = TABLE(struct gw_config, cfg_root_opts,
                                                gw__cfg_root_finish);
