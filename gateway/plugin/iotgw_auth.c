/*
 * DESIGN: iotgw_auth.so, the mosquitto 2.0 plugin (API v5) that the gateway's private broker
 * loads. It owns: option parsing, the read-only handle on the gateway's LMDB store (the one
 * source of device credentials; nothing is copied), the connection table and the presence
 * publishes. Decisions live in plugin_core.c; this file is the broker glue.
 *
 *   BASIC_AUTH  gateway account: username == gateway_user and password == gateway_secret
 *               (constant time). Device: clientId "pk.dn", username "dn&pk", password =
 *               DESIGN §4 HMAC over the deviceSecret read from the store. Success adds the
 *               connection with a new seq and publishes {"event":"online","seq":N}.
 *   ACL_CHECK   gateway account: everything (including $iotgw/#). Device: read, write and
 *               subscribe only under /sys/{pk}/{dn}/ (filters as prefixes), unsubscribe
 *               always. The first allowed SUBSCRIBE of a filter reaching the device's
 *               downstream topics publishes {"event":"subscribed","seq":N}.
 *   DISCONNECT  a connection found in the table is removed and {"event":"offline","seq":N}
 *               published; unknown pointers (failed auth, no CONNECT, the second DISCONNECT
 *               of a persistent session, the gateway) are ignored.
 *   RELOAD      nothing: mosquitto does not pass plugin options again on SIGHUP.
 * The presence contract for the gateway is in plugin_core.h.
 *
 * Thread: the broker's main thread (init, callbacks, cleanup). The broker has already
 * dropped privileges (to user mosquitto when started as root) before init, so the store
 * directory must be readable and lock.mdb writable by that user: see
 * gw_store_prepare_shared_dir() in storage/gw_store.h.
 *
 * Broker rules this file follows (LIBRARIES "Mosquitto 2.0.11 plugin: verified facts"):
 * payloads for mosquitto_broker_publish come from mosquitto_malloc (the broker frees them
 * with its accounting free; publish_copy, plain malloc and stack buffers break it), and are
 * ours to free again when the call fails; option keys are >= 3 characters; an init failure
 * stops the broker, which is what we want for a missing store or bad options.
 */
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "gw_auth.h"
#include "gw_error.h"
#include "gw_store.h"
#include "plugin_core.h"

#define TAG "iotgw_auth: "
/* Longest gateway password we hash: bounded so a hostile CONNECT costs nothing. */
#define SECRET_INPUT_MAX 1024

struct gw_plugin {
    mosquitto_plugin_id_t *id;
    struct gw_store *store; /* read-only */
    char *db_path;
    char *gateway_user;   /* NULL: no gateway account */
    char *gateway_secret; /* set with gateway_user */
    bool trace;
    /* Spawned by the gateway: exit when the gateway's last connection goes away, so devices
     * never hand reports to a broker nobody reads (their QoS 1 publishes stay unacknowledged
     * and are sent again to the broker of the next gateway). */
    bool exit_with_gateway;
    void *gateway_clients[8]; /* live gateway-account connections */
    int n_gateway;
    struct gw_plugin_conns conns;
};

static int on_basic_auth(int event, void *event_data, void *userdata);
static int on_acl_check(int event, void *event_data, void *userdata);
static int on_disconnect(int event, void *event_data, void *userdata);
static int on_reload(int event, void *event_data, void *userdata);

static const struct {
    int event;
    MOSQ_FUNC_generic_callback fn;
} gw_plugin_events[] = {
    { MOSQ_EVT_BASIC_AUTH, on_basic_auth },
    { MOSQ_EVT_ACL_CHECK, on_acl_check },
    { MOSQ_EVT_DISCONNECT, on_disconnect },
    { MOSQ_EVT_RELOAD, on_reload },
};
#define N_EVENTS (sizeof(gw_plugin_events) / sizeof(gw_plugin_events[0]))

/* ---- presence ---- */

/* Queues one QoS 1 presence message; the broker sends it at its next loop iteration. */
static void publish_presence(struct gw_plugin *pl, const struct gw_plugin_conn *c,
                             enum gw_plugin_event ev)
{
    char topic[GW_PLUGIN_TOPIC_MAX];
    char text[GW_PLUGIN_PAYLOAD_MAX];
    if (gw_plugin_presence_topic(c->pk, c->dn, topic, sizeof(topic)) != 0)
        return; /* cannot happen: names were bounded at auth */
    int n = gw_plugin_presence_payload(ev, c->seq, text, sizeof(text));
    if (n < 0)
        return;
    /* The broker takes ownership of a mosquitto_malloc'ed payload on success only. */
    char *payload = mosquitto_malloc((size_t)n);
    if (payload == NULL) {
        mosquitto_log_printf(MOSQ_LOG_ERR, TAG "out of memory: presence %s lost", text);
        return;
    }
    memcpy(payload, text, (size_t)n);
    int rc = mosquitto_broker_publish(NULL, topic, n, payload, 1, true, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        mosquitto_free(payload);
        mosquitto_log_printf(MOSQ_LOG_ERR, TAG "presence publish to %s failed (%d): %s lost",
                             topic, rc, text);
        return;
    }
    if (pl->trace)
        mosquitto_log_printf(MOSQ_LOG_INFO, TAG "presence %s %s", topic, text);
}

