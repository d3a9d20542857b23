/*
 * DESIGN: the HTTP device API as the lws protocol callback sees it (service thread only; see
 * http_adapter.c for the threads and http_devices.c for downstream delivery).
 *
 * Routes (REFERENCE §4.4, plus the beyond long-poll):
 *   POST /auth                                  {clientId, username, password} → {token}
 *   POST /topic/sys/{pk}/{dn}/{method path}     a device request or, on ..._reply, a reply
 *   GET  /topic/sys/{pk}/{dn}/downstream?wait=S queued downstream messages (JSON array)
 * Every answer is the envelope {"code","msg","data"}, except the long-poll's array. The
 * HTTP status mirrors the code for 400/401/403/404/405/411/413/500/503/504 and is 200
 * otherwise (business codes such as 1050003000 travel in a 200, as in the reference).
 *
 * Tokens: `Authorization: <jwt>` or `Authorization: Bearer <jwt>`, verified here with the
 * core's secret (HS256); forged, malformed, missing or expired → 401; a token of another
 * device than the path's → 403.
 *
 * Requests never block the service thread: /auth and methods the core answers are posted
 * with a fresh handle and parked (phase WAIT) until submit files the reply and wakes us;
 * methods without a reply are answered {"code":0, data {messageId}} once posted. The core's
 * error answer to a thing.ota.progress (beyond) is not waited for: HTTP answers it at once.
 *
 * A request rejected before its body was read closes the connection after the answer, so
 * unread bytes are never parsed as the next request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "gw_codec.h"
#include "gw_core.h"
#include "gw_error.h"
#include "gw_jwt.h"
#include "gw_log.h"
#include "gw_store.h" /* enum gw_device_state only */
#include "http_internal.h"

#define CHUNK (16 * 1024) /* body bytes per WRITEABLE */

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int http_status(int64_t code)
{
    switch (code) {
    case 400: case 401: case 403: case 404: case 405: case 411: case 413: case 500: case 503:
    case 504:
        return (int)code;
    default:
        return 200;
    }
}

/* Back to an idle connection: cuts every link other threads or timers hold to c. */
static void conn_reset(struct gw__http_conn *c)
{
    if (c->a) {
        gw__http_pend_cancel(c);
        if (c->dev)
            gw__http_poll_end(c, false);
    }
    lws_sul_cancel(&c->sul);
    free(c->body);
    free(c->resp);
    c->body = c->resp = NULL;
    c->body_len = c->clen = c->resp_len = c->off = 0;
    c->phase = GW__HTTP_IDLE;
    c->route = GW__HTTP_R_NONE;
    c->status = 0;
    c->hdr_sent = c->close_after = false;
}

void gw__http_send(struct gw__http_conn *c, int status, char *mem, size_t len)
{
    free(c->resp);
    c->resp = mem;
    c->resp_len = len;
    c->off = 0;
    c->status = status;
    c->hdr_sent = false;
    c->phase = GW__HTTP_SEND;
    lws_callback_on_writable(c->wsi);
}

