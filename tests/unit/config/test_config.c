/*
 * Unit tests of the configuration loader: defaults, overrides, every option type's bad
 * values with the exact message a user sees, syntax errors with their location, comments,
 * the shipped config/iotgw.json (loads, and documents exactly the options of the table),
 * printing round trips and the help text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gw_config.h"
#include "gw_error.h"

#define SHIPPED GW_TEST_DATA_DIR "/../config/iotgw.json"

static struct gw_config *load_ok(const char *json)
{
    struct gw_config *cfg = NULL;
    char err[512] = "";
    int rc = gw_config_load_string(json, strlen(json), &cfg, err, sizeof(err));

    if (rc != 0)
        fail_msg("load failed (%d): %s\n  input: %s", rc, err, json);
    assert_non_null(cfg);
    return cfg;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long len;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    assert_true(len > 0);
    rewind(f);
    buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    return buf;
}

static char *print_to_string(const struct gw_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    assert_non_null(f);
    assert_int_equal(gw_config_print(cfg, f), 0);
    fclose(f);
    return text;
}

/* ---- defaults and overrides --------------------------------------------------------- */

static void test_defaults_filled(void **state)
{
    (void)state;
    struct gw_config *cfg = load_ok("{}");

    assert_string_equal(cfg->data_dir, "var/iotgw");
    assert_int_equal(cfg->log_level, GW_LOG_INFO);
    assert_string_equal(cfg->admin.listen.host, "127.0.0.1");
    assert_int_equal(cfg->admin.listen.port, 8080);
    assert_string_equal(cfg->admin.token, "");
    assert_string_equal(cfg->firmware.base_url, "http://127.0.0.1:8080");
    assert_string_equal(cfg->firmware.sign_key, "");
    assert_int_equal(cfg->storage.map_size_mb, 1024);
    assert_int_equal(cfg->ota.push_timeout_s, 300);
    assert_int_equal(cfg->ota.upgrade_timeout_s, 1800);
    assert_int_equal(cfg->ota.max_retries, 3);
    assert_int_equal(cfg->ota.retry_backoff_s, 30);
    assert_int_equal(cfg->ota.max_concurrent, 0);
    assert_int_equal(cfg->ota.rate_per_minute, 0);
    assert_true(cfg->ota.abort_failure_ratio == 0.0);
    assert_int_equal(cfg->ota.abort_min_sample, 10);
    assert_int_equal(cfg->ota.tick_ms, 1000);
    assert_int_equal(cfg->core.queue_size, 65536);
    assert_int_equal(cfg->core.batch_max, 1000);
    assert_int_equal(cfg->adapter_count, 0);
    assert_null(cfg->adapters);
    gw_config_free(cfg);
}

static void test_adapter_defaults(void **state)
{
    (void)state;
    struct gw_config *cfg = load_ok(
        "{\"adapters\":[{\"type\":\"mqtt\"},{\"type\":\"coap\"},{\"type\":\"http\"},"
        "{\"type\":\"websocket\"},{\"type\":\"tcp\"},{\"type\":\"udp\"},"
        "{\"type\":\"modbus_tcp_client\"},{\"type\":\"modbus_tcp_server\"}]}");
    const struct gw_config_adapter *a = cfg->adapters;
    static const int ports[] = { 1883, 5683, 8092, 8094, 8091, 8093, 0, 1502 };

    assert_int_equal(cfg->adapter_count, GW_CONFIG_ADAPTER__COUNT);
    for (int i = 0; i < GW_CONFIG_ADAPTER__COUNT; i++) {
        assert_int_equal(a[i].type, i);
        /* name defaults to the type */
        assert_string_equal(a[i].name, gw_config_adapter_type_name(a[i].type));
        assert_int_equal(a[i].listen.port, ports[i]);
        assert_string_equal(a[i].listen.host, ports[i] ? "127.0.0.1" : "");
    }
    assert_string_equal(a[0].u.mqtt.broker, "spawn");
    assert_true(a[0].u.mqtt.spawn);
    assert_int_equal(a[0].u.mqtt.serializer, GW_CONFIG_SERIALIZER_JSON);
    assert_string_equal(a[0].u.mqtt.client_id, "iotgw");
    assert_int_equal(a[0].u.mqtt.max_buffered, 10000);
    assert_int_equal(a[0].u.mqtt.keepalive_s, 60);
    assert_int_equal(a[0].u.mqtt.reply_qos, 0);
    assert_int_equal(a[0].u.mqtt.broker_queue_mb, 256);
    assert_string_equal(a[1].u.coap.dtls_listen.host, "");
    assert_int_equal(a[1].u.coap.block_size, 1024);
    assert_int_equal(a[2].u.http.max_wait_s, 30);
    assert_string_equal(a[3].u.websocket.path, "/ws");
    assert_int_equal(a[3].u.websocket.idle_timeout_s, 300);
    assert_int_equal(a[4].u.tcp.framing.type, GW_FRAMER_DELIMITER);
    assert_int_equal(a[4].u.tcp.framing.delimiter_len, 1);
    assert_int_equal(a[4].u.tcp.framing.delimiter[0], '\n');
    assert_int_equal(a[4].u.tcp.framing.length_field_size, 4);
    assert_int_equal(a[4].u.tcp.framing.initial_bytes_to_strip, 4);
    assert_int_equal(a[4].u.tcp.max_connections, 10000);
    assert_int_equal(a[4].u.tcp.idle_timeout_s, 300);
    assert_int_equal(a[4].u.tcp.write_queue_max_bytes, 1048576);
    assert_true(a[4].u.tcp.nodelay);
    assert_int_equal(a[5].u.udp.session_timeout_s, 120);
    assert_int_equal(a[6].u.modbus_client.device_count, 0);
    assert_int_equal(a[7].u.modbus_server.custom_function_code, 65);
    gw_config_free(cfg);
}

