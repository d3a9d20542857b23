/*
 * DESIGN: the ota/firmware paths of the admin API (DESIGN §5.2, REFERENCE §1.3), worker
 * threads. An image (upload body, file:// copy or http:// fetch) is committed to its content address
 * <data_dir>/firmware/<sha256>, signed when firmware.sign_key is set, then the row is
 * created on the core thread by the OTA engine (its rules and codes: duplicate version
 * 1050008001, missing product 1050001000). The row's file_url is the server path
 * "/ota/firmware/{id}"; the API shows it prefixed with firmware.base_url.
 *
 * Invariant: no firmware row points at a missing file, and a file no row uses is removed
 * when its create fails. adm->fw_lock serialises commit + create + cleanup, so a failing
 * create never deletes a file that a concurrent create of the same bytes just referenced.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin_int.h"
#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_ota.h"
#include "gw_store.h"

#define URL_MAX 2048

cJSON *gw__adm_fw_json(const struct gw_admin *adm, const struct gw_firmware *fw)
{
    cJSON *o = cJSON_CreateObject();
    char url[sizeof(adm->base_url) + GW_URL_MAX + 1];

    if (fw->file_url[0] == '/')
        snprintf(url, sizeof(url), "%s%s", adm->base_url, fw->file_url);
    else
        snprintf(url, sizeof(url), "%s", fw->file_url);
    if (!o || !gw__adm_add_u64(o, "id", fw->id) || !cJSON_AddStringToObject(o, "name", fw->name) ||
        !cJSON_AddStringToObject(o, "description", fw->description) ||
        !cJSON_AddStringToObject(o, "version", fw->version) ||
        !gw__adm_add_u64(o, "productId", fw->product_id) ||
        !cJSON_AddStringToObject(o, "fileUrl", url) ||
        !gw__adm_add_u64(o, "fileSize", fw->file_size) ||
        !cJSON_AddStringToObject(o, "fileDigestAlgorithm", fw->digest_algorithm) ||
        !cJSON_AddStringToObject(o, "fileDigestValue", fw->digest_value) ||
        !cJSON_AddStringToObject(o, "sha256", fw->sha256) ||
        !(fw->sign[0] ? cJSON_AddStringToObject(o, "sign", fw->sign)
                      : cJSON_AddNullToObject(o, "sign")) ||
        !gw__adm_add_i64(o, "createTime", fw->create_time_ms)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Arguments shared by upload (query) and create (body). */
static int fw_args(struct gw_adm_req *req, struct gw_firmware *fw)
{
    int rc = gw__adm_arg_id(req, "productId", true, &fw->product_id);

    if (rc == 0)
        rc = gw__adm_arg_strcpy(req, "name", true, fw->name, sizeof(fw->name));
    if (rc == 0)
        rc = gw__adm_arg_strcpy(req, "version", true, fw->version, sizeof(fw->version));
    if (rc == 0)
        rc = gw__adm_arg_strcpy(req, "description", false, fw->description,
                                sizeof(fw->description));
    return rc;
}

int gw__adm_fw_upload_check(struct gw_adm_req *req)
{
    struct gw_firmware fw;

    memset(&fw, 0, sizeof(fw));
    return fw_args(req, &fw);
}

static int fw_create_fn(struct gw_core_ctx *ctx, void *arg)
{
    struct gw_firmware *fw = arg;
    int rc = gw_ota_firmware_create(ctx->ota, ctx->txn, fw, ctx->now_ms);

    if (rc != 0)
        return rc;
    /* the id is known only now; the row is rewritten in the same transaction */
    snprintf(fw->file_url, sizeof(fw->file_url), "/ota/firmware/%" PRIu64, fw->id);
    return gw_store_firmware_put(ctx->txn, fw);
}

struct fw_use {
    const char *sha256;
    bool used;
};

static int fw_row_uses(void *ctx, const struct gw_firmware *f)
{
    struct fw_use *u = ctx;

    if (strcmp(f->sha256, u->sha256) != 0)
        return 0;
    u->used = true;
    return 1; /* stop: one user is enough */
}

/* Removes fw_dir/<sha256> unless a firmware row refers to it. Under fw_lock. */
static void fw_file_release(struct gw_admin *adm, const char *sha256)
{
    struct fw_use u = { sha256, false };
    struct gw_txn *txn;
    char path[PATH_MAX];
    int rc;

    if (gw__adm_read_begin(adm, &txn) != 0)
        return; /* keep the file: an orphan costs disk, a dangling row costs a device */
    rc = gw_store_firmware_iter(txn, false, 0, fw_row_uses, &u);
    gw_store_txn_abort(txn);
    if (rc != 0 || u.used)
        return;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", adm->fw_dir, sha256) < sizeof(path))
        unlink(path);
}

/*
 * Commits blob (taken) as the image of fw (product, name, version, description set) and
 * creates the row. On success fw is the stored row. fw is heap memory (see gw__adm_call):
 * on GW_E_TIMEOUT the caller must not free it.
 */
