/*
 * address: the bind address syntax shared by --bind, YAML and DROVER_BIND.
 *
 *   HOST:PORT      127.0.0.1:5000, localhost:8000, 0.0.0.0:5000
 *   [V6]:PORT      [::]:5000, [::1]:8080
 *   :PORT          all IPv4 interfaces (0.0.0.0)
 *   HOST           port 5000 (gunicorn uses 8000; drover serves on 5000)
 *   unix:PATH      a unix stream socket; PATH absolute or relative
 *   fd://N         an inherited, already listening socket (N >= 0)
 *
 * Parsing is purely syntactic: host names are resolved when listening.
 */
#ifndef DRV_ADDRESS_H
#define DRV_ADDRESS_H

#include <stddef.h>

enum drv_addr_kind {
    DRV_ADDR_TCP,
    DRV_ADDR_UNIX,
    DRV_ADDR_FD,
};

struct drv_addr {
    enum drv_addr_kind kind;
    char host[256];     /* TCP: host without brackets, never empty */
    int port;           /* TCP: 0..65535 (0 = kernel picks) */
    char path[108];     /* UNIX: socket path, NUL-terminated */
    int fd;             /* FD: descriptor number */
};

/*
 * Parse `spec` into *out. Returns 0, or -1 with a short reason (no source
 * name, no newline) in err, e.g. "port '99999' is out of range 0-65535".
 */
int drv_addr_parse(const char *spec, struct drv_addr *out, char *err,
                   size_t errlen);

/* Format *a back into bind syntax (for logs). Returns buf. */
char *drv_addr_format(const struct drv_addr *a, char *buf, size_t len);

#endif
