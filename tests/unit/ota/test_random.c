/*
 * Randomized test of the OTA engine: thousands of seeded random steps (task creates in both
 * scopes, task and record cancels, progress reports valid or not, in any order, ticks with
 * the clock moving, devices going on and offline, push failures, commits, aborted batches,
 * reloads and restarts), checking after every step:
 *  - at most one active record per device, and active_record_by_device agrees;
 *  - every task's status_count[], total and success count equal what its records say;
 *  - a task is in progress iff it was not cancelled and has an active record;
 *  - terminal records and finished tasks never change;
 *  - every record's history chains from 0 to its current status;
 *  - every refused call returns the expected code and changes nothing;
 *  - pushes go to online devices only, within the task's rate per minute.
 * GW_TEST_SEED=<n> replays a run; GW_TEST_STEPS=<n> changes its length.
 */
#include "ota_fixture.h"

#include <errno.h>
#include <time.h>

#include "gw_log.h"

#define NDEV 24
#define SEC 1000LL
#define MAX_IDS 65536
#define PUSH_RING 64

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64*: deterministic for a seed, independent of libc. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static uint32_t rn(uint32_t n)
{
    return (uint32_t)(rnd() % n);
}

/* ---- model: what must never change, and what was pushed when ---- */

struct snap_rec {
    bool known, committed;
    int status, progress;
    uint32_t attempts;
    int64_t status_time;
    char desc[GW_DESC_MAX + 1];
};

struct snap_task {
    bool known, committed;
    struct gw_task t;
};

struct push_note {
    uint64_t record_id;
    uint32_t attempt;
};

struct model {
    struct fx *f;
    uint64_t fw3;
    struct snap_rec *rec;   /* by record id */
    struct snap_task *task; /* by task id */
    uint64_t live[256];     /* tasks in progress at the last check */
    size_t nlive;
    struct push_note pushes[PUSH_RING];
    size_t npush;
    /* Push times per task since the last reset (a restart forgets rate windows). */
    int64_t *push_times[MAX_IDS / 64];
    size_t push_n[MAX_IDS / 64];
    unsigned task_counter;
    uint64_t stats_ops[10];
};

static struct model *M;

static void rate_reset(void)
{
    for (size_t i = 0; i < MAX_IDS / 64; i++) {
        free(M->push_times[i]);
        M->push_times[i] = NULL;
        M->push_n[i] = 0;
    }
}

/* Notes a push of task_id now and checks the task's rate in the last minute. */
static void rate_note(uint64_t task_id, uint32_t rate, int64_t now)
{
    size_t n, in_window = 0;

    assert_true(task_id < MAX_IDS / 64);
    n = M->push_n[task_id];
    M->push_times[task_id] = realloc(M->push_times[task_id], (n + 1) * sizeof(int64_t));
    assert_non_null(M->push_times[task_id]);
    M->push_times[task_id][n] = now;
    M->push_n[task_id] = n + 1;
    if (!rate)
        return;
    for (size_t i = 0; i <= n; i++)
        if (M->push_times[task_id][i] > now - 60 * SEC)
            in_window++;
    assert_true(in_window <= rate);
}

static void live_add(uint64_t id)
{
    for (size_t i = 0; i < M->nlive; i++)
        if (M->live[i] == id)
            return;
    assert_true(M->nlive < 256);
    M->live[M->nlive++] = id;
}

static int live_collect(void *ctx, const struct gw_task *t)
{
    (void)ctx;
    if (t->status == GW_TASK_IN_PROGRESS)
        live_add(t->id);
    return 0;
}

static void model_commit(void)
{
    for (size_t i = 0; i < MAX_IDS; i++) {
        M->rec[i].committed = M->rec[i].known;
        M->task[i].committed = M->task[i].known;
    }
}

/* The batch was aborted: forget what the store forgot. */
static void model_abort(void)
{
    for (size_t i = 0; i < MAX_IDS; i++) {
        if (!M->rec[i].committed)
            M->rec[i].known = false;
        if (!M->task[i].committed)
            M->task[i].known = false;
    }
    M->nlive = 0;
    assert_int_equal(gw_store_task_iter(M->f->txn, false, 0, live_collect, NULL), 0);
    M->npush = 0;
    rate_reset();
}

