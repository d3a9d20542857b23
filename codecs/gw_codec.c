/*
 * DESIGN: the registry of serializers (gw_codec.h): a const table of the codec ops by name.
 * Any thread; no state.
 */
#include "gw_codec.h"

#include <string.h>

static const struct gw_codec_ops *const gw_codecs[] = { &gw_codec_json, &gw_codec_binary };

const struct gw_codec_ops *gw_codec_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof(gw_codecs) / sizeof(gw_codecs[0]); i++)
        if (strcmp(gw_codecs[i]->name, name) == 0)
            return gw_codecs[i];
    return NULL;
}
