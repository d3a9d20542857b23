/*
 * DESIGN: the one table of GW_E_* codes: name, admin API code, message. Pure data plus
 * lookups; any thread. Negative errno values fall back to strerror-like names.
 */
#include "gw_error.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

struct gw_error_row {
    int code;
    const char *name;
    int64_t api_code;
    const char *text;
};

#define ROW(c, api, txt) { c, #c, api, txt }
static const struct gw_error_row gw_error_rows[] = {
    ROW(GW_E_TRUNCATED, 400, "input truncated"),
    ROW(GW_E_BAD_MAGIC, 400, "bad magic byte (expected 0x7E)"),
    ROW(GW_E_BAD_VERSION, 400, "unsupported binary version (expected 1)"),
    ROW(GW_E_BAD_TYPE, 400, "bad binary message type (expected 1 request or 2 reply)"),
    ROW(GW_E_LENGTH_MISMATCH, 400, "declared length does not match the data"),
    ROW(GW_E_FRAME_TOO_LARGE, 400, "frame larger than the 65536-byte limit"),
    ROW(GW_E_BAD_JSON, 400, "malformed JSON"),
    ROW(GW_E_BAD_UTF8, 400, "invalid UTF-8"),
    ROW(GW_E_TOO_DEEP, 400, "JSON nested too deeply"),
    ROW(GW_E_BAD_PARAMS, 400, "params or data of the wrong type"),
    ROW(GW_E_UNKNOWN_METHOD, 400, "unknown method"),
    ROW(GW_E_BAD_TOPIC, 400, "topic not of the form /sys/{productKey}/{deviceName}/..."),
    ROW(GW_E_BAD_FIELD, 400, "field of the wrong type or out of range"),
    ROW(GW_E_MISSING_FIELD, 400, "required field missing"),
    ROW(GW_E_FRAME_BAD_LENGTH, 400, "frame length field gives a negative length"),
    ROW(GW_E_AUTH_FAILED, 401, "authentication failed"),
    ROW(GW_E_TOKEN_MALFORMED, 401, "malformed token"),
    ROW(GW_E_TOKEN_FORGED, 401, "token signature invalid"),
    ROW(GW_E_TOKEN_EXPIRED, 401, "token expired"),
    ROW(GW_E_NOT_AUTHENTICATED, 401, "device not authenticated: send auth first"),
    ROW(GW_E_IDENTITY_MISMATCH, 403, "token does not belong to this device"),
    ROW(GW_E_CONFIG, 400, "invalid configuration"),
    ROW(GW_E_NOT_FOUND, 404, "not found"),
    ROW(GW_E_EXISTS, 400, "already exists"),
    ROW(GW_E_MAP_FULL, 500, "storage full: raise storage.map_size_mb"),
    ROW(GW_E_STORE, 500, "storage error"),
    ROW(GW_E_SCHEMA, 500, "store schema is newer than this build or corrupt"),
    ROW(GW_E_VALUE_TOO_LONG, 400, "value too long"),
    ROW(GW_E_PRODUCT_NOT_EXISTS, 1050001000LL, "product does not exist"),
    ROW(GW_E_PRODUCT_KEY_EXISTS, 1050001001LL, "productKey already exists"),
    ROW(GW_E_DEVICE_NOT_EXISTS, 1050003000LL, "device does not exist"),
    ROW(GW_E_DEVICE_NAME_EXISTS, 1050003001LL, "device name already exists in this product"),
    ROW(GW_E_DEVICE_NOT_CONNECTED, 1050003007LL, "device is not connected to the gateway"),
    ROW(GW_E_FIRMWARE_NOT_EXISTS, 1050008000LL, "firmware does not exist"),
    ROW(GW_E_FIRMWARE_VERSION_DUPLICATE, 1050008001LL, "duplicate product version"),
    ROW(GW_E_TASK_NOT_EXISTS, 1050008100LL, "upgrade task does not exist"),
    ROW(GW_E_TASK_NAME_DUPLICATE, 1050008101LL, "create task failed: task name already used"),
    ROW(GW_E_TASK_DEVICE_ON_FIRMWARE, 1050008102LL,
        "create task failed: device is already on this firmware version"),
    ROW(GW_E_TASK_NO_DEVICE, 1050008103LL, "create task failed: no device to upgrade"),
    ROW(GW_E_TASK_NOT_IN_PROGRESS, 1050008104LL, "cancel task failed: task is not in progress"),
    ROW(GW_E_TASK_DEVICE_UPGRADING, 1050008105LL,
        "create task failed: device is already being upgraded"),
    ROW(GW_E_RECORD_NOT_EXISTS, 1050008200LL, "upgrade record does not exist"),
    ROW(GW_E_RECORD_NOT_ACTIVE, 1050008201LL, "cancel record failed: record is not in progress"),
    ROW(GW_E_RECORD_NO_ACTIVE, 1050008202LL,
        "progress rejected: the device has no upgrade in progress"),
    ROW(GW_E_PROGRESS_VERSION_MISMATCH, 1050008203LL,
        "progress rejected: version differs from the upgrade's target version"),
    ROW(GW_E_PROGRESS_BAD_STATUS, 1050008204LL,
        "progress rejected: a device may only report status 20, 30 or 40"),
    ROW(GW_E_PROGRESS_BAD_VALUE, 1050008205LL, "progress rejected: progress must be 0..100"),
    ROW(GW_E_TIMEOUT, 500, "timed out"),
    ROW(GW_E_QUEUE_FULL, 500, "queue full"),
    ROW(GW_E_SHUTDOWN, 500, "shutting down"),
    ROW(GW_E_BROKER, 500, "the MQTT broker could not be started (see its log)"),
    ROW(GW_E_MODBUS_EXCEPTION, 500, "the Modbus device answered with an exception"),
};
#undef ROW

