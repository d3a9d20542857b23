/*
 * DESIGN: the engine's event entry points: device progress reports, device online/offline,
 * push failures reported by the core, record cancel, and the scheduler tick (timeouts,
 * backoff wake-ups, pushes waiting on limits). Core thread only.
 * Every entry point validates before its first write, so a rejected event leaves the
 * transaction untouched; on any later error it restores the sink and the caller aborts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_log.h"
#include "ota_internal.h"

static int reject(struct gw_ota_engine *eng, uint64_t device_id, int code, const char *what)
{
    switch (code) {
    case GW_E_RECORD_NO_ACTIVE: eng->stats.rejected_no_record++; break;
    case GW_E_PROGRESS_VERSION_MISMATCH: eng->stats.rejected_version++; break;
    case GW_E_PROGRESS_BAD_STATUS: eng->stats.rejected_status++; break;
    default: eng->stats.rejected_value++; break;
    }
    gw_log(GW_LOG_WARN, GW_OTA_LOG_TAG, "device %llu: %s (%s)",
           (unsigned long long)device_id, gw_strerror(code), what);
    return code;
}

static int progress_target(int status, const char **cause)
{
    switch (status) {
    case GW_RECORD_UPGRADING: *cause = "device reported upgrading"; return GW_RECORD_UPGRADING;
    case GW_RECORD_SUCCESS: *cause = "device reported success"; return GW_RECORD_SUCCESS;
    case GW_RECORD_FAILURE: *cause = "device reported failure"; return GW_RECORD_FAILURE;
    default: return -1;
    }
}

static int apply_success(struct gw_txn *txn, const struct gw_record *r)
{
    struct gw_device d;
    int rc = gw_store_device_get(txn, r->device_id, &d);
    if (rc)
        return rc;
    d.firmware_id = r->firmware_id;
    return gw_store_device_put(txn, &d);
}

int gw_ota_on_progress(struct gw_ota_engine *eng, struct gw_txn *txn, uint64_t device_id,
                       const char *version, int status, int progress, const char *description,
                       int64_t now_ms, struct gw_ota_actions *sink)
{
    size_t mark = sink->n;
    struct gw_firmware fw;
    struct gw_record r;
    struct gw_task t;
    const char *cause = NULL;
    uint64_t rid;
    int64_t old_due;
    int to, rc;

    rc = gw_store_active_record_of_device(txn, device_id, &rid);
    if (rc == GW_E_NOT_FOUND)
        return reject(eng, device_id, GW_E_RECORD_NO_ACTIVE, "no active record");
    if (rc)
        return rc;
    rc = gw_store_record_get(txn, rid, &r);
    if (rc)
        return rc;
    rc = gw_store_firmware_get(txn, r.firmware_id, &fw);
    if (rc)
        return rc;
    if (!version || strcmp(version, fw.version) != 0)
        return reject(eng, device_id, GW_E_PROGRESS_VERSION_MISMATCH, version ? version : "");
    to = progress_target(status, &cause);
    if (to < 0)
        return reject(eng, device_id, GW_E_PROGRESS_BAD_STATUS, "status");
    if (progress < 0 || progress > 100)
        return reject(eng, device_id, GW_E_PROGRESS_BAD_VALUE, "progress");
    rc = gw_store_task_get(txn, r.task_id, &t);
    if (rc)
        return rc;

    old_due = gw__ota_deadline_for(&r, &t.policy);
    r.progress = progress;
    r.report_time_ms = now_ms;
    r.not_before_ms = 0;
    gw__ota_copy_text(r.description, sizeof(r.description), description);
    if (r.status == to) {
        /* upgrading → upgrading: a progress update, not a transition (no history). */
        rc = gw__ota_move(txn, &t, &r, old_due, to, cause, now_ms);
        if (rc)
            goto err;
        eng->stats.progress_accepted++;
        return 0;
    }
    rc = gw__ota_move(txn, &t, &r, old_due, to, cause, now_ms);
    if (rc)
        goto err;
    if (to == GW_RECORD_SUCCESS) {
        rc = apply_success(txn, &r);
        if (rc)
            goto err;
    }
    rc = gw__ota_settle(eng, txn, &t, now_ms, sink);
    if (rc)
        goto err;
    eng->stats.progress_accepted++;
    return 0;

