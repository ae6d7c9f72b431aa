/* perf/pingpong.c: bench_pingpong, a channel round trip between two fibers:
 * the main task sends an int on one channel, an echo task receives it and
 * sends it back on another, n round trips per run; the result is ns per
 * round trip, per worker count (one worker: both fibers share it; more:
 * the scheduler places them). Implementations:
 *   weft_chan           two unbuffered channels (capacity 0, Go's default)
 *   weft_chan_buffered  two channels of capacity 1
 * The Go peer (perf/peers/go/pingpong.go, go_chan) does the same with two
 * unbuffered Go channels under GOMAXPROCS = workers. Entry point: main. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include <weft.h>

struct job {
    int64_t n;
    int runs;
    size_t capacity;
    double *secs;
    weft_chan_t *ping, *pong;
};

static intptr_t echo(void *arg)
{
    struct job *j = arg;
    for (int64_t i = 0; i < j->n; i++) {
        int64_t v;
        int rc = weft_chan_recv(j->ping, &v);
        if (rc == 0)
            rc = weft_chan_send(j->pong, &v);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static intptr_t pingpong_main(void *arg)
{
    struct job *j = arg;
    for (int r = -1; r < j->runs; r++) {
        int rc = weft_chan_create(&j->ping, sizeof(int64_t), j->capacity);
        if (rc == 0)
            rc = weft_chan_create(&j->pong, sizeof(int64_t), j->capacity);
        if (rc != 0)
            return rc;
        weft_task_t t;
        if ((rc = weft_spawn(&t, echo, j)) != 0)
            return rc;
        double t0 = bench_now();
        for (int64_t i = 0; i < j->n; i++) {
            int64_t v = i;
            rc = weft_chan_send(j->ping, &v);
            if (rc == 0)
                rc = weft_chan_recv(j->pong, &v);
            if (rc == 0 && v != i)
                rc = -EPROTO;
            if (rc != 0)
                return rc;
        }
        double t1 = bench_now();
        intptr_t er = weft_join(t);
        if (er != 0)
            return er;
        weft_chan_destroy(j->ping);
        weft_chan_destroy(j->pong);
        if (r >= 0)
            j->secs[r] = t1 - t0;
    }
    return 0;
}

static int run_weft(unsigned workers, size_t capacity, int64_t n, int runs,
                    double *secs)
{
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = workers;
    struct job j = {.n = n, .runs = runs, .capacity = capacity, .secs = secs};
    intptr_t result = 0;
    int rc = weft_run(&cfg, pingpong_main, &j, &result);
    return rc != 0 ? rc : (int)result;
}

int main(int argc, char **argv)
{
    static const struct bench_spec spec = {
        .bench = "pingpong",
        .usage = "ns per channel round trip between two fibers (send on one "
                 "channel, the\nother fiber sends it back on a second), n "
                 "round trips per run, per worker\ncount; unbuffered and "
                 "capacity-1 channels.",
        .default_n = 2000000,
        .quick_n = 20000,
        .default_runs = 5,
        .workers = BENCH_WORKERS_SWEEP,
    };
    static const struct {
        const char *name;
        size_t capacity;
    } impls[] = {{"weft_chan", 0}, {"weft_chan_buffered", 1}};
    struct bench_args a;
    bench_parse(&spec, argc, argv, &a);
    double *secs = calloc((size_t)a.runs, sizeof *secs);
    double *ns = calloc((size_t)a.runs, sizeof *ns);
    if (secs == NULL || ns == NULL)
        bench_fail(&a, "out of memory");
    bench_note(&a, "%lld round trips per run, %d runs after one warm-up run",
               (long long)a.n, a.runs);
    for (int wi = 0; wi < a.nworkers; wi++) {
        for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
            int rc = run_weft(a.workers[wi], impls[k].capacity, a.n, a.runs,
                              secs);
            if (rc != 0)
                bench_fail(&a, "%s: %s", impls[k].name, strerror(-rc));
            for (int r = 0; r < a.runs; r++)
                ns[r] = secs[r] * 1e9 / (double)a.n;
            struct bench_stats s;
            bench_stats_of(ns, a.runs, &s);
            bench_emit(&a, impls[k].name, a.workers[wi], a.n, "ns/round trip",
                       a.runs, &s, NULL);
        }
    }
    free(secs);
    free(ns);
    return 0;
}
