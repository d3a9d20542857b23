#ifndef GW_COAP_INTERNAL_H
#define GW_COAP_INTERNAL_H
/*
 * Private to gateway/adapters/coap/: the adapter instance and the functions shared by
 * coap_adapter.c (lifecycle, the CoAP thread, submit, session events), coap_request.c (POST
 * /auth and /topic, answers that wait for the core), coap_observe.c (Observe registrations,
 * downstream notifications, reachability) and coap_firmware.c (Block2 downloads).
 * Threading rules are in coap_adapter.c's DESIGN comment: unless a function says otherwise,
 * it runs on the CoAP thread (the only thread that calls libcoap).
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <coap3/coap.h>

#include <cjson/cJSON.h>

#include "admin/gw_fwurl.h"
#include "gw_adapter.h"
#include "gw_config.h"
#include "gw_core.h"
#include "gw_msg.h"

/* The reference's custom option carrying the device token (REFERENCE §4.5). */
#define GW_COAP_OPTION_TOKEN 2088
/* Downstream messages and core replies waiting for the CoAP thread (submit: -EAGAIN beyond). */
#define GW_COAP_RING_MAX 4096
/* A request the core has not answered by then gets 5.03 with envelope code 500. */
#define GW_COAP_REPLY_TIMEOUT_MS 10000
/* The thread looks round at least this often (pending deadlines, parked session events). */
#define GW_COAP_IDLE_WAKE_MS 1000
#define GW_COAP_PARK_RETRY_MS 10
#define GW_COAP_CTOKEN_MAX 8 /* CoAP token bytes (RFC 7252) */

/* The two observable resources of a device. */
enum gw__coap_res {
    GW__COAP_RES_UPGRADE = 0, /* /topic/sys/{pk}/{dn}/thing/ota/upgrade: OTA messages */
    GW__COAP_RES_DOWNSTREAM,  /* /topic/sys/{pk}/{dn}/downstream: every downstream message */
    GW__COAP_RES__COUNT
};

/* A parsed /topic/sys/{pk}/{dn}/{tail} path. */
struct gw__coap_topic {
    char pk[GW_MSG_PK_MAX + 1];
    char dn[GW_MSG_DN_MAX + 1];
    const char *tail; /* into the parsed path: the method path, "downstream", ... */
    size_t tail_len;
};

struct gw__coap_dev;
struct gw__coap_pending; /* coap_request.c */

/* One Observe registration (RFC 7641) of a device resource. */
struct gw__coap_obs {
    struct gw__coap_obs *idx_next; /* chain of the (session, token) index */
    struct gw__coap_dev *dev;
    enum gw__coap_res res;
    coap_session_t *session; /* a reference while registered; NULL = none */
    uint8_t token[GW_COAP_CTOKEN_MAX];
    size_t token_len;
    uint32_t observe; /* last Observe value sent (24 bits wrap) */
};

/*
 * A device with at least one registration. The CoAP thread creates, changes and frees
 * entries; it changes the table and `mask` under a->lock so that submit (another thread)
 * can read `mask` under a->lock.
 */
struct gw__coap_dev {
    struct gw__coap_dev *next; /* hash chain */
    char pk[GW_MSG_PK_MAX + 1];
    char dn[GW_MSG_DN_MAX + 1];
    struct gw__coap_obs obs[GW__COAP_RES__COUNT];
    unsigned mask; /* bit (1 << res) per live registration */
    uint64_t seq;  /* the REACHABLE seq the core knows it by */
};

/* A session event the core refused (-EAGAIN): retried in order. */
struct gw__coap_sev {
    struct gw__coap_sev *next;
    enum gw_session_event ev;
    uint64_t seq;
    char pk[GW_MSG_PK_MAX + 1];
    char dn[GW_MSG_DN_MAX + 1];
};

struct gw__coap {
    struct gw_adapter base; /* must be first */

    /* configuration (immutable after create) */
    struct gw_config_addr listen;
    struct gw_config_addr dtls; /* host "" = no DTLS listener */
    unsigned block_szx;         /* Block2 SZX of coap.block_size (16 << szx bytes) */
    const uint8_t *jwt_secret;  /* the core's; constant */
    size_t jwt_len;
    uint8_t dl_key[GW_FWURL_KEY_LEN];
    char fw_dir[PATH_MAX];                 /* <data_dir>/firmware */
    char url_host[GW_CONFIG_HOST_MAX + 2]; /* host of coap:// firmware URLs; "" = the http one */
    char dtls_url_host[GW_CONFIG_HOST_MAX + 2]; /* same for coaps:// */
    int port;                                   /* the bound UDP port */
    int dtls_port;                              /* the bound DTLS port, 0 = none */

    /* libcoap and the thread: created by start, used only by the thread until it is joined */
    coap_context_t *ctx;
    int epfd, wakefd;
    pthread_t thread;
    bool thread_started;
    coap_resource_t *res_unknown;

    /* CoAP thread only */
    uint8_t psk[64]; /* the PSK handed to libcoap for the handshake at hand */
    coap_bin_const_t psk_key;
    uint64_t next_handle; /* request handles and session seqs; only grow */
    void *pending;        /* tsearch tree of struct gw__coap_pending, by handle */
    struct gw__coap_pending *pend_head, *pend_tail; /* the same, by deadline */
    size_t n_pending;
    struct gw__coap_sev *park_head, *park_tail;
    struct gw__coap_obs **obs_idx; /* (session, token) → registration */
    size_t obs_nb;                 /* buckets, power of two */
    size_t n_obs;

