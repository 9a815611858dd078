/*
 * pool: the app threads and the job lists between them and the loop (see
 * pool.h for the hand-off).
 *
 * Jobs wait in the shared FIFO `head`/`tail` for any thread, or in one
 * thread's own FIFO when pinned to it (the rest of a request after its
 * app call: pulling the body, closing it). `finished` (LIFO, put in order
 * when taken) holds jobs whose done() the loop thread still has to run.
 * One mutex guards all of it. Each thread sleeps on its own condition
 * variable, so a pinned job wakes exactly its thread; sleeping threads
 * form a LIFO list, so the most recently busy one (warm caches) goes
 * first and the others stay asleep under light load.
 *
 * Wake-ups are what the hand-off costs (a futex call, and a context
 * switch when the woken thread runs on the same CPU), so both directions
 * batch them:
 * - submit() only queues. Before the loop blocks again (an ev_prepare
 *   watcher), it wakes the threads that have pinned jobs, and as many
 *   further sleeping threads as there are shared jobs that no awake idle
 *   thread will take, after the mutex is released (a thread woken under
 *   it would block again at once). A thread that finishes a job takes
 *   the next one without sleeping. So the jobs of one loop iteration
 *   (every request that epoll reported ready) cost at most one wake-up
 *   per thread, not one per job.
 * - A thread that finishes a job wakes the loop (ev_async_send) only when
 *   the finished list was empty: otherwise a wake-up is already on its way
 *   and the loop takes this job with the others.
 */
#include "pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "app.h"
#include "buf.h"
#include "log.h"

struct app_thread {
    struct drv_pool *pool;
    int index;
    pthread_cond_t wake;
    struct drv_job *head, *tail; /* pinned to this thread */
    struct app_thread *below;    /* the sleeping list, while `asleep` */
    bool asleep;
};

struct drv_pool {
    pthread_mutex_t lock;
    pthread_cond_t exited;       /* a thread ended */
    struct drv_job *head, *tail; /* shared queue */
    size_t queued;               /* jobs in it */
    struct drv_job *finished;
    struct app_thread *threads;
    size_t nthreads;
    struct app_thread *sleeping; /* top of the LIFO list */
    size_t nsleeping;
    size_t busy;                 /* threads in a job */
    uint64_t *busy_out;          /* where busy is published, or NULL */
    size_t alive;                /* threads started and not yet ended */
    bool quit;
    bool drain;                  /* with quit: run what is queued first */
    struct ev_loop *loop;
    ev_async wake;
    ev_prepare kick;             /* wakes threads for what was submitted */
    bool submitted;              /* since the last kick (loop thread) */
    struct app_thread **to_wake; /* on_kick's scratch (loop thread) */
};

static __thread struct app_thread *self;

bool drv_pool_on_app_thread(void)
{
    return self != NULL;
}

static void push(struct drv_job **head, struct drv_job **tail,
                 struct drv_job *job)
{
    job->next = NULL;
    if (*tail)
        (*tail)->next = job;
    else
        *head = job;
    *tail = job;
}

static struct drv_job *pop(struct drv_job **head, struct drv_job **tail)
{
    struct drv_job *job = *head;
    if (job) {
        *head = job->next;
        if (!*head)
            *tail = NULL;
    }
    return job;
}

/* busy changed (lock held). */
static void publish_busy(struct drv_pool *p)
{
    if (p->busy_out)
        __atomic_store_n(p->busy_out, (uint64_t)p->busy, __ATOMIC_RELAXED);
}

/* Take `t` off the sleeping list (lock held). */
static void unsleep(struct drv_pool *p, struct app_thread *t)
{
    struct app_thread **at = &p->sleeping;
    while (*at != t)
        at = &(*at)->below;
    *at = t->below;
    t->below = NULL;
    t->asleep = false;
    p->nsleeping--;
}

/* The next job for `t`, sleeping until there is one; NULL: end. */
static struct drv_job *next_job(struct drv_pool *p, struct app_thread *t)
{
    for (;;) {
        if (p->quit && !p->drain)
            return NULL;
        struct drv_job *job = pop(&t->head, &t->tail);
        if (!job && (job = pop(&p->head, &p->tail)))
            p->queued--;
        if (job) {
            p->busy++;
            publish_busy(p);
            return job;
        }
        if (p->quit)
            return NULL;
        t->asleep = true;
        t->below = p->sleeping;
        p->sleeping = t;
        p->nsleeping++;
        while (t->asleep && !p->quit)
            pthread_cond_wait(&t->wake, &p->lock);
        if (t->asleep)
            unsleep(p, t);
    }
}

