/*
 * Unit tests for metrics.c: reading X-Request-Start in each of its
 * forms (and refusing the rest), the ListenOverflows counter out of
 * /proc/net/netstat's text, the Prometheus text and the /status lines
 * rendered from a snapshot built here, and a snapshot collected from a
 * real scoreboard.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "listener.h"
#include "metrics.h"

static bool start_of(const char *text, uint64_t *us)
{
    return drv_metrics_request_start(text, strlen(text), us);
}

static void test_request_start_reads_seconds_millis_micros_and_nanos(
    void **state)
{
    (void)state;
    uint64_t us = 0;
    /* nginx: t=${msec} */
    assert_true(start_of("t=1700000000.123", &us));
    assert_int_equal(us, 1700000000123000ull);
    assert_true(start_of("1700000000.5", &us));
    assert_int_equal(us, 1700000000500000ull);
    assert_true(start_of("t=1700000000", &us));
    assert_int_equal(us, 1700000000000000ull);
    /* Heroku: milliseconds */
    assert_true(start_of("1700000000123", &us));
    assert_int_equal(us, 1700000000123000ull);
    /* microseconds, with t= (HAProxy, New Relic) */
    assert_true(start_of("t=1700000000123456", &us));
    assert_int_equal(us, 1700000000123456ull);
    /* nanoseconds */
    assert_true(start_of("1700000000123456789", &us));
    assert_int_equal(us / 1000, 1700000000123ull);
    /* blanks around it */
    assert_true(start_of("  t=1700000000.250 ", &us));
    assert_int_equal(us, 1700000000250000ull);
}

static void test_request_start_refuses_what_is_not_a_timestamp(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",          "t=",          "t=abc",          "abc",
        "1700000000.", "-1700000000", "t=1700000000 D=5", "1e9",
        "0x10",      "T=1700000000", "170000000000000000000000",
        "t = 1700000000", "1700000000,5",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t us = 42;
        assert_false(start_of(bad[i], &us));
        assert_int_equal(us, 42);
    }
}

static void test_queue_time_is_now_minus_start_within_an_hour(void **state)
{
    (void)state;
    uint64_t now = 1700000000500000ull, us = 0;
    const char *v = "t=1700000000.250";
    assert_true(drv_metrics_queue_us(v, strlen(v), now, &us));
    assert_int_equal(us, 250000);
    /* In the future: a clock that is off. */
    v = "t=1700000001.000";
    assert_false(drv_metrics_queue_us(v, strlen(v), now, &us));
    /* Two hours ago: absurd. */
    v = "t=1699992800.000";
    assert_false(drv_metrics_queue_us(v, strlen(v), now, &us));
    /* Just now. */
    v = "1700000000500";
    assert_true(drv_metrics_queue_us(v, strlen(v), now, &us));
    assert_int_equal(us, 0);
}

static const char netstat[] =
    "TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops\n"
    "TcpExt: 1 2 37 40\n"
    "IpExt: InNoRoutes ListenOverflows\n"
    "IpExt: 5 6\n";

static void test_netstat_value_pairs_names_with_values(void **state)
{
    (void)state;
    assert_int_equal(
        drv_metrics_netstat_value(netstat, "TcpExt:", "ListenOverflows"), 37);
    assert_int_equal(
        drv_metrics_netstat_value(netstat, "TcpExt:", "ListenDrops"), 40);
    assert_int_equal(
        drv_metrics_netstat_value(netstat, "TcpExt:", "SyncookiesSent"), 1);
    assert_int_equal(
        drv_metrics_netstat_value(netstat, "IpExt:", "ListenOverflows"), 6);
    assert_int_equal(
        drv_metrics_netstat_value(netstat, "TcpExt:", "ListenOverflow"), -1);
    assert_int_equal(drv_metrics_netstat_value("TcpExt: A B\n", "TcpExt:",
                                               "A"),
                     -1); /* no values line */
    assert_int_equal(drv_metrics_netstat_value("", "TcpExt:", "A"), -1);
}

