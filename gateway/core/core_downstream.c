/*
 * DESIGN: everything the core sends to devices: the per-batch outbox (replies, upgrade
 * pushes, cancel hints, operator requests), and the table of operator requests waiting for
 * a device's reply (device/message/send).
 *
 * Core thread only. The outbox is filled while the batch's transaction is open and handed
 * to the adapters only after the commit (gw__core_outbox_flush). A push the adapter refuses
 * becomes an internal PUSH_FAILED event that the next batch gives to the engine, which puts
 * the record back to pending: "pushed" always ends up meaning "accepted for delivery".
 */
#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "admin/gw_fwurl.h"
#include "core_internal.h"
#include "gw_error.h"
#include "gw_log.h"

int gw__core_outbox_add(struct gw_core *core, struct gw_adapter *ad, struct gw_msg *msg,
                        uint64_t record_id, uint32_t attempt)
{
    if (core->n_out == core->cap_out) {
        size_t cap = core->cap_out ? core->cap_out * 2 : 256;
        struct gw__core_out *v = realloc(core->outbox, cap * sizeof(*v));
        if (!v) {
            gw_msg_unref(msg);
            return -ENOMEM;
        }
        core->outbox = v;
        core->cap_out = cap;
    }
    core->outbox[core->n_out++] = (struct gw__core_out){ .ad = ad, .msg = msg,
                                                          .record_id = record_id,
                                                          .attempt = attempt };
    return 0;
}

static void gw__push_failed(struct gw_core *core, uint64_t record_id, uint32_t attempt, int why)
{
    struct gw__core_event ev = { .kind = GW__CORE_EV_PUSH_FAILED };

    ev.u.pf.record_id = record_id;
    ev.u.pf.attempt = attempt;
    ev.u.pf.reason = why;
    if (gw__core_internal_add(core, &ev))
        gw_log(GW_LOG_ERROR, GW_CORE_TAG, "record %llu: push failure lost (no memory); its "
               "push timeout will retry it", (unsigned long long)record_id);
}

/* A downstream message for dev's session (identity and origin filled in). */
static int gw__downstream_msg(enum gw_method method, const struct gw__core_session *s,
                              cJSON *params, struct gw_msg **out)
{
    int rc = gw_msg_new_request(method, NULL, s->pk, s->dn, params, out);

    if (rc)
        return rc;
    (*out)->device_id = s->device_id;
    (*out)->origin.adapter = s->ad;
    (*out)->origin.session = s->session;
    return 0;
}

static int gw__push_upgrade(struct gw_core *core, struct gw_txn *txn,
                            const struct gw_ota_action *a, const struct gw__core_session *s)
{
    struct gw_firmware fw;
    struct gw_msg *msg = NULL;
    cJSON *params = NULL;
    char url[GW_URL_MAX + 160];
    int rc;

    rc = gw_store_firmware_get(txn, a->firmware_id, &fw);
    if (rc)
        return rc;
    rc = gw_ota_upgrade_params(a, &fw, core->cfg->firmware.base_url, "", &params);
    if (rc)
        return rc;
    /* Every record downloads through its own tokened URL on our firmware server. */
    rc = gw_admin_firmware_url(core->cfg->firmware.base_url, core->download_key, fw.id,
                               a->record_id, url, sizeof(url));
    if (rc == 0 && !cJSON_ReplaceItemInObjectCaseSensitive(params, "fileUrl",
                                                           cJSON_CreateString(url)))
        rc = -ENOMEM;
    if (rc) {
        cJSON_Delete(params);
        return rc;
    }
    rc = gw__downstream_msg(GW_METHOD_OTA_UPGRADE, s, params, &msg);
    if (rc)
        return rc;
    gw_msg_assign_id_seq(msg, core->id_nonce, atomic_fetch_add(&core->id_counter, 1));
    return gw__core_outbox_add(core, s->ad, msg, a->record_id, a->attempt);
}

static int gw__send_cancel(struct gw_core *core, struct gw_txn *txn,
                           const struct gw_ota_action *a, const struct gw__core_session *s)
{
    struct gw_firmware fw;
    struct gw_msg *msg = NULL;
    cJSON *params = NULL;
    int rc;

    rc = gw_store_firmware_get(txn, a->firmware_id, &fw);
    if (rc)
        return rc;
    rc = gw_ota_cancel_params(a, fw.version, &params);
    if (rc)
        return rc;
    rc = gw__downstream_msg(GW_METHOD_OTA_CANCEL, s, params, &msg);
    if (rc)
        return rc;
    gw_msg_assign_id_seq(msg, core->id_nonce, atomic_fetch_add(&core->id_counter, 1));
    return gw__core_outbox_add(core, s->ad, msg, 0, 0);
}

void gw__core_actions_to_outbox(struct gw_core *core, struct gw_txn *txn, int64_t now_ms)
{
    (void)now_ms;
    for (size_t i = 0; i < core->actions.n; i++) {
        const struct gw_ota_action *a = &core->actions.v[i];
        struct gw__core_session s;
        int rc = 0;

        switch (a->kind) {
        case GW_OTA_ACT_PUSH_UPGRADE:
            if (!gw__core_session_find(core, a->device_id, &s)) {
                gw__push_failed(core, a->record_id, a->attempt, GW_E_DEVICE_NOT_CONNECTED);
                break;
            }
            rc = gw__push_upgrade(core, txn, a, &s);
            if (rc)
                gw__push_failed(core, a->record_id, a->attempt, rc);
            break;
        case GW_OTA_ACT_SEND_CANCEL:
            if (gw__core_session_find(core, a->device_id, &s))
                rc = gw__send_cancel(core, txn, a, &s);
            break;
        case GW_OTA_ACT_TASK_ENDED:
            gw_log(GW_LOG_INFO, GW_CORE_TAG, "task %llu %s", (unsigned long long)a->task_id,
                   a->task_status == GW_TASK_ENDED ? "ended" : "cancelled");
            break;
        default:
            break;
        }
        if (rc)
            gw_log(GW_LOG_WARN, GW_CORE_TAG, "action %d for device %llu: %s", a->kind,
                   (unsigned long long)a->device_id, gw_strerror(rc));
    }
    gw_ota_actions_clear(&core->actions);
}

