/*
 * accesslog: compiles the format into a list of ops, then renders entries;
 * the JSON format is one fixed writer instead of ops.
 *
 * Both escapers copy runs of plain bytes with one append each, so a line
 * of ordinary text costs a handful of appends, not one per byte.
 */
#include "accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum op_kind { OP_TEXT, OP_ATOM, OP_REQ_HEADER, OP_RESP_HEADER };

struct op {
    enum op_kind kind;
    char atom;
    char *text; /* OP_TEXT: literal; *_HEADER: lower-case name */
    size_t len;
};

struct drv_accesslog {
    struct op *ops;
    size_t nops;
    bool json; /* the format "json": no ops */
    int fd;
    char *path; /* NULL: stdout */
    struct drv_buf line;
    /* The JSON time's second and zone, formatted once per second. */
    struct {
        time_t sec;
        bool valid;
        char stamp[32]; /* "2026-11-21T22:42:00" */
        char zone[8];   /* "+01:00" */
    } clock;
};

static const char atoms[] = "hlutrmUqHsBbfaTMDLpR";

static void add_op(struct drv_accesslog *log, struct op op)
{
    log->ops = drv_xrealloc(log->ops, (log->nops + 1) * sizeof(*log->ops));
    log->ops[log->nops++] = op;
}

static void add_text(struct drv_accesslog *log, const char *p, size_t n)
{
    if (n)
        add_op(log, (struct op){.kind = OP_TEXT, .text = drv_xstrndup(p, n),
                                .len = n});
}

/* Parse "%(...)s" at *p (pointing at '%'). Returns 0 and advances *p. */
static int parse_atom(struct drv_accesslog *log, const char **p, char *err,
                      size_t errlen)
{
    const char *s = *p + 2, *close = strstr(s, ")s");
    if (!close) {
        snprintf(err, errlen, "unterminated atom at '%.20s'", *p);
        return -1;
    }
    size_t n = (size_t)(close - s);
    if (n == 15 && s[n - 1] == 'i' &&
        strncasecmp(s, "{x-request-id}", 14) == 0) {
        /* gunicorn's spelling of the request id: the id the app saw */
        add_op(log, (struct op){.kind = OP_ATOM, .atom = 'R'});
    } else if (n >= 3 && s[0] == '{' && s[n - 2] == '}' &&
               (s[n - 1] == 'i' || s[n - 1] == 'o')) {
        char *name = drv_xstrndup(s + 1, n - 3);
        for (char *c = name; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        add_op(log, (struct op){.kind = s[n - 1] == 'i' ? OP_REQ_HEADER
                                                        : OP_RESP_HEADER,
                                .text = name, .len = n - 3});
    } else if (n == 1 && strchr(atoms, s[0])) {
        add_op(log, (struct op){.kind = OP_ATOM, .atom = s[0]});
    } else {
        snprintf(err, errlen, "unknown atom '%.*s'", (int)n, s);
        return -1;
    }
    *p = close + 2;
    return 0;
}

struct drv_accesslog *drv_accesslog_create(const char *format, char *err,
                                           size_t errlen)
{
    struct drv_accesslog *log = drv_xcalloc(1, sizeof(*log));
    log->fd = -1;
    if (strcmp(format, "json") == 0) {
        log->json = true;
        return log;
    }
    const char *p = format, *text = format;
    while (*p) {
        if (p[0] == '%' && p[1] == '(') {
            add_text(log, text, (size_t)(p - text));
            if (parse_atom(log, &p, err, errlen) != 0) {
                drv_accesslog_free(log);
                return NULL;
            }
            text = p;
        } else if (p[0] == '%' && p[1] == '%') {
            add_text(log, text, (size_t)(p - text) + 1);
            p += 2;
            text = p;
        } else {
            p++;
        }
    }
    add_text(log, text, (size_t)(p - text));
    return log;
}

void drv_accesslog_free(struct drv_accesslog *log)
{
    if (!log)
        return;
    for (size_t i = 0; i < log->nops; i++)
        free(log->ops[i].text);
    free(log->ops);
    if (log->fd > STDERR_FILENO)
        close(log->fd);
    free(log->path);
    drv_buf_free(&log->line);
    free(log);
}

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

int drv_accesslog_open(struct drv_accesslog *log, const char *path, char *err,
                       size_t errlen)
{
    if (strcmp(path, "-") == 0) {
        log->fd = STDOUT_FILENO;
        return 0;
    }
    int fd = open_path(path);
    if (fd < 0) {
        snprintf(err, errlen, "access log '%s': %s", path, strerror(errno));
        return -1;
    }
    log->fd = fd;
    log->path = drv_xstrdup(path);
    return 0;
}

int drv_accesslog_chown(struct drv_accesslog *log, uid_t uid, gid_t gid)
{
    if (log->path && fchown(log->fd, uid, gid) != 0)
        return -errno;
    return 0;
}

int drv_accesslog_reopen(struct drv_accesslog *log)
{
    if (!log->path)
        return 0;
    int fd = open_path(log->path);
    if (fd < 0)
        return -errno;
    dup2(fd, log->fd);
    close(fd);
    return 0;
}

static const char hex[] = "0123456789abcdef";

/* Bytes both escapers copy as they are. */
static bool plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* Append request-controlled text with control bytes, bytes above 0x7E,
 * '"' and '\' escaped as \xHH. */
static void put_escaped(struct drv_buf *out, const char *p, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (plain(c))
            continue;
        drv_buf_append(out, p + run, i - run);
        char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
        drv_buf_append(out, esc, 4);
        run = i + 1;
    }
    drv_buf_append(out, p + run, n - run);
}

