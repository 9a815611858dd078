/*
 * libFuzzer target for response framing: fuzzer bytes play an app (native
 * or WSGI: they reach response.c through the same verbs) answering one or
 * two requests on a connection, and the bytes response.c queues are read
 * back as a client would and judged against what response.h promises.
 *
 * The input is consumed front to back (FuzzedDataProvider style, in C):
 * the request (GET or HEAD, HTTP/1.0 or 1.1, keep-alive or not), then a
 * list of app actions (start with any status and reason, headers with
 * hostile names and values, long ones too, writes small and past
 * DRV_RESPONSE_HOLD, commit_sized, a body source with chunks that may be
 * empty or fail, a file body shorter or longer than said, cancel, return
 * failure), then how the connection drains the response (pulls, partial
 * sendfile rounds, a client that goes away mid-body).
 *
 * Checked on every complete response:
 *   - the status line is "HTTP/1.x NNN reason" with a final status
 *     (2xx and up: a 1xx is interim and would desynchronise the
 *     connection), a reason without control characters, the version of
 *     the request (an HTTP/1.1 error page answers a 1.0 request too);
 *   - every header line is "token: value" without CR, LF, NUL or other
 *     controls, so no app value can inject a header or end the head;
 *   - framing: at most one Content-Length, Transfer-Encoding only as
 *     "chunked" on HTTP/1.1, never both, none on 204 and 1xx; no body
 *     bytes at all for HEAD, 204 and 304; Content-Length equals the body
 *     sent unless the response failed (then the connection closes); a
 *     chunked body parses back, ends with its last chunk unless failed,
 *     and nothing follows it;
 *   - the body is what the app gave (its writes, then its source's or
 *     file's bytes), cut at its Content-Length, or drover's error page;
 *   - keep-alive: a response after which the connection stays open is
 *     self-delimiting and says so to an HTTP/1.0 client; "Connection:
 *     close" is said whenever it closes by choice;
 *   - body_bytes and head_bytes (the access log's numbers) are right;
 *   - every body source handed over is closed exactly once, and never
 *     pulled after its close.
 *
 *   make fuzz          (runs every target briefly)
 *
 * DROVER_FUZZ_DUMP=1 in the environment prints each judged response
 * (to read what an input does when triaging).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "response.h"

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "fuzz_response: %s: ", #cond);                   \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* ---- the fuzzer's bytes, consumed in order ---- */

struct input {
    const uint8_t *p;
    size_t n;
};

