/* weft/coord.h: coordination between tasks, asyncio's toolbox: cancelling a
 * task, deadlines on any wait and deadline scopes that nest (asyncio.timeout,
 * Trio's cancel scopes), futures that any thread may set, gather, waiting
 * for the first of many (asyncio.wait FIRST_COMPLETED), and task groups
 * (asyncio.TaskGroup). Included by weft.h.
 *
 * Deadlines are absolute times on the weft_now_ns() clock; WEFT_NO_DEADLINE
 * means none, and a deadline already past ends the wait at once (after it
 * looked: what is already done is still reported). A wait cut short by its
 * deadline, or by an enclosing deadline scope, returns -ETIMEDOUT; a wait of
 * a cancelled task returns -ECANCELED. Either way the wait changed nothing,
 * and what it waited for is still there to wait for, except where a call
 * says otherwise (gather and group waits then cancel what they waited for,
 * so that nothing outlives them). */
#ifndef WEFT_COORD_H
#define WEFT_COORD_H

#include "base.h"
#include "task.h"

WEFT_EXTERN_C_BEGIN

#define WEFT_NO_DEADLINE UINT64_MAX

/* ---- Cancellation ------------------------------------------------------- */

/* Ask task to stop (asyncio's task.cancel()): its current wait, or its next
 * one, returns -ECANCELED, once; it may clean up and finish as it likes, and
 * its joiner gets whatever it returned. A task that returns -ECANCELED after
 * a cancel counts as cancelled (groups do not treat it as a failure). If the
 * task created groups, their children are cancelled too. Returns 0 (also if
 * the task already finished: nothing changes), -EINVAL for the zero handle
 * or a spent one, -ESRCH with no runtime. Any thread; a task may cancel
 * itself. A detached task can be cancelled while it runs. */
WEFT_API int weft_cancel(weft_task_t task);

/* 1 if a cancel was requested for the calling task (by weft_cancel, its
 * group, or a gather), even one its waits already reported; 0 if not;
 * -EPERM on a plain thread. For loops that compute without waiting. */
WEFT_API int weft_cancelled(void);

/* ---- Deadlines ---------------------------------------------------------- */

/* Wait for task until deadline_ns: 0 and its result in *result (the handle
 * is spent), or -ETIMEDOUT / -ECANCELED (the handle is still live: join,
 * cancel or detach it later). Errors otherwise as weft_join; result may be
 * NULL. Unlike weft_join, a task that returned -ETIMEDOUT itself cannot be
 * mistaken for a join that timed out. Fibers and plain threads. */
WEFT_API int weft_join_until(weft_task_t task, uint64_t deadline_ns,
                             intptr_t *result);

/* A deadline scope (asyncio.timeout, Trio's move_on_at): between push and
 * pop, every wait of the calling task ends with -ETIMEDOUT once deadline_ns
 * passes (sleep, join, futures, gather, groups, locks, channels, I/O).
 * Scopes nest: an inner scope can shorten the task's deadline but never
 * extend it, and pop restores the one before. The struct lives in the
 * caller (usually on its stack) and must stay put from push to pop; its
 * fields are private. Fibers only. */
typedef struct weft_deadline {
    uint64_t task_, outer_, deadline_;
    uint32_t depth_, state_;
} weft_deadline_t;

/* Push a scope ending at deadline_ns (absolute). Returns 0, -EINVAL
 * (scope NULL), -EPERM (plain thread). */
WEFT_API int weft_deadline_push(weft_deadline_t *scope, uint64_t deadline_ns);

/* Push a scope ending timeout_ns from now. -EINVAL for a negative timeout;
 * otherwise as weft_deadline_push. */
WEFT_API int weft_deadline_push_after(weft_deadline_t *scope,
                                      int64_t timeout_ns);

/* Pop the innermost scope, which must be `scope`, pushed by the calling
 * task. Returns 0; -EINVAL if scope is not the calling task's innermost
 * scope (popped out of order, twice, never pushed, or another task's) and
 * nothing changes; -EPERM on a plain thread. */
WEFT_API int weft_deadline_pop(weft_deadline_t *scope);

/* 1 if the deadline scope asked for itself has passed (asyncio's
 * Timeout.expired()), so that a caller can tell its own timeout from an
 * outer one; 0 if not; -EINVAL if scope was never pushed. Also after pop.
 * Any thread. */
WEFT_API int weft_deadline_expired(const weft_deadline_t *scope);

/* The calling task's deadline: its innermost scope's, WEFT_NO_DEADLINE if
 * none (and on a plain thread). Pass it on to work done for this task. */
