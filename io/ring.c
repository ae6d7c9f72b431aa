/* io/ring.c: each worker's io_uring, its event loop. Entry points:
 * weft__ring_init (on the worker's thread), weft__ring_poll (every loop
 * turn), weft__ring_wait (a parked worker), weft__ring_wake (any thread),
 * weft__ring_quiesce and weft__ring_exit; for io/'s files,
 * weft__ring_reserve / _submit / _queued.
 *
 * Flags are tried best first and dropped on -EINVAL, as the kernel allows:
 * single issuer + deferred task-running (6.1+), cooperative task-running
 * (5.19+), none. A read on an eventfd is always pending in the ring, so a
 * write to that eventfd from any thread ends the owner's wait. The CQ holds
 * four times the SQ; beyond that the kernel keeps overflowing completions
 * (IORING_FEAT_NODROP) and reap() flushes them in.
 *
 * Submission is batched. An operation only queues its SQEs; they are
 * submitted, all at once, when the first of these comes:
 *  S1. the worker enters its loop (maintenance: its local queue ran dry, or
 *      every WEFT_MAINTENANCE_INTERVAL decisions), or parks (the ring's own
 *      wait submits as it sleeps);
 *  S2. an operation is queued while WEFT_SUBMIT_BATCH are already waiting,
 *      or while the oldest has waited WEFT_SUBMIT_AGE scheduling decisions
 *      (so a long queue of ready fibers doing I/O submits every few
 *      switches, not once per 61);
 *  S3. the SQ is full: it is submitted to make room (weft__ring_reserve),
 *      and if the kernel refuses (-EBUSY on kernels that stall submission
 *      while the CQ overflows), completions are reaped until it accepts.
 * A fiber that queues and parks while others are ready thus waits for at
 * most a few switches, never a whole maintenance interval unless nothing
 * else queues I/O; a fiber that parks with nothing else ready reaches S1 at
 * once. The fibers that ran in one loop turn share one io_uring_enter.
 *
 * Polling costs a syscall only when it has something to do: SQEs to
 * submit, or completions the kernel has not posted yet (the TASKRUN or
 * CQ_OVERFLOW flags it raises in the SQ ring). An idle poll reads two words
 * of shared memory.
 * Must never: block outside weft__ring_wait, or lose a completion: every
 * CQE reaped runs its request's complete function exactly once. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io/io.h"
#include "io/ring.h"
#include "runtime/runtime.h"
#include "sched/sched.h"

#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_TASKRUN_FLAG
#define IORING_SETUP_TASKRUN_FLAG (1U << 9)
#endif
#ifndef IORING_SQ_TASKRUN
#define IORING_SQ_TASKRUN (1U << 2)
#endif

/* Rings alive, so that the last one to exit can forget the listeners. */
static _Atomic unsigned live_rings;

static const struct {
    unsigned flags;
    const char *desc;
} flag_sets[] = {
    {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
         IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL,
     "single-issuer, defer-taskrun"},
    {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
         IORING_SETUP_SUBMIT_ALL,
     "coop-taskrun"},
    {0, "default"},
};

static void explain(int err, char *why, size_t len)
{
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
    int disabled = 0;
    if (f) {
        if (fscanf(f, "%d", &disabled) != 1)
            disabled = 0;
        fclose(f);
    }
    if (disabled == 2)
        snprintf(why, len, "io_uring_setup failed (%s): the sysctl "
                 "kernel.io_uring_disabled is 2, io_uring is off for every "
                 "process", strerror(-err));
    else if (disabled == 1 && err == -EPERM)
        snprintf(why, len, "io_uring_setup failed (%s): the sysctl "
                 "kernel.io_uring_disabled is 1 and this process is not in "
                 "the kernel.io_uring_group", strerror(-err));
    else if (err == -ENOSYS)
        snprintf(why, len, "io_uring_setup failed (%s): the kernel has no "
                 "io_uring, or a seccomp filter (a container's default "
                 "profile) blocks it", strerror(-err));
    else if (err == -EPERM)
        snprintf(why, len, "io_uring_setup failed (%s): a seccomp filter or "
                 "security module forbids io_uring here", strerror(-err));
    else if (err == -ENOMEM)
        snprintf(why, len, "io_uring_setup failed (%s): not enough locked "
                 "memory (RLIMIT_MEMLOCK, kernels before 5.12)",
                 strerror(-err));
    else
        snprintf(why, len, "io_uring_setup failed: %s", strerror(-err));
}

