/*
 * DESIGN: the MQTT adapter (type "mqtt"): devices talk to a mosquitto broker that loads the
 * gateway's auth plugin; the gateway is one paho MQTTAsync client of that broker. This file
 * holds the adapter ops (create/start/submit/stop/destroy/stats); the connection and the
 * downstream sender are in mqtt_link.c, upstream conversion in mqtt_upstream.c, the session
 * table and the ordered path to the core in mqtt_sessions.c, the private broker in
 * mqtt_broker.c.
 *
 * Threads:
 *  - owner (main): create/start/stop/destroy/stats;
 *  - any thread (in practice the core's): submit, which only queues and wakes the link thread;
 *  - the link thread (mqtt_link.c): connects with backoff, subscribes after every CONNACK,
 *    publishes the queue head, drains what the core refused;
 *  - paho's threads: callbacks that only convert and post, or flip link state and signal;
 *  - the broker supervisor (mqtt_broker.c): broker died / restarted.
 *
 * Locks: `lock` guards link state and the downstream queue; `sess_lock` guards sessions and
 * everything posted to the core (so presence stays in order). Never both at once, and no paho
 * call is made while holding either (paho may hold its own mutex while calling us).
 *
 * Delivery: the queue head is retried, not dropped, when paho says "buffer full"
 * (MQTTASYNC_MAX_BUFFERED_MESSAGES), "too many in flight" or "disconnected"; submit returns
 * -EAGAIN when the queue (max_buffered messages) is full. A publish paho accepted and then
 * failed (connection lost before PUBACK) is counted in dropped_out: the device went with the
 * broker, and the OTA engine's push timeout re-pushes.
 *
 * Known gap: presence the plugin publishes while the gateway is not subscribed (between a
 * broker restart or a dropped link and our SUBSCRIBE) reaches nobody, so a device that
 * connects in that window stays unknown until it reconnects. start() closes it for the first
 * start by waiting for the subscription; for restarts the plugin would have to publish
 * presence retained (this file already accepts such replays: an online/subscribed of an
 * unknown device adds it, an offline of an unknown one is ignored).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gw_config.h"
#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_store.h"
#include "gw_mqtt.h"
#include "gw_topic.h"
#include "mqtt_internal.h"

#define START_WAIT_MS 10000 /* start waits this long for the first subscription */
#define DISCONNECT_WAIT_MS 3000

static const struct gw_adapter_ops gw_mqtt_adapter_ops;

static struct gw__mqtt_adapter *from_base(struct gw_adapter *ad)
{
    return (struct gw__mqtt_adapter *)ad;
}

/* ---- the adapter ops ---- */

static int mqtt_submit(struct gw_adapter *ad, struct gw_msg *msg)
{
    struct gw__mqtt_adapter *a = from_base(ad);
    int rc = 0;

    pthread_mutex_lock(&a->lock);
    bool running = a->started && !a->stopping;
    pthread_mutex_unlock(&a->lock);
    if (!running) {
        rc = GW_E_SHUTDOWN;
        goto err_drop;
    }
    if (gw_method_is_upstream(msg->method, gw_msg_is_reply(msg))) {
        rc = -EINVAL; /* not something the gateway sends to a device */
        goto err_drop;
    }
    pthread_mutex_lock(&a->sess_lock);
    bool known = gw__mqtt_sessions_find(&a->sessions, msg->product_key, msg->device_name);
    pthread_mutex_unlock(&a->sess_lock);
    if (!known) {
        rc = GW_E_DEVICE_NOT_CONNECTED;
        goto err_drop;
    }
    pthread_mutex_lock(&a->lock);
    if (a->stopping) {
        rc = GW_E_SHUTDOWN;
    } else if (a->qlen == (size_t)a->max_buffered) {
        rc = -EAGAIN;
    } else {
        a->queue[(a->qhead + a->qlen) % (size_t)a->max_buffered] = msg;
        a->qlen++;
        pthread_cond_broadcast(&a->cond);
    }
    pthread_mutex_unlock(&a->lock);
    if (rc != 0)
        goto err_drop;
    return 0;
err_drop:
    gw_adapter_count(&a->ctr.dropped_out);
    gw_msg_unref(msg);
    return rc;
}

