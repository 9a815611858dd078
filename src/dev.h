/*
 * dev: --dev, the single-process server that reloads itself when the code
 * changes.
 *
 * One process, one thread, one libev loop, no fork: the worker (worker.c)
 * serves, and on the same loop dev watches every Python source file the
 * app imported, the config file, the native app's .so and
 * reload_extra_files (inotify, editors that save by rename included). A
 * burst of changes makes one reload: the requests in flight finish, then
 * drover re-executes itself in place (reexec.c), keeping its pid and its
 * listening sockets, so a request sent meanwhile waits in the backlog.
 *
 * Dev mode loads the app itself: an app that fails to load (SyntaxError,
 * ImportError, a .so that does not link) is served as a 500 page carrying
 * the traceback as plain text, and fixing the file reloads. SIGINT and
 * SIGTERM stop at once, with exit status 0.
 */
#ifndef DRV_DEV_H
#define DRV_DEV_H

#include <stddef.h>

#include "listener.h"
#include "settings.h"

struct drv_accesslog;

/*
 * Serve s->app on `listeners` in this process until SIGINT or SIGTERM
 * (returns 0), or until a watched file changes: then drover re-executes
 * itself keeping `listeners` open, and this returns only if that fails
 * (logged; returns 1). `accesslog` may be NULL: requests are then logged
 * to stderr. The caller keeps ownership of `listeners` and `accesslog`.
 * Returns 2 (with one line on stderr) when no app is given.
 */
int drv_dev_run(const struct drv_settings *s, struct drv_listener *listeners,
                size_t nlisteners, struct drv_accesslog *accesslog);

#endif
