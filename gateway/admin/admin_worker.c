/*
 * DESIGN: the admin worker pool. Route handlers block (LMDB reads, gw_core_call waiting for
 * a durable commit, device/message/send waiting for a device's reply), so they run here and
 * not on the lws thread, which keeps serving downloads meanwhile.
 *
 * Queues: todo (lws thread → workers, bounded by GW_ADM_QUEUE_MAX: the lws thread answers
 * 503 when it is full) and done (workers → lws thread, woken by lws_cancel_service), both
 * under adm->qlock. A request is touched only by the thread that dequeued it. On stop the
 * workers answer what is still queued with GW_E_SHUTDOWN and exit (the lws thread is
 * still running then and delivers those answers); the lists are freed by
 * gw__adm_queues_free once the lws context (which may still point at them) is gone.
 */
#include <errno.h>
#include <stdlib.h>

#include "admin_int.h"
#include "gw_error.h"
#include "gw_log.h"

static void push_done(struct gw_admin *adm, struct gw_adm_req *req)
{
    pthread_mutex_lock(&adm->qlock);
    req->next = NULL;
    if (adm->done_tail)
        adm->done_tail->next = req;
    else
        adm->done_head = req;
    adm->done_tail = req;
    pthread_mutex_unlock(&adm->qlock);
    gw__adm_wake(adm);
}

static void *worker_main(void *arg)
{
    struct gw_admin *adm = arg;

    pthread_mutex_lock(&adm->qlock);
    for (;;) {
        struct gw_adm_req *req;
        bool stop;

        while (!adm->todo_head && !adm->workers_stop)
            pthread_cond_wait(&adm->qcond, &adm->qlock);
        req = adm->todo_head;
        if (!req)
            break; /* stopping and nothing left */
        adm->todo_head = req->next;
        if (!adm->todo_head)
            adm->todo_tail = NULL;
        adm->todo_n--;
        stop = adm->workers_stop;
        pthread_mutex_unlock(&adm->qlock);

        if (stop) {
            if (gw__adm_respond(req, GW_E_SHUTDOWN, NULL) != 0)
                gw_log(GW_LOG_WARN, "admin", "out of memory answering a request");
        } else {
            gw__adm_dispatch(adm, req);
        }
        push_done(adm, req);
        pthread_mutex_lock(&adm->qlock);
    }
    pthread_mutex_unlock(&adm->qlock);
    return NULL;
}

int gw__adm_workers_start(struct gw_admin *adm)
{
    adm->workers_stop = false;
    for (int i = 0; i < GW_ADM_WORKERS; i++) {
        int rc = pthread_create(&adm->workers[i], NULL, worker_main, adm);

        if (rc != 0) {
            gw__adm_workers_stop(adm);
            return -rc;
        }
        adm->nworkers++;
    }
    return 0;
}

void gw__adm_workers_stop(struct gw_admin *adm)
{
    pthread_mutex_lock(&adm->qlock);
    adm->workers_stop = true;
    pthread_cond_broadcast(&adm->qcond);
    pthread_mutex_unlock(&adm->qlock);
    for (int i = 0; i < adm->nworkers; i++)
        pthread_join(adm->workers[i], NULL);
    pthread_mutex_lock(&adm->qlock); /* the lws thread reads it in gw__adm_submit */
    adm->nworkers = 0;
    pthread_mutex_unlock(&adm->qlock);
}

void gw__adm_queues_free(struct gw_admin *adm)
{
    struct gw_adm_req *lists[2] = { adm->todo_head, adm->done_head };

    for (int i = 0; i < 2; i++) {
        while (lists[i]) {
            struct gw_adm_req *next = lists[i]->next;

            gw__adm_req_free(lists[i]);
            lists[i] = next;
        }
    }
    adm->todo_head = adm->todo_tail = adm->done_head = adm->done_tail = NULL;
    adm->todo_n = 0;
}

int gw__adm_submit(struct gw_admin *adm, struct gw_adm_req *req)
{
    int rc = 0;

    pthread_mutex_lock(&adm->qlock);
    if (adm->workers_stop || adm->nworkers == 0 || adm->todo_n >= GW_ADM_QUEUE_MAX) {
        rc = -EAGAIN;
    } else {
        req->next = NULL;
        if (adm->todo_tail)
            adm->todo_tail->next = req;
        else
            adm->todo_head = req;
        adm->todo_tail = req;
        adm->todo_n++;
        pthread_cond_signal(&adm->qcond);
    }
    pthread_mutex_unlock(&adm->qlock);
    return rc;
}

struct gw_adm_req *gw__adm_take_done(struct gw_admin *adm)
{
    struct gw_adm_req *list;

    pthread_mutex_lock(&adm->qlock);
    list = adm->done_head;
    adm->done_head = adm->done_tail = NULL;
    pthread_mutex_unlock(&adm->qlock);
    return list;
}