static void put_view(struct drv_buf *out, struct drover_str v)
{
    if (v.len)
        put_escaped(out, v.ptr, v.len);
    else
        drv_buf_append(out, "-", 1);
}

static struct drover_str req_header(const struct drover_request *r,
                                    const char *lower)
{
    for (size_t i = 0; r && i < r->nheaders; i++) {
        struct drv_str n = {r->headers[i].name.ptr, r->headers[i].name.len};
        if (drv_str_eq_lower(n, lower))
            return r->headers[i].value;
    }
    return (struct drover_str){NULL, 0};
}

static struct drover_str resp_header(struct drv_str lines, const char *lower)
{
    size_t want = strlen(lower);
    const char *p = lines.ptr, *end = lines.ptr + lines.len;
    while (p && p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol)
            break;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon && (size_t)(colon - p) == want &&
            drv_str_eq_lower((struct drv_str){p, want}, lower)) {
            const char *v = colon + 1;
            while (v < eol && *v == ' ')
                v++;
            return (struct drover_str){v, (size_t)(eol - v)};
        }
        p = eol + 2;
    }
    return (struct drover_str){NULL, 0};
}

static int b64(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* The user name of an "Authorization: Basic" header, or '-'. */
static void put_user(struct drv_buf *out, const struct drover_request *r)
{
    struct drover_str a = req_header(r, "authorization");
    char user[256];
    size_t n = 0;
    if (a.len > 6 && strncasecmp(a.ptr, "basic ", 6) == 0) {
        unsigned acc = 0;
        int bits = 0;
        for (size_t i = 6; i < a.len && n < sizeof(user); i++) {
            int v = b64((unsigned char)a.ptr[i]);
            if (v < 0)
                break;
            acc = (acc << 6) | (unsigned)v;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                char c = (char)((acc >> bits) & 0xff);
                if (c == ':')
                    break;
                user[n++] = c;
            }
        }
    }
    put_view(out, (struct drover_str){user, n});
}

