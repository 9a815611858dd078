/*
 * echo: answers with the request it saw, as plain text, then the body.
 *
 *   drover build/examples/echo.so:echo_app
 *
 * The response is one "key: value" line per field of the request view,
 * one "header: Name: value" line per header, an empty line, then the
 * request body byte for byte (read through res->read, so it works for
 * bodies drover spooled to a file too).
 */
#include <drover/app.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct out {
    char *p;
    size_t len, cap;
};

static int put(struct out *o, const void *data, size_t n)
{
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 1024;
        while (cap < o->len + n)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p)
            return -1;
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, data, n);
    o->len += n;
    return 0;
}

static int field(struct out *o, const char *key, struct drover_str v)
{
    if (put(o, key, strlen(key)) || put(o, ": ", 2) || put(o, v.ptr, v.len))
        return -1;
    return put(o, "\n", 1);
}

static int number(struct out *o, const char *key, unsigned long long n)
{
    char text[32];
    int len = snprintf(text, sizeof(text), "%llu", n);
    return field(o, key, (struct drover_str){text, (size_t)len});
}

static int describe(struct out *o, const struct drover_request *req,
                    struct drover_response *res)
{
    int rc = field(o, "method", req->method) ||
             field(o, "target", req->target) || field(o, "path", req->path) ||
             field(o, "query", req->query) ||
             field(o, "version", req->version) ||
             field(o, "remote_addr", req->remote_addr) ||
             number(o, "remote_port", (unsigned)req->remote_port) ||
             field(o, "server_addr", req->server_addr) ||
             number(o, "server_port", (unsigned)req->server_port) ||
             field(o, "url_scheme", req->url_scheme) ||
             number(o, "body_length", req->body_length);
    for (size_t i = 0; !rc && i < req->nheaders; i++) {
        const struct drover_header *h = &req->headers[i];
        rc = put(o, "header: ", 8) || put(o, h->name.ptr, h->name.len) ||
             put(o, ": ", 2) || put(o, h->value.ptr, h->value.len) ||
             put(o, "\n", 1);
    }
    if (rc || put(o, "\n", 1))
        return -1;
    char chunk[16384];
    ssize_t n;
    while ((n = res->read(res, chunk, sizeof(chunk))) > 0)
        if (put(o, chunk, (size_t)n))
            return -1;
    return n < 0 ? -1 : 0;
}

static int handle(void *state, const struct drover_request *req,
                  struct drover_response *res)
{
    static const struct drover_header headers[] = {
        {{"Content-Type", 12}, {"text/plain; charset=utf-8", 25}},
    };
    struct out o = {0};
    int rc = -1;
    (void)state;
    if (describe(&o, req, res) == 0 && res->start(res, 200, NULL, headers, 1) == 0)
        rc = res->write(res, o.p, o.len);
    free(o.p);
    return rc;
}

const struct drover_app echo_app = {
    .abi_version = DROVER_APP_ABI_VERSION,
    .handle = handle,
    .flags = DROVER_APP_THREADSAFE, /* no state: any thread may call it */
};
