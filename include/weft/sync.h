/* weft/sync.h: locks and signals for fibers (and plain threads), safe across
 * workers: mutex, condition variable, counting semaphore, event and
 * wait-group; asyncio's Lock, Condition, Semaphore and Event, Go's
 * sync.WaitGroup. Included by weft.h.
 *
 * Rules shared by every call here:
 *  - Blocking calls park only the calling fiber; from a plain thread they
 *    block the thread (cancellation does not apply to threads). A fiber's
 *    wait ends with -ECANCELED when the task is cancelled, and with
 *    -ETIMEDOUT when its deadline (absolute, on the weft_now_ns() clock;
 *    UINT64_MAX: none) or an enclosing deadline scope passes. A failed wait
 *    took nothing: no lock, no unit, no signal is consumed by it.
 *  - Waiters are served in FIFO order. The mutex lets a running fiber take
 *    a free lock ahead of queued waiters a bounded number of times (which
 *    keeps it fast under contention), then hands the lock to the longest
 *    waiter directly: no waiter starves.
 *  - Every object is created with *_create (which allocates) and freed with
 *    *_destroy, which refuses with -EBUSY while anyone waits on it (or, for
 *    a mutex, holds it). A pointer that is not a live object of the right
 *    kind (NULL, another weft object, a destroyed one) is refused with
 *    -EINVAL where it can be detected (a type tag checked on every call);
 *    using an object after destroying it is undefined behaviour like any
 *    use after free, and so is destroying one while a call on it is in
 *    progress.
 *  - Try-variants never wait and return -EAGAIN when they would.
 *  - All of these may be used from any thread, inside or outside the
 *    runtime; fibers and threads may share one object. */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include "base.h"

WEFT_EXTERN_C_BEGIN

/* ---- Mutex ------------------------------------------------------------------*/

/* A mutex is owned by the task (or plain thread) that locked it, even when
 * the task moves to another worker; only the owner may unlock it. Not
 * recursive. Holding it across waits (sleep, channel, I/O) is allowed. */
typedef struct weft_mutex weft_mutex_t;

/* Returns 0 and *mutex, -EINVAL (mutex NULL) or -ENOMEM. */
WEFT_API int weft_mutex_create(weft_mutex_t **mutex);
/* Returns 0, -EBUSY (locked, or waited on; nothing changes), -EINVAL. */
WEFT_API int weft_mutex_destroy(weft_mutex_t *mutex);
/* Returns 0 (the caller owns it), -EDEADLK (the caller already owns it),
 * -ECANCELED, -ETIMEDOUT (a deadline scope, or lock_until's deadline),
 * -EINVAL. */
WEFT_API int weft_mutex_lock(weft_mutex_t *mutex);
WEFT_API int weft_mutex_lock_until(weft_mutex_t *mutex, uint64_t deadline_ns);
/* Returns 0, or -EAGAIN if it is held (or free but promised to a waiter
 * whose turn has come), -EINVAL. */
WEFT_API int weft_mutex_trylock(weft_mutex_t *mutex);
/* Returns 0, -EPERM (the caller does not own it: not locked, or locked by
 * another task or thread; nothing changes), -EINVAL. */
WEFT_API int weft_mutex_unlock(weft_mutex_t *mutex);

/* ---- Condition variable -----------------------------------------------------*/

typedef struct weft_cond weft_cond_t;

WEFT_API int weft_cond_create(weft_cond_t **cond);
/* Returns 0, -EBUSY (someone waits on it), -EINVAL. */
WEFT_API int weft_cond_destroy(weft_cond_t *cond);
/* Atomically release mutex (which the caller must own) and wait for a
 * signal; re-acquire mutex before returning, whatever the outcome (as
 * pthread does: a cancelled or timed-out waiter returns owning the mutex;
 * that re-acquisition itself is not cancellable). Returns 0 (signalled;
 * wake-ups may also be spurious: re-check the predicate in a loop),
 * -ECANCELED, -ETIMEDOUT, -EPERM (mutex not owned by the caller; nothing
 * changes), -EINVAL. A signal is consumed by exactly one waiter whose wait
 * then returns 0: a waiter that times out while being signalled passes the
 * signal on. */
WEFT_API int weft_cond_wait(weft_cond_t *cond, weft_mutex_t *mutex);
WEFT_API int weft_cond_wait_until(weft_cond_t *cond, weft_mutex_t *mutex,
                                  uint64_t deadline_ns);
