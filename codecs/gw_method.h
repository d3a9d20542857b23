#ifndef GW_METHOD_H
#define GW_METHOD_H
/*
 * The method table (DESIGN §3): every method the gateway understands, with its direction,
 * its reply policy and the JSON shape its params must have. One static const table in
 * gw_method.c is the only list; codecs, topics, the core and the OTA engine all use it.
 *
 * Pure lookups on const data: any thread.
 */
#include <stdbool.h>
#include <stddef.h>

/* Known methods. GW_METHOD_UNKNOWN (0) is never stored in a gw_msg. */
enum gw_method {
    GW_METHOD_UNKNOWN = 0,
    GW_METHOD_STATE_UPDATE,             /* thing.state.update */
    GW_METHOD_PROPERTY_POST,            /* thing.property.post */
    GW_METHOD_PROPERTY_SET,             /* thing.property.set */
    GW_METHOD_EVENT_POST,               /* thing.event.post */
    GW_METHOD_EVENT_PROPERTY_PACK_POST, /* thing.event.property.pack.post */
    GW_METHOD_SERVICE_INVOKE,           /* thing.service.invoke */
    GW_METHOD_CONFIG_PUSH,              /* thing.config.push */
    GW_METHOD_OTA_UPGRADE,              /* thing.ota.upgrade */
    GW_METHOD_OTA_PROGRESS,             /* thing.ota.progress */
    GW_METHOD_OTA_CANCEL,               /* thing.ota.cancel (beyond) */
    GW_METHOD_TOPO_ADD,                 /* thing.topo.add */
    GW_METHOD_TOPO_DELETE,              /* thing.topo.delete */
    GW_METHOD_TOPO_GET,                 /* thing.topo.get */
    GW_METHOD_TOPO_CHANGE,              /* thing.topo.change */
    GW_METHOD_AUTH_REGISTER,            /* thing.auth.register */
    GW_METHOD_AUTH_REGISTER_SUB,        /* thing.auth.register.sub */
    GW_METHOD_AUTH,                     /* auth (gateway-only login) */
    GW_METHOD__COUNT
};

/* Longest method string in the table ("thing.event.property.pack.post" is 30). */
#define GW_METHOD_NAME_MAX 32

/* Direction of a request: up = device → gateway, down = gateway → device. */
enum gw_method_dir {
    GW_METHOD_DIR_UP = 1,
    GW_METHOD_DIR_DOWN = 2,
};

/* Who answers a request of this method (the receiver: the gateway for up, the device for down). */
enum gw_method_reply {
    GW_METHOD_REPLY_NONE = 0,       /* never answered */
    GW_METHOD_REPLY_YES = 1,        /* always answered */
    GW_METHOD_REPLY_MAY = 2,        /* the device may answer (down methods); nobody waits */
    GW_METHOD_REPLY_ON_ERROR = 3,   /* answered only when rejected (thing.ota.progress, beyond) */
};

/* Accepted JSON types of params (bit set). Absent or JSON null params are always accepted. */
enum gw_method_params {
    GW_METHOD_PARAMS_OBJECT = 1,
    GW_METHOD_PARAMS_ARRAY = 2,
};

struct gw_method_info {
    enum gw_method method;
    const char *name;            /* "thing.ota.progress" */
    const char *topic_path;      /* "thing/ota/progress" (name with '.' as '/') */
    enum gw_method_dir dir;
    enum gw_method_reply reply;
    unsigned params;             /* enum gw_method_params bits */
};

/*
 * Lookup by string: s[0..len) need not be NUL-terminated and is compared exactly
 * (case-sensitive, no trimming). Returns the row or NULL for an unknown method.
 */
const struct gw_method_info *gw_method_find(const char *s, size_t len);

/* Lookup by topic path ("thing/ota/progress", no "_reply"); NULL if unknown. */
const struct gw_method_info *gw_method_find_path(const char *s, size_t len);

/* Row of a known enum value; NULL for GW_METHOD_UNKNOWN or out of range. */
const struct gw_method_info *gw_method_get(enum gw_method method);

/*
 * Like gw_method_find but returns the enum through *out: 0 or GW_E_UNKNOWN_METHOD
 * (*out = GW_METHOD_UNKNOWN then).
 */
int gw_method_parse(const char *s, size_t len, enum gw_method *out);

/* Method string of a known enum; "unknown" otherwise (never NULL). */
const char *gw_method_name(enum gw_method method);

/* Row i of the table, 0 <= i < gw_method_count(); NULL past the end (for iteration). */
const struct gw_method_info *gw_method_at(size_t i);
size_t gw_method_count(void);

/*
 * true when a message of this method and kind travels device → gateway: a request of an up
 * method, or a reply to a down method (the reference's isUpstreamMessage rule).
 */
bool gw_method_is_upstream(enum gw_method method, bool is_reply);

#endif
