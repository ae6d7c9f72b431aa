/* sched/sched.h: the contract of sched/.
 *
 * sched/ owns the order in which tasks run: each worker's loop (run, poll,
 * steal, park) and its queues, the injection queue, the idle set that bounds
 * how many workers search for work, the timers, the wait protocol that every
 * blocking call is built on (join, sleep, and the primitives of later
 * modules), and the parallel loops.
 *
 * It may call: runtime/ (tasks, stacks, the context switch) and io/ (polling,
 * parking in and waking each worker's ring).
 * It must never: block a worker thread except in the ring's wait (a parked
 * worker), allocate on a task's switch path, or touch another worker's run
 * queue except through steal, its inbox, or its timer lock. */
#ifndef WEFT_SCHED_SCHED_H
#define WEFT_SCHED_SCHED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/runtime.h"
#include "sched/inject.h"
#include "sched/qlink.h"
#include "sched/runq.h"
#include "sched/timer_wheel.h"

struct weft__ring;

/* Why a task switched away (weft__worker.switch_reason). The context that
 * is switched to finishes the job (weft__after_switch), once the task is
 * off its stack: only then may another worker run it or its stack be
 * reused. */
enum weft__switch_reason {
    SWITCH_NONE = 0,
    SWITCH_YIELD = 1,  /* requeue it */
    SWITCH_PARK = 2,   /* complete the park protocol */
    SWITCH_FINISH = 3, /* release its stack, publish its result */
};

/* Sizes of the per-worker caches. */
#define WEFT_STACK_CACHE 64u
#define WEFT_TASK_CACHE 256u

/* Every so many scheduling decisions a worker looks at the injection queue,
 * its inbox, its timers and its ring before its local queue, so that
 * neither starves behind a busy local queue (Go and Tokio use 61). */
#define WEFT_MAINTENANCE_INTERVAL 61u

struct weft__worker {
    /* ---- Touched by other workers ---- */
    struct weft__runq runq; /* steal() only, from others */
    /* The task the running one just woke (Go's runnext): it runs next here,
     * so a pair passing messages stays on one worker instead of bouncing
     * between two. Stealable, but thieves take it only after spinning a
     * while (sched/worker.c), so its owner gets the first chance. */
    _Alignas(64) _Atomic(struct weft__task *) runnext;
    struct weft__mpsc inbox; /* any thread pushes; owner takes */
    struct weft__mpsc msgs;  /* weft__msg: any thread posts; owner runs */
    /* PARK state for unpark_worker (sched/idle.c): any thread. */
    _Alignas(64) _Atomic uint32_t park_state;
    /* Timers: the owner adds and expires; a task that armed one here and
     * resumed elsewhere removes it. Always under timer_lock. */
    pthread_mutex_t timer_lock;
    struct weft__timer_wheel wheel;
    /* Spawned and finished counts: written only by the owner (plain load +
     * store), read by anyone with acquire. weft__live_tasks sums them. */
    _Atomic uint64_t spawned;
    _Atomic uint64_t finished;

    /* ---- Owner only ---- */
    _Alignas(64) struct weft__runtime *rt;
    unsigned index;
    struct weft__task *current;   /* NULL while the scheduler runs */
    void *sched_sp;               /* the worker loop's saved context */
    struct weft__task *switch_prev;
    enum weft__switch_reason switch_reason;
    struct weft__qlist pinned;    /* ready tasks that must run here */
    uint32_t tick;                /* scheduling decisions so far */
    uint64_t rng;                 /* xorshift state: victims, shuffle */
    bool searching;               /* counted in the idle set's searchers */
    bool shuffle;                 /* cfg.shuffle_seed != 0 */
    struct weft__ring *ring;      /* io/ */
    void *altstack;               /* for the overflow handler */
    /* Steal order: other workers nearest first; class_end as topology.h. */
    unsigned *victims;
    unsigned victim_class_end[8];
    /* Caches (runtime/stack.c, runtime/task.c). */
    void *stack_cache[WEFT_STACK_CACHE];
    unsigned stack_cache_len;
    /* Free descriptors, FIFO: allocation then walks memory in the order the
     * last run freed it, which the prefetchers follow (a LIFO array was
     * measured 30% slower on spawn+join). */
    struct weft__qlist task_cache;
    pthread_t thread;
    /* For the watchdog, any thread reads: switches so far (and yields
     * that found nothing to switch to), and the task switched to last
     * (NULL: the loop). Written on every switch. */
    _Atomic uint64_t switches;
    _Atomic(struct weft__task *) running;
    bool solo;                    /* the only worker: no thieves exist */
#if defined(WEFT_TSAN)
    void *tsan_sched_fiber;
#endif
};

