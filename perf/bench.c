/* perf/bench.c: the shared part of every benchmark program (see bench.h):
 * command line, clock, statistics, output and a few /proc readers.
 * Nothing here is timed; it must never print results anywhere but stdout
 * nor notes anywhere but stderr. */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

unsigned bench_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 1;
    int c = CPU_COUNT(&set);
    return c > 0 ? (unsigned)c : 1;
}

static void usage(const struct bench_spec *spec, FILE *to)
{
    fprintf(to,
            "usage: bench_%s [--workers N[,N...]] [--n N] [--runs R] [--json] "
            "[--quick]\n"
            "%s\n"
            "  --workers  worker counts to run, such as 1,2 (%u CPUs here)\n"
            "  --n        problem size (default %lld; 1e6 is accepted)\n"
            "  --runs     measured runs after one warm-up (default %d)\n"
            "  --json     one JSON object per line on stdout\n"
            "  --quick    tiny (n %lld), only to show that it works\n",
            spec->bench, spec->usage, bench_cpus(),
            (long long)spec->default_n, spec->default_runs,
            (long long)spec->quick_n);
}

/* A positive integer, also written as 1e9 or 2.5e6 (but exactly integral). */
static bool parse_count(const char *s, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(d >= 1.0) ||
        d > (double)max || d != floor(d))
        return false;
    *out = (int64_t)d;
    if (strpbrk(s, ".eE") == NULL) { /* exact for values past 2^53 too */
        long long v = strtoll(s, &end, 10);
        if (*end != '\0' || v < 1 || v > max)
            return false;
        *out = v;
    }
    return true;
}

static bool parse_workers(const char *s, struct bench_args *a)
{
    a->nworkers = 0;
    while (*s != '\0') {
        char item[32];
        size_t len = strcspn(s, ",");
        int64_t w;
        if (len == 0 || len >= sizeof item ||
            a->nworkers == BENCH_MAX_WORKER_COUNTS)
            return false;
        memcpy(item, s, len);
        item[len] = '\0';
        if (!parse_count(item, 1024, &w))
            return false;
        a->workers[a->nworkers++] = (unsigned)w;
        s += len;
        if (*s == ',' && *++s == '\0')
            return false;
    }
    return a->nworkers > 0;
}

void bench_parse(const struct bench_spec *spec, int argc, char **argv,
                 struct bench_args *out)
{
    static const struct option opts[] = {
        {"workers", required_argument, NULL, 'w'},
        {"n", required_argument, NULL, 'n'},
        {"runs", required_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'j'},
        {"quick", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct bench_args a = {.bench = spec->bench,
                           .n = spec->default_n,
                           .runs = spec->default_runs};
    bool have_workers = false, have_n = false;
    int c;
    int64_t v;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'w':
            if (!parse_workers(optarg, &a)) {
                fprintf(stderr, "bench_%s: --workers wants a list of counts "
                        "1..1024 such as 1,2,4, not '%s'\n", spec->bench,
                        optarg);
                exit(2);
            }
            have_workers = true;
            break;
        case 'n':
            if (!parse_count(optarg, INT64_MAX / 16, &a.n)) {
                fprintf(stderr, "bench_%s: --n wants a positive integer "
                        "(1000000 or 1e6), not '%s'\n", spec->bench, optarg);
                exit(2);
            }
            have_n = true;
            break;
        case 'r':
            if (!parse_count(optarg, 1000000, &v)) {
                fprintf(stderr, "bench_%s: --runs wants a positive integer, "
                        "not '%s'\n", spec->bench, optarg);
                exit(2);
            }
            a.runs = (int)v;
            break;
        case 'j':
            a.json = true;
            break;
        case 'q':
            a.quick = true;
            break;
        case 'h':
            usage(spec, stdout);
            exit(0);
        default:
            usage(spec, stderr);
            exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bench_%s: unexpected argument '%s'\n", spec->bench,
                argv[optind]);
        usage(spec, stderr);
        exit(2);
    }
    if (a.quick && !have_n)
        a.n = spec->quick_n;
    if (spec->workers == BENCH_WORKERS_ONE) {
        if (have_workers && (a.nworkers != 1 || a.workers[0] != 1)) {
            fprintf(stderr, "bench_%s: runs on one worker only "
                    "(--workers 1)\n", spec->bench);
            exit(2);
        }
        a.nworkers = 1;
        a.workers[0] = 1;
    } else if (!have_workers && spec->workers == BENCH_WORKERS_ALL) {
        a.nworkers = 1;
        a.workers[0] = bench_cpus();
    } else if (!have_workers) {
        unsigned all = bench_cpus();
        for (unsigned w = 1; w < all; w *= 2)
            a.workers[a.nworkers++] = w;
        a.workers[a.nworkers++] = all;
    }
    if (a.runs < BENCH_MIN_RUNS)
        fprintf(stderr, "bench_%s: note: %d runs; the medians the reports "
                "compare want at least %d\n", spec->bench, a.runs,
                BENCH_MIN_RUNS);
    *out = a;
}

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

