/* perf/http.c: bench_http, weft-http against nginx, side by side in one
 * run. Each server runs as its own process pinned to the first CPU
 * (weft-http with one worker; nginx with one process, `return 200` with
 * the same body); `wrk -t1` is pinned to the second CPU and drives it over
 * loopback with 100 and 1000 keep-alive connections, and with 100
 * connections sending 16 pipelined requests per round trip (a wrk Lua
 * script). Each run measures requests/s, the p99 latency, and the server's
 * CPU time from /proc/PID/stat (utime + stime, every thread) over the wrk
 * run: CPU per request, and requests per server CPU-second. The servers
 * alternate within each run so that drift in the machine's load hits both.
 *
 * wrk on one core saturates near the servers' rate, so the comparison that
 * matters is requests per server CPU-second (weft's ratio to nginx's is in
 * the weft rows). --n is the seconds of each wrk run (10; --quick: 1, and
 * one run). Needs wrk and nginx (Debian wrk, nginx-light: tools/
 * install-deps). nginx's configuration, logs and pid file go under
 * <build>/perf/http-nginx/. Entry point: main. Must never report a run
 * whose wrk failed, hide wrk's errors (every row counts them), or leave a
 * server running (http_procs.h kills its children at exit). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "http_procs.h"

#ifndef WEFT_HTTP_BIN
#error "WEFT_HTTP_BIN must name the weft-http program"
#endif

enum { IMPL_NGINX, IMPL_WEFT, NIMPL };
static const char *const impl_names[NIMPL] = {"nginx", "weft"};

struct config {
    int conns;
    int depth; /* requests per round trip */
};
static const struct config configs[] = {{100, 1}, {1000, 1}, {100, 16}};
#define NCONFIG (int)(sizeof configs / sizeof configs[0])

struct sample {
    double rps, p99_ms, cpu_s, reqs, errors;
};

struct server {
    struct proc p;
    int port;
};

static char dir[1100];
static const char *wrk;

/* A wrk script: pipelining (depth > 1), and a machine-readable summary. */
static void write_script(const struct bench_args *a, const char *path,
                         int depth)
{
    FILE *f = fopen(path, "w");
    if (!f)
        bench_fail(a, "%s: %s", path, strerror(errno));
    if (depth > 1)
        fprintf(f,
                "init = function(args)\n"
                "  local r = {}\n"
                "  for i = 1, %d do r[i] = wrk.format(nil, \"/\") end\n"
                "  req = table.concat(r)\n"
                "end\n"
                "request = function() return req end\n",
                depth);
    fprintf(f, "done = function(summary, latency, requests)\n"
               "  local e = summary.errors\n"
               "  io.write(string.format(\"WEFTBENCH %%d %%d %%d %%d\\n\",\n"
               "    summary.requests, summary.duration,\n"
               "    e.connect + e.read + e.write + e.status + e.timeout,\n"
               "    latency:percentile(99)))\n"
               "end\n");
    fclose(f);
}

static void start_nginx(const struct bench_args *a, struct server *s, int cpu)
{
    const char *nginx = proc_which("nginx");
    if (!nginx)
        bench_fail(a, "nginx is not installed (Debian nginx-light; "
                      "tools/install-deps)");
    char conf[1200], err[1200], bin[1024];
    snprintf(bin, sizeof bin, "%s", nginx);
    s->port = proc_free_port();
    snprintf(conf, sizeof conf, "%s/nginx.conf", dir);
    snprintf(err, sizeof err, "%s/error.log", dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        bench_fail(a, "%s: %s", conf, strerror(errno));
    /* One process (no master): its CPU time is the server's. */
    fprintf(f,
            "daemon off;\nmaster_process off;\nworker_processes 1;\n"
            "worker_rlimit_nofile 16384;\n"
            "pid %s/nginx.pid;\nerror_log %s/error.log warn;\n"
            "events { worker_connections 8192; }\n"
            "http {\n"
            "  access_log off;\n"
            "  keepalive_requests 1000000000;\n"
            "  keepalive_timeout 75s;\n"
            "  client_body_temp_path %s/body;\n"
            "  proxy_temp_path %s/proxy;\n"
            "  fastcgi_temp_path %s/fastcgi;\n"
            "  uwsgi_temp_path %s/uwsgi;\n"
            "  scgi_temp_path %s/scgi;\n"
            "  server {\n"
            "    listen 127.0.0.1:%d backlog=4096;\n"
            "    location / {\n"
            "      default_type text/plain;\n"
            "      return 200 \"Hello, World!\";\n"
            "    }\n"
            "  }\n"
            "}\n",
            dir, dir, dir, dir, dir, dir, dir, s->port);
    fclose(f);
    char *argv[] = {bin, "-p", dir, "-c", conf, "-e", err, NULL};
    proc_start(a, &s->p, cpu, false, err, argv);
    /* Ready when it answers. */
    for (int i = 0; i < 500; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)s->port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(fd);
        if (ok)
            return;
        if (waitpid(s->p.pid, NULL, WNOHANG) == s->p.pid)
            bench_fail(a, "nginx exited at start (see %s)", err);
        usleep(10000);
    }
    bench_fail(a, "nginx did not start listening (see %s)", err);
}

