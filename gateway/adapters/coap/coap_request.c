/*
 * DESIGN: the CoAP request side (REFERENCE §4.5): POST /auth, POST /topic/sys/{pk}/{dn}/...,
 * the routing of GETs (device resources, firmware), and the answers that wait for the core.
 *
 * CoAP thread only (libcoap handlers and the adapter loop).
 *
 * Waiting without blocking: a request the core must answer (auth, methods with a reply) gets
 * a fresh handle, its message is posted with origin.session = handle, and libcoap's async
 * support turns the exchange into a separate response (RFC 7252 §5.2.2): an empty ACK now,
 * the answer when the core's reply arrives (coap_async_trigger re-runs the handler, which
 * finds the reply through the handle kept as the async's app data). A reply that has not
 * come within GW_COAP_REPLY_TIMEOUT_MS is answered 5.03. Pending entries hold a session
 * reference, so the session outlives the wait; they sit in a tree by handle and in a list
 * ordered by deadline (deadlines only grow, so expiry looks at the head only).
 *
 * Answers carry the reference's envelope {"code","msg","data"} as application/json; the
 * CoAP code follows the envelope code (0 → 2.05, 400 → 4.00, 401 → 4.01, 403 → 4.03,
 * 404 and unknown device → 4.04, other business codes → 4.00, overload → 5.03, else 5.00).
 * Methods without a reply are answered at once with data {"messageId"}; a late error reply
 * (a refused thing.ota.progress) goes to the device's downstream registration instead.
 */
#include <errno.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coap_internal.h"
#include "gw_auth.h"
#include "gw_codec.h"
#include "gw_core.h"
#include "gw_error.h"
#include "gw_jwt.h"
#include "gw_log.h"
#include "gw_util.h"

#define GW_COAP_CODE_DEVICE_NOT_EXISTS 1050003000 /* → 4.04 */

struct gw__coap_pending {
    uint64_t handle;
    struct gw__coap_pending *prev, *next; /* deadline order */
    coap_session_t *session;              /* a reference */
    uint8_t token[GW_COAP_CTOKEN_MAX];
    size_t token_len;
    int64_t deadline_ms;
    struct gw_msg *reply; /* the core's answer, once it came */
    int err;              /* or why there is none (timeout, stop) */
};

static int cmp_pending(const void *x, const void *y)
{
    const struct gw__coap_pending *p = x, *q = y;

    return p->handle < q->handle ? -1 : p->handle > q->handle;
}

static struct gw__coap_pending *pending_find(struct gw__coap *a, uint64_t handle)
{
    struct gw__coap_pending key = {.handle = handle};
    void *node = tfind(&key, &a->pending, cmp_pending);

    return node ? *(struct gw__coap_pending **)node : NULL;
}

static void pending_free_one(struct gw__coap_pending *p)
{
    coap_session_release(p->session);
    gw_msg_unref(p->reply);
    free(p);
}

static void pending_remove(struct gw__coap *a, struct gw__coap_pending *p)
{
    tdelete(p, &a->pending, cmp_pending);
    if (p->prev)
        p->prev->next = p->next;
    else
        a->pend_head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        a->pend_tail = p->prev;
    a->n_pending--;
    pending_free_one(p);
}

/* ---- envelopes ---- */

static coap_pdu_code_t coap_code_for(int64_t code)
{
    switch (code) {
    case 0:
        return COAP_RESPONSE_CODE(205);
    case 400:
    case 401:
    case 403:
    case 404:
    case 503:
        return (coap_pdu_code_t)COAP_RESPONSE_CODE(code);
    case GW_COAP_CODE_DEVICE_NOT_EXISTS:
        return COAP_RESPONSE_CODE(404);
    default:
        return code >= 1000000000 ? COAP_RESPONSE_CODE(400) : COAP_RESPONSE_CODE(500);
    }
}

static void release_text(coap_session_t *session, void *app_ptr)
{
    (void)session;
    cJSON_free(app_ptr);
}

