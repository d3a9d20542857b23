/*
 * The record state machine (DESIGN §5.4) with an injected clock: progress transitions and
 * rejections, push on online, push failures, timeouts with retries and exponential backoff,
 * concurrency and rate limits, the failure-ratio abort, history, and the engine's reload.
 */
#include "ota_fixture.h"

#include <errno.h>

#define SEC 1000LL

static int setup(void **state)
{
    *state = fx_new(NULL, 8);
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

static size_t history_len(struct fx *f, uint64_t record_id)
{
    struct fx_hist *h = malloc(sizeof(*h));
    size_t n;
    assert_non_null(h);
    fx_history(f, record_id, h);
    n = h->n;
    free(h);
    return n;
}

static bool deadline_exists(struct fx *f)
{
    int64_t due;
    int rc = gw_store_deadline_next(f->txn, &due);
    assert_true(rc == 0 || rc == GW_E_NOT_FOUND);
    return rc == 0;
}

/* ---- progress ---- */

static void test_progress_to_success(void **state)
{
    struct fx *f = *state;
    struct fx_hist *h = malloc(sizeof(*h));
    struct gw_record r;
    uint64_t tid;

    fx_online(f, f->dev[0]);
    tid = fx_task(f, "t", 1, NULL);
    r = fx_record_of(f, tid, f->dev[0]);
    assert_int_equal(r.status, GW_RECORD_PUSHED);
    f->now += SEC;
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_UPGRADING, 10), 0);
    r = fx_get_record(f, r.id);
    assert_int_equal(r.status, GW_RECORD_UPGRADING);
    assert_int_equal(r.progress, 10);
    assert_int_equal(r.report_time_ms, f->now);
    /* A progress update while upgrading: values move, no new history entry. */
    f->now += SEC;
    assert_int_equal(gw_ota_on_progress(f->eng, f->txn, f->dev[0], "2.0", GW_RECORD_UPGRADING,
                                        55, "flashing", f->now, &f->acts), 0);
    r = fx_get_record(f, r.id);
    assert_int_equal(r.progress, 55);
    assert_string_equal(r.description, "flashing");
    assert_int_equal(r.report_time_ms, f->now);
    assert_int_equal(history_len(f, r.id), 2);
    f->now += SEC;
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_SUCCESS, 100), 0);
    r = fx_get_record(f, r.id);
    assert_int_equal(r.status, GW_RECORD_SUCCESS);
    assert_int_equal(fx_get_device(f, f->dev[0]).firmware_id, f->fw2);
    assert_int_equal(fx_get_task(f, tid).device_success_count, 1);
    assert_int_equal(fx_get_task(f, tid).status, GW_TASK_ENDED);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_TASK_ENDED, 0), 1);
    assert_false(deadline_exists(f));
    fx_history(f, r.id, h);
    assert_int_equal(h->n, 3);
    assert_int_equal(h->v[0].from_status, GW_RECORD_PENDING);
    assert_int_equal(h->v[0].to_status, GW_RECORD_PUSHED);
    assert_int_equal(h->v[1].to_status, GW_RECORD_UPGRADING);
    assert_int_equal(h->v[2].to_status, GW_RECORD_SUCCESS);
    assert_int_equal(h->v[2].time_ms, f->now);
    assert_string_equal(h->v[2].cause, "device reported success");
    free(h);
    fx_check_task(f, tid);
}

static void test_progress_to_failure(void **state)
{
    struct fx *f = *state;
    uint64_t tid;

    fx_all_online(f);
    tid = fx_task(f, "t", 2, NULL);
    /* Straight from pushed to a terminal state is allowed. */
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_FAILURE, 30), 0);
    assert_int_equal(fx_status(f, tid, f->dev[0]), GW_RECORD_FAILURE);
    assert_int_equal(fx_get_device(f, f->dev[0]).firmware_id, 0);
    assert_int_equal(fx_get_task(f, tid).status, GW_TASK_IN_PROGRESS);
    assert_int_equal(fx_progress(f, f->dev[1], "2.0", GW_RECORD_SUCCESS, 100), 0);
    assert_int_equal(fx_get_task(f, tid).status, GW_TASK_ENDED);
    assert_int_equal(fx_get_task(f, tid).device_success_count, 1);
    fx_check_task(f, tid);
}

