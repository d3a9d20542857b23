/*
 * Unit tests of storage/store_readonly.c: the plugin's device-secret lookup on a store opened
 * read-only while another process writes (new devices, a grown map), and the directory
 * sharing the gateway applies before it starts a broker that drops privileges.
 * The writer runs in a forked child: LMDB forbids opening one env twice in a process.
 */
#include <errno.h>
#include <grp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "gw_error.h"
#include "gw_store.h"

#define SECRET2 "0123456789abcdef0123456789abcdef"

struct fixture {
    char dir[512]; /* a fresh directory; the store lives in dir/db */
    char db[600];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/ro-XXXXXX", GW_TEST_TMP_DIR);
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof(f->db), "%s/db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[700];
    /* Test-only cleanup of a directory this test created. */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Creates the store with product pk1, devices dev1 (generated secret) and dev2 (SECRET2). */
static void make_store(const char *db, uint64_t map_mb)
{
    struct gw_store *s;
    struct gw_txn *t;
    struct gw_product p = { .product_key = "pk1", .name = "p" };
    struct gw_device d1 = { .device_name = "dev1" }, d2 = { .device_name = "dev2",
                                                            .device_secret = SECRET2 };
    assert_int_equal(gw_store_open(db, map_mb, &s), 0);
    assert_int_equal(gw_store_txn_begin(s, true, &t), 0);
    assert_int_equal(gw_store_product_create(t, &p, 1), 0);
    d1.product_id = d2.product_id = p.id;
    assert_int_equal(gw_store_device_create(t, &d1, 1), 0);
    assert_int_equal(gw_store_device_create(t, &d2, 1), 0);
    assert_int_equal(gw_store_txn_commit(t), 0);
    gw_store_close(s);
}

static void test_secret_lookup(void **state)
{
    struct fixture *f = *state;
    struct gw_store *ro;
    char secret[GW_SECRET_MAX + 1];
    make_store(f->db, 8);
    assert_int_equal(gw_store_open_readonly(f->db, &ro), 0);

    assert_int_equal(gw_store_ro_device_secret(ro, "pk1", "dev2", secret, sizeof(secret)), 0);
    assert_string_equal(secret, SECRET2);
    assert_int_equal(gw_store_ro_device_secret(ro, "pk1", "dev1", secret, sizeof(secret)), 0);
    assert_int_equal(strlen(secret), 32); /* generated: 32 lowercase hex */
    assert_int_not_equal(strcmp(secret, SECRET2), 0);

    assert_int_equal(gw_store_ro_device_secret(ro, "pk1", "dev3", secret, sizeof(secret)),
                     GW_E_NOT_FOUND);
    assert_string_equal(secret, "");
    assert_int_equal(gw_store_ro_device_secret(ro, "pk2", "dev1", secret, sizeof(secret)),
                     GW_E_NOT_FOUND);
    assert_int_equal(gw_store_ro_device_secret(ro, "pk1", "", secret, sizeof(secret)),
                     GW_E_NOT_FOUND);
    /* Exactly fits: 32 chars + NUL; one byte less is refused, not truncated. */
    assert_int_equal(gw_store_ro_device_secret(ro, "pk1", "dev2", secret, 33), 0);
    assert_int_equal(gw_store_ro_device_secret(ro, "pk1", "dev2", secret, 32), -ENOSPC);
    assert_string_equal(secret, "");
    assert_int_equal(gw_store_ro_device_secret(NULL, "pk1", "dev2", secret, 33), -EINVAL);
    assert_int_equal(gw_store_ro_device_secret(ro, NULL, "dev2", secret, 33), -EINVAL);
    assert_int_equal(gw_store_ro_device_secret(ro, "pk1", "dev2", secret, 0), -EINVAL);

    /* The read-only handle cannot write. */
    struct gw_txn *t;
    assert_int_equal(gw_store_txn_begin(ro, true, &t), -EINVAL);
    gw_store_close(ro);
}

/* Child: opens the same store read-write with a bigger map and adds "late" plus enough
 * devices to outgrow the reader's 1 MiB map. Exits 0 on success. */
static void writer_child(const char *db)
{
    struct gw_store *s;
    struct gw_txn *t;
    struct gw_product p;
    struct gw_device d = { .device_name = "late", .device_secret = SECRET2 };
    if (gw_store_open(db, 64, &s) || gw_store_txn_begin(s, true, &t) ||
        gw_store_product_get_by_key(t, "pk1", &p))
        _exit(1);
    d.product_id = p.id;
    if (gw_store_device_create(t, &d, 2))
        _exit(2);
    for (int i = 0; i < 8000; i++) {
        struct gw_device b = { .product_id = p.id };
        snprintf(b.device_name, sizeof(b.device_name), "bulk-%d", i);
        if (gw_store_device_create(t, &b, 2))
            _exit(3);
    }
    if (gw_store_txn_commit(t))
        _exit(4);
    gw_store_close(s);
    _exit(0);
}

static void test_sees_writer_and_grown_map(void **state)
{
    struct fixture *f = *state;
    struct gw_store *ro;
    struct gw_txn *t;
    struct gw_store_stats st;
    char secret[GW_SECRET_MAX + 1];
    int status;
    make_store(f->db, 1);
    assert_int_equal(gw_store_open_readonly(f->db, &ro), 0);
    assert_int_equal(gw_store_ro_device_secret(ro, "pk1", "late", secret, sizeof(secret)),
                     GW_E_NOT_FOUND);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        writer_child(f->db);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* Visible at once, although the data now lies beyond the map this reader opened with
     * (the lookup had to adopt the new size after MDB_MAP_RESIZED). */
    assert_int_equal(gw_store_ro_device_secret(ro, "pk1", "late", secret, sizeof(secret)), 0);
    assert_string_equal(secret, SECRET2);
    assert_int_equal(gw_store_ro_device_secret(ro, "pk1", "bulk-7999", secret, sizeof(secret)),
                     0);
    assert_int_equal(gw_store_ro_device_secret(ro, "pk1", "dev2", secret, sizeof(secret)), 0);
    assert_string_equal(secret, SECRET2);
    assert_int_equal(gw_store_txn_begin(ro, false, &t), 0);
    assert_int_equal(gw_store_stats(t, &st), 0);
    gw_store_txn_abort(t);
    assert_true(st.map_used > (1u << 20)); /* the test did outgrow the first map */
    assert_true(st.map_size >= (64u << 20));
    assert_int_equal(st.devices, 8003);
    gw_store_close(ro);
}

static void test_open_readonly_missing(void **state)
{
    struct fixture *f = *state;
    struct gw_store *ro = NULL;
    char empty[600];
    assert_int_not_equal(gw_store_open_readonly(f->db, &ro), 0); /* no directory */
    assert_null(ro);
    snprintf(empty, sizeof(empty), "%s/empty", f->dir);
    assert_int_equal(mkdir(empty, 0700), 0);
    assert_int_not_equal(gw_store_open_readonly(empty, &ro), 0); /* no store in it */
    assert_null(ro);
}

static void assert_shared(const char *path, gid_t gid, mode_t mode)
{
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_gid, gid);
    assert_int_equal(st.st_mode & 07777, mode);
}

