/* perf/bench.h: what every benchmark program shares: its command line
 * (--workers, --n, --runs, --json, --quick), a monotonic clock, the statistics over
 * runs, and the one output format: a JSON object per line with --json, a
 * readable line otherwise. Entry points: bench_parse, bench_emit.
 * Usable from C and from the C++ peers. stdout carries results only; every
 * note goes to stderr, so `bench_x --json > file` is clean JSON lines. */
#ifndef WEFT_PERF_BENCH_H
#define WEFT_PERF_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BENCH_MAX_WORKER_COUNTS 32
#define BENCH_MIN_RUNS 5

/* The parsed command line. */
struct bench_args {
    const char *bench;   /* the benchmark's name, for the output */
    unsigned workers[BENCH_MAX_WORKER_COUNTS]; /* --workers 1,2,4 */
    int nworkers;        /* entries used in workers[] */
    int64_t n;           /* --n 1000000 or 1e6 */
    int runs;            /* --runs R: measured runs, after the warm-up */
    bool json;           /* --json */
    bool quick;          /* --quick: n is the spec's quick_n unless given */
};

/* Which worker counts a benchmark runs without --workers. */
enum bench_workers {
    BENCH_WORKERS_SWEEP, /* 1, 2, 4, ... and all the CPUs this process has */
    BENCH_WORKERS_ALL,   /* all the CPUs only */
    BENCH_WORKERS_ONE,   /* one, always: --workers other than 1 is refused */
};

/* What a benchmark accepts; the defaults apply to options not given. */
struct bench_spec {
    const char *bench;
    const char *usage; /* one paragraph: what it measures */
    int64_t default_n;
    int64_t quick_n; /* --quick: tiny, only to show that it works */
    int default_runs;
    enum bench_workers workers;
};

/* Parse argv. Prints usage and exits 0 on --help, 2 on bad input. */
void bench_parse(const struct bench_spec *spec, int argc, char **argv,
                 struct bench_args *out);

/* Seconds on CLOCK_MONOTONIC. */
double bench_now(void);

/* The CPUs this process may run on (sched_getaffinity). */
unsigned bench_cpus(void);

/* Order statistics over k > 0 values (the array is left unchanged). */
struct bench_stats {
    double median, min, max;
};
void bench_stats_of(const double *v, int k, struct bench_stats *out);

/* Extra fields of one result line, beyond the required keys. */
struct bench_extra {
    char buf[768];
    size_t len;
};
void bench_extra_num(struct bench_extra *x, const char *key, double v);
void bench_extra_int(struct bench_extra *x, const char *key, int64_t v);
void bench_extra_bool(struct bench_extra *x, const char *key, bool v);
void bench_extra_str(struct bench_extra *x, const char *key, const char *v);

/* Print one result: {"bench", "impl", "workers", "n", "unit", "median",
 * "min", "max", "runs", then the extras}. extra may be NULL. */
void bench_emit(const struct bench_args *a, const char *impl,
                unsigned workers, int64_t n, const char *unit, int runs,
                const struct bench_stats *s, const struct bench_extra *extra);

/* A note for the reader on stderr, prefixed with the benchmark's name. */
void bench_note(const struct bench_args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Print the reason on stderr and exit 1: a benchmark that cannot measure
 * what it promised (a wrong sum, a failed spawn) must fail the runner. */
void bench_fail(const struct bench_args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* A field of /proc/self/status in KiB ("VmRSS", "VmHWM"), or -1. */
int64_t bench_status_kib(const char *field);

/* MemAvailable from /proc/meminfo in KiB, or -1. */
int64_t bench_mem_available_kib(void);

/* Reset the peak RSS (VmHWM) to the current RSS: 0 or -errno. */
int bench_reset_peak_rss(void);

/* An integer from a /proc or /sys file (vm.max_map_count), or -1. */
int64_t bench_read_int_file(const char *path);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_PERF_BENCH_H */
