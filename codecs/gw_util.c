/*
 * DESIGN: shared pure helpers (strict JSON, UTF-8, hex, CSPRNG). Any thread; no state.
 */
#include "gw_util.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/random.h>

#include "gw_error.h"

bool gw_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

/* Walks the tree: depth limit and UTF-8 of every key and string value. */
static int gw_json_check(const cJSON *item, int depth)
{
    if (depth > GW_JSON_MAX_DEPTH)
        return GW_E_TOO_DEEP;
    for (; item; item = item->next) {
        if (item->string && !gw_utf8_valid(item->string, strlen(item->string)))
            return GW_E_BAD_UTF8;
        if (cJSON_IsString(item) && !gw_utf8_valid(item->valuestring, strlen(item->valuestring)))
            return GW_E_BAD_UTF8;
        if (item->child) {
            int rc = gw_json_check(item->child, depth + 1);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int gw_json_parse_strict(const char *buf, size_t len, cJSON **out)
{
    const char *end = NULL;
    cJSON *root;
    int rc;

    *out = NULL;
    if (!buf || len == 0)
        return GW_E_BAD_JSON;
    /* cJSON stops at a NUL; an embedded NUL would hide trailing bytes. */
    if (memchr(buf, '\0', len))
        return GW_E_BAD_JSON;
    /* Cheap pre-check so a deeply nested bomb never reaches cJSON's recursion. */
    {
        int depth = 0;
        bool in_str = false, esc = false;
        for (size_t i = 0; i < len; i++) {
            char c = buf[i];
            if (in_str) {
                if (esc)
                    esc = false;
                else if (c == '\\')
                    esc = true;
                else if (c == '"')
                    in_str = false;
            } else if (c == '"') {
                in_str = true;
            } else if (c == '{' || c == '[') {
                if (++depth > GW_JSON_MAX_DEPTH + 1)
                    return GW_E_TOO_DEEP;
            } else if (c == '}' || c == ']') {
                depth--;
            }
        }
    }
    root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root)
        return GW_E_BAD_JSON;
    while (end && (size_t)(end - buf) < len &&
           (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (!end || (size_t)(end - buf) != len) {
        cJSON_Delete(root);
        return GW_E_BAD_JSON;
    }
    rc = gw_json_check(root, 0);
    if (rc) {
        cJSON_Delete(root);
        return rc;
    }
    *out = root;
    return 0;
}

void gw_hex_encode(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xF];
    }
    out[2 * len] = '\0';
}

static int gw_hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int gw_hex_decode(const char *in, size_t in_len, uint8_t *out, size_t out_len)
{
    if (in_len != 2 * out_len)
        return -EINVAL;
    for (size_t i = 0; i < out_len; i++) {
        int hi = gw_hex_nibble(in[2 * i]), lo = gw_hex_nibble(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int gw_random_bytes(void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int gw_random_hex(char *out, size_t nbytes)
{
    uint8_t buf[64];
    int rc;

    if (nbytes > sizeof(buf))
        return -EINVAL;
    rc = gw_random_bytes(buf, nbytes);
    if (rc)
        return rc;
    gw_hex_encode(buf, nbytes, out);
    return 0;
}

int gw_json_int(const cJSON *item, int64_t min, int64_t max, int64_t *out)
{
    double v;

    if (!cJSON_IsNumber(item))
        return GW_E_BAD_FIELD;
    v = item->valuedouble;
    /* doubles hold every integer up to 2^53 exactly; beyond that refuse rather than round */
    if (!isfinite(v) || v != floor(v) || v < -9007199254740992.0 || v > 9007199254740992.0)
        return GW_E_BAD_FIELD;
    if (v < (double)min || v > (double)max)
        return GW_E_BAD_FIELD;
    *out = (int64_t)v;
    return 0;
}
