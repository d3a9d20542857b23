/*
 * DESIGN: the WebSocket adapter (type "websocket", DESIGN §7.5, REFERENCE §4.8): one
 * libwebsockets context per instance, serviced by the instance's own thread.
 *
 * Owns: the lws context, the connection table (by session handle and, once logged in, by
 * device), each connection's bounded write queue, and the list of OFFLINE posts still due.
 *
 * Threads:
 *  - owner (main): create/start/stop/destroy/stats;
 *  - core thread (any thread): submit, which only queues under `lock` and wakes the service
 *    thread with lws_cancel_service() (the one lws call that is safe off its thread);
 *  - the service thread: every other lws call, every callback (ws_conn.c), all posts.
 *
 * Invariants:
 *  - a connection is in `conns` from ESTABLISHED to CLOSED; it is freed only on the service
 *    thread after being unlinked under `lock`, so submit never sees a freed one;
 *  - at most one logged-in connection per device (`by_dev`): a new login kicks the old one,
 *    whose later OFFLINE carries its older handle and is ignored by the core;
 *  - the core binds a session when it accepts an `auth` (seq = our handle); every such
 *    binding gets an OFFLINE with the same handle when the connection ends, also when the
 *    connection ended before the reply came back;
 *  - once `closed` is set (stop), nothing is posted and no lws call is made from submit.
 */
#include <errno.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_websocket.h"
#include "ws_internal.h"

#define RETRY_US (100 * 1000) /* deferred offlines are retried this often */

static const struct gw_adapter_ops gw_ws_ops;

static struct gw__ws *from_base(struct gw_adapter *ad)
{
    return (struct gw__ws *)ad;
}

static int cmp_handle(const void *x, const void *y)
{
    const struct gw__ws_conn *a = x, *b = y;

    return a->handle < b->handle ? -1 : a->handle > b->handle;
}

static int cmp_dev(const void *x, const void *y)
{
    const struct gw__ws_conn *a = x, *b = y;
    int r = strcmp(a->pk, b->pk);

    return r ? r : strcmp(a->dn, b->dn);
}

static struct gw__ws_conn *find_handle(struct gw__ws *a, uint64_t handle)
{
    struct gw__ws_conn key = { .handle = handle };
    void *n = tfind(&key, &a->conns, cmp_handle);

    return n ? *(struct gw__ws_conn **)n : NULL;
}

static struct gw__ws_conn *find_dev(struct gw__ws *a, const char *pk, const char *dn)
{
    struct gw__ws_conn key;
    void *n;

    snprintf(key.pk, sizeof(key.pk), "%s", pk);
    snprintf(key.dn, sizeof(key.dn), "%s", dn);
    n = tfind(&key, &a->by_dev, cmp_dev);
    return n ? *(struct gw__ws_conn **)n : NULL;
}

/*
 * A new session handle: max(last + 1, wall clock in microseconds). Handles only grow (the
 * core orders a device's sessions by them), and a device that moves from another adapter to
 * this one later in time gets a larger seq than its old session had. Any thread.
 */
uint64_t gw__ws_new_handle(struct gw__ws *a)
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

/* Under lock. */
static void ready_push(struct gw__ws *a, struct gw__ws_conn *c)
{
    if (c->on_ready)
        return;
    c->on_ready = true;
    c->ready_next = a->ready;
    a->ready = c;
}

int gw__ws_conn_add(struct gw__ws *a, struct gw__ws_conn *c)
{
    int rc = 0;

    pthread_mutex_lock(&a->lock);
    if (!tsearch(c, &a->conns, cmp_handle))
        rc = -ENOMEM;
    else
        a->n_conns++;
    pthread_mutex_unlock(&a->lock);
    return rc;
}

bool gw__ws_conn_remove(struct gw__ws *a, struct gw__ws_conn *c, char *pk, char *dn)
{
    bool authed;

    pthread_mutex_lock(&a->lock);
    if (tdelete(c, &a->conns, cmp_handle))
        a->n_conns--;
    authed = c->state == GW__WS_AUTHED;
    if (authed && find_dev(a, c->pk, c->dn) == c) {
        tdelete(c, &a->by_dev, cmp_dev);
        a->n_authed--;
    }
    if (c->on_ready) {
        struct gw__ws_conn **pp = &a->ready;

        while (*pp && *pp != c)
            pp = &(*pp)->ready_next;
        if (*pp)
            *pp = c->ready_next;
        c->on_ready = false;
    }
    while (c->qlen > 0) {
        gw_msg_unref(c->q[c->qhead]);
        c->qhead = (c->qhead + 1) % GW_WS_QUEUE_MAX;
        c->qlen--;
        a->n_queued--;
        gw_adapter_count(&a->ctr.dropped_out);
    }
    /* A kicked connection is no longer logged in (its device lives on its successor); a
     * closing adapter posts nothing. */
    authed = authed && !a->closed;
    memcpy(pk, c->pk, sizeof(c->pk));
    memcpy(dn, c->dn, sizeof(c->dn));
    pthread_mutex_unlock(&a->lock);
    return authed;
}

