/*
 * DESIGN: the admin listener's HTTP side. One libwebsockets context, serviced by the admin's
 * own thread (lws is single-threaded: every lws call except lws_cancel_service happens on
 * that thread). For each request on /admin-api/iot/ it routes, checks the Bearer token and
 * the verb, receives the body (JSON into memory up to GW_ADM_JSON_MAX; a firmware upload
 * streamed into a temp file, never into memory), then hands the request to a worker and
 * goes back to serving. Answers come back through the done queue and lws_cancel_service();
 * responses are written in WRITEABLE callbacks, one lws_write each.
 *
 * Invariants: a request belongs to its connection except while a worker holds it (phase
 * GW_ADM_WORKER); when the connection closes meanwhile, req->conn is cleared and the answer
 * is dropped on return. A rejected request whose body was not read closes the connection
 * after the response (close_after), so unread bytes are never parsed as the next request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "admin_conn.h"
#include "admin_int.h"
#include "gw_config.h"
#include "gw_error.h"
#include "gw_log.h"

#define CHUNK (64 * 1024) /* bytes per WRITEABLE */

static int verb_of(struct lws *wsi)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))
        return GW_ADM_GET;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
        return GW_ADM_POST;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_PUT_URI))
        return GW_ADM_PUT;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI))
        return GW_ADM_HEAD;
    return GW_ADM_OTHER;
}

/* Frees whatever the current response holds; the request too unless a worker has it. */
static void conn_clear(struct gw_adm_conn *c)
{
    free(c->mem);
    c->mem = NULL;
    if (c->fd_open)
        close(c->fd);
    c->fd_open = false;
    if (c->req) {
        if (c->phase == GW_ADM_WORKER)
            c->req->conn = NULL; /* the worker's answer is dropped when it comes back */
        else
            gw__adm_req_free(c->req);
        c->req = NULL;
    }
    c->phase = GW_ADM_IDLE;
    c->status = 0;
    c->ctype = NULL;
    c->head = c->hdr_sent = c->close_after = false;
    c->off = c->end = c->length = c->clen = 0;
    c->nxhdr = 0;
}

void gw__adm_conn_header(struct gw_adm_conn *c, const char *name, const char *value)
{
    if (c->nxhdr >= GW_ADM_XHDR_MAX)
        return;
    snprintf(c->xhdr[c->nxhdr].name, sizeof(c->xhdr[0].name), "%s", name);
    snprintf(c->xhdr[c->nxhdr].value, sizeof(c->xhdr[0].value), "%s", value);
    c->nxhdr++;
}

void gw__adm_conn_send_mem(struct gw_adm_conn *c, int status, const char *ctype, char *mem,
                           size_t len)
{
    free(c->mem);
    c->mem = mem;
    c->status = status;
    c->ctype = ctype;
    c->off = 0;
    c->end = c->length = len;
    c->hdr_sent = false;
    c->phase = GW_ADM_SEND;
    lws_callback_on_writable(c->wsi);
}

void gw__adm_conn_send_error(struct gw_adm_conn *c, int64_t code, const char *msg)
{
    char *text = NULL;
    size_t len = 0;

    if (gw__adm_envelope(code, msg, NULL, &text, &len) != 0) {
        c->close_after = true; /* out of memory: closing is the only safe answer */
        text = NULL;
        len = 0;
    }
    if (code == 401)
        gw__adm_conn_header(c, "www-authenticate:", "Bearer");
    gw__adm_conn_send_mem(c, gw__adm_http_status(code), "application/json", text, len);
}

/* Sends the worker's answer (or a bare 500 when it could not even build one). */
static void conn_send_req(struct gw_adm_conn *c)
{
    struct gw_adm_req *req = c->req;

    if (!req->resp) {
        gw__adm_conn_send_error(c, 500, "out of memory");
        return;
    }
    gw__adm_conn_send_mem(c, req->http_status, "application/json", req->resp, req->resp_len);
    req->resp = NULL;
}

