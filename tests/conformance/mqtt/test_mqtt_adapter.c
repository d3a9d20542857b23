/*
 * DESIGN: conformance test of the MQTT adapter (gateway/adapters/mqtt/) against a real
 * spawned mosquitto 2.0 that loads the real iotgw_auth.so, with MQTT.js devices (device.js)
 * that share no code with paho or libmosquitto. The core is replaced at its seam by a
 * recorder (mqtt_harness.c); the store is a real LMDB store written here the way the gateway
 * writes it, and the plugin reads it.
 *
 * The cases run in order on one adapter, broker and main device; each waits by polling with
 * a deadline; the last one stops the adapter and checks that no broker process is left.
 * Environment (set by ctest): GW_NODE, IOTGW_PLUGIN, GW_TEST_TMP; GW_KEEP_TMP keeps the
 * data directory.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "gw_config.h"
#include "gw_core.h"
#include "gw_error.h"
#include "gw_msg.h"
#include "gw_mqtt.h"
#include "gw_store.h"
#include "mqtt_harness.h"
#include "mqtt_internal.h"

#define PK "pkm"
#define T_POST "/sys/" PK "/dev1/thing/property/post"

/* ---- fixture ---- */

struct fixture {
    struct gw_core core;
    struct gw_store *store;
    char secret1[GW_SECRET_MAX + 1], secret2[GW_SECRET_MAX + 1];
    struct gw_config_adapter cfg;
    struct gw_adapter *ad;
    int port;
    struct dev d1;          /* pkm/dev1 */
    struct rec_session on1; /* its current ONLINE */
};

static struct fixture fx;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int create_devices(void)
{
    struct gw_txn *txn = NULL;
    struct gw_product p;
    struct gw_device d;
    char db[PATH_MAX + 8];
    int rc;

    snprintf(db, sizeof(db), "%s/db", fx.core.data_dir);
    if ((rc = gw_store_open(db, 64, &fx.store)) != 0)
        return rc;
    if ((rc = gw_store_txn_begin(fx.store, true, &txn)) != 0)
        return rc;
    memset(&p, 0, sizeof(p));
    snprintf(p.name, sizeof(p.name), "mqtt test");
    snprintf(p.product_key, sizeof(p.product_key), PK);
    if ((rc = gw_store_product_create(txn, &p, wall_ms())) != 0)
        goto err;
    for (int i = 1; i <= 2; i++) {
        memset(&d, 0, sizeof(d));
        d.product_id = p.id;
        snprintf(d.device_name, sizeof(d.device_name), "dev%d", i);
        if ((rc = gw_store_device_create(txn, &d, wall_ms())) != 0)
            goto err;
        snprintf(i == 1 ? fx.secret1 : fx.secret2, sizeof(fx.secret1), "%s", d.device_secret);
    }
    return gw_store_txn_commit(txn);
err:
    gw_store_txn_abort(txn);
    return rc;
}

