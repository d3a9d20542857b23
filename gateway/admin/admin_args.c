/*
 * DESIGN: the pure part of the admin API: request objects, argument getters that name the
 * field at fault, paging, the {"code","msg","data"} envelope, the HTTP status rule, and the
 * small parsers the lws thread needs (ids in paths, Bearer header, Range header).
 *
 * No I/O, no locks, no globals: any thread may call these on a request it owns. Invariant:
 * every failing getter leaves a message naming the field in req->errmsg, so a 400 always
 * tells the operator what to fix.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin_int.h"
#include "gw_error.h"
#include "gw_util.h"

#define ID_MAX (INT64_C(1) << 53) /* ids travel as JSON numbers: exact below 2^53 */

struct gw_adm_req *gw__adm_req_new(void)
{
    struct gw_adm_req *req = calloc(1, sizeof(*req));

    if (req)
        req->http_status = 200;
    return req;
}

void gw__adm_req_free(struct gw_adm_req *req)
{
    if (!req)
        return;
    for (size_t i = 0; i < req->nquery; i++) {
        free(req->query[i].key);
        free(req->query[i].val);
    }
    free(req->body);
    gw__adm_blob_discard(req->blob);
    cJSON_Delete(req->json);
    free(req->resp);
    free(req);
}

int gw__adm_query_add(struct gw_adm_req *req, const char *frag)
{
    const char *eq = strchr(frag, '=');
    size_t klen = eq ? (size_t)(eq - frag) : strlen(frag);
    struct gw_adm_kv *kv;

    if (req->nquery >= GW_ADM_QUERY_MAX)
        return -E2BIG;
    kv = &req->query[req->nquery];
    kv->key = strndup(frag, klen);
    kv->val = strdup(eq ? eq + 1 : "");
    if (!kv->key || !kv->val) {
        free(kv->key);
        free(kv->val);
        kv->key = kv->val = NULL;
        return -ENOMEM;
    }
    req->nquery++;
    return 0;
}

const char *gw__adm_query_get(const struct gw_adm_req *req, const char *name)
{
    for (size_t i = 0; i < req->nquery; i++)
        if (strcmp(req->query[i].key, name) == 0)
            return req->query[i].val;
    return NULL;
}

int gw__adm_fail(struct gw_adm_req *req, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(req->errmsg, sizeof(req->errmsg), fmt, ap);
    va_end(ap);
    return err;
}

/* The body's member `name`, NULL when absent or JSON null. */
static const cJSON *body_item(const struct gw_adm_req *req, const char *name)
{
    const cJSON *it;

    if (!req->json || !cJSON_IsObject(req->json))
        return NULL;
    it = cJSON_GetObjectItemCaseSensitive(req->json, name);
    return (it && !cJSON_IsNull(it)) ? it : NULL;
}

static bool parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (!*s || isspace((unsigned char)*s))
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

int gw__adm_arg_int(struct gw_adm_req *req, const char *name, bool required, int64_t min,
                    int64_t max, int64_t *out)
{
    const cJSON *it = body_item(req, name);
    const char *q;
    int64_t v;

    if (it) {
        if (cJSON_IsString(it)) {
            if (!parse_i64(it->valuestring, &v))
                goto err_type;
        } else if (gw_json_int(it, INT64_MIN, INT64_MAX, &v) != 0) {
            goto err_type;
        }
    } else {
        q = gw__adm_query_get(req, name);
        if (!q || !*q) {
            if (required)
                return gw__adm_fail(req, GW_E_MISSING_FIELD, "%s: required", name);
            return 0;
        }
        if (!parse_i64(q, &v))
            goto err_type;
    }
    if (v < min || v > max)
        return gw__adm_fail(req, GW_E_BAD_FIELD, "%s: must be between %" PRId64 " and %" PRId64,
                            name, min, max);
    *out = v;
    return 0;

err_type:
    return gw__adm_fail(req, GW_E_BAD_FIELD, "%s: must be an integer", name);
}

int gw__adm_arg_id(struct gw_adm_req *req, const char *name, bool required, uint64_t *out)
{
    int64_t v = 0;
    int rc = gw__adm_arg_int(req, name, required, 1, ID_MAX, &v);

    if (rc == GW_E_BAD_FIELD)
        return gw__adm_fail(req, rc, "%s: must be a positive integer id", name);
    if (rc == 0 && v > 0)
        *out = (uint64_t)v;
    return rc;
}

