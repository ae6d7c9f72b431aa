/* sched/parallel.c: parallel_for and parallel_reduce. Entry points:
 * weft_parallel_for, weft_parallel_reduce.
 *
 * A loop is a job with one slot per worker. Slot i starts with the i-th
 * contiguous share of the range, and a helper task pinned to worker i works
 * on it (the caller works on its own worker's slot), so the pages a
 * parallel_for first touched are read by the same worker in the next loop
 * over the same range. A participant takes `grain` indices at a time from
 * the front of its slot; when its slot is empty it steals the back half of
 * the fullest slot, so idle workers take the largest pieces first and the
 * loop ends within one grain of perfect balance. A helper that starts after
 * the work ran out just leaves; the job is reference-counted so it may.
 *
 * Participants never wait for each other: only the caller waits, for the
 * count of unfinished indices to reach zero. Nested loops and loops called
 * from many tasks at once need nothing special: each is its own job, and a
 * caller always does all of the work itself if no helper comes.
 * Must never: run an index twice or skip one, or let a late helper touch
 * the caller's arguments after the caller returned. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "sched/sched.h"

#define MAX_PARTIAL 256u
#define GRAIN_CHUNKS_PER_WORKER 64
#define GRAIN_MAX 65536

struct slot {
    /* lo and hi change under lock; thieves scan them without it. */
    _Alignas(64) pthread_mutex_t lock;
    _Atomic int64_t lo;
    _Atomic int64_t hi;
    _Alignas(16) unsigned char partial[MAX_PARTIAL];
};

struct job {
    _Atomic unsigned refs;
    _Atomic int64_t remaining; /* indices not yet handled */
    int64_t grain;
    weft_range_fn body;
    const weft_reducer_t *reducer;
    void *arg;
    /* The caller's wait for remaining == 0 (Dekker with the last finisher:
     * the caller stores waiting after its waiter, then reads remaining; a
     * finisher brings remaining to 0, then reads waiting). */
    struct weft__waiter *waiter;
    uint32_t seq;
    _Atomic bool waiting;
    unsigned nslots;
    struct slot slots[];
};

static void job_release(struct job *j)
{
    /* acq_rel: the last owner sees every other owner's writes before it
     * destroys the job. */
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) == 1) {
        for (unsigned i = 0; i < j->nslots; i++)
            pthread_mutex_destroy(&j->slots[i].lock);
        free(j);
    }
}

/* Take the next piece of slot s, or return false if it is empty. */
static bool take(struct job *j, struct slot *s, int64_t *lo, int64_t *hi)
{
    pthread_mutex_lock(&s->lock);
    int64_t a = atomic_load_explicit(&s->lo, memory_order_relaxed);
    int64_t b = atomic_load_explicit(&s->hi, memory_order_relaxed);
    bool got = a < b;
    if (got) {
        int64_t e = b - a > j->grain ? a + j->grain : b;
        atomic_store_explicit(&s->lo, e, memory_order_relaxed);
        *lo = a;
        *hi = e;
    }
    pthread_mutex_unlock(&s->lock);
    return got;
}

/* Move the back half of the fullest other slot into slot `me`. */
static bool steal(struct job *j, unsigned me)
{
    for (;;) {
        unsigned best = me;
        int64_t best_n = 0;
        for (unsigned i = 0; i < j->nslots; i++) {
            if (i == me)
                continue;
            int64_t n = atomic_load_explicit(&j->slots[i].hi, memory_order_relaxed) -
                        atomic_load_explicit(&j->slots[i].lo, memory_order_relaxed);
            if (n > best_n) {
                best_n = n;
                best = i;
            }
        }
        if (best == me)
            return false;
        struct slot *v = &j->slots[best];
        pthread_mutex_lock(&v->lock);
        int64_t a = atomic_load_explicit(&v->lo, memory_order_relaxed);
        int64_t b = atomic_load_explicit(&v->hi, memory_order_relaxed);
        int64_t mid = a + (b - a) / 2;
        bool got = a < b;
        if (got)
            atomic_store_explicit(&v->hi, mid, memory_order_relaxed);
        pthread_mutex_unlock(&v->lock);
        if (!got)
            continue; /* emptied meanwhile: look again */
        struct slot *s = &j->slots[me];
        pthread_mutex_lock(&s->lock);
        atomic_store_explicit(&s->lo, mid, memory_order_relaxed);
        atomic_store_explicit(&s->hi, b, memory_order_relaxed);
        pthread_mutex_unlock(&s->lock);
        return true;
    }
}

static void finish_piece(struct job *j, int64_t n)
{
    /* acq_rel: the body's writes (and a reducer's partial) happen before
     * the caller's read of remaining == 0. */
    if (atomic_fetch_sub_explicit(&j->remaining, n, memory_order_acq_rel) == n &&
        atomic_load_explicit(&j->waiting, memory_order_seq_cst))
        weft__waiter_wake(j->waiter, j->seq, 0);
}

static void participate(struct job *j, unsigned me)
{
    struct slot *s = &j->slots[me];
    for (;;) {
        int64_t lo, hi;
        if (take(j, s, &lo, &hi)) {
            if (j->reducer)
                j->reducer->body(lo, hi, s->partial, j->arg);
            else
                j->body(lo, hi, j->arg);
            finish_piece(j, hi - lo);
            /* A parallel loop holds its workers on purpose: each piece
             * counts as a switch for the watchdog, which then reports only
             * a single piece that outlasts its threshold. The body may
             * have moved the task: ask which worker runs it. */
            weft__watchdog_pet(weft__worker_self());
        } else if (!steal(j, me)) {
            return;
        }
    }
}

