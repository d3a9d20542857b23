/*
 * DESIGN: the LMDB environment of the store: open (with numbered schema migrations), close,
 * transactions with a sticky error, id sequences, statistics, and the one place where LMDB
 * return codes become GW_E_* codes (logged once, tag "store").
 *
 * Threads: the env is opened with MDB_NOTLS, so a read txn is tied to its MDB_txn, not to a
 * thread: any thread may read while the core thread writes. LMDB's writer mutex serialises
 * write txns (across processes too). A gw_txn is used by one thread at a time.
 *
 * Invariants: every named database listed in gw__db_names exists once gw_store_open returns;
 * meta "schema_version" equals GW_STORE_SCHEMA_VERSION; a write txn whose error is set never
 * commits (commit aborts and returns that error), so a MAP_FULL half-way through an
 * operation cannot leave a row without its index.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gw_log.h"
#include "store_internal.h"

#define GW__MAX_DBS 32 /* room for later migrations; LMDB sizes per-txn arrays by this */
#define GW__ENV_MODE 0660

static const char *const gw__db_names[GW__DB_COUNT] = {
    [GW__DB_META] = "meta",
    [GW__DB_PRODUCTS] = "products",
    [GW__DB_PRODUCT_BY_KEY] = "product_by_key",
    [GW__DB_DEVICES] = "devices",
    [GW__DB_DEVICE_BY_KEY] = "device_by_key",
    [GW__DB_DEVICE_PROPS] = "device_props",
    [GW__DB_FIRMWARE] = "firmware",
    [GW__DB_FIRMWARE_BY_PV] = "firmware_by_product_version",
    [GW__DB_TASKS] = "tasks",
    [GW__DB_TASK_BY_FW_NAME] = "task_by_firmware_name",
    [GW__DB_RECORDS] = "records",
    [GW__DB_RECORDS_BY_TASK] = "records_by_task",
    [GW__DB_ACTIVE_RECORD] = "active_record_by_device",
    [GW__DB_RECORD_HISTORY] = "record_history",
    [GW__DB_RECORD_DEADLINES] = "record_deadlines",
    [GW__DB_DEADLINE_BY_RECORD] = "deadline_by_record",
};

static const char *const gw__seq_keys[GW__SEQ_COUNT] = {
    [GW__SEQ_PRODUCT] = "seq:product", [GW__SEQ_DEVICE] = "seq:device",
    [GW__SEQ_FIRMWARE] = "seq:firmware", [GW__SEQ_TASK] = "seq:task",
    [GW__SEQ_RECORD] = "seq:record",
};

#define GW__META_VERSION "schema_version"

/* ---- error translation ---- */

int gw__store_xlate(int rc, const char *what)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_NOTFOUND:
        return GW_E_NOT_FOUND;
    case MDB_MAP_FULL:
        gw_log(GW_LOG_ERROR, "store", "%s: map full (raise storage.map_size_mb)", what);
        return GW_E_MAP_FULL;
    case ENOMEM:
        gw_log(GW_LOG_ERROR, "store", "%s: out of memory", what);
        return -ENOMEM;
    default:
        gw_log(GW_LOG_ERROR, "store", "%s: %s (%d)", what, mdb_strerror(rc), rc);
        return GW_E_STORE;
    }
}

int gw__corrupt(enum gw__db db, uint64_t id)
{
    gw_log(GW_LOG_ERROR, "store", "corrupt row in %s (id %llu)", gw__db_names[db],
           (unsigned long long)id);
    return GW_E_STORE;
}

int gw__val_id(enum gw__db db, const MDB_val *v, uint64_t *out)
{
    if (v->mv_size != 8) {
        gw_log(GW_LOG_ERROR, "store", "corrupt index entry in %s", gw__db_names[db]);
        return GW_E_STORE;
    }
    *out = gw__be64_get(v->mv_data);
    return 0;
}

/* ---- raw access ---- */

int gw__txn_writable(const struct gw_txn *txn)
{
    if (!txn || !txn->write)
        return -EINVAL;
    return txn->error;
}