/* A snapshot with a bit of everything. */
static struct drv_metrics *sample(void)
{
    struct drv_metrics *m = calloc(1, sizeof(*m));
    m->pid = 4242;
    m->generation = 3;
    m->ready = true;
    m->threads = true;
    m->workers_wanted = 2;
    m->start_time = 1700000000.5;
    m->cpu_seconds = 1.25;
    m->rss = 12345678;
    m->uptime_ms = 65000;
    m->codes[200 - DRV_STATUS_MIN] = 80;
    m->codes[404 - DRV_STATUS_MIN] = 20;
    m->requests = 100;
    m->duration.count[0] = 90;
    m->duration.count[DRV_HIST_BUCKETS] = 10; /* above 10 s */
    m->duration.sum_us = 150500000;
    m->in_flight = 2;
    m->conns = 5;
    m->threads_busy = 3;
    m->states[DRV_WORKER_BUSY] = 1;
    m->states[DRV_WORKER_IDLE] = 1;
    m->restarts[DRV_RESTART_MAX_REQUESTS] = 4;
    m->nworkers = 2;
    m->workers = calloc(2, sizeof(*m->workers));
    m->workers[0] = (struct drv_metrics_worker){
        .number = 1, .pid = 4243, .state = DRV_WORKER_BUSY, .age_ms = 5000,
        .requests = 60, .rss = 30000000, .busy_ms = 1500,
        .request = "GET /sleep?s=3\x01 HTTP/1.1"};
    m->workers[1] = (struct drv_metrics_worker){
        .number = 2, .pid = 4244, .state = DRV_WORKER_IDLE, .age_ms = 5000,
        .requests = 40, .rss = -1};
    m->nlisteners = 2;
    m->listeners = calloc(2, sizeof(*m->listeners));
    m->listeners[0] = (struct drv_metrics_listener){
        .name = "http://127.0.0.1:5000", .queue = 7, .max = 2048};
    m->listeners[1] = (struct drv_metrics_listener){
        .name = "unix:/run/a \"b\"\\c", .queue = -1, .max = -1};
    m->listen_overflows = 9;
    return m;
}

static char *rendered(const struct drv_metrics *m, bool status)
{
    struct drv_buf out = {0};
    if (status)
        drv_metrics_render_status(m, &out);
    else
        drv_metrics_render(m, &out);
    drv_buf_append(&out, "", 1);
    char *text = strdup(drv_buf_data(&out));
    drv_buf_free(&out);
    return text;
}

static void assert_line(const char *text, const char *line)
{
    size_t len = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && (p[len] == '\n'))
            return;
    fail_msg("no line '%s' in:\n%s", line, text);
}

static void test_render_writes_every_family_with_help_and_type(void **state)
{
    (void)state;
    struct drv_metrics *m = sample();
    char *text = rendered(m, false);
    static const char *const families[] = {
        "drover_http_requests_total counter",
        "drover_http_request_duration_seconds histogram",
        "drover_http_requests_in_flight gauge",
        "drover_request_queue_seconds histogram",
        "drover_connections_open gauge",
        "drover_app_threads_busy gauge",
        "drover_workers gauge",
        "drover_worker_restarts_total counter",
        "drover_worker_memory_bytes gauge",
        "drover_listen_queue_length gauge",
        "drover_listen_queue_max gauge",
        "drover_listen_overflows_total counter",
        "process_start_time_seconds gauge",
        "process_cpu_seconds_total counter",
        "process_resident_memory_bytes gauge",
    };
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        char line[200], name[100];
        snprintf(line, sizeof(line), "# TYPE %s", families[i]);
        assert_line(text, line);
        snprintf(name, sizeof(name), "%.*s",
                 (int)(strchr(families[i], ' ') - families[i]), families[i]);
        snprintf(line, sizeof(line), "# HELP %s ", name);
        assert_non_null(strstr(text, line));
    }
    assert_true(text[strlen(text) - 1] == '\n');
    free(text);
    drv_metrics_clear(m);
    free(m);
}

