/*
 * proxy: forwarded_allow_ips syntax and matching, and which client and
 * scheme the proxy headers give for trusted and untrusted peers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "proxy.h"

#define H(n, v)                                                                \
    {                                                                          \
        {n, sizeof(n) - 1},                                                    \
        {                                                                      \
            v, sizeof(v) - 1                                                   \
        }                                                                      \
    }

/* The compiled trust list of `items`, freed after the last test. */
static struct drv_proxy_trust *compiled[32];
static size_t ncompiled;

static const struct drv_proxy_trust *trust_of(char **items, size_t n)
{
    char err[256];
    struct drv_strlist l = {items, n};
    struct drv_proxy_trust *t = drv_proxy_trust_create(&l, err, sizeof(err));
    assert_non_null(t);
    assert_true(ncompiled < sizeof(compiled) / sizeof(compiled[0]));
    compiled[ncompiled++] = t;
    return t;
}

static int trust_done(void **state)
{
    (void)state;
    while (ncompiled)
        drv_proxy_trust_free(compiled[--ncompiled]);
    return 0;
}

/* A peer's socket address from its text. */
static const struct sockaddr *peer(const char *text)
{
    static struct sockaddr_storage ss[4];
    static size_t next;
    struct sockaddr_storage *s = &ss[next++ % 4];
    memset(s, 0, sizeof(*s));
    struct sockaddr_in *in = (void *)s;
    struct sockaddr_in6 *in6 = (void *)s;
    if (text[0] == '\0') {
        s->ss_family = AF_UNIX;
    } else if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
        in6->sin6_family = AF_INET6;
    }
    return (const struct sockaddr *)s;
}

static char *default_items[] = {"127.0.0.1,::1"};

