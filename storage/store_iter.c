/*
 * DESIGN: every iterator of the store, built on one cursor walk (gw__walk). Runs on the
 * thread that owns the txn.
 *
 * Rows are decoded into a caller-visible struct before each callback, so callbacks never see
 * LMDB memory. A callback may write in a write txn (the engine cancels records while walking
 * a task): the walk then closes its cursor and re-seeks just after the last key it visited,
 * instead of trusting a cursor across foreign modifications. Rows inserted during a walk
 * after the current position may therefore be visited too.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

/* Positions c at the first key to visit from `seek` in the walk's direction. */
static int gw__seek(MDB_cursor *c, MDB_val *k, MDB_val *v, const uint8_t *seek, size_t seek_len,
                    bool inclusive, bool reverse)
{
    int rc;

    if (!seek)
        return mdb_cursor_get(c, k, v, reverse ? MDB_LAST : MDB_FIRST);
    k->mv_data = (void *)seek;
    k->mv_size = seek_len;
    rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE); /* smallest key >= seek */
    if (!reverse) {
        if (rc == 0 && !inclusive && k->mv_size == seek_len &&
            memcmp(k->mv_data, seek, seek_len) == 0)
            rc = mdb_cursor_get(c, k, v, MDB_NEXT);
        return rc;
    }
    if (rc == MDB_NOTFOUND) /* every key is smaller than seek */
        return mdb_cursor_get(c, k, v, MDB_LAST);
    if (rc)
        return rc;
    if (inclusive && k->mv_size == seek_len && memcmp(k->mv_data, seek, seek_len) == 0)
        return 0;
    return mdb_cursor_get(c, k, v, MDB_PREV);
}

int gw__walk(struct gw_txn *txn, enum gw__db db, const uint8_t *prefix, size_t prefix_len,
             const uint8_t *seek, size_t seek_len, bool seek_inclusive, bool reverse,
             gw__visit_fn visit, void *vctx)
{
    MDB_cursor *c = NULL;
    MDB_val k, v;
    uint8_t last[GW__KEY_MAX];
    size_t last_len = 0;
    int rc;

    if (seek_len > sizeof(last))
        return -EINVAL;
    rc = gw__store_xlate(mdb_cursor_open(txn->txn, txn->store->dbi[db], &c), "cursor open");
    if (rc)
        return rc;
    rc = gw__seek(c, &k, &v, seek, seek_len, seek_inclusive, reverse);
    for (;;) {
        uint64_t writes;

        if (rc == MDB_NOTFOUND) {
            rc = 0;
            break;
        }
        if (rc) {
            rc = gw__store_xlate(rc, "cursor walk");
            break;
        }
        if (prefix_len &&
            (k.mv_size < prefix_len || memcmp(k.mv_data, prefix, prefix_len) != 0)) {
            rc = 0;
            break;
        }
        if (k.mv_size > sizeof(last)) {
            rc = GW_E_STORE;
            break;
        }
        memcpy(last, k.mv_data, k.mv_size);
        last_len = k.mv_size;
        writes = txn->writes;
        rc = visit(txn, vctx, &k, &v);
        if (rc) {
            if (rc == 1)
                rc = 0;
            break;
        }
        if (txn->writes != writes) {
            /* The callback wrote: start from a fresh cursor after the last key. */
            mdb_cursor_close(c);
            c = NULL;
            rc = gw__store_xlate(mdb_cursor_open(txn->txn, txn->store->dbi[db], &c),
                                 "cursor open");
            if (rc)
                break;
            rc = gw__seek(c, &k, &v, last, last_len, false, reverse);
        } else {
            rc = mdb_cursor_get(c, &k, &v, reverse ? MDB_PREV : MDB_NEXT);
        }
    }
    if (c)
        mdb_cursor_close(c);
    return rc;
}

/* ---- typed iterators over id-keyed tables ---- */

