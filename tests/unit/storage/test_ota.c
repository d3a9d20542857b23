/*
 * Tasks, records, record history and deadlines: CRUD, the indexes kept true by every write
 * (task_by_firmware_name, records_by_task, active_record_by_device, the deadline pair),
 * iteration (including callbacks that write), history order, deadline order.
 */
#include <errno.h>

#include "store_test_util.h"

struct world {
    uint64_t product, fw, dev[4];
};

static struct world mk_world(struct store_fx *fx)
{
    struct world w;
    struct gw_txn *t = wtxn(fx);

    w.product = mk_product(t, "p", "pk");
    w.fw = mk_firmware(t, w.product, "2.0");
    for (int i = 0; i < 4; i++) {
        char dn[16];
        snprintf(dn, sizeof(dn), "d%d", i);
        w.dev[i] = mk_device(t, w.product, dn);
    }
    assert_int_equal(gw_store_txn_commit(t), 0);
    return w;
}

static void test_task_crud(void **state)
{
    struct store_fx *fx = *state;
    struct world w = mk_world(fx);
    struct gw_txn *t = wtxn(fx);
    struct gw_task task, got;
    uint64_t fw2 = mk_firmware(t, w.product, "3.0");

    task_init(&task, w.fw, "rollout");
    strcpy(task.description, "first wave");
    task.device_scope = GW_SCOPE_ALL;
    task.device_total_count = 3;
    task.status_count[0] = 3;
    task.policy.max_concurrent = 10;
    task.policy.rate_per_minute = 60;
    task.policy.push_timeout_s = 30;
    task.policy.upgrade_timeout_s = 600;
    task.policy.max_retries = 2;
    task.policy.retry_backoff_s = 5;
    task.policy.abort_failure_ratio = 0.25;
    task.policy.abort_min_sample = 8;
    task.create_time_ms = -5; /* negative times round-trip */
    task.update_time_ms = 99;
    assert_int_equal(gw_store_task_create(t, &task), 0);
    assert_int_equal(task.id, 1);

    task_init(&got, w.fw, "rollout");
    assert_int_equal(gw_store_task_create(t, &got), GW_E_TASK_NAME_DUPLICATE);
    task_init(&got, fw2, "rollout"); /* same name, other firmware */
    assert_int_equal(gw_store_task_create(t, &got), 0);
    task_init(&got, w.fw, "x");
    got.status = 11;
    assert_int_equal(gw_store_task_create(t, &got), -EINVAL);
    task_init(&got, w.fw, "x");
    memset(got.end_reason, 'r', sizeof(got.end_reason));
    assert_int_equal(gw_store_task_create(t, &got), GW_E_VALUE_TOO_LONG);
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = wtxn(fx);
    assert_int_equal(gw_store_task_get_by_name(t, w.fw, "rollout", &got), 0);
    assert_int_equal(got.id, task.id);
    assert_string_equal(got.description, "first wave");
    assert_int_equal(got.device_scope, GW_SCOPE_ALL);
    assert_int_equal(got.device_total_count, 3);
    assert_int_equal(got.status_count[0], 3);
    assert_memory_equal(&got.policy, &task.policy, sizeof(task.policy));
    assert_int_equal(got.create_time_ms, -5);
    assert_int_equal(got.update_time_ms, 99);
    assert_int_equal(gw_store_task_get_by_name(t, w.fw, "nope", &got), GW_E_NOT_FOUND);
    assert_int_equal(gw_store_task_get(t, 404, &got), GW_E_NOT_FOUND);

    assert_int_equal(gw_store_task_get(t, task.id, &got), 0);
    got.status = GW_TASK_CANCELLED;
    got.device_success_count = 2;
    strcpy(got.end_reason, "too many failures");
    assert_int_equal(gw_store_task_put(t, &got), 0);
    strcpy(got.name, "other");
    assert_int_equal(gw_store_task_put(t, &got), -EINVAL);
    strcpy(got.name, "rollout");
    got.firmware_id = fw2;
    assert_int_equal(gw_store_task_put(t, &got), -EINVAL);
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = rtxn(fx);
    assert_int_equal(gw_store_task_get(t, task.id, &got), 0);
    assert_int_equal(got.status, GW_TASK_CANCELLED);
    assert_int_equal(got.device_success_count, 2);
    assert_string_equal(got.end_reason, "too many failures");
    gw_store_txn_abort(t);
}

static void assert_active(struct gw_txn *t, uint64_t dev, uint64_t want)
{
    uint64_t rid = 0;

    if (want == 0) {
        assert_int_equal(gw_store_active_record_of_device(t, dev, &rid), GW_E_NOT_FOUND);
    } else {
        assert_int_equal(gw_store_active_record_of_device(t, dev, &rid), 0);
        assert_int_equal(rid, want);
    }
}

