/* io/ring.c: each worker's io_uring, its event loop. Entry points:
 * weft__ring_init (on the worker's thread), weft__ring_poll (every loop
 * turn), weft__ring_wait (a parked worker), weft__ring_wake (any thread).
 *
 * Flags are tried best first and dropped on -EINVAL, as the kernel allows:
 * single issuer + deferred task-running (6.1+), cooperative task-running
 * (5.19+), none. A read on an eventfd is always pending in the ring, so a
 * write to that eventfd from any thread ends the owner's wait.
 *
 * Polling costs a syscall only when it has something to do: SQEs to
 * submit, or completions the kernel has not posted yet (the TASKRUN flag it
 * raises in the SQ ring). An idle poll reads two words of shared memory.
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

struct weft__ring {
    struct io_uring ring;
    int wake_fd;                  /* eventfd: any thread writes, ring reads */
    uint64_t wake_buf;            /* where the pending read lands */
    struct weft__io_req wake_req; /* its completion: re-arm */
    bool wake_armed;
    const char *flags_desc;
};

static const struct {
    unsigned flags;
    const char *desc;
} flag_sets[] = {
    {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
         IORING_SETUP_TASKRUN_FLAG,
     "single-issuer, defer-taskrun"},
    {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, "coop-taskrun"},
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
    io_uring_prep_read(sqe, r->wake_fd, &r->wake_buf, sizeof r->wake_buf, 0);
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

int weft__ring_init(struct weft__worker *w, unsigned ring_entries, char *why,
                    size_t whylen)
{
    struct weft__ring *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    int err = -EINVAL;
    for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = flag_sets[i].flags;
        err = io_uring_queue_init_params(ring_entries, &r->ring, &p);
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
    r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->wake_fd < 0) {
        err = -errno;
        snprintf(why, whylen, "eventfd: %s", strerror(-err));
        io_uring_queue_exit(&r->ring);
        free(r);
        return err;
    }
    r->wake_req.complete = wake_complete;
    arm_wake(r);
    io_uring_submit(&r->ring);
    w->ring = r;
    return 0;
}

void weft__ring_exit(struct weft__worker *w)
{
    struct weft__ring *r = w->ring;
    if (!r)
        return;
    io_uring_queue_exit(&r->ring);
    close(r->wake_fd);
    free(r);
    w->ring = NULL;
}

/* Run every completion that is posted. */
static unsigned reap(struct weft__ring *r)
{
    struct io_uring_cqe *cqes[64];
    unsigned total = 0;
    for (;;) {
        unsigned n = io_uring_peek_batch_cqe(&r->ring, cqes, 64);
        if (n == 0)
            break;
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
    if (!r->wake_armed)
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
    if (io_uring_sq_ready(&r->ring))
        io_uring_submit(&r->ring);
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
    if (io_uring_sq_ready(&r->ring))
        io_uring_submit(&r->ring);
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
