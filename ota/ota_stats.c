/*
 * DESIGN: record statistics for the admin API. gw_ota_status_statistics counts devices the
 * way the reference does (REFERENCE §1.6): each device once, under the first status it has
 * in the priority order 30, 0, 10, 20, 40, 50. Reads only; any thread with its own txn.
 * Per device it keeps the best rank in an open-addressing map (one task has one record per
 * device, so a task filter counts its records directly).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gw_ota.h"

/* Rank of a status index (0..5 = statuses 0,10,20,30,40,50) in the priority order. */
static const uint8_t rank_of_index[6] = { 1, 2, 3, 0, 4, 5 };
/* Status index of a rank. */
static const uint8_t index_of_rank[6] = { 3, 0, 1, 2, 4, 5 };

struct dev_map {
    uint64_t *keys; /* 0 = empty slot (device ids start at 1) */
    uint8_t *rank;
    size_t n, cap;  /* cap is a power of two */
};

static size_t slot_of(uint64_t key, size_t cap)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (size_t)key & (cap - 1);
}

static int map_grow(struct dev_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    uint64_t *keys = calloc(cap, sizeof(*keys));
    uint8_t *rank = malloc(cap);

    if (!keys || !rank) {
        free(keys);
        free(rank);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        size_t s;
        if (!m->keys[i])
            continue;
        for (s = slot_of(m->keys[i], cap); keys[s]; s = (s + 1) & (cap - 1))
            ;
        keys[s] = m->keys[i];
        rank[s] = m->rank[i];
    }
    free(m->keys);
    free(m->rank);
    m->keys = keys;
    m->rank = rank;
    m->cap = cap;
    return 0;
}

static int map_note(struct dev_map *m, uint64_t device_id, uint8_t rank)
{
    size_t s;
    int rc;

    if ((m->n + 1) * 2 > m->cap) {
        rc = map_grow(m);
        if (rc)
            return rc;
    }
    for (s = slot_of(device_id, m->cap); m->keys[s]; s = (s + 1) & (m->cap - 1)) {
        if (m->keys[s] == device_id) {
            if (rank < m->rank[s])
                m->rank[s] = rank;
            return 0;
        }
    }
    m->keys[s] = device_id;
    m->rank[s] = rank;
    m->n++;
    return 0;
}

struct stat_ctx {
    struct dev_map map;
    uint64_t *counts;   /* direct counting (one task) */
    uint64_t firmware_id;
    struct gw_txn *txn;
};

static int count_direct(void *vctx, const struct gw_record *r)
{
    struct stat_ctx *c = vctx;
    int i = gw_record_status_index(r->status);
    if (i >= 0)
        c->counts[i]++;
    return 0;
}

static int count_by_device(void *vctx, const struct gw_record *r)
{
    struct stat_ctx *c = vctx;
    int i = gw_record_status_index(r->status);
    if (i < 0)
        return 0;
    if (c->firmware_id && r->firmware_id != c->firmware_id)
        return 0;
    return map_note(&c->map, r->device_id, rank_of_index[i]);
}

static int walk_task_of_firmware(void *vctx, const struct gw_task *t)
{
    struct stat_ctx *c = vctx;
    if (t->firmware_id != c->firmware_id)
        return 0;
    return gw_store_record_iter_task(c->txn, t->id, 0, count_by_device, c);
}

int gw_ota_status_statistics(struct gw_txn *txn, uint64_t firmware_id, uint64_t task_id,
                             uint64_t counts[6])
{
    struct stat_ctx c = { .counts = counts, .firmware_id = firmware_id, .txn = txn };
    struct gw_task t;
    int rc;

    memset(counts, 0, 6 * sizeof(*counts));
    if (task_id) {
        rc = gw_store_task_get(txn, task_id, &t);
        if (rc == GW_E_NOT_FOUND)
            return 0;
        if (rc)
            return rc;
        if (firmware_id && t.firmware_id != firmware_id)
            return 0;
        return gw_store_record_iter_task(txn, task_id, 0, count_direct, &c);
    }
    if (firmware_id)
        rc = gw_store_task_iter(txn, false, 0, walk_task_of_firmware, &c);
    else
        rc = gw_store_record_iter(txn, false, 0, count_by_device, &c);
    if (rc == 0) {
        for (size_t i = 0; i < c.map.cap; i++)
            if (c.map.keys[i])
                counts[index_of_rank[c.map.rank[i]]]++;
    }
    free(c.map.keys);
    free(c.map.rank);
    return rc;
}

int gw_ota_task_record_counts(struct gw_txn *txn, uint64_t task_id, uint64_t counts[6])
{
    struct gw_task t;
    int rc = gw_store_task_get(txn, task_id, &t);

    if (rc == GW_E_NOT_FOUND)
        return GW_E_TASK_NOT_EXISTS;
    if (rc)
        return rc;
    for (int i = 0; i < 6; i++)
        counts[i] = t.status_count[i];
    return 0;
}