struct gw__row_iter {
    enum gw__db db;
    union {
        gw_store_product_fn product;
        gw_store_device_fn device;
        gw_store_firmware_fn firmware;
        gw_store_task_fn task;
        gw_store_record_fn record;
    } fn;
    void *ctx;
};

static int gw__visit_row(struct gw_txn *txn, void *vctx, const MDB_val *k, const MDB_val *v)
{
    struct gw__row_iter *it = vctx;
    uint64_t id;
    int rc;

    (void)txn;
    if (k->mv_size != 8)
        return gw__corrupt(it->db, 0);
    id = gw__be64_get(k->mv_data);
    switch (it->db) {
    case GW__DB_PRODUCTS: {
        struct gw_product p;
        if ((rc = gw__row_product_decode(v, id, &p)))
            return gw__corrupt(it->db, id);
        return it->fn.product(it->ctx, &p);
    }
    case GW__DB_DEVICES: {
        struct gw_device d;
        if ((rc = gw__row_device_decode(v, id, &d)))
            return gw__corrupt(it->db, id);
        return it->fn.device(it->ctx, &d);
    }
    case GW__DB_FIRMWARE: {
        struct gw_firmware f;
        if ((rc = gw__row_firmware_decode(v, id, &f)))
            return gw__corrupt(it->db, id);
        return it->fn.firmware(it->ctx, &f);
    }
    case GW__DB_TASKS: {
        struct gw_task t;
        if ((rc = gw__row_task_decode(v, id, &t)))
            return gw__corrupt(it->db, id);
        return it->fn.task(it->ctx, &t);
    }
    case GW__DB_RECORDS: {
        struct gw_record r;
        if ((rc = gw__row_record_decode(v, id, &r)))
            return gw__corrupt(it->db, id);
        return it->fn.record(it->ctx, &r);
    }
    default:
        return -EINVAL;
    }
}

static int gw__iter_ids(struct gw_txn *txn, bool reverse, uint64_t after_id,
                        struct gw__row_iter *it)
{
    uint8_t seek[8];

    if (!txn || !it->fn.product)
        return -EINVAL;
    if (after_id == 0)
        return gw__walk(txn, it->db, NULL, 0, NULL, 0, false, reverse, gw__visit_row, it);
    gw__be64_put(seek, after_id);
    return gw__walk(txn, it->db, NULL, 0, seek, sizeof(seek), false, reverse, gw__visit_row,
                    it);
}

int gw_store_product_iter(struct gw_txn *txn, bool reverse, uint64_t after_id,
                          gw_store_product_fn fn, void *ctx)
{
    struct gw__row_iter it = { .db = GW__DB_PRODUCTS, .fn.product = fn, .ctx = ctx };

    return gw__iter_ids(txn, reverse, after_id, &it);
}

int gw_store_device_iter(struct gw_txn *txn, bool reverse, uint64_t after_id,
                         gw_store_device_fn fn, void *ctx)
{
    struct gw__row_iter it = { .db = GW__DB_DEVICES, .fn.device = fn, .ctx = ctx };

    return gw__iter_ids(txn, reverse, after_id, &it);
}

int gw_store_firmware_iter(struct gw_txn *txn, bool reverse, uint64_t after_id,
                           gw_store_firmware_fn fn, void *ctx)
{
    struct gw__row_iter it = { .db = GW__DB_FIRMWARE, .fn.firmware = fn, .ctx = ctx };

    return gw__iter_ids(txn, reverse, after_id, &it);
}

int gw_store_task_iter(struct gw_txn *txn, bool reverse, uint64_t after_id,
                       gw_store_task_fn fn, void *ctx)
{
    struct gw__row_iter it = { .db = GW__DB_TASKS, .fn.task = fn, .ctx = ctx };

    return gw__iter_ids(txn, reverse, after_id, &it);
}

