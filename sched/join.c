/* sched/join.c: the end of a task's life: its result reaching its joiner,
 * its watchers (wait_any, gather) and its group, or nobody (detached).
 * Entry points: weft_join, weft_join_until, weft_detach,
 * weft__task_finished, and the watcher and claimed-join calls of
 * sched/coord.h.
 *
 * The task's state word is (gen << 32 | TASK_* flags). Every transition is a
 * CAS or fetch_or on the whole word, so a handle whose generation is stale
 * never changes a descriptor that was reused. The descriptor is freed by
 * whoever completes the pair {FINISHED, CLAIMED-and-read or DETACHED}:
 *  1. finish: tell the group (group.c) and the watchers, then CAS FINISHED
 *     in. If DETACHED was set: free. If the joiner was blocked
 *     (JOIN_WAITING): wake it, through the joiner fields read before the
 *     CAS (after it, the descriptor may already be freed by someone else).
 *     Those fields and the CAS are read and done under the stripe lock,
 *     which a joiner giving up its wait also takes to clear JOIN_WAITING:
 *     otherwise a joiner could give up, claim again and block anew between
 *     our read and our CAS, leaving the word as it was (ABA) and us waking
 *     its old wait.
 *  2. join: CAS CLAIMED in (fails on stale, detached or claimed handles). If
 *     not FINISHED: record the waiter, fetch_or JOIN_WAITING; if FINISHED
 *     came first, do not block. Then read the result and free.
 *  3. detach: CAS DETACHED in; if FINISHED was already set, free.
 * A join whose wait is cancelled (or hits its deadline) gives the claim
 * back, so the handle can still be joined or detached.
 *
 * Watchers (the common single joiner never uses them, so spawn+join stays
 * lock-free): a task's extra watchers hang off its entry beside the
 * descriptor (task_ext.c) under its stripe lock, one of STRIPES mutexes
 * picked by the task's index.
 *  W1. A watcher is added under the stripe lock, with a CAS that sets
 *      WATCHED only if the generation matches and FINISHED is not set.
 *  W2. The finisher, seeing WATCHED, takes the stripe lock, calls and
 *      unlinks every watcher, and only then sets FINISHED, still under the
 *      lock. So no watcher is added after the finisher looked (W1 fails on
 *      FINISHED), and nobody frees the descriptor while a watcher runs (a
 *      freer must first see FINISHED).
 *  W3. A watcher's owner unlinks it under the same lock if it is still
 *      linked; a linked watcher means an unfinished, hence live, task.
 * weft_cancel's pin (sched/cancel.c): to cancel through a handle, the
 * canceller takes the stripe lock and CASes CANCEL_PIN in, which needs a
 * live generation and FINISHED unset; it clears the pin before it unlocks.
 *  P1. Whoever frees a descriptor first reads a state word that has
 *      FINISHED; a pin in it may belong to a canceller still at work, so
 *      the freer takes and drops the stripe lock, which the canceller holds
 *      until its work is done. A pin cannot appear after FINISHED.
 * Must never: free a descriptor the finisher, a watcher or a canceller may
 * still read, or let two joiners both succeed. */
#include <errno.h>

#include "runtime/runtime.h"
#include "sched/coord.h"
#include "sched/sched.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define STRIPES 64u

static struct stripe {
    _Alignas(64) pthread_mutex_t lock;
} stripes[STRIPES] = {[0 ... STRIPES - 1] = {PTHREAD_MUTEX_INITIALIZER}};

pthread_mutex_t *weft__task_lock(struct weft__task *t)
{
    return &stripes[t->index % STRIPES].lock;
}

static inline uint32_t gen_of(uint64_t word)
{
    return (uint32_t)(word >> 32);
}

/* Free a finished task whose claim or detach we completed. st: its state
 * word, read at or after FINISHED was set (P1). */
static void release(struct weft__runtime *rt, struct weft__worker *w,
                    struct weft__task *t, uint64_t st)
{
    if (unlikely(st & TASK_CANCEL_PIN)) {
        pthread_mutex_t *l = weft__task_lock(t);
        pthread_mutex_lock(l);
        pthread_mutex_unlock(l);
    }
    weft__task_free(rt, w, t);
}