void gw__ws_conn_push_local(struct gw__ws *a, struct gw__ws_conn *c, struct gw_msg *msg)
{
    bool queued = false;

    pthread_mutex_lock(&a->lock);
    if (c->qlen < GW_WS_QUEUE_MAX) {
        c->q[(c->qhead + c->qlen) % GW_WS_QUEUE_MAX] = msg;
        c->qlen++;
        a->n_queued++;
        queued = true;
    }
    pthread_mutex_unlock(&a->lock);
    if (!queued) {
        gw_adapter_count(&a->ctr.dropped_out);
        gw_msg_unref(msg);
        return;
    }
    lws_callback_on_writable(c->wsi);
}

struct gw_msg *gw__ws_conn_pop(struct gw__ws *a, struct gw__ws_conn *c, bool *more, bool *kick)
{
    struct gw_msg *msg = NULL;

    pthread_mutex_lock(&a->lock);
    *kick = c->kick;
    if (!c->kick && c->qlen > 0) {
        msg = c->q[c->qhead];
        c->q[c->qhead] = NULL;
        c->qhead = (c->qhead + 1) % GW_WS_QUEUE_MAX;
        c->qlen--;
        a->n_queued--;
    }
    *more = c->qlen > 0;
    pthread_mutex_unlock(&a->lock);
    return msg;
}

/* Under lock: remembers an OFFLINE for the service thread. */
static void offline_defer_locked(struct gw__ws *a, const char *pk, const char *dn, uint64_t seq)
{
    struct gw__ws_offline *o = calloc(1, sizeof(*o));

    if (!o) {
        gw_log(GW_LOG_ERROR, a->base.name, "out of memory: %s/%s may stay online", pk, dn);
        return;
    }
    snprintf(o->pk, sizeof(o->pk), "%s", pk);
    snprintf(o->dn, sizeof(o->dn), "%s", dn);
    o->seq = seq;
    o->next = a->offline;
    a->offline = o;
}

static void on_retry(lws_sorted_usec_list_t *sul)
{
    struct gw__ws *a = lws_container_of(sul, struct gw__ws, retry_sul);

    gw__ws_on_wake(a);
}

void gw__ws_post_offline(struct gw__ws *a, const char *pk, const char *dn, uint64_t seq)
{
    int rc = gw_core_post_session(a->base.core, &a->base, GW_SESSION_OFFLINE, pk, dn, seq, seq);

    if (rc != -EAGAIN)
        return; /* posted, or the core is stopping */
    pthread_mutex_lock(&a->lock);
    offline_defer_locked(a, pk, dn, seq);
    pthread_mutex_unlock(&a->lock);
    lws_sul_schedule(a->lws, 0, &a->retry_sul, on_retry, RETRY_US);
}

void gw__ws_on_wake(struct gw__ws *a)
{
    struct gw__ws_conn *ready, *next;
    struct gw__ws_offline *off, *o;

    pthread_mutex_lock(&a->lock);
    ready = a->ready;
    a->ready = NULL;
    for (struct gw__ws_conn *c = ready; c; c = c->ready_next)
        c->on_ready = false;
    off = a->offline;
    a->offline = NULL;
    pthread_mutex_unlock(&a->lock);
    /* Connections are freed only on this thread, so the list stays valid here. */
    for (struct gw__ws_conn *c = ready; c; c = next) {
        next = c->ready_next;
        c->ready_next = NULL;
        lws_callback_on_writable(c->wsi);
    }
    for (; off; off = o) {
        o = off->next;
        gw__ws_post_offline(a, off->pk, off->dn, off->seq);
        free(off);
    }
}

/* ---- submit (any thread) ---- */