static int fw_ingest(struct gw_admin *adm, struct gw_adm_req *req, struct gw_firmware *fw,
                     struct gw_adm_blob *blob)
{
    int rc;

    if (blob->size == 0) {
        gw__adm_blob_discard(blob);
        return gw__adm_fail(req, GW_E_MISSING_FIELD, "file: the firmware image is empty");
    }
    fw->file_size = blob->size;
    snprintf(fw->digest_algorithm, sizeof(fw->digest_algorithm), "MD5");
    memcpy(fw->digest_value, blob->md5_hex, sizeof(fw->digest_value));
    memcpy(fw->sha256, blob->sha256_hex, sizeof(fw->sha256));
    pthread_mutex_lock(&adm->fw_lock);
    rc = gw__adm_blob_commit(blob, adm->fw_dir);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, "admin", "cannot store firmware %s in %s: %s", fw->sha256,
               adm->fw_dir, strerror(-rc));
        rc = gw__adm_fail(req, rc, "cannot store the firmware image");
        goto out;
    }
    rc = gw__adm_sign(adm, fw->sha256, fw->sign, sizeof(fw->sign));
    if (rc == 0)
        rc = gw__adm_call(adm, fw_create_fn, fw);
    if (rc != 0 && rc != GW_E_TIMEOUT)
        fw_file_release(adm, fw->sha256);
    if (rc == 0)
        gw_log(GW_LOG_INFO, "admin", "firmware %" PRIu64 " (product %" PRIu64 " version %s): "
               "%" PRIu64 " bytes, sha256 %s", fw->id, fw->product_id, fw->version,
               fw->file_size, fw->sha256);
out:
    pthread_mutex_unlock(&adm->fw_lock);
    return rc;
}

int gw__adm_fw_upload(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    struct gw_firmware *fw = calloc(1, sizeof(*fw));
    struct gw_adm_blob *blob = req->blob;
    int rc;

    req->blob = NULL;
    if (!fw) {
        gw__adm_blob_discard(blob);
        return -ENOMEM;
    }
    rc = fw_args(req, fw);
    if (rc == 0 && !blob)
        rc = gw__adm_fail(req, GW_E_MISSING_FIELD,
                          "file: send the firmware image as the request body");
    if (rc != 0) {
        gw__adm_blob_discard(blob);
        goto out;
    }
    rc = fw_ingest(adm, req, fw, blob);
    if (rc == GW_E_TIMEOUT)
        return rc; /* fw stays allocated: the core may still use it */
    if (rc == 0 && !(*data = gw__adm_fw_json(adm, fw)))
        rc = -ENOMEM;
out:
    free(fw);
    return rc;
}

/* The reference checks these before it downloads anything; so do we (the core checks
 * again when it creates the row). */
static int fw_precheck(struct gw_admin *adm, const struct gw_firmware *fw)
{
    struct gw_firmware other;
    struct gw_product p;
    struct gw_txn *txn;
    int rc = gw__adm_read_begin(adm, &txn);

    if (rc != 0)
        return rc;
    rc = gw_store_firmware_get_by_version(txn, fw->product_id, fw->version, &other);
    if (rc == 0)
        rc = GW_E_FIRMWARE_VERSION_DUPLICATE;
    else if (rc == GW_E_NOT_FOUND)
        rc = gw_store_product_get(txn, fw->product_id, &p);
    if (rc == GW_E_NOT_FOUND)
        rc = GW_E_PRODUCT_NOT_EXISTS;
    gw_store_txn_abort(txn);
    return rc;
}

static int fw_fetch(struct gw_admin *adm, struct gw_adm_req *req, const char *url,
                    struct gw_adm_blob **blob)
{
    char err[GW_ADM_ERRMSG_MAX];
    int rc;

    err[0] = '\0';
    if (strncmp(url, "file://", 7) == 0) {
        if (url[7] != '/')
            return gw__adm_fail(req, GW_E_BAD_FIELD, "fileUrl: file:// needs an absolute path");
        rc = gw__adm_blob_from_file(adm->fw_dir, url + 7, adm->upload_max, blob, err,
                                    sizeof(err));
    } else if (strncmp(url, "http://", 7) == 0) {
        rc = gw__adm_fetch_http(adm->fw_dir, url, adm->upload_max, GW_ADM_FETCH_TIMEOUT_MS, blob,
                                err, sizeof(err));
    } else {
        return gw__adm_fail(req, GW_E_BAD_FIELD,
                            "fileUrl: only http:// and file:// URLs are supported");
    }
    if (rc != 0) /* the URL is the operator's input: report why it failed as a bad field */
        return gw__adm_fail(req, GW_E_BAD_FIELD, "%s", err[0] ? err : "fileUrl: fetch failed");
    return 0;
}