static void test_render_writes_the_samples(void **state)
{
    (void)state;
    struct drv_metrics *m = sample();
    char *text = rendered(m, false);
    assert_line(text, "drover_http_requests_total{code=\"200\"} 80");
    assert_line(text, "drover_http_requests_total{code=\"404\"} 20");
    assert_null(strstr(text, "code=\"500\"")); /* none: no sample */
    assert_line(text,
                "drover_http_request_duration_seconds_bucket{le=\"0.005\"} 90");
    assert_line(text,
                "drover_http_request_duration_seconds_bucket{le=\"10\"} 90");
    assert_line(text,
                "drover_http_request_duration_seconds_bucket{le=\"+Inf\"} 100");
    assert_line(text, "drover_http_request_duration_seconds_count 100");
    assert_line(text, "drover_http_request_duration_seconds_sum 150.500000");
    assert_line(text, "drover_request_queue_seconds_count 0");
    assert_line(text, "drover_http_requests_in_flight 2");
    assert_line(text, "drover_connections_open 5");
    assert_line(text, "drover_app_threads_busy 3");
    assert_line(text, "drover_workers{state=\"busy\"} 1");
    assert_line(text, "drover_workers{state=\"booting\"} 0");
    assert_line(text,
                "drover_worker_restarts_total{reason=\"max_requests\"} 4");
    assert_line(text, "drover_worker_restarts_total{reason=\"memory\"} 0");
    assert_line(text, "drover_worker_memory_bytes{worker=\"1\"} 30000000");
    assert_null(strstr(text, "worker=\"2\"")); /* unknown: no sample */
    assert_line(text, "drover_listen_queue_length{listener=\"http://"
                      "127.0.0.1:5000\"} 7");
    assert_line(text, "drover_listen_queue_max{listener=\"http://"
                      "127.0.0.1:5000\"} 2048");
    assert_null(strstr(text, "unix:")); /* no queue figures for it */
    assert_line(text, "drover_listen_overflows_total 9");
    assert_line(text, "process_start_time_seconds 1700000000.50");
    assert_line(text, "process_cpu_seconds_total 1.25");
    assert_line(text, "process_resident_memory_bytes 12345678");
    free(text);

    /* Without app threads the gauge is left out; a label value is
     * escaped. */
    m->threads = false;
    m->listeners[1].queue = 1;
    text = rendered(m, false);
    assert_null(strstr(text, "drover_app_threads_busy"));
    assert_line(text, "drover_listen_queue_length{listener=\"unix:/run/a "
                      "\\\"b\\\"\\\\c\"} 1");
    free(text);
    drv_metrics_clear(m);
    free(m);
}

static void test_render_status_writes_the_line_format(void **state)
{
    (void)state;
    struct drv_metrics *m = sample();
    char *text = rendered(m, true);
    assert_string_equal(
        text, "drover-status 1\n"
              "master 4242 3 65000 1 2\n"
              "worker 1 4243 busy 5000 60 30000000 1500 "
              "GET /sleep?s=3? HTTP/1.1\n"
              "worker 2 4244 idle 5000 40 -1 0 -\n"
              "totals 100 2 5 4\n"
              "listener 7 2048 http://127.0.0.1:5000\n"
              "listener -1 -1 unix:/run/a \"b\"\\c\n");
    free(text);
    drv_metrics_clear(m);
    free(m);
}

