/*
 * DESIGN: the "modbus_tcp_client" adapter: the gateway is Modbus TCP master of the devices
 * listed in its config (REFERENCE §4.9, DESIGN §7.5).
 *
 * Owns: one connection per distinct host:port (several unit ids may share it), each with a
 * libmodbus context, a thread and a downstream queue; the devices (mb_device.c) of that
 * connection; an index (productKey, deviceName) → device for submit.
 *
 * Threads:
 *  - owner (main): create/start/stop/destroy/stats;
 *  - any thread (the core): submit, which routes by identity and queues to the device's
 *    connection thread (the session must be live, except for cancels and replies);
 *  - one thread per connection: connects (with backoff: retryIntervalMs doubling to 30 s,
 *    back to retryIntervalMs once a device answers),
 *    executes its devices' requests one at a time with libmodbus (blocking, bounded by the
 *    device's timeoutMs), feeds the answers back, sleeps on the queue's condition variable
 *    until the next due request or a message.
 * libmodbus contexts are not thread-safe: each stays on its connection thread. stop() cuts a
 * blocking call short by shutdown() of the socket (under fd_lock, so the descriptor is never
 * one the thread already closed).
 *
 * Failures: an exception answer is the device's (reported, not fatal); a timeout counts
 * towards the device's stall (mb_device.c); a broken connection (reset, EOF, any other
 * socket error) takes every device of it offline and is retried with backoff, as is a
 * connection on which no device answers any more.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <modbus.h>

#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_modbus.h"
#include "mb_internal.h"

#define BACKOFF_MAX_MS 30000
#define IDLE_WAKE_MS 1000 /* a connection thread looks round at least this often */
#define DRAIN_BATCH 64

struct mbc_adapter;

struct mbc_conn {
    struct mbc_adapter *a;
    char host[GW_CONFIG_HOST_MAX];
    int port;
    modbus_t *ctx;
    pthread_t thread;
    bool thread_started;
    struct gw__mb_queue q;
    struct gw__mb_dev **devs;
    size_t n_devs;
    size_t rr; /* round robin between the devices */
    bool connected;
    pthread_mutex_t fd_lock;
    int fd; /* under fd_lock: the connected socket, -1 */
    int64_t next_connect_ms;
    int backoff_ms;
    int retry_ms;   /* the smallest retryIntervalMs of its devices (at least 100) */
    int timeout_ms; /* the largest timeoutMs: bounds connect */
    bool failing;   /* connect failures logged once until the next success */
    struct gw__mb_req req;
    struct gw__mb_resp resp;
};

struct mbc_entry {
    const char *pk, *dn;
    struct gw__mb_dev *dev;
    struct mbc_conn *conn;
};

struct mbc_adapter {
    struct gw_adapter base;
    const struct gw_config_adapter *cfg;
    struct mbc_conn **conns;
    size_t n_conns;
    struct mbc_entry *index; /* sorted by (pk, dn) */
    size_t n_index;
    struct gw__mb_counters ctr;
    atomic_bool stopping;
};

static const struct gw_adapter_ops mbc_ops;

static int entry_cmp(const void *x, const void *y)
{
    const struct mbc_entry *a = x, *b = y;
    int c = strcmp(a->pk, b->pk);

    return c ? c : strcmp(a->dn, b->dn);
}

static struct mbc_entry *lookup(struct mbc_adapter *a, const char *pk, const char *dn)
{
    struct mbc_entry key = {.pk = pk, .dn = dn};

    return bsearch(&key, a->index, a->n_index, sizeof(key), entry_cmp);
}

/* ---- the connection thread ---- */

static void conn_set_fd(struct mbc_conn *c, int fd)
{
    pthread_mutex_lock(&c->fd_lock);
    c->fd = fd;
    pthread_mutex_unlock(&c->fd_lock);
}

static void set_timeout(modbus_t *ctx, int ms)
{
    modbus_set_response_timeout(ctx, (uint32_t)(ms / 1000), (uint32_t)(ms % 1000) * 1000u);
}

