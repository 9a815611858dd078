/*
 * proctitle: process titles as ps and top show them.
 *
 *   drover: master [myapp]
 *   drover: worker 3 [myapp]
 *
 * The title is written over the memory that holds argv and the initial
 * environment (the environment is copied to the heap first, so getenv
 * keeps working), as nginx and PostgreSQL do, and the short name from
 * prctl(PR_SET_NAME) that top shows is set too.
 */
#ifndef DRV_PROCTITLE_H
#define DRV_PROCTITLE_H

/* Once, first thing in main(). Returns a copy of argv that stays valid
 * after titles overwrite the original (for re-exec). */
char **drv_proctitle_init(int argc, char **argv);

/* Set the title (printf format). Longer titles are cut. */
void drv_proctitle_set(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif
