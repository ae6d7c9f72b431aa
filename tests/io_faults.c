/* tests/io_faults.c: faults the I/O layer must report or absorb: EMFILE on
 * accept (reported; the server keeps serving the connections it has and
 * accepts again once fds are free), a full submission queue and a
 * completion queue that overflows (tiny rings, many operations at once:
 * nothing is lost), a runtime stopped with I/O in flight, a peer that
 * goes away, and shutdown waking a blocked reader. */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "io_test.h"

/* ---- EMFILE ---------------------------------------------------------------- */

static intptr_t emfile_main(void *arg)
{
    bool plain = arg != NULL;
    weft_addr_t addr;
    int lfd;
    if (plain) {
        /* A listener weft did not make: the one-operation accept path. */
        cr_assert_eq(weft_addr_ip(&addr, "127.0.0.1", 0), 0);
        lfd = weft_socket(AF_INET, SOCK_STREAM, 0);
        cr_assert_eq(bind(lfd, &addr.u.sa, addr.len), 0);
        cr_assert_eq(listen(lfd, 16), 0);
        cr_assert_eq(weft_addr_local(lfd, &addr), 0);
    } else {
        lfd = listen_loopback(&addr, 0, 0);
    }
    /* One connection being served (this also arms the multishot accept,
     * which takes the fd limit as it stands now). */
    int c0 = weft_connect(&addr, WEFT_NO_DEADLINE);
    int s0 = weft_accept(lfd, NULL, WEFT_NO_DEADLINE);
    cr_assert(c0 >= 0 && s0 >= 0);
    /* Clients for later, made before the fds run out. */
    enum { K = 3 };
    int cl[K];
    for (int i = 0; i < K; i++)
        cl[i] = weft_socket(AF_INET, SOCK_STREAM, 0);
    /* Use up every fd the limit allows. */
    static int filler[256];
    int nfill = 0;
    for (;;) {
        int fd = fcntl(lfd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0) {
            cr_assert_eq(errno, EMFILE);
            break;
        }
        cr_assert_lt(nfill, 256);
        filler[nfill++] = fd;
    }
    for (int i = 0; i < K; i++)
        cr_assert_eq(weft_connect_fd(cl[i], &addr, WEFT_NO_DEADLINE), 0);
    weft_sleep_ms(5);
    int r = weft_accept(lfd, NULL, weft_now_ns() + 2000000000ull);
    cr_assert(r == -EMFILE || r == -ENFILE, "accept: %d", r);
    /* The server keeps serving the connection it has. */
    cr_assert_eq(weft_send_all(c0, "still", 5, NULL, WEFT_NO_DEADLINE), 5);
    char buf[8];
    cr_assert_eq(weft_recv_exact(s0, buf, 5, NULL, WEFT_NO_DEADLINE), 5);
    cr_assert_eq(weft_send_all(s0, buf, 5, NULL, WEFT_NO_DEADLINE), 5);
    cr_assert_eq(weft_recv_exact(c0, buf, 5, NULL, WEFT_NO_DEADLINE), 5);
    /* Asking again while still out of fds reports it again. */
    r = weft_accept(lfd, NULL, weft_now_ns() + 2000000000ull);
    cr_assert(r == -EMFILE || r == -ENFILE, "accept: %d", r);
    /* fds come back: the queued connections are all accepted. */
    for (int i = 0; i < nfill; i++)
        close(filler[i]);
    for (int i = 0; i < K; i++) {
        int s = weft_accept(lfd, NULL, weft_now_ns() + 5000000000ull);
        cr_assert_geq(s, 0, "accept after recovery: %d", s);
        weft_close(s);
    }
    for (int i = 0; i < K; i++)
        weft_close(cl[i]);
    weft_close(c0);
    weft_close(s0);
    weft_close(lfd);
    return 0;
}

Test(faults, emfile_on_accept_is_reported_and_recoverable, .timeout = 60)
{
    int before = fd_count();
    /* A small limit, with room for the runtime's own fds and the test's,
     * which the test then fills up. */
    struct rlimit old, rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    int lowest = fcntl(0, F_DUPFD_CLOEXEC, 0);
    cr_assert_geq(lowest, 0);
    close(lowest);
    rl = old;
    rl.rlim_cur = (rlim_t)lowest + 64;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    cr_assert_eq(run_io(2, 0, emfile_main, NULL), 0);
    cr_assert_eq(run_io(2, 0, emfile_main, (void *)1), 0);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    cr_assert_eq(fd_count(), before);
}

/* ---- A full SQ and an overflowing CQ ---------------------------------------- */

enum { BURST = 600 };
static int burst_pipe[2];
static int burst_null;
static atomic_int burst_ok;

static intptr_t burst_op(void *arg)
{
    int i = (int)(intptr_t)arg;
    char b[4] = "abc";
    int r;
    switch (i % 3) {
    case 0: /* always writable: completes as soon as it is submitted */
        r = weft_wait_fd(burst_pipe[1], POLLOUT, WEFT_NO_DEADLINE);
        cr_assert(r & POLLOUT, "wait_fd: %d", r);
        break;
    case 1: /* with a deadline: two SQEs */
        r = (int)weft_write(burst_null, b, 3, weft_now_ns() + 60000000000ull);
        cr_assert_eq(r, 3);
        break;
    default:
        r = (int)weft_file_write(burst_null, b, 3, 0, WEFT_NO_DEADLINE);
        cr_assert_eq(r, 3);
        break;
    }
    atomic_fetch_add(&burst_ok, 1);
    return 0;
}

