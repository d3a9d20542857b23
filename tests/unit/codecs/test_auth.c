/*
 * DESIGN: unit tests of codecs/gw_auth.c: the DESIGN §4 vectors, the vectors of
 * tests/vectors/auth/device_auth.json (computed independently by gen_vectors.py with
 * Python's hmac), identity parsing and its limits, and the password checks.
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

#include "gw_auth.h"
#include "gw_error.h"

#define DESIGN_PASSWORD "4c159e5ca63a983dc0bd690c912978b53a1c1559a987462019880be66373a9f0"
#define DESIGN_SIGN "70bedc89b2d6d40c9ee3681a2fda6b10c3e8fafe21a7ed4f8cce8fe9a35005fe"
#define DESIGN_SECRET "0123456789abcdef0123456789abcdef"

static void test_design_vectors(void **state)
{
    char hex[GW_AUTH_HEX_SIZE];

    (void)state;
    assert_int_equal(gw_auth_password("pk001", "dev01", DESIGN_SECRET, hex), 0);
    assert_string_equal(hex, DESIGN_PASSWORD);
    assert_int_equal(gw_auth_register_sign("pk001", "dev01", "prodsecret", hex), 0);
    assert_string_equal(hex, DESIGN_SIGN);
    assert_int_equal(gw_auth_check("pk001", "dev01", DESIGN_SECRET, DESIGN_PASSWORD), 0);
    assert_int_equal(gw_auth_register_check("pk001", "dev01", "prodsecret", DESIGN_SIGN), 0);
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

static const char *str(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    assert_true(cJSON_IsString(it));
    return it->valuestring;
}

static void test_vector_file(void **state)
{
    char *text = read_file(GW_TEST_DATA_DIR "/vectors/auth/device_auth.json");
    cJSON *doc = cJSON_Parse(text), *v;
    int count = 0;

    (void)state;
    assert_non_null(doc);
    cJSON_ArrayForEach(v, doc)
    {
        const char *pk = str(v, "productKey"), *dn = str(v, "deviceName");
        char hex[GW_AUTH_HEX_SIZE], id[GW_AUTH_ID_SIZE];
        struct gw_auth_identity ident;

        assert_int_equal(gw_auth_password(pk, dn, str(v, "deviceSecret"), hex), 0);
        assert_string_equal(hex, str(v, "password"));
        assert_int_equal(gw_auth_register_sign(pk, dn, str(v, "productSecret"), hex), 0);
        assert_string_equal(hex, str(v, "sign"));
        assert_int_equal(gw_auth_check(pk, dn, str(v, "deviceSecret"), str(v, "password")), 0);
        assert_int_equal(gw_auth_client_id(pk, dn, id, sizeof(id)), 0);
        assert_string_equal(id, str(v, "clientId"));
        assert_int_equal(gw_auth_username(pk, dn, id, sizeof(id)), 0);
        assert_string_equal(id, str(v, "username"));
        assert_int_equal(gw_auth_parse_username(str(v, "username"), &ident, NULL), 0);
        assert_string_equal(ident.product_key, pk);
        assert_string_equal(ident.device_name, dn);
        assert_int_equal(gw_auth_parse_client_id(str(v, "clientId"), &ident, NULL), 0);
        assert_string_equal(ident.product_key, pk);
        assert_string_equal(ident.device_name, dn);
        count++;
    }
    assert_int_equal(count, 3);
    cJSON_Delete(doc);
    free(text);
}

static void test_check_rejects(void **state)
{
    char wrong[GW_AUTH_HEX_SIZE];

    (void)state;
    /* Upper case, one char off, truncated, extended, empty: all refused. */
    strcpy(wrong, DESIGN_PASSWORD);
    for (char *p = wrong; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_int_equal(gw_auth_check("pk001", "dev01", DESIGN_SECRET, wrong), GW_E_AUTH_FAILED);
    strcpy(wrong, DESIGN_PASSWORD);
    wrong[63] = wrong[63] == '0' ? '1' : '0';
    assert_int_equal(gw_auth_check("pk001", "dev01", DESIGN_SECRET, wrong), GW_E_AUTH_FAILED);
    strcpy(wrong, DESIGN_PASSWORD);
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    assert_int_equal(gw_auth_check("pk001", "dev01", DESIGN_SECRET, wrong), GW_E_AUTH_FAILED);
    assert_int_equal(
        gw_auth_check("pk001", "dev01", DESIGN_SECRET,
                      "4c159e5ca63a983dc0bd690c912978b53a1c1559a987462019880be66373a9f"),
        GW_E_AUTH_FAILED);
    assert_int_equal(gw_auth_check("pk001", "dev01", DESIGN_SECRET, DESIGN_PASSWORD "0"),
                     GW_E_AUTH_FAILED);
    assert_int_equal(gw_auth_check("pk001", "dev01", DESIGN_SECRET, ""), GW_E_AUTH_FAILED);
    /* Right password, wrong identity or secret. */
    assert_int_equal(gw_auth_check("pk001", "dev02", DESIGN_SECRET, DESIGN_PASSWORD),
                     GW_E_AUTH_FAILED);
    assert_int_equal(gw_auth_check("pk002", "dev01", DESIGN_SECRET, DESIGN_PASSWORD),
                     GW_E_AUTH_FAILED);
    assert_int_equal(
        gw_auth_check("pk001", "dev01", "0123456789abcdef0123456789abcdee", DESIGN_PASSWORD),
        GW_E_AUTH_FAILED);
    /* The password is not the registration sign and vice versa. */
    assert_int_equal(gw_auth_register_check("pk001", "dev01", "prodsecret", DESIGN_PASSWORD),
                     GW_E_AUTH_FAILED);
    assert_int_equal(gw_auth_check("pk001", "dev01", DESIGN_SECRET, NULL), -EINVAL);
    assert_int_equal(gw_auth_password(NULL, "dev01", DESIGN_SECRET, wrong), -EINVAL);
    /* What the HTTP/TCP adapters answer with. */
    assert_int_equal(gw_error_api_code(GW_E_AUTH_FAILED), 401);
}

