/* io/ring.h: what io/'s files share: the layout of a worker's ring, and how
 * an operation is queued on it and waited for. Included only by the files
 * of io/ (it pulls in <liburing.h>); io/io.h is the directory's contract.
 *
 * An operation of a fiber, from any io/ file:
 *     struct weft__worker *w;
 *     int err = weft__io_begin(&w, &deadline);    (fiber? deadline? cancel?)
 *     if (err) return err;
 *     struct io_uring_sqe *sqe = weft__io_sqe(w, deadline);
 *     io_uring_prep_xxx(sqe, ...);
 *     return weft__io_wait(&w, sqe, deadline, "what", WEFT__IO_CANCELLABLE,
 *                          NULL);
 * weft__io_wait returns only after the operation's own completion was
 * reaped, whatever ended the wait. */
#ifndef WEFT_IO_RING_H
#define WEFT_IO_RING_H

#include <errno.h>
#include <limits.h>
#include <liburing.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "io/io.h"
#include "runtime/runtime.h"
#include "sched/sched.h"

/* An unsubmitted SQE waits at most this many scheduling decisions of its
 * worker, or until this many are queued, before a later queueing submits
 * them all (the loop and a parking worker submit at once; see ring.c). */
#ifndef WEFT_SUBMIT_AGE
#define WEFT_SUBMIT_AGE 16u
#endif
#ifndef WEFT_SUBMIT_BATCH
#define WEFT_SUBMIT_BATCH 32u
#endif

/* A node of a doubly linked list with a sentinel. */
struct weft__io_link {
    struct weft__io_link *prev, *next;
};

/* A fiber's operation in flight. It lives on the fiber's stack, which is
 * safe: the fiber cannot resume before the operation's completion ran. Its
 * address is the SQE's user_data; no two operations in flight on one ring
 * share it, and a cancel is queued only for an operation still linked in
 * the ring's inflight list (ring.c, invariant C2). */
struct weft__io_op {
    struct weft__io_req req;      /* first: user_data points here */
    struct weft__io_link link;    /* in ring->inflight; owner only */
    struct weft__ring *ring;
    struct weft__task *task;
    uint32_t seq;                 /* the task's wait this op ends */
    uint32_t cflags;              /* the CQE's flags, for the caller */
    bool cancel_sent;             /* an ASYNC_CANCEL for it is queued */
    bool timed;                   /* a link timeout follows it */
    struct __kernel_timespec ts;  /* the link timeout's; read at submit */
#if WEFT_DEBUG_LEVEL >= 1
    uint32_t magic; /* WEFT__IO_OP_MAGIC from queueing to completion */
#endif
};
#define WEFT__IO_OP_MAGIC 0x0b5e55edu

struct weft__listener; /* io/listen.c */
struct weft__rpool;    /* io/rbuf.c */

struct weft__ring {
    struct io_uring ring;
    struct weft__worker *worker; /* the owner: the only thread to submit */
    const char *flags_desc;
    bool abs_timeouts;  /* link timeouts accept IORING_TIMEOUT_ABS */
    bool exiting;       /* ring_exit is draining: do not re-arm */
    /* w->tick when the oldest unsubmitted SQE was queued. */
    uint32_t pending_tick;
    /* Cancellable operations in flight (owner only). */
    struct weft__io_link inflight;
    /* Listeners whose multishot accept is armed on this ring (owner only;
     * io/listen.c). */
    struct weft__io_link armed_listeners;
    /* The receive pool's buffer ring, made on first use (io/rbuf.c). */
    struct weft__rpool *rpool;
    /* The wake-up eventfd: any thread writes, a read is always pending. */
    int wake_fd;
    bool wake_fixed; /* registered as file 0 of the ring's table */
    struct weft__io_req wake_req;
    bool wake_armed;
    /* A cancel reaching this ring from another thread (ring.c, C3). */
    _Atomic bool sweep_posted;
    struct weft__msg sweep_msg;
};

/* Operation kinds for weft__io_wait. */
enum {
    WEFT__IO_CANCELLABLE = 0,   /* a cancel ends it (-ECANCELED) */
    WEFT__IO_UNCANCELLABLE = 1, /* only its completion: close */
};

/* Check that the caller is a fiber, apply its deadline scope to *deadline,
 * and refuse at once a deadline already past (-ETIMEDOUT) or a pending
 * cancel (-ECANCELED, which consumes it). -EPERM on a plain thread. *w is
 * the calling worker on success. */
