/* runtime/blocking.c: the blocking pool: functions that would block a
 * worker run on a bounded set of plain threads while the calling fiber
 * waits. Entry points: weft_run_blocking (any thread), weft__blocking_start
 * and weft__blocking_stop (the runtime's life).
 *
 * A call is a node on the waiting fiber's stack. While queued it is in the
 * pool's FIFO and in a bucket chosen by its task, where a cancel finds it.
 * Its state goes QUEUED -> RUNNING -> DONE, or QUEUED -> REMOVED, always
 * under the pool's lock. The protocol:
 *  1. Submit (fiber): under the lock, begin a WAIT_CUSTOM wait (cancel hook:
 *     step 4); if a cancel is already pending, end it at once (REMOVED,
 *     -ECANCELED) and queue nothing. Otherwise queue the node and hand it
 *     to an idle thread or reserve a new one (at most max_threads; with
 *     neither, a busy thread takes it when free). Unlocked: start the
 *     reserved thread, arm the deadline timer of the task's deadline
 *     scope, block.
 *  2. Run (pool thread): under the lock take the head, mark it RUNNING,
 *     copy fn and arg, unlock, run. The fiber cannot return while its node
 *     is RUNNING (step 5), so the node stays valid.
 *  3. Finish (pool thread): under the lock store the result, mark DONE and
 *     copy (waiter, seq); wake them after unlocking. The waiter is the
 *     task's, which outlives the node; if the fiber's wait already ended
 *     (its deadline), the seq is stale and the wake fails harmlessly.
 *  4. Cancel (the hook, on the cancelling thread): under the lock look for
 *     the task's node with the cancelled seq in its bucket. Found, it is
 *     QUEUED: unlink it, mark REMOVED, and after unlocking wake (waiter, seq)
 *     with -ECANCELED. Not found (running, done, or a stale seq): do
 *     nothing, and the request stays pending for the task's next wait. The
 *     hook touches only the pool and the nodes linked in it.
 *  5. Resume (fiber): its wait ended (step 3, step 4, its deadline timer, or
 *     a thread that could not start). Under the lock: DONE: return the
 *     result. REMOVED: return the wait's outcome. QUEUED: the deadline
 *     passed: unlink, -ETIMEDOUT. RUNNING: the deadline passed while it ran:
 *     begin an uncancellable wait, store its seq in the node for step 3,
 *     block, and look again.
 *
 * Threads start when a call finds none idle, up to max_threads. An idle
 * thread waits on its own condition variable in a LIFO stack: the most
 * recently idle one takes the next call, so the others age out and exit
 * after weft__blocking_idle_ns. An exiting thread joins those that exited
 * before it and leaves itself to be joined by the next one or by stop: a
 * worker never joins a thread.
 *
 * Stop runs once no task is left. Every call has a fiber waiting for it,
 * so none can be queued or running then: stop wakes the idle threads and
 * joins them all.
 *
 * Must never: block a worker beyond a short critical section (never across
 * a switch), run a removed call or any call twice, or touch a node after
 * the fiber that owns it may have returned. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/runtime.h"
#include "sched/sched.h"

#define BUCKETS 256u /* a power of two */

enum { CALL_QUEUED, CALL_RUNNING, CALL_DONE, CALL_REMOVED };

struct call {
    /* The FIFO, and the bucket chain (pprev: O(1) unlink). Under the lock,
     * and only while QUEUED. */
    struct call *next, *prev;
    struct call *bucket_next, **bucket_pprev;
    weft_fn fn;
    void *arg;
    intptr_t result;         /* set by step 3 */
    struct weft__task *task; /* the waiting task */
    uint32_t seq;            /* the wait step 3 ends */
    int state;               /* CALL_*, under the lock */
};

struct thread {
    pthread_t id;
    pthread_cond_t cond; /* signalled when handed a call, or at stop */
    bool woken;          /* taken off the idle stack by a submitter or stop */
    struct thread *next; /* the idle stack, or the list of exited threads */
    struct weft__blocking *pool;
};

