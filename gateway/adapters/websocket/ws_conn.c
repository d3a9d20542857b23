/*
 * DESIGN: one WebSocket device connection, as the lws protocol callback sees it (service
 * thread only; see ws_adapter.c for the threads and the table).
 *
 * Flow (REFERENCE §4.8, as TCP): the upgrade is accepted on the configured path only. The
 * first message must be `auth` (thing.auth.register is also allowed before it); anything
 * else is answered with code 401 and not posted. After the core accepts the login every
 * message is attributed to the logged-in device whatever its payload says.
 *
 * Framing: fragments are reassembled into one message of at most GW_CODEC_MAX_INPUT (64
 * KiB); a larger one closes the connection (1009). A message starting with the binary magic
 * 0x7E is decoded as binary, anything else as JSON, so a client may log in with JSON on a
 * binary listener. Outgoing messages use the listener's serializer (text frames for JSON,
 * binary frames for binary), except the answer to `auth`, which mirrors the request.
 * One lws_write per WRITEABLE. A connection silent for idle_timeout_s is closed by lws
 * (lws_set_timeout, re-armed by every received fragment).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "ws_internal.h"

/* What lws allocates per connection: just our own connection object, which must outlive
 * the wsi only for as long as the table says (it is freed at CLOSED). */
struct gw__ws_pss {
    struct gw__ws_conn *c;
};

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct gw__ws *adapter_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

static void idle_arm(struct gw__ws *a, struct lws *wsi)
{
    int s = a->cfg->u.websocket.idle_timeout_s;

    lws_set_timeout(wsi, s > 0 ? PENDING_TIMEOUT_USER_OK : NO_PENDING_TIMEOUT, s);
}

/* Only the configured path upgrades (query string aside). */
static bool path_ok(struct gw__ws *a, struct lws *wsi)
{
    char uri[512];
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);

    if (n <= 0)
        return false;
    uri[strcspn(uri, "?")] = '\0';
    if (strcmp(uri, a->cfg->u.websocket.path) == 0)
        return true;
    gw_log(GW_LOG_INFO, a->base.name, "refused upgrade on %.200s (path is %s)", uri,
           a->cfg->u.websocket.path);
    return false;
}

static int conn_open(struct gw__ws *a, struct gw__ws_pss *pss, struct lws *wsi)
{
    struct gw__ws_conn *c = calloc(1, sizeof(*c));

    if (!c)
        return -1;
    c->a = a;
    c->wsi = wsi;
    c->handle = gw__ws_new_handle(a);
    if (gw__ws_conn_add(a, c) != 0) {
        free(c);
        return -1;
    }
    pss->c = c;
    idle_arm(a, wsi);
    return 0;
}

static void conn_close(struct gw__ws *a, struct gw__ws_pss *pss)
{
    struct gw__ws_conn *c = pss->c;
    char pk[GW_MSG_PK_MAX + 1], dn[GW_MSG_DN_MAX + 1];

    if (!c)
        return;
    pss->c = NULL;
    if (gw__ws_conn_remove(a, c, pk, dn)) {
        gw_log(GW_LOG_DEBUG, a->base.name, "%s/%s disconnected", pk, dn);
        gw__ws_post_offline(a, pk, dn, c->handle);
    }
    free(c->rx);
    free(c);
}

/* Answers req on c with code/text (a reply built here, not by the core). */
static void reply_local(struct gw__ws *a, struct gw__ws_conn *c, const struct gw_msg *req,
                        int64_t code, const char *text)
{
    struct gw_msg *rep = NULL;

    if (gw_msg_is_reply(req))
        return; /* replies are never answered */
    if (gw_msg_new_reply(req, (int32_t)code, text, NULL, &rep) != 0)
        return;
    gw__ws_conn_push_local(a, c, rep);
}

