/* perf/sum.c: bench_sum, the billion-number sum of the demo: the sum of an
 * int64 array a[i] = i, n = 1e9 (8 GB), by every way of splitting it over
 * cores, in one process, for each worker count W:
 *   weft           weft_parallel_reduce on a runtime of W workers
 *   openmp         #pragma omp parallel for reduction, schedule(static)
 *   tbb            tbb::parallel_reduce over a blocked_range
 *   bandwidth      W pinned pthreads, each summing a fixed 1/W share: the
 *                  read-bandwidth ceiling, with no scheduler at all
 *   single_thread  one plain loop (once, as workers 1)
 * All of them run sum_kernel.h, compiled with the same flags, so only the
 * scheduling differs. Every run's sum is checked against n(n-1)/2; a wrong
 * sum fails the benchmark. Reports seconds, GB/s (10^9 bytes read per
 * second) and each one's GB/s relative to OpenMP and to the bandwidth
 * ceiling at the same W. The implementations take turns, one run each
 * per round after a warm-up round, so that the machine's load changing
 * during the benchmark hits all of them alike. Entry point: main. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"
#include "peers/peers.h"
#include "runtime/topology.h"
#include "sum_kernel.h"
#include <weft.h>

/* Memory kept free beside the array: at least 256 MiB, or 1/16 of what is
 * available, for the runtimes, their stacks and the rest of the system. */
#define MARGIN_MIN_KIB ((int64_t)256 * 1024)

struct sum_job {
    int64_t *a;
    int64_t n;
    double secs;  /* the last reduce's time ... */
    int64_t sum;  /* ... and result */
};

/* ---- weft: fill once, then reduce ------------------------------------- */

static void fill_body(int64_t begin, int64_t end, void *arg)
{
    int64_t *a = arg;
    for (int64_t i = begin; i < end; i++)
        a[i] = i;
}

static void reduce_identity(void *partial, void *arg)
{
    (void)arg;
    *(int64_t *)partial = 0;
}

static void reduce_body(int64_t begin, int64_t end, void *partial, void *arg)
{
    *(int64_t *)partial += sum_kernel(arg, begin, end);
}

static void reduce_combine(void *into, const void *from, void *arg)
{
    (void)arg;
    *(int64_t *)into += *(const int64_t *)from;
}

static const weft_reducer_t reducer = {
    .size = sizeof(int64_t),
    .identity = reduce_identity,
    .body = reduce_body,
    .combine = reduce_combine,
};

/* The first touch of every page happens here, on the workers that will
 * read it back in the reduce (parallel_for's contract). */
static intptr_t weft_fill(void *arg)
{
    struct sum_job *job = arg;
    double t0 = bench_now();
    int rc = weft_parallel_for(0, job->n, 0, fill_body, job->a);
    if (rc != 0)
        return rc;
    fprintf(stderr, "bench_sum: filled %.2f GB in %.2f s with %d weft "
            "workers (first touch included)\n", (double)job->n * 8 / 1e9,
            bench_now() - t0, weft_worker_count());
    return 0;
}

/* One timed reduce, run as a task (weft_block_on) of the started runtime. */
static intptr_t weft_reduce_once(void *arg)
{
    struct sum_job *job = arg;
    int64_t s = 0;
    double t0 = bench_now();
    int rc = weft_parallel_reduce(0, job->n, 0, &reducer, job->a, &s);
    job->secs = bench_now() - t0;
    job->sum = s;
    return rc;
}

static int weft_block(weft_fn fn, struct sum_job *job)
{
    intptr_t result = 0;
    int rc = weft_block_on(fn, job, &result);
    return rc != 0 ? rc : (int)result;
}

/* ---- bandwidth: static shares on pinned threads ----------------------- */

/* Holds the threads of one run until all of them exist and are pinned. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state; /* 0: wait, 1: go, -1: give up (a thread failed to start) */
};

struct bw_thread {
    pthread_t thread;
    const int64_t *a;
    int64_t begin, end, sum;
    unsigned index, count;
    const struct weft__topology *topo; /* NULL: leave unpinned */
    struct gate *gate;
};

static void *bw_main(void *arg)
{
    struct bw_thread *t = arg;
    int state;
    if (t->topo != NULL)
        weft__topology_pin_self(t->topo, t->count, t->index);
    pthread_mutex_lock(&t->gate->mu);
    while ((state = t->gate->state) == 0)
        pthread_cond_wait(&t->gate->cv, &t->gate->mu);
    pthread_mutex_unlock(&t->gate->mu);
    if (state > 0)
        t->sum = sum_kernel(t->a, t->begin, t->end);
    return NULL;
}

