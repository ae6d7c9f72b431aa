/* sched/mutex.c: the mutex, fast when uncontended, fair enough under
 * contention that no waiter starves. Entry points: weft_mutex_*, and
 * weft__mutex_lock / weft__mutex_unlock for cond.c; weft__sync_self_id.
 *
 * The state word (m->state) holds:
 *   LOCKED   someone owns the mutex;
 *   WAITERS  the wait queue is not empty (changed only under qlock);
 *   WOKEN    a waiter was woken to retry and has not retried yet (set by an
 *            unlocker under qlock, cleared by that waiter when it takes the
 *            lock or queues again);
 *   B        (bits 8..23) barges: acquisitions made, by callers who were not
 *            the waiter whose turn it is, while waiters (queued or woken)
 *            existed.
 * Taking a free lock is a load and a CAS (the fast path), allowed while B <
 * WEFT_MUTEX_BARGE_LIMIT. That is the throughput of "barging" locks (Go's
 * normal mode, WebKit's and parking_lot's locks): a fiber that unlocks and
 * locks again keeps running instead of switching. Once B reaches the limit
 * the next unlock hands the mutex straight to the first waiter (Go's
 * starvation mode), and nobody may barge until a waiter is served: a waiter
 * at the head of the queue therefore gets the mutex within LIMIT + 1
 * acquisitions by others, and a waiter n places back within about
 * n * (LIMIT + 1). Under no contention B stays 0 and costs nothing.
 *
 * The retrier. An unlock that leaves waiters behind wakes the first one to
 * retry (WOKEN), and while WOKEN is set later unlocks wake nobody and stay
 * a load and a CAS. A retrier that finds the lock taken again (the owner
 * keeps barging) does not queue at once, which would clear WOKEN and make
 * the next unlock pay for another wake-up: if it is a fiber on a worker
 * with nothing else to run, it looks at the lock every couple of
 * microseconds for a short while and takes it only when two looks in a row
 * find it free with B unchanged, i.e. once the owner has stopped taking it.
 * Looking rarely keeps the lock's cache line with the owner; taking it only
 * when idle keeps the lock from bouncing between workers. (Go gets the same
 * effect from its scheduler, which leaves the woken goroutine in the
 * unlocker's run-next slot for a while.) Polling, no spinning before the
 * first wait: measured, every poll of a lock that is being taken and
 * dropped in a loop costs its owner a cache-line transfer.
 *
 * Invariants (whenever qlock is free):
 *  1. WAITERS == the queue holds a node (live or not yet unlinked).
 *  2. WAITERS and not LOCKED implies WOKEN: whoever frees the lock with
 *     waiters queued wakes one (or hands over and keeps LOCKED), so a free
 *     lock with waiters always has a retrier on the way.
 *  3. A WOKEN waiter will retry: its wait ended with OUT_RETRY (the wake
 *     won the CAS), so no deadline or cancel can take it back, and its
 *     polling ends within WEFT_MUTEX_RETRY_POLL_NS. Only it clears WOKEN.
 *  4. B is 0 whenever neither WAITERS nor WOKEN is set.
 * Unlock takes the slow path (qlock) only when WAITERS is set and either
 * nobody is WOKEN or B reached the limit; otherwise it is a load and a CAS.
 * The slow path frees the lock under qlock, as its last touch of the mutex
 * but for qlock's own unlock, so that whoever takes the mutex next may
 * destroy it (freeing first and fixing up after, as Go does, would let this
 * call touch a mutex someone else has destroyed: glibc's bug 13690).
 *
 * Ownership is tracked (m->owner) so that unlocking a mutex one does not
 * hold is -EPERM and relocking one's own is -EDEADLK.
 * Must never: let a wait end without either owning the mutex or having
 * unlinked its node, or wake nobody when freeing a lock that has waiters. */
#include <errno.h>
#include <stdlib.h>

#include "runtime/runtime.h"
#include "sched/sched.h"
#include "sched/sync.h"
#include "sched/waitq.h"

/* How long a woken retrier may watch a taken lock before queueing again,
 * and how often it looks. */
#ifndef WEFT_MUTEX_RETRY_POLL_NS
#define WEFT_MUTEX_RETRY_POLL_NS 50000
#endif
#ifndef WEFT_MUTEX_POLL_GAP_NS
#define WEFT_MUTEX_POLL_GAP_NS 2000
#endif

