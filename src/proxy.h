/*
 * proxy: trusted proxy headers (forwarded_allow_ips).
 *
 * Behind nginx, HAProxy or a cloud load balancer the TCP peer is the
 * proxy, and the client's address and scheme arrive in headers:
 *
 *   Forwarded: for=203.0.113.7;proto=https          (RFC 7239)
 *   X-Forwarded-For: 203.0.113.7, 10.0.0.2          (de facto)
 *   X-Forwarded-Proto: https
 *
 * Anyone can send these headers, so they count only when the peer is
 * trusted: its address is in forwarded_allow_ips (addresses or CIDR
 * networks, "*" for every peer), or it is a unix socket peer (only local
 * processes can connect to those; gunicorn trusts them too). From any
 * other peer they are ignored and REMOTE_ADDR stays the peer's address.
 *
 * Which address is the client (gunicorn >= 19 never rewrites REMOTE_ADDR
 * and leaves it to middleware such as werkzeug's ProxyFix; drover does
 * it once in C so native apps, Python apps and the access log agree):
 * the address list is walked from the right, skipping every hop that is
 * itself a trusted proxy; the first untrusted hop is the client. When
 * every hop is trusted, the left-most one is. "*" trusts the peer as one
 * proxy only: the right-most hop (the one the peer added) is the client,
 * since with any address trusted, walking on would reach entries the
 * client wrote itself. Further hops are skipped only for addresses listed
 * explicitly; list only your proxies' addresses, not networks your
 * clients may come from (behind NAT, say). Taking
 * the right-most untrusted hop means a client cannot choose its own
 * REMOTE_ADDR by sending a forged X-Forwarded-For: the proxy appends the
 * address it saw, and that is the entry used. A hop that is not an IP
 * literal (RFC 7239 "unknown", obfuscated "_name", garbage) leaves
 * REMOTE_ADDR as the peer.
 *
 * X-Forwarded-For / X-Forwarded-Proto win when either is present: they
 * are what nginx, ingress-nginx, cloud load balancers and PaaS routers
 * set, and such a proxy passes a client's own Forwarded header through
 * untouched, so preferring Forwarded would let a client pick its address.
 * Forwarded is read only when no X-Forwarded-* header is there; the
 * scheme then comes from the client's Forwarded element (proto=). With
 * X-Forwarded-* the scheme is the last X-Forwarded-Proto value (the one
 * the nearest proxy set). Only "http" and "https" are accepted. A proxy
 * that sets only Forwarded must strip client X-Forwarded-* headers.
 */
#ifndef DRV_PROXY_H
#define DRV_PROXY_H

#include <drover/app.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* What trusted proxy headers said; an empty field means "not said". */
struct drv_forwarded {
    char addr[INET6_ADDRSTRLEN]; /* client address, normalised; "" = none */
    int port;                    /* client port, 0 when not given */
    const char *scheme;          /* "http", "https" (static), or NULL */
};

/*
 * Validate one forwarded_allow_ips item, which may itself be a
 * comma-separated list: "*", an IPv4 or IPv6 address, or ADDRESS/BITS.
 * An empty item is allowed and trusts nothing. Returns 0, or -1 with a
 * short reason (no source name) in err.
 */
int drv_proxy_check_allow(const char *item, char *err, size_t len);

/* forwarded_allow_ips compiled once: its networks in binary (an address
 * is a network of full length), and whether "*" was among them. */
struct drv_proxy_trust;

/*
 * Compile the items of forwarded_allow_ips (each one as
 * drv_proxy_check_allow accepts). Returns the compiled list, to free with
 * drv_proxy_trust_free, or NULL with the first bad piece named in err
 * (as drv_proxy_check_allow words it).
 */
struct drv_proxy_trust *drv_proxy_trust_create(const struct drv_strlist *allow,
                                               char *err, size_t len);
void drv_proxy_trust_free(struct drv_proxy_trust *t);

/*
 * Is `peer` (an accepted socket's peer address) trusted by `t`? A peer
 * that is neither IPv4 nor IPv6 (a unix socket) always is; an
 * IPv4-mapped IPv6 peer is compared as IPv4. A NULL `t` trusts no TCP
 * peer.
 */
bool drv_proxy_trusted(const struct drv_proxy_trust *t,
                       const struct sockaddr *peer);

/*
 * Read the proxy headers of one request from `peer` into *out.
 * Returns true when `out` holds something (the peer is trusted and a
 * header gave an address or a scheme), false when the request carries
 * no proxy header or the peer is not trusted; *out is cleared either
 * way. Cheap when no proxy header is present: the trust list is only
 * consulted when there is something to trust. On true, out->addr is ""
 * or an IP address in inet_ntop's form, out->port is 0..65535 and
 * out->scheme is NULL, "http" or "https".
 */
bool drv_proxy_resolve(const struct drv_proxy_trust *t,
                       const struct sockaddr *peer,
                       const struct drover_header *headers, size_t n,
                       struct drv_forwarded *out);

#endif
