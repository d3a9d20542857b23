#ifndef SIM_H
#define SIM_H
/*
 * iotgw-sim: simulated devices for the gateway (issue 7). Internal header shared by the files
 * of tools/iotgw-sim/ (not a library: nothing here is installed or used elsewhere).
 *
 * Threads: everything runs on the main thread, in one libuv loop that also drives
 * libwebsockets (lws "foreign loop" mode) for the HTTP clients and the WebSocket devices, and
 * libcoap (its epoll fd in a uv_poll) for the CoAP devices.
 * Modbus devices (sim_modbus.c) dial in to the gateway over libuv TCP and then serve as
 * Modbus slaves on that connection (DESIGN §5.6 OTA registers: sim_modbus_regs.c).
 * The one exception is paho MQTTAsync, whose callbacks run on paho's own thread: they only
 * copy what they got into a struct sim_ev and hand it to the loop (sim_ev_post, any
 * thread). Every other function here is main-thread only.
 *
 * Ownership: struct sim owns the device array (allocated once, never moved, so a
 * struct sim_dev pointer stays valid for the whole run); each protocol module owns the
 * connection object it hangs on dev->conn and frees it itself.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>
#include <uv.h>

struct lws_context;
struct lws_protocols;
struct lws;
struct sim;
struct sim_dev;
struct sim_dl;

#define SIM_PK_MAX 32
#define SIM_DN_MAX 64
#define SIM_SECRET_MAX 64
#define SIM_VERSION_MAX 32
#define SIM_URL_MAX 512

enum sim_proto { SIM_MQTT, SIM_TCP, SIM_UDP, SIM_WS, SIM_HTTP, SIM_COAP, SIM_MODBUS, SIM_PROTO_N };

/* What a device does with an upgrade (shares chosen by flags, assigned deterministically). */
enum sim_beh {
    SIM_BEH_OK,     /* downloads, verifies, reports steps, success */
    SIM_BEH_FAIL,   /* downloads, verifies, then reports failure */
    SIM_BEH_SILENT, /* never reports anything about the upgrade (exercises timeouts) */
    SIM_BEH_DROP,   /* drops its link in the middle of the download, reconnects, resumes */
    SIM_BEH_SLOW,   /* downloads at --slow-rate bytes/s */
    SIM_BEH_N
};

enum sim_link { SIM_LINK_DOWN, SIM_LINK_CONNECTING, SIM_LINK_UP };

enum sim_ota {
    SIM_OTA_NONE,        /* no upgrade received */
    SIM_OTA_QUEUED,      /* waiting for a download slot */
    SIM_OTA_DOWNLOADING, /* download running */
    SIM_OTA_PAUSED,      /* download interrupted on purpose, resumes when the link is back */
    SIM_OTA_SUCCESS,     /* reported status 30 */
    SIM_OTA_FAILED,      /* reported status 40 (simulated or verification failure) */
    SIM_OTA_IGNORED,     /* silent device that received its upgrade */
};

struct sim_dev {
    struct sim *sim;
    uint32_t idx;
    uint8_t proto;  /* enum sim_proto */
    uint8_t beh;    /* enum sim_beh */
    uint8_t link;   /* enum sim_link */
    uint8_t ota;    /* enum sim_ota */
    bool finished;  /* its part of the run is over (wave mode frees its slot) */
    bool want_link; /* reconnect when the link drops */
    bool dropped;   /* the mid-download drop already happened */
    bool in_connq;  /* waiting in sim.connq */
    bool final_pending; /* the final progress report waits for the link */
    bool leaving;   /* waiting in sim.leaveq */
    uint8_t last_step;
    uint32_t gen;      /* connection generation: events of an older connection are ignored */
    uint32_t seq;      /* message id counter */
    uint32_t retries;  /* connect attempts of the current link */
    uint64_t id;       /* device id in the gateway */
    char pk[SIM_PK_MAX + 1];
    char dn[SIM_DN_MAX + 1];
    char secret[SIM_SECRET_MAX + 1];
    char version[SIM_VERSION_MAX + 1]; /* target of the upgrade being handled */
    char *token;       /* UDP / HTTP session token (owned) */
    void *conn;        /* protocol connection object (owned by the protocol module) */
    void *pstate;      /* protocol state that outlives a connection (Modbus registers and
                        * transfer; owned by the protocol module, freed by its fini) */
    struct sim_dl *dl; /* the download of the upgrade being handled (sim_dl.c) */
    int64_t t_link_ms;    /* when the link came up */
    int64_t t_upgrade_ms; /* when the (first) upgrade arrived */
    int64_t leave_at_ms;  /* wave mode: when it disconnects for good */
    struct sim_dev *qnext; /* link in one of the sim's FIFO queues */
};

