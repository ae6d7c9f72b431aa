/* weft/file.h: files through the worker's io_uring: open, read and write
 * at an offset, vectored I/O, sync, stat, and reading a whole file. Truly
 * asynchronous: a fiber waiting on the disk leaves its worker to the
 * others. Included by weft.h; the conventions of every blocking call are
 * in weft/io.h (deadline last, -ECANCELED, buffers safe on return, -EBADF /
 * -EINVAL). Close files with weft_close. */
#ifndef WEFT_FILE_H
#define WEFT_FILE_H

#include <sys/types.h>
#include <sys/uio.h>

#include "base.h"

WEFT_EXTERN_C_BEGIN

/* What weft_file_stat reports (from statx(2)). Times are nanoseconds since
 * the epoch; btime_ns is 0 where the file system does not record it. */
typedef struct weft_stat {
    uint64_t size;    /* bytes */
    uint64_t blocks;  /* 512-byte blocks allocated */
    uint64_t ino;
    uint32_t mode;    /* type and permissions, as st_mode (S_ISREG, ...) */
    uint32_t nlink;
    uint32_t uid, gid;
    uint32_t blksize; /* preferred I/O size */
    uint32_t dev_major, dev_minor;   /* the device holding the file */
    uint32_t rdev_major, rdev_minor; /* a device file's own device */
    int64_t atime_ns, mtime_ns, ctime_ns, btime_ns;
} weft_stat_t;

/* Open path (relative to the working directory) with open(2) flags
 * (O_CLOEXEC is always added) and mode for O_CREAT. Returns the fd or
 * -errno (-ENOENT, -EACCES, -EINVAL for NULL path). Fibers only. */
WEFT_API int weft_file_open(const char *path, int flags, unsigned mode,
                            uint64_t deadline_ns);

/* pread(2) / pwrite(2) at offset (>= 0; -1: at the fd's current position,
 * which then moves). Returns the bytes moved (0 from read: end of file) or
 * -errno; -EINVAL for another negative offset. Fibers only. */
WEFT_API ssize_t weft_file_read(int fd, void *buf, size_t len, int64_t offset,
                                uint64_t deadline_ns);
WEFT_API ssize_t weft_file_write(int fd, const void *buf, size_t len,
                                 int64_t offset, uint64_t deadline_ns);

/* Write all len bytes at offset (>= 0), looping over short writes.
 * Returns len or -errno (-ENOSPC, ...). Fibers only. */
WEFT_API ssize_t weft_file_write_all(int fd, const void *buf, size_t len,
                                     int64_t offset, uint64_t deadline_ns);

/* preadv(2) / pwritev(2); iovec rules as weft_readv. Fibers only. */
WEFT_API ssize_t weft_file_readv(int fd, const struct iovec *iov, int iovcnt,
                                 int64_t offset, uint64_t deadline_ns);
WEFT_API ssize_t weft_file_writev(int fd, const struct iovec *iov, int iovcnt,
                                  int64_t offset, uint64_t deadline_ns);

/* fsync(2), or fdatasync(2) with WEFT_SYNC_DATA. Returns 0 or -errno
 * (-EINVAL for unknown flags). Fibers only. */
#define WEFT_SYNC_DATA 0x1u
WEFT_API int weft_file_sync(int fd, unsigned flags, uint64_t deadline_ns);

/* statx(2) of path (following symlinks) or of an open fd. Returns 0 or
 * -errno; *st is untouched on error. Fibers only. */
WEFT_API int weft_file_stat(const char *path, weft_stat_t *st,
                            uint64_t deadline_ns);
WEFT_API int weft_file_fstat(int fd, weft_stat_t *st, uint64_t deadline_ns);

/* Read the whole file at path into memory that the caller frees with
 * free(); one extra NUL byte follows the data (handy for text). Returns
 * the length and sets *data, or -errno: -EFBIG if it holds more than max
 * bytes (0: no limit), -ENOMEM; *data is untouched on error. Fibers only. */
WEFT_API ssize_t weft_file_read_all(const char *path, void **data, size_t max,
                                    uint64_t deadline_ns);

WEFT_EXTERN_C_END

#endif /* WEFT_FILE_H */
