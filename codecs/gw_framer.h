#ifndef GW_FRAMER_H
#define GW_FRAMER_H
/*
 * TCP stream framers (DESIGN §4, REFERENCE §3.2), sans-I/O: bytes in, whole frames out.
 * One framer per connection; a framer is not thread-safe (the connection's loop thread owns
 * it). Configs are plain values, validated once with gw_framer_config_check.
 *
 * Types:
 *  - GW_FRAMER_DELIMITER: frame = payload + delimiter (1..8 bytes, default "\n"). The payload
 *    (without the delimiter) is emitted; an empty payload is emitted as a 0-byte frame.
 *  - GW_FRAMER_LENGTH_FIELD, like Netty's LengthFieldBasedFrameDecoder / the reference:
 *
 *        [ offset bytes ][ length field: size 1|2|4, big-endian, unsigned ][ body ]
 *        |<------------ header = offset + size ----------->|<-- body_len -->|
 *
 *        body_len = field value + length_adjustment   (must be 0..GW_FRAME_MAX)
 *        frame    = header + body; emitted = frame minus its first `strip` bytes
 *                   (strip <= header size, checked by gw_framer_config_check).
 *
 *    Example (the reference's sample config): offset 0, size 4, adjustment 0, strip 4 =
 *    "[uint32 BE payload length][payload]", and the payload alone is emitted. A field that
 *    counts the whole frame (header included) uses adjustment = -(offset + size).
 *    Differences from the reference: a body_len of 0 is a valid empty frame (the reference
 *    refuses it), and a 4-byte field is unsigned (the reference reads it as a signed int; any
 *    value >= 2^31 is over the limit either way).
 *  - GW_FRAMER_FIXED_LENGTH: every frame is exactly fixed_length (1..GW_FRAME_MAX) bytes.
 *
 * Limits: a frame body/payload larger than GW_FRAME_MAX bytes fails with
 * GW_E_FRAME_TOO_LARGE; a delimiter frame fails as soon as more than GW_FRAME_MAX bytes
 * arrive without a delimiter (up to delimiter length - 1 bytes later). A framer never
 * buffers more than GW_FRAME_MAX + header (or + delimiter) bytes. After any error the framer
 * is failed: every later gw_framer_feed returns the same error (the caller closes the
 * connection and logs gw_framer_error_reason).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_FRAME_MAX 65536
#define GW_FRAMER_DELIM_MAX 8
#define GW_FRAMER_OFFSET_MAX 256 /* largest length_field_offset accepted */

enum gw_framer_type {
    GW_FRAMER_DELIMITER = 1,
    GW_FRAMER_LENGTH_FIELD = 2,
    GW_FRAMER_FIXED_LENGTH = 3,
};

struct gw_framer_config {
    enum gw_framer_type type;
    /* delimiter */
    uint8_t delimiter[GW_FRAMER_DELIM_MAX];
    size_t delimiter_len; /* 1..GW_FRAMER_DELIM_MAX */
    /* length_field */
    unsigned length_field_size;    /* 1, 2 or 4 */
    size_t length_field_offset;    /* 0..GW_FRAMER_OFFSET_MAX */
    int32_t length_adjustment;     /* -(largest field value)..GW_FRAME_MAX */
    size_t initial_bytes_to_strip; /* 0..offset + size */
    /* fixed_length */
    size_t fixed_length; /* 1..GW_FRAME_MAX */
};

/*
 * Fills cfg with the defaults for type: delimiter "\n"; length field of 4 bytes at offset 0,
 * adjustment 0, strip 0 (the reference's defaults); fixed_length 0 (must be set).
 */
void gw_framer_config_init(struct gw_framer_config *cfg, enum gw_framer_type type);

/*
 * Type from its config name "delimiter" | "length_field" | "fixed_length" (any case).
 * Returns 0 and sets *out, or GW_E_CONFIG.
 */
int gw_framer_type_from_name(const char *name, enum gw_framer_type *out);

/*
 * Sets cfg's delimiter from its config text, decoding the escapes \r \n \t \\ and \xHH
 * (e.g. "\\r\\n" as written in JSON). Returns 0, or GW_E_CONFIG with *reason (static text)
 * when the text is empty, longer than GW_FRAMER_DELIM_MAX bytes or has a bad escape.
 */
int gw_framer_config_set_delimiter(struct gw_framer_config *cfg, const char *text,
                                   const char **reason);

/*
 * Validates every field used by cfg->type. Returns 0, or GW_E_CONFIG with *reason set to a
 * static sentence naming the field (reason may be NULL); -EINVAL when cfg is NULL.
 */
int gw_framer_config_check(const struct gw_framer_config *cfg, const char **reason);

struct gw_framer;

/*
 * Creates a framer for a checked config (copied; cfg is borrowed). *out is owned by the
 * caller and freed with gw_framer_free. Returns 0, GW_E_CONFIG or -ENOMEM.
 */
int gw_framer_new(const struct gw_framer_config *cfg, struct gw_framer **out);
void gw_framer_free(struct gw_framer *fr); /* NULL is fine */

/*
 * Called once per complete frame. frame is borrowed and valid only during the call (it may
 * point into the caller's input or the framer's buffer). Return 0 to go on; any other value
 * stops gw_framer_feed, which returns it, and leaves the framer failed. The callback must
 * not feed or free the framer it is called from.
 */
typedef int (*gw_framer_frame_fn)(void *ctx, const uint8_t *frame, size_t len);

/*
 * Consumes data[0..len) (borrowed) and calls on_frame for every frame it completes, in
 * order; any split of a stream across calls yields the same frames. Returns 0, the first
 * non-zero on_frame result, GW_E_FRAME_TOO_LARGE, GW_E_FRAME_BAD_LENGTH (length field +
 * adjustment < 0), or -ENOMEM; once failed it returns that error without reading data.
 */
int gw_framer_feed(struct gw_framer *fr, const void *data, size_t len, gw_framer_frame_fn on_frame,
                   void *ctx);

/* Bytes held for an incomplete frame (0 right after a frame boundary). */
size_t gw_framer_buffered(const struct gw_framer *fr);

/* True when the stream ends at a frame boundary (nothing partial is held). */
bool gw_framer_idle(const struct gw_framer *fr);

/*
 * Why the framer failed, e.g. "frame of 70000 bytes exceeds the 65536-byte limit"; "" when
 * it has not failed. The text is owned by the framer, valid until the next feed or free.
 */
const char *gw_framer_error_reason(const struct gw_framer *fr);

/*
 * Wraps an outbound payload for the wire: payload + delimiter; offset zero bytes + length
 * field (payload length - adjustment) + payload; or the payload itself when its length is
 * exactly fixed_length. The decoder of a length_field stream emits that payload back only
 * when strip == offset + size; otherwise it emits the header bytes too.
 * *out is a new malloc'd buffer of *out_len bytes owned by the caller (free()).
 * Returns 0, GW_E_CONFIG, GW_E_FRAME_TOO_LARGE (payload > GW_FRAME_MAX), -EMSGSIZE (the
 * length does not fit the field, or a payload whose length is not fixed_length), -EINVAL
 * (a payload the receiver would cut elsewhere: it contains the delimiter, or its tail and
 * the delimiter form an earlier delimiter; or a negative length field value) or -ENOMEM.
 * Any thread.
 */
int gw_framer_encode(const struct gw_framer_config *cfg, const void *payload, size_t len,
                     uint8_t **out, size_t *out_len);

#endif
