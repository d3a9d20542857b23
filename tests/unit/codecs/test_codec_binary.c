/*
 * DESIGN: the binary serializer (DESIGN §4): golden vectors (decode, check fields,
 * re-encode byte-exact), the 42-byte DESIGN vector built from scratch, and every malformed
 * case with the code it must give: truncation at every length, magic, version, type,
 * length mismatch, huge lengths, bad UTF-8, bad body JSON, unknown method.
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

static const uint8_t design_vector[42] = {
    0x7e, 0x01, 0x01, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x01, 0x31, 0x00, 0x13, 0x74, 0x68,
    0x69, 0x6e, 0x67, 0x2e, 0x70, 0x72, 0x6f, 0x70, 0x65, 0x72, 0x74, 0x79, 0x2e, 0x70,
    0x6f, 0x73, 0x74, 0x7b, 0x22, 0x74, 0x65, 0x6d, 0x70, 0x22, 0x3a, 0x32, 0x35, 0x7d,
};

/* A frame with a correct length field; a string length of (size_t)-1 means strlen. */
struct frame {
    int type;
    const char *id;
    size_t id_len;
    const char *method;
    int32_t code;
    const char *msg;
    const char *body;
};

static size_t put_str(uint8_t *p, const char *s, size_t len)
{
    p[0] = (uint8_t)(len >> 8);
    p[1] = (uint8_t)len;
    memcpy(p + 2, s, len);
    return 2 + len;
}

static size_t build(uint8_t *out, const struct frame *f)
{
    size_t n = 7;
    size_t id_len = f->id_len ? f->id_len : strlen(f->id);

    out[0] = 0x7e;
    out[1] = 1;
    out[2] = (uint8_t)f->type;
    n += put_str(out + n, f->id, id_len);
    n += put_str(out + n, f->method, strlen(f->method));
    if (f->type == 2) {
        out[n++] = (uint8_t)((uint32_t)f->code >> 24);
        out[n++] = (uint8_t)((uint32_t)f->code >> 16);
        out[n++] = (uint8_t)((uint32_t)f->code >> 8);
        out[n++] = (uint8_t)f->code;
        n += put_str(out + n, f->msg ? f->msg : "", f->msg ? strlen(f->msg) : 0);
    }
    if (f->body) {
        memcpy(out + n, f->body, strlen(f->body));
        n += strlen(f->body);
    }
    out[3] = (uint8_t)(n >> 24);
    out[4] = (uint8_t)(n >> 16);
    out[5] = (uint8_t)(n >> 8);
    out[6] = (uint8_t)n;
    return n;
}

static int decode(const uint8_t *buf, size_t len)
{
    struct gw_msg *m = NULL;
    int rc = gw_codec_binary_decode(buf, len, NULL, &m);

    if (rc == 0) {
        assert_non_null(m);
        gw_msg_unref(m);
    } else {
        assert_null(m);
    }
    return rc;
}

static int decode_frame(const struct frame *f)
{
    uint8_t buf[70000];

    return decode(buf, build(buf, f));
}

static void test_vectors(void **state)
{
    (void)state;
    assert_ptr_equal(gw_codec_find("binary"), &gw_codec_binary);
    assert_true(vec_run_dir(&gw_codec_binary, "binary") >= 7);
}

static void test_design_vector(void **state)
{
    struct gw_msg *m;
    uint8_t *out;
    size_t len;

    (void)state;
    /* encoder alone: a request built in code gives the 42 bytes of DESIGN §4 */
    assert_int_equal(gw_msg_new_request(GW_METHOD_PROPERTY_POST, "1", "pk", "dn",
                                        cJSON_Parse("{\"temp\":25}"), &m),
                     0);
    assert_int_equal(gw_codec_binary_encode(m, &out, &len), 0);
    assert_int_equal(len, 42);
    assert_memory_equal(out, design_vector, 42);
    free(out);
    gw_msg_unref(m);
    /* decoder alone */
    assert_int_equal(gw_codec_binary_decode(design_vector, 42, NULL, &m), 0);
    assert_string_equal(m->request_id, "1");
    assert_int_equal(m->method, GW_METHOD_PROPERTY_POST);
    assert_false(gw_msg_is_reply(m));
    assert_int_equal(cJSON_GetObjectItem(m->params, "temp")->valuedouble, 25);
    assert_string_equal(m->product_key, ""); /* no identity given: none invented */
    gw_msg_unref(m);
}

static void test_truncated_at_every_length(void **state)
{
    uint8_t buf[200];
    struct frame reply = { 2, "abc", 0, "thing.service.invoke", 7, "ok", "{\"r\":1}" };
    size_t len = build(buf, &reply);

    (void)state;
    for (size_t n = 0; n < sizeof(design_vector); n++)
        assert_int_equal(decode(design_vector, n), GW_E_TRUNCATED);
    for (size_t n = 0; n < len; n++)
        assert_int_equal(decode(buf, n), GW_E_TRUNCATED);
    assert_int_equal(decode(buf, len), 0);
}

