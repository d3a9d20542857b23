/*
 * DESIGN: CoAP devices (DESIGN §7.5, REFERENCE §4.5 plus the gateway's Observe downstream):
 *   POST /auth {clientId, username, password} → envelope {"code":0,"data":{"token":T}};
 *   GET /topic/sys/{pk}/{dn}/thing/ota/upgrade with Observe 0 and T in option 2088: the 2.05
 *       answer makes the link UP; every later notification carries one downstream message;
 *   POST /topic/sys/{pk}/{dn}/{method path} (option 2088) for each upstream message;
 *   firmware: GET of the coap:// fileUrl, Block2 (libcoap requests the blocks, each one
 *       comes to the response handler with its offset: sim_dl.c hashes them); a resumed
 *       download asks for the block holding the first missing byte itself and then each
 *       next block while the answer says more follow (libcoap 4.3.1 leaves a transfer the
 *       application started with its own Block2 option to the application). A `slow`
 *       device asks for every block itself, from block 0, and waits (a uv timer) before
 *       each request until --slow-rate allows the bytes it will bring (sim_dl_pace_ms).
 * All requests are confirmable; libcoap retransmits them. One libcoap context for all
 * devices, one client session (its own UDP socket) per device.
 *
 * Main thread: libcoap 4.3.1 is not thread-safe, so every coap_* call is made from the loop;
 * its epoll fd (which also fires for its retransmission timers) sits in a uv_poll, plus a
 * short timer as a backstop. The CoAP token of a request says what it was (first byte:
 * enum req_kind), so one response handler serves every device (found through the session's
 * app data; a device that disconnected cleared it, so late answers find nothing).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <coap3/coap.h>

#include "gw_auth.h"
#include "sim.h"

#define OPTION_TOKEN 2088
#define BLOCK_SZX 6 /* 1024-byte blocks: the gateway's default block_size */
#define BLOCK_BYTES (1u << (BLOCK_SZX + 4))
#define NO_BLOCK2 UINT64_MAX /* request(): no Block2 option */

enum req_kind { REQ_AUTH = 1, REQ_OBSERVE, REQ_POST, REQ_FW };

struct coap_pace;

struct coap_conn {
    struct sim *s;
    struct sim_dev *d;
    coap_session_t *sess;
    uint32_t seq;
    uint32_t fw_seq; /* token of the firmware GET in progress (0: none) */
    bool fw_manual;  /* resumed or slow: we ask for each block */
    bool fw_waiting; /* slow: the pacing timer will ask for fw_next */
    uint64_t fw_next;
    char *fw_path;   /* path and query of the firmware (owned) */
    struct coap_pace *pace; /* made on first use */
    bool authed;
};

/* The pacing timer of a slow download: its own allocation because uv_close is
 * asynchronous and the connection is freed at once (c is NULL by then). */
struct coap_pace {
    uv_timer_t t;
    struct coap_conn *c;
};

static coap_context_t *cctx;
static coap_address_t dst;
static uv_poll_t cpoll;
static uv_timer_t ctimer;
static bool inited;
/* Sessions to release outside libcoap's callbacks (a handler may end its own session). */
static coap_session_t **dead;
static size_t n_dead, cap_dead;

static void release_dead(void)
{
    for (size_t i = 0; i < n_dead; i++)
        coap_session_release(dead[i]);
    n_dead = 0;
}

static void end_session(coap_session_t *sess)
{
    coap_session_set_app_data(sess, NULL);
    if (n_dead == cap_dead) {
        size_t cap = cap_dead ? cap_dead * 2 : 64;
        coap_session_t **p = realloc(dead, cap * sizeof(*p));
        if (!p)
            return; /* kept until the context goes */
        dead = p;
        cap_dead = cap;
    }
    dead[n_dead++] = sess;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)h;
    (void)status;
    (void)events;
    coap_io_process(cctx, COAP_IO_NO_WAIT);
}

static void on_timer(uv_timer_t *t)
{
    (void)t;
    release_dead();
    coap_io_process(cctx, COAP_IO_NO_WAIT);
}