static void conn_drop(struct mbc_conn *c, int64_t now, const char *why)
{
    gw_log(GW_LOG_WARN, c->a->base.name, "connection to %s:%d lost (%s): retrying in %d ms",
           c->host, c->port, why, c->backoff_ms);
    conn_set_fd(c, -1);
    modbus_close(c->ctx);
    c->connected = false;
    for (size_t i = 0; i < c->n_devs; i++)
        gw__mb_dev_down(c->devs[i], now);
    c->next_connect_ms = now + c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    c->failing = true;
}

static void conn_connect(struct mbc_conn *c)
{
    int64_t now;

    set_timeout(c->ctx, c->timeout_ms);
    if (modbus_connect(c->ctx) != 0) {
        if (!c->failing)
            gw_log(GW_LOG_WARN, c->a->base.name,
                   "cannot connect to %s:%d: %s (retrying with backoff)", c->host, c->port,
                   modbus_strerror(errno));
        else
            gw_log(GW_LOG_DEBUG, c->a->base.name, "cannot connect to %s:%d: %s", c->host, c->port,
                   modbus_strerror(errno));
        c->failing = true;
        c->next_connect_ms = gw__mb_now_ms() + c->backoff_ms;
        c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
        return;
    }
    conn_set_fd(c, modbus_get_socket(c->ctx));
    if (atomic_load(&c->a->stopping)) {
        conn_set_fd(c, -1);
        modbus_close(c->ctx);
        return;
    }
    c->connected = true;
    c->failing = false;
    gw_log(GW_LOG_INFO, c->a->base.name, "connected to %s:%d (%zu device%s)", c->host, c->port,
           c->n_devs, c->n_devs == 1 ? "" : "s");
    now = gw__mb_now_ms();
    for (size_t i = 0; i < c->n_devs; i++)
        gw__mb_dev_up(c->devs[i], now);
}

/* Runs one request with libmodbus; the answer (or the failure) in c->resp. */
static void conn_execute(struct mbc_conn *c, struct gw__mb_dev *dev)
{
    const struct gw__mb_req *r = &c->req;
    struct gw__mb_resp *resp = &c->resp;
    int rc, e;

    modbus_set_slave(c->ctx, dev->unit);
    set_timeout(c->ctx, dev->cfg->timeout_ms);
    switch (r->fc) {
    case 1:
        rc = modbus_read_bits(c->ctx, r->addr, r->count, resp->bits);
        break;
    case 2:
        rc = modbus_read_input_bits(c->ctx, r->addr, r->count, resp->bits);
        break;
    case 3:
        rc = modbus_read_registers(c->ctx, r->addr, r->count, resp->regs);
        break;
    case 4:
        rc = modbus_read_input_registers(c->ctx, r->addr, r->count, resp->regs);
        break;
    case 5:
        rc = modbus_write_bit(c->ctx, r->addr, r->bits[0]);
        break;
    case 6:
        rc = modbus_write_register(c->ctx, r->addr, r->regs[0]);
        break;
    case 15:
        rc = modbus_write_bits(c->ctx, r->addr, r->count, r->bits);
        break;
    case 16:
        rc = modbus_write_registers(c->ctx, r->addr, r->count, r->regs);
        break;
    default:
        rc = -1;
        errno = EINVAL;
        break;
    }
    e = errno;
    resp->err = 0;
    resp->exception = 0;
    if (rc >= 0)
        return;
    if (e > MODBUS_ENOBASE && e <= EMBXGTAR) {
        resp->err = GW_E_MODBUS_EXCEPTION;
        resp->exception = e - MODBUS_ENOBASE;
    } else if (e == ETIMEDOUT) {
        resp->err = GW_E_TIMEOUT;
        modbus_flush(c->ctx); /* a late answer must not be taken for the next one */
    } else if (e == EMBBADDATA || e == EMBBADCRC || e == EMBBADEXC || e == EMBUNKEXC ||
               e == EMBMDATA || e == EMBBADSLAVE || e == EINVAL) {
        resp->err = -EPROTO;
        gw_log(GW_LOG_DEBUG, c->a->base.name, "%s:%d unit %u FC%u: %s", c->host, c->port, dev->unit,
               r->fc, modbus_strerror(e));
        modbus_flush(c->ctx);
    } else {
        resp->err = -EIO;
        errno = e;
    }
}

