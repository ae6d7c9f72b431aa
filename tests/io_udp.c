/* tests/io_udp.c: datagrams through the rings: sendto/recvfrom on IPv4 and
 * IPv6 with the sender's address, empty and truncated datagrams, connected
 * sockets, scatter-gather with sendmsg/recvmsg, many senders counted
 * exactly, deadlines and bad input. */
#include <stdatomic.h>
#include <stdlib.h>

#include "io_test.h"

static int bind_udp(const char *ip, weft_addr_t *addr)
{
    cr_assert_eq(weft_addr_ip(addr, ip, 0), 0);
    int fd = weft_udp_bind(addr, 0);
    cr_assert_geq(fd, 0, "udp bind: %s", strerror(-fd));
    cr_assert_eq(weft_addr_local(fd, addr), 0);
    return fd;
}

static bool same_addr(const weft_addr_t *a, const weft_addr_t *b)
{
    return a->len == b->len && memcmp(&a->u, &b->u, a->len) == 0;
}

static intptr_t exchange_main(void *arg)
{
    const char *ip = arg;
    weft_addr_t aa, ba;
    int a = bind_udp(ip, &aa), b = bind_udp(ip, &ba);
    unsigned char out[1400], in[1500];
    for (int i = 0; i < 100; i++) {
        size_t n = (size_t)(i * 13) % sizeof out; /* 0 included: empty */
        for (size_t k = 0; k < n; k++)
            out[k] = pattern((uint64_t)i, k);
        cr_assert_eq(weft_sendto(b, out, n, 0, &aa, WEFT_NO_DEADLINE),
                     (ssize_t)n);
        weft_addr_t from;
        memset(&from, 0, sizeof from);
        cr_assert_eq(weft_recvfrom(a, in, sizeof in, 0, &from,
                                   WEFT_NO_DEADLINE), (ssize_t)n);
        cr_assert_eq(memcmp(in, out, n), 0);
        cr_assert(same_addr(&from, &ba), "datagram %d from the wrong sender", i);
        /* And back, to the address it came from. */
        cr_assert_eq(weft_sendto(a, in, n, 0, &from, WEFT_NO_DEADLINE),
                     (ssize_t)n);
        cr_assert_eq(weft_recvfrom(b, in, sizeof in, 0, NULL,
                                   WEFT_NO_DEADLINE), (ssize_t)n);
    }
    weft_close(a);
    weft_close(b);
    return 0;
}

