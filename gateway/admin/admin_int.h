#ifndef GW_ADMIN_INT_H
#define GW_ADMIN_INT_H
/*
 * Internals shared by the admin files (not for other modules). Threads:
 *  - the lws thread (admin_server.c, admin_fwserve.c) parses HTTP, authenticates, receives
 *    bodies (uploads stream into a struct gw_adm_blob there), writes responses and serves
 *    firmware files;
 *  - the worker threads (admin_worker.c) run the route handlers (admin_dev.c, admin_fw.c,
 *    admin_task.c) on a struct gw_adm_req they own while it is queued to them;
 *  - pure helpers (admin_args.c, fwurl.c) run anywhere.
 * A request is owned by exactly one thread at a time; it moves lws → worker → lws through
 * the two queues of struct gw_admin (mutex-protected) and lws_cancel_service().
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <mbedtls/md5.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>

#include "gw_fwurl.h"

struct gw_core;
struct gw_config;
struct gw_txn;
struct lws_context;
struct lws_vhost;

#define GW_ADM_PREFIX "/admin-api/iot/"
#define GW_ADM_JSON_MAX (64 * 1024)            /* JSON request bodies */
#define GW_ADM_JSON_BIG (8 * 1024 * 1024)      /* ota/task/create: long deviceIds lists */
#define GW_ADM_WORKERS 4
#define GW_ADM_QUEUE_MAX 64     /* requests waiting for a worker; more → 503 */
#define GW_ADM_QUERY_MAX 32     /* query parameters per request */
#define GW_ADM_TOKEN_MAX 256    /* admin token bytes */
#define GW_ADM_ERRMSG_MAX 256
#define GW_ADM_PAGE_SIZE_MAX 200
#define GW_ADM_CALL_TIMEOUT_MS 120000 /* a core command (a task over 100k devices included) */
#define GW_ADM_FETCH_TIMEOUT_MS 120000
/* device/message/send waits at most this long; a shutdown waits for such a worker too. */
#define GW_ADM_SEND_TIMEOUT_MAX 60000

enum gw_adm_verb {
    GW_ADM_GET = 1,
    GW_ADM_POST = 2,
    GW_ADM_PUT = 4,
    GW_ADM_HEAD = 8,
    GW_ADM_OTHER = 16,
};

struct gw_admin {
    struct gw_core *core;
    const struct gw_config *cfg;
    char data_dir[PATH_MAX];
    char fw_dir[PATH_MAX];               /* <data_dir>/firmware */
    char token[GW_ADM_TOKEN_MAX + 1];    /* the admin token */
    size_t token_len;
    char token_path[PATH_MAX];           /* "" when the token comes from the config */
    uint8_t dl_key[GW_FWURL_KEY_LEN];    /* download key (gw_fwurl.h) */
    char base_url[512];                  /* firmware.base_url without a trailing '/' */
    uint64_t upload_max;

    bool sign_on;                        /* firmware.sign_key loaded */
    mbedtls_pk_context sign_pk;
    pthread_mutex_t sign_lock;           /* mbedTLS caches EC tables in the key: one signer */
    pthread_mutex_t fw_lock;             /* serialises firmware ingest (file + row) */

    /* lws thread */
    struct lws_context *lws;
    struct lws_vhost *vhost;
    int port;
    pthread_t lws_thread;
    bool lws_started;
    atomic_bool stopping;

    /* worker pool: todo (lws → workers) and done (workers → lws) under qlock */
    pthread_t workers[GW_ADM_WORKERS];
    int nworkers;
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    struct gw_adm_req *todo_head, *todo_tail;
    size_t todo_n;
    struct gw_adm_req *done_head, *done_tail;
    bool workers_stop;
    bool stopped;
};

struct gw_adm_kv {
    char *key;
    char *val;
};

/* A firmware image being received into a private temp file under fw_dir, hashed as it
 * arrives (never held in memory). */
