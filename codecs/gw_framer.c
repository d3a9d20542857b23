/*
 * DESIGN: TCP stream framers (delimiter, length field, fixed length) and their encoder.
 * Sans-I/O: the connection's loop thread feeds received bytes and gets whole frames through
 * a callback. One framer per connection, owned by that thread; no globals.
 *
 * Invariants:
 *  - Frames are delivered straight from the caller's input whenever a whole frame lies in it
 *    (no copy); only the incomplete tail of an input is copied into fr->buf, and the next
 *    feed completes that frame first, then returns to the zero-copy path.
 *  - fr->n <= fr->limit (GW_FRAME_MAX + header or delimiter): the buffer is bounded whatever
 *    the peer sends; it grows on demand and is released after a large frame.
 *  - delimiter: fr->buf never holds a whole delimiter (it holds one frame's leading bytes).
 *  - length field / fixed: fr->buf holds less than one whole frame.
 *  - fr->err != 0 means failed: sticky, every later feed returns it.
 */
#include "gw_framer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw_error.h"
#include "gw_util.h"

/* Buffers grown past this are released once their frame is delivered. */
#define GW_FRAMER_KEEP_CAP 16384

struct gw_framer {
    struct gw_framer_config cfg;
    uint8_t *buf; /* leading bytes of the frame in progress */
    size_t n;     /* bytes held in buf */
    size_t cap;   /* bytes allocated for buf */
    size_t limit; /* most bytes buf may ever hold */
    int err;      /* sticky failure code, 0 while healthy */
    char reason[128];
};

/* ---- configuration ---------------------------------------------------------------------- */

void gw_framer_config_init(struct gw_framer_config *cfg, enum gw_framer_type type)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->type = type;
    cfg->delimiter[0] = '\n';
    cfg->delimiter_len = 1;
    cfg->length_field_size = 4;
}

int gw_framer_type_from_name(const char *name, enum gw_framer_type *out)
{
    static const struct {
        const char *name;
        enum gw_framer_type type;
    } names[] = {
        {"delimiter", GW_FRAMER_DELIMITER},
        {"length_field", GW_FRAMER_LENGTH_FIELD},
        {"fixed_length", GW_FRAMER_FIXED_LENGTH},
    };

    for (size_t i = 0; name && i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].type;
            return 0;
        }
    }
    return GW_E_CONFIG;
}

/* Decodes one escape after a backslash at s; returns bytes read after it or -1. */
static int gw_framer_unescape(const char *s, uint8_t *out)
{
    switch (s[0]) {
    case 'r':
        *out = '\r';
        return 1;
    case 'n':
        *out = '\n';
        return 1;
    case 't':
        *out = '\t';
        return 1;
    case '\\':
        *out = '\\';
        return 1;
    case 'x':
        /* s[1] checked first so a trailing "\\x" never reads past the NUL. */
        if (!s[1] || gw_hex_decode(s + 1, 2, out, 1) != 0)
            return -1;
        return 3;
    default:
        return -1;
    }
}

int gw_framer_config_set_delimiter(struct gw_framer_config *cfg, const char *text,
                                   const char **reason)
{
    uint8_t bytes[GW_FRAMER_DELIM_MAX];
    size_t n = 0;
    const char *why = NULL;

    if (!cfg || !text || !*text) {
        why = "delimiter must not be empty";
        goto err_reason;
    }
    for (const char *p = text; *p;) {
        uint8_t b = (uint8_t)*p;
        int used = 1;

        if (*p == '\\') {
            used = gw_framer_unescape(p + 1, &b);
            if (used < 0) {
                why = "delimiter has a bad escape (use \\r \\n \\t \\\\ or \\xHH)";
                goto err_reason;
            }
            used++;
        }
        if (n == GW_FRAMER_DELIM_MAX) {
            why = "delimiter longer than 8 bytes";
            goto err_reason;
        }
        bytes[n++] = b;
        p += used;
    }
    memcpy(cfg->delimiter, bytes, n);
    cfg->delimiter_len = n;
    return 0;

err_reason:
    if (reason)
        *reason = why;
    return GW_E_CONFIG;
}

static size_t gw_framer_header_len(const struct gw_framer_config *cfg)
{
    return cfg->length_field_offset + cfg->length_field_size;
}

static uint32_t gw_framer_field_max(unsigned size)
{
    return size >= 4 ? UINT32_MAX : (UINT32_C(1) << (8 * size)) - 1;
}

