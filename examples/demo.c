/* examples/demo.c (weft-demo): the two kinds of program weft is for, with
 * one API.
 *
 *   1. One loop, many waits: 10,000 tasks that each wait 100 ms for "an API"
 *      run on a single worker, all at once: about 0.1 s, not 1000 s.
 *   2. Many cores, one job: the sum of a billion int64 numbers, filled and
 *      summed with weft_parallel_for / weft_parallel_reduce, on one worker
 *      and then on all of them.
 *   3. Real I/O: weft-http's server and an HTTP client in one runtime, on a
 *      loopback port: 100 GETs of /delay?ms=100 one after another (about
 *      10 s), then all at once (about 0.1 s). The HTTP code is
 *      examples/http/, shared with weft-http and weft-fetch.
 *
 * Usage: weft-demo [--n N] [--tasks T] [--delay-ms D] [--runs R]
 *                  [--requests Q]
 * Copy from it freely: every weft call here is the way we recommend. */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <weft.h>

#include "http/client.h"
#include "http/server.h"

/* ---- Part 1: one loop, many waits ---------------------------------------- */

struct api_call {
    uint64_t delay_ms;
};

/* Stands in for an HTTP call to a slow API: the task waits, the worker does
 * not. */
static intptr_t call_api(void *arg)
{
    const struct api_call *call = arg;
    int err = weft_sleep_ms(call->delay_ms);
    return err ? err : 200; /* "HTTP 200" */
}

struct part1 {
    unsigned tasks;
    uint64_t delay_ms;
    double seconds;
    unsigned ok;
};

static intptr_t run_part1(void *arg)
{
    struct part1 *p = arg;
    struct api_call call = {.delay_ms = p->delay_ms};
    weft_task_t *tasks = calloc(p->tasks, sizeof *tasks);
    if (!tasks)
        return -ENOMEM;
    uint64_t start = weft_now_ns();
    for (unsigned i = 0; i < p->tasks; i++) {
        int err = weft_spawn(&tasks[i], call_api, &call);
        if (err) {
            p->tasks = i; /* join what was started, then report */
            break;
        }
    }
    for (unsigned i = 0; i < p->tasks; i++)
        if (weft_join(tasks[i]) == 200)
            p->ok++;
    p->seconds = (double)(weft_now_ns() - start) / 1e9;
    free(tasks);
    return 0;
}

/* ---- Part 2: many cores, one job ----------------------------------------- */

struct array {
    int64_t *data;
    int64_t n;
    bool show_progress;      /* stderr is a terminal */
    _Atomic int64_t filled;  /* for the progress line */
    _Atomic int last_percent;
};

static void fill(int64_t begin, int64_t end, void *arg)
{
    struct array *a = arg;
    for (int64_t i = begin; i < end; i++)
        a->data[i] = i;
    if (!a->show_progress)
        return;
    /* Progress: whoever crosses the next percent prints it. */
    int64_t done = atomic_fetch_add(&a->filled, end - begin) + (end - begin);
    int percent = (int)(done * 100 / a->n);
    int last = atomic_load(&a->last_percent);
    while (percent > last) {
        if (atomic_compare_exchange_weak(&a->last_percent, &last, percent)) {
            fprintf(stderr, "\r   filling the array in parallel: %3d%%", percent);
            break;
        }
    }
}

static void sum_identity(void *partial, void *arg)
{
    (void)arg;
    *(int64_t *)partial = 0;
}

/* Four independent sums let the CPU overlap the additions. */
static void sum_range(int64_t begin, int64_t end, void *partial, void *arg)
{
    const int64_t *d = ((struct array *)arg)->data;
    int64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = begin;
    for (; i + 4 <= end; i += 4) {
        s0 += d[i];
        s1 += d[i + 1];
        s2 += d[i + 2];
        s3 += d[i + 3];
    }
    for (; i < end; i++)
        s0 += d[i];
    *(int64_t *)partial += s0 + s1 + s2 + s3;
}

static void sum_combine(void *into, const void *from, void *arg)
{
    (void)arg;
    *(int64_t *)into += *(const int64_t *)from;
}

static const weft_reducer_t sum_reducer = {
    .size = sizeof(int64_t),
    .identity = sum_identity,
    .body = sum_range,
    .combine = sum_combine,
};

