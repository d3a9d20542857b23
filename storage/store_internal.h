#ifndef GW_STORE_INTERNAL_H
#define GW_STORE_INTERNAL_H
/*
 * Internals shared by the storage .c files: the store and txn structs, the named database
 * table, key helpers, LMDB error translation and the row codecs. Only storage/ includes this
 * (and <lmdb.h>); nothing here is part of the public API.
 */
#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gw_store.h"

/* Named databases. The names are the on-disk contract (DESIGN §6 plus the extras marked). */
enum gw__db {
    GW__DB_META,                   /* "schema_version" -> u32 BE; "seq:<table>" -> u64 BE */
    GW__DB_PRODUCTS,               /* id -> product row */
    GW__DB_PRODUCT_BY_KEY,         /* extra: productKey -> id (productKey is unique) */
    GW__DB_DEVICES,                /* id -> device row */
    GW__DB_DEVICE_BY_KEY,          /* pk 0x00 dn -> id (a product's devices are a prefix) */
    GW__DB_DEVICE_PROPS,           /* extra: device id -> latest property values (JSON text) */
    GW__DB_FIRMWARE,               /* id -> firmware row */
    GW__DB_FIRMWARE_BY_PV,         /* product_id(8) version -> id */
    GW__DB_TASKS,                  /* id -> task row */
    GW__DB_TASK_BY_FW_NAME,        /* firmware_id(8) name -> id */
    GW__DB_RECORDS,                /* id -> record row */
    GW__DB_RECORDS_BY_TASK,        /* task_id(8) record_id(8) -> "" */
    GW__DB_ACTIVE_RECORD,          /* device_id -> record_id of its one active record */
    GW__DB_RECORD_HISTORY,         /* record_id(8) seq(4) -> history row */
    GW__DB_RECORD_DEADLINES,       /* extra: due(8, sign-flipped) record_id(8) -> "" */
    GW__DB_DEADLINE_BY_RECORD,     /* extra: record_id -> due(8, sign-flipped): reverse map */
    GW__DB_COUNT
};

/* Id sequences kept in meta (cached per write txn, flushed at commit). */
enum gw__seq {
    GW__SEQ_PRODUCT,
    GW__SEQ_DEVICE,
    GW__SEQ_FIRMWARE,
    GW__SEQ_TASK,
    GW__SEQ_RECORD,
    GW__SEQ_COUNT
};

struct gw_store {
    MDB_env *env;
    MDB_dbi dbi[GW__DB_COUNT];
    bool readonly;
};

struct gw_txn {
    struct gw_store *store;
    MDB_txn *txn;
    bool write;
    int error;       /* sticky: first failed LMDB write (GW_E_MAP_FULL, GW_E_STORE) */
    uint64_t writes; /* puts/deletes so far: iterators re-seek when a callback wrote */
    uint64_t seq[GW__SEQ_COUNT];
    uint8_t seq_loaded, seq_dirty; /* bit per enum gw__seq */
};

/* Largest encoded row (firmware is the biggest, about 1.3 KB). */
#define GW__ROW_MAX 2048
/* Largest composite key we build (LMDB's limit is 511). */
#define GW__KEY_MAX 256

