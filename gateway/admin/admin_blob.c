/*
 * DESIGN: firmware images on disk. An image arrives (upload body, file:// copy or http://
 * fetch) into a private temp file under <data_dir>/firmware/, hashed incrementally with
 * mbedTLS (MD5 for the reference's fileDigestValue, SHA-256 for the content address and
 * the signature), never held in memory. Commit renames it to <data_dir>/firmware/<sha256>:
 * the name is the content, so two uploads of the same bytes share one file and a file is
 * never rewritten in place (downloads in progress keep reading a stable file).
 *
 * Threads: a blob belongs to one thread at a time (the lws thread while an upload streams,
 * then a worker). Signing uses the key loaded at create under adm->sign_lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/base64.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>

#include "admin_int.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_util.h"

int gw__adm_blob_begin(const char *dir, struct gw_adm_blob **out)
{
    struct gw_adm_blob *b = calloc(1, sizeof(*b));
    char nonce[17];
    int rc;

    if (!b)
        return -ENOMEM;
    rc = gw_random_hex(nonce, 8);
    if (rc != 0)
        goto err_free;
    if ((size_t)snprintf(b->tmp_path, sizeof(b->tmp_path), "%s/.upload-%s.tmp", dir, nonce) >=
        sizeof(b->tmp_path)) {
        rc = -ENAMETOOLONG;
        goto err_free;
    }
    b->fd = open(b->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (b->fd < 0) {
        rc = -errno;
        goto err_free;
    }
    mbedtls_md5_init(&b->md5);
    mbedtls_sha256_init(&b->sha);
    mbedtls_md5_starts_ret(&b->md5);
    mbedtls_sha256_starts_ret(&b->sha, 0);
    *out = b;
    return 0;

err_free:
    free(b);
    return rc;
}

int gw__adm_blob_write(struct gw_adm_blob *b, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t left = len;

    if (b->error)
        return b->error;
    while (left > 0) {
        ssize_t n = write(b->fd, p, left);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            b->error = -errno;
            return b->error;
        }
        p += n;
        left -= (size_t)n;
    }
    mbedtls_md5_update_ret(&b->md5, buf, len);
    mbedtls_sha256_update_ret(&b->sha, buf, len);
    b->size += len;
    return 0;
}

int gw__adm_blob_finish(struct gw_adm_blob *b)
{
    unsigned char md5[16], sha[32];

    if (b->error)
        return b->error;
    mbedtls_md5_finish_ret(&b->md5, md5);
    mbedtls_sha256_finish_ret(&b->sha, sha);
    gw_hex_encode(md5, sizeof(md5), b->md5_hex);
    gw_hex_encode(sha, sizeof(sha), b->sha256_hex);
    if (fsync(b->fd) != 0)
        b->error = -errno;
    return b->error;
}

static void blob_free(struct gw_adm_blob *b)
{
    if (b->fd >= 0)
        close(b->fd);
    mbedtls_md5_free(&b->md5);
    mbedtls_sha256_free(&b->sha);
    free(b);
}

int gw__adm_blob_commit(struct gw_adm_blob *b, const char *dir)
{
    char path[PATH_MAX];
    int rc = 0;

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, b->sha256_hex) >= sizeof(path)) {
        rc = -ENAMETOOLONG;
    } else if (link(b->tmp_path, path) != 0 && errno != EEXIST) {
        /* link, not rename: an existing file with this name already holds these bytes and
         * may be being served right now, so it is left alone */
        rc = -errno;
    } else {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (dfd >= 0) { /* make the new name durable before the row points at it */
            fsync(dfd);
            close(dfd);
        }
    }
    unlink(b->tmp_path);
    blob_free(b);
    return rc;
}

void gw__adm_blob_discard(struct gw_adm_blob *b)
{
    if (!b)
        return;
    unlink(b->tmp_path);
    blob_free(b);
}

