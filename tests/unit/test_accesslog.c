/*
 * Unit tests for accesslog.c: every atom renders what gunicorn's does,
 * request-controlled text cannot forge a log line, and the JSON format
 * writes valid, escaped JSON whatever the bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <regex.h>
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
    r.request_id = (struct drover_str){"0123abcd", 8};
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

static void test_the_request_id_has_an_atom_and_gunicorns_spelling(
    void **state)
{
    (void)state;
    /* {X-Request-ID}i is the id the app saw, not a header lookup */
    expect("%(R)s %({x-request-id}i)s %({X-Request-Id}i)s", 0,
           "0123abcd 0123abcd 0123abcd\n");
    char *got = render("%(R)s", NULL, 0);
    assert_string_equal(got, "-\n");
    free(got);
    /* the response's: the app set none here, so drover sent the id */
    expect("%({X-Request-ID}o)s", 0, "0123abcd\n");
}

/* ---- JSON ---- */

/* The JSON string drv_accesslog_json_string makes of n bytes. */
static void expect_json(const char *in, size_t n, const char *want)
{
    struct drv_buf out = {0};
    drv_accesslog_json_string(&out, in, n);
    char *got = drv_xstrndup(drv_buf_data(&out), drv_buf_size(&out));
    if (strcmp(got, want) != 0)
        fail_msg("json of %zu bytes: got %s, want %s", n, got, want);
    free(got);
    drv_buf_free(&out);
}

#define EXPECT_JSON(lit, want) expect_json(lit, sizeof(lit) - 1, want)

static void test_json_strings_escape_quotes_backslashes_and_controls(
    void **state)
{
    (void)state;
    EXPECT_JSON("", "\"\"");
    EXPECT_JSON("plain text/1.0 (x; y)", "\"plain text/1.0 (x; y)\"");
    EXPECT_JSON("a\"b\\c", "\"a\\\"b\\\\c\"");
    EXPECT_JSON("\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\"");
    EXPECT_JSON("\x01\x1b[31m\x7f", "\"\\u0001\\u001b[31m\\u007f\"");
    EXPECT_JSON("nul\0byte", "\"nul\\u0000byte\"");
}

static void test_json_strings_keep_valid_utf8_but_escape_line_breakers(
    void **state)
{
    (void)state;
    EXPECT_JSON("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    EXPECT_JSON("\xef\xbf\xbd", "\"\xef\xbf\xbd\""); /* a real U+FFFD */
    EXPECT_JSON("a\xc2\x85" "b\xc2\x9f", "\"a\\u0085b\\u009f\"");   /* C1 */
    EXPECT_JSON("\xc2\xa0", "\"\xc2\xa0\"");                     /* NBSP */
    EXPECT_JSON("\xe2\x80\xa8|\xe2\x80\xa9", "\"\\u2028|\\u2029\"");
}

/* The same substitutions as Python's bytes.decode("utf-8", "replace"). */
static void test_json_strings_replace_each_invalid_subpart_once(void **state)
{
    (void)state;
    EXPECT_JSON("\xff", "\"\\ufffd\"");
    EXPECT_JSON("ua\xe9", "\"ua\\ufffd\"");              /* latin-1 */
    EXPECT_JSON("\xe2\x82" "A", "\"\\ufffdA\"");          /* truncated */
    EXPECT_JSON("\xe2\x82", "\"\\ufffd\"");               /* cut at end */
    EXPECT_JSON("\xc0\xaf", "\"\\ufffd\\ufffd\"");        /* overlong / */
    EXPECT_JSON("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");
    EXPECT_JSON("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
    EXPECT_JSON("\xf4\x90\x80\x80",
                "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");          /* > U+10FFFF */
    EXPECT_JSON("\xf0\x9f\x98", "\"\\ufffd\"");
    EXPECT_JSON("\x80\x80", "\"\\ufffd\\ufffd\"");        /* stray */
    EXPECT_JSON("\xf0\x9f\x98\"", "\"\\ufffd\\\"\"");     /* quote kept */
}

/* Every string of one or two bytes comes out as ASCII or valid UTF-8
 * with no raw control byte and no unescaped quote. */
static void test_json_strings_are_valid_for_every_short_input(void **state)
{
    (void)state;
    struct drv_buf out = {0};
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned b = 0; b < 257; b++) {
            char in[2] = {(char)a, (char)b};
            drv_buf_reset(&out);
            drv_accesslog_json_string(&out, in, b < 256 ? 2 : 1);
            const unsigned char *p = (const unsigned char *)drv_buf_data(&out);
            size_t n = drv_buf_size(&out);
            assert_true(n >= 2 && p[0] == '"' && p[n - 1] == '"');
            for (size_t i = 1; i + 1 < n; i++) {
                assert_true(p[i] >= 0x20 && p[i] != 0x7f);
                if (p[i] == '\\') {
                    assert_non_null(strchr("\"\\bfnrtu", p[i + 1]));
                    i++;
                } else {
                    assert_true(p[i] != '"');
                }
            }
        }
    }
    drv_buf_free(&out);
}

