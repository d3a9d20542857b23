/*
 * The OTA engine's business rules (DESIGN §5.2, §5.3): firmware create/update, task create
 * with every error code, task and record cancel, statistics, and the device message params.
 * Each rule: the code an administrator sees, and that a refused command wrote nothing.
 */
#include "ota_fixture.h"

#include <cjson/cJSON.h>
#include <errno.h>

static int setup(void **state)
{
    *state = fx_new(NULL, 8);
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

/* What a refused command must leave untouched: the store's row counts and the sink. */
struct snapshot {
    struct gw_store_stats s;
    size_t acts;
};

static struct snapshot snap(struct fx *f)
{
    struct snapshot s = { .acts = f->acts.n };
    assert_int_equal(gw_store_stats(f->txn, &s.s), 0);
    return s;
}

static void assert_unchanged(struct fx *f, const struct snapshot *before)
{
    struct snapshot now = snap(f);
    assert_int_equal(now.s.tasks, before->s.tasks);
    assert_int_equal(now.s.records, before->s.records);
    assert_int_equal(now.s.history, before->s.history);
    assert_int_equal(now.s.firmware, before->s.firmware);
    assert_int_equal(now.acts, before->acts);
}

/* ---- firmware ---- */

static void test_firmware_create(void **state)
{
    struct fx *f = *state;
    struct gw_firmware fw;

    assert_int_equal(gw_store_firmware_get(f->txn, f->fw1, &fw), 0);
    assert_string_equal(fw.version, "1.0");
    assert_string_equal(fw.digest_algorithm, "MD5");
    assert_int_equal(fw.product_id, f->product_id);
}

static void test_firmware_version_duplicate(void **state)
{
    struct fx *f = *state;
    struct gw_firmware fw = { .product_id = f->product_id };
    struct snapshot s = snap(f);

    snprintf(fw.name, sizeof(fw.name), "again");
    snprintf(fw.version, sizeof(fw.version), "1.0");
    assert_int_equal(gw_ota_firmware_create(f->eng, f->txn, &fw, f->now),
                     GW_E_FIRMWARE_VERSION_DUPLICATE);
    assert_int_equal(gw_error_api_code(GW_E_FIRMWARE_VERSION_DUPLICATE), 1050008001LL);
    assert_unchanged(f, &s);
    /* The same version on another product is fine (fixture: other_fw is "1.0" there). */
    assert_true(f->other_fw != 0);
}

static void test_firmware_product_missing(void **state)
{
    struct fx *f = *state;
    struct gw_firmware fw = { .product_id = 999 };
    struct snapshot s = snap(f);

    snprintf(fw.name, sizeof(fw.name), "x");
    snprintf(fw.version, sizeof(fw.version), "9.9");
    assert_int_equal(gw_ota_firmware_create(f->eng, f->txn, &fw, f->now),
                     GW_E_PRODUCT_NOT_EXISTS);
    assert_int_equal(gw_error_api_code(GW_E_PRODUCT_NOT_EXISTS), 1050001000LL);
    fw.name[0] = '\0';
    fw.product_id = f->product_id;
    assert_int_equal(gw_ota_firmware_create(f->eng, f->txn, &fw, f->now), GW_E_MISSING_FIELD);
    assert_unchanged(f, &s);
}

static void test_firmware_update(void **state)
{
    struct fx *f = *state;
    struct gw_firmware fw;

    assert_int_equal(gw_ota_firmware_update(f->eng, f->txn, 999, "n", NULL),
                     GW_E_FIRMWARE_NOT_EXISTS);
    assert_int_equal(gw_error_api_code(GW_E_FIRMWARE_NOT_EXISTS), 1050008000LL);
    assert_int_equal(gw_ota_firmware_update(f->eng, f->txn, f->fw1, "", NULL),
                     GW_E_MISSING_FIELD);
    assert_int_equal(gw_ota_firmware_update(f->eng, f->txn, f->fw1, NULL, "about"), 0);
    assert_int_equal(gw_ota_firmware_update(f->eng, f->txn, f->fw1, "renamed", NULL), 0);
    assert_int_equal(gw_store_firmware_get(f->txn, f->fw1, &fw), 0);
    assert_string_equal(fw.name, "renamed");
    assert_string_equal(fw.description, "about");
    assert_string_equal(fw.version, "1.0"); /* immutable */
}

/* ---- task create ---- */

static void test_task_create_records(void **state)
{
    struct fx *f = *state;
    struct gw_device d = fx_get_device(f, f->dev[1]);
    uint64_t ids[] = { f->dev[0], f->dev[1], f->dev[0] }; /* a duplicate counts once */
    struct gw_task t;
    uint64_t tid;

    d.firmware_id = f->fw1;
    assert_int_equal(gw_store_device_put(f->txn, &d), 0);
    assert_int_equal(fx_task_rc(f, f->fw2, "t", GW_SCOPE_SELECT, ids, 3, NULL, &tid), 0);
    t = fx_get_task(f, tid);
    assert_int_equal(t.status, GW_TASK_IN_PROGRESS);
    assert_int_equal(t.device_scope, GW_SCOPE_SELECT);
    assert_int_equal(t.device_total_count, 2);
    assert_int_equal(t.device_success_count, 0);
    assert_int_equal(t.status_count[0], 2);
    assert_int_equal(t.policy.push_timeout_s, GW_OTA_DEFAULT_PUSH_TIMEOUT_S);
    assert_int_equal(fx_record_of(f, tid, f->dev[0]).from_firmware_id, 0);
    assert_int_equal(fx_record_of(f, tid, f->dev[1]).from_firmware_id, f->fw1);
    assert_int_equal(fx_record_of(f, tid, f->dev[1]).status, GW_RECORD_PENDING);
    assert_int_equal(fx_record_of(f, tid, f->dev[1]).firmware_id, f->fw2);
    assert_int_equal(f->acts.n, 0); /* all offline: nothing pushed */
    fx_check_task(f, tid);
}

static void test_task_create_overrides(void **state)
{
    struct fx *f = *state;
    struct gw_ota_overrides o;
    struct gw_task t;
    uint64_t tid;

    gw_ota_overrides_init(&o);
    o.max_concurrent = 2;
    o.push_timeout_s = 0;
    o.abort_failure_ratio = 0.25;
    tid = fx_task(f, "t", 1, &o);
    t = fx_get_task(f, tid);
    assert_int_equal(t.policy.max_concurrent, 2);
    assert_int_equal(t.policy.push_timeout_s, 0);
    assert_true(t.policy.abort_failure_ratio == 0.25);
    assert_int_equal(t.policy.max_retries, GW_OTA_DEFAULT_MAX_RETRIES); /* kept */
}

static void test_task_create_firmware_missing(void **state)
{
    struct fx *f = *state;
    struct snapshot s = snap(f);
    uint64_t tid;

    assert_int_equal(fx_task_rc(f, 999, "t", GW_SCOPE_SELECT, f->dev, 1, NULL, &tid),
                     GW_E_FIRMWARE_NOT_EXISTS);
    assert_unchanged(f, &s);
}

static void test_task_create_name_duplicate(void **state)
{
    struct fx *f = *state;
    struct snapshot s;
    uint64_t tid;

    fx_task(f, "same", 1, NULL);
    s = snap(f);
    assert_int_equal(fx_task_rc(f, f->fw2, "same", GW_SCOPE_SELECT, &f->dev[1], 1, NULL, &tid),
                     GW_E_TASK_NAME_DUPLICATE);
    assert_int_equal(gw_error_api_code(GW_E_TASK_NAME_DUPLICATE), 1050008101LL);
    assert_unchanged(f, &s);
    /* Unique per firmware only. */
    assert_int_equal(fx_task_rc(f, f->fw1, "same", GW_SCOPE_SELECT, &f->dev[1], 1, NULL, &tid),
                     0);
}

static void test_task_create_device_not_exists(void **state)
{
    struct fx *f = *state;
    uint64_t missing[] = { f->dev[0], 999 };
    uint64_t foreign[] = { f->dev[0], f->other_dev };
    struct snapshot s = snap(f);
    uint64_t tid;

    assert_int_equal(fx_task_rc(f, f->fw2, "t", GW_SCOPE_SELECT, missing, 2, NULL, &tid),
                     GW_E_DEVICE_NOT_EXISTS);
    assert_int_equal(fx_task_rc(f, f->fw2, "t", GW_SCOPE_SELECT, foreign, 2, NULL, &tid),
                     GW_E_DEVICE_NOT_EXISTS);
    assert_int_equal(gw_error_api_code(GW_E_DEVICE_NOT_EXISTS), 1050003000LL);
    assert_unchanged(f, &s);
}

static void test_task_create_device_on_firmware(void **state)
{
    struct fx *f = *state;
    struct gw_device d = fx_get_device(f, f->dev[2]);
    struct snapshot s;
    uint64_t ids[3], tid;

    fx_task(f, "busy", 1, NULL); /* dev0 now has an active record */
    d.firmware_id = f->fw2;
    assert_int_equal(gw_store_device_put(f->txn, &d), 0);
    s = snap(f);
    /* dev0 upgrading and dev2 already on fw2: the firmware rule is checked first. */
    ids[0] = f->dev[0];
    ids[1] = f->dev[1];
    ids[2] = f->dev[2];
    assert_int_equal(fx_task_rc(f, f->fw2, "t", GW_SCOPE_SELECT, ids, 3, NULL, &tid),
                     GW_E_TASK_DEVICE_ON_FIRMWARE);
    assert_int_equal(gw_error_api_code(GW_E_TASK_DEVICE_ON_FIRMWARE), 1050008102LL);
    assert_unchanged(f, &s);
}

static void test_task_create_device_upgrading(void **state)
{
    struct fx *f = *state;
    struct snapshot s;
    uint64_t tid;

    fx_task(f, "busy", 2, NULL);
    s = snap(f);
    /* An active record on any firmware blocks the device (fix: its own code 105). */
    assert_int_equal(fx_task_rc(f, f->fw1, "t", GW_SCOPE_SELECT, &f->dev[1], 1, NULL, &tid),
                     GW_E_TASK_DEVICE_UPGRADING);
    assert_int_equal(gw_error_api_code(GW_E_TASK_DEVICE_UPGRADING), 1050008105LL);
    assert_unchanged(f, &s);
}

static void test_task_create_empty(void **state)
{
    struct fx *f = *state;
    struct snapshot s = snap(f);
    uint64_t tid;

    assert_int_equal(fx_task_rc(f, f->fw2, "t", GW_SCOPE_SELECT, f->dev, 0, NULL, &tid),
                     GW_E_TASK_NO_DEVICE);
    assert_int_equal(gw_error_api_code(GW_E_TASK_NO_DEVICE), 1050008103LL);
    assert_unchanged(f, &s);
}

static void test_task_create_bad_input(void **state)
{
    struct fx *f = *state;
    struct gw_ota_overrides o;
    char longname[GW_NAME_MAX + 2];
    struct snapshot s = snap(f);
    uint64_t tid;

    assert_int_equal(fx_task_rc(f, f->fw2, "t", 3, f->dev, 1, NULL, &tid), GW_E_BAD_FIELD);
    assert_int_equal(fx_task_rc(f, f->fw2, "", GW_SCOPE_SELECT, f->dev, 1, NULL, &tid),
                     GW_E_MISSING_FIELD);
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(fx_task_rc(f, f->fw2, longname, GW_SCOPE_SELECT, f->dev, 1, NULL, &tid),
                     GW_E_VALUE_TOO_LONG);
    gw_ota_overrides_init(&o);
    o.abort_failure_ratio = 1.5;
    assert_int_equal(fx_task_rc(f, f->fw2, "t", GW_SCOPE_SELECT, f->dev, 1, &o, &tid),
                     GW_E_BAD_FIELD);
    gw_ota_overrides_init(&o);
    o.rate_per_minute = (int64_t)GW_OTA_RATE_MAX + 1;
    assert_int_equal(fx_task_rc(f, f->fw2, "t", GW_SCOPE_SELECT, f->dev, 1, &o, &tid),
                     GW_E_BAD_FIELD);
    assert_unchanged(f, &s);
}

static void test_task_create_scope_all(void **state)
{
    struct fx *f = *state;
    struct gw_device d = fx_get_device(f, f->dev[3]);
    struct gw_task t;
    uint64_t tid, busy;

    busy = fx_task(f, "busy", 2, NULL); /* dev0, dev1 active */
    d.firmware_id = f->fw2;             /* dev3 already on fw2 */
    assert_int_equal(gw_store_device_put(f->txn, &d), 0);
    assert_int_equal(fx_task_rc(f, f->fw2, "all", GW_SCOPE_ALL, NULL, 0, NULL, &tid), 0);
    t = fx_get_task(f, tid);
    assert_int_equal(t.device_scope, GW_SCOPE_ALL);
    assert_int_equal(t.device_total_count, f->ndev - 3);
    fx_check_task(f, tid);
    fx_check_task(f, busy);
    /* Everything left is busy or on the firmware: none left. */
    assert_int_equal(fx_task_rc(f, f->fw2, "all2", GW_SCOPE_ALL, NULL, 0, NULL, &tid),
                     GW_E_TASK_NO_DEVICE);
}

static void test_task_create_pushes_online(void **state)
{
    struct fx *f = *state;
    const struct gw_ota_action *a;
    struct gw_record r;
    uint64_t tid;

    fx_online(f, f->dev[0]);
    tid = fx_task(f, "t", 2, NULL);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_PUSH_UPGRADE, 0), 1);
    r = fx_record_of(f, tid, f->dev[0]);
    assert_int_equal(r.status, GW_RECORD_PUSHED);
    assert_int_equal(r.attempts, 1);
    a = fx_last_action(f, GW_OTA_ACT_PUSH_UPGRADE, r.id);
    assert_non_null(a);
    assert_int_equal(a->device_id, f->dev[0]);
    assert_int_equal(a->task_id, tid);
    assert_int_equal(a->firmware_id, f->fw2);
    assert_int_equal(a->attempt, 1);
    assert_int_equal(fx_status(f, tid, f->dev[1]), GW_RECORD_PENDING);
    fx_check_task(f, tid);
}

