#ifndef GW_MSG_H
#define GW_MSG_H
/*
 * The message model (DESIGN §3): one struct gw_msg for every request and reply, whatever
 * protocol and serializer it came over.
 *
 * Memory: a message is ONE allocation: the struct followed by its strings (request_id,
 * product_key, device_name, msg). params and data are cJSON trees owned by the message and
 * freed with it. Reference counted with C11 atomics: gw_msg_ref / gw_msg_unref from any
 * thread; the last unref frees everything.
 *
 * Immutability: a builder (the thread that called gw_msg_new* or a decoder) may still set
 * the scalar fields (device_id, report_time, origin) and call gw_msg_assign_id while it
 * holds the only reference. Once the message is posted to a queue or shared in any other
 * way, nobody writes it again: readers on any thread need no lock. The string pointers are
 * const and point into the allocation (never reassign them).
 *
 * Invariants kept by every builder (so every message can be encoded by every codec):
 *  - method is a known enum gw_method (never GW_METHOD_UNKNOWN);
 *  - request_id, product_key, device_name are never NULL (may be ""), valid UTF-8, no longer
 *    than GW_MSG_REQUEST_ID_MAX / GW_MSG_PK_MAX / GW_MSG_DN_MAX bytes;
 *  - msg is NULL (absent) or valid UTF-8 of at most GW_MSG_TEXT_MAX bytes;
 *  - report_time is within 0..GW_MSG_REPORT_TIME_MAX;
 *  - params is NULL or of a JSON type the method accepts (gw_method.h); data is NULL or any
 *    JSON value; JSON null is stored as NULL (absent); numbers are finite and within
 *    ±GW_MSG_NUMBER_MAX; no object repeats a key; trees nest at most
 *    GW_MSG_TREE_DEPTH_MAX containers deep;
 *  - a message is a reply exactly when has_code is true.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "gw_method.h"
#include "gw_util.h"

#define GW_MSG_ID_LEN 32          /* id: 32 lowercase hex */
#define GW_MSG_REQUEST_ID_MAX 64  /* the device's id, bytes */
#define GW_MSG_PK_MAX 32          /* productKey, bytes (= storage GW_PK_MAX) */
#define GW_MSG_DN_MAX 64          /* deviceName, bytes (= storage GW_DN_MAX) */
#define GW_MSG_TEXT_MAX 1024      /* reply msg, bytes */
/* reportTime: 15 digits at most, the longest integer cJSON prints back exactly */
#define GW_MSG_REPORT_TIME_MAX 999999999999999LL
/*
 * cJSON prints doubles with 15 significant digits when that reads back within an epsilon;
 * near DBL_MAX the rounded text overflows to inf and prints as null. Refusing magnitudes
 * above 1e300 (and inf/nan) keeps decode → encode → decode stable.
 */
#define GW_MSG_NUMBER_MAX 1e300
/* Containers nested in params/data; one less than the parser's limit because the JSON
 * serializer wraps them in the message object. */
#define GW_MSG_TREE_DEPTH_MAX (GW_JSON_MAX_DEPTH - 1)

/* Where a message came from: the adapter instance and its session handle (opaque here). */
struct gw_msg_origin {
    void *adapter;
    uint64_t session;
};

/* Device identity as the session knows it (borrowed strings; NULL = ""). */
struct gw_msg_identity {
    const char *product_key;
    const char *device_name;
    uint64_t device_id; /* 0 = not resolved yet */
};

struct gw_msg {
    atomic_uint refs;            /* private: gw_msg_ref / gw_msg_unref */
    enum gw_method method;
    char id[GW_MSG_ID_LEN + 1];  /* "" until gw_msg_assign_id */
    const char *request_id;      /* the device's id; when it sent none, aliases id */
    const char *product_key;
    const char *device_name;
    uint64_t device_id;
    cJSON *params;               /* request parameters; NULL = absent */
    cJSON *data;                 /* reply payload; NULL = absent */
    bool has_code;               /* true exactly for replies */
    int32_t code;                /* meaningful when has_code */
    const char *msg;             /* reply text; NULL = absent */
    int64_t report_time;         /* epoch ms, 0..GW_MSG_REPORT_TIME_MAX; 0 = absent */
    struct gw_msg_origin origin;
    char strings[];              /* private: inline storage of the strings above */
};

