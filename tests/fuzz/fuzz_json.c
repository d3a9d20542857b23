/*
 * DESIGN: libFuzzer target for the JSON serializer. Property: whatever decodes re-encodes
 * (unless the output passes the frame limit), the re-encoding decodes to the same content,
 * and encoding that gives the same bytes again (the canonical form is a fixed point). The
 * message must also cross to the binary codec and decode there. Any violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_codec.h"
#include "gw_error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_cross(const struct gw_msg *m, const struct gw_msg_identity *ident)
{
    struct gw_msg *other;
    uint8_t *buf;
    size_t len;
    int rc = gw_codec_binary_encode(m, &buf, &len);

    if (rc == GW_E_FRAME_TOO_LARGE)
        return;
    if (rc || gw_codec_binary_decode(buf, len, ident, &other))
        abort();
    if (other->method != m->method || strcmp(gw_msg_wire_id(other), gw_msg_wire_id(m)) != 0)
        abort();
    gw_msg_unref(other);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct gw_msg_identity ident = { "pk", "dn", 1 };
    struct gw_msg *m1, *m2;
    uint8_t *b1, *b2;
    size_t l1, l2;
    int rc;

    if (gw_codec_json_decode(data, size, &ident, &m1))
        return 0;
    rc = gw_codec_json_encode(m1, &b1, &l1);
    if (rc == GW_E_FRAME_TOO_LARGE) {
        gw_msg_unref(m1);
        return 0;
    }
    if (rc || gw_codec_json_decode(b1, l1, &ident, &m2))
        abort();
    if (!gw_msg_equal_content(m1, m2))
        abort();
    if (gw_codec_json_encode(m2, &b2, &l2) || l2 != l1 || memcmp(b1, b2, l1) != 0)
        abort();
    check_cross(m1, &ident);
    free(b2);
    free(b1);
    gw_msg_unref(m2);
    gw_msg_unref(m1);
    return 0;
}
