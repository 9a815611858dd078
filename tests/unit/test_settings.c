/*
 * Unit tests for settings.c: the four sources and their precedence, the
 * command-line grammar, every type's parser and its errors (each naming
 * its source), the PORT / WEB_CONCURRENCY / --dev defaults, actions, and
 * --print-config output loading back unchanged. YAML-specific behaviour
 * (positions, document shapes) is in test_yaml.c.
 *
 * Every test passes its own envp; nothing depends on the real
 * environment.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "settings.h"

/* argv/envp literals: ARGV("-w", "4") is {"drover", "-w", "4", NULL}. */
#define ARGV(...) ((char *[]){"drover", __VA_ARGS__, NULL})
#define NOARGS    ((char *[]){"drover", NULL})
#define ENV(...)  ((char *[]){__VA_ARGS__, NULL})
#define NOENV     ((char *[]){NULL})

static int count(char **v)
{
    int n = 0;

    while (v[n])
        n++;
    return n;
}

/* Load, expecting success; returns the action. */
static enum drv_action load_ok(struct drv_settings *s, char **argv, char **envp)
{
    enum drv_action action = (enum drv_action) - 1;
    char err[512] = "";

    memset(s, 0, sizeof(*s));
    if (drv_settings_load(s, count(argv), argv, envp, &action, err,
                          sizeof(err)) != 0)
        fail_msg("load failed: %s", err);
    assert_string_equal(err, "");
    return action;
}

/* Load, expecting failure with exactly `want` as the message. */
static void load_fails(char **argv, char **envp, const char *want)
{
    struct drv_settings s, zero;
    enum drv_action action;
    char err[512] = "";

    memset(&s, 0, sizeof(s));
    memset(&zero, 0, sizeof(zero));
    assert_int_equal(drv_settings_load(&s, count(argv), argv, envp, &action,
                                       err, sizeof(err)),
                     -1);
    assert_string_equal(err, want);
    assert_memory_equal(&s, &zero, sizeof(s)); /* left freed */
}