/* A FIFO of devices (connect queue, download queue). */
struct sim_devq {
    struct sim_dev *head, *tail;
    uint32_t n;
};

/* One protocol: the module's functions (main thread). */
struct sim_proto_ops {
    const char *name;
    /* Once, before any device connects; endpoint is the --<proto>-url value. */
    int (*init)(struct sim *s, const char *endpoint);
    /* Opens the device's link and logs in; ends in sim_dev_link_up or sim_dev_link_down. */
    int (*connect)(struct sim_dev *d);
    /* Sends one upstream request {id, method, params}; params borrowed. 0 or an error. */
    int (*send)(struct sim_dev *d, const char *id, const char *method, const cJSON *params);
    /* Sends the reply to a downstream request. */
    int (*reply)(struct sim_dev *d, const char *id, const char *method, int code);
    /* Drops the link (no sim_dev_link_down call for a drop asked for). */
    void (*disconnect)(struct sim_dev *d);
    /* Frees what init allocated (all links are down). */
    void (*fini)(struct sim *s);
    /* The gateway drives the device's upgrade itself (Modbus, DESIGN §5.6): no
     * thing.ota.upgrade reaches it and it sends no thing.ota.progress. */
    bool ota_by_gateway;
};

extern const struct sim_proto_ops sim_mqtt_ops, sim_tcp_ops, sim_udp_ops, sim_ws_ops,
    sim_httpdev_ops, sim_coap_ops, sim_modbus_ops;

/* ---- options (sim_opts.c) ---- */

struct sim_opts {
    char admin_url[SIM_URL_MAX];  /* http://host:port of the admin API */
    char admin_token[256];
    char endpoint[SIM_PROTO_N][SIM_URL_MAX];
    uint32_t count[SIM_PROTO_N];  /* devices per protocol */
    char creds_in[SIM_URL_MAX];   /* read devices from this JSON file instead of creating them */
    char creds_out[SIM_URL_MAX];  /* write the devices used to this JSON file */
    char product[64];             /* product name when creating */
    char prefix[32];              /* device name prefix */
    double prop_rate;             /* property posts per second, all devices together */
    double share[SIM_BEH_N];      /* behaviour shares (OK = the rest) */
    uint32_t slow_rate;           /* bytes/s of a slow download */
    double storm_at_s;            /* reconnect storm this long after all devices are online */
    double storm_share;           /* share of online devices that drop and reconnect */
    char fw_file[SIM_URL_MAX];    /* firmware image to upload */
    uint64_t fw_size;             /* or: random image of this size */
    char fw_version[SIM_VERSION_MAX + 1];
    bool task;                    /* create a task for every device of the run */
    int64_t push_timeout_s, upgrade_timeout_s, max_retries; /* task overrides, -1 = default */
    uint32_t max_online;          /* wave mode: devices connected at once (0 = all) */
    uint32_t connect_rate;        /* new connections per second (0 = as fast as possible) */
    uint32_t connect_parallel;    /* connections being set up at once */
    uint32_t max_downloads;       /* downloads at once */
    uint32_t admin_parallel;      /* admin requests at once */
    uint32_t progress_steps;      /* progress reports during the download */
    double duration_s;            /* hold the sessions this long once everything else is done */
    double timeout_s;             /* bound on the whole run */
    uint32_t qos;                 /* MQTT QoS of upstream messages */
    char json_out[SIM_URL_MAX];   /* final summary file ("" = stdout) */
    bool quiet;                   /* no live line */
    bool no_connect;              /* provision (and --save-creds), then stop */
    char ready_file[SIM_URL_MAX]; /* created once every device is online */
    uint32_t seed;
    double udp_loss;              /* share of outgoing UDP datagrams dropped on purpose */
    uint32_t modbus_ota_base;     /* first holding register of the §5.6 block */
    char modbus_config[SIM_URL_MAX]; /* write the modbus_tcp_server adapter block here */
};

