/*
 * DESIGN: golden-vector runner shared by test_codec_json.c and test_codec_binary.c (format in
 * tests/vectors/README.md). Header-only with static inline functions so each test
 * executable gets its own copy; cmocka assertions fail the calling test.
 */
#ifndef GW_TEST_VECTORS_H
#define GW_TEST_VECTORS_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_codec.h"

#define VECTORS_DIR GW_TEST_DATA_DIR "/vectors"

/* Whole file into a malloc'ed buffer (NUL-terminated, not counted). */
static inline uint8_t *vec_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;

    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Value of key in the fields text, copied to out; false if the key is absent. */
static inline bool vec_field(const char *text, const char *key, char *out, size_t size)
{
    size_t klen = strlen(key);
    const char *line = text;

    while (*line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);

        if (len > klen && strncmp(line, key, klen) == 0 && line[klen] == '=') {
            len -= klen + 1;
            assert_true(len < size);
            memcpy(out, line + klen + 1, len);
            out[len] = 0;
            return true;
        }
        if (!end)
            break;
        line = end + 1;
    }
    return false;
}

static inline void vec_check_tree(const char *fields, const char *key, const cJSON *tree,
                                  const char *name)
{
    char text[4096];

    if (!vec_field(fields, key, text, sizeof(text))) {
        if (tree)
            fail_msg("%s: %s present but not expected", name, key);
        return;
    }
    cJSON *want = cJSON_Parse(text);
    assert_non_null(want);
    if (!tree || !cJSON_Compare(want, tree, 1))
        fail_msg("%s: %s differs from %s", name, key, text);
    cJSON_Delete(want);
}

/* Decodes one vector, checks its fields, re-encodes and compares bytes. */
static inline void vec_check_one(const struct gw_codec_ops *codec, const char *dir,
                                 const char *fields_file)
{
    static const struct gw_msg_identity ident = { "vpk", "vdn", 3 };
    char path[2048], val[4096], name[256];
    uint8_t *fields, *input, *want, *got;
    size_t flen, ilen, wlen, glen;
    struct gw_msg *m = NULL;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", dir, fields_file);
    fields = vec_read_file(path, &flen);
    const char *f = (const char *)fields;
    assert_true(vec_field(f, "input", name, sizeof(name)));
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    input = vec_read_file(path, &ilen);
    rc = codec->decode(input, ilen, &ident, &m);
    if (rc)
        fail_msg("%s: decode failed: %s", name, gw_error_name(rc));
    assert_true(vec_field(f, "type", val, sizeof(val)));
    assert_int_equal(gw_msg_is_reply(m), strcmp(val, "reply") == 0);
    assert_true(vec_field(f, "id", val, sizeof(val)));
    assert_string_equal(gw_msg_wire_id(m), val);
    assert_true(vec_field(f, "method", val, sizeof(val)));
    assert_string_equal(gw_msg_method_name(m), val);
    assert_string_equal(m->product_key, "vpk"); /* identity from the caller, not the bytes */
    assert_string_equal(m->device_name, "vdn");
    assert_int_equal(m->device_id, 3);
    vec_check_tree(f, "params", m->params, name);
    vec_check_tree(f, "data", m->data, name);
    if (vec_field(f, "code", val, sizeof(val)))
        assert_int_equal(m->code, atol(val));
    if (vec_field(f, "msg", val, sizeof(val))) {
        assert_non_null(m->msg);
        assert_string_equal(m->msg, val);
    } else {
        assert_null(m->msg);
    }
    assert_int_equal(m->report_time,
                     vec_field(f, "report_time", val, sizeof(val)) ? atoll(val) : 0);

    if (vec_field(f, "encoded", name, sizeof(name))) {
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        want = vec_read_file(path, &wlen);
    } else {
        want = input;
        wlen = ilen;
    }
    assert_int_equal(codec->encode(m, &got, &glen), 0);
    if (glen != wlen || memcmp(got, want, glen) != 0)
        fail_msg("%s: re-encoding differs (%zu bytes, want %zu): %.*s", name, glen, wlen,
                 (int)glen, (const char *)got);
    free(got);
    if (want != input)
        free(want);
    free(input);
    free(fields);
    gw_msg_unref(m);
}

/* Every NAME.fields under vectors/<sub>; returns how many ran. */
static inline int vec_run_dir(const struct gw_codec_ops *codec, const char *sub)
{
    char dir[1024];
    struct dirent *e;
    DIR *d;
    int count = 0;

    snprintf(dir, sizeof(dir), "%s/%s", VECTORS_DIR, sub);
    d = opendir(dir);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 7 && strcmp(e->d_name + n - 7, ".fields") == 0) {
            vec_check_one(codec, dir, e->d_name);
            count++;
        }
    }
    closedir(d);
    return count;
}

#endif