static int setup(void **state)
{
    (void)state;
    rec_init();
    signal(SIGPIPE, SIG_IGN);

    const char *tmp = getenv("GW_TEST_TMP") ? getenv("GW_TEST_TMP") : "/tmp";
    snprintf(fx.core.data_dir, sizeof(fx.core.data_dir), "%s/mqtt-XXXXXX", tmp);
    if (!mkdtemp(fx.core.data_dir)) {
        fprintf(stderr, "mkdtemp %s: %s\n", fx.core.data_dir, strerror(errno));
        return -1;
    }
    if (create_devices() != 0)
        return -1;

    fx.cfg.type = GW_CONFIG_ADAPTER_MQTT;
    fx.cfg.name = "mqtt-test";
    snprintf(fx.cfg.listen.host, sizeof(fx.cfg.listen.host), "127.0.0.1");
    fx.cfg.listen.port = 0; /* the adapter picks a free port */
    fx.cfg.u.mqtt.broker = "spawn";
    fx.cfg.u.mqtt.spawn = true;
    fx.cfg.u.mqtt.serializer = GW_CONFIG_SERIALIZER_JSON;
    fx.cfg.u.mqtt.client_id = "iotgw-test";
    /* Small limits, so the buffer-full path is reachable with a handful of messages. */
    fx.cfg.u.mqtt.max_inflight = 2;
    fx.cfg.u.mqtt.max_buffered = 3;
    fx.cfg.u.mqtt.keepalive_s = 10;
    fx.cfg.u.mqtt.broker_queue_mb = 16;

    const struct gw_adapter_ops *ops = gw_mqtt_adapter_type();
    if (strcmp(ops->name, "mqtt") != 0)
        return -1;
    if (ops->create(&fx.core, &fx.cfg, &fx.ad) != 0)
        return -1;
    int rc = ops->start(fx.ad);
    if (rc != 0) {
        fprintf(stderr, "start: %s\n", gw_strerror(rc));
        return -1;
    }
    fx.port = gw__mqtt_adapter_port(fx.ad);
    return fx.port > 0 && gw__mqtt_adapter_broker_pid(fx.ad) > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    dev_stop(&fx.d1);
    if (fx.ad)
        fx.ad->ops->destroy(fx.ad);
    gw_store_close(fx.store);
    rec_fini();
    if (!getenv("GW_KEEP_TMP")) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx.core.data_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", fx.core.data_dir);
    }
    return 0;
}

static struct gw_adapter_stats stats(void)
{
    struct gw_adapter_stats st;
    fx.ad->ops->stats(fx.ad, &st);
    return st;
}

/* Polls the adapter's stats until the counter at offset off reaches want. */
static bool stat_reaches(size_t off, uint64_t want)
{
    for (int64_t end = harness_now_ms() + HARNESS_WAIT_MS; harness_now_ms() < end;) {
        struct gw_adapter_stats st = stats();
        uint64_t v;
        memcpy(&v, (char *)&st + off, sizeof(v));
        if (v >= want)
            return true;
        harness_sleep_ms(10);
    }
    return false;
}
#define WAIT_STAT(field, want) stat_reaches(offsetof(struct gw_adapter_stats, field), (want))

/* ---- the cases (run in this order, sharing one adapter, broker and device) ---- */

/* Connects the main device, subscribes to its topics, and returns the ONLINE/REACHABLE seen
 * from session event index `from` on. */
static void d1_connect(size_t from)
{
    struct rec_session on, re;
    size_t i_on;
    dev_connect(&fx.d1, fx.port, PK, "dev1", fx.secret1, 0);
    assert_true(rec_wait_session(GW_SESSION_ONLINE, "dev1", from, &on, &i_on));
    assert_string_equal(on.pk, PK);
    assert_true(on.seq > 0);
    assert_int_equal(on.session, on.seq);
    assert_false(rec_has_session(GW_SESSION_REACHABLE, "dev1", i_on)); /* not subscribed yet */
    dev_cmd(&fx.d1, "{\"op\":\"subscribe\",\"topic\":\"/sys/" PK "/dev1/#\"}");
    const cJSON *sub = dev_wait(&fx.d1, "suback", NULL);
    assert_non_null(sub);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(sub, "granted"), 0)->valueint, 1);
    assert_true(rec_wait_session(GW_SESSION_REACHABLE, "dev1", i_on, &re, NULL));
    assert_int_equal(re.seq, on.seq);
    assert_int_equal(re.session, on.seq);
    fx.on1 = on;
}

/* A device that connects is ONLINE, and REACHABLE once it subscribed to its topics. */
static void test_presence_online_then_reachable(void **state)
{
    (void)state;
    d1_connect(0);
    assert_int_equal(stats().sessions, 1);
}

