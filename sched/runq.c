/* sched/runq.c: each worker's local run queue, a bounded ring that its owner
 * pushes to and pops from and that other workers steal half of. Entry points:
 * weft__runq_push, weft__runq_pop (owner) and weft__runq_steal (thieves).
 * It must never block, allocate or take a lock.
 *
 * Source: Go's runq (runtime/proc.go: runqput, runqputslow, runqget,
 * runqgrab, runqsteal; Dmitry Vyukov's design), with Go's acquire/release
 * annotations carried over to C11 orders.
 *
 * Invariants (indexes are uint32 and wrap: "i is below h" means h - i, as a
 * uint32, is between 1 and CAPACITY):
 *  I1. tail is written only by the owner and only grows. Slots are written
 *      only by the owner of the ring: by push at index tail, or by its own
 *      steal at indexes >= tail, before it publishes them.
 *  I2. head only grows, always by a CAS. A successful CAS from h to h + n
 *      hands the items at [h, h + n) to whoever made it, so every item is
 *      taken exactly once (ABA would need head to go all the way round
 *      2^32 between a thief's load and its CAS; Go accepts the same).
 *  I3. The items are the slots at [head, tail), oldest at head, and
 *      tail - head <= CAPACITY. Any other slot may still be read by a
 *      consumer holding a stale head; that consumer's CAS then fails (I2),
 *      so what it read is thrown away. The slots are atomics so that those
 *      reads are not data races.
 *  I4. Publication: the owner stores slot i (relaxed) and then tail = i + 1
 *      (release); a thief loads tail (acquire) before it loads a slot below
 *      it, so it reads the item, not an older value of the slot.
 *  I5. Reuse: a consumer loads its slots before its CAS on head (release);
 *      the owner loads head (acquire) before it writes index i, and writes
 *      it only if i - CAP, the slot's last index, is below that head. So
 *      every slot load by a consumer whose CAS succeeded happens before the
 *      slot is overwritten, and cannot see the new value. All writes to
 *      head are read-modify-writes, so one acquire of head synchronises
 *      with every CAS before it (they form one release sequence).
 *  I6. Consistency: every CAS on head is a release, and every reader of
 *      another worker's ring loads head (acquire) and then tail (acquire),
 *      so the tail it reads covers the head it read (h <= t). A stale head
 *      can still make t - h look larger than CAPACITY; readers retry then. */
#include "runq.h"

#include <assert.h>

#define CAP  WEFT_RUNQ_CAPACITY
#define MASK (CAP - 1u)

static_assert(CAP >= 2u && (CAP & (CAP - 1u)) == 0u,
              "WEFT_RUNQ_CAPACITY must be a power of two, at least 2");
static_assert(CAP <= (1u << 31), "indexes must stay comparable as uint32");

void weft__runq_init(struct weft__runq *q)
{
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    for (uint32_t i = 0; i < CAP; i++)
        atomic_init(&q->slots[i], NULL);
}

/* The ring is full: move its older half and then item into *spill. Returns
 * false, having changed nothing, if a consumer moved head first. */
static bool push_slow(struct weft__runq *q, struct weft__qlink *item,
                      uint32_t h, struct weft__qlink **spill)
{
    const uint32_t n = CAP / 2u;
    /* Release: I6. Acquire is not needed: the slots read below were written
     * by this thread (I1). */
    if (!atomic_compare_exchange_strong_explicit(
            &q->head, &h, h + n, memory_order_release, memory_order_relaxed))
        return false;
    /* [h, h + n) is ours now, and only this thread writes slots (I1), so
     * reading them after the CAS sees the items. Copying pointers touches
     * none of the (cold) items. */
    for (uint32_t i = 0; i < n; i++)
        spill[i] = atomic_load_explicit(&q->slots[(h + i) & MASK],
                                        memory_order_relaxed);
    spill[n] = item;
    return true;
}

size_t weft__runq_push_array(struct weft__runq *q, struct weft__qlink *item,
                             struct weft__qlink **spill)
{
    const uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    for (;;) {
        /* Acquire: I5, consumers are done with every slot below h. */
        uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
        if (t - h < CAP) {
            atomic_store_explicit(&q->slots[t & MASK], item,
                                  memory_order_relaxed);
            /* Release: I4, publishes the slot to thieves. */
            atomic_store_explicit(&q->tail, t + 1u, memory_order_release);
            return 0;
        }
        if (push_slow(q, item, h, spill))
            return CAP / 2u + 1u;
        /* A consumer took something, so there is room now. */
    }
}