static void test_progress_while_pending(void **state)
{
    struct fx *f = *state;
    uint64_t tid = fx_task(f, "t", 1, NULL); /* offline: pending */

    /* The device answers a push we believed failed: accepted as upgrading. */
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_UPGRADING, 5), 0);
    assert_int_equal(fx_status(f, tid, f->dev[0]), GW_RECORD_UPGRADING);
    fx_check_task(f, tid);
    /* Straight from pending to success as well. */
    assert_int_equal(fx_task_rc(f, f->fw2, "t2", GW_SCOPE_SELECT, &f->dev[1], 1, NULL, &tid),
                     0);
    assert_int_equal(fx_status(f, tid, f->dev[1]), GW_RECORD_PENDING);
    assert_int_equal(fx_progress(f, f->dev[1], "2.0", GW_RECORD_SUCCESS, 100), 0);
    assert_int_equal(fx_status(f, tid, f->dev[1]), GW_RECORD_SUCCESS);
    assert_int_equal(fx_get_device(f, f->dev[1]).firmware_id, f->fw2);
    fx_check_task(f, tid);
}

static void expect_rejected(struct fx *f, uint64_t tid, const char *version, int status,
                            int progress, int code)
{
    struct gw_record before = fx_record_of(f, tid, f->dev[0]), after;
    size_t hist = history_len(f, before.id), acts = f->acts.n;

    f->now += SEC;
    assert_int_equal(fx_progress(f, f->dev[0], version, status, progress), code);
    after = fx_get_record(f, before.id);
    assert_int_equal(after.status, before.status);
    assert_int_equal(after.progress, before.progress);
    assert_int_equal(after.report_time_ms, before.report_time_ms);
    assert_string_equal(after.description, before.description);
    assert_int_equal(history_len(f, before.id), hist);
    assert_int_equal(f->acts.n, acts);
}

static void test_progress_rejections(void **state)
{
    struct fx *f = *state;
    struct gw_ota_stats st;
    uint64_t tid;

    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_UPGRADING, 1),
                     GW_E_RECORD_NO_ACTIVE);
    fx_online(f, f->dev[0]);
    tid = fx_task(f, "t", 1, NULL);
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_UPGRADING, 1), 0);
    expect_rejected(f, tid, "1.0", GW_RECORD_UPGRADING, 2, GW_E_PROGRESS_VERSION_MISMATCH);
    expect_rejected(f, tid, NULL, GW_RECORD_UPGRADING, 2, GW_E_PROGRESS_VERSION_MISMATCH);
    /* Version is checked before status. */
    expect_rejected(f, tid, "1.0", 99, 2, GW_E_PROGRESS_VERSION_MISMATCH);
    expect_rejected(f, tid, "2.0", GW_RECORD_PENDING, 2, GW_E_PROGRESS_BAD_STATUS);
    expect_rejected(f, tid, "2.0", GW_RECORD_PUSHED, 2, GW_E_PROGRESS_BAD_STATUS);
    expect_rejected(f, tid, "2.0", GW_RECORD_CANCELLED, 2, GW_E_PROGRESS_BAD_STATUS);
    /* Status before the progress value. */
    expect_rejected(f, tid, "2.0", 7, 101, GW_E_PROGRESS_BAD_STATUS);
    expect_rejected(f, tid, "2.0", GW_RECORD_SUCCESS, 101, GW_E_PROGRESS_BAD_VALUE);
    expect_rejected(f, tid, "2.0", GW_RECORD_UPGRADING, -1, GW_E_PROGRESS_BAD_VALUE);
    gw_ota_engine_stats(f->eng, &st);
    assert_int_equal(st.rejected_no_record, 1);
    assert_int_equal(st.rejected_version, 3);
    assert_int_equal(st.rejected_status, 4);
    assert_int_equal(st.rejected_value, 2);
    assert_int_equal(st.progress_accepted, 1);
    assert_int_equal(gw_error_api_code(GW_E_RECORD_NO_ACTIVE), 1050008202LL);
    assert_int_equal(gw_error_api_code(GW_E_PROGRESS_VERSION_MISMATCH), 1050008203LL);
    assert_int_equal(gw_error_api_code(GW_E_PROGRESS_BAD_STATUS), 1050008204LL);
    assert_int_equal(gw_error_api_code(GW_E_PROGRESS_BAD_VALUE), 1050008205LL);
    fx_check_task(f, tid);
}