/* ---- cancel ---- */

static void test_task_cancel(void **state)
{
    struct fx *f = *state;
    struct gw_record r;
    struct gw_task t;
    uint64_t tid;

    fx_online(f, f->dev[0]);
    tid = fx_task(f, "t", 3, NULL);
    assert_int_equal(gw_ota_task_cancel(f->eng, f->txn, 999, f->now, &f->acts),
                     GW_E_TASK_NOT_EXISTS);
    assert_int_equal(gw_error_api_code(GW_E_TASK_NOT_EXISTS), 1050008100LL);
    gw_ota_actions_clear(&f->acts);
    assert_int_equal(gw_ota_task_cancel(f->eng, f->txn, tid, f->now, &f->acts), 0);
    t = fx_get_task(f, tid);
    assert_int_equal(t.status, GW_TASK_CANCELLED);
    assert_string_equal(t.end_reason, GW_OTA_END_REASON_ADMIN);
    for (int i = 0; i < 3; i++) {
        r = fx_record_of(f, tid, f->dev[i]);
        assert_int_equal(r.status, GW_RECORD_CANCELLED);
        assert_string_equal(r.description, GW_OTA_DESC_CANCEL_TASK);
    }
    /* Only the pushed device gets the hint. */
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_SEND_CANCEL, 0), 1);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_SEND_CANCEL, f->dev[0]), 1);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_TASK_ENDED, 0), 1);
    assert_int_equal(f->acts.v[f->acts.n - 1].task_status, GW_TASK_CANCELLED);
    fx_check_task(f, tid);
    assert_int_equal(gw_ota_task_cancel(f->eng, f->txn, tid, f->now, &f->acts),
                     GW_E_TASK_NOT_IN_PROGRESS);
    assert_int_equal(gw_error_api_code(GW_E_TASK_NOT_IN_PROGRESS), 1050008104LL);
    /* The devices are free for a new task. */
    fx_task(f, "next", 3, NULL);
}