/* A temporary YAML file holding `text`; the path is static per slot. */
static char *yaml_file(int slot, const char *text)
{
    static char paths[4][64];
    char *p = paths[slot];
    FILE *f;
    int fd;

    snprintf(p, sizeof(paths[0]), "/tmp/drover-test-settings-XXXXXX");
    fd = mkstemp(p);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static void assert_bind(const struct drv_settings *s, size_t n, ...)
{
    va_list ap;

    assert_int_equal(s->bind.n, n);
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(s->bind.v[i], va_arg(ap, const char *));
    va_end(ap);
}

/* ---- defaults and precedence -------------------------------------------- */

static void test_defaults_are_the_documented_values(void **state)
{
    struct drv_settings s;

    assert_int_equal(load_ok(&s, NOARGS, NOENV), DRV_ACTION_SERVE);
    assert_null(s.app);
    assert_null(s.config);
    assert_bind(&s, 1, "0.0.0.0:5000");
    assert_int_equal(s.backlog, 2048);
    assert_int_equal(s.workers, 1);
    assert_true(s.timeout == 30);
    assert_true(s.graceful_timeout == 30);
    assert_true(s.keepalive == 2);
    assert_true(s.header_timeout == 10);
    assert_true(s.io_timeout == 30);
    assert_int_equal(s.max_requests, 0);
    assert_int_equal(s.max_requests_jitter, 0);
    assert_true(s.preload);
    assert_int_equal(s.limit_request_line, 4094);
    assert_int_equal(s.limit_request_fields, 100);
    assert_int_equal(s.limit_request_field_size, 8190);
    assert_int_equal(s.max_body_size, 0);
    assert_int_equal(s.body_buffer_size, 1048576);
    assert_null(s.accesslog);
    assert_string_equal(s.access_log_format,
                        "%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s "
                        "\"%(f)s\" \"%(a)s\"");
    assert_string_equal(s.errorlog, "-");
    assert_int_equal(s.loglevel, DRV_LOG_INFO);
    assert_false(s.dev);
    drv_settings_free(&s);
}

static void
test_cli_overrides_env_overrides_yaml_overrides_default(void **state)
{
    struct drv_settings s;
    char *path = yaml_file(0, "workers: 2\n"
                              "timeout: 5\n"
                              "backlog: 100\n");
    char cfg[128];

    snprintf(cfg, sizeof(cfg), "DROVER_CONFIG=%s", path);
    load_ok(&s, ARGV("-w", "4"),
            ENV(cfg, "DROVER_WORKERS=3", "DROVER_TIMEOUT=6"));
    assert_int_equal(s.workers, 4);        /* command line */
    assert_true(s.timeout == 6);           /* environment */
    assert_int_equal(s.backlog, 100);      /* YAML */
    assert_true(s.graceful_timeout == 30); /* default */
    assert_string_equal(s.config, path);
    drv_settings_free(&s);
    unlink(path);
}

static void test_config_flag_overrides_DROVER_CONFIG(void **state)
{
    struct drv_settings s;
    char *a = yaml_file(0, "workers: 2\n");
    char *b = yaml_file(1, "workers: 7\n");
    char cfg[128];

    snprintf(cfg, sizeof(cfg), "DROVER_CONFIG=%s", a);
    load_ok(&s, ARGV("--config", b), ENV(cfg));
    assert_int_equal(s.workers, 7);
    assert_string_equal(s.config, b);
    drv_settings_free(&s);
    unlink(a);
    unlink(b);
}

static void test_app_comes_from_the_positional_or_DROVER_APP(void **state)
{
    struct drv_settings s;

    load_ok(&s, NOARGS, ENV("DROVER_APP=env.wsgi:app"));
    assert_string_equal(s.app, "env.wsgi:app");
    drv_settings_free(&s);
    load_ok(&s, ARGV("cli.wsgi:app"), ENV("DROVER_APP=env.wsgi:app"));
    assert_string_equal(s.app, "cli.wsgi:app");
    drv_settings_free(&s);
}

static void test_unknown_DROVER_variables_are_ignored(void **state)
{
    struct drv_settings s;

    load_ok(&s, NOARGS, ENV("DROVER_WRKERS=9", "DROVER_=1", "DROVERX=2"));
    assert_int_equal(s.workers, 1);
    drv_settings_free(&s);
}

static void test_empty_environment_variables_count_as_unset(void **state)
{
    struct drv_settings s;

    load_ok(
        &s, NOARGS,
        ENV("DROVER_WORKERS=", "PORT=", "WEB_CONCURRENCY=", "DROVER_CONFIG="));
    assert_int_equal(s.workers, 1);
    assert_bind(&s, 1, "0.0.0.0:5000");
    drv_settings_free(&s);
}

static void test_null_envp_is_an_empty_environment(void **state)
{
    struct drv_settings s;

    load_ok(&s, NOARGS, NULL);
    assert_int_equal(s.workers, 1);
    drv_settings_free(&s);
}

/* ---- command-line grammar ----------------------------------------------- */

static void test_flag_values_may_be_separate_joined_or_attached(void **state)
{
    struct drv_settings s;

    load_ok(&s, ARGV("--workers", "3"), NOENV);
    assert_int_equal(s.workers, 3);
    drv_settings_free(&s);
    load_ok(&s, ARGV("--workers=4"), NOENV);
    assert_int_equal(s.workers, 4);
    drv_settings_free(&s);
    load_ok(&s, ARGV("-w", "5"), NOENV);
    assert_int_equal(s.workers, 5);
    drv_settings_free(&s);
    load_ok(&s, ARGV("-w6", "-t0.5", "-b:9000"), NOENV);
    assert_int_equal(s.workers, 6);
    assert_true(s.timeout == 0.5);
    assert_bind(&s, 1, ":9000");
    drv_settings_free(&s);
}

static void test_a_value_may_start_with_a_dash(void **state)
{
    struct drv_settings s;

    load_ok(&s, ARGV("--access-logfile", "-", "--error-logfile", "-"), NOENV);
    assert_string_equal(s.accesslog, "-");
    drv_settings_free(&s);
    load_fails(ARGV("--workers", "-2"), NOENV,
               "--workers: '-2' is below the minimum 1");
}

static void test_aliases_set_the_same_setting(void **state)
{
    struct drv_settings s;

    load_ok(&s,
            ARGV("--keepalive", "5", "--accesslog", "a.log",
                 "--access-log-format", "%(h)s", "--log-file", "e.log",
                 "--loglevel", "debug"),
            NOENV);
    assert_true(s.keepalive == 5);
    assert_string_equal(s.accesslog, "a.log");
    assert_string_equal(s.access_log_format, "%(h)s");
    assert_string_equal(s.errorlog, "e.log");
    assert_int_equal(s.loglevel, DRV_LOG_DEBUG);
    drv_settings_free(&s);
    load_ok(&s, ARGV("--errorlog=x.log", "--keep-alive=0"), NOENV);
    assert_string_equal(s.errorlog, "x.log");
    assert_true(s.keepalive == 0);
    drv_settings_free(&s);
}

static void test_the_last_of_a_repeated_scalar_flag_wins(void **state)
{
    struct drv_settings s;

    load_ok(&s, ARGV("-w", "2", "--workers", "3"), NOENV);
    assert_int_equal(s.workers, 3);
    drv_settings_free(&s);
}

static void test_double_dash_ends_options(void **state)
{
    struct drv_settings s;

    load_ok(&s, ARGV("-w", "2", "--", "-odd:app"), NOENV);
    assert_string_equal(s.app, "-odd:app");
    assert_int_equal(s.workers, 2);
    drv_settings_free(&s);
}

static void test_a_second_positional_is_an_error(void **state)
{
    load_fails(ARGV("a:app", "b:app"), NOENV,
               "unexpected argument 'b:app': only one APP may be given "
               "(APP is 'a:app')");
}

static void test_unknown_long_flag_is_an_error_with_a_suggestion(void **state)
{
    load_fails(ARGV("--wrkers", "4"), NOENV,
               "unknown option '--wrkers' (did you mean '--workers'?)");
    load_fails(ARGV("--no-preloda"), NOENV,
               "unknown option '--no-preloda' (did you mean '--no-preload'?)");
    load_fails(ARGV("--frobnicate=3"), NOENV, "unknown option '--frobnicate'");
}

static void test_unknown_short_flag_is_an_error(void **state)
{
    load_fails(ARGV("-x"), NOENV, "unknown option '-x'");
    load_fails(ARGV("-q", "gevent"), NOENV, "unknown option '-q'");
}

static void test_gunicorn_only_flags_say_what_to_do_instead(void **state)
{
    load_fails(ARGV("--reload"), NOENV,
               "--reload is a gunicorn option drover does not have: use "
               "--dev, drover's reloading single-process mode");
}

static void test_worker_classes_beyond_sync_and_gthread_are_refused(void **state)
{
    load_fails(ARGV("-k", "gevent"), NOENV,
               "-k: worker class 'gevent' is not drover's: its workers are "
               "sync, or gthread with --threads N; drop -k for an event loop "
               "(drover's workers already run one)");
    load_fails(ARGV("--threads=0"), NOENV,
               "--threads: '0' is below the minimum 1");
}

static void test_missing_value_names_the_flag_as_typed(void **state)
{
    load_fails(ARGV("--workers"), NOENV, "--workers: missing value");
    load_fails(ARGV("-w"), NOENV, "-w: missing value");
    load_fails(ARGV("--keepalive"), NOENV, "--keepalive: missing value");
}

static void test_errors_name_the_flag_as_typed(void **state)
{
    load_fails(ARGV("--keepalive", "x"), NOENV,
               "--keepalive: 'x' is not a number of seconds");
    load_fails(ARGV("-t", "soon"), NOENV,
               "-t: 'soon' is not a number of seconds");
    load_fails(ARGV("--workers=abc"), NOENV,
               "--workers: 'abc' is not an integer");
}

static void test_the_first_command_line_error_is_reported(void **state)
{
    load_fails(ARGV("--wrkers", "--bogus"), NOENV,
               "unknown option '--wrkers' (did you mean '--workers'?)");
}

/* ---- types -------------------------------------------------------------- */

static void test_integer_errors_name_their_source(void **state)
{
    load_fails(ARGV("--backlog", "lots"), NOENV,
               "--backlog: 'lots' is not an integer");
    load_fails(NOARGS, ENV("DROVER_WORKERS=x"),
               "DROVER_WORKERS: 'x' is not an integer");
    load_fails(NOARGS, ENV("DROVER_WORKERS=4.5"),
               "DROVER_WORKERS: '4.5' is not an integer");
    load_fails(NOARGS, ENV("DROVER_WORKERS= 4"),
               "DROVER_WORKERS: ' 4' is not an integer");
    load_fails(ARGV("--max-requests", "1e3"), NOENV,
               "--max-requests: '1e3' is not an integer");
}

static void test_integer_bounds_are_enforced(void **state)
{
    load_fails(ARGV("-w", "0"), NOENV, "-w: '0' is below the minimum 1");
    load_fails(ARGV("-w", "1025"), NOENV,
               "-w: '1025' is above the maximum 1024");
    load_fails(ARGV("--backlog", "0"), NOENV,
               "--backlog: '0' is below the minimum 1");
    load_fails(ARGV("--limit-request-line", "8191"), NOENV,
               "--limit-request-line: '8191' is above the maximum 8190");
    load_fails(ARGV("--limit-request-fields", "32769"), NOENV,
               "--limit-request-fields: '32769' is above the maximum 32768");
    load_fails(ARGV("--limit-request-field-size", "-1"), NOENV,
               "--limit-request-field-size: '-1' is below the minimum 0");
    load_fails(NOARGS, ENV("DROVER_MAX_REQUESTS=-5"),
               "DROVER_MAX_REQUESTS: '-5' is below the minimum 0");
    load_fails(ARGV("--max-requests-jitter", "99999999999999999999"), NOENV,
               "--max-requests-jitter: '99999999999999999999' is out of "
               "range 0-9223372036854775807");
}

static void test_integer_bounds_are_inclusive(void **state)
{
    struct drv_settings s;

    load_ok(&s,
            ARGV("-w", "1024", "--backlog", "65535", "--limit-request-line",
                 "0", "--limit-request-fields", "32768",
                 "--limit-request-field-size", "1048576", "--max-requests",
                 "+1000", "--max-requests-jitter", "50"),
            NOENV);
    assert_int_equal(s.workers, 1024);
    assert_int_equal(s.backlog, 65535);
    assert_int_equal(s.limit_request_line, 0);
    assert_int_equal(s.limit_request_fields, 32768);
    assert_int_equal(s.limit_request_field_size, 1048576);
    assert_int_equal(s.max_requests, 1000);
    assert_int_equal(s.max_requests_jitter, 50);
    drv_settings_free(&s);
}

static void test_durations_accept_integers_and_decimals(void **state)
{
    struct drv_settings s;

    load_ok(&s,
            ARGV("-t", "120", "--graceful-timeout", "0.5", "--header-timeout",
                 ".25", "--io-timeout", "1e2", "--keep-alive", "0"),
            NOENV);
    assert_true(s.timeout == 120);
    assert_true(s.graceful_timeout == 0.5);
    assert_true(s.header_timeout == 0.25);
    assert_true(s.io_timeout == 100);
    assert_true(s.keepalive == 0);
    drv_settings_free(&s);
}

static void test_duration_errors_name_their_source(void **state)
{
    load_fails(NOARGS, ENV("DROVER_TIMEOUT=-1"),
               "DROVER_TIMEOUT: '-1' is below the minimum 0");
    load_fails(ARGV("--timeout", "30s"), NOENV,
               "--timeout: '30s' is not a number of seconds");
    load_fails(ARGV("--timeout", "inf"), NOENV,
               "--timeout: 'inf' is not a number of seconds");
    load_fails(ARGV("--timeout", "nan"), NOENV,
               "--timeout: 'nan' is not a number of seconds");
    load_fails(ARGV("--timeout", "0x10"), NOENV,
               "--timeout: '0x10' is not a number of seconds");
    load_fails(ARGV("--timeout", "."), NOENV,
               "--timeout: '.' is not a number of seconds");
    load_fails(ARGV("--timeout", "1e999"), NOENV,
               "--timeout: '1e999' is too large");
    load_fails(ARGV("--header-timeout", "0"), NOENV,
               "--header-timeout: '0' must be greater than 0");
    load_fails(NOARGS, ENV("DROVER_IO_TIMEOUT=0.0"),
               "DROVER_IO_TIMEOUT: '0.0' must be greater than 0");
}

static void test_sizes_accept_bytes_and_1024_suffixes(void **state)
{
    struct drv_settings s;

    load_ok(&s, ARGV("--max-body-size", "512", "--body-buffer-size", "64k"),
            NOENV);
    assert_int_equal(s.max_body_size, 512);
    assert_int_equal(s.body_buffer_size, 64 * 1024);
    drv_settings_free(&s);
    load_ok(&s, ARGV("--max-body-size", "10M", "--body-buffer-size", "2K"),
            NOENV);
    assert_int_equal(s.max_body_size, 10 * 1024 * 1024);
    assert_int_equal(s.body_buffer_size, 2048);
    drv_settings_free(&s);
    load_ok(&s, ARGV("--max-body-size", "3g", "--body-buffer-size", "1m"),
            NOENV);
    assert_int_equal(s.max_body_size, INT64_C(3) << 30);
    assert_int_equal(s.body_buffer_size, 1 << 20);
    drv_settings_free(&s);
    load_ok(&s, ARGV("--max-body-size", "8G"), NOENV);
    assert_int_equal(s.max_body_size, INT64_C(8) << 30);
    drv_settings_free(&s);
}

static void test_size_errors_name_their_source(void **state)
{
    load_fails(ARGV("--max-body-size", "10x"), NOENV,
               "--max-body-size: '10x' is not a size (bytes, or a number "
               "followed by k, m or g)");
    load_fails(ARGV("--max-body-size", "1kb"), NOENV,
               "--max-body-size: '1kb' is not a size (bytes, or a number "
               "followed by k, m or g)");
    load_fails(ARGV("--max-body-size", "k"), NOENV,
               "--max-body-size: 'k' is not a size (bytes, or a number "
               "followed by k, m or g)");
    load_fails(NOARGS, ENV("DROVER_BODY_BUFFER_SIZE=1.5m"),
               "DROVER_BODY_BUFFER_SIZE: '1.5m' is not a size (bytes, or a "
               "number followed by k, m or g)");
    load_fails(ARGV("--max-body-size", "-1"), NOENV,
               "--max-body-size: '-1' is below the minimum 0");
    load_fails(ARGV("--max-body-size", "9223372036854775807k"), NOENV,
               "--max-body-size: '9223372036854775807k' is too large");
}

static void test_booleans_accept_every_spelling(void **state)
{
    static const char *yes[] = {"true", "TRUE", "yes", "Yes", "on", "ON", "1"};
    static const char *no[] = {"false", "False", "no", "NO", "off", "Off", "0"};
    struct drv_settings s;
    char var[64];

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        snprintf(var, sizeof(var), "DROVER_DEV=%s", yes[i]);
        load_ok(&s, NOARGS, ENV(var));
        assert_true(s.dev);
        drv_settings_free(&s);
        snprintf(var, sizeof(var), "DROVER_PRELOAD=%s", no[i]);
        load_ok(&s, NOARGS, ENV(var));
        assert_false(s.preload);
        drv_settings_free(&s);
    }
}

