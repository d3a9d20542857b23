/*
 * DESIGN: the gateway-driven upgrade of a Modbus device (DESIGN §5.6). A device cannot fetch
 * a URL, so when thing.ota.upgrade reaches a Modbus device the gateway writes the image
 * (<data_dir>/firmware/<sha256>, the content-addressed file of the firmware store) into the
 * device's OTA registers block by block, and reports thing.ota.progress to the core on the
 * device's behalf: 20 with progress (share of bytes written, then the device's PROGRESS while
 * it verifies and applies), then 30 (STATUS 4 and CURRENT_VERSION = target) or 40.
 *
 * One job per device, a step machine driven by mb_device.c: each step is one Modbus request;
 * the device's other traffic (polls, writes) interleaves, and every device runs on its own
 * transport, so one slow device never holds up another's transfer.
 *
 * Resume: the device's NEXT_BLOCK register is the truth about what it holds. The gateway
 * keeps (mb_ota_job.c) <data_dir>/modbus/<productKey>&<deviceName>.ota.json (target
 * version, sha256, MD5, size, task/record ids, next block, whether CTRL=1 / CTRL=2 were
 * written), rewritten atomically (write, fsync, rename, fsync of the directory) when the job
 * starts, at CTRL=1, at CTRL=2 and at most once a second during the transfer. After a dropped connection (the
 * job is still in memory) or a gateway restart (the job is restored from that file) the job
 * re-reads the device: STATUS 1 (receiving) → continue at NEXT_BLOCK without writing CTRL=1
 * again; 2/3 → keep polling; 4/5 → the result; 0 → the device lost it: start over.
 * The file is removed when the job ends (reported, cancelled, or superseded).
 *
 * Ending a job early: thing.ota.cancel for the target, or the core rejecting one of our
 * progress reports because the record is no longer active (cancelled, timed out) → CTRL=3
 * (abort) when the transfer had begun, then the job is dropped without a report.
 *
 * Thread: the device's transport thread (see mb_internal.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_error.h"
#include "gw_log.h"
#include "mb_ota_job.h"

#define NEVER INT64_MAX
#define OTA_POLL_MS 200        /* STATUS polling while the device verifies/applies */
#define OTA_POST_EVERY_MS 250  /* progress reports, at most (unless the step changes) */
#define OTA_KEEPALIVE_MS 10000 /* while blocks are written: keeps the record's timeout */
#define OTA_MAX_ERRORS 20      /* consecutive failed requests before giving up */

static const char *const step_names[] = {
    "reading CURRENT_VERSION", "reading STATUS",  "reading NEXT_BLOCK", "writing the header",
    "writing CTRL=1",          "writing a block", "writing CTRL=2",     "reading STATUS",
    "reading CURRENT_VERSION", "writing CTRL=3",  "reporting",
};