/* Adds the Uri-Path (and Uri-Query) options of "a/b/c?x=y" to *opts. */
static int add_uri(const char *path_query, coap_optlist_t **opts)
{
    const char *q = strchr(path_query, '?');
    size_t plen = q ? (size_t)(q - path_query) : strlen(path_query);
    uint8_t buf[1024], *b;
    size_t blen = sizeof(buf);
    int n;

    while (plen && path_query[0] == '/')
        path_query++, plen--;
    n = coap_split_path((const uint8_t *)path_query, plen, buf, &blen);
    for (b = buf; n-- > 0; b += coap_opt_size(b))
        coap_insert_optlist(opts, coap_new_optlist(COAP_OPTION_URI_PATH, coap_opt_length(b),
                                                   coap_opt_value(b)));
    if (q && q[1]) {
        blen = sizeof(buf);
        n = coap_split_query((const uint8_t *)q + 1, strlen(q + 1), buf, &blen);
        for (b = buf; n-- > 0; b += coap_opt_size(b))
            coap_insert_optlist(opts, coap_new_optlist(COAP_OPTION_URI_QUERY,
                                                       coap_opt_length(b), coap_opt_value(b)));
    }
    return 0;
}

/* Sends one confirmable request; returns its token sequence number (0 on failure). */
static uint32_t request(struct coap_conn *c, enum req_kind kind, coap_pdu_code_t code,
                        const char *path_query, const char *payload, bool observe,
                        uint64_t block2_from /* NO_BLOCK2: none */)
{
    coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_CON, code, coap_new_message_id(c->sess),
                                    coap_session_max_pdu_size(c->sess));
    coap_optlist_t *opts = NULL;
    uint8_t tok[5], v[4];
    uint32_t seq = ++c->seq;

    if (!pdu)
        return 0;
    tok[0] = (uint8_t)kind;
    tok[1] = (uint8_t)(seq >> 24);
    tok[2] = (uint8_t)(seq >> 16);
    tok[3] = (uint8_t)(seq >> 8);
    tok[4] = (uint8_t)seq;
    coap_add_token(pdu, sizeof(tok), tok);
    add_uri(path_query, &opts);
    if (observe)
        coap_insert_optlist(&opts, coap_new_optlist(COAP_OPTION_OBSERVE,
                                                    coap_encode_var_safe(v, sizeof(v), 0), v));
    if (payload)
        coap_insert_optlist(&opts, coap_new_optlist(
                                       COAP_OPTION_CONTENT_FORMAT,
                                       coap_encode_var_safe(v, sizeof(v),
                                                            COAP_MEDIATYPE_APPLICATION_JSON),
                                       v));
    if (block2_from != NO_BLOCK2) {
        uint32_t num = (uint32_t)(block2_from >> (BLOCK_SZX + 4));
        coap_insert_optlist(&opts, coap_new_optlist(
                                       COAP_OPTION_BLOCK2,
                                       coap_encode_var_safe(v, sizeof(v), (num << 4) | BLOCK_SZX),
                                       v));
    }
    if (kind != REQ_AUTH && c->d->token)
        coap_insert_optlist(&opts, coap_new_optlist(OPTION_TOKEN, strlen(c->d->token),
                                                    (const uint8_t *)c->d->token));
    coap_add_optlist_pdu(pdu, &opts);
    coap_delete_optlist(opts);
    if (payload && !coap_add_data(pdu, strlen(payload), (const uint8_t *)payload)) {
        coap_delete_pdu(pdu);
        return 0;
    }
    if (coap_send(c->sess, pdu) == COAP_INVALID_MID)
        return 0;
    return seq;
}