/* A JSON property post becomes the right gw_msg; the topic's identity wins. */
static void test_property_post_json(void **state)
{
    (void)state;
    uint64_t in0 = stats().msgs_in;
    dev_publish(&fx.d1, T_POST,
                "{\"id\":\"42\",\"method\":\"thing.property.post\",\"params\":{\"temp\":25},"
                "\"productKey\":\"intruder\",\"deviceName\":\"other\"}");
    struct gw_msg *m = rec_wait_msg("42");
    assert_non_null(m);
    assert_int_equal(m->method, GW_METHOD_PROPERTY_POST);
    assert_false(gw_msg_is_reply(m));
    assert_string_equal(m->product_key, PK);
    assert_string_equal(m->device_name, "dev1");
    assert_int_equal(cJSON_GetObjectItem(m->params, "temp")->valueint, 25);
    assert_ptr_equal(m->origin.adapter, fx.ad);
    assert_int_equal(m->origin.session, fx.on1.seq);
    assert_true(m->report_time > 0);
    gw_msg_unref(m);
    assert_true(WAIT_STAT(msgs_in, in0 + 1));
}

/* The binary serializer (DESIGN §4 vector) is detected by its 0x7E magic. */
static void test_property_post_binary(void **state)
{
    (void)state;
    dev_cmd(&fx.d1,
            "{\"op\":\"publish\",\"topic\":\"%s\",\"hex\":\"7e01010000002a000131"
            "00137468696e672e70726f70657274792e706f73747b2274656d70223a32357d\"}",
            T_POST);
    assert_non_null(dev_wait(&fx.d1, "puback", T_POST));
    struct gw_msg *m = rec_wait_msg("1");
    assert_non_null(m);
    assert_int_equal(m->method, GW_METHOD_PROPERTY_POST);
    assert_string_equal(m->device_name, "dev1");
    assert_int_equal(cJSON_GetObjectItem(m->params, "temp")->valueint, 25);
    gw_msg_unref(m);
}

/* A _reply topic yields a reply: code 0 when the device sent none, its code otherwise. */
static void test_reply_topic_yields_reply(void **state)
{
    const char *topic = "/sys/" PK "/dev1/thing/ota/upgrade_reply";
    (void)state;
    dev_publish(&fx.d1, topic, "{\"id\":\"r1\",\"method\":\"thing.ota.upgrade\",\"data\":{}}");
    struct gw_msg *m = rec_wait_msg("r1");
    assert_non_null(m);
    assert_int_equal(m->method, GW_METHOD_OTA_UPGRADE);
    assert_true(gw_msg_is_reply(m));
    assert_int_equal(m->code, 0);
    gw_msg_unref(m);
    dev_publish(&fx.d1, topic,
                "{\"id\":\"r2\",\"method\":\"thing.ota.upgrade\",\"code\":500,"
                "\"msg\":\"no space\"}");
    m = rec_wait_msg("r2");
    assert_non_null(m);
    assert_true(gw_msg_is_reply(m));
    assert_int_equal(m->code, 500);
    assert_string_equal(m->msg, "no space");
    gw_msg_unref(m);
}

/* Garbage, a method that contradicts the topic, a code on a request topic: counted, not
 * posted, and the adapter keeps working. */
static void test_invalid_publishes_counted(void **state)
{
    (void)state;
    uint64_t d0 = stats().dropped_in;
    dev_publish(&fx.d1, T_POST, "not json at all");
    dev_publish(&fx.d1, T_POST, "{\"id\":\"bad2\",\"method\":\"thing.event.post\",\"params\":{}}");
    dev_publish(&fx.d1, T_POST, "{\"id\":\"bad3\",\"method\":\"thing.property.post\",\"code\":0}");
    dev_publish(&fx.d1, T_POST, "");
    assert_true(WAIT_STAT(dropped_in, d0 + 4));
    dev_publish(&fx.d1, T_POST,
                "{\"id\":\"ok-after-bad\",\"method\":\"thing.property.post\",\"params\":{}}");
    struct gw_msg *m = rec_wait_msg("ok-after-bad");
    assert_non_null(m);
    gw_msg_unref(m);
    assert_int_equal(rec_count_msgs("bad2"), 0);
    assert_int_equal(rec_count_msgs("bad3"), 0);
}

