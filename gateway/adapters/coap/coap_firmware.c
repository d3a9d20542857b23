/*
 * DESIGN: firmware over CoAP Block2 (DESIGN §5.5, RFC 7959):
 *   GET /ota/firmware/{firmwareId}/{recordId}?token=T
 * with the per-record token of the HTTP firmware server (gw_fwurl.h), so the URL of a
 * thing.ota.upgrade works on both listeners. The image is the content-addressed file
 * <data_dir>/firmware/<sha256> of the firmware row (read in an LMDB read transaction).
 *
 * CoAP thread only (a libcoap GET handler).
 *
 * libcoap does the block-wise work (COAP_BLOCK_USE_LIBCOAP, set before the endpoints exist):
 * coap_add_data_large_response adds Block2, Size2 and ETag and serves the following blocks
 * of a transfer itself. The file is mmap'ed read-only for it and unmapped by libcoap's
 * release callback (the file never changes: its name is its hash). A GET for a later block
 * (a device resuming after a reboot) finds no transfer in progress; libcoap then calls the
 * handler again and the same call serves just that block. ETag = the first 8 bytes of the
 * SHA-256, so it is the same across resumes and restarts.
 *
 * Block size: a device that asks (Block2 in its first GET) gets the size it asks for;
 * otherwise coap.block_size: when that is below 1024 a Block2 option with that size is put
 * on the response before libcoap sees it, which libcoap 4.3.1 takes as the application's
 * choice (otherwise it picks the largest block that fits the datagram).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coap_internal.h"
#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_store.h"
#include "gw_util.h"

struct fw_map {
    void *addr;
    size_t len;
};

static void release_map(coap_session_t *session, void *app_ptr)
{
    struct fw_map *m = app_ptr;

    (void)session;
    munmap(m->addr, m->len);
    free(m);
}

/* "{digits}" at *p up to stop: a non-zero u64. */
static bool parse_id(const char **p, const char *end, char stop, uint64_t *out)
{
    uint64_t v = 0;
    const char *s = *p;

    if (s == end || *s < '0' || *s > '9')
        return false;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if ((stop && (s == end || *s != stop)) || (!stop && s != end) || v == 0)
        return false;
    *p = stop ? s + 1 : s;
    *out = v;
    return true;
}

/* The value of token= in the query (libcoap joins Uri-Query options with '&'). */
static bool query_token(const coap_string_t *query, char *out, size_t cap)
{
    const char *q = query ? (const char *)query->s : "";
    const char *end = q + (query ? query->length : 0);

    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - q) > 6 && memcmp(q, "token=", 6) == 0) {
            if ((size_t)(stop - q - 6) >= cap)
                return false;
            memcpy(out, q + 6, (size_t)(stop - q - 6));
            out[stop - q - 6] = '\0';
            return true;
        }
        q = stop + 1;
    }
    return false;
}

static int firmware_row(struct gw__coap *a, uint64_t fid, struct gw_firmware *fw)
{
    struct gw_txn *txn = NULL;
    int rc = gw_store_txn_begin(gw_core_store(a->base.core), false, &txn);

    if (rc)
        return rc;
    rc = gw_store_firmware_get(txn, fid, fw);
    gw_store_txn_abort(txn);
    return rc;
}

static int map_file(const char *file, struct fw_map **out)
{
    struct fw_map *m;
    struct stat st;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return -errno;
    m = calloc(1, sizeof(*m));
    if (!m) {
        rc = -ENOMEM;
        goto out;
    }
    if (fstat(fd, &st) < 0 || st.st_size <= 0) {
        rc = fstat(fd, &st) < 0 ? -errno : -ENODATA;
        goto out;
    }
    m->len = (size_t)st.st_size;
    m->addr = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m->addr == MAP_FAILED) {
        rc = -errno;
        goto out;
    }
    *out = m;
    m = NULL;
out:
    free(m);
    close(fd);
    return rc;
}

void gw__coap_firmware_get(struct gw__coap *a, coap_resource_t *resource, coap_session_t *session,
                           const coap_pdu_t *req, const coap_string_t *query, const char *path,
                           size_t path_len, coap_pdu_t *resp)
{
    const char *p = path + strlen("ota/firmware/"), *end = path + path_len;
    char token[GW_FWURL_TOKEN_LEN + 2], file[PATH_MAX];
    struct gw_firmware fw;
    struct fw_map *m = NULL;
    coap_block_b_t blk;
    uint64_t fid, rid, etag = 0;
    uint8_t tag[8], buf[4];
    int rc;

    if (!parse_id(&p, end, '/', &fid) || !parse_id(&p, end, 0, &rid)) {
        gw__coap_respond(NULL, session, req, resp, 404, "no such firmware URL", NULL);
        return;
    }
    if (!query_token(query, token, sizeof(token)) ||
        !gw_admin_firmware_token_ok(a->dl_key, fid, rid, token)) {
        gw__coap_respond(NULL, session, req, resp, 401, "invalid download token", NULL);
        return;
    }
    rc = firmware_row(a, fid, &fw);
    if (rc == 0 &&
        (size_t)snprintf(file, sizeof(file), "%s/%s", a->fw_dir, fw.sha256) >= sizeof(file))
        rc = -ENAMETOOLONG;
    if (rc == 0)
        rc = map_file(file, &m);
    if (rc) {
        if (rc == GW_E_NOT_FOUND || rc == -ENOENT)
            gw__coap_respond(NULL, session, req, resp, 404, "firmware not found", NULL);
        else
            gw__coap_respond_err(NULL, session, req, resp, rc);
        gw_log(GW_LOG_WARN, a->base.name, "firmware %" PRIu64 " for record %" PRIu64 ": %s", fid,
               rid, gw_strerror(rc));
        return;
    }
    if (gw_hex_decode(fw.sha256, 16, tag, sizeof(tag)) == 0)
        for (size_t i = 0; i < sizeof(tag); i++)
            etag = etag << 8 | tag[i];
    if (!coap_get_block_b(session, req, COAP_OPTION_BLOCK2, &blk) && a->block_szx < 6)
        coap_add_option(resp, COAP_OPTION_BLOCK2,
                        coap_encode_var_safe(buf, sizeof(buf), a->block_szx), buf);
    coap_pdu_set_code(resp, COAP_RESPONSE_CODE(205));
    /* on failure libcoap sets 4.00/5.00 itself and still calls release_map */
    coap_add_data_large_response(resource, session, req, resp, query,
                                 COAP_MEDIATYPE_APPLICATION_OCTET_STREAM, -1, etag, m->len, m->addr,
                                 release_map, m);
}
