/*
 * DESIGN: HTTP devices as sessions (beyond: the reference drops every downstream message for
 * HTTP devices). Owns the device table: per device a bounded queue of downstream messages,
 * the parked long-poll, and the reachability state reported to the core.
 *
 * Rules:
 *  - a device becomes reachable when the core accepts its login (session seq = the login's
 *    handle) or when it starts polling while not reachable (REACHABLE with a fresh handle);
 *  - it stays reachable while it polls: last_seen is the start or end of its latest poll (a
 *    parked poll keeps it reachable); the sweep posts OFFLINE for it once last_seen is older
 *    than window_ms, and drops what was queued for it (the OTA engine re-pushes on the next
 *    online);
 *  - downstream messages for a device that is not reachable are refused
 *    (GW_E_DEVICE_NOT_CONNECTED), so "pushed" keeps meaning "held for delivery";
 *  - one parked poll per device: a second poll answers the first with [] (an HTTP client
 *    that reconnected must not wait behind its own dead request);
 *  - a poll answers at once with everything queued, or parks until a message comes or its
 *    wait ends (then []); messages leave the queue when they are written into a response.
 *
 * Threads: the table is guarded by a->lock (submit files messages from the core thread);
 * everything else here runs on the service thread, which alone frees entries (sweep).
 */
#include <errno.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_codec.h"
#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_store.h" /* enum gw_device_state only */
#include "http_internal.h"

int gw__http_dev_cmp(const void *x, const void *y)
{
    const struct gw__http_dev *a = x, *b = y;
    int r = strcmp(a->pk, b->pk);

    return r ? r : strcmp(a->dn, b->dn);
}

static void drop_queue_locked(struct gw__http *a, struct gw__http_dev *d)
{
    while (d->qlen > 0) {
        gw_msg_unref(d->q[d->qhead]);
        d->q[d->qhead] = NULL;
        d->qhead = (d->qhead + 1) % GW_HTTP_QUEUE_MAX;
        d->qlen--;
        if (a) {
            a->n_queued--;
            gw_adapter_count(&a->ctr.dropped_out);
        }
    }
}

void gw__http_dev_free(void *dev)
{
    drop_queue_locked(NULL, dev);
    free(dev);
}

struct gw__http_dev *gw__http_dev_get(struct gw__http *a, const char *pk, const char *dn,
                                      bool create)
{
    struct gw__http_dev key, *d;
    void *n;

    if (strlen(pk) > GW_MSG_PK_MAX || strlen(dn) > GW_MSG_DN_MAX)
        return NULL;
    memcpy(key.pk, pk, strlen(pk) + 1);
    memcpy(key.dn, dn, strlen(dn) + 1);
    n = tfind(&key, &a->devs, gw__http_dev_cmp);
    if (n || !create)
        return n ? *(struct gw__http_dev **)n : NULL;
    d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    memcpy(d->pk, key.pk, sizeof(d->pk));
    memcpy(d->dn, key.dn, sizeof(d->dn));
    if (!tsearch(d, &a->devs, gw__http_dev_cmp)) {
        free(d);
        return NULL;
    }
    a->n_devs++;
    return d;
}

/* Under lock: d is seen now; returns true (and the new seq) when it has just become
 * reachable and the core must hear so. */
static bool seen_locked(struct gw__http *a, struct gw__http_dev *d, uint64_t *seq)
{
    d->last_seen_ms = gw__http_mono_ms();
    if (d->reachable)
        return false;
    d->reachable = true;
    a->n_reachable++;
    d->seq = gw__http_new_handle(a);
    *seq = d->seq;
    return true;
}

static void set_unreachable_locked(struct gw__http *a, struct gw__http_dev *d)
{
    if (!d->reachable)
        return;
    d->reachable = false;
    a->n_reachable--;
    drop_queue_locked(a, d);
}

