#ifndef GW_MQTT_HARNESS_H
#define GW_MQTT_HARNESS_H
/*
 * Test harness of the MQTT adapter conformance test (test_mqtt_adapter.c):
 *  - a stand-in for the core at its seam (gw_core_post, gw_core_post_session,
 *    gw_core_data_dir) that records what the adapter posts and can refuse posts;
 *  - scripted MQTT.js devices (device.js), one node process each, driven through pipes.
 * Every wait has a deadline (HARNESS_WAIT_MS); nothing sleeps where a poll belongs.
 *
 * Threads: the recorder is called from the adapter's and paho's threads and read by the
 * test thread (rec_lock inside); devices are used from the test thread only.
 */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "gw_core.h"
#include "gw_msg.h"
#include "gw_store.h"

#define HARNESS_WAIT_MS 10000

/* The stand-in core: only the data directory. */
struct gw_core {
    char data_dir[PATH_MAX];
};

struct rec_session {
    int ev; /* enum gw_session_event */
    char pk[GW_PK_MAX + 1], dn[GW_DN_MAX + 1];
    uint64_t session, seq;
};

void rec_init(void);
/* Drops every recorded message (end of the test). */
void rec_fini(void);
/* The next n gw_core_post calls return -EAGAIN; rec_refused() counts them. */
void rec_refuse_posts(int n);
int rec_refused(void);
/* The first posted message whose request id is request_id, waiting up to HARNESS_WAIT_MS.
 * A new reference (unref it) or NULL. */
struct gw_msg *rec_wait_msg(const char *request_id);
/* Same, only among messages whose origin.adapter is adapter. */
struct gw_msg *rec_wait_msg_from(const char *request_id, const void *adapter);
/* How many posted messages carry that request id now. */
size_t rec_count_msgs(const char *request_id);
/* The first session event ev (of device dn; NULL = any) recorded at index >= from, waiting up
 * to HARNESS_WAIT_MS. out/index may be NULL. */
bool rec_wait_session(int ev, const char *dn, size_t from, struct rec_session *out, size_t *index);
/* Same without waiting. */
bool rec_has_session(int ev, const char *dn, size_t from);
/* Session events recorded so far. */
size_t rec_session_count(void);

int64_t harness_now_ms(void);
void harness_sleep_ms(int ms);

#define DEV_HIST 1024
struct dev {
    pid_t pid;
    int in, out;
    char buf[262144];
    size_t blen;
    cJSON *hist[DEV_HIST]; /* every event it printed */
    bool used[DEV_HIST];   /* consumed by dev_wait */
    size_t nhist;
};

/* Starts a device process (node device.js); GW_NODE names node. 0 or -errno. */
int dev_spawn(struct dev *d);
/* Sends one command line (printf format). */
void dev_cmd(struct dev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The next unconsumed event named ev (on topic, when given), waiting up to HARNESS_WAIT_MS;
 * borrowed (valid until dev_stop), NULL on timeout. */
const cJSON *dev_wait(struct dev *d, const char *ev, const char *topic);
/* Marks everything printed so far as consumed. */
void dev_forget(struct dev *d);
/* Spawns and connects as pk.dn with its secret; asserts the CONNACK. reconnect_ms 0 = never. */
void dev_connect(struct dev *d, int port, const char *pk, const char *dn, const char *secret,
                 int reconnect_ms);
/* Publishes text at QoS 1 and asserts the PUBACK. */
void dev_publish(struct dev *d, const char *topic, const char *text);
/* Ends the device (disconnect, exit, reap; SIGKILL after 5 s). Fine twice. */
void dev_stop(struct dev *d);

#endif
