/*
 * DESIGN: the private mosquitto of an MQTT adapter (broker: "spawn").
 *
 * Owns: <data_dir>/broker/{mosquitto.conf,mosquitto.log,mosquitto.pid} and the broker child
 * process. The config is rewritten at every start (it carries the gateway secret and the
 * plugin path of this build). The child runs in its own process group so a terminal's Ctrl-C
 * reaches only the gateway, which then stops the broker in order.
 *
 * Threads: start/stop run on the adapter owner's thread; one supervisor thread waits for the
 * child (waitid with WNOWAIT, so the pid stays reserved as a zombie until it is reaped under
 * the lock: stop never signals a recycled pid) and restarts it with backoff.
 *
 * Invariants: b->pid != 0 exactly while a child exists that nobody reaped; only the
 * supervisor reaps after start returned; stop is the only place that signals during shutdown.
 */
#include "mqtt_broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gw_error.h"
#include "gw_log.h"
#include "gw_util.h"

extern char **environ;

#define BROKER_READY_TIMEOUT_MS 10000
#define BROKER_READY_POLL_MS 20
#define BROKER_STOP_TIMEOUT_MS 5000
#define BROKER_BACKOFF_MIN_MS 500
#define BROKER_BACKOFF_MAX_MS 30000
#define BROKER_STABLE_MS 30000 /* a run this long resets the backoff */
#define BROKER_LOG_ROTATE_BYTES (4 * 1024 * 1024)

