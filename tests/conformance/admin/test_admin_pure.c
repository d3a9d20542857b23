/*
 * The admin API's pure parts (gateway/admin/admin_args.c, fwurl.c, admin_blob.c) with
 * cmocka: Range header parsing, the Bearer check, argument getters and the messages that
 * name the field, paging, the envelope and its HTTP status, the download token (vector
 * computed with Python's hmac), secret files (created once, 0600, shared by racing
 * loaders) and content-addressed firmware files (MD5/SHA-256 vectors of "abc").
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "admin_int.h"
#include "gw_error.h"
#include "gw_fwurl.h"

static char tmpdir[256];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/gw-admin-pure-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    char cmd[300];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_range(void **state)
{
    uint64_t a = 0, b = 0;

    (void)state;
    assert_int_equal(gw__adm_range_parse(NULL, 100, &a, &b), 0);
    assert_int_equal(gw__adm_range_parse("", 100, &a, &b), 0);
    assert_int_equal(gw__adm_range_parse("bytes=0-9", 100, &a, &b), 1);
    assert_true(a == 0 && b == 9);
    assert_int_equal(gw__adm_range_parse("bytes=90-", 100, &a, &b), 1);
    assert_true(a == 90 && b == 99);
    assert_int_equal(gw__adm_range_parse("bytes=50-1000", 100, &a, &b), 1);
    assert_true(a == 50 && b == 99);
    assert_int_equal(gw__adm_range_parse("bytes=-10", 100, &a, &b), 1);
    assert_true(a == 90 && b == 99);
    assert_int_equal(gw__adm_range_parse("bytes=-1000", 100, &a, &b), 1);
    assert_true(a == 0 && b == 99);
    assert_int_equal(gw__adm_range_parse("BYTES=1-1", 100, &a, &b), 1);
    assert_true(a == 1 && b == 1);
    /* unsatisfiable → 416 */
    assert_int_equal(gw__adm_range_parse("bytes=100-", 100, &a, &b), -1);
    assert_int_equal(gw__adm_range_parse("bytes=-0", 100, &a, &b), -1);
    assert_int_equal(gw__adm_range_parse("bytes=0-", 0, &a, &b), -1);
    /* invalid or several ranges: ignored, the whole body is served */
    assert_int_equal(gw__adm_range_parse("bytes=9-1", 100, &a, &b), 0);
    assert_int_equal(gw__adm_range_parse("bytes=a-b", 100, &a, &b), 0);
    assert_int_equal(gw__adm_range_parse("bytes=0-1,5-6", 100, &a, &b), 0);
    assert_int_equal(gw__adm_range_parse("items=0-1", 100, &a, &b), 0);
    assert_int_equal(gw__adm_range_parse("bytes=99999999999999999999999-", 100, &a, &b), 0);
}

static void test_bearer_and_u64(void **state)
{
    uint64_t v = 0;

    (void)state;
    assert_true(gw__adm_bearer_ok("Bearer secret-token", "secret-token", 12));
    assert_true(gw__adm_bearer_ok("bearer   secret-token ", "secret-token", 12));
    assert_false(gw__adm_bearer_ok("Bearer secret-tokem", "secret-token", 12));
    assert_false(gw__adm_bearer_ok("Bearer secret-token2", "secret-token", 12));
    assert_false(gw__adm_bearer_ok("Basic secret-token", "secret-token", 12));
    assert_false(gw__adm_bearer_ok(NULL, "secret-token", 12));
    assert_false(gw__adm_bearer_ok("Bearer ", "", 0));
    assert_true(gw__adm_parse_u64("18446744073709551615", 20, &v));
    assert_true(v == UINT64_MAX);
    assert_false(gw__adm_parse_u64("18446744073709551616", 20, &v));
    assert_false(gw__adm_parse_u64("", 0, &v));
    assert_false(gw__adm_parse_u64("12a", 3, &v));
    assert_false(gw__adm_parse_u64("-1", 2, &v));
}

static struct gw_adm_req *req_with(const char *body, const char *const *query)
{
    struct gw_adm_req *req = gw__adm_req_new();

