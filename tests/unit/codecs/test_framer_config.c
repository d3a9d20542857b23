/*
 * DESIGN: unit tests of the configuration side of codecs/gw_framer.c (config checks with
 * their reasons, type names, delimiter escapes) and of gw_framer_encode. Stream decoding is
 * tested in test_framer.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gw_error.h"
#include "gw_framer.h"

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

/* ---- configuration ---------------------------------------------------------------------- */

static void expect_bad_config(const struct gw_framer_config *cfg, const char *word)
{
    const char *reason = NULL;

    assert_int_equal(gw_framer_config_check(cfg, &reason), GW_E_CONFIG);
    assert_non_null(reason);
    if (!strstr(reason, word))
        fail_msg("reason \"%s\" does not mention \"%s\"", reason, word);
}

static void test_config_check(void **state)
{
    struct gw_framer_config cfg;

    (void)state;
    for (int t = GW_FRAMER_DELIMITER; t <= GW_FRAMER_LENGTH_FIELD; t++) {
        gw_framer_config_init(&cfg, (enum gw_framer_type)t);
        assert_int_equal(gw_framer_config_check(&cfg, NULL), 0);
    }
    gw_framer_config_init(&cfg, GW_FRAMER_FIXED_LENGTH);
    expect_bad_config(&cfg, "fixed length"); /* must be set */
    cfg.type = (enum gw_framer_type)9;
    expect_bad_config(&cfg, "type");
    cfg = delim_cfg(NULL);
    cfg.delimiter_len = 0;
    expect_bad_config(&cfg, "delimiter");
    cfg.delimiter_len = 9;
    expect_bad_config(&cfg, "delimiter");
    cfg = lf_cfg(3, 0, 0, 0);
    expect_bad_config(&cfg, "size");
    cfg = lf_cfg(2, GW_FRAMER_OFFSET_MAX + 1, 0, 0);
    expect_bad_config(&cfg, "offset");
    cfg = lf_cfg(2, 1, 0, 4);
    expect_bad_config(&cfg, "strip");
    cfg = lf_cfg(1, 0, -256, 0);
    expect_bad_config(&cfg, "adjustment");
    cfg = lf_cfg(4, 0, GW_FRAME_MAX + 1, 0);
    expect_bad_config(&cfg, "adjustment");
    cfg = lf_cfg(1, 0, -255, 1);
    assert_int_equal(gw_framer_config_check(&cfg, NULL), 0);
    assert_int_equal(gw_framer_config_check(NULL, NULL), -EINVAL);
    /* A framer cannot be built from a bad config. */
    {
        struct gw_framer *fr = (struct gw_framer *)&cfg;
        cfg = lf_cfg(3, 0, 0, 0);
        assert_int_equal(gw_framer_new(&cfg, &fr), GW_E_CONFIG);
        assert_null(fr);
    }
}

static void test_type_names_and_delimiters(void **state)
{
    struct gw_framer_config cfg;
    enum gw_framer_type type;
    const char *reason = NULL;

    (void)state;
    assert_int_equal(gw_framer_type_from_name("Length_Field", &type), 0);
    assert_int_equal(type, GW_FRAMER_LENGTH_FIELD);
    assert_int_equal(gw_framer_type_from_name("FIXED_LENGTH", &type), 0);
    assert_int_equal(type, GW_FRAMER_FIXED_LENGTH);
    assert_int_equal(gw_framer_type_from_name("delimiter", &type), 0);
    assert_int_equal(type, GW_FRAMER_DELIMITER);
    assert_int_equal(gw_framer_type_from_name("line", &type), GW_E_CONFIG);

    cfg = delim_cfg("\\r\\n");
    assert_int_equal(cfg.delimiter_len, 2);
    assert_memory_equal(cfg.delimiter, "\r\n", 2);
    cfg = delim_cfg("\\x00\\t|\\\\");
    assert_int_equal(cfg.delimiter_len, 4);
    assert_memory_equal(cfg.delimiter, "\0\t|\\", 4);
    assert_int_equal(gw_framer_config_set_delimiter(&cfg, "", &reason), GW_E_CONFIG);
    assert_non_null(strstr(reason, "empty"));
    assert_int_equal(gw_framer_config_set_delimiter(&cfg, "\\q", &reason), GW_E_CONFIG);
    assert_non_null(strstr(reason, "escape"));
    assert_int_equal(gw_framer_config_set_delimiter(&cfg, "\\x4", &reason), GW_E_CONFIG);
    assert_int_equal(gw_framer_config_set_delimiter(&cfg, "123456789", &reason), GW_E_CONFIG);
    assert_non_null(strstr(reason, "8 bytes"));
    /* A failed set leaves the previous delimiter. */
    assert_int_equal(cfg.delimiter_len, 4);
}

