/*
 * DESIGN: the HTTP device adapter (type "http", DESIGN §7.5, REFERENCE §4.4): one
 * libwebsockets context per instance, serviced by the instance's own thread.
 *
 * Owns: the lws context; the table of requests waiting for the core (`pend`, by handle);
 * the device table (http_devices.c) with each device's bounded downstream queue and its
 * parked long-poll.
 *
 * Threads:
 *  - owner (main): create/start/stop/destroy/stats;
 *  - core thread (any thread): submit, which only files the message under `lock` (a reply
 *    on its waiting request, a downstream request in its device's queue) and wakes the
 *    service thread with lws_cancel_service(), the one lws call safe off its thread;
 *  - the service thread: every other lws call, every callback (http_conn.c), every post,
 *    the long-poll deadlines and the reachability sweep (lws_sul timers).
 *
 * Sessions: an HTTP request is not a session. Each request that waits for the core gets a
 * fresh handle (auth, and methods with a reply); replies come back to it. A device is
 * "reachable" from a successful login or the start of a poll until it has not polled for
 * window_ms (2 x max_wait_s): its session seq is the login's handle, or a fresh handle when
 * it starts polling again after going offline. Handles come from one counter, so a device's
 * seqs only grow, as the core requires.
 *
 * Invariants: a conn is in `pend` or `done` only while its phase is WAIT; a device's `poll`
 * names a conn in phase POLL; both links are cut under `lock` before lws may free the conn
 * (CLOSED_HTTP / HTTP_DROP_PROTOCOL). Once `closed` is set (stop), submit touches no lws.
 */
#include <errno.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_core.h"
#include "gw_error.h"
#include "gw_http.h"
#include "gw_log.h"
#include "http_internal.h"

static const struct gw_adapter_ops gw_http_ops;

static struct gw__http *from_base(struct gw_adapter *ad)
{
    return (struct gw__http *)ad;
}

int64_t gw__http_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cmp_handle(const void *x, const void *y)
{
    const struct gw__http_conn *a = x, *b = y;

    return a->handle < b->handle ? -1 : a->handle > b->handle;
}

static const char *data_str(const cJSON *data, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(data, key);

    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/*
 * A new session handle: max(last + 1, wall clock in microseconds). Handles only grow (the
 * core orders a device's sessions by them), and a device that moves from another adapter to
 * this one later in time gets a larger seq than its old session had. Any thread.
 */
uint64_t gw__http_new_handle(struct gw__http *a)
{
    struct timespec ts;
    uint64_t cur, next, now;

    clock_gettime(CLOCK_REALTIME, &ts);
    now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    cur = atomic_load(&a->next_handle);
    do {
        next = now > cur + 1 ? now : cur + 1;
    } while (!atomic_compare_exchange_weak(&a->next_handle, &cur, next));
    return next;
}

/* ---- submit (any thread) ---- */

/* Under lock: files a reply on the request waiting for it. */
static int file_reply(struct gw__http *a, struct gw_msg *msg)
{
    struct gw__http_conn key = { .handle = msg->origin.session }, *c;
    void *n;

    if (msg->method == GW_METHOD_AUTH && msg->code == 0) {
        const char *pk = data_str(msg->data, "productKey");
        const char *dn = data_str(msg->data, "deviceName");

        /* The core bound a session with this handle: track it even if the client is gone,
         * so the sweep ends it. */
        if (pk && dn)
            gw__http_dev_on_login(a, pk, dn, msg->origin.session);
    }
    if (msg->origin.session == 0) {
        /* The answer to a message HTTP already acknowledged (an error reply to a
         * thing.ota.progress): nobody waits for it any more. */
        gw_log(GW_LOG_DEBUG, a->base.name, "%s/%s: %s answered %d (%s) after the HTTP reply",
               msg->product_key, msg->device_name, gw_msg_method_name(msg), (int)msg->code,
               msg->msg ? msg->msg : "");
        gw_msg_unref(msg);
        return 0;
    }
    n = tfind(&key, &a->pend, cmp_handle);
    if (!n)
        return GW_E_DEVICE_NOT_CONNECTED; /* the client went away meanwhile */
    c = *(struct gw__http_conn **)n;
    tdelete(c, &a->pend, cmp_handle);
    c->in_pend = false;
    c->reply = msg;
    c->on_done = true;
    c->done_next = a->done;
    a->done = c;
    return 0;
}

static int http_submit(struct gw_adapter *ad, struct gw_msg *msg)
{
    struct gw__http *a = from_base(ad);
    int rc;

    pthread_mutex_lock(&a->lock);
    if (a->closed)
        rc = GW_E_SHUTDOWN;
    else if (msg->has_code)
        rc = file_reply(a, msg);
    else
        rc = gw__http_dev_queue(a, msg);
    if (rc == 0)
        lws_cancel_service(a->lws); /* under lock: stop cannot destroy the context meanwhile */
    pthread_mutex_unlock(&a->lock);
    if (rc != 0) {
        gw_adapter_count(&a->ctr.dropped_out);
        gw_msg_unref(msg);
    }
    return rc;
}

int gw__http_pend_add(struct gw__http_conn *c)
{
    struct gw__http *a = c->a;
    int rc = 0;

    c->handle = gw__http_new_handle(a);
    pthread_mutex_lock(&a->lock);
    if (tsearch(c, &a->pend, cmp_handle))
        c->in_pend = true;
    else
        rc = -ENOMEM;
    pthread_mutex_unlock(&a->lock);
    return rc;
}

void gw__http_pend_cancel(struct gw__http_conn *c)
{
    struct gw__http *a = c->a;
    struct gw_msg *reply = NULL;

    pthread_mutex_lock(&a->lock);
    if (c->in_pend) {
        tdelete(c, &a->pend, cmp_handle);
        c->in_pend = false;
    }
    if (c->on_done) {
        struct gw__http_conn **pp = &a->done;

        while (*pp && *pp != c)
            pp = &(*pp)->done_next;
        if (*pp)
            *pp = c->done_next;
        c->on_done = false;
    }
    reply = c->reply;
    c->reply = NULL;
    pthread_mutex_unlock(&a->lock);
    gw_msg_unref(reply);
}

struct gw__http_conn *gw__http_done_take(struct gw__http *a)
{
    struct gw__http_conn *list;

    pthread_mutex_lock(&a->lock);
    list = a->done;
    a->done = NULL;
    for (struct gw__http_conn *c = list; c; c = c->done_next)
        c->on_done = false;
    pthread_mutex_unlock(&a->lock);
    return list;
}

/* ---- lifecycle (owner thread) ---- */

static void lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);

    while (n > 0 && line[n - 1] == '\n')
        n--;
    gw_log(level == LLL_ERR ? GW_LOG_ERROR : GW_LOG_WARN, "lws", "%.*s", (int)n, line);
}

