/*
 * DESIGN: unit tests of the message model (gw_msg.h): builders, the invariants every
 * builder enforces (with ownership of params/data taken even on failure: the ASan build
 * catches a leak), ids, replies, identity copies and the atomic reference count.
 */
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw_error.h"
#include "gw_msg.h"

static cJSON *json(const char *text)
{
    cJSON *j = cJSON_Parse(text);

    assert_non_null(j);
    return j;
}

/* a string of n copies of c (static buffer, n < 2000) */
static const char *repeat(char c, size_t n)
{
    static char buf[2000];

    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static bool inside(const struct gw_msg *m, const char *p)
{
    return p > (const char *)m && p < (const char *)m + malloc_usable_size((void *)m);
}

static void test_request_fields(void **state)
{
    struct gw_msg *m;

    (void)state;
    assert_int_equal(gw_msg_new_request(GW_METHOD_PROPERTY_POST, "17", "pk1", "dev1",
                                        json("{\"temp\":25}"), &m),
                     0);
    assert_int_equal(m->method, GW_METHOD_PROPERTY_POST);
    assert_string_equal(gw_msg_method_name(m), "thing.property.post");
    assert_string_equal(m->request_id, "17");
    assert_string_equal(m->product_key, "pk1");
    assert_string_equal(m->device_name, "dev1");
    assert_string_equal(m->id, "");
    assert_false(gw_msg_is_reply(m));
    assert_null(m->msg);
    assert_null(m->data);
    assert_int_equal(cJSON_GetObjectItem(m->params, "temp")->valueint, 25);
    /* one allocation: every string lives inside the message's block */
    assert_true(inside(m, m->request_id));
    assert_true(inside(m, m->product_key));
    assert_true(inside(m, m->device_name));
    gw_msg_unref(m);
}

static void test_missing_request_id_follows_id(void **state)
{
    struct gw_msg *m, *r;

    (void)state;
    assert_int_equal(gw_msg_new_request(GW_METHOD_TOPO_GET, NULL, NULL, NULL, NULL, &m), 0);
    assert_string_equal(m->request_id, "");
    assert_string_equal(m->product_key, "");
    assert_string_equal(gw_msg_wire_id(m), "");
    assert_int_equal(gw_msg_assign_id(m), 0);
    assert_int_equal(strlen(m->id), 32);
    assert_int_equal(strspn(m->id, "0123456789abcdef"), 32);
    assert_string_equal(m->request_id, m->id);
    assert_int_equal(gw_msg_new_reply(m, 0, "success", NULL, &r), 0);
    assert_string_equal(r->request_id, m->id);
    gw_msg_unref(r);
    gw_msg_unref(m);
}

#define ID_THREADS 4
#define IDS_PER_THREAD 5000

static void *assign_ids(void *arg)
{
    char (*ids)[GW_MSG_ID_LEN + 1] = arg;

    for (int i = 0; i < IDS_PER_THREAD; i++) {
        struct gw_msg *m = NULL;
        if (gw_msg_new_request(GW_METHOD_AUTH, "x", "", "", NULL, &m) != 0 ||
            gw_msg_assign_id(m) != 0) {
            gw_msg_unref(m);
            return (void *)1;
        }
        memcpy(ids[i], m->id, sizeof(ids[i]));
        gw_msg_unref(m);
    }
    return NULL;
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Ids assigned by several threads at once (the first calls race for the process nonce) are
 * all distinct and well-formed. */
static void test_ids_unique_across_threads(void **state)
{
    static char ids[ID_THREADS * IDS_PER_THREAD][GW_MSG_ID_LEN + 1];
    pthread_t th[ID_THREADS];
    void *ret;

    (void)state;
    for (int t = 0; t < ID_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, assign_ids, ids[t * IDS_PER_THREAD]), 0);
    for (int t = 0; t < ID_THREADS; t++) {
        assert_int_equal(pthread_join(th[t], &ret), 0);
        assert_null(ret);
    }
    qsort(ids, ID_THREADS * IDS_PER_THREAD, sizeof(ids[0]), id_cmp);
    for (int i = 0; i < ID_THREADS * IDS_PER_THREAD; i++) {
        assert_int_equal(strspn(ids[i], "0123456789abcdef"), GW_MSG_ID_LEN);
        if (i > 0)
            assert_string_not_equal(ids[i - 1], ids[i]);
    }
}

static void test_ids(void **state)
{
    struct gw_msg *a, *b;

    (void)state;
    assert_int_equal(gw_msg_new_request(GW_METHOD_AUTH, "x", "", "", NULL, &a), 0);
    assert_int_equal(gw_msg_new_request(GW_METHOD_AUTH, "x", "", "", NULL, &b), 0);
    assert_int_equal(gw_msg_assign_id(a), 0);
    assert_int_equal(gw_msg_assign_id(b), 0);
    assert_string_not_equal(a->id, b->id);
    assert_string_equal(a->request_id, "x"); /* the device's id is kept */
    gw_msg_assign_id_seq(b, 0x1234, 0xfedcba9876543210ULL);
    assert_string_equal(b->id, "0000000000001234fedcba9876543210");
    gw_msg_unref(a);
    gw_msg_unref(b);
}

static void test_reply_keeps_method_and_request_id(void **state)
{
    struct gw_msg_fields f = {
        .method = GW_METHOD_SERVICE_INVOKE,
        .request_id = "abc",
        .identity = { "pk", "dn", 42 },
        .params = NULL,
        .origin = { (void *)&f, 7 },
    };
    struct gw_msg *req, *rep;

    (void)state;
    f.params = json("{\"identifier\":\"reboot\",\"inputParams\":{}}");
    assert_int_equal(gw_msg_new(&f, &req), 0);
    assert_int_equal(gw_msg_new_reply(req, -5, "busy", json("{\"ok\":false}"), &rep), 0);
    assert_true(gw_msg_is_reply(rep));
    assert_int_equal(rep->code, -5);
    assert_string_equal(rep->msg, "busy");
    assert_int_equal(rep->method, GW_METHOD_SERVICE_INVOKE);
    assert_string_equal(rep->request_id, "abc");
    assert_string_equal(rep->product_key, "pk");
    assert_string_equal(rep->device_name, "dn");
    assert_int_equal(rep->device_id, 42);
    assert_ptr_equal(rep->origin.adapter, &f);
    assert_int_equal(rep->origin.session, 7);
    assert_null(rep->params);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(rep->data, "ok")));
    assert_true(inside(rep, rep->msg));
    gw_msg_unref(req);
    gw_msg_unref(rep);
}