/* ---- encode ----------------------------------------------------------------------------- */

static void test_encode(void **state)
{
    struct gw_framer_config cfg = delim_cfg("\\r\\n");
    uint8_t *out = NULL, *big = calloc(1, GW_FRAME_MAX + 1);
    size_t out_len = 0;

    (void)state;
    assert_non_null(big);
    assert_int_equal(gw_framer_encode(&cfg, "hi", 2, &out, &out_len), 0);
    assert_int_equal(out_len, 4);
    assert_memory_equal(out, "hi\r\n", 4);
    free(out);
    assert_int_equal(gw_framer_encode(&cfg, "", 0, &out, &out_len), 0);
    assert_int_equal(out_len, 2);
    free(out);
    assert_int_equal(gw_framer_encode(&cfg, "a\r\nb", 4, &out, &out_len), -EINVAL);
    assert_null(out);
    assert_int_equal(gw_framer_encode(&cfg, "a\rb\n", 4, &out, &out_len), 0);
    free(out);
    /* "ab" + "aba" = "ababa": the receiver would cut at offset 0. */
    cfg = delim_cfg("aba");
    assert_int_equal(gw_framer_encode(&cfg, "ab", 2, &out, &out_len), -EINVAL);
    assert_null(out);
    assert_int_equal(gw_framer_encode(&cfg, "ba", 2, &out, &out_len), 0);
    free(out);
    cfg = delim_cfg("\\r\\n");
    assert_int_equal(gw_framer_encode(&cfg, big, GW_FRAME_MAX, &out, &out_len), 0);
    assert_int_equal(out_len, GW_FRAME_MAX + 2);
    free(out);
    assert_int_equal(gw_framer_encode(&cfg, big, GW_FRAME_MAX + 1, &out, &out_len),
                     GW_E_FRAME_TOO_LARGE);

    /* The reference's sample: [uint32 BE length][payload]. */
    cfg = lf_cfg(4, 0, 0, 4);
    assert_int_equal(gw_framer_encode(&cfg, "{}", 2, &out, &out_len), 0);
    assert_int_equal(out_len, 6);
    assert_memory_equal(out, "\0\0\0\2{}", 6);
    free(out);
    cfg = lf_cfg(1, 0, 0, 1);
    assert_int_equal(gw_framer_encode(&cfg, big, 255, &out, &out_len), 0);
    assert_int_equal(out[0], 255);
    free(out);
    assert_int_equal(gw_framer_encode(&cfg, big, 256, &out, &out_len), -EMSGSIZE);
    cfg = lf_cfg(2, 0, 3, 2); /* body = field + 3: a 2-byte payload cannot be expressed */
    assert_int_equal(gw_framer_encode(&cfg, "ab", 2, &out, &out_len), -EINVAL);

    cfg = fixed_cfg(3);
    assert_int_equal(gw_framer_encode(&cfg, "abc", 3, &out, &out_len), 0);
    assert_int_equal(out_len, 3);
    assert_memory_equal(out, "abc", 3);
    free(out);
    assert_int_equal(gw_framer_encode(&cfg, "ab", 2, &out, &out_len), -EMSGSIZE);
    assert_int_equal(gw_framer_encode(&cfg, "abcd", 4, &out, &out_len), -EMSGSIZE);
    cfg.fixed_length = 0;
    assert_int_equal(gw_framer_encode(&cfg, "", 0, &out, &out_len), GW_E_CONFIG);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_check),
        cmocka_unit_test(test_type_names_and_delimiters),
        cmocka_unit_test(test_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
