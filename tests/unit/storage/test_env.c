/*
 * The environment: schema version and migrations, a store from a newer build, reopen
 * persistence (rows and id sequences), MAP_FULL with a tiny map (sticky txn, store kept at
 * its last commit, reads served, consistent after reopen), read txns on other threads while
 * the writer commits, corrupt rows, read-only opens (the broker plugin's way in), stats.
 * Raw LMDB is used here only to fake conditions the API cannot produce.
 */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "store_test_util.h"

/* Writes raw bytes into a named database of a closed store. */
static void raw_put(const char *db, const char *dbname, const void *key, size_t klen,
                    const void *val, size_t vlen)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, db, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, dbname, 0, &dbi), 0);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void reopen(struct store_fx *fx, uint64_t map_mb)
{
    gw_store_close(fx->store);
    fx->store = NULL;
    assert_int_equal(gw_store_open(fx->db, map_mb, &fx->store), 0);
}

static void test_schema_version_and_newer_store(void **state)
{
    struct store_fx *fx = *state;
    struct gw_store *s = NULL;
    uint8_t v2[4] = { 0, 0, 0, 2 };
    int version = 0;

    assert_int_equal(gw_store_schema_version(fx->store, &version), 0);
    assert_int_equal(version, GW_STORE_SCHEMA_VERSION);
    reopen(fx, 16); /* opening an up-to-date store migrates nothing */
    assert_int_equal(gw_store_schema_version(fx->store, &version), 0);
    assert_int_equal(version, 1);

    gw_store_close(fx->store);
    fx->store = NULL;
    raw_put(fx->db, "meta", "schema_version", 14, v2, sizeof(v2));
    assert_int_equal(gw_store_open(fx->db, 16, &s), GW_E_SCHEMA);
    assert_null(s);
    assert_int_equal(gw_store_open_readonly(fx->db, &s), GW_E_SCHEMA);
    assert_null(s);
}

static void test_reopen_persists_rows_and_sequences(void **state)
{
    struct store_fx *fx = *state;
    struct gw_txn *t = wtxn(fx);
    uint64_t pid = mk_product(t, "p", "pk"), did;
    struct gw_device d;
    struct gw_product p;

    did = mk_device(t, pid, "dev");
    assert_int_equal(gw_store_txn_commit(t), 0);
    t = wtxn(fx); /* an aborted txn leaves neither rows nor sequence steps */
    mk_product(t, "gone", "gone");
    gw_store_txn_abort(t);

    reopen(fx, 16);
    t = wtxn(fx);
    assert_int_equal(gw_store_device_get_by_key(t, "pk", "dev", &d), 0);
    assert_int_equal(d.id, did);
    assert_int_equal(gw_store_product_get_by_key(t, "gone", &p), GW_E_NOT_FOUND);
    assert_int_equal(mk_product(t, "q", "q"), pid + 1); /* sequence continues */
    assert_int_equal(gw_store_txn_commit(t), 0);
}

static void test_map_full(void **state)
{
    struct store_fx *fx;
    struct gw_txn *t;
    struct gw_device d;
    struct gw_store_stats st;
    uint64_t pid, committed = 0;
    int rc = 0;
    char dn[32];

    (void)state;
    fx = store_fx_new(1);
    t = wtxn(fx);
    pid = mk_product(t, "p", "pk");
    assert_int_equal(gw_store_txn_commit(t), 0);
    /* Fill 100 devices per commit until a write or a commit hits the 1 MiB map. */
    while (rc == 0) {
        t = wtxn(fx);
        for (int i = 0; i < 100 && rc == 0; i++) {
            memset(&d, 0, sizeof(d));
            d.product_id = pid;
            snprintf(d.device_name, sizeof(d.device_name), "device-%06d", (int)committed + i);
            rc = gw_store_device_create(t, &d, 0);
        }
        if (rc == 0) {
            rc = gw_store_txn_commit(t);
            if (rc == 0)
                committed += 100;
        } else {
            assert_int_equal(gw_store_txn_commit(t), rc);
        }
        assert_true(committed < 100000);
    }
    assert_int_equal(rc, GW_E_MAP_FULL);
    assert_true(committed >= 500); /* the map really held data before filling */

    /* One txn writing until a write itself fails: the error sticks until commit. */
    t = wtxn(fx);
    rc = 0;
    for (int i = 0; rc == 0; i++) {
        assert_true(i < 100000);
        memset(&d, 0, sizeof(d));
        d.product_id = pid;
        snprintf(d.device_name, sizeof(d.device_name), "extra-%06d", i);
        rc = gw_store_device_create(t, &d, 0);
    }
    assert_int_equal(rc, GW_E_MAP_FULL);
    assert_int_equal(gw_store_txn_error(t), GW_E_MAP_FULL);
    assert_int_equal(gw_store_device_props_put(t, 1, "{}"), GW_E_MAP_FULL);
    assert_int_equal(gw_store_deadline_set(t, 1, 5), GW_E_MAP_FULL);
    assert_int_equal(gw_store_txn_commit(t), GW_E_MAP_FULL);

    /* Reads are still served, as of the last commit. */
    t = rtxn(fx);
    assert_int_equal(gw_store_stats(t, &st), 0);
    assert_int_equal(st.devices, committed);
    snprintf(dn, sizeof(dn), "device-%06d", (int)committed - 1);
    assert_int_equal(gw_store_device_get_by_key(t, "pk", dn, &d), 0);
    snprintf(dn, sizeof(dn), "device-%06d", (int)committed);
    assert_int_equal(gw_store_device_get_by_key(t, "pk", dn, &d), GW_E_NOT_FOUND);
    gw_store_txn_abort(t);

    /* Reopen: rows and index agree, and a bigger map takes writes again. */
    reopen(fx, 2);
    t = wtxn(fx);
    assert_int_equal(gw_store_stats(t, &st), 0);
    assert_int_equal(st.devices, committed);
    for (uint64_t i = 0; i < committed; i++) {
        snprintf(dn, sizeof(dn), "device-%06d", (int)i);
        assert_int_equal(gw_store_device_get_by_key(t, "pk", dn, &d), 0);
        assert_int_equal(d.id, i + 1);
    }
    assert_int_equal(mk_device(t, pid, "after-reopen"), committed + 1);
    assert_int_equal(gw_store_txn_commit(t), 0);
    store_fx_free(fx);
}

