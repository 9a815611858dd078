/*
 * testapp: a native app for the integration tests, one behaviour per path.
 *
 *   drover build/tests/apps/testapp.so:test_app
 *
 *   /status/NNN                  status NNN, body "status NNN\n" (none for
 *                                1xx, 204 and 304)
 *   /stream?chunks=N&size=S      N chunks of S bytes through res->stream;
 *                                chunk i is S copies of 'a' + i % 26
 *   /stream-fail?chunks=N&size=S the same N chunks, then the source fails
 *   /write?bytes=N               N bytes through res->write in 8 KiB
 *                                pieces; byte j is 'a' + j % 26
 *   /length?declared=D&actual=A  Content-Length D, A bytes of 'x' written
 *   /fail                        returns -1 before starting
 *   /bad-header                  starts with a CR LF in a header value
 *   /hop                         sets hop-by-hop headers drover must drop
 *   /sleep?ms=N                  sleeps N ms, then "slept N\n"
 *   /body-sha                    reads the body through res->read and
 *                                answers "length=L fnv=HEX memory=0|1\n"
 *                                (FNV-1a 64 of the body; memory=1 when
 *                                drover held the body in memory)
 *   /request-id[?own=1]          the request's id (view.request_id) as the
 *                                body; with own=1 the app sets the
 *                                response's X-Request-ID to "app-chosen"
 *   anything else                404
 *
 * Also exported, for start-up failure tests: badabi_app (ABI version 999),
 * initfail_app (init fails with "test init failure") and nohandle_app
 * (handle NULL).
 *
 * Query parameters are parsed by hand: NAME=DIGITS, '&'-separated; a
 * missing or malformed one takes its default.
 */
#include <drover/app.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PIECE 8192

static const struct drover_header text_plain = {{"Content-Type", 12},
                                                {"text/plain", 10}};

static bool str_is(struct drover_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static bool str_starts(struct drover_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len >= n && memcmp(s.ptr, lit, n) == 0;
}

/* Digits only; anything else (or overflow past 2^63) gives `def`. */
static uint64_t to_number(const char *p, size_t n, uint64_t def)
{
    if (n == 0 || n > 18)
        return def;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return def;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    return v;
}

/* The value of query parameter `name`, or `def`. */
static uint64_t param(struct drover_str query, const char *name, uint64_t def)
{
    size_t nlen = strlen(name);
    const char *p = query.ptr, *end = query.ptr + query.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 &&
            p[nlen] == '=')
            return to_number(p + nlen + 1, (size_t)(stop - p - nlen - 1),
                             def);
        p = stop + 1;
    }
    return def;
}

static int reply(struct drover_response *res, int status, const char *body)
{
    if (res->start(res, status, NULL, &text_plain, 1) != 0)
        return -1;
    return res->write(res, body, strlen(body));
}

static int do_status(const struct drover_request *req,
                     struct drover_response *res)
{
    uint64_t status = to_number(req->path.ptr + 8, req->path.len - 8, 0);
    if (status < 100 || status > 999)
        return reply(res, 400, "bad status\n");
    if (res->start(res, (int)status, NULL, &text_plain, 1) != 0)
        return -1;
    if (status < 200 || status == 204 || status == 304)
        return 0;
    char body[32];
    int n = snprintf(body, sizeof(body), "status %d\n", (int)status);
    return res->write(res, body, (size_t)n);
}

/* ---- streamed bodies ---------------------------------------------------- */

struct stream_state {
    uint64_t chunks, size, sent;
    bool fail;
    char *buf;
};

static int stream_next(void *state, const void **data, size_t *len)
{
    struct stream_state *s = state;
    if (s->sent == s->chunks)
        return s->fail ? -1 : 0;
    memset(s->buf, 'a' + (int)(s->sent % 26), (size_t)s->size);
    s->sent++;
    *data = s->buf;
    *len = (size_t)s->size;
    return 1;
}

static void stream_close(void *state)
{
    struct stream_state *s = state;
    free(s->buf);
    free(s);
}

static int do_stream(const struct drover_request *req,
                     struct drover_response *res, bool fail)
{
    uint64_t chunks = param(req->query, "chunks", 3);
    uint64_t size = param(req->query, "size", 10);
    if (size == 0 || size > 16u * 1024 * 1024)
        return reply(res, 400, "size must be 1..16777216\n");
    struct stream_state *s = calloc(1, sizeof(*s));
    if (!s)
        return -1;
    s->buf = malloc((size_t)size);
    if (!s->buf) {
        free(s);
        return -1;
    }
    s->chunks = chunks;
    s->size = size;
    s->fail = fail;
    struct drover_body_source src = {stream_next, stream_close, s};
    static const struct drover_header octets = {
        {"Content-Type", 12}, {"application/octet-stream", 24}};
    if (res->start(res, 200, NULL, &octets, 1) != 0) {
        stream_close(s);
        return -1;
    }
    return res->stream(res, &src); /* closes the source even on failure */
}

/* ---- written bodies ------------------------------------------------------- */

static int do_write(const struct drover_request *req,
                    struct drover_response *res)
{
    uint64_t left = param(req->query, "bytes", 0);
    static char pattern[PIECE + 26];
    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (char)('a' + i % 26);
    if (res->start(res, 200, NULL, &text_plain, 1) != 0)
        return -1;
    uint64_t off = 0;
    while (left) {
        size_t n = left < PIECE ? (size_t)left : PIECE;
        if (res->write(res, pattern + off % 26, n) != 0)
            return -1;
        off += n;
        left -= n;
    }
    return 0;
}

