/*
 * DESIGN: the record state machine's one door (gw__ota_move) and the task bookkeeping around
 * it: status counts, success count, history, deadline index, push, end check, failure-ratio
 * abort, task cancel, and the per-task pump (ready FIFO, then sweep). Core thread only.
 * Invariants kept here, in the caller's write transaction:
 *  - every status change of a record appends exactly one history entry (from, to, cause);
 *  - task.status_count[] and device_success_count follow every change of a record's status;
 *  - a record has a deadline entry iff gw__ota_deadline_for(record) != 0, and the entry is
 *    never later than that time: a progress report that only pushes the upgrade timeout
 *    further leaves the entry where it was (no index rewrite on the hot path); when it fires
 *    early, handle_due() finds the record not yet due and moves the entry to the real time;
 *  - a task in progress with no active record becomes ENDED in the same transaction.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ota_internal.h"

#define SWEEP_CHUNK 256
#define CANCEL_CHUNK 256

uint32_t gw__ota_in_flight(const struct gw_task *t)
{
    return t->status_count[gw_record_status_index(GW_RECORD_PUSHED)] +
           t->status_count[gw_record_status_index(GW_RECORD_UPGRADING)];
}

uint32_t gw__ota_active_count(const struct gw_task *t)
{
    return t->status_count[gw_record_status_index(GW_RECORD_PENDING)] + gw__ota_in_flight(t);
}

bool gw__ota_has_room(struct gw_ota_engine *eng, const struct gw_task *t, int64_t now_ms)
{
    if (t->policy.max_concurrent && gw__ota_in_flight(t) >= t->policy.max_concurrent)
        return false;
    if (t->policy.rate_per_minute &&
        !gw__ota_rate_allows(gw__ota_ts_find(eng, t->id), t->policy.rate_per_minute, now_ms))
        return false;
    return true;
}

int64_t gw__ota_deadline_for(const struct gw_record *r, const struct gw_task_policy *p)
{
    int64_t base;

    switch (r->status) {
    case GW_RECORD_PENDING:
        return r->not_before_ms > 0 ? r->not_before_ms : 0;
    case GW_RECORD_PUSHED:
        return p->push_timeout_s ? r->status_time_ms + (int64_t)p->push_timeout_s * 1000 : 0;
    case GW_RECORD_UPGRADING:
        if (!p->upgrade_timeout_s)
            return 0;
        /* The clock restarts at every report while upgrading. */
        base = r->report_time_ms > r->status_time_ms ? r->report_time_ms : r->status_time_ms;
        return base + (int64_t)p->upgrade_timeout_s * 1000;
    default:
        return 0;
    }
}

int64_t gw__ota_backoff_ms(const struct gw_task_policy *p, uint32_t attempts)
{
    int64_t base = (int64_t)p->retry_backoff_s * 1000;
    int64_t cap = base > GW_OTA_BACKOFF_CAP_MS ? base : GW_OTA_BACKOFF_CAP_MS;
    int64_t d = base;

    /* base * 2^(attempts-1), doubling step by step so it can never overflow. */
    for (uint32_t k = 1; k < attempts && d > 0 && d < cap; k++)
        d *= 2;
    return d < cap ? d : cap;
}