enum {
    M_LOCKED = 1u << 0,
    M_WAITERS = 1u << 1,
    M_WOKEN = 1u << 2,
    M_BARGE_ONE = 1u << 8,
    M_BARGE_MASK = 0xffffu << 8,
};
_Static_assert(WEFT_MUTEX_BARGE_LIMIT >= 1 && WEFT_MUTEX_BARGE_LIMIT <= 0xffff,
               "the barge count has 16 bits");

/* Wake outcomes of a mutex wait. */
enum { OUT_GRANTED = 0, OUT_RETRY = 1 };

static inline uint32_t barges(uint32_t s)
{
    return (s & M_BARGE_MASK) >> 8;
}

/* May a caller that is not the waiter whose turn it is take a free lock? */
static inline bool may_barge(uint32_t s)
{
    return !(s & (M_WAITERS | M_WOKEN)) || barges(s) < WEFT_MUTEX_BARGE_LIMIT;
}

static inline uint32_t barged(uint32_t s)
{
    uint32_t n = s | M_LOCKED;
    if (s & (M_WAITERS | M_WOKEN))
        n += M_BARGE_ONE;
    return n;
}

/* One attempt at the fast path from state *s; false (with *s reloaded) if
 * the lock is held or barging is closed. */
static inline bool try_fast(struct weft_mutex *m, uint32_t *s)
{
    while (!(*s & M_LOCKED) && may_barge(*s)) {
        /* acquire: the critical section sees what the last owner wrote
         * before its release. */
        if (atomic_compare_exchange_weak_explicit(&m->state, s, barged(*s),
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
    }
    return false;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

uint64_t weft__sync_self_id(struct weft__worker *w)
{
    struct weft__task *t = weft__task_self(w);
    if (t)
        return weft__task_handle(
            t, (uint32_t)(atomic_load_explicit(&t->state,
                                               memory_order_relaxed) >> 32));
    static _Atomic uint64_t serial;
    static __thread uint64_t id;
    if (!id)
        id = ((atomic_fetch_add_explicit(&serial, 1, memory_order_relaxed) + 1)
              << 32) | 0xffffffffu;
    return id;
}

/* Clear WAITERS if the queue emptied (and B with it, invariant 4). Under
 * qlock. */
static void update_waiters(struct weft_mutex *m)
{
    if (!weft__waitq_empty(&m->waiters))
        return;
    uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);
    uint32_t n;
    do {
        n = s & ~M_WAITERS;
        if (!(n & M_WOKEN))
            n &= ~M_BARGE_MASK;
    } while (!atomic_compare_exchange_weak_explicit(
        &m->state, &s, n, memory_order_relaxed, memory_order_relaxed));
}

/* A retrier that found the lock taken (see the top): watch it while this
 * worker has nothing else to run, and take it once it looks idle. True if
 * it was taken (WOKEN and B cleared, as lock_slow's retry does). */
static bool retry_poll(struct weft_mutex *m, struct weft__worker *w)
{
    if (!w || w->rt->nworkers == 1)
        return false; /* one worker: the owner cannot run while we look */
    uint64_t start = weft_now_ns(), next = start;
    bool seen_free = false;
    uint32_t seen_b = 0;
    for (;;) {
        uint64_t now = weft_now_ns();
        if (now >= next) {
            uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);
            if (s & M_LOCKED) {
                seen_free = false;
            } else if (!seen_free || barges(s) != seen_b) {
                seen_free = true;
                seen_b = barges(s);
            } else {
                /* acquire: as in try_fast. Clearing WOKEN without qlock is
                 * ours to do (invariant 3). */
                while (!(s & M_LOCKED))
                    if (atomic_compare_exchange_weak_explicit(
                            &m->state, &s,
                            (s | M_LOCKED) & ~(M_WOKEN | M_BARGE_MASK),
                            memory_order_acquire, memory_order_relaxed))
                        return true;
                seen_free = false;
            }
            if (now - start >= WEFT_MUTEX_RETRY_POLL_NS ||
                weft__runq_len(&w->runq) || w->pinned.head ||
                !weft__mpsc_empty(&w->inbox))
                return false;
            next = now + WEFT_MUTEX_POLL_GAP_NS;
        }
        for (int k = 0; k < 8; k++)
            cpu_relax();
    }
}

static int lock_slow(struct weft_mutex *m, struct weft__worker **w,
                     uint64_t deadline, uint32_t kind)
{
    bool retrying = false; /* woken with OUT_RETRY: our turn */
    pthread_mutex_lock(&m->qlock);
    for (;;) {
        uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);
        if (!(s & M_LOCKED) && (retrying || may_barge(s))) {
            uint32_t n = retrying
                             ? (s | M_LOCKED) & ~(M_WOKEN | M_BARGE_MASK)
                             : barged(s);
            /* acquire: as in try_fast. */
            if (atomic_compare_exchange_strong_explicit(
                    &m->state, &s, n, memory_order_acquire,
                    memory_order_relaxed)) {
                pthread_mutex_unlock(&m->qlock);
                return 0;
            }
            continue;
        }
        /* Held (or free but promised to a retrier, invariant 2): queue up.
         * Setting WAITERS with a CAS against the state we judged makes an
         * unlock that freed the lock meanwhile fail this CAS (we look
         * again) or see WAITERS (it takes qlock, which we hold until we
         * are queued). A retrier goes back to the front: it keeps its
         * turn. */
        uint32_t n = s | M_WAITERS;
        if (retrying)
            n &= ~M_WOKEN;
        if (!atomic_compare_exchange_strong_explicit(&m->state, &s, n,
                                                     memory_order_relaxed,
                                                     memory_order_relaxed))
            continue;
        struct weft__waiter *wt = weft__waiter_self(*w);
        uint32_t seq = weft__waiter_begin(wt, kind, "mutex");
        struct weft__wait_node node;
        weft__wait_node_init(&node, wt, seq, 0, NULL);
        if (retrying)
            weft__waitq_push_front(&m->waiters, &node);
        else
            weft__waitq_push(&m->waiters, &node);
        pthread_mutex_unlock(&m->qlock);
        int32_t o = weft__waiter_block(w, wt, seq, deadline);
        if (o == OUT_GRANTED)
            return 0; /* handed over: LOCKED never dropped */
        if (o == OUT_RETRY && retry_poll(m, *w))
            return 0;
        pthread_mutex_lock(&m->qlock);
        if (o == OUT_RETRY) {
            retrying = true;
            continue;
        }
        /* -ETIMEDOUT or -ECANCELED: nobody gave us anything (a grant or a
         * retry that lost the CAS went to the next waiter). */
        weft__waitq_leave(&m->waiters, &node);
        update_waiters(m);
        pthread_mutex_unlock(&m->qlock);
        return o;
    }
}

