/*
 * DESIGN: the JSON serializer (DESIGN §4): golden vectors (decode, check fields, re-encode
 * to the canonical bytes), the Alink legacy form, field-type rules with the code each
 * violation gives, limits, the identity rule, and agreement with the binary codec.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw_codec.h"
#include "gw_error.h"
#include "vectors.h"

static int decode_id(const char *text, char *id_out)
{
    struct gw_msg *m = NULL;
    int rc = gw_codec_json_decode((const uint8_t *)text, strlen(text), NULL, &m);

    if (rc == 0) {
        assert_non_null(m);
        if (id_out)
            strcpy(id_out, gw_msg_wire_id(m));
        gw_msg_unref(m);
    } else {
        assert_null(m);
    }
    return rc;
}

static int decode(const char *text)
{
    return decode_id(text, NULL);
}

static void test_vectors(void **state)
{
    (void)state;
    assert_ptr_equal(gw_codec_find("json"), &gw_codec_json);
    assert_null(gw_codec_find("JSON"));
    assert_null(gw_codec_find("xml"));
    assert_null(gw_codec_find(NULL));
    assert_true(vec_run_dir(&gw_codec_json, "json") >= 9);
}

static void test_root_and_syntax(void **state)
{
    char *big;

    (void)state;
    assert_int_equal(decode("[]"), GW_E_BAD_JSON);
    assert_int_equal(decode("\"thing.property.post\""), GW_E_BAD_JSON);
    assert_int_equal(decode("1"), GW_E_BAD_JSON);
    assert_int_equal(decode("null"), GW_E_BAD_JSON);
    assert_int_equal(decode(""), GW_E_BAD_JSON);
    assert_int_equal(decode("{\"method\":\"auth\"} x"), GW_E_BAD_JSON);
    assert_int_equal(decode("{\"method\":\"auth\"}{}"), GW_E_BAD_JSON);
    assert_int_equal(decode("{\"method\":\"auth\""), GW_E_BAD_JSON);
    assert_int_equal(decode("{\"method\":\"auth\",\"params\":{\"k\":\"\xc3\x28\"}}"),
                     GW_E_BAD_UTF8);
    assert_int_equal(decode("{\"method\":\"auth\",\"params\":{\"\xff\":1}}"), GW_E_BAD_UTF8);
    assert_int_equal(decode("{\"method\":\"auth\"}\n"), 0); /* trailing whitespace is fine */
    big = malloc(GW_CODEC_MAX_INPUT + 2);
    assert_non_null(big);
    memset(big, ' ', GW_CODEC_MAX_INPUT + 1);
    memcpy(big, "{\"method\":\"auth\"}", 17);
    big[GW_CODEC_MAX_INPUT + 1] = 0;
    assert_int_equal(decode(big), GW_E_FRAME_TOO_LARGE);
    big[GW_CODEC_MAX_INPUT] = 0; /* exactly the limit: accepted */
    assert_int_equal(decode(big), 0);
    free(big);
}

static void test_deep_nesting(void **state)
{
    char text[300] = "{\"method\":\"thing.property.post\",\"params\":{\"a\":";

    (void)state;
    for (int i = 0; i < 40; i++)
        strcat(text, "[");
    for (int i = 0; i < 40; i++)
        strcat(text, "]");
    strcat(text, "}}");
    assert_int_equal(decode(text), GW_E_TOO_DEEP);
}

static void test_method_rules(void **state)
{
    (void)state;
    assert_int_equal(decode("{\"id\":\"1\",\"params\":{}}"), GW_E_MISSING_FIELD);
    assert_int_equal(decode("{\"method\":null}"), GW_E_MISSING_FIELD);
    assert_int_equal(decode("{\"method\":5}"), GW_E_BAD_FIELD);
    assert_int_equal(decode("{\"method\":[\"auth\"]}"), GW_E_BAD_FIELD);
    assert_int_equal(decode("{\"method\":\"thing.unknown\"}"), GW_E_UNKNOWN_METHOD);
    assert_int_equal(decode("{\"method\":\"thing.property.post_reply\"}"), GW_E_UNKNOWN_METHOD);
    assert_int_equal(decode("{\"method\":\"\"}"), GW_E_UNKNOWN_METHOD);
    assert_int_equal(decode("{\"method\":\"THING.PROPERTY.POST\"}"), GW_E_UNKNOWN_METHOD);
    /* "auth\u0000x" is cut at the NUL by cJSON; never a crash, whatever it maps to */
    (void)decode("{\"method\":\"auth\\u0000x\"}");
}