int sim_opts_parse(int argc, char **argv, struct sim_opts *o);
void sim_opts_usage(FILE *f);

/* ---- the run (struct sim) ---- */

enum sim_phase {
    SIM_PH_PROVISION, SIM_PH_UPLOAD, SIM_PH_TASK_EARLY, SIM_PH_CONNECT, SIM_PH_TASK,
    SIM_PH_RUN, SIM_PH_HOLD, SIM_PH_FINAL, SIM_PH_STOP, SIM_PH_DONE
};

/* Counters (main thread). */
struct sim_counts {
    uint64_t sent, received, send_errors, replies_err;
    uint64_t connects, connect_fail, link_lost, auth_fail;
    uint64_t upgrades, dup_upgrades, upgraded, failed, ignored, verify_fail;
    uint64_t dl_started, dl_done, dl_resumed, dl_errors, dl_bytes;
    uint32_t online[SIM_PROTO_N], online_max[SIM_PROTO_N];
    uint32_t up_ok[SIM_PROTO_N], up_fail[SIM_PROTO_N];
    uint32_t slow_dl_n[SIM_PROTO_N];       /* completed downloads of slow devices */
    double slow_dl_ms_min[SIM_PROTO_N];    /* and the shortest of them */
    /* UDP: requests sent again for lack of a reply, blind copies of progress reports,
     * datagrams dropped by --udp-loss, replies to a request already settled (ignored),
     * requests never answered */
    uint64_t udp_rtx, udp_repeats, udp_lost, udp_late, udp_unanswered;
    /* Modbus: blocks accepted, out-of-order blocks refused (exception 3), other exception
     * answers, transfers the gateway restarted with CTRL=1 instead of resuming, transfers
     * resumed on a new connection */
    uint64_t mb_blocks, mb_out_of_order, mb_exceptions, mb_restarts, mb_resumed;
};

struct sim_firmware {
    uint64_t id;
    uint64_t size;
    char md5[33], sha256[65];
    char version[SIM_VERSION_MAX + 1];
};

struct sim {
    struct sim_opts o;
    uv_loop_t *loop;
    struct lws_context *lws;
    int rc;                /* exit code */
    enum sim_phase phase;
    char *problems;        /* '\n'-separated problems found (owned) */

    struct sim_dev *devs;  /* n devices, protocol by protocol */
    uint32_t n;
    uint64_t product_id;
    char product_key[SIM_PK_MAX + 1];
    struct sim_firmware fw;
    uint8_t *fw_bytes;      /* the image being uploaded (owned) */
    size_t fw_len;
    bool own_product;       /* created by this run: scope 1 covers exactly our devices */
    bool task_sent, final_sent, stop_entered, connect_started;
    uint64_t task_id;
    int task_status;
    uint64_t task_counts[6]; /* records per status 0,10,20,30,40,50 at the latest poll */
    cJSON *task_final;     /* the task as the admin API showed it at the end (owned) */