err:
    sink->n = mark;
    return rc;
}

static int set_device_state(struct gw_txn *txn, uint64_t device_id, int state, int64_t now_ms)
{
    struct gw_device d;
    int rc = gw_store_device_get(txn, device_id, &d);
    if (rc == GW_E_NOT_FOUND)
        return GW_E_DEVICE_NOT_EXISTS;
    if (rc)
        return rc;
    d.state = state;
    d.last_seen_ms = now_ms;
    return gw_store_device_put(txn, &d);
}

int gw_ota_on_device_online(struct gw_ota_engine *eng, struct gw_txn *txn, uint64_t device_id,
                            int64_t now_ms, struct gw_ota_actions *sink)
{
    size_t mark = sink->n;
    struct gw_record r;
    struct gw_task t;
    uint64_t rid;
    bool pushed;
    int rc;

    rc = set_device_state(txn, device_id, GW_DEVICE_ONLINE, now_ms);
    if (rc)
        return rc;
    rc = gw_store_active_record_of_device(txn, device_id, &rid);
    if (rc == GW_E_NOT_FOUND)
        return 0;
    if (rc)
        goto err;
    rc = gw_store_record_get(txn, rid, &r);
    if (rc)
        goto err;
    if (r.status != GW_RECORD_PENDING)
        return 0; /* pushed or upgrading: the timeouts decide whether to push again */
    rc = gw_store_task_get(txn, r.task_id, &t);
    if (rc)
        goto err;
    if (r.not_before_ms) {
        /* A new session is a new chance: the retry backoff no longer applies. */
        int64_t old_due = gw__ota_deadline_for(&r, &t.policy);
        r.not_before_ms = 0;
        rc = gw__ota_move(txn, &t, &r, old_due, r.status, NULL, now_ms);
        if (rc)
            goto err;
    }
    rc = gw__ota_offer(eng, txn, &t, &r, now_ms, sink, &pushed);
    if (rc)
        goto err;
    if (pushed)
        rc = gw_store_task_put(txn, &t);
    if (rc)
        goto err;
    return 0;

err:
    sink->n = mark;
    return rc;
}

int gw_ota_on_device_offline(struct gw_ota_engine *eng, struct gw_txn *txn, uint64_t device_id,
                             int64_t now_ms, struct gw_ota_actions *sink)
{
    (void)eng;
    (void)sink;
    return set_device_state(txn, device_id, GW_DEVICE_OFFLINE, now_ms);
}

int gw_ota_on_push_failed(struct gw_ota_engine *eng, struct gw_txn *txn, uint64_t record_id,
                          uint32_t attempt, const char *reason, int64_t now_ms,
                          struct gw_ota_actions *sink)
{
    size_t mark = sink->n;
    char text[GW_DESC_MAX + 1];
    struct gw_record r;
    struct gw_task t;
    int64_t old_due;
    int rc;

    rc = gw_store_record_get(txn, record_id, &r);
    if (rc == GW_E_NOT_FOUND)
        return GW_E_RECORD_NOT_EXISTS;
    if (rc)
        return rc;
    if (r.status != GW_RECORD_PUSHED || r.attempts != attempt)
        return 0; /* stale: the record moved on since that push */
    rc = gw_store_task_get(txn, r.task_id, &t);
    if (rc)
        return rc;
    old_due = gw__ota_deadline_for(&r, &t.policy);
    r.not_before_ms = now_ms + gw__ota_backoff_ms(&t.policy, r.attempts);
    snprintf(text, sizeof(text), "push failed (%.200s)", reason ? reason : "");
    gw__ota_copy_text(r.description, sizeof(r.description), text);
    rc = gw__ota_move(txn, &t, &r, old_due, GW_RECORD_PENDING, text, now_ms);
    if (rc)
        goto err;
    eng->stats.push_failures++;
    rc = gw__ota_settle(eng, txn, &t, now_ms, sink);
    if (rc)
        goto err;
    return 0;

err:
    sink->n = mark;
    return rc;
}

