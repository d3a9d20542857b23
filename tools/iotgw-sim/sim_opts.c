/*
 * DESIGN: the command line of iotgw-sim. One table lists every option once (name, argument
 * kind, where it goes, help); the same table drives getopt_long, the parser and --help, so
 * they cannot drift. Main thread, before anything starts; bad values name the option.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

enum opt_kind { K_STR, K_U32, K_U64, K_I64, K_DBL, K_SHARE, K_FLAG, K_TOKEN_FILE, K_HELP };

struct opt_row {
    const char *name;
    enum opt_kind kind;
    size_t off;
    size_t size; /* K_STR: buffer size */
    const char *arg, *help;
};

#define O(f) offsetof(struct sim_opts, f), sizeof(((struct sim_opts *)0)->f)

static const struct opt_row rows[] = {
    { "admin", K_STR, O(admin_url), "URL", "admin API base, e.g. http://127.0.0.1:8080" },
    { "token", K_STR, O(admin_token), "T", "admin bearer token" },
    { "token-file", K_TOKEN_FILE, 0, 0, "FILE", "read the admin token from FILE" },
    { "mqtt", K_U32, O(count[SIM_MQTT]), "N", "MQTT devices (through the broker)" },
    { "tcp", K_U32, O(count[SIM_TCP]), "N", "TCP devices (JSON, newline framing)" },
    { "udp", K_U32, O(count[SIM_UDP]), "N", "UDP devices (JSON)" },
    { "ws", K_U32, O(count[SIM_WS]), "N", "WebSocket devices (JSON text frames)" },
    { "http", K_U32, O(count[SIM_HTTP]), "N", "HTTP devices (long-poll downstream)" },
    { "coap", K_U32, O(count[SIM_COAP]), "N", "CoAP devices (Observe downstream, Block2)" },
    { "modbus", K_U32, O(count[SIM_MODBUS]), "N",
      "Modbus TCP devices dialling in (modbus_tcp_server; OTA by registers)" },
    { "mqtt-url", K_STR, O(endpoint[SIM_MQTT]), "URL", "broker, tcp://127.0.0.1:1883" },
    { "tcp-url", K_STR, O(endpoint[SIM_TCP]), "URL", "tcp://127.0.0.1:8091" },
    { "udp-url", K_STR, O(endpoint[SIM_UDP]), "URL", "udp://127.0.0.1:8093" },
    { "ws-url", K_STR, O(endpoint[SIM_WS]), "URL", "ws://127.0.0.1:8094/ws" },
    { "http-url", K_STR, O(endpoint[SIM_HTTP]), "URL", "http://127.0.0.1:8092" },
    { "coap-url", K_STR, O(endpoint[SIM_COAP]), "URL", "coap://127.0.0.1:5683" },
    { "modbus-url", K_STR, O(endpoint[SIM_MODBUS]), "URL", "tcp://127.0.0.1:1502" },
    { "modbus-ota-base", K_U32, O(modbus_ota_base), "A",
      "first holding register of the OTA block (default 4096)" },
    { "modbus-config", K_STR, O(modbus_config), "FILE",
      "write the gateway's modbus_tcp_server block for the devices" },
    { "udp-loss", K_SHARE, O(udp_loss), "P",
      "drop this share of outgoing UDP datagrams (by --seed)" },
    { "creds", K_STR, O(creds_in), "FILE", "use the devices of FILE instead of creating them" },
    { "save-creds", K_STR, O(creds_out), "FILE", "write the devices used to FILE" },
    { "product", K_STR, O(product), "NAME", "name of the product to create (default sim-<time>)" },
    { "prefix", K_STR, O(prefix), "P", "device name prefix (default sim)" },
    { "prop-rate", K_DBL, O(prop_rate), "R", "property posts per second, all devices together" },
    { "fail", K_SHARE, O(share[SIM_BEH_FAIL]), "P", "share of devices whose upgrade fails" },
    { "silent", K_SHARE, O(share[SIM_BEH_SILENT]), "P", "share that never reports (timeouts)" },
    { "drop", K_SHARE, O(share[SIM_BEH_DROP]), "P",
      "share that drops its link mid-download (or mid-transfer) and resumes" },
    { "slow", K_SHARE, O(share[SIM_BEH_SLOW]), "P",
      "share downloading at --slow-rate (Modbus: answering at that pace)" },
    { "slow-rate", K_U32, O(slow_rate), "B", "bytes/s of a slow download (default 65536)" },
    { "storm-at", K_DBL, O(storm_at_s), "S", "reconnect storm S seconds after all are online" },
    { "storm-share", K_SHARE, O(storm_share), "P", "share of devices in the storm (default 1)" },
    { "firmware", K_STR, O(fw_file), "FILE", "firmware image to upload" },
    { "firmware-size", K_U64, O(fw_size), "N", "or: upload a random image of N bytes" },
    { "fw-version", K_STR, O(fw_version), "V", "version of the uploaded firmware" },
    { "task", K_FLAG, O(task), NULL, "create an upgrade task for every device of the run" },
    { "push-timeout", K_I64, O(push_timeout_s), "S", "task override pushTimeoutS" },
    { "upgrade-timeout", K_I64, O(upgrade_timeout_s), "S", "task override upgradeTimeoutS" },
    { "max-retries", K_I64, O(max_retries), "N", "task override maxRetries" },
    { "max-online", K_U32, O(max_online), "N",
      "wave mode: at most N linked at once; a device that finished leaves (task first)" },
    { "connect-rate", K_U32, O(connect_rate), "N", "new connections per second (0 = no limit)" },
    { "connect-parallel", K_U32, O(connect_parallel), "N", "logins in progress at once (256)" },
    { "max-downloads", K_U32, O(max_downloads), "N", "downloads at once (default 256)" },
    { "admin-parallel", K_U32, O(admin_parallel), "N", "admin requests at once (default 16)" },
    { "progress-steps", K_U32, O(progress_steps), "N", "progress reports while downloading (4)" },
    { "duration", K_DBL, O(duration_s), "S", "hold the sessions S seconds at the end" },
    { "timeout", K_DBL, O(timeout_s), "S", "bound on the whole run (default 600)" },
    { "qos", K_U32, O(qos), "Q", "MQTT QoS of upstream messages (default 1)" },
    { "json", K_STR, O(json_out), "FILE", "final JSON summary to FILE (default stdout)" },
    { "quiet", K_FLAG, O(quiet), NULL, "no live line on stderr" },
    { "no-connect", K_FLAG, O(no_connect), NULL, "only provision (with --save-creds)" },
    { "ready-file", K_STR, O(ready_file), "FILE", "create FILE once every device is online" },
    { "seed", K_U32, O(seed), "N", "seed of the behaviour assignment (default 1)" },
    { "help", K_HELP, 0, 0, NULL, "this text" },
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

void sim_opts_usage(FILE *f)
{
    fprintf(f, "usage: iotgw-sim --admin URL --token T [--mqtt N --tcp N ...] [options]\n"
               "Simulates devices against iotgw: provisioning, properties, OTA upgrades.\n"
               "Prints a live line on stderr and a JSON summary at the end.\n\n");
    for (size_t i = 0; i < NROWS; i++) {
        char left[40];
        snprintf(left, sizeof(left), "--%s%s%s", rows[i].name, rows[i].arg ? " " : "",
                 rows[i].arg ? rows[i].arg : "");
        fprintf(f, "  %-24s %s\n", left, rows[i].help);
    }
}

static int read_token_file(const char *path, struct sim_opts *o)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (!f) {
        fprintf(stderr, "iotgw-sim: --token-file %s: %s\n", path, strerror(errno));
        return -1;
    }
    n = fread(o->admin_token, 1, sizeof(o->admin_token) - 1, f);
    fclose(f);
    o->admin_token[n] = '\0';
    while (n > 0 && (o->admin_token[n - 1] == '\n' || o->admin_token[n - 1] == '\r' ||
                     o->admin_token[n - 1] == ' '))
        o->admin_token[--n] = '\0';
    return 0;
}

