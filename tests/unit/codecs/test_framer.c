/*
 * DESIGN: unit tests of codecs/gw_framer.c. Every framer is fed its input split at every
 * point (and byte by byte) and must deliver the same frames; limits are probed just at and
 * just over GW_FRAME_MAX; the golden vectors of tests/vectors/frames/ are decoded (and
 * re-encoded where the config makes encode the inverse). Expected frames are built by hand
 * in each test, never by the code under test. Config checks and encode: test_framer_config.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gw_error.h"
#include "gw_framer.h"
#include "gw_util.h"

/* ---- helpers ---------------------------------------------------------------------------- */

#define MAX_FRAMES 64

struct frames {
    size_t count;
    uint8_t *data[MAX_FRAMES];
    size_t len[MAX_FRAMES];
    const uint8_t *ptr[MAX_FRAMES]; /* where the framer delivered it from */
    int stop_at;                    /* return stop_code at this frame index (1-based), 0 = never */
    int stop_code;
};

static void frames_clear(struct frames *f)
{
    for (size_t i = 0; i < f->count; i++)
        free(f->data[i]);
    memset(f, 0, sizeof(*f));
}

static int collect(void *ctx, const uint8_t *frame, size_t len)
{
    struct frames *f = ctx;

    assert_true(f->count < MAX_FRAMES);
    f->data[f->count] = malloc(len ? len : 1);
    assert_non_null(f->data[f->count]);
    if (len)
        memcpy(f->data[f->count], frame, len);
    f->len[f->count] = len;
    f->ptr[f->count] = frame;
    f->count++;
    if (f->stop_at && (int)f->count == f->stop_at)
        return f->stop_code;
    return 0;
}

/* A list of expected frames. */
struct expect {
    size_t count;
    const uint8_t *data[MAX_FRAMES];
    size_t len[MAX_FRAMES];
};

static void expect_add(struct expect *e, const void *data, size_t len)
{
    assert_true(e->count < MAX_FRAMES);
    e->data[e->count] = data;
    e->len[e->count] = len;
    e->count++;
}

static void expect_str(struct expect *e, const char *s)
{
    expect_add(e, s, strlen(s));
}

static void assert_frames(const struct frames *got, const struct expect *want, const char *what)
{
    if (got->count != want->count)
        fail_msg("%s: %zu frames, expected %zu", what, got->count, want->count);
    for (size_t i = 0; i < want->count; i++) {
        if (got->len[i] != want->len[i])
            fail_msg("%s: frame %zu has %zu bytes, expected %zu", what, i, got->len[i],
                     want->len[i]);
        if (want->len[i] && memcmp(got->data[i], want->data[i], want->len[i]) != 0)
            fail_msg("%s: frame %zu content differs", what, i);
    }
}

/*
 * Feeds input in the pieces given by cuts (ascending offsets) into a new framer and checks
 * frames, the final return code, and the bytes left buffered.
 */
static void run_cuts(const struct gw_framer_config *cfg, const uint8_t *in, size_t len,
                     const size_t *cuts, size_t ncuts, const struct expect *want, int want_rc,
                     size_t want_trailing, const char *what)
{
    struct gw_framer *fr = NULL;
    struct frames got = {0};
    size_t prev = 0;
    int rc = 0;

    assert_int_equal(gw_framer_new(cfg, &fr), 0);
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        rc = gw_framer_feed(fr, in + prev, end - prev, collect, &got);
        prev = end;
        /* Bounded buffering whatever the split. */
        assert_true(gw_framer_buffered(fr) <= GW_FRAME_MAX + GW_FRAMER_OFFSET_MAX + 4);
    }
    if (rc != want_rc)
        fail_msg("%s: feed returned %d (%s), expected %d", what, rc, gw_error_name(rc), want_rc);
    assert_frames(&got, want, what);
    if (want_rc == 0 && gw_framer_buffered(fr) != want_trailing)
        fail_msg("%s: %zu bytes buffered, expected %zu", what, gw_framer_buffered(fr),
                 want_trailing);
    frames_clear(&got);
    gw_framer_free(fr);
}

/* Whole input, every single split point, every pair of split points (short inputs), and
 * byte by byte: all must give the same result. */
