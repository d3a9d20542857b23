/*
 * DESIGN: device credentials of DESIGN §4: identity parsing (username "dn&pk", clientId
 * "pk.dn"), password and registration-sign computation (HMAC-SHA256 by mbedTLS) and their
 * constant-time checks. Pure functions, any thread, no state.
 *
 * Invariants: a secret-derived value (expected password or sign) is compared only with
 * mbedtls_ct_memcmp and wiped from the stack before returning.
 */
#include "gw_auth.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/constant_time.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include "gw_error.h"
#include "gw_util.h"

#define GW_AUTH_HEX_LEN (GW_AUTH_HEX_SIZE - 1)

/* ---- identity --------------------------------------------------------------------------- */

/* Bytes no identity part may hold: separators of topics, MQTT wildcards, the username '&'. */
static bool gw_auth_bad_byte(unsigned char c)
{
    return c < 0x20 || c == 0x7F || c == '/' || c == '+' || c == '#' || c == '&';
}

static const char *gw_auth_part_check(const char *s, size_t len, size_t max, bool is_pk)
{
    if (len == 0)
        return is_pk ? "productKey is empty" : "deviceName is empty";
    if (len > max)
        return is_pk ? "productKey longer than 32 bytes" : "deviceName longer than 64 bytes";
    if (!gw_utf8_valid(s, len))
        return is_pk ? "productKey is not valid UTF-8" : "deviceName is not valid UTF-8";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (gw_auth_bad_byte(c) || (is_pk && c == '.'))
            return is_pk ? "productKey contains a control character or one of / + # & ."
                         : "deviceName contains a control character or one of / + # &";
    }
    return NULL;
}

int gw_auth_identity_check(const char *pk, const char *dn, const char **reason)
{
    const char *why;

    if (!pk || !dn) {
        why = "productKey and deviceName are required";
        goto err_reason;
    }
    why = gw_auth_part_check(pk, strlen(pk), GW_AUTH_PK_MAX, true);
    if (!why)
        why = gw_auth_part_check(dn, strlen(dn), GW_AUTH_DN_MAX, false);
    if (!why)
        return 0;
err_reason:
    if (reason)
        *reason = why;
    return GW_E_BAD_FIELD;
}

/* Copies both parts (already split) into out after checking them. */
static int gw_auth_fill(const char *pk, size_t pk_len, const char *dn, size_t dn_len,
                        struct gw_auth_identity *out, const char **reason)
{
    const char *why = gw_auth_part_check(pk, pk_len, GW_AUTH_PK_MAX, true);

    if (!why)
        why = gw_auth_part_check(dn, dn_len, GW_AUTH_DN_MAX, false);
    if (why) {
        if (reason)
            *reason = why;
        return GW_E_AUTH_FAILED;
    }
    memcpy(out->product_key, pk, pk_len);
    out->product_key[pk_len] = '\0';
    memcpy(out->device_name, dn, dn_len);
    out->device_name[dn_len] = '\0';
    return 0;
}

int gw_auth_parse_username(const char *username, struct gw_auth_identity *out, const char **reason)
{
    const char *amp;

    memset(out, 0, sizeof(*out));
    amp = username ? strchr(username, '&') : NULL;
    if (!amp) {
        if (reason)
            *reason = "username is not of the form deviceName&productKey";
        return GW_E_AUTH_FAILED;
    }
    /* A second '&' lands in the productKey and is refused there (exactly two parts). */
    return gw_auth_fill(amp + 1, strlen(amp + 1), username, (size_t)(amp - username), out, reason);
}

int gw_auth_parse_client_id(const char *client_id, struct gw_auth_identity *out,
                            const char **reason)
{
    const char *dot;

    memset(out, 0, sizeof(*out));
    dot = client_id ? strchr(client_id, '.') : NULL;
    if (!dot) {
        if (reason)
            *reason = "clientId is not of the form productKey.deviceName";
        return GW_E_AUTH_FAILED;
    }
    return gw_auth_fill(client_id, (size_t)(dot - client_id), dot + 1, strlen(dot + 1), out,
                        reason);
}

