/*
 * DESIGN: the catalogue tables: products (+ product_by_key), devices (+ device_by_key and
 * device_props) and firmware (+ firmware_by_product_version). Runs on the thread that owns
 * the txn (writes: the core thread).
 *
 * Invariants kept in every write transaction: each product has exactly one product_by_key
 * entry, each device one device_by_key entry (pk 0x00 dn, so a product's devices form one
 * prefix range), each firmware one firmware_by_product_version entry. Identity fields
 * (productKey, deviceName, a firmware's product and version) never change after creation, so
 * puts rewrite the row alone. Every check (lengths, uniqueness, existence) runs before the
 * first write, so a refused call changes nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gw_util.h"
#include "store_internal.h"

#define GW__PROPS_MAX 65536 /* latest property values of one device, JSON text */
#define GW__PK_GEN_LEN 16

/*
 * productKey / deviceName: non-empty, at most max bytes, UTF-8, and none of the characters
 * that would widen or break an MQTT topic (/sys/{pk}/{dn}/...) or are invisible.
 */
static int gw__check_ident(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);

    if (n == 0)
        return -EINVAL;
    if (n > max)
        return GW_E_VALUE_TOO_LONG;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '/' || c == '+' || c == '#')
            return -EINVAL;
    }
    return gw_utf8_valid(s, n) ? 0 : -EINVAL;
}

