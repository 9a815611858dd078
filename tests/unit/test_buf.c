/*
 * Unit tests for buf.c: the one growable buffer keeps its bytes through
 * growth, consumption and compaction, gives memory back only when asked,
 * and formats text of any length; string views compare case-blind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* The buffer's unconsumed bytes are exactly `want`. */
static void assert_holds(const struct drv_buf *b, const char *want)
{
    assert_int_equal(drv_buf_size(b), strlen(want));
    assert_memory_equal(drv_buf_data(b), want, strlen(want));
}

static void test_an_empty_buffer_holds_nothing_and_owns_no_memory(void **state)
{
    (void)state;
    struct drv_buf b = {0};
    assert_int_equal(drv_buf_size(&b), 0);
    drv_buf_append(&b, "", 0);
    assert_null(b.base); /* appending nothing allocates nothing */
    drv_buf_free(&b);
    assert_null(b.base);
    assert_int_equal(b.cap, 0);
}

static void test_appends_accumulate_in_order(void **state)
{
    (void)state;
    struct drv_buf b = {0};
    drv_buf_append(&b, "abc", 3);
    drv_buf_puts(&b, "def");
    drv_buf_append(&b, "g", 1);
    assert_holds(&b, "abcdefg");
    drv_buf_free(&b);
}

static void test_growth_starts_at_1k_and_doubles(void **state)
{
    (void)state;
    struct drv_buf b = {0};
    drv_buf_append(&b, "x", 1);
    assert_int_equal(b.cap, 1024);
    char block[1024];
    memset(block, 'y', sizeof(block));
    drv_buf_append(&b, block, sizeof(block)); /* 1025 bytes: one doubling */
    assert_int_equal(b.cap, 2048);
    drv_buf_reserve(&b, 10000); /* 11025 needed: 2048 -> 16384 */
    assert_int_equal(b.cap, 16384);
    assert_int_equal(drv_buf_size(&b), 1025);
    assert_int_equal(drv_buf_data(&b)[0], 'x');
    assert_int_equal(drv_buf_data(&b)[1024], 'y');
    drv_buf_free(&b);
}

static void test_reserve_with_room_leaves_memory_in_place(void **state)
{
    (void)state;
    struct drv_buf b = {0};
    drv_buf_reserve(&b, 100);
    char *base = b.base;
    size_t cap = b.cap;
    assert_true(cap >= 100);
    drv_buf_append(&b, "hello", 5);
    drv_buf_reserve(&b, cap - 5); /* exactly the room left */
    assert_ptr_equal(b.base, base);
    assert_int_equal(b.cap, cap);
    assert_holds(&b, "hello");
    drv_buf_free(&b);
}

static void test_reserve_reclaims_the_consumed_prefix_before_growing(
    void **state)
{
    (void)state;
    struct drv_buf b = {0};
    char block[1000];
    memset(block, 'a', sizeof(block));
    drv_buf_append(&b, block, sizeof(block));
    drv_buf_append(&b, "tail", 4);
    drv_buf_consume(&b, 1000);
    size_t cap = b.cap;
    /* 1004 of 1024 used, 1000 of them consumed: 500 more fit after a
     * compaction, with no realloc. */
    drv_buf_reserve(&b, 500);
    assert_int_equal(b.cap, cap);
    assert_int_equal(b.off, 0);
    assert_holds(&b, "tail");
    drv_buf_free(&b);
}

static void test_consume_takes_from_the_front_without_moving(void **state)
{
    (void)state;
    struct drv_buf b = {0};
    drv_buf_puts(&b, "abcdef");
    char *base = b.base;
    drv_buf_consume(&b, 2);
    assert_ptr_equal(b.base, base);
    assert_int_equal(b.off, 2);
    assert_holds(&b, "cdef");
    drv_buf_free(&b);
}

static void test_consuming_everything_resets_off_and_len(void **state)
{
    (void)state;
    struct drv_buf b = {0};
    drv_buf_puts(&b, "abcdef");
    drv_buf_consume(&b, 4);
    drv_buf_consume(&b, 2);
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 0);
    assert_non_null(b.base); /* the memory stays for the next bytes */
    drv_buf_puts(&b, "next");
    assert_holds(&b, "next");
    assert_int_equal(b.off, 0);
    drv_buf_free(&b);
}

static void test_compact_moves_the_unconsumed_bytes_to_the_start(void **state)
{
    (void)state;
    struct drv_buf b = {0};
    drv_buf_puts(&b, "0123456789");
    drv_buf_consume(&b, 7);
    drv_buf_compact(&b);
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.base, "789", 3);
    drv_buf_compact(&b); /* nothing consumed: a no-op */
    assert_holds(&b, "789");
    drv_buf_free(&b);
}

