/* perf/echo.c: bench_echo, weft-echo against a plain epoll echo server
 * (perf/peers/epoll_echo.c), side by side in one run. Each server runs as
 * its own process pinned to the first CPU (weft-echo with one worker); the
 * load generator (perf/echo_load.c: 100 connections, one 64-byte message
 * in flight on each) is pinned to the second. Each run measures messages
 * echoed per second and the server's CPU time from /proc/PID/stat over the
 * run: CPU per message. The servers alternate within each run. Target:
 * weft no more server CPU per message than the epoll server (the weft
 * row's cpu_ratio_to_epoll <= 1). --n is the seconds of each run (10;
 * --quick: 1, and one run). Entry point: main. Must never count a run
 * whose load generator failed (it checks every echoed byte). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "http_procs.h"

#if !defined(WEFT_ECHO_BIN) || !defined(EPOLL_ECHO_BIN) || !defined(ECHO_LOAD_BIN)
#error "WEFT_ECHO_BIN, EPOLL_ECHO_BIN and ECHO_LOAD_BIN must name the programs"
#endif

#define CONNS 100
#define SIZE 64

enum { IMPL_EPOLL, IMPL_WEFT, NIMPL };
static const char *const impl_names[NIMPL] = {"epoll", "weft"};

struct sample {
    double mps, cpu_s, msgs;
};

int main(int argc, char **argv)
{
    static const struct bench_spec spec = {
        .bench = "echo",
        .usage = "weft-echo against a plain epoll echo server (one worker "
                 "each, pinned to the\nfirst CPU); perf/echo_load on the "
                 "second CPU keeps one 64-byte message in\nflight on each "
                 "of 100 connections; messages/s and server CPU per "
                 "message.\n--n: seconds per run.",
        .default_n = 10,
        .quick_n = 1,
        .default_runs = 5,
        .workers = BENCH_WORKERS_ONE,
    };
    struct bench_args a;
    bench_parse(&spec, argc, argv, &a);
    if (a.quick && !proc_runs_given(argc, argv))
        a.runs = 1;
    if (a.runs > 64)
        bench_fail(&a, "at most 64 runs");
    if (a.n > 3600)
        bench_fail(&a, "--n is seconds per run: at most 3600");
    int server_cpu, load_cpu;
    proc_cpus(&server_cpu, &load_cpu);

    struct proc servers[NIMPL];
    int ports[NIMPL];
    char *weft_argv[] = {WEFT_ECHO_BIN, "--port", "0", "--workers", "1", NULL};
    char *epoll_argv[] = {EPOLL_ECHO_BIN, "--port", "0", NULL};
    proc_start(&a, &servers[IMPL_WEFT], server_cpu, true, NULL, weft_argv);
    proc_start(&a, &servers[IMPL_EPOLL], server_cpu, true, NULL, epoll_argv);
    for (int i = 0; i < NIMPL; i++)
        if (!proc_wait_for(&servers[i], "listening on", 10) ||
            (ports[i] = proc_port(&servers[i])) <= 0)
            bench_fail(&a, "%s did not start", impl_names[i]);
    bench_note(&a, "epoll on port %d, weft-echo on port %d, pinned to CPU %d; "
               "echo_load on CPU %d; %lld s per run, %d runs",
               ports[IMPL_EPOLL], ports[IMPL_WEFT], server_cpu, load_cpu,
               (long long)a.n, a.runs);

    static struct sample s[NIMPL][64];
    for (int r = -1; r < a.runs; r++) { /* run -1: a short warm-up */
        for (int j = 0; j < NIMPL; j++) {
            int i = (r + 1 + j) % NIMPL;
            char port[16], conns[16], size[16], secs[32];
            snprintf(port, sizeof port, "%d", ports[i]);
            snprintf(conns, sizeof conns, "%d", CONNS);
            snprintf(size, sizeof size, "%d", SIZE);
            snprintf(secs, sizeof secs, "%g", r < 0 ? 0.3 : (double)a.n);
            char *argv_l[] = {ECHO_LOAD_BIN, port, conns, size, secs, NULL};
            double cpu0 = proc_cpu_s(servers[i].pid);
            struct proc l;
            struct rusage ru;
            double wall;
            int st = proc_run(&a, &l, load_cpu, NULL, argv_l,
                              (double)a.n + 60, &ru, &wall);
            double cpu1 = proc_cpu_s(servers[i].pid);
            unsigned long long msgs, total;
            double took;
            const char *line = strstr(l.buf, "messages ");
            if (st != 0 || !line ||
                sscanf(line, "messages %llu seconds %lf total %llu", &msgs,
                       &took, &total) != 3 ||
                msgs == 0)
                bench_fail(&a, "echo_load against %s failed (status %d): %s",
                           impl_names[i], st, l.buf);
            if (r < 0)
                continue;
            /* The server's CPU covers the warm-up too: per message of
             * the whole run. */
            s[i][r] = (struct sample){.mps = (double)msgs / took,
                                      .cpu_s = cpu1 - cpu0,
                                      .msgs = (double)total};
            bench_note(&a, "run %d, %s: %.0f msg/s, %.2f us CPU/msg", r + 1,
                       impl_names[i], s[i][r].mps,
                       s[i][r].cpu_s * 1e6 / s[i][r].msgs);
        }
    }

    double per_msg[NIMPL];
    for (int i = 0; i < NIMPL; i++) {
        double x[64];
        for (int r = 0; r < a.runs; r++)
            x[r] = s[i][r].cpu_s * 1e6 / s[i][r].msgs;
        struct bench_stats st;
        bench_stats_of(x, a.runs, &st);
        per_msg[i] = st.median;
    }
    for (int i = 0; i < NIMPL; i++) {
        double x[64];
        for (int r = 0; r < a.runs; r++)
            x[r] = s[i][r].mps;
        struct bench_stats st;
        bench_stats_of(x, a.runs, &st);
        struct bench_extra ex = {.len = 0};
        ex.buf[0] = '\0';
        bench_extra_int(&ex, "size", SIZE);
        bench_extra_num(&ex, "cpu_us_per_msg", per_msg[i]);
        bench_extra_num(&ex, "msg_per_cpu_s", 1e6 / per_msg[i]);
        if (i == IMPL_WEFT)
            bench_extra_num(&ex, "cpu_ratio_to_epoll",
                            per_msg[IMPL_WEFT] / per_msg[IMPL_EPOLL]);
        bench_emit(&a, impl_names[i], 1, CONNS, "msg/s", a.runs, &st, &ex);
    }
    proc_stop(&servers[IMPL_WEFT], SIGTERM, 20, NULL);
    proc_stop(&servers[IMPL_EPOLL], SIGTERM, 20, NULL);
    return 0;
}