struct part2 {
    struct array *array;
    bool do_fill;
    unsigned runs;
    double fill_seconds;
    double seconds; /* median of the runs */
    int64_t sum;
    int workers;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static intptr_t run_part2(void *arg)
{
    struct part2 *p = arg;
    struct array *a = p->array;
    p->workers = weft_worker_count();
    if (p->do_fill) {
        uint64_t t0 = weft_now_ns();
        int err = weft_parallel_for(0, a->n, 0, fill, a);
        if (err)
            return err;
        p->fill_seconds = (double)(weft_now_ns() - t0) / 1e9;
        if (a->show_progress)
            fprintf(stderr, "\r%50s\r", "");
        printf("   filled in parallel in %.1f s (first touch of fresh memory)\n",
               p->fill_seconds);
    }
    double times[16];
    for (unsigned r = 0; r < p->runs; r++) {
        uint64_t t0 = weft_now_ns();
        int err = weft_parallel_reduce(0, a->n, 0, &sum_reducer, a, &p->sum);
        if (err)
            return err;
        times[r] = (double)(weft_now_ns() - t0) / 1e9;
    }
    qsort(times, p->runs, sizeof times[0], cmp_double);
    p->seconds = times[p->runs / 2];
    return 0;
}

/* The memory this process may still use: MemAvailable, and the cgroup's
 * limit if it is lower. */
static uint64_t available_bytes(void)
{
    uint64_t avail = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %" SCNu64 " kB", &avail) == 1) {
                avail *= 1024;
                break;
            }
        fclose(f);
    }
    f = fopen("/sys/fs/cgroup/memory.max", "r");
    if (f) {
        uint64_t limit;
        if (fscanf(f, "%" SCNu64, &limit) == 1 && limit < avail)
            avail = limit;
        fclose(f);
    }
    return avail;
}

/* ---- Part 3: real I/O ------------------------------------------------------- */

struct part3 {
    unsigned requests;
    uint64_t delay_ms;
    int port;
    double serial_seconds, concurrent_seconds;
    unsigned serial_ok, concurrent_ok;
};

struct get_job {
    struct http_client *client;
    const struct http_url *url;
};

/* One GET: its HTTP status, or a negative errno value. */
static intptr_t get_once(void *arg)
{
    const struct get_job *job = arg;
    struct http_result res;
    int err = http_client_get(job->client, job->url, &res,
                              weft_now_ns() + 60 * 1000000000ull);
    return err ? err : res.status;
}

static intptr_t run_part3(void *arg)
{
    struct part3 *p = arg;
    /* The server: port 0 picks a free one. Its tasks share the workers
     * with the client's. */
    struct http_server_config scfg = {
        .host = "127.0.0.1",
        .port = 0,
        .max_delay_ms = p->delay_ms > 60000 ? (uint32_t)p->delay_ms : 0,
    };
    struct http_server *server;
    int err = http_server_start(&scfg, &server);
    if (err)
        return err;
    p->port = http_server_port(server);
    char text[80];
    snprintf(text, sizeof text, "http://127.0.0.1:%d/delay?ms=%" PRIu64,
             p->port, p->delay_ms);
    struct http_url url;
    struct http_client *client = NULL;
    struct http_client_config ccfg = {.max_idle_per_host = p->requests};
    weft_task_t *tasks = calloc(p->requests, sizeof *tasks);
    if (!tasks)
        err = -ENOMEM;
    if (!err)
        err = http_url_parse(text, &url);
    if (!err)
        err = http_client_create(&ccfg, &client);
    if (err)
        goto out;
    struct get_job job = {.client = client, .url = &url};

    /* One after another: each request waits for the one before. */
    uint64_t start = weft_now_ns();
    for (unsigned i = 0; i < p->requests; i++)
        if (get_once(&job) == 200)
            p->serial_ok++;
    p->serial_seconds = (double)(weft_now_ns() - start) / 1e9;

    /* All at once: a task per request, then join them all. */
    start = weft_now_ns();
    unsigned spawned = 0;
    for (; spawned < p->requests; spawned++)
        if ((err = weft_spawn(&tasks[spawned], get_once, &job)))
            break; /* join what was started, then report */
    for (unsigned i = 0; i < spawned; i++)
        if (weft_join(tasks[i]) == 200)
            p->concurrent_ok++;
    p->concurrent_seconds = (double)(weft_now_ns() - start) / 1e9;
out:
    http_client_destroy(client);
    free(tasks);
    int stop_err = http_server_stop(server, NULL);
    return err ? err : stop_err;
}

