/*
 * DESIGN: downstream over CoAP (DESIGN §7.5 beyond): Observe registrations (RFC 7641) of
 * /topic/sys/{pk}/{dn}/thing/ota/upgrade and /topic/sys/{pk}/{dn}/downstream, the device
 * table, and the notifications that carry downstream messages.
 *
 * CoAP thread only, except gw__coap_route_locked / gw__coap_reachable_locked (any thread,
 * under a->lock). The thread changes the device table and the masks under a->lock; it reads
 * them without the lock (it is their only writer).
 *
 * Why not libcoap's observable resources: in 4.3.1 Observe works only on resources created
 * beforehand (not on the unknown-resource handler that serves every per-device path), a
 * notification re-runs the GET handler for "the current state" (so queued messages would
 * collapse into one), and nothing tells the application when an observer is dropped. So the
 * adapter keeps the registrations itself: the registration GET is answered 2.05 with an
 * Observe option, and every downstream message goes out as its own confirmable 2.05
 * notification with the registration's token and a growing Observe number (coap_send:
 * libcoap retransmits it and, with NSTART 1, sends a session's notifications one after the
 * other, in order). An observer is gone when it deregisters (GET with Observe 1), answers a
 * notification with RST, or never acknowledges one (libcoap's nack handler, after
 * MAX_RETRANSMIT: up to ~93 s with the default timers).
 *
 * Reachability: a device is reachable while it holds a registration. The first registration
 * of a device, and every later one from a new (session, token), gets a fresh seq and posts
 * REACHABLE; the last one going away posts OFFLINE with that seq. One endpoint per device: a
 * registration from another CoAP session replaces the device's registrations on the old one
 * (a rebooted device re-registers from a new port; its old registrations are dead).
 * Routing: thing.ota.upgrade/cancel go to the upgrade registration, or the downstream one;
 * every other message only to the downstream registration.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coap_internal.h"
#include "gw_codec.h"
#include "gw_error.h"
#include "gw_log.h"

#define GW_COAP_DEV_BUCKETS 256 /* initial; doubles when the load passes 2 */
#define GW_COAP_OBSERVE_MAX 0xffffff

static const char *const res_name[GW__COAP_RES__COUNT] = {"thing/ota/upgrade", "downstream"};

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static size_t dev_hash(const char *pk, const char *dn)
{
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, pk, strlen(pk) + 1);

    return (size_t)fnv1a(h, dn, strlen(dn));
}

static size_t obs_hash(const coap_session_t *s, const uint8_t *tok, size_t len)
{
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, &s, sizeof(s));

    return (size_t)fnv1a(h, tok, len);
}

int gw__coap_observe_init(struct gw__coap *a)
{
    a->devs = calloc(GW_COAP_DEV_BUCKETS, sizeof(*a->devs));
    a->obs_idx = calloc(GW_COAP_DEV_BUCKETS, sizeof(*a->obs_idx));
    if (!a->devs || !a->obs_idx) {
        free(a->devs);
        free(a->obs_idx);
        a->devs = NULL;
        a->obs_idx = NULL;
        return -ENOMEM;
    }
    a->dev_nb = a->obs_nb = GW_COAP_DEV_BUCKETS;
    return 0;
}

/* ---- device table ---- */

static struct gw__coap_dev *dev_find(struct gw__coap *a, const char *pk, const char *dn)
{
    struct gw__coap_dev *d = a->devs[dev_hash(pk, dn) & (a->dev_nb - 1)];

    while (d && (strcmp(d->pk, pk) != 0 || strcmp(d->dn, dn) != 0))
        d = d->next;
    return d;
}

