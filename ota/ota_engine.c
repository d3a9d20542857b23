/*
 * DESIGN: the OTA engine object: defaults, counters, the action sink, and the in-memory
 * scheduling cache per task in progress (sweep cursor, ready FIFO, rate window).
 * Core thread only. The cache never decides correctness: every record taken from it is
 * re-read and re-checked in the store before it is pushed, so a stale entry (after an
 * aborted transaction) costs a read, never a wrong push; gw_ota_engine_load() resets it.
 * Invariant: eng->ts is sorted by task_id, one entry per task id.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ota_internal.h"

void gw_ota_policy_defaults(struct gw_task_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->push_timeout_s = GW_OTA_DEFAULT_PUSH_TIMEOUT_S;
    p->upgrade_timeout_s = GW_OTA_DEFAULT_UPGRADE_TIMEOUT_S;
    p->max_retries = GW_OTA_DEFAULT_MAX_RETRIES;
    p->retry_backoff_s = GW_OTA_DEFAULT_RETRY_BACKOFF_S;
    p->max_concurrent = GW_OTA_DEFAULT_MAX_CONCURRENT;
    p->rate_per_minute = GW_OTA_DEFAULT_RATE_PER_MINUTE;
    p->abort_failure_ratio = GW_OTA_DEFAULT_ABORT_RATIO;
    p->abort_min_sample = GW_OTA_DEFAULT_ABORT_MIN_SAMPLE;
}

int gw_ota_policy_check(const struct gw_task_policy *p)
{
    if (p->rate_per_minute > GW_OTA_RATE_MAX || p->max_retries > GW_OTA_RETRIES_MAX)
        return GW_E_BAD_FIELD;
    if (!isfinite(p->abort_failure_ratio) || p->abort_failure_ratio < 0.0 ||
        p->abort_failure_ratio > 1.0)
        return GW_E_BAD_FIELD;
    return 0;
}

/* ---- actions ---- */

void gw_ota_actions_init(struct gw_ota_actions *a)
{
    memset(a, 0, sizeof(*a));
}

void gw_ota_actions_fini(struct gw_ota_actions *a)
{
    free(a->v);
    memset(a, 0, sizeof(*a));
}

void gw_ota_actions_clear(struct gw_ota_actions *a)
{
    a->n = 0;
}