void gw__ota_copy_text(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;

    if (n >= cap) {
        n = cap - 1;
        /* Never leave half a UTF-8 sequence: back up to the start of the cut character. */
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

int gw__ota_move(struct gw_txn *txn, struct gw_task *t, struct gw_record *r, int64_t old_due,
                 int to, const char *cause, int64_t now_ms)
{
    int from = r->status;
    int64_t new_due;
    int rc;

    if (from != to) {
        struct gw_history_entry h = { .time_ms = now_ms, .from_status = from, .to_status = to };

        t->status_count[gw_record_status_index(from)]--;
        t->status_count[gw_record_status_index(to)]++;
        if (to == GW_RECORD_SUCCESS)
            t->device_success_count++;
        t->update_time_ms = now_ms;
        r->status = to;
        r->status_time_ms = now_ms;
        gw__ota_copy_text(h.cause, sizeof(h.cause), cause);
        rc = gw_store_history_append(txn, r->id, &h);
        if (rc)
            return rc;
    }
    rc = gw_store_record_put(txn, r);
    if (rc)
        return rc;
    new_due = gw__ota_deadline_for(r, &t->policy);
    if (new_due == old_due)
        return 0;
    /* Same status, deadline only later: keep the earlier entry (see the invariant above). */
    if (from == to && old_due != 0 && new_due > old_due)
        return 0;
    if (new_due)
        return gw_store_deadline_set(txn, r->id, new_due);
    rc = gw_store_deadline_clear(txn, r->id);
    return rc == GW_E_NOT_FOUND ? 0 : rc;
}

int gw__ota_push(struct gw_ota_engine *eng, struct gw_txn *txn, struct gw_task *t,
                 struct gw_record *r, int64_t now_ms, struct gw_ota_actions *sink)
{
    int64_t old_due = gw__ota_deadline_for(r, &t->policy);
    struct gw__ota_task_state *ts = NULL;
    struct gw_ota_action a;
    char cause[48];
    int rc;

    if (t->policy.rate_per_minute) {
        rc = gw__ota_ts_get(eng, t->id, &ts);
        if (rc)
            return rc;
    }
    r->attempts++;
    r->not_before_ms = 0;
    snprintf(cause, sizeof(cause), "pushed (attempt %u)", r->attempts);
    gw__ota_copy_text(r->description, sizeof(r->description), cause);
    rc = gw__ota_move(txn, t, r, old_due, GW_RECORD_PUSHED, cause, now_ms);
    if (rc)
        return rc;
    if (ts) {
        rc = gw__ota_rate_note(ts, t->policy.rate_per_minute, now_ms);
        if (rc)
            return rc;
    }
    a = (struct gw_ota_action){ .kind = GW_OTA_ACT_PUSH_UPGRADE, .device_id = r->device_id,
                                .record_id = r->id, .task_id = r->task_id,
                                .firmware_id = r->firmware_id, .attempt = r->attempts };
    rc = gw__ota_emit(sink, &a);
    if (rc)
        return rc;
    eng->stats.pushes++;
    return 0;
}

int gw__ota_offer(struct gw_ota_engine *eng, struct gw_txn *txn, struct gw_task *t,
                  struct gw_record *r, int64_t now_ms, struct gw_ota_actions *sink,
                  bool *pushed)
{
    struct gw__ota_task_state *ts;
    int rc;

    *pushed = false;
    if (t->status != GW_TASK_IN_PROGRESS || r->status != GW_RECORD_PENDING)
        return 0;
    if (gw__ota_has_room(eng, t, now_ms)) {
        rc = gw__ota_push(eng, txn, t, r, now_ms, sink);
        if (rc == 0)
            *pushed = true;
        return rc;
    }
    rc = gw__ota_ts_get(eng, t->id, &ts);
    if (rc)
        return rc;
    return gw__ota_ready_add(ts, r->id);
}

/* ---- task end, abort, cancel ---- */

static bool abort_due(const struct gw_task *t)
{
    double ratio = t->policy.abort_failure_ratio;
    uint64_t ok = t->status_count[gw_record_status_index(GW_RECORD_SUCCESS)];
    uint64_t bad = t->status_count[gw_record_status_index(GW_RECORD_FAILURE)];
    uint64_t min = t->policy.abort_min_sample ? t->policy.abort_min_sample : 1;

    /* The sample is the records with an outcome (success or failure): records cancelled by
     * an administrator say nothing about the firmware. */
    if (ratio <= 0.0 || ok + bad < min)
        return false;
    return (double)bad >= ratio * (double)(ok + bad);
}

static int emit_task_ended(struct gw_ota_actions *sink, const struct gw_task *t)
{
    struct gw_ota_action a = { .kind = GW_OTA_ACT_TASK_ENDED, .task_id = t->id,
                               .firmware_id = t->firmware_id, .task_status = t->status };
    return gw__ota_emit(sink, &a);
}

int gw__ota_settle(struct gw_ota_engine *eng, struct gw_txn *txn, struct gw_task *t,
                   int64_t now_ms, struct gw_ota_actions *sink)
{
    size_t budget = GW_OTA_TICK_SCAN_MAX, pushed = 0;
    char reason[GW_CAUSE_MAX + 1];
    int rc;

    if (t->status != GW_TASK_IN_PROGRESS)
        return gw_store_task_put(txn, t);
    if (gw__ota_active_count(t) == 0) {
        t->status = GW_TASK_ENDED;
        t->update_time_ms = now_ms;
        rc = gw_store_task_put(txn, t);
        if (rc)
            return rc;
        rc = emit_task_ended(sink, t);
        if (rc)
            return rc;
        gw__ota_ts_drop(eng, t->id);
        eng->stats.tasks_ended++;
        return 0;
    }
    if (abort_due(t)) {
        snprintf(reason, sizeof(reason), "aborted: failure ratio %g exceeded",
                 t->policy.abort_failure_ratio);
        rc = gw__ota_cancel_task(eng, txn, t, reason, reason, now_ms, sink);
        if (rc == 0)
            eng->stats.tasks_aborted++;
        return rc;
    }
    rc = gw__ota_pump(eng, txn, t, now_ms, sink, &budget, &pushed);
    if (rc)
        return rc;
    return gw_store_task_put(txn, t);
}

/* Collects up to cap records of a task after a given id (copies), in id order. */
struct chunk_ctx {
    struct gw_record *v;
    size_t n, cap;
    bool active_only;
    uint64_t last_id; /* last record seen, kept or not */
    bool full;
};

static int chunk_collect(void *vctx, const struct gw_record *r)
{
    struct chunk_ctx *c = vctx;

    c->last_id = r->id;
    if (c->active_only && !gw_record_status_active(r->status))
        return 0;
    c->v[c->n++] = *r;
    if (c->n == c->cap) {
        c->full = true;
        return 1;
    }
    return 0;
}

int gw__ota_cancel_task(struct gw_ota_engine *eng, struct gw_txn *txn, struct gw_task *t,
                        const char *end_reason, const char *desc, int64_t now_ms,
                        struct gw_ota_actions *sink)
{
    struct chunk_ctx c = { .cap = CANCEL_CHUNK, .active_only = true };
    uint64_t after = 0;
    int rc = 0;

    c.v = malloc(c.cap * sizeof(*c.v));
    if (!c.v)
        return -ENOMEM;
    /* In chunks: the store's iterator must not see writes of its own table mid-walk. */
    do {
        c.n = 0;
        c.full = false;
        rc = gw_store_record_iter_task(txn, t->id, after, chunk_collect, &c);
        if (rc)
            goto out;
        after = c.last_id;
        for (size_t i = 0; i < c.n; i++) {
            struct gw_record *r = &c.v[i];
            bool sent = r->status == GW_RECORD_PUSHED || r->status == GW_RECORD_UPGRADING;
            int64_t old_due = gw__ota_deadline_for(r, &t->policy);

            gw__ota_copy_text(r->description, sizeof(r->description), desc);
            rc = gw__ota_move(txn, t, r, old_due, GW_RECORD_CANCELLED, desc, now_ms);
            if (rc)
                goto out;
            if (sent) {
                struct gw_ota_action a = { .kind = GW_OTA_ACT_SEND_CANCEL,
                                           .device_id = r->device_id, .record_id = r->id,
                                           .task_id = t->id, .firmware_id = t->firmware_id,
                                           .attempt = r->attempts };
                rc = gw__ota_emit(sink, &a);
                if (rc)
                    goto out;
            }
        }
    } while (c.full);
    t->status = GW_TASK_CANCELLED;
    t->update_time_ms = now_ms;
    gw__ota_copy_text(t->end_reason, sizeof(t->end_reason), end_reason);
    rc = gw_store_task_put(txn, t);
    if (rc)
        goto out;
    rc = emit_task_ended(sink, t);
    if (rc)
        goto out;
    gw__ota_ts_drop(eng, t->id);
out:
    free(c.v);
    return rc;
}

/* ---- pump ---- */

/* Whether r can be pushed now apart from the task's limits. */
static int pushable(struct gw_txn *txn, const struct gw_record *r, int64_t now_ms, bool *yes)
{
    struct gw_device d;
    int rc;

    *yes = false;
    if (r->status != GW_RECORD_PENDING)
        return 0;
    if (r->not_before_ms > now_ms)
        return 0; /* its deadline brings it back */
    rc = gw_store_device_get(txn, r->device_id, &d);
    if (rc == GW_E_NOT_FOUND)
        return 0;
    if (rc)
        return rc;
    *yes = d.state == GW_DEVICE_ONLINE;
    return 0;
}

static int pump_ready(struct gw_ota_engine *eng, struct gw_txn *txn, struct gw_task *t,
                      struct gw__ota_task_state *ts, int64_t now_ms,
                      struct gw_ota_actions *sink, size_t *budget, size_t *pushed)
{
    uint64_t id;
    int rc;

    while (*budget > 0 && ts->ready_n > 0 && gw__ota_has_room(eng, t, now_ms)) {
        struct gw_record r;
        bool yes;

        gw__ota_ready_pop(ts, &id);
        (*budget)--;
        rc = gw_store_record_get(txn, id, &r);
        if (rc == GW_E_NOT_FOUND)
            continue; /* stale entry (an aborted transaction) */
        if (rc)
            return rc;
        if (r.task_id != t->id)
            continue;
        /* A push failure since it was queued set a backoff: its deadline brings it back. */
        rc = pushable(txn, &r, now_ms, &yes);
        if (rc)
            return rc;
        if (!yes)
            continue;
        rc = gw__ota_push(eng, txn, t, &r, now_ms, sink);
        if (rc)
            return rc;
        (*pushed)++;
    }
    return 0;
}

static int pump_sweep(struct gw_ota_engine *eng, struct gw_txn *txn, struct gw_task *t,
                      struct gw__ota_task_state *ts, int64_t now_ms,
                      struct gw_ota_actions *sink, size_t *budget, size_t *pushed)
{
    struct chunk_ctx c = { 0 };
    int rc = 0;

    c.v = malloc(SWEEP_CHUNK * sizeof(*c.v));
    if (!c.v)
        return -ENOMEM;
    while (!ts->sweep_done && *budget > 0 && gw__ota_has_room(eng, t, now_ms)) {
        bool stop = false;

        c.n = 0;
        c.full = false;
        c.cap = *budget < SWEEP_CHUNK ? *budget : SWEEP_CHUNK;
        rc = gw_store_record_iter_task(txn, t->id, ts->cursor, chunk_collect, &c);
        if (rc)
            goto out;
        for (size_t i = 0; i < c.n && !stop; i++) {
            struct gw_record *r = &c.v[i];
            bool yes;

            rc = pushable(txn, r, now_ms, &yes);
            if (rc)
                goto out;
            if (yes && !gw__ota_has_room(eng, t, now_ms)) {
                stop = true; /* the cursor stays before it: the next pump starts here */
                break;
            }
            (*budget)--;
            if (yes) {
                rc = gw__ota_push(eng, txn, t, r, now_ms, sink);
                if (rc)
                    goto out;
                (*pushed)++;
            }
            ts->cursor = r->id;
        }
        if (!stop && !c.full)
            ts->sweep_done = true; /* the walk reached the task's last record */
        if (stop)
            break;
    }
out:
    free(c.v);
    return rc;
}

int gw__ota_pump(struct gw_ota_engine *eng, struct gw_txn *txn, struct gw_task *t,
                 int64_t now_ms, struct gw_ota_actions *sink, size_t *budget, size_t *pushed)
{
    struct gw__ota_task_state *ts = gw__ota_ts_find(eng, t->id);
    int rc;

    *pushed = 0;
    if (!ts || t->status != GW_TASK_IN_PROGRESS)
        return 0;
    if (ts->ready_n == 0 && ts->sweep_done)
        return 0;
    rc = pump_ready(eng, txn, t, ts, now_ms, sink, budget, pushed);
    if (rc)
        return rc;
    return pump_sweep(eng, txn, t, ts, now_ms, sink, budget, pushed);
}
