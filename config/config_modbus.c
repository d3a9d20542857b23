/*
 * DESIGN: option tables of Modbus devices and their register points (DESIGN §7.5, REFERENCE
 * §4.9/§4.10), camelCase keys as in the reference. The finish hooks hold the rules that span
 * keys: a point's count and byte order must fit its raw type, identifiers are unique within
 * a device, a device (productKey, deviceName) appears once per adapter. Constant data; any
 * thread.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_config_table.h"
#include "gw_error.h"

_Static_assert(sizeof(enum gw_config_modbus_type) == sizeof(int), "enum options are int-sized");
_Static_assert(sizeof(enum gw_config_byte_order) == sizeof(int), "enum options are int-sized");

static const char *const cfg_raw_type_names[] = { "INT16", "UINT16", "INT32", "UINT32",
                                                  "FLOAT", "DOUBLE", "BOOLEAN", NULL };
static const char *const cfg_order_names[] = { "AB", "BA", "ABCD", "CDAB", "DCBA", "BADC", NULL };

/* Registers one value of the type occupies. */
static int cfg_type_width(enum gw_config_modbus_type t)
{
    switch (t) {
    case GW_CONFIG_MODBUS_INT32:
    case GW_CONFIG_MODBUS_UINT32:
    case GW_CONFIG_MODBUS_FLOAT:
        return 2;
    case GW_CONFIG_MODBUS_DOUBLE:
        return 4;
    default:
        return 1;
    }
}

static bool cfg_check_scale(const void *field, char *why, size_t whylen)
{
    if (*(const double *)field == 0.0) {
        snprintf(why, whylen, "must not be 0 (writes divide by the scale)");
        return false;
    }
    return true;
}

/* productKey, deviceName, identifier: the characters the store and topics accept. */
static bool cfg_check_ident(const void *field, char *why, size_t whylen)
{
    const char *s = *(char *const *)field;

    for (const char *p = s; *p; p++) {
        if (*p == '/' || *p == '+' || *p == '#' || *p == ' ' || *p == '&' || *p == '"') {
            snprintf(why, whylen, "must not contain '/', '+', '#', '&', '\"' or spaces");
            return false;
        }
    }
    return true;
}

static bool cfg_check_host(const void *field, char *why, size_t whylen)
{
    const char *s = *(char *const *)field;

    for (const char *p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-' || *p == ':' || *p == '_')) {
            snprintf(why, whylen, "not a host name or IP address");
            return false;
        }
    }
    return true;
}

static int cfg_point_finish(void *obj, struct gw__cfg_ctx *ctx)
{
    struct gw_config_modbus_point *p = obj;
    bool bits = p->function_code <= 2;
    int width = bits ? 1 : cfg_type_width(p->raw_type);
    const char *type = cfg_raw_type_names[p->raw_type];

    if (bits && p->raw_type != GW_CONFIG_MODBUS_BOOLEAN)
        return gw__cfg_fail(ctx, "rawType",
                            "function code %d reads bits, so rawType must be BOOLEAN (got %s)",
                            p->function_code, type);
    if (p->count == GW_CONFIG_UNSET)
        p->count = width;
    else if (p->count != width && bits)
        return gw__cfg_fail(ctx, "count", "a function code %d point reads 1 bit (got %d)",
                            p->function_code, p->count);
    else if (p->count != width)
        return gw__cfg_fail(ctx, "count", "%s takes %d register%s (got %d)", type, width,
                            width == 1 ? "" : "s", p->count);
    if (p->address + p->count > 65536)
        return gw__cfg_fail(ctx, "address", "%d + count %d runs past address 65535", p->address,
                            p->count);
    if ((int)p->byte_order == GW_CONFIG_UNSET) {
        p->byte_order = width == 1 ? GW_CONFIG_ORDER_AB : GW_CONFIG_ORDER_ABCD;
    } else if (width == 1 && p->byte_order > GW_CONFIG_ORDER_BA) {
        return gw__cfg_fail(ctx, "byteOrder", "%s is 16-bit: must be AB or BA (got %s)", type,
                            cfg_order_names[p->byte_order]);
    } else if (width > 1 && p->byte_order <= GW_CONFIG_ORDER_BA) {
        return gw__cfg_fail(ctx, "byteOrder",
                            "%s is %d-bit: must be ABCD, CDAB, DCBA or BADC (got %s)", type,
                            width * 16, cfg_order_names[p->byte_order]);
    }
    return 0;
}