static const char *gw_framer_check_length_field(const struct gw_framer_config *cfg)
{
    unsigned size = cfg->length_field_size;

    if (size != 1 && size != 2 && size != 4)
        return "length field size must be 1, 2 or 4 bytes";
    if (cfg->length_field_offset > GW_FRAMER_OFFSET_MAX)
        return "length field offset must be 0..256";
    if (cfg->initial_bytes_to_strip > gw_framer_header_len(cfg))
        return "bytes to strip must not exceed length field offset + size";
    if (cfg->length_adjustment > GW_FRAME_MAX)
        return "length adjustment above 65536 makes every frame too large";
    /* No field value could give a body length >= 0. */
    if ((int64_t)cfg->length_adjustment + gw_framer_field_max(size) < 0)
        return "length adjustment below minus the largest length field value";
    return NULL;
}

int gw_framer_config_check(const struct gw_framer_config *cfg, const char **reason)
{
    const char *why = NULL;

    if (!cfg)
        return -EINVAL;
    switch (cfg->type) {
    case GW_FRAMER_DELIMITER:
        if (cfg->delimiter_len < 1 || cfg->delimiter_len > GW_FRAMER_DELIM_MAX)
            why = "delimiter must be 1..8 bytes";
        break;
    case GW_FRAMER_LENGTH_FIELD:
        why = gw_framer_check_length_field(cfg);
        break;
    case GW_FRAMER_FIXED_LENGTH:
        if (cfg->fixed_length < 1 || cfg->fixed_length > GW_FRAME_MAX)
            why = "fixed length must be 1..65536 bytes";
        break;
    default:
        why = "framer type must be delimiter, length_field or fixed_length";
        break;
    }
    if (!why)
        return 0;
    if (reason)
        *reason = why;
    return GW_E_CONFIG;
}

/* ---- lifecycle and failure -------------------------------------------------------------- */

int gw_framer_new(const struct gw_framer_config *cfg, struct gw_framer **out)
{
    struct gw_framer *fr;
    int rc;

    *out = NULL;
    rc = gw_framer_config_check(cfg, NULL);
    if (rc)
        return rc;
    fr = calloc(1, sizeof(*fr));
    if (!fr)
        return -ENOMEM;
    fr->cfg = *cfg;
    switch (cfg->type) {
    case GW_FRAMER_DELIMITER:
        fr->limit = GW_FRAME_MAX + cfg->delimiter_len;
        break;
    case GW_FRAMER_LENGTH_FIELD:
        fr->limit = GW_FRAME_MAX + gw_framer_header_len(cfg);
        break;
    case GW_FRAMER_FIXED_LENGTH:
        fr->limit = cfg->fixed_length;
        break;
    }
    *out = fr;
    return 0;
}

void gw_framer_free(struct gw_framer *fr)
{
    if (!fr)
        return;
    free(fr->buf);
    free(fr);
}

size_t gw_framer_buffered(const struct gw_framer *fr)
{
    return fr->n;
}

bool gw_framer_idle(const struct gw_framer *fr)
{
    return fr->n == 0 && fr->err == 0;
}

const char *gw_framer_error_reason(const struct gw_framer *fr)
{
    return fr->reason;
}

__attribute__((format(printf, 3, 4))) static int gw_framer_fail(struct gw_framer *fr, int err,
                                                                const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(fr->reason, sizeof(fr->reason), fmt, ap);
    va_end(ap);
    fr->err = err;
    return err;
}

static int gw_framer_too_large(struct gw_framer *fr, size_t at_least)
{
    return gw_framer_fail(fr, GW_E_FRAME_TOO_LARGE,
                          "frame of at least %zu bytes exceeds the %d-byte limit", at_least,
                          GW_FRAME_MAX);
}

static int gw_framer_emit(struct gw_framer *fr, gw_framer_frame_fn on_frame, void *ctx,
                          const uint8_t *frame, size_t len)
{
    int rc = on_frame(ctx, frame, len);

    if (rc)
        return gw_framer_fail(fr, rc, "frame handler stopped the stream (%d)", rc);
    return 0;
}

