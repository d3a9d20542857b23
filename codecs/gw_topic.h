#ifndef GW_TOPIC_H
#define GW_TOPIC_H
/*
 * Device topics (DESIGN §4): /sys/{productKey}/{deviceName}/{method with '.' as '/'}, plus
 * the suffix "_reply" for replies, e.g. /sys/pk/dn/thing/ota/progress,
 * /sys/pk/dn/thing/property/set_reply. MQTT uses them as they are; the CoAP and HTTP
 * adapters strip their "/topic" prefix first.
 *
 * Parsing is exact: parse then format gives back the same bytes. Refused (GW_E_BAD_TOPIC):
 * another prefix, MQTT wildcards '+' or '#' anywhere, NUL bytes, empty segments (leading,
 * doubled or trailing '/'), a product key over GW_MSG_PK_MAX or a device name over
 * GW_MSG_DN_MAX bytes, a '.' in the method path. Bad UTF-8: GW_E_BAD_UTF8. A well-formed
 * topic whose method path is not in the table: GW_E_UNKNOWN_METHOD.
 *
 * Pure functions, any thread.
 */
#include <stdbool.h>
#include <stddef.h>

#include "gw_method.h"
#include "gw_msg.h"

/* Longest topic: "/sys/" pk "/" dn "/" method path "_reply" + NUL. */
#define GW_TOPIC_MAX (5 + GW_MSG_PK_MAX + 1 + GW_MSG_DN_MAX + 1 + GW_METHOD_NAME_MAX + 6 + 1)

struct gw_topic {
    char product_key[GW_MSG_PK_MAX + 1];
    char device_name[GW_MSG_DN_MAX + 1];
    enum gw_method method;
    bool is_reply;
};

/* topic[0..len) (not NUL-terminated) into *out. 0 or an error above; *out zeroed on error. */
int gw_topic_parse(const char *topic, size_t len, struct gw_topic *out);

/*
 * Writes the NUL-terminated topic into buf[0..size) (GW_TOPIC_MAX always suffices).
 * pk and dn are borrowed and checked like parsed segments. Returns 0, GW_E_BAD_TOPIC,
 * GW_E_BAD_UTF8, GW_E_UNKNOWN_METHOD or -ENOSPC.
 */
int gw_topic_format(char *buf, size_t size, const char *pk, const char *dn,
                    enum gw_method method, bool is_reply);

/* The topic of msg: its identity, method, and "_reply" when it is a reply. */
int gw_topic_format_msg(char *buf, size_t size, const struct gw_msg *msg);

/* The subscription filter of one device, "/sys/{pk}/{dn}/#". Same errors. */
int gw_topic_format_filter(char *buf, size_t size, const char *pk, const char *dn);

#endif
