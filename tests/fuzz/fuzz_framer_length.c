/*
 * DESIGN: fuzzes the length-field framer. Config bytes choose the field size (1/2/4), its
 * offset (0..7), the adjustment (-128..127, or minus the header size) and the bytes to strip;
 * the stream is fed in seed-chosen pieces and must give exactly the frames, error
 * (negative or over-limit length) or trailing bytes of a whole-buffer oracle, and every
 * frame's body must encode back to the bytes it came from.
 */
#include "framer_fuzz.h"

static void length_config(const uint8_t *data, struct gw_framer_config *cfg)
{
    static const unsigned sizes[] = {1, 2, 4};
    size_t hlen;

    gw_framer_config_init(cfg, GW_FRAMER_LENGTH_FIELD);
    cfg->length_field_size = sizes[data[0] % 3];
    cfg->length_field_offset = (data[0] >> 2) & 7;
    hlen = cfg->length_field_offset + cfg->length_field_size;
    cfg->length_adjustment = (data[2] & 0x80) ? -(int32_t)hlen : (int8_t)data[1];
    cfg->initial_bytes_to_strip = (data[2] & 0x7F) % (hlen + 1);
}

static void length_oracle(const struct gw_framer_config *cfg, const uint8_t *s, size_t len,
                          struct fuzz_oracle *o)
{
    size_t hlen = cfg->length_field_offset + cfg->length_field_size, off = 0;

    while (len - off >= hlen) {
        uint64_t field = 0;
        int64_t body;
        for (size_t i = 0; i < cfg->length_field_size; i++)
            field = field << 8 | s[off + cfg->length_field_offset + i];
        body = (int64_t)field + cfg->length_adjustment;
        if (body < 0) {
            o->err = GW_E_FRAME_BAD_LENGTH;
            return;
        }
        if (body > GW_FRAME_MAX) {
            o->err = GW_E_FRAME_TOO_LARGE;
            return;
        }
        if (len - off < hlen + (size_t)body)
            break;
        fuzz_oracle_add(o, off + cfg->initial_bytes_to_strip,
                        hlen + (size_t)body - cfg->initial_bytes_to_strip);
        off += hlen + (size_t)body;
    }
    o->trailing = len - off;
}

/* encode(body) = zero offset bytes + the same field + body. */
static void check_encode(const struct gw_framer_config *cfg, const uint8_t *s, size_t start,
                         size_t total)
{
    size_t hlen = cfg->length_field_offset + cfg->length_field_size;
    uint8_t *enc = NULL;
    size_t enc_len = 0;

    FUZZ_CHECK(gw_framer_encode(cfg, s + start + hlen, total - hlen, &enc, &enc_len) == 0);
    FUZZ_CHECK(enc_len == total);
    for (size_t i = 0; i < cfg->length_field_offset; i++)
        FUZZ_CHECK(enc[i] == 0);
    FUZZ_CHECK(memcmp(enc + cfg->length_field_offset, s + start + cfg->length_field_offset,
                      total - cfg->length_field_offset) == 0);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_framer_config cfg;
    struct fuzz_oracle o;
    uint8_t *stream;
    size_t len;

    if (size < FUZZ_HDR)
        return 0;
    length_config(data, &cfg);
    FUZZ_CHECK(gw_framer_config_check(&cfg, NULL) == 0);
    stream = fuzz_stream(data, size, &len);
    if (!stream)
        return 0;
    if (fuzz_oracle_init(&o, stream, len, &cfg) == 0) {
        length_oracle(&cfg, stream, len, &o);
        fuzz_feed_and_check(&cfg, stream, len, data[3], &o);
        for (size_t i = 0; i < o.count && i < 16; i++) {
            size_t start = o.off[i] - cfg.initial_bytes_to_strip;
            check_encode(&cfg, stream, start, o.len[i] + cfg.initial_bytes_to_strip);
        }
    }
    fuzz_oracle_fini(&o);
    free(stream);
    return 0;
}
