/*
 * DESIGN: topic parsing and formatting (DESIGN §4): every method's topic both ways, replies,
 * the exact round trip, and every refusal (wildcards, empty segments, foreign prefixes,
 * over-long segments, unknown methods, bad UTF-8, small buffers).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gw_error.h"
#include "gw_topic.h"

static int parse(const char *t, struct gw_topic *out)
{
    return gw_topic_parse(t, strlen(t), out);
}

static void test_design_examples(void **state)
{
    struct gw_topic t;

    (void)state;
    assert_int_equal(parse("/sys/pk/dn/thing/ota/upgrade", &t), 0);
    assert_string_equal(t.product_key, "pk");
    assert_string_equal(t.device_name, "dn");
    assert_int_equal(t.method, GW_METHOD_OTA_UPGRADE);
    assert_false(t.is_reply);
    assert_int_equal(parse("/sys/pk/dn/thing/ota/progress", &t), 0);
    assert_int_equal(t.method, GW_METHOD_OTA_PROGRESS);
    assert_int_equal(parse("/sys/pk001/dev01/thing/property/set_reply", &t), 0);
    assert_int_equal(t.method, GW_METHOD_PROPERTY_SET);
    assert_true(t.is_reply);
    assert_int_equal(parse("/sys/a/b/thing/event/property/pack/post", &t), 0);
    assert_int_equal(t.method, GW_METHOD_EVENT_PROPERTY_PACK_POST);
    assert_int_equal(parse("/sys/a/b/auth", &t), 0);
    assert_int_equal(t.method, GW_METHOD_AUTH);
}

static void test_every_method_round_trips(void **state)
{
    (void)state;
    for (size_t i = 0; i < gw_method_count(); i++) {
        const struct gw_method_info *row = gw_method_at(i);
        for (int reply = 0; reply < 2; reply++) {
            char buf[GW_TOPIC_MAX], want[GW_TOPIC_MAX];
            struct gw_topic t;

            snprintf(want, sizeof(want), "/sys/pk-1/dev:01/%s%s", row->topic_path,
                     reply ? "_reply" : "");
            assert_int_equal(gw_topic_format(buf, sizeof(buf), "pk-1", "dev:01", row->method,
                                             reply),
                             0);
            assert_string_equal(buf, want);
            assert_int_equal(parse(buf, &t), 0);
            assert_int_equal(t.method, row->method);
            assert_int_equal(t.is_reply, reply);
            assert_string_equal(t.product_key, "pk-1");
            assert_string_equal(t.device_name, "dev:01");
        }
    }
}

static void test_format_msg_and_filter(void **state)
{
    struct gw_msg *req, *rep;
    char buf[GW_TOPIC_MAX];

    (void)state;
    assert_int_equal(gw_msg_new_request(GW_METHOD_SERVICE_INVOKE, "1", "pk", "dn", NULL, &req),
                     0);
    assert_int_equal(gw_msg_new_reply(req, 0, NULL, NULL, &rep), 0);
    assert_int_equal(gw_topic_format_msg(buf, sizeof(buf), req), 0);
    assert_string_equal(buf, "/sys/pk/dn/thing/service/invoke");
    assert_int_equal(gw_topic_format_msg(buf, sizeof(buf), rep), 0);
    assert_string_equal(buf, "/sys/pk/dn/thing/service/invoke_reply");
    assert_int_equal(gw_topic_format_filter(buf, sizeof(buf), "pk", "dn"), 0);
    assert_string_equal(buf, "/sys/pk/dn/#");
    assert_int_equal(gw_topic_format_filter(buf, sizeof(buf), "p+", "dn"), GW_E_BAD_TOPIC);
    gw_msg_unref(rep);
    gw_msg_unref(req);
    /* a message without identity has no topic */
    assert_int_equal(gw_msg_new_request(GW_METHOD_PROPERTY_SET, "1", NULL, NULL, NULL, &req), 0);
    assert_int_equal(gw_topic_format_msg(buf, sizeof(buf), req), GW_E_BAD_TOPIC);
    gw_msg_unref(req);
}

