/* runtime/task.c: task descriptors and the table that turns a handle back
 * into one. Entry points: weft__task_alloc/free/lookup.
 *
 * Descriptors live in chunks of WEFT_TASKS_PER_CHUNK, mapped as needed and
 * never unmapped while the runtime runs, so a stale handle always points at
 * readable memory and is refused by its generation (sched/join.c), and a
 * late wake-up through a descriptor's waiter is always safe. Free
 * descriptors are cached per worker (no atomics on the spawn path) and
 * overflow to a shared depot, as magazines do (Bonwick, 2001).
 *
 * Must never: hand out a descriptor whose generation did not change since
 * it was last freed, or free one that is still reachable through a queue. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "runtime/runtime.h"
#include "sched/sched.h"

struct weft__task_pool {
    pthread_mutex_t lock;
    /* Guarded by lock (chunk pointers are also read without it, after the
     * count that covers them was read with acquire). */
    struct weft__task *chunks[WEFT_TASK_CHUNKS];
    _Atomic uint32_t nchunks;
    uint32_t carved; /* descriptors handed out of the last chunk */
    struct weft__qlist depot;
};

#define CHUNK_BYTES (WEFT_TASKS_PER_CHUNK * sizeof(struct weft__task))

int weft__task_pool_init(struct weft__runtime *rt)
{
    /* The chunk table is 512 KiB of pointers, nearly all untouched: map it
     * rather than calloc it so it costs only the pages used. */
    struct weft__task_pool *p =
        mmap(NULL, sizeof *p, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    pthread_mutex_init(&p->lock, NULL);
    weft__qlist_init(&p->depot);
    rt->tasks = p;
    return 0;
}

void weft__task_pool_destroy(struct weft__runtime *rt)
{
    struct weft__task_pool *p = rt->tasks;
    if (!p)
        return;
    uint32_t n = atomic_load(&p->nchunks);
    for (uint32_t c = 0; c < n; c++)
        munmap(p->chunks[c], CHUNK_BYTES);
    pthread_mutex_destroy(&p->lock);
    munmap(p, sizeof *p);
    rt->tasks = NULL;
}

/* Take up to n free descriptors into *out. Pool lock held. */
static size_t take_locked(struct weft__task_pool *p, struct weft__qlist *out,
                          size_t n)
{
    size_t got = 0;
    while (got < n && p->depot.head) {
        weft__qlist_push(out, weft__qlist_pop(&p->depot));
        got++;
    }
    if (got)
        return got;
    uint32_t nchunks = atomic_load_explicit(&p->nchunks, memory_order_relaxed);
    if (nchunks == 0 || p->carved == WEFT_TASKS_PER_CHUNK) {
        if (nchunks == WEFT_TASK_CHUNKS)
            return 0;
        struct weft__task *c =
            mmap(NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (c == MAP_FAILED)
            return 0;
        p->chunks[nchunks] = c;
        p->carved = 0;
        /* Release: whoever reads the count sees the chunk pointer. */
        atomic_store_explicit(&p->nchunks, nchunks + 1, memory_order_release);
        nchunks++;
    }
    struct weft__task *c = p->chunks[nchunks - 1];
    while (got < n && p->carved < WEFT_TASKS_PER_CHUNK) {
        struct weft__task *t = &c[p->carved];
        t->index = (nchunks - 1) * WEFT_TASKS_PER_CHUNK + p->carved;
        p->carved++;
        /* Generation 0 is never used by a live task (handles start at 1). */
        atomic_init(&t->state, 0);
        weft__qlist_push(out, &t->q);
        got++;
    }
    return got;
}

/* Start a descriptor's next life. Stale handles and stale wake-ups may
 * still read (and try to CAS) its atomics concurrently, so every field is
 * written one by one, atomics with atomic stores, never with memset. */
static void reset(struct weft__task *t)
{
    uint64_t old = atomic_load_explicit(&t->state, memory_order_relaxed);
    uint32_t gen = (uint32_t)(old >> 32) + 1;
    if (gen == 0)
        gen = 1;
    /* The waiter's seq keeps counting across lives, and the word is left
     * in the idle state, which no wake-up matches: a wake aimed at the last
     * wait of the previous life can never end a wait of this one. */
    uint64_t word = atomic_load_explicit(&t->waiter.word, memory_order_relaxed);
    atomic_store_explicit(&t->waiter.word,
                          (word & 0xffffffff00000000ull) | WEFT_WAIT_IDLE,
                          memory_order_relaxed);
    t->waiter.task = t;
    t->q.next = NULL;
    t->sp = NULL;
    t->stack = NULL;
    t->worker = NULL;
    t->fn = NULL;
    t->arg = NULL;
    t->result = 0;
    atomic_store_explicit(&t->park, PARK_RUNNING, memory_order_relaxed);
    t->flags = 0;
    t->home = 0;
    atomic_store_explicit(&t->cancel, 0, memory_order_relaxed);
    atomic_store_explicit(&t->wait_kind, WAIT_NONE, memory_order_relaxed);
    atomic_store_explicit(&t->wait_cancel, NULL, memory_order_relaxed);
    atomic_store_explicit(&t->wait_obj, NULL, memory_order_relaxed);
    t->joiner = NULL;
    t->joiner_seq = 0;
    t->timer_seq = 0;
    t->timer.armed = false;
    t->timer_worker = NULL;
    t->deadline = UINT64_MAX;
    t->name = NULL;
    t->spawn_site = NULL;
    atomic_store_explicit(&t->wait_what, NULL, memory_order_relaxed);
#if defined(WEFT_ASAN)
    t->asan_fake_stack = NULL;
#endif
    /* Release: a stale reader that sees the new generation sees the fields
     * above reset too. */
    atomic_store_explicit(&t->state, ((uint64_t)gen << 32) | TASK_LIVE,
                          memory_order_release);
}

struct weft__task *weft__task_alloc(struct weft__runtime *rt,
                                    struct weft__worker *w)
{
    struct weft__task_pool *p = rt->tasks;
    struct weft__qlink *link;
    if (w) {
        if (!w->task_cache.head) {
            pthread_mutex_lock(&p->lock);
            take_locked(p, &w->task_cache, WEFT_TASK_CACHE / 2);
            pthread_mutex_unlock(&p->lock);
        }
        link = weft__qlist_pop(&w->task_cache);
    } else {
        struct weft__qlist one;
        weft__qlist_init(&one);
        pthread_mutex_lock(&p->lock);
        take_locked(p, &one, 1);
        pthread_mutex_unlock(&p->lock);
        link = weft__qlist_pop(&one);
    }
    if (!link)
        return NULL;
    struct weft__task *t = (struct weft__task *)link;
    reset(t);
    return t;
}

void weft__task_free(struct weft__runtime *rt, struct weft__worker *w,
                     struct weft__task *t)
{
    struct weft__task_pool *p = rt->tasks;
    uint64_t old = atomic_load_explicit(&t->state, memory_order_relaxed);
    /* Keep the generation (alloc takes the next), drop every flag: handles
     * to this life now fail their CAS (they expect TASK_LIVE). Release: the
     * next owner's writes must not be visible to a stale reader before ours
     * are complete. */
    atomic_store_explicit(&t->state, old & 0xffffffff00000000ull,
                          memory_order_release);
    if (w) {
        weft__qlist_push(&w->task_cache, &t->q);
        if (w->task_cache.len > WEFT_TASK_CACHE) {
            pthread_mutex_lock(&p->lock);
            while (w->task_cache.len > WEFT_TASK_CACHE / 2)
                weft__qlist_push(&p->depot, weft__qlist_pop(&w->task_cache));
            pthread_mutex_unlock(&p->lock);
        }
        return;
    }
    pthread_mutex_lock(&p->lock);
    weft__qlist_push(&p->depot, &t->q);
    pthread_mutex_unlock(&p->lock);
}

void weft__task_cache_flush(struct weft__runtime *rt, struct weft__worker *w)
{
    struct weft__task_pool *p = rt->tasks;
    pthread_mutex_lock(&p->lock);
    weft__qlist_append(&p->depot, &w->task_cache);
    pthread_mutex_unlock(&p->lock);
}

struct weft__task *weft__task_lookup(struct weft__runtime *rt, uint64_t id)
{
    struct weft__task_pool *p = rt->tasks;
    uint32_t low = (uint32_t)id;
    if (low == 0)
        return NULL;
    uint32_t index = low - 1;
    uint32_t chunk = index / WEFT_TASKS_PER_CHUNK;
    /* Acquire: pairs with the release in take_locked, so the chunk pointer
     * read next is the one published with this count. */
    if (chunk >= atomic_load_explicit(&p->nchunks, memory_order_acquire))
        return NULL;
    return &p->chunks[chunk][index % WEFT_TASKS_PER_CHUNK];
}

void weft__task_for_each(struct weft__runtime *rt,
                         void (*fn)(struct weft__task *t, void *ctx),
                         void *ctx)
{
    struct weft__task_pool *p = rt->tasks;
    pthread_mutex_lock(&p->lock);
    uint32_t n = atomic_load(&p->nchunks);
    uint32_t last = p->carved;
    pthread_mutex_unlock(&p->lock);
    for (uint32_t c = 0; c < n; c++) {
        uint32_t count = c + 1 == n ? last : WEFT_TASKS_PER_CHUNK;
        for (uint32_t i = 0; i < count; i++)
            fn(&p->chunks[c][i], ctx);
    }
}
