/* sched/worker.c: the worker loop and the switch between tasks. Entry
 * points: weft__worker_loop (a worker thread's life), weft__schedule (a task
 * gives up its worker), weft__enqueue (a task becomes ready).
 *
 * The loop, in one function that reads top to bottom (weft__worker_loop):
 * find work (maintenance, local queues, injection queue, steal), run it,
 * or park in the ring's wait until a completion, a timer or a wake-up.
 *
 * Tasks switch straight to the next ready task without passing through the
 * loop's own context: the loop runs only when a worker has nothing local to
 * run, or for maintenance every WEFT_MAINTENANCE_INTERVAL decisions. The
 * context switched to finishes what the one that left asked for
 * (after_switch): requeue it, complete its park, or release its stack. Only
 * then is the old task off its stack, so only then may another worker run it.
 *
 * Must never: run a task whose stack another thread may still be using,
 * block outside weft__idle_park, or allocate memory on the switch path. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/io.h"
#include "runtime/context.h"
#include "runtime/runtime.h"
#include "runtime/topology.h"
#include "sched/sched.h"

#if defined(WEFT_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(WEFT_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

/* ThreadSanitizer keeps a shadow call stack per fiber. A task that
 * finishes leaves its fiber through task_entry and switch_to and never
 * returns through them; if they were instrumented, every task run on a
 * reused stack (and its TSan fiber) would leave frames behind until the
 * shadow stack overflowed. So those two are not instrumented. */
#if defined(WEFT_TSAN)
#define WEFT_NO_TSAN __attribute__((no_sanitize("thread")))
#else
#define WEFT_NO_TSAN
#endif

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

static __thread struct weft__worker *tls_worker
    __attribute__((tls_model("initial-exec")));

/* Not inlined, and opaque to the optimiser (the empty asm with a memory
 * clobber keeps gcc's and clang's interprocedural analysis from treating it
 * as pure and reusing one call's answer after a switch). */
__attribute__((noinline)) struct weft__worker *weft__worker_self(void)
{
    __asm__ volatile("" ::: "memory");
    return tls_worker;
}

void weft__worker_set_self(struct weft__worker *w)
{
    tls_worker = w;
}

static inline struct weft__task *task_of(struct weft__qlink *l)
{
    return (struct weft__task *)l; /* q is the first member */
}
_Static_assert(offsetof(struct weft__task, q) == 0, "q must come first");

/* ---- The switch ----------------------------------------------------------- */

#if defined(WEFT_ASAN)
/* The thread stack of each worker's loop, for ASan's bookkeeping. */
static __thread const void *sched_stack_bottom;
static __thread size_t sched_stack_size;
static __thread void *sched_fake_stack;
#endif

/* Switch from the running context (a task, or the loop if from_task is NULL)
 * to next (a task, or the loop if NULL). Returns, in the resumed context,
 * the worker it now runs on. dying: the running task will never resume. */
WEFT_NO_TSAN static struct weft__worker *switch_to(struct weft__worker *w,
                                                   struct weft__task *from_task,
                                                   struct weft__task *next,
                                                   bool dying)
{
    void **save = from_task ? &from_task->sp : &w->sched_sp;
    void *target = next ? next->sp : w->sched_sp;
#if defined(WEFT_ASAN)
    void **my_fake = from_task ? &from_task->asan_fake_stack : &sched_fake_stack;
    const void *bottom;
    size_t size;
    if (next) {
        bottom = weft__stack_lo(w->rt, next->stack);
        size = weft__stack_size(w->rt);
    } else {
        bottom = sched_stack_bottom;
        size = sched_stack_size;
    }
    __sanitizer_start_switch_fiber(dying ? NULL : my_fake, bottom, size);
#endif
#if defined(WEFT_TSAN)
    __tsan_switch_to_fiber(next ? weft__stack_tsan_fiber(next->stack)
                                : w->tsan_sched_fiber,
                           0);
#endif
    (void)dying;
    atomic_store_explicit(&w->running, next, memory_order_relaxed);
    atomic_store_explicit(
        &w->switches,
        atomic_load_explicit(&w->switches, memory_order_relaxed) + 1,
        memory_order_relaxed);
    w = weft__switch_inline(save, target, w);
#if defined(WEFT_ASAN)
    /* my_fake lives in this context's own frame or task: still valid. The
     * loop's context is pinned to its thread, so its thread-locals are too. */
    __sanitizer_finish_switch_fiber(from_task ? *my_fake : sched_fake_stack,
                                    NULL, NULL);
#endif
    return w;
}