    /* lock: the ring, stopping, the device table structure and masks */
    pthread_mutex_t lock;
    bool stopping;
    struct gw_msg **ring;
    size_t rhead, rlen;
    struct gw__coap_dev **devs; /* hash buckets, power of two */
    size_t dev_nb, n_devs;

    /* statistics (relaxed atomics: stats reads them on another thread) */
    struct gw_adapter_counters ctr;
};

/* ---- coap_adapter.c ---- */
int64_t gw__coap_mono_ms(void);
int64_t gw__coap_wall_ms(void);
/* A fresh request handle / session seq (larger than every earlier one). */
uint64_t gw__coap_handle(struct gw__coap *a);
/* Posts a session event, or parks it behind earlier refused ones (kept in order). */
void gw__coap_session_event(struct gw__coap *a, enum gw_session_event ev, const char *pk,
                            const char *dn, uint64_t seq);
/* The adapter of a libcoap session / context (set with coap_set_app_data). */
struct gw__coap *gw__coap_from_session(const coap_session_t *s);
/* Binds a UDP or DTLS endpoint on addr; *port gets the bound port. Logs its failure. */
int gw__coap_endpoint(struct gw__coap *a, const struct gw_config_addr *addr, coap_proto_t proto,
                      int *port);

/* ---- coap_request.c ---- */
/* Registers /auth and the unknown-resource handlers (topic, firmware) on a->ctx. */
int gw__coap_resources_init(struct gw__coap *a);
/* A reply from the core (taken: one reference): answers its waiting request. */
void gw__coap_on_reply(struct gw__coap *a, struct gw_msg *reply);
/* Answers waiting requests whose deadline passed (all of them when all is set). */
void gw__coap_pending_expire(struct gw__coap *a, int64_t now_ms, bool all);
/* Milliseconds until the next pending deadline (capped at cap_ms). */
int gw__coap_pending_wait_ms(struct gw__coap *a, int64_t now_ms, int cap_ms);
/* Frees every pending request (after the thread stopped). */
void gw__coap_pending_free(struct gw__coap *a);
/*
 * Fills resp with the JSON envelope {"code","msg","data"} and the CoAP code that goes with
 * the envelope code (0 → 2.05, 400 → 4.00, 401 → 4.01, ...). data borrowed (NULL = null).
 * resource may be NULL (small bodies only); with it, large bodies go out with Block2.
 */
void gw__coap_respond(coap_resource_t *resource, coap_session_t *session, const coap_pdu_t *request,
                      coap_pdu_t *resp, int64_t code, const char *msg, const cJSON *data);
/* Same for a local error code (GW_E_*, -errno). */
void gw__coap_respond_err(coap_resource_t *resource, coap_session_t *session,
                          const coap_pdu_t *request, coap_pdu_t *resp, int err);
/* Checks who sends request for t's identity: the option-2088 token, or on a DTLS session
 * its PSK identity "pk.dn" (which then must be t's; a token is not needed). 0,
 * GW_E_NOT_AUTHENTICATED, GW_E_TOKEN_* (401) or GW_E_IDENTITY_MISMATCH (403). */
int gw__coap_check_token(struct gw__coap *a, const coap_session_t *session,
                         const coap_pdu_t *request, const struct gw__coap_topic *t);

/* ---- coap_observe.c ---- */
int gw__coap_observe_init(struct gw__coap *a);
/* Releases every registration and device (after the thread stopped). */
void gw__coap_observe_fini(struct gw__coap *a);
/* GET on a device resource (token already checked): register, deregister or answer. */
void gw__coap_observe_get(struct gw__coap *a, coap_session_t *session, const coap_pdu_t *req,
                          const struct gw__coap_topic *t, enum gw__coap_res res, coap_pdu_t *resp);
/* libcoap nack handler: a notification was refused (RST) or never acknowledged. */
void gw__coap_on_nack(coap_session_t *session, const coap_pdu_t *sent,
                      const coap_nack_reason_t reason, const coap_mid_t mid);
/* Sends msg (taken) to its device as a notification, or drops it (counted). */
void gw__coap_deliver(struct gw__coap *a, struct gw_msg *msg);
/* The auth reply for (pk, dn) with request handle h came back with code 0. */
void gw__coap_after_auth(struct gw__coap *a, const char *pk, const char *dn, uint64_t h);
/* Caller holds a->lock. The resource msg would go out on, or -1 when the device has no
 * registration that takes it. Any thread. */
int gw__coap_route_locked(struct gw__coap *a, const struct gw_msg *msg);
/* Caller holds a->lock. Devices with a live registration. Any thread. */
size_t gw__coap_reachable_locked(struct gw__coap *a);

/* ---- coap_dtls.c ---- */
/* Sets up PSK and opens the DTLS endpoint when dtls_listen is set (0 when it is not). */
int gw__coap_dtls_open(struct gw__coap *a);

/* ---- coap_firmware.c ---- */
/* GET /ota/firmware/{firmwareId}/{recordId}?token=T (path without the leading '/'). */
void gw__coap_firmware_get(struct gw__coap *a, coap_resource_t *resource, coap_session_t *session,
                           const coap_pdu_t *req, const coap_string_t *query, const char *path,
                           size_t path_len, coap_pdu_t *resp);

#endif
