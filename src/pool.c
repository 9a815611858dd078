/*
 * pool: the app threads and the two job lists between them and the loop
 * (see pool.h for the hand-off).
 *
 * `queue` (FIFO) holds jobs for the app threads, `finished` (LIFO, put in
 * order when taken) jobs whose done() the loop thread still has to run.
 * One mutex guards both and the counters; app threads sleep on `work`,
 * and the loop is woken by an ev_async, which coalesces: one wake-up may
 * carry many finished jobs.
 */
#include "pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "app.h"
#include "buf.h"
#include "log.h"

struct drv_pool {
    pthread_mutex_t lock;
    pthread_cond_t work;    /* queue not empty, or quit */
    pthread_cond_t exited;  /* a thread ended */
    struct drv_job *head, *tail; /* queue */
    struct drv_job *finished;
    size_t busy;            /* threads in a job */
    size_t alive;           /* threads started and not yet ended */
    bool quit;
    bool drain;             /* with quit: run what is queued first */
    struct ev_loop *loop;
    ev_async wake;
};

static __thread bool app_thread;

bool drv_pool_on_app_thread(void)
{
    return app_thread;
}

static struct drv_job *next_job(struct drv_pool *p)
{
    while (!p->head && !p->quit)
        pthread_cond_wait(&p->work, &p->lock);
    struct drv_job *job = p->head;
    if (!job || (p->quit && !p->drain))
        return NULL;
    p->head = job->next;
    if (!p->head)
        p->tail = NULL;
    p->busy++;
    return job;
}

/* An app thread's life: take a job, run it, hand it back; until quit. */
static void thread_body(void *arg)
{
    struct drv_pool *p = arg;
    app_thread = true;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        struct drv_job *job = next_job(p);
        if (!job)
            break;
        drv_job_cb done = job->done;
        pthread_mutex_unlock(&p->lock);
        job->run(job); /* may free the job when done is NULL */
        pthread_mutex_lock(&p->lock);
        p->busy--;
        if (done) {
            job->next = p->finished;
            p->finished = job;
            ev_async_send(p->loop, &p->wake);
        }
    }
    p->alive--;
    pthread_cond_broadcast(&p->exited);
    pthread_mutex_unlock(&p->lock);
}

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    struct drv_pool *p = drv_container_of(w, struct drv_pool, wake);
    pthread_mutex_lock(&p->lock);
    struct drv_job *list = p->finished;
    p->finished = NULL;
    pthread_mutex_unlock(&p->lock);
    /* Oldest first. */
    struct drv_job *fifo = NULL;
    while (list) {
        struct drv_job *next = list->next;
        list->next = fifo;
        fifo = list;
        list = next;
    }
    while (fifo) {
        struct drv_job *job = fifo;
        fifo = job->next;
        job->next = NULL;
        job->done(job);
    }
}

struct drv_pool *drv_pool_create(struct ev_loop *loop, struct drv_app *app,
                                 size_t nthreads, char *err, size_t errlen)
{
    if (!app->ops->spawn) {
        snprintf(err, errlen, "%s apps cannot run on app threads",
                 app->ops->kind);
        return NULL;
    }
    struct drv_pool *p = drv_xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->exited, NULL);
    p->loop = loop;
    ev_async_init(&p->wake, on_wake);
    ev_async_start(loop, &p->wake);
    for (size_t i = 0; i < nthreads; i++) {
        pthread_mutex_lock(&p->lock);
        p->alive++;
        pthread_mutex_unlock(&p->lock);
        if (app->ops->spawn(app, thread_body, p, i, err, errlen) != 0) {
            pthread_mutex_lock(&p->lock);
            p->alive--;
            pthread_mutex_unlock(&p->lock);
            drv_pool_free(p, true);
            return NULL;
        }
    }
    return p;
}

void drv_pool_submit(struct drv_pool *p, struct drv_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
}

void drv_pool_free(struct drv_pool *p, bool wait)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->quit = true;
    p->drain = wait;
    pthread_cond_broadcast(&p->work);
    /* Idle threads end at once; busy ones after their job. */
    while (p->alive > (wait ? 0 : p->busy))
        pthread_cond_wait(&p->exited, &p->lock);
    bool all_gone = p->alive == 0;
    pthread_mutex_unlock(&p->lock);
    ev_async_stop(p->loop, &p->wake);
    if (!all_gone)
        return; /* a thread stuck in the app still uses it */
    pthread_cond_destroy(&p->exited);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
