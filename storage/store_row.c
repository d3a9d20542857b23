/*
 * DESIGN: the on-disk row format of every table. Pure functions; any thread.
 *
 * A row is: one format byte (GW__ROW_V1), then fixed-width little-endian integers, then
 * strings as u16 little-endian length + bytes (no NUL). The id is the key and is not
 * repeated. Decoding checks every length against the buffer and every string against its
 * field size (no NUL inside), and requires the buffer to be consumed exactly; any mismatch is
 * a corrupt row (GW_E_STORE), never an out-of-bounds read. Encoders trust that the callers
 * validated string lengths (they refuse GW_E_VALUE_TOO_LONG before encoding) and clamp
 * defensively so the GW__ROW_MAX buffer can never overflow.
 *
 * Records are the hot path (one decode + one encode per progress report): their fixed part
 * comes first so gw__row_record_peek reads the immutable fields and the status alone.
 */
#include <errno.h>
#include <string.h>

#include "store_internal.h"

#define GW__ROW_V1 1

struct wbuf {
    uint8_t *p;
};

struct rbuf {
    const uint8_t *p;
    const uint8_t *end;
    bool bad;
};

static inline void w_u8(struct wbuf *w, uint8_t v)
{
    *w->p++ = v;
}

static inline void w_u32(struct wbuf *w, uint32_t v)
{
    w->p[0] = (uint8_t)v;
    w->p[1] = (uint8_t)(v >> 8);
    w->p[2] = (uint8_t)(v >> 16);
    w->p[3] = (uint8_t)(v >> 24);
    w->p += 4;
}

static inline void w_u64(struct wbuf *w, uint64_t v)
{
    w_u32(w, (uint32_t)v);
    w_u32(w, (uint32_t)(v >> 32));
}

static inline void w_str(struct wbuf *w, const char *s, size_t max)
{
    size_t n = strnlen(s, max);

    w->p[0] = (uint8_t)n;
    w->p[1] = (uint8_t)(n >> 8);
    memcpy(w->p + 2, s, n);
    w->p += 2 + n;
}

static inline uint8_t r_u8(struct rbuf *r)
{
    if (r->end - r->p < 1) {
        r->bad = true;
        return 0;
    }
    return *r->p++;
}

static inline uint32_t r_u32(struct rbuf *r)
{
    uint32_t v;

    if (r->end - r->p < 4) {
        r->bad = true;
        return 0;
    }
    v = (uint32_t)r->p[0] | ((uint32_t)r->p[1] << 8) | ((uint32_t)r->p[2] << 16) |
        ((uint32_t)r->p[3] << 24);
    r->p += 4;
    return v;
}

static inline uint64_t r_u64(struct rbuf *r)
{
    uint64_t lo = r_u32(r);
    uint64_t hi = r_u32(r);

    return lo | (hi << 32);
}

/* Copies a string of at most max bytes into dst[max + 1]. */
static inline void r_str(struct rbuf *r, char *dst, size_t max)
{
    size_t n;

    dst[0] = '\0';
    if (r->bad || r->end - r->p < 2) {
        r->bad = true;
        return;
    }
    n = (size_t)r->p[0] | ((size_t)r->p[1] << 8);
    r->p += 2;
    if (n > max || (size_t)(r->end - r->p) < n || memchr(r->p, '\0', n)) {
        r->bad = true;
        return;
    }
    memcpy(dst, r->p, n);
    dst[n] = '\0';
    r->p += n;
}

static inline void r_begin(struct rbuf *r, const MDB_val *v)
{
    r->p = v->mv_data;
    r->end = r->p + v->mv_size;
    r->bad = false;
    if (r_u8(r) != GW__ROW_V1)
        r->bad = true;
}

/* 0 if the row decoded cleanly and exactly, else GW_E_STORE (logged by the caller). */
static inline int r_end(const struct rbuf *r)
{
    return (r->bad || r->p != r->end) ? GW_E_STORE : 0;
}

/* ---- products ---- */

size_t gw__row_product_encode(const struct gw_product *p, uint8_t *buf)
{
    struct wbuf w = { buf };

    w_u8(&w, GW__ROW_V1);
    w_u8(&w, (uint8_t)p->serializer);
    w_u64(&w, (uint64_t)p->create_time_ms);
    w_str(&w, p->name, GW_NAME_MAX);
    w_str(&w, p->product_key, GW_PK_MAX);
    w_str(&w, p->product_secret, GW_SECRET_MAX);
    return (size_t)(w.p - buf);
}

int gw__row_product_decode(const MDB_val *v, uint64_t id, struct gw_product *out)
{
    struct rbuf r;

    r_begin(&r, v);
    out->id = id;
    out->serializer = r_u8(&r);
    out->create_time_ms = (int64_t)r_u64(&r);
    r_str(&r, out->name, GW_NAME_MAX);
    r_str(&r, out->product_key, GW_PK_MAX);
    r_str(&r, out->product_secret, GW_SECRET_MAX);
    return r_end(&r);
}