struct gw_adm_blob {
    char tmp_path[PATH_MAX];
    int fd;
    uint64_t size;
    int error;                 /* first write error (-errno), sticky */
    mbedtls_md5_context md5;
    mbedtls_sha256_context sha;
    char md5_hex[33];          /* set by gw__adm_blob_finish */
    char sha256_hex[65];
};

struct gw_adm_req;
typedef int (*gw_adm_handler_fn)(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
/* Checks a request's query before its body is accepted (lws thread, no store access). */
typedef int (*gw_adm_precheck_fn)(struct gw_adm_req *req);

enum gw_adm_body {
    GW_ADM_BODY_NONE = 0, /* arguments in the query only */
    GW_ADM_BODY_JSON,     /* JSON object body (≤ GW_ADM_JSON_MAX) plus the query */
    GW_ADM_BODY_UPLOAD,   /* raw body streamed into a blob, arguments in the query */
};

struct gw_adm_route {
    const char *path;     /* after GW_ADM_PREFIX */
    unsigned verbs;       /* enum gw_adm_verb mask */
    enum gw_adm_body body;
    gw_adm_handler_fn fn;
    gw_adm_precheck_fn precheck; /* NULL = none */
    size_t json_max;      /* BODY_JSON limit; 0 = GW_ADM_JSON_MAX */
};

struct gw_adm_req {
    struct gw_adm_req *next;   /* queue link */
    void *conn;                /* lws thread only: the connection, NULL once it closed */
    const struct gw_adm_route *route;
    int verb;
    struct gw_adm_kv query[GW_ADM_QUERY_MAX];
    size_t nquery;
    char *body;                /* JSON body, NUL-terminated; NULL = none */
    size_t body_len, body_cap;
    struct gw_adm_blob *blob;  /* BODY_UPLOAD: the received image */
    cJSON *json;               /* parsed body (worker) */
    char errmsg[GW_ADM_ERRMSG_MAX]; /* names the field at fault; "" = gw_strerror */
    /* the response */
    int http_status;
    char *resp;                /* JSON text */
    size_t resp_len;
};

/* ---- admin_args.c: requests, arguments and the envelope (pure) ---- */

struct gw_adm_req *gw__adm_req_new(void);
void gw__adm_req_free(struct gw_adm_req *req);
/* Adds one decoded "name=value" query fragment. -E2BIG beyond GW_ADM_QUERY_MAX, -ENOMEM. */
int gw__adm_query_add(struct gw_adm_req *req, const char *frag);
/* The value of a query parameter (first occurrence) or NULL. */
const char *gw__adm_query_get(const struct gw_adm_req *req, const char *name);

/* Sets req->errmsg and returns err. */
int gw__adm_fail(struct gw_adm_req *req, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Argument getters: look in the JSON body first, then in the query. Absent (or JSON null)
 * and not required → 0 with *out untouched. Absent and required → GW_E_MISSING_FIELD,
 * wrong type/range → GW_E_BAD_FIELD, too long → GW_E_VALUE_TOO_LONG, each with errmsg naming
 * the field. Integers accept JSON integers and decimal strings; ids are 1..2^53.
 */
int gw__adm_arg_id(struct gw_adm_req *req, const char *name, bool required, uint64_t *out);
int gw__adm_arg_int(struct gw_adm_req *req, const char *name, bool required, int64_t min,
                    int64_t max, int64_t *out);
int gw__adm_arg_double(struct gw_adm_req *req, const char *name, bool required, double min,
                       double max, double *out);
/* *out points into the request (valid while it lives). maxlen in bytes; UTF-8 checked. */
int gw__adm_arg_str(struct gw_adm_req *req, const char *name, bool required, size_t maxlen,
                    const char **out);
/* Copies into a fixed array of size cap (maxlen = cap - 1). */
int gw__adm_arg_strcpy(struct gw_adm_req *req, const char *name, bool required, char *dst,
                       size_t cap);
/* A JSON array of ids (body only). *ids malloc'ed (caller frees), *n its length. */
int gw__adm_arg_id_list(struct gw_adm_req *req, const char *name, bool required,
                        uint64_t **ids, size_t *n);

/* Paging: pageNo ≥ 1 (default 1), pageSize 1..200 (default 10). */
struct gw_adm_page {
    uint64_t skip;   /* rows before the page */
    uint64_t size;
    uint64_t total;  /* rows matched so far */
    cJSON *list;
};
int gw__adm_page_begin(struct gw_adm_req *req, struct gw_adm_page *pg);
/* Counts one matching row; true when it belongs on the page. */
bool gw__adm_page_take(struct gw_adm_page *pg);
/* {"list":[...],"total":N}; takes pg->list. NULL on -ENOMEM. */
cJSON *gw__adm_page_end(struct gw_adm_page *pg);

/* A JSON number from a u64 (ids stay below 2^53) / an i64; NULL on -ENOMEM. */
bool gw__adm_add_u64(cJSON *obj, const char *name, uint64_t v);
bool gw__adm_add_i64(cJSON *obj, const char *name, int64_t v);

/* The envelope {"code","msg","data"} as text; data is taken (may be NULL → null).
 * Returns 0 or -ENOMEM. */
int gw__adm_envelope(int64_t code, const char *msg, cJSON *data, char **out, size_t *len);
/* The HTTP status for an envelope code: 400, 401, 403, 404, 405, 411, 413, 500, 503 map
 * to themselves, business codes and 0 to 200. */
int gw__adm_http_status(int64_t code);
/*
 * Fills req->resp/http_status from a handler's result: rc 0 → code 0 and data (taken);
 * else the envelope code of rc (gw_error_api_code) with errmsg or gw_strerror(rc).
 * GW_E_TIMEOUT from a device → HTTP 504. Returns 0 or -ENOMEM.
 */
int gw__adm_respond(struct gw_adm_req *req, int rc, cJSON *data);
/* An error envelope with an explicit code and message (lws-thread errors). */
int gw__adm_respond_code(struct gw_adm_req *req, int64_t code, const char *msg);

/* Decimal u64 of exactly s[0..len) (no sign, no spaces, no overflow). */
bool gw__adm_parse_u64(const char *s, size_t len, uint64_t *out);
/* "Bearer <token>" check in constant time. hdr may be NULL. */
bool gw__adm_bearer_ok(const char *hdr, const char *token, size_t token_len);

/*
 * Range header of a GET on a body of `size` bytes (RFC 9110 §14, one range only):
 * returns 0 = serve everything (no header, or one we ignore such as several ranges or
 * another unit), 1 = partial [*first, *last], -1 = unsatisfiable (416).
 */
int gw__adm_range_parse(const char *hdr, uint64_t size, uint64_t *first, uint64_t *last);

/* ---- fwurl.c ---- */

/* Constant-time equality of a[0..alen) and b[0..blen) (length is not secret). */
bool gw__adm_ct_equal(const char *a, size_t alen, const char *b, size_t blen);
/*
 * Reads the secret in path (trailing whitespace trimmed) into out[outlen]; when the file is
 * missing, creates it (mode 0600) with gen_bytes random bytes as lowercase hex. *created
 * (may be NULL) tells which. Returns 0, -EINVAL (empty or longer than outlen - 1), -errno.
 */
int gw__adm_secret_load(const char *path, size_t gen_bytes, char *out, size_t outlen,
                        bool *created);

/* ---- admin_blob.c: firmware images (any thread that owns the blob) ---- */

/* A new temp file in dir. */
int gw__adm_blob_begin(const char *dir, struct gw_adm_blob **out);
/* Appends and hashes; the first error is kept in blob->error and returned again. */
int gw__adm_blob_write(struct gw_adm_blob *blob, const void *buf, size_t len);
/* Finishes the digests (md5_hex, sha256_hex) and fsyncs the file. */
int gw__adm_blob_finish(struct gw_adm_blob *blob);
/* Moves the finished file to dir/<sha256> (an existing file of that name already has this
 * content and is kept). The blob is freed in any case. */
int gw__adm_blob_commit(struct gw_adm_blob *blob, const char *dir);
/* Removes the temp file and frees. NULL is fine. */
void gw__adm_blob_discard(struct gw_adm_blob *blob);
/* Copies a local file (file:// source) into a new blob, at most max bytes. */
int gw__adm_blob_from_file(const char *dir, const char *path, uint64_t max,
                           struct gw_adm_blob **out, char *err, size_t errlen);
/* Base64 DER ECDSA P-256 signature of the SHA-256 (hex) into out[cap]. */
int gw__adm_sign(struct gw_admin *adm, const char *sha256_hex, char *out, size_t cap);
/* Loads firmware.sign_key (PEM or DER, an EC P-256 private key). Logs the reason. */
int gw__adm_sign_load(struct gw_admin *adm, const char *path);

/* ---- admin_fetch.c ---- */

/* GETs an http:// URL into a new blob (its own short-lived lws client context, on the
 * calling worker thread). Returns 0 or an error with err describing it. */
int gw__adm_fetch_http(const char *dir, const char *url, uint64_t max, int timeout_ms,
                       struct gw_adm_blob **out, char *err, size_t errlen);

/* ---- admin_worker.c ---- */

int gw__adm_workers_start(struct gw_admin *adm);
/* Joins the workers; queued requests are answered with GW_E_SHUTDOWN. */
void gw__adm_workers_stop(struct gw_admin *adm);
/* Frees what is left in both queues (after the workers and the lws context are gone). */
void gw__adm_queues_free(struct gw_admin *adm);
/* Queues req for a worker (lws thread). -EAGAIN when GW_ADM_QUEUE_MAX are waiting. */
int gw__adm_submit(struct gw_admin *adm, struct gw_adm_req *req);
/* Takes the list of answered requests (lws thread), linked through next. */
struct gw_adm_req *gw__adm_take_done(struct gw_admin *adm);
/* ---- admin_server.c ---- */

/* Wakes the lws thread (any thread). */
void gw__adm_wake(struct gw_admin *adm);
/* Creates the lws context (binds) and starts its thread. */
int gw__adm_server_start(struct gw_admin *adm);
/* Stops and joins the lws thread (the context stays: connections may point at requests). */
void gw__adm_server_stop(struct gw_admin *adm);
/* Destroys the lws context (closing connections). After the workers are joined. */
void gw__adm_server_destroy(struct gw_admin *adm);

/* ---- routes (admin_routes.c) ---- */

const struct gw_adm_route *gw__adm_route_find(const char *path);
/* Runs the route's handler and fills the response (worker thread). */
void gw__adm_dispatch(struct gw_admin *adm, struct gw_adm_req *req);

/* ---- handlers (worker threads) ---- */

int gw__adm_product_create(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_product_get(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_product_page(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_device_create(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_device_get(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_device_page(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_device_send(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);

int gw__adm_fw_upload_check(struct gw_adm_req *req);
int gw__adm_fw_upload(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_fw_create(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_fw_update(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_fw_get(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_fw_page(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
/* The firmware row as the API shows it (fileUrl made absolute). NULL on -ENOMEM. */
struct gw_firmware;
cJSON *gw__adm_fw_json(const struct gw_admin *adm, const struct gw_firmware *fw);

int gw__adm_task_create(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_task_cancel(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_task_get(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_task_page(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_record_get(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_record_page(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_record_cancel(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_record_stats(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);
int gw__adm_record_history(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data);

/* A read transaction on the calling thread (store errors logged). */
int gw__adm_read_begin(struct gw_admin *adm, struct gw_txn **out);

/*
 * gw_core_call with the admin's timeout (worker threads). arg must be heap memory the
 * caller frees afterwards, EXCEPT when GW_E_TIMEOUT is returned: the core may still run fn
 * later, so the caller then leaves arg allocated (a logged, bounded leak beats a
 * use-after-free).
 */
struct gw_core_ctx;
int gw__adm_call(struct gw_admin *adm, int (*fn)(struct gw_core_ctx *ctx, void *arg),
                 void *arg);

#endif
