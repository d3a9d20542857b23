/*
 * DESIGN: the two outputs generated from the option tables: the effective configuration as
 * JSON (gw_config_print, for --check-config) and the reference of every option
 * (gw_config_print_help, for --help-config), plus the option walk the docs test uses.
 * Reads constant tables and the caller's config; any thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_config_table.h"

int gw_config_print(const struct gw_config *cfg, FILE *f)
{
    cJSON *root = gw__cfg_print_object(&gw__cfg_root, cfg);
    char *text;
    int rc = 0;

    if (!root)
        return -ENOMEM;
    text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return -ENOMEM;
    if (fputs(text, f) == EOF || fputc('\n', f) == EOF || fflush(f) != 0)
        rc = -EIO;
    cJSON_free(text);
    return rc;
}

typedef void (*cfg_visit_fn)(const struct gw__cfg_opt *o, const char *path, void *arg);

static void cfg_walk(const struct gw__cfg_table *t, const char *prefix, cfg_visit_fn fn, void *arg)
{
    char path[GW__CFG_PATH_MAX], sub[GW__CFG_PATH_MAX];

    for (size_t k = 0; k < t->nopts; k++) {
        const struct gw__cfg_opt *o = &t->opts[k];

        snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", o->name);
        fn(o, path, arg);
        if (o->type == GW__CFG_OBJECT) {
            cfg_walk(o->sub, path, fn, arg);
        } else if (o->type == GW__CFG_LIST && o->sub) {
            if (snprintf(sub, sizeof(sub), "%s[]", path) < (int)sizeof(sub))
                cfg_walk(o->sub, sub, fn, arg);
        } else if (o->type == GW__CFG_LIST) {
            const char *const *names = o->variants[0]->opts[0].names;
            for (size_t v = 0; v < o->nvariants; v++) {
                if (snprintf(sub, sizeof(sub), "%s[type=%s]", path, names[v]) < (int)sizeof(sub))
                    cfg_walk(o->variants[v], sub, fn, arg);
            }
        }
    }
}

struct cfg_foreach {
    gw_config_option_fn fn;
    void *arg;
};

static void cfg_foreach_visit(const struct gw__cfg_opt *o, const char *path, void *arg)
{
    struct cfg_foreach *fe = arg;

    fe->fn(path, o->name, fe->arg);
}

void gw_config_foreach_option(gw_config_option_fn fn, void *arg)
{
    struct cfg_foreach fe = { fn, arg };

    cfg_walk(&gw__cfg_root, "", cfg_foreach_visit, &fe);
}

/* "integer 1..4", "one of json, binary", ... */
static void cfg_type_doc(const struct gw__cfg_opt *o, char *buf, size_t len)
{
    size_t used;

    switch (o->type) {
    case GW__CFG_STRING:
        snprintf(buf, len, "string%s", (o->flags & GW__CFG_EMPTY_OK) ? " (may be empty)" : "");
        break;
    case GW__CFG_BOOL:
        snprintf(buf, len, "true or false");
        break;
    case GW__CFG_INT:
        if (o->nchoices) {
            used = (size_t)snprintf(buf, len, "integer:");
            for (size_t i = 0; i < o->nchoices && used < len; i++)
                used += (size_t)snprintf(buf + used, len - used, " %d", o->choices[i]);
        } else {
            snprintf(buf, len, "integer %" PRId64 "..%" PRId64, o->min, o->max);
        }
        break;
    case GW__CFG_DOUBLE:
        snprintf(buf, len, "number %g..%g", o->dmin, o->dmax);
        break;
    case GW__CFG_ENUM:
        used = (size_t)snprintf(buf, len, "one of");
        for (size_t i = 0; o->names[i] && used < len; i++)
            used += (size_t)snprintf(buf + used, len - used, "%s %s", i ? "," : "", o->names[i]);
        break;
    case GW__CFG_ADDR:
        snprintf(buf, len, "\"host:port\"%s", (o->flags & GW__CFG_EMPTY_OK) ? " or \"\"" : "");
        break;
    case GW__CFG_CUSTOM:
        snprintf(buf, len, "%s", o->custom->type_doc);
        break;
    case GW__CFG_OBJECT:
        snprintf(buf, len, "object");
        break;
    case GW__CFG_LIST:
        snprintf(buf, len, "list of objects (at most %zu)", o->max_items);
        break;
    }
}

static void cfg_default_doc(const struct gw__cfg_opt *o, char *buf, size_t len)
{
    bool quoted = o->type == GW__CFG_STRING || o->type == GW__CFG_ENUM ||
                  o->type == GW__CFG_ADDR || o->type == GW__CFG_CUSTOM;

    if (o->flags & (GW__CFG_REQUIRED | GW__CFG_SELECTOR))
        snprintf(buf, len, "required");
    else if (o->type == GW__CFG_OBJECT)
        buf[0] = '\0';
    else if (o->type == GW__CFG_LIST)
        snprintf(buf, len, "default []");
    else if (!o->def)
        snprintf(buf, len, "default null");
    else
        snprintf(buf, len, quoted ? "default \"%s\"" : "default %s", o->def);
}

/* text indented by indent, broken at spaces before width columns. */
static void cfg_print_wrapped(FILE *f, const char *text, int indent, int width)
{
    int col = 0;

    while (*text) {
        size_t word = strcspn(text, " ");
        if (col > indent && col + 1 + (int)word > width) {
            fputc('\n', f);
            col = 0;
        }
        if (col == 0)
            col = fprintf(f, "%*s", indent, "");
        else
            col += fprintf(f, " ");
        col += fprintf(f, "%.*s", (int)word, text);
        text += word;
        text += strspn(text, " ");
    }
    fputc('\n', f);
}

static void cfg_help_visit(const struct gw__cfg_opt *o, const char *path, void *arg)
{
    FILE *f = arg;
    char type[200], def[160];

    cfg_type_doc(o, type, sizeof(type));
    cfg_default_doc(o, def, sizeof(def));
    fprintf(f, "%s\n    %s%s%s\n", path, type, def[0] ? "; " : "", def);
    cfg_print_wrapped(f, o->help, 4, 96);
}

void gw_config_print_help(FILE *f)
{
    fputs("iotgw configuration: one JSON object; // and /* */ comments are allowed.\n"
          "Unknown keys and bad values are errors that name the key; nothing starts.\n"
          "adapters[type=X] lists the options of an adapter entry whose \"type\" is X.\n\n",
          f);
    cfg_walk(&gw__cfg_root, "", cfg_help_visit, f);
}