static int count_device(void *ctx, const struct gw_device *d)
{
    (void)d;
    (*(uint64_t *)ctx)++;
    return 0;
}

struct writer_arg {
    struct gw_store *store;
    int commits;
};

static void *writer_main(void *arg)
{
    struct writer_arg *w = arg;

    for (int i = 0; i < w->commits; i++) {
        struct gw_txn *t = NULL;
        struct gw_device d;

        if (gw_store_txn_begin(w->store, true, &t) != 0)
            return (void *)1;
        memset(&d, 0, sizeof(d));
        d.product_id = 1;
        snprintf(d.device_name, sizeof(d.device_name), "w%d", i);
        if (gw_store_device_create(t, &d, 0) != 0 || gw_store_txn_commit(t) != 0)
            return (void *)1;
    }
    return NULL;
}

struct reader_arg {
    struct gw_store *store;
    atomic_int *stop;
    int reads;
    int bad;
};

/* Each snapshot must be self-consistent: the table count equals the index walk. */
static void *reader_main(void *arg)
{
    struct reader_arg *r = arg;

    do {
        struct gw_txn *t = NULL;
        struct gw_store_stats st;
        uint64_t n = 0;

        if (gw_store_txn_begin(r->store, false, &t) != 0 || gw_store_stats(t, &st) != 0 ||
            gw_store_device_iter_product(t, 1, count_device, &n) != 0 || n != st.devices)
            r->bad++;
        gw_store_txn_abort(t);
        r->reads++;
    } while (!atomic_load(r->stop));
    return NULL;
}

static void test_threads(void **state)
{
    struct store_fx *fx = *state;
    struct gw_txn *t = wtxn(fx), *snap;
    struct writer_arg w = { fx->store, 1 };
    atomic_int stop = 0;
    struct reader_arg r = { fx->store, &stop, 0, 0 };
    pthread_t th, rd;
    void *ret;
    uint64_t n = 0;

    mk_product(t, "p", "pk");
    assert_int_equal(gw_store_txn_commit(t), 0);

    /* A snapshot held here does not see a commit made by another thread meanwhile. */
    snap = rtxn(fx);
    assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_null(ret);
    assert_int_equal(gw_store_device_iter_product(snap, 1, count_device, &n), 0);
    assert_int_equal(n, 0);
    gw_store_txn_abort(snap);
    t = rtxn(fx);
    n = 0;
    assert_int_equal(gw_store_device_iter_product(t, 1, count_device, &n), 0);
    assert_int_equal(n, 1);
    gw_store_txn_abort(t);

    /* A reader thread loops over snapshots while this thread commits 200 times. */
    assert_int_equal(pthread_create(&rd, NULL, reader_main, &r), 0);
    for (int i = 0; i < 200; i++) {
        struct gw_device d;

        t = wtxn(fx);
        memset(&d, 0, sizeof(d));
        d.product_id = 1;
        snprintf(d.device_name, sizeof(d.device_name), "m%d", i);
        assert_int_equal(gw_store_device_create(t, &d, 0), 0);
        assert_int_equal(gw_store_txn_commit(t), 0);
    }
    atomic_store(&stop, 1);
    assert_int_equal(pthread_join(rd, NULL), 0);
    assert_true(r.reads >= 1);
    assert_int_equal(r.bad, 0);
}

