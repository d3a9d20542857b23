/*
 * Products, devices, device properties and firmware: CRUD, uniqueness, generated secrets,
 * length limits, indexes, and the iterators (order, reverse, after_id, stop, errors).
 */
#include <ctype.h>
#include <errno.h>

#include "store_test_util.h"

static void assert_hex32(const char *s)
{
    assert_int_equal(strlen(s), 32);
    for (const char *p = s; *p; p++)
        assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
}

static void test_product_create_generates_key_and_secret(void **state)
{
    struct store_fx *fx = *state;
    struct gw_txn *t = wtxn(fx);
    struct gw_product p, q, got;

    memset(&p, 0, sizeof(p));
    strcpy(p.name, "meter");
    assert_int_equal(gw_store_product_create(t, &p, 1234), 0);
    assert_int_equal(p.id, 1);
    assert_int_equal(p.create_time_ms, 1234);
    assert_int_equal(strlen(p.product_key), 16);
    for (const char *c = p.product_key; *c; c++)
        assert_true(isalnum((unsigned char)*c));
    assert_hex32(p.product_secret);

    memset(&q, 0, sizeof(q));
    strcpy(q.name, "other");
    assert_int_equal(gw_store_product_create(t, &q, 1), 0);
    assert_int_equal(q.id, 2);
    assert_string_not_equal(p.product_key, q.product_key);
    assert_string_not_equal(p.product_secret, q.product_secret);
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = rtxn(fx);
    assert_int_equal(gw_store_product_get(t, p.id, &got), 0);
    assert_memory_equal(&got.id, &p.id, sizeof(p.id));
    assert_string_equal(got.name, "meter");
    assert_string_equal(got.product_key, p.product_key);
    assert_string_equal(got.product_secret, p.product_secret);
    assert_int_equal(got.serializer, GW_SERIALIZER_JSON);
    assert_int_equal(got.create_time_ms, 1234);
    assert_int_equal(gw_store_product_get_by_key(t, p.product_key, &got), 0);
    assert_int_equal(got.id, p.id);
    assert_int_equal(gw_store_product_get(t, 99, &got), GW_E_NOT_FOUND);
    assert_int_equal(gw_store_product_get_by_key(t, "nope", &got), GW_E_NOT_FOUND);
    gw_store_txn_abort(t);
}

static void test_product_key_unique_and_validated(void **state)
{
    struct store_fx *fx = *state;
    struct gw_txn *t = wtxn(fx);
    struct gw_product p;

    mk_product(t, "a", "pk001");
    memset(&p, 0, sizeof(p));
    strcpy(p.product_key, "pk001");
    assert_int_equal(gw_store_product_create(t, &p, 0), GW_E_PRODUCT_KEY_EXISTS);
    strcpy(p.product_key, "pk/1");
    assert_int_equal(gw_store_product_create(t, &p, 0), -EINVAL);
    strcpy(p.product_key, "pk+");
    assert_int_equal(gw_store_product_create(t, &p, 0), -EINVAL);
    /* The longest key that fits is accepted; one byte more is refused, never truncated. */
    memset(p.product_key, 'k', GW_PK_MAX);
    p.product_key[GW_PK_MAX] = '\0';
    assert_int_equal(gw_store_product_create(t, &p, 0), 0); /* exactly 32: fits */
    memset(&p, 0, sizeof(p));
    memset(p.product_key, 'q', sizeof(p.product_key)); /* 33 bytes, no NUL */
    assert_int_equal(gw_store_product_create(t, &p, 0), GW_E_VALUE_TOO_LONG);
    memset(&p, 0, sizeof(p));
    memset(p.name, 'n', GW_NAME_MAX + 1); /* no NUL inside the array */
    assert_int_equal(gw_store_product_create(t, &p, 0), GW_E_VALUE_TOO_LONG);
    memset(&p, 0, sizeof(p));
    p.serializer = 7;
    assert_int_equal(gw_store_product_create(t, &p, 0), -EINVAL);
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = rtxn(fx);
    memset(&p, 0, sizeof(p));
    assert_int_equal(gw_store_product_create(t, &p, 0), -EINVAL); /* read txn */
    gw_store_txn_abort(t);
}

