/*
 * DESIGN: what the core does with each upstream device message (DESIGN §3, §4, §5.4).
 *
 * Core thread only, inside the batch's write transaction. Every handler either changes the
 * store through the storage API / OTA engine or changes nothing; replies are built here and
 * queued in the outbox, so a device hears back only after its message is durable.
 *
 * Identity: the adapter put the session's identity (pk, dn) on the message; the payload
 * never overrides it. The device row is looked up by (pk, dn) per message (an LMDB point
 * read, ~1-2 us).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "gw_auth.h"
#include "gw_error.h"
#include "gw_jwt.h"
#include "gw_log.h"

/* Token lifetime for HTTP, CoAP and UDP sessions. */
#define GW_CORE_TOKEN_TTL_S (24 * 3600)

/* Queues a reply to req (code 0 or an error code) on the adapter it came from. data taken. */
static void gw__reply(struct gw_core *core, const struct gw_msg *req, int err, cJSON *data)
{
    struct gw_msg *rep = NULL;
    int32_t code = (int32_t)gw_error_api_code(err);
    int rc;

    if (!req->origin.adapter) {
        cJSON_Delete(data);
        return;
    }
    rc = gw_msg_new_reply(req, code, err ? gw_strerror(err) : "success", data, &rep);
    if (rc) {
        gw_log(GW_LOG_WARN, GW_CORE_TAG, "cannot build reply to %s: %s", gw_msg_method_name(req),
               gw_strerror(rc));
        return;
    }
    gw__core_outbox_add(core, req->origin.adapter, rep, 0, 0);
}

/* Replies when the method's policy asks for it (always, or only on error). */
static void gw__reply_policy(struct gw_core *core, const struct gw_msg *req, int err)
{
    const struct gw_method_info *mi = gw_method_get(req->method);

    if (!mi)
        return;
    if (mi->reply == GW_METHOD_REPLY_YES || (mi->reply == GW_METHOD_REPLY_ON_ERROR && err))
        gw__reply(core, req, err, NULL);
}

/* Merges a flat map of property values into the device's latest values. */
static int gw__props_merge(struct gw_txn *txn, uint64_t device_id, const cJSON *params)
{
    char *text = NULL, *out = NULL;
    cJSON *cur = NULL;
    int rc;

    if (!params)
        return 0;
    if (!cJSON_IsObject(params))
        return GW_E_BAD_PARAMS;
    rc = gw_store_device_props_get(txn, device_id, &text);
    if (rc)
        return rc;
    cur = cJSON_Parse(text);
    if (!cur || !cJSON_IsObject(cur)) {
        cJSON_Delete(cur);
        cur = cJSON_CreateObject();
    }
    for (const cJSON *p = params->child; p && cur; p = p->next) {
        cJSON *dup = cJSON_Duplicate(p, 1);
        if (!dup) {
            rc = -ENOMEM;
            goto out;
        }
        if (cJSON_GetObjectItemCaseSensitive(cur, p->string))
            cJSON_ReplaceItemInObjectCaseSensitive(cur, p->string, dup);
        else
            cJSON_AddItemToObject(cur, p->string, dup);
    }
    out = cur ? cJSON_PrintUnformatted(cur) : NULL;
    if (!out) {
        rc = -ENOMEM;
        goto out;
    }
    rc = gw_store_device_props_put(txn, device_id, out);
out:
    free(out);
    free(text);
    cJSON_Delete(cur);
    return rc;
}

