/*
 * DESIGN: the bounded queue that carries messages from the core (submit, any thread) to the
 * thread that owns a Modbus device (a client connection thread or the server loop thread).
 * A ring of message references under a mutex; the condition variable (CLOCK_MONOTONIC) lets
 * a client thread sleep until a message, a stop or its next deadline.
 * Full-queue policy: push returns -EAGAIN (the core counts it; an OTA push goes back to
 * pending); nothing is dropped silently.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "gw_error.h"
#include "mb_internal.h"

int64_t gw__mb_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int gw__mb_queue_init(struct gw__mb_queue *q, size_t cap)
{
    pthread_condattr_t ca;

    q->ring = calloc(cap, sizeof(*q->ring));
    if (!q->ring)
        return -ENOMEM;
    q->cap = cap;
    q->head = q->count = 0;
    q->stopping = false;
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond, &ca);
    pthread_condattr_destroy(&ca);
    return 0;
}

void gw__mb_queue_fini(struct gw__mb_queue *q)
{
    if (!q->ring)
        return;
    for (size_t i = 0; i < q->count; i++)
        gw_msg_unref(q->ring[(q->head + i) % q->cap]);
    free(q->ring);
    q->ring = NULL;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
}

int gw__mb_queue_push(struct gw__mb_queue *q, struct gw_msg *msg)
{
    int rc = 0;

    pthread_mutex_lock(&q->lock);
    if (q->stopping)
        rc = GW_E_SHUTDOWN;
    else if (q->count == q->cap)
        rc = -EAGAIN;
    else {
        q->ring[(q->head + q->count) % q->cap] = msg;
        q->count++;
        pthread_cond_signal(&q->cond);
    }
    pthread_mutex_unlock(&q->lock);
    if (rc)
        gw_msg_unref(msg);
    return rc;
}

size_t gw__mb_queue_take(struct gw__mb_queue *q, struct gw_msg **out, size_t max)
{
    size_t n = 0;

    pthread_mutex_lock(&q->lock);
    while (n < max && q->count) {
        out[n++] = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    pthread_mutex_unlock(&q->lock);
    return n;
}

size_t gw__mb_queue_depth(struct gw__mb_queue *q)
{
    size_t n;

    pthread_mutex_lock(&q->lock);
    n = q->count;
    pthread_mutex_unlock(&q->lock);
    return n;
}

void gw__mb_queue_wait(struct gw__mb_queue *q, int64_t deadline_ms)
{
    struct timespec ts;

    pthread_mutex_lock(&q->lock);
    if (!q->count && !q->stopping && deadline_ms > gw__mb_now_ms()) {
        ts.tv_sec = (time_t)(deadline_ms / 1000);
        ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000;
        pthread_cond_timedwait(&q->cond, &q->lock, &ts);
    }
    pthread_mutex_unlock(&q->lock);
}

void gw__mb_queue_stop(struct gw__mb_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->stopping = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}
