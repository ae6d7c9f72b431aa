/* perf/sleepers.c: bench_sleepers, a million tasks each sleeping one
 * second: the wall time from the first spawn to the last join, and the
 * resident memory they cost. On a runtime of all workers (or --workers),
 * the main task spawns n tasks that call weft_sleep_ms(1000) and return,
 * keeping the handles, and joins them all.
 *
 * Memory: the peak RSS (VmHWM, reset before every run through
 * /proc/self/clear_refs) less the RSS the process had just before the first
 * spawn of the first run, divided by n. The baseline is taken once, so a
 * warm run that reuses pooled stacks is charged for them too.
 *
 * The first run is reported on its own ("cold": true): it maps and touches
 * every stack for the first time. Runs 2..R+1 are the warm runs, which
 * reuse what the runtime pooled. Beside them, the cost of touching one fresh
 * 4 KiB page per task, measured in this process, and the target it sets:
 * wall <= 1 s + 1.1 x that cost. Entry point: main. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include <weft.h>

#define SLEEP_MS 1000
#define PAGE 4096

struct sleep_job {
    int64_t n;
    int runs;            /* warm runs; one cold run comes first */
    weft_task_t *handles;
    double *wall;        /* [runs + 1], cold first */
    int64_t *peak_kib;   /* [runs + 1] */
    int64_t baseline_kib;
};

static intptr_t sleeper(void *arg)
{
    (void)arg;
    return weft_sleep_ms(SLEEP_MS);
}

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

static intptr_t sleepers_main(void *arg)
{
    struct sleep_job *job = arg;
    job->baseline_kib = bench_status_kib("VmRSS");
    for (int r = 0; r <= job->runs; r++) {
        int rc = bench_reset_peak_rss();
        if (rc != 0)
            return rc;
        double t0 = bench_now();
        for (int64_t i = 0; i < job->n; i++) {
            rc = weft_spawn(&job->handles[i], sleeper, NULL);
            if (rc != 0) {
                join_all(job->handles, i);
                return rc;
            }
        }
        intptr_t res = join_all(job->handles, job->n);
        job->wall[r] = bench_now() - t0;
        job->peak_kib[r] = bench_status_kib("VmHWM");
        if (res != 0)
            return res;
    }
    return 0;
}

/* Seconds to touch one byte of each of n fresh, never-used 4 KiB pages. If
 * memory cannot hold n pages, fewer are touched and the time scaled. */
static double page_touch_cost(const struct bench_args *a, int64_t n)
{
    int64_t avail = bench_mem_available_kib();
    int64_t pages = n;
    if (avail > 0 && pages > (avail / 2) / (PAGE / 1024)) {
        pages = (avail / 2) / (PAGE / 1024);
        bench_note(a, "page touch: %lld pages fit in half of MemAvailable; "
                   "measuring those and scaling to %lld", (long long)pages,
                   (long long)n);
    }
    size_t bytes = (size_t)pages * PAGE;
    char *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        bench_fail(a, "page touch: mmap of %zu bytes: %s", bytes,
                   strerror(errno));
    /* Small pages, as fiber stacks get: one fault per page. */
    madvise(m, bytes, MADV_NOHUGEPAGE);
    double t0 = bench_now();
    for (size_t off = 0; off < bytes; off += PAGE)
        ((volatile char *)m)[off] = 1;
    double t = bench_now() - t0;
    munmap(m, bytes);
    return t * (double)n / (double)pages;
}

static double kib_per_task(const struct sleep_job *job, int r)
{
    return (double)(job->peak_kib[r] - job->baseline_kib) / (double)job->n;
}