static void put_atom(struct drv_buf *out, char atom,
                     const struct drv_access_entry *e)
{
    const struct drover_request *r = e->req;
    static const struct drover_str none = {NULL, 0};
    switch (atom) {
    case 'h': put_view(out, (struct drover_str){e->remote.ptr, e->remote.len}); break;
    case 'l': drv_buf_append(out, "-", 1); break;
    case 'u': put_user(out, r); break;
    case 't': {
        char t[64];
        struct tm tm;
        localtime_r(&e->start.tv_sec, &tm);
        strftime(t, sizeof(t), "[%d/%b/%Y:%H:%M:%S %z]", &tm);
        drv_buf_puts(out, t);
        break;
    }
    case 'r':
        if (!r || !r->method.len) {
            drv_buf_append(out, "-", 1);
            break;
        }
        put_view(out, r->method);
        drv_buf_append(out, " ", 1);
        put_view(out, r->target);
        drv_buf_append(out, " ", 1);
        put_view(out, r->version);
        break;
    case 'm': put_view(out, r ? r->method : none); break;
    case 'U': put_view(out, r ? r->path : none); break;
    case 'q': put_view(out, r ? r->query : none); break;
    case 'H': put_view(out, r ? r->version : none); break;
    case 's': drv_buf_printf(out, "%d", e->status); break;
    case 'B': drv_buf_printf(out, "%llu", (unsigned long long)e->body_bytes); break;
    case 'b':
        if (e->body_bytes)
            drv_buf_printf(out, "%llu", (unsigned long long)e->body_bytes);
        else
            drv_buf_append(out, "-", 1);
        break;
    case 'f': put_view(out, req_header(r, "referer")); break;
    case 'a': put_view(out, req_header(r, "user-agent")); break;
    case 'T': drv_buf_printf(out, "%lld", (long long)e->duration); break;
    case 'M': drv_buf_printf(out, "%lld", (long long)(e->duration * 1e3)); break;
    case 'D': drv_buf_printf(out, "%lld", (long long)(e->duration * 1e6)); break;
    case 'L': drv_buf_printf(out, "%.6f", e->duration); break;
    case 'p': drv_buf_printf(out, "<%d>", (int)e->pid); break;
    case 'R': put_view(out, r ? r->request_id : none); break;
    default: break;
    }
}

/* A response header. X-Request-ID is the app's, else the request id,
 * which drover sent in its place (response.c). */
static void put_resp_header(struct drv_buf *out,
                            const struct drv_access_entry *e,
                            const char *lower)
{
    struct drover_str v = resp_header(e->resp_headers, lower);
    if (!v.ptr && e->req && strcmp(lower, "x-request-id") == 0)
        v = e->req->request_id;
    put_view(out, v);
}

/* ---- the JSON format ---- */

/*
 * The length of the valid UTF-8 sequence at p[0..n) (p[0] >= 0x80), or 0
 * with *bad set to the length of its maximal invalid subpart: the longest
 * prefix that could still have begun a valid sequence, at least 1
 * (Unicode 3.9, table 3-7: no overlong forms, no surrogates, nothing past
 * U+10FFFF).
 */
static size_t utf8_valid(const unsigned char *p, size_t n, size_t *bad)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xbf;
    size_t need;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        lo = c == 0xe0 ? 0xa0 : 0x80; /* overlong */
        hi = c == 0xed ? 0x9f : 0xbf; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        lo = c == 0xf0 ? 0x90 : 0x80; /* overlong */
        hi = c == 0xf4 ? 0x8f : 0xbf; /* past U+10FFFF */
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n || p[i] < lo || p[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xbf;
    }
    return need + 1;
}

/* The escape for ASCII byte c, which is not plain(): into esc, returning
 * its length. */
static size_t json_escape_ascii(unsigned char c, char esc[6])
{
    char letter = 0;
    switch (c) {
    case '"': letter = '"'; break;
    case '\\': letter = '\\'; break;
    case '\b': letter = 'b'; break;
    case '\f': letter = 'f'; break;
    case '\n': letter = 'n'; break;
    case '\r': letter = 'r'; break;
    case '\t': letter = 't'; break;
    default: break;
    }
    if (letter) {
        esc[0] = '\\';
        esc[1] = letter;
        return 2;
    }
    memcpy(esc, "\\u00", 4);
    esc[4] = hex[c >> 4];
    esc[5] = hex[c & 15];
    return 6;
}