static void respond_full(coap_resource_t *resource, coap_session_t *session,
                         const coap_pdu_t *request, coap_pdu_t *resp, coap_pdu_code_t coap_code,
                         int64_t code, const char *msg, const cJSON *data)
{
    cJSON *env = cJSON_CreateObject();
    cJSON *d = data ? cJSON_Duplicate(data, 1) : cJSON_CreateNull();
    char *text = NULL;
    uint8_t buf[4];

    if (env && d && cJSON_AddNumberToObject(env, "code", (double)code) &&
        cJSON_AddStringToObject(env, "msg", msg ? msg : "")) {
        cJSON_AddItemToObject(env, "data", d);
        d = NULL;
        text = cJSON_PrintUnformatted(env);
    }
    cJSON_Delete(d);
    cJSON_Delete(env);
    if (!text) {
        coap_pdu_set_code(resp, COAP_RESPONSE_CODE(500));
        return;
    }
    coap_pdu_set_code(resp, coap_code);
    if (resource) {
        /* Block2 when the envelope is larger than one datagram; text freed by libcoap */
        coap_add_data_large_response(resource, session, request, resp, NULL,
                                     COAP_MEDIATYPE_APPLICATION_JSON, -1, 0, strlen(text),
                                     (const uint8_t *)text, release_text, text);
        return;
    }
    coap_add_option(resp, COAP_OPTION_CONTENT_FORMAT,
                    coap_encode_var_safe(buf, sizeof(buf), COAP_MEDIATYPE_APPLICATION_JSON), buf);
    coap_add_data(resp, strlen(text), (const uint8_t *)text);
    cJSON_free(text);
}

void gw__coap_respond(coap_resource_t *resource, coap_session_t *session, const coap_pdu_t *request,
                      coap_pdu_t *resp, int64_t code, const char *msg, const cJSON *data)
{
    respond_full(resource, session, request, resp, coap_code_for(code), code, msg, data);
}

void gw__coap_respond_err(coap_resource_t *resource, coap_session_t *session,
                          const coap_pdu_t *request, coap_pdu_t *resp, int err)
{
    int64_t code = gw_error_api_code(err);
    bool busy = err == -EAGAIN || err == GW_E_QUEUE_FULL || err == GW_E_SHUTDOWN ||
                err == GW_E_TIMEOUT || err == -ENOMEM;

    respond_full(resource, session, request, resp,
                 busy ? COAP_RESPONSE_CODE(503) : coap_code_for(code), code, gw_strerror(err),
                 NULL);
}

/* ---- paths and tokens ---- */

/* "topic/sys/{pk}/{dn}/{tail}" (libcoap joins the Uri-Path options with '/'). */
static int parse_topic(const char *p, size_t len, struct gw__coap_topic *t)
{
    static const char prefix[] = "topic/sys/";
    const char *pk, *dn, *end = p + len, *slash;

    memset(t, 0, sizeof(*t));
    if (len <= sizeof(prefix) - 1 || memcmp(p, prefix, sizeof(prefix) - 1) != 0)
        return GW_E_BAD_TOPIC;
    pk = p + sizeof(prefix) - 1;
    slash = memchr(pk, '/', (size_t)(end - pk));
    if (!slash || slash == pk || (size_t)(slash - pk) > GW_MSG_PK_MAX)
        return GW_E_BAD_TOPIC;
    memcpy(t->pk, pk, (size_t)(slash - pk));
    dn = slash + 1;
    slash = memchr(dn, '/', (size_t)(end - dn));
    if (!slash || slash == dn || (size_t)(slash - dn) > GW_MSG_DN_MAX || slash + 1 == end)
        return GW_E_BAD_TOPIC;
    memcpy(t->dn, dn, (size_t)(slash - dn));
    t->tail = slash + 1;
    t->tail_len = (size_t)(end - t->tail);
    if (gw_auth_identity_check(t->pk, t->dn, NULL))
        return GW_E_BAD_TOPIC;
    return 0;
}