int gw__adm_blob_from_file(const char *dir, const char *path, uint64_t max,
                           struct gw_adm_blob **out, char *err, size_t errlen)
{
    struct gw_adm_blob *b = NULL;
    char *buf = NULL;
    struct stat st;
    int fd, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "fileUrl: cannot open %s: %s", path, strerror(errno));
        return rc;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) { /* no devices, FIFOs, directories */
        snprintf(err, errlen, "fileUrl: %s is not a regular file", path);
        close(fd);
        return GW_E_BAD_FIELD;
    }
    buf = malloc(1 << 16);
    rc = buf ? gw__adm_blob_begin(dir, &b) : -ENOMEM;
    if (rc != 0) {
        snprintf(err, errlen, "cannot create a temp file: %s", strerror(-rc));
        goto err_close;
    }
    for (;;) {
        ssize_t n = read(fd, buf, 1 << 16);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            snprintf(err, errlen, "fileUrl: read error: %s", strerror(errno));
            goto err_discard;
        }
        if (n == 0)
            break;
        if (b->size + (uint64_t)n > max) {
            rc = GW_E_BAD_FIELD;
            snprintf(err, errlen, "fileUrl: file larger than %llu bytes",
                     (unsigned long long)max);
            goto err_discard;
        }
        rc = gw__adm_blob_write(b, buf, (size_t)n);
        if (rc != 0) {
            snprintf(err, errlen, "cannot store the firmware: %s", strerror(-rc));
            goto err_discard;
        }
    }
    rc = gw__adm_blob_finish(b);
    if (rc != 0) {
        snprintf(err, errlen, "cannot store the firmware: %s", strerror(-rc));
        goto err_discard;
    }
    free(buf);
    close(fd);
    *out = b;
    return 0;

err_discard:
    gw__adm_blob_discard(b);
err_close:
    free(buf);
    close(fd);
    return rc;
}

static int sign_rng(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    return gw_random_bytes(out, len) == 0 ? 0 : -1;
}

int gw__adm_sign_load(struct gw_admin *adm, const char *path)
{
    int rc;

    mbedtls_pk_init(&adm->sign_pk);
    rc = mbedtls_pk_parse_keyfile(&adm->sign_pk, path, NULL);
    if (rc != 0) {
        char why[128];

        mbedtls_strerror(rc, why, sizeof(why));
        gw_log(GW_LOG_ERROR, "admin", "firmware.sign_key: cannot load %s: %s", path, why);
        goto err_free;
    }
    if (mbedtls_pk_get_type(&adm->sign_pk) != MBEDTLS_PK_ECKEY ||
        mbedtls_pk_ec(adm->sign_pk)->grp.id != MBEDTLS_ECP_DP_SECP256R1) {
        gw_log(GW_LOG_ERROR, "admin", "firmware.sign_key: %s is not an EC P-256 private key",
               path);
        goto err_free;
    }
    adm->sign_on = true;
    return 0;

err_free:
    mbedtls_pk_free(&adm->sign_pk);
    return GW_E_CONFIG;
}

int gw__adm_sign(struct gw_admin *adm, const char *sha256_hex, char *out, size_t cap)
{
    unsigned char hash[32], sig[MBEDTLS_ECDSA_MAX_LEN];
    size_t sig_len = 0, olen = 0;
    int rc;

    out[0] = '\0';
    if (!adm->sign_on)
        return 0;
    if (gw_hex_decode(sha256_hex, 64, hash, sizeof(hash)) != 0)
        return -EINVAL;
    pthread_mutex_lock(&adm->sign_lock);
    rc = mbedtls_pk_sign(&adm->sign_pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, &sig_len,
                         sign_rng, NULL);
    pthread_mutex_unlock(&adm->sign_lock);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, "admin", "firmware signing failed: -0x%04x", (unsigned)-rc);
        return -EIO;
    }
    if (mbedtls_base64_encode((unsigned char *)out, cap, &olen, sig, sig_len) != 0)
        return -ENOSPC;
    return 0;
}