static void test_collect_reads_live_slots_and_the_totals(void **state)
{
    (void)state;
    struct drv_scoreboard sb;
    assert_int_equal(drv_scoreboard_create(&sb, 4), 0);
    struct drv_slot *a = &sb.slots[0], *b = &sb.slots[2];
    drv_slot_set_state(a, DRV_SLOT_READY);
    a->pid = getpid(); /* a process whose memory can be read */
    a->number = 1;
    a->started_ms = 1000;
    drv_slot_set_state(b, DRV_SLOT_BOOTING);
    b->pid = 999999999; /* no such process */
    b->number = 3;
    b->started_ms = 1500;
    for (int i = 0; i < 3; i++)
        drv_slot_count(a, sb.totals, 200, 10, 1000);
    drv_slot_count(b, sb.totals, 503, 10, 20000000);
    drv_slot_set_in_flight(a, 1);
    drv_slot_set_conns(a, 4);
    drv_slot_set_conns(b, 1);
    struct drover_request req = {.method = {"GET", 3},
                                 .target = {"/x", 2},
                                 .version = {"HTTP/1.1", 8}};
    drv_slot_busy_since(a, &req, 1900, -1);
    /* A worker that is gone left its counts in the totals. */
    struct drv_slot *gone = &sb.slots[1];
    drv_slot_count(gone, sb.totals, 200, 1, 1000);
    drv_scoreboard_fold(&sb, gone);
    memset(gone, 0, sizeof(*gone));
    drv_scoreboard_restart(&sb, DRV_RESTART_CRASH);

    struct drv_metrics m;
    drv_metrics_collect(&m, &sb, NULL, 0, 2000);
    assert_int_equal(m.nworkers, 2);
    assert_int_equal(m.workers[0].number, 1);
    assert_int_equal(m.workers[0].state, DRV_WORKER_BUSY);
    assert_int_equal(m.workers[0].age_ms, 1000);
    assert_int_equal(m.workers[0].busy_ms, 100);
    assert_string_equal(m.workers[0].request, "GET /x HTTP/1.1");
    assert_true(m.workers[0].rss > 0);
    assert_int_equal(m.workers[1].number, 3);
    assert_int_equal(m.workers[1].state, DRV_WORKER_BOOTING);
    assert_int_equal(m.workers[1].rss, -1);
    assert_int_equal(m.states[DRV_WORKER_BUSY], 1);
    assert_int_equal(m.states[DRV_WORKER_BOOTING], 1);
    assert_int_equal(m.requests, 5);
    assert_int_equal(m.codes[200 - DRV_STATUS_MIN], 4);
    assert_int_equal(m.codes[503 - DRV_STATUS_MIN], 1);
    assert_int_equal(m.duration.count[0], 4);
    assert_int_equal(m.duration.count[DRV_HIST_BUCKETS], 1);
    assert_int_equal(m.in_flight, 1);
    assert_int_equal(m.conns, 5);
    assert_int_equal(m.restarts[DRV_RESTART_CRASH], 1);
    assert_int_equal(m.pid, getpid());
    assert_true(m.start_time > 1e9);
    assert_true(m.rss > 0);
    drv_metrics_clear(&m);
    assert_null(m.workers);
    drv_scoreboard_free(&sb);
}

static void test_collect_reads_a_listening_sockets_accept_queue(void **state)
{
    (void)state;
    struct drv_addr addr;
    char err[256];
    assert_int_equal(drv_addr_parse("127.0.0.1:0", &addr, err, sizeof(err)),
                     0);
    struct drv_listener *l;
    size_t n;
    assert_int_equal(drv_listeners_bind(&addr, 1, 17, &l, &n, err,
                                        sizeof(err)),
                     0);
    struct drv_scoreboard sb;
    assert_int_equal(drv_scoreboard_create(&sb, 1), 0);
    struct drv_metrics m;
    drv_metrics_collect(&m, &sb, l, n, 0);
    assert_int_equal(m.nlisteners, 1);
    assert_string_equal(m.listeners[0].name, l[0].name);
    assert_int_equal(m.listeners[0].queue, 0);
    assert_int_equal(m.listeners[0].max, 17);
    drv_metrics_clear(&m);
    drv_scoreboard_free(&sb);
    drv_listeners_close(l, n, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_request_start_reads_seconds_millis_micros_and_nanos),
        cmocka_unit_test(test_request_start_refuses_what_is_not_a_timestamp),
        cmocka_unit_test(test_queue_time_is_now_minus_start_within_an_hour),
        cmocka_unit_test(test_netstat_value_pairs_names_with_values),
        cmocka_unit_test(test_render_writes_every_family_with_help_and_type),
        cmocka_unit_test(test_render_writes_the_samples),
        cmocka_unit_test(test_render_status_writes_the_line_format),
        cmocka_unit_test(test_collect_reads_live_slots_and_the_totals),
        cmocka_unit_test(test_collect_reads_a_listening_sockets_accept_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