static void start_weft(const struct bench_args *a, struct server *s, int cpu)
{
    char err[1200];
    snprintf(err, sizeof err, "%s/weft-http.log", dir);
    char *argv[] = {WEFT_HTTP_BIN, "--port", "0", "--workers", "1", NULL};
    proc_start(a, &s->p, cpu, true, err, argv);
    if (!proc_wait_for(&s->p, "listening on", 10) ||
        (s->port = proc_port(&s->p)) <= 0)
        bench_fail(a, "weft-http did not start (see %s)", err);
}

/* One wrk run against s. */
static struct sample measure(const struct bench_args *a, struct server *s,
                             const struct config *c, int seconds, int cpu)
{
    char script[1200], url[64], conns[16], secs[16];
    snprintf(script, sizeof script, "%s/wrk-depth%d.lua", dir, c->depth);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s->port);
    snprintf(conns, sizeof conns, "%d", c->conns);
    snprintf(secs, sizeof secs, "%ds", seconds);
    char bin[1024];
    snprintf(bin, sizeof bin, "%s", wrk);
    char *argv[] = {bin, "-t1", "-c", conns, "-d", secs, "--timeout", "10s",
                    "-s", script, url, NULL};
    double cpu0 = proc_cpu_s(s->p.pid);
    struct proc w;
    struct rusage ru;
    double wall;
    int st = proc_run(a, &w, cpu, NULL, argv, seconds + 60, &ru, &wall);
    double cpu1 = proc_cpu_s(s->p.pid);
    const char *line = strstr(w.buf, "WEFTBENCH ");
    long long reqs, dur_us, errors, p99_us;
    if (st != 0 || !line ||
        sscanf(line, "WEFTBENCH %lld %lld %lld %lld", &reqs, &dur_us, &errors,
               &p99_us) != 4 || reqs <= 0 || dur_us <= 0)
        bench_fail(a, "wrk failed (status %d): %s", st, w.buf);
    struct sample r = {
        .rps = (double)reqs / ((double)dur_us / 1e6),
        .p99_ms = (double)p99_us / 1e3,
        .cpu_s = cpu1 - cpu0,
        .reqs = (double)reqs,
        .errors = (double)errors,
    };
    return r;
}

static double median_of(const struct sample *v, int n, size_t field)
{
    double x[64];
    for (int i = 0; i < n; i++)
        x[i] = *(const double *)((const char *)&v[i] + field);
    struct bench_stats s;
    bench_stats_of(x, n, &s);
    return s.median;
}

#define MED(v, n, f) median_of((v), (n), offsetof(struct sample, f))