static void run_all_splits(const struct gw_framer_config *cfg, const void *input, size_t len,
                           const struct expect *want, int want_rc, size_t want_trailing)
{
    const uint8_t *in = input;
    size_t cuts[2];
    size_t *each = malloc((len ? len : 1) * sizeof(*each));

    assert_non_null(each);
    run_cuts(cfg, in, len, NULL, 0, want, want_rc, want_trailing, "whole");
    for (size_t k = 0; k <= len; k++) {
        cuts[0] = k;
        run_cuts(cfg, in, len, cuts, 1, want, want_rc, want_trailing, "one split");
    }
    for (size_t i = 0; len <= 160 && i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            cuts[0] = i;
            cuts[1] = j;
            run_cuts(cfg, in, len, cuts, 2, want, want_rc, want_trailing, "two splits");
        }
    }
    for (size_t k = 0; k < len; k++)
        each[k] = k + 1;
    run_cuts(cfg, in, len, each, len ? len - 1 : 0, want, want_rc, want_trailing, "byte by byte");
    free(each);
}

static struct gw_framer_config delim_cfg(const char *delim)
{
    struct gw_framer_config cfg;

    gw_framer_config_init(&cfg, GW_FRAMER_DELIMITER);
    if (delim)
        assert_int_equal(gw_framer_config_set_delimiter(&cfg, delim, NULL), 0);
    return cfg;
}

static struct gw_framer_config lf_cfg(unsigned size, size_t offset, int32_t adj, size_t strip)
{
    struct gw_framer_config cfg;

    gw_framer_config_init(&cfg, GW_FRAMER_LENGTH_FIELD);
    cfg.length_field_size = size;
    cfg.length_field_offset = offset;
    cfg.length_adjustment = adj;
    cfg.initial_bytes_to_strip = strip;
    return cfg;
}

static struct gw_framer_config fixed_cfg(size_t n)
{
    struct gw_framer_config cfg;

    gw_framer_config_init(&cfg, GW_FRAMER_FIXED_LENGTH);
    cfg.fixed_length = n;
    return cfg;
}

/* Feeds everything in one call to a new framer; returns the rc, frames in *got. */
static int feed_once(const struct gw_framer_config *cfg, const void *in, size_t len,
                     struct frames *got, struct gw_framer **keep)
{
    struct gw_framer *fr = NULL;
    int rc;

    assert_int_equal(gw_framer_new(cfg, &fr), 0);
    rc = gw_framer_feed(fr, in, len, collect, got);
    if (keep)
        *keep = fr;
    else
        gw_framer_free(fr);
    return rc;
}

/* ---- delimiter -------------------------------------------------------------------------- */

static void test_delimiter_newline_all_splits(void **state)
{
    static const char in[] = "{\"id\":\"1\"}\n\nabc\nlast\npartial";
    struct gw_framer_config cfg = delim_cfg(NULL);
    struct expect want = {0};

    (void)state;
    expect_str(&want, "{\"id\":\"1\"}");
    expect_str(&want, "");
    expect_str(&want, "abc");
    expect_str(&want, "last");
    run_all_splits(&cfg, in, strlen(in), &want, 0, strlen("partial"));
}

static void test_delimiter_multibyte_all_splits(void **state)
{
    static const char in[] = "a\r\nb\r\r\n\r\n\r\rx\r\n\r";
    struct gw_framer_config cfg = delim_cfg("\\r\\n");
    struct expect want = {0};

    (void)state;
    expect_str(&want, "a");
    expect_str(&want, "b\r");
    expect_str(&want, "");
    expect_str(&want, "\r\rx");
    run_all_splits(&cfg, in, strlen(in), &want, 0, 1);
}

static void test_delimiter_eight_bytes(void **state)
{
    static const char in[] = "one<<END>>>two<<END>><<END>>>";
    struct gw_framer_config cfg = delim_cfg("<<END>>>");
    struct expect want = {0};

    (void)state;
    assert_int_equal(cfg.delimiter_len, 8);
    expect_str(&want, "one");
    /* "two<<END>><<END>>>": the first full match starts at the second "<<END>>". */
    expect_str(&want, "two<<END>>");
    run_all_splits(&cfg, in, strlen(in), &want, 0, 0);
}

