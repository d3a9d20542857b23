/*
 * DESIGN: builders and the reference count of struct gw_msg (gw_msg.h). Owns the single
 * allocation of each message: the struct, then its strings packed after it, plus the
 * params/data trees it was handed. Any thread; no state of its own.
 *
 * Every builder goes through gw_msg_new, which is the one place the invariants of gw_msg.h
 * are checked, so a message that exists can be encoded by every codec and re-decoded to the
 * same content.
 */
#include "gw_msg.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_error.h"
#include "gw_util.h"

/* A borrowed string checked against a byte limit and UTF-8. */
static int gw_msg_check_str(const char *s, size_t max, size_t *len_out)
{
    size_t len = s ? strlen(s) : 0;

    *len_out = len;
    if (len > max)
        return GW_E_BAD_FIELD;
    if (len && !gw_utf8_valid(s, len))
        return GW_E_BAD_UTF8;
    return 0;
}

static int gw_msg_key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Duplicate keys are refused: cJSON_GetObjectItem sees the first, a consumer walking the
 * object sees both, and cJSON_Compare finds such an object unequal to itself. Sorting the
 * key pointers keeps a 64 KiB object of short keys at n log n.
 */
static int gw_msg_check_keys(const cJSON *object)
{
    const char *small[8], **keys = small;
    size_t n = 0, i = 0;
    int rc = 0;

    for (const cJSON *c = object->child; c; c = c->next)
        n++;
    if (n < 2)
        return 0;
    if (n > sizeof(small) / sizeof(small[0]) && !(keys = malloc(n * sizeof(*keys))))
        return -ENOMEM;
    for (const cJSON *c = object->child; c; c = c->next)
        keys[i++] = c->string ? c->string : "";
    qsort(keys, n, sizeof(*keys), gw_msg_key_cmp);
    for (i = 1; i < n && rc == 0; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0)
            rc = GW_E_BAD_JSON;
    if (keys != small)
        free(keys);
    return rc;
}

/*
 * Depth (containers nested, a scalar is 0), number range and unique keys of a tree.
 * Recursion is bounded: it stops as soon as depth passes the limit.
 */
static int gw_msg_check_tree(const cJSON *item, int depth)
{
    for (; item; item = item->next) {
        int rc;

        if (cJSON_IsNumber(item) &&
            (!isfinite(item->valuedouble) || fabs(item->valuedouble) > GW_MSG_NUMBER_MAX))
            return GW_E_BAD_FIELD;
        if (!cJSON_IsObject(item) && !cJSON_IsArray(item))
            continue;
        if (depth + 1 > GW_MSG_TREE_DEPTH_MAX)
            return GW_E_TOO_DEEP;
        if (cJSON_IsObject(item) && (rc = gw_msg_check_keys(item)))
            return rc;
        if ((rc = gw_msg_check_tree(item->child, depth + 1)))
            return rc;
    }
    return 0;
}

/* Checks one owned tree in place; JSON null becomes NULL (absent). */
static int gw_msg_take_tree(cJSON **tree)
{
    if (*tree && cJSON_IsNull(*tree)) {
        cJSON_Delete(*tree);
        *tree = NULL;
    }
    if (!*tree)
        return 0;
    /* check the root alone: next/prev of a detached root are NULL */
    return gw_msg_check_tree(*tree, 0);
}

static int gw_msg_check_params(const struct gw_method_info *info, const cJSON *params)
{
    if (!params)
        return 0;
    if (cJSON_IsObject(params) && (info->params & GW_METHOD_PARAMS_OBJECT))
        return 0;
    if (cJSON_IsArray(params) && (info->params & GW_METHOD_PARAMS_ARRAY))
        return 0;
    return GW_E_BAD_PARAMS;
}

/* Copies s (len bytes + NUL) to *cursor and advances it; returns the copy. */
static const char *gw_msg_pack(char **cursor, const char *s, size_t len)
{
    char *dst = *cursor;

    if (len)
        memcpy(dst, s, len);
    dst[len] = '\0';
    *cursor = dst + len + 1;
    return dst;
}

