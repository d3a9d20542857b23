/*
 * DESIGN: the Modbus wire as the server mode needs it (REFERENCE §4.10), sans-I/O: request
 * PDUs, response PDU checks, Modbus TCP (MBAP) and RTU frames with CRC-16, framing detection
 * and stream splitting. libmodbus has no API for a master on a socket it did not open with
 * RTU framing over TCP, so the server mode speaks through this small layer; the client mode
 * uses libmodbus itself. Pure functions: any thread, no state, no logging.
 */
#include <errno.h>
#include <string.h>

#include "gw_error.h"
#include "mb_internal.h"

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

uint16_t gw__mb_crc16(const uint8_t *p, size_t n)
{
    uint16_t crc = 0xFFFF;

    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
    }
    return crc;
}

enum gw__mb_framing gw__mb_detect(const uint8_t *buf, size_t len)
{
    uint16_t l;

    if (len < 6)
        return GW__MB_FRAMING_UNKNOWN;
    l = get16(buf + 4);
    if (buf[2] == 0 && buf[3] == 0 && l >= 2 && l <= 1 + GW__MB_MAX_PDU)
        return GW__MB_FRAMING_TCP;
    return GW__MB_FRAMING_RTU;
}

int gw__mb_pdu_request(const struct gw__mb_req *req, uint8_t *pdu)
{
    size_t n;

    pdu[0] = req->fc;
    put16(pdu + 1, req->addr);
    switch (req->fc) {
    case 1:
    case 2:
        if (req->count < 1 || req->count > GW__MB_MAX_READ_BITS)
            return -EINVAL;
        put16(pdu + 3, req->count);
        return 5;
    case 3:
    case 4:
        if (req->count < 1 || req->count > GW__MB_MAX_READ_REGS)
            return -EINVAL;
        put16(pdu + 3, req->count);
        return 5;
    case 5:
        put16(pdu + 3, req->bits[0] ? 0xFF00 : 0x0000);
        return 5;
    case 6:
        put16(pdu + 3, req->regs[0]);
        return 5;
    case 15:
        if (req->count < 1 || req->count > 1968)
            return -EINVAL;
        put16(pdu + 3, req->count);
        n = (req->count + 7u) / 8u;
        pdu[5] = (uint8_t)n;
        memset(pdu + 6, 0, n);
        for (size_t i = 0; i < req->count; i++)
            if (req->bits[i])
                pdu[6 + i / 8] |= (uint8_t)(1u << (i % 8));
        return (int)(6 + n);
    case 16:
        if (req->count < 1 || req->count > GW__MB_MAX_WRITE_REGS)
            return -EINVAL;
        put16(pdu + 3, req->count);
        pdu[5] = (uint8_t)(2 * req->count);
        for (size_t i = 0; i < req->count; i++)
            put16(pdu + 6 + 2 * i, req->regs[i]);
        return 6 + 2 * req->count;
    default:
        return -EINVAL;
    }
}

int gw__mb_pdu_response(const struct gw__mb_req *req, const uint8_t *pdu, size_t len,
                        struct gw__mb_resp *resp)
{
    uint8_t expect[GW__MB_MAX_PDU];
    size_t bc;

    resp->err = 0;
    resp->exception = 0;
    if (len < 2)
        return -EPROTO;
    if (pdu[0] == (req->fc | 0x80)) {
        resp->err = GW_E_MODBUS_EXCEPTION;
        resp->exception = pdu[1];
        return len == 2 ? 0 : -EPROTO;
    }
    if (pdu[0] != req->fc)
        return -EPROTO;
    switch (req->fc) {
    case 1:
    case 2:
        bc = (req->count + 7u) / 8u;
        if (pdu[1] != bc || len != 2 + bc)
            return -EPROTO;
        for (size_t i = 0; i < req->count; i++)
            resp->bits[i] = (uint8_t)((pdu[2 + i / 8] >> (i % 8)) & 1);
        return 0;
    case 3:
    case 4:
        bc = 2u * req->count;
        if (pdu[1] != bc || len != 2 + bc)
            return -EPROTO;
        for (size_t i = 0; i < req->count; i++)
            resp->regs[i] = get16(pdu + 2 + 2 * i);
        return 0;
    case 5:
    case 6:
        /* The answer echoes the request. */
        if (len != 5 || gw__mb_pdu_request(req, expect) != 5 || memcmp(pdu, expect, 5) != 0)
            return -EPROTO;
        return 0;
    case 15:
    case 16:
        if (len != 5 || get16(pdu + 1) != req->addr || get16(pdu + 3) != req->count)
            return -EPROTO;
        return 0;
    default:
        return -EPROTO;
    }
}

size_t gw__mb_tcp_wrap(uint16_t tid, uint8_t unit, const uint8_t *pdu, size_t len, uint8_t *out)
{
    put16(out, tid);
    put16(out + 2, 0);
    put16(out + 4, (uint16_t)(len + 1));
    out[6] = unit;
    memcpy(out + 7, pdu, len);
    return 7 + len;
}

size_t gw__mb_rtu_wrap(uint8_t slave, const uint8_t *pdu, size_t len, uint8_t *out)
{
    uint16_t crc;

    out[0] = slave;
    memcpy(out + 1, pdu, len);
    crc = gw__mb_crc16(out, 1 + len);
    out[1 + len] = (uint8_t)crc; /* low byte first */
    out[2 + len] = (uint8_t)(crc >> 8);
    return 3 + len;
}

int gw__mb_tcp_split(const uint8_t *buf, size_t len, struct gw__mb_frame *f)
{
    uint16_t l;

    if (len < 7)
        return 0;
    l = get16(buf + 4);
    if (get16(buf + 2) != 0 || l < 2 || l > 1 + GW__MB_MAX_PDU)
        return -EPROTO;
    if (len < 6u + l)
        return 0;
    f->len = 6u + l;
    f->tid = get16(buf);
    f->unit = buf[6];
    f->pdu = buf + 7;
    f->pdu_len = l - 1u;
    return 1;
}

int gw__mb_rtu_split(const uint8_t *buf, size_t len, uint8_t custom_fc, struct gw__mb_frame *f)
{
    size_t total;
    uint8_t fc;
    uint16_t crc;

    if (len < 2)
        return 0;
    fc = buf[1];
    if (fc & 0x80) {
        total = 5;
    } else if ((fc >= 1 && fc <= 4) || fc == custom_fc) {
        if (len < 3)
            return 0;
        total = 3u + buf[2] + 2u;
    } else if (fc == 5 || fc == 6 || fc == 15 || fc == 16) {
        total = 8;
    } else {
        return -EPROTO;
    }
    if (len < total)
        return 0;
    f->len = total;
    f->tid = 0;
    f->unit = buf[0];
    f->pdu = buf + 1;
    f->pdu_len = total - 3;
    crc = gw__mb_crc16(buf, total - 2);
    if (buf[total - 2] != (uint8_t)crc || buf[total - 1] != (uint8_t)(crc >> 8))
        return -EBADMSG;
    return 1;
}
