/* sched/event.c: events, a flag that waiters wait to see set (asyncio's
 * Event). Entry points: weft_event_*.
 *
 * set stores the flag and wakes every queued waiter under the lock; a
 * waiter checks the flag under the same lock before it queues, so a set
 * never slips between the check and the queueing. A wait that a set woke
 * returns 0 even if the event was cleared again before the waiter ran
 * (asyncio's rule too). The flag is also atomic so that is_set and the
 * wait's first look need no lock.
 * Must never: leave a waiter queued across a set. */
#include <errno.h>
#include <stdlib.h>

#include "runtime/runtime.h"
#include "sched/sched.h"
#include "sched/sync.h"
#include "sched/waitq.h"

struct weft_event {
    uint32_t tag;
    _Atomic bool set; /* written under lock, read anywhere */
    pthread_mutex_t lock;
    struct weft__waitq waiters; /* guarded by lock */
};

static bool valid(const struct weft_event *e, const char *fn)
{
    if (weft__tag_ok(e, WEFT__TAG_EVENT))
        return true;
    weft__misuse(fn, "not a live event");
    return false;
}

WEFT_API int weft_event_create(weft_event_t **event)
{
    if (!event) {
        weft__misuse("weft_event_create", "event is NULL");
        return -EINVAL;
    }
    struct weft_event *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    atomic_init(&e->set, false);
    pthread_mutex_init(&e->lock, NULL);
    weft__waitq_init(&e->waiters);
    e->tag = WEFT__TAG_EVENT;
    *event = e;
    return 0;
}

WEFT_API int weft_event_destroy(weft_event_t *e)
{
    if (!valid(e, "weft_event_destroy"))
        return -EINVAL;
    pthread_mutex_lock(&e->lock);
    if (weft__waitq_busy(&e->waiters)) {
        pthread_mutex_unlock(&e->lock);
        return -EBUSY;
    }
    e->tag = WEFT__TAG_DEAD;
    pthread_mutex_unlock(&e->lock);
    pthread_mutex_destroy(&e->lock);
    free(e);
    return 0;
}

WEFT_API int weft_event_set(weft_event_t *e)
{
    if (!valid(e, "weft_event_set"))
        return -EINVAL;
    pthread_mutex_lock(&e->lock);
    /* release: what the setter wrote before is seen by a waiter that
     * finds the flag set without the lock (its acquire load). */
    atomic_store_explicit(&e->set, true, memory_order_release);
    weft__waitq_wake_all(&e->waiters, 0);
    pthread_mutex_unlock(&e->lock);
    return 0;
}

WEFT_API int weft_event_clear(weft_event_t *e)
{
    if (!valid(e, "weft_event_clear"))
        return -EINVAL;
    pthread_mutex_lock(&e->lock);
    atomic_store_explicit(&e->set, false, memory_order_relaxed);
    pthread_mutex_unlock(&e->lock);
    return 0;
}

static int event_wait(struct weft_event *e, uint64_t deadline, const char *fn)
{
    if (!valid(e, fn))
        return -EINVAL;
    /* acquire: pairs with set's release. */
    if (atomic_load_explicit(&e->set, memory_order_acquire))
        return 0;
    pthread_mutex_lock(&e->lock);
    if (atomic_load_explicit(&e->set, memory_order_relaxed)) {
        pthread_mutex_unlock(&e->lock);
        return 0;
    }
    struct weft__worker *w = weft__worker_self();
    struct weft__wait_node n;
    int32_t o = weft__waitq_wait(&e->waiters, &e->lock, &n, false, &w,
                                 WAIT_DIRECT, "event", deadline, 0, NULL);
    return o < 0 ? o : 0;
}

WEFT_API int weft_event_wait(weft_event_t *e)
{
    return event_wait(e, UINT64_MAX, "weft_event_wait");
}

WEFT_API int weft_event_wait_until(weft_event_t *e, uint64_t deadline_ns)
{
    return event_wait(e, deadline_ns, "weft_event_wait_until");
}

WEFT_API int weft_event_is_set(weft_event_t *e)
{
    if (!valid(e, "weft_event_is_set"))
        return -EINVAL;
    return atomic_load_explicit(&e->set, memory_order_acquire) ? 1 : 0;
}
