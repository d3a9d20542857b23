/*
 * DESIGN: Modbus devices that dial in to the gateway's modbus_tcp_server adapter (DESIGN
 * §7.5 "Modbus:", gateway/adapters/modbus/README.md): one libuv TCP connection per device,
 * Modbus TCP (MBAP) framing. The device speaks first: a login frame with the custom
 * function code 65, PDU [65][byte count][{"method":"auth","params":{clientId, username,
 * password}}]; the answer (same function code) carries {"method":"auth","code":C}, and
 * code 0 makes the link UP. From then on the roles turn round: the gateway is the master and
 * sends requests on this connection (polls of the property registers, the §5.6 OTA writes
 * and reads), which the device answers from its registers (sim_modbus_regs.c). The `slow`
 * behaviour holds every answer back (240 bytes' worth at --slow-rate, at most
 * SLOW_MAX_MS, below the gateway's default 1000 ms request timeout).
 *
 * Why the frames are parsed here and not with libmodbus (modbus_set_socket +
 * modbus_receive/modbus_reply): modbus_receive reads one frame with several blocking
 * recv()s and select()s in between (a partial frame waits up to the byte timeout inside the
 * call, stalling the whole loop and every other device), it sizes frames from the function
 * code, so it cannot take the custom-function login answer (whose length only the MBAP
 * header gives), and modbus_reply writes at once with send(), which leaves no room to hold
 * an answer back (slow) or to hang up instead of answering (drop). The MBAP layer is a
 * 7-byte header; the register semantics are ours either way.
 *
 * Main thread. struct mb_conn is owned by this file: it hangs on d->conn while the device
 * uses it; disconnect detaches it (conn->d = NULL) and closes its two handles, and the
 * second close callback frees it. The registers (d->pstate) outlive the connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_auth.h"
#include "sim.h"

#define LOGIN_FC 65      /* the adapter's customFunctionCode (its default) */
#define LOGIN_TID 0x4c47 /* transaction id of the login frame */
#define UNIT_ID 1
#define MBAP_HEADER 7 /* tid, protocol 0, length, unit */
#define MAX_PDU 253
#define RBUF_BYTES 4096
#define SLOW_MAX_MS 400

struct mb_conn {
    uv_tcp_t h;
    uv_timer_t slow; /* a held-back answer goes out when it fires */
    uv_connect_t creq;
    struct sim *s;
    struct sim_dev *d;
    int closing; /* handles still to close */
    bool authed;
    uint8_t rbuf[RBUF_BYTES];
    size_t rlen;
    uint8_t held[MBAP_HEADER + MAX_PDU];
    size_t held_len;
};

static struct sockaddr_storage mb_addr;

static int mb_init(struct sim *s, const char *endpoint)
{
    (void)s;
    if (sim_endpoint_addr(endpoint, "tcp", &mb_addr) != 0) {
        fprintf(stderr, "iotgw-sim: --modbus-url %s: expected tcp://IP:PORT\n", endpoint);
        return -EINVAL;
    }
    return 0;
}

static void on_close(uv_handle_t *h)
{
    struct mb_conn *c = h->data;

    if (--c->closing == 0) {
        c->s->conns_alive--;
        free(c);
    }
}

static void close_conn(struct mb_conn *c)
{
    if (c->closing)
        return;
    c->closing = 2;
    uv_close((uv_handle_t *)&c->h, on_close);
    uv_close((uv_handle_t *)&c->slow, on_close);
}

/* The link ended by itself (error, EOF, refused login). */
static void lost(struct mb_conn *c, const char *why)
{
    close_conn(c);
    sim_dev_conn_lost(&c->d, why);
}

static int write_adu(struct mb_conn *c, const uint8_t *adu, size_t len)
{
    return sim_stream_write((uv_stream_t *)&c->h, adu, len, NULL, 0);
}

/* MBAP header + pdu into adu; returns the ADU's length. */
static size_t wrap(uint16_t tid, uint8_t unit, const uint8_t *pdu, size_t len, uint8_t *adu)
{
    adu[0] = (uint8_t)(tid >> 8);
    adu[1] = (uint8_t)tid;
    adu[2] = adu[3] = 0;
    adu[4] = (uint8_t)((len + 1) >> 8);
    adu[5] = (uint8_t)(len + 1);
    adu[6] = unit;
    memcpy(adu + MBAP_HEADER, pdu, len);
    return MBAP_HEADER + len;
}