static void test_no_preload_turns_preload_off(void **state)
{
    struct drv_settings s;

    load_ok(&s, ARGV("--no-preload"), NOENV);
    assert_false(s.preload);
    drv_settings_free(&s);
    load_ok(&s, ARGV("--preload"), ENV("DROVER_PRELOAD=no"));
    assert_true(s.preload);
    drv_settings_free(&s);
    load_ok(&s, ARGV("--dev", "--no-dev"), NOENV);
    assert_false(s.dev);
    drv_settings_free(&s);
    load_ok(&s, ARGV("--preload=off", "--dev=yes"), NOENV);
    assert_false(s.preload);
    assert_true(s.dev);
    drv_settings_free(&s);
}

static void test_a_bool_flag_does_not_consume_the_next_argument(void **state)
{
    struct drv_settings s;

    load_ok(&s, ARGV("--preload", "app:x"), NOENV);
    assert_true(s.preload);
    assert_string_equal(s.app, "app:x");
    drv_settings_free(&s);
}

static void test_boolean_errors_name_their_source(void **state)
{
    load_fails(NOARGS, ENV("DROVER_PRELOAD=maybe"),
               "DROVER_PRELOAD: 'maybe' is not a boolean (true/false, "
               "yes/no, on/off, 1/0)");
    load_fails(ARGV("--dev=2"), NOENV,
               "--dev: '2' is not a boolean (true/false, yes/no, on/off, "
               "1/0)");
    load_fails(ARGV("--no-dev=1"), NOENV, "--no-dev: does not take a value");
}