struct gw__mqtt_broker {
    char *tag, *data_dir, *host, *plugin_path, *db_dir, *secret;
    char *dir, *conf_path, *log_path, *pid_path;
    int port;
    int queue_mb;
    void (*on_exit)(void *ctx);
    void (*on_ready)(void *ctx);
    void *ctx;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* stop → supervisor (backoff wait); supervisor → stop (reaped) */
    pid_t pid;           /* under lock */
    bool stopping;       /* under lock */
    bool thread_started; /* owner thread only */
    bool sup_done;       /* under lock: the supervisor left its loop (child reaped) */
    uint64_t restarts;   /* under lock */
    pthread_t thread;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void deadline_ts(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* ---- secret and plugin path ---- */

static bool hex64(const char *s, size_t len)
{
    if (len != GW_MQTT_SECRET_HEX_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

static int secret_read(const char *path, char out[GW_MQTT_SECRET_HEX_LEN + 1])
{
    char buf[160];
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n < 0) {
        rc = -errno;
        goto out_close;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    if (!hex64(buf, (size_t)n)) {
        rc = GW_E_CONFIG;
        goto out_close;
    }
    memcpy(out, buf, GW_MQTT_SECRET_HEX_LEN);
    out[GW_MQTT_SECRET_HEX_LEN] = '\0';
    struct stat st;
    /* The secret opens every topic of the broker: keep it private to the gateway's user. */
    if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0)
        (void)fchmod(fd, 0600);
out_close:
    close(fd);
    return rc;
}

int gw__mqtt_secret_load(const char *data_dir, char out[GW_MQTT_SECRET_HEX_LEN + 1])
{
    char *path = path_join(data_dir, "broker.secret");
    char hex[GW_MQTT_SECRET_HEX_LEN + 2];
    int rc, fd;

    if (!path)
        return -ENOMEM;
    rc = secret_read(path, out);
    if (rc != -ENOENT)
        goto out;
    rc = gw_random_hex(hex, GW_MQTT_SECRET_HEX_LEN / 2);
    if (rc != 0)
        goto out;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = errno == EEXIST ? secret_read(path, out) : -errno; /* lost a race: use theirs */
        goto out;
    }
    hex[GW_MQTT_SECRET_HEX_LEN] = '\n';
    if (write(fd, hex, GW_MQTT_SECRET_HEX_LEN + 1) != GW_MQTT_SECRET_HEX_LEN + 1 ||
        fsync(fd) != 0) {
        rc = errno ? -errno : -EIO;
        close(fd);
        unlink(path);
        goto out;
    }
    close(fd);
    memcpy(out, hex, GW_MQTT_SECRET_HEX_LEN);
    out[GW_MQTT_SECRET_HEX_LEN] = '\0';
    rc = 0;
out:
    free(path);
    return rc;
}

int gw__mqtt_plugin_path(char *buf, size_t len)
{
    const char *env = getenv("IOTGW_PLUGIN");
    int n;

    if (env && env[0]) {
        n = snprintf(buf, len, "%s", env);
    } else {
        char exe[PATH_MAX];
        ssize_t r = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (r <= 0)
            return -errno;
        exe[r] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        n = snprintf(buf, len, "%s/iotgw_auth.so", exe);
    }
    if (n < 0 || (size_t)n >= len)
        return -ENAMETOOLONG;
    if (buf[0] != '/')
        return -EINVAL; /* mosquitto resolves relative plugin paths against its own cwd */
    return access(buf, R_OK) == 0 ? 0 : -ENOENT;
}

/* ---- create / destroy ---- */

/* A value that can go on one line of mosquitto.conf (no line break to inject a directive). */
static bool conf_value_ok(const char *s)
{
    return s && s[0] && strpbrk(s, "\r\n") == NULL;
}

int gw__mqtt_broker_create(const struct gw__mqtt_broker_opts *o, struct gw__mqtt_broker **out)
{
    struct gw__mqtt_broker *b;

    *out = NULL;
    if (!o || !conf_value_ok(o->tag) || !o->data_dir || !conf_value_ok(o->host) || o->port <= 0 ||
        o->port > 65535 || !conf_value_ok(o->plugin_path) || !conf_value_ok(o->db_dir) ||
        !conf_value_ok(o->gateway_secret) || o->queue_mb <= 0 || o->queue_mb > 2047)
        return -EINVAL;
    b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->tag = strdup(o->tag);
    b->data_dir = strdup(o->data_dir);
    b->host = strdup(o->host);
    b->plugin_path = strdup(o->plugin_path);
    b->db_dir = strdup(o->db_dir);
    b->secret = strdup(o->gateway_secret);
    b->dir = path_join(o->data_dir, "broker");
    b->conf_path = b->dir ? path_join(b->dir, "mosquitto.conf") : NULL;
    b->log_path = b->dir ? path_join(b->dir, "mosquitto.log") : NULL;
    b->pid_path = b->dir ? path_join(b->dir, "mosquitto.pid") : NULL;
    b->port = o->port;
    b->queue_mb = o->queue_mb;
    b->on_exit = o->on_exit;
    b->on_ready = o->on_ready;
    b->ctx = o->ctx;
    pthread_mutex_init(&b->lock, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&b->cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (!b->tag || !b->data_dir || !b->host || !b->plugin_path || !b->db_dir || !b->secret ||
        !b->dir || !b->conf_path || !b->log_path || !b->pid_path) {
        gw__mqtt_broker_destroy(b);
        return -ENOMEM;
    }
    *out = b;
    return 0;
}

void gw__mqtt_broker_destroy(struct gw__mqtt_broker *b)
{
    if (!b)
        return;
    gw__mqtt_broker_stop(b);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
    if (b->secret)
        memset(b->secret, 0, strlen(b->secret));
    free(b->tag);
    free(b->data_dir);
    free(b->host);
    free(b->plugin_path);
    free(b->db_dir);
    free(b->secret);
    free(b->dir);
    free(b->conf_path);
    free(b->log_path);
    free(b->pid_path);
    free(b);
}

/* ---- config, log, stale broker ---- */

/*
 * True when a process of another user can reach path: every ancestor directory searchable
 * by others (and the file itself readable when want_read). Started as root, mosquitto drops
 * to user mosquitto before it loads the plugin and opens the store, so both must be
 * reachable that way.
 */
static bool reachable_by_others(const char *path, bool want_read)
{
    char buf[PATH_MAX];
    struct stat st;
    char *slash;

    if (!realpath(path, buf))
        return false;
    if (want_read && (stat(buf, &st) != 0 || !(st.st_mode & S_IROTH)))
        return false;
    while ((slash = strrchr(buf, '/')) != NULL) {
        if (slash == buf)
            slash[1] = '\0';
        else
            *slash = '\0';
        if (stat(buf, &st) != 0 || !(st.st_mode & S_IXOTH))
            return false;
        if (slash == buf)
            break;
    }
    return true;
}

static int write_conf(struct gw__mqtt_broker *b)
{
    /* Fallback when the broker could not reach the plugin or the store after dropping to
     * user mosquitto (a checkout under /root, say): keep it root, and say so. */
    bool as_root = geteuid() == 0 && (!reachable_by_others(b->plugin_path, true) ||
                                      !reachable_by_others(b->db_dir, false));

    char *tmp = path_join(b->dir, "mosquitto.conf.tmp");
    int rc = 0;
    FILE *f;

    if (!tmp)
        return -ENOMEM;
    /* 0600: the file holds the gateway secret; mosquitto reads it before dropping root. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    f = fdopen(fd, "w");
    if (!f) {
        rc = -errno;
        close(fd);
        goto out;
    }
    fprintf(f,
            "# Written by iotgw at every start of adapter \"%s\"; edits are overwritten.\n"
            "per_listener_settings false\n"
            "listener %d %s\n"
            "allow_anonymous false\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S\n"
            "set_tcp_nodelay true\n"
            "# The gateway is one subscriber for every device: a burst it takes longer to store\n"
            "# than devices take to send waits here. A count bound (it was 10000) made the\n"
            "# broker drop device reports it had acknowledged; bound the bytes instead. The\n"
            "# count is huge, not 0 (\"no maximum\"): with 0, mosquitto 2.0.11 disconnects a\n"
            "# client whose SUBSCRIBE the ACL denies (\"Bad socket read/write\").\n"
            "max_queued_messages 100000000\n"
            "max_queued_bytes %lld\n"
            "plugin %s\n"
            "plugin_opt_db_path %s\n"
            "plugin_opt_gateway_user %s\n"
            "plugin_opt_gateway_secret %s\n"
            "# exit when the gateway dies, so no device report is acknowledged and then lost\n"
            "plugin_opt_exit_with_gateway 1\n"
            "%s",
            b->tag, b->port, b->host, (long long)b->queue_mb * 1048576, b->plugin_path, b->db_dir, GW_MQTT_GATEWAY_USER, b->secret,
            as_root ? "# plugin or store not reachable by user mosquitto: stay root\nuser root\n"
                    : "");
    if (as_root)
        gw_log(GW_LOG_WARN, b->tag, "%s or %s is not reachable by user mosquitto (a parent "
               "directory without o+x): the broker keeps running as root", b->plugin_path,
               b->db_dir);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = -errno;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, b->conf_path) != 0)
        rc = -errno;
    if (rc != 0)
        unlink(tmp);
out:
    free(tmp);
    return rc;
}

/* Opens the broker log for appending, rotating it once it grew past a few MiB. */
static int open_log(struct gw__mqtt_broker *b)
{
    struct stat st;
    if (stat(b->log_path, &st) == 0 && st.st_size > BROKER_LOG_ROTATE_BYTES) {
        char *old = path_join(b->dir, "mosquitto.log.1");
        if (old) {
            (void)rename(b->log_path, old);
            free(old);
        }
    }
    int fd = open(b->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    return fd < 0 ? -errno : fd;
}

/* The last non-empty line of the broker log into buf (for error messages). */
static void log_tail(struct gw__mqtt_broker *b, char *buf, size_t len)
{
    char tmp[1024];
    buf[0] = '\0';
    int fd = open(b->log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t end = lseek(fd, 0, SEEK_END);
    off_t start = end > (off_t)sizeof(tmp) - 1 ? end - (off_t)sizeof(tmp) + 1 : 0;
    ssize_t n = pread(fd, tmp, sizeof(tmp) - 1, start);
    close(fd);
    if (n <= 0)
        return;
    while (n > 0 && (tmp[n - 1] == '\n' || tmp[n - 1] == '\r'))
        n--;
    tmp[n] = '\0';
    const char *line = strrchr(tmp, '\n');
    line = line ? line + 1 : tmp;
    size_t l = strlen(line) < len - 1 ? strlen(line) : len - 1;
    memcpy(buf, line, l);
    buf[l] = '\0';
}

static void write_pid_file(struct gw__mqtt_broker *b, pid_t pid)
{
    int fd = open(b->pid_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    dprintf(fd, "%ld\n", (long)pid);
    close(fd);
}

/*
 * A gateway killed with SIGKILL leaves its broker running on the port. Stop it when the pid
 * file names a process whose command line still carries our config path.
 */
static void stop_stale(struct gw__mqtt_broker *b)
{
    char buf[4096];
    long pid = 0;
    FILE *f = fopen(b->pid_path, "re");
    if (!f)
        return;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    if (pid <= 1 || pid == (long)getpid())
        return;
    snprintf(buf, sizeof(buf), "/proc/%ld/cmdline", pid);
    int fd = open(buf, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    bool ours = false;
    buf[n] = '\0';
    for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1) {
        if (strcmp(buf + i, b->conf_path) == 0)
            ours = true;
    }
    if (!ours)
        return;
    gw_log(GW_LOG_WARN, b->tag, "stopping broker pid %ld left over by a previous run", pid);
    kill((pid_t)pid, SIGTERM);
    for (int waited = 0; waited < BROKER_STOP_TIMEOUT_MS; waited += BROKER_READY_POLL_MS) {
        if (kill((pid_t)pid, 0) != 0)
            return;
        sleep_ms(BROKER_READY_POLL_MS);
    }
    kill((pid_t)pid, SIGKILL);
}

/* ---- spawning and readiness ---- */

static int resolve(struct gw__mqtt_broker *b, struct sockaddr_storage *ss, socklen_t *sl)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%d", b->port);
    int rc = getaddrinfo(b->host, port, &hints, &ai);
    if (rc != 0) {
        hints.ai_flags = AI_NUMERICSERV; /* "localhost" */
        rc = getaddrinfo(b->host, port, &hints, &ai);
    }
    if (rc != 0 || !ai)
        return -EINVAL;
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sl = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* 0 when the port can be bound now, -EADDRINUSE when someone else listens there. */
static int port_free(struct gw__mqtt_broker *b)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int one = 1, rc;
    if ((rc = resolve(b, &ss, &sl)) != 0)
        return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    rc = bind(fd, (struct sockaddr *)&ss, sl) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static bool port_accepts(struct gw__mqtt_broker *b)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (resolve(b, &ss, &sl) != 0)
        return false;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = connect(fd, (struct sockaddr *)&ss, sl) == 0;
    close(fd);
    return ok;
}

static int spawn_child(struct gw__mqtt_broker *b, pid_t *pid_out)
{
    const char *exe = getenv("IOTGW_MOSQUITTO");
    char *argv[] = {(char *)(exe && exe[0] ? exe : "mosquitto"), "-c", b->conf_path, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    int logfd, rc;

    logfd = open_log(b);
    if (logfd < 0)
        return logfd;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, logfd, 1);
    posix_spawn_file_actions_adddup2(&fa, logfd, 2);
    /* Library fds without O_CLOEXEC (sockets, LMDB) must not leak into the broker. */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    rc = posix_spawnp(pid_out, argv[0], &fa, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    close(logfd);
    if (rc != 0)
        return -rc;
    write_pid_file(b, *pid_out);
    return 0;
}

/* true when the child has exited (not reaped: WNOWAIT keeps the pid reserved). */
static bool child_exited(pid_t pid, bool block)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    int flags = WEXITED | WNOWAIT | (block ? 0 : WNOHANG);
    while (waitid(P_PID, (id_t)pid, &si, flags) != 0) {
        if (errno != EINTR)
            return true; /* ECHILD: someone reaped it; treat as gone */
    }
    return si.si_pid == pid;
}

/* Reaps b->pid under the lock and returns its wait status. */
static int reap(struct gw__mqtt_broker *b)
{
    int st = 0;
    pthread_mutex_lock(&b->lock);
    if (b->pid > 0) {
        while (waitpid(b->pid, &st, 0) < 0 && errno == EINTR) {
        }
        b->pid = 0;
        pthread_cond_broadcast(&b->cond);
    }
    pthread_mutex_unlock(&b->lock);
    return st;
}

static void describe_exit(int st, char *buf, size_t len)
{
    if (WIFEXITED(st))
        snprintf(buf, len, "exit code %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "signal %d", WTERMSIG(st));
    else
        snprintf(buf, len, "status 0x%x", (unsigned)st);
}

/*
 * Spawns and waits until the port accepts. Returns 0 with b->pid set, or an error with no
 * child left (reaped).
 */
static int launch(struct gw__mqtt_broker *b)
{
    char why[64], tail[512];
    pid_t pid;
    int rc = spawn_child(b, &pid);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, b->tag, "cannot run mosquitto: %s", strerror(-rc));
        return rc;
    }
    pthread_mutex_lock(&b->lock);
    b->pid = pid;
    pthread_mutex_unlock(&b->lock);
    for (int64_t t0 = now_ms(); now_ms() - t0 < BROKER_READY_TIMEOUT_MS;) {
        if (child_exited(pid, false)) {
            describe_exit(reap(b), why, sizeof(why));
            log_tail(b, tail, sizeof(tail));
            gw_log(GW_LOG_ERROR, b->tag, "mosquitto exited at start (%s): %s (log %s)", why, tail,
                   b->log_path);
            return GW_E_BROKER;
        }
        if (port_accepts(b))
            return 0;
        pthread_mutex_lock(&b->lock);
        bool stopping = b->stopping;
        pthread_mutex_unlock(&b->lock);
        if (stopping)
            return GW_E_SHUTDOWN; /* b->pid stays set: stop() signals it, supervise reaps */
        sleep_ms(BROKER_READY_POLL_MS);
    }
    gw_log(GW_LOG_ERROR, b->tag, "mosquitto did not accept on %s:%d within %d ms (log %s)", b->host,
           b->port, BROKER_READY_TIMEOUT_MS, b->log_path);
    kill(pid, SIGKILL);
    child_exited(pid, true);
    reap(b);
    return GW_E_TIMEOUT;
}

/* ---- supervisor ---- */

/* Waits ms or until stop; returns true when stopping. */
static bool backoff_wait(struct gw__mqtt_broker *b, int64_t ms)
{
    struct timespec ts;
    deadline_ts(&ts, ms);
    pthread_mutex_lock(&b->lock);
    while (!b->stopping) {
        if (pthread_cond_timedwait(&b->cond, &b->lock, &ts) == ETIMEDOUT)
            break;
    }
    bool stopping = b->stopping;
    pthread_mutex_unlock(&b->lock);
    return stopping;
}

static void *supervise(void *arg)
{
    struct gw__mqtt_broker *b = arg;
    int64_t backoff = BROKER_BACKOFF_MIN_MS;
    int64_t started = now_ms();
    char why[64], tail[512];

    for (;;) {
        pthread_mutex_lock(&b->lock);
        pid_t pid = b->pid;
        pthread_mutex_unlock(&b->lock);
        if (pid > 0) {
            child_exited(pid, true);
            pthread_mutex_lock(&b->lock);
            bool stopping = b->stopping;
            pthread_mutex_unlock(&b->lock);
            int st = reap(b);
            if (stopping)
                break;
            describe_exit(st, why, sizeof(why));
            log_tail(b, tail, sizeof(tail));
            gw_log(GW_LOG_ERROR, b->tag, "mosquitto died (%s): %s", why, tail);
            if (b->on_exit)
                b->on_exit(b->ctx);
            if (now_ms() - started >= BROKER_STABLE_MS)
                backoff = BROKER_BACKOFF_MIN_MS;
        }
        gw_log(GW_LOG_WARN, b->tag, "restarting mosquitto in %lld ms", (long long)backoff);
        if (backoff_wait(b, backoff))
            break;
        backoff = backoff * 2 > BROKER_BACKOFF_MAX_MS ? BROKER_BACKOFF_MAX_MS : backoff * 2;
        if (launch(b) != 0)
            continue;
        started = now_ms();
        pthread_mutex_lock(&b->lock);
        b->restarts++;
        pthread_mutex_unlock(&b->lock);
        gw_log(GW_LOG_INFO, b->tag, "mosquitto restarted (pid %ld)", (long)gw__mqtt_broker_pid(b));
        if (b->on_ready)
            b->on_ready(b->ctx);
    }
    pthread_mutex_lock(&b->lock);
    b->sup_done = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

int gw__mqtt_broker_start(struct gw__mqtt_broker *b)
{
    int rc;

    if (b->thread_started)
        return -EALREADY;
    if (mkdir(b->dir, 0700) != 0 && errno != EEXIST) {
        rc = -errno;
        gw_log(GW_LOG_ERROR, b->tag, "cannot create %s: %s", b->dir, strerror(-rc));
        return rc;
    }
    rc = write_conf(b);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, b->tag, "cannot write %s: %s", b->conf_path, strerror(-rc));
        return rc;
    }
    stop_stale(b);
    rc = port_free(b);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, b->tag, "cannot listen on %s:%d: %s", b->host, b->port, strerror(-rc));
        return rc;
    }
    rc = launch(b);
    if (rc != 0)
        return rc;
    rc = pthread_create(&b->thread, NULL, supervise, b);
    if (rc != 0) {
        pthread_mutex_lock(&b->lock);
        pid_t pid = b->pid;
        pthread_mutex_unlock(&b->lock);
        kill(pid, SIGKILL);
        child_exited(pid, true);
        reap(b);
        return -rc;
    }
    b->thread_started = true;
    gw_log(GW_LOG_INFO, b->tag, "mosquitto listening on %s:%d (pid %ld, log %s)", b->host, b->port,
           (long)b->pid, b->log_path);
    return 0;
}

void gw__mqtt_broker_stop(struct gw__mqtt_broker *b)
{
    struct timespec ts;
    pid_t termed = 0;
    int64_t term_at = 0;

    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stopping = true;
    pthread_cond_broadcast(&b->cond);
    /* Poll rather than signal once: a restart in progress may spawn a child right now. */
    while (b->thread_started && !b->sup_done) {
        if (b->pid > 0 && b->pid != termed) {
            kill(b->pid, SIGTERM);
            termed = b->pid;
            term_at = now_ms();
        } else if (b->pid > 0 && now_ms() - term_at >= BROKER_STOP_TIMEOUT_MS) {
            gw_log(GW_LOG_WARN, b->tag, "mosquitto ignored SIGTERM for %d ms: killing",
                   BROKER_STOP_TIMEOUT_MS);
            kill(b->pid, SIGKILL);
            term_at = now_ms();
        }
        deadline_ts(&ts, 50);
        pthread_cond_timedwait(&b->cond, &b->lock, &ts);
    }
    pthread_mutex_unlock(&b->lock);
    if (b->thread_started) {
        pthread_join(b->thread, NULL);
        b->thread_started = false;
        unlink(b->pid_path);
    }
}

pid_t gw__mqtt_broker_pid(struct gw__mqtt_broker *b)
{
    pthread_mutex_lock(&b->lock);
    pid_t pid = b->pid;
    pthread_mutex_unlock(&b->lock);
    return pid;
}

uint64_t gw__mqtt_broker_restarts(struct gw__mqtt_broker *b)
{
    pthread_mutex_lock(&b->lock);
    uint64_t n = b->restarts;
    pthread_mutex_unlock(&b->lock);
    return n;
}
