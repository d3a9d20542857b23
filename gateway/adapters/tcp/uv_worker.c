/*
 * DESIGN: the libuv loop thread, bounded downstream queue and live-session set shared by the
 * TCP adapter (this directory) and the UDP adapter (../udp). See uv_worker.h for the thread
 * rules. Invariants: a message in the ring holds one reference; every handle of the loop is
 * closed before uv_loop_close; on_stop runs exactly once, on the loop thread when it ran.
 */
#include "uv_worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <search.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_config.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_msg.h"

static int live_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void on_async(uv_async_t *h)
{
    struct gw__uvw *w = h->data;
    bool stopping;

    pthread_mutex_lock(&w->lock);
    stopping = w->stopping;
    pthread_mutex_unlock(&w->lock);
    if (w->on_wake)
        w->on_wake(w);
    if (stopping && !w->stop_done) {
        w->stop_done = true;
        if (w->on_stop)
            w->on_stop(w);
        /* Every uv_async_send happens under lock while !stopping (or by stop itself), so
         * none can reach the handle once it is closed. */
        uv_close((uv_handle_t *)&w->wake, NULL);
    }
}

int gw__uvw_init(struct gw__uvw *w, size_t cap, void *ctx, const char *tag, gw__uvw_wake_fn on_wake,
                 gw__uvw_stop_fn on_stop)
{
    int rc;

    memset(w, 0, sizeof(*w));
    w->ring = calloc(cap, sizeof(*w->ring));
    if (!w->ring)
        return -ENOMEM;
    w->cap = cap;
    w->ctx = ctx;
    w->tag = tag;
    w->on_wake = on_wake;
    w->on_stop = on_stop;
    rc = uv_loop_init(&w->loop);
    if (rc)
        goto err_ring;
    rc = uv_async_init(&w->loop, &w->wake, on_async);
    if (rc)
        goto err_loop;
    w->wake.data = w;
    pthread_mutex_init(&w->lock, NULL);
    w->loop_ready = true;
    return 0;
err_loop:
    uv_loop_close(&w->loop);
err_ring:
    free(w->ring);
    w->ring = NULL;
    return rc;
}

static void *loop_main(void *arg)
{
    struct gw__uvw *w = arg;

    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

int gw__uvw_start(struct gw__uvw *w)
{
    int rc = pthread_create(&w->thread, NULL, loop_main, w);

    if (rc)
        return -rc;
    w->thread_started = true;
    return 0;
}

void gw__uvw_stop(struct gw__uvw *w)
{
    if (!w->loop_ready)
        return;
    pthread_mutex_lock(&w->lock);
    if (w->thread_started && !w->stopping)
        uv_async_send(&w->wake);
    w->stopping = true;
    pthread_mutex_unlock(&w->lock);
    if (w->thread_started) {
        pthread_join(w->thread, NULL);
        w->thread_started = false;
    }
}

static void drop_queue(struct gw__uvw *w)
{
    pthread_mutex_lock(&w->lock);
    while (w->count > 0) {
        gw_msg_unref(w->ring[w->head]);
        w->head = (w->head + 1) % w->cap;
        w->count--;
    }
    pthread_mutex_unlock(&w->lock);
}

static void live_free_node(void *node)
{
    (void)node; /* the set does not own the session structs */
}

void gw__uvw_fini(struct gw__uvw *w)
{
    if (!w->loop_ready)
        return;
    gw__uvw_stop(w);
    if (!w->stop_done) {
        /* The loop thread never ran: close the handles here. */
        w->stop_done = true;
        if (w->on_stop)
            w->on_stop(w);
        uv_close((uv_handle_t *)&w->wake, NULL);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w->loop) != 0)
        gw_log(GW_LOG_ERROR, w->tag, "libuv loop still has open handles at shutdown");
    drop_queue(w);
    tdestroy(w->live, live_free_node);
    w->live = NULL;
    free(w->ring);
    w->ring = NULL;
    pthread_mutex_destroy(&w->lock);
    w->loop_ready = false;
}

