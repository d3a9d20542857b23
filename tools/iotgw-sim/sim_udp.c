/*
 * DESIGN: UDP devices (DESIGN §4 tokens, §7.5): one libuv UDP socket per device (the gateway
 * sends a device's downstream messages to the address of its last datagram, so devices
 * cannot share a socket), one JSON message per datagram. Login: `auth` (resent every
 * AUTH_RESEND_MS until answered: datagrams may be lost) → a token; every later message is
 * the envelope {"token": T, "body": {id, method, params}}. A device that sent nothing for
 * KEEPALIVE_MS posts its properties so the gateway keeps its session (session_timeout_s).
 *
 * Main thread. struct udp_conn owns a socket and a timer; both are closed on disconnect and
 * the struct is freed when the second close callback ran.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_auth.h"
#include "sim.h"

#define AUTH_RESEND_MS 1000
#define AUTH_TRIES 8
#define KEEPALIVE_MS 30000

struct udp_conn {
    uv_udp_t h;
    uv_timer_t t;
    struct sim *s;
    struct sim_dev *d;
    int closing; /* handles still to close */
    int tries;
    bool authed;
    int64_t last_send_ms;
};

static struct sockaddr_storage udp_addr;
static char rbuf[64 * 1024];

static int udp_init(struct sim *s, const char *endpoint)
{
    (void)s;
    if (sim_endpoint_addr(endpoint, "udp", &udp_addr) != 0) {
        fprintf(stderr, "iotgw-sim: --udp-url %s: expected udp://IP:PORT\n", endpoint);
        return -EINVAL;
    }
    return 0;
}

static void on_close(uv_handle_t *h)
{
    struct udp_conn *c = h->data;

    if (--c->closing == 0) {
        c->s->conns_alive--;
        free(c);
    }
}

static void close_conn(struct udp_conn *c)
{
    if (c->closing)
        return;
    c->closing = 2;
    uv_close((uv_handle_t *)&c->h, on_close);
    uv_close((uv_handle_t *)&c->t, on_close);
}

static void lost(struct udp_conn *c, const char *why)
{
    struct sim_dev *d = c->d;

    close_conn(c);
    if (!d)
        return;
    c->d = NULL;
    d->conn = NULL;
    sim_dev_link_down(d, why);
}

struct sreq {
    uv_udp_send_t r;
    uv_buf_t b;
};

static void on_sent(uv_udp_send_t *r, int status)
{
    (void)status;
    free(r);
}

static int send_text(struct udp_conn *c, char *text)
{
    size_t n = strlen(text);
    struct sreq *r = malloc(sizeof(*r) + n);
    int rc;

    if (!r) {
        free(text);
        return -ENOMEM;
    }
    memcpy(r + 1, text, n);
    free(text);
    r->b = uv_buf_init((char *)(r + 1), (unsigned)n);
    rc = uv_udp_send(&r->r, &c->h, &r->b, 1, (const struct sockaddr *)&udp_addr, on_sent);
    if (rc != 0)
        free(r);
    else
        c->last_send_ms = sim_now_ms();
    return rc;
}

static int send_auth(struct udp_conn *c)
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
    c->tries++;
    return text ? send_text(c, text) : -ENOMEM;
}

