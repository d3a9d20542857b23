/*
 * DESIGN: the HTTP download client of bench/http_download.sh: TOTAL GETs of one URL with
 * PARALLEL connections open at once (libwebsockets client, its own poll loop, one thread),
 * each body counted and checked against the expected size. The same client measures the
 * gateway's firmware server and nginx, so the ratio compares the servers.
 * Prints: downloads=N bytes=B seconds=S mb_per_s=R (MB = 10^6 bytes).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>

struct dl {
    uint64_t got;
    int status;
};

static const char *g_auth;
static uint64_t g_size;
static int g_started, g_done, g_failed, g_total, g_parallel;
static uint64_t g_bytes;
static char g_host[256], g_path[1024];
static int g_port;
static struct lws_context *g_ctx;

static void start_one(void);

static void finish(struct dl *d, bool ok)
{
    if (!d)
        return;
    if (!ok || d->got != g_size || (d->status != 200 && d->status != 206)) {
        if (g_failed++ < 5)
            fprintf(stderr, "bench_download: status %d, %" PRIu64 " of %" PRIu64 " bytes\n",
                    d->status, d->got, g_size);
    }
    g_bytes += d->got;
    g_done++;
    free(d);
}

static int cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct dl *d = lws_get_opaque_user_data(wsi);

    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        if (g_auth) {
            unsigned char **p = in, *end = *p + len;
            if (lws_add_http_header_by_name(wsi, (const unsigned char *)"authorization:",
                                            (const unsigned char *)g_auth, (int)strlen(g_auth),
                                            p, end))
                return -1;
        }
        break;
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        if (d)
            d->status = (int)lws_http_client_http_response(wsi);
        break;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
        if (d)
            d->got += len;
        break;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
        char buf[LWS_PRE + 65536], *px = buf + LWS_PRE;
        int lenx = (int)sizeof(buf) - LWS_PRE;
        if (lws_http_client_read(wsi, &px, &lenx) < 0)
            return -1;
        return 0;
    }
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
        lws_set_opaque_user_data(wsi, NULL);
        finish(d, true);
        start_one();
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        if (d) {
            lws_set_opaque_user_data(wsi, NULL);
            finish(d, false);
            start_one();
        }
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protos[] = {
    { "dl", cb, 0, 0, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};

static void start_one(void)
{
    struct lws_client_connect_info i;
    struct dl *d;

    if (g_started >= g_total)
        return;
    d = calloc(1, sizeof(*d));
    if (!d)
        return;
    g_started++;
    memset(&i, 0, sizeof(i));
    i.context = g_ctx;
    i.address = g_host;
    i.port = g_port;
    i.path = g_path;
    i.host = g_host;
    i.origin = g_host;
    i.method = "GET";
    i.protocol = protos[0].name;
    i.opaque_user_data = d;
    if (!lws_client_connect_via_info(&i)) {
        g_failed++;
        g_done++;
        free(d);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct lws_context_creation_info info;
    char url[1300];
    const char *prot, *ads, *path;
    double t0, t1;

    if (argc < 5) {
        fprintf(stderr, "usage: bench_download URL SIZE PARALLEL TOTAL [AUTH]\n");
        return 2;
    }
    snprintf(url, sizeof(url), "%s", argv[1]);
    g_size = strtoull(argv[2], NULL, 10);
    g_parallel = atoi(argv[3]);
    g_total = atoi(argv[4]);
    g_auth = argc > 5 ? argv[5] : NULL;
    if (lws_parse_uri(url, &prot, &ads, &g_port, &path)) {
        fprintf(stderr, "bench_download: bad URL\n");
        return 2;
    }
    snprintf(g_host, sizeof(g_host), "%s", ads);
    snprintf(g_path, sizeof(g_path), "/%s", path);
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protos;
    lws_set_log_level(LLL_ERR, NULL);
    g_ctx = lws_create_context(&info);
    if (!g_ctx)
        return 1;
    t0 = now_s();
    for (int k = 0; k < g_parallel; k++)
        start_one();
    while (g_done < g_total)
        if (lws_service(g_ctx, 0) < 0)
            break;
    t1 = now_s();
    lws_context_destroy(g_ctx);
    printf("downloads=%d failed=%d bytes=%" PRIu64 " seconds=%.3f mb_per_s=%.1f\n", g_done,
           g_failed, g_bytes, t1 - t0, (double)g_bytes / 1e6 / (t1 - t0));
    return g_failed ? 1 : 0;
}