static void gw__txn_fail(struct gw_txn *txn, int err)
{
    if (!txn->error)
        txn->error = err;
}

int gw__fail_after_write(struct gw_txn *txn, int rc)
{
    if (rc == GW_E_EXISTS) {
        gw_log(GW_LOG_ERROR, "store", "unique key already present where the schema says free");
        rc = GW_E_STORE;
    }
    gw__txn_fail(txn, rc);
    return rc;
}

int gw__get(struct gw_txn *txn, enum gw__db db, const void *key, size_t klen, MDB_val *v)
{
    MDB_val k = { klen, (void *)key };
    int rc = mdb_get(txn->txn, txn->store->dbi[db], &k, v);

    if (rc == MDB_NOTFOUND)
        return GW_E_NOT_FOUND;
    return gw__store_xlate(rc, gw__db_names[db]);
}

int gw__put(struct gw_txn *txn, enum gw__db db, const void *key, size_t klen, const void *val,
            size_t vlen, unsigned flags)
{
    MDB_val k = { klen, (void *)key };
    MDB_val v = { vlen, (void *)val };
    int rc;

    rc = gw__txn_writable(txn);
    if (rc)
        return rc;
    rc = mdb_put(txn->txn, txn->store->dbi[db], &k, &v, flags);
    txn->writes++;
    if (rc == MDB_KEYEXIST)
        return GW_E_EXISTS; /* nothing was written: not sticky */
    if (rc) {
        rc = gw__store_xlate(rc, gw__db_names[db]);
        gw__txn_fail(txn, rc);
    }
    return rc;
}

int gw__del(struct gw_txn *txn, enum gw__db db, const void *key, size_t klen)
{
    MDB_val k = { klen, (void *)key };
    int rc;

    rc = gw__txn_writable(txn);
    if (rc)
        return rc;
    rc = mdb_del(txn->txn, txn->store->dbi[db], &k, NULL);
    txn->writes++;
    if (rc == MDB_NOTFOUND)
        return GW_E_NOT_FOUND;
    if (rc) {
        rc = gw__store_xlate(rc, gw__db_names[db]);
        gw__txn_fail(txn, rc);
    }
    return rc;
}

int gw__get_id(struct gw_txn *txn, enum gw__db db, uint64_t id, MDB_val *v)
{
    uint8_t k[8];

    gw__be64_put(k, id);
    return gw__get(txn, db, k, sizeof(k), v);
}

int gw__put_id(struct gw_txn *txn, enum gw__db db, uint64_t id, const void *val, size_t vlen,
               unsigned flags)
{
    uint8_t k[8];

    gw__be64_put(k, id);
    return gw__put(txn, db, k, sizeof(k), val, vlen, flags);
}

/* ---- sequences ---- */

int gw__seq_next(struct gw_txn *txn, enum gw__seq seq, uint64_t *out)
{
    uint8_t bit = (uint8_t)(1u << seq);
    int rc;

    rc = gw__txn_writable(txn);
    if (rc)
        return rc;
    if (!(txn->seq_loaded & bit)) {
        MDB_val v;
        const char *key = gw__seq_keys[seq];

        rc = gw__get(txn, GW__DB_META, key, strlen(key), &v);
        if (rc == GW_E_NOT_FOUND) {
            txn->seq[seq] = 0;
        } else if (rc) {
            return rc;
        } else if (v.mv_size != 8) {
            gw_log(GW_LOG_ERROR, "store", "corrupt sequence %s in meta", key);
            return GW_E_SCHEMA;
        } else {
            txn->seq[seq] = gw__be64_get(v.mv_data);
        }
        txn->seq_loaded |= bit;
    }
    txn->seq[seq]++;
    txn->seq_dirty |= bit;
    *out = txn->seq[seq];
    return 0;
}

static int gw__seq_flush(struct gw_txn *txn)
{
    for (int s = 0; s < GW__SEQ_COUNT; s++) {
        uint8_t v[8];
        const char *key = gw__seq_keys[s];
        int rc;

        if (!(txn->seq_dirty & (1u << s)))
            continue;
        gw__be64_put(v, txn->seq[s]);
        rc = gw__put(txn, GW__DB_META, key, strlen(key), v, sizeof(v), 0);
        if (rc)
            return rc;
    }
    txn->seq_dirty = 0;
    return 0;
}

