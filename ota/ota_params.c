/*
 * DESIGN: builds the params of the OTA device messages (DESIGN §5.5) from a PUSH_UPGRADE or
 * SEND_CANCEL action. Pure (no store, no clock); any thread. Ids travel as decimal strings
 * because JSON numbers (doubles) cannot carry every 64-bit id.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_ota.h"

static int add_id(cJSON *o, const char *key, uint64_t id)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRIu64, id);
    return cJSON_AddStringToObject(o, key, buf) ? 0 : -ENOMEM;
}

/* fileUrl: the firmware's URL (prefixed with base_url when it is a path) plus the token. */
static char *file_url(const char *url, const char *base_url, const char *token)
{
    size_t blen = 0, ulen = strlen(url), tlen = token ? strlen(token) : 0, n;
    char *out;

    if (url[0] == '/' && base_url) {
        blen = strlen(base_url);
        while (blen > 0 && base_url[blen - 1] == '/')
            blen--;
    }
    n = blen + ulen + (tlen ? tlen + 7 : 0) + 1;
    out = malloc(n);
    if (!out)
        return NULL;
    if (blen)
        memcpy(out, base_url, blen);
    memcpy(out + blen, url, ulen);
    n = blen + ulen;
    if (tlen) {
        memcpy(out + n, strchr(url, '?') ? "&token=" : "?token=", 7);
        memcpy(out + n + 7, token, tlen);
        n += 7 + tlen;
    }
    out[n] = '\0';
    return out;
}

int gw_ota_upgrade_params(const struct gw_ota_action *a, const struct gw_firmware *fw,
                          const char *base_url, const char *token, cJSON **out)
{
    cJSON *o;
    char *url = NULL;
    int rc = -ENOMEM;

    *out = NULL;
    if (!a || !fw || a->firmware_id != fw->id)
        return -EINVAL;
    o = cJSON_CreateObject();
    if (!o)
        return -ENOMEM;
    url = file_url(fw->file_url, base_url, token);
    if (!url)
        goto err;
    if (!cJSON_AddStringToObject(o, "version", fw->version) ||
        !cJSON_AddStringToObject(o, "fileUrl", url) ||
        !cJSON_AddNumberToObject(o, "fileSize", (double)fw->file_size) ||
        !cJSON_AddStringToObject(o, "fileDigestAlgorithm",
                                 fw->digest_algorithm[0] ? fw->digest_algorithm : "MD5") ||
        !cJSON_AddStringToObject(o, "fileDigestValue", fw->digest_value) ||
        !cJSON_AddStringToObject(o, "sha256", fw->sha256))
        goto err;
    if (fw->sign[0] && !cJSON_AddStringToObject(o, "sign", fw->sign))
        goto err;
    rc = add_id(o, "taskId", a->task_id);
    if (rc == 0)
        rc = add_id(o, "recordId", a->record_id);
    if (rc)
        goto err;
    free(url);
    *out = o;
    return 0;

err:
    free(url);
    cJSON_Delete(o);
    return rc;
}

int gw_ota_cancel_params(const struct gw_ota_action *a, const char *version, cJSON **out)
{
    cJSON *o;
    int rc;

    *out = NULL;
    if (!a || !version)
        return -EINVAL;
    o = cJSON_CreateObject();
    if (!o)
        return -ENOMEM;
    rc = add_id(o, "taskId", a->task_id);
    if (rc == 0)
        rc = add_id(o, "recordId", a->record_id);
    if (rc == 0 && !cJSON_AddStringToObject(o, "version", version))
        rc = -ENOMEM;
    if (rc) {
        cJSON_Delete(o);
        return rc;
    }
    *out = o;
    return 0;
}
