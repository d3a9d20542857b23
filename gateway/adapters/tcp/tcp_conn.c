/*
 * DESIGN: one TCP device connection (DESIGN §4 framing, §7.5, REFERENCE §4.6): bytes in →
 * framer → serializer → gw_msg → core; core → serializer → framer → bounded write queue.
 *
 * Loop thread only. Owns the connection struct, its two libuv handles (socket and a timer
 * that is first the idle timeout, then the linger deadline of a graceful close) and its
 * framer. A connection is freed only in the close callback of its last handle, never from
 * inside one of its own callbacks (STYLE "Adapters").
 *
 * Login: the first message must be `auth`; the core checks it and its reply (submitted back
 * to this session) binds the identity. Before that, any other request is answered with 401
 * and counted as a strike, like a failed login; the GW_TCP_STRIKES_MAX-th strike is answered
 * and then the connection is closed. `thing.auth.register(.sub)` needs no login. After login
 * every message carries the session's identity whatever its payload says.
 *
 * Invariants: a live connection is in the live set (uv_worker.h) and counted in n_conns; at
 * most one logged-in connection per device is in by_device (a new login closes the old one);
 * the core hears OFFLINE for every connection that logged in or tried to (seq = session, so
 * the late OFFLINE of a replaced connection is ignored by the core).
 */
#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "gw_auth.h"
#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "tcp_internal.h"

/* on_frame's "stop feeding, the connection is closing" (positive: never an error code). */
#define GW__TCP_STOP 1

struct gw__tcp_wreq {
    uv_write_t req;
    uint8_t *buf;
};

static int device_cmp(const void *x, const void *y)
{
    const struct gw__tcp_conn *a = x, *b = y;
    int r = strcmp(a->pk, b->pk);

    return r ? r : strcmp(a->dn, b->dn);
}

/* ---- closing ---- */

static void on_handle_closed(uv_handle_t *h)
{
    struct gw__tcp_conn *c = h->data;

    if (--c->open_handles > 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->ad->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    gw_framer_free(c->framer);
    free(c);
}

static void conn_finish(struct gw__tcp_conn *c)
{
    if (c->finishing)
        return;
    c->finishing = true;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    conn_finish(req->data);
}

static void on_linger(uv_timer_t *t)
{
    conn_finish(t->data);
}

void gw__tcp_conn_close(struct gw__tcp_conn *c, bool graceful, const char *why)
{
    struct gw__tcp_adapter *a = c->ad;

    if (c->closing) {
        if (!graceful)
            conn_finish(c);
        return;
    }
    c->closing = true;
    if (why)
        gw_log(GW_LOG_INFO, a->base.name, "closing %s%s%s%s: %s", c->peer,
               c->state == GW__TCP_AUTHED ? " (" : "", c->state == GW__TCP_AUTHED ? c->dn : "",
               c->state == GW__TCP_AUTHED ? ")" : "", why);
    if (c->live) {
        gw__uvw_live_del(&a->w, &c->session);
        c->live = false;
        a->n_conns--;
    }
    if (c->in_device_map) {
        tdelete(c, &a->by_device, device_cmp);
        c->in_device_map = false;
    }
    if (c->state == GW__TCP_AUTHED)
        atomic_fetch_sub(&a->sessions, 1);
    /* AUTHING: the core may bind the claimed identity before it sees this OFFLINE (the
     * queue keeps our order), so it must hear it too; a failed login makes it stale. */
    if ((c->state == GW__TCP_AUTHED || c->state == GW__TCP_AUTHING) && c->pk[0] &&
        !gw__uvw_stopping(&a->w))
        gw__tcp_post_offline(a, c->pk, c->dn, c->session);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    if (graceful) {
        c->shutdown_req.data = c;
        if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) == 0) {
            uv_timer_start(&c->timer, on_linger, GW_TCP_LINGER_MS, 0);
            return;
        }
    }
    conn_finish(c);
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status)
{
    struct gw__tcp_wreq *w = (struct gw__tcp_wreq *)req;
    struct gw__tcp_conn *c = req->handle->data;

    free(w->buf);
    free(w);
    if (status == 0) {
        gw_adapter_count(&c->ad->ctr.msgs_out);
        return;
    }
    gw_adapter_count(&c->ad->ctr.dropped_out);
    if (status != UV_ECANCELED)
        gw__tcp_conn_close(c, false, uv_strerror(status));
}

