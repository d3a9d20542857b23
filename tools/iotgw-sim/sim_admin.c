/*
 * DESIGN: the admin API as the simulator uses it (DESIGN §7.4): Bearer token, JSON bodies,
 * the {"code","msg","data"} envelope. Each call is one sim_http_request; the answer is
 * parsed with cJSON and handed to the caller's callback as (code, data, msg).
 * Main thread. The callback gets data and msg borrowed for its duration.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define ADMIN_PREFIX "/admin-api/iot/"

struct admin_call {
    struct sim *s;
    sim_admin_done_fn done;
    void *arg;
    char *body; /* owned (JSON text); an upload's bytes are the caller's */
};

static void on_http_done(void *arg, int status, const char *body, size_t len)
{
    struct admin_call *c = arg;
    cJSON *root = NULL;
    const cJSON *code, *msg;
    long v = -1;
    char why[96];

    if (status == 0) {
        c->done(c->s, c->arg, -1, NULL, "connection to the admin API failed");
        goto out;
    }
    root = cJSON_ParseWithLength(body, len);
    code = cJSON_GetObjectItemCaseSensitive(root, "code");
    msg = cJSON_GetObjectItemCaseSensitive(root, "msg");
    if (!cJSON_IsNumber(code)) {
        snprintf(why, sizeof(why), "HTTP %d without an envelope", status);
        c->done(c->s, c->arg, status ? -status : -1, NULL, why);
        goto out;
    }
    v = (long)code->valuedouble;
    c->done(c->s, c->arg, v, cJSON_GetObjectItemCaseSensitive(root, "data"),
            cJSON_IsString(msg) ? msg->valuestring : "");
out:
    cJSON_Delete(root);
    free(c->body);
    free(c);
}

static int start(struct sim *s, const char *method, const char *path_query, const char *ctype,
                 const void *body, size_t len, struct admin_call *c)
{
    char url[SIM_URL_MAX * 2], auth[300];
    struct sim_http_req r;
    int rc;

    snprintf(url, sizeof(url), "%s%s%s", s->o.admin_url, ADMIN_PREFIX, path_query);
    snprintf(auth, sizeof(auth), "Bearer %s", s->o.admin_token);
    memset(&r, 0, sizeof(r));
    r.method = method;
    r.url = url;
    r.auth = auth;
    r.ctype = ctype;
    r.body = body;
    r.body_len = len;
    r.done = on_http_done;
    r.arg = c;
    rc = sim_http_request(s, &r);
    if (rc != 0) {
        free(c->body);
        free(c);
    }
    return rc;
}

int sim_admin_call(struct sim *s, const char *method, const char *path_query, const cJSON *body,
                   sim_admin_done_fn done, void *arg)
{
    struct admin_call *c = calloc(1, sizeof(*c));

    if (!c)
        return -ENOMEM;
    c->s = s;
    c->done = done;
    c->arg = arg;
    if (body) {
        c->body = cJSON_PrintUnformatted(body);
        if (!c->body) {
            free(c);
            return -ENOMEM;
        }
    }
    return start(s, method, path_query, body ? "application/json" : NULL, c->body,
                 c->body ? strlen(c->body) : 0, c);
}

int sim_admin_upload(struct sim *s, const char *path_query, const void *bytes, size_t len,
                     sim_admin_done_fn done, void *arg)
{
    struct admin_call *c = calloc(1, sizeof(*c));

    if (!c)
        return -ENOMEM;
    c->s = s;
    c->done = done;
    c->arg = arg;
    return start(s, "POST", path_query, "application/octet-stream", bytes, len, c);
}
