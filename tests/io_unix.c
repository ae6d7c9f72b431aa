/* tests/io_unix.c: Unix-domain sockets through the rings: stream echo on a
 * path and in the abstract namespace across workers, datagrams with the
 * sender's path, passing an fd with sendmsg/recvmsg, read/write on a
 * socketpair, and the address helpers. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/un.h>

#include "io_test.h"

struct unix_srv {
    int lfd;
    int n;
};

static intptr_t unix_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[1024];
    for (;;) {
        ssize_t n = weft_recv(fd, buf, sizeof buf, 0, WEFT_NO_DEADLINE);
        if (n <= 0)
            break;
        cr_assert_eq(weft_send_all(fd, buf, (size_t)n, NULL, WEFT_NO_DEADLINE),
                     n);
    }
    weft_close(fd);
    return 0;
}

static intptr_t unix_acceptor(void *arg)
{
    struct unix_srv *s = arg;
    weft_task_t t[64];
    for (int i = 0; i < s->n; i++) {
        weft_addr_t peer;
        int c = weft_accept(s->lfd, &peer, WEFT_NO_DEADLINE);
        cr_assert_geq(c, 0);
        cr_assert_eq(peer.u.sa.sa_family, AF_UNIX);
        cr_assert_eq(weft_spawn(&t[i], unix_conn, (void *)(intptr_t)c), 0);
    }
    for (int i = 0; i < s->n; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    return 0;
}

static weft_addr_t unix_addr;

static intptr_t unix_client(void *arg)
{
    int id = (int)(intptr_t)arg;
    int fd = weft_connect(&unix_addr, WEFT_NO_DEADLINE);
    cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
    char out[700], in[700];
    for (int r = 0; r < 20; r++) {
        size_t n = 1 + (size_t)(r * 37 + id) % sizeof out;
        for (size_t k = 0; k < n; k++)
            out[k] = (char)pattern((uint64_t)id, (uint64_t)(r * 1000) + k);
        cr_assert_eq(weft_send_all(fd, out, n, NULL, WEFT_NO_DEADLINE),
                     (ssize_t)n);
        cr_assert_eq(weft_recv_exact(fd, in, n, NULL, WEFT_NO_DEADLINE),
                     (ssize_t)n);
        cr_assert_eq(memcmp(in, out, n), 0);
    }
    weft_close(fd);
    return 0;
}

static intptr_t stream_main(void *arg)
{
    const char *where = arg;
    char path[108];
    if (where[0] == '@')
        snprintf(path, sizeof path, "@weft-io-unix-%d", (int)getpid());
    else
        snprintf(path, sizeof path, "/tmp/weft-io-unix-%d.sock", (int)getpid());
    if (path[0] != '@')
        unlink(path);
    cr_assert_eq(weft_addr_unix(&unix_addr, path), 0);
    struct unix_srv s = {.n = 40};
    s.lfd = weft_listen(&unix_addr, 0, 0);
    cr_assert_geq(s.lfd, 0, "listen %s: %s", path, strerror(-s.lfd));
    char name[128];
    cr_assert_gt(weft_addr_format(&unix_addr, name, sizeof name), 0);
    cr_assert_eq(strncmp(name, "unix:", 5), 0);
    cr_assert_str_eq(name + 5, path);
    weft_task_t acc, t[40];
    cr_assert_eq(weft_spawn(&acc, unix_acceptor, &s), 0);
    for (int i = 0; i < s.n; i++)
        cr_assert_eq(weft_spawn(&t[i], unix_client, (void *)(intptr_t)i), 0);
    for (int i = 0; i < s.n; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    cr_assert_eq(weft_join(acc), 0);
    weft_close(s.lfd);
    if (path[0] != '@')
        unlink(path);
    return 0;
}

Test(unix_domain, stream_echo_on_a_path_and_in_the_abstract_namespace,
     .timeout = 60)
{
    int before = fd_count();
    cr_assert_eq(run_io(4, 0, stream_main, "path"), 0);
    cr_assert_eq(run_io(4, 17, stream_main, "@abstract"), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t dgram_main(void *arg)
{
    (void)arg;
    char pa[108], pb[108];
    snprintf(pa, sizeof pa, "/tmp/weft-io-unix-%d-a", (int)getpid());
    snprintf(pb, sizeof pb, "/tmp/weft-io-unix-%d-b", (int)getpid());
    unlink(pa);
    unlink(pb);
    weft_addr_t aa, ba;
    cr_assert_eq(weft_addr_unix(&aa, pa), 0);
    cr_assert_eq(weft_addr_unix(&ba, pb), 0);
    int a = weft_udp_bind(&aa, 0), b = weft_udp_bind(&ba, 0);
    cr_assert(a >= 0 && b >= 0);
    for (int i = 0; i < 50; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "datagram %d", i);
        cr_assert_eq(weft_sendto(b, msg, (size_t)n, 0, &aa, WEFT_NO_DEADLINE),
                     n);
        char in[32];
        weft_addr_t from;
        cr_assert_eq(weft_recvfrom(a, in, sizeof in, 0, &from,
                                   WEFT_NO_DEADLINE), n);
        cr_assert_eq(memcmp(in, msg, (size_t)n), 0);
        char name[128];
        cr_assert_gt(weft_addr_format(&from, name, sizeof name), 0);
        cr_assert_str_eq(name + 5, pb);
    }
    weft_close(a);
    weft_close(b);
    unlink(pa);
    unlink(pb);
    return 0;
}

Test(unix_domain, datagrams_carry_the_senders_path, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, dgram_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t passfd_main(void *arg)
{
    (void)arg;
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    /* Send the pipe's write end over the socket. */
    char byte = 'F';
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1,
                       .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &p[1], sizeof(int));
    cr_assert_eq(weft_sendmsg(sv[0], &m, 0, WEFT_NO_DEADLINE), 1);
    /* Receive it. */
    char got = 0;
    struct iovec riov = {&got, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } rctl;
    memset(&rctl, 0, sizeof rctl);
    struct msghdr r = {.msg_iov = &riov, .msg_iovlen = 1,
                       .msg_control = rctl.buf,
                       .msg_controllen = sizeof rctl.buf};
    cr_assert_eq(weft_recvmsg(sv[1], &r, MSG_CMSG_CLOEXEC, WEFT_NO_DEADLINE),
                 1);
    cr_assert_eq(got, 'F');
    struct cmsghdr *rc = CMSG_FIRSTHDR(&r);
    cr_assert_not_null(rc);
    cr_assert_eq(rc->cmsg_type, SCM_RIGHTS);
    int passed;
    memcpy(&passed, CMSG_DATA(rc), sizeof(int));
    cr_assert_neq(passed, p[1]);
    /* The passed fd writes into the same pipe. */
    cr_assert_eq(weft_write(passed, "via", 3, WEFT_NO_DEADLINE), 3);
    char buf[3];
    cr_assert_eq(weft_read(p[0], buf, 3, WEFT_NO_DEADLINE), 3);
    cr_assert_eq(memcmp(buf, "via", 3), 0);
    /* readv/writev on the socketpair. */
    char a[] = "ab", b[] = "cde";
    struct iovec w[2] = {{a, 2}, {b, 3}};
    cr_assert_eq(weft_writev(sv[0], w, 2, WEFT_NO_DEADLINE), 5);
    char x[5];
    struct iovec rv[1] = {{x, 5}};
    cr_assert_eq(weft_readv(sv[1], rv, 1, WEFT_NO_DEADLINE), 5);
    cr_assert_eq(memcmp(x, "abcde", 5), 0);
    weft_close(passed);
    weft_close(p[0]);
    weft_close(p[1]);
    weft_close(sv[0]);
    weft_close(sv[1]);
    return 0;
}