int weft__mutex_lock(struct weft_mutex *m, uint64_t me, struct weft__worker **w,
                     uint64_t deadline, uint32_t kind)
{
    /* Load, then CAS: under contention the state carries waiter bits, so
     * a blind CAS from 0 would fail and cost a second one. */
    uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);
    if (try_fast(m, &s))
        goto owned;
    if (atomic_load_explicit(&m->owner, memory_order_relaxed) == me)
        return -EDEADLK;
    int r = lock_slow(m, w, deadline, kind);
    if (r)
        return r;
owned:
    atomic_store_explicit(&m->owner, me, memory_order_relaxed);
    return 0;
}

static void unlock_slow(struct weft_mutex *m)
{
    pthread_mutex_lock(&m->qlock);
    uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);
    if (barges(s) >= WEFT_MUTEX_BARGE_LIMIT) {
        /* The head waiter's turn: hand over, LOCKED stays set so nobody
         * barges in between. The wake's acq_rel CAS carries our critical
         * section to the new owner. */
        if (weft__waitq_wake_one(&m->waiters, OUT_GRANTED)) {
            uint32_t n;
            do {
                n = s & ~M_BARGE_MASK;
                if (weft__waitq_empty(&m->waiters))
                    n &= ~M_WAITERS;
            } while (!atomic_compare_exchange_weak_explicit(
                &m->state, &s, n, memory_order_relaxed, memory_order_relaxed));
            pthread_mutex_unlock(&m->qlock);
            return;
        }
    }
    /* Free the lock and, unless a retrier is already on its way, wake the
     * head waiter to retry (invariant 2). */
    bool woke = false;
    if (!(s & M_WOKEN))
        woke = weft__waitq_wake_one(&m->waiters, OUT_RETRY) != NULL;
    uint32_t n;
    do {
        n = s & ~M_LOCKED;
        if (woke)
            n |= M_WOKEN;
        if (weft__waitq_empty(&m->waiters))
            n &= ~M_WAITERS;
        if (!(n & (M_WAITERS | M_WOKEN)))
            n &= ~M_BARGE_MASK;
        /* release: publishes the critical section to the next owner. */
    } while (!atomic_compare_exchange_weak_explicit(
        &m->state, &s, n, memory_order_release, memory_order_relaxed));
    pthread_mutex_unlock(&m->qlock);
}

