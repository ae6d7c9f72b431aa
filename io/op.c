/* io/op.c: a fiber's operation on its worker's ring, from queueing to the
 * completion that ends its wait; its deadline and its cancellation; and the
 * calls on any fd (weft_wait_fd, weft_read/write/readv/writev, weft_close).
 * Entry points: weft__io_begin, weft__io_sqe, weft__io_wait(_on), and the
 * WEFT_API functions below.
 *
 * An operation is a WAIT_CUSTOM wait that only its own completion ends, so
 * that the caller's buffer is never written after the call returned:
 *  O1. The fiber queues the SQE (and its link timeout, for a deadline),
 *      begins the wait, links the op into its ring's inflight list, and
 *      blocks. It cannot move to another worker before its completion: a
 *      parked fiber is in no queue.
 *  O2. The completion is reaped on the ring's owner: the op is unlinked
 *      and the wait is ended with the result. That is the only end: the
 *      core arms no timer for a custom wait, and a cancel only asks.
 *  O3. A deadline is an IORING_OP_LINK_TIMEOUT linked to the op (absolute
 *      on CLOCK_MONOTONIC where the kernel takes it): when it fires, the
 *      kernel cancels the op, whose -ECANCELED becomes -ETIMEDOUT. The
 *      timeout's own CQE carries no user_data and is dropped by reap().
 *
 * Cancellation of a task blocked in an operation:
 *  C1. weft__task_cancel sets the task's cancel flag and calls cancel_hook
 *      (task, seq) on the cancelling thread: any thread, possibly long after
 *      that wait ended. The hook touches only the task and the rings (they
 *      live as long as the runtime): it reads wait_obj, accepts it only if
 *      it is one of the runtime's rings, and asks that ring for a sweep.
 *  C2. Only the owner may submit. A sweep walks the owner's inflight list
 *      and queues an IORING_OP_ASYNC_CANCEL, keyed by user_data, for each op
 *      whose task has a cancel request and none sent yet. An op is linked
 *      exactly from its queueing to the reaping of its completion, so a
 *      linked op is in flight and its wait (task, seq) pending, and no other
 *      op in flight on this ring has its address: a stale pointer is never
 *      matched. The cancel SQE is queued after the op's SQE and submitted
 *      before the op's completion can be reaped (reaping happens after a
 *      submit, and nothing runs between them that could queue a new op at
 *      the same address).
 *  C3. From the owner's own thread the sweep runs at once; from any other
 *      thread the hook posts the ring's one sweep message (sched/worker.c
 *      runs it in the owner's maintenance, and wakes a parked owner). The
 *      sweep_posted flag keeps the message in one queue at a time: the hook
 *      sets it (acq_rel exchange) and posts only if it was clear; the sweep
 *      clears it (acq_rel exchange) before walking the list. Both are RMWs
 *      on one location, so either the sweep's exchange reads the hook's
 *      (and acquires the cancel flag the canceller set before calling the
 *      hook), or the hook's exchange comes later, reads false, and posts a
 *      new sweep. No request is lost.
 *  C4. The op still ends only with its own CQE: -ECANCELED if the cancel
 *      won (weft__waiter_block then consumes the request), or its real
 *      result if it completed first (-EALREADY / -ENOENT for the cancel):
 *      then the request stays pending and ends the task's next wait.
 * A sweep costs O(operations in flight on that worker), paid only when a
 * cancel arrives; sweeps requested while one is queued share it.
 *
 * Must never: end a wait before its operation's completion, submit from a
 * thread that does not own the ring, or dereference an op it did not find
 * in its own ring's inflight list. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <unistd.h>

#include "io/ring.h"

static inline void list_add(struct weft__io_link *head, struct weft__io_link *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

static inline void list_del(struct weft__io_link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->next = l->prev = NULL;
}

static inline struct weft__io_op *op_of_link(struct weft__io_link *l)
{
    return (struct weft__io_op *)((char *)l -
                                  offsetof(struct weft__io_op, link));
}

/* ---- The operation ---------------------------------------------------------- */

int weft__io_begin(struct weft__worker **wp, uint64_t *deadline)
{
    struct weft__worker *w = weft__worker_self();
    struct weft__task *t = weft__task_self(w);
    if (!t)
        return -EPERM;
    uint64_t d = weft__wait_deadline(t, *deadline);
    if (d != UINT64_MAX && d <= weft_now_ns())
        return -ETIMEDOUT;
    /* A pending request ends this wait at once, as a direct wait's would,
     * and is consumed by it. */
    if (atomic_load_explicit(&t->cancel, memory_order_relaxed) &&
        atomic_exchange_explicit(&t->cancel, 0, memory_order_acq_rel))
        return -ECANCELED;
    *deadline = d;
    *wp = w;
    return 0;
}

