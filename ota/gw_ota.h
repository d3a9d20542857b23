#ifndef GW_OTA_H
#define GW_OTA_H
/*
 * The OTA engine (DESIGN §5): firmware catalogue rules, upgrade tasks, the per-device record
 * state machine and the push policy (timeouts, retries with exponential backoff, concurrency
 * and rate limits, abort on failure ratio).
 *
 * Deterministic: no threads, sockets or clock. Every entry point takes the core's write
 * transaction, the current time in epoch milliseconds and an action sink; it reads and writes
 * the store only through gw_store.h and appends what must happen outside (push an upgrade,
 * send a cancel hint, report a finished task) to the sink. The core dispatches the actions
 * after the transaction commits.
 *
 * Threads: core thread only (the engine and every txn passed to it belong to that thread).
 *
 * Errors and atomicity:
 *  - Business-rule errors (GW_E_FIRMWARE_*, GW_E_TASK_*, GW_E_RECORD_*, GW_E_PROGRESS_*,
 *    GW_E_PRODUCT_NOT_EXISTS, GW_E_DEVICE_NOT_EXISTS, GW_E_MISSING_FIELD, GW_E_BAD_FIELD,
 *    GW_E_VALUE_TOO_LONG) are detected before the first write: the transaction is untouched
 *    and the core may go on using it for the rest of its batch. The sink is also restored to
 *    its length at entry.
 *  - Any other error (-ENOMEM, GW_E_MAP_FULL, GW_E_STORE, ...) can come after some writes:
 *    the core must abort the transaction and then call gw_ota_engine_load() so the engine's
 *    in-memory scheduling state (see below) matches the store again.
 *
 * In-memory state (a cache of the store, rebuilt by gw_ota_engine_load): per task in progress
 * a sweep cursor over its records, a FIFO of records that were ready to push while the task
 * was at its concurrency or rate limit, and the push times of the last minute (rate limit).
 * Everything else lives in the store; timeouts and backoff wake-ups use the store's deadline
 * index, so a tick only touches what is due (bounded by GW_OTA_TICK_DUE_MAX and
 * GW_OTA_TICK_SCAN_MAX per call; the rest is left for the next tick).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "gw_store.h"

/* Defaults of DESIGN §5.4 (config ota.* overrides them, a task may override again). */
#define GW_OTA_DEFAULT_PUSH_TIMEOUT_S 300
#define GW_OTA_DEFAULT_UPGRADE_TIMEOUT_S 1800
#define GW_OTA_DEFAULT_MAX_RETRIES 3
#define GW_OTA_DEFAULT_RETRY_BACKOFF_S 30
#define GW_OTA_DEFAULT_MAX_CONCURRENT 0   /* unlimited */
#define GW_OTA_DEFAULT_RATE_PER_MINUTE 0  /* unlimited */
#define GW_OTA_DEFAULT_ABORT_RATIO 0.0    /* off */
#define GW_OTA_DEFAULT_ABORT_MIN_SAMPLE 10

/* Validation limits of a policy (GW_E_BAD_FIELD beyond them). */
#define GW_OTA_RATE_MAX 1000000u     /* pushes per minute */
#define GW_OTA_RETRIES_MAX 1000u
/* A retry waits retry_backoff_s * 2^(attempts-1), but never longer than this (or than
 * retry_backoff_s itself when that is larger). */
#define GW_OTA_BACKOFF_CAP_MS (24LL * 3600 * 1000)

/* Work bounds of one gw_ota_tick call. */
#define GW_OTA_TICK_DUE_MAX 4096  /* deadlines handled */
#define GW_OTA_TICK_SCAN_MAX 8192 /* records examined by the per-task sweeps */

/* Fixed texts (descriptions and history causes) users and tests see. */
#define GW_OTA_DESC_CANCEL_TASK "cancelled by administrator (task)"
#define GW_OTA_DESC_CANCEL_RECORD "cancelled by administrator (record)"
#define GW_OTA_DESC_TIMEOUT "timeout"
#define GW_OTA_END_REASON_ADMIN "cancelled by administrator"

/* Fills p with the GW_OTA_DEFAULT_* values. Any thread. */
void gw_ota_policy_defaults(struct gw_task_policy *p);
/* 0 or GW_E_BAD_FIELD (rate above GW_OTA_RATE_MAX, retries above GW_OTA_RETRIES_MAX, ratio
 * outside 0..1 or not finite). Any thread. */