static const char *gw__str(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static int gw__on_progress(struct gw_core *core, struct gw_txn *txn, const struct gw_device *dev,
                           const struct gw_msg *msg, int64_t now_ms)
{
    const cJSON *p = msg->params;
    const char *version = gw__str(p, "version");
    int64_t status, progress = 0;
    const cJSON *pr;

    if (!cJSON_IsObject(p) || !version)
        return GW_E_MISSING_FIELD;
    if (gw_json_int(cJSON_GetObjectItemCaseSensitive(p, "status"), -1000000, 1000000, &status))
        return GW_E_PROGRESS_BAD_STATUS;
    pr = cJSON_GetObjectItemCaseSensitive(p, "progress");
    if (pr && gw_json_int(pr, -1000000, 1000000, &progress))
        return GW_E_PROGRESS_BAD_VALUE;
    return gw_ota_on_progress(core->ota, txn, dev->id, version, (int)status, (int)progress,
                              gw__str(p, "description"), now_ms, &core->actions);
}

/* `auth` (TCP, UDP, WebSocket, Modbus server login): check the HMAC password, bind the
 * session, answer with the identity and a token. */
static void gw__on_auth(struct gw_core *core, struct gw_txn *txn, const struct gw_msg *msg,
                        int64_t now_ms)
{
    const cJSON *p = msg->params;
    const char *username = gw__str(p, "username"), *password = gw__str(p, "password");
    struct gw_auth_identity id;
    struct gw_device dev;
    cJSON *data = NULL;
    char *token = NULL;
    int rc;

    if (!cJSON_IsObject(p) || !username || !password) {
        rc = GW_E_MISSING_FIELD;
        goto out;
    }
    rc = gw_auth_parse_username(username, &id, NULL);
    if (rc)
        goto out;
    rc = gw_store_device_get_by_key(txn, id.product_key, id.device_name, &dev);
    if (rc) {
        rc = GW_E_AUTH_FAILED; /* do not tell who exists */
        goto out;
    }
    rc = gw_auth_check(dev.product_key, dev.device_name, dev.device_secret, password);
    if (rc)
        goto out;
    rc = gw__core_session_bind(core, txn, &dev, msg->origin.adapter, msg->origin.session, now_ms);
    if (rc)
        goto out;
    rc = gw_jwt_create(core->jwt_secret, sizeof(core->jwt_secret), dev.product_key,
                       dev.device_name, now_ms / 1000 + GW_CORE_TOKEN_TTL_S, &token);
    if (rc)
        goto out;
    data = cJSON_CreateObject();
    if (!data || !cJSON_AddStringToObject(data, "productKey", dev.product_key) ||
        !cJSON_AddStringToObject(data, "deviceName", dev.device_name) ||
        !cJSON_AddStringToObject(data, "token", token)) {
        cJSON_Delete(data);
        data = NULL;
        rc = -ENOMEM;
    }
out:
    free(token);
    if (rc)
        gw_log(GW_LOG_INFO, GW_CORE_TAG, "auth refused for %s: %s", username ? username : "?",
               gw_strerror(rc));
    gw__reply(core, msg, rc, data);
}

/* thing.auth.register: dynamic registration signed with the product secret. */
static void gw__on_register(struct gw_core *core, struct gw_txn *txn, const struct gw_msg *msg,
                            int64_t now_ms)
{
    const cJSON *p = msg->params;
    const char *pk = gw__str(p, "productKey"), *dn = gw__str(p, "deviceName");
    const char *sign = gw__str(p, "sign");
    struct gw_product prod;
    struct gw_device dev = { 0 };
    cJSON *data = NULL;
    int rc;

    if (!pk || !dn || !sign) {
        rc = GW_E_MISSING_FIELD;
        goto out;
    }
    rc = gw_store_product_get_by_key(txn, pk, &prod);
    if (rc) {
        rc = GW_E_PRODUCT_NOT_EXISTS;
        goto out;
    }
    rc = gw_auth_register_check(pk, dn, prod.product_secret, sign);
    if (rc)
        goto out;
    rc = gw_store_device_get_by_key(txn, pk, dn, &dev);
    if (rc == GW_E_NOT_FOUND) {
        dev = (struct gw_device){ .product_id = prod.id };
        snprintf(dev.device_name, sizeof(dev.device_name), "%s", dn);
        rc = gw_store_device_create(txn, &dev, now_ms);
    }
    if (rc)
        goto out;
    data = cJSON_CreateObject();
    if (!data || !cJSON_AddStringToObject(data, "productKey", dev.product_key) ||
        !cJSON_AddStringToObject(data, "deviceName", dev.device_name) ||
        !cJSON_AddStringToObject(data, "deviceSecret", dev.device_secret)) {
        cJSON_Delete(data);
        data = NULL;
        rc = -ENOMEM;
    }
out:
    gw__reply(core, msg, rc, data);
}

/* thing.event.property.pack.post: the gateway's own properties plus its sub-devices'. */
static int gw__on_pack(struct gw_txn *txn, const struct gw_device *dev, const cJSON *p)
{
    const cJSON *subs;
    int rc;

    if (!cJSON_IsObject(p))
        return GW_E_BAD_PARAMS;
    rc = gw__props_merge(txn, dev->id, cJSON_GetObjectItemCaseSensitive(p, "properties"));
    if (rc)
        return rc;
    subs = cJSON_GetObjectItemCaseSensitive(p, "subDevices");
    for (const cJSON *s = cJSON_IsArray(subs) ? subs->child : NULL; s; s = s->next) {
        const cJSON *ident = cJSON_GetObjectItemCaseSensitive(s, "identity");
        const char *pk = gw__str(ident, "productKey"), *dn = gw__str(ident, "deviceName");
        struct gw_device sub;
        if (!pk || !dn || gw_store_device_get_by_key(txn, pk, dn, &sub) != 0)
            return GW_E_DEVICE_NOT_EXISTS;
        rc = gw__props_merge(txn, sub.id, cJSON_GetObjectItemCaseSensitive(s, "properties"));
        if (rc)
            return rc;
    }
    return 0;
}

void gw__core_handle_msg(struct gw_core *core, struct gw_txn *txn, struct gw_msg *msg,
                         int64_t now_ms)
{
    struct gw_device dev;
    int rc = 0;

    if (gw_msg_is_reply(msg)) {
        if (!gw__core_request_reply(core, msg))
            gw_log(GW_LOG_DEBUG, GW_CORE_TAG, "reply %s to no pending request",
                   gw_msg_wire_id(msg));
        return;
    }
    if (msg->method == GW_METHOD_AUTH) {
        gw__on_auth(core, txn, msg, now_ms);
        return;
    }
    if (msg->method == GW_METHOD_AUTH_REGISTER || msg->method == GW_METHOD_AUTH_REGISTER_SUB) {
        gw__on_register(core, txn, msg, now_ms);
        return;
    }
    rc = gw_store_device_get_by_key(txn, msg->product_key, msg->device_name, &dev);
    if (rc) {
        rc = GW_E_DEVICE_NOT_EXISTS;
        goto reply;
    }
    switch (msg->method) {
    case GW_METHOD_STATE_UPDATE: {
        int64_t state = 0;
        rc = gw_json_int(cJSON_GetObjectItemCaseSensitive(msg->params, "state"), 1, 2, &state);
        if (rc)
            break;
        if (state == GW_DEVICE_ONLINE)
            rc = gw__core_session_bind(core, txn, &dev, msg->origin.adapter,
                                       msg->origin.session, now_ms);
        else
            rc = gw_ota_on_device_offline(core->ota, txn, dev.id, now_ms, &core->actions);
        break;
    }
    case GW_METHOD_PROPERTY_POST:
        rc = gw__props_merge(txn, dev.id, msg->params);
        break;
    case GW_METHOD_EVENT_PROPERTY_PACK_POST:
        rc = gw__on_pack(txn, &dev, msg->params);
        break;
    case GW_METHOD_EVENT_POST:
        gw_log(GW_LOG_DEBUG, GW_CORE_TAG, "event from %s/%s", dev.product_key, dev.device_name);
        break;
    case GW_METHOD_OTA_PROGRESS:
        rc = gw__on_progress(core, txn, &dev, msg, now_ms);
        break;
    case GW_METHOD_TOPO_ADD:
    case GW_METHOD_TOPO_DELETE:
    case GW_METHOD_TOPO_GET:
        rc = -ENOTSUP; /* sub-device topology is not kept yet */
        break;
    default:
        rc = GW_E_UNKNOWN_METHOD; /* a downstream method sent upstream */
        break;
    }
reply:
    if (rc && rc != GW_E_RECORD_NO_ACTIVE)
        gw_log(GW_LOG_DEBUG, GW_CORE_TAG, "%s from %s/%s: %s", gw_msg_method_name(msg),
               msg->product_key, msg->device_name, gw_strerror(rc));
    gw__reply_policy(core, msg, rc);
}
