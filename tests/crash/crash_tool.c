/*
 * DESIGN: the two halves of the crash-consistency proof (issue 3), each its own process so
 * that no LMDB environment ever crosses a fork:
 *
 *   crash_tool run DIR SEED   applies random OTA event batches, each in one durable write
 *                             transaction, and prints "ack N" after batch N committed. It
 *                             runs until killed (the driver sends SIGKILL at random moments).
 *   crash_tool check DIR      reopens the store and checks every invariant of the engine;
 *                             prints "ledger N" (the last batch whose writes are in the
 *                             store) and exits 0, or prints the first violation and exits 1.
 *
 * Each batch also writes batch number N into ten property slots of a "ledger" device. After
 * a kill, all ten slots must hold the same N (a batch is there whole or not at all) and N
 * must be >= the last acknowledged batch (nothing acknowledged is lost).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "gw_error.h"
#include "gw_log.h"
#include "gw_ota.h"
#include "gw_store.h"

#define CRASH_DEVICES 120
#define CRASH_FIRMWARE 4
#define CRASH_LEDGER_SLOTS 10

static unsigned long long crash_rng;

static uint32_t crash_rand(void)
{
    crash_rng = crash_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(crash_rng >> 33);
}

static uint32_t crash_pick(uint32_t n)
{
    return n ? crash_rand() % n : 0;
}

static int crash_fail(const char *what, int rc)
{
    fprintf(stderr, "crash_tool: %s: %s (%d)\n", what, gw_strerror(rc), rc);
    return 3;
}

/* ---- run ---- */

struct crash_world {
    struct gw_store *store;
    struct gw_ota_engine *eng;
    struct gw_ota_actions acts;
    uint64_t product_id;
    uint64_t ledger_id;
    uint64_t devices[CRASH_DEVICES];
    uint64_t firmware[CRASH_FIRMWARE];
    char versions[CRASH_FIRMWARE][16];
    int64_t now_ms;
};

static int crash_setup(struct crash_world *w)
{
    struct gw_txn *txn = NULL;
    struct gw_product p = { 0 };
    struct gw_device d;
    int rc;

    rc = gw_store_txn_begin(w->store, true, &txn);
    if (rc)
        return rc;
    /* A store that already has the product was set up by an earlier (killed) run. */
    if (gw_store_product_get_by_key(txn, "crashpk", &p) == 0) {
        gw_store_txn_abort(txn);
        return 0;
    }
    snprintf(p.name, sizeof(p.name), "crash");
    snprintf(p.product_key, sizeof(p.product_key), "crashpk");
    rc = gw_store_product_create(txn, &p, w->now_ms);
    for (int i = 0; rc == 0 && i <= CRASH_DEVICES; i++) {
        memset(&d, 0, sizeof(d));
        d.product_id = p.id;
        snprintf(d.device_name, sizeof(d.device_name), i == CRASH_DEVICES ? "ledger" : "d%03d", i);
        rc = gw_store_device_create(txn, &d, w->now_ms);
    }
    for (int i = 0; rc == 0 && i < CRASH_FIRMWARE; i++) {
        struct gw_firmware f = { .product_id = p.id, .file_size = 100 };
        snprintf(f.name, sizeof(f.name), "fw%d", i);
        snprintf(f.version, sizeof(f.version), "v%d", i);
        snprintf(f.file_url, sizeof(f.file_url), "/fw/%d", i);
        snprintf(f.digest_value, sizeof(f.digest_value), "%032d", i);
        snprintf(f.sha256, sizeof(f.sha256), "%064d", i);
        rc = gw_ota_firmware_create(w->eng, txn, &f, w->now_ms);
    }
    if (rc) {
        gw_store_txn_abort(txn);
        return rc;
    }
    return gw_store_txn_commit(txn);
}

