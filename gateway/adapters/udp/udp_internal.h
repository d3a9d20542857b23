#ifndef GW_UDP_INTERNAL_H
#define GW_UDP_INTERNAL_H
/*
 * Private to gateway/adapters/udp: the adapter instance and its sessions. Loop thread only,
 * except the atomic counters (any thread) and what uv_worker.h guards with its lock.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "adapters/tcp/uv_worker.h"
#include "gw_adapter.h"
#include "gw_codec.h"
#include "gw_config.h"
#include "gw_msg.h"

#define GW_UDP_QUEUE_CAP 4096       /* downstream messages between the core and the loop */
#define GW_UDP_MAX_SESSIONS 100000  /* device sessions; more logins are answered "queue full" */
#define GW_UDP_MAX_PENDING 1024     /* auth/register requests waiting for the core */
#define GW_UDP_PENDING_TTL_MS 10000 /* a request the core never answered is forgotten */
#define GW_UDP_SENDQ_MAX (1u << 20) /* bytes the socket may hold unsent before we drop */
#define GW_UDP_DATAGRAM_MAX 65507   /* largest UDP payload over IPv4 */

enum gw__udp_kind {
    GW__UDP_PENDING = 0, /* an auth/register request waiting for the core's reply */
    GW__UDP_DEVICE,      /* a device that holds a valid token */
};

struct gw__udp_sess {
    uint64_t session; /* first member: the live-set key (uv_worker.h); also the seq */
    enum gw__udp_kind kind;
    char pk[GW_MSG_PK_MAX + 1]; /* DEVICE: identity; PENDING auth: the claimed one */
    char dn[GW_MSG_DN_MAX + 1];
    struct sockaddr_storage addr; /* where replies and downstream messages go */
    int64_t last_ms;              /* last datagram from the device (monotonic) */
    bool announced;               /* the core knows this session (auth bind or REACHABLE) */
    bool in_device_map;
    struct gw__udp_sess *prev, *next;
};

struct gw__udp_adapter {
    struct gw_adapter base; /* first: the common base */
    const struct gw_config_adapter *cfg;
    const struct gw_codec_ops *codec;
    const uint8_t *jwt_secret;
    size_t jwt_secret_len;
    struct gw__uvw w;
    uv_udp_t sock;
    bool sock_init;
    uv_timer_t sweep;
    bool sweep_init;
    bool started;

    /* loop thread */
    struct gw__udp_sess *list;
    size_t n_devices, n_pending;
    void *by_device; /* tsearch: DEVICE session per pk/dn */
    uint8_t rbuf[65536];

    atomic_uint_fast64_t sessions;
    struct gw_adapter_counters ctr;
};

/* udp_session.c (loop thread) */
void gw__udp_on_datagram(struct gw__udp_adapter *a, const uint8_t *buf, size_t len,
                         const struct sockaddr *from);
/* A downstream message for session s (auth replies promote a pending login). Borrows msg. */
void gw__udp_deliver(struct gw__udp_adapter *a, struct gw__udp_sess *s, const struct gw_msg *msg);
/* Expires idle device sessions and unanswered requests. */
void gw__udp_sweep(struct gw__udp_adapter *a);
/* Forgets every session (stop). */
void gw__udp_sessions_clear(struct gw__udp_adapter *a);

/* udp_adapter.c (loop thread): encodes msg (borrowed) and sends it to addr. */
void gw__udp_send(struct gw__udp_adapter *a, const struct sockaddr *addr, const struct gw_msg *msg);

#endif
