/* io/file.c: files on the ring: open, read and write at an offset, vectored
 * I/O, sync, stat, and reading a whole file. Entry points: weft_file_*.
 * Opens, stats and syncs run in the kernel's io-wq threads, reads and
 * writes of cached data inline: either way the fiber's worker runs others
 * while it waits. Each call is one operation of io/op.c, so an fd that an
 * open created is always reported, even when a deadline or a cancel came
 * too late to stop it.
 * Must never: leak an fd it opened, or change *st / *data on failure. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "io/ring.h"

static int not_fiber(const char *fn)
{
    weft__misuse(fn, "called from a plain thread, not a fiber");
    return -EPERM;
}

#define BEGIN(fn, w, deadline)                                                 \
    do {                                                                       \
        int begin_err_ = weft__io_begin(&(w), &(deadline));                    \
        if (begin_err_)                                                        \
            return begin_err_ == -EPERM ? not_fiber(fn) : begin_err_;          \
    } while (0)

WEFT_API int weft_file_open(const char *path, int flags, unsigned mode,
                            uint64_t deadline_ns)
{
    if (!path)
        return -EINVAL;
    struct weft__worker *w;
    BEGIN("weft_file_open", w, deadline_ns);
    struct io_uring_sqe *sqe = weft__io_sqe(w, deadline_ns);
    io_uring_prep_openat(sqe, AT_FDCWD, path, flags | O_CLOEXEC, mode);
    return weft__io_wait(&w, sqe, deadline_ns, "open", WEFT__IO_CANCELLABLE,
                         NULL);
}

WEFT_API ssize_t weft_file_read(int fd, void *buf, size_t len, int64_t offset,
                                uint64_t deadline_ns)
{
    if (offset < -1)
        return fd < 0 ? -EBADF : -EINVAL;
    return weft__io_rw("weft_file_read", false, fd, buf, len, offset,
                       deadline_ns);
}

WEFT_API ssize_t weft_file_write(int fd, const void *buf, size_t len,
                                 int64_t offset, uint64_t deadline_ns)
{
    if (offset < -1)
        return fd < 0 ? -EBADF : -EINVAL;
    return weft__io_rw("weft_file_write", true, fd, (void *)buf, len, offset,
                       deadline_ns);
}

WEFT_API ssize_t weft_file_write_all(int fd, const void *buf, size_t len,
                                     int64_t offset, uint64_t deadline_ns)
{
    int err = weft__io_check_buf(fd, buf, len);
    if (err)
        return err;
    if (offset < 0)
        return -EINVAL;
    if (!weft_in_fiber())
        return not_fiber("weft_file_write_all");
    size_t off = 0;
    while (off < len) {
        ssize_t r = weft__io_rw("weft_file_write_all", true, fd,
                                (char *)buf + off, len - off,
                                offset + (int64_t)off, deadline_ns);
        if (r < 0)
            return r;
        if (r == 0)
            return -EIO; /* a regular file that takes nothing */
        off += (size_t)r;
    }
    return (ssize_t)len;
}

WEFT_API ssize_t weft_file_readv(int fd, const struct iovec *iov, int iovcnt,
                                 int64_t offset, uint64_t deadline_ns)
{
    if (offset < -1)
        return fd < 0 ? -EBADF : -EINVAL;
    return weft__io_rwv("weft_file_readv", false, fd, iov, iovcnt, offset,
                        deadline_ns);
}

WEFT_API ssize_t weft_file_writev(int fd, const struct iovec *iov, int iovcnt,
                                  int64_t offset, uint64_t deadline_ns)
{
    if (offset < -1)
        return fd < 0 ? -EBADF : -EINVAL;
    return weft__io_rwv("weft_file_writev", true, fd, iov, iovcnt, offset,
                        deadline_ns);
}

WEFT_API int weft_file_sync(int fd, unsigned flags, uint64_t deadline_ns)
{
    if (fd < 0)
        return -EBADF;
    if (flags & ~WEFT_SYNC_DATA)
        return -EINVAL;
    struct weft__worker *w;
    BEGIN("weft_file_sync", w, deadline_ns);
    struct io_uring_sqe *sqe = weft__io_sqe(w, deadline_ns);
    io_uring_prep_fsync(sqe, fd,
                        (flags & WEFT_SYNC_DATA) ? IORING_FSYNC_DATASYNC : 0);
    return weft__io_wait(&w, sqe, deadline_ns, "fsync", WEFT__IO_CANCELLABLE,
                         NULL);
}