static intptr_t helper(void *arg)
{
    struct job *j = arg;
    int me = weft_worker_index();
    if (me >= 0 && (unsigned)me < j->nslots &&
        atomic_load_explicit(&j->remaining, memory_order_acquire) > 0)
        participate(j, (unsigned)me);
    job_release(j);
    return 0;
}

static int64_t auto_grain(int64_t n, unsigned workers)
{
    int64_t g = n / ((int64_t)workers * GRAIN_CHUNKS_PER_WORKER);
    if (g < 1)
        g = 1;
    if (g > GRAIN_MAX)
        g = GRAIN_MAX;
    return g;
}

static int run_loop(int64_t begin, int64_t end, int64_t grain,
                    weft_range_fn body, const weft_reducer_t *reducer,
                    void *arg, void *result)
{
    struct weft__worker *w = weft__worker_self();
    if (!weft__task_self(w)) {
        weft__misuse("weft_parallel_for", "called from a plain thread");
        return -EPERM;
    }
    struct weft__runtime *rt = w->rt;
    int64_t n;
    if (__builtin_sub_overflow(end, begin, &n)) {
        weft__misuse("weft_parallel_for", "the range has more than "
                                          "INT64_MAX indices");
        return -EINVAL;
    }
    unsigned nslots = rt->nworkers;
    if (grain == 0)
        grain = auto_grain(n, nslots);

    size_t size = sizeof(struct job) + nslots * sizeof(struct slot);
    struct job *j = aligned_alloc(64, (size + 63) & ~(size_t)63);
    if (!j)
        return -ENOMEM;
    atomic_init(&j->refs, 1);
    atomic_init(&j->remaining, n);
    j->grain = grain;
    j->body = body;
    j->reducer = reducer;
    j->arg = arg;
    j->waiter = NULL;
    atomic_init(&j->waiting, false);
    j->nslots = nslots;
    for (unsigned i = 0; i < nslots; i++) {
        struct slot *s = &j->slots[i];
        pthread_mutex_init(&s->lock, NULL);
        atomic_init(&s->lo, begin + (int64_t)((__int128)n * i / nslots));
        atomic_init(&s->hi, begin + (int64_t)((__int128)n * (i + 1) / nslots));
        if (reducer)
            reducer->identity(s->partial, arg);
    }

    unsigned me = w->index;
    /* Helpers only where there is more than one piece of work. */
    if (n > grain) {
        for (unsigned i = 0; i < nslots; i++) {
            if (i == me)
                continue;
            atomic_fetch_add_explicit(&j->refs, 1, memory_order_relaxed);
            if (weft__spawn_on(rt, w, i, helper, j) != 0)
                atomic_fetch_sub_explicit(&j->refs, 1, memory_order_relaxed);
        }
    }
    participate(j, me);

    if (atomic_load_explicit(&j->remaining, memory_order_acquire) != 0) {
        w = weft__worker_self();
        struct weft__waiter *wt = weft__waiter_self(w);
        /* Uncancellable: helpers are running the caller's body with the
         * caller's arguments; we may not return before they are done. */
        uint32_t seq = weft__waiter_begin(wt, WAIT_UNCANCELLABLE, "parallel");
        j->waiter = wt;
        j->seq = seq;
        atomic_store_explicit(&j->waiting, true, memory_order_seq_cst);
        if (atomic_load_explicit(&j->remaining, memory_order_seq_cst) == 0)
            weft__waiter_wake(wt, seq, 0);
        weft__waiter_block(&w, wt, seq, UINT64_MAX);
    }
    if (reducer) {
        unsigned char acc[MAX_PARTIAL];
        reducer->identity(acc, arg);
        for (unsigned i = 0; i < nslots; i++)
            reducer->combine(acc, j->slots[i].partial, arg);
        memcpy(result, acc, reducer->size);
    }
    job_release(j);
    return 0;
}

WEFT_API int weft_parallel_for(int64_t begin, int64_t end, int64_t grain,
                               weft_range_fn body, void *arg)
{
    if (begin > end || grain < 0 || !body) {
        weft__misuse("weft_parallel_for",
                     "begin > end, negative grain, or NULL body");
        return -EINVAL;
    }
    if (!weft_in_fiber()) {
        weft__misuse("weft_parallel_for", "called from a plain thread");
        return -EPERM;
    }
    if (begin == end)
        return 0;
    return run_loop(begin, end, grain, body, NULL, arg, NULL);
}

WEFT_API int weft_parallel_reduce(int64_t begin, int64_t end, int64_t grain,
                                  const weft_reducer_t *reducer, void *arg,
                                  void *result)
{
    if (begin > end || grain < 0 || !reducer || !result || !reducer->body ||
        !reducer->identity || !reducer->combine || reducer->size == 0 ||
        reducer->size > MAX_PARTIAL) {
        weft__misuse("weft_parallel_reduce",
                     "bad range or grain, or a NULL or malformed reducer");
        return -EINVAL;
    }
    if (!weft_in_fiber()) {
        weft__misuse("weft_parallel_reduce", "called from a plain thread");
        return -EPERM;
    }
    if (begin == end) {
        unsigned char acc[MAX_PARTIAL];
        reducer->identity(acc, arg);
        memcpy(result, acc, reducer->size);
        return 0;
    }
    return run_loop(begin, end, grain, NULL, reducer, arg, result);
}
