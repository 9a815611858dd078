/*
 * pool: a worker's app threads (--threads N > 1).
 *
 * The loop thread keeps all network work; whatever may run app code (an
 * app call, pulling a streamed body, closing a body source) becomes a
 * job. A job is handed to the pool with drv_pool_submit(); a free app
 * thread runs job->run(), then the loop thread runs job->done() in its
 * next iteration. The two never run at once for one job, and everything
 * run() wrote is visible to done() (the hand-off goes through the pool's
 * mutex). Jobs wait in FIFO order, so requests start in the order they
 * became ready.
 *
 * A job may be pinned to one thread. The rest of a request (pulling its
 * body, closing it) runs on the thread that called the app: a body's
 * generator may rely on the thread's state, as Flask's
 * stream_with_context does with its context variables, and under
 * gunicorn's gthread and waitress one thread runs a request from call to
 * close.
 *
 * Threads are started through the app's `spawn` operation (app.h), so
 * that a Python app's threads are real `threading` threads; each runs the
 * pool's thread body without the GIL and takes it only inside the app.
 *
 * The hand-off (pool.c says how wake-ups are batched):
 *
 *   loop thread                          app thread
 *   submit: lock, append, unlock
 *   before blocking: signal as many
 *   sleeping threads as jobs need  -->   wait: lock, pop, unlock
 *                                        run(job)        (app code, GIL)
 *                                        lock, push done, pop the next
 *   on_wake: lock, take all done,  <--   job if any, unlock; wake the
 *            unlock, done(job)...        loop if the done list was empty
 */
#ifndef DRV_POOL_H
#define DRV_POOL_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct drv_app;
struct drv_job;

typedef void (*drv_job_cb)(struct drv_job *job);

struct drv_job {
    struct drv_job *next; /* the pool's */
    drv_job_cb run;       /* on an app thread */
    drv_job_cb done;      /* then on the loop thread; NULL: nothing (run
                             may then free the job) */
    int thread;           /* the app thread to run on, -1: any; the pool
                             sets it to the one that ran the job */
};

struct drv_pool;

/* Start `nthreads` app threads through the app's spawn operation, with
 * `loop` as the loop thread's loop (the pool adds an ev_async to it).
 * Returns the pool, or NULL with one line in err (no thread is left
 * running then). */
struct drv_pool *drv_pool_create(struct ev_loop *loop, struct drv_app *app,
                                 size_t nthreads, char *err, size_t errlen);

/* Queue a job (loop thread). */
void drv_pool_submit(struct drv_pool *pool, struct drv_job *job);

/* From now on, store the number of threads in a job at *where (a
 * relaxed atomic store, each time it changes; NULL: stop). For the
 * scoreboard's gauge of busy app threads. */
void drv_pool_publish_busy(struct drv_pool *pool, uint64_t *where);

/* True on one of the pool's app threads. */
bool drv_pool_on_app_thread(void);

/* Stop the threads. With `wait`, they first run every job still queued
 * (sources to close, at a graceful stop), and the call returns once all
 * have ended. Without it, queued jobs are dropped, idle threads end, and
 * threads still in a job are abandoned (the process is about to exit:
 * the pool then leaks). Frees the pool when every thread has ended. Job
 * done() callbacks no longer run: the loop has stopped. */
void drv_pool_free(struct drv_pool *pool, bool wait);

#endif