static int gw_auth_join(const char *first, char sep, const char *second, const char *pk,
                        const char *dn, char *out, size_t cap)
{
    int n;

    if (!out || cap == 0)
        return -ENOSPC;
    out[0] = '\0';
    if (gw_auth_identity_check(pk, dn, NULL))
        return GW_E_BAD_FIELD;
    n = snprintf(out, cap, "%s%c%s", first, sep, second);
    if (n < 0 || (size_t)n >= cap) {
        out[0] = '\0';
        return -ENOSPC;
    }
    return 0;
}

int gw_auth_client_id(const char *pk, const char *dn, char *out, size_t cap)
{
    return gw_auth_join(pk, '.', dn, pk, dn, out, cap);
}

int gw_auth_username(const char *pk, const char *dn, char *out, size_t cap)
{
    return gw_auth_join(dn, '&', pk, pk, dn, out, cap);
}

/* ---- HMAC ------------------------------------------------------------------------------- */

/* HMAC-SHA256(key, concatenation of the NULL-terminated list parts) as lowercase hex. */
static int gw_auth_hmac_hex(const char *key, const char *const *parts, char *out_hex)
{
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    unsigned char mac[32];
    mbedtls_md_context_t md;
    int rc = -EINVAL;

    mbedtls_md_init(&md);
    if (!info || mbedtls_md_setup(&md, info, 1) != 0)
        goto err_free;
    if (mbedtls_md_hmac_starts(&md, (const unsigned char *)key, strlen(key)) != 0)
        goto err_free;
    for (; *parts; parts++)
        if (mbedtls_md_hmac_update(&md, (const unsigned char *)*parts, strlen(*parts)) != 0)
            goto err_free;
    if (mbedtls_md_hmac_finish(&md, mac) != 0)
        goto err_free;
    gw_hex_encode(mac, sizeof(mac), out_hex);
    rc = 0;
err_free:
    mbedtls_md_free(&md);
    mbedtls_platform_zeroize(mac, sizeof(mac));
    return rc;
}

int gw_auth_password(const char *pk, const char *dn, const char *secret, char *out_hex)
{
    if (!pk || !dn || !secret || !out_hex)
        return -EINVAL;
    const char *parts[] = {"clientId",     pk,     ".",          dn, "deviceName", dn,
                           "deviceSecret", secret, "productKey", pk, NULL};
    return gw_auth_hmac_hex(secret, parts, out_hex);
}

int gw_auth_register_sign(const char *pk, const char *dn, const char *product_secret, char *out_hex)
{
    if (!pk || !dn || !product_secret || !out_hex)
        return -EINVAL;
    const char *parts[] = {"deviceName", dn, "productKey", pk, NULL};
    return gw_auth_hmac_hex(product_secret, parts, out_hex);
}

/* Compares a received hex MAC with the expected one without a data-dependent early exit. */
static int gw_auth_compare(const char *expected, const char *received)
{
    /* The length is public (always 64); only the content must not leak through timing. */
    if (strnlen(received, GW_AUTH_HEX_LEN + 1) != GW_AUTH_HEX_LEN)
        return GW_E_AUTH_FAILED;
    return mbedtls_ct_memcmp(expected, received, GW_AUTH_HEX_LEN) == 0 ? 0 : GW_E_AUTH_FAILED;
}

int gw_auth_check(const char *pk, const char *dn, const char *secret, const char *password)
{
    char expected[GW_AUTH_HEX_SIZE];
    int rc;

    if (!password)
        return -EINVAL;
    rc = gw_auth_password(pk, dn, secret, expected);
    if (rc == 0)
        rc = gw_auth_compare(expected, password);
    mbedtls_platform_zeroize(expected, sizeof(expected));
    return rc;
}

int gw_auth_register_check(const char *pk, const char *dn, const char *product_secret,
                           const char *sign)
{
    char expected[GW_AUTH_HEX_SIZE];
    int rc;

    if (!sign)
        return -EINVAL;
    rc = gw_auth_register_sign(pk, dn, product_secret, expected);
    if (rc == 0)
        rc = gw_auth_compare(expected, sign);
    mbedtls_platform_zeroize(expected, sizeof(expected));
    return rc;
}
