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

void weft__inject_init(struct weft__inject *q)
{
    pthread_mutex_init(&q->lock, NULL);
    weft__qlist_init(&q->list);
    atomic_init(&q->len, 0);
}

void weft__inject_destroy(struct weft__inject *q)
{
    pthread_mutex_destroy(&q->lock);
}

/* Called with q->lock held. Seq_cst: the park protocol is a Dekker check
 * (a worker announces it is idle and then reads len; a pusher writes len and
 * then looks for idle workers), which holds only if both sides' accesses are
 * in one total order. */
static void publish_len(struct weft__inject *q)
{
    atomic_store_explicit(&q->len, q->list.len, memory_order_seq_cst);
}

void weft__inject_push(struct weft__inject *q, struct weft__qlink *item)
{
    pthread_mutex_lock(&q->lock);
    weft__qlist_push(&q->list, item);
    publish_len(q);
    pthread_mutex_unlock(&q->lock);
}

void weft__inject_push_list(struct weft__inject *q, struct weft__qlist *items)
{
    if (!items->head)
        return;
    pthread_mutex_lock(&q->lock);
    weft__qlist_append(&q->list, items);
    publish_len(q);
    pthread_mutex_unlock(&q->lock);
}

struct weft__qlink *weft__inject_pop(struct weft__inject *q)
{
    struct weft__qlist one;
    weft__qlist_init(&one);
    return weft__inject_pop_batch(q, &one, 1) ? one.head : NULL;
}

size_t weft__inject_pop_batch(struct weft__inject *q, struct weft__qlist *out,
                              size_t max)
{
    /* Relaxed: a hint that spares idle pollers the lock. If a push happens
     * before this call, coherence makes this load see its length or a later
     * one; anything else is a race the caller could lose anyway. */
    if (max == 0 || atomic_load_explicit(&q->len, memory_order_relaxed) == 0)
        return 0;
    size_t n = 0;
    pthread_mutex_lock(&q->lock);
    for (; n < max && q->list.head; n++)
        weft__qlist_push(out, weft__qlist_pop(&q->list));
    if (n)
        publish_len(q);
    pthread_mutex_unlock(&q->lock);
    return n;
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
