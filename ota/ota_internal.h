#ifndef GW_OTA_INTERNAL_H
#define GW_OTA_INTERNAL_H
/*
 * Cross-file internals of the OTA engine (gw__ota_*). Core thread only, like the engine.
 */
#include "gw_ota.h"

#define GW_OTA_LOG_TAG "ota"
#define GW_OTA_MINUTE_MS 60000LL

/*
 * Scheduling state of one task in progress (a cache of the store; see gw_ota.h).
 * sweep: records of the task with id <= cursor have been examined since the last load or the
 * creation; a pending record behind the cursor is reached again by a trigger (its device's
 * online event, its backoff deadline) or sits in `ready`.
 */
struct gw__ota_task_state {
    uint64_t task_id;
    uint64_t cursor;
    bool sweep_done;
    /* FIFO ring of record ids found ready while the task was at a limit. */
    uint64_t *ready;
    size_t ready_head, ready_n, ready_cap;
    /* Ring of the push times of the last minute; capacity = the task's rate_per_minute. */
    int64_t *rate;
    uint32_t rate_head, rate_n, rate_cap;
};

struct gw_ota_engine {
    struct gw_task_policy defaults;
    struct gw_ota_stats stats;
    /* Sorted by task_id (new tasks have larger ids, so creation appends). */
    struct gw__ota_task_state **ts;
    size_t ts_n, ts_cap;
};

/* ---- ota_engine.c: sink, task-state table, limits ---- */

/* Appends one action. -ENOMEM. */
int gw__ota_emit(struct gw_ota_actions *sink, const struct gw_ota_action *a);
struct gw__ota_task_state *gw__ota_ts_find(struct gw_ota_engine *eng, uint64_t task_id);
/* Finds or adds (sweep_done, empty queues). -ENOMEM. */
int gw__ota_ts_get(struct gw_ota_engine *eng, uint64_t task_id, struct gw__ota_task_state **out);
/* Forgets a task that left IN_PROGRESS. */
void gw__ota_ts_drop(struct gw_ota_engine *eng, uint64_t task_id);
int gw__ota_ready_add(struct gw__ota_task_state *ts, uint64_t record_id);
/* Pops the oldest ready record id; false when empty. */
bool gw__ota_ready_pop(struct gw__ota_task_state *ts, uint64_t *record_id);
/* true when a push at now_ms stays within rate_per_minute (0 = unlimited). ts may be NULL
 * only for an unlimited rate. */
bool gw__ota_rate_allows(struct gw__ota_task_state *ts, uint32_t rate, int64_t now_ms);
/* Notes a push at now_ms. -ENOMEM (ring allocated on first use). */
int gw__ota_rate_note(struct gw__ota_task_state *ts, uint32_t rate, int64_t now_ms);
/* When the oldest push of a full window leaves it; 0 when the window is not full. */
int64_t gw__ota_rate_next(const struct gw__ota_task_state *ts, uint32_t rate, int64_t now_ms);

/* ---- ota_transition.c: record moves and task bookkeeping ---- */

/* Pushed or upgrading records of the task (what max_concurrent limits). */
uint32_t gw__ota_in_flight(const struct gw_task *t);
/* Records in pending, pushed or upgrading. */
uint32_t gw__ota_active_count(const struct gw_task *t);
/* Whether the task may push one more record now (max_concurrent, rate_per_minute). */
bool gw__ota_has_room(struct gw_ota_engine *eng, const struct gw_task *t, int64_t now_ms);
/* The deadline a record in its current state needs (0 = none) under the task's policy. */
int64_t gw__ota_deadline_for(const struct gw_record *r, const struct gw_task_policy *p);
/* Backoff before re-pushing after `attempts` pushes. */
int64_t gw__ota_backoff_ms(const struct gw_task_policy *p, uint32_t attempts);
/* Copies src into a char[GW_DESC_MAX+1]-like buffer of size cap, cut at a UTF-8 boundary. */
void gw__ota_copy_text(char *dst, size_t cap, const char *src);

/*
 * Moves r to status `to` (may equal r->status: then no history, only the row and deadline),
 * keeping t's status_count / device_success_count, appending a history entry with `cause`,
 * and updating the deadline index from old_due (the deadline r had before the caller
 * modified it). Writes the record; the caller writes the task.
 */
int gw__ota_move(struct gw_txn *txn, struct gw_task *t, struct gw_record *r, int64_t old_due,
                 int to, const char *cause, int64_t now_ms);
/* Pending (or any active) → PUSHED with attempts+1, notes the rate, emits PUSH_UPGRADE.
 * The caller writes the task. */
int gw__ota_push(struct gw_ota_engine *eng, struct gw_txn *txn, struct gw_task *t,
                 struct gw_record *r, int64_t now_ms, struct gw_ota_actions *sink);
/*
 * After a record of t moved (t modified in memory, not yet written): the end check (no active
 * record → ENDED), else the failure-ratio abort, else pushes into freed slots. Always writes
 * the task.
 */
int gw__ota_settle(struct gw_ota_engine *eng, struct gw_txn *txn, struct gw_task *t,
                   int64_t now_ms, struct gw_ota_actions *sink);
/* Cancels t (status CANCELLED, end_reason) and its active records with description desc;
 * SEND_CANCEL hints; TASK_ENDED. Writes the task. */
int gw__ota_cancel_task(struct gw_ota_engine *eng, struct gw_txn *txn, struct gw_task *t,
                        const char *end_reason, const char *desc, int64_t now_ms,
                        struct gw_ota_actions *sink);
/*
 * Pushes ready records of task t while it has room: first its ready FIFO, then its sweep.
 * *budget bounds the records examined (decremented). *pushed counts the pushes; t is changed
 * in memory only (the caller writes it when *pushed > 0).
 */
int gw__ota_pump(struct gw_ota_engine *eng, struct gw_txn *txn, struct gw_task *t,
                 int64_t now_ms, struct gw_ota_actions *sink, size_t *budget, size_t *pushed);
/*
 * A pending record whose device is online: push now when t has room, else queue it on the
 * task's ready FIFO. *pushed tells which. The caller writes the task.
 */
int gw__ota_offer(struct gw_ota_engine *eng, struct gw_txn *txn, struct gw_task *t,
                  struct gw_record *r, int64_t now_ms, struct gw_ota_actions *sink,
                  bool *pushed);

#endif