/* Requeue a task that just switched away and is ready again, on w. */
/* Put t back in w's queues. enqueue's notify is for work that just
 * appeared; a task that yields was already running here, so the queue
 * gains nothing and nobody needs waking (maintenance re-checks anyway). */
static void requeue(struct weft__worker *w, struct weft__task *t,
                    bool notify)
{
    if (notify || (t->flags & TFLAG_PINNED) || w->shuffle) {
        weft__enqueue(w->rt, w, t);
        return;
    }
    struct weft__qlink *spill[WEFT_RUNQ_SPILL];
    size_t n = weft__runq_push_array(&w->runq, &t->q, spill);
    if (n)
        weft__inject_push_array(&w->rt->sched->inject, spill, n);
}

/* Finish what the context that switched to us asked for. Runs first thing
 * in every resumed context, on the worker w it resumed on. */
static void after_switch(struct weft__worker *w)
{
    struct weft__task *prev = w->switch_prev;
    if (w->current)
        w->current->worker = w;
    if (!prev)
        return;
    w->switch_prev = NULL;
    switch (w->switch_reason) {
    case SWITCH_YIELD:
        requeue(w, prev, false);
        break;
    case SWITCH_PARK: {
        uint32_t expected = PARK_PARKING;
        /* acq_rel: a waker that later sees PARKED must see the task's
         * saved context (written by the switch, before this CAS). */
        if (!atomic_compare_exchange_strong_explicit(
                &prev->park, &expected, PARK_PARKED, memory_order_acq_rel,
                memory_order_acquire)) {
            /* NOTIFIED: its wait ended while it was still switching out;
             * the waker left the requeue to us. */
            atomic_store_explicit(&prev->park, PARK_RUNNING,
                                  memory_order_relaxed);
            requeue(w, prev, true);
        }
        break;
    }
    case SWITCH_FINISH: {
        struct weft__runtime *rt = w->rt;
        if (!weft__stack_canary_ok(rt, prev->stack))
            weft__panic("stack overflow in task %u.%u (%s): its %zu-byte "
                        "stack's canary was overwritten",
                        prev->index + 1,
                        (unsigned)(atomic_load(&prev->state) >> 32),
                        prev->name ? prev->name : "unnamed",
                        weft__stack_size(rt));
        weft__stack_put(rt, w, prev->stack);
        prev->stack = NULL;
        atomic_store_explicit(
            &w->finished,
            atomic_load_explicit(&w->finished, memory_order_relaxed) + 1,
            memory_order_release);
        weft__task_finished(rt, w, prev);
        break;
    }
    case SWITCH_NONE:
        break;
    }
}

static struct weft__task *next_for(struct weft__worker *w, bool *maintenance);

/* The first code of every task, on its own stack. It never returns: when
 * the task's function does, it switches away for good (after_switch in the
 * next context releases the stack). */
WEFT_NO_TSAN static void task_entry(void *transfer)
{
    struct weft__worker *w = transfer;
#if defined(WEFT_ASAN)
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    after_switch(w);
    struct weft__task *self = w->current;
    self->result = self->fn(self->arg);
    /* The task may have moved: ask again which worker runs it. */
    w = weft__worker_self();
    bool maintenance;
    struct weft__task *next = next_for(w, &maintenance);
    w->switch_prev = self;
    w->switch_reason = SWITCH_FINISH;
    w->current = next;
    if (next)
        next->worker = w;
    switch_to(w, self, next, true);
    weft__panic("a finished task was resumed");
}