void gw__core_outbox_flush(struct gw_core *core)
{
    for (size_t i = 0; i < core->n_out; i++) {
        struct gw__core_out *o = &core->outbox[i];
        int rc = o->ad->ops->submit(o->ad, o->msg); /* takes the reference */

        if (rc == 0)
            continue;
        if (o->record_id)
            gw__push_failed(core, o->record_id, o->attempt, rc);
        else
            gw_log(GW_LOG_WARN, o->ad->name, "downstream message refused: %s",
                   gw_strerror(rc));
    }
    core->n_out = 0;
    if (core->n_internal) {
        /* wake the core loop for the push failures without waiting for the next post */
        pthread_mutex_lock(&core->qlock);
        pthread_cond_signal(&core->q_nonempty);
        pthread_mutex_unlock(&core->qlock);
    }
}

void gw__core_outbox_drop(struct gw_core *core)
{
    for (size_t i = 0; i < core->n_out; i++)
        gw_msg_unref(core->outbox[i].msg);
    core->n_out = 0;
}

/* ---- operator requests waiting for a device reply ---- */

static int gw__pending_cmp(const void *a, const void *b)
{
    const struct gw__core_pending *x = a, *y = b;

    return strcmp(x->request_id, y->request_id);
}

void gw__core_request_start(struct gw_core *core, struct gw__core_event *ev, int64_t now_ms)
{
    struct gw_msg *req = ev->u.req.msg;
    struct gw__core_session s;
    struct gw__core_pending *p = NULL;
    struct gw_msg *msg = NULL;
    cJSON *params = NULL;
    int rc;

    (void)now_ms;
    if (!gw__core_session_find(core, req->device_id, &s)) {
        rc = GW_E_DEVICE_NOT_CONNECTED;
        goto err;
    }
    params = req->params ? cJSON_Duplicate(req->params, 1) : NULL;
    if (req->params && !params) {
        rc = -ENOMEM;
        goto err;
    }
    rc = gw__downstream_msg(req->method, &s, params, &msg);
    if (rc)
        goto err;
    gw_msg_assign_id_seq(msg, core->id_nonce, atomic_fetch_add(&core->id_counter, 1));
    p = calloc(1, sizeof(*p));
    if (!p) {
        rc = -ENOMEM;
        goto err;
    }
    snprintf(p->request_id, sizeof(p->request_id), "%s", gw_msg_wire_id(msg));
    p->device_id = req->device_id;
    snprintf(p->pk, sizeof(p->pk), "%s", s.pk);
    snprintf(p->dn, sizeof(p->dn), "%s", s.dn);
    p->deadline_ms = ev->u.req.deadline_ms;
    p->w = ev->u.req.w;
    if (!tsearch(p, &core->pending, gw__pending_cmp)) {
        free(p);
        rc = -ENOMEM;
        goto err;
    }
    core->n_pending++;
    gw__core_outbox_add(core, s.ad, msg, 0, 0);
    gw_msg_unref(req);
    return;
err:
    gw_msg_unref(msg);
    gw_msg_unref(req);
    gw__core_done_add(core, ev->u.req.w, rc);
}

bool gw__core_request_reply(struct gw_core *core, struct gw_msg *reply)
{
    struct gw__core_pending key, *p;
    void *node;

    snprintf(key.request_id, sizeof(key.request_id), "%s", gw_msg_wire_id(reply));
    node = tfind(&key, &core->pending, gw__pending_cmp);
    if (!node)
        return false;
    p = *(struct gw__core_pending **)node;
    /* Only the device that was asked may answer. */
    if (strcmp(p->pk, reply->product_key) != 0 || strcmp(p->dn, reply->device_name) != 0)
        return false;
    tdelete(p, &core->pending, gw__pending_cmp);
    core->n_pending--;
    gw__core_waiter_complete(p->w, 0, reply);
    free(p);
    return true;
}

struct gw__expire_walk {
    int64_t now_ms;
    struct gw__core_pending **v;
    size_t n, cap;
};

static void gw__expire_visit(const void *node, VISIT which, void *arg)
{
    struct gw__expire_walk *w = arg;
    struct gw__core_pending *p = *(struct gw__core_pending *const *)node;

    if (which != postorder && which != leaf)
        return;
    if (w->now_ms >= 0 && p->deadline_ms > w->now_ms)
        return;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        struct gw__core_pending **v = realloc(w->v, cap * sizeof(*v));
        if (!v)
            return;
        w->v = v;
        w->cap = cap;
    }
    w->v[w->n++] = p;
}

void gw__core_request_expire(struct gw_core *core, int64_t now_ms)
{
    struct gw__expire_walk w = { .now_ms = now_ms };

    if (core->n_pending == 0)
        return;
    twalk_r(core->pending, gw__expire_visit, &w);
    for (size_t i = 0; i < w.n; i++) {
        tdelete(w.v[i], &core->pending, gw__pending_cmp);
        core->n_pending--;
        gw__core_waiter_complete(w.v[i]->w, now_ms < 0 ? GW_E_SHUTDOWN : GW_E_TIMEOUT, NULL);
        free(w.v[i]);
    }
    free(w.v);
}