static intptr_t burst_main(void *arg)
{
    (void)arg;
    atomic_store(&burst_ok, 0);
    cr_assert_eq(pipe2(burst_pipe, O_CLOEXEC | O_NONBLOCK), 0);
    burst_null = weft_file_open("/dev/null", O_WRONLY, 0, WEFT_NO_DEADLINE);
    cr_assert_geq(burst_null, 0);
    static weft_task_t t[BURST];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < BURST; i++)
            cr_assert_eq(weft_spawn(&t[i], burst_op, (void *)(intptr_t)i), 0);
        for (int i = 0; i < BURST; i++)
            cr_assert_eq(weft_join(t[i]), 0);
    }
    cr_assert_eq(atomic_load(&burst_ok), 3 * BURST);
    weft_close(burst_pipe[0]);
    weft_close(burst_pipe[1]);
    weft_close(burst_null);
    return 0;
}

Test(faults, full_sq_and_cq_overflow_lose_nothing, .timeout = 60)
{
    int before = fd_count();
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.ring_entries = 8; /* SQ 8, CQ 32: hundreds of ops overflow both */
    cfg.pin = WEFT_PIN_OFF;
    for (unsigned workers = 1; workers <= 4; workers *= 4) {
        cfg.workers = workers;
        cr_assert_eq(run_cfg(&cfg, burst_main, NULL), 0);
    }
    cr_assert_eq(fd_count(), before);
}

/* ---- Stopping with I/O in flight ----------------------------------------------- */

static int stop_fds[5];

static intptr_t stuck_recv(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char b[8];
    ssize_t r = weft_recv(fd, b, sizeof b, 0, WEFT_NO_DEADLINE);
    cr_assert_eq(r, -ECANCELED);
    return 0;
}

static intptr_t stuck_accept(void *arg)
{
    int r = weft_accept((int)(intptr_t)arg, NULL, WEFT_NO_DEADLINE);
    cr_assert_eq(r, -ECANCELED);
    return 0;
}

static intptr_t stop_main(void *arg)
{
    (void)arg;
    weft_addr_t addr;
    int lfd = listen_loopback(&addr, 0, 0);
    int c = weft_connect(&addr, WEFT_NO_DEADLINE);
    int s = weft_accept(lfd, NULL, WEFT_NO_DEADLINE);
    weft_addr_t addr2;
    int lfd2 = listen_loopback(&addr2, 0, 0);
    stop_fds[0] = lfd;
    stop_fds[1] = c;
    stop_fds[2] = s;
    stop_fds[4] = lfd2;
    /* Detached, still blocked when main returns: the stop cancels them. */
    cr_assert_eq(weft_spawn(NULL, stuck_recv, (void *)(intptr_t)s), 0);
    cr_assert_eq(weft_spawn(NULL, stuck_recv, (void *)(intptr_t)c), 0);
    cr_assert_eq(weft_spawn(NULL, stuck_accept, (void *)(intptr_t)lfd2), 0);
    /* A connection that lfd's armed multishot accepts but nobody takes. */
    stop_fds[3] = weft_connect(&addr, WEFT_NO_DEADLINE);
    weft_sleep_ms(10);
    return 0;
}

Test(faults, stopping_with_io_in_flight_leaks_nothing, .timeout = 60)
{
    int before = fd_count();
    for (unsigned workers = 1; workers <= 2; workers++) {
        cr_assert_eq(run_io(workers, 0, stop_main, NULL), 0);
        /* The listeners and sockets outlive the runtime (they are the
         * caller's); the connection the multishot accepted for nobody was
         * closed when the runtime stopped. */
        for (int i = 0; i < 5; i++)
            cr_assert_eq(weft_close(stop_fds[i]), 0);
        cr_assert_eq(fd_count(), before);
    }
}

/* ---- The peer goes away; shutdown wakes a reader -------------------------------- */

static intptr_t blocked_reader(void *arg)
{
    char b[8];
    return weft_recv((int)(intptr_t)arg, b, sizeof b, 0, WEFT_NO_DEADLINE);
}

static intptr_t peer_main(void *arg)
{
    (void)arg;
    weft_addr_t addr;
    int lfd = listen_loopback(&addr, 0, 0);
    int c = weft_connect(&addr, WEFT_NO_DEADLINE);
    int s = weft_accept(lfd, NULL, WEFT_NO_DEADLINE);
    /* shutdown, not close, is how to wake a reader blocked on a socket:
     * the operation holds its own reference to the socket. */
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, blocked_reader, (void *)(intptr_t)s), 0);
    weft_sleep_ms(5);
    cr_assert_eq(weft_shutdown(s, SHUT_RDWR), 0);
    cr_assert_eq(weft_join(t), 0);
    /* The peer closed: sends fail with -EPIPE or -ECONNRESET, and no
     * SIGPIPE kills the process. */
    cr_assert_eq(weft_close(s), 0);
    static char big[1 << 16];
    ssize_t r = 0;
    for (int i = 0; i < 64 && r >= 0; i++)
        r = weft_send(c, big, sizeof big, 0, WEFT_NO_DEADLINE);
    cr_assert(r == -EPIPE || r == -ECONNRESET, "send: %zd", r);
    weft_close(c);
    weft_close(lfd);
    return 0;
}

Test(faults, peer_gone_and_shutdown_wakes_a_reader, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, peer_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}
