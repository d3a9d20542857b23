/*
 * DESIGN: what one simulated device does, whatever its protocol: keep its link (reconnect
 * when it drops), post properties when the tick asks, answer downstream requests, and carry
 * out an upgrade (DESIGN §5.4, §5.5):
 *   thing.ota.upgrade → status 20 progress 0 → download (sim_dl.c) with a progress report
 *   at each of --progress-steps steps → verify size, MD5, SHA-256 → status 30 progress 100,
 *   or status 40 with the reason (simulated failure or a verification error).
 * Behaviours (enum sim_beh) bend that: silent devices never answer the upgrade, drop devices
 * lose their link halfway through the download and resume it with Range once back, slow
 * devices download at --slow-rate.
 * Modbus devices (ops->ota_by_gateway) get no thing.ota.upgrade: the gateway writes the image
 * into their registers (DESIGN §5.6), so sim_modbus_regs.c reports the start and the verdict
 * here (sim_dev_ota_begin/_end) and the same counters and checks apply.
 *
 * Main thread. Invariants: link CONNECTING is counted in sim.connecting, UP in sim.linked
 * and c.online[proto]; a device is in at most one of connq, dlq, leaveq at a time (qnext);
 * an upgrade is handled once per target version (duplicates from re-pushes are counted and
 * answered with the final report when there is one).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define STATUS_UPGRADING 20
#define STATUS_SUCCESS 30
#define STATUS_FAILURE 40
#define MAX_CONNECT_RETRIES 20
#define WAVE_LEAVE_DELAY_MS 500 /* a finished device stays this long so its report is out */

void sim_dev_connect(struct sim_dev *d)
{
    struct sim *s = d->sim;

    d->want_link = true;
    if (d->link != SIM_LINK_DOWN || d->in_connq || s->phase >= SIM_PH_STOP)
        return;
    d->in_connq = true;
    sim_devq_push(&s->connq, d);
}

static int send_progress(struct sim_dev *d, int status, int progress, const char *desc)
{
    cJSON *p = cJSON_CreateObject();
    int rc;

    if (!p)
        return -ENOMEM;
    cJSON_AddStringToObject(p, "version", d->version);
    cJSON_AddNumberToObject(p, "status", status);
    cJSON_AddNumberToObject(p, "progress", progress);
    cJSON_AddStringToObject(p, "description", desc);
    rc = sim_dev_send(d, "thing.ota.progress", p);
    cJSON_Delete(p);
    return rc;
}

static void send_final(struct sim_dev *d)
{
    bool ok = d->ota == SIM_OTA_SUCCESS;
    const char *desc = ok ? "upgraded" : d->beh == SIM_BEH_FAIL ? "simulated failure"
                                                                  : "download or verification failed";

    if (sim_proto(d->proto)->ota_by_gateway)
        return; /* the gateway reports for it */
    if (d->link != SIM_LINK_UP || send_progress(d, ok ? STATUS_SUCCESS : STATUS_FAILURE,
                                                ok ? 100 : d->last_step, desc) != 0)
        d->final_pending = true;
    else
        d->final_pending = false;
}

/* The device's part of the run is over; in wave mode it leaves shortly after. */
static void mark_done(struct sim_dev *d)
{
    struct sim *s = d->sim;

    if (d->finished)
        return;
    d->finished = true;
    s->n_done++;
    if (s->o.max_online && !d->leaving) {
        d->leaving = true;
        d->leave_at_ms = sim_now_ms() + WAVE_LEAVE_DELAY_MS;
        sim_devq_push(&s->leaveq, d);
    }
}

static void finish_upgrade(struct sim_dev *d, bool ok, const char *why)
{
    struct sim *s = d->sim;

    d->ota = ok ? SIM_OTA_SUCCESS : SIM_OTA_FAILED;
    if (ok) {
        s->c.upgraded++;
        s->c.up_ok[d->proto]++;
    } else {
        s->c.failed++;
        s->c.up_fail[d->proto]++;
        if (d->beh != SIM_BEH_FAIL)
            sim_problem(s, "%s/%s: upgrade failed: %s", d->pk, d->dn, why);
    }
    sim_dl_free(d);
    send_final(d);
    mark_done(d);
}

void sim_dev_link_up(struct sim_dev *d)
{
    struct sim *s = d->sim;

    if (d->link != SIM_LINK_CONNECTING)
        return;
    s->connecting--;
    d->link = SIM_LINK_UP;
    d->retries = 0;
    d->t_link_ms = sim_now_ms();
    s->linked++;
    if (++s->c.online[d->proto] > s->c.online_max[d->proto])
        s->c.online_max[d->proto] = s->c.online[d->proto];
    if (d->final_pending)
        send_final(d);
    if (d->ota == SIM_OTA_PAUSED) {
        d->ota = SIM_OTA_QUEUED;
        sim_devq_push(&s->dlq, d);
        sim_dev_dl_next(s);
    }
    if (!d->want_link || s->phase >= SIM_PH_STOP)
        sim_dev_disconnect(d, false);
}