/* ---- devices ---- */

size_t gw__row_device_encode(const struct gw_device *d, uint8_t *buf)
{
    struct wbuf w = { buf };

    w_u8(&w, GW__ROW_V1);
    w_u64(&w, d->product_id);
    w_u8(&w, (uint8_t)d->state);
    w_u64(&w, d->firmware_id);
    w_u64(&w, (uint64_t)d->last_seen_ms);
    w_u64(&w, (uint64_t)d->create_time_ms);
    w_str(&w, d->product_key, GW_PK_MAX);
    w_str(&w, d->device_name, GW_DN_MAX);
    w_str(&w, d->device_secret, GW_SECRET_MAX);
    return (size_t)(w.p - buf);
}

int gw__row_device_decode(const MDB_val *v, uint64_t id, struct gw_device *out)
{
    struct rbuf r;

    r_begin(&r, v);
    out->id = id;
    out->product_id = r_u64(&r);
    out->state = r_u8(&r);
    out->firmware_id = r_u64(&r);
    out->last_seen_ms = (int64_t)r_u64(&r);
    out->create_time_ms = (int64_t)r_u64(&r);
    r_str(&r, out->product_key, GW_PK_MAX);
    r_str(&r, out->device_name, GW_DN_MAX);
    r_str(&r, out->device_secret, GW_SECRET_MAX);
    return r_end(&r);
}

/* ---- firmware ---- */

size_t gw__row_firmware_encode(const struct gw_firmware *f, uint8_t *buf)
{
    struct wbuf w = { buf };

    w_u8(&w, GW__ROW_V1);
    w_u64(&w, f->product_id);
    w_u64(&w, f->file_size);
    w_u64(&w, (uint64_t)f->create_time_ms);
    w_str(&w, f->name, GW_NAME_MAX);
    w_str(&w, f->description, GW_DESC_MAX);
    w_str(&w, f->version, GW_VERSION_MAX);
    w_str(&w, f->file_url, GW_URL_MAX);
    w_str(&w, f->digest_algorithm, sizeof(f->digest_algorithm) - 1);
    w_str(&w, f->digest_value, sizeof(f->digest_value) - 1);
    w_str(&w, f->sha256, sizeof(f->sha256) - 1);
    w_str(&w, f->sign, GW_SIGN_MAX);
    return (size_t)(w.p - buf);
}

int gw__row_firmware_decode(const MDB_val *v, uint64_t id, struct gw_firmware *out)
{
    struct rbuf r;

    r_begin(&r, v);
    out->id = id;
    out->product_id = r_u64(&r);
    out->file_size = r_u64(&r);
    out->create_time_ms = (int64_t)r_u64(&r);
    r_str(&r, out->name, GW_NAME_MAX);
    r_str(&r, out->description, GW_DESC_MAX);
    r_str(&r, out->version, GW_VERSION_MAX);
    r_str(&r, out->file_url, GW_URL_MAX);
    r_str(&r, out->digest_algorithm, sizeof(out->digest_algorithm) - 1);
    r_str(&r, out->digest_value, sizeof(out->digest_value) - 1);
    r_str(&r, out->sha256, sizeof(out->sha256) - 1);
    r_str(&r, out->sign, GW_SIGN_MAX);
    return r_end(&r);
}

/* ---- tasks ---- */

static uint64_t double_bits(double d)
{
    uint64_t u;

    memcpy(&u, &d, sizeof(u));
    return u;
}

static double bits_double(uint64_t u)
{
    double d;

    memcpy(&d, &u, sizeof(d));
    return d;
}

size_t gw__row_task_encode(const struct gw_task *t, uint8_t *buf)
{
    struct wbuf w = { buf };
    const struct gw_task_policy *pol = &t->policy;

    w_u8(&w, GW__ROW_V1);
    w_u64(&w, t->firmware_id);
    w_u8(&w, (uint8_t)t->status);
    w_u8(&w, (uint8_t)t->device_scope);
    w_u32(&w, t->device_total_count);
    w_u32(&w, t->device_success_count);
    for (int i = 0; i < 6; i++)
        w_u32(&w, t->status_count[i]);
    w_u32(&w, pol->max_concurrent);
    w_u32(&w, pol->rate_per_minute);
    w_u32(&w, pol->push_timeout_s);
    w_u32(&w, pol->upgrade_timeout_s);
    w_u32(&w, pol->max_retries);
    w_u32(&w, pol->retry_backoff_s);
    w_u64(&w, double_bits(pol->abort_failure_ratio));
    w_u32(&w, pol->abort_min_sample);
    w_u64(&w, (uint64_t)t->create_time_ms);
    w_u64(&w, (uint64_t)t->update_time_ms);
    w_str(&w, t->name, GW_NAME_MAX);
    w_str(&w, t->description, GW_DESC_MAX);
    w_str(&w, t->end_reason, GW_CAUSE_MAX);
    return (size_t)(w.p - buf);
}

