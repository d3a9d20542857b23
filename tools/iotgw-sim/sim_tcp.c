/*
 * DESIGN: TCP devices (DESIGN §4 delimiter framing, §7.5): one libuv TCP connection per
 * device, JSON messages each ended by '\n' (the gateway's default listener). The first
 * message is `auth` {clientId, username, password}; its reply with code 0 makes the link UP.
 *
 * Main thread. struct tcp_conn is owned by this file: it hangs on d->conn while the device
 * uses it; disconnect detaches it (conn->d = NULL) and closes the handle, and the close
 * callback frees it, so libuv callbacks that come after a detach find no device.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_auth.h"
#include "sim.h"

#define LINE_MAX_BYTES (64 * 1024)

struct tcp_conn {
    uv_tcp_t h;
    uv_connect_t creq;
    struct sim *s;
    struct sim_dev *d;
    char *buf;
    size_t len, cap;
    bool authed;
};

struct wreq {
    uv_write_t w;
    uv_buf_t b;
};

static struct sockaddr_storage tcp_addr;
static char rbuf[64 * 1024]; /* one read at a time on this thread */

int sim_endpoint_addr(const char *url, const char *scheme, struct sockaddr_storage *out)
{
    char host[128];
    const char *p = url, *colon;
    size_t n = strlen(scheme);
    long port;

    if (strncmp(p, scheme, n) == 0 && strncmp(p + n, "://", 3) == 0)
        p += n + 3;
    colon = strrchr(p, ':');
    if (!colon || (size_t)(colon - p) >= sizeof(host))
        return -EINVAL;
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    port = strtol(colon + 1, NULL, 10);
    if (port <= 0 || port > 65535)
        return -EINVAL;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0)
        return 0;
    return -EINVAL;
}

static int tcp_init(struct sim *s, const char *endpoint)
{
    if (sim_endpoint_addr(endpoint, "tcp", &tcp_addr) != 0) {
        fprintf(stderr, "iotgw-sim: --tcp-url %s: expected tcp://IP:PORT\n", endpoint);
        return -EINVAL;
    }
    (void)s;
    return 0;
}

static void on_close(uv_handle_t *h)
{
    struct tcp_conn *c = h->data;

    c->s->conns_alive--;
    free(c->buf);
    free(c);
}

/* The link ended by itself (error, EOF, refused login). */
static void lost(struct tcp_conn *c, const char *why)
{
    if (!uv_is_closing((uv_handle_t *)&c->h))
        uv_close((uv_handle_t *)&c->h, on_close);
    sim_dev_conn_lost(&c->d, why);
}

static void on_write(uv_write_t *w, int status)
{
    (void)status; /* a failed write shows up as a read error or EOF too */
    free(w);
}

int sim_stream_write(uv_stream_t *s, const void *head, size_t hlen, const void *tail,
                     size_t tlen)
{
    struct wreq *w = malloc(sizeof(*w) + hlen + tlen);
    int rc;

    if (!w)
        return UV_ENOMEM;
    memcpy((char *)(w + 1), head, hlen);
    if (tlen)
        memcpy((char *)(w + 1) + hlen, tail, tlen);
    w->b = uv_buf_init((char *)(w + 1), (unsigned)(hlen + tlen));
    rc = uv_write(&w->w, s, &w->b, 1, on_write);
    if (rc != 0)
        free(w);
    return rc;
}

static int write_text(struct tcp_conn *c, char *text)
{
    int rc = sim_stream_write((uv_stream_t *)&c->h, text, strlen(text), "\n", 1);

    free(text);
    return rc;
}

static void on_line(struct tcp_conn *c, const char *line, size_t len)
{
    struct sim_dev *d = c->d;
    cJSON *m = cJSON_ParseWithLength(line, len);
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(m, "method");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(m, "code");

    if (!m) {
        sim_problem(c->s, "%s/%s: tcp: a frame that is not JSON", d->pk, d->dn);
        return;
    }
    if (!c->authed && cJSON_IsString(method) && strcmp(method->valuestring, "auth") == 0 &&
        code) {
        if (cJSON_IsNumber(code) && code->valuedouble == 0) {
            c->authed = true;
            sim_dev_link_up(d);
        } else {
            c->s->c.auth_fail++;
            sim_problem(c->s, "%s/%s: tcp login refused (code %.0f)", d->pk, d->dn,
                        cJSON_IsNumber(code) ? code->valuedouble : -1);
            d->want_link = false;
            lost(c, "login refused");
        }
    } else if (c->authed) {
        sim_dev_on_message(d, m, sim_now_ms());
    }
    cJSON_Delete(m);
}