/* W2: call every watcher and unlink it. Stripe lock held. */
static void notify_watchers(struct weft__task *t)
{
    struct weft__task_ext *x = weft__task_ext_get(t);
    struct weft__watch *wa;
    while ((wa = x->watchers) != NULL) {
        x->watchers = wa->next;
        if (wa->next)
            wa->next->prev = NULL;
        wa->linked = false;
        /* Last touch of wa: fn may wake its owner, whose memory it is. */
        wa->fn(wa, t);
    }
}

/* Step 1: set FINISHED; returns the word before. *joiner and *seq receive
 * the joiner's waiter if JOIN_WAITING was set. */
static uint64_t finish(struct weft__task *t, struct weft__waiter **joiner,
                       uint32_t *seq)
{
    pthread_mutex_t *locked = NULL;
    /* Acquire: a JOIN_WAITING seen here comes with the joiner fields the
     * joiner wrote before setting it. */
    uint64_t st = atomic_load_explicit(&t->state, memory_order_acquire);
    for (;;) {
        if (unlikely(st & (TASK_WATCHED | TASK_JOIN_WAITING)) && !locked) {
            locked = weft__task_lock(t);
            pthread_mutex_lock(locked);
            /* Under the lock WATCHED can no longer appear (W1): look at
             * the word as it is now, once. */
            st = atomic_load_explicit(&t->state, memory_order_acquire);
            if (st & TASK_WATCHED)
                notify_watchers(t);
            continue;
        }
        if (st & TASK_JOIN_WAITING) {
            *joiner = t->joiner;
            *seq = t->joiner_seq;
        }
        /* acq_rel: the result written before is visible to whoever sees
         * FINISHED; a failed CAS rereads the word with the same guarantee
         * as the load above. */
        if (atomic_compare_exchange_weak_explicit(&t->state, &st,
                                                  st | TASK_FINISHED,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    if (locked)
        pthread_mutex_unlock(locked);
    return st;
}

void weft__task_finished(struct weft__runtime *rt, struct weft__worker *w,
                         struct weft__task *t)
{
    uint64_t st = atomic_load_explicit(&t->state, memory_order_relaxed);
    if (unlikely(st & (TASK_OWNS_GROUPS | TASK_IN_GROUP))) {
        if (st & TASK_OWNS_GROUPS)
            weft__group_owner_finished(t);
        if (st & TASK_IN_GROUP)
            weft__group_child_finished(rt, t);
    }
    struct weft__waiter *joiner = NULL;
    uint32_t seq = 0;
    uint64_t old = finish(t, &joiner, &seq);
    if (old & TASK_DETACHED)
        release(rt, w, t, old | TASK_FINISHED);
    else if (old & TASK_JOIN_WAITING)
        weft__waiter_wake(joiner, seq, 0);
}

/* The descriptor a handle names if the handle is current, else NULL. */
static struct weft__task *resolve(struct weft__runtime *rt, weft_task_t h,
                                  uint64_t *state)
{
    struct weft__task *t = weft__task_lookup(rt, h.id_);
    if (!t)
        return NULL;
    uint64_t st = atomic_load_explicit(&t->state, memory_order_acquire);
    if (gen_of(st) != (uint32_t)(h.id_ >> 32) || !(st & TASK_LIVE))
        return NULL;
    *state = st;
    return t;
}

/* weft__task_claim, inlined into join: spawn+join is a hot path. */
static inline int claim(struct weft__runtime *rt, struct weft__worker *w,
                        weft_task_t task, const char *fn,
                        struct weft__task **out)
{
    uint64_t st;
    struct weft__task *t = resolve(rt, task, &st);
    if (!t) {
        weft__misuse(fn, "not a live task handle (zero, already joined, or "
                         "detached and finished)");
        return -EINVAL;
    }
    struct weft__task *self = weft__task_self(w);
    if (t == self) {
        weft__misuse(fn, "a task cannot join itself");
        return -EINVAL;
    }
    for (;;) {
        if (gen_of(st) != (uint32_t)(task.id_ >> 32) || !(st & TASK_LIVE) ||
            (st & (TASK_CLAIMED | TASK_DETACHED))) {
            weft__misuse(fn, "the handle was already joined or detached");
            return -EINVAL;
        }
        if (atomic_compare_exchange_weak_explicit(
                &t->state, &st, st | TASK_CLAIMED, memory_order_acq_rel,
                memory_order_acquire))
            break;
    }
    /* The group rule, checked once the claim keeps t from being freed. */
    if (unlikely(st & TASK_IN_GROUP) && self &&
        !weft__group_may_join(self, t)) {
        weft__task_unclaim(t);
        weft__misuse(fn, "the task is a child of another group, which this "
                         "task neither belongs to nor created");
        return -EPERM;
    }
    *out = t;
    return 0;
}

int weft__task_claim(struct weft__runtime *rt, struct weft__worker *w,
                     weft_task_t task, const char *fn, struct weft__task **out)
{
    return claim(rt, w, task, fn, out);
}

void weft__task_unclaim(struct weft__task *t)
{
    /* acq_rel: whoever claims next sees what we saw. */
    atomic_fetch_and_explicit(&t->state, ~(uint64_t)TASK_CLAIMED,
                              memory_order_acq_rel);
}

/* weft__join_claimed, inlined into join. */
static inline int join_claimed(struct weft__runtime *rt,
                               struct weft__worker **wp, struct weft__task *t,
                               uint32_t kind, uint64_t deadline,
                               intptr_t *result)
{
    uint64_t st = atomic_load_explicit(&t->state, memory_order_acquire);
    if (!(st & TASK_FINISHED)) {
        struct weft__waiter *wt = weft__waiter_self(*wp);
        uint32_t seq = weft__waiter_begin(wt, kind, "join");
        t->joiner = wt;
        t->joiner_seq = seq;
        /* acq_rel: publishes joiner/joiner_seq to the finisher (step 2). */
        uint64_t old = atomic_fetch_or_explicit(&t->state, TASK_JOIN_WAITING,
                                                memory_order_acq_rel);
        if (old & TASK_FINISHED)
            weft__waiter_wake(wt, seq, 0);
        int32_t r = weft__waiter_block(
            wp, wt, seq, kind == WAIT_UNCANCELLABLE ? UINT64_MAX : deadline);
        if (r < 0) {
            /* Step 1's lock: never between the finisher's read of the
             * joiner fields and its CAS. acq_rel: orders our withdrawal
             * with that CAS; if it came first, its wake failed on the seq
             * and the task simply stays finished for the next join. */
            pthread_mutex_t *l = weft__task_lock(t);
            pthread_mutex_lock(l);
            atomic_fetch_and_explicit(&t->state,
                                      ~(uint64_t)TASK_JOIN_WAITING,
                                      memory_order_acq_rel);
            pthread_mutex_unlock(l);
            return r;
        }
        st = atomic_load_explicit(&t->state, memory_order_acquire);
    }
    if (result)
        *result = t->result;
    release(rt, *wp, t, st);
    return 0;
}

int weft__join_claimed(struct weft__runtime *rt, struct weft__worker **wp,
                       struct weft__task *t, uint32_t kind, uint64_t deadline,
                       intptr_t *result)
{
    return join_claimed(rt, wp, t, kind, deadline, result);
}

static inline int join(weft_task_t task, uint64_t deadline, intptr_t *result,
                       const char *fn)
{
    struct weft__runtime *rt = weft__runtime();
    if (!rt)
        return -ESRCH;
    struct weft__worker *w = weft__worker_self();
    struct weft__task *t;
    int r = claim(rt, w, task, fn, &t);
    if (r < 0)
        return r;
    r = join_claimed(rt, &w, t, WAIT_DIRECT, deadline, result);
    if (r < 0)
        weft__task_unclaim(t);
    return r;
}

WEFT_API intptr_t weft_join(weft_task_t task)
{
    intptr_t result = 0;
    int r = join(task, UINT64_MAX, &result, "weft_join");
    return r < 0 ? r : result;
}

WEFT_API int weft_join_until(weft_task_t task, uint64_t deadline_ns,
                             intptr_t *result)
{
    return join(task, deadline_ns, result, "weft_join_until");
}

WEFT_API int weft_detach(weft_task_t task)
{
    struct weft__runtime *rt = weft__runtime();
    if (!rt)
        return -ESRCH;
    uint64_t st;
    struct weft__task *t = resolve(rt, task, &st);
    if (!t) {
        weft__misuse("weft_detach", "not a live task handle");
        return -EINVAL;
    }
    for (;;) {
        if (gen_of(st) != (uint32_t)(task.id_ >> 32) || !(st & TASK_LIVE) ||
            (st & (TASK_CLAIMED | TASK_DETACHED))) {
            weft__misuse("weft_detach", "the handle was already joined or "
                                        "detached");
            return -EINVAL;
        }
        if (atomic_compare_exchange_weak_explicit(
                &t->state, &st, st | TASK_DETACHED, memory_order_acq_rel,
                memory_order_acquire))
            break;
    }
    if (st & TASK_FINISHED)
        release(rt, weft__worker_self(), t, st);
    return 0;
}

/* ---- Watchers ------------------------------------------------------------- */

static void link_watch(struct weft__task *t, struct weft__task_ext *x,
                       struct weft__watch *wa)
{
    wa->task = t;
    wa->prev = NULL;
    wa->next = x->watchers;
    if (wa->next)
        wa->next->prev = wa;
    x->watchers = wa;
    wa->linked = true;
}

/* W1, stripe lock held; t's entry exists. expect_gen: the generation the
 * caller's handle names. */
static int watch_locked(struct weft__task *t, uint32_t expect_gen,
                        bool refuse_detached, struct weft__watch *wa)
{
    uint64_t st = atomic_load_explicit(&t->state, memory_order_acquire);
    for (;;) {
        if (gen_of(st) != expect_gen || !(st & TASK_LIVE) ||
            (refuse_detached && (st & TASK_DETACHED)))
            return -EINVAL;
        if (st & TASK_FINISHED)
            return 1;
        if (st & TASK_WATCHED)
            break;
        /* acq_rel: the finisher that sees WATCHED takes the lock we hold,
         * so it sees the link we are about to make. */
        if (atomic_compare_exchange_weak_explicit(
                &t->state, &st, st | TASK_WATCHED, memory_order_acq_rel,
                memory_order_acquire))
            break;
    }
    link_watch(t, weft__task_ext_get(t), wa);
    return 0;
}

int weft__task_watch(struct weft__runtime *rt, weft_task_t h,
                     struct weft__watch *wa)
{
    struct weft__task *t = weft__task_lookup(rt, h.id_);
    if (!t)
        return -EINVAL;
    /* Made before the bit that tells the finisher to read it. */
    if (!weft__task_ext(t))
        return -ENOMEM;
    pthread_mutex_t *l = weft__task_lock(t);
    pthread_mutex_lock(l);
    int r = watch_locked(t, (uint32_t)(h.id_ >> 32), true, wa);
    pthread_mutex_unlock(l);
    return r;
}

int weft__task_watch_claimed(struct weft__task *t, struct weft__watch *wa)
{
    pthread_mutex_t *l = weft__task_lock(t);
    pthread_mutex_lock(l);
    uint32_t gen =
        gen_of(atomic_load_explicit(&t->state, memory_order_relaxed));
    int r = watch_locked(t, gen, false, wa);
    pthread_mutex_unlock(l);
    return r;
}

void weft__task_unwatch(struct weft__watch *wa)
{
    /* W3: wa->task is only read here, under the lock, if wa is linked; the
     * lock is found from the task, which a linked watcher keeps alive, and
     * once unlinked under that lock it stays unlinked. */
    struct weft__task *t = wa->task;
    pthread_mutex_t *l = weft__task_lock(t);
    pthread_mutex_lock(l);
    if (wa->linked) {
        if (wa->prev)
            wa->prev->next = wa->next;
        else
            weft__task_ext_get(t)->watchers = wa->next;
        if (wa->next)
            wa->next->prev = wa->prev;
        wa->linked = false;
    }
    pthread_mutex_unlock(l);
}
