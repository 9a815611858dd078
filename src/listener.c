/*
 * listener: socket(), bind() and listen() for each bind address, or the
 * sockets a service manager passed (socket activation).
 *
 * Socket activation follows gunicorn: when $LISTEN_FDS passes sockets to
 * this process and no bind address names a descriptor (fd://N), the
 * passed sockets are the listeners and the TCP/unix bind addresses are
 * ignored (the .socket unit owns the addresses). When bind addresses do
 * name descriptors, they are opened as given and passed sockets that none
 * of them names are closed. Either way an inherited socket is adopted as
 * it is: never bound, never listen()ed again with our backlog.
 */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"

/* TCP_DEFER_ACCEPT: how long the kernel holds a silent connection. */
#define DEFER_ACCEPT_SECONDS 1
#include "log.h"
#include "notify.h"

static void describe(struct drv_listener *l)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(l->fd, (struct sockaddr *)&ss, &len) != 0)
        return;
    l->family = ss.ss_family;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, l->host, sizeof(l->host));
        l->port = ntohs(a->sin_port);
        snprintf(l->name, sizeof(l->name), "http://%s:%d", l->host, l->port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, l->host, sizeof(l->host));
        l->port = ntohs(a->sin6_port);
        snprintf(l->name, sizeof(l->name), "http://[%s]:%d", l->host, l->port);
    } else if (ss.ss_family == AF_UNIX) {
        struct sockaddr_un *a = (struct sockaddr_un *)&ss;
        snprintf(l->name, sizeof(l->name), "unix:%s", a->sun_path);
        snprintf(l->host, sizeof(l->host), "localhost");
    }
}

static int set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -1;
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static int open_tcp(const struct drv_addr *a, int backlog,
                    struct drv_listener **ls, size_t *n, char *err,
                    size_t errlen)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", a->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "bind %s:%d: cannot resolve host: %s", a->host,
                 a->port, gai_strerror(rc));
        return -1;
    }
    int result = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family,
                        ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        const char *call = "socket";
        int one = 1;
        if (fd < 0)
            goto fail;
        call = "setsockopt";
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
            goto fail;
        if (ai->ai_family == AF_INET6 &&
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
            goto fail;
        call = "bind";
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
            goto fail;
        call = "listen";
        if (listen(fd, backlog) != 0)
            goto fail;
        /* Wake a worker only once the request's first bytes are in, so
         * the worker that takes a connection can serve it at once (see
         * drv_conn_accepted). An optimisation: failure is harmless. */
        int defer = DEFER_ACCEPT_SECONDS;
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
        *ls = drv_xrealloc(*ls, (*n + 1) * sizeof(**ls));
        (*ls)[*n] = (struct drv_listener){.fd = fd, .owned = true};
        describe(&(*ls)[(*n)++]);
        continue;
    fail:
        snprintf(err, errlen, "bind %s:%d: %s: %s", a->host, a->port, call,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        goto out;
    }
    result = 0;
out:
    freeaddrinfo(res);
    return result;
}

/* A socket file nobody accepts on is left over from a dead server. */
static bool stale_socket(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
        return false;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    bool stale = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 &&
                 errno == ECONNREFUSED;
    close(fd);
    return stale;
}