static void on_slow(uv_timer_t *t)
{
    struct mb_conn *c = t->data;

    if (c->d && c->held_len && write_adu(c, c->held, c->held_len) != 0)
        lost(c, "cannot write");
    c->held_len = 0;
}

/* The answer of a slow device waits as long as 240 bytes take at --slow-rate. */
static void answer(struct mb_conn *c, const uint8_t *adu, size_t len)
{
    uint64_t ms;

    if (c->held_len) { /* the gateway asks one thing at a time; never reorder answers */
        uv_timer_stop(&c->slow);
        on_slow(&c->slow);
    }
    if (!c->d)
        return;
    if (c->d->beh != SIM_BEH_SLOW) {
        if (write_adu(c, adu, len) != 0)
            lost(c, "cannot write");
        return;
    }
    ms = 240ull * 1000 / (c->s->o.slow_rate ? c->s->o.slow_rate : 1) + 1;
    memcpy(c->held, adu, len);
    c->held_len = len;
    uv_timer_start(&c->slow, on_slow, ms < SLOW_MAX_MS ? ms : SLOW_MAX_MS, 0);
}

static void on_login_answer(struct mb_conn *c, const uint8_t *pdu, size_t len)
{
    struct sim_dev *d = c->d;
    cJSON *m = len >= 2 && pdu[1] == len - 2 ? cJSON_ParseWithLength((const char *)pdu + 2, len - 2)
                                             : NULL;
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(m, "code");

    if (cJSON_IsNumber(code) && code->valuedouble == 0) {
        c->authed = true;
        sim_dev_link_up(d);
    } else {
        c->s->c.auth_fail++;
        sim_problem(c->s,
                    "%s/%s: modbus login refused (code %.0f; is the device in the "
                    "adapter's devices list?)",
                    d->pk, d->dn, cJSON_IsNumber(code) ? code->valuedouble : -1);
        d->want_link = false;
        lost(c, "login refused");
    }
    cJSON_Delete(m);
}

/* One frame from the gateway: the login answer, then requests. */
static void on_frame(struct mb_conn *c, uint16_t tid, uint8_t unit, const uint8_t *pdu, size_t len)
{
    uint8_t out[MAX_PDU], adu[MBAP_HEADER + MAX_PDU];
    size_t out_len = 0;

    if (len == 0)
        return;
    if (pdu[0] == LOGIN_FC) {
        if (!c->authed)
            on_login_answer(c, pdu, len);
        return;
    }
    if (!c->authed) {
        lost(c, "a request before the login answer");
        return;
    }
    if (sim_mb_request(c->d, pdu, len, out, &out_len) == SIM_MB_DROP) {
        /* the drop behaviour: hang up with this request unanswered, dial in again */
        sim_dev_disconnect(c->d, true);
        return;
    }
    answer(c, adu, wrap(tid, unit, out, out_len, adu));
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct mb_conn *c = h->data;

    (void)hint;
    *b = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(sizeof(c->rbuf) - c->rlen));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct mb_conn *c = st->data;
    size_t off = 0;

    (void)b;
    if (n < 0) {
        lost(c, n == UV_EOF ? "closed by the gateway" : uv_strerror((int)n));
        return;
    }
    c->rlen += (size_t)n;
    while (c->d && c->rlen - off >= MBAP_HEADER) {
        const uint8_t *f = c->rbuf + off;
        size_t flen = (size_t)f[4] << 8 | f[5];

        if (f[2] || f[3] || flen < 2 || flen > MAX_PDU + 1) {
            lost(c, "not a Modbus TCP frame");
            return;
        }
        if (c->rlen - off < 6 + flen)
            break;
        on_frame(c, (uint16_t)(f[0] << 8 | f[1]), f[6], f + MBAP_HEADER, flen - 1);
        off += 6 + flen;
    }
    if (!c->d)
        return; /* detached: the buffer goes with the connection */
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
}

