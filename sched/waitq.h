/* sched/waitq.h: an intrusive FIFO of blocked waiters, for every object that
 * fibers and threads wait on (channels, locks, events, futures...), and the
 * hand-off rule for values that a wake carries.
 *
 * Contract:
 *  - A queue belongs to one object and is guarded by that object's lock
 *    (the caller's); nothing here locks, allocates or blocks, except
 *    weft__wait_node_await, which may wait a few instructions' time for a
 *    waker on another thread (see below).
 *  - A node lives in the waiting call's frame (a fiber's stack is fine) and
 *    carries one wait of the wait protocol (sched/wait.c): (waiter, seq).
 *    Several nodes may carry the same (waiter, seq): a wait on several
 *    objects (select) has one node on each; the first wake wins.
 *  - Wakers unlink a node before they wake it (weft__waitq_pop, then
 *    weft__waitq_wake), so that after a successful wake the waiter never
 *    needs the object again, and a waiter whose wait ended some other way
 *    (-ETIMEDOUT, -ECANCELED: block returned one of those) takes the lock
 *    and calls weft__waitq_leave, which unlinks its node if it is still
 *    linked. Wake outcomes chosen by an object must therefore never be
 *    -ETIMEDOUT or -ECANCELED.
 *  - `waits` counts the waits that may still touch the object: queued, or
 *    ended by deadline or cancel but not yet gone through leave. A
 *    successful wake ends that (the woken waiter never touches the object
 *    again); leave ends it for the others. An object's destroy refuses
 *    while it is not zero (weft__waitq_busy), so even a waiter that timed
 *    out and is about to take the lock again keeps the object alive. (A
 *    woken waiter that does come back, as the mutex's retrier does, must
 *    be kept in sight by its object some other way: the mutex's WOKEN.)
 *  - Once a wake succeeded the waker must not touch the node again, except
 *    through weft__wait_node_done: the waiter may return and its frame be
 *    gone.
 *
 * The hand-off rule for values (a channel item): a value counts as moved
 * only if the wake that carries it succeeds, and a wait that ended some
 * other way must find the caller's buffer untouched. Two ways to do it:
 *  - Small values: the waker writes the value into the node's scratch
 *    before the wake (the waiter copies it out once its wait returns
 *    success; a failed wake leaves only the scratch dirty). Taking a value
 *    from a blocked waiter, the waker copies it into a buffer of its own
 *    before the wake: the waiter cannot leave while the waker holds the
 *    object's lock, so its buffer stays valid until then.
 *  - Values too big for scratch: the waker wakes first, copies second (into
 *    or out of the waiter's own buffer), and then calls
 *    weft__wait_node_done(node); the waiter calls
 *    weft__wait_node_await(node) before it reads its buffer (or lets the
 *    caller reuse the buffer it sent from). The waker does all of it under
 *    the object's lock, never switches in between, and is usually done long
 *    before the woken fiber runs: await is then one load. If the waiter gets
 *    there first (it was resumed on another thread while the waker was
 *    still copying), it sleeps on a futex on `done` until the waker's
 *    exchange (a thread in glibc's mutex does the same on its lock word). */
#ifndef WEFT_SCHED_WAITQ_H
#define WEFT_SCHED_WAITQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/runtime.h"

/* Bytes of a value a waker can hand over inside the node. */
#define WEFT__WAIT_SCRATCH 32

struct weft__wait_node {
    /* Queue links and membership: guarded by the owning object's lock. */
    struct weft__wait_node *next, *prev;
    bool linked;
    /* The wait this node carries; fixed while linked. */
    struct weft__waiter *waiter;
    uint32_t seq;
    /* The owning object's own fields, free for it to use: a channel keeps
     * the item pointer and the select case here. Fixed while linked. */
    uint32_t tag;
    void *data;
    /* The value hand-off (see above): 0 while the waker copies, 1 when it
     * is done, 2 when the waiter sleeps on it. */
    _Atomic uint32_t done;
    /* Small values handed over before the wake. */
    _Alignas(16) unsigned char scratch[WEFT__WAIT_SCRATCH];
};

