/*
 * DESIGN: what a second process needs from the gateway's store: the mosquitto auth plugin
 * looks up one device's secret per CONNECT, and the gateway prepares the directory so that
 * a broker which dropped privileges to another user can open it (LIBRARIES "Mosquitto
 * plugin b) Privileges").
 *
 * Threads: the lookup runs on whatever thread calls it (the broker's main thread); each call
 * is one short read transaction, begun and ended here, so no snapshot outlives the call
 * (the writer can always reuse old pages) and a map grown by the writer is adopted at the
 * next begin (gw_store_txn_begin: MDB_MAP_RESIZED -> mdb_env_set_mapsize(env, 0), retry).
 * With MDB_NOTLS, begin/abort per lookup costs about 0.23 us against 0.16 us for
 * renew/reset of a kept txn (measured), a difference lost in the ~16 us of an MQTT auth, and
 * it keeps no txn whose end gw_store_close would have to know about.
 *
 * prepare_shared_dir changes ownership and modes only when running as root (a gateway and a
 * broker of the same non-root user share the files already). It never follows a symlink
 * for the database files: the directory is writable by the broker's group.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "gw_log.h"
#include "gw_store.h"

#define SHARED_DIR_MODE 02770 /* rwxrws---: setgid, so new files inherit the group */
#define SHARED_FILE_MODE 0660

int gw_store_ro_device_secret(struct gw_store *store, const char *pk, const char *dn,
                              char *secret_out, size_t len)
{
    struct gw_txn *txn = NULL;
    struct gw_device d;
    int rc;

    if (!store || !pk || !dn || !secret_out || len == 0)
        return -EINVAL;
    secret_out[0] = '\0';
    rc = gw_store_txn_begin(store, false, &txn);
    if (rc)
        return rc;
    rc = gw_store_device_get_by_key(txn, pk, dn, &d);
    gw_store_txn_abort(txn); /* d is a copy: nothing points into the map any more */
    if (rc)
        goto out;
    size_t n = strlen(d.device_secret);
    if (n >= len) {
        rc = -ENOSPC;
        goto out;
    }
    memcpy(secret_out, d.device_secret, n + 1);
out:
    /* The row copy holds the secret: do not leave it on the stack. */
    mbedtls_platform_zeroize(&d, sizeof(d));
    return rc;
}

/* Gives fd (opened by the caller) group gid and mode; refuses anything but type want. */
static int share_fd(int fd, mode_t want_type, gid_t gid, mode_t mode, const char *what)
{
    struct stat st;

    if (fstat(fd, &st) != 0)
        return -errno;
    if ((st.st_mode & S_IFMT) != want_type) {
        gw_log(GW_LOG_ERROR, "store", "%s: not a %s", what,
               want_type == S_IFDIR ? "directory" : "regular file");
        return -EINVAL;
    }
    if (st.st_gid != gid && fchown(fd, (uid_t)-1, gid) != 0)
        return -errno;
    if ((st.st_mode & 07777) != mode && fchmod(fd, mode) != 0)
        return -errno;
    return 0;
}

static int lookup_group(const char *group, gid_t *gid)
{
    struct group gr, *found = NULL;
    char buf[4096];
    int rc = getgrnam_r(group, &gr, buf, sizeof(buf), &found);

    if (rc != 0)
        return -rc;
    if (found == NULL) {
        gw_log(GW_LOG_ERROR, "store", "group %s does not exist", group);
        return -ENOENT;
    }
    *gid = gr.gr_gid;
    return 0;
}

int gw_store_prepare_shared_dir(const char *dir, const char *group)
{
    static const char *const files[] = { "data.mdb", "lock.mdb" };
    gid_t gid;
    int dfd, rc;

    if (!dir || !group || !group[0])
        return -EINVAL;
    if (geteuid() != 0)
        return 0;
    rc = lookup_group(group, &gid);
    if (rc)
        return rc;
    if (mkdir(dir, SHARED_DIR_MODE) != 0 && errno != EEXIST) {
        rc = -errno;
        gw_log(GW_LOG_ERROR, "store", "mkdir %s: %s", dir, strerror(errno));
        return rc;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = -errno;
        goto err_log;
    }
    rc = share_fd(dfd, S_IFDIR, gid, SHARED_DIR_MODE, dir);
    for (size_t i = 0; rc == 0 && i < sizeof(files) / sizeof(files[0]); i++) {
        int fd = openat(dfd, files[i], O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            if (errno != ENOENT) /* not created yet: the setgid dir will give the group */
                rc = -errno;
            continue;
        }
        rc = share_fd(fd, S_IFREG, gid, SHARED_FILE_MODE, files[i]);
        close(fd);
    }
    close(dfd);
    if (rc)
        goto err_log;
    return 0;

err_log:
    gw_log(GW_LOG_ERROR, "store", "cannot share %s with group %s: %s", dir, group,
           strerror(-rc));
    return rc;
}