/* Cut the frame and fix its length field: inner fields run past the end. */
static void test_truncated_fields(void **state)
{
    uint8_t buf[200];
    struct frame reply = { 2, "abc", 0, "thing.service.invoke", 7, "ok", NULL };
    size_t len = build(buf, &reply);

    (void)state;
    for (size_t n = 7; n < len; n++) {
        uint8_t cut[200];
        memcpy(cut, buf, n);
        cut[6] = (uint8_t)n;
        assert_int_equal(decode(cut, n), n < 11 ? GW_E_LENGTH_MISMATCH : GW_E_TRUNCATED);
    }
}

static void test_header_errors(void **state)
{
    uint8_t b[42];

    (void)state;
    memcpy(b, design_vector, 42);
    b[0] = 0x7f;
    assert_int_equal(decode(b, 42), GW_E_BAD_MAGIC);
    assert_int_equal(decode(b, 1), GW_E_BAD_MAGIC); /* known as soon as the byte is there */
    memcpy(b, design_vector, 42);
    b[1] = 2;
    assert_int_equal(decode(b, 42), GW_E_BAD_VERSION);
    b[1] = 0;
    assert_int_equal(decode(b, 2), GW_E_BAD_VERSION);
    memcpy(b, design_vector, 42);
    b[2] = 0;
    assert_int_equal(decode(b, 42), GW_E_BAD_TYPE);
    b[2] = 3;
    assert_int_equal(decode(b, 42), GW_E_BAD_TYPE);
    b[2] = 0xff;
    assert_int_equal(decode(b, 3), GW_E_BAD_TYPE);
    /* a JSON text is not a binary frame */
    assert_int_equal(decode((const uint8_t *)"{\"id\":\"1\"}", 10), GW_E_BAD_MAGIC);
}

static void test_length_mismatch(void **state)
{
    uint8_t b[43];

    (void)state;
    memcpy(b, design_vector, 42);
    b[6] = 41; /* says 41, buffer has 42 */
    assert_int_equal(decode(b, 42), GW_E_LENGTH_MISMATCH);
    b[6] = 43; /* says 43, buffer has 42 */
    assert_int_equal(decode(b, 42), GW_E_TRUNCATED);
    b[6] = 42;
    b[42] = ' '; /* one byte after the frame */
    assert_int_equal(decode(b, 43), GW_E_LENGTH_MISMATCH);
    b[6] = 10; /* shorter than any frame */
    assert_int_equal(decode(b, 10), GW_E_LENGTH_MISMATCH);
    b[6] = 0;
    assert_int_equal(decode(b, 0), GW_E_TRUNCATED);
    assert_int_equal(decode(b, 7), GW_E_LENGTH_MISMATCH);
}

static void test_huge_lengths(void **state)
{
    uint8_t b[42];
    uint8_t *big;
    uint8_t small[64];
    size_t n;

    (void)state;
    memcpy(b, design_vector, 42);
    b[3] = b[4] = b[5] = b[6] = 0xff;
    assert_int_equal(decode(b, 42), GW_E_FRAME_TOO_LARGE);
    b[3] = 0, b[4] = 1, b[5] = 0, b[6] = 1; /* 65537 */
    assert_int_equal(decode(b, 42), GW_E_FRAME_TOO_LARGE);
    /* id length 0xffff inside a 42-byte frame */
    memcpy(b, design_vector, 42);
    b[7] = b[8] = 0xff;
    assert_int_equal(decode(b, 42), GW_E_TRUNCATED);
    /* method length 0xffff */
    memcpy(b, design_vector, 42);
    b[10] = b[11] = 0xff;
    assert_int_equal(decode(b, 42), GW_E_TRUNCATED);
    /* reply msg length 0xffff */
    n = build(small, &(struct frame){ 2, "1", 0, "auth", 0, "hello", NULL });
    small[n - 7] = 0xff;
    small[n - 6] = 0xff;
    assert_int_equal(decode(small, n), GW_E_TRUNCATED);
    /* a buffer over 64 KiB is refused before anything is read */
    big = calloc(1, GW_CODEC_MAX_INPUT + 1);
    assert_non_null(big);
    memcpy(big, design_vector, 42);
    assert_int_equal(decode(big, GW_CODEC_MAX_INPUT + 1), GW_E_FRAME_TOO_LARGE);
    free(big);
}

static void test_id_rules(void **state)
{
    char id[66];

    (void)state;
    memset(id, 'i', 64);
    id[64] = 0;
    assert_int_equal(decode_frame(&(struct frame){ 1, id, 0, "auth", 0, NULL, "{}" }), 0);
    id[64] = 'i';
    id[65] = 0;
    assert_int_equal(decode_frame(&(struct frame){ 1, id, 0, "auth", 0, NULL, "{}" }),
                     GW_E_BAD_FIELD);
    assert_int_equal(decode_frame(&(struct frame){ 1, "a\0b", 3, "auth", 0, NULL, NULL }),
                     GW_E_BAD_FIELD);
    assert_int_equal(decode_frame(&(struct frame){ 1, "\xc3\x28", 0, "auth", 0, NULL, NULL }),
                     GW_E_BAD_UTF8);
    assert_int_equal(decode_frame(&(struct frame){ 1, "\xe0\x80\xaf", 0, "auth", 0, NULL, NULL }),
                     GW_E_BAD_UTF8); /* overlong '/' */
    assert_int_equal(decode_frame(&(struct frame){ 2, "1", 0, "auth", 0, "\xff", NULL }),
                     GW_E_BAD_UTF8);
}