static int set_value(const struct opt_row *r, const char *arg, struct sim_opts *o)
{
    char *base = (char *)o + r->off, *end = NULL;
    double d;

    errno = 0;
    switch (r->kind) {
    case K_STR:
        if (strlen(arg) >= r->size)
            goto bad;
        memcpy(base, arg, strlen(arg) + 1);
        return 0;
    case K_U32: {
        unsigned long long v = strtoull(arg, &end, 10);
        if (errno || *end || v > UINT32_MAX || arg[0] == '-')
            goto bad;
        *(uint32_t *)(void *)base = (uint32_t)v;
        return 0;
    }
    case K_U64: {
        unsigned long long v = strtoull(arg, &end, 10);
        if (errno || *end || arg[0] == '-')
            goto bad;
        *(uint64_t *)(void *)base = v;
        return 0;
    }
    case K_I64: {
        long long v = strtoll(arg, &end, 10);
        if (errno || *end || v < 0)
            goto bad;
        *(int64_t *)(void *)base = v;
        return 0;
    }
    case K_DBL:
    case K_SHARE:
        d = strtod(arg, &end);
        if (errno || *end || d < 0 || (r->kind == K_SHARE && d > 1))
            goto bad;
        *(double *)(void *)base = d;
        return 0;
    case K_FLAG:
        *(bool *)(void *)base = true;
        return 0;
    case K_TOKEN_FILE:
        return read_token_file(arg, o);
    case K_HELP:
        return 0;
    }
bad:
    fprintf(stderr, "iotgw-sim: --%s: bad value '%s'\n", r->name, arg);
    return -1;
}