static int copy_query(struct gw_adm_conn *c, struct gw_adm_req *req)
{
    int total = lws_hdr_total_length(c->wsi, WSI_TOKEN_HTTP_URI_ARGS), rc = 0;
    char *buf;

    if (total <= 0)
        return 0;
    buf = malloc((size_t)total + 1);
    if (!buf)
        return -ENOMEM;
    for (int i = 0; rc == 0; i++) {
        int n = lws_hdr_copy_fragment(c->wsi, buf, total + 1, WSI_TOKEN_HTTP_URI_ARGS, i);

        if (n < 0)
            break;
        if (n > 0)
            rc = gw__adm_query_add(req, buf);
    }
    free(buf);
    return rc;
}

static void submit(struct gw_adm_conn *c)
{
    struct gw_adm_req *req = c->req;

    req->conn = c;
    c->phase = GW_ADM_WORKER;
    if (gw__adm_submit(c->adm, req) != 0) {
        req->conn = NULL;
        c->phase = GW_ADM_IDLE;
        gw__adm_conn_send_error(c, 503, "admin API busy, retry later");
    }
}

static bool hdr_get(struct lws *wsi, enum lws_token_indexes h, char *buf, int len)
{
    buf[0] = '\0';
    return lws_hdr_copy(wsi, buf, len, h) > 0;
}

/* Decides how to take the body of a POST/PUT: 0 = go on, else the response was started. */
static int begin_body(struct gw_adm_conn *c, const struct gw_adm_route *route)
{
    struct gw_admin *adm = c->adm;
    char buf[64], msg[128];
    uint64_t limit = route->body == GW_ADM_BODY_UPLOAD ? adm->upload_max
                     : route->json_max                 ? route->json_max
                                                       : GW_ADM_JSON_MAX;
    int rc;

    if (!hdr_get(c->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, buf, sizeof(buf))) {
        if (hdr_get(c->wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING, buf, sizeof(buf))) {
            c->close_after = true;
            gw__adm_conn_send_error(c, 411, "a request body needs a Content-Length");
            return -1;
        }
        return 0; /* no body */
    }
    if (!gw__adm_parse_u64(buf, strlen(buf), &c->clen)) {
        c->close_after = true;
        gw__adm_conn_send_error(c, 400, "bad Content-Length");
        return -1;
    }
    if (c->clen == 0)
        return 0;
    if (c->clen > limit) {
        c->close_after = true;
        snprintf(msg, sizeof(msg), "request body larger than %llu bytes",
                 (unsigned long long)limit);
        gw__adm_conn_send_error(c, 413, msg);
        return -1;
    }
    if (route->body == GW_ADM_BODY_UPLOAD) {
        rc = gw__adm_blob_begin(adm->fw_dir, &c->req->blob);
        if (rc != 0) {
            gw_log(GW_LOG_ERROR, "admin", "upload: cannot create a file in %s: %s",
                   adm->fw_dir, strerror(-rc));
            c->close_after = true;
            gw__adm_conn_send_error(c, 500, "cannot store the firmware");
            return -1;
        }
    } else {
        c->req->body = malloc(c->clen + 1);
        if (!c->req->body) {
            c->close_after = true;
            gw__adm_conn_send_error(c, 500, "out of memory");
            return -1;
        }
        c->req->body_cap = c->clen;
    }
    if (hdr_get(c->wsi, WSI_TOKEN_HTTP_EXPECT, buf, sizeof(buf)) &&
        strcasecmp(buf, "100-continue") == 0) {
        /* lws 4.1 does not answer Expect itself; without this curl waits a second */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        unsigned char out[LWS_PRE + sizeof(cont)];

        memcpy(out + LWS_PRE, cont, sizeof(cont) - 1);
        if (lws_write(c->wsi, out + LWS_PRE, sizeof(cont) - 1, LWS_WRITE_RAW) < 0)
            return -1;
    }
    c->phase = GW_ADM_BODY;
    return 1;
}