static void test_overrides(void **state)
{
    (void)state;
    struct gw_config *cfg = load_ok(
        "{\"data_dir\":\"/srv/gw\",\"log_level\":\"debug\","
        "\"admin\":{\"listen\":\"[::1]:9000\",\"token\":\"0123456789abcdefXYZ\"},"
        "\"firmware\":{\"base_url\":\"https://fw.example.com/base/\"},"
        "\"storage\":{\"map_size_mb\":16},"
        "\"ota\":{\"max_retries\":0,\"abort_failure_ratio\":0.25,\"max_concurrent\":50,"
        "\"rate_per_minute\":600,\"tick_ms\":10},"
        "\"core\":{\"queue_size\":16,\"batch_max\":1},"
        "\"adapters\":["
        "{\"type\":\"mqtt\",\"name\":\"m1\",\"broker\":\"tcp://10.0.0.5:1884\","
        " \"serializer\":\"binary\",\"keepalive_s\":0,\"reply_qos\":1},"
        "{\"type\":\"coap\",\"listen\":\"0.0.0.0:0\",\"dtls_listen\":\"127.0.0.1:5684\","
        " \"block_size\":16},"
        "{\"type\":\"tcp\",\"listen\":\"127.0.0.1:0\",\"nodelay\":false,\"framing\":"
        " {\"type\":\"length_field\",\"length_field_size\":2,\"length_field_offset\":3,"
        "  \"length_adjustment\":-5}},"
        "{\"type\":\"tcp\",\"name\":\"tcp2\",\"listen\":\"127.0.0.1:0\",\"framing\":"
        " {\"delimiter\":\"\\\\r\\\\n\"}},"
        "{\"type\":\"modbus_tcp_client\",\"devices\":[{\"productKey\":\"pk\","
        " \"deviceName\":\"meter-1\",\"host\":\"127.0.0.1\",\"port\":1502,\"unitId\":0,"
        " \"otaBase\":4096,\"points\":["
        "  {\"identifier\":\"temperature\",\"functionCode\":3,\"address\":0,"
        "   \"rawType\":\"FLOAT\",\"byteOrder\":\"CDAB\",\"scale\":0.1,\"pollIntervalMs\":500},"
        "  {\"identifier\":\"on\",\"functionCode\":1,\"address\":7,\"rawType\":\"BOOLEAN\"},"
        "  {\"identifier\":\"e\",\"functionCode\":4,\"address\":65532,\"rawType\":\"DOUBLE\"}]}]},"
        "{\"type\":\"modbus_tcp_server\",\"customFunctionCode\":72,\"devices\":["
        " {\"productKey\":\"pk\",\"deviceName\":\"meter-1\",\"otaBase\":null}]}"
        "]}");
    const struct gw_config_adapter *a = cfg->adapters;

    assert_string_equal(cfg->data_dir, "/srv/gw");
    assert_int_equal(cfg->log_level, GW_LOG_DEBUG);
    assert_string_equal(cfg->admin.listen.host, "::1");
    assert_int_equal(cfg->admin.listen.port, 9000);
    assert_string_equal(cfg->admin.token, "0123456789abcdefXYZ");
    assert_string_equal(cfg->firmware.base_url, "https://fw.example.com/base"); /* no '/' */
    assert_int_equal(cfg->storage.map_size_mb, 16);
    assert_int_equal(cfg->ota.max_retries, 0);
    assert_true(cfg->ota.abort_failure_ratio == 0.25);
    assert_int_equal(cfg->ota.max_concurrent, 50);
    assert_int_equal(cfg->ota.rate_per_minute, 600);
    assert_int_equal(cfg->ota.tick_ms, 10);
    assert_int_equal(cfg->ota.push_timeout_s, 300); /* untouched keys keep defaults */
    assert_int_equal(cfg->core.queue_size, 16);
    assert_int_equal(cfg->core.batch_max, 1);

    assert_int_equal(cfg->adapter_count, 6);
    assert_string_equal(a[0].name, "m1");
    assert_false(a[0].u.mqtt.spawn);
    assert_string_equal(a[0].u.mqtt.broker_addr.host, "10.0.0.5");
    assert_int_equal(a[0].u.mqtt.broker_addr.port, 1884);
    assert_int_equal(a[0].u.mqtt.serializer, GW_CONFIG_SERIALIZER_BINARY);
    assert_int_equal(a[0].u.mqtt.keepalive_s, 0);
    assert_int_equal(a[0].u.mqtt.reply_qos, 1);
    assert_string_equal(a[1].listen.host, "0.0.0.0");
    assert_int_equal(a[1].listen.port, 0);
    assert_int_equal(a[1].u.coap.dtls_listen.port, 5684);
    assert_int_equal(a[1].u.coap.block_size, 16);

    const struct gw_framer_config *fc = &a[2].u.tcp.framing;
    assert_false(a[2].u.tcp.nodelay);
    assert_int_equal(fc->type, GW_FRAMER_LENGTH_FIELD);
    assert_int_equal(fc->length_field_size, 2);
    assert_int_equal(fc->length_field_offset, 3);
    assert_int_equal(fc->length_adjustment, -5);
    assert_int_equal(fc->initial_bytes_to_strip, 5); /* default: offset + size */
    assert_int_equal(a[3].u.tcp.framing.delimiter_len, 2);
    assert_memory_equal(a[3].u.tcp.framing.delimiter, "\r\n", 2);

    const struct gw_config_modbus_device *d = &a[4].u.modbus_client.devices[0];
    assert_int_equal(a[4].u.modbus_client.device_count, 1);
    assert_string_equal(d->product_key, "pk");
    assert_string_equal(d->device_name, "meter-1");
    assert_string_equal(d->host, "127.0.0.1");
    assert_int_equal(d->port, 1502);
    assert_int_equal(d->unit_id, 0);
    assert_int_equal(d->timeout_ms, 1000);
    assert_int_equal(d->retry_interval_ms, 2000);
    assert_int_equal(d->ota_base, 4096);
    assert_int_equal(d->point_count, 3);
    assert_string_equal(d->points[0].identifier, "temperature");
    assert_int_equal(d->points[0].count, 2); /* FLOAT's width */
    assert_int_equal(d->points[0].raw_type, GW_CONFIG_MODBUS_FLOAT);
    assert_int_equal(d->points[0].byte_order, GW_CONFIG_ORDER_CDAB);
    assert_true(d->points[0].scale == 0.1);
    assert_int_equal(d->points[0].poll_interval_ms, 500);
    assert_int_equal(d->points[1].count, 1);
    assert_int_equal(d->points[1].byte_order, GW_CONFIG_ORDER_AB); /* 16-bit default */
    assert_true(d->points[1].scale == 1.0);
    assert_int_equal(d->points[2].count, 4);
    assert_int_equal(d->points[2].byte_order, GW_CONFIG_ORDER_ABCD); /* wide default */

    assert_int_equal(a[5].u.modbus_server.custom_function_code, 72);
    assert_int_equal(a[5].u.modbus_server.devices[0].ota_base, GW_CONFIG_UNSET);
    assert_null(a[5].u.modbus_server.devices[0].host);
    gw_config_free(cfg);
}

