/* sched/select.c: waiting for the first ready of several channel operations
 * (Go's select). Entry points: weft_select, weft_select_until,
 * weft_select_try.
 *
 * The protocol (Go's selectgo, on the wait protocol of sched/wait.c):
 *  1. Lock every distinct channel of the cases, in address order (so two
 *     selects over the same channels cannot deadlock).
 *  2. Visit the cases in a random rotation; the first that can complete
 *     without waiting completes (weft__chan_send_locked / _recv_locked).
 *     Nobody can end our wait yet (no node of ours is queued), so a
 *     completion here is final. Unlock all and return its index.
 *  3. Otherwise begin one wait (waiter, seq) and queue one node per case,
 *     each tagged with its case index, still under every lock; then unlock
 *     all and block. A waker that finds any of our nodes wins or loses the
 *     one CAS on our waiter's word: the first wins, and the outcome names
 *     its case (and whether the channel closed). Losers skip the node.
 *  4. Lock all again and unlink every node still queued, then complete the
 *     winning case's hand-off (weft__chan_sent / _received) before
 *     returning its index.
 * A deadline or cancel that ends the wait first leaves every item where it
 * was: no waker moved anything for a wait it did not win.
 * Must never: take a channel lock out of address order, or return before
 * every node of the wait is unlinked. */
#include <errno.h>
#include <stdlib.h>

#include "runtime/runtime.h"
#include "sched/sched.h"
#include "sched/sync.h"
#include "sched/waitq.h"

/* Cases whose bookkeeping lives on the caller's stack; more are
 * allocated. */
#define STACK_CASES 16

/* A random number for the visiting order: the worker's generator, or a
 * per-thread one on a plain thread. */