static bool wants_reply(const struct gw_msg *m)
{
    const struct gw_method_info *mi = gw_method_get(m->method);

    return !m->has_code && mi && mi->reply != GW_METHOD_REPLY_NONE;
}

/* Posts m (taken) for c; a refusal is answered (busy) when the device waits for a reply. */
static int post(struct gw__ws *a, struct gw__ws_conn *c, struct gw_msg *m)
{
    bool reply = wants_reply(m);
    int rc = gw_msg_assign_id(m); /* while ours alone; kept to answer a refusal */

    if (rc != 0) {
        gw_msg_unref(m);
        return rc;
    }
    gw_msg_ref(m);
    rc = gw_core_post(a->base.core, m);
    if (rc == 0) {
        gw_adapter_count(&a->ctr.msgs_in);
    } else {
        gw_adapter_count(&a->ctr.dropped_in);
        gw_log(GW_LOG_WARN, a->base.name, "dropped %s: %s", gw_msg_method_name(m),
               gw_strerror(rc));
        if (reply)
            reply_local(a, c, m, 503, "gateway busy, retry later");
    }
    gw_msg_unref(m);
    return rc;
}

static void on_message(struct gw__ws *a, struct gw__ws_conn *c)
{
    const struct gw_codec_ops *codec =
        c->rx_len > 0 && c->rx[0] == GW_CODEC_BINARY_MAGIC ? &gw_codec_binary : &gw_codec_json;
    struct gw_msg_identity ident = { 0 };
    char pk[GW_MSG_PK_MAX + 1], dn[GW_MSG_DN_MAX + 1];
    enum gw__ws_state st;
    struct gw_msg *m = NULL;
    int rc;

    pthread_mutex_lock(&a->lock); /* state and identity change on the core's thread */
    st = c->state;
    memcpy(pk, c->pk, sizeof(pk));
    memcpy(dn, c->dn, sizeof(dn));
    pthread_mutex_unlock(&a->lock);
    if (st == GW__WS_AUTHED) {
        ident.product_key = pk;
        ident.device_name = dn;
    }
    rc = codec->decode(c->rx, c->rx_len, &ident, &m);
    if (rc != 0) {
        gw_adapter_count(&a->ctr.dropped_in);
        gw_log(GW_LOG_WARN, a->base.name, "dropped %s message (%zu bytes) from %s: %s",
               codec->name, c->rx_len, st == GW__WS_AUTHED ? dn : "a connection not logged in",
               gw_strerror(rc));
        return;
    }
    if (m->report_time == 0)
        m->report_time = wall_ms();
    m->origin.adapter = &a->base;
    m->origin.session = c->handle;
    if (m->method == GW_METHOD_AUTH && !m->has_code) {
        if (st != GW__WS_NEW) {
            reply_local(a, c, m, 400, st == GW__WS_AUTHED ? "already logged in"
                                                          : "login in progress");
            gw_msg_unref(m);
            return;
        }
        c->auth_binary = codec == &gw_codec_binary;
        pthread_mutex_lock(&a->lock);
        c->state = GW__WS_AUTHING;
        pthread_mutex_unlock(&a->lock);
        if (post(a, c, m) != 0) {
            pthread_mutex_lock(&a->lock);
            c->state = GW__WS_NEW;
            pthread_mutex_unlock(&a->lock);
        }
        return;
    }
    if (st != GW__WS_AUTHED && m->method != GW_METHOD_AUTH_REGISTER &&
        m->method != GW_METHOD_AUTH_REGISTER_SUB) {
        reply_local(a, c, m, gw_error_api_code(GW_E_NOT_AUTHENTICATED),
                    gw_strerror(GW_E_NOT_AUTHENTICATED));
        gw_adapter_count(&a->ctr.dropped_in);
        gw_msg_unref(m);
        return;
    }
    post(a, c, m);
}

