/* sched/future.c: futures, one-shot results that any thread can set and any
 * number of fibers and threads can wait for. Entry points:
 * weft_future_create/destroy/set/wait/wait_until/try_get, and the watch
 * calls wait_any uses (sched/coord.h).
 *
 * A future is a mutex, a result and a list of waits (weft__fwait, in each
 * waiter's frame). set() stores the result and ends every listed wait with
 * weft__waiter_wake, which needs no runtime when the waiters are plain
 * threads, and queues fibers through the injection queue when the setter
 * is a foreign thread: so a thread that never saw the runtime may set it.
 * A wait that ended otherwise (deadline, cancel) unlinks itself.
 *
 * Destroy is refused while any wait is inside (nwaiting: from registration
 * until the waiter has finished with the future, woken or not), so no
 * waiter ever touches freed memory through a correct program. For programs
 * that are not, the magic number catches waits on destroyed futures, and
 * debug builds keep destroyed futures allocated for a while so the check
 * stays reliable (sched/quarantine.c).
 * Must never: lose a wake-up (the result is stored before any wake), or
 * block while holding the lock. */
#include <errno.h>
#include <stdlib.h>

#include "runtime/runtime.h"
#include "sched/coord.h"
#include "sched/sched.h"

#define FUTURE_ALIVE 0x46555452u /* "FUTR" */
#define FUTURE_DEAD 0x44454144u  /* "DEAD" */

struct weft_future {
    _Atomic uint32_t magic; /* read without the lock, to refuse bad input */
    pthread_mutex_t lock;
    /* Under lock: */
    bool set;
    intptr_t result;
    struct weft__fwait *waiters;
    unsigned nwaiting;
};

static void release(void *p)
{
    weft_future_t *f = p;
    pthread_mutex_destroy(&f->lock);
    free(f);
}

int weft__future_check(weft_future_t *f, const char *fn)
{
    if (!f ||
        atomic_load_explicit(&f->magic, memory_order_relaxed) != FUTURE_ALIVE) {
        weft__misuse(fn, "not a live future (NULL, destroyed, or not a "
                         "future)");
        return -EINVAL;
    }
    return 0;
}

/* The magic again, now under the lock: a destroy that raced with our
 * first check has marked it dead by now. */
static int lock_alive(weft_future_t *f, const char *fn)
{
    if (weft__future_check(f, fn) < 0)
        return -EINVAL;
    pthread_mutex_lock(&f->lock);
    if (atomic_load_explicit(&f->magic, memory_order_relaxed) != FUTURE_ALIVE) {
        pthread_mutex_unlock(&f->lock);
        weft__misuse(fn, "the future was destroyed");
        return -EINVAL;
    }
    return 0;
}

static void link_wait(weft_future_t *f, struct weft__fwait *fw)
{
    fw->prev = NULL;
    fw->next = f->waiters;
    if (fw->next)
        fw->next->prev = fw;
    f->waiters = fw;
    fw->linked = true;
    f->nwaiting++;
}

static void unlink_wait(weft_future_t *f, struct weft__fwait *fw)
{
    if (fw->prev)
        fw->prev->next = fw->next;
    else
        f->waiters = fw->next;
    if (fw->next)
        fw->next->prev = fw->prev;
    fw->linked = false;
}

WEFT_API int weft_future_create(weft_future_t **out)
{
    if (!out) {
        weft__misuse("weft_future_create", "out is NULL");
        return -EINVAL;
    }
    weft_future_t *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    pthread_mutex_init(&f->lock, NULL);
    atomic_init(&f->magic, FUTURE_ALIVE);
    *out = f;
    return 0;
}

WEFT_API int weft_future_destroy(weft_future_t *f)
{
    if (lock_alive(f, "weft_future_destroy") < 0)
        return -EINVAL;
    if (f->nwaiting) {
        pthread_mutex_unlock(&f->lock);
        weft__misuse("weft_future_destroy", "waits on it have not returned");
        return -EBUSY;
    }
    atomic_store_explicit(&f->magic, FUTURE_DEAD, memory_order_relaxed);
    pthread_mutex_unlock(&f->lock);
    weft__quarantine(f, release);
    return 0;
}

WEFT_API int weft_future_set(weft_future_t *f, intptr_t result)
{
    if (lock_alive(f, "weft_future_set") < 0)
        return -EINVAL;
    if (f->set) {
        pthread_mutex_unlock(&f->lock);
        return -EALREADY;
    }
    f->result = result;
    f->set = true;
    struct weft__fwait *fw;
    while ((fw = f->waiters) != NULL) {
        unlink_wait(f, fw);
        /* A false return: that wait already ended (deadline, cancel); its
         * waiter finds itself unlinked and reads nothing from us. Either
         * way fw is not touched again: its waiter may return once woken,
         * after taking the lock we hold. */
        weft__waiter_wake(fw->waiter, fw->seq, fw->outcome);
    }
    pthread_mutex_unlock(&f->lock);
    return 0;
}

WEFT_API int weft_future_try_get(weft_future_t *f, intptr_t *result)
{
    if (lock_alive(f, "weft_future_try_get") < 0)
        return -EINVAL;
    int r = f->set ? 0 : -EAGAIN;
    if (f->set && result)
        *result = f->result;
    pthread_mutex_unlock(&f->lock);
    return r;
}

WEFT_API int weft_future_wait_until(weft_future_t *f, uint64_t deadline_ns,
                                    intptr_t *result)
{
    struct weft__worker *w = weft__worker_self();
    struct weft__waiter *wt = weft__waiter_self(w);
    if (lock_alive(f, "weft_future_wait") < 0)
        return -EINVAL;
    if (f->set) {
        if (result)
            *result = f->result;
        pthread_mutex_unlock(&f->lock);
        return 0;
    }
    struct weft__fwait fw = {.waiter = wt, .outcome = 0};
    fw.seq = weft__waiter_begin(wt, WAIT_DIRECT, "future");
    link_wait(f, &fw);
    pthread_mutex_unlock(&f->lock);

    int32_t r = weft__waiter_block(&w, wt, fw.seq, deadline_ns);

    pthread_mutex_lock(&f->lock);
    if (fw.linked)
        unlink_wait(f, &fw);
    /* A wake from set() means set; a deadline or cancel that won the race
     * is the one outcome, even if set() came right after. */
    if (r >= 0 && result)
        *result = f->result;
    f->nwaiting--;
    pthread_mutex_unlock(&f->lock);
    return r < 0 ? r : 0;
}

WEFT_API int weft_future_wait(weft_future_t *f, intptr_t *result)
{
    return weft_future_wait_until(f, UINT64_MAX, result);
}

int weft__future_watch(weft_future_t *f, struct weft__fwait *fw)
{
    if (lock_alive(f, "weft_wait_any") < 0)
        return -EINVAL;
    int r = 1;
    if (!f->set) {
        link_wait(f, fw);
        r = 0;
    }
    pthread_mutex_unlock(&f->lock);
    return r;
}

void weft__future_unwatch(weft_future_t *f, struct weft__fwait *fw)
{
    pthread_mutex_lock(&f->lock);
    if (fw->linked)
        unlink_wait(f, fw);
    f->nwaiting--;
    pthread_mutex_unlock(&f->lock);
}