WEFT_API uint64_t weft_deadline_current(void);

/* ---- Futures ------------------------------------------------------------- */

/* A one-shot result: set once, by any thread (a thread outside the runtime
 * too, and with no runtime running), waited for by any number of fibers and
 * plain threads. The result follows the convention of task results: a
 * non-negative value, or a negative errno value for an error. */
typedef struct weft_future weft_future_t;

/* Create a future, not yet set. Returns 0, -EINVAL (out NULL), -ENOMEM.
 * Any thread; no runtime needed. */
WEFT_API int weft_future_create(weft_future_t **out);

/* Destroy it. Returns 0; -EBUSY while a wait on it has not returned (even
 * one already woken), and the future stays as it was; -EINVAL if f is not a
 * live future. Whether it was set does not matter. Any thread. */
WEFT_API int weft_future_destroy(weft_future_t *f);

/* Set the result and wake every waiter. Returns 0, -EALREADY if it was
 * already set (the first result stays), -EINVAL if f is not a live future.
 * Any thread, including one that never saw the runtime. */
WEFT_API int weft_future_set(weft_future_t *f, intptr_t result);

/* Wait until f is set: 0 and its result in *result (result may be NULL),
 * or -ETIMEDOUT (deadline_ns, or a deadline scope), -ECANCELED (the calling
 * task was cancelled), -EINVAL (f is not a live future: NULL, destroyed,
 * not a future; the check after destroy is reliable in debug builds, which
 * keep destroyed futures' memory for a while). Fibers and plain threads. */
WEFT_API int weft_future_wait(weft_future_t *f, intptr_t *result);
WEFT_API int weft_future_wait_until(weft_future_t *f, uint64_t deadline_ns,
                                    intptr_t *result);

/* Without waiting: 0 and the result if set, -EAGAIN if not, -EINVAL. */
WEFT_API int weft_future_try_get(weft_future_t *f, intptr_t *result);

/* ---- gather -------------------------------------------------------------- */

/* Flags of weft_gather_ex. */
#define WEFT_GATHER_FAIL_FAST 0x1u /* the first task to fail cancels the rest */

/* Wait for every task of tasks[0..n) and store each result in results[i]
 * (results may be NULL): asyncio.gather(..., return_exceptions=True).
 * Every handle is spent afterwards and no task outlives the call. Returns 0
 * once all finished, whatever they returned. Bad input (tasks NULL with n >
 * 0, a zero, spent, detached or repeated handle, n >= INT32_MAX) is -EINVAL;
 * a task of another group (the joining rule, under Task groups) -EPERM;
 * -ESRCH with no runtime: then nothing changes. Fibers and plain threads. */
WEFT_API int weft_gather(const weft_task_t *tasks, size_t n, intptr_t *results);

/* weft_gather with flags and a deadline. WEFT_GATHER_FAIL_FAST: as soon as
 * one task returns a negative value, cancel the others, wait for them all,
 * and return that task's error (0 if none failed). If the deadline (or a
 * deadline scope) passes, or the caller is cancelled, the tasks not yet
 * finished are cancelled and waited for, every result is still stored, and
 * the call returns -ETIMEDOUT or -ECANCELED. -EINVAL for unknown flags;
 * -ENOMEM (FAIL_FAST only, nothing changed). */
WEFT_API int weft_gather_ex(const weft_task_t *tasks, size_t n,
                            intptr_t *results, unsigned flags,
                            uint64_t deadline_ns);

/* ---- wait_any -------------------------------------------------------------- */

/* Something weft_wait_any can wait for: a task to finish, or a future to be
 * set. Build them with weft_waitable_task / weft_waitable_future. */
enum weft_waitable_kind {
    WEFT_WAITABLE_TASK = 1,
    WEFT_WAITABLE_FUTURE = 2,
};
typedef struct weft_waitable {
    int kind; /* enum weft_waitable_kind */
    weft_task_t task;
    weft_future_t *future;
} weft_waitable_t;

static inline weft_waitable_t weft_waitable_task(weft_task_t task)
{
    weft_waitable_t w = {WEFT_WAITABLE_TASK, task, NULL};
    return w;
}

static inline weft_waitable_t weft_waitable_future(weft_future_t *future)
{
    weft_waitable_t w = {WEFT_WAITABLE_FUTURE, {0}, future};
    return w;
}

