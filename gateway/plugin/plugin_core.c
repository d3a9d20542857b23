/*
 * DESIGN: the decisions of the mosquitto plugin that do not need the broker: who a login
 * claims to be, which topics a device may touch, whether a filter reaches the device's
 * downstream topics, the presence message texts, and the table of live connections
 * (client pointer -> seq, pk, dn). iotgw_auth.c feeds it the broker's events.
 *
 * Thread: the broker's main thread only (mosquitto 2.0 calls plugins from its one loop).
 * Invariants: a table entry exists exactly from a successful BASIC_AUTH to the DISCONNECT
 * of that client pointer; seqs are handed out strictly increasing and never reused in one
 * broker process.
 */
#include "plugin_core.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_auth.h"
#include "gw_error.h"

#define CONNS_INITIAL_BUCKETS 64

int gw_plugin_identity(const char *client_id, const char *username, char *pk, char *dn,
                       const char **reason)
{
    struct gw_auth_identity by_id, by_user;
    const char *why = NULL;

    pk[0] = '\0';
    dn[0] = '\0';
    if (gw_auth_parse_client_id(client_id, &by_id, &why) != 0 ||
        gw_auth_parse_username(username, &by_user, &why) != 0)
        goto err;
    if (strcmp(by_id.product_key, by_user.product_key) != 0 ||
        strcmp(by_id.device_name, by_user.device_name) != 0) {
        why = "clientId and username name different devices";
        goto err;
    }
    /* gw_auth bounds match the store's (32 / 64); checked so a change cannot overflow. */
    if (strlen(by_id.product_key) > GW_PK_MAX || strlen(by_id.device_name) > GW_DN_MAX) {
        why = "identity longer than the store allows";
        goto err;
    }
    strcpy(pk, by_id.product_key);
    strcpy(dn, by_id.device_name);
    return 0;
err:
    if (reason)
        *reason = why;
    return GW_E_AUTH_FAILED;
}

bool gw_plugin_topic_allowed(const char *topic, const char *pk, const char *dn)
{
    if (topic == NULL)
        return false;
    /* "/sys/" pk "/" dn "/" compared piecewise: no buffer, no truncation. */
    size_t pklen = strlen(pk), dnlen = strlen(dn);
    const char *p = topic;
    if (strncmp(p, "/sys/", 5) != 0)
        return false;
    p += 5;
    if (strncmp(p, pk, pklen) != 0 || p[pklen] != '/')
        return false;
    p += pklen + 1;
    if (strncmp(p, dn, dnlen) != 0 || p[dnlen] != '/')
        return false;
    return true;
}

/* Length of the level starting at s (up to '/' or the end). */
static size_t level_len(const char *s)
{
    const char *e = strchr(s, '/');
    return e ? (size_t)(e - s) : strlen(s);
}

bool gw_plugin_filter_match(const char *filter, const char *topic)
{
    if (filter == NULL || topic == NULL || filter[0] == '\0')
        return false;
    if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
        return false;
    const char *f = filter, *t = topic;
    for (;;) {
        size_t fl = level_len(f);
        if (fl == 1 && f[0] == '#')
            return f[1] == '\0'; /* '#' matches the parent level and everything below */
        size_t tl = level_len(t);
        if (!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, t, fl) != 0))
            return false;
        bool fend = f[fl] == '\0', tend = t[tl] == '\0';
        if (fend || tend) {
            if (fend && tend)
                return true;
            /* "a/b/#" matches "a/b": the filter may continue with exactly "/#". */
            return tend && strcmp(f + fl, "/#") == 0;
        }
        f += fl + 1;
        t += tl + 1;
    }
}

bool gw_plugin_filter_is_downstream(const char *filter, const char *pk, const char *dn)
{
    char topic[5 + GW_PK_MAX + 1 + GW_DN_MAX + sizeof("/thing/ota/upgrade")];
    int n = snprintf(topic, sizeof(topic), "/sys/%s/%s/thing/ota/upgrade", pk, dn);
    if (n < 0 || (size_t)n >= sizeof(topic))
        return false;
    return gw_plugin_filter_match(filter, topic);
}

int gw_plugin_presence_topic(const char *pk, const char *dn, char *buf, size_t len)
{
    int n = snprintf(buf, len, GW_PLUGIN_PRESENCE_PREFIX "%s/%s", pk, dn);
    if (n < 0 || (size_t)n >= len) {
        if (len > 0)
            buf[0] = '\0';
        return -ENOSPC;
    }
    return 0;
}