static void test_log_level_is_one_of_five_names(void **state)
{
    struct drv_settings s;

    load_ok(&s, ARGV("--log-level", "WARNING"), NOENV);
    assert_int_equal(s.loglevel, DRV_LOG_WARNING);
    assert_string_equal(drv_loglevel_name(s.loglevel), "warning");
    drv_settings_free(&s);
    load_ok(&s, NOARGS, ENV("DROVER_LOGLEVEL=critical"));
    assert_int_equal(s.loglevel, DRV_LOG_CRITICAL);
    drv_settings_free(&s);
    load_fails(ARGV("--log-level", "verbose"), NOENV,
               "--log-level: 'verbose' is not one of debug, info, warning, "
               "error, critical");
    assert_string_equal(drv_loglevel_name(DRV_LOG_DEBUG), "debug");
    assert_string_equal(drv_loglevel_name(DRV_LOG_ERROR), "error");
    assert_string_equal(drv_loglevel_name((enum drv_loglevel)42), "unknown");
}

static void test_strings_may_be_unset_unless_required(void **state)
{
    struct drv_settings s;

    load_ok(&s, ARGV("--access-logfile", "a.log", "--access-logfile", ""),
            NOENV);
    assert_null(s.accesslog);
    drv_settings_free(&s);
    load_fails(ARGV("--access-logformat", ""), NOENV,
               "--access-logformat: must not be empty");
    load_fails(ARGV("--error-logfile="), NOENV,
               "--error-logfile: must not be empty");
}