/* ---- bad values: the exact message --------------------------------------------------- */

struct bad_case {
    const char *json;
    const char *message;
};

#define MB_CLIENT(points)                                                                     \
    "{\"adapters\":[{\"type\":\"modbus_tcp_client\",\"devices\":[{\"productKey\":\"p\","  \
    "\"deviceName\":\"d\",\"host\":\"h\",\"points\":[" points "]}]}]}"
#define PT(extra) "{\"identifier\":\"t\",\"functionCode\":3,\"address\":0," extra "}"

static const struct bad_case bad_cases[] = {
    /* wrong JSON type for each option type */
    { "{\"data_dir\":5}", "config: data_dir: expected a string (got number)" },
    { "{\"adapters\":[{\"type\":\"tcp\",\"nodelay\":\"yes\"}]}",
      "config: adapters[0].nodelay: expected true or false (got string)" },
    { "{\"ota\":{\"max_retries\":\"3\"}}", "config: ota.max_retries: expected an integer (got string)" },
    { "{\"ota\":{\"max_retries\":2.5}}", "config: ota.max_retries: expected an integer (got 2.5)" },
    { "{\"ota\":{\"abort_failure_ratio\":true}}",
      "config: ota.abort_failure_ratio: expected a number (got bool)" },
    { "{\"log_level\":3}", "config: log_level: expected a string (got number)" },
    { "{\"admin\":{\"listen\":8080}}", "config: admin.listen: expected \"host:port\" (got number)" },
    { "{\"admin\":[]}", "config: admin: expected an object (got list)" },
    { "{\"adapters\":{}}", "config: adapters: expected a list (got object)" },
    { "{\"adapters\":[\"tcp\"]}", "config: adapters[0]: expected an object (got string)" },
    { "{\"adapters\":[{\"type\":\"tcp\",\"framing\":{\"delimiter\":10}}]}",
      "config: adapters[0].framing.delimiter: expected a string (got number)" },
    { "{\"ota\":{\"tick_ms\":null}}", "config: ota.tick_ms: expected an integer (got null)" },
    /* out of range */
    { "{\"storage\":{\"map_size_mb\":8}}",
      "config: storage.map_size_mb: must be between 16 and 1048576 (got 8)" },
    { "{\"storage\":{\"map_size_mb\":1e300}}",
      "config: storage.map_size_mb: must be between 16 and 1048576 (got 1e+300)" },
    { "{\"ota\":{\"abort_failure_ratio\":1.5}}",
      "config: ota.abort_failure_ratio: must be between 0 and 1 (got 1.5)" },
    { "{\"ota\":{\"abort_failure_ratio\":-0.1}}",
      "config: ota.abort_failure_ratio: must be between 0 and 1 (got -0.1)" },
    { "{\"adapters\":[{\"type\":\"udp\"},{\"type\":\"tcp\",\"framing\":{\"type\":\"length_field\","
      "\"length_field_size\":3}}]}",
      "config: adapters[1].framing.length_field_size: must be 1, 2 or 4 (got 3)" },
    { "{\"adapters\":[{\"type\":\"coap\",\"block_size\":100}]}",
      "config: adapters[0].block_size: must be a power of two: 16, 32, 64, 128, 256, 512 or 1024 "
      "(got 100)" },
    { "{\"adapters\":[{\"type\":\"mqtt\",\"reply_qos\":2}]}",
      "config: adapters[0].reply_qos: must be between 0 and 1 (got 2)" },
    { "{\"adapters\":[{\"type\":\"modbus_tcp_server\",\"customFunctionCode\":64}]}",
      "config: adapters[0].customFunctionCode: must be between 65 and 72 (got 64)" },
    /* bad enum */
    { "{\"log_level\":\"verbose\"}",
      "config: log_level: must be one of error, warn, info, debug (got \"verbose\")" },
    { "{\"adapters\":[{\"type\":\"udp\",\"serializer\":\"xml\"}]}",
      "config: adapters[0].serializer: must be one of json, binary (got \"xml\")" },
    { "{\"adapters\":[{\"type\":\"zigbee\"}]}",
      "config: adapters[0].type: must be one of mqtt, coap, http, websocket, tcp, udp, "
      "modbus_tcp_client, modbus_tcp_server (got \"zigbee\")" },
    { "{\"adapters\":[{\"type\":\"tcp\",\"framing\":{\"type\":\"line\"}}]}",
      "config: adapters[0].framing.type: must be one of delimiter, length_field, fixed_length "
      "(got \"line\")" },
    /* bad listen */
    { "{\"admin\":{\"listen\":\"localhost\"}}",
      "config: admin.listen: expected \"host:port\" (got \"localhost\")" },
    { "{\"admin\":{\"listen\":\":8080\"}}", "config: admin.listen: expected \"host:port\" (got \":8080\")" },
    { "{\"admin\":{\"listen\":\"127.0.0.1:\"}}",
      "config: admin.listen: expected \"host:port\" (got \"127.0.0.1:\")" },
    { "{\"admin\":{\"listen\":\"127.0.0.1:99999\"}}",
      "config: admin.listen: port must be a number 0..65535 (got \"99999\")" },
    { "{\"admin\":{\"listen\":\"127.0.0.1:80a\"}}",
      "config: admin.listen: port must be a number 0..65535 (got \"80a\")" },
    { "{\"admin\":{\"listen\":\"::1:8080\"}}",
      "config: admin.listen: expected \"host:port\" with a host name or IP address (got \"::1:8080\")" },
    { "{\"admin\":{\"listen\":\"[::1:8080\"}}",
      "config: admin.listen: expected \"[ipv6]:port\" (got \"[::1:8080\")" },
    { "{\"admin\":{\"listen\":\"\"}}", "config: admin.listen: expected \"host:port\" (got \"\")" },
    { "{\"adapters\":[{\"type\":\"mqtt\",\"broker\":\"mqtt://h:1\"}]}",
      "config: adapters[0].broker: must be \"spawn\" or \"tcp://host:port\"" },
    { "{\"adapters\":[{\"type\":\"mqtt\",\"broker\":\"tcp://h\"}]}",
      "config: adapters[0].broker: must be \"spawn\" or \"tcp://host:port\": expected \"host:port\" "
      "(got \"h\")" },
    /* unknown keys at several depths */
    { "{\"dta_dir\":\"x\"}", "config: dta_dir: unknown key" },
    { "{\"admin\":{\"tokn\":\"x\"}}", "config: admin.tokn: unknown key" },
    { "{\"adapters\":[{\"type\":\"udp\",\"framing\":{}}]}", "config: adapters[0].framing: unknown key" },
    { "{\"adapters\":[{\"type\":\"tcp\",\"framing\":{\"lenght_field_size\":2}}]}",
      "config: adapters[0].framing.lenght_field_size: unknown key" },
    { MB_CLIENT(PT("\"rawType\":\"INT16\",\"bitOrder\":\"AB\"")),
      "config: adapters[0].devices[0].points[0].bitOrder: unknown key" },
    { "{\"adapters\":[{\"type\":\"modbus_tcp_server\",\"devices\":[{\"productKey\":\"p\","
      "\"deviceName\":\"d\",\"host\":\"h\"}]}]}",
      "config: adapters[0].devices[0].host: unknown key" },
    { "{\"adapters\":[{\"type\":\"modbus_tcp_client\",\"listen\":\"127.0.0.1:502\"}]}",
      "config: adapters[0].listen: unknown key" },
    /* duplicates */
    { "{\"data_dir\":\"a\",\"data_dir\":\"b\"}", "config: data_dir: duplicate key" },
    { "{\"adapters\":[{\"type\":\"udp\",\"name\":\"x\"},{\"type\":\"tcp\",\"name\":\"x\"}]}",
      "config: adapters[1].name: \"x\" is already used by adapters[0]" },
    { "{\"adapters\":[{\"type\":\"tcp\"},{\"type\":\"tcp\",\"listen\":\"127.0.0.1:9\"}]}",
      "config: adapters[1].name: \"tcp\" is already used by adapters[0]" },
    { "{\"adapters\":[{\"type\":\"tcp\"},{\"type\":\"http\",\"listen\":\"0.0.0.0:8091\"}]}",
      "config: adapters[1].listen: 0.0.0.0:8091 is already used by adapters[0].listen" },
    { "{\"adapters\":[{\"type\":\"http\",\"listen\":\"127.0.0.1:8080\"}]}",
      "config: adapters[0].listen: 127.0.0.1:8080 is already used by admin.listen" },
    /* strings */
    { "{\"data_dir\":\"\"}", "config: data_dir: must not be empty" },
    { "{\"data_dir\":\"a\\nb\"}", "config: data_dir: must not contain control characters" },
    { "{\"adapters\":[{\"type\":\"udp\",\"name\":\"my udp\"}]}",
      "config: adapters[0].name: only letters, digits, '_', '-' and '.' are allowed" },
    { "{\"admin\":{\"token\":\"short\"}}",
      "config: admin.token: must be empty (generated) or at least 16 characters (got 5)" },
    { "{\"firmware\":{\"base_url\":\"ftp://x\"}}",
      "config: firmware.base_url: must start with http:// or https:// (or be empty to derive it)" },
    /* found by fuzz_config: the trailing-'/' trim left "https:", which did not load back */
    { "{\"firmware\":{\"base_url\":\"https:///\"}}", "config: firmware.base_url: has no host" },
    { "{\"admin\":{\"listen\":\"0.0.0.0:8080\"}}",
      "config: firmware.base_url: must be set when admin.listen is a wildcard address or port 0" },
    { "{\"firmware\":{\"sign_key\":\"/nonexistent/key.pem\"}}",
      "config: firmware.sign_key: cannot read /nonexistent/key.pem: No such file or directory" },
    { "{\"adapters\":[{\"type\":\"websocket\",\"path\":\"ws\"}]}",
      "config: adapters[0].path: must start with '/' and contain no spaces, '?' or '#'" },
    /* framing rules (gw_framer_config_check) */
    { "{\"adapters\":[{\"type\":\"tcp\",\"framing\":{\"type\":\"fixed_length\"}}]}",
      "config: adapters[0].framing.fixed_length: required (1..65536) when type is fixed_length" },
    { "{\"adapters\":[{\"type\":\"tcp\",\"framing\":{\"type\":\"length_field\","
      "\"length_field_size\":1,\"initial_bytes_to_strip\":2}}]}",
      "config: adapters[0].framing: bytes to strip must not exceed length field offset + size" },
    { "{\"adapters\":[{\"type\":\"tcp\",\"framing\":{\"delimiter\":\"\\\\q\"}}]}",
      "config: adapters[0].framing.delimiter: delimiter has a bad escape (use \\r \\n \\t \\\\ or "
      "\\xHH)" },
    { "{\"adapters\":[{\"type\":\"tcp\",\"framing\":{\"delimiter\":\"\"}}]}",
      "config: adapters[0].framing.delimiter: delimiter must not be empty" },
    { "{\"adapters\":[{\"type\":\"tcp\",\"framing\":{\"delimiter\":\"123456789\"}}]}",
      "config: adapters[0].framing.delimiter: delimiter longer than 8 bytes" },
    /* required keys and modbus rules */
    { "{\"adapters\":[{\"name\":\"x\"}]}", "config: adapters[0].type: required key missing" },
    { "{\"adapters\":[{\"type\":\"modbus_tcp_client\",\"devices\":[{\"productKey\":\"p\","
      "\"deviceName\":\"d\"}]}]}",
      "config: adapters[0].devices[0].host: required key missing" },
    { MB_CLIENT("{\"identifier\":\"t\",\"functionCode\":3,\"address\":0}"),
      "config: adapters[0].devices[0].points[0].rawType: required key missing" },
    { MB_CLIENT(PT("\"rawType\":\"FLOAT\",\"count\":1")),
      "config: adapters[0].devices[0].points[0].count: FLOAT takes 2 registers (got 1)" },
    { MB_CLIENT(PT("\"rawType\":\"FLOAT\",\"byteOrder\":\"AB\"")),
      "config: adapters[0].devices[0].points[0].byteOrder: FLOAT is 32-bit: must be ABCD, CDAB, "
      "DCBA or BADC (got AB)" },
    { MB_CLIENT(PT("\"rawType\":\"UINT16\",\"byteOrder\":\"DCBA\"")),
      "config: adapters[0].devices[0].points[0].byteOrder: UINT16 is 16-bit: must be AB or BA "
      "(got DCBA)" },
    { MB_CLIENT(PT("\"rawType\":\"INT16\",\"byteOrder\":\"XY\"")),
      "config: adapters[0].devices[0].points[0].byteOrder: must be one of AB, BA, ABCD, CDAB, "
      "DCBA, BADC (got \"XY\")" },
    { MB_CLIENT("{\"identifier\":\"t\",\"functionCode\":2,\"address\":0,\"rawType\":\"INT16\"}"),
      "config: adapters[0].devices[0].points[0].rawType: function code 2 reads bits, so rawType "
      "must be BOOLEAN (got INT16)" },
    { MB_CLIENT("{\"identifier\":\"t\",\"functionCode\":5,\"address\":0,\"rawType\":\"INT16\"}"),
      "config: adapters[0].devices[0].points[0].functionCode: must be between 1 and 4 (got 5)" },
    { MB_CLIENT("{\"identifier\":\"t\",\"functionCode\":3,\"address\":65535,\"rawType\":\"INT32\"}"),
      "config: adapters[0].devices[0].points[0].address: 65535 + count 2 runs past address 65535" },
    { MB_CLIENT(PT("\"rawType\":\"INT16\",\"scale\":0")),
      "config: adapters[0].devices[0].points[0].scale: must not be 0 (writes divide by the scale)" },
    { MB_CLIENT(PT("\"rawType\":\"INT16\"") "," PT("\"rawType\":\"UINT16\"")),
      "config: adapters[0].devices[0].points[1].identifier: \"t\" is already used by points[0]" },
    { "{\"adapters\":[{\"type\":\"modbus_tcp_client\",\"devices\":[{\"productKey\":\"p\","
      "\"deviceName\":\"d\",\"host\":\"h\",\"unitId\":248}]}]}",
      "config: adapters[0].devices[0].unitId: must be between 0 and 247 (got 248)" },
    { "{\"adapters\":[{\"type\":\"modbus_tcp_server\",\"devices\":["
      "{\"productKey\":\"p\",\"deviceName\":\"d\"},{\"productKey\":\"p\",\"deviceName\":\"e\"},"
      "{\"productKey\":\"p\",\"deviceName\":\"d\"}]}]}",
      "config: adapters[0].devices[2]: device p/d is already listed as devices[0]" },
    { "{\"adapters\":[{\"type\":\"modbus_tcp_server\",\"devices\":["
      "{\"productKey\":\"p/q\",\"deviceName\":\"d\"}]}]}",
      "config: adapters[0].devices[0].productKey: must not contain '/', '+', '#', '&', '\"' or "
      "spaces" },
    /* syntax, with the location */
    { "{\"a\":1,}", "config: text: line 1, column 8: invalid JSON" },
    { "{\n  \"data_dir\": \"x\"\n  \"log_level\": \"info\"\n}", "config: text: line 3, column 3: invalid JSON" },
    { "{} {}", "config: text: line 1, column 4: unexpected text after the JSON value" },
    { "{\"a\":1 / 2}", "config: text: line 1, column 8: '/' outside a string (comments are // or /* */)" },
    { "{\n/* never closed\n}", "config: text: line 2, column 1: unterminated /* comment" },
    { "  \n ", "config: text: no JSON object (empty)" },
    { "[1]", "config: text: expected a JSON object at the top (got list)" },
    { "{\"data_dir\":\"\xff\"}", "config: text: invalid UTF-8 in a string or key" },
    { "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
      "config: text: JSON nested deeper than 32 levels" },
};

