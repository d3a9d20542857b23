/*
 * DESIGN: the "modbus_tcp_server" adapter: devices dial in to `listen` (REFERENCE §4.10,
 * DESIGN §7.5), log in with the custom function code and are then polled, written and
 * upgraded over their own socket, the gateway acting as Modbus master on it.
 *
 * Wire (mb_frames.c): the framing of a connection (Modbus TCP MBAP, or RTU frames with
 * CRC-16 over TCP) is detected from its first 6 bytes. Login: PDU [FC][byteCount][JSON]
 * with {"method":"auth","params":{"clientId","username","password"}} (DESIGN §4
 * credentials); the core checks them (an `auth` gw_msg) and its reply becomes the response
 * frame: same framing, unit, transaction id and FC, JSON {"method":"auth","code":0|...,
 * "message":...}. A refused login is answered, then the connection is closed. Before login
 * any other frame closes the connection. A device must also be listed in the adapter's
 * `devices` (its points and otaBase live there), else its login is refused.
 *
 * Requests: one outstanding per connection, answered within the device's timeoutMs;
 * answers are matched by transaction id (TCP) or unit + function code (RTU); an RTU frame
 * with a bad CRC is dropped (the request then times out). A device that stops answering
 * (GW__MB_STALL_TIMEOUTS) is disconnected: it will dial in again.
 *
 * This file: the listener, the loop thread, the queue from the core and the ops; one
 * connection's life is in mb_server_conn.c.
 *
 * Threads: owner (main) create/start/stop/destroy/stats; any thread submit (queues and
 * wakes the loop with uv_async_send under wake_lock, so it never touches a closed handle);
 * one libuv loop thread runs everything else, including every device of this adapter.
 * The devices (mb_device.c) exist for the adapter's life, one per configured device, so an
 * upgrade in progress survives a reconnect; a login binds its connection to the device
 * (a second login of the same device replaces the first connection).
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_modbus.h"
#include "mb_server.h"

#define TICK_MS 100 /* housekeeping: refused posts of devices without a connection */
#define DRAIN_BATCH 64

static const struct gw_adapter_ops mbs_ops;

int gw__mbs_entry_cmp(const void *x, const void *y)
{
    const struct gw__mbs_entry *a = x, *b = y;
    int c = strcmp(a->pk, b->pk);

    return c ? c : strcmp(a->dn, b->dn);
}

struct gw__mbs_entry *gw__mbs_lookup(struct gw__mbs_adapter *a, const char *pk, const char *dn)
{
    struct gw__mbs_entry key = {.pk = pk, .dn = dn};

    return bsearch(&key, a->index, a->n_index, sizeof(key), gw__mbs_entry_cmp);
}

/* ---- the loop thread ---- */

static void drain(struct gw__mbs_adapter *a)
{
    struct gw_msg *msgs[DRAIN_BATCH];
    size_t n;

    while ((n = gw__mb_queue_take(&a->q, msgs, DRAIN_BATCH)) > 0) {
        for (size_t i = 0; i < n; i++) {
            struct gw_msg *m = msgs[i];
            struct gw__mbs_entry *e;
            if (m->method == GW_METHOD_AUTH && gw_msg_is_reply(m)) {
                gw__mbs_on_auth_reply(a, m);
                gw_msg_unref(m);
                continue;
            }
            e = gw__mbs_lookup(a, m->product_key, m->device_name);
            if (!e) {
                gw_msg_unref(m);
                continue;
            }
            gw__mb_dev_accept(e->dev, m, gw__mb_now_ms()); /* takes m */
            if (e->dev->transport)
                gw__mbs_conn_service(e->dev->transport);
        }
    }
}

static void close_all(struct gw__mbs_adapter *a)
{
    a->closing_all = true;
    while (a->conns)
        gw__mbs_conn_close(a->conns, "gateway stopping");
    pthread_mutex_lock(&a->wake_lock);
    a->wake_closed = true;
    pthread_mutex_unlock(&a->wake_lock);
    if (!uv_is_closing((uv_handle_t *)&a->wake))
        uv_close((uv_handle_t *)&a->wake, NULL);
    if (!uv_is_closing((uv_handle_t *)&a->tick))
        uv_close((uv_handle_t *)&a->tick, NULL);
    if (!uv_is_closing((uv_handle_t *)&a->listener))
        uv_close((uv_handle_t *)&a->listener, NULL);
}

