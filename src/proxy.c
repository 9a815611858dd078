/*
 * proxy: trust decisions and proxy header parsing; see proxy.h for the
 * policy.
 *
 * The trust list is compiled once (drv_proxy_trust_create, when a worker
 * starts) into networks in binary, and a peer is matched by its binary
 * address: a proxied request costs no parsing of the list, only of its
 * own headers. drv_proxy_check_allow (the settings' validation at start)
 * runs the same compiler, so an item it accepts always compiles.
 *
 * Hops are collected left to right into a fixed array; a header with more
 * than MAX_HOPS hops keeps the right-most ones, which are the only ones
 * the right-to-left walk can reach in any sane deployment.
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HOPS 32

struct ip {
    int family;          /* AF_INET or AF_INET6 */
    unsigned char b[16]; /* network order; IPv4 in b[0..3] */
};

struct net {
    struct ip ip;
    int bits;
};

struct hop {
    bool valid; /* `ip` holds an address */
    struct ip ip;
    int port;
    const char *proto; /* Forwarded proto=, static; NULL if none */
};

struct hops {
    struct hop v[MAX_HOPS];
    size_t n;
};

/* A string view for header values. */
struct span {
    const char *p;
    size_t len;
};

static struct span trim(const char *p, size_t len)
{
    while (len && (*p == ' ' || *p == '\t'))
        p++, len--;
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    return (struct span){p, len};
}

static bool span_is(struct span s, const char *lower)
{
    return s.len == strlen(lower) && strncasecmp(s.p, lower, s.len) == 0;
}

/* An IPv4-mapped IPv6 address (::ffff:10.0.0.1) becomes IPv4, so that it
 * matches a 10.0.0.0/8 rule. */
static void unmap(struct ip *ip)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
                                             0, 0, 0, 0, 0xff, 0xff};
    if (ip->family != AF_INET6 || memcmp(ip->b, mapped, sizeof(mapped)) != 0)
        return;
    memmove(ip->b, ip->b + 12, 4);
    memset(ip->b + 4, 0, 12);
    ip->family = AF_INET;
}

/* Parse an IP literal (mapped IPv6 becomes IPv4: see unmap). */
static bool parse_ip(const char *p, size_t len, struct ip *out)
{
    char buf[INET6_ADDRSTRLEN];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, p, len);
    buf[len] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->b) == 1) {
        out->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, out->b) != 1)
        return false;
    out->family = AF_INET6;
    unmap(out);
    return true;
}

/* "ADDRESS" or "ADDRESS/BITS". */
static bool parse_net(struct span s, struct net *out)
{
    const char *slash = memchr(s.p, '/', s.len);
    size_t alen = slash ? (size_t)(slash - s.p) : s.len;
    if (!parse_ip(s.p, alen, &out->ip))
        return false;
    int max = out->ip.family == AF_INET ? 32 : 128;
    out->bits = max;
    if (!slash)
        return true;
    const char *d = slash + 1, *end = s.p + s.len;
    if (d == end || end - d > 3)
        return false;
    int bits = 0;
    for (; d < end; d++) {
        if (!isdigit((unsigned char)*d))
            return false;
        bits = bits * 10 + (*d - '0');
    }
    if (bits > max)
        return false;
    out->bits = bits;
    return true;
}