/* Caller holds a->lock. Doubles the table (keeps the old one when memory is short). */
static void dev_grow_locked(struct gw__coap *a)
{
    size_t nb = a->dev_nb * 2;
    struct gw__coap_dev **v = calloc(nb, sizeof(*v));

    if (!v)
        return;
    for (size_t i = 0; i < a->dev_nb; i++) {
        while (a->devs[i]) {
            struct gw__coap_dev *d = a->devs[i];
            size_t b = dev_hash(d->pk, d->dn) & (nb - 1);
            a->devs[i] = d->next;
            d->next = v[b];
            v[b] = d;
        }
    }
    free(a->devs);
    a->devs = v;
    a->dev_nb = nb;
}

static struct gw__coap_dev *dev_get(struct gw__coap *a, const char *pk, const char *dn)
{
    struct gw__coap_dev *d = dev_find(a, pk, dn);
    size_t b;

    if (d)
        return d;
    d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    snprintf(d->pk, sizeof(d->pk), "%s", pk);
    snprintf(d->dn, sizeof(d->dn), "%s", dn);
    for (int r = 0; r < GW__COAP_RES__COUNT; r++) {
        d->obs[r].dev = d;
        d->obs[r].res = (enum gw__coap_res)r;
    }
    pthread_mutex_lock(&a->lock);
    if (a->n_devs >= a->dev_nb * 2)
        dev_grow_locked(a);
    b = dev_hash(pk, dn) & (a->dev_nb - 1);
    d->next = a->devs[b];
    a->devs[b] = d;
    a->n_devs++;
    pthread_mutex_unlock(&a->lock);
    return d;
}

static void dev_remove(struct gw__coap *a, struct gw__coap_dev *d)
{
    struct gw__coap_dev **pp;

    pthread_mutex_lock(&a->lock);
    pp = &a->devs[dev_hash(d->pk, d->dn) & (a->dev_nb - 1)];
    while (*pp && *pp != d)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = d->next;
        a->n_devs--;
    }
    pthread_mutex_unlock(&a->lock);
    free(d);
}

/* ---- registration index by (session, token) ---- */

static struct gw__coap_obs *obs_find(struct gw__coap *a, const coap_session_t *s,
                                     const uint8_t *tok, size_t len)
{
    struct gw__coap_obs *o = a->obs_idx[obs_hash(s, tok, len) & (a->obs_nb - 1)];

    while (o && !(o->session == s && o->token_len == len && memcmp(o->token, tok, len) == 0))
        o = o->idx_next;
    return o;
}

static void obs_index_add(struct gw__coap *a, struct gw__coap_obs *o)
{
    size_t b;

    if (a->n_obs >= a->obs_nb * 2) {
        size_t nb = a->obs_nb * 2;
        struct gw__coap_obs **v = calloc(nb, sizeof(*v));
        for (size_t i = 0; v && i < a->obs_nb; i++) {
            while (a->obs_idx[i]) {
                struct gw__coap_obs *x = a->obs_idx[i];
                size_t k = obs_hash(x->session, x->token, x->token_len) & (nb - 1);
                a->obs_idx[i] = x->idx_next;
                x->idx_next = v[k];
                v[k] = x;
            }
        }
        if (v) {
            free(a->obs_idx);
            a->obs_idx = v;
            a->obs_nb = nb;
        }
    }
    b = obs_hash(o->session, o->token, o->token_len) & (a->obs_nb - 1);
    o->idx_next = a->obs_idx[b];
    a->obs_idx[b] = o;
    a->n_obs++;
}

static void obs_index_del(struct gw__coap *a, struct gw__coap_obs *o)
{
    struct gw__coap_obs **pp =
        &a->obs_idx[obs_hash(o->session, o->token, o->token_len) & (a->obs_nb - 1)];

    while (*pp && *pp != o)
        pp = &(*pp)->idx_next;
    if (*pp) {
        *pp = o->idx_next;
        a->n_obs--;
    }
    o->idx_next = NULL;
}

/* ---- registrations ---- */