static void test_copy_with_identity(void **state)
{
    struct gw_msg_identity sub = { "subpk", "sub-1", 99 };
    struct gw_msg *m, *c;

    (void)state;
    assert_int_equal(gw_msg_new_request(GW_METHOD_PROPERTY_POST, "5", "claimed", "claimed",
                                        json("{\"t\":[1,2,{\"x\":null}]}"), &m),
                     0);
    gw_msg_assign_id_seq(m, 1, 2);
    assert_int_equal(gw_msg_copy_with_identity(m, &sub, &c), 0);
    assert_string_equal(c->product_key, "subpk");
    assert_string_equal(c->device_name, "sub-1");
    assert_int_equal(c->device_id, 99);
    assert_string_equal(c->id, m->id);
    assert_string_equal(c->request_id, "5");
    assert_ptr_not_equal(c->params, m->params);
    assert_true(cJSON_Compare(c->params, m->params, 1));
    assert_false(gw_msg_equal_content(c, m)); /* identity differs */
    gw_msg_unref(m);                          /* the copy owns its own tree */
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(c->params, "t")), 3);
    gw_msg_unref(c);
}

static int new_with(enum gw_method method, const char *rid, const char *pk, const char *dn,
                    const char *params)
{
    struct gw_msg *m = NULL;
    int rc = gw_msg_new_request(method, rid, pk, dn, params ? json(params) : NULL, &m);

    if (rc == 0)
        gw_msg_unref(m);
    else
        assert_null(m);
    return rc;
}

