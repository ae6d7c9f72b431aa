/* sched/runq.h: each worker's local run queue. A bounded ring of ready tasks
 * that only its owner pushes to and pops from (FIFO), and that other workers
 * steal half of. The design is Go's runq (runtime/proc.go) in C11 atomics.
 *
 * Contract:
 *  - push and pop are called only by the owning worker's thread.
 *  - steal is called by any other worker, with its own queue as destination.
 *  - An item is returned by exactly one pop or steal: never lost, never
 *    twice.
 *  - Never allocates, never blocks, never takes a lock. */
#ifndef WEFT_SCHED_RUNQ_H
#define WEFT_SCHED_RUNQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "qlink.h"

#ifndef WEFT_RUNQ_CAPACITY
#define WEFT_RUNQ_CAPACITY 256u /* a power of two; tests shrink it to 4 */
#endif

struct weft__runq {
    /* Index of the oldest item. Advanced by the owner's pop and by thieves,
     * always with a CAS. */
    _Alignas(64) _Atomic uint32_t head;
    /* Index one past the newest item. Written only by the owner. */
    _Alignas(64) _Atomic uint32_t tail;
    _Alignas(64) _Atomic(struct weft__qlink *) slots[WEFT_RUNQ_CAPACITY];
};

void weft__runq_init(struct weft__runq *q);

/* Owner: append item. Returns 0 when it went into q. When q is full, the
 * older half of q and then item are moved into *spill (oldest first) and
 * their number is returned; the caller hands them to the injection queue. */
size_t weft__runq_push(struct weft__runq *q, struct weft__qlink *item,
                       struct weft__qlist *spill);

/* The same, spilling into an array of WEFT_RUNQ_SPILL pointers instead of
 * a list: it touches none of the spilled items (they are cold in memory
 * when many tasks wait). The runtime uses this one. */
#define WEFT_RUNQ_SPILL (WEFT_RUNQ_CAPACITY / 2u + 1u)
size_t weft__runq_push_array(struct weft__runq *q, struct weft__qlink *item,
                             struct weft__qlink **spill);

/* Owner: take the oldest item, or NULL if q is empty. */
struct weft__qlink *weft__runq_pop(struct weft__runq *q);

/* Owner, when no thief can exist (the runtime has a single worker): take
 * the oldest item without a CAS. Never mix with steal on the same queue. */
struct weft__qlink *weft__runq_pop_unshared(struct weft__runq *q);

/* Thief (another worker): move about half of victim's items (the oldest)
 * into the thief's own queue, which must be empty, and return the newest
 * of them for the thief to run now (not left in its queue). NULL if the
 * victim had nothing. */
struct weft__qlink *weft__runq_steal(struct weft__runq *thief,
                                     struct weft__runq *victim);

/* Any thread: the number of items, possibly stale by the time it returns. */
uint32_t weft__runq_len(struct weft__runq *q);

#endif /* WEFT_SCHED_RUNQ_H */
