/*
 * DESIGN: the TCP adapter instance (type "tcp"): the listener, the downstream dispatch and
 * the lifecycle. Connections live in tcp_conn.c.
 *
 * Threads: the owner (main) calls create/start/stop/destroy/stats; submit comes from any
 * thread (the core) and only queues (uv_worker.c); everything else runs on the adapter's
 * libuv loop thread.
 *
 * Downstream: a message names its session (origin.session = the connection's handle). A
 * session that is gone is refused at submit (GW_E_DEVICE_NOT_CONNECTED); one that closes
 * after submit drops the message (counted in dropped_out). The core's reply to an `auth`
 * binds the connection to the device before it is written.
 *
 * Presence: the core binds the session itself when it accepts an `auth`; this adapter posts
 * GW_SESSION_OFFLINE (seq = session) when a connection closes, retrying on a timer while the
 * core's queue is full, and one GW_SESSION_ALL_OFFLINE at stop.
 */
#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_tcp.h"
#include "tcp_internal.h"

#define DISPATCH_BATCH 64

static const struct gw_adapter_ops gw_tcp_adapter_ops;

static struct gw__tcp_adapter *from_base(struct gw_adapter *ad)
{
    return (struct gw__tcp_adapter *)ad;
}

/* ---- session events the core refused ---- */

static void on_retry(uv_timer_t *t)
{
    struct gw__tcp_adapter *a = t->data;
    size_t done = 0;

    while (done < a->n_pending) {
        struct gw__tcp_pending_ev *ev = &a->pending[done];
        int rc = gw_core_post_session(a->base.core, &a->base, GW_SESSION_OFFLINE, ev->pk, ev->dn,
                                      ev->session, ev->session);
        if (rc == -EAGAIN)
            break;
        done++;
    }
    memmove(a->pending, a->pending + done, (a->n_pending - done) * sizeof(*a->pending));
    a->n_pending -= done;
    if (a->n_pending == 0)
        uv_timer_stop(t);
}

void gw__tcp_post_offline(struct gw__tcp_adapter *a, const char *pk, const char *dn,
                          uint64_t session)
{
    struct gw__tcp_pending_ev *ev;

    if (a->n_pending == 0 && gw_core_post_session(a->base.core, &a->base, GW_SESSION_OFFLINE, pk,
                                                  dn, session, session) != -EAGAIN)
        return;
    /* The core is full (or earlier events wait): keep the order, retry on the timer. */
    if (a->n_pending == a->cap_pending) {
        size_t cap = a->cap_pending ? a->cap_pending * 2 : 16;
        struct gw__tcp_pending_ev *v = realloc(a->pending, cap * sizeof(*v));
        if (!v) {
            gw_log(GW_LOG_ERROR, a->base.name, "offline event for %s/%s lost (no memory)", pk, dn);
            return;
        }
        a->pending = v;
        a->cap_pending = cap;
    }
    ev = &a->pending[a->n_pending++];
    snprintf(ev->pk, sizeof(ev->pk), "%s", pk);
    snprintf(ev->dn, sizeof(ev->dn), "%s", dn);
    ev->session = session;
    if (!uv_is_active((uv_handle_t *)&a->retry_timer))
        uv_timer_start(&a->retry_timer, on_retry, GW_TCP_RETRY_MS, GW_TCP_RETRY_MS);
}

/* ---- loop thread callbacks ---- */

static void dispatch(struct gw__tcp_adapter *a, struct gw_msg *msg)
{
    struct gw__tcp_conn *c = gw__uvw_live_find(&a->w, msg->origin.session);

    if (!c || c->closing) {
        gw_adapter_count(&a->ctr.dropped_out);
        gw_log(GW_LOG_DEBUG, a->base.name, "%s for a closed session dropped",
               gw_msg_method_name(msg));
        return;
    }
    if (msg->method == GW_METHOD_AUTH && gw_msg_is_reply(msg))
        gw__tcp_conn_auth_reply(c, msg);
    else
        gw__tcp_conn_send(c, msg);
}

static void on_wake(struct gw__uvw *w)
{
    struct gw__tcp_adapter *a = w->ctx;
    struct gw_msg *batch[DISPATCH_BATCH];
    size_t n;

    while ((n = gw__uvw_take(w, batch, DISPATCH_BATCH)) > 0) {
        for (size_t i = 0; i < n; i++) {
            dispatch(a, batch[i]);
            gw_msg_unref(batch[i]);
        }
    }
}

static void on_stop(struct gw__uvw *w)
{
    struct gw__tcp_adapter *a = w->ctx;

    if (a->server_init && !uv_is_closing((uv_handle_t *)&a->server))
        uv_close((uv_handle_t *)&a->server, NULL);
    if (a->retry_init && !uv_is_closing((uv_handle_t *)&a->retry_timer))
        uv_close((uv_handle_t *)&a->retry_timer, NULL);
    a->n_pending = 0; /* the ALL_OFFLINE posted at stop covers them */
    for (struct gw__tcp_conn *c = a->conns; c; c = c->next)
        gw__tcp_conn_close(c, false, NULL);
}

/* ---- ops ---- */