int gw__coap_check_token(struct gw__coap *a, const coap_session_t *session,
                         const coap_pdu_t *request, const struct gw__coap_topic *t)
{
    coap_opt_iterator_t it;
    coap_opt_t *opt = coap_check_option(request, GW_COAP_OPTION_TOKEN, &it);
    struct gw_jwt_claims claims;
    int rc;

    if (coap_session_get_proto(session) == COAP_PROTO_DTLS) {
        /* the handshake proved the device: its PSK is derived from its secret */
        const coap_bin_const_t *id = coap_session_get_psk_identity(session);
        char want[GW_AUTH_ID_SIZE];
        if (gw_auth_client_id(t->pk, t->dn, want, sizeof(want)) != 0 || !id ||
            id->length != strlen(want) || memcmp(id->s, want, id->length) != 0)
            return GW_E_IDENTITY_MISMATCH;
        if (!opt)
            return 0;
    }
    if (!opt)
        return GW_E_NOT_AUTHENTICATED;
    rc = gw_jwt_verify(a->jwt_secret, a->jwt_len, (const char *)coap_opt_value(opt),
                       coap_opt_length(opt), gw__coap_wall_ms() / 1000, &claims);
    if (rc)
        return rc;
    if (strcmp(claims.product_key, t->pk) != 0 || strcmp(claims.device_name, t->dn) != 0)
        return GW_E_IDENTITY_MISMATCH;
    return 0;
}

static bool is_cancel(const coap_pdu_t *req)
{
    coap_opt_iterator_t it;
    coap_opt_t *opt = coap_check_option(req, COAP_OPTION_OBSERVE, &it);

    return opt &&
           coap_decode_var_bytes(coap_opt_value(opt), coap_opt_length(opt)) == COAP_OBSERVE_CANCEL;
}

static bool tail_is(const struct gw__coap_topic *t, const char *s)
{
    return t->tail_len == strlen(s) && memcmp(t->tail, s, t->tail_len) == 0;
}

/* ---- waiting for the core ---- */

/* Turns the exchange into a separate response waiting for handle h. */
static int defer(struct gw__coap *a, coap_session_t *session, const coap_pdu_t *request, uint64_t h)
{
    coap_bin_const_t tok = coap_pdu_get_token(request);
    struct gw__coap_pending *p;
    coap_async_t *async;

    if (tok.length > GW_COAP_CTOKEN_MAX)
        return -EINVAL;
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    async = coap_register_async(session, request, 0); /* 0: wait for coap_async_trigger */
    if (!async) {
        free(p);
        return -ENOMEM;
    }
    p->handle = h;
    p->token_len = tok.length;
    memcpy(p->token, tok.s, tok.length);
    p->deadline_ms = gw__coap_mono_ms() + GW_COAP_REPLY_TIMEOUT_MS;
    if (!tsearch(p, &a->pending, cmp_pending)) {
        coap_free_async(session, async);
        free(p);
        return -ENOMEM;
    }
    coap_async_set_app_data(async, (void *)(uintptr_t)h);
    p->session = coap_session_reference(session);
    p->prev = a->pend_tail;
    if (a->pend_tail)
        a->pend_tail->next = p;
    else
        a->pend_head = p;
    a->pend_tail = p;
    a->n_pending++;
    return 0;
}

/* Re-runs the waiting handler (it answers from p), or forgets p if the exchange is gone. */
static void trigger(struct gw__coap *a, struct gw__coap_pending *p)
{
    coap_bin_const_t tok = {p->token_len, p->token};
    coap_async_t *async = coap_find_async(p->session, tok);

    if (async)
        coap_async_trigger(async);
    else
        pending_remove(a, p);
}

/* Posts m (taken) to the core with a fresh handle; *handle_out gets the handle, id_out the
 * message id (assigned here, while this thread holds the only reference, so it can be
 * quoted back to the device: the core keeps an id it finds set). */
static int post(struct gw__coap *a, struct gw_msg *m, uint64_t *handle_out, char *id_out)
{
    int rc;

    *handle_out = gw__coap_handle(a);
    m->origin.adapter = &a->base;
    m->origin.session = *handle_out;
    if (m->report_time == 0)
        m->report_time = gw__coap_wall_ms();
    rc = gw_msg_assign_id(m);
    if (rc) {
        gw_msg_unref(m);
        return rc;
    }
    snprintf(id_out, GW_MSG_ID_LEN + 1, "%s", m->id);
    rc = gw_core_post(a->base.core, m);
    atomic_fetch_add_explicit(rc ? &a->ctr.dropped_in : &a->ctr.msgs_in, 1, memory_order_relaxed);
    return rc;
}

