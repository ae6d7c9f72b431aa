/* tests/io_deadline.c: deadlines on I/O: recv, accept (a weft listener and
 * a plain one), connect, and file reads (a FIFO makes one block). Loopback
 * connects complete at once, so connect is made to block the way a busy
 * server does it: a listener that never accepts and whose queue is full
 * drops the SYN, and the client waits for its retransmission. A deadline
 * never ends a call early, an expired one consumes nothing, a deadline
 * scope applies to I/O too, and data racing a deadline is never lost.
 * No test asserts a wall-clock upper bound. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "io/ring.h" /* the relative-timeout test looks inside */
#include "io_test.h"

#define MS 1000000ull

static void pair(int *c, int *s)
{
    weft_addr_t addr;
    int lfd = listen_loopback(&addr, 0, 0);
    *c = weft_connect(&addr, WEFT_NO_DEADLINE);
    *s = weft_accept(lfd, NULL, WEFT_NO_DEADLINE);
    cr_assert(*c >= 0 && *s >= 0);
    cr_assert_eq(weft_close(lfd), 0);
}

static intptr_t recv_main(void *arg)
{
    (void)arg;
    int c, s;
    pair(&c, &s);
    char buf[8];
    uint64_t t0 = weft_now_ns();
    cr_assert_eq(weft_recv(s, buf, sizeof buf, 0, t0 + 20 * MS), -ETIMEDOUT);
    cr_assert_geq(weft_now_ns(), t0 + 20 * MS, "ended early");
    /* The same for recv_exact and readv. */
    t0 = weft_now_ns();
    size_t done = 7;
    cr_assert_eq(weft_recv_exact(s, buf, 4, &done, t0 + 5 * MS), -ETIMEDOUT);
    cr_assert_eq(done, 0);
    struct iovec iov = {buf, sizeof buf};
    cr_assert_eq(weft_readv(s, &iov, 1, weft_now_ns() + 5 * MS), -ETIMEDOUT);
    /* A deadline already past fails at once and takes nothing. */
    cr_assert_eq(weft_send(c, "data", 4, 0, WEFT_NO_DEADLINE), 4);
    weft_sleep_ms(2);
    cr_assert_eq(weft_recv(s, buf, sizeof buf, 0, weft_now_ns() - 1),
                 -ETIMEDOUT);
    cr_assert_eq(weft_recv(s, buf, sizeof buf, 0, 0), -ETIMEDOUT);
    /* Data that is there comes back before a far deadline. */
    cr_assert_eq(weft_recv(s, buf, 4, 0, weft_now_ns() + 10000 * MS), 4);
    cr_assert_eq(memcmp(buf, "data", 4), 0);
    weft_close(c);
    weft_close(s);
    return 0;
}

Test(deadline, recv_times_out_and_keeps_the_data, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, recv_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t accept_main(void *arg)
{
    (void)arg;
    weft_addr_t addr;
    int lfd = listen_loopback(&addr, 0, 0);
    uint64_t t0 = weft_now_ns();
    cr_assert_eq(weft_accept(lfd, NULL, t0 + 10 * MS), -ETIMEDOUT);
    cr_assert_geq(weft_now_ns(), t0 + 10 * MS);
    /* A plain listening socket takes the one-operation path. */
    int plain = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    weft_addr_t a;
    cr_assert_eq(weft_addr_ip(&a, "127.0.0.1", 0), 0);
    cr_assert_eq(bind(plain, &a.u.sa, a.len), 0);
    cr_assert_eq(listen(plain, 4), 0);
    t0 = weft_now_ns();
    cr_assert_eq(weft_accept(plain, NULL, t0 + 10 * MS), -ETIMEDOUT);
    cr_assert_geq(weft_now_ns(), t0 + 10 * MS);
    /* A connection that comes later is not lost to the timed-out call. */
    int c = weft_connect(&addr, WEFT_NO_DEADLINE);
    cr_assert_geq(c, 0);
    int s = weft_accept(lfd, NULL, weft_now_ns() + 10000 * MS);
    cr_assert_geq(s, 0);
    weft_close(c);
    weft_close(s);
    weft_close(plain);
    weft_close(lfd);
    return 0;
}

Test(deadline, accept_times_out, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, accept_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t connect_main(void *arg)
{
    (void)arg;
    /* A listener with the shortest queue that nobody accepts from. */
    int busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    weft_addr_t addr;
    cr_assert_eq(weft_addr_ip(&addr, "127.0.0.1", 0), 0);
    cr_assert_eq(bind(busy, &addr.u.sa, addr.len), 0);
    cr_assert_eq(listen(busy, 0), 0);
    cr_assert_eq(weft_addr_local(busy, &addr), 0);
    int fds[16], n = 0, timed_out = 0;
    /* The first connects fill the queue; then the SYN is dropped and the
     * connect waits, until its deadline. */
    while (n < 16) {
        uint64_t t0 = weft_now_ns();
        int fd = weft_connect(&addr, t0 + 50 * MS);
        if (fd == -ETIMEDOUT) {
            cr_assert_geq(weft_now_ns(), t0 + 50 * MS);
            timed_out = 1;
            break;
        }
        cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
        fds[n++] = fd;
    }
    cr_assert(timed_out, "no connect ever blocked");
    for (int i = 0; i < n; i++)
        weft_close(fds[i]);
    weft_close(busy);
    return 0;
}

Test(deadline, connect_times_out_when_the_queue_is_full, .timeout = 60)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, connect_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t fifo_main(void *arg)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "/tmp/weft-io-deadline-%d.fifo", (int)getpid());
    unlink(path);
    cr_assert_eq(mkfifo(path, 0600), 0);
    /* O_RDWR: opening a FIFO for reading alone would wait for a writer. */
    int f = weft_file_open(path, O_RDWR, 0, weft_now_ns() + 1000 * MS);
    cr_assert_geq(f, 0);
    char buf[16];
    uint64_t t0 = weft_now_ns();
    cr_assert_eq(weft_file_read(f, buf, sizeof buf, -1, t0 + 20 * MS),
                 -ETIMEDOUT);
    cr_assert_geq(weft_now_ns(), t0 + 20 * MS);
    struct iovec iov = {buf, sizeof buf};
    cr_assert_eq(weft_file_readv(f, &iov, 1, -1, weft_now_ns() + 5 * MS),
                 -ETIMEDOUT);
    cr_assert_eq(weft_file_write(f, "late", 4, -1, WEFT_NO_DEADLINE), 4);
    cr_assert_eq(weft_file_read(f, buf, sizeof buf, -1, WEFT_NO_DEADLINE), 4);
    cr_assert_eq(memcmp(buf, "late", 4), 0);
    weft_close(f);
    unlink(path);
    return 0;
}