/* Wraps a message in the token envelope. */
static char *envelope(struct sim_dev *d, char *body_text)
{
    cJSON *o = cJSON_CreateObject(), *body = cJSON_Parse(body_text);
    char *text = NULL;

    free(body_text);
    if (o && body && d->token) {
        cJSON_AddStringToObject(o, "token", d->token);
        cJSON_AddItemToObject(o, "body", body);
        body = NULL;
        text = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(body);
    cJSON_Delete(o);
    return text;
}

static void on_timer(uv_timer_t *t)
{
    struct udp_conn *c = t->data;
    struct sim_dev *d = c->d;

    if (!d)
        return;
    if (!c->authed) {
        if (c->tries >= AUTH_TRIES)
            lost(c, "no answer to the UDP login");
        else if (send_auth(c) != 0)
            lost(c, "cannot send the UDP login");
        return;
    }
    if (sim_now_ms() - c->last_send_ms >= KEEPALIVE_MS)
        sim_dev_post_properties(d);
}

static void on_login_reply(struct udp_conn *c, const cJSON *m, const cJSON *code)
{
    struct sim_dev *d = c->d;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(m, "data");
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(data, "token");

    if (!cJSON_IsNumber(code) || code->valuedouble != 0 || !cJSON_IsString(tok)) {
        c->s->c.auth_fail++;
        sim_problem(c->s, "%s/%s: udp login refused", d->pk, d->dn);
        d->want_link = false;
        lost(c, "login refused");
        return;
    }
    free(d->token);
    d->token = strdup(tok->valuestring);
    c->authed = true;
    uv_timer_start(&c->t, on_timer, KEEPALIVE_MS / 3, KEEPALIVE_MS / 3);
    sim_dev_link_up(d);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)h;
    (void)hint;
    *b = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
                    unsigned flags)
{
    struct udp_conn *c = h->data;
    cJSON *m;
    const cJSON *method, *code;

    (void)flags;
    if (n <= 0 || !from || !c->d)
        return;
    m = cJSON_ParseWithLength(b->base, (size_t)n);
    method = cJSON_GetObjectItemCaseSensitive(m, "method");
    code = cJSON_GetObjectItemCaseSensitive(m, "code");
    if (!m)
        return;
    if (!c->authed) {
        if (cJSON_IsString(method) && strcmp(method->valuestring, "auth") == 0 && code)
            on_login_reply(c, m, code);
    } else {
        sim_dev_on_message(c->d, m, sim_now_ms());
    }
    cJSON_Delete(m);
}

static int udp_connect(struct sim_dev *d)
{
    struct sim *s = d->sim;
    struct udp_conn *c = calloc(1, sizeof(*c));
    struct sockaddr_in any;

    if (!c)
        return -ENOMEM;
    c->s = s;
    c->d = d;
    uv_udp_init(s->loop, &c->h);
    uv_timer_init(s->loop, &c->t);
    c->h.data = c;
    c->t.data = c;
    s->conns_alive++;
    d->conn = c;
    uv_ip4_addr("0.0.0.0", 0, &any);
    if (uv_udp_bind(&c->h, (const struct sockaddr *)&any, 0) != 0 ||
        uv_udp_recv_start(&c->h, on_alloc, on_recv) != 0 || send_auth(c) != 0) {
        c->d = NULL;
        d->conn = NULL;
        close_conn(c);
        return -EIO;
    }
    uv_timer_start(&c->t, on_timer, AUTH_RESEND_MS, AUTH_RESEND_MS);
    return 0;
}

static int udp_send(struct sim_dev *d, const char *id, const char *method, const cJSON *params)
{
    struct udp_conn *c = d->conn;
    char *text;

    if (!c)
        return -ENOTCONN;
    text = envelope(d, sim_msg_text(id, method, params, -1));
    return text ? send_text(c, text) : -ENOMEM;
}

static int udp_reply(struct sim_dev *d, const char *id, const char *method, int code)
{
    struct udp_conn *c = d->conn;
    char *text;

    if (!c)
        return -ENOTCONN;
    text = envelope(d, sim_msg_text(id, method, NULL, code));
    return text ? send_text(c, text) : -ENOMEM;
}

static void udp_disconnect(struct sim_dev *d)
{
    struct udp_conn *c = d->conn;

    if (!c)
        return;
    c->d = NULL;
    d->conn = NULL;
    close_conn(c);
}

const struct sim_proto_ops sim_udp_ops = {
    .name = "udp",
    .init = udp_init,
    .connect = udp_connect,
    .send = udp_send,
    .reply = udp_reply,
    .disconnect = udp_disconnect,
    .fini = NULL,
};
