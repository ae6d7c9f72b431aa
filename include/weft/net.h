/* weft/net.h: sockets through the worker's io_uring: TCP, UDP and
 * Unix-domain, IPv4 and IPv6; addresses; name resolution on the blocking
 * pool. asyncio's streams, start_server and open_connection. Included by
 * weft.h; the conventions of every blocking call are in weft/io.h
 * (deadline last, -ECANCELED, buffers safe on return, -EBADF / -EINVAL).
 *
 * Sockets weft makes are non-blocking and close-on-exec, so they also work
 * with weft_wait_fd and non-blocking libraries. Sends never raise SIGPIPE
 * (MSG_NOSIGNAL is always added): a send to a reset peer returns -EPIPE or
 * -ECONNRESET. */
#ifndef WEFT_NET_H
#define WEFT_NET_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "base.h"

WEFT_EXTERN_C_BEGIN

/* ---- Addresses --------------------------------------------------------- */

/* A socket address of any family weft handles (AF_INET, AF_INET6, AF_UNIX),
 * as a value. len is the length of the sockaddr in u (0: empty); pass
 * &a.u.sa and a.len to any socket call that wants a sockaddr. */
typedef struct weft_addr {
    socklen_t len;
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
        struct sockaddr_storage storage;
    } u;
} weft_addr_t;

/* A numeric IPv4 ("127.0.0.1") or IPv6 ("::1", "fe80::1%eth0") address
 * and a port. No name lookup (see weft_resolve). Returns 0 or -EINVAL;
 * *out is untouched on error. Any thread. */
WEFT_API int weft_addr_ip(weft_addr_t *out, const char *ip, uint16_t port);

/* A Unix-domain address: a path, or "@name" for the abstract namespace.
 * Returns 0, -EINVAL (NULL or empty) or -ENAMETOOLONG. Any thread. */
WEFT_API int weft_addr_unix(weft_addr_t *out, const char *path);

/* Copy a sockaddr of len bytes into *out. Returns 0 or -EINVAL (NULL, a
 * family other than AF_INET, AF_INET6 or AF_UNIX, or a bad length). */
WEFT_API int weft_addr_from(weft_addr_t *out, const struct sockaddr *sa,
                            socklen_t len);

/* The port of an IP address, or -EINVAL. */
WEFT_API int weft_addr_port(const weft_addr_t *a);

/* Write "1.2.3.4:80", "[::1]:80" or "unix:/path" ("unix:@name") into buf,
 * NUL-terminated. Returns the length, -EINVAL (bad address), or -ENOSPC if
 * buf is too small (buf then holds a truncated string if len > 0). */
WEFT_API int weft_addr_format(const weft_addr_t *a, char *buf, size_t len);

/* The local or peer address of socket fd. Returns 0 or -errno. Any thread. */
WEFT_API int weft_addr_local(int fd, weft_addr_t *out);
WEFT_API int weft_addr_peer(int fd, weft_addr_t *out);

/* ---- Name resolution ----------------------------------------------------- */

/* Resolve host and service (a port number or a name from /etc/services;
 * NULL: port 0) with getaddrinfo on the blocking pool while the fiber
 * waits, and store up to max addresses in out, in getaddrinfo's order.
 * family: AF_UNSPEC, AF_INET or AF_INET6; socktype: SOCK_STREAM,
 * SOCK_DGRAM or 0 (duplicates removed). Numeric hosts are parsed at once
 * without the pool. Returns how many were stored (>= 1) or: -ENOENT (no
 * such host or service), -EAGAIN (temporary failure: retry), -EINVAL (bad
 * arguments), -ENOMEM, -ECANCELED (cancelled while queued), -EIO (other
 * resolver failures). From a plain thread getaddrinfo runs on the thread. */
WEFT_API int weft_resolve(const char *host, const char *service, int family,
                          int socktype, weft_addr_t *out, size_t max);

/* ---- Stream sockets: TCP and Unix ------------------------------------------ */