int main(int argc, char **argv)
{
    static const struct bench_spec spec = {
        .bench = "sleepers",
        .usage = "n tasks (default 1e6) each sleeping 1 s: wall time to all "
                 "done and peak RSS\nper task; the first run (cold) is "
                 "reported apart from the warm ones.",
        .default_n = 1000000,
        .quick_n = 1000,
        .default_runs = 5,
        .workers = BENCH_WORKERS_ALL,
    };
    struct bench_args a;
    bench_parse(&spec, argc, argv, &a);
    const int64_t n = a.n;
    const int runs = a.runs;

    bench_note(&a, "vm.max_map_count %lld, %u CPUs; %lld tasks sleeping "
               "%d ms; 1 cold run, then %d warm runs",
               (long long)bench_read_int_file("/proc/sys/vm/max_map_count"),
               bench_cpus(), (long long)n, SLEEP_MS, runs);

    struct sleep_job job = {.n = n, .runs = runs};
    job.handles = malloc((size_t)n * sizeof *job.handles);
    job.wall = calloc((size_t)runs + 1, sizeof *job.wall);
    job.peak_kib = calloc((size_t)runs + 1, sizeof *job.peak_kib);
    double *warm = calloc((size_t)runs, sizeof *warm);
    double *warm_kib = calloc((size_t)runs, sizeof *warm_kib);
    if (job.handles == NULL || job.wall == NULL || job.peak_kib == NULL ||
        warm == NULL || warm_kib == NULL)
        bench_fail(&a, "out of memory");
    /* Resident before the baseline, so the handles are not charged. */
    memset(job.handles, 0, (size_t)n * sizeof *job.handles);

    const double touch = page_touch_cost(&a, n);
    const double target_wall = SLEEP_MS / 1000.0 + 1.1 * touch;
    bench_note(&a, "touching %lld fresh 4 KiB pages took %.3f s (%.0f ns "
               "each): wall target %.3f s", (long long)n, touch,
               touch * 1e9 / (double)n, target_wall);

    for (int wi = 0; wi < a.nworkers; wi++) {
        weft_config_t cfg;
        intptr_t result = 0;
        weft_config_init(&cfg);
        cfg.workers = a.workers[wi];
        /* The main task spawns n tasks without yielding, by design; the
         * watchdog's report of it would only be noise. */
        cfg.watchdog_ns = UINT64_MAX;
        int rc = weft_run(&cfg, sleepers_main, &job, &result);
        if (rc == 0)
            rc = (int)result;
        if (rc != 0)
            bench_fail(&a, "weft on %u workers: %s", a.workers[wi],
                       strerror(-rc));

        struct bench_stats s;
        struct bench_extra x = {0};
        const struct bench_stats cold = {job.wall[0], job.wall[0],
                                         job.wall[0]};
        bench_extra_bool(&x, "cold", true);
        bench_extra_num(&x, "rss_kib_per_task", kib_per_task(&job, 0));
        bench_extra_num(&x, "peak_rss_mib", (double)job.peak_kib[0] / 1024);
        bench_extra_num(&x, "page_touch_s", touch);
        bench_extra_num(&x, "target_wall_s", target_wall);
        bench_emit(&a, "weft", a.workers[wi], n, "s", 1, &cold, &x);

        for (int r = 0; r < runs; r++) {
            warm[r] = job.wall[r + 1];
            warm_kib[r] = kib_per_task(&job, r + 1);
        }
        struct bench_stats sk;
        int64_t peak = 0;
        for (int r = 1; r <= runs; r++)
            peak = job.peak_kib[r] > peak ? job.peak_kib[r] : peak;
        bench_stats_of(warm, runs, &s);
        bench_stats_of(warm_kib, runs, &sk);
        x = (struct bench_extra){0};
        bench_extra_bool(&x, "cold", false);
        bench_extra_num(&x, "rss_kib_per_task", sk.median);
        bench_extra_num(&x, "peak_rss_mib", (double)peak / 1024);
        bench_extra_num(&x, "page_touch_s", touch);
        bench_extra_num(&x, "target_wall_s", target_wall);
        bench_emit(&a, "weft", a.workers[wi], n, "s", runs, &s, &x);
    }
    free(job.handles);
    free(job.wall);
    free(job.peak_kib);
    free(warm);
    free(warm_kib);
    return 0;
}