/* ---- The program ----------------------------------------------------------- */

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--n N] [--tasks T] [--delay-ms D] [--runs R] "
            "[--requests Q]\n"
            "  --n N         numbers to sum (default 1000000000)\n"
            "  --tasks T     concurrent waiting tasks (default 10000)\n"
            "  --delay-ms D  how long each one waits (default 100)\n"
            "  --runs R      timed sums per worker count, median shown "
            "(default 3, at most 15)\n"
            "  --requests Q  HTTP requests to the delaying server (default "
            "100)\n",
            argv0);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || !*s || s[0] == '-')
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    uint64_t n = 1000000000ull, tasks = 10000, delay_ms = 100, runs = 3;
    uint64_t requests = 100;
    for (int i = 1; i < argc; i++) {
        uint64_t *dst = NULL;
        if (!strcmp(argv[i], "--n"))
            dst = &n;
        else if (!strcmp(argv[i], "--tasks"))
            dst = &tasks;
        else if (!strcmp(argv[i], "--delay-ms"))
            dst = &delay_ms;
        else if (!strcmp(argv[i], "--runs"))
            dst = &runs;
        else if (!strcmp(argv[i], "--requests"))
            dst = &requests;
        if (!dst || i + 1 == argc || !parse_u64(argv[++i], dst)) {
            usage(argv[0]);
            return 2;
        }
    }
    if (n < 1 || tasks < 1 || tasks > 10000000 || runs < 1 || runs > 15 ||
        requests < 1 || requests > 10000) {
        usage(argv[0]);
        return 2;
    }

    printf("weft demo: one API for two kinds of program\n\n");

    /* Part 1 */
    weft_config_t one;
    weft_config_init(&one);
    one.workers = 1;
    struct part1 p1 = {.tasks = (unsigned)tasks, .delay_ms = delay_ms};
    intptr_t r;
    int err = weft_run(&one, run_part1, &p1, &r);
    if (err || r) {
        fprintf(stderr, "weft-demo: part 1 failed: %s\n",
                strerror(-(err ? err : (int)r)));
        return 1;
    }
    double serial = (double)p1.tasks * (double)delay_ms / 1000.0;
    printf("1. One loop, many waits\n"
           "   %u tasks each call an \"API\" that answers after %" PRIu64
           " ms (a sleep\n"
           "   stands in for the network), on a single worker thread:\n\n"
           "     one after another (computed): %10.1f s\n"
           "     all at once, measured:        %10.3f s   (%u answered, "
           "%.0fx faster)\n\n",
           p1.tasks, delay_ms, serial, p1.seconds, p1.ok,
           serial / p1.seconds);
    fflush(stdout);

    /* Part 2 */
    uint64_t want = n * sizeof(int64_t);
    uint64_t avail = available_bytes();
    if (avail && want > avail / 4 * 3) {
        uint64_t fit = avail / 4 * 3 / sizeof(int64_t);
        printf("   (%.1f GB of numbers do not fit in the %.1f GB this machine "
               "has free:\n    summing %" PRIu64 " numbers instead)\n\n",
               (double)want / 1e9, (double)avail / 1e9, fit);
        n = fit;
        want = n * sizeof(int64_t);
    }
    struct array a = {.n = (int64_t)n, .show_progress = isatty(STDERR_FILENO)};
    a.data = mmap(NULL, want, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (a.data == MAP_FAILED) {
        fprintf(stderr, "weft-demo: cannot map %.1f GB: %s\n",
                (double)want / 1e9, strerror(errno));
        return 1;
    }
    /* First-touching fresh memory costs more than summing it; huge pages
     * make that cheaper where the kernel allows them. */
    madvise(a.data, want, MADV_HUGEPAGE);

    printf("2. Many cores, one job\n"
           "   the sum of %" PRIu64 " int64 numbers (%.1f GB), with "
           "weft_parallel_reduce:\n", n, (double)want / 1e9);
    fflush(stdout);
    struct part2 all = {.array = &a, .do_fill = true, .runs = (unsigned)runs};
    err = weft_run(NULL, run_part2, &all, &r);
    if (err || r) {
        fprintf(stderr, "weft-demo: part 2 failed: %s\n",
                strerror(-(err ? err : (int)r)));
        return 1;
    }
    struct part2 single = {.array = &a, .runs = (unsigned)runs};
    err = weft_run(&one, run_part2, &single, &r);
    if (err || r) {
        fprintf(stderr, "weft-demo: part 2 failed: %s\n",
                strerror(-(err ? err : (int)r)));
        return 1;
    }
    int64_t expect = (int64_t)(n * (n - 1) / 2);
    printf("\n     workers    time      GB/s   speedup   sum\n");
    const struct part2 *rows[2] = {&single, &all};
    for (int i = 0; i < 2; i++) {
        const struct part2 *p = rows[i];
        printf("     %7d %7.3f s %8.1f %8.2fx   %s\n", p->workers, p->seconds,
               (double)want / p->seconds / 1e9, single.seconds / p->seconds,
               p->sum == expect ? "correct" : "WRONG");
    }
    printf("\n   Each sum is checked against n(n-1)/2 = %" PRId64 ".\n"
           "   Both parts use the same calls; set WEFT_WORKERS to change "
           "the worker count.\n",
           expect);
    munmap(a.data, want);
    fflush(stdout);

    /* Part 3 */
    struct part3 p3 = {.requests = (unsigned)requests, .delay_ms = delay_ms};
    err = weft_run(NULL, run_part3, &p3, &r);
    if (err || r) {
        fprintf(stderr, "weft-demo: part 3 failed: %s\n",
                strerror(-(err ? err : (int)r)));
        return 1;
    }
    printf("\n3. Real I/O: an HTTP server and its client in one runtime\n"
           "   weft-http's server on http://127.0.0.1:%d/, and %u GETs of\n"
           "   /delay?ms=%" PRIu64 " (each answered after %" PRIu64
           " ms), over real loopback sockets:\n\n"
           "     one after another: %10.3f s   (%u answered)\n"
           "     all at once:       %10.3f s   (%u answered, %.0fx faster)\n",
           p3.port, p3.requests, delay_ms, delay_ms, p3.serial_seconds,
           p3.serial_ok, p3.concurrent_seconds, p3.concurrent_ok,
           p3.serial_seconds / p3.concurrent_seconds);
    return single.sum == expect && all.sum == expect &&
                   p3.serial_ok == p3.requests &&
                   p3.concurrent_ok == p3.requests
               ? 0
               : 1;
}