/* The second run of a deferred handler: answer from the pending entry. true when this
 * request was a deferred one (answered, or a duplicate that gets an empty ACK). */
static bool answer_deferred(struct gw__coap *a, coap_resource_t *resource, coap_session_t *session,
                            const coap_pdu_t *req, coap_pdu_t *resp)
{
    coap_async_t *async = coap_find_async(session, coap_pdu_get_token(req));
    struct gw__coap_pending *p;
    const struct gw_msg *rep;

    if (!async)
        return false;
    p = pending_find(a, (uint64_t)(uintptr_t)coap_async_get_app_data(async));
    if (p && !p->reply && !p->err)
        return true; /* a retransmission while we wait: the empty ACK covers it */
    if (!p) {
        gw__coap_respond_err(resource, session, req, resp, GW_E_TIMEOUT);
        return true;
    }
    rep = p->reply;
    if (!rep) {
        gw__coap_respond_err(resource, session, req, resp, p->err);
    } else if (rep->method == GW_METHOD_AUTH && rep->code == 0) {
        cJSON *data = cJSON_CreateObject();
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(rep->data, "token");
        if (data && cJSON_IsString(tok) && cJSON_AddStringToObject(data, "token", tok->valuestring))
            gw__coap_respond(resource, session, req, resp, 0, "", data);
        else
            gw__coap_respond_err(resource, session, req, resp, -ENOMEM);
        cJSON_Delete(data);
    } else {
        gw__coap_respond(resource, session, req, resp, rep->code, rep->code == 0 ? "" : rep->msg,
                         rep->data);
    }
    pending_remove(a, p);
    return true;
}

void gw__coap_on_reply(struct gw__coap *a, struct gw_msg *reply)
{
    struct gw__coap_pending *p = pending_find(a, reply->origin.session);

    if (reply->method == GW_METHOD_AUTH && reply->code == 0) {
        const cJSON *pk = cJSON_GetObjectItemCaseSensitive(reply->data, "productKey");
        const cJSON *dn = cJSON_GetObjectItemCaseSensitive(reply->data, "deviceName");
        if (cJSON_IsString(pk) && cJSON_IsString(dn))
            gw__coap_after_auth(a, pk->valuestring, dn->valuestring, reply->origin.session);
    }
    if (!p || p->reply || p->err) {
        /* nobody waits (answered at once, timed out): the device hears it downstream */
        if (reply->method == GW_METHOD_AUTH)
            gw_msg_unref(reply);
        else
            gw__coap_deliver(a, reply);
        return;
    }
    p->reply = reply;
    trigger(a, p);
}

void gw__coap_pending_expire(struct gw__coap *a, int64_t now_ms, bool all)
{
    struct gw__coap_pending *p = a->pend_head, *next;

    for (; p && (all || p->deadline_ms <= now_ms); p = next) {
        next = p->next;
        if (p->reply || p->err)
            continue; /* already triggered; its handler run removes it */
        p->err = all ? GW_E_SHUTDOWN : GW_E_TIMEOUT;
        trigger(a, p);
    }
}

int gw__coap_pending_wait_ms(struct gw__coap *a, int64_t now_ms, int cap_ms)
{
    for (struct gw__coap_pending *p = a->pend_head; p; p = p->next) {
        if (p->reply || p->err)
            continue;
        if (p->deadline_ms - now_ms < cap_ms)
            return p->deadline_ms <= now_ms ? 0 : (int)(p->deadline_ms - now_ms);
        break;
    }
    return cap_ms;
}

void gw__coap_pending_free(struct gw__coap *a)
{
    while (a->pend_head)
        pending_remove(a, a->pend_head);
}

/* ---- handlers ---- */

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(it) && it->valuestring[0] ? it->valuestring : NULL;
}

static bool body(const coap_pdu_t *req, const uint8_t **data, size_t *len)
{
    size_t offset, total;

    if (!coap_get_data_large(req, len, data, &offset, &total)) {
        *len = 0;
        *data = NULL;
        return true;
    }
    return offset == 0 && *len == total; /* SINGLE_BODY hands over the whole body */
}