static void free_nothing(void *node)
{
    (void)node; /* by_device does not own the connections (and is empty after stop) */
}

static int tcp_create(struct gw_core *core, const struct gw_config_adapter *cfg,
                      struct gw_adapter **out)
{
    struct gw__tcp_adapter *a;
    int rc;

    *out = NULL;
    a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->base.ops = &gw_tcp_adapter_ops;
    a->base.core = core;
    snprintf(a->base.name, sizeof(a->base.name), "%s", cfg->name ? cfg->name : "tcp");
    a->cfg = cfg;
    a->codec =
        cfg->u.tcp.serializer == GW_CONFIG_SERIALIZER_BINARY ? &gw_codec_binary : &gw_codec_json;
    rc = gw__uvw_init(&a->w, GW_TCP_QUEUE_CAP, a, a->base.name, on_wake, on_stop);
    if (rc)
        goto err_free;
    rc = uv_tcp_init(&a->w.loop, &a->server);
    if (rc)
        goto err_fini;
    a->server.data = a;
    a->server_init = true;
    rc = uv_timer_init(&a->w.loop, &a->retry_timer);
    if (rc)
        goto err_fini;
    a->retry_timer.data = a;
    a->retry_init = true;
    *out = &a->base;
    return 0;
err_fini:
    gw__uvw_fini(&a->w);
err_free:
    free(a);
    return rc;
}

static const char *framing_name(enum gw_framer_type t)
{
    return t == GW_FRAMER_LENGTH_FIELD   ? "length_field"
           : t == GW_FRAMER_FIXED_LENGTH ? "fixed_length"
                                         : "delimiter";
}

static int tcp_start(struct gw_adapter *ad)
{
    struct gw__tcp_adapter *a = from_base(ad);
    struct sockaddr_storage addr;
    int alen = sizeof(addr);
    char where[GW_CONFIG_HOST_MAX + 16];
    int rc;

    if (a->started)
        return -EALREADY;
    rc = gw__uvw_resolve(&a->cfg->listen, SOCK_STREAM, &addr);
    if (rc) {
        gw_log(GW_LOG_ERROR, a->base.name, "cannot resolve listen address %s", a->cfg->listen.host);
        return rc;
    }
    rc = uv_tcp_bind(&a->server, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->server, 511, gw__tcp_on_connection);
    if (rc) {
        gw_log(GW_LOG_ERROR, a->base.name, "cannot listen on %s:%d: %s", a->cfg->listen.host,
               a->cfg->listen.port, uv_strerror(rc));
        return rc;
    }
    if (uv_tcp_getsockname(&a->server, (struct sockaddr *)&addr, &alen) == 0)
        gw__uvw_addr_str((struct sockaddr *)&addr, where, sizeof(where));
    else
        snprintf(where, sizeof(where), "%s:%d", a->cfg->listen.host, a->cfg->listen.port);
    rc = gw__uvw_start(&a->w);
    if (rc) {
        gw_log(GW_LOG_ERROR, a->base.name, "cannot start the loop thread: %s", gw_strerror(rc));
        return rc;
    }
    a->started = true;
    gw_log(GW_LOG_INFO, a->base.name, "TCP devices: tcp://%s (%s, %s framing)", where,
           a->codec->name, framing_name(a->cfg->u.tcp.framing.type));
    return 0;
}

static int tcp_submit(struct gw_adapter *ad, struct gw_msg *msg)
{
    struct gw__tcp_adapter *a = from_base(ad);
    int rc = gw__uvw_submit(&a->w, msg);

    if (rc)
        gw_adapter_count(&a->ctr.dropped_out);
    return rc;
}

static void tcp_stop(struct gw_adapter *ad)
{
    struct gw__tcp_adapter *a = from_base(ad);
    bool was_started = a->started;

    gw__uvw_stop(&a->w);
    a->started = false;
    if (was_started) {
        atomic_store(&a->sessions, 0);
        gw_core_post_session(a->base.core, &a->base, GW_SESSION_ALL_OFFLINE, NULL, NULL, 0, 0);
    }
}

static void tcp_destroy(struct gw_adapter *ad)
{
    struct gw__tcp_adapter *a = from_base(ad);

    if (!a)
        return;
    tcp_stop(ad);
    gw__uvw_fini(&a->w);
    tdestroy(a->by_device, free_nothing);
    free(a->pending);
    free(a);
}

static void tcp_stats(struct gw_adapter *ad, struct gw_adapter_stats *out)
{
    struct gw__tcp_adapter *a = from_base(ad);

    memset(out, 0, sizeof(*out));
    out->sessions = atomic_load(&a->sessions);
    gw_adapter_counters_read(&a->ctr, out);
    out->queue_depth = gw__uvw_queue_depth(&a->w);
}

static const struct gw_adapter_ops gw_tcp_adapter_ops = {
    .name = "tcp",
    .create = tcp_create,
    .start = tcp_start,
    .submit = tcp_submit,
    .stop = tcp_stop,
    .destroy = tcp_destroy,
    .stats = tcp_stats,
};

const struct gw_adapter_ops *gw_tcp_adapter_type(void)
{
    return &gw_tcp_adapter_ops;
}
