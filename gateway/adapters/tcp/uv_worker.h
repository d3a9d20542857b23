#ifndef GW_UV_WORKER_H
#define GW_UV_WORKER_H
/*
 * The part the TCP and UDP adapters share (LIBRARIES §11): one libuv loop on its own thread,
 * a bounded downstream queue that any thread fills through gw__uvw_submit (woken with
 * uv_async_send), and the set of live session handles submit checks against.
 *
 * Threads:
 *  - owner (main thread): gw__uvw_init, _start, _stop, _fini;
 *  - any thread: gw__uvw_submit, gw__uvw_queue_depth;
 *  - the loop thread: everything else, and the on_wake / on_stop callbacks.
 * Handles are created by the owner before _start (so a bind error is reported by start) and
 * touched only by the loop thread afterwards (pthread_create orders the two).
 *
 * Live set: a tsearch tree of pointers to the adapter's session structs, each of which
 * BEGINS with its uint64_t session handle (the key). The loop thread is its only writer
 * (under lock); submit reads it under lock; the loop thread may read it without the lock.
 *
 * Full-queue policy: submit returns -EAGAIN (the core counts it and, for an OTA push, puts
 * the record back to pending); nothing is dropped silently.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

struct gw_msg;
struct gw_config_addr;
struct gw__uvw;

/* Loop thread: the queue has messages (take them with gw__uvw_take). */
typedef void (*gw__uvw_wake_fn)(struct gw__uvw *w);
/* Loop thread, once: close every handle of the adapter (the worker closes its own). */
typedef void (*gw__uvw_stop_fn)(struct gw__uvw *w);

struct gw__uvw {
    uv_loop_t loop;
    uv_async_t wake;
    void *ctx; /* the adapter */
    gw__uvw_wake_fn on_wake;
    gw__uvw_stop_fn on_stop;
    const char *tag; /* log tag (the adapter's name), borrowed */

    pthread_t thread;
    bool thread_started;
    bool loop_ready; /* loop and wake initialised */
    bool stop_done;  /* loop thread: on_stop ran */

    pthread_mutex_t lock;
    /* under lock */
    bool stopping;
    struct gw_msg **ring;
    size_t head, count, cap;
    void *live;
    size_t n_live;
};

/* Initialises the loop, the async handle and a queue of cap messages. 0, -ENOMEM or a
 * negative errno from libuv. On failure nothing needs undoing. */
int gw__uvw_init(struct gw__uvw *w, size_t cap, void *ctx, const char *tag, gw__uvw_wake_fn on_wake,
                 gw__uvw_stop_fn on_stop);
/* Starts the loop thread. 0 or -errno. */
int gw__uvw_start(struct gw__uvw *w);
/* Stops intake (submit then returns GW_E_SHUTDOWN), runs on_stop on the loop thread, runs the
 * loop until every handle is closed and joins the thread. Idempotent. Owner only. */
void gw__uvw_stop(struct gw__uvw *w);
/* Frees the queue (unref'ing what is left) and closes the loop; runs on_stop and closes the
 * handles on the calling thread when the loop thread never ran. NULL-safe on a zeroed w. */
void gw__uvw_fini(struct gw__uvw *w);

/* Any thread. Takes one reference of msg whatever it returns: 0, -EAGAIN (queue full),
 * GW_E_DEVICE_NOT_CONNECTED (origin.session not live), GW_E_SHUTDOWN. */
int gw__uvw_submit(struct gw__uvw *w, struct gw_msg *msg);
/* Any thread: messages waiting now. */
size_t gw__uvw_queue_depth(struct gw__uvw *w);

/* Loop thread: moves up to max queued messages (their references) into out; returns how many. */
size_t gw__uvw_take(struct gw__uvw *w, struct gw_msg **out, size_t max);
/* Loop thread: true once stop was requested (no new sessions should be created). */
bool gw__uvw_stopping(struct gw__uvw *w);

/* Loop thread. key points at the first member (uint64_t session) of a session struct that
 * stays valid while it is in the set. add: 0 or -ENOMEM. */
int gw__uvw_live_add(struct gw__uvw *w, uint64_t *key);
void gw__uvw_live_del(struct gw__uvw *w, uint64_t *key);
/* Loop thread: the session struct with that handle, or NULL. */
void *gw__uvw_live_find(struct gw__uvw *w, uint64_t session);

/*
 * A new session handle, unique and increasing in this process across every adapter that
 * uses it: max(previous + 1, wall clock in microseconds). Being time based, handles also
 * grow across restarts and between adapters, so the core's "a later connection has a larger
 * seq" rule holds when a device moves from one of these adapters to another. Any thread.
 */
uint64_t gw__uvw_next_session(void);

/* Monotonic milliseconds (the loop's clock is cached; this is not). Any thread. */
int64_t gw__uvw_now_ms(void);

/* Resolves a listen address (numeric IPv4/IPv6 or a host name) into *out. 0 or GW_E_CONFIG. */
int gw__uvw_resolve(const struct gw_config_addr *a, int socktype, struct sockaddr_storage *out);
/* "ip:port" ("[ip6]:port") of addr into buf. */
void gw__uvw_addr_str(const struct sockaddr *addr, char *buf, size_t len);

#endif
