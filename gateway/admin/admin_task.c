/*
 * DESIGN: the ota/task and ota/task/record paths of the admin API (DESIGN §5.3,
 * REFERENCE §1.3, §1.6), worker threads. Commands (create, cancel, record cancel) run in the OTA engine on
 * the core thread through gw_core_call, with every string copied into the heap argument
 * (the request may be gone when a timed-out command still runs). Reads (get, page,
 * statistics, history) use one read transaction each; record rows are enriched with
 * deviceName and fromFirmwareVersion as the reference's page does, and record/get also
 * shows the record's download URL (gw_fwurl.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"
#include "gw_core.h"
#include "gw_error.h"
#include "gw_ota.h"
#include "gw_store.h"

static const int record_statuses[6] = { 0, 10, 20, 30, 40, 50 };

/* {"0":n,"10":n,...} in record status order. */
static cJSON *status_map(const uint64_t counts[6])
{
    cJSON *o = cJSON_CreateObject();
    char key[8];

    for (int i = 0; o && i < 6; i++) {
        snprintf(key, sizeof(key), "%d", record_statuses[i]);
        if (!gw__adm_add_u64(o, key, counts[i])) {
            cJSON_Delete(o);
            o = NULL;
        }
    }
    return o;
}

static cJSON *task_json(const struct gw_task *t)
{
    const struct gw_task_policy *p = &t->policy;
    uint64_t counts[6];
    cJSON *o = cJSON_CreateObject(), *m;

    for (int i = 0; i < 6; i++)
        counts[i] = t->status_count[i];
    if (!o || !gw__adm_add_u64(o, "id", t->id) || !cJSON_AddStringToObject(o, "name", t->name) ||
        !cJSON_AddStringToObject(o, "description", t->description) ||
        !gw__adm_add_u64(o, "firmwareId", t->firmware_id) ||
        !cJSON_AddNumberToObject(o, "status", t->status) ||
        !cJSON_AddNumberToObject(o, "deviceScope", t->device_scope) ||
        !gw__adm_add_u64(o, "deviceTotalCount", t->device_total_count) ||
        !gw__adm_add_u64(o, "deviceSuccessCount", t->device_success_count) ||
        !cJSON_AddStringToObject(o, "endReason", t->end_reason) ||
        !gw__adm_add_u64(o, "maxConcurrent", p->max_concurrent) ||
        !gw__adm_add_u64(o, "ratePerMinute", p->rate_per_minute) ||
        !gw__adm_add_u64(o, "pushTimeoutS", p->push_timeout_s) ||
        !gw__adm_add_u64(o, "upgradeTimeoutS", p->upgrade_timeout_s) ||
        !gw__adm_add_u64(o, "maxRetries", p->max_retries) ||
        !gw__adm_add_u64(o, "retryBackoffS", p->retry_backoff_s) ||
        !cJSON_AddNumberToObject(o, "abortFailureRatio", p->abort_failure_ratio) ||
        !gw__adm_add_u64(o, "abortMinSample", p->abort_min_sample) ||
        !gw__adm_add_i64(o, "createTime", t->create_time_ms) ||
        !gw__adm_add_i64(o, "updateTime", t->update_time_ms) || !(m = status_map(counts))) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToObject(o, "statusCounts", m);
    return o;
}