/* Drops one registration; the caller decides about the device's reachability. */
static void obs_clear(struct gw__coap *a, struct gw__coap_obs *o)
{
    if (!o->session)
        return;
    obs_index_del(a, o);
    coap_session_release(o->session);
    o->session = NULL;
    o->token_len = 0;
    pthread_mutex_lock(&a->lock);
    o->dev->mask &= ~(1u << o->res);
    pthread_mutex_unlock(&a->lock);
}

/* A registration went away: the device is offline once it has none left. */
static void obs_gone(struct gw__coap *a, struct gw__coap_obs *o, const char *why)
{
    struct gw__coap_dev *d = o->dev;

    gw_log(GW_LOG_INFO, a->base.name, "%s/%s: observer of %s gone (%s)", d->pk, d->dn,
           res_name[o->res], why);
    obs_clear(a, o);
    if (d->mask)
        return;
    gw__coap_session_event(a, GW_SESSION_OFFLINE, d->pk, d->dn, d->seq);
    dev_remove(a, d);
}

static int obs_register(struct gw__coap *a, coap_session_t *session, coap_bin_const_t tok,
                        const struct gw__coap_topic *t, enum gw__coap_res res,
                        struct gw__coap_obs **out)
{
    struct gw__coap_dev *d = dev_get(a, t->pk, t->dn);
    struct gw__coap_obs *o;

    if (!d)
        return -ENOMEM;
    o = &d->obs[res];
    *out = o;
    if (o->session == session && o->token_len == tok.length &&
        memcmp(o->token, tok.s, tok.length) == 0)
        return 0; /* the same registration again (RFC 7641 §4.1: a refresh) */
    for (int r = 0; r < GW__COAP_RES__COUNT; r++)
        if (d->obs[r].session && (d->obs[r].session != session || r == (int)res))
            obs_clear(a, &d->obs[r]); /* replaced: one endpoint per device */
    o->session = coap_session_reference(session);
    memcpy(o->token, tok.s, tok.length);
    o->token_len = tok.length;
    obs_index_add(a, o);
    pthread_mutex_lock(&a->lock);
    d->mask |= 1u << res;
    pthread_mutex_unlock(&a->lock);
    d->seq = gw__coap_handle(a);
    gw__coap_session_event(a, GW_SESSION_REACHABLE, d->pk, d->dn, d->seq);
    gw_log(GW_LOG_INFO, a->base.name, "%s/%s observes %s (seq %llu)", d->pk, d->dn, res_name[res],
           (unsigned long long)d->seq);
    return 0;
}

void gw__coap_observe_get(struct gw__coap *a, coap_session_t *session, const coap_pdu_t *req,
                          const struct gw__coap_topic *t, enum gw__coap_res res, coap_pdu_t *resp)
{
    coap_opt_iterator_t it;
    coap_opt_t *opt = coap_check_option(req, COAP_OPTION_OBSERVE, &it);
    coap_bin_const_t tok = coap_pdu_get_token(req);
    struct gw__coap_obs *o;
    uint8_t buf[4];
    uint32_t v;
    int rc;

    if (!opt) {
        /* a plain GET: nothing is kept here to read; the envelope says the path is right */
        gw__coap_respond(NULL, session, req, resp, 0, "", NULL);
        return;
    }
    v = coap_decode_var_bytes(coap_opt_value(opt), coap_opt_length(opt));
    if (v == COAP_OBSERVE_CANCEL) {
        o = obs_find(a, session, tok.s, tok.length);
        if (o && o->dev == dev_find(a, t->pk, t->dn) && o->res == res)
            obs_gone(a, o, "deregistered");
        gw__coap_respond(NULL, session, req, resp, 0, "", NULL);
        return;
    }
    if (v != COAP_OBSERVE_ESTABLISH || tok.length > GW_COAP_CTOKEN_MAX) {
        gw__coap_respond_err(NULL, session, req, resp, GW_E_BAD_FIELD);
        return;
    }
    rc = obs_register(a, session, tok, t, res, &o);
    if (rc) {
        gw__coap_respond_err(NULL, session, req, resp, rc);
        return;
    }
    o->observe = (o->observe + 1) & GW_COAP_OBSERVE_MAX;
    coap_add_option(resp, COAP_OPTION_OBSERVE, coap_encode_var_safe(buf, sizeof(buf), o->observe),
                    buf);
    gw__coap_respond(NULL, session, req, resp, 0, "", NULL);
}

