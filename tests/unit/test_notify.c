/*
 * notify: the exact datagrams sent to $NOTIFY_SOCKET (path and abstract
 * names), sd_watchdog_enabled semantics, and LISTEN_FDS parsing. Built
 * twice when libsystemd is there: against sd_notify() (test_notify) and
 * against notify.c's own protocol code (test_notify_builtin).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "notify.h"

struct listener {
    int fd;
    char path[108]; /* "" for an abstract socket */
};

/* Bind a datagram socket and point $NOTIFY_SOCKET at it. */
static void listen_at(struct listener *l, bool abstract)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char name[100];
    socklen_t len;

    l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(l->fd >= 0);
    if (abstract) {
        snprintf(name, sizeof(name), "@drover-test-notify-%d", (int)getpid());
        memcpy(sun.sun_path, name, strlen(name));
        sun.sun_path[0] = '\0';
        len =
            (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
        l->path[0] = '\0';
    } else {
        snprintf(name, sizeof(name), "/tmp/drover-test-notify-%d.sock",
                 (int)getpid());
        unlink(name);
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", name);
        snprintf(l->path, sizeof(l->path), "%s", name);
        len = sizeof(sun);
    }
    assert_int_equal(bind(l->fd, (struct sockaddr *)&sun, len), 0);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(l->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setenv("NOTIFY_SOCKET", name, 1);
}

static void close_listener(struct listener *l)
{
    close(l->fd);
    if (l->path[0])
        unlink(l->path);
    unsetenv("NOTIFY_SOCKET");
}

/* The next datagram, NUL-terminated, into buf. */
static const char *next_datagram(struct listener *l, char *buf, size_t len)
{
    ssize_t n = recv(l->fd, buf, len - 1, 0);
    assert_true(n >= 0);
    buf[n] = '\0';
    return buf;
}

static uint64_t monotonic_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void each_call_sends_its_exact_datagram(bool abstract)
{
    struct listener l;
    char buf[8192];

    listen_at(&l, abstract);
    assert_int_equal(drv_notify_ready(), 1);
    assert_string_equal(next_datagram(&l, buf, sizeof(buf)), "READY=1");
    assert_int_equal(drv_notify_stopping(), 1);
    assert_string_equal(next_datagram(&l, buf, sizeof(buf)), "STOPPING=1");
    assert_int_equal(drv_notify_watchdog(), 1);
    assert_string_equal(next_datagram(&l, buf, sizeof(buf)), "WATCHDOG=1");
    assert_int_equal(drv_notify_mainpid(4242), 1);
    assert_string_equal(next_datagram(&l, buf, sizeof(buf)), "MAINPID=4242");
    assert_int_equal(drv_notify_status("%d workers, %ld requests", 4, 1234L),
                     1);
    assert_string_equal(next_datagram(&l, buf, sizeof(buf)),
                        "STATUS=4 workers, 1234 requests");
    assert_int_equal(drv_notify("READY=1\nSTATUS=serving"), 1);
    assert_string_equal(next_datagram(&l, buf, sizeof(buf)),
                        "READY=1\nSTATUS=serving");
    assert_int_equal(drv_notifyf("ERRNO=%d", 5), 1);
    assert_string_equal(next_datagram(&l, buf, sizeof(buf)), "ERRNO=5");
    close_listener(&l);
}

static void test_notifications_reach_a_path_socket(void **state)
{
    (void)state;
    each_call_sends_its_exact_datagram(false);
}

static void test_notifications_reach_an_abstract_socket(void **state)
{
    (void)state;
    each_call_sends_its_exact_datagram(true);
}

static void test_reloading_carries_the_monotonic_clock(void **state)
{
    (void)state;
    struct listener l;
    char buf[256];
    unsigned long long usec = 0;

    listen_at(&l, false);
    uint64_t before = monotonic_usec();
    assert_int_equal(drv_notify_reloading(), 1);
    uint64_t after = monotonic_usec();
    next_datagram(&l, buf, sizeof(buf));
    assert_int_equal(strncmp(buf, "RELOADING=1\nMONOTONIC_USEC=", 27), 0);
    assert_int_equal(sscanf(buf + 27, "%llu", &usec), 1);
    assert_true(usec >= before && usec <= after);
    assert_null(strchr(buf + 27, '\n'));
    close_listener(&l);
}

static void test_a_newline_in_status_cannot_start_an_assignment(void **state)
{
    (void)state;
    struct listener l;
    char buf[256];

    listen_at(&l, false);
    assert_int_equal(drv_notify_status("a\nREADY=1"), 1);
    assert_string_equal(next_datagram(&l, buf, sizeof(buf)),
                        "STATUS=a READY=1");
    close_listener(&l);
}

static void test_an_oversized_state_is_refused(void **state)
{
    (void)state;
    struct listener l;
    char big[5000];

    listen_at(&l, false);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(drv_notify_status("%s", big), -EMSGSIZE);
    close_listener(&l);
}

static void test_without_notify_socket_nothing_is_sent(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(drv_notify_ready(), 0);
    assert_int_equal(drv_notify_status("x"), 0);
    assert_int_equal(drv_notify_reloading(), 0);
}

static void test_a_socket_nobody_listens_on_is_an_error(void **state)
{
    (void)state;
    char path[108];
    snprintf(path, sizeof(path), "/tmp/drover-test-none-%d.sock",
             (int)getpid());
    unlink(path);
    setenv("NOTIFY_SOCKET", path, 1);
    assert_true(drv_notify_ready() < 0);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    assert_true(drv_notify_ready() < 0);
    unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog_follows_sd_watchdog_enabled(void **state)
{
    (void)state;
    char pid[32];

    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    assert_int_equal(drv_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "3000000", 1);
    assert_int_equal(drv_watchdog_usec(), 3000000);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(drv_watchdog_usec(), 3000000);
    snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(drv_watchdog_usec(), 0);
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "soon", 1);
    assert_int_equal(drv_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "0", 1);
    assert_int_equal(drv_watchdog_usec(), 0);
    /* Asking does not consume the variables. */
    setenv("WATCHDOG_USEC", "500000", 1);
    assert_int_equal(drv_watchdog_usec(), 500000);
    assert_non_null(getenv("WATCHDOG_USEC"));
    unsetenv("WATCHDOG_USEC");
}

static void set_listen_env(const char *pid_delta, const char *fds,
                           const char *names)
{
    char pid[32];
    snprintf(pid, sizeof(pid), "%d", (int)getpid() + atoi(pid_delta));
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", fds, 1);
    if (names)
        setenv("LISTEN_FDNAMES", names, 1);
    else
        unsetenv("LISTEN_FDNAMES");
}

static void assert_listen_env_gone(void)
{
    assert_null(getenv("LISTEN_PID"));
    assert_null(getenv("LISTEN_FDS"));
    assert_null(getenv("LISTEN_FDNAMES"));
}

/* Put sockets at descriptors 3 and 4, as a service manager would. */
static void place_passed_fds(void)
{
    for (int fd = 3; fd <= 4; fd++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(s >= 0);
        if (s != fd) {
            assert_int_equal(dup2(s, fd), fd);
            close(s);
        }
        fcntl(fd, F_SETFD, 0);
    }
}

static void test_listen_fds_are_taken_with_their_names(void **state)
{
    (void)state;
    char **names = NULL;

    place_passed_fds();
    set_listen_env("0", "2", "web:admin");
    assert_int_equal(drv_listen_fds(&names), 2);
    assert_non_null(names);
    assert_string_equal(names[0], "web");
    assert_string_equal(names[1], "admin");
    assert_null(names[2]);
    assert_true(fcntl(3, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(4, F_GETFD) & FD_CLOEXEC);
    assert_listen_env_gone();
    drv_listen_names_free(names);

    set_listen_env("0", "2", NULL);
    assert_int_equal(drv_listen_fds(&names), 2);
    assert_string_equal(names[0], "unknown");
    assert_string_equal(names[1], "unknown");
    drv_listen_names_free(names);
    assert_listen_env_gone();
    close(3);
    close(4);
}

static void test_listen_fds_for_another_pid_are_not_ours(void **state)
{
    (void)state;
    char **names = (char **)1;

    set_listen_env("1", "2", "a:b");
    assert_int_equal(drv_listen_fds(&names), 0);
    assert_null(names);
    assert_listen_env_gone();
    assert_int_equal(drv_listen_fds(NULL), 0); /* nothing set at all */
}

static void test_malformed_listen_variables_are_errors(void **state)
{
    (void)state;
    char **names = NULL;

    set_listen_env("0", "two", NULL);
    assert_true(drv_listen_fds(&names) < 0);
    assert_null(names);
    assert_listen_env_gone();

    place_passed_fds();
    set_listen_env("0", "2", "only-one");
    assert_true(drv_listen_fds(&names) < 0);
    assert_listen_env_gone();
    close(3);
    close(4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notifications_reach_a_path_socket),
        cmocka_unit_test(test_notifications_reach_an_abstract_socket),
        cmocka_unit_test(test_reloading_carries_the_monotonic_clock),
        cmocka_unit_test(test_a_newline_in_status_cannot_start_an_assignment),
        cmocka_unit_test(test_an_oversized_state_is_refused),
        cmocka_unit_test(test_without_notify_socket_nothing_is_sent),
        cmocka_unit_test(test_a_socket_nobody_listens_on_is_an_error),
        cmocka_unit_test(test_watchdog_follows_sd_watchdog_enabled),
        cmocka_unit_test(test_listen_fds_are_taken_with_their_names),
        cmocka_unit_test(test_listen_fds_for_another_pid_are_not_ours),
        cmocka_unit_test(test_malformed_listen_variables_are_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