static void pace_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Frees the connection (its session is released later, outside libcoap's callbacks). */
static void conn_free(struct coap_conn *c)
{
    end_session(c->sess);
    c->s->conns_alive--;
    if (c->pace) {
        c->pace->c = NULL;
        uv_close((uv_handle_t *)&c->pace->t, pace_closed);
    }
    free(c->fw_path);
    free(c);
}

static void lost(struct coap_conn *c, const char *why)
{
    struct sim_dev *d = c->d;

    if (!d)
        return;
    d->conn = NULL;
    c->d = NULL;
    conn_free(c);
    sim_dev_link_down(d, why);
}

static int fw_ask(struct coap_conn *c, uint64_t from);

static void on_pace(uv_timer_t *t)
{
    struct coap_pace *p = t->data;
    struct coap_conn *c = p->c;

    if (!c || !c->d || !c->fw_waiting)
        return;
    c->fw_waiting = false;
    if (fw_ask(c, c->fw_next) != 0)
        sim_dl_coap_end(c->d, -EIO, "cannot ask for the next block");
}

/* Asks for the block holding byte `from` (manual transfers), after the pacing wait of a
 * slow device. */
static int fw_ask(struct coap_conn *c, uint64_t from)
{
    uint64_t wait = sim_dl_pace_ms(c->d, from + BLOCK_BYTES);

    if (wait) {
        if (!c->pace) {
            c->pace = calloc(1, sizeof(*c->pace));
            if (!c->pace)
                return -ENOMEM;
            c->pace->c = c;
            uv_timer_init(c->s->loop, &c->pace->t);
            c->pace->t.data = c->pace;
        }
        c->fw_next = from;
        c->fw_waiting = true;
        uv_timer_start(&c->pace->t, on_pace, wait, 0);
        return 0;
    }
    c->fw_seq = request(c, REQ_FW, COAP_REQUEST_CODE_GET, c->fw_path, NULL, false,
                        c->fw_manual ? from : NO_BLOCK2);
    return c->fw_seq ? 0 : -EIO;
}

static void on_auth(struct coap_conn *c, const cJSON *root)
{
    struct sim_dev *d = c->d;
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "code");
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "data"), "token");
    char path[SIM_PK_MAX + SIM_DN_MAX + 64];

    if (!cJSON_IsNumber(code) || code->valuedouble != 0 || !cJSON_IsString(tok)) {
        c->s->c.auth_fail++;
        sim_problem(c->s, "%s/%s: coap login refused", d->pk, d->dn);
        d->want_link = false;
        lost(c, "login refused");
        return;
    }
    free(d->token);
    d->token = strdup(tok->valuestring);
    snprintf(path, sizeof(path), "topic/sys/%s/%s/thing/ota/upgrade", d->pk, d->dn);
    if (!request(c, REQ_OBSERVE, COAP_REQUEST_CODE_GET, path, NULL, true, NO_BLOCK2))
        lost(c, "cannot register the Observe");
}

static void on_observe(struct coap_conn *c, const cJSON *root, bool ok)
{
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(root, "method");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "code");

    if (cJSON_IsString(method)) {
        sim_dev_on_message(c->d, root, sim_now_ms());
        return;
    }
    if (c->authed)
        return;
    if (!ok || !cJSON_IsNumber(code) || code->valuedouble != 0) {
        lost(c, "Observe registration refused");
        return;
    }
    c->authed = true;
    sim_dev_link_up(c->d);
}

static void on_fw_block(struct coap_conn *c, const coap_pdu_t *received, bool ok,
                        const uint8_t *data, size_t len, size_t offset, size_t total)
{
    coap_block_t b;
    bool more;

    if (!ok) {
        c->fw_seq = 0;
        sim_dl_coap_end(c->d, -EIO, "firmware GET refused");
        return;
    }
    if (c->fw_manual && coap_get_block(received, COAP_OPTION_BLOCK2, &b)) {
        offset = (size_t)b.num << (b.szx + 4);
        more = b.m;
    } else {
        more = offset + len < total;
    }
    if (sim_dl_coap_data(c->d, offset, data, len) != 0) {
        c->fw_seq = 0;
        sim_dl_coap_end(c->d, -EIO, NULL);
    } else if (!more) {
        c->fw_seq = 0;
        sim_dl_coap_end(c->d, 0, NULL);
    } else if (c->fw_manual && fw_ask(c, offset + len) != 0) {
        c->fw_seq = 0;
        sim_dl_coap_end(c->d, -EIO, "cannot ask for the next block");
    }
}