struct io_uring_sqe *weft__io_sqe(struct weft__worker *w, uint64_t deadline)
{
    struct weft__ring *r = w->ring;
    unsigned n = deadline != UINT64_MAX ? 2 : 1;
    if (io_uring_sq_space_left(&r->ring) < n)
        weft__ring_reserve(r, n);
    if (io_uring_sq_ready(&r->ring) == 0)
        r->pending_tick = w->tick;
    return io_uring_get_sqe(&r->ring);
}

/* O2, on the ring's owner. */
static void op_complete(struct weft__io_req *req, int32_t res, uint32_t flags)
{
    struct weft__io_op *op = (struct weft__io_op *)req;
#if WEFT_DEBUG_LEVEL >= 1
    /* A completion for an op that already completed: its frame is gone. */
    WEFT_ASSERT(op->magic == WEFT__IO_OP_MAGIC);
    op->magic = 0;
#endif
    if (op->link.next)
        list_del(&op->link);
    if (res == -ECANCELED || res == -EINTR) {
        /* Ours if we asked; otherwise the link timeout's (O3). An op that
         * io-wq was running may end with -EINTR when interrupted. */
        if (op->cancel_sent)
            res = -ECANCELED;
        else if (op->timed)
            res = -ETIMEDOUT;
    }
    op->cflags = flags;
    /* After this wake the fiber may run anywhere and its frame (op) be
     * gone: nothing below may touch op. */
    bool woke = weft__waiter_wake(&op->task->waiter, op->seq, res);
    WEFT_ASSERT(woke);
    (void)woke;
}

static void cancel_hook(struct weft__task *t, uint32_t seq);

int32_t weft__io_wait_on(struct weft__worker **wp, struct io_uring_sqe *sqe,
                         uint64_t deadline, const char *what, int kind,
                         uint32_t *cflags, struct weft__ring **ring)
{
    struct weft__worker *w = *wp;
    struct weft__ring *r = w->ring;
    struct weft__task *t = w->current;
    struct weft__io_op op;
    op.req.complete = op_complete;
    op.link.prev = op.link.next = NULL;
    op.ring = r;
    op.task = t;
    op.cflags = 0;
    op.cancel_sent = false;
    op.timed = deadline != UINT64_MAX;
    io_uring_sqe_set_data(sqe, &op.req);
#if WEFT_DEBUG_LEVEL >= 1
    op.magic = WEFT__IO_OP_MAGIC;
#endif
    if (op.timed) {
        /* O3. weft__io_sqe reserved this second SQE beside the first. */
        struct io_uring_sqe *tsqe = io_uring_get_sqe(&r->ring);
        unsigned tflags = 0;
        uint64_t d = deadline;
        if (r->abs_timeouts) {
            tflags = IORING_TIMEOUT_ABS;
        } else {
            /* Relative from now: it starts at submission, a few switches
             * late at most (ring.c, S1-S2). */
            uint64_t now = weft_now_ns();
            d = deadline > now ? deadline - now : 0;
        }
        op.ts.tv_sec = (long long)(d / 1000000000ull);
        op.ts.tv_nsec = (long long)(d % 1000000000ull);
        sqe->flags |= IOSQE_IO_LINK;
        io_uring_prep_link_timeout(tsqe, &op.ts, tflags);
        io_uring_sqe_set_data(tsqe, NULL);
    }
    struct weft__waiter *wt = &t->waiter;
    if (kind == WEFT__IO_CANCELLABLE) {
        op.seq = weft__waiter_begin_custom(wt, what, cancel_hook, r);
        list_add(&r->inflight, &op.link);
    } else {
        op.seq = weft__waiter_begin(wt, WAIT_UNCANCELLABLE, what);
    }
    weft__ring_queued(w);
    int32_t res = weft__waiter_block(&w, wt, op.seq, UINT64_MAX);
    *wp = w;
    if (cflags)
        *cflags = op.cflags;
    if (ring)
        *ring = r;
    return res;
}

