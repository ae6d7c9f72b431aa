/* sched/inject.h: the queues that carry tasks between threads outside the
 * local run queues.
 *
 *  - weft__inject: the runtime's shared injection queue (Go's global run
 *    queue): tasks spawned from plain threads and the overflow of full local
 *    queues. Any thread pushes and pops. A mutex guards it; an atomic
 *    length lets a worker see "empty" without taking it. Tasks are stored
 *    as pointers in array segments, not linked through the tasks: a
 *    million spilled tasks are cold in memory, and walking a linked list of
 *    them costs one cache miss after another (measured: a third of
 *    spawn-and-join time), while popping pointers from an array does not
 *    touch the tasks at all. If a segment cannot be allocated, the task is
 *    linked in by itself instead: the queue never fails a push.
 *  - weft__mpsc: a worker's inbox. Any thread pushes a task (or message) that
 *    must reach this one worker; only the owner takes, and it takes all at
 *    once, oldest first. Lock-free (a Treiber stack drained by exchange,
 *    which cannot suffer ABA because nothing pops single items).
 *
 * Contract: the inbox never allocates, the injection queue only its
 * segments (and copes without them); an item is in one queue at a time;
 * every item pushed is taken exactly once, oldest first. */
#ifndef WEFT_SCHED_INJECT_H
#define WEFT_SCHED_INJECT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "qlink.h"

struct weft__inject_seg;

struct weft__inject {
    pthread_mutex_t lock;
    /* Guarded by lock: a FIFO of entries linked through qlink.next, each
     * either a segment (pointer tagged with bit 0) or a lone task. */
    struct weft__qlink *first, *last;
    struct weft__inject_seg *spare; /* one emptied segment kept for reuse */
    size_t count;
    _Atomic size_t len; /* == count, readable without the lock */
};

void weft__inject_init(struct weft__inject *q);
void weft__inject_destroy(struct weft__inject *q);
void weft__inject_push(struct weft__inject *q, struct weft__qlink *item);
/* Push every item of *items (oldest first) in one lock; *items is emptied. */
void weft__inject_push_list(struct weft__inject *q, struct weft__qlist *items);
/* Push items[0..n) (oldest first) in one lock. */
void weft__inject_push_array(struct weft__inject *q, struct weft__qlink **items,
                             size_t n);
/* Take the oldest item, or NULL. */
struct weft__qlink *weft__inject_pop(struct weft__inject *q);
/* Take up to max of the oldest items into *out (appended); returns how many. */
size_t weft__inject_pop_batch(struct weft__inject *q, struct weft__qlist *out,
                              size_t max);
/* Take up to max of the oldest items into out[]; returns how many. Touches
 * none of the items. */
size_t weft__inject_pop_array(struct weft__inject *q, struct weft__qlink **out,
                              size_t max);
/* Any thread, without the lock; possibly stale. */
size_t weft__inject_len(struct weft__inject *q);

struct weft__mpsc {
    _Atomic(struct weft__qlink *) top;
};

void weft__mpsc_init(struct weft__mpsc *q);
/* Any thread. Returns true if the inbox was empty before this push (the
 * pusher is then the one who should wake the owner). */
bool weft__mpsc_push(struct weft__mpsc *q, struct weft__qlink *item);
/* Owner only: move everything pushed so far into *out (appended), oldest
 * first. Returns how many. */
size_t weft__mpsc_take_all(struct weft__mpsc *q, struct weft__qlist *out);
/* Any thread; possibly stale. */
bool weft__mpsc_empty(struct weft__mpsc *q);

#endif /* WEFT_SCHED_INJECT_H */