/* Makes room for need bytes in buf (need <= limit). */
static int gw_framer_reserve(struct gw_framer *fr, size_t need)
{
    size_t cap = fr->cap ? fr->cap : 256;
    uint8_t *nb;

    if (need <= fr->cap)
        return 0;
    /* Unreachable by the callers' checks; kept so a broken invariant cannot overflow buf. */
    if (need > fr->limit)
        return gw_framer_too_large(fr, need);
    while (cap < need)
        cap *= 2;
    if (cap > fr->limit)
        cap = fr->limit;
    nb = realloc(fr->buf, cap);
    if (!nb)
        return gw_framer_fail(fr, -ENOMEM, "out of memory buffering a frame");
    fr->buf = nb;
    fr->cap = cap;
    return 0;
}

static int gw_framer_append(struct gw_framer *fr, const uint8_t *data, size_t len)
{
    int rc;

    if (len == 0)
        return 0;
    rc = gw_framer_reserve(fr, fr->n + len);
    if (rc)
        return rc;
    memcpy(fr->buf + fr->n, data, len);
    fr->n += len;
    return 0;
}

/* The buffered frame was delivered: forget it, and give back a large buffer. */
static void gw_framer_reset_buffer(struct gw_framer *fr)
{
    fr->n = 0;
    if (fr->cap > GW_FRAMER_KEEP_CAP) {
        free(fr->buf);
        fr->buf = NULL;
        fr->cap = 0;
    }
}

/* ---- delimiter -------------------------------------------------------------------------- */

/* Emits every delimited frame of d[0..len); *used = bytes consumed (whole frames only). */
static int gw_framer_delim_direct(struct gw_framer *fr, const uint8_t *d, size_t len,
                                  gw_framer_frame_fn on_frame, void *ctx, size_t *used)
{
    const uint8_t *delim = fr->cfg.delimiter;
    size_t dl = fr->cfg.delimiter_len, off = 0;
    const uint8_t *hit;
    int rc;

    while ((hit = memmem(d + off, len - off, delim, dl)) != NULL) {
        size_t flen = (size_t)(hit - (d + off));

        if (flen > GW_FRAME_MAX)
            return gw_framer_too_large(fr, flen);
        rc = gw_framer_emit(fr, on_frame, ctx, d + off, flen);
        if (rc)
            return rc;
        off += flen + dl;
    }
    /* The last dl - 1 bytes may be the start of a delimiter, the rest is payload. */
    if (len - off > GW_FRAME_MAX + dl - 1)
        return gw_framer_too_large(fr, len - off - (dl - 1));
    *used = off;
    return 0;
}

/*
 * Finds where the buffered frame's delimiter ends in d[0..len): it may start in the last
 * dl - 1 buffered bytes (the buffer holds no whole delimiter). On success *content is the
 * frame's payload length and *end the bytes of d consumed through the delimiter.
 */
static bool gw_framer_delim_find(const struct gw_framer *fr, const uint8_t *d, size_t len,
                                 size_t *content, size_t *end)
{
    const uint8_t *delim = fr->cfg.delimiter;
    size_t dl = fr->cfg.delimiter_len;
    size_t tail = fr->n < dl - 1 ? fr->n : dl - 1, head = len < dl - 1 ? len : dl - 1;
    uint8_t win[2 * GW_FRAMER_DELIM_MAX];
    const uint8_t *hit;

    memcpy(win, fr->buf + fr->n - tail, tail);
    memcpy(win + tail, d, head);
    hit = memmem(win, tail + head, delim, dl);
    if (hit && (size_t)(hit - win) < tail) {
        *content = fr->n - tail + (size_t)(hit - win);
        *end = (size_t)(hit - win) + dl - tail;
        return true;
    }
    hit = memmem(d, len, delim, dl);
    if (!hit)
        return false;
    *content = fr->n + (size_t)(hit - d);
    *end = (size_t)(hit - d) + dl;
    return true;
}

/* Continues the buffered frame with d; consumes through its delimiter or all of d. */
static int gw_framer_delim_buffered(struct gw_framer *fr, const uint8_t **d, size_t *len,
                                    gw_framer_frame_fn on_frame, void *ctx)
{
    size_t dl = fr->cfg.delimiter_len, content, end;
    int rc;

    if (!gw_framer_delim_find(fr, *d, *len, &content, &end)) {
        if (fr->n + *len > GW_FRAME_MAX + dl - 1)
            return gw_framer_too_large(fr, fr->n + *len - (dl - 1));
        rc = gw_framer_append(fr, *d, *len);
        *d += *len;
        *len = 0;
        return rc;
    }
    if (content > GW_FRAME_MAX)
        return gw_framer_too_large(fr, content);
    if (content > fr->n) {
        rc = gw_framer_append(fr, *d, content - fr->n);
        if (rc)
            return rc;
    }
    *d += end;
    *len -= end;
    rc = gw_framer_emit(fr, on_frame, ctx, fr->buf, content);
    if (rc)
        return rc;
    gw_framer_reset_buffer(fr);
    return 0;
}

