/*
 * Unit tests of the broker-free half of the mosquitto plugin (gateway/plugin/plugin_core.c):
 * login identity, the device ACL prefix, MQTT filter matching, the downstream-subscription
 * rule, presence texts and the connection table.
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
#include "gw_util.h"
#include "plugin_core.h"

static void test_identity_ok(void **state)
{
    char pk[GW_PK_MAX + 1], dn[GW_DN_MAX + 1];
    (void)state;
    assert_int_equal(gw_plugin_identity("pk001.dev01", "dev01&pk001", pk, dn, NULL), 0);
    assert_string_equal(pk, "pk001");
    assert_string_equal(dn, "dev01");
    /* A '.' in the deviceName is fine: the clientId splits at its first '.'. */
    assert_int_equal(gw_plugin_identity("pk1.dev.1", "dev.1&pk1", pk, dn, NULL), 0);
    assert_string_equal(pk, "pk1");
    assert_string_equal(dn, "dev.1");
}

static void test_identity_refused(void **state)
{
    static const struct {
        const char *client_id, *username;
    } bad[] = {
        { "pk1.dev1", "dev2&pk1" },   /* another device's username */
        { "pk1.dev1", "dev1&pk2" },   /* another product */
        { "pk2.dev1", "dev1&pk1" },
        { "pk1dev1", "dev1&pk1" },    /* no '.' */
        { "pk1.dev1", "dev1pk1" },    /* no '&' */
        { "pk1.dev1", "dev1&pk1&x" }, /* two '&' */
        { "pk1.+", "+&pk1" },         /* wildcards would widen the ACL prefix */
        { "pk1.#", "#&pk1" },
        { "+.dev1", "dev1&+" },
        { "pk1.a/b", "a/b&pk1" },     /* a level separator */
        { "pk1.", "&pk1" },           /* empty names */
        { ".dev1", "dev1&" },
        { "pk1.dev\x01", "dev\x01&pk1" },
        { NULL, "dev1&pk1" },
        { "pk1.dev1", NULL },
        { "pk1.dev1", "" },
    };
    char pk[GW_PK_MAX + 1], dn[GW_DN_MAX + 1];
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;
        assert_int_equal(gw_plugin_identity(bad[i].client_id, bad[i].username, pk, dn, &why),
                         GW_E_AUTH_FAILED);
        assert_non_null(why);
        assert_string_equal(pk, "");
        assert_string_equal(dn, "");
    }
    /* Names longer than the store accepts. */
    char cid[200], user[200];
    memset(cid, 'a', 33);
    strcpy(cid + 33, ".dev1");
    strcpy(user, "dev1&");
    memset(user + 5, 'a', 33);
    user[38] = '\0';
    assert_int_equal(gw_plugin_identity(cid, user, pk, dn, NULL), GW_E_AUTH_FAILED);
}

static void test_topic_allowed(void **state)
{
    (void)state;
    assert_true(gw_plugin_topic_allowed("/sys/pk1/dev1/thing/event/property/post", "pk1", "dev1"));
    assert_true(gw_plugin_topic_allowed("/sys/pk1/dev1/#", "pk1", "dev1"));
    assert_true(gw_plugin_topic_allowed("/sys/pk1/dev1/+/ota/upgrade", "pk1", "dev1"));
    assert_true(gw_plugin_topic_allowed("/sys/pk1/dev1/", "pk1", "dev1"));
    /* The prefix ends with '/': a device is not the prefix of another one's name. */
    assert_false(gw_plugin_topic_allowed("/sys/pk1/dev10/thing", "pk1", "dev1"));
    assert_false(gw_plugin_topic_allowed("/sys/pk11/dev1/thing", "pk1", "dev1"));
    assert_false(gw_plugin_topic_allowed("/sys/pk1/dev1", "pk1", "dev1"));
    assert_false(gw_plugin_topic_allowed("/sys/pk1/dev2/thing", "pk1", "dev1"));
    /* Wildcards above the device's own level are denied as plain text. */
    assert_false(gw_plugin_topic_allowed("/sys/pk1/+/thing", "pk1", "dev1"));
    assert_false(gw_plugin_topic_allowed("/sys/+/dev1/thing", "pk1", "dev1"));
    assert_false(gw_plugin_topic_allowed("/sys/#", "pk1", "dev1"));
    assert_false(gw_plugin_topic_allowed("#", "pk1", "dev1"));
    assert_false(gw_plugin_topic_allowed("+/sys/pk1/dev1/x", "pk1", "dev1"));
    assert_false(gw_plugin_topic_allowed("$iotgw/presence/pk1/dev1", "pk1", "dev1"));
    assert_false(gw_plugin_topic_allowed("$share/g/sys/pk1/dev1/x", "pk1", "dev1"));
    assert_false(gw_plugin_topic_allowed("sys/pk1/dev1/x", "pk1", "dev1"));
    assert_false(gw_plugin_topic_allowed("", "pk1", "dev1"));
    assert_false(gw_plugin_topic_allowed(NULL, "pk1", "dev1"));
}

