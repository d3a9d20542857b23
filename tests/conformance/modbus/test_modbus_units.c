/*
 * Unit tests of the pure layers of gateway/adapters/modbus: value conversion (every raw type
 * and byte order against register contents computed independently with Python's struct
 * module), the wire layer (CRC-16/MODBUS vector, PDUs, MBAP and RTU frames, splitting,
 * framing detection) and the read-segment planner.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gw_error.h"
#include "mb_internal.h"

/* ---- conversion ---- */

static struct gw_config_modbus_point point(int fc, enum gw_config_modbus_type t,
                                           enum gw_config_byte_order o, double scale)
{
    struct gw_config_modbus_point p = {.identifier = "x",
                                       .function_code = fc,
                                       .address = 0,
                                       .raw_type = t,
                                       .byte_order = o,
                                       .scale = scale,
                                       .poll_interval_ms = 1000};
    p.count = fc <= 2 ? 1 : gw__mb_type_width(t);
    return p;
}

/* Decodes regs, checks the number, encodes it back and checks the registers. */
static void check_number(enum gw_config_modbus_type t, enum gw_config_byte_order o, double scale,
                         const uint16_t *regs, double expect)
{
    struct gw_config_modbus_point p = point(3, t, o, scale);
    uint16_t back[4] = {0};
    uint8_t bit = 0;
    cJSON *v = NULL;

    assert_int_equal(gw__mb_value_decode(&p, regs, 0, &v), 0);
    assert_true(cJSON_IsNumber(v));
    assert_true(v->valuedouble == expect);
    assert_int_equal(gw__mb_value_encode(&p, v, back, &bit, NULL, 0), 0);
    assert_memory_equal(back, regs, sizeof(uint16_t) * (size_t)p.count);
    cJSON_Delete(v);
}

static void test_16bit(void **state)
{
    (void)state;
    check_number(GW_CONFIG_MODBUS_INT16, GW_CONFIG_ORDER_AB, 1, (uint16_t[]){0xFFFE}, -2);
    check_number(GW_CONFIG_MODBUS_INT16, GW_CONFIG_ORDER_BA, 1, (uint16_t[]){0xFEFF}, -2);
    check_number(GW_CONFIG_MODBUS_UINT16, GW_CONFIG_ORDER_AB, 1, (uint16_t[]){0xFFFE}, 65534);
    check_number(GW_CONFIG_MODBUS_UINT16, GW_CONFIG_ORDER_BA, 1, (uint16_t[]){0xFEFF}, 65534);
    check_number(GW_CONFIG_MODBUS_UINT16, GW_CONFIG_ORDER_BA, 1, (uint16_t[]){0x3412}, 0x1234);
}

