/*
 * DESIGN: MQTT devices through the broker (DESIGN §4 credentials and topics, §7.5): one paho
 * MQTTAsync client per device, MQTT 3.1.1, clean session. The link is UP once the device has
 * subscribed to /sys/{pk}/{dn}/# (the gateway pushes upgrades only after that SUBSCRIBE).
 * Upstream: /sys/{pk}/{dn}/{method path}; replies to downstream requests on ..._reply.
 *
 * Threads: paho runs its callbacks on its own thread. They touch nothing but the immutable
 * fields of struct mq_conn (s, d, gen) and post a struct sim_ev (sim_ev_post); everything
 * else happens on the main thread in sim_mqtt_event. A client is never destroyed from its
 * own callbacks, nor right after one posted an event (paho may still be unwinding it): its
 * conn goes to a graveyard and is destroyed GRAVE_MS later by sim_mqtt_reap.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <MQTTAsync.h>

#include "gw_auth.h"
#include "sim.h"

#define GRAVE_MS 2000
#define KEEPALIVE_S 60
#define DISCONNECT_WAIT_MS 1000

struct mq_conn {
    MQTTAsync c;
    struct sim *s;
    struct sim_dev *d; /* immutable; d->gen tells whether the device still uses us */
    uint32_t gen;
    bool closing;      /* disconnect asked (main thread) */
    int64_t grave_ms;  /* when it may be destroyed */
    struct mq_conn *next_grave;
    char base[SIM_PK_MAX + SIM_DN_MAX + 8]; /* "/sys/pk/dn/" */
};

static char mq_uri[SIM_URL_MAX];
static struct mq_conn *grave_head, *grave_tail;

static int mq_init(struct sim *s, const char *endpoint)
{
    (void)s;
    snprintf(mq_uri, sizeof(mq_uri), "%s", endpoint);
    return 0;
}

static void post(struct mq_conn *m, enum sim_ev_type type, int code)
{
    struct sim_ev *ev = calloc(1, sizeof(*ev));

    if (!ev)
        return; /* out of memory on paho's thread: the device stays connecting */
    ev->d = m->d;
    ev->conn = m;
    ev->gen = m->gen;
    ev->type = type;
    ev->code = code;
    ev->t_ms = sim_now_ms();
    sim_ev_post(m->s, ev);
}

/* ---- paho thread ---- */

static void on_lost(void *ctx, char *cause)
{
    (void)cause;
    post(ctx, SIM_EV_DOWN, 0);
}

static int on_msg(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
    struct mq_conn *m = ctx;
    struct sim_ev *ev = calloc(1, sizeof(*ev));
    size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);

    if (ev) {
        ev->d = m->d;
        ev->conn = m;
        ev->gen = m->gen;
        ev->type = SIM_EV_MSG;
        ev->t_ms = sim_now_ms();
        ev->topic = strndup(topic, tl);
        ev->payload = malloc((size_t)msg->payloadlen + 1);
        if (ev->payload) {
            memcpy(ev->payload, msg->payload, (size_t)msg->payloadlen);
            ev->payload[msg->payloadlen] = '\0';
            ev->len = (size_t)msg->payloadlen;
        }
        sim_ev_post(m->s, ev);
    }
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    return 1;
}

static void on_sub_ok(void *ctx, MQTTAsync_successData *r)
{
    (void)r;
    post(ctx, SIM_EV_UP, 0);
}

static void on_fail(void *ctx, MQTTAsync_failureData *r)
{
    post(ctx, SIM_EV_DOWN, r ? r->code : -1);
}

static void on_conn_ok(void *ctx, MQTTAsync_successData *r)
{
    static const char *const tails[] = { "thing/property/set", "thing/service/+",
                                         "thing/+/post_reply", "thing/ota/+" };
    enum { NF = sizeof(tails) / sizeof(tails[0]) };
    struct mq_conn *m = ctx;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    char filters[NF][sizeof(m->base) + 24], *fp[NF];
    int qos[NF];

    (void)r;
    for (int i = 0; i < NF; i++) {
        snprintf(filters[i], sizeof(filters[i]), "%s%s", m->base, tails[i]);
        fp[i] = filters[i];
        qos[i] = 1;
    }
    ro.onSuccess = on_sub_ok;
    ro.onFailure = on_fail;
    ro.context = m;
    if (MQTTAsync_subscribeMany(m->c, NF, fp, qos, &ro) != MQTTASYNC_SUCCESS)
        post(m, SIM_EV_DOWN, -1);
}

static void on_disc_done(void *ctx, MQTTAsync_successData *r)
{
    (void)r;
    post(ctx, SIM_EV_CLOSED, 0);
}

static void on_disc_fail(void *ctx, MQTTAsync_failureData *r)
{
    (void)r;
    post(ctx, SIM_EV_CLOSED, 0);
}

/* ---- main thread ---- */

static void bury(struct mq_conn *m)
{
    if (m->grave_ms)
        return;
    m->s->conns_alive--; /* the device side is done with it; only paho's grace is left */
    m->grave_ms = sim_now_ms() + GRAVE_MS;
    m->next_grave = NULL;
    if (grave_tail)
        grave_tail->next_grave = m;
    else
        grave_head = m;
    grave_tail = m;
}

void sim_mqtt_reap(struct sim *s, bool all)
{
    (void)s;
    int64_t now = sim_now_ms();

    while (grave_head && (all || grave_head->grave_ms <= now)) {
        struct mq_conn *m = grave_head;

        grave_head = m->next_grave;
        if (!grave_head)
            grave_tail = NULL;
        MQTTAsync_destroy(&m->c);
        free(m);
    }
}