void bench_stats_of(const double *v, int k, struct bench_stats *out)
{
    double *s = malloc(sizeof *s * (size_t)k);
    if (s == NULL) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    memcpy(s, v, sizeof *s * (size_t)k);
    qsort(s, (size_t)k, sizeof *s, cmp_double);
    out->min = s[0];
    out->max = s[k - 1];
    out->median = k % 2 ? s[k / 2] : (s[k / 2 - 1] + s[k / 2]) / 2;
    free(s);
}

/* Append `, "key": value`. A field that does not fit is dropped whole,
 * never cut in half. */
static void extra_add(struct bench_extra *x, const char *key, const char *val)
{
    int len = snprintf(x->buf + x->len, sizeof x->buf - x->len,
                       ", \"%s\": %s", key, val);
    if (len < 0 || (size_t)len >= sizeof x->buf - x->len) {
        x->buf[x->len] = '\0';
        return;
    }
    x->len += (size_t)len;
}

void bench_extra_num(struct bench_extra *x, const char *key, double v)
{
    char s[40];
    if (isfinite(v))
        snprintf(s, sizeof s, "%.6g", v);
    else
        snprintf(s, sizeof s, "null");
    extra_add(x, key, s);
}

void bench_extra_int(struct bench_extra *x, const char *key, int64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%lld", (long long)v);
    extra_add(x, key, s);
}

void bench_extra_bool(struct bench_extra *x, const char *key, bool v)
{
    extra_add(x, key, v ? "true" : "false");
}

void bench_extra_str(struct bench_extra *x, const char *key, const char *v)
{
    char s[256];
    size_t j = 0;
    s[j++] = '"';
    for (; *v != '\0' && j < sizeof s - 3; v++) {
        if (*v == '"' || *v == '\\')
            s[j++] = '\\';
        s[j++] = (*v >= 0 && *v < 0x20) ? ' ' : *v;
    }
    s[j++] = '"';
    s[j] = '\0';
    extra_add(x, key, s);
}

static void print_num(const char *fmt, double v)
{
    if (isfinite(v))
        printf(fmt, v);
    else
        printf("null");
}

void bench_emit(const struct bench_args *a, const char *impl,
                unsigned workers, int64_t n, const char *unit, int runs,
                const struct bench_stats *s, const struct bench_extra *extra)
{
    if (a->json) {
        printf("{\"bench\": \"%s\", \"impl\": \"%s\", \"workers\": %u, "
               "\"n\": %lld, \"unit\": \"%s\", \"median\": ",
               a->bench, impl, workers, (long long)n, unit);
        print_num("%.6g", s->median);
        printf(", \"min\": ");
        print_num("%.6g", s->min);
        printf(", \"max\": ");
        print_num("%.6g", s->max);
        printf(", \"runs\": %d%s}\n", runs, extra ? extra->buf : "");
    } else {
        printf("%-9s %-18s workers %-3u n %-11lld %10.4g %-9s "
               "(min %.4g, max %.4g, %d runs)",
               a->bench, impl, workers, (long long)n, s->median, unit,
               s->min, s->max, runs);
        /* The extras, readable: drop the JSON punctuation. */
        for (const char *p = extra ? extra->buf : ""; *p != '\0'; p++) {
            if (*p == '"')
                continue;
            if (*p == ',' && p[1] == ' ')
                putchar(' ');
            else if (*p == ':' && p[1] == ' ' && (p++, 1))
                putchar('=');
            else
                putchar(*p);
        }
        putchar('\n');
    }
    fflush(stdout);
}

void bench_note(const struct bench_args *a, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bench_%s: ", a->bench);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void bench_fail(const struct bench_args *a, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "bench_%s: FAILED: ", a->bench);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* The value after "<field>:" on its line of a /proc file. */
static int64_t proc_field_kib(const char *path, const char *field)
{
    char line[256];
    size_t flen = strlen(field);
    int64_t v = -1;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            v = strtoll(line + flen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

int64_t bench_status_kib(const char *field)
{
    return proc_field_kib("/proc/self/status", field);
}

int64_t bench_mem_available_kib(void)
{
    return proc_field_kib("/proc/meminfo", "MemAvailable");
}

int bench_reset_peak_rss(void)
{
    /* "5" resets the peak RSS (Linux 4.0+, Documentation/filesystems/proc). */
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t w = write(fd, "5", 1);
    int err = w == 1 ? 0 : (w < 0 ? -errno : -EIO);
    close(fd);
    return err;
}

int64_t bench_read_int_file(const char *path)
{
    long long v = -1;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%lld", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}
