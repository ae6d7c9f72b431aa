/* io/net.c: sockets on the ring, but for listening and accepting
 * (io/listen.c): connect, send and receive, the send-all and receive-
 * exactly helpers, datagrams, sendmsg/recvmsg, shutdown. Entry points: the
 * WEFT_API functions below. Each is one operation of io/op.c (or a loop of
 * them, sharing one absolute deadline).
 * Must never: raise SIGPIPE (every send carries MSG_NOSIGNAL), leave an fd
 * open that a failed call made, or change the caller's output arguments
 * when it fails. */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/ring.h"

static int not_fiber(const char *fn)
{
    weft__misuse(fn, "called from a plain thread, not a fiber");
    return -EPERM;
}

/* Begin an operation: errors as weft__io_begin, with the misuse named. */
#define BEGIN(fn, w, deadline)                                                 \
    do {                                                                       \
        int begin_err_ = weft__io_begin(&(w), &(deadline));                    \
        if (begin_err_)                                                        \
            return begin_err_ == -EPERM ? not_fiber(fn) : begin_err_;          \
    } while (0)

WEFT_API int weft_socket(int domain, int type, int protocol)
{
    int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    return fd < 0 ? -errno : fd;
}

WEFT_API int weft_udp_bind(const weft_addr_t *addr, unsigned flags)
{
    return weft__bound_socket(addr, SOCK_DGRAM, flags);
}

static int check_addr(const weft_addr_t *addr)
{
    if (!addr || !addr->len || addr->len > sizeof addr->u)
        return -EINVAL;
    return 0;
}

WEFT_API int weft_connect_fd(int fd, const weft_addr_t *addr,
                             uint64_t deadline_ns)
{
    if (fd < 0)
        return -EBADF;
    if (check_addr(addr))
        return -EINVAL;
    struct weft__worker *w;
    BEGIN("weft_connect_fd", w, deadline_ns);
    struct io_uring_sqe *sqe = weft__io_sqe(w, deadline_ns);
    io_uring_prep_connect(sqe, fd, &addr->u.sa, addr->len);
    return weft__io_wait(&w, sqe, deadline_ns, "connect",
                         WEFT__IO_CANCELLABLE, NULL);
}

