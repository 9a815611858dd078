/*
 * address: parse and format bind addresses (syntax in address.h).
 *
 * The parser is purely syntactic and allocation-free: it decides which of
 * the forms a spec is, splits host from port and checks that the pieces
 * fit the fixed-size fields of struct drv_addr. Names are resolved only
 * when the listener is opened, so "localhost:8000" and "db:5432" parse
 * the same way. For gunicorn compatibility "unix://PATH" is accepted as a
 * spelling of "unix:PATH" and "tcp://HOST:PORT" as one of "HOST:PORT".
 *
 * Error texts are short reasons without the spec or its source; the
 * caller (settings.c) prefixes both.
 */
#include "address.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_PORT 5000

static int fail(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (err && len) {
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Parse a non-negative decimal no larger than `max` from s[0..n).
 * Returns 0, -1 if it is not all digits, -2 if it is too large. */
static int parse_uint(const char *s, size_t n, long max, long *out)
{
    long v = 0;

    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v <= max) /* stop growing once too large, keep scanning */
            v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return -2;
    *out = v;
    return 0;
}

static int parse_port(const char *s, int *port, char *err, size_t len)
{
    size_t n = strlen(s);
    long v;
    int rc;

    if (n == 0)
        return fail(err, len, "missing port after ':'");
    rc = parse_uint(s, n, 65535, &v);
    if (rc == -1)
        return fail(err, len, "port '%s' is not a number", s);
    if (rc == -2)
        return fail(err, len, "port '%s' is out of range 0-65535", s);
    *port = (int)v;
    return 0;
}

static int set_host(struct drv_addr *out, const char *h, size_t n, char *err,
                    size_t len)
{
    if (n == 0)
        return fail(err, len, "empty host");
    if (n >= sizeof(out->host))
        return fail(err, len, "host is too long (%zu bytes, the limit is %zu)",
                    n, sizeof(out->host) - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c <= ' ' || c == 0x7f || c == '/' || c == '[' || c == ']')
            return fail(err, len, "invalid character in host '%.*s'", (int)n,
                        h);
    }
    memcpy(out->host, h, n);
    out->host[n] = '\0';
    return 0;
}

static int parse_unix(const char *path, struct drv_addr *out, char *err,
                      size_t len)
{
    size_t n = strlen(path);

    if (n == 0)
        return fail(err, len, "unix socket path is empty");
    if (n >= sizeof(out->path))
        return fail(err, len,
                    "unix socket path is too long (%zu bytes, the limit is "
                    "%zu)",
                    n, sizeof(out->path) - 1);
    out->kind = DRV_ADDR_UNIX;
    memcpy(out->path, path, n + 1);
    return 0;
}

static int parse_fd(const char *num, struct drv_addr *out, char *err,
                    size_t len)
{
    long v;

    if (parse_uint(num, strlen(num), INT_MAX, &v) != 0)
        return fail(err, len, "fd:// needs a non-negative integer, not '%s'",
                    num);
    out->kind = DRV_ADDR_FD;
    out->fd = (int)v;
    return 0;
}

/* "[v6]" or "[v6]:PORT" */
static int parse_bracketed(const char *spec, struct drv_addr *out, char *err,
                           size_t len)
{
    const char *close = strchr(spec, ']');

    if (!close)
        return fail(err, len, "unclosed '[' in IPv6 address");
    if (set_host(out, spec + 1, (size_t)(close - spec - 1), err, len) < 0)
        return -1;
    if (close[1] == '\0') {
        out->port = DEFAULT_PORT;
        return 0;
    }
    if (close[1] != ':')
        return fail(err, len, "expected ':PORT' after ']', not '%s'",
                    close + 1);
    return parse_port(close + 2, &out->port, err, len);
}

/* "HOST:PORT", ":PORT" or "HOST" */
static int parse_tcp(const char *spec, struct drv_addr *out, char *err,
                     size_t len)
{
    const char *colon = strchr(spec, ':');

    out->kind = DRV_ADDR_TCP;
    if (spec[0] == '[')
        return parse_bracketed(spec, out, err, len);
    if (!colon) {
        out->port = DEFAULT_PORT;
        return set_host(out, spec, strlen(spec), err, len);
    }
    if (strchr(colon + 1, ':'))
        return fail(err, len,
                    "an IPv6 address needs brackets, e.g. '[::1]:5000'");
    if (colon == spec)
        strcpy(out->host, "0.0.0.0");
    else if (set_host(out, spec, (size_t)(colon - spec), err, len) < 0)
        return -1;
    return parse_port(colon + 1, &out->port, err, len);
}

int drv_addr_parse(const char *spec, struct drv_addr *out, char *err,
                   size_t len)
{
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    if (!spec || spec[0] == '\0')
        return fail(err, len, "empty address");
    if (starts_with(spec, "unix://"))
        return parse_unix(spec + 7, out, err, len);
    if (starts_with(spec, "unix:"))
        return parse_unix(spec + 5, out, err, len);
    if (starts_with(spec, "fd://"))
        return parse_fd(spec + 5, out, err, len);
    if (starts_with(spec, "tcp://"))
        spec += 6;
    else if (strstr(spec, "://"))
        return fail(err, len,
                    "unsupported scheme (use HOST:PORT, unix:PATH "
                    "or fd://N)");
    return parse_tcp(spec, out, err, len);
}

char *drv_addr_format(const struct drv_addr *a, char *buf, size_t len)
{
    if (!buf || len == 0)
        return buf;
    switch (a->kind) {
    case DRV_ADDR_TCP:
        if (strchr(a->host, ':'))
            snprintf(buf, len, "[%s]:%d", a->host, a->port);
        else
            snprintf(buf, len, "%s:%d", a->host, a->port);
        break;
    case DRV_ADDR_UNIX:
        snprintf(buf, len, "unix:%s", a->path);
        break;
    case DRV_ADDR_FD:
        snprintf(buf, len, "fd://%d", a->fd);
        break;
    default:
        snprintf(buf, len, "?");
        break;
    }
    return buf;
}