/* A free TCP port on host (listen port 0: tests). 0 or -errno. */
static int pick_port(const char *host, int *port)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int rc = -EADDRNOTAVAIL, fd;

    if (getaddrinfo(host, "0", &hints, &ai) != 0 || !ai)
        return rc;
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
        getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
        rc = 0;
    } else {
        rc = -errno;
    }
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return rc;
}

static void format_uri(struct gw__mqtt_adapter *a)
{
    bool v6 = strchr(a->host, ':') != NULL;
    snprintf(a->uri, sizeof(a->uri), "tcp://%s%s%s:%d", v6 ? "[" : "", a->host, v6 ? "]" : "",
             a->port);
}

static int mqtt_create(struct gw_core *core, const struct gw_config_adapter *cfg,
                       struct gw_adapter **out)
{
    const struct gw_config_mqtt *m = &cfg->u.mqtt;
    struct gw__mqtt_adapter *a;

    *out = NULL;
    if (cfg->type != GW_CONFIG_ADAPTER_MQTT || m->max_buffered < 1 || m->max_inflight < 1 ||
        m->reply_qos < 0 || m->reply_qos > 1 || (m->spawn && m->broker_queue_mb < 1))
        return -EINVAL;
    if (!(a = calloc(1, sizeof(*a))))
        return -ENOMEM;
    a->base.ops = &gw_mqtt_adapter_ops;
    a->base.core = core;
    snprintf(a->base.name, sizeof(a->base.name), "%s", cfg->name ? cfg->name : "mqtt");
    a->spawn = m->spawn;
    const struct gw_config_addr *addr = m->spawn ? &cfg->listen : &m->broker_addr;
    snprintf(a->host, sizeof(a->host), "%s", addr->host[0] ? addr->host : "127.0.0.1");
    a->port = addr->port;
    snprintf(a->client_id, sizeof(a->client_id), "%s",
             m->client_id && m->client_id[0] ? m->client_id : "iotgw");
    a->max_inflight = m->max_inflight;
    a->max_buffered = m->max_buffered;
    a->reply_qos = m->reply_qos;
    a->broker_queue_mb = m->broker_queue_mb;
    a->keepalive_s = m->keepalive_s;
    a->codec = m->serializer == GW_CONFIG_SERIALIZER_BINARY ? &gw_codec_binary : &gw_codec_json;
    a->backoff_ms = GW_MQTT_BACKOFF_MIN_MS;
    pthread_mutex_init(&a->lock, NULL);
    pthread_mutex_init(&a->sess_lock, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&a->cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    a->queue = calloc((size_t)a->max_buffered, sizeof(*a->queue));
    if (!a->queue || gw__mqtt_sessions_init(&a->sessions) != 0 ||
        gw__mqtt_build_filters(&a->filters, &a->nfilters) != 0) {
        gw_mqtt_adapter_ops.destroy(&a->base);
        return -ENOMEM;
    }
    *out = &a->base;
    return 0;
}

/*
 * Started as root, mosquitto drops to user mosquitto before it loads the plugin, which must
 * then open the store: the store directory goes to group mosquitto (storage does that) and
 * the data directory gets search permission for others (x only: nothing can be listed, and
 * every file in it keeps its own restrictive mode).
 */
static void share_store(struct gw__mqtt_adapter *a, const char *data_dir, const char *db_dir)
{
    struct stat st;
    int rc;

    if (geteuid() != 0)
        return;
    if (stat(data_dir, &st) == 0 && !(st.st_mode & S_IXOTH) &&
        chmod(data_dir, (st.st_mode & 07777) | S_IXOTH) != 0)
        gw_log(GW_LOG_WARN, a->base.name, "chmod o+x %s: %s", data_dir, strerror(errno));
    if ((rc = gw_store_prepare_shared_dir(db_dir, "mosquitto")) != 0)
        gw_log(GW_LOG_WARN, a->base.name, "cannot share %s with the broker: %s", db_dir,
               strerror(-rc));
}

static int start_broker(struct gw__mqtt_adapter *a)
{
    const char *data_dir = gw_core_data_dir(a->base.core);
    char plugin[4096], db_dir[4096];
    int rc;

    if (a->port == 0 && (rc = pick_port(a->host, &a->port)) != 0) {
        gw_log(GW_LOG_ERROR, a->base.name, "no free port on %s: %s", a->host, strerror(-rc));
        return rc;
    }
    if ((rc = gw__mqtt_plugin_path(plugin, sizeof(plugin))) != 0) {
        gw_log(GW_LOG_ERROR, a->base.name,
               "broker plugin %s: %s (build iotgw_auth or set "
               "IOTGW_PLUGIN)",
               plugin, strerror(-rc));
        return rc;
    }
    snprintf(db_dir, sizeof(db_dir), "%s/db", data_dir);
    share_store(a, data_dir, db_dir);
    struct gw__mqtt_broker_opts bo = {
        .tag = a->base.name,
        .data_dir = data_dir,
        .host = a->host,
        .port = a->port,
        .plugin_path = plugin,
        .db_dir = db_dir,
        .gateway_secret = a->secret,
        .queue_mb = a->broker_queue_mb,
        .on_exit = gw__mqtt_on_broker_exit,
        .on_ready = gw__mqtt_on_broker_ready,
        .ctx = a,
    };
    if ((rc = gw__mqtt_broker_create(&bo, &a->broker)) != 0)
        return rc;
    return gw__mqtt_broker_start(a->broker);
}

static int mqtt_start(struct gw_adapter *ad)
{
    struct gw__mqtt_adapter *a = from_base(ad);
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
    int rc;

    if (a->started)
        return -EALREADY;
    rc = gw__mqtt_secret_load(gw_core_data_dir(a->base.core), a->secret);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, a->base.name, "broker.secret in %s: %s",
               gw_core_data_dir(a->base.core), gw_strerror(rc));
        return rc;
    }
    if (a->spawn && (rc = start_broker(a)) != 0)
        return rc;
    format_uri(a);
    co.sendWhileDisconnected = 0; /* a disconnected send stays in our queue instead */
    co.maxBufferedMessages = a->max_buffered;
    co.MQTTVersion = MQTTVERSION_3_1_1;
    rc = MQTTAsync_createWithOptions(&a->client, a->uri, a->client_id, MQTTCLIENT_PERSISTENCE_NONE,
                                     NULL, &co);
    if (rc == MQTTASYNC_SUCCESS)
        rc = MQTTAsync_setCallbacks(a->client, a, gw__mqtt_on_connection_lost, gw__mqtt_on_message,
                                    NULL);
    if (rc != MQTTASYNC_SUCCESS) {
        gw_log(GW_LOG_ERROR, a->base.name, "paho client for %s: error %d", a->uri, rc);
        rc = -EINVAL;
        goto err_broker;
    }
    pthread_mutex_lock(&a->lock);
    a->started = true;
    pthread_mutex_unlock(&a->lock);
    if ((rc = pthread_create(&a->thread, NULL, gw__mqtt_link_main, a)) != 0) {
        rc = -rc;
        goto err_broker;
    }
    a->thread_started = true;
    /* Bounded wait for the first subscription, so devices that connect right after start
     * are seen; an external broker that is down is retried in the background. */
    pthread_mutex_lock(&a->lock);
    int64_t deadline = gw__mqtt_now_ms() + START_WAIT_MS;
    while (a->link != GW__MQTT_LINK_UP && gw__mqtt_now_ms() < deadline)
        gw__mqtt_wait_until(a, deadline);
    bool up = a->link == GW__MQTT_LINK_UP;
    pthread_mutex_unlock(&a->lock);
    if (!up && a->spawn) {
        gw_log(GW_LOG_ERROR, a->base.name, "the private broker did not accept the gateway");
        rc = GW_E_TIMEOUT;
        goto err_broker;
    }
    if (a->spawn)
        gw_log(GW_LOG_INFO, a->base.name, "MQTT devices: mqtt://%s (private mosquitto pid %ld)",
               a->uri + strlen("tcp://"), (long)gw__mqtt_broker_pid(a->broker));
    else
        gw_log(up ? GW_LOG_INFO : GW_LOG_WARN, a->base.name, "MQTT devices: broker %s%s", a->uri,
               up ? "" : " (not reachable yet: retrying)");
    return 0;
