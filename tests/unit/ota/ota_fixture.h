#ifndef OTA_FIXTURE_H
#define OTA_FIXTURE_H
/*
 * Shared fixture of the OTA engine tests: a real store in a temp directory, one open write
 * transaction, an engine, an injected clock, a product with devices and two firmware
 * versions, and checkers of the engine's invariants. Header-only (each test_*.c is its own
 * executable); everything is static inline so unused helpers do not warn.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw_ota.h"
#include "gw_store.h"

#define FX_MAX_DEV 64
#define FX_T0 1700000000000LL

struct fx {
    char dir[64];
    struct gw_store *store;
    struct gw_txn *txn;
    struct gw_ota_engine *eng;
    struct gw_ota_actions acts;
    int64_t now;
    uint64_t product_id, other_product_id;
    uint64_t fw1, fw2, other_fw;
    uint64_t dev[FX_MAX_DEV];
    size_t ndev;
    uint64_t other_dev; /* a device of the other product */
};

static inline int fx_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline uint64_t fx_firmware(struct fx *f, uint64_t product_id, const char *version)
{
    struct gw_firmware fw = { .product_id = product_id, .file_size = 1024 };
    snprintf(fw.name, sizeof(fw.name), "fw %s", version);
    snprintf(fw.version, sizeof(fw.version), "%s", version);
    snprintf(fw.file_url, sizeof(fw.file_url), "/firmware/%s.bin", version);
    snprintf(fw.digest_value, sizeof(fw.digest_value), "%032x", 7);
    snprintf(fw.sha256, sizeof(fw.sha256), "%064x", 9);
    assert_int_equal(gw_ota_firmware_create(f->eng, f->txn, &fw, f->now), 0);
    return fw.id;
}

static inline uint64_t fx_device(struct fx *f, uint64_t product_id, const char *name)
{
    struct gw_device d = { .product_id = product_id };
    snprintf(d.device_name, sizeof(d.device_name), "%s", name);
    assert_int_equal(gw_store_device_create(f->txn, &d, f->now), 0);
    return d.id;
}

/* Store + engine (policy NULL = defaults) + product with ndev devices + fw "1.0" and "2.0". */
static inline struct fx *fx_new(const struct gw_task_policy *policy, size_t ndev)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct gw_product p = { 0 }, q = { 0 };

    assert_non_null(f);
    assert_true(ndev <= FX_MAX_DEV);
    snprintf(f->dir, sizeof(f->dir), "/tmp/gw_ota_test_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(gw_store_open(f->dir, 64, &f->store), 0);
    assert_int_equal(gw_store_txn_begin(f->store, true, &f->txn), 0);
    assert_int_equal(gw_ota_engine_create(policy, &f->eng), 0);
    gw_ota_actions_init(&f->acts);
    f->now = FX_T0;
    snprintf(p.name, sizeof(p.name), "product");
    snprintf(p.product_key, sizeof(p.product_key), "pk1");
    assert_int_equal(gw_store_product_create(f->txn, &p, f->now), 0);
    f->product_id = p.id;
    snprintf(q.name, sizeof(q.name), "other");
    snprintf(q.product_key, sizeof(q.product_key), "pk2");
    assert_int_equal(gw_store_product_create(f->txn, &q, f->now), 0);
    f->other_product_id = q.id;
    for (size_t i = 0; i < ndev; i++) {
        char name[32];
        snprintf(name, sizeof(name), "dev%zu", i);
        f->dev[i] = fx_device(f, p.id, name);
    }
    f->ndev = ndev;
    f->other_dev = fx_device(f, q.id, "stranger");
    f->fw1 = fx_firmware(f, p.id, "1.0");
    f->fw2 = fx_firmware(f, p.id, "2.0");
    f->other_fw = fx_firmware(f, q.id, "1.0");
    return f;
}

