/* sched/wait.c: the wait protocol every blocking call is built on. Entry
 * points: weft__waiter_begin, weft__waiter_block, weft__waiter_wake,
 * weft__task_cancel.
 *
 * A wait is ended exactly once, by whoever first wins the CAS on the
 * waiter's word (seq << 32 | state): the object waited on, the deadline's
 * timer, a cancel, or an I/O completion. Losers do nothing. The waiter is
 * never freed while the runtime lives (it is embedded in a task descriptor,
 * or pooled per plain thread), so a late claim is always safe; the seq makes
 * it fail.
 *
 * The park protocol, for a task (park word, PARK_*):
 *  1. begin: park = PARKING, then word = (seq, PENDING). From here a waker
 *     may end the wait at any time.
 *  2. block: if the word is still pending, switch away with SWITCH_PARK. The
 *     next context runs after_switch, which CASes park PARKING -> PARKED:
 *     the task is off its stack.
 *  3. wake: after winning the word, exchange park to NOTIFIED. If it was
 *     PARKED, the task is off-CPU and in no queue: enqueue it. If it was
 *     PARKING, after_switch's CAS fails and it requeues the task instead.
 *     Either way the task is queued once, and never while still on its
 *     stack.
 *  4. A winner delayed between its CAS and its exchange may hit a later wait
 *     of the same task and requeue it early: block therefore re-parks until
 *     its own word has an outcome (a spurious wake-up costs a switch, never
 *     correctness).
 *
 * Cancellation (Dekker-style, all seq_cst): the canceller sets task.cancel,
 * then reads the word; the waiter publishes the word (begin), then reads
 * task.cancel (block). At least one sees the other; both may claim, one
 * wins. The request is consumed when a wait ends with -ECANCELED.
 *
 * Must never: let a task resume while its wait's word is pending, or enqueue
 * a task twice for one wait. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "sched/sched.h"

static inline uint32_t word_state(uint64_t word)
{
    return (uint32_t)word;
}

static inline uint32_t word_seq(uint64_t word)
{
    return (uint32_t)(word >> 32);
}

/* ---- Plain threads' waiters ------------------------------------------------ */

/* A plain thread's waiter is allocated once per thread and, when the thread
 * exits, returned to a pool rather than freed: a late claim may still touch
 * it. */
static pthread_mutex_t thread_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pool_entry {
    struct weft__waiter waiter;
    struct pool_entry *next;
} *thread_pool;
static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;
static __thread struct pool_entry *thread_entry;

static void thread_exit(void *p)
{
    struct pool_entry *e = p;
    pthread_mutex_lock(&thread_pool_lock);
    e->next = thread_pool;
    thread_pool = e;
    pthread_mutex_unlock(&thread_pool_lock);
}

static void make_key(void)
{
    pthread_key_create(&thread_key, thread_exit);
}

static struct weft__waiter *thread_waiter(void)
{
    if (thread_entry)
        return &thread_entry->waiter;
    pthread_once(&thread_key_once, make_key);
    pthread_mutex_lock(&thread_pool_lock);
    struct pool_entry *e = thread_pool;
    if (e)
        thread_pool = e->next;
    pthread_mutex_unlock(&thread_pool_lock);
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e)
            weft__panic("out of memory for a thread's waiter");
        atomic_init(&e->waiter.word, WEFT_WAIT_IDLE);
    }
    e->waiter.task = NULL;
    thread_entry = e;
    pthread_setspecific(thread_key, e);
    return &e->waiter;
}

struct weft__waiter *weft__waiter_self(struct weft__worker *w)
{
    if (w && w->current)
        return &w->current->waiter;
    return thread_waiter();
}

static long futex(_Atomic uint32_t *addr, int op, uint32_t val,
                  const struct timespec *ts)
{
    return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL,
                   FUTEX_BITSET_MATCH_ANY);
}

static int32_t thread_block(struct weft__waiter *wt, uint32_t seq,
                            uint64_t deadline)
{
    struct timespec ts, *tsp = NULL;
    if (deadline != UINT64_MAX) {
        ts.tv_sec = (time_t)(deadline / 1000000000ull);
        ts.tv_nsec = (long)(deadline % 1000000000ull);
        tsp = &ts;
    }
    for (;;) {
        uint32_t f = atomic_load_explicit(&wt->futex, memory_order_acquire);
        uint64_t word = atomic_load_explicit(&wt->word, memory_order_acquire);
        if (word_state(word) != WEFT_WAIT_PENDING)
            return (int32_t)word_state(word);
        /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline,
         * the clock of weft_now_ns. */
        long r = futex(&wt->futex, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, f,
                       tsp);
        if (r != 0 && errno == ETIMEDOUT)
            weft__waiter_wake(wt, seq, -ETIMEDOUT);
    }
}

/* ---- The protocol ----------------------------------------------------------- */

uint32_t weft__waiter_begin(struct weft__waiter *wt, uint32_t kind,
                            const char *what)
{
    uint64_t word = atomic_load_explicit(&wt->word, memory_order_relaxed);
    uint32_t seq = word_seq(word) + 1;
    struct weft__task *t = wt->task;
    if (t) {
        atomic_store_explicit(&t->park, PARK_PARKING, memory_order_relaxed);
        atomic_store_explicit(&t->wait_kind, kind, memory_order_relaxed);
        atomic_store_explicit(&t->wait_what, what, memory_order_relaxed);
    }
    /* seq_cst: publishes park and wait_kind to any waker or canceller that
     * reads this word (step 1), and orders it before block's read of the
     * cancel flag (the Dekker pair). */
    atomic_store_explicit(&wt->word, ((uint64_t)seq << 32) | WEFT_WAIT_PENDING,
                          memory_order_seq_cst);
    return seq;
}

