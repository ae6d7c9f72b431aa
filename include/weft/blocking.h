/* weft/blocking.h: the blocking pool. A function that would block its worker
 * (a library call with no asynchronous form, a name lookup, a long
 * computation) runs on a thread of the pool while the calling fiber waits:
 * asyncio's to_thread and run_in_executor. */
#ifndef WEFT_BLOCKING_H
#define WEFT_BLOCKING_H

#include "base.h"

WEFT_EXTERN_C_BEGIN

/* Threads of the pool: weft_config_t.blocking_threads, 0 meaning this
 * default, at most the maximum. Threads are started when a call finds none
 * idle, and one left idle for WEFT_BLOCKING_IDLE_MS exits. */
#define WEFT_BLOCKING_THREADS_DEFAULT 64u
#define WEFT_BLOCKING_THREADS_MAX     4096u
#define WEFT_BLOCKING_IDLE_MS         10000u

/* Run fn(arg) on a thread of the blocking pool and return what it returns;
 * the calling fiber waits, its worker runs other fibers meanwhile. Calls
 * beyond the pool's threads wait in a FIFO queue with no bound of its own:
 * each queued call is a waiting fiber and costs nothing more.
 * Cancelling the task, or its deadline scope passing, while the call is
 * still queued removes it: fn never runs and the call returns -ECANCELED
 * (-ETIMEDOUT). A call already running cannot be interrupted: it is waited
 * for and its result returned; a cancel then stays pending and ends the
 * task's next wait. From a plain thread (the pool's own threads included),
 * fn runs at once on the calling thread, which may block.
 * Returns fn's result, -EINVAL (fn is NULL), -ECANCELED, -ETIMEDOUT, or
 * -EAGAIN (the pool has no thread and none could be started). fn runs on a
 * plain thread: it may spawn and set futures, not call fiber-only functions.
 * Let it return -errno for errors too, so that its results read as weft's. */
WEFT_API intptr_t weft_run_blocking(intptr_t (*fn)(void *), void *arg);

WEFT_EXTERN_C_END

#endif /* WEFT_BLOCKING_H */