    assert_non_null(req);
    for (; query && *query; query++)
        assert_int_equal(gw__adm_query_add(req, *query), 0);
    if (body) {
        req->json = cJSON_Parse(body);
        assert_non_null(req->json);
    }
    return req;
}

static void test_args(void **state)
{
    static const char *const q[] = { "id=12", "name=from query", "empty=", "bad=1x", NULL };
    struct gw_adm_req *req = req_with("{\"id\":7,\"sid\":\"8\",\"f\":1.5,\"s\":5,\"nul\":null,"
                                      "\"ids\":[1,\"2\",3],\"badids\":[1,-2]}", q);
    uint64_t id = 0, *ids = NULL;
    int64_t i = -1;
    double d = 0;
    const char *s = NULL;
    size_t n = 0;

    (void)state;
    assert_int_equal(gw__adm_arg_id(req, "id", true, &id), 0);
    assert_true(id == 7); /* the body wins over the query */
    assert_int_equal(gw__adm_arg_id(req, "sid", true, &id), 0);
    assert_true(id == 8); /* decimal strings are ids too */
    assert_int_equal(gw__adm_arg_str(req, "name", true, 64, &s), 0);
    assert_string_equal(s, "from query");
    assert_int_equal(gw__adm_arg_str(req, "name", true, 4, &s), GW_E_VALUE_TOO_LONG);
    assert_string_equal(req->errmsg, "name: longer than 4 bytes");
    assert_int_equal(gw__adm_arg_str(req, "s", false, 10, &s), GW_E_BAD_FIELD);
    assert_string_equal(req->errmsg, "s: must be a string");
    assert_int_equal(gw__adm_arg_id(req, "missing", true, &id), GW_E_MISSING_FIELD);
    assert_string_equal(req->errmsg, "missing: required");
    id = 99;
    assert_int_equal(gw__adm_arg_id(req, "nul", false, &id), 0);
    assert_true(id == 99); /* null is absent */
    assert_int_equal(gw__adm_arg_id(req, "empty", false, &id), 0);
    assert_true(id == 99); /* an empty query value is absent for numbers */
    assert_int_equal(gw__adm_arg_int(req, "bad", false, 0, 10, &i), GW_E_BAD_FIELD);
    assert_string_equal(req->errmsg, "bad: must be an integer");
    assert_int_equal(gw__adm_arg_int(req, "s", false, 0, 4, &i), GW_E_BAD_FIELD);
    assert_string_equal(req->errmsg, "s: must be between 0 and 4");
    assert_int_equal(gw__adm_arg_int(req, "f", false, 0, 4, &i), GW_E_BAD_FIELD);
    assert_int_equal(gw__adm_arg_double(req, "f", true, 0, 2, &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(gw__adm_arg_double(req, "s", true, 0, 2, &d), GW_E_BAD_FIELD);
    assert_int_equal(gw__adm_arg_id_list(req, "ids", true, &ids, &n), 0);
    assert_int_equal(n, 3);
    assert_true(ids[0] == 1 && ids[1] == 2 && ids[2] == 3);
    free(ids);
    assert_int_equal(gw__adm_arg_id_list(req, "badids", true, &ids, &n), GW_E_BAD_FIELD);
    assert_string_equal(req->errmsg, "badids[1]: must be a positive integer id");
    assert_int_equal(gw__adm_arg_id_list(req, "id", true, &ids, &n), GW_E_BAD_FIELD);
    gw__adm_req_free(req);
}

static void test_args_limits(void **state)
{
    char frag[16];
    struct gw_adm_req *req = req_with("{\"big\":9007199254740994,\"neg\":-1,\"zero\":0}",
                                      NULL);
    uint64_t id = 0;

    (void)state;
    assert_int_equal(gw__adm_arg_id(req, "big", true, &id), GW_E_BAD_FIELD);
    assert_int_equal(gw__adm_arg_id(req, "neg", true, &id), GW_E_BAD_FIELD);
    assert_int_equal(gw__adm_arg_id(req, "zero", true, &id), GW_E_BAD_FIELD);
    assert_string_equal(req->errmsg, "zero: must be a positive integer id");
    for (int i = 0; i < GW_ADM_QUERY_MAX; i++) {
        snprintf(frag, sizeof(frag), "k%d=v", i);
        assert_int_equal(gw__adm_query_add(req, frag), 0);
    }
    assert_int_equal(gw__adm_query_add(req, "one=more"), -E2BIG);
    assert_string_equal(gw__adm_query_get(req, "k31"), "v");
    assert_null(gw__adm_query_get(req, "k32"));
    gw__adm_req_free(req);
}

static void test_page(void **state)
{
    static const char *const q[] = { "pageNo=3", "pageSize=4", NULL };
    struct gw_adm_req *req = req_with(NULL, q);
    struct gw_adm_page pg;
    cJSON *out;
    int on_page = 0;

    (void)state;
    assert_int_equal(gw__adm_page_begin(req, &pg), 0);
    for (int i = 0; i < 10; i++)
        if (gw__adm_page_take(&pg)) {
            assert_true(i >= 8);
            cJSON_AddItemToArray(pg.list, cJSON_CreateNumber(i));
            on_page++;
        }
    assert_int_equal(on_page, 2);
    out = gw__adm_page_end(&pg);
    assert_int_equal(cJSON_GetObjectItem(out, "total")->valueint, 10);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "list")), 2);
    cJSON_Delete(out);
    gw__adm_req_free(req);
}

