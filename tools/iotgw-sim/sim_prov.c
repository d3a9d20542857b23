/*
 * DESIGN: what a run starts from: the device table (names, protocols, behaviour mix), the
 * credentials (created through the admin API, DESIGN §7.4: one product, then one
 * device/create per device with --admin-parallel requests in flight; or read from a
 * --creds file, and written to --save-creds), and the firmware image uploaded for the task.
 * Main thread; the admin answers come back on the loop (sim_admin.c). Failures are
 * problems and stop the run (sim_flow_stop).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_util.h"
#include "sim.h"

/* ---- devices and behaviours ---- */

static uint32_t xorshift(uint32_t *st)
{
    uint32_t x = *st;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *st = x;
}

/* Exact shares, spread over the devices by a seeded shuffle. */
int sim_behaviours_assign(struct sim *s)
{
    uint32_t *perm = malloc(sizeof(uint32_t) * (s->n ? s->n : 1)), st = s->o.seed | 1, k = 0;
    static const enum sim_beh order[] = { SIM_BEH_FAIL, SIM_BEH_SILENT, SIM_BEH_DROP,
                                          SIM_BEH_SLOW };

    if (!perm)
        return -ENOMEM;
    for (uint32_t i = 0; i < s->n; i++)
        perm[i] = i;
    for (uint32_t i = s->n; i > 1; i--) {
        uint32_t j = xorshift(&st) % i, t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    for (uint32_t i = 0; i < s->n; i++)
        s->devs[i].beh = SIM_BEH_OK;
    for (size_t b = 0; b < sizeof(order) / sizeof(order[0]); b++) {
        uint32_t want = (uint32_t)(s->o.share[order[b]] * s->n + 0.5);
        for (uint32_t i = 0; i < want && k < s->n; i++)
            s->devs[perm[k++]].beh = (uint8_t)order[b];
    }
    for (uint32_t i = 0; i < s->n; i++)
        s->beh_count[s->devs[i].beh]++;
    free(perm);
    return 0;
}

int sim_devices_alloc(struct sim *s)
{
    uint32_t n = 0, k = 0;

    for (int p = 0; p < SIM_PROTO_N; p++)
        n += s->o.count[p];
    s->devs = calloc(n ? n : 1, sizeof(*s->devs));
    s->lat_ms = calloc(n ? n : 1, sizeof(double));
    s->dl_ms = calloc(n ? n : 1, sizeof(double));
    if (!s->devs || !s->lat_ms || !s->dl_ms)
        return -ENOMEM;
    s->n = n;
    for (int p = 0; p < SIM_PROTO_N; p++)
        for (uint32_t i = 0; i < s->o.count[p]; i++, k++) {
            struct sim_dev *d = &s->devs[k];
            d->sim = s;
            d->idx = k;
            d->proto = (uint8_t)p;
            snprintf(d->dn, sizeof(d->dn), "%s-%s-%u", s->o.prefix, sim_proto_name(p), i);
        }
    return 0;
}

/* ---- credentials file ---- */

static enum sim_proto proto_by_name(const char *name)
{
    for (int p = 0; p < SIM_PROTO_N; p++)
        if (strcmp(sim_proto_name(p), name) == 0)
            return p;
    return SIM_PROTO_N;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

int sim_creds_load(struct sim *s, const char *path)
{
    size_t len = 0;
    char *text = read_file(path, &len);
    cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
    const cJSON *devs = cJSON_GetObjectItemCaseSensitive(root, "devices"), *d;
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(root, "productId");
    int rc = -EINVAL;
    uint32_t k = 0;

    free(text);
    if (!cJSON_IsArray(devs))
        goto out;
    memset(s->o.count, 0, sizeof(s->o.count));
    cJSON_ArrayForEach(d, devs) {
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(d, "protocol");
        enum sim_proto p = cJSON_IsString(pr) ? proto_by_name(pr->valuestring) : SIM_PROTO_N;
        if (p == SIM_PROTO_N)
            goto out;
        s->o.count[p]++;
    }
    if (sim_devices_alloc(s) != 0)
        goto out;
    /* alloc_devices laid them out protocol by protocol; fill each protocol's slots in order */
    for (int p = 0; p < SIM_PROTO_N; p++) {
        cJSON_ArrayForEach(d, devs) {
            const cJSON *pr = cJSON_GetObjectItemCaseSensitive(d, "protocol");
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(d, "id");
            const cJSON *pk = cJSON_GetObjectItemCaseSensitive(d, "productKey");
            const cJSON *dn = cJSON_GetObjectItemCaseSensitive(d, "deviceName");
            const cJSON *sec = cJSON_GetObjectItemCaseSensitive(d, "deviceSecret");
            struct sim_dev *x;

            if (proto_by_name(pr->valuestring) != (enum sim_proto)p)
                continue;
            if (!cJSON_IsNumber(id) || !cJSON_IsString(pk) || !cJSON_IsString(dn) ||
                !cJSON_IsString(sec) || strlen(pk->valuestring) > SIM_PK_MAX ||
                strlen(dn->valuestring) > SIM_DN_MAX || strlen(sec->valuestring) > SIM_SECRET_MAX)
                goto out;
            x = &s->devs[k++];
            x->id = (uint64_t)id->valuedouble;
            strcpy(x->pk, pk->valuestring);
            strcpy(x->dn, dn->valuestring);
            strcpy(x->secret, sec->valuestring);
        }
    }
    s->product_id = cJSON_IsNumber(pid) ? (uint64_t)pid->valuedouble : 0;
    if (s->n)
        snprintf(s->product_key, sizeof(s->product_key), "%s", s->devs[0].pk);
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int sim_json_write_file(const char *path, const cJSON *root)
{
    char *text = cJSON_Print(root);
    FILE *f = text ? fopen(path, "w") : NULL;
    int rc = -EIO;

    if (f) {
        if (fputs(text, f) >= 0 && fputc('\n', f) != EOF)
            rc = 0;
        if (fclose(f) != 0)
            rc = -EIO;
    }
    cJSON_free(text);
    return rc;
}

int sim_creds_save(struct sim *s, const char *path)
{
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "devices");
    int rc = -EIO;

    if (!root || !arr)
        goto out;
    cJSON_AddNumberToObject(root, "productId", (double)s->product_id);
    cJSON_AddStringToObject(root, "productKey", s->product_key);
    for (uint32_t i = 0; i < s->n; i++) {
        struct sim_dev *d = &s->devs[i];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            goto out;
        cJSON_AddNumberToObject(o, "id", (double)d->id);
        cJSON_AddStringToObject(o, "productKey", d->pk);
        cJSON_AddStringToObject(o, "deviceName", d->dn);
        cJSON_AddStringToObject(o, "deviceSecret", d->secret);
        cJSON_AddStringToObject(o, "protocol", sim_proto_name(d->proto));
        cJSON_AddItemToArray(arr, o);
    }
    rc = sim_json_write_file(path, root);
out:
    cJSON_Delete(root);
    return rc;
}

/* ---- provisioning ---- */

static void create_more_devices(struct sim *s);

static void on_device_created(struct sim *s, void *arg, long code, const cJSON *data,
                              const char *msg)
{
    struct sim_dev *d = arg;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(data, "id");
    const cJSON *pk = cJSON_GetObjectItemCaseSensitive(data, "productKey");
    const cJSON *sec = cJSON_GetObjectItemCaseSensitive(data, "deviceSecret");

    s->pending_admin--;
    if (code != 0 || !cJSON_IsNumber(id) || !cJSON_IsString(pk) || !cJSON_IsString(sec) ||
        strlen(pk->valuestring) > SIM_PK_MAX || strlen(sec->valuestring) > SIM_SECRET_MAX) {
        sim_problem(s, "device/create %s: code %ld: %s", d->dn, code, msg ? msg : "");
        sim_flow_stop(s, "provisioning failed");
        return;
    }
    d->id = (uint64_t)id->valuedouble;
    strcpy(d->pk, pk->valuestring);
    strcpy(d->secret, sec->valuestring);
    create_more_devices(s);
}

static void create_more_devices(struct sim *s)
{
    while (s->phase == SIM_PH_PROVISION && s->pending_admin < s->o.admin_parallel &&
           s->next_to_create < s->n) {
        struct sim_dev *d = &s->devs[s->next_to_create++];
        cJSON *b = cJSON_CreateObject();

        cJSON_AddNumberToObject(b, "productId", (double)s->product_id);
        cJSON_AddStringToObject(b, "deviceName", d->dn);
        s->pending_admin++;
        if (sim_admin_call(s, "POST", "device/create", b, on_device_created, d) != 0) {
            s->pending_admin--;
            sim_problem(s, "device/create: cannot start the request");
            sim_flow_stop(s, "provisioning failed");
        }
        cJSON_Delete(b);
    }
    if (s->phase == SIM_PH_PROVISION && s->pending_admin == 0 && s->next_to_create >= s->n) {
        if (s->o.creds_out[0] && sim_creds_save(s, s->o.creds_out) != 0)
            sim_problem(s, "cannot write %s", s->o.creds_out);
        if (s->o.modbus_config[0] && sim_modbus_config_save(s, s->o.modbus_config) != 0)
            sim_problem(s, "cannot write %s", s->o.modbus_config);
        sim_flow_next(s, SIM_PH_UPLOAD);
    }
}

static void on_product_created(struct sim *s, void *arg, long code, const cJSON *data,
                               const char *msg)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(data, "id");
    const cJSON *pk = cJSON_GetObjectItemCaseSensitive(data, "productKey");

    (void)arg;
    s->pending_admin--;
    if (code != 0 || !cJSON_IsNumber(id) || !cJSON_IsString(pk) ||
        strlen(pk->valuestring) > SIM_PK_MAX) {
        sim_problem(s, "product/create: code %ld: %s", code, msg ? msg : "");
        sim_flow_stop(s, "provisioning failed");
        return;
    }
    s->product_id = (uint64_t)id->valuedouble;
    snprintf(s->product_key, sizeof(s->product_key), "%s", pk->valuestring);
    s->own_product = true;
    create_more_devices(s);
}

void sim_provision(struct sim *s)
{
    cJSON *b = cJSON_CreateObject();
    char name[96];

    if (s->o.product[0])
        snprintf(name, sizeof(name), "%s", s->o.product);
    else
        snprintf(name, sizeof(name), "sim-%" PRId64, sim_wall_ms());
    cJSON_AddStringToObject(b, "name", name);
    s->pending_admin++;
    if (sim_admin_call(s, "POST", "product/create", b, on_product_created, NULL) != 0) {
        s->pending_admin--;
        sim_problem(s, "product/create: cannot start the request");
        sim_flow_stop(s, "provisioning failed");
    }
    cJSON_Delete(b);
}

/* ---- firmware ---- */

static void on_uploaded(struct sim *s, void *arg, long code, const cJSON *data, const char *msg)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(data, "id");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(data, "fileSize");
    const cJSON *md5 = cJSON_GetObjectItemCaseSensitive(data, "fileDigestValue");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(data, "sha256");

    (void)arg;
    s->pending_admin--;
    free(s->fw_bytes);
    s->fw_bytes = NULL;
    if (code != 0 || !cJSON_IsNumber(id) || !cJSON_IsNumber(size) || !cJSON_IsString(md5)) {
        sim_problem(s, "firmware upload: code %ld: %s", code, msg ? msg : "");
        sim_flow_stop(s, "upload failed");
        return;
    }
    s->fw.id = (uint64_t)id->valuedouble;
    s->fw.size = (uint64_t)size->valuedouble;
    snprintf(s->fw.md5, sizeof(s->fw.md5), "%s", md5->valuestring);
    snprintf(s->fw.sha256, sizeof(s->fw.sha256), "%s", cJSON_IsString(sha) ? sha->valuestring : "");
    snprintf(s->fw.version, sizeof(s->fw.version), "%s", s->o.fw_version);
    if (s->fw.size != s->fw_len)
        sim_problem(s, "firmware upload: fileSize %" PRIu64 " != %zu bytes sent", s->fw.size,
                    s->fw_len);
    sim_flow_next(s, s->o.max_online ? SIM_PH_TASK_EARLY : SIM_PH_CONNECT);
}

void sim_upload(struct sim *s)
{
    char q[512];
    size_t len = 0;

    if (s->o.fw_file[0]) {
        s->fw_bytes = (uint8_t *)read_file(s->o.fw_file, &len);
        if (!s->fw_bytes) {
            sim_problem(s, "cannot read --firmware %s", s->o.fw_file);
            sim_flow_stop(s, "upload failed");
            return;
        }
    } else {
        len = (size_t)s->o.fw_size;
        s->fw_bytes = malloc(len ? len : 1);
        if (!s->fw_bytes || gw_random_bytes(s->fw_bytes, len) != 0) {
            sim_problem(s, "cannot make a %zu-byte image", len);
            sim_flow_stop(s, "upload failed");
            return;
        }
    }
    s->fw_len = len;
    snprintf(q, sizeof(q), "ota/firmware/upload?productId=%" PRIu64 "&name=sim&version=%s"
             "&description=iotgw-sim", s->product_id, s->o.fw_version);
    s->pending_admin++;
    if (sim_admin_upload(s, q, s->fw_bytes, len, on_uploaded, NULL) != 0) {
        s->pending_admin--;
        sim_problem(s, "firmware upload: cannot start the request");
        sim_flow_stop(s, "upload failed");
    }
}