/* A full core queue (-EAGAIN) loses nothing: paho hands the message over again. */
static void test_core_queue_full_redelivered(void **state)
{
    (void)state;
    rec_refuse_posts(3);
    dev_publish(&fx.d1, T_POST,
                "{\"id\":\"retry-me\",\"method\":\"thing.property.post\",\"params\":{\"a\":1}}");
    struct gw_msg *m = rec_wait_msg("retry-me");
    assert_non_null(m);
    gw_msg_unref(m);
    assert_int_equal(rec_refused(), 3);
    assert_int_equal(rec_count_msgs("retry-me"), 1);
}

static struct gw_msg *ota_upgrade(const char *id, const char *dn)
{
    cJSON *p = cJSON_Parse("{\"version\":\"2.0.0\",\"fileUrl\":\"http://127.0.0.1/fw/1?t=x\","
                           "\"fileSize\":1024,\"fileDigestAlgorithm\":\"MD5\","
                           "\"fileDigestValue\":\"0123456789abcdef0123456789abcdef\","
                           "\"taskId\":7,\"recordId\":9}");
    struct gw_msg *m = NULL;
    assert_int_equal(gw_msg_new_request(GW_METHOD_OTA_UPGRADE, id, PK, dn, p, &m), 0);
    m->origin.adapter = fx.ad;
    m->origin.session = fx.on1.seq;
    return m;
}

/* submit(thing.ota.upgrade) reaches the device on /sys/pk/dn/thing/ota/upgrade, QoS 1. */
static void test_submit_ota_upgrade_delivered(void **state)
{
    const char *topic = "/sys/" PK "/dev1/thing/ota/upgrade";
    (void)state;
    uint64_t out0 = stats().msgs_out;
    assert_int_equal(fx.ad->ops->submit(fx.ad, ota_upgrade("down-1", "dev1")), 0);
    const cJSON *ev = dev_wait(&fx.d1, "message", topic);
    assert_non_null(ev);
    assert_int_equal(cJSON_GetObjectItem(ev, "qos")->valueint, 1); /* the device subscribed at 1 */
    cJSON *body = cJSON_Parse(cJSON_GetObjectItem(ev, "payload")->valuestring);
    assert_non_null(body);
    assert_string_equal(cJSON_GetObjectItem(body, "id")->valuestring, "down-1");
    assert_string_equal(cJSON_GetObjectItem(body, "method")->valuestring, "thing.ota.upgrade");
    const cJSON *params = cJSON_GetObjectItem(body, "params");
    assert_string_equal(cJSON_GetObjectItem(params, "version")->valuestring, "2.0.0");
    assert_int_equal(cJSON_GetObjectItem(params, "fileSize")->valueint, 1024);
    cJSON_Delete(body);
    assert_true(WAIT_STAT(msgs_out, out0 + 1)); /* PUBACK from the broker */
}

/* A reply to a device request goes to the request's _reply topic with its id and code, at
 * reply_qos (0 here: the fixture's config struct leaves it zero, as the config default). */
static void test_submit_reply_delivered(void **state)
{
    const char *topic = "/sys/" PK "/dev1/thing/property/post_reply";
    (void)state;
    struct gw_msg *req = rec_wait_msg("42");
    assert_non_null(req);
    struct gw_msg *rep = NULL;
    assert_int_equal(gw_msg_new_reply(req, 0, "success", NULL, &rep), 0);
    gw_msg_unref(req);
    assert_int_equal(fx.ad->ops->submit(fx.ad, rep), 0);
    const cJSON *ev = dev_wait(&fx.d1, "message", topic);
    assert_non_null(ev);
    assert_int_equal(cJSON_GetObjectItem(ev, "qos")->valueint, 0); /* reply_qos defaults to 0 */
    cJSON *body = cJSON_Parse(cJSON_GetObjectItem(ev, "payload")->valuestring);
    assert_non_null(body);
    assert_string_equal(cJSON_GetObjectItem(body, "id")->valuestring, "42");
    assert_int_equal(cJSON_GetObjectItem(body, "code")->valueint, 0);
    assert_string_equal(cJSON_GetObjectItem(body, "method")->valuestring, "thing.property.post");
    cJSON_Delete(body);
}

