/*
 * DESIGN: the core thread and its inbound queue (DESIGN §2).
 *
 * Threads: adapters and the admin API post events from their own threads into one bounded
 * ring (qlock). The core thread alone drains it: up to batch_max events per batch, all
 * applied in ONE write transaction (group commit: one fsync for the whole batch), then the
 * OTA actions of the batch become messages (still inside the txn, so firmware rows are read
 * consistently), the txn commits, and only then are replies and pushes handed to the
 * adapters and waiting callers woken. Nothing a device or operator is told about is ever
 * ahead of the disk.
 *
 * Invariants: the store, the engine, the outbox and the pending-request table are touched
 * by the core thread only; the session table is written by the core thread and read by
 * others under sess_lock. If a commit fails, the whole batch is lost together: its outbox
 * is dropped, callers get the commit error, and the engine reloads its in-memory state.
 *
 * Shutdown (gw_core_stop): adapters are stopped and joined first (no more intake), then
 * the core thread drains what is queued, commits, and exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core_internal.h"
#include "admin/gw_fwurl.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_util.h"

int64_t gw__core_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- waiters ---- */

static struct gw__core_waiter *gw__core_waiter_new(void)
{
    struct gw__core_waiter *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cv, NULL);
    atomic_init(&w->refs, 2);
    return w;
}