static void test_device_create_get_put(void **state)
{
    struct store_fx *fx = *state;
    struct gw_txn *t = wtxn(fx);
    uint64_t pid = mk_product(t, "p", "pk001");
    struct gw_device d, got;

    memset(&d, 0, sizeof(d));
    d.product_id = pid;
    strcpy(d.device_name, "dev01");
    d.state = GW_DEVICE_ONLINE;     /* ignored: a new device is inactive */
    d.firmware_id = 9;              /* ignored: no firmware yet */
    assert_int_equal(gw_store_device_create(t, &d, 555), 0);
    assert_int_equal(d.id, 1);
    assert_string_equal(d.product_key, "pk001");
    assert_hex32(d.device_secret);
    assert_int_equal(d.state, GW_DEVICE_INACTIVE);
    assert_int_equal(d.firmware_id, 0);

    /* A given secret is kept. */
    memset(&got, 0, sizeof(got));
    got.product_id = pid;
    strcpy(got.device_name, "dev02");
    strcpy(got.device_secret, "0123456789abcdef0123456789abcdef");
    assert_int_equal(gw_store_device_create(t, &got, 0), 0);
    assert_string_equal(got.device_secret, "0123456789abcdef0123456789abcdef");
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = wtxn(fx);
    assert_int_equal(gw_store_device_get_by_key(t, "pk001", "dev01", &got), 0);
    assert_int_equal(got.id, d.id);
    assert_int_equal(got.product_id, pid);
    assert_string_equal(got.device_secret, d.device_secret);
    assert_int_equal(got.create_time_ms, 555);
    got.state = GW_DEVICE_ONLINE;
    got.firmware_id = 42;
    got.last_seen_ms = 777;
    assert_int_equal(gw_store_device_put(t, &got), 0);
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = wtxn(fx);
    assert_int_equal(gw_store_device_get(t, d.id, &got), 0);
    assert_int_equal(got.state, GW_DEVICE_ONLINE);
    assert_int_equal(got.firmware_id, 42);
    assert_int_equal(got.last_seen_ms, 777);
    /* Identity is immutable. */
    strcpy(got.device_name, "renamed");
    assert_int_equal(gw_store_device_put(t, &got), -EINVAL);
    assert_int_equal(gw_store_device_get(t, d.id, &got), 0);
    got.product_id = 77;
    assert_int_equal(gw_store_device_put(t, &got), -EINVAL);
    assert_int_equal(gw_store_device_get(t, d.id, &got), 0);
    got.state = 9;
    assert_int_equal(gw_store_device_put(t, &got), -EINVAL);
    got.state = GW_DEVICE_OFFLINE;
    got.id = 999;
    assert_int_equal(gw_store_device_put(t, &got), GW_E_NOT_FOUND);
    assert_int_equal(gw_store_device_get_by_key(t, "pk001", "renamed", &got), GW_E_NOT_FOUND);
    gw_store_txn_abort(t);
}

static void test_device_uniqueness_and_errors(void **state)
{
    struct store_fx *fx = *state;
    struct gw_txn *t = wtxn(fx);
    uint64_t p1 = mk_product(t, "p1", "pk1"), p2 = mk_product(t, "p2", "pk2");
    struct gw_device d;

    mk_device(t, p1, "dev");
    memset(&d, 0, sizeof(d));
    d.product_id = p1;
    strcpy(d.device_name, "dev");
    assert_int_equal(gw_store_device_create(t, &d, 0), GW_E_DEVICE_NAME_EXISTS);
    d.product_id = p2; /* the same name in another product is fine */
    assert_int_equal(gw_store_device_create(t, &d, 0), 0);
    d.product_id = 404;
    strcpy(d.device_name, "x");
    assert_int_equal(gw_store_device_create(t, &d, 0), GW_E_PRODUCT_NOT_EXISTS);
    d.product_id = p1;
    d.device_name[0] = '\0';
    assert_int_equal(gw_store_device_create(t, &d, 0), -EINVAL);
    strcpy(d.device_name, "a#b");
    assert_int_equal(gw_store_device_create(t, &d, 0), -EINVAL);
    memset(d.device_name, 'd', sizeof(d.device_name)); /* 65 bytes, no NUL */
    assert_int_equal(gw_store_device_create(t, &d, 0), GW_E_VALUE_TOO_LONG);
    strcpy(d.device_name, "ok");
    memset(d.device_secret, 's', sizeof(d.device_secret));
    assert_int_equal(gw_store_device_create(t, &d, 0), GW_E_VALUE_TOO_LONG);
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = rtxn(fx);
    assert_int_equal(gw_store_device_get_by_key(t, "pk2", "dev", &d), 0);
    assert_int_equal(d.product_id, p2);
    assert_int_equal(gw_store_device_get_by_key(t, "pk1", "ok", &d), GW_E_NOT_FOUND);
    gw_store_txn_abort(t);
}

