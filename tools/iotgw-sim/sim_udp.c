/*
 * DESIGN: UDP devices (DESIGN §4 tokens, §7.5): one libuv UDP socket per device (the gateway
 * sends a device's downstream messages to the address of its last datagram, so devices
 * cannot share a socket), one JSON message per datagram. Login: `auth` → a token; every
 * later message is the envelope {"token": T, "body": {id, method, params}}. A device that
 * sent nothing for KEEPALIVE_MS posts its properties so the gateway keeps its session
 * (session_timeout_s).
 *
 * Datagrams get lost, so a request whose reply does not come is sent again with the same id,
 * as a real device does: after RTX_FIRST_MS, doubling, RTX_TRIES transmissions in all. That
 * is the login (always answered); a login never answered drops the link. Property posts are
 * not sent again (a lost sample is replaced by the next one). thing.ota.progress is
 * different: the gateway answers a report only when it rejects it (gw_method.c: reply on
 * error), so silence is all a device ever hears for a report that arrived. The reports that
 * move the record (the first, progress 0: pushed → upgrading before the push timeout; and
 * the final 30/40) are therefore repeated blindly on the same schedule, RTX_TRIES copies in
 * all unless a rejection settles them first; the steps in between are superseded by the next
 * report. The gateway does not deduplicate ids: a copy that arrives after the record ended
 * is rejected "no active record" (1050008202); for a report already repeated that answer is
 * counted as late and ignored, like a second reply to any request.
 * --udp-loss drops a share of outgoing datagrams on purpose, each decided by a hash of (seed,
 * device, connection, id, try): the same run loses the same ones whatever the timing.
 *
 * Main thread. struct udp_conn owns a socket and two timers (login and keepalive;
 * retransmissions); all are closed on disconnect and the struct is freed when the last close
 * callback ran.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_auth.h"
#include "gw_error.h"
#include "sim.h"

#define RTX_FIRST_MS 500 /* first wait for a reply; doubles with every try */
#define RTX_TRIES 5      /* transmissions of one request: the first and 4 more */
#define RTX_SLOTS 8      /* requests tracked at once per device (untracked beyond) */
#define RTX_TICK_MS 50
#define KEEPALIVE_MS 30000

/* One upstream request waiting for its reply (or answered, kept to spot a late copy). */
struct rtx {
    char id[16];
    char method[48];
    char *text;    /* the datagram to send again; NULL when answered or given up */
    int tries;
    bool blind;    /* no reply expected (a progress report): repeated, never "unanswered" */
    int64_t due_ms, done_ms;
};

struct udp_conn {
    uv_udp_t h;
    uv_timer_t t;  /* login retries, then keepalive */
    uv_timer_t rt; /* retransmissions, runs while a request waits */
    struct sim *s;
    struct sim_dev *d;
    int closing; /* handles still to close */
    int tries;   /* login transmissions */
    bool authed;
    int64_t last_send_ms;
    struct rtx rtx[RTX_SLOTS];
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
        for (int i = 0; i < RTX_SLOTS; i++)
            free(c->rtx[i].text);
        free(c);
    }
}

static void close_conn(struct udp_conn *c)
{
    if (c->closing)
        return;
    c->closing = 3;
    uv_close((uv_handle_t *)&c->h, on_close);
    uv_close((uv_handle_t *)&c->t, on_close);
    uv_close((uv_handle_t *)&c->rt, on_close);
}

