/*
 * DESIGN: the logger. One mutex serialises lines on stderr and the repeat suppression state
 * (the last tag+format seen, when, how many were dropped). Any thread.
 */
#include "gw_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

volatile int gw_log_threshold = GW_LOG_INFO;

static pthread_mutex_t gw_log_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *gw_log_last_fmt;
static char gw_log_last_tag[32];
static struct timespec gw_log_last_time;
static unsigned long gw_log_suppressed;

static const char *const gw_log_names[] = { "error", "warn", "info", "debug" };

void gw_log_set_level(enum gw_log_level level)
{
    gw_log_threshold = (int)level;
}

int gw_log_set_level_name(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (name && strcmp(name, gw_log_names[i]) == 0) {
            gw_log_set_level((enum gw_log_level)i);
            return 0;
        }
    }
    return -EINVAL;
}

void gw_log_write(enum gw_log_level level, const char *tag, const char *fmt, ...)
{
    struct timespec now;
    struct tm tm;
    char stamp[32];
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &now);
    pthread_mutex_lock(&gw_log_lock);
    if (fmt == gw_log_last_fmt && strncmp(tag ? tag : "", gw_log_last_tag,
                                          sizeof(gw_log_last_tag) - 1) == 0 &&
        now.tv_sec - gw_log_last_time.tv_sec < 1) {
        gw_log_suppressed++;
        pthread_mutex_unlock(&gw_log_lock);
        return;
    }
    if (gw_log_suppressed)
        fprintf(stderr, "(%lu similar lines suppressed)\n", gw_log_suppressed);
    gw_log_suppressed = 0;
    gw_log_last_fmt = fmt;
    snprintf(gw_log_last_tag, sizeof(gw_log_last_tag), "%s", tag ? tag : "");
    gw_log_last_time = now;

    gmtime_r(&now.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ %-5s [%s] ", stamp, now.tv_nsec / 1000000L,
            gw_log_names[level < 0 || level > 3 ? 0 : level], tag ? tag : "-");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    pthread_mutex_unlock(&gw_log_lock);
}
