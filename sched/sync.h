/* sched/sync.h: what the channel, select and lock files share: the layout
 * of a channel (chan.c and select.c both move items under its lock), the
 * mutex's internal entry points (cond.c re-acquires a mutex without
 * cancellation), the identity of a caller (mutex ownership), and the type
 * tags that catch foreign or destroyed objects.
 *
 * Every object here is guarded by a pthread mutex held only for a few
 * instructions; waiting goes through the wait protocol (sched/wait.c) and
 * the wait queue (sched/waitq.h).
 * Must never: hold an object's pthread mutex across a switch, or take two
 * channels' locks other than in address order (select.c). */
#ifndef WEFT_SCHED_SYNC_H
#define WEFT_SCHED_SYNC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "include/weft.h"
#include "runtime/runtime.h"
#include "sched/waitq.h"

/* Type tags: the first field of every object. A destroyed object's tag is
 * overwritten before it is freed. */
#define WEFT__TAG_CHAN 0x6e616863u  /* "chan" */
#define WEFT__TAG_MUTEX 0x7874756du /* "mutx" */
#define WEFT__TAG_COND 0x646e6f63u  /* "cond" */
#define WEFT__TAG_SEM 0x216d6573u   /* "sem!" */
#define WEFT__TAG_EVENT 0x746e7665u /* "evnt" */
#define WEFT__TAG_WG 0x70726777u    /* "wgrp" */
#define WEFT__TAG_DEAD 0x64616564u  /* "dead" */

/* Is p a live object with this tag? NULL is not. */
static inline bool weft__tag_ok(const void *p, uint32_t tag)
{
    return p && *(const uint32_t *)p == tag;
}

/* ---- Channels (chan.c, select.c) --------------------------------------------*/

struct weft_chan {
    uint32_t tag;
    /* Fixed at creation. */
    size_t item_size;
    size_t capacity;
    unsigned char *buf; /* capacity slots of item_size bytes */
    /* Everything below is guarded by lock. */
    pthread_mutex_t lock;
    size_t head;  /* slot of the oldest buffered item */
    size_t count; /* buffered items */
    bool closed;
    /* Blocked senders (node data: the item) and receivers (node data: where
     * the item goes); node tag: the select case (0 for plain calls). At
     * most one of the two is non-empty, counting only live waits. */
    struct weft__waitq senders;
    struct weft__waitq receivers;
};

/* The outcome a waker gives a channel wait: which case (select's index, 0
 * otherwise) and whether the item moved (0) or the channel closed (1).
 * Never negative, so never -ETIMEDOUT or -ECANCELED. */
static inline int32_t weft__chan_outcome(uint32_t tag, bool closed)
{
    return (int32_t)((tag << 1) | (closed ? 1u : 0u));
}
#define WEFT__SELECT_MAX_CASES (1u << 24) /* so that outcome fits */

/* With ch->lock held, without waiting: move item to a blocked receiver or
 * into the buffer. 0, -EPIPE (closed) or -EAGAIN (it would wait). */
int weft__chan_send_locked(struct weft_chan *ch, const void *item);
/* With ch->lock held, without waiting: take the oldest item (refilling the
 * buffer from a blocked sender) or a blocked sender's item. 0, -EPIPE
 * (closed and empty) or -EAGAIN. */
int weft__chan_recv_locked(struct weft_chan *ch, void *item);
/* After a wait on ch that a waker ended with an item hand-over (outcome
 * even), without the lock: a send's node n may let its item go once this
 * returns; a receive's node n delivers the item into *item. */
void weft__chan_sent(struct weft_chan *ch, struct weft__wait_node *n);
void weft__chan_received(struct weft_chan *ch, struct weft__wait_node *n,
                         void *item);

/* ---- Identity (mutex ownership) ------------------------------------------- */

/* Who is calling: the running task's handle (gen << 32 | index + 1, never
 * reused), or for a plain thread (serial << 32 | 0xffffffff), which no
 * handle can equal (a handle's low half is at most 2^28). Never 0. */
uint64_t weft__sync_self_id(struct weft__worker *w);

/* ---- Mutex (mutex.c, used by cond.c) --------------------------------------- */

/* How many times a free mutex may be taken ahead of its waiters before
 * the next unlock hands it to the first waiter (mutex.c). 1..65535. */
#ifndef WEFT_MUTEX_BARGE_LIMIT
#define WEFT_MUTEX_BARGE_LIMIT 1024u
#endif

struct weft_mutex {
    uint32_t tag;
    /* M_* bits and the barge count (mutex.c). */
    _Atomic uint32_t state;
    /* The owner's weft__sync_self_id, 0 when free: written by the owner,
     * read by anyone (unlock's -EPERM check). */
    _Atomic uint64_t owner;
    /* Guards waiters and every change of the WAITERS and WOKEN bits. */
    pthread_mutex_t qlock;
    struct weft__waitq waiters;
};

/* Lock m for `me` (weft__sync_self_id), waiting with `kind` (WAIT_DIRECT,
 * or WAIT_UNCANCELLABLE with no deadline: cond's re-acquisition) until
 * deadline. 0, -EDEADLK, -ETIMEDOUT, -ECANCELED. *w: the caller's worker,
 * updated across the wait. */
int weft__mutex_lock(struct weft_mutex *m, uint64_t me, struct weft__worker **w,
                     uint64_t deadline, uint32_t kind);
/* Unlock m held by me: 0 or -EPERM. Never waits. */
int weft__mutex_unlock(struct weft_mutex *m, uint64_t me);

#endif /* WEFT_SCHED_SYNC_H */
