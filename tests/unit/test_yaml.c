/*
 * Unit tests for the YAML side of settings.c: what a config file may
 * contain, and that every error points at FILE:LINE:COLUMN (1-based) of
 * the offending key or value.
 *
 * Each test writes its file inline (so the YAML sits beside the expected
 * message) with mkstemp, except the full example in
 * $DROVER_TEST_DATA/drover.yml.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "settings.h"

static char path[64]; /* the current test's file, removed by teardown */

static int remove_file(void **state)
{
    if (path[0])
        unlink(path);
    path[0] = '\0';
    return 0;
}

/* Write `text` (len bytes, or a C string when len is 0) to a temp file. */
static char *write_yaml(const char *text, size_t len)
{
    int fd;

    snprintf(path, sizeof(path), "/tmp/drover-test-yaml-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    if (len == 0)
        len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

/* Load `file` with no environment. Returns 0 or -1, message in err. */
static int load_file(struct drv_settings *s, char *file, char *err, size_t len)
{
    char *argv[] = {"drover", "-c", file, NULL};
    char *envp[] = {NULL};
    enum drv_action action;

    memset(s, 0, sizeof(*s));
    return drv_settings_load(s, 3, argv, envp, &action, err, len);
}

static void load_yaml_ok(struct drv_settings *s, const char *text)
{
    char err[512] = "";

    if (load_file(s, write_yaml(text, 0), err, sizeof(err)) != 0)
        fail_msg("load failed: %s", err);
}

/* `text` must fail with "<file>:<want>". */
static void yaml_fails(const char *text, const char *want)
{
    struct drv_settings s;
    char err[512], expect[600];

    write_yaml(text, 0);
    assert_int_equal(load_file(&s, path, err, sizeof(err)), -1);
    snprintf(expect, sizeof(expect), "%s:%s", path, want);
    assert_string_equal(err, expect);
}

static void test_every_setting_loads_from_the_example_file(void **state)
{
    const char *dir = getenv("DROVER_TEST_DATA");
    struct drv_settings s;
    char file[512], err[512] = "";

    snprintf(file, sizeof(file), "%s/drover.yml",
             dir ? dir : "tests/unit/data");
    if (load_file(&s, file, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(s.app, "example.wsgi:application");
    assert_int_equal(s.bind.n, 3);
    assert_string_equal(s.bind.v[0], "127.0.0.1:8000");
    assert_string_equal(s.bind.v[1], "[::1]:8000");
    assert_string_equal(s.bind.v[2], "unix:run/drover.sock");
    assert_int_equal(s.backlog, 512);
    assert_int_equal(s.workers, 4);
    assert_true(s.timeout == 120);
    assert_true(s.graceful_timeout == 45.5);
    assert_true(s.keepalive == 5);
    assert_true(s.header_timeout == 7.5);
    assert_true(s.io_timeout == 60);
    assert_int_equal(s.max_requests, 1000);
    assert_int_equal(s.max_requests_jitter, 100);
    assert_false(s.preload);
    assert_int_equal(s.limit_request_line, 8190);
    assert_int_equal(s.limit_request_fields, 50);
    assert_int_equal(s.limit_request_field_size, 16384);
    assert_int_equal(s.max_body_size, 10 << 20);
    assert_int_equal(s.body_buffer_size, 256 << 10);
    assert_string_equal(s.accesslog, "-");
    assert_string_equal(s.access_log_format, "%(h)s \"%(r)s\" %(s)s");
    assert_string_equal(s.errorlog, "/var/log/drover/error.log");
    assert_int_equal(s.loglevel, DRV_LOG_WARNING);
    assert_false(s.dev);
    assert_string_equal(s.config, file);
    drv_settings_free(&s);
}

static void test_keys_may_use_dashes_or_underscores(void **state)
{
    struct drv_settings s;

    load_yaml_ok(&s, "max-requests: 10\nmax_requests_jitter: 3\n"
                     "graceful-timeout: 1\n");
    assert_int_equal(s.max_requests, 10);
    assert_int_equal(s.max_requests_jitter, 3);
    assert_true(s.graceful_timeout == 1);
    drv_settings_free(&s);
}

static void test_bind_accepts_a_scalar_or_a_sequence(void **state)
{
    struct drv_settings s;

    load_yaml_ok(&s, "bind: 127.0.0.1:9000\n");
    assert_int_equal(s.bind.n, 1);
    assert_string_equal(s.bind.v[0], "127.0.0.1:9000");
    drv_settings_free(&s);
    remove_file(NULL);
    load_yaml_ok(&s, "bind: [':1', ':2']\n");
    assert_int_equal(s.bind.n, 2);
    assert_string_equal(s.bind.v[1], ":2");
    drv_settings_free(&s);
}

static void test_booleans_accept_yaml_spellings(void **state)
{
    struct drv_settings s;

    load_yaml_ok(&s, "preload: off\ndev: yes\n");
    assert_false(s.preload);
    assert_true(s.dev);
    drv_settings_free(&s);
    remove_file(NULL);
    load_yaml_ok(&s, "preload: False\ndev: ON\n");
    assert_false(s.preload);
    assert_true(s.dev);
    drv_settings_free(&s);
}

static void test_dev_in_the_file_binds_loopback(void **state)
{
    struct drv_settings s;

    load_yaml_ok(&s, "dev: true\n");
    assert_int_equal(s.bind.n, 1);
    assert_string_equal(s.bind.v[0], "127.0.0.1:5000");
    drv_settings_free(&s);
}

static void test_quoted_strings_keep_their_content(void **state)
{
    struct drv_settings s;

    load_yaml_ok(&s, "access_log_format: \"%(h)s \\\"%(r)s\\\"\\t#\"\n"
                     "errorlog: 'it''s.log'\n"
                     "app: \"yes\"\n");
    assert_string_equal(s.access_log_format, "%(h)s \"%(r)s\"\t#");
    assert_string_equal(s.errorlog, "it's.log");
    assert_string_equal(s.app, "yes");
    drv_settings_free(&s);
}

static void test_null_unsets_an_optional_string(void **state)
{
    struct drv_settings s;

    load_yaml_ok(&s, "accesslog: ~\napp: null\n");
    assert_null(s.accesslog);
    assert_null(s.app);
    drv_settings_free(&s);
}

static void test_an_empty_file_sets_nothing(void **state)
{
    struct drv_settings s;

    load_yaml_ok(&s, "");
    assert_int_equal(s.workers, 1);
    drv_settings_free(&s);
}

static void
test_a_file_of_comments_or_an_empty_document_sets_nothing(void **state)
{
    struct drv_settings s;

    load_yaml_ok(&s, "# nothing here yet\n\n");
    assert_int_equal(s.workers, 1);
    drv_settings_free(&s);
    remove_file(NULL);
    load_yaml_ok(&s, "---\n...\n");
    assert_int_equal(s.workers, 1);
    drv_settings_free(&s);
}

static void test_unknown_key_on_line_3_is_reported_at_3_1(void **state)
{
    yaml_fails("workers: 2\n"
               "timeout: 30\n"
               "wrokers: 3\n",
               "3:1: unknown setting 'wrokers' (did you mean 'workers'?)");
}

static void
test_wrongly_indented_key_is_a_syntax_error_at_that_key(void **state)
{
    yaml_fails("workers: 2\n"
               "# comment\n"
               "  timeout: 4\n",
               "3:3: YAML syntax error: did not find expected key");
}

static void
test_unknown_key_without_a_close_name_has_no_suggestion(void **state)
{
    yaml_fails("statsd_host: localhost:8125\n", "1:1: unknown setting 'statsd_host'");
}

static void test_bad_value_is_reported_at_the_value(void **state)
{
    yaml_fails("bind: :5000\n"
               "workers: many\n",
               "2:10: 'many' is not an integer");
    remove_file(NULL);
    yaml_fails("timeout:   -5\n", "1:12: '-5' is below the minimum 0");
    remove_file(NULL);
    yaml_fails("loglevel: loud\n",
               "1:11: 'loud' is not one of debug, info, warning, error, "
               "critical");
    remove_file(NULL);
    yaml_fails("preload: maybe\n",
               "1:10: 'maybe' is not a boolean (true/false, yes/no, on/off, "
               "1/0)");
    remove_file(NULL);
    yaml_fails("max_body_size: 1x\n",
               "1:16: '1x' is not a size (bytes, or a number followed by k, "
               "m or g)");
}

static void test_bad_list_item_is_reported_at_the_item(void **state)
{
    yaml_fails("bind:\n"
               "  - 127.0.0.1:8000\n"
               "  - 127.0.0.1:99999\n",
               "3:5: bad address '127.0.0.1:99999': port '99999' is out of "
               "range 0-65535");
}

static void
test_syntax_error_is_reported_at_the_key_missing_its_colon(void **state)
{
    yaml_fails("workers: 2\n"
               "timeout: 30\n"
               "preload\n",
               "3:1: YAML syntax error: could not find expected ':'");
}

static void test_unclosed_flow_sequence_is_a_syntax_error(void **state)
{
    yaml_fails("workers: 2\n"
               "bind: [':1', ':2'\n",
               "3:1: YAML syntax error: did not find expected ',' or ']'");
}

static void test_tab_indentation_is_a_syntax_error(void **state)
{
    yaml_fails("bind:\n"
               "\t- :1\n",
               "2:1: YAML syntax error: found character that cannot start "
               "any token");
}

static void test_nested_mapping_where_a_scalar_is_expected(void **state)
{
    yaml_fails("workers: 2\n"
               "timeout:\n"
               "  worker: 30\n",
               "3:3: 'timeout' takes a single value, not a mapping");
    remove_file(NULL);
    yaml_fails("bind: {host: x, port: 1}\n",
               "1:7: 'bind' takes a value or a list of values, not a "
               "mapping");
}

static void test_list_for_a_single_value_setting_is_refused(void **state)
{
    yaml_fails("workers: [1, 2]\n",
               "1:10: 'workers' takes a single value, not a list");
}

static void test_nested_mapping_inside_a_list_is_refused(void **state)
{
    yaml_fails("bind:\n"
               "  - :1\n"
               "  - host: x\n",
               "3:5: 'bind' items must be plain values, not a mapping");
    remove_file(NULL);
    yaml_fails("bind:\n"
               "  - [':1']\n",
               "2:5: 'bind' items must be plain values, not a list");
}

static void test_empty_list_and_empty_items_are_refused(void **state)
{
    yaml_fails("bind: []\n", "1:7: 'bind' needs at least one value");
    remove_file(NULL);
    yaml_fails("bind:\n  -\n  - :1\n", "2:4: empty item in 'bind'");
}

static void test_missing_value_for_a_required_setting_is_refused(void **state)
{
    yaml_fails("workers: 2\nerrorlog:\n", "2:10: 'errorlog' needs a value");
    remove_file(NULL);
    yaml_fails("timeout: ~\n", "1:10: 'timeout' needs a value");
}

static void test_top_level_must_be_a_mapping(void **state)
{
    yaml_fails("- workers\n",
               "1:1: expected a mapping of settings (key: value), not a "
               "list");
    remove_file(NULL);
    yaml_fails("workers\n",
               "1:1: expected a mapping of settings (key: value), not a "
               "plain value");
}

static void test_duplicate_keys_are_refused(void **state)
{
    yaml_fails("workers: 2\n"
               "timeout: 1\n"
               "workers: 3\n",
               "3:1: 'workers' is set twice (first on line 1)");
    remove_file(NULL);
    yaml_fails("max_requests: 2\n"
               "max-requests: 3\n",
               "2:1: 'max_requests' is set twice (first on line 1)");
}

static void test_config_cannot_name_itself(void **state)
{
    yaml_fails("workers: 2\nconfig: other.yml\n",
               "2:1: 'config' cannot be set inside the config file");
}

static void test_only_one_document_is_allowed(void **state)
{
    yaml_fails("workers: 2\n---\nworkers: 3\n",
               "2:1: only one YAML document is allowed");
}

static void test_aliases_are_refused(void **state)
{
    yaml_fails("timeout: &t 5\ngraceful_timeout: *t\n",
               "2:19: 'graceful_timeout' takes a single value, not an alias "
               "(aliases are not supported)");
}

static void test_non_scalar_keys_are_refused(void **state)
{
    yaml_fails("? [a, b]\n: 1\n",
               "1:3: a setting name must be a plain value, not a list");
}

static void test_nul_in_a_value_is_refused(void **state)
{
    yaml_fails("app: \"a\\0b\"\n", "1:6: 'app' contains a NUL character");
}

static void test_invalid_utf8_is_refused_with_the_file_name(void **state)
{
    struct drv_settings s;
    char err[512], expect[600];

    write_yaml("workers: \xff\n", 0);
    assert_int_equal(load_file(&s, path, err, sizeof(err)), -1);
    snprintf(expect, sizeof(expect),
             "%s: YAML error at byte 9: invalid leading UTF-8 octet", path);
    assert_string_equal(err, expect);
}

static void test_missing_file_is_reported_with_errno_text(void **state)
{
    struct drv_settings s;
    char err[512];

    assert_int_equal(load_file(&s, "/nonexistent/drover.yml", err, sizeof(err)),
                     -1);
    assert_string_equal(err, "/nonexistent/drover.yml: cannot open: No such "
                             "file or directory");
}

static void test_directory_is_reported_as_unreadable(void **state)
{
    struct drv_settings s;
    char err[512];

    assert_int_equal(load_file(&s, "/tmp", err, sizeof(err)), -1);
    assert_string_equal(err, "/tmp: cannot open: Is a directory");
}

static void test_unreadable_file_is_reported_with_errno_text(void **state)
{
    struct drv_settings s;
    char err[512], expect[600];

    if (geteuid() == 0)
        skip(); /* root reads anything */
    write_yaml("workers: 2\n", 0);
    assert_int_equal(chmod(path, 0), 0);
    assert_int_equal(load_file(&s, path, err, sizeof(err)), -1);
    snprintf(expect, sizeof(expect), "%s: cannot open: Permission denied",
             path);
    assert_string_equal(err, expect);
}

static void test_environment_and_cli_override_the_file(void **state)
{
    struct drv_settings s;
    char *argv[] = {"drover", "-c", path, "-t", "9", NULL};
    char *envp[] = {"DROVER_WORKERS=5", NULL};
    enum drv_action action;
    char err[512] = "";

    write_yaml("workers: 2\ntimeout: 3\nbacklog: 64\n", 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(
        drv_settings_load(&s, 5, argv, envp, &action, err, sizeof(err)), 0);
    assert_int_equal(s.workers, 5);
    assert_true(s.timeout == 9);
    assert_int_equal(s.backlog, 64);
    drv_settings_free(&s);
}

#define T(name) cmocka_unit_test_teardown(name, remove_file)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_every_setting_loads_from_the_example_file),
        T(test_keys_may_use_dashes_or_underscores),
        T(test_bind_accepts_a_scalar_or_a_sequence),
        T(test_booleans_accept_yaml_spellings),
        T(test_dev_in_the_file_binds_loopback),
        T(test_quoted_strings_keep_their_content),
        T(test_null_unsets_an_optional_string),
        T(test_an_empty_file_sets_nothing),
        T(test_a_file_of_comments_or_an_empty_document_sets_nothing),
        T(test_unknown_key_on_line_3_is_reported_at_3_1),
        T(test_wrongly_indented_key_is_a_syntax_error_at_that_key),
        T(test_unknown_key_without_a_close_name_has_no_suggestion),
        T(test_bad_value_is_reported_at_the_value),
        T(test_bad_list_item_is_reported_at_the_item),
        T(test_syntax_error_is_reported_at_the_key_missing_its_colon),
        T(test_unclosed_flow_sequence_is_a_syntax_error),
        T(test_tab_indentation_is_a_syntax_error),
        T(test_nested_mapping_where_a_scalar_is_expected),
        T(test_list_for_a_single_value_setting_is_refused),
        T(test_nested_mapping_inside_a_list_is_refused),
        T(test_empty_list_and_empty_items_are_refused),
        T(test_missing_value_for_a_required_setting_is_refused),
        T(test_top_level_must_be_a_mapping),
        T(test_duplicate_keys_are_refused),
        T(test_config_cannot_name_itself),
        T(test_only_one_document_is_allowed),
        T(test_aliases_are_refused),
        T(test_non_scalar_keys_are_refused),
        T(test_nul_in_a_value_is_refused),
        T(test_invalid_utf8_is_refused_with_the_file_name),
        T(test_missing_file_is_reported_with_errno_text),
        T(test_directory_is_reported_as_unreadable),
        T(test_unreadable_file_is_reported_with_errno_text),
        T(test_environment_and_cli_override_the_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