Test(deadline, file_read_on_a_fifo_times_out, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, fifo_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t scope_main(void *arg)
{
    (void)arg;
    int c, s;
    pair(&c, &s);
    char buf[4];
    weft_deadline_t scope;
    uint64_t t0 = weft_now_ns();
    cr_assert_eq(weft_deadline_push(&scope, t0 + 15 * MS), 0);
    /* No deadline of its own: the scope's ends it. */
    cr_assert_eq(weft_recv(s, buf, sizeof buf, 0, WEFT_NO_DEADLINE),
                 -ETIMEDOUT);
    cr_assert_geq(weft_now_ns(), t0 + 15 * MS);
    /* Past the scope's deadline, every I/O call fails at once. */
    cr_assert_eq(weft_send(c, "x", 1, 0, WEFT_NO_DEADLINE), -ETIMEDOUT);
    cr_assert_eq(weft_deadline_pop(&scope), 0);
    cr_assert_eq(weft_send(c, "x", 1, 0, WEFT_NO_DEADLINE), 1);
    cr_assert_eq(weft_recv(s, buf, 1, 0, WEFT_NO_DEADLINE), 1);
    weft_close(c);
    weft_close(s);
    return 0;
}

Test(deadline, a_deadline_scope_applies_to_io, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, scope_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

/* Bytes sent at random moments against receives with random deadlines:
 * every byte arrives once, in order. */
struct racing {
    int c, s;
    uint64_t seed;
    int n;
};

static intptr_t racing_sender(void *arg)
{
    struct racing *r = arg;
    uint64_t seed = r->seed;
    for (int i = 0; i < r->n; i++) {
        weft_sleep_ns(test_rand(&seed) % 300000);
        unsigned char b = (unsigned char)i;
        cr_assert_eq(weft_send(r->c, &b, 1, 0, WEFT_NO_DEADLINE), 1);
    }
    return 0;
}

static intptr_t racing_main(void *arg)
{
    (void)arg;
    struct racing r;
    pair(&r.c, &r.s);
    r.seed = 31337;
    r.n = SCALED(1000) + 50;
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, racing_sender, &r), 0);
    uint64_t seed = 777;
    int got = 0, timeouts = 0;
    while (got < r.n) {
        unsigned char buf[64];
        ssize_t n = weft_recv(r.s, buf, sizeof buf, 0,
                              weft_now_ns() + test_rand(&seed) % 300000);
        if (n == -ETIMEDOUT) {
            timeouts++;
            continue;
        }
        cr_assert_gt(n, 0, "recv: %zd", n);
        for (ssize_t i = 0; i < n; i++)
            cr_assert_eq(buf[i], (unsigned char)(got + i), "byte %d", got);
        got += (int)n;
    }
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(got, r.n);
    cr_assert_gt(timeouts, 0); /* the race did happen */
    weft_close(r.c);
    weft_close(r.s);
    return 0;
}

Test(deadline, data_racing_deadlines_is_never_lost, .timeout = 120)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, racing_main, NULL), 0);
    cr_assert_eq(run_io(16, 11, racing_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

/* Kernels that refuse absolute link timeouts get relative ones, measured
 * from queueing: force that path (this worker's ring, from its own thread)
 * and check that it still times out, never early, and loses nothing. */
static intptr_t relative_main(void *arg)
{
    (void)arg;
    struct weft__ring *r = weft__worker_self()->ring;
    bool abs = r->abs_timeouts;
    r->abs_timeouts = false;
    int c, s;
    pair(&c, &s);
    char buf[8];
    for (int i = 0; i < 5; i++) {
        uint64_t t0 = weft_now_ns();
        cr_assert_eq(weft_recv(s, buf, sizeof buf, 0, t0 + 5 * MS), -ETIMEDOUT);
        cr_assert_geq(weft_now_ns(), t0 + 5 * MS);
    }
    cr_assert_eq(weft_send(c, "rel", 3, 0, WEFT_NO_DEADLINE), 3);
    cr_assert_eq(weft_recv(s, buf, 3, 0, weft_now_ns() + 1000 * MS), 3);
    cr_assert_eq(memcmp(buf, "rel", 3), 0);
    r->abs_timeouts = abs;
    weft_close(c);
    weft_close(s);
    return 0;
}

Test(deadline, relative_link_timeouts_work_too, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(1, 0, relative_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}