static void test_invariants(void **state)
{
    (void)state;
    assert_int_equal(new_with(GW_METHOD_UNKNOWN, "1", "", "", "{}"), GW_E_UNKNOWN_METHOD);
    assert_int_equal(new_with(GW_METHOD__COUNT, "1", "", "", "{}"), GW_E_UNKNOWN_METHOD);
    assert_int_equal(new_with(GW_METHOD_AUTH, repeat('a', 64), "", "", NULL), 0);
    assert_int_equal(new_with(GW_METHOD_AUTH, repeat('a', 65), "", "", NULL), GW_E_BAD_FIELD);
    assert_int_equal(new_with(GW_METHOD_AUTH, "1", repeat('p', 32), "", NULL), 0);
    assert_int_equal(new_with(GW_METHOD_AUTH, "1", repeat('p', 33), "", NULL), GW_E_BAD_FIELD);
    assert_int_equal(new_with(GW_METHOD_AUTH, "1", "", repeat('d', 64), NULL), 0);
    assert_int_equal(new_with(GW_METHOD_AUTH, "1", "", repeat('d', 65), NULL), GW_E_BAD_FIELD);
    assert_int_equal(new_with(GW_METHOD_AUTH, "\xc3\x28", "", "", NULL), GW_E_BAD_UTF8);
    assert_int_equal(new_with(GW_METHOD_AUTH, "1", "\xff", "", NULL), GW_E_BAD_UTF8);
    assert_int_equal(new_with(GW_METHOD_AUTH, "1", "", "\xed\xa0\x80", NULL), GW_E_BAD_UTF8);
    assert_int_equal(new_with(GW_METHOD_AUTH, "\xe4\xb8\xad", "", "", NULL), 0);
}

static void test_params_shape(void **state)
{
    struct gw_msg *m;

    (void)state;
    assert_int_equal(new_with(GW_METHOD_PROPERTY_POST, "1", "", "", "[1]"), GW_E_BAD_PARAMS);
    assert_int_equal(new_with(GW_METHOD_PROPERTY_POST, "1", "", "", "\"x\""), GW_E_BAD_PARAMS);
    assert_int_equal(new_with(GW_METHOD_PROPERTY_POST, "1", "", "", "3"), GW_E_BAD_PARAMS);
    assert_int_equal(new_with(GW_METHOD_PROPERTY_POST, "1", "", "", "true"), GW_E_BAD_PARAMS);
    assert_int_equal(new_with(GW_METHOD_AUTH_REGISTER_SUB, "1", "", "", "[]"), 0);
    assert_int_equal(new_with(GW_METHOD_AUTH_REGISTER_SUB, "1", "", "", "{}"), GW_E_BAD_PARAMS);
    /* JSON null params = absent */
    assert_int_equal(gw_msg_new_request(GW_METHOD_PROPERTY_POST, "1", "", "", json("null"), &m),
                     0);
    assert_null(m->params);
    gw_msg_unref(m);
}

static void test_tree_limits(void **state)
{
    char deep[200];
    size_t n;

    (void)state;
    assert_int_equal(new_with(GW_METHOD_PROPERTY_POST, "1", "", "", "{\"a\":1e300}"), 0);
    assert_int_equal(new_with(GW_METHOD_PROPERTY_POST, "1", "", "", "{\"a\":-1e301}"),
                     GW_E_BAD_FIELD);
    assert_int_equal(new_with(GW_METHOD_PROPERTY_POST, "1", "", "", "{\"a\":[1e999]}"),
                     GW_E_BAD_FIELD);
    assert_int_equal(new_with(GW_METHOD_PROPERTY_POST, "1", "", "", "{\"a\":1,\"b\":2,\"a\":3}"),
                     GW_E_BAD_JSON);
    assert_int_equal(new_with(GW_METHOD_PROPERTY_POST, "1", "", "",
                              "{\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,"
                              "\"k8\":8,\"k9\":9,\"k10\":{\"a\":1,\"a\":1}}"),
                     GW_E_BAD_JSON);
    /* GW_MSG_TREE_DEPTH_MAX (31) containers nest; one more is refused */
    /* {"a": then 30 x '[', 30 x ']', '}': 31 containers */
    strcpy(deep, "{\"a\":");
    for (n = 1; n < GW_MSG_TREE_DEPTH_MAX; n++)
        strcat(deep, "[");
    for (n = 1; n < GW_MSG_TREE_DEPTH_MAX; n++)
        strcat(deep, "]");
    strcat(deep, "}");
    assert_int_equal(new_with(GW_METHOD_PROPERTY_POST, "1", "", "", deep), 0);
    strcpy(deep, "{\"a\":");
    for (n = 0; n < GW_MSG_TREE_DEPTH_MAX; n++)
        strcat(deep, "[");
    for (n = 0; n < GW_MSG_TREE_DEPTH_MAX; n++)
        strcat(deep, "]");
    strcat(deep, "}");
    assert_int_equal(new_with(GW_METHOD_PROPERTY_POST, "1", "", "", deep), GW_E_TOO_DEEP);
}

