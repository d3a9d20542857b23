/*
 * DESIGN: the one method table of DESIGN §3 and its lookups. Pure const data, any thread.
 * Invariant: row i describes enum value i + 1 (checked by the unit test), so lookup by enum
 * is an index; lookup by string is a linear scan of 17 rows bounded by the caller's length.
 *
 * Params shapes (what decoders accept; absent/null params are always accepted, content is
 * the consumer's business): every method takes a JSON object, except
 * thing.auth.register.sub whose params are a JSON array of {productKey, deviceName}, as in
 * the reference (its DTO is a List, so an object there is refused).
 */
#include "gw_method.h"

#include <string.h>

#include "gw_error.h"

#define OBJ GW_METHOD_PARAMS_OBJECT
#define ARR GW_METHOD_PARAMS_ARRAY
#define UP GW_METHOD_DIR_UP
#define DOWN GW_METHOD_DIR_DOWN

static const struct gw_method_info gw_method_rows[] = {
    { GW_METHOD_STATE_UPDATE, "thing.state.update", "thing/state/update", UP,
      GW_METHOD_REPLY_NONE, OBJ },
    { GW_METHOD_PROPERTY_POST, "thing.property.post", "thing/property/post", UP,
      GW_METHOD_REPLY_YES, OBJ },
    { GW_METHOD_PROPERTY_SET, "thing.property.set", "thing/property/set", DOWN,
      GW_METHOD_REPLY_MAY, OBJ },
    { GW_METHOD_EVENT_POST, "thing.event.post", "thing/event/post", UP, GW_METHOD_REPLY_YES,
      OBJ },
    { GW_METHOD_EVENT_PROPERTY_PACK_POST, "thing.event.property.pack.post",
      "thing/event/property/pack/post", UP, GW_METHOD_REPLY_YES, OBJ },
    { GW_METHOD_SERVICE_INVOKE, "thing.service.invoke", "thing/service/invoke", DOWN,
      GW_METHOD_REPLY_YES, OBJ },
    { GW_METHOD_CONFIG_PUSH, "thing.config.push", "thing/config/push", DOWN,
      GW_METHOD_REPLY_NONE, OBJ },
    { GW_METHOD_OTA_UPGRADE, "thing.ota.upgrade", "thing/ota/upgrade", DOWN,
      GW_METHOD_REPLY_MAY, OBJ },
    /* reference: no reply; beyond: the gateway answers a rejected report with its code */
    { GW_METHOD_OTA_PROGRESS, "thing.ota.progress", "thing/ota/progress", UP,
      GW_METHOD_REPLY_ON_ERROR, OBJ },
    { GW_METHOD_OTA_CANCEL, "thing.ota.cancel", "thing/ota/cancel", DOWN, GW_METHOD_REPLY_NONE,
      OBJ },
    { GW_METHOD_TOPO_ADD, "thing.topo.add", "thing/topo/add", UP, GW_METHOD_REPLY_YES, OBJ },
    { GW_METHOD_TOPO_DELETE, "thing.topo.delete", "thing/topo/delete", UP, GW_METHOD_REPLY_YES,
      OBJ },
    { GW_METHOD_TOPO_GET, "thing.topo.get", "thing/topo/get", UP, GW_METHOD_REPLY_YES, OBJ },
    { GW_METHOD_TOPO_CHANGE, "thing.topo.change", "thing/topo/change", DOWN,
      GW_METHOD_REPLY_NONE, OBJ },
    { GW_METHOD_AUTH_REGISTER, "thing.auth.register", "thing/auth/register", UP,
      GW_METHOD_REPLY_YES, OBJ },
    { GW_METHOD_AUTH_REGISTER_SUB, "thing.auth.register.sub", "thing/auth/register/sub", UP,
      GW_METHOD_REPLY_YES, ARR },
    { GW_METHOD_AUTH, "auth", "auth", UP, GW_METHOD_REPLY_YES, OBJ },
};

#undef OBJ
#undef ARR
#undef UP
#undef DOWN

#define GW_METHOD_ROWS (sizeof(gw_method_rows) / sizeof(gw_method_rows[0]))

_Static_assert(GW_METHOD_ROWS == GW_METHOD__COUNT - 1, "one row per enum gw_method value");

static bool gw_method_eq(const char *name, const char *s, size_t len)
{
    /* exact length first: s is not NUL-terminated and a NUL inside it never matches */
    return strlen(name) == len && memcmp(name, s, len) == 0;
}

const struct gw_method_info *gw_method_find(const char *s, size_t len)
{
    if (!s || len == 0 || len > GW_METHOD_NAME_MAX)
        return NULL;
    for (size_t i = 0; i < GW_METHOD_ROWS; i++)
        if (gw_method_eq(gw_method_rows[i].name, s, len))
            return &gw_method_rows[i];
    return NULL;
}

const struct gw_method_info *gw_method_find_path(const char *s, size_t len)
{
    if (!s || len == 0 || len > GW_METHOD_NAME_MAX)
        return NULL;
    for (size_t i = 0; i < GW_METHOD_ROWS; i++)
        if (gw_method_eq(gw_method_rows[i].topic_path, s, len))
            return &gw_method_rows[i];
    return NULL;
}

const struct gw_method_info *gw_method_get(enum gw_method method)
{
    if ((int)method <= (int)GW_METHOD_UNKNOWN || (int)method >= (int)GW_METHOD__COUNT)
        return NULL;
    return &gw_method_rows[(int)method - 1];
}

int gw_method_parse(const char *s, size_t len, enum gw_method *out)
{
    const struct gw_method_info *row = gw_method_find(s, len);

    *out = row ? row->method : GW_METHOD_UNKNOWN;
    return row ? 0 : GW_E_UNKNOWN_METHOD;
}

const char *gw_method_name(enum gw_method method)
{
    const struct gw_method_info *row = gw_method_get(method);

    return row ? row->name : "unknown";
}

const struct gw_method_info *gw_method_at(size_t i)
{
    return i < GW_METHOD_ROWS ? &gw_method_rows[i] : NULL;
}

size_t gw_method_count(void)
{
    return GW_METHOD_ROWS;
}

bool gw_method_is_upstream(enum gw_method method, bool is_reply)
{
    const struct gw_method_info *row = gw_method_get(method);

    if (!row)
        return false;
    return (row->dir == GW_METHOD_DIR_UP) != is_reply;
}
