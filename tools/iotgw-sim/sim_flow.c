/*
 * DESIGN: the phases of one simulator run, driven by the 10 ms tick and by admin answers:
 *   PROVISION  product + N devices through the admin API (or --creds FILE)   (sim_prov.c)
 *   UPLOAD     the firmware image (--firmware / --firmware-size)            (sim_prov.c)
 *   TASK_EARLY wave mode (--max-online): the task exists before devices come online, so each
 *              one gets its upgrade when it connects
 *   CONNECT    every device logs in (paced by --connect-rate / --connect-parallel)
 *   TASK       the upgrade task for all devices of the run; its send time is t0 of the push
 *              latency
 *   RUN        devices upgrade; optional reconnect storm; the task is polled until it ends
 *   HOLD       sessions held --duration seconds (properties keep flowing)
 *   FINAL      the task as the gateway saw it, checked against the behaviour mix
 *   STOP       links closed, then the summary and the loop's handles
 * Main thread. Anything unexpected is a problem (sim_problem): the run still ends normally
 * and the exit code is 1.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define POLL_MS 500
#define STOP_WAIT_MS 5000

void sim_main_close_handles(struct sim *s);

static const char *phase_name(enum sim_phase p)
{
    static const char *n[] = { "provision", "upload", "task", "connect", "task",
                               "run",       "hold",   "final", "stop",  "done" };
    return n[p];
}

void sim_flow_next(struct sim *s, enum sim_phase p)
{
    if (s->phase >= SIM_PH_STOP && p < SIM_PH_STOP)
        return;
    s->phase = p;
}

void sim_flow_stop(struct sim *s, const char *why)
{
    (void)why;
    if (s->phase < SIM_PH_STOP)
        s->phase = SIM_PH_STOP;
}

/* ---- task ---- */

static void on_task_created(struct sim *s, void *arg, long code, const cJSON *data,
                            const char *msg)
{
    (void)arg;
    s->pending_admin--;
    if (code != 0 || !cJSON_IsNumber(data)) {
        sim_problem(s, "ota/task/create: code %ld: %s", code, msg ? msg : "");
        sim_flow_stop(s, "task failed");
        return;
    }
    s->task_id = (uint64_t)data->valuedouble;
    s->task_status = 10;
    sim_flow_next(s, s->phase == SIM_PH_TASK_EARLY ? SIM_PH_CONNECT : SIM_PH_RUN);
}

static void create_task(struct sim *s)
{
    cJSON *b = cJSON_CreateObject(), *ids;
    char name[64];

    snprintf(name, sizeof(name), "sim-%" PRId64, sim_wall_ms());
    cJSON_AddStringToObject(b, "name", name);
    cJSON_AddNumberToObject(b, "firmwareId", (double)s->fw.id);
    if (s->own_product) {
        cJSON_AddNumberToObject(b, "deviceScope", 1);
    } else {
        cJSON_AddNumberToObject(b, "deviceScope", 2);
        ids = cJSON_AddArrayToObject(b, "deviceIds");
        for (uint32_t i = 0; i < s->n; i++)
            cJSON_AddItemToArray(ids, cJSON_CreateNumber((double)s->devs[i].id));
    }
    if (s->o.push_timeout_s >= 0)
        cJSON_AddNumberToObject(b, "pushTimeoutS", (double)s->o.push_timeout_s);
    if (s->o.upgrade_timeout_s >= 0)
        cJSON_AddNumberToObject(b, "upgradeTimeoutS", (double)s->o.upgrade_timeout_s);
    if (s->o.max_retries >= 0)
        cJSON_AddNumberToObject(b, "maxRetries", (double)s->o.max_retries);
    s->task_sent = true;
    s->pending_admin++;
    s->t_task_ms = sim_now_ms();
    if (sim_admin_call(s, "POST", "ota/task/create", b, on_task_created, NULL) != 0) {
        s->pending_admin--;
        sim_problem(s, "ota/task/create: cannot start the request");
        sim_flow_stop(s, "task failed");
    }
    cJSON_Delete(b);
}