/* Serializer then framing; fixed_length frames are zero-padded (REFERENCE §3.2). */
static int conn_encode(struct gw__tcp_conn *c, const struct gw_msg *msg, uint8_t **out,
                       size_t *out_len)
{
    const struct gw_framer_config *fc = &c->ad->cfg->u.tcp.framing;
    uint8_t *body = NULL;
    size_t len = 0;
    int rc = c->ad->codec->encode(msg, &body, &len);

    if (rc)
        return rc;
    if (fc->type == GW_FRAMER_FIXED_LENGTH) {
        if (len > fc->fixed_length) {
            rc = -EMSGSIZE;
        } else if (!(*out = calloc(1, fc->fixed_length))) {
            rc = -ENOMEM;
        } else {
            memcpy(*out, body, len);
            *out_len = fc->fixed_length;
        }
    } else {
        rc = gw_framer_encode(fc, body, len, out, out_len);
    }
    free(body);
    return rc;
}

int gw__tcp_conn_send(struct gw__tcp_conn *c, const struct gw_msg *msg)
{
    struct gw__tcp_adapter *a = c->ad;
    struct gw__tcp_wreq *w;
    uv_buf_t b;
    size_t queued;
    int rc;

    if (c->closing) {
        gw_adapter_count(&a->ctr.dropped_out);
        return GW_E_DEVICE_NOT_CONNECTED;
    }
    w = calloc(1, sizeof(*w));
    if (!w) {
        rc = -ENOMEM;
        goto err;
    }
    rc = conn_encode(c, msg, &w->buf, &b.len);
    if (rc) {
        gw_log(GW_LOG_WARN, a->base.name, "cannot send %s to %s: %s", gw_msg_method_name(msg),
               c->peer, rc == -EMSGSIZE ? "does not fit the framing" : gw_strerror(rc));
        goto err_free;
    }
    b.base = (char *)w->buf;
    rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc) {
        gw__tcp_conn_close(c, false, uv_strerror(rc));
        goto err_free;
    }
    /* libuv has already tried to write; what is left waits for the peer to read. */
    queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    if (queued > (size_t)a->cfg->u.tcp.write_queue_max_bytes) {
        gw_log(GW_LOG_WARN, a->base.name,
               "closing %s: slow reader, %zu bytes waiting "
               "(write_queue_max_bytes %d)",
               c->peer, queued, a->cfg->u.tcp.write_queue_max_bytes);
        gw__tcp_conn_close(c, false, NULL);
    }
    return 0;
err_free:
    free(w->buf);
    free(w);
err:
    gw_adapter_count(&a->ctr.dropped_out);
    return rc;
}

/* Answers req locally (before or instead of the core) with err's code and text. */
static void conn_reply(struct gw__tcp_conn *c, enum gw_method method, const char *request_id,
                       int err)
{
    struct gw_msg_fields f = {
        .method = method,
        .request_id = request_id,
        .identity = {.product_key = c->state == GW__TCP_AUTHED ? c->pk : "",
                     .device_name = c->state == GW__TCP_AUTHED ? c->dn : ""},
        .has_code = true,
        .code = (int32_t)gw_error_api_code(err),
        .msg = gw_strerror(err),
    };
    struct gw_msg *rep = NULL;

    if (gw_msg_new(&f, &rep) == 0)
        gw__tcp_conn_send(c, rep);
    gw_msg_unref(rep);
}