static void test_the_json_format_writes_one_object_per_line(void **state)
{
    (void)state;
    struct drover_request req = request();
    char *got = render("json", &req, 11);
    regex_t re;
    assert_int_equal(
        regcomp(&re,
                "^\\{\"time\":\"(1970-01-01|1969-12-31)T[0-9]{2}:[0-9]{2}:"
                "[0-9]{2}\\.000[+-][0-9]{2}:[0-9]{2}\",",
                REG_EXTENDED),
        0);
    if (regexec(&re, got, 0, NULL, 0) != 0)
        fail_msg("time: %s", got);
    regfree(&re);
    const char *rest = strstr(got, "\"remote_addr\"");
    assert_non_null(rest);
    assert_string_equal(
        rest, "\"remote_addr\":\"10.0.0.1\",\"method\":\"GET\","
              "\"path\":\"/a/b\",\"query\":\"x=1\",\"status\":200,"
              "\"bytes\":11,\"duration\":0.012346,"
              "\"user_agent\":\"curl/8.0\",\"referer\":\"http://ref/\","
              "\"request_id\":\"0123abcd\"}\n");
    free(got);
}

static void test_the_json_format_logs_missing_parts_as_empty_strings(
    void **state)
{
    (void)state;
    char *got = render("json", NULL, 0);
    assert_non_null(
        strstr(got, "\"method\":\"\",\"path\":\"\",\"query\":\"\","));
    assert_non_null(strstr(got, "\"user_agent\":\"\",\"referer\":\"\","
                                "\"request_id\":\"\"}\n"));
    free(got);
}

static void test_the_json_format_escapes_hostile_request_text(void **state)
{
    (void)state;
    static const struct drover_header evil[] = {
        {{"User-Agent", 10}, {"x\"}\n{\"status\":1\\\xff", 17}},
    };
    struct drover_request req = request();
    req.headers = evil;
    req.nheaders = 1;
    req.path = (struct drover_str){"/\xc3(", 3};
    char *got = render("json", &req, 0);
    assert_non_null(strstr(got, "\"path\":\"/\\ufffd(\""));
    assert_non_null(strstr(got, "\"user_agent\":\"x\\\"}\\n{\\\"status\\\":1"
                                "\\\\\\ufffd\""));
    assert_int_equal(strchr(got, '\n') - got, (long)strlen(got) - 1);
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
        cmocka_unit_test(
            test_the_request_id_has_an_atom_and_gunicorns_spelling),
        cmocka_unit_test(
            test_json_strings_escape_quotes_backslashes_and_controls),
        cmocka_unit_test(
            test_json_strings_keep_valid_utf8_but_escape_line_breakers),
        cmocka_unit_test(test_json_strings_replace_each_invalid_subpart_once),
        cmocka_unit_test(test_json_strings_are_valid_for_every_short_input),
        cmocka_unit_test(test_the_json_format_writes_one_object_per_line),
        cmocka_unit_test(
            test_the_json_format_logs_missing_parts_as_empty_strings),
        cmocka_unit_test(test_the_json_format_escapes_hostile_request_text),
        cmocka_unit_test(test_unknown_atoms_are_rejected_with_their_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
