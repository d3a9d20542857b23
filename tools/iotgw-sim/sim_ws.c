/*
 * DESIGN: WebSocket devices (DESIGN §7.5): one libwebsockets client connection per device to
 * the gateway's /ws path, no subprotocol, JSON messages in text frames. First message
 * `auth`; its reply with code 0 makes the link UP. Fragments are reassembled (at most 64
 * KiB, as the gateway allows).
 *
 * Main thread (lws on the sim's loop). struct ws_conn is owned here: d->conn while the device
 * uses it; disconnect detaches it (conn->d = NULL) and asks lws to close; it is freed at
 * LWS_CALLBACK_WSI_DESTROY, which lws delivers for every client wsi. Outgoing messages wait
 * in a FIFO, one lws_write per WRITEABLE callback.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "gw_auth.h"
#include "sim.h"

#define WS_MSG_MAX (64 * 1024)

struct ws_out {
    struct ws_out *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE bytes of headroom, then the text */
};

struct ws_conn {
    uint32_t tag; /* SIM_TAG_WS */
    struct sim *s;
    struct sim_dev *d;
    struct lws *wsi;
    struct ws_out *qh, *qt;
    char *rx;
    size_t rxlen;
    bool authed, in_connect, sync_destroyed;
};

static char ws_host[128], ws_path[256];
static int ws_port;

static int ws_init(struct sim *s, const char *endpoint)
{
    (void)s;
    if (sim_http_parse_url(endpoint, ws_host, sizeof(ws_host), &ws_port, ws_path,
                           sizeof(ws_path)) != 0) {
        fprintf(stderr, "iotgw-sim: --ws-url %s: expected ws://HOST:PORT/PATH\n", endpoint);
        return -EINVAL;
    }
    return 0;
}

static int queue_text(struct ws_conn *c, char *text)
{
    size_t n;
    struct ws_out *o;

    if (!text)
        return -ENOMEM;
    n = strlen(text);
    o = malloc(sizeof(*o) + LWS_PRE + n);
    if (!o) {
        free(text);
        return -ENOMEM;
    }
    o->next = NULL;
    o->len = n;
    memcpy(o->buf + LWS_PRE, text, n);
    free(text);
    if (c->qt)
        c->qt->next = o;
    else
        c->qh = o;
    c->qt = o;
    if (c->wsi)
        lws_callback_on_writable(c->wsi);
    return 0;
}

static void conn_free(struct ws_conn *c)
{
    while (c->qh) {
        struct ws_out *o = c->qh;
        c->qh = o->next;
        free(o);
    }
    free(c->rx);
    c->s->conns_alive--;
    free(c);
}

static void lost(struct ws_conn *c, const char *why)
{
    sim_dev_conn_lost(&c->d, why);
}

static int send_auth(struct ws_conn *c)
{
    struct sim_dev *d = c->d;
    char cid[128], user[128], pw[65], *text;
    cJSON *p = cJSON_CreateObject();

    if (!p || gw_auth_password(d->pk, d->dn, d->secret, pw) != 0) {
        cJSON_Delete(p);
        return -ENOMEM;
    }
    snprintf(cid, sizeof(cid), "%s.%s", d->pk, d->dn);
    snprintf(user, sizeof(user), "%s&%s", d->dn, d->pk);
    cJSON_AddStringToObject(p, "clientId", cid);
    cJSON_AddStringToObject(p, "username", user);
    cJSON_AddStringToObject(p, "password", pw);
    text = sim_msg_text("auth", "auth", p, -1);
    cJSON_Delete(p);
    return queue_text(c, text);
}

static void on_text(struct ws_conn *c)
{
    struct sim_dev *d = c->d;
    cJSON *m = cJSON_ParseWithLength(c->rx, c->rxlen);
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(m, "method");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(m, "code");

    c->rxlen = 0;
    if (!m)
        return;
    if (!c->authed) {
        if (cJSON_IsString(method) && strcmp(method->valuestring, "auth") == 0 && code) {
            if (cJSON_IsNumber(code) && code->valuedouble == 0) {
                c->authed = true;
                sim_dev_link_up(d);
            } else {
                c->s->c.auth_fail++;
                sim_problem(c->s, "%s/%s: ws login refused", d->pk, d->dn);
                d->want_link = false;
                lost(c, "login refused");
                if (c->wsi)
                    sim_lws_kill(c->wsi);
            }
        }
    } else {
        sim_dev_on_message(d, m, sim_now_ms());
    }
    cJSON_Delete(m);
}