int gw_ota_policy_check(const struct gw_task_policy *p);

/* ---- actions ---- */

enum gw_ota_action_kind {
    GW_OTA_ACT_PUSH_UPGRADE = 1, /* send thing.ota.upgrade for record_id to device_id */
    GW_OTA_ACT_SEND_CANCEL = 2,  /* send the thing.ota.cancel hint (devices may ignore it) */
    GW_OTA_ACT_TASK_ENDED = 3,   /* task_id reached task_status (ENDED or CANCELLED) */
};

struct gw_ota_action {
    int kind; /* enum gw_ota_action_kind */
    uint64_t device_id;   /* PUSH_UPGRADE, SEND_CANCEL */
    uint64_t record_id;   /* PUSH_UPGRADE, SEND_CANCEL */
    uint64_t task_id;     /* all kinds */
    uint64_t firmware_id; /* all kinds */
    uint32_t attempt;     /* PUSH_UPGRADE: the record's attempt number; give it back to
                             gw_ota_on_push_failed if the adapter refuses the message */
    int task_status;      /* TASK_ENDED: enum gw_task_status */
};

/* A growable list of actions. The core owns one per batch. */
struct gw_ota_actions {
    struct gw_ota_action *v;
    size_t n;
    size_t cap;
};

void gw_ota_actions_init(struct gw_ota_actions *a);
void gw_ota_actions_fini(struct gw_ota_actions *a);
/* Forgets the actions (keeps the allocation). */
void gw_ota_actions_clear(struct gw_ota_actions *a);

/* ---- engine ---- */

struct gw_ota_engine;

struct gw_ota_stats {
    uint64_t pushes;          /* PUSH_UPGRADE actions emitted */
    uint64_t push_failures;   /* gw_ota_on_push_failed that moved a record back */
    uint64_t timeouts;        /* push or upgrade timeouts */
    uint64_t retries;         /* timeouts that went back to pending */
    uint64_t progress_accepted;
    uint64_t rejected_no_record; /* GW_E_RECORD_NO_ACTIVE */
    uint64_t rejected_version;   /* GW_E_PROGRESS_VERSION_MISMATCH */
    uint64_t rejected_status;    /* GW_E_PROGRESS_BAD_STATUS */
    uint64_t rejected_value;     /* GW_E_PROGRESS_BAD_VALUE */
    uint64_t tasks_ended;
    uint64_t tasks_cancelled;    /* by an administrator */
    uint64_t tasks_aborted;      /* by the failure ratio */
};

/* defaults: borrowed (copied), NULL = GW_OTA_DEFAULT_*. GW_E_BAD_FIELD if invalid. */
int gw_ota_engine_create(const struct gw_task_policy *defaults, struct gw_ota_engine **out);
/* NULL is fine. */
void gw_ota_engine_destroy(struct gw_ota_engine *eng);
/*
 * (Re)builds the in-memory scheduling state from the store: every task in progress gets a
 * sweep from its first record, so pending records whose device is online are found again
 * by the next ticks. Call at start and after aborting a transaction the engine wrote in.
 * Reads only (a read or write txn). O(tasks).
 */
int gw_ota_engine_load(struct gw_ota_engine *eng, struct gw_txn *txn);
/* Counters since create. */
void gw_ota_engine_stats(const struct gw_ota_engine *eng, struct gw_ota_stats *out);
/* The engine's defaults (copied into every new task unless overridden). */
const struct gw_task_policy *gw_ota_engine_defaults(const struct gw_ota_engine *eng);

/*
 * When the engine next wants gw_ota_tick: the earliest deadline, the moment a rate-limited
 * task may push again, or now_ms when a task has records ready and room to push them.
 * GW_E_NOT_FOUND when nothing is scheduled.
 */
int gw_ota_next_wakeup(struct gw_ota_engine *eng, struct gw_txn *txn, int64_t now_ms,
                       int64_t *due_ms);

/* ---- firmware (DESIGN §5.2) ---- */

/*
 * Creates fw (id and create_time assigned, written back). The caller has computed file_size,
 * digest_value and sha256. Checks, in this order: name and version non-empty
 * (GW_E_MISSING_FIELD), (product, version) unused (GW_E_FIRMWARE_VERSION_DUPLICATE), product
 * exists (GW_E_PRODUCT_NOT_EXISTS). An empty digest_algorithm becomes "MD5".
 */