int gw__ota_emit(struct gw_ota_actions *sink, const struct gw_ota_action *a)
{
    if (sink->n == sink->cap) {
        size_t cap = sink->cap ? sink->cap * 2 : 64;
        struct gw_ota_action *v = realloc(sink->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        sink->v = v;
        sink->cap = cap;
    }
    sink->v[sink->n++] = *a;
    return 0;
}

/* ---- engine ---- */

int gw_ota_engine_create(const struct gw_task_policy *defaults, struct gw_ota_engine **out)
{
    struct gw_ota_engine *eng;
    int rc;

    *out = NULL;
    eng = calloc(1, sizeof(*eng));
    if (!eng)
        return -ENOMEM;
    if (defaults)
        eng->defaults = *defaults;
    else
        gw_ota_policy_defaults(&eng->defaults);
    rc = gw_ota_policy_check(&eng->defaults);
    if (rc)
        goto err_free;
    *out = eng;
    return 0;

err_free:
    free(eng);
    return rc;
}

static void ts_free(struct gw__ota_task_state *ts)
{
    if (!ts)
        return;
    free(ts->ready);
    free(ts->rate);
    free(ts);
}

void gw_ota_engine_destroy(struct gw_ota_engine *eng)
{
    if (!eng)
        return;
    for (size_t i = 0; i < eng->ts_n; i++)
        ts_free(eng->ts[i]);
    free(eng->ts);
    free(eng);
}

void gw_ota_engine_stats(const struct gw_ota_engine *eng, struct gw_ota_stats *out)
{
    *out = eng->stats;
}

const struct gw_task_policy *gw_ota_engine_defaults(const struct gw_ota_engine *eng)
{
    return &eng->defaults;
}

/* ---- task-state table ---- */

/* Index of the first entry with task_id >= id. */
static size_t ts_lower_bound(const struct gw_ota_engine *eng, uint64_t id)
{
    size_t lo = 0, hi = eng->ts_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (eng->ts[mid]->task_id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct gw__ota_task_state *gw__ota_ts_find(struct gw_ota_engine *eng, uint64_t task_id)
{
    size_t i = ts_lower_bound(eng, task_id);
    if (i < eng->ts_n && eng->ts[i]->task_id == task_id)
        return eng->ts[i];
    return NULL;
}

int gw__ota_ts_get(struct gw_ota_engine *eng, uint64_t task_id, struct gw__ota_task_state **out)
{
    size_t i = ts_lower_bound(eng, task_id);
    struct gw__ota_task_state *ts;

    if (i < eng->ts_n && eng->ts[i]->task_id == task_id) {
        *out = eng->ts[i];
        return 0;
    }
    if (eng->ts_n == eng->ts_cap) {
        size_t cap = eng->ts_cap ? eng->ts_cap * 2 : 16;
        struct gw__ota_task_state **v = realloc(eng->ts, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        eng->ts = v;
        eng->ts_cap = cap;
    }
    ts = calloc(1, sizeof(*ts));
    if (!ts)
        return -ENOMEM;
    ts->task_id = task_id;
    ts->sweep_done = true;
    memmove(&eng->ts[i + 1], &eng->ts[i], (eng->ts_n - i) * sizeof(*eng->ts));
    eng->ts[i] = ts;
    eng->ts_n++;
    *out = ts;
    return 0;
}

void gw__ota_ts_drop(struct gw_ota_engine *eng, uint64_t task_id)
{
    size_t i = ts_lower_bound(eng, task_id);
    if (i >= eng->ts_n || eng->ts[i]->task_id != task_id)
        return;
    ts_free(eng->ts[i]);
    memmove(&eng->ts[i], &eng->ts[i + 1], (eng->ts_n - i - 1) * sizeof(*eng->ts));
    eng->ts_n--;
}

int gw__ota_ready_add(struct gw__ota_task_state *ts, uint64_t record_id)
{
    if (ts->ready_n == ts->ready_cap) {
        size_t cap = ts->ready_cap ? ts->ready_cap * 2 : 16;
        uint64_t *v = malloc(cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        /* Unroll the ring into the new array, oldest first. */
        for (size_t k = 0; k < ts->ready_n; k++)
            v[k] = ts->ready[(ts->ready_head + k) % ts->ready_cap];
        free(ts->ready);
        ts->ready = v;
        ts->ready_cap = cap;
        ts->ready_head = 0;
    }
    ts->ready[(ts->ready_head + ts->ready_n) % ts->ready_cap] = record_id;
    ts->ready_n++;
    return 0;
}

bool gw__ota_ready_pop(struct gw__ota_task_state *ts, uint64_t *record_id)
{
    if (ts->ready_n == 0)
        return false;
    *record_id = ts->ready[ts->ready_head];
    ts->ready_head = (ts->ready_head + 1) % ts->ready_cap;
    ts->ready_n--;
    return true;
}

/* ---- rate window: exact sliding minute, one slot per allowed push ---- */

static void rate_expire(struct gw__ota_task_state *ts, int64_t now_ms)
{
    while (ts->rate_n > 0 && ts->rate[ts->rate_head] <= now_ms - GW_OTA_MINUTE_MS) {
        ts->rate_head = (ts->rate_head + 1) % ts->rate_cap;
        ts->rate_n--;
    }
}

bool gw__ota_rate_allows(struct gw__ota_task_state *ts, uint32_t rate, int64_t now_ms)
{
    if (rate == 0)
        return true;
    if (!ts || !ts->rate)
        return true; /* nothing pushed yet under this window */
    rate_expire(ts, now_ms);
    return ts->rate_n < ts->rate_cap;
}

int gw__ota_rate_note(struct gw__ota_task_state *ts, uint32_t rate, int64_t now_ms)
{
    if (rate == 0)
        return 0;
    if (!ts->rate) {
        ts->rate = calloc(rate, sizeof(*ts->rate));
        if (!ts->rate)
            return -ENOMEM;
        ts->rate_cap = rate;
        ts->rate_head = ts->rate_n = 0;
    }
    rate_expire(ts, now_ms);
    if (ts->rate_n == ts->rate_cap) {
        /* Defensive (every push asks gw__ota_rate_allows first): drop the oldest so the
         * ring stays a window of the newest pushes. */
        ts->rate_head = (ts->rate_head + 1) % ts->rate_cap;
        ts->rate_n--;
    }
    ts->rate[(ts->rate_head + ts->rate_n) % ts->rate_cap] = now_ms;
    ts->rate_n++;
    return 0;
}

int64_t gw__ota_rate_next(const struct gw__ota_task_state *ts, uint32_t rate, int64_t now_ms)
{
    (void)now_ms;
    if (rate == 0 || !ts || !ts->rate || ts->rate_n < ts->rate_cap)
        return 0;
    return ts->rate[ts->rate_head] + GW_OTA_MINUTE_MS;
}

/* ---- load ---- */

struct load_ctx {
    uint64_t *ids;
    size_t n, cap;
};

static int load_collect(void *vctx, const struct gw_task *t)
{
    struct load_ctx *c = vctx;
    if (t->status != GW_TASK_IN_PROGRESS)
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        uint64_t *v = realloc(c->ids, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        c->ids = v;
        c->cap = cap;
    }
    c->ids[c->n++] = t->id;
    return 0;
}

int gw_ota_engine_load(struct gw_ota_engine *eng, struct gw_txn *txn)
{
    struct load_ctx c = { 0 };
    size_t i, j;
    int rc;

    rc = gw_store_task_iter(txn, false, 0, load_collect, &c);
    if (rc)
        goto out;
    /* Drop entries of tasks no longer in progress (c.ids is ascending, like eng->ts). */
    for (i = 0, j = 0; i < eng->ts_n;) {
        while (j < c.n && c.ids[j] < eng->ts[i]->task_id)
            j++;
        if (j < c.n && c.ids[j] == eng->ts[i]->task_id)
            i++;
        else
            gw__ota_ts_drop(eng, eng->ts[i]->task_id);
    }
    /* Every task in progress sweeps again from its first record; rate windows and ready
     * FIFOs of known tasks are kept (re-checked on use). */
    for (i = 0; i < c.n; i++) {
        struct gw__ota_task_state *ts;
        rc = gw__ota_ts_get(eng, c.ids[i], &ts);
        if (rc)
            goto out;
        ts->cursor = 0;
        ts->sweep_done = false;
    }
out:
    free(c.ids);
    return rc;
}

/* ---- next wake-up ---- */

int gw_ota_next_wakeup(struct gw_ota_engine *eng, struct gw_txn *txn, int64_t now_ms,
                       int64_t *due_ms)
{
    int64_t best = INT64_MAX, d;
    int rc;

    rc = gw_store_deadline_next(txn, &d);
    if (rc == 0)
        best = d;
    else if (rc != GW_E_NOT_FOUND)
        return rc;
    for (size_t i = 0; i < eng->ts_n && best > now_ms; i++) {
        struct gw__ota_task_state *ts = eng->ts[i];
        struct gw_task t;
        if (ts->ready_n == 0 && ts->sweep_done)
            continue;
        rc = gw_store_task_get(txn, ts->task_id, &t);
        if (rc == GW_E_NOT_FOUND)
            continue;
        if (rc)
            return rc;
        if (t.policy.max_concurrent && gw__ota_in_flight(&t) >= t.policy.max_concurrent)
            continue; /* a slot frees on an event, which pushes by itself */
        d = gw__ota_rate_next(ts, t.policy.rate_per_minute, now_ms);
        if (d == 0 || d < now_ms)
            d = now_ms;
        if (d < best)
            best = d;
    }
    if (best == INT64_MAX)
        return GW_E_NOT_FOUND;
    *due_ms = best;
    return 0;
}