static int collect_device(void *ctx, const struct gw_device *d)
{
    return id_list_add(ctx, d->id);
}

static void test_device_iter_product_prefix(void **state)
{
    struct store_fx *fx = *state;
    struct gw_txn *t = wtxn(fx);
    /* "ab" is a prefix of "abc": the 0x00 separator keeps their devices apart. */
    uint64_t ab = mk_product(t, "ab", "ab"), abc = mk_product(t, "abc", "abc");
    uint64_t z = mk_product(t, "z", "z");
    uint64_t b = mk_device(t, ab, "b"), a = mk_device(t, ab, "a");
    struct id_list l = { 0 };

    mk_device(t, abc, "a");
    mk_device(t, abc, "zz");
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = rtxn(fx);
    assert_int_equal(gw_store_device_iter_product(t, ab, collect_device, &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.ids[0], a); /* device name order */
    assert_int_equal(l.ids[1], b);
    memset(&l, 0, sizeof(l));
    assert_int_equal(gw_store_device_iter_product(t, abc, collect_device, &l), 0);
    assert_int_equal(l.n, 2);
    memset(&l, 0, sizeof(l));
    assert_int_equal(gw_store_device_iter_product(t, z, collect_device, &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(gw_store_device_iter_product(t, 404, collect_device, &l), GW_E_NOT_FOUND);
    gw_store_txn_abort(t);
}

static void test_device_props(void **state)
{
    struct store_fx *fx = *state;
    struct gw_txn *t = wtxn(fx);
    uint64_t did = mk_device(t, mk_product(t, "p", "pk"), "d");
    char *s = NULL, *big;

    assert_int_equal(gw_store_device_props_get(t, did, &s), 0);
    assert_string_equal(s, "{}");
    free(s);
    assert_int_equal(gw_store_device_props_put(t, did, "{\"temp\":25}"), 0);
    assert_int_equal(gw_store_device_props_put(t, 404, "{}"), GW_E_NOT_FOUND);
    assert_int_equal(gw_store_device_props_get(t, 404, &s), GW_E_NOT_FOUND);
    big = malloc(70000);
    assert_non_null(big);
    memset(big, ' ', 69999);
    big[69999] = '\0';
    assert_int_equal(gw_store_device_props_put(t, did, big), GW_E_VALUE_TOO_LONG);
    free(big);
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = rtxn(fx);
    assert_int_equal(gw_store_device_props_get(t, did, &s), 0);
    assert_string_equal(s, "{\"temp\":25}");
    free(s);
    gw_store_txn_abort(t);
}

static void test_firmware_crud(void **state)
{
    struct store_fx *fx = *state;
    struct gw_txn *t = wtxn(fx);
    uint64_t pid = mk_product(t, "p", "pk");
    struct gw_firmware f, got;

    memset(&f, 0, sizeof(f));
    f.product_id = pid;
    strcpy(f.name, "first");
    strcpy(f.description, "desc");
    strcpy(f.version, "1.0.0");
    strcpy(f.file_url, "http://127.0.0.1:8080/fw/abc");
    f.file_size = 123456789012ULL;
    strcpy(f.digest_algorithm, "MD5");
    strcpy(f.digest_value, "900150983cd24fb0d6963f7d28e17f72");
    strcpy(f.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    strcpy(f.sign, "MEUCIQ==");
    assert_int_equal(gw_store_firmware_create(t, &f, 4242), 0);
    assert_int_equal(f.id, 1);

    /* Duplicate version is checked before the product exists (as the reference does). */
    memset(&got, 0, sizeof(got));
    got.product_id = pid;
    strcpy(got.version, "1.0.0");
    assert_int_equal(gw_store_firmware_create(t, &got, 0), GW_E_FIRMWARE_VERSION_DUPLICATE);
    got.product_id = 404;
    assert_int_equal(gw_store_firmware_create(t, &got, 0), GW_E_PRODUCT_NOT_EXISTS);
    got.product_id = pid;
    memset(got.file_url, 'u', sizeof(got.file_url));
    strcpy(got.version, "2.0");
    assert_int_equal(gw_store_firmware_create(t, &got, 0), GW_E_VALUE_TOO_LONG);
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = wtxn(fx);
    assert_int_equal(gw_store_firmware_get_by_version(t, pid, "1.0.0", &got), 0);
    assert_int_equal(got.id, f.id);
    assert_string_equal(got.name, "first");
    assert_string_equal(got.description, "desc");
    assert_string_equal(got.file_url, f.file_url);
    assert_true(got.file_size == 123456789012ULL);
    assert_string_equal(got.digest_algorithm, "MD5");
    assert_string_equal(got.digest_value, f.digest_value);
    assert_string_equal(got.sha256, f.sha256);
    assert_string_equal(got.sign, "MEUCIQ==");
    assert_int_equal(got.create_time_ms, 4242);
    assert_int_equal(gw_store_firmware_get_by_version(t, pid, "9.9", &got), GW_E_NOT_FOUND);
    assert_int_equal(gw_store_firmware_get_by_version(t, pid + 1, "1.0.0", &got),
                     GW_E_NOT_FOUND);

    assert_int_equal(gw_store_firmware_get(t, f.id, &got), 0);
    strcpy(got.name, "renamed");
    strcpy(got.description, "new desc");
    assert_int_equal(gw_store_firmware_put(t, &got), 0);
    strcpy(got.version, "1.0.1");
    assert_int_equal(gw_store_firmware_put(t, &got), -EINVAL);
    strcpy(got.version, "1.0.0");
    got.product_id = 5;
    assert_int_equal(gw_store_firmware_put(t, &got), -EINVAL);
    got.product_id = pid;
    got.id = 77;
    assert_int_equal(gw_store_firmware_put(t, &got), GW_E_NOT_FOUND);
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = rtxn(fx);
    assert_int_equal(gw_store_firmware_get(t, f.id, &got), 0);
    assert_string_equal(got.name, "renamed");
    assert_string_equal(got.description, "new desc");
    gw_store_txn_abort(t);
}

static int collect_product(void *ctx, const struct gw_product *p)
{
    return id_list_add(ctx, p->id);
}

static int collect_firmware(void *ctx, const struct gw_firmware *f)
{
    return id_list_add(ctx, f->id);
}

static void test_iterators(void **state)
{
    struct store_fx *fx = *state;
    struct gw_txn *t = wtxn(fx);
    struct id_list l;
    uint64_t pid = 0;
    char name[16];

    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "p%d", i);
        pid = mk_product(t, name, name);
        snprintf(name, sizeof(name), "d%d", i);
        mk_device(t, pid, name);
        snprintf(name, sizeof(name), "v%d", i);
        mk_firmware(t, pid, name);
    }
    assert_int_equal(gw_store_txn_commit(t), 0);

    t = rtxn(fx);
    memset(&l, 0, sizeof(l));
    assert_int_equal(gw_store_product_iter(t, false, 0, collect_product, &l), 0);
    assert_int_equal(l.n, 10);
    for (size_t i = 0; i < l.n; i++)
        assert_int_equal(l.ids[i], i + 1);

    memset(&l, 0, sizeof(l));
    assert_int_equal(gw_store_product_iter(t, true, 0, collect_product, &l), 0);
    assert_int_equal(l.n, 10);
    for (size_t i = 0; i < l.n; i++)
        assert_int_equal(l.ids[i], 10 - i);

    memset(&l, 0, sizeof(l)); /* resume after id 4 */
    assert_int_equal(gw_store_product_iter(t, false, 4, collect_product, &l), 0);
    assert_int_equal(l.n, 6);
    assert_int_equal(l.ids[0], 5);

    memset(&l, 0, sizeof(l)); /* reverse, after id 4: 3, 2, 1 */
    assert_int_equal(gw_store_product_iter(t, true, 4, collect_product, &l), 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.ids[0], 3);
    assert_int_equal(l.ids[2], 1);

    memset(&l, 0, sizeof(l)); /* after an id beyond the last: nothing / everything */
    assert_int_equal(gw_store_product_iter(t, false, 100, collect_product, &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(gw_store_product_iter(t, true, 100, collect_product, &l), 0);
    assert_int_equal(l.n, 10);

    memset(&l, 0, sizeof(l)); /* the callback stops after 3: iterator returns 0 */
    l.stop_after = 3;
    l.stop_rc = 1;
    assert_int_equal(gw_store_device_iter(t, false, 0, collect_device, &l), 0);
    assert_int_equal(l.n, 3);

    memset(&l, 0, sizeof(l)); /* a negative callback result is returned as is */
    l.stop_after = 2;
    l.stop_rc = -ECANCELED;
    assert_int_equal(gw_store_firmware_iter(t, true, 0, collect_firmware, &l), -ECANCELED);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.ids[0], 10);
    gw_store_txn_abort(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_product_create_generates_key_and_secret, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_product_key_unique_and_validated, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_device_create_get_put, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_device_uniqueness_and_errors, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_device_iter_product_prefix, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_device_props, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_firmware_crud, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_iterators, fx_setup, fx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
