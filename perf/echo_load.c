/* perf/echo_load.c: echo_load, the load generator of bench_echo (not a
 * benchmark itself). It opens CONNS connections to an echo server on
 * 127.0.0.1:PORT and keeps one SIZE-byte message in flight on each: send
 * it, read the SIZE bytes echoed, check them, send the next. One thread,
 * one epoll loop, non-blocking sockets with TCP_NODELAY. After a warm-up
 * of a tenth of the time it counts the messages echoed for SECONDS and
 * prints "messages N seconds S total T" on stdout (T: every message echoed,
 * the warm-up's too, for the server's CPU per message).
 *
 *   echo_load PORT CONNS SIZE SECONDS
 *
 * Exits 1 if a connection fails or an echo differs from what was sent.
 * Entry point: main. Must never count a message that did not come back
 * whole and equal. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    size_t got;    /* bytes of the current echo received */
    size_t sent;   /* bytes of the current message sent */
    uint8_t seq;   /* varies the message, so stale bytes are caught */
    bool want_out; /* EPOLLOUT is armed: the message did not fit at once */
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "echo_load: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void fill(unsigned char *msg, size_t size, uint8_t seq, size_t conn)
{
    for (size_t i = 0; i < size; i++)
        msg[i] = (unsigned char)(seq + i * 7 + conn);
}

/* Send what is left of c's message, waiting for EPOLLOUT if the socket
 * is full; returns false on a hard error. */
static bool send_rest(int ep, struct conn *c, size_t idx, size_t size)
{
    unsigned char msg[65536];
    fill(msg, size, c->seq, idx);
    while (c->sent < size) {
        ssize_t n = send(c->fd, msg + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN)
            return false;
        if (n < 0)
            break;
        c->sent += (size_t)n;
    }
    bool want_out = c->sent < size;
    if (want_out != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0),
                                 .data.u64 = (uint64_t)idx};
        if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
            return false;
        c->want_out = want_out;
    }
    return true;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: echo_load PORT CONNS SIZE SECONDS\n");
        return 2;
    }
    int port = atoi(argv[1]), nconn = atoi(argv[2]);
    size_t size = (size_t)atol(argv[3]);
    double seconds = atof(argv[4]);
    if (port <= 0 || port > 65535 || nconn <= 0 || nconn > 60000 ||
        size == 0 || size > 65536 || !(seconds > 0)) {
        fprintf(stderr, "echo_load: bad arguments\n");
        return 2;
    }
    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || ep < 0)
        die("setup");
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < nconn; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
            die("connect");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        conns[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            die("epoll_ctl");
    }
    for (int i = 0; i < nconn; i++)
        if (!send_rest(ep, &conns[i], (size_t)i, size))
            die("send");

    double start = now_s(), warm = start + seconds / 10, end = warm + seconds;
    double t0 = 0;
    uint64_t counted = 0, total = 0;
    bool counting = false;
    unsigned char buf[65536], want[65536];
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, 1000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("epoll_wait");
        for (int k = 0; k < n; k++) {
            size_t idx = (size_t)evs[k].data.u64;
            struct conn *c = &conns[idx];
            if ((evs[k].events & EPOLLOUT) && !send_rest(ep, c, idx, size))
                die("send");
            for (;;) {
                ssize_t r = recv(c->fd, buf, size - c->got, 0);
                if (r < 0 && errno == EAGAIN)
                    break;
                if (r <= 0) {
                    fprintf(stderr, "echo_load: the server closed a "
                            "connection (%s)\n", r ? strerror(errno) : "EOF");
                    return 1;
                }
                fill(want, size, c->seq, idx);
                if (memcmp(buf, want + c->got, (size_t)r) != 0) {
                    fprintf(stderr, "echo_load: wrong bytes echoed\n");
                    return 1;
                }
                c->got += (size_t)r;
                if (c->got < size)
                    continue;
                /* A whole echo: count it, send the next message. */
                if (counting)
                    counted++;
                total++;
                c->got = c->sent = 0;
                c->seq++;
                if (!send_rest(ep, c, idx, size))
                    die("send");
            }
        }
        double t = now_s();
        if (!counting && t >= warm) {
            counting = true;
            t0 = t;
        }
        if (t >= end)
            break;
    }
    double took = now_s() - t0;
    printf("messages %llu seconds %.6f total %llu\n",
           (unsigned long long)counted, took, (unsigned long long)total);
    for (int i = 0; i < nconn; i++)
        close(conns[i].fd);
    free(conns);
    return 0;
}