static void conn_drain(struct mbc_conn *c, int64_t now)
{
    struct gw_msg *msgs[DRAIN_BATCH];
    size_t n;

    while ((n = gw__mb_queue_take(&c->q, msgs, DRAIN_BATCH)) > 0) {
        for (size_t i = 0; i < n; i++) {
            struct mbc_entry *e = lookup(c->a, msgs[i]->product_key, msgs[i]->device_name);
            if (e && e->conn == c)
                gw__mb_dev_accept(e->dev, msgs[i], now); /* takes msgs[i] */
            else
                gw_msg_unref(msgs[i]);
        }
    }
}

/* No device of the connection answers any more: the link itself may be half-dead. */
static bool conn_all_stalled(const struct mbc_conn *c)
{
    bool stalled = false;

    for (size_t i = 0; i < c->n_devs; i++) {
        if (c->devs[i]->link == GW__MB_UP)
            return false;
        stalled |= c->devs[i]->link == GW__MB_STALLED;
    }
    return stalled;
}

/* Asks the devices in turn for a request and runs the first one offered. */
static bool conn_step(struct mbc_conn *c, int64_t now, int64_t *wake)
{
    for (size_t k = 0; k < c->n_devs; k++) {
        size_t i = (c->rr + k) % c->n_devs;
        struct gw__mb_dev *dev = c->devs[i];
        int e;

        if (!gw__mb_dev_next(dev, now, &c->req, wake))
            continue;
        if (!c->connected) /* defensive: devices are DOWN while disconnected */
            return false;
        c->rr = (i + 1) % c->n_devs;
        conn_execute(c, dev);
        e = errno;
        now = gw__mb_now_ms();
        gw__mb_dev_done(dev, &c->req, &c->resp, now);
        if (c->resp.err == 0 || c->resp.err == GW_E_MODBUS_EXCEPTION)
            c->backoff_ms = c->retry_ms; /* an answer, not just a connect, ends the backoff */
        if (c->resp.err == -EIO)
            conn_drop(c, now, modbus_strerror(e));
        else if (conn_all_stalled(c))
            conn_drop(c, now, "no device answers");
        return true;
    }
    return false;
}

static void *conn_main(void *arg)
{
    struct mbc_conn *c = arg;
    int64_t now;

    while (!atomic_load(&c->a->stopping)) {
        int64_t wake;
        now = gw__mb_now_ms();
        conn_drain(c, now);
        if (!c->connected && now >= c->next_connect_ms) {
            conn_connect(c);
            now = gw__mb_now_ms();
        }
        wake = now + IDLE_WAKE_MS;
        if (!c->connected && c->next_connect_ms < wake)
            wake = c->next_connect_ms;
        if (!conn_step(c, now, &wake))
            gw__mb_queue_wait(&c->q, wake);
    }
    now = gw__mb_now_ms();
    for (size_t i = 0; i < c->n_devs; i++)
        gw__mb_dev_down(c->devs[i], now);
    conn_set_fd(c, -1);
    if (c->connected)
        modbus_close(c->ctx);
    c->connected = false;
    return NULL;
}

/* ---- ops ---- */

static struct mbc_conn *conn_for(struct mbc_adapter *a, const struct gw_config_modbus_device *d)
{
    struct mbc_conn *c, **v;