int main(int argc, char **argv)
{
    static const struct bench_spec spec = {
        .bench = "http",
        .usage = "weft-http against nginx (one worker each, pinned to the "
                 "first CPU), driven by\nwrk -t1 on the second CPU: 100 and "
                 "1000 connections, and 100 connections\nwith 16 pipelined "
                 "requests; requests/s, p99, and requests per server\n"
                 "CPU-second (from /proc/PID/stat). --n: seconds per wrk run.",
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
        bench_fail(&a, "--n is seconds per wrk run: at most 3600");
    if (!(wrk = proc_which("wrk")))
        bench_fail(&a, "wrk is not installed (Debian wrk; tools/install-deps)");
    static char wrk_path[1024];
    snprintf(wrk_path, sizeof wrk_path, "%s", wrk);
    wrk = wrk_path;

    char exe[1024];
    proc_exe_dir(exe, sizeof exe);
    snprintf(dir, sizeof dir, "%s/http-nginx", exe);
    mkdir(dir, 0755);
    int server_cpu, load_cpu;
    proc_cpus(&server_cpu, &load_cpu);
    if (server_cpu == load_cpu)
        bench_note(&a, "one CPU only: the servers and wrk share it");
    for (int k = 0; k < NCONFIG; k++) {
        char script[1200];
        snprintf(script, sizeof script, "%s/wrk-depth%d.lua", dir,
                 configs[k].depth);
        write_script(&a, script, configs[k].depth);
    }

    struct server servers[NIMPL];
    start_nginx(&a, &servers[IMPL_NGINX], server_cpu);
    start_weft(&a, &servers[IMPL_WEFT], server_cpu);
    bench_note(&a, "nginx on port %d, weft-http on port %d, pinned to CPU %d; "
               "wrk on CPU %d; %lld s per run, %d runs", servers[0].port,
               servers[1].port, server_cpu, load_cpu, (long long)a.n, a.runs);

    /* Warm both up (connections, caches, pools). */
    for (int i = 0; i < NIMPL; i++)
        measure(&a, &servers[i], &configs[1], 1, load_cpu);

    static struct sample s[NCONFIG][NIMPL][64];
    for (int r = 0; r < a.runs; r++)
        for (int k = 0; k < NCONFIG; k++)
            for (int j = 0; j < NIMPL; j++) {
                int i = (r + k + j) % NIMPL; /* alternate who goes first */
                s[k][i][r] = measure(&a, &servers[i], &configs[k], (int)a.n,
                                     load_cpu);
                char p99[48] = "no p99 with pipelining";
                if (configs[k].depth == 1)
                    snprintf(p99, sizeof p99, "p99 %.2f ms",
                             s[k][i][r].p99_ms);
                bench_note(&a, "run %d, %d conns x %d deep, %s: %.0f req/s, "
                           "%s, %.2f us CPU/req", r + 1, configs[k].conns,
                           configs[k].depth, impl_names[i], s[k][i][r].rps,
                           p99, s[k][i][r].cpu_s * 1e6 / s[k][i][r].reqs);
            }

    for (int k = 0; k < NCONFIG; k++) {
        double per_cpu[NIMPL], p99[NIMPL], rps[NIMPL];
        for (int i = 0; i < NIMPL; i++) {
            double x[64];
            for (int r = 0; r < a.runs; r++)
                x[r] = s[k][i][r].reqs / s[k][i][r].cpu_s;
            struct bench_stats st;
            bench_stats_of(x, a.runs, &st);
            per_cpu[i] = st.median;
            p99[i] = MED(s[k][i], a.runs, p99_ms);
            rps[i] = MED(s[k][i], a.runs, rps);
        }
        for (int i = 0; i < NIMPL; i++) {
            double x[64], errors = 0;
            for (int r = 0; r < a.runs; r++) {
                x[r] = s[k][i][r].rps;
                errors += s[k][i][r].errors;
            }
            struct bench_stats st;
            bench_stats_of(x, a.runs, &st);
            struct bench_extra ex = {.len = 0};
            ex.buf[0] = '\0';
            bench_extra_int(&ex, "conns", configs[k].conns);
            bench_extra_int(&ex, "pipeline", configs[k].depth);
            /* wrk records one latency per pipelined batch and its
             * percentiles then read 0: no p99 with pipelining. */
            if (configs[k].depth == 1)
                bench_extra_num(&ex, "p99_ms", p99[i]);
            bench_extra_num(&ex, "cpu_us_per_req", 1e6 / per_cpu[i]);
            bench_extra_num(&ex, "req_per_cpu_s", per_cpu[i]);
            if (i == IMPL_WEFT) {
                bench_extra_num(&ex, "cpu_ratio_to_nginx",
                                per_cpu[IMPL_WEFT] / per_cpu[IMPL_NGINX]);
                bench_extra_num(&ex, "rps_ratio_to_nginx",
                                rps[IMPL_WEFT] / rps[IMPL_NGINX]);
                if (configs[k].depth == 1)
                    bench_extra_num(&ex, "p99_ratio_to_nginx",
                                    p99[IMPL_WEFT] / p99[IMPL_NGINX]);
            }
            bench_extra_int(&ex, "errors", (int64_t)errors);
            bench_emit(&a, impl_names[i], 1, configs[k].conns, "req/s",
                       a.runs, &st, &ex);
        }
    }

    for (int i = 0; i < NIMPL; i++)
        proc_stop(&servers[i].p, i == IMPL_WEFT ? SIGTERM : SIGQUIT, 20, NULL);
    return 0;
}
