/*
 * buf: the one growable byte buffer, and string views.
 *
 * A drv_buf holds bytes in base[off..len): `off` advances as a consumer
 * takes bytes from the front (drv_buf_consume), `len` as a producer appends.
 * Functions that may move memory (and so invalidate pointers into base)
 * say so; views into a buffer must be taken again after them.
 *
 * Out-of-memory policy (all of drover): allocations whose size is bounded
 * by drover's own limits abort the process with a message; there is no
 * half-working state after a failed small malloc. Sizes a client could
 * choose are checked against the configured limits before allocating.
 */
#ifndef DRV_BUF_H
#define DRV_BUF_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* The struct that holds `ptr` as its `member` (an embedded watcher's
 * owner, say). */
#define drv_container_of(ptr, type, member)                                   \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct drv_str {
    const char *ptr;
    size_t len;
};

/* A list of owned, NUL-terminated strings (repeatable settings). */
struct drv_strlist {
    char **v;
    size_t n;
};

#define DRV_STR(lit) ((struct drv_str){(lit), sizeof(lit) - 1})

struct drv_buf {
    char *base;
    size_t off; /* first unconsumed byte */
    size_t len; /* end of data */
    size_t cap;
};

/* Ensure room for n more bytes after len. May move memory. */
void drv_buf_reserve(struct drv_buf *b, size_t n);
/* Append n bytes. May move memory. */
void drv_buf_append(struct drv_buf *b, const void *p, size_t n);
/* Append a NUL-terminated string. May move memory. */
void drv_buf_puts(struct drv_buf *b, const char *s);
/* Append `v` in decimal, or in lower-case hexadecimal: the numbers of a
 * response head and of chunk sizes, without printf's cost per request. */
void drv_buf_put_dec(struct drv_buf *b, uint64_t v);
void drv_buf_put_hex(struct drv_buf *b, uint64_t v);
/* Append printf-formatted text. May move memory. */
void drv_buf_printf(struct drv_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Drop n bytes from the front. Never moves memory; resets to empty (off =
 * len = 0) when everything was consumed. */
void drv_buf_consume(struct drv_buf *b, size_t n);
/* Move unconsumed bytes to the start of base. Moves memory. */
void drv_buf_compact(struct drv_buf *b);
/* Empty the buffer, keep its memory. */
static inline void drv_buf_reset(struct drv_buf *b)
{
    b->off = b->len = 0;
}
/* Free the memory; the buffer is empty and reusable afterwards. */
void drv_buf_free(struct drv_buf *b);
/* Shrink a buffer that grew past `keep` bytes back to nothing (used between
 * keep-alive requests so one large request does not pin memory). */
void drv_buf_trim(struct drv_buf *b, size_t keep);

static inline size_t drv_buf_size(const struct drv_buf *b)
{
    return b->len - b->off;
}
static inline char *drv_buf_data(const struct drv_buf *b)
{
    /* Not base + off when off is 0: base is NULL in a buffer never grown,
     * and NULL + 0 is undefined in C (UBSan reports it). */
    return b->off ? b->base + b->off : b->base;
}

/* Allocation helpers that abort on failure (see the policy above). */
void *drv_xmalloc(size_t n);
void *drv_xcalloc(size_t n, size_t size);
void *drv_xrealloc(void *p, size_t n);
char *drv_xstrdup(const char *s);
char *drv_xstrndup(const char *s, size_t n);

/* ASCII case-insensitive comparison of a view with a NUL-terminated
 * lower-case literal. Inline, so that a literal's length is known at
 * compile time and a length mismatch costs no call (header names are
 * compared this way on every request). */
static inline bool drv_str_eq_lower(struct drv_str s, const char *lower)
{
    size_t n = strlen(lower);
    return s.len == n && strncasecmp(s.ptr, lower, n) == 0;
}

/* The value of a hexadecimal digit, or -1. */
int drv_hex_digit(char c);

/* The next element of a comma-separated header list (RFC 9110 5.6.1) in
 * [*p, end): the element without the whitespace around it into *item,
 * *p past it. Empty elements are skipped. Returns false at the end. */
bool drv_list_next(const char **p, const char *end, struct drv_str *item);

#endif