static void expect_parse_fail(const char *username, const char *client_id, const char *word)
{
    struct gw_auth_identity ident;
    const char *reason = NULL;
    int rc = username ? gw_auth_parse_username(username, &ident, &reason)
                      : gw_auth_parse_client_id(client_id, &ident, &reason);

    if (rc != GW_E_AUTH_FAILED)
        fail_msg("\"%s\" parsed (rc %d)", username ? username : client_id, rc);
    assert_non_null(reason);
    if (!strstr(reason, word))
        fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", username ? username : client_id, reason,
                 word);
    assert_string_equal(ident.product_key, "");
    assert_string_equal(ident.device_name, "");
}

static void test_parse_username(void **state)
{
    struct gw_auth_identity ident;
    char name[128];

    (void)state;
    assert_int_equal(gw_auth_parse_username("dev01&pk001", &ident, NULL), 0);
    assert_string_equal(ident.device_name, "dev01");
    assert_string_equal(ident.product_key, "pk001");
    /* A deviceName may contain '.', '-', ':', '@' and non-ASCII UTF-8. */
    assert_int_equal(gw_auth_parse_username("a.b-c:d@e_温度&pk", &ident, NULL), 0);
    assert_string_equal(ident.device_name, "a.b-c:d@e_温度");

    expect_parse_fail("dev01pk001", NULL, "deviceName&productKey");
    expect_parse_fail("&pk001", NULL, "deviceName is empty");
    expect_parse_fail("dev01&", NULL, "productKey is empty");
    expect_parse_fail("a&b&c", NULL, "productKey contains");
    expect_parse_fail("dev/01&pk001", NULL, "deviceName contains");
    expect_parse_fail("dev+&pk001", NULL, "deviceName contains");
    expect_parse_fail("dev#&pk001", NULL, "deviceName contains");
    expect_parse_fail("dev\n&pk001", NULL, "deviceName contains");
    expect_parse_fail("dev&pk.1", NULL, "productKey contains");
    expect_parse_fail("dev\xC3\x28&pk", NULL, "UTF-8");
    expect_parse_fail("dev&\xED\xA0\x80", NULL, "UTF-8"); /* a UTF-16 surrogate */
    expect_parse_fail("", NULL, "deviceName&productKey");

    /* Length limits: 64 / 32 bytes accepted, one more refused. */
    memset(name, 'd', 64);
    strcpy(name + 64, "&");
    memset(name + 65, 'p', 32);
    name[97] = '\0';
    assert_int_equal(gw_auth_parse_username(name, &ident, NULL), 0);
    assert_int_equal(strlen(ident.device_name), 64);
    assert_int_equal(strlen(ident.product_key), 32);
    name[97] = 'p';
    name[98] = '\0';
    expect_parse_fail(name, NULL, "longer than 32");
    memset(name, 'd', 65);
    strcpy(name + 65, "&pk");
    expect_parse_fail(name, NULL, "longer than 64");
}