static void test_params_rules(void **state)
{
    (void)state;
    assert_int_equal(decode("{\"method\":\"thing.property.post\",\"params\":[1]}"),
                     GW_E_BAD_PARAMS);
    assert_int_equal(decode("{\"method\":\"thing.property.post\",\"params\":\"a=1\"}"),
                     GW_E_BAD_PARAMS);
    assert_int_equal(decode("{\"method\":\"thing.property.post\",\"params\":7}"),
                     GW_E_BAD_PARAMS);
    assert_int_equal(decode("{\"method\":\"thing.property.post\",\"params\":null}"), 0);
    assert_int_equal(decode("{\"method\":\"thing.auth.register.sub\",\"params\":[]}"), 0);
    assert_int_equal(decode("{\"method\":\"thing.auth.register.sub\",\"params\":{}}"),
                     GW_E_BAD_PARAMS);
    assert_int_equal(decode("{\"method\":\"thing.property.post\",\"params\":{\"a\":1,\"a\":1}}"),
                     GW_E_BAD_JSON);
    assert_int_equal(decode("{\"method\":\"thing.property.post\",\"params\":{\"a\":1e400}}"),
                     GW_E_BAD_FIELD);
    /* data may be any JSON value */
    assert_int_equal(decode("{\"method\":\"thing.topo.add\",\"code\":0,\"data\":[{\"a\":1}]}"),
                     0);
    assert_int_equal(decode("{\"method\":\"thing.topo.add\",\"code\":0,\"data\":true}"), 0);
}

static void test_code_rules(void **state)
{
    struct gw_msg *m;
    const char *t = "{\"method\":\"auth\",\"code\":-2147483648}";

    (void)state;
    assert_int_equal(decode("{\"method\":\"auth\",\"code\":2147483647}"), 0);
    assert_int_equal(gw_codec_json_decode((const uint8_t *)t, strlen(t), NULL, &m), 0);
    assert_true(gw_msg_is_reply(m));
    assert_int_equal(m->code, INT32_MIN);
    gw_msg_unref(m);
    assert_int_equal(decode("{\"method\":\"auth\",\"code\":2147483648}"), GW_E_BAD_FIELD);
    assert_int_equal(decode("{\"method\":\"auth\",\"code\":-2147483649}"), GW_E_BAD_FIELD);
    assert_int_equal(decode("{\"method\":\"auth\",\"code\":1.5}"), GW_E_BAD_FIELD);
    assert_int_equal(decode("{\"method\":\"auth\",\"code\":\"0\"}"), GW_E_BAD_FIELD);
    assert_int_equal(decode("{\"method\":\"auth\",\"code\":true}"), GW_E_BAD_FIELD);
    /* code null = no code = a request */
    t = "{\"method\":\"auth\",\"code\":null,\"msg\":null}";
    assert_int_equal(gw_codec_json_decode((const uint8_t *)t, strlen(t), NULL, &m), 0);
    assert_false(gw_msg_is_reply(m));
    assert_null(m->msg);
    gw_msg_unref(m);
    assert_int_equal(decode("{\"method\":\"auth\",\"code\":0,\"msg\":5}"), GW_E_BAD_FIELD);
}

