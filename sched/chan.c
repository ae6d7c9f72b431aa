/* sched/chan.c: channels: bounded MPMC FIFOs of fixed-size items. Entry
 * points: weft_chan_* (include/weft/chan.h), and the non-waiting halves
 * weft__chan_send_locked / weft__chan_recv_locked that select.c shares.
 *
 * A channel is a ring buffer and two wait queues under one lock (the layout
 * is in sched/sync.h). Invariants, each holding whenever the lock is free:
 *  1. count <= capacity.
 *  2. A live receiver waits only while count == 0 and no live sender waits;
 *     a live sender waits only while count == capacity and no live
 *     receiver waits. (Dead nodes, whose waits already ended by deadline or
 *     cancel, may linger until their owner unlinks them: wakers skip them.)
 *  3. An item is in exactly one place: with its sender (in the caller's
 *     buffer, a blocked send's node pointing at it), in the ring, or with
 *     its receiver. It moves only under the lock, and counts as moved to or
 *     from a waiter only if the wake of that waiter succeeded (sched/waitq.h,
 *     the hand-off rule: items of up to WEFT__WAIT_SCRATCH bytes travel in
 *     the node's scratch, or through the taker's own buffer, and are copied
 *     before the wake; bigger ones are copied after it, and the waiter
 *     awaits the copy). A wait that ended by deadline or cancel never loses
 *     or receives an item, its buffer is untouched, and no item moves
 *     twice.
 *  4. Once closed, nothing enters the ring and no sender waits.
 * Order: items leave in the order they entered the ring; a sender blocked
 * on a full ring moves its item in at the tail when a receiver makes room,
 * so FIFO order holds for buffered and blocked sends together (Go's rule).
 * Must never: hold the lock across a switch, or copy into a waiter's
 * buffer before its wake succeeded. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "sched/sched.h"
#include "sched/sync.h"
#include "sched/waitq.h"

static inline void copy_item(const struct weft_chan *ch, void *dst,
                             const void *src)
{
    if (ch->item_size)
        memcpy(dst, src, ch->item_size);
}

static inline unsigned char *slot(const struct weft_chan *ch, size_t i)
{
    return ch->buf + i * ch->item_size;
}

static inline size_t ring_index(const struct weft_chan *ch, size_t i)
{
    return i >= ch->capacity ? i - ch->capacity : i;
}

static inline bool small(const struct weft_chan *ch)
{
    return ch->item_size <= WEFT__WAIT_SCRATCH;
}

/* Wake the popped waiter n of q for an item hand-over; true if it won. */
static inline bool wake_item(struct weft__waitq *q, struct weft__wait_node *n)
{
    return weft__waitq_wake(q, n, weft__chan_outcome(n->tag, false));
}

/* Take the item of the first live blocked sender into dst, which may be
 * written even if no sender is left (a free ring slot, or a buffer of our
 * own). False if none was left. */
static bool take_from_sender(struct weft_chan *ch, void *dst)
{
    struct weft__wait_node *n;
    while ((n = weft__waitq_pop(&ch->senders))) {
        copy_item(ch, dst, n->data);
        if (wake_item(&ch->senders, n)) {
            if (!small(ch))
                weft__wait_node_done(n); /* the sender may reuse it now */
            return true;
        }
    }
    return false;
}

int weft__chan_send_locked(struct weft_chan *ch, const void *item)
{
    if (ch->closed)
        return -EPIPE;
    /* A waiting receiver means an empty ring (invariant 2): hand over. */
    struct weft__wait_node *n;
    while ((n = weft__waitq_pop(&ch->receivers))) {
        if (small(ch)) {
            copy_item(ch, n->scratch, item);
            if (wake_item(&ch->receivers, n))
                return 0;
        } else if (wake_item(&ch->receivers, n)) {
            copy_item(ch, n->data, item);
            weft__wait_node_done(n);
            return 0;
        }
    }
    if (ch->count < ch->capacity) {
        copy_item(ch, slot(ch, ring_index(ch, ch->head + ch->count)), item);
        ch->count++;
        return 0;
    }
    return -EAGAIN;
}