    struct sim_devq connq; /* devices waiting to connect */
    struct sim_devq dlq;   /* devices waiting for a download slot */
    struct sim_devq leaveq; /* wave mode: finished devices about to disconnect */
    uint32_t connecting, linked, downloads;
    uint32_t conns_alive;   /* protocol connection objects not yet freed (end of run waits) */
    uint32_t n_expect_done; /* devices that take part in the upgrade */
    uint32_t n_done;        /* of those, the ones that finished */
    uint32_t beh_count[SIM_BEH_N];

    struct sim_counts c;
    int64_t t_gw_online_ms; /* the gateway's admin API showed every device online */
    int64_t t0_ms, t_connect_ms, t_online_ms, t_task_ms, t_task_end_ms, t_hold_ms, t_storm_ms;
    bool storm_done, all_online_seen;
    double *lat_ms;         /* push latencies (task creation or link-up → upgrade) */
    uint32_t n_lat;
    double *dl_ms;          /* download durations */
    uint32_t n_dl;

    uv_timer_t tick;        /* 10 ms: connect pacing, property posts, phase checks */
    uv_timer_t report;      /* 1 s: live line */
    uv_async_t wake;        /* paho → loop */
    uv_signal_t sigint, sigterm;
    double prop_credit;
    uint32_t prop_cursor;
    uint64_t last_sent;
    int64_t last_report_ms;
    uint32_t pending_admin; /* admin requests in flight for the current phase */
    uint32_t next_to_create;
    int64_t last_poll_ms, last_tick_ms, stop_ms;
    bool poll_busy;
};

