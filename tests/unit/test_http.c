/*
 * Unit tests for http.c: requests parse the same whether they arrive whole
 * or one byte at a time, limits hold at their exact boundaries, and each
 * refusal carries the right status.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

static struct drv_http_limits limits = {
    .request_line = 100,
    .fields = 5,
    .field_size = 50,
    .max_body = 1000,
    .body_memory = 16,
};

/* Feed `data` in pieces of `step` bytes until the parser stops. */
static enum drv_http_result feed(struct drv_http *h, const char *data,
                                 size_t len, size_t step, size_t *used)
{
    size_t off = 0;
    enum drv_http_result r = DRV_HTTP_AGAIN;
    while (off < len) {
        size_t n = len - off < step ? len - off : step, c = 0;
        r = drv_http_parse(h, data + off, n, &c);
        off += c;
        if (r != DRV_HTTP_AGAIN)
            break;
    }
    *used = off;
    return r;
}

static int parse_status(const char *raw)
{
    struct drv_http h;
    drv_http_init(&h, &limits);
    size_t used;
    enum drv_http_result r = feed(&h, raw, strlen(raw), 4096, &used);
    int status = r == DRV_HTTP_ERROR ? h.error_status
                 : r == DRV_HTTP_DONE ? 200 : 0;
    drv_http_free(&h);
    return status;
}

static void check_request(size_t step)
{
    static const char raw[] = "POST /p%20a/th?q=1&r=2 HTTP/1.1\r\n"
                              "Host: example\r\n"
                              "X-Pad:   spaced value  \r\n"
                              "Content-Length: 5\r\n\r\nhello";
    struct drv_http h;
    drv_http_init(&h, &limits);
    size_t used;
    assert_int_equal(feed(&h, raw, sizeof(raw) - 1, step, &used),
                     DRV_HTTP_DONE);
    assert_int_equal(used, sizeof(raw) - 1);
    const struct drover_request *v = &h.req.view;
    assert_memory_equal(v->method.ptr, "POST", 4);
    assert_int_equal(v->path.len, 9);
    assert_memory_equal(v->path.ptr, "/p%20a/th", 9);
    assert_int_equal(v->query.len, 7);
    assert_memory_equal(v->query.ptr, "q=1&r=2", 7);
    assert_int_equal(v->nheaders, 3);
    const struct drover_header *pad = drv_http_header(&h.req, "x-pad");
    assert_non_null(pad);
    assert_int_equal(pad->value.len, 12);
    assert_memory_equal(pad->value.ptr, "spaced value", 12);
    assert_int_equal(v->body_length, 5);
    assert_memory_equal(v->body.ptr, "hello", 5);
    assert_true(h.req.keep_alive);
    drv_http_free(&h);
}

static void test_a_request_parses_the_same_whole_or_byte_by_byte(void **state)
{
    (void)state;
    check_request(4096);
    check_request(1);
    check_request(7);
}

