/*
 * DESIGN: one dial-in connection of the "modbus_tcp_server" adapter (see mb_server.c for the
 * adapter and the wire summary): framing detection from the first 6 bytes, frame splitting
 * (mb_frames.c), the login (custom function code → an `auth` gw_msg to the core → the
 * answer frame), then the device's requests one at a time with a timeout each, answers
 * matched by transaction id (TCP) or unit and function code (RTU). RTU frames with a bad
 * CRC are dropped and counted. A connection is freed only in libuv's close callbacks
 * (never inside its own callbacks), after both of its handles closed.
 * Thread: the adapter's loop thread only.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_util.h"
#include "mb_server.h"

static void on_conn_timer(uv_timer_t *t);

static void on_handle_closed(uv_handle_t *h)
{
    struct gw__mbs_conn *c = h->data;

    if (--c->handles == 0)
        free(c);
}

void gw__mbs_conn_close(struct gw__mbs_conn *c, const char *why)
{
    if (c->state == GW__MBS_CLOSING)
        return;
    gw_log(c->a->closing_all ? GW_LOG_DEBUG : GW_LOG_INFO, c->a->base.name, "closing %s%s%s%s: %s",
           c->peer, c->dev ? " (" : "", c->dev ? c->dev->cfg->device_name : "", c->dev ? ")" : "",
           why);
    c->state = GW__MBS_CLOSING;
    if (c->dev) {
        c->dev->transport = NULL;
        gw__mb_dev_down(c->dev, gw__mb_now_ms());
        c->dev = NULL;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        c->a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_written(uv_write_t *req, int status)
{
    struct gw__mbs_write *w = (struct gw__mbs_write *)req;
    struct gw__mbs_conn *c = w->c;

    if (status == 0 && c->state != GW__MBS_CLOSING && c->close_after_write)
        gw__mbs_conn_close(c, "login refused");
    else if (status < 0 && c->state != GW__MBS_CLOSING)
        gw__mbs_conn_close(c, uv_strerror(status));
    free(w);
}

/* Sends one PDU in the connection's framing. */
static int conn_send(struct gw__mbs_conn *c, uint16_t tid, uint8_t unit, const uint8_t *pdu,
                     size_t len)
{
    struct gw__mbs_write *w = malloc(sizeof(*w) + GW__MB_MAX_ADU);
    uv_buf_t b;
    int rc;

    if (!w)
        return -ENOMEM;
    w->c = c;
    w->len = c->framing == GW__MB_FRAMING_RTU ? gw__mb_rtu_wrap(unit, pdu, len, w->data)
                                              : gw__mb_tcp_wrap(tid, unit, pdu, len, w->data);
    b = uv_buf_init((char *)w->data, (unsigned)w->len);
    rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc)
        free(w);
    return rc;
}