static coap_response_t on_response(coap_session_t *session, const coap_pdu_t *sent,
                                   const coap_pdu_t *received, const coap_mid_t mid)
{
    struct coap_conn *c = coap_session_get_app_data(session);
    coap_bin_const_t tok = coap_pdu_get_token(received);
    coap_pdu_code_t code = coap_pdu_get_code(received);
    bool ok = COAP_RESPONSE_CLASS(code) == 2;
    const uint8_t *data = NULL;
    size_t len = 0, offset = 0, total = 0;
    cJSON *root = NULL;
    uint32_t seq;

    (void)sent;
    (void)mid;
    if (!c || !c->d || tok.length != 5)
        return COAP_RESPONSE_OK;
    seq = (uint32_t)tok.s[1] << 24 | (uint32_t)tok.s[2] << 16 | (uint32_t)tok.s[3] << 8 | tok.s[4];
    coap_get_data_large(received, &len, &data, &offset, &total);
    if (tok.s[0] == REQ_FW) {
        if (seq == c->fw_seq && !c->fw_waiting)
            on_fw_block(c, received, ok, data, len, offset, total);
        return COAP_RESPONSE_OK; /* (or a transfer we gave up) */
    }
    root = len ? cJSON_ParseWithLength((const char *)data, len) : NULL;
    switch (tok.s[0]) {
    case REQ_AUTH:
        on_auth(c, root);
        break;
    case REQ_OBSERVE:
        on_observe(c, root, ok);
        break;
    case REQ_POST: {
        const cJSON *ec = cJSON_GetObjectItemCaseSensitive(root, "code");
        c->s->c.received++;
        if (!ok || !cJSON_IsNumber(ec) || ec->valuedouble != 0) {
            c->s->c.replies_err++;
            sim_problem(c->s, "%s/%s: coap post answered %d.%02d", c->d->pk, c->d->dn,
                        COAP_RESPONSE_CLASS(code), code & 0x1f);
        }
        break;
    }
    default:
        break;
    }
    cJSON_Delete(root);
    return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *session, const coap_pdu_t *sent,
                    const coap_nack_reason_t reason, const coap_mid_t mid)
{
    struct coap_conn *c = coap_session_get_app_data(session);
    coap_bin_const_t tok = coap_pdu_get_token(sent);

    (void)reason;
    (void)mid;
    if (!c || !c->d || tok.length != 5)
        return;
    if (tok.s[0] == REQ_FW && c->fw_seq) {
        c->fw_seq = 0;
        sim_dl_coap_end(c->d, -EIO, "firmware block not answered");
    } else if (tok.s[0] == REQ_AUTH || tok.s[0] == REQ_OBSERVE) {
        lost(c, "no CoAP answer");
    }
}

static int coap_sim_init(struct sim *s, const char *endpoint)
{
    struct sockaddr_storage ss;

    if (sim_endpoint_addr(endpoint, "coap", &ss) != 0 || ss.ss_family != AF_INET) {
        fprintf(stderr, "iotgw-sim: --coap-url %s: expected coap://IPv4:PORT\n", endpoint);
        return -EINVAL;
    }
    coap_startup();
    coap_set_log_level(LOG_ERR);
    cctx = coap_new_context(NULL);
    if (!cctx)
        return -ENOMEM;
    coap_context_set_block_mode(cctx, COAP_BLOCK_USE_LIBCOAP);
    coap_register_response_handler(cctx, on_response);
    coap_register_nack_handler(cctx, on_nack);
    coap_address_init(&dst);
    dst.size = sizeof(struct sockaddr_in);
    memcpy(&dst.addr.sin, &ss, sizeof(struct sockaddr_in));
    uv_poll_init(s->loop, &cpoll, coap_context_get_coap_fd(cctx));
    uv_poll_start(&cpoll, UV_READABLE, on_poll);
    uv_timer_init(s->loop, &ctimer);
    uv_timer_start(&ctimer, on_timer, 20, 20);
    inited = true;
    return 0;
}

