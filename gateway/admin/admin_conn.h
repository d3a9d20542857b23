#ifndef GW_ADMIN_CONN_H
#define GW_ADMIN_CONN_H
/*
 * One HTTP connection of the admin listener: the lws per-session data shared by
 * admin_server.c (API requests) and admin_fwserve.c (firmware downloads). lws thread only.
 */
#include <stdbool.h>
#include <stdint.h>

#include "admin_int.h"

struct lws;

enum gw_adm_phase {
    GW_ADM_IDLE = 0,  /* between requests */
    GW_ADM_BODY,      /* receiving the request body */
    GW_ADM_WORKER,    /* the request is with a worker */
    GW_ADM_SEND,      /* writing the response */
};

#define GW_ADM_XHDR_MAX 4

struct gw_adm_conn {
    struct gw_admin *adm;
    struct lws *wsi;
    enum gw_adm_phase phase;
    struct gw_adm_req *req;  /* owned here except while phase == GW_ADM_WORKER */
    int verb;
    bool close_after;        /* close once the response is out (unread body left) */
    uint64_t clen;           /* announced request body length */

    /* response */
    int status;
    const char *ctype;
    bool head;               /* headers only */
    bool hdr_sent;
    char *mem;               /* body in memory (owned) ... */
    bool fd_open;            /* ... or a file, bytes [off, end) of fd */
    int fd;
    uint64_t off, end;
    uint64_t length;         /* content-length */
    int nxhdr;
    struct {
        char name[32];
        char value[160];
    } xhdr[GW_ADM_XHDR_MAX];
};

/* Adds a response header ("name:" with the colon). */
void gw__adm_conn_header(struct gw_adm_conn *c, const char *name, const char *value);
/* Sends req's envelope or a ready body; takes mem. Requests WRITEABLE. */
void gw__adm_conn_send_mem(struct gw_adm_conn *c, int status, const char *ctype, char *mem,
                           size_t len);
/* An error envelope {"code":code,"msg":msg,"data":null} with HTTP status of code. */
void gw__adm_conn_send_error(struct gw_adm_conn *c, int64_t code, const char *msg);

/* admin_fwserve.c: GET/HEAD /ota/firmware/... Returns 0 (response started) or -1. */
int gw__adm_fwserve_begin(struct gw_adm_conn *c, const char *path);

#endif
