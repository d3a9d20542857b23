#ifndef GW_PLUGIN_CORE_H
#define GW_PLUGIN_CORE_H
/*
 * The broker-independent half of the mosquitto auth/ACL/presence plugin (iotgw_auth.so):
 * device identity checks, the topic rules of the ACL, MQTT filter matching, the table of
 * live connections and the presence messages. Nothing here includes a mosquitto header, so
 * it is unit-tested on its own (tests/conformance/plugin/test_plugin_core.c) under ASan.
 *
 * Threads: mosquitto 2.0 runs every plugin callback on its one main thread; so does
 * everything here. No locks.
 *
 * Presence contract (what the gateway must do with `$iotgw/presence/{pk}/{dn}`):
 *  - payloads are {"event":"online"|"subscribed"|"offline","seq":N}; N is a per-connection
 *    sequence number from one counter of the broker process (1, 2, ...), the same in the
 *    three events of one connection;
 *  - "online" at a successful CONNECT, "subscribed" the first time that connection
 *    subscribes to a filter that covers its downstream topics (/sys/pk/dn/thing/ota/upgrade
 *    matches it), "offline" when that connection ends;
 *  - events of different connections may arrive out of order: on a client-id takeover the
 *    new connection's online(seq 2) comes BEFORE the old one's offline(seq 1). The gateway
 *    therefore applies "offline" only when its seq equals the device's current seq (the seq
 *    of the last "online"), and ignores "subscribed" for any other seq;
 *  - the broker sends no "offline" when it stops (and a restarted broker counts from 1
 *    again): the gateway treats every device as offline when its own broker connection
 *    drops or the broker restarts;
 *  - messages are QoS 1, not retained, and `#` does not match `$` topics: the gateway
 *    subscribes to "$iotgw/presence/#" explicitly, as soon as the broker listens: events
 *    published while it is not subscribed are lost (such a device stays unknown until it
 *    reconnects).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw_store.h"

/* Topic prefix of the plugin's own messages; devices may neither publish nor subscribe here. */
#define GW_PLUGIN_PRESENCE_PREFIX "$iotgw/presence/"
/* Enough for "$iotgw/presence/" + pk + "/" + dn + NUL. */
#define GW_PLUGIN_TOPIC_MAX (sizeof(GW_PLUGIN_PRESENCE_PREFIX) + GW_PK_MAX + 1 + GW_DN_MAX + 1)
/* Enough for {"event":"subscribed","seq":18446744073709551615} + NUL. */
#define GW_PLUGIN_PAYLOAD_MAX 64

enum gw_plugin_event {
    GW_PLUGIN_EV_ONLINE,
    GW_PLUGIN_EV_SUBSCRIBED,
    GW_PLUGIN_EV_OFFLINE,
};

/* ---- identity ---- */

/*
 * Splits an MQTT login into (pk, dn): client_id must be "pk.dn" and username "dn&pk" for the
 * same pair, each part obeying the identity rules of gw_auth.h (no '/', '+', '#', '&' or
 * control characters, no '.' in pk). v5 plugins do not get mosquitto's special-character
 * check, so a device named "+" or "#" would otherwise widen its own topic prefix.
 * Borrows the strings; fills pk[GW_PK_MAX + 1] and dn[GW_DN_MAX + 1]; *reason (may be NULL)
 * gets a static text on failure. Returns 0 or GW_E_AUTH_FAILED.
 */
int gw_plugin_identity(const char *client_id, const char *username, char *pk, char *dn,
                       const char **reason);

/* ---- topics ---- */

/*
 * true when a device (pk, dn) may use `topic` (a topic name or a subscription filter): it
 * must start with "/sys/{pk}/{dn}/". Filters are checked as plain prefixes, so a wildcard
 * above the device's own level ("/sys/pk/+/...", "#") is refused, and "$..." topics
 * (including $iotgw/ and $share/) never match.
 */
bool gw_plugin_topic_allowed(const char *topic, const char *pk, const char *dn);

/* MQTT filter matching (`+` one level, `#` the rest including the parent level). A filter
 * starting with a wildcard does not match a topic starting with '$' (MQTT 3.1.1 §4.7.2). */
bool gw_plugin_filter_match(const char *filter, const char *topic);

/* true when a subscription to `filter` delivers the device's downstream messages, i.e. it
 * matches /sys/{pk}/{dn}/thing/ota/upgrade ("/sys/pk/dn/#", "/sys/pk/dn/thing/#", ...). */
bool gw_plugin_filter_is_downstream(const char *filter, const char *pk, const char *dn);

/* ---- presence messages ---- */

/* "$iotgw/presence/{pk}/{dn}" into buf; -ENOSPC when it does not fit (buf is then ""). */
int gw_plugin_presence_topic(const char *pk, const char *dn, char *buf, size_t len);
/* {"event":"...","seq":N} into buf; returns its length, or -ENOSPC / -EINVAL. */
int gw_plugin_presence_payload(enum gw_plugin_event ev, uint64_t seq, char *buf, size_t len);

/* ---- live connections, keyed by the broker's client pointer ----
 * A pointer names a connection only from its successful CONNECT to its DISCONNECT (the
 * broker reuses freed contexts), so an entry is added at auth and removed at disconnect. */

struct gw_plugin_conn {
    const void *client; /* the broker's struct mosquitto *; never dereferenced here */
    uint64_t seq;
    bool subscribed; /* "subscribed" already published for this connection */
    char pk[GW_PK_MAX + 1];
    char dn[GW_DN_MAX + 1];
    struct gw_plugin_conn *next; /* bucket chain (private) */
};

struct gw_plugin_conns {
    struct gw_plugin_conn **buckets; /* owned */
    size_t nbuckets;                 /* power of two */
    size_t count;
    uint64_t last_seq; /* the seq given to the latest connection; 0 before the first */
};

int gw_plugin_conns_init(struct gw_plugin_conns *m);
/* Frees every entry. */
void gw_plugin_conns_fini(struct gw_plugin_conns *m);
/*
 * Adds a connection with the next seq. *out (borrowed, valid until the entry is removed)
 * gets the new entry. -EEXIST if client is already present (the caller removes it first),
 * -ENOMEM.
 */
int gw_plugin_conns_add(struct gw_plugin_conns *m, const void *client, const char *pk,
                        const char *dn, struct gw_plugin_conn **out);
/* The entry of client, or NULL. Borrowed. */
struct gw_plugin_conn *gw_plugin_conns_find(const struct gw_plugin_conns *m, const void *client);
/* Removes client's entry and copies it into *out (next = NULL). GW_E_NOT_FOUND if absent. */
int gw_plugin_conns_remove(struct gw_plugin_conns *m, const void *client,
                           struct gw_plugin_conn *out);

#endif
