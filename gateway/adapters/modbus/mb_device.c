/*
 * DESIGN: one Modbus device, whatever carries its requests (a client connection shared by
 * several unit ids, or a dial-in socket). It decides what to ask next and what each answer
 * means:
 *  - property.set requests first (someone waits for them), then OTA steps and due polls in
 *    turn, so an upgrade never starves the readings and vice versa;
 *  - at most one request outstanding, and GW__MB_MIN_GAP_MS between two;
 *  - each read segment's values become one thing.property.post; exception answers are logged
 *    when they change (they are the device's answer, not a failure of the link);
 *  - GW__MB_STALL_TIMEOUTS timeouts in a row report the device offline; it is then probed
 *    every retryIntervalMs and comes back with a new session when it answers.
 *
 * Session towards the core: every UP gets a fresh handle from the adapter's counter, used as
 * the seq too, so a late OFFLINE of an older session never hides a newer one. A session event
 * the core's full queue refused is kept (only the latest matters) and retried.
 *
 * Thread: the transport's thread only (see mb_internal.h); live_session is atomic for submit.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_error.h"
#include "gw_log.h"
#include "mb_internal.h"

#define NEVER INT64_MAX

static void lower(int64_t *wake, int64_t t)
{
    if (t < *wake)
        *wake = t;
}

static const char *exception_name(int code)
{
    switch (code) {
    case 1:
        return "illegal function";
    case 2:
        return "illegal data address";
    case 3:
        return "illegal data value";
    case 4:
        return "server device failure";
    case 5:
        return "acknowledge";
    case 6:
        return "server device busy";
    case 8:
        return "memory parity error";
    case 10:
        return "gateway path unavailable";
    case 11:
        return "gateway target failed to respond";
    default:
        return "unknown exception";
    }
}

static bool has_probe(const struct gw__mb_dev *dev)
{
    return dev->plan.n_segs > 0 || dev->cfg->ota_base != GW_CONFIG_UNSET;
}

/* ---- posting ---- */