struct weft__waitq {
    struct weft__wait_node *head, *tail;
    size_t len;   /* linked nodes */
    size_t waits; /* waits that may still touch the object (see above) */
};

static inline void weft__waitq_init(struct weft__waitq *q)
{
    q->head = q->tail = NULL;
    q->len = q->waits = 0;
}

/* No node is linked (waiters that timed out may still have to leave). */
static inline bool weft__waitq_empty(const struct weft__waitq *q)
{
    return q->head == NULL;
}

/* Some wait may still touch the object: destroying it now would free
 * memory in use. */
static inline bool weft__waitq_busy(const struct weft__waitq *q)
{
    return q->waits != 0;
}

/* Fill in a node for the wait (wt, seq) before it is queued. */
static inline void weft__wait_node_init(struct weft__wait_node *n,
                                        struct weft__waiter *wt, uint32_t seq,
                                        uint32_t tag, void *data)
{
    n->next = n->prev = NULL;
    n->linked = false;
    n->waiter = wt;
    n->seq = seq;
    n->tag = tag;
    n->data = data;
    atomic_init(&n->done, 0);
}

/* Append n (the usual place: FIFO), or put it first (a waiter that was
 * woken to retry and lost keeps its turn). Counts a wait. */
void weft__waitq_push(struct weft__waitq *q, struct weft__wait_node *n);
void weft__waitq_push_front(struct weft__waitq *q, struct weft__wait_node *n);

/* Unlink and return the first node, or NULL. The caller then wakes it with
 * weft__waitq_wake (and skips it if the wake fails: that wait already ended
 * another way, and its owner will leave). */
struct weft__wait_node *weft__waitq_pop(struct weft__waitq *q);

/* Wake the wait of n, just popped from q, with outcome. True if this ended
 * the wait: the wait is no longer counted, and n belongs to the caller
 * until it drops the lock (or calls weft__wait_node_done). */
bool weft__waitq_wake(struct weft__waitq *q, struct weft__wait_node *n,
                      int32_t outcome);

/* Waiter side, under the lock, once a wait that no waker ended (deadline,
 * cancel; or a select's nodes that lost) is over: unlink n if it is still
 * linked and stop counting it. */
void weft__waitq_leave(struct weft__waitq *q, struct weft__wait_node *n);

/* Pop nodes and wake each with outcome until a wake succeeds; return that
 * node (which the caller must not touch after it drops the lock) or NULL if
 * the queue ran out. */
struct weft__wait_node *weft__waitq_wake_one(struct weft__waitq *q,
                                             int32_t outcome);

/* Pop every node and wake each with outcome; return how many wakes
 * succeeded. */
size_t weft__waitq_wake_all(struct weft__waitq *q, int32_t outcome);

/* The common single-object wait. Called with *lock held and the object not
 * ready: begins a wait of `kind` (WAIT_DIRECT or WAIT_UNCANCELLABLE) on the
 * caller's waiter, queues n (at the front if front), drops the lock and
 * blocks until a waker, the deadline (absolute, UINT64_MAX: none; the
 * task's deadline scope applies to WAIT_DIRECT) or a cancel ends the wait.
 * Returns the outcome; if it is -ETIMEDOUT or -ECANCELED the wait has left
 * the queue under the lock (which is not held on return either way).
 * *w is updated to the worker the caller now runs on (NULL: plain thread).
 * tag and data are stored in the node for the waker. */
int32_t weft__waitq_wait(struct weft__waitq *q, pthread_mutex_t *lock,
                         struct weft__wait_node *n, bool front,
                         struct weft__worker **w, uint32_t kind,
                         const char *what, uint64_t deadline, uint32_t tag,
                         void *data);

/* Waker side of the value hand-off: the last touch of n. */
void weft__wait_node_done(struct weft__wait_node *n);

/* Waiter side: return once the waker that ended this wait has called
 * weft__wait_node_done. */
void weft__wait_node_await(struct weft__wait_node *n);

#endif /* WEFT_SCHED_WAITQ_H */
