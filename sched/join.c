/* sched/join.c: the end of a task's life: its result reaching the one
 * joiner, or nobody (detached). Entry points: weft_join, weft_detach,
 * weft__task_finished.
 *
 * The task's state word is (gen << 32 | TASK_* flags). Every transition is a
 * CAS or fetch_or on the whole word, so a handle whose generation is stale
 * never changes a descriptor that was reused. The descriptor is freed by
 * whoever completes the pair {FINISHED, CLAIMED-and-read or DETACHED}:
 *  1. finish: fetch_or FINISHED. If DETACHED was set: free. If the joiner
 *     was blocked (JOIN_WAITING): wake it.
 *  2. join: CAS CLAIMED in (fails on stale, detached or claimed handles). If
 *     not FINISHED: record the waiter, fetch_or JOIN_WAITING; if FINISHED
 *     came first, do not block. Then read the result and free.
 *  3. detach: CAS DETACHED in; if FINISHED was already set, free.
 * A join whose wait is cancelled (or hits its deadline) gives the claim
 * back, so the handle can still be joined or detached.
 * Must never: free a descriptor the finisher may still read, or let two
 * joiners both succeed. */
#include <errno.h>

#include "runtime/runtime.h"
#include "sched/sched.h"

void weft__task_finished(struct weft__runtime *rt, struct weft__worker *w,
                         struct weft__task *t)
{
    /* acq_rel: the result written before is visible to the joiner that
     * sees FINISHED; the joiner's waiter fields are visible to us. */
    uint64_t old =
        atomic_fetch_or_explicit(&t->state, TASK_FINISHED, memory_order_acq_rel);
    if (old & TASK_DETACHED)
        weft__task_free(rt, w, t);
    else if (old & TASK_JOIN_WAITING)
        weft__waiter_wake(t->joiner, t->joiner_seq, 0);
}

/* The descriptor a handle names if the handle is current, else NULL. */
static struct weft__task *resolve(struct weft__runtime *rt, weft_task_t h,
                                  uint64_t *state)
{
    struct weft__task *t = weft__task_lookup(rt, h.id_);
    if (!t)
        return NULL;
    uint64_t st = atomic_load_explicit(&t->state, memory_order_acquire);
    if ((uint32_t)(st >> 32) != (uint32_t)(h.id_ >> 32) || !(st & TASK_LIVE))
        return NULL;
    *state = st;
    return t;
}

WEFT_API intptr_t weft_join(weft_task_t task)
{
    struct weft__runtime *rt = weft__runtime();
    if (!rt)
        return -ESRCH;
    uint64_t st;
    struct weft__task *t = resolve(rt, task, &st);
    if (!t) {
        weft__misuse("weft_join", "not a live task handle (zero, already "
                                  "joined, or detached and finished)");
        return -EINVAL;
    }
    struct weft__worker *w = weft__worker_self();
    if (t == weft__task_self(w)) {
        weft__misuse("weft_join", "a task cannot join itself");
        return -EINVAL;
    }
    for (;;) {
        if ((uint32_t)(st >> 32) != (uint32_t)(task.id_ >> 32) ||
            !(st & TASK_LIVE) || (st & (TASK_CLAIMED | TASK_DETACHED))) {
            weft__misuse("weft_join", "the handle was already joined or "
                                      "detached");
            return -EINVAL;
        }
        if (atomic_compare_exchange_weak_explicit(
                &t->state, &st, st | TASK_CLAIMED, memory_order_acq_rel,
                memory_order_acquire))
            break;
    }
    if (!(st & TASK_FINISHED)) {
        struct weft__waiter *wt = weft__waiter_self(w);
        uint32_t seq = weft__waiter_begin(wt, WAIT_DIRECT, "join");
        t->joiner = wt;
        t->joiner_seq = seq;
        /* acq_rel: publishes joiner/joiner_seq to the finisher (step 2). */
        uint64_t old = atomic_fetch_or_explicit(&t->state, TASK_JOIN_WAITING,
                                                memory_order_acq_rel);
        if (old & TASK_FINISHED)
            weft__waiter_wake(wt, seq, 0);
        int32_t r = weft__waiter_block(&w, wt, seq, UINT64_MAX);
        if (r < 0) {
            atomic_fetch_and_explicit(&t->state,
                                      ~(uint64_t)(TASK_CLAIMED |
                                                  TASK_JOIN_WAITING),
                                      memory_order_acq_rel);
            return r;
        }
    }
    intptr_t result = t->result;
    weft__task_free(rt, w, t);
    return result;
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
        if ((uint32_t)(st >> 32) != (uint32_t)(task.id_ >> 32) ||
            !(st & TASK_LIVE) || (st & (TASK_CLAIMED | TASK_DETACHED))) {
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
        weft__task_free(rt, weft__worker_self(), t);
    return 0;
}