struct weft__blocking {
    pthread_mutex_t lock;
    /* Everything below is guarded by lock. */
    struct call *head, *tail;
    struct call *buckets[BUCKETS];
    size_t queued;
    unsigned running;
    unsigned max_threads;
    unsigned nthreads; /* alive, or reserved by a submitter */
    unsigned nidle;
    struct thread *idle;   /* LIFO */
    struct thread *exited; /* exited, to be joined */
    pthread_cond_t all_exited;
    bool stopping;
    bool warned; /* could not start a thread: said so once */
};

const char weft__blocking_what[] = "blocking call";
uint64_t weft__blocking_idle_ns = (uint64_t)WEFT_BLOCKING_IDLE_MS * 1000000u;
_Atomic unsigned weft__blocking_fail_starts;

static struct call **bucket(struct weft__blocking *p, struct weft__task *t)
{
    return &p->buckets[t->index & (BUCKETS - 1)];
}

static void push(struct weft__blocking *p, struct call *c)
{
    c->next = NULL;
    c->prev = p->tail;
    if (p->tail)
        p->tail->next = c;
    else
        p->head = c;
    p->tail = c;
    struct call **b = bucket(p, c->task);
    c->bucket_next = *b;
    if (*b)
        (*b)->bucket_pprev = &c->bucket_next;
    c->bucket_pprev = b;
    *b = c;
    p->queued++;
}

static void unlink_call(struct weft__blocking *p, struct call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        p->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        p->tail = c->prev;
    *c->bucket_pprev = c->bucket_next;
    if (c->bucket_next)
        c->bucket_next->bucket_pprev = c->bucket_pprev;
    p->queued--;
}

static void join_exited(struct thread *th)
{
    while (th) {
        struct thread *next = th->next;
        pthread_join(th->id, NULL);
        pthread_cond_destroy(&th->cond);
        free(th);
        th = next;
    }
}

/* Idle until handed a call. False if none came for the idle time and none
 * is queued: the thread then exits. Lock held. */
static bool idle_wait(struct weft__blocking *p, struct thread *self)
{
    self->woken = false;
    self->next = p->idle;
    p->idle = self;
    p->nidle++;
    uint64_t until = weft_now_ns() + weft__blocking_idle_ns;
    struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u),
                          .tv_nsec = (long)(until % 1000000000u)};
    while (!self->woken) {
        if (pthread_cond_timedwait(&self->cond, &p->lock, &ts) == ETIMEDOUT &&
            !self->woken) {
            struct thread **pp = &p->idle;
            while (*pp != self)
                pp = &(*pp)->next;
            *pp = self->next;
            p->nidle--;
            return p->head != NULL;
        }
    }
    return true;
}

static void *thread_main(void *arg)
{
    struct thread *self = arg;
    struct weft__blocking *p = self->pool;
    WEFT_ASSERT(!weft__worker_self());
    pthread_mutex_lock(&p->lock);
    for (;;) {
        struct call *c = p->head;
        if (c) {
            /* Step 2 */
            unlink_call(p, c);
            c->state = CALL_RUNNING;
            p->running++;
            weft_fn fn = c->fn;
            void *fn_arg = c->arg;
            pthread_mutex_unlock(&p->lock);
            intptr_t result = fn(fn_arg);
            /* Step 3 */
            pthread_mutex_lock(&p->lock);
            p->running--;
            c->result = result;
            c->state = CALL_DONE;
            struct weft__waiter *wt = &c->task->waiter;
            uint32_t seq = c->seq;
            pthread_mutex_unlock(&p->lock);
            weft__waiter_wake(wt, seq, 0);
            pthread_mutex_lock(&p->lock);
            continue;
        }
        if (p->stopping || !idle_wait(p, self))
            break;
    }
    p->nthreads--;
    struct thread *before = p->exited;
    self->next = NULL;
    p->exited = self;
    if (p->nthreads == 0)
        pthread_cond_broadcast(&p->all_exited);
    pthread_mutex_unlock(&p->lock);
    join_exited(before);
    return NULL;
}