/* Counts a failed login or a pre-login request; true when the connection is now closing. */
static bool conn_strike(struct gw__tcp_conn *c, const char *what)
{
    char why[96];

    if (++c->strikes < GW_TCP_STRIKES_MAX)
        return false;
    snprintf(why, sizeof(why), "%u %s without a login", c->strikes, what);
    gw__tcp_conn_close(c, true, why);
    return true;
}

/* ---- login ---- */

static const char *data_str(const cJSON *data, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(data, key);

    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static void conn_bind(struct gw__tcp_conn *c, const char *pk, const char *dn)
{
    struct gw__tcp_adapter *a = c->ad;
    struct gw__tcp_conn *old;
    void *node;

    if (c->in_device_map && (strcmp(c->pk, pk) != 0 || strcmp(c->dn, dn) != 0)) {
        /* Re-login as another device: the first identity leaves with its session. */
        tdelete(c, &a->by_device, device_cmp);
        c->in_device_map = false;
        gw__tcp_post_offline(a, c->pk, c->dn, c->session);
    }
    if (c->state != GW__TCP_AUTHED)
        atomic_fetch_add(&a->sessions, 1);
    c->state = GW__TCP_AUTHED;
    c->strikes = 0;
    snprintf(c->pk, sizeof(c->pk), "%s", pk);
    snprintf(c->dn, sizeof(c->dn), "%s", dn);
    node = tsearch(c, &a->by_device, device_cmp);
    if (!node)
        return; /* no memory: the old connection (if any) stays until it closes */
    old = *(struct gw__tcp_conn **)node;
    if (old != c) {
        *(struct gw__tcp_conn **)node = c;
        old->in_device_map = false;
        gw__tcp_conn_close(old, false, "replaced by a new login of the same device");
    }
    c->in_device_map = true;
    gw_log(GW_LOG_INFO, a->base.name, "%s logged in as %s/%s (session %llu)", c->peer, pk, dn,
           (unsigned long long)c->session);
}

void gw__tcp_conn_auth_reply(struct gw__tcp_conn *c, const struct gw_msg *reply)
{
    const char *pk = data_str(reply->data, "productKey");
    const char *dn = data_str(reply->data, "deviceName");
    bool ok = reply->code == 0 && pk && dn;

    if (ok) {
        conn_bind(c, pk, dn);
    } else if (c->state == GW__TCP_AUTHING) {
        c->state = GW__TCP_NEW;
        c->pk[0] = c->dn[0] = '\0';
    }
    gw__tcp_conn_send(c, reply);
    if (!ok && c->state != GW__TCP_AUTHED)
        conn_strike(c, "failed logins");
}

/* ---- reading ---- */

/* Hands m to the core with this session as origin. Takes m. */
static void conn_post(struct gw__tcp_conn *c, struct gw_msg *m)
{
    struct gw__tcp_adapter *a = c->ad;
    const struct gw_method_info *mi = gw_method_get(m->method);
    char request_id[GW_MSG_REQUEST_ID_MAX + 1];
    enum gw_method method = m->method;
    bool answer = !m->has_code && mi &&
                  (mi->reply == GW_METHOD_REPLY_YES || mi->reply == GW_METHOD_REPLY_ON_ERROR);
    int rc;

    snprintf(request_id, sizeof(request_id), "%s", m->request_id);
    m->origin.adapter = &a->base;
    m->origin.session = c->session;
    rc = gw_core_post(a->base.core, m);
    if (rc == 0) {
        gw_adapter_count(&a->ctr.msgs_in);
        return;
    }
    gw_adapter_count(&a->ctr.dropped_in);
    gw_log(GW_LOG_WARN, a->base.name, "%s from %s dropped: %s", gw_method_name(method), c->peer,
           rc == -EAGAIN ? "core queue full" : gw_strerror(rc));
    if (method == GW_METHOD_AUTH && c->state == GW__TCP_AUTHING) {
        c->state = GW__TCP_NEW;
        c->pk[0] = c->dn[0] = '\0';
    }
    if (answer)
        conn_reply(c, method, request_id, rc == -EAGAIN ? GW_E_QUEUE_FULL : rc);
}

/* `auth` on this connection. Takes m. */
static int conn_on_auth(struct gw__tcp_conn *c, struct gw_msg *m)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(m->params, "username");
    struct gw_auth_identity claimed;

    if (!cJSON_IsString(u) || gw_auth_parse_username(u->valuestring, &claimed, NULL) != 0)
        claimed.product_key[0] = claimed.device_name[0] = '\0';
    if (c->state == GW__TCP_AUTHED) {
        /* Logged in already: a repeated login of the same device is fine (the core answers
         * it again); another device on this connection is not. */
        if (strcmp(claimed.product_key, c->pk) != 0 || strcmp(claimed.device_name, c->dn) != 0) {
            conn_reply(c, m->method, m->request_id, GW_E_AUTH_FAILED);
            gw_msg_unref(m);
            return 0;
        }
    } else {
        c->state = GW__TCP_AUTHING;
        snprintf(c->pk, sizeof(c->pk), "%s", claimed.product_key);
        snprintf(c->dn, sizeof(c->dn), "%s", claimed.device_name);
    }
    conn_post(c, m);
    return 0;
}

