#ifndef GW_CODEC_H
#define GW_CODEC_H
/*
 * Serializers (DESIGN §4): bytes ⇄ struct gw_msg. Sans-I/O: no sockets, clocks, logging or
 * mutable globals; every function may be called from any thread at the same time.
 *
 *   const struct gw_codec_ops *c = gw_codec_find("binary");
 *   struct gw_msg *m;
 *   int rc = c->decode(buf, len, &session_identity, &m);   // rc: 0 or a GW_E_* code
 *
 * Identity: decoders never take identity from the payload. The caller passes the identity
 * of the session (or topic) and the message carries exactly that (DESIGN §3: the session's
 * identity wins). Origin, device_id and report_time may be set on the result afterwards by
 * the caller while it holds the only reference.
 *
 * JSON form (codec "json"): one object
 *   {"id":"<request id>","method":"...","params":...,"data":...,"code":0,"msg":"...",
 *    "reportTime":1700000000000}
 * Decode: gw_json_parse_strict; unknown fields ignored; JSON null equals absent for every
 * field. id is a string (<= 64 bytes) or an integer number (|n| < 2^53, converted to its
 * decimal string); when a non-empty string "requestId" is present it is the request id
 * instead (the reference's own JSON carries both). method is required and must be in the
 * method table. params must have the method's JSON type (an object; an array for
 * thing.auth.register.sub); data may be any JSON. code: integer in int32 range (present ⇔
 * reply). msg: string. reportTime: integer >= 0. The legacy Alink form ("version":"1.0") is
 * accepted; any other version value is refused (GW_E_BAD_FIELD).
 * Encode: the canonical form above, fields in that order, absent ones omitted, no
 * whitespace, no version; the output is NUL-terminated (not counted in *out_len).
 *
 * Binary form (codec "binary", big-endian): 0x7E, version 1, type (1 request, 2 reply),
 * uint32 total length (== buffer length), uint16 + id, uint16 + method, body: request =
 * params JSON or nothing; reply = int32 code, uint16 + msg (0 = absent), data JSON or nothing.
 * Decode checks in this order: magic, version, type (as soon as each byte is there), then
 * total length (> GW_CODEC_MAX_INPUT: GW_E_FRAME_TOO_LARGE; more than the buffer:
 * GW_E_TRUNCATED; less than the buffer or less than the 11-byte minimum:
 * GW_E_LENGTH_MISMATCH), then each field (running past the frame: GW_E_TRUNCATED; id over
 * 64 bytes or containing NUL: GW_E_BAD_FIELD; bad UTF-8: GW_E_BAD_UTF8; unknown method:
 * GW_E_UNKNOWN_METHOD; bad body JSON: GW_E_BAD_JSON, GW_E_TOO_DEEP, GW_E_BAD_PARAMS).
 *
 * Both decoders refuse input longer than GW_CODEC_MAX_INPUT (GW_E_FRAME_TOO_LARGE), and
 * every other invariant of gw_msg.h is enforced by gw_msg_new.
 */
#include <stddef.h>
#include <stdint.h>

#include "gw_msg.h"

/* Largest serialized message accepted or produced (the 64 KiB frame limit of DESIGN §4). */
#define GW_CODEC_MAX_INPUT 65536u

/* Binary header: magic, version, type, uint32 length. */
#define GW_CODEC_BINARY_MAGIC 0x7E
#define GW_CODEC_BINARY_VERSION 1
#define GW_CODEC_BINARY_REQUEST 1
#define GW_CODEC_BINARY_REPLY 2

/*
 * decode: buf[0..len) is borrowed; ident borrowed (NULL = empty identity); *out gets a new
 *         message (refs 1) on 0, NULL otherwise. Returns 0 or a GW_E_* code / -ENOMEM.
 * encode: msg borrowed; *out gets a malloc'ed buffer (free with free()) of *out_len bytes.
 *         Returns 0, GW_E_FRAME_TOO_LARGE (output over GW_CODEC_MAX_INPUT: a decoded message
 *         can print longer than it came, e.g. 1e9 prints as 1000000000) or -ENOMEM.
 */
struct gw_codec_ops {
    const char *name;
    int (*decode)(const uint8_t *buf, size_t len, const struct gw_msg_identity *ident,
                  struct gw_msg **out);
    int (*encode)(const struct gw_msg *msg, uint8_t **out, size_t *out_len);
};

/* "json" or "binary" (exact, lowercase); NULL for any other name. */
const struct gw_codec_ops *gw_codec_find(const char *name);

int gw_codec_json_decode(const uint8_t *buf, size_t len, const struct gw_msg_identity *ident,
                         struct gw_msg **out);
int gw_codec_json_encode(const struct gw_msg *msg, uint8_t **out, size_t *out_len);
int gw_codec_binary_decode(const uint8_t *buf, size_t len, const struct gw_msg_identity *ident,
                           struct gw_msg **out);
int gw_codec_binary_encode(const struct gw_msg *msg, uint8_t **out, size_t *out_len);

extern const struct gw_codec_ops gw_codec_json;
extern const struct gw_codec_ops gw_codec_binary;

#endif
