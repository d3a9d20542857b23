/*
 * DESIGN: the OTA tables: tasks (+ task_by_firmware_name), records (+ records_by_task and
 * active_record_by_device), record_history and the deadline index (record_deadlines +
 * deadline_by_record). Runs on the thread that owns the txn (writes: the core thread, inside
 * the engine's write transaction).
 *
 * Invariants, true at every commit:
 *  - every task has one task_by_firmware_name entry; every record one records_by_task entry;
 *  - a device has an active_record_by_device entry exactly when one of its records is active
 *    (pending, pushed, upgrading), and it names that record: at most one active record per
 *    device;
 *  - a record has at most one deadline; deadline_by_record maps it back to its
 *    record_deadlines key, so set/clear find the old entry without a scan.
 * Records are the hot path: gw_store_record_put reads the old row's fixed prefix only and
 * touches active_record_by_device only when the record enters or leaves the active set.
 * All checks run before the first write; a failure after it poisons the txn.
 */
#include <errno.h>
#include <string.h>

#include "store_internal.h"

/* ---- tasks ---- */

static int gw__task_check(const struct gw_task *t)
{
    int rc;

    if ((rc = gw__check_len(t->name, GW_NAME_MAX)) ||
        (rc = gw__check_len(t->description, GW_DESC_MAX)) ||
        (rc = gw__check_len(t->end_reason, GW_CAUSE_MAX)))
        return rc;
    if (t->status != GW_TASK_IN_PROGRESS && t->status != GW_TASK_ENDED &&
        t->status != GW_TASK_CANCELLED)
        return -EINVAL;
    if (t->device_scope != GW_SCOPE_ALL && t->device_scope != GW_SCOPE_SELECT)
        return -EINVAL;
    return 0;
}

/* firmware_id(8) name */
static size_t gw__task_name_key(uint8_t *key, uint64_t firmware_id, const char *name)
{
    size_t n = strlen(name);

    gw__be64_put(key, firmware_id);
    memcpy(key + 8, name, n);
    return 8 + n;
}

int gw_store_task_create(struct gw_txn *txn, struct gw_task *t)
{
    uint8_t row[GW__ROW_MAX], key[8 + GW_NAME_MAX], id[8];
    MDB_val v;
    size_t klen, len;
    int rc;

    if (!t)
        return -EINVAL;
    if ((rc = gw__txn_writable(txn)) || (rc = gw__task_check(t)))
        return rc;
    klen = gw__task_name_key(key, t->firmware_id, t->name);
    rc = gw__get(txn, GW__DB_TASK_BY_FW_NAME, key, klen, &v);
    if (rc == 0)
        return GW_E_TASK_NAME_DUPLICATE;
    if (rc != GW_E_NOT_FOUND)
        return rc;
    if ((rc = gw__seq_next(txn, GW__SEQ_TASK, &t->id)))
        return rc;
    len = gw__row_task_encode(t, row);
    gw__be64_put(id, t->id);
    if ((rc = gw__put(txn, GW__DB_TASKS, id, 8, row, len, MDB_APPEND)) ||
        (rc = gw__put(txn, GW__DB_TASK_BY_FW_NAME, key, klen, id, 8, MDB_NOOVERWRITE)))
        return gw__fail_after_write(txn, rc);
    return 0;
}

int gw_store_task_get(struct gw_txn *txn, uint64_t id, struct gw_task *out)
{
    MDB_val v;
    int rc;

    if (!txn || !out)
        return -EINVAL;
    rc = gw__get_id(txn, GW__DB_TASKS, id, &v);
    if (rc)
        return rc;
    if (gw__row_task_decode(&v, id, out))
        return gw__corrupt(GW__DB_TASKS, id);
    return 0;
}

int gw_store_task_get_by_name(struct gw_txn *txn, uint64_t firmware_id, const char *name,
                              struct gw_task *out)
{
    uint8_t key[8 + GW_NAME_MAX];
    MDB_val v;
    uint64_t id;
    int rc;

    if (!txn || !name || !out)
        return -EINVAL;
    if (strnlen(name, GW_NAME_MAX + 1) > GW_NAME_MAX)
        return GW_E_NOT_FOUND;
    rc = gw__get(txn, GW__DB_TASK_BY_FW_NAME, key, gw__task_name_key(key, firmware_id, name),
                 &v);
    if (rc)
        return rc;
    if ((rc = gw__val_id(GW__DB_TASK_BY_FW_NAME, &v, &id)))
        return rc;
    rc = gw_store_task_get(txn, id, out);
    return rc == GW_E_NOT_FOUND ? gw__corrupt(GW__DB_TASK_BY_FW_NAME, id) : rc;
}