static void test_corrupt_rows(void **state)
{
    struct store_fx *fx = *state;
    struct gw_txn *t = wtxn(fx);
    uint64_t pid = mk_product(t, "p", "pk");
    uint64_t did = mk_device(t, pid, "dev");
    uint64_t fw = mk_firmware(t, pid, "1");
    uint64_t rid = mk_record(t, mk_task(t, fw, "t"), fw, did, GW_RECORD_PENDING);
    uint8_t key[8] = { 0 };
    const uint8_t junk[] = { 1, 2, 3 };
    struct gw_device d;
    struct gw_record r;
    uint64_t n = 0;

    assert_int_equal(gw_store_txn_commit(t), 0);
    gw_store_close(fx->store);
    fx->store = NULL;
    key[7] = (uint8_t)did;
    raw_put(fx->db, "devices", key, 8, junk, sizeof(junk));
    key[7] = (uint8_t)rid;
    raw_put(fx->db, "records", key, 8, "\x01", 1);
    assert_int_equal(gw_store_open(fx->db, 16, &fx->store), 0);

    t = wtxn(fx);
    assert_int_equal(gw_store_device_get(t, did, &d), GW_E_STORE);
    assert_int_equal(gw_store_device_get_by_key(t, "pk", "dev", &d), GW_E_STORE);
    assert_int_equal(gw_store_device_iter(t, false, 0, count_device, &n), GW_E_STORE);
    assert_int_equal(gw_store_record_get(t, rid, &r), GW_E_STORE);
    record_init(&r, 1, fw, did, GW_RECORD_PUSHED);
    r.id = rid;
    assert_int_equal(gw_store_record_put(t, &r), GW_E_STORE);
    assert_int_equal(gw_store_product_get(t, pid, &(struct gw_product){ 0 }), 0);
    gw_store_txn_abort(t);
}

static void test_readonly_open(void **state)
{
    struct store_fx *fx = *state;
    struct gw_txn *t = wtxn(fx);
    struct gw_store *ro = NULL;
    struct gw_device d;
    char empty[96];

    mk_device(t, mk_product(t, "p", "pk001"), "dev01");
    assert_int_equal(gw_store_txn_commit(t), 0);
    /* The plugin opens the same env in another process; here: after the writer closed. */
    gw_store_close(fx->store);
    fx->store = NULL;
    assert_int_equal(gw_store_open_readonly(fx->db, &ro), 0);
    assert_int_equal(gw_store_txn_begin(ro, true, &t), -EINVAL);
    assert_int_equal(gw_store_txn_begin(ro, false, &t), 0);
    assert_int_equal(gw_store_device_get_by_key(t, "pk001", "dev01", &d), 0);
    assert_int_equal(strlen(d.device_secret), 32);
    assert_int_equal(gw_store_device_put(t, &d), -EINVAL);
    gw_store_txn_abort(t);
    gw_store_close(ro);

    /* Nothing created yet: the reader refuses instead of creating an empty store. */
    snprintf(empty, sizeof(empty), "%s/empty", fx->dir);
    assert_int_equal(mkdir(empty, 0700), 0);
    ro = NULL;
    assert_int_equal(gw_store_open_readonly(empty, &ro), -ENOENT);
    assert_null(ro);
    assert_int_equal(gw_store_open(fx->db, 16, &fx->store), 0);
}

static void test_stats(void **state)
{
    struct store_fx *fx = *state;
    struct gw_txn *t = wtxn(fx);
    struct gw_store_stats st;
    uint64_t pid = mk_product(t, "p", "pk"), fw = mk_firmware(t, pid, "1");
    uint64_t task = mk_task(t, fw, "t");
    uint64_t rid = mk_record(t, task, fw, mk_device(t, pid, "a"), GW_RECORD_PENDING);
    struct gw_history_entry h = { 1, 0, 10, "pushed" };

    mk_record(t, task, fw, mk_device(t, pid, "b"), GW_RECORD_PENDING);
    assert_int_equal(gw_store_history_append(t, rid, &h), 0);
    assert_int_equal(gw_store_stats(t, &st), 0); /* inside the write txn: its own writes */
    assert_int_equal(st.devices, 2);
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = rtxn(fx);
    assert_int_equal(gw_store_stats(t, &st), 0);
    assert_int_equal(st.products, 1);
    assert_int_equal(st.devices, 2);
    assert_int_equal(st.firmware, 1);
    assert_int_equal(st.tasks, 1);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.history, 1);
    assert_int_equal(st.map_size, 16u << 20);
    assert_true(st.map_used > 0 && st.map_used < st.map_size);
    gw_store_txn_abort(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema_version_and_newer_store, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_reopen_persists_rows_and_sequences, fx_setup,
                                        fx_teardown),
        cmocka_unit_test(test_map_full),
        cmocka_unit_test_setup_teardown(test_threads, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_rows, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_readonly_open, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_stats, fx_setup, fx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