static void test_reply_limits(void **state)
{
    struct gw_msg *req, *r = NULL;

    (void)state;
    assert_int_equal(gw_msg_new_request(GW_METHOD_PROPERTY_SET, "9", "", "", NULL, &req), 0);
    assert_int_equal(gw_msg_new_reply(req, 0, repeat('m', GW_MSG_TEXT_MAX), NULL, &r), 0);
    gw_msg_unref(r);
    assert_int_equal(gw_msg_new_reply(req, 0, repeat('m', GW_MSG_TEXT_MAX + 1),
                                      json("{\"leak\":\"check\"}"), &r),
                     GW_E_BAD_FIELD);
    assert_null(r);
    assert_int_equal(gw_msg_new_reply(req, 0, "\xc0\xaf", NULL, &r), GW_E_BAD_UTF8);
    /* data may be any JSON value; null is absent */
    assert_int_equal(gw_msg_new_reply(req, 0, NULL, json("[1,\"two\"]"), &r), 0);
    assert_true(cJSON_IsArray(r->data));
    gw_msg_unref(r);
    assert_int_equal(gw_msg_new_reply(req, 0, NULL, json("null"), &r), 0);
    assert_null(r->data);
    gw_msg_unref(r);
    gw_msg_unref(req);
}

static void test_report_time_range(void **state)
{
    struct gw_msg_fields f = { .method = GW_METHOD_PROPERTY_POST };
    struct gw_msg *m;

    (void)state;
    f.report_time = GW_MSG_REPORT_TIME_MAX;
    assert_int_equal(gw_msg_new(&f, &m), 0);
    gw_msg_unref(m);
    f.report_time = GW_MSG_REPORT_TIME_MAX + 1;
    assert_int_equal(gw_msg_new(&f, &m), GW_E_BAD_FIELD);
    f.report_time = -1;
    assert_int_equal(gw_msg_new(&f, &m), GW_E_BAD_FIELD);
}

static void *ref_worker(void *arg)
{
    struct gw_msg *m = arg;

    for (int i = 0; i < 100000; i++)
        gw_msg_unref(gw_msg_ref(m));
    gw_msg_unref(m); /* the reference the main thread gave this worker */
    return NULL;
}

static void test_refcount_threads(void **state)
{
    pthread_t t[4];
    struct gw_msg *m;

    (void)state;
    assert_int_equal(gw_msg_new_request(GW_METHOD_PROPERTY_POST, "1", "pk", "dn",
                                        json("{\"a\":1}"), &m),
                     0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, ref_worker, gw_msg_ref(m)), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&m->refs), 1);
    gw_msg_unref(m); /* the last one frees: ASan reports a leak or double free otherwise */
    gw_msg_unref(NULL);
}

static void test_equal_content(void **state)
{
    struct gw_msg *a, *b;

    (void)state;
    assert_int_equal(gw_msg_new_request(GW_METHOD_EVENT_POST, "1", "p", "d",
                                        json("{\"identifier\":\"x\",\"value\":1.5}"), &a),
                     0);
    assert_int_equal(gw_msg_new_request(GW_METHOD_EVENT_POST, "1", "p", "d",
                                        json("{\"identifier\":\"x\",\"value\":1.5}"), &b),
                     0);
    gw_msg_assign_id_seq(a, 1, 1); /* ids are not content */
    assert_true(gw_msg_equal_content(a, b));
    gw_msg_unref(b);
    assert_int_equal(gw_msg_new_request(GW_METHOD_EVENT_POST, "1", "p", "d",
                                        json("{\"identifier\":\"x\",\"value\":2}"), &b),
                     0);
    assert_false(gw_msg_equal_content(a, b));
    gw_msg_unref(b);
    gw_msg_unref(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_fields),
        cmocka_unit_test(test_missing_request_id_follows_id),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_ids_unique_across_threads),
        cmocka_unit_test(test_reply_keeps_method_and_request_id),
        cmocka_unit_test(test_copy_with_identity),
        cmocka_unit_test(test_invariants),
        cmocka_unit_test(test_params_shape),
        cmocka_unit_test(test_tree_limits),
        cmocka_unit_test(test_reply_limits),
        cmocka_unit_test(test_report_time_range),
        cmocka_unit_test(test_refcount_threads),
        cmocka_unit_test(test_equal_content),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