/* One run: W threads are created and pinned first, then released together;
 * the time runs from the release to the last join. */
static int bandwidth_once(const int64_t *a, int64_t n, unsigned w,
                          const struct weft__topology *topo, double *secs,
                          int64_t *sum)
{
    struct gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                        0};
    struct bw_thread *t = calloc(w, sizeof *t);
    unsigned made = 0;
    int rc = 0;
    if (t == NULL)
        return -ENOMEM;
    for (; made < w; made++) {
        t[made] = (struct bw_thread){
            .a = a,
            .begin = n / w * made,
            .end = made + 1 == w ? n : n / w * (made + 1),
            .index = made,
            .count = w,
            .topo = topo,
            .gate = &gate,
        };
        rc = -pthread_create(&t[made].thread, NULL, bw_main, &t[made]);
        if (rc != 0)
            break;
    }
    double t0 = bench_now();
    pthread_mutex_lock(&gate.mu);
    gate.state = rc == 0 ? 1 : -1;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
    *sum = 0;
    for (unsigned i = 0; i < made; i++) {
        pthread_join(t[i].thread, NULL);
        *sum += t[i].sum;
    }
    *secs = bench_now() - t0;
    free(t);
    return rc;
}

static int single_thread_sum(const int64_t *a, int64_t n, int runs,
                             double *secs, int64_t *sums)
{
    for (int r = -1; r < runs; r++) {
        double t0 = bench_now();
        int64_t s = sum_kernel(a, 0, n);
        double t1 = bench_now();
        if (r >= 0) {
            secs[r] = t1 - t0;
            sums[r] = s;
        }
    }
    return 0;
}

/* ---- the driver -------------------------------------------------------- */

enum { WEFT, OPENMP, TBB, BANDWIDTH, NIMPL };
static const char *const impl_names[NIMPL] = {"weft", "openmp", "tbb",
                                              "bandwidth"};

static void check_sum(const struct bench_args *a, const char *impl,
                      unsigned w, int64_t n, int run, int64_t sum)
{
    if (sum != sum_expected(n))
        bench_fail(a, "%s on %u workers, run %d: sum %lld, expected %lld",
                   impl, w, run, (long long)sum, (long long)sum_expected(n));
}

static double gbps(int64_t n, double secs)
{
    return (double)n * sizeof(int64_t) / secs / 1e9;
}

/* The largest n (a multiple of 1e6 when that large) whose array leaves the
 * margin free, if the requested one does not. */
static int64_t fit_n(const struct bench_args *a, int64_t n)
{
    int64_t avail = bench_mem_available_kib();
    if (avail < 0)
        return n;
    int64_t margin = avail / 16 > MARGIN_MIN_KIB ? avail / 16 : MARGIN_MIN_KIB;
    int64_t fit = (avail - margin) * 1024 / (int64_t)sizeof(int64_t);
    if (n <= fit)
        return n;
    if (fit > 1000000)
        fit -= fit % 1000000;
    if (fit < 1)
        bench_fail(a, "MemAvailable is %lld KiB: no room for any array",
                   (long long)avail);
    bench_note(a, "MemAvailable %lld KiB cannot hold %lld int64 plus a "
               "margin: using n = %lld instead", (long long)avail,
               (long long)n, (long long)fit);
    return fit;
}

