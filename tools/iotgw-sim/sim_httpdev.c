/*
 * DESIGN: HTTP devices (DESIGN §7.5, REFERENCE §4.4 plus the gateway's long-poll):
 *   POST /auth {clientId, username, password} → {"code":0,"data":{"token":T}}: link UP;
 *   GET  /topic/sys/{pk}/{dn}/downstream?wait=S, again and again: a JSON array of
 *        downstream messages (the upgrade arrives here);
 *   POST /topic/sys/{pk}/{dn}/{method path} with `Authorization: Bearer T` for each upstream
 *        message, and .../{method path}_reply for answers to downstream requests.
 * Every exchange is one sim_http_request (its own connection). Posts of one device go one
 * at a time, in order (a real device waits for each answer; parallel connections could
 * deliver progress 75 after success).
 *
 * Main thread. struct hd_conn is owned here; requests in flight hold a reference (inflight).
 * Disconnect detaches it (conn->d = NULL); it is freed when the last request came back.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_auth.h"
#include "sim.h"

#define POLL_WAIT_S 20

struct hd_post {
    struct hd_post *next;
    char *body; /* owned */
    char path[];
};

struct hd_conn {
    struct sim *s;
    struct sim_dev *d;
    uint32_t inflight;
    bool authed, posting;
    struct hd_post *qh, *qt; /* posts waiting for the one in flight */
};

struct hd_req {
    struct hd_conn *c;
    char *body; /* owned */
    enum { HD_AUTH, HD_POLL, HD_POST } kind;
};

static char hd_base[SIM_URL_MAX];

static int hd_init(struct sim *s, const char *endpoint)
{
    size_t n = strlen(endpoint);

    (void)s;
    if (strncmp(endpoint, "http://", 7) != 0 || n >= sizeof(hd_base)) {
        fprintf(stderr, "iotgw-sim: --http-url %s: expected http://HOST:PORT\n", endpoint);
        return -EINVAL;
    }
    snprintf(hd_base, sizeof(hd_base), "%.*s", (int)(endpoint[n - 1] == '/' ? n - 1 : n),
             endpoint);
    return 0;
}

static void drop_posts(struct hd_conn *c)
{
    while (c->qh) {
        struct hd_post *p = c->qh;
        c->qh = p->next;
        free(p->body);
        free(p);
    }
    c->qt = NULL;
}

static void release(struct hd_conn *c)
{
    if (--c->inflight == 0 && !c->d) {
        drop_posts(c);
        c->s->conns_alive--;
        free(c);
    }
}

static void lost(struct hd_conn *c, const char *why)
{
    sim_dev_conn_lost(&c->d, why);
}

static void on_done(void *arg, int status, const char *body, size_t len);

static int start(struct hd_conn *c, int kind, const char *method, const char *path,
                 char *body)
{
    struct sim_dev *d = c->d;
    struct hd_req *r = calloc(1, sizeof(*r));
    struct sim_http_req q;
    char url[SIM_URL_MAX * 2], auth[1100];
    int rc;

    if (!r) {
        free(body);
        return -ENOMEM;
    }
    r->c = c;
    r->body = body;
    r->kind = kind;
    snprintf(url, sizeof(url), "%s%s", hd_base, path);
    memset(&q, 0, sizeof(q));
    q.method = method;
    q.url = url;
    if (kind != HD_AUTH && d->token) {
        snprintf(auth, sizeof(auth), "Bearer %s", d->token);
        q.auth = auth;
    }
    q.ctype = body ? "application/json" : NULL;
    q.body = body;
    q.body_len = body ? strlen(body) : 0;
    q.done = on_done;
    q.arg = r;
    q.owner = c;
    c->inflight++;
    rc = sim_http_request(c->s, &q);
    if (rc != 0) {
        c->inflight--;
        free(body);
        free(r);
    }
    return rc;
}

static void poll_again(struct hd_conn *c)
{
    char path[SIM_PK_MAX + SIM_DN_MAX + 64];

    snprintf(path, sizeof(path), "/topic/sys/%s/%s/downstream?wait=%d", c->d->pk, c->d->dn,
             POLL_WAIT_S);
    if (start(c, HD_POLL, "GET", path, NULL) != 0)
        lost(c, "cannot start the downstream poll");
}

static void on_auth(struct hd_conn *c, int status, cJSON *root)
{
    struct sim_dev *d = c->d;
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "code");
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "data"), "token");

    if (status == 0) {
        lost(c, "http connect failed");
        return;
    }
    if (!cJSON_IsNumber(code) || code->valuedouble != 0 || !cJSON_IsString(tok)) {
        c->s->c.auth_fail++;
        sim_problem(c->s, "%s/%s: http login refused (HTTP %d)", d->pk, d->dn, status);
        d->want_link = false;
        lost(c, "login refused");
        return;
    }
    free(d->token);
    d->token = strdup(tok->valuestring);
    c->authed = true;
    poll_again(c);
    if (c->d)
        sim_dev_link_up(d);
}