static void test_32bit(void **state)
{
    (void)state;
    /* INT32 -123456789 = f8a432eb */
    check_number(GW_CONFIG_MODBUS_INT32, GW_CONFIG_ORDER_ABCD, 1, (uint16_t[]){0xF8A4, 0x32EB},
                 -123456789);
    check_number(GW_CONFIG_MODBUS_INT32, GW_CONFIG_ORDER_CDAB, 1, (uint16_t[]){0x32EB, 0xF8A4},
                 -123456789);
    check_number(GW_CONFIG_MODBUS_INT32, GW_CONFIG_ORDER_DCBA, 1, (uint16_t[]){0xEB32, 0xA4F8},
                 -123456789);
    check_number(GW_CONFIG_MODBUS_INT32, GW_CONFIG_ORDER_BADC, 1, (uint16_t[]){0xA4F8, 0xEB32},
                 -123456789);
    /* UINT32 3000000000 = b2d05e00 */
    check_number(GW_CONFIG_MODBUS_UINT32, GW_CONFIG_ORDER_ABCD, 1, (uint16_t[]){0xB2D0, 0x5E00},
                 3000000000.0);
    check_number(GW_CONFIG_MODBUS_UINT32, GW_CONFIG_ORDER_CDAB, 1, (uint16_t[]){0x5E00, 0xB2D0},
                 3000000000.0);
    check_number(GW_CONFIG_MODBUS_UINT32, GW_CONFIG_ORDER_DCBA, 1, (uint16_t[]){0x005E, 0xD0B2},
                 3000000000.0);
    check_number(GW_CONFIG_MODBUS_UINT32, GW_CONFIG_ORDER_BADC, 1, (uint16_t[]){0xD0B2, 0x005E},
                 3000000000.0);
    /* FLOAT 25.5 = 41cc0000; -0.1f = bdcccccd shows as -0.1 (shortest float decimal) */
    check_number(GW_CONFIG_MODBUS_FLOAT, GW_CONFIG_ORDER_ABCD, 1, (uint16_t[]){0x41CC, 0x0000},
                 25.5);
    check_number(GW_CONFIG_MODBUS_FLOAT, GW_CONFIG_ORDER_CDAB, 1, (uint16_t[]){0x0000, 0x41CC},
                 25.5);
    check_number(GW_CONFIG_MODBUS_FLOAT, GW_CONFIG_ORDER_DCBA, 1, (uint16_t[]){0x0000, 0xCC41},
                 25.5);
    check_number(GW_CONFIG_MODBUS_FLOAT, GW_CONFIG_ORDER_BADC, 1, (uint16_t[]){0xCC41, 0x0000},
                 25.5);
    check_number(GW_CONFIG_MODBUS_FLOAT, GW_CONFIG_ORDER_ABCD, 1, (uint16_t[]){0xBDCC, 0xCCCD},
                 -0.1);
}

static void test_double_all_eight_bytes(void **state)
{
    (void)state;
    /* 123.456 = 405edd2f1a9fbe77; the order applies to all 8 bytes (the reference's quirk
     * of reordering only the first four is not copied). */
    check_number(GW_CONFIG_MODBUS_DOUBLE, GW_CONFIG_ORDER_ABCD, 1,
                 (uint16_t[]){0x405E, 0xDD2F, 0x1A9F, 0xBE77}, 123.456);
    check_number(GW_CONFIG_MODBUS_DOUBLE, GW_CONFIG_ORDER_CDAB, 1,
                 (uint16_t[]){0xBE77, 0x1A9F, 0xDD2F, 0x405E}, 123.456);
    check_number(GW_CONFIG_MODBUS_DOUBLE, GW_CONFIG_ORDER_DCBA, 1,
                 (uint16_t[]){0x77BE, 0x9F1A, 0x2FDD, 0x5E40}, 123.456);
    check_number(GW_CONFIG_MODBUS_DOUBLE, GW_CONFIG_ORDER_BADC, 1,
                 (uint16_t[]){0x5E40, 0x2FDD, 0x9F1A, 0x77BE}, 123.456);
    /* -1.5e-7 = be8421f5f40d8376 */
    check_number(GW_CONFIG_MODBUS_DOUBLE, GW_CONFIG_ORDER_ABCD, 1,
                 (uint16_t[]){0xBE84, 0x21F5, 0xF40D, 0x8376}, -1.5e-7);
}

