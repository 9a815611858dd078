/*
 * Unit tests for status.c: the /status lines parsed back (unknown kinds
 * skipped, a foreign answer refused), ages and sizes as `drover status`
 * shows them, and the printed table fitting the terminal's width.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

static const char answer[] =
    "drover-status 1\n"
    "master 4242 3 65000 1 2\n"
    "worker 1 4243 busy 5000 60 30000000 1500 GET /sleep?s=3 HTTP/1.1\n"
    "worker 2 4244 idle 5000 40 -1 0 -\n"
    "future-kind 1 2 3\n"
    "totals 100 2 5 4\n"
    "listener 7 2048 http://127.0.0.1:5000\n"
    "listener -1 -1 unix:/run/my app.sock\n";

static void test_parse_reads_every_kind_of_line(void **state)
{
    (void)state;
    struct drv_status st;
    assert_int_equal(drv_status_parse(answer, &st), 0);
    assert_int_equal(st.pid, 4242);
    assert_int_equal(st.generation, 3);
    assert_int_equal(st.uptime_ms, 65000);
    assert_true(st.ready);
    assert_int_equal(st.workers_wanted, 2);
    assert_int_equal(st.nworkers, 2);
    assert_int_equal(st.workers[0].pid, 4243);
    assert_string_equal(st.workers[0].state, "busy");
    assert_int_equal(st.workers[0].busy_ms, 1500);
    assert_int_equal(st.workers[0].rss, 30000000);
    assert_string_equal(st.workers[0].request, "GET /sleep?s=3 HTTP/1.1");
    assert_string_equal(st.workers[1].request, "");
    assert_int_equal(st.workers[1].rss, -1);
    assert_int_equal(st.requests, 100);
    assert_int_equal(st.in_flight, 2);
    assert_int_equal(st.conns, 5);
    assert_int_equal(st.restarts, 4);
    assert_int_equal(st.nlisteners, 2);
    assert_int_equal(st.listeners[0].queue, 7);
    assert_string_equal(st.listeners[1].name, "unix:/run/my app.sock");
    drv_status_free(&st);
}

static void test_parse_refuses_what_is_not_a_status(void **state)
{
    (void)state;
    struct drv_status st;
    assert_int_equal(drv_status_parse("<html>nope</html>", &st), -1);
    assert_int_equal(drv_status_parse("drover-status 2\nmaster 1 1 1 1 1\n",
                                      &st),
                     -1);
    /* No master line. */
    assert_int_equal(drv_status_parse("drover-status 1\ntotals 1 2 3 4\n",
                                      &st),
                     -1);
    /* A line of a known kind that does not parse. */
    assert_int_equal(drv_status_parse("drover-status 1\nmaster 1 1 1 1 1\n"
                                      "worker x\n",
                                      &st),
                     -1);
    assert_null(st.workers);
}

static void test_ages_and_sizes_are_short(void **state)
{
    (void)state;
    char buf[32];
    drv_status_age(45999, buf, sizeof(buf));
    assert_string_equal(buf, "45s");
    drv_status_age(303000, buf, sizeof(buf));
    assert_string_equal(buf, "5m03s");
    drv_status_age(7500000, buf, sizeof(buf));
    assert_string_equal(buf, "2h05m");
    drv_status_age(273600000, buf, sizeof(buf));
    assert_string_equal(buf, "3d04h");
    drv_status_bytes(524288, buf, sizeof(buf));
    assert_string_equal(buf, "512K");
    drv_status_bytes(40000000, buf, sizeof(buf));
    assert_string_equal(buf, "38.1M");
    drv_status_bytes(1288490189, buf, sizeof(buf));
    assert_string_equal(buf, "1.2G");
    drv_status_bytes(-1, buf, sizeof(buf));
    assert_string_equal(buf, "-");
}

static char *printed(const struct drv_status *st, int width)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    drv_status_print(st, out, width);
    fclose(out);
    return text;
}

static void test_print_fits_80_columns_and_names_the_busy_request(
    void **state)
{
    (void)state;
    char long_answer[2048];
    snprintf(long_answer, sizeof(long_answer),
             "%sworker 3 4245 busy 1000 1 1 61000 GET /%0150d HTTP/1.1\n",
             answer, 7);
    struct drv_status st;
    assert_int_equal(drv_status_parse(long_answer, &st), 0);
    char *text = printed(&st, 80);
    for (char *line = text, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        assert_non_null(end);
        assert_true(end - line <= 80);
        assert_true(end == line || end[-1] != ' ');
    }
    assert_non_null(strstr(text, "4243"));
    assert_non_null(strstr(text, "1.5s GET /sleep?s=3 HTTP/1.1"));
    assert_non_null(strstr(text, "61.0s GET /0000"));
    assert_non_null(strstr(text, "..."));
    assert_non_null(strstr(text, "100 requests, 2 in flight, 5 connections, "
                                 "4 restarts"));
    assert_non_null(strstr(text, "7 of 2048: http://127.0.0.1:5000"));
    assert_non_null(strstr(text, "ready"));
    free(text);
    drv_status_free(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_reads_every_kind_of_line),
        cmocka_unit_test(test_parse_refuses_what_is_not_a_status),
        cmocka_unit_test(test_ages_and_sizes_are_short),
        cmocka_unit_test(
            test_print_fits_80_columns_and_names_the_busy_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