/* ---- schema and migrations ---- */

static int gw__meta_version(MDB_txn *txn, MDB_dbi meta, int *out)
{
    MDB_val k = { strlen(GW__META_VERSION), GW__META_VERSION };
    MDB_val v;
    int rc = mdb_get(txn, meta, &k, &v);

    if (rc == MDB_NOTFOUND) {
        *out = 0;
        return 0;
    }
    if (rc)
        return gw__store_xlate(rc, "read schema version");
    if (v.mv_size != 4) {
        gw_log(GW_LOG_ERROR, "store", "corrupt schema version in meta");
        return GW_E_SCHEMA;
    }
    *out = (int)gw__be32_get(v.mv_data);
    return 0;
}

/* Version 1: every database of the initial schema. */
static int gw__migrate_v1(MDB_txn *txn)
{
    for (int db = 0; db < GW__DB_COUNT; db++) {
        MDB_dbi dbi;
        int rc = mdb_dbi_open(txn, gw__db_names[db], MDB_CREATE, &dbi);

        if (rc)
            return gw__store_xlate(rc, "migration 1");
    }
    return 0;
}

/* Numbered migrations: entry i takes the schema from version i to version i + 1.
 * Each runs inside the single write transaction of gw_store_open. */
static int (*const gw__migrations[GW_STORE_SCHEMA_VERSION])(MDB_txn *txn) = {
    gw__migrate_v1,
};

static int gw__open_dbis(struct gw_store *store, MDB_txn *txn)
{
    for (int db = 0; db < GW__DB_COUNT; db++) {
        int rc = mdb_dbi_open(txn, gw__db_names[db], 0, &store->dbi[db]);

        if (rc == MDB_NOTFOUND) {
            gw_log(GW_LOG_ERROR, "store", "database %s missing", gw__db_names[db]);
            return GW_E_SCHEMA;
        }
        if (rc)
            return gw__store_xlate(rc, "open database");
    }
    return 0;
}

static int gw__migrate(struct gw_store *store)
{
    MDB_txn *txn;
    MDB_dbi meta;
    int version, rc;

    rc = gw__store_xlate(mdb_txn_begin(store->env, NULL, 0, &txn), "begin migration");
    if (rc)
        return rc;
    rc = gw__store_xlate(mdb_dbi_open(txn, "meta", MDB_CREATE, &meta), "open meta");
    if (rc)
        goto err_abort;
    rc = gw__meta_version(txn, meta, &version);
    if (rc)
        goto err_abort;
    if (version > GW_STORE_SCHEMA_VERSION || version < 0) {
        gw_log(GW_LOG_ERROR, "store", "store schema %d is newer than this build (%d)", version,
               GW_STORE_SCHEMA_VERSION);
        rc = GW_E_SCHEMA;
        goto err_abort;
    }
    for (int v = version; v < GW_STORE_SCHEMA_VERSION; v++) {
        rc = gw__migrations[v](txn);
        if (rc)
            goto err_abort;
    }
    if (version != GW_STORE_SCHEMA_VERSION) {
        uint8_t buf[4];
        MDB_val k = { strlen(GW__META_VERSION), GW__META_VERSION };
        MDB_val val = { sizeof(buf), buf };

        gw__be32_put(buf, GW_STORE_SCHEMA_VERSION);
        rc = gw__store_xlate(mdb_put(txn, meta, &k, &val, 0), "write schema version");
        if (rc)
            goto err_abort;
        gw_log(GW_LOG_INFO, "store", "schema migrated from %d to %d", version,
               GW_STORE_SCHEMA_VERSION);
    }
    rc = gw__open_dbis(store, txn);
    if (rc)
        goto err_abort;
    /* Committing keeps the dbi handles for the life of the env. */
    return gw__store_xlate(mdb_txn_commit(txn), "commit migration");

err_abort:
    mdb_txn_abort(txn);
    return rc;
}