static int start_thread(struct weft__blocking *p)
{
    unsigned fail =
        atomic_load_explicit(&weft__blocking_fail_starts, memory_order_relaxed);
    while (fail && !atomic_compare_exchange_weak_explicit(
                       &weft__blocking_fail_starts, &fail, fail - 1,
                       memory_order_relaxed, memory_order_relaxed))
        ;
    if (fail)
        return -EAGAIN; /* a test asked for it */
    struct thread *th = calloc(1, sizeof *th);
    if (!th)
        return -ENOMEM;
    th->pool = p;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&th->cond, &ca);
    pthread_condattr_destroy(&ca);
    int err = pthread_create(&th->id, NULL, thread_main, th);
    if (err) {
        pthread_cond_destroy(&th->cond);
        free(th);
        return -err;
    }
    pthread_setname_np(th->id, "weft-blocking");
    return 0;
}

/* Step 4. Runs on the cancelling thread, maybe long after the wait ended. */
static void cancel_hook(struct weft__task *t, uint32_t seq)
{
    struct weft__runtime *rt = weft__runtime();
    struct weft__blocking *p = rt ? rt->blocking : NULL;
    if (!p)
        return;
    bool removed = false;
    pthread_mutex_lock(&p->lock);
    for (struct call *c = *bucket(p, t); c; c = c->bucket_next) {
        if (c->task == t && c->seq == seq) {
            unlink_call(p, c);
            c->state = CALL_REMOVED;
            removed = true;
            break;
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (removed)
        weft__waiter_wake(&t->waiter, seq, -ECANCELED);
}

WEFT_API intptr_t weft_run_blocking(intptr_t (*fn)(void *), void *arg)
{
    if (!fn) {
        weft__misuse("weft_run_blocking", "fn is NULL");
        return -EINVAL;
    }
    struct weft__worker *w = weft__worker_self();
    struct weft__task *t = weft__task_self(w);
    if (!t)
        return fn(arg); /* a plain thread may block: that is all we would do */
    struct weft__blocking *p = w->rt->blocking;
    uint64_t deadline = weft__wait_deadline(t, UINT64_MAX);
    if (deadline <= weft_now_ns())
        return -ETIMEDOUT;

    /* Step 1 */
    struct weft__waiter *wt = &t->waiter;
    struct call c = {.fn = fn, .arg = arg, .task = t, .state = CALL_QUEUED};
    bool start = false;
    pthread_mutex_lock(&p->lock);
    WEFT_ASSERT(!p->stopping);
    c.seq = weft__waiter_begin_custom(wt, weft__blocking_what, cancel_hook, p);
    /* seq_cst: a cancel requested before the call was made must stop it
     * before a thread can take it (the hook would find it running). With
     * begin's seq_cst store this is the Dekker pair of sched/wait.c: a
     * later cancel sees the wait and calls the hook, which finds the node. */
    if (atomic_load_explicit(&t->cancel, memory_order_seq_cst)) {
        c.state = CALL_REMOVED;
        weft__waiter_wake(wt, c.seq, -ECANCELED);
    } else {
        push(p, &c);
        if (p->idle) {
            struct thread *th = p->idle;
            p->idle = th->next;
            p->nidle--;
            th->woken = true;
            pthread_cond_signal(&th->cond);
        } else if (p->nthreads < p->max_threads) {
            p->nthreads++;
            start = true;
        }
    }
    pthread_mutex_unlock(&p->lock);

    if (start) {
        int err = start_thread(p);
        if (err) {
            bool warn = false;
            pthread_mutex_lock(&p->lock);
            p->nthreads--;
            /* With no thread at all, nobody will ever take the queued
             * calls (ours, and those queued meanwhile counting on the
             * thread we reserved): fail them all. Their fibers need the
             * lock to return, so their nodes stay valid while we wake. */
            if (p->nthreads == 0) {
                while (p->head) {
                    struct call *q = p->head;
                    unlink_call(p, q);
                    q->state = CALL_REMOVED;
                    weft__waiter_wake(&q->task->waiter, q->seq, -EAGAIN);
                }
            }
            if (!p->warned)
                warn = p->warned = true;
            pthread_mutex_unlock(&p->lock);
            if (warn)
                weft__warn("the blocking pool could not start a thread (%s); "
                           "calls wait for the threads it has, or fail with "
                           "-EAGAIN when it has none",
                           strerror(-err));
        }
    }
    bool timer = false;
    if (deadline != UINT64_MAX) {
        weft__timer_arm(w, t, c.seq, deadline);
        timer = true;
    }
    int32_t r = weft__waiter_block(&w, wt, c.seq, UINT64_MAX);
    if (timer)
        weft__timer_disarm(t);

    /* Step 5 */
    pthread_mutex_lock(&p->lock);
    for (;;) {
        switch (c.state) {
        case CALL_DONE:
            pthread_mutex_unlock(&p->lock);
            return c.result;
        case CALL_REMOVED:
            pthread_mutex_unlock(&p->lock);
            return r;
        case CALL_QUEUED:
            WEFT_ASSERT(r == -ETIMEDOUT);
            unlink_call(p, &c);
            pthread_mutex_unlock(&p->lock);
            return r;
        default: /* CALL_RUNNING */
            WEFT_ASSERT(r == -ETIMEDOUT);
            c.seq =
                weft__waiter_begin(wt, WAIT_UNCANCELLABLE, weft__blocking_what);
            pthread_mutex_unlock(&p->lock);
            weft__waiter_block(&w, wt, c.seq, UINT64_MAX);
            pthread_mutex_lock(&p->lock);
            break;
        }
    }
}

int weft__blocking_start(struct weft__runtime *rt)
{
    unsigned max = rt->cfg.blocking_threads;
    if (max == 0)
        max = WEFT_BLOCKING_THREADS_DEFAULT;
    if (max > WEFT_BLOCKING_THREADS_MAX) {
        weft__warn("invalid configuration: blocking_threads %u is out of "
                   "range (1..%u)",
                   max, WEFT_BLOCKING_THREADS_MAX);
        return -EINVAL;
    }
    rt->cfg.blocking_threads = max; /* the resolved configuration */
    struct weft__blocking *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->all_exited, NULL);
    p->max_threads = max;
    rt->blocking = p;
    return 0;
}

void weft__blocking_stop(struct weft__runtime *rt)
{
    struct weft__blocking *p = rt->blocking;
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    WEFT_ASSERT(!p->head && p->running == 0);
    p->stopping = true;
    while (p->idle) {
        struct thread *th = p->idle;
        p->idle = th->next;
        p->nidle--;
        th->woken = true;
        pthread_cond_signal(&th->cond);
    }
    while (p->nthreads)
        pthread_cond_wait(&p->all_exited, &p->lock);
    struct thread *exited = p->exited;
    p->exited = NULL;
    pthread_mutex_unlock(&p->lock);
    join_exited(exited);
    pthread_cond_destroy(&p->all_exited);
    pthread_mutex_destroy(&p->lock);
    free(p);
    rt->blocking = NULL;
}

void weft__blocking_warn_running(struct weft__runtime *rt)
{
    struct weft__blocking *p = rt->blocking;
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    unsigned running = p->running;
    pthread_mutex_unlock(&p->lock);
    if (running)
        weft__warn("%u of them wait for blocking calls that are still "
                   "running: a blocking call cannot be interrupted, so stop "
                   "waits for it to return",
                   running);
}

bool weft__blocking_queued(struct weft__runtime *rt, struct weft__task *t)
{
    struct weft__blocking *p = rt->blocking;
    if (!p)
        return false;
    bool found = false;
    pthread_mutex_lock(&p->lock);
    for (struct call *c = *bucket(p, t); c && !found; c = c->bucket_next)
        found = c->task == t;
    pthread_mutex_unlock(&p->lock);
    return found;
}

void weft__blocking_stats(struct weft__runtime *rt,
                          struct weft__blocking_stats *out)
{
    memset(out, 0, sizeof *out);
    struct weft__blocking *p = rt->blocking;
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    out->max_threads = p->max_threads;
    out->threads = p->nthreads;
    out->idle = p->nidle;
    out->running = p->running;
    out->queued = p->queued;
    pthread_mutex_unlock(&p->lock);
}