static void on_wake(uv_async_t *h)
{
    struct gw__mbs_adapter *a = h->data;

    drain(a);
    if (atomic_load(&a->stopping))
        close_all(a);
}

/* Devices without a connection still owe the core a refused post (an OFFLINE). */
static void on_tick(uv_timer_t *t)
{
    struct gw__mbs_adapter *a = t->data;
    int64_t now = gw__mb_now_ms(), wake = INT64_MAX;

    for (size_t i = 0; i < a->n_index; i++) {
        struct gw__mb_dev *dev = a->index[i].dev;
        if (!dev->transport && dev->pending.set)
            gw__mb_dev_next(dev, now, NULL, &wake);
    }
}

static void *loop_main(void *arg)
{
    struct gw__mbs_adapter *a = arg;

    uv_run(&a->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- ops ---- */

static void mbs_destroy(struct gw_adapter *ad);

static int mbs_create(struct gw_core *core, const struct gw_config_adapter *cfg,
                      struct gw_adapter **out)
{
    const struct gw_config_modbus_server *m = &cfg->u.modbus_server;
    struct gw__mbs_adapter *a;
    int rc;

    *out = NULL;
    if (cfg->type != GW_CONFIG_ADAPTER_MODBUS_TCP_SERVER)
        return -EINVAL;
    a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->base.ops = &mbs_ops;
    a->base.core = core;
    snprintf(a->base.name, sizeof(a->base.name), "%s", cfg->name ? cfg->name : "modbus_server");
    a->cfg = cfg;
    a->custom_fc = (uint8_t)m->custom_function_code;
    atomic_init(&a->stopping, false);
    pthread_mutex_init(&a->wake_lock, NULL);
    rc = gw__mb_queue_init(&a->q, GW__MB_QUEUE_CAP);
    if (rc)
        goto err;
    a->index = calloc(m->device_count ? m->device_count : 1, sizeof(*a->index));
    if (!a->index) {
        rc = -ENOMEM;
        goto err;
    }
    for (size_t i = 0; i < m->device_count; i++) {
        struct gw__mb_dev *dev = NULL;
        rc = gw__mb_dev_new(&a->base, &m->devices[i], gw_core_data_dir(core), &a->ctr, &dev);
        if (rc)
            goto err;
        a->index[a->n_index++] =
            (struct gw__mbs_entry){m->devices[i].product_key, m->devices[i].device_name, dev};
    }
    qsort(a->index, a->n_index, sizeof(*a->index), gw__mbs_entry_cmp);
    rc = uv_loop_init(&a->loop);
    if (rc)
        goto err;
    a->loop_ready = true;
    uv_tcp_init(&a->loop, &a->listener);
    uv_async_init(&a->loop, &a->wake, on_wake);
    uv_timer_init(&a->loop, &a->tick);
    a->listener.data = a->wake.data = a->tick.data = a;
    *out = &a->base;
    return 0;
err:
    mbs_destroy(&a->base);
    return rc;
}

static int resolve(const struct gw_config_addr *addr, struct sockaddr_storage *out, socklen_t *len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[16];
    int rc;

    snprintf(port, sizeof(port), "%d", addr->port);
    rc = getaddrinfo(addr->host[0] ? addr->host : NULL, port, &hints, &res);
    if (rc != 0 || !res)
        return -EADDRNOTAVAIL;
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int mbs_start(struct gw_adapter *ad)
{
    struct gw__mbs_adapter *a = (struct gw__mbs_adapter *)ad;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int alen = sizeof(ss);
    char host[64] = "?";
    int port = a->cfg->listen.port, rc;

    rc = resolve(&a->cfg->listen, &ss, &sl);
    if (rc == 0)
        rc = uv_tcp_bind(&a->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->listener, 128, gw__mbs_on_connection);
    if (rc) {
        gw_log(GW_LOG_ERROR, ad->name, "cannot listen on %s:%d: %s", a->cfg->listen.host,
               a->cfg->listen.port, rc == -EADDRNOTAVAIL ? "bad address" : uv_strerror(rc));
        return rc;
    }
    if (uv_tcp_getsockname(&a->listener, (struct sockaddr *)&ss, &alen) == 0 &&
        getnameinfo((struct sockaddr *)&ss, (socklen_t)alen, host, sizeof(host), NULL, 0,
                    NI_NUMERICHOST) == 0)
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    uv_timer_start(&a->tick, on_tick, TICK_MS, TICK_MS);
    rc = -pthread_create(&a->thread, NULL, loop_main, a);
    if (rc) {
        gw_log(GW_LOG_ERROR, ad->name, "cannot start the loop thread: %s", gw_strerror(rc));
        return rc;
    }
    a->thread_started = true;
    gw_log(GW_LOG_INFO, ad->name,
           "Modbus devices dial in: tcp://%s:%d (Modbus TCP or RTU, "
           "login function code %u, %zu device%s configured)",
           host, port, a->custom_fc, a->n_index, a->n_index == 1 ? "" : "s");
    return 0;
}

static int mbs_submit(struct gw_adapter *ad, struct gw_msg *msg)
{
    struct gw__mbs_adapter *a = (struct gw__mbs_adapter *)ad;
    bool auth = msg->method == GW_METHOD_AUTH && gw_msg_is_reply(msg);
    struct gw__mbs_entry *e = NULL;
    int rc;

    if (!auth) {
        e = gw__mbs_lookup(a, msg->product_key, msg->device_name);
        if (!e || (!gw_msg_is_reply(msg) && msg->method != GW_METHOD_OTA_CANCEL &&
                   atomic_load(&e->dev->live_session) == 0)) {
            gw_adapter_count(&a->ctr.io.dropped_out);
            gw_msg_unref(msg);
            return GW_E_DEVICE_NOT_CONNECTED;
        }
    }
    pthread_mutex_lock(&a->wake_lock);
    if (a->wake_closed || atomic_load(&a->stopping)) {
        gw_msg_unref(msg);
        rc = GW_E_SHUTDOWN;
    } else {
        rc = gw__mb_queue_push(&a->q, msg);
        if (rc == 0)
            uv_async_send(&a->wake);
    }
    pthread_mutex_unlock(&a->wake_lock);
    if (rc)
        gw_adapter_count(&a->ctr.io.dropped_out);
    return rc;
}

static void mbs_stop(struct gw_adapter *ad)
{
    struct gw__mbs_adapter *a = (struct gw__mbs_adapter *)ad;

    atomic_store(&a->stopping, true);
    gw__mb_queue_stop(&a->q);
    if (!a->thread_started)
        return;
    pthread_mutex_lock(&a->wake_lock);
    if (!a->wake_closed)
        uv_async_send(&a->wake);
    pthread_mutex_unlock(&a->wake_lock);
    pthread_join(a->thread, NULL);
    a->thread_started = false;
}

static void mbs_destroy(struct gw_adapter *ad)
{
    struct gw__mbs_adapter *a = (struct gw__mbs_adapter *)ad;

    if (!a)
        return;
    mbs_stop(ad);
    if (a->loop_ready) {
        /* The loop thread never ran (or already closed everything): finish here. */
        close_all(a);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        uv_loop_close(&a->loop);
    }
    for (size_t i = 0; i < a->n_index; i++)
        gw__mb_dev_free(a->index[i].dev);
    free(a->index);
    gw__mb_queue_fini(&a->q);
    pthread_mutex_destroy(&a->wake_lock);
    free(a);
}

static void mbs_stats(struct gw_adapter *ad, struct gw_adapter_stats *out)
{
    struct gw__mbs_adapter *a = (struct gw__mbs_adapter *)ad;

    *out = (struct gw_adapter_stats){
        .sessions = atomic_load(&a->ctr.sessions),
        .queue_depth = gw__mb_queue_depth(&a->q),
    };
    gw_adapter_counters_read(&a->ctr.io, out);
}

static const struct gw_adapter_ops mbs_ops = {
    .name = "modbus_tcp_server",
    .create = mbs_create,
    .start = mbs_start,
    .submit = mbs_submit,
    .stop = mbs_stop,
    .destroy = mbs_destroy,
    .stats = mbs_stats,
};

const struct gw_adapter_ops *gw_modbus_server_adapter_type(void)
{
    return &mbs_ops;
}
