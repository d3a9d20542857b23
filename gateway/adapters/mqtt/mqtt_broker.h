#ifndef GW_MQTT_BROKER_H
#define GW_MQTT_BROKER_H
/*
 * The private mosquitto of an MQTT adapter with `broker: "spawn"` (internal to
 * gateway/adapters/mqtt/).
 *
 * gw__mqtt_broker_start writes <data_dir>/broker/mosquitto.conf (loopback listener,
 * allow_anonymous false, persistence false, the iotgw_auth.so plugin and its options),
 * spawns `mosquitto -c` with stdout/stderr appended to <data_dir>/broker/mosquitto.log and
 * waits (bounded, by polling the port) until it accepts connections. A supervisor thread then
 * waits for the child; when it dies unexpectedly it calls on_exit, restarts it after an
 * exponential backoff (0.5 s doubling to 30 s; reset after a run of 30 s) and calls on_ready
 * once the new broker accepts. gw__mqtt_broker_stop sends SIGTERM, waits up to 5 s, then
 * SIGKILL, and joins the supervisor.
 *
 * Threads: create/start/stop/destroy from the adapter's owner thread (main); the callbacks
 * run on the supervisor thread and must not block; pid/restarts from any thread.
 */
#include <stdint.h>
#include <sys/types.h>

/* The gateway's own broker account (the plugin lets it publish and subscribe anything). */
#define GW_MQTT_GATEWAY_USER "iotgw-gateway"
/* 32 random bytes as lowercase hex. */
#define GW_MQTT_SECRET_HEX_LEN 64

struct gw__mqtt_broker;

struct gw__mqtt_broker_opts {
    const char *tag;             /* log tag (the adapter's name) */
    const char *data_dir;        /* the gateway's data directory */
    const char *host;            /* listener address (loopback) */
    int port;                    /* listener port (> 0) */
    const char *plugin_path;     /* absolute path of iotgw_auth.so */
    const char *db_dir;          /* the store directory the plugin opens read-only */
    const char *gateway_secret;  /* the gateway account's password */
    int queue_mb;                /* per-client queue bound of the broker, MB (> 0) */
    void (*on_exit)(void *ctx);  /* the broker died (not called for gw__mqtt_broker_stop) */
    void (*on_ready)(void *ctx); /* a restarted broker accepts connections */
    void *ctx;
};

/* Copies every option (strings included). 0, -EINVAL, -ENOMEM. */
int gw__mqtt_broker_create(const struct gw__mqtt_broker_opts *opts, struct gw__mqtt_broker **out);

/*
 * Writes the config, stops a broker left running by a previous gateway process (found through
 * <data_dir>/broker/mosquitto.pid), spawns the broker, waits up to 10 s until the port
 * accepts, starts the supervisor. Returns 0, -EADDRINUSE (the port is taken by someone else),
 * -ENOENT (mosquitto not installed), GW_E_TIMEOUT, GW_E_BROKER (the broker exited at once: see
 * its log), or -errno. Logs the reason once.
 */
int gw__mqtt_broker_start(struct gw__mqtt_broker *b);

/* Stops the broker and joins the supervisor. Idempotent; fine before start. */
void gw__mqtt_broker_stop(struct gw__mqtt_broker *b);
/* Stops if needed and frees. NULL is fine. */
void gw__mqtt_broker_destroy(struct gw__mqtt_broker *b);

/* The running broker's pid, 0 when none (between a crash and its restart). Any thread. */
pid_t gw__mqtt_broker_pid(struct gw__mqtt_broker *b);
/* How many times the broker was restarted after dying. Any thread. */
uint64_t gw__mqtt_broker_restarts(struct gw__mqtt_broker *b);

/*
 * Reads the gateway account's secret from <data_dir>/broker.secret, creating it (0600, 32
 * random bytes as hex) when missing. out gets GW_MQTT_SECRET_HEX_LEN chars + NUL.
 * Returns 0, GW_E_CONFIG (the file exists but is not 64 hex chars), -errno.
 */
int gw__mqtt_secret_load(const char *data_dir, char out[GW_MQTT_SECRET_HEX_LEN + 1]);

/*
 * Absolute path of iotgw_auth.so: $IOTGW_PLUGIN when set, else next to the running
 * executable (/proc/self/exe). 0, -ENAMETOOLONG, -ENOENT (not readable there; logged by the
 * caller with the path left in buf).
 */
int gw__mqtt_plugin_path(char *buf, size_t len);

#endif