int gw_store_task_put(struct gw_txn *txn, const struct gw_task *t)
{
    uint8_t row[GW__ROW_MAX];
    struct gw_task old;
    int rc;

    if (!t)
        return -EINVAL;
    if ((rc = gw__txn_writable(txn)) || (rc = gw__task_check(t)))
        return rc;
    if ((rc = gw_store_task_get(txn, t->id, &old)))
        return rc;
    if (old.firmware_id != t->firmware_id || strcmp(old.name, t->name) != 0)
        return -EINVAL;
    return gw__put_id(txn, GW__DB_TASKS, t->id, row, gw__row_task_encode(t, row), 0);
}

/* ---- records ---- */

static int gw__record_check(const struct gw_record *r)
{
    if (!gw_record_status_valid(r->status) || r->progress < 0 || r->progress > 100)
        return -EINVAL;
    return gw__check_len(r->description, GW_DESC_MAX);
}

int gw_store_active_record_of_device(struct gw_txn *txn, uint64_t device_id,
                                     uint64_t *record_id)
{
    MDB_val v;
    int rc;

    if (!txn || !record_id)
        return -EINVAL;
    rc = gw__get_id(txn, GW__DB_ACTIVE_RECORD, device_id, &v);
    if (rc)
        return rc;
    return gw__val_id(GW__DB_ACTIVE_RECORD, &v, record_id);
}

int gw_store_record_create(struct gw_txn *txn, struct gw_record *r)
{
    uint8_t row[GW__ROW_MAX], tkey[16], id[8];
    uint64_t other;
    bool active;
    size_t len;
    int rc;

    if (!r)
        return -EINVAL;
    if ((rc = gw__txn_writable(txn)) || (rc = gw__record_check(r)))
        return rc;
    active = gw_record_status_active(r->status);
    if (active) {
        rc = gw_store_active_record_of_device(txn, r->device_id, &other);
        if (rc == 0)
            return GW_E_TASK_DEVICE_UPGRADING;
        if (rc != GW_E_NOT_FOUND)
            return rc;
    }
    if ((rc = gw__seq_next(txn, GW__SEQ_RECORD, &r->id)))
        return rc;
    len = gw__row_record_encode(r, row);
    gw__be64_put(id, r->id);
    gw__be64_put(tkey, r->task_id);
    gw__be64_put(tkey + 8, r->id);
    if ((rc = gw__put(txn, GW__DB_RECORDS, id, 8, row, len, MDB_APPEND)) ||
        (rc = gw__put(txn, GW__DB_RECORDS_BY_TASK, tkey, 16, "", 0, MDB_NOOVERWRITE)) ||
        (active && (rc = gw__put_id(txn, GW__DB_ACTIVE_RECORD, r->device_id, id, 8, 0))))
        return gw__fail_after_write(txn, rc);
    return 0;
}

int gw_store_record_get(struct gw_txn *txn, uint64_t id, struct gw_record *out)
{
    MDB_val v;
    int rc;

    if (!txn || !out)
        return -EINVAL;
    rc = gw__get_id(txn, GW__DB_RECORDS, id, &v);
    if (rc)
        return rc;
    if (gw__row_record_decode(&v, id, out))
        return gw__corrupt(GW__DB_RECORDS, id);
    return 0;
}

/*
 * The index change a status change needs: 1 set, -1 remove, 0 none. Leaving the active set
 * removes the entry only when it names this record; entering it is refused when another
 * record of the device is active.
 */
static int gw__record_index_change(struct gw_txn *txn, const struct gw_record *r, int old_status,
                                   int *change)
{
    bool was = gw_record_status_active(old_status), is = gw_record_status_active(r->status);
    uint64_t cur;
    int rc;

    *change = 0;
    if (was == is)
        return 0; /* hot path: the entry (or its absence) is already right */
    rc = gw_store_active_record_of_device(txn, r->device_id, &cur);
    if (rc && rc != GW_E_NOT_FOUND)
        return rc;
    if (is) {
        if (rc == 0 && cur != r->id)
            return GW_E_TASK_DEVICE_UPGRADING;
        *change = 1;
    } else if (rc == 0 && cur == r->id) {
        *change = -1;
    }
    return 0;
}

