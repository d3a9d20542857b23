/*
 * DESIGN: UDP device sessions and the upstream path (DESIGN §4 tokens, §7.5, REFERENCE §4.7).
 * One datagram = one serialized message, no framing.
 *
 * Loop thread only. Owns the session structs (plain memory: no libuv handles).
 *
 * Login: `auth` (and `thing.auth.register(.sub)`) needs no token. It gets a PENDING session
 * that remembers the sender's address until the core answers; a successful auth reply
 * (data {productKey, deviceName, token}) turns it into the device's session (replacing an
 * older one: the core has already rebound the device to it) and goes back to the device.
 *
 * Business messages carry the token, in either form:
 *   {"token":"<jwt>","body":{"id":..,"method":..,"params":..}}     (JSON serializer only)
 *   {"id":..,"method":..,"params":{"token":"<jwt>","body":{..params..}}}  (the reference's
 *                                                    form; any serializer, so also binary)
 * The token is verified with gw_jwt_verify (malformed, forged or expired → a 401 reply to the
 * sender); its identity is the message's identity. Each datagram refreshes the device's last
 * address, where its downstream messages go. A device whose session expired (or that logged
 * in before a gateway restart) gets a new session, announced to the core as REACHABLE.
 *
 * Expiry: a device session without a datagram for session_timeout_s is removed and the core
 * hears OFFLINE (seq = session). Messages the gateway sends do not keep a session alive: a
 * device that only listens cannot be told apart from one that is gone.
 */
#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_auth.h"
#include "gw_core.h"
#include "gw_error.h"
#include "gw_jwt.h"
#include "gw_log.h"
#include "gw_util.h"
#include "udp_internal.h"

static int device_cmp(const void *x, const void *y)
{
    const struct gw__udp_sess *a = x, *b = y;
    int r = strcmp(a->pk, b->pk);

    return r ? r : strcmp(a->dn, b->dn);
}

static socklen_t addr_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* ---- the session list ---- */

static struct gw__udp_sess *sess_new(struct gw__udp_adapter *a, enum gw__udp_kind kind,
                                     const struct sockaddr *from)
{
    struct gw__udp_sess *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->kind = kind;
    s->session = gw__uvw_next_session();
    memcpy(&s->addr, from, addr_len(from));
    s->last_ms = gw__uvw_now_ms();
    if (gw__uvw_live_add(&a->w, &s->session) != 0) {
        free(s);
        return NULL;
    }
    s->next = a->list;
    if (a->list)
        a->list->prev = s;
    a->list = s;
    if (kind == GW__UDP_PENDING)
        a->n_pending++;
    return s;
}

static void sess_free(struct gw__udp_adapter *a, struct gw__udp_sess *s)
{
    gw__uvw_live_del(&a->w, &s->session);
    if (s->in_device_map)
        tdelete(s, &a->by_device, device_cmp);
    if (s->kind == GW__UDP_PENDING) {
        a->n_pending--;
    } else {
        a->n_devices--;
        atomic_fetch_sub(&a->sessions, 1);
    }
    if (s->prev)
        s->prev->next = s->next;
    else
        a->list = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
}

/* Makes s the session of device pk/dn, replacing (freeing) an older one. */
static void sess_make_device(struct gw__udp_adapter *a, struct gw__udp_sess *s, const char *pk,
                             const char *dn)
{
    struct gw__udp_sess *old;
    void *node;

    if (s->kind == GW__UDP_PENDING) {
        a->n_pending--;
        a->n_devices++;
        atomic_fetch_add(&a->sessions, 1);
        s->kind = GW__UDP_DEVICE;
    }
    snprintf(s->pk, sizeof(s->pk), "%s", pk);
    snprintf(s->dn, sizeof(s->dn), "%s", dn);
    node = tsearch(s, &a->by_device, device_cmp);
    if (!node)
        return; /* no memory: found again by its handle only */
    old = *(struct gw__udp_sess **)node;
    if (old != s) {
        *(struct gw__udp_sess **)node = s;
        old->in_device_map = false;
        sess_free(a, old);
    }
    s->in_device_map = true;
}

