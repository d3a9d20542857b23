/*
 * DESIGN: topic parsing and formatting (gw_topic.h). Pure, any thread, no state. Parsing
 * walks the bytes once with explicit lengths (topics come from the network, not as C
 * strings); the method path is mapped through the method table's topic_path column, so
 * there is no second list of topics to drift from the methods.
 */
#include "gw_topic.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gw_error.h"
#include "gw_util.h"

#define GW_TOPIC_PREFIX "/sys/"
#define GW_TOPIC_REPLY "_reply"

/* One identity segment: non-empty, within max, no '/', '+', '#', NUL; valid UTF-8. */
static int gw_topic_check_segment(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return GW_E_BAD_TOPIC;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '/' || s[i] == '+' || s[i] == '#' || s[i] == '\0')
            return GW_E_BAD_TOPIC;
    return gw_utf8_valid(s, len) ? 0 : GW_E_BAD_UTF8;
}

/* The method path after the device name: no empty segment, no '.', known method. */
static int gw_topic_method(const char *s, size_t len, struct gw_topic *out)
{
    const size_t rlen = sizeof(GW_TOPIC_REPLY) - 1;
    const struct gw_method_info *info;

    if (len > rlen && memcmp(s + len - rlen, GW_TOPIC_REPLY, rlen) == 0) {
        out->is_reply = true;
        len -= rlen;
    }
    if (len == 0 || s[0] == '/' || s[len - 1] == '/')
        return GW_E_BAD_TOPIC;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '.' || (s[i] == '/' && s[i + 1] == '/'))
            return GW_E_BAD_TOPIC;
    info = gw_method_find_path(s, len);
    if (!info)
        return GW_E_UNKNOWN_METHOD;
    out->method = info->method;
    return 0;
}

static int gw_topic_parse_inner(const char *topic, size_t len, struct gw_topic *out)
{
    const size_t plen = sizeof(GW_TOPIC_PREFIX) - 1;
    const char *pk, *dn, *end = topic + len, *slash;
    int rc;

    if (len < plen || memcmp(topic, GW_TOPIC_PREFIX, plen) != 0)
        return GW_E_BAD_TOPIC;
    /* wildcards and NUL anywhere: a topic filter or a C-string trick is never a topic */
    if (memchr(topic, '+', len) || memchr(topic, '#', len) || memchr(topic, '\0', len))
        return GW_E_BAD_TOPIC;
    if (!gw_utf8_valid(topic, len))
        return GW_E_BAD_UTF8;
    pk = topic + plen;
    if (!(slash = memchr(pk, '/', (size_t)(end - pk))))
        return GW_E_BAD_TOPIC;
    if ((rc = gw_topic_check_segment(pk, (size_t)(slash - pk), GW_MSG_PK_MAX)))
        return rc;
    memcpy(out->product_key, pk, (size_t)(slash - pk));
    dn = slash + 1;
    if (!(slash = memchr(dn, '/', (size_t)(end - dn))))
        return GW_E_BAD_TOPIC;
    if ((rc = gw_topic_check_segment(dn, (size_t)(slash - dn), GW_MSG_DN_MAX)))
        return rc;
    memcpy(out->device_name, dn, (size_t)(slash - dn));
    return gw_topic_method(slash + 1, (size_t)(end - slash - 1), out);
}

int gw_topic_parse(const char *topic, size_t len, struct gw_topic *out)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (!topic)
        return GW_E_BAD_TOPIC;
    rc = gw_topic_parse_inner(topic, len, out);
    if (rc)
        memset(out, 0, sizeof(*out));
    return rc;
}

static int gw_topic_check_identity(const char *pk, const char *dn)
{
    int rc;

    if (!pk || !dn)
        return GW_E_BAD_TOPIC;
    if ((rc = gw_topic_check_segment(pk, strlen(pk), GW_MSG_PK_MAX)))
        return rc;
    return gw_topic_check_segment(dn, strlen(dn), GW_MSG_DN_MAX);
}

int gw_topic_format(char *buf, size_t size, const char *pk, const char *dn,
                    enum gw_method method, bool is_reply)
{
    const struct gw_method_info *info = gw_method_get(method);
    int rc, n;

    if ((rc = gw_topic_check_identity(pk, dn)))
        return rc;
    if (!info)
        return GW_E_UNKNOWN_METHOD;
    n = snprintf(buf, size, GW_TOPIC_PREFIX "%s/%s/%s%s", pk, dn, info->topic_path,
                 is_reply ? GW_TOPIC_REPLY : "");
    return n >= 0 && (size_t)n < size ? 0 : -ENOSPC;
}

int gw_topic_format_msg(char *buf, size_t size, const struct gw_msg *msg)
{
    return gw_topic_format(buf, size, msg->product_key, msg->device_name, msg->method,
                           gw_msg_is_reply(msg));
}

int gw_topic_format_filter(char *buf, size_t size, const char *pk, const char *dn)
{
    int rc = gw_topic_check_identity(pk, dn), n;

    if (rc)
        return rc;
    n = snprintf(buf, size, GW_TOPIC_PREFIX "%s/%s/#", pk, dn);
    return n >= 0 && (size_t)n < size ? 0 : -ENOSPC;
}
