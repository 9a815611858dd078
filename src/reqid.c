/*
 * reqid: the sanity check and the generator.
 *
 * A generated id is 128 bits made of two 64-bit halves from splitmix64's
 * finaliser `mix`, which is a bijection on 64-bit words. Each process has
 * a counter n and two random seeds s0, s1, drawn once (getrandom at
 * worker start), and id n is
 *
 *   lo = mix(s0 + n)   distinct for every n, so one process never makes
 *                      the same id twice (short of 2^64 ids)
 *   hi = mix(s1 ^ lo)
 *
 * Two processes make the same id only when their lo halves meet (one
 * chance in 2^64 per pair of ids) and their s1 seeds are equal (one in
 * 2^64 more). That is the whole cost: an add, two mixes and the hex, no
 * system call, no lock (ids are made on the loop thread only).
 *
 * The ids are not secrets: mix can be inverted, so whoever sees one id
 * can work out the next ones. They tie log lines together and authorise
 * nothing.
 */
#include "reqid.h"

#include <errno.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static struct {
    uint64_t s0, s1, n;
    bool seeded;
} gen;

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

bool drv_reqid_sane(const char *p, size_t n)
{
    if (n == 0 || n > DRV_REQID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x21 || c > 0x7e)
            return false;
    }
    return true;
}

void drv_reqid_seed(void)
{
    uint64_t seed[2];
    ssize_t got;
    do
        got = getrandom(seed, sizeof(seed), 0);
    while (got < 0 && errno == EINTR);
    if (got != (ssize_t)sizeof(seed)) {
        /* No getrandom (ENOSYS on old kernels): the clock, the pid and
         * where the stack landed still differ between workers. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed[0] = mix((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
        seed[1] = mix(((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&ts);
    }
    gen.s0 = seed[0];
    gen.s1 = seed[1];
    gen.n = 0;
    gen.seeded = true;
}

static void hex64(char *out, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = digits[v & 15];
        v >>= 4;
    }
}

void drv_reqid_generate(char out[DRV_REQID_LEN])
{
    if (!gen.seeded)
        drv_reqid_seed();
    uint64_t lo = mix(gen.s0 + gen.n++);
    uint64_t hi = mix(gen.s1 ^ lo);
    hex64(out, hi);
    hex64(out + 16, lo);
}

struct drover_str drv_reqid_pick(struct drover_str given,
                                 char buf[DRV_REQID_LEN])
{
    if (given.ptr && drv_reqid_sane(given.ptr, given.len))
        return given;
    drv_reqid_generate(buf);
    return (struct drover_str){buf, DRV_REQID_LEN};
}
