#ifndef GW_MQTT_INTERNAL_H
#define GW_MQTT_INTERNAL_H
/*
 * Private to gateway/adapters/mqtt/: the adapter instance, the session table fed by the
 * plugin's presence messages, and the upstream conversion (paho message → gw_msg / session
 * event). See mqtt_adapter.c for the threads and locks.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <MQTTAsync.h>

#include "gw_adapter.h"
#include "gw_codec.h"
#include "gw_core.h"
#include "gw_msg.h"
#include "mqtt_broker.h"

#define GW_MQTT_PRESENCE_PREFIX "$iotgw/presence/"
#define GW_MQTT_PRESENCE_FILTER "$iotgw/presence/+/+"
/* Presence seqs become (link epoch << 40) | broker seq: a restarted broker counts from 1
 * again, but the core needs seqs that only grow (see gw__mqtt_compose_seq). */
#define GW_MQTT_SEQ_BITS 40

/* ---- session table (one entry per device the broker reported online) ----
 * Not thread-safe: the adapter guards it with sess_lock. */
struct gw__mqtt_session {
    struct gw__mqtt_session *next; /* bucket chain */
    uint64_t seq;                  /* composed seq of the device's current connection */
    bool reachable;                /* "subscribed" seen for that connection */
    char key[];                    /* pk '\0' dn '\0' */
};

struct gw__mqtt_sessions {
    struct gw__mqtt_session **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
};

int gw__mqtt_sessions_init(struct gw__mqtt_sessions *s);
void gw__mqtt_sessions_fini(struct gw__mqtt_sessions *s);
void gw__mqtt_sessions_clear(struct gw__mqtt_sessions *s);
/* The entry of (pk, dn) or NULL. Borrowed until removed/cleared. */
struct gw__mqtt_session *gw__mqtt_sessions_find(struct gw__mqtt_sessions *s, const char *pk,
                                                const char *dn);
/* Finds or adds (seq 0, not reachable). NULL on -ENOMEM. */
struct gw__mqtt_session *gw__mqtt_sessions_get(struct gw__mqtt_sessions *s, const char *pk,
                                               const char *dn);
void gw__mqtt_sessions_remove(struct gw__mqtt_sessions *s, struct gw__mqtt_session *e);

/* ---- ordered delivery to the core (mqtt_sessions.c) ---- */

/* One thing to post: a device message (msg set) or a session event (msg NULL). */
struct gw__mqtt_item {
    struct gw__mqtt_item *next; /* park FIFO */
    struct gw_msg *msg;         /* a reference while parked */
    enum gw_session_event ev;
    uint64_t seq; /* composed; also the session handle */
    char pk[GW_MSG_PK_MAX + 1];
    char dn[GW_MSG_DN_MAX + 1];
};

/* ---- the adapter instance ---- */

enum gw__mqtt_link {
    GW__MQTT_LINK_DOWN = 0,    /* not connected; connect at next_connect_ms */
    GW__MQTT_LINK_CONNECTING,  /* MQTTAsync_connect issued */
    GW__MQTT_LINK_CONNECTED,   /* CONNACK received; subscriptions still to send */
    GW__MQTT_LINK_SUBSCRIBING, /* SUBSCRIBE sent */
    GW__MQTT_LINK_UP,          /* subscribed: presence and device messages flow */
};

struct gw__mqtt_adapter {
    struct gw_adapter base; /* must be first */

    /* configuration (immutable after create) */
    char uri[320]; /* tcp://host:port of the broker the client connects to */
    char client_id[160];
    char host[260]; /* spawned broker listener */
    int port;
    bool spawn;
    int max_inflight, max_buffered, keepalive_s;
    int reply_qos; /* QoS of *_reply publishes (requests to devices are QoS 1) */
    int broker_queue_mb; /* spawned broker: per-client queue bound */
    const struct gw_codec_ops *codec; /* downstream serializer */
    char **filters;                   /* the upstream subscription filters */
    int nfilters;
    char secret[GW_MQTT_SECRET_HEX_LEN + 1];

    MQTTAsync client;
    struct gw__mqtt_broker *broker;