static void lost(struct udp_conn *c, const char *why)
{
    close_conn(c);
    sim_dev_conn_lost(&c->d, why);
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

/* --udp-loss: whether this transmission is "lost". A hash, not a random stream, so that
 * timing (how many retransmissions happened elsewhere) does not change what is lost. */
static bool lose(struct udp_conn *c, const char *key, int try)
{
    struct sim_dev *d = c->d;
    char buf[96];
    uint32_t h = 2166136261u;
    int n;

    if (c->s->o.udp_loss <= 0)
        return false;
    n = snprintf(buf, sizeof(buf), "%u|%u|%u|%s|%d", c->s->o.seed, d->idx, d->gen, key, try);
    for (int i = 0; i < n && i < (int)sizeof(buf); i++) {
        h ^= (uint8_t)buf[i];
        h *= 16777619u;
    }
    h ^= h >> 15; /* FNV's low bits mix poorly */
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    return (double)h / 4294967296.0 < c->s->o.udp_loss;
}

/* Sends text (borrowed); key and try name the transmission for --udp-loss. */
static int send_copy(struct udp_conn *c, const char *text, const char *key, int try)
{
    size_t n = strlen(text);
    struct sreq *r;
    int rc;

    if (lose(c, key, try)) {
        c->s->c.udp_lost++;
        c->last_send_ms = sim_now_ms();
        return 0; /* as far as the device knows, it went out */
    }
    r = malloc(sizeof(*r) + n);
    if (!r)
        return -ENOMEM;
    memcpy(r + 1, text, n);
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
    int rc;

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
    if (!text)
        return -ENOMEM;
    if (++c->tries > 1)
        c->s->c.udp_rtx++;
    rc = send_copy(c, text, "auth", c->tries);
    free(text);
    return rc;
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

/* ---- retransmission ---- */

static void on_rtx(uv_timer_t *t)
{
    struct udp_conn *c = t->data;
    struct sim *s = c->s;
    int64_t now = sim_now_ms();
    bool waiting = false;

    for (int i = 0; c->d && i < RTX_SLOTS; i++) {
        struct rtx *r = &c->rtx[i];

        if (!r->text || now < r->due_ms) {
            waiting = waiting || r->text;
            continue;
        }
        if (r->tries >= RTX_TRIES) {
            if (!r->blind) {
                s->c.udp_unanswered++;
                sim_problem(s, "%s/%s: udp %s (id %s): no reply after %d tries", c->d->pk,
                            c->d->dn, r->method, r->id, r->tries);
            }
            free(r->text);
            r->text = NULL;
            r->done_ms = now;
            continue;
        }
        r->tries++;
        if (r->blind)
            s->c.udp_repeats++;
        else
            s->c.udp_rtx++;
        send_copy(c, r->text, r->id, r->tries);
        r->due_ms = now + ((int64_t)RTX_FIRST_MS << (r->tries - 1));
        waiting = true;
    }
    if (!waiting)
        uv_timer_stop(&c->rt);
}

/* Keeps the request *text (taken) for retransmission until its reply comes (blind: for
 * RTX_TRIES copies). The slot is one never used, else the one answered longest ago; with
 * every slot waiting it goes untracked. */
static void track(struct udp_conn *c, const char *id, const char *method, bool blind,
                  char **text)
{
    struct rtx *r = NULL;

    for (int i = 0; i < RTX_SLOTS; i++) {
        struct rtx *x = &c->rtx[i];
        if (!x->id[0]) {
            r = x;
            break;
        }
        if (!x->text && (!r || x->done_ms < r->done_ms))
            r = x;
    }
    if (!r)
        return;
    snprintf(r->id, sizeof(r->id), "%s", id);
    snprintf(r->method, sizeof(r->method), "%s", method);
    r->text = *text;
    *text = NULL;
    r->tries = 1;
    r->blind = blind;
    r->due_ms = sim_now_ms() + RTX_FIRST_MS;
    if (!uv_is_active((uv_handle_t *)&c->rt))
        uv_timer_start(&c->rt, on_rtx, RTX_TICK_MS, RTX_TICK_MS);
}

/* A reply arrived: false when it answers a request already settled (a copy), or rejects a
 * repeated report because an earlier copy ended the record. */
static bool settle(struct udp_conn *c, const cJSON *m)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(m, "code");
    bool late;

    if (!cJSON_IsString(id))
        return true;
    for (int i = 0; i < RTX_SLOTS; i++) {
        struct rtx *r = &c->rtx[i];

        if (!r->id[0] || strcmp(r->id, id->valuestring) != 0)
            continue;
        late = !r->text || (r->blind && r->tries > 1 && cJSON_IsNumber(code) &&
                            code->valuedouble ==
                                (double)gw_error_api_code(GW_E_RECORD_NO_ACTIVE));
        if (r->text) {
            free(r->text);
            r->text = NULL;
            r->done_ms = sim_now_ms();
        }
        if (late)
            c->s->c.udp_late++;
        return !late;
    }
    return true;
}

/* Reports that move the record are repeated (see the top of the file). */
static bool repeat_report(const char *method, const cJSON *params)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(params, "status");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(params, "progress");

    if (strcmp(method, "thing.ota.progress") != 0)
        return false;
    return !cJSON_IsNumber(st) || st->valuedouble != 20 || !cJSON_IsNumber(pr) ||
           pr->valuedouble == 0;
}

static void on_timer(uv_timer_t *t)
{
    struct udp_conn *c = t->data;
    struct sim_dev *d = c->d;

    if (!d)
        return;
    if (!c->authed) {
        if (c->tries >= RTX_TRIES)
            lost(c, "no answer to the UDP login");
        else if (send_auth(c) != 0)
            lost(c, "cannot send the UDP login");
        else
            uv_timer_start(&c->t, on_timer, (uint64_t)RTX_FIRST_MS << (c->tries - 1), 0);
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
    } else if (!code || settle(c, m)) {
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
    uv_timer_init(s->loop, &c->rt);
    c->h.data = c;
    c->t.data = c;
    c->rt.data = c;
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
    uv_timer_start(&c->t, on_timer, RTX_FIRST_MS, 0);
    return 0;
}

static int udp_send(struct sim_dev *d, const char *id, const char *method, const cJSON *params)
{
    struct udp_conn *c = d->conn;
    char *text;
    int rc;

    if (!c)
        return -ENOTCONN;
    text = envelope(d, sim_msg_text(id, method, params, -1));
    if (!text)
        return -ENOMEM;
    rc = send_copy(c, text, id, 1);
    /* property posts go once; reports are repeated blindly (the gateway is silent when it
     * takes one); any other request is sent again until its reply */
    if (rc == 0 && strcmp(method, "thing.property.post") != 0 &&
        (strcmp(method, "thing.ota.progress") != 0 || repeat_report(method, params)))
        track(c, id, method, repeat_report(method, params), &text);
    free(text);
    return rc;
}

static int udp_reply(struct sim_dev *d, const char *id, const char *method, int code)
{
    struct udp_conn *c = d->conn;
    char key[24], *text;
    int rc;

    if (!c)
        return -ENOTCONN;
    text = envelope(d, sim_msg_text(id, method, NULL, code));
    if (!text)
        return -ENOMEM;
    snprintf(key, sizeof(key), "r%s", id);
    rc = send_copy(c, text, key, 1);
    free(text);
    return rc;
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
