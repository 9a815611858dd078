/*
 * Unit tests for address.c: every bind form parses into the right kind,
 * host, port, path or fd; every malformed spec is refused with a reason;
 * drv_addr_format() writes back what was parsed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "address.h"

static void assert_tcp(const char *spec, const char *host, int port)
{
    struct drv_addr a;
    char err[256] = "";

    assert_int_equal(drv_addr_parse(spec, &a, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(a.kind, DRV_ADDR_TCP);
    assert_string_equal(a.host, host);
    assert_int_equal(a.port, port);
}

/* Parse must fail and the reason must contain `want`. */
static void assert_refused(const char *spec, const char *want)
{
    struct drv_addr a;
    char err[256] = "";

    assert_int_equal(drv_addr_parse(spec, &a, err, sizeof(err)), -1);
    if (!strstr(err, want))
        fail_msg("'%s': error '%s' does not contain '%s'", spec ? spec : "",
                 err, want);
    assert_null(strchr(err, '\n'));
}

static void assert_formats_as(const char *spec, const char *want)
{
    struct drv_addr a;
    char err[256], buf[300];

    assert_int_equal(drv_addr_parse(spec, &a, err, sizeof(err)), 0);
    assert_ptr_equal(drv_addr_format(&a, buf, sizeof(buf)), buf);
    assert_string_equal(buf, want);
}

static void test_host_and_port_parse_as_tcp(void **state)
{
    assert_tcp("127.0.0.1:5000", "127.0.0.1", 5000);
    assert_tcp("0.0.0.0:8000", "0.0.0.0", 8000);
    assert_tcp("localhost:8000", "localhost", 8000);
    assert_tcp("example.com:65535", "example.com", 65535);
}

static void test_port_zero_lets_the_kernel_pick(void **state)
{
    assert_tcp("127.0.0.1:0", "127.0.0.1", 0);
}

static void test_bare_port_means_all_ipv4_interfaces(void **state)
{
    assert_tcp(":8080", "0.0.0.0", 8080);
}

static void test_bare_host_uses_port_5000(void **state)
{
    assert_tcp("localhost", "localhost", 5000);
    assert_tcp("10.1.2.3", "10.1.2.3", 5000);
}

static void test_bracketed_ipv6_parses_without_brackets(void **state)
{
    assert_tcp("[::]:5000", "::", 5000);
    assert_tcp("[::1]:8080", "::1", 8080);
    assert_tcp("[fe80::1%eth0]:80", "fe80::1%eth0", 80);
    assert_tcp("[::1]", "::1", 5000);
}

static void test_tcp_scheme_is_accepted_like_gunicorn(void **state)
{
    assert_tcp("tcp://127.0.0.1:9000", "127.0.0.1", 9000);
}

static void test_unix_paths_keep_absolute_and_relative_forms(void **state)
{
    struct drv_addr a;
    char err[256];

    assert_int_equal(
        drv_addr_parse("unix:/run/drover.sock", &a, err, sizeof(err)), 0);
    assert_int_equal(a.kind, DRV_ADDR_UNIX);
    assert_string_equal(a.path, "/run/drover.sock");

    assert_int_equal(
        drv_addr_parse("unix:run/drover.sock", &a, err, sizeof(err)), 0);
    assert_int_equal(a.kind, DRV_ADDR_UNIX);
    assert_string_equal(a.path, "run/drover.sock");

    assert_int_equal(drv_addr_parse("unix:///tmp/x.sock", &a, err, sizeof(err)),
                     0);
    assert_string_equal(a.path, "/tmp/x.sock");
}

static void test_unix_path_of_107_bytes_fits_sun_path(void **state)
{
    struct drv_addr a;
    char spec[5 + 108], err[256];

    memcpy(spec, "unix:", 5);
    memset(spec + 5, 'p', 107);
    spec[5 + 107] = '\0';
    assert_int_equal(drv_addr_parse(spec, &a, err, sizeof(err)), 0);
    assert_int_equal(strlen(a.path), 107);
}

static void test_fd_forms_parse_the_descriptor(void **state)
{
    struct drv_addr a;
    char err[256];

    assert_int_equal(drv_addr_parse("fd://3", &a, err, sizeof(err)), 0);
    assert_int_equal(a.kind, DRV_ADDR_FD);
    assert_int_equal(a.fd, 3);
    assert_int_equal(drv_addr_parse("fd://0", &a, err, sizeof(err)), 0);
    assert_int_equal(a.fd, 0);
}

static void test_empty_spec_is_refused(void **state)
{
    assert_refused("", "empty address");
    assert_refused(NULL, "empty address");
}

static void test_missing_port_is_refused(void **state)
{
    assert_refused("127.0.0.1:", "missing port");
    assert_refused("[::1]:", "missing port");
    assert_refused(":", "missing port");
}

static void test_invalid_port_is_refused(void **state)
{
    assert_refused("127.0.0.1:http", "port 'http' is not a number");
    assert_refused("127.0.0.1:-1", "port '-1' is not a number");
    assert_refused("127.0.0.1:80x", "port '80x' is not a number");
    assert_refused("127.0.0.1: 80", "is not a number");
}

static void test_out_of_range_port_is_refused(void **state)
{
    assert_refused("127.0.0.1:65536", "port '65536' is out of range 0-65535");
    assert_refused("[::1]:99999", "port '99999' is out of range 0-65535");
    assert_refused("h:99999999999999999999999", "is out of range 0-65535");
}