static void test_filter_match(void **state)
{
    static const struct {
        const char *filter, *topic;
        bool match;
    } cases[] = {
        { "a/b/c", "a/b/c", true },
        { "a/b/c", "a/b/cd", false },
        { "a/b/c", "a/b", false },
        { "a/b", "a/b/c", false },
        { "a/+/c", "a/b/c", true },
        { "a/+/c", "a//c", true },
        { "a/+", "a/", true },
        { "a/+", "a", false },
        { "a/+", "a/b/c", false },
        { "a/#", "a", true },
        { "a/#", "a/b/c", true },
        { "a/#", "ab", false },
        { "a/+/#", "a", false },
        { "a/+/#", "a/b", true },
        { "#", "a/b", true },
        { "#", "/a", true },
        { "+", "a", true },
        { "+", "/a", false },
        { "+/+", "/a", true },
        { "/+/x", "/a/x", true },
        { "a/#/b", "a/x/b", false }, /* '#' only last */
        { "#", "$SYS/x", false },    /* wildcards first do not match $ topics */
        { "+/x", "$iotgw/x", false },
        { "$iotgw/#", "$iotgw/presence/pk/dn", true },
        { "/sys/pk/dn/thing/ota/upgrade", "/sys/pk/dn/thing/ota/upgrade", true },
        { "", "a", false },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = gw_plugin_filter_match(cases[i].filter, cases[i].topic);
        if (got != cases[i].match)
            fail_msg("filter '%s' topic '%s': got %d", cases[i].filter, cases[i].topic, got);
    }
    assert_false(gw_plugin_filter_match(NULL, "a"));
    assert_false(gw_plugin_filter_match("a", NULL));
}

static void test_filter_is_downstream(void **state)
{
    (void)state;
    assert_true(gw_plugin_filter_is_downstream("/sys/pk1/dev1/#", "pk1", "dev1"));
    assert_true(gw_plugin_filter_is_downstream("/sys/pk1/dev1/thing/#", "pk1", "dev1"));
    assert_true(gw_plugin_filter_is_downstream("/sys/pk1/dev1/thing/ota/upgrade", "pk1", "dev1"));
    assert_true(gw_plugin_filter_is_downstream("/sys/pk1/dev1/thing/ota/+", "pk1", "dev1"));
    assert_true(gw_plugin_filter_is_downstream("/sys/pk1/dev1/+/+/upgrade", "pk1", "dev1"));
    assert_false(gw_plugin_filter_is_downstream("/sys/pk1/dev1/thing/event/#", "pk1", "dev1"));
    assert_false(
        gw_plugin_filter_is_downstream("/sys/pk1/dev1/thing/ota/upgrade_reply", "pk1", "dev1"));
    assert_false(gw_plugin_filter_is_downstream("/sys/pk1/dev1/thing/ota", "pk1", "dev1"));
    assert_false(gw_plugin_filter_is_downstream("/sys/pk1/dev2/#", "pk1", "dev1"));
}

static void assert_presence_json(const char *text, const char *event, double seq)
{
    cJSON *j = NULL;
    assert_int_equal(gw_json_parse_strict(text, strlen(text), &j), 0);
    assert_int_equal(cJSON_GetArraySize(j), 2);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "event")), event);
    assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "seq")) == seq);
    cJSON_Delete(j);
}