int weft__io_begin(struct weft__worker **w, uint64_t *deadline);

/* The first of the SQEs an operation needs on w's ring (two with a
 * deadline: the operation and its link timeout), reserved together so that
 * no submit can split them. Submits what is queued when the SQ is full;
 * never fails. The caller preps it and passes it to weft__io_wait before
 * any call that can switch. */
struct io_uring_sqe *weft__io_sqe(struct weft__worker *w, uint64_t deadline);

/* Finish queueing the operation in sqe (link the timeout, begin the wait),
 * submit by the batching rule, block until its completion, and return its
 * result: the CQE's res, with -ECANCELED turned into -ETIMEDOUT when the
 * link timeout caused it. *cflags (if not NULL) gets the CQE's flags, *ring
 * (if not NULL) the ring it ran on. *w is the worker the fiber resumed on. */
int32_t weft__io_wait(struct weft__worker **w, struct io_uring_sqe *sqe,
                      uint64_t deadline, const char *what, int kind,
                      uint32_t *cflags);
int32_t weft__io_wait_on(struct weft__worker **w, struct io_uring_sqe *sqe,
                         uint64_t deadline, const char *what, int kind,
                         uint32_t *cflags, struct weft__ring **ring);

/* n free SQEs on r, submitting (and, if the kernel refuses, reaping) until
 * there are. Returns true if completions ran meanwhile (a caller walking a
 * list they change must start over). Owner only; never while holding a
 * lock a completion takes. */
bool weft__ring_reserve(struct weft__ring *r, unsigned n);

/* Submit what is queued now. Owner only. */
void weft__ring_submit(struct weft__ring *r);

/* Apply the batching rule after queueing (ring.c). */
void weft__ring_queued(struct weft__worker *w);

/* Validation of buffers, shared by the calls. */
static inline int weft__io_check_buf(int fd, const void *buf, size_t len)
{
    if (fd < 0)
        return -EBADF;
    if (len > (size_t)SSIZE_MAX || (!buf && len))
        return -EINVAL;
    return 0;
}

/* A length the kernel takes in one transfer. */
static inline unsigned weft__io_clamp(size_t len)
{
    return len > WEFT_IO_MAX ? (unsigned)WEFT_IO_MAX : (unsigned)len;
}

int weft__io_check_iov(int fd, const struct iovec *iov, int iovcnt);

/* 0 if fd is open, else -EBADF: for calls that have nothing to transfer. */
int weft__io_check_open(int fd);

/* One read or write (write: buf is only read) at offset (-1: the fd's
 * position), or its vectored form; validation included (io/op.c). fn names
 * the public call for misuse reports. */
ssize_t weft__io_rw(const char *fn, bool write, int fd, void *buf, size_t len,
                    int64_t offset, uint64_t deadline);
ssize_t weft__io_rwv(const char *fn, bool write, int fd,
                     const struct iovec *iov, int iovcnt, int64_t offset,
                     uint64_t deadline);

/* A non-blocking, close-on-exec socket of addr's family and `type`, with
 * the WEFT_REUSEADDR / REUSEPORT / V6ONLY flags applied, bound to addr.
 * Returns the fd or -errno (io/listen.c). */
int weft__bound_socket(const weft_addr_t *addr, int type, unsigned flags);

/* fd is being closed: if it is a listener, stop its accepts and fail its
 * waiting fibers, and return its state, which stays findable (a racing
 * weft_accept gets -EBADF, never an accept on the closing socket) until
 * weft__listen_closed(L) after the fd is closed. NULL if fd is not a
 * listener. Any thread (io/listen.c). */
struct weft__listener *weft__listen_close(int fd);
void weft__listen_closed(struct weft__listener *L);

/* ---- Hooks of the other io/ files into the ring's life (ring.c calls) --- */

/* Queue a cancel for every task's operation on r whose task has a cancel
 * request (io/op.c). from_msg: run as r's sweep message. Owner only. */
void weft__io_sweep(struct weft__ring *r, bool from_msg);
/* Listeners (io/listen.c): the ring is exiting: cancel the multishot
 * accepts armed on it (their completions still run). */
void weft__listen_ring_cancel(struct weft__ring *r);
/* The last ring exited: forget every listener (close the connections they
 * accepted that nobody took). */
void weft__listen_forget_all(void);
/* The receive pool of r (io/rbuf.c): unregister and free. */
void weft__rpool_exit(struct weft__ring *r);

#endif /* WEFT_IO_RING_H */