/* Options of weft_listen and weft_udp_bind. */
#define WEFT_REUSEADDR 0x1u /* SO_REUSEADDR: rebind while old connections linger */
#define WEFT_REUSEPORT 0x2u /* SO_REUSEPORT: several sockets share the port */
#define WEFT_V6ONLY 0x4u    /* IPV6_V6ONLY: an IPv6 socket takes no IPv4 */

/* socket(2) with SOCK_NONBLOCK | SOCK_CLOEXEC added. Returns the fd or
 * -errno. Any thread. */
WEFT_API int weft_socket(int domain, int type, int protocol);

/* A listening stream socket bound to addr (TCP for IP addresses, Unix
 * otherwise; port 0 picks a free port: see weft_addr_local). backlog: the
 * accept queue's length, 0 for the system's maximum (SOMAXCONN). flags:
 * WEFT_REUSEADDR, WEFT_REUSEPORT, WEFT_V6ONLY. Returns the fd or -errno
 * (-EADDRINUSE, -EACCES, -EINVAL for bad flags or a negative backlog).
 * Close it with weft_close. Any thread. */
WEFT_API int weft_listen(const weft_addr_t *addr, int backlog,
                         unsigned flags);

/* Accept a connection on listening socket lfd. Returns the new socket
 * (non-blocking, close-on-exec) and, if peer is not NULL, stores the
 * peer's address there; or -errno: -EMFILE / -ENFILE when the process is
 * out of fds (the connection stays queued in the kernel: serve on, and
 * accept again once fds were freed; back off a little first), -EBADF
 * (lfd not open, or closed while waiting), -EINVAL (not listening),
 * -ETIMEDOUT, -ECANCELED. On listeners made by weft_listen, weft keeps a
 * multishot accept armed on the ring (when the kernel offers it) and
 * queues the connections it accepts ahead of the callers. Fibers only. */
WEFT_API int weft_accept(int lfd, weft_addr_t *peer, uint64_t deadline_ns);

/* Make a stream socket of addr's family and connect it. Returns the
 * connected socket or -errno (-ECONNREFUSED, -ENETUNREACH, -ETIMEDOUT,
 * -ECANCELED, ...); on error no fd is left open. Fibers only. */
WEFT_API int weft_connect(const weft_addr_t *addr, uint64_t deadline_ns);

/* Connect an existing socket fd (any type; a UDP socket gets a default
 * peer). Returns 0 or -errno. Fibers only. */
WEFT_API int weft_connect_fd(int fd, const weft_addr_t *addr,
                             uint64_t deadline_ns);

/* Resolve host:service (weft_resolve, SOCK_STREAM) and connect to the
 * first address that accepts, trying each in turn under the one deadline.
 * Returns the socket or the last address's error (or weft_resolve's).
 * Fibers only. */
WEFT_API int weft_connect_host(const char *host, const char *service,
                               uint64_t deadline_ns);

/* recv(2) / send(2) with MSG_* flags. recv returns the bytes received
 * (0: the peer closed its side; a len of 0 returns 0 at once, once fd is
 * known to be open), send the bytes sent (maybe fewer than len: see
 * weft_send_all). Errors: -ECONNRESET (peer reset),
 * -EPIPE, -ETIMEDOUT, -ECANCELED, -EBADF, -ENOTSOCK, ... Fibers only. */
WEFT_API ssize_t weft_recv(int fd, void *buf, size_t len, int flags,
                           uint64_t deadline_ns);
WEFT_API ssize_t weft_send(int fd, const void *buf, size_t len, int flags,
                           uint64_t deadline_ns);

/* Send all len bytes, looping over short sends. Returns len, or -errno
 * when one send fails. *done (if not NULL) receives the bytes sent in
 * every case, so that after an error the caller knows how far it got.
 * Fibers only. */
WEFT_API ssize_t weft_send_all(int fd, const void *buf, size_t len,
                               size_t *done, uint64_t deadline_ns);