static void test_unclosed_bracket_is_refused(void **state)
{
    assert_refused("[::1", "unclosed '['");
    assert_refused("[::1:5000", "unclosed '['");
}

static void test_junk_after_bracket_is_refused(void **state)
{
    assert_refused("[::1]5000", "expected ':PORT' after ']'");
}

static void test_empty_host_in_brackets_is_refused(void **state)
{
    assert_refused("[]:5000", "empty host");
}

static void test_unbracketed_ipv6_is_refused(void **state)
{
    assert_refused("::1:5000", "needs brackets");
    assert_refused("::", "needs brackets");
}

static void test_host_with_spaces_or_slashes_is_refused(void **state)
{
    assert_refused("local host:80", "invalid character in host");
    assert_refused("a/b:80", "invalid character in host");
}

static void test_overlong_host_is_refused(void **state)
{
    char spec[300];

    memset(spec, 'h', 256);
    strcpy(spec + 256, ":80");
    assert_refused(spec, "host is too long");
}

static void test_unknown_scheme_is_refused(void **state)
{
    assert_refused("http://0.0.0.0:5000", "unsupported scheme");
}

static void test_empty_unix_path_is_refused(void **state)
{
    assert_refused("unix:", "unix socket path is empty");
    assert_refused("unix://", "unix socket path is empty");
}

static void test_unix_path_too_long_for_sun_path_is_refused(void **state)
{
    char spec[5 + 200];

    memcpy(spec, "unix:", 5);
    memset(spec + 5, 'p', 108);
    spec[5 + 108] = '\0';
    assert_refused(spec, "unix socket path is too long (108 bytes, the "
                         "limit is 107)");
}

static void test_fd_that_is_not_a_non_negative_integer_is_refused(void **state)
{
    assert_refused("fd://", "non-negative integer");
    assert_refused("fd://-1", "non-negative integer, not '-1'");
    assert_refused("fd://three", "non-negative integer, not 'three'");
    assert_refused("fd://3x", "non-negative integer");
    assert_refused("fd://99999999999", "non-negative integer");
}

static void test_small_error_buffers_are_truncated_not_overrun(void **state)
{
    struct drv_addr a;
    char err[4] = "xxx";

    assert_int_equal(drv_addr_parse("unix:", &a, err, sizeof(err)), -1);
    assert_string_equal(err, "uni");
    assert_int_equal(drv_addr_parse("unix:", &a, NULL, 0), -1);
}

static void test_format_writes_bind_syntax_back(void **state)
{
    assert_formats_as("127.0.0.1:5000", "127.0.0.1:5000");
    assert_formats_as(":80", "0.0.0.0:80");
    assert_formats_as("localhost", "localhost:5000");
    assert_formats_as("[::1]:8080", "[::1]:8080");
    assert_formats_as("unix:run/x.sock", "unix:run/x.sock");
    assert_formats_as("unix:///tmp/x.sock", "unix:/tmp/x.sock");
    assert_formats_as("fd://7", "fd://7");
}

static void test_format_truncates_to_the_buffer(void **state)
{
    struct drv_addr a;
    char err[64], buf[6];

    assert_int_equal(drv_addr_parse("127.0.0.1:5000", &a, err, sizeof(err)), 0);
    drv_addr_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, "127.0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_and_port_parse_as_tcp),
        cmocka_unit_test(test_port_zero_lets_the_kernel_pick),
        cmocka_unit_test(test_bare_port_means_all_ipv4_interfaces),
        cmocka_unit_test(test_bare_host_uses_port_5000),
        cmocka_unit_test(test_bracketed_ipv6_parses_without_brackets),
        cmocka_unit_test(test_tcp_scheme_is_accepted_like_gunicorn),
        cmocka_unit_test(test_unix_paths_keep_absolute_and_relative_forms),
        cmocka_unit_test(test_unix_path_of_107_bytes_fits_sun_path),
        cmocka_unit_test(test_fd_forms_parse_the_descriptor),
        cmocka_unit_test(test_empty_spec_is_refused),
        cmocka_unit_test(test_missing_port_is_refused),
        cmocka_unit_test(test_invalid_port_is_refused),
        cmocka_unit_test(test_out_of_range_port_is_refused),
        cmocka_unit_test(test_unclosed_bracket_is_refused),
        cmocka_unit_test(test_junk_after_bracket_is_refused),
        cmocka_unit_test(test_empty_host_in_brackets_is_refused),
        cmocka_unit_test(test_unbracketed_ipv6_is_refused),
        cmocka_unit_test(test_host_with_spaces_or_slashes_is_refused),
        cmocka_unit_test(test_overlong_host_is_refused),
        cmocka_unit_test(test_unknown_scheme_is_refused),
        cmocka_unit_test(test_empty_unix_path_is_refused),
        cmocka_unit_test(test_unix_path_too_long_for_sun_path_is_refused),
        cmocka_unit_test(test_fd_that_is_not_a_non_negative_integer_is_refused),
        cmocka_unit_test(test_small_error_buffers_are_truncated_not_overrun),
        cmocka_unit_test(test_format_writes_bind_syntax_back),
        cmocka_unit_test(test_format_truncates_to_the_buffer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