/* Several frames in one feed come straight from the caller's buffer (no copy). */
static void test_delimiter_zero_copy(void **state)
{
    static const char in[] = "a\nbb\nccc\n";
    struct gw_framer_config cfg = delim_cfg(NULL);
    struct frames got = {0};

    (void)state;
    assert_int_equal(feed_once(&cfg, in, strlen(in), &got, NULL), 0);
    assert_int_equal(got.count, 3);
    assert_ptr_equal(got.ptr[0], (const uint8_t *)in);
    assert_ptr_equal(got.ptr[1], (const uint8_t *)in + 2);
    assert_ptr_equal(got.ptr[2], (const uint8_t *)in + 5);
    frames_clear(&got);
}

static void test_delimiter_limit(void **state)
{
    uint8_t *in = malloc(GW_FRAME_MAX + 2);
    struct gw_framer_config cfg = delim_cfg(NULL);
    struct gw_framer *fr = NULL;
    struct frames got = {0};
    struct expect want = {0};

    (void)state;
    assert_non_null(in);
    memset(in, 'x', GW_FRAME_MAX + 2);
    /* Exactly 65536 bytes + delimiter: one frame, fed whole and in 1000-byte pieces. */
    in[GW_FRAME_MAX] = '\n';
    expect_add(&want, in, GW_FRAME_MAX);
    run_cuts(&cfg, in, GW_FRAME_MAX + 1, NULL, 0, &want, 0, 0, "at limit");
    {
        size_t cuts[66];
        for (size_t i = 0; i < 66; i++)
            cuts[i] = (i + 1) * 1000;
        run_cuts(&cfg, in, GW_FRAME_MAX + 1, cuts, 65, &want, 0, 0, "at limit, pieces");
    }
    /* 65537 bytes + delimiter: refused, whole or split. */
    in[GW_FRAME_MAX] = 'x';
    in[GW_FRAME_MAX + 1] = '\n';
    want.count = 0;
    run_cuts(&cfg, in, GW_FRAME_MAX + 2, NULL, 0, &want, GW_E_FRAME_TOO_LARGE, 0, "over");
    {
        size_t cut = GW_FRAME_MAX;
        run_cuts(&cfg, in, GW_FRAME_MAX + 2, &cut, 1, &want, GW_E_FRAME_TOO_LARGE, 0,
                 "over, split");
    }
    /* No delimiter at all: refused as soon as 65537 bytes are held, never buffering more. */
    assert_int_equal(gw_framer_new(&cfg, &fr), 0);
    assert_int_equal(gw_framer_feed(fr, in, GW_FRAME_MAX, collect, &got), 0);
    assert_int_equal(gw_framer_buffered(fr), GW_FRAME_MAX);
    assert_int_equal(gw_framer_feed(fr, in, 1, collect, &got), GW_E_FRAME_TOO_LARGE);
    assert_true(gw_framer_buffered(fr) <= GW_FRAME_MAX + 1);
    assert_non_null(strstr(gw_framer_error_reason(fr), "65536"));
    assert_non_null(strstr(gw_strerror(GW_E_FRAME_TOO_LARGE), "65536"));
    assert_int_equal(got.count, 0);
    gw_framer_free(fr);
    /* Same in one feed. */
    assert_int_equal(feed_once(&cfg, in, GW_FRAME_MAX + 1, &got, NULL), GW_E_FRAME_TOO_LARGE);
    /* With "\r\n" the last byte held may be half a delimiter: 65537 bytes can still end
     * well, 65538 cannot. */
    cfg = delim_cfg("\\r\\n");
    in[GW_FRAME_MAX] = '\r';
    assert_int_equal(gw_framer_new(&cfg, &fr), 0);
    assert_int_equal(gw_framer_feed(fr, in, GW_FRAME_MAX + 1, collect, &got), 0);
    assert_int_equal(gw_framer_feed(fr, "\n", 1, collect, &got), 0);
    assert_int_equal(got.count, 1);
    assert_int_equal(got.len[0], GW_FRAME_MAX);
    frames_clear(&got);
    gw_framer_free(fr);
    in[GW_FRAME_MAX] = 'x';
    assert_int_equal(feed_once(&cfg, in, GW_FRAME_MAX + 1, &got, NULL), 0);
    assert_int_equal(feed_once(&cfg, in, GW_FRAME_MAX + 2, &got, NULL), GW_E_FRAME_TOO_LARGE);
    assert_int_equal(got.count, 0);
    free(in);
}

/* ---- length field ----------------------------------------------------------------------- */