int gw_store_record_iter(struct gw_txn *txn, bool reverse, uint64_t after_id,
                         gw_store_record_fn fn, void *ctx)
{
    struct gw__row_iter it = { .db = GW__DB_RECORDS, .fn.record = fn, .ctx = ctx };

    return gw__iter_ids(txn, reverse, after_id, &it);
}

/* ---- index walks ---- */

struct gw__dev_iter {
    gw_store_device_fn fn;
    void *ctx;
};

static int gw__visit_device_key(struct gw_txn *txn, void *vctx, const MDB_val *k,
                                const MDB_val *v)
{
    struct gw__dev_iter *it = vctx;
    struct gw_device d;
    uint64_t id;
    int rc;

    (void)k;
    rc = gw__val_id(GW__DB_DEVICE_BY_KEY, v, &id);
    if (rc)
        return rc;
    rc = gw_store_device_get(txn, id, &d);
    if (rc == GW_E_NOT_FOUND)
        return gw__corrupt(GW__DB_DEVICE_BY_KEY, id); /* index without its row */
    if (rc)
        return rc;
    return it->fn(it->ctx, &d);
}

int gw_store_device_iter_product(struct gw_txn *txn, uint64_t product_id,
                                 gw_store_device_fn fn, void *ctx)
{
    struct gw__dev_iter it = { fn, ctx };
    struct gw_product p;
    uint8_t prefix[GW_PK_MAX + 1];
    size_t n;
    int rc;

    if (!txn || !fn)
        return -EINVAL;
    rc = gw_store_product_get(txn, product_id, &p);
    if (rc)
        return rc;
    n = strlen(p.product_key);
    memcpy(prefix, p.product_key, n);
    prefix[n] = 0x00;
    return gw__walk(txn, GW__DB_DEVICE_BY_KEY, prefix, n + 1, prefix, n + 1, true, false,
                    gw__visit_device_key, &it);
}

struct gw__task_iter {
    gw_store_record_fn rec_fn;
    gw_store_id_fn id_fn;
    void *ctx;
};

static int gw__visit_task_record(struct gw_txn *txn, void *vctx, const MDB_val *k,
                                 const MDB_val *v)
{
    struct gw__task_iter *it = vctx;
    uint64_t id;
    struct gw_record r;
    int rc;

    (void)v;
    if (k->mv_size != 16)
        return gw__corrupt(GW__DB_RECORDS_BY_TASK, 0);
    id = gw__be64_get((const uint8_t *)k->mv_data + 8);
    if (it->id_fn)
        return it->id_fn(it->ctx, id);
    rc = gw_store_record_get(txn, id, &r);
    if (rc == GW_E_NOT_FOUND)
        return gw__corrupt(GW__DB_RECORDS_BY_TASK, id);
    if (rc)
        return rc;
    return it->rec_fn(it->ctx, &r);
}

static int gw__walk_task(struct gw_txn *txn, uint64_t task_id, uint64_t after_id,
                         struct gw__task_iter *it)
{
    uint8_t seek[16];

    gw__be64_put(seek, task_id);
    gw__be64_put(seek + 8, after_id);
    /* after_id 0 is below every record id, so "exclusive" still starts at the first. */
    return gw__walk(txn, GW__DB_RECORDS_BY_TASK, seek, 8, seek, sizeof(seek), false, false,
                    gw__visit_task_record, it);
}

int gw_store_record_iter_task(struct gw_txn *txn, uint64_t task_id, uint64_t after_id,
                              gw_store_record_fn fn, void *ctx)
{
    struct gw__task_iter it = { fn, NULL, ctx };

    if (!txn || !fn)
        return -EINVAL;
    return gw__walk_task(txn, task_id, after_id, &it);
}

int gw_store_record_ids_task(struct gw_txn *txn, uint64_t task_id, uint64_t after_id,
                             gw_store_id_fn fn, void *ctx)
{
    struct gw__task_iter it = { NULL, fn, ctx };

    if (!txn || !fn)
        return -EINVAL;
    return gw__walk_task(txn, task_id, after_id, &it);
}