static int on_rx(struct ws_conn *c, struct lws *wsi, const void *in, size_t len)
{
    char *p;

    if (c->rxlen + len > WS_MSG_MAX)
        return -1;
    p = realloc(c->rx, c->rxlen + len + 1);
    if (!p)
        return -1;
    c->rx = p;
    memcpy(c->rx + c->rxlen, in, len);
    c->rxlen += len;
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi) && c->d)
        on_text(c);
    return 0;
}

static int on_writeable(struct ws_conn *c, struct lws *wsi)
{
    struct ws_out *o = c->qh;

    if (!o)
        return 0;
    if (lws_write(wsi, o->buf + LWS_PRE, o->len, LWS_WRITE_TEXT) < (int)o->len)
        return -1;
    c->qh = o->next;
    if (!c->qh)
        c->qt = NULL;
    free(o);
    if (c->qh)
        lws_callback_on_writable(wsi);
    return 0;
}

int sim_ws_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len);
int sim_ws_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    struct ws_conn *c = lws_get_opaque_user_data(wsi);

    if (c && c->tag != SIM_TAG_WS)
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (c && c->d && send_auth(c) != 0)
            return -1;
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (c && on_rx(c, wsi, in, len) != 0)
            return -1;
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (c && !c->d)
            return -1; /* detached: close */
        if (c)
            return on_writeable(c, wsi);
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c)
            lost(c, in ? (const char *)in : "ws connect failed");
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c)
            lost(c, "ws closed by the gateway");
        break;
    case LWS_CALLBACK_WSI_DESTROY:
        if (c) {
            lws_set_opaque_user_data(wsi, NULL);
            c->wsi = NULL;
            if (c->in_connect) {
                c->sync_destroyed = true;
                break;
            }
            lost(c, "ws connection gone");
            conn_free(c);
        }
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static int ws_connect(struct sim_dev *d)
{
    struct sim *s = d->sim;
    struct ws_conn *c = calloc(1, sizeof(*c));
    struct lws_client_connect_info i;
    struct lws *w;

    if (!c)
        return -ENOMEM;
    c->tag = SIM_TAG_WS;
    c->s = s;
    c->d = d;
    s->conns_alive++;
    d->conn = c;
    memset(&i, 0, sizeof(i));
    i.context = s->lws;
    i.address = ws_host;
    i.port = ws_port;
    i.path = ws_path;
    i.host = ws_host;
    i.origin = ws_host;
    i.local_protocol_name = "sim-ws";
    i.opaque_user_data = c;
    i.pwsi = &c->wsi;
    c->in_connect = true;
    w = lws_client_connect_via_info(&i);
    c->in_connect = false;
    if (!w || c->sync_destroyed) {
        /* lws returns NULL only once the wsi is gone: nothing refers to c any more */
        c->d = NULL;
        if (d->conn == c)
            d->conn = NULL;
        conn_free(c);
        return -ECONNREFUSED;
    }
    return 0;
}

static int ws_send(struct sim_dev *d, const char *id, const char *method, const cJSON *params)
{
    struct ws_conn *c = d->conn;

    if (!c)
        return -ENOTCONN;
    return queue_text(c, sim_msg_text(id, method, params, -1));
}

static int ws_reply(struct sim_dev *d, const char *id, const char *method, int code)
{
    struct ws_conn *c = d->conn;

    if (!c)
        return -ENOTCONN;
    return queue_text(c, sim_msg_text(id, method, NULL, code));
}

static void ws_disconnect(struct sim_dev *d)
{
    struct ws_conn *c = d->conn;

    if (!c)
        return;
    c->d = NULL;
    d->conn = NULL;
    if (c->wsi)
        sim_lws_kill(c->wsi);
}

const struct sim_proto_ops sim_ws_ops = {
    .name = "ws",
    .init = ws_init,
    .connect = ws_connect,
    .send = ws_send,
    .reply = ws_reply,
    .disconnect = ws_disconnect,
    .fini = NULL,
};