static void test_record_active_index(void **state)
{
    struct store_fx *fx = *state;
    struct world w = mk_world(fx);
    struct gw_txn *t = wtxn(fx);
    uint64_t task = mk_task(t, w.fw, "t1");
    struct gw_record r, got;
    uint64_t r0, r1, r2;

    r0 = mk_record(t, task, w.fw, w.dev[0], GW_RECORD_PENDING);
    assert_active(t, w.dev[0], r0);
    /* A second active record for the same device is refused and changes nothing. */
    record_init(&r, task, w.fw, w.dev[0], GW_RECORD_PENDING);
    assert_int_equal(gw_store_record_create(t, &r), GW_E_TASK_DEVICE_UPGRADING);
    assert_int_equal(gw_store_txn_error(t), 0);
    /* A terminal record does not enter the index. */
    r1 = mk_record(t, task, w.fw, w.dev[1], GW_RECORD_FAILURE);
    assert_active(t, w.dev[1], 0);
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = wtxn(fx);
    assert_int_equal(gw_store_record_get(t, r0, &got), 0);
    assert_int_equal(got.task_id, task);
    assert_int_equal(got.device_id, w.dev[0]);
    got.status = GW_RECORD_PUSHED;
    got.attempts = 1;
    got.status_time_ms = 10;
    assert_int_equal(gw_store_record_put(t, &got), 0);
    assert_active(t, w.dev[0], r0);
    got.status = GW_RECORD_UPGRADING;
    got.progress = 50;
    strcpy(got.description, "downloading");
    assert_int_equal(gw_store_record_put(t, &got), 0);
    assert_active(t, w.dev[0], r0);
    got.status = GW_RECORD_SUCCESS;
    got.progress = 100;
    assert_int_equal(gw_store_record_put(t, &got), 0);
    assert_active(t, w.dev[0], 0);
    /* Now the device may get a new active record. */
    r2 = mk_record(t, task, w.fw, w.dev[0], GW_RECORD_PENDING);
    assert_active(t, w.dev[0], r2);
    /* Re-activating r0 while r2 is active is refused. */
    got.status = GW_RECORD_PENDING;
    assert_int_equal(gw_store_record_put(t, &got), GW_E_TASK_DEVICE_UPGRADING);
    /* A terminal record becoming terminal again leaves r2's entry alone. */
    got.status = GW_RECORD_FAILURE;
    assert_int_equal(gw_store_record_put(t, &got), 0);
    assert_active(t, w.dev[0], r2);
    /* Leaving the active set through cancel removes the entry. */
    assert_int_equal(gw_store_record_get(t, r1, &r), 0);
    r.status = GW_RECORD_PENDING; /* a retry re-activates a terminal record */
    assert_int_equal(gw_store_record_put(t, &r), 0);
    assert_active(t, w.dev[1], r1);
    r.status = GW_RECORD_CANCELLED;
    assert_int_equal(gw_store_record_put(t, &r), 0);
    assert_active(t, w.dev[1], 0);
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = wtxn(fx);
    assert_int_equal(gw_store_record_get(t, r0, &got), 0);
    assert_int_equal(got.status, GW_RECORD_FAILURE);
    assert_int_equal(got.progress, 100);
    assert_int_equal(got.attempts, 1);
    assert_int_equal(got.status_time_ms, 10);
    assert_string_equal(got.description, "downloading");
    /* Immutable fields and bad values. */
    got.task_id++;
    assert_int_equal(gw_store_record_put(t, &got), -EINVAL);
    got.task_id--;
    got.device_id = w.dev[3];
    assert_int_equal(gw_store_record_put(t, &got), -EINVAL);
    got.device_id = w.dev[0];
    got.firmware_id = 999;
    assert_int_equal(gw_store_record_put(t, &got), -EINVAL);
    got.firmware_id = w.fw;
    got.progress = 101;
    assert_int_equal(gw_store_record_put(t, &got), -EINVAL);
    got.progress = 0;
    got.status = 15;
    assert_int_equal(gw_store_record_put(t, &got), -EINVAL);
    got.status = GW_RECORD_FAILURE;
    memset(got.description, 'x', sizeof(got.description));
    assert_int_equal(gw_store_record_put(t, &got), GW_E_VALUE_TOO_LONG);
    got.description[0] = '\0';
    got.id = 4040;
    assert_int_equal(gw_store_record_put(t, &got), GW_E_NOT_FOUND);
    assert_int_equal(gw_store_txn_error(t), 0); /* refusals are not sticky */
    gw_store_txn_abort(t);
}

static int collect_record(void *ctx, const struct gw_record *r)
{
    return id_list_add(ctx, r->id);
}

static int collect_id(void *ctx, uint64_t id)
{
    return id_list_add(ctx, id);
}

