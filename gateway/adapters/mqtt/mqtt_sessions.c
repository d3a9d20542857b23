/*
 * DESIGN: the MQTT adapter's session table and its ordered path to the core.
 *
 * The session table holds one entry per device the broker reported online (key pk/dn, the
 * composed seq of its current connection, whether it subscribed). It answers submit's "is
 * this device here" and gives upstream messages their session handle.
 *
 * Everything the adapter posts to the core (device messages, session events, ALL_OFFLINE)
 * goes through gw__mqtt_deliver in arrival order. When the core's queue is full (-EAGAIN)
 * the item is parked in a FIFO and every later item queues behind it, so order holds; the
 * link thread drains the FIFO (gw__mqtt_drain), posting outside sess_lock so a slow post
 * (the core lets ALL_OFFLINE wait for room) never stalls paho's thread. Paho acknowledges a
 * QoS 1 PUBLISH before it calls us, so nothing upstream is retransmitted by the broker: the
 * FIFO is what keeps a message. It holds at most max_buffered items (ALL_OFFLINE markers are
 * not counted); beyond that the paho callback returns 0 and paho keeps the message.
 *
 * Threads: paho's callback thread and the link thread, under sess_lock; the post itself runs
 * unlocked only while `draining` is set, which makes every arrival park behind it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "mqtt_internal.h"

/* ---- session table ---- */

#define SESSIONS_MIN_BUCKETS 64

static uint64_t key_hash(const char *pk, const char *dn)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over pk '\0' dn */
    for (const char *p = pk; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0xffu) * 1099511628211ULL;
    for (const char *p = dn; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

static bool key_equal(const struct gw__mqtt_session *e, const char *pk, const char *dn)
{
    size_t pl = strlen(pk);
    return memcmp(e->key, pk, pl + 1) == 0 && strcmp(e->key + pl + 1, dn) == 0;
}

int gw__mqtt_sessions_init(struct gw__mqtt_sessions *s)
{
    s->buckets = calloc(SESSIONS_MIN_BUCKETS, sizeof(*s->buckets));
    s->nbuckets = SESSIONS_MIN_BUCKETS;
    s->count = 0;
    return s->buckets ? 0 : -ENOMEM;
}

void gw__mqtt_sessions_clear(struct gw__mqtt_sessions *s)
{
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct gw__mqtt_session *e = s->buckets[i];
        while (e) {
            struct gw__mqtt_session *next = e->next;
            free(e);
            e = next;
        }
        s->buckets[i] = NULL;
    }
    s->count = 0;
}

void gw__mqtt_sessions_fini(struct gw__mqtt_sessions *s)
{
    if (!s->buckets)
        return;
    gw__mqtt_sessions_clear(s);
    free(s->buckets);
    s->buckets = NULL;
}

struct gw__mqtt_session *gw__mqtt_sessions_find(struct gw__mqtt_sessions *s, const char *pk,
                                                const char *dn)
{
    struct gw__mqtt_session *e = s->buckets[key_hash(pk, dn) & (s->nbuckets - 1)];
    while (e && !key_equal(e, pk, dn))
        e = e->next;
    return e;
}

