/*
 * DESIGN: test helper for the plugin conformance test: writes a product and devices into an
 * LMDB store exactly as the gateway does (gw_store_open + gw_store_product_create +
 * gw_store_device_create), makes the directory shareable with the broker's user when run as
 * root, and prints what it created as one JSON object on stdout:
 *   {"devices":[{"productKey","deviceName","deviceSecret","password"}...],
 *    "mapSize":N,"mapUsed":N}
 * (password = gw_auth_password, for the test to compare with its own HMAC).
 *
 * Usage: plugin_store_tool [-m map_mb] [-g group] [-n count] dir productKey [deviceName...]
 *   -m  map size in MiB (default 64); a larger one than the store has grows it
 *   -g  gw_store_prepare_shared_dir(dir, group) after writing (a no-op unless root)
 *   -n  also create `count` devices named bulk-<i> (not printed), to grow the data file
 * Single-threaded, one process; exit 0 on success, 1 with a message on stderr otherwise.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "gw_auth.h"
#include "gw_error.h"
#include "gw_store.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The product with key pk, created when missing. */
static int ensure_product(struct gw_txn *txn, const char *pk, uint64_t *id)
{
    struct gw_product p;
    int rc = gw_store_product_get_by_key(txn, pk, &p);
    if (rc == GW_E_NOT_FOUND) {
        memset(&p, 0, sizeof(p));
        snprintf(p.name, sizeof(p.name), "product %s", pk);
        if (strlen(pk) >= sizeof(p.product_key))
            return GW_E_VALUE_TOO_LONG;
        strcpy(p.product_key, pk);
        rc = gw_store_product_create(txn, &p, now_ms());
    }
    if (rc == 0)
        *id = p.id;
    return rc;
}

static int add_device(struct gw_txn *txn, uint64_t product_id, const char *dn, cJSON *list)
{
    struct gw_device d;
    char password[GW_AUTH_HEX_SIZE];
    memset(&d, 0, sizeof(d));
    d.product_id = product_id;
    if (strlen(dn) >= sizeof(d.device_name))
        return GW_E_VALUE_TOO_LONG;
    strcpy(d.device_name, dn);
    int rc = gw_store_device_create(txn, &d, now_ms());
    if (rc != 0 || list == NULL)
        return rc;
    rc = gw_auth_password(d.product_key, d.device_name, d.device_secret, password);
    if (rc != 0)
        return rc;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return -ENOMEM;
    cJSON_AddItemToArray(list, o);
    if (!cJSON_AddStringToObject(o, "productKey", d.product_key) ||
        !cJSON_AddStringToObject(o, "deviceName", d.device_name) ||
        !cJSON_AddStringToObject(o, "deviceSecret", d.device_secret) ||
        !cJSON_AddStringToObject(o, "password", password))
        return -ENOMEM;
    return 0;
}

static int fill(struct gw_store *store, const char *pk, char **names, int nnames, long bulk,
                cJSON *out)
{
    struct gw_txn *txn;
    struct gw_store_stats st;
    uint64_t product_id;
    cJSON *list = cJSON_AddArrayToObject(out, "devices");
    int rc;

    if (list == NULL)
        return -ENOMEM;
    rc = gw_store_txn_begin(store, true, &txn);
    if (rc)
        return rc;
    rc = ensure_product(txn, pk, &product_id);
    for (int i = 0; rc == 0 && i < nnames; i++)
        rc = add_device(txn, product_id, names[i], list);
    for (long i = 0; rc == 0 && i < bulk; i++) {
        char dn[32];
        snprintf(dn, sizeof(dn), "bulk-%ld", i);
        rc = add_device(txn, product_id, dn, NULL);
    }
    if (rc) {
        gw_store_txn_abort(txn);
        return rc;
    }
    rc = gw_store_txn_commit(txn);
    if (rc)
        return rc;
    rc = gw_store_txn_begin(store, false, &txn);
    if (rc)
        return rc;
    rc = gw_store_stats(txn, &st);
    gw_store_txn_abort(txn);
    if (rc)
        return rc;
    if (!cJSON_AddNumberToObject(out, "mapSize", (double)st.map_size) ||
        !cJSON_AddNumberToObject(out, "mapUsed", (double)st.map_used))
        return -ENOMEM;
    return 0;
}

int main(int argc, char **argv)
{
    unsigned long map_mb = 64;
    const char *group = NULL;
    long bulk = 0;
    int opt, rc;

    while ((opt = getopt(argc, argv, "m:g:n:")) != -1) {
        switch (opt) {
        case 'm':
            map_mb = strtoul(optarg, NULL, 10);
            break;
        case 'g':
            group = optarg;
            break;
        case 'n':
            bulk = strtol(optarg, NULL, 10);
            break;
        default:
            goto usage;
        }
    }
    if (argc - optind < 2 || map_mb == 0 || bulk < 0)
        goto usage;
    const char *dir = argv[optind], *pk = argv[optind + 1];

    struct gw_store *store;
    rc = gw_store_open(dir, map_mb, &store);
    if (rc) {
        fprintf(stderr, "plugin_store_tool: open %s: %s\n", dir, gw_strerror(rc));
        return 1;
    }
    cJSON *out = cJSON_CreateObject();
    rc = out ? fill(store, pk, argv + optind + 2, argc - optind - 2, bulk, out) : -ENOMEM;
    gw_store_close(store);
    if (rc == 0 && group != NULL)
        rc = gw_store_prepare_shared_dir(dir, group);
    if (rc == 0) {
        char *text = cJSON_PrintUnformatted(out);
        if (text == NULL) {
            rc = -ENOMEM;
        } else {
            printf("%s\n", text);
            cJSON_free(text);
        }
    }
    cJSON_Delete(out);
    if (rc) {
        fprintf(stderr, "plugin_store_tool: %s\n", gw_strerror(rc));
        return 1;
    }
    return 0;

usage:
    fprintf(stderr,
            "usage: plugin_store_tool [-m map_mb] [-g group] [-n count] dir productKey "
            "[deviceName...]\n");
    return 1;
}