int gw__row_task_decode(const MDB_val *v, uint64_t id, struct gw_task *out)
{
    struct rbuf r;
    struct gw_task_policy *pol = &out->policy;

    r_begin(&r, v);
    out->id = id;
    out->firmware_id = r_u64(&r);
    out->status = r_u8(&r);
    out->device_scope = r_u8(&r);
    out->device_total_count = r_u32(&r);
    out->device_success_count = r_u32(&r);
    for (int i = 0; i < 6; i++)
        out->status_count[i] = r_u32(&r);
    pol->max_concurrent = r_u32(&r);
    pol->rate_per_minute = r_u32(&r);
    pol->push_timeout_s = r_u32(&r);
    pol->upgrade_timeout_s = r_u32(&r);
    pol->max_retries = r_u32(&r);
    pol->retry_backoff_s = r_u32(&r);
    pol->abort_failure_ratio = bits_double(r_u64(&r));
    pol->abort_min_sample = r_u32(&r);
    out->create_time_ms = (int64_t)r_u64(&r);
    out->update_time_ms = (int64_t)r_u64(&r);
    r_str(&r, out->name, GW_NAME_MAX);
    r_str(&r, out->description, GW_DESC_MAX);
    r_str(&r, out->end_reason, GW_CAUSE_MAX);
    return r_end(&r);
}

/* ---- records (hot path) ---- */

/* Fixed part: version(1) task(8) firmware(8) device(8) status(1) = 26 bytes, then the rest. */
#define GW__RECORD_PEEK_LEN 26

size_t gw__row_record_encode(const struct gw_record *rec, uint8_t *buf)
{
    struct wbuf w = { buf };

    w_u8(&w, GW__ROW_V1);
    w_u64(&w, rec->task_id);
    w_u64(&w, rec->firmware_id);
    w_u64(&w, rec->device_id);
    w_u8(&w, (uint8_t)rec->status);
    w_u8(&w, (uint8_t)rec->progress);
    w_u64(&w, rec->from_firmware_id);
    w_u32(&w, rec->attempts);
    w_u64(&w, (uint64_t)rec->status_time_ms);
    w_u64(&w, (uint64_t)rec->report_time_ms);
    w_u64(&w, (uint64_t)rec->not_before_ms);
    w_u64(&w, (uint64_t)rec->create_time_ms);
    w_str(&w, rec->description, GW_DESC_MAX);
    return (size_t)(w.p - buf);
}

int gw__row_record_decode(const MDB_val *v, uint64_t id, struct gw_record *out)
{
    struct rbuf r;

    r_begin(&r, v);
    out->id = id;
    out->task_id = r_u64(&r);
    out->firmware_id = r_u64(&r);
    out->device_id = r_u64(&r);
    out->status = r_u8(&r);
    out->progress = r_u8(&r);
    out->from_firmware_id = r_u64(&r);
    out->attempts = r_u32(&r);
    out->status_time_ms = (int64_t)r_u64(&r);
    out->report_time_ms = (int64_t)r_u64(&r);
    out->not_before_ms = (int64_t)r_u64(&r);
    out->create_time_ms = (int64_t)r_u64(&r);
    r_str(&r, out->description, GW_DESC_MAX);
    if (!gw_record_status_valid(out->status) || out->progress > 100)
        return GW_E_STORE;
    return r_end(&r);
}

int gw__row_record_peek(const MDB_val *v, uint64_t *task_id, uint64_t *firmware_id,
                        uint64_t *device_id, int *status)
{
    struct rbuf r;

    if (v->mv_size < GW__RECORD_PEEK_LEN)
        return GW_E_STORE;
    r_begin(&r, v);
    *task_id = r_u64(&r);
    *firmware_id = r_u64(&r);
    *device_id = r_u64(&r);
    *status = r_u8(&r);
    if (r.bad || !gw_record_status_valid(*status))
        return GW_E_STORE;
    return 0;
}

/* ---- history ---- */

size_t gw__row_history_encode(const struct gw_history_entry *h, uint8_t *buf)
{
    struct wbuf w = { buf };

    w_u8(&w, GW__ROW_V1);
    w_u64(&w, (uint64_t)h->time_ms);
    w_u32(&w, (uint32_t)h->from_status);
    w_u32(&w, (uint32_t)h->to_status);
    w_str(&w, h->cause, GW_CAUSE_MAX);
    return (size_t)(w.p - buf);
}

int gw__row_history_decode(const MDB_val *v, struct gw_history_entry *out)
{
    struct rbuf r;

    r_begin(&r, v);
    out->time_ms = (int64_t)r_u64(&r);
    out->from_status = (int32_t)r_u32(&r);
    out->to_status = (int32_t)r_u32(&r);
    r_str(&r, out->cause, GW_CAUSE_MAX);
    return r_end(&r);
}