Test(udp, sendto_and_recvfrom_on_ipv4_and_ipv6, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, exchange_main, "127.0.0.1"), 0);
    cr_assert_eq(run_io(2, 0, exchange_main, "::1"), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t connected_main(void *arg)
{
    (void)arg;
    weft_addr_t aa, ba;
    int a = bind_udp("127.0.0.1", &aa), b = bind_udp("127.0.0.1", &ba);
    cr_assert_eq(weft_connect_fd(b, &aa, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_send(b, "ping", 4, 0, WEFT_NO_DEADLINE), 4);
    char buf[16];
    weft_addr_t from;
    cr_assert_eq(weft_recvfrom(a, buf, sizeof buf, 0, &from,
                               WEFT_NO_DEADLINE), 4);
    cr_assert(same_addr(&from, &ba));
    cr_assert_eq(weft_sendto(a, "pong", 4, 0, &from, WEFT_NO_DEADLINE), 4);
    cr_assert_eq(weft_recv(b, buf, sizeof buf, 0, WEFT_NO_DEADLINE), 4);
    cr_assert_eq(memcmp(buf, "pong", 4), 0);
    /* A datagram longer than the buffer: the rest is dropped, or its
     * length reported with MSG_TRUNC. */
    char big[100];
    memset(big, 'b', sizeof big);
    cr_assert_eq(weft_send(b, big, sizeof big, 0, WEFT_NO_DEADLINE), 100);
    cr_assert_eq(weft_recvfrom(a, buf, 10, 0, NULL, WEFT_NO_DEADLINE), 10);
    cr_assert_eq(weft_send(b, big, sizeof big, 0, WEFT_NO_DEADLINE), 100);
    cr_assert_eq(weft_recvfrom(a, buf, 10, MSG_TRUNC, NULL, WEFT_NO_DEADLINE),
                 100);
    /* Scatter-gather. */
    char h[3] = "hdr", body[5] = "body!";
    struct iovec out[2] = {{h, 3}, {body, 5}};
    struct msghdr m = {.msg_iov = out, .msg_iovlen = 2};
    cr_assert_eq(weft_sendmsg(b, &m, 0, WEFT_NO_DEADLINE), 8);
    char x[4], y[4];
    struct iovec in[2] = {{x, 4}, {y, 4}};
    weft_addr_t src;
    struct msghdr r = {.msg_name = &src.u, .msg_namelen = sizeof src.u,
                       .msg_iov = in, .msg_iovlen = 2};
    cr_assert_eq(weft_recvmsg(a, &r, 0, WEFT_NO_DEADLINE), 8);
    cr_assert_eq(memcmp(x, "hdrb", 4), 0);
    cr_assert_eq(memcmp(y, "ody!", 4), 0);
    src.len = r.msg_namelen;
    cr_assert(same_addr(&src, &ba));
    weft_close(a);
    weft_close(b);
    return 0;
}

Test(udp, connected_truncated_and_vectored, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, connected_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

/* Several senders on other workers, one receiver: every datagram counted. */
enum { SENDERS = 8, EACH = 200 };
static weft_addr_t sink_addr;
static atomic_int sent_total;

static intptr_t udp_sender(void *arg)
{
    int id = (int)(intptr_t)arg;
    weft_addr_t me;
    int fd = bind_udp("127.0.0.1", &me);
    for (int i = 0; i < EACH; i++) {
        uint32_t msg[2] = {(uint32_t)id, (uint32_t)i};
        cr_assert_eq(weft_sendto(fd, msg, sizeof msg, 0, &sink_addr,
                                 WEFT_NO_DEADLINE), (ssize_t)sizeof msg);
        atomic_fetch_add(&sent_total, 1);
        if (i % 16 == 0)
            weft_yield();
    }
    weft_close(fd);
    return 0;
}

static intptr_t many_main(void *arg)
{
    (void)arg;
    int sink = bind_udp("127.0.0.1", &sink_addr);
    int big = 4 << 20;
    setsockopt(sink, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    atomic_store(&sent_total, 0);
    weft_task_t t[SENDERS];
    for (int i = 0; i < SENDERS; i++)
        cr_assert_eq(weft_spawn(&t[i], udp_sender, (void *)(intptr_t)i), 0);
    static int next[SENDERS];
    memset(next, 0, sizeof next);
    for (int k = 0; k < SENDERS * EACH; k++) {
        uint32_t msg[2];
        cr_assert_eq(weft_recvfrom(sink, msg, sizeof msg, 0, NULL,
                                   weft_now_ns() + 10000000000ull),
                     (ssize_t)sizeof msg, "datagram %d", k);
        cr_assert_lt(msg[0], SENDERS);
        /* Each sender's datagrams arrive in its order on loopback. */
        cr_assert_eq(msg[1], (uint32_t)next[msg[0]]++);
    }
    for (int i = 0; i < SENDERS; i++) {
        cr_assert_eq(weft_join(t[i]), 0);
        cr_assert_eq(next[i], EACH);
    }
    cr_assert_eq(atomic_load(&sent_total), SENDERS * EACH);
    weft_close(sink);
    return 0;
}

Test(udp, many_senders_counted_exactly, .timeout = 60)
{
    int before = fd_count();
    cr_assert_eq(run_io(16, 0, many_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t bad_main(void *arg)
{
    (void)arg;
    weft_addr_t aa;
    int a = bind_udp("127.0.0.1", &aa);
    char buf[8];
    uint64_t t0 = weft_now_ns();
    cr_assert_eq(weft_recvfrom(a, buf, sizeof buf, 0, NULL, t0 + 10000000),
                 -ETIMEDOUT);
    cr_assert_geq(weft_now_ns(), t0 + 10000000);
    weft_addr_t bad = aa;
    bad.len = 0;
    cr_assert_eq(weft_sendto(a, "x", 1, 0, &bad, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_sendto(a, NULL, 1, 0, &aa, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_sendto(-1, "x", 1, 0, &aa, WEFT_NO_DEADLINE), -EBADF);
    cr_assert_eq(weft_recvfrom(a, NULL, 4, 0, NULL, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_sendmsg(a, NULL, 0, WEFT_NO_DEADLINE), -EINVAL);
    struct msghdr m = {.msg_iov = NULL, .msg_iovlen = 2};
    cr_assert_eq(weft_recvmsg(a, &m, 0, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_udp_bind(NULL, 0), -EINVAL);
    cr_assert_eq(weft_udp_bind(&aa, 0), -EADDRINUSE);
    /* An unconnected socket has nowhere to send without an address. */
    ssize_t r = weft_sendto(a, "x", 1, 0, NULL, WEFT_NO_DEADLINE);
    cr_assert(r == -EDESTADDRREQ || r == -ENOTCONN, "sendto: %zd", r);
    weft_close(a);
    return 0;
}

Test(udp, deadlines_and_bad_input, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, bad_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}
