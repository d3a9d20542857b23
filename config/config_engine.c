/*
 * DESIGN: the table engine. Walks a struct gw__cfg_table over a parsed JSON tree: refuses
 * unknown and duplicate keys, sets every option from the user's value or its default (the
 * default goes through the same setter, so a bad default fails the unit tests rather than
 * slipping through), runs the table's finish hook, and can free and print what it filled.
 * Pure functions over the caller's memory; any thread; no globals.
 *
 * Invariant: a struct being filled always stays freeable by gw__cfg_free_object: strings
 * and lists are stored the moment they are allocated, list elements start zeroed, and a
 * variant element's selector is set before its options are parsed.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_config_table.h"
#include "gw_error.h"

#define GW__CFG_STRING_MAX 4096

int gw__cfg_fail(struct gw__cfg_ctx *ctx, const char *key, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!ctx->err || ctx->errlen == 0)
        return GW_E_CONFIG;
    if (key)
        n = snprintf(ctx->err, ctx->errlen, "config: %s%s%s: ", ctx->path,
                     ctx->pathlen ? "." : "", key);
    else
        n = snprintf(ctx->err, ctx->errlen, "config: %s: ", ctx->pathlen ? ctx->path : "(top)");
    if (n < 0 || (size_t)n >= ctx->errlen)
        return GW_E_CONFIG;
    va_start(ap, fmt);
    vsnprintf(ctx->err + n, ctx->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return GW_E_CONFIG;
}

size_t gw__cfg_push_key(struct gw__cfg_ctx *ctx, const char *key)
{
    size_t saved = ctx->pathlen;
    int n = snprintf(ctx->path + saved, sizeof(ctx->path) - saved, "%s%s", saved ? "." : "", key);

    if (n > 0)
        ctx->pathlen = strnlen(ctx->path, sizeof(ctx->path) - 1);
    return saved;
}

size_t gw__cfg_push_index(struct gw__cfg_ctx *ctx, size_t index)
{
    size_t saved = ctx->pathlen;
    int n = snprintf(ctx->path + saved, sizeof(ctx->path) - saved, "[%zu]", index);

    if (n > 0)
        ctx->pathlen = strnlen(ctx->path, sizeof(ctx->path) - 1);
    return saved;
}

void gw__cfg_pop(struct gw__cfg_ctx *ctx, size_t saved)
{
    ctx->pathlen = saved;
    ctx->path[saved] = '\0';
}

const char *gw__cfg_json_type(const cJSON *item)
{
    if (cJSON_IsString(item))
        return "string";
    if (cJSON_IsNumber(item))
        return "number";
    if (cJSON_IsBool(item))
        return "bool";
    if (cJSON_IsNull(item))
        return "null";
    if (cJSON_IsArray(item))
        return "list";
    if (cJSON_IsObject(item))
        return "object";
    return "invalid";
}

/* A user string quoted for a message: at most 40 bytes, control characters as '?'. */
static const char *cfg_quote(const char *s, char *buf, size_t len)
{
    size_t i = 0, o = 0;

    buf[o++] = '"';
    for (; s[i] && o + 5 < len && i < 40; i++)
        buf[o++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (s[i]) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static int64_t cfg_int_get(const struct gw__cfg_opt *o, const void *base)
{
    const char *field = (const char *)base + o->offset;

    if (o->width == sizeof(int64_t)) {
        int64_t v;
        memcpy(&v, field, sizeof(v));
        return v;
    }
    int32_t v;
    memcpy(&v, field, sizeof(v));
    return v;
}

static void cfg_int_put(const struct gw__cfg_opt *o, void *base, int64_t v)
{
    char *field = (char *)base + o->offset;

    if (o->width == sizeof(int64_t)) {
        memcpy(field, &v, sizeof(v));
    } else {
        int32_t v32 = (int32_t)v;
        memcpy(field, &v32, sizeof(v32));
    }
}

/* "1, 2 or 4" */
static void cfg_choices_text(const struct gw__cfg_opt *o, char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < o->nchoices && used < len; i++) {
        const char *sep = i == 0 ? "" : (i + 1 == o->nchoices ? " or " : ", ");
        int n = snprintf(buf + used, len - used, "%s%d", sep, o->choices[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static int cfg_set_int(const struct gw__cfg_opt *o, const cJSON *item, void *base,
                       struct gw__cfg_ctx *ctx)
{
    double d;
    int64_t v;

    if (!cJSON_IsNumber(item))
        return gw__cfg_fail(ctx, o->name, "expected an integer (got %s)", gw__cfg_json_type(item));
    d = item->valuedouble;
    if (!isfinite(d) || d != floor(d))
        return gw__cfg_fail(ctx, o->name, "expected an integer (got %g)", d);
    if (o->nchoices) {
        bool ok = false;
        for (size_t i = 0; i < o->nchoices; i++)
            ok = ok || d == (double)o->choices[i];
        if (!ok) {
            char text[64];
            cfg_choices_text(o, text, sizeof(text));
            return gw__cfg_fail(ctx, o->name, "must be %s (got %.0f)", text, d);
        }
    } else if (d < (double)o->min || d > (double)o->max) {
        return gw__cfg_fail(ctx, o->name, "must be between %" PRId64 " and %" PRId64 " (got %.15g)",
                            o->min, o->max, d);
    }
    v = (int64_t)d;
    cfg_int_put(o, base, v);
    return 0;
}

static int cfg_set_double(const struct gw__cfg_opt *o, const cJSON *item, void *base,
                          struct gw__cfg_ctx *ctx)
{
    double d;

    if (!cJSON_IsNumber(item))
        return gw__cfg_fail(ctx, o->name, "expected a number (got %s)", gw__cfg_json_type(item));
    d = item->valuedouble;
    if (!isfinite(d) || d < o->dmin || d > o->dmax)
        return gw__cfg_fail(ctx, o->name, "must be between %g and %g (got %g)", o->dmin,
                            o->dmax, d);
    memcpy((char *)base + o->offset, &d, sizeof(d));
    return 0;
}

static int cfg_set_enum(const struct gw__cfg_opt *o, const cJSON *item, void *base,
                        struct gw__cfg_ctx *ctx)
{
    char list[160] = "", q[64];
    size_t used = 0;

    if (!cJSON_IsString(item))
        return gw__cfg_fail(ctx, o->name, "expected a string (got %s)", gw__cfg_json_type(item));
    for (size_t i = 0; o->names[i]; i++) {
        if (strcmp(item->valuestring, o->names[i]) == 0) {
            int v = o->values ? o->values[i] : (int)i;
            memcpy((char *)base + o->offset, &v, sizeof(v));
            return 0;
        }
        int n = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", o->names[i]);
        if (n > 0 && (size_t)n < sizeof(list) - used)
            used += (size_t)n;
    }
    return gw__cfg_fail(ctx, o->name, "must be one of %s (got %s)", list,
                        cfg_quote(item->valuestring, q, sizeof(q)));
}

static int cfg_set_string(const struct gw__cfg_opt *o, const cJSON *item, void *base,
                          struct gw__cfg_ctx *ctx)
{
    char **field = (char **)((char *)base + o->offset);
    size_t max = o->max > 0 ? (size_t)o->max : GW__CFG_STRING_MAX;
    const char *s;
    size_t len;
    char *copy;

    if (!cJSON_IsString(item))
        return gw__cfg_fail(ctx, o->name, "expected a string (got %s)", gw__cfg_json_type(item));
    s = item->valuestring;
    len = strlen(s);
    if (len == 0 && !(o->flags & GW__CFG_EMPTY_OK))
        return gw__cfg_fail(ctx, o->name, "must not be empty");
    if (len > max)
        return gw__cfg_fail(ctx, o->name, "longer than %zu bytes (got %zu)", max, len);
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return gw__cfg_fail(ctx, o->name, "must not contain control characters");
    }
    copy = strdup(s);
    if (!copy)
        return -ENOMEM;
    free(*field);
    *field = copy;
    return 0;
}

static int cfg_set_addr(const struct gw__cfg_opt *o, const cJSON *item, void *base,
                        struct gw__cfg_ctx *ctx)
{
    struct gw_config_addr *addr = (struct gw_config_addr *)((char *)base + o->offset);
    char why[160];

    if (!cJSON_IsString(item))
        return gw__cfg_fail(ctx, o->name, "expected \"host:port\" (got %s)",
                            gw__cfg_json_type(item));
    if (item->valuestring[0] == '\0' && (o->flags & GW__CFG_EMPTY_OK)) {
        memset(addr, 0, sizeof(*addr));
        return 0;
    }
    if (!gw__cfg_parse_addr(item->valuestring, addr, why, sizeof(why)))
        return gw__cfg_fail(ctx, o->name, "%s", why);
    return 0;
}

static int cfg_parse_list(const struct gw__cfg_opt *o, const cJSON *item, void *base,
                          struct gw__cfg_ctx *ctx);

static int cfg_set(const struct gw__cfg_opt *o, const cJSON *item, void *base,
                   struct gw__cfg_ctx *ctx)
{
    char why[160];
    int rc = 0;

    if (cJSON_IsNull(item) && (o->flags & GW__CFG_NULLABLE)) {
        cfg_int_put(o, base, GW_CONFIG_UNSET);
        return 0;
    }
    switch (o->type) {
    case GW__CFG_STRING:
        rc = cfg_set_string(o, item, base, ctx);
        break;
    case GW__CFG_BOOL:
        if (!cJSON_IsBool(item))
            return gw__cfg_fail(ctx, o->name, "expected true or false (got %s)",
                                gw__cfg_json_type(item));
        *(bool *)((char *)base + o->offset) = cJSON_IsTrue(item);
        break;
    case GW__CFG_INT:
        rc = cfg_set_int(o, item, base, ctx);
        break;
    case GW__CFG_DOUBLE:
        rc = cfg_set_double(o, item, base, ctx);
        break;
    case GW__CFG_ENUM:
        rc = cfg_set_enum(o, item, base, ctx);
        break;
    case GW__CFG_ADDR:
        rc = cfg_set_addr(o, item, base, ctx);
        break;
    case GW__CFG_CUSTOM:
        if (o->custom->parse(base, item, why, sizeof(why)) != 0)
            return gw__cfg_fail(ctx, o->name, "%s", why);
        break;
    case GW__CFG_OBJECT: {
        if (!cJSON_IsObject(item))
            return gw__cfg_fail(ctx, o->name, "expected an object (got %s)",
                                gw__cfg_json_type(item));
        size_t saved = gw__cfg_push_key(ctx, o->name);
        rc = gw__cfg_parse_object(o->sub, item, (char *)base + o->offset, ctx);
        gw__cfg_pop(ctx, saved);
        return rc;
    }
    case GW__CFG_LIST:
        return cfg_parse_list(o, item, base, ctx);
    }
    if (rc == 0 && o->check && !o->check((char *)base + o->offset, why, sizeof(why)))
        rc = gw__cfg_fail(ctx, o->name, "%s", why);
    return rc;
}

/* The table of one list element: the element table, or the variant its "type" selects. */
static int cfg_element_table(const struct gw__cfg_opt *o, const cJSON *elem, void *obj,
                             const struct gw__cfg_table **out, struct gw__cfg_ctx *ctx)
{
    const struct gw__cfg_opt *sel;
    const cJSON *type;
    int rc;

    if (!o->variants) {
        *out = o->sub;
        return 0;
    }
    sel = &o->variants[0]->opts[0];
    type = cJSON_GetObjectItemCaseSensitive(elem, sel->name);
    if (!type)
        return gw__cfg_fail(ctx, sel->name, "required key missing");
    rc = cfg_set_enum(sel, type, obj, ctx);
    if (rc)
        return rc;
    int v;
    memcpy(&v, (char *)obj + sel->offset, sizeof(v));
    *out = o->variants[v];
    return 0;
}

static int cfg_parse_list(const struct gw__cfg_opt *o, const cJSON *item, void *base,
                          struct gw__cfg_ctx *ctx)
{
    size_t n, saved, i = 0;
    char *items = NULL;
    int rc = 0;

    if (!cJSON_IsArray(item))
        return gw__cfg_fail(ctx, o->name, "expected a list (got %s)", gw__cfg_json_type(item));
    n = (size_t)cJSON_GetArraySize(item);
    if (n > o->max_items)
        return gw__cfg_fail(ctx, o->name, "at most %zu entries (got %zu)", o->max_items, n);
    if (n) {
        size_t elem_size = o->variants ? o->variants[0]->size : o->sub->size;
        items = calloc(n, elem_size);
        if (!items)
            return -ENOMEM;
        memcpy((char *)base + o->offset, &items, sizeof(items));
        memcpy((char *)base + o->count_offset, &n, sizeof(n));
    }
    saved = gw__cfg_push_key(ctx, o->name);
    for (const cJSON *elem = item->child; elem && rc == 0; elem = elem->next, i++) {
        size_t elem_size = o->variants ? o->variants[0]->size : o->sub->size;
        void *obj = items + i * elem_size;
        const struct gw__cfg_table *t = NULL;
        size_t at = gw__cfg_push_index(ctx, i);

        if (!cJSON_IsObject(elem))
            rc = gw__cfg_fail(ctx, NULL, "expected an object (got %s)", gw__cfg_json_type(elem));
        if (rc == 0)
            rc = cfg_element_table(o, elem, obj, &t, ctx);
        if (rc == 0)
            rc = gw__cfg_parse_object(t, elem, obj, ctx);
        gw__cfg_pop(ctx, at);
    }
    gw__cfg_pop(ctx, saved);
    return rc;
}

/* Unknown and duplicate keys, before any value so the first error is the misspelt key. */
static int cfg_check_keys(const struct gw__cfg_table *t, const cJSON *obj, struct gw__cfg_ctx *ctx)
{
    uint64_t seen = 0;

    for (const cJSON *it = obj ? obj->child : NULL; it; it = it->next) {
        size_t k = 0;
        while (k < t->nopts && strcmp(t->opts[k].name, it->string) != 0)
            k++;
        if (k == t->nopts)
            return gw__cfg_fail(ctx, it->string, "unknown key");
        if (k >= 64)
            continue; /* tables stay far below 64 options; no duplicate check past that */
        if (seen & (UINT64_C(1) << k))
            return gw__cfg_fail(ctx, it->string, "duplicate key");
        seen |= UINT64_C(1) << k;
    }
    return 0;
}

/* The default of o: strings as themselves, numbers and booleans as JSON text. */
static int cfg_set_default(const struct gw__cfg_opt *o, void *base, struct gw__cfg_ctx *ctx)
{
    cJSON *item;
    int rc;

    if (o->flags & GW__CFG_REQUIRED)
        return gw__cfg_fail(ctx, o->name, "required key missing");
    if (o->type == GW__CFG_OBJECT) {
        size_t saved = gw__cfg_push_key(ctx, o->name);
        rc = gw__cfg_parse_object(o->sub, NULL, (char *)base + o->offset, ctx);
        gw__cfg_pop(ctx, saved);
        return rc;
    }
    if (o->type == GW__CFG_LIST)
        return 0; /* zeroed: empty */
    if (!o->def) {
        if (o->flags & GW__CFG_NULLABLE) {
            cfg_int_put(o, base, GW_CONFIG_UNSET);
            return 0;
        }
        return gw__cfg_fail(ctx, o->name, "internal: option has no default");
    }
    if (o->type == GW__CFG_STRING || o->type == GW__CFG_ENUM || o->type == GW__CFG_ADDR ||
        o->type == GW__CFG_CUSTOM)
        item = cJSON_CreateString(o->def);
    else
        item = cJSON_Parse(o->def);
    if (!item)
        return -ENOMEM;
    rc = cfg_set(o, item, base, ctx);
    cJSON_Delete(item);
    return rc;
}

int gw__cfg_parse_object(const struct gw__cfg_table *t, const cJSON *obj, void *base,
                         struct gw__cfg_ctx *ctx)
{
    int rc = cfg_check_keys(t, obj, ctx);

    for (size_t k = 0; k < t->nopts && rc == 0; k++) {
        const struct gw__cfg_opt *o = &t->opts[k];
        const cJSON *item;

        if (o->flags & GW__CFG_SELECTOR)
            continue; /* set by the list from the element's "type" */
        item = obj ? cJSON_GetObjectItemCaseSensitive(obj, o->name) : NULL;
        rc = item ? cfg_set(o, item, base, ctx) : cfg_set_default(o, base, ctx);
    }
    if (rc == 0 && t->finish)
        rc = t->finish(base, ctx);
    return rc;
}

static const struct gw__cfg_table *cfg_variant_of(const struct gw__cfg_opt *o, const void *obj)
{
    const struct gw__cfg_opt *sel;
    int v;

    if (!o->variants)
        return o->sub;
    sel = &o->variants[0]->opts[0];
    memcpy(&v, (const char *)obj + sel->offset, sizeof(v));
    return (v >= 0 && (size_t)v < o->nvariants) ? o->variants[v] : NULL;
}

void gw__cfg_free_object(const struct gw__cfg_table *t, void *base)
{
    for (size_t k = 0; k < t->nopts; k++) {
        const struct gw__cfg_opt *o = &t->opts[k];
        char *field = (char *)base + o->offset;

        if (o->type == GW__CFG_STRING) {
            char **s = (char **)field;
            free(*s);
            *s = NULL;
        } else if (o->type == GW__CFG_OBJECT) {
            gw__cfg_free_object(o->sub, field);
        } else if (o->type == GW__CFG_LIST) {
            char *items;
            size_t n;
            memcpy(&items, field, sizeof(items));
            memcpy(&n, (char *)base + o->count_offset, sizeof(n));
            size_t elem_size = o->variants ? o->variants[0]->size : o->sub->size;
            for (size_t i = 0; i < n; i++) {
                const struct gw__cfg_table *et = cfg_variant_of(o, items + i * elem_size);
                if (et)
                    gw__cfg_free_object(et, items + i * elem_size);
            }
            free(items);
            items = NULL;
            n = 0;
            memcpy(field, &items, sizeof(items));
            memcpy((char *)base + o->count_offset, &n, sizeof(n));
        }
    }
}

static cJSON *cfg_print_enum(const struct gw__cfg_opt *o, const void *base)
{
    int v;

    memcpy(&v, (const char *)base + o->offset, sizeof(v));
    for (size_t i = 0; o->names[i]; i++) {
        if ((o->values ? o->values[i] : (int)i) == v)
            return cJSON_CreateString(o->names[i]);
    }
    return cJSON_CreateNull();
}

static cJSON *cfg_print_list(const struct gw__cfg_opt *o, const void *base)
{
    cJSON *arr = cJSON_CreateArray();
    const char *items;
    size_t n;

    memcpy(&items, (const char *)base + o->offset, sizeof(items));
    memcpy(&n, (const char *)base + o->count_offset, sizeof(n));
    size_t elem_size = o->variants ? o->variants[0]->size : o->sub->size;
    for (size_t i = 0; arr && i < n; i++) {
        const struct gw__cfg_table *et = cfg_variant_of(o, items + i * elem_size);
        cJSON *elem = et ? gw__cfg_print_object(et, items + i * elem_size) : NULL;
        if (!elem) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, elem);
    }
    return arr;
}

static cJSON *cfg_print_opt(const struct gw__cfg_opt *o, const void *base)
{
    const char *field = (const char *)base + o->offset;
    char buf[GW_CONFIG_HOST_MAX + 16];

    if ((o->flags & GW__CFG_NULLABLE) && cfg_int_get(o, base) == GW_CONFIG_UNSET)
        return cJSON_CreateNull();
    switch (o->type) {
    case GW__CFG_STRING: {
        const char *s = *(char *const *)field;
        if ((o->flags & GW__CFG_SECRET) && s && s[0])
            s = "<redacted>";
        return cJSON_CreateString(s ? s : "");
    }
    case GW__CFG_BOOL:
        return cJSON_CreateBool(*(const bool *)field);
    case GW__CFG_INT:
        return cJSON_CreateNumber((double)cfg_int_get(o, base));
    case GW__CFG_DOUBLE: {
        double d;
        memcpy(&d, field, sizeof(d));
        return cJSON_CreateNumber(d);
    }
    case GW__CFG_ENUM:
        return cfg_print_enum(o, base);
    case GW__CFG_ADDR:
        gw__cfg_format_addr((const struct gw_config_addr *)field, buf, sizeof(buf));
        return cJSON_CreateString(buf);
    case GW__CFG_CUSTOM:
        return o->custom->print(base);
    case GW__CFG_OBJECT:
        return gw__cfg_print_object(o->sub, field);
    case GW__CFG_LIST:
        return cfg_print_list(o, base);
    }
    return NULL;
}

cJSON *gw__cfg_print_object(const struct gw__cfg_table *t, const void *base)
{
    cJSON *obj = cJSON_CreateObject();

    for (size_t k = 0; obj && k < t->nopts; k++) {
        cJSON *v = cfg_print_opt(&t->opts[k], base);
        if (!v) {
            cJSON_Delete(obj);
            return NULL;
        }
        cJSON_AddItemToObject(obj, t->opts[k].name, v);
    }
    return obj;
}

static bool cfg_host_char(char c, bool v6)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
        return true;
    if (v6)
        return c == ':' || c == '.';
    return (c >= 'g' && c <= 'z') || (c >= 'G' && c <= 'Z') || c == '.' || c == '-' || c == '_';
}

bool gw__cfg_parse_addr(const char *text, struct gw_config_addr *addr, char *why, size_t whylen)
{
    const char *colon = strrchr(text, ':');
    const char *host = text, *port = colon ? colon + 1 : NULL;
    size_t hlen = colon ? (size_t)(colon - text) : 0;
    bool v6 = false;
    char q[64];
    long p = 0;

    if (!colon || hlen == 0 || *port == '\0') {
        snprintf(why, whylen, "expected \"host:port\" (got %s)", cfg_quote(text, q, sizeof(q)));
        return false;
    }
    if (host[0] == '[') {
        if (hlen < 3 || host[hlen - 1] != ']') {
            snprintf(why, whylen, "expected \"[ipv6]:port\" (got %s)",
                     cfg_quote(text, q, sizeof(q)));
            return false;
        }
        host++;
        hlen -= 2;
        v6 = true;
    }
    if (hlen >= GW_CONFIG_HOST_MAX) {
        snprintf(why, whylen, "host longer than %d bytes", GW_CONFIG_HOST_MAX - 1);
        return false;
    }
    for (size_t i = 0; i < hlen; i++) {
        if (!cfg_host_char(host[i], v6)) {
            snprintf(why, whylen, "expected \"host:port\" with a host name or IP address (got %s)",
                     cfg_quote(text, q, sizeof(q)));
            return false;
        }
    }
    for (const char *c = port; *c; c++) {
        p = p * 10 + (*c - '0');
        if (*c < '0' || *c > '9' || p > 65535 || c - port >= 5) {
            snprintf(why, whylen, "port must be a number 0..65535 (got %s)",
                     cfg_quote(port, q, sizeof(q)));
            return false;
        }
    }
    memcpy(addr->host, host, hlen);
    addr->host[hlen] = '\0';
    addr->port = (int)p;
    return true;
}

void gw__cfg_format_addr(const struct gw_config_addr *addr, char *buf, size_t len)
{
    if (addr->host[0] == '\0')
        snprintf(buf, len, "%s", "");
    else if (strchr(addr->host, ':'))
        snprintf(buf, len, "[%s]:%d", addr->host, addr->port);
    else
        snprintf(buf, len, "%s:%d", addr->host, addr->port);
}
