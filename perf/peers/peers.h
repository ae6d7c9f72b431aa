/* perf/peers/peers.h: the other runtimes weft is measured against, each
 * behind one C function that the benchmark programs call in their own
 * process. Every function does one untimed warm-up run (thread pools
 * started, stacks touched) and then `runs` timed runs, storing the seconds
 * of run r in secs[r]. It returns 0, or a negative errno value if the peer
 * could not run (its error is then printed on stderr); it never exits.
 * Peers must not know about weft: they build and run without it. */
#ifndef WEFT_PERF_PEERS_H
#define WEFT_PERF_PEERS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* switch: n round trips A->B->A between two contexts on one thread. */
int peer_boost_context_switch(int64_t n, int runs, double *secs);
int peer_boost_fiber_yield(int64_t n, int runs, double *secs);
int peer_ucontext_switch(int64_t n, int runs, double *secs);

/* spawn: n empty tasks run and waited for, in an arena of `threads`. */
int peer_tbb_spawn(unsigned threads, int64_t n, int runs, double *secs);

/* sum: the sum of a[0..n) on `threads` threads with sum_kernel.h; run r's
 * result goes to sums[r] for the caller to check. Unlike the others these
 * do no warm-up run of their own: bench_sum interleaves one run of each
 * implementation at a time (a warm-up round first), so that a change in
 * the machine's load hits every implementation alike. */
int peer_openmp_sum(const int64_t *a, int64_t n, unsigned threads, int runs,
                    double *secs, int64_t *sums);
int peer_tbb_sum(const int64_t *a, int64_t n, unsigned threads, int runs,
                 double *secs, int64_t *sums);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_PERF_PEERS_H */
