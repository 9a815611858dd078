/*
 * drover/app.h: the C ABI for native drover apps.
 *
 * A native app is a shared object that exports one `struct drover_app`
 * under a symbol the user names on the command line:
 *
 *     drover ./libhello.so:hello_app
 *
 * The shape follows WSGI: for each request drover calls `handle` with a
 * read-only view of the request and a `struct drover_response` whose
 * function pointers start the response (status + headers), write body
 * bytes, or hand drover a body source it pulls from only as fast as the
 * client reads. The app links against nothing from drover: every service
 * comes through function pointers, so one .so works with any drover
 * binary that speaks the same DROVER_APP_ABI_VERSION.
 *
 * Threading: with --threads 1 (the default) drover calls `handle` from one
 * thread per worker process. With --threads N > 1 it calls `handle` (and
 * a body source's `next` and `close`) from N app threads at once, each
 * request on one thread; an app says it can be called so by setting
 * DROVER_APP_THREADSAFE in `flags`, and drover refuses to start an app
 * without it with --threads > 1. `init`, `post_fork` and `fini` are
 * always called on one thread, with no request running.
 *
 * Lifetime: every pointer in a request view is valid until `handle`
 * returns, or, for a streamed body, until drover calls the source's
 * `close`. Copy what must live longer.
 */
#ifndef DROVER_APP_H
#define DROVER_APP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change to the structs below. drover refuses
 * to load an app built for a different version: rebuild the app against
 * this header.
 *   1  the first version
 *   2  drover_request gains authority, host and port; drover_app gains
 *      flags (DROVER_APP_THREADSAFE)
 *   3  drover_request gains request_id */
#define DROVER_APP_ABI_VERSION 3

/* A length-carrying string view; not NUL-terminated. */
struct drover_str {
    const char *ptr;
    size_t len;
};

struct drover_header {
    struct drover_str name;  /* as the client sent it (case preserved) */
    struct drover_str value; /* leading/trailing whitespace removed */
};

struct drover_request {
    struct drover_str method;    /* "GET" */
    struct drover_str target;    /* request-target as sent: "/a%20b?x=1" */
    struct drover_str path;      /* target up to '?', still %-encoded */
    struct drover_str query;     /* after '?', empty if none */
    struct drover_str version;   /* "HTTP/1.1" */
    const struct drover_header *headers;
    size_t nheaders;
    /* Body length in bytes (chunked bodies are de-chunked and counted). */
    uint64_t body_length;
    /* The whole body when drover holds it in memory, else ptr == NULL
     * (large bodies live in a temporary file: use drover_response.read). */
    struct drover_str body;
    struct drover_str remote_addr; /* "127.0.0.1", "::1", "" for unix */
    int remote_port;
    struct drover_str server_addr; /* address the request arrived on */
    int server_port;
    struct drover_str url_scheme;  /* "http" */
    /* Since ABI version 2: the host the request is for, from an
     * absolute-form target's authority (which wins, RFC 9112 3.2.2), else
     * from the Host header; all three are empty when the request names no
     * host (HTTP/1.0 without Host). `authority` is "host[:port]" as sent,
     * without userinfo; `host` is its host part (an IPv6 literal keeps its
     * brackets: "[::1]"); `port` its port as sent, empty when none or
     * empty was given (the scheme's default port applies then). */
    struct drover_str authority;
    struct drover_str host;
    struct drover_str port;
    /* Since ABI version 3: the request's id, never empty. The client's
     * (or proxy's) X-Request-ID when it is 1-128 bytes of printable ASCII
     * without spaces, else one drover made (32 hex digits). drover sends
     * it back in the response's X-Request-ID unless the app sets that
     * header, and writes it to the access log. */
    struct drover_str request_id;
};

/*
 * A pull-style body source (the native twin of a WSGI iterable). drover
 * calls `next` only when the socket can take more. `next` sets *data and
 * *len to the next chunk (valid until the following call) and returns 1,
 * returns 0 at the end, or -1 on error (drover then closes the connection
 * so the client sees a truncated body). `close` is called exactly once on
 * every path, including a client that went away. Either may be NULL.
 */
struct drover_body_source {
    int (*next)(void *state, const void **data, size_t *len);
    void (*close)(void *state);
    void *state;
};

/*
 * Services drover gives `handle`. Each function returns 0 on success or
 * -1 when it cannot be done (called in the wrong order, bad status or
 * header, out of memory); the app then returns -1 from `handle`.
 */
struct drover_response {
    /* Start the response. `status` is 200..999 (a final status: 1xx
     * responses are interim, and drover's to send) with an optional reason
     * (NULL: drover's standard phrase). Headers are copied. Connection,
     * Keep-Alive, Transfer-Encoding and Date are drover's to set; a
     * Content-Length the app gives is trusted and enforced. */
    int (*start)(struct drover_response *res, int status, const char *reason,
                 const struct drover_header *headers, size_t nheaders);
    /* Append body bytes (copied). May be called many times after start. */
    int (*write)(struct drover_response *res, const void *data, size_t len);
    /* Hand drover a streamed body; after it, `handle` must return without
     * further writes (write fails then; the source's next may write).
     * drover owns `source` from here on (its close is called even if this
     * call fails). */
    int (*stream)(struct drover_response *res,
                  const struct drover_body_source *source);
    /* Read up to `len` body bytes into buf, in order, whether the body is
     * in memory or spooled. Returns bytes read, 0 at the end, -1 on error. */
    ssize_t (*read)(struct drover_response *res, void *buf, size_t len);
    /* Log a line to drover's error log at error level. */
    void (*log)(struct drover_response *res, const char *message);
    void *server; /* drover's, opaque */
};

/* drover_app.flags */
#define DROVER_APP_THREADSAFE 0x1u /* handle may run on several threads */

/* A hook drover calls once per worker process after fork, with the pointer
 * `init` returned. Returns 0, or -1 to make the worker fail to boot. */
typedef int (*drover_post_fork_fn)(void *app_state);

struct drover_app {
    /* Must be DROVER_APP_ABI_VERSION. */
    uint32_t abi_version;
    /* Optional. Called once when the app is loaded (in the master when
     * preloading). argv-free: configuration comes from the environment.
     * Returns 0 and may set *app_state; non-zero stops drover's start with
     * the message written into err (NUL-terminated, at most errlen bytes). */
    int (*init)(void **app_state, char *err, size_t errlen);
    /* Optional, see drover_post_fork_fn. */
    drover_post_fork_fn post_fork;
    /* Required. Called for every request. Return 0 when the response was
     * started (and written or streamed); return -1 to make drover answer
     * 500 if nothing was started yet, or drop the connection otherwise. */
    int (*handle)(void *app_state, const struct drover_request *req,
                  struct drover_response *res);
    /* Optional. Called once at process exit. */
    void (*fini)(void *app_state);
    /* DROVER_APP_* bits; 0 for none. */
    uint32_t flags;
};

#ifdef __cplusplus
}
#endif

#endif
