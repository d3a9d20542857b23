/*
 * DESIGN: libFuzzer target for topic parsing. Property: parsing is exact, so a topic that
 * parses formats back to the same bytes, and the method lookups never read past the length
 * they are given. Any violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char buf[GW_TOPIC_MAX];
    struct gw_topic t;

    (void)gw_method_find(s, size);
    (void)gw_method_find_path(s, size);
    if (gw_topic_parse(s, size, &t))
        return 0;
    if (gw_topic_format(buf, sizeof(buf), t.product_key, t.device_name, t.method, t.is_reply))
        abort();
    if (strlen(buf) != size || memcmp(buf, data, size) != 0)
        abort();
    return 0;
}
