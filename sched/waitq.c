/* sched/waitq.c: the intrusive wait queue and the value hand-off (see
 * waitq.h for the contract). Entry points: weft__waitq_*, weft__wait_node_*.
 * Must never: touch a node after the wake that ended its wait (other than
 * weft__wait_node_done), or take a lock of its own. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "sched/sched.h"
#include "sched/waitq.h"

void weft__waitq_push(struct weft__waitq *q, struct weft__wait_node *n)
{
    WEFT_ASSERT(!n->linked);
    n->next = NULL;
    n->prev = q->tail;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    n->linked = true;
    q->len++;
    q->waits++;
}

void weft__waitq_push_front(struct weft__waitq *q, struct weft__wait_node *n)
{
    WEFT_ASSERT(!n->linked);
    n->prev = NULL;
    n->next = q->head;
    if (q->head)
        q->head->prev = n;
    else
        q->tail = n;
    q->head = n;
    n->linked = true;
    q->len++;
    q->waits++;
}

static void unlink_node(struct weft__waitq *q, struct weft__wait_node *n)
{
    WEFT_ASSERT(n->linked);
    if (n->prev)
        n->prev->next = n->next;
    else
        q->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        q->tail = n->prev;
    n->next = n->prev = NULL;
    n->linked = false;
    q->len--;
}

struct weft__wait_node *weft__waitq_pop(struct weft__waitq *q)
{
    struct weft__wait_node *n = q->head;
    if (n)
        unlink_node(q, n);
    return n;
}

bool weft__waitq_wake(struct weft__waitq *q, struct weft__wait_node *n,
                      int32_t outcome)
{
    WEFT_ASSERT(!n->linked && q->waits > 0);
    if (!weft__waiter_wake(n->waiter, n->seq, outcome))
        return false;
    q->waits--;
    return true;
}

void weft__waitq_leave(struct weft__waitq *q, struct weft__wait_node *n)
{
    WEFT_ASSERT(q->waits > 0);
    if (n->linked)
        unlink_node(q, n);
    q->waits--;
}

struct weft__wait_node *weft__waitq_wake_one(struct weft__waitq *q,
                                             int32_t outcome)
{
    struct weft__wait_node *n;
    while ((n = weft__waitq_pop(q)))
        if (weft__waitq_wake(q, n, outcome))
            return n;
    return NULL;
}

size_t weft__waitq_wake_all(struct weft__waitq *q, int32_t outcome)
{
    size_t woken = 0;
    struct weft__wait_node *n;
    while ((n = weft__waitq_pop(q)))
        woken += weft__waitq_wake(q, n, outcome);
    return woken;
}

int32_t weft__waitq_wait(struct weft__waitq *q, pthread_mutex_t *lock,
                         struct weft__wait_node *n, bool front,
                         struct weft__worker **w, uint32_t kind,
                         const char *what, uint64_t deadline, uint32_t tag,
                         void *data)
{
    struct weft__waiter *wt = weft__waiter_self(*w);
    uint32_t seq = weft__waiter_begin(wt, kind, what);
    weft__wait_node_init(n, wt, seq, tag, data);
    if (front)
        weft__waitq_push_front(q, n);
    else
        weft__waitq_push(q, n);
    pthread_mutex_unlock(lock);
    int32_t r = weft__waiter_block(w, wt, seq, deadline);
    if (r == -ETIMEDOUT || r == -ECANCELED) {
        /* Not ended by a waker (their outcomes are never these two), so
         * the node may still be queued; a waker that popped it and lost
         * the wake already unlinked it. */
        pthread_mutex_lock(lock);
        weft__waitq_leave(q, n);
        pthread_mutex_unlock(lock);
    }
    return r;
}

/* ---- The value hand-off ---------------------------------------------------- */

enum { HANDOFF_COPYING = 0, HANDOFF_DONE = 1, HANDOFF_SLEEPING = 2 };

static long futex(_Atomic uint32_t *addr, int op, uint32_t val)
{
    return syscall(SYS_futex, (uint32_t *)addr, op, val, NULL, NULL, 0);
}

void weft__wait_node_done(struct weft__wait_node *n)
{
    /* release: the copy made before is visible to the waiter's acquire in
     * await. After this exchange n may be gone: the futex call only names
     * its address, which the kernel hashes and never dereferences (a stale
     * wake of an unrelated futex waiter there would be spurious, which
     * futex users tolerate). */
    if (atomic_exchange_explicit(&n->done, HANDOFF_DONE,
                                 memory_order_release) == HANDOFF_SLEEPING)
        futex(&n->done, FUTEX_WAKE_PRIVATE, INT_MAX);
}

void weft__wait_node_await(struct weft__wait_node *n)
{
    /* acquire: pairs with done's release, so the waker's copy is seen. */
    uint32_t d = atomic_load_explicit(&n->done, memory_order_acquire);
    if (d == HANDOFF_DONE)
        return;
    /* The waker is between its wake and its copy's end, on another thread
     * that holds no lock we need: a short sleep (a worker thread blocks
     * here the way it would on a briefly held mutex). */
    uint32_t expected = HANDOFF_COPYING;
    atomic_compare_exchange_strong_explicit(&n->done, &expected,
                                            HANDOFF_SLEEPING,
                                            memory_order_acquire,
                                            memory_order_acquire);
    while (atomic_load_explicit(&n->done, memory_order_acquire) !=
           HANDOFF_DONE)
        futex(&n->done, FUTEX_WAIT_PRIVATE, HANDOFF_SLEEPING);
}
