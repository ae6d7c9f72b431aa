/* tests/io_tcp.c: TCP on loopback through the rings: echo across 16
 * oversubscribed workers, short reads and writes with tiny socket buffers,
 * 10,000 concurrent connections (client in a second process: both ends of
 * 10,000 connections need the whole 20,000-fd hard limit), IPv6, refused
 * connects, peer resets, EOF in the middle of a message, listeners
 * (SO_REUSEPORT, queued connections, close while accepting), pooled
 * receives, and bad input. Every test counts the process's fds before and
 * after. No test asserts a wall-clock bound. */
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "io_test.h"

/* ---- Echo across workers ------------------------------------------------- */

struct echo_server {
    int lfd;
    int nconn;
};

static intptr_t echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    intptr_t total = 0;
    for (;;) {
        ssize_t n = weft_recv(fd, buf, sizeof buf, 0, WEFT_NO_DEADLINE);
        if (n <= 0)
            break;
        if (weft_send_all(fd, buf, (size_t)n, NULL, WEFT_NO_DEADLINE) != n)
            break;
        total += n;
    }
    cr_assert_eq(weft_close(fd), 0);
    return total;
}

static intptr_t echo_acceptor(void *arg)
{
    struct echo_server *s = arg;
    for (int i = 0; i < s->nconn; i++) {
        int c = weft_accept(s->lfd, NULL, WEFT_NO_DEADLINE);
        cr_assert_geq(c, 0, "accept: %s", strerror(-c));
        cr_assert_eq(weft_spawn(NULL, echo_conn, (void *)(intptr_t)c), 0);
    }
    return 0;
}

struct echo_client {
    weft_addr_t addr;
    uint64_t id;
    int rounds;
    size_t bytes; /* out: bytes echoed and checked */
};

static intptr_t echo_client(void *arg)
{
    struct echo_client *c = arg;
    uint64_t seed = c->id * 7919 + 1;
    int fd = weft_connect(&c->addr, WEFT_NO_DEADLINE);
    cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
    unsigned char out[3000], in[3000];
    uint64_t pos = 0;
    for (int r = 0; r < c->rounds; r++) {
        size_t n = 1 + test_rand(&seed) % sizeof out;
        for (size_t i = 0; i < n; i++)
            out[i] = pattern(c->id, pos + i);
        cr_assert_eq(weft_send_all(fd, out, n, NULL, WEFT_NO_DEADLINE),
                     (ssize_t)n);
        if (test_rand(&seed) % 4 == 0)
            weft_yield();
        size_t got = 0;
        cr_assert_eq(weft_recv_exact(fd, in, n, &got, WEFT_NO_DEADLINE),
                     (ssize_t)n);
        cr_assert_eq(got, n);
        cr_assert_eq(memcmp(in, out, n), 0, "client %d round %d: bad echo",
                     (int)c->id, r);
        pos += n;
    }
    cr_assert_eq(weft_close(fd), 0);
    c->bytes = pos;
    return 0;
}