/* Appends one frame built by hand: offset bytes 0xEE, big-endian field, body. */
static size_t build_lf(uint8_t *out, unsigned size, size_t offset, uint32_t field, const void *body,
                       size_t body_len)
{
    size_t n = 0;

    for (size_t i = 0; i < offset; i++)
        out[n++] = 0xEE;
    for (unsigned i = 0; i < size; i++)
        out[n++] = (uint8_t)(field >> (8 * (size - 1 - i)));
    memcpy(out + n, body, body_len);
    return n + body_len;
}

static void check_lf_combo(unsigned size, size_t offset, int32_t adj, size_t strip)
{
    static const char *bodies[] = {"hello", "ab", "", "{\"temp\":25}"};
    struct gw_framer_config cfg = lf_cfg(size, offset, adj, strip);
    uint8_t in[256], *enc = NULL;
    size_t pos = 0, starts[4], ends[4], enc_len = 0;
    struct expect want = {0};
    const char *reason = NULL;

    if (gw_framer_config_check(&cfg, &reason) != 0)
        fail_msg("size %u offset %zu adj %d strip %zu: %s", size, offset, adj, strip, reason);
    for (size_t i = 0; i < 4; i++) {
        size_t blen = strlen(bodies[i]);
        if ((int64_t)blen - adj < 0)
            continue; /* the field cannot express this body with this adjustment */
        starts[want.count] = pos;
        pos += build_lf(in + pos, size, offset, (uint32_t)((int64_t)blen - adj), bodies[i], blen);
        ends[want.count] = pos;
        expect_add(&want, in + starts[want.count] + strip, pos - starts[want.count] - strip);
    }
    /* A header cut short at the end stays buffered. */
    in[pos++] = 0xEE;
    run_all_splits(&cfg, in, pos, &want, 0, 1);
    /* encode writes the same header (offset bytes are zeros) and body. */
    for (size_t i = 0; i < want.count; i++) {
        size_t hlen = offset + size, blen = ends[i] - starts[i] - hlen;
        assert_int_equal(gw_framer_encode(&cfg, in + starts[i] + hlen, blen, &enc, &enc_len), 0);
        assert_int_equal(enc_len, ends[i] - starts[i]);
        for (size_t k = 0; k < offset; k++)
            assert_int_equal(enc[k], 0);
        assert_memory_equal(enc + offset, in + starts[i] + offset, enc_len - offset);
        free(enc);
    }
}

static void test_length_field_combinations(void **state)
{
    static const unsigned sizes[] = {1, 2, 4};
    static const size_t offsets[] = {0, 3};

    (void)state;
    for (size_t s = 0; s < 3; s++) {
        for (size_t o = 0; o < 2; o++) {
            size_t hlen = offsets[o] + sizes[s];
            int32_t adjs[] = {0, -(int32_t)hlen, 2};
            size_t strips[] = {0, offsets[o], hlen};
            for (size_t a = 0; a < 3; a++)
                for (size_t k = 0; k < 3; k++)
                    check_lf_combo(sizes[s], offsets[o], adjs[a], strips[k]);
        }
    }
}

static void test_length_field_header_truncated(void **state)
{
    struct gw_framer_config cfg = lf_cfg(4, 2, 0, 6);
    static const uint8_t in[] = {0xAA, 0xBB, 0x00, 0x00, 0x00, 0x03, 'a', 'b', 'c'};
    struct gw_framer *fr = NULL;
    struct frames got = {0};

    (void)state;
    assert_int_equal(gw_framer_new(&cfg, &fr), 0);
    assert_true(gw_framer_idle(fr));
    /* 5 of 6 header bytes: nothing yet, all held. */
    assert_int_equal(gw_framer_feed(fr, in, 5, collect, &got), 0);
    assert_int_equal(got.count, 0);
    assert_int_equal(gw_framer_buffered(fr), 5);
    assert_false(gw_framer_idle(fr));
    assert_int_equal(gw_framer_feed(fr, in + 5, 3, collect, &got), 0);
    assert_int_equal(got.count, 0);
    assert_int_equal(gw_framer_feed(fr, in + 8, 1, collect, &got), 0);
    assert_int_equal(got.count, 1);
    assert_int_equal(got.len[0], 3);
    assert_memory_equal(got.data[0], "abc", 3);
    assert_true(gw_framer_idle(fr));
    frames_clear(&got);
    gw_framer_free(fr);
}