int gw_store_record_put(struct gw_txn *txn, const struct gw_record *r)
{
    uint8_t row[GW__ROW_MAX], id[8], dev[8];
    uint64_t task_id, firmware_id, device_id;
    int old_status, change, rc;
    MDB_val v;

    if (!r)
        return -EINVAL;
    if ((rc = gw__txn_writable(txn)) || (rc = gw__record_check(r)))
        return rc;
    gw__be64_put(id, r->id);
    if ((rc = gw__get(txn, GW__DB_RECORDS, id, 8, &v)))
        return rc;
    if (gw__row_record_peek(&v, &task_id, &firmware_id, &device_id, &old_status))
        return gw__corrupt(GW__DB_RECORDS, r->id);
    if (task_id != r->task_id || firmware_id != r->firmware_id || device_id != r->device_id)
        return -EINVAL;
    if ((rc = gw__record_index_change(txn, r, old_status, &change)))
        return rc;
    if ((rc = gw__put(txn, GW__DB_RECORDS, id, 8, row, gw__row_record_encode(r, row), 0)))
        return rc; /* the row was the first write: nothing half-done */
    gw__be64_put(dev, r->device_id);
    if (change > 0)
        rc = gw__put(txn, GW__DB_ACTIVE_RECORD, dev, 8, id, 8, 0);
    else if (change < 0)
        rc = gw__del(txn, GW__DB_ACTIVE_RECORD, dev, 8);
    return rc ? gw__fail_after_write(txn, rc) : 0;
}

/* ---- record history ---- */