static void post_session(struct gw__mb_dev *dev, enum gw_session_event ev, uint64_t session,
                         int64_t now)
{
    int rc = gw_core_post_session(dev->ad->core, dev->ad, ev, dev->cfg->product_key,
                                  dev->cfg->device_name, session, session);

    if (rc == -EAGAIN) {
        dev->pending = (struct gw__mb_pending_ev){.set = true, .ev = ev, .session = session};
        dev->pending_due_ms = now + GW__MB_RETRY_MS;
        return;
    }
    dev->pending.set = false;
    if (rc && rc != GW_E_SHUTDOWN)
        gw_log(GW_LOG_WARN, dev->tag, "%s/%s: session event lost: %s", dev->cfg->product_key,
               dev->cfg->device_name, gw_strerror(rc));
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int gw__mb_dev_post(struct gw__mb_dev *dev, enum gw_method method, const char *request_id,
                    cJSON *params)
{
    struct gw_msg *m = NULL;
    int rc;

    rc = gw_msg_new_request(method, request_id, dev->cfg->product_key, dev->cfg->device_name,
                            params, &m);
    if (rc) {
        gw_log(GW_LOG_WARN, dev->tag, "%s/%s: cannot build %s: %s", dev->cfg->product_key,
               dev->cfg->device_name, gw_method_name(method), gw_strerror(rc));
        gw_adapter_count(&dev->ctr->io.dropped_in);
        return rc;
    }
    m->origin.adapter = dev->ad;
    m->origin.session = dev->session;
    m->report_time = wall_ms();
    rc = gw_core_post(dev->ad->core, m);
    if (rc == 0)
        gw_adapter_count(&dev->ctr->io.msgs_in);
    else
        gw_adapter_count(&dev->ctr->io.dropped_in);
    return rc;
}

/* Answers a property.set (or any request from the core) with err and text (NULL: the
 * error's message). */
static void reply_to(struct gw__mb_dev *dev, const struct gw_msg *req, int err, const char *text)
{
    struct gw_msg *rep = NULL;
    int rc;

    rc = gw_msg_new_reply(req, (int32_t)gw_error_api_code(err),
                          text ? text : (err ? gw_strerror(err) : "success"), NULL, &rep);
    if (rc == 0) {
        rep->origin.adapter = dev->ad;
        rc = gw_core_post(dev->ad->core, rep);
    }
    if (rc) {
        gw_adapter_count(&dev->ctr->io.dropped_in);
        gw_log(GW_LOG_WARN, dev->tag, "%s/%s: reply to %s lost: %s", dev->cfg->product_key,
               dev->cfg->device_name, gw_msg_method_name(req), gw_strerror(rc));
    }
}

/* ---- property.set ---- */

static void set_pop(struct gw__mb_dev *dev)
{
    struct gw__mb_set *s = dev->sets;

    dev->sets = s->next;
    if (!dev->sets)
        dev->sets_tail = NULL;
    dev->n_sets--;
    gw_msg_unref(s->req);
    free(s->writes);
    free(s);
}

static void sets_fail(struct gw__mb_dev *dev, int err)
{
    while (dev->sets) {
        reply_to(dev, dev->sets->req, err, NULL);
        set_pop(dev);
    }
}

static const struct gw_config_modbus_point *find_point(const struct gw__mb_dev *dev,
                                                       const char *ident)
{
    for (size_t i = 0; i < dev->cfg->point_count; i++)
        if (strcmp(dev->cfg->points[i].identifier, ident) == 0)
            return &dev->cfg->points[i];
    return NULL;
}

/* Checks and encodes every value before anything is written: bad input changes nothing. */
static int set_build(struct gw__mb_dev *dev, const cJSON *params, struct gw__mb_set *s, char *why,
                     size_t whylen)
{
    size_t n = 0;
    char sub[160];

    if (!cJSON_IsObject(params) || !params->child) {
        snprintf(why, whylen, "params must be an object of identifier: value");
        return GW_E_BAD_PARAMS;
    }
    for (const cJSON *c = params->child; c; c = c->next)
        n++;
    s->writes = calloc(n, sizeof(*s->writes));
    if (!s->writes)
        return -ENOMEM;
    for (const cJSON *c = params->child; c; c = c->next) {
        const struct gw_config_modbus_point *p = find_point(dev, c->string);
        struct gw__mb_write *w = &s->writes[s->n];
        if (!p) {
            snprintf(why, whylen, "no point \"%.64s\" on this device", c->string);
            return GW_E_BAD_PARAMS;
        }
        if (p->function_code == 2 || p->function_code == 4) {
            snprintf(why, whylen, "\"%.64s\" is read-only (function code %d)", c->string,
                     p->function_code);
            return GW_E_BAD_PARAMS;
        }
        if (gw__mb_value_encode(p, c, w->regs, &w->bit, sub, sizeof(sub))) {
            snprintf(why, whylen, "\"%.64s\": %s", c->string, sub);
            return GW_E_BAD_PARAMS;
        }
        w->point = p;
        s->n++;
    }
    return 0;
}

static void set_accept(struct gw__mb_dev *dev, struct gw_msg *msg)
{
    struct gw__mb_set *s = NULL;
    char why[256] = "";
    int rc;

    if (dev->link != GW__MB_UP) {
        rc = GW_E_DEVICE_NOT_CONNECTED;
        goto err;
    }
    if (dev->n_sets >= GW__MB_SETS_MAX) {
        rc = GW_E_QUEUE_FULL;
        goto err;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        rc = -ENOMEM;
        goto err;
    }
    rc = set_build(dev, msg->params, s, why, sizeof(why));
    if (rc)
        goto err_free;
    s->req = msg;
    if (dev->sets_tail)
        dev->sets_tail->next = s;
    else
        dev->sets = s;
    dev->sets_tail = s;
    dev->n_sets++;
    return;
err_free:
    free(s->writes);
    free(s);
err:
    reply_to(dev, msg, rc, why[0] ? why : NULL);
    gw_msg_unref(msg);
}

static void set_request(struct gw__mb_dev *dev, struct gw__mb_req *req)
{
    const struct gw__mb_write *w = &dev->sets->writes[dev->sets->done];
    const struct gw_config_modbus_point *p = w->point;
    int width = gw__mb_type_width(p->raw_type);

    req->addr = (uint16_t)p->address;
    if (p->function_code == 1) {
        req->fc = 5;
        req->count = 1;
        req->bits[0] = w->bit;
    } else if (width == 1) {
        req->fc = 6;
        req->count = 1;
        req->regs[0] = w->regs[0];
    } else {
        req->fc = 16;
        req->count = (uint16_t)width;
        memcpy(req->regs, w->regs, sizeof(w->regs[0]) * (size_t)width);
    }
}

static void set_done(struct gw__mb_dev *dev, const struct gw__mb_resp *resp)
{
    struct gw__mb_set *s = dev->sets;
    const char *ident;
    char text[200];

    if (!s)
        return;
    ident = s->writes[s->done].point->identifier;
    if (resp->err == 0) {
        if (++s->done < s->n)
            return;
        gw_adapter_count(&dev->ctr->io.msgs_out);
        reply_to(dev, s->req, 0, NULL);
    } else if (resp->err == GW_E_MODBUS_EXCEPTION) {
        snprintf(text, sizeof(text), "writing \"%.64s\": Modbus exception %d (%s)%s", ident,
                 resp->exception, exception_name(resp->exception),
                 s->done ? "; earlier values were written" : "");
        reply_to(dev, s->req, GW_E_MODBUS_EXCEPTION, text);
    } else {
        snprintf(text, sizeof(text), "writing \"%.64s\": %s", ident, gw_strerror(resp->err));
        reply_to(dev, s->req, resp->err, text);
    }
    set_pop(dev);
}

/* ---- polls ---- */

static void poll_done(struct gw__mb_dev *dev, const struct gw__mb_req *req,
                      const struct gw__mb_resp *resp, int64_t now)
{
    struct gw__mb_segment *seg = &dev->plan.segs[req->ref];
    cJSON *obj;

    seg->next_due_ms += seg->interval_ms;
    if (seg->next_due_ms < now)
        seg->next_due_ms = now; /* late (a slow device): no burst of catch-up reads */
    if (resp->err == GW_E_MODBUS_EXCEPTION) {
        if (dev->seg_exc[req->ref] != resp->exception)
            gw_log(GW_LOG_WARN, dev->tag, "%s/%s: reading FC%d %u+%u: Modbus exception %d (%s)",
                   dev->cfg->product_key, dev->cfg->device_name, seg->fc, seg->start, seg->count,
                   resp->exception, exception_name(resp->exception));
        dev->seg_exc[req->ref] = resp->exception;
        return;
    }
    if (resp->err)
        return;
    if (dev->seg_exc[req->ref]) {
        gw_log(GW_LOG_INFO, dev->tag, "%s/%s: FC%d %u+%u readable again", dev->cfg->product_key,
               dev->cfg->device_name, seg->fc, seg->start, seg->count);
        dev->seg_exc[req->ref] = 0;
    }
    obj = cJSON_CreateObject();
    if (!obj)
        return;
    for (size_t k = seg->first; k < seg->first + seg->n; k++) {
        const struct gw_config_modbus_point *p = &dev->cfg->points[dev->plan.idx[k]];
        size_t off = (size_t)(p->address - seg->start);
        cJSON *v = NULL;
        int rc = gw__mb_value_decode(p, resp->regs + (seg->fc >= 3 ? off : 0),
                                     seg->fc <= 2 ? resp->bits[off] : 0, &v);
        if (rc) {
            gw_log(GW_LOG_DEBUG, dev->tag, "%s/%s: %s: %s", dev->cfg->product_key,
                   dev->cfg->device_name, p->identifier, gw_strerror(rc));
            continue;
        }
        cJSON_AddItemToObject(obj, p->identifier, v);
    }
    if (!obj->child) {
        cJSON_Delete(obj);
        return;
    }
    gw__mb_dev_post(dev, GW_METHOD_PROPERTY_POST, NULL, obj);
}

/* ---- lifecycle ---- */

int gw__mb_dev_new(struct gw_adapter *ad, const struct gw_config_modbus_device *cfg,
                   const char *data_dir, struct gw__mb_counters *ctr, struct gw__mb_dev **out)
{
    struct gw__mb_dev *dev = calloc(1, sizeof(*dev));
    int rc;

    *out = NULL;
    if (!dev)
        return -ENOMEM;
    dev->ad = ad;
    dev->cfg = cfg;
    dev->tag = ad->name;
    dev->data_dir = data_dir;
    dev->ctr = ctr;
    dev->unit = (uint8_t)(cfg->unit_id > 0 ? cfg->unit_id : 0);
    atomic_init(&dev->live_session, 0);
    rc = gw__mb_plan_build(cfg->points, cfg->point_count, &dev->plan);
    if (rc)
        goto err;
    dev->seg_exc = calloc(dev->plan.n_segs ? dev->plan.n_segs : 1, sizeof(*dev->seg_exc));
    if (!dev->seg_exc) {
        rc = -ENOMEM;
        goto err_plan;
    }
    if (cfg->ota_base != GW_CONFIG_UNSET)
        gw__mb_ota_restore(dev);
    *out = dev;
    return 0;
err_plan:
    gw__mb_plan_fini(&dev->plan);
err:
    free(dev);
    return rc;
}

void gw__mb_dev_free(struct gw__mb_dev *dev)
{
    if (!dev)
        return;
    while (dev->sets)
        set_pop(dev);
    gw__mb_ota_free(dev);
    gw__mb_plan_fini(&dev->plan);
    free(dev->seg_exc);
    free(dev);
}

void gw__mb_dev_up(struct gw__mb_dev *dev, int64_t now)
{
    uint64_t session = atomic_fetch_add(&dev->ctr->session_seq, 1) + 1;

    if (dev->link != GW__MB_UP)
        atomic_fetch_add(&dev->ctr->sessions, 1);
    dev->link = GW__MB_UP;
    dev->session = session;
    atomic_store(&dev->live_session, session);
    dev->timeouts = 0;
    dev->last_req_ms = 0;
    post_session(dev, GW_SESSION_REACHABLE, session, now);
    for (size_t i = 0; i < dev->plan.n_segs; i++)
        dev->plan.segs[i].next_due_ms = now;
    gw_log(GW_LOG_INFO, dev->tag, "%s/%s (unit %u) online, session %llu", dev->cfg->product_key,
           dev->cfg->device_name, dev->unit, (unsigned long long)session);
    if (dev->ota)
        gw__mb_ota_on_up(dev, now);
}

static void go_offline(struct gw__mb_dev *dev, int64_t now, enum gw__mb_link to)
{
    if (dev->link == GW__MB_UP) {
        atomic_fetch_sub(&dev->ctr->sessions, 1);
        atomic_store(&dev->live_session, 0);
        post_session(dev, GW_SESSION_OFFLINE, dev->session, now);
        gw_log(GW_LOG_INFO, dev->tag, "%s/%s offline%s", dev->cfg->product_key,
               dev->cfg->device_name, to == GW__MB_STALLED ? " (not answering)" : "");
    }
    sets_fail(dev, GW_E_DEVICE_NOT_CONNECTED);
    dev->link = to;
}

void gw__mb_dev_down(struct gw__mb_dev *dev, int64_t now)
{
    if (dev->link == GW__MB_DOWN)
        return;
    go_offline(dev, now, GW__MB_DOWN);
}

/* ---- messages from the core ---- */

static void on_reply(struct gw__mb_dev *dev, const struct gw_msg *msg, int64_t now)
{
    if (msg->method == GW_METHOD_PROPERTY_POST) {
        if (msg->code == gw_error_api_code(GW_E_DEVICE_NOT_EXISTS)) {
            if (!dev->unknown)
                gw_log(GW_LOG_WARN, dev->tag,
                       "%s/%s is not a device of the store yet: create "
                       "it through the admin API",
                       dev->cfg->product_key, dev->cfg->device_name);
            dev->unknown = true;
        } else if (msg->code == 0 && dev->unknown && dev->link == GW__MB_UP &&
                   msg->origin.session == dev->session) {
            /* It exists now, and the core dropped our REACHABLE back then: say it again. */
            dev->unknown = false;
            post_session(dev, GW_SESSION_REACHABLE, dev->session, now);
        }
    } else if (msg->method == GW_METHOD_OTA_PROGRESS) {
        gw__mb_ota_on_reply(dev, msg, now);
    }
}

void gw__mb_dev_accept(struct gw__mb_dev *dev, struct gw_msg *msg, int64_t now)
{
    if (gw_msg_is_reply(msg)) {
        on_reply(dev, msg, now);
        gw_msg_unref(msg);
        return;
    }
    switch (msg->method) {
    case GW_METHOD_PROPERTY_SET:
        set_accept(dev, msg); /* takes msg */
        return;
    case GW_METHOD_OTA_UPGRADE:
        gw__mb_ota_on_upgrade(dev, msg, now);
        break;
    case GW_METHOD_OTA_CANCEL:
        gw__mb_ota_on_cancel(dev, msg, now);
        break;
    case GW_METHOD_SERVICE_INVOKE:
        reply_to(dev, msg, -ENOTSUP, "a Modbus device has no services: use thing.property.set");
        break;
    default:
        gw_log(GW_LOG_DEBUG, dev->tag, "%s/%s: %s ignored (not a Modbus operation)",
               dev->cfg->product_key, dev->cfg->device_name, gw_msg_method_name(msg));
        break;
    }
    gw_msg_unref(msg);
}

/* ---- scheduling ---- */

static void probe_request(struct gw__mb_dev *dev, struct gw__mb_req *req)
{
    if (dev->plan.n_segs) {
        req->fc = dev->plan.segs[0].fc;
        req->addr = dev->plan.segs[0].start;
        req->count = dev->plan.segs[0].count;
    } else {
        req->fc = 3;
        req->addr = (uint16_t)(dev->cfg->ota_base + GW__MB_OTA_STATUS);
        req->count = 1;
    }
    req->tag = GW__MB_TAG_PROBE;
}

bool gw__mb_dev_next(struct gw__mb_dev *dev, int64_t now, struct gw__mb_req *req, int64_t *wake)
{
    int64_t t_ota = NEVER, t_poll = NEVER, t, start;
    struct gw__mb_segment *seg = NULL;

    if (dev->pending.set) {
        if (now >= dev->pending_due_ms)
            post_session(dev, dev->pending.ev, dev->pending.session, now);
        if (dev->pending.set)
            lower(wake, dev->pending_due_ms);
    }
    if (dev->link == GW__MB_DOWN)
        return false;
    if (dev->link == GW__MB_STALLED) {
        if (now < dev->probe_due_ms) {
            lower(wake, dev->probe_due_ms);
            return false;
        }
        memset(req, 0, offsetof(struct gw__mb_req, regs));
        probe_request(dev, req);
        return true;
    }
    if (dev->ota)
        t_ota = gw__mb_ota_ready_at(dev, now);
    for (size_t i = 0; i < dev->plan.n_segs; i++)
        if (!seg || dev->plan.segs[i].next_due_ms < seg->next_due_ms)
            seg = &dev->plan.segs[i];
    if (seg)
        t_poll = seg->next_due_ms;
    t = dev->sets ? now : (t_ota < t_poll ? t_ota : t_poll);
    if (t == NEVER)
        return false;
    start = dev->last_req_ms + GW__MB_MIN_GAP_MS;
    if (t > start)
        start = t;
    if (start > now) {
        lower(wake, start);
        return false;
    }
    memset(req, 0, offsetof(struct gw__mb_req, regs));
    if (dev->sets) {
        set_request(dev, req);
        req->tag = GW__MB_TAG_SET;
        return true;
    }
    if (t_ota <= now && (t_poll > now || dev->ota_turn)) {
        dev->ota_turn = false;
        gw__mb_ota_build(dev, req);
        req->tag = GW__MB_TAG_OTA;
        return true;
    }
    dev->ota_turn = true;
    req->fc = seg->fc;
    req->addr = seg->start;
    req->count = seg->count;
    req->tag = GW__MB_TAG_POLL;
    req->ref = (size_t)(seg - dev->plan.segs);
    return true;
}

void gw__mb_dev_done(struct gw__mb_dev *dev, const struct gw__mb_req *req,
                     const struct gw__mb_resp *resp, int64_t now)
{
    bool silent = resp->err == GW_E_TIMEOUT || resp->err == -EPROTO;

    dev->last_req_ms = now;
    dev->timeouts = silent ? dev->timeouts + 1 : 0;
    switch (req->tag) {
    case GW__MB_TAG_PROBE:
        if (!silent && resp->err != -EIO && dev->link == GW__MB_STALLED)
            gw__mb_dev_up(dev, now);
        else
            dev->probe_due_ms = now + dev->cfg->retry_interval_ms;
        return;
    case GW__MB_TAG_POLL:
        poll_done(dev, req, resp, now);
        break;
    case GW__MB_TAG_SET:
        set_done(dev, resp);
        break;
    case GW__MB_TAG_OTA:
        gw__mb_ota_done(dev, req, resp, now);
        break;
    default:
        break;
    }
    if (dev->link == GW__MB_UP && dev->timeouts >= GW__MB_STALL_TIMEOUTS && has_probe(dev)) {
        go_offline(dev, now, GW__MB_STALLED);
        dev->probe_due_ms = now + dev->cfg->retry_interval_ms;
    }
}