static int on_api(struct gw_adm_conn *c, const char *path)
{
    struct gw_admin *adm = c->adm;
    const struct gw_adm_route *route = gw__adm_route_find(path + strlen(GW_ADM_PREFIX));
    char auth[GW_ADM_TOKEN_MAX + 64], msg[160];
    int rc;

    if (!route) {
        snprintf(msg, sizeof(msg), "no such path: %.120s", path);
        c->close_after = c->verb == GW_ADM_POST || c->verb == GW_ADM_PUT;
        gw__adm_conn_send_error(c, 404, msg);
        return 0;
    }
    if (!hdr_get(c->wsi, WSI_TOKEN_HTTP_AUTHORIZATION, auth, sizeof(auth)) ||
        !gw__adm_bearer_ok(auth, adm->token, adm->token_len)) {
        c->close_after = c->verb == GW_ADM_POST || c->verb == GW_ADM_PUT;
        gw__adm_conn_send_error(c, 401, "missing or wrong admin token (Authorization: Bearer)");
        return 0;
    }
    if (!(route->verbs & (unsigned)c->verb)) {
        const char *allow = route->verbs == GW_ADM_GET    ? "GET"
                            : route->verbs == GW_ADM_POST ? "POST"
                                                          : "POST, PUT";

        c->close_after = c->verb == GW_ADM_POST || c->verb == GW_ADM_PUT;
        snprintf(msg, sizeof(msg), "method not allowed: use %s", allow);
        gw__adm_conn_header(c, "allow:", allow);
        gw__adm_conn_send_error(c, 405, msg);
        return 0;
    }
    c->req = gw__adm_req_new();
    if (!c->req)
        return -1;
    c->req->route = route;
    c->req->verb = c->verb;
    rc = copy_query(c, c->req);
    if (rc == 0 && route->precheck)
        rc = route->precheck(c->req);
    if (rc != 0) {
        c->close_after = c->verb == GW_ADM_POST || c->verb == GW_ADM_PUT;
        if (rc == -E2BIG)
            gw__adm_fail(c->req, GW_E_BAD_FIELD, "more than %d query parameters",
                         GW_ADM_QUERY_MAX);
        gw__adm_respond(c->req, rc, NULL);
        conn_send_req(c);
        return 0;
    }
    if (route->body != GW_ADM_BODY_NONE && (c->verb == GW_ADM_POST || c->verb == GW_ADM_PUT)) {
        rc = begin_body(c, route);
        if (rc != 0)
            return rc < 0 && c->phase != GW_ADM_SEND ? -1 : 0;
    }
    submit(c);
    return 0;
}

static int on_http(struct gw_adm_conn *c, struct lws *wsi, const char *path)
{
    conn_clear(c);
    c->adm = lws_context_user(lws_get_context(wsi));
    c->wsi = wsi;
    c->verb = verb_of(wsi);
    if (strncmp(path, "/ota/firmware/", 14) == 0)
        return gw__adm_fwserve_begin(c, path);
    if (strncmp(path, GW_ADM_PREFIX, strlen(GW_ADM_PREFIX)) == 0)
        return on_api(c, path);
    c->close_after = c->verb == GW_ADM_POST || c->verb == GW_ADM_PUT;
    gw__adm_conn_send_error(c, 404, "no such path");
    return 0;
}

static void on_body(struct gw_adm_conn *c, const void *in, size_t len)
{
    struct gw_adm_req *req = c->req;

    if (c->phase != GW_ADM_BODY || !req)
        return;
    if (req->blob) {
        gw__adm_blob_write(req->blob, in, len); /* an error is kept and reported at the end */
    } else if (req->body) {
        size_t n = len > req->body_cap - req->body_len ? req->body_cap - req->body_len : len;

        memcpy(req->body + req->body_len, in, n);
        req->body_len += n;
    }
}