int weft__chan_recv_locked(struct weft_chan *ch, void *item)
{
    if (ch->count) {
        copy_item(ch, item, slot(ch, ch->head));
        ch->head = ring_index(ch, ch->head + 1);
        ch->count--;
        /* Room now: the longest-blocked sender's item goes in at the tail
         * (a free slot, so copying into it before the wake is harmless). */
        if (take_from_sender(ch, slot(ch, ring_index(ch, ch->head + ch->count))))
            ch->count++;
        return 0;
    }
    /* Unbuffered (or a full ring of zero slots): take from a sender. A
     * small item goes through our own buffer first, so that the caller's is
     * written only once an item is ours; a big one is copied after the
     * wake. */
    if (small(ch)) {
        _Alignas(16) unsigned char tmp[WEFT__WAIT_SCRATCH];
        if (take_from_sender(ch, tmp)) {
            copy_item(ch, item, tmp);
            return 0;
        }
    } else {
        struct weft__wait_node *n;
        while ((n = weft__waitq_pop(&ch->senders))) {
            if (wake_item(&ch->senders, n)) {
                copy_item(ch, item, n->data);
                weft__wait_node_done(n);
                return 0;
            }
        }
    }
    return ch->closed ? -EPIPE : -EAGAIN;
}

void weft__chan_sent(struct weft_chan *ch, struct weft__wait_node *n)
{
    if (!small(ch))
        weft__wait_node_await(n);
}

void weft__chan_received(struct weft_chan *ch, struct weft__wait_node *n,
                         void *item)
{
    if (small(ch))
        copy_item(ch, item, n->scratch);
    else
        weft__wait_node_await(n);
}

/* ---- The API ---------------------------------------------------------------- */

WEFT_API int weft_chan_create(weft_chan_t **chan, size_t item_size,
                              size_t capacity)
{
    if (!chan) {
        weft__misuse("weft_chan_create", "chan is NULL");
        return -EINVAL;
    }
    if (item_size && capacity > SIZE_MAX / item_size) {
        weft__misuse("weft_chan_create", "capacity * item_size overflows");
        return -EINVAL;
    }
    struct weft_chan *ch = calloc(1, sizeof *ch);
    if (!ch)
        return -ENOMEM;
    size_t bytes = capacity * item_size;
    if (bytes) {
        ch->buf = malloc(bytes);
        if (!ch->buf) {
            free(ch);
            return -ENOMEM;
        }
    }
    ch->item_size = item_size;
    ch->capacity = capacity;
    pthread_mutex_init(&ch->lock, NULL);
    weft__waitq_init(&ch->senders);
    weft__waitq_init(&ch->receivers);
    ch->tag = WEFT__TAG_CHAN;
    *chan = ch;
    return 0;
}

static bool valid(const struct weft_chan *ch, const char *fn)
{
    if (weft__tag_ok(ch, WEFT__TAG_CHAN))
        return true;
    weft__misuse(fn, "not a live channel");
    return false;
}

WEFT_API int weft_chan_destroy(weft_chan_t *ch)
{
    if (!valid(ch, "weft_chan_destroy"))
        return -EINVAL;
    pthread_mutex_lock(&ch->lock);
    if (weft__waitq_busy(&ch->senders) || weft__waitq_busy(&ch->receivers)) {
        pthread_mutex_unlock(&ch->lock);
        return -EBUSY;
    }
    ch->tag = WEFT__TAG_DEAD;
    pthread_mutex_unlock(&ch->lock);
    pthread_mutex_destroy(&ch->lock);
    free(ch->buf);
    free(ch);
    return 0;
}