static const char *data_str(const cJSON *data, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(data, key);

    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/*
 * Under lock: the core's answer to a connection's `auth`. On success the connection becomes
 * the device's only one (an older login is kicked). When the connection is gone the core
 * has bound a session nobody will end: an OFFLINE is due for it.
 */
static void on_auth_reply(struct gw__ws *a, struct gw__ws_conn *c, const struct gw_msg *msg)
{
    const char *pk = data_str(msg->data, "productKey"), *dn = data_str(msg->data, "deviceName");
    bool ok = msg->code == 0 && pk && dn && strlen(pk) <= GW_MSG_PK_MAX &&
              strlen(dn) <= GW_MSG_DN_MAX;
    struct gw__ws_conn *old;

    if (!c) {
        if (ok) {
            offline_defer_locked(a, pk, dn, msg->origin.session);
            lws_cancel_service(a->lws);
        }
        return;
    }
    if (c->state != GW__WS_AUTHING)
        return;
    if (!ok) {
        c->state = GW__WS_NEW;
        return;
    }
    snprintf(c->pk, sizeof(c->pk), "%s", pk);
    snprintf(c->dn, sizeof(c->dn), "%s", dn);
    c->state = GW__WS_AUTHED;
    old = find_dev(a, pk, dn);
    if (old && old != c) {
        tdelete(old, &a->by_dev, cmp_dev);
        a->n_authed--;
        old->kick = true;
        old->state = GW__WS_NEW; /* nothing more is attributed to the device through it */
        ready_push(a, old);
        gw_log(GW_LOG_INFO, a->base.name, "%s/%s logged in again: closing its older connection",
               pk, dn);
    }
    if (tsearch(c, &a->by_dev, cmp_dev))
        a->n_authed++;
}

static int ws_submit(struct gw_adapter *ad, struct gw_msg *msg)
{
    struct gw__ws *a = from_base(ad);
    struct gw__ws_conn *c;
    int rc = 0;

    pthread_mutex_lock(&a->lock);
    if (a->closed) {
        rc = GW_E_SHUTDOWN;
        goto out;
    }
    c = find_handle(a, msg->origin.session);
    if (msg->has_code && msg->method == GW_METHOD_AUTH)
        on_auth_reply(a, c, msg);
    if (!c || c->kick || (!msg->has_code && c->state != GW__WS_AUTHED)) {
        rc = GW_E_DEVICE_NOT_CONNECTED;
        goto out;
    }
    if (c->qlen == GW_WS_QUEUE_MAX) {
        rc = -EAGAIN;
        goto out;
    }
    c->q[(c->qhead + c->qlen) % GW_WS_QUEUE_MAX] = msg;
    c->qlen++;
    a->n_queued++;
    msg = NULL;
    ready_push(a, c);
    lws_cancel_service(a->lws); /* under lock: stop cannot destroy the context meanwhile */
out:
    pthread_mutex_unlock(&a->lock);
    if (msg) {
        gw_adapter_count(&a->ctr.dropped_out);
        gw_msg_unref(msg);
    }
    return rc;
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
    struct gw__ws *a = arg;

    while (!atomic_load(&a->stopping))
        if (lws_service(a->lws, 0) < 0)
            break;
    return NULL;
}

static int ws_create(struct gw_core *core, const struct gw_config_adapter *cfg,
                     struct gw_adapter **out)
{
    struct gw__ws *a = calloc(1, sizeof(*a));

    if (!a)
        return -ENOMEM;
    a->base.ops = &gw_ws_ops;
    a->base.core = core;
    snprintf(a->base.name, sizeof(a->base.name), "%s", cfg->name ? cfg->name : "websocket");
    a->cfg = cfg;
    a->binary = cfg->u.websocket.serializer == GW_CONFIG_SERIALIZER_BINARY;
    a->codec = a->binary ? &gw_codec_binary : &gw_codec_json;
    atomic_init(&a->next_handle, 0);
    pthread_mutex_init(&a->lock, NULL);
    *out = &a->base;
    return 0;
}

static int ws_start(struct gw_adapter *ad)
{
    struct gw__ws *a = from_base(ad);
    const struct gw_config_addr *la = &a->cfg->listen;
    /* A client that offers no subprotocol is bound to protocols[0] unless a vhost option
     * names a default (LIBRARIES §2): make it the device protocol. */
    static const struct lws_protocol_vhost_options pvo_default = { NULL, NULL, "default", "1" };
    static const struct lws_protocol_vhost_options pvo = { NULL, &pvo_default, GW_WS_PROTOCOL,
                                                           "" };
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
    info.protocols = gw__ws_protocols;
    info.pvo = &pvo;
    info.user = a;
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
    gw_log(GW_LOG_INFO, a->base.name, "WebSocket devices: ws://%s:%d%s (%s)", la->host, a->port,
           a->cfg->u.websocket.path, a->codec->name);
    return 0;
}

static void ws_stop(struct gw_adapter *ad)
{
    struct gw__ws *a = from_base(ad);
    struct gw__ws_offline *o;

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
        lws_context_destroy(a->lws); /* CLOSED for every connection, on this thread */
        a->lws = NULL;
    }
    pthread_mutex_lock(&a->lock);
    while ((o = a->offline) != NULL) {
        a->offline = o->next;
        free(o);
    }
    pthread_mutex_unlock(&a->lock);
}

static void ws_destroy(struct gw_adapter *ad)
{
    struct gw__ws *a = from_base(ad);

    if (!a)
        return;
    ws_stop(ad);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static void ws_stats(struct gw_adapter *ad, struct gw_adapter_stats *out)
{
    struct gw__ws *a = from_base(ad);

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&a->lock);
    out->sessions = a->n_authed;
    out->queue_depth = a->n_queued;
    pthread_mutex_unlock(&a->lock);
    gw_adapter_counters_read(&a->ctr, out);
}

static const struct gw_adapter_ops gw_ws_ops = {
    .name = "websocket",
    .create = ws_create,
    .start = ws_start,
    .submit = ws_submit,
    .stop = ws_stop,
    .destroy = ws_destroy,
    .stats = ws_stats,
};

const struct gw_adapter_ops *gw_websocket_adapter_type(void)
{
    return &gw_ws_ops;
}