/* Read-only open: check the version and take the handles in a read txn. */
static int gw__attach(struct gw_store *store)
{
    MDB_txn *txn;
    MDB_dbi meta;
    int version, rc;

    rc = gw__store_xlate(mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn), "begin attach");
    if (rc)
        return rc;
    rc = mdb_dbi_open(txn, "meta", 0, &meta);
    if (rc == MDB_NOTFOUND) {
        gw_log(GW_LOG_ERROR, "store", "no store here yet (the gateway creates it)");
        rc = GW_E_SCHEMA;
        goto err_abort;
    }
    rc = gw__store_xlate(rc, "open meta");
    if (rc)
        goto err_abort;
    rc = gw__meta_version(txn, meta, &version);
    if (rc)
        goto err_abort;
    if (version != GW_STORE_SCHEMA_VERSION) {
        gw_log(GW_LOG_ERROR, "store", "store schema %d, this build reads %d", version,
               GW_STORE_SCHEMA_VERSION);
        rc = GW_E_SCHEMA;
        goto err_abort;
    }
    rc = gw__open_dbis(store, txn);
    if (rc)
        goto err_abort;
    return gw__store_xlate(mdb_txn_commit(txn), "commit attach");

err_abort:
    mdb_txn_abort(txn);
    return rc;
}

/* ---- environment ---- */

static int gw__env_open(const char *dir, uint64_t map_size_mb, bool readonly,
                        struct gw_store **out)
{
    struct gw_store *store;
    unsigned flags = MDB_NOTLS | (readonly ? MDB_RDONLY : 0);
    int rc, dead = 0;

    store = calloc(1, sizeof(*store));
    if (!store)
        return -ENOMEM;
    store->readonly = readonly;
    rc = gw__store_xlate(mdb_env_create(&store->env), "env create");
    if (rc)
        goto err_free;
    rc = gw__store_xlate(mdb_env_set_maxdbs(store->env, GW__MAX_DBS), "set maxdbs");
    if (rc)
        goto err_close;
    if (map_size_mb) {
        rc = mdb_env_set_mapsize(store->env, (size_t)(map_size_mb << 20));
        rc = gw__store_xlate(rc, "set map size");
        if (rc)
            goto err_close;
    }
    rc = mdb_env_open(store->env, dir, flags, GW__ENV_MODE);
    if (rc) {
        gw_log(GW_LOG_ERROR, "store", "open %s: %s", dir, mdb_strerror(rc));
        rc = rc > 0 ? -rc : GW_E_STORE;
        goto err_close;
    }
    /* Reader slots of crashed processes (a killed broker) would otherwise leak. */
    if (mdb_reader_check(store->env, &dead) == 0 && dead > 0)
        gw_log(GW_LOG_WARN, "store", "cleared %d stale reader slot(s)", dead);
    rc = readonly ? gw__attach(store) : gw__migrate(store);
    if (rc)
        goto err_close;
    *out = store;
    return 0;

err_close:
    mdb_env_close(store->env);
err_free:
    free(store);
    return rc;
}

int gw_store_open(const char *dir, uint64_t map_size_mb, struct gw_store **out)
{
    if (!dir || !out || map_size_mb == 0 || map_size_mb > (UINT64_C(1) << 40))
        return -EINVAL;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        int err = -errno;

        gw_log(GW_LOG_ERROR, "store", "mkdir %s: %s", dir, strerror(errno));
        return err;
    }
    return gw__env_open(dir, map_size_mb, false, out);
}

int gw_store_open_readonly(const char *dir, struct gw_store **out)
{
    if (!dir || !out)
        return -EINVAL;
    return gw__env_open(dir, 0, true, out);
}

void gw_store_close(struct gw_store *store)
{
    if (!store)
        return;
    mdb_env_close(store->env);
    free(store);
}

