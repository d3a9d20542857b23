/*
 * DESIGN: the administrator's commands on the catalogue and on tasks: firmware create and
 * update (DESIGN §5.2), task create with every rule of §5.3 and the first pushes, task
 * cancel. Core thread only. Each command checks every rule with reads first and writes only
 * once all of them passed, so a refused command leaves the transaction untouched.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ota_internal.h"

/* ---- firmware ---- */

int gw_ota_firmware_create(struct gw_ota_engine *eng, struct gw_txn *txn,
                           struct gw_firmware *fw, int64_t now_ms)
{
    struct gw_firmware other;
    struct gw_product p;
    int rc;

    (void)eng;
    if (fw->name[0] == '\0' || fw->version[0] == '\0')
        return GW_E_MISSING_FIELD;
    /* The reference's order: the duplicate version first, then the product. */
    rc = gw_store_firmware_get_by_version(txn, fw->product_id, fw->version, &other);
    if (rc == 0)
        return GW_E_FIRMWARE_VERSION_DUPLICATE;
    if (rc != GW_E_NOT_FOUND)
        return rc;
    rc = gw_store_product_get(txn, fw->product_id, &p);
    if (rc == GW_E_NOT_FOUND)
        return GW_E_PRODUCT_NOT_EXISTS;
    if (rc)
        return rc;
    if (fw->digest_algorithm[0] == '\0')
        snprintf(fw->digest_algorithm, sizeof(fw->digest_algorithm), "MD5");
    return gw_store_firmware_create(txn, fw, now_ms);
}

int gw_ota_firmware_update(struct gw_ota_engine *eng, struct gw_txn *txn, uint64_t firmware_id,
                           const char *name, const char *description)
{
    struct gw_firmware fw;
    int rc;

    (void)eng;
    if (name && name[0] == '\0')
        return GW_E_MISSING_FIELD;
    if ((name && strlen(name) > GW_NAME_MAX) ||
        (description && strlen(description) > GW_DESC_MAX))
        return GW_E_VALUE_TOO_LONG;
    rc = gw_store_firmware_get(txn, firmware_id, &fw);
    if (rc == GW_E_NOT_FOUND)
        return GW_E_FIRMWARE_NOT_EXISTS;
    if (rc)
        return rc;
    if (name)
        snprintf(fw.name, sizeof(fw.name), "%s", name);
    if (description)
        snprintf(fw.description, sizeof(fw.description), "%s", description);
    return gw_store_firmware_put(txn, &fw);
}

/* ---- task create ---- */

void gw_ota_overrides_init(struct gw_ota_overrides *o)
{
    o->max_concurrent = -1;
    o->rate_per_minute = -1;
    o->push_timeout_s = -1;
    o->upgrade_timeout_s = -1;
    o->max_retries = -1;
    o->retry_backoff_s = -1;
    o->abort_failure_ratio = -1.0;
    o->abort_min_sample = -1;
}

static int override_u32(int64_t v, uint32_t *dst)
{
    if (v < 0)
        return 0;
    if (v > (int64_t)UINT32_MAX)
        return GW_E_BAD_FIELD;
    *dst = (uint32_t)v;
    return 0;
}

static int make_policy(const struct gw_ota_engine *eng, const struct gw_ota_overrides *o,
                       struct gw_task_policy *p)
{
    int rc = 0;

    *p = eng->defaults;
    if (!o)
        return 0;
    rc = override_u32(o->max_concurrent, &p->max_concurrent);
    if (!rc)
        rc = override_u32(o->rate_per_minute, &p->rate_per_minute);
    if (!rc)
        rc = override_u32(o->push_timeout_s, &p->push_timeout_s);
    if (!rc)
        rc = override_u32(o->upgrade_timeout_s, &p->upgrade_timeout_s);
    if (!rc)
        rc = override_u32(o->max_retries, &p->max_retries);
    if (!rc)
        rc = override_u32(o->retry_backoff_s, &p->retry_backoff_s);
    if (!rc)
        rc = override_u32(o->abort_min_sample, &p->abort_min_sample);
    if (rc)
        return rc;
    if (!(o->abort_failure_ratio < 0.0)) /* NaN falls through to the check */
        p->abort_failure_ratio = o->abort_failure_ratio;
    return gw_ota_policy_check(p);
}

/* A device that will get a record. */
struct cand {
    uint64_t id;
    uint64_t from_firmware_id;
    bool online;
};

struct cand_list {
    struct cand *v;
    size_t n, cap;
    struct gw_txn *txn;
    uint64_t firmware_id;
};

static int cand_add(struct cand_list *l, const struct gw_device *d)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct cand *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (struct cand){ .id = d->id, .from_firmware_id = d->firmware_id,
                                  .online = d->state == GW_DEVICE_ONLINE };
    return 0;
}