static int crash_load_ids(struct crash_world *w, long long *ledger)
{
    struct gw_txn *txn = NULL;
    struct gw_product p;
    struct gw_device d;
    char name[16], *props = NULL;
    int rc;

    rc = gw_store_txn_begin(w->store, false, &txn);
    if (rc)
        return rc;
    rc = gw_store_product_get_by_key(txn, "crashpk", &p);
    w->product_id = p.id;
    for (int i = 0; rc == 0 && i <= CRASH_DEVICES; i++) {
        snprintf(name, sizeof(name), i == CRASH_DEVICES ? "ledger" : "d%03d", i);
        rc = gw_store_device_get_by_key(txn, "crashpk", name, &d);
        if (i == CRASH_DEVICES)
            w->ledger_id = d.id;
        else
            w->devices[i] = d.id;
    }
    for (int i = 0; rc == 0 && i < CRASH_FIRMWARE; i++) {
        struct gw_firmware f;
        snprintf(w->versions[i], sizeof(w->versions[i]), "v%d", i);
        rc = gw_store_firmware_get_by_version(txn, p.id, w->versions[i], &f);
        w->firmware[i] = f.id;
    }
    if (rc == 0)
        rc = gw_store_device_props_get(txn, w->ledger_id, &props);
    if (rc == 0) {
        cJSON *j = cJSON_Parse(props);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "s0");
        *ledger = cJSON_IsNumber(s) ? (long long)s->valuedouble : 0;
        cJSON_Delete(j);
    }
    free(props);
    gw_store_txn_abort(txn);
    return rc;
}

/* One random event. Business-rule refusals change nothing and are fine; anything else is
 * returned (the batch is then aborted). */
static int crash_event(struct crash_world *w, struct gw_txn *txn)
{
    uint64_t dev = w->devices[crash_pick(CRASH_DEVICES)];
    uint32_t fwi = crash_pick(CRASH_FIRMWARE);
    uint32_t kind = crash_pick(100);
    int rc;

    if (kind < 15) {
        rc = gw_ota_on_device_online(w->eng, txn, dev, w->now_ms, &w->acts);
    } else if (kind < 22) {
        rc = gw_ota_on_device_offline(w->eng, txn, dev, w->now_ms, &w->acts);
    } else if (kind < 30) {
        char name[32];
        uint64_t ids[8], task_id;
        struct gw_ota_overrides ov;
        struct gw_ota_task_req req = { .firmware_id = w->firmware[fwi], .name = name,
                                       .scope = crash_pick(3) ? GW_SCOPE_SELECT : GW_SCOPE_ALL,
                                       .device_ids = ids, .n_devices = 1 + crash_pick(8),
                                       .overrides = &ov };
        gw_ota_overrides_init(&ov);
        ov.push_timeout_s = 5;
        ov.upgrade_timeout_s = 10;
        ov.max_retries = crash_pick(3);
        ov.retry_backoff_s = 1;
        ov.max_concurrent = crash_pick(4);
        snprintf(name, sizeof(name), "t%u", crash_rand());
        for (size_t i = 0; i < req.n_devices; i++)
            ids[i] = w->devices[crash_pick(CRASH_DEVICES)];
        rc = gw_ota_task_create(w->eng, txn, &req, w->now_ms, &w->acts, &task_id);
    } else if (kind < 70) {
        static const int statuses[] = { 20, 20, 20, 30, 40, 10, 50 };
        rc = gw_ota_on_progress(w->eng, txn, dev, w->versions[fwi], statuses[crash_pick(7)],
                                (int)crash_pick(101), "crash", w->now_ms, &w->acts);
    } else if (kind < 74) {
        rc = gw_ota_task_cancel(w->eng, txn, 1 + crash_pick(200), w->now_ms, &w->acts);
    } else if (kind < 78) {
        rc = gw_ota_record_cancel(w->eng, txn, 1 + crash_pick(2000), w->now_ms, &w->acts);
    } else if (kind < 85) {
        rc = gw_ota_on_push_failed(w->eng, txn, 1 + crash_pick(2000), 1 + crash_pick(3),
                                   "crash", w->now_ms, &w->acts);
    } else {
        w->now_ms += crash_pick(3000);
        rc = gw_ota_tick(w->eng, txn, w->now_ms, &w->acts);
    }
    gw_ota_actions_clear(&w->acts);
    if (rc <= GW_E_PRODUCT_NOT_EXISTS && rc >= GW_E_PROGRESS_BAD_VALUE)
        return 0; /* business rule: nothing written */
    if (rc == GW_E_MISSING_FIELD || rc == GW_E_BAD_FIELD)
        return 0;
    return rc;
}

