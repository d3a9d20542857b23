/*
 * DESIGN: one device's firmware download over HTTP (DESIGN §5.5): libwebsockets client GET on
 * the simulator's loop, resumable with `Range: bytes=N-` (a resumed answer must be 206 with a
 * Content-Range starting at N), MD5 and SHA-256 computed while the bytes arrive (mbedTLS),
 * size and both digests checked at the end.
 *
 * Behaviours: `slow` paces the reads to --slow-rate with lws rx flow control and a timer
 * (CoAP: sim_coap.c waits sim_dl_pace_ms between block requests);
 * `drop_at` makes the device drop everything at that byte (the device then reconnects and
 * resumes: sim_dev.c). Unexpected breaks are resumed up to DL_MAX_RETRIES times.
 *
 * Main thread. struct sim_dl belongs to its device (d->dl); the lws wsi points at it through
 * its opaque user data until LWS_CALLBACK_WSI_DESTROY, where the attempt's outcome is
 * delivered to sim_dev_dl_done (never earlier: the wsi is gone by then, so the device may
 * start a new attempt or free the download). The pacing timer is a separate allocation
 * because uv_close is asynchronous.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>
#include <mbedtls/md5.h>
#include <mbedtls/sha256.h>

#include "gw_util.h"
#include "sim.h"

#define DL_MAX_RETRIES 3

enum dl_outcome { DL_NONE, DL_OK, DL_FAIL, DL_DROPPED, DL_BROKEN };

struct dl_pace {
    uv_timer_t t;
    struct sim_dl *dl; /* NULL once the download is gone */
};

struct sim_dl {
    uint32_t tag; /* SIM_TAG_DL */
    struct sim_dev *d;
    char url[SIM_URL_MAX];
    uint64_t size, got, attempt_start;
    char md5[33], sha256[65];
    mbedtls_md5_context md5c;
    mbedtls_sha256_context shac;
    bool slow;
    uint64_t drop_at;
    struct lws *wsi;
    struct dl_pace *pace;
    bool paused;
    bool in_connect, sync_destroyed; /* a wsi that died inside connect_via_info */
    bool coap_running;               /* a CoAP Block2 attempt is in progress */
    int status;
    uint32_t retries;
    enum dl_outcome outcome;
    char why[128];
    int64_t t_start_ms, t_attempt_ms;
};

static void set_outcome(struct sim_dl *dl, enum dl_outcome o, const char *fmt, const char *arg)
{
    if (dl->outcome != DL_NONE)
        return;
    dl->outcome = o;
    snprintf(dl->why, sizeof(dl->why), fmt, arg ? arg : "");
}

static bool check_start(struct sim_dl *dl, struct lws *wsi)
{
    char cr[128], want[64];

    dl->status = (int)lws_http_client_http_response(wsi);
    if (dl->got == 0)
        return dl->status == 200 || dl->status == 206;
    if (dl->status != 206)
        return false;
    /* "bytes N-M/T": the server must resume where we stopped */
    if (lws_hdr_copy(wsi, cr, sizeof(cr), WSI_TOKEN_HTTP_CONTENT_RANGE) <= 0)
        return false;
    snprintf(want, sizeof(want), "bytes %" PRIu64 "-", dl->got);
    return strncmp(cr, want, strlen(want)) == 0;
}

static void pace_cb(uv_timer_t *t)
{
    struct dl_pace *p = t->data;

    if (p->dl && p->dl->wsi && p->dl->paused) {
        p->dl->paused = false;
        lws_rx_flow_control(p->dl->wsi, 1);
    }
}

static void pace_close_cb(uv_handle_t *h)
{
    free(h->data);
}

/* Milliseconds until the byte budget of this attempt (--slow-rate since it began) covers
 * the bytes up to `upto`; 0 when it already does. */
