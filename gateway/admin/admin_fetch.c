/*
 * DESIGN: fetches a firmware image from an http:// fileUrl once (ota/firmware/create, as the
 * reference downloads fileUrl to compute size and digest). The worker thread that handles
 * the request creates a private, short-lived lws client context and services it until the
 * transfer ends, so the admin's lws thread and its listener are never involved. lws parses
 * the HTTP (status, chunked framing); the body streams into a blob (admin_blob.c) with the
 * size cap and an overall deadline checked by a 1-second lws_sul tick.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>

#include "admin_int.h"
#include "gw_error.h"

struct fetch {
    struct gw_adm_blob *blob;
    uint64_t max;
    int64_t deadline_ms;
    int status;
    bool done;
    bool ok;
    char *err;
    size_t errlen;
    lws_sorted_usec_list_t sul;
    struct lws_context *ctx;
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fetch_fail(struct fetch *f, const char *why)
{
    if (!f->done && f->err[0] == '\0')
        snprintf(f->err, f->errlen, "fileUrl: %s", why);
    f->done = true;
    f->ok = false;
}

static int fetch_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct fetch *f = lws_context_user(lws_get_context(wsi));
    char buf[LWS_PRE + 16384], *p;
    int n;

    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        fetch_fail(f, in ? (const char *)in : "connection failed");
        break;
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        f->status = (int)lws_http_client_http_response(wsi);
        if (f->status != 200) {
            char why[64];

            snprintf(why, sizeof(why), "server answered HTTP %d", f->status);
            fetch_fail(f, why);
            return -1;
        }
        break;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
        if (f->blob->size + len > f->max) {
            fetch_fail(f, "file larger than the upload limit");
            return -1;
        }
        if (gw__adm_blob_write(f->blob, in, len) != 0) {
            fetch_fail(f, "cannot store the file");
            return -1;
        }
        break;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP:
        p = buf + LWS_PRE;
        n = (int)sizeof(buf) - LWS_PRE;
        if (lws_http_client_read(wsi, &p, &n) < 0)
            return -1;
        return 0;
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
        if (!f->done) {
            f->ok = true;
            f->done = true;
        }
        break;
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        if (!f->done)
            fetch_fail(f, "connection closed before the end of the file");
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols fetch_protocols[] = {
    { "iotgw-fetch", fetch_cb, 0, 0, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};

static void fetch_tick(lws_sorted_usec_list_t *sul)
{
    struct fetch *f = lws_container_of(sul, struct fetch, sul);

    if (mono_ms() >= f->deadline_ms)
        fetch_fail(f, "timed out");
    else
        lws_sul_schedule(f->ctx, 0, &f->sul, fetch_tick, LWS_US_PER_SEC);
}

int gw__adm_fetch_http(const char *dir, const char *url, uint64_t max, int timeout_ms,
                       struct gw_adm_blob **out, char *err, size_t errlen)
{
    struct lws_context_creation_info info;
    struct lws_client_connect_info ci;
    struct fetch f;
    char copy[2048], path[2048 + 1];
    const char *prot, *addr, *upath;
    int port, rc;

    memset(&f, 0, sizeof(f));
    f.max = max;
    f.err = err;
    f.errlen = errlen;
    err[0] = '\0';
    if (strlen(url) >= sizeof(copy)) {
        snprintf(err, errlen, "fileUrl: too long");
        return GW_E_BAD_FIELD;
    }
    snprintf(copy, sizeof(copy), "%s", url);
    if (lws_parse_uri(copy, &prot, &addr, &port, &upath) || strcmp(prot, "http") != 0 ||
        !*addr) {
        snprintf(err, errlen, "fileUrl: not an http://host[:port]/path URL");
        return GW_E_BAD_FIELD;
    }
    snprintf(path, sizeof(path), "/%s", upath);
    rc = gw__adm_blob_begin(dir, &f.blob);
    if (rc != 0) {
        snprintf(err, errlen, "cannot create a temp file: %s", strerror(-rc));
        return rc;
    }
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = fetch_protocols;
    info.user = &f;
    info.connect_timeout_secs = 10;
    f.ctx = lws_create_context(&info);
    if (!f.ctx) {
        gw__adm_blob_discard(f.blob);
        snprintf(err, errlen, "cannot create an HTTP client");
        return -ENOMEM;
    }
    memset(&ci, 0, sizeof(ci));
    ci.context = f.ctx;
    ci.address = addr;
    ci.port = port;
    ci.path = path;
    ci.host = addr;
    ci.origin = addr;
    ci.method = "GET";
    ci.protocol = fetch_protocols[0].name;
    f.deadline_ms = mono_ms() + timeout_ms;
    lws_sul_schedule(f.ctx, 0, &f.sul, fetch_tick, LWS_US_PER_SEC);
    if (!lws_client_connect_via_info(&ci) && !f.done)
        fetch_fail(&f, "connection failed");
    while (!f.done)
        if (lws_service(f.ctx, 0) < 0)
            break;
    lws_sul_cancel(&f.sul);
    lws_context_destroy(f.ctx);
    if (!f.ok) {
        gw__adm_blob_discard(f.blob);
        if (!err[0])
            snprintf(err, errlen, "fileUrl: fetch failed");
        return GW_E_BAD_FIELD;
    }
    rc = gw__adm_blob_finish(f.blob);
    if (rc != 0) {
        gw__adm_blob_discard(f.blob);
        snprintf(err, errlen, "cannot store the file: %s", strerror(-rc));
        return rc;
    }
    *out = f.blob;
    return 0;
}