int32_t weft__io_wait(struct weft__worker **wp, struct io_uring_sqe *sqe,
                      uint64_t deadline, const char *what, int kind,
                      uint32_t *cflags)
{
    return weft__io_wait_on(wp, sqe, deadline, what, kind, cflags, NULL);
}

/* ---- Cancellation ----------------------------------------------------------- */

void weft__io_sweep(struct weft__ring *r, bool from_msg)
{
    if (from_msg)
        /* C3: clear before walking, so a request arriving during the walk
         * posts a new sweep. */
        atomic_exchange_explicit(&r->sweep_posted, false,
                                 memory_order_acq_rel);
    bool queued = false;
again:
    for (struct weft__io_link *l = r->inflight.next; l != &r->inflight;
         l = l->next) {
        struct weft__io_op *op = op_of_link(l);
        if (op->cancel_sent ||
            !atomic_load_explicit(&op->task->cancel, memory_order_relaxed))
            continue;
        /* C2: linked, so in flight and its wait still pending. */
        WEFT_ASSERT((uint32_t)(atomic_load(&op->task->waiter.word) >> 32) ==
                        op->seq &&
                    (uint32_t)atomic_load(&op->task->waiter.word) ==
                        WEFT_WAIT_PENDING);
        if (io_uring_sq_space_left(&r->ring) < 1 &&
            weft__ring_reserve(r, 1))
            goto again; /* completions ran: the list changed */
        struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
        io_uring_prep_cancel(sqe, &op->req, 0);
        io_uring_sqe_set_data(sqe, NULL); /* its own CQE is not needed */
        op->cancel_sent = true;
        queued = true;
    }
    /* Cancels are rare and urgent: no batching. */
    if (queued)
        weft__ring_submit(r);
}

/* C1: any thread, maybe long after the wait (t, seq) ended. */
static void cancel_hook(struct weft__task *t, uint32_t seq)
{
    uint64_t word = atomic_load_explicit(&t->waiter.word, memory_order_acquire);
    if ((uint32_t)(word >> 32) != seq || (uint32_t)word != WEFT_WAIT_PENDING)
        return; /* that wait is over */
    struct weft__runtime *rt = weft__runtime();
    if (!rt)
        return;
    /* wait_obj is the ring of the wait seq (stored before the word that
     * published seq), or of a later wait: never dereferenced before it is
     * found among the rings. */
    void *obj = atomic_load_explicit(&t->wait_obj, memory_order_relaxed);
    struct weft__ring *r = NULL;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        if (rt->workers[i]->ring == obj) {
            r = obj;
            break;
        }
    }
    if (!r)
        return;
    if (weft__worker_self() == r->worker) {
        weft__io_sweep(r, false);
        return;
    }
    /* C3 */
    if (!atomic_exchange_explicit(&r->sweep_posted, true, memory_order_acq_rel))
        weft__worker_post(rt, r->worker, &r->sweep_msg);
}

/* ---- Validation ----------------------------------------------------------- */

int weft__io_check_iov(int fd, const struct iovec *iov, int iovcnt)
{
    if (fd < 0)
        return -EBADF;
    if (iovcnt < 0 || iovcnt > IOV_MAX || (!iov && iovcnt))
        return -EINVAL;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_base && iov[i].iov_len)
            return -EINVAL;
        if (iov[i].iov_len > (size_t)SSIZE_MAX - total)
            return -EINVAL;
        total += iov[i].iov_len;
    }
    return 0;
}

static int fiber_only(const char *fn)
{
    weft__misuse(fn, "called from a plain thread, not a fiber");
    return -EPERM;
}

/* ---- Calls on any fd ----------------------------------------------------------- */

#define KNOWN_POLL                                                             \
    (POLLIN | POLLPRI | POLLOUT | POLLRDNORM | POLLRDBAND | POLLWRNORM |        \
     POLLWRBAND | POLLRDHUP | POLLERR | POLLHUP)

WEFT_API int weft_wait_fd(int fd, unsigned events, uint64_t deadline_ns)
{
    if (fd < 0)
        return -EBADF;
    if (!events || (events & ~(unsigned)KNOWN_POLL))
        return -EINVAL;
    struct weft__worker *w;
    int err = weft__io_begin(&w, &deadline_ns);
    if (err)
        return err == -EPERM ? fiber_only("weft_wait_fd") : err;
    struct io_uring_sqe *sqe = weft__io_sqe(w, deadline_ns);
    io_uring_prep_poll_add(sqe, fd, events);
    return weft__io_wait(&w, sqe, deadline_ns, "wait fd",
                         WEFT__IO_CANCELLABLE, NULL);
}

