/*
 * log: the error log, gunicorn-shaped lines on stderr or a file:
 *
 *   [2026-11-21 22:42:00 +0000] [1234] [INFO] Listening at: http://0.0.0.0:5000
 *
 * One write(2) per line on an O_APPEND descriptor, so lines from the master
 * and its workers never interleave mid-line. A log file is dup2'd onto
 * stderr, so children and libraries inherit it with no extra plumbing. Run-time errors name the
 * failing syscall and append strerror (drv_log_errno).
 */
#ifndef DRV_LOG_H
#define DRV_LOG_H

#include <sys/types.h>

#include "settings.h"

/*
 * Open the error log: "-" or NULL is stderr, anything else a file opened
 * for appending. Returns 0, or -1 with a one-line reason in err.
 */
int drv_log_open(const char *path, enum drv_loglevel level, char *err,
                 size_t errlen);
/* Reopen the log file (USR1, log rotation). Returns 0 or -errno. */
int drv_log_reopen(void);
/* Hand the log file (if it is one) to the workers' user, so that they can
 * reopen it after a rotation. Returns 0 or -errno. */
int drv_log_chown(uid_t uid, gid_t gid);
/* Whether a message at `level` would be written. */
bool drv_log_enabled(enum drv_loglevel level);

void drv_log(enum drv_loglevel level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Log at error level: "<message>: <syscall>: <strerror(err)>". */
void drv_log_errno(int err, const char *syscall, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define drv_debug(...) drv_log(DRV_LOG_DEBUG, __VA_ARGS__)
#define drv_info(...) drv_log(DRV_LOG_INFO, __VA_ARGS__)
#define drv_warn(...) drv_log(DRV_LOG_WARNING, __VA_ARGS__)
#define drv_error(...) drv_log(DRV_LOG_ERROR, __VA_ARGS__)
#define drv_critical(...) drv_log(DRV_LOG_CRITICAL, __VA_ARGS__)

#endif
