/*
 * DESIGN: HS256 JSON Web Tokens for device sessions (create and verify). base64 by mbedTLS
 * with the URL alphabet translated and padding removed/restored here; HMAC-SHA256 by
 * mbedTLS; JSON by cJSON. Pure functions, any thread, no state, no clock (passed in).
 *
 * Invariants: the signature is checked by recomputing it over the token's own
 * "header.payload" text and comparing the base64url strings with mbedtls_ct_memcmp (so a
 * signature with non-canonical trailing bits is refused too); the payload is parsed only
 * after the signature matched.
 */
#include "gw_jwt.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <mbedtls/base64.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include "gw_error.h"
#include "gw_util.h"

/* The header this gateway writes (a fixed value, not built per token). */
static const char gw_jwt_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
/* base64url length of a 32-byte HMAC-SHA256 without padding. */
#define GW_JWT_SIG_LEN 43

/* ---- base64url -------------------------------------------------------------------------- */

/* base64url of in[0..len) without padding, NUL-terminated, into out (cap bytes). */
static int gw_jwt_b64url_encode(const uint8_t *in, size_t len, char *out, size_t cap,
                                size_t *out_len)
{
    size_t n = 0;

    if (mbedtls_base64_encode((unsigned char *)out, cap, &n, in, len) != 0)
        return -ENOSPC;
    while (n > 0 && out[n - 1] == '=')
        n--;
    for (size_t i = 0; i < n; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    out[n] = '\0';
    *out_len = n;
    return 0;
}

static bool gw_jwt_b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/*
 * Decodes base64url text in[0..len) (alphabet already checked) into a new buffer *out
 * (caller frees) of *out_len bytes. GW_E_TOKEN_MALFORMED or -ENOMEM.
 */
static int gw_jwt_b64url_decode(const char *in, size_t len, uint8_t **out, size_t *out_len)
{
    size_t padded = (len + 3) / 4 * 4, n = 0;
    char *tmp = NULL;
    uint8_t *buf = NULL;
    int rc = -ENOMEM;

    *out = NULL;
    if (len % 4 == 1) /* no base64 text has this length */
        return GW_E_TOKEN_MALFORMED;
    tmp = malloc(padded);
    buf = malloc(padded / 4 * 3 + 1);
    if (!tmp || !buf)
        goto err_free;
    for (size_t i = 0; i < len; i++)
        tmp[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    memset(tmp + len, '=', padded - len);
    rc = GW_E_TOKEN_MALFORMED;
    if (mbedtls_base64_decode(buf, padded / 4 * 3 + 1, &n, (const unsigned char *)tmp, padded) != 0)
        goto err_free;
    free(tmp);
    *out = buf;
    *out_len = n;
    return 0;

err_free:
    free(tmp);
    free(buf);
    return rc;
}

/* ---- signature -------------------------------------------------------------------------- */

/* base64url(HMAC-SHA256(secret, input)) into sig (GW_JWT_SIG_LEN + 1 bytes). */
static int gw_jwt_sign(const uint8_t *secret, size_t secret_len, const char *input, size_t len,
                       char *sig)
{
    unsigned char mac[32];
    size_t n = 0;
    int rc;

    rc = mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), secret, secret_len,
                         (const unsigned char *)input, len, mac);
    if (rc == 0)
        rc = gw_jwt_b64url_encode(mac, sizeof(mac), sig, GW_JWT_SIG_LEN + 2, &n);
    else
        rc = -EINVAL;
    mbedtls_platform_zeroize(mac, sizeof(mac));
    return rc;
}

/* ---- create ----------------------------------------------------------------------------- */

static int gw_jwt_payload_json(const char *pk, const char *dn, int64_t exp, char **out)
{
    cJSON *obj = cJSON_CreateObject();
    int rc = -ENOMEM;

    *out = NULL;
    if (!obj || !cJSON_AddStringToObject(obj, "productKey", pk) ||
        !cJSON_AddStringToObject(obj, "deviceName", dn) ||
        !cJSON_AddNumberToObject(obj, "exp", (double)exp))
        goto err_free;
    *out = cJSON_PrintUnformatted(obj);
    if (*out)
        rc = 0;
err_free:
    cJSON_Delete(obj);
    return rc;
}

int gw_jwt_create(const uint8_t *secret, size_t secret_len, const char *pk, const char *dn,
                  int64_t exp_epoch_s, char **out)
{
    char *payload = NULL, *token = NULL;
    size_t plen, cap, n, off = 0;
    int rc;

    *out = NULL;
    if (!secret || secret_len == 0)
        return -EINVAL;
    if (gw_auth_identity_check(pk, dn, NULL) || exp_epoch_s < 0 || exp_epoch_s > GW_JWT_EXP_MAX)
        return GW_E_BAD_FIELD;
    rc = gw_jwt_payload_json(pk, dn, exp_epoch_s, &payload);
    if (rc)
        return rc;
    plen = strlen(payload);
    /* header + '.' + payload + '.' + signature, each base64 part with room for its NUL. */
    cap = (sizeof(gw_jwt_header) + 2) / 3 * 4 + (plen + 2) / 3 * 4 + GW_JWT_SIG_LEN + 8;
    token = malloc(cap);
    rc = -ENOMEM;
    if (!token)
        goto err_free;
    rc = gw_jwt_b64url_encode((const uint8_t *)gw_jwt_header, sizeof(gw_jwt_header) - 1, token, cap,
                              &n);
    if (rc)
        goto err_free;
    off = n;
    token[off++] = '.';
    rc = gw_jwt_b64url_encode((const uint8_t *)payload, plen, token + off, cap - off, &n);
    if (rc)
        goto err_free;
    off += n;
    rc = gw_jwt_sign(secret, secret_len, token, off, token + off + 1);
    if (rc)
        goto err_free;
    token[off] = '.';
    *out = token;
    token = NULL;
err_free:
    free(token);
    cJSON_free(payload);
    return rc;
}