/* An app thread's life: take a job, run it, hand it back; until quit. */
static void thread_body(void *arg)
{
    struct app_thread *t = arg;
    struct drv_pool *p = t->pool;
    self = t;
    /* Forked workers start with every signal blocked and threads inherit
     * that; a fault must still reach faulthandler's handler here (a
     * blocked SIGSEGV kills the process without a word). The others stay
     * blocked: they are the loop thread's. */
    sigset_t faults;
    sigemptyset(&faults);
    sigaddset(&faults, SIGSEGV);
    sigaddset(&faults, SIGBUS);
    sigaddset(&faults, SIGFPE);
    sigaddset(&faults, SIGILL);
    pthread_sigmask(SIG_UNBLOCK, &faults, NULL);
    pthread_mutex_lock(&p->lock);
    struct drv_job *job;
    while ((job = next_job(p, t))) {
        drv_job_cb done = job->done;
        pthread_mutex_unlock(&p->lock);
        job->thread = t->index;
        job->run(job); /* may free the job when done is NULL */
        pthread_mutex_lock(&p->lock);
        p->busy--;
        publish_busy(p);
        if (done) {
            bool first = !p->finished;
            job->next = p->finished;
            p->finished = job;
            if (first)
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

/* Before the loop blocks: wake each sleeping thread with pinned jobs,
 * and a sleeping thread for each shared job that no awake idle thread
 * will take. */
static void on_kick(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    struct drv_pool *p = drv_container_of(w, struct drv_pool, kick);
    if (!p->submitted)
        return;
    p->submitted = false;
    size_t n = 0;
    pthread_mutex_lock(&p->lock);
    /* Awake and in no job: they take shared jobs before sleeping. */
    size_t idle = p->alive - p->nsleeping - p->busy;
    for (size_t i = 0; i < p->nthreads; i++) {
        struct app_thread *t = &p->threads[i];
        if (t->asleep && t->head) {
            unsleep(p, t);
            p->to_wake[n++] = t;
        }
    }
    for (size_t want = p->queued; want > idle && p->sleeping; want--) {
        struct app_thread *t = p->sleeping;
        unsleep(p, t);
        p->to_wake[n++] = t;
    }
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < n; i++)
        pthread_cond_signal(&p->to_wake[i]->wake);
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
    pthread_cond_init(&p->exited, NULL);
    p->threads = drv_xcalloc(nthreads, sizeof(*p->threads));
    p->to_wake = drv_xcalloc(nthreads, sizeof(*p->to_wake));
    p->nthreads = nthreads;
    for (size_t i = 0; i < nthreads; i++) {
        p->threads[i].pool = p;
        p->threads[i].index = (int)i;
        pthread_cond_init(&p->threads[i].wake, NULL);
    }
    p->loop = loop;
    ev_async_init(&p->wake, on_wake);
    ev_async_start(loop, &p->wake);
    ev_prepare_init(&p->kick, on_kick);
    ev_prepare_start(loop, &p->kick);
    for (size_t i = 0; i < nthreads; i++) {
        pthread_mutex_lock(&p->lock);
        p->alive++;
        pthread_mutex_unlock(&p->lock);
        if (app->ops->spawn(app, thread_body, &p->threads[i], i, err,
                            errlen) != 0) {
            pthread_mutex_lock(&p->lock);
            p->alive--;
            pthread_mutex_unlock(&p->lock);
            drv_pool_free(p, true);
            return NULL;
        }
    }
    return p;
}

void drv_pool_publish_busy(struct drv_pool *p, uint64_t *where)
{
    pthread_mutex_lock(&p->lock);
    p->busy_out = where;
    publish_busy(p);
    pthread_mutex_unlock(&p->lock);
}

void drv_pool_submit(struct drv_pool *p, struct drv_job *job)
{
    pthread_mutex_lock(&p->lock);
    if (job->thread >= 0 && (size_t)job->thread < p->nthreads) {
        struct app_thread *t = &p->threads[job->thread];
        push(&t->head, &t->tail, job);
    } else {
        push(&p->head, &p->tail, job);
        p->queued++;
    }
    pthread_mutex_unlock(&p->lock);
    p->submitted = true;
}

void drv_pool_free(struct drv_pool *p, bool wait)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->quit = true;
    p->drain = wait;
    for (size_t i = 0; i < p->nthreads; i++)
        pthread_cond_signal(&p->threads[i].wake);
    /* Idle threads end at once; busy ones after their job. */
    while (p->alive > (wait ? 0 : p->busy))
        pthread_cond_wait(&p->exited, &p->lock);
    bool all_gone = p->alive == 0;
    pthread_mutex_unlock(&p->lock);
    ev_async_stop(p->loop, &p->wake);
    ev_prepare_stop(p->loop, &p->kick);
    if (!all_gone)
        return; /* a thread stuck in the app still uses it */
    for (size_t i = 0; i < p->nthreads; i++)
        pthread_cond_destroy(&p->threads[i].wake);
    pthread_cond_destroy(&p->exited);
    pthread_mutex_destroy(&p->lock);
    free(p->to_wake);
    free(p->threads);
    free(p);
}