static void on_task_polled(struct sim *s, void *arg, long code, const cJSON *data,
                           const char *msg)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(data, "status");
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(data, "statusCounts");
    static const char *keys[6] = { "0", "10", "20", "30", "40", "50" };

    (void)arg;
    s->poll_busy = false;
    if (code != 0 || !cJSON_IsNumber(st)) {
        sim_problem(s, "ota/task/get: code %ld: %s", code, msg ? msg : "");
        return;
    }
    s->task_status = (int)st->valuedouble;
    for (int i = 0; i < 6; i++) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(counts, keys[i]);
        s->task_counts[i] = cJSON_IsNumber(c) ? (uint64_t)c->valuedouble : 0;
    }
    if (s->task_status != 10 && !s->t_task_end_ms)
        s->t_task_end_ms = sim_now_ms();
    if (s->phase == SIM_PH_FINAL) {
        cJSON_Delete(s->task_final);
        s->task_final = cJSON_Duplicate(data, 1);
    }
}

static void poll_task(struct sim *s)
{
    char q[96];

    if (s->poll_busy || !s->task_id)
        return;
    s->poll_busy = true;
    s->last_poll_ms = sim_now_ms();
    snprintf(q, sizeof(q), "ota/task/get?id=%" PRIu64, s->task_id);
    if (sim_admin_call(s, "GET", q, NULL, on_task_polled, NULL) != 0)
        s->poll_busy = false;
}

/*
 * Before a task over devices that just connected: wait until the gateway itself shows every
 * device of the run online. It learns each link from the broker's presence message, one
 * durable state change per device, and pushes to a device only once it is online there; a
 * task created at the last CONNACK can measure that catch-up, not the push (a gateway slowed
 * by strace had its task request wait behind ~1000 presence commits; unslowed, the lag is
 * ~10 ms for 1000 devices, reported as times_s.all_online_to_gateway_online).
 * Own product only (the count is per product); bounded, then the task goes anyway.
 */
#define GW_ONLINE_POLL_MS 20
#define GW_ONLINE_WAIT_MS 30000

static void on_online_polled(struct sim *s, void *arg, long code, const cJSON *data,
                             const char *msg)
{
    const cJSON *total = cJSON_GetObjectItemCaseSensitive(data, "total");

    (void)arg;
    (void)msg;
    s->poll_busy = false;
    if (code == 0 && cJSON_IsNumber(total) && total->valuedouble >= (double)s->n)
        s->t_gw_online_ms = sim_now_ms();
}

/* true once the task may be created. */
static bool gateway_sees_all_online(struct sim *s, int64_t now)
{
    char q[128];

    if (!s->own_product || s->t_gw_online_ms)
        return true;
    if (now - s->t_online_ms > GW_ONLINE_WAIT_MS) {
        sim_problem(s, "the gateway did not show all %u devices online within %d s", s->n,
                    GW_ONLINE_WAIT_MS / 1000);
        s->t_gw_online_ms = now;
        return true;
    }
    if (s->poll_busy || now - s->last_poll_ms < GW_ONLINE_POLL_MS)
        return false;
    s->poll_busy = true;
    s->last_poll_ms = now;
    snprintf(q, sizeof(q), "device/page?productId=%" PRIu64 "&state=1&pageNo=1&pageSize=1",
             s->product_id);
    if (sim_admin_call(s, "GET", q, NULL, on_online_polled, NULL) != 0)
        s->poll_busy = false;
    return false;
}

/* The gateway's records against the behaviour mix: nothing lost, nothing left active. */
static void check_task(struct sim *s)
{
    uint64_t *c = s->task_counts, sum = 0;
    uint64_t want_ok = s->beh_count[SIM_BEH_OK] + s->beh_count[SIM_BEH_DROP] +
                       s->beh_count[SIM_BEH_SLOW];
    uint64_t want_fail = s->beh_count[SIM_BEH_FAIL] + s->beh_count[SIM_BEH_SILENT];

    for (int i = 0; i < 6; i++)
        sum += c[i];
    if (s->task_status != 20)
        sim_problem(s, "task %" PRIu64 " did not end (status %d)", s->task_id, s->task_status);
    if (sum != s->n)
        sim_problem(s, "task has %" PRIu64 " records for %u devices", sum, s->n);
    if (c[0] + c[1] + c[2])
        sim_problem(s, "%" PRIu64 " records still active", c[0] + c[1] + c[2]);
    if (c[3] != want_ok)
        sim_problem(s, "%" PRIu64 " records in success, expected %" PRIu64, c[3], want_ok);
    if (c[4] != want_fail)
        sim_problem(s, "%" PRIu64 " records in failure, expected %" PRIu64, c[4], want_fail);
    if (s->c.upgraded != want_ok)
        sim_problem(s, "%" PRIu64 " devices upgraded, expected %" PRIu64, s->c.upgraded, want_ok);
}

/* ---- the tick ---- */

