/* sched/sem.c: counting semaphores. Entry points: weft_sem_*.
 *
 * Units go to waiters in FIFO order: release hands its unit straight to
 * the longest waiter (the wake carries it), so a unit is never free while
 * a live waiter waits, and a newcomer cannot take it ahead of the queue.
 * A waiter whose wait ended by deadline or cancel was never given a unit:
 * release's wake of it fails and the unit goes to the next waiter or back
 * to the count.
 * Must never: let count pass max, or lose a unit to a waiter that left. */
#include <errno.h>
#include <stdlib.h>

#include "runtime/runtime.h"
#include "sched/sched.h"
#include "sched/sync.h"
#include "sched/waitq.h"

struct weft_sem {
    uint32_t tag;
    uint32_t max; /* fixed at creation */
    pthread_mutex_t lock;
    uint32_t count;             /* free units; guarded by lock */
    struct weft__waitq waiters; /* guarded by lock */
};

static bool valid(const struct weft_sem *s, const char *fn)
{
    if (weft__tag_ok(s, WEFT__TAG_SEM))
        return true;
    weft__misuse(fn, "not a live semaphore");
    return false;
}

WEFT_API int weft_sem_create(weft_sem_t **sem, uint32_t value, uint32_t max)
{
    if (!sem) {
        weft__misuse("weft_sem_create", "sem is NULL");
        return -EINVAL;
    }
    if (max == 0)
        max = UINT32_MAX;
    if (value > max) {
        weft__misuse("weft_sem_create", "value is above max");
        return -EINVAL;
    }
    struct weft_sem *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->max = max;
    s->count = value;
    pthread_mutex_init(&s->lock, NULL);
    weft__waitq_init(&s->waiters);
    s->tag = WEFT__TAG_SEM;
    *sem = s;
    return 0;
}

WEFT_API int weft_sem_destroy(weft_sem_t *s)
{
    if (!valid(s, "weft_sem_destroy"))
        return -EINVAL;
    pthread_mutex_lock(&s->lock);
    if (weft__waitq_busy(&s->waiters)) {
        pthread_mutex_unlock(&s->lock);
        return -EBUSY;
    }
    s->tag = WEFT__TAG_DEAD;
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return 0;
}

static int sem_acquire(struct weft_sem *s, uint64_t deadline, bool wait,
                       const char *fn)
{
    if (!valid(s, fn))
        return -EINVAL;
    pthread_mutex_lock(&s->lock);
    if (s->count) {
        s->count--;
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    if (!wait) {
        pthread_mutex_unlock(&s->lock);
        return -EAGAIN;
    }
    struct weft__worker *w = weft__worker_self();
    struct weft__wait_node n;
    int32_t o = weft__waitq_wait(&s->waiters, &s->lock, &n, false, &w,
                                 WAIT_DIRECT, "semaphore", deadline, 0, NULL);
    return o < 0 ? o : 0; /* 0: release handed us its unit */
}

WEFT_API int weft_sem_acquire(weft_sem_t *s)
{
    return sem_acquire(s, UINT64_MAX, true, "weft_sem_acquire");
}

WEFT_API int weft_sem_acquire_until(weft_sem_t *s, uint64_t deadline_ns)
{
    return sem_acquire(s, deadline_ns, true, "weft_sem_acquire_until");
}

WEFT_API int weft_sem_try_acquire(weft_sem_t *s)
{
    return sem_acquire(s, 0, false, "weft_sem_try_acquire");
}

WEFT_API int weft_sem_release(weft_sem_t *s)
{
    if (!valid(s, "weft_sem_release"))
        return -EINVAL;
    pthread_mutex_lock(&s->lock);
    int r = 0;
    if (!weft__waitq_wake_one(&s->waiters, 0)) {
        if (s->count == s->max)
            r = -EOVERFLOW;
        else
            s->count++;
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

WEFT_API int64_t weft_sem_value(weft_sem_t *s)
{
    if (!valid(s, "weft_sem_value"))
        return -EINVAL;
    pthread_mutex_lock(&s->lock);
    int64_t v = s->count;
    pthread_mutex_unlock(&s->lock);
    return v;
}
