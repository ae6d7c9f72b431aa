/* perf/gather.c: bench_gather, spawning n empty tasks and gathering them
 * (asyncio.gather), per worker count (default 1, 2, 4, ... all CPUs):
 *   weft            a runtime of W workers; its main task spawns n tasks
 *                   whose body returns its index, keeping the handles in an
 *                   array, then weft_gather collects every result
 *   weft_fail_fast  the same with WEFT_GATHER_FAIL_FAST (a watcher per
 *                   task, so the first error would be seen at once)
 *   tbb_task_group  n empty lambdas run by one task_group in a task_arena
 *                   of W threads, then wait() (it keeps no results)
 * Time runs from the first spawn to the gather's return; the result is ns
 * per task. Each side does one untimed warm-up run first, and every result
 * is checked. Entry point: main. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "peers/peers.h"
#include <weft.h>

static intptr_t index_task(void *arg)
{
    return (intptr_t)arg;
}

struct job {
    int64_t n;
    int runs;
    unsigned flags;
    weft_task_t *handles;
    intptr_t *results;
    double *secs;
};

static intptr_t gather_main(void *arg)
{
    struct job *job = arg;
    for (int r = -1; r < job->runs; r++) {
        double t0 = bench_now();
        for (int64_t i = 0; i < job->n; i++) {
            int rc = weft_spawn(&job->handles[i], index_task, (void *)i);
            if (rc != 0) {
                weft_gather(job->handles, (size_t)i, NULL);
                return rc;
            }
        }
        int rc = weft_gather_ex(job->handles, (size_t)job->n, job->results,
                                job->flags, WEFT_NO_DEADLINE);
        double t1 = bench_now();
        if (rc != 0)
            return rc;
        for (int64_t i = 0; i < job->n; i++)
            if (job->results[i] != (intptr_t)i)
                return -EPROTO;
        if (r >= 0)
            job->secs[r] = t1 - t0;
    }
    return 0;
}

static int weft_gather_bench(unsigned workers, int64_t n, int runs,
                             double *secs, unsigned flags)
{
    weft_config_t cfg;
    intptr_t result = 0;
    struct job job = {.n = n, .runs = runs, .flags = flags, .secs = secs};
    job.handles = calloc((size_t)n, sizeof *job.handles);
    job.results = calloc((size_t)n, sizeof *job.results);
    if (job.handles == NULL || job.results == NULL) {
        free(job.handles);
        free(job.results);
        return -ENOMEM;
    }
    weft_config_init(&cfg);
    cfg.workers = workers;
    int rc = weft_run(&cfg, gather_main, &job, &result);
    free(job.handles);
    free(job.results);
    return rc != 0 ? rc : (int)result;
}

static int weft_plain(unsigned workers, int64_t n, int runs, double *secs)
{
    return weft_gather_bench(workers, n, runs, secs, 0);
}

static int weft_fail_fast(unsigned workers, int64_t n, int runs, double *secs)
{
    return weft_gather_bench(workers, n, runs, secs, WEFT_GATHER_FAIL_FAST);
}

struct impl {
    const char *name;
    int (*run)(unsigned workers, int64_t n, int runs, double *secs);
};

static const struct impl impls[] = {
    {"weft", weft_plain},
    {"weft_fail_fast", weft_fail_fast},
    {"tbb_task_group", peer_tbb_spawn},
};

int main(int argc, char **argv)
{
    static const struct bench_spec spec = {
        .bench = "gather",
        .usage = "ns per task to spawn n tasks and gather every result "
                 "(weft_gather, and\nits fail-fast mode) against oneTBB "
                 "task_group, per worker count.",
        .default_n = 100000,
        .quick_n = 10000,
        .default_runs = 7,
        .workers = BENCH_WORKERS_SWEEP,
    };
    struct bench_args a;
    bench_parse(&spec, argc, argv, &a);
    double *secs = calloc((size_t)a.runs, sizeof *secs);
    double *ns = calloc((size_t)a.runs, sizeof *ns);
    if (secs == NULL || ns == NULL)
        bench_fail(&a, "out of memory");
    bench_note(&a, "%lld tasks per run, %d runs after one warm-up run",
               (long long)a.n, a.runs);

    for (int w = 0; w < a.nworkers; w++) {
        for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
            int rc = impls[k].run(a.workers[w], a.n, a.runs, secs);
            if (rc != 0)
                bench_fail(&a, "%s on %u workers: %s", impls[k].name,
                           a.workers[w], strerror(-rc));
            for (int r = 0; r < a.runs; r++)
                ns[r] = secs[r] * 1e9 / (double)a.n;
            struct bench_stats s;
            bench_stats_of(ns, a.runs, &s);
            bench_emit(&a, impls[k].name, a.workers[w], a.n, "ns/task",
                       a.runs, &s, NULL);
        }
    }
    free(secs);
    free(ns);
    return 0;
}
