/*
 * DESIGN: fuzzes username ("dn&pk") and clientId ("pk.dn") parsing with arbitrary bytes.
 * A parsed identity satisfies the identity rules, rebuilds the exact input through the
 * canonical builders, and its password checks; a refused input has a reason and leaves the
 * output empty.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_auth.h"
#include "gw_error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef int (*parse_fn)(const char *, struct gw_auth_identity *, const char **);
typedef int (*build_fn)(const char *, const char *, char *, size_t);

static void check_one(const char *s, parse_fn parse, build_fn build)
{
    struct gw_auth_identity id;
    const char *reason = NULL;
    char rebuilt[GW_AUTH_ID_SIZE], hex[GW_AUTH_HEX_SIZE];
    int rc = parse(s, &id, &reason);

    if (rc != 0) {
        FUZZ_CHECK(rc == GW_E_AUTH_FAILED && reason != NULL);
        FUZZ_CHECK(id.product_key[0] == '\0' && id.device_name[0] == '\0');
        return;
    }
    FUZZ_CHECK(gw_auth_identity_check(id.product_key, id.device_name, NULL) == 0);
    FUZZ_CHECK(build(id.product_key, id.device_name, rebuilt, sizeof(rebuilt)) == 0);
    FUZZ_CHECK(strcmp(rebuilt, s) == 0);
    FUZZ_CHECK(gw_auth_password(id.product_key, id.device_name, s, hex) == 0);
    FUZZ_CHECK(strlen(hex) == 64);
    FUZZ_CHECK(gw_auth_check(id.product_key, id.device_name, s, hex) == 0);
    hex[0] = hex[0] == '0' ? '1' : '0';
    FUZZ_CHECK(gw_auth_check(id.product_key, id.device_name, s, hex) == GW_E_AUTH_FAILED);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    check_one(s, gw_auth_parse_username, gw_auth_username);
    check_one(s, gw_auth_parse_client_id, gw_auth_client_id);
    /* Password of arbitrary text: never fails, always 64 lowercase hex. */
    {
        char hex[GW_AUTH_HEX_SIZE];
        FUZZ_CHECK(gw_auth_password(s, s, s, hex) == 0);
        for (int i = 0; i < 64; i++)
            FUZZ_CHECK((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'));
    }
    free(s);
    return 0;
}