static void link_gone(struct sim_dev *d)
{
    struct sim *s = d->sim;

    if (d->link == SIM_LINK_CONNECTING)
        s->connecting--;
    else if (d->link == SIM_LINK_UP) {
        s->linked--;
        s->c.online[d->proto]--;
    }
    d->link = SIM_LINK_DOWN;
}

void sim_dev_link_down(struct sim_dev *d, const char *why)
{
    struct sim *s = d->sim;
    bool was_up = d->link == SIM_LINK_UP;

    if (d->link == SIM_LINK_DOWN)
        return;
    if (was_up)
        s->c.link_lost++;
    else
        s->c.connect_fail++;
    link_gone(d);
    if (!d->want_link || s->phase >= SIM_PH_STOP)
        return;
    if (++d->retries > MAX_CONNECT_RETRIES) {
        sim_problem(s, "%s/%s (%s): gave up after %u connection attempts: %s", d->pk, d->dn,
                    sim_proto_name(d->proto), d->retries - 1, why ? why : "");
        d->want_link = false;
        if (!d->finished && s->o.task)
            mark_done(d);
        return;
    }
    sim_dev_connect(d);
}

void sim_dev_disconnect(struct sim_dev *d, bool reconnect)
{
    const struct sim_proto_ops *ops = sim_proto(d->proto);

    d->want_link = reconnect;
    if (d->link != SIM_LINK_DOWN) {
        ops->disconnect(d);
        d->gen++; /* late events of the old link are ignored */
        link_gone(d);
    }
    if (reconnect)
        sim_dev_connect(d);
}

int sim_dev_send(struct sim_dev *d, const char *method, const cJSON *params)
{
    struct sim *s = d->sim;
    char id[16];
    int rc;

    if (d->link != SIM_LINK_UP)
        return -ENOTCONN;
    snprintf(id, sizeof(id), "%" PRIu32, ++d->seq);
    rc = sim_proto(d->proto)->send(d, id, method, params);
    if (rc == 0)
        s->c.sent++;
    else
        s->c.send_errors++;
    return rc;
}

void sim_dev_post_properties(struct sim_dev *d)
{
    cJSON *p = cJSON_CreateObject();

    if (!p)
        return;
    cJSON_AddNumberToObject(p, "temperature", 20.0 + (double)(d->seq % 100) / 10.0);
    cJSON_AddNumberToObject(p, "humidity", 40 + d->seq % 20);
    cJSON_AddNumberToObject(p, "seq", d->seq + 1);
    sim_dev_send(d, "thing.property.post", p);
    cJSON_Delete(p);
}