static void test_reset_empties_but_keeps_memory(void **state)
{
    (void)state;
    struct drv_buf b = {0};
    drv_buf_puts(&b, "abc");
    drv_buf_consume(&b, 1);
    char *base = b.base;
    drv_buf_reset(&b);
    assert_int_equal(drv_buf_size(&b), 0);
    assert_int_equal(b.off, 0);
    assert_ptr_equal(b.base, base);
    drv_buf_free(&b);
}

static void test_trim_frees_only_an_empty_buffer_grown_past_keep(void **state)
{
    (void)state;
    struct drv_buf b = {0};
    drv_buf_reserve(&b, 5000); /* cap 8192 */
    drv_buf_puts(&b, "data");

    drv_buf_trim(&b, 1024); /* not empty: kept */
    assert_non_null(b.base);
    assert_holds(&b, "data");

    drv_buf_consume(&b, 4);
    drv_buf_trim(&b, 8192); /* empty but not past keep: kept */
    assert_non_null(b.base);

    drv_buf_trim(&b, 8191); /* empty and past keep: freed */
    assert_null(b.base);
    assert_int_equal(b.cap, 0);
    drv_buf_puts(&b, "again"); /* and reusable */
    assert_holds(&b, "again");
    drv_buf_free(&b);
}

static void test_printf_formats_into_an_unallocated_buffer(void **state)
{
    (void)state;
    struct drv_buf b = {0};
    drv_buf_printf(&b, "%d %s %zx", 42, "x", (size_t)255);
    assert_holds(&b, "42 x ff");
    drv_buf_free(&b);
}

static void test_printf_appends_after_existing_bytes(void **state)
{
    (void)state;
    struct drv_buf b = {0};
    drv_buf_puts(&b, "HTTP/1.1 ");
    drv_buf_printf(&b, "%d %s\r\n", 200, "OK");
    assert_holds(&b, "HTTP/1.1 200 OK\r\n");
    drv_buf_free(&b);
}

