/*
 * DESIGN: the crash-consistency driver (issue 3). Runs `crash_tool run` in a child process,
 * kills it with SIGKILL at a random moment while it commits batches, then runs
 * `crash_tool check` on the same store: every invariant must hold, every acknowledged batch
 * must be there, and whole. Repeats GW_CRASH_KILLS times (default 50) on one store, so each
 * run starts from what the previous kill left.
 * Usage: test_crash CRASH_TOOL WORK_DIR   (env GW_CRASH_KILLS, GW_CRASH_SEED)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Starts tool with args; its stdout is returned through *fd. */
static pid_t start(char *const argv[], int *fd)
{
    int p[2];
    pid_t pid;

    if (pipe(p) != 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    *fd = p[0];
    return pid;
}

/* Reads what the child prints for up to timeout_ms (or until EOF), keeping the last
 * "ack N" in *last_ack. line/len carry an unfinished line across calls. */
static void drain(int fd, long long *last_ack, char *line, size_t *len, size_t cap,
                  int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    char buf[4096];

    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        long long left = end - now_ms();
        ssize_t n;

        if (poll(&pfd, 1, left > 0 ? (int)left : 0) <= 0)
            return;
        n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            return;
        for (ssize_t i = 0; i < n; i++) {
            long long v;
            if (buf[i] != '\n') {
                if (*len < cap - 1)
                    line[(*len)++] = buf[i];
                continue;
            }
            line[*len] = '\0';
            if (sscanf(line, "ack %lld", &v) == 1)
                *last_ack = v;
            *len = 0;
        }
    }
}

int main(int argc, char **argv)
{
    const char *env = getenv("GW_CRASH_KILLS");
    int kills = env ? atoi(env) : 50;
    unsigned seed = getenv("GW_CRASH_SEED") ? (unsigned)atoi(getenv("GW_CRASH_SEED"))
                                             : (unsigned)time(NULL);
    char dir[4096];
    long long last_ack = 0;
    int failures = 0, killed_mid = 0;

    if (argc != 3) {
        fprintf(stderr, "usage: %s CRASH_TOOL WORK_DIR\n", argv[0]);
        return 2;
    }
    snprintf(dir, sizeof(dir), "%s/crash-XXXXXX", argv[2]);
    mkdir(argv[2], 0755);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    srand(seed);
    printf("crash test: %d kills, seed %u, store %s\n", kills, seed, dir);
    for (int i = 0; i < kills; i++) {
        char seedarg[32], line[256];
        size_t len = 0;
        char *run_argv[] = { argv[1], "run", dir, seedarg, NULL };
        char *check_argv[] = { argv[1], "check", dir, NULL };
        int fd, status;
        pid_t pid;
        long long ledger = -1, before = last_ack;

        snprintf(seedarg, sizeof(seedarg), "%u", seed + (unsigned)i);
        pid = start(run_argv, &fd);
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        /* Let it commit for a random while (the first run also sets the store up). */
        drain(fd, &last_ack, line, &len, sizeof(line), 20 + rand() % 250);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        drain(fd, &last_ack, line, &len, sizeof(line), 200); /* acks written before the kill */
        close(fd);
        if (!WIFSIGNALED(status)) {
            fprintf(stderr, "kill %d: crash_tool run exited by itself (status %d)\n", i,
                    WEXITSTATUS(status));
            failures++;
            break;
        }
        if (last_ack > before)
            killed_mid++;

        pid = start(check_argv, &fd);
        char out[512] = "";
        ssize_t n, got = 0;
        while ((n = read(fd, out + got, sizeof(out) - 1 - (size_t)got)) > 0)
            got += n;
        out[got] = '\0';
        close(fd);
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
            sscanf(out, "ledger %lld", &ledger) != 1) {
            fprintf(stderr, "kill %d: check failed: %s", i, out);
            failures++;
            break;
        }
        if (ledger < last_ack) {
            fprintf(stderr, "kill %d: acknowledged batch %lld lost (store has %lld)\n", i,
                    last_ack, ledger);
            failures++;
            break;
        }
        last_ack = ledger; /* the next run continues from the store's ledger */
    }
    printf("crash test: %d kills, %d with new acknowledged batches, last batch %lld: %s\n",
           kills, killed_mid, last_ack, failures ? "FAILED" : "ok");
    if (!failures && !getenv("GW_KEEP_TMP")) {
        char cmd[4200];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return failures ? 1 : 0;
}