err_broker:
    gw_mqtt_adapter_ops.stop(ad);
    return rc;
}

static void on_disconnected(void *ctx, MQTTAsync_successData *resp)
{
    struct gw__mqtt_adapter *a = ctx;
    (void)resp;
    pthread_mutex_lock(&a->lock);
    a->disconnect_done = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

static void on_disconnect_fail(void *ctx, MQTTAsync_failureData *resp)
{
    (void)resp;
    on_disconnected(ctx, NULL);
}

static void mqtt_stop(struct gw_adapter *ad)
{
    struct gw__mqtt_adapter *a = from_base(ad);

    pthread_mutex_lock(&a->lock);
    a->stopping = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    if (a->thread_started) {
        pthread_join(a->thread, NULL);
        a->thread_started = false;
    }
    pthread_mutex_lock(&a->sess_lock);
    a->closed = true; /* from here no callback posts to the core */
    gw__mqtt_sessions_clear(&a->sessions);
    gw__mqtt_park_clear(a);
    pthread_mutex_unlock(&a->sess_lock);
    if (a->client && MQTTAsync_isConnected(a->client)) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
        d.timeout = 1000;
        d.onSuccess = on_disconnected;
        d.onFailure = on_disconnect_fail;
        d.context = a;
        if (MQTTAsync_disconnect(a->client, &d) == MQTTASYNC_SUCCESS) {
            pthread_mutex_lock(&a->lock);
            int64_t deadline = gw__mqtt_now_ms() + DISCONNECT_WAIT_MS;
            while (!a->disconnect_done && gw__mqtt_now_ms() < deadline)
                gw__mqtt_wait_until(a, deadline);
            pthread_mutex_unlock(&a->lock);
        }
    }
    gw__mqtt_broker_stop(a->broker);
    pthread_mutex_lock(&a->lock);
    while (a->qlen > 0) {
        gw_msg_unref(a->queue[a->qhead]);
        a->queue[a->qhead] = NULL;
        a->qhead = (a->qhead + 1) % (size_t)a->max_buffered;
        a->qlen--;
    }
    pthread_mutex_unlock(&a->lock);
}