static void on_poll(struct hd_conn *c, int status, cJSON *root)
{
    const cJSON *m;

    if (status != 200 || !cJSON_IsArray(root)) {
        lost(c, status == 401 ? "token refused" : "downstream poll failed");
        return;
    }
    cJSON_ArrayForEach(m, root) {
        if (!c->d)
            return;
        sim_dev_on_message(c->d, m, sim_now_ms());
    }
    if (c->d)
        poll_again(c);
}

static void next_post(struct hd_conn *c)
{
    struct hd_post *p = c->qh;

    if (c->posting || !p || !c->d)
        return;
    c->qh = p->next;
    if (!c->qh)
        c->qt = NULL;
    c->posting = true;
    if (start(c, HD_POST, "POST", p->path, p->body) != 0)
        c->posting = false;
    free(p); /* the body now belongs to the request */
}

static void on_post(struct hd_conn *c, int status, cJSON *root)
{
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "code");

    c->posting = false;
    if (status == 0) {
        lost(c, "http post failed");
        return;
    }
    /* the envelope answers the post; count it like a reply on other protocols */
    c->s->c.received++;
    if (!cJSON_IsNumber(code) || code->valuedouble != 0) {
        c->s->c.replies_err++;
        sim_problem(c->s, "%s/%s: http post answered HTTP %d code %.0f", c->d->pk, c->d->dn,
                    status, cJSON_IsNumber(code) ? code->valuedouble : -1);
    }
    next_post(c);
}

static void on_done(void *arg, int status, const char *body, size_t len)
{
    struct hd_req *r = arg;
    struct hd_conn *c = r->c;
    cJSON *root = NULL;

    if (c->d) {
        root = status ? cJSON_ParseWithLength(body, len) : NULL;
        if (r->kind == HD_AUTH)
            on_auth(c, status, root);
        else if (r->kind == HD_POLL)
            on_poll(c, status, root);
        else
            on_post(c, status, root);
    }
    cJSON_Delete(root);
    free(r->body);
    free(r);
    release(c);
}

static int hd_connect(struct sim_dev *d)
{
    struct sim *s = d->sim;
    struct hd_conn *c = calloc(1, sizeof(*c));
    char cid[128], user[128], pw[65];
    cJSON *p = cJSON_CreateObject();
    char *text;
    int rc;

    if (!c || !p || gw_auth_password(d->pk, d->dn, d->secret, pw) != 0) {
        free(c);
        cJSON_Delete(p);
        return -ENOMEM;
    }
    snprintf(cid, sizeof(cid), "%s.%s", d->pk, d->dn);
    snprintf(user, sizeof(user), "%s&%s", d->dn, d->pk);
    cJSON_AddStringToObject(p, "clientId", cid);
    cJSON_AddStringToObject(p, "username", user);
    cJSON_AddStringToObject(p, "password", pw);
    text = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    c->s = s;
    c->d = d;
    c->inflight = 1; /* held by this function until the request is started */
    s->conns_alive++;
    d->conn = c;
    rc = start(c, HD_AUTH, "POST", "/auth", text);
    if (rc != 0 && c->d) {
        c->d = NULL;
        d->conn = NULL;
    }
    release(c);
    return rc;
}

static int post_text(struct sim_dev *d, const char *method, const char *suffix, char *text)
{
    struct hd_conn *c = d->conn;
    char path[SIM_PK_MAX + SIM_DN_MAX + 160], mp[96];
    struct hd_post *p;

    if (!c || !text) {
        free(text);
        return c ? -ENOMEM : -ENOTCONN;
    }

    sim_method_path(method, mp, sizeof(mp));
    snprintf(path, sizeof(path), "/topic/sys/%s/%s/%s%s", d->pk, d->dn, mp, suffix);
    p = malloc(sizeof(*p) + strlen(path) + 1);
    if (!p) {
        free(text);
        return -ENOMEM;
    }
    p->next = NULL;
    p->body = text;
    strcpy(p->path, path);
    if (c->qt)
        c->qt->next = p;
    else
        c->qh = p;
    c->qt = p;
    next_post(c);
    return 0;
}

static int hd_send(struct sim_dev *d, const char *id, const char *method, const cJSON *params)
{
    return post_text(d, method, "", sim_msg_text(id, method, params, -1));
}

static int hd_reply(struct sim_dev *d, const char *id, const char *method, int code)
{
    return post_text(d, method, "_reply", sim_msg_text(id, method, NULL, code));
}

static void hd_disconnect(struct sim_dev *d)
{
    struct hd_conn *c = d->conn;

    if (!c)
        return;
    c->d = NULL;
    d->conn = NULL;
    /* the conn goes with the last request: end the parked long-poll now */
    c->inflight++;
    sim_http_cancel_owner(c);
    release(c);
}

const struct sim_proto_ops sim_httpdev_ops = {
    .name = "http",
    .init = hd_init,
    .connect = hd_connect,
    .send = hd_send,
    .reply = hd_reply,
    .disconnect = hd_disconnect,
    .fini = NULL,
};