/* ---- length field ----------------------------------------------------------------------- */

/* From a complete header: the whole frame length (header + body), or a failure. */
static int gw_framer_lf_total(struct gw_framer *fr, const uint8_t *hdr, size_t *total)
{
    const uint8_t *p = hdr + fr->cfg.length_field_offset;
    uint32_t field = 0;
    int64_t body;

    for (unsigned i = 0; i < fr->cfg.length_field_size; i++)
        field = field << 8 | p[i];
    body = (int64_t)field + fr->cfg.length_adjustment;
    if (body < 0)
        return gw_framer_fail(fr, GW_E_FRAME_BAD_LENGTH,
                              "length field %" PRIu32 " with adjustment %" PRId32
                              " gives a negative length",
                              field, fr->cfg.length_adjustment);
    if (body > GW_FRAME_MAX)
        return gw_framer_fail(fr, GW_E_FRAME_TOO_LARGE,
                              "length field announces %" PRId64 " bytes, over the %d-byte limit",
                              body, GW_FRAME_MAX);
    *total = gw_framer_header_len(&fr->cfg) + (size_t)body;
    return 0;
}

static int gw_framer_lf_emit(struct gw_framer *fr, gw_framer_frame_fn on_frame, void *ctx,
                             const uint8_t *frame, size_t total)
{
    size_t strip = fr->cfg.initial_bytes_to_strip;

    return gw_framer_emit(fr, on_frame, ctx, frame + strip, total - strip);
}

static int gw_framer_lf_direct(struct gw_framer *fr, const uint8_t *d, size_t len,
                               gw_framer_frame_fn on_frame, void *ctx, size_t *used)
{
    size_t hlen = gw_framer_header_len(&fr->cfg), off = 0, total = 0;
    int rc;

    while (len - off >= hlen) {
        rc = gw_framer_lf_total(fr, d + off, &total);
        if (rc)
            return rc;
        if (len - off < total)
            break;
        rc = gw_framer_lf_emit(fr, on_frame, ctx, d + off, total);
        if (rc)
            return rc;
        off += total;
    }
    *used = off;
    return 0;
}

/* Adds the next bytes of the buffered frame: first its header, then its body. */
static int gw_framer_lf_buffered(struct gw_framer *fr, const uint8_t **d, size_t *len,
                                 gw_framer_frame_fn on_frame, void *ctx)
{
    size_t hlen = gw_framer_header_len(&fr->cfg), want = hlen, take;
    int rc;

    if (fr->n >= hlen) {
        rc = gw_framer_lf_total(fr, fr->buf, &want);
        if (rc)
            return rc;
    }
    take = *len < want - fr->n ? *len : want - fr->n;
    rc = gw_framer_append(fr, *d, take);
    if (rc)
        return rc;
    *d += take;
    *len -= take;
    if (fr->n < want)
        return 0;
    if (want == hlen) {
        /* Header just completed: fail fast on a bad length, or finish a header-only frame. */
        rc = gw_framer_lf_total(fr, fr->buf, &want);
        if (rc || want > hlen)
            return rc;
    }
    rc = gw_framer_lf_emit(fr, on_frame, ctx, fr->buf, want);
    if (rc)
        return rc;
    gw_framer_reset_buffer(fr);
    return 0;
}

/* ---- fixed length ----------------------------------------------------------------------- */

static int gw_framer_fixed_direct(struct gw_framer *fr, const uint8_t *d, size_t len,
                                  gw_framer_frame_fn on_frame, void *ctx, size_t *used)
{
    size_t flen = fr->cfg.fixed_length, off = 0;
    int rc;

    for (; len - off >= flen; off += flen) {
        rc = gw_framer_emit(fr, on_frame, ctx, d + off, flen);
        if (rc)
            return rc;
    }
    *used = off;
    return 0;
}

