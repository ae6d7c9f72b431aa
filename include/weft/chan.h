/* weft/chan.h: channels, Go's chan and asyncio's Queue: bounded FIFO
 * queues of fixed-size items that any number of fibers and threads send to
 * and receive from, on any workers; and select, the wait for the first ready
 * of several channel operations. Included by weft.h.
 *
 * Rules shared by every call here:
 *  - Blocking calls park only the calling fiber; from a plain thread they
 *    block the thread. Deadlines are absolute times on the weft_now_ns()
 *    clock (UINT64_MAX: none); a fiber's enclosing deadline scope also
 *    applies. A deadline already past still lets an operation that is ready
 *    at once complete.
 *  - A wait that ends with -ETIMEDOUT or -ECANCELED (fibers only) moved no
 *    item: the item it would have sent stays with the caller, the item it
 *    would have received stays in the channel (or with its sender), and the
 *    caller's buffer is untouched. An item is never delivered twice.
 *  - Closing: senders then get -EPIPE; receivers get what is still buffered,
 *    in order, then -EPIPE. Items of senders blocked at the close are not
 *    delivered: those sends return -EPIPE.
 *  - Items are copied in and out with memcpy; a channel never keeps a
 *    pointer to the caller's memory after a call returns.
 *  - Passing a pointer that is not a live channel (NULL, another kind of
 *    weft object, a destroyed channel) returns -EINVAL where it can be
 *    detected (a type tag is checked on every call); using a channel after
 *    destroying it is undefined behaviour like any use after free. */
#ifndef WEFT_CHAN_H
#define WEFT_CHAN_H

#include "base.h"

WEFT_EXTERN_C_BEGIN

typedef struct weft_chan weft_chan_t;

/* Create a channel of items of item_size bytes (0 is allowed: signals with
 * no payload, item pointers may then be NULL) that buffers up to capacity
 * items. capacity 0 makes an unbuffered channel: a send completes only when
 * a receiver takes the item (Go's rendezvous). Returns 0 and *chan, -EINVAL
 * (chan NULL, capacity * item_size overflows), or -ENOMEM. Any thread. */
WEFT_API int weft_chan_create(weft_chan_t **chan, size_t item_size,
                              size_t capacity);

/* Free the channel and any items still buffered. Returns 0, -EBUSY (a
 * fiber or thread is blocked on it; nothing changes), or -EINVAL. Any
 * thread; no call on the channel may be in progress or follow. */
WEFT_API int weft_chan_destroy(weft_chan_t *chan);

/* Send the item_size bytes at item: hand them to a waiting receiver, or
 * buffer them, or wait for either. Returns 0, -EPIPE (closed, before or
 * during the wait), -ETIMEDOUT (deadline), -ECANCELED (the fiber was
 * cancelled), -EINVAL. Fibers and threads. */
WEFT_API int weft_chan_send(weft_chan_t *chan, const void *item);
WEFT_API int weft_chan_send_until(weft_chan_t *chan, const void *item,
                                  uint64_t deadline_ns);
/* Never waits: -EAGAIN when the item can be neither handed over nor
 * buffered. Any thread, including outside the runtime. */
WEFT_API int weft_chan_try_send(weft_chan_t *chan, const void *item);

/* Receive the oldest item into the item_size bytes at item. Returns 0,
 * -EPIPE (closed and nothing left), -ETIMEDOUT, -ECANCELED, -EINVAL; on an
 * error *item is unchanged. Fibers and threads. */
WEFT_API int weft_chan_recv(weft_chan_t *chan, void *item);
WEFT_API int weft_chan_recv_until(weft_chan_t *chan, void *item,
                                  uint64_t deadline_ns);
/* Never waits: -EAGAIN when no item is buffered nor offered by a blocked
 * sender (and the channel is open). */
WEFT_API int weft_chan_try_recv(weft_chan_t *chan, void *item);

/* Close the channel: blocked senders return -EPIPE, blocked receivers
 * return -EPIPE (the buffer is empty if any are blocked), later receivers
 * drain the buffer first. Returns 0, or -EPIPE if it was already closed
 * (nothing changes), -EINVAL. Any thread. */
WEFT_API int weft_chan_close(weft_chan_t *chan);

/* The number of items buffered now (a snapshot), or -EINVAL. */
WEFT_API long weft_chan_len(weft_chan_t *chan);

/* ---- select ---------------------------------------------------------------- */

enum weft_select_op {
    WEFT_SELECT_RECV = 1, /* receive into item */
    WEFT_SELECT_SEND = 2, /* send the item at item */
};

/* One operation of a select. */
typedef struct weft_select_case {
    weft_chan_t *chan; /* NULL: a case that is never ready (Go's nil chan) */
    int op;            /* enum weft_select_op */
    void *item;        /* RECV: where the item goes; SEND: the item */
    int result;        /* out, for the case that completed: 0 (item moved)
                          or -EPIPE (the channel is closed: a SEND, or a
                          RECV with nothing left); other cases untouched */
} weft_select_case_t;

/* Wait until one of the n cases can complete, complete exactly that one,
 * and return its index; its .result says how it completed. When several are
 * ready at once, one is chosen at random, so that none starves. A channel
 * may appear in several cases. Returns the index, or -ETIMEDOUT
 * (deadline), -ECANCELED (fiber cancelled), -EINVAL (cases NULL with n > 0,
 * a bad op, a case whose chan is not a channel; nothing is done), -ENOMEM
 * (more than 16 cases and no memory for their bookkeeping). With no case
 * (or only NULL channels) weft_select waits until cancelled (a plain
 * thread: for ever), weft_select_until until its deadline. Fibers and
 * threads. */
WEFT_API int weft_select(weft_select_case_t *cases, size_t n);
WEFT_API int weft_select_until(weft_select_case_t *cases, size_t n,
                               uint64_t deadline_ns);
/* Never waits: -EAGAIN when no case is ready (Go's select with default). */
WEFT_API int weft_select_try(weft_select_case_t *cases, size_t n);

WEFT_EXTERN_C_END

#endif /* WEFT_CHAN_H */