/* Give a task that never ran its stack and first frame. False if no stack
 * could be had: the task then finishes with -ENOMEM without running. */
static bool start_task(struct weft__worker *w, struct weft__task *t)
{
    void *top = weft__stack_get(w->rt, w);
    if (unlikely(!top)) {
        static _Atomic bool warned;
        if (!atomic_exchange(&warned, true))
            weft__warn("out of memory for fiber stacks: tasks that cannot "
                       "get one finish with -ENOMEM without running");
        t->result = -ENOMEM;
        atomic_store_explicit(
            &w->finished,
            atomic_load_explicit(&w->finished, memory_order_relaxed) + 1,
            memory_order_release);
        weft__task_finished(w->rt, w, t);
        return false;
    }
    t->stack = top;
    t->sp = weft__context_make(top, task_entry);
    return true;
}

/* ---- Choosing the next task ----------------------------------------------- */

/* The next local task: pinned tasks and the run queue take turns. */
static struct weft__task *local_next(struct weft__worker *w)
{
    /* runnext first, but not every time: a pair passing messages through
     * it must not starve the run queue. */
    if (atomic_load_explicit(&w->runnext, memory_order_relaxed) &&
        (w->tick & 15) != 0) {
        /* acquire: pairs with the release in enqueue_woken and steal. */
        struct weft__task *t =
            atomic_exchange_explicit(&w->runnext, NULL, memory_order_acquire);
        if (t)
            return t;
    }
    if (w->pinned.head && (w->tick & 1))
        return task_of(weft__qlist_pop(&w->pinned));
    struct weft__qlink *l =
        w->solo ? weft__runq_pop_unshared(&w->runq) : weft__runq_pop(&w->runq);
    if (l)
        return task_of(l);
    if (w->pinned.head)
        return task_of(weft__qlist_pop(&w->pinned));
    if (atomic_load_explicit(&w->runnext, memory_order_relaxed))
        return atomic_exchange_explicit(&w->runnext, NULL,
                                        memory_order_acquire);
    return NULL;
}

/* The task to switch to from a task that is leaving its worker, or NULL
 * for the loop (nothing local, or maintenance due: *maintenance). */
static struct weft__task *next_for(struct weft__worker *w, bool *maintenance)
{
    w->tick++;
    *maintenance = w->tick % WEFT_MAINTENANCE_INTERVAL == 0 ||
                   (w->shuffle && weft__rand(w) % 8 == 0);
    if (unlikely(*maintenance))
        return NULL;
    struct weft__task *next = local_next(w);
    while (next && !next->sp && !start_task(w, next))
        next = local_next(w);
    return next;
}

struct weft__worker *weft__schedule(struct weft__worker *w,
                                    enum weft__switch_reason reason)
{
    struct weft__task *self = w->current;
    bool maintenance;
    struct weft__task *next = next_for(w, &maintenance);
    /* A yield with nothing else ready here has nothing to yield to. It
     * still counts as a switch for the watchdog (runtime/watchdog.c): the
     * fiber offered its worker up. */
    if (!next && !maintenance && reason == SWITCH_YIELD) {
        atomic_store_explicit(
            &w->switches,
            atomic_load_explicit(&w->switches, memory_order_relaxed) + 1,
            memory_order_relaxed);
        return w;
    }
    w->switch_prev = self;
    w->switch_reason = reason;
    w->current = next;
    if (next)
        next->worker = w;
    w = switch_to(w, self, next, false);
    after_switch(w);
    return w;
}

/* ---- Making tasks ready ---------------------------------------------------- */