static void on_body_done(struct gw_adm_conn *c)
{
    struct gw_adm_req *req = c->req;
    int rc;

    if (c->phase != GW_ADM_BODY || !req)
        return;
    if (req->body)
        req->body[req->body_len] = '\0';
    if (req->blob) {
        rc = gw__adm_blob_finish(req->blob);
        if (rc != 0) {
            gw_log(GW_LOG_ERROR, "admin", "upload: cannot write %s: %s", req->blob->tmp_path,
                   strerror(-rc));
            gw__adm_fail(req, rc, "cannot store the firmware: %s", strerror(-rc));
            gw__adm_respond(req, rc, NULL);
            conn_send_req(c);
            return;
        }
    }
    submit(c);
}

static void on_answers(struct gw_admin *adm)
{
    struct gw_adm_req *req = gw__adm_take_done(adm), *next;

    for (; req; req = next) {
        struct gw_adm_conn *c = req->conn;

        next = req->next;
        req->next = NULL;
        if (!c) { /* the client went away meanwhile */
            gw__adm_req_free(req);
            continue;
        }
        req->conn = NULL;
        c->phase = GW_ADM_SEND;
        conn_send_req(c);
    }
}

static int write_headers(struct gw_adm_conn *c)
{
    unsigned char buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start,
                                       *end = buf + sizeof(buf) - 1;

    if (lws_add_http_common_headers(c->wsi, (unsigned)c->status, c->ctype, c->length, &p, end))
        return -1;
    for (int i = 0; i < c->nxhdr; i++)
        if (lws_add_http_header_by_name(c->wsi, (const unsigned char *)c->xhdr[i].name,
                                        (const unsigned char *)c->xhdr[i].value,
                                        (int)strlen(c->xhdr[i].value), &p, end))
            return -1;
    if (c->close_after &&
        lws_add_http_header_by_name(c->wsi, (const unsigned char *)"connection:",
                                    (const unsigned char *)"close", 5, &p, end))
        return -1;
    if (lws_finalize_write_http_header(c->wsi, start, &p, end))
        return -1;
    return 0;
}

/* Ends the transaction: 0 keeps the connection for the next request, -1 closes it. */
static int finish(struct gw_adm_conn *c)
{
    bool close_it = c->close_after;

    conn_clear(c);
    if (close_it)
        return -1;
    return lws_http_transaction_completed(c->wsi) ? -1 : 0;
}

static int on_writeable(struct gw_adm_conn *c)
{
    unsigned char *buf;
    size_t n;
    int final;

    if (c->phase != GW_ADM_SEND)
        return 0;
    if (!c->hdr_sent) {
        if (write_headers(c) != 0)
            return -1;
        c->hdr_sent = true;
        if (c->head || c->off >= c->end)
            return finish(c);
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    n = c->end - c->off > CHUNK ? CHUNK : (size_t)(c->end - c->off);
    buf = malloc(LWS_PRE + n);
    if (!buf)
        return -1;
    if (c->fd_open) {
        ssize_t r = pread(c->fd, buf + LWS_PRE, n, (off_t)c->off);

        if (r <= 0) { /* the file shrank or vanished: the client sees a short body */
            gw_log(GW_LOG_WARN, "admin", "firmware read failed at %llu",
                   (unsigned long long)c->off);
            free(buf);
            return -1;
        }
        n = (size_t)r;
    } else {
        memcpy(buf + LWS_PRE, c->mem + c->off, n);
    }
    final = c->off + n >= c->end;
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
    struct gw_adm_conn *c = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_http(c, wsi, in ? (const char *)in : "/");
    case LWS_CALLBACK_HTTP_BODY:
        on_body(c, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        on_body_done(c);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return c ? on_writeable(c) : 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
        struct gw_admin *adm = lws_context_user(lws_get_context(wsi));

        if (adm)
            on_answers(adm);
        return 0;
    }
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (c)
            conn_clear(c);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    { "iotgw-admin", callback, sizeof(struct gw_adm_conn), 0, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};

void gw__adm_wake(struct gw_admin *adm)
{
    if (adm->lws)
        lws_cancel_service(adm->lws);
}

static void lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);

    while (n > 0 && line[n - 1] == '\n')
        n--;
    gw_log(level == LLL_ERR ? GW_LOG_ERROR : GW_LOG_WARN, "lws", "%.*s", (int)n, line);
}

