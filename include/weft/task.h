/* weft/task.h: tasks (fibers): spawn, join, detach, yield, sleep. asyncio's
 * create_task, await task, sleep and sleep(0). */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#include "base.h"

WEFT_EXTERN_C_BEGIN

/* Spawn flags. */
#define WEFT_SPAWN_PINNED 0x1u /* run only on the spawning worker, never move */

typedef struct weft_spawn_opts {
    unsigned flags;   /* WEFT_SPAWN_* */
    const char *name; /* shown by the dump and the watchdog; must outlive the
                         task (a string literal is the usual choice) */
} weft_spawn_opts_t;

/* Spawn fn(arg) as a new task. If task is not NULL it receives the handle,
 * which must be joined or detached exactly once; with NULL the task is
 * detached from the start. The task gets its stack when it first runs.
 * Any thread while a runtime runs. Returns 0, -ESRCH (no runtime),
 * -EINVAL (fn is NULL), -ENOMEM; on failure fn never runs. */
WEFT_API int weft_spawn(weft_task_t *task, weft_fn fn, void *arg);

/* weft_spawn with options (opts may be NULL). WEFT_SPAWN_PINNED from a
 * plain thread is -EPERM: there is no current worker to pin to. */
WEFT_API int weft_spawn_ex(weft_task_t *task, weft_fn fn, void *arg,
                           const weft_spawn_opts_t *opts);

/* Wait for the task to finish and return its result: what its function
 * returned (negative values are its errors), or -ENOMEM if no stack could
 * be had for it (it never ran). A task cancelled before it first ran still
 * runs, so that it can release what its argument owns: its first wait
 * returns -ECANCELED (weft_cancelled() tells a loop that never waits).
 * The handle is spent afterwards. Returns
 * -EINVAL for the zero handle, a spent or detached handle, or the caller's
 * own task. From a fiber the wait parks only the fiber; from a plain thread
 * it blocks the thread. */
WEFT_API intptr_t weft_join(weft_task_t task);

/* Give up the handle: the task runs to completion on its own and its result
 * is dropped. Returns 0 or -EINVAL (zero, spent or already detached). */
WEFT_API int weft_detach(weft_task_t task);

/* The calling task's own handle (not joinable by itself), or WEFT_TASK_NONE
 * on a plain thread. */
WEFT_API weft_task_t weft_self(void);

/* A short number naming the task in dumps and reports ("task 17.2"): its
 * handle's id. 0 for WEFT_TASK_NONE. */
WEFT_API uint64_t weft_task_id(weft_task_t task);

/* Let every other ready task on this worker run once, then continue
 * (asyncio.sleep(0)). Returns 0, or -EPERM on a plain thread. */
WEFT_API int weft_yield(void);

/* The monotonic clock weft's deadlines use, in nanoseconds. Any thread. */
WEFT_API uint64_t weft_now_ns(void);

/* Sleep without blocking the worker. Never wakes early; wakes late by at
 * most the timer tick (about 65 us) plus scheduling delay. Returns 0,
 * -ECANCELED if the task was cancelled while sleeping, -EPERM on a plain
 * thread. */
WEFT_API int weft_sleep_ns(uint64_t ns);
WEFT_API int weft_sleep_ms(uint64_t ms);
/* Sleep until the weft_now_ns() clock reaches deadline_ns. */
WEFT_API int weft_sleep_until_ns(uint64_t deadline_ns);

WEFT_EXTERN_C_END

#endif /* WEFT_TASK_H */
