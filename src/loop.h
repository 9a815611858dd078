/*
 * loop: breaking a worker's libev loop so that whoever drives it hears.
 *
 * A worker's loop is normally run by ev_run, which returns once broken.
 * An app that drives the loop itself (ASGI: asyncio's loop runs it one
 * iteration at a time, see python_asgi.c) sets a struct drv_loop_flags as
 * the loop's userdata and checks `broken` after each iteration, since
 * libev forgets a break when the next ev_run begins.
 */
#ifndef DRV_LOOP_H
#define DRV_LOOP_H

#include <ev.h>
#include <stdbool.h>

struct drv_loop_flags {
    bool broken;
};

static inline void drv_loop_break(struct ev_loop *loop)
{
    struct drv_loop_flags *f = ev_userdata(loop);
    ev_break(loop, EVBREAK_ALL);
    if (f)
        f->broken = true;
}

#endif
