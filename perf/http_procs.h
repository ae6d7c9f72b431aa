/* perf/http_procs.h: what the I/O benchmarks (bench_http, bench_echo,
 * bench_fetch) share: running servers, load generators and clients as
 * child processes pinned to one CPU (what `taskset -c CPU` does), reading
 * a child's CPU time from /proc/PID/stat, waiting for a server's
 * "listening" line, and finding the tools on PATH. Header-only (static
 * functions, marked unused where a benchmark may not need them), C only.
 * Entry points: proc_start, proc_cpu_s, proc_stop.
 *
 * Every child gets its own process group and is killed by proc_stop (or by
 * proc_kill_all at exit), so a failed benchmark leaves no server running.
 * Must never: leave a child behind, or write anything but notes to
 * stderr. */
#ifndef WEFT_PERF_HTTP_PROCS_H
#define WEFT_PERF_HTTP_PROCS_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define PROC_MAX 16

struct proc {
    pid_t pid;
    int out;          /* the read end of its stdout, or -1 */
    char buf[4096];   /* what was read of it */
    size_t len;
};

static pid_t proc_live[PROC_MAX];

static void proc_kill_all(void)
{
    for (int i = 0; i < PROC_MAX; i++)
        if (proc_live[i] > 0) {
            kill(-proc_live[i], SIGKILL);
            waitpid(proc_live[i], NULL, 0);
            proc_live[i] = 0;
        }
}

/* The path of tool on PATH (or in /usr/sbin, where Debian puts nginx), in
 * a static buffer, or NULL. */
__attribute__((unused)) static const char *proc_which(const char *tool)
{
    static char found[1024];
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/sbin", path ? path : "/usr/bin");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d;
         d = strtok_r(NULL, ":", &save)) {
        snprintf(found, sizeof found, "%s/%s", d, tool);
        if (access(found, X_OK) == 0)
            return found;
    }
    return NULL;
}

/* Start argv[0] (a path) pinned to cpu (-1: anywhere), its stdout piped
 * to us (capture) or to /dev/null, its stderr to err_path (NULL: ours).
 * Fails the benchmark if it cannot. */
static void proc_start(const struct bench_args *a, struct proc *p, int cpu,
                       bool capture, const char *err_path, char *const argv[])
{
    static bool registered;
    if (!registered) {
        atexit(proc_kill_all);
        registered = true;
    }
    int fds[2] = {-1, -1};
    if (capture && pipe2(fds, O_CLOEXEC) != 0)
        bench_fail(a, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        bench_fail(a, "fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        if (cpu >= 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(cpu, &set);
            if (sched_setaffinity(0, sizeof set, &set) != 0)
                _exit(126);
        }
        int out = capture ? fds[1] : open("/dev/null", O_WRONLY);
        dup2(out, STDOUT_FILENO);
        if (err_path) {
            int e = open(err_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (e >= 0)
                dup2(e, STDERR_FILENO);
        }
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    p->pid = pid;
    p->len = 0;
    p->out = -1;
    if (capture) {
        close(fds[1]);
        p->out = fds[0];
    }
    for (int i = 0; i < PROC_MAX; i++)
        if (proc_live[i] == 0) {
            proc_live[i] = pid;
            break;
        }
}

/* Read p's stdout until it holds `needle` (true) or it ends, or
 * timeout_s passes (false). p->buf then holds what was read. */
static bool proc_wait_for(struct proc *p, const char *needle, double timeout_s)
{
    double end = bench_now() + timeout_s;
    for (;;) {
        p->buf[p->len] = '\0';
        if (strstr(p->buf, needle))
            return true;
        double left = end - bench_now();
        if (left <= 0 || p->len + 1 >= sizeof p->buf)
            return false;
        struct pollfd pfd = {.fd = p->out, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        ssize_t n = read(p->out, p->buf + p->len, sizeof p->buf - 1 - p->len);
        if (n <= 0)
            return false;
        p->len += (size_t)n;
    }
}

/* The port in a "listening on ...:PORT" line, or -1. */
static int proc_port(const struct proc *p)
{
    const char *l = strstr(p->buf, "listening on ");
    if (!l)
        return -1;
    const char *end = strchr(l, '\n');
    const char *colon = NULL;
    for (const char *q = l; q < (end ? end : l + strlen(l)); q++)
        if (*q == ':' && q[1] >= '0' && q[1] <= '9')
            colon = q;
    return colon ? atoi(colon + 1) : -1;
}

/* CPU seconds (user + system, every thread) the process has used. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], line[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    /* After the command's closing parenthesis: state is field 3, utime
     * and stime fields 14 and 15. */
    const char *q = strrchr(line, ')');
    if (!q)
        return -1;
    unsigned long long ut = 0, st = 0;
    if (sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Send sig and wait (at most timeout_s, then SIGKILL). Returns the wait
 * status; *ru (if not NULL) gets the child's resource usage. */
static int proc_stop(struct proc *p, int sig, double timeout_s,
                     struct rusage *ru)
{
    int status = 0;
    if (sig)
        kill(p->pid, sig);
    double end = bench_now() + timeout_s;
    for (;;) {
        struct rusage r;
        pid_t w = wait4(p->pid, &status, WNOHANG, &r);
        if (w == p->pid) {
            if (ru)
                *ru = r;
            break;
        }
        if (bench_now() > end) {
            kill(-p->pid, SIGKILL);
            wait4(p->pid, &status, 0, &r);
            if (ru)
                *ru = r;
            status = -1;
            break;
        }
        usleep(2000);
    }
    for (int i = 0; i < PROC_MAX; i++)
        if (proc_live[i] == p->pid)
            proc_live[i] = 0;
    if (p->out >= 0)
        close(p->out);
    p->out = -1;
    return status;
}

/* Run argv to completion (pinned to cpu), its stdout into p->buf. Returns
 * the wait status, with its rusage in *ru and its wall time in *wall_s. */
static int proc_run(const struct bench_args *a, struct proc *p, int cpu,
                    const char *err_path, char *const argv[], double timeout_s,
                    struct rusage *ru, double *wall_s)
{
    double t0 = bench_now();
    proc_start(a, p, cpu, true, err_path, argv);
    while (proc_wait_for(p, "\x01never\x01", timeout_s - (bench_now() - t0)))
        ;
    int status = proc_stop(p, 0, timeout_s - (bench_now() - t0), ru);
    *wall_s = bench_now() - t0;
    return status;
}

/* A TCP port free on 127.0.0.1 right now. */
__attribute__((unused)) static int proc_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* The directory of this executable (the build's perf/), for the files a
 * benchmark writes (nginx's configuration, logs). */
__attribute__((unused)) static void proc_exe_dir(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    if (n <= 0) {
        snprintf(buf, len, ".");
        return;
    }
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash)
        *slash = '\0';
}

/* The CPUs to pin to: the server on the first CPU this process may use,
 * the load on the second (or the first again on a 1-CPU machine). */
static void proc_cpus(int *server, int *load)
{
    cpu_set_t set;
    *server = *load = -1;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) {
            if (*server < 0)
                *server = c;
            else if (*load < 0)
                *load = c;
        }
    if (*load < 0)
        *load = *server;
}

/* Whether --runs was given (the I/O benchmarks run once in --quick mode
 * unless it was). */
static bool proc_runs_given(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strncmp(argv[i], "--runs", 6))
            return true;
    return false;
}

#endif /* WEFT_PERF_HTTP_PROCS_H */