static void mqtt_destroy(struct gw_adapter *ad)
{
    struct gw__mqtt_adapter *a = from_base(ad);
    if (!a)
        return;
    mqtt_stop(ad);
    if (a->client)
        MQTTAsync_destroy(&a->client); /* synchronous: no callback runs after it */
    gw__mqtt_broker_destroy(a->broker);
    gw__mqtt_sessions_fini(&a->sessions);
    gw__mqtt_free_filters(a->filters, a->nfilters);
    free(a->queue);
    memset(a->secret, 0, sizeof(a->secret));
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->sess_lock);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static void mqtt_stats(struct gw_adapter *ad, struct gw_adapter_stats *out)
{
    struct gw__mqtt_adapter *a = from_base(ad);
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&a->sess_lock);
    out->sessions = a->sessions.count;
    pthread_mutex_unlock(&a->sess_lock);
    pthread_mutex_lock(&a->lock);
    out->queue_depth = a->qlen + (a->sending ? 1 : 0);
    pthread_mutex_unlock(&a->lock);
    gw_adapter_counters_read(&a->ctr, out);
}

pid_t gw__mqtt_adapter_broker_pid(struct gw_adapter *ad)
{
    struct gw__mqtt_adapter *a = from_base(ad);
    return a->broker ? gw__mqtt_broker_pid(a->broker) : 0;
}

int gw__mqtt_adapter_port(struct gw_adapter *ad)
{
    return from_base(ad)->port;
}

bool gw__mqtt_adapter_link_up(struct gw_adapter *ad)
{
    struct gw__mqtt_adapter *a = from_base(ad);
    pthread_mutex_lock(&a->lock);
    bool up = a->link == GW__MQTT_LINK_UP;
    pthread_mutex_unlock(&a->lock);
    return up;
}

static const struct gw_adapter_ops gw_mqtt_adapter_ops = {
    .name = "mqtt",
    .create = mqtt_create,
    .start = mqtt_start,
    .submit = mqtt_submit,
    .stop = mqtt_stop,
    .destroy = mqtt_destroy,
    .stats = mqtt_stats,
};

const struct gw_adapter_ops *gw_mqtt_adapter_type(void)
{
    return &gw_mqtt_adapter_ops;
}