/* ---- bind ---------------------------------------------------------------- */

static void test_bind_flag_repeats_to_listen_on_several(void **state)
{
    struct drv_settings s;

    load_ok(&s,
            ARGV("-b", "127.0.0.1:8000", "--bind", "[::1]:8000",
                 "--bind=unix:/run/drover.sock"),
            NOENV);
    assert_bind(&s, 3, "127.0.0.1:8000", "[::1]:8000", "unix:/run/drover.sock");
    drv_settings_free(&s);
}

static void
test_cli_binds_replace_the_yaml_list_instead_of_appending(void **state)
{
    struct drv_settings s;
    char *path = yaml_file(0, "bind:\n  - 10.0.0.1:80\n"
                              "  - 10.0.0.2:80\n");

    load_ok(&s, ARGV("-c", path, "-b", ":1", "-b", ":2"),
            ENV("DROVER_BIND=:3"));
    assert_bind(&s, 2, ":1", ":2");
    drv_settings_free(&s);
    load_ok(&s, ARGV("-c", path), NOENV);
    assert_bind(&s, 2, "10.0.0.1:80", "10.0.0.2:80");
    drv_settings_free(&s);
    unlink(path);
}

static void test_DROVER_BIND_is_comma_separated(void **state)
{
    struct drv_settings s;

    load_ok(&s, NOARGS, ENV("DROVER_BIND=127.0.0.1:1, unix:/tmp/x ,fd://3"));
    assert_bind(&s, 3, "127.0.0.1:1", "unix:/tmp/x", "fd://3");
    drv_settings_free(&s);
    load_fails(NOARGS, ENV("DROVER_BIND=:1,,:2"),
               "DROVER_BIND: empty item in the list ':1,,:2'");
}

static void test_bad_bind_addresses_name_their_source(void **state)
{
    load_fails(ARGV("--bind", "127.0.0.1:99999"), NOENV,
               "--bind: bad address '127.0.0.1:99999': port '99999' is out "
               "of range 0-65535");
    load_fails(ARGV("-b", "[::1"), NOENV,
               "-b: bad address '[::1': unclosed '[' in IPv6 address");
    load_fails(NOARGS, ENV("DROVER_BIND=:1,unix:"),
               "DROVER_BIND: bad address 'unix:': unix socket path is "
               "empty");
    load_fails(ARGV("--bind", ""), NOENV,
               "--bind: bad address '': empty address");
}

static void test_only_bind_refuses_an_empty_yaml_list(void **state)
{
    struct drv_settings s;
    char want[256];
    char *path = yaml_file(0, "forwarded_allow_ips: []\npythonpath: []\n"
                              "env: []\nreload_extra_files: []\n");

    load_ok(&s, ARGV("-c", path), NOENV);
    assert_int_equal(s.pythonpath.n + s.env.n + s.reload_extra_files.n, 0);
    assert_bind(&s, 1, "0.0.0.0:5000");
    drv_settings_free(&s);
    unlink(path);
    path = yaml_file(0, "bind: []\n");
    snprintf(want, sizeof(want), "%s:1:7: 'bind' needs at least one value",
             path);
    load_fails(ARGV("-c", path), NOENV, want);
    unlink(path);
}

static void test_PORT_changes_the_default_bind(void **state)
{
    struct drv_settings s;

    load_ok(&s, NOARGS, ENV("PORT=8080"));
    assert_bind(&s, 1, "0.0.0.0:8080");
    drv_settings_free(&s);
}