void weft__enqueue(struct weft__runtime *rt, struct weft__worker *w,
                   struct weft__task *t)
{
    if (t->flags & TFLAG_PINNED) {
        struct weft__worker *home = rt->workers[t->home];
        if (home == w) {
            weft__qlist_push(&w->pinned, &t->q);
        } else {
            weft__mpsc_push(&home->inbox, &t->q);
            weft__idle_unpark(rt, home);
        }
        return;
    }
    if (w && !(w->shuffle && weft__rand(w) % 4 == 0)) {
        struct weft__qlink *spill[WEFT_RUNQ_SPILL];
        size_t n = weft__runq_push_array(&w->runq, &t->q, spill);
        if (n)
            weft__inject_push_array(&rt->sched->inject, spill, n);
    } else {
        weft__inject_push(&rt->sched->inject, &t->q);
    }
    /* The only worker needs no wake-up for work in its own queue: it is
     * the one running. Anything else may be a parked worker's to run. */
    if (!w || rt->nworkers > 1)
        weft__idle_notify(rt);
}

void weft__enqueue_woken(struct weft__runtime *rt, struct weft__worker *w,
                         struct weft__task *t)
{
    if (!w || !w->current || (t->flags & TFLAG_PINNED) || w->shuffle ||
        w->solo) {
        weft__enqueue(rt, w, t);
        return;
    }
    /* release: publishes the task to whoever takes the slot (the owner's or
     * a thief's acquire exchange). */
    struct weft__task *old =
        atomic_exchange_explicit(&w->runnext, t, memory_order_acq_rel);
    if (old) {
        struct weft__qlink *spill[WEFT_RUNQ_SPILL];
        size_t n = weft__runq_push_array(&w->runq, &old->q, spill);
        if (n)
            weft__inject_push_array(&rt->sched->inject, spill, n);
    }
    weft__idle_notify(rt);
}

/* ---- Timers --------------------------------------------------------------- */

void weft__timer_arm(struct weft__worker *w, struct weft__task *t,
                     uint32_t seq, uint64_t deadline)
{
    pthread_mutex_lock(&w->timer_lock);
    t->timer_seq = seq;
    t->timer_worker = w;
    weft__wheel_add(&w->wheel, &t->timer, deadline);
    pthread_mutex_unlock(&w->timer_lock);
}

void weft__timer_disarm(struct weft__task *t)
{
    struct weft__worker *tw = t->timer_worker;
    if (!tw)
        return;
    pthread_mutex_lock(&tw->timer_lock);
    if (t->timer.armed)
        weft__wheel_remove(&tw->wheel, &t->timer);
    pthread_mutex_unlock(&tw->timer_lock);
    t->timer_worker = NULL;
}

static void fire_timer(struct weft__timer *timer, void *ctx)
{
    (void)ctx;
    struct weft__task *t =
        (struct weft__task *)((char *)timer - offsetof(struct weft__task, timer));
    weft__waiter_wake(&t->waiter, t->timer_seq, -ETIMEDOUT);
}

static void run_timers(struct weft__worker *w, uint64_t now)
{
    pthread_mutex_lock(&w->timer_lock);
    if (weft__wheel_count(&w->wheel) && weft__wheel_next_expiry(&w->wheel) <= now)
        weft__wheel_expire(&w->wheel, now, fire_timer, NULL);
    pthread_mutex_unlock(&w->timer_lock);
}

static uint64_t next_timer(struct weft__worker *w)
{
    pthread_mutex_lock(&w->timer_lock);
    uint64_t t = weft__wheel_next_expiry(&w->wheel);
    pthread_mutex_unlock(&w->timer_lock);
    return t;
}

/* ---- Messages ------------------------------------------------------------- */

void weft__worker_post(struct weft__runtime *rt, struct weft__worker *w,
                       struct weft__msg *m)
{
    /* The push (a release CAS) comes before the unpark's exchange: a worker
     * that the unpark finds running will see NOTIFIED when it next parks
     * (idle.c, P3) and loop through maintenance instead of sleeping. */
    weft__mpsc_push(&w->msgs, &m->q);
    weft__idle_unpark(rt, w);
}

static void run_messages(struct weft__worker *w)
{
    struct weft__qlist l;
    weft__qlist_init(&l);
    weft__mpsc_take_all(&w->msgs, &l);
    struct weft__qlink *q;
    while ((q = weft__qlist_pop(&l))) {
        struct weft__msg *m = (struct weft__msg *)q;
        m->run(w, m);
    }
}
_Static_assert(offsetof(struct weft__msg, q) == 0, "q must come first");