static uint64_t pace_wait(const struct sim_dl *dl, uint64_t upto, uint32_t rate)
{
    int64_t elapsed = sim_now_ms() - dl->t_attempt_ms;
    uint64_t allowed = (uint64_t)(elapsed > 0 ? elapsed : 0) * rate / 1000;
    uint64_t ahead = upto > dl->attempt_start ? upto - dl->attempt_start : 0;

    return ahead <= allowed || rate == 0 ? 0 : (ahead - allowed) * 1000 / rate + 1;
}

uint64_t sim_dl_pace_ms(struct sim_dev *d, uint64_t upto)
{
    struct sim_dl *dl = d->dl;

    if (!dl || !dl->slow)
        return 0;
    return pace_wait(dl, upto < dl->size ? upto : dl->size, d->sim->o.slow_rate);
}

/* Slow download: stop reading until the byte budget of the elapsed time covers what we got. */
static void pace(struct sim_dl *dl, struct sim *s)
{
    uint64_t wait = pace_wait(dl, dl->got, s->o.slow_rate);

    if (wait == 0)
        return;
    if (!dl->pace) {
        dl->pace = calloc(1, sizeof(*dl->pace));
        if (!dl->pace)
            return;
        dl->pace->dl = dl;
        uv_timer_init(s->loop, &dl->pace->t);
        dl->pace->t.data = dl->pace;
    }
    dl->paused = true;
    lws_rx_flow_control(dl->wsi, 0);
    uv_timer_start(&dl->pace->t, pace_cb, wait, 0);
}

static int on_data(struct sim_dl *dl, const uint8_t *in, size_t len)
{
    struct sim_dev *d = dl->d;

    if (dl->got + len > dl->size) {
        set_outcome(dl, DL_FAIL, "server sent more than fileSize", NULL);
        return -1;
    }
    mbedtls_md5_update_ret(&dl->md5c, in, len);
    mbedtls_sha256_update_ret(&dl->shac, in, len);
    dl->got += len;
    d->sim->c.dl_bytes += len;
    sim_dev_dl_progress(d, dl->got, dl->size);
    if (dl->drop_at && !d->dropped && dl->got >= dl->drop_at) {
        d->dropped = true;
        set_outcome(dl, DL_DROPPED, "dropped on purpose", NULL);
        return -1;
    }
    if (dl->slow && dl->wsi)
        pace(dl, d->sim); /* CoAP: sim_coap.c paces its block requests (sim_dl_pace_ms) */
    return 0;
}

static void verify(struct sim_dl *dl)
{
    uint8_t md5[16], sha[32];
    char hex[65];

    if (dl->got != dl->size) {
        set_outcome(dl, DL_BROKEN, "body shorter than fileSize", NULL);
        return;
    }
    mbedtls_md5_finish_ret(&dl->md5c, md5);
    mbedtls_sha256_finish_ret(&dl->shac, sha);
    gw_hex_encode(md5, sizeof(md5), hex);
    if (strcmp(hex, dl->md5) != 0) {
        set_outcome(dl, DL_FAIL, "MD5 mismatch: %s", hex);
        return;
    }
    if (dl->sha256[0]) {
        gw_hex_encode(sha, sizeof(sha), hex);
        if (strcmp(hex, dl->sha256) != 0) {
            set_outcome(dl, DL_FAIL, "SHA-256 mismatch: %s", hex);
            return;
        }
    }
    set_outcome(dl, DL_OK, "verified", NULL);
}

/* The attempt is over and its wsi gone: tell the device (which may resume or free dl). */
static void attempt_over(struct sim_dl *dl)
{
    struct sim_dev *d = dl->d;
    enum dl_outcome o = dl->outcome;

    dl->wsi = NULL;
    dl->paused = false;
    if (dl->pace)
        uv_timer_stop(&dl->pace->t);
    if (o == DL_NONE)
        set_outcome(dl, DL_BROKEN, "connection closed early", NULL), o = DL_BROKEN;
    if (o == DL_BROKEN && dl->retries < DL_MAX_RETRIES && dl->status != 404 &&
        dl->status != 401 && dl->status != 403) {
        dl->retries++;
        if (sim_dl_resume(d) == 0)
            return;
    }
    if (o == DL_OK)
        sim_dev_dl_time(d, (double)(sim_now_ms() - dl->t_start_ms));
    sim_dev_dl_done(d, o == DL_OK ? 0 : o == DL_DROPPED ? -EINTR : -EIO, dl->why);
}

