/*
 * Unit tests for doc.c: --help, the Markdown reference and the man page
 * each show every setting of the table, and what they show is right for
 * their format (80 columns, Markdown tables, roff that copies and pastes).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doc.h"
#include "settings.h"

/* argv/envp literals: ARGV("-w", "4") is {"drover", "-w", "4", NULL}. */
#define ARGV(...) ((char *[]){"drover", __VA_ARGS__, NULL})
#define NOENV     ((char *[]){NULL})

static char *capture_help(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    drv_doc_help(f, "drover");
    fclose(f);
    return buf;
}

static void test_help_has_usage_app_forms_and_every_flag(void **state)
{
    static const char *want[] = {
        "usage: drover [OPTIONS] APP\n",
        "module:callable",
        "path/to/app.so:symbol",
        "-b, --bind ADDRESS",
        "-w, --workers INT",
        "-t, --timeout SECONDS",
        "-c, --config FILE",
        "--preload, --no-preload",
        "--keep-alive, --keepalive SECONDS",
        "--max-requests-jitter",
        "--limit-request-field-size",
        "--body-buffer-size SIZE",
        "--access-logfile, --accesslog FILE",
        "--log-level, --loglevel LEVEL",
        "--dev, --no-dev",
        "DROVER_WORKERS",
        "default 2048",
        "--help",
        "--version",
        "--print-config",
        "--check-config",
        "--print-reference",
        "--print-man",
    };
    char *help = capture_help();

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(help, want[i]))
            fail_msg("--help lacks '%s'", want[i]);
    free(help);
}

static void test_help_lines_fit_80_columns(void **state)
{
    char *help = capture_help();
    size_t col = 0;

    for (const char *p = help; *p; p++) {
        col = *p == '\n' ? 0 : col + 1;
        assert_true(col <= 80);
    }
    free(help);
}

static void test_help_names_each_list_settings_own_item(void **state)
{
    static const char *want[] = {
        "[list (each item: address), env DROVER_BIND, default 0.0.0.0:5000]",
        "[list (each item: IP address, ADDRESS/BITS network or *), env\n",
        "[list (each item: directory), env DROVER_PYTHONPATH",
        "[list (each item: KEY=VALUE), env DROVER_ENV",
        "[list (each item: file or directory), env",
        "[env DROVER_WORKERS, default 1]", /* scalars name no type */
    };
    char *help = capture_help();

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(help, want[i]))
            fail_msg("--help lacks '%s'", want[i]);
    assert_null(strstr(help, "list of addresses"));
    free(help);
}

/* Each flag in one "  -b, --bind ADDRESS" line of --help, in turn. */
static void check_help_line_flags(const char *line)
{
    char flag[80], err[512];
    struct drv_settings s;
    enum drv_action action;

    while (*line == '-') {
        size_t n = strcspn(line, ", \n");

        assert_true(n < sizeof(flag));
        memcpy(flag, line, n);
        flag[n] = '\0';
        memset(&s, 0, sizeof(s));
        err[0] = '\0';
        /* a bad value is fine; only the flag itself must be known */
        if (drv_settings_load(&s, 3, ARGV(flag, "x"), NOENV, &action, err,
                              sizeof(err)) == 0)
            drv_settings_free(&s);
        if (strstr(err, "unknown option"))
            fail_msg("--help lists %s, which is not accepted: %s", flag, err);
        line += n;
        line += strspn(line, ", ");
    }
}

static void test_every_flag_in_help_is_accepted(void **state)
{
    char *help = capture_help();
    size_t flags = 0;

    for (const char *p = help; p; p = strchr(p, '\n')) {
        p += *p == '\n';
        if (strncmp(p, "  -", 3) != 0)
            continue;
        check_help_line_flags(p + 2);
        flags++;
    }
    assert_true(flags > 30);
    free(help);
}

static void test_reference_documents_every_setting(void **state)
{
    static const char *want[] = {
        "### `bind`",
        "### `max_requests_jitter`",
        "`DROVER_BODY_BUFFER_SIZE`",
        "### `access_log_format`",
        "| Range | 1 to 1024 |",
        "WEB_CONCURRENCY",
        "`--no-preload`",
        "| YAML | (not allowed) |",
    };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    drv_doc_reference(f);
    fclose(f);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(buf, want[i]))
            fail_msg("reference lacks '%s'", want[i]);
    free(buf);
}

/* Every list used to be typed "list of addresses", env and pythonpath
 * included. */
static void test_reference_names_each_list_settings_own_item(void **state)
{
    static const char *want[] = {
        "| Type | list (each item: address) |",
        "| Type | list (each item: IP address, ADDRESS/BITS network or *) |",
        "| Type | list (each item: directory) |",
        "| Type | list (each item: KEY=VALUE) |",
        "| Type | list (each item: file or directory) |",
    };
    char *buf = NULL;
    size_t len = 0, lists = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    drv_doc_reference(f);
    fclose(f);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(buf, want[i]))
            fail_msg("reference lacks '%s'", want[i]);
    for (const char *p = buf; (p = strstr(p, "| Type | list")); p++)
        lists++;
    assert_int_equal(lists, sizeof(want) / sizeof(want[0]));
    assert_null(strstr(buf, "list of addresses"));
    free(buf);
}