int weft__ring_probe(char *why, size_t whylen)
{
    struct io_uring ring;
    int err = io_uring_queue_init(8, &ring, 0);
    if (err < 0) {
        explain(err, why, whylen);
        return err;
    }
    io_uring_queue_exit(&ring);
    return 0;
}

/* ---- Submitting --------------------------------------------------------- */

void weft__ring_submit(struct weft__ring *r)
{
    /* On an error the SQEs stay queued and go with the next submit (S1). */
    if (io_uring_sq_ready(&r->ring))
        io_uring_submit(&r->ring);
}

static unsigned reap(struct weft__ring *r);

bool weft__ring_reserve(struct weft__ring *r, unsigned n)
{
    bool reaped = false;
    while (io_uring_sq_space_left(&r->ring) < n) {
        int ret = io_uring_submit(&r->ring);
        if (ret <= 0 && ret != -EINTR) {
            /* Nothing taken (-EBUSY, -EAGAIN, 0): the kernel wants
             * completions reaped (or memory back) first. Completions may
             * run here: the caller holds no lock they take (S3). */
            reap(r);
            reaped = true;
        }
    }
    return reaped;
}

void weft__ring_queued(struct weft__worker *w)
{
    struct weft__ring *r = w->ring;
    /* S2 */
    if (io_uring_sq_ready(&r->ring) >= WEFT_SUBMIT_BATCH ||
        w->tick - r->pending_tick >= WEFT_SUBMIT_AGE)
        weft__ring_submit(r);
}

/* ---- The wake-up eventfd ------------------------------------------------ */

static void wake_complete(struct weft__io_req *req, int32_t res,
                          uint32_t flags);

/* Queue the read on the wake-up eventfd. */
static void arm_wake(struct weft__ring *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) {
        io_uring_submit(&r->ring);
        sqe = io_uring_get_sqe(&r->ring);
        if (!sqe)
            return; /* stays unarmed; retried on the next poll */
    }
    /* The value read is not used. It lands in a static sink, not in r, so
     * that a read the kernel completes while a ring that was never
     * quiesced is torn down cannot write into freed memory. */
    static uint64_t wake_sink;
    if (r->wake_fixed) {
        /* Slot 0 of the ring's file table: no fd lookup per read. */
        io_uring_prep_read(sqe, 0, &wake_sink, sizeof wake_sink, 0);
        sqe->flags |= IOSQE_FIXED_FILE;
    } else {
        io_uring_prep_read(sqe, r->wake_fd, &wake_sink, sizeof wake_sink, 0);
    }
    io_uring_sqe_set_data(sqe, &r->wake_req);
    r->wake_armed = true;
}

static void wake_complete(struct weft__io_req *req, int32_t res,
                          uint32_t flags)
{
    (void)res;
    (void)flags;
    struct weft__ring *r =
        (struct weft__ring *)((char *)req - offsetof(struct weft__ring,
                                                     wake_req));
    r->wake_armed = false;
}

/* ---- Set-up and tear-down ----------------------------------------------- */

/* Do link timeouts take an absolute CLOCK_MONOTONIC deadline here? A NOP
 * linked to an absolute timeout completes with 0 if the kernel took the
 * pair, and is cancelled with the link if it refused the timeout's flags. */
static bool probe_abs_timeouts(struct io_uring *ring)
{
    struct __kernel_timespec ts = {0, 0};
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    struct io_uring_sqe *tsqe = io_uring_get_sqe(ring);
    if (!sqe || !tsqe)
        return false;
    io_uring_prep_nop(sqe);
    sqe->flags |= IOSQE_IO_LINK;
    sqe->user_data = 1;
    io_uring_prep_link_timeout(tsqe, &ts, IORING_TIMEOUT_ABS);
    tsqe->user_data = 2;
    if (io_uring_submit(ring) < 0)
        return false;
    bool ok = false;
    for (int seen = 0; seen < 2; seen++) {
        struct io_uring_cqe *cqe;
        if (io_uring_wait_cqe(ring, &cqe) < 0)
            return false;
        if (cqe->user_data == 1)
            ok = cqe->res == 0;
        io_uring_cqe_seen(ring, cqe);
    }
    return ok;
}

