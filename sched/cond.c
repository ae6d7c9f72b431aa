/* sched/cond.c: condition variables for weft mutexes. Entry points:
 * weft_cond_*.
 *
 * A waiter queues its node under the condition's own lock before it
 * releases the mutex, so a signal sent by anyone who took the mutex after
 * that release finds it (no lost wake-up). A signal pops nodes until one
 * wake succeeds: a waiter whose wait already ended (deadline, cancel) does
 * not swallow it. Whatever ends the wait, the waiter re-acquires the mutex
 * before returning, uncancellably and with no deadline (pthread's rule), so
 * the caller always returns owning it.
 * Must never: return from a wait without owning the mutex, or hold the
 * condition's lock while taking the mutex. */
#include <errno.h>
#include <stdlib.h>

#include "runtime/runtime.h"
#include "sched/sched.h"
#include "sched/sync.h"
#include "sched/waitq.h"

struct weft_cond {
    uint32_t tag;
    pthread_mutex_t lock;
    struct weft__waitq waiters; /* guarded by lock */
};

static bool valid(const struct weft_cond *c, const char *fn)
{
    if (weft__tag_ok(c, WEFT__TAG_COND))
        return true;
    weft__misuse(fn, "not a live condition variable");
    return false;
}

WEFT_API int weft_cond_create(weft_cond_t **cond)
{
    if (!cond) {
        weft__misuse("weft_cond_create", "cond is NULL");
        return -EINVAL;
    }
    struct weft_cond *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    weft__waitq_init(&c->waiters);
    c->tag = WEFT__TAG_COND;
    *cond = c;
    return 0;
}

WEFT_API int weft_cond_destroy(weft_cond_t *c)
{
    if (!valid(c, "weft_cond_destroy"))
        return -EINVAL;
    pthread_mutex_lock(&c->lock);
    if (weft__waitq_busy(&c->waiters)) {
        pthread_mutex_unlock(&c->lock);
        return -EBUSY;
    }
    c->tag = WEFT__TAG_DEAD;
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_destroy(&c->lock);
    free(c);
    return 0;
}

static int cond_wait(struct weft_cond *c, struct weft_mutex *m,
                     uint64_t deadline, const char *fn)
{
    if (!valid(c, fn))
        return -EINVAL;
    if (!weft__tag_ok(m, WEFT__TAG_MUTEX)) {
        weft__misuse(fn, "not a live mutex");
        return -EINVAL;
    }
    struct weft__worker *w = weft__worker_self();
    uint64_t me = weft__sync_self_id(w);
    if (atomic_load_explicit(&m->owner, memory_order_relaxed) != me) {
        weft__misuse(fn, "the caller does not own the mutex");
        return -EPERM;
    }
    struct weft__waiter *wt = weft__waiter_self(w);
    struct weft__wait_node n;
    pthread_mutex_lock(&c->lock);
    uint32_t seq = weft__waiter_begin(wt, WAIT_DIRECT, "condition");
    weft__wait_node_init(&n, wt, seq, 0, NULL);
    weft__waitq_push(&c->waiters, &n);
    pthread_mutex_unlock(&c->lock);
    /* Queued first, released second: a signal after this release sees us.
     * The unlock wakes other waiters only; it never switches. */
    weft__mutex_unlock(m, me);
    int32_t r = weft__waiter_block(&w, wt, seq, deadline);
    if (r < 0) {
        pthread_mutex_lock(&c->lock);
        weft__waitq_leave(&c->waiters, &n);
        pthread_mutex_unlock(&c->lock);
    }
    /* The task may have moved: me stays its id, w is the new worker. */
    weft__mutex_lock(m, me, &w, UINT64_MAX, WAIT_UNCANCELLABLE);
    return r < 0 ? r : 0;
}

WEFT_API int weft_cond_wait(weft_cond_t *c, weft_mutex_t *m)
{
    return cond_wait(c, m, UINT64_MAX, "weft_cond_wait");
}

WEFT_API int weft_cond_wait_until(weft_cond_t *c, weft_mutex_t *m,
                                  uint64_t deadline_ns)
{
    return cond_wait(c, m, deadline_ns, "weft_cond_wait_until");
}

WEFT_API int weft_cond_signal(weft_cond_t *c)
{
    if (!valid(c, "weft_cond_signal"))
        return -EINVAL;
    pthread_mutex_lock(&c->lock);
    weft__waitq_wake_one(&c->waiters, 0);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

WEFT_API int weft_cond_broadcast(weft_cond_t *c)
{
    if (!valid(c, "weft_cond_broadcast"))
        return -EINVAL;
    pthread_mutex_lock(&c->lock);
    weft__waitq_wake_all(&c->waiters, 0);
    pthread_mutex_unlock(&c->lock);
    return 0;
}