static void test_parse_client_id(void **state)
{
    struct gw_auth_identity ident;

    (void)state;
    assert_int_equal(gw_auth_parse_client_id("pk001.dev01", &ident, NULL), 0);
    assert_string_equal(ident.product_key, "pk001");
    assert_string_equal(ident.device_name, "dev01");
    /* Split at the first '.': the rest belongs to the deviceName. */
    assert_int_equal(gw_auth_parse_client_id("pk.dev.01", &ident, NULL), 0);
    assert_string_equal(ident.product_key, "pk");
    assert_string_equal(ident.device_name, "dev.01");

    expect_parse_fail(NULL, "pk001", "productKey.deviceName");
    expect_parse_fail(NULL, ".dev01", "productKey is empty");
    expect_parse_fail(NULL, "pk001.", "deviceName is empty");
    expect_parse_fail(NULL, "pk001.dev&01", "deviceName contains");
    expect_parse_fail(NULL, "pk/1.dev01", "productKey contains");
    expect_parse_fail(NULL, "pk001.dev#", "deviceName contains");
    expect_parse_fail(NULL, "pk001.dev\x7f", "deviceName contains");
    expect_parse_fail(NULL, "pk001.\xff", "UTF-8");
}

static void test_builders(void **state)
{
    char out[GW_AUTH_ID_SIZE];
    const char *reason = NULL;

    (void)state;
    assert_int_equal(gw_auth_client_id("pk001", "dev01", out, sizeof(out)), 0);
    assert_string_equal(out, "pk001.dev01");
    assert_int_equal(gw_auth_username("pk001", "dev01", out, sizeof(out)), 0);
    assert_string_equal(out, "dev01&pk001");
    assert_int_equal(gw_auth_client_id("pk001", "dev01", out, 11), -ENOSPC);
    assert_string_equal(out, "");
    assert_int_equal(gw_auth_client_id("pk001", "dev01", out, 12), 0);
    assert_int_equal(gw_auth_client_id("pk.1", "dev01", out, sizeof(out)), GW_E_BAD_FIELD);
    assert_int_equal(gw_auth_username("pk", "a/b", out, sizeof(out)), GW_E_BAD_FIELD);
    assert_int_equal(gw_auth_identity_check("pk", "", &reason), GW_E_BAD_FIELD);
    assert_non_null(strstr(reason, "deviceName"));
    assert_int_equal(gw_auth_identity_check(NULL, "d", &reason), GW_E_BAD_FIELD);
    assert_int_equal(gw_auth_identity_check("pk", "d", NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_design_vectors),  cmocka_unit_test(test_vector_file),
        cmocka_unit_test(test_check_rejects),   cmocka_unit_test(test_parse_username),
        cmocka_unit_test(test_parse_client_id), cmocka_unit_test(test_builders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
