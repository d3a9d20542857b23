/*
 * DESIGN: HTTP/1.1 client requests over libwebsockets (lws parses the responses; nothing
 * here parses HTTP), one connection per request: the admin API calls and the HTTP devices'
 * posts and long-polls. Also the simulator's lws protocol table.
 *
 * Main thread (lws runs on the sim's libuv loop). A struct http_req lives from
 * sim_http_request until lws destroys its wsi (LWS_CALLBACK_WSI_DESTROY, which lws delivers
 * for every client wsi, also one whose connection failed); `done` is called exactly once
 * before that: at COMPLETED with the status and body, or with status 0 when the connection
 * failed or closed early.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "sim.h"

#define BODY_CHUNK (16 * 1024)
#define RESP_MAX (64 * 1024 * 1024)

int sim_dl_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len);
int sim_ws_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len);

struct http_req {
    uint32_t tag; /* SIM_TAG_HTTP */
    struct http_req *prev, *next; /* in_flight list */
    struct lws *wsi;
    void *owner;
    struct sim *s;
    char *method, *url, *auth, *ctype;
    const uint8_t *body;
    size_t body_len, body_off;
    char *resp;
    size_t resp_len, resp_cap;
    int status;
    bool done_called;
    bool in_connect; /* inside lws_client_connect_via_info: WSI_DESTROY must not free */
    bool destroyed;  /* ... and it happened */
    sim_http_done_fn done;
    void *arg;
};

int sim_http_parse_url(const char *url, char *host, size_t host_len, int *port, char *path,
                       size_t path_len)
{
    char copy[SIM_URL_MAX];
    const char *prot = NULL, *ads = NULL, *p = NULL;
    int n;

    if (strlen(url) >= sizeof(copy))
        return -EINVAL;
    memcpy(copy, url, strlen(url) + 1);
    /* lws_parse_uri splits in place; it drops the path's leading '/' */
    if (lws_parse_uri(copy, &prot, &ads, port, &p) != 0 || !ads || !ads[0])
        return -EINVAL;
    n = snprintf(host, host_len, "%s", ads);
    if (n < 0 || (size_t)n >= host_len)
        return -EINVAL;
    n = snprintf(path, path_len, "/%s", p ? p : "");
    if (n < 0 || (size_t)n >= path_len)
        return -EINVAL;
    return 0;
}

static struct http_req *in_flight;

static void unlink_req(struct http_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (in_flight == r)
        in_flight = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

void sim_lws_kill(struct lws *wsi)
{
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    /* the timeout is an lws timer: lws re-arms its loop timer only when it runs, which a
     * call from one of our libuv callbacks does not make happen by itself */
    lws_cancel_service(lws_get_context(wsi));
}

void sim_http_cancel_owner(void *owner)
{
    for (struct http_req *r = in_flight; r; r = r->next)
        if (r->owner == owner && r->wsi)
            sim_lws_kill(r->wsi);
}

static void finish(struct http_req *r)
{
    if (r->done_called)
        return;
    r->done_called = true;
    if (r->done)
        r->done(r->arg, r->status, r->resp ? r->resp : "", r->resp_len);
}

static void req_free(struct http_req *r)
{
    unlink_req(r);
    free(r->method);
    free(r->url);
    free(r->auth);
    free(r->ctype);
    free(r->resp);
    free(r);
}

static int append(struct http_req *r, const void *in, size_t len)
{
    if (r->resp_len + len + 1 > r->resp_cap) {
        size_t cap = r->resp_cap ? r->resp_cap * 2 : 4096;
        char *p;

        while (cap < r->resp_len + len + 1)
            cap *= 2;
        if (cap > RESP_MAX)
            return -1;
        p = realloc(r->resp, cap);
        if (!p)
            return -1;
        r->resp = p;
        r->resp_cap = cap;
    }
    memcpy(r->resp + r->resp_len, in, len);
    r->resp_len += len;
    r->resp[r->resp_len] = '\0';
    return 0;
}

static int add_headers(struct lws *wsi, struct http_req *r, unsigned char **p, unsigned char *end)
{
    char num[32];

    if (r->auth && lws_add_http_header_by_name(wsi, (const unsigned char *)"authorization:",
                                               (const unsigned char *)r->auth,
                                               (int)strlen(r->auth), p, end))
        return -1;
    if (!r->body && strcmp(r->method, "GET") == 0)
        return 0;
    snprintf(num, sizeof(num), "%zu", r->body_len);
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"content-length:",
                                    (const unsigned char *)num, (int)strlen(num), p, end))
        return -1;
    if (r->ctype && lws_add_http_header_by_name(wsi, (const unsigned char *)"content-type:",
                                                (const unsigned char *)r->ctype,
                                                (int)strlen(r->ctype), p, end))
        return -1;
    if (r->body_len) {
        lws_client_http_body_pending(wsi, 1);
        lws_callback_on_writable(wsi);
    }
    return 0;
}