static void connect_some(struct sim *s, int64_t now, int64_t dt)
{
    const struct sim_proto_ops *ops;
    double budget = s->o.connect_rate ? (double)s->o.connect_rate * (double)dt / 1000.0 + 1
                                      : 1e18;
    struct sim_dev *d;

    (void)now;
    while (budget >= 1 && s->connq.n && s->connecting < s->o.connect_parallel &&
           (!s->o.max_online || s->connecting + s->linked < s->o.max_online)) {
        d = sim_devq_pop(&s->connq);
        d->in_connq = false;
        if (!d->want_link || d->link != SIM_LINK_DOWN)
            continue;
        budget -= 1;
        ops = sim_proto(d->proto);
        d->link = SIM_LINK_CONNECTING;
        d->gen++;
        s->connecting++;
        s->c.connects++;
        if (ops->connect(d) != 0 && d->link == SIM_LINK_CONNECTING)
            sim_dev_link_down(d, "cannot start the connection");
    }
}

static void post_properties(struct sim *s, int64_t dt)
{
    uint32_t scanned = 0;

    if (s->o.prop_rate <= 0 || !s->linked)
        return;
    s->prop_credit += s->o.prop_rate * (double)dt / 1000.0;
    if (s->prop_credit > s->o.prop_rate + 1)
        s->prop_credit = s->o.prop_rate + 1; /* no burst after a stall */
    while (s->prop_credit >= 1 && scanned < s->n) {
        struct sim_dev *d = &s->devs[s->prop_cursor];

        s->prop_cursor = (s->prop_cursor + 1) % s->n;
        scanned++;
        if (d->link != SIM_LINK_UP)
            continue;
        sim_dev_post_properties(d);
        s->prop_credit -= 1;
        scanned = 0;
    }
}

static void storm(struct sim *s)
{
    uint32_t every = s->o.storm_share > 0 ? (uint32_t)(1.0 / s->o.storm_share + 0.5) : 0;
    uint32_t n = 0;

    s->storm_done = true;
    s->t_storm_ms = sim_now_ms();
    if (!every)
        return;
    for (uint32_t i = 0; i < s->n; i++)
        if (i % every == 0 && s->devs[i].link == SIM_LINK_UP) {
            sim_dev_disconnect(&s->devs[i], true);
            n++;
        }
    fprintf(stderr, "iotgw-sim: reconnect storm: %u devices dropped their link\n", n);
}

static void stop_all(struct sim *s)
{
    struct sim_dev *d;

    s->stop_entered = true;
    s->stop_ms = sim_now_ms();
    while ((d = sim_devq_pop(&s->connq)))
        d->in_connq = false;
    while (sim_devq_pop(&s->dlq))
        ;
    while ((d = sim_devq_pop(&s->leaveq)))
        d->leaving = false;
    for (uint32_t i = 0; i < s->n; i++) {
        sim_dl_free(&s->devs[i]);
        sim_dev_disconnect(&s->devs[i], false);
    }
}

static void step_run(struct sim *s, int64_t now)
{
    if (s->o.storm_at_s > 0 && !s->storm_done && s->all_online_seen &&
        now >= s->t_online_ms + (int64_t)(s->o.storm_at_s * 1000))
        storm(s);
    if (s->o.storm_at_s > 0 && !s->storm_done)
        return;
    if (!s->o.task) {
        if (s->linked == s->n)
            sim_flow_next(s, SIM_PH_HOLD), s->t_hold_ms = now;
        return;
    }
    if (now - s->last_poll_ms >= POLL_MS)
        poll_task(s);
    if (s->n_done >= s->n && s->task_status != 10 && s->task_status != 0) {
        sim_flow_next(s, SIM_PH_HOLD);
        s->t_hold_ms = now;
    }
}

static void step_phase(struct sim *s, int64_t now);

static void all_online(struct sim *s, int64_t now)
{
    s->all_online_seen = true;
    s->t_online_ms = now;
    if (s->o.ready_file[0]) {
        FILE *f = fopen(s->o.ready_file, "w");
        if (f)
            fclose(f);
        else
            sim_problem(s, "cannot create %s", s->o.ready_file);
    }
}

