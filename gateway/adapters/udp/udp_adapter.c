/*
 * DESIGN: the UDP adapter instance (type "udp"): the socket, sending, the expiry timer and
 * the lifecycle. Sessions and the upstream path live in udp_session.c.
 *
 * Threads: the owner (main) calls create/start/stop/destroy/stats; submit comes from any
 * thread (the core) and only queues (../tcp/uv_worker.c); everything else runs on the
 * adapter's libuv loop thread.
 *
 * Downstream: origin.session names the session (a device's, or a pending login's for the
 * core's auth reply). A session that is gone is refused at submit
 * (GW_E_DEVICE_NOT_CONNECTED). Sending is fire-and-forget, as UDP is: a datagram the socket
 * cannot take (over GW_UDP_SENDQ_MAX bytes unsent) is dropped and counted.
 */
#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_udp.h"
#include "udp_internal.h"

#define DISPATCH_BATCH 64

static const struct gw_adapter_ops gw_udp_adapter_ops;

struct gw__udp_sreq {
    uv_udp_send_t req;
    uint8_t *buf;
    struct gw__udp_adapter *a;
};

static struct gw__udp_adapter *from_base(struct gw_adapter *ad)
{
    return (struct gw__udp_adapter *)ad;
}

/* ---- sending ---- */

static void on_sent(uv_udp_send_t *req, int status)
{
    struct gw__udp_sreq *r = (struct gw__udp_sreq *)req;

    if (status == 0)
        gw_adapter_count(&r->a->ctr.msgs_out);
    else
        gw_adapter_count(&r->a->ctr.dropped_out);
    if (status != 0 && status != UV_ECANCELED)
        gw_log(GW_LOG_DEBUG, r->a->base.name, "send: %s", uv_strerror(status));
    free(r->buf);
    free(r);
}

void gw__udp_send(struct gw__udp_adapter *a, const struct sockaddr *addr, const struct gw_msg *msg)
{
    struct gw__udp_sreq *r = calloc(1, sizeof(*r));
    size_t len = 0;
    uv_buf_t b;
    int rc;

    if (!r) {
        rc = -ENOMEM;
        goto err;
    }
    r->a = a;
    rc = a->codec->encode(msg, &r->buf, &len);
    if (rc == 0 && len > GW_UDP_DATAGRAM_MAX)
        rc = GW_E_FRAME_TOO_LARGE;
    if (rc == 0 && uv_udp_get_send_queue_size(&a->sock) > GW_UDP_SENDQ_MAX)
        rc = GW_E_QUEUE_FULL;
    if (rc)
        goto err_free;
    b = uv_buf_init((char *)r->buf, (unsigned)len);
    rc = uv_udp_send(&r->req, &a->sock, &b, 1, addr, on_sent);
    if (rc)
        goto err_free;
    return;
err_free:
    free(r->buf);
    free(r);
err:
    gw_adapter_count(&a->ctr.dropped_out);
    gw_log(GW_LOG_WARN, a->base.name, "cannot send %s: %s", gw_msg_method_name(msg),
           gw_strerror(rc));
}

/* ---- loop thread callbacks ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct gw__udp_adapter *a = h->data;

    (void)suggested;
    buf->base = (char *)a->rbuf;
    buf->len = sizeof(a->rbuf);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags)
{
    struct gw__udp_adapter *a = h->data;

    if (nread < 0) {
        gw_log(GW_LOG_WARN, a->base.name, "receive: %s", uv_strerror((int)nread));
        return;
    }
    if (!from || nread == 0)
        return; /* nothing more to read now (or an empty datagram) */
    if (flags & UV_UDP_PARTIAL) {
        gw_adapter_count(&a->ctr.dropped_in);
        gw_log(GW_LOG_INFO, a->base.name, "datagram over %zu bytes dropped", sizeof(a->rbuf));
        return;
    }
    gw__udp_on_datagram(a, (const uint8_t *)buf->base, (size_t)nread, from);
}

static void on_sweep(uv_timer_t *t)
{
    gw__udp_sweep(t->data);
}

static void on_wake(struct gw__uvw *w)
{
    struct gw__udp_adapter *a = w->ctx;
    struct gw_msg *batch[DISPATCH_BATCH];
    size_t n;

    while ((n = gw__uvw_take(w, batch, DISPATCH_BATCH)) > 0) {
        for (size_t i = 0; i < n; i++) {
            struct gw__udp_sess *s = gw__uvw_live_find(w, batch[i]->origin.session);
            if (s) {
                gw__udp_deliver(a, s, batch[i]);
            } else {
                gw_adapter_count(&a->ctr.dropped_out);
                gw_log(GW_LOG_DEBUG, a->base.name, "%s for an expired session dropped",
                       gw_msg_method_name(batch[i]));
            }
            gw_msg_unref(batch[i]);
        }
    }
}

static void on_stop(struct gw__uvw *w)
{
    struct gw__udp_adapter *a = w->ctx;

    if (a->sock_init && !uv_is_closing((uv_handle_t *)&a->sock))
        uv_close((uv_handle_t *)&a->sock, NULL);
    if (a->sweep_init && !uv_is_closing((uv_handle_t *)&a->sweep))
        uv_close((uv_handle_t *)&a->sweep, NULL);
    gw__udp_sessions_clear(a); /* the ALL_OFFLINE posted at stop tells the core */
}