/* Devices without a session and upstream-only messages are refused at once. */
static void test_submit_refusals(void **state)
{
    struct gw_msg *m = NULL;
    (void)state;
    uint64_t d0 = stats().dropped_out;
    assert_int_equal(fx.ad->ops->submit(fx.ad, ota_upgrade("down-x", "dev2")),
                     GW_E_DEVICE_NOT_CONNECTED);
    assert_int_equal(gw_msg_new_request(GW_METHOD_PROPERTY_POST, "up", PK, "dev1", NULL, &m), 0);
    assert_int_equal(fx.ad->ops->submit(fx.ad, m), -EINVAL);
    assert_int_equal(stats().dropped_out, d0 + 2);
}

/*
 * With the broker frozen, publishes pile up: paho in flight (max_inflight 2), paho's buffer
 * (max_buffered 3, then MQTTASYNC_MAX_BUFFERED_MESSAGES), our queue (3), until submit says
 * -EAGAIN. Every accepted message still reaches the device once the broker runs again.
 */
static void test_paho_buffer_full_retried(void **state)
{
    const char *topic = "/sys/" PK "/dev1/thing/property/set";
    pid_t broker = gw__mqtt_adapter_broker_pid(fx.ad);
    char id[32];
    int accepted = 0, rc = 0;
    (void)state;
    assert_true(broker > 0);
    assert_int_equal(kill(broker, SIGSTOP), 0);
    for (int64_t end = harness_now_ms() + HARNESS_WAIT_MS;
         harness_now_ms() < end && accepted < 100;) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "n", accepted);
        struct gw_msg *m = NULL;
        snprintf(id, sizeof(id), "set-%d", accepted);
        assert_int_equal(gw_msg_new_request(GW_METHOD_PROPERTY_SET, id, PK, "dev1", p, &m), 0);
        rc = fx.ad->ops->submit(fx.ad, m);
        if (rc == -EAGAIN)
            break;
        assert_int_equal(rc, 0);
        accepted++;
        harness_sleep_ms(20); /* pace: let the link thread feed paho between submits */
    }
    assert_int_equal(rc, -EAGAIN);
    assert_true(accepted >= 3 + 3); /* at least paho's buffer and our queue */
    assert_true(stats().queue_depth >= 3);
    assert_int_equal(kill(broker, SIGCONT), 0);
    for (int i = 0; i < accepted; i++) {
        const cJSON *ev = dev_wait(&fx.d1, "message", topic);
        assert_non_null(ev);
        cJSON *body = cJSON_Parse(cJSON_GetObjectItem(ev, "payload")->valuestring);
        snprintf(id, sizeof(id), "set-%d", i);
        assert_string_equal(cJSON_GetObjectItem(body, "id")->valuestring, id); /* in order */
        cJSON_Delete(body);
    }
    assert_int_equal(stats().queue_depth, 0);
}

/* A second connection with the same client id takes over: online(new seq) comes first, the
 * old connection's offline is ignored, and the device stays online until it leaves. */