size_t weft__runq_push(struct weft__runq *q, struct weft__qlink *item,
                       struct weft__qlist *spill)
{
    struct weft__qlink *moved[WEFT_RUNQ_SPILL];
    size_t n = weft__runq_push_array(q, item, moved);
    for (size_t i = 0; i < n; i++)
        weft__qlist_push(spill, moved[i]);
    return n;
}

struct weft__qlink *weft__runq_pop(struct weft__runq *q)
{
    const uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    /* Relaxed: the slot read below was written by this thread (I1), and a
     * stale head only makes the CAS fail (I2). */
    uint32_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    for (;;) {
        if (h == t)
            return NULL;
        struct weft__qlink *item =
            atomic_load_explicit(&q->slots[h & MASK], memory_order_relaxed);
        /* Release: I6. On failure h is reloaded and we try again. */
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + 1u,
                                                  memory_order_release,
                                                  memory_order_relaxed))
            return item;
    }
}

struct weft__qlink *weft__runq_pop_unshared(struct weft__runq *q)
{
    const uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    const uint32_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    if (h == t)
        return NULL;
    struct weft__qlink *item =
        atomic_load_explicit(&q->slots[h & MASK], memory_order_relaxed);
    /* No thief exists to race with (the caller's promise), so a plain
     * store replaces the CAS; release keeps I5 for weft__runq_len readers
     * and the owner's own later pushes. */
    atomic_store_explicit(&q->head, h + 1u, memory_order_release);
    return item;
}

/* Copy about half of victim's items, the oldest, into thief's slots from
 * index tt on, and claim them. Returns how many (0 if victim is empty). */
static uint32_t grab(struct weft__runq *thief, uint32_t tt, uint32_t room,
                     struct weft__runq *victim)
{
    for (;;) {
        /* Acquire both: I6 (t covers h), and I4 (the slots below t are
         * visible). */
        uint32_t h = atomic_load_explicit(&victim->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&victim->tail, memory_order_acquire);
        uint32_t n = t - h;
        n -= n / 2u;
        if (n > CAP / 2u)
            continue; /* h was stale (I6): read both again */
        if (n > room)
            n = room;
        if (n == 0)
            return 0;
        for (uint32_t i = 0; i < n; i++) {
            struct weft__qlink *item = atomic_load_explicit(
                &victim->slots[(h + i) & MASK], memory_order_relaxed);
            atomic_store_explicit(&thief->slots[(tt + i) & MASK], item,
                                  memory_order_relaxed);
        }
        /* Release: I5, our slot loads happen before the victim's owner
         * reuses those slots; and I6. On failure we read again. */
        if (atomic_compare_exchange_strong_explicit(&victim->head, &h, h + n,
                                                    memory_order_release,
                                                    memory_order_relaxed))
            return n;
    }
}

struct weft__qlink *weft__runq_steal(struct weft__runq *thief,
                                     struct weft__runq *victim)
{
    if (thief == victim)
        return NULL;
    const uint32_t tt =
        atomic_load_explicit(&thief->tail, memory_order_relaxed);
    /* Acquire: I5, grab overwrites our free slots, which thieves of ours may
     * have read before their last successful CAS. The thief's queue should
     * be empty; if it is not, at most its free room is taken. */
    const uint32_t th =
        atomic_load_explicit(&thief->head, memory_order_acquire);
    const uint32_t n = grab(thief, tt, CAP - (tt - th), victim);
    if (n == 0)
        return NULL;
    struct weft__qlink *newest = atomic_load_explicit(
        &thief->slots[(tt + n - 1u) & MASK], memory_order_relaxed);
    if (n > 1u) /* Release: I4, publishes the rest to our own thieves. */
        atomic_store_explicit(&thief->tail, tt + n - 1u, memory_order_release);
    return newest;
}

uint32_t weft__runq_len(struct weft__runq *q)
{
    for (;;) {
        /* Acquire both: I6, so h <= t. */
        uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
        /* If head did not move while tail was read, the pair is a snapshot:
         * the owner stored t after seeing a head >= t - CAP, which this load
         * then sees too, so t - h <= CAP. */
        if (atomic_load_explicit(&q->head, memory_order_relaxed) == h)
            return t - h;
    }
}
