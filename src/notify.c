/*
 * notify: sd_notify, sd_watchdog_enabled and sd_listen_fds, through
 * libsystemd when the build found it (HAVE_LIBSYSTEMD), else through this
 * file's own implementation of the protocols as sd_notify(3),
 * sd_watchdog_enabled(3) and sd_listen_fds(3) document them.
 *
 * Both paths put the same bytes on the wire, so the unit tests check
 * either build against a real datagram socket. Nothing here logs: callers
 * get -errno and decide.
 */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#define STATE_MAX 4096

#ifdef HAVE_LIBSYSTEMD

static int send_state(const char *state)
{
    return sd_notify(0, state);
}

uint64_t drv_watchdog_usec(void)
{
    uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

int drv_listen_fds(char ***names)
{
    char **got = NULL;
    int n = sd_listen_fds_with_names(1, &got);
    if (n <= 0 || !names) {
        drv_listen_names_free(n > 0 ? got : NULL);
        got = NULL;
    }
    if (names)
        *names = got;
    return n;
}

#else /* the protocols by hand */

/* A whole decimal number, nothing around it. */
static bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

/* $NOTIFY_SOCKET as a unix address: "/path" or "@abstract". */
static int notify_addr(const char *e, struct sockaddr_un *sun, socklen_t *len)
{
    size_t n = strlen(e);
    if (e[0] != '/' && e[0] != '@')
        return -EAFNOSUPPORT; /* vsock: and the like need libsystemd */
    if (n < 2 || n >= sizeof(sun->sun_path))
        return -EINVAL;
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, e, n);
    if (e[0] == '@')
        sun->sun_path[0] = '\0'; /* abstract: length counts, no NUL */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    return 0;
}

static int send_state(const char *state)
{
    const char *e = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun;
    socklen_t len;
    if (!e)
        return 0;
    int rc = notify_addr(e, &sun, &len);
    if (rc != 0)
        return rc;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    size_t n = strlen(state);
    ssize_t sent;
    do
        sent = sendto(fd, state, n, MSG_NOSIGNAL, (struct sockaddr *)&sun, len);
    while (sent < 0 && errno == EINTR);
    rc = sent < 0 ? -errno : 1;
    close(fd);
    return rc;
}

uint64_t drv_watchdog_usec(void)
{
    uint64_t usec, pid;
    const char *p = getenv("WATCHDOG_PID");
    if (!parse_u64(getenv("WATCHDOG_USEC"), &usec) || usec == 0)
        return 0;
    if (p && (!parse_u64(p, &pid) || pid != (uint64_t)getpid()))
        return 0;
    return usec;
}

/* Split $LISTEN_FDNAMES ("a:b:c") into n names; a missing variable means
 * every name is "unknown", a count that does not match is an error. */
static int split_names(const char *e, int n, char ***out)
{
    int given = 1;
    for (const char *p = e; p && *p; p++)
        given += *p == ':';
    if (e && given != n)
        return -EINVAL;
    char **v = calloc((size_t)n + 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    const char *p = e;
    for (int i = 0; i < n; i++) {
        const char *colon = p ? strchr(p, ':') : NULL;
        size_t len = colon ? (size_t)(colon - p) : p ? strlen(p) : 0;
        v[i] = p ? strndup(p, len) : strdup("unknown");
        if (!v[i]) {
            drv_listen_names_free(v);
            return -ENOMEM;
        }
        p = colon ? colon + 1 : p;
    }
    *out = v;
    return 0;
}

int drv_listen_fds(char ***names)
{
    const char *e_pid = getenv("LISTEN_PID"), *e_fds = getenv("LISTEN_FDS");
    uint64_t pid, count;
    int n = 0;
    if (names)
        *names = NULL;
    if (!e_pid || !e_fds)
        goto out;
    if (!parse_u64(e_pid, &pid) || !parse_u64(e_fds, &count) || count > 1024) {
        n = -EINVAL;
        goto out;
    }
    if (pid != (uint64_t)getpid() || count == 0)
        goto out;
    for (int fd = DRV_LISTEN_FDS_START; fd < DRV_LISTEN_FDS_START + (int)count;
         fd++) {
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
            n = -errno;
            goto out;
        }
    }
    n = (int)count;
    if (names) {
        int rc = split_names(getenv("LISTEN_FDNAMES"), n, names);
        if (rc != 0)
            n = rc;
    }
out:
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return n;
}

#endif /* HAVE_LIBSYSTEMD */

void drv_listen_names_free(char **names)
{
    for (size_t i = 0; names && names[i]; i++)
        free(names[i]);
    free(names);
}

int drv_notify(const char *state)
{
    return send_state(state);
}

static int vnotify(const char *prefix, bool one_line, const char *fmt,
                   va_list ap) __attribute__((format(printf, 3, 0)));

static int vnotify(const char *prefix, bool one_line, const char *fmt,
                   va_list ap)
{
    char state[STATE_MAX];
    size_t plen = strlen(prefix);
    memcpy(state, prefix, plen);
    int n = vsnprintf(state + plen, sizeof(state) - plen, fmt, ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= sizeof(state) - plen)
        return -EMSGSIZE;
    for (char *p = state + plen; one_line && *p; p++)
        if (*p == '\n')
            *p = ' ';
    return send_state(state);
}

int drv_notifyf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vnotify("", false, fmt, ap);
    va_end(ap);
    return rc;
}

int drv_notify_status(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vnotify("STATUS=", true, fmt, ap);
    va_end(ap);
    return rc;
}

int drv_notify_ready(void)
{
    return send_state("READY=1");
}

int drv_notify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return drv_notifyf("RELOADING=1\nMONOTONIC_USEC=%llu",
                       (unsigned long long)ts.tv_sec * 1000000ULL +
                           (unsigned long long)ts.tv_nsec / 1000ULL);
}

int drv_notify_stopping(void)
{
    return send_state("STOPPING=1");
}

int drv_notify_mainpid(pid_t pid)
{
    return drv_notifyf("MAINPID=%ld", (long)pid);
}

int drv_notify_watchdog(void)
{
    return send_state("WATCHDOG=1");
}