/* ---- The loop's helpers --------------------------------------------------- */

/* Timers, the inbox, messages and the ring: what must not starve behind a
 * busy local queue. */
static void maintenance(struct weft__worker *w)
{
    if (!weft__mpsc_empty(&w->inbox))
        weft__mpsc_take_all(&w->inbox, &w->pinned);
    if (!weft__mpsc_empty(&w->msgs))
        run_messages(w);
    run_timers(w, weft_now_ns());
    weft__ring_poll(w);
    /* Local pushes wake idle workers without a full fence (idle.c, step
     * N1): if one was missed, catch it here. */
    if (weft__runq_len(&w->runq) > 1)
        weft__idle_notify(w->rt);
}

/* Take a batch from the injection queue: run one, queue the rest locally. */
static struct weft__task *take_injected(struct weft__worker *w)
{
    struct weft__runtime *rt = w->rt;
    struct weft__inject *q = &rt->sched->inject;
    size_t len = weft__inject_len(q);
    if (len == 0)
        return NULL;
    size_t n = len / rt->nworkers + 1;
    if (n > WEFT_RUNQ_CAPACITY / 2)
        n = WEFT_RUNQ_CAPACITY / 2;
    struct weft__qlink *batch[WEFT_RUNQ_CAPACITY / 2];
    n = weft__inject_pop_array(q, batch, n);
    if (n == 0)
        return NULL;
    for (size_t i = 1; i < n; i++) {
        struct weft__qlink *spill[WEFT_RUNQ_SPILL];
        size_t moved = weft__runq_push_array(&w->runq, batch[i], spill);
        if (moved)
            weft__inject_push_array(q, spill, moved);
    }
    return task_of(batch[0]);
}

/* Steal from the other workers, nearest first; within a distance class,
 * start at a random one so thieves spread out. */
/* Take another worker's runnext: only after spinning a while, so that
 * its owner, who probably is about to block, gets to run it first. */
static struct weft__task *steal_runnext(struct weft__worker *w)
{
    struct weft__runtime *rt = w->rt;
    for (unsigned i = 0; i < rt->nworkers - 1; i++) {
        struct weft__worker *v = rt->workers[w->victims[i]];
        if (atomic_load_explicit(&v->runnext, memory_order_relaxed)) {
            struct weft__task *t = atomic_exchange_explicit(
                &v->runnext, NULL, memory_order_acquire);
            if (t)
                return t;
        }
    }
    return NULL;
}

static struct weft__task *steal(struct weft__worker *w)
{
    struct weft__runtime *rt = w->rt;
    unsigned start = 0;
    for (unsigned c = 0; c < WEFT_DIST_CLASSES; c++) {
        unsigned end = w->victim_class_end[c];
        unsigned n = end - start;
        if (n) {
            unsigned r = (unsigned)(weft__rand(w) % n);
            for (unsigned i = 0; i < n; i++) {
                unsigned v = w->victims[start + (r + i) % n];
                struct weft__qlink *l =
                    weft__runq_steal(&w->runq, &rt->workers[v]->runq);
                if (l)
                    return task_of(l);
            }
        }
        start = end;
    }
    return NULL;
}

/* How long an idle searcher keeps looking before it parks: about 20-40 us
 * (a pause is ~40 cycles on recent x86 parts, a steal pass ~100 ns). */
#define SPIN_ROUNDS 64u
#define SPIN_PAUSES 16u

static struct weft__task *find_work(struct weft__worker *w)
{
    struct weft__runtime *rt = w->rt;
    struct weft__task *t = NULL;