static inline void fx_free(struct fx *f)
{
    if (!f)
        return;
    gw_store_txn_abort(f->txn);
    gw_store_close(f->store);
    gw_ota_engine_destroy(f->eng);
    gw_ota_actions_fini(&f->acts);
    nftw(f->dir, fx_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
}

/* Commits and opens the next write transaction (what the core does per batch). */
static inline void fx_commit(struct fx *f)
{
    assert_int_equal(gw_store_txn_commit(f->txn), 0);
    assert_int_equal(gw_store_txn_begin(f->store, true, &f->txn), 0);
}

static inline void fx_online(struct fx *f, uint64_t device_id)
{
    assert_int_equal(gw_ota_on_device_online(f->eng, f->txn, device_id, f->now, &f->acts), 0);
}

static inline void fx_offline(struct fx *f, uint64_t device_id)
{
    assert_int_equal(gw_ota_on_device_offline(f->eng, f->txn, device_id, f->now, &f->acts), 0);
}

static inline void fx_all_online(struct fx *f)
{
    for (size_t i = 0; i < f->ndev; i++)
        fx_online(f, f->dev[i]);
}

static inline int fx_task_rc(struct fx *f, uint64_t fw, const char *name, int scope,
                             const uint64_t *ids, size_t n, const struct gw_ota_overrides *o,
                             uint64_t *task_id)
{
    struct gw_ota_task_req req = { .firmware_id = fw, .name = name, .scope = scope,
                                   .device_ids = ids, .n_devices = n, .overrides = o };
    return gw_ota_task_create(f->eng, f->txn, &req, f->now, &f->acts, task_id);
}

/* A task on fw2 for the first n devices (scope SELECT). */
static inline uint64_t fx_task(struct fx *f, const char *name, size_t n,
                               const struct gw_ota_overrides *o)
{
    uint64_t id = 0;
    assert_int_equal(fx_task_rc(f, f->fw2, name, GW_SCOPE_SELECT, f->dev, n, o, &id), 0);
    return id;
}

static inline struct gw_task fx_get_task(struct fx *f, uint64_t id)
{
    struct gw_task t;
    assert_int_equal(gw_store_task_get(f->txn, id, &t), 0);
    return t;
}

static inline struct gw_record fx_get_record(struct fx *f, uint64_t id)
{
    struct gw_record r;
    assert_int_equal(gw_store_record_get(f->txn, id, &r), 0);
    return r;
}

static inline struct gw_device fx_get_device(struct fx *f, uint64_t id)
{
    struct gw_device d;
    assert_int_equal(gw_store_device_get(f->txn, id, &d), 0);
    return d;
}

struct fx_find {
    uint64_t device_id;
    struct gw_record r;
    bool found;
};

static inline int fx_find_cb(void *ctx, const struct gw_record *r)
{
    struct fx_find *c = ctx;
    if (r->device_id != c->device_id)
        return 0;
    c->r = *r;
    c->found = true;
    return 1;
}

/* The record of device in task. */
static inline struct gw_record fx_record_of(struct fx *f, uint64_t task_id, uint64_t device_id)
{
    struct fx_find c = { .device_id = device_id };
    assert_int_equal(gw_store_record_iter_task(f->txn, task_id, 0, fx_find_cb, &c), 0);
    assert_true(c.found);
    return c.r;
}

static inline int fx_status(struct fx *f, uint64_t task_id, uint64_t device_id)
{
    return fx_record_of(f, task_id, device_id).status;
}

static inline int fx_progress(struct fx *f, uint64_t device_id, const char *version, int status,
                              int progress)
{
    return gw_ota_on_progress(f->eng, f->txn, device_id, version, status, progress, "desc",
                              f->now, &f->acts);
}

static inline int fx_tick(struct fx *f)
{
    return gw_ota_tick(f->eng, f->txn, f->now, &f->acts);
}

/* Actions of a kind (optionally for one device: 0 = any) in the sink. */
static inline size_t fx_count_actions(const struct fx *f, int kind, uint64_t device_id)
{
    size_t n = 0;
    for (size_t i = 0; i < f->acts.n; i++)
        if (f->acts.v[i].kind == kind && (!device_id || f->acts.v[i].device_id == device_id))
            n++;
    return n;
}

/* The last action of a kind for a record (NULL when none). */
static inline const struct gw_ota_action *fx_last_action(const struct fx *f, int kind,
                                                         uint64_t record_id)
{
    for (size_t i = f->acts.n; i > 0; i--)
        if (f->acts.v[i - 1].kind == kind && f->acts.v[i - 1].record_id == record_id)
            return &f->acts.v[i - 1];
    return NULL;
}

/* ---- history ---- */

#define FX_HIST_MAX 256
struct fx_hist {
    struct gw_history_entry v[FX_HIST_MAX];
    size_t n;
};

static inline int fx_hist_cb(void *ctx, const struct gw_history_entry *h)
{
    struct fx_hist *c = ctx;
    if (c->n < FX_HIST_MAX)
        c->v[c->n] = *h;
    c->n++;
    return 0;
}

static inline void fx_history(struct fx *f, uint64_t record_id, struct fx_hist *out)
{
    out->n = 0;
    assert_int_equal(gw_store_history_iter(f->txn, record_id, fx_hist_cb, out), 0);
}

/* true when the history chains 0 → ... → status, with non-decreasing times. */
static inline bool fx_history_complete(struct fx *f, const struct gw_record *r)
{
    struct fx_hist *h = malloc(sizeof(*h));
    int at = GW_RECORD_PENDING;
    bool ok = true;

    assert_non_null(h);
    fx_history(f, r->id, h);
    if (h->n > FX_HIST_MAX)
        ok = false;
    for (size_t i = 0; ok && i < h->n; i++) {
        if (h->v[i].from_status != at || h->v[i].to_status == at)
            ok = false;
        if (i > 0 && h->v[i].time_ms < h->v[i - 1].time_ms)
            ok = false;
        at = h->v[i].to_status;
    }
    ok = ok && at == r->status;
    free(h);
    return ok;
}

/* ---- task invariants ---- */

struct fx_tally {
    uint32_t count[6];
    uint32_t n;
    bool history_ok;
    struct fx *f;
};

static inline int fx_tally_cb(void *ctx, const struct gw_record *r)
{
    struct fx_tally *c = ctx;
    int i = gw_record_status_index(r->status);
    if (i < 0)
        return -1;
    c->count[i]++;
    c->n++;
    if (!fx_history_complete(c->f, r))
        c->history_ok = false;
    return 0;
}

/* The task row agrees with its records; in progress iff it has an active record. */
static inline void fx_check_task(struct fx *f, uint64_t task_id)
{
    struct gw_task t = fx_get_task(f, task_id);
    struct fx_tally c = { .history_ok = true, .f = f };
    uint32_t active;

    assert_int_equal(gw_store_record_iter_task(f->txn, task_id, 0, fx_tally_cb, &c), 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(t.status_count[i], c.count[i]);
    assert_int_equal(t.device_total_count, c.n);
    assert_int_equal(t.device_success_count, c.count[3]);
    assert_true(c.history_ok);
    active = c.count[0] + c.count[1] + c.count[2];
    if (t.status == GW_TASK_IN_PROGRESS)
        assert_true(active > 0);
    else
        assert_int_equal(active, 0);
}

#endif