static void test_terminal_never_moves(void **state)
{
    struct fx *f = *state;
    struct gw_record r;
    uint64_t tid;

    fx_all_online(f);
    tid = fx_task(f, "t", 2, NULL);
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_SUCCESS, 100), 0);
    r = fx_record_of(f, tid, f->dev[0]);
    /* Duplicates and reordered reports after the terminal state. */
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_SUCCESS, 100),
                     GW_E_RECORD_NO_ACTIVE);
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_UPGRADING, 50),
                     GW_E_RECORD_NO_ACTIVE);
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_FAILURE, 50),
                     GW_E_RECORD_NO_ACTIVE);
    assert_int_equal(fx_get_record(f, r.id).status, GW_RECORD_SUCCESS);
    assert_int_equal(history_len(f, r.id), 2);
    /* Same after a cancel. */
    assert_int_equal(gw_ota_task_cancel(f->eng, f->txn, tid, f->now, &f->acts), 0);
    assert_int_equal(fx_progress(f, f->dev[1], "2.0", GW_RECORD_SUCCESS, 100),
                     GW_E_RECORD_NO_ACTIVE);
    assert_int_equal(fx_status(f, tid, f->dev[1]), GW_RECORD_CANCELLED);
    assert_int_equal(fx_get_device(f, f->dev[1]).firmware_id, 0);
    fx_check_task(f, tid);
}

static void test_description_cut_at_utf8(void **state)
{
    struct fx *f = *state;
    char desc[GW_DESC_MAX + 40];
    struct gw_record r;
    uint64_t tid;
    size_t n = 0;

    fx_online(f, f->dev[0]);
    tid = fx_task(f, "t", 1, NULL);
    desc[n++] = 'a'; /* shifts the 2-byte characters so one straddles the limit */
    while (n + 2 < sizeof(desc)) {
        desc[n++] = (char)0xC3;
        desc[n++] = (char)0xA9; /* é */
    }
    desc[n] = '\0';
    assert_int_equal(gw_ota_on_progress(f->eng, f->txn, f->dev[0], "2.0", GW_RECORD_UPGRADING,
                                        1, desc, f->now, &f->acts), 0);
    r = fx_record_of(f, tid, f->dev[0]);
    assert_true(strlen(r.description) <= GW_DESC_MAX);
    assert_true(strlen(r.description) >= GW_DESC_MAX - 1);
    assert_true(gw_record_status_valid(r.status));
    assert_int_equal(strlen(r.description) % 2, 1); /* 'a' + whole characters */
}

/* ---- online, offline, push failures ---- */

static void test_online_pushes_pending(void **state)
{
    struct fx *f = *state;
    struct gw_device d;
    uint64_t tid = fx_task(f, "t", 2, NULL);

    assert_int_equal(f->acts.n, 0);
    f->now += 5 * SEC;
    fx_online(f, f->dev[1]);
    d = fx_get_device(f, f->dev[1]);
    assert_int_equal(d.state, GW_DEVICE_ONLINE);
    assert_int_equal(d.last_seen_ms, f->now);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, f->dev[1]), 1);
    assert_int_equal(fx_status(f, tid, f->dev[1]), GW_RECORD_PUSHED);
    assert_int_equal(fx_status(f, tid, f->dev[0]), GW_RECORD_PENDING);
    /* Going offline does not fail the record; a reconnect does not push it twice. */
    f->now += SEC;
    fx_offline(f, f->dev[1]);
    assert_int_equal(fx_get_device(f, f->dev[1]).state, GW_DEVICE_OFFLINE);
    assert_int_equal(fx_status(f, tid, f->dev[1]), GW_RECORD_PUSHED);
    fx_online(f, f->dev[1]);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, f->dev[1]), 1);
    assert_int_equal(gw_ota_on_device_online(f->eng, f->txn, 999, f->now, &f->acts),
                     GW_E_DEVICE_NOT_EXISTS);
    fx_check_task(f, tid);
}