static int open_unix(const struct drv_addr *a, int backlog,
                     struct drv_listener *l, char *err, size_t errlen)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", a->path);
    if (stale_socket(a->path))
        unlink(a->path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const char *call = "socket";
    if (fd < 0)
        goto fail;
    call = "bind";
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
        goto fail;
    call = "listen";
    if (listen(fd, backlog) != 0)
        goto fail;
    *l = (struct drv_listener){.fd = fd, .owned = true,
                               .unix_path = drv_xstrdup(a->path)};
    describe(l);
    return 0;
fail:
    snprintf(err, errlen, "bind unix:%s: %s: %s", a->path, call,
             strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static int adopt_fd(const struct drv_addr *a, struct drv_listener *l, char *err,
                    size_t errlen)
{
    int type = 0, listening = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(a->fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
        snprintf(err, errlen, "bind fd://%d: not a socket: %s", a->fd,
                 strerror(errno));
        return -1;
    }
    len = sizeof(listening);
    if (type != SOCK_STREAM ||
        getsockopt(a->fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 ||
        !listening) {
        snprintf(err, errlen, "bind fd://%d: not a listening stream socket",
                 a->fd);
        return -1;
    }
    if (set_nonblock(a->fd) != 0) {
        snprintf(err, errlen, "bind fd://%d: fcntl: %s", a->fd,
                 strerror(errno));
        return -1;
    }
    *l = (struct drv_listener){.fd = a->fd};
    describe(l);
    return 0;
}

static bool names_fd(const struct drv_addr *addrs, size_t naddrs, int fd)
{
    for (size_t i = 0; i < naddrs; i++)
        if (addrs[i].kind == DRV_ADDR_FD && (fd < 0 || addrs[i].fd == fd))
            return true;
    return false;
}

static int open_addrs(const struct drv_addr *addrs, size_t naddrs, int backlog,
                      struct drv_listener **ls, size_t *count, char *err,
                      size_t errlen)
{
    for (size_t i = 0; i < naddrs; i++) {
        const struct drv_addr *a = &addrs[i];
        int rc;
        if (a->kind == DRV_ADDR_TCP) {
            rc = open_tcp(a, backlog, ls, count, err, errlen);
        } else {
            *ls = drv_xrealloc(*ls, (*count + 1) * sizeof(**ls));
            rc = a->kind == DRV_ADDR_UNIX
                     ? open_unix(a, backlog, &(*ls)[*count], err, errlen)
                     : adopt_fd(a, &(*ls)[*count], err, errlen);
            if (rc == 0)
                (*count)++;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Every socket the service manager passed becomes a listener. */
static int adopt_passed(int passed, char **names, struct drv_listener **ls,
                        size_t *count, char *err, size_t errlen)
{
    *ls = drv_xrealloc(*ls, (*count + (size_t)passed) * sizeof(**ls));
    for (int i = 0; i < passed; i++) {
        struct drv_addr a = {.kind = DRV_ADDR_FD,
                             .fd = DRV_LISTEN_FDS_START + i};
        if (adopt_fd(&a, &(*ls)[*count], err, errlen) != 0)
            return -1;
        (*count)++;
        drv_debug("socket activation: fd %d (%s) is %s", a.fd,
                  names ? names[i] : "unknown", (*ls)[*count - 1].name);
    }
    return 0;
}

/* Passed sockets no fd://N names: nobody would accept on them. */
static void close_unnamed(int passed, const struct drv_addr *addrs,
                          size_t naddrs)
{
    for (int fd = DRV_LISTEN_FDS_START; fd < DRV_LISTEN_FDS_START + passed;
         fd++) {
        if (names_fd(addrs, naddrs, fd))
            continue;
        drv_warn("socket activation: fd %d is not named by any fd:// bind; "
                 "closing it",
                 fd);
        close(fd);
    }
}

int drv_listeners_open(const struct drv_addr *addrs, size_t naddrs, int backlog,
                       struct drv_listener **out, size_t *n, char *err,
                       size_t errlen)
{
    struct drv_listener *ls = NULL;
    size_t count = 0;
    char **names = NULL;
    int rc;
    int passed = drv_listen_fds(&names);
    if (passed < 0) {
        snprintf(err, errlen,
                 "socket activation: bad LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES: "
                 "%s",
                 strerror(-passed));
        return -1;
    }
    if (passed > 0 && !names_fd(addrs, naddrs, -1)) {
        drv_info("socket activation: serving on the %d socket(s) passed by "
                 "the service manager; bind addresses are ignored",
                 passed);
        rc = adopt_passed(passed, names, &ls, &count, err, errlen);
    } else {
        close_unnamed(passed, addrs, naddrs);
        rc = open_addrs(addrs, naddrs, backlog, &ls, &count, err, errlen);
    }
    drv_listen_names_free(names);
    if (rc != 0) {
        /* Passed sockets not adopted yet are ours to close too. */
        if (passed > 0 && !names_fd(addrs, naddrs, -1))
            for (int fd = DRV_LISTEN_FDS_START + (int)count;
                 fd < DRV_LISTEN_FDS_START + passed; fd++)
                close(fd);
        drv_listeners_close(ls, count, true);
        return -1;
    }
    *out = ls;
    *n = count;
    return 0;
}

int drv_listeners_bind(const struct drv_addr *addrs, size_t naddrs,
                       int backlog, struct drv_listener **out, size_t *n,
                       char *err, size_t errlen)
{
    struct drv_listener *ls = NULL;
    size_t count = 0;
    if (open_addrs(addrs, naddrs, backlog, &ls, &count, err, errlen) != 0) {
        drv_listeners_close(ls, count, true);
        return -1;
    }
    *out = ls;
    *n = count;
    return 0;
}

void drv_listeners_close(struct drv_listener *l, size_t n, bool unlink_paths)
{
    for (size_t i = 0; i < n; i++) {
        if (l[i].fd >= 0)
            close(l[i].fd);
        if (l[i].unix_path && unlink_paths)
            unlink(l[i].unix_path);
        free(l[i].unix_path);
    }
    free(l);
}