/* ---- the man page ---- */

static char *capture_man(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    drv_doc_man(f);
    fclose(f);
    return buf;
}

static void test_the_man_page_has_the_usual_sections(void **state)
{
    static const char *want[] = {
        ".TH DROVER 1 ",
        "\n.SH NAME\ndrover \\- ",
        "\n.SH SYNOPSIS\n",
        "\n.SH DESCRIPTION\n",
        "\n.SH OPTIONS\n",
        "\n.SS Actions\n",
        "\n.SS Workers\n",
        "\n.SH CONFIGURATION\n",
        "\n.SH ENVIRONMENT\n",
        "\n.SH SIGNALS\n",
        "\n.SH \"EXIT STATUS\"\n",
        "\n.SH \"SEE ALSO\"\n",
    };
    char *man = capture_man();

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(man, want[i]))
            fail_msg("the man page lacks '%s'", want[i]);
    free(man);
}

/* "--max-requests" as the man page writes it: \fB\-\-max\-requests\fR. */
static void roff_flag(const char *flag, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "\\fB");
    for (const char *p = flag; *p && n + 3 < len; p++) {
        if (*p == '-')
            buf[n++] = '\\';
        buf[n++] = *p;
    }
    snprintf(buf + n, len - n, "\\fR");
}

/* Every flag of every "  -b, --bind ADDRESS" line of --help. */
static void test_the_man_page_names_every_flag_of_help(void **state)
{
    char *help = capture_help(), *man = capture_man();
    size_t flags = 0;

    for (const char *p = help; p; p = strchr(p, '\n')) {
        p += *p == '\n';
        if (strncmp(p, "  -", 3) != 0)
            continue;
        for (p += 2; *p == '-';) {
            char flag[80], want[200];
            size_t n = strcspn(p, ", \n");
            assert_true(n < sizeof(flag));
            memcpy(flag, p, n);
            flag[n] = '\0';
            roff_flag(flag, want, sizeof(want));
            if (!strstr(man, want))
                fail_msg("the man page lacks %s (%s)", flag, want);
            flags++;
            p += n;
            p += strspn(p, ", ");
        }
    }
    assert_true(flags > 40);
    free(help);
    free(man);
}

static void test_the_man_page_names_variables_keys_signals_and_statuses(
    void **state)
{
    static const char *want[] = {
        "\\fBDROVER_WORKERS\\fR",
        "\\fBDROVER_ACCESS_LOG_FORMAT\\fR",
        "YAML: \\fBmax_requests_jitter\\fR",
        "\\fBWEB_CONCURRENCY\\fR",
        "\\fBPORT\\fR",
        "\\fBLISTEN_FDS",
        "\\fBSIGHUP\\fR",
        "\\fBSIGTTIN, SIGTTOU\\fR",
        "\\fBSIGABRT\\fR",
        ".TP\n.B 0\n",
        ".TP\n.B 1\n",
        ".TP\n.B 2\n",
        ".TP\n.B 3\n",
    };
    char *man = capture_man();

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(man, want[i]))
            fail_msg("the man page lacks '%s'", want[i]);
    free(man);
}

/* A bare '-' is a hyphen to troff (it may become U+2010 and never copy
 * as a flag); a line opening with '.' or '\'' that is not a request
 * would vanish. */
static void test_the_man_page_text_is_literal_roff(void **state)
{
    char *man = capture_man();
    size_t lines = 0;

    for (char *line = man, *next; *line; line = next) {
        next = strchr(line, '\n');
        assert_non_null(next);
        *next++ = '\0';
        lines++;
        if (line[0] == '.' && line[1] == '\\' && line[2] == '"')
            continue; /* a comment */
        if (line[0] == '.') {
            /* .TH .SH .SS .TP .IP .PP .B .br .nh .ad */
            assert_non_null(strchr("STIPBbna", line[1]));
            continue;
        }
        assert_true(line[0] != '\'' && line[0] != ' ' && line[0] != '\0');
        for (const char *p = line; *p; p++) {
            if (*p == '\\') {
                p++; /* the escaped character */
                continue;
            }
            if (*p == '-')
                fail_msg("bare '-' in man line %zu: %s", lines, line);
        }
    }
    assert_true(lines > 200);
    free(man);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_has_usage_app_forms_and_every_flag),
        cmocka_unit_test(test_help_lines_fit_80_columns),
        cmocka_unit_test(test_help_names_each_list_settings_own_item),
        cmocka_unit_test(test_every_flag_in_help_is_accepted),
        cmocka_unit_test(test_reference_documents_every_setting),
        cmocka_unit_test(test_reference_names_each_list_settings_own_item),
        cmocka_unit_test(test_the_man_page_has_the_usual_sections),
        cmocka_unit_test(test_the_man_page_names_every_flag_of_help),
        cmocka_unit_test(
            test_the_man_page_names_variables_keys_signals_and_statuses),
        cmocka_unit_test(test_the_man_page_text_is_literal_roff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