static void test_envelope(void **state)
{
    struct gw_adm_req *req = gw__adm_req_new();

    (void)state;
    assert_int_equal(gw__adm_respond(req, 0, cJSON_CreateTrue()), 0);
    assert_int_equal(req->http_status, 200);
    assert_string_equal(req->resp, "{\"code\":0,\"msg\":\"\",\"data\":true}");
    assert_int_equal(gw__adm_respond(req, GW_E_FIRMWARE_VERSION_DUPLICATE, cJSON_CreateTrue()),
                     0);
    assert_int_equal(req->http_status, 200); /* business errors: HTTP 200, as the reference */
    assert_string_equal(req->resp,
                        "{\"code\":1050008001,\"msg\":\"duplicate product version\",\"data\":null}");
    gw__adm_fail(req, GW_E_MISSING_FIELD, "name: required");
    assert_int_equal(gw__adm_respond(req, GW_E_MISSING_FIELD, NULL), 0);
    assert_int_equal(req->http_status, 400);
    assert_string_equal(req->resp, "{\"code\":400,\"msg\":\"name: required\",\"data\":null}");
    req->errmsg[0] = '\0';
    assert_int_equal(gw__adm_respond(req, GW_E_TIMEOUT, NULL), 0);
    assert_int_equal(req->http_status, 504);
    assert_int_equal(gw__adm_respond(req, GW_E_STORE, NULL), 0);
    assert_int_equal(req->http_status, 500);
    assert_int_equal(gw__adm_respond_code(req, 404, "no such path"), 0);
    assert_int_equal(req->http_status, 404);
    assert_string_equal(req->resp, "{\"code\":404,\"msg\":\"no such path\",\"data\":null}");
    gw__adm_req_free(req);
}

static void test_token_and_url(void **state)
{
    uint8_t key[32];
    char tok[GW_FWURL_TOKEN_LEN + 1], url[256];

    (void)state;
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)i;
    gw_admin_firmware_token(key, 7, 42, tok);
    /* python3: hmac.new(bytes(range(32)), b"7.42", hashlib.sha256).hexdigest() */
    assert_string_equal(tok, "592aa705991a24773c41b5073c673977672101ee1d27a0f669af75799ba8f00e");
    assert_true(gw_admin_firmware_token_ok(key, 7, 42, tok));
    assert_false(gw_admin_firmware_token_ok(key, 7, 43, tok));
    assert_false(gw_admin_firmware_token_ok(key, 7, 42, NULL));
    tok[63] = tok[63] == '0' ? '1' : '0';
    assert_false(gw_admin_firmware_token_ok(key, 7, 42, tok));
    assert_int_equal(gw_admin_firmware_url("http://10.0.0.5:8080/", key, 7, 42, url, sizeof(url)),
                     0);
    assert_string_equal(url, "http://10.0.0.5:8080/ota/firmware/7/42?token="
                             "592aa705991a24773c41b5073c673977672101ee1d27a0f669af75799ba8f00e");
    assert_int_equal(gw_admin_firmware_url("http://h", key, 7, 42, url, 40), -ENOSPC);
    assert_string_equal(url, "");
    assert_int_equal(gw_admin_firmware_url("", key, 7, 42, url, sizeof(url)), -EINVAL);
    assert_int_equal(gw_admin_firmware_url("http://h", key, 0, 42, url, sizeof(url)), -EINVAL);
}

