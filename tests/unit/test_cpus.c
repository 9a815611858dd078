/*
 * Unit tests for cpus.c: a cgroup CPU quota in CPUs (rounded up, none for
 * "max" or v1's -1), and the usable count staying within the CPUs the
 * process may run on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sched.h>

#include "cpus.h"

static void test_a_quota_is_whole_cpus_rounded_up(void **state)
{
    (void)state;
    assert_int_equal(drv_cpus_of_quota(200000, 100000), 2);
    assert_int_equal(drv_cpus_of_quota(150000, 100000), 2);
    assert_int_equal(drv_cpus_of_quota(50000, 100000), 1);
    assert_int_equal(drv_cpus_of_quota(1, 100000), 1);
}

static void test_no_quota_or_nonsense_is_no_limit(void **state)
{
    (void)state;
    assert_int_equal(drv_cpus_of_quota(-1, 100000), 0); /* v1: no limit */
    assert_int_equal(drv_cpus_of_quota(100000, 0), 0);
    assert_int_equal(drv_cpus_of_quota(0, 100000), 0);
}

static void test_cgroup_v2_cpu_max_text(void **state)
{
    (void)state;
    assert_int_equal(drv_cpus_of_cpu_max("max 100000\n"), 0);
    assert_int_equal(drv_cpus_of_cpu_max("400000 100000\n"), 4);
    assert_int_equal(drv_cpus_of_cpu_max("250000 100000"), 3);
    assert_int_equal(drv_cpus_of_cpu_max("50000"), 1); /* default period */
    assert_int_equal(drv_cpus_of_cpu_max(""), 0);
    assert_int_equal(drv_cpus_of_cpu_max("garbage"), 0);
}

static void test_usable_cpus_are_at_least_one_and_at_most_the_affinity(
    void **state)
{
    (void)state;
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
    size_t n = drv_usable_cpus();
    assert_true(n >= 1);
    assert_true(n <= (size_t)CPU_COUNT(&set));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_quota_is_whole_cpus_rounded_up),
        cmocka_unit_test(test_no_quota_or_nonsense_is_no_limit),
        cmocka_unit_test(test_cgroup_v2_cpu_max_text),
        cmocka_unit_test(test_usable_cpus_are_at_least_one_and_at_most_the_affinity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