static void test_push_failed(void **state)
{
    struct fx *f = *state;
    struct fx_hist *h = malloc(sizeof(*h));
    struct gw_ota_stats st;
    struct gw_record r;
    uint64_t tid;

    fx_online(f, f->dev[0]);
    tid = fx_task(f, "t", 1, NULL);
    r = fx_record_of(f, tid, f->dev[0]);
    assert_int_equal(gw_ota_on_push_failed(f->eng, f->txn, 999, 1, "x", f->now, &f->acts),
                     GW_E_RECORD_NOT_EXISTS);
    f->now += SEC;
    assert_int_equal(gw_ota_on_push_failed(f->eng, f->txn, r.id, 1, "queue full", f->now,
                                           &f->acts), 0);
    r = fx_get_record(f, r.id);
    assert_int_equal(r.status, GW_RECORD_PENDING);
    assert_string_equal(r.description, "push failed (queue full)");
    assert_int_equal(r.not_before_ms, f->now + GW_OTA_DEFAULT_RETRY_BACKOFF_S * SEC);
    assert_int_equal(r.attempts, 1);
    fx_history(f, r.id, h);
    assert_int_equal(h->n, 2);
    assert_string_equal(h->v[1].cause, "push failed (queue full)");
    /* A second report for the same attempt is stale. */
    assert_int_equal(gw_ota_on_push_failed(f->eng, f->txn, r.id, 1, "again", f->now, &f->acts),
                     0);
    assert_int_equal(history_len(f, r.id), 2);
    /* Backoff: nothing before it ends, then the tick pushes again (device still online). */
    gw_ota_actions_clear(&f->acts);
    f->now += GW_OTA_DEFAULT_RETRY_BACKOFF_S * SEC - 1;
    assert_int_equal(fx_tick(f), 0);
    assert_int_equal(f->acts.n, 0);
    f->now += 1;
    assert_int_equal(fx_tick(f), 0);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, f->dev[0]), 1);
    assert_int_equal(f->acts.v[0].attempt, 2);
    assert_int_equal(fx_get_record(f, r.id).status, GW_RECORD_PUSHED);
    /* A late failure report of attempt 1 does not undo attempt 2. */
    assert_int_equal(gw_ota_on_push_failed(f->eng, f->txn, r.id, 1, "late", f->now, &f->acts),
                     0);
    assert_int_equal(fx_get_record(f, r.id).status, GW_RECORD_PUSHED);
    assert_int_equal(fx_get_record(f, r.id).attempts, 2);
    gw_ota_engine_stats(f->eng, &st);
    assert_int_equal(st.push_failures, 1);
    assert_int_equal(st.pushes, 2);
    free(h);
    fx_check_task(f, tid);
}

static void test_push_failed_then_offline(void **state)
{
    struct fx *f = *state;
    struct gw_record r;
    uint64_t tid;

    fx_online(f, f->dev[0]);
    tid = fx_task(f, "t", 1, NULL);
    r = fx_record_of(f, tid, f->dev[0]);
    fx_offline(f, f->dev[0]);
    assert_int_equal(gw_ota_on_push_failed(f->eng, f->txn, r.id, 1, "offline", f->now,
                                           &f->acts), 0);
    gw_ota_actions_clear(&f->acts);
    /* Backoff over while offline: nothing to do, and nothing stays scheduled. */
    f->now += 3600 * SEC;
    assert_int_equal(fx_tick(f), 0);
    assert_int_equal(f->acts.n, 0);
    assert_false(deadline_exists(f));
    /* Its online event pushes it. */
    fx_online(f, f->dev[0]);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, f->dev[0]), 1);
    fx_check_task(f, tid);
}

/* ---- timeouts and retries ---- */

