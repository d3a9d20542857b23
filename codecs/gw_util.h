#ifndef GW_UTIL_H
#define GW_UTIL_H
/*
 * Small helpers every module shares: strict JSON parsing (the cJSON traps of this machine
 * handled once), UTF-8 validation, hex, random bytes. Pure functions, any thread.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Deepest JSON nesting accepted from the outside (cJSON's own limit is 1000). */
#define GW_JSON_MAX_DEPTH 32

/*
 * Parses exactly one JSON value from buf[0..len): trailing bytes other than JSON whitespace,
 * embedded NULs, invalid UTF-8 in strings or keys, and nesting deeper than GW_JSON_MAX_DEPTH
 * are refused. *out is a new tree the caller frees with cJSON_Delete.
 * Returns 0, GW_E_BAD_JSON, GW_E_BAD_UTF8, GW_E_TOO_DEEP or -ENOMEM.
 * (cJSON_Parse alone accepts trailing garbage; duplicate keys keep the first occurrence.)
 */
int gw_json_parse_strict(const char *buf, size_t len, cJSON **out);

/* true if s[0..len) is well-formed UTF-8 (no overlongs, surrogates, or > U+10FFFF). */
bool gw_utf8_valid(const char *s, size_t len);

/* Writes 2*len lowercase hex chars and a NUL to out (size >= 2*len+1). */
void gw_hex_encode(const uint8_t *in, size_t len, char *out);
/* Decodes exactly 2*out_len hex chars (either case). -EINVAL on a bad char or length. */
int gw_hex_decode(const char *in, size_t in_len, uint8_t *out, size_t out_len);

/* Fills buf from the kernel's CSPRNG (getrandom). 0 or -errno. */
int gw_random_bytes(void *buf, size_t len);
/* nbytes random bytes as 2*nbytes lowercase hex + NUL into out (size >= 2*nbytes+1). */
int gw_random_hex(char *out, size_t nbytes);

/*
 * Reads an integer JSON number into *out, refusing non-numbers, fractions, and values
 * outside [min, max] (cJSON numbers are doubles: ids travel as strings, ints are checked).
 * Returns 0, GW_E_BAD_FIELD.
 */
int gw_json_int(const cJSON *item, int64_t min, int64_t max, int64_t *out);

#endif