    for (size_t i = 0; i < a->n_conns; i++)
        if (a->conns[i]->port == d->port && strcmp(a->conns[i]->host, d->host) == 0)
            return a->conns[i];
    c = calloc(1, sizeof(*c));
    v = realloc(a->conns, (a->n_conns + 1) * sizeof(*v));
    if (!c || !v) {
        free(c);
        if (v)
            a->conns = v;
        return NULL;
    }
    a->conns = v;
    if (gw__mb_queue_init(&c->q, GW__MB_QUEUE_CAP) != 0) {
        free(c);
        return NULL;
    }
    a->conns[a->n_conns++] = c;
    c->a = a;
    snprintf(c->host, sizeof(c->host), "%s", d->host);
    c->port = d->port;
    c->fd = -1;
    c->retry_ms = INT32_MAX;
    pthread_mutex_init(&c->fd_lock, NULL);
    return c;
}

static void mbc_destroy(struct gw_adapter *ad);

static int mbc_add_device(struct mbc_adapter *a, const struct gw_config_modbus_device *d)
{
    struct mbc_conn *c = conn_for(a, d);
    struct gw__mb_dev *dev = NULL, **v;
    int rc;

    if (!c)
        return -ENOMEM;
    rc = gw__mb_dev_new(&a->base, d, gw_core_data_dir(a->base.core), &a->ctr, &dev);
    if (rc)
        return rc;
    v = realloc(c->devs, (c->n_devs + 1) * sizeof(*v));
    if (!v) {
        gw__mb_dev_free(dev);
        return -ENOMEM;
    }
    c->devs = v;
    c->devs[c->n_devs++] = dev;
    a->index[a->n_index++] = (struct mbc_entry){d->product_key, d->device_name, dev, c};
    if (d->retry_interval_ms < c->retry_ms)
        c->retry_ms = d->retry_interval_ms < 100 ? 100 : d->retry_interval_ms;
    if (d->timeout_ms > c->timeout_ms)
        c->timeout_ms = d->timeout_ms;
    c->backoff_ms = c->retry_ms;
    return 0;
}

static int mbc_create(struct gw_core *core, const struct gw_config_adapter *cfg,
                      struct gw_adapter **out)
{
    const struct gw_config_modbus_client *m = &cfg->u.modbus_client;
    struct mbc_adapter *a;
    int rc = 0;

    *out = NULL;
    if (cfg->type != GW_CONFIG_ADAPTER_MODBUS_TCP_CLIENT)
        return -EINVAL;
    a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->base.ops = &mbc_ops;
    a->base.core = core;
    snprintf(a->base.name, sizeof(a->base.name), "%s", cfg->name ? cfg->name : "modbus_client");
    a->cfg = cfg;
    atomic_init(&a->stopping, false);
    a->index = calloc(m->device_count ? m->device_count : 1, sizeof(*a->index));
    if (!a->index) {
        rc = -ENOMEM;
        goto err;
    }
    for (size_t i = 0; i < m->device_count && rc == 0; i++)
        rc = mbc_add_device(a, &m->devices[i]);
    if (rc)
        goto err;
    qsort(a->index, a->n_index, sizeof(*a->index), entry_cmp);
    *out = &a->base;
    return 0;
err:
    mbc_destroy(&a->base);
    return rc;
}

static void mbc_stop(struct gw_adapter *ad);

static int mbc_start(struct gw_adapter *ad)
{
    struct mbc_adapter *a = (struct mbc_adapter *)ad;
    char port[16];
    int rc;

    for (size_t i = 0; i < a->n_conns; i++) {
        struct mbc_conn *c = a->conns[i];
        snprintf(port, sizeof(port), "%d", c->port);
        c->ctx = modbus_new_tcp_pi(c->host, port);
        if (!c->ctx) {
            rc = errno ? -errno : -ENOMEM;
            gw_log(GW_LOG_ERROR, ad->name, "cannot create a Modbus context for %s:%d: %s", c->host,
                   c->port, modbus_strerror(errno));
            goto err;
        }
        modbus_set_error_recovery(c->ctx, MODBUS_ERROR_RECOVERY_NONE);
        rc = -pthread_create(&c->thread, NULL, conn_main, c);
        if (rc) {
            gw_log(GW_LOG_ERROR, ad->name, "cannot start a thread: %s", gw_strerror(rc));
            goto err;
        }
        c->thread_started = true;
    }
    gw_log(GW_LOG_INFO, ad->name, "Modbus TCP master of %zu device%s on %zu connection%s",
           a->n_index, a->n_index == 1 ? "" : "s", a->n_conns, a->n_conns == 1 ? "" : "s");
    return 0;
err:
    mbc_stop(ad);
    return rc;
}