static void sweep_run(struct weft__worker *w, struct weft__msg *m)
{
    (void)w;
    struct weft__ring *r =
        (struct weft__ring *)((char *)m - offsetof(struct weft__ring,
                                                   sweep_msg));
    weft__io_sweep(r, true);
}

int weft__ring_init(struct weft__worker *w, unsigned ring_entries, char *why,
                    size_t whylen)
{
    struct weft__ring *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    int err = -EINVAL;
    unsigned cq = ring_entries * 4 > 65536 ? 65536 : ring_entries * 4;
    struct io_uring_params p;
    for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
        /* Each set with a larger CQ first (5.5+), then without. */
        for (int cqsize = 1; cqsize >= 0; cqsize--) {
            memset(&p, 0, sizeof p);
            p.flags = flag_sets[i].flags;
            if (cqsize) {
                p.flags |= IORING_SETUP_CQSIZE;
                p.cq_entries = cq;
            }
            err = io_uring_queue_init_params(ring_entries, &r->ring, &p);
            if (err != -EINVAL)
                break;
        }
        if (err == 0) {
            r->flags_desc = flag_sets[i].desc;
            break;
        }
        if (err != -EINVAL)
            break;
    }
    if (err) {
        explain(err, why, whylen);
        free(r);
        return err;
    }
    if (!(p.features & IORING_FEAT_NODROP) && w->index == 0)
        weft__warn("this kernel's io_uring may drop completions when its "
                   "queue overflows (no IORING_FEAT_NODROP, Linux < 5.5): "
                   "keep the number of I/O calls in flight per worker "
                   "below %u", p.cq_entries);
    r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->wake_fd < 0) {
        err = -errno;
        snprintf(why, whylen, "eventfd: %s", strerror(-err));
        io_uring_queue_exit(&r->ring);
        free(r);
        return err;
    }
    r->abs_timeouts = probe_abs_timeouts(&r->ring);
    /* The eventfd lives as long as the ring: the one file weft can keep in
     * the ring's file table safely (a user's fd may be closed with close(2)
     * and its number reused while a table slot still holds the old file). */
    r->wake_fixed = io_uring_register_files(&r->ring, &r->wake_fd, 1) == 0;
    /* The owner enters the ring by a registered index, sparing the kernel
     * an fd lookup per io_uring_enter (5.18+; without it, plain fd). */
    (void)io_uring_register_ring_fd(&r->ring);
    r->worker = w;
    r->inflight.prev = r->inflight.next = &r->inflight;
    r->armed_listeners.prev = r->armed_listeners.next = &r->armed_listeners;
    atomic_init(&r->sweep_posted, false);
    r->sweep_msg.run = sweep_run;
    r->wake_req.complete = wake_complete;
    arm_wake(r);
    io_uring_submit(&r->ring);
    w->ring = r;
    atomic_fetch_add(&live_rings, 1);
    return 0;
}

void weft__ring_quiesce(struct weft__worker *w)
{
    struct weft__ring *r = w->ring;
    if (!r)
        return;
    r->exiting = true;
    /* Messages still queued for this worker (its loop has ended) may ask
     * for a listener's teardown: run them now, as the loop would have. */
    struct weft__qlist l;
    weft__qlist_init(&l);
    weft__mpsc_take_all(&w->msgs, &l);
    struct weft__qlink *q;
    while ((q = weft__qlist_pop(&l))) {
        struct weft__msg *m = (struct weft__msg *)q;
        m->run(w, m);
    }
    /* Cancel what is still in flight (the wake-up read, multishot accepts;
     * no task is left, so no fiber's operation) and reap until each has
     * ended: an accept completion left unreaped would be an fd that nobody
     * closes. Only this thread may submit to the ring or wait on it. */
    weft__listen_ring_cancel(r);
    if (r->wake_armed) {
        weft__ring_reserve(r, 1);
        struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
        io_uring_prep_cancel(sqe, &r->wake_req, 0);
        /* liburing's prep leaves user_data as the slot's last user set it. */
        io_uring_sqe_set_data(sqe, NULL);
    }
    for (int i = 0; i < 2000 && (r->wake_armed ||
                                 r->armed_listeners.next != &r->armed_listeners);
         i++) {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {0, 1000000};
        io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
        reap(r);
    }
    weft__rpool_exit(r);
    /* The registration belongs to this thread, which is about to end. */
    io_uring_unregister_ring_fd(&r->ring);
}