int gw_store_reader_check(struct gw_store *store, int *cleared)
{
    int dead = 0, rc;

    if (!store)
        return -EINVAL;
    rc = gw__store_xlate(mdb_reader_check(store->env, &dead), "reader check");
    if (rc == 0 && dead > 0)
        gw_log(GW_LOG_WARN, "store", "cleared %d stale reader slot(s)", dead);
    if (cleared)
        *cleared = dead;
    return rc;
}

int gw_store_schema_version(struct gw_store *store, int *out)
{
    struct gw_txn *txn;
    int rc;

    if (!store || !out)
        return -EINVAL;
    rc = gw_store_txn_begin(store, false, &txn);
    if (rc)
        return rc;
    rc = gw__meta_version(txn->txn, store->dbi[GW__DB_META], out);
    gw_store_txn_abort(txn);
    return rc;
}

/* ---- transactions ---- */

int gw_store_txn_begin(struct gw_store *store, bool write, struct gw_txn **out)
{
    struct gw_txn *txn;
    int rc;

    if (!store || !out || (write && store->readonly))
        return -EINVAL;
    txn = calloc(1, sizeof(*txn));
    if (!txn)
        return -ENOMEM;
    txn->store = store;
    txn->write = write;
    rc = mdb_txn_begin(store->env, NULL, write ? 0 : MDB_RDONLY, &txn->txn);
    if (rc == MDB_MAP_RESIZED) {
        /* The writer (another process) grew the map: adopt its size and retry once. */
        rc = mdb_env_set_mapsize(store->env, 0);
        if (rc == 0)
            rc = mdb_txn_begin(store->env, NULL, write ? 0 : MDB_RDONLY, &txn->txn);
    }
    rc = gw__store_xlate(rc, "begin txn");
    if (rc) {
        free(txn);
        return rc;
    }
    *out = txn;
    return 0;
}

int gw_store_txn_commit(struct gw_txn *txn)
{
    int rc;

    if (!txn)
        return -EINVAL;
    if (!txn->write) {
        mdb_txn_abort(txn->txn); /* nothing to commit: release the snapshot */
        free(txn);
        return 0;
    }
    rc = txn->error;
    if (!rc)
        rc = gw__seq_flush(txn);
    if (rc) {
        mdb_txn_abort(txn->txn);
        free(txn);
        return rc;
    }
    rc = gw__store_xlate(mdb_txn_commit(txn->txn), "commit");
    free(txn);
    return rc;
}

void gw_store_txn_abort(struct gw_txn *txn)
{
    if (!txn)
        return;
    mdb_txn_abort(txn->txn);
    free(txn);
}

int gw_store_txn_error(const struct gw_txn *txn)
{
    return txn ? txn->error : -EINVAL;
}

/* ---- statistics ---- */

static int gw__entries(struct gw_txn *txn, enum gw__db db, uint64_t *out)
{
    MDB_stat st;
    int rc = gw__store_xlate(mdb_stat(txn->txn, txn->store->dbi[db], &st), "stat");

    if (rc)
        return rc;
    *out = st.ms_entries;
    return 0;
}

int gw_store_stats(struct gw_txn *txn, struct gw_store_stats *out)
{
    MDB_envinfo info;
    MDB_stat est;
    int rc;

    if (!txn || !out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    if ((rc = gw__entries(txn, GW__DB_PRODUCTS, &out->products)) ||
        (rc = gw__entries(txn, GW__DB_DEVICES, &out->devices)) ||
        (rc = gw__entries(txn, GW__DB_FIRMWARE, &out->firmware)) ||
        (rc = gw__entries(txn, GW__DB_TASKS, &out->tasks)) ||
        (rc = gw__entries(txn, GW__DB_RECORDS, &out->records)) ||
        (rc = gw__entries(txn, GW__DB_RECORD_HISTORY, &out->history)))
        return rc;
    rc = gw__store_xlate(mdb_env_info(txn->store->env, &info), "env info");
    if (!rc)
        rc = gw__store_xlate(mdb_env_stat(txn->store->env, &est), "env stat");
    if (rc)
        return rc;
    out->map_size = info.me_mapsize;
    out->map_used = (uint64_t)(info.me_last_pgno + 1) * est.ms_psize;
    return 0;
}