static void test_push_timeout_backoff(void **state)
{
    struct fx *f = *state;
    struct gw_ota_overrides o;
    struct gw_ota_stats st;
    struct gw_record r;
    int64_t t0 = f->now, due;
    uint64_t tid;

    gw_ota_overrides_init(&o);
    o.push_timeout_s = 10;
    o.max_retries = 2;
    o.retry_backoff_s = 5;
    fx_online(f, f->dev[0]);
    tid = fx_task(f, "t", 1, &o);
    r = fx_record_of(f, tid, f->dev[0]);
    assert_int_equal(gw_ota_next_wakeup(f->eng, f->txn, f->now, &due), 0);
    assert_int_equal(due, t0 + 10 * SEC);

    f->now = t0 + 10 * SEC - 1;
    assert_int_equal(fx_tick(f), 0);
    assert_int_equal(fx_get_record(f, r.id).status, GW_RECORD_PUSHED);
    /* Timeout 1: back to pending for 5 s (5 * 2^0). */
    f->now = t0 + 10 * SEC;
    assert_int_equal(fx_tick(f), 0);
    r = fx_get_record(f, r.id);
    assert_int_equal(r.status, GW_RECORD_PENDING);
    assert_int_equal(r.not_before_ms, t0 + 15 * SEC);
    gw_ota_actions_clear(&f->acts);
    f->now = t0 + 15 * SEC - 1;
    assert_int_equal(fx_tick(f), 0);
    assert_int_equal(f->acts.n, 0);
    f->now = t0 + 15 * SEC;
    assert_int_equal(fx_tick(f), 0);
    assert_int_equal(fx_get_record(f, r.id).status, GW_RECORD_PUSHED);
    assert_int_equal(f->acts.v[0].attempt, 2);
    /* Timeout 2 at +25 s: backoff 10 s (5 * 2^1), re-push at +35 s. */
    f->now = t0 + 25 * SEC;
    assert_int_equal(fx_tick(f), 0);
    r = fx_get_record(f, r.id);
    assert_int_equal(r.status, GW_RECORD_PENDING);
    assert_int_equal(r.not_before_ms, t0 + 35 * SEC);
    f->now = t0 + 35 * SEC;
    assert_int_equal(fx_tick(f), 0);
    r = fx_get_record(f, r.id);
    assert_int_equal(r.status, GW_RECORD_PUSHED);
    assert_int_equal(r.attempts, 3);
    /* Timeout 3: no retries left. */
    f->now = t0 + 45 * SEC;
    assert_int_equal(fx_tick(f), 0);
    r = fx_get_record(f, r.id);
    assert_int_equal(r.status, GW_RECORD_FAILURE);
    assert_string_equal(r.description, GW_OTA_DESC_TIMEOUT);
    assert_int_equal(fx_get_task(f, tid).status, GW_TASK_ENDED);
    gw_ota_engine_stats(f->eng, &st);
    assert_int_equal(st.timeouts, 3);
    assert_int_equal(st.retries, 2);
    assert_int_equal(history_len(f, r.id), 6); /* 0→10, 10→0, 0→10, 10→0, 0→10, 10→40 */
    assert_false(deadline_exists(f));
    fx_check_task(f, tid);
}

static void test_upgrade_timeout(void **state)
{
    struct fx *f = *state;
    struct gw_ota_overrides o;
    struct fx_hist *h = malloc(sizeof(*h));
    struct gw_record r;
    int64_t t0 = f->now;
    uint64_t tid;

    gw_ota_overrides_init(&o);
    o.upgrade_timeout_s = 60;
    o.max_retries = 0;
    fx_online(f, f->dev[0]);
    tid = fx_task(f, "t", 1, &o);
    f->now = t0 + SEC;
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_UPGRADING, 1), 0);
    /* Each report restarts the upgrade clock. */
    f->now = t0 + 50 * SEC;
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_UPGRADING, 40), 0);
    f->now = t0 + 100 * SEC;
    assert_int_equal(fx_tick(f), 0);
    assert_int_equal(fx_status(f, tid, f->dev[0]), GW_RECORD_UPGRADING);
    f->now = t0 + 110 * SEC;
    assert_int_equal(fx_tick(f), 0);
    r = fx_record_of(f, tid, f->dev[0]);
    assert_int_equal(r.status, GW_RECORD_FAILURE);
    assert_string_equal(r.description, GW_OTA_DESC_TIMEOUT);
    fx_history(f, r.id, h);
    assert_string_equal(h->v[h->n - 1].cause, "upgrade timeout");
    free(h);
    fx_check_task(f, tid);
}

