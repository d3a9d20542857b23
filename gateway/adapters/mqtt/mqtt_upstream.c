/*
 * DESIGN: MQTT upstream: what the broker delivers on the gateway's subscription becomes a
 * gw_msg or a session event for the core (through gw__mqtt_deliver, mqtt_sessions.c).
 *
 * Presence ordering (gateway/plugin/plugin_core.h) is applied here against the session
 * table, at arrival:
 *  - online(seq) applies unless an online with a larger seq came first (takeover order);
 *  - subscribed(seq) and offline(seq) apply only to the current seq; a subscribed for a
 *    device we never saw online (its online came before our subscription) adds it;
 *  - seqs are composed with the link epoch (gw__mqtt_compose_seq), so they only grow even
 *    though a restarted broker counts from 1 again.
 * Device publishes: the topic gives identity, method and reply-ness; the payload is decoded
 * by the binary codec when it starts with 0x7E, else JSON; payload and topic must agree.
 * Bad topics and payloads are counted (dropped_in) and logged (gw_log rate-limits repeats).
 *
 * Threads: paho's callback thread; the table and delivery under sess_lock; never blocks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_topic.h"
#include "gw_util.h"
#include "mqtt_internal.h"

/* ---- presence ---- */

enum presence_event { PRESENCE_ONLINE, PRESENCE_SUBSCRIBED, PRESENCE_OFFLINE };

/* {"event":"online"|"subscribed"|"offline","seq":N} → ev, seq. */
static int parse_presence(const void *payload, size_t len, enum presence_event *ev, uint64_t *seq)
{
    cJSON *root = NULL;
    int64_t n;
    int rc = gw_json_parse_strict(payload, len, &root);
    if (rc != 0)
        return rc;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "event");
    rc = GW_E_BAD_FIELD;
    if (!cJSON_IsString(e))
        goto out;
    if (strcmp(e->valuestring, "online") == 0)
        *ev = PRESENCE_ONLINE;
    else if (strcmp(e->valuestring, "subscribed") == 0)
        *ev = PRESENCE_SUBSCRIBED;
    else if (strcmp(e->valuestring, "offline") == 0)
        *ev = PRESENCE_OFFLINE;
    else
        goto out;
    /* 2^53: the largest integer a JSON double carries exactly */
    rc = gw_json_int(cJSON_GetObjectItemCaseSensitive(root, "seq"), 1, (int64_t)1 << 53, &n);
    if (rc == 0)
        *seq = (uint64_t)n;
out:
    cJSON_Delete(root);
    return rc;
}

/* "$iotgw/presence/{pk}/{dn}" → pk, dn (validated like a device topic). */
static int presence_identity(const char *topic, size_t len, char *pk, char *dn)
{
    const size_t pre = sizeof(GW_MQTT_PRESENCE_PREFIX) - 1;
    const char *p = topic + pre, *end = topic + len;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    if (!slash || slash == p || slash + 1 >= end ||
        memchr(slash + 1, '/', (size_t)(end - slash - 1)))
        return GW_E_BAD_TOPIC;
    size_t pl = (size_t)(slash - p), dl = (size_t)(end - slash - 1);
    if (pl > GW_MSG_PK_MAX || dl > GW_MSG_DN_MAX || memchr(p, '\0', (size_t)(end - p)))
        return GW_E_BAD_TOPIC;
    if (!gw_utf8_valid(p, pl) || !gw_utf8_valid(slash + 1, dl))
        return GW_E_BAD_UTF8;
    memcpy(pk, p, pl);
    pk[pl] = '\0';
    memcpy(dn, slash + 1, dl);
    dn[dl] = '\0';
    return 0;
}

static int on_presence(struct gw__mqtt_adapter *a, const char *topic, size_t topic_len,
                       const void *payload, size_t len)
{
    char pk[GW_MSG_PK_MAX + 1], dn[GW_MSG_DN_MAX + 1];
    enum presence_event ev;
    uint64_t bseq;
    int rc = presence_identity(topic, topic_len, pk, dn);
    if (rc == 0)
        rc = parse_presence(payload, len, &ev, &bseq);
    if (rc != 0) {
        gw_adapter_count(&a->ctr.dropped_in);
        gw_log(GW_LOG_WARN, a->base.name, "bad presence message on %.*s: %s", (int)topic_len, topic,
               gw_strerror(rc));
        return 1;
    }

    pthread_mutex_lock(&a->sess_lock);
    if (gw__mqtt_deliver_full(a)) {
        pthread_mutex_unlock(&a->sess_lock);
        return 0; /* paho keeps it; decided again when it calls back */
    }
    uint64_t seq = gw__mqtt_compose_seq(a->epoch, bseq);
    struct gw__mqtt_session *e = gw__mqtt_sessions_find(&a->sessions, pk, dn);
    struct gw__mqtt_item it = {.seq = seq};
    switch (ev) {
    case PRESENCE_ONLINE:
        if (e && e->seq > seq)
            goto out; /* a takeover's newer connection reported first */
        it.ev = GW_SESSION_ONLINE;
        break;
    case PRESENCE_SUBSCRIBED:
        if (e && e->seq != seq)
            goto out;
        it.ev = GW_SESSION_REACHABLE;
        break;
    default:
        if (!e || e->seq != seq)
            goto out; /* an older connection of a device that reconnected */
        it.ev = GW_SESSION_OFFLINE;
        break;
    }
    if (it.ev == GW_SESSION_OFFLINE) {
        gw__mqtt_sessions_remove(&a->sessions, e);
    } else if ((e = gw__mqtt_sessions_get(&a->sessions, pk, dn)) != NULL) {
        /* a repeated online of the same connection keeps what its subscribe established */
        e->reachable = it.ev == GW_SESSION_REACHABLE || (e->seq == seq && e->reachable);
        e->seq = seq;
    } else {
        gw_log(GW_LOG_ERROR, a->base.name, "out of memory tracking %s/%s", pk, dn);
    }
    memcpy(it.pk, pk, sizeof(it.pk));
    memcpy(it.dn, dn, sizeof(it.dn));
    gw__mqtt_deliver(a, &it);
out:
    pthread_mutex_unlock(&a->sess_lock);
    return 1;
}

