/*
 * libFuzzer target for the proxy headers (proxy.c): fuzzer bytes give a
 * forwarded_allow_ips list, a peer address and a request's headers
 * (X-Forwarded-For, X-Forwarded-Proto, Forwarded, in any number and
 * order, with any bytes in their values), and what drover makes of them
 * is judged:
 *
 *   - the list compiles exactly when drv_proxy_check_allow accepts each
 *     item (the settings' check at start and the worker's compiler agree);
 *   - the trust decision for the peer equals a plain reference (each
 *     piece parsed with inet_pton, the prefix compared bit by bit;
 *     IPv4-mapped IPv6 as IPv4; a unix socket peer always trusted);
 *   - an untrusted peer, or a request without proxy headers, changes
 *     nothing (false, *out cleared);
 *   - otherwise the address is "" or an IP literal in inet_ntop's own
 *     form that some hop of the headers named, the port is 0..65535 (0
 *     without an address), and the scheme is NULL, "http" or "https"
 *     (the static strings), with true returned exactly when one is set.
 *
 *   make fuzz          (runs every target briefly)
 *
 * DROVER_FUZZ_DUMP=1 in the environment prints what each input became.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "proxy.h"

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "fuzz_proxy: %s: ", #cond);                      \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            abort();                                                          \
        }                                                                     \
    } while (0)

struct input {
    const uint8_t *p;
    size_t n;
};

static uint8_t u8(struct input *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

/* Up to `max` bytes of the input, length first. */
static size_t bytes(struct input *in, size_t max, const uint8_t **out)
{
    size_t len = u8(in) % (max + 1);
    if (len > in->n)
        len = in->n;
    *out = in->p;
    in->p += len;
    in->n -= len;
    return len;
}

/* Words the fuzzer can pick instead of spelling them. */
static const char *const allow_words[] = {
    "127.0.0.1", "::1", "*", "10.0.0.0/8", "192.168.1.0/25", "0.0.0.0/0",
    "::/0", "2001:db8::/32", "::ffff:10.0.0.0/104", "", " , ", "1.2.3.4/33",
    "localhost", "10.0.0.0/", "fe80::1%eth0", "127.0.0.1,::1",
};

static const char *const value_words[] = {
    "203.0.113.7", "10.1.2.3", "127.0.0.1", "::1", "[2001:db8::7]:4711",
    "203.0.113.7:8080", "for=192.0.2.43", "for=\"[2001:db8:cafe::17]:4711\"",
    "proto=https", "proto=http", "https", "http", "HTTPS", "gopher",
    "unknown", "_hidden", "for=\"\\\"x\\\"\"", ", ", ";", "=", "\"", "[",
    "]", ":", "::ffff:10.0.0.1", "1.2.3.4:99999", "[::1", "for=;proto=",
};

static const char *const names[] = {
    "X-Forwarded-For", "x-forwarded-for", "X-Forwarded-Proto",
    "x-forwarded-proto", "Forwarded", "FORWARDED", "X-Real-IP", "Host",
};

/* Build a string from picked words and raw bytes into buf (NUL-ended
 * when `cstr`). Returns its length. */
static size_t compose(struct input *in, const char *const *words,
                      size_t nwords, char *buf, size_t cap, bool cstr)
{
    size_t len = 0, parts = u8(in) % 6;
    for (size_t i = 0; i < parts; i++) {
        const uint8_t *p;
        size_t n;
        uint8_t how = u8(in);
        if (how < 160) {
            p = (const uint8_t *)words[how % nwords];
            n = strlen((const char *)p);
        } else {
            n = bytes(in, 64, &p);
        }
        if (len + n + 1 > cap)
            break;
        memcpy(buf + len, p, n);
        len += n;
    }
    if (cstr) {
        /* A NUL from the input would end the item early: keep the
         * reference and the compiler reading the same text. */
        for (size_t i = 0; i < len; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        buf[len] = '\0';
    }
    return len;
}

/* ---- the reference trust check ---- */

struct ip {
    int family;
    uint8_t b[16];
};

static bool ref_parse(const char *text, size_t len, struct ip *ip)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    memset(ip, 0, sizeof(*ip));
    if (inet_pton(AF_INET, buf, ip->b) == 1) {
        ip->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, ip->b) != 1)
        return false;
    ip->family = AF_INET6;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0,
                                       0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(ip->b, mapped, 12) == 0) {
        memmove(ip->b, ip->b + 12, 4);
        memset(ip->b + 4, 0, 12);
        ip->family = AF_INET;
    }
    return true;
}

static bool bit(const uint8_t *b, int i)
{
    return b[i / 8] >> (7 - i % 8) & 1;
}

/* Does one trimmed piece ("*", ADDRESS, ADDRESS/BITS) cover `ip`?
 * *valid says whether the piece is well-formed. */