/* ---- authentication ---- */

static bool is_gateway(const struct gw_plugin *pl, const char *username)
{
    return pl->gateway_user != NULL && username != NULL &&
           strcmp(username, pl->gateway_user) == 0;
}

/* Constant time whatever the lengths: compares the SHA-256 of both strings. */
static int auth_gateway(struct gw_plugin *pl, const char *password)
{
    unsigned char got[32], want[32];
    int rc = GW_E_AUTH_FAILED;
    if (password == NULL || strnlen(password, SECRET_INPUT_MAX + 1) > SECRET_INPUT_MAX)
        return GW_E_AUTH_FAILED;
    if (mbedtls_sha256_ret((const unsigned char *)password, strlen(password), got, 0) == 0 &&
        mbedtls_sha256_ret((const unsigned char *)pl->gateway_secret,
                           strlen(pl->gateway_secret), want, 0) == 0 &&
        mbedtls_ct_memcmp(got, want, sizeof(got)) == 0)
        rc = 0;
    mbedtls_platform_zeroize(want, sizeof(want));
    return rc;
}

/* 0 when password is the DESIGN §4 password of (pk, dn) with the stored deviceSecret;
 * GW_E_NOT_FOUND for an unknown device, GW_E_AUTH_FAILED for a wrong password. */
static int auth_device(struct gw_plugin *pl, const char *pk, const char *dn,
                       const char *password)
{
    char secret[GW_SECRET_MAX + 1];
    int rc;
    if (password == NULL)
        return GW_E_AUTH_FAILED;
    rc = gw_store_ro_device_secret(pl->store, pk, dn, secret, sizeof(secret));
    if (rc == 0)
        rc = gw_auth_check(pk, dn, secret, password);
    /* The secret is a credential: do not leave it on the stack. */
    mbedtls_platform_zeroize(secret, sizeof(secret));
    return rc;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_basic_auth *ed = event_data;
    struct gw_plugin *pl = userdata;
    const char *client_id = mosquitto_client_id(ed->client);
    char pk[GW_PK_MAX + 1], dn[GW_DN_MAX + 1];
    const char *why = NULL;
    int rc;
    (void)event;

    if (is_gateway(pl, ed->username)) {
        rc = auth_gateway(pl, ed->password);
        if (pl->trace || rc != 0)
            mosquitto_log_printf(rc ? MOSQ_LOG_NOTICE : MOSQ_LOG_INFO,
                                 TAG "gateway account login %s (client %s)",
                                 rc ? "refused" : "ok", client_id ? client_id : "(null)");
        if (rc == 0 && pl->n_gateway < (int)(sizeof(pl->gateway_clients) /
                                             sizeof(pl->gateway_clients[0])))
            pl->gateway_clients[pl->n_gateway++] = ed->client;
        return rc ? MOSQ_ERR_AUTH : MOSQ_ERR_SUCCESS;
    }
    rc = gw_plugin_identity(client_id, ed->username, pk, dn, &why);
    if (rc == 0) {
        rc = auth_device(pl, pk, dn, ed->password);
        why = rc == GW_E_NOT_FOUND ? "unknown device" : gw_strerror(rc);
    }
    if (rc != 0) {
        /* One line per refusal: the broker logs "not authorised" without the reason. */
        mosquitto_log_printf(MOSQ_LOG_NOTICE, TAG "refused client %s user %s: %s",
                             client_id ? client_id : "(null)",
                             ed->username ? ed->username : "(null)", why ? why : "refused");
        return MOSQ_ERR_AUTH;
    }

    /* The same pointer authenticating twice would be a broker change; end the old one. */
    struct gw_plugin_conn old;
    if (gw_plugin_conns_remove(&pl->conns, ed->client, &old) == 0)
        publish_presence(pl, &old, GW_PLUGIN_EV_OFFLINE);
    struct gw_plugin_conn *c;
    rc = gw_plugin_conns_add(&pl->conns, ed->client, pk, dn, &c);
    if (rc != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, TAG "cannot track %s: %s", client_id,
                             gw_strerror(rc));
        return MOSQ_ERR_AUTH; /* a device the gateway cannot see would be unreachable */
    }
    if (pl->trace)
        mosquitto_log_printf(MOSQ_LOG_INFO, TAG "device %s/%s online seq=%llu", pk, dn,
                             (unsigned long long)c->seq);
    publish_presence(pl, c, GW_PLUGIN_EV_ONLINE);
    return MOSQ_ERR_SUCCESS;
}