/* Wait until one of items[0..n) is done (asyncio.wait(FIRST_COMPLETED)) and
 * return its index; if several already are, the lowest index (a deadline
 * already past makes it a poll). Nothing is consumed: join the task (it no
 * longer blocks, or only for the moment it takes to finish) or read the
 * future. A task done means its function returned. Returns
 * -ETIMEDOUT, -ECANCELED; -EINVAL for n == 0, n > INT32_MAX, items NULL, a
 * bad kind, a zero, spent or detached task handle, or a dead future;
 * -ENOMEM; -ESRCH if a task is given with no runtime. Fibers and plain
 * threads. */
WEFT_API int weft_wait_any(const weft_waitable_t *items, size_t n,
                           uint64_t deadline_ns);

/* weft_wait_any over tasks only. */
WEFT_API int weft_wait_any_task(const weft_task_t *tasks, size_t n,
                                uint64_t deadline_ns);

/* ---- Task groups ------------------------------------------------------------ */

/* A task group (asyncio.TaskGroup, Trio's nursery, libdill's bundle): tasks
 * spawned into it are its children; weft_group_wait waits for them all; the
 * first child to fail (return a negative value, other than -ECANCELED after
 * a cancel of that child, by weft_cancel or its group) cancels its siblings
 * and, as asyncio does, the current wait of the task that created the group
 * unless that wait is on the group itself, so a body blocked elsewhere gets
 * to its weft_group_wait; every failure is recorded. Cancelling the task
 * that created the group cancels the children too, and groups nest: a
 * child may create groups of its own. No child outlives the group: call
 * weft_group_wait before weft_group_destroy (destroy refuses live
 * children). A group is single-use: once a wait has returned, no more
 * children can be spawned into it.
 *
 * Joining rule: while a task runs as a child of group G, a task that is
 * itself a child of another group may join it (or gather it) only if it
 * created G; otherwise -EPERM and nothing changes. Tasks outside any group
 * and plain threads may join any handle they hold. */
typedef struct weft_group weft_group_t;

/* One recorded failure: the child's id (weft_task_id) and what it returned. */
typedef struct weft_group_error {
    uint64_t task_id;
    intptr_t error;
} weft_group_error_t;

/* Create a group owned by the calling task (or by nobody, from a plain
 * thread). Returns 0, -EINVAL (out NULL), -ESRCH (no runtime), -ENOMEM. */
WEFT_API int weft_group_create(weft_group_t **out);

/* Spawn fn(arg) as a child of g. With task not NULL the caller also gets a
 * handle, which must be joined or detached as weft_spawn's; with NULL the
 * child is detached and only the group sees its result. Returns 0;
 * -ECANCELED if the group was cancelled, -EPIPE if a wait on it already
 * returned, -EINVAL (g not a live group, fn NULL, bad opts), -ENOMEM,
 * -ESRCH; on failure fn never runs. Any thread. */
WEFT_API int weft_group_spawn(weft_group_t *g, weft_task_t *task, weft_fn fn,
                              void *arg);
WEFT_API int weft_group_spawn_ex(weft_group_t *g, weft_task_t *task,
                                 weft_fn fn, void *arg,
                                 const weft_spawn_opts_t *opts);

/* Wait for every child to finish, then close the group. Returns 0 if every
 * child succeeded; else the first failure's error; else -ETIMEDOUT or
 * -ECANCELED if this wait was cut short (deadline, deadline scope, the
 * caller cancelled: the children were then cancelled and waited for);
 * else -ECANCELED if the group was cancelled. -EINVAL if g is not a live
 * group; -EDEADLK if the caller is a child of g (it would wait for itself).
 * Several waits may run at once. Fibers and plain threads. */
WEFT_API int weft_group_wait(weft_group_t *g);
WEFT_API int weft_group_wait_until(weft_group_t *g, uint64_t deadline_ns);

/* Cancel every live child of g (and their own groups), and refuse new ones.
 * Children that then return -ECANCELED are not failures. Returns 0 or
 * -EINVAL. Any thread. */
WEFT_API int weft_group_cancel(weft_group_t *g);

/* Copy up to cap recorded failures, oldest first, into out (out may be NULL
 * when cap is 0) and return how many there are in all; -EINVAL. */
WEFT_API int weft_group_errors(weft_group_t *g, weft_group_error_t *out,
                               size_t cap);

/* Free the group. Returns 0; -EBUSY if a child is still alive or a wait on
 * it has not returned (the group stays as it was); -EINVAL if g is not a
 * live group. Any thread. */
WEFT_API int weft_group_destroy(weft_group_t *g);

WEFT_EXTERN_C_END

#endif /* WEFT_COORD_H */
