/* perf/peers/epoll_echo.c: perf_epoll_echo, the plain epoll echo server
 * bench_echo compares weft-echo with: what a careful C programmer writes
 * without a runtime. One thread, one level-triggered epoll loop taking up
 * to 256 events per wait; non-blocking sockets with TCP_NODELAY (as
 * weft-echo sets); each readable connection is read (64 KiB buffer) and
 * the bytes written straight back, with EPOLLOUT and a per-connection
 * backlog only when the socket is full.
 *
 *   perf_epoll_echo [--port P]      (default 0: any free port)
 *
 * Prints "epoll_echo: listening on 127.0.0.1:PORT" on stdout; runs until
 * killed. Never links weft. Entry point: main. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bytes a full socket did not take, kept until EPOLLOUT. */
struct backlog {
    char *data;
    size_t len;
};

static struct backlog *pending; /* indexed by fd */
static size_t npending;

static void die(const char *what)
{
    fprintf(stderr, "epoll_echo: %s: %s\n", what, strerror(errno));
    exit(1);
}

static struct backlog *backlog_of(int fd)
{
    if ((size_t)fd >= npending) {
        size_t n = (size_t)fd * 2 + 64;
        struct backlog *p = realloc(pending, n * sizeof *p);
        if (!p)
            die("realloc");
        memset(p + npending, 0, (n - npending) * sizeof *p);
        pending = p;
        npending = n;
    }
    return &pending[fd];
}

static void drop(int ep, int fd)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    struct backlog *b = backlog_of(fd);
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

/* Write data (after any backlog); keep what the socket does not take. */
static bool put(int ep, int fd, const char *data, size_t len)
{
    struct backlog *b = backlog_of(fd);
    if (b->len == 0) {
        while (len) {
            ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
            if (n < 0 && errno == EAGAIN)
                break;
            if (n < 0)
                return false;
            data += n;
            len -= (size_t)n;
        }
        if (len == 0)
            return true;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    }
    char *d = realloc(b->data, b->len + len);
    if (!d)
        return false;
    memcpy(d + b->len, data, len);
    b->data = d;
    b->len += len;
    return true;
}

static bool flush_backlog(int ep, int fd)
{
    struct backlog *b = backlog_of(fd);
    size_t off = 0;
    while (off < b->len) {
        ssize_t n = send(fd, b->data + off, b->len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN)
            break;
        if (n < 0)
            return false;
        off += (size_t)n;
    }
    memmove(b->data, b->data + off, b->len - off);
    b->len -= off;
    if (b->len == 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    }
    return true;
}

int main(int argc, char **argv)
{
    int port = 0;
    if (argc == 3 && !strcmp(argv[1], "--port"))
        port = atoi(argv[2]);
    else if (argc != 1) {
        fprintf(stderr, "usage: perf_epoll_echo [--port P]\n");
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof sa;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(lfd, 4096) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &slen) != 0)
        die("listen");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0)
        die("epoll");
    printf("epoll_echo: listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
    fflush(stdout);

    static char buf[65536];
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("epoll_wait");
        for (int k = 0; k < n; k++) {
            int fd = evs[k].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int c = accept4(lfd, NULL, NULL,
                                    SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0)
                        break; /* EAGAIN, or out of fds: try later */
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) != 0)
                        close(c);
                }
                continue;
            }
            if ((evs[k].events & EPOLLOUT) && !flush_backlog(ep, fd)) {
                drop(ep, fd);
                continue;
            }
            if (!(evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r < 0 && errno == EAGAIN)
                continue;
            if (r <= 0 || !put(ep, fd, buf, (size_t)r))
                drop(ep, fd);
        }
    }
}
