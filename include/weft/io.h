/* weft/io.h: I/O on any file descriptor through the calling worker's
 * io_uring: readiness waits, read and write at the current position, close;
 * and the conventions every blocking I/O call shares. Sockets are in
 * weft/net.h, files in weft/file.h. Included by weft.h.
 *
 * Conventions of every blocking I/O call (here, in net.h and in file.h):
 *  - Fibers only: from a plain thread it returns -EPERM.
 *  - Its last argument is a deadline: an absolute weft_now_ns() time, or
 *    WEFT_NO_DEADLINE. When it passes the call returns -ETIMEDOUT; the
 *    innermost deadline scope of the task applies too (the earlier wins).
 *    A deadline already past returns -ETIMEDOUT without trying.
 *  - If the task is cancelled while the call waits, it returns -ECANCELED
 *    (and that consumes the cancel request). If the operation completed
 *    before the cancel reached the kernel, the call returns its real result
 *    and the request stays pending for the task's next wait.
 *  - Whatever the outcome, the call returns only after the kernel is done
 *    with the caller's buffers: after a timeout or a cancel the memory can
 *    be freed or reused at once.
 *  - Bad input changes nothing: fd < 0 is -EBADF; a NULL buffer with a
 *    non-zero length, a length above SSIZE_MAX (a negative length cast to
 *    size_t) or a bad iovec count is -EINVAL. A transfer moves at most
 *    WEFT_IO_MAX bytes; more is a short transfer, as with read(2).
 *  - Sockets and pipes need not be non-blocking: the ring waits for them
 *    either way without blocking the worker. */
#ifndef WEFT_IO_H
#define WEFT_IO_H

#include <poll.h>      /* POLLIN, POLLOUT, ... for weft_wait_fd */
#include <sys/types.h> /* ssize_t */
#include <sys/uio.h>   /* struct iovec */

#include "base.h"

WEFT_EXTERN_C_BEGIN

/* "No deadline", for the deadline argument of every blocking I/O call
 * (the same as weft/coord.h's). */
#ifndef WEFT_NO_DEADLINE
#define WEFT_NO_DEADLINE UINT64_MAX
#endif

/* The most one read or write transfers (the kernel's own cap). */
#define WEFT_IO_MAX ((size_t)0x7ffff000)

/* Wait until fd is ready for `events` (a poll(2) mask: POLLIN, POLLOUT,
 * POLLPRI, POLLRDHUP) and return the ready events (a poll(2) revents mask,
 * > 0; POLLERR and POLLHUP are always reported), or -errno. This lets a
 * fiber drive a non-blocking library (TLS, a database client) that asks to
 * be called again when its fd is readable or writable. -EINVAL if events
 * is 0 or has bits poll(2) does not know. Fibers only. */
WEFT_API int weft_wait_fd(int fd, unsigned events, uint64_t deadline_ns);

/* read(2) / write(2) at the fd's current position (sockets, pipes, ttys,
 * files without an offset). Returns the bytes moved (0 from weft_read:
 * end of file; a read of len 0 returns 0 at once, once fd is known to be
 * open) or -errno. Fibers only. A write to a pipe or socket whose
 * reader is gone raises SIGPIPE as write(2) does: use weft_send for
 * sockets, which never does. */
WEFT_API ssize_t weft_read(int fd, void *buf, size_t len,
                           uint64_t deadline_ns);
WEFT_API ssize_t weft_write(int fd, const void *buf, size_t len,
                            uint64_t deadline_ns);

/* readv(2) / writev(2) at the current position. iovcnt: 0..IOV_MAX (1024);
 * iov may be NULL only when iovcnt is 0; each iov_base may be NULL only
 * when its iov_len is 0. The iovec array itself must stay valid until the
 * call returns (it does: the call blocks). Fibers only. */
WEFT_API ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt,
                            uint64_t deadline_ns);
WEFT_API ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt,
                             uint64_t deadline_ns);

/* Close fd: any kind, including listeners made by weft_listen (close
 * those with weft_close, never close(2): weft_close also stops the
 * multishot accept weft keeps armed on them, which holds the socket open,
 * and fails the fibers blocked in weft_accept on it with -EBADF; when it
 * returns, the port is free). Returns 0 or -errno (-EBADF: not open). Any
 * thread; from a fiber it goes through the ring. Like close(2), the fd is
 * gone even when an error is reported, and an operation already in flight
 * on fd keeps the file open until it ends: to wake a fiber blocked on a
 * socket, use weft_shutdown (or cancel the fiber). */
WEFT_API int weft_close(int fd);

WEFT_EXTERN_C_END

#endif /* WEFT_IO_H */
