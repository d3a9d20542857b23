#ifndef GW_TCP_INTERNAL_H
#define GW_TCP_INTERNAL_H
/*
 * Private to gateway/adapters/tcp: the adapter instance and its connections. Everything here
 * is touched by the adapter's loop thread only, except the atomic counters (any thread) and
 * what uv_worker.h guards with its lock.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "gw_adapter.h"
#include "gw_codec.h"
#include "gw_config.h"
#include "gw_framer.h"
#include "gw_msg.h"
#include "uv_worker.h"

/* Failed logins plus business messages before login tolerated on one connection; the one
 * after is answered and the connection closed (a device that never learns must not keep a
 * slot forever). */
#define GW_TCP_STRIKES_MAX 3
/* Downstream messages queued between the core and the loop thread. */
#define GW_TCP_QUEUE_CAP 4096
/* A graceful close (reply, then FIN) gives the peer this long to take the reply. */
#define GW_TCP_LINGER_MS 5000
/* Retry period for session events the core's full queue refused. */
#define GW_TCP_RETRY_MS 50

enum gw__tcp_state {
    GW__TCP_NEW = 0, /* connected, not logged in */
    GW__TCP_AUTHING, /* an auth request is with the core */
    GW__TCP_AUTHED,  /* logged in as pk/dn */
};

struct gw__tcp_adapter;

struct gw__tcp_conn {
    uint64_t session; /* first member: the live-set key (uv_worker.h); also the seq */
    struct gw__tcp_adapter *ad;
    uv_tcp_t tcp;
    uv_timer_t timer; /* idle timeout, then the linger deadline while closing */
    uv_shutdown_t shutdown_req;
    struct gw_framer *framer;
    enum gw__tcp_state state;
    char pk[GW_MSG_PK_MAX + 1]; /* AUTHED: the identity; AUTHING: the one claimed */
    char dn[GW_MSG_DN_MAX + 1];
    bool in_device_map; /* the ad->by_device entry for pk/dn is this connection */
    unsigned strikes;
    bool live;      /* in the live set, counted in n_conns */
    bool closing;   /* close started: no more reads or posts */
    bool finishing; /* uv_close called on both handles */
    int open_handles;
    char peer[64];
    struct gw__tcp_conn *prev, *next; /* every connection, for stop */
};

/* A session event the core refused (-EAGAIN), kept for a retry. */
struct gw__tcp_pending_ev {
    char pk[GW_MSG_PK_MAX + 1];
    char dn[GW_MSG_DN_MAX + 1];
    uint64_t session;
};

struct gw__tcp_adapter {
    struct gw_adapter base; /* first: the common base */
    const struct gw_config_adapter *cfg;
    const struct gw_codec_ops *codec;
    struct gw__uvw w;
    uv_tcp_t server;
    bool server_init;
    uv_timer_t retry_timer;
    bool retry_init;
    bool started;

    /* loop thread */
    struct gw__tcp_conn *conns; /* list head */
    size_t n_conns;             /* live connections (accepted and not closing) */
    void *by_device;            /* tsearch: logged-in connection per "pk/dn" */
    struct gw__tcp_pending_ev *pending;
    size_t n_pending, cap_pending;
    uint8_t rbuf[65536]; /* read buffer: one loop thread, consumed within on_read */

    atomic_uint_fast64_t sessions;
    struct gw_adapter_counters ctr;
};

/* tcp_conn.c (loop thread) */
void gw__tcp_on_connection(uv_stream_t *server, int status);
/* Starts closing c. graceful: flush what is queued and send FIN first (bounded by
 * GW_TCP_LINGER_MS); otherwise reset at once. Idempotent. */
void gw__tcp_conn_close(struct gw__tcp_conn *c, bool graceful, const char *why);
/* Encodes msg for c (serializer + framing) and queues it; closes c when its write queue
 * goes over write_queue_max_bytes. msg is borrowed. 0 or an error (already logged). */
int gw__tcp_conn_send(struct gw__tcp_conn *c, const struct gw_msg *msg);
/* Applies the core's reply to an `auth` of c (bind on success, strike on failure). */
void gw__tcp_conn_auth_reply(struct gw__tcp_conn *c, const struct gw_msg *reply);
/* Posts OFFLINE for pk/dn/session, or keeps it for a retry when the core is full. */
void gw__tcp_post_offline(struct gw__tcp_adapter *a, const char *pk, const char *dn,
                          uint64_t session);

#endif