int gw_ota_firmware_create(struct gw_ota_engine *eng, struct gw_txn *txn,
                           struct gw_firmware *fw, int64_t now_ms);
/* Changes name and/or description (NULL = keep). GW_E_FIRMWARE_NOT_EXISTS,
 * GW_E_MISSING_FIELD (empty name), GW_E_VALUE_TOO_LONG. */
int gw_ota_firmware_update(struct gw_ota_engine *eng, struct gw_txn *txn, uint64_t firmware_id,
                           const char *name, const char *description);

/* ---- tasks (DESIGN §5.3) ---- */

/* Per-task overrides of the engine defaults: a negative value keeps the default. */
struct gw_ota_overrides {
    int64_t max_concurrent;
    int64_t rate_per_minute;
    int64_t push_timeout_s;
    int64_t upgrade_timeout_s;
    int64_t max_retries;
    int64_t retry_backoff_s;
    double abort_failure_ratio;
    int64_t abort_min_sample;
};

/* Sets every field to -1 (keep the defaults). */
void gw_ota_overrides_init(struct gw_ota_overrides *o);

struct gw_ota_task_req {
    uint64_t firmware_id;
    const char *name;        /* required */
    const char *description; /* NULL = "" */
    int scope;               /* enum gw_task_scope */
    const uint64_t *device_ids; /* scope SELECT; duplicates count once */
    size_t n_devices;
    const struct gw_ota_overrides *overrides; /* NULL = engine defaults */
};

/*
 * Creates a task and one pending record per device, then pushes at once to the devices that
 * are online (within max_concurrent and rate_per_minute). Rules, in this order:
 * name given (GW_E_MISSING_FIELD) and short enough (GW_E_VALUE_TOO_LONG), scope 1 or 2 and
 * valid overrides (GW_E_BAD_FIELD); firmware exists (GW_E_FIRMWARE_NOT_EXISTS); name unused
 * for this firmware (GW_E_TASK_NAME_DUPLICATE); scope SELECT: a non-empty list
 * (GW_E_TASK_NO_DEVICE), every device exists and is of the firmware's product
 * (GW_E_DEVICE_NOT_EXISTS), none already on the firmware (GW_E_TASK_DEVICE_ON_FIRMWARE),
 * none with an active record (GW_E_TASK_DEVICE_UPGRADING); scope ALL: the product's devices
 * minus those on the firmware or with an active record, none left → GW_E_TASK_NO_DEVICE.
 * req is borrowed. *task_id receives the new id.
 */
int gw_ota_task_create(struct gw_ota_engine *eng, struct gw_txn *txn,
                       const struct gw_ota_task_req *req, int64_t now_ms,
                       struct gw_ota_actions *sink, uint64_t *task_id);

/*
 * Task → CANCELLED (end_reason GW_OTA_END_REASON_ADMIN); every active record → CANCELLED with
 * GW_OTA_DESC_CANCEL_TASK; a SEND_CANCEL action per record that was pushed or upgrading; a
 * TASK_ENDED action. GW_E_TASK_NOT_EXISTS, GW_E_TASK_NOT_IN_PROGRESS.
 */
int gw_ota_task_cancel(struct gw_ota_engine *eng, struct gw_txn *txn, uint64_t task_id,
                       int64_t now_ms, struct gw_ota_actions *sink);

/*
 * Record → CANCELLED with GW_OTA_DESC_CANCEL_RECORD (SEND_CANCEL if it was pushed or
 * upgrading), then the end check, then other records of the task may be pushed into the
 * freed slot. GW_E_RECORD_NOT_EXISTS, GW_E_RECORD_NOT_ACTIVE.
 */
int gw_ota_record_cancel(struct gw_ota_engine *eng, struct gw_txn *txn, uint64_t record_id,
                         int64_t now_ms, struct gw_ota_actions *sink);

/* ---- device events ---- */

/*
 * A thing.ota.progress report from device_id (version, description: borrowed, may be NULL).
 * Returns 0 when applied, else the code the device's reply carries and nothing changes (the
 * rejection is counted and logged): GW_E_RECORD_NO_ACTIVE (no active record; also every
 * report after a terminal state), GW_E_PROGRESS_VERSION_MISMATCH (version is not the
 * record's target), GW_E_PROGRESS_BAD_STATUS (status not 20, 30 or 40),
 * GW_E_PROGRESS_BAD_VALUE (progress outside 0..100), checked in that order.
 * 20 → upgrading (also from pending: the device answered a push we thought had failed;
 * while upgrading it refreshes progress, description and the upgrade timeout);
 * 30 → success (device firmware := target, task success count + 1); 40 → failure.
 * A description longer than GW_DESC_MAX bytes is cut at a UTF-8 boundary.
 */
