#ifndef GW_MB_INTERNAL_H
#define GW_MB_INTERNAL_H
/*
 * Private to gateway/adapters/modbus. Layers, bottom up:
 *  - mb_convert.c  register/bit contents <-> property values (raw types, byte orders, scale);
 *  - mb_frames.c   PDUs, Modbus TCP (MBAP) and RTU frames, CRC-16, framing detection;
 *  - mb_plan.c     merging a device's points into read segments;
 *  - mb_device.c   one Modbus device: what to ask next (writes, OTA steps, polls), what the
 *                  answers mean (property posts, set replies), its session towards the core;
 *  - mb_ota.c      the gateway-driven upgrade of DESIGN §5.6 and its state file;
 *  - mb_client.c / mb_server.c  the two adapter types: transports that execute a device's
 *                  requests (libmodbus on a thread per connection / a libuv loop).
 * The first three are pure (no I/O, no clock, no logging) and unit-tested on their own.
 *
 * Threads: a struct gw__mb_dev belongs to exactly one thread, the one that runs its transport
 * (a client connection thread, or the server loop thread); only dev->live_session is read by
 * other threads (submit). Messages from the core reach that thread through a gw__mb_queue.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "gw_adapter.h"
#include "gw_config.h"
#include "gw_core.h"
#include "gw_msg.h"

#define GW__MB_MAX_READ_REGS 125  /* FC 3/4 */
#define GW__MB_MAX_READ_BITS 2000 /* FC 1/2 */
#define GW__MB_MAX_WRITE_REGS 123 /* FC 16 */
#define GW__MB_MAX_PDU 253
#define GW__MB_MAX_ADU 260 /* MBAP 7 + PDU 253; RTU 1 + 253 + 2 = 256 */

/*
 * The least time between the end of one request to a device and the start of the next
 * (the reference keeps 1000 ms; that would make a block transfer crawl, and a device that
 * answers a request is ready for the next). Polls, writes and OTA steps all respect it.
 */
#define GW__MB_MIN_GAP_MS 20
/* Consecutive timeouts after which a device is reported offline (then probed every
 * retryIntervalMs until it answers again). */
#define GW__MB_STALL_TIMEOUTS 3
/* property.set requests waiting per device; more are answered GW_E_QUEUE_FULL. */
#define GW__MB_SETS_MAX 32
/* Downstream messages queued between the core and a transport thread. */
#define GW__MB_QUEUE_CAP 1024
/* Retry period for posts the core's full queue refused. */
#define GW__MB_RETRY_MS 50

/* ---- requests and responses (one PDU) ---- */

struct gw__mb_req {
    uint8_t fc; /* 1..6, 15, 16 */
    uint16_t addr;
    uint16_t count;                       /* registers or bits read or written (FC 5/6: 1) */
    uint16_t regs[GW__MB_MAX_WRITE_REGS]; /* FC 6/16 values */
    uint8_t bits[GW__MB_MAX_READ_BITS];   /* FC 5/15 values, one per byte (0/1) */
    int tag;                              /* the device's: which activity asked (enum gw__mb_tag) */
    size_t ref;                           /* the device's: segment index, ... */
};

struct gw__mb_resp {
    int err;       /* 0, GW_E_MODBUS_EXCEPTION (see exception), GW_E_TIMEOUT, -EPROTO, -EIO */
    int exception; /* Modbus exception code when err == GW_E_MODBUS_EXCEPTION */
    uint16_t regs[GW__MB_MAX_READ_REGS]; /* FC 3/4 answers */
    uint8_t bits[GW__MB_MAX_READ_BITS];  /* FC 1/2 answers, one per byte */
};

/* ---- mb_convert.c: values (pure) ---- */

/* Registers one value of the point's raw type takes (1, 2 or 4); FC 1/2 points: 1 bit. */
int gw__mb_type_width(enum gw_config_modbus_type t);
/*
 * The point's value from its registers (FC 3/4: regs[0..width)) or its bit (FC 1/2):
 * registers laid out big-endian, reordered by the byte order (DOUBLE: over all 8 bytes),
 * read big-endian as the raw type, times scale. BOOLEAN → JSON bool; otherwise a number
 * (integers exact; FLOAT as the shortest decimal that reads back as the same float).
 * *out is a new cJSON the caller owns. 0, GW_E_BAD_FIELD (NaN/inf or beyond
 * GW_MSG_NUMBER_MAX: not representable in a message), -ENOMEM.
 */
