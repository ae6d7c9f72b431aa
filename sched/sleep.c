/* sched/sleep.c: sleeping and yielding. Entry points: weft_sleep_*,
 * weft_yield. A sleep is a wait with a deadline and nothing to wait on.
 * Must never: block the worker thread, or wake before the deadline. */
#include <errno.h>

#include "runtime/runtime.h"
#include "sched/sched.h"

WEFT_API int weft_sleep_until_ns(uint64_t deadline_ns)
{
    struct weft__worker *w = weft__worker_self();
    struct weft__task *t = weft__task_self(w);
    if (!t) {
        weft__misuse("weft_sleep", "called from a plain thread, not a fiber");
        return -EPERM;
    }
    uint32_t seq = weft__waiter_begin(&t->waiter, WAIT_DIRECT, "sleep");
    int32_t r = weft__waiter_block(&w, &t->waiter, seq, deadline_ns);
    if (r == -ETIMEDOUT)
        /* Our own deadline is the sleep's end; an enclosing deadline scope
         * that ended it sooner is a timeout for the caller. */
        return t->deadline < deadline_ns ? -ETIMEDOUT : 0;
    return r;
}

WEFT_API int weft_sleep_ns(uint64_t ns)
{
    uint64_t now = weft_now_ns();
    uint64_t deadline = ns > UINT64_MAX - now ? UINT64_MAX - 1 : now + ns;
    return weft_sleep_until_ns(deadline);
}

WEFT_API int weft_sleep_ms(uint64_t ms)
{
    uint64_t ns = ms > UINT64_MAX / 1000000u ? UINT64_MAX : ms * 1000000u;
    return weft_sleep_ns(ns);
}

WEFT_API int weft_yield(void)
{
    struct weft__worker *w = weft__worker_self();
    if (!weft__task_self(w)) {
        weft__misuse("weft_yield", "called from a plain thread, not a fiber");
        return -EPERM;
    }
    /* weft__schedule returns at once when nothing else is ready here; every
     * WEFT_MAINTENANCE_INTERVAL decisions it passes through the loop, so
     * that timers, the ring and the injection queue keep moving. */
    weft__schedule(w, SWITCH_YIELD);
    return 0;
}
