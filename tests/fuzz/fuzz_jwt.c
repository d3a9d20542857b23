/*
 * DESIGN: fuzzes JWT verification with arbitrary bytes (read by length, never past it), and
 * the create/verify round trip for identities cut from the input: a created token verifies
 * to the same claims until exp, and any single-byte change to it fails verification.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_auth.h"
#include "gw_error.h"
#include "gw_jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const uint8_t secret[] = "iotgw-test-secret-0123456789abcdef";
#define SECRET_ARGS secret, sizeof(secret) - 1

static void check_arbitrary(const uint8_t *data, size_t size)
{
    struct gw_jwt_claims claims;
    int rc = gw_jwt_verify(SECRET_ARGS, (const char *)data, size, 1767225599, &claims);

    FUZZ_CHECK(rc == 0 || rc == GW_E_TOKEN_MALFORMED || rc == GW_E_TOKEN_FORGED ||
               rc == GW_E_TOKEN_EXPIRED || rc == -ENOMEM);
    if (rc == 0 || rc == GW_E_TOKEN_EXPIRED)
        FUZZ_CHECK(gw_auth_identity_check(claims.product_key, claims.device_name, NULL) == 0);
    else
        FUZZ_CHECK(claims.product_key[0] == '\0' && claims.device_name[0] == '\0');
}

static void check_roundtrip(const uint8_t *data, size_t size)
{
    char pk[48] = "", dn[80] = "", *token = NULL;
    const uint8_t *nl = memchr(data, '\n', size);
    struct gw_jwt_claims claims;
    int64_t exp = 1 + (int64_t)(size % 100000) * 1000003;
    size_t pk_len, dn_len, tlen, k;
    int rc;

    if (!nl)
        return;
    pk_len = (size_t)(nl - data);
    dn_len = size - pk_len - 1;
    pk_len = pk_len < sizeof(pk) - 1 ? pk_len : sizeof(pk) - 1;
    dn_len = dn_len < sizeof(dn) - 1 ? dn_len : sizeof(dn) - 1;
    memcpy(pk, data, pk_len);
    memcpy(dn, nl + 1, dn_len);
    pk[strnlen(pk, pk_len)] = '\0';
    dn[strnlen(dn, dn_len)] = '\0';
    rc = gw_jwt_create(SECRET_ARGS, pk, dn, exp, &token);
    if (gw_auth_identity_check(pk, dn, NULL) != 0) {
        FUZZ_CHECK(rc == GW_E_BAD_FIELD && token == NULL);
        return;
    }
    if (rc == -ENOMEM)
        return;
    FUZZ_CHECK(rc == 0);
    tlen = strlen(token);
    FUZZ_CHECK(gw_jwt_verify(SECRET_ARGS, token, tlen, exp - 1, &claims) == 0);
    FUZZ_CHECK(strcmp(claims.product_key, pk) == 0 && strcmp(claims.device_name, dn) == 0);
    FUZZ_CHECK(claims.exp == exp);
    FUZZ_CHECK(gw_jwt_verify(SECRET_ARGS, token, tlen, exp, &claims) == GW_E_TOKEN_EXPIRED);
    /* Any change to the text breaks it: the signature covers the exact characters. */
    k = (size_t)data[size - 1] * 7919 % tlen;
    token[k] = (char)(token[k] ^ (1 + data[0] % 127));
    rc = gw_jwt_verify(SECRET_ARGS, token, tlen, exp - 1, &claims);
    FUZZ_CHECK(rc == GW_E_TOKEN_MALFORMED || rc == GW_E_TOKEN_FORGED);
    free(token);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_arbitrary(data, size);
    if (size > 0)
        check_roundtrip(data, size);
    return 0;
}