static void test_takeover_and_offline(void **state)
{
    struct dev a, b;
    struct rec_session on_a, on_b, off;
    size_t ia, ib;
    (void)state;
    size_t n0 = rec_session_count();
    dev_connect(&a, fx.port, PK, "dev2", fx.secret2, 0);
    assert_true(rec_wait_session(GW_SESSION_ONLINE, "dev2", n0, &on_a, &ia));
    dev_connect(&b, fx.port, PK, "dev2", fx.secret2, 0);
    assert_true(rec_wait_session(GW_SESSION_ONLINE, "dev2", ia + 1, &on_b, &ib));
    assert_true(on_b.seq > on_a.seq);
    assert_non_null(dev_wait(&a, "close", NULL));
    /* b's publish follows the plugin's offline(a) on the gateway's subscription */
    dev_publish(&b, "/sys/" PK "/dev2/thing/event/post",
                "{\"id\":\"after-takeover\",\"method\":\"thing.event.post\","
                "\"params\":{\"identifier\":\"x\",\"value\":{}}}");
    struct gw_msg *m = rec_wait_msg("after-takeover");
    assert_non_null(m);
    assert_int_equal(m->origin.session, on_b.seq);
    gw_msg_unref(m);
    assert_false(rec_has_session(GW_SESSION_OFFLINE, "dev2", n0));
    assert_int_equal(stats().sessions, 2);
    dev_stop(&b);
    assert_true(rec_wait_session(GW_SESSION_OFFLINE, "dev2", n0, &off, NULL));
    assert_int_equal(off.seq, on_b.seq);
    dev_stop(&a);
    assert_int_equal(stats().sessions, 1);
}

/* broker "tcp://host:port": a second adapter joins the running broker (same data directory,
 * so the same gateway secret), sees device messages, and its stop leaves the broker alone. */
static void test_external_broker_mode(void **state)
{
    struct gw_config_adapter cfg = fx.cfg;
    struct gw_adapter *ad2 = NULL;
    char uri[64];
    (void)state;
    snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", fx.port);
    cfg.name = "mqtt-ext";
    cfg.u.mqtt.broker = uri;
    cfg.u.mqtt.spawn = false;
    snprintf(cfg.u.mqtt.broker_addr.host, sizeof(cfg.u.mqtt.broker_addr.host), "127.0.0.1");
    cfg.u.mqtt.broker_addr.port = fx.port;
    cfg.u.mqtt.client_id = "iotgw-test-ext";
    assert_int_equal(fx.ad->ops->create(&fx.core, &cfg, &ad2), 0);
    assert_int_equal(ad2->ops->start(ad2), 0);
    assert_true(gw__mqtt_adapter_link_up(ad2));
    assert_int_equal(gw__mqtt_adapter_broker_pid(ad2), 0);
    dev_publish(&fx.d1, T_POST,
                "{\"id\":\"both\",\"method\":\"thing.property.post\",\"params\":{}}");
    struct gw_msg *m = rec_wait_msg_from("both", ad2);
    assert_non_null(m);
    assert_string_equal(m->device_name, "dev1");
    gw_msg_unref(m);
    m = rec_wait_msg_from("both", fx.ad);
    assert_non_null(m);
    gw_msg_unref(m);
    pid_t broker = gw__mqtt_adapter_broker_pid(fx.ad);
    ad2->ops->destroy(ad2);
    assert_int_equal(kill(broker, 0), 0); /* still running */
    assert_true(gw__mqtt_adapter_link_up(fx.ad));
}

/* A port someone else listens on: start fails at once with -EADDRINUSE, nothing is left. */
static void test_port_in_use_refused(void **state)
{
    struct gw_config_adapter cfg = fx.cfg;
    struct gw_core core2 = fx.core;
    struct gw_adapter *ad2 = NULL;
    (void)state;
    assert_true(strlen(fx.core.data_dir) + sizeof("/second") <= sizeof(core2.data_dir));
    memcpy(core2.data_dir + strlen(fx.core.data_dir), "/second", sizeof("/second"));
    assert_int_equal(mkdir(core2.data_dir, 0700), 0);
    cfg.name = "mqtt-busy";
    cfg.listen.port = fx.port; /* our broker's */
    assert_int_equal(fx.ad->ops->create(&core2, &cfg, &ad2), 0);
    assert_int_equal(ad2->ops->start(ad2), -EADDRINUSE);
    assert_int_equal(gw__mqtt_adapter_broker_pid(ad2), 0);
    ad2->ops->destroy(ad2);
}

