/* perf/spawn.c: bench_spawn, the cost of spawning and joining an empty task,
 * weft against oneTBB's task_group in the same process, for each worker
 * count (default 1, 2, 4, ... all CPUs):
 *   weft            a runtime of W workers; its main task spawns n tasks
 *                   whose body returns 0, keeping the handles in an array,
 *                   then joins them all
 *   tbb_task_group  n empty lambdas run by one task_group in a task_arena
 *                   of W threads, then wait()
 * Time runs from the first spawn to the last join; the result is ns per
 * task. Each side does one untimed warm-up run first, so pools and worker
 * threads are warm. Entry point: main. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "peers/peers.h"
#include <weft.h>

static intptr_t empty_task(void *arg)
{
    (void)arg;
    return 0;
}

struct spawn_job {
    int64_t n;
    int runs;
    weft_task_t *handles;
    double *secs;
};

/* Join the first `count` handles; returns the first non-zero result. */
static intptr_t join_all(weft_task_t *h, int64_t count)
{
    intptr_t first = 0;
    for (int64_t i = 0; i < count; i++) {
        intptr_t r = weft_join(h[i]);
        if (r != 0 && first == 0)
            first = r;
    }
    return first;
}

static intptr_t spawn_main(void *arg)
{
    struct spawn_job *job = arg;
    for (int r = -1; r < job->runs; r++) {
        double t0 = bench_now();
        for (int64_t i = 0; i < job->n; i++) {
            int rc = weft_spawn(&job->handles[i], empty_task, NULL);
            if (rc != 0) {
                join_all(job->handles, i);
                return rc;
            }
        }
        intptr_t rc = join_all(job->handles, job->n);
        double t1 = bench_now();
        if (rc != 0)
            return rc;
        if (r >= 0)
            job->secs[r] = t1 - t0;
    }
    return 0;
}

static int weft_spawn_bench(unsigned workers, int64_t n, int runs,
                            double *secs)
{
    weft_config_t cfg;
    intptr_t result = 0;
    struct spawn_job job = {.n = n, .runs = runs, .secs = secs};
    job.handles = calloc((size_t)n, sizeof *job.handles);
    if (job.handles == NULL)
        return -ENOMEM;
    weft_config_init(&cfg);
    cfg.workers = workers;
    /* The main task spawns n tasks without yielding, by design: on one
     * worker nothing else runs until it joins. That is what is measured,
     * not a stuck fiber, so the watchdog's report would only be noise. */
    cfg.watchdog_ns = UINT64_MAX;
    int rc = weft_run(&cfg, spawn_main, &job, &result);
    free(job.handles);
    return rc != 0 ? rc : (int)result;
}

struct impl {
    const char *name;
    int (*run)(unsigned workers, int64_t n, int runs, double *secs);
};

static const struct impl impls[] = {
    {"weft", weft_spawn_bench},
    {"tbb_task_group", peer_tbb_spawn},
};

int main(int argc, char **argv)
{
    static const struct bench_spec spec = {
        .bench = "spawn",
        .usage = "ns per spawn+join of an empty task: n tasks spawned, then "
                 "all joined\n(weft against oneTBB task_group), per worker "
                 "count.",
        .default_n = 1000000,
        .quick_n = 10000,
        .default_runs = 5,
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
