/*
 * DESIGN: register contents <-> property values for Modbus points (REFERENCE §4.10 "Point
 * value conversion", with its DOUBLE quirk fixed). Pure functions: any thread, no state.
 *
 * Model: a point's registers are laid out big-endian (reg0 high byte, reg0 low byte, reg1
 * high, ...); the byte order says how that wire image relates to the big-endian value:
 *   AB / ABCD  as is;                      BA    bytes swapped (16-bit);
 *   DCBA       all bytes reversed;         BADC  bytes swapped inside every register;
 *   CDAB       register order reversed (bytes inside a register kept).
 * Each of these is its own inverse, so writing applies the same permutation. For DOUBLE the
 * order covers all eight bytes (the reference reorders only the first four: a quirk we do
 * not copy); DOUBLE CDAB is therefore the four registers in reverse order.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_error.h"
#include "mb_internal.h"

int gw__mb_type_width(enum gw_config_modbus_type t)
{
    switch (t) {
    case GW_CONFIG_MODBUS_INT32:
    case GW_CONFIG_MODBUS_UINT32:
    case GW_CONFIG_MODBUS_FLOAT:
        return 2;
    case GW_CONFIG_MODBUS_DOUBLE:
        return 4;
    default:
        return 1;
    }
}

/* out = the permutation of in (n bytes, n = 2 * registers) for the byte order. */
static void reorder(enum gw_config_byte_order order, const uint8_t *in, uint8_t *out, int n)
{
    for (int i = 0; i < n; i++) {
        int src = i;
        switch (order) {
        case GW_CONFIG_ORDER_BA:
        case GW_CONFIG_ORDER_BADC:
            src = i ^ 1;
            break;
        case GW_CONFIG_ORDER_DCBA:
            src = n - 1 - i;
            break;
        case GW_CONFIG_ORDER_CDAB:
            src = n - 2 - (i & ~1) + (i & 1);
            break;
        default: /* AB, ABCD */
            break;
        }
        out[i] = in[src];
    }
}

/* The big-endian value bits of the point's registers. */
static uint64_t regs_to_bits(const struct gw_config_modbus_point *p, const uint16_t *regs,
                             int width)
{
    uint8_t wire[8], v[8];
    uint64_t u = 0;

    for (int i = 0; i < width; i++) {
        wire[2 * i] = (uint8_t)(regs[i] >> 8);
        wire[2 * i + 1] = (uint8_t)regs[i];
    }
    reorder(p->byte_order, wire, v, 2 * width);
    for (int i = 0; i < 2 * width; i++)
        u = (u << 8) | v[i];
    return u;
}

static void bits_to_regs(const struct gw_config_modbus_point *p, uint64_t u, uint16_t *regs,
                         int width)
{
    uint8_t wire[8], v[8];

    for (int i = 2 * width - 1; i >= 0; i--) {
        v[i] = (uint8_t)u;
        u >>= 8;
    }
    reorder(p->byte_order, v, wire, 2 * width);
    for (int i = 0; i < width; i++)
        regs[i] = (uint16_t)(wire[2 * i] << 8 | wire[2 * i + 1]);
}

/* The shortest decimal that reads back as f (6..9 significant digits), as a double: a
 * register holding 0.1f shows 0.1, not 0.100000001490116. */
static double float_value(float f)
{
    char buf[32];

    for (int digits = FLT_DIG; digits <= 9; digits++) {
        snprintf(buf, sizeof(buf), "%.*g", digits, (double)f);
        if ((float)strtod(buf, NULL) == f)
            return strtod(buf, NULL);
    }
    return (double)f;
}

/* raw * scale for display: 15 significant digits (what cJSON prints and reads back), so
 * 255 * 0.1 shows 25.5 whatever rounding the product picked up. */
static double scaled(double raw, double scale)
{
    char buf[32];
    double v = raw * scale;

    if (scale == 1.0)
        return v;
    snprintf(buf, sizeof(buf), "%.15g", v);
    return strtod(buf, NULL);
}