/* The login frame: the credentials of DESIGN §4 as the TCP/UDP `auth` carries them; the
 * byte count is one byte, so a long clientId is left out (the adapter does not need it). */
static int send_login(struct mb_conn *c)
{
    struct sim_dev *d = c->d;
    char cid[128], user[128], pw[65], *text = NULL;
    uint8_t pdu[MAX_PDU], adu[MBAP_HEADER + MAX_PDU];
    cJSON *o = cJSON_CreateObject(), *p = cJSON_AddObjectToObject(o, "params");
    size_t n;
    int rc = -ENOMEM;

    if (!p || gw_auth_password(d->pk, d->dn, d->secret, pw) != 0)
        goto out;
    cJSON_AddStringToObject(o, "method", "auth");
    snprintf(cid, sizeof(cid), "%s.%s", d->pk, d->dn);
    snprintf(user, sizeof(user), "%s&%s", d->dn, d->pk);
    cJSON_AddStringToObject(p, "clientId", cid);
    cJSON_AddStringToObject(p, "username", user);
    cJSON_AddStringToObject(p, "password", pw);
    text = cJSON_PrintUnformatted(o);
    if (text && strlen(text) > 250) {
        cJSON_DeleteItemFromObject(p, "clientId");
        cJSON_free(text);
        text = cJSON_PrintUnformatted(o);
    }
    if (!text)
        goto out;
    n = strlen(text);
    rc = -EMSGSIZE;
    if (n > 250)
        goto out;
    pdu[0] = LOGIN_FC;
    pdu[1] = (uint8_t)n;
    memcpy(pdu + 2, text, n);
    rc = write_adu(c, adu, wrap(LOGIN_TID, UNIT_ID, pdu, n + 2, adu));
out:
    cJSON_free(text);
    cJSON_Delete(o);
    return rc;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct mb_conn *c = req->data;

    if (!c->d)
        return; /* detached while connecting: the handles are closing */
    if (status < 0) {
        lost(c, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&c->h, 1);
    uv_read_start((uv_stream_t *)&c->h, on_alloc, on_read);
    if (send_login(c) != 0)
        lost(c, "cannot send the login");
}

static int mb_connect(struct sim_dev *d)
{
    struct sim *s = d->sim;
    struct mb_conn *c;
    int rc = sim_mb_state(d);

    if (rc != 0)
        return rc;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->s = s;
    c->d = d;
    uv_tcp_init(s->loop, &c->h);
    uv_timer_init(s->loop, &c->slow);
    c->h.data = c->slow.data = c;
    c->creq.data = c;
    s->conns_alive++;
    d->conn = c;
    rc = uv_tcp_connect(&c->creq, &c->h, (const struct sockaddr *)&mb_addr, on_connect);
    if (rc != 0) {
        d->conn = NULL;
        c->d = NULL;
        close_conn(c);
    }
    return rc;
}

/* A property post of the tick: the new values go into the registers the gateway polls
 * (counted as sent: the gateway's next poll carries them). */
static int mb_send(struct sim_dev *d, const char *id, const char *method, const cJSON *params)
{
    (void)id;
    if (!d->conn)
        return -ENOTCONN;
    if (strcmp(method, "thing.property.post") != 0)
        return -ENOTSUP;
    return sim_mb_set_properties(d, params);
}

/* No JSON requests reach a Modbus device: thing.property.set arrives as register writes. */
static int mb_reply(struct sim_dev *d, const char *id, const char *method, int code)
{
    (void)d;
    (void)id;
    (void)method;
    (void)code;
    return -ENOTSUP;
}

static void mb_disconnect(struct sim_dev *d)
{
    struct mb_conn *c = d->conn;

    if (!c)
        return;
    c->d = NULL;
    d->conn = NULL;
    close_conn(c);
}

static void mb_fini(struct sim *s)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (s->devs[i].proto == SIM_MODBUS)
            sim_mb_free(&s->devs[i]);
}

const struct sim_proto_ops sim_modbus_ops = {
    .name = "modbus",
    .init = mb_init,
    .connect = mb_connect,
    .send = mb_send,
    .reply = mb_reply,
    .disconnect = mb_disconnect,
    .fini = mb_fini,
    .ota_by_gateway = true,
};