int main(int argc, char **argv)
{
    static const struct bench_spec spec = {
        .bench = "sum",
        .usage = "The sum of a[i] = i over n int64 (default 1e9: 8 GB): "
                 "weft parallel_reduce,\nOpenMP, oneTBB, pinned threads "
                 "(bandwidth ceiling) and one thread.",
        .default_n = 1000000000,
        .quick_n = 1000000,
        .default_runs = 5,
    };
    struct bench_args a;
    bench_parse(&spec, argc, argv, &a);
    const int64_t n = fit_n(&a, a.n);
    if (n >= ((int64_t)1 << 32))
        bench_fail(&a, "n must stay below 2^32 for n(n-1)/2 to fit int64");
    const size_t bytes = (size_t)n * sizeof(int64_t);
    const int runs = a.runs;

    int64_t *arr = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (arr == MAP_FAILED)
        bench_fail(&a, "mmap of %zu bytes: %s", bytes, strerror(errno));
    if (madvise(arr, bytes, MADV_HUGEPAGE) != 0)
        bench_note(&a, "madvise(MADV_HUGEPAGE): %s (going on with small "
                   "pages)", strerror(errno));

    struct weft__topology *topo = NULL;
    char desc[256] = "unknown";
    if (weft__topology_load(NULL, &topo) == 0)
        weft__topology_describe(topo, desc, sizeof desc);
    else
        bench_note(&a, "no topology: the bandwidth threads run unpinned");
    bench_note(&a, "n = %lld (%.2f GB), %d runs after one warm-up run; "
               "machine: %s", (long long)n, (double)bytes / 1e9, runs, desc);

    double *secs[NIMPL + 1];
    int64_t *sums = calloc((size_t)runs, sizeof *sums);
    for (int k = 0; k <= NIMPL; k++)
        secs[k] = calloc((size_t)runs, sizeof(double));
    for (int k = 0; k <= NIMPL; k++)
        if (secs[k] == NULL || sums == NULL)
            bench_fail(&a, "out of memory");

    struct sum_job job = {.a = arr, .n = n};
    bool filled = false;
    for (int wi = 0; wi < a.nworkers; wi++) {
        const unsigned w = a.workers[wi];
        struct bench_stats st[NIMPL];
        weft_config_t cfg;
        int rc;

        /* weft's workers stay parked while the peers run: one run of each
         * implementation per round, so that a change in the machine's load
         * during the benchmark hits all of them alike. Round 0 warms up. */
        weft_config_init(&cfg);
        cfg.workers = w;
        rc = weft_start(&cfg);
        if (rc != 0)
            bench_fail(&a, "weft_start with %u workers: %s", w,
                       strerror(-rc));
        if (!filled && (rc = weft_block(weft_fill, &job)) != 0)
            bench_fail(&a, "weft fill: %s", strerror(-rc));
        filled = true;
        for (int r = 0; r <= runs; r++) {
            double t[NIMPL];
            int64_t sum[NIMPL];
            const char *failed = NULL;
            if ((rc = weft_block(weft_reduce_once, &job)) != 0)
                failed = "weft";
            t[WEFT] = job.secs;
            sum[WEFT] = job.sum;
            if (!failed && (rc = peer_openmp_sum(arr, n, w, 1, &t[OPENMP],
                                                 &sum[OPENMP])) != 0)
                failed = "openmp";
            if (!failed && (rc = peer_tbb_sum(arr, n, w, 1, &t[TBB],
                                              &sum[TBB])) != 0)
                failed = "tbb";
            if (!failed && (rc = bandwidth_once(arr, n, w, topo,
                                                &t[BANDWIDTH],
                                                &sum[BANDWIDTH])) != 0)
                failed = "bandwidth";
            if (failed)
                bench_fail(&a, "%s on %u workers: %s", failed, w,
                           strerror(-rc));
            for (int k = 0; k < NIMPL; k++) {
                check_sum(&a, impl_names[k], w, n, r, sum[k]);
                if (r > 0)
                    secs[k][r - 1] = t[k];
            }
        }
        if ((rc = weft_stop()) != 0)
            bench_fail(&a, "weft_stop: %s", strerror(-rc));

        for (int k = 0; k < NIMPL; k++)
            bench_stats_of(secs[k], runs, &st[k]);
        for (int k = 0; k < NIMPL; k++) {
            struct bench_extra x = {0};
            double g = gbps(n, st[k].median);
            bench_extra_num(&x, "gbps", g);
            bench_extra_num(&x, "gbps_best", gbps(n, st[k].min));
            bench_extra_num(&x, "ratio_to_openmp",
                            g / gbps(n, st[OPENMP].median));
            bench_extra_num(&x, "ratio_to_bandwidth",
                            g / gbps(n, st[BANDWIDTH].median));
            bench_emit(&a, impl_names[k], w, n, "s", runs, &st[k], &x);
        }
    }

    /* One thread, no runtime: what the parallel versions are worth. */
    if (single_thread_sum(arr, n, runs, secs[NIMPL], sums) != 0)
        bench_fail(&a, "single_thread failed");
    for (int r = 0; r < runs; r++)
        check_sum(&a, "single_thread", 1, n, r + 1, sums[r]);
    struct bench_stats s1;
    struct bench_extra x1 = {0};
    bench_stats_of(secs[NIMPL], runs, &s1);
    bench_extra_num(&x1, "gbps", gbps(n, s1.median));
    bench_extra_num(&x1, "gbps_best", gbps(n, s1.min));
    bench_emit(&a, "single_thread", 1, n, "s", runs, &s1, &x1);

    for (int k = 0; k <= NIMPL; k++)
        free(secs[k]);
    free(sums);
    if (topo != NULL)
        weft__topology_free(topo);
    munmap(arr, bytes);
    return 0;
}