/* POST /auth {clientId, username, password} → the core checks it; answered when it replies. */
static void hnd_auth(coap_resource_t *resource, coap_session_t *session, const coap_pdu_t *req,
                     const coap_string_t *query, coap_pdu_t *resp)
{
    struct gw__coap *a = gw__coap_from_session(session);
    const uint8_t *data;
    size_t len;
    cJSON *in = NULL, *params = NULL;
    struct gw_msg *m = NULL;
    char id[GW_MSG_ID_LEN + 1];
    uint64_t h;
    int rc;

    (void)query;
    if (answer_deferred(a, resource, session, req, resp))
        return;
    rc = body(req, &data, &len) ? gw_json_parse_strict((const char *)data, len, &in)
                                : GW_E_TRUNCATED;
    if (rc == 0 && (!cJSON_IsObject(in) || !json_str(in, "clientId") || !json_str(in, "username") ||
                    !json_str(in, "password")))
        rc = GW_E_MISSING_FIELD;
    if (rc == 0) {
        params = cJSON_CreateObject();
        if (!params || !cJSON_AddStringToObject(params, "clientId", json_str(in, "clientId")) ||
            !cJSON_AddStringToObject(params, "username", json_str(in, "username")) ||
            !cJSON_AddStringToObject(params, "password", json_str(in, "password")))
            rc = -ENOMEM;
    }
    cJSON_Delete(in);
    if (rc == 0)
        rc = gw_msg_new_request(GW_METHOD_AUTH, NULL, "", "", params, &m); /* params taken */
    else
        cJSON_Delete(params);
    if (rc) {
        gw_adapter_count(&a->ctr.dropped_in);
        gw__coap_respond_err(resource, session, req, resp, rc);
        return;
    }
    rc = post(a, m, &h, id); /* counts a refusal itself */
    if (rc == 0)
        rc = defer(a, session, req, h);
    if (rc)
        gw__coap_respond_err(resource, session, req, resp, rc);
}

/* Decodes a POST /topic body into a message for t, checking it against the path. */
static int topic_decode(const struct gw__coap_topic *t, const coap_pdu_t *req, struct gw_msg **out)
{
    static const char reply_suffix[] = "_reply";
    const struct gw_msg_identity ident = {.product_key = t->pk, .device_name = t->dn};
    const struct gw_method_info *mi;
    size_t n = t->tail_len, len;
    const uint8_t *data;
    struct gw_msg *m = NULL;
    int rc;

    if (n > sizeof(reply_suffix) - 1 && memcmp(t->tail + n - (sizeof(reply_suffix) - 1),
                                               reply_suffix, sizeof(reply_suffix) - 1) == 0)
        n -= sizeof(reply_suffix) - 1; /* a device's reply may name its topic like MQTT */
    mi = gw_method_find_path(t->tail, n);
    if (!mi || mi->method == GW_METHOD_AUTH)
        return GW_E_UNKNOWN_METHOD;
    if (!body(req, &data, &len))
        return GW_E_TRUNCATED;
    if (len == 0)
        return GW_E_MISSING_FIELD;
    rc = gw_codec_json_decode(data, len, &ident, &m);
    if (rc)
        return rc;
    if (m->method != mi->method)
        rc = GW_E_BAD_FIELD; /* the body's method must be the path's (reference rule) */
    else if (!gw_method_is_upstream(m->method, gw_msg_is_reply(m)))
        rc = GW_E_UNKNOWN_METHOD;
    if (rc) {
        gw_msg_unref(m);
        return rc;
    }
    *out = m;
    return 0;
}