/* ---- invariant checks ---- */

struct walk {
    uint32_t count[6];
    uint32_t n;
    uint64_t active_of_dev[NDEV + 2];
    uint32_t nactive_of_dev[NDEV + 2];
};

static size_t dev_index(uint64_t device_id)
{
    for (size_t i = 0; i < NDEV; i++)
        if (M->f->dev[i] == device_id)
            return i;
    assert_true(device_id == M->f->other_dev);
    return NDEV;
}

static int walk_cb(void *ctx, const struct gw_record *r)
{
    struct walk *w = ctx;
    struct snap_rec *s;
    int i = gw_record_status_index(r->status);

    assert_true(i >= 0);
    assert_true(r->id < MAX_IDS);
    w->count[i]++;
    w->n++;
    assert_true(fx_history_complete(M->f, r));
    s = &M->rec[r->id];
    if (gw_record_status_active(r->status)) {
        size_t d = dev_index(r->device_id);
        assert_false(s->known); /* a terminal record never becomes active again */
        w->nactive_of_dev[d]++;
        w->active_of_dev[d] = r->id;
        return 0;
    }
    if (!s->known) {
        s->known = true;
        s->committed = false;
        s->status = r->status;
        s->progress = r->progress;
        s->attempts = r->attempts;
        s->status_time = r->status_time_ms;
        snprintf(s->desc, sizeof(s->desc), "%s", r->description);
        return 0;
    }
    assert_int_equal(s->status, r->status);
    assert_int_equal(s->progress, r->progress);
    assert_int_equal(s->attempts, r->attempts);
    assert_int_equal(s->status_time, r->status_time_ms);
    assert_string_equal(s->desc, r->description);
    return 0;
}

