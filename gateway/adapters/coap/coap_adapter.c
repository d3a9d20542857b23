/*
 * DESIGN: the CoAP adapter (type "coap", DESIGN §7.5, REFERENCE §4.5): one libcoap 4.3.1
 * context per instance, driven by the instance's own thread.
 *
 * Owns: the libcoap context and its UDP (and optional DTLS) endpoint; the request handles
 * waiting for the core (coap_request.c); the Observe registrations and the device table
 * (coap_observe.c); a bounded ring of messages from the core (replies and downstream
 * requests) waiting for the CoAP thread.
 *
 * Threads:
 *  - owner (main): create/start/stop/destroy/stats;
 *  - core thread (any thread): submit, which checks under `lock` that the device has a
 *    registration for the message (else GW_E_DEVICE_NOT_CONNECTED), queues it in the ring
 *    (-EAGAIN when GW_COAP_RING_MAX are waiting) and writes the eventfd;
 *  - the CoAP thread: every libcoap call. libcoap 4.3.1 is not thread-safe, and in its
 *    epoll build coap_io_process_with_fds ignores extra fds, so the thread waits in its own
 *    epoll set holding libcoap's fd (coap_context_get_coap_fd, which also carries libcoap's
 *    timers) and the eventfd, then runs coap_io_process(COAP_IO_NO_WAIT), drains the ring,
 *    expires waiting requests and retries parked session events.
 *
 * Sessions: a CoAP exchange is not a session. Requests that wait for the core get a fresh
 * handle; the core's reply names it. A device is reachable while it holds an Observe
 * registration (coap_observe.c); each new registration gets a fresh seq from the same
 * counter, so a device's seqs only grow, as the core requires.
 *
 * Invariants: the device table and its masks change only on the CoAP thread and only under
 * `lock`; once `stopping` is set, submit refuses everything and the thread finishes: it
 * answers waiting requests with 5.03, posts ALL_OFFLINE and exits; stop joins it and only
 * then frees the libcoap context (no other thread touches libcoap).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "coap_internal.h"
#include "gw_coap.h"
#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"

static const struct gw_adapter_ops gw_coap_ops;

/* coap_startup/coap_cleanup are process-wide: counted across instances. */
static pthread_mutex_t g_lib_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_lib_users;

static struct gw__coap *from_base(struct gw_adapter *ad)
{
    return (struct gw__coap *)ad;
}

int64_t gw__coap_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t gw__coap_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t gw__coap_handle(struct gw__coap *a)
{
    return ++a->next_handle;
}

struct gw__coap *gw__coap_from_session(const coap_session_t *s)
{
    return coap_get_app_data(coap_session_get_context(s));
}

/* libcoap's own log lines (it logs through one process-wide handler). A peer's RST is
 * routine (it ends an Observe registration) though libcoap logs it as an alert. */
static void on_coap_log(coap_log_t level, const char *message)
{
    enum gw_log_level l = level <= LOG_ERR       ? GW_LOG_ERROR
                          : level <= LOG_WARNING ? GW_LOG_WARN
                          : level <= LOG_INFO    ? GW_LOG_INFO
                                                 : GW_LOG_DEBUG;
    size_t n = strlen(message);

    if (strncmp(message, "got RST", 7) == 0)
        l = GW_LOG_DEBUG;

    while (n && (message[n - 1] == '\n' || message[n - 1] == '\r'))
        n--;
    gw_log(l, "libcoap", "%.*s", (int)n, message);
}

static void lib_acquire(void)
{
    pthread_mutex_lock(&g_lib_lock);
    if (g_lib_users++ == 0) {
        coap_startup();
        coap_set_log_handler(on_coap_log);
        coap_set_log_level(LOG_WARNING);
        coap_dtls_set_log_level(LOG_WARNING);
    }
    pthread_mutex_unlock(&g_lib_lock);
}

static void lib_release(void)
{
    pthread_mutex_lock(&g_lib_lock);
    if (--g_lib_users == 0)
        coap_cleanup();
    pthread_mutex_unlock(&g_lib_lock);
}

/* ---- session events to the core, in order ---- */

void gw__coap_session_event(struct gw__coap *a, enum gw_session_event ev, const char *pk,
                            const char *dn, uint64_t seq)
{
    struct gw__coap_sev *e;
    int rc = -EAGAIN;

    if (!a->park_head) {
        rc = gw_core_post_session(a->base.core, &a->base, ev, pk, dn, seq, seq);
        if (rc != -EAGAIN) {
            if (rc)
                gw_log(GW_LOG_DEBUG, a->base.name, "session event %d for %s/%s: %s", (int)ev, pk,
                       dn, gw_strerror(rc));
            return;
        }
    }
    e = calloc(1, sizeof(*e));
    if (!e) {
        gw_log(GW_LOG_ERROR, a->base.name, "session event for %s/%s lost (no memory)", pk, dn);
        return;
    }
    e->ev = ev;
    e->seq = seq;
    snprintf(e->pk, sizeof(e->pk), "%s", pk);
    snprintf(e->dn, sizeof(e->dn), "%s", dn);
    if (a->park_tail)
        a->park_tail->next = e;
    else
        a->park_head = e;
    a->park_tail = e;
}