/* ---- device messages ---- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A device that answers on a _reply topic without a code gets code 0 (the reference's rule);
 * the result is a new message, m is released.
 */
static int force_reply(struct gw_msg **m)
{
    const struct gw_msg *src = *m;
    struct gw_msg_fields f = {
        .method = src->method,
        .request_id = src->request_id,
        .identity = {src->product_key, src->device_name, src->device_id},
        .params = src->params ? cJSON_Duplicate(src->params, 1) : NULL,
        .data = src->data ? cJSON_Duplicate(src->data, 1) : NULL,
        .has_code = true,
        .code = 0,
        .msg = src->msg,
        .report_time = src->report_time,
    };
    struct gw_msg *out = NULL;
    if ((src->params && !f.params) || (src->data && !f.data)) {
        cJSON_Delete(f.params);
        cJSON_Delete(f.data);
        return -ENOMEM;
    }
    int rc = gw_msg_new(&f, &out);
    gw_msg_unref(*m);
    *m = out;
    return rc;
}

/* Decodes a device publish into *out (identity from the topic). 0 or an error code. */
static int decode_device(const struct gw_topic *t, const void *payload, size_t len,
                         struct gw_msg **out)
{
    const struct gw_msg_identity ident = {t->product_key, t->device_name, 0};
    const uint8_t *p = payload;
    /* Devices of one broker may speak either serializer: the binary magic decides. */
    const struct gw_codec_ops *codec =
        len > 0 && p[0] == GW_CODEC_BINARY_MAGIC ? &gw_codec_binary : &gw_codec_json;
    struct gw_msg *m = NULL;
    int rc;

    *out = NULL;
    if (!gw_method_is_upstream(t->method, t->is_reply))
        return GW_E_BAD_TOPIC; /* not a topic devices publish on */
    if ((rc = codec->decode(p, len, &ident, &m)) != 0)
        return rc;
    if (m->method != t->method || (m->has_code && !t->is_reply)) {
        gw_msg_unref(m);
        return GW_E_BAD_FIELD; /* payload and topic disagree on what this is */
    }
    if (t->is_reply && !m->has_code && (rc = force_reply(&m)) != 0)
        return rc;
    *out = m;
    return 0;
}

static int on_device_publish(struct gw__mqtt_adapter *a, const char *topic, size_t topic_len,
                             const void *payload, size_t len)
{
    struct gw_topic t;
    struct gw_msg *m = NULL;
    int rc = gw_topic_parse(topic, topic_len, &t);
    if (rc == 0)
        rc = decode_device(&t, payload, len, &m);
    if (rc != 0) {
        gw_adapter_count(&a->ctr.dropped_in);
        gw_log(GW_LOG_WARN, a->base.name, "dropped publish on %.*s (%zu bytes): %s",
               (int)(topic_len > 200 ? 200 : topic_len), topic, len, gw_strerror(rc));
        return 1;
    }
    if (m->report_time == 0)
        m->report_time = wall_ms();

    pthread_mutex_lock(&a->sess_lock);
    if (gw__mqtt_deliver_full(a)) {
        pthread_mutex_unlock(&a->sess_lock);
        gw_msg_unref(m);
        return 0; /* paho keeps it and calls again */
    }
    struct gw__mqtt_session *e = gw__mqtt_sessions_find(&a->sessions, t.product_key, t.device_name);
    m->origin.adapter = &a->base;
    m->origin.session = e ? e->seq : 0;
    struct gw__mqtt_item it = {.msg = m};
    memcpy(it.pk, t.product_key, sizeof(it.pk));
    memcpy(it.dn, t.device_name, sizeof(it.dn));
    gw__mqtt_deliver(a, &it);
    pthread_mutex_unlock(&a->sess_lock);
    gw_msg_unref(m); /* deliver took its own reference */
    return 1;
}

int gw__mqtt_on_publish(struct gw__mqtt_adapter *a, const char *topic, size_t topic_len,
                        const void *payload, size_t len)
{
    const size_t pre = sizeof(GW_MQTT_PRESENCE_PREFIX) - 1;
    if (topic_len > pre && memcmp(topic, GW_MQTT_PRESENCE_PREFIX, pre) == 0)
        return on_presence(a, topic, topic_len, payload, len);
    return on_device_publish(a, topic, topic_len, payload, len);
}