/* Next free seq under record_id: one past the last key of its prefix. */
static int gw__history_next_seq(struct gw_txn *txn, uint64_t record_id, uint32_t *seq)
{
    MDB_cursor *c;
    MDB_val k, v;
    uint8_t seek[8];
    uint32_t last;
    bool have;
    int rc;

    rc = gw__store_xlate(mdb_cursor_open(txn->txn, txn->store->dbi[GW__DB_RECORD_HISTORY], &c),
                         "cursor open");
    if (rc)
        return rc;
    if (record_id == UINT64_MAX) {
        rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    } else {
        gw__be64_put(seek, record_id + 1);
        k.mv_data = seek;
        k.mv_size = sizeof(seek);
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        rc = mdb_cursor_get(c, &k, &v, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
    }
    have = rc == 0 && k.mv_size == 12 && gw__be64_get(k.mv_data) == record_id;
    last = have ? gw__be32_get((const uint8_t *)k.mv_data + 8) : 0;
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return gw__store_xlate(rc, "history seq");
    if (have && last == UINT32_MAX)
        return GW_E_STORE; /* 2^32 entries for one record: refuse rather than wrap */
    *seq = have ? last + 1 : 0;
    return 0;
}

int gw_store_history_append(struct gw_txn *txn, uint64_t record_id,
                            const struct gw_history_entry *h)
{
    uint8_t row[GW__ROW_MAX], key[12];
    uint32_t seq = 0;
    MDB_val v;
    int rc;

    if (!h)
        return -EINVAL;
    if ((rc = gw__txn_writable(txn)) || (rc = gw__check_len(h->cause, GW_CAUSE_MAX)))
        return rc;
    if ((rc = gw__get_id(txn, GW__DB_RECORDS, record_id, &v)) ||
        (rc = gw__history_next_seq(txn, record_id, &seq)))
        return rc;
    gw__be64_put(key, record_id);
    gw__be32_put(key + 8, seq);
    return gw__put(txn, GW__DB_RECORD_HISTORY, key, sizeof(key), row,
                   gw__row_history_encode(h, row), MDB_NOOVERWRITE);
}

struct gw__hist_iter {
    gw_store_history_fn fn;
    void *ctx;
    uint64_t record_id;
};

static int gw__visit_history(struct gw_txn *txn, void *vctx, const MDB_val *k, const MDB_val *v)
{
    struct gw__hist_iter *it = vctx;
    struct gw_history_entry h;

    (void)txn;
    if (k->mv_size != 12 || gw__row_history_decode(v, &h))
        return gw__corrupt(GW__DB_RECORD_HISTORY, it->record_id);
    return it->fn(it->ctx, &h);
}

int gw_store_history_iter(struct gw_txn *txn, uint64_t record_id, gw_store_history_fn fn,
                          void *ctx)
{
    struct gw__hist_iter it = { fn, ctx, record_id };
    uint8_t prefix[8];

    if (!txn || !fn)
        return -EINVAL;
    gw__be64_put(prefix, record_id);
    return gw__walk(txn, GW__DB_RECORD_HISTORY, prefix, 8, prefix, 8, true, false,
                    gw__visit_history, &it);
}

/* ---- deadlines ---- */

/* Flipping the sign bit makes int64 order equal unsigned big-endian byte order. */
static uint64_t gw__due_enc(int64_t due_ms)
{
    return (uint64_t)due_ms ^ (UINT64_C(1) << 63);
}

static int64_t gw__due_dec(uint64_t u)
{
    return (int64_t)(u ^ (UINT64_C(1) << 63));
}

int gw_store_deadline_set(struct gw_txn *txn, uint64_t record_id, int64_t due_ms)
{
    uint8_t key[16], old[16], due[8];
    MDB_val v;
    bool had = false;
    int rc;

    if ((rc = gw__txn_writable(txn)))
        return rc;
    gw__be64_put(key, gw__due_enc(due_ms));
    gw__be64_put(key + 8, record_id);
    rc = gw__get_id(txn, GW__DB_DEADLINE_BY_RECORD, record_id, &v);
    if (rc == 0) {
        if (v.mv_size != 8)
            return gw__corrupt(GW__DB_DEADLINE_BY_RECORD, record_id);
        if (memcmp(v.mv_data, key, 8) == 0)
            return 0; /* unchanged */
        memcpy(old, v.mv_data, 8);
        memcpy(old + 8, key + 8, 8);
        had = true;
    } else if (rc != GW_E_NOT_FOUND) {
        return rc;
    }
    memcpy(due, key, 8);
    rc = 0;
    if (had)
        rc = gw__del(txn, GW__DB_RECORD_DEADLINES, old, 16);
    if (rc == GW_E_NOT_FOUND)
        rc = 0; /* tolerate a lost forward entry: the set below repairs it */
    if (rc || (rc = gw__put(txn, GW__DB_RECORD_DEADLINES, key, 16, "", 0, 0)) ||
        (rc = gw__put_id(txn, GW__DB_DEADLINE_BY_RECORD, record_id, due, 8, 0)))
        return gw__fail_after_write(txn, rc);
    return 0;
}

int gw_store_deadline_clear(struct gw_txn *txn, uint64_t record_id)
{
    uint8_t key[16], id[8];
    MDB_val v;
    int rc;

    if ((rc = gw__txn_writable(txn)))
        return rc;
    gw__be64_put(id, record_id);
    rc = gw__get(txn, GW__DB_DEADLINE_BY_RECORD, id, 8, &v);
    if (rc == GW_E_NOT_FOUND)
        return 0; /* no deadline: nothing to clear */
    if (rc)
        return rc;
    if (v.mv_size != 8)
        return gw__corrupt(GW__DB_DEADLINE_BY_RECORD, record_id);
    memcpy(key, v.mv_data, 8);
    memcpy(key + 8, id, 8);
    rc = gw__del(txn, GW__DB_RECORD_DEADLINES, key, 16);
    if (rc == GW_E_NOT_FOUND)
        rc = 0;
    if (rc || (rc = gw__del(txn, GW__DB_DEADLINE_BY_RECORD, id, 8)))
        return gw__fail_after_write(txn, rc);
    return 0;
}

struct gw__due_iter {
    int64_t now_ms;
    gw_store_id_fn fn;
    void *ctx;
    bool found;
    int64_t first;
};

static int gw__visit_due(struct gw_txn *txn, void *vctx, const MDB_val *k, const MDB_val *v)
{
    struct gw__due_iter *it = vctx;
    int64_t due;

    (void)txn;
    (void)v;
    if (k->mv_size != 16)
        return gw__corrupt(GW__DB_RECORD_DEADLINES, 0);
    due = gw__due_dec(gw__be64_get(k->mv_data));
    if (!it->fn) { /* gw_store_deadline_next: the first key is the answer */
        it->found = true;
        it->first = due;
        return 1;
    }
    if (due > it->now_ms)
        return 1;
    return it->fn(it->ctx, gw__be64_get((const uint8_t *)k->mv_data + 8));
}

int gw_store_deadline_iter_due(struct gw_txn *txn, int64_t now_ms, gw_store_id_fn fn,
                               void *ctx)
{
    struct gw__due_iter it = { now_ms, fn, ctx, false, 0 };

    if (!txn || !fn)
        return -EINVAL;
    return gw__walk(txn, GW__DB_RECORD_DEADLINES, NULL, 0, NULL, 0, false, false, gw__visit_due,
                    &it);
}

int gw_store_deadline_next(struct gw_txn *txn, int64_t *due_ms)
{
    struct gw__due_iter it = { 0, NULL, NULL, false, 0 };
    int rc;

    if (!txn || !due_ms)
        return -EINVAL;
    rc = gw__walk(txn, GW__DB_RECORD_DEADLINES, NULL, 0, NULL, 0, false, false, gw__visit_due,
                  &it);
    if (rc)
        return rc;
    if (!it.found)
        return GW_E_NOT_FOUND;
    *due_ms = it.first;
    return 0;
}