int gw_msg_new(const struct gw_msg_fields *f, struct gw_msg **out)
{
    const struct gw_method_info *info = gw_method_get(f->method);
    cJSON *params = f->params, *data = f->data;
    size_t rid_len, pk_len, dn_len, msg_len, size;
    struct gw_msg *m;
    char *cursor;
    int rc;

    *out = NULL;
    if (!info) {
        rc = GW_E_UNKNOWN_METHOD;
        goto err_free_trees;
    }
    if ((rc = gw_msg_check_str(f->request_id, GW_MSG_REQUEST_ID_MAX, &rid_len)) ||
        (rc = gw_msg_check_str(f->identity.product_key, GW_MSG_PK_MAX, &pk_len)) ||
        (rc = gw_msg_check_str(f->identity.device_name, GW_MSG_DN_MAX, &dn_len)) ||
        (rc = gw_msg_check_str(f->msg, GW_MSG_TEXT_MAX, &msg_len)))
        goto err_free_trees;
    if (f->report_time < 0 || f->report_time > GW_MSG_REPORT_TIME_MAX) {
        rc = GW_E_BAD_FIELD;
        goto err_free_trees;
    }
    if ((rc = gw_msg_take_tree(&params)) || (rc = gw_msg_take_tree(&data)))
        goto err_free_trees;
    if ((rc = gw_msg_check_params(info, params)))
        goto err_free_trees;

    size = sizeof(*m) + rid_len + 1 + pk_len + 1 + dn_len + 1 + (f->msg ? msg_len + 1 : 0);
    m = calloc(1, size);
    if (!m) {
        rc = -ENOMEM;
        goto err_free_trees;
    }
    atomic_init(&m->refs, 1);
    m->method = info->method;
    cursor = m->strings;
    /* no device id: alias the gateway id so request_id follows gw_msg_assign_id */
    m->request_id = rid_len ? gw_msg_pack(&cursor, f->request_id, rid_len) : m->id;
    m->product_key = gw_msg_pack(&cursor, f->identity.product_key, pk_len);
    m->device_name = gw_msg_pack(&cursor, f->identity.device_name, dn_len);
    m->msg = f->msg ? gw_msg_pack(&cursor, f->msg, msg_len) : NULL;
    assert((size_t)(cursor - (char *)m) <= size);
    m->device_id = f->identity.device_id;
    m->params = params;
    m->data = data;
    m->has_code = f->has_code;
    m->code = f->has_code ? f->code : 0;
    m->report_time = f->report_time;
    m->origin = f->origin;
    *out = m;
    return 0;

err_free_trees:
    cJSON_Delete(params);
    cJSON_Delete(data);
    return rc;
}

int gw_msg_new_request(enum gw_method method, const char *request_id, const char *pk,
                       const char *dn, cJSON *params, struct gw_msg **out)
{
    struct gw_msg_fields f = {
        .method = method,
        .request_id = request_id,
        .identity = { .product_key = pk, .device_name = dn },
        .params = params,
    };

    return gw_msg_new(&f, out);
}

int gw_msg_new_reply(const struct gw_msg *req, int32_t code, const char *msg, cJSON *data,
                     struct gw_msg **out)
{
    struct gw_msg_fields f = {
        .method = req->method,
        .request_id = gw_msg_wire_id(req),
        .identity = { .product_key = req->product_key,
                      .device_name = req->device_name,
                      .device_id = req->device_id },
        .data = data,
        .has_code = true,
        .code = code,
        .msg = msg,
        .origin = req->origin,
    };

    return gw_msg_new(&f, out);
}

int gw_msg_copy_with_identity(const struct gw_msg *src, const struct gw_msg_identity *ident,
                              struct gw_msg **out)
{
    struct gw_msg_fields f = {
        .method = src->method,
        /* keep the alias when the device sent no id: the copy's request_id follows its id */
        .request_id = src->request_id == src->id ? NULL : src->request_id,
        .identity = *ident,
        .has_code = src->has_code,
        .code = src->code,
        .msg = src->msg,
        .report_time = src->report_time,
        .origin = src->origin,
    };
    int rc = -ENOMEM;