int gw__mb_value_decode(const struct gw_config_modbus_point *p, const uint16_t *regs, uint8_t bit,
                        cJSON **out)
{
    int width = gw__mb_type_width(p->raw_type);
    uint64_t u;
    double raw;
    float f;
    double d;

    *out = NULL;
    if (p->function_code <= 2 || p->raw_type == GW_CONFIG_MODBUS_BOOLEAN) {
        bool on = p->function_code <= 2 ? bit != 0 : regs[0] != 0;
        *out = cJSON_CreateBool(on);
        return *out ? 0 : -ENOMEM;
    }
    u = regs_to_bits(p, regs, width);
    switch (p->raw_type) {
    case GW_CONFIG_MODBUS_INT16:
        raw = (double)(int16_t)(uint16_t)u;
        break;
    case GW_CONFIG_MODBUS_UINT16:
        raw = (double)(uint16_t)u;
        break;
    case GW_CONFIG_MODBUS_INT32:
        raw = (double)(int32_t)(uint32_t)u;
        break;
    case GW_CONFIG_MODBUS_UINT32:
        raw = (double)(uint32_t)u;
        break;
    case GW_CONFIG_MODBUS_FLOAT: {
        uint32_t w = (uint32_t)u;
        memcpy(&f, &w, sizeof(f));
        if (!isfinite(f))
            return GW_E_BAD_FIELD;
        raw = float_value(f);
        break;
    }
    case GW_CONFIG_MODBUS_DOUBLE:
        memcpy(&d, &u, sizeof(d));
        raw = d;
        break;
    default:
        return GW_E_BAD_FIELD;
    }
    raw = scaled(raw, p->scale);
    if (!isfinite(raw) || fabs(raw) > GW_MSG_NUMBER_MAX)
        return GW_E_BAD_FIELD;
    *out = cJSON_CreateNumber(raw);
    return *out ? 0 : -ENOMEM;
}

/* value / scale rounded half up, within [lo, hi]. */
static int integer_raw(double v, double scale, double lo, double hi, int64_t *out)
{
    double r = floor(v / scale + 0.5);

    if (!isfinite(r) || r < lo || r > hi)
        return GW_E_BAD_PARAMS;
    *out = (int64_t)r;
    return 0;
}

static const char *const type_names[] = {"INT16", "UINT16", "INT32",  "UINT32",
                                         "FLOAT", "DOUBLE", "BOOLEAN"};

int gw__mb_value_encode(const struct gw_config_modbus_point *p, const cJSON *value, uint16_t *regs,
                        uint8_t *bit, char *why, size_t whylen)
{
    int width = gw__mb_type_width(p->raw_type);
    const char *tname = (unsigned)p->raw_type < 7 ? type_names[p->raw_type] : "?";
    int64_t r = 0;
    uint64_t u = 0;
    double v;
    int rc = 0;

    if (!why || !whylen) {
        why = NULL;
        whylen = 0;
    }
    if (p->raw_type == GW_CONFIG_MODBUS_BOOLEAN || p->function_code <= 2) {
        if (cJSON_IsBool(value)) {
            u = cJSON_IsTrue(value) ? 1 : 0;
        } else if (cJSON_IsNumber(value) &&
                   (value->valuedouble == 0.0 || value->valuedouble == 1.0)) {
            u = value->valuedouble == 1.0;
        } else {
            if (why)
                snprintf(why, whylen, "expects true/false or 0/1");
            return GW_E_BAD_PARAMS;
        }
        if (p->function_code <= 2)
            *bit = (uint8_t)u;
        else
            regs[0] = (uint16_t)u;
        return 0;
    }
    if (!cJSON_IsNumber(value) || !isfinite(value->valuedouble)) {
        if (why)
            snprintf(why, whylen, "expects a number");
        return GW_E_BAD_PARAMS;
    }
    v = value->valuedouble;
    switch (p->raw_type) {
    case GW_CONFIG_MODBUS_INT16:
        rc = integer_raw(v, p->scale, -32768.0, 32767.0, &r);
        u = (uint16_t)(int16_t)r;
        break;
    case GW_CONFIG_MODBUS_UINT16:
        rc = integer_raw(v, p->scale, 0.0, 65535.0, &r);
        u = (uint64_t)r;
        break;
    case GW_CONFIG_MODBUS_INT32:
        rc = integer_raw(v, p->scale, -2147483648.0, 2147483647.0, &r);
        u = (uint32_t)(int32_t)r;
        break;
    case GW_CONFIG_MODBUS_UINT32:
        rc = integer_raw(v, p->scale, 0.0, 4294967295.0, &r);
        u = (uint64_t)r;
        break;
    case GW_CONFIG_MODBUS_FLOAT: {
        float f = (float)(v / p->scale);
        uint32_t w;
        if (!isfinite(f)) {
            rc = GW_E_BAD_PARAMS;
            break;
        }
        memcpy(&w, &f, sizeof(w));
        u = w;
        break;
    }
    case GW_CONFIG_MODBUS_DOUBLE: {
        double d = v / p->scale;
        if (!isfinite(d)) {
            rc = GW_E_BAD_PARAMS;
            break;
        }
        memcpy(&u, &d, sizeof(u));
        break;
    }
    default:
        rc = GW_E_BAD_PARAMS;
    }
    if (rc) {
        if (why)
            snprintf(why, whylen, "%g / scale %g does not fit %s", v, p->scale, tname);
        return rc;
    }
    bits_to_regs(p, u, regs, width);
    return 0;
}