static void test_upgrade_timeout_retry(void **state)
{
    struct fx *f = *state;
    struct gw_ota_overrides o;
    struct gw_record r;
    int64_t t0 = f->now;
    uint64_t tid;

    gw_ota_overrides_init(&o);
    o.upgrade_timeout_s = 60;
    o.max_retries = 1;
    o.retry_backoff_s = 7;
    fx_online(f, f->dev[0]);
    tid = fx_task(f, "t", 1, &o);
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_UPGRADING, 50), 0);
    /* upgrading → pending (retry 1 of 1), re-pushed after 7 s, then it succeeds. */
    f->now = t0 + 60 * SEC;
    assert_int_equal(fx_tick(f), 0);
    r = fx_record_of(f, tid, f->dev[0]);
    assert_int_equal(r.status, GW_RECORD_PENDING);
    assert_int_equal(r.not_before_ms, t0 + 67 * SEC);
    f->now = t0 + 67 * SEC;
    assert_int_equal(fx_tick(f), 0);
    r = fx_get_record(f, r.id);
    assert_int_equal(r.status, GW_RECORD_PUSHED);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_SUCCESS, 100), 0);
    assert_int_equal(fx_get_task(f, tid).status, GW_TASK_ENDED);
    assert_int_equal(history_len(f, r.id), 5); /* 0→10→20→0→10→30 */
    fx_check_task(f, tid);
}

static void test_online_resets_backoff(void **state)
{
    struct fx *f = *state;
    struct gw_record r;
    uint64_t tid;

    fx_online(f, f->dev[0]);
    tid = fx_task(f, "t", 1, NULL);
    r = fx_record_of(f, tid, f->dev[0]);
    assert_int_equal(gw_ota_on_push_failed(f->eng, f->txn, r.id, 1, "offline", f->now,
                                           &f->acts), 0);
    fx_offline(f, f->dev[0]);
    gw_ota_actions_clear(&f->acts);
    /* Back within the backoff: a new session is pushed at once. */
    f->now += 2 * SEC;
    fx_online(f, f->dev[0]);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, f->dev[0]), 1);
    r = fx_get_record(f, r.id);
    assert_int_equal(r.status, GW_RECORD_PUSHED);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(r.not_before_ms, 0);
    fx_check_task(f, tid);
}

/* ---- limits ---- */

static uint32_t in_flight(struct fx *f, uint64_t tid)
{
    struct gw_task t = fx_get_task(f, tid);
    return t.status_count[1] + t.status_count[2];
}

static void test_max_concurrent(void **state)
{
    struct fx *f = *state;
    struct gw_ota_overrides o;
    uint64_t tid;

    gw_ota_overrides_init(&o);
    o.max_concurrent = 2;
    for (int i = 0; i < 5; i++)
        fx_online(f, f->dev[i]);
    tid = fx_task(f, "t", 6, &o); /* dev5 offline */
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, 0), 2);
    f->now += SEC;
    assert_int_equal(fx_tick(f), 0);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, 0), 2);
    /* dev5 comes online while the task is full: it waits for a slot. */
    fx_online(f, f->dev[5]);
    assert_int_equal(fx_status(f, tid, f->dev[5]), GW_RECORD_PENDING);
    /* A success frees a slot: the next record is pushed at once. */
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_SUCCESS, 100), 0);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, 0), 3);
    assert_int_equal(in_flight(f, tid), 2);
    /* So does a record cancel. */
    assert_int_equal(gw_ota_record_cancel(f->eng, f->txn, fx_record_of(f, tid, f->dev[1]).id,
                                          f->now, &f->acts), 0);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, 0), 4);
    assert_int_equal(in_flight(f, tid), 2);
    /* Finish everything in flight until all six are done; never more than 2 at once. */
    for (int round = 0; round < 10 && fx_get_task(f, tid).status == GW_TASK_IN_PROGRESS;
         round++) {
        for (int i = 0; i < 6; i++) {
            int s = fx_status(f, tid, f->dev[i]);
            if (s == GW_RECORD_PUSHED || s == GW_RECORD_UPGRADING) {
                assert_int_equal(fx_progress(f, f->dev[i], "2.0", GW_RECORD_SUCCESS, 100), 0);
                assert_true(in_flight(f, tid) <= 2);
            }
        }
        f->now += SEC;
        assert_int_equal(fx_tick(f), 0);
    }
    assert_int_equal(fx_get_task(f, tid).status, GW_TASK_ENDED);
    assert_int_equal(fx_get_task(f, tid).device_success_count, 5);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, f->dev[5]), 1);
    fx_check_task(f, tid);
}