static void test_scale_and_rounding(void **state)
{
    struct gw_config_modbus_point p = point(3, GW_CONFIG_MODBUS_INT16, GW_CONFIG_ORDER_AB, 1);
    uint16_t r[4];
    uint8_t bit;
    cJSON *v;
    char why[128];

    (void)state;
    check_number(GW_CONFIG_MODBUS_UINT16, GW_CONFIG_ORDER_AB, 0.1, (uint16_t[]){255}, 25.5);
    check_number(GW_CONFIG_MODBUS_INT16, GW_CONFIG_ORDER_AB, 0.5, (uint16_t[]){0xFFFE}, -1);
    check_number(GW_CONFIG_MODBUS_INT32, GW_CONFIG_ORDER_ABCD, 10, (uint16_t[]){0, 7}, 70);
    /* round half up */
    v = cJSON_CreateNumber(2.5);
    assert_int_equal(gw__mb_value_encode(&p, v, r, &bit, NULL, 0), 0);
    assert_int_equal(r[0], 3);
    cJSON_SetNumberValue(v, -2.5);
    assert_int_equal(gw__mb_value_encode(&p, v, r, &bit, NULL, 0), 0);
    assert_int_equal(r[0], 0xFFFE); /* -2 */
    /* out of range, wrong type */
    cJSON_SetNumberValue(v, 40000);
    assert_int_equal(gw__mb_value_encode(&p, v, r, &bit, why, sizeof(why)), GW_E_BAD_PARAMS);
    assert_non_null(strstr(why, "INT16"));
    cJSON_Delete(v);
    v = cJSON_CreateString("1");
    assert_int_equal(gw__mb_value_encode(&p, v, r, &bit, why, sizeof(why)), GW_E_BAD_PARAMS);
    cJSON_Delete(v);
    p = point(3, GW_CONFIG_MODBUS_UINT16, GW_CONFIG_ORDER_AB, 1);
    v = cJSON_CreateNumber(-1);
    assert_int_equal(gw__mb_value_encode(&p, v, r, &bit, NULL, 0), GW_E_BAD_PARAMS);
    cJSON_Delete(v);
}

static void test_boolean(void **state)
{
    struct gw_config_modbus_point coil = point(1, GW_CONFIG_MODBUS_BOOLEAN, GW_CONFIG_ORDER_AB, 1);
    struct gw_config_modbus_point reg = point(3, GW_CONFIG_MODBUS_BOOLEAN, GW_CONFIG_ORDER_AB, 1);
    uint16_t r[1] = {0};
    uint8_t bit = 0;
    cJSON *v = NULL;

    (void)state;
    assert_int_equal(gw__mb_value_decode(&coil, NULL, 1, &v), 0);
    assert_true(cJSON_IsTrue(v));
    cJSON_Delete(v);
    assert_int_equal(gw__mb_value_decode(&reg, (uint16_t[]){0}, 0, &v), 0);
    assert_true(cJSON_IsFalse(v));
    cJSON_Delete(v);
    v = cJSON_CreateTrue();
    assert_int_equal(gw__mb_value_encode(&coil, v, r, &bit, NULL, 0), 0);
    assert_int_equal(bit, 1);
    assert_int_equal(gw__mb_value_encode(&reg, v, r, &bit, NULL, 0), 0);
    assert_int_equal(r[0], 1);
    cJSON_Delete(v);
    v = cJSON_CreateNumber(2);
    assert_int_equal(gw__mb_value_encode(&coil, v, r, &bit, NULL, 0), GW_E_BAD_PARAMS);
    cJSON_Delete(v);
}

static void test_not_representable(void **state)
{
    struct gw_config_modbus_point p = point(3, GW_CONFIG_MODBUS_FLOAT, GW_CONFIG_ORDER_ABCD, 1);
    cJSON *v = NULL;

    (void)state;
    /* NaN cannot travel in a message */
    assert_int_equal(gw__mb_value_decode(&p, (uint16_t[]){0x7FC0, 0x0000}, 0, &v), GW_E_BAD_FIELD);
    assert_null(v);
}

/* ---- frames ---- */

static void test_crc_vector(void **state)
{
    static const uint8_t f[] = {0x01, 0x03, 0x00, 0x00, 0x00, 0x0A};

    (void)state;
    assert_int_equal(gw__mb_crc16(f, sizeof(f)), 0xCDC5); /* on the wire: C5 CD */
}