static cJSON *record_json(const struct gw_record *r)
{
    cJSON *o = cJSON_CreateObject();

    if (!o || !gw__adm_add_u64(o, "id", r->id) || !gw__adm_add_u64(o, "taskId", r->task_id) ||
        !gw__adm_add_u64(o, "firmwareId", r->firmware_id) ||
        !gw__adm_add_u64(o, "deviceId", r->device_id) ||
        !(r->from_firmware_id ? gw__adm_add_u64(o, "fromFirmwareId", r->from_firmware_id)
                              : cJSON_AddNullToObject(o, "fromFirmwareId") != NULL) ||
        !cJSON_AddNumberToObject(o, "status", r->status) ||
        !cJSON_AddNumberToObject(o, "progress", r->progress) ||
        !cJSON_AddStringToObject(o, "description", r->description) ||
        !gw__adm_add_u64(o, "attempts", r->attempts) ||
        !gw__adm_add_i64(o, "statusTime", r->status_time_ms) ||
        !gw__adm_add_i64(o, "reportTime", r->report_time_ms) ||
        !gw__adm_add_i64(o, "createTime", r->create_time_ms)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* deviceName and fromFirmwareVersion (null when unknown), as the reference's page adds. */
static void record_enrich(struct gw_txn *txn, const struct gw_record *r, cJSON *o)
{
    struct gw_device d;
    struct gw_firmware fw;

    if (gw_store_device_get(txn, r->device_id, &d) == 0)
        cJSON_AddStringToObject(o, "deviceName", d.device_name);
    else
        cJSON_AddNullToObject(o, "deviceName");
    if (r->from_firmware_id && gw_store_firmware_get(txn, r->from_firmware_id, &fw) == 0)
        cJSON_AddStringToObject(o, "fromFirmwareVersion", fw.version);
    else
        cJSON_AddNullToObject(o, "fromFirmwareVersion");
}

/* ---- task commands ---- */

struct task_create {
    struct gw_ota_task_req req;
    struct gw_ota_overrides ov;
    char name[GW_NAME_MAX + 1];
    char description[GW_DESC_MAX + 1];
    uint64_t *ids;
    uint64_t task_id;
};

static int task_create_fn(struct gw_core_ctx *ctx, void *arg)
{
    struct task_create *a = arg;

    return gw_ota_task_create(ctx->ota, ctx->txn, &a->req, ctx->now_ms, ctx->actions,
                              &a->task_id);
}

static int task_overrides(struct gw_adm_req *req, struct gw_ota_overrides *ov)
{
    static const struct {
        const char *name;
        size_t off;
    } ints[] = {
        { "maxConcurrent", offsetof(struct gw_ota_overrides, max_concurrent) },
        { "ratePerMinute", offsetof(struct gw_ota_overrides, rate_per_minute) },
        { "pushTimeoutS", offsetof(struct gw_ota_overrides, push_timeout_s) },
        { "upgradeTimeoutS", offsetof(struct gw_ota_overrides, upgrade_timeout_s) },
        { "maxRetries", offsetof(struct gw_ota_overrides, max_retries) },
        { "retryBackoffS", offsetof(struct gw_ota_overrides, retry_backoff_s) },
        { "abortMinSample", offsetof(struct gw_ota_overrides, abort_min_sample) },
    };
    int rc = 0;

    gw_ota_overrides_init(ov);
    for (size_t i = 0; rc == 0 && i < sizeof(ints) / sizeof(ints[0]); i++)
        rc = gw__adm_arg_int(req, ints[i].name, false, 0, UINT32_MAX,
                             (int64_t *)((char *)ov + ints[i].off));
    if (rc == 0)
        rc = gw__adm_arg_double(req, "abortFailureRatio", false, 0.0, 1.0,
                                &ov->abort_failure_ratio);
    return rc;
}

int gw__adm_task_create(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    struct task_create *a = calloc(1, sizeof(*a));
    int64_t scope = 0;
    size_t n = 0;
    int rc;

    if (!a)
        return -ENOMEM;
    rc = gw__adm_arg_strcpy(req, "name", true, a->name, sizeof(a->name));
    if (rc == 0)
        rc = gw__adm_arg_strcpy(req, "description", false, a->description,
                                sizeof(a->description));
    if (rc == 0)
        rc = gw__adm_arg_id(req, "firmwareId", true, &a->req.firmware_id);
    if (rc == 0)
        rc = gw__adm_arg_int(req, "deviceScope", true, GW_SCOPE_ALL, GW_SCOPE_SELECT, &scope);
    if (rc == 0)
        rc = gw__adm_arg_id_list(req, "deviceIds", false, &a->ids, &n);
    if (rc == 0)
        rc = task_overrides(req, &a->ov);
    if (rc == 0) {
        a->req.name = a->name;
        a->req.description = a->description;
        a->req.scope = (int)scope;
        a->req.device_ids = a->ids;
        a->req.n_devices = scope == GW_SCOPE_SELECT ? n : 0;
        a->req.overrides = &a->ov;
        rc = gw__adm_call(adm, task_create_fn, a);
    }
    if (rc == GW_E_TIMEOUT)
        return rc; /* a stays allocated: the core may still use it */
    if (rc == 0 && !(*data = cJSON_CreateNumber((double)a->task_id)))
        rc = -ENOMEM;
    free(a->ids);
    free(a);
    return rc;
}

struct id_cmd {
    uint64_t id;
};

static int task_cancel_fn(struct gw_core_ctx *ctx, void *arg)
{
    return gw_ota_task_cancel(ctx->ota, ctx->txn, ((struct id_cmd *)arg)->id, ctx->now_ms,
                              ctx->actions);
}

static int record_cancel_fn(struct gw_core_ctx *ctx, void *arg)
{
    return gw_ota_record_cancel(ctx->ota, ctx->txn, ((struct id_cmd *)arg)->id, ctx->now_ms,
                                ctx->actions);
}

static int id_command(struct gw_admin *adm, struct gw_adm_req *req,
                      int (*fn)(struct gw_core_ctx *, void *), cJSON **data)
{
    struct id_cmd *a = calloc(1, sizeof(*a));
    int rc;

    if (!a)
        return -ENOMEM;
    rc = gw__adm_arg_id(req, "id", true, &a->id);
    if (rc == 0)
        rc = gw__adm_call(adm, fn, a);
    if (rc == GW_E_TIMEOUT)
        return rc; /* a stays allocated: the core may still use it */
    free(a);
    if (rc == 0 && !(*data = cJSON_CreateTrue()))
        rc = -ENOMEM;
    return rc;
}

int gw__adm_task_cancel(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    return id_command(adm, req, task_cancel_fn, data);
}

int gw__adm_record_cancel(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    return id_command(adm, req, record_cancel_fn, data);
}

/* ---- task reads ---- */

int gw__adm_task_get(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    struct gw_task t;
    struct gw_txn *txn;
    uint64_t id = 0;
    int rc = gw__adm_arg_id(req, "id", true, &id);

    if (rc != 0)
        return rc;
    rc = gw__adm_read_begin(adm, &txn);
    if (rc != 0)
        return rc;
    rc = gw_store_task_get(txn, id, &t);
    gw_store_txn_abort(txn);
    if (rc == GW_E_NOT_FOUND)
        return 0; /* data null, as the reference answers */
    if (rc == 0 && !(*data = task_json(&t)))
        rc = -ENOMEM;
    return rc;
}

struct task_page {
    struct gw_adm_page pg;
    const char *name;
    uint64_t firmware_id;
    int64_t status;
};

static int task_page_row(void *ctx, const struct gw_task *t)
{
    struct task_page *tp = ctx;
    cJSON *o;

    if ((tp->name && !strstr(t->name, tp->name)) ||
        (tp->firmware_id && t->firmware_id != tp->firmware_id) ||
        (tp->status >= 0 && t->status != tp->status))
        return 0;
    if (!gw__adm_page_take(&tp->pg))
        return 0;
    o = task_json(t);
    if (!o)
        return -ENOMEM;
    cJSON_AddItemToArray(tp->pg.list, o);
    return 0;
}

int gw__adm_task_page(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    struct task_page tp = { .status = -1 };
    struct gw_txn *txn;
    int rc;

    rc = gw__adm_arg_str(req, "name", false, GW_NAME_MAX, &tp.name);
    if (rc == 0)
        rc = gw__adm_arg_id(req, "firmwareId", false, &tp.firmware_id);
    if (rc == 0)
        rc = gw__adm_arg_int(req, "status", false, GW_TASK_IN_PROGRESS, GW_TASK_CANCELLED,
                             &tp.status);
    if (rc == 0)
        rc = gw__adm_page_begin(req, &tp.pg);
    if (rc != 0)
        return rc;
    rc = gw__adm_read_begin(adm, &txn);
    if (rc == 0) {
        rc = gw_store_task_iter(txn, true, 0, task_page_row, &tp); /* id desc, as the reference */
        gw_store_txn_abort(txn);
    }
    if (rc == 0 && !(*data = gw__adm_page_end(&tp.pg)))
        rc = -ENOMEM;
    cJSON_Delete(tp.pg.list);
    return rc;
}

/* ---- record reads ---- */

int gw__adm_record_get(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    struct gw_record r;
    struct gw_txn *txn;
    uint64_t id = 0;
    char url[sizeof(adm->base_url) + 160];
    cJSON *o;
    int rc = gw__adm_arg_id(req, "id", true, &id);

    if (rc != 0)
        return rc;
    rc = gw__adm_read_begin(adm, &txn);
    if (rc != 0)
        return rc;
    rc = gw_store_record_get(txn, id, &r);
    if (rc == 0) {
        o = record_json(&r);
        if (o) {
            record_enrich(txn, &r, o);
            if (gw_admin_firmware_url(adm->base_url, adm->dl_key, r.firmware_id, r.id, url,
                                      sizeof(url)) == 0)
                cJSON_AddStringToObject(o, "fileUrl", url);
        }
        *data = o;
        rc = o ? 0 : -ENOMEM;
    } else if (rc == GW_E_NOT_FOUND) {
        rc = 0; /* data null, as the reference answers */
    }
    gw_store_txn_abort(txn);
    return rc;
}

struct record_page {
    struct gw_adm_page pg;
    struct gw_txn *txn;
    int64_t status;
};

static int record_page_row(void *ctx, const struct gw_record *r)
{
    struct record_page *rp = ctx;
    cJSON *o;

    if (rp->status >= 0 && r->status != rp->status)
        return 0;
    if (!gw__adm_page_take(&rp->pg))
        return 0;
    o = record_json(r);
    if (!o)
        return -ENOMEM;
    record_enrich(rp->txn, r, o);
    cJSON_AddItemToArray(rp->pg.list, o);
    return 0;
}

int gw__adm_record_page(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    struct record_page rp = { .status = -1 };
    uint64_t task_id = 0;
    int rc;

    rc = gw__adm_arg_id(req, "taskId", false, &task_id);
    if (rc == 0)
        rc = gw__adm_arg_int(req, "status", false, 0, 50, &rp.status);
    if (rc == 0 && rp.status >= 0 && !gw_record_status_valid((int)rp.status))
        rc = gw__adm_fail(req, GW_E_BAD_FIELD, "status: must be 0, 10, 20, 30, 40 or 50");
    if (rc == 0)
        rc = gw__adm_page_begin(req, &rp.pg);
    if (rc != 0)
        return rc;
    rc = gw__adm_read_begin(adm, &rp.txn);
    if (rc == 0) {
        if (task_id)
            rc = gw_store_record_iter_task(rp.txn, task_id, 0, record_page_row, &rp);
        else
            rc = gw_store_record_iter(rp.txn, false, 0, record_page_row, &rp);
        gw_store_txn_abort(rp.txn);
    }
    if (rc == 0 && !(*data = gw__adm_page_end(&rp.pg)))
        rc = -ENOMEM;
    cJSON_Delete(rp.pg.list);
    return rc;
}

int gw__adm_record_stats(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    uint64_t firmware_id = 0, task_id = 0, counts[6] = { 0 };
    struct gw_txn *txn;
    int rc;

    rc = gw__adm_arg_id(req, "firmwareId", false, &firmware_id);
    if (rc == 0)
        rc = gw__adm_arg_id(req, "taskId", false, &task_id);
    if (rc != 0)
        return rc;
    rc = gw__adm_read_begin(adm, &txn);
    if (rc != 0)
        return rc;
    rc = gw_ota_status_statistics(txn, firmware_id, task_id, counts);
    gw_store_txn_abort(txn);
    if (rc == 0 && !(*data = status_map(counts)))
        rc = -ENOMEM;
    return rc;
}

static int history_row(void *ctx, const struct gw_history_entry *h)
{
    cJSON *o = cJSON_CreateObject();

    if (!o || !gw__adm_add_i64(o, "time", h->time_ms) ||
        !cJSON_AddNumberToObject(o, "fromStatus", h->from_status) ||
        !cJSON_AddNumberToObject(o, "toStatus", h->to_status) ||
        !cJSON_AddStringToObject(o, "cause", h->cause)) {
        cJSON_Delete(o);
        return -ENOMEM;
    }
    cJSON_AddItemToArray(ctx, o);
    return 0;
}

int gw__adm_record_history(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    struct gw_record r;
    struct gw_txn *txn;
    uint64_t id = 0;
    cJSON *list;
    int rc = gw__adm_arg_id(req, "id", true, &id);

    if (rc != 0)
        return rc;
    list = cJSON_CreateArray();
    if (!list)
        return -ENOMEM;
    rc = gw__adm_read_begin(adm, &txn);
    if (rc != 0) {
        cJSON_Delete(list);
        return rc;
    }
    rc = gw_store_record_get(txn, id, &r);
    if (rc == GW_E_NOT_FOUND)
        rc = GW_E_RECORD_NOT_EXISTS;
    if (rc == 0)
        rc = gw_store_history_iter(txn, id, history_row, list);
    gw_store_txn_abort(txn);
    if (rc != 0) {
        cJSON_Delete(list);
        return rc;
    }
    *data = list;
    return 0;
}