int gw_ota_on_progress(struct gw_ota_engine *eng, struct gw_txn *txn, uint64_t device_id,
                       const char *version, int status, int progress, const char *description,
                       int64_t now_ms, struct gw_ota_actions *sink);

/*
 * The device can receive downstream messages now: state ONLINE, last_seen = now, and its
 * pending record (if any) loses its retry backoff (a new session is a new chance) and is
 * pushed when the task's limits allow, else queued until a slot frees or the rate window
 * moves. GW_E_DEVICE_NOT_EXISTS.
 */
int gw_ota_on_device_online(struct gw_ota_engine *eng, struct gw_txn *txn, uint64_t device_id,
                            int64_t now_ms, struct gw_ota_actions *sink);
/* State OFFLINE, last_seen = now. Records are not touched (timeouts handle silence). */
int gw_ota_on_device_offline(struct gw_ota_engine *eng, struct gw_txn *txn, uint64_t device_id,
                             int64_t now_ms, struct gw_ota_actions *sink);

/*
 * The adapter refused the PUSH_UPGRADE action (record_id, attempt as in the action); reason
 * borrowed ("offline", "queue full", ...). When the record is still PUSHED at that attempt
 * it goes back to PENDING with description "push failed (<reason>)" and waits
 * retry_backoff_s * 2^(attempts-1) (see GW_OTA_BACKOFF_CAP_MS). Push failures never fail a
 * record by themselves, but each push counts as an attempt. A stale report (the record moved
 * on) returns 0 and changes nothing. GW_E_RECORD_NOT_EXISTS.
 */
int gw_ota_on_push_failed(struct gw_ota_engine *eng, struct gw_txn *txn, uint64_t record_id,
                          uint32_t attempt, const char *reason, int64_t now_ms,
                          struct gw_ota_actions *sink);

/*
 * The scheduler: handles due deadlines (push_timeout_s without report while pushed,
 * upgrade_timeout_s without report while upgrading: PENDING again after a backoff while
 * attempts <= max_retries, else FAILURE "timeout"; pending records whose backoff ended are
 * pushed when their device is online), then pushes records waiting on a task's limits.
 */
int gw_ota_tick(struct gw_ota_engine *eng, struct gw_txn *txn, int64_t now_ms,
                struct gw_ota_actions *sink);

/* ---- device messages (DESIGN §5.5) ---- */

/*
 * The params of thing.ota.upgrade for a PUSH_UPGRADE action: {"version","fileUrl","fileSize",
 * "fileDigestAlgorithm":"MD5","fileDigestValue","sha256","sign" (only when fw->sign is set),
 * "taskId","recordId"}. taskId and recordId are decimal strings (ids are 64-bit; JSON numbers
 * lose precision above 2^53). fileUrl is fw->file_url, prefixed with base_url when it is a
 * path ("/..."), plus "token=<token>" as a query parameter when token is non-empty (the
 * token must be URL-safe). All arguments borrowed; *out is a new tree the caller frees.
 * Any thread. 0, -ENOMEM, -EINVAL.
 */
int gw_ota_upgrade_params(const struct gw_ota_action *a, const struct gw_firmware *fw,
                          const char *base_url, const char *token, cJSON **out);
/* The params of thing.ota.cancel: {"taskId","recordId","version"} (ids as strings). */
int gw_ota_cancel_params(const struct gw_ota_action *a, const char *version, cJSON **out);

/* ---- statistics (REFERENCE §1.6) ---- */

/*
 * Counts devices, not records: for every device with a record matching the filters
 * (firmware_id, task_id; 0 = any), +1 on the first status it has in the priority order
 * 30, 0, 10, 20, 40, 50. counts[] is indexed by gw_record_status_index(). Read txn is fine.
 */
int gw_ota_status_statistics(struct gw_txn *txn, uint64_t firmware_id, uint64_t task_id,
                             uint64_t counts[6]);
/* Records of one task per status (from the task row), indexed like above.
 * GW_E_TASK_NOT_EXISTS. */
int gw_ota_task_record_counts(struct gw_txn *txn, uint64_t task_id, uint64_t counts[6]);

#endif
