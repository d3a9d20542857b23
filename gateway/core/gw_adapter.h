#ifndef GW_ADAPTER_H
#define GW_ADAPTER_H
/*
 * The adapter ABI (DESIGN §2): every device protocol is an adapter type described by one
 * `static const struct gw_adapter_ops`, listed once in the registry (adapter_registry.c).
 * The config's `adapters` list creates instances.
 *
 * Threads and ownership:
 * - create/start/stop/destroy/stats: called by the core's owner (main thread) only, in the
 *   order create → start → stop → destroy. stop joins the adapter's threads; after stop
 *   returns the adapter posts nothing more to the core.
 * - submit: ANY thread (in practice the core thread), never blocks, takes ownership of one
 *   reference of msg whatever it returns. Returns 0 when the message was accepted for
 *   delivery (queued to the device's session), -EAGAIN when the adapter's queue is full,
 *   GW_E_DEVICE_NOT_CONNECTED when the session is gone, GW_E_SHUTDOWN when stopping.
 *   msg->origin.session names the session (as the adapter reported it in its session event
 *   or on the message it posted); msg->product_key/device_name name the device.
 * - Adapters talk to the core only through gw_core_post / gw_core_post_session
 *   (gw_core.h); they never call storage, the engine or each other.
 */
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

struct gw_core;
struct gw_msg;
struct gw_config_adapter;
struct gw_adapter;

struct gw_adapter_stats {
    uint64_t sessions;      /* connected device sessions now */
    uint64_t msgs_in;       /* messages posted to the core */
    uint64_t msgs_out;      /* messages delivered to devices */
    uint64_t dropped_in;    /* inbound messages refused (bad frame, queue full) */
    uint64_t dropped_out;   /* submits refused (-EAGAIN, not connected) */
    uint64_t queue_depth;   /* downstream messages waiting */
};

/* The traffic counters every adapter keeps (any thread, relaxed atomics); gw_adapter_stats
 * takes its msgs/dropped fields from them through gw_adapter_counters_read. */
struct gw_adapter_counters {
    atomic_uint_fast64_t msgs_in, msgs_out, dropped_in, dropped_out;
};

static inline void gw_adapter_count(atomic_uint_fast64_t *counter)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

/* Fills out's msgs_in/msgs_out/dropped_in/dropped_out; leaves its other fields alone. */
static inline void gw_adapter_counters_read(struct gw_adapter_counters *c,
                                            struct gw_adapter_stats *out)
{
    out->msgs_in = atomic_load_explicit(&c->msgs_in, memory_order_relaxed);
    out->msgs_out = atomic_load_explicit(&c->msgs_out, memory_order_relaxed);
    out->dropped_in = atomic_load_explicit(&c->dropped_in, memory_order_relaxed);
    out->dropped_out = atomic_load_explicit(&c->dropped_out, memory_order_relaxed);
}

struct gw_adapter_ops {
    const char *name; /* the config's "type" */
    /* Allocates the instance; nothing runs yet. cfg is borrowed for the adapter's life. */
    int (*create)(struct gw_core *core, const struct gw_config_adapter *cfg,
                  struct gw_adapter **out);
    /* Binds/connects and starts the adapter's thread(s). Listener lines are logged here. */
    int (*start)(struct gw_adapter *ad);
    int (*submit)(struct gw_adapter *ad, struct gw_msg *msg);
    /* Stops intake, closes sessions, joins threads. Idempotent. */
    void (*stop)(struct gw_adapter *ad);
    void (*destroy)(struct gw_adapter *ad);
    void (*stats)(struct gw_adapter *ad, struct gw_adapter_stats *out);
};

/* Every instance struct begins with this (common base). */
struct gw_adapter {
    const struct gw_adapter_ops *ops;
    struct gw_core *core;
    char name[64]; /* instance name from the config, used as the log tag */
};

/* Registry lookup by type name; NULL when the type is unknown or not built. Any thread. */
const struct gw_adapter_ops *gw_adapter_find(const char *type);

#endif
