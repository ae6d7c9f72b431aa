/* weft/runtime.h: starting and stopping the runtime (asyncio's run), and its
 * configuration. One runtime runs in a process at a time. */
#ifndef WEFT_RUNTIME_H
#define WEFT_RUNTIME_H

#include "base.h"

WEFT_EXTERN_C_BEGIN

/* Pinning policy for worker threads. */
enum weft_pin {
    WEFT_PIN_DEFAULT = 0, /* pin each worker to its core; a failed pin warns */
    WEFT_PIN_OFF = 1,     /* let the kernel place the threads */
};

/* Runtime configuration. Every field's zero value means "the default", so
 * `weft_config_t cfg = {0};` is a valid configuration. Environment variables
 * override a few fields (they are read by weft_start): WEFT_WORKERS (worker
 * count), WEFT_PIN=0 (no pinning), WEFT_SHUFFLE=seed (shuffled scheduling). */
typedef struct weft_config {
    unsigned workers;     /* worker threads; 0: one per core (from hwloc).
                             At most WEFT_MAX_WORKERS. */
    int pin;              /* enum weft_pin */
    size_t stack_size;    /* usable bytes of each fiber stack; 0: 64 KiB.
                             Rounded up to pages; WEFT_STACK_MIN..WEFT_STACK_MAX */
    unsigned ring_entries;/* submission queue entries of each worker's
                             io_uring; 0: 256; a power of two, 8..32768 */
    const char *topology; /* NULL: this machine. Otherwise an hwloc synthetic
                             description ("pack:2 core:16 pu:2") or the path of
                             an hwloc XML file; pinning is then off. For tests
                             of topology-aware placement. */
    uint64_t shuffle_seed;/* debug: non-zero randomizes scheduling order
                             (which queue a task lands in, when a worker looks
                             elsewhere for work) from this seed */
    uint64_t watchdog_ns; /* report a fiber that holds its worker longer than
                             this; 0: the default (100 ms); UINT64_MAX: off */
    unsigned blocking_threads; /* the blocking pool's threads at most;
                             0: WEFT_BLOCKING_THREADS_DEFAULT (64); at most
                             WEFT_BLOCKING_THREADS_MAX (weft/blocking.h) */
    unsigned reserved_[7];/* must be zero */
} weft_config_t;

#define WEFT_MAX_WORKERS 1024u
#define WEFT_STACK_MIN ((size_t)16 * 1024)
#define WEFT_STACK_MAX ((size_t)1024 * 1024 * 1024)
#define WEFT_STACK_DEFAULT ((size_t)64 * 1024)

/* Fill *cfg with the defaults (all zeros). */
WEFT_API void weft_config_init(weft_config_t *cfg);

/* asyncio.run: start a runtime with cfg (NULL: defaults), run main_fn(arg)
 * as its first task, wait for it, cancel and wait for every task still alive,
 * and stop the runtime. main_fn's return value is stored in *result (if not
 * NULL). Returns 0, or a start-up error: -EINVAL (bad configuration),
 * -EBUSY (a runtime is already running), -ENOMEM, or the reason io_uring is
 * unusable (-ENOSYS, -EPERM), which is also printed on stderr.
 * Call from a plain thread, never from a fiber. */
WEFT_API int weft_run(const weft_config_t *cfg, weft_fn main_fn, void *arg,
                      intptr_t *result);

/* Start the runtime's workers and return at once; tasks can then be spawned
 * from any thread. Errors as weft_run. Call from a plain thread. */
WEFT_API int weft_start(const weft_config_t *cfg);

/* Stop the runtime started by weft_start: cancel every live task, wait for
 * them all to finish, stop the workers and release all memory. Returns 0,
 * -ESRCH if no runtime is running, -EPERM if called from a fiber. */
WEFT_API int weft_stop(void);

/* From a plain thread: spawn fn(arg) on the running runtime and wait for it;
 * its result is stored in *result. Returns 0, -ESRCH (no runtime), -EPERM
 * (called from a fiber: use weft_spawn and weft_join), or -ENOMEM. */
WEFT_API int weft_block_on(weft_fn fn, void *arg, intptr_t *result);

/* The number of workers of the running runtime, or -ESRCH. Any thread. */
WEFT_API int weft_worker_count(void);

/* The index of the worker running the calling fiber (0-based), or -EPERM on
 * a plain thread. The answer may change after any call that can switch. */
WEFT_API int weft_worker_index(void);

/* Non-zero if the caller runs on a fiber of the runtime. */
WEFT_API int weft_in_fiber(void);

WEFT_EXTERN_C_END

#endif /* WEFT_RUNTIME_H */