static void test_refused(void **state)
{
    static const struct {
        const char *topic;
        int rc;
    } cases[] = {
        { "", GW_E_BAD_TOPIC },
        { "/sys/", GW_E_BAD_TOPIC },
        { "/sys/pk", GW_E_BAD_TOPIC },
        { "/sys/pk/dn", GW_E_BAD_TOPIC },
        { "/sys/pk/dn/", GW_E_BAD_TOPIC },
        { "sys/pk/dn/thing/property/post", GW_E_BAD_TOPIC },
        { "/SYS/pk/dn/thing/property/post", GW_E_BAD_TOPIC },
        { "/ext/pk/dn/thing/property/post", GW_E_BAD_TOPIC },
        { "//sys/pk/dn/thing/property/post", GW_E_BAD_TOPIC },
        { "/sys//dn/thing/property/post", GW_E_BAD_TOPIC },
        { "/sys/pk//thing/property/post", GW_E_BAD_TOPIC },
        { "/sys/pk/dn//thing/property/post", GW_E_BAD_TOPIC },
        { "/sys/pk/dn/thing//property/post", GW_E_BAD_TOPIC },
        { "/sys/pk/dn/thing/property/post/", GW_E_BAD_TOPIC },
        { "/sys/pk/dn/thing/property/post/_reply", GW_E_BAD_TOPIC },
        { "/sys/+/dn/thing/property/post", GW_E_BAD_TOPIC },
        { "/sys/pk/+/thing/property/post", GW_E_BAD_TOPIC },
        { "/sys/pk/dn/#", GW_E_BAD_TOPIC },
        { "/sys/pk/dn/thing/+/post", GW_E_BAD_TOPIC },
        { "/sys/p#k/dn/thing/property/post", GW_E_BAD_TOPIC },
        { "/sys/pk/dn/thing.property.post", GW_E_BAD_TOPIC },
        { "/sys/pk/dn/thing/property/post.x", GW_E_BAD_TOPIC },
        { "/sys/pk/dn/thing/property/get", GW_E_UNKNOWN_METHOD },
        { "/sys/pk/dn/thing/property/post_reply_reply", GW_E_UNKNOWN_METHOD },
        { "/sys/pk/dn/_reply", GW_E_UNKNOWN_METHOD },
        { "/sys/pk/dn/Thing/Property/Post", GW_E_UNKNOWN_METHOD },
        { "/sys/pk/dn/thing/property/post/extra", GW_E_UNKNOWN_METHOD },
        { "/sys/pk/dn/thing/property", GW_E_UNKNOWN_METHOD },
        { "/sys/\xff/dn/thing/property/post", GW_E_BAD_UTF8 },
        { "/sys/pk/d\xc3\x28/thing/property/post", GW_E_BAD_UTF8 },
    };
    struct gw_topic t;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = parse(cases[i].topic, &t);
        if (rc != cases[i].rc)
            fail_msg("%s: got %s, want %s", cases[i].topic, gw_error_name(rc),
                     gw_error_name(cases[i].rc));
        assert_int_equal(t.method, GW_METHOD_UNKNOWN);
        assert_string_equal(t.product_key, "");
    }
    /* an embedded NUL never hides the rest of the topic */
    assert_int_equal(gw_topic_parse("/sys/pk/dn/auth\0/x", 18, &t), GW_E_BAD_TOPIC);
    assert_int_equal(gw_topic_parse(NULL, 0, &t), GW_E_BAD_TOPIC);
}

static void test_segment_lengths(void **state)
{
    char pk[GW_MSG_PK_MAX + 2], dn[GW_MSG_DN_MAX + 2], topic[300], buf[GW_TOPIC_MAX];
    struct gw_topic t;

    (void)state;
    memset(pk, 'p', sizeof(pk));
    memset(dn, 'd', sizeof(dn));
    pk[GW_MSG_PK_MAX] = 0;
    dn[GW_MSG_DN_MAX] = 0;
    snprintf(topic, sizeof(topic), "/sys/%s/%s/thing/event/property/pack/post_reply", pk, dn);
    assert_int_equal(strlen(topic) + 1, GW_TOPIC_MAX - 2); /* the longest method is 30 */
    assert_int_equal(parse(topic, &t), 0);
    assert_string_equal(t.product_key, pk);
    assert_string_equal(t.device_name, dn);
    assert_int_equal(gw_topic_format(buf, sizeof(buf), pk, dn, GW_METHOD_EVENT_PROPERTY_PACK_POST,
                                     true),
                     0);
    assert_string_equal(buf, topic);
    /* one byte too small for the topic and its NUL */
    assert_int_equal(gw_topic_format(buf, strlen(topic), pk, dn,
                                     GW_METHOD_EVENT_PROPERTY_PACK_POST, true),
                     -ENOSPC);
    pk[GW_MSG_PK_MAX] = 'p';
    pk[GW_MSG_PK_MAX + 1] = 0;
    snprintf(topic, sizeof(topic), "/sys/%s/%s/auth", pk, "dn");
    assert_int_equal(parse(topic, &t), GW_E_BAD_TOPIC);
    assert_int_equal(gw_topic_format(buf, sizeof(buf), pk, "dn", GW_METHOD_AUTH, false),
                     GW_E_BAD_TOPIC);
    dn[GW_MSG_DN_MAX] = 'd';
    dn[GW_MSG_DN_MAX + 1] = 0;
    snprintf(topic, sizeof(topic), "/sys/%s/%s/auth", "pk", dn);
    assert_int_equal(parse(topic, &t), GW_E_BAD_TOPIC);
}

static void test_format_refused(void **state)
{
    char buf[GW_TOPIC_MAX];

    (void)state;
    assert_int_equal(gw_topic_format(buf, sizeof(buf), "", "dn", GW_METHOD_AUTH, false),
                     GW_E_BAD_TOPIC);
    assert_int_equal(gw_topic_format(buf, sizeof(buf), "pk", "a/b", GW_METHOD_AUTH, false),
                     GW_E_BAD_TOPIC);
    assert_int_equal(gw_topic_format(buf, sizeof(buf), "pk", "#", GW_METHOD_AUTH, false),
                     GW_E_BAD_TOPIC);
    assert_int_equal(gw_topic_format(buf, sizeof(buf), NULL, "dn", GW_METHOD_AUTH, false),
                     GW_E_BAD_TOPIC);
    assert_int_equal(gw_topic_format(buf, sizeof(buf), "pk", "dn", GW_METHOD_UNKNOWN, false),
                     GW_E_UNKNOWN_METHOD);
    assert_int_equal(gw_topic_format(buf, sizeof(buf), "\xff", "dn", GW_METHOD_AUTH, false),
                     GW_E_BAD_UTF8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_design_examples),
        cmocka_unit_test(test_every_method_round_trips),
        cmocka_unit_test(test_format_msg_and_filter),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_segment_lengths),
        cmocka_unit_test(test_format_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