int gw__adm_arg_double(struct gw_adm_req *req, const char *name, bool required, double min,
                       double max, double *out)
{
    const cJSON *it = body_item(req, name);
    const char *q = NULL;
    double v;
    char *end;

    if (it) {
        if (cJSON_IsNumber(it))
            v = it->valuedouble;
        else if (cJSON_IsString(it))
            q = it->valuestring;
        else
            goto err_type;
    } else {
        q = gw__adm_query_get(req, name);
        if (!q || !*q) {
            if (required)
                return gw__adm_fail(req, GW_E_MISSING_FIELD, "%s: required", name);
            return 0;
        }
    }
    if (q) {
        if (!*q)
            goto err_type;
        errno = 0;
        v = strtod(q, &end);
        if (errno != 0 || *end != '\0')
            goto err_type;
    }
    if (!isfinite(v) || v < min || v > max)
        return gw__adm_fail(req, GW_E_BAD_FIELD, "%s: must be between %g and %g", name, min, max);
    *out = v;
    return 0;

err_type:
    return gw__adm_fail(req, GW_E_BAD_FIELD, "%s: must be a number", name);
}

int gw__adm_arg_str(struct gw_adm_req *req, const char *name, bool required, size_t maxlen,
                    const char **out)
{
    const cJSON *it = body_item(req, name);
    const char *s;

    if (it) {
        if (!cJSON_IsString(it))
            return gw__adm_fail(req, GW_E_BAD_FIELD, "%s: must be a string", name);
        s = it->valuestring;
    } else {
        s = gw__adm_query_get(req, name);
        if (!s) {
            if (required)
                return gw__adm_fail(req, GW_E_MISSING_FIELD, "%s: required", name);
            return 0;
        }
    }
    if (!gw_utf8_valid(s, strlen(s)))
        return gw__adm_fail(req, GW_E_BAD_FIELD, "%s: not valid UTF-8", name);
    if (strlen(s) > maxlen)
        return gw__adm_fail(req, GW_E_VALUE_TOO_LONG, "%s: longer than %zu bytes", name, maxlen);
    if (required && !*s)
        return gw__adm_fail(req, GW_E_MISSING_FIELD, "%s: required (empty)", name);
    *out = s;
    return 0;
}

int gw__adm_arg_strcpy(struct gw_adm_req *req, const char *name, bool required, char *dst,
                       size_t cap)
{
    const char *s = NULL;
    int rc = gw__adm_arg_str(req, name, required, cap - 1, &s);

    if (rc == 0 && s)
        memcpy(dst, s, strlen(s) + 1);
    return rc;
}

int gw__adm_arg_id_list(struct gw_adm_req *req, const char *name, bool required,
                        uint64_t **ids, size_t *n)
{
    const cJSON *arr = body_item(req, name), *it;
    uint64_t *v;
    size_t i = 0;

    *ids = NULL;
    *n = 0;
    if (!arr) {
        if (required)
            return gw__adm_fail(req, GW_E_MISSING_FIELD, "%s: required", name);
        return 0;
    }
    if (!cJSON_IsArray(arr))
        return gw__adm_fail(req, GW_E_BAD_FIELD, "%s: must be an array of ids", name);
    v = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    cJSON_ArrayForEach(it, arr) {
        int64_t x;

        if (cJSON_IsString(it) ? !parse_i64(it->valuestring, &x)
                               : gw_json_int(it, 1, ID_MAX, &x) != 0)
            goto err_bad;
        if (x < 1 || x > ID_MAX)
            goto err_bad;
        v[i++] = (uint64_t)x;
    }
    *ids = v;
    *n = i;
    return 0;

err_bad:
    free(v);
    return gw__adm_fail(req, GW_E_BAD_FIELD, "%s[%zu]: must be a positive integer id", name, i);
}

int gw__adm_page_begin(struct gw_adm_req *req, struct gw_adm_page *pg)
{
    int64_t no = 1, size = 10;
    int rc;

    memset(pg, 0, sizeof(*pg));
    rc = gw__adm_arg_int(req, "pageNo", false, 1, INT32_MAX, &no);
    if (rc == 0)
        rc = gw__adm_arg_int(req, "pageSize", false, 1, GW_ADM_PAGE_SIZE_MAX, &size);
    if (rc != 0)
        return rc;
    pg->skip = (uint64_t)(no - 1) * (uint64_t)size;
    pg->size = (uint64_t)size;
    pg->list = cJSON_CreateArray();
    return pg->list ? 0 : -ENOMEM;
}

bool gw__adm_page_take(struct gw_adm_page *pg)
{
    uint64_t idx = pg->total++;

    return idx >= pg->skip && idx - pg->skip < pg->size;
}