static void test_length_field_limit(void **state)
{
    uint8_t *in = calloc(1, GW_FRAME_MAX + 8);
    struct gw_framer_config cfg = lf_cfg(4, 0, 0, 4);
    struct gw_framer *fr = NULL;
    struct frames got = {0};
    struct expect want = {0};
    size_t cut = 4 + GW_FRAME_MAX / 2;

    (void)state;
    assert_non_null(in);
    /* Body of exactly 65536 bytes: delivered. */
    build_lf(in, 4, 0, GW_FRAME_MAX, in + 4, 0);
    memset(in + 4, 'y', GW_FRAME_MAX);
    expect_add(&want, in + 4, GW_FRAME_MAX);
    run_cuts(&cfg, in, GW_FRAME_MAX + 4, NULL, 0, &want, 0, 0, "lf at limit");
    run_cuts(&cfg, in, GW_FRAME_MAX + 4, &cut, 1, &want, 0, 0, "lf at limit, split");
    /* 65537 announced: refused as soon as the header is complete, before any body. */
    build_lf(in, 4, 0, GW_FRAME_MAX + 1, in + 4, 0);
    assert_int_equal(gw_framer_new(&cfg, &fr), 0);
    assert_int_equal(gw_framer_feed(fr, in, 3, collect, &got), 0);
    assert_int_equal(gw_framer_feed(fr, in + 3, 1, collect, &got), GW_E_FRAME_TOO_LARGE);
    assert_non_null(strstr(gw_framer_error_reason(fr), "65536"));
    assert_int_equal(got.count, 0);
    gw_framer_free(fr);
    /* The adjustment counts: 2-byte field 65535 + 1 fits, + 2 does not. */
    build_lf(in, 2, 0, 65535, in, 0);
    cfg = lf_cfg(2, 0, 1, 2);
    assert_int_equal(feed_once(&cfg, in, 2 + GW_FRAME_MAX, &got, NULL), 0);
    assert_int_equal(got.count, 1);
    assert_int_equal(got.len[0], GW_FRAME_MAX);
    frames_clear(&got);
    cfg = lf_cfg(2, 0, 2, 2);
    assert_int_equal(feed_once(&cfg, in, 2, &got, NULL), GW_E_FRAME_TOO_LARGE);
    /* Any 4-byte value >= 2^31 (negative for the reference) is over the limit. */
    cfg = lf_cfg(4, 0, 0, 4);
    build_lf(in, 4, 0, 0xFFFFFFFFu, in, 0);
    assert_int_equal(feed_once(&cfg, in, 4, &got, NULL), GW_E_FRAME_TOO_LARGE);
    free(in);
}

static void test_length_field_negative(void **state)
{
    struct gw_framer_config cfg = lf_cfg(2, 0, -2, 0);
    static const uint8_t in[] = {0x00, 0x01, 'z'};
    struct frames got = {0};
    struct gw_framer *fr = NULL;

    (void)state;
    assert_int_equal(feed_once(&cfg, in, sizeof(in), &got, &fr), GW_E_FRAME_BAD_LENGTH);
    assert_non_null(strstr(gw_framer_error_reason(fr), "negative"));
    assert_int_equal(got.count, 0);
    gw_framer_free(fr);
}

static void test_zero_length_frames(void **state)
{
    struct gw_framer_config dcfg = delim_cfg(NULL), lcfg = lf_cfg(2, 0, 0, 2);
    static const uint8_t lf_in[] = {0, 0, 0, 0, 0, 1, 'q', 0, 0};
    struct expect want = {0};

    (void)state;
    expect_str(&want, "");
    expect_str(&want, "");
    expect_str(&want, "");
    run_all_splits(&dcfg, "\n\n\n", 3, &want, 0, 0);
    want.count = 0;
    expect_str(&want, "");
    expect_str(&want, "");
    expect_str(&want, "q");
    expect_str(&want, "");
    run_all_splits(&lcfg, lf_in, sizeof(lf_in), &want, 0, 0);
}

/* ---- fixed length ----------------------------------------------------------------------- */