/* The shared part of the scheduler. */
struct weft__sched {
    struct weft__inject inject;
    /* The idle set (sched/idle.c). */
    _Atomic uint32_t num_searching;
    _Atomic uint32_t num_parked;
    pthread_mutex_t idle_lock;
    unsigned *sleepers; /* parked workers, a stack; guarded by idle_lock */
    unsigned nsleepers;
    bool *is_sleeping;  /* by worker index; guarded by idle_lock */
};

/* ---- Which worker, which task ------------------------------------------- */

/* The worker of the calling thread, NULL on a plain thread. Not inlined and
 * not analysable: a fiber may move to another thread at any switch, and the
 * compiler must not reuse a thread-local address computed before one. */
struct weft__worker *weft__worker_self(void);
void weft__worker_set_self(struct weft__worker *w);

/* The running task of the calling thread, or NULL. */
static inline struct weft__task *weft__task_self(struct weft__worker *w)
{
    return w ? w->current : 0;
}

/* ---- Scheduling ------------------------------------------------------------*/

int weft__sched_init(struct weft__runtime *rt);
void weft__sched_destroy(struct weft__runtime *rt);
int weft__worker_init(struct weft__runtime *rt, struct weft__worker *w,
                      unsigned index);
void weft__worker_destroy(struct weft__runtime *rt, struct weft__worker *w);
/* The worker thread's loop; returns when the runtime exits. */
void weft__worker_loop(struct weft__worker *w);

/* From a task: switch away for `reason` and return when resumed, with the
 * worker it now runs on. */
struct weft__worker *weft__schedule(struct weft__worker *w,
                                    enum weft__switch_reason reason);

/* Make a task that was not in any queue ready to run (a new task, or one
 * whose wait ended). w: the calling thread's worker or NULL. */
void weft__enqueue(struct weft__runtime *rt, struct weft__worker *w,
                   struct weft__task *t);
/* The same for a task whose wait a running task just ended: it goes to the
 * waker's runnext slot, the old occupant to the run queue. */
void weft__enqueue_woken(struct weft__runtime *rt, struct weft__worker *w,
                         struct weft__task *t);

/* ---- Waiting (sched/wait.c) ------------------------------------------------*/

/* Begin a wait on waiter wt: returns the seq that identifies it. Until the
 * wait ends, whoever holds (wt, seq) may end it with weft__waiter_wake. The
 * caller then registers (wt, seq) where wakers will find it, and calls
 * weft__waiter_block. kind: WAIT_DIRECT or WAIT_UNCANCELLABLE; `what` names
 * the wait in dumps ("join", "sleep", "channel recv"). */
uint32_t weft__waiter_begin(struct weft__waiter *wt, uint32_t kind,
                            const char *what);
/* Begin a WAIT_CUSTOM wait of the calling task: a cancel calls
 * cancel(task, seq) (see runtime.h) instead of ending the wait, and
 * weft__waiter_block arms no deadline: the owner arms its own (an I/O
 * deadline is a linked timeout), using weft__wait_deadline. */
uint32_t weft__waiter_begin_custom(struct weft__waiter *wt, const char *what,
                                   void (*cancel)(struct weft__task *t,
                                                  uint32_t seq),
                                   void *obj);
/* The deadline that applies to a wait of task t that asks for `deadline`:
 * the earlier of it and the task's innermost deadline scope. */
static inline uint64_t weft__wait_deadline(struct weft__task *t,
                                           uint64_t deadline)
{
    return t && t->deadline < deadline ? t->deadline : deadline;
}
/* Block until the wait ends (a wake, the deadline (absolute weft_now_ns time;
 * UINT64_MAX: none) or a cancel) and return its outcome: what the waker
 * passed, -ETIMEDOUT, or -ECANCELED. The task's deadline scope is applied
 * too. *w is updated to the worker the task resumed on. On a plain thread
 * (task NULL) it sleeps on the waiter's futex. */
int32_t weft__waiter_block(struct weft__worker **w, struct weft__waiter *wt,
                           uint32_t seq, uint64_t deadline);
/* Any thread: end the wait (wt, seq) with outcome (>= -4095, never
 * WEFT_WAIT_PENDING). True if this call ended it; false if it had already
 * ended (or a newer wait began). */