/* One decoded upstream message. Takes m. Returns 0 or GW__TCP_STOP. */
static int conn_on_msg(struct gw__tcp_conn *c, struct gw_msg *m)
{
    bool request = !m->has_code;

    if (request && m->method == GW_METHOD_AUTH)
        return conn_on_auth(c, m);
    if (c->state == GW__TCP_AUTHED || (request && (m->method == GW_METHOD_AUTH_REGISTER ||
                                                   m->method == GW_METHOD_AUTH_REGISTER_SUB))) {
        conn_post(c, m);
        return 0;
    }
    gw_adapter_count(&c->ad->ctr.dropped_in);
    if (request)
        conn_reply(c, m->method, m->request_id, GW_E_NOT_AUTHENTICATED);
    gw_msg_unref(m);
    return request && conn_strike(c, "requests") ? GW__TCP_STOP : 0;
}

/* Binary frames carry their length: zero padding after it is dropped. JSON: trailing NULs. */
static size_t trim_padding(const struct gw__tcp_adapter *a, const uint8_t *p, size_t len)
{
    if (a->cfg->u.tcp.serializer == GW_CONFIG_SERIALIZER_BINARY) {
        if (len >= 7) {
            size_t total = (size_t)p[3] << 24 | (size_t)p[4] << 16 | (size_t)p[5] << 8 | p[6];
            size_t i = total;
            while (i < len && p[i] == 0)
                i++;
            if (total >= 7 && total < len && i == len)
                return total;
        }
        return len;
    }
    while (len > 0 && p[len - 1] == 0)
        len--;
    return len;
}

static int on_frame(void *ctx, const uint8_t *frame, size_t len)
{
    struct gw__tcp_conn *c = ctx;
    struct gw__tcp_adapter *a = c->ad;
    const struct gw_framer_config *fc = &a->cfg->u.tcp.framing;
    struct gw_msg_identity ident = {0};
    struct gw_msg *m = NULL;
    int rc;

    if (c->closing)
        return GW__TCP_STOP;
    if (fc->type == GW_FRAMER_LENGTH_FIELD) {
        /* Header bytes the framing left in the frame are not part of the message. */
        size_t hdr = fc->length_field_offset + fc->length_field_size;
        size_t skip = hdr > fc->initial_bytes_to_strip ? hdr - fc->initial_bytes_to_strip : 0;
        if (skip > len)
            skip = len;
        frame += skip;
        len -= skip;
    } else if (fc->type == GW_FRAMER_FIXED_LENGTH) {
        len = trim_padding(a, frame, len);
    }
    if (c->state == GW__TCP_AUTHED) {
        ident.product_key = c->pk;
        ident.device_name = c->dn;
    }
    rc = a->codec->decode(frame, len, &ident, &m);
    if (rc) {
        gw_adapter_count(&a->ctr.dropped_in);
        gw_log(GW_LOG_INFO, a->base.name, "bad message from %s (%zu bytes): %s", c->peer, len,
               gw_strerror(rc));
        return 0;
    }
    return conn_on_msg(c, m);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct gw__tcp_conn *c = h->data;

    (void)suggested;
    buf->base = (char *)c->ad->rbuf;
    buf->len = sizeof(c->ad->rbuf);
}