static void test_pdus(void **state)
{
    struct gw__mb_req r = {.fc = 3, .addr = 0x1000, .count = 2};
    struct gw__mb_resp resp;
    uint8_t pdu[GW__MB_MAX_PDU];

    (void)state;
    assert_int_equal(gw__mb_pdu_request(&r, pdu), 5);
    assert_memory_equal(pdu, ((uint8_t[]){3, 0x10, 0x00, 0, 2}), 5);
    assert_int_equal(gw__mb_pdu_response(&r, (uint8_t[]){3, 4, 0x12, 0x34, 0xAB, 0xCD}, 6, &resp),
                     0);
    assert_int_equal(resp.err, 0);
    assert_int_equal(resp.regs[0], 0x1234);
    assert_int_equal(resp.regs[1], 0xABCD);
    /* exception, wrong byte count, wrong function */
    assert_int_equal(gw__mb_pdu_response(&r, (uint8_t[]){0x83, 2}, 2, &resp), 0);
    assert_int_equal(resp.err, GW_E_MODBUS_EXCEPTION);
    assert_int_equal(resp.exception, 2);
    assert_int_equal(gw__mb_pdu_response(&r, (uint8_t[]){3, 2, 0, 1}, 4, &resp), -EPROTO);
    assert_int_equal(gw__mb_pdu_response(&r, (uint8_t[]){4, 4, 0, 0, 0, 0}, 6, &resp), -EPROTO);

    /* FC1: 10 bits, LSB first */
    r = (struct gw__mb_req){.fc = 1, .addr = 5, .count = 10};
    assert_int_equal(gw__mb_pdu_response(&r, (uint8_t[]){1, 2, 0x05, 0x02}, 4, &resp), 0);
    assert_int_equal(resp.bits[0], 1);
    assert_int_equal(resp.bits[1], 0);
    assert_int_equal(resp.bits[2], 1);
    assert_int_equal(resp.bits[9], 1);
    assert_int_equal(resp.bits[8], 0);

    /* FC16 and its echo; FC15 packing; FC5 */
    r = (struct gw__mb_req){.fc = 16, .addr = 7, .count = 2, .regs = {0x0102, 0x0304}};
    assert_int_equal(gw__mb_pdu_request(&r, pdu), 10);
    assert_memory_equal(pdu, ((uint8_t[]){16, 0, 7, 0, 2, 4, 1, 2, 3, 4}), 10);
    assert_int_equal(gw__mb_pdu_response(&r, (uint8_t[]){16, 0, 7, 0, 2}, 5, &resp), 0);
    assert_int_equal(gw__mb_pdu_response(&r, (uint8_t[]){16, 0, 8, 0, 2}, 5, &resp), -EPROTO);
    r = (struct gw__mb_req){.fc = 15, .addr = 0, .count = 9, .bits = {1, 0, 0, 0, 0, 0, 0, 1, 1}};
    assert_int_equal(gw__mb_pdu_request(&r, pdu), 8);
    assert_memory_equal(pdu, ((uint8_t[]){15, 0, 0, 0, 9, 2, 0x81, 0x01}), 8);
    r = (struct gw__mb_req){.fc = 5, .addr = 3, .count = 1, .bits = {1}};
    assert_int_equal(gw__mb_pdu_request(&r, pdu), 5);
    assert_memory_equal(pdu, ((uint8_t[]){5, 0, 3, 0xFF, 0x00}), 5);
    assert_int_equal(gw__mb_pdu_response(&r, pdu, 5, &resp), 0);
    /* limits */
    r = (struct gw__mb_req){.fc = 3, .count = 126};
    assert_int_equal(gw__mb_pdu_request(&r, pdu), -EINVAL);
}

