/*
 * DESIGN: unit tests of codecs/gw_jwt.c. The reference token below and every case of
 * tests/vectors/auth/jwt.json were computed once with Python's hmac/base64
 * (tests/vectors/auth/gen_vectors.py), independently of the C code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gw_error.h"
#include "gw_jwt.h"

#define SECRET "iotgw-test-secret-0123456789abcdef"
#define SECRET_ARGS (const uint8_t *)SECRET, strlen(SECRET)
#define EXP INT64_C(1767225600) /* 2026-01-01T00:00:00Z */
/* python3: HS256, {"alg":"HS256","typ":"JWT"}, {"productKey":"pk001","deviceName":"dev01",
 * "exp":1767225600}, key SECRET. */
#define TOKEN                                                                                      \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."                                                        \
    "eyJwcm9kdWN0S2V5IjoicGswMDEiLCJkZXZpY2VOYW1lIjoiZGV2MDEiLCJleHAiOjE3NjcyMjU2MDB9."            \
    "NLUcbGAj1oQZAl8duGjFXI7dwvoPyqQtw5I5bik2Meg"

static int verify(const char *token, int64_t now, struct gw_jwt_claims *claims)
{
    return gw_jwt_verify(SECRET_ARGS, token, strlen(token), now, claims);
}

static void test_create_matches_independent_token(void **state)
{
    char *token = NULL;

    (void)state;
    assert_int_equal(gw_jwt_create(SECRET_ARGS, "pk001", "dev01", EXP, &token), 0);
    assert_string_equal(token, TOKEN);
    free(token);
}

static void test_verify_fixed_token(void **state)
{
    struct gw_jwt_claims claims;

    (void)state;
    assert_int_equal(verify(TOKEN, EXP - 1, &claims), 0);
    assert_string_equal(claims.product_key, "pk001");
    assert_string_equal(claims.device_name, "dev01");
    assert_int_equal(claims.exp, EXP);
    /* Expired from exp on; the claims still name the device (for the log line). */
    assert_int_equal(verify(TOKEN, EXP, &claims), GW_E_TOKEN_EXPIRED);
    assert_string_equal(claims.device_name, "dev01");
    assert_int_equal(gw_error_api_code(GW_E_TOKEN_EXPIRED), 401);
    /* The token is read by length, not up to a NUL. */
    assert_int_equal(gw_jwt_verify(SECRET_ARGS, TOKEN "trailing", strlen(TOKEN), 0, &claims), 0);
    assert_int_equal(gw_jwt_verify(SECRET_ARGS, TOKEN, strlen(TOKEN) - 1, 0, &claims),
                     GW_E_TOKEN_FORGED);
    assert_string_equal(claims.product_key, "");
}

static void test_alg_none_rejected(void **state)
{
    /* {"alg":"none","typ":"JWT"} with the same payload, no signature / the real one. */
    static const char none_empty[] =
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
        "eyJwcm9kdWN0S2V5IjoicGswMDEiLCJkZXZpY2VOYW1lIjoiZGV2MDEiLCJleHAiOjE3NjcyMjU2MDB9.";
    static const char none_signed[] =
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
        "eyJwcm9kdWN0S2V5IjoicGswMDEiLCJkZXZpY2VOYW1lIjoiZGV2MDEiLCJleHAiOjE3NjcyMjU2MDB9."
        "NLUcbGAj1oQZAl8duGjFXI7dwvoPyqQtw5I5bik2Meg";
    struct gw_jwt_claims claims;

    (void)state;
    assert_int_equal(verify(none_empty, 0, &claims), GW_E_TOKEN_MALFORMED);
    assert_int_equal(verify(none_signed, 0, &claims), GW_E_TOKEN_MALFORMED);
    assert_string_equal(claims.product_key, "");
}

static void test_tampered_payload_is_forged(void **state)
{
    char *token = strdup(TOKEN), *payload;
    struct gw_jwt_claims claims;

    (void)state;
    assert_non_null(token);
    payload = strchr(token, '.') + 1;
    /* "ZGV2MDEi" is base64 of dev01"; make it dev02" (still valid JSON, same length). */
    payload = strstr(payload, "ZGV2MDEi");
    assert_non_null(payload);
    memcpy(payload, "ZGV2MDIi", 8);
    assert_int_equal(verify(token, 0, &claims), GW_E_TOKEN_FORGED);
    assert_string_equal(claims.device_name, "");
    free(token);
}

static void test_wrong_secret_is_forged(void **state)
{
    struct gw_jwt_claims claims;

    (void)state;
    assert_int_equal(gw_jwt_verify((const uint8_t *)"other", 5, TOKEN, strlen(TOKEN), 0, &claims),
                     GW_E_TOKEN_FORGED);
    assert_int_equal(gw_jwt_verify(NULL, 0, TOKEN, strlen(TOKEN), 0, &claims), -EINVAL);
}

