#ifndef GW_CONFIG_TABLE_H
#define GW_CONFIG_TABLE_H
/*
 * Internal to config/: the option table types and the engine that walks them.
 *
 * A table describes one JSON object and the C struct it fills. Each option names its key,
 * its type, where its value lives (offset into that struct), its default (as JSON text, fed
 * through the same parser as user values, so defaults are validated too), its range and its
 * help. Objects nest through `sub`; lists of objects give the element table (or, for the
 * adapter list, one table per value of the element's "type" key).
 *
 * After an object's options are all set, the table's `finish` hook runs: rules that span
 * several keys (byte order vs raw type, framing) and defaults derived from other keys.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "gw_config.h"

enum gw__cfg_type {
    GW__CFG_STRING, /* char * (heap, owned); min/max = length bounds in bytes */
    GW__CFG_BOOL,   /* bool */
    GW__CFG_INT,    /* integer field of `width` bytes (4 or 8), range min..max or choices */
    GW__CFG_DOUBLE, /* double, finite, dmin..dmax */
    GW__CFG_ENUM,   /* enum field (int-sized): one of names[], stored as values[i] or i */
    GW__CFG_ADDR,   /* struct gw_config_addr from "host:port" */
    GW__CFG_CUSTOM, /* parsed and printed by callbacks that see the whole object */
    GW__CFG_OBJECT, /* embedded struct described by sub */
    GW__CFG_LIST,   /* T *items at offset, size_t count at count_offset */
};

#define GW__CFG_REQUIRED 0x1u /* no default: the key must be given */
#define GW__CFG_NULLABLE 0x2u /* INT/ENUM: null or absent stores GW_CONFIG_UNSET */
#define GW__CFG_EMPTY_OK 0x4u /* STRING/ADDR: "" allowed */
#define GW__CFG_SECRET 0x8u   /* printed as "<redacted>" when set */
#define GW__CFG_SELECTOR 0x10u /* the "type" key choosing a list element's table */

#define GW__CFG_PATH_MAX 256

/* Error context: the message buffer and the key path of the object being parsed. */
struct gw__cfg_ctx {
    char *err;
    size_t errlen;
    char path[GW__CFG_PATH_MAX];
    size_t pathlen;
};

struct gw__cfg_custom {
    const char *type_doc; /* e.g. "string with escapes" */
    /* Sets the option from item (never NULL: defaults are fed as JSON too). On error
     * returns nonzero and writes a reason (why, whylen). */
    int (*parse)(void *obj, const cJSON *item, char *why, size_t whylen);
    cJSON *(*print)(const void *obj);
};

struct gw__cfg_table;

struct gw__cfg_opt {
    const char *name;
    enum gw__cfg_type type;
    size_t offset;
    size_t width; /* INT: sizeof the field */
    unsigned flags;
    const char *def; /* default as JSON text; NULL with REQUIRED, NULLABLE or OBJECT/LIST */
    int64_t min, max;
    double dmin, dmax;
    const int *choices; /* INT: the only allowed values (nchoices of them) */
    size_t nchoices;
    const char *const *names; /* ENUM: NULL-terminated */
    const int *values;        /* ENUM: stored value of names[i]; NULL = i */
    /* Extra rule on the value just stored (STRING, INT, ADDR); false = refuse with why. */
    bool (*check)(const void *field, char *why, size_t whylen);
    const struct gw__cfg_custom *custom;
    const struct gw__cfg_table *sub;               /* OBJECT, LIST element */
    const struct gw__cfg_table *const *variants;   /* LIST: table per selector value */
    size_t nvariants;
    size_t count_offset; /* LIST */
    size_t max_items;    /* LIST */
    const char *help;
};

struct gw__cfg_table {
    size_t size; /* sizeof the struct (list elements) */
    const struct gw__cfg_opt *opts;
    size_t nopts;
    /* Cross-key rules and derived defaults once every option is set. Returns 0 or the
     * result of gw__cfg_fail. */
    int (*finish)(void *obj, struct gw__cfg_ctx *ctx);
};

/* The root table (struct gw_config) and the per-type adapter tables. */
extern const struct gw__cfg_table gw__cfg_root;
extern const struct gw__cfg_table gw__cfg_modbus_client_device;
extern const struct gw__cfg_table gw__cfg_modbus_server_device;
extern const char *const gw__cfg_adapter_type_names[];
extern const char *const gw__cfg_serializer_names[];

/* Finish hooks defined outside config_tables.c. */
int gw__cfg_modbus_adapter_finish(void *obj, struct gw__cfg_ctx *ctx); /* config_modbus.c */
int gw__cfg_root_finish(void *obj, struct gw__cfg_ctx *ctx);           /* config_load.c */

/*
 * Writes "config: <path>[.key]: <reason>" to ctx->err and returns GW_E_CONFIG. key may be
 * NULL (the error is about the object at ctx->path itself).
 */
int gw__cfg_fail(struct gw__cfg_ctx *ctx, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Path bookkeeping: push ".key" or "[i]", pop back to a saved length. */
size_t gw__cfg_push_key(struct gw__cfg_ctx *ctx, const char *key);
size_t gw__cfg_push_index(struct gw__cfg_ctx *ctx, size_t index);
void gw__cfg_pop(struct gw__cfg_ctx *ctx, size_t saved);

/* Parses obj (a JSON object, or NULL = all defaults) into base per table. */
int gw__cfg_parse_object(const struct gw__cfg_table *t, const cJSON *obj, void *base,
                         struct gw__cfg_ctx *ctx);
/* Frees what the table's strings and lists own inside base (not base itself). */
void gw__cfg_free_object(const struct gw__cfg_table *t, void *base);
/* A new cJSON object with every option of base. NULL on -ENOMEM. */
cJSON *gw__cfg_print_object(const struct gw__cfg_table *t, const void *base);

/* "host:port" → addr. false with why on a bad shape, host or port. */
bool gw__cfg_parse_addr(const char *text, struct gw_config_addr *addr, char *why,
                        size_t whylen);
/* addr → "host:port" ("[v6]:port"); "" when host is "". */
void gw__cfg_format_addr(const struct gw_config_addr *addr, char *buf, size_t len);

/* Name of a JSON value's type for messages ("string", "number", ...). */
const char *gw__cfg_json_type(const cJSON *item);

#endif