static void topic_post(struct gw__coap *a, coap_resource_t *resource, coap_session_t *session,
                       const coap_pdu_t *req, const struct gw__coap_topic *t, coap_pdu_t *resp)
{
    const struct gw_method_info *mi;
    struct gw_msg *m = NULL;
    char id[GW_MSG_ID_LEN + 1] = "";
    cJSON *data;
    uint64_t h;
    bool wait;
    int rc;

    rc = gw__coap_check_token(a, session, req, t);
    if (rc == 0)
        rc = topic_decode(t, req, &m);
    if (rc) {
        gw_adapter_count(&a->ctr.dropped_in);
        gw_log(GW_LOG_DEBUG, a->base.name, "POST /topic/sys/%s/%s/%.*s refused: %s", t->pk, t->dn,
               (int)t->tail_len, t->tail, gw_strerror(rc));
        gw__coap_respond_err(resource, session, req, resp, rc);
        return;
    }
    mi = gw_method_get(m->method);
    wait = !gw_msg_is_reply(m) && mi && mi->reply == GW_METHOD_REPLY_YES;
    rc = post(a, m, &h, id);
    if (rc == 0 && wait && (rc = defer(a, session, req, h)) == 0)
        return; /* answered when the core replies */
    if (rc) {
        gw__coap_respond_err(resource, session, req, resp, rc);
        return;
    }
    data = cJSON_CreateObject();
    if (data && cJSON_AddStringToObject(data, "messageId", id))
        gw__coap_respond(resource, session, req, resp, 0, "", data);
    else
        gw__coap_respond_err(resource, session, req, resp, -ENOMEM);
    cJSON_Delete(data);
}

static void hnd_post(coap_resource_t *resource, coap_session_t *session, const coap_pdu_t *req,
                     const coap_string_t *query, coap_pdu_t *resp)
{
    struct gw__coap *a = gw__coap_from_session(session);
    coap_string_t *path;
    struct gw__coap_topic t;

    (void)query;
    if (answer_deferred(a, resource, session, req, resp))
        return;
    path = coap_get_uri_path(req);
    if (path && parse_topic((const char *)path->s, path->length, &t) == 0)
        topic_post(a, resource, session, req, &t, resp);
    else
        gw__coap_respond(resource, session, req, resp, 404, "no such resource", NULL);
    coap_delete_string(path);
}

static void hnd_get(coap_resource_t *resource, coap_session_t *session, const coap_pdu_t *req,
                    const coap_string_t *query, coap_pdu_t *resp)
{
    static const char fw_prefix[] = "ota/firmware/";
    struct gw__coap *a = gw__coap_from_session(session);
    coap_string_t *path = coap_get_uri_path(req);
    const char *p = path ? (const char *)path->s : "";
    size_t len = path ? path->length : 0;
    struct gw__coap_topic t;
    int rc;

    if (len > sizeof(fw_prefix) - 1 && memcmp(p, fw_prefix, sizeof(fw_prefix) - 1) == 0) {
        gw__coap_firmware_get(a, resource, session, req, query, p, len, resp);
    } else if (parse_topic(p, len, &t) == 0 &&
               (tail_is(&t, "thing/ota/upgrade") || tail_is(&t, "downstream"))) {
        rc = gw__coap_check_token(a, session, req, &t);
        /* A deregistration needs no token: the (endpoint, CoAP token) pair it must match is
         * known only to the registering endpoint (node-coap sends none). */
        if (rc && !is_cancel(req))
            gw__coap_respond_err(NULL, session, req, resp, rc);
        else
            gw__coap_observe_get(
                a, session, req, &t,
                tail_is(&t, "downstream") ? GW__COAP_RES_DOWNSTREAM : GW__COAP_RES_UPGRADE, resp);
    } else {
        gw__coap_respond(NULL, session, req, resp, 404, "no such resource", NULL);
    }
    coap_delete_string(path);
}

int gw__coap_resources_init(struct gw__coap *a)
{
    coap_resource_t *r = coap_resource_init(coap_make_str_const("auth"), 0);

    if (!r)
        return -ENOMEM;
    coap_register_handler(r, COAP_REQUEST_POST, hnd_auth);
    coap_add_resource(a->ctx, r); /* freed with the context from here on */
    /* Paths with identities in them (/topic/sys/{pk}/{dn}/..., /ota/firmware/{id}/...) are
     * not resources libcoap can match: the unknown-resource handlers route them. */
    r = coap_resource_unknown_init(NULL);
    if (!r)
        return -ENOMEM;
    coap_register_handler(r, COAP_REQUEST_POST, hnd_post);
    coap_register_handler(r, COAP_REQUEST_GET, hnd_get);
    coap_add_resource(a->ctx, r);
    a->res_unknown = r;
    return 0;
}
