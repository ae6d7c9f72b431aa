/* perf/switch.c: bench_switch, the cost of switching between two fibers on
 * one thread, weft against its peers in the same process:
 *   weft_raw           weft__switch ping-pong between two contexts (no
 *                      scheduler: the floor of every weft switch)
 *   weft_yield         two tasks on a one-worker runtime, each calling
 *                      weft_yield() n times (the public API, scheduler
 *                      included)
 *   boost_context_raw  Boost.Context's jump_fcontext ping-pong
 *   boost_fiber_yield  two Boost.Fiber fibers each yielding n times
 *   ucontext           swapcontext ping-pong (glibc)
 * Each measures n round trips A->B->A; the result is ns per switch (half a
 * round trip), with the round trip beside it. Entry point: main. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"
#include "peers/peers.h"
#include "runtime/context.h"
#include <weft.h>

#define STACK_SIZE (64 * 1024)

/* ---- weft_raw: the bare context switch ---------------------------------- */

static void *main_sp, *other_sp;

/* The other side: hand control straight back, forever. Never resumed after
 * the last round trip; it owns nothing, so it is abandoned with its stack. */
static void bounce(void *transfer)
{
    for (;;)
        transfer = weft__switch_inline(&other_sp, main_sp, transfer);
}

static int weft_raw(int64_t n, int runs, double *secs)
{
    void *stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED)
        return -errno;
    other_sp = weft__context_make((char *)stack + STACK_SIZE, bounce);
    for (int r = -1; r < runs; r++) {
        double t0 = bench_now();
        for (int64_t i = 0; i < n; i++)
            weft__switch_inline(&main_sp, other_sp, NULL);
        double t1 = bench_now();
        if (r >= 0)
            secs[r] = t1 - t0;
    }
    munmap(stack, STACK_SIZE);
    return 0;
}

/* ---- weft_yield: two tasks yielding through the scheduler -------------- */

struct yield_job {
    int64_t n;
    int runs;
    double *secs;
};

static intptr_t yielder(void *arg)
{
    const struct yield_job *job = arg;
    for (int64_t i = 0; i < job->n; i++) {
        int rc = weft_yield();
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The main task: per run, spawn the two yielders and wait for both. While
 * it waits in weft_join, they are the only ready tasks of the one worker. */
static intptr_t yield_main(void *arg)
{
    struct yield_job *job = arg;
    for (int r = -1; r < job->runs; r++) {
        weft_task_t a, b;
        double t0 = bench_now();
        int rc = weft_spawn(&a, yielder, job);
        if (rc != 0)
            return rc;
        rc = weft_spawn(&b, yielder, job);
        if (rc != 0) {
            weft_join(a);
            return rc;
        }
        intptr_t ra = weft_join(a), rb = weft_join(b);
        double t1 = bench_now();
        if (ra != 0 || rb != 0)
            return ra != 0 ? ra : rb;
        if (r >= 0)
            job->secs[r] = t1 - t0;
    }
    return 0;
}

static int weft_yield_bench(int64_t n, int runs, double *secs)
{
    weft_config_t cfg;
    struct yield_job job = {.n = n, .runs = runs, .secs = secs};
    intptr_t result = 0;
    weft_config_init(&cfg);
    cfg.workers = 1;
    int rc = weft_run(&cfg, yield_main, &job, &result);
    if (rc != 0)
        return rc;
    return (int)result;
}

/* ---- the driver -------------------------------------------------------- */

struct impl {
    const char *name;
    int (*run)(int64_t n, int runs, double *secs);
    int64_t max_n; /* 0: none. Each line reports the n it ran. */
};

static const struct impl impls[] = {
    {"weft_raw", weft_raw, 0},
    {"weft_yield", weft_yield_bench, 0},
    {"boost_context_raw", peer_boost_context_switch, 0},
    {"boost_fiber_yield", peer_boost_fiber_yield, 0},
    /* Two system calls per round trip: a million is plenty. */
    {"ucontext", peer_ucontext_switch, 1000000},
};

int main(int argc, char **argv)
{
    static const struct bench_spec spec = {
        .bench = "switch",
        .usage = "ns per fiber switch: two contexts on one thread handing "
                 "control to each other,\nn round trips per run (weft raw "
                 "and through the scheduler, Boost.Context,\nBoost.Fiber, "
                 "ucontext).",
        .default_n = 10000000,
        .quick_n = 100000,
        .default_runs = 5,
        .workers = BENCH_WORKERS_ONE,
    };
    struct bench_args a;
    bench_parse(&spec, argc, argv, &a);
    double *secs = calloc((size_t)a.runs, sizeof *secs);
    double *ns = calloc((size_t)a.runs, sizeof *ns);
    if (secs == NULL || ns == NULL)
        bench_fail(&a, "out of memory");
    bench_note(&a, "%lld round trips per run, %d runs after one warm-up run",
               (long long)a.n, a.runs);

    for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
        int64_t n = impls[k].max_n && a.n > impls[k].max_n ? impls[k].max_n
                                                            : a.n;
        int rc = impls[k].run(n, a.runs, secs);
        if (rc != 0)
            bench_fail(&a, "%s: %s", impls[k].name, strerror(-rc));
        for (int r = 0; r < a.runs; r++)
            ns[r] = secs[r] * 1e9 / (double)n / 2;
        struct bench_stats s;
        struct bench_extra x = {0};
        bench_stats_of(ns, a.runs, &s);
        bench_extra_num(&x, "round_trip_ns", 2 * s.median);
        bench_emit(&a, impls[k].name, 1, n, "ns/switch", a.runs, &s, &x);
    }
    free(secs);
    free(ns);
    return 0;
}