static int has_active_record(struct gw_txn *txn, uint64_t device_id, bool *yes)
{
    uint64_t rid;
    int rc = gw_store_active_record_of_device(txn, device_id, &rid);

    *yes = rc == 0;
    return rc == GW_E_NOT_FOUND ? 0 : rc;
}

/* Scope ALL: every device of the product, minus those on the firmware or upgrading. */
static int collect_all(void *vctx, const struct gw_device *d)
{
    struct cand_list *l = vctx;
    bool busy;
    int rc;

    if (d->firmware_id == l->firmware_id)
        return 0;
    rc = has_active_record(l->txn, d->id, &busy);
    if (rc || busy)
        return rc;
    return cand_add(l, d);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Scope SELECT, in the reference's order: existence and product for all, then the firmware
 * for all, then active records for all. */
static int collect_select(struct gw_txn *txn, const struct gw_firmware *fw,
                          const struct gw_ota_task_req *req, struct cand_list *l)
{
    uint64_t *ids;
    size_t n = 0;
    int rc = 0;

    if (req->n_devices == 0 || !req->device_ids)
        return GW_E_TASK_NO_DEVICE;
    ids = malloc(req->n_devices * sizeof(*ids));
    if (!ids)
        return -ENOMEM;
    memcpy(ids, req->device_ids, req->n_devices * sizeof(*ids));
    qsort(ids, req->n_devices, sizeof(*ids), cmp_u64);
    for (size_t i = 0; i < req->n_devices; i++)
        if (i == 0 || ids[i] != ids[n - 1])
            ids[n++] = ids[i];
    for (size_t i = 0; i < n; i++) {
        struct gw_device d;
        rc = gw_store_device_get(txn, ids[i], &d);
        if (rc == GW_E_NOT_FOUND || (rc == 0 && d.product_id != fw->product_id))
            rc = GW_E_DEVICE_NOT_EXISTS;
        if (rc == 0)
            rc = cand_add(l, &d);
        if (rc)
            goto out;
    }
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].from_firmware_id == fw->id) {
            rc = GW_E_TASK_DEVICE_ON_FIRMWARE;
            goto out;
        }
    }
    for (size_t i = 0; i < l->n; i++) {
        bool busy;
        rc = has_active_record(txn, l->v[i].id, &busy);
        if (rc == 0 && busy)
            rc = GW_E_TASK_DEVICE_UPGRADING;
        if (rc)
            goto out;
    }
out:
    free(ids);
    return rc;
}

static int check_request(struct gw_ota_engine *eng, const struct gw_ota_task_req *req,
                         struct gw_task_policy *policy)
{
    if (!req->name || req->name[0] == '\0')
        return GW_E_MISSING_FIELD;
    if (strlen(req->name) > GW_NAME_MAX ||
        (req->description && strlen(req->description) > GW_DESC_MAX))
        return GW_E_VALUE_TOO_LONG;
    if (req->scope != GW_SCOPE_ALL && req->scope != GW_SCOPE_SELECT)
        return GW_E_BAD_FIELD;
    return make_policy(eng, req->overrides, policy);
}

/* Writes the records; the ones marked for an immediate push are created PUSHED. */
static int write_records(struct gw_ota_engine *eng, struct gw_txn *txn, const struct gw_task *t,
                         const struct cand_list *l, uint32_t n_push, uint32_t n_online,
                         int64_t now_ms, struct gw_ota_actions *sink)
{
    struct gw__ota_task_state *ts = NULL;
    uint64_t first_waiting = 0;
    uint32_t pushed = 0;
    int rc;

    if (t->policy.rate_per_minute || n_push < n_online) {
        rc = gw__ota_ts_get(eng, t->id, &ts);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < l->n; i++) {
        struct gw_record r = { .task_id = t->id, .firmware_id = t->firmware_id,
                               .device_id = l->v[i].id,
                               .from_firmware_id = l->v[i].from_firmware_id,
                               .status = GW_RECORD_PENDING, .status_time_ms = now_ms,
                               .create_time_ms = now_ms };
        bool push = l->v[i].online && pushed < n_push;

        if (push) {
            r.status = GW_RECORD_PUSHED;
            r.attempts = 1;
            snprintf(r.description, sizeof(r.description), "pushed (attempt 1)");
        }
        rc = gw_store_record_create(txn, &r);
        if (rc)
            return rc;
        if (!push) {
            if (l->v[i].online && !first_waiting)
                first_waiting = r.id;
            continue;
        }
        struct gw_history_entry h = { .time_ms = now_ms, .from_status = GW_RECORD_PENDING,
                                      .to_status = GW_RECORD_PUSHED };
        snprintf(h.cause, sizeof(h.cause), "pushed (attempt 1)");
        rc = gw_store_history_append(txn, r.id, &h);
        if (rc == 0 && t->policy.push_timeout_s)
            rc = gw_store_deadline_set(txn, r.id, gw__ota_deadline_for(&r, &t->policy));
        if (rc == 0 && ts)
            rc = gw__ota_rate_note(ts, t->policy.rate_per_minute, now_ms);
        if (rc == 0) {
            struct gw_ota_action a = { .kind = GW_OTA_ACT_PUSH_UPGRADE, .device_id = r.device_id,
                                       .record_id = r.id, .task_id = t->id,
                                       .firmware_id = t->firmware_id, .attempt = 1 };
            rc = gw__ota_emit(sink, &a);
        }
        if (rc)
            return rc;
        pushed++;
        eng->stats.pushes++;
    }
    if (first_waiting) {
        /* Online devices left over by a limit: the sweep resumes at the first of them. */
        ts->cursor = first_waiting - 1;
        ts->sweep_done = false;
    }
    return 0;
}

