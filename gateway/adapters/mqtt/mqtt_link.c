/*
 * DESIGN: the MQTT adapter's link to its broker: the paho connection (connect with backoff,
 * subscribe after every CONNACK), the downstream sender, and the paho and broker callbacks.
 *
 * The link thread (gw__mqtt_link_main) owns the connection state machine
 * DOWN → CONNECTING → CONNECTED → SUBSCRIBING → UP (and back to DOWN on any loss), the
 * head of the downstream queue (encoded once, retried until paho takes it) and the draining
 * of items the core refused. Paho's callbacks only flip state under `lock` and signal it, or
 * hand a received message to mqtt_upstream.c. A loss of the link clears every session and
 * parks an ALL_OFFLINE that the link thread posts before it connects again.
 *
 * Subscriptions are the upstream filters only: every up method's topic and every down
 * method's _reply topic for any device, and presence; the gateway's downstream topics are
 * not among them, so it never receives what it publishes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_topic.h"
#include "mqtt_internal.h"

#define LINK_BACKOFF_MAX_MS 30000
#define LINK_IDLE_WAKE_MS 200    /* the link thread looks round at least this often */
#define LINK_BLOCKED_RETRY_MS 50 /* paho buffer full: retry after (or on the next PUBACK) */
#define LINK_PARK_RETRY_MS 5     /* the core refused a post: try again this soon */

int64_t gw__mqtt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void gw__mqtt_wait_until(struct gw__mqtt_adapter *a, int64_t deadline_ms)
{
    int64_t ms = deadline_ms - gw__mqtt_now_ms();
    struct timespec ts;
    if (ms <= 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&a->cond, &a->lock, &ts);
}

static bool link_connected(enum gw__mqtt_link l)
{
    return l == GW__MQTT_LINK_CONNECTED || l == GW__MQTT_LINK_SUBSCRIBING || l == GW__MQTT_LINK_UP;
}

/* ---- subscriptions ---- */

/*
 * The upstream filters only: every up method's topic and every down method's _reply topic
 * for any device, plus presence. The gateway's own downstream topics are not among them, so
 * it never receives what it publishes. thing.state.update (the gateway derives state from
 * presence) and auth (a login for socket protocols; MQTT logs in with CONNECT) are left out.
 */
int gw__mqtt_build_filters(char ***out, int *count)
{
    size_t n = gw_method_count();
    char **f = calloc(n + 1, sizeof(*f));
    int k = 0;
    if (!f)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const struct gw_method_info *mi = gw_method_at(i);
        if (mi->method == GW_METHOD_STATE_UPDATE || mi->method == GW_METHOD_AUTH)
            continue;
        bool reply = mi->dir == GW_METHOD_DIR_DOWN;
        size_t len = strlen("/sys/+/+/") + strlen(mi->topic_path) + strlen("_reply") + 1;
        if (!(f[k] = malloc(len)))
            goto err;
        snprintf(f[k++], len, "/sys/+/+/%s%s", mi->topic_path, reply ? "_reply" : "");
    }
    if (!(f[k++] = strdup(GW_MQTT_PRESENCE_FILTER)))
        goto err;
    *out = f;
    *count = k;
    return 0;
err:
    for (int i = 0; i < k; i++)
        free(f[i]);
    free(f);
    return -ENOMEM;
}

void gw__mqtt_free_filters(char **f, int count)
{
    for (int i = 0; i < count; i++)
        free(f[i]);
    free(f);
}

static void on_sub_ok(void *ctx, MQTTAsync_successData *resp)
{
    struct gw__mqtt_adapter *a = ctx;
    for (int i = 0; resp && (a->nfilters == 1 || resp->alt.qosList) && i < a->nfilters; i++) {
        int q = a->nfilters > 1 ? resp->alt.qosList[i] : resp->alt.qos;
        if (q == 0x80)
            gw_log(GW_LOG_ERROR, a->base.name,
                   "broker refused subscription %s (does it load "
                   "iotgw_auth.so with this gateway secret?)",
                   a->filters[i]);
    }
    pthread_mutex_lock(&a->lock);
    if (a->link == GW__MQTT_LINK_SUBSCRIBING)
        a->link = GW__MQTT_LINK_UP;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    gw_log(GW_LOG_INFO, a->base.name, "subscribed to device topics on %s", a->uri);
}

