/*
 * notify: drover's systemd glue, the only module that sees libsystemd.
 *
 * Two protocols, both defined by systemd and both usable without it:
 *
 *  - Readiness notification (sd_notify(3)): newline-separated KEY=VALUE
 *    assignments sent as one datagram to the AF_UNIX socket named by
 *    $NOTIFY_SOCKET (a path, or an abstract name written "@name"). With
 *    libsystemd (HAVE_LIBSYSTEMD) the calls go through sd_notify();
 *    without it this module speaks the documented datagram protocol
 *    itself, so the same notifications reach the service manager. When
 *    $NOTIFY_SOCKET is unset every call is a cheap no-op.
 *
 *  - Socket activation (sd_listen_fds(3)): descriptors 3.. passed with
 *    $LISTEN_FDS / $LISTEN_PID / $LISTEN_FDNAMES.
 *
 * Who calls what (the master owns the service state; workers never
 * notify — with NotifyAccess=main systemd would drop their messages):
 *
 *   all workers booted and accepting   drv_notify_ready()
 *   periodically                       drv_notify_status("...")
 *   SIGHUP received                    drv_notify_reloading(), then
 *                                      drv_notify_ready() once the new
 *                                      generation serves
 *   graceful or fast stop begins       drv_notify_stopping()
 *   a new main pid (re-exec, fork)     drv_notify_mainpid(pid)
 *   every drv_watchdog_usec() / 2      drv_notify_watchdog()
 *
 * $NOTIFY_SOCKET is left in the environment (the master notifies many
 * times, and a re-executed image needs it too).
 */
#ifndef DRV_NOTIFY_H
#define DRV_NOTIFY_H

#include <stdint.h>
#include <sys/types.h>

/*
 * Send `state` (e.g. "READY=1\nSTATUS=serving") as one notification.
 * Returns 1 when sent, 0 when $NOTIFY_SOCKET is unset (not running under
 * a service manager: nothing to do), or -errno (-EINVAL for a malformed
 * $NOTIFY_SOCKET, or the failing socket call's errno). Callers log a
 * failure and carry on: a lost notification never stops serving.
 */
int drv_notify(const char *state);

/* drv_notify() with a printf-style state (at most 4 KiB after
 * formatting; longer text is refused with -EMSGSIZE). */
int drv_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "READY=1": start-up or reload finished, every worker accepts. */
int drv_notify_ready(void);

/* "STATUS=<text>": one line for `systemctl status`, printf-style.
 * Newlines in the text are sent as spaces (a newline would start a new
 * assignment). */
int drv_notify_status(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* "RELOADING=1\nMONOTONIC_USEC=<now>": a reload (HUP) has begun; the
 * timestamp is CLOCK_MONOTONIC in microseconds, as Type=notify-reload
 * requires. Send drv_notify_ready() when it is done. */
int drv_notify_reloading(void);

/* "STOPPING=1": shutdown has begun. */
int drv_notify_stopping(void);

/* "MAINPID=<pid>": the service's main process is now `pid`. */
int drv_notify_mainpid(pid_t pid);

/* "WATCHDOG=1": the keep-alive ping for WatchdogSec=. */
int drv_notify_watchdog(void);

/*
 * The watchdog interval in microseconds the service manager expects
 * pings within, or 0 when there is no watchdog for this process
 * (sd_watchdog_enabled(3) semantics: $WATCHDOG_USEC unset, unparsable
 * or 0, or $WATCHDOG_PID set to another pid). Ping at half of it.
 * The variables are left in place.
 */
uint64_t drv_watchdog_usec(void);

/*
 * Socket activation: the descriptors passed to this process, as
 * sd_listen_fds_with_names(3) with unset_environment = 1.
 *
 * When $LISTEN_PID is this pid and $LISTEN_FDS = N > 0, returns N: the
 * descriptors are 3 .. 3+N-1, each is made close-on-exec, and *names
 * (when not NULL) receives a NULL-terminated array of N names from
 * $LISTEN_FDNAMES ("unknown" for missing ones), which the caller frees
 * with drv_listen_names_free(). Returns 0 when nothing was passed to this
 * process, or -errno for malformed variables. In every case $LISTEN_PID,
 * $LISTEN_FDS and $LISTEN_FDNAMES are removed from the environment, so
 * workers and the app's children never see them.
 */
int drv_listen_fds(char ***names);

/* Free an array drv_listen_fds() returned; NULL is fine. */
void drv_listen_names_free(char **names);

/* SD_LISTEN_FDS_START: the first passed descriptor. */
#define DRV_LISTEN_FDS_START 3

#endif
