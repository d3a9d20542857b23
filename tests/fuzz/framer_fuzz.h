#ifndef FRAMER_FUZZ_H
#define FRAMER_FUZZ_H
/*
 * Shared by the three framer fuzz targets (header only: the build globs fuzz_*.c, one
 * executable each). Input layout: 3 config bytes, 1 split-seed byte, 1 flags byte, then the
 * stream. A flags byte of 0xFF repeats the stream up to about GW_FRAME_MAX bytes (the split
 * seed's low bits pick the exact length, from 64 below to 48 above the limit) so the 64 KiB
 * limit is reached from small inputs.
 *
 * Each target computes the expected frames with a whole-buffer oracle, then feeds the stream
 * in seed-chosen pieces: the framer must deliver exactly the oracle's frames and end with
 * its error (or its trailing byte count).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_error.h"
#include "gw_framer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define FUZZ_HDR 5

/* Whether the input asks for the stream repeated up to the frame limit. */
static inline int fuzz_long_stream(const uint8_t *data)
{
    return data[4] == 0xFF;
}
/* Streams longer than this are skipped. The oracle's arrays are static: a fresh 1 MiB
 * allocation per run (mmap + page faults under ASan) cost more than the framer itself. The
 * stream itself is malloc'd to its exact size so ASan sees any read past its end. */
#define FUZZ_STREAM_MAX (1u << 17)

static size_t fuzz_off_buf[FUZZ_STREAM_MAX + 1], fuzz_len_buf[FUZZ_STREAM_MAX + 1];

struct fuzz_oracle {
    size_t count;      /* frames expected */
    size_t *off, *len; /* where each expected frame lies in the stream */
    int err;           /* error expected after the frames, or 0 */
    size_t trailing;   /* bytes left buffered when err == 0 */
    size_t seen;       /* frames delivered so far */
    size_t cap;        /* slots in off/len */
    const uint8_t *stream;
    const struct gw_framer_config *cfg;
};

/* Every frame consumes at least one byte, so len + 1 slots always suffice. */
static inline int fuzz_oracle_init(struct fuzz_oracle *o, const uint8_t *stream, size_t len,
                                   const struct gw_framer_config *cfg)
{
    memset(o, 0, sizeof(*o));
    o->cap = len + 1;
    o->off = fuzz_off_buf;
    o->len = fuzz_len_buf;
    o->stream = stream;
    o->cfg = cfg;
    return len <= FUZZ_STREAM_MAX ? 0 : -1;
}

static inline void fuzz_oracle_add(struct fuzz_oracle *o, size_t off, size_t len)
{
    FUZZ_CHECK(o->count < o->cap);
    o->off[o->count] = off;
    o->len[o->count] = len;
    o->count++;
}

static inline void fuzz_oracle_fini(struct fuzz_oracle *o)
{
    (void)o;
}

/* Frame callback: the next frame must equal the oracle's next one. */
static inline int fuzz_on_frame(void *ctx, const uint8_t *frame, size_t len)
{
    struct fuzz_oracle *o = ctx;

    FUZZ_CHECK(o->seen < o->count);
    FUZZ_CHECK(len == o->len[o->seen]);
    FUZZ_CHECK(len == 0 || memcmp(frame, o->stream + o->off[o->seen], len) == 0);
    FUZZ_CHECK(len <= GW_FRAME_MAX + GW_FRAMER_OFFSET_MAX + 4);
    o->seen++;
    return 0;
}

/* The stream to frame: the input after the header, maybe repeated up to the limit; a new
 * buffer the caller frees, NULL when too long. */
static inline uint8_t *fuzz_stream(const uint8_t *data, size_t size, size_t *len)
{
    const uint8_t *rest = data + FUZZ_HDR;
    size_t n = size - FUZZ_HDR, total = n;
    uint8_t *s;

    /* 1 flags value in 256: long streams cost thousands of frames each, and the limit needs
     * few of them; the split seed's low bits pick the length (64 below to 48 above). */
    if (fuzz_long_stream(data) && n > 0)
        total = GW_FRAME_MAX - 64 + (size_t)(data[3] & 7) * 16;
    if (total > FUZZ_STREAM_MAX)
        return NULL;
    s = malloc(total ? total : 1);
    for (size_t i = 0; s && i < total; i += n)
        memcpy(s + i, rest, total - i < n ? total - i : n);
    *len = total;
    return s;
}

/* Feeds stream in pieces chosen by seed; checks the outcome against the oracle. */
static inline void fuzz_feed_and_check(const struct gw_framer_config *cfg, const uint8_t *stream,
                                       size_t len, uint8_t seed, struct fuzz_oracle *o)
{
    struct gw_framer *fr = NULL;
    uint32_t x = 0x9E3779B9u ^ seed;
    size_t pos = 0, piece_max;
    int rc = 0;

    FUZZ_CHECK(gw_framer_new(cfg, &fr) == 0);
    switch (seed & 3) {
    case 0:
        piece_max = len ? len : 1;
        break;
    case 1:
        piece_max = len > 4096 ? 512 : 1;
        break; /* byte by byte for small streams; long ones in small pieces, bounded cost */
    case 2:
        piece_max = len > 4096 ? 4096 : 64;
        break;
    default:
        piece_max = 8192;
        break;
    }
    while (pos < len && rc == 0) {
        size_t piece;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        piece = 1 + x % piece_max;
        if (piece > len - pos)
            piece = len - pos;
        rc = gw_framer_feed(fr, stream + pos, piece, fuzz_on_frame, o);
        pos += piece;
        FUZZ_CHECK(gw_framer_buffered(fr) <= GW_FRAME_MAX + GW_FRAMER_OFFSET_MAX + 4);
    }
    FUZZ_CHECK(o->seen == o->count);
    FUZZ_CHECK(rc == o->err);
    if (rc == 0) {
        FUZZ_CHECK(gw_framer_buffered(fr) == o->trailing);
    } else {
        /* Failed for good: more input is refused and delivers nothing. */
        FUZZ_CHECK(gw_framer_feed(fr, stream, len, fuzz_on_frame, o) == rc);
        FUZZ_CHECK(gw_framer_error_reason(fr)[0] != '\0');
    }
    gw_framer_free(fr);
}

#endif