static const char *str_param(const cJSON *params, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A new upgrade to version arrived at t_ms: records it and its push latency. false when the
 * device is silent (it ignores the upgrade and is done). */
static bool upgrade_taken(struct sim_dev *d, const char *version, int64_t t_ms)
{
    struct sim *s = d->sim;

    snprintf(d->version, sizeof(d->version), "%s", version);
    d->t_upgrade_ms = t_ms;
    d->last_step = 0;
    d->dropped = false;
    if (s->o.max_online)
        sim_lat_add(s, (double)(t_ms - d->t_link_ms));
    else if (s->t_task_ms)
        sim_lat_add(s, (double)(t_ms - s->t_task_ms));
    if (d->beh != SIM_BEH_SILENT)
        return true;
    d->ota = SIM_OTA_IGNORED;
    s->c.ignored++;
    mark_done(d);
    return false;
}

static void on_upgrade(struct sim_dev *d, const cJSON *params, int64_t t_ms)
{
    struct sim *s = d->sim;
    const char *ver = str_param(params, "version"), *url = str_param(params, "fileUrl");
    const char *md5 = str_param(params, "fileDigestValue"), *sha = str_param(params, "sha256");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(params, "fileSize");

    s->c.upgrades++;
    if (!ver || !url || !md5 || !cJSON_IsNumber(size) || size->valuedouble < 0 ||
        strlen(ver) > SIM_VERSION_MAX) {
        sim_problem(s, "%s/%s: thing.ota.upgrade without version/fileUrl/fileSize/"
                       "fileDigestValue", d->pk, d->dn);
        return;
    }
    if (d->ota != SIM_OTA_NONE && strcmp(ver, d->version) == 0) {
        /* a re-push of what we are doing or did (e.g. after a timeout): say where we are */
        s->c.dup_upgrades++;
        if (d->ota == SIM_OTA_SUCCESS || d->ota == SIM_OTA_FAILED)
            send_final(d);
        return;
    }
    if (d->ota == SIM_OTA_QUEUED || d->ota == SIM_OTA_DOWNLOADING || d->ota == SIM_OTA_PAUSED) {
        s->c.dup_upgrades++; /* another version while busy: a real device finishes first */
        return;
    }
    if (!upgrade_taken(d, ver, t_ms))
        return;
    send_progress(d, STATUS_UPGRADING, 0, "downloading");
    if (sim_dl_begin(d, url, (uint64_t)size->valuedouble, md5, sha ? sha : "",
                     d->beh == SIM_BEH_SLOW,
                     d->beh == SIM_BEH_DROP ? (uint64_t)size->valuedouble / 2 + 1 : 0) != 0) {
        finish_upgrade(d, false, "bad fileUrl or digests");
        return;
    }
    d->ota = SIM_OTA_QUEUED;
    sim_devq_push(&s->dlq, d);
    sim_dev_dl_next(s);
}

void sim_dev_ota_begin(struct sim_dev *d, const char *version, int64_t t_ms)
{
    struct sim *s = d->sim;

    if (d->ota != SIM_OTA_NONE && strcmp(version, d->version) == 0) {
        s->c.dup_upgrades++; /* the same image again (a re-push after a timeout) */
        return;
    }
    s->c.upgrades++;
    if (!upgrade_taken(d, version, t_ms))
        return;
    d->ota = SIM_OTA_DOWNLOADING;
    s->c.dl_started++;
}

void sim_dev_ota_end(struct sim_dev *d, bool ok, const char *why)
{
    struct sim *s = d->sim;

    if (d->ota != SIM_OTA_DOWNLOADING)
        return;
    if (!ok && d->beh != SIM_BEH_FAIL)
        s->c.verify_fail++; /* the image it got does not match */
    finish_upgrade(d, ok, why);
}

void sim_dev_on_message(struct sim_dev *d, const cJSON *msg, int64_t t_ms)
{
    struct sim *s = d->sim;
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(msg, "method");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(msg, "code");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(msg, "params");
    const char *m = cJSON_IsString(method) ? method->valuestring : "";

    s->c.received++;
    if (code) {
        if (!cJSON_IsNumber(code) || code->valuedouble != 0) {
            const cJSON *emsg = cJSON_GetObjectItemCaseSensitive(msg, "msg");
            s->c.replies_err++;
            sim_problem(s, "%s/%s: %s answered with code %.0f: %s", d->pk, d->dn, m,
                        cJSON_IsNumber(code) ? code->valuedouble : -1,
                        cJSON_IsString(emsg) ? emsg->valuestring : "");
        }
        return;
    }
    if (strcmp(m, "thing.ota.upgrade") == 0)
        on_upgrade(d, params, t_ms);
    else if (strcmp(m, "thing.property.set") == 0 || strcmp(m, "thing.service.invoke") == 0)
        sim_proto(d->proto)->reply(d, cJSON_IsString(id) ? id->valuestring : "", m, 0);
}

void sim_dev_dl_progress(struct sim_dev *d, uint64_t got, uint64_t size)
{
    uint32_t steps = d->sim->o.progress_steps;
    uint32_t step;

    if (steps == 0 || size == 0)
        return;
    step = (uint32_t)(got * steps / size);
    if (step > d->last_step && step < steps) {
        d->last_step = (uint8_t)step;
        send_progress(d, STATUS_UPGRADING, (int)(step * 100 / steps), "downloading");
    }
}

void sim_dev_dl_next(struct sim *s)
{
    struct sim_dev *d;

    while (s->downloads < s->o.max_downloads && (d = sim_devq_pop(&s->dlq))) {
        if (d->ota != SIM_OTA_QUEUED || !d->dl)
            continue;
        if (sim_dl_resume(d) != 0) {
            finish_upgrade(d, false, "cannot resume the download");
            continue;
        }
        d->ota = SIM_OTA_DOWNLOADING;
        s->downloads++;
    }
}

void sim_dev_dl_done(struct sim_dev *d, int rc, const char *why)
{
    struct sim *s = d->sim;

    if (d->ota != SIM_OTA_DOWNLOADING)
        return;
    s->downloads--;
    if (rc == -EINTR && s->phase < SIM_PH_STOP) {
        /* the drop behaviour: lose the link too, come back, then resume with Range */
        d->ota = SIM_OTA_PAUSED;
        sim_dev_disconnect(d, true);
    } else if (rc == 0) {
        s->c.dl_done++;
        finish_upgrade(d, d->beh != SIM_BEH_FAIL, "verified");
    } else {
        s->c.dl_errors++;
        if (strstr(why, "mismatch") || strstr(why, "more than"))
            s->c.verify_fail++;
        finish_upgrade(d, false, why);
    }
    sim_dev_dl_next(s);
}

char *sim_msg_text(const char *id, const char *method, const cJSON *params, int code)
{
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;

    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "method", method);
    if (params)
        cJSON_AddItemToObject(o, "params", cJSON_Duplicate(params, 1));
    else if (code >= 0) {
        cJSON_AddNumberToObject(o, "code", code);
        cJSON_AddItemToObject(o, "data", cJSON_CreateObject());
    }
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

void sim_method_path(const char *method, char *out, size_t len)
{
    size_t i;

    for (i = 0; method[i] && i + 1 < len; i++)
        out[i] = method[i] == '.' ? '/' : method[i];
    out[i] = '\0';
}

void sim_dev_conn_lost(struct sim_dev **slot, const char *why)
{
    struct sim_dev *d = *slot;

    if (!d)
        return;
    *slot = NULL;
    d->conn = NULL;
    sim_dev_link_down(d, why);
}