int gw__mb_value_decode(const struct gw_config_modbus_point *p, const uint16_t *regs, uint8_t bit,
                        cJSON **out);
/*
 * The registers (regs[0..width)) or bit that write value (borrowed) to the point:
 * raw = value / scale, rounded half up for integer types and range-checked, encoded as
 * decode reads it. BOOLEAN takes true/false or 0/1. GW_E_BAD_PARAMS with why (may be NULL)
 * saying what is wrong.
 */
int gw__mb_value_encode(const struct gw_config_modbus_point *p, const cJSON *value, uint16_t *regs,
                        uint8_t *bit, char *why, size_t whylen);

/* ---- mb_frames.c: wire (pure) ---- */

enum gw__mb_framing {
    GW__MB_FRAMING_UNKNOWN = 0, /* fewer than 6 bytes seen */
    GW__MB_FRAMING_TCP = 1,     /* MBAP header (REFERENCE §4.10 format 1) */
    GW__MB_FRAMING_RTU = 2,     /* slave id + PDU + CRC-16 (format 2) */
};

/* CRC-16/MODBUS (init 0xFFFF, reflected poly 0xA001); sent low byte first. */
uint16_t gw__mb_crc16(const uint8_t *p, size_t n);
/* Framing of a connection from its first bytes: TCP when bytes 2..3 are 0 and the length in
 * bytes 4..5 is 1..254, else RTU; UNKNOWN before 6 bytes. */
enum gw__mb_framing gw__mb_detect(const uint8_t *buf, size_t len);
/* The request PDU of req into pdu (>= GW__MB_MAX_PDU bytes). Returns its length, or
 * -EINVAL for a function code or count outside the protocol's limits. */
int gw__mb_pdu_request(const struct gw__mb_req *req, uint8_t *pdu);
/*
 * Checks a response PDU against req and fills resp: the values read, or the exception.
 * Returns 0 when the PDU is the answer to req (resp->err 0 or GW_E_MODBUS_EXCEPTION),
 * -EPROTO when it is not (other function code, wrong byte count, echo mismatch).
 */
int gw__mb_pdu_response(const struct gw__mb_req *req, const uint8_t *pdu, size_t len,
                        struct gw__mb_resp *resp);
/* ADU wrappers into out (>= GW__MB_MAX_ADU bytes); return the frame length. */
size_t gw__mb_tcp_wrap(uint16_t tid, uint8_t unit, const uint8_t *pdu, size_t len, uint8_t *out);
size_t gw__mb_rtu_wrap(uint8_t slave, const uint8_t *pdu, size_t len, uint8_t *out);

/* One frame split off the front of a byte stream. */
struct gw__mb_frame {
    size_t len;         /* bytes the frame takes in the stream */
    uint16_t tid;       /* TCP transaction id (RTU: 0) */
    uint8_t unit;       /* unit / slave id */
    const uint8_t *pdu; /* into the stream buffer */
    size_t pdu_len;
};
/*
 * Splits the first frame off buf[0..len). Returns 1 with *f filled, 0 when more bytes are
 * needed, or an error after which the stream cannot be trusted: -EPROTO (TCP: protocol id not
 * 0 or length out of range; RTU: a function code whose frame length is unknown),
 * -EBADMSG (RTU: CRC mismatch; f->len is the frame's length so the caller may skip it).
 * RTU lengths are function-code driven (REFERENCE §4.10): exception 5 bytes; FC 1..4 and
 * custom_fc byte-count driven; FC 5/6/15/16 8 bytes.
 */
int gw__mb_tcp_split(const uint8_t *buf, size_t len, struct gw__mb_frame *f);
int gw__mb_rtu_split(const uint8_t *buf, size_t len, uint8_t custom_fc, struct gw__mb_frame *f);

/* ---- mb_plan.c: read segments (pure) ---- */

struct gw__mb_segment {
    uint8_t fc;
    uint16_t start;
    uint16_t count; /* registers (FC 3/4) or bits (FC 1/2) */
    int interval_ms;
    size_t first, n;     /* the segment's points: plan->idx[first .. first + n) */
    int64_t next_due_ms; /* the device's */
};

struct gw__mb_plan {
    struct gw__mb_segment *segs;
    size_t n_segs;
    size_t *idx; /* point indices, grouped by segment, in address order */
};

