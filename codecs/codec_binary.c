/*
 * DESIGN: the binary serializer of DESIGN §4 (layout and error order in gw_codec.h).
 * Sans-I/O, any thread, no state. The decoder reads through a bounds-checked cursor over the
 * frame, so no field can be read past the declared (== actual) length; body JSON goes
 * through gw_json_parse_strict and the message invariants through gw_msg_new. The encoder
 * sizes the frame first and writes it in one buffer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gw_codec.h"
#include "gw_error.h"
#include "gw_util.h"

#define GW_BIN_HEADER 7u   /* magic, version, type, uint32 length */
#define GW_BIN_MIN 11u     /* header + two empty uint16-prefixed strings */

struct gw_bin_cursor {
    const uint8_t *p;
    size_t left;
};

static int gw_bin_u16(struct gw_bin_cursor *c, uint16_t *out)
{
    if (c->left < 2)
        return GW_E_TRUNCATED;
    *out = (uint16_t)(c->p[0] << 8 | c->p[1]);
    c->p += 2;
    c->left -= 2;
    return 0;
}

static int gw_bin_u32(struct gw_bin_cursor *c, uint32_t *out)
{
    if (c->left < 4)
        return GW_E_TRUNCATED;
    *out = (uint32_t)c->p[0] << 24 | (uint32_t)c->p[1] << 16 | (uint32_t)c->p[2] << 8 | c->p[3];
    c->p += 4;
    c->left -= 4;
    return 0;
}

/*
 * A uint16-prefixed UTF-8 string of at most max bytes, copied NUL-terminated into buf
 * (size > max). Bytes must fit the frame; NUL is refused because the model keeps C strings.
 */
static int gw_bin_str(struct gw_bin_cursor *c, size_t max, char *buf, int too_long)
{
    uint16_t len;
    int rc = gw_bin_u16(c, &len);

    if (rc)
        return rc;
    if (len > c->left)
        return GW_E_TRUNCATED;
    if (len > max)
        return too_long;
    if (memchr(c->p, '\0', len))
        return GW_E_BAD_FIELD;
    if (!gw_utf8_valid((const char *)c->p, len))
        return GW_E_BAD_UTF8;
    memcpy(buf, c->p, len);
    buf[len] = '\0';
    c->p += len;
    c->left -= len;
    return 0;
}

/* Magic, version, type, length: each checked as soon as its bytes are there. */
static int gw_bin_header(const uint8_t *buf, size_t len, int *type)
{
    uint32_t total;

    if (len < 1)
        return GW_E_TRUNCATED;
    if (buf[0] != GW_CODEC_BINARY_MAGIC)
        return GW_E_BAD_MAGIC;
    if (len < 2)
        return GW_E_TRUNCATED;
    if (buf[1] != GW_CODEC_BINARY_VERSION)
        return GW_E_BAD_VERSION;
    if (len < 3)
        return GW_E_TRUNCATED;
    if (buf[2] != GW_CODEC_BINARY_REQUEST && buf[2] != GW_CODEC_BINARY_REPLY)
        return GW_E_BAD_TYPE;
    *type = buf[2];
    if (len < GW_BIN_HEADER)
        return GW_E_TRUNCATED;
    total = (uint32_t)buf[3] << 24 | (uint32_t)buf[4] << 16 | (uint32_t)buf[5] << 8 | buf[6];
    if (total > GW_CODEC_MAX_INPUT)
        return GW_E_FRAME_TOO_LARGE;
    if (total > len)
        return GW_E_TRUNCATED;
    if (total < len || total < GW_BIN_MIN)
        return GW_E_LENGTH_MISMATCH;
    return 0;
}

/* The rest of the cursor as a JSON body; empty = absent. */
static int gw_bin_body(struct gw_bin_cursor *c, cJSON **out)
{
    *out = NULL;
    if (c->left == 0)
        return 0;
    return gw_json_parse_strict((const char *)c->p, c->left, out);
}

int gw_codec_binary_decode(const uint8_t *buf, size_t len, const struct gw_msg_identity *ident,
                           struct gw_msg **out)
{
    struct gw_msg_fields f = { 0 };
    struct gw_bin_cursor c;
    char id[GW_MSG_REQUEST_ID_MAX + 1], method[GW_METHOD_NAME_MAX + 1], msg[GW_MSG_TEXT_MAX + 1];
    uint32_t code;
    int type, rc;