static void test_report_time_rules(void **state)
{
    (void)state;
    assert_int_equal(decode("{\"method\":\"auth\",\"reportTime\":1700000000123}"), 0);
    assert_int_equal(decode("{\"method\":\"auth\",\"reportTime\":999999999999999}"), 0);
    assert_int_equal(decode("{\"method\":\"auth\",\"reportTime\":1000000000000000}"),
                     GW_E_BAD_FIELD);
    assert_int_equal(decode("{\"method\":\"auth\",\"reportTime\":\"1700000000123\"}"),
                     GW_E_BAD_FIELD);
    assert_int_equal(decode("{\"method\":\"auth\",\"reportTime\":1.5}"), GW_E_BAD_FIELD);
    assert_int_equal(decode("{\"method\":\"auth\",\"reportTime\":-1}"), GW_E_BAD_FIELD);
}

static void test_id_rules(void **state)
{
    char text[256], id[80];

    (void)state;
    assert_int_equal(decode_id("{\"id\":123,\"method\":\"auth\"}", id), 0);
    assert_string_equal(id, "123");
    assert_int_equal(decode_id("{\"id\":-5,\"method\":\"auth\"}", id), 0);
    assert_string_equal(id, "-5");
    assert_int_equal(decode_id("{\"id\":9007199254740991,\"method\":\"auth\"}", id), 0);
    assert_string_equal(id, "9007199254740991");
    assert_int_equal(decode("{\"id\":9007199254740993,\"method\":\"auth\"}"), GW_E_BAD_FIELD);
    assert_int_equal(decode("{\"id\":1.5,\"method\":\"auth\"}"), GW_E_BAD_FIELD);
    assert_int_equal(decode("{\"id\":true,\"method\":\"auth\"}"), GW_E_BAD_FIELD);
    assert_int_equal(decode("{\"id\":{},\"method\":\"auth\"}"), GW_E_BAD_FIELD);
    assert_int_equal(decode("{\"id\":\"\xc3\x28\",\"method\":\"auth\"}"), GW_E_BAD_UTF8);
    /* cJSON itself refuses an unpaired surrogate escape */
    assert_int_equal(decode("{\"id\":\"\\ud800\",\"method\":\"auth\"}"), GW_E_BAD_JSON);
    snprintf(text, sizeof(text), "{\"id\":\"%064d\",\"method\":\"auth\"}", 7);
    assert_int_equal(decode(text), 0);
    snprintf(text, sizeof(text), "{\"id\":\"%065d\",\"method\":\"auth\"}", 7);
    assert_int_equal(decode(text), GW_E_BAD_FIELD);
    /* the reference's own JSON carries requestId next to its message id */
    assert_int_equal(decode_id("{\"id\":\"msgid\",\"requestId\":\"req-1\",\"method\":\"auth\"}", id),
                     0);
    assert_string_equal(id, "req-1");
    assert_int_equal(decode_id("{\"id\":\"msgid\",\"requestId\":\"\",\"method\":\"auth\"}", id), 0);
    assert_string_equal(id, "msgid");
}

static void test_alink_version(void **state)
{
    (void)state;
    assert_int_equal(decode("{\"id\":\"1\",\"version\":\"1.0\",\"method\":\"auth\"}"), 0);
    assert_int_equal(decode("{\"id\":\"1\",\"version\":\"2.0\",\"method\":\"auth\"}"),
                     GW_E_BAD_FIELD);
    assert_int_equal(decode("{\"id\":\"1\",\"version\":1.0,\"method\":\"auth\"}"), GW_E_BAD_FIELD);
    assert_int_equal(decode("{\"id\":\"1\",\"version\":null,\"method\":\"auth\"}"), 0);
}

static void test_identity_from_session(void **state)
{
    const char *t = "{\"method\":\"thing.property.post\",\"productKey\":\"evil\","
                    "\"deviceName\":\"other\",\"deviceId\":9,\"params\":{}}";
    struct gw_msg_identity ident = { "pk", "dn", 5 };
    struct gw_msg *m;

    (void)state;
    assert_int_equal(gw_codec_json_decode((const uint8_t *)t, strlen(t), &ident, &m), 0);
    assert_string_equal(m->product_key, "pk");
    assert_string_equal(m->device_name, "dn");
    assert_int_equal(m->device_id, 5);
    gw_msg_unref(m);
}

