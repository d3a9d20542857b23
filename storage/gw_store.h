#ifndef GW_STORE_H
#define GW_STORE_H
/*
 * The LMDB store (DESIGN §6): typed rows for products, devices, firmware, tasks, records and
 * record history, with every index changed in the same transaction as its row.
 *
 * Threads: one writer (the core thread) holds at most one write transaction at a time; read
 * transactions may be begun on any thread (the env is opened with MDB_NOTLS) and must be
 * ended on the thread that began them. Values are copied out into caller structs; nothing
 * returned points into LMDB memory.
 *
 * Errors: 0, GW_E_NOT_FOUND, GW_E_EXISTS, GW_E_MAP_FULL (the write transaction must then be
 * aborted; the store stays as of the last commit and reads are still served),
 * GW_E_VALUE_TOO_LONG, GW_E_STORE, GW_E_SCHEMA, -ENOMEM, -EINVAL.
 *
 * Strings are NUL-terminated in fixed arrays; a longer input string is refused with
 * GW_E_VALUE_TOO_LONG (never truncated silently).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw_error.h"

#define GW_STORE_SCHEMA_VERSION 1

#define GW_PK_MAX 32        /* productKey */
#define GW_DN_MAX 64        /* deviceName */
#define GW_SECRET_MAX 64    /* productSecret, deviceSecret (32 lowercase hex generated) */
#define GW_NAME_MAX 128     /* product, firmware and task names */
#define GW_DESC_MAX 256     /* descriptions */
#define GW_VERSION_MAX 64   /* firmware version */
#define GW_URL_MAX 512      /* firmware file URL */
#define GW_SIGN_MAX 160     /* base64 DER ECDSA P-256 signature */
#define GW_CAUSE_MAX 128    /* history cause text */

/* DESIGN §5.1 numbers: stored and sent on the wire. */
enum gw_task_status {
    GW_TASK_IN_PROGRESS = 10,
    GW_TASK_ENDED = 20,
    GW_TASK_CANCELLED = 30,
};

enum gw_task_scope {
    GW_SCOPE_ALL = 1,
    GW_SCOPE_SELECT = 2,
};

enum gw_record_status {
    GW_RECORD_PENDING = 0,
    GW_RECORD_PUSHED = 10,
    GW_RECORD_UPGRADING = 20,
    GW_RECORD_SUCCESS = 30,
    GW_RECORD_FAILURE = 40,
    GW_RECORD_CANCELLED = 50,
};

enum gw_device_state {
    GW_DEVICE_INACTIVE = 0,
    GW_DEVICE_ONLINE = 1,
    GW_DEVICE_OFFLINE = 2,
};

/* Serializer a product's devices speak on MQTT/TCP (DESIGN §4). */
enum gw_serializer {
    GW_SERIALIZER_JSON = 0,
    GW_SERIALIZER_BINARY = 1,
};

/* true for pending, pushed, upgrading. */
bool gw_record_status_active(int status);
/* true for the six statuses of enum gw_record_status. */
bool gw_record_status_valid(int status);
/* Index 0..5 of a record status in {0,10,20,30,40,50}; -1 if invalid. */
int gw_record_status_index(int status);

struct gw_product {
    uint64_t id;
    char name[GW_NAME_MAX + 1];
    char product_key[GW_PK_MAX + 1];
    char product_secret[GW_SECRET_MAX + 1];
    int serializer; /* enum gw_serializer */
    int64_t create_time_ms;
};

struct gw_device {
    uint64_t id;
    uint64_t product_id;
    char product_key[GW_PK_MAX + 1];
    char device_name[GW_DN_MAX + 1];
    char device_secret[GW_SECRET_MAX + 1];
    int state;            /* enum gw_device_state */
    uint64_t firmware_id; /* 0 = none */
    int64_t last_seen_ms;
    int64_t create_time_ms;
};

struct gw_firmware {
    uint64_t id;
    uint64_t product_id;
    char name[GW_NAME_MAX + 1];
    char description[GW_DESC_MAX + 1];
    char version[GW_VERSION_MAX + 1];
    char file_url[GW_URL_MAX + 1];
    uint64_t file_size;
    char digest_algorithm[8];  /* "MD5" */
    char digest_value[33];     /* lowercase hex MD5 */
    char sha256[65];           /* lowercase hex SHA-256 */
    char sign[GW_SIGN_MAX + 1]; /* optional base64 ECDSA signature over the SHA-256; "" = none */
    int64_t create_time_ms;
};