/* The login response: {"method":"auth","code":C,"message":M}. */
static void login_answer(struct gw__mbs_conn *c, int64_t code, const char *message)
{
    uint8_t pdu[GW__MB_MAX_PDU];
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    size_t n;

    if (o && cJSON_AddStringToObject(o, "method", "auth") &&
        cJSON_AddNumberToObject(o, "code", (double)code) &&
        cJSON_AddStringToObject(o, "message", message))
        text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    n = text ? strlen(text) : 0;
    if (!text || n > 250) { /* the byte count is one byte */
        free(text);
        text = strdup(code ? "{\"method\":\"auth\",\"code\":500}"
                           : "{\"method\":\"auth\",\"code\":0}");
        if (!text)
            return;
        n = strlen(text);
    }
    pdu[0] = c->a->custom_fc;
    pdu[1] = (uint8_t)n;
    memcpy(pdu + 2, text, n);
    free(text);
    if (code)
        c->close_after_write = true;
    if (conn_send(c, c->login_tid, c->login_unit, pdu, n + 2) != 0 && code)
        gw__mbs_conn_close(c, "login refused");
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* A login frame: post `auth` to the core, whose reply comes back through submit. */
static void conn_login(struct gw__mbs_conn *c, const struct gw__mb_frame *f)
{
    const uint8_t *pdu = f->pdu;
    cJSON *root = NULL, *params = NULL;
    const cJSON *p;
    const char *user, *pass, *cid;
    struct gw_msg *m = NULL;
    int rc;

    c->login_tid = f->tid;
    c->login_unit = f->unit;
    if (f->pdu_len < 2 || pdu[1] != f->pdu_len - 2 ||
        gw_json_parse_strict((const char *)pdu + 2, f->pdu_len - 2, &root) != 0) {
        login_answer(c, gw_error_api_code(GW_E_BAD_JSON), "login frame: byte count + JSON");
        goto out;
    }
    p = cJSON_GetObjectItemCaseSensitive(root, "params");
    if (!cJSON_IsObject(p))
        p = root; /* tolerate the credentials at the top level */
    user = json_str(p, "username");
    pass = json_str(p, "password");
    cid = json_str(p, "clientId");
    if (!user || !pass) {
        login_answer(c, gw_error_api_code(GW_E_MISSING_FIELD), "username and password required");
        goto out;
    }
    params = cJSON_CreateObject();
    if (!params || !cJSON_AddStringToObject(params, "clientId", cid ? cid : "") ||
        !cJSON_AddStringToObject(params, "username", user) ||
        !cJSON_AddStringToObject(params, "password", pass)) {
        cJSON_Delete(params);
        login_answer(c, 500, "out of memory");
        goto out;
    }
    rc = gw_msg_new_request(GW_METHOD_AUTH, NULL, "", "", params, &m);
    if (rc == 0) {
        m->origin.adapter = &c->a->base;
        m->origin.session = c->session;
        rc = gw_core_post(c->a->base.core, m);
    }
    if (rc) {
        gw_adapter_count(&c->a->ctr.io.dropped_in);
        login_answer(c, gw_error_api_code(rc), gw_strerror(rc));
        goto out;
    }
    gw_adapter_count(&c->a->ctr.io.msgs_in);
    c->state = GW__MBS_AUTHING;
out:
    cJSON_Delete(root);
}

/* The answer to the connection's outstanding request, or a stray frame. */
static void conn_answer(struct gw__mbs_conn *c, const struct gw__mb_frame *f)
{
    struct gw__mb_dev *dev = c->dev;
    bool match;

    if (!c->inflight || !dev) {
        gw_adapter_count(&c->a->ctr.io.dropped_in);
        return;
    }
    if (c->framing == GW__MB_FRAMING_TCP)
        match = f->tid == c->tid;
    else
        match = f->unit == dev->unit && f->pdu_len >= 1 && (f->pdu[0] & 0x7F) == c->req.fc;
    if (!match) {
        gw_log(GW_LOG_DEBUG, c->a->base.name, "%s: frame matches no request: dropped", c->peer);
        gw_adapter_count(&c->a->ctr.io.dropped_in);
        return;
    }
    c->inflight = false;
    if (gw__mb_pdu_response(&c->req, f->pdu, f->pdu_len, &c->resp) != 0)
        c->resp.err = -EPROTO;
    gw__mb_dev_done(dev, &c->req, &c->resp, gw__mb_now_ms());
    if (dev->link == GW__MB_STALLED)
        gw__mbs_conn_close(c, "device stopped answering");
}

static void conn_frame(struct gw__mbs_conn *c, const struct gw__mb_frame *f)
{
    uint8_t fc = f->pdu_len ? f->pdu[0] : 0;

    switch (c->state) {
    case GW__MBS_LOGIN:
        if (fc != c->a->custom_fc) {
            gw__mbs_conn_close(c, "a request before login");
            return;
        }
        conn_login(c, f);
        return;
    case GW__MBS_UP:
        if (fc == c->a->custom_fc)
            return; /* a repeated login: the session stands */
        conn_answer(c, f);
        return;
    default:
        gw_adapter_count(&c->a->ctr.io.dropped_in);
        return;
    }
}

static void conn_parse(struct gw__mbs_conn *c)
{
    size_t off = 0;

    while (c->state != GW__MBS_CLOSING) {
        struct gw__mb_frame f;
        int rc;

        if (c->framing == GW__MB_FRAMING_UNKNOWN) {
            c->framing = gw__mb_detect(c->rbuf + off, c->rlen - off);
            if (c->framing == GW__MB_FRAMING_UNKNOWN)
                break;
            gw_log(GW_LOG_DEBUG, c->a->base.name, "%s speaks Modbus %s", c->peer,
                   c->framing == GW__MB_FRAMING_TCP ? "TCP" : "RTU");
        }
        if (c->framing == GW__MB_FRAMING_TCP)
            rc = gw__mb_tcp_split(c->rbuf + off, c->rlen - off, &f);
        else
            rc = gw__mb_rtu_split(c->rbuf + off, c->rlen - off, c->a->custom_fc, &f);
        if (rc == 0)
            break;
        if (rc == -EBADMSG) {
            gw_log(GW_LOG_INFO, c->a->base.name, "%s: RTU frame with a bad CRC dropped", c->peer);
            gw_adapter_count(&c->a->ctr.io.dropped_in);
            off += f.len;
            continue;
        }
        if (rc < 0) {
            if (c->framing == GW__MB_FRAMING_TCP) {
                gw__mbs_conn_close(c, "not a Modbus TCP frame");
                return;
            }
            /* RTU without a length we can trust: resynchronise on the next read. */
            gw_log(GW_LOG_INFO, c->a->base.name,
                   "%s: unknown RTU function code 0x%02x: %zu "
                   "bytes dropped",
                   c->peer, c->rbuf[off + 1], c->rlen - off);
            gw_adapter_count(&c->a->ctr.io.dropped_in);
            off = c->rlen;
            break;
        }
        conn_frame(c, &f);
        off += f.len;
    }
    if (c->state == GW__MBS_CLOSING)
        return;
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    gw__mbs_conn_service(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct gw__mbs_conn *c = h->data;

    (void)suggested;
    *buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(sizeof(c->rbuf) - c->rlen));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct gw__mbs_conn *c = s->data;

    (void)buf;
    if (nread == UV_ENOBUFS) {
        gw__mbs_conn_close(c, "frame larger than any Modbus frame");
        return;
    }
    if (nread < 0) {
        gw__mbs_conn_close(c, nread == UV_EOF ? "closed by the device" : uv_strerror((int)nread));
        return;
    }
    c->rlen += (size_t)nread;
    conn_parse(c);
}

/* Sends the device's next request, or arms the timer for when it is due. */
void gw__mbs_conn_service(struct gw__mbs_conn *c)
{
    uint8_t pdu[GW__MB_MAX_PDU];
    int64_t now = gw__mb_now_ms(), wake = INT64_MAX;
    int len;

    if (c->state != GW__MBS_UP || c->inflight || !c->dev)
        return;
    if (!gw__mb_dev_next(c->dev, now, &c->req, &wake)) {
        if (wake != INT64_MAX)
            uv_timer_start(&c->timer, on_conn_timer, (uint64_t)(wake > now ? wake - now : 0), 0);
        return;
    }
    len = gw__mb_pdu_request(&c->req, pdu);
    if (len < 0) {
        c->resp = (struct gw__mb_resp){.err = len};
        gw__mb_dev_done(c->dev, &c->req, &c->resp, now);
        uv_timer_start(&c->timer, on_conn_timer, 0, 0);
        return;
    }
    c->tid = ++c->a->next_tid;
    if (conn_send(c, c->tid, c->dev->unit, pdu, (size_t)len) != 0) {
        gw__mbs_conn_close(c, "cannot write");
        return;
    }
    c->inflight = true;
    c->deadline_ms = now + c->dev->cfg->timeout_ms;
    uv_timer_start(&c->timer, on_conn_timer, (uint64_t)c->dev->cfg->timeout_ms, 0);
}

static void on_conn_timer(uv_timer_t *t)
{
    struct gw__mbs_conn *c = t->data;
    int64_t now = gw__mb_now_ms();

    if (c->state == GW__MBS_LOGIN || c->state == GW__MBS_AUTHING) {
        if (now >= c->login_deadline_ms)
            gw__mbs_conn_close(c, "no login in time");
        else
            uv_timer_start(&c->timer, on_conn_timer, (uint64_t)(c->login_deadline_ms - now), 0);
        return;
    }
    if (c->inflight && now >= c->deadline_ms) {
        c->inflight = false;
        c->resp = (struct gw__mb_resp){.err = GW_E_TIMEOUT};
        gw__mb_dev_done(c->dev, &c->req, &c->resp, now);
        if (c->dev->link == GW__MB_STALLED) {
            gw__mbs_conn_close(c, "device stopped answering");
            return;
        }
    }
    gw__mbs_conn_service(c);
}

void gw__mbs_on_connection(uv_stream_t *server, int status)
{
    struct gw__mbs_adapter *a = server->data;
    struct sockaddr_storage peer;
    int plen = sizeof(peer);
    struct gw__mbs_conn *c;
    char host[64];

    if (status < 0)
        return;
    c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->a = a;
    uv_tcp_init(&a->loop, &c->tcp);
    uv_timer_init(&a->loop, &c->timer);
    c->handles = 2;
    c->tcp.data = c->timer.data = c;
    c->state = GW__MBS_LOGIN;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->state = GW__MBS_CLOSING;
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        return;
    }
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &plen) == 0 &&
        getnameinfo((struct sockaddr *)&peer, (socklen_t)plen, host, sizeof(host), NULL, 0,
                    NI_NUMERICHOST) == 0)
        snprintf(c->peer, sizeof(c->peer), "%s:%u", host,
                 ntohs(peer.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&peer)->sin6_port
                                                  : ((struct sockaddr_in *)&peer)->sin_port));
    else
        snprintf(c->peer, sizeof(c->peer), "peer");
    uv_tcp_nodelay(&c->tcp, 1);
    c->session = atomic_fetch_add(&a->ctr.session_seq, 1) + 1;
    c->login_deadline_ms = gw__mb_now_ms() + GW__MBS_LOGIN_TIMEOUT_MS;
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    uv_timer_start(&c->timer, on_conn_timer, GW__MBS_LOGIN_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- the login's outcome ---- */

static struct gw__mbs_conn *conn_by_session(struct gw__mbs_adapter *a, uint64_t session)
{
    for (struct gw__mbs_conn *c = a->conns; c; c = c->next)
        if (c->session == session)
            return c;
    return NULL;
}

void gw__mbs_on_auth_reply(struct gw__mbs_adapter *a, const struct gw_msg *rep)
{
    struct gw__mbs_conn *c = conn_by_session(a, rep->origin.session);
    const char *pk = json_str(rep->data, "productKey"), *dn = json_str(rep->data, "deviceName");
    struct gw__mbs_entry *e = pk && dn ? gw__mbs_lookup(a, pk, dn) : NULL;

    if (rep->code == 0 && pk && dn && (!c || c->state != GW__MBS_AUTHING || !e)) {
        /* The core bound a session we cannot use: take it back. */
        gw_core_post_session(a->base.core, &a->base, GW_SESSION_OFFLINE, pk, dn,
                             rep->origin.session, rep->origin.session);
    }
    if (!c || c->state != GW__MBS_AUTHING)
        return;
    if (rep->code != 0) {
        gw_log(GW_LOG_INFO, a->base.name, "%s: login refused: %s", c->peer,
               rep->msg ? rep->msg : "?");
        login_answer(c, rep->code, rep->msg ? rep->msg : "authentication failed");
        return;
    }
    if (!e) {
        gw_log(GW_LOG_WARN, a->base.name,
               "%s: %s/%s logged in but is not among this "
               "adapter's devices",
               c->peer, pk ? pk : "?", dn ? dn : "?");
        login_answer(c, gw_error_api_code(GW_E_DEVICE_NOT_EXISTS),
                     "no Modbus configuration for this device on this gateway");
        return;
    }
    if (e->dev->transport)
        gw__mbs_conn_close(e->dev->transport, "replaced by a new login of the same device");
    c->dev = e->dev;
    e->dev->transport = c;
    e->dev->unit = c->login_unit;
    c->state = GW__MBS_UP;
    uv_timer_stop(&c->timer);
    login_answer(c, 0, "success");
    gw_log(GW_LOG_INFO, a->base.name, "%s logged in as %s/%s (Modbus %s, unit %u)", c->peer, pk, dn,
           c->framing == GW__MB_FRAMING_RTU ? "RTU" : "TCP", c->login_unit);
    gw__mb_dev_up(e->dev, gw__mb_now_ms());
    gw__mbs_conn_service(c);
}