/* ---- access control ---- */

static int on_acl_check(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_acl_check *ed = event_data;
    struct gw_plugin *pl = userdata;
    char pk[GW_PK_MAX + 1], dn[GW_DN_MAX + 1];
    (void)event;

    if (is_gateway(pl, mosquitto_client_username(ed->client)))
        return MOSQ_ERR_SUCCESS;
    if (ed->access == MOSQ_ACL_UNSUBSCRIBE)
        return MOSQ_ERR_SUCCESS;
    /*
     * The identity comes from the login the broker keeps on the context (validated at
     * BASIC_AUTH, the only way in with allow_anonymous false), not from the connection
     * table: a persistent session still receives (READ checks) after its DISCONNECT.
     */
    if (gw_plugin_identity(mosquitto_client_id(ed->client),
                           mosquitto_client_username(ed->client), pk, dn, NULL) != 0 ||
        !gw_plugin_topic_allowed(ed->topic, pk, dn)) {
        if (pl->trace)
            mosquitto_log_printf(MOSQ_LOG_INFO, TAG "denied access %d to %s for %s",
                                 ed->access, ed->topic ? ed->topic : "(null)",
                                 mosquitto_client_id(ed->client));
        return MOSQ_ERR_ACL_DENIED;
    }
    if (ed->access == MOSQ_ACL_SUBSCRIBE && gw_plugin_filter_is_downstream(ed->topic, pk, dn)) {
        struct gw_plugin_conn *c = gw_plugin_conns_find(&pl->conns, ed->client);
        if (c != NULL && !c->subscribed) {
            c->subscribed = true;
            publish_presence(pl, c, GW_PLUGIN_EV_SUBSCRIBED);
        }
    }
    return MOSQ_ERR_SUCCESS;
}

/* ---- disconnect, reload ---- */

static int on_disconnect(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_disconnect *ed = event_data;
    struct gw_plugin *pl = userdata;
    struct gw_plugin_conn c;
    (void)event;
    for (int i = 0; i < pl->n_gateway; i++) {
        if (pl->gateway_clients[i] != ed->client)
            continue;
        pl->gateway_clients[i] = pl->gateway_clients[--pl->n_gateway];
        if (pl->n_gateway == 0 && pl->exit_with_gateway) {
            mosquitto_log_printf(MOSQ_LOG_WARNING, TAG "the gateway disconnected: stopping the "
                                                   "broker (exit_with_gateway)");
            kill(getpid(), SIGTERM); /* the broker's own clean shutdown */
        }
        return MOSQ_ERR_SUCCESS;
    }
    if (gw_plugin_conns_remove(&pl->conns, ed->client, &c) != 0)
        return MOSQ_ERR_SUCCESS;
    if (pl->trace)
        mosquitto_log_printf(MOSQ_LOG_INFO, TAG "device %s/%s offline seq=%llu", c.pk, c.dn,
                             (unsigned long long)c.seq);
    publish_presence(pl, &c, GW_PLUGIN_EV_OFFLINE);
    return MOSQ_ERR_SUCCESS;
}

static int on_reload(int event, void *event_data, void *userdata)
{
    (void)event;
    (void)event_data;
    (void)userdata;
    return MOSQ_ERR_SUCCESS;
}

/* ---- options, lifecycle ---- */

static int set_string(char **dst, const char *key, const char *value)
{
    if (*dst != NULL) {
        mosquitto_log_printf(MOSQ_LOG_ERR, TAG "plugin_opt_%s given twice", key);
        return MOSQ_ERR_INVAL;
    }
    *dst = strdup(value);
    return *dst ? MOSQ_ERR_SUCCESS : MOSQ_ERR_NOMEM;
}

