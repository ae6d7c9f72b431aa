/* sched/waitgroup.c: wait-groups, a counter of outstanding jobs that
 * waiters wait to see reach zero (Go's sync.WaitGroup). Entry points:
 * weft_waitgroup_*.
 *
 * The counter and the queue share one lock: the add that brings the
 * counter to zero wakes every waiter queued before it, and a waiter checks
 * the counter under that lock before it queues. A waiter woken at zero
 * returns 0 even if add raised the counter again before it ran.
 * Must never: let the counter go below zero, or leave a waiter queued
 * across the counter reaching zero. */
#include <errno.h>
#include <stdlib.h>

#include "runtime/runtime.h"
#include "sched/sched.h"
#include "sched/sync.h"
#include "sched/waitq.h"

struct weft_waitgroup {
    uint32_t tag;
    pthread_mutex_t lock;
    int64_t count;              /* guarded by lock; never negative */
    struct weft__waitq waiters; /* guarded by lock */
};

static bool valid(const struct weft_waitgroup *g, const char *fn)
{
    if (weft__tag_ok(g, WEFT__TAG_WG))
        return true;
    weft__misuse(fn, "not a live wait-group");
    return false;
}

WEFT_API int weft_waitgroup_create(weft_waitgroup_t **wg)
{
    if (!wg) {
        weft__misuse("weft_waitgroup_create", "wg is NULL");
        return -EINVAL;
    }
    struct weft_waitgroup *g = calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    pthread_mutex_init(&g->lock, NULL);
    weft__waitq_init(&g->waiters);
    g->tag = WEFT__TAG_WG;
    *wg = g;
    return 0;
}

WEFT_API int weft_waitgroup_destroy(weft_waitgroup_t *g)
{
    if (!valid(g, "weft_waitgroup_destroy"))
        return -EINVAL;
    pthread_mutex_lock(&g->lock);
    if (weft__waitq_busy(&g->waiters)) {
        pthread_mutex_unlock(&g->lock);
        return -EBUSY;
    }
    g->tag = WEFT__TAG_DEAD;
    pthread_mutex_unlock(&g->lock);
    pthread_mutex_destroy(&g->lock);
    free(g);
    return 0;
}

WEFT_API int weft_waitgroup_add(weft_waitgroup_t *g, int64_t delta)
{
    if (!valid(g, "weft_waitgroup_add"))
        return -EINVAL;
    pthread_mutex_lock(&g->lock);
    int r = 0;
    if (delta < 0 && (delta == INT64_MIN || g->count < -delta)) {
        r = -EINVAL;
        weft__misuse("weft_waitgroup_add", "the counter would go below zero");
    } else if (delta > 0 && g->count > INT64_MAX - delta) {
        r = -EOVERFLOW;
    } else {
        g->count += delta;
        if (g->count == 0)
            weft__waitq_wake_all(&g->waiters, 0);
    }
    pthread_mutex_unlock(&g->lock);
    return r;
}

WEFT_API int weft_waitgroup_done(weft_waitgroup_t *g)
{
    return weft_waitgroup_add(g, -1);
}

static int wg_wait(struct weft_waitgroup *g, uint64_t deadline, const char *fn)
{
    if (!valid(g, fn))
        return -EINVAL;
    pthread_mutex_lock(&g->lock);
    if (g->count == 0) {
        pthread_mutex_unlock(&g->lock);
        return 0;
    }
    struct weft__worker *w = weft__worker_self();
    struct weft__wait_node n;
    int32_t o = weft__waitq_wait(&g->waiters, &g->lock, &n, false, &w,
                                 WAIT_DIRECT, "wait-group", deadline, 0, NULL);
    return o < 0 ? o : 0;
}

WEFT_API int weft_waitgroup_wait(weft_waitgroup_t *g)
{
    return wg_wait(g, UINT64_MAX, "weft_waitgroup_wait");
}

WEFT_API int weft_waitgroup_wait_until(weft_waitgroup_t *g,
                                       uint64_t deadline_ns)
{
    return wg_wait(g, deadline_ns, "weft_waitgroup_wait_until");
}
