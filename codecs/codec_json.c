/*
 * DESIGN: the JSON serializer (DESIGN §4, form documented in gw_codec.h). Sans-I/O, any
 * thread, no state. Decode parses with gw_json_parse_strict, reads the envelope fields,
 * detaches params/data from the parsed tree (no copy) and lets gw_msg_new enforce the
 * message invariants. Encode builds a wrapper object whose params/data are cJSON
 * references to the message's trees (the message is never modified) and prints it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_codec.h"
#include "gw_error.h"
#include "gw_util.h"

/* Integer ids from 2^53 on may already be rounded by the parser: refused, never guessed. */
#define GW_JSON_ID_INT_MAX 9007199254740991LL

static const cJSON *gw_json_field(const cJSON *root, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);

    /* JSON null is the same as absent for every envelope field */
    return cJSON_IsNull(item) ? NULL : item;
}

/* id (string or integer) into buf; "requestId" wins when it is a non-empty string. */
static int gw_json_read_id(const cJSON *root, char *buf, size_t size, const char **out)
{
    const cJSON *rid = gw_json_field(root, "requestId");
    const cJSON *id = gw_json_field(root, "id");
    int64_t n;

    *out = NULL;
    if (cJSON_IsString(rid) && rid->valuestring[0]) {
        id = rid;
    }
    if (!id)
        return 0;
    if (cJSON_IsString(id)) {
        *out = id->valuestring; /* length and UTF-8 checked by gw_msg_new */
        return 0;
    }
    if (gw_json_int(id, -GW_JSON_ID_INT_MAX, GW_JSON_ID_INT_MAX, &n))
        return GW_E_BAD_FIELD;
    snprintf(buf, size, "%" PRId64, n);
    *out = buf;
    return 0;
}

static int gw_json_read_method(const cJSON *root, enum gw_method *out)
{
    const cJSON *item = gw_json_field(root, "method");

    if (!item)
        return GW_E_MISSING_FIELD;
    if (!cJSON_IsString(item))
        return GW_E_BAD_FIELD;
    return gw_method_parse(item->valuestring, strlen(item->valuestring), out);
}

/* code, msg, reportTime and the Alink version check. */
static int gw_json_read_scalars(const cJSON *root, struct gw_msg_fields *f)
{
    const cJSON *version = gw_json_field(root, "version");
    const cJSON *code = gw_json_field(root, "code");
    const cJSON *msg = gw_json_field(root, "msg");
    const cJSON *rt = gw_json_field(root, "reportTime");
    int64_t n;

    /* legacy Alink: "version":"1.0" exactly; another version is another format */
    if (version && !(cJSON_IsString(version) && strcmp(version->valuestring, "1.0") == 0))
        return GW_E_BAD_FIELD;
    if (code) {
        if (gw_json_int(code, INT32_MIN, INT32_MAX, &n))
            return GW_E_BAD_FIELD;
        f->has_code = true;
        f->code = (int32_t)n;
    }
    if (msg) {
        if (!cJSON_IsString(msg))
            return GW_E_BAD_FIELD;
        f->msg = msg->valuestring;
    }
    if (rt) {
        if (gw_json_int(rt, 0, GW_MSG_REPORT_TIME_MAX, &n))
            return GW_E_BAD_FIELD;
        f->report_time = n;
    }
    return 0;
}

/* Detaches root[key] (NULL if absent) so the message owns it without a copy. */
static cJSON *gw_json_take(cJSON *root, const char *key)
{
    cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);

    if (!item)
        return NULL;
    cJSON_DetachItemViaPointer(root, item);
    /* a detached root keeps its key; drop it so the tree is a plain value */
    if (!(item->type & cJSON_StringIsConst))
        cJSON_free(item->string);
    item->string = NULL;
    return item;
}

int gw_codec_json_decode(const uint8_t *buf, size_t len, const struct gw_msg_identity *ident,
                         struct gw_msg **out)
{
    struct gw_msg_fields f = { 0 };
    char idbuf[24];
    cJSON *root = NULL;
    int rc;

    *out = NULL;
    if (len > GW_CODEC_MAX_INPUT)
        return GW_E_FRAME_TOO_LARGE;
    rc = gw_json_parse_strict((const char *)buf, len, &root);
    if (rc)
        return rc;
    if (!cJSON_IsObject(root)) {
        rc = GW_E_BAD_JSON;
        goto err_free_root;
    }
    if ((rc = gw_json_read_method(root, &f.method)) ||
        (rc = gw_json_read_id(root, idbuf, sizeof(idbuf), &f.request_id)) ||
        (rc = gw_json_read_scalars(root, &f)))
        goto err_free_root;
    if (ident)
        f.identity = *ident;
    /* strings in f point into root: build before freeing it */
    f.params = gw_json_take(root, "params");
    f.data = gw_json_take(root, "data");
    rc = gw_msg_new(&f, out);

err_free_root:
    cJSON_Delete(root);
    return rc;
}

/* Adds a reference to a tree the message owns; the wrapper never frees or changes it. */
static int gw_json_add_ref(cJSON *root, const char *key, const cJSON *tree)
{
    if (!tree)
        return 0;
    /* cJSON's API is not const-correct: a reference only reads the tree */
    return cJSON_AddItemReferenceToObject(root, key, (cJSON *)(uintptr_t)tree) ? 0 : -ENOMEM;
}

int gw_codec_json_encode(const struct gw_msg *msg, uint8_t **out, size_t *out_len)
{
    const char *id = gw_msg_wire_id(msg);
    cJSON *root = cJSON_CreateObject();
    char *text;
    int rc = -ENOMEM;

    *out = NULL;
    *out_len = 0;
    if (!root)
        return -ENOMEM;
    if ((id[0] && !cJSON_AddStringToObject(root, "id", id)) ||
        !cJSON_AddStringToObject(root, "method", gw_msg_method_name(msg)) ||
        gw_json_add_ref(root, "params", msg->params) || gw_json_add_ref(root, "data", msg->data))
        goto err_free_root;
    if (msg->has_code && !cJSON_AddNumberToObject(root, "code", msg->code))
        goto err_free_root;
    if (msg->msg && !cJSON_AddStringToObject(root, "msg", msg->msg))
        goto err_free_root;
    if (msg->report_time && !cJSON_AddNumberToObject(root, "reportTime", (double)msg->report_time))
        goto err_free_root;
    text = cJSON_PrintUnformatted(root);
    if (!text)
        goto err_free_root;
    /* the same limit both ways: numbers print longer than they may be written (1e9) */
    if (strlen(text) > GW_CODEC_MAX_INPUT) {
        cJSON_free(text);
        rc = GW_E_FRAME_TOO_LARGE;
        goto err_free_root;
    }
    *out = (uint8_t *)text; /* cJSON allocates with malloc: no hooks are installed */
    *out_len = strlen(text);
    rc = 0;

err_free_root:
    cJSON_Delete(root);
    return rc;
}

const struct gw_codec_ops gw_codec_json = {
    .name = "json",
    .decode = gw_codec_json_decode,
    .encode = gw_codec_json_encode,
};