static void defaults(struct sim_opts *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->endpoint[SIM_MQTT], SIM_URL_MAX, "tcp://127.0.0.1:1883");
    snprintf(o->endpoint[SIM_TCP], SIM_URL_MAX, "tcp://127.0.0.1:8091");
    snprintf(o->endpoint[SIM_UDP], SIM_URL_MAX, "udp://127.0.0.1:8093");
    snprintf(o->endpoint[SIM_WS], SIM_URL_MAX, "ws://127.0.0.1:8094/ws");
    snprintf(o->endpoint[SIM_HTTP], SIM_URL_MAX, "http://127.0.0.1:8092");
    snprintf(o->endpoint[SIM_COAP], SIM_URL_MAX, "coap://127.0.0.1:5683");
    snprintf(o->endpoint[SIM_MODBUS], SIM_URL_MAX, "tcp://127.0.0.1:1502");
    o->modbus_ota_base = 4096;
    snprintf(o->admin_url, SIM_URL_MAX, "http://127.0.0.1:8080");
    snprintf(o->prefix, sizeof(o->prefix), "sim");
    snprintf(o->fw_version, sizeof(o->fw_version), "sim-2.0.0");
    o->slow_rate = 65536;
    o->storm_share = 1.0;
    o->push_timeout_s = o->upgrade_timeout_s = o->max_retries = -1;
    o->connect_parallel = 256;
    o->max_downloads = 256;
    o->admin_parallel = 16;
    o->progress_steps = 4;
    o->timeout_s = 600;
    o->qos = 1;
    o->seed = 1;
}

/* Returns 0 to run, 1 when --help was printed, -1 on a bad option (already reported). */
int sim_opts_parse(int argc, char **argv, struct sim_opts *o)
{
    struct option lo[NROWS + 1];
    double sum = 0;
    uint64_t total = 0;
    int idx, c;

    defaults(o);
    for (size_t i = 0; i < NROWS; i++) {
        lo[i].name = rows[i].name;
        lo[i].has_arg = rows[i].arg ? required_argument : no_argument;
        lo[i].flag = NULL;
        lo[i].val = 256 + (int)i;
    }
    memset(&lo[NROWS], 0, sizeof(lo[NROWS]));
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, &idx)) != -1) {
        if (c == 'h' || (c >= 256 && rows[c - 256].kind == K_HELP)) {
            sim_opts_usage(stdout);
            return 1;
        }
        if (c < 256 || (size_t)(c - 256) >= NROWS)
            return -1; /* getopt printed why */
        if (set_value(&rows[c - 256], optarg ? optarg : "", o) != 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "iotgw-sim: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    for (int b = 0; b < SIM_BEH_N; b++)
        sum += o->share[b];
    if (sum > 1.0 + 1e-9) {
        fprintf(stderr, "iotgw-sim: --fail + --silent + --drop + --slow exceed 1\n");
        return -1;
    }
    for (int p = 0; p < SIM_PROTO_N; p++)
        total += o->count[p];
    if (total == 0 && !o->creds_in[0]) {
        fprintf(stderr, "iotgw-sim: no devices (--mqtt N, --tcp N, ... or --creds FILE)\n");
        return -1;
    }
    if (total > 2000000) {
        fprintf(stderr, "iotgw-sim: at most 2000000 devices\n");
        return -1;
    }
    if (o->qos > 1) {
        fprintf(stderr, "iotgw-sim: --qos: 0 or 1\n");
        return -1;
    }
    if (o->no_connect && (o->task || o->creds_in[0])) {
        fprintf(stderr, "iotgw-sim: --no-connect only provisions (no --task, no --creds)\n");
        return -1;
    }
    if (o->max_online && !o->task) {
        fprintf(stderr, "iotgw-sim: --max-online needs --task (devices leave once upgraded)\n");
        return -1;
    }
    /* the property registers sit at 0..1 (sim_modbus_regs.c); the block is 170 registers */
    if (o->modbus_ota_base < 2 || o->modbus_ota_base > 65536 - 170) {
        fprintf(stderr, "iotgw-sim: --modbus-ota-base: 2..65366\n");
        return -1;
    }
    if (o->task && !o->fw_file[0] && o->fw_size == 0)
        o->fw_size = 64 * 1024;
    if (o->connect_parallel == 0)
        o->connect_parallel = 1;
    if (o->max_downloads == 0)
        o->max_downloads = 1;
    if (o->admin_parallel == 0)
        o->admin_parallel = 1;
    return 0;
}
