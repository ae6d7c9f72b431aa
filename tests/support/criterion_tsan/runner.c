/* tests/support/criterion_tsan/runner.c: main() for the ThreadSanitizer
 * build's Criterion stand-in: collects the tests criterion.h registered, runs
 * each in its own fork()ed child, enforces timeouts and expected signals or
 * exit codes, and prints Criterion's synthesis line. The parent never starts
 * a thread (so every fork is TSan-safe) and never runs test code. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "criterion/criterion.h" /* ours, whatever the include path says */

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN_BUILD 1
#endif
#endif
#ifndef TSAN_BUILD
#define TSAN_BUILD 0
#endif

/* Weak: a binary without tests still links, with an empty section. */
extern const struct weft__crt_test *__start_criterion_tsan_tests[]
    __attribute__((weak));
extern const struct weft__crt_test *__stop_criterion_tsan_tests[]
    __attribute__((weak));

/* A test with its suite's options merged in. */
struct plan {
    const struct weft__crt_test *t, *s; /* s: the TestSuite(), or NULL */
    double timeout;
    int signal, exit_code;
    bool disabled;
};

static struct {
    int verbose;
    bool fail_fast, always_succeed;
    double timeout; /* --timeout: for tests and suites that set none */
    const char *filter;
} opt;

/* ---- The child's side: what the header's functions report to ----------- */

/* Set in the child before the test starts any thread (pthread_create orders
 * these writes before every read from the test's threads). */
static int report_fd = -1;
static pthread_t test_thread;
static const struct plan *running;
static bool finishing; /* only the test thread reads or writes it */

static void run_fini(void)
{
    finishing = true;
    if (running->t->fini)
        running->t->fini();
    if (running->s && running->s->fini)
        running->s->fini();
}

/* One record per write(2): kind, "file:line: message", NUL. Pipe writes of
 * at most PIPE_BUF bytes are atomic, so threads never interleave records.
 * Returns false if the record could not reach the runner (the test closed
 * or reused its fd); it is printed on stderr instead. */
static bool send_record(char kind, const char *file, int line, const char *dflt,
                        const char *s1, const char *s2, const char *s3,
                        const char *fmt, va_list ap)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%c%s:%d: ", kind, file, line);
    if (n < 0 || (size_t)n >= sizeof buf)
        n = 0;
    if (fmt[1]) /* skip the header's leading " " */
        vsnprintf(buf + n, sizeof buf - (size_t)n, fmt + 1, ap);
    else if (dflt)
        snprintf(buf + n, sizeof buf - (size_t)n, dflt, s1, s2, s3);
    size_t len = strlen(buf) + 1;
    if (report_fd >= 0 && write(report_fd, buf, len) == (ssize_t)len)
        return true;
    fprintf(stderr, "%s\n", buf + 1);
    return false;
}

/* Fixtures still run after a failure on the test's own thread, as in
 * Criterion; from another thread the child just exits. */
__attribute__((noreturn)) static void end_test(int status)
{
    if (running && pthread_equal(pthread_self(), test_thread) && !finishing)
        run_fini();
    fflush(stdout);
    _exit(status);
}

void weft__crt_assert_failed(const char *file, int line, const char *dflt,
                             const char *s1, const char *s2, const char *s3,
                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    send_record('F', file, line, dflt, s1, s2, s3, fmt, ap);
    va_end(ap);
    end_test(1);
}

void weft__crt_expect_failed(const char *file, int line, const char *dflt,
                             const char *s1, const char *s2, const char *s3,
                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool sent = send_record('F', file, line, dflt, s1, s2, s3, fmt, ap);
    va_end(ap);
    if (!sent) /* the exit status must carry the failure, then */
        end_test(1);
}

void weft__crt_skip(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    send_record('S', file, line, "skipped", NULL, NULL, NULL, fmt, ap);
    va_end(ap);
    end_test(0);
}

void weft__crt_log(int level, const char *fmt, ...)
{
    static const char *const prefix[] = {"[----] ", "[WARN] ", "[ERR ] "};
    if (level < 0 || level > 2 || (level == 0 && !opt.verbose))
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    n = n > (int)sizeof buf - 2 ? (int)sizeof buf - 2 : n;
    buf[n++] = '\n';
    dprintf(STDERR_FILENO, "%s%.*s", prefix[level], n, buf);
}