static int write_body(struct lws *wsi, struct http_req *r)
{
    uint8_t buf[LWS_PRE + BODY_CHUNK];
    size_t n = r->body_len - r->body_off;
    enum lws_write_protocol wp = LWS_WRITE_HTTP_FINAL;

    if (n > BODY_CHUNK) {
        n = BODY_CHUNK;
        wp = LWS_WRITE_HTTP;
    }
    memcpy(buf + LWS_PRE, r->body + r->body_off, n);
    if (lws_write(wsi, buf + LWS_PRE, n, wp) != (int)n)
        return -1;
    r->body_off += n;
    if (r->body_off < r->body_len)
        lws_callback_on_writable(wsi);
    else
        lws_client_http_body_pending(wsi, 0);
    return 0;
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    struct http_req *r = lws_get_opaque_user_data(wsi);

    if (r && r->tag != SIM_TAG_HTTP)
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        if (r && add_headers(wsi, r, in, (unsigned char *)(*(unsigned char **)in) + len))
            return -1;
        break;
    case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE:
        if (r && r->body_off < r->body_len)
            return write_body(wsi, r);
        break;
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        if (r)
            r->status = (int)lws_http_client_http_response(wsi);
        break;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
        if (r && append(r, in, len) != 0)
            return -1;
        break;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
        char buf[LWS_PRE + 16384], *px = buf + LWS_PRE;
        int lenx = (int)sizeof(buf) - LWS_PRE;

        if (lws_http_client_read(wsi, &px, &lenx) < 0)
            return -1;
        return 0;
    }
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
        if (r)
            finish(r);
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        if (r && !r->done_called) {
            r->status = 0;
            finish(r);
        }
        break;
    case LWS_CALLBACK_WSI_DESTROY:
        if (r && r->in_connect) {
            r->destroyed = true;
            lws_set_opaque_user_data(wsi, NULL);
        } else if (r) {
            r->wsi = NULL;
            if (!r->done_called) {
                r->status = 0;
                finish(r);
            }
            lws_set_opaque_user_data(wsi, NULL);
            req_free(r);
        }
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int sim_http_request(struct sim *s, const struct sim_http_req *q)
{
    struct lws_client_connect_info i;
    struct http_req *r = calloc(1, sizeof(*r));
    char host[256], path[SIM_URL_MAX];
    struct lws *wsi;
    int port = 80;

    if (!r)
        return -ENOMEM;
    if (sim_http_parse_url(q->url, host, sizeof(host), &port, path, sizeof(path)) != 0) {
        free(r);
        return -EINVAL;
    }
    r->tag = SIM_TAG_HTTP;
    r->s = s;
    r->method = strdup(q->method);
    r->url = strdup(q->url);
    r->auth = dup_or_null(q->auth);
    r->ctype = dup_or_null(q->ctype);
    r->body = q->body;
    r->body_len = q->body ? q->body_len : 0;
    r->done = q->done;
    r->arg = q->arg;
    r->owner = q->owner;
    if (!r->method || !r->url || (q->auth && !r->auth) || (q->ctype && !r->ctype)) {
        req_free(r);
        return -ENOMEM;
    }
    memset(&i, 0, sizeof(i));
    i.context = s->lws;
    i.address = host;
    i.port = port;
    i.path = path;
    i.host = host;
    i.origin = host;
    i.method = r->method;
    i.local_protocol_name = "sim-http";
    i.opaque_user_data = r;
    i.pwsi = &r->wsi;
    /* A connection that fails inside the call may or may not have had its wsi (and
     * WSI_DESTROY) already: either way r is still ours here, and done is called once. */
    r->in_connect = true;
    wsi = lws_client_connect_via_info(&i);
    r->in_connect = false;
    if (!wsi || r->destroyed) {
        r->status = 0;
        finish(r);
        req_free(r);
        return 0;
    }
    r->next = in_flight;
    if (in_flight)
        in_flight->prev = r;
    in_flight = r;
    return 0;
}

/* lws gives protocols[0] the callbacks of wsis not bound to a protocol (yet, or any more:
 * WSI_DESTROY comes here once the client protocol was dropped): hand them to the owner. */
static int none_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    const uint32_t *tag = lws_get_opaque_user_data(wsi);

    if (tag && reason == LWS_CALLBACK_WSI_DESTROY) {
        switch (*tag) {
        case SIM_TAG_HTTP:
            return http_cb(wsi, reason, user, in, len);
        case SIM_TAG_DL:
            return sim_dl_lws_cb(wsi, reason, user, in, len);
        case SIM_TAG_WS:
            return sim_ws_lws_cb(wsi, reason, user, in, len);
        default:
            break;
        }
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols sim_lws_protocols[] = {
    { "sim-none", none_cb, 0, 0, 0, NULL, 0 },
    { "sim-http", http_cb, 0, 0, 0, NULL, 0 },
    { "sim-dl", sim_dl_lws_cb, 0, 0, 0, NULL, 0 },
    { "sim-ws", sim_ws_lws_cb, 0, 0, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};

const struct lws_protocols *sim_lws_protocol_list(void)
{
    return sim_lws_protocols;
}