/*
 * Merges points into read segments: same function code and poll interval, contiguous or
 * overlapping addresses, at most 125 registers / 2000 bits per segment. pts borrowed (must
 * outlive the plan). 0 or -ENOMEM; *out zeroed first.
 */
int gw__mb_plan_build(const struct gw_config_modbus_point *pts, size_t n, struct gw__mb_plan *out);
void gw__mb_plan_fini(struct gw__mb_plan *plan);

/* ---- mb_queue.c: core → transport thread ---- */

struct gw__mb_queue {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; signalled on push and stop */
    struct gw_msg **ring;
    size_t head, count, cap;
    bool stopping;
};

int gw__mb_queue_init(struct gw__mb_queue *q, size_t cap);
/* Unrefs what is left. */
void gw__mb_queue_fini(struct gw__mb_queue *q);
/* Any thread; takes msg whatever it returns: 0, -EAGAIN (full), GW_E_SHUTDOWN. */
int gw__mb_queue_push(struct gw__mb_queue *q, struct gw_msg *msg);
/* Moves up to max messages into out; returns how many. Any thread. */
size_t gw__mb_queue_take(struct gw__mb_queue *q, struct gw_msg **out, size_t max);
size_t gw__mb_queue_depth(struct gw__mb_queue *q);
/* Waits (lock held by the callee) until a push, a stop or deadline_ms (monotonic). */
void gw__mb_queue_wait(struct gw__mb_queue *q, int64_t deadline_ms);
void gw__mb_queue_stop(struct gw__mb_queue *q);

/* Monotonic clock, milliseconds. */
int64_t gw__mb_now_ms(void);

/* ---- mb_device.c: one device ---- */

/* Counters an adapter shares between its devices (any thread reads). */
struct gw__mb_counters {
    atomic_uint_fast64_t session_seq; /* last session handle given out */
    atomic_uint_fast64_t sessions;    /* devices up */
    struct gw_adapter_counters io;
};

enum gw__mb_tag {
    GW__MB_TAG_POLL = 1,
    GW__MB_TAG_PROBE, /* a read while stalled: any answer means the device is back */
    GW__MB_TAG_SET,
    GW__MB_TAG_OTA,
};

enum gw__mb_link {
    GW__MB_DOWN = 0, /* no transport */
    GW__MB_UP,       /* reachable; the core knows it as online */
    GW__MB_STALLED,  /* transport there, device silent: offline, probed */
};

/* One register write of a property.set (a point is at most 4 registers). */
struct gw__mb_write {
    const struct gw_config_modbus_point *point;
    uint16_t regs[4];
    uint8_t bit;
};

/* A property.set being carried out, in arrival order. */
struct gw__mb_set {
    struct gw_msg *req; /* owned reference */
    struct gw__mb_write *writes;
    size_t n, done;
    struct gw__mb_set *next;
};

/* A post the core refused (queue full) that must not be lost. */
struct gw__mb_pending_ev {
    bool set;
    enum gw_session_event ev; /* REACHABLE or OFFLINE */
    uint64_t session;
};

struct gw__mb_ota;

struct gw__mb_dev {
    struct gw_adapter *ad;                     /* posts go out as this adapter */
    const struct gw_config_modbus_device *cfg; /* borrowed from the adapter's config */
    const char *tag;                           /* log tag (the adapter's name) */
    const char *data_dir;                      /* the gateway's (state files, firmware images) */
    struct gw__mb_counters *ctr;
    struct gw__mb_plan plan;
    uint8_t unit; /* unit id used by the transport */

    enum gw__mb_link link;
    uint64_t session;                  /* the current session handle (0 = none) */
    atomic_uint_fast64_t live_session; /* session while UP, else 0 (submit reads it) */
    bool unknown;                      /* a post was answered "no such device": the core dropped our
                                          REACHABLE; announce again once a post is accepted */
    int64_t last_req_ms;               /* end of the last request (minimum gap) */
    int64_t probe_due_ms;
    unsigned timeouts; /* consecutive */
    bool ota_turn;     /* alternate OTA steps and due polls */
    struct gw__mb_pending_ev pending;
    int64_t pending_due_ms;

    struct gw__mb_set *sets, *sets_tail;
    size_t n_sets;
    int *seg_exc; /* last exception logged per segment (log changes only) */

    struct gw__mb_ota *ota; /* the running upgrade, NULL when none */
    void *transport;        /* the transport's (server: its connection) */
};