void gw__coap_on_nack(coap_session_t *session, const coap_pdu_t *sent,
                      const coap_nack_reason_t reason, const coap_mid_t mid)
{
    struct gw__coap *a = gw__coap_from_session(session);
    coap_bin_const_t tok = coap_pdu_get_token(sent);
    struct gw__coap_obs *o;

    (void)mid;
    if (!a || !a->obs_idx)
        return;
    o = obs_find(a, session, tok.s, tok.length);
    if (o)
        obs_gone(a, o, reason == COAP_NACK_RST ? "reset" : "no acknowledgement");
}

void gw__coap_after_auth(struct gw__coap *a, const char *pk, const char *dn, uint64_t h)
{
    struct gw__coap_dev *d = dev_find(a, pk, dn);

    /* The core bound the login's handle h as the device's reachable session. For CoAP,
     * reachability follows the registrations: re-assert the live one with a fresh seq, or
     * take h back. */
    if (d && d->mask) {
        d->seq = gw__coap_handle(a);
        gw__coap_session_event(a, GW_SESSION_REACHABLE, pk, dn, d->seq);
    } else {
        gw__coap_session_event(a, GW_SESSION_OFFLINE, pk, dn, h);
    }
}

/* ---- routing and notifications ---- */

static int route(const struct gw__coap_dev *d, const struct gw_msg *msg)
{
    bool up = d->mask & (1u << GW__COAP_RES_UPGRADE);
    bool down = d->mask & (1u << GW__COAP_RES_DOWNSTREAM);
    bool ota = msg->method == GW_METHOD_OTA_UPGRADE || msg->method == GW_METHOD_OTA_CANCEL;

    if (ota && !gw_msg_is_reply(msg) && up)
        return GW__COAP_RES_UPGRADE;
    return down ? GW__COAP_RES_DOWNSTREAM : -1;
}

int gw__coap_route_locked(struct gw__coap *a, const struct gw_msg *msg)
{
    const struct gw__coap_dev *d = dev_find(a, msg->product_key, msg->device_name);

    return d ? route(d, msg) : -1;
}

size_t gw__coap_reachable_locked(struct gw__coap *a)
{
    return a->n_devs;
}

/* thing.ota.upgrade: the core's fileUrl names the HTTP firmware server; a CoAP device gets
 * the same path and token on this adapter: coap://host:port/ota/firmware/{fid}/{rid}?token=,
 * or coaps:// on the DTLS listener when the device registered over DTLS (host: the listen
 * address, or the HTTP URL's host when listening on a wildcard). Returns msg itself or a
 * copy (msg then unreferenced). */
static struct gw_msg *with_coap_url(struct gw__coap *a, struct gw_msg *msg, bool dtls)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(msg->params, "fileUrl");
    const struct gw_msg_identity ident = {msg->product_key, msg->device_name, msg->device_id};
    const char *scheme = dtls ? "coaps" : "coap", *mine = dtls ? a->dtls_url_host : a->url_host;
    int port = dtls ? a->dtls_port : a->port;
    const char *s, *path, *host, *end;
    char url[GW_CONFIG_HOST_MAX + 600];
    struct gw_msg *c = NULL;
    int n;

    if (!cJSON_IsString(u) || !(path = strstr(u->valuestring, "/ota/firmware/")))
        return msg;
    s = u->valuestring;
    if (mine[0]) {
        n = snprintf(url, sizeof(url), "%s://%s:%d%s", scheme, mine, port, path);
    } else {
        host = strstr(s, "://");
        host = host && host < path ? host + 3 : path;
        end = *host == '[' ? memchr(host, ']', (size_t)(path - host)) : NULL;
        end = end ? end + 1 : memchr(host, ':', (size_t)(path - host));
        if (!end)
            end = path;
        n = snprintf(url, sizeof(url), "%s://%.*s:%d%s", scheme, (int)(end - host), host, port,
                     path);
    }
    if (n < 0 || (size_t)n >= sizeof(url) || gw_msg_copy_with_identity(msg, &ident, &c) != 0)
        return msg; /* the HTTP URL still works for a device that speaks both */
    if (!cJSON_ReplaceItemInObjectCaseSensitive(c->params, "fileUrl", cJSON_CreateString(url))) {
        gw_msg_unref(c);
        return msg;
    }
    gw_msg_unref(msg);
    return c;
}