void sim_flow_tick(struct sim *s)
{
    int64_t now = sim_now_ms(), dt = s->last_tick_ms ? now - s->last_tick_ms : 10;
    struct sim_dev *d;

    s->last_tick_ms = now;
    sim_mqtt_reap(s, false);
    while (s->leaveq.head && s->leaveq.head->leave_at_ms <= now) {
        d = sim_devq_pop(&s->leaveq);
        d->leaving = false;
        sim_dev_disconnect(d, false);
    }
    if (s->phase < SIM_PH_STOP && now - s->t0_ms > (int64_t)(s->o.timeout_s * 1000)) {
        sim_problem(s, "timed out after %.0f s in phase %s", s->o.timeout_s,
                    phase_name(s->phase));
        sim_flow_stop(s, "timeout");
    }
    if (s->phase < SIM_PH_STOP) {
        connect_some(s, now, dt);
        post_properties(s, dt);
    }
    if (!s->all_online_seen && s->n && s->linked == s->n)
        all_online(s, now);
    step_phase(s, now);
}

/* One step of the current phase. */
static void step_phase(struct sim *s, int64_t now)
{
    switch (s->phase) {
    case SIM_PH_PROVISION:
    case SIM_PH_UPLOAD:
        if (s->phase == SIM_PH_UPLOAD && s->o.no_connect) {
            sim_flow_next(s, SIM_PH_STOP);
        } else if (s->phase == SIM_PH_UPLOAD && s->pending_admin == 0 && !s->fw_bytes) {
            if (s->o.task)
                sim_upload(s);
            else
                sim_flow_next(s, SIM_PH_CONNECT);
        }
        break;
    case SIM_PH_TASK_EARLY:
        if (!s->task_sent)
            create_task(s);
        break;
    case SIM_PH_CONNECT:
        if (!s->connect_started) {
            s->connect_started = true;
            s->t_connect_ms = now;
            for (uint32_t i = 0; i < s->n; i++)
                sim_dev_connect(&s->devs[i]);
        }
        if (s->o.max_online)
            sim_flow_next(s, SIM_PH_RUN);
        else if (s->all_online_seen)
            sim_flow_next(s, s->o.task && !s->task_sent ? SIM_PH_TASK : SIM_PH_RUN);
        break;
    case SIM_PH_TASK:
        if (!s->task_sent && !s->poll_busy && gateway_sees_all_online(s, now))
            create_task(s);
        break;
    case SIM_PH_RUN:
        step_run(s, now);
        break;
    case SIM_PH_HOLD:
        if (now - s->t_hold_ms >= (int64_t)(s->o.duration_s * 1000))
            sim_flow_next(s, SIM_PH_FINAL);
        break;
    case SIM_PH_FINAL:
        if (!s->o.task) {
            sim_flow_next(s, SIM_PH_STOP);
        } else if (!s->final_sent) {
            s->final_sent = true;
            s->poll_busy = false;
            poll_task(s);
        } else if (!s->poll_busy) {
            check_task(s);
            sim_flow_next(s, SIM_PH_STOP);
        }
        break;
    case SIM_PH_STOP:
        if (!s->stop_entered)
            stop_all(s);
        if ((s->conns_alive == 0 && s->pending_admin == 0 && !s->poll_busy) ||
            now - s->stop_ms > STOP_WAIT_MS) {
            s->phase = SIM_PH_DONE;
            if (!s->o.quiet)
                sim_report_line(s, true);
            sim_report_json(s);
            sim_main_close_handles(s);
        }
        break;
    case SIM_PH_DONE:
        break;
    }
}

void sim_flow_start(struct sim *s)
{
    int rc;

    if (s->o.creds_in[0]) {
        rc = sim_creds_load(s, s->o.creds_in);
        if (rc != 0) {
            sim_problem(s, "cannot read devices from %s", s->o.creds_in);
            sim_flow_stop(s, "bad credentials file");
            return;
        }
    } else if (sim_devices_alloc(s) != 0) {
        sim_problem(s, "out of memory for %u devices", s->n);
        sim_flow_stop(s, "no memory");
        return;
    }
    if (sim_behaviours_assign(s) != 0) {
        sim_flow_stop(s, "no memory");
        return;
    }
    for (int p = 0; p < SIM_PROTO_N; p++)
        if (s->o.count[p] && (!sim_proto(p) || sim_proto(p)->init(s, s->o.endpoint[p]) != 0)) {
            sim_problem(s, "protocol %s: bad endpoint or not supported", sim_proto_name(p));
            sim_flow_stop(s, "bad endpoint");
            return;
        }
    if (s->o.creds_in[0]) {
        if (s->o.modbus_config[0] && sim_modbus_config_save(s, s->o.modbus_config) != 0)
            sim_problem(s, "cannot write %s", s->o.modbus_config);
        sim_flow_next(s, SIM_PH_UPLOAD);
        return;
    }
    s->phase = SIM_PH_PROVISION;
    sim_provision(s);
}
