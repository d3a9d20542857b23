#ifndef GW_CORE_H
#define GW_CORE_H
/*
 * The core (DESIGN §2): one thread owns the session table, the OTA engine and the LMDB
 * writer. Adapters and the admin API reach it only through the functions below, which
 * enqueue into one bounded inbound queue; the core drains it in batches, applies each batch
 * in one durable write transaction (group commit), then dispatches what the batch produced
 * (replies, pushes, wake-ups of waiting callers).
 *
 * Full-queue policy: gw_core_post and gw_core_post_session return -EAGAIN and count the
 * refusal; the adapter keeps the message in its own bounded queue and posts it again (MQTT:
 * the broker already has its PUBACK, so nothing would resend it), or answers the device with
 * an error where its protocol has one. gw_core_call waits for room.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct gw_adapter;
struct gw_config;
struct gw_msg;
struct gw_store;
struct gw_txn;
struct gw_ota_engine;
struct gw_core;

/* ---- adapters → core (any thread) ---- */

/*
 * Posts an upstream message (a device request, a device's reply to a downstream request, or
 * an `auth` request). Takes ownership of one reference of msg, also on failure.
 * msg->origin.adapter must be the posting adapter; msg->origin.session its session handle;
 * product_key/device_name the session's identity ("" before auth). A message without an id
 * gets one here, which is only allowed while the caller's reference is the only one (an
 * adapter that keeps a reference for a retry assigns the id itself, gw_msg_assign_id).
 * Returns 0, -EAGAIN (queue full), GW_E_SHUTDOWN.
 */
int gw_core_post(struct gw_core *core, struct gw_msg *msg);

enum gw_session_event {
    GW_SESSION_ONLINE = 1,    /* authenticated; not necessarily able to receive yet */
    GW_SESSION_REACHABLE = 2, /* can receive downstream now (MQTT: subscribed); implies online */
    GW_SESSION_OFFLINE = 3,   /* gone; applied only if seq matches the device's current seq */
    GW_SESSION_ALL_OFFLINE = 4, /* the adapter lost every session (e.g. broker restart) */
};

/*
 * Reports a session change for device pk/dn on adapter ad. session is the adapter's handle
 * (echoed back in msg->origin.session on downstream messages); seq orders connections of
 * the same device (a later connection has a larger seq; an OFFLINE with an older seq is
 * ignored, so a reconnect's late disconnect never marks the device offline). For adapters
 * whose sessions can deliver at once, post REACHABLE directly. pk/dn are copied.
 * Returns 0, -EAGAIN, GW_E_SHUTDOWN.
 */
int gw_core_post_session(struct gw_core *core, struct gw_adapter *ad, enum gw_session_event ev,
                         const char *pk, const char *dn, uint64_t session, uint64_t seq);

/* ---- admin API → core ---- */

/* What a command running on the core thread may use. Valid only during the call. */
struct gw_core_ctx {
    struct gw_core *core;
    struct gw_txn *txn;          /* the batch's write transaction */
    struct gw_ota_engine *ota;
    void *actions;               /* the batch's OTA action sink (struct gw_ota_actions *) */
    int64_t now_ms;
};

/* Runs on the core thread inside a batch. Returns 0 or an error code; on error it must have
 * written nothing (check before writing). */
typedef int (*gw_core_call_fn)(struct gw_core_ctx *ctx, void *arg);

/*
 * Runs fn(ctx, arg) on the core thread and waits until its batch is durably committed.
 * Returns fn's result; the commit's error (GW_E_MAP_FULL, GW_E_STORE) when fn succeeded but
 * the batch could not be committed (nothing of it was kept); GW_E_SHUTDOWN when the core
 * stops first. timeout_ms bounds only the wait for room in the queue (GW_E_TIMEOUT, nothing
 * queued); once queued, the call always completes, so arg may live on the caller's stack.
 * Any thread except the core thread.
 */
int gw_core_call(struct gw_core *core, gw_core_call_fn fn, void *arg, int timeout_ms);

/*
 * Sends a downstream request (thing.property.set, thing.service.invoke, ...) to a device on
 * whatever adapter it is on and waits for its reply. params: taken (ownership). On success
 * *reply_out is a new reference to the device's reply message (caller unrefs).
 * GW_E_DEVICE_NOT_EXISTS, GW_E_DEVICE_NOT_CONNECTED, GW_E_UNKNOWN_METHOD (not a downstream
 * method), GW_E_TIMEOUT. Any thread except the core thread.
 */
int gw_core_device_request(struct gw_core *core, uint64_t device_id, const char *method,
                           cJSON *params, int timeout_ms, struct gw_msg **reply_out);

/* The store, for read transactions on other threads (gw_store_txn_begin(store, false,..)). */
struct gw_store *gw_core_store(struct gw_core *core);
const struct gw_config *gw_core_config(struct gw_core *core);
/* The gateway's data directory (after --data-dir). */
const char *gw_core_data_dir(struct gw_core *core);
/* The secret the core signs device tokens with (HS256, DESIGN §4), for adapters that verify
 * them (UDP). 32 bytes in *len; owned by the core, constant from create to destroy. Any
 * thread. */
const uint8_t *gw_core_jwt_secret(struct gw_core *core, size_t *len);

/* Whether the device is reachable now (any thread; a snapshot). */
bool gw_core_device_online(struct gw_core *core, uint64_t device_id);

/* ---- lifecycle (main thread) ---- */

/*
 * Opens the store under <cfg->data_dir>/db, creates the OTA engine with the config's ota.*
 * defaults and one adapter instance per entry of cfg->adapters (nothing runs yet).
 * cfg is borrowed for the core's life. Errors are logged once with their cause.
 */
int gw_core_create(const struct gw_config *cfg, struct gw_core **out);
/* Starts the core thread, then every adapter (an adapter failing to start stops the rest
 * and returns its error). */
int gw_core_start(struct gw_core *core);
/*
 * Ordered shutdown: stop and join every adapter (no more intake), then let the core thread
 * drain the queue, commit its last batch and exit. Idempotent.
 */
void gw_core_stop(struct gw_core *core);
/* Frees everything and closes the store. NULL is fine. After gw_core_stop. */
void gw_core_destroy(struct gw_core *core);

struct gw_core_stats {
    uint64_t queued;        /* events waiting now */
    uint64_t refused;       /* posts refused with -EAGAIN */
    uint64_t batches;       /* committed batches */
    uint64_t events;        /* events applied */
    uint64_t commit_errors; /* batches lost to a failed commit */
    uint64_t sessions;      /* reachable or online device sessions now */
};
void gw_core_get_stats(struct gw_core *core, struct gw_core_stats *out);

#endif