static void test_explicit_bind_overrides_PORT(void **state)
{
    struct drv_settings s;

    load_ok(&s, ARGV("-b", "127.0.0.1:9"), ENV("PORT=8080"));
    assert_bind(&s, 1, "127.0.0.1:9");
    drv_settings_free(&s);
    load_ok(&s, NOARGS, ENV("PORT=8080", "DROVER_BIND=:7"));
    assert_bind(&s, 1, ":7");
    drv_settings_free(&s);
}

static void test_bad_PORT_is_an_error_naming_PORT(void **state)
{
    load_fails(NOARGS, ENV("PORT=http"),
               "PORT: 'http' is not a port number (0-65535)");
    load_fails(NOARGS, ENV("PORT=65536"),
               "PORT: '65536' is not a port number (0-65535)");
    load_fails(NOARGS, ENV("PORT=-1"),
               "PORT: '-1' is not a port number (0-65535)");
    load_fails(NOARGS, ENV("PORT=123456789012345678901234567890"),
               "PORT: '123456789012345678901234567890' is not a port number "
               "(0-65535)");
}

static void test_dev_binds_loopback_when_no_bind_is_given(void **state)
{
    struct drv_settings s;

    load_ok(&s, ARGV("--dev"), NOENV);
    assert_bind(&s, 1, "127.0.0.1:5000");
    drv_settings_free(&s);
    load_ok(&s, ARGV("--dev"), ENV("PORT=3000"));
    assert_bind(&s, 1, "127.0.0.1:3000");
    drv_settings_free(&s);
    load_ok(&s, NOARGS, ENV("DROVER_DEV=1"));
    assert_bind(&s, 1, "127.0.0.1:5000");
    drv_settings_free(&s);
}

static void test_dev_keeps_an_explicit_bind(void **state)
{
    struct drv_settings s;

    load_ok(&s, ARGV("--dev", "-b", "0.0.0.0:5000"), NOENV);
    assert_bind(&s, 1, "0.0.0.0:5000");
    drv_settings_free(&s);
}

/* ---- WEB_CONCURRENCY ----------------------------------------------------- */

static void test_WEB_CONCURRENCY_changes_the_default_workers(void **state)
{
    struct drv_settings s;

    load_ok(&s, NOARGS, ENV("WEB_CONCURRENCY=6"));
    assert_int_equal(s.workers, 6);
    drv_settings_free(&s);
}

static void test_explicit_workers_override_WEB_CONCURRENCY(void **state)
{
    struct drv_settings s;

    load_ok(&s, NOARGS, ENV("WEB_CONCURRENCY=6", "DROVER_WORKERS=2"));
    assert_int_equal(s.workers, 2);
    drv_settings_free(&s);
    load_ok(&s, ARGV("-w", "3"), ENV("WEB_CONCURRENCY=6"));
    assert_int_equal(s.workers, 3);
    drv_settings_free(&s);
}

static void test_bad_WEB_CONCURRENCY_is_an_error_naming_it(void **state)
{
    load_fails(NOARGS, ENV("WEB_CONCURRENCY=many"),
               "WEB_CONCURRENCY: 'many' is not an integer");
    load_fails(NOARGS, ENV("WEB_CONCURRENCY=0"),
               "WEB_CONCURRENCY: '0' is below the minimum 1");
}

/* ---- actions --------------------------------------------------------------
 */

static void test_actions_are_returned(void **state)
{
    struct drv_settings s;

    assert_int_equal(load_ok(&s, ARGV("-h"), NOENV), DRV_ACTION_HELP);
    drv_settings_free(&s);
    assert_int_equal(load_ok(&s, ARGV("--version"), NOENV), DRV_ACTION_VERSION);
    drv_settings_free(&s);
    assert_int_equal(load_ok(&s, ARGV("-v"), NOENV), DRV_ACTION_VERSION);
    drv_settings_free(&s);
    assert_int_equal(load_ok(&s, ARGV("--print-config"), NOENV),
                     DRV_ACTION_PRINT_CONFIG);
    drv_settings_free(&s);
    assert_int_equal(load_ok(&s, ARGV("--check-config", "-w", "2"), NOENV),
                     DRV_ACTION_CHECK_CONFIG);
    assert_int_equal(s.workers, 2);
    drv_settings_free(&s);
    assert_int_equal(load_ok(&s, ARGV("--print-reference"), NOENV),
                     DRV_ACTION_PRINT_REFERENCE);
    drv_settings_free(&s);
}

static void test_help_wins_over_a_broken_command_line_and_file(void **state)
{
    struct drv_settings s;

    assert_int_equal(
        load_ok(&s, ARGV("--wrkers", "--help"),
                ENV("DROVER_CONFIG=/nonexistent/drover.yml", "PORT=bad")),
        DRV_ACTION_HELP);
    assert_int_equal(s.workers, 1);
    drv_settings_free(&s);
    assert_int_equal(load_ok(&s, ARGV("--version", "--help"), NOENV),
                     DRV_ACTION_HELP);
    drv_settings_free(&s);
}

static void test_check_config_still_validates(void **state)
{
    load_fails(ARGV("--check-config", "-w", "x"), NOENV,
               "-w: 'x' is not an integer");
    load_fails(ARGV("--print-config=yes"), NOENV,
               "--print-config: does not take a value");
}

/* ---- output ---------------------------------------------------------------
 */