static void test_record_cancel(void **state)
{
    struct fx *f = *state;
    struct gw_record r0, r1;
    uint64_t tid;

    fx_online(f, f->dev[0]);
    tid = fx_task(f, "t", 2, NULL);
    r0 = fx_record_of(f, tid, f->dev[0]); /* pushed */
    r1 = fx_record_of(f, tid, f->dev[1]); /* pending */
    assert_int_equal(gw_ota_record_cancel(f->eng, f->txn, 999, f->now, &f->acts),
                     GW_E_RECORD_NOT_EXISTS);
    assert_int_equal(gw_error_api_code(GW_E_RECORD_NOT_EXISTS), 1050008200LL);
    gw_ota_actions_clear(&f->acts);
    assert_int_equal(gw_ota_record_cancel(f->eng, f->txn, r1.id, f->now, &f->acts), 0);
    assert_int_equal(f->acts.n, 0); /* never pushed: no hint */
    r1 = fx_get_record(f, r1.id);
    assert_int_equal(r1.status, GW_RECORD_CANCELLED);
    assert_string_equal(r1.description, GW_OTA_DESC_CANCEL_RECORD);
    assert_int_equal(fx_get_task(f, tid).status, GW_TASK_IN_PROGRESS);
    assert_int_equal(gw_ota_record_cancel(f->eng, f->txn, r1.id, f->now, &f->acts),
                     GW_E_RECORD_NOT_ACTIVE);
    assert_int_equal(gw_error_api_code(GW_E_RECORD_NOT_ACTIVE), 1050008201LL);
    /* The last active record: hint, then the end check ends the task. */
    assert_int_equal(gw_ota_record_cancel(f->eng, f->txn, r0.id, f->now, &f->acts), 0);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_SEND_CANCEL, f->dev[0]), 1);
    assert_int_equal(fx_get_task(f, tid).status, GW_TASK_ENDED);
    assert_int_equal(fx_count_actions(f, GW_OTA_ACT_TASK_ENDED, 0), 1);
    assert_int_equal(f->acts.v[f->acts.n - 1].task_status, GW_TASK_ENDED);
    fx_check_task(f, tid);
}