static void test_bad_values(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        struct gw_config *cfg = (struct gw_config *)&cfg; /* must be reset to NULL */
        char err[512] = "";
        int rc = gw_config_load_string(bad_cases[i].json, strlen(bad_cases[i].json), &cfg, err,
                                       sizeof(err));
        if (rc != GW_E_CONFIG || cfg != NULL || strcmp(err, bad_cases[i].message) != 0)
            fail_msg("case %zu: rc %d\n  input:    %s\n  expected: %s\n  got:      %s", i, rc,
                     bad_cases[i].json, bad_cases[i].message, err);
    }
}

static void test_embedded_nul_and_small_err(void **state)
{
    (void)state;
    static const char text[] = "{\"data_dir\":\"x\"}\0garbage";
    struct gw_config *cfg = NULL;
    char err[16];

    assert_int_equal(gw_config_load_string(text, sizeof(text) - 1, &cfg, err, sizeof(err)),
                     GW_E_CONFIG);
    assert_null(cfg);
    assert_int_equal(strlen(err), sizeof(err) - 1); /* truncated, terminated */
    assert_int_equal(gw_config_load_string(text, sizeof(text) - 1, &cfg, NULL, 0), GW_E_CONFIG);
    /* only the first 16 bytes: a complete object, not NUL-terminated by the caller */
    cfg = NULL;
    assert_int_equal(gw_config_load_string(text, 16, &cfg, NULL, 0), 0);
    assert_string_equal(cfg->data_dir, "x");
    gw_config_free(cfg);
}