cJSON *gw__adm_page_end(struct gw_adm_page *pg)
{
    cJSON *obj = cJSON_CreateObject();

    if (!obj) {
        cJSON_Delete(pg->list);
        pg->list = NULL;
        return NULL;
    }
    cJSON_AddItemToObject(obj, "list", pg->list);
    pg->list = NULL;
    if (!gw__adm_add_u64(obj, "total", pg->total)) {
        cJSON_Delete(obj);
        return NULL;
    }
    return obj;
}

bool gw__adm_add_u64(cJSON *obj, const char *name, uint64_t v)
{
    return cJSON_AddNumberToObject(obj, name, (double)v) != NULL;
}

bool gw__adm_add_i64(cJSON *obj, const char *name, int64_t v)
{
    return cJSON_AddNumberToObject(obj, name, (double)v) != NULL;
}

int gw__adm_envelope(int64_t code, const char *msg, cJSON *data, char **out, size_t *len)
{
    cJSON *env = cJSON_CreateObject();
    char *text = NULL;

    if (!env)
        goto err_free;
    if (!cJSON_AddNumberToObject(env, "code", (double)code) ||
        !cJSON_AddStringToObject(env, "msg", msg ? msg : ""))
        goto err_free;
    if (data) {
        cJSON_AddItemToObject(env, "data", data);
        data = NULL;
    } else if (!cJSON_AddNullToObject(env, "data")) {
        goto err_free;
    }
    text = cJSON_PrintUnformatted(env);
    if (!text)
        goto err_free;
    cJSON_Delete(env);
    *out = text;
    *len = strlen(text);
    return 0;

err_free:
    cJSON_Delete(data);
    cJSON_Delete(env);
    return -ENOMEM;
}

int gw__adm_http_status(int64_t code)
{
    switch (code) {
    case 400: case 401: case 403: case 404: case 405: case 411: case 413: case 500: case 503:
        return (int)code;
    default:
        return 200;
    }
}

int gw__adm_respond(struct gw_adm_req *req, int rc, cJSON *data)
{
    int64_t code = rc == 0 ? 0 : gw_error_api_code(rc);
    const char *msg = rc == 0 ? "" : (req->errmsg[0] ? req->errmsg : gw_strerror(rc));

    if (rc != 0) {
        cJSON_Delete(data);
        data = NULL;
    }
    free(req->resp);
    req->resp = NULL;
    req->http_status = rc == GW_E_TIMEOUT ? 504 : gw__adm_http_status(code);
    return gw__adm_envelope(code, msg, data, &req->resp, &req->resp_len);
}

int gw__adm_respond_code(struct gw_adm_req *req, int64_t code, const char *msg)
{
    free(req->resp);
    req->resp = NULL;
    req->http_status = gw__adm_http_status(code);
    return gw__adm_envelope(code, msg, NULL, &req->resp, &req->resp_len);
}

bool gw__adm_parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 20)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned d;

        if (s[i] < '0' || s[i] > '9')
            return false;
        d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool gw__adm_bearer_ok(const char *hdr, const char *token, size_t token_len)
{
    const char *t;
    size_t n;

    if (!hdr || strncasecmp(hdr, "Bearer ", 7) != 0)
        return false;
    t = hdr + 7;
    while (*t == ' ')
        t++;
    n = strlen(t);
    while (n > 0 && t[n - 1] == ' ')
        n--;
    return token_len > 0 && gw__adm_ct_equal(token, token_len, t, n);
}

/* Digits of s up to a non-digit; false when none or on overflow. */
static bool range_num(const char **s, uint64_t *out)
{
    const char *p = *s;

    while (*p >= '0' && *p <= '9')
        p++;
    if (p == *s || !gw__adm_parse_u64(*s, (size_t)(p - *s), out))
        return false;
    *s = p;
    return true;
}

int gw__adm_range_parse(const char *hdr, uint64_t size, uint64_t *first, uint64_t *last)
{
    const char *p;
    uint64_t a, b;

    if (!hdr || !*hdr || strncasecmp(hdr, "bytes=", 6) != 0 || strchr(hdr, ','))
        return 0; /* absent, another unit or several ranges: the whole body is allowed */
    p = hdr + 6;
    while (*p == ' ')
        p++;
    if (*p == '-') { /* suffix: the last b bytes */
        p++;
        if (!range_num(&p, &b) || *p != '\0')
            return 0;
        if (b == 0 || size == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (!range_num(&p, &a) || *p != '-')
        return 0;
    p++;
    if (*p == '\0') {
        b = UINT64_MAX;
    } else if (!range_num(&p, &b) || *p != '\0' || b < a) {
        return 0; /* syntactically invalid: ignored, as RFC 9110 allows */
    }
    if (a >= size)
        return -1;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return 1;
}