void gw__http_send_envelope(struct gw__http_conn *c, int64_t code, const char *msg,
                            cJSON *data)
{
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;

    if (o && cJSON_AddNumberToObject(o, "code", (double)code) &&
        cJSON_AddStringToObject(o, "msg", msg ? msg : "")) {
        cJSON *d = data ? data : cJSON_CreateNull();

        data = NULL;
        if (d)
            cJSON_AddItemToObject(o, "data", d);
        text = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(data);
    cJSON_Delete(o);
    if (!text) {
        c->close_after = true; /* out of memory: closing is the only safe answer */
        gw__http_send(c, 500, NULL, 0);
        return;
    }
    gw__http_send(c, http_status(code), text, strlen(text));
}

static void send_error(struct gw__http_conn *c, int err)
{
    gw__http_send_envelope(c, gw_error_api_code(err), gw_strerror(err), NULL);
}

/* Refuses a request whose body (if any) was not read. */
static void refuse(struct gw__http_conn *c, int64_t code, const char *msg)
{
    c->close_after = lws_hdr_total_length(c->wsi, WSI_TOKEN_POST_URI) > 0;
    gw__http_send_envelope(c, code, msg, NULL);
}

/* ---- tokens ---- */

static int check_token(struct gw__http_conn *c, const char *pk, const char *dn)
{
    char hdr[GW_JWT_MAX_LEN + 64];
    const char *tok = hdr;
    struct gw_jwt_claims claims;
    const uint8_t *secret;
    size_t slen;
    int n, rc;

    n = lws_hdr_copy(c->wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n <= 0)
        return GW_E_TOKEN_MALFORMED; /* missing or longer than any token we issue */
    if (strncasecmp(tok, "Bearer ", 7) == 0)
        tok += 7;
    while (*tok == ' ')
        tok++;
    secret = gw_core_jwt_secret(c->a->base.core, &slen);
    rc = gw_jwt_verify(secret, slen, tok, strlen(tok), wall_ms() / 1000, &claims);
    if (rc != 0)
        return rc;
    if (strcmp(claims.product_key, pk) != 0 || strcmp(claims.device_name, dn) != 0)
        return GW_E_IDENTITY_MISMATCH;
    return 0;
}

/* ---- posting ---- */

static void on_wait_deadline(lws_sorted_usec_list_t *sul)
{
    struct gw__http_conn *c = lws_container_of(sul, struct gw__http_conn, sul);

    gw__http_pend_cancel(c);
    gw__http_send_envelope(c, 504, "the gateway did not answer in time", NULL);
}

/* Posts m (taken) and parks c until the core's reply comes back through submit. */
static void post_and_wait(struct gw__http_conn *c, struct gw_msg *m)
{
    struct gw__http *a = c->a;
    int rc = gw__http_pend_add(c);

    if (rc != 0) {
        gw_msg_unref(m);
        send_error(c, rc);
        return;
    }
    m->origin.adapter = &a->base;
    m->origin.session = c->handle;
    c->phase = GW__HTTP_WAIT;
    rc = gw_core_post(a->base.core, m);
    if (rc != 0) {
        gw_adapter_count(&a->ctr.dropped_in);
        gw__http_pend_cancel(c);
        gw__http_send_envelope(c, 503, "gateway busy, retry later", NULL);
        return;
    }
    gw_adapter_count(&a->ctr.msgs_in);
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0); /* our sul is the deadline */
    lws_sul_schedule(lws_get_context(c->wsi), 0, &c->sul, on_wait_deadline,
                     (lws_usec_t)GW_HTTP_REPLY_WAIT_S * LWS_US_PER_SEC);
}

/* Posts m (taken) and answers at once with its message id. */
static void post_and_answer(struct gw__http_conn *c, struct gw_msg *m)
{
    struct gw__http *a = c->a;
    char id[GW_MSG_ID_LEN + 1];
    cJSON *data;
    int rc = gw_msg_assign_id(m); /* while ours alone: the id is the answer */

    if (rc != 0) {
        gw_msg_unref(m);
        send_error(c, rc);
        return;
    }
    memcpy(id, m->id, sizeof(id));
    m->origin.adapter = &a->base;
    m->origin.session = 0; /* nobody waits for an answer */
    rc = gw_core_post(a->base.core, m);
    if (rc != 0) {
        gw_adapter_count(&a->ctr.dropped_in);
        gw__http_send_envelope(c, 503, "gateway busy, retry later", NULL);
        return;
    }
    gw_adapter_count(&a->ctr.msgs_in);
    data = cJSON_CreateObject();
    if (data)
        cJSON_AddStringToObject(data, "messageId", id);
    gw__http_send_envelope(c, 0, "", data);
}

static void on_auth_body(struct gw__http_conn *c)
{
    struct gw_msg *m = NULL;
    cJSON *params = NULL;
    int rc = gw_json_parse_strict(c->body, c->body_len, &params);

    if (rc == 0 && !cJSON_IsObject(params))
        rc = GW_E_BAD_PARAMS;
    if (rc != 0) {
        cJSON_Delete(params);
        send_error(c, rc);
        return;
    }
    rc = gw_msg_new_request(GW_METHOD_AUTH, NULL, "", "", params, &m);
    if (rc != 0) {
        send_error(c, rc);
        return;
    }
    m->report_time = wall_ms();
    post_and_wait(c, m);
}