int gw_plugin_presence_payload(enum gw_plugin_event ev, uint64_t seq, char *buf, size_t len)
{
    const char *name;
    switch (ev) {
    case GW_PLUGIN_EV_ONLINE:
        name = "online";
        break;
    case GW_PLUGIN_EV_SUBSCRIBED:
        name = "subscribed";
        break;
    case GW_PLUGIN_EV_OFFLINE:
        name = "offline";
        break;
    default:
        return -EINVAL;
    }
    /* A fixed two-field object of a constant string and an integer: nothing to escape, and
     * printing it here avoids a cJSON tree per connect on the broker's only thread. */
    int n = snprintf(buf, len, "{\"event\":\"%s\",\"seq\":%" PRIu64 "}", name, seq);
    if (n < 0 || (size_t)n >= len)
        return -ENOSPC;
    return n;
}

/* ---- connection table ---- */

static size_t conn_hash(const void *client, size_t nbuckets)
{
    /* Contexts are heap blocks: drop the alignment bits, then mix (Fibonacci hashing). */
    uint64_t x = (uint64_t)(uintptr_t)client >> 4;
    x *= 0x9E3779B97F4A7C15ULL;
    return (size_t)(x >> 32) & (nbuckets - 1);
}

int gw_plugin_conns_init(struct gw_plugin_conns *m)
{
    memset(m, 0, sizeof(*m));
    m->buckets = calloc(CONNS_INITIAL_BUCKETS, sizeof(*m->buckets));
    if (m->buckets == NULL)
        return -ENOMEM;
    m->nbuckets = CONNS_INITIAL_BUCKETS;
    return 0;
}

void gw_plugin_conns_fini(struct gw_plugin_conns *m)
{
    if (m->buckets == NULL)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct gw_plugin_conn *c = m->buckets[i];
        while (c != NULL) {
            struct gw_plugin_conn *next = c->next;
            free(c);
            c = next;
        }
    }
    free(m->buckets);
    memset(m, 0, sizeof(*m));
}

/* Doubles the bucket array; on -ENOMEM the table simply stays denser (still correct). */
static void conns_grow(struct gw_plugin_conns *m)
{
    size_t n = m->nbuckets * 2;
    struct gw_plugin_conn **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct gw_plugin_conn *c = m->buckets[i];
        while (c != NULL) {
            struct gw_plugin_conn *next = c->next;
            size_t h = conn_hash(c->client, n);
            c->next = b[h];
            b[h] = c;
            c = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

struct gw_plugin_conn *gw_plugin_conns_find(const struct gw_plugin_conns *m, const void *client)
{
    for (struct gw_plugin_conn *c = m->buckets[conn_hash(client, m->nbuckets)]; c != NULL;
         c = c->next)
        if (c->client == client)
            return c;
    return NULL;
}

int gw_plugin_conns_add(struct gw_plugin_conns *m, const void *client, const char *pk,
                        const char *dn, struct gw_plugin_conn **out)
{
    if (gw_plugin_conns_find(m, client) != NULL)
        return -EEXIST;
    if (strlen(pk) > GW_PK_MAX || strlen(dn) > GW_DN_MAX)
        return -EINVAL;
    struct gw_plugin_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->client = client;
    c->seq = ++m->last_seq;
    strcpy(c->pk, pk);
    strcpy(c->dn, dn);
    if (m->count + 1 > m->nbuckets)
        conns_grow(m);
    size_t h = conn_hash(client, m->nbuckets);
    c->next = m->buckets[h];
    m->buckets[h] = c;
    m->count++;
    *out = c;
    return 0;
}

int gw_plugin_conns_remove(struct gw_plugin_conns *m, const void *client,
                           struct gw_plugin_conn *out)
{
    struct gw_plugin_conn **pp = &m->buckets[conn_hash(client, m->nbuckets)];
    for (; *pp != NULL; pp = &(*pp)->next) {
        struct gw_plugin_conn *c = *pp;
        if (c->client != client)
            continue;
        *pp = c->next;
        m->count--;
        *out = *c;
        out->next = NULL;
        free(c);
        return 0;
    }
    return GW_E_NOT_FOUND;
}