void gw__core_waiter_unref(struct gw__core_waiter *w)
{
    if (!w || atomic_fetch_sub(&w->refs, 1) != 1)
        return;
    gw_msg_unref(w->reply);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

void gw__core_waiter_complete(struct gw__core_waiter *w, int result, struct gw_msg *reply)
{
    pthread_mutex_lock(&w->lock);
    if (!w->done) {
        w->done = true;
        w->result = result;
        w->reply = reply ? gw_msg_ref(reply) : NULL;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->lock);
    gw__core_waiter_unref(w);
}

/* Waits for completion; deadline_ms < 0 = no deadline. Returns the result or GW_E_TIMEOUT. */
static int gw__core_waiter_wait(struct gw__core_waiter *w, int64_t deadline_ms,
                                struct gw_msg **reply)
{
    int rc;

    pthread_mutex_lock(&w->lock);
    while (!w->done) {
        if (deadline_ms < 0) {
            pthread_cond_wait(&w->cv, &w->lock);
            continue;
        }
        struct timespec ts = { .tv_sec = deadline_ms / 1000,
                               .tv_nsec = (long)(deadline_ms % 1000) * 1000000L };
        if (pthread_cond_timedwait(&w->cv, &w->lock, &ts) == ETIMEDOUT && !w->done) {
            pthread_mutex_unlock(&w->lock);
            return GW_E_TIMEOUT;
        }
    }
    rc = w->result;
    if (reply) {
        *reply = w->reply;
        w->reply = NULL;
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

int gw__core_done_add(struct gw_core *core, struct gw__core_waiter *w, int rc)
{
    if (core->n_done == core->cap_done) {
        size_t cap = core->cap_done ? core->cap_done * 2 : 64;
        struct gw__core_waiter **d = realloc(core->done, cap * sizeof(*d));
        int *r = realloc(core->done_rc, cap * sizeof(*r));
        if (d)
            core->done = d;
        if (r)
            core->done_rc = r;
        if (!d || !r) {
            gw__core_waiter_complete(w, -ENOMEM, NULL);
            return -ENOMEM;
        }
        core->cap_done = cap;
    }
    core->done[core->n_done] = w;
    core->done_rc[core->n_done++] = rc;
    return 0;
}

int gw__core_internal_add(struct gw_core *core, const struct gw__core_event *ev)
{
    if (core->n_internal == core->cap_internal) {
        size_t cap = core->cap_internal ? core->cap_internal * 2 : 64;
        struct gw__core_event *v = realloc(core->internal, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        core->internal = v;
        core->cap_internal = cap;
    }
    core->internal[core->n_internal++] = *ev;
    return 0;
}

/* ---- queue ---- */

/* wait_ms: -1 = refuse when full (-EAGAIN); >= 0 = wait up to that long for room. */
static int gw__core_enqueue(struct gw_core *core, const struct gw__core_event *ev, int wait_ms)
{
    int rc = 0;
    int64_t deadline = wait_ms >= 0 ? gw__core_now_ms() + wait_ms : 0;

    pthread_mutex_lock(&core->qlock);
    while (core->count == core->cap && !atomic_load(&core->stopping)) {
        if (wait_ms < 0) {
            rc = -EAGAIN;
            goto out;
        }
        struct timespec ts = { .tv_sec = deadline / 1000,
                               .tv_nsec = (long)(deadline % 1000) * 1000000L };
        if (pthread_cond_timedwait(&core->q_space, &core->qlock, &ts) == ETIMEDOUT &&
            core->count == core->cap) {
            rc = GW_E_TIMEOUT;
            goto out;
        }
    }
    if (atomic_load(&core->stopping) && ev->kind != GW__CORE_EV_MSG &&
        ev->kind != GW__CORE_EV_SESSION) {
        rc = GW_E_SHUTDOWN;
        goto out;
    }
    if (core->quit) {
        rc = GW_E_SHUTDOWN;
        goto out;
    }
    core->ring[(core->head + core->count) % core->cap] = *ev;
    core->count++;
    pthread_cond_signal(&core->q_nonempty);
out:
    pthread_mutex_unlock(&core->qlock);
    if (rc == -EAGAIN)
        atomic_fetch_add(&core->st_refused, 1);
    return rc;
}

int gw_core_post(struct gw_core *core, struct gw_msg *msg)
{
    struct gw__core_event ev = { .kind = GW__CORE_EV_MSG };
    int rc;

    if (!msg)
        return -EINVAL;
    /* Acceptance: the message gets its gateway id while the poster holds the only ref. */
    if (msg->id[0] == '\0')
        gw_msg_assign_id_seq(msg, core->id_nonce, atomic_fetch_add(&core->id_counter, 1));
    ev.u.msg = msg;
    rc = gw__core_enqueue(core, &ev, -1);
    if (rc)
        gw_msg_unref(msg);
    return rc;
}

int gw_core_post_session(struct gw_core *core, struct gw_adapter *ad, enum gw_session_event e,
                         const char *pk, const char *dn, uint64_t session, uint64_t seq)
{
    struct gw__core_event ev = { .kind = GW__CORE_EV_SESSION };

    if (e != GW_SESSION_ALL_OFFLINE &&
        (!pk || !dn || strlen(pk) > GW_PK_MAX || strlen(dn) > GW_DN_MAX))
        return -EINVAL;
    ev.u.sess.ad = ad;
    ev.u.sess.ev = (int)e;
    snprintf(ev.u.sess.pk, sizeof(ev.u.sess.pk), "%s", pk ? pk : "");
    snprintf(ev.u.sess.dn, sizeof(ev.u.sess.dn), "%s", dn ? dn : "");
    ev.u.sess.session = session;
    ev.u.sess.seq = seq;
    /* ALL_OFFLINE must not be lost: it is rare, so it may wait for room. */
    return gw__core_enqueue(core, &ev, e == GW_SESSION_ALL_OFFLINE ? 5000 : -1);
}

int gw_core_call(struct gw_core *core, gw_core_call_fn fn, void *arg, int timeout_ms)
{
    struct gw__core_event ev = { .kind = GW__CORE_EV_CALL };
    struct gw__core_waiter *w = gw__core_waiter_new();
    int rc;

    if (!w)
        return -ENOMEM;
    ev.u.call.fn = fn;
    ev.u.call.arg = arg;
    ev.u.call.w = w;
    rc = gw__core_enqueue(core, &ev, timeout_ms < 0 ? 0 : timeout_ms);
    if (rc) {
        gw__core_waiter_unref(w); /* the core's reference */
        gw__core_waiter_unref(w);
        return rc;
    }
    rc = gw__core_waiter_wait(w, -1, NULL);
    gw__core_waiter_unref(w);
    return rc;
}

int gw_core_device_request(struct gw_core *core, uint64_t device_id, const char *method,
                           cJSON *params, int timeout_ms, struct gw_msg **reply_out)
{
    struct gw__core_event ev = { .kind = GW__CORE_EV_REQUEST };
    const struct gw_method_info *mi = method ? gw_method_find(method, strlen(method)) : NULL;
    struct gw__core_waiter *w = NULL;
    struct gw_msg *msg = NULL;
    int rc;

    *reply_out = NULL;
    if (!mi || mi->dir != GW_METHOD_DIR_DOWN) {
        cJSON_Delete(params);
        return GW_E_UNKNOWN_METHOD;
    }
    rc = gw_msg_new_request(mi->method, NULL, NULL, NULL, params, &msg);
    if (rc)
        return rc;
    gw_msg_assign_id_seq(msg, core->id_nonce, atomic_fetch_add(&core->id_counter, 1));
    msg->device_id = device_id;
    w = gw__core_waiter_new();
    if (!w) {
        gw_msg_unref(msg);
        return -ENOMEM;
    }
    if (timeout_ms <= 0)
        timeout_ms = 10000;
    ev.u.req.msg = msg;
    ev.u.req.w = w;
    ev.u.req.deadline_ms = gw__core_now_ms() + timeout_ms;
    rc = gw__core_enqueue(core, &ev, timeout_ms);
    if (rc) {
        gw_msg_unref(msg);
        gw__core_waiter_unref(w);
        gw__core_waiter_unref(w);
        return rc;
    }
    /* The core expires the request at its deadline; wait a little longer than that so the
     * core's answer (reply or GW_E_TIMEOUT) is the one the caller sees. */
    rc = gw__core_waiter_wait(w, ev.u.req.deadline_ms + 2000, reply_out);
    gw__core_waiter_unref(w);
    return rc;
}

/* ---- the batch ---- */

static void gw__core_apply(struct gw_core *core, struct gw_txn *txn, struct gw__core_event *ev,
                           int64_t now_ms)
{
    struct gw_core_ctx ctx;
    int rc;

    switch (ev->kind) {
    case GW__CORE_EV_MSG:
        gw__core_handle_msg(core, txn, ev->u.msg, now_ms);
        gw_msg_unref(ev->u.msg);
        break;
    case GW__CORE_EV_SESSION:
        gw__core_session_apply(core, txn, ev, now_ms);
        break;
    case GW__CORE_EV_CALL:
        ctx = (struct gw_core_ctx){ .core = core, .txn = txn, .ota = core->ota,
                                    .actions = &core->actions, .now_ms = now_ms };
        rc = ev->u.call.fn(&ctx, ev->u.call.arg);
        gw__core_done_add(core, ev->u.call.w, rc);
        break;
    case GW__CORE_EV_PUSH_FAILED:
        rc = gw_ota_on_push_failed(core->ota, txn, ev->u.pf.record_id, ev->u.pf.attempt,
                                   gw_strerror(ev->u.pf.reason), now_ms, &core->actions);
        if (rc)
            gw_log(GW_LOG_WARN, GW_CORE_TAG, "push failure of record %llu not recorded: %s",
                   (unsigned long long)ev->u.pf.record_id, gw_strerror(rc));
        break;
    case GW__CORE_EV_REQUEST:
        gw__core_request_start(core, ev, now_ms);
        break;
    default:
        break;
    }
}

/* Completes the batch's waiters with their fn results, or all with err when the commit
 * failed. */
static void gw__core_done_flush(struct gw_core *core, int err)
{
    for (size_t i = 0; i < core->n_done; i++)
        gw__core_waiter_complete(core->done[i], err && core->done_rc[i] == 0 ? err
                                                                               : core->done_rc[i],
                                 NULL);
    core->n_done = 0;
}

static void gw__core_run_batch(struct gw_core *core, size_t n)
{
    int64_t now = gw__core_now_ms();
    struct gw_txn *txn = NULL;
    int rc;

    rc = gw_store_txn_begin(core->store, true, &txn);
    if (rc) {
        gw_log(GW_LOG_ERROR, GW_CORE_TAG, "cannot begin a write transaction: %s",
               gw_strerror(rc));
        goto err_fail_batch;
    }
    gw_ota_actions_clear(&core->actions);
    /* Push failures reported by the previous flush first: they free concurrency slots. */
    for (size_t i = 0; i < core->n_internal; i++)
        gw__core_apply(core, txn, &core->internal[i], now);
    core->n_internal = 0;
    for (size_t i = 0; i < n; i++)
        gw__core_apply(core, txn, &core->batch[i], now);
    if (now >= core->next_tick_ms) {
        rc = gw_ota_tick(core->ota, txn, now, &core->actions);
        if (rc)
            gw_log(GW_LOG_WARN, GW_CORE_TAG, "ota tick: %s", gw_strerror(rc));
        core->next_tick_ms = now + core->cfg->ota.tick_ms;
    }
    gw__core_request_expire(core, now);
    gw__core_actions_to_outbox(core, txn, now);
    rc = gw_store_txn_error(txn);
    if (rc) {
        gw_store_txn_abort(txn);
        goto err_lost;
    }
    rc = gw_store_txn_commit(txn);
    if (rc)
        goto err_lost;
    core->st_batches++;
    core->st_events += n;
    gw__core_outbox_flush(core);
    gw__core_done_flush(core, 0);
    return;

err_lost:
    core->st_commit_errors++;
    gw_log(GW_LOG_ERROR, GW_CORE_TAG, "batch of %zu events lost: commit failed: %s", n,
           gw_strerror(rc));
    gw__core_outbox_drop(core);
    gw__core_done_flush(core, rc);
    {
        struct gw_txn *rtxn = NULL;
        if (gw_store_txn_begin(core->store, false, &rtxn) == 0) {
            gw_ota_engine_load(core->ota, rtxn);
            gw_store_txn_abort(rtxn);
        }
    }
    return;
err_fail_batch:
    for (size_t i = 0; i < n; i++) {
        struct gw__core_event *ev = &core->batch[i];
        if (ev->kind == GW__CORE_EV_MSG)
            gw_msg_unref(ev->u.msg);
        else if (ev->kind == GW__CORE_EV_CALL)
            gw__core_waiter_complete(ev->u.call.w, rc, NULL);
        else if (ev->kind == GW__CORE_EV_REQUEST) {
            gw_msg_unref(ev->u.req.msg);
            gw__core_waiter_complete(ev->u.req.w, rc, NULL);
        }
    }
}

static void *gw__core_main(void *arg)
{
    struct gw_core *core = arg;

    for (;;) {
        size_t n = 0;

        pthread_mutex_lock(&core->qlock);
        while (core->count == 0 && !core->quit && core->n_internal == 0 &&
               gw__core_now_ms() < core->next_tick_ms) {
            int64_t due = core->next_tick_ms;
            struct timespec ts = { .tv_sec = due / 1000, .tv_nsec = (long)(due % 1000) * 1000000L };
            pthread_cond_timedwait(&core->q_nonempty, &core->qlock, &ts);
        }
        if (core->count == 0 && core->quit && core->n_internal == 0) {
            pthread_mutex_unlock(&core->qlock);
            break;
        }
        while (n < core->batch_max && core->count > 0) {
            core->batch[n++] = core->ring[core->head];
            core->head = (core->head + 1) % core->cap;
            core->count--;
        }
        pthread_cond_broadcast(&core->q_space);
        pthread_mutex_unlock(&core->qlock);
        gw__core_run_batch(core, n);
    }
    /* Anyone still waiting for a device's reply will not get one now. */
    gw__core_request_expire(core, -1);
    return NULL;
}

/* ---- lifecycle ---- */

/* Reads a 32-byte secret from path, creating it (0600) with random bytes when absent. */
static int gw__core_secret_file(const char *dir, const char *name, uint8_t key[32])
{
    char path[4096];
    int fd, rc = 0;
    ssize_t n;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, key, 32);
        close(fd);
        if (n == 32)
            return 0;
        gw_log(GW_LOG_ERROR, GW_CORE_TAG, "%s: expected 32 bytes", path);
        return -EINVAL;
    }
    rc = gw_random_bytes(key, 32);
    if (rc)
        return rc;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, key, 32) != 32) {
        rc = -errno;
        gw_log(GW_LOG_ERROR, GW_CORE_TAG, "cannot write %s: %s", path, strerror(errno));
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

static int gw__core_mkdirs(const char *dir)
{
    char path[4096];
    size_t len = strlen(dir);

    if (len == 0 || len >= sizeof(path))
        return -EINVAL;
    memcpy(path, dir, len + 1);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        /* Parents we create stay searchable (0755 despite the umask): a broker that dropped
         * to user mosquitto must reach the store below them. */
        if (mkdir(path, 0755) == 0)
            chmod(path, 0755);
        else if (errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

struct gw__ids {
    uint64_t *v;
    size_t n, cap;
};

static int gw__collect_online(void *ctx, const struct gw_device *d)
{
    struct gw__ids *ids = ctx;

    if (d->state != GW_DEVICE_ONLINE)
        return 0;
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 1024;
        uint64_t *v = realloc(ids->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = d->id;
    return 0;
}

/*
 * A fresh process has no sessions: every device the store still calls online (the previous
 * run ended without its offline events) is marked offline, so nothing is pushed to a device
 * until it connects again.
 */
static int gw__core_reset_online(struct gw_core *core, int64_t now_ms)
{
    struct gw__ids ids = { 0 };
    struct gw_txn *txn = NULL;
    int rc;

    rc = gw_store_txn_begin(core->store, true, &txn);
    if (rc)
        return rc;
    rc = gw_store_device_iter(txn, false, 0, gw__collect_online, &ids);
    for (size_t i = 0; rc == 0 && i < ids.n; i++)
        rc = gw_ota_on_device_offline(core->ota, txn, ids.v[i], now_ms, &core->actions);
    gw_ota_actions_clear(&core->actions);
    if (rc == 0)
        rc = gw_store_txn_commit(txn);
    else
        gw_store_txn_abort(txn);
    if (rc == 0 && ids.n)
        gw_log(GW_LOG_INFO, GW_CORE_TAG, "%zu devices marked offline at start", ids.n);
    free(ids.v);
    return rc;
}

int gw_core_create(const struct gw_config *cfg, struct gw_core **out)
{
    struct gw_core *core;
    struct gw_task_policy defaults;
    struct gw_txn *txn = NULL;
    char dbdir[4096];
    int rc;

    *out = NULL;
    core = calloc(1, sizeof(*core));
    if (!core)
        return -ENOMEM;
    core->cfg = cfg;
    pthread_mutex_init(&core->qlock, NULL);
    pthread_cond_init(&core->q_nonempty, NULL);
    pthread_cond_init(&core->q_space, NULL);
    pthread_mutex_init(&core->sess_lock, NULL);
    gw_ota_actions_init(&core->actions);
    core->cap = (size_t)cfg->core.queue_size;
    core->batch_max = (size_t)cfg->core.batch_max;
    core->ring = calloc(core->cap, sizeof(*core->ring));
    core->batch = calloc(core->batch_max, sizeof(*core->batch));
    if (!core->ring || !core->batch) {
        rc = -ENOMEM;
        goto err;
    }
    rc = gw_random_bytes(&core->id_nonce, sizeof(core->id_nonce));
    if (rc)
        goto err;

    rc = gw__core_mkdirs(cfg->data_dir);
    if (rc) {
        gw_log(GW_LOG_ERROR, GW_CORE_TAG, "cannot create data_dir %s: %s", cfg->data_dir,
               gw_strerror(rc));
        goto err;
    }
    rc = gw_admin_download_key_load(cfg->data_dir, core->download_key);
    if (rc) {
        gw_log(GW_LOG_ERROR, GW_CORE_TAG, "cannot load %s/download.key: %s", cfg->data_dir,
               gw_strerror(rc));
        goto err;
    }
    rc = gw__core_secret_file(cfg->data_dir, "jwt.key", core->jwt_secret);
    if (rc)
        goto err;
    snprintf(dbdir, sizeof(dbdir), "%s/db", cfg->data_dir);
    rc = gw_store_open(dbdir, (uint64_t)cfg->storage.map_size_mb, &core->store);
    if (rc) {
        gw_log(GW_LOG_ERROR, GW_CORE_TAG, "cannot open the store in %s: %s", dbdir,
               gw_strerror(rc));
        goto err;
    }
    defaults = (struct gw_task_policy){
        .max_concurrent = (uint32_t)cfg->ota.max_concurrent,
        .rate_per_minute = (uint32_t)cfg->ota.rate_per_minute,
        .push_timeout_s = (uint32_t)cfg->ota.push_timeout_s,
        .upgrade_timeout_s = (uint32_t)cfg->ota.upgrade_timeout_s,
        .max_retries = (uint32_t)cfg->ota.max_retries,
        .retry_backoff_s = (uint32_t)cfg->ota.retry_backoff_s,
        .abort_failure_ratio = cfg->ota.abort_failure_ratio,
        .abort_min_sample = (uint32_t)cfg->ota.abort_min_sample,
    };
    rc = gw_ota_engine_create(&defaults, &core->ota);
    if (rc)
        goto err;
    rc = gw__core_reset_online(core, gw__core_now_ms());
    if (rc)
        goto err;
    rc = gw_store_txn_begin(core->store, false, &txn);
    if (rc == 0) {
        rc = gw_ota_engine_load(core->ota, txn);
        gw_store_txn_abort(txn);
    }
    if (rc)
        goto err;

    core->adapters = calloc(cfg->adapter_count ? cfg->adapter_count : 1, sizeof(*core->adapters));
    if (!core->adapters) {
        rc = -ENOMEM;
        goto err;
    }
    for (size_t i = 0; i < cfg->adapter_count; i++) {
        const struct gw_config_adapter *ac = &cfg->adapters[i];
        const char *type = gw_config_adapter_type_name(ac->type);
        const struct gw_adapter_ops *ops = gw_adapter_find(type);
        if (!ops) {
            gw_log(GW_LOG_WARN, GW_CORE_TAG, "adapter %s: type %s is not available in this "
                   "build; skipped", ac->name, type);
            continue;
        }
        rc = ops->create(core, ac, &core->adapters[core->n_adapters]);
        if (rc) {
            gw_log(GW_LOG_ERROR, GW_CORE_TAG, "adapter %s: %s", ac->name, gw_strerror(rc));
            goto err;
        }
        core->n_adapters++;
    }
    *out = core;
    return 0;
err:
    gw_core_destroy(core);
    return rc;
}

int gw_core_start(struct gw_core *core)
{
    int rc;

    core->next_tick_ms = gw__core_now_ms();
    rc = pthread_create(&core->thread, NULL, gw__core_main, core);
    if (rc)
        return -rc;
    core->thread_started = true;
    for (size_t i = 0; i < core->n_adapters; i++) {
        struct gw_adapter *ad = core->adapters[i];
        rc = ad->ops->start(ad);
        if (rc) {
            gw_log(GW_LOG_ERROR, ad->name, "cannot start: %s", gw_strerror(rc));
            return rc;
        }
    }
    return 0;
}

void gw_core_stop(struct gw_core *core)
{
    if (!core)
        return;
    atomic_store(&core->stopping, true);
    for (size_t i = 0; i < core->n_adapters; i++)
        core->adapters[i]->ops->stop(core->adapters[i]);
    pthread_mutex_lock(&core->qlock);
    core->quit = true;
    pthread_cond_broadcast(&core->q_nonempty);
    pthread_cond_broadcast(&core->q_space);
    pthread_mutex_unlock(&core->qlock);
    if (core->thread_started) {
        pthread_join(core->thread, NULL);
        core->thread_started = false;
    }
}

void gw_core_destroy(struct gw_core *core)
{
    if (!core)
        return;
    gw_core_stop(core);
    for (size_t i = 0; i < core->n_adapters; i++)
        core->adapters[i]->ops->destroy(core->adapters[i]);
    free(core->adapters);
    /* Events still queued (only possible when the thread never ran). */
    while (core->count > 0) {
        struct gw__core_event *ev = &core->ring[core->head];
        if (ev->kind == GW__CORE_EV_MSG)
            gw_msg_unref(ev->u.msg);
        else if (ev->kind == GW__CORE_EV_CALL)
            gw__core_waiter_complete(ev->u.call.w, GW_E_SHUTDOWN, NULL);
        else if (ev->kind == GW__CORE_EV_REQUEST) {
            gw_msg_unref(ev->u.req.msg);
            gw__core_waiter_complete(ev->u.req.w, GW_E_SHUTDOWN, NULL);
        }
        core->head = (core->head + 1) % core->cap;
        core->count--;
    }
    gw__core_outbox_drop(core);
    free(core->outbox);
    free(core->done);
    free(core->done_rc);
    free(core->internal);
    gw__core_sessions_free(core);
    gw_ota_actions_fini(&core->actions);
    gw_ota_engine_destroy(core->ota);
    gw_store_close(core->store);
    free(core->ring);
    free(core->batch);
    pthread_mutex_destroy(&core->sess_lock);
    pthread_cond_destroy(&core->q_space);
    pthread_cond_destroy(&core->q_nonempty);
    pthread_mutex_destroy(&core->qlock);
    free(core);
}

struct gw_store *gw_core_store(struct gw_core *core)
{
    return core->store;
}

const struct gw_config *gw_core_config(struct gw_core *core)
{
    return core->cfg;
}

const char *gw_core_data_dir(struct gw_core *core)
{
    return core->cfg->data_dir;
}

const uint8_t *gw_core_jwt_secret(struct gw_core *core, size_t *len)
{
    *len = sizeof(core->jwt_secret);
    return core->jwt_secret;
}

void gw_core_get_stats(struct gw_core *core, struct gw_core_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&core->qlock);
    out->queued = core->count;
    out->batches = core->st_batches;
    out->events = core->st_events;
    out->commit_errors = core->st_commit_errors;
    pthread_mutex_unlock(&core->qlock);
    out->refused = atomic_load(&core->st_refused);
    pthread_mutex_lock(&core->sess_lock);
    out->sessions = core->n_sessions;
    pthread_mutex_unlock(&core->sess_lock);
}
