/* perf/fetch.c: bench_fetch, weft-fetch against Python asyncio + aiohttp
 * (perf/peers/fetch_aiohttp.py, run by /usr/bin/python3 with Debian's
 * python3-aiohttp), side by side in one run, fetching /delay?ms=100 URLs
 * from weft-http running as a separate process (10,000 connections with
 * both ends in one process would need more than the 20,000-fd hard
 * limit; each process raises its soft limit to the hard one). The server
 * is pinned to the first CPU, each client to the second. Three cases:
 *   - n URLs (10,000) all at once (concurrency n);
 *   - 100 URLs all at once;
 *   - 100 URLs one after another (concurrency 1): the seed scenario.
 * Each client run is a child process: its wall time as it reports it
 * (the fetching alone, without its start-up), and from wait4 its CPU time
 * (user + system, start-up included) and peak RSS. The clients alternate
 * within each run. --n is the URL count of the first case (10,000;
 * --quick: 300, the 100-URL cases 10, one run, no warm-up). Entry point:
 * main.
 * Must never time a client's start-up as its fetching, nor hide failed
 * requests (every row counts them). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "http_procs.h"

#if !defined(WEFT_HTTP_BIN) || !defined(WEFT_FETCH_BIN) || !defined(FETCH_AIOHTTP_PY)
#error "WEFT_HTTP_BIN, WEFT_FETCH_BIN and FETCH_AIOHTTP_PY must be defined"
#endif

#define PYTHON "/usr/bin/python3"
#define DELAY_MS 100

enum { IMPL_AIOHTTP, IMPL_WEFT, NIMPL };
static const char *const impl_names[NIMPL] = {"aiohttp", "weft_fetch"};

struct sample {
    double wall_s, cpu_s, rss_mib, server_cpu_s, failed;
};

struct fcase {
    int64_t urls, concurrency;
};

static struct sample run_client(const struct bench_args *a, int impl,
                                const struct fcase *c, const char *url,
                                int cpu, pid_t server)
{
    char count[32], conc[32];
    snprintf(count, sizeof count, "%lld", (long long)c->urls);
    snprintf(conc, sizeof conc, "%lld", (long long)c->concurrency);
    char *weft_argv[] = {WEFT_FETCH_BIN, "--count", count, "--concurrency",
                         conc, (char *)url, NULL};
    char *py_argv[] = {PYTHON, FETCH_AIOHTTP_PY, "--count", count,
                       "--concurrency", conc, (char *)url, NULL};
    double scpu0 = proc_cpu_s(server);
    struct proc p;
    struct rusage ru;
    double wall;
    int st = proc_run(a, &p, cpu, NULL,
                      impl == IMPL_WEFT ? weft_argv : py_argv,
                      120 + (double)c->urls * DELAY_MS / 1000, &ru, &wall);
    double scpu1 = proc_cpu_s(server);
    unsigned long long ok, failed;
    double took;
    const char *line = strstr(p.buf, "succeeded");
    const char *in = line ? strstr(line, " in ") : NULL;
    if (!line || !in)
        bench_fail(a, "%s failed (status %d): %s", impl_names[impl], st,
                   p.buf);
    while (line > p.buf && line[-1] != ':')
        line--;
    if (sscanf(line, " %llu succeeded, %llu failed", &ok, &failed) != 2 ||
        sscanf(in, " in %lf s", &took) != 1)
        bench_fail(a, "%s: cannot read its summary: %s", impl_names[impl],
                   p.buf);
    if (failed)
        bench_note(a, "%s: %llu of %lld requests failed", impl_names[impl],
                   failed, (long long)c->urls);
    struct sample s = {
        .wall_s = took,
        .cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6,
        .rss_mib = (double)ru.ru_maxrss / 1024,
        .server_cpu_s = scpu1 - scpu0,
        .failed = (double)failed,
    };
    return s;
}

static double median_field(const struct sample *v, int n, size_t off)
{
    double x[64];
    for (int i = 0; i < n; i++)
        x[i] = *(const double *)((const char *)&v[i] + off);
    struct bench_stats s;
    bench_stats_of(x, n, &s);
    return s.median;
}

#define MED(v, n, f) median_field((v), (n), offsetof(struct sample, f))

int main(int argc, char **argv)
{
    static const struct bench_spec spec = {
        .bench = "fetch",
        .usage = "weft-fetch against Python asyncio + aiohttp: n URLs "
                 "(/delay?ms=100 on weft-http,\na separate process on the "
                 "first CPU) all at once, then 100 at once and 100 one\n"
                 "after another; the clients on the second CPU. Wall time, "
                 "client CPU time and\npeak RSS. --n: URLs of the first "
                 "case.",
        .default_n = 10000,
        .quick_n = 300,
        .default_runs = 5,
        .workers = BENCH_WORKERS_ONE,
    };
    struct bench_args a;
    bench_parse(&spec, argc, argv, &a);
    if (a.quick && !proc_runs_given(argc, argv))
        a.runs = 1;
    if (a.runs > 64)
        bench_fail(&a, "at most 64 runs");
    if (a.n > 15000)
        bench_fail(&a, "--n: at most 15000 URLs at once (the fd limit)");
    if (access(PYTHON, X_OK) != 0 ||
        system(PYTHON " -c 'import aiohttp' 2>/dev/null") != 0)
        bench_fail(&a, PYTHON " with aiohttp is needed (Debian "
                   "python3-aiohttp; tools/install-deps)");
    int server_cpu, load_cpu;
    proc_cpus(&server_cpu, &load_cpu);

    struct proc server;
    char *server_argv[] = {WEFT_HTTP_BIN, "--port", "0", NULL};
    proc_start(&a, &server, server_cpu, true, NULL, server_argv);
    int port;
    if (!proc_wait_for(&server, "listening on", 10) ||
        (port = proc_port(&server)) <= 0)
        bench_fail(&a, "weft-http did not start");
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/delay?ms=%d", port,
             DELAY_MS);
    int64_t small = a.quick ? 10 : 100;
    const struct fcase cases[] = {
        {a.n, a.n}, {small, small}, {small, 1},
    };
    enum { NCASE = 3 };
    bench_note(&a, "weft-http on port %d pinned to CPU %d, clients on CPU %d; "
               "%d runs", port, server_cpu, load_cpu, a.runs);

    /* A warm-up of each client (page cache, the server's stack pool). */
    const struct fcase warm = {1000, 1000};
    for (int i = 0; i < NIMPL && !a.quick; i++)
        run_client(&a, i, &warm, url, load_cpu, server.pid);

    static struct sample s[NCASE][NIMPL][64];
    for (int r = 0; r < a.runs; r++)
        for (int k = 0; k < NCASE; k++)
            for (int j = 0; j < NIMPL; j++) {
                int i = (r + k + j) % NIMPL;
                s[k][i][r] = run_client(&a, i, &cases[k], url, load_cpu,
                                        server.pid);
                bench_note(&a, "run %d, %lld URLs, at most %lld at once, %s: "
                           "%.3f s, CPU %.3f s, RSS %.0f MiB", r + 1,
                           (long long)cases[k].urls,
                           (long long)cases[k].concurrency, impl_names[i],
                           s[k][i][r].wall_s, s[k][i][r].cpu_s,
                           s[k][i][r].rss_mib);
            }

    for (int k = 0; k < NCASE; k++)
        for (int i = 0; i < NIMPL; i++) {
            double x[64], failed = 0;
            for (int r = 0; r < a.runs; r++) {
                x[r] = s[k][i][r].wall_s;
                failed += s[k][i][r].failed;
            }
            struct bench_stats st;
            bench_stats_of(x, a.runs, &st);
            struct bench_extra ex = {.len = 0};
            ex.buf[0] = '\0';
            bench_extra_int(&ex, "concurrency", cases[k].concurrency);
            bench_extra_num(&ex, "cpu_s", MED(s[k][i], a.runs, cpu_s));
            bench_extra_num(&ex, "cpu_us_per_req",
                            MED(s[k][i], a.runs, cpu_s) * 1e6 /
                                (double)cases[k].urls);
            bench_extra_num(&ex, "rss_mib", MED(s[k][i], a.runs, rss_mib));
            bench_extra_num(&ex, "server_cpu_s",
                            MED(s[k][i], a.runs, server_cpu_s));
            bench_extra_int(&ex, "failed", (int64_t)failed);
            bench_emit(&a, impl_names[i], 1, cases[k].urls, "s", a.runs, &st,
                       &ex);
        }
    proc_stop(&server, SIGTERM, 30, NULL);
    return 0;
}