static void test_tcp_frames(void **state)
{
    uint8_t out[GW__MB_MAX_ADU], stream[64];
    const uint8_t pdu[] = {3, 0, 0, 0, 10};
    struct gw__mb_frame f;
    size_t n;

    (void)state;
    n = gw__mb_tcp_wrap(0x0102, 7, pdu, sizeof(pdu), out);
    assert_int_equal(n, 12);
    assert_memory_equal(out, ((uint8_t[]){1, 2, 0, 0, 0, 6, 7, 3, 0, 0, 0, 10}), 12);
    assert_int_equal(gw__mb_detect(out, n), GW__MB_FRAMING_TCP);
    /* two frames back to back, the second incomplete */
    memcpy(stream, out, n);
    memcpy(stream + n, out, 5);
    assert_int_equal(gw__mb_tcp_split(stream, n + 5, &f), 1);
    assert_int_equal(f.len, 12);
    assert_int_equal(f.tid, 0x0102);
    assert_int_equal(f.unit, 7);
    assert_int_equal(f.pdu_len, 5);
    assert_memory_equal(f.pdu, pdu, 5);
    assert_int_equal(gw__mb_tcp_split(stream + n, 5, &f), 0);
    stream[2] = 1; /* protocol id must be 0 */
    assert_int_equal(gw__mb_tcp_split(stream, n, &f), -EPROTO);
}

static void test_rtu_frames(void **state)
{
    uint8_t out[GW__MB_MAX_ADU];
    const uint8_t read[] = {3, 0, 0, 0, 10};
    const uint8_t login[] = {0x41, 2, '{', '}'};
    struct gw__mb_frame f;
    size_t n;

    (void)state;
    n = gw__mb_rtu_wrap(1, read, sizeof(read), out);
    assert_int_equal(n, 8);
    assert_memory_equal(out, ((uint8_t[]){1, 3, 0, 0, 0, 10, 0xC5, 0xCD}), 8);
    /* a response to FC3: byte count driven */
    n = gw__mb_rtu_wrap(1, (uint8_t[]){3, 2, 0x12, 0x34}, 4, out);
    assert_int_equal(gw__mb_rtu_split(out, n - 1, 0x41, &f), 0);
    assert_int_equal(gw__mb_rtu_split(out, n, 0x41, &f), 1);
    assert_int_equal(f.len, 7);
    assert_int_equal(f.unit, 1);
    assert_int_equal(f.pdu_len, 4);
    out[3] ^= 0xFF; /* corrupt a data byte: CRC mismatch */
    assert_int_equal(gw__mb_rtu_split(out, n, 0x41, &f), -EBADMSG);
    assert_int_equal(f.len, 7);
    /* exception: 5 bytes; write echo: 8 bytes; the custom login code */
    n = gw__mb_rtu_wrap(2, (uint8_t[]){0x86, 2}, 2, out);
    assert_int_equal(gw__mb_rtu_split(out, n, 0x41, &f), 1);
    assert_int_equal(f.len, 5);
    n = gw__mb_rtu_wrap(2, (uint8_t[]){6, 0, 1, 0, 9}, 5, out);
    assert_int_equal(gw__mb_rtu_split(out, n, 0x41, &f), 1);
    assert_int_equal(f.len, 8);
    n = gw__mb_rtu_wrap(9, login, sizeof(login), out);
    assert_int_equal(gw__mb_detect(out, n), GW__MB_FRAMING_RTU);
    assert_int_equal(gw__mb_rtu_split(out, n, 0x41, &f), 1);
    assert_int_equal(f.pdu[0], 0x41);
    assert_int_equal(gw__mb_rtu_split(out, n, 0x42, &f), -EPROTO); /* not the login code */
    assert_int_equal(gw__mb_detect(out, 5), GW__MB_FRAMING_UNKNOWN);
}

/* ---- plan ---- */