static int notify(struct gw__coap_obs *o, const uint8_t *buf, size_t len)
{
    coap_session_t *s = o->session;
    coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_RESPONSE_CODE(205),
                                    coap_new_message_id(s), coap_session_max_pdu_size(s));
    uint8_t opt[4];

    if (!pdu)
        return -ENOMEM;
    o->observe = (o->observe + 1) & GW_COAP_OBSERVE_MAX;
    if (!coap_add_token(pdu, o->token_len, o->token) ||
        !coap_add_option(pdu, COAP_OPTION_OBSERVE,
                         coap_encode_var_safe(opt, sizeof(opt), o->observe), opt) ||
        !coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT,
                         coap_encode_var_safe(opt, sizeof(opt), COAP_MEDIATYPE_APPLICATION_JSON),
                         opt) ||
        !coap_add_data(pdu, len, buf)) {
        coap_delete_pdu(pdu);
        return -EMSGSIZE; /* larger than one datagram */
    }
    return coap_send(s, pdu) == COAP_INVALID_MID ? -EIO : 0; /* coap_send owns pdu */
}

void gw__coap_deliver(struct gw__coap *a, struct gw_msg *msg)
{
    struct gw__coap_dev *d = dev_find(a, msg->product_key, msg->device_name);
    int res = d ? route(d, msg) : -1;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = GW_E_DEVICE_NOT_CONNECTED;

    if (res >= 0) {
        if (msg->method == GW_METHOD_OTA_UPGRADE && !gw_msg_is_reply(msg))
            msg = with_coap_url(a, msg,
                                coap_session_get_proto(d->obs[res].session) == COAP_PROTO_DTLS);
        rc = gw_codec_json_encode(msg, &buf, &len);
    }
    if (rc == 0)
        rc = notify(&d->obs[res], buf, len);
    if (rc == 0) {
        gw_adapter_count(&a->ctr.msgs_out);
    } else {
        gw_adapter_count(&a->ctr.dropped_out);
        gw_log(rc == GW_E_DEVICE_NOT_CONNECTED ? GW_LOG_DEBUG : GW_LOG_WARN, a->base.name,
               "%s to %s/%s dropped: %s", gw_msg_method_name(msg), msg->product_key,
               msg->device_name, rc == -EMSGSIZE ? "larger than one datagram" : gw_strerror(rc));
    }
    free(buf);
    gw_msg_unref(msg);
}

void gw__coap_observe_fini(struct gw__coap *a)
{
    if (!a->devs)
        return;
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < a->dev_nb; i++) {
        while (a->devs[i]) {
            struct gw__coap_dev *d = a->devs[i];
            a->devs[i] = d->next;
            for (int r = 0; r < GW__COAP_RES__COUNT; r++)
                if (d->obs[r].session)
                    coap_session_release(d->obs[r].session);
            free(d);
        }
    }
    a->n_devs = 0;
    pthread_mutex_unlock(&a->lock);
    memset(a->obs_idx, 0, a->obs_nb * sizeof(*a->obs_idx));
    a->n_obs = 0;
}
