/* io/rbuf.c: receiving into pooled buffers. Entry points: weft_recv_pooled,
 * weft_rbuf_release, weft__rpool_exit.
 *
 * Each worker's ring gets, on first use, a buffer ring (group 0) of
 * RPOOL_ENTRIES buffers of WEFT_RBUF_SIZE bytes: a recv with
 * IOSQE_BUFFER_SELECT leaves the choice of buffer to the kernel at the
 * moment data arrives, so a connection waiting in recv holds no memory of
 * its own (10,000 idle connections with 16 KiB each would hold 160 MiB;
 * the pool holds 4 MiB per worker, of address space, touched as used).
 *  B1. Only the ring's owner adds buffers to its buffer ring (the tail is a
 *      single-producer index the kernel reads with acquire; liburing's
 *      advance stores it with release).
 *  B2. A buffer lent to a fiber is given back by weft_rbuf_release from any
 *      thread: on the owner it goes straight back; elsewhere a message to
 *      the owner carries it, the message living in the free buffer itself
 *      (16 KiB is room enough; a buffer is released once, so its message is
 *      in one queue at a time).
 *  B3. An empty pool (-ENOBUFS) falls back to a heap buffer and a plain
 *      recv, so the call never fails for want of buffers.
 * liburing 2.3 has io_uring_register_buf_ring but not 2.4's
 * io_uring_setup_buf_ring: CMake probes for it (WEFT_HAVE_SETUP_BUF_RING);
 * without it the ring's memory is mapped and registered here.
 * Must never: add a buffer from a thread that does not own the ring, or
 * lend one buffer twice. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "io/ring.h"

#define RPOOL_ENTRIES 256u /* a power of two, at most 32768 */
#define RPOOL_BGID 0
#define TOKEN_HEAP (1ull << 63)

struct weft__rpool {
    bool ok; /* registered; false: the kernel refused, always fall back */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    char *mem;
};

/* B2's message, written into the start of the released buffer. */
struct release_msg {
    struct weft__msg msg;
    uint16_t bid;
};
_Static_assert(sizeof(struct release_msg) <= WEFT_RBUF_SIZE, "fits a buffer");

static struct weft__rpool *pool_of(struct weft__ring *r)
{
    if (r->rpool)
        return r->rpool->ok ? r->rpool : NULL;
    struct weft__rpool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    r->rpool = p;
    size_t mem_bytes = (size_t)RPOOL_ENTRIES * WEFT_RBUF_SIZE;
    p->mem = mmap(NULL, mem_bytes, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p->mem == MAP_FAILED) {
        p->mem = NULL;
        return NULL;
    }
#if defined(WEFT_HAVE_SETUP_BUF_RING)
    int err = 0;
    p->br = io_uring_setup_buf_ring(&r->ring, RPOOL_ENTRIES, RPOOL_BGID, 0,
                                    &err);
    if (!p->br) {
        munmap(p->mem, mem_bytes);
        p->mem = NULL;
        return NULL;
    }
#else
    p->br_bytes = RPOOL_ENTRIES * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, p->br_bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (br == MAP_FAILED) {
        munmap(p->mem, mem_bytes);
        p->mem = NULL;
        return NULL;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)br;
    reg.ring_entries = RPOOL_ENTRIES;
    reg.bgid = RPOOL_BGID;
    if (io_uring_register_buf_ring(&r->ring, &reg, 0) < 0) {
        munmap(br, p->br_bytes);
        munmap(p->mem, mem_bytes);
        p->mem = NULL;
        return NULL;
    }
    p->br = br;
    io_uring_buf_ring_init(p->br);
#endif
    int mask = io_uring_buf_ring_mask(RPOOL_ENTRIES);
    for (unsigned i = 0; i < RPOOL_ENTRIES; i++)
        io_uring_buf_ring_add(p->br, p->mem + (size_t)i * WEFT_RBUF_SIZE,
                              WEFT_RBUF_SIZE, (unsigned short)i, mask, (int)i);
    io_uring_buf_ring_advance(p->br, RPOOL_ENTRIES);
    p->ok = true;
    return p;
}

/* B1: owner only. */
static void recycle(struct weft__ring *r, unsigned bid)
{
    struct weft__rpool *p = r->rpool;
    io_uring_buf_ring_add(p->br, p->mem + (size_t)bid * WEFT_RBUF_SIZE,
                          WEFT_RBUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(RPOOL_ENTRIES), 0);
    io_uring_buf_ring_advance(p->br, 1);
}