static void test_pipelined_requests_stop_at_each_message_end(void **state)
{
    (void)state;
    static const char raw[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                              "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
    struct drv_http h;
    drv_http_init(&h, &limits);
    size_t used;
    assert_int_equal(drv_http_parse(&h, raw, sizeof(raw) - 1, &used),
                     DRV_HTTP_DONE);
    assert_int_equal(used, (sizeof(raw) - 1) / 2);
    assert_memory_equal(h.req.view.path.ptr, "/1", 2);
    drv_http_next(&h);
    size_t more;
    assert_int_equal(drv_http_parse(&h, raw + used, sizeof(raw) - 1 - used,
                                    &more),
                     DRV_HTTP_DONE);
    assert_memory_equal(h.req.view.path.ptr, "/2", 2);
    drv_http_free(&h);
}

static void test_chunked_body_is_dechunked_and_spooled_past_memory(void **state)
{
    (void)state;
    static const char raw[] = "POST / HTTP/1.1\r\nHost: a\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n"
                              "a\r\n0123456789\r\n"
                              "a;ext=1\r\nabcdefghij\r\n0\r\n\r\n";
    struct drv_http h;
    drv_http_init(&h, &limits);
    size_t used;
    assert_int_equal(feed(&h, raw, sizeof(raw) - 1, 3, &used), DRV_HTTP_DONE);
    /* 20 bytes > body_memory 16: the body moved to a file. */
    assert_true(h.req.body.fd >= 0);
    assert_null(h.req.view.body.ptr);
    assert_int_equal(h.req.view.body_length, 20);
    char buf[32];
    assert_int_equal(drv_body_read(&h.req.body, buf, sizeof(buf)), 20);
    assert_memory_equal(buf, "0123456789abcdefghij", 20);
    assert_int_equal(drv_body_read(&h.req.body, buf, sizeof(buf)), 0);
    drv_http_free(&h);
}

static void test_expect_continue_pauses_after_the_head(void **state)
{
    (void)state;
    static const char raw[] = "PUT / HTTP/1.1\r\nHost: a\r\n"
                              "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    struct drv_http h;
    drv_http_init(&h, &limits);
    size_t used;
    assert_int_equal(drv_http_parse(&h, raw, sizeof(raw) - 1, &used),
                     DRV_HTTP_HEAD);
    assert_true(h.req.expect_continue);
    assert_int_equal(drv_http_parse(&h, "ok", 2, &used), DRV_HTTP_DONE);
    assert_int_equal(h.req.view.body_length, 2);
    drv_http_free(&h);
}

static void test_limits_hold_at_their_exact_boundaries(void **state)
{
    (void)state;
    char raw[512];
    /* Request line: "GET " + target + " HTTP/1.1" = 13 + target bytes. */
    char target[128];
    memset(target, 'a', sizeof(target));
    target[0] = '/';
    snprintf(raw, sizeof(raw), "GET %.*s HTTP/1.1\r\nHost: a\r\n\r\n", 87,
             target);
    assert_int_equal(parse_status(raw), 200);
    snprintf(raw, sizeof(raw), "GET %.*s HTTP/1.1\r\nHost: a\r\n\r\n", 88,
             target);
    assert_int_equal(parse_status(raw), 400);
    /* Field size: name + value <= 50. */
    snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: a\r\nX: %.*s\r\n\r\n",
             49, target + 1);
    assert_int_equal(parse_status(raw), 200);
    snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: a\r\nX: %.*s\r\n\r\n",
             50, target + 1);
    assert_int_equal(parse_status(raw), 431);
    /* Field count: 5 allowed. */
    assert_int_equal(parse_status("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\n"
                                  "C: 1\r\nD: 1\r\n\r\n"),
                     200);
    assert_int_equal(parse_status("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\n"
                                  "C: 1\r\nD: 1\r\nE: 1\r\n\r\n"),
                     431);
}

