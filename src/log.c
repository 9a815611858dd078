/*
 * log: error log lines with a timestamp, the pid and the level.
 * The level check comes first so disabled debug lines cost one compare.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char *log_path; /* NULL: stderr */
static enum drv_loglevel log_level = DRV_LOG_INFO;

static const char *const level_tags[] = {
    [DRV_LOG_DEBUG] = "DEBUG",     [DRV_LOG_INFO] = "INFO",
    [DRV_LOG_WARNING] = "WARNING", [DRV_LOG_ERROR] = "ERROR",
    [DRV_LOG_CRITICAL] = "CRITICAL",
};

static int open_log(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

int drv_log_open(const char *path, enum drv_loglevel level, char *err,
                 size_t errlen)
{
    log_level = level;
    if (!path || strcmp(path, "-") == 0)
        return 0;
    int fd = open_log(path);
    if (fd < 0) {
        snprintf(err, errlen, "error log '%s': %s", path, strerror(errno));
        return -1;
    }
    free(log_path);
    log_path = strdup(path);
    /* The file becomes stderr, so whatever else writes there (Python
     * tracebacks, a crashing library) lands in the same log. */
    dup2(fd, STDERR_FILENO);
    close(fd);
    return 0;
}

int drv_log_chown(uid_t uid, gid_t gid)
{
    if (log_path && fchown(STDERR_FILENO, uid, gid) != 0)
        return -errno;
    return 0;
}

int drv_log_reopen(void)
{
    if (!log_path)
        return 0;
    int fd = open_log(log_path);
    if (fd < 0)
        return -errno;
    /* dup2 keeps the descriptor number, so nothing holding it goes stale. */
    dup2(fd, STDERR_FILENO);
    close(fd);
    return 0;
}

bool drv_log_enabled(enum drv_loglevel level)
{
    return level >= log_level;
}

static void vlog(enum drv_loglevel level, int err, const char *syscall,
                 const char *fmt, va_list ap)
{
    char line[4096];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "[%Y-%m-%d %H:%M:%S %z] ", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, "[%d] [%s] ",
                          (int)getpid(), level_tags[level]);
    int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    n = m < 0 ? n : n + (size_t)m;
    if (n < sizeof(line) && syscall) {
        m = snprintf(line + n, sizeof(line) - n, ": %s: %s", syscall,
                     strerror(err));
        n = m < 0 ? n : n + (size_t)m;
    }
    if (n >= sizeof(line) - 1) {
        n = sizeof(line) - 5;
        memcpy(line + n, "...", 3);
        n += 3;
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w; /* nowhere left to report a failing error log */
}

void drv_log(enum drv_loglevel level, const char *fmt, ...)
{
    if (level < log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, 0, NULL, fmt, ap);
    va_end(ap);
}

void drv_log_errno(int err, const char *syscall, const char *fmt, ...)
{
    if (DRV_LOG_ERROR < log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(DRV_LOG_ERROR, err, syscall, fmt, ap);
    va_end(ap);
}