__attribute__((noreturn)) static void child(const struct plan *p, int fd,
                                            pid_t parent)
{
    /* Die with the runner, and not run a test nobody is waiting for. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    report_fd = fd;
    test_thread = pthread_self();
    running = p;
    if (p->s && p->s->init)
        p->s->init();
    if (p->t->init)
        p->t->init();
    p->t->fn();
    run_fini();
    exit(0); /* exit, not _exit: atexit work, and TSan's exit status 66 */
}

/* ---- The parent's side ------------------------------------------------- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What a child sent, kept up to a cap (a test expecting in a loop may send
 * millions of records; the first ones say enough). */
struct records {
    char buf[64 * 1024];
    size_t len;
    bool dropped;
};

static void drain(int fd, struct records *r, bool *eof)
{
    char chunk[PIPE_BUF];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0) {
        size_t room = sizeof r->buf - r->len, take = (size_t)n;
        if (take > room) {
            take = room;
            r->dropped = true;
        }
        memcpy(r->buf + r->len, chunk, take);
        r->len += take;
    }
    if (n == 0)
        *eof = true;
}

/* Run one test to its end; return its wait status, or one of these. */
enum { TIMED_OUT = -1, NOT_STARTED = -2 };
static int run_child(const struct plan *p, struct records *r, double *elapsed)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        perror("criterion_tsan: pipe2");
        return NOT_STARTED;
    }
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child(p, fds[1], parent);
    }
    close(fds[1]);
    if (pid < 0) {
        perror("criterion_tsan: fork");
        close(fds[0]);
        return NOT_STARTED;
    }
    /* A pidfd turns "child exited" into a poll event; without one (old
     * kernels), poll in 10 ms ticks. */
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    double start = now(), deadline = p->timeout > 0 ? start + p->timeout : 0;
    bool eof = false;
    int status = TIMED_OUT;
    for (;;) {
        int ms = -1;
        if (deadline) {
            double left = (deadline - now()) * 1000; /* rounded up: */
            ms = left <= 0 ? 0 : left >= INT_MAX ? INT_MAX : (int)left + 1;
        }
        if (pidfd < 0 && (ms < 0 || ms > 10))
            ms = 10;
        struct pollfd pf[2] = {{.fd = eof ? -1 : fds[0], .events = POLLIN},
                               {.fd = pidfd, .events = POLLIN}};
        if (poll(pf, 2, ms) < 0 && errno != EINTR)
            perror("criterion_tsan: poll");
        drain(fds[0], r, &eof);
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        if (deadline && now() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            status = TIMED_OUT;
            break;
        }
    }
    *elapsed = now() - start;
    drain(fds[0], r, &eof); /* what was written just before the exit */
    close(fds[0]);
    if (pidfd >= 0)
        close(pidfd);
    return status;
}

static struct {
    unsigned tested, passed, failed, crashed, skipped;
} stats;