/* Everything a builder needs; unset members are zero/NULL. */
struct gw_msg_fields {
    enum gw_method method;
    const char *request_id;      /* borrowed; NULL or "" = none (then request_id aliases id) */
    struct gw_msg_identity identity;
    cJSON *params;               /* ownership passes to gw_msg_new (even on failure) */
    cJSON *data;                 /* ownership passes to gw_msg_new (even on failure) */
    bool has_code;
    int32_t code;
    const char *msg;             /* borrowed; NULL = absent */
    int64_t report_time;
    struct gw_msg_origin origin;
};

/*
 * Builds a message from f (refs = 1, id empty). Takes ownership of f->params and f->data
 * whatever the outcome. Returns 0, GW_E_UNKNOWN_METHOD, GW_E_BAD_FIELD (too long, number out
 * of range), GW_E_BAD_UTF8, GW_E_BAD_PARAMS (params type), GW_E_BAD_JSON (duplicate key),
 * GW_E_TOO_DEEP or -ENOMEM.
 * Any thread.
 */
int gw_msg_new(const struct gw_msg_fields *f, struct gw_msg **out);

/*
 * A request (no code). request_id, pk, dn are borrowed (NULL = ""); params is taken (may be
 * NULL). Same errors as gw_msg_new. Any thread.
 */
int gw_msg_new_request(enum gw_method method, const char *request_id, const char *pk,
                       const char *dn, cJSON *params, struct gw_msg **out);

/*
 * The reply to req: same method, request_id, identity and origin; code and msg (borrowed,
 * NULL = absent) as given; data taken (may be NULL). req is borrowed. Any thread.
 */
int gw_msg_new_reply(const struct gw_msg *req, int32_t code, const char *msg, cJSON *data,
                     struct gw_msg **out);

/*
 * A new message equal to src (params/data deep-copied, id and request_id kept) but with the
 * identity ident: the session's identity wins over anything the payload said, and a
 * gateway splits a batch into per-sub-device messages with it. src and ident are borrowed.
 */
int gw_msg_copy_with_identity(const struct gw_msg *src, const struct gw_msg_identity *ident,
                              struct gw_msg **out);

/* Adds a reference; returns msg. Any thread. */
struct gw_msg *gw_msg_ref(struct gw_msg *msg);
/* Drops a reference; the last one frees the message. NULL is ignored. Any thread. */
void gw_msg_unref(struct gw_msg *msg);

/*
 * Sets id to 32 lowercase hex, unique in the process and across restarts: a random nonce
 * drawn once per process (kernel CSPRNG), then a counter. The gateway's "acceptance". Only
 * while the caller holds the only reference, once per message. If the device sent no id,
 * request_id becomes this id. Returns 0 or -errno from getrandom (first call only).
 */
int gw_msg_assign_id(struct gw_msg *msg);
/* Same with a caller-supplied sequence: id = 16 hex of hi then 16 hex of lo (e.g. a boot
 * nonce and a counter). Never fails. */
void gw_msg_assign_id_seq(struct gw_msg *msg, uint64_t hi, uint64_t lo);

/* A reply exactly when code is present. */
bool gw_msg_is_reply(const struct gw_msg *msg);
/* "thing.ota.progress". */
const char *gw_msg_method_name(const struct gw_msg *msg);
/* The id put on the wire: request_id, or id when request_id is empty. Never NULL. */
const char *gw_msg_wire_id(const struct gw_msg *msg);

/*
 * true when a and b carry the same content: method, wire id, identity (pk, dn,
 * device_id), code presence and value, msg (NULL and "" differ), report_time, params and
 * data (cJSON_Compare). id and origin are not compared. For tests and round-trip checks.
 */
bool gw_msg_equal_content(const struct gw_msg *a, const struct gw_msg *b);

#endif