    maintenance(w);
    if (w->tick % WEFT_MAINTENANCE_INTERVAL == 0)
        t = take_injected(w);
    if (!t)
        t = local_next(w);
    if (!t)
        t = take_injected(w);
    if (!t && rt->nworkers > 1 && weft__idle_begin_search(rt, w)) {
        t = steal(w);
        if (!t)
            t = take_injected(w);
        /* Spin a little before parking (Go and Tokio do too): work often
         * appears within microseconds (a message answered, a task woken),
         * and catching it here spares its maker the syscall that wakes a
         * parked worker. Only searchers spin: at most half the workers. */
        for (unsigned i = 0; !t && i < SPIN_ROUNDS; i++) {
            for (unsigned k = 0; k < SPIN_PAUSES; k++)
                __builtin_ia32_pause();
            if (!weft__mpsc_empty(&w->inbox) ||
                atomic_load_explicit(&rt->exiting, memory_order_relaxed))
                break;
            t = steal(w);
            if (!t)
                t = take_injected(w);
            if (!t && i >= SPIN_ROUNDS / 2)
                t = steal_runnext(w);
        }
        if (!t)
            t = steal_runnext(w);
    }
    /* A worker woken to search may find work before it steals; either way
     * it stops counting as a searcher now, or notifies would keep seeing a
     * searcher that is busy running tasks and wake nobody. */
    if (w->searching && t)
        weft__idle_end_search(rt, w, true);
    if (t || atomic_load_explicit(&rt->exiting, memory_order_acquire))
        return t;
    weft__idle_park(rt, w, next_timer(w));
    return NULL;
}

static void run(struct weft__worker *w, struct weft__task *t)
{
    if (!t->sp && !start_task(w, t))
        return;
    w->tick++;
    w->current = t;
    t->worker = w;
    w->switch_prev = NULL;
    w = switch_to(w, NULL, t, false);
    after_switch(w);
}

void weft__worker_loop(struct weft__worker *w)
{
#if defined(WEFT_ASAN)
    pthread_attr_t attr;
    void *addr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &addr, &sched_stack_size);
        sched_stack_bottom = addr;
        pthread_attr_destroy(&attr);
    }
#endif
#if defined(WEFT_TSAN)
    w->tsan_sched_fiber = __tsan_get_current_fiber();
#endif
    struct weft__runtime *rt = w->rt;
    while (!atomic_load_explicit(&rt->exiting, memory_order_acquire)) {
        struct weft__task *t = find_work(w);
        if (t)
            run(w, t);
    }
}

/* ---- Set-up --------------------------------------------------------------- */

int weft__worker_init(struct weft__runtime *rt, struct weft__worker *w,
                      unsigned index)
{
    weft__runq_init(&w->runq);
    weft__mpsc_init(&w->inbox);
    weft__mpsc_init(&w->msgs);
    atomic_init(&w->park_state, 0);
    pthread_mutex_init(&w->timer_lock, NULL);
    weft__wheel_init(&w->wheel, weft_now_ns());
    atomic_init(&w->spawned, 0);
    atomic_init(&w->finished, 0);
    w->rt = rt;
    w->index = index;
    weft__qlist_init(&w->pinned);
    weft__qlist_init(&w->task_cache);
    w->shuffle = rt->cfg.shuffle_seed != 0;
    w->solo = rt->nworkers == 1;
    atomic_init(&w->runnext, NULL);
    atomic_init(&w->switches, 0);
    atomic_init(&w->running, NULL);
    w->rng = (rt->cfg.shuffle_seed ? rt->cfg.shuffle_seed : 0x9E3779B97F4A7C15ull) ^
             ((uint64_t)(index + 1) * 0xBF58476D1CE4E5B9ull);
    if (!w->rng)
        w->rng = 1;
    unsigned n = rt->nworkers;
    w->victims = calloc(n > 1 ? n - 1 : 1, sizeof *w->victims);
    if (!w->victims)
        return -ENOMEM;
    weft__topology_victims(rt->topo, n, index, w->victims, w->victim_class_end);
    return 0;
}

void weft__worker_destroy(struct weft__runtime *rt, struct weft__worker *w)
{
    (void)rt;
    pthread_mutex_destroy(&w->timer_lock);
    free(w->victims);
}

WEFT_API uint64_t weft_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