void gw__http_dev_on_login(struct gw__http *a, const char *pk, const char *dn, uint64_t h)
{
    struct gw__http_dev *d = gw__http_dev_get(a, pk, dn, true);

    if (!d) {
        gw_log(GW_LOG_ERROR, a->base.name, "cannot track %s/%s (out of memory)", pk, dn);
        return;
    }
    if (!d->reachable)
        a->n_reachable++;
    d->reachable = true;
    d->seq = h;
    d->last_seen_ms = gw__http_mono_ms();
}

int gw__http_dev_queue(struct gw__http *a, struct gw_msg *msg)
{
    struct gw__http_dev *d = gw__http_dev_get(a, msg->product_key, msg->device_name, false);

    if (!d || !d->reachable)
        return GW_E_DEVICE_NOT_CONNECTED;
    if (d->qlen == GW_HTTP_QUEUE_MAX)
        return -EAGAIN;
    d->q[(d->qhead + d->qlen) % GW_HTTP_QUEUE_MAX] = msg;
    d->qlen++;
    a->n_queued++;
    if (d->poll && !d->on_ready) {
        d->on_ready = true;
        d->ready_next = a->ready;
        a->ready = d;
    }
    return 0;
}

/* Under lock: moves every queued message of d to out[] (GW_HTTP_QUEUE_MAX slots). */
static size_t take_locked(struct gw__http *a, struct gw__http_dev *d, struct gw_msg **out)
{
    size_t n = 0;

    while (d->qlen > 0) {
        out[n++] = d->q[d->qhead];
        d->q[d->qhead] = NULL;
        d->qhead = (d->qhead + 1) % GW_HTTP_QUEUE_MAX;
        d->qlen--;
        a->n_queued--;
    }
    return n;
}

/* Sends msgs[0..n) (released) as one JSON array of messages in the JSON serializer's form. */
static void send_array(struct gw__http_conn *c, struct gw_msg **msgs, size_t n)
{
    struct gw__http *a = c->a;
    uint8_t *enc[GW_HTTP_QUEUE_MAX];
    size_t lens[GW_HTTP_QUEUE_MAX], total = 2, k = 0, off = 0;
    char *text;

    for (size_t i = 0; i < n; i++) {
        int rc = gw_codec_json_encode(msgs[i], &enc[k], &lens[k]);

        if (rc == 0) {
            total += lens[k++] + 1;
        } else {
            gw_adapter_count(&a->ctr.dropped_out);
            gw_log(GW_LOG_WARN, a->base.name, "cannot encode %s for %s/%s: %s",
                   gw_msg_method_name(msgs[i]), msgs[i]->product_key, msgs[i]->device_name,
                   gw_strerror(rc));
        }
        gw_msg_unref(msgs[i]);
    }
    text = malloc(total + 1);
    if (text) {
        text[off++] = '[';
        for (size_t i = 0; i < k; i++) {
            if (i)
                text[off++] = ',';
            memcpy(text + off, enc[i], lens[i]);
            off += lens[i];
        }
        text[off++] = ']';
        text[off] = '\0';
        atomic_fetch_add_explicit(&a->ctr.msgs_out, k, memory_order_relaxed);
    }
    for (size_t i = 0; i < k; i++)
        free(enc[i]);
    if (!text) {
        gw__http_send_envelope(c, 500, "out of memory", NULL);
        return;
    }
    gw__http_send(c, 200, text, off);
}

static void post_reachable(struct gw__http *a, struct gw__http_dev *d, const char *pk,
                           const char *dn, uint64_t seq)
{
    int rc = gw_core_post_session(a->base.core, &a->base, GW_SESSION_REACHABLE, pk, dn, seq, seq);

    if (rc == 0)
        return;
    gw_log(GW_LOG_WARN, a->base.name, "%s/%s polls but cannot be reported online: %s", pk, dn,
           gw_strerror(rc));
    pthread_mutex_lock(&a->lock);
    if (d->seq == seq) /* the next poll tries again */
        set_unreachable_locked(a, d);
    pthread_mutex_unlock(&a->lock);
}