/* Receive exactly len bytes, looping over short receives. Returns len; or
 * a shorter count n (0 <= n < len) if the peer closed the stream after n
 * bytes (0: it closed cleanly before the message began); or -errno.
 * *done (if not NULL) receives the bytes received in every case. Fibers
 * only. */
WEFT_API ssize_t weft_recv_exact(int fd, void *buf, size_t len, size_t *done,
                                 uint64_t deadline_ns);

/* shutdown(2): how is SHUT_RD, SHUT_WR or SHUT_RDWR. Returns 0 or -errno
 * (-ENOTCONN, -EBADF, -EINVAL). Never blocks; any thread. */
WEFT_API int weft_shutdown(int fd, int how);

/* ---- Receiving into pooled buffers ------------------------------------------ */

/* The size of each buffer of the receive pool. */
#define WEFT_RBUF_SIZE 16384u

/* A received chunk, in a buffer lent by the receive pool. */
typedef struct weft_rbuf {
    void *data;       /* the bytes received */
    size_t len;       /* how many (at most WEFT_RBUF_SIZE) */
    uint64_t token_;  /* weft's: which pool and buffer */
} weft_rbuf_t;

/* Receive into a buffer the kernel picks when data arrives, from a pool
 * of WEFT_RBUF_SIZE-byte buffers registered with the worker's ring (an
 * io_uring buffer ring): thousands of connections waiting in recv then
 * hold no buffer of their own. Returns the bytes received (> 0; buf then
 * lends a buffer: give it back with weft_rbuf_release), 0 at end of
 * stream, or -errno as weft_recv (no buffer is lent on 0 or an error).
 * When the pool is empty it falls back to a buffer of its own, so it never
 * fails for want of buffers. Fibers only. */
WEFT_API ssize_t weft_recv_pooled(int fd, weft_rbuf_t *buf,
                                  uint64_t deadline_ns);

/* Give a buffer lent by weft_recv_pooled back (any thread, any worker;
 * once; before the runtime stops, as the pool goes with it). buf->data is
 * invalid afterwards; buf is reset to empty. Releasing an empty weft_rbuf_t
 * does nothing. */
WEFT_API void weft_rbuf_release(weft_rbuf_t *buf);

/* ---- Datagrams: UDP and Unix datagram sockets --------------------------------- */

/* A datagram socket bound to addr (UDP for IP addresses, a Unix datagram
 * socket otherwise). flags as weft_listen. Returns the fd or -errno. Any
 * thread. For an unbound one, weft_socket(AF_INET, SOCK_DGRAM, 0). */
WEFT_API int weft_udp_bind(const weft_addr_t *addr, unsigned flags);

/* Send one datagram to `to` (NULL: the connected peer). Returns the bytes
 * sent or -errno (-EMSGSIZE if too big for one datagram). Fibers only. */
WEFT_API ssize_t weft_sendto(int fd, const void *buf, size_t len, int flags,
                             const weft_addr_t *to, uint64_t deadline_ns);

/* Receive one datagram (the rest of a longer one is dropped, as recvfrom(2)
 * does; MSG_TRUNC in flags returns its real length) and, if from is not
 * NULL, its sender's address. Returns the bytes received or -errno. Fibers
 * only. */
WEFT_API ssize_t weft_recvfrom(int fd, void *buf, size_t len, int flags,
                               weft_addr_t *from, uint64_t deadline_ns);

/* sendmsg(2) / recvmsg(2), for scatter-gather and ancillary data (fd
 * passing over Unix sockets, for example). msg and everything it points to
 * must stay valid until the call returns (it does: the call blocks); on
 * return recvmsg has updated msg_namelen, msg_controllen and msg_flags.
 * Returns the bytes moved or -errno. Fibers only. */
WEFT_API ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags,
                              uint64_t deadline_ns);
WEFT_API ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags,
                              uint64_t deadline_ns);

WEFT_EXTERN_C_END

#endif /* WEFT_NET_H */