/* Wake the longest waiter (signal) or every waiter (broadcast); a no-op if
 * none waits. Callers need not hold the mutex. Returns 0 or -EINVAL. */
WEFT_API int weft_cond_signal(weft_cond_t *cond);
WEFT_API int weft_cond_broadcast(weft_cond_t *cond);

/* ---- Counting semaphore -----------------------------------------------------*/

typedef struct weft_sem weft_sem_t;

/* A semaphore with `value` units, which release may raise up to max
 * (a bounded semaphore, asyncio's BoundedSemaphore; 0: UINT32_MAX).
 * Returns 0, -EINVAL (value > max), -ENOMEM. */
WEFT_API int weft_sem_create(weft_sem_t **sem, uint32_t value, uint32_t max);
/* Returns 0, -EBUSY (someone waits on it), -EINVAL. */
WEFT_API int weft_sem_destroy(weft_sem_t *sem);
/* Take one unit, waiting for one if none is free. Units go to waiters in
 * FIFO order. Returns 0, -ECANCELED, -ETIMEDOUT, -EINVAL. */
WEFT_API int weft_sem_acquire(weft_sem_t *sem);
WEFT_API int weft_sem_acquire_until(weft_sem_t *sem, uint64_t deadline_ns);
/* Returns 0, or -EAGAIN if no unit is free. */
WEFT_API int weft_sem_try_acquire(weft_sem_t *sem);
/* Give one unit back (to the longest waiter, if any). Returns 0,
 * -EOVERFLOW (the count is already max; nothing changes), -EINVAL. */
WEFT_API int weft_sem_release(weft_sem_t *sem);
/* The free units now (a snapshot), or -EINVAL. */
WEFT_API int64_t weft_sem_value(weft_sem_t *sem);

/* ---- Event ------------------------------------------------------------------*/

/* A flag that waiters wait to see set (asyncio.Event). */
typedef struct weft_event weft_event_t;

/* Created clear. Returns 0, -EINVAL, -ENOMEM. */
WEFT_API int weft_event_create(weft_event_t **event);
/* Returns 0, -EBUSY (someone waits on it), -EINVAL. */
WEFT_API int weft_event_destroy(weft_event_t *event);
/* Set the flag and wake every waiter; waits that start while it is set
 * return at once. Returns 0 or -EINVAL. */
WEFT_API int weft_event_set(weft_event_t *event);
/* Clear the flag (waiters already woken stay woken). 0 or -EINVAL. */
WEFT_API int weft_event_clear(weft_event_t *event);
/* Wait until the flag is set. Returns 0, -ECANCELED, -ETIMEDOUT, -EINVAL. */
WEFT_API int weft_event_wait(weft_event_t *event);
WEFT_API int weft_event_wait_until(weft_event_t *event, uint64_t deadline_ns);
/* 1 if set, 0 if clear, -EINVAL. */
WEFT_API int weft_event_is_set(weft_event_t *event);

/* ---- Wait-group -------------------------------------------------------------*/

/* A counter of outstanding jobs; waiters wait for it to reach zero (Go's
 * sync.WaitGroup). */
typedef struct weft_waitgroup weft_waitgroup_t;

/* Created at zero. Returns 0, -EINVAL, -ENOMEM. */
WEFT_API int weft_waitgroup_create(weft_waitgroup_t **wg);
/* Returns 0, -EBUSY (someone waits on it), -EINVAL. */
WEFT_API int weft_waitgroup_destroy(weft_waitgroup_t *wg);
/* Add delta (which may be negative) to the counter; reaching zero wakes
 * every waiter. Returns 0, -EINVAL (the counter would go below zero;
 * nothing changes), -EOVERFLOW (it would pass INT64_MAX). */
WEFT_API int weft_waitgroup_add(weft_waitgroup_t *wg, int64_t delta);
/* weft_waitgroup_add(wg, -1). */
WEFT_API int weft_waitgroup_done(weft_waitgroup_t *wg);
/* Wait until the counter is zero (return at once if it is). Returns 0,
 * -ECANCELED, -ETIMEDOUT, -EINVAL. */
WEFT_API int weft_waitgroup_wait(weft_waitgroup_t *wg);
WEFT_API int weft_waitgroup_wait_until(weft_waitgroup_t *wg,
                                       uint64_t deadline_ns);

WEFT_EXTERN_C_END

#endif /* WEFT_SYNC_H */