/* ---- verify ----------------------------------------------------------------------------- */

/* Splits token into three non-empty base64url parts; dot1/dot2 are the '.' offsets. */
static int gw_jwt_split(const char *token, size_t len, size_t *dot1, size_t *dot2)
{
    size_t dots = 0, pos[2] = {0, 0};

    if (!token || len == 0 || len > GW_JWT_MAX_LEN)
        return GW_E_TOKEN_MALFORMED;
    for (size_t i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (dots == 2)
                return GW_E_TOKEN_MALFORMED;
            pos[dots++] = i;
        } else if (!gw_jwt_b64url_char(token[i])) {
            return GW_E_TOKEN_MALFORMED;
        }
    }
    if (dots != 2 || pos[0] == 0 || pos[1] == pos[0] + 1 || pos[1] == len - 1)
        return GW_E_TOKEN_MALFORMED;
    *dot1 = pos[0];
    *dot2 = pos[1];
    return 0;
}

/* Decodes and parses one base64url JSON part; it must be an object. */
static int gw_jwt_part_json(const char *part, size_t len, cJSON **out)
{
    uint8_t *raw = NULL;
    size_t n = 0;
    int rc;

    *out = NULL;
    rc = gw_jwt_b64url_decode(part, len, &raw, &n);
    if (rc)
        return rc;
    rc = gw_json_parse_strict((const char *)raw, n, out);
    free(raw);
    if (rc == -ENOMEM)
        return rc;
    if (rc || !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return GW_E_TOKEN_MALFORMED;
    }
    return 0;
}

static int gw_jwt_check_header(const char *part, size_t len)
{
    cJSON *hdr = NULL;
    const cJSON *alg, *typ;
    int rc = gw_jwt_part_json(part, len, &hdr);

    if (rc)
        return rc;
    alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
    typ = cJSON_GetObjectItemCaseSensitive(hdr, "typ");
    rc = GW_E_TOKEN_MALFORMED;
    /* Only HS256: "none" or another algorithm never reaches the signature check. */
    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "HS256") != 0)
        goto err_free;
    if (typ && (!cJSON_IsString(typ) || strcasecmp(typ->valuestring, "JWT") != 0))
        goto err_free;
    /* RFC 7515 §4.1.11: extensions we do not understand must be refused. */
    if (cJSON_GetObjectItemCaseSensitive(hdr, "crit"))
        goto err_free;
    rc = 0;
err_free:
    cJSON_Delete(hdr);
    return rc;
}

static int gw_jwt_read_claims(const char *part, size_t len, struct gw_jwt_claims *claims)
{
    cJSON *body = NULL;
    const cJSON *pk, *dn;
    int64_t exp = 0;
    int rc = gw_jwt_part_json(part, len, &body);

    if (rc)
        return rc;
    pk = cJSON_GetObjectItemCaseSensitive(body, "productKey");
    dn = cJSON_GetObjectItemCaseSensitive(body, "deviceName");
    rc = GW_E_TOKEN_MALFORMED;
    if (!cJSON_IsString(pk) || !cJSON_IsString(dn) ||
        gw_auth_identity_check(pk->valuestring, dn->valuestring, NULL) != 0)
        goto err_free;
    if (gw_json_int(cJSON_GetObjectItemCaseSensitive(body, "exp"), 0, GW_JWT_EXP_MAX, &exp))
        goto err_free;
    /* Lengths were checked by gw_auth_identity_check. */
    strcpy(claims->product_key, pk->valuestring);
    strcpy(claims->device_name, dn->valuestring);
    claims->exp = exp;
    rc = 0;
err_free:
    cJSON_Delete(body);
    return rc;
}

int gw_jwt_verify(const uint8_t *secret, size_t secret_len, const char *token, size_t len,
                  int64_t now_epoch_s, struct gw_jwt_claims *claims)
{
    char sig[GW_JWT_SIG_LEN + 2];
    size_t dot1 = 0, dot2 = 0;
    int rc;

    memset(claims, 0, sizeof(*claims));
    if (!secret || secret_len == 0)
        return -EINVAL;
    rc = gw_jwt_split(token, len, &dot1, &dot2);
    if (rc)
        return rc;
    rc = gw_jwt_check_header(token, dot1);
    if (rc)
        return rc;
    rc = gw_jwt_sign(secret, secret_len, token, dot2, sig);
    if (rc)
        return rc;
    /* The signature's length is public; its content is compared in constant time. */
    if (len - dot2 - 1 != GW_JWT_SIG_LEN ||
        mbedtls_ct_memcmp(sig, token + dot2 + 1, GW_JWT_SIG_LEN) != 0)
        return GW_E_TOKEN_FORGED;
    rc = gw_jwt_read_claims(token + dot1 + 1, dot2 - dot1 - 1, claims);
    if (rc) {
        memset(claims, 0, sizeof(*claims));
        return rc;
    }
    return now_epoch_s >= claims->exp ? GW_E_TOKEN_EXPIRED : 0;
}