/* Comments anywhere; strings keep "//", "/ *"-like text and a trailing backslash intact (the inputs
 * that cJSON_Minify 1.7.15 gets wrong). */
static void test_comments(void **state)
{
    (void)state;
    struct gw_config *cfg = load_ok(
        "// leading comment\n"
        "{ /* block\n comment */ \"data_dir\": \"C:\\\\gw\\\\\", // trailing backslash\n"
        "  \"firmware\": {\"base_url\": \"http://h//x/*y*/z\"},\n"
        "  \"adapters\": [ {\"type\": \"tcp\", \"name\": \"a-b\", /**/\n"
        "     \"framing\": {\"delimiter\": \"//\"}} ]\n"
        "} // end");

    assert_string_equal(cfg->data_dir, "C:\\gw\\");
    assert_string_equal(cfg->firmware.base_url, "http://h//x/*y*/z");
    assert_int_equal(cfg->adapters[0].u.tcp.framing.delimiter_len, 2);
    assert_memory_equal(cfg->adapters[0].u.tcp.framing.delimiter, "//", 2);
    gw_config_free(cfg);
}

/* ---- the shipped file ------------------------------------------------------------------ */

static void test_shipped_config_loads(void **state)
{
    (void)state;
    struct gw_config *cfg = NULL;
    char err[512] = "";
    int rc = gw_config_load_file(SHIPPED, &cfg, err, sizeof(err));

    if (rc != 0)
        fail_msg("%s", err);
    /* one adapter of every type, on its default loopback port */
    assert_int_equal(cfg->adapter_count, GW_CONFIG_ADAPTER__COUNT);
    for (size_t i = 0; i < cfg->adapter_count; i++) {
        const struct gw_config_adapter *a = &cfg->adapters[i];
        assert_int_equal(a->type, (int)i);
        if (a->type != GW_CONFIG_ADAPTER_MODBUS_TCP_CLIENT)
            assert_string_equal(a->listen.host, "127.0.0.1");
    }
    assert_string_equal(cfg->data_dir, "var/iotgw");
    assert_string_equal(cfg->firmware.base_url, "http://127.0.0.1:8080");
    assert_int_equal(cfg->adapters[GW_CONFIG_ADAPTER_MODBUS_TCP_SERVER].listen.port, 1502);
    gw_config_free(cfg);
}

