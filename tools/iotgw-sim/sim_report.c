/*
 * DESIGN: what the simulator tells its user: a live one-line summary on stderr every second
 * (phase, devices online, upgraded, failed, silent, downloads, messages per second) and, at
 * the end, one JSON document with every counter, the push latency and download time
 * percentiles, the task as the gateway reported it, and the problems found (DESIGN §8 benches
 * read their figures from it). Main thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"

void sim_lat_add(struct sim *s, double ms)
{
    if (s->n_lat < s->n)
        s->lat_ms[s->n_lat++] = ms;
}

void sim_dl_time_add(struct sim *s, double ms)
{
    if (s->n_dl < s->n)
        s->dl_ms[s->n_dl++] = ms;
}

void sim_dev_dl_time(struct sim_dev *d, double ms)
{
    struct sim_counts *c = &d->sim->c;

    sim_dl_time_add(d->sim, ms);
    if (d->beh != SIM_BEH_SLOW)
        return;
    if (!c->slow_dl_n[d->proto]++ || ms < c->slow_dl_ms_min[d->proto])
        c->slow_dl_ms_min[d->proto] = ms;
}

static const char *phase_label(enum sim_phase p)
{
    static const char *n[] = { "provision", "upload", "task", "connect", "task",
                               "run",       "hold",   "final", "stop",  "done" };
    return n[p];
}

void sim_report_line(struct sim *s, bool final)
{
    int64_t now = sim_now_ms();
    double secs = (double)(now - s->t0_ms) / 1000.0;
    double dt = s->last_report_ms ? (double)(now - s->last_report_ms) / 1000.0 : secs;
    uint64_t msgs = s->c.sent + s->c.received;
    double rate = dt > 0 ? (double)(msgs - s->last_sent) / dt : 0;
    char extra[96] = "", per[160] = "";
    size_t k = 0;

    if (s->phase == SIM_PH_PROVISION)
        snprintf(extra, sizeof(extra), " created %u/%u", s->next_to_create, s->n);
    else if (s->task_id)
        snprintf(extra, sizeof(extra), " task[30]=%" PRIu64 " [40]=%" PRIu64, s->task_counts[3],
                 s->task_counts[4]);
    /* online per protocol in use, e.g. " (tcp 3 udp 3 modbus 2)" */
    for (int p = 0; p < SIM_PROTO_N && k + 24 < sizeof(per); p++)
        if (s->o.count[p])
            k += (size_t)snprintf(per + k, sizeof(per) - k, "%s%s %u", k ? " " : " (",
                                  sim_proto_name(p), s->c.online[p]);
    if (k)
        snprintf(per + k, sizeof(per) - k, ")");
    fprintf(stderr, "[%7.1fs] %-9s online %u/%u%s upgraded %" PRIu64 " failed %" PRIu64
            " silent %" PRIu64 " dl %u msgs/s %.0f%s%s",
            secs, phase_label(s->phase), s->linked, s->n, per, s->c.upgraded, s->c.failed,
            s->c.ignored, s->downloads, rate, extra,
            final || !isatty(STDERR_FILENO) ? "\n" : "\r");
    s->last_sent = msgs;
    s->last_report_ms = now;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, uint32_t n, double p)
{
    size_t i;

    if (!n)
        return 0;
    i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static cJSON *dist(double *v, uint32_t n)
{
    cJSON *o = cJSON_CreateObject();

    qsort(v, n, sizeof(double), cmp_double);
    cJSON_AddNumberToObject(o, "n", n);
    cJSON_AddNumberToObject(o, "min", n ? v[0] : 0);
    cJSON_AddNumberToObject(o, "p50", pct(v, n, 0.50));
    cJSON_AddNumberToObject(o, "p90", pct(v, n, 0.90));
    cJSON_AddNumberToObject(o, "p99", pct(v, n, 0.99));
    cJSON_AddNumberToObject(o, "max", n ? v[n - 1] : 0);
    return o;
}

static double secs_between(int64_t a, int64_t b)
{
    return a && b && b >= a ? (double)(b - a) / 1000.0 : 0;
}

static void add_protocols(struct sim *s, cJSON *root)
{
    cJSON *pr = cJSON_AddObjectToObject(root, "protocols");
    uint32_t count[SIM_PROTO_N] = { 0 };

    for (uint32_t i = 0; i < s->n; i++)
        count[s->devs[i].proto]++;
    for (int p = 0; p < SIM_PROTO_N; p++) {
        cJSON *o;
        if (!count[p])
            continue;
        o = cJSON_AddObjectToObject(pr, sim_proto_name(p));
        cJSON_AddNumberToObject(o, "devices", count[p]);
        cJSON_AddNumberToObject(o, "online_max", s->c.online_max[p]);
        cJSON_AddNumberToObject(o, "upgraded", s->c.up_ok[p]);
        cJSON_AddNumberToObject(o, "failed", s->c.up_fail[p]);
        if (s->c.slow_dl_n[p]) {
            cJSON *sl = cJSON_AddObjectToObject(o, "slow_downloads");
            cJSON_AddNumberToObject(sl, "n", s->c.slow_dl_n[p]);
            cJSON_AddNumberToObject(sl, "min_ms", s->c.slow_dl_ms_min[p]);
        }
    }
    if (count[SIM_UDP]) {
        cJSON *o = cJSON_GetObjectItemCaseSensitive(pr, "udp");
        cJSON_AddNumberToObject(o, "retransmissions", (double)s->c.udp_rtx);
        cJSON_AddNumberToObject(o, "report_copies", (double)s->c.udp_repeats);
        cJSON_AddNumberToObject(o, "dropped_on_purpose", (double)s->c.udp_lost);
        cJSON_AddNumberToObject(o, "late_replies", (double)s->c.udp_late);
        cJSON_AddNumberToObject(o, "unanswered", (double)s->c.udp_unanswered);
    }
    if (count[SIM_MODBUS]) {
        cJSON *o = cJSON_GetObjectItemCaseSensitive(pr, "modbus");
        cJSON_AddNumberToObject(o, "blocks", (double)s->c.mb_blocks);
        cJSON_AddNumberToObject(o, "out_of_order", (double)s->c.mb_out_of_order);
        cJSON_AddNumberToObject(o, "exceptions", (double)s->c.mb_exceptions);
        cJSON_AddNumberToObject(o, "restarts", (double)s->c.mb_restarts);
        cJSON_AddNumberToObject(o, "resumed", (double)s->c.mb_resumed);
    }
}

static void add_counts(struct sim *s, cJSON *root, double elapsed)
{
    cJSON *o = cJSON_AddObjectToObject(root, "behaviour");
    static const char *bn[SIM_BEH_N] = { "ok", "fail", "silent", "drop", "slow" };

    for (int b = 0; b < SIM_BEH_N; b++)
        cJSON_AddNumberToObject(o, bn[b], s->beh_count[b]);
    o = cJSON_AddObjectToObject(root, "messages");
    cJSON_AddNumberToObject(o, "sent", (double)s->c.sent);
    cJSON_AddNumberToObject(o, "received", (double)s->c.received);
    cJSON_AddNumberToObject(o, "send_errors", (double)s->c.send_errors);
    cJSON_AddNumberToObject(o, "error_replies", (double)s->c.replies_err);
    cJSON_AddNumberToObject(o, "per_s", elapsed > 0 ? (double)(s->c.sent + s->c.received) /
                                                          elapsed : 0);
    o = cJSON_AddObjectToObject(root, "links");
    cJSON_AddNumberToObject(o, "connects", (double)s->c.connects);
    cJSON_AddNumberToObject(o, "connect_failures", (double)s->c.connect_fail);
    cJSON_AddNumberToObject(o, "lost", (double)s->c.link_lost);
    cJSON_AddNumberToObject(o, "auth_failures", (double)s->c.auth_fail);
    o = cJSON_AddObjectToObject(root, "upgrade");
    cJSON_AddNumberToObject(o, "received", (double)s->c.upgrades);
    cJSON_AddNumberToObject(o, "duplicates", (double)s->c.dup_upgrades);
    cJSON_AddNumberToObject(o, "upgraded", (double)s->c.upgraded);
    cJSON_AddNumberToObject(o, "failed", (double)s->c.failed);
    cJSON_AddNumberToObject(o, "silent", (double)s->c.ignored);
    cJSON_AddNumberToObject(o, "verify_failures", (double)s->c.verify_fail);
    cJSON_AddItemToObject(o, "push_latency_ms", dist(s->lat_ms, s->n_lat));
    o = cJSON_AddObjectToObject(root, "download");
    cJSON_AddNumberToObject(o, "started", (double)s->c.dl_started);
    cJSON_AddNumberToObject(o, "completed", (double)s->c.dl_done);
    cJSON_AddNumberToObject(o, "resumed", (double)s->c.dl_resumed);
    cJSON_AddNumberToObject(o, "errors", (double)s->c.dl_errors);
    cJSON_AddNumberToObject(o, "bytes", (double)s->c.dl_bytes);
    cJSON_AddItemToObject(o, "time_ms", dist(s->dl_ms, s->n_dl));
}

static void add_problems(struct sim *s, cJSON *root)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "problems");
    const char *p = s->problems, *nl;
    char line[512];

    while (p && *p && (nl = strchr(p, '\n'))) {
        snprintf(line, sizeof(line), "%.*s", (int)(nl - p), p);
        cJSON_AddItemToArray(arr, cJSON_CreateString(line));
        p = nl + 1;
    }
}