static void test_rate_limit(void **state)
{
    struct fx *f = *state;
    struct gw_ota_overrides o;
    int64_t t0 = f->now, due;
    uint64_t tid;

    gw_ota_overrides_init(&o);
    o.rate_per_minute = 2;
    o.push_timeout_s = 0;
    fx_all_online(f);
    tid = fx_task(f, "t", 5, &o);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, 0), 2);
    assert_int_equal(gw_ota_next_wakeup(f->eng, f->txn, f->now, &due), 0);
    assert_int_equal(due, t0 + 60 * SEC);
    f->now = t0 + 30 * SEC;
    assert_int_equal(fx_tick(f), 0);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, 0), 2);
    f->now = t0 + 60 * SEC;
    assert_int_equal(fx_tick(f), 0);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, 0), 4);
    f->now = t0 + 119 * SEC;
    assert_int_equal(fx_tick(f), 0);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, 0), 4);
    f->now = t0 + 120 * SEC;
    assert_int_equal(fx_tick(f), 0);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, 0), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(fx_status(f, tid, f->dev[i]), GW_RECORD_PUSHED);
    /* Nothing left to wait for. */
    assert_int_equal(gw_ota_next_wakeup(f->eng, f->txn, f->now, &due), GW_E_NOT_FOUND);
    fx_check_task(f, tid);
}

/* ---- abort on failure ratio ---- */

static void test_abort_ratio(void **state)
{
    struct fx *f = *state;
    struct gw_ota_overrides o;
    struct gw_ota_stats st;
    struct gw_task t;
    struct gw_record r;
    uint64_t tid;

    gw_ota_overrides_init(&o);
    o.abort_failure_ratio = 0.5;
    o.abort_min_sample = 4;
    fx_all_online(f);
    tid = fx_task(f, "t", 8, &o);
    /* 3 failures: 100 % but below the minimum sample. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(fx_progress(f, f->dev[i], "2.0", GW_RECORD_FAILURE, 0), 0);
    assert_int_equal(fx_get_task(f, tid).status, GW_TASK_IN_PROGRESS);
    /* dev3 reports upgrading, then a success brings the sample to 4 (3 of 4 failed). */
    assert_int_equal(fx_progress(f, f->dev[3], "2.0", GW_RECORD_UPGRADING, 5), 0);
    gw_ota_actions_clear(&f->acts);
    assert_int_equal(fx_progress(f, f->dev[4], "2.0", GW_RECORD_SUCCESS, 100), 0);
    t = fx_get_task(f, tid);
    assert_int_equal(t.status, GW_TASK_CANCELLED);
    assert_string_equal(t.end_reason, "aborted: failure ratio 0.5 exceeded");
    r = fx_record_of(f, tid, f->dev[3]);
    assert_int_equal(r.status, GW_RECORD_CANCELLED);
    assert_string_equal(r.description, "aborted: failure ratio 0.5 exceeded");
    assert_int_equal(fx_status(f, tid, f->dev[4]), GW_RECORD_SUCCESS);
    /* Hints to dev3 (upgrading) and dev5..7 (pushed). */
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_SEND_CANCEL, 0), 4);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_TASK_ENDED, 0), 1);
    gw_ota_engine_stats(f->eng, &st);
    assert_int_equal(st.tasks_aborted, 1);
    fx_check_task(f, tid);
}

static void test_abort_ratio_not_reached(void **state)
{
    struct fx *f = *state;
    struct gw_ota_overrides o;
    uint64_t tid;

    gw_ota_overrides_init(&o);
    o.abort_failure_ratio = 0.5;
    o.abort_min_sample = 2;
    fx_all_online(f);
    tid = fx_task(f, "t", 5, &o);
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_SUCCESS, 100), 0);
    assert_int_equal(fx_progress(f, f->dev[1], "2.0", GW_RECORD_SUCCESS, 100), 0);
    assert_int_equal(fx_progress(f, f->dev[2], "2.0", GW_RECORD_FAILURE, 0), 0); /* 1/3 */
    /* Cancelled records are no outcome and do not count. */
    assert_int_equal(gw_ota_record_cancel(f->eng, f->txn, fx_record_of(f, tid, f->dev[3]).id,
                                          f->now, &f->acts), 0);
    assert_int_equal(fx_get_task(f, tid).status, GW_TASK_IN_PROGRESS);
    fx_check_task(f, tid);
}