int weft__io_check_open(int fd)
{
    return fcntl(fd, F_GETFD) < 0 ? -errno : 0;
}

static ssize_t rw(const char *fn, int op, int fd, void *buf, size_t len,
                  int64_t offset, uint64_t deadline)
{
    int err = weft__io_check_buf(fd, buf, len);
    if (err)
        return err;
    /* Nothing to read: done, without waiting for data to arrive. */
    if (len == 0 && op == IORING_OP_READ)
        return weft__io_check_open(fd);
    struct weft__worker *w;
    err = weft__io_begin(&w, &deadline);
    if (err)
        return err == -EPERM ? fiber_only(fn) : err;
    struct io_uring_sqe *sqe = weft__io_sqe(w, deadline);
    if (op == IORING_OP_READ)
        io_uring_prep_read(sqe, fd, buf, weft__io_clamp(len), (uint64_t)offset);
    else
        io_uring_prep_write(sqe, fd, buf, weft__io_clamp(len),
                            (uint64_t)offset);
    return weft__io_wait(&w, sqe, deadline, op == IORING_OP_READ ? "read"
                                                                  : "write",
                         WEFT__IO_CANCELLABLE, NULL);
}

ssize_t weft__io_rw(const char *fn, bool write, int fd, void *buf, size_t len,
                    int64_t offset, uint64_t deadline)
{
    return rw(fn, write ? IORING_OP_WRITE : IORING_OP_READ, fd, buf, len,
              offset, deadline);
}

ssize_t weft__io_rwv(const char *fn, bool write, int fd,
                     const struct iovec *iov, int iovcnt, int64_t offset,
                     uint64_t deadline)
{
    int err = weft__io_check_iov(fd, iov, iovcnt);
    if (err)
        return err;
    struct weft__worker *w;
    err = weft__io_begin(&w, &deadline);
    if (err)
        return err == -EPERM ? fiber_only(fn) : err;
    struct io_uring_sqe *sqe = weft__io_sqe(w, deadline);
    if (write)
        io_uring_prep_writev(sqe, fd, iov, (unsigned)iovcnt, (uint64_t)offset);
    else
        io_uring_prep_readv(sqe, fd, iov, (unsigned)iovcnt, (uint64_t)offset);
    return weft__io_wait(&w, sqe, deadline, write ? "writev" : "readv",
                         WEFT__IO_CANCELLABLE, NULL);
}

/* io_uring's "current position" offset. */
#define AT_POS ((int64_t)-1)

WEFT_API ssize_t weft_read(int fd, void *buf, size_t len, uint64_t deadline_ns)
{
    return rw("weft_read", IORING_OP_READ, fd, buf, len, AT_POS, deadline_ns);
}

WEFT_API ssize_t weft_write(int fd, const void *buf, size_t len,
                            uint64_t deadline_ns)
{
    return rw("weft_write", IORING_OP_WRITE, fd, (void *)buf, len, AT_POS,
              deadline_ns);
}

WEFT_API ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt,
                            uint64_t deadline_ns)
{
    return weft__io_rwv("weft_readv", false, fd, iov, iovcnt, AT_POS,
                        deadline_ns);
}

WEFT_API ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt,
                             uint64_t deadline_ns)
{
    return weft__io_rwv("weft_writev", true, fd, iov, iovcnt, AT_POS,
                        deadline_ns);
}

WEFT_API int weft_close(int fd)
{
    if (fd < 0)
        return -EBADF;
    /* A listener first stops the accepts armed on it (io/listen.c). */
    struct weft__listener *L = weft__listen_close(fd);
    struct weft__worker *w = weft__worker_self();
    int r;
    if (!weft__task_self(w)) {
        /* Linux closes the fd even when close(2) reports an error. */
        r = close(fd) == 0 ? 0 : -errno;
    } else {
        /* Uncancellable and without a deadline: a close that did not
         * happen would leak the fd. Batched with the worker's other
         * operations. */
        struct io_uring_sqe *sqe = weft__io_sqe(w, UINT64_MAX);
        io_uring_prep_close(sqe, fd);
        r = weft__io_wait(&w, sqe, UINT64_MAX, "close",
                          WEFT__IO_UNCANCELLABLE, NULL);
    }
    if (L)
        weft__listen_closed(L);
    return r;
}
