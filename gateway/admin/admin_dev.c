/*
 * DESIGN: the product and device paths of the admin API (DESIGN §7.4), worker threads. Reads use
 * a read transaction of their own; creates go through gw_core_call so the core thread stays
 * the only writer; device/message/send waits on gw_core_device_request for the device's
 * reply. Identity strings are checked here (MQTT topic and username safety) before anything
 * reaches the store.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"
#include "gw_core.h"
#include "gw_error.h"
#include "gw_msg.h"
#include "gw_store.h"

/* productKey and deviceName end up in MQTT topics (/sys/{pk}/{dn}/...), the MQTT username
 * "dn&pk" and the clientId "pk.dn": no '/', '+', '#', '&' or spaces, and no '.' in pk. */
static bool ident_ok(const char *s, bool allow_dot)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '_' || ch == '-' || ch == ':' || ch == '@' || (allow_dot && ch == '.'))
            continue;
        return false;
    }
    return true;
}

static cJSON *product_json(const struct gw_product *p)
{
    cJSON *o = cJSON_CreateObject();

    if (!o || !gw__adm_add_u64(o, "id", p->id) || !cJSON_AddStringToObject(o, "name", p->name) ||
        !cJSON_AddStringToObject(o, "productKey", p->product_key) ||
        !cJSON_AddStringToObject(o, "productSecret", p->product_secret) ||
        !cJSON_AddStringToObject(o, "serializer",
                                 p->serializer == GW_SERIALIZER_BINARY ? "binary" : "json") ||
        !gw__adm_add_i64(o, "createTime", p->create_time_ms)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *device_json(const struct gw_device *d)
{
    cJSON *o = cJSON_CreateObject();

    if (!o || !gw__adm_add_u64(o, "id", d->id) || !gw__adm_add_u64(o, "productId", d->product_id) ||
        !cJSON_AddStringToObject(o, "productKey", d->product_key) ||
        !cJSON_AddStringToObject(o, "deviceName", d->device_name) ||
        !cJSON_AddStringToObject(o, "deviceSecret", d->device_secret) ||
        !cJSON_AddNumberToObject(o, "state", d->state) ||
        !(d->firmware_id ? gw__adm_add_u64(o, "firmwareId", d->firmware_id)
                         : cJSON_AddNullToObject(o, "firmwareId") != NULL) ||
        !gw__adm_add_i64(o, "lastSeenTime", d->last_seen_ms) ||
        !gw__adm_add_i64(o, "createTime", d->create_time_ms)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- product ---- */

static int product_create_fn(struct gw_core_ctx *ctx, void *arg)
{
    return gw_store_product_create(ctx->txn, arg, ctx->now_ms);
}

int gw__adm_product_create(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    struct gw_product *p = calloc(1, sizeof(*p));
    const char *ser = NULL;
    int rc;

    if (!p)
        return -ENOMEM;
    rc = gw__adm_arg_strcpy(req, "name", true, p->name, sizeof(p->name));
    if (rc == 0)
        rc = gw__adm_arg_strcpy(req, "productKey", false, p->product_key,
                                sizeof(p->product_key));
    if (rc == 0)
        rc = gw__adm_arg_str(req, "serializer", false, 16, &ser);
    if (rc == 0 && !ident_ok(p->product_key, false))
        rc = gw__adm_fail(req, GW_E_BAD_FIELD,
                          "productKey: only letters, digits and _ - : @ are allowed");
    if (rc == 0 && ser) {
        if (strcmp(ser, "json") == 0)
            p->serializer = GW_SERIALIZER_JSON;
        else if (strcmp(ser, "binary") == 0)
            p->serializer = GW_SERIALIZER_BINARY;
        else
            rc = gw__adm_fail(req, GW_E_BAD_FIELD, "serializer: must be \"json\" or \"binary\"");
    }
    if (rc == 0)
        rc = gw__adm_call(adm, product_create_fn, p);
    if (rc == GW_E_TIMEOUT)
        return rc; /* p stays allocated: the core may still use it */
    if (rc == 0) {
        *data = product_json(p);
        if (!*data)
            rc = -ENOMEM;
    }
    free(p);
    return rc;
}

int gw__adm_product_get(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    struct gw_product p;
    struct gw_txn *txn;
    uint64_t id = 0;
    const char *pk = NULL;
    int rc;

    rc = gw__adm_arg_id(req, "id", false, &id);
    if (rc == 0)
        rc = gw__adm_arg_str(req, "productKey", false, GW_PK_MAX, &pk);
    if (rc == 0 && !id && !pk)
        rc = gw__adm_fail(req, GW_E_MISSING_FIELD, "id: required");
    if (rc != 0)
        return rc;
    rc = gw__adm_read_begin(adm, &txn);
    if (rc != 0)
        return rc;
    rc = id ? gw_store_product_get(txn, id, &p) : gw_store_product_get_by_key(txn, pk, &p);
    gw_store_txn_abort(txn);
    if (rc == GW_E_NOT_FOUND)
        return 0; /* data null, as the reference answers a missing row */
    if (rc == 0 && !(*data = product_json(&p)))
        rc = -ENOMEM;
    return rc;
}

struct product_page {
    struct gw_adm_page pg;
    const char *name;
    const char *pk;
};

static int product_page_row(void *ctx, const struct gw_product *p)
{
    struct product_page *pp = ctx;
    cJSON *o;

    if ((pp->name && !strstr(p->name, pp->name)) || (pp->pk && strcmp(p->product_key, pp->pk)))
        return 0;
    if (!gw__adm_page_take(&pp->pg))
        return 0;
    o = product_json(p);
    if (!o)
        return -ENOMEM;
    cJSON_AddItemToArray(pp->pg.list, o);
    return 0;
}

int gw__adm_product_page(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    struct product_page pp = { 0 };
    struct gw_txn *txn;
    int rc;

    rc = gw__adm_arg_str(req, "name", false, GW_NAME_MAX, &pp.name);
    if (rc == 0)
        rc = gw__adm_arg_str(req, "productKey", false, GW_PK_MAX, &pp.pk);
    if (rc == 0)
        rc = gw__adm_page_begin(req, &pp.pg);
    if (rc != 0)
        return rc;
    rc = gw__adm_read_begin(adm, &txn);
    if (rc == 0) {
        rc = gw_store_product_iter(txn, true, 0, product_page_row, &pp);
        gw_store_txn_abort(txn);
    }
    if (rc == 0 && !(*data = gw__adm_page_end(&pp.pg)))
        rc = -ENOMEM;
    cJSON_Delete(pp.pg.list);
    return rc;
}

/* ---- device ---- */

static int device_create_fn(struct gw_core_ctx *ctx, void *arg)
{
    return gw_store_device_create(ctx->txn, arg, ctx->now_ms);
}

int gw__adm_device_create(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    struct gw_device *d = calloc(1, sizeof(*d));
    int rc;

    if (!d)
        return -ENOMEM;
    rc = gw__adm_arg_id(req, "productId", true, &d->product_id);
    if (rc == 0)
        rc = gw__adm_arg_strcpy(req, "deviceName", true, d->device_name, sizeof(d->device_name));
    if (rc == 0)
        rc = gw__adm_arg_strcpy(req, "deviceSecret", false, d->device_secret,
                                sizeof(d->device_secret));
    if (rc == 0 && !ident_ok(d->device_name, true))
        rc = gw__adm_fail(req, GW_E_BAD_FIELD,
                          "deviceName: only letters, digits and _ - . : @ are allowed");
    if (rc == 0)
        rc = gw__adm_call(adm, device_create_fn, d);
    if (rc == GW_E_TIMEOUT)
        return rc; /* d stays allocated: the core may still use it */
    if (rc == 0) {
        *data = device_json(d);
        if (!*data)
            rc = -ENOMEM;
    }
    free(d);
    return rc;
}

/* Adds properties (latest values) and firmwareVersion to a device object. */
static int device_extras(struct gw_admin *adm, struct gw_txn *txn, const struct gw_device *d,
                         cJSON *o)
{
    struct gw_firmware fw;
    char *props = NULL;
    cJSON *pj = NULL;
    int rc = gw_store_device_props_get(txn, d->id, &props);

    if (rc == 0) {
        pj = cJSON_Parse(props);
        free(props);
    } else if (rc != GW_E_NOT_FOUND) {
        return rc;
    }
    if (!pj)
        pj = cJSON_CreateObject();
    if (!pj)
        return -ENOMEM;
    cJSON_AddItemToObject(o, "properties", pj);
    if (d->firmware_id && gw_store_firmware_get(txn, d->firmware_id, &fw) == 0)
        cJSON_AddStringToObject(o, "firmwareVersion", fw.version);
    else
        cJSON_AddNullToObject(o, "firmwareVersion");
    cJSON_AddBoolToObject(o, "online", gw_core_device_online(adm->core, d->id));
    return 0;
}

int gw__adm_device_get(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    struct gw_device d;
    struct gw_txn *txn;
    uint64_t id = 0;
    const char *pk = NULL, *dn = NULL;
    cJSON *o;
    int rc;

    rc = gw__adm_arg_id(req, "id", false, &id);
    if (rc == 0 && !id) {
        rc = gw__adm_arg_str(req, "productKey", true, GW_PK_MAX, &pk);
        if (rc == 0)
            rc = gw__adm_arg_str(req, "deviceName", true, GW_DN_MAX, &dn);
        if (rc == GW_E_MISSING_FIELD)
            rc = gw__adm_fail(req, rc, "id: required (or productKey and deviceName)");
    }
    if (rc != 0)
        return rc;
    rc = gw__adm_read_begin(adm, &txn);
    if (rc != 0)
        return rc;
    rc = id ? gw_store_device_get(txn, id, &d) : gw_store_device_get_by_key(txn, pk, dn, &d);
    if (rc == 0) {
        o = device_json(&d);
        rc = o ? device_extras(adm, txn, &d, o) : -ENOMEM;
        if (rc == 0)
            *data = o;
        else
            cJSON_Delete(o);
    } else if (rc == GW_E_NOT_FOUND) {
        rc = 0; /* data null */
    }
    gw_store_txn_abort(txn);
    return rc;
}

struct device_page {
    struct gw_adm_page pg;
    const char *name;
    int64_t state;
};

static int device_page_row(void *ctx, const struct gw_device *d)
{
    struct device_page *dp = ctx;
    cJSON *o;

    if ((dp->name && !strstr(d->device_name, dp->name)) || (dp->state >= 0 && d->state != dp->state))
        return 0;
    if (!gw__adm_page_take(&dp->pg))
        return 0;
    o = device_json(d);
    if (!o)
        return -ENOMEM;
    cJSON_AddItemToArray(dp->pg.list, o);
    return 0;
}

int gw__adm_device_page(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    struct device_page dp = { .state = -1 };
    struct gw_txn *txn;
    uint64_t product_id = 0;
    int rc;

    rc = gw__adm_arg_id(req, "productId", false, &product_id);
    if (rc == 0)
        rc = gw__adm_arg_str(req, "deviceName", false, GW_DN_MAX, &dp.name);
    if (rc == 0)
        rc = gw__adm_arg_int(req, "state", false, 0, 2, &dp.state);
    if (rc == 0)
        rc = gw__adm_page_begin(req, &dp.pg);
    if (rc != 0)
        return rc;
    rc = gw__adm_read_begin(adm, &txn);
    if (rc == 0) {
        if (product_id)
            rc = gw_store_device_iter_product(txn, product_id, device_page_row, &dp);
        else
            rc = gw_store_device_iter(txn, true, 0, device_page_row, &dp);
        gw_store_txn_abort(txn);
    }
    if (rc == 0 && !(*data = gw__adm_page_end(&dp.pg)))
        rc = -ENOMEM;
    cJSON_Delete(dp.pg.list);
    return rc;
}

/* ---- device/message/send ---- */

int gw__adm_device_send(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    uint64_t id = 0;
    const char *method = NULL;
    int64_t timeout = 10000;
    struct gw_msg *reply = NULL;
    cJSON *params = NULL, *o;
    int rc;

    rc = gw__adm_arg_id(req, "deviceId", true, &id);
    if (rc == 0)
        rc = gw__adm_arg_str(req, "method", true, 64, &method);
    if (rc == 0)
        rc = gw__adm_arg_int(req, "timeoutMs", false, 1, GW_ADM_SEND_TIMEOUT_MAX, &timeout);
    if (rc != 0)
        return rc;
    if (req->json) {
        params = cJSON_DetachItemFromObjectCaseSensitive(req->json, "params");
        if (params && cJSON_IsNull(params)) {
            cJSON_Delete(params);
            params = NULL;
        }
    }
    rc = gw_core_device_request(adm->core, id, method, params, (int)timeout, &reply);
    if (rc == GW_E_UNKNOWN_METHOD)
        return gw__adm_fail(req, rc, "method: not a downstream method: %s", method);
    if (rc == GW_E_TIMEOUT)
        return gw__adm_fail(req, rc, "the device did not answer within %lld ms",
                            (long long)timeout);
    if (rc != 0)
        return rc;
    o = cJSON_CreateObject();
    if (o && cJSON_AddNumberToObject(o, "code", reply->has_code ? reply->code : 0) &&
        cJSON_AddStringToObject(o, "msg", reply->msg ? reply->msg : "") &&
        cJSON_AddStringToObject(o, "requestId", gw_msg_wire_id(reply))) {
        cJSON *d = reply->data ? cJSON_Duplicate(reply->data, true) : cJSON_CreateNull();

        if (d) {
            cJSON_AddItemToObject(o, "data", d);
            *data = o;
            o = NULL;
        }
    }
    cJSON_Delete(o);
    gw_msg_unref(reply);
    return *data ? 0 : -ENOMEM;
}