struct doc_check {
    const char *text;
    int missing;
};

static void doc_option_present(const char *path, const char *key, void *arg)
{
    struct doc_check *dc = arg;
    char quoted[80];

    snprintf(quoted, sizeof(quoted), "\"%s\"", key);
    if (!strstr(dc->text, quoted)) {
        print_error("option %s is not documented in config/iotgw.json\n", path);
        dc->missing++;
    }
}

struct key_lookup {
    const char *key;
    bool found;
};

static void key_known(const char *path, const char *key, void *arg)
{
    struct key_lookup *kl = arg;

    (void)path;
    if (strcmp(kl->key, key) == 0)
        kl->found = true;
}

/* Every option of the table appears in the file, and every "key": in the file (comments
 * included, so the commented Modbus example counts) is an option of the table. */
static void test_shipped_config_documents_table(void **state)
{
    (void)state;
    char *text = read_text(SHIPPED);
    struct doc_check dc = { text, 0 };
    int unknown = 0, keys = 0;

    gw_config_foreach_option(doc_option_present, &dc);
    assert_int_equal(dc.missing, 0);

    for (const char *p = strchr(text, '"'); p; p = strchr(p + 1, '"')) {
        const char *end = strchr(p + 1, '"');
        char key[80];
        if (!end)
            break;
        const char *after = end + 1;
        while (*after == ' ')
            after++;
        size_t len = (size_t)(end - p - 1);
        if (*after == ':' && len > 0 && len < sizeof(key)) {
            memcpy(key, p + 1, len);
            key[len] = '\0';
            struct key_lookup kl = { key, false };
            gw_config_foreach_option(key_known, &kl);
            if (!kl.found) {
                print_error("key \"%s\" in config/iotgw.json is not in the option table\n", key);
                unknown++;
            }
            keys++;
        }
        p = end;
    }
    assert_int_equal(unknown, 0);
    assert_true(keys > 60);
    free(text);
}

