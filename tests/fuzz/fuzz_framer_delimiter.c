/*
 * DESIGN: fuzzes the delimiter framer. Config byte 0 picks a delimiter (a preset, or 1..8
 * bytes taken from config bytes 1-2 and the stream's start); the stream is fed in
 * seed-chosen pieces and must give the oracle's frames: no frame contains the delimiter,
 * frames joined with the delimiter rebuild the consumed input, and encode round-trips.
 */
#include "framer_fuzz.h"

static void delimiter_config(const uint8_t *data, const uint8_t *stream, size_t len,
                             struct gw_framer_config *cfg)
{
    static const char *presets[] = {"\\n", "\\r\\n", "\\x00", "ab", "aab", "<<END>>>"};
    unsigned pick = data[0] % 8;

    gw_framer_config_init(cfg, GW_FRAMER_DELIMITER);
    if (pick < 6) {
        FUZZ_CHECK(gw_framer_config_set_delimiter(cfg, presets[pick], NULL) == 0);
        return;
    }
    /* Arbitrary bytes: config bytes 1-2, then the stream's first bytes. */
    cfg->delimiter_len = 1 + (size_t)(data[0] >> 3) % GW_FRAMER_DELIM_MAX;
    for (size_t i = 0; i < cfg->delimiter_len; i++)
        cfg->delimiter[i] = i < 2 ? data[1 + i] : (i - 2 < len ? stream[i - 2] : 0);
}

/* Whole-buffer oracle: successive memmem, the 64 KiB rule applied to each payload. */
static void delimiter_oracle(const struct gw_framer_config *cfg, const uint8_t *s, size_t len,
                             struct fuzz_oracle *o)
{
    size_t dl = cfg->delimiter_len, off = 0;
    const uint8_t *hit;

    while ((hit = memmem(s + off, len - off, cfg->delimiter, dl)) != NULL) {
        size_t flen = (size_t)(hit - (s + off));
        if (flen > GW_FRAME_MAX) {
            o->err = GW_E_FRAME_TOO_LARGE;
            return;
        }
        fuzz_oracle_add(o, off, flen);
        off += flen + dl;
    }
    if (len - off > GW_FRAME_MAX + dl - 1)
        o->err = GW_E_FRAME_TOO_LARGE;
    o->trailing = len - off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_framer_config cfg;
    struct fuzz_oracle o;
    uint8_t *stream;
    size_t len, pos = 0;

    if (size < FUZZ_HDR)
        return 0;
    stream = fuzz_stream(data, size, &len);
    if (!stream)
        return 0;
    delimiter_config(data, stream, len, &cfg);
    FUZZ_CHECK(gw_framer_config_check(&cfg, NULL) == 0);
    if (fuzz_oracle_init(&o, stream, len, &cfg) == 0) {
        delimiter_oracle(&cfg, stream, len, &o);
        /* The oracle's own consistency: payload + delimiter rebuild the stream's prefix. */
        for (size_t i = 0; i < o.count; i++) {
            FUZZ_CHECK(o.off[i] == pos);
            FUZZ_CHECK(!memmem(stream + o.off[i], o.len[i], cfg.delimiter, cfg.delimiter_len));
            FUZZ_CHECK(memcmp(stream + pos + o.len[i], cfg.delimiter, cfg.delimiter_len) == 0);
            pos += o.len[i] + cfg.delimiter_len;
        }
        fuzz_feed_and_check(&cfg, stream, len, data[3], &o);
        /* encode: payload + delimiter, exactly the bytes the frame came from. */
        for (size_t i = 0; i < o.count && i < 16; i++) {
            uint8_t *enc = NULL;
            size_t enc_len = 0;
            FUZZ_CHECK(gw_framer_encode(&cfg, stream + o.off[i], o.len[i], &enc, &enc_len) == 0);
            FUZZ_CHECK(enc_len == o.len[i] + cfg.delimiter_len);
            FUZZ_CHECK(memcmp(enc, stream + o.off[i], enc_len) == 0);
            free(enc);
        }
    }
    fuzz_oracle_fini(&o);
    free(stream);
    return 0;
}