/* Posts parked session events until the core refuses one again. */
static void park_flush(struct gw__coap *a)
{
    while (a->park_head) {
        struct gw__coap_sev *e = a->park_head;
        int rc = gw_core_post_session(a->base.core, &a->base, e->ev, e->pk, e->dn, e->seq, e->seq);
        if (rc == -EAGAIN)
            return;
        a->park_head = e->next;
        if (!a->park_head)
            a->park_tail = NULL;
        free(e);
    }
}

static void park_free(struct gw__coap *a)
{
    while (a->park_head) {
        struct gw__coap_sev *e = a->park_head;
        a->park_head = e->next;
        free(e);
    }
    a->park_tail = NULL;
}

/* ---- the ring (submit → thread) ---- */

/* Caller holds a->lock: stop closes the eventfd under it, so a racing submit never writes
 * to a closed (or reused) descriptor. */
static void wake_locked(struct gw__coap *a)
{
    uint64_t one = 1;

    if (a->wakefd >= 0 && write(a->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        gw_log(GW_LOG_WARN, a->base.name, "eventfd write: %s", strerror(errno));
}

static struct gw_msg *ring_pop(struct gw__coap *a, bool *stopping)
{
    struct gw_msg *m = NULL;

    pthread_mutex_lock(&a->lock);
    *stopping = a->stopping;
    if (a->rlen) {
        m = a->ring[a->rhead];
        a->rhead = (a->rhead + 1) % GW_COAP_RING_MAX;
        a->rlen--;
    }
    pthread_mutex_unlock(&a->lock);
    return m;
}

static int coap_submit(struct gw_adapter *ad, struct gw_msg *msg)
{
    struct gw__coap *a = from_base(ad);
    int rc = 0;

    pthread_mutex_lock(&a->lock);
    if (a->stopping)
        rc = GW_E_SHUTDOWN;
    else if (!gw_msg_is_reply(msg) && gw__coap_route_locked(a, msg) < 0)
        rc = GW_E_DEVICE_NOT_CONNECTED; /* no registration: the device cannot hear it */
    else if (a->rlen == GW_COAP_RING_MAX)
        rc = -EAGAIN;
    else {
        a->ring[(a->rhead + a->rlen) % GW_COAP_RING_MAX] = msg;
        a->rlen++;
        wake_locked(a);
    }
    pthread_mutex_unlock(&a->lock);
    if (rc) {
        gw_adapter_count(&a->ctr.dropped_out);
        gw_msg_unref(msg);
    }
    return rc;
}

/* ---- the CoAP thread ---- */

static void drain_ring(struct gw__coap *a, bool *stopping)
{
    size_t n;

    pthread_mutex_lock(&a->lock);
    n = a->rlen; /* what is there now: later arrivals wait for the next round */
    pthread_mutex_unlock(&a->lock);
    for (size_t i = 0; i < n; i++) {
        struct gw_msg *m = ring_pop(a, stopping);
        if (!m)
            break;
        if (gw_msg_is_reply(m))
            gw__coap_on_reply(a, m);
        else
            gw__coap_deliver(a, m);
    }
}

static void *coap_thread(void *arg)
{
    struct gw__coap *a = arg;
    bool stopping = false;

    while (!stopping) {
        struct epoll_event evs[8];
        int64_t now = gw__coap_mono_ms();
        int wait = gw__coap_pending_wait_ms(a, now, GW_COAP_IDLE_WAKE_MS);
        int n;

        if (a->park_head && wait > GW_COAP_PARK_RETRY_MS)
            wait = GW_COAP_PARK_RETRY_MS;
        n = epoll_wait(a->epfd, evs, 8, wait);
        for (int i = 0; i < n; i++) {
            uint64_t v;
            if (evs[i].data.fd == a->wakefd && read(a->wakefd, &v, sizeof(v)) < 0 &&
                errno != EAGAIN)
                gw_log(GW_LOG_WARN, a->base.name, "eventfd read: %s", strerror(errno));
        }
        coap_io_process(a->ctx, COAP_IO_NO_WAIT);
        drain_ring(a, &stopping);
        gw__coap_pending_expire(a, gw__coap_mono_ms(), false);
        park_flush(a);
        /* triggered separate responses are sent by the handler runs of this call */
        coap_io_process(a->ctx, COAP_IO_NO_WAIT);
        pthread_mutex_lock(&a->lock);
        stopping = a->stopping;
        pthread_mutex_unlock(&a->lock);
    }
    /* Stopping: answer whoever still waits, then tell the core every device is gone. */
    gw__coap_pending_expire(a, gw__coap_mono_ms(), true);
    coap_io_process(a->ctx, COAP_IO_NO_WAIT);
    for (;;) {
        struct gw_msg *m = ring_pop(a, &stopping);
        if (!m)
            break;
        gw_msg_unref(m);
    }
    park_free(a);
    gw_core_post_session(a->base.core, &a->base, GW_SESSION_ALL_OFFLINE, NULL, NULL, 0, 0);
    return NULL;
}

/* ---- lifecycle ---- */

static bool wildcard_host(const char *h)
{
    return !h[0] || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 || strcmp(h, "*") == 0;
}

/* The host part of firmware URLs on a listener ("" when it listens on every address). */
static void url_host(char *out, size_t cap, const char *host)
{
    if (wildcard_host(host))
        out[0] = '\0';
    else
        snprintf(out, cap, strchr(host, ':') ? "[%s]" : "%s", host);
}

static int coap_create(struct gw_core *core, const struct gw_config_adapter *cfg,
                       struct gw_adapter **out)
{
    struct gw__coap *a = calloc(1, sizeof(*a));
    const char *data_dir = gw_core_data_dir(core);
    int rc;

    *out = NULL;
    if (!a)
        return -ENOMEM;
    a->base.ops = &gw_coap_ops;
    a->base.core = core;
    snprintf(a->base.name, sizeof(a->base.name), "%s", cfg->name ? cfg->name : "coap");
    a->listen = cfg->listen;
    a->dtls = cfg->u.coap.dtls_listen;
    for (a->block_szx = 0; a->block_szx < 6 && (16 << a->block_szx) < cfg->u.coap.block_size;)
        a->block_szx++;
    a->jwt_secret = gw_core_jwt_secret(core, &a->jwt_len);
    a->epfd = a->wakefd = -1;
    url_host(a->url_host, sizeof(a->url_host), a->listen.host);
    url_host(a->dtls_url_host, sizeof(a->dtls_url_host), a->dtls.host);
    if ((size_t)snprintf(a->fw_dir, sizeof(a->fw_dir), "%s/firmware", data_dir) >=
        sizeof(a->fw_dir)) {
        rc = -ENAMETOOLONG;
        goto err_free;
    }
    rc = gw_admin_download_key_load(data_dir, a->dl_key);
    if (rc) {
        gw_log(GW_LOG_ERROR, a->base.name, "cannot load the download key in %s: %s", data_dir,
               gw_strerror(rc));
        goto err_free;
    }
    a->ring = calloc(GW_COAP_RING_MAX, sizeof(*a->ring));
    if (!a->ring) {
        rc = -ENOMEM;
        goto err_free;
    }
    rc = gw__coap_observe_init(a);
    if (rc)
        goto err_ring;
    pthread_mutex_init(&a->lock, NULL);
    lib_acquire();
    *out = &a->base;
    return 0;

err_ring:
    free(a->ring);
err_free:
    free(a);
    return rc;
}

/* Resolves host:port for a UDP listener. */
static int resolve(const struct gw_config_addr *ad, coap_address_t *out)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[16];
    int rc;

    snprintf(port, sizeof(port), "%d", ad->port);
    rc = getaddrinfo(ad->host[0] ? ad->host : NULL, port, &hints, &res);
    if (rc || !res)
        return GW_E_CONFIG;
    coap_address_init(out);
    out->size = res->ai_addrlen;
    memcpy(&out->addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* The port an endpoint is bound to ("127.0.0.1:5683", "[::1]:5683"): listen port 0 asks
 * the kernel for one, and firmware URLs must name the real one. */
static int endpoint_port(const coap_endpoint_t *ep)
{
    const char *s = coap_endpoint_str(ep);
    const char *colon = s ? strrchr(s, ':') : NULL;

    return colon ? atoi(colon + 1) : 0;
}

int gw__coap_endpoint(struct gw__coap *a, const struct gw_config_addr *addr, coap_proto_t proto,
                      int *port)
{
    const char *what = proto == COAP_PROTO_DTLS ? "DTLS" : "UDP";
    coap_address_t ca;
    coap_endpoint_t *ep;

    if (resolve(addr, &ca)) {
        gw_log(GW_LOG_ERROR, a->base.name, "cannot resolve %s listen %s:%d", what, addr->host,
               addr->port);
        return GW_E_CONFIG;
    }
    ep = coap_new_endpoint(a->ctx, &ca, proto);
    if (!ep) {
        gw_log(GW_LOG_ERROR, a->base.name, "cannot bind %s %s:%d", what, addr->host, addr->port);
        return -EADDRINUSE;
    }
    *port = addr->port ? addr->port : endpoint_port(ep);
    return 0;
}

static int coap_start(struct gw_adapter *ad)
{
    struct gw__coap *a = from_base(ad);
    struct epoll_event ev = {.events = EPOLLIN};
    int rc;

    a->ctx = coap_new_context(NULL);
    if (!a->ctx)
        return -ENOMEM;
    coap_set_app_data(a->ctx, a);
    /* must precede every endpoint and session (LIBRARIES §1) */
    coap_context_set_block_mode(a->ctx, COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
    coap_register_option(a->ctx, GW_COAP_OPTION_TOKEN);
    coap_register_nack_handler(a->ctx, gw__coap_on_nack);
    rc = gw__coap_resources_init(a);
    if (rc)
        goto err_ctx;
    rc = gw__coap_endpoint(a, &a->listen, COAP_PROTO_UDP, &a->port);
    if (rc)
        goto err_ctx;
    rc = gw__coap_dtls_open(a);
    if (rc)
        goto err_ctx;
    a->epfd = epoll_create1(EPOLL_CLOEXEC);
    a->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (a->epfd < 0 || a->wakefd < 0) {
        rc = -errno;
        goto err_fds;
    }
    ev.data.fd = coap_context_get_coap_fd(a->ctx);
    if (ev.data.fd < 0 || epoll_ctl(a->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0) {
        rc = ev.data.fd < 0 ? -ENOTSUP : -errno;
        goto err_fds;
    }
    ev.data.fd = a->wakefd;
    if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->wakefd, &ev) < 0) {
        rc = -errno;
        goto err_fds;
    }
    rc = -pthread_create(&a->thread, NULL, coap_thread, a);
    if (rc)
        goto err_fds;
    a->thread_started = true;
    gw_log(GW_LOG_INFO, a->base.name,
           "CoAP devices: coap://%s:%d (POST /auth, /topic/sys/...; Observe "
           ".../thing/ota/upgrade and .../downstream; firmware Block2 %d bytes)",
           a->url_host[0] ? a->url_host : "*", a->port, 16 << a->block_szx);
    if (a->dtls_port)
        gw_log(GW_LOG_INFO, a->base.name, "CoAP devices over DTLS-PSK: coaps://%s:%d",
               a->dtls_url_host[0] ? a->dtls_url_host : "*", a->dtls_port);
    return 0;

err_fds:
    if (a->epfd >= 0)
        close(a->epfd);
    if (a->wakefd >= 0)
        close(a->wakefd);
    a->epfd = a->wakefd = -1;
err_ctx:
    coap_free_context(a->ctx);
    a->ctx = NULL;
    return rc;
}

static void coap_stop(struct gw_adapter *ad)
{
    struct gw__coap *a = from_base(ad);

    pthread_mutex_lock(&a->lock);
    a->stopping = true;
    wake_locked(a);
    pthread_mutex_unlock(&a->lock);
    if (a->thread_started) {
        pthread_join(a->thread, NULL);
        a->thread_started = false;
    }
    /* The thread is gone: this thread may now touch libcoap to free it. */
    if (a->ctx) {
        gw__coap_pending_free(a);
        gw__coap_observe_fini(a);
        coap_free_context(a->ctx);
        a->ctx = NULL;
    }
    pthread_mutex_lock(&a->lock);
    if (a->epfd >= 0)
        close(a->epfd);
    if (a->wakefd >= 0)
        close(a->wakefd);
    a->epfd = a->wakefd = -1;
    pthread_mutex_unlock(&a->lock);
}

static void coap_destroy(struct gw_adapter *ad)
{
    struct gw__coap *a;

    if (!ad)
        return;
    a = from_base(ad);
    coap_stop(ad);
    while (a->rlen) {
        gw_msg_unref(a->ring[a->rhead]);
        a->rhead = (a->rhead + 1) % GW_COAP_RING_MAX;
        a->rlen--;
    }
    gw__coap_observe_fini(a);
    free(a->devs);
    free(a->obs_idx);
    free(a->ring);
    pthread_mutex_destroy(&a->lock);
    free(a);
    lib_release();
}

static void coap_stats(struct gw_adapter *ad, struct gw_adapter_stats *out)
{
    struct gw__coap *a = from_base(ad);

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&a->lock);
    out->sessions = gw__coap_reachable_locked(a);
    out->queue_depth = a->rlen;
    pthread_mutex_unlock(&a->lock);
    gw_adapter_counters_read(&a->ctr, out);
}

static const struct gw_adapter_ops gw_coap_ops = {
    .name = "coap",
    .create = coap_create,
    .start = coap_start,
    .submit = coap_submit,
    .stop = coap_stop,
    .destroy = coap_destroy,
    .stats = coap_stats,
};

const struct gw_adapter_ops *gw_coap_adapter_type(void)
{
    return &gw_coap_ops;
}
