/*
 * DESIGN: harness of the MQTT adapter conformance test (see mqtt_harness.h): the recording
 * stand-in of the core, and MQTT.js devices driven over pipes.
 */
#include "mqtt_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

/* ---- the core stand-in (the seam) ---- */

#define REC_MAX 1024
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rec_cond;
static struct gw_msg *rec_msgs[REC_MAX];
static size_t rec_nmsgs;
static struct rec_session rec_sess[REC_MAX];
static size_t rec_nsess;
static int refuse_posts;
static int refused_posts;

int gw_core_post(struct gw_core *core, struct gw_msg *msg)
{
    int rc = 0;
    (void)core;
    pthread_mutex_lock(&rec_lock);
    if (refuse_posts > 0) {
        refuse_posts--;
        refused_posts++;
        rc = -EAGAIN;
    } else if (rec_nmsgs == REC_MAX) {
        rc = -EAGAIN;
    } else {
        rec_msgs[rec_nmsgs++] = msg;
        msg = NULL;
    }
    pthread_cond_broadcast(&rec_cond);
    pthread_mutex_unlock(&rec_lock);
    gw_msg_unref(msg); /* like the core: ownership is taken also on failure */
    return rc;
}

int gw_core_post_session(struct gw_core *core, struct gw_adapter *ad, enum gw_session_event ev,
                         const char *pk, const char *dn, uint64_t session, uint64_t seq)
{
    (void)core;
    (void)ad;
    pthread_mutex_lock(&rec_lock);
    if (rec_nsess < REC_MAX) {
        struct rec_session *r = &rec_sess[rec_nsess++];
        r->ev = (int)ev;
        snprintf(r->pk, sizeof(r->pk), "%s", pk);
        snprintf(r->dn, sizeof(r->dn), "%s", dn);
        r->session = session;
        r->seq = seq;
    }
    pthread_cond_broadcast(&rec_cond);
    pthread_mutex_unlock(&rec_lock);
    return 0;
}

const char *gw_core_data_dir(struct gw_core *core)
{
    return core->data_dir;
}

void rec_init(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rec_cond, &ca);
    pthread_condattr_destroy(&ca);
}

void rec_fini(void)
{
    pthread_mutex_lock(&rec_lock);
    for (size_t i = 0; i < rec_nmsgs; i++)
        gw_msg_unref(rec_msgs[i]);
    rec_nmsgs = 0;
    pthread_mutex_unlock(&rec_lock);
}

void rec_refuse_posts(int n)
{
    pthread_mutex_lock(&rec_lock);
    refuse_posts = n;
    refused_posts = 0;
    pthread_mutex_unlock(&rec_lock);
}

int rec_refused(void)
{
    pthread_mutex_lock(&rec_lock);
    int n = refused_posts;
    pthread_mutex_unlock(&rec_lock);
    return n;
}

int64_t harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void harness_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Waits (under rec_lock) until pred(arg) holds or the deadline passed; returns pred. */
static bool rec_wait(bool (*pred)(void *), void *arg, int timeout_ms)
{
    struct timespec ts;
    bool ok;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&rec_lock);
    while (!(ok = pred(arg)))
        if (pthread_cond_timedwait(&rec_cond, &rec_lock, &ts) == ETIMEDOUT) {
            ok = pred(arg);
            break;
        }
    pthread_mutex_unlock(&rec_lock);
    return ok;
}

struct msg_query {
    const char *request_id;
    const void *adapter;  /* NULL: any */
    struct gw_msg *found; /* a new reference */
    size_t count;
};

static bool msg_pred(void *arg)
{
    struct msg_query *q = arg;
    q->count = 0;
    for (size_t i = 0; i < rec_nmsgs; i++)
        if (strcmp(rec_msgs[i]->request_id, q->request_id) == 0 &&
            (!q->adapter || rec_msgs[i]->origin.adapter == q->adapter)) {
            if (!q->found)
                q->found = gw_msg_ref(rec_msgs[i]);
            q->count++;
        }
    return q->found != NULL;
}

struct gw_msg *rec_wait_msg(const char *request_id)
{
    struct msg_query q = {.request_id = request_id};
    rec_wait(msg_pred, &q, HARNESS_WAIT_MS);
    return q.found;
}

struct gw_msg *rec_wait_msg_from(const char *request_id, const void *adapter)
{
    struct msg_query q = {.request_id = request_id, .adapter = adapter};
    rec_wait(msg_pred, &q, HARNESS_WAIT_MS);
    return q.found;
}

size_t rec_count_msgs(const char *request_id)
{
    struct msg_query q = {.request_id = request_id};
    pthread_mutex_lock(&rec_lock);
    msg_pred(&q);
    pthread_mutex_unlock(&rec_lock);
    gw_msg_unref(q.found);
    return q.count;
}

struct sess_query {
    int ev;
    const char *dn;
    size_t from;
    struct rec_session found;
    size_t index;
};

static bool sess_pred(void *arg)
{
    struct sess_query *q = arg;
    for (size_t i = q->from; i < rec_nsess; i++)
        if (rec_sess[i].ev == q->ev && (!q->dn || strcmp(rec_sess[i].dn, q->dn) == 0)) {
            q->found = rec_sess[i];
            q->index = i;
            return true;
        }
    return false;
}

bool rec_wait_session(int ev, const char *dn, size_t from, struct rec_session *out, size_t *index)
{
    struct sess_query q = {.ev = ev, .dn = dn, .from = from};
    bool ok = rec_wait(sess_pred, &q, HARNESS_WAIT_MS);
    if (ok && out)
        *out = q.found;
    if (ok && index)
        *index = q.index;
    return ok;
}