static int buffer(struct tcp_conn *c, const char *in, size_t n)
{
    if (c->len + n > LINE_MAX_BYTES)
        return -EMSGSIZE;
    if (c->len + n > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        char *p;

        while (cap < c->len + n)
            cap *= 2;
        p = realloc(c->buf, cap);
        if (!p)
            return -ENOMEM;
        c->buf = p;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, in, n);
    c->len += n;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)h;
    (void)hint;
    *b = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct tcp_conn *c = st->data;
    const char *p = b->base, *end, *nl;

    if (n < 0) {
        lost(c, n == UV_EOF ? "closed by the gateway" : uv_strerror((int)n));
        return;
    }
    end = p + n;
    while (c->d && p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
        if (c->len) {
            if (buffer(c, p, (size_t)(nl - p)) != 0) {
                lost(c, "frame too long");
                return;
            }
            on_line(c, c->buf, c->len);
            c->len = 0;
        } else {
            on_line(c, p, (size_t)(nl - p));
        }
        p = nl + 1;
    }
    if (c->d && p < end && buffer(c, p, (size_t)(end - p)) != 0)
        lost(c, "frame too long");
}

static void on_connect(uv_connect_t *req, int status)
{
    struct tcp_conn *c = req->data;
    struct sim_dev *d = c->d;
    char cid[128], user[128], pw[65], *text;
    cJSON *p;

    if (!d)
        return; /* detached while connecting: the handle is closing */
    if (status < 0) {
        lost(c, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&c->h, 1);
    uv_read_start((uv_stream_t *)&c->h, on_alloc, on_read);
    snprintf(cid, sizeof(cid), "%s.%s", d->pk, d->dn);
    snprintf(user, sizeof(user), "%s&%s", d->dn, d->pk);
    if (gw_auth_password(d->pk, d->dn, d->secret, pw) != 0 || !(p = cJSON_CreateObject())) {
        lost(c, "cannot build the login");
        return;
    }
    cJSON_AddStringToObject(p, "clientId", cid);
    cJSON_AddStringToObject(p, "username", user);
    cJSON_AddStringToObject(p, "password", pw);
    text = sim_msg_text("auth", "auth", p, -1);
    cJSON_Delete(p);
    if (!text || write_text(c, text) != 0)
        lost(c, "cannot send the login");
}

static int tcp_connect(struct sim_dev *d)
{
    struct sim *s = d->sim;
    struct tcp_conn *c = calloc(1, sizeof(*c));
    int rc;

    if (!c)
        return -ENOMEM;
    c->s = s;
    c->d = d;
    uv_tcp_init(s->loop, &c->h);
    c->h.data = c;
    c->creq.data = c;
    s->conns_alive++;
    d->conn = c;
    rc = uv_tcp_connect(&c->creq, &c->h, (const struct sockaddr *)&tcp_addr, on_connect);
    if (rc != 0) {
        d->conn = NULL;
        c->d = NULL;
        uv_close((uv_handle_t *)&c->h, on_close);
        return rc;
    }
    return 0;
}

static int tcp_send(struct sim_dev *d, const char *id, const char *method, const cJSON *params)
{
    struct tcp_conn *c = d->conn;
    char *text;

    if (!c)
        return -ENOTCONN;
    text = sim_msg_text(id, method, params, -1);
    return text ? write_text(c, text) : -ENOMEM;
}

static int tcp_reply(struct sim_dev *d, const char *id, const char *method, int code)
{
    struct tcp_conn *c = d->conn;
    char *text;

    if (!c)
        return -ENOTCONN;
    text = sim_msg_text(id, method, NULL, code);
    return text ? write_text(c, text) : -ENOMEM;
}

static void tcp_disconnect(struct sim_dev *d)
{
    struct tcp_conn *c = d->conn;

    if (!c)
        return;
    c->d = NULL;
    d->conn = NULL;
    if (!uv_is_closing((uv_handle_t *)&c->h))
        uv_close((uv_handle_t *)&c->h, on_close);
}

const struct sim_proto_ops sim_tcp_ops = {
    .name = "tcp",
    .init = tcp_init,
    .connect = tcp_connect,
    .send = tcp_send,
    .reply = tcp_reply,
    .disconnect = tcp_disconnect,
    .fini = NULL,
};