int gw_ota_record_cancel(struct gw_ota_engine *eng, struct gw_txn *txn, uint64_t record_id,
                         int64_t now_ms, struct gw_ota_actions *sink)
{
    size_t mark = sink->n;
    struct gw_record r;
    struct gw_task t;
    int64_t old_due;
    bool sent;
    int rc;

    rc = gw_store_record_get(txn, record_id, &r);
    if (rc == GW_E_NOT_FOUND)
        return GW_E_RECORD_NOT_EXISTS;
    if (rc)
        return rc;
    if (!gw_record_status_active(r.status))
        return GW_E_RECORD_NOT_ACTIVE;
    rc = gw_store_task_get(txn, r.task_id, &t);
    if (rc)
        return rc;
    sent = r.status == GW_RECORD_PUSHED || r.status == GW_RECORD_UPGRADING;
    old_due = gw__ota_deadline_for(&r, &t.policy);
    gw__ota_copy_text(r.description, sizeof(r.description), GW_OTA_DESC_CANCEL_RECORD);
    rc = gw__ota_move(txn, &t, &r, old_due, GW_RECORD_CANCELLED, GW_OTA_DESC_CANCEL_RECORD,
                      now_ms);
    if (rc)
        goto err;
    if (sent) {
        struct gw_ota_action a = { .kind = GW_OTA_ACT_SEND_CANCEL, .device_id = r.device_id,
                                   .record_id = r.id, .task_id = r.task_id,
                                   .firmware_id = r.firmware_id, .attempt = r.attempts };
        rc = gw__ota_emit(sink, &a);
        if (rc)
            goto err;
    }
    rc = gw__ota_settle(eng, txn, &t, now_ms, sink);
    if (rc)
        goto err;
    return 0;

err:
    sink->n = mark;
    return rc;
}

/* ---- tick ---- */

struct due_ctx {
    uint64_t *ids;
    size_t n, cap;
};

static int due_collect(void *vctx, uint64_t id)
{
    struct due_ctx *c = vctx;
    c->ids[c->n++] = id;
    return c->n == c->cap ? 1 : 0;
}

/* A pushed or upgrading record heard nothing in time. */
static int handle_timeout(struct gw_ota_engine *eng, struct gw_txn *txn, struct gw_task *t,
                          struct gw_record *r, int64_t due, int64_t now_ms,
                          struct gw_ota_actions *sink)
{
    const char *phase = r->status == GW_RECORD_PUSHED ? "push timeout" : "upgrade timeout";
    char cause[GW_CAUSE_MAX + 1];
    int rc;

    eng->stats.timeouts++;
    if (r->attempts <= t->policy.max_retries) {
        int64_t wait = gw__ota_backoff_ms(&t->policy, r->attempts);
        r->not_before_ms = now_ms + wait;
        snprintf(cause, sizeof(cause), "%s (retry %u of %u in %llds)", phase,
                 r->attempts ? r->attempts : 1, t->policy.max_retries,
                 (long long)(wait / 1000));
        gw__ota_copy_text(r->description, sizeof(r->description), cause);
        rc = gw__ota_move(txn, t, r, due, GW_RECORD_PENDING, cause, now_ms);
        if (rc)
            return rc;
        eng->stats.retries++;
    } else {
        gw__ota_copy_text(r->description, sizeof(r->description), GW_OTA_DESC_TIMEOUT);
        rc = gw__ota_move(txn, t, r, due, GW_RECORD_FAILURE, phase, now_ms);
        if (rc)
            return rc;
    }
    return gw__ota_settle(eng, txn, t, now_ms, sink);
}

/* A pending record's backoff is over: push it if its device is online. */
static int handle_backoff_end(struct gw_ota_engine *eng, struct gw_txn *txn, struct gw_task *t,
                              struct gw_record *r, int64_t due, int64_t now_ms,
                              struct gw_ota_actions *sink)
{
    struct gw_device d;
    bool pushed = false;
    int rc;