/* 16 random alphanumerics (rejection sampling keeps the 62 symbols equally likely). */
static int gw__gen_product_key(char *out)
{
    static const char alnum[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = 0;

    while (n < GW__PK_GEN_LEN) {
        uint8_t buf[32];
        int rc = gw_random_bytes(buf, sizeof(buf));

        if (rc)
            return rc;
        for (size_t i = 0; i < sizeof(buf) && n < GW__PK_GEN_LEN; i++)
            if (buf[i] < 248) /* 248 = 4 * 62 */
                out[n++] = alnum[buf[i] % 62];
    }
    out[n] = '\0';
    return 0;
}

/* ---- products ---- */

static int gw__product_key_taken(struct gw_txn *txn, const char *pk)
{
    MDB_val v;
    int rc = gw__get(txn, GW__DB_PRODUCT_BY_KEY, pk, strlen(pk), &v);

    if (rc == GW_E_NOT_FOUND)
        return 0;
    return rc ? rc : GW_E_PRODUCT_KEY_EXISTS;
}

int gw_store_product_create(struct gw_txn *txn, struct gw_product *p, int64_t now_ms)
{
    uint8_t row[GW__ROW_MAX], id[8];
    size_t len;
    int rc;

    if (!p)
        return -EINVAL;
    if ((rc = gw__txn_writable(txn)))
        return rc;
    if ((rc = gw__check_len(p->name, GW_NAME_MAX)))
        return rc;
    if (p->serializer != GW_SERIALIZER_JSON && p->serializer != GW_SERIALIZER_BINARY)
        return -EINVAL;
    if (p->product_key[0]) {
        if ((rc = gw__check_ident(p->product_key, GW_PK_MAX)) ||
            (rc = gw__product_key_taken(txn, p->product_key)))
            return rc;
    } else {
        /* 62^16 keys: a collision is astronomically rare, but never store a duplicate. */
        for (int tries = 0;; tries++) {
            if ((rc = gw__gen_product_key(p->product_key)))
                return rc;
            rc = gw__product_key_taken(txn, p->product_key);
            if (rc != GW_E_PRODUCT_KEY_EXISTS || tries == 8)
                break;
        }
        if (rc)
            return rc;
    }
    if ((rc = gw_random_hex(p->product_secret, 16)))
        return rc;
    if ((rc = gw__seq_next(txn, GW__SEQ_PRODUCT, &p->id)))
        return rc;
    p->create_time_ms = now_ms;
    len = gw__row_product_encode(p, row);
    gw__be64_put(id, p->id);
    if ((rc = gw__put(txn, GW__DB_PRODUCTS, id, 8, row, len, MDB_APPEND)) ||
        (rc = gw__put(txn, GW__DB_PRODUCT_BY_KEY, p->product_key, strlen(p->product_key), id,
                      8, MDB_NOOVERWRITE)))
        return gw__fail_after_write(txn, rc); /* EXISTS: sequence behind the table */
    return 0;
}

int gw_store_product_get(struct gw_txn *txn, uint64_t id, struct gw_product *out)
{
    MDB_val v;
    int rc;

    if (!txn || !out)
        return -EINVAL;
    rc = gw__get_id(txn, GW__DB_PRODUCTS, id, &v);
    if (rc)
        return rc;
    if (gw__row_product_decode(&v, id, out))
        return gw__corrupt(GW__DB_PRODUCTS, id);
    return 0;
}

int gw_store_product_get_by_key(struct gw_txn *txn, const char *product_key,
                                struct gw_product *out)
{
    MDB_val v;
    uint64_t id;
    int rc;

    if (!txn || !product_key || !out)
        return -EINVAL;
    if (strnlen(product_key, GW_PK_MAX + 1) > GW_PK_MAX || !product_key[0])
        return GW_E_NOT_FOUND;
    rc = gw__get(txn, GW__DB_PRODUCT_BY_KEY, product_key, strlen(product_key), &v);
    if (rc)
        return rc;
    if ((rc = gw__val_id(GW__DB_PRODUCT_BY_KEY, &v, &id)))
        return rc;
    rc = gw_store_product_get(txn, id, out);
    return rc == GW_E_NOT_FOUND ? gw__corrupt(GW__DB_PRODUCT_BY_KEY, id) : rc;
}

/* ---- devices ---- */

/* pk 0x00 dn; returns the key length. Both strings were length-checked. */
static size_t gw__device_key(uint8_t *key, const char *pk, const char *dn)
{
    size_t a = strlen(pk), b = strlen(dn);

    memcpy(key, pk, a);
    key[a] = 0x00;
    memcpy(key + a + 1, dn, b);
    return a + 1 + b;
}

int gw_store_device_create(struct gw_txn *txn, struct gw_device *d, int64_t now_ms)
{
    uint8_t row[GW__ROW_MAX], key[GW_PK_MAX + 1 + GW_DN_MAX], id[8];
    struct gw_product p;
    MDB_val v;
    size_t klen, len;
    int rc;

    if (!d)
        return -EINVAL;
    if ((rc = gw__txn_writable(txn)))
        return rc;
    if ((rc = gw__check_ident(d->device_name, GW_DN_MAX)) ||
        (rc = gw__check_len(d->device_secret, GW_SECRET_MAX)))
        return rc;
    rc = gw_store_product_get(txn, d->product_id, &p);
    if (rc)
        return rc == GW_E_NOT_FOUND ? GW_E_PRODUCT_NOT_EXISTS : rc;
    memcpy(d->product_key, p.product_key, sizeof(d->product_key));
    klen = gw__device_key(key, d->product_key, d->device_name);
    rc = gw__get(txn, GW__DB_DEVICE_BY_KEY, key, klen, &v);
    if (rc == 0)
        return GW_E_DEVICE_NAME_EXISTS;
    if (rc != GW_E_NOT_FOUND)
        return rc;
    if (!d->device_secret[0] && (rc = gw_random_hex(d->device_secret, 16)))
        return rc;
    if ((rc = gw__seq_next(txn, GW__SEQ_DEVICE, &d->id)))
        return rc;
    d->state = GW_DEVICE_INACTIVE;
    d->firmware_id = 0;
    d->last_seen_ms = 0;
    d->create_time_ms = now_ms;
    len = gw__row_device_encode(d, row);
    gw__be64_put(id, d->id);
    if ((rc = gw__put(txn, GW__DB_DEVICES, id, 8, row, len, MDB_APPEND)) ||
        (rc = gw__put(txn, GW__DB_DEVICE_BY_KEY, key, klen, id, 8, MDB_NOOVERWRITE)))
        return gw__fail_after_write(txn, rc);
    return 0;
}

int gw_store_device_get(struct gw_txn *txn, uint64_t id, struct gw_device *out)
{
    MDB_val v;
    int rc;

    if (!txn || !out)
        return -EINVAL;
    rc = gw__get_id(txn, GW__DB_DEVICES, id, &v);
    if (rc)
        return rc;
    if (gw__row_device_decode(&v, id, out))
        return gw__corrupt(GW__DB_DEVICES, id);
    return 0;
}

int gw_store_device_get_by_key(struct gw_txn *txn, const char *product_key,
                               const char *device_name, struct gw_device *out)
{
    uint8_t key[GW_PK_MAX + 1 + GW_DN_MAX];
    MDB_val v;
    uint64_t id;
    int rc;

    if (!txn || !product_key || !device_name || !out)
        return -EINVAL;
    if (strnlen(product_key, GW_PK_MAX + 1) > GW_PK_MAX ||
        strnlen(device_name, GW_DN_MAX + 1) > GW_DN_MAX)
        return GW_E_NOT_FOUND;
    rc = gw__get(txn, GW__DB_DEVICE_BY_KEY, key, gw__device_key(key, product_key, device_name),
                 &v);
    if (rc)
        return rc;
    if ((rc = gw__val_id(GW__DB_DEVICE_BY_KEY, &v, &id)))
        return rc;
    rc = gw_store_device_get(txn, id, out);
    return rc == GW_E_NOT_FOUND ? gw__corrupt(GW__DB_DEVICE_BY_KEY, id) : rc;
}

int gw_store_device_put(struct gw_txn *txn, const struct gw_device *d)
{
    uint8_t row[GW__ROW_MAX];
    struct gw_device old;
    int rc;

    if (!d)
        return -EINVAL;
    if ((rc = gw__txn_writable(txn)))
        return rc;
    if (d->state != GW_DEVICE_INACTIVE && d->state != GW_DEVICE_ONLINE &&
        d->state != GW_DEVICE_OFFLINE)
        return -EINVAL;
    if ((rc = gw__check_len(d->device_secret, GW_SECRET_MAX)) ||
        (rc = gw__check_len(d->product_key, GW_PK_MAX)) ||
        (rc = gw__check_len(d->device_name, GW_DN_MAX)))
        return rc;
    if ((rc = gw_store_device_get(txn, d->id, &old)))
        return rc;
    if (old.product_id != d->product_id || strcmp(old.product_key, d->product_key) != 0 ||
        strcmp(old.device_name, d->device_name) != 0)
        return -EINVAL;
    return gw__put_id(txn, GW__DB_DEVICES, d->id, row, gw__row_device_encode(d, row), 0);
}

int gw_store_device_props_get(struct gw_txn *txn, uint64_t id, char **out)
{
    MDB_val v;
    char *s;
    int rc;

    if (!txn || !out)
        return -EINVAL;
    rc = gw__get_id(txn, GW__DB_DEVICE_PROPS, id, &v);
    if (rc == GW_E_NOT_FOUND) {
        rc = gw__get_id(txn, GW__DB_DEVICES, id, &v); /* a device that exists has "{}" */
        if (rc)
            return rc;
        v.mv_data = "{}";
        v.mv_size = 2;
    } else if (rc) {
        return rc;
    }
    s = malloc(v.mv_size + 1);
    if (!s)
        return -ENOMEM;
    memcpy(s, v.mv_data, v.mv_size);
    s[v.mv_size] = '\0';
    *out = s;
    return 0;
}

int gw_store_device_props_put(struct gw_txn *txn, uint64_t id, const char *json)
{
    MDB_val v;
    size_t n;
    int rc;

    if (!json)
        return -EINVAL;
    if ((rc = gw__txn_writable(txn)))
        return rc;
    n = strnlen(json, GW__PROPS_MAX + 1);
    if (n > GW__PROPS_MAX)
        return GW_E_VALUE_TOO_LONG;
    if ((rc = gw__get_id(txn, GW__DB_DEVICES, id, &v)))
        return rc;
    return gw__put_id(txn, GW__DB_DEVICE_PROPS, id, json, n, 0);
}

/* ---- firmware ---- */

static int gw__firmware_check(const struct gw_firmware *f)
{
    int rc;

    if ((rc = gw__check_len(f->name, GW_NAME_MAX)) ||
        (rc = gw__check_len(f->description, GW_DESC_MAX)) ||
        (rc = gw__check_len(f->version, GW_VERSION_MAX)) ||
        (rc = gw__check_len(f->file_url, GW_URL_MAX)) ||
        (rc = gw__check_len(f->digest_algorithm, sizeof(f->digest_algorithm) - 1)) ||
        (rc = gw__check_len(f->digest_value, sizeof(f->digest_value) - 1)) ||
        (rc = gw__check_len(f->sha256, sizeof(f->sha256) - 1)) ||
        (rc = gw__check_len(f->sign, GW_SIGN_MAX)))
        return rc;
    return f->version[0] ? 0 : -EINVAL;
}

/* product_id(8) version */
static size_t gw__firmware_pv_key(uint8_t *key, uint64_t product_id, const char *version)
{
    size_t n = strlen(version);

    gw__be64_put(key, product_id);
    memcpy(key + 8, version, n);
    return 8 + n;
}

int gw_store_firmware_create(struct gw_txn *txn, struct gw_firmware *f, int64_t now_ms)
{
    uint8_t row[GW__ROW_MAX], key[8 + GW_VERSION_MAX], id[8];
    struct gw_product p;
    MDB_val v;
    size_t klen, len;
    int rc;

    if (!f)
        return -EINVAL;
    if ((rc = gw__txn_writable(txn)) || (rc = gw__firmware_check(f)))
        return rc;
    klen = gw__firmware_pv_key(key, f->product_id, f->version);
    rc = gw__get(txn, GW__DB_FIRMWARE_BY_PV, key, klen, &v);
    if (rc == 0)
        return GW_E_FIRMWARE_VERSION_DUPLICATE;
    if (rc != GW_E_NOT_FOUND)
        return rc;
    rc = gw_store_product_get(txn, f->product_id, &p);
    if (rc)
        return rc == GW_E_NOT_FOUND ? GW_E_PRODUCT_NOT_EXISTS : rc;
    if ((rc = gw__seq_next(txn, GW__SEQ_FIRMWARE, &f->id)))
        return rc;
    f->create_time_ms = now_ms;
    len = gw__row_firmware_encode(f, row);
    gw__be64_put(id, f->id);
    if ((rc = gw__put(txn, GW__DB_FIRMWARE, id, 8, row, len, MDB_APPEND)) ||
        (rc = gw__put(txn, GW__DB_FIRMWARE_BY_PV, key, klen, id, 8, MDB_NOOVERWRITE)))
        return gw__fail_after_write(txn, rc);
    return 0;
}

int gw_store_firmware_get(struct gw_txn *txn, uint64_t id, struct gw_firmware *out)
{
    MDB_val v;
    int rc;

    if (!txn || !out)
        return -EINVAL;
    rc = gw__get_id(txn, GW__DB_FIRMWARE, id, &v);
    if (rc)
        return rc;
    if (gw__row_firmware_decode(&v, id, out))
        return gw__corrupt(GW__DB_FIRMWARE, id);
    return 0;
}

int gw_store_firmware_get_by_version(struct gw_txn *txn, uint64_t product_id,
                                     const char *version, struct gw_firmware *out)
{
    uint8_t key[8 + GW_VERSION_MAX];
    MDB_val v;
    uint64_t id;
    int rc;

    if (!txn || !version || !out)
        return -EINVAL;
    if (strnlen(version, GW_VERSION_MAX + 1) > GW_VERSION_MAX)
        return GW_E_NOT_FOUND;
    rc = gw__get(txn, GW__DB_FIRMWARE_BY_PV, key, gw__firmware_pv_key(key, product_id, version),
                 &v);
    if (rc)
        return rc;
    if ((rc = gw__val_id(GW__DB_FIRMWARE_BY_PV, &v, &id)))
        return rc;
    rc = gw_store_firmware_get(txn, id, out);
    return rc == GW_E_NOT_FOUND ? gw__corrupt(GW__DB_FIRMWARE_BY_PV, id) : rc;
}

int gw_store_firmware_put(struct gw_txn *txn, const struct gw_firmware *f)
{
    uint8_t row[GW__ROW_MAX];
    struct gw_firmware old;
    int rc;

    if (!f)
        return -EINVAL;
    if ((rc = gw__txn_writable(txn)) || (rc = gw__firmware_check(f)))
        return rc;
    if ((rc = gw_store_firmware_get(txn, f->id, &old)))
        return rc;
    if (old.product_id != f->product_id || strcmp(old.version, f->version) != 0)
        return -EINVAL;
    return gw__put_id(txn, GW__DB_FIRMWARE, f->id, row, gw__row_firmware_encode(f, row), 0);
}