int gw__uvw_submit(struct gw__uvw *w, struct gw_msg *msg)
{
    int rc = 0;

    pthread_mutex_lock(&w->lock);
    if (w->stopping)
        rc = GW_E_SHUTDOWN;
    else if (!tfind(&msg->origin.session, &w->live, live_cmp))
        rc = GW_E_DEVICE_NOT_CONNECTED;
    else if (w->count == w->cap)
        rc = -EAGAIN;
    else {
        w->ring[(w->head + w->count) % w->cap] = msg;
        w->count++;
        uv_async_send(&w->wake); /* under lock: see on_async */
    }
    pthread_mutex_unlock(&w->lock);
    if (rc)
        gw_msg_unref(msg);
    return rc;
}

size_t gw__uvw_queue_depth(struct gw__uvw *w)
{
    size_t n;

    pthread_mutex_lock(&w->lock);
    n = w->count;
    pthread_mutex_unlock(&w->lock);
    return n;
}

size_t gw__uvw_take(struct gw__uvw *w, struct gw_msg **out, size_t max)
{
    size_t n = 0;

    pthread_mutex_lock(&w->lock);
    while (n < max && w->count > 0) {
        out[n++] = w->ring[w->head];
        w->head = (w->head + 1) % w->cap;
        w->count--;
    }
    pthread_mutex_unlock(&w->lock);
    return n;
}

bool gw__uvw_stopping(struct gw__uvw *w)
{
    bool s;

    pthread_mutex_lock(&w->lock);
    s = w->stopping;
    pthread_mutex_unlock(&w->lock);
    return s;
}

int gw__uvw_live_add(struct gw__uvw *w, uint64_t *key)
{
    void *node;

    pthread_mutex_lock(&w->lock);
    node = tsearch(key, &w->live, live_cmp);
    if (node)
        w->n_live++;
    pthread_mutex_unlock(&w->lock);
    return node ? 0 : -ENOMEM;
}

void gw__uvw_live_del(struct gw__uvw *w, uint64_t *key)
{
    pthread_mutex_lock(&w->lock);
    if (tfind(key, &w->live, live_cmp)) {
        tdelete(key, &w->live, live_cmp);
        w->n_live--;
    }
    pthread_mutex_unlock(&w->lock);
}

void *gw__uvw_live_find(struct gw__uvw *w, uint64_t session)
{
    void *node = tfind(&session, &w->live, live_cmp);

    return node ? *(void **)node : NULL;
}

uint64_t gw__uvw_next_session(void)
{
    static atomic_uint_fast64_t last;
    struct timespec ts;
    uint64_t now, prev, next;

    clock_gettime(CLOCK_REALTIME, &ts);
    now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    prev = atomic_load(&last);
    do {
        next = now > prev ? now : prev + 1;
    } while (!atomic_compare_exchange_weak(&last, &prev, next));
    return next;
}

int64_t gw__uvw_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int gw__uvw_resolve(const struct gw_config_addr *a, int socktype, struct sockaddr_storage *out)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = socktype, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[16];
    const char *host = a->host[0] ? a->host : NULL;

    memset(out, 0, sizeof(*out));
    snprintf(port, sizeof(port), "%d", a->port);
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
        return GW_E_CONFIG;
    memcpy(out, res->ai_addr, res->ai_addrlen <= sizeof(*out) ? res->ai_addrlen : sizeof(*out));
    freeaddrinfo(res);
    return 0;
}

void gw__uvw_addr_str(const struct sockaddr *addr, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)addr;
        uv_ip6_name(s6, ip, sizeof(ip));
        snprintf(buf, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)addr;
        uv_ip4_name(s4, ip, sizeof(ip));
        snprintf(buf, len, "%s:%u", ip, ntohs(s4->sin_port));
    } else {
        snprintf(buf, len, "?");
    }
}
