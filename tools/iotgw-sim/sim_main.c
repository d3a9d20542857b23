/*
 * DESIGN: iotgw-sim's process: options, the one libuv loop (which also runs libwebsockets as
 * a foreign loop), the cross-thread event queue for paho's callbacks, signals, and the
 * ordered end (flow stops → links close → handles close → lws context destroyed → loop
 * returns). Main thread only, except sim_ev_post (any thread; guarded by ev_lock).
 * With a foreign loop lws_context_destroy is called twice: once to close lws's handles on
 * our loop, once after the loop ended to free the context (one call leaks it).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <libwebsockets.h>

#include "sim.h"

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sim_ev *ev_head, *ev_tail;

int64_t sim_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sim_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sim_problem(struct sim *s, const char *fmt, ...)
{
    char line[512];
    size_t old = s->problems ? strlen(s->problems) : 0;
    va_list ap;
    char *p;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* bounded: a storm of identical failures must not eat memory */
    if (old > 16 * 1024)
        return;
    p = realloc(s->problems, old + strlen(line) + 2);
    if (!p)
        return;
    memcpy(p + old, line, strlen(line));
    p[old + strlen(line)] = '\n';
    p[old + strlen(line) + 1] = '\0';
    s->problems = p;
    s->rc = 1;
}

static const struct sim_proto_ops *const protos[SIM_PROTO_N] = {
    [SIM_MQTT] = &sim_mqtt_ops, [SIM_TCP] = &sim_tcp_ops,  [SIM_UDP] = &sim_udp_ops,
    [SIM_WS] = &sim_ws_ops,     [SIM_HTTP] = &sim_httpdev_ops, [SIM_COAP] = &sim_coap_ops,
    [SIM_MODBUS] = &sim_modbus_ops,
};

const struct sim_proto_ops *sim_proto(enum sim_proto p)
{
    return p < SIM_PROTO_N ? protos[p] : NULL;
}

const char *sim_proto_name(enum sim_proto p)
{
    static const char *names[SIM_PROTO_N] = { "mqtt", "tcp", "udp", "ws", "http", "coap",
                                                "modbus" };
    return p < SIM_PROTO_N ? names[p] : "?";
}

void sim_devq_push(struct sim_devq *q, struct sim_dev *d)
{
    d->qnext = NULL;
    if (q->tail)
        q->tail->qnext = d;
    else
        q->head = d;
    q->tail = d;
    q->n++;
}

struct sim_dev *sim_devq_pop(struct sim_devq *q)
{
    struct sim_dev *d = q->head;

    if (!d)
        return NULL;
    q->head = d->qnext;
    if (!q->head)
        q->tail = NULL;
    d->qnext = NULL;
    q->n--;
    return d;
}

void sim_ev_post(struct sim *s, struct sim_ev *ev)
{
    ev->next = NULL;
    pthread_mutex_lock(&ev_lock);
    if (ev_tail)
        ev_tail->next = ev;
    else
        ev_head = ev;
    ev_tail = ev;
    pthread_mutex_unlock(&ev_lock);
    uv_async_send(&s->wake);
}

static void on_wake(uv_async_t *h)
{
    struct sim *s = h->data;
    struct sim_ev *ev, *next;

    pthread_mutex_lock(&ev_lock);
    ev = ev_head;
    ev_head = ev_tail = NULL;
    pthread_mutex_unlock(&ev_lock);
    for (; ev; ev = next) {
        next = ev->next;
        sim_mqtt_event(s, ev);
        free(ev->topic);
        free(ev->payload);
        free(ev);
    }
}

static void on_tick(uv_timer_t *h)
{
    sim_flow_tick(h->data);
}

static void on_report(uv_timer_t *h)
{
    struct sim *s = h->data;

    if (!s->o.quiet)
        sim_report_line(s, false);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct sim *s = h->data;

    if (s->phase >= SIM_PH_STOP) {
        fprintf(stderr, "iotgw-sim: second signal, exiting now\n");
        _exit(130);
    }
    sim_problem(s, "interrupted by signal %d", signum);
    sim_flow_stop(s, "signal");
}