static void test_prepare_shared_dir(void **state)
{
    struct fixture *f = *state;
    struct group *gr = getgrnam("mosquitto");
    char path[700];
    if (geteuid() != 0 || gr == NULL) {
        skip(); /* needs root and the mosquitto group (the conformance test covers the rest) */
        return;
    }
    gid_t gid = gr->gr_gid;
    /* Worst case: a gateway under umask 022 gets 0700 dir and 0640 files. */
    mode_t old = umask(022);
    make_store(f->db, 8);
    umask(old);
    assert_int_equal(gw_store_prepare_shared_dir(f->db, "mosquitto"), 0);
    assert_shared(f->db, gid, 02770);
    snprintf(path, sizeof(path), "%s/data.mdb", f->db);
    assert_shared(path, gid, 0660);
    snprintf(path, sizeof(path), "%s/lock.mdb", f->db);
    assert_shared(path, gid, 0660);
    assert_int_equal(gw_store_prepare_shared_dir(f->db, "mosquitto"), 0); /* idempotent */
    assert_shared(path, gid, 0660);

    /* A missing directory is created shared. */
    snprintf(path, sizeof(path), "%s/new", f->dir);
    assert_int_equal(gw_store_prepare_shared_dir(path, "mosquitto"), 0);
    assert_shared(path, gid, 02770);

    assert_int_equal(gw_store_prepare_shared_dir(f->db, "no-such-group-iotgw"), -ENOENT);
    assert_int_equal(gw_store_prepare_shared_dir(NULL, "mosquitto"), -EINVAL);
}

static void test_prepare_refuses_symlink(void **state)
{
    struct fixture *f = *state;
    char victim[700], dir[700], link[800];
    if (geteuid() != 0 || getgrnam("mosquitto") == NULL) {
        skip();
        return;
    }
    /* Someone in the broker's group replaced data.mdb with a link to another file: the
     * gateway (root) must not chmod/chown the link's target. */
    snprintf(victim, sizeof(victim), "%s/victim", f->dir);
    FILE *fp = fopen(victim, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(chmod(victim, 0600), 0);
    snprintf(dir, sizeof(dir), "%s/d", f->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(link, sizeof(link), "%s/data.mdb", dir);
    assert_int_equal(symlink(victim, link), 0);
    assert_int_equal(gw_store_prepare_shared_dir(dir, "mosquitto"), -ELOOP);
    assert_shared(victim, 0, 0600);
}

static void test_prepare_noop_unless_root(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    if (geteuid() != 0) {
        /* Not root: must change nothing and succeed. */
        assert_int_equal(gw_store_prepare_shared_dir(f->dir, "mosquitto"), 0);
        return;
    }
    assert_int_equal(chmod(f->dir, 0755), 0); /* so the unprivileged euid may look */
    assert_int_equal(seteuid(65534), 0);      /* nobody */
    int rc = gw_store_prepare_shared_dir(f->dir, "mosquitto");
    assert_int_equal(seteuid(0), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(stat(f->dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(st.st_gid, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_secret_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sees_writer_and_grown_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_readonly_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepare_shared_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepare_refuses_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepare_noop_unless_root, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