/* ---- printing, help, overrides ------------------------------------------------------- */

static void test_print_round_trip(void **state)
{
    (void)state;
    struct gw_config *cfg = NULL, *again;
    char err[512] = "";
    char *first, *second;

    assert_int_equal(gw_config_load_file(SHIPPED, &cfg, err, sizeof(err)), 0);
    first = print_to_string(cfg);
    again = load_ok(first);
    second = print_to_string(again);
    assert_string_equal(first, second);
    /* every key is printed, defaults included */
    assert_non_null(strstr(first, "\"initial_bytes_to_strip\":\t4"));
    assert_non_null(strstr(first, "\"base_url\":\t\"http://127.0.0.1:8080\""));
    assert_non_null(strstr(first, "\"delimiter\":\t\"\\n\""));
    free(first);
    free(second);
    gw_config_free(again);
    gw_config_free(cfg);

    cfg = load_ok("{\"admin\":{\"token\":\"secret-secret-secret\"}}");
    first = print_to_string(cfg);
    assert_null(strstr(first, "secret-secret"));
    assert_non_null(strstr(first, "\"token\":\t\"<redacted>\""));
    /* a redacted token is refused, never taken as the token */
    assert_int_equal(gw_config_load_string(first, strlen(first), &again, err, sizeof(err)),
                     GW_E_CONFIG);
    assert_string_equal(err, "config: admin.token: must be empty (generated) or at least 16 "
                             "characters (got 10)");
    free(first);
    gw_config_free(cfg);

    cfg = load_ok("{\"adapters\":["
                  "{\"type\":\"tcp\",\"framing\":{\"delimiter\":\"\\\\x00\\\\\\\\\\r\"}},"
                  "{\"type\":\"modbus_tcp_client\",\"devices\":[{\"productKey\":\"p\","
                  "\"deviceName\":\"d\",\"host\":\"h\",\"points\":[{\"identifier\":\"t\","
                  "\"functionCode\":4,\"address\":1,\"rawType\":\"DOUBLE\"}]}]}]}");
    first = print_to_string(cfg);
    assert_non_null(strstr(first, "\"delimiter\":\t\"\\\\x00\\\\\\\\\\r\""));
    assert_non_null(strstr(first, "\"byteOrder\":\t\"ABCD\""));
    assert_non_null(strstr(first, "\"otaBase\":\tnull"));
    /* \x00, a backslash and CR: the printed form loads back to the same bytes */
    struct gw_config *reloaded = load_ok(first);
    assert_int_equal(reloaded->adapters[0].u.tcp.framing.delimiter_len, 3);
    assert_memory_equal(reloaded->adapters[0].u.tcp.framing.delimiter, "\0\\\r", 3);
    gw_config_free(reloaded);
    assert_int_equal(cfg->adapters[0].u.tcp.framing.delimiter_len, 3);
    assert_memory_equal(cfg->adapters[0].u.tcp.framing.delimiter, "\0\\\r", 3);
    free(first);
    gw_config_free(cfg);
}

