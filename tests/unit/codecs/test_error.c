/*
 * DESIGN: every GW_E_* code declared in codecs/gw_error.h has a row in the table of
 * gw_error.c. The header text is parsed (not a list copied here), so a code added to the
 * header without its row fails this test.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw_error.h"

#define HEADER GW_TEST_DATA_DIR "/../codecs/gw_error.h"

/* Reads "GW_E_NAME = -10001," lines between GW_E__BASE and GW_E__END; returns how many. */
static int for_each_code(void (*fn)(const char *name, long value))
{
    FILE *f = fopen(HEADER, "r");
    char line[512];
    int count = 0, inside = 0;

    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        char name[128];
        long value;

        if (sscanf(line, " %127[A-Z0-9_] = %ld", name, &value) != 2 ||
            strncmp(name, "GW_E_", 5) != 0)
            continue;
        if (strcmp(name, "GW_E__BASE") == 0) {
            inside = 1;
            continue;
        }
        if (strcmp(name, "GW_E__END") == 0)
            break;
        if (inside) {
            fn(name, value);
            count++;
        }
    }
    fclose(f);
    return count;
}

static void check_row(const char *name, long value)
{
    int err = (int)value;

    if (strcmp(gw_error_name(err), name) != 0)
        fail_msg("%s (%ld) has no row in gw_error.c (name gives %s)", name, value,
                 gw_error_name(err));
    assert_true(value < GW_E__BASE && value > GW_E__END);
    assert_string_not_equal(gw_strerror(err), "unknown error");
    assert_true(strlen(gw_strerror(err)) > 0);
    assert_true(gw_error_api_code(err) >= 400);
}

static void test_every_code_has_a_row(void **state)
{
    (void)state;
    /* the header had 46 codes when this test was written; parsing must find them all */
    assert_true(for_each_code(check_row) >= 46);
}

static void test_api_codes(void **state)
{
    (void)state;
    assert_int_equal(gw_error_api_code(0), 0);
    assert_int_equal(gw_error_api_code(GW_E_BAD_JSON), 400);
    assert_int_equal(gw_error_api_code(GW_E_TOKEN_EXPIRED), 401);
    assert_int_equal(gw_error_api_code(GW_E_NOT_FOUND), 404);
    assert_int_equal(gw_error_api_code(GW_E_TASK_DEVICE_UPGRADING), 1050008105LL);
    assert_int_equal(gw_error_api_code(-EINVAL), 400);
    assert_int_equal(gw_error_api_code(-ENOMEM), 500);
    assert_string_equal(gw_error_name(0), "OK");
    assert_string_equal(gw_error_name(-EINVAL), "EINVAL");
    assert_string_equal(gw_error_name(-10998), "UNKNOWN");
    assert_string_equal(gw_strerror(-10998), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_a_row),
        cmocka_unit_test(test_api_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