static uint64_t select_rand(struct weft__worker *w)
{
    if (w)
        return weft__rand(w);
    static __thread uint64_t x;
    if (!x)
        x = (uint64_t)(uintptr_t)&x ^ weft_now_ns() ^ 0x9E3779B97F4A7C15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

static int cmp_chan(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (struct weft_chan *const *)a;
    uintptr_t y = (uintptr_t) * (struct weft_chan *const *)b;
    return (x > y) - (x < y);
}

/* Sort chans[0..k) by address and drop duplicates; return the count left. */
static size_t lock_order(struct weft_chan **chans, size_t k)
{
    if (k <= STACK_CASES) {
        for (size_t i = 1; i < k; i++) {
            struct weft_chan *c = chans[i];
            size_t j = i;
            for (; j > 0 && (uintptr_t)chans[j - 1] > (uintptr_t)c; j--)
                chans[j] = chans[j - 1];
            chans[j] = c;
        }
    } else {
        qsort(chans, k, sizeof *chans, cmp_chan);
    }
    size_t m = 0;
    for (size_t i = 0; i < k; i++)
        if (m == 0 || chans[m - 1] != chans[i])
            chans[m++] = chans[i];
    return m;
}

static void lock_all(struct weft_chan **chans, size_t m)
{
    for (size_t i = 0; i < m; i++)
        pthread_mutex_lock(&chans[i]->lock);
}

static void unlock_all(struct weft_chan **chans, size_t m)
{
    for (size_t i = m; i-- > 0;)
        pthread_mutex_unlock(&chans[i]->lock);
}

static int select_impl(weft_select_case_t *cases, size_t n, uint64_t deadline,
                       bool wait, const char *fn)
{
    if (n && !cases) {
        weft__misuse(fn, "cases is NULL");
        return -EINVAL;
    }
    if (n > WEFT__SELECT_MAX_CASES) {
        weft__misuse(fn, "too many cases");
        return -EINVAL;
    }
    size_t k = 0; /* cases with a channel */
    for (size_t i = 0; i < n; i++) {
        struct weft_chan *ch = cases[i].chan;
        if (cases[i].op != WEFT_SELECT_RECV && cases[i].op != WEFT_SELECT_SEND) {
            weft__misuse(fn, "a case's op is neither WEFT_SELECT_RECV nor "
                             "WEFT_SELECT_SEND");
            return -EINVAL;
        }
        if (!ch)
            continue;
        if (!weft__tag_ok(ch, WEFT__TAG_CHAN)) {
            weft__misuse(fn, "a case's chan is not a live channel");
            return -EINVAL;
        }
        if (!cases[i].item && ch->item_size) {
            weft__misuse(fn, "a case's item is NULL");
            return -EINVAL;
        }
        k++;
    }

    struct weft_chan *stack_chans[STACK_CASES];
    struct weft__wait_node stack_nodes[STACK_CASES];
    struct weft_chan **chans = stack_chans;
    struct weft__wait_node *nodes = stack_nodes;
    void *heap = NULL;
    if (n > STACK_CASES) {
        heap = malloc(k * sizeof *chans + n * sizeof *nodes);
        if (!heap)
            return -ENOMEM;
        nodes = heap;
        chans = (struct weft_chan **)(nodes + n);
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        if (cases[i].chan)
            chans[j++] = cases[i].chan;
    size_t m = lock_order(chans, k);

    struct weft__worker *w = weft__worker_self();
    int ret;
    /* Step 1 and 2. */
    lock_all(chans, m);
    size_t start = n ? (size_t)(select_rand(w) % n) : 0;
    for (size_t v = 0; v < n; v++) {
        size_t i = start + v < n ? start + v : start + v - n;
        weft_select_case_t *c = &cases[i];
        if (!c->chan)
            continue;
        int r = c->op == WEFT_SELECT_SEND
                    ? weft__chan_send_locked(c->chan, c->item)
                    : weft__chan_recv_locked(c->chan, c->item);
        if (r != -EAGAIN) {
            unlock_all(chans, m);
            c->result = r;
            ret = (int)i;
            goto out;
        }
    }
    if (!wait) {
        unlock_all(chans, m);
        ret = -EAGAIN;
        goto out;
    }
    /* Step 3. */
    struct weft__waiter *wt = weft__waiter_self(w);
    uint32_t seq = weft__waiter_begin(wt, WAIT_DIRECT, "select");
    for (size_t i = 0; i < n; i++) {
        weft_select_case_t *c = &cases[i];
        if (!c->chan)
            continue;
        weft__wait_node_init(&nodes[i], wt, seq, (uint32_t)i, c->item);
        weft__waitq_push(c->op == WEFT_SELECT_SEND ? &c->chan->senders
                                                   : &c->chan->receivers,
                         &nodes[i]);
    }
    unlock_all(chans, m);
    int32_t o = weft__waiter_block(&w, wt, seq, deadline);
    /* Step 4. The winner's waker unlinked its node and stopped counting
     * it; a waker that lost unlinked the node it tried; the rest are still
     * queued. Every node but the winner leaves. */
    size_t won = o >= 0 ? (size_t)o >> 1 : n;
    lock_all(chans, m);
    for (size_t i = 0; i < n; i++) {
        weft_select_case_t *c = &cases[i];
        if (c->chan && i != won)
            weft__waitq_leave(c->op == WEFT_SELECT_SEND ? &c->chan->senders
                                                        : &c->chan->receivers,
                              &nodes[i]);
    }
    unlock_all(chans, m);
    if (o < 0) {
        ret = o;
        goto out;
    }
    size_t i = won;
    WEFT_ASSERT(i < n && cases[i].chan);
    if (o & 1) {
        cases[i].result = -EPIPE;
    } else {
        if (cases[i].op == WEFT_SELECT_SEND)
            weft__chan_sent(cases[i].chan, &nodes[i]);
        else
            weft__chan_received(cases[i].chan, &nodes[i], cases[i].item);
        cases[i].result = 0;
    }
    ret = (int)i;
out:
    free(heap);
    return ret;
}

WEFT_API int weft_select(weft_select_case_t *cases, size_t n)
{
    return select_impl(cases, n, UINT64_MAX, true, "weft_select");
}

WEFT_API int weft_select_until(weft_select_case_t *cases, size_t n,
                               uint64_t deadline_ns)
{
    return select_impl(cases, n, deadline_ns, true, "weft_select_until");
}

WEFT_API int weft_select_try(weft_select_case_t *cases, size_t n)
{
    return select_impl(cases, n, 0, false, "weft_select_try");
}
