/* sched/gather.c: waiting for many tasks at once (asyncio.gather). Entry
 * points: weft_gather, weft_gather_ex.
 *
 * Every call goes in two passes. First it claims every handle, as
 * weft_join would (sched/join.c), so bad input (a stale, detached or
 * repeated handle, a task of another group) is refused before anything
 * changes: the claims taken so far are given back. Then it waits:
 *  - by default, joining the tasks in order (the cheapest way: a task that
 *    finished costs one read and a free, and no memory is allocated);
 *  - with WEFT_GATHER_FAIL_FAST, with one watcher per task (sched/join.c)
 *    all ending the same wait: a failing task ends it with its index, the
 *    last successful one with ALL_DONE.
 * Whatever ends the wait early (a failure, the deadline, a cancel of the
 * caller), the tasks still running are cancelled, and then every task is
 * joined uncancellably: no task outlives the call and every handle is
 * spent. Handles are looked up again rather than kept, so the default
 * mode touches no memory of its own.
 * Must never: return while a task it was given still runs, or leave a
 * handle claimed. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "runtime/runtime.h"
#include "sched/coord.h"
#include "sched/sched.h"

#define ALL_DONE INT32_MAX

struct fail_fast {
    struct weft__waiter *waiter;
    uint32_t seq;
    _Atomic size_t remaining; /* tasks not yet seen succeeding */
};

struct ff_node {
    struct weft__watch watch;
    struct fail_fast *ff;
    int32_t index;
};

static struct weft__task *task_of(struct weft__runtime *rt, weft_task_t h)
{
    return weft__task_lookup(rt, h.id_);
}

/* What a task that finished with result r means to a fail-fast gather. */
static void ff_report(struct fail_fast *ff, int32_t index, intptr_t r)
{
    if (r < 0)
        weft__waiter_wake(ff->waiter, ff->seq, index);
    /* acq_rel: the last decrement sees every earlier one's task finished. */
    else if (atomic_fetch_sub_explicit(&ff->remaining, 1,
                                       memory_order_acq_rel) == 1)
        weft__waiter_wake(ff->waiter, ff->seq, ALL_DONE);
}

static void ff_done(struct weft__watch *wa, struct weft__task *t)
{
    struct ff_node *n =
        (struct ff_node *)((char *)wa - offsetof(struct ff_node, watch));
    ff_report(n->ff, n->index, t->result);
}

/* Cancel the tasks from `from` on that have not finished. They are claimed
 * by us, so none can vanish meanwhile. */
static void cancel_rest(struct weft__runtime *rt, const weft_task_t *tasks,
                        size_t from, size_t n)
{
    for (size_t i = from; i < n; i++) {
        struct weft__task *t = task_of(rt, tasks[i]);
        if (!(atomic_load_explicit(&t->state, memory_order_acquire) &
              TASK_FINISHED))
            weft__cancel_live(rt, t);
    }
}

/* Join tasks[from..n) whatever happens; store their results. Returns the
 * result of task `keep` if it lies in the range (else 0). */
static intptr_t join_rest(struct weft__runtime *rt, struct weft__worker **wp,
                          const weft_task_t *tasks, size_t from, size_t n,
                          intptr_t *results, size_t keep)
{
    intptr_t kept = 0;
    for (size_t i = from; i < n; i++) {
        intptr_t r = 0;
        weft__join_claimed(rt, wp, task_of(rt, tasks[i]), WAIT_UNCANCELLABLE,
                           UINT64_MAX, &r);
        if (results)
            results[i] = r;
        if (i == keep)
            kept = r;
    }
    return kept;
}