/* ---- statistics ---- */

static void test_statistics_priority(void **state)
{
    struct fx *f = *state;
    uint64_t c[6], t1, t2;

    fx_all_online(f);
    t1 = fx_task(f, "t1", 4, NULL);
    assert_int_equal(fx_progress(f, f->dev[0], "2.0", GW_RECORD_SUCCESS, 100), 0);
    assert_int_equal(fx_progress(f, f->dev[1], "2.0", GW_RECORD_FAILURE, 10), 0);
    assert_int_equal(gw_ota_record_cancel(f->eng, f->txn, fx_record_of(f, t1, f->dev[2]).id,
                                          f->now, &f->acts), 0);
    /* dev3 stays pushed; dev1 gets a second chance (pending, offline now). */
    fx_offline(f, f->dev[1]);
    assert_int_equal(fx_task_rc(f, f->fw2, "t2", GW_SCOPE_SELECT, &f->dev[1], 1, NULL, &t2), 0);
    assert_int_equal(fx_status(f, t2, f->dev[1]), GW_RECORD_PENDING);
    /* The task-level counts come from the row. */
    assert_int_equal(gw_ota_task_record_counts(f->txn, t1, c), 0);
    assert_int_equal(c[3], 1);
    assert_int_equal(c[4], 1);
    assert_int_equal(c[5], 1);
    assert_int_equal(c[1], 1);
    assert_int_equal(gw_ota_task_record_counts(f->txn, 999, c), GW_E_TASK_NOT_EXISTS);
    /* Per device, first status in 30, 0, 10, 20, 40, 50: dev0 30, dev1 0 (beats 40),
     * dev2 50, dev3 10. */
    assert_int_equal(gw_ota_status_statistics(f->txn, 0, 0, c), 0);
    assert_int_equal(c[gw_record_status_index(GW_RECORD_SUCCESS)], 1);
    assert_int_equal(c[gw_record_status_index(GW_RECORD_PENDING)], 1);
    assert_int_equal(c[gw_record_status_index(GW_RECORD_PUSHED)], 1);
    assert_int_equal(c[gw_record_status_index(GW_RECORD_UPGRADING)], 0);
    assert_int_equal(c[gw_record_status_index(GW_RECORD_FAILURE)], 0);
    assert_int_equal(c[gw_record_status_index(GW_RECORD_CANCELLED)], 1);
    assert_int_equal(gw_ota_status_statistics(f->txn, f->fw2, 0, c), 0);
    assert_int_equal(c[0] + c[1] + c[2] + c[3] + c[4] + c[5], 4);
    assert_int_equal(gw_ota_status_statistics(f->txn, f->fw2, t1, c), 0);
    assert_int_equal(c[gw_record_status_index(GW_RECORD_FAILURE)], 1);
    assert_int_equal(gw_ota_status_statistics(f->txn, f->fw1, 0, c), 0);
    assert_int_equal(c[0] + c[1] + c[2] + c[3] + c[4] + c[5], 0);
    assert_int_equal(gw_ota_status_statistics(f->txn, f->fw1, t1, c), 0);
    assert_int_equal(c[0] + c[1] + c[2] + c[3] + c[4] + c[5], 0);
}

