/* io/io.h: the contract of io/.
 *
 * io/ owns each worker's io_uring: creating it with the best flags the
 * kernel accepts, submitting in batches, reaping completions and waking the
 * fibers that wait on them, parking a worker in the ring's wait, and waking
 * a parked worker from any thread (an eventfd the ring reads). On it, the
 * public I/O of weft/io.h, net.h and file.h:
 *   ring.c     the ring's life, submission batching, reaping (the loop's)
 *   op.c       one fiber's operation: deadline (linked timeout), cancel
 *              (a sweep on the owner, reached by a message), the fd calls
 *   listen.c   listeners and accept, with a shared multishot accept
 *   net.c      connect, send/recv and their helpers, datagrams, msg calls
 *   rbuf.c     receives into a registered buffer ring (pooled buffers)
 *   file.c     files; addr.c addresses; resolve.c getaddrinfo on the pool
 * io/ring.h is what these files share; this header is what the rest of
 * weft may call.
 *
 * It may call: sched/ (to end a fiber's wait, to post a message to a
 * worker) and runtime/ (the blocking pool, for name resolution).
 * It must never: let a fiber's buffer be written after the fiber was told
 * its operation ended (a cancelled operation ends with its own completion),
 * submit to a ring from a thread other than its owner, block anywhere but
 * in the ring's wait, or report errors through errno. It is the only
 * directory that includes <liburing.h>. */
#ifndef WEFT_IO_IO_H
#define WEFT_IO_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct weft__worker;
struct weft__ring;

/* An operation in flight: the ring's user_data points at one. complete runs
 * on the owning worker when the completion is reaped. */
struct weft__io_req {
    void (*complete)(struct weft__io_req *req, int32_t res, uint32_t flags);
};

/* Can this process use io_uring at all? Run once at start-up. Returns 0, or
 * -errno with a sentence naming the cause (seccomp, sysctl
 * kernel.io_uring_disabled, an old kernel) in why. */
int weft__ring_probe(char *why, size_t whylen);

/* Create worker w's ring on the calling (worker) thread. ring_entries is a
 * power of two. Returns 0 or -errno with the cause in why. */
int weft__ring_init(struct weft__worker *w, unsigned ring_entries, char *why,
                    size_t whylen);
/* On the owner's thread, once its loop has ended (no task is left): end
 * what the ring still has in flight (multishot accepts, the wake-up read)
 * and reap it, so that no accepted fd is lost; release the receive pool.
 * The ring stays open for weft__ring_wake. */
void weft__ring_quiesce(struct weft__worker *w);
/* Close and free w's ring: any thread, once no thread can wake w. */
void weft__ring_exit(struct weft__worker *w);

/* Submit what is pending and run the completions that are ready, without
 * blocking. Returns how many completions ran. Owner only. */
unsigned weft__ring_poll(struct weft__worker *w);

/* Submit what is pending and block until a completion arrives, the worker
 * is woken, or deadline (weft_now_ns time; UINT64_MAX: none) passes; then
 * run the completions. Owner only. */
void weft__ring_wait(struct weft__worker *w, uint64_t deadline);

/* Any thread: make the owner's current or next weft__ring_wait return. */
void weft__ring_wake(struct weft__worker *w);

/* A short description of the flags the ring got ("single-issuer,
 * defer-taskrun"), for logs. */
const char *weft__ring_flags(struct weft__worker *w);

#endif /* WEFT_IO_IO_H */
