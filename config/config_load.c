/*
 * DESIGN: loading a configuration: read the file, blank out comments, parse strictly, walk
 * the root table, then the root-level rules (unique adapter names, no two listeners on one
 * address, firmware.base_url derived from admin.listen, the signing key readable).
 * Runs on the caller's thread (main, before anything starts); no globals.
 *
 * Comments: `//` to end of line and block comments are replaced by spaces in a private copy,
 * which keeps every byte offset, so a JSON syntax error is reported at its true line and
 * column. (cJSON_Minify, the obvious tool, is not used: in cJSON 1.7.15 it mis-tracks a
 * string ending in an escaped backslash, "C:\\" — and then strips spaces inside the next
 * string — silently drops a lone '/', and accepts an unterminated comment.)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw_config_table.h"
#include "gw_error.h"
#include "gw_util.h"

#define GW_CONFIG_FILE_MAX (4u << 20) /* a config is kilobytes; refuse anything absurd */

static void cfg_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cfg_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* "line L, column C" of byte offset off (1-based, columns in bytes). */
static void cfg_where(const char *buf, size_t off, char *out, size_t outlen)
{
    size_t line = 1, col = 1;

    for (size_t i = 0; i < off; i++) {
        if (buf[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    snprintf(out, outlen, "line %zu, column %zu", line, col);
}

/*
 * Replaces comments with spaces (newlines kept). Returns 0, or -1 with *bad_at at a lone
 * '/' or the start of an unterminated block comment, and *what describing it.
 */
static int cfg_blank_comments(char *buf, size_t len, size_t *bad_at, const char **what)
{
    size_t i = 0;

    while (i < len) {
        char c = buf[i];
        if (c == '"') {
            for (i++; i < len && buf[i] != '"'; i++) {
                if (buf[i] == '\\')
                    i++;
            }
            i++;
        } else if (c == '/' && i + 1 < len && buf[i + 1] == '/') {
            while (i < len && buf[i] != '\n')
                buf[i++] = ' ';
        } else if (c == '/' && i + 1 < len && buf[i + 1] == '*') {
            size_t start = i;
            buf[i] = buf[i + 1] = ' ';
            for (i += 2; i < len && !(buf[i] == '*' && i + 1 < len && buf[i + 1] == '/'); i++) {
                if (buf[i] != '\n')
                    buf[i] = ' ';
            }
            if (i >= len) {
                *bad_at = start;
                *what = "unterminated /* comment";
                return -1;
            }
            buf[i] = buf[i + 1] = ' ';
            i += 2;
        } else if (c == '/') {
            *bad_at = i;
            *what = "'/' outside a string (comments are // or /* */)";
            return -1;
        } else {
            i++;
        }
    }
    return 0;
}

/* Says where strict parsing failed; cJSON reports the offset it stopped at. */
static void cfg_json_error(const char *buf, size_t len, const char *src, int rc, char *err,
                           size_t errlen)
{
    const char *end = NULL;
    char where[64];
    size_t off;
    cJSON *root;

    if (rc == GW_E_BAD_UTF8) {
        cfg_errf(err, errlen, "config: %s: invalid UTF-8 in a string or key", src);
        return;
    }
    if (rc == GW_E_TOO_DEEP) {
        cfg_errf(err, errlen, "config: %s: JSON nested deeper than %d levels", src,
                 GW_JSON_MAX_DEPTH);
        return;
    }
    if (strspn(buf, " \t\r\n") == len) {
        cfg_errf(err, errlen, "config: %s: no JSON object (empty)", src);
        return;
    }
    root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    off = end ? (size_t)(end - buf) : 0;
    if (root) {
        off += strspn(buf + off, " \t\r\n");
        cJSON_Delete(root);
        cfg_where(buf, off, where, sizeof(where));
        cfg_errf(err, errlen, "config: %s: %s: unexpected text after the JSON value", src, where);
        return;
    }
    cfg_where(buf, off < len ? off : len, where, sizeof(where));
    cfg_errf(err, errlen, "config: %s: %s: invalid JSON", src, where);
}

static int cfg_load(const char *text, size_t len, const char *src, struct gw_config **out,
                    char *err, size_t errlen)
{
    struct gw__cfg_ctx ctx = { .err = err, .errlen = errlen };
    struct gw_config *cfg = NULL;
    cJSON *root = NULL;
    const char *what = NULL;
    char *buf, where[64];
    size_t bad_at = 0;
    int rc;

    *out = NULL;
    if (len > GW_CONFIG_FILE_MAX) {
        cfg_errf(err, errlen, "config: %s: larger than %u bytes", src, GW_CONFIG_FILE_MAX);
        return GW_E_CONFIG;
    }
    buf = malloc(len + 1);
    if (!buf)
        goto err_nomem;
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        cfg_where(buf, strlen(buf), where, sizeof(where));
        cfg_errf(err, errlen, "config: %s: %s: NUL byte in the file", src, where);
        rc = GW_E_CONFIG;
        goto err_free_buf;
    }
    if (cfg_blank_comments(buf, len, &bad_at, &what) != 0) {
        cfg_where(buf, bad_at, where, sizeof(where));
        cfg_errf(err, errlen, "config: %s: %s: %s", src, where, what);
        rc = GW_E_CONFIG;
        goto err_free_buf;
    }
    rc = gw_json_parse_strict(buf, len, &root);
    if (rc == -ENOMEM)
        goto err_nomem_buf;
    if (rc) {
        cfg_json_error(buf, len, src, rc, err, errlen);
        rc = GW_E_CONFIG;
        goto err_free_buf;
    }
    if (!cJSON_IsObject(root)) {
        cfg_errf(err, errlen, "config: %s: expected a JSON object at the top (got %s)", src,
                 gw__cfg_json_type(root));
        rc = GW_E_CONFIG;
        goto err_free_root;
    }
    cfg = calloc(1, sizeof(*cfg));
    if (!cfg) {
        rc = -ENOMEM;
        goto err_free_root;
    }
    rc = gw__cfg_parse_object(&gw__cfg_root, root, cfg, &ctx);
    if (rc) {
        gw_config_free(cfg);
        goto err_free_root;
    }
    cJSON_Delete(root);
    free(buf);
    *out = cfg;
    return 0;

err_free_root:
    cJSON_Delete(root);
    if (rc == -ENOMEM)
        cfg_errf(err, errlen, "config: out of memory");
err_free_buf:
    free(buf);
    return rc;
err_nomem_buf:
    free(buf);
err_nomem:
    cfg_errf(err, errlen, "config: out of memory");
    return -ENOMEM;
}

int gw_config_load_string(const char *text, size_t len, struct gw_config **out, char *err,
                          size_t errlen)
{
    return cfg_load(text ? text : "", text ? len : 0, "text", out, err, errlen);
}

int gw_config_load_file(const char *path, struct gw_config **out, char *err, size_t errlen)
{
    struct stat st;
    char *text = NULL;
    size_t got = 0;
    FILE *f;
    int rc;

    *out = NULL;
    f = fopen(path, "rb");
    if (!f) {
        cfg_errf(err, errlen, "config: cannot open %s: %s", path, strerror(errno));
        return GW_E_CONFIG;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        cfg_errf(err, errlen, "config: %s: not a regular file", path);
        rc = GW_E_CONFIG;
        goto err_close;
    }
    if ((unsigned long long)st.st_size > GW_CONFIG_FILE_MAX) {
        cfg_errf(err, errlen, "config: %s: larger than %u bytes", path, GW_CONFIG_FILE_MAX);
        rc = GW_E_CONFIG;
        goto err_close;
    }
    text = malloc((size_t)st.st_size + 1);
    if (!text) {
        cfg_errf(err, errlen, "config: out of memory");
        rc = -ENOMEM;
        goto err_close;
    }
    got = fread(text, 1, (size_t)st.st_size, f);
    if (ferror(f)) {
        cfg_errf(err, errlen, "config: cannot read %s: %s", path, strerror(errno));
        rc = GW_E_CONFIG;
        goto err_free;
    }
    rc = cfg_load(text, got, path, out, err, errlen);
err_free:
    free(text);
err_close:
    fclose(f);
    return rc;
}

void gw_config_free(struct gw_config *cfg)
{
    if (!cfg)
        return;
    gw__cfg_free_object(&gw__cfg_root, cfg);
    free(cfg);
}

int gw_config_set_data_dir(struct gw_config *cfg, const char *dir, char *err, size_t errlen)
{
    char *copy;

    if (!dir || dir[0] == '\0') {
        cfg_errf(err, errlen, "config: --data-dir: must not be empty");
        return GW_E_CONFIG;
    }
    copy = strdup(dir);
    if (!copy)
        return -ENOMEM;
    free(cfg->data_dir);
    cfg->data_dir = copy;
    return 0;
}

/* ---- root-level rules ------------------------------------------------------------------ */

struct cfg_endpoint {
    const struct gw_config_addr *addr;
    bool udp;
    char what[48];
};

static bool cfg_wildcard(const char *host)
{
    return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}

static size_t cfg_endpoints(const struct gw_config *cfg, struct cfg_endpoint *ep)
{
    size_t n = 0;

    ep[n] = (struct cfg_endpoint){ &cfg->admin.listen, false, "admin.listen" };
    n++;
    for (size_t i = 0; i < cfg->adapter_count; i++) {
        const struct gw_config_adapter *a = &cfg->adapters[i];
        bool udp = a->type == GW_CONFIG_ADAPTER_COAP || a->type == GW_CONFIG_ADAPTER_UDP;

        if (a->type == GW_CONFIG_ADAPTER_MODBUS_TCP_CLIENT ||
            (a->type == GW_CONFIG_ADAPTER_MQTT && !a->u.mqtt.spawn))
            continue;
        ep[n].addr = &a->listen;
        ep[n].udp = udp;
        snprintf(ep[n].what, sizeof(ep[n].what), "adapters[%zu].listen", i);
        n++;
        if (a->type == GW_CONFIG_ADAPTER_COAP && a->u.coap.dtls_listen.host[0]) {
            ep[n].addr = &a->u.coap.dtls_listen;
            ep[n].udp = true;
            snprintf(ep[n].what, sizeof(ep[n].what), "adapters[%zu].dtls_listen", i);
            n++;
        }
    }
    return n;
}

/* Two listeners on one port of one transport would fail at bind, after others started. */
static int cfg_check_listeners(const struct gw_config *cfg, struct gw__cfg_ctx *ctx)
{
    struct cfg_endpoint ep[1 + 2 * 64];
    size_t n = cfg_endpoints(cfg, ep);
    char buf[GW_CONFIG_HOST_MAX + 16];

    for (size_t j = 1; j < n; j++) {
        for (size_t i = 0; i < j; i++) {
            const struct gw_config_addr *a = ep[i].addr, *b = ep[j].addr;
            if (a->port == 0 || a->port != b->port || ep[i].udp != ep[j].udp)
                continue;
            if (strcmp(a->host, b->host) != 0 && !cfg_wildcard(a->host) && !cfg_wildcard(b->host))
                continue;
            gw__cfg_format_addr(b, buf, sizeof(buf));
            return gw__cfg_fail(ctx, ep[j].what, "%s is already used by %s", buf, ep[i].what);
        }
    }
    return 0;
}

static int cfg_derive_base_url(struct gw_config *cfg, struct gw__cfg_ctx *ctx)
{
    char **url = &cfg->firmware.base_url;
    size_t len = strlen(*url);
    const struct gw_config_addr *admin = &cfg->admin.listen;
    char buf[GW_CONFIG_HOST_MAX + 32];

    while (len > 0 && (*url)[len - 1] == '/')
        (*url)[--len] = '\0';
    if (len > 0)
        return 0;
    if (cfg_wildcard(admin->host) || admin->port == 0)
        return gw__cfg_fail(ctx, "firmware.base_url",
                            "must be set when admin.listen is a wildcard address or port 0");
    snprintf(buf, sizeof(buf), strchr(admin->host, ':') ? "http://[%s]:%d" : "http://%s:%d",
             admin->host, admin->port);
    char *copy = strdup(buf);
    if (!copy)
        return -ENOMEM;
    free(*url);
    *url = copy;
    return 0;
}

int gw__cfg_root_finish(void *obj, struct gw__cfg_ctx *ctx)
{
    struct gw_config *cfg = obj;
    char key[48];
    int rc;

    for (size_t j = 1; j < cfg->adapter_count; j++) {
        for (size_t i = 0; i < j; i++) {
            if (strcmp(cfg->adapters[i].name, cfg->adapters[j].name) != 0)
                continue;
            snprintf(key, sizeof(key), "adapters[%zu].name", j);
            return gw__cfg_fail(ctx, key, "\"%s\" is already used by adapters[%zu]",
                                cfg->adapters[j].name, i);
        }
    }
    rc = cfg_check_listeners(cfg, ctx);
    if (rc)
        return rc;
    rc = cfg_derive_base_url(cfg, ctx);
    if (rc)
        return rc;
    if (cfg->firmware.sign_key[0] && access(cfg->firmware.sign_key, R_OK) != 0)
        return gw__cfg_fail(ctx, "firmware.sign_key", "cannot read %s: %s",
                            cfg->firmware.sign_key, strerror(errno));
    return 0;
}