static void test_help_lists_every_option(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    assert_non_null(f);
    gw_config_print_help(f);
    fclose(f);
    assert_non_null(strstr(text, "\nstorage.map_size_mb\n    integer 16..1048576; default 1024\n"));
    assert_non_null(strstr(text, "\nadapters[type=tcp].framing.length_field_size\n    integer: 1 2 4; "
                                 "default 4\n"));
    assert_non_null(strstr(text, "\nadapters[type=modbus_tcp_client].devices[].points[].rawType\n"
                                 "    one of INT16, UINT16, INT32, UINT32, FLOAT, DOUBLE, BOOLEAN; "
                                 "required\n"));
    assert_non_null(strstr(text, "\nlog_level\n    one of error, warn, info, debug; default \"info\"\n"));
    free(text);
}

static void test_set_data_dir(void **state)
{
    (void)state;
    struct gw_config *cfg = load_ok("{}");
    char err[128] = "";

    assert_int_equal(gw_config_set_data_dir(cfg, "/tmp/other", err, sizeof(err)), 0);
    assert_string_equal(cfg->data_dir, "/tmp/other");
    assert_int_equal(gw_config_set_data_dir(cfg, "", err, sizeof(err)), GW_E_CONFIG);
    assert_string_equal(err, "config: --data-dir: must not be empty");
    assert_string_equal(cfg->data_dir, "/tmp/other");
    gw_config_free(cfg);
    gw_config_free(NULL);
}

static void test_load_file_errors(void **state)
{
    (void)state;
    struct gw_config *cfg = NULL;
    char err[512] = "", path[] = "/tmp/gw_config_test_XXXXXX";
    int fd = mkstemp(path);
    FILE *f;

    assert_int_equal(gw_config_load_file("/nonexistent/iotgw.json", &cfg, err, sizeof(err)),
                     GW_E_CONFIG);
    assert_string_equal(err, "config: cannot open /nonexistent/iotgw.json: No such file or directory");
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("{\n  \"log_level\": \"info\",\n  \"oops\"\n}\n", f);
    fclose(f);
    assert_int_equal(gw_config_load_file(path, &cfg, err, sizeof(err)), GW_E_CONFIG);
    char expected[600];
    snprintf(expected, sizeof(expected), "config: %s: line 4, column 1: invalid JSON", path);
    assert_string_equal(err, expected);
    unlink(path);
    assert_int_equal(gw_config_load_file("/tmp", &cfg, err, sizeof(err)), GW_E_CONFIG);
    assert_null(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_filled),
        cmocka_unit_test(test_adapter_defaults),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_embedded_nul_and_small_err),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_shipped_config_loads),
        cmocka_unit_test(test_shipped_config_documents_table),
        cmocka_unit_test(test_print_round_trip),
        cmocka_unit_test(test_help_lists_every_option),
        cmocka_unit_test(test_set_data_dir),
        cmocka_unit_test(test_load_file_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