static const struct gw_error_row *gw_error_find(int err)
{
    for (size_t i = 0; i < sizeof(gw_error_rows) / sizeof(gw_error_rows[0]); i++)
        if (gw_error_rows[i].code == err)
            return &gw_error_rows[i];
    return NULL;
}

static const struct {
    int code;
    const char *name;
} gw_errno_names[] = {
    { EINVAL, "EINVAL" }, { ENOMEM, "ENOMEM" }, { EAGAIN, "EAGAIN" }, { EPROTO, "EPROTO" },
    { ENOENT, "ENOENT" }, { EEXIST, "EEXIST" }, { EIO, "EIO" },       { ENOSPC, "ENOSPC" },
    { ERANGE, "ERANGE" }, { EBADMSG, "EBADMSG" }, { ETIMEDOUT, "ETIMEDOUT" },
    { ECONNREFUSED, "ECONNREFUSED" }, { EACCES, "EACCES" }, { ENOTSUP, "ENOTSUP" },
};

const char *gw_strerror(int err)
{
    const struct gw_error_row *row;

    if (err == 0)
        return "success";
    row = gw_error_find(err);
    if (row)
        return row->text;
    if (err < 0 && err > GW_E__BASE)
        return strerror(-err); /* glibc: static text for known values */
    return "unknown error";
}

const char *gw_error_name(int err)
{
    const struct gw_error_row *row;

    if (err == 0)
        return "OK";
    row = gw_error_find(err);
    if (row)
        return row->name;
    for (size_t i = 0; i < sizeof(gw_errno_names) / sizeof(gw_errno_names[0]); i++)
        if (-gw_errno_names[i].code == err)
            return gw_errno_names[i].name;
    return "UNKNOWN";
}

int64_t gw_error_api_code(int err)
{
    const struct gw_error_row *row;

    if (err == 0)
        return 0;
    row = gw_error_find(err);
    if (row)
        return row->api_code;
    if (err == -EINVAL || err == -ERANGE || err == -EBADMSG || err == -EPROTO)
        return 400;
    return 500;
}