static int mbc_submit(struct gw_adapter *ad, struct gw_msg *msg)
{
    struct mbc_adapter *a = (struct mbc_adapter *)ad;
    struct mbc_entry *e;
    int rc;

    if (atomic_load(&a->stopping)) {
        rc = GW_E_SHUTDOWN;
        goto refuse;
    }
    e = lookup(a, msg->product_key, msg->device_name);
    if (!e) {
        rc = GW_E_DEVICE_NOT_CONNECTED;
        goto refuse;
    }
    /* Requests need a live session; replies and cancels go through anyway. */
    if (!gw_msg_is_reply(msg) && msg->method != GW_METHOD_OTA_CANCEL &&
        atomic_load(&e->dev->live_session) == 0) {
        rc = GW_E_DEVICE_NOT_CONNECTED;
        goto refuse;
    }
    rc = gw__mb_queue_push(&e->conn->q, msg);
    if (rc)
        gw_adapter_count(&a->ctr.io.dropped_out);
    return rc;
refuse:
    gw_adapter_count(&a->ctr.io.dropped_out);
    gw_msg_unref(msg);
    return rc;
}

static void mbc_stop(struct gw_adapter *ad)
{
    struct mbc_adapter *a = (struct mbc_adapter *)ad;

    atomic_store(&a->stopping, true);
    for (size_t i = 0; i < a->n_conns; i++) {
        struct mbc_conn *c = a->conns[i];
        gw__mb_queue_stop(&c->q);
        pthread_mutex_lock(&c->fd_lock);
        if (c->fd >= 0)
            shutdown(c->fd, SHUT_RDWR); /* cuts a blocking request short */
        pthread_mutex_unlock(&c->fd_lock);
    }
    for (size_t i = 0; i < a->n_conns; i++) {
        struct mbc_conn *c = a->conns[i];
        if (c->thread_started) {
            pthread_join(c->thread, NULL);
            c->thread_started = false;
        }
    }
}

static void mbc_destroy(struct gw_adapter *ad)
{
    struct mbc_adapter *a = (struct mbc_adapter *)ad;

    if (!a)
        return;
    mbc_stop(ad);
    for (size_t i = 0; i < a->n_conns; i++) {
        struct mbc_conn *c = a->conns[i];
        for (size_t k = 0; k < c->n_devs; k++)
            gw__mb_dev_free(c->devs[k]);
        free(c->devs);
        if (c->ctx)
            modbus_free(c->ctx);
        gw__mb_queue_fini(&c->q);
        pthread_mutex_destroy(&c->fd_lock);
        free(c);
    }
    free(a->conns);
    free(a->index);
    free(a);
}

static void mbc_stats(struct gw_adapter *ad, struct gw_adapter_stats *out)
{
    struct mbc_adapter *a = (struct mbc_adapter *)ad;
    uint64_t depth = 0;

    for (size_t i = 0; i < a->n_conns; i++)
        depth += gw__mb_queue_depth(&a->conns[i]->q);
    *out = (struct gw_adapter_stats){
        .sessions = atomic_load(&a->ctr.sessions),
        .queue_depth = depth,
    };
    gw_adapter_counters_read(&a->ctr.io, out);
}

static const struct gw_adapter_ops mbc_ops = {
    .name = "modbus_tcp_client",
    .create = mbc_create,
    .start = mbc_start,
    .submit = mbc_submit,
    .stop = mbc_stop,
    .destroy = mbc_destroy,
    .stats = mbc_stats,
};

const struct gw_adapter_ops *gw_modbus_client_adapter_type(void)
{
    return &mbc_ops;
}