int sim_report_json(struct sim *s)
{
    cJSON *root = cJSON_CreateObject(), *o;
    double elapsed = (double)(sim_now_ms() - s->t0_ms) / 1000.0;
    char *text;
    FILE *f = stdout;
    int rc = 0;

    if (!root)
        return -ENOMEM;
    cJSON_AddBoolToObject(root, "ok", s->rc == 0);
    cJSON_AddNumberToObject(root, "devices", s->n);
    cJSON_AddNumberToObject(root, "elapsed_s", elapsed);
    o = cJSON_AddObjectToObject(root, "times_s");
    cJSON_AddNumberToObject(o, "connect_to_all_online", secs_between(s->t_connect_ms,
                                                                      s->t_online_ms));
    cJSON_AddNumberToObject(o, "all_online_to_gateway_online",
                            secs_between(s->t_online_ms, s->t_gw_online_ms));
    cJSON_AddNumberToObject(o, "task_create_to_end", secs_between(s->t_task_ms,
                                                                   s->t_task_end_ms));
    add_protocols(s, root);
    add_counts(s, root, elapsed);
    if (s->task_id) {
        o = cJSON_AddObjectToObject(root, "task");
        cJSON_AddNumberToObject(o, "id", (double)s->task_id);
        if (s->task_final)
            cJSON_AddItemToObject(o, "final", cJSON_Duplicate(s->task_final, 1));
    }
    add_problems(s, root);
    text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return -ENOMEM;
    if (s->o.json_out[0] && !(f = fopen(s->o.json_out, "w"))) {
        fprintf(stderr, "iotgw-sim: cannot write %s\n", s->o.json_out);
        f = stdout;
        rc = -EIO;
    }
    fprintf(f, "%s\n", text);
    if (f != stdout)
        fclose(f);
    else
        fflush(stdout);
    cJSON_free(text);
    if (s->problems)
        fprintf(stderr, "iotgw-sim: problems:\n%s", s->problems);
    return rc;
}
