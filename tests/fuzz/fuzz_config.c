/*
 * DESIGN: libFuzzer target of the configuration loader: arbitrary bytes through
 * gw_config_load_string. A load either fails with a message and no config, or succeeds and
 * then must print, load back from its own printout and print identically (the table's
 * parse and print agree). Single-threaded; no state between inputs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *print_config(const struct gw_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    if (!f || gw_config_print(cfg, f) != 0)
        abort();
    fclose(f);
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_config *cfg = NULL, *again = NULL;
    char err[256] = "";
    char *first, *second;

    if (gw_config_load_string((const char *)data, size, &cfg, err, sizeof(err)) != 0) {
        if (cfg || strncmp(err, "config: ", 8) != 0)
            abort(); /* a failure always says why and leaves nothing behind */
        return 0;
    }
    first = print_config(cfg);
    /* A set admin token prints redacted, which is refused on purpose: no round trip. */
    if (cfg->admin.token[0] == '\0') {
        if (gw_config_load_string(first, strlen(first), &again, err, sizeof(err)) != 0)
            abort();
        second = print_config(again);
        if (strcmp(first, second) != 0)
            abort();
        free(second);
        gw_config_free(again);
    }
    free(first);
    gw_config_free(cfg);
    return 0;
}