/* The device's session, created (and announced) when it has none. NULL: no room. */
static struct gw__udp_sess *sess_for_device(struct gw__udp_adapter *a, const char *pk,
                                            const char *dn, const struct sockaddr *from)
{
    struct gw__udp_sess key, *s;
    void *node;

    snprintf(key.pk, sizeof(key.pk), "%s", pk);
    snprintf(key.dn, sizeof(key.dn), "%s", dn);
    node = tfind(&key, &a->by_device, device_cmp);
    if (node) {
        s = *(struct gw__udp_sess **)node;
    } else {
        if (a->n_devices >= GW_UDP_MAX_SESSIONS || !(s = sess_new(a, GW__UDP_PENDING, from)))
            return NULL;
        sess_make_device(a, s, pk, dn);
        gw_log(GW_LOG_INFO, a->base.name, "%s/%s: new session %llu (token)", pk, dn,
               (unsigned long long)s->session);
    }
    memcpy(&s->addr, from, addr_len(from));
    s->last_ms = gw__uvw_now_ms();
    if (!s->announced)
        s->announced = gw_core_post_session(a->base.core, &a->base, GW_SESSION_REACHABLE, pk, dn,
                                            s->session, s->session) == 0;
    return s;
}

/* ---- replies of our own ---- */

/* What a refusal reply needs from a request (copied: the request may be gone by then). */
struct gw__udp_req {
    enum gw_method method;
    bool is_reply;
    char request_id[GW_MSG_REQUEST_ID_MAX + 1];
    char pk[GW_MSG_PK_MAX + 1];
    char dn[GW_MSG_DN_MAX + 1];
};

static void req_info(const struct gw_msg *m, struct gw__udp_req *r)
{
    r->method = m->method;
    r->is_reply = gw_msg_is_reply(m);
    snprintf(r->request_id, sizeof(r->request_id), "%s", m->request_id);
    snprintf(r->pk, sizeof(r->pk), "%s", m->product_key);
    snprintf(r->dn, sizeof(r->dn), "%s", m->device_name);
}

/* Answers the request r with err's code and text (replies are never answered). */
static void reply_req(struct gw__udp_adapter *a, const struct sockaddr *to,
                      const struct gw__udp_req *r, int err)
{
    struct gw_msg_fields f = {
        .method = r->method,
        .request_id = r->request_id,
        .identity = {.product_key = r->pk, .device_name = r->dn},
        .has_code = true,
        .code = (int32_t)gw_error_api_code(err),
        .msg = gw_strerror(err),
    };
    struct gw_msg *rep = NULL;

    if (r->is_reply)
        return;
    if (gw_msg_new(&f, &rep) == 0)
        gw__udp_send(a, to, rep);
    gw_msg_unref(rep);
}

static void reply_to(struct gw__udp_adapter *a, const struct sockaddr *to, const struct gw_msg *req,
                     int err)
{
    struct gw__udp_req r;

    req_info(req, &r);
    reply_req(a, to, &r, err);
}

/* Posts m (taken) with origin session s; a refused request is answered "queue full". */
static int post(struct gw__udp_adapter *a, struct gw__udp_sess *s, struct gw_msg *m,
                const struct sockaddr *from)
{
    struct gw__udp_req r;
    int rc;

    req_info(m, &r);
    m->origin.adapter = &a->base;
    m->origin.session = s->session;
    rc = gw_core_post(a->base.core, m);
    if (rc == 0) {
        gw_adapter_count(&a->ctr.msgs_in);
        return 0;
    }
    gw_adapter_count(&a->ctr.dropped_in);
    gw_log(GW_LOG_WARN, a->base.name, "%s dropped: %s", gw_method_name(r.method),
           rc == -EAGAIN ? "core queue full" : gw_strerror(rc));
    reply_req(a, from, &r, rc == -EAGAIN ? GW_E_QUEUE_FULL : rc);
    return rc;
}

/* ---- upstream ---- */