static intptr_t echo_main(void *arg)
{
    (void)arg;
    enum { CLIENTS = 200 };
    int rounds = SCALED(200) / 10 + 2;
    static struct echo_client cl[CLIENTS];
    struct echo_server s;
    weft_addr_t addr;
    s.lfd = listen_loopback(&addr, 0, 0);
    s.nconn = CLIENTS;
    weft_task_t acc, t[CLIENTS];
    cr_assert_eq(weft_spawn(&acc, echo_acceptor, &s), 0);
    for (int i = 0; i < CLIENTS; i++) {
        cl[i] = (struct echo_client){.addr = addr, .id = (uint64_t)i,
                                     .rounds = rounds};
        cr_assert_eq(weft_spawn(&t[i], echo_client, &cl[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    cr_assert_eq(weft_join(acc), 0);
    for (int i = 0; i < CLIENTS; i++)
        cr_assert_gt(cl[i].bytes, 0);
    cr_assert_eq(weft_close(s.lfd), 0);
    return 0;
}

Test(tcp, echo_across_sixteen_workers, .timeout = 120)
{
    int before = fd_count();
    cr_assert_eq(run_io(16, 0, echo_main, NULL), 0);
    cr_assert_eq(run_io(16, 0xdecaf, echo_main, NULL), 0);
    cr_assert_eq(run_io(1, 0, echo_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

/* ---- Short reads and writes -------------------------------------------------- */

struct stream {
    int fd;
    size_t total;
    int partial_sends; /* sends that moved less than asked */
    int recvs;
};

static intptr_t stream_sender(void *arg)
{
    struct stream *s = arg;
    unsigned char *buf = malloc(s->total);
    cr_assert(buf);
    for (size_t i = 0; i < s->total; i++)
        buf[i] = pattern(99, i);
    size_t off = 0;
    while (off < s->total) {
        ssize_t n = weft_send(s->fd, buf + off, s->total - off, 0,
                              WEFT_NO_DEADLINE);
        cr_assert_gt(n, 0, "send: %s", strerror((int)-n));
        if ((size_t)n < s->total - off)
            s->partial_sends++;
        off += (size_t)n;
    }
    free(buf);
    cr_assert_eq(weft_shutdown(s->fd, SHUT_WR), 0);
    return 0;
}

static intptr_t stream_receiver(void *arg)
{
    struct stream *s = arg;
    uint64_t seed = 5;
    unsigned char buf[8192];
    size_t pos = 0;
    for (;;) {
        size_t want = 1 + test_rand(&seed) % sizeof buf;
        ssize_t n;
        if (test_rand(&seed) % 2) {
            n = weft_recv(s->fd, buf, want, 0, WEFT_NO_DEADLINE);
        } else {
            /* readv into two pieces */
            struct iovec iov[2] = {{buf, want / 2}, {buf + want / 2,
                                                     want - want / 2}};
            n = weft_readv(s->fd, iov, 2, WEFT_NO_DEADLINE);
        }
        cr_assert_geq(n, 0, "recv: %s", strerror((int)-n));
        if (n == 0)
            break;
        s->recvs++;
        for (ssize_t i = 0; i < n; i++)
            cr_assert_eq(buf[i], pattern(99, pos + (size_t)i), "byte %zu",
                         pos + (size_t)i);
        pos += (size_t)n;
        if (test_rand(&seed) % 8 == 0)
            weft_yield();
    }
    cr_assert_eq(pos, s->total);
    return 0;
}

static intptr_t short_main(void *arg)
{
    (void)arg;
    weft_addr_t addr;
    int lfd = listen_loopback(&addr, 0, 0);
    int c = weft_connect(&addr, WEFT_NO_DEADLINE);
    cr_assert_geq(c, 0);
    int s = weft_accept(lfd, NULL, WEFT_NO_DEADLINE);
    cr_assert_geq(s, 0);
    /* Small buffers make the kernel take less than asked. Not smaller on
     * the receiving side: below about 16 KiB, loopback TCP stalls for
     * 200 ms at a time (window updates wait for its timers), with or
     * without weft. */
    int sndbuf = 4096, rcvbuf = 16384;
    cr_assert_eq(setsockopt(c, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf),
                 0);
    cr_assert_eq(setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf),
                 0);
    struct stream st = {.total = SCALED((size_t)1 << 20) + 12345};
    struct stream rs = st;
    st.fd = c;
    rs.fd = s;
    weft_task_t a, b;
    cr_assert_eq(weft_spawn(&a, stream_sender, &st), 0);
    cr_assert_eq(weft_spawn(&b, stream_receiver, &rs), 0);
    cr_assert_eq(weft_join(a), 0);
    cr_assert_eq(weft_join(b), 0);
    /* Tiny buffers force the kernel to take less than asked. */
    cr_assert_gt(st.partial_sends, 0);
    cr_assert_gt(rs.recvs, 1);
    cr_assert_eq(weft_close(c), 0);
    cr_assert_eq(weft_close(s), 0);
    cr_assert_eq(weft_close(lfd), 0);
    return 0;
}

Test(tcp, short_reads_and_writes_with_tiny_buffers, .timeout = 120)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, short_main, NULL), 0);
    cr_assert_eq(run_io(16, 77, short_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

/* ---- 10,000 concurrent connections ---------------------------------------- */

#if WEFT_TEST_SCALE > 1
#define MANY 2000
#else
#define MANY 10000
#endif

static weft_addr_t many_addr;
static atomic_int many_ok;

static intptr_t many_client(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg, echo;
    char go[2];
    int fd = weft_connect(&many_addr, WEFT_NO_DEADLINE);
    if (fd < 0)
        return fd;
    if (weft_recv_exact(fd, go, 2, NULL, WEFT_NO_DEADLINE) == 2 &&
        weft_send_all(fd, &id, 4, NULL, WEFT_NO_DEADLINE) == 4 &&
        weft_recv_exact(fd, &echo, 4, NULL, WEFT_NO_DEADLINE) == 4 &&
        echo == id)
        atomic_fetch_add(&many_ok, 1);
    weft_close(fd);
    return 0;
}

static intptr_t many_clients(void *arg)
{
    (void)arg;
    weft_task_t *t = calloc(MANY, sizeof *t);
    if (!t)
        return -1;
    for (uint32_t i = 0; i < MANY; i++)
        if (weft_spawn(&t[i], many_client, (void *)(uintptr_t)i) != 0)
            return -1;
    intptr_t bad = 0;
    for (uint32_t i = 0; i < MANY; i++)
        bad |= weft_join(t[i]);
    free(t);
    return bad;
}

static int many_lfd;
static int *many_fds;
static atomic_int many_served;

static intptr_t many_handler(void *arg)
{
    int fd = (int)(intptr_t)arg;
    uint32_t id;
    char eof;
    if (weft_send_all(fd, "go", 2, NULL, WEFT_NO_DEADLINE) == 2 &&
        weft_recv_exact(fd, &id, 4, NULL, WEFT_NO_DEADLINE) == 4 &&
        weft_send_all(fd, &id, 4, NULL, WEFT_NO_DEADLINE) == 4 &&
        weft_recv(fd, &eof, 1, 0, WEFT_NO_DEADLINE) == 0)
        atomic_fetch_add(&many_served, 1);
    cr_assert_eq(weft_close(fd), 0);
    return 0;
}

static intptr_t many_server(void *arg)
{
    (void)arg;
    /* Hold every connection open before any is served: all MANY are
     * concurrent. */
    for (int i = 0; i < MANY; i++) {
        many_fds[i] = weft_accept(many_lfd, NULL, WEFT_NO_DEADLINE);
        cr_assert_geq(many_fds[i], 0, "accept %d: %s", i,
                      strerror(-many_fds[i]));
    }
    weft_task_t *t = calloc(MANY, sizeof *t);
    cr_assert(t);
    for (int i = 0; i < MANY; i++)
        cr_assert_eq(weft_spawn(&t[i], many_handler,
                                (void *)(intptr_t)many_fds[i]), 0);
    for (int i = 0; i < MANY; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    free(t);
    return 0;
}

Test(tcp, ten_thousand_concurrent_connections, .timeout = 300)
{
    rlim_t lim = raise_fd_limit();
    cr_assert_geq(lim, (rlim_t)MANY + 200, "fd hard limit %lu too low",
                  (unsigned long)lim);
    int before = fd_count();
    many_lfd = weft_listen(&(weft_addr_t){0}, 0, 0); /* -EINVAL: no address */
    cr_assert_eq(many_lfd, -EINVAL);
    many_lfd = listen_loopback(&many_addr, 0, 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* The client process: its own runtime, no Criterion asserts. */
        close(many_lfd);
        weft_config_t cfg;
        weft_config_init(&cfg);
        cfg.workers = 16;
        cfg.pin = WEFT_PIN_OFF;
        intptr_t r = -1;
        int err = weft_run(&cfg, many_clients, NULL, &r);
        _exit(err == 0 && r == 0 && atomic_load(&many_ok) == MANY ? 0 : 1);
    }
    many_fds = calloc(MANY, sizeof *many_fds);
    cr_assert(many_fds);
    cr_assert_eq(run_io(16, 0, many_server, NULL), 0);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the client process failed (status %d)", status);
    cr_assert_eq(atomic_load(&many_served), MANY);
    free(many_fds);
    cr_assert_eq(weft_close(many_lfd), 0);
    cr_assert_eq(fd_count(), before);
}

/* ---- IPv6, refused, reset, EOF ------------------------------------------- */

static intptr_t v6_main(void *arg)
{
    (void)arg;
    weft_addr_t addr;
    int lfd = listen_loopback(&addr, 1, 0);
    char name[64];
    cr_assert_gt(weft_addr_format(&addr, name, sizeof name), 0);
    cr_assert_eq(strncmp(name, "[::1]:", 6), 0, "%s", name);
    int c = weft_connect(&addr, WEFT_NO_DEADLINE);
    cr_assert_geq(c, 0);
    weft_addr_t peer;
    int s = weft_accept(lfd, &peer, WEFT_NO_DEADLINE);
    cr_assert_geq(s, 0);
    cr_assert_eq(peer.u.sa.sa_family, AF_INET6);
    cr_assert_eq(weft_send_all(c, "six", 3, NULL, WEFT_NO_DEADLINE), 3);
    char buf[3];
    cr_assert_eq(weft_recv_exact(s, buf, 3, NULL, WEFT_NO_DEADLINE), 3);
    cr_assert_eq(memcmp(buf, "six", 3), 0);
    weft_close(c);
    weft_close(s);
    weft_close(lfd);
    return 0;
}

Test(tcp, ipv6_loopback, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, v6_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t refused_main(void *arg)
{
    (void)arg;
    weft_addr_t addr;
    int lfd = listen_loopback(&addr, 0, 0);
    cr_assert_eq(weft_close(lfd), 0); /* the port is free now */
    int before = fd_count();
    cr_assert_eq(weft_connect(&addr, WEFT_NO_DEADLINE), -ECONNREFUSED);
    cr_assert_eq(fd_count(), before); /* the failed connect left no fd */
    return 0;
}

Test(tcp, connect_to_closed_port_is_refused, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, refused_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t reset_main(void *arg)
{
    (void)arg;
    weft_addr_t addr;
    int lfd = listen_loopback(&addr, 0, 0);
    int c = weft_connect(&addr, WEFT_NO_DEADLINE);
    int s = weft_accept(lfd, NULL, WEFT_NO_DEADLINE);
    cr_assert(c >= 0 && s >= 0);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    cr_assert_eq(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    cr_assert_eq(weft_close(c), 0); /* RST, not FIN */
    char buf[16];
    cr_assert_eq(weft_recv(s, buf, sizeof buf, 0, WEFT_NO_DEADLINE),
                 -ECONNRESET);
    /* A send to the reset peer fails; it raises no SIGPIPE (which would
     * kill this process). */
    ssize_t r = weft_send(s, "x", 1, 0, WEFT_NO_DEADLINE);
    cr_assert(r == -EPIPE || r == -ECONNRESET, "send: %zd", r);
    cr_assert_eq(weft_send_all(s, "xyz", 3, NULL, WEFT_NO_DEADLINE), -EPIPE);
    weft_close(s);
    weft_close(lfd);
    return 0;
}

Test(tcp, peer_reset_is_reported, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, reset_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t eof_main(void *arg)
{
    (void)arg;
    weft_addr_t addr;
    int lfd = listen_loopback(&addr, 0, 0);
    int c = weft_connect(&addr, WEFT_NO_DEADLINE);
    int s = weft_accept(lfd, NULL, WEFT_NO_DEADLINE);
    cr_assert(c >= 0 && s >= 0);
    cr_assert_eq(weft_send_all(c, "abc", 3, NULL, WEFT_NO_DEADLINE), 3);
    cr_assert_eq(weft_shutdown(c, SHUT_WR), 0);
    char buf[10];
    size_t done = 99;
    cr_assert_eq(weft_recv_exact(s, buf, 10, &done, WEFT_NO_DEADLINE), 3);
    cr_assert_eq(done, 3);
    cr_assert_eq(memcmp(buf, "abc", 3), 0);
    /* At the end of the stream before the message: 0. */
    cr_assert_eq(weft_recv_exact(s, buf, 10, &done, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(done, 0);
    weft_close(c);
    weft_close(s);
    weft_close(lfd);
    return 0;
}

Test(tcp, eof_in_the_middle_of_a_message, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, eof_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

/* ---- Listeners ---------------------------------------------------------------- */

static intptr_t reuseport_main(void *arg)
{
    (void)arg;
    weft_addr_t addr;
    cr_assert_eq(weft_addr_ip(&addr, "127.0.0.1", 0), 0);
    int a = weft_listen(&addr, 16, WEFT_REUSEPORT);
    cr_assert_geq(a, 0);
    cr_assert_eq(weft_addr_local(a, &addr), 0);
    int b = weft_listen(&addr, 16, WEFT_REUSEPORT);
    cr_assert_geq(b, 0, "second SO_REUSEPORT listener: %s", strerror(-b));
    cr_assert_eq(weft_listen(&addr, 16, 0), -EADDRINUSE);
    cr_assert_eq(weft_listen(&addr, 16, WEFT_V6ONLY), -EINVAL); /* not v6 */
    cr_assert_eq(weft_listen(&addr, -1, 0), -EINVAL);
    cr_assert_eq(weft_listen(&addr, 0, 0x100), -EINVAL);
    /* Connections land on either; both accept. */
    int got = 0;
    for (int i = 0; i < 20; i++) {
        int c = weft_connect(&addr, WEFT_NO_DEADLINE);
        cr_assert_geq(c, 0);
        int s = weft_accept(a, NULL, weft_now_ns() + 20000000);
        if (s == -ETIMEDOUT)
            s = weft_accept(b, NULL, WEFT_NO_DEADLINE);
        cr_assert_geq(s, 0);
        got++;
        weft_close(s);
        weft_close(c);
    }
    cr_assert_eq(got, 20);
    weft_close(a);
    weft_close(b);
    return 0;
}

Test(tcp, reuseport_lets_listeners_share_a_port, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, reuseport_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t queued_main(void *arg)
{
    (void)arg;
    enum { N = 300 }; /* beyond the listener's queue mark (64) */
    weft_addr_t addr;
    int lfd = listen_loopback(&addr, 0, 0);
    /* Arm the multishot accept, then let connections pile up. */
    cr_assert_eq(weft_accept(lfd, NULL, weft_now_ns() + 1000000), -ETIMEDOUT);
    static int cfd[N];
    for (int i = 0; i < N; i++) {
        cfd[i] = weft_connect(&addr, WEFT_NO_DEADLINE);
        cr_assert_geq(cfd[i], 0);
        cr_assert_eq(weft_send_all(cfd[i], &i, sizeof i, NULL,
                                   WEFT_NO_DEADLINE), (ssize_t)sizeof i);
        if (i % 50 == 0)
            weft_sleep_ms(1); /* let the ring accept a batch */
    }
    static bool seen[N];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < N; i++) {
        int s = weft_accept(lfd, NULL, WEFT_NO_DEADLINE);
        cr_assert_geq(s, 0);
        int id = -1;
        cr_assert_eq(weft_recv_exact(s, &id, sizeof id, NULL,
                                     WEFT_NO_DEADLINE), (ssize_t)sizeof id);
        cr_assert(id >= 0 && id < N && !seen[id], "id %d", id);
        seen[id] = true;
        weft_close(s);
    }
    for (int i = 0; i < N; i++)
        weft_close(cfd[i]);
    weft_close(lfd);
    return 0;
}

Test(tcp, connections_made_before_accept_are_all_accepted, .timeout = 60)
{
    int before = fd_count();
    cr_assert_eq(run_io(1, 0, queued_main, NULL), 0);
    cr_assert_eq(run_io(4, 3, queued_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static int closing_lfd;

static intptr_t blocked_acceptor(void *arg)
{
    (void)arg;
    return weft_accept(closing_lfd, NULL, WEFT_NO_DEADLINE);
}

static void *close_on_thread(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_close(closing_lfd), 0);
    return NULL;
}

static intptr_t close_main(void *arg)
{
    (void)arg;
    weft_addr_t addr;
    closing_lfd = listen_loopback(&addr, 0, 0);
    weft_task_t t[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_spawn(&t[i], blocked_acceptor, NULL), 0);
    weft_sleep_ms(20);
    cr_assert_eq(weft_close(closing_lfd), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_join(t[i]), -EBADF);
    /* A connection now finds nobody listening. */
    cr_assert_eq(weft_connect(&addr, WEFT_NO_DEADLINE), -ECONNREFUSED);

    /* The same, closed from a plain thread: it waits (on its futex) until
     * the ring let go of the socket, then closes it. */
    closing_lfd = listen_loopback(&addr, 0, 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_spawn(&t[i], blocked_acceptor, NULL), 0);
    weft_sleep_ms(20);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, close_on_thread, NULL), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_join(t[i]), -EBADF);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(weft_connect(&addr, WEFT_NO_DEADLINE), -ECONNREFUSED);
    /* And the port can be bound again at once. */
    int again = weft_listen(&addr, 0, WEFT_REUSEADDR);
    cr_assert_geq(again, 0, "rebind: %s", strerror(-again));
    weft_close(again);
    return 0;
}

Test(tcp, closing_a_listener_fails_its_acceptors, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(4, 0, close_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

/* An accept that starts while its listener is being closed. The closer
 * used to take the listener out of the table before waiting for its
 * multishot to end: an accept arriving in that window armed a plain accept
 * on the closing socket, which the ring kept open after the fd was gone,
 * and waited forever (the HTTP server's stop hung on its acceptor). */
struct racing_close {
    int lfd;
    unsigned spin;
};

static void spin_for(unsigned n)
{
    for (volatile unsigned i = 0; i < n; i++)
        ;
}

static intptr_t racing_acceptor(void *arg)
{
    struct racing_close *rc = arg;
    spin_for(rc->spin);
    return weft_accept(rc->lfd, NULL, WEFT_NO_DEADLINE);
}

#define RACERS 4

static intptr_t racing_close_main(void *arg)
{
    (void)arg;
    uint64_t rng = 0x2545F4914F6CDD1Dull;
    for (int iter = 0; iter < SCALED(400); iter++) {
        weft_addr_t addr;
        int lfd = listen_loopback(&addr, 0, 0);
        /* One acceptor blocked first: the multishot is armed, so the
         * close has to wait for its end. */
        struct racing_close blocked = {lfd, 0};
        weft_task_t b;
        cr_assert_eq(weft_spawn(&b, racing_acceptor, &blocked), 0);
        weft_sleep_ms(1);
        struct racing_close rc[RACERS];
        weft_task_t t[RACERS];
        for (int i = 0; i < RACERS; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            rc[i] = (struct racing_close){lfd, (unsigned)(rng % 20000)};
            cr_assert_eq(weft_spawn(&t[i], racing_acceptor, &rc[i]), 0);
        }
        spin_for((unsigned)(rng >> 40) % 20000);
        cr_assert_eq(weft_close(lfd), 0);
        /* Nobody connected: every accept fails, none hangs. */
        cr_assert_eq(weft_join(b), -EBADF);
        for (int i = 0; i < RACERS; i++)
            cr_assert_eq(weft_join(t[i]), -EBADF, "iteration %d", iter);
    }
    return 0;
}

Test(tcp, an_accept_racing_the_close_of_its_listener_fails, .timeout = 120)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, racing_close_main, NULL), 0);
    cr_assert_eq(run_io(3, 0xacce97, racing_close_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

/* ---- Pooled receives --------------------------------------------------------- */

struct pooled {
    int c, s;
};

static void *release_on_thread(void *arg)
{
    weft_rbuf_t *b = arg;
    for (int i = 0; i < 64; i++)
        weft_rbuf_release(&b[i]);
    return NULL;
}

static intptr_t pooled_main(void *arg)
{
    (void)arg;
    weft_addr_t addr;
    int lfd = listen_loopback(&addr, 0, 0);
    int c = weft_connect(&addr, WEFT_NO_DEADLINE);
    int s = weft_accept(lfd, NULL, WEFT_NO_DEADLINE);
    cr_assert(c >= 0 && s >= 0);
    enum { HELD = 300 }; /* more than the pool's 256 buffers */
    static weft_rbuf_t held[HELD];
    for (int i = 0; i < HELD; i++) {
        char msg[8];
        snprintf(msg, sizeof msg, "m%05d", i);
        cr_assert_eq(weft_send_all(c, msg, 6, NULL, WEFT_NO_DEADLINE), 6);
        size_t got = 0;
        while (got < 6) {
            weft_rbuf_t *b = &held[i];
            if (got) {
                /* The rest of a split message: append, then keep one. */
                weft_rbuf_t more;
                ssize_t n = weft_recv_pooled(s, &more, WEFT_NO_DEADLINE);
                cr_assert_gt(n, 0);
                cr_assert_eq(memcmp((char *)more.data, msg + got, (size_t)n), 0);
                got += (size_t)n;
                weft_rbuf_release(&more);
                continue;
            }
            ssize_t n = weft_recv_pooled(s, b, WEFT_NO_DEADLINE);
            cr_assert_gt(n, 0, "recv_pooled: %s", strerror((int)-n));
            cr_assert_eq((size_t)n, b->len);
            cr_assert_eq(memcmp(b->data, msg, (size_t)n), 0);
            got = (size_t)n;
        }
    }
    /* Give 64 back from a plain thread (the owner gets a message), the
     * rest here. */
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, release_on_thread, held), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    for (int i = 64; i < HELD; i++)
        weft_rbuf_release(&held[i]);
    for (int i = 0; i < HELD; i++)
        cr_assert_null(held[i].data);
    weft_rbuf_release(&held[0]); /* an empty one: nothing happens */
    /* The pool works again after all came back. */
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(weft_send_all(c, "again", 5, NULL, WEFT_NO_DEADLINE), 5);
        weft_rbuf_t b;
        size_t got = 0;
        while (got < 5) {
            ssize_t n = weft_recv_pooled(s, &b, WEFT_NO_DEADLINE);
            cr_assert_gt(n, 0);
            got += (size_t)n;
            weft_rbuf_release(&b);
        }
    }
    /* End of stream lends nothing. */
    weft_close(c);
    weft_rbuf_t b = {0};
    cr_assert_eq(weft_recv_pooled(s, &b, WEFT_NO_DEADLINE), 0);
    cr_assert_null(b.data);
    cr_assert_eq(weft_recv_pooled(-1, &b, WEFT_NO_DEADLINE), -EBADF);
    cr_assert_eq(weft_recv_pooled(s, NULL, WEFT_NO_DEADLINE), -EINVAL);
    weft_close(s);
    weft_close(lfd);
    return 0;
}

Test(tcp, pooled_receives_survive_an_empty_pool, .timeout = 60)
{
    int before = fd_count();
    cr_assert_eq(run_io(1, 0, pooled_main, NULL), 0);
    cr_assert_eq(run_io(4, 9, pooled_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

/* ---- Bad input --------------------------------------------------------------- */

static intptr_t bad_main(void *arg)
{
    (void)arg;
    char buf[16];
    memset(buf, 0x5a, sizeof buf);
    weft_addr_t addr;
    int lfd = listen_loopback(&addr, 0, 0);
    int c = weft_connect(&addr, WEFT_NO_DEADLINE);
    cr_assert_geq(c, 0);
    cr_assert_eq(weft_recv(-1, buf, sizeof buf, 0, WEFT_NO_DEADLINE), -EBADF);
    cr_assert_eq(weft_recv(c, NULL, 10, 0, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_recv(c, buf, (size_t)-1, 0, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_send(c, NULL, 1, 0, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_send(-3, buf, 1, 0, WEFT_NO_DEADLINE), -EBADF);
    cr_assert_eq(weft_send_all(c, buf, (size_t)-5, NULL, WEFT_NO_DEADLINE),
                 -EINVAL);
    cr_assert_eq(weft_recv_exact(-1, buf, 1, NULL, WEFT_NO_DEADLINE), -EBADF);
    cr_assert_eq(weft_readv(c, NULL, 1, WEFT_NO_DEADLINE), -EINVAL);
    struct iovec iov = {NULL, 4};
    cr_assert_eq(weft_writev(c, &iov, 1, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_writev(c, &iov, -1, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_accept(-1, NULL, WEFT_NO_DEADLINE), -EBADF);
    cr_assert_eq(weft_connect(NULL, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_connect_fd(-1, &addr, WEFT_NO_DEADLINE), -EBADF);
    cr_assert_eq(weft_shutdown(c, 42), -EINVAL);
    cr_assert_eq(weft_shutdown(-1, SHUT_RD), -EBADF);
    /* A closed fd: the kernel says -EBADF. */
    int dead = weft_socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(dead, 0);
    cr_assert_eq(weft_close(dead), 0);
    cr_assert_eq(weft_recv(dead, buf, sizeof buf, 0, WEFT_NO_DEADLINE), -EBADF);
    cr_assert_eq(weft_send(dead, buf, 1, 0, WEFT_NO_DEADLINE), -EBADF);
    cr_assert_eq(weft_close(dead), -EBADF);
    /* Accept on a socket that does not listen. */
    cr_assert_eq(weft_accept(c, NULL, WEFT_NO_DEADLINE), -EINVAL);
    /* Nothing was written into the buffer by any of them. */
    for (size_t i = 0; i < sizeof buf; i++)
        cr_assert_eq((unsigned char)buf[i], 0x5a);
    cr_assert_eq(weft_recv(c, buf, 0, 0, WEFT_NO_DEADLINE), 0); /* len 0 */
    weft_close(c);
    weft_close(lfd);
    return 0;
}

Test(tcp, bad_input_changes_nothing, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, bad_main, NULL), 0);
    /* Fiber-only calls from a plain thread. */
    char buf[4];
    cr_assert_eq(weft_recv(0, buf, 1, 0, WEFT_NO_DEADLINE), -EPERM);
    cr_assert_eq(weft_accept(0, NULL, WEFT_NO_DEADLINE), -EPERM);
    weft_addr_t a;
    cr_assert_eq(weft_addr_ip(&a, "127.0.0.1", 1), 0);
    cr_assert_eq(weft_connect(&a, WEFT_NO_DEADLINE), -EPERM);
    cr_assert_eq(fd_count(), before);
}