/* Index of the first element equal (cmp) to an earlier one, its twin in *first; -1 if none.
 * Sorting pointers keeps it O(n log n) for thousands of devices. */
static long cfg_find_dup(const void *items, size_t n, size_t size,
                         int (*cmp)(const void *, const void *), size_t *first)
{
    const char **ptrs;
    long dup = -1;

    if (n < 2)
        return -1;
    ptrs = malloc(n * sizeof(*ptrs));
    if (!ptrs)
        return -2;
    for (size_t i = 0; i < n; i++)
        ptrs[i] = (const char *)items + i * size;
    qsort(ptrs, n, sizeof(*ptrs), cmp);
    for (size_t i = 1; i < n; i++) {
        if (cmp(&ptrs[i - 1], &ptrs[i]) != 0)
            continue;
        size_t a = (size_t)(ptrs[i - 1] - (const char *)items) / size;
        size_t b = (size_t)(ptrs[i] - (const char *)items) / size;
        size_t later = a > b ? a : b;
        if (dup < 0 || later < (size_t)dup) { /* report the first clash in file order */
            dup = (long)later;
            *first = a > b ? b : a;
        }
    }
    free(ptrs);
    return dup;
}

static int cfg_cmp_point(const void *a, const void *b)
{
    const struct gw_config_modbus_point *pa = *(const struct gw_config_modbus_point *const *)a;
    const struct gw_config_modbus_point *pb = *(const struct gw_config_modbus_point *const *)b;

    return strcmp(pa->identifier, pb->identifier);
}

static int cfg_cmp_device(const void *a, const void *b)
{
    const struct gw_config_modbus_device *da = *(const struct gw_config_modbus_device *const *)a;
    const struct gw_config_modbus_device *db = *(const struct gw_config_modbus_device *const *)b;
    int c = strcmp(da->product_key, db->product_key);

    return c ? c : strcmp(da->device_name, db->device_name);
}

static int cfg_device_finish(void *obj, struct gw__cfg_ctx *ctx)
{
    struct gw_config_modbus_device *d = obj;
    size_t first = 0;
    long dup = cfg_find_dup(d->points, d->point_count, sizeof(*d->points), cfg_cmp_point, &first);
    char key[48];

    if (dup == -2)
        return -ENOMEM;
    if (dup >= 0) {
        snprintf(key, sizeof(key), "points[%ld].identifier", dup);
        return gw__cfg_fail(ctx, key, "\"%s\" is already used by points[%zu]",
                            d->points[dup].identifier, first);
    }
    return 0;
}

int gw__cfg_modbus_adapter_finish(void *obj, struct gw__cfg_ctx *ctx)
{
    struct gw_config_adapter *a = obj;
    struct gw_config_modbus_device *devs;
    size_t n, first = 0;
    long dup;
    char key[48];

    if (a->type == GW_CONFIG_ADAPTER_MODBUS_TCP_CLIENT) {
        devs = a->u.modbus_client.devices;
        n = a->u.modbus_client.device_count;
    } else {
        devs = a->u.modbus_server.devices;
        n = a->u.modbus_server.device_count;
    }
    dup = cfg_find_dup(devs, n, sizeof(*devs), cfg_cmp_device, &first);
    if (dup == -2)
        return -ENOMEM;
    if (dup >= 0) {
        snprintf(key, sizeof(key), "devices[%ld]", dup);
        return gw__cfg_fail(ctx, key, "device %s/%s is already listed as devices[%zu]",
                            devs[dup].product_key, devs[dup].device_name, first);
    }
    return 0;
}

#define F(T, f) .offset = offsetof(T, f)
#define OPT_INT(T, f, key, fl, D, lo, hi, text)                                               \
    { .name = key, .type = GW__CFG_INT, F(T, f), .width = sizeof(((T *)0)->f), .flags = fl,   \
      .def = D, .min = lo, .max = hi, .help = text }
#define OPT_IDENT(T, f, key, text)                                                            \
    { .name = key, .type = GW__CFG_STRING, F(T, f), .flags = GW__CFG_REQUIRED, .max = 64,     \
      .check = cfg_check_ident, .help = text }

