/*
 * DESIGN: the session table: for each device, the adapter and session handle its downstream
 * messages go to, and whether it can receive them yet.
 *
 * Threads: the core thread writes (under sess_lock); other threads read a copy under
 * sess_lock (gw_core_device_online, the admin API). The tree is glibc's tsearch, keyed by
 * device id.
 *
 * Ordering: every connection of a device has a sequence number that grows with each new
 * connection (the broker plugin's counter; an adapter's session handle). An OFFLINE applies
 * only to the connection it names, so the late disconnect of a replaced connection (MQTT
 * takeover, reconnect) never takes a live device offline. A REACHABLE (or a bind after auth)
 * is what tells the OTA engine that the device is online: only then can a push be delivered.
 */
#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "gw_error.h"
#include "gw_log.h"

static int gw__session_cmp(const void *a, const void *b)
{
    const struct gw__core_session *x = a, *y = b;

    return x->device_id < y->device_id ? -1 : x->device_id > y->device_id;
}

static struct gw__core_session *gw__session_get(struct gw_core *core, uint64_t device_id)
{
    struct gw__core_session key = { .device_id = device_id };
    void *node = tfind(&key, &core->sessions, gw__session_cmp);

    return node ? *(struct gw__core_session **)node : NULL;
}

/* Inserts or updates; returns the entry or NULL on ENOMEM. Core thread, sess_lock held. */
static struct gw__core_session *gw__session_put(struct gw_core *core, const struct gw_device *dev,
                                                struct gw_adapter *ad, uint64_t session,
                                                uint64_t seq, bool reachable)
{
    struct gw__core_session *s = gw__session_get(core, dev->id);

    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return NULL;
        s->device_id = dev->id;
        if (!tsearch(s, &core->sessions, gw__session_cmp)) {
            free(s);
            return NULL;
        }
        core->n_sessions++;
    }
    s->ad = ad;
    s->session = session;
    s->seq = seq;
    s->reachable = reachable;
    snprintf(s->pk, sizeof(s->pk), "%s", dev->product_key);
    snprintf(s->dn, sizeof(s->dn), "%s", dev->device_name);
    return s;
}

static void gw__session_del(struct gw_core *core, struct gw__core_session *s)
{
    tdelete(s, &core->sessions, gw__session_cmp);
    core->n_sessions--;
    free(s);
}

static void gw__session_online(struct gw_core *core, struct gw_txn *txn, uint64_t device_id,
                               int64_t now_ms)
{
    int rc = gw_ota_on_device_online(core->ota, txn, device_id, now_ms, &core->actions);

    if (rc)
        gw_log(GW_LOG_WARN, GW_CORE_TAG, "device %llu online: %s",
               (unsigned long long)device_id, gw_strerror(rc));
}

static void gw__session_offline(struct gw_core *core, struct gw_txn *txn, uint64_t device_id,
                                int64_t now_ms)
{
    int rc = gw_ota_on_device_offline(core->ota, txn, device_id, now_ms, &core->actions);

    if (rc)
        gw_log(GW_LOG_WARN, GW_CORE_TAG, "device %llu offline: %s",
               (unsigned long long)device_id, gw_strerror(rc));
}

int gw__core_session_bind(struct gw_core *core, struct gw_txn *txn, const struct gw_device *dev,
                          struct gw_adapter *ad, uint64_t session, int64_t now_ms)
{
    struct gw__core_session *s;

    pthread_mutex_lock(&core->sess_lock);
    s = gw__session_put(core, dev, ad, session, session, true);
    pthread_mutex_unlock(&core->sess_lock);
    if (!s)
        return -ENOMEM;
    gw__session_online(core, txn, dev->id, now_ms);
    return 0;
}

struct gw__session_collect {
    struct gw_adapter *ad;
    struct gw__core_session **v;
    size_t n, cap;
};

static void gw__session_walk(const void *node, VISIT which, void *arg)
{
    struct gw__session_collect *c = arg;
    struct gw__core_session *s = *(struct gw__core_session *const *)node;

    if (which != postorder && which != leaf)
        return;
    if (s->ad != c->ad)
        return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        struct gw__core_session **v = realloc(c->v, cap * sizeof(*v));
        if (!v)
            return; /* the rest stay; a later ALL_OFFLINE or OFFLINE removes them */
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = s;
}