    rc = gw_store_device_get(txn, r->device_id, &d);
    if (rc && rc != GW_E_NOT_FOUND)
        return rc;
    if (rc == 0 && d.state == GW_DEVICE_ONLINE) {
        rc = gw__ota_offer(eng, txn, t, r, now_ms, sink, &pushed);
        if (rc)
            return rc;
    }
    if (pushed)
        return gw_store_task_put(txn, t);
    /* Queued or offline: the wait is over either way (its online event or the FIFO). */
    r->not_before_ms = 0;
    return gw__ota_move(txn, t, r, due, r->status, NULL, now_ms);
}

static int handle_due(struct gw_ota_engine *eng, struct gw_txn *txn, uint64_t record_id,
                      int64_t now_ms, struct gw_ota_actions *sink)
{
    struct gw_record r;
    struct gw_task t;
    int64_t due;
    int rc;

    rc = gw_store_record_get(txn, record_id, &r);
    if (rc == 0)
        rc = gw_store_task_get(txn, r.task_id, &t);
    if (rc == GW_E_NOT_FOUND) {
        rc = gw_store_deadline_clear(txn, record_id);
        return rc == GW_E_NOT_FOUND ? 0 : rc;
    }
    if (rc)
        return rc;
    due = gw__ota_deadline_for(&r, &t.policy);
    if (due == 0) {
        rc = gw_store_deadline_clear(txn, record_id);
        return rc == GW_E_NOT_FOUND ? 0 : rc;
    }
    if (due > now_ms)
        return gw_store_deadline_set(txn, record_id, due); /* stale entry: put it right */
    if (r.status == GW_RECORD_PENDING)
        return handle_backoff_end(eng, txn, &t, &r, due, now_ms, sink);
    return handle_timeout(eng, txn, &t, &r, due, now_ms, sink);
}

static int pump_all(struct gw_ota_engine *eng, struct gw_txn *txn, int64_t now_ms,
                    struct gw_ota_actions *sink)
{
    size_t budget = GW_OTA_TICK_SCAN_MAX, n = eng->ts_n;
    uint64_t *ids;
    int rc = 0;

    if (n == 0)
        return 0;
    /* Snapshot: pumping may drop entries of tasks found finished. */
    ids = malloc(n * sizeof(*ids));
    if (!ids)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        ids[i] = eng->ts[i]->task_id;
    for (size_t i = 0; i < n && budget > 0; i++) {
        struct gw__ota_task_state *ts = gw__ota_ts_find(eng, ids[i]);
        struct gw_task t;
        size_t pushed = 0;

        if (!ts || (ts->ready_n == 0 && ts->sweep_done))
            continue;
        rc = gw_store_task_get(txn, ids[i], &t);
        if (rc == GW_E_NOT_FOUND || (rc == 0 && t.status != GW_TASK_IN_PROGRESS)) {
            gw__ota_ts_drop(eng, ids[i]); /* stale entry */
            rc = 0;
            continue;
        }
        if (rc)
            break;
        rc = gw__ota_pump(eng, txn, &t, now_ms, sink, &budget, &pushed);
        if (rc == 0 && pushed)
            rc = gw_store_task_put(txn, &t);
        if (rc)
            break;
    }
    free(ids);
    return rc;
}

int gw_ota_tick(struct gw_ota_engine *eng, struct gw_txn *txn, int64_t now_ms,
                struct gw_ota_actions *sink)
{
    struct due_ctx c = { .cap = GW_OTA_TICK_DUE_MAX };
    size_t mark = sink->n;
    int rc;

    c.ids = malloc(c.cap * sizeof(*c.ids));
    if (!c.ids)
        return -ENOMEM;
    /* Collect first: handling a deadline rewrites the deadline index being walked. */
    rc = gw_store_deadline_iter_due(txn, now_ms, due_collect, &c);
    for (size_t i = 0; rc == 0 && i < c.n; i++)
        rc = handle_due(eng, txn, c.ids[i], now_ms, sink);
    free(c.ids);
    if (rc == 0)
        rc = pump_all(eng, txn, now_ms, sink);
    if (rc)
        sink->n = mark;
    return rc;
}