static void *service_main(void *arg)
{
    struct gw__http *a = arg;

    gw__http_sweep_start(a);
    while (!atomic_load(&a->stopping))
        if (lws_service(a->lws, 0) < 0)
            break;
    return NULL;
}

static int http_create(struct gw_core *core, const struct gw_config_adapter *cfg,
                       struct gw_adapter **out)
{
    struct gw__http *a = calloc(1, sizeof(*a));
    int64_t w = 2 * (int64_t)cfg->u.http.max_wait_s;

    if (!a)
        return -ENOMEM;
    a->base.ops = &gw_http_ops;
    a->base.core = core;
    snprintf(a->base.name, sizeof(a->base.name), "%s", cfg->name ? cfg->name : "http");
    a->cfg = cfg;
    /* max_wait_s may be 0 (no long-poll): keep devices that poll every second or so. */
    a->window_ms = (w < 2 ? 2 : w) * 1000;
    atomic_init(&a->next_handle, 0);
    pthread_mutex_init(&a->lock, NULL);
    *out = &a->base;
    return 0;
}

static int http_start(struct gw_adapter *ad)
{
    struct gw__http *a = from_base(ad);
    const struct gw_config_addr *la = &a->cfg->listen;
    struct lws_context_creation_info info;
    struct lws_vhost *vh;
    int rc;

    if (a->lws)
        return -EALREADY;
    memset(&info, 0, sizeof(info));
    info.port = la->port;
    if (la->host[0] && strcmp(la->host, "0.0.0.0") != 0 && strcmp(la->host, "::") != 0)
        info.iface = la->host;
    if (strcmp(la->host, "0.0.0.0") == 0)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.protocols = gw__http_protocols;
    info.user = a;
    info.max_http_header_data = 8192; /* tokens in Authorization */
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
    a->lws = lws_create_context(&info);
    if (!a->lws) {
        gw_log(GW_LOG_ERROR, a->base.name, "cannot listen on %s:%d (address in use or not local?)",
               la->host, la->port);
        return -EADDRINUSE;
    }
    vh = lws_get_vhost_by_name(a->lws, "default");
    a->port = vh ? lws_get_vhost_listen_port(vh) : la->port;
    rc = pthread_create(&a->thread, NULL, service_main, a);
    if (rc != 0) {
        lws_context_destroy(a->lws);
        a->lws = NULL;
        return -rc;
    }
    a->thread_started = true;
    gw_log(GW_LOG_INFO, a->base.name, "HTTP devices: http://%s:%d (POST /auth, /topic/sys/...; "
           "long-poll up to %d s)", la->host, a->port, a->cfg->u.http.max_wait_s);
    return 0;
}

static void http_stop(struct gw_adapter *ad)
{
    struct gw__http *a = from_base(ad);

    pthread_mutex_lock(&a->lock);
    a->closed = true;
    pthread_mutex_unlock(&a->lock);
    if (a->thread_started) {
        atomic_store(&a->stopping, true);
        lws_cancel_service(a->lws);
        pthread_join(a->thread, NULL);
        a->thread_started = false;
    }
    if (a->lws) {
        lws_context_destroy(a->lws); /* closes every connection, callbacks on this thread */
        a->lws = NULL;
    }
    pthread_mutex_lock(&a->lock);
    tdestroy(a->devs, gw__http_dev_free);
    a->devs = NULL;
    a->n_devs = a->n_reachable = a->n_queued = 0;
    a->ready = NULL;
    pthread_mutex_unlock(&a->lock);
}

static void http_destroy(struct gw_adapter *ad)
{
    struct gw__http *a = from_base(ad);

    if (!a)
        return;
    http_stop(ad);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static void http_stats(struct gw_adapter *ad, struct gw_adapter_stats *out)
{
    struct gw__http *a = from_base(ad);

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&a->lock);
    out->sessions = a->n_reachable;
    out->queue_depth = a->n_queued;
    pthread_mutex_unlock(&a->lock);
    gw_adapter_counters_read(&a->ctr, out);
}

static const struct gw_adapter_ops gw_http_ops = {
    .name = "http",
    .create = http_create,
    .start = http_start,
    .submit = http_submit,
    .stop = http_stop,
    .destroy = http_destroy,
    .stats = http_stats,
};

const struct gw_adapter_ops *gw_http_adapter_type(void)
{
    return &gw_http_ops;
}
