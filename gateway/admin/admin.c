/*
 * DESIGN: lifecycle of the admin listener (gw_admin.h): secrets and directories at create,
 * workers then the lws thread at start, the reverse at stop. Main thread only.
 *
 * Secrets: the admin token comes from admin.token or from <data_dir>/admin.token (generated
 * once: 32 random bytes as hex, mode 0600, reused on restart); the download key from
 * <data_dir>/download.key (gw_fwurl.h). Neither is ever logged; the start line says where
 * the token is.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin_int.h"
#include "gw_admin.h"
#include "gw_config.h"
#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_store.h"

static int ensure_dir(const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        int rc = -errno;

        gw_log(GW_LOG_ERROR, "admin", "cannot create %s: %s", path, strerror(errno));
        return rc;
    }
    return 0;
}

/* Temp files of uploads interrupted by a crash are never referenced: remove them. */
static void sweep_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[PATH_MAX];

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, ".upload-", 8) != 0)
            continue;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < sizeof(path))
            unlink(path);
    }
    closedir(d);
}

static int load_token(struct gw_admin *adm)
{
    const char *cfg_token = adm->cfg->admin.token;
    bool created = false;
    int rc;

    if (cfg_token && *cfg_token) {
        if (strlen(cfg_token) > GW_ADM_TOKEN_MAX) {
            gw_log(GW_LOG_ERROR, "admin", "admin.token: longer than %d bytes", GW_ADM_TOKEN_MAX);
            return GW_E_CONFIG;
        }
        snprintf(adm->token, sizeof(adm->token), "%s", cfg_token);
        adm->token_len = strlen(adm->token);
        adm->token_path[0] = '\0';
        return 0;
    }
    if ((size_t)snprintf(adm->token_path, sizeof(adm->token_path), "%s/admin.token",
                         adm->data_dir) >= sizeof(adm->token_path))
        return -ENAMETOOLONG;
    rc = gw__adm_secret_load(adm->token_path, 32, adm->token, sizeof(adm->token), &created);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, "admin", "%s: cannot read or create the admin token: %s",
               adm->token_path, rc == -EINVAL ? "empty or too long" : strerror(-rc));
        return rc == -EINVAL ? GW_E_CONFIG : rc;
    }
    adm->token_len = strlen(adm->token);
    if (created)
        gw_log(GW_LOG_INFO, "admin", "generated a new admin token in %s", adm->token_path);
    return 0;
}

int gw_admin_create(struct gw_core *core, const struct gw_config *cfg, struct gw_admin **out)
{
    struct gw_admin *adm;
    const char *dir = core ? gw_core_data_dir(core) : NULL;
    size_t n;
    int rc;

    *out = NULL;
    adm = calloc(1, sizeof(*adm));
    if (!adm)
        return -ENOMEM;
    adm->core = core;
    adm->cfg = cfg;
    adm->upload_max = (uint64_t)cfg->firmware.max_upload_mb * 1024 * 1024;
    pthread_mutex_init(&adm->sign_lock, NULL);
    pthread_mutex_init(&adm->fw_lock, NULL);
    pthread_mutex_init(&adm->qlock, NULL);
    pthread_cond_init(&adm->qcond, NULL);
    atomic_init(&adm->stopping, false);
    if (!dir || !*dir)
        dir = cfg->data_dir;
    if ((size_t)snprintf(adm->data_dir, sizeof(adm->data_dir), "%s", dir) >=
            sizeof(adm->data_dir) ||
        (size_t)snprintf(adm->fw_dir, sizeof(adm->fw_dir), "%s/firmware", dir) >=
            sizeof(adm->fw_dir)) {
        rc = -ENAMETOOLONG;
        goto err_free;
    }
    rc = ensure_dir(adm->data_dir);
    if (rc == 0)
        rc = ensure_dir(adm->fw_dir);
    if (rc != 0)
        goto err_free;
    sweep_temp_files(adm->fw_dir);
    rc = load_token(adm);
    if (rc != 0)
        goto err_free;
    rc = gw_admin_download_key_load(adm->data_dir, adm->dl_key);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, "admin", "%s/download.key: %s", adm->data_dir,
               rc == -EINVAL ? "not 64 hex characters" : strerror(-rc));
        rc = rc == -EINVAL ? GW_E_CONFIG : rc;
        goto err_free;
    }
    snprintf(adm->base_url, sizeof(adm->base_url), "%s",
             cfg->firmware.base_url ? cfg->firmware.base_url : "");
    n = strlen(adm->base_url);
    while (n > 0 && adm->base_url[n - 1] == '/')
        adm->base_url[--n] = '\0';
    if (cfg->firmware.sign_key && *cfg->firmware.sign_key) {
        rc = gw__adm_sign_load(adm, cfg->firmware.sign_key);
        if (rc != 0)
            goto err_free;
    }
    *out = adm;
    return 0;