/* ---- device message params ---- */

static void test_upgrade_params(void **state)
{
    struct fx *f = *state;
    struct gw_ota_action a = { .kind = GW_OTA_ACT_PUSH_UPGRADE, .task_id = 12,
                               .record_id = 9007199254740993ULL, .firmware_id = f->fw2 };
    struct gw_firmware fw;
    cJSON *p;
    char *s;

    assert_int_equal(gw_store_firmware_get(f->txn, f->fw2, &fw), 0);
    assert_int_equal(gw_ota_upgrade_params(&a, &fw, "http://gw:8080/", "tok123", &p), 0);
    s = cJSON_PrintUnformatted(p);
    assert_string_equal(s,
        "{\"version\":\"2.0\",\"fileUrl\":\"http://gw:8080/firmware/2.0.bin?token=tok123\","
        "\"fileSize\":1024,\"fileDigestAlgorithm\":\"MD5\","
        "\"fileDigestValue\":\"00000000000000000000000000000007\","
        "\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000009\","
        "\"taskId\":\"12\",\"recordId\":\"9007199254740993\"}");
    free(s);
    cJSON_Delete(p);

    /* Absolute URL kept, token appended with &, signature when present. */
    snprintf(fw.file_url, sizeof(fw.file_url), "https://cdn/x.bin?v=2");
    snprintf(fw.sign, sizeof(fw.sign), "MEUCIQ==");
    assert_int_equal(gw_ota_upgrade_params(&a, &fw, "http://gw:8080", "t", &p), 0);
    assert_string_equal(cJSON_GetObjectItem(p, "fileUrl")->valuestring,
                        "https://cdn/x.bin?v=2&token=t");
    assert_string_equal(cJSON_GetObjectItem(p, "sign")->valuestring, "MEUCIQ==");
    cJSON_Delete(p);
    assert_int_equal(gw_ota_upgrade_params(&a, &fw, NULL, NULL, &p), 0);
    assert_string_equal(cJSON_GetObjectItem(p, "fileUrl")->valuestring, "https://cdn/x.bin?v=2");
    cJSON_Delete(p);
    a.firmware_id = f->fw1; /* not this firmware */
    assert_int_equal(gw_ota_upgrade_params(&a, &fw, NULL, NULL, &p), -EINVAL);

    assert_int_equal(gw_ota_cancel_params(&a, "2.0", &p), 0);
    s = cJSON_PrintUnformatted(p);
    assert_string_equal(s, "{\"taskId\":\"12\",\"recordId\":\"9007199254740993\","
                           "\"version\":\"2.0\"}");
    free(s);
    cJSON_Delete(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_firmware_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_firmware_version_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_firmware_product_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_firmware_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_create_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_create_overrides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_create_firmware_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_create_name_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_create_device_not_exists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_create_device_on_firmware, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_create_device_upgrading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_create_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_create_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_create_scope_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_create_pushes_online, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statistics_priority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_params, setup, teardown),
    };
    return cmocka_run_group_tests_name("ota_rules", tests, NULL, NULL);
}
