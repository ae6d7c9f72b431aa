/* weft/debug.h: seeing inside a running program. The watchdog reports a
 * fiber that holds its worker too long (asyncio's debug-mode "slow
 * callback" warning); the dump lists every live fiber (Go's goroutine dump).
 *
 * The watchdog is on by default: a thread of weft's own samples each
 * worker's switch counter every quarter threshold, and a fiber that has run
 * for weft_config_t.watchdog_ns (default 100 ms; UINT64_MAX: off) without
 * giving its worker up is reported once on stderr, with its id, name,
 * function and where it was spawned, then again when it lets go:
 *   weft: watchdog: task 5.1 "crunch" (fn crunch, spawned at main_task+0x4c)
 *   has held worker 1 for at least 100 ms without yielding ...
 * Functions and spawn sites are named with dladdr: link the program with
 * -rdynamic (CMake: ENABLE_EXPORTS) for the names of its own non-static
 * functions; others print as file+0xoffset, for addr2line. The watchdog
 * costs nothing on the switch path; a worker thread that the kernel does
 * not run for the threshold (an overloaded machine) looks the same as a
 * fiber that holds it. */
#ifndef WEFT_DEBUG_H
#define WEFT_DEBUG_H

#include <stdio.h>

#include "base.h"

WEFT_EXTERN_C_BEGIN

/* Print every live task of the running runtime on out: its id, its state
 * (running on worker N, ready, waiting on what, finished but not joined),
 * its name, function and spawn site, then a total. Tasks keep running
 * meanwhile: each line is true of its task at one moment of the call.
 * Any thread, fibers included (it does not switch). Returns the number of
 * tasks listed, -EINVAL if out is NULL, -ESRCH if no runtime is running. */
WEFT_API int weft_dump(FILE *out);

/* Dump to stderr each time the process receives signal sig (SIGUSR1, say),
 * from a thread of weft's own: the handler only wakes that thread, since a
 * dump is not async-signal-safe. It outlives runtimes (with none running it
 * says so). Installing it again with another signal moves it; sig 0 removes
 * it and restores the signal's previous action. Any thread. Returns 0,
 * -EINVAL (sig out of range, or one that cannot or must not be caught:
 * SIGKILL, SIGSTOP, and the fault signals SIGSEGV, SIGBUS, SIGFPE, SIGILL,
 * SIGABRT, SIGTRAP), or -errno from sigaction, pipe or pthread_create. */
WEFT_API int weft_dump_on_signal(int sig);

WEFT_EXTERN_C_END

#endif /* WEFT_DEBUG_H */