static void fail_line(const struct plan *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail_line(const struct plan *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[FAIL] %s::%s: ", p->t->suite, p->t->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Decide and print the verdict. Failures recorded by asserts or expects win
 * over everything, then a skip, then how the child ended. */
static void judge(const struct plan *p, int status, const struct records *r,
                  double elapsed)
{
    const struct weft__crt_test *t = p->t;
    const char *skip = NULL;
    unsigned failures = 0;
    for (size_t at = 0; at < r->len;) {
        const char *rec = r->buf + at;
        size_t len = strnlen(rec, r->len - at);
        if (at + len == r->len)
            break; /* cut off by the cap */
        if (*rec == 'F' && failures++ < 20)
            fail_line(p, "%s", rec + 1);
        else if (*rec == 'S' && !skip)
            skip = rec + 1;
        at += len + 1;
    }
    if (failures > 20 || r->dropped)
        fail_line(p, "(%s)",
                  r->dropped ? "more failures, not kept"
                             : "more failures, not shown");
    bool failed = failures || r->dropped, crashed = false;
    if (!failed && skip) {
        stats.skipped++;
        fprintf(stderr, "[SKIP] %s::%s: %s\n", t->suite, t->name, skip);
        return;
    }
    stats.tested++;
    if (status == TIMED_OUT) {
        fail_line(p, "%s:%d: timed out after %g s", t->file, t->line,
                  p->timeout);
        failed = true;
    } else if (status == NOT_STARTED) {
        fail_line(p, "%s:%d: could not start (see above)", t->file, t->line);
        failed = true;
    } else if (WIFSIGNALED(status) && WTERMSIG(status) != p->signal) {
        fail_line(p, "%s:%d: crashed: signal %d (%s)%s", t->file, t->line,
                  WTERMSIG(status), strsignal(WTERMSIG(status)),
                  p->signal ? ", not the signal expected" : "");
        failed = crashed = true;
    } else if (!failed && WIFEXITED(status) && p->signal) {
        fail_line(p, "%s:%d: exited with status %d; expected signal %d (%s)",
                  t->file, t->line, WEXITSTATUS(status), p->signal,
                  strsignal(p->signal));
        failed = true;
    } else if (!failed && WIFEXITED(status) &&
               WEXITSTATUS(status) != p->exit_code) {
        fail_line(p, "%s:%d: exited with status %d, expected %d%s", t->file,
                  t->line, WEXITSTATUS(status), p->exit_code,
                  TSAN_BUILD && WEXITSTATUS(status) == 66
                      ? " (66: ThreadSanitizer's report is above)"
                      : "");
        failed = true;
    }
    if (failed) {
        stats.failed++;
        stats.crashed += crashed;
    } else {
        stats.passed++;
        if (opt.verbose)
            fprintf(stderr, "[PASS] %s::%s: (%.2fs)\n", t->suite, t->name,
                    elapsed);
    }
}

/* ---- Collecting and ordering ------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    const struct plan *x = a, *y = b;
    int c = strcmp(x->t->suite, y->t->suite);
    return c ? c : strcmp(x->t->name, y->t->name);
}

/* Every registered test, with its suite's options, sorted by suite then
 * name (Criterion's order). Returns the count; *out is malloc'ed. */
static size_t collect(struct plan **out)
{
    const struct weft__crt_test **b = __start_criterion_tsan_tests,
                                **e = __stop_criterion_tsan_tests;
    size_t n = 0, cap = b ? (size_t)(e - b) : 0;
    struct plan *v = calloc(cap ? cap : 1, sizeof *v);
    if (!v) {
        perror("criterion_tsan");
        exit(2);
    }
    for (const struct weft__crt_test **i = b; i && i < e; i++) {
        const struct weft__crt_test *t = *i, *s = NULL;
        if (!t->fn)
            continue;
        for (const struct weft__crt_test **j = b; j < e && !s; j++)
            if (!(*j)->fn && !strcmp((*j)->suite, t->suite))
                s = *j;
        struct plan p = {.t = t, .s = s};
        p.timeout = t->timeout        ? t->timeout
                    : s && s->timeout ? s->timeout
                                      : opt.timeout;
        p.signal = t->signal ? t->signal : s ? s->signal : 0;
        p.exit_code = t->exit_code ? t->exit_code : s ? s->exit_code : 0;
        p.disabled = t->disabled || (s && s->disabled);
        v[n++] = p;
    }
    qsort(v, n, sizeof *v, by_name);
    *out = v;
    return n;
}

static bool selected(const struct plan *p)
{
    char id[512];
    if (!opt.filter)
        return true;
    snprintf(id, sizeof id, "%s/%s", p->t->suite, p->t->name);
    return fnmatch(opt.filter, id, 0) == 0;
}

static void list(const struct plan *v, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t j = i, count = 0;
        for (; j < n && !strcmp(v[j].t->suite, v[i].t->suite); j++)
            count += selected(&v[j]);
        if (count)
            printf("%s: %zu test%s\n", v[i].t->suite, count,
                   count == 1 ? "" : "s");
        for (; i < j; i++) {
            if (!selected(&v[i]))
                continue;
            printf("%s %s%s%s%s\n", --count ? "|--" : "`--", v[i].t->name,
                   v[i].t->description ? ": " : "",
                   v[i].t->description ? v[i].t->description : "",
                   v[i].disabled ? " (skipped)" : "");
        }
    }
}

/* ---- main -------------------------------------------------------------- */

static void usage(const char *argv0, FILE *to)
{
    fprintf(to,
            "usage: %s [options]  (ThreadSanitizer stand-in for Criterion)\n"
            "  -l, --list            list the tests\n"
            "  --filter=PATTERN      run tests whose suite/name matches "
            "(fnmatch glob)\n"
            "  --verbose[=N]         also print passing tests and "
            "cr_log_info\n"
            "  --timeout=SECONDS     for tests with no timeout of their own\n"
            "  -f, --fail-fast       stop after the first failure\n"
            "  --always-succeed      exit 0 even if tests fail\n"
            "  accepted and ignored: -j/--jobs N, -q/--quiet, --color=, "
            "--ascii, -S/--short-filename, --full-stats, --ignore-warnings, "
            "--encoding=\n",
            argv0);
}

int main(int argc, char **argv)
{
    enum { FILTER = 256, VERBOSE, TIMEOUT, ALWAYS, IGNORED, IGNORED_ARG };
    static const struct option longopts[] = {
        {"list", no_argument, NULL, 'l'},
        {"filter", required_argument, NULL, FILTER},
        {"verbose", optional_argument, NULL, VERBOSE},
        {"timeout", required_argument, NULL, TIMEOUT},
        {"fail-fast", no_argument, NULL, 'f'},
        {"always-succeed", no_argument, NULL, ALWAYS},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'v'},
        {"jobs", required_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},
        {"short-filename", no_argument, NULL, 'S'},
        {"ascii", no_argument, NULL, IGNORED},
        {"full-stats", no_argument, NULL, IGNORED},
        {"ignore-warnings", no_argument, NULL, IGNORED},
        {"color", required_argument, NULL, IGNORED_ARG},
        {"encoding", required_argument, NULL, IGNORED_ARG},
        {0},
    };
    bool listing = false;
    int c;
    while ((c = getopt_long(argc, argv, "lfhvj:qS", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            listing = true;
            break;
        case FILTER:
            opt.filter = optarg;
            break;
        case VERBOSE:
            opt.verbose = optarg ? atoi(optarg) : 1;
            break;
        case 'f':
            opt.fail_fast = true;
            break;
        case ALWAYS:
            opt.always_succeed = true;
            break;
        case TIMEOUT: {
            char *end;
            opt.timeout = strtod(optarg, &end);
            if (*end || !(opt.timeout >= 0)) {
                fprintf(stderr, "%s: bad --timeout '%s'\n", argv[0], optarg);
                return 2;
            }
            break;
        }
        case 'j':
        case 'q':
        case 'S':
        case IGNORED:
        case IGNORED_ARG:
            break;
        case 'h':
            usage(argv[0], stdout);
            return 0;
        case 'v':
            puts(
                "criterion_tsan: a Criterion 2.4.1 subset for ThreadSanitizer");
            return 0;
        default:
            usage(argv[0], stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0],
                argv[optind]);
        return 2;
    }

    struct plan *v;
    size_t n = collect(&v);
    if (listing) {
        list(v, n);
        free(v);
        return 0;
    }
    struct records *r = malloc(sizeof *r);
    if (!r) {
        perror("criterion_tsan");
        return 2;
    }
    for (size_t i = 0; i < n && !(opt.fail_fast && stats.failed); i++) {
        if (!selected(&v[i]))
            continue;
        if (v[i].disabled) {
            stats.skipped++;
            if (opt.verbose)
                fprintf(stderr, "[SKIP] %s::%s: test is disabled\n",
                        v[i].t->suite, v[i].t->name);
            continue;
        }
        double elapsed = 0;
        r->len = 0;
        r->dropped = false;
        int status = run_child(&v[i], r, &elapsed);
        judge(&v[i], status, r, elapsed);
    }
    free(r);
    free(v);
    fprintf(stderr,
            "[====] Synthesis: Tested: %u | Passing: %u | Failing: %u | "
            "Crashing: %u\n",
            stats.tested, stats.passed, stats.failed, stats.crashed);
    fprintf(stderr, "%u passed, %u failed", stats.passed, stats.failed);
    if (stats.skipped)
        fprintf(stderr, ", %u skipped", stats.skipped);
    fputc('\n', stderr);
    return stats.failed && !opt.always_succeed ? 1 : 0;
}