int sim_dl_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len);
int sim_dl_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    struct sim_dl *dl = lws_get_opaque_user_data(wsi);
    char st[16];

    if (dl && dl->tag != SIM_TAG_DL)
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        if (dl && dl->got > 0) {
            unsigned char **p = in, *end = *p + len;
            char range[48];

            snprintf(range, sizeof(range), "bytes=%" PRIu64 "-", dl->got);
            if (lws_add_http_header_by_name(wsi, (const unsigned char *)"range:",
                                            (const unsigned char *)range, (int)strlen(range),
                                            p, end))
                return -1;
        }
        break;
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        if (dl && !check_start(dl, wsi)) {
            snprintf(st, sizeof(st), "%d", dl->status);
            set_outcome(dl, dl->got ? DL_FAIL : DL_BROKEN, "bad answer: HTTP %s", st);
            return -1;
        }
        break;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
        if (dl && dl->outcome == DL_NONE)
            return on_data(dl, in, len);
        break;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
        char buf[LWS_PRE + 16384], *px = buf + LWS_PRE;
        int lenx = (int)sizeof(buf) - LWS_PRE;

        if (lws_http_client_read(wsi, &px, &lenx) < 0)
            return -1;
        return 0;
    }
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
        if (dl && dl->outcome == DL_NONE)
            verify(dl);
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (dl)
            set_outcome(dl, DL_BROKEN, "connect failed: %s", in ? (const char *)in : "");
        break;
    case LWS_CALLBACK_WSI_DESTROY:
        if (dl && dl->in_connect) {
            lws_set_opaque_user_data(wsi, NULL);
            dl->sync_destroyed = true;
        } else if (dl && dl->wsi == wsi) {
            lws_set_opaque_user_data(wsi, NULL);
            attempt_over(dl);
        }
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---- CoAP Block2 attempts (sim_coap.c does the protocol) ---- */

int sim_dl_coap_data(struct sim_dev *d, uint64_t offset, const uint8_t *p, size_t len)
{
    struct sim_dl *dl = d->dl;
    uint64_t skip;

    if (!dl || !dl->coap_running || dl->outcome != DL_NONE)
        return -1;
    if (offset > dl->got) {
        set_outcome(dl, DL_BROKEN, "a block is missing", NULL);
        return -1;
    }
    /* a resumed transfer starts at the block holding the first missing byte */
    skip = dl->got - offset;
    if (skip >= len)
        return 0;
    return on_data(dl, p + skip, len - (size_t)skip);
}

void sim_dl_coap_end(struct sim_dev *d, int rc, const char *why)
{
    struct sim_dl *dl = d->dl;

    if (!dl || !dl->coap_running)
        return;
    dl->coap_running = false;
    if (rc == 0 && dl->outcome == DL_NONE)
        verify(dl);
    else if (dl->outcome == DL_NONE)
        set_outcome(dl, DL_BROKEN, "%s", why ? why : "transfer failed");
    attempt_over(dl);
}