static void test_plan_merges(void **state)
{
    struct gw_config_modbus_point pts[] = {
        point(3, GW_CONFIG_MODBUS_FLOAT, GW_CONFIG_ORDER_ABCD, 1), /* 10..11 */
        point(3, GW_CONFIG_MODBUS_UINT16, GW_CONFIG_ORDER_AB, 1),  /* 12 */
        point(3, GW_CONFIG_MODBUS_INT16, GW_CONFIG_ORDER_AB, 1),   /* 14: gap at 13 */
        point(3, GW_CONFIG_MODBUS_UINT16, GW_CONFIG_ORDER_AB, 1),  /* 11: overlaps */
        point(4, GW_CONFIG_MODBUS_UINT16, GW_CONFIG_ORDER_AB, 1),  /* other function */
        point(3, GW_CONFIG_MODBUS_UINT16, GW_CONFIG_ORDER_AB, 1),  /* 15, other interval */
        point(1, GW_CONFIG_MODBUS_BOOLEAN, GW_CONFIG_ORDER_AB, 1), /* coil 0 */
        point(1, GW_CONFIG_MODBUS_BOOLEAN, GW_CONFIG_ORDER_AB, 1), /* coil 1 */
    };
    struct gw__mb_plan plan;

    (void)state;
    pts[0].address = 10;
    pts[1].address = 12;
    pts[2].address = 14;
    pts[3].address = 11;
    pts[4].address = 12;
    pts[5].address = 15;
    pts[5].poll_interval_ms = 500;
    pts[6].address = 0;
    pts[7].address = 1;
    assert_int_equal(gw__mb_plan_build(pts, 8, &plan), 0);
    assert_int_equal(plan.n_segs, 5);
    /* sorted by (fc, interval, address): coils 0..1; FC3@500 15; FC3@1000 10..12; 14; FC4 */
    assert_int_equal(plan.segs[0].fc, 1);
    assert_int_equal(plan.segs[0].start, 0);
    assert_int_equal(plan.segs[0].count, 2);
    assert_int_equal(plan.segs[0].n, 2);
    assert_int_equal(plan.segs[1].start, 15);
    assert_int_equal(plan.segs[1].interval_ms, 500);
    assert_int_equal(plan.segs[2].start, 10);
    assert_int_equal(plan.segs[2].count, 3);
    assert_int_equal(plan.segs[2].n, 3);
    assert_int_equal(plan.segs[3].start, 14);
    assert_int_equal(plan.segs[3].count, 1);
    assert_int_equal(plan.segs[4].fc, 4);
    /* the points of segment 2 are 0, 3, 1 in address order */
    assert_int_equal(plan.idx[plan.segs[2].first], 0);
    assert_int_equal(plan.idx[plan.segs[2].first + 1], 3);
    assert_int_equal(plan.idx[plan.segs[2].first + 2], 1);
    gw__mb_plan_fini(&plan);
}

static void test_plan_limits(void **state)
{
    struct gw_config_modbus_point pts[70];
    struct gw__mb_plan plan;

    (void)state;
    for (int i = 0; i < 70; i++) {
        pts[i] = point(3, GW_CONFIG_MODBUS_UINT32, GW_CONFIG_ORDER_ABCD, 1);
        pts[i].address = 2 * i; /* 140 contiguous registers */
    }
    assert_int_equal(gw__mb_plan_build(pts, 70, &plan), 0);
    assert_int_equal(plan.n_segs, 2);
    assert_int_equal(plan.segs[0].count, 124); /* 62 points: a 63rd would make 126 */
    assert_int_equal(plan.segs[1].start, 124);
    assert_int_equal(plan.segs[1].count, 16);
    gw__mb_plan_fini(&plan);
    assert_int_equal(gw__mb_plan_build(pts, 0, &plan), 0);
    assert_int_equal(plan.n_segs, 0);
    gw__mb_plan_fini(&plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_16bit),
        cmocka_unit_test(test_32bit),
        cmocka_unit_test(test_double_all_eight_bytes),
        cmocka_unit_test(test_scale_and_rounding),
        cmocka_unit_test(test_boolean),
        cmocka_unit_test(test_not_representable),
        cmocka_unit_test(test_crc_vector),
        cmocka_unit_test(test_pdus),
        cmocka_unit_test(test_tcp_frames),
        cmocka_unit_test(test_rtu_frames),
        cmocka_unit_test(test_plan_merges),
        cmocka_unit_test(test_plan_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