    /* lock: link state, the downstream queue, stop */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* wakes the link thread; start waits here for LINK_UP */
    enum gw__mqtt_link link;
    int64_t next_connect_ms;
    int64_t backoff_ms;
    bool stopping;
    bool thread_started;
    bool started;
    bool disconnect_done;
    pthread_t thread;
    struct gw_msg **queue; /* ring of max_buffered references */
    size_t qhead, qlen;
    bool sending; /* the link thread holds one popped message */

    /* sess_lock: the session table, presence ordering, posting to the core */
    pthread_mutex_t sess_lock;
    struct gw__mqtt_sessions sessions;
    uint64_t epoch;                              /* link episodes: +1 at every CONNACK */
    struct gw__mqtt_item *park_head, *park_tail; /* refused by the core, in order */
    size_t park_count;                           /* parked items other than ALL_OFFLINE markers */
    bool draining;                               /* the link thread posts the park head unlocked */
    bool closed;                                 /* stop ran: post nothing more */

    /* statistics (relaxed atomics: read by stats on another thread) */
    struct gw_adapter_counters ctr;
};

/* ---- mqtt_link.c ---- */

/* First reconnect delay; doubles to 30 s while connecting fails. */
#define GW_MQTT_BACKOFF_MIN_MS 500

int64_t gw__mqtt_now_ms(void); /* CLOCK_MONOTONIC */
/* Waits on a->cond (caller holds a->lock) until signalled or deadline_ms. */
void gw__mqtt_wait_until(struct gw__mqtt_adapter *a, int64_t deadline_ms);
/* The upstream subscription filters (malloc'ed; free with gw__mqtt_free_filters). */
int gw__mqtt_build_filters(char ***out, int *count);
void gw__mqtt_free_filters(char **f, int count);
/* The link thread (pthread entry; arg is the adapter). */
void *gw__mqtt_link_main(void *arg);
/* Paho callbacks (MQTTAsync_setCallbacks; ctx is the adapter). */
int gw__mqtt_on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m);
void gw__mqtt_on_connection_lost(void *ctx, char *cause);
/* Broker supervisor callbacks (ctx is the adapter). */
void gw__mqtt_on_broker_exit(void *ctx);
void gw__mqtt_on_broker_ready(void *ctx);

/* ---- mqtt_upstream.c / mqtt_sessions.c ---- */

/* Composes the seq the core sees from the link epoch and the broker's seq. */
uint64_t gw__mqtt_compose_seq(uint64_t epoch, uint64_t broker_seq);

/*
 * Handles one message from the broker (paho thread, from messageArrived): a presence event
 * or a device publish. Returns 1 when the message is consumed (posted, parked, or dropped and
 * counted) and 0 when the park FIFO is full (paho keeps it and calls again).
 */
int gw__mqtt_on_publish(struct gw__mqtt_adapter *a, const char *topic, size_t topic_len,
                        const void *payload, size_t len);

/* Caller holds sess_lock. true when an arrival could not be delivered or parked now. */
bool gw__mqtt_deliver_full(const struct gw__mqtt_adapter *a);
/* Caller holds sess_lock and checked gw__mqtt_deliver_full. Posts it, or parks a copy (with
 * its own msg reference) behind earlier refused items. it is borrowed. */
void gw__mqtt_deliver(struct gw__mqtt_adapter *a, const struct gw__mqtt_item *it);
/* Link thread: posts parked items in order until the core refuses one. Takes sess_lock.
 * true when items remain. */
bool gw__mqtt_drain(struct gw__mqtt_adapter *a);
/* Frees every parked item (stop, after closed is set). Caller holds sess_lock. */
void gw__mqtt_park_clear(struct gw__mqtt_adapter *a);

/* Every session is gone (broker died or our link dropped): clears the table and parks an
 * ALL_OFFLINE for the link thread to post. Takes sess_lock, then lock. Any thread. */
void gw__mqtt_sessions_lost(struct gw__mqtt_adapter *a);

/* For tests: the spawned broker's pid (0 if none) and the port devices connect to. */
pid_t gw__mqtt_adapter_broker_pid(struct gw_adapter *ad);
int gw__mqtt_adapter_port(struct gw_adapter *ad);
/* true while the gateway's broker connection is up and subscribed. */
bool gw__mqtt_adapter_link_up(struct gw_adapter *ad);

#endif