static void test_presence_texts(void **state)
{
    char buf[GW_PLUGIN_PAYLOAD_MAX];
    char topic[GW_PLUGIN_TOPIC_MAX];
    (void)state;
    assert_int_equal(gw_plugin_presence_payload(GW_PLUGIN_EV_ONLINE, 1, buf, sizeof(buf)),
                     (int)strlen("{\"event\":\"online\",\"seq\":1}"));
    assert_string_equal(buf, "{\"event\":\"online\",\"seq\":1}");
    assert_presence_json(buf, "online", 1);
    assert_true(gw_plugin_presence_payload(GW_PLUGIN_EV_SUBSCRIBED, 42, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "{\"event\":\"subscribed\",\"seq\":42}");
    assert_true(gw_plugin_presence_payload(GW_PLUGIN_EV_OFFLINE, 7, buf, sizeof(buf)) > 0);
    assert_presence_json(buf, "offline", 7);
    /* The largest seq still fits the declared maximum. */
    assert_true(gw_plugin_presence_payload(GW_PLUGIN_EV_SUBSCRIBED, UINT64_MAX, buf,
                                           sizeof(buf)) > 0);
    assert_string_equal(buf, "{\"event\":\"subscribed\",\"seq\":18446744073709551615}");
    assert_int_equal(gw_plugin_presence_payload(GW_PLUGIN_EV_ONLINE, 1, buf, 10), -ENOSPC);
    assert_int_equal(gw_plugin_presence_payload((enum gw_plugin_event)99, 1, buf, sizeof(buf)),
                     -EINVAL);

    assert_int_equal(gw_plugin_presence_topic("pk1", "dev1", topic, sizeof(topic)), 0);
    assert_string_equal(topic, "$iotgw/presence/pk1/dev1");
    /* Longest names fit GW_PLUGIN_TOPIC_MAX. */
    char pk[GW_PK_MAX + 1], dn[GW_DN_MAX + 1];
    memset(pk, 'p', GW_PK_MAX);
    pk[GW_PK_MAX] = '\0';
    memset(dn, 'd', GW_DN_MAX);
    dn[GW_DN_MAX] = '\0';
    assert_int_equal(gw_plugin_presence_topic(pk, dn, topic, sizeof(topic)), 0);
    assert_int_equal(gw_plugin_presence_topic("pk1", "dev1", topic, 10), -ENOSPC);
    assert_string_equal(topic, "");
}

static void test_conns_basic(void **state)
{
    struct gw_plugin_conns m;
    struct gw_plugin_conn *c1, *c2, out;
    int a, b; /* their addresses stand in for broker client pointers */
    (void)state;
    assert_int_equal(gw_plugin_conns_init(&m), 0);
    assert_null(gw_plugin_conns_find(&m, &a));
    assert_int_equal(gw_plugin_conns_add(&m, &a, "pk1", "dev1", &c1), 0);
    assert_int_equal(c1->seq, 1);
    assert_false(c1->subscribed);
    assert_string_equal(c1->pk, "pk1");
    assert_string_equal(c1->dn, "dev1");
    /* Takeover: the same device on a second pointer gets the next seq. */
    assert_int_equal(gw_plugin_conns_add(&m, &b, "pk1", "dev1", &c2), 0);
    assert_int_equal(c2->seq, 2);
    assert_ptr_equal(gw_plugin_conns_find(&m, &a), c1);
    assert_int_equal(gw_plugin_conns_add(&m, &a, "pk1", "dev1", &c2), -EEXIST);
    c1->subscribed = true;

    assert_int_equal(gw_plugin_conns_remove(&m, &a, &out), 0);
    assert_int_equal(out.seq, 1);
    assert_true(out.subscribed);
    assert_null(out.next);
    assert_string_equal(out.dn, "dev1");
    /* A second DISCONNECT of the same pointer is unknown. */
    assert_int_equal(gw_plugin_conns_remove(&m, &a, &out), GW_E_NOT_FOUND);
    assert_null(gw_plugin_conns_find(&m, &a));
    /* A reused pointer is a new connection with a new seq. */
    assert_int_equal(gw_plugin_conns_add(&m, &a, "pk1", "dev1", &c1), 0);
    assert_int_equal(c1->seq, 3);
    assert_int_equal(m.count, 2);
    gw_plugin_conns_fini(&m);
}

static void test_conns_many(void **state)
{
    enum { N = 20000 };
    struct gw_plugin_conns m;
    char *base = malloc(N * 16); /* distinct, 16-byte aligned fake pointers */
    struct gw_plugin_conn *c, out;
    (void)state;
    assert_non_null(base);
    assert_int_equal(gw_plugin_conns_init(&m), 0);
    for (int i = 0; i < N; i++) {
        char dn[16];
        snprintf(dn, sizeof(dn), "d%d", i);
        assert_int_equal(gw_plugin_conns_add(&m, base + 16 * i, "pk", dn, &c), 0);
        assert_int_equal(c->seq, (uint64_t)i + 1);
    }
    assert_int_equal(m.count, N);
    assert_true(m.nbuckets >= N); /* grew */
    for (int i = 0; i < N; i += 2)
        assert_int_equal(gw_plugin_conns_remove(&m, base + 16 * i, &out), 0);
    for (int i = 0; i < N; i++) {
        c = gw_plugin_conns_find(&m, base + 16 * i);
        if (i % 2 == 0) {
            assert_null(c);
        } else {
            assert_non_null(c);
            assert_int_equal(c->seq, (uint64_t)i + 1);
        }
    }
    assert_int_equal(m.count, N / 2);
    gw_plugin_conns_fini(&m); /* frees the rest: ASan reports a leak otherwise */
    free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_ok),
        cmocka_unit_test(test_identity_refused),
        cmocka_unit_test(test_topic_allowed),
        cmocka_unit_test(test_filter_match),
        cmocka_unit_test(test_filter_is_downstream),
        cmocka_unit_test(test_presence_texts),
        cmocka_unit_test(test_conns_basic),
        cmocka_unit_test(test_conns_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