static int crash_run(const char *dir, unsigned long long seed)
{
    struct crash_world w = { 0 };
    struct gw_txn *txn = NULL;
    long long batch = 0;
    char key[8];
    int rc;

    crash_rng = seed * 2654435761ULL + 1;
    w.now_ms = 1700000000000LL;
    gw_ota_actions_init(&w.acts);
    if ((rc = gw_store_open(dir, 256, &w.store)))
        return crash_fail("open", rc);
    if ((rc = gw_ota_engine_create(NULL, &w.eng)))
        return crash_fail("engine", rc);
    if ((rc = crash_setup(&w)) || (rc = crash_load_ids(&w, &batch)))
        return crash_fail("setup", rc);
    w.now_ms += batch * 1000; /* the clock never goes back across restarts */
    if ((rc = gw_store_txn_begin(w.store, false, &txn)))
        return crash_fail("begin", rc);
    rc = gw_ota_engine_load(w.eng, txn);
    gw_store_txn_abort(txn);
    if (rc)
        return crash_fail("load", rc);
    for (;;) {
        cJSON *ledger = cJSON_CreateObject();
        char *text;
        int n = 1 + (int)crash_pick(40);

        batch++;
        if ((rc = gw_store_txn_begin(w.store, true, &txn)))
            return crash_fail("begin", rc);
        for (int i = 0; i < n && rc == 0; i++)
            rc = crash_event(&w, txn);
        if (rc)
            return crash_fail("event", rc);
        for (int i = 0; i < CRASH_LEDGER_SLOTS; i++) {
            snprintf(key, sizeof(key), "s%d", i);
            cJSON_AddNumberToObject(ledger, key, (double)batch);
        }
        text = cJSON_PrintUnformatted(ledger);
        cJSON_Delete(ledger);
        rc = gw_store_device_props_put(txn, w.ledger_id, text);
        free(text);
        if (rc)
            return crash_fail("ledger", rc);
        if ((rc = gw_store_txn_commit(txn)))
            return crash_fail("commit", rc);
        printf("ack %lld\n", batch);
        fflush(stdout);
        w.now_ms += 1000;
    }
}

/* ---- check ---- */

struct crash_check {
    struct gw_txn *txn;
    uint64_t active_of[CRASH_DEVICES + 64];
    uint64_t dev_ids[CRASH_DEVICES + 64];
    size_t n_devs;
    int bad;
    char why[256];
};

static int crash_dev_slot(struct crash_check *c, uint64_t device_id)
{
    for (size_t i = 0; i < c->n_devs; i++)
        if (c->dev_ids[i] == device_id)
            return (int)i;
    if (c->n_devs == sizeof(c->dev_ids) / sizeof(c->dev_ids[0]))
        return -1;
    c->dev_ids[c->n_devs] = device_id;
    return (int)c->n_devs++;
}

#define CRASH_BAD(c, ...)                                                                      \
    do {                                                                                       \
        snprintf((c)->why, sizeof((c)->why), __VA_ARGS__);                                     \
        (c)->bad = 1;                                                                          \
        return 1;                                                                              \
    } while (0)

struct crash_hist {
    int prev;
    int ok;
};

static int crash_hist_fn(void *ctx, const struct gw_history_entry *h)
{
    struct crash_hist *s = ctx;

    if (h->from_status != s->prev)
        s->ok = 0;
    s->prev = h->to_status;
    return 0;
}

static int crash_record_fn(void *ctx, const struct gw_record *r)
{
    struct crash_check *c = ctx;
    struct crash_hist hs = { .prev = GW_RECORD_PENDING, .ok = 1 };
    int slot;

    if (!gw_record_status_valid(r->status))
        CRASH_BAD(c, "record %" PRIu64 ": invalid status %d", r->id, r->status);
    gw_store_history_iter(c->txn, r->id, crash_hist_fn, &hs);
    if (!hs.ok || hs.prev != r->status)
        CRASH_BAD(c, "record %" PRIu64 ": history does not chain to status %d", r->id,
                  r->status);
    if (!gw_record_status_active(r->status))
        return 0;
    slot = crash_dev_slot(c, r->device_id);
    if (slot < 0)
        CRASH_BAD(c, "too many devices");
    if (c->active_of[slot])
        CRASH_BAD(c, "device %" PRIu64 ": two active records (%" PRIu64 ", %" PRIu64 ")",
                  r->device_id, c->active_of[slot], r->id);
    c->active_of[slot] = r->id;
    return 0;
}

struct crash_task_sum {
    uint32_t count[6];
    uint32_t total;
};