Test(unix_domain, pass_an_fd_and_vectored_io_on_a_socketpair, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, passfd_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

Test(unix_domain, address_helpers, .timeout = 10)
{
    weft_addr_t a;
    memset(&a, 0x55, sizeof a);
    weft_addr_t keep = a;
    cr_assert_eq(weft_addr_unix(&a, NULL), -EINVAL);
    cr_assert_eq(weft_addr_unix(&a, ""), -EINVAL);
    char longp[200];
    memset(longp, 'p', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    cr_assert_eq(weft_addr_unix(&a, longp), -ENAMETOOLONG);
    cr_assert_eq(memcmp(&a, &keep, sizeof a), 0); /* untouched */
    cr_assert_eq(weft_addr_unix(&a, "@x"), 0);
    char buf[64];
    cr_assert_eq(weft_addr_format(&a, buf, sizeof buf), 7);
    cr_assert_str_eq(buf, "unix:@x");
    cr_assert_eq(weft_addr_port(&a), -EINVAL);
    cr_assert_eq(weft_addr_format(&a, buf, 3), -ENOSPC);
    cr_assert_eq(weft_addr_ip(&a, "not an ip", 1), -EINVAL);
    cr_assert_eq(weft_addr_ip(&a, "10.1.2.3", 8080), 0);
    cr_assert_eq(weft_addr_port(&a), 8080);
    cr_assert_gt(weft_addr_format(&a, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "10.1.2.3:8080");
    cr_assert_eq(weft_addr_ip(&a, "fe80::1%1", 9), 0);
    cr_assert_gt(weft_addr_format(&a, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "[fe80::1%1]:9");
    cr_assert_eq(weft_addr_from(&a, &a.u.sa, 3), -EINVAL);
    struct sockaddr_in in = {.sin_family = AF_INET};
    cr_assert_eq(weft_addr_from(&a, (struct sockaddr *)&in, sizeof in), 0);
    cr_assert_eq(a.len, sizeof in);
}