/* A device that answers on a _reply path without a code gets code 0 (the reference's rule). */
static int force_reply(struct gw_msg **m)
{
    const struct gw_msg *src = *m;
    struct gw_msg_fields f = {
        .method = src->method,
        .request_id = src->request_id,
        .identity = { src->product_key, src->device_name, src->device_id },
        .params = src->params ? cJSON_Duplicate(src->params, 1) : NULL,
        .data = src->data ? cJSON_Duplicate(src->data, 1) : NULL,
        .has_code = true,
        .msg = src->msg,
        .report_time = src->report_time,
    };
    struct gw_msg *out = NULL;
    int rc;

    if ((src->params && !f.params) || (src->data && !f.data)) {
        cJSON_Delete(f.params);
        cJSON_Delete(f.data);
        return -ENOMEM;
    }
    rc = gw_msg_new(&f, &out);
    gw_msg_unref(*m);
    *m = out;
    return rc;
}

/* Checks m against the path it was posted to; 0 or an error code (m kept). */
static int check_topic(const struct gw_topic *t, struct gw_msg **m)
{
    if ((*m)->method != t->method)
        return GW_E_BAD_FIELD; /* the body's method is not the path's */
    if (!gw_method_is_upstream(t->method, t->is_reply) || t->method == GW_METHOD_AUTH)
        return GW_E_BAD_TOPIC; /* not a path devices post to (login is POST /auth) */
    if (!t->is_reply && (*m)->has_code)
        return GW_E_BAD_FIELD; /* a reply belongs on the _reply path */
    if (t->is_reply && !(*m)->has_code)
        return force_reply(m);
    return 0;
}

static void on_topic_body(struct gw__http_conn *c)
{
    const struct gw_topic *t = &c->topic;
    const struct gw_msg_identity ident = { t->product_key, t->device_name, 0 };
    const struct gw_method_info *mi = gw_method_get(t->method);
    struct gw_msg *m = NULL;
    int64_t state;
    int rc = gw_codec_json_decode((const uint8_t *)c->body, c->body_len, &ident, &m);

    if (rc == 0)
        rc = check_topic(t, &m);
    if (rc != 0) {
        gw_adapter_count(&c->a->ctr.dropped_in);
        gw_msg_unref(m);
        send_error(c, rc);
        return;
    }
    if (m->report_time == 0)
        m->report_time = wall_ms();
    if (t->method == GW_METHOD_STATE_UPDATE) {
        /* Presence is the adapter's business for HTTP (login and polls): apply it here
         * rather than let the core bind a session to a one-request handle. */
        rc = gw_json_int(cJSON_GetObjectItemCaseSensitive(m->params, "state"), GW_DEVICE_ONLINE,
                         GW_DEVICE_OFFLINE, &state);
        gw_msg_unref(m);
        if (rc != 0) {
            send_error(c, GW_E_BAD_PARAMS);
            return;
        }
        gw__http_dev_state(c->a, t->product_key, t->device_name, (int)state);
        gw__http_send_envelope(c, 0, "", NULL);
        return;
    }
    if (!m->has_code && mi && mi->reply == GW_METHOD_REPLY_YES)
        post_and_wait(c, m);
    else
        post_and_answer(c, m);
}

void gw__http_done_run(struct gw__http *a)
{
    struct gw__http_conn *c = gw__http_done_take(a), *next;

    /* Connections are freed only on this thread: the list stays valid here. */
    for (; c; c = next) {
        struct gw_msg *rep = c->reply;
        cJSON *data = NULL;

        next = c->done_next;
        c->done_next = NULL;
        c->reply = NULL;
        lws_sul_cancel(&c->sul);
        if (rep->code == 0 && c->route == GW__HTTP_R_AUTH) {
            const cJSON *tok = cJSON_GetObjectItemCaseSensitive(rep->data, "token");

            data = cJSON_CreateObject();
            if (data && cJSON_IsString(tok))
                cJSON_AddStringToObject(data, "token", tok->valuestring);
        } else if (rep->data) {
            data = cJSON_Duplicate(rep->data, 1);
        }
        gw__http_send_envelope(c, rep->code, rep->code == 0 ? "" : rep->msg, data);
        gw_msg_unref(rep);
    }
}