static bool ref_piece(const char *p, size_t len, const struct ip *ip,
                      bool *valid)
{
    *valid = true;
    if (len == 1 && p[0] == '*')
        return true;
    const char *slash = memchr(p, '/', len);
    struct ip net;
    if (!ref_parse(p, slash ? (size_t)(slash - p) : len, &net)) {
        *valid = false;
        return false;
    }
    int max = net.family == AF_INET ? 32 : 128, bits = max;
    if (slash) {
        const char *d = slash + 1, *end = p + len;
        if (d == end || end - d > 3) {
            *valid = false;
            return false;
        }
        bits = 0;
        for (; d < end; d++) {
            if (*d < '0' || *d > '9') {
                *valid = false;
                return false;
            }
            bits = bits * 10 + (*d - '0');
        }
        if (bits > max) {
            *valid = false;
            return false;
        }
    }
    if (!ip || ip->family != net.family)
        return false;
    for (int i = 0; i < bits; i++)
        if (bit(net.b, i) != bit(ip->b, i))
            return false;
    return true;
}

/* Walk one item's comma pieces: *valid, and whether any covers `ip`. */
static bool ref_item(const char *item, const struct ip *ip, bool *valid)
{
    bool hit = false;
    *valid = true;
    for (const char *p = item;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        bool ok = true;
        if (len && ref_piece(p, len, ip, &ok))
            hit = true;
        if (!ok)
            *valid = false;
        if (!comma)
            return hit;
        p = comma + 1;
    }
}

/* ---- the peer ---- */

/* An accepted socket's peer: a unix socket, IPv4, IPv6, or IPv4 mapped
 * into IPv6 (a dual-stack listener's form); *ip is the reference's view. */
static void make_peer(struct input *in, struct sockaddr_storage *ss,
                      struct ip *ip, bool *is_unix)
{
    static const char *const v4s[] = {"127.0.0.1", "10.0.0.5",
                                      "192.168.1.127", "203.0.113.9"};
    static const char *const v6s[] = {"::1", "2001:db8::1", "fe80::1",
                                      "::ffff:10.0.0.5"};
    memset(ss, 0, sizeof(*ss));
    memset(ip, 0, sizeof(*ip));
    *is_unix = false;
    uint8_t kind = u8(in) % 4;
    bool pick = u8(in) & 1;
    uint8_t raw[16] = {0};
    if (kind == 0) {
        ss->ss_family = AF_UNIX;
        *is_unix = true;
        return;
    }
    if (kind == 2) {
        if (pick)
            inet_pton(AF_INET6, v6s[u8(in) % 4], raw);
        else
            for (int i = 0; i < 16; i++)
                raw[i] = u8(in);
    } else if (pick) {
        inet_pton(AF_INET, v4s[u8(in) % 4], raw);
    } else {
        for (int i = 0; i < 4; i++)
            raw[i] = u8(in);
    }
    if (kind == 1) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        memcpy(&a->sin_addr, raw, 4);
        ip->family = AF_INET;
        memcpy(ip->b, raw, 4);
        return;
    }
    if (kind == 3) { /* ::ffff:a.b.c.d */
        memmove(raw + 12, raw, 4);
        memset(raw, 0, 10);
        raw[10] = raw[11] = 0xff;
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    memcpy(&a->sin6_addr, raw, 16);
    char text[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, raw, text, sizeof(text));
    CHECK(ref_parse(text, strlen(text), ip), "peer '%s'", text);
}

/* Is `want` an address some hop of the headers named? The values are cut
 * at every separator a hop can sit between (, ; = quotes brackets
 * blanks); a piece with one ':' may be IPv4:port. */
static bool named_by_headers(const struct ip *want,
                             const struct drover_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = h[i].value.ptr, *end = v + h[i].value.len;
        while (v < end) {
            size_t len = 0;
            while (v + len < end && !strchr(",;=\"[] \t", v[len]))
                len++;
            struct ip got;
            const char *colon = memchr(v, ':', len);
            bool one = colon && !memchr(colon + 1, ':',
                                        (size_t)(v + len - colon - 1));
            if ((ref_parse(v, len, &got) ||
                 (one && ref_parse(v, (size_t)(colon - v), &got))) &&
                got.family == want->family &&
                memcmp(got.b, want->b, 16) == 0)
                return true;
            v += len + 1;
        }
    }
    return false;
}

