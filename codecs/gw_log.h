#ifndef GW_LOG_H
#define GW_LOG_H
/*
 * Process-wide logging to stderr: `gw_log(GW_LOG_WARN, "mqtt0", "fmt", ...)`.
 * The level is checked before the arguments are evaluated. A line repeated with the same
 * tag and format within one second is suppressed and counted; the count is printed with the
 * next line that passes. Any thread (one mutex around the write).
 * Codec files never log: they return error codes and their callers log once.
 */
#include <stdarg.h>

enum gw_log_level {
    GW_LOG_ERROR = 0,
    GW_LOG_WARN = 1,
    GW_LOG_INFO = 2,
    GW_LOG_DEBUG = 3,
};

extern volatile int gw_log_threshold; /* messages with level > threshold are dropped */

/* Any thread. Returns -EINVAL for a name other than error|warn|info|debug. */
int gw_log_set_level_name(const char *name);
void gw_log_set_level(enum gw_log_level level);

void gw_log_write(enum gw_log_level level, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define gw_log(level, tag, ...)                                                                   \
    do {                                                                                          \
        if ((int)(level) <= gw_log_threshold)                                                     \
            gw_log_write((level), (tag), __VA_ARGS__);                                            \
    } while (0)

#endif