static void gw__session_all_offline(struct gw_core *core, struct gw_txn *txn,
                                    struct gw_adapter *ad, int64_t now_ms)
{
    struct gw__session_collect c = { .ad = ad };

    pthread_mutex_lock(&core->sess_lock);
    twalk_r(core->sessions, gw__session_walk, &c);
    for (size_t i = 0; i < c.n; i++) {
        uint64_t id = c.v[i]->device_id;
        gw__session_del(core, c.v[i]);
        c.v[i] = (struct gw__core_session *)(uintptr_t)id; /* keep the id only */
    }
    pthread_mutex_unlock(&core->sess_lock);
    for (size_t i = 0; i < c.n; i++)
        gw__session_offline(core, txn, (uint64_t)(uintptr_t)c.v[i], now_ms);
    if (c.n)
        gw_log(GW_LOG_INFO, ad ? ad->name : GW_CORE_TAG, "%zu devices offline", c.n);
    free(c.v);
}

int gw__core_session_apply(struct gw_core *core, struct gw_txn *txn,
                           const struct gw__core_event *ev, int64_t now_ms)
{
    struct gw_device dev;
    struct gw__core_session *s;
    bool was_reachable = false, stale = false, gone = false;
    int rc;

    if (ev->u.sess.ev == GW_SESSION_ALL_OFFLINE) {
        gw__session_all_offline(core, txn, ev->u.sess.ad, now_ms);
        return 0;
    }
    rc = gw_store_device_get_by_key(txn, ev->u.sess.pk, ev->u.sess.dn, &dev);
    if (rc) {
        gw_log(GW_LOG_DEBUG, GW_CORE_TAG, "session event for unknown device %s/%s",
               ev->u.sess.pk, ev->u.sess.dn);
        return rc;
    }
    pthread_mutex_lock(&core->sess_lock);
    s = gw__session_get(core, dev.id);
    switch (ev->u.sess.ev) {
    case GW_SESSION_ONLINE:
    case GW_SESSION_REACHABLE:
        /* Sequence numbers are per adapter: within one adapter a smaller seq is an older
         * connection that a newer one already replaced; a session on another adapter is
         * simply replaced (the device moved). */
        if (s && s->ad == ev->u.sess.ad && s->seq > ev->u.sess.seq) {
            stale = true;
            break;
        }
        was_reachable = s && s->reachable && s->seq == ev->u.sess.seq;
        s = gw__session_put(core, &dev, ev->u.sess.ad, ev->u.sess.session, ev->u.sess.seq,
                            ev->u.sess.ev == GW_SESSION_REACHABLE || was_reachable);
        if (!s)
            rc = -ENOMEM;
        break;
    case GW_SESSION_OFFLINE:
        if (!s || s->ad != ev->u.sess.ad || s->seq != ev->u.sess.seq) {
            stale = true;
            break;
        }
        gw__session_del(core, s);
        gone = true;
        break;
    default:
        rc = -EINVAL;
    }
    pthread_mutex_unlock(&core->sess_lock);
    if (rc || stale)
        return rc;
    if (ev->u.sess.ev == GW_SESSION_REACHABLE && !was_reachable)
        gw__session_online(core, txn, dev.id, now_ms);
    else if (gone)
        gw__session_offline(core, txn, dev.id, now_ms);
    return 0;
}

bool gw__core_session_find(struct gw_core *core, uint64_t device_id, struct gw__core_session *out)
{
    struct gw__core_session *s;
    bool found = false;

    pthread_mutex_lock(&core->sess_lock);
    s = gw__session_get(core, device_id);
    if (s && s->reachable) {
        *out = *s;
        found = true;
    }
    pthread_mutex_unlock(&core->sess_lock);
    return found;
}

bool gw_core_device_online(struct gw_core *core, uint64_t device_id)
{
    struct gw__core_session s;

    return gw__core_session_find(core, device_id, &s);
}

void gw__core_sessions_free(struct gw_core *core)
{
    tdestroy(core->sessions, free);
    core->sessions = NULL;
    core->n_sessions = 0;
}
