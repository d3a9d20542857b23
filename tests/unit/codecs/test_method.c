/*
 * DESIGN: checks the method table of gw_method.c against the table of DESIGN §3 (copied
 * below by hand, so a change on either side fails here) and the lookups on bad input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gw_error.h"
#include "gw_method.h"

/* DESIGN §3: method, direction, reply policy, params shape. */
static const struct {
    const char *name;
    enum gw_method_dir dir;
    enum gw_method_reply reply;
    unsigned params;
} design[] = {
    { "thing.state.update", GW_METHOD_DIR_UP, GW_METHOD_REPLY_NONE, GW_METHOD_PARAMS_OBJECT },
    { "thing.property.post", GW_METHOD_DIR_UP, GW_METHOD_REPLY_YES, GW_METHOD_PARAMS_OBJECT },
    { "thing.property.set", GW_METHOD_DIR_DOWN, GW_METHOD_REPLY_MAY, GW_METHOD_PARAMS_OBJECT },
    { "thing.event.post", GW_METHOD_DIR_UP, GW_METHOD_REPLY_YES, GW_METHOD_PARAMS_OBJECT },
    { "thing.event.property.pack.post", GW_METHOD_DIR_UP, GW_METHOD_REPLY_YES,
      GW_METHOD_PARAMS_OBJECT },
    { "thing.service.invoke", GW_METHOD_DIR_DOWN, GW_METHOD_REPLY_YES, GW_METHOD_PARAMS_OBJECT },
    { "thing.config.push", GW_METHOD_DIR_DOWN, GW_METHOD_REPLY_NONE, GW_METHOD_PARAMS_OBJECT },
    { "thing.ota.upgrade", GW_METHOD_DIR_DOWN, GW_METHOD_REPLY_MAY, GW_METHOD_PARAMS_OBJECT },
    { "thing.ota.progress", GW_METHOD_DIR_UP, GW_METHOD_REPLY_ON_ERROR, GW_METHOD_PARAMS_OBJECT },
    { "thing.ota.cancel", GW_METHOD_DIR_DOWN, GW_METHOD_REPLY_NONE, GW_METHOD_PARAMS_OBJECT },
    { "thing.topo.add", GW_METHOD_DIR_UP, GW_METHOD_REPLY_YES, GW_METHOD_PARAMS_OBJECT },
    { "thing.topo.delete", GW_METHOD_DIR_UP, GW_METHOD_REPLY_YES, GW_METHOD_PARAMS_OBJECT },
    { "thing.topo.get", GW_METHOD_DIR_UP, GW_METHOD_REPLY_YES, GW_METHOD_PARAMS_OBJECT },
    { "thing.topo.change", GW_METHOD_DIR_DOWN, GW_METHOD_REPLY_NONE, GW_METHOD_PARAMS_OBJECT },
    { "thing.auth.register", GW_METHOD_DIR_UP, GW_METHOD_REPLY_YES, GW_METHOD_PARAMS_OBJECT },
    { "thing.auth.register.sub", GW_METHOD_DIR_UP, GW_METHOD_REPLY_YES, GW_METHOD_PARAMS_ARRAY },
    { "auth", GW_METHOD_DIR_UP, GW_METHOD_REPLY_YES, GW_METHOD_PARAMS_OBJECT },
};
#define DESIGN_ROWS (sizeof(design) / sizeof(design[0]))

static void test_table_matches_design(void **state)
{
    (void)state;
    assert_int_equal(gw_method_count(), DESIGN_ROWS);
    for (size_t i = 0; i < DESIGN_ROWS; i++) {
        const struct gw_method_info *row = gw_method_find(design[i].name, strlen(design[i].name));
        char path[64];

        assert_non_null(row);
        assert_string_equal(row->name, design[i].name);
        assert_int_equal(row->dir, design[i].dir);
        assert_int_equal(row->reply, design[i].reply);
        assert_int_equal(row->params, design[i].params);
        /* topic path is the name with '.' as '/' */
        strcpy(path, design[i].name);
        for (char *p = path; *p; p++)
            if (*p == '.')
                *p = '/';
        assert_string_equal(row->topic_path, path);
        assert_ptr_equal(gw_method_find_path(path, strlen(path)), row);
    }
}

static void test_enum_and_index_agree(void **state)
{
    (void)state;
    assert_int_equal(gw_method_count(), GW_METHOD__COUNT - 1);
    for (size_t i = 0; i < gw_method_count(); i++) {
        const struct gw_method_info *row = gw_method_at(i);
        enum gw_method m;

        assert_non_null(row);
        assert_ptr_equal(gw_method_get(row->method), row);
        assert_string_equal(gw_method_name(row->method), row->name);
        assert_int_equal(gw_method_parse(row->name, strlen(row->name), &m), 0);
        assert_int_equal(m, row->method);
        /* no two rows share a name */
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(gw_method_at(j)->name, row->name);
    }
    assert_null(gw_method_at(gw_method_count()));
}

static void test_unknown_methods(void **state)
{
    static const char *bad[] = { "", "thing", "thing.property", "thing.property.post_reply",
                                 "Thing.property.post", "thing.property.post ", " auth",
                                 "thing.property.postx", "thing/property/post" };
    enum gw_method m = GW_METHOD_AUTH;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(gw_method_find(bad[i], strlen(bad[i])));
        assert_int_equal(gw_method_parse(bad[i], strlen(bad[i]), &m), GW_E_UNKNOWN_METHOD);
        assert_int_equal(m, GW_METHOD_UNKNOWN);
    }
    assert_null(gw_method_find(NULL, 4));
    assert_null(gw_method_get(GW_METHOD_UNKNOWN));
    assert_null(gw_method_get(GW_METHOD__COUNT));
    assert_null(gw_method_get((enum gw_method)-3));
    assert_string_equal(gw_method_name((enum gw_method)999), "unknown");
}

static void test_length_bounded_lookup(void **state)
{
    /* not NUL-terminated: the lookup must use the length, not read to a NUL */
    const char buf[] = "thing.ota.progressXXXX";
    const char nul[] = "auth\0junk";

    (void)state;
    assert_int_equal(gw_method_find(buf, 18)->method, GW_METHOD_OTA_PROGRESS);
    assert_null(gw_method_find(buf, 19));
    assert_null(gw_method_find(buf, 17));
    assert_int_equal(gw_method_find(nul, 4)->method, GW_METHOD_AUTH);
    assert_null(gw_method_find(nul, 9));
}

static void test_upstream_rule(void **state)
{
    (void)state;
    /* request of an up method, reply to a down method: upstream */
    assert_true(gw_method_is_upstream(GW_METHOD_PROPERTY_POST, false));
    assert_false(gw_method_is_upstream(GW_METHOD_PROPERTY_POST, true));
    assert_true(gw_method_is_upstream(GW_METHOD_SERVICE_INVOKE, true));
    assert_false(gw_method_is_upstream(GW_METHOD_OTA_UPGRADE, false));
    assert_false(gw_method_is_upstream(GW_METHOD_UNKNOWN, false));
    assert_false(gw_method_is_upstream(GW_METHOD_UNKNOWN, true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_matches_design),
        cmocka_unit_test(test_enum_and_index_agree),
        cmocka_unit_test(test_unknown_methods),
        cmocka_unit_test(test_length_bounded_lookup),
        cmocka_unit_test(test_upstream_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
