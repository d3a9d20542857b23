/*
 * DESIGN: what an upgrade job of a Modbus device keeps outside the step machine (mb_ota.c):
 * its parameters, its image and its state file.
 *  - The image is the content-addressed file <data_dir>/firmware/<sha256> of the firmware
 *    store; size and MD5 are checked before anything is written to the device, and blocks
 *    are read from it with pread as they are sent (several devices may upgrade at once).
 *  - The state file <data_dir>/modbus/<productKey>&<deviceName>.ota.json (JSON: productKey,
 *    deviceName, version, sha256, md5, fileSize, taskId, recordId, nextBlock, started,
 *    applying) is what a restarted gateway resumes from. It is replaced atomically: written
 *    to "<file>.tmp", fsync'd, renamed over the old one, and the directory fsync'd.
 *    ('&' cannot occur in a productKey or deviceName, so the name is unambiguous.)
 * Thread: the device's transport thread (mb_internal.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/md5.h>

#include "gw_error.h"
#include "gw_log.h"
#include "gw_util.h"
#include "mb_ota_job.h"

#define OTA_SAVE_EVERY_MS 1000 /* state file rewrites during the transfer, at most */

/* ---- state file ---- */

int gw__mb_ota_state_path(const char *data_dir, const char *pk, const char *dn, char *buf,
                          size_t len)
{
    int n = snprintf(buf, len, "%s/modbus/%s&%s.ota.json", data_dir, pk, dn);

    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int save_json(const char *dir, const char *path, const char *text)
{
    char tmp[4200];
    int fd, dfd, rc;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    rc = write_all(fd, text, strlen(text));
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc) {
        unlink(tmp);
        return rc;
    }
    /* The rename itself must survive a power cut. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

void gw__mb_ota_save(struct gw__mb_dev *dev, int64_t now, bool force)
{
    struct gw__mb_ota *j = dev->ota;
    char path[4096], dir[4096];
    cJSON *o;
    char *text = NULL;
    int rc = -ENOMEM;

    if (!force && now - j->saved_ms < OTA_SAVE_EVERY_MS)
        return;
    if (gw__mb_ota_state_path(dev->data_dir, GW__MB_DEV_ARGS(dev), path, sizeof(path)) ||
        snprintf(dir, sizeof(dir), "%s/modbus", dev->data_dir) >= (int)sizeof(dir)) {
        rc = -ENAMETOOLONG;
        goto out;
    }
    o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "productKey", dev->cfg->product_key) &&
        cJSON_AddStringToObject(o, "deviceName", dev->cfg->device_name) &&
        cJSON_AddStringToObject(o, "version", j->version) &&
        cJSON_AddStringToObject(o, "sha256", j->sha256) &&
        cJSON_AddStringToObject(o, "md5", j->md5_hex) &&
        cJSON_AddNumberToObject(o, "fileSize", j->size) &&
        cJSON_AddStringToObject(o, "taskId", j->task_id) &&
        cJSON_AddStringToObject(o, "recordId", j->record_id) &&
        cJSON_AddNumberToObject(o, "nextBlock", j->next_block) &&
        cJSON_AddBoolToObject(o, "started", j->started) &&
        cJSON_AddBoolToObject(o, "applying", j->applying))
        text = cJSON_Print(o);
    cJSON_Delete(o);
    if (text)
        rc = save_json(dir, path, text);
    free(text);
out:
    if (rc)
        gw_log(GW_LOG_WARN, dev->tag, "%s/%s: cannot write the OTA state file: %s",
               GW__MB_DEV_ARGS(dev), gw_strerror(rc));
    else
        j->saved_ms = now;
}

static void ota_unlink(struct gw__mb_dev *dev)
{
    char path[4096];

    if (gw__mb_ota_state_path(dev->data_dir, GW__MB_DEV_ARGS(dev), path, sizeof(path)) == 0 &&
        unlink(path) != 0 && errno != ENOENT)
        gw_log(GW_LOG_WARN, dev->tag, "%s/%s: cannot remove %s: %s", GW__MB_DEV_ARGS(dev), path,
               gw_strerror(-errno));
}

/* ---- the job ---- */

void gw__mb_ota_end(struct gw__mb_dev *dev)
{
    struct gw__mb_ota *j = dev->ota;

    if (!j)
        return;
    if (j->fd >= 0)
        close(j->fd);
    free(j);
    dev->ota = NULL;
    ota_unlink(dev);
}

void gw__mb_ota_free(struct gw__mb_dev *dev)
{
    struct gw__mb_ota *j = dev->ota;

    /* Shutdown: the state file stays for the next start. */
    if (!j)
        return;
    if (j->fd >= 0)
        close(j->fd);
    free(j);
    dev->ota = NULL;
}

/* Opens the image and checks its size and MD5 (the device will check it too; a corrupt
 * store should not cost a device a transfer). */
int gw__mb_ota_open_image(struct gw__mb_dev *dev, struct gw__mb_ota *j, char *why, size_t whylen)
{
    char path[4096];
    uint8_t buf[8192], md5[16];
    mbedtls_md5_context c;
    struct stat st;
    ssize_t n;
    int rc = 0;

    snprintf(path, sizeof(path), "%s/firmware/%s", dev->data_dir, j->sha256);
    j->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (j->fd < 0) {
        snprintf(why, whylen, "image %s not in the firmware store: %s", j->sha256, strerror(errno));
        return -ENOENT;
    }
    if (fstat(j->fd, &st) != 0 || (uint64_t)st.st_size != j->size) {
        snprintf(why, whylen, "image %s has %lld bytes, the upgrade says %" PRIu32, j->sha256,
                 (long long)st.st_size, j->size);
        return -EINVAL;
    }
    mbedtls_md5_init(&c);
    if (mbedtls_md5_starts_ret(&c) != 0)
        rc = -EIO;
    while (rc == 0 && (n = read(j->fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || mbedtls_md5_update_ret(&c, buf, (size_t)n) != 0)
            rc = -EIO;
    }
    if (rc == 0 && mbedtls_md5_finish_ret(&c, md5) != 0)
        rc = -EIO;
    mbedtls_md5_free(&c);
    if (rc) {
        snprintf(why, whylen, "cannot read image %s", j->sha256);
        return rc;
    }
    if (memcmp(md5, j->md5, 16) != 0) {
        snprintf(why, whylen, "image %s does not match MD5 %s", j->sha256, j->md5_hex);
        return -EINVAL;
    }
    return 0;
}

static const char *str_item(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static bool version_ok(const char *v)
{
    size_t n = strlen(v);

    if (n == 0 || n > GW__MB_OTA_VERSION_BYTES)
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x20 || v[i] > 0x7e)
            return false;
    return true;
}

/* Fills j from upgrade params or a state file (same field names). */
int gw__mb_ota_fill(struct gw__mb_ota *j, const cJSON *p, char *why, size_t whylen)
{
    const char *version = str_item(p, "version"), *sha = str_item(p, "sha256");
    const char *md5 =
        str_item(p, "fileDigestValue") ? str_item(p, "fileDigestValue") : str_item(p, "md5");
    const char *task = str_item(p, "taskId"), *record = str_item(p, "recordId");
    int64_t size;

    if (!version || !version_ok(version)) {
        snprintf(why, whylen, "version must be 1..32 printable ASCII characters");
        return GW_E_BAD_FIELD;
    }
    if (gw_json_int(cJSON_GetObjectItemCaseSensitive(p, "fileSize"), 1, UINT32_MAX, &size)) {
        snprintf(why, whylen, "fileSize must be 1..4294967295");
        return GW_E_BAD_FIELD;
    }
    if (!sha || strlen(sha) != 64 || gw_hex_decode(sha, 64, (uint8_t[32]){0}, 32) != 0) {
        snprintf(why, whylen, "sha256 must be 64 hex digits");
        return GW_E_BAD_FIELD;
    }
    if (!md5 || strlen(md5) != 32 || gw_hex_decode(md5, 32, j->md5, 16) != 0) {
        snprintf(why, whylen, "fileDigestValue must be an MD5 (32 hex digits)");
        return GW_E_BAD_FIELD;
    }
    snprintf(j->version, sizeof(j->version), "%s", version);
    for (int i = 0; i < 64; i++)
        j->sha256[i] = (char)(sha[i] | 0x20); /* lowercase: the store's file name */
    j->sha256[64] = '\0';
    gw_hex_encode(j->md5, 16, j->md5_hex);
    snprintf(j->task_id, sizeof(j->task_id), "%s", task ? task : "");
    snprintf(j->record_id, sizeof(j->record_id), "%s", record ? record : "");
    j->size = (uint32_t)size;
    j->blocks = (uint32_t)((size + GW__MB_OTA_BLOCK_BYTES - 1) / GW__MB_OTA_BLOCK_BYTES);
    return 0;
}

struct gw__mb_ota *gw__mb_ota_new(struct gw__mb_dev *dev)
{
    struct gw__mb_ota *j = calloc(1, sizeof(*j));

    if (!j)
        return NULL;
    j->fd = -1;
    j->block_loaded = UINT32_MAX;
    j->last_pct = -1;
    j->serial = atomic_fetch_add(&dev->ctr->session_seq, 1) + 1;
    return j;
}

void gw__mb_ota_restore(struct gw__mb_dev *dev)
{
    char path[4096], why[300] = "", buf[4096];
    struct gw__mb_ota *j;
    cJSON *o = NULL;
    ssize_t n;
    int fd, rc;

    if (gw__mb_ota_state_path(dev->data_dir, GW__MB_DEV_ARGS(dev), path, sizeof(path)))
        return;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    j = gw__mb_ota_new(dev);
    if (!j)
        return;
    rc = n > 0 ? gw_json_parse_strict(buf, (size_t)n, &o) : GW_E_BAD_JSON;
    if (rc == 0)
        rc = gw__mb_ota_fill(j, o, why, sizeof(why));
    if (rc == 0) {
        const cJSON *nb = cJSON_GetObjectItemCaseSensitive(o, "nextBlock");
        j->next_block = cJSON_IsNumber(nb) ? (uint32_t)nb->valuedouble : 0;
        j->started = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "started"));
        j->applying = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "applying"));
    }
    cJSON_Delete(o);
    dev->ota = j;
    if (rc) {
        gw_log(GW_LOG_WARN, dev->tag, "%s/%s: ignoring %s: %s", GW__MB_DEV_ARGS(dev), path,
               why[0] ? why : gw_strerror(rc));
        gw__mb_ota_end(dev);
        return;
    }
    if (gw__mb_ota_open_image(dev, j, why, sizeof(why)) != 0) {
        /* Reported when the device is back; the record may still be waiting for it. */
        j->step = GW__MB_STEP_REPORT;
        j->final_status = 40;
        snprintf(j->final_desc, sizeof(j->final_desc), "cannot resume: %.180s", why);
        return;
    }
    gw_log(GW_LOG_INFO, dev->tag,
           "%s/%s: upgrade to %s will resume when the device answers "
           "(%" PRIu32 " blocks, at least %" PRIu32 " written; its NEXT_BLOCK decides)",
           GW__MB_DEV_ARGS(dev), j->version, j->blocks, j->next_block);
    j->step = GW__MB_STEP_CHECK_VERSION;
}

int gw__mb_ota_load_block(struct gw__mb_ota *j)
{
    off_t off = (off_t)j->next_block * GW__MB_OTA_BLOCK_BYTES;
    size_t len = j->size - (size_t)off < GW__MB_OTA_BLOCK_BYTES ? j->size - (size_t)off
                                                                : GW__MB_OTA_BLOCK_BYTES;
    size_t got = 0;

    if (j->block_loaded == j->next_block)
        return 0;
    memset(j->block, 0, sizeof(j->block));
    while (got < len) {
        ssize_t n = pread(j->fd, j->block + got, len - got, off + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        got += (size_t)n;
    }
    j->block_loaded = j->next_block;
    return 0;
}