static void test_fixed_length_all_splits(void **state)
{
    static const char in[] = "abcdefghijklmnopq";
    struct gw_framer_config cfg = fixed_cfg(5);
    struct expect want = {0};

    (void)state;
    expect_add(&want, "abcde", 5);
    expect_add(&want, "fghij", 5);
    expect_add(&want, "klmno", 5);
    run_all_splits(&cfg, in, strlen(in), &want, 0, 2);
    cfg = fixed_cfg(1);
    want.count = 0;
    expect_add(&want, "x", 1);
    expect_add(&want, "y", 1);
    run_all_splits(&cfg, "xy", 2, &want, 0, 0);
}

static void test_fixed_length_limit(void **state)
{
    struct gw_framer_config cfg = fixed_cfg(GW_FRAME_MAX);
    uint8_t *in = malloc(GW_FRAME_MAX * 2);
    struct expect want = {0};
    size_t cuts[] = {1, GW_FRAME_MAX - 1, GW_FRAME_MAX + 1};
    const char *reason = NULL;

    (void)state;
    assert_non_null(in);
    for (size_t i = 0; i < GW_FRAME_MAX * 2; i++)
        in[i] = (uint8_t)(i * 7);
    expect_add(&want, in, GW_FRAME_MAX);
    expect_add(&want, in + GW_FRAME_MAX, GW_FRAME_MAX);
    run_cuts(&cfg, in, GW_FRAME_MAX * 2, cuts, 3, &want, 0, 0, "fixed 65536");
    cfg.fixed_length = GW_FRAME_MAX + 1;
    assert_int_equal(gw_framer_config_check(&cfg, &reason), GW_E_CONFIG);
    assert_non_null(strstr(reason, "65536"));
    free(in);
}

/* ---- failure behaviour ------------------------------------------------------------------ */

static void test_failed_framer_refuses_input(void **state)
{
    struct gw_framer_config cfg = lf_cfg(4, 0, 0, 4);
    static const uint8_t bad[] = {0x7F, 0xFF, 0xFF, 0xFF};
    static const uint8_t good[] = {0, 0, 0, 1, 'a'};
    struct gw_framer *fr = NULL;
    struct frames got = {0};

    (void)state;
    assert_int_equal(feed_once(&cfg, bad, sizeof(bad), &got, &fr), GW_E_FRAME_TOO_LARGE);
    assert_false(gw_framer_idle(fr));
    assert_int_equal(gw_framer_feed(fr, good, sizeof(good), collect, &got), GW_E_FRAME_TOO_LARGE);
    assert_int_equal(got.count, 0);
    gw_framer_free(fr);
}

static void test_callback_stops_stream(void **state)
{
    struct gw_framer_config cfg = delim_cfg(NULL);
    struct frames got = {.stop_at = 2, .stop_code = -EPROTO};
    struct gw_framer *fr = NULL;

    (void)state;
    assert_int_equal(feed_once(&cfg, "a\nb\nc\n", 6, &got, &fr), -EPROTO);
    assert_int_equal(got.count, 2);
    assert_int_equal(gw_framer_feed(fr, "d\n", 2, collect, &got), -EPROTO);
    assert_int_equal(got.count, 2);
    frames_clear(&got);
    gw_framer_free(fr);
}

/* ---- golden vectors --------------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Bytes of a vector item: "hex" strings, or text items. *out is malloc'd. */
static size_t vector_bytes(const cJSON *item, bool text, uint8_t **out)
{
    size_t n;

    assert_true(cJSON_IsString(item));
    n = strlen(item->valuestring);
    *out = malloc(n + 1);
    assert_non_null(*out);
    if (text) {
        memcpy(*out, item->valuestring, n);
        return n;
    }
    assert_int_equal(gw_hex_decode(item->valuestring, n, *out, n / 2), 0);
    return n / 2;
}

static size_t json_size(const cJSON *obj, const char *key, size_t dflt)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(it) ? (size_t)it->valuedouble : dflt;
}

static void vector_config(const cJSON *c, struct gw_framer_config *cfg)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(c, "type");
    const cJSON *delim = cJSON_GetObjectItemCaseSensitive(c, "delimiter");
    const cJSON *adj = cJSON_GetObjectItemCaseSensitive(c, "lengthAdjustment");
    enum gw_framer_type t;

    assert_true(cJSON_IsString(type));
    assert_int_equal(gw_framer_type_from_name(type->valuestring, &t), 0);
    gw_framer_config_init(cfg, t);
    if (cJSON_IsString(delim))
        assert_int_equal(gw_framer_config_set_delimiter(cfg, delim->valuestring, NULL), 0);
    cfg->length_field_offset = json_size(c, "lengthFieldOffset", 0);
    cfg->length_field_size = (unsigned)json_size(c, "lengthFieldLength", 4);
    cfg->length_adjustment = cJSON_IsNumber(adj) ? (int32_t)adj->valuedouble : 0;
    cfg->initial_bytes_to_strip = json_size(c, "initialBytesToStrip", 0);
    cfg->fixed_length = json_size(c, "fixedLength", 0);
    assert_int_equal(gw_framer_config_check(cfg, NULL), 0);
}

