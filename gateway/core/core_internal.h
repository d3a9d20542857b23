#ifndef GW_CORE_INTERNAL_H
#define GW_CORE_INTERNAL_H
/*
 * Private to gateway/core: the core struct, its event queue, session table and the
 * per-batch outbox. See core.c for the threading rules.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "gw_adapter.h"
#include "gw_config.h"
#include "gw_core.h"
#include "gw_msg.h"
#include "gw_ota.h"
#include "gw_store.h"

#define GW_CORE_TAG "core"

enum gw_core_event_kind {
    GW__CORE_EV_MSG = 1,
    GW__CORE_EV_SESSION,
    GW__CORE_EV_CALL,
    GW__CORE_EV_PUSH_FAILED,
    GW__CORE_EV_REQUEST, /* a downstream request from gw_core_device_request */
};

/* Someone waiting for the core: a gw_core_call or a device request. Two references (the
 * waiting thread and the core); the last unref frees it. */
struct gw__core_waiter {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    bool done;
    int result;
    struct gw_msg *reply;   /* device request: the device's reply (a reference) */
    atomic_int refs;
};

struct gw__core_event {
    int kind;
    union {
        struct gw_msg *msg; /* MSG */
        struct {
            struct gw_adapter *ad;
            int ev;
            char pk[GW_PK_MAX + 1];
            char dn[GW_DN_MAX + 1];
            uint64_t session, seq;
        } sess;
        struct {
            gw_core_call_fn fn;
            void *arg;
            struct gw__core_waiter *w;
        } call;
        struct {
            uint64_t record_id;
            uint32_t attempt;
            int reason; /* error code of the refused submit */
        } pf;
        struct {
            struct gw_msg *msg; /* request to send; device_id set */
            struct gw__core_waiter *w;
            int64_t deadline_ms;
        } req;
    } u;
};

/* One session per device: where its downstream messages go. Core thread writes; any thread
 * may read under sess_lock. */
struct gw__core_session {
    uint64_t device_id;
    struct gw_adapter *ad;
    uint64_t session;
    uint64_t seq;
    bool reachable;
    char pk[GW_PK_MAX + 1];
    char dn[GW_DN_MAX + 1];
};

/* A message to hand to an adapter after the batch commits. */
struct gw__core_out {
    struct gw_adapter *ad;
    struct gw_msg *msg;
    uint64_t record_id; /* non-zero for a push: reported back on refusal */
    uint32_t attempt;
};

/* A device request waiting for the device's reply. */
struct gw__core_pending {
    char request_id[GW_MSG_REQUEST_ID_MAX + 1];
    uint64_t device_id;
    char pk[GW_PK_MAX + 1];
    char dn[GW_DN_MAX + 1];
    int64_t deadline_ms;
    struct gw__core_waiter *w;
};

struct gw_core {
    const struct gw_config *cfg;
    struct gw_store *store;
    struct gw_ota_engine *ota;
    struct gw_adapter **adapters;
    size_t n_adapters;
    uint8_t download_key[32];
    uint8_t jwt_secret[32];

    pthread_t thread;
    bool thread_started;
    atomic_bool stopping;   /* no new posts accepted */
    bool quit;              /* under qlock: core thread exits once the queue is empty */

    /* inbound queue (ring) */
    pthread_mutex_t qlock;
    pthread_cond_t q_nonempty;
    pthread_cond_t q_space;
    struct gw__core_event *ring;
    size_t head, count, cap;
    /* internal events (push failures) never block on capacity: core thread only */
    struct gw__core_event *internal;
    size_t n_internal, cap_internal;

    /* per batch, core thread only */
    struct gw__core_event *batch;
    size_t batch_max;
    struct gw_ota_actions actions;
    struct gw__core_out *outbox;
    size_t n_out, cap_out;
    struct gw__core_waiter **done;
    int *done_rc;
    size_t n_done, cap_done;
    int64_t next_tick_ms;

    /* sessions: tsearch tree keyed by device_id, guarded by sess_lock */
    pthread_mutex_t sess_lock;
    void *sessions;
    size_t n_sessions;

    /* pending device requests: tsearch tree keyed by request_id, core thread only */
    void *pending;
    size_t n_pending;

    atomic_uint_fast64_t id_counter;
    uint64_t id_nonce;

    /* stats */
    atomic_uint_fast64_t st_refused;
    atomic_uint_fast64_t st_batches, st_events, st_commit_errors;
};

int64_t gw__core_now_ms(void);

/* Session table (core_session.c). Core thread for writes. */
int gw__core_session_apply(struct gw_core *core, struct gw_txn *txn,
                           const struct gw__core_event *ev, int64_t now_ms);
/* Registers an authenticated session (auth on TCP/UDP/WS/...): reachable at once. */
int gw__core_session_bind(struct gw_core *core, struct gw_txn *txn, const struct gw_device *dev,
                          struct gw_adapter *ad, uint64_t session, int64_t now_ms);
/* Copies the device's session; false when it has none or it is not reachable. */
bool gw__core_session_find(struct gw_core *core, uint64_t device_id,
                           struct gw__core_session *out);
void gw__core_sessions_free(struct gw_core *core);

/* Upstream messages (core_upstream.c). Core thread. */
void gw__core_handle_msg(struct gw_core *core, struct gw_txn *txn, struct gw_msg *msg,
                         int64_t now_ms);

/* Outbox and downstream (core_downstream.c). Core thread. */
int gw__core_outbox_add(struct gw_core *core, struct gw_adapter *ad, struct gw_msg *msg,
                        uint64_t record_id, uint32_t attempt);
/* Turns the batch's OTA actions into outbox messages (inside the txn: reads firmware). */
void gw__core_actions_to_outbox(struct gw_core *core, struct gw_txn *txn, int64_t now_ms);
/* Hands the outbox to the adapters; refused pushes become internal PUSH_FAILED events. */
void gw__core_outbox_flush(struct gw_core *core);
void gw__core_outbox_drop(struct gw_core *core);
/* A downstream request event: send it, remember the waiter. */
void gw__core_request_start(struct gw_core *core, struct gw__core_event *ev, int64_t now_ms);
/* A device reply: completes a pending request. true when it matched one. */
bool gw__core_request_reply(struct gw_core *core, struct gw_msg *reply);
/* Fails pending requests past their deadline (all of them when now_ms < 0). */
void gw__core_request_expire(struct gw_core *core, int64_t now_ms);

/* Waiters (core.c). */
void gw__core_waiter_complete(struct gw__core_waiter *w, int result, struct gw_msg *reply);
void gw__core_waiter_unref(struct gw__core_waiter *w);
/* Records a waiter to complete after the batch commits (with its fn's result). */
int gw__core_done_add(struct gw_core *core, struct gw__core_waiter *w, int rc);
/* Appends an internal event (core thread; never refused for capacity). */
int gw__core_internal_add(struct gw_core *core, const struct gw__core_event *ev);

#endif