static void test_allow_items_are_addresses_networks_or_star(void **state)
{
    (void)state;
    char err[256];
    const char *good[] = {"127.0.0.1",
                          "::1",
                          "*",
                          "10.0.0.0/8",
                          "2001:db8::/32",
                          "127.0.0.1, ::1",
                          "",
                          "192.168.1.7/32",
                          "0.0.0.0/0"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(drv_proxy_check_allow(good[i], err, sizeof(err)), 0);
    const char *bad[] = {"localhost", "10.0.0.0/33", "::1/129",       "1.2.3",
                         "10.0.0.0/", "10.0.0.0/x",  "127.0.0.1,nope"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(drv_proxy_check_allow(bad[i], err, sizeof(err)), -1);
        assert_non_null(strstr(err, "is not an IP address"));
    }
    drv_proxy_check_allow("127.0.0.1,nope", err, sizeof(err));
    assert_non_null(strstr(err, "'nope'"));
}

static void test_peers_match_addresses_and_networks(void **state)
{
    (void)state;
    const struct drv_proxy_trust *def = trust_of(default_items, 1);
    assert_true(drv_proxy_trusted(def, peer("127.0.0.1")));
    assert_true(drv_proxy_trusted(def, peer("::1")));
    assert_true(drv_proxy_trusted(def, peer("::ffff:127.0.0.1")));
    assert_false(drv_proxy_trusted(def, peer("127.0.0.2")));
    assert_false(drv_proxy_trusted(def, peer("10.0.0.1")));
    assert_true(drv_proxy_trusted(def, peer(""))); /* unix socket peer */

    char *nets[] = {"10.0.0.0/8", "2001:db8:abcd::/48", "192.168.1.0/25"};
    const struct drv_proxy_trust *n = trust_of(nets, 3);
    assert_true(drv_proxy_trusted(n, peer("10.255.1.2")));
    assert_false(drv_proxy_trusted(n, peer("11.0.0.1")));
    assert_true(drv_proxy_trusted(n, peer("2001:db8:abcd:12::1")));
    assert_false(drv_proxy_trusted(n, peer("2001:db8:abce::1")));
    assert_true(drv_proxy_trusted(n, peer("192.168.1.127")));
    assert_false(drv_proxy_trusted(n, peer("192.168.1.128")));
    assert_false(drv_proxy_trusted(n, peer("127.0.0.1")));

    char *star[] = {"*"};
    const struct drv_proxy_trust *all = trust_of(star, 1);
    assert_true(drv_proxy_trusted(all, peer("203.0.113.9")));

    char *none[] = {""};
    const struct drv_proxy_trust *nobody = trust_of(none, 1);
    assert_false(drv_proxy_trusted(nobody, peer("127.0.0.1")));
}

static void test_the_list_is_compiled_once_with_bad_pieces_named(void **state)
{
    (void)state;
    char err[256];
    char *items[] = {"10.0.0.0/8", "127.0.0.1, 2001:db8::/32", "1.2.3.4/40"};
    struct drv_strlist l = {items, 3};
    assert_null(drv_proxy_trust_create(&l, err, sizeof(err)));
    assert_string_equal(err, "'1.2.3.4/40' is not an IP address, a network "
                             "(ADDRESS/BITS) or *");
    l.n = 2;
    struct drv_proxy_trust *t = drv_proxy_trust_create(&l, err, sizeof(err));
    assert_non_null(t);
    assert_true(drv_proxy_trusted(t, peer("127.0.0.1")));
    assert_true(drv_proxy_trusted(t, peer("10.9.8.7")));
    assert_true(drv_proxy_trusted(t, peer("::ffff:10.9.8.7"))); /* mapped */
    assert_true(drv_proxy_trusted(t, peer("2001:db8:1::1")));
    assert_false(drv_proxy_trusted(t, peer("2001:db9::1")));
    assert_false(drv_proxy_trusted(t, peer("::1")));
    drv_proxy_trust_free(t);
    drv_proxy_trust_free(NULL);

    /* "*" anywhere in the list trusts every peer. */
    char *later[] = {"10.0.0.1", " 192.0.2.1 , * "};
    assert_true(drv_proxy_trusted(trust_of(later, 2), peer("198.51.100.1")));

    /* No list: no TCP peer is trusted, a unix socket peer still is. */
    assert_false(drv_proxy_trusted(NULL, peer("127.0.0.1")));
    assert_true(drv_proxy_trusted(NULL, peer("")));
}

static void
test_x_forwarded_for_gives_the_right_most_untrusted_hop(void **state)
{
    (void)state;
    char *items[] = {"127.0.0.1", "10.0.0.0/8"};
    const struct drv_proxy_trust *allow = trust_of(items, 2);
    struct drv_forwarded f;

    struct drover_header one[] = {H("X-Forwarded-For", "203.0.113.7")};
    assert_true(drv_proxy_resolve(allow, peer("127.0.0.1"), one, 1, &f));
    assert_string_equal(f.addr, "203.0.113.7");
    assert_int_equal(f.port, 0);
    assert_null(f.scheme);

    /* A forged left part is skipped: 198.51.100.1 is what our proxies saw. */
    struct drover_header chain[] = {
        H("x-forwarded-for", "1.1.1.1, 198.51.100.1, 10.1.2.3")};
    assert_true(drv_proxy_resolve(allow, peer("127.0.0.1"), chain, 1, &f));
    assert_string_equal(f.addr, "198.51.100.1");

    /* Repeated headers are one list, in order. */
    struct drover_header two[] = {
        H("X-Forwarded-For", "1.1.1.1"),
        H("X-Forwarded-For", "198.51.100.2, 10.0.0.9")};
    assert_true(drv_proxy_resolve(allow, peer("127.0.0.1"), two, 2, &f));
    assert_string_equal(f.addr, "198.51.100.2");

    /* Every hop trusted: the left-most is the client. */
    struct drover_header inner[] = {H("X-Forwarded-For", "10.0.0.1, 10.0.0.2")};
    assert_true(drv_proxy_resolve(allow, peer("127.0.0.1"), inner, 1, &f));
    assert_string_equal(f.addr, "10.0.0.1");

    /* Ports and brackets. */
    struct drover_header ported[] = {
        H("X-Forwarded-For", "[2001:db8::7]:4711")};
    assert_true(drv_proxy_resolve(allow, peer("127.0.0.1"), ported, 1, &f));
    assert_string_equal(f.addr, "2001:db8::7");
    assert_int_equal(f.port, 4711);
    struct drover_header v4port[] = {H("X-Forwarded-For", "203.0.113.7:8080")};
    assert_true(drv_proxy_resolve(allow, peer("127.0.0.1"), v4port, 1, &f));
    assert_string_equal(f.addr, "203.0.113.7");
    assert_int_equal(f.port, 8080);

    /* Not an address: the peer stays the client. */
    struct drover_header junk[] = {
        H("X-Forwarded-For", "evil.example, 10.0.0.1")};
    assert_false(drv_proxy_resolve(allow, peer("127.0.0.1"), junk, 1, &f));
    assert_string_equal(f.addr, "");
}

static void test_an_untrusted_peer_changes_nothing(void **state)
{
    (void)state;
    const struct drv_proxy_trust *def = trust_of(default_items, 1);
    struct drv_forwarded f;
    struct drover_header h[] = {H("X-Forwarded-For", "203.0.113.7"),
                                H("X-Forwarded-Proto", "https"),
                                H("Forwarded", "for=203.0.113.8;proto=https")};
    assert_false(drv_proxy_resolve(def, peer("192.0.2.1"), h, 3, &f));
    assert_string_equal(f.addr, "");
    assert_null(f.scheme);
    assert_false(drv_proxy_resolve(def, peer("127.0.0.1"), h, 0, &f));
}

static void test_x_forwarded_proto_sets_the_scheme(void **state)
{
    (void)state;
    const struct drv_proxy_trust *def = trust_of(default_items, 1);
    struct drv_forwarded f;
    struct drover_header https[] = {H("X-Forwarded-Proto", "HTTPS")};
    assert_true(drv_proxy_resolve(def, peer("::1"), https, 1, &f));
    assert_string_equal(f.scheme, "https");
    assert_string_equal(f.addr, "");
    struct drover_header last[] = {H("X-Forwarded-Proto", "https, http")};
    assert_true(drv_proxy_resolve(def, peer("::1"), last, 1, &f));
    assert_string_equal(f.scheme, "http");
    struct drover_header odd[] = {H("X-Forwarded-Proto", "gopher")};
    assert_false(drv_proxy_resolve(def, peer("::1"), odd, 1, &f));
    assert_null(f.scheme);
}

static void test_forwarded_gives_address_port_and_scheme(void **state)
{
    (void)state;
    const struct drv_proxy_trust *def = trust_of(default_items, 1);
    struct drv_forwarded f;
    struct drover_header h[] = {
        H("Forwarded",
          "for=192.0.2.43;proto=http, For=\"[2001:db8:cafe::17]:4711\";"
          "Proto=https;by=127.0.0.1")};
    assert_true(drv_proxy_resolve(def, peer("127.0.0.1"), h, 1, &f));
    assert_string_equal(f.addr, "2001:db8:cafe::17");
    assert_int_equal(f.port, 4711);
    assert_string_equal(f.scheme, "https");

    struct drover_header hidden[] = {H("Forwarded", "for=unknown;proto=https")};
    assert_true(drv_proxy_resolve(def, peer("127.0.0.1"), hidden, 1, &f));
    assert_string_equal(f.addr, "");
    assert_string_equal(f.scheme, "https");

    struct drover_header quoted[] = {H("Forwarded", "for=\"198.51.100.3\"")};
    assert_true(drv_proxy_resolve(def, peer("127.0.0.1"), quoted, 1, &f));
    assert_string_equal(f.addr, "198.51.100.3");
}

static void test_x_forwarded_headers_win_over_forwarded(void **state)
{
    (void)state;
    const struct drv_proxy_trust *def = trust_of(default_items, 1);
    struct drv_forwarded f;
    /* nginx sets X-Forwarded-*, and passes a client's Forwarded through. */
    struct drover_header h[] = {H("Forwarded", "for=6.6.6.6;proto=https"),
                                H("X-Forwarded-For", "203.0.113.7"),
                                H("X-Forwarded-Proto", "http")};
    assert_true(drv_proxy_resolve(def, peer("127.0.0.1"), h, 3, &f));
    assert_string_equal(f.addr, "203.0.113.7");
    assert_string_equal(f.scheme, "http");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allow_items_are_addresses_networks_or_star),
        cmocka_unit_test(test_peers_match_addresses_and_networks),
        cmocka_unit_test(
            test_the_list_is_compiled_once_with_bad_pieces_named),
        cmocka_unit_test(
            test_x_forwarded_for_gives_the_right_most_untrusted_hop),
        cmocka_unit_test(test_an_untrusted_peer_changes_nothing),
        cmocka_unit_test(test_x_forwarded_proto_sets_the_scheme),
        cmocka_unit_test(test_forwarded_gives_address_port_and_scheme),
        cmocka_unit_test(test_x_forwarded_headers_win_over_forwarded),
    };
    return cmocka_run_group_tests(tests, NULL, trust_done);
}