/* Doubles the bucket array when the load passes 1; a failed grow keeps the old one. */
static void sessions_grow(struct gw__mqtt_sessions *s)
{
    size_t n = s->nbuckets * 2;
    struct gw__mqtt_session **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct gw__mqtt_session *e = s->buckets[i];
        while (e) {
            struct gw__mqtt_session *next = e->next;
            const char *pk = e->key;
            size_t b = key_hash(pk, pk + strlen(pk) + 1) & (n - 1);
            e->next = nb[b];
            nb[b] = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = nb;
    s->nbuckets = n;
}

struct gw__mqtt_session *gw__mqtt_sessions_get(struct gw__mqtt_sessions *s, const char *pk,
                                               const char *dn)
{
    struct gw__mqtt_session *e = gw__mqtt_sessions_find(s, pk, dn);
    if (e)
        return e;
    size_t pl = strlen(pk), dl = strlen(dn);
    e = calloc(1, sizeof(*e) + pl + dl + 2);
    if (!e)
        return NULL;
    memcpy(e->key, pk, pl + 1);
    memcpy(e->key + pl + 1, dn, dl + 1);
    if (s->count >= s->nbuckets)
        sessions_grow(s);
    size_t b = key_hash(pk, dn) & (s->nbuckets - 1);
    e->next = s->buckets[b];
    s->buckets[b] = e;
    s->count++;
    return e;
}

void gw__mqtt_sessions_remove(struct gw__mqtt_sessions *s, struct gw__mqtt_session *e)
{
    const char *pk = e->key;
    struct gw__mqtt_session **pp =
        &s->buckets[key_hash(pk, pk + strlen(pk) + 1) & (s->nbuckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (!*pp)
        return;
    *pp = e->next;
    free(e);
    s->count--;
}

uint64_t gw__mqtt_compose_seq(uint64_t epoch, uint64_t broker_seq)
{
    return (epoch << GW_MQTT_SEQ_BITS) | (broker_seq & ((1ULL << GW_MQTT_SEQ_BITS) - 1));
}

/* ---- ordered delivery to the core ---- */

static int post_item(struct gw__mqtt_adapter *a, const struct gw__mqtt_item *it)
{
    if (it->msg) {
        /* The core gives a message its id on acceptance only while the poster holds the sole
         * reference; this adapter keeps one for a retry, so it assigns the id itself, on the
         * first attempt (when the item's reference is still the only one). */
        if (it->msg->id[0] == '\0')
            gw_msg_assign_id(it->msg);
        return gw_core_post(a->base.core, gw_msg_ref(it->msg)); /* takes that reference */
    }
    return gw_core_post_session(a->base.core, &a->base, it->ev, it->pk, it->dn, it->seq, it->seq);
}

/* Counts and logs the outcome of a post that did not say -EAGAIN. */
static void posted(struct gw__mqtt_adapter *a, const struct gw__mqtt_item *it, int rc)
{
    if (rc == 0) {
        if (it->msg)
            gw_adapter_count(&a->ctr.msgs_in);
        return;
    }
    if (it->msg)
        gw_adapter_count(&a->ctr.dropped_in);
    gw_log(GW_LOG_WARN, a->base.name, "core refused %s for %s/%s: %s",
           it->msg ? gw_msg_method_name(it->msg) : "a session event", it->pk, it->dn,
           gw_strerror(rc));
}

static int park(struct gw__mqtt_adapter *a, const struct gw__mqtt_item *it)
{
    struct gw__mqtt_item *p = malloc(sizeof(*p));
    if (!p)
        return -ENOMEM;
    *p = *it;
    p->next = NULL;
    if (p->msg)
        gw_msg_ref(p->msg);
    if (a->park_tail)
        a->park_tail->next = p;
    else
        a->park_head = p;
    a->park_tail = p;
    if (p->msg || p->ev != GW_SESSION_ALL_OFFLINE)
        a->park_count++;
    return 0;
}

static void unpark_head(struct gw__mqtt_adapter *a)
{
    struct gw__mqtt_item *p = a->park_head;
    a->park_head = p->next;
    if (!a->park_head)
        a->park_tail = NULL;
    if (p->msg || p->ev != GW_SESSION_ALL_OFFLINE)
        a->park_count--;
    gw_msg_unref(p->msg);
    free(p);
}

bool gw__mqtt_deliver_full(const struct gw__mqtt_adapter *a)
{
    return (a->park_head || a->draining) && a->park_count >= (size_t)a->max_buffered;
}

void gw__mqtt_deliver(struct gw__mqtt_adapter *a, const struct gw__mqtt_item *it)
{
    int rc;
    if (a->closed)
        return;
    if (!a->park_head && !a->draining) {
        rc = post_item(a, it);
        if (rc != -EAGAIN) {
            posted(a, it, rc);
            return;
        }
    }
    if ((rc = park(a, it)) != 0) {
        if (it->msg)
            gw_adapter_count(&a->ctr.dropped_in);
        gw_log(GW_LOG_ERROR, a->base.name, "out of memory: lost an event of %s/%s", it->pk, it->dn);
    }
}

bool gw__mqtt_drain(struct gw__mqtt_adapter *a)
{
    pthread_mutex_lock(&a->sess_lock);
    if (a->draining) {
        pthread_mutex_unlock(&a->sess_lock);
        return true;
    }
    a->draining = true;
    while (a->park_head && !a->closed) {
        const struct gw__mqtt_item *it = a->park_head; /* only we unpark while draining */
        pthread_mutex_unlock(&a->sess_lock);
        int rc = post_item(a, it);
        pthread_mutex_lock(&a->sess_lock);
        if (rc == -EAGAIN)
            break;
        posted(a, it, rc);
        unpark_head(a);
    }
    a->draining = false;
    bool more = a->park_head != NULL && !a->closed;
    pthread_mutex_unlock(&a->sess_lock);
    return more;
}

void gw__mqtt_park_clear(struct gw__mqtt_adapter *a)
{
    while (a->park_head)
        unpark_head(a);
}

void gw__mqtt_sessions_lost(struct gw__mqtt_adapter *a)
{
    const struct gw__mqtt_item all = {.ev = GW_SESSION_ALL_OFFLINE};
    pthread_mutex_lock(&a->sess_lock);
    gw__mqtt_sessions_clear(&a->sessions);
    /* Never posted from here (paho's or the supervisor's thread): the core may make
     * ALL_OFFLINE wait for room. Parked, it still precedes whatever the next link brings. */
    if (!a->closed &&
        !(a->park_tail && !a->park_tail->msg && a->park_tail->ev == GW_SESSION_ALL_OFFLINE) &&
        park(a, &all) != 0)
        gw_log(GW_LOG_ERROR, a->base.name, "out of memory: all-offline not posted");
    pthread_mutex_unlock(&a->sess_lock);
    pthread_mutex_lock(&a->lock);
    pthread_cond_broadcast(&a->cond); /* the link thread drains */
    pthread_mutex_unlock(&a->lock);
}