/* A device for cfg (borrowed, outlives it); restores a persisted OTA job (mb_ota.c). */
int gw__mb_dev_new(struct gw_adapter *ad, const struct gw_config_modbus_device *cfg,
                   const char *data_dir, struct gw__mb_counters *ctr, struct gw__mb_dev **out);
void gw__mb_dev_free(struct gw__mb_dev *dev);
/* Transport up (a connection, a login): a new session, REACHABLE posted, polls due now,
 * a paused upgrade resumes. */
void gw__mb_dev_up(struct gw__mb_dev *dev, int64_t now);
/* Transport gone: OFFLINE posted, waiting property.sets answered
 * GW_E_DEVICE_NOT_CONNECTED, the upgrade paused. */
void gw__mb_dev_down(struct gw__mb_dev *dev, int64_t now);
/* A message from the core for this device (takes the reference). */
void gw__mb_dev_accept(struct gw__mb_dev *dev, struct gw_msg *msg, int64_t now);
/*
 * The next request to send: true with *req filled, or false with *wake lowered to when to
 * ask again (unchanged when nothing is scheduled). Also retries refused posts. Only one
 * request of a device is outstanding at a time: call gw__mb_dev_done before asking again.
 */
bool gw__mb_dev_next(struct gw__mb_dev *dev, int64_t now, struct gw__mb_req *req, int64_t *wake);
/* The outcome of the request last returned by gw__mb_dev_next. */
void gw__mb_dev_done(struct gw__mb_dev *dev, const struct gw__mb_req *req,
                     const struct gw__mb_resp *resp, int64_t now);

/* Posts a request from the device to the core (params taken; request_id borrowed, NULL =
 * none: the core's reply then carries the gateway id). 0 or the post's error. */
int gw__mb_dev_post(struct gw__mb_dev *dev, enum gw_method method, const char *request_id,
                    cJSON *params);

/* ---- mb_ota.c: DESIGN §5.6 (the device's thread) ---- */

/* Register offsets from otaBase. */
enum {
    GW__MB_OTA_CTRL = 0,
    GW__MB_OTA_STATUS = 1,
    GW__MB_OTA_PROGRESS = 2,
    GW__MB_OTA_FILE_SIZE = 3,
    GW__MB_OTA_MD5 = 5,
    GW__MB_OTA_TARGET_VERSION = 13,
    GW__MB_OTA_BLOCK_INDEX = 29,
    GW__MB_OTA_BLOCK_LEN = 31,
    GW__MB_OTA_BLOCK_DATA = 32,
    GW__MB_OTA_NEXT_BLOCK = 152,
    GW__MB_OTA_CURRENT_VERSION = 154,
};
#define GW__MB_OTA_BLOCK_BYTES 240
#define GW__MB_OTA_VERSION_BYTES 32

/* Restores the job of the device's state file, if any (logs what it finds). */
void gw__mb_ota_restore(struct gw__mb_dev *dev);
void gw__mb_ota_free(struct gw__mb_dev *dev);
/* thing.ota.upgrade / thing.ota.cancel / an error reply to a progress post (borrowed). */
void gw__mb_ota_on_upgrade(struct gw__mb_dev *dev, const struct gw_msg *msg, int64_t now);
void gw__mb_ota_on_cancel(struct gw__mb_dev *dev, const struct gw_msg *msg, int64_t now);
void gw__mb_ota_on_reply(struct gw__mb_dev *dev, const struct gw_msg *reply, int64_t now);
/* Transport up again: re-check the device and resume. */
void gw__mb_ota_on_up(struct gw__mb_dev *dev, int64_t now);
/*
 * When the job's next request is due (INT64_MAX: none, e.g. no job, waiting for the
 * transport). Also does the job's work that needs no request (a final report the core
 * refused is posted again). Only while the device is UP.
 */
int64_t gw__mb_ota_ready_at(struct gw__mb_dev *dev, int64_t now);
/* The request of the job's current step (call only when ready_at <= now). */
void gw__mb_ota_build(struct gw__mb_dev *dev, struct gw__mb_req *req);
void gw__mb_ota_done(struct gw__mb_dev *dev, const struct gw__mb_req *req,
                     const struct gw__mb_resp *resp, int64_t now);

/* State file path <data_dir>/modbus/<pk>&<dn>.ota.json into buf. 0 or -ENAMETOOLONG. */
int gw__mb_ota_state_path(const char *data_dir, const char *pk, const char *dn, char *buf,
                          size_t len);

#endif