/* ---- request intake ---- */

static void on_body_done(struct gw__http_conn *c);

/* Prepares to receive the body: 0 = wait for it, -1 = the connection must close. */
static int begin_body(struct gw__http_conn *c)
{
    char buf[64], *end;
    unsigned long long n;

    if (lws_hdr_copy(c->wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
        refuse(c, 411, "a request body with a Content-Length is required");
        return 0;
    }
    errno = 0;
    n = strtoull(buf, &end, 10);
    if (errno || end == buf || *end) {
        refuse(c, 400, "bad Content-Length");
        return 0;
    }
    if (n > GW_CODEC_MAX_INPUT) {
        refuse(c, 413, "request body larger than 65536 bytes");
        return 0;
    }
    c->clen = (size_t)n;
    c->body = malloc(c->clen + 1);
    if (!c->body)
        return -1;
    if (lws_hdr_copy(c->wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_EXPECT) > 0 &&
        strcasecmp(buf, "100-continue") == 0) {
        /* lws 4.1 does not answer Expect itself; without this curl waits a second */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        unsigned char out[LWS_PRE + sizeof(cont)];

        memcpy(out + LWS_PRE, cont, sizeof(cont) - 1);
        if (lws_write(c->wsi, out + LWS_PRE, sizeof(cont) - 1, LWS_WRITE_RAW) < 0)
            return -1;
    }
    c->phase = GW__HTTP_BODY;
    if (c->clen == 0)
        on_body_done(c); /* nothing will arrive: answer now (an empty body is bad JSON) */
    return 0;
}

static void on_body_done(struct gw__http_conn *c)
{
    if (c->phase != GW__HTTP_BODY)
        return;
    c->phase = GW__HTTP_IDLE;
    c->body[c->body_len] = '\0';
    if (c->route == GW__HTTP_R_AUTH)
        on_auth_body(c);
    else
        on_topic_body(c);
}

/* "/sys/{pk}/{dn}/downstream" → pk, dn. */
static bool parse_poll_path(const char *p, char *pk, char *dn)
{
    const char *s1, *s2;
    size_t pl, dl;

    if (strncmp(p, "/sys/", 5) != 0)
        return false;
    p += 5;
    s1 = strchr(p, '/');
    s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (!s2 || strcmp(s2, "/downstream") != 0)
        return false;
    pl = (size_t)(s1 - p);
    dl = (size_t)(s2 - s1 - 1);
    if (pl == 0 || dl == 0 || pl > GW_MSG_PK_MAX || dl > GW_MSG_DN_MAX)
        return false;
    memcpy(pk, p, pl);
    pk[pl] = '\0';
    memcpy(dn, s1 + 1, dl);
    dn[dl] = '\0';
    return gw_utf8_valid(pk, pl) && gw_utf8_valid(dn, dl);
}

static void on_poll(struct gw__http_conn *c, const char *path)
{
    char pk[GW_MSG_PK_MAX + 1], dn[GW_MSG_DN_MAX + 1], arg[32], *end;
    const char *w;
    long wait_s = 0;
    int rc;

    if (!parse_poll_path(path, pk, dn)) {
        refuse(c, 404, "no such path: use GET /topic/sys/{productKey}/{deviceName}/downstream");
        return;
    }
    if ((rc = check_token(c, pk, dn)) != 0) {
        send_error(c, rc);
        return;
    }
    w = lws_get_urlarg_by_name(c->wsi, "wait=", arg, sizeof(arg));
    if (w) {
        errno = 0;
        wait_s = strtol(w, &end, 10);
        if (errno || end == w || *end || wait_s < 0) {
            refuse(c, 400, "wait: expected a number of seconds >= 0");
            return;
        }
    }
    if (wait_s > c->a->cfg->u.http.max_wait_s)
        wait_s = c->a->cfg->u.http.max_wait_s;
    gw__http_poll_begin(c, pk, dn, (int)wait_s);
}

static int on_http(struct gw__http_conn *c, struct lws *wsi, const char *path)
{
    bool post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
    bool get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
    int rc;

    conn_reset(c);
    c->a = lws_context_user(lws_get_context(wsi));
    c->wsi = wsi;
    if (strcmp(path, "/auth") == 0) {
        if (!post) {
            refuse(c, 405, "use POST /auth");
            return 0;
        }
        c->route = GW__HTTP_R_AUTH;
        return begin_body(c);
    }
    if (strncmp(path, "/topic/", 7) != 0) {
        refuse(c, 404, "no such path");
        return 0;
    }
    path += strlen("/topic");
    if (get) {
        on_poll(c, path);
        return 0;
    }
    if (!post) {
        refuse(c, 405, "use POST to send, GET .../downstream to receive");
        return 0;
    }
    rc = gw_topic_parse(path, strlen(path), &c->topic);
    if (rc == 0)
        rc = check_token(c, c->topic.product_key, c->topic.device_name);
    if (rc != 0) {
        c->close_after = true;
        send_error(c, rc);
        return 0;
    }
    c->route = GW__HTTP_R_TOPIC;
    return begin_body(c);
}

static void on_body(struct gw__http_conn *c, const void *in, size_t len)
{
    size_t n;

    if (c->phase != GW__HTTP_BODY)
        return;
    n = len > c->clen - c->body_len ? c->clen - c->body_len : len;
    memcpy(c->body + c->body_len, in, n);
    c->body_len += n;
}

/* ---- responses ---- */

static int finish(struct gw__http_conn *c)
{
    bool close_it = c->close_after;

    conn_reset(c);
    if (close_it)
        return -1;
    return lws_http_transaction_completed(c->wsi) ? -1 : 0;
}

static int write_headers(struct gw__http_conn *c)
{
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
                                       *end = buf + sizeof(buf) - 1;

    if (lws_add_http_common_headers(c->wsi, (unsigned)c->status, "application/json",
                                    c->resp_len, &p, end))
        return -1;
    if (c->status == 401 &&
        lws_add_http_header_by_name(c->wsi, (const unsigned char *)"www-authenticate:",
                                    (const unsigned char *)"Bearer", 6, &p, end))
        return -1;
    if (c->close_after &&
        lws_add_http_header_by_name(c->wsi, (const unsigned char *)"connection:",
                                    (const unsigned char *)"close", 5, &p, end))
        return -1;
    return lws_finalize_write_http_header(c->wsi, start, &p, end) ? -1 : 0;
}

static int on_writeable(struct gw__http_conn *c)
{
    unsigned char *buf;
    size_t n;
    bool final;

    if (c->phase != GW__HTTP_SEND)
        return 0;
    if (!c->hdr_sent) {
        if (write_headers(c) != 0)
            return -1;
        c->hdr_sent = true;
        if (c->resp_len == 0)
            return finish(c);
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    n = c->resp_len - c->off > CHUNK ? CHUNK : c->resp_len - c->off;
    final = c->off + n >= c->resp_len;
    buf = malloc(LWS_PRE + n);
    if (!buf)
        return -1;
    memcpy(buf + LWS_PRE, c->resp + c->off, n);
    if (lws_write(c->wsi, buf + LWS_PRE, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) <
        (int)n) {
        free(buf);
        return -1;
    }
    free(buf);
    c->off += n;
    if (final)
        return finish(c);
    lws_callback_on_writable(c->wsi);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct gw__http_conn *c = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_http(c, wsi, in ? (const char *)in : "/");
    case LWS_CALLBACK_HTTP_BODY:
        if (c)
            on_body(c, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (c)
            on_body_done(c);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return c ? on_writeable(c) : 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
        struct gw__http *a = lws_context_user(lws_get_context(wsi));

        if (a) {
            gw__http_done_run(a);
            gw__http_ready_run(a);
        }
        return 0;
    }
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (c)
            conn_reset(c);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

const struct lws_protocols gw__http_protocols[] = {
    { "iotgw-http", callback, sizeof(struct gw__http_conn), 0, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};