/* Per-task push policy (DESIGN §5.4 beyond); 0 = unlimited / disabled where noted. */
struct gw_task_policy {
    uint32_t max_concurrent;      /* records pushed or upgrading at once; 0 = unlimited */
    uint32_t rate_per_minute;     /* pushes per minute; 0 = unlimited */
    uint32_t push_timeout_s;      /* pushed without any report; 0 = never */
    uint32_t upgrade_timeout_s;   /* upgrading without a report; 0 = never */
    uint32_t max_retries;         /* re-pushes after a timeout */
    uint32_t retry_backoff_s;     /* first backoff; doubles each retry */
    double abort_failure_ratio;   /* 0 = never abort */
    uint32_t abort_min_sample;    /* terminal records needed before the ratio applies */
};

struct gw_task {
    uint64_t id;
    uint64_t firmware_id;
    char name[GW_NAME_MAX + 1];
    char description[GW_DESC_MAX + 1];
    int status;       /* enum gw_task_status */
    int device_scope; /* enum gw_task_scope */
    uint32_t device_total_count;
    uint32_t device_success_count;
    uint32_t status_count[6]; /* records per status, indexed by gw_record_status_index() */
    struct gw_task_policy policy;
    char end_reason[GW_CAUSE_MAX + 1]; /* why it was cancelled or aborted; "" otherwise */
    int64_t create_time_ms;
    int64_t update_time_ms;
};

struct gw_record {
    uint64_t id;
    uint64_t task_id;
    uint64_t firmware_id;
    uint64_t device_id;
    uint64_t from_firmware_id; /* device's firmware at creation; 0 = none */
    int status;                /* enum gw_record_status */
    int progress;              /* 0..100 */
    char description[GW_DESC_MAX + 1];
    uint32_t attempts;         /* pushes so far (1 after the first push) */
    int64_t status_time_ms;    /* when status last changed */
    int64_t report_time_ms;    /* last device report; 0 = none */
    int64_t not_before_ms;     /* pending: do not push before (retry backoff) */
    int64_t create_time_ms;
};

struct gw_history_entry {
    int64_t time_ms;
    int from_status;
    int to_status;
    char cause[GW_CAUSE_MAX + 1];
};

struct gw_store;
struct gw_txn;

/* ---- environment ---- */

/*
 * Opens (creating if needed) the environment in `dir` (created with mode 0700 if missing)
 * with a map of map_size_mb MiB, runs migrations up to GW_STORE_SCHEMA_VERSION in one write
 * transaction. GW_E_SCHEMA if the store is newer. Any thread; the store is then shared.
 */
int gw_store_open(const char *dir, uint64_t map_size_mb, struct gw_store **out);
/* No transaction may be open. Any thread. NULL is fine. */
void gw_store_close(struct gw_store *store);

/*
 * Sharing the environment with another process (the mosquitto auth plugin reads device
 * credentials while the gateway writes):
 *  - The gateway opens the store first (gw_store_open creates every database; a read-only
 *    open cannot create one). Files are created with mode 0660 minus the process umask.
 *  - A reader needs read access to data.mdb, READ-WRITE access to lock.mdb (its reader slot
 *    lives there) and search access to the directory. For a broker that drops to user
 *    mosquitto: make the directory group mosquitto, mode 2770 (setgid), and run the gateway
 *    under umask 007 so both files come out rw-rw---- with that group. Same user: nothing.
 *  - The reader opens with gw_store_open_readonly (MDB_RDONLY | MDB_NOTLS, never MDB_NOLOCK:
 *    a NOLOCK reader is invisible to the writer, which may then reuse pages under it), and
 *    keeps each read txn short (begin, get, abort per lookup) so it never pins old pages.
 *    A map grown by the writer (MDB_MAP_RESIZED) is adopted in gw_store_txn_begin.
 *  - The writer calls gw_store_reader_check at open (done by gw_store_open) and now and then
 *    (e.g. every minute) to free reader slots of a crashed reader.
 */

/*
 * Added: opens an existing store read-only for another process (see above). Map size comes
 * from the file. -ENOENT when no store exists in dir yet, GW_E_SCHEMA when its schema version
 * differs from GW_STORE_SCHEMA_VERSION (or its databases are missing). Write txns on it fail
 * with -EINVAL. Any thread.
 */
int gw_store_open_readonly(const char *dir, struct gw_store **out);
/* Added: frees reader slots held by dead processes; *cleared (may be NULL) gets their number.
 * Any thread. */
int gw_store_reader_check(struct gw_store *store, int *cleared);
/* Schema version recorded in meta. */
int gw_store_schema_version(struct gw_store *store, int *out);

/* ---- transactions ---- */

/* Write: one at a time (blocks while another is open). Read: any thread. */
int gw_store_txn_begin(struct gw_store *store, bool write, struct gw_txn **out);
/* Commits (durably, fsync) and frees the txn, also on failure. GW_E_MAP_FULL possible. */
int gw_store_txn_commit(struct gw_txn *txn);
/* Aborts and frees. NULL is fine. */
void gw_store_txn_abort(struct gw_txn *txn);
/* Sticky: once a write in txn failed with GW_E_MAP_FULL (or another LMDB error), every later
 * write in it fails too and commit returns that error. Returns the first error or 0. */