static void test_methods(void **state)
{
    (void)state;
    assert_int_equal(decode_frame(&(struct frame){ 1, "1", 0, "thing.nothing", 0, NULL, NULL }),
                     GW_E_UNKNOWN_METHOD);
    assert_int_equal(
        decode_frame(&(struct frame){ 1, "1", 0, "thing.property.post_reply", 0, NULL, NULL }),
        GW_E_UNKNOWN_METHOD);
    assert_int_equal(decode_frame(&(struct frame){ 1, "1", 0, "", 0, NULL, NULL }),
                     GW_E_UNKNOWN_METHOD);
    assert_int_equal(
        decode_frame(&(struct frame){ 1, "1", 0,
                                      "thing.event.property.pack.post.and.much.longer.than.any",
                                      0, NULL, NULL }),
        GW_E_UNKNOWN_METHOD);
    assert_int_equal(decode_frame(&(struct frame){ 1, "1", 0, "thing.\xff", 0, NULL, NULL }),
                     GW_E_BAD_UTF8);
}

static void test_bodies(void **state)
{
    char deep[100] = "";

    (void)state;
    assert_int_equal(decode_frame(&(struct frame){ 1, "1", 0, "thing.property.post", 0, NULL,
                                                   "{\"a\":" }),
                     GW_E_BAD_JSON);
    assert_int_equal(decode_frame(&(struct frame){ 1, "1", 0, "thing.property.post", 0, NULL,
                                                   "{\"a\":1}x" }),
                     GW_E_BAD_JSON);
    assert_int_equal(decode_frame(&(struct frame){ 1, "1", 0, "thing.property.post", 0, NULL,
                                                   "{\"a\":\"\xff\"}" }),
                     GW_E_BAD_UTF8);
    assert_int_equal(decode_frame(&(struct frame){ 1, "1", 0, "thing.property.post", 0, NULL,
                                                   "[1]" }),
                     GW_E_BAD_PARAMS);
    assert_int_equal(decode_frame(&(struct frame){ 1, "1", 0, "thing.property.post", 0, NULL,
                                                   "\"s\"" }),
                     GW_E_BAD_PARAMS);
    assert_int_equal(decode_frame(&(struct frame){ 1, "1", 0, "thing.property.post", 0, NULL,
                                                   "{\"a\":1,\"a\":2}" }),
                     GW_E_BAD_JSON);
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    for (int i = 0; i < 40; i++)
        strcat(deep, "]");
    assert_int_equal(decode_frame(&(struct frame){ 2, "1", 0, "thing.property.set", 0, NULL,
                                                   deep }),
                     GW_E_TOO_DEEP);
    /* reply data may be any JSON; "null" is the same as no body */
    assert_int_equal(decode_frame(&(struct frame){ 2, "1", 0, "thing.property.set", 0, NULL,
                                                   "\"done\"" }),
                     0);
    assert_int_equal(decode_frame(&(struct frame){ 1, "1", 0, "thing.property.post", 0, NULL,
                                                   "null" }),
                     0);
}

static void test_encode_reply_and_limits(void **state)
{
    struct gw_msg *req, *rep;
    uint8_t *out, want[100];
    size_t len, wlen;
    char *big;

    (void)state;
    assert_int_equal(gw_msg_new_request(GW_METHOD_OTA_PROGRESS, "p1", "", "", NULL, &req), 0);
    assert_int_equal(gw_msg_new_reply(req, (int32_t)-10143, NULL, NULL, &rep), 0);
    assert_int_equal(gw_codec_binary_encode(rep, &out, &len), 0);
    wlen = build(want, &(struct frame){ 2, "p1", 0, "thing.ota.progress", -10143, NULL, NULL });
    assert_int_equal(len, wlen);
    assert_memory_equal(out, want, wlen);
    free(out);
    gw_msg_unref(rep);
    gw_msg_unref(req);
    /* a message too big for a frame is refused by the encoder */
    big = malloc(GW_CODEC_MAX_INPUT + 16);
    assert_non_null(big);
    memset(big, 'x', GW_CODEC_MAX_INPUT);
    big[GW_CODEC_MAX_INPUT] = 0;
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "blob", big);
    free(big);
    assert_int_equal(gw_msg_new_request(GW_METHOD_PROPERTY_POST, "1", "", "", p, &req), 0);
    assert_int_equal(gw_codec_binary_encode(req, &out, &len), GW_E_FRAME_TOO_LARGE);
    assert_null(out);
    gw_msg_unref(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_design_vector),
        cmocka_unit_test(test_truncated_at_every_length),
        cmocka_unit_test(test_truncated_fields),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_length_mismatch),
        cmocka_unit_test(test_huge_lengths),
        cmocka_unit_test(test_id_rules),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_encode_reply_and_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
