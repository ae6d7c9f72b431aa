/* sched/inject.c: the shared injection queue (a mutex around a FIFO list)
 * and each worker's lock-free inbox (an MPSC stack drained all at once).
 * Entry points: weft__inject_push / _pop and weft__mpsc_push / _take_all.
 * Neither ever allocates; the inbox never blocks.
 *
 * Inbox source: Treiber's stack (IBM RJ 5118, 1986), drained by one
 * exchange as in Vyukov's intrusive MPSC designs. Invariants:
 *  M1. top is only ever changed by read-modify-writes: the pushers' CAS and
 *      the owner's exchange. So they form one modification order, and a
 *      release CAS heads a release sequence that every later write
 *      continues: the owner's acquire exchange synchronises with every push
 *      it takes, not just the last.
 *  M2. Pushed items are never popped one at a time, so no pusher can see a
 *      node leave and come back under it (no ABA); a pusher never
 *      dereferences top, it only stores it in its own item.
 *  M3. The stack holds the items newest first; the owner reverses the
 *      chain it took, so it hands them out oldest first. Each push that
 *      finds top == NULL is the first since the last non-empty take: the
 *      number of such pushes equals the number of non-empty takes (plus one
 *      if items remain). */
#include "inject.h"

#include <stdint.h>
#include <stdlib.h>

#define SEG_CAP 254u

struct weft__inject_seg {
    struct weft__qlink link; /* in the queue's FIFO, tagged */
    uint32_t head, tail;     /* items[head, tail) are queued */
    struct weft__qlink *items[SEG_CAP];
};

static inline bool is_seg(const struct weft__qlink *e)
{
    return (uintptr_t)e & 1u;
}

static inline struct weft__inject_seg *seg_of(struct weft__qlink *e)
{
    return (struct weft__inject_seg *)((uintptr_t)e & ~(uintptr_t)1u);
}

static inline struct weft__qlink *tag(struct weft__inject_seg *s)
{
    return (struct weft__qlink *)((uintptr_t)s | 1u);
}

void weft__inject_init(struct weft__inject *q)
{
    pthread_mutex_init(&q->lock, NULL);
    q->first = q->last = NULL;
    q->spare = NULL;
    q->count = 0;
    atomic_init(&q->len, 0);
}

void weft__inject_destroy(struct weft__inject *q)
{
    /* Whatever is still queued belongs to the caller; only our segments are
     * freed. */
    struct weft__qlink *e = q->first;
    while (e) {
        struct weft__qlink *next =
            is_seg(e) ? seg_of(e)->link.next : e->next;
        if (is_seg(e))
            free(seg_of(e));
        e = next;
    }
    free(q->spare);
    pthread_mutex_destroy(&q->lock);
}

/* Called with q->lock held. Seq_cst: the park protocol is a Dekker check
 * between this store and the idle side's load in weft__inject_len. */
static void publish_len(struct weft__inject *q)
{
    atomic_store_explicit(&q->len, q->count, memory_order_seq_cst);
}

/* Append entry e (a tagged segment or a lone task) to the FIFO. */
static void link_entry(struct weft__inject *q, struct weft__qlink *e)
{
    if (is_seg(e))
        seg_of(e)->link.next = NULL;
    else
        e->next = NULL;
    if (!q->last)
        q->first = e;
    else if (is_seg(q->last))
        seg_of(q->last)->link.next = e;
    else
        q->last->next = e;
    q->last = e;
}

static void push_locked(struct weft__inject *q, struct weft__qlink *item)
{
    if (q->last && is_seg(q->last)) {
        struct weft__inject_seg *s = seg_of(q->last);
        if (s->tail < SEG_CAP) {
            s->items[s->tail++] = item;
            q->count++;
            return;
        }
    }
    struct weft__inject_seg *s = q->spare;
    if (s)
        q->spare = NULL;
    else
        s = malloc(sizeof *s);
    if (s) {
        s->head = 0;
        s->tail = 1;
        s->items[0] = item;
        link_entry(q, tag(s));
    } else {
        link_entry(q, item); /* no memory: the task carries its own link */
    }
    q->count++;
}

void weft__inject_push(struct weft__inject *q, struct weft__qlink *item)
{
    pthread_mutex_lock(&q->lock);
    push_locked(q, item);
    publish_len(q);
    pthread_mutex_unlock(&q->lock);
}