static void assert_same_settings(const struct drv_settings *a,
                                 const struct drv_settings *b)
{
#define SAME_STR(f)                                                            \
    do {                                                                       \
        if (a->f || b->f) {                                                    \
            assert_non_null(a->f);                                             \
            assert_non_null(b->f);                                             \
            assert_string_equal(a->f, b->f);                                   \
        }                                                                      \
    } while (0)
    SAME_STR(app);
    assert_int_equal(a->bind.n, b->bind.n);
    for (size_t i = 0; i < a->bind.n; i++)
        assert_string_equal(a->bind.v[i], b->bind.v[i]);
    assert_int_equal(a->backlog, b->backlog);
    assert_int_equal(a->workers, b->workers);
    assert_true(a->timeout == b->timeout);
    assert_true(a->graceful_timeout == b->graceful_timeout);
    assert_true(a->keepalive == b->keepalive);
    assert_true(a->header_timeout == b->header_timeout);
    assert_true(a->io_timeout == b->io_timeout);
    assert_int_equal(a->max_requests, b->max_requests);
    assert_int_equal(a->max_requests_jitter, b->max_requests_jitter);
    assert_int_equal(a->preload, b->preload);
    assert_int_equal(a->limit_request_line, b->limit_request_line);
    assert_int_equal(a->limit_request_fields, b->limit_request_fields);
    assert_int_equal(a->limit_request_field_size, b->limit_request_field_size);
    assert_int_equal(a->max_body_size, b->max_body_size);
    assert_int_equal(a->body_buffer_size, b->body_buffer_size);
    SAME_STR(accesslog);
    SAME_STR(access_log_format);
    SAME_STR(errorlog);
    assert_int_equal(a->loglevel, b->loglevel);
    assert_int_equal(a->dev, b->dev);
#undef SAME_STR
}

/* Print `a` as YAML, load it back with no other source, compare. */
static void assert_round_trips(const struct drv_settings *a)
{
    struct drv_settings b;
    char path[] = "/tmp/drover-test-print-XXXXXX";
    int fd = mkstemp(path);
    FILE *f;

    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    drv_settings_print_yaml(a, f);
    fclose(f);
    load_ok(&b, ARGV("-c", path), NOENV);
    assert_same_settings(a, &b);
    drv_settings_free(&b);
    unlink(path);
}

static void test_print_yaml_of_the_defaults_loads_back_identical(void **state)
{
    struct drv_settings s;

    load_ok(&s, NOARGS, NOENV);
    assert_round_trips(&s);
    drv_settings_free(&s);
}

static void test_print_yaml_loads_back_identical_settings(void **state)
{
    struct drv_settings s;

    load_ok(&s,
            ARGV("-b", "127.0.0.1:8000", "-b", "[::1]:8000", "-b",
                 "unix:/tmp/a \"quoted\" sock", "-w", "7", "-t", "0.1",
                 "--graceful-timeout", "2.75", "--keepalive", "0",
                 "--header-timeout", "0.001", "--io-timeout", "1e-7",
                 "--max-requests", "1000", "--max-requests-jitter", "50",
                 "--no-preload", "--limit-request-line", "0", "--max-body-size",
                 "10m", "--body-buffer-size", "0", "--access-logfile", "-",
                 "--access-logformat",
                 "%(h)s \\ \"%(r)s\"\t\x01 caf\xc3\xa9 # not a comment",
                 "--error-logfile", "/var/log/drover: error.log", "--log-level",
                 "error", "--dev", "pkg.wsgi:app"),
            NOENV);
    assert_round_trips(&s);
    drv_settings_free(&s);
}

static void test_print_yaml_writes_lists_and_unset_strings(void **state)
{
    struct drv_settings s;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    load_ok(&s, ARGV("-b", ":1", "-b", ":2"), NOENV);
    drv_settings_print_yaml(&s, f);
    fclose(f);
    assert_non_null(strstr(buf, "\nbind:\n  - \":1\"\n  - \":2\"\n"));
    assert_non_null(strstr(buf, "\naccesslog: ~\n"));
    assert_non_null(strstr(buf, "\nworkers: 1\n"));
    assert_non_null(strstr(buf, "\ntimeout: 30\n"));
    assert_non_null(strstr(buf, "\npreload: true\n"));
    assert_non_null(strstr(buf, "\nloglevel: info\n"));
    assert_null(strstr(buf, "\nconfig:"));
    free(buf);
    drv_settings_free(&s);
}

static void test_env_items_must_be_KEY_EQUALS_VALUE(void **state)
{
    struct drv_settings s;
    char want[256];
    char *path;

    load_ok(&s, ARGV("-e", "A=1", "--env", "B="), ENV("DROVER_ENV=C=x=y"));
    assert_int_equal(s.env.n, 2);
    assert_string_equal(s.env.v[1], "B=");
    drv_settings_free(&s);
    load_fails(ARGV("--env", "FOO"), NOENV, "--env: 'FOO' is not KEY=VALUE");
    load_fails(ARGV("-e", "=x"), NOENV, "-e: '=x' is not KEY=VALUE");
    load_fails(NOARGS, ENV("DROVER_ENV=A=1,B"),
               "DROVER_ENV: 'B' is not KEY=VALUE");
    path = yaml_file(0, "env:\n  - A=1\n  - B\n");
    snprintf(want, sizeof(want), "%s:3:5: 'B' is not KEY=VALUE", path);
    load_fails(ARGV("-c", path), NOENV, want);
    unlink(path);
}

