/* perf/sum_kernel.h: the one summing loop every implementation of the sum
 * benchmark runs (weft, OpenMP, oneTBB, the single thread and the bandwidth
 * ceiling), compiled into each with the same flags (-O3, no -march=native:
 * perf/CMakeLists.txt), so that only the scheduling differs between them.
 * It must stay a pure function of its inputs. */
#ifndef WEFT_PERF_SUM_KERNEL_H
#define WEFT_PERF_SUM_KERNEL_H

#include <stdint.h>

/* The sum of a[begin..end). Four independent accumulators, so the adds do
 * not wait on each other and the loop runs at the speed of memory. */
static inline int64_t sum_kernel(const int64_t *a, int64_t begin, int64_t end)
{
    int64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = begin;
    for (; i + 4 <= end; i += 4) {
        s0 += a[i];
        s1 += a[i + 1];
        s2 += a[i + 2];
        s3 += a[i + 3];
    }
    for (; i < end; i++)
        s0 += a[i];
    return (s0 + s1) + (s2 + s3);
}

/* The expected result for a[i] = i: n(n-1)/2, exact for n < 2^32. */
static inline int64_t sum_expected(int64_t n)
{
    return (n % 2 == 0) ? (n / 2) * (n - 1) : n * ((n - 1) / 2);
}

#endif /* WEFT_PERF_SUM_KERNEL_H */