static int too_big(struct gw__ws *a, struct gw__ws_conn *c, struct lws *wsi)
{
    static const char why[] = "message larger than 65536 bytes";

    gw_adapter_count(&a->ctr.dropped_in);
    gw_log(GW_LOG_WARN, a->base.name, "closing connection %llu: %s",
           (unsigned long long)c->handle, why);
    lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why,
                     sizeof(why) - 1);
    return -1;
}

static int on_receive(struct gw__ws *a, struct gw__ws_conn *c, struct lws *wsi, const void *in,
                      size_t len)
{
    idle_arm(a, wsi);
    if (!c->rx_started) {
        c->rx_started = true;
        c->rx_len = 0;
    }
    if (len > GW_CODEC_MAX_INPUT - c->rx_len)
        return too_big(a, c, wsi);
    if (c->rx_len + len > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 1024;
        uint8_t *p;

        while (cap < c->rx_len + len)
            cap *= 2;
        if (cap > GW_CODEC_MAX_INPUT)
            cap = GW_CODEC_MAX_INPUT;
        p = realloc(c->rx, cap);
        if (!p)
            return -1;
        c->rx = p;
        c->rx_cap = cap;
    }
    if (len)
        memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
        return 0;
    c->rx_started = false;
    on_message(a, c);
    return 0;
}

static int on_writeable(struct gw__ws *a, struct gw__ws_conn *c, struct lws *wsi)
{
    static const char replaced[] = "replaced by a new login";
    struct gw_msg *msg;
    bool more, kick, binary;
    uint8_t *enc = NULL, *buf;
    size_t len = 0;
    int rc, n;

    msg = gw__ws_conn_pop(a, c, &more, &kick);
    if (kick) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)replaced,
                         sizeof(replaced) - 1);
        return -1;
    }
    if (!msg)
        return 0;
    binary = msg->has_code && msg->method == GW_METHOD_AUTH ? c->auth_binary : a->binary;
    rc = (binary ? &gw_codec_binary : &gw_codec_json)->encode(msg, &enc, &len);
    if (rc != 0) {
        gw_adapter_count(&a->ctr.dropped_out);
        gw_log(GW_LOG_WARN, a->base.name, "cannot encode %s for %s/%s: %s",
               gw_msg_method_name(msg), c->pk, c->dn, gw_strerror(rc));
        gw_msg_unref(msg);
        goto next;
    }
    gw_msg_unref(msg);
    buf = malloc(LWS_PRE + len);
    if (!buf) {
        free(enc);
        return -1;
    }
    memcpy(buf + LWS_PRE, enc, len);
    free(enc);
    n = lws_write(wsi, buf + LWS_PRE, len, binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    free(buf);
    if (n < (int)len)
        return -1;
    gw_adapter_count(&a->ctr.msgs_out);
next:
    if (more)
        lws_callback_on_writable(wsi);
    return 0;
}

static int device_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                           void *in, size_t len)
{
    struct gw__ws_pss *pss = user;
    struct gw__ws *a = adapter_of(wsi);

    if (!a)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return path_ok(a, wsi) ? 0 : 1;
    case LWS_CALLBACK_ESTABLISHED:
        return conn_open(a, pss, wsi);
    case LWS_CALLBACK_RECEIVE:
        return pss->c ? on_receive(a, pss->c, wsi, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return pss->c ? on_writeable(a, pss->c, wsi) : 0;
    case LWS_CALLBACK_CLOSED:
        conn_close(a, pss);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        gw__ws_on_wake(a);
        return 0;
    default:
        return 0;
    }
}

/* Plain HTTP on the WebSocket port: nothing to serve. */
static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                         void *in, size_t len)
{
    if (reason == LWS_CALLBACK_HTTP) {
        if (lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, "WebSocket endpoint only"))
            return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

const struct lws_protocols gw__ws_protocols[] = {
    { "http", http_callback, 0, 0, 0, NULL, 0 },
    { GW_WS_PROTOCOL, device_callback, sizeof(struct gw__ws_pss), 1024, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};
