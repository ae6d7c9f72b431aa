/* perf/mutex.c: bench_mutex, a contended mutex: F fibers on all workers
 * each take one weft_mutex_t, increment a shared counter and drop it, n / F
 * times; the result is millions of lock-increment-unlock operations per
 * second (higher is better), and the counter is checked at the end. Rows:
 *   weft_mutex_f<F>  F = 64 fibers (many contenders parked in the queue)
 *                    and F = workers (one per worker: the threads' case)
 * The Go peer (perf/peers/go/mutex.go, go_mutex_f<F>) runs the same loop in
 * F goroutines on a sync.Mutex under GOMAXPROCS = workers. Entry point:
 * main. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include <weft.h>

struct job {
    weft_mutex_t *m;
    int64_t counter; /* under m */
    int64_t per;     /* operations per fiber */
    int fibers, runs;
    double *secs;
};

static intptr_t contender(void *arg)
{
    struct job *j = arg;
    for (int64_t i = 0; i < j->per; i++) {
        int rc = weft_mutex_lock(j->m);
        if (rc != 0)
            return rc;
        j->counter++;
        weft_mutex_unlock(j->m);
    }
    return 0;
}

static intptr_t mutex_main(void *arg)
{
    struct job *j = arg;
    weft_task_t *t = calloc((size_t)j->fibers, sizeof *t);
    if (!t)
        return -ENOMEM;
    intptr_t rc = 0;
    for (int r = -1; r < j->runs && rc == 0; r++) {
        j->counter = 0;
        double t0 = bench_now();
        int spawned = 0;
        for (; spawned < j->fibers && rc == 0; spawned++)
            rc = weft_spawn(&t[spawned], contender, j);
        if (rc != 0)
            spawned--;
        for (int i = 0; i < spawned; i++) {
            intptr_t jr = weft_join(t[i]);
            if (rc == 0)
                rc = jr;
        }
        double t1 = bench_now();
        if (rc == 0 && j->counter != j->per * j->fibers)
            rc = -EPROTO;
        if (r >= 0)
            j->secs[r] = t1 - t0;
    }
    free(t);
    return rc;
}

static int run_weft(unsigned workers, int fibers, int64_t n, int runs,
                    double *secs)
{
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = workers;
    struct job j = {.per = n / fibers, .fibers = fibers, .runs = runs,
                    .secs = secs};
    int rc = weft_mutex_create(&j.m);
    if (rc != 0)
        return rc;
    intptr_t result = 0;
    rc = weft_run(&cfg, mutex_main, &j, &result);
    weft_mutex_destroy(j.m);
    return rc != 0 ? rc : (int)result;
}

int main(int argc, char **argv)
{
    static const struct bench_spec spec = {
        .bench = "mutex",
        .usage = "Mops/s of lock, increment, unlock on one mutex shared by F "
                 "fibers on all\nworkers (F = 64, and F = one per worker); n "
                 "operations per run in all.",
        .default_n = 20000000,
        .quick_n = 100000,
        .default_runs = 5,
        .workers = BENCH_WORKERS_ALL,
    };
    struct bench_args a;
    bench_parse(&spec, argc, argv, &a);
    double *secs = calloc((size_t)a.runs, sizeof *secs);
    double *mops = calloc((size_t)a.runs, sizeof *mops);
    if (secs == NULL || mops == NULL)
        bench_fail(&a, "out of memory");
    bench_note(&a, "%lld operations per run, %d runs after one warm-up run",
               (long long)a.n, a.runs);
    for (int wi = 0; wi < a.nworkers; wi++) {
        unsigned w = a.workers[wi];
        int counts[2] = {64, (int)w};
        for (int k = 0; k < (counts[1] == counts[0] ? 1 : 2); k++) {
            int f = counts[k];
            int64_t n = a.n / f * f;
            int rc = run_weft(w, f, n, a.runs, secs);
            if (rc != 0)
                bench_fail(&a, "weft_mutex, %d fibers: %s", f, strerror(-rc));
            for (int r = 0; r < a.runs; r++)
                mops[r] = (double)n / secs[r] / 1e6;
            struct bench_stats s;
            struct bench_extra x = {0};
            bench_stats_of(mops, a.runs, &s);
            bench_extra_int(&x, "fibers", f);
            bench_extra_num(&x, "ns_per_op", 1e3 / s.median);
            char impl[32];
            snprintf(impl, sizeof impl, "weft_mutex_f%d", f);
            bench_emit(&a, impl, w, n, "Mops/s", a.runs, &s, &x);
        }
    }
    free(secs);
    free(mops);
    return 0;
}