static void on_sub_fail(void *ctx, MQTTAsync_failureData *resp)
{
    struct gw__mqtt_adapter *a = ctx;
    gw_log(GW_LOG_WARN, a->base.name, "subscribe failed (code %d): retrying",
           resp ? resp->code : 0);
    pthread_mutex_lock(&a->lock);
    if (a->link == GW__MQTT_LINK_SUBSCRIBING) {
        a->link = GW__MQTT_LINK_CONNECTED;
        a->next_connect_ms = gw__mqtt_now_ms() + 1000; /* doubles as "subscribe not before" */
    }
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

static void link_subscribe(struct gw__mqtt_adapter *a)
{
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    int qos[64];
    int rc = -ENOMEM;

    ro.onSuccess = on_sub_ok;
    ro.onFailure = on_sub_fail;
    ro.context = a;
    if (a->nfilters <= (int)(sizeof(qos) / sizeof(qos[0]))) {
        for (int i = 0; i < a->nfilters; i++)
            qos[i] = 1;
        rc = MQTTAsync_subscribeMany(a->client, a->nfilters, a->filters, qos, &ro);
    }
    if (rc != MQTTASYNC_SUCCESS)
        on_sub_fail(a, NULL);
}

/* ---- connection ---- */

static void link_down_locked(struct gw__mqtt_adapter *a, int64_t delay_ms)
{
    a->link = GW__MQTT_LINK_DOWN;
    a->next_connect_ms = gw__mqtt_now_ms() + delay_ms;
    pthread_cond_broadcast(&a->cond);
}

static void on_connect_ok(void *ctx, MQTTAsync_successData *resp)
{
    struct gw__mqtt_adapter *a = ctx;
    (void)resp;
    pthread_mutex_lock(&a->sess_lock);
    a->epoch++;
    pthread_mutex_unlock(&a->sess_lock);
    pthread_mutex_lock(&a->lock);
    a->link = GW__MQTT_LINK_CONNECTED;
    a->next_connect_ms = 0;
    a->backoff_ms = GW_MQTT_BACKOFF_MIN_MS;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    gw_log(GW_LOG_INFO, a->base.name, "connected to %s as %s", a->uri, a->client_id);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *resp)
{
    struct gw__mqtt_adapter *a = ctx;
    int code = resp ? resp->code : MQTTASYNC_FAILURE;
    pthread_mutex_lock(&a->lock);
    int64_t delay = a->backoff_ms;
    a->backoff_ms = delay * 2 > LINK_BACKOFF_MAX_MS ? LINK_BACKOFF_MAX_MS : delay * 2;
    link_down_locked(a, delay);
    pthread_mutex_unlock(&a->lock);
    if (code == 4 || code == 5)
        gw_log(GW_LOG_ERROR, a->base.name,
               "broker %s refused the gateway account (%s): "
               "its plugin needs the secret of broker.secret",
               a->uri, code == 4 ? "bad user name or password" : "not authorized");
    else
        gw_log(GW_LOG_WARN, a->base.name, "cannot connect to %s (code %d%s%s); retry in %lld ms",
               a->uri, code, resp && resp->message ? ": " : "",
               resp && resp->message ? resp->message : "", (long long)delay);
}

void gw__mqtt_on_connection_lost(void *ctx, char *cause)
{
    struct gw__mqtt_adapter *a = ctx;
    pthread_mutex_lock(&a->lock);
    bool was = link_connected(a->link);
    link_down_locked(a, GW_MQTT_BACKOFF_MIN_MS);
    pthread_mutex_unlock(&a->lock);
    gw_log(GW_LOG_WARN, a->base.name, "lost the broker connection%s%s: every device offline",
           cause ? ": " : "", cause ? cause : "");
    if (was)
        gw__mqtt_sessions_lost(a);
    /* cause is not ours to free (paho 1.3 documents it as always NULL) */
}

static void link_connect(struct gw__mqtt_adapter *a)
{
    MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
    o.keepAliveInterval = a->keepalive_s;
    o.cleansession = 1; /* subscriptions are re-sent after every CONNACK anyway */
    o.maxInflight = a->max_inflight;
    o.username = GW_MQTT_GATEWAY_USER;
    o.password = a->secret;
    o.connectTimeout = 10;
    o.MQTTVersion = MQTTVERSION_3_1_1;
    o.automaticReconnect = 0; /* the link thread reconnects: it also covers the first try */
    o.onSuccess = on_connect_ok;
    o.onFailure = on_connect_fail;
    o.context = a;
    int rc = MQTTAsync_connect(a->client, &o);
    if (rc != MQTTASYNC_SUCCESS) {
        MQTTAsync_failureData fd = {.code = rc, .message = "connect not started"};
        on_connect_fail(a, &fd);
    }
}

/* ---- downstream ---- */

struct outgoing {
    struct gw_msg *msg; /* the popped queue head; NULL when none */
    char topic[GW_TOPIC_MAX];
    uint8_t *payload; /* encoded once, kept across retries */
    size_t len;
};

static void outgoing_drop(struct outgoing *o)
{
    gw_msg_unref(o->msg);
    free(o->payload);
    o->msg = NULL;
    o->payload = NULL;
}

static void on_pub_ok(void *ctx, MQTTAsync_successData *resp)
{
    struct gw__mqtt_adapter *a = ctx;
    (void)resp;
    gw_adapter_count(&a->ctr.msgs_out);
    pthread_mutex_lock(&a->lock);
    pthread_cond_broadcast(&a->cond); /* room in paho's buffer */
    pthread_mutex_unlock(&a->lock);
}

static void on_pub_fail(void *ctx, MQTTAsync_failureData *resp)
{
    struct gw__mqtt_adapter *a = ctx;
    gw_adapter_count(&a->ctr.dropped_out);
    gw_log(GW_LOG_WARN, a->base.name, "publish lost before PUBACK (code %d)",
           resp ? resp->code : 0);
    pthread_mutex_lock(&a->lock);
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

/* Encodes the head once: topic from its identity, method and reply-ness; payload with the
 * adapter's serializer. 0 or a GW_E_* / -errno code. */
static int encode_outgoing(struct gw__mqtt_adapter *a, struct outgoing *o)
{
    int rc = gw_topic_format_msg(o->topic, sizeof(o->topic), o->msg);
    if (rc == 0)
        rc = a->codec->encode(o->msg, &o->payload, &o->len);
    return rc;
}

/* Hands the encoded head to paho (which copies topic and payload). Paho's return code. */
static int publish_outgoing(struct gw__mqtt_adapter *a, struct outgoing *o)
{
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    MQTTAsync_message pm = MQTTAsync_message_initializer;
    pm.payload = o->payload;
    pm.payloadlen = (int)o->len;
    /* A reply confirms a request the device already had acknowledged by the broker; at QoS 0
     * paho assigns no message id (its linear id search was the gateway's hottest spot under
     * a stream of QoS 1 reports, bench/README.md) and the broker keeps no in-flight state. A
     * clean-session device that drops its link loses a QoS 1 reply just the same. */
    pm.qos = gw_msg_is_reply(o->msg) ? a->reply_qos : 1;
    pm.retained = 0;
    ro.onSuccess = on_pub_ok;
    ro.onFailure = on_pub_fail;
    ro.context = a;
    return MQTTAsync_sendMessage(a->client, o->topic, &pm, &ro);
}

static void drop_outgoing(struct gw__mqtt_adapter *a, struct outgoing *o, const char *why, int rc)
{
    gw_adapter_count(&a->ctr.dropped_out);
    gw_log(GW_LOG_WARN, a->base.name, "dropped %s to %s/%s: %s (%d)", gw_msg_method_name(o->msg),
           o->msg->product_key, o->msg->device_name, why, rc);
    outgoing_drop(o);
}

/* Called with lock held; returns with it held. */
static void send_head(struct gw__mqtt_adapter *a, struct outgoing *o, int64_t *blocked_until)
{
    int rc;
    if (!o->msg) {
        o->msg = a->queue[a->qhead];
        a->queue[a->qhead] = NULL;
        a->qhead = (a->qhead + 1) % (size_t)a->max_buffered;
        a->qlen--;
        a->sending = true;
    }
    pthread_mutex_unlock(&a->lock);
    if (!o->payload && (rc = encode_outgoing(a, o)) != 0) {
        drop_outgoing(a, o, gw_strerror(rc), rc);
    } else if ((rc = publish_outgoing(a, o)) == MQTTASYNC_SUCCESS) {
        outgoing_drop(o);
    } else if (rc == MQTTASYNC_MAX_BUFFERED_MESSAGES || rc == MQTTASYNC_MAX_MESSAGES_INFLIGHT ||
               rc == MQTTASYNC_DISCONNECTED) {
        *blocked_until = gw__mqtt_now_ms() + LINK_BLOCKED_RETRY_MS; /* keep it: retry */
    } else {
        drop_outgoing(a, o, "paho refused the publish", rc);
    }
    pthread_mutex_lock(&a->lock);
    a->sending = o->msg != NULL;
}

void *gw__mqtt_link_main(void *arg)
{
    struct gw__mqtt_adapter *a = arg;
    struct outgoing o = {0};
    int64_t blocked_until = 0;

    pthread_mutex_lock(&a->lock);
    while (!a->stopping) {
        int64_t now = gw__mqtt_now_ms();
        if (a->link == GW__MQTT_LINK_DOWN && now >= a->next_connect_ms) {
            a->link = GW__MQTT_LINK_CONNECTING;
            pthread_mutex_unlock(&a->lock);
            (void)gw__mqtt_drain(a); /* a pending ALL_OFFLINE goes before the next link */
            link_connect(a);
            pthread_mutex_lock(&a->lock);
            continue;
        }
        if (a->link == GW__MQTT_LINK_CONNECTED && now >= a->next_connect_ms) {
            a->link = GW__MQTT_LINK_SUBSCRIBING;
            pthread_mutex_unlock(&a->lock);
            (void)gw__mqtt_drain(a);
            link_subscribe(a);
            pthread_mutex_lock(&a->lock);
            continue;
        }
        if (link_connected(a->link) && (o.msg || a->qlen > 0) && now >= blocked_until) {
            blocked_until = 0;
            send_head(a, &o, &blocked_until);
            continue;
        }
        pthread_mutex_unlock(&a->lock);
        bool parked = gw__mqtt_drain(a);
        pthread_mutex_lock(&a->lock);
        if (a->stopping)
            break;
        int64_t wake = now + (parked ? LINK_PARK_RETRY_MS : LINK_IDLE_WAKE_MS);
        if (a->link == GW__MQTT_LINK_DOWN && a->next_connect_ms < wake)
            wake = a->next_connect_ms;
        if (blocked_until && blocked_until < wake)
            wake = blocked_until;
        /* A PUBACK (on_pub_ok) or a submit broadcasts: a blocked head is retried at once. */
        gw__mqtt_wait_until(a, wake);
        blocked_until = 0;
    }
    a->sending = false;
    pthread_mutex_unlock(&a->lock);
    outgoing_drop(&o);
    return NULL;
}

/* ---- paho and broker callbacks ---- */

int gw__mqtt_on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    struct gw__mqtt_adapter *a = ctx;
    size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    const void *payload = m->payload ? m->payload : "";
    int rc = gw__mqtt_on_publish(a, topic, tl, payload, m->payload ? (size_t)m->payloadlen : 0);
    if (rc == 0)
        return 0; /* not consumed: paho keeps both and calls again */
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

void gw__mqtt_on_broker_exit(void *ctx)
{
    gw__mqtt_sessions_lost(ctx);
}

void gw__mqtt_on_broker_ready(void *ctx)
{
    struct gw__mqtt_adapter *a = ctx;
    pthread_mutex_lock(&a->lock);
    a->backoff_ms = GW_MQTT_BACKOFF_MIN_MS;
    if (a->link == GW__MQTT_LINK_DOWN)
        a->next_connect_ms = 0; /* reconnect now instead of after the grown backoff */
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}