#define MAX_ITEMS 4
#define MAX_HEADERS 6

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int dump = -1;
    if (dump < 0)
        dump = getenv("DROVER_FUZZ_DUMP") != NULL;
    struct input in = {data, size};

    /* forwarded_allow_ips */
    char items_buf[MAX_ITEMS][256];
    char *items[MAX_ITEMS];
    size_t nitems = u8(&in) % (MAX_ITEMS + 1);
    bool all_valid = true;
    char err[256];
    for (size_t i = 0; i < nitems; i++) {
        compose(&in, allow_words, sizeof(allow_words) / sizeof(*allow_words),
                items_buf[i], sizeof(items_buf[i]), true);
        items[i] = items_buf[i];
        bool valid;
        ref_item(items[i], NULL, &valid);
        bool checked = drv_proxy_check_allow(items[i], err, sizeof(err)) == 0;
        CHECK(checked == valid, "check says %d, reference %d for '%s'",
              checked, valid, items[i]);
        all_valid = all_valid && valid;
    }
    struct drv_strlist list = {items, nitems};
    struct drv_proxy_trust *t = drv_proxy_trust_create(&list, err,
                                                       sizeof(err));
    CHECK((t != NULL) == all_valid, "compiled %d, all valid %d", t != NULL,
          all_valid);
    if (dump) {
        fprintf(stderr, "--- allow:");
        for (size_t i = 0; i < nitems; i++)
            fprintf(stderr, " [%s]", items[i]);
        fprintf(stderr, t ? "\n" : " (refused: %s)\n", err);
    }
    if (!t)
        return 0;

    /* The peer, and the reference's word on it. */
    struct sockaddr_storage ss;
    struct ip peer_ip;
    bool is_unix;
    make_peer(&in, &ss, &peer_ip, &is_unix);
    bool ref_trusted = is_unix;
    for (size_t i = 0; i < nitems && !ref_trusted; i++) {
        bool valid;
        ref_trusted = ref_item(items[i], &peer_ip, &valid);
    }
    bool trusted = drv_proxy_trusted(t, (const struct sockaddr *)&ss);
    CHECK(trusted == ref_trusted, "trusted %d, reference %d", trusted,
          ref_trusted);

    /* The headers. */
    char values[MAX_HEADERS][512];
    struct drover_header h[MAX_HEADERS];
    size_t nh = u8(&in) % (MAX_HEADERS + 1);
    bool proxy_header = false;
    for (size_t i = 0; i < nh; i++) {
        const char *name = names[u8(&in) % (sizeof(names) / sizeof(*names))];
        size_t vlen = compose(&in, value_words,
                              sizeof(value_words) / sizeof(*value_words),
                              values[i], sizeof(values[i]), false);
        h[i].name = (struct drover_str){name, strlen(name)};
        h[i].value = (struct drover_str){values[i], vlen};
        proxy_header = proxy_header || strcasecmp(name, "x-forwarded-for") == 0 ||
                       strcasecmp(name, "x-forwarded-proto") == 0 ||
                       strcasecmp(name, "forwarded") == 0;
    }

    struct drv_forwarded out;
    memset(&out, 0x5a, sizeof(out)); /* resolve must clear it */
    bool said = drv_proxy_resolve(t, (const struct sockaddr *)&ss, h, nh,
                                  &out);
    if (dump) {
        char peer[INET6_ADDRSTRLEN] = "unix";
        if (!is_unix)
            inet_ntop(peer_ip.family, peer_ip.b, peer, sizeof(peer));
        fprintf(stderr, "peer %s, trusted %d\n", peer, trusted);
        for (size_t i = 0; i < nh; i++)
            fprintf(stderr, "%.*s: %.*s\n", (int)h[i].name.len, h[i].name.ptr,
                    (int)h[i].value.len, h[i].value.ptr);
        fprintf(stderr, "=> %d addr '%s' port %d scheme %s\n", said,
                out.addr, out.port, out.scheme ? out.scheme : "-");
    }
    if (!proxy_header || !trusted) {
        CHECK(!said, "something from %s",
              proxy_header ? "an untrusted peer" : "no proxy header");
    }
    CHECK(memchr(out.addr, '\0', sizeof(out.addr)), "addr not terminated");
    CHECK(out.scheme == NULL || strcmp(out.scheme, "http") == 0 ||
              strcmp(out.scheme, "https") == 0,
          "scheme '%s'", out.scheme);
    CHECK(out.port >= 0 && out.port <= 65535, "port %d", out.port);
    CHECK(said == (out.addr[0] || out.scheme), "said %d, addr '%s'", said,
          out.addr);
    if (out.addr[0]) {
        /* inet_ntop's own form, and named by the headers. */
        struct ip ip;
        CHECK(ref_parse(out.addr, strlen(out.addr), &ip), "bad addr '%s'",
              out.addr);
        char again[INET6_ADDRSTRLEN];
        inet_ntop(ip.family, ip.b, again, sizeof(again));
        CHECK(strcmp(again, out.addr) == 0, "'%s' is not normalised ('%s')",
              out.addr, again);
        CHECK(named_by_headers(&ip, h, nh), "'%s' named by no header",
              out.addr);
    } else {
        CHECK(out.port == 0, "port %d without an address", out.port);
    }
    drv_proxy_trust_free(t);
    return 0;
}