void drv_accesslog_json_string(struct drv_buf *out, const char *text,
                               size_t n)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t run = 0, i = 0;
    drv_buf_append(out, "\"", 1);
    while (i < n) {
        unsigned char c = p[i];
        char esc[6];
        size_t len = 1, bad = 1, elen;
        if (plain(c)) {
            i++;
            continue;
        }
        if (c < 0x80) {
            elen = json_escape_ascii(c, esc);
        } else if (!(len = utf8_valid(p + i, n - i, &bad))) {
            len = bad;
            memcpy(esc, "\\ufffd", 6);
            elen = 6;
        } else if (c == 0xc2 && p[i + 1] < 0xa0) { /* C1 control */
            elen = json_escape_ascii(p[i + 1], esc);
        } else if (c == 0xe2 && p[i + 1] == 0x80 &&
                   (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)) {
            memcpy(esc, p[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
            elen = 6;
        } else {
            i += len; /* valid UTF-8: part of the run */
            continue;
        }
        drv_buf_append(out, text + run, i - run);
        drv_buf_append(out, esc, elen);
        i += len;
        run = i;
    }
    drv_buf_append(out, text + run, n - run);
    drv_buf_append(out, "\"", 1);
}

static void put_json(struct drv_buf *out, struct drover_str v)
{
    drv_accesslog_json_string(out, v.ptr, v.len);
}

/* "2026-11-21T22:42:00.123+01:00": the start of the request in local
 * time, as the error log's clock; the second's text is made once. */
static void put_iso_time(struct drv_accesslog *log, struct drv_buf *out,
                         const struct timespec *t)
{
    if (!log->clock.valid || log->clock.sec != t->tv_sec) {
        struct tm tm;
        char z[8];
        localtime_r(&t->tv_sec, &tm);
        strftime(log->clock.stamp, sizeof(log->clock.stamp),
                 "%Y-%m-%dT%H:%M:%S", &tm);
        if (strftime(z, sizeof(z), "%z", &tm) != 5)
            memcpy(z, "+0000", 6);
        /* ISO 8601 wants the extended offset beside the extended time */
        snprintf(log->clock.zone, sizeof(log->clock.zone), "%.3s:%.2s", z,
                 z + 3);
        log->clock.sec = t->tv_sec;
        log->clock.valid = true;
    }
    long ms = t->tv_nsec / 1000000;
    char frac[4] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10),
                    (char)('0' + ms % 10)};
    drv_buf_puts(out, log->clock.stamp);
    drv_buf_append(out, frac, sizeof(frac));
    drv_buf_puts(out, log->clock.zone);
}

static void format_json(struct drv_accesslog *log,
                        const struct drv_access_entry *e, struct drv_buf *out)
{
    static const struct drover_str none = {"", 0};
    const struct drover_request *r = e->req;
    double duration = isfinite(e->duration) && e->duration > 0 ? e->duration
                                                               : 0.0;
    drv_buf_puts(out, "{\"time\":\"");
    put_iso_time(log, out, &e->start);
    drv_buf_puts(out, "\",\"remote_addr\":");
    put_json(out, (struct drover_str){e->remote.ptr, e->remote.len});
    drv_buf_puts(out, ",\"method\":");
    put_json(out, r ? r->method : none);
    drv_buf_puts(out, ",\"path\":");
    put_json(out, r ? r->path : none);
    drv_buf_puts(out, ",\"query\":");
    put_json(out, r ? r->query : none);
    drv_buf_printf(out, ",\"status\":%d,\"bytes\":%llu,\"duration\":%.6f",
                   e->status, (unsigned long long)e->body_bytes, duration);
    drv_buf_puts(out, ",\"user_agent\":");
    put_json(out, req_header(r, "user-agent"));
    drv_buf_puts(out, ",\"referer\":");
    put_json(out, req_header(r, "referer"));
    drv_buf_puts(out, ",\"request_id\":");
    put_json(out, r ? r->request_id : none);
    drv_buf_puts(out, "}\n");
}

/* ---- both ---- */

void drv_accesslog_format(struct drv_accesslog *log,
                          const struct drv_access_entry *e,
                          struct drv_buf *out)
{
    if (log->json) {
        format_json(log, e, out);
        return;
    }
    for (size_t i = 0; i < log->nops; i++) {
        const struct op *op = &log->ops[i];
        switch (op->kind) {
        case OP_TEXT:
            drv_buf_append(out, op->text, op->len);
            break;
        case OP_ATOM:
            put_atom(out, op->atom, e);
            break;
        case OP_REQ_HEADER:
            put_view(out, req_header(e->req, op->text));
            break;
        case OP_RESP_HEADER:
            put_resp_header(out, e, op->text);
            break;
        }
    }
    drv_buf_append(out, "\n", 1);
}

void drv_accesslog_write(struct drv_accesslog *log,
                         const struct drv_access_entry *e)
{
    if (log->fd < 0)
        return;
    drv_buf_reset(&log->line);
    drv_accesslog_format(log, e, &log->line);
    ssize_t w = write(log->fd, drv_buf_data(&log->line),
                      drv_buf_size(&log->line));
    (void)w; /* a full disk must not stop the server */
}