static void test_refusals_carry_the_right_status(void **state)
{
    (void)state;
    assert_int_equal(parse_status("BLAH\r\n\r\n"), 400);
    assert_int_equal(parse_status("GET / HTTP/1.1\nHost: a\n\n"), 400);
    assert_int_equal(parse_status("GET / HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(parse_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
                     400);
    assert_int_equal(parse_status("POST / HTTP/1.1\r\nHost: a\r\n"
                                  "Content-Length: 1\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n"),
                     400);
    assert_int_equal(parse_status("POST / HTTP/1.1\r\nHost: a\r\n"
                                  "Content-Length: 1001\r\n\r\n"),
                     413);
    assert_int_equal(parse_status("POST / HTTP/1.1\r\nHost: a\r\n"
                                  "Expect: teapot\r\n\r\n"),
                     417);
    assert_int_equal(parse_status("POST / HTTP/1.1\r\nHost: a\r\n"
                                  "Transfer-Encoding: gzip, chunked\r\n\r\n"),
                     501);
    assert_int_equal(parse_status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
    assert_int_equal(parse_status("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505);
    assert_int_equal(parse_status("GET / HTTP/1.0\r\n\r\n"), 200);
}

static void assert_view(struct drover_str v, const char *want);

static void test_faulty_framing_is_refused_as_gunicorn_26_does(void **state)
{
    (void)state;
    /* HTTP/1.0 with Transfer-Encoding (RFC 9112 6.1). */
    assert_int_equal(parse_status("POST / HTTP/1.0\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n"
                                  "0\r\n\r\n"),
                     400);
    /* Fields that may not be trailers. */
    static const char *const forbidden[] = {
        "Content-Length: 5", "Transfer-Encoding: chunked", "Host: evil",
        "content-type: text/plain", "Authorization: x", "Trailer: x",
    };
    for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
        char raw[256];
        snprintf(raw, sizeof(raw),
                 "POST / HTTP/1.1\r\nHost: a\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n"
                 "1\r\nx\r\n0\r\n%s\r\n\r\n", forbidden[i]);
        assert_true(parse_status(raw) >= 400);
    }
    /* An ordinary trailer is fine (and dropped). */
    assert_int_equal(parse_status("POST / HTTP/1.1\r\nHost: a\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n"
                                  "1\r\nx\r\n0\r\nX-Checksum: 1\r\n\r\n"),
                     200);
    /* The asterisk form is for OPTIONS only; CONNECT is not served. */
    assert_int_equal(parse_status("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_int_equal(parse_status("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
                     200);
    assert_true(parse_status("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n")
                >= 400);
    /* Copies of a singleton field that disagree; agreeing ones pass. */
    assert_int_equal(parse_status("POST / HTTP/1.1\r\nHost: a\r\n"
                                  "Content-Type: text/plain\r\n"
                                  "Content-Type: application/json\r\n\r\n"),
                     400);
    assert_int_equal(parse_status("POST / HTTP/1.1\r\nHost: a\r\n"
                                  "Content-Type: text/plain\r\n"
                                  "Content-Type: text/plain\r\n\r\n"),
                     200);
}

/* Already refused: kept as regression tests. */
static void test_smuggling_shapes_stay_refused(void **state)
{
    (void)state;
    static const char *const raw[] = {
        "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
        "Content-Length: 2\r\n\r\nxx",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"
        "0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "ffffffffffffffffff\r\n",
        "GET / HTTP/1.1\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\rHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++)
        assert_true(parse_status(raw[i]) >= 400);
    /* NUL in a value (strlen would stop at it: feed the bytes). */
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    struct drv_http h;
    drv_http_init(&h, &limits);
    size_t used;
    assert_int_equal(feed(&h, nul, sizeof(nul) - 1, 4096, &used),
                     DRV_HTTP_ERROR);
    assert_int_equal(h.error_status, 400);
    drv_http_free(&h);
}

static void test_an_upgrade_offer_is_an_ordinary_request_and_the_next_follows(
    void **state)
{
    (void)state;
    static const char raw[] =
        "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
        "Upgrade: websocket\r\n\r\n"
        "GET /h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings"
        "\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
        "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
    static const char *const paths[] = {"/ws", "/h2c", "/next"};
    struct drv_http h;
    drv_http_init(&h, &limits);
    size_t off = 0;
    for (size_t i = 0; i < 3; i++) {
        size_t used;
        assert_int_equal(drv_http_parse(&h, raw + off, sizeof(raw) - 1 - off,
                                        &used),
                         DRV_HTTP_DONE);
        assert_view(h.req.view.path, paths[i]);
        off += used;
        drv_http_next(&h);
    }
    assert_int_equal(off, sizeof(raw) - 1);
    drv_http_free(&h);
}

static void test_chunked_body_over_the_limit_is_refused_while_arriving(void **state)
{
    (void)state;
    struct drv_http h;
    drv_http_init(&h, &limits);
    size_t used;
    static const char head[] = "POST / HTTP/1.1\r\nHost: a\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n";
    assert_int_equal(drv_http_parse(&h, head, sizeof(head) - 1, &used),
                     DRV_HTTP_AGAIN);
    char chunk[600];
    memset(chunk, 'x', sizeof(chunk));
    memcpy(chunk, "200\r\n", 5); /* 512 bytes */
    assert_int_equal(drv_http_parse(&h, chunk, 5 + 512, &used), DRV_HTTP_AGAIN);
    assert_int_equal(drv_http_parse(&h, "\r\n", 2, &used), DRV_HTTP_AGAIN);
    assert_int_equal(drv_http_parse(&h, chunk, 5 + 512, &used), DRV_HTTP_ERROR);
    assert_int_equal(h.error_status, 413);
    drv_http_free(&h);
}

static void test_absolute_form_target_yields_its_path(void **state)
{
    (void)state;
    static const char raw[] = "GET http://example.com/x/y?z HTTP/1.1\r\n"
                              "Host: example.com\r\n\r\n";
    struct drv_http h;
    drv_http_init(&h, &limits);
    size_t used;
    assert_int_equal(drv_http_parse(&h, raw, sizeof(raw) - 1, &used),
                     DRV_HTTP_DONE);
    assert_int_equal(h.req.view.path.len, 4);
    assert_memory_equal(h.req.view.path.ptr, "/x/y", 4);
    assert_int_equal(h.req.view.query.len, 1);
    drv_http_free(&h);
}

/* Parse `raw` whole with `l`; the parser is left for the caller to free. */
static enum drv_http_result parse_with(struct drv_http *h,
                                       const struct drv_http_limits *l,
                                       const char *raw)
{
    drv_http_init(h, l);
    size_t used;
    return feed(h, raw, strlen(raw), 4096, &used);
}

static void assert_view(struct drover_str v, const char *want)
{
    assert_int_equal(v.len, strlen(want));
    assert_memory_equal(v.ptr, want, v.len);
}

static void test_authority_comes_from_the_host_header(void **state)
{
    (void)state;
    struct drv_http h;
    assert_int_equal(parse_with(&h, &limits, "GET / HTTP/1.1\r\n"
                                             "Host: example.com:8080\r\n\r\n"),
                     DRV_HTTP_DONE);
    assert_view(h.req.view.authority, "example.com:8080");
    assert_view(h.req.view.host, "example.com");
    assert_view(h.req.view.port, "8080");
    assert_false(h.req.authority_from_target);
    drv_http_free(&h);
}

static void test_an_absolute_form_authority_wins_over_host(void **state)
{
    (void)state;
    struct drv_http h;
    assert_int_equal(parse_with(&h, &limits,
                                "GET http://target.test:81/x HTTP/1.1\r\n"
                                "Host: header.test\r\n\r\n"),
                     DRV_HTTP_DONE);
    assert_view(h.req.view.authority, "target.test:81");
    assert_view(h.req.view.host, "target.test");
    assert_view(h.req.view.port, "81");
    assert_true(h.req.authority_from_target);
    drv_http_free(&h);
}

static void test_userinfo_never_reaches_the_authority(void **state)
{
    (void)state;
    struct drv_http h;
    assert_int_equal(parse_with(&h, &limits,
                                "GET http://user:pa@ss@example.com:8080/foo "
                                "HTTP/1.1\r\nHost: example.com\r\n\r\n"),
                     DRV_HTTP_DONE);
    assert_view(h.req.view.authority, "example.com:8080");
    assert_view(h.req.view.host, "example.com");
    assert_view(h.req.view.port, "8080");
    assert_view(h.req.view.path, "/foo");
    drv_http_free(&h);
}

static void test_ipv6_hosts_keep_their_brackets(void **state)
{
    (void)state;
    struct drv_http h;
    assert_int_equal(parse_with(&h, &limits, "GET / HTTP/1.1\r\n"
                                             "Host: [::1]:5000\r\n\r\n"),
                     DRV_HTTP_DONE);
    assert_view(h.req.view.host, "[::1]");
    assert_view(h.req.view.port, "5000");
    drv_http_next(&h);
    size_t used;
    static const char bare[] = "GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n";
    assert_int_equal(drv_http_parse(&h, bare, sizeof(bare) - 1, &used),
                     DRV_HTTP_DONE);
    assert_view(h.req.view.host, "[::1]");
    assert_view(h.req.view.port, "");
    drv_http_free(&h);
}

static void test_an_empty_port_and_no_host_give_empty_views(void **state)
{
    (void)state;
    struct drv_http h;
    assert_int_equal(parse_with(&h, &limits, "GET / HTTP/1.1\r\n"
                                             "Host: example.com:\r\n\r\n"),
                     DRV_HTTP_DONE);
    assert_view(h.req.view.host, "example.com");
    assert_view(h.req.view.port, "");
    drv_http_free(&h);
    assert_int_equal(parse_with(&h, &limits, "GET / HTTP/1.0\r\n\r\n"),
                     DRV_HTTP_DONE);
    assert_view(h.req.view.authority, "");
    assert_view(h.req.view.host, "");
    assert_view(h.req.view.port, "");
    drv_http_free(&h);
}

/* limit_request_field_size 0 lifts the per-field limit, not the limit on
 * the whole head: a head past `head` bytes is refused with 431. */
static void test_an_unbounded_field_size_still_caps_the_head(void **state)
{
    (void)state;
    struct drv_http_limits l = {.fields = 100, .field_size = 0,
                                .head = 4096, .body_memory = 1024};
    char raw[16384];
    int n = snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(raw + n, 'a', 3000);
    strcpy(raw + n + 3000, "\r\n\r\n");
    struct drv_http h;
    assert_int_equal(parse_with(&h, &l, raw), DRV_HTTP_DONE);
    drv_http_free(&h);
    memset(raw + n, 'a', 5000);
    strcpy(raw + n + 5000, "\r\n\r\n");
    assert_int_equal(parse_with(&h, &l, raw), DRV_HTTP_ERROR);
    assert_int_equal(h.error_status, 431);
    drv_http_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_request_parses_the_same_whole_or_byte_by_byte),
        cmocka_unit_test(test_pipelined_requests_stop_at_each_message_end),
        cmocka_unit_test(test_chunked_body_is_dechunked_and_spooled_past_memory),
        cmocka_unit_test(test_expect_continue_pauses_after_the_head),
        cmocka_unit_test(test_limits_hold_at_their_exact_boundaries),
        cmocka_unit_test(test_refusals_carry_the_right_status),
        cmocka_unit_test(test_chunked_body_over_the_limit_is_refused_while_arriving),
        cmocka_unit_test(test_absolute_form_target_yields_its_path),
        cmocka_unit_test(test_authority_comes_from_the_host_header),
        cmocka_unit_test(test_an_absolute_form_authority_wins_over_host),
        cmocka_unit_test(test_userinfo_never_reaches_the_authority),
        cmocka_unit_test(test_faulty_framing_is_refused_as_gunicorn_26_does),
        cmocka_unit_test(test_smuggling_shapes_stay_refused),
        cmocka_unit_test(
            test_an_upgrade_offer_is_an_ordinary_request_and_the_next_follows),
        cmocka_unit_test(test_ipv6_hosts_keep_their_brackets),
        cmocka_unit_test(test_an_empty_port_and_no_host_give_empty_views),
        cmocka_unit_test(test_an_unbounded_field_size_still_caps_the_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