static void *lws_main(void *arg)
{
    struct gw_admin *adm = arg;

    while (!atomic_load(&adm->stopping))
        if (lws_service(adm->lws, 0) < 0)
            break;
    return NULL;
}

/*
 * The address lws binds: lws 4.1 takes an interface name or a literal IP in `iface`, binds
 * every interface when an IPv4 literal meets its IPv6 socket, and listens nowhere (without
 * failing) for a name it cannot find. So names are resolved here, IPv4 turns IPv6 off, and
 * the caller checks that a port was bound.
 */
static int listen_iface(const char *host, char *out, size_t len, bool *v6)
{
    struct addrinfo hints, *res = NULL;
    const void *a;
    int rc;

    out[0] = '\0';
    *v6 = strchr(host, ':') != NULL;
    if (!host[0] || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
        return 0; /* any address */
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, "admin", "admin.listen: cannot resolve %s: %s", host,
               gai_strerror(rc));
        return -EADDRNOTAVAIL;
    }
    *v6 = res->ai_family == AF_INET6;
    a = *v6 ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
            : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
    if (!inet_ntop(res->ai_family, a, out, (socklen_t)len))
        rc = -EADDRNOTAVAIL;
    freeaddrinfo(res);
    return rc;
}

int gw__adm_server_start(struct gw_admin *adm)
{
    const struct gw_config_addr *la = &adm->cfg->admin.listen;
    struct lws_context_creation_info info;
    char iface[INET6_ADDRSTRLEN];
    bool v6 = false;
    int rc;

    memset(&info, 0, sizeof(info));
    rc = listen_iface(la->host, iface, sizeof(iface), &v6);
    if (rc != 0)
        return rc;
    info.port = la->port;
    info.iface = iface[0] ? iface : NULL;
    if (!v6)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.protocols = protocols;
    info.user = adm;
    info.pt_serv_buf_size = 64 * 1024; /* larger reads for uploads */
    info.max_http_header_data = 8192;  /* long query strings and tokens */
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
    adm->lws = lws_create_context(&info);
    if (!adm->lws) {
        gw_log(GW_LOG_ERROR, "admin", "cannot listen on %s:%d (address in use or not local?)",
               la->host, la->port);
        return -EADDRINUSE;
    }
    adm->vhost = lws_get_vhost_by_name(adm->lws, "default");
    adm->port = adm->vhost ? lws_get_vhost_listen_port(adm->vhost) : 0;
    if (adm->port <= 0) {
        gw_log(GW_LOG_ERROR, "admin", "cannot listen on %s:%d", la->host, la->port);
        lws_context_destroy(adm->lws);
        adm->lws = NULL;
        return -EADDRNOTAVAIL;
    }
    rc = pthread_create(&adm->lws_thread, NULL, lws_main, adm);
    if (rc != 0) {
        lws_context_destroy(adm->lws);
        adm->lws = NULL;
        return -rc;
    }
    adm->lws_started = true;
    return 0;
}

void gw__adm_server_stop(struct gw_admin *adm)
{
    if (!adm->lws_started)
        return;
    atomic_store(&adm->stopping, true);
    lws_cancel_service(adm->lws);
    pthread_join(adm->lws_thread, NULL);
    adm->lws_started = false;
}

void gw__adm_server_destroy(struct gw_admin *adm)
{
    if (adm->lws)
        lws_context_destroy(adm->lws);
    adm->lws = NULL;
}