/* The device stops using m (it may still be connected: disconnect it first). */
static void detach(struct mq_conn *m)
{
    if (m->d->conn == m)
        m->d->conn = NULL;
    if (!m->closing) {
        MQTTAsync_disconnectOptions dopt = MQTTAsync_disconnectOptions_initializer;

        m->closing = true;
        dopt.timeout = DISCONNECT_WAIT_MS; /* lets queued QoS 1 reports go out first */
        dopt.onSuccess = on_disc_done;
        dopt.onFailure = on_disc_fail;
        dopt.context = m;
        if (MQTTAsync_isConnected(m->c) && MQTTAsync_disconnect(m->c, &dopt) == MQTTASYNC_SUCCESS)
            return; /* buried when on_disc_* posts CLOSED */
    }
    bury(m);
}

void sim_mqtt_event(struct sim *s, struct sim_ev *ev)
{
    struct mq_conn *m = ev->conn;
    struct sim_dev *d = ev->d;
    bool current = d->conn == m && ev->gen == d->gen && !m->closing;
    cJSON *msg;

    (void)s;
    switch (ev->type) {
    case SIM_EV_UP:
        if (current)
            sim_dev_link_up(d);
        break;
    case SIM_EV_DOWN:
        if (current) {
            detach(m);
            sim_dev_link_down(d, ev->code ? "MQTT connect/subscribe refused" : "MQTT link lost");
        } else if (m->closing) {
            bury(m);
        }
        break;
    case SIM_EV_CLOSED:
        bury(m);
        break;
    case SIM_EV_MSG:
        if (!current || !ev->payload)
            break;
        msg = cJSON_ParseWithLength(ev->payload, ev->len);
        if (msg)
            sim_dev_on_message(d, msg, ev->t_ms);
        else
            sim_problem(d->sim, "%s/%s: mqtt: payload on %s is not JSON", d->pk, d->dn,
                        ev->topic ? ev->topic : "?");
        cJSON_Delete(msg);
        break;
    }
}

static int mq_connect(struct sim_dev *d)
{
    struct sim *s = d->sim;
    struct mq_conn *m = calloc(1, sizeof(*m));
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
    MQTTAsync_connectOptions cp = MQTTAsync_connectOptions_initializer;
    char cid[SIM_PK_MAX + SIM_DN_MAX + 2], user[SIM_PK_MAX + SIM_DN_MAX + 2], pw[65];
    int rc;

    if (!m)
        return -ENOMEM;
    m->s = s;
    m->d = d;
    m->gen = d->gen;
    snprintf(m->base, sizeof(m->base), "/sys/%s/%s/", d->pk, d->dn);
    snprintf(cid, sizeof(cid), "%s.%s", d->pk, d->dn);
    snprintf(user, sizeof(user), "%s&%s", d->dn, d->pk);
    if (gw_auth_password(d->pk, d->dn, d->secret, pw) != 0) {
        free(m);
        return -EINVAL;
    }
    co.MQTTVersion = MQTTVERSION_3_1_1;
    co.sendWhileDisconnected = 0;
    co.maxBufferedMessages = 1000;
    rc = MQTTAsync_createWithOptions(&m->c, mq_uri, cid, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
    if (rc != MQTTASYNC_SUCCESS) {
        free(m);
        return -EINVAL;
    }
    s->conns_alive++;
    MQTTAsync_setCallbacks(m->c, m, on_lost, on_msg, NULL);
    cp.keepAliveInterval = KEEPALIVE_S;
    cp.cleansession = 1;
    cp.username = user;
    cp.password = pw;
    cp.connectTimeout = 10;
    cp.maxInflight = 100;
    cp.MQTTVersion = MQTTVERSION_3_1_1;
    cp.onSuccess = on_conn_ok;
    cp.onFailure = on_fail;
    cp.context = m;
    d->conn = m;
    rc = MQTTAsync_connect(m->c, &cp);
    if (rc != MQTTASYNC_SUCCESS) {
        d->conn = NULL;
        m->closing = true;
        bury(m);
        return -EIO;
    }
    return 0;
}

static int publish(struct mq_conn *m, const char *topic, char *text, int qos)
{
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    int rc;

    if (!text)
        return -ENOMEM;
    msg.payload = text;
    msg.payloadlen = (int)strlen(text);
    msg.qos = qos;
    rc = MQTTAsync_sendMessage(m->c, topic, &msg, NULL);
    free(text);
    return rc == MQTTASYNC_SUCCESS ? 0 : -EAGAIN;
}

static int mq_send(struct sim_dev *d, const char *id, const char *method, const cJSON *params)
{
    struct mq_conn *m = d->conn;
    char topic[256], path[96];

    if (!m)
        return -ENOTCONN;
    sim_method_path(method, path, sizeof(path));
    snprintf(topic, sizeof(topic), "%s%s", m->base, path);
    return publish(m, topic, sim_msg_text(id, method, params, -1), (int)d->sim->o.qos);
}

static int mq_reply(struct sim_dev *d, const char *id, const char *method, int code)
{
    struct mq_conn *m = d->conn;
    char topic[256], path[96];

    if (!m)
        return -ENOTCONN;
    sim_method_path(method, path, sizeof(path));
    snprintf(topic, sizeof(topic), "%s%s_reply", m->base, path);
    return publish(m, topic, sim_msg_text(id, method, NULL, code), 1);
}

static void mq_disconnect(struct sim_dev *d)
{
    struct mq_conn *m = d->conn;

    if (m)
        detach(m);
}

static void mq_fini(struct sim *s)
{
    sim_mqtt_reap(s, true);
}

const struct sim_proto_ops sim_mqtt_ops = {
    .name = "mqtt",
    .init = mq_init,
    .connect = mq_connect,
    .send = mq_send,
    .reply = mq_reply,
    .disconnect = mq_disconnect,
    .fini = mq_fini,
};