err_free:
    gw_admin_destroy(adm);
    return rc;
}

int gw_admin_start(struct gw_admin *adm)
{
    const struct gw_config_addr *la = &adm->cfg->admin.listen;
    int rc;

    rc = gw__adm_workers_start(adm);
    if (rc != 0)
        return rc;
    rc = gw__adm_server_start(adm);
    if (rc != 0) {
        gw__adm_workers_stop(adm);
        gw__adm_queues_free(adm);
        return rc;
    }
    gw_log(GW_LOG_INFO, "admin", "admin API listening on http://%s%s%s:%d/admin-api/iot/",
           strchr(la->host, ':') ? "[" : "", la->host[0] ? la->host : "0.0.0.0",
           strchr(la->host, ':') ? "]" : "", adm->port);
    if (adm->token_path[0])
        gw_log(GW_LOG_INFO, "admin", "admin token (Authorization: Bearer) is in %s",
               adm->token_path);
    else
        gw_log(GW_LOG_INFO, "admin", "admin token (Authorization: Bearer) is admin.token "
                                     "of the configuration");
    return 0;
}

int gw_admin_port(const struct gw_admin *adm)
{
    return adm ? adm->port : 0;
}

void gw_admin_stop(struct gw_admin *adm)
{
    if (!adm || adm->stopped)
        return;
    /* Workers first, while the lws thread still delivers their answers: new requests get
     * 503, queued ones GW_E_SHUTDOWN, the ones running finish (a device/message/send may
     * wait up to GW_ADM_SEND_TIMEOUT_MAX). */
    gw__adm_workers_stop(adm);
    gw__adm_server_stop(adm);    /* no more lws callbacks */
    gw__adm_server_destroy(adm); /* closes connections; they let go of their requests */
    gw__adm_queues_free(adm);
    adm->stopped = true;
}

void gw_admin_destroy(struct gw_admin *adm)
{
    if (!adm)
        return;
    gw_admin_stop(adm);
    if (adm->sign_on)
        mbedtls_pk_free(&adm->sign_pk);
    pthread_mutex_destroy(&adm->sign_lock);
    pthread_mutex_destroy(&adm->fw_lock);
    pthread_mutex_destroy(&adm->qlock);
    pthread_cond_destroy(&adm->qcond);
    memset(adm->token, 0, sizeof(adm->token));
    memset(adm->dl_key, 0, sizeof(adm->dl_key));
    free(adm);
}

int gw__adm_read_begin(struct gw_admin *adm, struct gw_txn **out)
{
    int rc = gw_store_txn_begin(gw_core_store(adm->core), false, out);

    if (rc != 0)
        gw_log(GW_LOG_ERROR, "admin", "read transaction failed: %s", gw_strerror(rc));
    return rc;
}

int gw__adm_call(struct gw_admin *adm, int (*fn)(struct gw_core_ctx *ctx, void *arg), void *arg)
{
    int rc = gw_core_call(adm->core, fn, arg, GW_ADM_CALL_TIMEOUT_MS);

    if (rc == GW_E_TIMEOUT)
        gw_log(GW_LOG_WARN, "admin", "core command still pending after %d ms; its result "
               "will not be reported", GW_ADM_CALL_TIMEOUT_MS);
    return rc;
}