/* ---- ops ---- */

static int udp_create(struct gw_core *core, const struct gw_config_adapter *cfg,
                      struct gw_adapter **out)
{
    struct gw__udp_adapter *a;
    int rc;

    *out = NULL;
    a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->base.ops = &gw_udp_adapter_ops;
    a->base.core = core;
    snprintf(a->base.name, sizeof(a->base.name), "%s", cfg->name ? cfg->name : "udp");
    a->cfg = cfg;
    a->codec =
        cfg->u.udp.serializer == GW_CONFIG_SERIALIZER_BINARY ? &gw_codec_binary : &gw_codec_json;
    a->jwt_secret = gw_core_jwt_secret(core, &a->jwt_secret_len);
    rc = gw__uvw_init(&a->w, GW_UDP_QUEUE_CAP, a, a->base.name, on_wake, on_stop);
    if (rc)
        goto err_free;
    rc = uv_udp_init(&a->w.loop, &a->sock);
    if (rc)
        goto err_fini;
    a->sock.data = a;
    a->sock_init = true;
    rc = uv_timer_init(&a->w.loop, &a->sweep);
    if (rc)
        goto err_fini;
    a->sweep.data = a;
    a->sweep_init = true;
    *out = &a->base;
    return 0;
err_fini:
    gw__uvw_fini(&a->w);
err_free:
    free(a);
    return rc;
}

static int udp_start(struct gw_adapter *ad)
{
    struct gw__udp_adapter *a = from_base(ad);
    struct sockaddr_storage addr;
    int alen = sizeof(addr);
    char where[GW_CONFIG_HOST_MAX + 16];
    uint64_t sweep_ms;
    int rc;

    if (a->started)
        return -EALREADY;
    rc = gw__uvw_resolve(&a->cfg->listen, SOCK_DGRAM, &addr);
    if (rc) {
        gw_log(GW_LOG_ERROR, a->base.name, "cannot resolve listen address %s", a->cfg->listen.host);
        return rc;
    }
    rc = uv_udp_bind(&a->sock, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_udp_recv_start(&a->sock, on_alloc, on_recv);
    if (rc) {
        gw_log(GW_LOG_ERROR, a->base.name, "cannot listen on %s:%d: %s", a->cfg->listen.host,
               a->cfg->listen.port, uv_strerror(rc));
        return rc;
    }
    /* Expiry is checked four times per timeout (at least every 100 ms, at most every 1 s). */
    sweep_ms = (uint64_t)a->cfg->u.udp.session_timeout_s * 250;
    sweep_ms = sweep_ms < 100 ? 100 : sweep_ms > 1000 ? 1000 : sweep_ms;
    uv_timer_start(&a->sweep, on_sweep, sweep_ms, sweep_ms);
    if (uv_udp_getsockname(&a->sock, (struct sockaddr *)&addr, &alen) == 0)
        gw__uvw_addr_str((struct sockaddr *)&addr, where, sizeof(where));
    else
        snprintf(where, sizeof(where), "%s:%d", a->cfg->listen.host, a->cfg->listen.port);
    rc = gw__uvw_start(&a->w);
    if (rc) {
        gw_log(GW_LOG_ERROR, a->base.name, "cannot start the loop thread: %s", gw_strerror(rc));
        return rc;
    }
    a->started = true;
    gw_log(GW_LOG_INFO, a->base.name, "UDP devices: udp://%s (%s)", where, a->codec->name);
    return 0;
}

static int udp_submit(struct gw_adapter *ad, struct gw_msg *msg)
{
    struct gw__udp_adapter *a = from_base(ad);
    int rc = gw__uvw_submit(&a->w, msg);

    if (rc)
        gw_adapter_count(&a->ctr.dropped_out);
    return rc;
}

static void udp_stop(struct gw_adapter *ad)
{
    struct gw__udp_adapter *a = from_base(ad);
    bool was_started = a->started;

    gw__uvw_stop(&a->w);
    a->started = false;
    if (was_started)
        gw_core_post_session(a->base.core, &a->base, GW_SESSION_ALL_OFFLINE, NULL, NULL, 0, 0);
}

static void free_nothing(void *node)
{
    (void)node; /* by_device does not own the sessions (and is empty after stop) */
}

static void udp_destroy(struct gw_adapter *ad)
{
    struct gw__udp_adapter *a = from_base(ad);

    if (!a)
        return;
    udp_stop(ad);
    gw__uvw_fini(&a->w);
    tdestroy(a->by_device, free_nothing);
    free(a);
}

static void udp_stats(struct gw_adapter *ad, struct gw_adapter_stats *out)
{
    struct gw__udp_adapter *a = from_base(ad);

    memset(out, 0, sizeof(*out));
    out->sessions = atomic_load(&a->sessions);
    gw_adapter_counters_read(&a->ctr, out);
    out->queue_depth = gw__uvw_queue_depth(&a->w);
}

static const struct gw_adapter_ops gw_udp_adapter_ops = {
    .name = "udp",
    .create = udp_create,
    .start = udp_start,
    .submit = udp_submit,
    .stop = udp_stop,
    .destroy = udp_destroy,
    .stats = udp_stats,
};

const struct gw_adapter_ops *gw_udp_adapter_type(void)
{
    return &gw_udp_adapter_ops;
}
