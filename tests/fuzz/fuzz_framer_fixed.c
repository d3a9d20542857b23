/*
 * DESIGN: fuzzes the fixed-length framer: every frame has exactly the configured size and is
 * the next slice of the stream, whatever the pieces the stream is fed in; the remainder
 * stays buffered; encode accepts exactly that size.
 */
#include "framer_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_framer_config cfg;
    struct fuzz_oracle o;
    uint8_t *stream, *enc = NULL;
    size_t len, flen, enc_len = 0;

    if (size < FUZZ_HDR)
        return 0;
    /* Small sizes most of the time, any size up to the limit otherwise. */
    /* (Long streams take the large form: thousands of tiny frames would only cost time.) */
    flen = (data[2] & 1) && !fuzz_long_stream(data) ? 1 + (size_t)(data[0] % 16)
                         : 1 + (((size_t)data[0] << 8 | data[1]) % GW_FRAME_MAX);
    gw_framer_config_init(&cfg, GW_FRAMER_FIXED_LENGTH);
    cfg.fixed_length = flen;
    FUZZ_CHECK(gw_framer_config_check(&cfg, NULL) == 0);
    stream = fuzz_stream(data, size, &len);
    if (!stream)
        return 0;
    if (fuzz_oracle_init(&o, stream, len, &cfg) == 0) {
        for (size_t off = 0; len - off >= flen; off += flen)
            fuzz_oracle_add(&o, off, flen);
        o.trailing = len % flen;
        fuzz_feed_and_check(&cfg, stream, len, data[3], &o);
        if (len >= flen) {
            FUZZ_CHECK(gw_framer_encode(&cfg, stream, flen, &enc, &enc_len) == 0);
            FUZZ_CHECK(enc_len == flen && memcmp(enc, stream, flen) == 0);
            free(enc);
            FUZZ_CHECK(gw_framer_encode(&cfg, stream, flen - 1, &enc, &enc_len) == -EMSGSIZE);
        }
    }
    fuzz_oracle_fini(&o);
    free(stream);
    return 0;
}
