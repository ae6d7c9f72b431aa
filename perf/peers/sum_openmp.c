/* perf/peers/sum_openmp.c: the sum benchmark's OpenMP peer: a parallel for
 * with a reduction and a static schedule over chunks of the array, each
 * summed by sum_kernel.h, on `threads` threads. Entry point:
 * peer_openmp_sum. The thread count is set in-process (omp_set_num_threads),
 * the equivalent of OMP_NUM_THREADS. */
#include <omp.h>

#include "../bench.h"
#include "../sum_kernel.h"
#include "peers.h"

/* Elements per chunk: 512 KiB, large against the loop's overhead and small
 * against any thread's share, so the static split stays even. */
#define CHUNK ((int64_t)1 << 16)

int peer_openmp_sum(const int64_t *a, int64_t n, unsigned threads, int runs,
                    double *secs, int64_t *sums)
{
    int64_t chunks = (n + CHUNK - 1) / CHUNK;
    omp_set_num_threads((int)threads);
    for (int r = 0; r < runs; r++) {
        int64_t s = 0;
        double t0 = bench_now();
#pragma omp parallel for reduction(+ : s) schedule(static)
        for (int64_t c = 0; c < chunks; c++) {
            int64_t end = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
            s += sum_kernel(a, c * CHUNK, end);
        }
        double t1 = bench_now();
        secs[r] = t1 - t0;
        sums[r] = s;
    }
    return 0;
}