static void run_vector(const char *path)
{
    size_t len, in_len, total = 0;
    char *text = read_file(path, &len);
    cJSON *doc = cJSON_Parse(text), *it;
    const cJSON *err, *reenc;
    struct gw_framer_config cfg;
    struct expect want = {0};
    uint8_t *input = NULL, *frames[MAX_FRAMES], *joined;
    bool is_text;
    int want_rc = 0;

    assert_non_null(doc);
    vector_config(cJSON_GetObjectItemCaseSensitive(doc, "config"), &cfg);
    is_text = cJSON_GetObjectItemCaseSensitive(doc, "input_text") != NULL;
    in_len = vector_bytes(cJSON_GetObjectItemCaseSensitive(doc, is_text ? "input_text" : "input"),
                          is_text, &input);
    cJSON_ArrayForEach(it,
                       cJSON_GetObjectItemCaseSensitive(doc, is_text ? "frames_text" : "frames"))
    {
        size_t n = vector_bytes(it, is_text, &frames[want.count]);
        expect_add(&want, frames[want.count], n);
    }
    err = cJSON_GetObjectItemCaseSensitive(doc, "error");
    if (cJSON_IsString(err))
        want_rc = strcmp(err->valuestring, "GW_E_FRAME_TOO_LARGE") == 0    ? GW_E_FRAME_TOO_LARGE
                  : strcmp(err->valuestring, "GW_E_FRAME_BAD_LENGTH") == 0 ? GW_E_FRAME_BAD_LENGTH
                                                                           : 1;
    run_all_splits(&cfg, input, in_len, &want, want_rc, json_size(doc, "trailing", 0));
    /* Re-encoding every frame must give back the input byte for byte. */
    reenc = cJSON_GetObjectItemCaseSensitive(doc, "reencode");
    joined = malloc(in_len + 1);
    assert_non_null(joined);
    for (size_t i = 0; cJSON_IsTrue(reenc) && i < want.count; i++) {
        uint8_t *enc = NULL;
        size_t enc_len = 0;
        assert_int_equal(gw_framer_encode(&cfg, want.data[i], want.len[i], &enc, &enc_len), 0);
        assert_true(total + enc_len <= in_len);
        memcpy(joined + total, enc, enc_len);
        total += enc_len;
        free(enc);
    }
    if (cJSON_IsTrue(reenc)) {
        assert_int_equal(total, in_len);
        assert_memory_equal(joined, input, in_len);
    }
    free(joined);
    for (size_t i = 0; i < want.count; i++)
        free(frames[i]);
    free(input);
    cJSON_Delete(doc);
    free(text);
}

static void test_vectors(void **state)
{
    const char *dir = GW_TEST_DATA_DIR "/vectors/frames";
    DIR *d = opendir(dir);
    struct dirent *e;
    int count = 0;

    (void)state;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        char path[1024];
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        print_message("vector %s\n", e->d_name);
        run_vector(path);
        count++;
    }
    closedir(d);
    assert_true(count >= 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delimiter_newline_all_splits),
        cmocka_unit_test(test_delimiter_multibyte_all_splits),
        cmocka_unit_test(test_delimiter_eight_bytes),
        cmocka_unit_test(test_delimiter_zero_copy),
        cmocka_unit_test(test_delimiter_limit),
        cmocka_unit_test(test_length_field_combinations),
        cmocka_unit_test(test_length_field_header_truncated),
        cmocka_unit_test(test_length_field_limit),
        cmocka_unit_test(test_length_field_negative),
        cmocka_unit_test(test_zero_length_frames),
        cmocka_unit_test(test_fixed_length_all_splits),
        cmocka_unit_test(test_fixed_length_limit),
        cmocka_unit_test(test_failed_framer_refuses_input),
        cmocka_unit_test(test_callback_stops_stream),
        cmocka_unit_test(test_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
