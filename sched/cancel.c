/* sched/cancel.c: cancelling tasks through the API. Entry points:
 * weft_cancel, weft_cancelled, weft__cancel_live.
 *
 * A cancel is a one-shot request delivered by the wait protocol
 * (sched/wait.c, weft__task_cancel): the task's current cancellable wait,
 * or its next one, returns -ECANCELED. On top of it this file adds two
 * things: TASK_CANCELLED in the state word, a sticky mark that lets groups
 * tell a cancelled child (which then returns -ECANCELED) from a failed one,
 * and the reach of a cancel into the groups the task created (group.c).
 *
 * A handle may go stale while we cancel through it: the task may finish,
 * be joined and freed, and its descriptor reused by a new task, which must
 * never receive our cancel. So weft_cancel pins the descriptor (join.c, P1):
 * under the task's stripe lock it CASes CANCEL_PIN in, which succeeds only
 * while the handle's generation is current and the task unfinished, and
 * whoever frees the descriptor waits for that lock.
 * Must never: deliver a cancel to a task other than the one the handle
 * names, or block while pinning (the stripe lock is held for the delivery
 * only). */
#include <errno.h>

#include "runtime/runtime.h"
#include "sched/coord.h"
#include "sched/sched.h"

void weft__cancel_live(struct weft__runtime *rt, struct weft__task *t)
{
    /* Release: the task reads the mark (acquire) after its wait reported
     * the cancel that follows. */
    uint64_t st = atomic_fetch_or_explicit(&t->state, TASK_CANCELLED,
                                           memory_order_release);
    weft__task_cancel(rt, t);
    if (st & TASK_OWNS_GROUPS)
        weft__groups_cancel_owned(rt, t);
}

WEFT_API int weft_cancel(weft_task_t task)
{
    struct weft__runtime *rt = weft__runtime();
    if (!rt)
        return -ESRCH;
    struct weft__task *t = weft__task_lookup(rt, task.id_);
    if (!t) {
        weft__misuse("weft_cancel", "not a task handle (zero, or never "
                                    "issued)");
        return -EINVAL;
    }
    pthread_mutex_t *l = weft__task_lock(t);
    pthread_mutex_lock(l);
    uint64_t st = atomic_load_explicit(&t->state, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(st >> 32) != (uint32_t)(task.id_ >> 32) ||
            !(st & TASK_LIVE)) {
            pthread_mutex_unlock(l);
            weft__misuse("weft_cancel", "a spent handle: the task was "
                                        "joined, or detached and finished");
            return -EINVAL;
        }
        if (st & TASK_FINISHED) {
            pthread_mutex_unlock(l);
            return 0; /* nothing left to cancel */
        }
        /* acq_rel: the pin must be in the word before any freer reads it
         * (P1); CANCELLED rides along, published to the task the same way
         * weft__cancel_live's is. */
        if (atomic_compare_exchange_weak_explicit(
                &t->state, &st, st | TASK_CANCEL_PIN | TASK_CANCELLED,
                memory_order_acq_rel, memory_order_acquire))
            break;
    }
    weft__task_cancel(rt, t);
    if (st & TASK_OWNS_GROUPS)
        weft__groups_cancel_owned(rt, t);
    /* Release: a freer that sees the pin gone (acquire) is ordered after
     * every access above. */
    atomic_fetch_and_explicit(&t->state, ~(uint64_t)TASK_CANCEL_PIN,
                              memory_order_release);
    pthread_mutex_unlock(l);
    return 0;
}

WEFT_API int weft_cancelled(void)
{
    struct weft__task *t = weft__task_self(weft__worker_self());
    if (!t) {
        weft__misuse("weft_cancelled", "called from a plain thread, not a "
                                       "fiber");
        return -EPERM;
    }
    uint64_t st = atomic_load_explicit(&t->state, memory_order_acquire);
    return (st & TASK_CANCELLED) ||
           atomic_load_explicit(&t->cancel, memory_order_relaxed) != 0;
}