static uint8_t u8(struct input *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static uint16_t u16(struct input *in)
{
    return (uint16_t)(u8(in) | u8(in) << 8);
}

static bool flag(struct input *in)
{
    return u8(in) & 1;
}

/* Up to `max` bytes of the input itself, length first. */
static size_t bytes(struct input *in, size_t max, const uint8_t **out)
{
    size_t len = u8(in) % (max + 1);
    if (len > in->n)
        len = in->n;
    *out = in->p;
    in->p += len;
    in->n -= len;
    return len;
}

/* A growable byte string (the fuzzer's own, not drover's buffer). */
struct bytes {
    uint8_t *p;
    size_t len, cap;
};

/* Room for n more bytes; returns where they go. */
static uint8_t *grow(struct bytes *b, size_t n)
{
    if (!b->p || b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        CHECK(b->p, "out of memory");
    }
    uint8_t *at = b->p + b->len;
    b->len += n;
    return at;
}

static void put(struct bytes *b, const void *p, size_t n)
{
    if (n)
        memcpy(grow(b, n), p, n);
}

/* A word of a dictionary; `len` counts a NUL inside. */
struct word {
    const char *s;
    size_t len;
};
#define W(lit) {(lit), sizeof(lit) - 1}
#define NWORDS(a) (sizeof(a) / sizeof((a)[0]))

/* A value: a picked word, the input's own bytes, or a long run. */
static size_t text(struct input *in, const struct word *words, size_t nwords,
                   struct bytes *scratch, const uint8_t **out)
{
    uint8_t how = u8(in);
    scratch->len = 0;
    if (how < 96 && nwords) {
        const struct word *w = &words[how % nwords];
        *out = (const uint8_t *)w->s;
        return w->len;
    }
    if (how < 240)
        return bytes(in, 255, out);
    /* Long: a run of one byte (any byte: CR, LF and NUL included) with
     * the input's bytes spliced in. */
    size_t len = (size_t)u16(in) % 70000;
    uint8_t fill = u8(in);
    memset(grow(scratch, len), fill, len);
    const uint8_t *tail;
    size_t tlen = bytes(in, 32, &tail);
    if (tlen && len) {
        size_t at = u16(in) % len;
        memcpy(scratch->p + at, tail, tlen < len - at ? tlen : len - at);
    }
    *out = scratch->p;
    return scratch->len;
}

static const struct word header_names[] = {
    W("Content-Length"), W("content-length"), W("Transfer-Encoding"),
    W("Connection"), W("Keep-Alive"), W("Date"), W("Server"),
    W("Content-Type"), W("X-App"), W("TE"), W("Trailer"), W("Upgrade"),
    W("Proxy-Connection"), W("Set-Cookie"), W("Content-Length "),
    W("Bad Name"), W("X:Y"), W(""), W("X\r\nInjected"), W("X\0Y"),
};

static const struct word header_values[] = {
    W("0"), W("5"), W("10"), W("100"), W("65536"),
    W("99999999999999999999"), W("-1"), W("1 2"), W(" 5"), W("5 "),
    W("0x10"), W(""), W("close"), W("keep-alive"), W("Close"),
    W("closed, x"), W("chunked"), W("gzip, chunked"), W("text/plain"),
    W("a\r\nX-Injected: 1"), W("x\nX-Injected: 1"), W("x\rX-Injected: 1"),
    W("\r\n\r\nHTTP/1.1 200 OK"), W("tab\there"), W("nul\0there"),
    W("\x7f"), W("caf\xc3\xa9"),
};

static const struct word reasons[] = {
    W("OK"), W(""), W("Not Found"), W("A\r\nX-Injected: 1"), W("x\ny"),
    W("tab\tok"), W("nul\0"), W("\xff\xfe"),
    W("a reason that is much longer than the sixty-three bytes drover "
      "keeps of it, so it gets cut"),
};

static const int statuses[] = {
    200, 201, 204, 206, 301, 304, 400, 404, 500, 503, 599, 600, 999,
    100, 101, 103, 199, 99, 1000, 0, -1, 0x7fffffff,
};

/* ---- what the app gave, to compare the sent body with ---- */

static bool dump; /* DROVER_FUZZ_DUMP */

#define FILE_SIZE (96 * 1024)
static uint8_t file_bytes[FILE_SIZE];
static int file_fd = -1;

struct source {
    struct input *in;
    struct bytes *expected; /* chunks handed out are appended here */
    int closes;
    int left;      /* chunks still to give */
    int fail_at;   /* fail when left reaches this, -1 never */
    struct bytes chunk;
};

struct app {
    struct input *in;
    struct drv_response *r;
    struct bytes expected; /* the app's body, as it stands */
    bool error_page;       /* drover's own response replaced the app's */
    struct source *sources[8];
    size_t nsources;
    struct bytes scratch;
};

static int on_next(void *state, const void **data, size_t *len)
{
    struct source *s = state;
    CHECK(s->closes == 0, "a source was pulled after its close");
    if (s->left == s->fail_at)
        return -1;
    if (s->left == 0)
        return 0;
    s->left--;
    s->chunk.len = 0;
    const uint8_t *p;
    size_t n = u8(s->in) == 0xff ? (size_t)u16(s->in) % 70000
                                 : bytes(s->in, 255, &p);
    if (s->chunk.cap < n || !s->chunk.p) {
        s->chunk.cap = n + 1;
        s->chunk.p = realloc(s->chunk.p, s->chunk.cap);
        CHECK(s->chunk.p, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        s->chunk.p[i] = (uint8_t)('a' + (s->left + i) % 26);
    s->chunk.len = n; /* may be 0: an empty chunk is no last chunk */
    put(s->expected, s->chunk.p, n);
    *data = s->chunk.p;
    *len = n;
    return 1;
}

static void on_close(void *state)
{
    struct source *s = state;
    s->closes++;
}

static struct source *new_source(struct app *a)
{
    if (a->nsources == sizeof(a->sources) / sizeof(a->sources[0]))
        return NULL;
    struct source *s = calloc(1, sizeof(*s));
    CHECK(s, "out of memory");
    s->in = a->in;
    s->expected = &a->expected;
    s->left = u8(a->in) % 6;
    s->fail_at = flag(a->in) ? (int)(u8(a->in) % 6) : -1;
    a->sources[a->nsources++] = s;
    return s;
}

/* The app thread closer of conn.c, as it runs on an app thread: in
 * place, but through the closer. */
static void closer(void *arg, const struct drover_body_source *src)
{
    (void)arg;
    src->close(src->state);
}

/* One app action. Returns false when the app has returned (`*rc` its
 * result). */
static bool act(struct app *a, int *rc)
{
    struct input *in = a->in;
    struct drv_response *r = a->r;
    const uint8_t *p, *v;
    size_t n, vn;
    enum drv_response_state before = r->state;
    switch (u8(in) % 11) {
    case 0: { /* start */
        int status = flag(in) ? statuses[u8(in) % (sizeof(statuses) /
                                                   sizeof(statuses[0]))]
                              : (int)(u16(in) % 1100);
        const char *reason = NULL;
        size_t rlen = 0;
        if (flag(in)) {
            rlen = text(in, reasons, NWORDS(reasons), &a->scratch, &p);
            reason = (const char *)p;
        }
        if (drv_response_start(r, status, reason, rlen) == 0) {
            CHECK(before < DRV_RESPONSE_COMMITTED, "start after commit");
            a->expected.len = 0;
        }
        return true;
    }
    case 1:
    case 2: { /* header */
        struct bytes vs = {0};
        n = text(in, header_names, NWORDS(header_names), &a->scratch, &p);
        vn = text(in, header_values, NWORDS(header_values), &vs, &v);
        (void)drv_response_header(r, (const char *)p, n, (const char *)v, vn);
        free(vs.p);
        return true;
    }
    case 3:
    case 4: { /* write */
        n = text(in, NULL, 0, &a->scratch, &p);
        if (drv_response_write(r, p, n) == 0)
            put(&a->expected, p, n);
        return true;
    }
    case 5: /* commit_sized: the app may then write more or less */
        (void)drv_response_commit_sized(r, u8(in) % 4 ? u8(in) : u16(in));
        return true;
    case 6: { /* a body source */
        struct source *s = new_source(a);
        if (!s)
            return true;
        /* Without next: an empty body. */
        struct drover_body_source src = {u8(in) % 8 ? on_next : NULL,
                                         on_close, s};
        if (drv_response_stream(r, &src) != 0)
            CHECK(s->closes == 1, "a refused source was not closed");
        return true;
    }
    case 7: { /* a file body */
        struct source *s = new_source(a);
        if (!s)
            return true;
        s->left = 0;
        struct drover_body_source src = {NULL, on_close, s};
        off_t pos = u16(in) % (FILE_SIZE + 16);
        uint64_t len = flag(in) ? FILE_SIZE - (pos < FILE_SIZE ? pos : 0)
                                : u16(in);
        if (drv_response_stream_file(r, &src, file_fd, pos, len) == 0) {
            /* What the file really holds of [pos, pos + len). */
            size_t have = pos < FILE_SIZE ? FILE_SIZE - (size_t)pos : 0;
            put(&a->expected, file_bytes + (pos < FILE_SIZE ? pos : 0),
                len < have ? (size_t)len : have);
        } else {
            CHECK(s->closes == 1, "a refused file source was not closed");
        }
        return true;
    }
    case 8: /* cancel (a start that failed half-way) */
        if (drv_response_cancel(r) == 0 && before == DRV_RESPONSE_STARTED)
            a->expected.len = 0;
        return true;
    case 9: /* the app fails */
        *rc = -1;
        return false;
    default: /* the app returns */
        *rc = 0;
        return false;
    }
}

/* conn.c's call_app: settle the response once the app returned. */
static void settle(struct app *a, int rc, bool head)
{
    struct drv_response *r = a->r;
    if (rc != 0) {
        if (drv_response_error(r, 500, head) == 0)
            a->error_page = true;
        else
            drv_response_abort(r);
    } else if (drv_response_finish(r) != 0) {
        CHECK(drv_response_error(r, 500, head) == 0, "error page refused");
        a->error_page = true;
    }
    if (a->error_page) {
        a->expected.len = 0;
        const char *reason = drv_status_reason(500);
        put(&a->expected, reason, strlen(reason));
        put(&a->expected, "\n", 1);
    }
}

/* conn.c's flush, with the socket taking what the input says. Returns
 * false when the client went away before the end. */
static bool drain(struct input *in, struct drv_response *r)
{
    for (int rounds = 0; r->state != DRV_RESPONSE_DONE; rounds++) {
        CHECK(rounds < 100000, "the response never completes");
        CHECK(r->state == DRV_RESPONSE_COMMITTED,
              "settled response in state %d", r->state);
        if (u8(in) == 0x42)
            return false; /* the client is gone */
        if (r->has_file) {
            CHECK(r->file.fd == file_fd, "file body lost its descriptor");
            size_t want = 1 + u16(in);
            if (want > r->file.left)
                want = (size_t)r->file.left;
            size_t have = r->file.pos < FILE_SIZE
                              ? FILE_SIZE - (size_t)r->file.pos
                              : 0;
            size_t n = want < have ? want : have; /* 0: end of file */
            drv_buf_append(r->out, file_bytes + r->file.pos, n);
            drv_response_file_sent(r, n);
        } else {
            CHECK(r->has_source, "committed, no source, not done");
            drv_response_pull(r);
        }
    }
    return true;
}

/* ---- the client's reading of the bytes ---- */

static bool is_tchar(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_ctl(uint8_t c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

struct head {
    int minor, status;
    size_t len;
    int n_cl, n_te, n_conn;
    uint64_t cl;
    bool chunked, conn_close, conn_keep;
};

static bool value_is(const uint8_t *v, size_t n, const char *word)
{
    return n == strlen(word) && strncasecmp((const char *)v, word, n) == 0;
}

static void read_head(const uint8_t *b, size_t len, struct head *h)
{
    memset(h, 0, sizeof(*h));
    const uint8_t *end = memmem(b, len, "\r\n\r\n", 4);
    CHECK(end, "no end of head in %zu bytes", len);
    h->len = (size_t)(end - b) + 4;
    /* No bare CR or LF anywhere in the head. */
    for (size_t i = 0; i < h->len; i++) {
        if (b[i] == '\r')
            CHECK(i + 1 < h->len && b[i + 1] == '\n', "bare CR at %zu", i);
        if (b[i] == '\n')
            CHECK(i > 0 && b[i - 1] == '\r', "bare LF at %zu", i);
    }
    CHECK(h->len > 13 && memcmp(b, "HTTP/1.", 7) == 0 &&
              (b[7] == '0' || b[7] == '1') && b[8] == ' ' &&
              b[9] >= '1' && b[9] <= '9' && b[10] >= '0' && b[10] <= '9' &&
              b[11] >= '0' && b[11] <= '9' && b[12] == ' ',
          "bad status line %.40s", (const char *)b);
    h->minor = b[7] - '0';
    h->status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
    CHECK(h->status >= 200, "a final response with interim status %d",
          h->status);
    const uint8_t *line = b + 13, *eol = memmem(line, h->len - 13, "\r\n", 2);
    for (const uint8_t *c = line; c < eol; c++)
        CHECK(!is_ctl(*c), "control byte %#x in the reason", *c);
    for (line = eol + 2; line < end + 2; line = eol + 2) {
        eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        const uint8_t *colon = memchr(line, ':', (size_t)(eol - line));
        CHECK(colon && colon > line, "header line without a name");
        for (const uint8_t *c = line; c < colon; c++)
            CHECK(is_tchar(*c), "byte %#x in a header name", *c);
        CHECK(colon[1] == ' ', "no space after the colon");
        const uint8_t *v = colon + 2;
        size_t vn = (size_t)(eol - v);
        for (size_t i = 0; i < vn; i++)
            CHECK(!is_ctl(v[i]), "control byte %#x in a header value", v[i]);
        size_t nn = (size_t)(colon - line);
        if (value_is(line, nn, "content-length")) {
            h->n_cl++;
            CHECK(vn > 0 && vn < 20, "odd Content-Length");
            h->cl = 0;
            for (size_t i = 0; i < vn; i++) {
                CHECK(v[i] >= '0' && v[i] <= '9', "odd Content-Length");
                h->cl = h->cl * 10 + (uint64_t)(v[i] - '0');
            }
        } else if (value_is(line, nn, "transfer-encoding")) {
            h->n_te++;
            CHECK(value_is(v, vn, "chunked"), "Transfer-Encoding not chunked");
            h->chunked = true;
        } else if (value_is(line, nn, "connection")) {
            h->n_conn++;
            h->conn_close = value_is(v, vn, "close");
            h->conn_keep = value_is(v, vn, "keep-alive");
            CHECK(h->conn_close || h->conn_keep, "Connection: %.*s",
                  (int)vn, (const char *)v);
        }
    }
    CHECK(h->n_cl <= 1 && h->n_te <= 1 && h->n_conn <= 1,
          "framing header repeated");
    CHECK(!(h->n_cl && h->n_te), "Content-Length and Transfer-Encoding");
}

/* Decode a chunked body into *out. Returns whether the last chunk came;
 * anything after it is an error. */
static bool dechunk(const uint8_t *p, size_t len, struct bytes *out)
{
    const uint8_t *end = p + len;
    while (p < end) {
        const uint8_t *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        CHECK(eol && eol > p, "chunk size line");
        uint64_t size = 0;
        CHECK(eol - p <= 8, "huge chunk size");
        for (const uint8_t *c = p; c < eol; c++) {
            CHECK((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'),
                  "chunk size byte %#x", *c);
            size = size * 16 + (uint64_t)(*c <= '9' ? *c - '0' : *c - 'a' + 10);
        }
        p = eol + 2;
        if (size == 0) {
            CHECK(end - p == 2 && p[0] == '\r' && p[1] == '\n',
                  "bytes after the last chunk");
            return true;
        }
        CHECK((uint64_t)(end - p) >= size, "chunk cut short");
        put(out, p, (size_t)size);
        p += size;
        CHECK(end - p >= 2 && p[0] == '\r' && p[1] == '\n', "chunk CRLF");
        p += 2;
    }
    return false;
}

static void judge(const struct app *a, const struct drv_response *r,
                  const struct drv_buf *out, bool http10, bool head_req,
                  bool keep_in)
{
    const uint8_t *b = (const uint8_t *)drv_buf_data(out);
    size_t len = drv_buf_size(out);
    if (dump) {
        fprintf(stderr, "--- %zu bytes, failed %d, keeps alive %d:\n", len,
                r->failed, drv_response_keeps_alive(r));
        for (size_t i = 0; i < len && i < 600; i++)
            fprintf(stderr, b[i] == '\n' || (b[i] >= 0x20 && b[i] < 0x7f)
                                ? "%c" : "\\x%02x", b[i]);
        fputc('\n', stderr);
    }
    struct head h;
    read_head(b, len, &h);
    bool ka = drv_response_keeps_alive(r);
    bool failed = r->failed;

    CHECK(h.status == r->status, "status %d, said %d", h.status, r->status);
    CHECK(h.len == r->head_bytes, "head_bytes %llu, head %zu",
          (unsigned long long)r->head_bytes, h.len);
    if (!http10)
        CHECK(h.minor == 1, "HTTP/1.0 answer to an HTTP/1.1 request");
    if (h.chunked)
        CHECK(h.minor == 1 && !http10, "chunked to an HTTP/1.0 client");
    bool no_body_status = h.status == 204 || h.status == 304;
    if (h.status == 204)
        CHECK(!h.n_cl && !h.n_te, "framing headers on a 204");
    if (no_body_status)
        CHECK(!h.n_te, "Transfer-Encoding on a %d", h.status);

    /* Keep-alive. */
    if (!keep_in)
        CHECK(!ka && h.conn_close, "keep-alive the client did not allow");
    if (h.conn_close)
        CHECK(!ka, "said close, stays open");
    if (ka && http10)
        CHECK(h.conn_keep, "HTTP/1.0 kept without Connection: keep-alive");

    const uint8_t *rest = b + h.len;
    size_t rest_len = len - h.len;
    struct bytes body = {0};
    if (head_req || no_body_status) {
        CHECK(rest_len == 0, "%zu body bytes for HEAD or %d", rest_len,
              h.status);
        CHECK(r->body_bytes == 0, "body_bytes %llu without a body",
              (unsigned long long)r->body_bytes);
        return;
    }
    /* What the app gave, past a Content-Length dropped. */
    size_t want = a->expected.len;
    if (h.n_cl) {
        CHECK(rest_len <= h.cl, "%zu bytes past Content-Length %llu",
              rest_len, (unsigned long long)h.cl);
        if (rest_len < h.cl)
            CHECK(failed && !ka, "short body, connection kept");
        put(&body, rest, rest_len);
        if (want > h.cl)
            want = (size_t)h.cl;
    } else if (h.chunked) {
        bool last = dechunk(rest, rest_len, &body);
        CHECK(last != failed, "last chunk %d on a response failed %d", last,
              failed);
    } else {
        CHECK(!ka && h.conn_close, "close-delimited body, connection kept");
        put(&body, rest, rest_len);
    }
    CHECK(r->body_bytes == body.len, "body_bytes %llu, body %zu",
          (unsigned long long)r->body_bytes, body.len);
    CHECK(body.len <= a->expected.len &&
              (!body.len || memcmp(body.p, a->expected.p, body.len) == 0),
          "the body (%zu bytes) is not what the app gave (%zu bytes)",
          body.len, a->expected.len);
    if (!failed)
        CHECK(body.len == want, "%zu of the app's %zu bytes sent, not failed",
              body.len, want);
    free(body.p);
}

/* ---- one exchange ---- */

static void exchange(struct input *in, struct drv_response *r,
                     struct drv_buf *out)
{
    bool http10 = flag(in), head = flag(in), keep = flag(in);
    char req_text[64];
    snprintf(req_text, sizeof(req_text), "%s / HTTP/1.%d\r\nHost: t\r\n\r\n",
             head ? "HEAD" : "GET", http10 ? 0 : 1);
    static const struct drv_http_limits limits = {
        .request_line = 256, .fields = 8, .field_size = 256,
        .max_body = 0, .body_memory = 256, .head = 4096,
    };
    struct drv_http http;
    drv_http_init(&http, &limits);
    size_t used;
    CHECK(drv_http_parse(&http, req_text, strlen(req_text), &used) ==
              DRV_HTTP_DONE,
          "request");
    if (flag(in))
        drv_response_set_closer(r, closer, NULL);
    drv_response_init(r, out, &http.req, keep);

    struct app a = {.in = in, .r = r};
    int rc = 0;
    for (int i = 0; i < 24 && act(&a, &rc); i++)
        ;
    settle(&a, rc, head);
    bool whole = drain(in, r);
    if (whole)
        judge(&a, r, out, http10, head, keep);
    drv_response_clear(r);
    for (size_t i = 0; i < a.nsources; i++) {
        CHECK(a.sources[i]->closes == 1, "source %zu closed %d times", i,
              a.sources[i]->closes);
        free(a.sources[i]->chunk.p);
        free(a.sources[i]);
    }
    free(a.expected.p);
    free(a.scratch.p);
    drv_http_free(&http);
    drv_buf_reset(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (file_fd < 0) {
        char err[64];
        drv_log_open("-", DRV_LOG_CRITICAL, err, sizeof(err));
        drv_response_clock(0);
        dump = getenv("DROVER_FUZZ_DUMP") != NULL;
        for (size_t i = 0; i < FILE_SIZE; i++)
            file_bytes[i] = (uint8_t)('A' + i % 23);
        file_fd = memfd_create("fuzz_response", 0);
        CHECK(file_fd >= 0, "memfd_create");
    }
    struct input in = {data, size};
    struct drv_response r = {0};
    struct drv_buf out = {0};
    /* Two exchanges on one connection: the second reuses the first's
     * buffers, as keep-alive does. */
    exchange(&in, &r, &out);
    if (in.n)
        exchange(&in, &r, &out);
    drv_response_free(&r);
    drv_buf_free(&out);
    return 0;
}