int gw_store_txn_error(const struct gw_txn *txn);

/* ---- products ---- */

/*
 * Creates a product: assigns id and create time; generates product_key (when empty) and
 * product_secret (always) from the random source. GW_E_PRODUCT_KEY_EXISTS if the key is taken.
 * p is filled with what was stored.
 */
int gw_store_product_create(struct gw_txn *txn, struct gw_product *p, int64_t now_ms);
int gw_store_product_get(struct gw_txn *txn, uint64_t id, struct gw_product *out);
int gw_store_product_get_by_key(struct gw_txn *txn, const char *product_key,
                                struct gw_product *out);

/* ---- devices ---- */

/*
 * Creates a device of d->product_id with d->device_name: fills product_key from the product,
 * generates device_secret (when empty), state INACTIVE, firmware 0. GW_E_PRODUCT_NOT_EXISTS,
 * GW_E_DEVICE_NAME_EXISTS.
 */
int gw_store_device_create(struct gw_txn *txn, struct gw_device *d, int64_t now_ms);
int gw_store_device_get(struct gw_txn *txn, uint64_t id, struct gw_device *out);
int gw_store_device_get_by_key(struct gw_txn *txn, const char *product_key,
                               const char *device_name, struct gw_device *out);
/* Rewrites an existing device row (state, firmware_id, last_seen). Identity is immutable:
 * product_id/product_key/device_name must equal the stored ones (-EINVAL otherwise). */
int gw_store_device_put(struct gw_txn *txn, const struct gw_device *d);
/* Latest property values as one JSON object text (merged by the caller). *out is malloc'ed;
 * "{}" when none were stored. */
int gw_store_device_props_get(struct gw_txn *txn, uint64_t id, char **out);
int gw_store_device_props_put(struct gw_txn *txn, uint64_t id, const char *json);

/* ---- iteration ----
 * Callbacks return 0 to continue, 1 to stop (the iterator then returns 0), or a negative
 * error which the iterator returns. The struct passed is valid only during the call. */
typedef int (*gw_store_product_fn)(void *ctx, const struct gw_product *p);
typedef int (*gw_store_device_fn)(void *ctx, const struct gw_device *d);
typedef int (*gw_store_firmware_fn)(void *ctx, const struct gw_firmware *f);
typedef int (*gw_store_task_fn)(void *ctx, const struct gw_task *t);
typedef int (*gw_store_record_fn)(void *ctx, const struct gw_record *r);
typedef int (*gw_store_history_fn)(void *ctx, const struct gw_history_entry *h);
typedef int (*gw_store_id_fn)(void *ctx, uint64_t id);

/* In id order; descending when `reverse`. after_id (0 = from the start) skips up to and
 * including that id, so pages can be resumed. */
int gw_store_product_iter(struct gw_txn *txn, bool reverse, uint64_t after_id,
                          gw_store_product_fn fn, void *ctx);
int gw_store_device_iter(struct gw_txn *txn, bool reverse, uint64_t after_id,
                         gw_store_device_fn fn, void *ctx);
/* Devices of one product, through device_by_key (no full scan). */
int gw_store_device_iter_product(struct gw_txn *txn, uint64_t product_id,
                                 gw_store_device_fn fn, void *ctx);
int gw_store_firmware_iter(struct gw_txn *txn, bool reverse, uint64_t after_id,
                           gw_store_firmware_fn fn, void *ctx);
int gw_store_task_iter(struct gw_txn *txn, bool reverse, uint64_t after_id,
                       gw_store_task_fn fn, void *ctx);
int gw_store_record_iter(struct gw_txn *txn, bool reverse, uint64_t after_id,
                         gw_store_record_fn fn, void *ctx);
/* Records of one task in record id order, starting after after_id (0 = first). */
int gw_store_record_iter_task(struct gw_txn *txn, uint64_t task_id, uint64_t after_id,
                              gw_store_record_fn fn, void *ctx);
/* Record ids of one task (index only, no row decode), after after_id. */
int gw_store_record_ids_task(struct gw_txn *txn, uint64_t task_id, uint64_t after_id,
                             gw_store_id_fn fn, void *ctx);

/* ---- firmware ---- */

/* Assigns id/create time. GW_E_PRODUCT_NOT_EXISTS, GW_E_FIRMWARE_VERSION_DUPLICATE
 * (checked first, as the reference does). */