static int do_length(const struct drover_request *req,
                     struct drover_response *res)
{
    uint64_t declared = param(req->query, "declared", 0);
    uint64_t actual = param(req->query, "actual", 0);
    char value[24];
    int vlen = snprintf(value, sizeof(value), "%llu",
                        (unsigned long long)declared);
    struct drover_header h[] = {
        text_plain,
        {{"Content-Length", 14}, {value, (size_t)vlen}},
    };
    if (res->start(res, 200, NULL, h, 2) != 0)
        return -1;
    char piece[PIECE];
    memset(piece, 'x', sizeof(piece));
    while (actual) {
        size_t n = actual < PIECE ? (size_t)actual : PIECE;
        if (res->write(res, piece, n) != 0)
            return -1;
        actual -= n;
    }
    return 0;
}

/* ---- headers -------------------------------------------------------------- */

static int do_bad_header(struct drover_response *res)
{
    static const struct drover_header h[] = {
        {{"X-Split", 7}, {"a\r\nX-Injected: 1", 16}},
    };
    if (res->start(res, 200, NULL, h, 1) != 0)
        return -1; /* what drover must do: refuse, so we fail -> 500 */
    /* drover accepted a header value with CR LF: make it visible. */
    return res->write(res, "header accepted\n", 16);
}

static int do_hop(struct drover_response *res)
{
    static const struct drover_header h[] = {
        {{"Transfer-Encoding", 17}, {"chunked", 7}},
        {{"Connection", 10}, {"keep-alive", 10}},
        {{"Keep-Alive", 10}, {"timeout=99", 10}},
        {{"X-Ok", 4}, {"1", 1}},
    };
    if (res->start(res, 200, NULL, h, 4) != 0)
        return -1;
    return res->write(res, "hop", 3);
}

/* ---- timing and request bodies ------------------------------------------- */

static int do_sleep(const struct drover_request *req,
                    struct drover_response *res)
{
    uint64_t ms = param(req->query, "ms", 0);
    if (ms > 60000)
        ms = 60000;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    char body[40];
    snprintf(body, sizeof(body), "slept %llu\n", (unsigned long long)ms);
    return reply(res, 200, body);
}

static int do_body_sha(const struct drover_request *req,
                       struct drover_response *res)
{
    uint64_t hash = 0xcbf29ce484222325ULL, total = 0;
    static unsigned char buf[65536];
    ssize_t n;
    while ((n = res->read(res, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            hash ^= buf[i];
            hash *= 0x100000001b3ULL;
        }
        total += (uint64_t)n;
    }
    if (n < 0)
        return -1;
    char body[128];
    snprintf(body, sizeof(body), "length=%llu fnv=%016llx memory=%d "
             "body_length=%llu\n", (unsigned long long)total,
             (unsigned long long)hash, req->body.ptr != NULL,
             (unsigned long long)req->body_length);
    return reply(res, 200, body);
}

static int do_request_id(const struct drover_request *req,
                         struct drover_response *res)
{
    static const struct drover_header own = {{"X-Request-ID", 12},
                                             {"app-chosen", 10}};
    bool mine = param(req->query, "own", 0) == 1;
    if (res->start(res, 200, NULL, &own, mine ? 1 : 0) != 0)
        return -1;
    return res->write(res, req->request_id.ptr, req->request_id.len);
}

static int handle(void *app_state, const struct drover_request *req,
                  struct drover_response *res)
{
    (void)app_state;
    struct drover_str path = req->path;
    if (str_starts(path, "/status/"))
        return do_status(req, res);
    if (str_is(path, "/stream"))
        return do_stream(req, res, false);
    if (str_is(path, "/stream-fail"))
        return do_stream(req, res, true);
    if (str_is(path, "/write"))
        return do_write(req, res);
    if (str_is(path, "/length"))
        return do_length(req, res);
    if (str_is(path, "/fail"))
        return -1;
    if (str_is(path, "/bad-header"))
        return do_bad_header(res);
    if (str_is(path, "/hop"))
        return do_hop(res);
    if (str_is(path, "/sleep"))
        return do_sleep(req, res);
    if (str_is(path, "/body-sha"))
        return do_body_sha(req, res);
    if (str_is(path, "/request-id"))
        return do_request_id(req, res);
    return reply(res, 404, "not found\n");
}

static int init_fail(void **app_state, char *err, size_t errlen)
{
    (void)app_state;
    snprintf(err, errlen, "test init failure");
    return -1;
}

extern const struct drover_app test_app, badabi_app, initfail_app,
    nohandle_app;

const struct drover_app test_app = {
    .abi_version = DROVER_APP_ABI_VERSION,
    .handle = handle,
    .flags = DROVER_APP_THREADSAFE,
};

/* The same app, without the claim that it may run on several threads. */
const struct drover_app single_thread_app = {
    .abi_version = DROVER_APP_ABI_VERSION,
    .handle = handle,
};

const struct drover_app badabi_app = {
    .abi_version = 999,
    .handle = handle,
};

const struct drover_app initfail_app = {
    .abi_version = DROVER_APP_ABI_VERSION,
    .init = init_fail,
    .handle = handle,
};

const struct drover_app nohandle_app = {
    .abi_version = DROVER_APP_ABI_VERSION,
    .handle = NULL,
};