/* auth / thing.auth.register(.sub): no token; the reply goes back to the sender. Takes m. */
static void on_login(struct gw__udp_adapter *a, struct gw_msg *m, const struct sockaddr *from)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(m->params, "username");
    struct gw_auth_identity claimed;
    struct gw__udp_sess *s = NULL;

    if (a->n_pending >= GW_UDP_MAX_PENDING || !(s = sess_new(a, GW__UDP_PENDING, from))) {
        gw_adapter_count(&a->ctr.dropped_in);
        reply_to(a, from, m, GW_E_QUEUE_FULL);
        gw_msg_unref(m);
        return;
    }
    if (m->method == GW_METHOD_AUTH && cJSON_IsString(u) &&
        gw_auth_parse_username(u->valuestring, &claimed, NULL) == 0) {
        snprintf(s->pk, sizeof(s->pk), "%s", claimed.product_key);
        snprintf(s->dn, sizeof(s->dn), "%s", claimed.device_name);
    }
    if (post(a, s, m, from) != 0)
        sess_free(a, s);
}

/* A copy of src with the token's identity and, when params_from_body, params = body. */
static int rebuild(const struct gw_msg *src, const struct gw_jwt_claims *cl, bool params_from_body,
                   struct gw_msg **out)
{
    const cJSON *body =
        params_from_body ? cJSON_GetObjectItemCaseSensitive(src->params, "body") : src->params;
    struct gw_msg_fields f = {
        .method = src->method,
        .request_id = src->request_id,
        .identity = {.product_key = cl->product_key, .device_name = cl->device_name},
        .params = body && !cJSON_IsNull(body) ? cJSON_Duplicate(body, true) : NULL,
        .data = src->data ? cJSON_Duplicate(src->data, true) : NULL,
        .has_code = src->has_code,
        .code = src->code,
        .msg = src->msg,
        .report_time = src->report_time,
    };

    return gw_msg_new(&f, out);
}

/* The JSON envelope {"token","body"}: *token and *body (printed) when it is one. */
static int envelope(const uint8_t *buf, size_t len, char **token, char **body)
{
    cJSON *root = NULL, *t, *b;
    int rc = gw_json_parse_strict((const char *)buf, len, &root);

    *token = *body = NULL;
    if (rc)
        return rc;
    t = cJSON_GetObjectItemCaseSensitive(root, "token");
    b = cJSON_GetObjectItemCaseSensitive(root, "body");
    if (cJSON_IsString(t) && cJSON_IsObject(b) &&
        !cJSON_GetObjectItemCaseSensitive(root, "method")) {
        *token = strdup(t->valuestring);
        *body = cJSON_PrintUnformatted(b);
        if (!*token || !*body) {
            free(*token);
            free(*body);
            *token = *body = NULL;
            rc = -ENOMEM;
        }
    }
    cJSON_Delete(root);
    return rc;
}

static int verify(struct gw__udp_adapter *a, const char *token, struct gw_jwt_claims *cl)
{
    if (!token)
        return GW_E_NOT_AUTHENTICATED;
    return gw_jwt_verify(a->jwt_secret, a->jwt_secret_len, token, strlen(token),
                         (int64_t)time(NULL), cl);
}

void gw__udp_on_datagram(struct gw__udp_adapter *a, const uint8_t *buf, size_t len,
                         const struct sockaddr *from)
{
    const struct gw_msg_identity none = {0};
    struct gw_jwt_claims cl;
    struct gw_msg *m = NULL, *dev = NULL;
    struct gw__udp_sess *s;
    char *token = NULL, *body = NULL, peer[64];
    bool wrapped = false;
    int rc = 0;

    if (a->cfg->u.udp.serializer == GW_CONFIG_SERIALIZER_JSON)
        rc = envelope(buf, len, &token, &body);
    wrapped = body != NULL;
    if (rc == 0 && wrapped)
        rc = a->codec->decode((const uint8_t *)body, strlen(body), &none, &m);
    else if (rc == 0)
        rc = a->codec->decode(buf, len, &none, &m);
    if (rc)
        goto bad;
    if (!m->has_code && (m->method == GW_METHOD_AUTH || m->method == GW_METHOD_AUTH_REGISTER ||
                         m->method == GW_METHOD_AUTH_REGISTER_SUB)) {
        on_login(a, m, from);
        m = NULL;
        goto out;
    }
    if (!wrapped) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(m->params, "token");
        token = cJSON_IsString(t) ? strdup(t->valuestring) : NULL;
    }
    rc = verify(a, token, &cl);
    if (rc == 0)
        rc = rebuild(m, &cl, !wrapped, &dev);
    if (rc) {
        gw__uvw_addr_str(from, peer, sizeof(peer));
        gw_log(GW_LOG_INFO, a->base.name, "%s from %s refused: %s", gw_msg_method_name(m), peer,
               gw_strerror(rc));
        gw_adapter_count(&a->ctr.dropped_in);
        reply_to(a, from, m, rc);
        goto out;
    }
    s = sess_for_device(a, cl.product_key, cl.device_name, from);
    if (!s) {
        gw_adapter_count(&a->ctr.dropped_in);
        reply_to(a, from, dev, GW_E_QUEUE_FULL);
        goto out;
    }
    post(a, s, dev, from);
    dev = NULL;
    goto out;