static void test_canonical_encode(void **state)
{
    struct gw_msg_fields f = {
        .method = GW_METHOD_SERVICE_INVOKE,
        .request_id = "r\"1",
        .has_code = true,
        .code = -3,
        .msg = "bad \"input\"",
        .report_time = 1700000000123,
    };
    const char *want = "{\"id\":\"r\\\"1\",\"method\":\"thing.service.invoke\",\"params\":{\"x\":1},"
                       "\"data\":[true],\"code\":-3,\"msg\":\"bad \\\"input\\\"\","
                       "\"reportTime\":1700000000123}";
    struct gw_msg *m, *back;
    uint8_t *out;
    size_t len;

    (void)state;
    f.params = cJSON_Parse("{\"x\":1}");
    f.data = cJSON_Parse("[true]");
    assert_int_equal(gw_msg_new(&f, &m), 0);
    assert_int_equal(gw_codec_json_encode(m, &out, &len), 0);
    assert_int_equal(len, strlen(want));
    assert_string_equal((char *)out, want);
    assert_int_equal(gw_codec_json_decode(out, len, NULL, &back), 0);
    assert_true(gw_msg_equal_content(m, back));
    free(out);
    gw_msg_unref(back);
    gw_msg_unref(m);
}

static void test_agrees_with_binary(void **state)
{
    static const uint8_t design[42] = {
        0x7e, 0x01, 0x01, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x01, 0x31, 0x00, 0x13, 0x74, 0x68,
        0x69, 0x6e, 0x67, 0x2e, 0x70, 0x72, 0x6f, 0x70, 0x65, 0x72, 0x74, 0x79, 0x2e, 0x70,
        0x6f, 0x73, 0x74, 0x7b, 0x22, 0x74, 0x65, 0x6d, 0x70, 0x22, 0x3a, 0x32, 0x35, 0x7d,
    };
    uint8_t frame[200], *out;
    char body[100] = "{\"a\":";
    struct gw_msg *m, *back;
    size_t len, n;

    (void)state;
    assert_int_equal(gw_codec_binary_decode(design, sizeof(design), NULL, &m), 0);
    assert_int_equal(gw_codec_json_encode(m, &out, &len), 0);
    assert_string_equal((char *)out, "{\"id\":\"1\",\"method\":\"thing.property.post\","
                                     "\"params\":{\"temp\":25}}");
    free(out);
    gw_msg_unref(m);

    /* the deepest params the binary codec accepts still fit the JSON envelope */
    for (int i = 1; i < GW_MSG_TREE_DEPTH_MAX; i++)
        strcat(body, "[");
    strcat(body, "1");
    for (int i = 1; i < GW_MSG_TREE_DEPTH_MAX; i++)
        strcat(body, "]");
    strcat(body, "}");
    memcpy(frame, "\x7e\x01\x01\x00\x00\x00\x00\x00\x01" "1" "\x00\x13" "thing.property.post", 31);
    n = strlen(body);
    memcpy(frame + 31, body, n);
    n += 31;
    frame[6] = (uint8_t)n;
    assert_int_equal(gw_codec_binary_decode(frame, n, NULL, &m), 0);
    assert_int_equal(gw_codec_json_encode(m, &out, &len), 0);
    assert_int_equal(gw_codec_json_decode(out, len, NULL, &back), 0);
    assert_true(gw_msg_equal_content(m, back));
    free(out);
    gw_msg_unref(back);
    gw_msg_unref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_root_and_syntax),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_method_rules),
        cmocka_unit_test(test_params_rules),
        cmocka_unit_test(test_code_rules),
        cmocka_unit_test(test_report_time_rules),
        cmocka_unit_test(test_id_rules),
        cmocka_unit_test(test_alink_version),
        cmocka_unit_test(test_identity_from_session),
        cmocka_unit_test(test_canonical_encode),
        cmocka_unit_test(test_agrees_with_binary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