struct cancel_ctx {
    struct gw_txn *txn;
    struct id_list seen;
};

/* Cancels each record while the iterator walks the task (the engine's cancel-task). */
static int cancel_record(void *ctx, const struct gw_record *r)
{
    struct cancel_ctx *c = ctx;
    struct gw_record copy = *r;

    copy.status = GW_RECORD_CANCELLED;
    strcpy(copy.description, "cancelled by administrator (task)");
    assert_int_equal(gw_store_record_put(c->txn, &copy), 0);
    return id_list_add(&c->seen, r->id);
}

static void test_records_by_task(void **state)
{
    struct store_fx *fx = *state;
    struct world w = mk_world(fx);
    struct gw_txn *t = wtxn(fx);
    uint64_t t1 = mk_task(t, w.fw, "t1"), t2 = mk_task(t, w.fw, "t2");
    uint64_t ids1[3];
    struct id_list l;
    struct cancel_ctx cc;

    /* Interleave two tasks so the per-task walk must skip the other's records. */
    ids1[0] = mk_record(t, t1, w.fw, w.dev[0], GW_RECORD_PENDING);
    mk_record(t, t2, w.fw, w.dev[1], GW_RECORD_PENDING);
    ids1[1] = mk_record(t, t1, w.fw, w.dev[2], GW_RECORD_PENDING);
    ids1[2] = mk_record(t, t1, w.fw, w.dev[3], GW_RECORD_PUSHED);
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = rtxn(fx);
    memset(&l, 0, sizeof(l));
    assert_int_equal(gw_store_record_iter_task(t, t1, 0, collect_record, &l), 0);
    assert_int_equal(l.n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(l.ids[i], ids1[i]);
    memset(&l, 0, sizeof(l));
    assert_int_equal(gw_store_record_iter_task(t, t1, ids1[0], collect_record, &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.ids[0], ids1[1]);
    memset(&l, 0, sizeof(l));
    assert_int_equal(gw_store_record_ids_task(t, t1, 0, collect_id, &l), 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.ids[2], ids1[2]);
    memset(&l, 0, sizeof(l));
    assert_int_equal(gw_store_record_ids_task(t, 404, 0, collect_id, &l), 0);
    assert_int_equal(l.n, 0);
    memset(&l, 0, sizeof(l));
    assert_int_equal(gw_store_record_iter(t, true, 0, collect_record, &l), 0);
    assert_int_equal(l.n, 4);
    assert_int_equal(l.ids[0], ids1[2]);
    memset(&l, 0, sizeof(l));
    l.stop_after = 1;
    l.stop_rc = -EIO;
    assert_int_equal(gw_store_record_ids_task(t, t1, 0, collect_id, &l), -EIO);
    gw_store_txn_abort(t);

    /* A callback that writes while the walk goes on: every record visited exactly once. */
    t = wtxn(fx);
    memset(&cc, 0, sizeof(cc));
    cc.txn = t;
    assert_int_equal(gw_store_record_iter_task(t, t1, 0, cancel_record, &cc), 0);
    assert_int_equal(cc.seen.n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cc.seen.ids[i], ids1[i]);
    assert_active(t, w.dev[0], 0);
    assert_active(t, w.dev[2], 0);
    assert_active(t, w.dev[3], 0);
    assert_active(t, w.dev[1], ids1[0] + 1); /* t2's record untouched */
    assert_int_equal(gw_store_txn_commit(t), 0);
}

static int collect_history(void *ctx, const struct gw_history_entry *h)
{
    return id_list_add(ctx, (uint64_t)h->to_status * 1000 + (uint64_t)h->time_ms);
}

static void test_history(void **state)
{
    struct store_fx *fx = *state;
    struct world w = mk_world(fx);
    struct gw_txn *t = wtxn(fx);
    uint64_t task = mk_task(t, w.fw, "t");
    uint64_t ra = mk_record(t, task, w.fw, w.dev[0], GW_RECORD_PENDING);
    uint64_t rb = mk_record(t, task, w.fw, w.dev[1], GW_RECORD_PENDING);
    struct gw_history_entry h;
    struct id_list l;

    memset(&h, 0, sizeof(h));
    /* Interleaved appends to two records; ra gets 12 entries so seq passes 9 -> 10 -> 11. */
    for (int i = 0; i < 12; i++) {
        h.time_ms = i;
        h.from_status = -1;
        h.to_status = 10 + i;
        snprintf(h.cause, sizeof(h.cause), "step %d", i);
        assert_int_equal(gw_store_history_append(t, ra, &h), 0);
        if (i < 2) {
            h.to_status = 50;
            assert_int_equal(gw_store_history_append(t, rb, &h), 0);
        }
    }
    assert_int_equal(gw_store_history_append(t, 404, &h), GW_E_NOT_FOUND);
    memset(h.cause, 'c', sizeof(h.cause));
    assert_int_equal(gw_store_history_append(t, ra, &h), GW_E_VALUE_TOO_LONG);
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = wtxn(fx);
    h.time_ms = 999; /* appended in a later txn: still last */
    h.to_status = 0;
    strcpy(h.cause, "later");
    assert_int_equal(gw_store_history_append(t, ra, &h), 0);
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = rtxn(fx);
    memset(&l, 0, sizeof(l));
    assert_int_equal(gw_store_history_iter(t, ra, collect_history, &l), 0);
    assert_int_equal(l.n, 13);
    for (int i = 0; i < 12; i++)
        assert_int_equal(l.ids[i], (uint64_t)(10 + i) * 1000 + (uint64_t)i);
    assert_int_equal(l.ids[12], 999);
    memset(&l, 0, sizeof(l));
    assert_int_equal(gw_store_history_iter(t, rb, collect_history, &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.ids[0], 50000);
    memset(&l, 0, sizeof(l));
    assert_int_equal(gw_store_history_iter(t, 404, collect_history, &l), 0);
    assert_int_equal(l.n, 0);
    gw_store_txn_abort(t);
}

struct due_ctx {
    struct gw_txn *txn;
    struct id_list seen;
};

/* Clears each due deadline while the walk goes on (the engine's timer tick). */
static int clear_due(void *ctx, uint64_t id)
{
    struct due_ctx *c = ctx;

    assert_int_equal(gw_store_deadline_clear(c->txn, id), 0);
    return id_list_add(&c->seen, id);
}

static void test_deadlines(void **state)
{
    struct store_fx *fx = *state;
    struct gw_txn *t = wtxn(fx);
    struct id_list l;
    struct due_ctx dc;
    int64_t next = 0;

    assert_int_equal(gw_store_deadline_next(t, &next), GW_E_NOT_FOUND);
    assert_int_equal(gw_store_deadline_set(t, 1, 500), 0);
    assert_int_equal(gw_store_deadline_set(t, 2, -100), 0); /* negative sorts first */
    assert_int_equal(gw_store_deadline_set(t, 3, 200), 0);
    assert_int_equal(gw_store_deadline_set(t, 4, 200), 0); /* same due: id order */
    assert_int_equal(gw_store_deadline_set(t, 5, 900), 0);
    assert_int_equal(gw_store_deadline_set(t, 1, 100), 0); /* replaces 500 */
    assert_int_equal(gw_store_deadline_set(t, 1, 100), 0); /* unchanged: no-op */
    assert_int_equal(gw_store_deadline_clear(t, 5), 0);
    assert_int_equal(gw_store_deadline_clear(t, 5), 0); /* nothing left: still fine */
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = rtxn(fx);
    assert_int_equal(gw_store_deadline_next(t, &next), 0);
    assert_int_equal(next, -100);
    memset(&l, 0, sizeof(l));
    assert_int_equal(gw_store_deadline_iter_due(t, 200, collect_id, &l), 0);
    assert_int_equal(l.n, 4);
    assert_int_equal(l.ids[0], 2);
    assert_int_equal(l.ids[1], 1);
    assert_int_equal(l.ids[2], 3);
    assert_int_equal(l.ids[3], 4);
    memset(&l, 0, sizeof(l));
    assert_int_equal(gw_store_deadline_iter_due(t, 10000, collect_id, &l), 0);
    assert_int_equal(l.n, 4); /* 1's old 500 and 5's 900 are gone */
    memset(&l, 0, sizeof(l));
    assert_int_equal(gw_store_deadline_iter_due(t, -101, collect_id, &l), 0);
    assert_int_equal(l.n, 0);
    memset(&l, 0, sizeof(l));
    l.stop_after = 2;
    l.stop_rc = 1;
    assert_int_equal(gw_store_deadline_iter_due(t, 10000, collect_id, &l), 0);
    assert_int_equal(l.n, 2);
    gw_store_txn_abort(t);

    t = wtxn(fx);
    memset(&dc, 0, sizeof(dc));
    dc.txn = t;
    assert_int_equal(gw_store_deadline_iter_due(t, 150, clear_due, &dc), 0);
    assert_int_equal(dc.seen.n, 2);
    assert_int_equal(dc.seen.ids[0], 2);
    assert_int_equal(dc.seen.ids[1], 1);
    assert_int_equal(gw_store_deadline_next(t, &next), 0);
    assert_int_equal(next, 200);
    assert_int_equal(gw_store_deadline_set(t, 3, 50), 0); /* moved earlier */
    assert_int_equal(gw_store_deadline_next(t, &next), 0);
    assert_int_equal(next, 50);
    assert_int_equal(gw_store_txn_commit(t), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_task_crud, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_record_active_index, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_records_by_task, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_history, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_deadlines, fx_setup, fx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