#define P struct gw_config_modbus_point
static const struct gw__cfg_opt cfg_point_opts[] = {
    OPT_IDENT(P, identifier, "identifier", "Property identifier the value is posted under."),
    OPT_INT(P, function_code, "functionCode", GW__CFG_REQUIRED, NULL, 1, 4,
            "1 coils, 2 discrete inputs, 3 holding registers, 4 input registers."),
    OPT_INT(P, address, "address", GW__CFG_REQUIRED, NULL, 0, 65535,
            "First register (or bit) address."),
    OPT_INT(P, count, "count", GW__CFG_NULLABLE, NULL, 1, 4,
            "Registers read: must equal the type's width (INT16/UINT16/BOOLEAN 1, "
            "INT32/UINT32/FLOAT 2, DOUBLE 4; 1 bit for function codes 1 and 2). "
            "Default: that width."),
    { .name = "rawType", .type = GW__CFG_ENUM, F(P, raw_type), .flags = GW__CFG_REQUIRED,
      .names = cfg_raw_type_names,
      .help = "Register data type; function codes 1 and 2 take BOOLEAN only." },
    { .name = "byteOrder", .type = GW__CFG_ENUM, F(P, byte_order), .flags = GW__CFG_NULLABLE,
      .names = cfg_order_names,
      .help = "16-bit types: AB or BA; 32/64-bit types: ABCD, CDAB, DCBA or BADC. "
              "Default: big-endian (AB or ABCD)." },
    { .name = "scale", .type = GW__CFG_DOUBLE, F(P, scale), .def = "1", .dmin = -1e12,
      .dmax = 1e12, .check = cfg_check_scale, .help = "value = raw * scale; not 0." },
    OPT_INT(P, poll_interval_ms, "pollIntervalMs", 0, "1000", 100, 86400000,
            "How often the point is read, milliseconds."),
};
#undef P
static const struct gw__cfg_table cfg_point = {
    sizeof(struct gw_config_modbus_point), cfg_point_opts,
    sizeof(cfg_point_opts) / sizeof(cfg_point_opts[0]), cfg_point_finish,
};

#define D struct gw_config_modbus_device
#define DEVICE_IDENT_OPTS                                                                     \
    OPT_IDENT(D, product_key, "productKey", "productKey of the device in the store."),       \
    OPT_IDENT(D, device_name, "deviceName", "deviceName of the device in the store.")
#define DEVICE_COMMON_OPTS                                                                    \
    OPT_INT(D, timeout_ms, "timeoutMs", 0, "1000", 1, 60000,                                  \
            "Response timeout of one request, milliseconds."),                                \
    OPT_INT(D, retry_interval_ms, "retryIntervalMs", 0, "2000", 0, 3600000,                   \
            "Wait before reconnecting or retrying after a failure, milliseconds."),           \
    OPT_INT(D, ota_base, "otaBase", GW__CFG_NULLABLE, NULL, 0, 65536 - GW_CONFIG_MODBUS_OTA_REGS, \
            "First holding register of the OTA block (DESIGN §5.6, usually 4096); set = "     \
            "the device is upgraded by the gateway. Default: none (no OTA)."),                \
    { .name = "points", .type = GW__CFG_LIST, F(D, points), .sub = &cfg_point,                \
      .count_offset = offsetof(D, point_count), .max_items = 1000,                            \
      .help = "Register points polled into thing.property.post." }

static const struct gw__cfg_opt cfg_client_device_opts[] = {
    DEVICE_IDENT_OPTS,
    { .name = "host", .type = GW__CFG_STRING, F(D, host), .flags = GW__CFG_REQUIRED,
      .max = 253, .check = cfg_check_host, .help = "Modbus TCP server (slave) host." },
    OPT_INT(D, port, "port", 0, "502", 1, 65535, "Modbus TCP server port."),
    OPT_INT(D, unit_id, "unitId", 0, "1", 0, 247, "Unit (slave) id, 0..247."),
    DEVICE_COMMON_OPTS,
};

static const struct gw__cfg_opt cfg_server_device_opts[] = {
    DEVICE_IDENT_OPTS,
    DEVICE_COMMON_OPTS,
};
#undef D

const struct gw__cfg_table gw__cfg_modbus_client_device = {
    sizeof(struct gw_config_modbus_device), cfg_client_device_opts,
    sizeof(cfg_client_device_opts) / sizeof(cfg_client_device_opts[0]), cfg_device_finish,
};
const struct gw__cfg_table gw__cfg_modbus_server_device = {
    sizeof(struct gw_config_modbus_device), cfg_server_device_opts,
    sizeof(cfg_server_device_opts) / sizeof(cfg_server_device_opts[0]), cfg_device_finish,
};