    *out = NULL;
    if (len > GW_CODEC_MAX_INPUT)
        return GW_E_FRAME_TOO_LARGE;
    if ((rc = gw_bin_header(buf, len, &type)))
        return rc;
    c.p = buf + GW_BIN_HEADER;
    c.left = len - GW_BIN_HEADER;
    if ((rc = gw_bin_str(&c, GW_MSG_REQUEST_ID_MAX, id, GW_E_BAD_FIELD)) ||
        (rc = gw_bin_str(&c, GW_METHOD_NAME_MAX, method, GW_E_UNKNOWN_METHOD)) ||
        (rc = gw_method_parse(method, strlen(method), &f.method)))
        return rc;
    f.request_id = id;
    if (type == GW_CODEC_BINARY_REPLY) {
        if ((rc = gw_bin_u32(&c, &code)) || (rc = gw_bin_str(&c, GW_MSG_TEXT_MAX, msg, GW_E_BAD_FIELD)))
            return rc;
        f.has_code = true;
        f.code = (int32_t)code; /* two's complement on every target we build for */
        f.msg = msg[0] ? msg : NULL; /* length 0 = no msg */
        rc = gw_bin_body(&c, &f.data);
    } else {
        rc = gw_bin_body(&c, &f.params);
    }
    if (rc)
        return rc;
    if (ident)
        f.identity = *ident;
    return gw_msg_new(&f, out);
}

static uint8_t *gw_bin_put_u16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static uint8_t *gw_bin_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

static uint8_t *gw_bin_put_str(uint8_t *p, const char *s, size_t len)
{
    p = gw_bin_put_u16(p, len);
    memcpy(p, s, len);
    return p + len;
}

int gw_codec_binary_encode(const struct gw_msg *msg, uint8_t **out, size_t *out_len)
{
    const char *id = gw_msg_wire_id(msg), *method = gw_msg_method_name(msg);
    const cJSON *tree = msg->has_code ? msg->data : msg->params;
    size_t id_len = strlen(id), m_len = strlen(method), text_len = 0, body_len = 0, total;
    char *body = NULL;
    uint8_t *buf, *p;
    int rc = -ENOMEM;

    *out = NULL;
    *out_len = 0;
    if (tree) {
        if (!(body = cJSON_PrintUnformatted(tree)))
            return -ENOMEM;
        body_len = strlen(body);
    }
    /* id <= 64, method <= 32, msg <= 1024 bytes by the gw_msg invariants: all fit a uint16 */
    total = GW_BIN_HEADER + 2 + id_len + 2 + m_len + body_len;
    if (msg->has_code) {
        text_len = msg->msg ? strlen(msg->msg) : 0;
        total += 4 + 2 + text_len;
    }
    if (total > GW_CODEC_MAX_INPUT) {
        rc = GW_E_FRAME_TOO_LARGE;
        goto err_free_body;
    }
    if (!(buf = malloc(total)))
        goto err_free_body;
    p = buf;
    *p++ = GW_CODEC_BINARY_MAGIC;
    *p++ = GW_CODEC_BINARY_VERSION;
    *p++ = msg->has_code ? GW_CODEC_BINARY_REPLY : GW_CODEC_BINARY_REQUEST;
    p = gw_bin_put_u32(p, (uint32_t)total);
    p = gw_bin_put_str(p, id, id_len);
    p = gw_bin_put_str(p, method, m_len);
    if (msg->has_code) {
        p = gw_bin_put_u32(p, (uint32_t)msg->code);
        p = gw_bin_put_str(p, msg->msg ? msg->msg : "", text_len);
    }
    if (body_len)
        memcpy(p, body, body_len);
    *out = buf;
    *out_len = total;
    rc = 0;

err_free_body:
    cJSON_free(body);
    return rc;
}

const struct gw_codec_ops gw_codec_binary = {
    .name = "binary",
    .decode = gw_codec_binary_decode,
    .encode = gw_codec_binary_encode,
};
