/*
 * Unit tests for accesslog.c: every atom renders what gunicorn's does, and
 * request-controlled text cannot forge a log line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "accesslog.h"

static const struct drover_header headers[] = {
    {{"Host", 4}, {"example.com", 11}},
    {{"User-Agent", 10}, {"curl/8.0", 8}},
    {{"Referer", 7}, {"http://ref/", 11}},
    {{"X-Test", 6}, {"yes", 3}},
    /* "Basic " + base64("alice:secret") */
    {{"Authorization", 13}, {"Basic YWxpY2U6c2VjcmV0", 22}},
};

static struct drover_request request(void)
{
    struct drover_request r = {0};
    r.method = (struct drover_str){"GET", 3};
    r.target = (struct drover_str){"/a/b?x=1", 8};
    r.path = (struct drover_str){"/a/b", 4};
    r.query = (struct drover_str){"x=1", 3};
    r.version = (struct drover_str){"HTTP/1.1", 8};
    r.headers = headers;
    r.nheaders = sizeof(headers) / sizeof(headers[0]);
    return r;
}

/* Render `format` for a fixed entry; returns a malloc'd NUL-terminated line. */
static char *render(const char *format, const struct drover_request *req,
                    uint64_t bytes)
{
    char err[128];
    struct drv_accesslog *log = drv_accesslog_create(format, err, sizeof(err));
    assert_non_null(log);
    static const char resp[] = "Content-Type: text/html\r\nX-Id: 7\r\n";
    struct drv_access_entry e = {
        .req = req,
        .remote = {"10.0.0.1", 8},
        .status = 200,
        .body_bytes = bytes,
        .resp_headers = {resp, sizeof(resp) - 1},
        .start = {.tv_sec = 0},
        .duration = 0.0123456,
        .pid = 42,
    };
    struct drv_buf out = {0};
    drv_accesslog_format(log, &e, &out);
    drv_accesslog_free(log);
    char *s = drv_xstrndup(drv_buf_data(&out), drv_buf_size(&out));
    drv_buf_free(&out);
    return s;
}

static void expect(const char *format, uint64_t bytes, const char *want)
{
    struct drover_request req = request();
    char *got = render(format, &req, bytes);
    assert_string_equal(got, want);
    free(got);
}

static void test_simple_atoms_render_like_gunicorn(void **state)
{
    (void)state;
    expect("%(h)s %(l)s %(m)s %(U)s %(q)s %(H)s %(s)s", 5,
           "10.0.0.1 - GET /a/b x=1 HTTP/1.1 200\n");
    expect("%(r)s", 0, "GET /a/b?x=1 HTTP/1.1\n");
    expect("%(f)s|%(a)s", 0, "http://ref/|curl/8.0\n");
    expect("%(p)s", 0, "<42>\n");
}

static void test_size_atoms_distinguish_zero(void **state)
{
    (void)state;
    expect("%(B)s %(b)s", 0, "0 -\n");
    expect("%(B)s %(b)s", 1234, "1234 1234\n");
}

static void test_duration_atoms_use_their_units(void **state)
{
    (void)state;
    expect("%(T)s %(M)s %(D)s %(L)s", 0, "0 12 12345 0.012346\n");
}

static void test_header_atoms_find_request_and_response_headers(void **state)
{
    (void)state;
    expect("%({x-test}i)s %({X-TEST}i)s %({missing}i)s", 0, "yes yes -\n");
    expect("%({content-type}o)s %({X-Id}o)s %({nope}o)s", 0,
           "text/html 7 -\n");
}

static void test_user_atom_decodes_basic_auth(void **state)
{
    (void)state;
    expect("%(u)s", 0, "alice\n");
}

static void test_time_atom_is_bracketed_clf_date(void **state)
{
    (void)state;
    struct drover_request req = request();
    char *got = render("%(t)s", &req, 0);
    /* "[01/Jan/1970:00:00:00 +0000]" in some time zone */
    assert_int_equal(got[0], '[');
    assert_non_null(strstr(got, "/1970:") ? strstr(got, "/1970:")
                                           : strstr(got, "/1969:"));
    assert_int_equal(got[strlen(got) - 2], ']');
    free(got);
}

static void test_literal_text_and_percent_escape_pass_through(void **state)
{
    (void)state;
    expect("a %% b \"%(s)s\"", 0, "a % b \"200\"\n");
}

static void test_request_text_cannot_forge_a_line(void **state)
{
    (void)state;
    static const struct drover_header evil[] = {
        {{"User-Agent", 10}, {"x\n1.2.3.4 \"GET", 14}},
    };
    struct drover_request req = request();
    req.headers = evil;
    req.nheaders = 1;
    char *got = render("%(a)s", &req, 0);
    assert_string_equal(got, "x\\x0a1.2.3.4 \\x22GET\n");
    free(got);
}

static void test_missing_request_renders_dashes(void **state)
{
    (void)state;
    char *got = render("%(r)s %(m)s %(a)s", NULL, 0);
    assert_string_equal(got, "- - -\n");
    free(got);
}

static void test_unknown_atoms_are_rejected_with_their_name(void **state)
{
    (void)state;
    char err[128];
    assert_null(drv_accesslog_create("%(z)s", err, sizeof(err)));
    assert_non_null(strstr(err, "'z'"));
    assert_null(drv_accesslog_create("%(h", err, sizeof(err)));
    assert_non_null(strstr(err, "unterminated"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_atoms_render_like_gunicorn),
        cmocka_unit_test(test_size_atoms_distinguish_zero),
        cmocka_unit_test(test_duration_atoms_use_their_units),
        cmocka_unit_test(test_header_atoms_find_request_and_response_headers),
        cmocka_unit_test(test_user_atom_decodes_basic_auth),
        cmocka_unit_test(test_time_atom_is_bracketed_clf_date),
        cmocka_unit_test(test_literal_text_and_percent_escape_pass_through),
        cmocka_unit_test(test_request_text_cannot_forge_a_line),
        cmocka_unit_test(test_missing_request_renders_dashes),
        cmocka_unit_test(test_unknown_atoms_are_rejected_with_their_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
