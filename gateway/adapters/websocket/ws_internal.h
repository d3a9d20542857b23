#ifndef GW_WS_INTERNAL_H
#define GW_WS_INTERNAL_H
/*
 * Private to gateway/adapters/websocket: the adapter instance, its connections and the
 * functions ws_adapter.c (lifecycle, submit, wake-ups) and ws_conn.c (the lws protocol
 * callback) share. Threading rules are in ws_adapter.c's DESIGN comment.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "gw_adapter.h"
#include "gw_codec.h"
#include "gw_config.h"
#include "gw_msg.h"

/* Downstream messages waiting per connection; a full queue makes submit return -EAGAIN. */
#define GW_WS_QUEUE_MAX 64
/* The device subprotocol; clients offering none are bound to it too (default pvo). */
#define GW_WS_PROTOCOL "iotgw"

enum gw__ws_state {
    GW__WS_NEW = 0,  /* connected, not logged in */
    GW__WS_AUTHING,  /* auth posted to the core, reply not back yet */
    GW__WS_AUTHED,   /* logged in as pk/dn */
};

/* One device connection. Allocated at ESTABLISHED, freed at CLOSED (service thread). */
struct gw__ws_conn {
    struct gw__ws *a;
    uint64_t handle;          /* session handle given to the core; never reused */
    struct lws *wsi;          /* service thread only */

    /* guarded by a->lock (submit runs on the core thread) */
    enum gw__ws_state state;
    char pk[GW_MSG_PK_MAX + 1];
    char dn[GW_MSG_DN_MAX + 1];
    struct gw_msg *q[GW_WS_QUEUE_MAX]; /* ring of messages to write */
    size_t qhead, qlen;
    bool on_ready;            /* in a->ready: needs a WRITEABLE */
    struct gw__ws_conn *ready_next;
    bool kick;                /* close at the next WRITEABLE (replaced by a new login) */

    /* service thread only */
    bool auth_binary;         /* the auth request came in binary: answer it that way */
    uint8_t *rx;              /* the message being reassembled from fragments */
    size_t rx_len, rx_cap;
    bool rx_started;
};

/* An OFFLINE the service thread still has to post (the core refused it, or a login
 * succeeded for a connection that had already gone). */
struct gw__ws_offline {
    struct gw__ws_offline *next;
    char pk[GW_MSG_PK_MAX + 1];
    char dn[GW_MSG_DN_MAX + 1];
    uint64_t seq;
};

struct gw__ws {
    struct gw_adapter base;
    const struct gw_config_adapter *cfg;
    const struct gw_codec_ops *codec; /* the listener's serializer */
    bool binary;

    struct lws_context *lws;
    int port;                         /* bound port (config may say 0) */
    pthread_t thread;
    bool thread_started;
    atomic_bool stopping;
    lws_sorted_usec_list_t retry_sul; /* service thread: retries deferred offlines */

    pthread_mutex_t lock;
    bool closed;                      /* under lock: stopping, post nothing, touch no lws */
    void *conns;                      /* tsearch by handle, under lock */
    void *by_dev;                     /* tsearch by (pk, dn) of logged-in conns, under lock */
    size_t n_conns, n_authed;
    size_t n_queued;                  /* messages in every write queue, under lock */
    struct gw__ws_conn *ready;        /* conns that need a WRITEABLE, under lock */
    struct gw__ws_offline *offline;   /* deferred OFFLINE posts, under lock */

    atomic_uint_fast64_t next_handle; /* the last handle given out */
    struct gw_adapter_counters ctr;
};

/* ws_adapter.c: a fresh session handle (only grows; see its definition). Any thread. */
uint64_t gw__ws_new_handle(struct gw__ws *a);
/* ws_adapter.c: table of connections (service thread; each takes a->lock). */
int gw__ws_conn_add(struct gw__ws *a, struct gw__ws_conn *c);
/* Unlinks c from every list and releases its queue; returns true when the device had
 * logged in on it (its OFFLINE is due), with its identity copied to pk/dn. */
bool gw__ws_conn_remove(struct gw__ws *a, struct gw__ws_conn *c, char *pk, char *dn);
/* Queues a message built on the service thread (a local reply) for c; takes msg. */
void gw__ws_conn_push_local(struct gw__ws *a, struct gw__ws_conn *c, struct gw_msg *msg);
/* Posts OFFLINE for pk/dn/seq now, or defers it when the core's queue is full. */
void gw__ws_post_offline(struct gw__ws *a, const char *pk, const char *dn, uint64_t seq);
/* Service thread, on LWS_CALLBACK_EVENT_WAIT_CANCELLED: WRITEABLE requests and offlines. */
void gw__ws_on_wake(struct gw__ws *a);

/* Service thread: takes the next message to write to c (NULL when none); *more says whether
 * others wait. */
struct gw_msg *gw__ws_conn_pop(struct gw__ws *a, struct gw__ws_conn *c, bool *more, bool *kick);

/* ws_conn.c: the protocol table (http stub first, the device protocol second). */
extern const struct lws_protocols gw__ws_protocols[];

#endif
