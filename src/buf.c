/*
 * buf: growable byte buffers and the aborting allocators behind them.
 * Growth doubles capacity (starting at 1 KiB) so appends are amortised O(1).
 */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

static void oom(size_t n)
{
    fprintf(stderr, "drover: out of memory allocating %zu bytes\n", n);
    abort();
}

void *drv_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *drv_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *drv_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *drv_xstrdup(const char *s)
{
    return drv_xstrndup(s, strlen(s));
}

char *drv_xstrndup(const char *s, size_t n)
{
    char *p = drv_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void drv_buf_reserve(struct drv_buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return;
    /* Reclaim the consumed prefix before growing. */
    if (b->off && b->cap - drv_buf_size(b) >= n) {
        drv_buf_compact(b);
        return;
    }
    size_t need = b->len + n, cap = b->cap ? b->cap : 1024;
    while (cap < need)
        cap *= 2;
    b->base = drv_xrealloc(b->base, cap);
    b->cap = cap;
}

void drv_buf_append(struct drv_buf *b, const void *p, size_t n)
{
    if (!n)
        return;
    drv_buf_reserve(b, n);
    memcpy(b->base + b->len, p, n);
    b->len += n;
}

void drv_buf_puts(struct drv_buf *b, const char *s)
{
    drv_buf_append(b, s, strlen(s));
}

static void put_base(struct drv_buf *b, uint64_t v, unsigned base)
{
    static const char digits[] = "0123456789abcdef";
    char text[20], *p = text + sizeof(text);
    do {
        *--p = digits[v % base];
        v /= base;
    } while (v);
    drv_buf_append(b, p, (size_t)(text + sizeof(text) - p));
}

void drv_buf_put_dec(struct drv_buf *b, uint64_t v)
{
    put_base(b, v, 10);
}

void drv_buf_put_hex(struct drv_buf *b, uint64_t v)
{
    put_base(b, v, 16);
}

void drv_buf_printf(struct drv_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->base ? b->base + b->len : NULL, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        drv_buf_reserve(b, (size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(b->base + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void drv_buf_consume(struct drv_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

void drv_buf_compact(struct drv_buf *b)
{
    if (!b->off)
        return;
    size_t n = drv_buf_size(b);
    memmove(b->base, b->base + b->off, n);
    b->off = 0;
    b->len = n;
}

void drv_buf_free(struct drv_buf *b)
{
    free(b->base);
    *b = (struct drv_buf){0};
}

void drv_buf_trim(struct drv_buf *b, size_t keep)
{
    if (b->cap > keep && drv_buf_size(b) == 0)
        drv_buf_free(b);
}

int drv_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool drv_list_next(const char **p, const char *end, struct drv_str *item)
{
    const char *s = *p;
    for (;;) {
        while (s < end && (*s == ' ' || *s == '\t' || *s == ','))
            s++;
        if (s == end) {
            *p = s;
            return false;
        }
        const char *q = s;
        while (q < end && *q != ',')
            q++;
        const char *e = q;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        *p = q;
        if (e > s) {
            *item = (struct drv_str){s, (size_t)(e - s)};
            return true;
        }
        s = q;
    }
}