static void release_run(struct weft__worker *w, struct weft__msg *m)
{
    struct release_msg *rm = (struct release_msg *)m;
    recycle(w->ring, rm->bid);
}

/* Give buffer bid of worker widx's pool back, from any thread (B2). */
static void give_back(unsigned widx, unsigned bid)
{
    struct weft__runtime *rt = weft__runtime();
    if (!rt || widx >= rt->nworkers)
        return; /* the runtime (and the pool) is gone */
    struct weft__worker *owner = rt->workers[widx];
    if (weft__worker_self() == owner) {
        recycle(owner->ring, bid);
        return;
    }
    struct release_msg *rm = (struct release_msg *)(
        owner->ring->rpool->mem + (size_t)bid * WEFT_RBUF_SIZE);
    rm->msg.run = release_run;
    rm->bid = (uint16_t)bid;
    weft__worker_post(rt, owner, &rm->msg);
}

static ssize_t recv_heap(int fd, weft_rbuf_t *buf, uint64_t deadline)
{
    void *mem = malloc(WEFT_RBUF_SIZE);
    if (!mem)
        return -ENOMEM;
    ssize_t r = weft_recv(fd, mem, WEFT_RBUF_SIZE, 0, deadline);
    if (r <= 0) {
        free(mem);
        return r;
    }
    buf->data = mem;
    buf->len = (size_t)r;
    buf->token_ = TOKEN_HEAP;
    return r;
}

WEFT_API ssize_t weft_recv_pooled(int fd, weft_rbuf_t *buf,
                                  uint64_t deadline_ns)
{
    if (fd < 0)
        return -EBADF;
    if (!buf)
        return -EINVAL;
    struct weft__worker *w;
    int err = weft__io_begin(&w, &deadline_ns);
    if (err) {
        if (err == -EPERM)
            weft__misuse("weft_recv_pooled", "called from a plain thread, "
                                             "not a fiber");
        return err;
    }
    struct weft__ring *r = w->ring;
    if (!pool_of(r))
        return recv_heap(fd, buf, deadline_ns); /* B3 */
    unsigned widx = w->index;
    struct io_uring_sqe *sqe = weft__io_sqe(w, deadline_ns);
    io_uring_prep_recv(sqe, fd, NULL, WEFT_RBUF_SIZE, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = RPOOL_BGID;
    uint32_t cflags = 0;
    int res = weft__io_wait(&w, sqe, deadline_ns, "recv pooled",
                            WEFT__IO_CANCELLABLE, &cflags);
    if (cflags & IORING_CQE_F_BUFFER) {
        unsigned bid = cflags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0) {
            buf->data = r->rpool->mem + (size_t)bid * WEFT_RBUF_SIZE;
            buf->len = (size_t)res;
            buf->token_ = ((uint64_t)widx << 16) | bid;
            return res;
        }
        give_back(widx, bid); /* a buffer for nothing (end of stream) */
    }
    if (res == -ENOBUFS)
        return recv_heap(fd, buf, deadline_ns); /* B3 */
    return res;
}

WEFT_API void weft_rbuf_release(weft_rbuf_t *buf)
{
    if (!buf || !buf->data)
        return;
    if (buf->token_ & TOKEN_HEAP)
        free(buf->data);
    else
        give_back((unsigned)(buf->token_ >> 16) & 0xffffu,
                  (unsigned)buf->token_ & 0xffffu);
    memset(buf, 0, sizeof *buf);
}

void weft__rpool_exit(struct weft__ring *r)
{
    struct weft__rpool *p = r->rpool;
    if (!p)
        return;
    if (p->ok) {
#if defined(WEFT_HAVE_SETUP_BUF_RING)
        io_uring_free_buf_ring(&r->ring, p->br, RPOOL_ENTRIES, RPOOL_BGID);
#else
        io_uring_unregister_buf_ring(&r->ring, RPOOL_BGID);
        munmap(p->br, p->br_bytes);
#endif
        munmap(p->mem, (size_t)RPOOL_ENTRIES * WEFT_RBUF_SIZE);
    }
    free(p);
    r->rpool = NULL;
}