int gw__adm_fw_create(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    struct gw_firmware *fw = calloc(1, sizeof(*fw));
    struct gw_adm_blob *blob = NULL;
    const char *url = NULL;
    int rc;

    if (!fw)
        return -ENOMEM;
    rc = fw_args(req, fw);
    if (rc == 0)
        rc = gw__adm_arg_str(req, "fileUrl", true, URL_MAX, &url);
    if (rc == 0)
        rc = fw_precheck(adm, fw);
    if (rc == 0)
        rc = fw_fetch(adm, req, url, &blob);
    if (rc == 0)
        rc = fw_ingest(adm, req, fw, blob);
    if (rc == GW_E_TIMEOUT)
        return rc; /* fw stays allocated: the core may still use it */
    if (rc == 0 && !(*data = cJSON_CreateNumber((double)fw->id)))
        rc = -ENOMEM;
    free(fw);
    return rc;
}

struct fw_update {
    uint64_t id;
    bool has_name, has_desc;
    char name[GW_NAME_MAX + 1];
    char description[GW_DESC_MAX + 1];
};

static int fw_update_fn(struct gw_core_ctx *ctx, void *arg)
{
    struct fw_update *u = arg;

    return gw_ota_firmware_update(ctx->ota, ctx->txn, u->id, u->has_name ? u->name : NULL,
                                  u->has_desc ? u->description : NULL);
}

int gw__adm_fw_update(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    struct fw_update *u = calloc(1, sizeof(*u));
    const char *name = NULL, *desc = NULL;
    int rc;

    if (!u)
        return -ENOMEM;
    rc = gw__adm_arg_id(req, "id", true, &u->id);
    if (rc == 0)
        rc = gw__adm_arg_str(req, "name", false, GW_NAME_MAX, &name);
    if (rc == 0)
        rc = gw__adm_arg_str(req, "description", false, GW_DESC_MAX, &desc);
    if (rc == 0 && name && !*name)
        rc = gw__adm_fail(req, GW_E_MISSING_FIELD, "name: must not be empty");
    if (rc == 0) {
        u->has_name = name != NULL;
        u->has_desc = desc != NULL;
        snprintf(u->name, sizeof(u->name), "%s", name ? name : "");
        snprintf(u->description, sizeof(u->description), "%s", desc ? desc : "");
        rc = gw__adm_call(adm, fw_update_fn, u);
    }
    if (rc == GW_E_TIMEOUT)
        return rc; /* u stays allocated: the core may still use it */
    free(u);
    if (rc == 0 && !(*data = cJSON_CreateTrue()))
        rc = -ENOMEM;
    return rc;
}

int gw__adm_fw_get(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    struct gw_firmware fw;
    struct gw_product p;
    struct gw_txn *txn;
    uint64_t id = 0;
    cJSON *o;
    int rc = gw__adm_arg_id(req, "id", true, &id);

    if (rc != 0)
        return rc;
    rc = gw__adm_read_begin(adm, &txn);
    if (rc != 0)
        return rc;
    rc = gw_store_firmware_get(txn, id, &fw);
    if (rc == 0) {
        o = gw__adm_fw_json(adm, &fw);
        if (o && gw_store_product_get(txn, fw.product_id, &p) == 0)
            cJSON_AddStringToObject(o, "productName", p.name);
        *data = o;
        rc = o ? 0 : -ENOMEM;
    } else if (rc == GW_E_NOT_FOUND) {
        rc = 0; /* data null, as the reference answers */
    }
    gw_store_txn_abort(txn);
    return rc;
}

struct fw_page {
    const struct gw_admin *adm;
    struct gw_adm_page pg;
    const char *name;
    uint64_t product_id;
};

static int fw_page_row(void *ctx, const struct gw_firmware *fw)
{
    struct fw_page *fp = ctx;
    cJSON *o;

    if ((fp->name && !strstr(fw->name, fp->name)) ||
        (fp->product_id && fw->product_id != fp->product_id))
        return 0;
    if (!gw__adm_page_take(&fp->pg))
        return 0;
    o = gw__adm_fw_json(fp->adm, fw);
    if (!o)
        return -ENOMEM;
    cJSON_AddItemToArray(fp->pg.list, o);
    return 0;
}

int gw__adm_fw_page(struct gw_admin *adm, struct gw_adm_req *req, cJSON **data)
{
    struct fw_page fp = { .adm = adm };
    struct gw_txn *txn;
    int rc;

    rc = gw__adm_arg_str(req, "name", false, GW_NAME_MAX, &fp.name);
    if (rc == 0)
        rc = gw__adm_arg_id(req, "productId", false, &fp.product_id);
    if (rc == 0)
        rc = gw__adm_page_begin(req, &fp.pg);
    if (rc != 0)
        return rc;
    rc = gw__adm_read_begin(adm, &txn);
    if (rc == 0) {
        /* newest first: ids grow with creation time (the reference orders by create_time) */
        rc = gw_store_firmware_iter(txn, true, 0, fw_page_row, &fp);
        gw_store_txn_abort(txn);
    }
    if (rc == 0 && !(*data = gw__adm_page_end(&fp.pg)))
        rc = -ENOMEM;
    cJSON_Delete(fp.pg.list);
    return rc;
}