int gw_ota_task_create(struct gw_ota_engine *eng, struct gw_txn *txn,
                       const struct gw_ota_task_req *req, int64_t now_ms,
                       struct gw_ota_actions *sink, uint64_t *task_id)
{
    struct cand_list l = { .txn = txn };
    struct gw_task t = { 0 }, other;
    struct gw_firmware fw;
    size_t mark = sink->n;
    uint32_t n_online = 0, n_push, cap = UINT32_MAX;
    int rc;

    rc = check_request(eng, req, &t.policy);
    if (rc)
        return rc;
    rc = gw_store_firmware_get(txn, req->firmware_id, &fw);
    if (rc == GW_E_NOT_FOUND)
        return GW_E_FIRMWARE_NOT_EXISTS;
    if (rc)
        return rc;
    rc = gw_store_task_get_by_name(txn, fw.id, req->name, &other);
    if (rc == 0)
        return GW_E_TASK_NAME_DUPLICATE;
    if (rc != GW_E_NOT_FOUND)
        return rc;
    l.firmware_id = fw.id;
    if (req->scope == GW_SCOPE_SELECT) {
        rc = collect_select(txn, &fw, req, &l);
    } else {
        rc = gw_store_device_iter_product(txn, fw.product_id, collect_all, &l);
        if (rc == 0 && l.n == 0)
            rc = GW_E_TASK_NO_DEVICE;
    }
    if (rc)
        goto out;
    if (l.n > UINT32_MAX) {
        rc = GW_E_BAD_FIELD;
        goto out;
    }

    /* First pushes: a new task has nothing in flight and an empty rate window. */
    for (size_t i = 0; i < l.n; i++)
        n_online += l.v[i].online;
    if (t.policy.max_concurrent && t.policy.max_concurrent < cap)
        cap = t.policy.max_concurrent;
    if (t.policy.rate_per_minute && t.policy.rate_per_minute < cap)
        cap = t.policy.rate_per_minute;
    n_push = n_online < cap ? n_online : cap;

    t.firmware_id = fw.id;
    snprintf(t.name, sizeof(t.name), "%s", req->name);
    snprintf(t.description, sizeof(t.description), "%s", req->description ? req->description : "");
    t.status = GW_TASK_IN_PROGRESS;
    t.device_scope = req->scope;
    t.device_total_count = (uint32_t)l.n;
    t.device_success_count = 0;
    memset(t.status_count, 0, sizeof(t.status_count));
    t.status_count[gw_record_status_index(GW_RECORD_PENDING)] = (uint32_t)l.n - n_push;
    t.status_count[gw_record_status_index(GW_RECORD_PUSHED)] = n_push;
    t.end_reason[0] = '\0';
    t.create_time_ms = now_ms;
    t.update_time_ms = now_ms;
    rc = gw_store_task_create(txn, &t);
    if (rc)
        goto out;
    rc = write_records(eng, txn, &t, &l, n_push, n_online, now_ms, sink);
    if (rc)
        goto out;
    *task_id = t.id;
out:
    if (rc)
        sink->n = mark;
    free(l.v);
    return rc;
}

/* ---- task cancel ---- */

int gw_ota_task_cancel(struct gw_ota_engine *eng, struct gw_txn *txn, uint64_t task_id,
                       int64_t now_ms, struct gw_ota_actions *sink)
{
    size_t mark = sink->n;
    struct gw_task t;
    int rc;

    rc = gw_store_task_get(txn, task_id, &t);
    if (rc == GW_E_NOT_FOUND)
        return GW_E_TASK_NOT_EXISTS;
    if (rc)
        return rc;
    if (t.status != GW_TASK_IN_PROGRESS)
        return GW_E_TASK_NOT_IN_PROGRESS;
    rc = gw__ota_cancel_task(eng, txn, &t, GW_OTA_END_REASON_ADMIN, GW_OTA_DESC_CANCEL_TASK,
                             now_ms, sink);
    if (rc) {
        sink->n = mark;
        return rc;
    }
    eng->stats.tasks_cancelled++;
    return 0;
}