/* Handles are closed by sim_flow once every link is down; this frees the rest. */
static void close_cb(uv_handle_t *h)
{
    (void)h;
}

void sim_main_close_handles(struct sim *s);
void sim_main_close_handles(struct sim *s)
{
    uv_close((uv_handle_t *)&s->tick, close_cb);
    uv_close((uv_handle_t *)&s->report, close_cb);
    uv_close((uv_handle_t *)&s->wake, close_cb);
    uv_close((uv_handle_t *)&s->sigint, close_cb);
    uv_close((uv_handle_t *)&s->sigterm, close_cb);
    for (int p = 0; p < SIM_PROTO_N; p++)
        if (protos[p] && protos[p]->fini)
            protos[p]->fini(s);
    /* first of two calls with a foreign loop: lws closes its handles on our loop */
    if (s->lws)
        lws_context_destroy(s->lws);
}

/* Devices keep one socket each: take every descriptor the hard limit allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int create_lws(struct sim *s)
{
    struct lws_context_creation_info info;
    void *loops[1] = { s->loop };

    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = sim_lws_protocol_list();
    info.options = LWS_SERVER_OPTION_LIBUV;
    info.foreign_loops = loops;
    info.timeout_secs = 30;
    info.connect_timeout_secs = 10;
    info.user = s;
    /* SIM_LWS_LOG=<lws level bits> shows libwebsockets' own log (debugging aid) */
    lws_set_log_level(getenv("SIM_LWS_LOG") ? atoi(getenv("SIM_LWS_LOG")) : LLL_ERR, NULL);
    s->lws = lws_create_context(&info);
    if (!s->lws) {
        fprintf(stderr, "iotgw-sim: cannot create the libwebsockets context (libuv event "
                        "library plugin libwebsockets-evlib_uv missing?)\n");
        return -1;
    }
    return 0;
}

static void free_sim(struct sim *s)
{
    for (uint32_t i = 0; i < s->n; i++) {
        sim_dl_free(&s->devs[i]);
        free(s->devs[i].token);
    }
    free(s->devs);
    free(s->lat_ms);
    free(s->dl_ms);
    free(s->problems);
    cJSON_Delete(s->task_final);
    free(s);
}

int main(int argc, char **argv)
{
    struct sim *s = calloc(1, sizeof(*s));
    uv_loop_t loop;
    int rc;

    if (!s)
        return 2;
    rc = sim_opts_parse(argc, argv, &s->o);
    if (rc != 0) {
        free(s);
        return rc > 0 ? 0 : 2;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    uv_loop_init(&loop);
    s->loop = &loop;
    s->t0_ms = sim_now_ms();
    if (create_lws(s) != 0) {
        uv_loop_close(&loop);
        free(s);
        return 2;
    }
    uv_async_init(&loop, &s->wake, on_wake);
    s->wake.data = s;
    uv_timer_init(&loop, &s->tick);
    s->tick.data = s;
    uv_timer_init(&loop, &s->report);
    s->report.data = s;
    uv_signal_init(&loop, &s->sigint);
    s->sigint.data = s;
    uv_signal_init(&loop, &s->sigterm);
    s->sigterm.data = s;
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    uv_timer_start(&s->tick, on_tick, 10, 10);
    uv_timer_start(&s->report, on_report, 1000, 1000);
    sim_flow_start(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    on_wake(&s->wake); /* events that raced the end: free them */
    /* second call: lws's handles are closed now, so it frees the context */
    lws_context_destroy(s->lws);
    s->lws = NULL;
    if (uv_loop_close(&loop) != 0)
        fprintf(stderr, "iotgw-sim: loop closed with handles still open\n");
    rc = s->rc;
    free_sim(s);
    return rc;
}
