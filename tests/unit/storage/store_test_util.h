#ifndef STORE_TEST_UTIL_H
#define STORE_TEST_UTIL_H
/*
 * Helpers for the storage unit tests: a fresh store in a mkdtemp directory under /tmp,
 * removed again at teardown, and small builders for rows. Test-only; static functions.
 */
#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "gw_store.h"

struct store_fx {
    char dir[64];
    char db[96];
    struct gw_store *store;
};

static inline int store_fx_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void store_fx_rmrf(const char *dir)
{
    nftw(dir, store_fx_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new store of map_mb MiB in a fresh temp dir; the env lives in <dir>/db. */
static inline struct store_fx *store_fx_new(uint64_t map_mb)
{
    struct store_fx *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    strcpy(fx->dir, "/tmp/gw-store-test-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->db, sizeof(fx->db), "%s/db", fx->dir);
    assert_int_equal(gw_store_open(fx->db, map_mb, &fx->store), 0);
    return fx;
}

static inline void store_fx_free(struct store_fx *fx)
{
    if (!fx)
        return;
    gw_store_close(fx->store);
    store_fx_rmrf(fx->dir);
    free(fx);
}

static inline int fx_setup(void **state)
{
    *state = store_fx_new(16);
    return 0;
}

static inline int fx_teardown(void **state)
{
    store_fx_free(*state);
    return 0;
}

static inline struct gw_txn *wtxn(struct store_fx *fx)
{
    struct gw_txn *t = NULL;

    assert_int_equal(gw_store_txn_begin(fx->store, true, &t), 0);
    return t;
}

static inline struct gw_txn *rtxn(struct store_fx *fx)
{
    struct gw_txn *t = NULL;

    assert_int_equal(gw_store_txn_begin(fx->store, false, &t), 0);
    return t;
}

/* Creates a product (productKey pk, "" to generate) and returns its id. */
static inline uint64_t mk_product(struct gw_txn *t, const char *name, const char *pk)
{
    struct gw_product p;

    memset(&p, 0, sizeof(p));
    snprintf(p.name, sizeof(p.name), "%s", name);
    snprintf(p.product_key, sizeof(p.product_key), "%s", pk);
    assert_int_equal(gw_store_product_create(t, &p, 1000), 0);
    return p.id;
}

static inline uint64_t mk_device(struct gw_txn *t, uint64_t product_id, const char *dn)
{
    struct gw_device d;

    memset(&d, 0, sizeof(d));
    d.product_id = product_id;
    snprintf(d.device_name, sizeof(d.device_name), "%s", dn);
    assert_int_equal(gw_store_device_create(t, &d, 2000), 0);
    return d.id;
}

static inline uint64_t mk_firmware(struct gw_txn *t, uint64_t product_id, const char *version)
{
    struct gw_firmware f;

    memset(&f, 0, sizeof(f));
    f.product_id = product_id;
    snprintf(f.name, sizeof(f.name), "fw %s", version);
    snprintf(f.version, sizeof(f.version), "%s", version);
    strcpy(f.digest_algorithm, "MD5");
    assert_int_equal(gw_store_firmware_create(t, &f, 3000), 0);
    return f.id;
}

static inline void task_init(struct gw_task *t, uint64_t firmware_id, const char *name)
{
    memset(t, 0, sizeof(*t));
    t->firmware_id = firmware_id;
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->status = GW_TASK_IN_PROGRESS;
    t->device_scope = GW_SCOPE_SELECT;
}

static inline uint64_t mk_task(struct gw_txn *t, uint64_t firmware_id, const char *name)
{
    struct gw_task task;

    task_init(&task, firmware_id, name);
    assert_int_equal(gw_store_task_create(t, &task), 0);
    return task.id;
}

static inline void record_init(struct gw_record *r, uint64_t task_id, uint64_t firmware_id,
                               uint64_t device_id, int status)
{
    memset(r, 0, sizeof(*r));
    r->task_id = task_id;
    r->firmware_id = firmware_id;
    r->device_id = device_id;
    r->status = status;
}

static inline uint64_t mk_record(struct gw_txn *t, uint64_t task_id, uint64_t firmware_id,
                                 uint64_t device_id, int status)
{
    struct gw_record r;

    record_init(&r, task_id, firmware_id, device_id, status);
    assert_int_equal(gw_store_record_create(t, &r), 0);
    return r.id;
}

/* Collects ids passed to an iterator callback, with an optional stop/error after n. */
struct id_list {
    uint64_t ids[4096];
    size_t n;
    size_t stop_after; /* 0 = never */
    int stop_rc;       /* returned at stop_after: 1 or a negative error */
};

static inline int id_list_add(struct id_list *l, uint64_t id)
{
    assert_true(l->n < sizeof(l->ids) / sizeof(l->ids[0]));
    l->ids[l->n++] = id;
    if (l->stop_after && l->n == l->stop_after)
        return l->stop_rc;
    return 0;
}

#endif
