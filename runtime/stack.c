/* runtime/stack.c: fiber stacks. Entry points: weft__stack_get/put.
 *
 * Stacks are carved from large chunks reserved with one mmap each
 * (MAP_NORESERVE): a stack costs physical memory only for the pages its
 * fiber touched, and a chunk is one VMA however many stacks it holds. Each
 * stack is [guard | usable | 64-byte header], the header at the very top.
 *
 * Guard pages must not cost a VMA each: Linux allows 65530 mappings per
 * process by default, and a million sleeping fibers must fit. So:
 *  1. MADV_GUARD_INSTALL (Linux 6.13+) marks the guard in the page tables
 *     without splitting the VMA: used whenever the kernel has it.
 *  2. Otherwise mprotect(PROT_NONE), which splits the chunk's VMA, while the
 *     process stays under a budget of mappings.
 *  3. Past that budget, a canary word at the bottom of the stack, checked
 *     each time a task switches away: a late catch, but still a clear report
 *     instead of silent corruption.
 * Stacks are reused, never unmapped until the runtime stops: fresh pages
 * cost microseconds each on the machines we run on, reused ones nothing.
 *
 * Must never: unmap or release a stack that a task may still run on, or
 * touch a stack page before a task needs it (except the header). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "sched/sched.h"

#if defined(WEFT_ASAN)
#include <sanitizer/asan_interface.h>
#endif
#if defined(WEFT_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 uapi; older headers lack it */
#endif

#define HEADER_SIZE 64u
#define GUARD_SIZE ((size_t)16 * 1024)   /* catches frames up to 16 KiB */
#define CHUNK_BYTES ((size_t)64 << 20)   /* virtual size of one chunk */
#define MAX_CHUNKS 16384u                /* 1 TiB of stacks */
#define CARVE_BATCH 32u                  /* stacks prepared per pool visit */
#define MPROTECT_VMA_BUDGET 30000u       /* of the default 65530 */
#define CANARY 0x5745465453544b21ull     /* "WEFTSTK!" */

/* At the top of every stack. */
struct stack_header {
    void *next_free; /* depot list link while the stack is free */
#if defined(WEFT_TSAN)
    void *tsan_fiber; /* created on first use, kept across reuse */
#endif
};
_Static_assert(sizeof(struct stack_header) <= HEADER_SIZE, "header fits");

struct chunk {
    char *base;
    size_t nslots;
    size_t carved;               /* slots handed out so far */
    enum weft__guard_mode mode;  /* how this chunk's stacks are guarded */
};

struct weft__stack_pool {
    size_t usable;    /* bytes below the header */
    size_t slot_size; /* guard + usable + header, page multiple */
    pthread_mutex_t lock;
    /* Guarded by lock: */
    struct chunk *chunks; /* MAX_CHUNKS entries, never reallocated */
    size_t nchunks;
    void *depot;      /* free stacks (tops), linked through their headers */
    size_t depot_len;
    size_t mprotected; /* stacks guarded by mprotect so far */
    enum weft__guard_mode mode; /* for new chunks */
    int pidfd;         /* for process_madvise batches; -1 if unavailable */
    bool any_canary;
};

