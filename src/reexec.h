/*
 * reexec: replace the running image with a fresh drover, same pid, same
 * listening sockets.
 *
 * Both the master's HUP reload and --dev's reload on file change start
 * over from a new image (new configuration, freshly imported code) while
 * keeping the pid and the sockets, so nothing queued in the backlog is
 * refused. The sockets cross exec() where they are: their close-on-exec
 * flag is cleared and DROVER_LISTEN_FDS lists them ("5+,6": a '+' marks a
 * socket drover bound itself, as opposed to one systemd passed in). The new image
 * adopts them instead of binding (drv_reexec_listen_fds), so a change of
 * `bind` takes a restart, not a reload.
 *
 * Nothing is moved or closed before exec(), so a failed exec() leaves the
 * process as it was.
 *
 * The master's metrics listeners (--metrics-bind) cross the same way in
 * DROVER_METRICS_FDS, so that a scrape or a probe during a reload waits
 * in their backlog instead of being refused.
 *
 * A caller may pass one more descriptor to keep open across exec (the
 * master's scoreboard); DROVER_INHERIT_FD names it.
 */
#ifndef DRV_REEXEC_H
#define DRV_REEXEC_H

#include <stddef.h>
#include <sys/types.h>

#include "listener.h"

/* The argv drover was started with; drv_reexec() runs it again. It is
 * kept, not copied: it must stay valid and unchanged (proctitle's copy). */
void drv_reexec_save_argv(int argc, char **argv);

/* The working directory drover started in (before --chdir), against
 * which relative paths of the command line resolve; NULL if unknown. */
const char *drv_reexec_start_dir(void);

/* Exec /proc/self/exe with the saved argv, handing over the listeners,
 * the metrics listeners `ml` (nm of them, may be 0) and `keep_fd` (-1:
 * none). Returns only on failure: -errno, with everything as it was. */
int drv_reexec(struct drv_listener *l, size_t n, struct drv_listener *ml,
               size_t nm, int keep_fd);

/* Start `drover <saved argv> --check-config` in a child process, its
 * output to the error log (stderr) only. Returns its pid, or -errno. */
pid_t drv_reexec_check(void);

/* In the new image: the listening descriptors DROVER_LISTEN_FDS names, as
 * bind addresses "fd://N" in a new list (*n of them; NULL and 0 when the
 * variable is unset), and in *owned (allocated, *n entries) whether drover
 * had bound each itself (drv_listener.owned). The variable is removed so
 * that children do not see it. */
char **drv_reexec_listen_fds(size_t *n, bool **owned);

/* The same for the metrics listeners (DROVER_METRICS_FDS). */
char **drv_reexec_metrics_fds(size_t *n, bool **owned);

/* In the new image: the descriptor DROVER_INHERIT_FD named (close-on-exec
 * again), or -1. The variable is removed. */
int drv_reexec_inherited_fd(void);

#endif