int gw_store_firmware_create(struct gw_txn *txn, struct gw_firmware *f, int64_t now_ms);
int gw_store_firmware_get(struct gw_txn *txn, uint64_t id, struct gw_firmware *out);
int gw_store_firmware_get_by_version(struct gw_txn *txn, uint64_t product_id,
                                     const char *version, struct gw_firmware *out);
/* Rewrites an existing firmware row; product_id and version must be unchanged (-EINVAL). */
int gw_store_firmware_put(struct gw_txn *txn, const struct gw_firmware *f);

/* ---- tasks ---- */

/* Assigns id. GW_E_TASK_NAME_DUPLICATE when (firmware_id, name) is taken. */
int gw_store_task_create(struct gw_txn *txn, struct gw_task *t);
int gw_store_task_get(struct gw_txn *txn, uint64_t id, struct gw_task *out);
int gw_store_task_get_by_name(struct gw_txn *txn, uint64_t firmware_id, const char *name,
                              struct gw_task *out);
/* Rewrites an existing task (firmware_id and name unchanged, -EINVAL otherwise). */
int gw_store_task_put(struct gw_txn *txn, const struct gw_task *t);

/* ---- records ---- */

/* Assigns id; writes records, records_by_task and, when active, active_record_by_device
 * (GW_E_TASK_DEVICE_UPGRADING if the device already has an active record). */
int gw_store_record_create(struct gw_txn *txn, struct gw_record *r);
int gw_store_record_get(struct gw_txn *txn, uint64_t id, struct gw_record *out);
/* Rewrites an existing record; keeps active_record_by_device true to the new status
 * (set when active, removed when it pointed at this record and the status is terminal).
 * task_id, device_id and firmware_id are immutable (-EINVAL). */
int gw_store_record_put(struct gw_txn *txn, const struct gw_record *r);
/* The device's active record id, GW_E_NOT_FOUND when none. */
int gw_store_active_record_of_device(struct gw_txn *txn, uint64_t device_id,
                                     uint64_t *record_id);

/* ---- record history ---- */

int gw_store_history_append(struct gw_txn *txn, uint64_t record_id,
                            const struct gw_history_entry *h);
/* Oldest first. */
int gw_store_history_iter(struct gw_txn *txn, uint64_t record_id, gw_store_history_fn fn,
                          void *ctx);

/* ---- deadlines (beyond DESIGN §6: a timer index for the engine) ----
 * One deadline per record at most: (due_ms, record_id). Setting replaces the previous one. */
int gw_store_deadline_set(struct gw_txn *txn, uint64_t record_id, int64_t due_ms);
int gw_store_deadline_clear(struct gw_txn *txn, uint64_t record_id);
/* Records with due_ms <= now_ms, earliest first: fn(ctx, record_id). */
int gw_store_deadline_iter_due(struct gw_txn *txn, int64_t now_ms, gw_store_id_fn fn,
                               void *ctx);
/* Earliest due time, GW_E_NOT_FOUND when there is none. */
int gw_store_deadline_next(struct gw_txn *txn, int64_t *due_ms);

/* ---- statistics ---- */
struct gw_store_stats {
    uint64_t products, devices, firmware, tasks, records, history;
    uint64_t map_size, map_used; /* bytes */
};
int gw_store_stats(struct gw_txn *txn, struct gw_store_stats *out);

/* ---- read-only access for other processes (storage/store_readonly.c) ----
 * The mosquitto auth plugin (gateway/plugin) opens the gateway's store with
 * gw_store_open_readonly() and authenticates each CONNECT with one lookup. */

/*
 * Copies the deviceSecret of (pk, dn) into secret_out (len bytes, GW_SECRET_MAX + 1 is
 * always enough). One short read txn per call: no snapshot is kept between calls, a map
 * grown by the writer is adopted. Works on a read-only or read-write store. Returns 0,
 * GW_E_NOT_FOUND (no such device), -ENOSPC (len too small), -EINVAL, GW_E_STORE.
 * Any thread; borrows every argument.
 */
int gw_store_ro_device_secret(struct gw_store *store, const char *pk, const char *dn,
                              char *secret_out, size_t len);

/*
 * Makes the store directory usable by a broker that dropped privileges to a user of `group`
 * (mosquitto started as root runs as user mosquitto): directory group `group`, mode 2770
 * (setgid), and data.mdb / lock.mdb, when present, group `group`, mode 0660 (the reader
 * needs read on data.mdb and read-write on lock.mdb). Creates the directory when missing.
 * Call it after gw_store_open() (which creates the files; under any umask) and before the
 * broker starts; idempotent. Refuses symlinks in place of the files. Only when running as
 * root (euid 0); a no-op returning 0 otherwise (same user: nothing to share).
 * Returns 0, -ENOENT (no such group), -errno. Any thread.
 */
int gw_store_prepare_shared_dir(const char *dir, const char *group);

#endif