static bool in_net(const struct net *n, const struct ip *ip)
{
    if (n->ip.family != ip->family)
        return false;
    int full = n->bits / 8, rest = n->bits % 8;
    if (memcmp(n->ip.b, ip->b, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (n->ip.b[full] & mask) == (ip->b[full] & mask);
}

struct drv_proxy_trust {
    bool any;         /* "*": every peer */
    struct net *nets; /* addresses are networks of full length */
    size_t n, cap;
};

/* Add the comma pieces of one item to `t`. Returns 0, or -1 with the
 * first bad piece named in err (then `t` may hold the good ones). */
static int compile_item(struct drv_proxy_trust *t, const char *item,
                        char *err, size_t len)
{
    const char *p = item;
    for (;;) {
        const char *comma = strchr(p, ',');
        struct span s = trim(p, comma ? (size_t)(comma - p) : strlen(p));
        struct net n;
        if (s.len == 1 && s.p[0] == '*') {
            t->any = true;
        } else if (s.len && parse_net(s, &n)) {
            if (t->n == t->cap) {
                t->cap = t->cap ? 2 * t->cap : 4;
                t->nets = drv_xrealloc(t->nets, t->cap * sizeof(*t->nets));
            }
            t->nets[t->n++] = n;
        } else if (s.len) {
            snprintf(err, len,
                     "'%.*s' is not an IP address, a network (ADDRESS/BITS) "
                     "or *",
                     (int)s.len, s.p);
            return -1;
        }
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

int drv_proxy_check_allow(const char *item, char *err, size_t len)
{
    struct drv_proxy_trust t = {0};
    int rc = compile_item(&t, item, err, len);
    free(t.nets);
    return rc;
}

struct drv_proxy_trust *drv_proxy_trust_create(const struct drv_strlist *allow,
                                               char *err, size_t len)
{
    struct drv_proxy_trust *t = drv_xcalloc(1, sizeof(*t));
    for (size_t i = 0; i < allow->n; i++) {
        if (compile_item(t, allow->v[i], err, len) != 0) {
            drv_proxy_trust_free(t);
            return NULL;
        }
    }
    return t;
}

void drv_proxy_trust_free(struct drv_proxy_trust *t)
{
    if (!t)
        return;
    free(t->nets);
    free(t);
}

static bool ip_trusted(const struct drv_proxy_trust *t, const struct ip *ip)
{
    if (!t)
        return false;
    if (t->any)
        return true;
    for (size_t i = 0; i < t->n; i++)
        if (in_net(&t->nets[i], ip))
            return true;
    return false;
}

/* The peer's address as the trust list compares it; false for a peer
 * that is not IPv4 or IPv6 (a unix socket). */
static bool peer_ip(const struct sockaddr *sa, struct ip *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        out->family = AF_INET;
        memcpy(out->b, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family != AF_INET6)
        return false;
    const struct sockaddr_in6 *in6 = (const void *)sa;
    out->family = AF_INET6;
    memcpy(out->b, &in6->sin6_addr, 16);
    unmap(out);
    return true;
}

bool drv_proxy_trusted(const struct drv_proxy_trust *t,
                       const struct sockaddr *peer)
{
    struct ip ip;
    if (!peer_ip(peer, &ip))
        return true; /* unix socket: a local process */
    return ip_trusted(t, &ip);
}

/* One node: "1.2.3.4", "1.2.3.4:80", "::1", "[::1]", "[::1]:80". */
static bool parse_node(struct span s, struct ip *ip, int *port)
{
    const char *addr = s.p, *portp = NULL, *end = s.p + s.len;
    size_t alen = s.len;
    *port = 0;
    if (s.len && s.p[0] == '[') {
        const char *close = memchr(s.p, ']', s.len);
        if (!close)
            return false;
        addr = s.p + 1;
        alen = (size_t)(close - addr);
        if (close + 1 < end) {
            if (close[1] != ':')
                return false;
            portp = close + 2;
        }
    } else {
        const char *colon = memchr(s.p, ':', s.len);
        if (colon && !memchr(colon + 1, ':', (size_t)(end - colon - 1))) {
            alen = (size_t)(colon - s.p); /* exactly one ':' is IPv4:port */
            portp = colon + 1;
        }
    }
    if (!parse_ip(addr, alen, ip))
        return false;
    if (portp) {
        int v = 0;
        if (portp == end || end - portp > 5)
            return false;
        for (const char *d = portp; d < end; d++) {
            if (!isdigit((unsigned char)*d))
                return false;
            v = v * 10 + (*d - '0');
        }
        *port = v <= 65535 ? v : 0;
    }
    return true;
}

static struct hop *push_hop(struct hops *h)
{
    if (h->n == MAX_HOPS) {
        memmove(h->v, h->v + 1, (MAX_HOPS - 1) * sizeof(h->v[0]));
        h->n--;
    }
    struct hop *hp = &h->v[h->n++];
    memset(hp, 0, sizeof(*hp));
    return hp;
}

/* Next `sep`-separated piece of [*p, end), honouring "quoted strings"
 * (RFC 7230 quoted-string, with backslash escapes). *p becomes NULL after
 * the last piece; an empty input is one empty piece. */
static bool next_piece(const char **p, const char *end, char sep,
                       struct span *out)
{
    const char *s = *p, *q;
    bool quoted = false;
    if (!s)
        return false;
    for (q = s; q < end && (quoted || *q != sep); q++) {
        if (*q == '"')
            quoted = !quoted;
        else if (*q == '\\' && quoted && q + 1 < end)
            q++;
    }
    *out = trim(s, (size_t)(q - s));
    *p = q < end ? q + 1 : NULL;
    return true;
}

static void xff_hops(const struct drover_header *h, struct hops *hops)
{
    const char *p = h->value.ptr, *end = p + h->value.len;
    struct span s;
    while (next_piece(&p, end, ',', &s)) {
        struct hop *hp = push_hop(hops);
        hp->valid = parse_node(s, &hp->ip, &hp->port);
    }
}

static const char *scheme_of(struct span s)
{
    if (span_is(s, "https"))
        return "https";
    if (span_is(s, "http"))
        return "http";
    return NULL;
}

/* A Forwarded parameter value: a token or a quoted-string (the node forms
 * with ':' or '[' have to be quoted; no escapes are needed in them). */
static struct span unquote(struct span v)
{
    if (v.len >= 2 && v.p[0] == '"' && v.p[v.len - 1] == '"')
        return trim(v.p + 1, v.len - 2);
    return v;
}

static void forwarded_hops(const struct drover_header *h, struct hops *hops)
{
    const char *p = h->value.ptr, *end = p + h->value.len;
    struct span elem, pair;
    while (next_piece(&p, end, ',', &elem)) {
        struct hop *hp = push_hop(hops);
        const char *q = elem.p, *eend = elem.p + elem.len;
        while (next_piece(&q, eend, ';', &pair)) {
            const char *eq = memchr(pair.p, '=', pair.len);
            if (!eq)
                continue;
            struct span key = trim(pair.p, (size_t)(eq - pair.p));
            struct span val =
                unquote(trim(eq + 1, (size_t)(pair.p + pair.len - eq - 1)));
            if (span_is(key, "for"))
                hp->valid = parse_node(val, &hp->ip, &hp->port);
            else if (span_is(key, "proto"))
                hp->proto = scheme_of(val);
        }
    }
}

/* The last comma-separated value of the last X-Forwarded-Proto. */
static const char *xfp_scheme(const struct drover_header *h)
{
    const char *v = h->value.ptr, *end = v + h->value.len, *last = v;
    for (const char *c = v; c < end; c++)
        if (*c == ',')
            last = c + 1;
    return scheme_of(trim(last, (size_t)(end - last)));
}

/*
 * Walk from the right past trusted proxies: the client's hop. With "*"
 * the peer is trusted as one proxy and the right-most hop, the one it
 * added, is the client: walking on would reach entries the client wrote
 * itself. Further hops are skipped only for addresses listed explicitly.
 */
static const struct hop *client_hop(const struct drv_proxy_trust *t,
                                    const struct hops *h)
{
    if (h->n == 0)
        return NULL;
    if (t && t->any)
        return &h->v[h->n - 1];
    for (size_t i = h->n; i-- > 0;)
        if (!h->v[i].valid || !ip_trusted(t, &h->v[i].ip))
            return &h->v[i];
    return &h->v[0];
}

static bool name_is(const struct drover_header *h, const char *lower)
{
    return span_is((struct span){h->name.ptr, h->name.len}, lower);
}

bool drv_proxy_resolve(const struct drv_proxy_trust *t,
                       const struct sockaddr *peer,
                       const struct drover_header *headers, size_t n,
                       struct drv_forwarded *out)
{
    const struct drover_header *xfp = NULL;
    bool xff = false, fwd = false;
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        if (name_is(&headers[i], "x-forwarded-for"))
            xff = true;
        else if (name_is(&headers[i], "x-forwarded-proto"))
            xfp = &headers[i];
        else if (name_is(&headers[i], "forwarded"))
            fwd = true;
    }
    if (!xff && !xfp && !fwd)
        return false;
    if (!drv_proxy_trusted(t, peer))
        return false;

    /* X-Forwarded-* win when present; Forwarded only stands alone. */
    bool use_xff = xff || xfp;
    struct hops hops;
    hops.n = 0;
    for (size_t i = 0; i < n; i++) {
        if (use_xff && name_is(&headers[i], "x-forwarded-for"))
            xff_hops(&headers[i], &hops);
        else if (!use_xff && name_is(&headers[i], "forwarded"))
            forwarded_hops(&headers[i], &hops);
    }
    const struct hop *client = client_hop(t, &hops);
    if (client && client->valid) {
        struct ip ip = client->ip;
        inet_ntop(ip.family, ip.b, out->addr, sizeof(out->addr));
        out->port = client->port;
    }
    if (use_xff)
        out->scheme = xfp ? xfp_scheme(xfp) : NULL;
    else
        out->scheme = client ? client->proto : NULL;
    return out->addr[0] || out->scheme;
}
