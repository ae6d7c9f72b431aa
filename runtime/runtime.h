/* runtime/runtime.h: the contract of runtime/.
 *
 * runtime/ owns what a fiber is made of and where it runs: task descriptors
 * and their handles, stacks and their guard pages, the context switch, the
 * runtime object with its workers' threads and their placement, start-up and
 * shutdown, the configuration, and the stack-overflow report.
 *
 * It may call: sched/ (the worker loop it starts on each thread, the queues a
 * new task goes into) and io/ (creating and closing each worker's ring).
 * It must never: decide scheduling order (sched/ does), know about sockets or
 * files, or report an error through errno. */
#ifndef WEFT_RUNTIME_RUNTIME_H
#define WEFT_RUNTIME_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "include/weft.h"
#include "sched/qlink.h"
#include "sched/timer_wheel.h"

struct weft__worker;
struct weft__runtime;
struct weft__topology;

/* ---- Debug checks -------------------------------------------------------- */

#ifndef WEFT_DEBUG_LEVEL
#define WEFT_DEBUG_LEVEL 0
#endif

/* Print a message naming the broken invariant and abort. */
__attribute__((noreturn, format(printf, 1, 2))) void
weft__panic(const char *fmt, ...);

#define WEFT_ASSERT(cond)                                                      \
    do {                                                                       \
        if (WEFT_DEBUG_LEVEL >= 1 && !(cond))                                  \
            weft__panic("%s:%d: invariant failed: %s", __FILE__, __LINE__,     \
                        #cond);                                                \
    } while (0)

/* A warning on stderr ("weft: ..."). */
__attribute__((format(printf, 1, 2))) void weft__warn(const char *fmt, ...);

/* Misuse by the caller (a programming error): debug builds print a clear
 * message; every build then returns the call's error code. */
void weft__misuse(const char *fn, const char *what);

#if defined(__SANITIZE_ADDRESS__)
#define WEFT_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define WEFT_TSAN 1
#endif
#endif

/* ---- The waiter: what a blocked fiber or thread is woken through --------- */

/* A waiter belongs to one task (embedded in it) or to one plain thread. Its
 * word is (seq << 32 | state): each wait takes a new seq, and whoever ends a
 * wait (the object it waits on, its deadline, a cancel, an I/O completion)
 * must win one CAS on the word with the seq it was given. Waiters are never
 * freed while the runtime lives, so a late claim with a stale seq is always
 * safe and always fails. sched/wait.c drives the protocol. */
struct weft__waiter {
    _Atomic uint64_t word;
    struct weft__task *task; /* NULL: a plain thread's waiter */
    _Atomic uint32_t futex;  /* plain threads sleep on this */
};

#define WEFT_WAIT_PENDING ((uint32_t)0x80000000u) /* no outcome yet */
#define WEFT_WAIT_IDLE ((uint32_t)0x80000001u)    /* between waits */

/* ---- Tasks ----------------------------------------------------------------*/

/* Task lifecycle and handle state: one 64-bit word, (gen << 32 | flags).
 * The generation changes whenever the descriptor is freed, so a CAS through
 * a stale handle fails (sched/join.c). */
enum {
    TASK_LIVE = 1u << 0,         /* allocated to a task */
    TASK_FINISHED = 1u << 1,     /* its function returned; result is set */
    TASK_CLAIMED = 1u << 2,      /* a joiner owns the handle */
    TASK_DETACHED = 1u << 3,     /* nobody will join */
    TASK_JOIN_WAITING = 1u << 4, /* the joiner is blocked on it */
    /* Coordination (sched/join.c, cancel.c, group.c): */
    TASK_WATCHED = 1u << 5,     /* completion watchers may be listed */
    TASK_CANCEL_PIN = 1u << 6,  /* weft_cancel is at work: a freer waits */
    TASK_CANCELLED = 1u << 7,   /* a cancel was requested through the API */
    TASK_IN_GROUP = 1u << 8,    /* spawned into a group */
    TASK_OWNS_GROUPS = 1u << 9, /* created a group */
};

/* Park protocol states (task.park), sched/wait.c. */
enum {
    PARK_RUNNING = 0,  /* running, or ready in a queue */
    PARK_PARKING = 1,  /* began a wait, may still be on its stack */
    PARK_PARKED = 2,   /* switched out, in no queue: only a wake requeues it */
    PARK_NOTIFIED = 3, /* a wake came while it was still PARKING */
};

/* Task flags (task.flags), fixed at spawn. */
enum {
    TFLAG_PINNED = 1u << 0, /* runs only on worker `home` */
    TFLAG_MAIN = 1u << 1,   /* the task weft_run started */
};

/* How the current wait of a task ends early (task.wait_kind). */
enum {
    WAIT_NONE = 0,   /* not waiting */
    WAIT_DIRECT = 1, /* a cancel or the deadline ends it at once */
    WAIT_CUSTOM = 2, /* its owner decides: a cancel calls task.wait_cancel,
                        and deadlines are the owner's to arm (an I/O wait
                        ends only with the operation's own completion) */
    WAIT_UNCANCELLABLE = 3, /* only the awaited event ends it */
};

typedef void (*weft__wait_cancel_fn)(struct weft__task *t, uint32_t seq);

struct weft__task {
    /* Run queue link: owned by whichever queue holds the task. Also the
     * free-list link while the descriptor is free. */
    struct weft__qlink q;
    /* Saved stack pointer while suspended; NULL before the first run. */
    void *sp;
    /* Top of its stack (runtime/stack.c), NULL until the first run. */
    void *stack;
    /* The worker it runs on, or last ran on. Written by that worker. */
    struct weft__worker *worker;
    /* Until it first runs: what to run. After it finishes: result. */
    weft_fn fn;
    void *arg;
    intptr_t result;
    /* (gen << 32 | TASK_* flags); sched/join.c. */
    _Atomic uint64_t state;
    /* PARK_* ; sched/wait.c. */
    _Atomic uint32_t park;
    uint32_t index; /* its slot in the task table, fixed */
    uint16_t flags; /* TFLAG_*, set at spawn */
    uint16_t home;  /* pinned tasks: the worker they belong to */
    /* A cancel request not yet delivered to a wait. Any thread sets it. */
    _Atomic uint32_t cancel;
    _Atomic uint32_t wait_kind; /* WAIT_*, for cancel */
    /* Deadline scopes pushed and not popped (sched/deadline.c; the task
     * itself only). A counter that may carry over to the next life, which
     * is harmless: a scope also records its task's handle. It fills a hole:
     * the rest of the coordination state lives beside the descriptor
     * (sched/task_ext.c), since every byte here costs spawn+join. */
    uint32_t deadline_depth;
    /* WAIT_CUSTOM: called by weft__task_cancel, on the cancelling thread,
     * with the seq of the wait to cancel. It must arrange for that wait to
     * end, now or later, and touch only memory that outlives the wait (the
     * task, or the object waited on): the wait may already have ended. */
    _Atomic(weft__wait_cancel_fn) wait_cancel;
    _Atomic(void *) wait_obj; /* what a WAIT_CUSTOM wait is on, for its hook */
    struct weft__waiter waiter;
    /* The joiner blocked in weft_join, and the seq of its wait. */
    struct weft__waiter *joiner;
    uint32_t joiner_seq;
    /* Deadline timer of the current wait, armed on timer_worker's wheel
     * under its timer lock; timer_seq is the wait it ends. */
    uint32_t timer_seq;
    struct weft__timer timer;
    struct weft__worker *timer_worker;
    /* The innermost deadline scope (issue: deadlines), UINT64_MAX: none. */
    uint64_t deadline;
    /* For the dump and the watchdog. */
    const char *name;
    void *spawn_site;
    _Atomic(const char *) wait_what; /* what the current wait is on, or NULL;
                                        read by the dump */
#if defined(WEFT_ASAN)
    void *asan_fake_stack;
#endif
};

/* The largest number of task descriptors (the handle's index is 32 bits). */
#define WEFT_TASKS_PER_CHUNK 4096u
#define WEFT_TASK_CHUNKS 65536u

/* Allocate a descriptor from worker w's cache (w NULL: a plain thread).
 * Returns NULL on ENOMEM. The descriptor's state has TASK_LIVE set and a
 * fresh generation. */
struct weft__task *weft__task_alloc(struct weft__runtime *rt,
                                    struct weft__worker *w);
/* Return a finished, joined (or detached) descriptor; bumps the generation
 * so handles to it go stale. */
void weft__task_free(struct weft__runtime *rt, struct weft__worker *w,
                     struct weft__task *t);
/* The descriptor a handle names, or NULL if the handle's index was never
 * allocated. The caller still checks the generation (in the state word). */
struct weft__task *weft__task_lookup(struct weft__runtime *rt, uint64_t id);
static inline uint64_t weft__task_handle(struct weft__task *t, uint32_t gen)
{
    return ((uint64_t)gen << 32) | (uint64_t)(t->index + 1);
}
/* Call fn on every descriptor ever allocated (live or free). For shutdown
 * and the dump; racy by nature: fn reads only atomics. */
void weft__task_for_each(struct weft__runtime *rt,
                         void (*fn)(struct weft__task *t, void *ctx),
                         void *ctx);
/* Move worker w's cached descriptors to the shared depot (worker exit). */
void weft__task_cache_flush(struct weft__runtime *rt, struct weft__worker *w);
int weft__task_pool_init(struct weft__runtime *rt);
void weft__task_pool_destroy(struct weft__runtime *rt);

/* ---- Stacks -----------------------------------------------------------------*/

/* How a stack overflow is caught (runtime/stack.c chooses at start-up). */
enum weft__guard_mode {
    GUARD_MADVISE = 0,  /* MADV_GUARD_INSTALL (Linux 6.13+): no VMA per stack */
    GUARD_MPROTECT = 1, /* a PROT_NONE page per stack, while VMAs allow */
    GUARD_CANARY = 2,   /* past the VMA budget: a canary checked at switch */
};

struct weft__stack_pool;

int weft__stack_pool_init(struct weft__runtime *rt, size_t usable);
void weft__stack_pool_destroy(struct weft__runtime *rt);
/* A stack for a task about to run: its top (16-byte aligned; the task's
 * initial frame goes just below). NULL when no stack can be had (ENOMEM). */
void *weft__stack_get(struct weft__runtime *rt, struct weft__worker *w);
/* Give a stack back (its task finished). */
void weft__stack_put(struct weft__runtime *rt, struct weft__worker *w,
                     void *top);
/* Can a stack be had without mapping more memory, or by mapping it now?
 * 0 or -ENOMEM. Spawn calls it so that running out of stacks is reported
 * where the caller can act on it. */
int weft__stack_reserve_check(struct weft__runtime *rt,
                              struct weft__worker *w);
void weft__stack_cache_flush(struct weft__runtime *rt, struct weft__worker *w);
/* The usable bytes of every stack, and the lowest usable address of the
 * stack whose top is `top`. */
size_t weft__stack_size(struct weft__runtime *rt);
void *weft__stack_lo(struct weft__runtime *rt, void *top);
/* If addr lies in the guard zone of a stack, return that stack's top. */
void *weft__stack_guard_hit(struct weft__runtime *rt, const void *addr);
enum weft__guard_mode weft__stack_guard_mode(struct weft__runtime *rt);
/* GUARD_CANARY stacks: false if the canary of the stack at top is gone. */
bool weft__stack_canary_ok(struct weft__runtime *rt, void *top);
#if defined(WEFT_TSAN)
void *weft__stack_tsan_fiber(void *top);
#endif

/* ---- The runtime ------------------------------------------------------------*/

struct weft__runtime {
    /* Resolved configuration: every default filled in. */
    weft_config_t cfg;
    unsigned nworkers;
    struct weft__worker **workers;
    struct weft__topology *topo;
    struct weft__sched *sched; /* sched/: injection queue, idle set */
    struct weft__stack_pool *stacks;
    struct weft__task_pool *tasks;
    /* Spawns from plain threads (workers count their own). */
    _Atomic uint64_t external_spawned;
    /* Set when shutdown begins: new waits see it through cancel. */
    _Atomic bool stopping;
    /* Set when the workers must leave their loops. */
    _Atomic bool exiting;
    /* Start-up handshake with the worker threads. */
    pthread_mutex_t start_lock;
    pthread_cond_t start_cond;
    unsigned started;
    int start_error;
    char start_reason[256];
    /* The blocking pool and the watchdog (runtime/blocking.c, watchdog.c):
     * set at start-up step 3, stopped first thing in destroy. */
    struct weft__blocking *blocking;
    struct weft__watchdog *watchdog;
};

/* The running runtime, or NULL. Set by weft_start, cleared by weft_stop. */
extern struct weft__runtime *_Atomic weft__rt;

static inline struct weft__runtime *weft__runtime(void)
{
    return atomic_load_explicit(&weft__rt, memory_order_acquire);
}

/* Resolve cfg (NULL: defaults) and the environment into *out.
 * Returns 0 or -EINVAL with a reason in why. */
int weft__config_resolve(const weft_config_t *cfg, unsigned ncores,
                         weft_config_t *out, char *why, size_t whylen);

/* Install the SIGSEGV handler that names an overflowing fiber, and the
 * alternate signal stack of the calling worker thread. */
int weft__overflow_install(struct weft__runtime *rt);
void weft__overflow_uninstall(void);
int weft__overflow_thread_init(void **altstack);
void weft__overflow_thread_exit(void *altstack);

/* Tasks alive: spawned minus finished, summed over workers (see runtime.c). */
uint64_t weft__live_tasks(struct weft__runtime *rt);

/* ---- Blocking pool, watchdog, dump ------------------------------------------*/

/* The blocking pool (runtime/blocking.c). start: at start-up (checks
 * cfg.blocking_threads, starts no thread yet); -EINVAL or -ENOMEM. stop:
 * once no task is left (so no call is queued or running); joins every
 * thread and frees the pool. Safe on a runtime whose start failed. */
int weft__blocking_start(struct weft__runtime *rt);
void weft__blocking_stop(struct weft__runtime *rt);
/* For weft_stop's "still waiting" warning: explain the tasks held up by
 * blocking calls that are still running (they cannot be interrupted). */
void weft__blocking_warn_running(struct weft__runtime *rt);
/* What a fiber waiting on the pool waits on (task.wait_what). */
extern const char weft__blocking_what[];
/* Is task t's blocking call still queued (not yet running)? For the dump. */
bool weft__blocking_queued(struct weft__runtime *rt, struct weft__task *t);
struct weft__blocking_stats {
    unsigned max_threads, threads, idle, running;
    size_t queued;
};
void weft__blocking_stats(struct weft__runtime *rt,
                          struct weft__blocking_stats *out);
/* How long an idle pool thread lingers before it exits, in ns. Tests shrink
 * it before weft_start; WEFT_BLOCKING_IDLE_MS by default. */
extern uint64_t weft__blocking_idle_ns;
/* Tests: the next this many thread starts of the pool fail with -EAGAIN. */
extern _Atomic unsigned weft__blocking_fail_starts;

/* The watchdog (runtime/watchdog.c): a thread sampling each worker's switch
 * counter, started at start-up unless cfg.watchdog_ns is UINT64_MAX; stop
 * joins it. Safe on a runtime whose start failed. */
int weft__watchdog_start(struct weft__runtime *rt);
void weft__watchdog_stop(struct weft__runtime *rt);

/* The dump (runtime/dump.c). quiesce: wait for any weft_dump still reading
 * the runtime; call after weft__rt is cleared, before the runtime is freed. */
void weft__dump_quiesce(void);
/* A task's identity, read while it may change (see runtime/dump.c). */
struct weft__task_info {
    uint32_t index, gen; /* named "task <index+1>.<gen>" */
    uint64_t state;      /* as read with the generation: TASK_* flags */
    const char *name;
    weft_fn fn;
    void *spawn_site;
    bool started;        /* has run (has a stack) */
    bool pinned;
    uint16_t home;       /* pinned: its worker */
    uint64_t deadline;   /* its deadline scope, UINT64_MAX: none */
};
/* Read t's identity. False if t is not a live task, or was freed or reused
 * while being read. Any thread. */
bool weft__task_read(struct weft__task *t, struct weft__task_info *out);
/* Write `task 5.1 "name" (fn f, spawned at g+0x2c)` into buf. */
void weft__task_describe(const struct weft__task_info *info, char *buf,
                         size_t len);

#endif /* WEFT_RUNTIME_RUNTIME_H */