int weft__mutex_unlock(struct weft_mutex *m, uint64_t me)
{
    if (atomic_load_explicit(&m->owner, memory_order_relaxed) != me)
        return -EPERM;
    atomic_store_explicit(&m->owner, 0, memory_order_relaxed);
    /* The slow path frees the lock only under qlock, as its last touch of
     * the mutex but for qlock's own unlock: so whoever takes the mutex
     * after us may destroy it as soon as they can lock qlock. (Freeing
     * first and then fixing up, as Go does, would leave this call touching
     * the mutex after someone else could have destroyed it.) */
    uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);
    for (;;) {
        if ((s & M_WAITERS) &&
            (!(s & M_WOKEN) || barges(s) >= WEFT_MUTEX_BARGE_LIMIT)) {
            unlock_slow(m);
            return 0;
        }
        uint32_t n = s & ~M_LOCKED;
        if (!(n & (M_WAITERS | M_WOKEN)))
            n &= ~M_BARGE_MASK;
        /* release: publishes the critical section to the next owner. */
        if (atomic_compare_exchange_weak_explicit(&m->state, &s, n,
                                                  memory_order_release,
                                                  memory_order_relaxed))
            return 0;
    }
}

/* ---- The API ---------------------------------------------------------------- */

static bool valid(const struct weft_mutex *m, const char *fn)
{
    if (weft__tag_ok(m, WEFT__TAG_MUTEX))
        return true;
    weft__misuse(fn, "not a live mutex");
    return false;
}

WEFT_API int weft_mutex_create(weft_mutex_t **mutex)
{
    if (!mutex) {
        weft__misuse("weft_mutex_create", "mutex is NULL");
        return -EINVAL;
    }
    struct weft_mutex *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    atomic_init(&m->state, 0);
    atomic_init(&m->owner, 0);
    pthread_mutex_init(&m->qlock, NULL);
    weft__waitq_init(&m->waiters);
    m->tag = WEFT__TAG_MUTEX;
    *mutex = m;
    return 0;
}

WEFT_API int weft_mutex_destroy(weft_mutex_t *m)
{
    if (!valid(m, "weft_mutex_destroy"))
        return -EINVAL;
    pthread_mutex_lock(&m->qlock);
    uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);
    if ((s & (M_LOCKED | M_WAITERS | M_WOKEN)) ||
        weft__waitq_busy(&m->waiters)) {
        pthread_mutex_unlock(&m->qlock);
        return -EBUSY;
    }
    m->tag = WEFT__TAG_DEAD;
    pthread_mutex_unlock(&m->qlock);
    pthread_mutex_destroy(&m->qlock);
    free(m);
    return 0;
}

static int mutex_lock(struct weft_mutex *m, uint64_t deadline, const char *fn)
{
    if (!valid(m, fn))
        return -EINVAL;
    struct weft__worker *w = weft__worker_self();
    int r = weft__mutex_lock(m, weft__sync_self_id(w), &w, deadline,
                             WAIT_DIRECT);
    if (r == -EDEADLK)
        weft__misuse(fn, "the caller already owns the mutex");
    return r;
}

WEFT_API int weft_mutex_lock(weft_mutex_t *m)
{
    return mutex_lock(m, UINT64_MAX, "weft_mutex_lock");
}

WEFT_API int weft_mutex_lock_until(weft_mutex_t *m, uint64_t deadline_ns)
{
    return mutex_lock(m, deadline_ns, "weft_mutex_lock_until");
}

WEFT_API int weft_mutex_trylock(weft_mutex_t *m)
{
    if (!valid(m, "weft_mutex_trylock"))
        return -EINVAL;
    uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);
    if (!try_fast(m, &s))
        return -EAGAIN;
    atomic_store_explicit(&m->owner, weft__sync_self_id(weft__worker_self()),
                          memory_order_relaxed);
    return 0;
}

WEFT_API int weft_mutex_unlock(weft_mutex_t *m)
{
    if (!valid(m, "weft_mutex_unlock"))
        return -EINVAL;
    int r = weft__mutex_unlock(m, weft__sync_self_id(weft__worker_self()));
    if (r == -EPERM)
        weft__misuse("weft_mutex_unlock", "the caller does not own the mutex");
    return r;
}
