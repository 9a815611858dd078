/*
 * Unit tests for reqid.c: which X-Request-ID values are kept, and what
 * generated ids look like.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "reqid.h"

static bool sane(const char *s)
{
    return drv_reqid_sane(s, strlen(s));
}

static void test_printable_ascii_tokens_are_sane(void **state)
{
    (void)state;
    assert_true(sane("a"));
    assert_true(sane("3f2c9a1e-7b1d-4c1e-9d0e-6a5b4c3d2e1f"));
    assert_true(sane("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"));
    char max[DRV_REQID_MAX + 1];
    memset(max, 'x', DRV_REQID_MAX);
    max[DRV_REQID_MAX] = '\0';
    assert_true(sane(max));
}

static void test_empty_long_spaced_control_and_high_bytes_are_not(void **state)
{
    (void)state;
    char big[DRV_REQID_MAX + 2];
    memset(big, 'x', DRV_REQID_MAX + 1);
    big[DRV_REQID_MAX + 1] = '\0';
    assert_false(sane(""));
    assert_false(sane(big));
    assert_false(sane("a b"));
    assert_false(sane("a\tb"));
    assert_false(sane("a\x01"));
    assert_false(sane("a\x7f"));
    assert_false(sane("caf\xc3\xa9"));
    assert_false(drv_reqid_sane("a\0b", 3));
}

static bool is_hex_id(const char *p, size_t n)
{
    if (n != DRV_REQID_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdef", p[i]))
            return false;
    return true;
}

static int compare_ids(const void *a, const void *b)
{
    return memcmp(a, b, DRV_REQID_LEN);
}

static void test_generated_ids_are_32_hex_digits_and_do_not_repeat(void **state)
{
    (void)state;
    enum { N = 100000 };
    char(*ids)[DRV_REQID_LEN] = calloc(N, DRV_REQID_LEN);
    assert_non_null(ids);
    drv_reqid_seed();
    for (size_t i = 0; i < N; i++) {
        drv_reqid_generate(ids[i]);
        assert_true(is_hex_id(ids[i], DRV_REQID_LEN));
    }
    qsort(ids, N, DRV_REQID_LEN, compare_ids);
    for (size_t i = 1; i < N; i++)
        assert_true(memcmp(ids[i - 1], ids[i], DRV_REQID_LEN) != 0);
    free(ids);
}

static void test_a_new_seed_starts_a_different_sequence(void **state)
{
    (void)state;
    char a[DRV_REQID_LEN], b[DRV_REQID_LEN];
    drv_reqid_seed();
    drv_reqid_generate(a);
    drv_reqid_seed(); /* as a second worker would, after fork() */
    drv_reqid_generate(b);
    assert_true(memcmp(a, b, DRV_REQID_LEN) != 0);
}

static void test_pick_keeps_a_sane_header_and_replaces_the_rest(void **state)
{
    (void)state;
    char buf[DRV_REQID_LEN];
    struct drover_str given = {"req-42", 6};
    struct drover_str id = drv_reqid_pick(given, buf);
    assert_ptr_equal(id.ptr, given.ptr);
    assert_int_equal(id.len, 6);

    static const struct drover_str bad[] = {
        {NULL, 0}, {"", 0}, {"has space", 9}, {"nl\n", 3}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        id = drv_reqid_pick(bad[i], buf);
        assert_ptr_equal(id.ptr, buf);
        assert_true(is_hex_id(id.ptr, id.len));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printable_ascii_tokens_are_sane),
        cmocka_unit_test(test_empty_long_spaced_control_and_high_bytes_are_not),
        cmocka_unit_test(
            test_generated_ids_are_32_hex_digits_and_do_not_repeat),
        cmocka_unit_test(test_a_new_seed_starts_a_different_sequence),
        cmocka_unit_test(test_pick_keeps_a_sane_header_and_replaces_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
