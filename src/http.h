/*
 * http: HTTP/1.x request parsing. The only module that sees llhttp.
 *
 * A drv_http parser turns bytes into one drv_request at a time: request
 * line, headers and the whole body (de-chunked). Limits are enforced while
 * the bytes arrive, so an oversized head or body is refused before it is
 * buffered. The body lives in memory up to `body_buffer_size` bytes, then
 * in an unlinked temporary file.
 *
 * The parser pauses after each complete request so the caller can answer
 * it before the next pipelined request is parsed; drv_http_next() resets
 * the request and resumes.
 */
#ifndef DRV_HTTP_H
#define DRV_HTTP_H

#include <drover/app.h>
#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

/* gunicorn's default limit_request_line and limit_request_field_size. */
#define DRV_HTTP_FIELD_DEFAULT 8190

struct drv_http_limits {
    int request_line;    /* max bytes of method + target + version, 0 = off */
    int fields;          /* max header count, 0 = off */
    int field_size;      /* max bytes of one header name + value, 0 = off */
    int64_t head;        /* max bytes of the whole head, 0 = off */
    int64_t max_body;    /* max body bytes, 0 = off */
    int64_t body_memory; /* bodies past this spool to a temporary file */
};

/* A request body: in `mem` until it outgrows the memory limit, then in
 * the temporary file `fd` (mem is emptied). */
struct drv_body {
    struct drv_buf mem;
    int fd;            /* -1 while in memory */
    uint64_t len;      /* bytes stored */
    uint64_t read_pos; /* drv_body_read cursor */
};

/* Header offsets into drv_request.head while parsing (the buffer can move,
 * so views are built only when the head is complete). */
struct drv_header_span {
    uint32_t name_off, name_len, value_off, value_len;
};

struct drv_request {
    struct drover_request view; /* what apps see; valid once head is done */
    struct drv_buf head;        /* method, target, version, names, values */
    struct drv_header_span *spans;
    struct drover_header *headers;
    size_t nheaders, cap_headers, cap_views;
    struct drv_body body;
    uint8_t http_major, http_minor;
    bool keep_alive;      /* the client allows another request after it */
    bool expect_continue; /* Expect: 100-continue with a body to come */
    bool is_head;         /* method HEAD: response carries no body */
    /* view.authority comes from an absolute-form target, not from the
     * Host header (which it overrides: RFC 9112 3.2.2) */
    bool authority_from_target;
    int64_t content_length; /* from the header, -1 if none / chunked */
};

/* Result of drv_http_parse. */
enum drv_http_result {
    DRV_HTTP_AGAIN,    /* every byte consumed, the request needs more */
    DRV_HTTP_HEAD,     /* head complete and the client waits for 100
                          Continue; call drv_http_parse again for the body */
    DRV_HTTP_DONE,     /* a whole request is ready in parser->req */
    DRV_HTTP_ERROR,    /* bad request: answer parser->error_status, close */
};

struct drv_http {
    llhttp_t p;
    struct drv_request req;
    const struct drv_http_limits *limits;
    int error_status;       /* 400, 413, 417, 431, 500, 501, 505 on ERROR */
    const char *error_reason; /* short text for the log */
    uint32_t line_len;      /* request-line bytes seen */
    uint32_t field_len;     /* bytes of the header being read */
    uint32_t method_len;    /* head[0..method_len) is the method */
    uint32_t target_len;    /* then the request-target */
    size_t trailers;        /* trailer fields seen (counted, dropped) */
    bool in_field;          /* a header line is open (name seen) */
    bool value_started;     /* its value has begun */
    bool started;           /* the current request has begun arriving */
    bool head_done;         /* views in req.view are valid */
    bool paused_at_head;    /* last pause was for 100-continue */
    bool te_chunked, expect_seen, host_seen, te_seen;
    int content_type;       /* its span, -1 before a Content-Type */
    char trailer[24];       /* the open trailer's name (cut: harmless) */
    uint8_t trailer_len;
    /* The bare-LF check of the head (scan_head in http.c). */
    bool head_scanned, text_seen;
    char prev;
    uint32_t scan_line;     /* bytes of its current line so far */
};

/* Prepare a parser; `limits` must outlive it. */
void drv_http_init(struct drv_http *h, const struct drv_http_limits *limits);
/* Release everything the parser holds (body file, buffers). */
void drv_http_free(struct drv_http *h);

/*
 * Feed bytes. Sets *consumed to the bytes taken (always all of them on
 * AGAIN; up to the end of the request on DONE; the bytes before the
 * offending one on ERROR). Bytes after a DONE belong to the next request
 * and must be fed again after drv_http_next().
 */
enum drv_http_result drv_http_parse(struct drv_http *h, const char *data,
                                    size_t len, size_t *consumed);

/* The client closed its side: returns true when that is fine (between
 * requests), false when a request was cut short. */
bool drv_http_idle(const struct drv_http *h);

/* Reset for the next request on the same connection. */
void drv_http_next(struct drv_http *h);

/* Find a request header by lower-case name; first match or NULL. */
const struct drover_header *drv_http_header(const struct drv_request *r,
                                            const char *lower_name);

/* Read up to n body bytes from the body's read cursor. Returns bytes read,
 * 0 at the end, -errno on error. */
ssize_t drv_body_read(struct drv_body *b, void *dst, size_t n);

#endif