/*
 * The broker dies: ALL_OFFLINE, a new broker, the gateway reconnects and resubscribes, the
 * device can log in again (with a larger seq) and messages flow both ways. The device comes
 * back only once the gateway is subscribed again: presence published before that is lost
 * (see the adapter's DESIGN note), and this test wants a deterministic order.
 */
static void test_broker_killed_restarts(void **state)
{
    size_t i_all;
    (void)state;
    pid_t old = gw__mqtt_adapter_broker_pid(fx.ad);
    uint64_t old_seq = fx.on1.seq;
    size_t n0 = rec_session_count();
    assert_int_equal(kill(old, SIGKILL), 0);
    assert_true(rec_wait_session(GW_SESSION_ALL_OFFLINE, NULL, n0, NULL, &i_all));
    assert_non_null(dev_wait(&fx.d1, "close", NULL));
    assert_int_equal(stats().sessions, 0);
    pid_t now = 0;
    for (int64_t end = harness_now_ms() + 3 * HARNESS_WAIT_MS; harness_now_ms() < end;) {
        now = gw__mqtt_adapter_broker_pid(fx.ad);
        if (now > 0 && now != old && gw__mqtt_adapter_link_up(fx.ad))
            break;
        harness_sleep_ms(20);
    }
    assert_true(now > 0 && now != old);
    assert_true(gw__mqtt_adapter_link_up(fx.ad));
    dev_stop(&fx.d1);
    d1_connect(i_all + 1);
    assert_true(fx.on1.seq > old_seq); /* the core's "newer connection" order holds */
    dev_publish(&fx.d1, T_POST,
                "{\"id\":\"after-restart\",\"method\":\"thing.property.post\",\"params\":{}}");
    struct gw_msg *m = rec_wait_msg("after-restart");
    assert_non_null(m);
    assert_int_equal(m->origin.session, fx.on1.seq);
    gw_msg_unref(m);
    assert_int_equal(fx.ad->ops->submit(fx.ad, ota_upgrade("down-2", "dev1")), 0);
    assert_non_null(dev_wait(&fx.d1, "message", "/sys/" PK "/dev1/thing/ota/upgrade"));
}

/* stop: the broker is gone (no orphan), devices are disconnected, submit refuses. */
static void test_stop_is_clean(void **state)
{
    (void)state;
    pid_t broker = gw__mqtt_adapter_broker_pid(fx.ad);
    dev_forget(&fx.d1);
    fx.ad->ops->stop(fx.ad);
    assert_int_equal(kill(broker, 0), -1);
    assert_int_equal(errno, ESRCH);
    assert_int_equal(gw__mqtt_adapter_broker_pid(fx.ad), 0);
    assert_non_null(dev_wait(&fx.d1, "close", NULL));
    assert_int_equal(stats().sessions, 0);
    assert_int_equal(fx.ad->ops->submit(fx.ad, ota_upgrade("down-3", "dev1")), GW_E_SHUTDOWN);
    fx.ad->ops->stop(fx.ad); /* idempotent */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presence_online_then_reachable),
        cmocka_unit_test(test_property_post_json),
        cmocka_unit_test(test_property_post_binary),
        cmocka_unit_test(test_reply_topic_yields_reply),
        cmocka_unit_test(test_invalid_publishes_counted),
        cmocka_unit_test(test_core_queue_full_redelivered),
        cmocka_unit_test(test_submit_ota_upgrade_delivered),
        cmocka_unit_test(test_submit_reply_delivered),
        cmocka_unit_test(test_submit_refusals),
        cmocka_unit_test(test_paho_buffer_full_retried),
        cmocka_unit_test(test_takeover_and_offline),
        cmocka_unit_test(test_external_broker_mode),
        cmocka_unit_test(test_port_in_use_refused),
        cmocka_unit_test(test_broker_killed_restarts),
        cmocka_unit_test(test_stop_is_clean),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