    *out = NULL;
    if (src->params && !(f.params = cJSON_Duplicate(src->params, 1)))
        goto err_free_trees;
    if (src->data && !(f.data = cJSON_Duplicate(src->data, 1)))
        goto err_free_trees;
    rc = gw_msg_new(&f, out); /* takes the copies */
    if (rc == 0)
        memcpy((*out)->id, src->id, sizeof(src->id));
    return rc;

err_free_trees:
    cJSON_Delete(f.params);
    return rc;
}

struct gw_msg *gw_msg_ref(struct gw_msg *msg)
{
    /* relaxed: taking a reference needs no ordering, the caller already sees the message */
    atomic_fetch_add_explicit(&msg->refs, 1, memory_order_relaxed);
    return msg;
}

void gw_msg_unref(struct gw_msg *msg)
{
    if (!msg)
        return;
    /* acq_rel: every thread's reads happen before the free on the last thread */
    if (atomic_fetch_sub_explicit(&msg->refs, 1, memory_order_acq_rel) != 1)
        return;
    cJSON_Delete(msg->params);
    cJSON_Delete(msg->data);
    free(msg);
}

/* The process's id nonce (0 = not drawn yet) and counter. One getrandom per process instead
 * of one per message: at 10 000 MQTT reports a second that syscall was measurable. */
static _Atomic uint64_t id_nonce;
static _Atomic uint64_t id_counter;

int gw_msg_assign_id(struct gw_msg *msg)
{
    uint64_t nonce = atomic_load_explicit(&id_nonce, memory_order_acquire);

    if (nonce == 0) {
        uint64_t expected = 0;
        int rc;

        while (nonce == 0)
            if ((rc = gw_random_bytes(&nonce, sizeof(nonce))) != 0)
                return rc;
        /* the first thread's draw wins; a thread that lost the race adopts it */
        if (!atomic_compare_exchange_strong_explicit(&id_nonce, &expected, nonce,
                                                     memory_order_acq_rel, memory_order_acquire))
            nonce = expected;
    }
    gw_msg_assign_id_seq(msg, nonce,
                         atomic_fetch_add_explicit(&id_counter, 1, memory_order_relaxed));
    return 0;
}

void gw_msg_assign_id_seq(struct gw_msg *msg, uint64_t hi, uint64_t lo)
{
    assert(atomic_load_explicit(&msg->refs, memory_order_relaxed) == 1);
    snprintf(msg->id, sizeof(msg->id), "%016" PRIx64 "%016" PRIx64, hi, lo);
}

bool gw_msg_is_reply(const struct gw_msg *msg)
{
    return msg->has_code;
}

const char *gw_msg_method_name(const struct gw_msg *msg)
{
    return gw_method_name(msg->method);
}

const char *gw_msg_wire_id(const struct gw_msg *msg)
{
    return msg->request_id[0] ? msg->request_id : msg->id;
}

static bool gw_msg_tree_equal(const cJSON *a, const cJSON *b)
{
    if (!a || !b)
        return a == b;
    return cJSON_Compare(a, b, 1);
}

static bool gw_msg_str_equal(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

bool gw_msg_equal_content(const struct gw_msg *a, const struct gw_msg *b)
{
    return a->method == b->method && strcmp(gw_msg_wire_id(a), gw_msg_wire_id(b)) == 0 &&
           strcmp(a->product_key, b->product_key) == 0 &&
           strcmp(a->device_name, b->device_name) == 0 && a->device_id == b->device_id &&
           a->has_code == b->has_code && a->code == b->code && gw_msg_str_equal(a->msg, b->msg) &&
           a->report_time == b->report_time && gw_msg_tree_equal(a->params, b->params) &&
           gw_msg_tree_equal(a->data, b->data);
}