static int connect_attempt(struct sim_dl *dl)
{
    struct sim *s = dl->d->sim;
    struct lws_client_connect_info i;
    char host[256], path[SIM_URL_MAX];
    struct lws *w;
    int port = 80;

    if (strncmp(dl->url, "coap://", 7) == 0) {
        dl->outcome = DL_NONE;
        dl->status = 0;
        dl->attempt_start = dl->got;
        dl->t_attempt_ms = sim_now_ms();
        dl->coap_running = true;
        if (sim_coap_fetch(dl->d, dl->url, dl->got) != 0) {
            dl->coap_running = false;
            return -ECONNREFUSED;
        }
        return 0;
    }
    if (sim_http_parse_url(dl->url, host, sizeof(host), &port, path, sizeof(path)) != 0)
        return -EINVAL;
    memset(&i, 0, sizeof(i));
    i.context = s->lws;
    i.address = host;
    i.port = port;
    i.path = path;
    i.host = host;
    i.origin = host;
    i.method = "GET";
    i.local_protocol_name = "sim-dl";
    i.opaque_user_data = dl;
    i.pwsi = &dl->wsi; /* set before any callback of this wsi can run */
    dl->outcome = DL_NONE;
    dl->status = 0;
    dl->attempt_start = dl->got;
    dl->t_attempt_ms = sim_now_ms();
    dl->in_connect = true;
    dl->sync_destroyed = false;
    w = lws_client_connect_via_info(&i);
    dl->in_connect = false;
    if (!w || dl->sync_destroyed) {
        /* failed inside the call: the caller hears it from the return value */
        dl->wsi = NULL;
        return -ECONNREFUSED;
    }
    return 0;
}

int sim_dl_begin(struct sim_dev *d, const char *url, uint64_t size, const char *md5,
                 const char *sha256, bool slow, uint64_t drop_at)
{
    struct sim_dl *dl;

    sim_dl_free(d);
    dl = calloc(1, sizeof(*dl));
    if (!dl)
        return -ENOMEM;
    dl->tag = SIM_TAG_DL;
    dl->d = d;
    if (strlen(url) >= sizeof(dl->url) || strlen(md5) >= sizeof(dl->md5) ||
        strlen(sha256) >= sizeof(dl->sha256)) {
        free(dl);
        return -EINVAL;
    }
    strcpy(dl->url, url);
    strcpy(dl->md5, md5);
    strcpy(dl->sha256, sha256);
    dl->size = size;
    dl->slow = slow;
    dl->drop_at = drop_at;
    mbedtls_md5_init(&dl->md5c);
    mbedtls_sha256_init(&dl->shac);
    mbedtls_md5_starts_ret(&dl->md5c);
    mbedtls_sha256_starts_ret(&dl->shac, 0);
    d->dl = dl;
    return 0;
}

int sim_dl_resume(struct sim_dev *d)
{
    struct sim_dl *dl = d->dl;

    if (!dl || dl->wsi || dl->coap_running)
        return -EINVAL;
    if (dl->got > 0) {
        d->sim->c.dl_resumed++;
    } else {
        d->sim->c.dl_started++;
        dl->t_start_ms = sim_now_ms();
    }
    return connect_attempt(dl);
}

void sim_dl_abort(struct sim_dev *d)
{
    struct sim_dl *dl = d->dl;

    if (dl && dl->coap_running) {
        set_outcome(dl, DL_DROPPED, "aborted", NULL);
        sim_coap_fetch_cancel(d);
        sim_dl_coap_end(d, -EINTR, "aborted");
        return;
    }
    if (!dl || !dl->wsi)
        return;
    set_outcome(dl, DL_DROPPED, "aborted", NULL);
    /* closes at once; WSI_DESTROY reports the outcome */
    sim_lws_kill(dl->wsi);
}

void sim_dl_free(struct sim_dev *d)
{
    struct sim_dl *dl = d->dl;

    if (!dl)
        return;
    if (dl->coap_running)
        sim_coap_fetch_cancel(d);
    if (dl->wsi) {
        /* still connected (end of run): detach, lws frees the wsi when the context goes */
        lws_set_opaque_user_data(dl->wsi, NULL);
        sim_lws_kill(dl->wsi);
    }
    if (dl->pace) {
        dl->pace->dl = NULL;
        uv_close((uv_handle_t *)&dl->pace->t, pace_close_cb);
    }
    mbedtls_md5_free(&dl->md5c);
    mbedtls_sha256_free(&dl->shac);
    free(dl);
    d->dl = NULL;
}