void weft__ring_exit(struct weft__worker *w)
{
    struct weft__ring *r = w->ring;
    if (!r)
        return;
    bool last = atomic_fetch_sub(&live_rings, 1) == 1;
    if (last)
        weft__listen_forget_all();
    io_uring_queue_exit(&r->ring);
    close(r->wake_fd);
    free(r);
    w->ring = NULL;
}

/* ---- Reaping -------------------------------------------------------------- */

/* Run every completion that is posted, and those the kernel kept back when
 * the CQ overflowed. */
static unsigned reap(struct weft__ring *r)
{
    struct io_uring_cqe *cqes[64];
    unsigned total = 0;
    for (;;) {
        unsigned n = io_uring_peek_batch_cqe(&r->ring, cqes, 64);
        if (n == 0) {
            /* The kernel kept completions that did not fit (NODROP): an
             * enter flushes them into the CQ now that there is room. */
            if (IO_URING_READ_ONCE(*r->ring.sq.kflags) &
                IORING_SQ_CQ_OVERFLOW) {
                io_uring_get_events(&r->ring);
                if (io_uring_cq_ready(&r->ring))
                    continue;
            }
            break;
        }
        for (unsigned i = 0; i < n; i++) {
            struct weft__io_req *req = io_uring_cqe_get_data(cqes[i]);
            int32_t res = cqes[i]->res;
            uint32_t flags = cqes[i]->flags;
            /* Advance before running: complete may queue new SQEs and,
             * through them, more CQEs. */
            io_uring_cq_advance(&r->ring, 1);
            if (req)
                req->complete(req, res, flags);
        }
        total += n;
    }
    if (!r->wake_armed && !r->exiting)
        arm_wake(r);
    return total;
}

static bool needs_enter(struct weft__ring *r)
{
    if (io_uring_sq_ready(&r->ring))
        return true;
    unsigned kflags = IO_URING_READ_ONCE(*r->ring.sq.kflags);
    return kflags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW);
}

unsigned weft__ring_poll(struct weft__worker *w)
{
    struct weft__ring *r = w->ring;
    if (needs_enter(r))
        io_uring_submit_and_get_events(&r->ring);
    unsigned n = reap(r);
    weft__ring_submit(r);
    return n;
}

void weft__ring_wait(struct weft__worker *w, uint64_t deadline)
{
    struct weft__ring *r = w->ring;
    struct io_uring_cqe *cqe;
    if (!r->wake_armed)
        arm_wake(r);
    if (deadline == UINT64_MAX) {
        io_uring_submit_and_wait(&r->ring, 1);
    } else {
        uint64_t now = weft_now_ns();
        uint64_t d = deadline > now ? deadline - now : 0;
        struct __kernel_timespec ts = {.tv_sec = (long long)(d / 1000000000ull),
                                       .tv_nsec = (long long)(d % 1000000000ull)};
        io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
    }
    reap(r);
    weft__ring_submit(r);
}

void weft__ring_wake(struct weft__worker *w)
{
    /* Cannot fail but for counter overflow (2^64 - 1 pending wakes). A
     * worker whose ring failed to start has nothing to wake. */
    if (w->ring)
        eventfd_write(w->ring->wake_fd, 1);
}

const char *weft__ring_flags(struct weft__worker *w)
{
    return w->ring ? w->ring->flags_desc : "none";
}
