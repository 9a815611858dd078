/*
 * reexec: exec() ourselves again, keeping the listening sockets.
 */
#include "reexec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"

#define LISTEN_VAR "DROVER_LISTEN_FDS"
#define METRICS_VAR "DROVER_METRICS_FDS"
#define INHERIT_VAR "DROVER_INHERIT_FD"

static char **saved_argv;
/* The directory drover started in: relative paths in argv (--config,
 * --chdir, an app .so) mean what they meant then, so the new image starts
 * there too, even after --chdir. */
static char *start_dir;

void drv_reexec_save_argv(int argc, char **argv)
{
    (void)argc; /* argv is NULL-terminated */
    saved_argv = argv;
    start_dir = getcwd(NULL, 0);
}

const char *drv_reexec_start_dir(void)
{
    return start_dir;
}

static int set_cloexec(int fd, bool on)
{
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0)
        return -1;
    flags = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
    return fcntl(fd, F_SETFD, flags);
}

/* Clear the listeners' close-on-exec flags and name them in `var`
 * ("5+,6": '+' marks a socket drover bound). Returns 0, or -errno with
 * the flags as they were. */
static int hand_over(const char *var, struct drv_listener *l, size_t n)
{
    struct drv_buf list = {0};
    size_t opened = 0;
    int rc = 0;
    for (; opened < n; opened++) {
        if (set_cloexec(l[opened].fd, false) != 0) {
            rc = -errno;
            goto out_restore;
        }
        char num[24];
        int len = snprintf(num, sizeof(num), "%s%d%s", opened ? "," : "",
                           l[opened].fd, l[opened].owned ? "+" : "");
        drv_buf_append(&list, num, (size_t)len);
    }
    drv_buf_append(&list, "", 1);
    if (setenv(var, list.base, 1) != 0)
        rc = -errno;
out_restore:
    while (rc != 0 && opened > 0)
        set_cloexec(l[--opened].fd, true);
    drv_buf_free(&list);
    return rc;
}

/* Undo hand_over. */
static void take_back(const char *var, struct drv_listener *l, size_t n)
{
    unsetenv(var);
    for (size_t i = 0; i < n; i++)
        set_cloexec(l[i].fd, true);
}

int drv_reexec(struct drv_listener *l, size_t n, struct drv_listener *ml,
               size_t nm, int keep_fd)
{
    if (!saved_argv)
        return -EINVAL;
    int rc = hand_over(LISTEN_VAR, l, n);
    if (rc != 0)
        return rc;
    if (nm && (rc = hand_over(METRICS_VAR, ml, nm)) != 0)
        goto out_listeners;
    if (keep_fd >= 0) {
        char num[24];
        snprintf(num, sizeof(num), "%d", keep_fd);
        if (setenv(INHERIT_VAR, num, 1) != 0 ||
            set_cloexec(keep_fd, false) != 0) {
            rc = -errno;
            goto out_unset;
        }
    }
    int here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (start_dir && chdir(start_dir) != 0) {
        rc = -errno;
        goto out_back;
    }
    execv("/proc/self/exe", saved_argv);
    rc = -errno;
out_back:
    if (here >= 0) {
        if (fchdir(here) != 0) {
            /* Stay where we are: the exec error is what the caller needs. */
        }
        close(here);
    }
    if (keep_fd >= 0)
        set_cloexec(keep_fd, true);
out_unset:
    unsetenv(INHERIT_VAR);
    take_back(METRICS_VAR, ml, nm);
out_listeners:
    take_back(LISTEN_VAR, l, n);
    return rc;
}

pid_t drv_reexec_check(void)
{
    if (!saved_argv)
        return -EINVAL;
    size_t argc = 0;
    while (saved_argv[argc])
        argc++;
    char **argv = drv_xcalloc(argc + 2, sizeof(*argv));
    memcpy(argv, saved_argv, argc * sizeof(*argv));
    argv[argc] = (char *)"--check-config";
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0)
            dup2(null, STDOUT_FILENO);
        /* Relative paths on the command line (--config, --chdir) mean
         * what they meant at start-up. */
        if (start_dir && chdir(start_dir) != 0)
            _exit(127);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    int saved = errno;
    free(argv);
    return pid < 0 ? -saved : pid;
}

/* A descriptor number from the environment; -1 if absent or not open. */
static int parse_fd(const char *s, char **end)
{
    errno = 0;
    long v = strtol(s, end, 10);
    if (errno != 0 || *end == s || v < 0 || v > 1 << 20 ||
        fcntl((int)v, F_GETFD) < 0)
        return -1;
    return (int)v;
}

static char **take_list(const char *var, size_t *n, bool **owned)
{
    *n = 0;
    *owned = NULL;
    const char *v = getenv(var);
    if (!v)
        return NULL;
    char *copy = drv_xstrdup(v);
    unsetenv(var);
    size_t cap = 1;
    for (const char *p = copy; *p; p++)
        cap += *p == ',';
    char **out = drv_xcalloc(cap, sizeof(*out));
    *owned = drv_xcalloc(cap, sizeof(**owned));
    for (char *p = copy; *p;) {
        char *end;
        int fd = parse_fd(p, &end);
        bool ours = *end == '+';
        end += ours;
        if (fd >= 0) {
            set_cloexec(fd, true); /* ours again: not for the app's children */
            char addr[32];
            snprintf(addr, sizeof(addr), "fd://%d", fd);
            (*owned)[*n] = ours;
            out[(*n)++] = drv_xstrdup(addr);
        }
        p = *end == ',' ? end + 1 : end + strlen(end);
    }
    free(copy);
    return out;
}

char **drv_reexec_listen_fds(size_t *n, bool **owned)
{
    return take_list(LISTEN_VAR, n, owned);
}

char **drv_reexec_metrics_fds(size_t *n, bool **owned)
{
    return take_list(METRICS_VAR, n, owned);
}

int drv_reexec_inherited_fd(void)
{
    const char *v = getenv(INHERIT_VAR);
    if (!v)
        return -1;
    char *end;
    int fd = parse_fd(v, &end);
    unsetenv(INHERIT_VAR);
    if (fd >= 0)
        set_cloexec(fd, true);
    return fd;
}