static int64_t ns_of(struct statx_timestamp ts)
{
    return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static int do_stat(const char *fn, int dirfd, const char *path, int flags,
                   weft_stat_t *st, uint64_t deadline)
{
    struct weft__worker *w;
    BEGIN(fn, w, deadline);
    struct statx stx;
    memset(&stx, 0, sizeof stx);
    struct io_uring_sqe *sqe = weft__io_sqe(w, deadline);
    io_uring_prep_statx(sqe, dirfd, path, flags,
                        STATX_BASIC_STATS | STATX_BTIME, &stx);
    int r = weft__io_wait(&w, sqe, deadline, "stat", WEFT__IO_CANCELLABLE,
                          NULL);
    if (r < 0)
        return r;
    weft_stat_t s;
    memset(&s, 0, sizeof s);
    s.size = stx.stx_size;
    s.blocks = stx.stx_blocks;
    s.ino = stx.stx_ino;
    s.mode = stx.stx_mode;
    s.nlink = stx.stx_nlink;
    s.uid = stx.stx_uid;
    s.gid = stx.stx_gid;
    s.blksize = stx.stx_blksize;
    s.dev_major = stx.stx_dev_major;
    s.dev_minor = stx.stx_dev_minor;
    s.rdev_major = stx.stx_rdev_major;
    s.rdev_minor = stx.stx_rdev_minor;
    s.atime_ns = ns_of(stx.stx_atime);
    s.mtime_ns = ns_of(stx.stx_mtime);
    s.ctime_ns = ns_of(stx.stx_ctime);
    s.btime_ns = (stx.stx_mask & STATX_BTIME) ? ns_of(stx.stx_btime) : 0;
    *st = s;
    return 0;
}

WEFT_API int weft_file_stat(const char *path, weft_stat_t *st,
                            uint64_t deadline_ns)
{
    if (!path || !st)
        return -EINVAL;
    return do_stat("weft_file_stat", AT_FDCWD, path, 0, st, deadline_ns);
}

WEFT_API int weft_file_fstat(int fd, weft_stat_t *st, uint64_t deadline_ns)
{
    if (fd < 0)
        return -EBADF;
    if (!st)
        return -EINVAL;
    return do_stat("weft_file_fstat", fd, "", AT_EMPTY_PATH, st, deadline_ns);
}

WEFT_API ssize_t weft_file_read_all(const char *path, void **data, size_t max,
                                    uint64_t deadline_ns)
{
    if (!path || !data)
        return -EINVAL;
    if (!weft_in_fiber())
        return not_fiber("weft_file_read_all");
    int fd = weft_file_open(path, O_RDONLY, 0, deadline_ns);
    if (fd < 0)
        return fd;
    weft_stat_t st;
    ssize_t err = weft_file_fstat(fd, &st, deadline_ns);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (err)
        goto out;
    if (max && S_ISREG(st.mode) && st.size > max) {
        err = -EFBIG;
        goto out;
    }
    /* The size is a hint (files grow, /proc files say 0): read to EOF,
     * with room for one byte more than expected so that EOF is seen
     * without growing, and for the NUL. */
    cap = (S_ISREG(st.mode) && st.size < SSIZE_MAX / 2 ? (size_t)st.size : 0) +
          4096;
    buf = malloc(cap);
    if (!buf) {
        err = -ENOMEM;
        goto out;
    }
    for (;;) {
        if (cap - len < 2) {
            size_t ncap = cap * 2;
            char *nbuf = ncap > cap ? realloc(buf, ncap) : NULL;
            if (!nbuf) {
                err = -ENOMEM;
                goto out;
            }
            buf = nbuf;
            cap = ncap;
        }
        ssize_t r = weft__io_rw("weft_file_read_all", false, fd, buf + len,
                                cap - len - 1, -1, deadline_ns);
        if (r < 0) {
            err = r;
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (max && len > max) {
            err = -EFBIG;
            goto out;
        }
    }
    buf[len] = '\0';
out:
    weft_close(fd);
    if (err) {
        free(buf);
        return err;
    }
    *data = buf;
    return (ssize_t)len;
}