static int gw_framer_fixed_buffered(struct gw_framer *fr, const uint8_t **d, size_t *len,
                                    gw_framer_frame_fn on_frame, void *ctx)
{
    size_t flen = fr->cfg.fixed_length;
    size_t take = *len < flen - fr->n ? *len : flen - fr->n;
    int rc = gw_framer_append(fr, *d, take);

    if (rc)
        return rc;
    *d += take;
    *len -= take;
    if (fr->n < flen)
        return 0;
    rc = gw_framer_emit(fr, on_frame, ctx, fr->buf, flen);
    if (rc)
        return rc;
    gw_framer_reset_buffer(fr);
    return 0;
}

/* ---- feed ------------------------------------------------------------------------------- */

int gw_framer_feed(struct gw_framer *fr, const void *data, size_t len, gw_framer_frame_fn on_frame,
                   void *ctx)
{
    const uint8_t *d = data;
    size_t used = 0;
    int rc = 0;

    if (!fr || !on_frame || (!data && len))
        return -EINVAL;
    if (fr->err)
        return fr->err;
    while (len > 0 && rc == 0) {
        if (fr->n > 0) {
            /* Finish the frame started by an earlier feed before going zero-copy. */
            if (fr->cfg.type == GW_FRAMER_DELIMITER)
                rc = gw_framer_delim_buffered(fr, &d, &len, on_frame, ctx);
            else if (fr->cfg.type == GW_FRAMER_LENGTH_FIELD)
                rc = gw_framer_lf_buffered(fr, &d, &len, on_frame, ctx);
            else
                rc = gw_framer_fixed_buffered(fr, &d, &len, on_frame, ctx);
            continue;
        }
        if (fr->cfg.type == GW_FRAMER_DELIMITER)
            rc = gw_framer_delim_direct(fr, d, len, on_frame, ctx, &used);
        else if (fr->cfg.type == GW_FRAMER_LENGTH_FIELD)
            rc = gw_framer_lf_direct(fr, d, len, on_frame, ctx, &used);
        else
            rc = gw_framer_fixed_direct(fr, d, len, on_frame, ctx, &used);
        if (rc)
            break;
        /* What is left is the start of one incomplete frame (bounded by the checks above). */
        rc = gw_framer_append(fr, d + used, len - used);
        len = 0;
    }
    return rc;
}

/* ---- encode ----------------------------------------------------------------------------- */

/* Fills the length-field header for a payload of len bytes at out. */
static int gw_framer_lf_header(const struct gw_framer_config *cfg, size_t len, uint8_t *out)
{
    int64_t value = (int64_t)len - cfg->length_adjustment;
    unsigned size = cfg->length_field_size;

    if (value < 0)
        return -EINVAL;
    if (value > (int64_t)gw_framer_field_max(size))
        return -EMSGSIZE;
    memset(out, 0, cfg->length_field_offset);
    for (unsigned i = 0; i < size; i++)
        out[cfg->length_field_offset + i] = (uint8_t)(value >> (8 * (size - 1 - i)));
    return 0;
}

int gw_framer_encode(const struct gw_framer_config *cfg, const void *payload, size_t len,
                     uint8_t **out, size_t *out_len)
{
    size_t pre = 0, post = 0;
    uint8_t hdr[GW_FRAMER_OFFSET_MAX + 4];
    uint8_t *buf;
    int rc;

    *out = NULL;
    *out_len = 0;
    rc = gw_framer_config_check(cfg, NULL);
    if (rc)
        return rc;
    if (!payload && len)
        return -EINVAL;
    if (len > GW_FRAME_MAX)
        return GW_E_FRAME_TOO_LARGE;
    switch (cfg->type) {
    case GW_FRAMER_DELIMITER:
        post = cfg->delimiter_len;
        break;
    case GW_FRAMER_LENGTH_FIELD:
        rc = gw_framer_lf_header(cfg, len, hdr);
        if (rc)
            return rc;
        pre = gw_framer_header_len(cfg);
        break;
    case GW_FRAMER_FIXED_LENGTH:
        if (len != cfg->fixed_length)
            return -EMSGSIZE;
        break;
    }
    buf = malloc(pre + len + post);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, hdr, pre);
    if (len)
        memcpy(buf + pre, payload, len);
    memcpy(buf + pre + len, cfg->delimiter, post);
    /* The receiver cuts at the first delimiter: one inside the payload, or one starting in
     * its tail and ending in the appended delimiter ("ab" + "aba"), would split it. */
    if (post && memmem(buf, len + post, cfg->delimiter, post) != buf + len) {
        free(buf);
        return -EINVAL;
    }
    *out = buf;
    *out_len = pre + len + post;
    return 0;
}