static void test_secret_files(void **state)
{
    char path[300], a[80], b[80];
    uint8_t k1[32], k2[32];
    bool created = false;
    struct stat st;
    int fd;

    (void)state;
    snprintf(path, sizeof(path), "%s/admin.token", tmpdir);
    assert_int_equal(gw__adm_secret_load(path, 32, a, sizeof(a), &created), 0);
    assert_true(created);
    assert_int_equal(strlen(a), 64);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(gw__adm_secret_load(path, 32, b, sizeof(b), &created), 0);
    assert_false(created);
    assert_string_equal(a, b);
    /* an operator's own token (any text) is kept; trailing newline trimmed */
    snprintf(path, sizeof(path), "%s/own.token", tmpdir);
    fd = open(path, O_WRONLY | O_CREAT, 0600);
    assert_true(write(fd, "my own token\n", 13) == 13);
    close(fd);
    assert_int_equal(gw__adm_secret_load(path, 32, a, sizeof(a), NULL), 0);
    assert_string_equal(a, "my own token");
    assert_int_equal(gw__adm_secret_load(path, 32, a, 8, NULL), -EINVAL); /* too long */
    /* download key: created once, reread identically; a malformed file is refused */
    assert_int_equal(gw_admin_download_key_load(tmpdir, k1), 0);
    assert_int_equal(gw_admin_download_key_load(tmpdir, k2), 0);
    assert_memory_equal(k1, k2, 32);
    snprintf(path, sizeof(path), "%s/bad", tmpdir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/bad/download.key", tmpdir);
    fd = open(path, O_WRONLY | O_CREAT, 0600);
    assert_true(write(fd, "xyz\n", 4) == 4);
    close(fd);
    snprintf(path, sizeof(path), "%s/bad", tmpdir);
    assert_int_equal(gw_admin_download_key_load(path, k1), -EINVAL);
}

static void test_blob(void **state)
{
    char dir[300], path[400];
    struct gw_adm_blob *b = NULL;
    char tmp[PATH_MAX];
    struct stat st;

    (void)state;
    snprintf(dir, sizeof(dir), "%s/fw", tmpdir);
    assert_int_equal(mkdir(dir, 0700), 0);
    for (int round = 0; round < 2; round++) { /* the same content twice: one file */
        assert_int_equal(gw__adm_blob_begin(dir, &b), 0);
        assert_int_equal(gw__adm_blob_write(b, "a", 1), 0);
        assert_int_equal(gw__adm_blob_write(b, "bc", 2), 0);
        assert_int_equal(gw__adm_blob_finish(b), 0);
        assert_true(b->size == 3);
        assert_string_equal(b->md5_hex, "900150983cd24fb0d6963f7d28e17f72");
        assert_string_equal(b->sha256_hex,
                            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        snprintf(tmp, sizeof(tmp), "%s", b->tmp_path);
        assert_int_equal(gw__adm_blob_commit(b, dir), 0);
        assert_int_not_equal(stat(tmp, &st), 0); /* the temp file is gone */
    }
    snprintf(path, sizeof(path), "%s/%s", dir,
             "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 3);
    assert_int_equal(gw__adm_blob_begin(dir, &b), 0);
    snprintf(tmp, sizeof(tmp), "%s", b->tmp_path);
    gw__adm_blob_discard(b);
    assert_int_not_equal(stat(tmp, &st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_bearer_and_u64),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_args_limits),
        cmocka_unit_test(test_page),
        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_token_and_url),
        cmocka_unit_test(test_secret_files),
        cmocka_unit_test(test_blob),
    };

    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