static int parse_options(struct gw_plugin *pl, const struct mosquitto_opt *opts, int n)
{
    int rc = MOSQ_ERR_SUCCESS;
    for (int i = 0; i < n && rc == MOSQ_ERR_SUCCESS; i++) {
        const char *k = opts[i].key, *v = opts[i].value ? opts[i].value : "";
        if (strcmp(k, "db_path") == 0) {
            rc = set_string(&pl->db_path, k, v);
        } else if (strcmp(k, "gateway_user") == 0) {
            rc = set_string(&pl->gateway_user, k, v);
        } else if (strcmp(k, "gateway_secret") == 0) {
            rc = set_string(&pl->gateway_secret, k, v);
        } else if (strcmp(k, "exit_with_gateway") == 0) {
            pl->exit_with_gateway = strcmp(v, "1") == 0 || strcmp(v, "true") == 0;
        } else if (strcmp(k, "trace") == 0) {
            pl->trace = strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "on") == 0;
        } else {
            /* The gateway writes this config: a typo must not silently drop the account. */
            mosquitto_log_printf(MOSQ_LOG_ERR, TAG "unknown option plugin_opt_%s", k);
            rc = MOSQ_ERR_INVAL;
        }
    }
    if (rc != MOSQ_ERR_SUCCESS)
        return rc;
    if (pl->db_path == NULL || pl->db_path[0] == '\0') {
        mosquitto_log_printf(MOSQ_LOG_ERR, TAG "plugin_opt_db_path is required");
        return MOSQ_ERR_INVAL;
    }
    bool has_user = pl->gateway_user != NULL && pl->gateway_user[0] != '\0';
    bool has_secret = pl->gateway_secret != NULL && pl->gateway_secret[0] != '\0';
    if (has_user != has_secret || (pl->gateway_user != NULL) != has_user ||
        (pl->gateway_secret != NULL) != has_secret) {
        mosquitto_log_printf(MOSQ_LOG_ERR, TAG "plugin_opt_gateway_user and "
                                              "plugin_opt_gateway_secret go together, non-empty");
        return MOSQ_ERR_INVAL;
    }
    return MOSQ_ERR_SUCCESS;
}

static void plugin_free(struct gw_plugin *pl)
{
    if (pl == NULL)
        return;
    gw_plugin_conns_fini(&pl->conns);
    gw_store_close(pl->store);
    free(pl->db_path);
    free(pl->gateway_user);
    if (pl->gateway_secret != NULL)
        mbedtls_platform_zeroize(pl->gateway_secret, strlen(pl->gateway_secret));
    free(pl->gateway_secret);
    free(pl);
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
    for (int i = 0; i < supported_version_count; i++)
        if (supported_versions[i] == 5)
            return 5;
    return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *options, int option_count)
{
    struct gw_plugin *pl = calloc(1, sizeof(*pl));
    size_t registered = 0;
    int rc;
    if (pl == NULL)
        return MOSQ_ERR_NOMEM;
    pl->id = identifier;
    rc = gw_plugin_conns_init(&pl->conns);
    if (rc != 0) {
        rc = MOSQ_ERR_NOMEM;
        goto err_free;
    }
    rc = parse_options(pl, options, option_count);
    if (rc != MOSQ_ERR_SUCCESS)
        goto err_free;
    rc = gw_store_open_readonly(pl->db_path, &pl->store);
    if (rc != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR,
                             TAG "cannot open the device store %s read-only: %s (the gateway "
                                 "creates it before it starts the broker)",
                             pl->db_path, gw_strerror(rc));
        rc = MOSQ_ERR_UNKNOWN;
        goto err_free;
    }
    for (; registered < N_EVENTS; registered++) {
        rc = mosquitto_callback_register(identifier, gw_plugin_events[registered].event,
                                         gw_plugin_events[registered].fn, NULL, pl);
        if (rc != MOSQ_ERR_SUCCESS) {
            mosquitto_log_printf(MOSQ_LOG_ERR, TAG "callback registration failed (%d)", rc);
            goto err_unregister;
        }
    }
    mosquitto_log_printf(MOSQ_LOG_INFO, TAG "store %s, gateway account %s%s", pl->db_path,
                         pl->gateway_user ? pl->gateway_user : "(none)",
                         pl->trace ? ", trace on" : "");
    *userdata = pl;
    return MOSQ_ERR_SUCCESS;

err_unregister:
    while (registered-- > 0)
        mosquitto_callback_unregister(identifier, gw_plugin_events[registered].event,
                                      gw_plugin_events[registered].fn, NULL);
err_free:
    plugin_free(pl);
    return rc;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
    struct gw_plugin *pl = userdata;
    (void)options;
    (void)option_count;
    if (pl == NULL)
        return MOSQ_ERR_SUCCESS;
    for (size_t i = 0; i < N_EVENTS; i++)
        mosquitto_callback_unregister(pl->id, gw_plugin_events[i].event, gw_plugin_events[i].fn,
                                      NULL);
    /* No "offline" here: the broker is stopping and the gateway treats that as all offline. */
    plugin_free(pl);
    return MOSQ_ERR_SUCCESS;
}