static void test_free_is_safe_on_a_zeroed_or_freed_struct(void **state)
{
    struct drv_settings s;

    memset(&s, 0, sizeof(s));
    drv_settings_free(&s);
    load_ok(&s, ARGV("-b", ":1", "app:x"), NOENV);
    drv_settings_free(&s);
    drv_settings_free(&s);
    assert_null(s.app);
    assert_int_equal(s.bind.n, 0);
}

static void test_small_error_buffers_are_truncated_not_overrun(void **state)
{
    struct drv_settings s;
    enum drv_action action;
    char err[8];

    memset(&s, 0, sizeof(s));
    assert_int_equal(drv_settings_load(&s, 3, ARGV("-w", "abc"), NOENV, &action,
                                       err, sizeof(err)),
                     -1);
    assert_string_equal(err, "-w: 'ab");
    assert_int_equal(
        drv_settings_load(&s, 3, ARGV("-w", "abc"), NOENV, &action, NULL, 0),
        -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_the_documented_values),
        cmocka_unit_test(
            test_cli_overrides_env_overrides_yaml_overrides_default),
        cmocka_unit_test(test_config_flag_overrides_DROVER_CONFIG),
        cmocka_unit_test(test_app_comes_from_the_positional_or_DROVER_APP),
        cmocka_unit_test(test_unknown_DROVER_variables_are_ignored),
        cmocka_unit_test(test_empty_environment_variables_count_as_unset),
        cmocka_unit_test(test_null_envp_is_an_empty_environment),
        cmocka_unit_test(test_flag_values_may_be_separate_joined_or_attached),
        cmocka_unit_test(test_a_value_may_start_with_a_dash),
        cmocka_unit_test(test_aliases_set_the_same_setting),
        cmocka_unit_test(test_the_last_of_a_repeated_scalar_flag_wins),
        cmocka_unit_test(test_double_dash_ends_options),
        cmocka_unit_test(test_a_second_positional_is_an_error),
        cmocka_unit_test(test_unknown_long_flag_is_an_error_with_a_suggestion),
        cmocka_unit_test(test_unknown_short_flag_is_an_error),
        cmocka_unit_test(test_gunicorn_only_flags_say_what_to_do_instead),
        cmocka_unit_test(test_worker_classes_beyond_sync_and_gthread_are_refused),
        cmocka_unit_test(test_missing_value_names_the_flag_as_typed),
        cmocka_unit_test(test_errors_name_the_flag_as_typed),
        cmocka_unit_test(test_the_first_command_line_error_is_reported),
        cmocka_unit_test(test_integer_errors_name_their_source),
        cmocka_unit_test(test_integer_bounds_are_enforced),
        cmocka_unit_test(test_integer_bounds_are_inclusive),
        cmocka_unit_test(test_durations_accept_integers_and_decimals),
        cmocka_unit_test(test_duration_errors_name_their_source),
        cmocka_unit_test(test_sizes_accept_bytes_and_1024_suffixes),
        cmocka_unit_test(test_size_errors_name_their_source),
        cmocka_unit_test(test_booleans_accept_every_spelling),
        cmocka_unit_test(test_no_preload_turns_preload_off),
        cmocka_unit_test(test_a_bool_flag_does_not_consume_the_next_argument),
        cmocka_unit_test(test_boolean_errors_name_their_source),
        cmocka_unit_test(test_log_level_is_one_of_five_names),
        cmocka_unit_test(test_strings_may_be_unset_unless_required),
        cmocka_unit_test(test_bind_flag_repeats_to_listen_on_several),
        cmocka_unit_test(
            test_cli_binds_replace_the_yaml_list_instead_of_appending),
        cmocka_unit_test(test_DROVER_BIND_is_comma_separated),
        cmocka_unit_test(test_bad_bind_addresses_name_their_source),
        cmocka_unit_test(test_only_bind_refuses_an_empty_yaml_list),
        cmocka_unit_test(test_PORT_changes_the_default_bind),
        cmocka_unit_test(test_explicit_bind_overrides_PORT),
        cmocka_unit_test(test_bad_PORT_is_an_error_naming_PORT),
        cmocka_unit_test(test_dev_binds_loopback_when_no_bind_is_given),
        cmocka_unit_test(test_dev_keeps_an_explicit_bind),
        cmocka_unit_test(test_WEB_CONCURRENCY_changes_the_default_workers),
        cmocka_unit_test(test_explicit_workers_override_WEB_CONCURRENCY),
        cmocka_unit_test(test_bad_WEB_CONCURRENCY_is_an_error_naming_it),
        cmocka_unit_test(test_actions_are_returned),
        cmocka_unit_test(test_help_wins_over_a_broken_command_line_and_file),
        cmocka_unit_test(test_check_config_still_validates),
        cmocka_unit_test(test_print_yaml_of_the_defaults_loads_back_identical),
        cmocka_unit_test(test_print_yaml_loads_back_identical_settings),
        cmocka_unit_test(test_print_yaml_writes_lists_and_unset_strings),
        cmocka_unit_test(test_env_items_must_be_KEY_EQUALS_VALUE),
        cmocka_unit_test(test_free_is_safe_on_a_zeroed_or_freed_struct),
        cmocka_unit_test(test_small_error_buffers_are_truncated_not_overrun),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