static int chan_send(struct weft_chan *ch, const void *item,
                     uint64_t deadline, bool wait, const char *fn)
{
    if (!valid(ch, fn))
        return -EINVAL;
    if (!item && ch->item_size) {
        weft__misuse(fn, "item is NULL");
        return -EINVAL;
    }
    pthread_mutex_lock(&ch->lock);
    int r = weft__chan_send_locked(ch, item);
    if (r != -EAGAIN || !wait) {
        pthread_mutex_unlock(&ch->lock);
        return r;
    }
    struct weft__worker *w = weft__worker_self();
    struct weft__wait_node n;
    int32_t o = weft__waitq_wait(&ch->senders, &ch->lock, &n, false, &w,
                                 WAIT_DIRECT, "channel send", deadline, 0,
                                 (void *)item);
    if (o < 0)
        return o;
    if (o & 1)
        return -EPIPE;
    weft__chan_sent(ch, &n);
    return 0;
}

WEFT_API int weft_chan_send(weft_chan_t *ch, const void *item)
{
    return chan_send(ch, item, UINT64_MAX, true, "weft_chan_send");
}

WEFT_API int weft_chan_send_until(weft_chan_t *ch, const void *item,
                                  uint64_t deadline_ns)
{
    return chan_send(ch, item, deadline_ns, true, "weft_chan_send_until");
}

WEFT_API int weft_chan_try_send(weft_chan_t *ch, const void *item)
{
    return chan_send(ch, item, 0, false, "weft_chan_try_send");
}

static int chan_recv(struct weft_chan *ch, void *item, uint64_t deadline,
                     bool wait, const char *fn)
{
    if (!valid(ch, fn))
        return -EINVAL;
    if (!item && ch->item_size) {
        weft__misuse(fn, "item is NULL");
        return -EINVAL;
    }
    pthread_mutex_lock(&ch->lock);
    int r = weft__chan_recv_locked(ch, item);
    if (r != -EAGAIN || !wait) {
        pthread_mutex_unlock(&ch->lock);
        return r;
    }
    struct weft__worker *w = weft__worker_self();
    struct weft__wait_node n;
    int32_t o = weft__waitq_wait(&ch->receivers, &ch->lock, &n, false, &w,
                                 WAIT_DIRECT, "channel recv", deadline, 0,
                                 item);
    if (o < 0)
        return o;
    if (o & 1)
        return -EPIPE;
    weft__chan_received(ch, &n, item);
    return 0;
}

WEFT_API int weft_chan_recv(weft_chan_t *ch, void *item)
{
    return chan_recv(ch, item, UINT64_MAX, true, "weft_chan_recv");
}

WEFT_API int weft_chan_recv_until(weft_chan_t *ch, void *item,
                                  uint64_t deadline_ns)
{
    return chan_recv(ch, item, deadline_ns, true, "weft_chan_recv_until");
}

WEFT_API int weft_chan_try_recv(weft_chan_t *ch, void *item)
{
    return chan_recv(ch, item, 0, false, "weft_chan_try_recv");
}

WEFT_API int weft_chan_close(weft_chan_t *ch)
{
    if (!valid(ch, "weft_chan_close"))
        return -EINVAL;
    pthread_mutex_lock(&ch->lock);
    if (ch->closed) {
        pthread_mutex_unlock(&ch->lock);
        return -EPIPE;
    }
    ch->closed = true;
    /* Receivers wait only on an empty ring and senders' items are never
     * delivered after the close (invariant 4): both learn -EPIPE. */
    struct weft__wait_node *n;
    while ((n = weft__waitq_pop(&ch->receivers)))
        weft__waitq_wake(&ch->receivers, n, weft__chan_outcome(n->tag, true));
    while ((n = weft__waitq_pop(&ch->senders)))
        weft__waitq_wake(&ch->senders, n, weft__chan_outcome(n->tag, true));
    pthread_mutex_unlock(&ch->lock);
    return 0;
}

WEFT_API long weft_chan_len(weft_chan_t *ch)
{
    if (!valid(ch, "weft_chan_len"))
        return -EINVAL;
    pthread_mutex_lock(&ch->lock);
    long len = (long)ch->count;
    pthread_mutex_unlock(&ch->lock);
    return len;
}