bool rec_has_session(int ev, const char *dn, size_t from)
{
    struct sess_query q = {.ev = ev, .dn = dn, .from = from};
    pthread_mutex_lock(&rec_lock);
    bool ok = sess_pred(&q);
    pthread_mutex_unlock(&rec_lock);
    return ok;
}

size_t rec_session_count(void)
{
    pthread_mutex_lock(&rec_lock);
    size_t n = rec_nsess;
    pthread_mutex_unlock(&rec_lock);
    return n;
}

/* ---- scripted MQTT.js devices ---- */

int dev_spawn(struct dev *d)
{
    const char *node = getenv("GW_NODE") ? getenv("GW_NODE") : "node";
    char *argv[] = {(char *)node, GW_MQTT_DEVICE_JS, NULL};
    int pin[2], pout[2];
    posix_spawn_file_actions_t fa;

    memset(d, 0, sizeof(*d));
    if (pipe2(pin, O_CLOEXEC) != 0)
        return -errno;
    if (pipe2(pout, O_CLOEXEC) != 0) {
        close(pin[0]);
        close(pin[1]);
        return -errno;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    int rc = posix_spawnp(&d->pid, node, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pin[0]);
    close(pout[1]);
    d->in = pin[1];
    d->out = pout[0];
    if (rc != 0) {
        close(d->in);
        close(d->out);
        d->pid = 0;
    }
    return -rc;
}

void dev_cmd(struct dev *d, const char *fmt, ...)
{
    char line[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && n < (int)sizeof(line) - 1);
    line[n++] = '\n';
    assert_int_equal(write(d->in, line, (size_t)n), n);
}

/* Reads what the device printed, waiting up to ms; false on timeout or EOF. */
static bool dev_read(struct dev *d, int ms)
{
    struct pollfd p = {.fd = d->out, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0)
        return false;
    ssize_t n = read(d->out, d->buf + d->blen, sizeof(d->buf) - d->blen - 1);
    if (n <= 0)
        return false;
    d->blen += (size_t)n;
    char *nl;
    while ((nl = memchr(d->buf, '\n', d->blen)) != NULL) {
        *nl = '\0';
        cJSON *ev = cJSON_Parse(d->buf);
        if (ev && d->nhist < DEV_HIST)
            d->hist[d->nhist++] = ev;
        else
            cJSON_Delete(ev);
        size_t used = (size_t)(nl - d->buf) + 1;
        memmove(d->buf, nl + 1, d->blen - used);
        d->blen -= used;
    }
    return true;
}

static bool ev_match(const cJSON *e, const char *ev, const char *topic)
{
    const cJSON *v = cJSON_GetObjectItem(e, "ev");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, ev) != 0)
        return false;
    const cJSON *t = cJSON_GetObjectItem(e, "topic");
    return !topic || (cJSON_IsString(t) && strcmp(t->valuestring, topic) == 0);
}

const cJSON *dev_wait(struct dev *d, const char *ev, const char *topic)
{
    int64_t end = harness_now_ms() + HARNESS_WAIT_MS;
    size_t seen = 0;
    for (;;) {
        for (; seen < d->nhist; seen++)
            if (!d->used[seen] && ev_match(d->hist[seen], ev, topic)) {
                d->used[seen] = true;
                return d->hist[seen];
            }
        int64_t left = end - harness_now_ms();
        if (left <= 0 || !dev_read(d, (int)left))
            return NULL;
    }
}

void dev_forget(struct dev *d)
{
    while (dev_read(d, 0)) {
    }
    for (size_t i = 0; i < d->nhist; i++)
        d->used[i] = true;
}

void dev_connect(struct dev *d, int port, const char *pk, const char *dn, const char *secret,
                 int reconnect_ms)
{
    assert_int_equal(dev_spawn(d), 0);
    dev_cmd(d,
            "{\"op\":\"connect\",\"port\":%d,\"pk\":\"%s\",\"dn\":\"%s\",\"secret\":\"%s\","
            "\"reconnectMs\":%d}",
            port, pk, dn, secret, reconnect_ms);
    assert_non_null(dev_wait(d, "connect", NULL));
}

void dev_publish(struct dev *d, const char *topic, const char *text)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "op", "publish");
    cJSON_AddStringToObject(c, "topic", topic);
    cJSON_AddStringToObject(c, "payload", text);
    char *s = cJSON_PrintUnformatted(c);
    dev_cmd(d, "%s", s);
    free(s);
    cJSON_Delete(c);
    assert_non_null(dev_wait(d, "puback", topic));
}

void dev_stop(struct dev *d)
{
    static const char end[] = "{\"op\":\"end\"}\n";
    int st;

    if (d->pid <= 0)
        return;
    if (write(d->in, end, sizeof(end) - 1) == (ssize_t)sizeof(end) - 1)
        (void)dev_wait(d, "ended", NULL);
    close(d->in);
    close(d->out);
    for (int64_t t = harness_now_ms(); waitpid(d->pid, &st, WNOHANG) == 0;) {
        if (harness_now_ms() - t > 5000) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &st, 0);
            break;
        }
        harness_sleep_ms(10);
    }
    for (size_t i = 0; i < d->nhist; i++)
        cJSON_Delete(d->hist[i]);
    d->nhist = 0;
    d->pid = 0;
}