void weft__inject_push_list(struct weft__inject *q, struct weft__qlist *items)
{
    if (!items->head)
        return;
    pthread_mutex_lock(&q->lock);
    struct weft__qlink *l;
    while ((l = weft__qlist_pop(items)))
        push_locked(q, l);
    publish_len(q);
    pthread_mutex_unlock(&q->lock);
}

void weft__inject_push_array(struct weft__inject *q, struct weft__qlink **items,
                             size_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < n; i++)
        push_locked(q, items[i]);
    publish_len(q);
    pthread_mutex_unlock(&q->lock);
}

/* Take the oldest item. Lock held, q->count > 0. */
static struct weft__qlink *pop_locked(struct weft__inject *q)
{
    struct weft__qlink *e = q->first;
    struct weft__qlink *item;
    struct weft__qlink *next;
    if (is_seg(e)) {
        struct weft__inject_seg *s = seg_of(e);
        item = s->items[s->head++];
        if (s->head < s->tail) {
            q->count--;
            return item;
        }
        next = s->link.next;
        if (!q->spare)
            q->spare = s;
        else
            free(s);
    } else {
        item = e;
        next = e->next;
        item->next = NULL;
    }
    q->first = next;
    if (!next)
        q->last = NULL;
    q->count--;
    return item;
}

struct weft__qlink *weft__inject_pop(struct weft__inject *q)
{
    struct weft__qlink *item;
    return weft__inject_pop_array(q, &item, 1) ? item : NULL;
}

size_t weft__inject_pop_array(struct weft__inject *q, struct weft__qlink **out,
                              size_t max)
{
    /* Relaxed: a hint that spares idle pollers the lock. If a push happens
     * before this call, coherence makes this load see its length or a later
     * one; anything else is a race the caller could lose anyway. */
    if (max == 0 || atomic_load_explicit(&q->len, memory_order_relaxed) == 0)
        return 0;
    size_t n = 0;
    pthread_mutex_lock(&q->lock);
    for (; n < max && q->count; n++)
        out[n] = pop_locked(q);
    if (n)
        publish_len(q);
    pthread_mutex_unlock(&q->lock);
    return n;
}

size_t weft__inject_pop_batch(struct weft__inject *q, struct weft__qlist *out,
                              size_t max)
{
    struct weft__qlink *items[64];
    size_t total = 0;
    while (total < max) {
        size_t want = max - total < 64 ? max - total : 64;
        size_t n = weft__inject_pop_array(q, items, want);
        for (size_t i = 0; i < n; i++)
            weft__qlist_push(out, items[i]);
        total += n;
        if (n < want)
            break;
    }
    return total;
}

size_t weft__inject_len(struct weft__inject *q)
{
    /* Seq_cst: the idle side of the Dekker check in publish_len. */
    return atomic_load_explicit(&q->len, memory_order_seq_cst);
}

void weft__mpsc_init(struct weft__mpsc *q)
{
    atomic_init(&q->top, NULL);
}

bool weft__mpsc_push(struct weft__mpsc *q, struct weft__qlink *item)
{
    struct weft__qlink *top =
        atomic_load_explicit(&q->top, memory_order_relaxed);
    for (;;) {
        item->next = top;
        /* Release: publishes item->next and the item's contents to the
         * owner's acquire exchange (M1). Relaxed on failure: the new top is
         * only stored, never dereferenced (M2). */
        if (atomic_compare_exchange_weak_explicit(&q->top, &top, item,
                                                  memory_order_release,
                                                  memory_order_relaxed))
            return top == NULL;
    }
}

size_t weft__mpsc_take_all(struct weft__mpsc *q, struct weft__qlist *out)
{
    /* Relaxed peek: an idle owner polls often, and the exchange would take
     * the cache line from the pushers for nothing. */
    if (!atomic_load_explicit(&q->top, memory_order_relaxed))
        return 0;
    /* Acquire: M1, see every taken item's next and contents. */
    struct weft__qlink *node =
        atomic_exchange_explicit(&q->top, NULL, memory_order_acquire);
    struct weft__qlist taken = {.head = NULL, .tail = node, .len = 0};
    while (node) { /* reverse: newest first becomes oldest first (M3) */
        struct weft__qlink *next = node->next;
        node->next = taken.head;
        taken.head = node;
        taken.len++;
        node = next;
    }
    size_t n = taken.len;
    weft__qlist_append(out, &taken);
    return n;
}

bool weft__mpsc_empty(struct weft__mpsc *q)
{
    return atomic_load_explicit(&q->top, memory_order_relaxed) == NULL;
}