static int crash_task_record_fn(void *ctx, const struct gw_record *r)
{
    struct crash_task_sum *s = ctx;

    s->count[gw_record_status_index(r->status)]++;
    s->total++;
    return 0;
}

static int crash_task_fn(void *ctx, const struct gw_task *t)
{
    struct crash_check *c = ctx;
    struct crash_task_sum s = { 0 };
    uint32_t active;

    gw_store_record_iter_task(c->txn, t->id, 0, crash_task_record_fn, &s);
    if (memcmp(s.count, t->status_count, sizeof(s.count)) != 0)
        CRASH_BAD(c, "task %" PRIu64 ": status counts differ from its records", t->id);
    if (s.total != t->device_total_count)
        CRASH_BAD(c, "task %" PRIu64 ": %u records, total count %u", t->id, s.total,
                  t->device_total_count);
    if (t->device_success_count != s.count[3])
        CRASH_BAD(c, "task %" PRIu64 ": success count %u, records in 30: %u", t->id,
                  t->device_success_count, s.count[3]);
    active = s.count[0] + s.count[1] + s.count[2];
    if ((t->status == GW_TASK_IN_PROGRESS) != (t->status != GW_TASK_CANCELLED && active > 0))
        CRASH_BAD(c, "task %" PRIu64 ": status %d with %u active records", t->id, t->status,
                  active);
    return 0;
}

static int crash_check_run(const char *dir)
{
    struct crash_check c = { 0 };
    struct gw_store *store = NULL;
    char *props = NULL;
    struct gw_device led;
    long long slots[CRASH_LEDGER_SLOTS] = { 0 };
    int rc;

    if ((rc = gw_store_open(dir, 256, &store)))
        return crash_fail("open", rc);
    if ((rc = gw_store_txn_begin(store, false, &c.txn)))
        return crash_fail("begin", rc);
    rc = gw_store_record_iter(c.txn, false, 0, crash_record_fn, &c);
    for (size_t i = 0; rc == 0 && !c.bad && i < c.n_devs; i++) {
        uint64_t rid = 0;
        int r2 = gw_store_active_record_of_device(c.txn, c.dev_ids[i], &rid);
        if (c.active_of[i] && (r2 != 0 || rid != c.active_of[i])) {
            snprintf(c.why, sizeof(c.why), "device %" PRIu64 ": active index says %" PRIu64
                     " (rc %d), records say %" PRIu64, c.dev_ids[i], rid, r2, c.active_of[i]);
            c.bad = 1;
        }
    }
    if (rc == 0 && !c.bad)
        rc = gw_store_task_iter(c.txn, false, 0, crash_task_fn, &c);
    if (rc == 0 && !c.bad && gw_store_device_get_by_key(c.txn, "crashpk", "ledger", &led) == 0 &&
        gw_store_device_props_get(c.txn, led.id, &props) == 0) {
        cJSON *j = cJSON_Parse(props);
        for (int i = 0; i < CRASH_LEDGER_SLOTS; i++) {
            char key[8];
            snprintf(key, sizeof(key), "s%d", i);
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, key);
            slots[i] = cJSON_IsNumber(s) ? (long long)s->valuedouble : 0;
            if (slots[i] != slots[0] && !c.bad) {
                snprintf(c.why, sizeof(c.why), "ledger slots differ (%lld vs %lld): a batch "
                         "was applied in part", slots[i], slots[0]);
                c.bad = 1;
            }
        }
        cJSON_Delete(j);
    }
    free(props);
    gw_store_txn_abort(c.txn);
    gw_store_close(store);
    if (rc)
        return crash_fail("iterate", rc);
    if (c.bad) {
        printf("violation %s\n", c.why);
        return 1;
    }
    printf("ledger %lld\n", slots[0]);
    return 0;
}

int main(int argc, char **argv)
{
    gw_log_set_level(GW_LOG_ERROR); /* rejected reports are expected here by the thousand */
    if (argc == 4 && strcmp(argv[1], "run") == 0)
        return crash_run(argv[2], strtoull(argv[3], NULL, 10));
    if (argc == 3 && strcmp(argv[1], "check") == 0)
        return crash_check_run(argv[2]);
    fprintf(stderr, "usage: %s run DIR SEED | check DIR\n", argv[0]);
    return 2;
}