bad:
    gw__uvw_addr_str(from, peer, sizeof(peer));
    gw_log(GW_LOG_INFO, a->base.name, "bad datagram from %s (%zu bytes): %s", peer, len,
           gw_strerror(rc));
    gw_adapter_count(&a->ctr.dropped_in);
out:
    gw_msg_unref(dev);
    gw_msg_unref(m);
    free(token);
    free(body);
}

/* ---- downstream ---- */

static const char *data_str(const cJSON *data, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(data, key);

    return cJSON_IsString(it) ? it->valuestring : NULL;
}

void gw__udp_deliver(struct gw__udp_adapter *a, struct gw__udp_sess *s, const struct gw_msg *msg)
{
    if (s->kind == GW__UDP_PENDING) {
        const char *pk = data_str(msg->data, "productKey");
        const char *dn = data_str(msg->data, "deviceName");
        struct sockaddr_storage to = s->addr;

        if (msg->method == GW_METHOD_AUTH && gw_msg_is_reply(msg) && msg->code == 0 && pk && dn) {
            sess_make_device(a, s, pk, dn);
            s->announced = true; /* the core bound this session when it accepted the auth */
            s->last_ms = gw__uvw_now_ms();
            gw_log(GW_LOG_INFO, a->base.name, "%s/%s logged in (session %llu)", pk, dn,
                   (unsigned long long)s->session);
        } else if (gw_msg_is_reply(msg)) {
            s->pk[0] = '\0'; /* refused: nothing for the core to forget */
            sess_free(a, s);
        }
        gw__udp_send(a, (const struct sockaddr *)&to, msg);
        return;
    }
    gw__udp_send(a, (const struct sockaddr *)&s->addr, msg);
}

void gw__udp_sweep(struct gw__udp_adapter *a)
{
    int64_t now = gw__uvw_now_ms();
    int64_t idle_ms = (int64_t)a->cfg->u.udp.session_timeout_s * 1000;
    struct gw__udp_sess *s = a->list, *next;

    for (; s; s = next) {
        next = s->next;
        if (s->kind == GW__UDP_PENDING) {
            if (now - s->last_ms < GW_UDP_PENDING_TTL_MS)
                continue;
            /* The core may have bound a login we never heard back about. */
            if (s->pk[0])
                gw_core_post_session(a->base.core, &a->base, GW_SESSION_OFFLINE, s->pk, s->dn,
                                     s->session, s->session);
            sess_free(a, s);
            continue;
        }
        if (now - s->last_ms < idle_ms)
            continue;
        if (s->announced && gw_core_post_session(a->base.core, &a->base, GW_SESSION_OFFLINE, s->pk,
                                                 s->dn, s->session, s->session) == -EAGAIN)
            continue; /* core full: next sweep */
        gw_log(GW_LOG_INFO, a->base.name, "%s/%s: no datagram for %d s, session expired", s->pk,
               s->dn, a->cfg->u.udp.session_timeout_s);
        sess_free(a, s);
    }
}

void gw__udp_sessions_clear(struct gw__udp_adapter *a)
{
    while (a->list)
        sess_free(a, a->list);
}
