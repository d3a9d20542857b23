#ifndef GW_MB_SERVER_H
#define GW_MB_SERVER_H
/*
 * Private to mb_server.c (the adapter: listener, loop thread, queue, ops) and
 * mb_server_conn.c (one dial-in connection: framing, login, requests). Everything here is
 * touched by the adapter's loop thread only, except what mb_server.c guards with wake_lock,
 * the queue (its own lock) and the atomic counters.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "mb_internal.h"

#define GW__MBS_LOGIN_TIMEOUT_MS 10000 /* a connection must log in this soon */

struct gw__mbs_adapter;

enum gw__mbs_state {
    GW__MBS_LOGIN = 0, /* waiting for the login frame */
    GW__MBS_AUTHING,   /* the core is checking it */
    GW__MBS_UP,        /* bound to its device */
    GW__MBS_CLOSING,
};

struct gw__mbs_conn {
    struct gw__mbs_adapter *a;
    uv_tcp_t tcp;
    uv_timer_t timer;
    int handles;      /* open libuv handles; freed at 0 */
    uint64_t session; /* the login's session handle (and seq) */
    enum gw__mb_framing framing;
    enum gw__mbs_state state;
    bool close_after_write;
    uint8_t rbuf[1024];
    size_t rlen;
    uint16_t login_tid;
    uint8_t login_unit;
    int64_t login_deadline_ms;
    struct gw__mb_dev *dev;
    bool inflight;
    uint16_t tid;
    int64_t deadline_ms;
    struct gw__mb_req req;
    struct gw__mb_resp resp;
    char peer[80];
    struct gw__mbs_conn *prev, *next;
};

struct gw__mbs_entry {
    const char *pk, *dn;
    struct gw__mb_dev *dev;
};

struct gw__mbs_adapter {
    struct gw_adapter base;
    const struct gw_config_adapter *cfg;
    uint8_t custom_fc;
    uv_loop_t loop;
    bool loop_ready;
    uv_tcp_t listener;
    uv_async_t wake;
    uv_timer_t tick;
    pthread_mutex_t wake_lock;
    bool wake_closed; /* under wake_lock */
    pthread_t thread;
    bool thread_started;
    struct gw__mb_queue q;
    struct gw__mbs_entry *index; /* sorted by (pk, dn) */
    size_t n_index;
    struct gw__mbs_conn *conns;
    uint16_t next_tid;
    bool closing_all;
    struct gw__mb_counters ctr;
    atomic_bool stopping;
};

struct gw__mbs_write {
    uv_write_t req;
    struct gw__mbs_conn *c;
    size_t len;
    uint8_t data[];
};

/* (pk, dn) order of the device index; the device of pk/dn, NULL when not configured. */
int gw__mbs_entry_cmp(const void *x, const void *y);
struct gw__mbs_entry *gw__mbs_lookup(struct gw__mbs_adapter *a, const char *pk, const char *dn);

/* The listener's connection callback. */
void gw__mbs_on_connection(uv_stream_t *server, int status);
/* Closes c (its device goes offline); freed when libuv has closed its handles. Idempotent. */
void gw__mbs_conn_close(struct gw__mbs_conn *c, const char *why);
/* Sends the next request of c's device, or arms c's timer for when one is due. */
void gw__mbs_conn_service(struct gw__mbs_conn *c);
/* The core's answer to a login (an `auth` reply; borrowed). */
void gw__mbs_on_auth_reply(struct gw__mbs_adapter *a, const struct gw_msg *rep);

#endif