static int gather_in_order(struct weft__runtime *rt, struct weft__worker *w,
                           const weft_task_t *tasks, size_t n,
                           intptr_t *results, uint64_t deadline)
{
    for (size_t i = 0; i < n; i++) {
        intptr_t r = 0;
        int err = weft__join_claimed(rt, &w, task_of(rt, tasks[i]),
                                     WAIT_DIRECT, deadline, &r);
        if (err < 0) {
            cancel_rest(rt, tasks, i, n);
            join_rest(rt, &w, tasks, i, n, results, SIZE_MAX);
            return err;
        }
        if (results)
            results[i] = r;
    }
    return 0;
}

static int gather_fail_fast(struct weft__runtime *rt, struct weft__worker *w,
                            const weft_task_t *tasks, size_t n,
                            intptr_t *results, uint64_t deadline,
                            struct ff_node *nodes)
{
    struct fail_fast ff;
    ff.waiter = weft__waiter_self(w);
    atomic_init(&ff.remaining, n);
    ff.seq = weft__waiter_begin(ff.waiter, WAIT_DIRECT, "gather");
    for (size_t i = 0; i < n; i++) {
        struct weft__task *t = task_of(rt, tasks[i]);
        nodes[i].ff = &ff;
        nodes[i].index = (int32_t)i;
        nodes[i].watch.fn = ff_done;
        if (weft__task_watch_claimed(t, &nodes[i].watch) == 1)
            ff_report(&ff, (int32_t)i, t->result);
    }
    int32_t outcome = weft__waiter_block(&w, ff.waiter, ff.seq, deadline);
    if (outcome != ALL_DONE)
        cancel_rest(rt, tasks, 0, n);
    /* Every watcher is unlinked by its task's finisher before the task
     * counts as finished, so once all are joined none is left linked. */
    intptr_t failed = join_rest(rt, &w, tasks, 0, n, results,
                                outcome >= 0 && outcome != ALL_DONE
                                    ? (size_t)outcome
                                    : SIZE_MAX);
    if (outcome == ALL_DONE)
        return 0;
    if (outcome >= 0)
        return failed < INT_MIN ? INT_MIN : (int)failed;
    return outcome;
}

WEFT_API int weft_gather_ex(const weft_task_t *tasks, size_t n,
                            intptr_t *results, unsigned flags,
                            uint64_t deadline_ns)
{
    struct weft__runtime *rt = weft__runtime();
    if (!rt)
        return -ESRCH;
    if (flags & ~WEFT_GATHER_FAIL_FAST) {
        weft__misuse("weft_gather_ex", "unknown flags");
        return -EINVAL;
    }
    if (n == 0)
        return 0;
    if (!tasks || n > INT32_MAX - 1) {
        weft__misuse("weft_gather", "tasks NULL, or n above INT32_MAX - 1");
        return -EINVAL;
    }
    struct weft__worker *w = weft__worker_self();
    struct ff_node *nodes = NULL;
    if (flags & WEFT_GATHER_FAIL_FAST) {
        nodes = malloc(n * sizeof *nodes);
        if (!nodes)
            return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct weft__task *t;
        int err = weft__task_claim(rt, w, tasks[i], "weft_gather", &t);
        if (err < 0) {
            while (i-- > 0)
                weft__task_unclaim(task_of(rt, tasks[i]));
            free(nodes);
            return err;
        }
    }
    /* Watchers live in each task's entry beside its descriptor: make
     * them all now, while failing still changes nothing. */
    for (size_t i = 0; nodes && i < n; i++) {
        if (!weft__task_ext(task_of(rt, tasks[i]))) {
            for (size_t k = 0; k < n; k++)
                weft__task_unclaim(task_of(rt, tasks[k]));
            free(nodes);
            return -ENOMEM;
        }
    }
    int r;
    if (nodes)
        r = gather_fail_fast(rt, w, tasks, n, results, deadline_ns, nodes);
    else
        r = gather_in_order(rt, w, tasks, n, results, deadline_ns);
    free(nodes);
    return r;
}

WEFT_API int weft_gather(const weft_task_t *tasks, size_t n, intptr_t *results)
{
    return weft_gather_ex(tasks, n, results, 0, UINT64_MAX);
}