static int coap_sim_connect(struct sim_dev *d)
{
    struct sim *s = d->sim;
    struct coap_conn *c = calloc(1, sizeof(*c));
    char cid[128], user[128], pw[65], *text;
    cJSON *p;

    if (!c)
        return -ENOMEM;
    c->s = s;
    c->d = d;
    c->sess = coap_new_client_session(cctx, NULL, &dst, COAP_PROTO_UDP);
    if (!c->sess || gw_auth_password(d->pk, d->dn, d->secret, pw) != 0 ||
        !(p = cJSON_CreateObject())) {
        if (c->sess)
            coap_session_release(c->sess);
        free(c);
        return -EIO;
    }
    coap_session_set_app_data(c->sess, c);
    s->conns_alive++;
    d->conn = c;
    snprintf(cid, sizeof(cid), "%s.%s", d->pk, d->dn);
    snprintf(user, sizeof(user), "%s&%s", d->dn, d->pk);
    cJSON_AddStringToObject(p, "clientId", cid);
    cJSON_AddStringToObject(p, "username", user);
    cJSON_AddStringToObject(p, "password", pw);
    text = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    if (!text || !request(c, REQ_AUTH, COAP_REQUEST_CODE_POST, "auth", text, false, NO_BLOCK2)) {
        free(text);
        d->conn = NULL;
        c->d = NULL;
        conn_free(c);
        return -EIO;
    }
    free(text);
    return 0;
}

static int post(struct sim_dev *d, const char *method, const char *suffix, char *text)
{
    struct coap_conn *c = d->conn;
    char path[SIM_PK_MAX + SIM_DN_MAX + 160], mp[96];
    uint32_t ok;

    if (!c || !text) {
        free(text);
        return c ? -ENOMEM : -ENOTCONN;
    }
    sim_method_path(method, mp, sizeof(mp));
    snprintf(path, sizeof(path), "topic/sys/%s/%s/%s%s", d->pk, d->dn, mp, suffix);
    ok = request(c, REQ_POST, COAP_REQUEST_CODE_POST, path, text, false, NO_BLOCK2);
    free(text);
    return ok ? 0 : -EIO;
}

static int coap_sim_send(struct sim_dev *d, const char *id, const char *method,
                         const cJSON *params)
{
    return post(d, method, "", sim_msg_text(id, method, params, -1));
}

static int coap_sim_reply(struct sim_dev *d, const char *id, const char *method, int code)
{
    return post(d, method, "_reply", sim_msg_text(id, method, NULL, code));
}

static void coap_sim_disconnect(struct sim_dev *d)
{
    struct coap_conn *c = d->conn;

    if (!c)
        return;
    d->conn = NULL;
    c->d = NULL;
    conn_free(c);
}

int sim_coap_fetch(struct sim_dev *d, const char *url, uint64_t from)
{
    struct coap_conn *c = d->proto == SIM_COAP ? d->conn : NULL;
    const char *p;

    if (!c || !c->authed || strncmp(url, "coap://", 7) != 0 || !(p = strchr(url + 7, '/')))
        return -ENOTCONN;
    free(c->fw_path);
    c->fw_path = strdup(p);
    if (!c->fw_path)
        return -ENOMEM;
    /* a resume asks for the block holding byte `from` (sim_dl skips what it already has) */
    from &= ~(uint64_t)(BLOCK_BYTES - 1);
    c->fw_manual = from > 0 || d->beh == SIM_BEH_SLOW;
    c->fw_waiting = false;
    return fw_ask(c, from);
}

void sim_coap_fetch_cancel(struct sim_dev *d)
{
    struct coap_conn *c = d->proto == SIM_COAP ? d->conn : NULL;

    if (!c)
        return;
    c->fw_seq = 0; /* later blocks are ignored; the session's end stops the transfer */
    c->fw_waiting = false;
    if (c->pace)
        uv_timer_stop(&c->pace->t);
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static void coap_sim_fini(struct sim *s)
{
    (void)s;
    if (!inited)
        return;
    inited = false;
    uv_close((uv_handle_t *)&cpoll, close_cb);
    uv_close((uv_handle_t *)&ctimer, close_cb);
    release_dead();
    free(dead);
    dead = NULL;
    n_dead = cap_dead = 0;
    coap_free_context(cctx);
    cctx = NULL;
    coap_cleanup();
}

const struct sim_proto_ops sim_coap_ops = {
    .name = "coap",
    .init = coap_sim_init,
    .connect = coap_sim_connect,
    .send = coap_sim_send,
    .reply = coap_sim_reply,
    .disconnect = coap_sim_disconnect,
    .fini = coap_sim_fini,
};