static size_t page_size(void)
{
    static size_t ps;
    if (!ps)
        ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

static struct stack_header *header_of(void *top)
{
    return (struct stack_header *)top;
}

/* Probe MADV_GUARD_INSTALL on a scratch mapping. */
static bool guard_install_works(void)
{
    size_t ps = page_size();
    void *p = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return false;
    bool ok = madvise(p, ps, MADV_GUARD_INSTALL) == 0;
    munmap(p, 2 * ps);
    return ok;
}

int weft__stack_pool_init(struct weft__runtime *rt, size_t usable)
{
    struct weft__stack_pool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    size_t ps = page_size();
    p->usable = usable;
    p->slot_size = (GUARD_SIZE + usable + HEADER_SIZE + ps - 1) & ~(ps - 1);
    /* The page rounding's slack goes to the stack, so that its lowest
     * usable byte sits right above the guard. */
    p->usable = p->slot_size - GUARD_SIZE - HEADER_SIZE;
    /* Fixed capacity: the overflow handler reads this array without a lock,
     * so it must never move. Untouched entries cost no memory. */
    p->chunks = calloc(MAX_CHUNKS, sizeof *p->chunks);
    if (!p->chunks) {
        free(p);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->lock, NULL);
    p->mode = guard_install_works() ? GUARD_MADVISE : GUARD_MPROTECT;
    p->pidfd = -1;
#if defined(SYS_pidfd_open) && defined(SYS_process_madvise)
    if (p->mode == GUARD_MADVISE)
        p->pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
#endif
    rt->stacks = p;
    return 0;
}

void weft__stack_pool_destroy(struct weft__runtime *rt)
{
    struct weft__stack_pool *p = rt->stacks;
    if (!p)
        return;
#if defined(WEFT_TSAN)
    /* Every carved stack that ran has a TSan fiber in its header. */
    for (size_t c = 0; c < p->nchunks; c++) {
        struct chunk *ch = &p->chunks[c];
        for (size_t s = 0; s < ch->carved; s++) {
            void *top = ch->base + (s + 1) * p->slot_size - HEADER_SIZE;
            struct stack_header *h = header_of(top);
            if (h->tsan_fiber)
                __tsan_destroy_fiber(h->tsan_fiber);
        }
    }
#endif
    for (size_t c = 0; c < p->nchunks; c++)
        munmap(p->chunks[c].base, p->chunks[c].nslots * p->slot_size);
    if (p->pidfd >= 0)
        close(p->pidfd);
    free(p->chunks);
    pthread_mutex_destroy(&p->lock);
    free(p);
    rt->stacks = NULL;
}

size_t weft__stack_size(struct weft__runtime *rt)
{
    return rt->stacks->usable;
}

enum weft__guard_mode weft__stack_guard_mode(struct weft__runtime *rt)
{
    return rt->stacks->mode;
}

void *weft__stack_lo(struct weft__runtime *rt, void *top)
{
    return (char *)top - rt->stacks->usable;
}

/* Map one more chunk. Pool lock held. */
static int add_chunk(struct weft__stack_pool *p)
{
    if (p->nchunks == MAX_CHUNKS)
        return -ENOMEM;
    size_t nslots = CHUNK_BYTES / p->slot_size;
    if (nslots < CARVE_BATCH)
        nslots = CARVE_BATCH;
    void *base = mmap(NULL, nslots * p->slot_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return -ENOMEM;
    /* A stack touches a page or two: a transparent huge page would turn
     * that into 2 MiB of resident memory. */
    madvise(base, nslots * p->slot_size, MADV_NOHUGEPAGE);
    enum weft__guard_mode mode = p->mode;
    if (mode == GUARD_MPROTECT &&
        p->mprotected + nslots > MPROTECT_VMA_BUDGET / 2)
        mode = GUARD_CANARY;
    if (mode == GUARD_CANARY)
        p->any_canary = true;
    p->chunks[p->nchunks] =
        (struct chunk){.base = base, .nslots = nslots, .mode = mode};
    /* Publish the filled entry before the count (read by guard_hit). */
    __atomic_store_n(&p->nchunks, p->nchunks + 1, __ATOMIC_RELEASE);
    return 0;
}

/* Install the guards of slots [first, first + n) of ch. */
static int guard_slots(struct weft__stack_pool *p, struct chunk *ch,
                       size_t first, size_t n)
{
    switch (ch->mode) {
    case GUARD_MADVISE: {
#if defined(SYS_process_madvise)
        if (p->pidfd >= 0) {
            struct iovec iov[CARVE_BATCH];
            for (size_t i = 0; i < n; i++) {
                iov[i].iov_base = ch->base + (first + i) * p->slot_size;
                iov[i].iov_len = GUARD_SIZE;
            }
            long r = syscall(SYS_process_madvise, p->pidfd, iov, n,
                             MADV_GUARD_INSTALL, 0);
            if (r == (long)(n * GUARD_SIZE))
                return 0;
            /* Fall through to one call per guard (older kernels refuse
             * guard installs through process_madvise). */
            close(p->pidfd);
            p->pidfd = -1;
        }
#endif
        for (size_t i = 0; i < n; i++)
            if (madvise(ch->base + (first + i) * p->slot_size, GUARD_SIZE,
                        MADV_GUARD_INSTALL) != 0)
                return -errno;
        return 0;
    }
    case GUARD_MPROTECT:
        for (size_t i = 0; i < n; i++) {
            if (mprotect(ch->base + (first + i) * p->slot_size, GUARD_SIZE,
                         PROT_NONE) != 0)
                return -errno;
            p->mprotected++;
        }
        return 0;
    case GUARD_CANARY:
        for (size_t i = 0; i < n; i++) {
            uint64_t *lo = (uint64_t *)(ch->base + (first + i) * p->slot_size +
                                        GUARD_SIZE);
            *lo = CANARY;
        }
        return 0;
    }
    return 0;
}

/* Carve up to n new stacks into out[]. Pool lock held. */
static unsigned carve(struct weft__stack_pool *p, void **out, unsigned n)
{
    struct chunk *ch = p->nchunks ? &p->chunks[p->nchunks - 1] : NULL;
    if (!ch || ch->carved == ch->nslots) {
        if (add_chunk(p) != 0)
            return 0;
        ch = &p->chunks[p->nchunks - 1];
    }
    size_t k = ch->nslots - ch->carved;
    if (k > n)
        k = n;
    if (guard_slots(p, ch, ch->carved, k) != 0)
        return 0;
    for (size_t i = 0; i < k; i++)
        out[i] = ch->base + (ch->carved + i + 1) * p->slot_size - HEADER_SIZE;
    ch->carved += k;
    return (unsigned)k;
}

/* Refill worker w's cache (or fill out[] for a plain thread). Takes the
 * pool lock. Returns how many stacks out[] received. */
static unsigned refill(struct weft__stack_pool *p, void **out, unsigned n)
{
    unsigned got = 0;
    pthread_mutex_lock(&p->lock);
    while (got < n && p->depot) {
        void *top = p->depot;
        p->depot = header_of(top)->next_free;
        p->depot_len--;
        out[got++] = top;
    }
    if (got == 0)
        got = carve(p, out, n);
    pthread_mutex_unlock(&p->lock);
    return got;
}

static void prepare_for_use(struct weft__stack_pool *p, void *top)
{
#if defined(WEFT_ASAN)
    /* The previous fiber's frames may have left poisoned redzones. */
    ASAN_UNPOISON_MEMORY_REGION((char *)top - p->usable, p->usable);
#endif
#if defined(WEFT_TSAN)
    struct stack_header *h = header_of(top);
    if (!h->tsan_fiber)
        h->tsan_fiber = __tsan_create_fiber(0);
#endif
    (void)p;
    (void)top;
}

void *weft__stack_get(struct weft__runtime *rt, struct weft__worker *w)
{
    struct weft__stack_pool *p = rt->stacks;
    void *top;
    if (w) {
        if (w->stack_cache_len == 0) {
            w->stack_cache_len =
                refill(p, w->stack_cache, WEFT_STACK_CACHE / 2);
            if (w->stack_cache_len == 0)
                return NULL;
        }
        top = w->stack_cache[--w->stack_cache_len];
    } else {
        if (refill(p, &top, 1) == 0)
            return NULL;
    }
    prepare_for_use(p, top);
    return top;
}

static void depot_push_locked(struct weft__stack_pool *p, void *top)
{
    header_of(top)->next_free = p->depot;
    p->depot = top;
    p->depot_len++;
}

void weft__stack_put(struct weft__runtime *rt, struct weft__worker *w,
                     void *top)
{
    struct weft__stack_pool *p = rt->stacks;
    if (w && w->stack_cache_len < WEFT_STACK_CACHE) {
        w->stack_cache[w->stack_cache_len++] = top;
        return;
    }
    pthread_mutex_lock(&p->lock);
    depot_push_locked(p, top);
    if (w) {
        /* Keep the most recently used half: their pages are warm. */
        while (w->stack_cache_len > WEFT_STACK_CACHE / 2)
            depot_push_locked(p, w->stack_cache[--w->stack_cache_len]);
    }
    pthread_mutex_unlock(&p->lock);
}

void weft__stack_cache_flush(struct weft__runtime *rt, struct weft__worker *w)
{
    struct weft__stack_pool *p = rt->stacks;
    pthread_mutex_lock(&p->lock);
    while (w->stack_cache_len > 0)
        depot_push_locked(p, w->stack_cache[--w->stack_cache_len]);
    pthread_mutex_unlock(&p->lock);
}

int weft__stack_reserve_check(struct weft__runtime *rt, struct weft__worker *w)
{
    struct weft__stack_pool *p = rt->stacks;
    if (w && w->stack_cache_len > 0)
        return 0;
    int err = 0;
    pthread_mutex_lock(&p->lock);
    struct chunk *ch = p->nchunks ? &p->chunks[p->nchunks - 1] : NULL;
    if (!p->depot && (!ch || ch->carved == ch->nslots))
        err = add_chunk(p);
    pthread_mutex_unlock(&p->lock);
    return err;
}

void *weft__stack_guard_hit(struct weft__runtime *rt, const void *addr)
{
    /* Runs in a signal handler: no locks. Chunks are only appended while
     * the runtime runs, and a stale nchunks only misses the newest chunk,
     * which holds no running stack yet. */
    struct weft__stack_pool *p = rt->stacks;
    const char *a = addr;
    size_t n = __atomic_load_n(&p->nchunks, __ATOMIC_ACQUIRE);
    for (size_t c = 0; c < n; c++) {
        struct chunk *ch = &p->chunks[c];
        if (a < ch->base || a >= ch->base + ch->nslots * p->slot_size)
            continue;
        size_t off = (size_t)(a - ch->base);
        size_t slot = off / p->slot_size;
        if (off - slot * p->slot_size >= GUARD_SIZE)
            return NULL;
        return ch->base + (slot + 1) * p->slot_size - HEADER_SIZE;
    }
    return NULL;
}

bool weft__stack_canary_ok(struct weft__runtime *rt, void *top)
{
    struct weft__stack_pool *p = rt->stacks;
    if (!p->any_canary)
        return true;
    const uint64_t *lo = (const uint64_t *)((char *)top - p->usable);
    /* Only canary-mode chunks carry one; find the chunk. */
    for (size_t c = 0; c < p->nchunks; c++) {
        struct chunk *ch = &p->chunks[c];
        if ((char *)top > ch->base &&
            (char *)top <= ch->base + ch->nslots * p->slot_size)
            return ch->mode != GUARD_CANARY || *lo == CANARY;
    }
    return true;
}

#if defined(WEFT_TSAN)
void *weft__stack_tsan_fiber(void *top)
{
    return header_of(top)->tsan_fiber;
}
#endif