uint32_t weft__waiter_begin_custom(struct weft__waiter *wt, const char *what,
                                   void (*cancel)(struct weft__task *t,
                                                  uint32_t seq),
                                   void *obj)
{
    struct weft__task *t = wt->task;
    if (t) {
        /* Published by begin's seq_cst store of the word, which a canceller
         * reads before it reads these. */
        atomic_store_explicit(&t->wait_cancel, cancel, memory_order_relaxed);
        atomic_store_explicit(&t->wait_obj, obj, memory_order_relaxed);
    }
    return weft__waiter_begin(wt, WAIT_CUSTOM, what);
}

bool weft__waiter_wake(struct weft__waiter *wt, uint32_t seq, int32_t outcome)
{
    uint64_t expected = ((uint64_t)seq << 32) | WEFT_WAIT_PENDING;
    uint64_t desired = ((uint64_t)seq << 32) | (uint32_t)outcome;
    /* acq_rel: the waiter's acquire read of the word sees whatever the
     * waker wrote before (a value handed over, a result). */
    if (!atomic_compare_exchange_strong_explicit(&wt->word, &expected, desired,
                                                 memory_order_acq_rel,
                                                 memory_order_relaxed))
        return false;
    struct weft__task *t = wt->task;
    if (!t) {
        atomic_fetch_add_explicit(&wt->futex, 1, memory_order_release);
        futex(&wt->futex, FUTEX_WAKE_BITSET | FUTEX_PRIVATE_FLAG, INT_MAX,
              NULL);
        return true;
    }
    /* acq_rel: seeing PARKED means seeing the task's saved context (the
     * release in after_switch's CAS); step 3. */
    if (atomic_exchange_explicit(&t->park, PARK_NOTIFIED,
                                 memory_order_acq_rel) == PARK_PARKED)
        weft__enqueue_woken(weft__runtime(), weft__worker_self(), t);
    return true;
}

int32_t weft__waiter_block(struct weft__worker **wp, struct weft__waiter *wt,
                           uint32_t seq, uint64_t deadline)
{
    struct weft__task *t = wt->task;
    if (!t)
        return thread_block(wt, seq, deadline);
    struct weft__worker *w = *wp;
    uint32_t kind = atomic_load_explicit(&t->wait_kind, memory_order_relaxed);
    bool cancellable = kind != WAIT_UNCANCELLABLE;
    if (kind == WAIT_DIRECT)
        deadline = weft__wait_deadline(t, deadline);
    else
        deadline = UINT64_MAX; /* custom: the owner's; uncancellable: none */
    /* seq_cst: the second half of the Dekker pair with weft__task_cancel. */
    if (cancellable && atomic_load_explicit(&t->cancel, memory_order_seq_cst)) {
        if (kind == WAIT_DIRECT)
            weft__waiter_wake(wt, seq, -ECANCELED);
        else
            atomic_load_explicit(&t->wait_cancel, memory_order_relaxed)(t, seq);
    }
    bool timer = false;
    if (deadline != UINT64_MAX) {
        if (deadline <= weft_now_ns()) {
            weft__waiter_wake(wt, seq, -ETIMEDOUT);
        } else {
            weft__timer_arm(w, t, seq, deadline);
            timer = true;
        }
    }
    for (;;) {
        uint64_t word = atomic_load_explicit(&wt->word, memory_order_acquire);
        if (word_state(word) != WEFT_WAIT_PENDING)
            break;
        w = weft__schedule(w, SWITCH_PARK);
        /* Step 4: resumed early by a stale waker? Park again. */
        atomic_store_explicit(&t->park, PARK_PARKING, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
    }
    if (timer)
        weft__timer_disarm(t);
    atomic_store_explicit(&t->park, PARK_RUNNING, memory_order_relaxed);
    atomic_store_explicit(&t->wait_kind, WAIT_NONE, memory_order_relaxed);
    atomic_store_explicit(&t->wait_what, NULL, memory_order_relaxed);
    int32_t outcome = (int32_t)word_state(
        atomic_load_explicit(&wt->word, memory_order_acquire));
    if (outcome == -ECANCELED && cancellable)
        atomic_store_explicit(&t->cancel, 0, memory_order_relaxed);
    *wp = w;
    return outcome;
}

void weft__task_cancel(struct weft__runtime *rt, struct weft__task *t)
{
    (void)rt;
    /* seq_cst: the first half of the Dekker pair with waiter_block. */
    atomic_store_explicit(&t->cancel, 1, memory_order_seq_cst);
    uint64_t word = atomic_load_explicit(&t->waiter.word, memory_order_seq_cst);
    if (word_state(word) != WEFT_WAIT_PENDING)
        return;
    uint32_t kind = atomic_load_explicit(&t->wait_kind, memory_order_relaxed);
    if (kind == WAIT_DIRECT)
        weft__waiter_wake(&t->waiter, word_seq(word), -ECANCELED);
    else if (kind == WAIT_CUSTOM)
        atomic_load_explicit(&t->wait_cancel, memory_order_relaxed)(
            t, word_seq(word));
}