static void test_abort_ratio_boundary(void **state)
{
    struct fx *f = *state;
    struct gw_ota_overrides o;
    uint64_t tid;

    gw_ota_overrides_init(&o);
    o.abort_failure_ratio = 0.5;
    o.abort_min_sample = 2;
    fx_all_online(f);
    tid = fx_task(f, "t", 4, &o);
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_SUCCESS, 100), 0);
    assert_int_equal(fx_get_task(f, tid).status, GW_TASK_IN_PROGRESS); /* sample 1 < 2 */
    /* 1 of 2 failed: the ratio is reached (>=), the task is aborted. */
    assert_int_equal(fx_progress(f, f->dev[1], "2.0", GW_RECORD_FAILURE, 0), 0);
    assert_int_equal(fx_get_task(f, tid).status, GW_TASK_CANCELLED);
    assert_int_equal(fx_status(f, tid, f->dev[2]), GW_RECORD_CANCELLED);
    fx_check_task(f, tid);
}

/* ---- restart and aborted transactions ---- */

static void test_reload_resumes_sweep(void **state)
{
    struct fx *f = *state;
    struct gw_ota_overrides o;
    uint64_t tid;

    gw_ota_overrides_init(&o);
    o.max_concurrent = 1;
    fx_all_online(f);
    tid = fx_task(f, "t", 3, &o);
    fx_commit(f);
    /* Restart: a new engine knows nothing but the store. */
    gw_ota_engine_destroy(f->eng);
    assert_int_equal(gw_ota_engine_create(NULL, &f->eng), 0);
    assert_int_equal(gw_ota_engine_load(f->eng, f->txn), 0);
    gw_ota_actions_clear(&f->acts);
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_SUCCESS, 100), 0);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, 0), 1);
    assert_int_equal(fx_status(f, tid, f->dev[1]), GW_RECORD_PUSHED);
    fx_check_task(f, tid);
}

static void test_aborted_txn_then_load(void **state)
{
    struct fx *f = *state;
    struct gw_ota_overrides o;
    uint64_t tid;

    gw_ota_overrides_init(&o);
    o.max_concurrent = 1;
    fx_all_online(f);
    fx_commit(f);
    tid = fx_task(f, "ghost", 3, &o);
    /* The core aborts the batch: the task never existed; the engine reloads. */
    gw_store_txn_abort(f->txn);
    assert_int_equal(gw_store_txn_begin(f->store, true, &f->txn), 0);
    assert_int_equal(gw_ota_engine_load(f->eng, f->txn), 0);
    assert_int_equal(gw_store_task_get(f->txn, tid, &(struct gw_task){ 0 }), GW_E_NOT_FOUND);
    gw_ota_actions_clear(&f->acts);
    f->now += SEC;
    assert_int_equal(fx_tick(f), 0);
    assert_int_equal(f->acts.n, 0);
    /* The same task again works normally. */
    tid = fx_task(f, "ghost", 3, &o);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, 0), 1);
    fx_check_task(f, tid);
}

static void test_engine_defaults(void **state)
{
    struct fx *f = *state;
    struct gw_task_policy p;
    struct gw_ota_engine *e = NULL;

    gw_ota_policy_defaults(&p);
    assert_int_equal(p.push_timeout_s, 300);
    assert_int_equal(p.upgrade_timeout_s, 1800);
    assert_int_equal(p.max_retries, 3);
    assert_int_equal(p.retry_backoff_s, 30);
    assert_int_equal(p.max_concurrent, 0);
    assert_int_equal(p.rate_per_minute, 0);
    assert_true(p.abort_failure_ratio == 0.0);
    assert_int_equal(p.abort_min_sample, 10);
    p.abort_failure_ratio = 2.0;
    assert_int_equal(gw_ota_engine_create(&p, &e), GW_E_BAD_FIELD);
    assert_null(e);
    assert_int_equal(gw_ota_engine_defaults(f->eng)->push_timeout_s, 300);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_progress_to_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_to_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_while_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_rejections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_terminal_never_moves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_description_cut_at_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_online_pushes_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_failed_then_offline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_timeout_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_timeout_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_online_resets_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_ratio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_ratio_not_reached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_ratio_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_resumes_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aborted_txn_then_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_defaults, setup, teardown),
    };
    return cmocka_run_group_tests_name("ota_machine", tests, NULL, NULL);
}
