/*
 * DESIGN: the route table of /admin-api/iot/ (DESIGN §7.4, REFERENCE §1.3) and the worker
 * side of a request: parse the JSON body strictly, run the handler, build the envelope.
 * Verbs follow the reference (GET for get/page/statistics/history, POST for create, task
 * cancel, upload and send, PUT for update and record cancel); POST is accepted wherever
 * the reference uses PUT, for clients that cannot send PUT. The table is the one place
 * listing the paths (tests/conformance/admin checks each path of DESIGN §7.4 is routed).
 */
#include <stdio.h>
#include <string.h>

#include "admin_int.h"
#include "gw_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_util.h"

#define GET GW_ADM_GET
#define POST GW_ADM_POST
#define PUT GW_ADM_PUT
#define NONE GW_ADM_BODY_NONE
#define JSON GW_ADM_BODY_JSON
#define UPLOAD GW_ADM_BODY_UPLOAD

static const struct gw_adm_route routes[] = {
    { "product/create", POST, JSON, gw__adm_product_create, NULL, 0 },
    { "product/get", GET, NONE, gw__adm_product_get, NULL, 0 },
    { "product/page", GET, NONE, gw__adm_product_page, NULL, 0 },
    { "device/create", POST, JSON, gw__adm_device_create, NULL, 0 },
    { "device/get", GET, NONE, gw__adm_device_get, NULL, 0 },
    { "device/page", GET, NONE, gw__adm_device_page, NULL, 0 },
    { "device/message/send", POST, JSON, gw__adm_device_send, NULL, 0 },
    { "ota/firmware/upload", POST | PUT, UPLOAD, gw__adm_fw_upload, gw__adm_fw_upload_check, 0 },
    { "ota/firmware/create", POST, JSON, gw__adm_fw_create, NULL, 0 },
    { "ota/firmware/update", PUT | POST, JSON, gw__adm_fw_update, NULL, 0 },
    { "ota/firmware/get", GET, NONE, gw__adm_fw_get, NULL, 0 },
    { "ota/firmware/page", GET, NONE, gw__adm_fw_page, NULL, 0 },
    { "ota/task/create", POST, JSON, gw__adm_task_create, NULL, GW_ADM_JSON_BIG },
    { "ota/task/cancel", POST | PUT, JSON, gw__adm_task_cancel, NULL, 0 },
    { "ota/task/get", GET, NONE, gw__adm_task_get, NULL, 0 },
    { "ota/task/page", GET, NONE, gw__adm_task_page, NULL, 0 },
    { "ota/task/record/get", GET, NONE, gw__adm_record_get, NULL, 0 },
    { "ota/task/record/page", GET, NONE, gw__adm_record_page, NULL, 0 },
    { "ota/task/record/cancel", PUT | POST, JSON, gw__adm_record_cancel, NULL, 0 },
    { "ota/task/record/get-status-statistics", GET, NONE, gw__adm_record_stats, NULL, 0 },
    { "ota/task/record/history", GET, NONE, gw__adm_record_history, NULL, 0 },
};

const struct gw_adm_route *gw__adm_route_find(const char *path)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (strcmp(routes[i].path, path) == 0)
            return &routes[i];
    return NULL;
}

static int parse_body(struct gw_adm_req *req)
{
    int rc;

    if (!req->body || req->body_len == 0)
        return 0;
    rc = gw_json_parse_strict(req->body, req->body_len, &req->json);
    if (rc == GW_E_BAD_JSON)
        return gw__adm_fail(req, rc, "request body: malformed JSON");
    if (rc == GW_E_BAD_UTF8)
        return gw__adm_fail(req, rc, "request body: invalid UTF-8");
    if (rc == GW_E_TOO_DEEP)
        return gw__adm_fail(req, rc, "request body: JSON nested deeper than %d",
                            GW_JSON_MAX_DEPTH);
    if (rc != 0)
        return rc;
    if (!cJSON_IsObject(req->json))
        return gw__adm_fail(req, GW_E_BAD_FIELD, "request body: must be a JSON object");
    return 0;
}

void gw__adm_dispatch(struct gw_admin *adm, struct gw_adm_req *req)
{
    cJSON *data = NULL;
    int rc = parse_body(req);

    if (rc == 0)
        rc = req->route->fn(adm, req, &data);
    if (rc != 0 && gw_error_api_code(rc) == 500)
        gw_log(GW_LOG_WARN, "admin", "%s: %s", req->route->path,
               req->errmsg[0] ? req->errmsg : gw_strerror(rc));
    if (gw__adm_respond(req, rc, data) != 0)
        gw_log(GW_LOG_WARN, "admin", "%s: out of memory building the answer", req->route->path);
}
