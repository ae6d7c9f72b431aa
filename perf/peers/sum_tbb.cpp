/* perf/peers/sum_tbb.cpp: the sum benchmark's oneTBB peer:
 * tbb::parallel_reduce over a blocked_range with the default (auto)
 * partitioner, as a TBB user writes it, limited to `threads` threads by a
 * global_control. Entry point: peer_tbb_sum. No exception crosses into C. */
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_reduce.h>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <functional>

#include "../bench.h"
#include "../sum_kernel.h"
#include "peers.h"

int peer_tbb_sum(const int64_t *a, int64_t n, unsigned threads, int runs,
                 double *secs, int64_t *sums)
{
    try {
        tbb::global_control limit(tbb::global_control::max_allowed_parallelism,
                                  threads);
        for (int r = 0; r < runs; r++) {
            double t0 = bench_now();
            int64_t s = tbb::parallel_reduce(
                tbb::blocked_range<int64_t>(0, n), int64_t{0},
                [a](const tbb::blocked_range<int64_t> &range, int64_t acc) {
                    return acc + sum_kernel(a, range.begin(), range.end());
                },
                std::plus<int64_t>());
            double t1 = bench_now();
            secs[r] = t1 - t0;
            sums[r] = s;
        }
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "tbb parallel_reduce: %s\n", e.what());
        return -ENOMEM;
    }
}
