#ifndef GW_HTTP_INTERNAL_H
#define GW_HTTP_INTERNAL_H
/*
 * Private to gateway/adapters/http: the adapter instance, the per-connection request state,
 * the device table, and the functions shared by http_adapter.c (lifecycle, submit, wake-ups),
 * http_devices.c (downstream queues, long-polls, reachability) and http_conn.c (the lws
 * protocol callback). Threading rules are in http_adapter.c's DESIGN comment.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "gw_adapter.h"
#include "gw_config.h"
#include "gw_msg.h"
#include "gw_topic.h"

#define GW_HTTP_QUEUE_MAX 64       /* downstream messages queued per device (-EAGAIN beyond) */
#define GW_HTTP_REPLY_WAIT_S 30    /* a request the core has not answered by then gets 504 */
#define GW_HTTP_SWEEP_US (500 * 1000)

enum gw__http_phase {
    GW__HTTP_IDLE = 0,
    GW__HTTP_BODY,  /* receiving the request body */
    GW__HTTP_WAIT,  /* waiting for the core's reply (in a->pend) */
    GW__HTTP_POLL,  /* a parked long-poll (dev->poll == this) */
    GW__HTTP_SEND,  /* writing the response */
};

enum gw__http_route {
    GW__HTTP_R_NONE = 0,
    GW__HTTP_R_AUTH,   /* POST /auth */
    GW__HTTP_R_TOPIC,  /* POST /topic/sys/{pk}/{dn}/{method path}[_reply] */
};

struct gw__http_dev;

/* Per connection (lws per-session data; HTTP/1.1 keep-alive reuses it per request). */
struct gw__http_conn {
    struct gw__http *a;
    struct lws *wsi;
    enum gw__http_phase phase;
    enum gw__http_route route;
    struct gw_topic topic;          /* R_TOPIC: the path's identity and method */
    char *body;
    size_t body_len, clen;

    /* waiting for the core: guarded by a->lock (submit fills reply) */
    uint64_t handle;
    bool in_pend;                   /* in a->pend, keyed by handle */
    bool on_done;                   /* in a->done with reply set */
    struct gw_msg *reply;
    struct gw__http_conn *done_next;

    struct gw__http_dev *dev;       /* POLL: the device it is parked on */
    lws_sorted_usec_list_t sul;     /* WAIT / POLL deadline */

    /* response */
    int status;
    char *resp;
    size_t resp_len, off;
    bool hdr_sent, close_after;
};

/* One HTTP device the gateway has handed a token to or seen polling. Guarded by a->lock;
 * freed only by the sweep on the service thread. */
struct gw__http_dev {
    char pk[GW_MSG_PK_MAX + 1];
    char dn[GW_MSG_DN_MAX + 1];
    uint64_t seq;                   /* the session handle/seq the core knows it by */
    bool reachable;
    int64_t last_seen_ms;           /* monotonic: last login, poll start or poll end */
    struct gw_msg *q[GW_HTTP_QUEUE_MAX];
    size_t qhead, qlen;
    struct gw__http_conn *poll;     /* the parked long-poll, if any */
    bool on_ready;                  /* in a->ready: a parked poll has messages */
    struct gw__http_dev *ready_next;
};

struct gw__http {
    struct gw_adapter base;
    const struct gw_config_adapter *cfg;
    int64_t window_ms;              /* reachable this long after the last poll */

    struct lws_context *lws;
    int port;
    pthread_t thread;
    bool thread_started;
    atomic_bool stopping;
    lws_sorted_usec_list_t sweep_sul;

    pthread_mutex_t lock;
    bool closed;                    /* stop began: post nothing, no lws calls from submit */
    void *pend;                     /* conns waiting for the core, by handle */
    struct gw__http_conn *done;     /* conns whose reply came */
    void *devs;                     /* struct gw__http_dev by (pk, dn) */
    size_t n_devs, n_reachable, n_queued;
    struct gw__http_dev *ready;     /* devices whose parked poll can be answered */

    atomic_uint_fast64_t next_handle; /* the last handle given out */
    struct gw_adapter_counters ctr;
};

int64_t gw__http_mono_ms(void);
/* A fresh request handle / session seq (see gw__http_new_handle in http_adapter.c). */
uint64_t gw__http_new_handle(struct gw__http *a);

/* http_adapter.c: requests waiting for the core (service thread; each takes a->lock). */
/* Gives c a fresh handle and files it as waiting; 0 or -ENOMEM. */
int gw__http_pend_add(struct gw__http_conn *c);
/* c no longer waits (answered, timed out or closed): unlinks it, drops an unread reply. */
void gw__http_pend_cancel(struct gw__http_conn *c);
/* Takes the list of conns whose reply came (linked by done_next; each keeps c->reply). */
struct gw__http_conn *gw__http_done_take(struct gw__http *a);

/* http_devices.c (lock taken inside unless said otherwise). */
int gw__http_dev_cmp(const void *x, const void *y);
/* tdestroy callback: frees an entry and its queue (no lock: stop only). */
void gw__http_dev_free(void *dev);
/* Under lock: the entry for pk/dn, created when missing (NULL on ENOMEM). */
struct gw__http_dev *gw__http_dev_get(struct gw__http *a, const char *pk, const char *dn,
                                      bool create);
/* Under lock: the core accepted a login with session handle h. */
void gw__http_dev_on_login(struct gw__http *a, const char *pk, const char *dn, uint64_t h);
/* Under lock: queues a downstream request; 0, -EAGAIN, GW_E_DEVICE_NOT_CONNECTED. */
int gw__http_dev_queue(struct gw__http *a, struct gw_msg *msg);
/* Service thread: GET .../downstream for pk/dn (token checked), waiting up to wait_s. */
void gw__http_poll_begin(struct gw__http_conn *c, const char *pk, const char *dn, int wait_s);
/* Service thread: thing.state.update over HTTP (1 = seen now, 2 = gone). */
void gw__http_dev_state(struct gw__http *a, const char *pk, const char *dn, int state);
/* Service thread: a parked poll ends (deadline, close); answers it with [] when answer. */
void gw__http_poll_end(struct gw__http_conn *c, bool answer);
/* Service thread: answers parked polls that have messages now. */
void gw__http_ready_run(struct gw__http *a);
/* Service thread: starts the periodic reachability sweep. */
void gw__http_sweep_start(struct gw__http *a);

/* http_conn.c */
extern const struct lws_protocols gw__http_protocols[];
/* Service thread: starts sending a response (mem taken). */
void gw__http_send(struct gw__http_conn *c, int status, char *mem, size_t len);
/* Service thread: sends the envelope {"code","msg","data"} (data taken). */
void gw__http_send_envelope(struct gw__http_conn *c, int64_t code, const char *msg,
                            cJSON *data);
/* Service thread: answers the requests whose core reply came. */
void gw__http_done_run(struct gw__http *a);

#endif
