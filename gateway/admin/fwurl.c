/*
 * DESIGN: secrets kept in the data directory (the download key of the firmware server, the
 * generated admin token) and the per-record download URL/token of DESIGN §5.5.
 *
 * Owns no state: every function is pure or does its own file I/O, so the core thread (which
 * builds fileUrl for thing.ota.upgrade) and the admin thread (which checks the token) can
 * both call them. Invariant: a secret file, once it exists, is never rewritten here; it
 * appears atomically (written to a private temp file, fsync'ed, then link()ed into place),
 * so concurrent first starts agree on one secret and a crash never leaves half a key.
 */
#include "gw_fwurl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/md.h>

#include "admin_int.h"
#include "gw_util.h"

static int secret_read(int fd, char *out, size_t outlen)
{
    size_t n = 0;

    for (;;) {
        char extra;
        ssize_t r;

        if (n + 1 >= outlen) { /* buffer full: only the end of the file may follow */
            r = read(fd, &extra, 1);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                return -errno;
            if (r > 0)
                return -EINVAL; /* longer than any secret we accept */
            break;
        }
        r = read(fd, out + n, outlen - 1 - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ' ||
                     out[n - 1] == '\t'))
        n--;
    out[n] = '\0';
    if (n == 0 || memchr(out, '\0', n))
        return -EINVAL;
    return 0;
}

/* Writes hex + "\n" to a new private temp file next to path and links it into place.
 * Returns 0, -EEXIST when another writer won, or -errno. */
static int secret_create(const char *path, const char *hex)
{
    char tmp[4096], nonce[9];
    size_t len = strlen(hex);
    int fd, rc = 0;

    if (gw_random_hex(nonce, 4) != 0)
        return -EIO;
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%s", path, (long)getpid(), nonce) >=
        sizeof(tmp))
        return -ENAMETOOLONG;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (write(fd, hex, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) != 0)
        rc = errno ? -errno : -EIO;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && link(tmp, path) != 0)
        rc = -errno;
    unlink(tmp);
    return rc;
}

int gw__adm_secret_load(const char *path, size_t gen_bytes, char *out, size_t outlen,
                        bool *created)
{
    char hex[2 * 64 + 1];

    if (created)
        *created = false;
    if (gen_bytes == 0 || gen_bytes > 64 || outlen < 2 * gen_bytes + 1)
        return -EINVAL;
    for (int attempt = 0; attempt < 3; attempt++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), rc;

        if (fd >= 0) {
            rc = secret_read(fd, out, outlen);
            close(fd);
            return rc;
        }
        if (errno != ENOENT)
            return -errno;
        rc = gw_random_hex(hex, gen_bytes);
        if (rc != 0)
            return rc;
        rc = secret_create(path, hex);
        if (rc == 0) {
            memcpy(out, hex, 2 * gen_bytes + 1);
            if (created)
                *created = true;
            return 0;
        }
        if (rc != -EEXIST)
            return rc;
        /* another thread or process created it first: read theirs */
    }
    return -EAGAIN;
}

int gw_admin_download_key_load(const char *data_dir, uint8_t key[GW_FWURL_KEY_LEN])
{
    char path[4096], hex[2 * GW_FWURL_KEY_LEN + 2];
    int rc;

    if (!data_dir || !*data_dir)
        return -EINVAL;
    if ((size_t)snprintf(path, sizeof(path), "%s/download.key", data_dir) >= sizeof(path))
        return -ENAMETOOLONG;
    rc = gw__adm_secret_load(path, GW_FWURL_KEY_LEN, hex, sizeof(hex), NULL);
    if (rc != 0)
        return rc;
    if (strlen(hex) != 2 * GW_FWURL_KEY_LEN)
        return -EINVAL;
    return gw_hex_decode(hex, 2 * GW_FWURL_KEY_LEN, key, GW_FWURL_KEY_LEN);
}

void gw_admin_firmware_token(const uint8_t key[GW_FWURL_KEY_LEN], uint64_t firmware_id,
                             uint64_t record_id, char out[GW_FWURL_TOKEN_LEN + 1])
{
    char msg[48];
    uint8_t mac[32];
    int n = snprintf(msg, sizeof(msg), "%" PRIu64 ".%" PRIu64, firmware_id, record_id);

    /* SHA-256 is compiled in, so the HMAC cannot fail with a valid md_info. */
    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key, GW_FWURL_KEY_LEN,
                    (const unsigned char *)msg, (size_t)n, mac);
    gw_hex_encode(mac, sizeof(mac), out);
}

bool gw__adm_ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    volatile unsigned char diff = 0;

    if (alen != blen)
        return false; /* lengths are not secret */
    for (size_t i = 0; i < alen; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

bool gw_admin_firmware_token_ok(const uint8_t key[GW_FWURL_KEY_LEN], uint64_t firmware_id,
                                uint64_t record_id, const char *token)
{
    char want[GW_FWURL_TOKEN_LEN + 1];

    if (!token)
        return false;
    gw_admin_firmware_token(key, firmware_id, record_id, want);
    return gw__adm_ct_equal(want, GW_FWURL_TOKEN_LEN, token, strlen(token));
}

int gw_admin_firmware_url(const char *base_url, const uint8_t key[GW_FWURL_KEY_LEN],
                          uint64_t firmware_id, uint64_t record_id, char *out, size_t len)
{
    char token[GW_FWURL_TOKEN_LEN + 1];
    size_t blen;
    int n;

    if (!out || len == 0)
        return -EINVAL;
    out[0] = '\0';
    if (!base_url || !*base_url || firmware_id == 0 || record_id == 0)
        return -EINVAL;
    blen = strlen(base_url);
    if (base_url[blen - 1] == '/')
        blen--;
    gw_admin_firmware_token(key, firmware_id, record_id, token);
    n = snprintf(out, len, "%.*s/ota/firmware/%" PRIu64 "/%" PRIu64 "?token=%s", (int)blen,
                 base_url, firmware_id, record_id, token);
    if (n < 0 || (size_t)n >= len) {
        out[0] = '\0';
        return -ENOSPC;
    }
    return 0;
}