static const char *str_item(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* Posts thing.ota.progress for the job's target. 0 or the post's error. */
static int post_progress(struct gw__mb_dev *dev, int status, int pct, const char *desc)
{
    struct gw__mb_ota *j = dev->ota;
    char rid[48];
    cJSON *p = cJSON_CreateObject();

    if (!p || !cJSON_AddStringToObject(p, "version", j->version) ||
        !cJSON_AddNumberToObject(p, "status", status) ||
        !cJSON_AddNumberToObject(p, "progress", pct) ||
        !cJSON_AddStringToObject(p, "description", desc)) {
        cJSON_Delete(p);
        return -ENOMEM;
    }
    snprintf(rid, sizeof(rid), "ota-%" PRIu64 "-%u", j->serial, ++j->posts);
    return gw__mb_dev_post(dev, GW_METHOD_OTA_PROGRESS, rid, p);
}

/* A status-20 report when forced, when the percentage moved (at most every
 * OTA_POST_EVERY_MS), or, while the gateway is still writing blocks (advancing), every
 * OTA_KEEPALIVE_MS so a slow but moving transfer keeps its record's upgrade timeout. A device
 * whose own PROGRESS stands still while it verifies or applies gets no keepalive: each report
 * restarts the record's timeout, and a device stuck there must still fail by it. */
static void progress(struct gw__mb_dev *dev, int pct, const char *desc, int64_t now, bool force,
                     bool advancing)
{
    struct gw__mb_ota *j = dev->ota;
    int64_t since = now - j->last_post_ms;
    bool moved = pct != j->last_pct && since >= OTA_POST_EVERY_MS;
    bool keepalive = advancing && since >= OTA_KEEPALIVE_MS;

    if (!force && !moved && !keepalive)
        return;
    if (post_progress(dev, 20, pct, desc) == 0) {
        j->last_pct = pct;
        j->last_post_ms = now;
    }
}

/* The job's outcome: reported now, or as soon as the core has room. */
static void finish(struct gw__mb_dev *dev, int status, int pct, const char *desc, int64_t now)
{
    struct gw__mb_ota *j = dev->ota;

    gw_log(status == 30 ? GW_LOG_INFO : GW_LOG_WARN, dev->tag, "%s/%s: upgrade to %s %s: %s",
           GW__MB_DEV_ARGS(dev), j->version, status == 30 ? "succeeded" : "failed", desc);
    j->step = GW__MB_STEP_REPORT;
    j->final_status = status;
    j->final_pct = pct;
    snprintf(j->final_desc, sizeof(j->final_desc), "%s", desc);
    j->not_before_ms = now;
    if (post_progress(dev, status, pct, desc) == 0)
        gw__mb_ota_end(dev);
    else
        j->not_before_ms = now + GW__MB_RETRY_MS;
}

/* Fails an upgrade that never became a job (bad message, no image): the record learns
 * at once instead of waiting for its timeout. */
static void refuse(struct gw__mb_dev *dev, const char *version, const char *why)
{
    cJSON *p = cJSON_CreateObject();

    gw_log(GW_LOG_WARN, dev->tag, "%s/%s: upgrade refused: %s", GW__MB_DEV_ARGS(dev), why);
    if (!p || !cJSON_AddStringToObject(p, "version", version) ||
        !cJSON_AddNumberToObject(p, "status", 40) || !cJSON_AddNumberToObject(p, "progress", 0) ||
        !cJSON_AddStringToObject(p, "description", why)) {
        cJSON_Delete(p);
        return;
    }
    gw__mb_dev_post(dev, GW_METHOD_OTA_PROGRESS, NULL, p);
}

void gw__mb_ota_on_upgrade(struct gw__mb_dev *dev, const struct gw_msg *msg, int64_t now)
{
    const char *version = str_item(msg->params, "version");
    struct gw__mb_ota *j = NULL, *cur = dev->ota;
    char why[300];

    if (dev->cfg->ota_base == GW_CONFIG_UNSET) {
        refuse(dev, version ? version : "",
               "this Modbus device has no otaBase in the "
               "gateway's configuration: it cannot be upgraded");
        return;
    }
    j = gw__mb_ota_new(dev);
    if (!j)
        return; /* the record's push timeout retries */
    if (gw__mb_ota_fill(j, msg->params, why, sizeof(why)) != 0) {
        refuse(dev, version ? version : "", why);
        free(j);
        return;
    }
    if (cur && cur->step != GW__MB_STEP_ABORT && cur->step != GW__MB_STEP_REPORT &&
        strcmp(cur->version, j->version) == 0 && strcmp(cur->sha256, j->sha256) == 0) {
        /* A re-push (timeout, retry) of what is already under way: keep going. */
        memcpy(cur->task_id, j->task_id, sizeof(cur->task_id));
        memcpy(cur->record_id, j->record_id, sizeof(cur->record_id));
        gw_log(GW_LOG_INFO, dev->tag,
               "%s/%s: upgrade to %s already under way (block %" PRIu32 "/%" PRIu32 ")",
               GW__MB_DEV_ARGS(dev), cur->version, cur->next_block, cur->blocks);
        cur->last_post_ms = 0; /* report soon: the record may have been reset to pending */
        free(j);
        return;
    }
    if (cur) {
        gw_log(GW_LOG_INFO, dev->tag, "%s/%s: upgrade to %s replaces the one to %s",
               GW__MB_DEV_ARGS(dev), j->version, cur->version);
        gw__mb_ota_end(dev); /* the new header and CTRL=1 restart the device's transfer */
    }
    dev->ota = j;
    if (gw__mb_ota_open_image(dev, j, why, sizeof(why)) != 0) {
        refuse(dev, j->version, why);
        gw__mb_ota_end(dev);
        return;
    }
    gw_adapter_count(&dev->ctr->io.msgs_out);
    gw_log(GW_LOG_INFO, dev->tag,
           "%s/%s: upgrade to %s accepted (%" PRIu32 " bytes, %" PRIu32 " blocks)",
           GW__MB_DEV_ARGS(dev), j->version, j->size, j->blocks);
    j->step = GW__MB_STEP_CHECK_VERSION;
    j->not_before_ms = now;
    gw__mb_ota_save(dev, now, true);
    progress(dev, 0, "accepted by the gateway", now, true, false);
}

/* Ends the job without a report: CTRL=3 first when the device may hold part of it. */
static void job_abort(struct gw__mb_dev *dev, const char *why, int64_t now)
{
    struct gw__mb_ota *j = dev->ota;

    gw_log(GW_LOG_INFO, dev->tag, "%s/%s: upgrade to %s stopped: %s", GW__MB_DEV_ARGS(dev),
           j->version, why);
    if (j->started && dev->link == GW__MB_UP) {
        j->step = GW__MB_STEP_ABORT;
        j->not_before_ms = now;
        j->errors = 0;
    } else {
        gw__mb_ota_end(dev);
    }
}

void gw__mb_ota_on_cancel(struct gw__mb_dev *dev, const struct gw_msg *msg, int64_t now)
{
    const char *version = str_item(msg->params, "version");

    if (!dev->ota || dev->ota->step == GW__MB_STEP_ABORT)
        return;
    if (version && strcmp(version, dev->ota->version) != 0)
        return;
    job_abort(dev, "cancelled by the operator", now);
}

void gw__mb_ota_on_reply(struct gw__mb_dev *dev, const struct gw_msg *reply, int64_t now)
{
    struct gw__mb_ota *j = dev->ota;
    char prefix[32];

    if (!j || !reply->has_code || reply->code == 0)
        return;
    snprintf(prefix, sizeof(prefix), "ota-%" PRIu64 "-", j->serial);
    if (strncmp(reply->request_id, prefix, strlen(prefix)) != 0)
        return; /* about an earlier job */
    if (reply->code != gw_error_api_code(GW_E_RECORD_NO_ACTIVE) &&
        reply->code != gw_error_api_code(GW_E_PROGRESS_VERSION_MISMATCH))
        return;
    if (j->step == GW__MB_STEP_ABORT || j->step == GW__MB_STEP_REPORT)
        return;
    job_abort(dev, "its upgrade record is no longer active", now);
}

void gw__mb_ota_on_up(struct gw__mb_dev *dev, int64_t now)
{
    struct gw__mb_ota *j = dev->ota;

    if (!j || j->step == GW__MB_STEP_REPORT || j->step == GW__MB_STEP_ABORT)
        return;
    j->step = GW__MB_STEP_CHECK_VERSION; /* re-read the device: it may have moved on */
    j->not_before_ms = now;
    j->errors = 0;
}

/* ---- requests ---- */

int64_t gw__mb_ota_ready_at(struct gw__mb_dev *dev, int64_t now)
{
    struct gw__mb_ota *j = dev->ota;
    char why[80];
    int rc;

    if (!j)
        return NEVER;
    if (j->step == GW__MB_STEP_REPORT) {
        if (now >= j->not_before_ms) {
            if (post_progress(dev, j->final_status, j->final_pct, j->final_desc) == 0) {
                gw__mb_ota_end(dev);
                return NEVER;
            }
            j->not_before_ms = now + GW__MB_RETRY_MS;
        }
        return NEVER; /* no request: the device's next_wake covers the retry */
    }
    if (dev->link != GW__MB_UP)
        return NEVER;
    if (j->step == GW__MB_STEP_BLOCK && j->not_before_ms <= now &&
        (rc = gw__mb_ota_load_block(j)) != 0) {
        snprintf(why, sizeof(why), "cannot read the image: %s", gw_strerror(rc));
        finish(dev, 40, j->last_pct < 0 ? 0 : j->last_pct, why, now);
        return NEVER;
    }
    return j->not_before_ms;
}

/* Packs bytes into registers, first byte in the high half. */
static void pack(const uint8_t *b, size_t nbytes, uint16_t *regs)
{
    for (size_t i = 0; i < nbytes / 2; i++)
        regs[i] = (uint16_t)(b[2 * i] << 8 | b[2 * i + 1]);
}

void gw__mb_ota_build(struct gw__mb_dev *dev, struct gw__mb_req *req)
{
    struct gw__mb_ota *j = dev->ota;
    uint16_t base = (uint16_t)dev->cfg->ota_base;
    uint8_t ver[GW__MB_OTA_VERSION_BYTES] = {0};
    uint32_t len;

    req->fc = 3;
    switch (j->step) {
    case GW__MB_STEP_CHECK_VERSION:
    case GW__MB_STEP_FINAL_VERSION:
        req->addr = base + GW__MB_OTA_CURRENT_VERSION;
        req->count = GW__MB_OTA_VERSION_BYTES / 2;
        break;
    case GW__MB_STEP_CHECK_STATUS:
    case GW__MB_STEP_POLL:
        req->addr = base + GW__MB_OTA_STATUS;
        req->count = 2; /* STATUS, PROGRESS */
        break;
    case GW__MB_STEP_READ_NEXT:
        req->addr = base + GW__MB_OTA_NEXT_BLOCK;
        req->count = 2;
        break;
    case GW__MB_STEP_HEADER:
        req->fc = 16;
        req->addr = base + GW__MB_OTA_FILE_SIZE;
        req->count = 2 + 8 + 16;
        req->regs[0] = (uint16_t)(j->size >> 16);
        req->regs[1] = (uint16_t)j->size;
        pack(j->md5, 16, req->regs + 2);
        memcpy(ver, j->version, strlen(j->version));
        pack(ver, sizeof(ver), req->regs + 10);
        break;
    case GW__MB_STEP_BLOCK:
        len = j->size - j->next_block * GW__MB_OTA_BLOCK_BYTES;
        if (len > GW__MB_OTA_BLOCK_BYTES)
            len = GW__MB_OTA_BLOCK_BYTES;
        req->fc = 16;
        req->addr = base + GW__MB_OTA_BLOCK_INDEX;
        req->count = 3 + GW__MB_OTA_BLOCK_BYTES / 2; /* 123 registers */
        req->regs[0] = (uint16_t)(j->next_block >> 16);
        req->regs[1] = (uint16_t)j->next_block;
        req->regs[2] = (uint16_t)len;
        pack(j->block, GW__MB_OTA_BLOCK_BYTES, req->regs + 3);
        break;
    case GW__MB_STEP_BEGIN:
    case GW__MB_STEP_APPLY:
    case GW__MB_STEP_ABORT:
    default:
        req->fc = 6;
        req->addr = base + GW__MB_OTA_CTRL;
        req->count = 1;
        req->regs[0] = j->step == GW__MB_STEP_BEGIN ? 1 : j->step == GW__MB_STEP_APPLY ? 2 : 3;
        break;
    }
}

/* CURRENT_VERSION registers as a string (NUL-padded ASCII, first byte high). */
static void regs_string(const uint16_t *regs, char *out)
{
    for (int i = 0; i < GW__MB_OTA_VERSION_BYTES / 2; i++) {
        out[2 * i] = (char)(regs[i] >> 8);
        out[2 * i + 1] = (char)regs[i];
    }
    out[GW__MB_OTA_VERSION_BYTES] = '\0';
}

static void after_status(struct gw__mb_dev *dev, int status, int pct, int64_t now)
{
    struct gw__mb_ota *j = dev->ota;

    switch (status) {
    case 1: /* receiving: continue where the device is (DESIGN §5.6: no CTRL=1 again) */
        if (j->step == GW__MB_STEP_CHECK_STATUS)
            gw_log(GW_LOG_INFO, dev->tag,
                   "%s/%s: device still receiving %s: resuming at "
                   "NEXT_BLOCK",
                   GW__MB_DEV_ARGS(dev), j->version);
        j->step = GW__MB_STEP_READ_NEXT;
        break;
    case 2:
    case 3:
        j->applying = true;
        j->step = GW__MB_STEP_POLL;
        j->not_before_ms = now + OTA_POLL_MS;
        progress(dev,
                 pct < 0     ? 0
                 : pct > 100 ? 100
                             : pct,
                 status == 2 ? "device verifying" : "device applying", now, false, false);
        break;
    case 4:
        j->step = GW__MB_STEP_FINAL_VERSION;
        break;
    case 5:
        finish(dev, 40, j->last_pct < 0 ? 0 : j->last_pct,
               "device rejected the image (status 5: MD5 check or apply failed)", now);
        break;
    default: /* 0 idle: the device dropped the transfer (restarted?) */
        if (j->step == GW__MB_STEP_POLL) {
            j->step = GW__MB_STEP_FINAL_VERSION; /* it may have rebooted into the new image */
        } else {
            gw_log(GW_LOG_INFO, dev->tag, "%s/%s: device idle: transfer of %s starts over",
                   GW__MB_DEV_ARGS(dev), j->version);
            j->started = j->applying = false;
            j->step = GW__MB_STEP_HEADER;
        }
        break;
    }
}

static void step_ok(struct gw__mb_dev *dev, const struct gw__mb_resp *resp, int64_t now)
{
    struct gw__mb_ota *j = dev->ota;
    char cur[GW__MB_OTA_VERSION_BYTES + 1], desc[200];
    uint32_t nb;

    switch (j->step) {
    case GW__MB_STEP_CHECK_VERSION:
    case GW__MB_STEP_FINAL_VERSION:
        regs_string(resp->regs, cur);
        if (strcmp(cur, j->version) == 0) {
            snprintf(desc, sizeof(desc),
                     j->step == GW__MB_STEP_CHECK_VERSION ? "device already runs %s"
                                                          : "upgraded to %s",
                     j->version);
            finish(dev, 30, 100, desc, now);
        } else if (j->step == GW__MB_STEP_FINAL_VERSION) {
            snprintf(desc, sizeof(desc), "device reports success but runs \"%.32s\", not %s", cur,
                     j->version);
            finish(dev, 40, 100, desc, now);
        } else {
            j->step = GW__MB_STEP_CHECK_STATUS;
        }
        break;
    case GW__MB_STEP_CHECK_STATUS:
        if (j->started || j->applying)
            after_status(dev, resp->regs[0], resp->regs[1], now);
        else
            j->step = GW__MB_STEP_HEADER;
        break;
    case GW__MB_STEP_POLL:
        after_status(dev, resp->regs[0], resp->regs[1], now);
        break;
    case GW__MB_STEP_READ_NEXT:
        nb = (uint32_t)resp->regs[0] << 16 | resp->regs[1];
        if (nb > j->blocks) {
            snprintf(desc, sizeof(desc), "device expects block %" PRIu32 " of %" PRIu32, nb,
                     j->blocks);
            finish(dev, 40, j->last_pct < 0 ? 0 : j->last_pct, desc, now);
            break;
        }
        j->next_block = nb;
        j->step = nb == j->blocks ? GW__MB_STEP_APPLY : GW__MB_STEP_BLOCK;
        break;
    case GW__MB_STEP_HEADER:
        j->step = GW__MB_STEP_BEGIN;
        break;
    case GW__MB_STEP_BEGIN:
        j->started = true;
        j->applying = false;
        j->next_block = 0;
        j->step = GW__MB_STEP_BLOCK;
        gw__mb_ota_save(dev, now, true);
        progress(dev, 0, "transferring", now, true, true);
        break;
    case GW__MB_STEP_BLOCK: {
        uint64_t bytes;
        j->next_block++;
        j->blocks_sent++;
        bytes = (uint64_t)j->next_block * GW__MB_OTA_BLOCK_BYTES;
        if (bytes > j->size)
            bytes = j->size;
        gw__mb_ota_save(dev, now, j->next_block == j->blocks);
        snprintf(desc, sizeof(desc), "transferred %" PRIu32 "/%" PRIu32 " blocks", j->next_block,
                 j->blocks);
        progress(dev, (int)(bytes * 100 / j->size), desc, now, false, true);
        if (j->next_block == j->blocks)
            j->step = GW__MB_STEP_APPLY;
        break;
    }
    case GW__MB_STEP_APPLY:
        j->applying = true;
        j->step = GW__MB_STEP_POLL;
        j->not_before_ms = now + OTA_POLL_MS;
        gw__mb_ota_save(dev, now, true);
        gw_log(GW_LOG_INFO, dev->tag,
               "%s/%s: %s transferred (%" PRIu32 " blocks written in "
               "this run): applying",
               GW__MB_DEV_ARGS(dev), j->version, j->blocks_sent);
        progress(dev, 100, "transferred: device verifying", now, true, false);
        break;
    default:
        break;
    }
}

void gw__mb_ota_done(struct gw__mb_dev *dev, const struct gw__mb_req *req,
                     const struct gw__mb_resp *resp, int64_t now)
{
    struct gw__mb_ota *j = dev->ota;
    char desc[200];

    (void)req;
    if (!j || j->step == GW__MB_STEP_REPORT)
        return; /* ended meanwhile */
    if (j->step == GW__MB_STEP_ABORT) {
        if (resp->err != GW_E_TIMEOUT || ++j->errors >= 3)
            gw__mb_ota_end(dev);
        return;
    }
    if (resp->err && resp->err != GW_E_MODBUS_EXCEPTION) {
        if (++j->errors >= OTA_MAX_ERRORS) {
            snprintf(desc, sizeof(desc), "device stopped answering (%s: %s)", step_names[j->step],
                     gw_strerror(resp->err));
            finish(dev, 40, j->last_pct < 0 ? 0 : j->last_pct, desc, now);
            return;
        }
        j->not_before_ms = now + OTA_POLL_MS;
        return;
    }
    j->errors = 0;
    j->not_before_ms = now;
    if (resp->err == GW_E_MODBUS_EXCEPTION) {
        if (j->step == GW__MB_STEP_BLOCK && resp->exception == 3) {
            j->step = GW__MB_STEP_READ_NEXT; /* out of order: ask where the device is */
            return;
        }
        snprintf(desc, sizeof(desc), "device answered %s with Modbus exception %d",
                 step_names[j->step], resp->exception);
        finish(dev, 40, j->last_pct < 0 ? 0 : j->last_pct, desc, now);
        return;
    }
    step_ok(dev, resp, now);
}