int64_t sim_now_ms(void);      /* CLOCK_MONOTONIC */
int64_t sim_wall_ms(void);     /* CLOCK_REALTIME */
void sim_problem(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const struct sim_proto_ops *sim_proto(enum sim_proto p);
const char *sim_proto_name(enum sim_proto p);
void sim_devq_push(struct sim_devq *q, struct sim_dev *d);
struct sim_dev *sim_devq_pop(struct sim_devq *q);

/* ---- events from other threads (sim_main.c) ---- */

enum sim_ev_type { SIM_EV_UP, SIM_EV_DOWN, SIM_EV_MSG, SIM_EV_CLOSED };
struct sim_ev {
    struct sim_ev *next;
    struct sim_dev *d;
    void *conn; /* the protocol connection the event is about */
    uint32_t gen;
    enum sim_ev_type type;
    int code;
    int64_t t_ms;
    char *topic;   /* owned */
    char *payload; /* owned, NUL-terminated */
    size_t len;
};
/* Any thread: queues ev (taken) and wakes the loop. */
void sim_ev_post(struct sim *s, struct sim_ev *ev);

/* MQTT events (sim_mqtt.c): every event queued by sim_ev_post is one of its. */
void sim_mqtt_event(struct sim *s, struct sim_ev *ev);
/* Frees connection objects whose library still needed them for a while (tick). */
void sim_mqtt_reap(struct sim *s, bool all);

/* Builds {"id","method","params"} (params borrowed, may be NULL) or, when code >= 0 and
 * params is NULL, the reply {"id","method","code","data":{}}; returns malloc'ed text. */
char *sim_msg_text(const char *id, const char *method, const cJSON *params, int code);
/* "thing.ota.progress" → "thing/ota/progress" into out. */
void sim_method_path(const char *method, char *out, size_t len);

/* "scheme://IP:PORT" (or "IP:PORT") → a socket address (sim_tcp.c). */
int sim_endpoint_addr(const char *url, const char *scheme, struct sockaddr_storage *out);
/* Writes head then tail (tail may be NULL) to a stream as one request, copied (sim_tcp.c).
 * 0 or a libuv error; a failed write later shows up as a read error or EOF. */
int sim_stream_write(uv_stream_t *s, const void *head, size_t hlen, const void *tail,
                     size_t tlen);

/* ---- devices (sim_dev.c) ---- */

/* Starts (or queues) the device's connection. */
void sim_dev_connect(struct sim_dev *d);
/* Called by protocol modules, main thread. */
void sim_dev_link_up(struct sim_dev *d);
void sim_dev_link_down(struct sim_dev *d, const char *why);
/* A protocol connection ended by itself: unhooks it from its device (*slot is the
 * connection's device pointer, set to NULL) and calls sim_dev_link_down. Nothing when the
 * connection was unhooked already. */
void sim_dev_conn_lost(struct sim_dev **slot, const char *why);
/* A downstream message (request or reply) of the device; msg borrowed; t_ms when it arrived. */
void sim_dev_on_message(struct sim_dev *d, const cJSON *msg, int64_t t_ms);
/* Sends an upstream request with a fresh id. params borrowed. */
int sim_dev_send(struct sim_dev *d, const char *method, const cJSON *params);
/* Drops the device's link on purpose (storm, drop behaviour, end of run). */
void sim_dev_disconnect(struct sim_dev *d, bool reconnect);
/* One property post (called by the tick at the configured rate). */
void sim_dev_post_properties(struct sim_dev *d);
/* Download callbacks (sim_dl.c → here). */
void sim_dev_dl_progress(struct sim_dev *d, uint64_t got, uint64_t size);
void sim_dev_dl_done(struct sim_dev *d, int rc, const char *why);
/* A download slot is free: start the next queued one. */
void sim_dev_dl_next(struct sim *s);
/* Gateway-driven upgrades (ops->ota_by_gateway, Modbus §5.6): the gateway began writing
 * an image for version (its CTRL=1), and the device's verdict on it. */
void sim_dev_ota_begin(struct sim_dev *d, const char *version, int64_t t_ms);
void sim_dev_ota_end(struct sim_dev *d, bool ok, const char *why);

/* ---- firmware download (sim_dl.c) ---- */

/* Prepares d->dl (no connection yet). */
int sim_dl_begin(struct sim_dev *d, const char *url, uint64_t size, const char *md5,
                 const char *sha256, bool slow, uint64_t drop_at);
/* Starts the download, or resumes it with Range after the bytes already verified into the
 * digests; the outcome comes in sim_dev_dl_done (0, -EINTR for a drop on purpose, -EIO). */
int sim_dl_resume(struct sim_dev *d);
/* Stops a running download (keeps the bytes for a later resume). */
void sim_dl_abort(struct sim_dev *d);
void sim_dl_free(struct sim_dev *d);
/* CoAP Block2 downloads (sim_coap.c ↔ sim_dl.c): the device's session fetches a coap:// URL
 * from byte `from` on; each block comes to sim_dl_coap_data (0, or -1 to stop), the end (or
 * a failure, why may be NULL) to sim_dl_coap_end. */
int sim_coap_fetch(struct sim_dev *d, const char *url, uint64_t from);
/* Slow devices: milliseconds to wait before asking for the bytes up to `upto` (0: ask now). */
uint64_t sim_dl_pace_ms(struct sim_dev *d, uint64_t upto);
void sim_coap_fetch_cancel(struct sim_dev *d);
int sim_dl_coap_data(struct sim_dev *d, uint64_t offset, const uint8_t *p, size_t len);
void sim_dl_coap_end(struct sim_dev *d, int rc, const char *why);

/* ---- HTTP client requests (sim_http.c) ---- */

/* status: HTTP status (0: connection failed); body: the response body (NUL-terminated,
 * borrowed for the call). */
typedef void (*sim_http_done_fn)(void *arg, int status, const char *body, size_t len);
struct sim_http_req {
    const char *method;      /* GET, POST, PUT */
    const char *url;         /* http://host:port/path?query */
    const char *auth;        /* Authorization header value or NULL */
    const char *ctype;       /* Content-Type of the body or NULL */
    const void *body;        /* borrowed until done is called */
    size_t body_len;
    sim_http_done_fn done;
    void *arg;
    void *owner;             /* for sim_http_cancel_owner, or NULL */
};
/* Starts one request on its own connection. The request struct is copied (strings too, not
 * the body). Returns 0 (done will be called exactly once, possibly before this returns when
 * the connection fails at once), or -EINVAL/-ENOMEM (done is not called). */
int sim_http_request(struct sim *s, const struct sim_http_req *r);
/* Closes every request in flight started with this owner (their done gets status 0). */
void sim_http_cancel_owner(void *owner);
/* Every object hung on a wsi as lws opaque user data starts with one of these: lws delivers
 * some callbacks (WSI_DESTROY after the protocol was dropped) to protocols[0], which
 * dispatches them by this tag. */
enum sim_lws_tag { SIM_TAG_HTTP = 0x48545450, SIM_TAG_DL = 0x444c4f41, SIM_TAG_WS = 0x57534b54 };
/* Closes a wsi soon (from outside lws callbacks too: wakes lws so its timer runs). */
void sim_lws_kill(struct lws *wsi);
/* The lws protocols of the simulator (HTTP client, downloads, WebSocket devices). */
const struct lws_protocols *sim_lws_protocol_list(void);
int sim_http_parse_url(const char *url, char *host, size_t host_len, int *port, char *path,
                       size_t path_len);

/* ---- admin API (sim_admin.c) ---- */

/* The envelope's code (or -1 when the answer was not an envelope) and data (borrowed). */
typedef void (*sim_admin_done_fn)(struct sim *s, void *arg, long code, const cJSON *data,
                                  const char *msg);
int sim_admin_call(struct sim *s, const char *method, const char *path_query, const cJSON *body,
                   sim_admin_done_fn done, void *arg);
int sim_admin_upload(struct sim *s, const char *path_query, const void *bytes, size_t len,
                     sim_admin_done_fn done, void *arg);

/* ---- the run's phases (sim_flow.c) and what they start from (sim_prov.c) ---- */

void sim_flow_start(struct sim *s);
void sim_flow_next(struct sim *s, enum sim_phase p);
int sim_devices_alloc(struct sim *s);
int sim_behaviours_assign(struct sim *s);
void sim_provision(struct sim *s);
void sim_upload(struct sim *s);
void sim_flow_tick(struct sim *s);
void sim_flow_stop(struct sim *s, const char *why);
int sim_creds_load(struct sim *s, const char *path);
int sim_creds_save(struct sim *s, const char *path);
/* Writes root as indented JSON and a newline to path. 0 or -EIO. */
int sim_json_write_file(const char *path, const cJSON *root);

/* ---- Modbus devices (sim_modbus.c, sim_modbus_regs.c) ---- */

enum sim_mb_verdict { SIM_MB_ANSWER, SIM_MB_DROP };
/* The device's registers and transfer state (d->pstate), made on first use. */
int sim_mb_state(struct sim_dev *d);
/* Frees d->pstate (its timer closes asynchronously). */
void sim_mb_free(struct sim_dev *d);
/* One request PDU from the gateway → the answer PDU in out (at least 253 bytes), its length
 * in *out_len; SIM_MB_DROP: the drop behaviour hangs up now, unanswered. */
enum sim_mb_verdict sim_mb_request(struct sim_dev *d, const uint8_t *pdu, size_t len,
                                   uint8_t *out, size_t *out_len);
/* A property post: the values go into the property registers the gateway polls. */
int sim_mb_set_properties(struct sim_dev *d, const cJSON *params);
/* Writes the modbus_tcp_server adapter block for the run's Modbus devices to path. */
int sim_modbus_config_save(struct sim *s, const char *path);

/* ---- reporting (sim_report.c) ---- */

void sim_report_line(struct sim *s, bool final);
int sim_report_json(struct sim *s);
void sim_lat_add(struct sim *s, double ms);
void sim_dl_time_add(struct sim *s, double ms);
/* A download (Modbus: a transfer) of d took ms: kept apart for slow devices, per protocol. */
void sim_dev_dl_time(struct sim_dev *d, double ms);

#endif
