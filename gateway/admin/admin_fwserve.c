/*
 * DESIGN: the firmware server (DESIGN §5.5) on the admin listener, lws thread.
 *   GET|HEAD /ota/firmware/{firmwareId}/{recordId}?token=T   per-record token (gw_fwurl.h)
 *   GET|HEAD /ota/firmware/{firmwareId}                      admin token (operators)
 * The image is the content-addressed file <data_dir>/firmware/<sha256> of the firmware row
 * (one LMDB read transaction on this thread, microseconds). One byte range per request
 * (206 + Content-Range; 416 when unsatisfiable) makes downloads resumable; the body is
 * streamed from the file in WRITEABLE callbacks (admin_server.c), so a large image never
 * blocks the thread or sits in memory. The file never changes (its name is its SHA-256),
 * so the ETag is the SHA-256 and ignoring If-Range is safe.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "admin_conn.h"
#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_store.h"

/* The token query parameter into out (empty when absent). */
static void query_token(struct lws *wsi, char *out, size_t len)
{
    char frag[GW_FWURL_TOKEN_LEN + 16];

    out[0] = '\0';
    for (int i = 0; i < GW_ADM_QUERY_MAX; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i);

        if (n < 0) {
            /* either no more fragments or one too long to be ours: look further only if
             * there are more */
            if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) <= 0)
                break;
            continue;
        }
        if (strncmp(frag, "token=", 6) == 0) {
            snprintf(out, len, "%s", frag + 6);
            return;
        }
    }
}

/* Parses "{fid}" or "{fid}/{rid}" after /ota/firmware/. */
static bool parse_ids(const char *s, uint64_t *fid, uint64_t *rid)
{
    const char *slash = strchr(s, '/');

    *rid = 0;
    if (!slash)
        return gw__adm_parse_u64(s, strlen(s), fid) && *fid > 0;
    return gw__adm_parse_u64(s, (size_t)(slash - s), fid) && *fid > 0 &&
           gw__adm_parse_u64(slash + 1, strlen(slash + 1), rid) && *rid > 0;
}

static int lookup(struct gw_admin *adm, uint64_t fid, struct gw_firmware *fw)
{
    struct gw_txn *txn;
    int rc = gw_store_txn_begin(gw_core_store(adm->core), false, &txn);

    if (rc != 0)
        return rc;
    rc = gw_store_firmware_get(txn, fid, fw);
    gw_store_txn_abort(txn);
    return rc;
}

static int authorize(struct gw_adm_conn *c, uint64_t fid, uint64_t rid)
{
    struct gw_admin *adm = c->adm;
    char buf[GW_ADM_TOKEN_MAX + 64];

    if (rid) {
        query_token(c->wsi, buf, sizeof(buf));
        if (!gw_admin_firmware_token_ok(adm->dl_key, fid, rid, buf)) {
            gw__adm_conn_send_error(c, 403, "bad or missing download token");
            return -1;
        }
        return 0;
    }
    buf[0] = '\0';
    lws_hdr_copy(c->wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_AUTHORIZATION);
    if (!gw__adm_bearer_ok(buf, adm->token, adm->token_len)) {
        gw__adm_conn_send_error(c, 401, "missing or wrong admin token (Authorization: Bearer)");
        return -1;
    }
    return 0;
}

/* Sets the body to [first, last] of the open file and the headers for status. */
static void send_file(struct gw_adm_conn *c, int status, uint64_t first, uint64_t last,
                      uint64_t size, const char *sha256)
{
    char v[160];

    snprintf(v, sizeof(v), "\"%s\"", sha256);
    gw__adm_conn_header(c, "etag:", v);
    gw__adm_conn_header(c, "accept-ranges:", "bytes");
    if (status == 206) {
        snprintf(v, sizeof(v), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last, size);
        gw__adm_conn_header(c, "content-range:", v);
    }
    c->status = status;
    c->ctype = "application/octet-stream";
    c->off = first;
    c->end = size ? last + 1 : 0;
    c->length = c->end - c->off;
    c->hdr_sent = false;
    c->phase = GW_ADM_SEND;
    lws_callback_on_writable(c->wsi);
}

int gw__adm_fwserve_begin(struct gw_adm_conn *c, const char *path)
{
    struct gw_admin *adm = c->adm;
    struct gw_firmware fw;
    uint64_t fid, rid, first = 0, last = 0;
    char file[PATH_MAX], range[128], v[64];
    struct stat st;
    int rc, r;

    if (c->verb != GW_ADM_GET && c->verb != GW_ADM_HEAD) {
        c->close_after = true;
        gw__adm_conn_header(c, "allow:", "GET, HEAD");
        gw__adm_conn_send_error(c, 405, "method not allowed: use GET or HEAD");
        return 0;
    }
    c->head = c->verb == GW_ADM_HEAD;
    if (!parse_ids(path + strlen("/ota/firmware/"), &fid, &rid)) {
        gw__adm_conn_send_error(c, 404, "no such firmware");
        return 0;
    }
    if (authorize(c, fid, rid) != 0)
        return 0;
    rc = lookup(adm, fid, &fw);
    if (rc == GW_E_NOT_FOUND) {
        gw__adm_conn_send_error(c, 404, "no such firmware");
        return 0;
    }
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, "admin", "firmware %" PRIu64 ": %s", fid, gw_strerror(rc));
        gw__adm_conn_send_error(c, 500, gw_strerror(rc));
        return 0;
    }
    if ((size_t)snprintf(file, sizeof(file), "%s/%s", adm->fw_dir, fw.sha256) >= sizeof(file))
        c->fd = -1;
    else
        c->fd = open(file, O_RDONLY | O_CLOEXEC);
    if (c->fd < 0 || fstat(c->fd, &st) != 0) {
        gw_log(GW_LOG_ERROR, "admin", "firmware %" PRIu64 ": file %s: %s", fid, file,
               strerror(errno));
        if (c->fd >= 0)
            close(c->fd);
        gw__adm_conn_send_error(c, 404, "firmware file missing");
        return 0;
    }
    c->fd_open = true;
    range[0] = '\0';
    lws_hdr_copy(c->wsi, range, sizeof(range), WSI_TOKEN_HTTP_RANGE);
    r = gw__adm_range_parse(range, (uint64_t)st.st_size, &first, &last);
    if (r < 0) {
        close(c->fd);
        c->fd_open = false;
        snprintf(v, sizeof(v), "bytes */%" PRIu64, (uint64_t)st.st_size);
        gw__adm_conn_header(c, "content-range:", v);
        gw__adm_conn_send_mem(c, 416, NULL, NULL, 0);
        return 0;
    }
    if (r == 0) {
        first = 0;
        last = st.st_size ? (uint64_t)st.st_size - 1 : 0;
    }
    send_file(c, r == 1 ? 206 : 200, first, last, (uint64_t)st.st_size, fw.sha256);
    return 0;
}