static void test_printf_grows_for_text_longer_than_the_room(void **state)
{
    (void)state;
    struct drv_buf b = {0};
    drv_buf_puts(&b, "<");
    char long_text[5000];
    memset(long_text, 'z', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    drv_buf_printf(&b, "%s>", long_text);
    assert_int_equal(drv_buf_size(&b), 5001);
    assert_int_equal(drv_buf_data(&b)[0], '<');
    assert_int_equal(drv_buf_data(&b)[1], 'z');
    assert_int_equal(drv_buf_data(&b)[4999], 'z');
    assert_int_equal(drv_buf_data(&b)[5000], '>');
    drv_buf_free(&b);
}

static void test_printf_that_exactly_fills_the_room_keeps_every_byte(
    void **state)
{
    (void)state;
    struct drv_buf b = {0};
    drv_buf_reserve(&b, 1);
    size_t room = b.cap;
    char fill[2048];
    memset(fill, 'f', room - 1);
    fill[room - 1] = '\0';
    /* vsnprintf needs one byte for its NUL: room - 1 characters fit... */
    drv_buf_printf(&b, "%s", fill);
    assert_int_equal(b.cap, room);
    assert_int_equal(drv_buf_size(&b), room - 1);
    /* ...one more does not, and must not lose the last character. */
    drv_buf_printf(&b, "%s", "AB");
    assert_int_equal(drv_buf_size(&b), room + 1);
    assert_memory_equal(drv_buf_data(&b) + room - 1, "AB", 2);
    drv_buf_free(&b);
}

static void test_printf_after_a_consumed_prefix_keeps_the_unconsumed_bytes(
    void **state)
{
    (void)state;
    struct drv_buf b = {0};
    char block[1020];
    memset(block, 'a', sizeof(block));
    drv_buf_append(&b, block, sizeof(block));
    drv_buf_puts(&b, "keep");
    drv_buf_consume(&b, sizeof(block));
    /* Does not fit after len (1024 of 1024 used) but fits once compacted. */
    drv_buf_printf(&b, "%s", "-and-more");
    assert_holds(&b, "keep-and-more");
    drv_buf_free(&b);
}

static void test_str_eq_lower_ignores_case_of_the_view_only(void **state)
{
    (void)state;
    assert_true(drv_str_eq_lower(DRV_STR("Content-Length"), "content-length"));
    assert_true(drv_str_eq_lower(DRV_STR("HOST"), "host"));
    assert_true(drv_str_eq_lower(DRV_STR(""), ""));
    assert_false(drv_str_eq_lower(DRV_STR("Hosts"), "host"));
    assert_false(drv_str_eq_lower(DRV_STR("Hos"), "host"));
    assert_false(drv_str_eq_lower(DRV_STR("Hosu"), "host"));
}

static void test_str_eq_lower_compares_exactly_the_view_length(void **state)
{
    (void)state;
    /* A view into a larger buffer: bytes after len are not part of it. */
    const char *text = "hostname";
    assert_true(drv_str_eq_lower((struct drv_str){text, 4}, "host"));
    /* An embedded NUL does not end the comparison early. */
    assert_false(drv_str_eq_lower((struct drv_str){"ho\0t", 4}, "host"));
}

static void test_xstrndup_copies_n_bytes_and_terminates(void **state)
{
    (void)state;
    char *s = drv_xstrndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
    s = drv_xstrdup("");
    assert_string_equal(s, "");
    free(s);
}

static void test_numbers_are_written_in_decimal_and_hex(void **state)
{
    (void)state;
    struct drv_buf b = {0};
    drv_buf_put_dec(&b, 0);
    drv_buf_puts(&b, " ");
    drv_buf_put_dec(&b, 200);
    drv_buf_puts(&b, " ");
    drv_buf_put_dec(&b, UINT64_MAX);
    drv_buf_puts(&b, " ");
    drv_buf_put_hex(&b, 0);
    drv_buf_puts(&b, " ");
    drv_buf_put_hex(&b, 0x1f40);
    drv_buf_puts(&b, " ");
    drv_buf_put_hex(&b, UINT64_MAX);
    assert_holds(&b, "0 200 18446744073709551615 0 1f40 ffffffffffffffff");
    drv_buf_free(&b);
}

/* RFC 9110 5.6.1: empty elements and the whitespace around elements
 * are not elements. */
static void test_list_elements_come_trimmed_and_empty_ones_skipped(void **state)
{
    (void)state;
    const char *v = " ,chat.v1 , \tsuperchat,,\tx ,";
    const char *p = v, *end = v + strlen(v);
    const char *want[] = {"chat.v1", "superchat", "x"};
    struct drv_str item;
    for (size_t i = 0; i < 3; i++) {
        assert_true(drv_list_next(&p, end, &item));
        assert_int_equal(item.len, strlen(want[i]));
        assert_memory_equal(item.ptr, want[i], item.len);
    }
    assert_false(drv_list_next(&p, end, &item));
    p = end;
    assert_false(drv_list_next(&p, end, &item));
}

static void test_hex_digits_of_both_cases_and_nothing_else(void **state)
{
    (void)state;
    assert_int_equal(drv_hex_digit('0'), 0);
    assert_int_equal(drv_hex_digit('9'), 9);
    assert_int_equal(drv_hex_digit('a'), 10);
    assert_int_equal(drv_hex_digit('F'), 15);
    assert_int_equal(drv_hex_digit('g'), -1);
    assert_int_equal(drv_hex_digit('%'), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers_are_written_in_decimal_and_hex),
        cmocka_unit_test(test_list_elements_come_trimmed_and_empty_ones_skipped),
        cmocka_unit_test(test_hex_digits_of_both_cases_and_nothing_else),
        cmocka_unit_test(test_an_empty_buffer_holds_nothing_and_owns_no_memory),
        cmocka_unit_test(test_appends_accumulate_in_order),
        cmocka_unit_test(test_growth_starts_at_1k_and_doubles),
        cmocka_unit_test(test_reserve_with_room_leaves_memory_in_place),
        cmocka_unit_test(
            test_reserve_reclaims_the_consumed_prefix_before_growing),
        cmocka_unit_test(test_consume_takes_from_the_front_without_moving),
        cmocka_unit_test(test_consuming_everything_resets_off_and_len),
        cmocka_unit_test(test_compact_moves_the_unconsumed_bytes_to_the_start),
        cmocka_unit_test(test_reset_empties_but_keeps_memory),
        cmocka_unit_test(test_trim_frees_only_an_empty_buffer_grown_past_keep),
        cmocka_unit_test(test_printf_formats_into_an_unallocated_buffer),
        cmocka_unit_test(test_printf_appends_after_existing_bytes),
        cmocka_unit_test(test_printf_grows_for_text_longer_than_the_room),
        cmocka_unit_test(
            test_printf_that_exactly_fills_the_room_keeps_every_byte),
        cmocka_unit_test(
            test_printf_after_a_consumed_prefix_keeps_the_unconsumed_bytes),
        cmocka_unit_test(test_str_eq_lower_ignores_case_of_the_view_only),
        cmocka_unit_test(test_str_eq_lower_compares_exactly_the_view_length),
        cmocka_unit_test(test_xstrndup_copies_n_bytes_and_terminates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