static void on_poll_deadline(lws_sorted_usec_list_t *sul)
{
    gw__http_poll_end(lws_container_of(sul, struct gw__http_conn, sul), true);
}

void gw__http_poll_begin(struct gw__http_conn *c, const char *pk, const char *dn, int wait_s)
{
    struct gw__http *a = c->a;
    struct gw_msg *msgs[GW_HTTP_QUEUE_MAX];
    struct gw__http_conn *old = NULL;
    struct gw__http_dev *d;
    uint64_t seq = 0;
    bool post = false, parked = false;
    size_t n = 0;

    pthread_mutex_lock(&a->lock);
    d = gw__http_dev_get(a, pk, dn, true);
    if (d) {
        post = seen_locked(a, d, &seq);
        old = d->poll;
        d->poll = NULL;
        if (old)
            old->dev = NULL;
        n = take_locked(a, d, msgs);
        if (n == 0 && wait_s > 0) {
            d->poll = c;
            c->dev = d;
            c->phase = GW__HTTP_POLL;
            parked = true;
        }
    }
    pthread_mutex_unlock(&a->lock);
    if (!d) {
        gw__http_send_envelope(c, 500, "out of memory", NULL);
        return;
    }
    if (post)
        post_reachable(a, d, pk, dn, seq);
    if (old) {
        lws_sul_cancel(&old->sul);
        send_array(old, NULL, 0);
    }
    if (parked) {
        /* lws would drop a request left unanswered for timeout_secs (5 s); our sul is the
         * deadline. */
        lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
        lws_sul_schedule(lws_get_context(c->wsi), 0, &c->sul, on_poll_deadline,
                         (lws_usec_t)wait_s * LWS_US_PER_SEC);
    } else {
        send_array(c, msgs, n);
    }
}

void gw__http_poll_end(struct gw__http_conn *c, bool answer)
{
    struct gw__http *a = c->a;

    lws_sul_cancel(&c->sul);
    pthread_mutex_lock(&a->lock);
    if (c->dev && c->dev->poll == c) {
        c->dev->poll = NULL;
        c->dev->last_seen_ms = gw__http_mono_ms();
    }
    c->dev = NULL;
    pthread_mutex_unlock(&a->lock);
    if (answer)
        send_array(c, NULL, 0);
}

void gw__http_ready_run(struct gw__http *a)
{
    struct gw__http_dev *list, *next;
    struct gw_msg *msgs[GW_HTTP_QUEUE_MAX];

    pthread_mutex_lock(&a->lock);
    list = a->ready;
    a->ready = NULL;
    for (struct gw__http_dev *d = list; d; d = d->ready_next)
        d->on_ready = false;
    pthread_mutex_unlock(&a->lock);
    /* Entries are freed only by the sweep, on this thread: the list stays valid. */
    for (struct gw__http_dev *d = list; d; d = next) {
        struct gw__http_conn *c;
        size_t n = 0;

        next = d->ready_next;
        pthread_mutex_lock(&a->lock);
        c = d->poll;
        if (c)
            n = take_locked(a, d, msgs);
        if (c && n > 0) {
            d->poll = NULL;
            d->last_seen_ms = gw__http_mono_ms();
            c->dev = NULL;
        }
        pthread_mutex_unlock(&a->lock);
        if (c && n > 0) {
            lws_sul_cancel(&c->sul);
            send_array(c, msgs, n);
        }
    }
}

void gw__http_dev_state(struct gw__http *a, const char *pk, const char *dn, int state)
{
    struct gw__http_dev *d;
    uint64_t seq = 0;
    bool post = false;

    pthread_mutex_lock(&a->lock);
    d = gw__http_dev_get(a, pk, dn, state == GW_DEVICE_ONLINE);
    if (d && state == GW_DEVICE_ONLINE) {
        post = seen_locked(a, d, &seq);
    } else if (d && d->reachable && !d->poll) {
        seq = d->seq;
        set_unreachable_locked(a, d);
        post = true;
    }
    pthread_mutex_unlock(&a->lock);
    if (!post)
        return;
    if (state == GW_DEVICE_ONLINE)
        post_reachable(a, d, pk, dn, seq);
    else
        gw_core_post_session(a->base.core, &a->base, GW_SESSION_OFFLINE, pk, dn, seq, seq);
}