static int result_code(const char *name)
{
    static const struct {
        const char *name;
        int code;
    } codes[] = {
        {"OK", 0},
        {"GW_E_TOKEN_MALFORMED", GW_E_TOKEN_MALFORMED},
        {"GW_E_TOKEN_FORGED", GW_E_TOKEN_FORGED},
        {"GW_E_TOKEN_EXPIRED", GW_E_TOKEN_EXPIRED},
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strcmp(codes[i].name, name) == 0)
            return codes[i].code;
    fail_msg("unknown result %s", name);
    return 1;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_vector_cases(void **state)
{
    char *text = read_file(GW_TEST_DATA_DIR "/vectors/auth/jwt.json");
    cJSON *doc = cJSON_Parse(text), *c;
    const cJSON *secret, *good;
    int count = 0;

    (void)state;
    assert_non_null(doc);
    secret = cJSON_GetObjectItemCaseSensitive(doc, "secret");
    assert_string_equal(secret->valuestring, SECRET);
    good = cJSON_GetObjectItemCaseSensitive(doc, "good");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(good, "token")->valuestring, TOKEN);
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(doc, "cases"))
    {
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
        const char *token = cJSON_GetObjectItemCaseSensitive(c, "token")->valuestring;
        int64_t now = (int64_t)cJSON_GetObjectItemCaseSensitive(c, "now")->valuedouble;
        int want = result_code(cJSON_GetObjectItemCaseSensitive(c, "result")->valuestring);
        struct gw_jwt_claims claims;
        int rc = verify(token, now, &claims);

        if (rc != want)
            fail_msg("case \"%s\": %s, expected %s", name, gw_error_name(rc), gw_error_name(want));
        if (rc == 0) {
            assert_string_equal(claims.product_key, "pk001");
            assert_string_equal(claims.device_name, "dev01");
            assert_int_equal(claims.exp, EXP);
        }
        count++;
    }
    assert_true(count >= 30);
    cJSON_Delete(doc);
    free(text);
}

static void test_roundtrip_and_limits(void **state)
{
    char dn[GW_AUTH_DN_MAX + 2], *token = NULL;
    struct gw_jwt_claims claims;

    (void)state;
    memset(dn, 'd', GW_AUTH_DN_MAX);
    dn[GW_AUTH_DN_MAX] = '\0';
    /* Longest identity, quotes and non-ASCII survive the JSON round trip. */
    assert_int_equal(
        gw_jwt_create(SECRET_ARGS, "pppppppppppppppppppppppppppppppp", dn, GW_JWT_EXP_MAX, &token),
        0);
    assert_int_equal(verify(token, GW_JWT_EXP_MAX - 1, &claims), 0);
    assert_string_equal(claims.device_name, dn);
    assert_int_equal(claims.exp, GW_JWT_EXP_MAX);
    free(token);
    assert_int_equal(gw_jwt_create(SECRET_ARGS, "pk", "温度\"\\-1", 100, &token), 0);
    assert_int_equal(verify(token, 99, &claims), 0);
    assert_string_equal(claims.device_name, "温度\"\\-1");
    free(token);

    dn[GW_AUTH_DN_MAX] = 'd';
    dn[GW_AUTH_DN_MAX + 1] = '\0';
    assert_int_equal(gw_jwt_create(SECRET_ARGS, "pk", dn, 100, &token), GW_E_BAD_FIELD);
    assert_null(token);
    assert_int_equal(gw_jwt_create(SECRET_ARGS, "pk", "a/b", 100, &token), GW_E_BAD_FIELD);
    assert_int_equal(gw_jwt_create(SECRET_ARGS, "pk", "d", -1, &token), GW_E_BAD_FIELD);
    assert_int_equal(gw_jwt_create(SECRET_ARGS, "pk", "d", GW_JWT_EXP_MAX + 1, &token),
                     GW_E_BAD_FIELD);
    assert_int_equal(gw_jwt_create((const uint8_t *)"", 0, "pk", "d", 1, &token), -EINVAL);
    /* Over-long input is malformed before any decoding. */
    {
        char *big = malloc(GW_JWT_MAX_LEN + 2);
        assert_non_null(big);
        memset(big, 'A', GW_JWT_MAX_LEN + 1);
        big[10] = '.';
        big[20] = '.';
        big[GW_JWT_MAX_LEN + 1] = '\0';
        assert_int_equal(verify(big, 0, &claims), GW_E_TOKEN_MALFORMED);
        free(big);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_matches_independent_token),
        cmocka_unit_test(test_verify_fixed_token),
        cmocka_unit_test(test_alg_none_rejected),
        cmocka_unit_test(test_tampered_payload_is_forged),
        cmocka_unit_test(test_wrong_secret_is_forged),
        cmocka_unit_test(test_vector_cases),
        cmocka_unit_test(test_roundtrip_and_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
