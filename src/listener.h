/*
 * listener: the listening sockets, opened before anything else.
 *
 * Every listener is nonblocking and close-on-exec. TCP listeners set
 * SO_REUSEADDR (and IPV6_V6ONLY for IPv6, so [::]:P and 0.0.0.0:P can both
 * be bound). A unix socket path that holds a stale socket (nobody accepts
 * on it) is replaced; a path holding anything else is an error. fd://N
 * adopts an inherited socket as it is: it must be a listening stream
 * socket, and it is not listen()ed again.
 *
 * Socket activation (systemd, systemd-socket-activate): when $LISTEN_PID
 * is this process and $LISTEN_FDS passes sockets, drv_listeners_open()
 * uses them instead of binding, unless some address is an fd://N, in
 * which case exactly the addresses given are opened. The LISTEN_*
 * variables are removed from the environment either way.
 */
#ifndef DRV_LISTENER_H
#define DRV_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "address.h"

struct drv_listener {
    int fd;
    int family;      /* AF_INET, AF_INET6, AF_UNIX */
    char name[300];  /* "http://127.0.0.1:5000", "unix:/run/x.sock" */
    char host[64];   /* numeric address the socket is bound to */
    int port;        /* actual port (after binding port 0) */
    char *unix_path; /* to unlink at shutdown; NULL if not ours */
    bool owned;      /* bound by drover (now or before a reload), not passed
                        in by systemd or fd://: ours to shut down */
};

/*
 * Open one listener per address (a host name resolving to several
 * addresses opens one per address), or adopt the sockets passed by socket
 * activation (see above; `addrs` is then ignored unless it names an
 * fd://N). Logs through log.h, so the error log must be open. Returns 0
 * and an allocated array in *out / *n, or -1 with one line in err (naming
 * the address and the failing call); nothing stays open on failure.
 */
int drv_listeners_open(const struct drv_addr *addrs, size_t naddrs,
                       int backlog, struct drv_listener **out, size_t *n,
                       char *err, size_t errlen);

/* The same without socket activation: exactly the addresses given
 * (the master's metrics listener, which a service manager's sockets are
 * never for). */
int drv_listeners_bind(const struct drv_addr *addrs, size_t naddrs,
                       int backlog, struct drv_listener **out, size_t *n,
                       char *err, size_t errlen);

/* Close every listener (unlinking unix socket paths it created when
 * `unlink_paths`) and free the array. */
void drv_listeners_close(struct drv_listener *l, size_t n, bool unlink_paths);

#endif
