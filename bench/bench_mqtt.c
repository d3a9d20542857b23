/*
 * DESIGN: MQTT load programs for the benchmarks (bench/mqtt_upstream.sh, push_latency.sh),
 * paho MQTTAsync, one role per process (paho shares its threads inside a process, so the
 * publisher and the subscriber of a baseline must be separate processes):
 *   pub        publish N property-post messages (the same ~150-byte JSON the gateway path
 *              carries) to one topic at QoS Q as fast as the client allows (maxInflight 1000,
 *              retry after 100 us when paho's buffer is full), wait for every completion;
 *              prints start/end wall-clock ms and the rate.
 *   sub        subscribe to a topic, print READY, count messages until N arrived or 3 s of
 *              silence; prints the rate between the first and the last message.
 *   fanout-sub C clients, client i subscribed to PREFIX/(--first + i); prints READY once all are; each
 *              message carries the publisher's burst start (wall-clock us): latency = arrival
 *              − burst start, the same t0 as "task creation" on the gateway path.
 *   fanout-pub one message to each of PREFIX/0..C-1 (QoS 1), as a gateway pushes an upgrade.
 * Device credentials (DESIGN §4) are computed from --pk/--dn/--secret with gw_auth_password.
 * Threads: main waits; paho's thread runs the callbacks, which only touch atomics.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "gw_auth.h"

#define MAX_FANOUT 20000

struct args {
    const char *mode, *uri, *topic, *pk, *dn, *secret, *user, *pass, *id;
    int qos;
    long n, first;
};

static atomic_long done_ok, done_fail, received;
static atomic_long t_first_us, t_last_us;
static atomic_int ready_count, connect_fail;
static double *lat_ms;
static atomic_long n_lat;

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
}

static void on_ok(void *ctx, MQTTAsync_successData *r)
{
    (void)ctx;
    (void)r;
    atomic_fetch_add(&done_ok, 1);
}

static void on_fail(void *ctx, MQTTAsync_failureData *r)
{
    (void)ctx;
    (void)r;
    atomic_fetch_add(&done_fail, 1);
}

static void on_sub_ok(void *ctx, MQTTAsync_successData *r)
{
    (void)ctx;
    (void)r;
    atomic_fetch_add(&ready_count, 1);
}

static void on_conn_fail(void *ctx, MQTTAsync_failureData *r)
{
    (void)ctx;
    fprintf(stderr, "bench_mqtt: connect failed: %d %s\n", r ? r->code : -1,
            r && r->message ? r->message : "");
    atomic_fetch_add(&connect_fail, 1);
}

static int on_msg(void *ctx, char *topic, int tlen, MQTTAsync_message *m)
{
    int64_t now = wall_us();
    long k = atomic_fetch_add(&received, 1);

    (void)ctx;
    (void)tlen;
    if (k == 0)
        atomic_store(&t_first_us, now);
    atomic_store(&t_last_us, now);
    if (lat_ms && m->payloadlen > 0) {
        char buf[64];
        int n = m->payloadlen < 63 ? m->payloadlen : 63;
        memcpy(buf, m->payload, (size_t)n);
        buf[n] = '\0';
        long i = atomic_fetch_add(&n_lat, 1);
        if (i < MAX_FANOUT)
            lat_ms[i] = (double)(now - strtoll(buf, NULL, 10)) / 1000.0;
    }
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

static struct sub_ctx {
    MQTTAsync c;
    char topic[256];
    int qos;
} *subs;

static void on_conn_sub(void *ctx, MQTTAsync_successData *r)
{
    struct sub_ctx *s = ctx;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;

    (void)r;
    ro.onSuccess = on_sub_ok;
    ro.onFailure = on_conn_fail;
    MQTTAsync_subscribe(s->c, s->topic, s->qos, &ro);
}

static void on_conn_pub(void *ctx, MQTTAsync_successData *r)
{
    (void)ctx;
    (void)r;
    atomic_fetch_add(&ready_count, 1);
}

static int client(const struct args *a, const char *id, MQTTAsync *out, void *ctx,
                  MQTTAsync_onSuccess *on_conn)
{
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
    MQTTAsync_connectOptions cp = MQTTAsync_connectOptions_initializer;
    char cid[160], user[160], pw[65];

    co.MQTTVersion = MQTTVERSION_3_1_1;
    co.maxBufferedMessages = 100000;
    if (a->pk && a->dn && a->secret) {
        snprintf(cid, sizeof(cid), "%s.%s", a->pk, a->dn);
        snprintf(user, sizeof(user), "%s&%s", a->dn, a->pk);
        gw_auth_password(a->pk, a->dn, a->secret, pw);
        id = cid;
        cp.username = user;
        cp.password = pw;
    } else if (a->user) {
        cp.username = a->user;
        cp.password = a->pass;
    }
    if (MQTTAsync_createWithOptions(out, a->uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co) !=
        MQTTASYNC_SUCCESS)
        return -1;
    MQTTAsync_setCallbacks(*out, ctx, NULL, on_msg, NULL);
    cp.keepAliveInterval = 30;
    cp.cleansession = 1;
    cp.maxInflight = 1000;
    cp.onSuccess = on_conn;
    cp.onFailure = on_conn_fail;
    cp.context = ctx;
    return MQTTAsync_connect(*out, &cp) == MQTTASYNC_SUCCESS ? 0 : -1;
}

static int wait_ready(int want, int timeout_s)
{
    for (int i = 0; i < timeout_s * 1000; i++) {
        if (atomic_load(&ready_count) >= want)
            return 0;
        if (atomic_load(&connect_fail))
            return -1;
        sleep_us(1000);
    }
    return -1;
}

static int run_pub(const struct args *a)
{
    MQTTAsync c;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    int64_t t0, t1;
    char payload[256];

    if (client(a, a->id ? a->id : "bench-pub", &c, NULL, on_conn_pub) != 0 || wait_ready(1, 10))
        return 1;
    ro.onSuccess = on_ok;
    ro.onFailure = on_fail;
    t0 = wall_us();
    for (long i = 0; i < a->n; i++) {
        MQTTAsync_message m = MQTTAsync_message_initializer;
        int n = snprintf(payload, sizeof(payload),
                         "{\"id\":\"%ld\",\"method\":\"thing.property.post\",\"params\":{"
                         "\"temperature\":23.5,\"humidity\":41,\"voltage\":3.31,\"rssi\":-67,"
                         "\"seq\":%ld,\"tag\":\"abcdefgh\"}}", i, i);
        int rc;

        m.payload = payload;
        m.payloadlen = n;
        m.qos = a->qos;
        while ((rc = MQTTAsync_sendMessage(c, a->topic, &m, &ro)) ==
                   MQTTASYNC_MAX_BUFFERED_MESSAGES ||
               rc == MQTTASYNC_MAX_MESSAGES_INFLIGHT)
            sleep_us(100);
        if (rc != MQTTASYNC_SUCCESS) {
            fprintf(stderr, "bench_mqtt: send failed: %d\n", rc);
            return 1;
        }
    }
    while (atomic_load(&done_ok) + atomic_load(&done_fail) < a->n)
        sleep_us(200);
    t1 = wall_us();
    printf("sent=%ld failed=%ld start_ms=%" PRId64 " end_ms=%" PRId64 " rate=%.0f\n",
           atomic_load(&done_ok), atomic_load(&done_fail), t0 / 1000, t1 / 1000,
           (double)a->n * 1e6 / (double)(t1 - t0));
    fflush(stdout);
    MQTTAsync_disconnect(c, NULL);
    sleep_us(100000);
    MQTTAsync_destroy(&c);
    return atomic_load(&done_fail) ? 1 : 0;
}

static int wait_messages(long want)
{
    long last = -1;
    int idle_ms = 0;

    while (atomic_load(&received) < want) {
        long r = atomic_load(&received);
        sleep_us(1000);
        if (r == last && r > 0) {
            if (++idle_ms > 3000)
                return -1;
        } else if (r != last) {
            idle_ms = 0;
        }
        last = r;
    }
    return 0;
}

static int run_sub(const struct args *a)
{
    struct sub_ctx s = { .qos = a->qos };
    long got;
    double secs;

    subs = &s;
    snprintf(s.topic, sizeof(s.topic), "%s", a->topic);
    if (client(a, a->id ? a->id : "bench-sub", &s.c, &s, on_conn_sub) != 0 || wait_ready(1, 10))
        return 1;
    printf("READY\n");
    fflush(stdout);
    wait_messages(a->n);
    got = atomic_load(&received);
    secs = (double)(atomic_load(&t_last_us) - atomic_load(&t_first_us)) / 1e6;
    printf("received=%ld first_ms=%" PRId64 " last_ms=%" PRId64 " rate=%.0f\n", got,
           (int64_t)atomic_load(&t_first_us) / 1000, (int64_t)atomic_load(&t_last_us) / 1000,
           got > 1 && secs > 0 ? (double)(got - 1) / secs : 0);
    fflush(stdout);
    MQTTAsync_disconnect(s.c, NULL);
    sleep_us(100000);
    MQTTAsync_destroy(&s.c);
    return got == a->n ? 0 : 1;
}

static int cmp_d(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static int run_fanout_sub(const struct args *a)
{
    long n = a->n, got;

    if (n <= 0 || n > MAX_FANOUT)
        return 2;
    subs = calloc((size_t)n, sizeof(*subs));
    lat_ms = calloc(MAX_FANOUT, sizeof(double));
    for (long i = 0; i < n; i++) {
        char id[64];
        snprintf(subs[i].topic, sizeof(subs[i].topic), "%s/%ld", a->topic, a->first + i);
        snprintf(id, sizeof(id), "fanout-sub-%ld", a->first + i);
        subs[i].qos = 1;
        if (client(a, id, &subs[i].c, &subs[i], on_conn_sub) != 0)
            return 1;
    }
    if (wait_ready((int)n, 60))
        return 1;
    printf("READY\n");
    fflush(stdout);
    wait_messages(n);
    got = atomic_load(&n_lat);
    qsort(lat_ms, (size_t)got, sizeof(double), cmp_d);
    printf("received=%ld p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", got,
           got ? lat_ms[(size_t)(0.5 * (double)(got - 1) + 0.5)] : 0,
           got ? lat_ms[(size_t)(0.99 * (double)(got - 1) + 0.5)] : 0, got ? lat_ms[got - 1] : 0);
    fflush(stdout);
    for (long i = 0; i < n; i++) {
        MQTTAsync_disconnect(subs[i].c, NULL);
    }
    sleep_us(200000);
    for (long i = 0; i < n; i++)
        MQTTAsync_destroy(&subs[i].c);
    free(subs);
    free(lat_ms);
    return got == n ? 0 : 1;
}

static int run_fanout_pub(const struct args *a)
{
    MQTTAsync c;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    char topic[300], payload[32];
    int64_t t0;

    if (client(a, "fanout-pub", &c, NULL, on_conn_pub) != 0 || wait_ready(1, 10))
        return 1;
    ro.onSuccess = on_ok;
    ro.onFailure = on_fail;
    t0 = wall_us(); /* the burst start: every message carries it (t0 of the latency) */
    snprintf(payload, sizeof(payload), "%" PRId64, t0);
    for (long i = 0; i < a->n; i++) {
        MQTTAsync_message m = MQTTAsync_message_initializer;
        int rc;

        snprintf(topic, sizeof(topic), "%s/%ld", a->topic, i);
        m.payload = payload;
        m.payloadlen = (int)strlen(payload);
        m.qos = 1;
        while ((rc = MQTTAsync_sendMessage(c, topic, &m, &ro)) ==
                   MQTTASYNC_MAX_BUFFERED_MESSAGES ||
               rc == MQTTASYNC_MAX_MESSAGES_INFLIGHT)
            sleep_us(100);
    }
    while (atomic_load(&done_ok) + atomic_load(&done_fail) < a->n)
        sleep_us(200);
    MQTTAsync_disconnect(c, NULL);
    sleep_us(100000);
    MQTTAsync_destroy(&c);
    return 0;
}

