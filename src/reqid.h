/*
 * reqid: request ids (X-Request-ID).
 *
 * Every request drover serves carries one id, the same everywhere: the
 * app sees it (HTTP_X_REQUEST_ID, the native view's request_id), the
 * client gets it back in the response's X-Request-ID header (unless the
 * app set that header itself), and the access log has it (%(R)s, the JSON
 * format's request_id).
 *
 * The id is the request's first X-Request-ID header when that is a sane
 * token: 1 to DRV_REQID_MAX bytes, each printable ASCII other than space
 * (0x21-0x7E), so it goes into a response header as it is and cannot
 * split a log line. Otherwise (no header, an empty or too long one,
 * spaces, control bytes, bytes above 0x7E) drover makes one:
 * DRV_REQID_LEN lower-case hex digits, 128 bits.
 *
 * Generation is always on: it costs two multiplications per request and
 * no system call (see reqid.c). Ids are made only on the loop thread of a
 * worker (conn.c assigns them before a request reaches an app thread);
 * none of this is thread-safe.
 */
#ifndef DRV_REQID_H
#define DRV_REQID_H

#include <drover/app.h>
#include <stdbool.h>
#include <stddef.h>

/* Longest X-Request-ID kept from a request. */
#define DRV_REQID_MAX 128
/* Length of a generated id (hex digits, no terminating NUL). */
#define DRV_REQID_LEN 32

/* True when p[0..n) may serve as a request id as it is. */
bool drv_reqid_sane(const char *p, size_t n);

/* Seed this process's generator from the kernel (getrandom). Call it in
 * each process that will make ids, after fork(): ids from two workers
 * seeded alike would repeat. A process that never called it seeds itself
 * at its first id. */
void drv_reqid_seed(void);

/* Write a new id, DRV_REQID_LEN hex digits, to out (no NUL). */
void drv_reqid_generate(char out[DRV_REQID_LEN]);

/* The id of a request whose X-Request-ID header is `given` (ptr NULL or
 * len 0 when it has none): `given` itself when sane, else a new id
 * written to buf, which the returned view then points into. */
struct drover_str drv_reqid_pick(struct drover_str given,
                                 char buf[DRV_REQID_LEN]);

#endif