static void on_idle(uv_timer_t *t)
{
    struct gw__tcp_conn *c = t->data;
    char why[64];

    snprintf(why, sizeof(why), "idle for %d s", c->ad->cfg->u.tcp.idle_timeout_s);
    gw__tcp_conn_close(c, false, why);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct gw__tcp_conn *c = s->data;
    struct gw__tcp_adapter *a = c->ad;
    int rc;

    if (c->closing || nread == 0)
        return;
    if (nread < 0) {
        gw_log(GW_LOG_DEBUG, a->base.name, "%s: %s", c->peer, uv_strerror((int)nread));
        gw__tcp_conn_close(c, false, NULL);
        return;
    }
    if (a->cfg->u.tcp.idle_timeout_s > 0)
        uv_timer_start(&c->timer, on_idle, (uint64_t)a->cfg->u.tcp.idle_timeout_s * 1000, 0);
    rc = gw_framer_feed(c->framer, buf->base, (size_t)nread, on_frame, c);
    if (rc == 0 || rc == GW__TCP_STOP)
        return;
    gw_adapter_count(&a->ctr.dropped_in);
    gw_log(GW_LOG_WARN, a->base.name, "closing %s: %s", c->peer,
           gw_framer_error_reason(c->framer)[0] ? gw_framer_error_reason(c->framer)
                                                : gw_strerror(rc));
    gw__tcp_conn_close(c, false, NULL);
}

/* ---- accepting ---- */

static int conn_setup(struct gw__tcp_conn *c)
{
    struct gw__tcp_adapter *a = c->ad;
    const struct gw_config_tcp *t = &a->cfg->u.tcp;
    struct sockaddr_storage peer;
    int plen = sizeof(peer);
    int rc;

    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &plen) == 0)
        gw__uvw_addr_str((struct sockaddr *)&peer, c->peer, sizeof(c->peer));
    if (a->n_conns >= (size_t)t->max_connections) {
        gw_log(GW_LOG_WARN, a->base.name, "refusing %s: %zu connections open (max_connections)",
               c->peer, a->n_conns);
        return -EMFILE;
    }
    rc = gw_framer_new(&t->framing, &c->framer);
    if (rc)
        return rc;
    c->session = gw__uvw_next_session();
    rc = gw__uvw_live_add(&a->w, &c->session);
    if (rc)
        return rc;
    c->live = true;
    a->n_conns++;
    if (t->nodelay)
        uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 60);
    if (t->idle_timeout_s > 0)
        uv_timer_start(&c->timer, on_idle, (uint64_t)t->idle_timeout_s * 1000, 0);
    return uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

void gw__tcp_on_connection(uv_stream_t *server, int status)
{
    struct gw__tcp_adapter *a = server->data;
    struct gw__tcp_conn *c;
    int rc;

    if (status < 0) {
        gw_log(GW_LOG_WARN, a->base.name, "accept: %s", uv_strerror(status));
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        gw_log(GW_LOG_ERROR, a->base.name, "accept: out of memory");
        return;
    }
    c->ad = a;
    snprintf(c->peer, sizeof(c->peer), "?");
    uv_tcp_init(&a->w.loop, &c->tcp);
    uv_timer_init(&a->w.loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc == 0)
        rc = conn_setup(c);
    if (rc) {
        if (rc != -EMFILE)
            gw_log(GW_LOG_WARN, a->base.name, "connection from %s: %s", c->peer, gw_strerror(rc));
        gw__tcp_conn_close(c, false, NULL);
    }
}