WEFT_API int weft_connect(const weft_addr_t *addr, uint64_t deadline_ns)
{
    if (check_addr(addr))
        return -EINVAL;
    if (!weft_in_fiber())
        return not_fiber("weft_connect");
    int fd = weft_socket(addr->u.sa.sa_family, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    int err = weft_connect_fd(fd, addr, deadline_ns);
    if (err < 0) {
        close(fd);
        return err;
    }
    return fd;
}

WEFT_API int weft_connect_host(const char *host, const char *service,
                               uint64_t deadline_ns)
{
    if (!host || !service)
        return -EINVAL;
    if (!weft_in_fiber())
        return not_fiber("weft_connect_host");
    weft_addr_t addrs[8];
    int n = weft_resolve(host, service, AF_UNSPEC, SOCK_STREAM, addrs, 8);
    if (n < 0)
        return n;
    int err = -ECONNREFUSED;
    for (int i = 0; i < n; i++) {
        int fd = weft_connect(&addrs[i], deadline_ns);
        if (fd >= 0)
            return fd;
        err = fd;
        if (err == -ETIMEDOUT || err == -ECANCELED)
            break;
    }
    return err;
}

WEFT_API ssize_t weft_recv(int fd, void *buf, size_t len, int flags,
                           uint64_t deadline_ns)
{
    int err = weft__io_check_buf(fd, buf, len);
    if (err)
        return err;
    /* Nothing to receive: done, without waiting for data to arrive. */
    if (len == 0)
        return weft__io_check_open(fd);
    struct weft__worker *w;
    BEGIN("weft_recv", w, deadline_ns);
    struct io_uring_sqe *sqe = weft__io_sqe(w, deadline_ns);
    io_uring_prep_recv(sqe, fd, buf, weft__io_clamp(len), flags);
    return weft__io_wait(&w, sqe, deadline_ns, "recv", WEFT__IO_CANCELLABLE,
                         NULL);
}

WEFT_API ssize_t weft_send(int fd, const void *buf, size_t len, int flags,
                           uint64_t deadline_ns)
{
    int err = weft__io_check_buf(fd, buf, len);
    if (err)
        return err;
    struct weft__worker *w;
    BEGIN("weft_send", w, deadline_ns);
    struct io_uring_sqe *sqe = weft__io_sqe(w, deadline_ns);
    io_uring_prep_send(sqe, fd, buf, weft__io_clamp(len), flags | MSG_NOSIGNAL);
    return weft__io_wait(&w, sqe, deadline_ns, "send", WEFT__IO_CANCELLABLE,
                         NULL);
}

WEFT_API ssize_t weft_send_all(int fd, const void *buf, size_t len,
                               size_t *done, uint64_t deadline_ns)
{
    int err = weft__io_check_buf(fd, buf, len);
    if (err)
        return err;
    if (!weft_in_fiber())
        return not_fiber("weft_send_all");
    size_t off = 0;
    ssize_t r = 0;
    while (off < len) {
        r = weft_send(fd, (const char *)buf + off, len - off, 0, deadline_ns);
        if (r <= 0) {
            if (r == 0)
                r = -EPIPE; /* a stream send that moves nothing */
            break;
        }
        off += (size_t)r;
    }
    if (done)
        *done = off;
    return r < 0 ? r : (ssize_t)len;
}

WEFT_API ssize_t weft_recv_exact(int fd, void *buf, size_t len, size_t *done,
                                 uint64_t deadline_ns)
{
    int err = weft__io_check_buf(fd, buf, len);
    if (err)
        return err;
    if (!weft_in_fiber())
        return not_fiber("weft_recv_exact");
    /* One recv per piece, not MSG_WAITALL: a cancelled MSG_WAITALL recv
     * reports -ECANCELED and hides the bytes it already copied. */
    size_t off = 0;
    ssize_t r = 0;
    while (off < len) {
        r = weft_recv(fd, (char *)buf + off, len - off, 0, deadline_ns);
        if (r <= 0)
            break; /* an error, or the end of the stream */
        off += (size_t)r;
    }
    if (done)
        *done = off;
    return r < 0 ? r : (ssize_t)off;
}

WEFT_API int weft_shutdown(int fd, int how)
{
    if (fd < 0)
        return -EBADF;
    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
        return -EINVAL;
    return shutdown(fd, how) < 0 ? -errno : 0;
}

/* ---- Messages and datagrams ---------------------------------------------- */

static int check_msg(int fd, const struct msghdr *msg)
{
    if (fd < 0)
        return -EBADF;
    if (!msg || msg->msg_iovlen > IOV_MAX ||
        (msg->msg_controllen && !msg->msg_control) ||
        (msg->msg_namelen && !msg->msg_name))
        return -EINVAL;
    return weft__io_check_iov(fd, msg->msg_iov, (int)msg->msg_iovlen);
}

static ssize_t do_msg(const char *fn, bool send, int fd, struct msghdr *msg,
                      int flags, uint64_t deadline)
{
    struct weft__worker *w;
    BEGIN(fn, w, deadline);
    struct io_uring_sqe *sqe = weft__io_sqe(w, deadline);
    if (send)
        io_uring_prep_sendmsg(sqe, fd, msg, (unsigned)(flags | MSG_NOSIGNAL));
    else
        io_uring_prep_recvmsg(sqe, fd, msg, (unsigned)flags);
    return weft__io_wait(&w, sqe, deadline, send ? "sendmsg" : "recvmsg",
                         WEFT__IO_CANCELLABLE, NULL);
}

WEFT_API ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags,
                              uint64_t deadline_ns)
{
    int err = check_msg(fd, msg);
    if (err)
        return err;
    /* The kernel only reads it. */
    return do_msg("weft_sendmsg", true, fd, (struct msghdr *)msg, flags,
                  deadline_ns);
}

WEFT_API ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags,
                              uint64_t deadline_ns)
{
    int err = check_msg(fd, msg);
    if (err)
        return err;
    return do_msg("weft_recvmsg", false, fd, msg, flags, deadline_ns);
}

WEFT_API ssize_t weft_sendto(int fd, const void *buf, size_t len, int flags,
                             const weft_addr_t *to, uint64_t deadline_ns)
{
    int err = weft__io_check_buf(fd, buf, len);
    if (err)
        return err;
    if (to && check_addr(to))
        return -EINVAL;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = weft__io_clamp(len)};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_name = to ? (void *)&to->u : NULL;
    msg.msg_namelen = to ? to->len : 0;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    return do_msg("weft_sendto", true, fd, &msg, flags, deadline_ns);
}

WEFT_API ssize_t weft_recvfrom(int fd, void *buf, size_t len, int flags,
                               weft_addr_t *from, uint64_t deadline_ns)
{
    int err = weft__io_check_buf(fd, buf, len);
    if (err)
        return err;
    weft_addr_t tmp;
    memset(&tmp, 0, sizeof tmp);
    struct iovec iov = {.iov_base = buf, .iov_len = weft__io_clamp(len)};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_name = from ? &tmp.u : NULL;
    msg.msg_namelen = from ? sizeof tmp.u : 0;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t r = do_msg("weft_recvfrom", false, fd, &msg, flags, deadline_ns);
    if (r >= 0 && from) {
        tmp.len = msg.msg_namelen;
        *from = tmp;
    }
    return r;
}