bool weft__waiter_wake(struct weft__waiter *wt, uint32_t seq, int32_t outcome);
/* The waiter of the calling task, or of the calling plain thread. */
struct weft__waiter *weft__waiter_self(struct weft__worker *w);
/* Request cancellation of t: its current or next wait returns -ECANCELED
 * once. Any thread. */
void weft__task_cancel(struct weft__runtime *rt, struct weft__task *t);

/* ---- Timers (sched/worker.c) ----------------------------------------------*/
void weft__timer_arm(struct weft__worker *w, struct weft__task *t,
                     uint32_t seq, uint64_t deadline);
void weft__timer_disarm(struct weft__task *t);

/* ---- The idle set (sched/idle.c) -------------------------------------------*/

/* After making work stealable: wake a parked worker if nobody searches. */
void weft__idle_notify(struct weft__runtime *rt);
/* Wake worker w specifically (work in its inbox). Any thread. */
void weft__idle_unpark(struct weft__runtime *rt, struct weft__worker *w);
/* Try to count the caller among the searchers (at most half the workers). */
bool weft__idle_begin_search(struct weft__runtime *rt, struct weft__worker *w);
/* The caller stops searching (found work, or about to park). If it was the
 * last searcher and found work, another worker is woken to search. */
void weft__idle_end_search(struct weft__runtime *rt, struct weft__worker *w,
                           bool found_work);
/* Park the worker until work, a timer (deadline, ns) or an unpark. */
void weft__idle_park(struct weft__runtime *rt, struct weft__worker *w,
                     uint64_t deadline);
/* Wake every worker (shutdown). */
void weft__idle_wake_all(struct weft__runtime *rt);
/* Is there work the worker could take from elsewhere (injection queue,
 * other runqs, its inbox)? For the last check before sleeping. */
bool weft__work_visible(struct weft__runtime *rt, struct weft__worker *w);

/* ---- Joining (sched/join.c) ------------------------------------------------*/
/* The task t finished (called once it is off its stack). */
void weft__task_finished(struct weft__runtime *rt, struct weft__worker *w,
                         struct weft__task *t);

/* ---- Messages to one worker (sched/worker.c) ------------------------------ */

/* Work that must run on one worker's thread: io/ uses it to get an
 * operation's cancel, or a listener's teardown, to the thread that owns the
 * ring (only that thread may submit to it). The owner runs its messages in
 * maintenance, oldest first, from its loop's context (never on a task's
 * stack): within WEFT_MAINTENANCE_INTERVAL scheduling decisions, or at once
 * if it was parked. A message is owned by the poster until its run begins;
 * run may then reuse or free it. Like a task, a message is in one queue at a
 * time: embed it in an object that outlives it and guard reposting with a
 * flag (io/ring.c: sweep_posted). Allocation-free. */
struct weft__msg {
    struct weft__qlink q; /* first: the inbox threads through it */
    void (*run)(struct weft__worker *w, struct weft__msg *m);
};

/* Any thread: queue m for worker w and wake w if it is parked. */
void weft__worker_post(struct weft__runtime *rt, struct weft__worker *w,
                       struct weft__msg *m);

/* ---- Spawning to a chosen worker (used by the parallel loops) ------------ */
int weft__spawn_on(struct weft__runtime *rt, struct weft__worker *self,
                   unsigned worker, weft_fn fn, void *arg);

/* weft_spawn_ex with a hook: prepare(t, ctx) runs on the new descriptor
 * after it is set up and before it is made ready (groups link their child
 * there, so it can neither run nor finish unregistered). site: the spawn
 * site to record. Errors as weft_spawn_ex, or prepare's: if it returns
 * non-zero the descriptor is freed and nothing runs. */
int weft__spawn(weft_task_t *out, weft_fn fn, void *arg,
                const weft_spawn_opts_t *opts, void *site,
                int (*prepare)(struct weft__task *t, void *ctx), void *ctx);

/* Count a point where the task running on w gave its worker up, or
 * computes on purpose (a parallel loop's piece done), as a switch for the
 * watchdog (runtime/watchdog.c). Owner thread only: one relaxed increment. */
static inline void weft__watchdog_pet(struct weft__worker *w)
{
    atomic_store_explicit(
        &w->switches,
        atomic_load_explicit(&w->switches, memory_order_relaxed) + 1,
        memory_order_relaxed);
}

/* Per-worker random numbers (xorshift64*). */
static inline uint64_t weft__rand(struct weft__worker *w)
{
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

#endif /* WEFT_SCHED_SCHED_H */