/* ---- big-endian key fields (keys sort bytewise) ---- */
static inline void gw__be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint64_t gw__be64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static inline void gw__be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t gw__be32_get(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* GW_E_VALUE_TOO_LONG when s (a NUL-terminated string or a full array) exceeds max bytes. */
static inline int gw__check_len(const char *s, size_t max)
{
    return strnlen(s, max + 1) > max ? GW_E_VALUE_TOO_LONG : 0;
}

/* ---- store_env.c: errors, raw access, sequences ---- */

/*
 * Translates an LMDB return code and logs it once (tag "store"): MDB_NOTFOUND ->
 * GW_E_NOT_FOUND (not logged), MDB_MAP_FULL -> GW_E_MAP_FULL, ENOMEM -> -ENOMEM, anything
 * else -> GW_E_STORE. `what` names the operation for the log line.
 */
int gw__store_xlate(int rc, const char *what);
/* Refuses a write in a read txn (-EINVAL) or after a failed write (the sticky error). */
int gw__txn_writable(const struct gw_txn *txn);
/* mdb_get; GW_E_NOT_FOUND when absent. v points into LMDB memory until the next write. */
int gw__get(struct gw_txn *txn, enum gw__db db, const void *key, size_t klen, MDB_val *v);
/* mdb_put / mdb_del; a failure other than NOTFOUND/KEYEXIST makes the txn sticky-failed. */
int gw__put(struct gw_txn *txn, enum gw__db db, const void *key, size_t klen, const void *val,
            size_t vlen, unsigned flags);
int gw__del(struct gw_txn *txn, enum gw__db db, const void *key, size_t klen);
/*
 * For an operation that already wrote part of its rows: makes the txn sticky-failed so the
 * half-done operation can never commit (GW_E_EXISTS there means a corrupt store: GW_E_STORE).
 */
int gw__fail_after_write(struct gw_txn *txn, int rc);
/* Same with a u64 id key. */
int gw__get_id(struct gw_txn *txn, enum gw__db db, uint64_t id, MDB_val *v);
int gw__put_id(struct gw_txn *txn, enum gw__db db, uint64_t id, const void *val, size_t vlen,
               unsigned flags);
/* Next id of a sequence (1, 2, ...), cached in the txn and written to meta at commit. */
int gw__seq_next(struct gw_txn *txn, enum gw__seq seq, uint64_t *out);
/* Logs a row that failed to decode and returns GW_E_STORE. */
int gw__corrupt(enum gw__db db, uint64_t id);
/* Reads a u64 id value (an index entry); GW_E_STORE if it is not 8 bytes. */
int gw__val_id(enum gw__db db, const MDB_val *v, uint64_t *out);

/* ---- store_iter.c: one cursor walk for every iterator ---- */

/* Visitor over raw entries: 0 continue, 1 stop, negative error. k/v valid during the call. */
typedef int (*gw__visit_fn)(struct gw_txn *txn, void *vctx, const MDB_val *k, const MDB_val *v);

/*
 * Walks db from `seek` (NULL: the first key, or the last when reverse) while keys start with
 * prefix. seek_inclusive says whether a key equal to seek is visited. When a visitor wrote
 * in a write txn, the walk re-seeks after the last key instead of trusting the cursor.
 */
int gw__walk(struct gw_txn *txn, enum gw__db db, const uint8_t *prefix, size_t prefix_len,
             const uint8_t *seek, size_t seek_len, bool seek_inclusive, bool reverse,
             gw__visit_fn visit, void *vctx);

/* ---- store_row.c: compact versioned binary rows ---- */
size_t gw__row_product_encode(const struct gw_product *p, uint8_t *buf);
int gw__row_product_decode(const MDB_val *v, uint64_t id, struct gw_product *out);
size_t gw__row_device_encode(const struct gw_device *d, uint8_t *buf);
int gw__row_device_decode(const MDB_val *v, uint64_t id, struct gw_device *out);
size_t gw__row_firmware_encode(const struct gw_firmware *f, uint8_t *buf);
int gw__row_firmware_decode(const MDB_val *v, uint64_t id, struct gw_firmware *out);
size_t gw__row_task_encode(const struct gw_task *t, uint8_t *buf);
int gw__row_task_decode(const MDB_val *v, uint64_t id, struct gw_task *out);
size_t gw__row_record_encode(const struct gw_record *r, uint8_t *buf);
int gw__row_record_decode(const MDB_val *v, uint64_t id, struct gw_record *out);
/* The immutable fields and the status of a record row, without decoding the rest. */
int gw__row_record_peek(const MDB_val *v, uint64_t *task_id, uint64_t *firmware_id,
                        uint64_t *device_id, int *status);
size_t gw__row_history_encode(const struct gw_history_entry *h, uint8_t *buf);
int gw__row_history_decode(const MDB_val *v, struct gw_history_entry *out);

#endif