static const char *opt(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

int main(int argc, char **argv)
{
    struct args a = { 0 };
    const char *q = opt(argc, argv, "--qos"), *n = opt(argc, argv, "--n");

    if (argc < 4) {
        fprintf(stderr, "usage: bench_mqtt pub|sub|fanout-sub|fanout-pub URI TOPIC [--qos Q] "
                        "[--n N] [--pk PK --dn DN --secret S] [--user U --pass P] [--id ID]\n");
        return 2;
    }
    a.mode = argv[1];
    a.uri = argv[2];
    a.topic = argv[3];
    a.qos = q ? atoi(q) : 1;
    a.n = n ? atol(n) : 100000;
    a.pk = opt(argc, argv, "--pk");
    a.dn = opt(argc, argv, "--dn");
    a.secret = opt(argc, argv, "--secret");
    a.user = opt(argc, argv, "--user");
    a.pass = opt(argc, argv, "--pass");
    a.id = opt(argc, argv, "--id");
    a.first = opt(argc, argv, "--first") ? atol(opt(argc, argv, "--first")) : 0;
    if (strcmp(a.mode, "pub") == 0)
        return run_pub(&a);
    if (strcmp(a.mode, "sub") == 0)
        return run_sub(&a);
    if (strcmp(a.mode, "fanout-sub") == 0)
        return run_fanout_sub(&a);
    if (strcmp(a.mode, "fanout-pub") == 0)
        return run_fanout_pub(&a);
    fprintf(stderr, "bench_mqtt: unknown mode %s\n", a.mode);
    return 2;
}