/* ---- reachability sweep ---- */

struct sweep_walk {
    struct gw__http_dev **v;
    size_t n, cap;
};

static void sweep_visit(const void *node, VISIT which, void *arg)
{
    struct sweep_walk *w = arg;

    if (which != postorder && which != leaf)
        return;
    if (w->n < w->cap)
        w->v[w->n++] = *(struct gw__http_dev *const *)node;
}

struct sweep_off {
    char pk[GW_MSG_PK_MAX + 1];
    char dn[GW_MSG_DN_MAX + 1];
    uint64_t seq;
};

/* Under lock: frees idle entries, turns silent devices offline (listed in *offs). */
static size_t sweep_locked(struct gw__http *a, struct sweep_walk *w, struct sweep_off *offs)
{
    int64_t now = gw__http_mono_ms();
    size_t n_off = 0;

    for (size_t i = 0; i < w->n; i++) {
        struct gw__http_dev *d = w->v[i];

        if (!d->reachable && d->qlen == 0 && !d->poll && !d->on_ready) {
            tdelete(d, &a->devs, gw__http_dev_cmp);
            a->n_devs--;
            free(d);
        } else if (d->reachable && !d->poll && now - d->last_seen_ms > a->window_ms) {
            memcpy(offs[n_off].pk, d->pk, sizeof(d->pk));
            memcpy(offs[n_off].dn, d->dn, sizeof(d->dn));
            offs[n_off++].seq = d->seq;
            set_unreachable_locked(a, d);
        }
    }
    return n_off;
}

static void on_sweep(lws_sorted_usec_list_t *sul)
{
    struct gw__http *a = lws_container_of(sul, struct gw__http, sweep_sul);
    struct sweep_walk w = { 0 };
    struct sweep_off *offs = NULL;
    size_t n_off = 0;

    pthread_mutex_lock(&a->lock);
    w.cap = a->n_devs;
    w.v = w.cap ? malloc(w.cap * sizeof(*w.v)) : NULL;
    offs = w.cap ? malloc(w.cap * sizeof(*offs)) : NULL;
    if (w.v && offs) {
        twalk_r(a->devs, sweep_visit, &w);
        n_off = sweep_locked(a, &w, offs);
    }
    pthread_mutex_unlock(&a->lock);
    for (size_t i = 0; i < n_off; i++) {
        int rc = gw_core_post_session(a->base.core, &a->base, GW_SESSION_OFFLINE, offs[i].pk,
                                      offs[i].dn, offs[i].seq, offs[i].seq);

        gw_log(GW_LOG_DEBUG, a->base.name, "%s/%s stopped polling: offline", offs[i].pk,
               offs[i].dn);
        if (rc == -EAGAIN) { /* keep it reachable: the next sweep tries again */
            struct gw__http_dev *d;

            pthread_mutex_lock(&a->lock);
            d = gw__http_dev_get(a, offs[i].pk, offs[i].dn, false);
            if (d && !d->reachable && d->seq == offs[i].seq) {
                d->reachable = true;
                a->n_reachable++;
            }
            pthread_mutex_unlock(&a->lock);
        }
    }
    free(w.v);
    free(offs);
    lws_sul_schedule(a->lws, 0, &a->sweep_sul, on_sweep, GW_HTTP_SWEEP_US);
}

void gw__http_sweep_start(struct gw__http *a)
{
    lws_sul_schedule(a->lws, 0, &a->sweep_sul, on_sweep, GW_HTTP_SWEEP_US);
}