static void check_task(uint64_t task_id, struct walk *w)
{
    struct gw_task t = fx_get_task(M->f, task_id);
    struct walk mine = { 0 };
    uint32_t active;

    assert_int_equal(gw_store_record_iter_task(M->f->txn, task_id, 0, walk_cb, &mine), 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(t.status_count[i], mine.count[i]);
    assert_int_equal(t.device_total_count, mine.n);
    assert_int_equal(t.device_success_count, mine.count[3]);
    active = mine.count[0] + mine.count[1] + mine.count[2];
    if (t.status == GW_TASK_IN_PROGRESS) {
        assert_true(active > 0);
    } else {
        assert_int_equal(active, 0);
        if (t.status == GW_TASK_CANCELLED)
            assert_true(strcmp(t.end_reason, GW_OTA_END_REASON_ADMIN) == 0 ||
                        strncmp(t.end_reason, "aborted: failure ratio", 22) == 0);
        else
            assert_int_equal(t.status, GW_TASK_ENDED);
        if (!M->task[task_id].known) {
            M->task[task_id].known = true;
            M->task[task_id].committed = false;
            M->task[task_id].t = t;
        } else {
            const struct gw_task *o = &M->task[task_id].t;
            assert_int_equal(o->status, t.status);
            assert_memory_equal(o->status_count, t.status_count, sizeof(t.status_count));
            assert_int_equal(o->device_success_count, t.device_success_count);
            assert_int_equal(o->device_total_count, t.device_total_count);
            assert_int_equal(o->update_time_ms, t.update_time_ms);
            assert_string_equal(o->end_reason, t.end_reason);
        }
    }
    for (size_t d = 0; d < NDEV + 2; d++) {
        w->nactive_of_dev[d] += mine.nactive_of_dev[d];
        if (mine.nactive_of_dev[d])
            w->active_of_dev[d] = mine.active_of_dev[d];
    }
}

static void check_devices(const struct walk *w)
{
    for (size_t d = 0; d <= NDEV; d++) {
        uint64_t dev = d < NDEV ? M->f->dev[d] : M->f->other_dev, rid;
        int rc = gw_store_active_record_of_device(M->f->txn, dev, &rid);

        assert_true(w->nactive_of_dev[d] <= 1);
        if (w->nactive_of_dev[d]) {
            assert_int_equal(rc, 0);
            assert_int_equal(rid, w->active_of_dev[d]);
        } else {
            assert_int_equal(rc, GW_E_NOT_FOUND);
        }
    }
}

/* After every step: the tasks in progress (and those that just finished). */
static void check_step(void)
{
    struct walk w = { 0 };
    size_t keep = 0;

    for (size_t i = 0; i < M->nlive; i++) {
        check_task(M->live[i], &w);
        if (fx_get_task(M->f, M->live[i]).status == GW_TASK_IN_PROGRESS)
            M->live[keep++] = M->live[i];
    }
    M->nlive = keep;
    check_devices(&w);
}

static int all_tasks_cb(void *ctx, const struct gw_task *t)
{
    check_task(t->id, ctx);
    return 0;
}

/* Now and then: every task and record, finished ones included. */
static void check_all(void)
{
    struct walk w = { 0 };
    assert_int_equal(gw_store_task_iter(M->f->txn, false, 0, all_tasks_cb, &w), 0);
    check_devices(&w);
}

/* Pushes of the step: online devices only, within the task's rate. */
static void check_actions(void)
{
    struct fx *f = M->f;

    for (size_t i = 0; i < f->acts.n; i++) {
        const struct gw_ota_action *a = &f->acts.v[i];
        if (a->kind != GW_OTA_ACT_PUSH_UPGRADE)
            continue;
        assert_int_equal(fx_get_device(f, a->device_id).state, GW_DEVICE_ONLINE);
        rate_note(a->task_id, fx_get_task(f, a->task_id).policy.rate_per_minute, f->now);
        M->pushes[M->npush++ % PUSH_RING] = (struct push_note){ a->record_id, a->attempt };
    }
}

/* ---- operations ---- */

static uint64_t pick_device(void)
{
    uint32_t k = rn(40);
    if (k == 0)
        return M->f->other_dev;
    if (k == 1)
        return 9999; /* does not exist */
    return M->f->dev[rn(NDEV)];
}

static void random_overrides(struct gw_ota_overrides *o)
{
    static const int64_t conc[] = { 0, 0, 1, 3 }, rate[] = { 0, 0, 2, 5 };
    static const int64_t pto[] = { 0, 20, 60 }, uto[] = { 0, 30, 120 };
    static const int64_t retr[] = { 0, 1, 3 }, back[] = { 1, 5, 30 }, smp[] = { 1, 3, 5 };
    static const double ratio[] = { 0, 0, 0.3, 0.7 };

    gw_ota_overrides_init(o);
    o->max_concurrent = conc[rn(4)];
    o->rate_per_minute = rate[rn(4)];
    o->push_timeout_s = pto[rn(3)];
    o->upgrade_timeout_s = uto[rn(3)];
    o->max_retries = retr[rn(3)];
    o->retry_backoff_s = back[rn(3)];
    o->abort_failure_ratio = ratio[rn(4)];
    o->abort_min_sample = smp[rn(3)];
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool device_busy(uint64_t dev)
{
    uint64_t rid;
    return gw_store_active_record_of_device(M->f->txn, dev, &rid) == 0;
}

/* The code task create must return, computed from the store independently. */
static int expected_create(uint64_t fw_id, const char *name, int scope, uint64_t *ids, size_t n,
                           uint32_t *n_out)
{
    struct gw_firmware fw;
    struct gw_task other;
    size_t m = 0;
    int rc = 0;

    assert_int_equal(gw_store_firmware_get(M->f->txn, fw_id, &fw), 0);
    if (gw_store_task_get_by_name(M->f->txn, fw_id, name, &other) == 0)
        return GW_E_TASK_NAME_DUPLICATE;
    *n_out = 0;
    if (scope == GW_SCOPE_ALL) {
        for (size_t i = 0; i < NDEV; i++)
            if (fx_get_device(M->f, M->f->dev[i]).firmware_id != fw_id &&
                !device_busy(M->f->dev[i]))
                (*n_out)++;
        return *n_out ? 0 : GW_E_TASK_NO_DEVICE;
    }
    if (n == 0)
        return GW_E_TASK_NO_DEVICE;
    qsort(ids, n, sizeof(*ids), cmp_u64);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || ids[i] != ids[m - 1])
            ids[m++] = ids[i];
    for (size_t i = 0; i < m && !rc; i++) {
        struct gw_device d;
        if (gw_store_device_get(M->f->txn, ids[i], &d) != 0 || d.product_id != fw.product_id)
            rc = GW_E_DEVICE_NOT_EXISTS;
    }
    for (size_t i = 0; i < m && !rc; i++)
        if (fx_get_device(M->f, ids[i]).firmware_id == fw_id)
            rc = GW_E_TASK_DEVICE_ON_FIRMWARE;
    for (size_t i = 0; i < m && !rc; i++)
        if (device_busy(ids[i]))
            rc = GW_E_TASK_DEVICE_UPGRADING;
    *n_out = (uint32_t)m;
    return rc;
}

static void assert_refused(int rc, const struct gw_store_stats *before)
{
    struct gw_store_stats after;
    (void)rc;
    assert_int_equal(gw_store_stats(M->f->txn, &after), 0);
    assert_int_equal(after.tasks, before->tasks);
    assert_int_equal(after.records, before->records);
    assert_int_equal(after.history, before->history);
    assert_int_equal(M->f->acts.n, 0);
}

static void op_create(void)
{
    struct fx *f = M->f;
    uint64_t fws[3] = { f->fw1, f->fw2, M->fw3 }, fw = fws[rn(3)];
    uint64_t ids[8], ids_sorted[8], tid = 0;
    struct gw_ota_overrides o;
    struct gw_store_stats before;
    uint32_t n_expect = 0;
    size_t n = rn(7);
    char name[32];
    int scope = rn(2) ? GW_SCOPE_ALL : GW_SCOPE_SELECT, want, rc;

    for (size_t i = 0; i < n; i++)
        ids[i] = pick_device();
    memcpy(ids_sorted, ids, sizeof(ids));
    /* Mostly fresh names; sometimes one that may exist. */
    snprintf(name, sizeof(name), "t%u", rn(10) ? ++M->task_counter : rn(M->task_counter + 1));
    random_overrides(&o);
    want = expected_create(fw, name, scope, ids_sorted, n, &n_expect);
    assert_int_equal(gw_store_stats(f->txn, &before), 0);
    rc = fx_task_rc(f, fw, name, scope, ids, n, &o, &tid);
    assert_int_equal(rc, want);
    if (rc) {
        assert_refused(rc, &before);
        return;
    }
    assert_int_equal(fx_get_task(f, tid).device_total_count, n_expect);
    live_add(tid);
    M->stats_ops[0]++;
}

static void op_cancel_task(void)
{
    struct fx *f = M->f;
    struct gw_store_stats st;
    struct gw_task t;
    uint64_t tid;
    int want, rc;

    assert_int_equal(gw_store_stats(f->txn, &st), 0);
    tid = M->nlive && rn(2) ? M->live[rn((uint32_t)M->nlive)] : 1 + rn((uint32_t)st.tasks + 1);
    rc = gw_store_task_get(f->txn, tid, &t);
    want = rc == GW_E_NOT_FOUND ? GW_E_TASK_NOT_EXISTS
           : t.status != GW_TASK_IN_PROGRESS ? GW_E_TASK_NOT_IN_PROGRESS : 0;
    rc = gw_ota_task_cancel(f->eng, f->txn, tid, f->now, &f->acts);
    assert_int_equal(rc, want);
    if (rc) {
        assert_refused(rc, &st);
        return;
    }
    t = fx_get_task(f, tid);
    assert_int_equal(t.status, GW_TASK_CANCELLED);
    assert_string_equal(t.end_reason, GW_OTA_END_REASON_ADMIN);
    M->stats_ops[1]++;
}

static void op_cancel_record(void)
{
    struct fx *f = M->f;
    struct gw_store_stats st;
    struct gw_record r;
    uint64_t rid;
    int want, rc;

    assert_int_equal(gw_store_stats(f->txn, &st), 0);
    rid = 1 + rn((uint32_t)st.records + 1);
    rc = gw_store_record_get(f->txn, rid, &r);
    want = rc == GW_E_NOT_FOUND ? GW_E_RECORD_NOT_EXISTS
           : !gw_record_status_active(r.status) ? GW_E_RECORD_NOT_ACTIVE : 0;
    rc = gw_ota_record_cancel(f->eng, f->txn, rid, f->now, &f->acts);
    assert_int_equal(rc, want);
    if (rc) {
        assert_refused(rc, &st);
        return;
    }
    r = fx_get_record(f, rid);
    assert_int_equal(r.status, GW_RECORD_CANCELLED);
    M->stats_ops[2]++;
}

static void op_progress(void)
{
    static const char *versions[] = { "1.0", "2.0", "3.0", "9.9" };
    static const int bad_status[] = { 0, 10, 50, 7, -1 };
    struct fx *f = M->f;
    uint64_t dev = pick_device(), rid = 0;
    struct gw_record before = { 0 }, after;
    struct gw_firmware fw = { 0 };
    struct gw_store_stats st;
    const char *version;
    int status, progress, want = 0, rc;
    uint32_t k = rn(100);

    assert_int_equal(gw_store_stats(f->txn, &st), 0);
    rc = gw_store_active_record_of_device(f->txn, dev, &rid);
    if (rc == 0) {
        before = fx_get_record(f, rid);
        assert_int_equal(gw_store_firmware_get(f->txn, before.firmware_id, &fw), 0);
    }
    version = rc == 0 && rn(10) < 7 ? fw.version : versions[rn(4)];
    status = k < 45 ? GW_RECORD_UPGRADING : k < 65 ? GW_RECORD_SUCCESS
             : k < 85 ? GW_RECORD_FAILURE : bad_status[rn(5)];
    progress = rn(10) ? (int)rn(101) : (rn(2) ? -1 : 101);
    if (rc != 0)
        want = GW_E_RECORD_NO_ACTIVE;
    else if (strcmp(version, fw.version) != 0)
        want = GW_E_PROGRESS_VERSION_MISMATCH;
    else if (status != 20 && status != 30 && status != 40)
        want = GW_E_PROGRESS_BAD_STATUS;
    else if (progress < 0 || progress > 100)
        want = GW_E_PROGRESS_BAD_VALUE;
    rc = gw_ota_on_progress(f->eng, f->txn, dev, version, status, progress, "r", f->now,
                            &f->acts);
    assert_int_equal(rc, want);
    if (rc) {
        assert_refused(rc, &st);
        if (rid) {
            after = fx_get_record(f, rid);
            assert_int_equal(after.status, before.status);
            assert_int_equal(after.progress, before.progress);
            assert_int_equal(after.report_time_ms, before.report_time_ms);
        }
        return;
    }
    after = fx_get_record(f, rid);
    assert_int_equal(after.status, status);
    assert_int_equal(after.progress, progress);
    if (status == GW_RECORD_SUCCESS)
        assert_int_equal(fx_get_device(f, dev).firmware_id, after.firmware_id);
    M->stats_ops[3]++;
}

static void op_device(void)
{
    struct fx *f = M->f;
    uint64_t dev = f->dev[rn(NDEV)];
    bool on = rn(3) != 0;

    if (on)
        fx_online(f, dev);
    else
        fx_offline(f, dev);
    assert_int_equal(fx_get_device(f, dev).state, on ? GW_DEVICE_ONLINE : GW_DEVICE_OFFLINE);
    M->stats_ops[4]++;
}

static void op_push_failed(void)
{
    static const char *reasons[] = { "offline", "queue full" };
    struct fx *f = M->f;
    struct push_note p;
    struct gw_record before, after;
    size_t n = M->npush < PUSH_RING ? M->npush : PUSH_RING;

    if (n == 0)
        return;
    p = M->pushes[rn((uint32_t)n)];
    if (gw_store_record_get(f->txn, p.record_id, &before) != 0)
        return; /* gone with an aborted batch */
    assert_int_equal(gw_ota_on_push_failed(f->eng, f->txn, p.record_id, p.attempt,
                                           reasons[rn(2)], f->now, &f->acts), 0);
    after = fx_get_record(f, p.record_id);
    if (before.status == GW_RECORD_PUSHED && before.attempts == p.attempt) {
        assert_int_equal(after.status, GW_RECORD_PENDING);
        assert_true(after.not_before_ms > f->now);
        M->stats_ops[5]++;
    } else {
        assert_int_equal(after.status, before.status);
        assert_int_equal(after.attempts, before.attempts);
    }
}

static void op_tick(void)
{
    M->f->now += rn(40) * SEC + rn(1000);
    assert_int_equal(fx_tick(M->f), 0);
    M->stats_ops[6]++;
}

static void op_batch_end(void)
{
    struct fx *f = M->f;
    uint32_t k = rn(100);

    if (k < 60) {
        fx_commit(f);
        model_commit();
    } else if (k < 80) {
        /* The core aborted the batch (say MAP_FULL): the engine reloads. */
        gw_store_txn_abort(f->txn);
        assert_int_equal(gw_store_txn_begin(f->store, true, &f->txn), 0);
        assert_int_equal(gw_ota_engine_load(f->eng, f->txn), 0);
        model_abort();
        M->stats_ops[7]++;
    } else {
        /* Restart: a new engine from the committed store. */
        fx_commit(f);
        model_commit();
        gw_ota_engine_destroy(f->eng);
        assert_int_equal(gw_ota_engine_create(NULL, &f->eng), 0);
        assert_int_equal(gw_ota_engine_load(f->eng, f->txn), 0);
        rate_reset();
        M->stats_ops[8]++;
    }
}

static void test_random(void **state)
{
    struct fx *f = *state;
    const char *env_seed = getenv("GW_TEST_SEED"), *env_steps = getenv("GW_TEST_STEPS");
    uint64_t seed = env_seed ? strtoull(env_seed, NULL, 10) : (uint64_t)time(NULL);
    long steps = env_steps ? strtol(env_steps, NULL, 10) : 4000;
    struct timespec t0, t1;

    fprintf(stderr, "test_random: seed %" PRIu64 " (GW_TEST_SEED=%" PRIu64
            " replays), %ld steps\n", seed, seed, steps);
    rng_state = seed * 2654435761ULL + 0x9E3779B97F4A7C15ULL;
    if (!rng_state)
        rng_state = 1;
    M = calloc(1, sizeof(*M));
    assert_non_null(M);
    M->rec = calloc(MAX_IDS, sizeof(*M->rec));
    M->task = calloc(MAX_IDS, sizeof(*M->task));
    assert_non_null(M->rec);
    assert_non_null(M->task);
    M->f = f;
    M->fw3 = fx_firmware(f, f->product_id, "3.0");
    fx_commit(f);
    clock_gettime(CLOCK_MONOTONIC, &t0);

    for (long step = 0; step < steps; step++) {
        uint32_t k = rn(100);

        gw_ota_actions_clear(&f->acts);
        f->now += rn(2000);
        if (k < 8)
            op_create();
        else if (k < 11)
            op_cancel_task();
        else if (k < 16)
            op_cancel_record();
        else if (k < 50)
            op_progress();
        else if (k < 68)
            op_device();
        else if (k < 76)
            op_push_failed();
        else if (k < 97)
            op_tick();
        else
            op_batch_end();
        check_actions();
        check_step();
        if (step % 250 == 0)
            check_all();
    }
    check_all();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr,
            "test_random: %.2fs; creates %" PRIu64 ", task cancels %" PRIu64
            ", record cancels %" PRIu64 ", progress %" PRIu64 ", device %" PRIu64
            ", push failures %" PRIu64 ", ticks %" PRIu64 ", aborts %" PRIu64
            ", restarts %" PRIu64 "\n",
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
            M->stats_ops[0], M->stats_ops[1], M->stats_ops[2], M->stats_ops[3],
            M->stats_ops[4], M->stats_ops[5], M->stats_ops[6], M->stats_ops[7],
            M->stats_ops[8]);
    /* The run exercised every kind of step that changes state. */
    for (int i = 0; i < 7; i++)
        assert_true(M->stats_ops[i] > 0);
    rate_reset();
    free(M->rec);
    free(M->task);
    free(M);
    M = NULL;
}

static int setup(void **state)
{
    gw_log_set_level(GW_LOG_ERROR); /* thousands of expected rejections */
    *state = fx_new(NULL, NDEV);
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_random, setup, teardown),
    };
    return cmocka_run_group_tests_name("ota_random", tests, NULL, NULL);
}
