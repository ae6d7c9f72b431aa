/* runtime/dump.c: the dump of every live fiber, the signal that asks for
 * one, and the description of a task that the dump and the watchdog print.
 * Entry points: weft_dump, weft_dump_on_signal, weft__task_read,
 * weft__task_describe.
 *
 * Reading tasks that run. The dump walks every descriptor while workers
 * run, spawn and free tasks; nothing is stopped. What it reads:
 *  - the atomics: state (its generation and flags), park, wait_kind,
 *    wait_what, cancel, and each worker's running task;
 *  - four plain fields written once per life by spawn (name, fn,
 *    spawn_site, flags/home), and sp, deadline and index. These race with
 *    their writers by design. Each is an aligned word read with one
 *    relaxed __atomic load, so it is never torn; the worst a race can do is
 *    show a value of the descriptor's previous or next life, or a NULL from
 *    a spawn still filling it in. To catch a life that changed under us,
 *    the reads sit between two reads of the state word, as a seqlock
 *    reader does (Boehm, "Can seqlocks get along with programming language
 *    memory models?", MSPC 2012): if the generation moved, the task is
 *    skipped. ThreadSanitizer is told to ignore these reads (and only
 *    these): they are races we accept, not bugs.
 *  - The pointers read (names, functions, spawn sites) point at string
 *    literals and code, which outlive every task.
 *
 * Must never: write to a task or a worker, block while holding a lock of
 * the scheduler, or read the runtime after weft_stop began freeing it
 * (dump_lock, weft__dump_quiesce). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "sched/sched.h"

#if defined(WEFT_TSAN)
/* ThreadSanitizer's dynamic annotations (compiler-rt, libtsan). */
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
#define RACY_BEGIN() AnnotateIgnoreReadsBegin(__FILE__, __LINE__)
#define RACY_END()   AnnotateIgnoreReadsEnd(__FILE__, __LINE__)
#else
#define RACY_BEGIN() ((void)0)
#define RACY_END()   ((void)0)
#endif
/* One untorn read of a plain word that another thread may be writing. */
#define RACY(lvalue) __atomic_load_n(&(lvalue), __ATOMIC_RELAXED)

/* ---- A task's identity --------------------------------------------------- */

bool weft__task_read(struct weft__task *t, struct weft__task_info *out)
{
    /* Acquire: pairs with the release store of a new generation in
     * runtime/task.c (reset), so the reads below see at least that life's
     * reset values. */
    uint64_t st = atomic_load_explicit(&t->state, memory_order_acquire);
    if (!(st & TASK_LIVE))
        return false;
    RACY_BEGIN();
    out->index = RACY(t->index);
    out->name = RACY(t->name);
    out->fn = RACY(t->fn);
    out->spawn_site = RACY(t->spawn_site);
    out->started = RACY(t->sp) != NULL;
    uint16_t flags = RACY(t->flags);
    out->home = RACY(t->home);
    out->deadline = RACY(t->deadline);
    RACY_END();
    out->pinned = flags & TFLAG_PINNED;
    /* Acquire fence: the reads above happen before the second read of the
     * state word (the seqlock reader's closing check). */
    atomic_thread_fence(memory_order_acquire);
    uint64_t again = atomic_load_explicit(&t->state, memory_order_relaxed);
    if ((again >> 32) != (st >> 32) || !(again & TASK_LIVE))
        return false;
    out->gen = (uint32_t)(again >> 32);
    out->state = again;
    return true;
}

/* The path of the program itself: dladdr names it by argv[0], which a
 * program may have changed (test runners do). */
static char exe_path[512];
static pthread_once_t exe_once = PTHREAD_ONCE_INIT;

static void read_exe_path(void)
{
    ssize_t n = readlink("/proc/self/exe", exe_path, sizeof exe_path - 1);
    exe_path[n > 0 ? n : 0] = 0;
}

static const char *file_of(const char *dli_fname)
{
    if (strcmp(dli_fname, program_invocation_name) == 0) {
        pthread_once(&exe_once, read_exe_path);
        if (exe_path[0])
            dli_fname = exe_path;
    }
    const char *base = strrchr(dli_fname, '/');
    return base ? base + 1 : dli_fname;
}

/* "sym+0x1c" or "sym" from dladdr; "file+0x1234" (for addr2line) when the
 * symbol is not exported; "?" for NULL. */
static void symbolize(void *addr, char *buf, size_t len)
{
    Dl_info info;
    memset(&info, 0, sizeof info);
    if (!addr) {
        snprintf(buf, len, "?");
    } else if (!dladdr(addr, &info)) {
        snprintf(buf, len, "%p", addr);
    } else if (info.dli_sname && info.dli_saddr) {
        uintptr_t off = (uintptr_t)addr - (uintptr_t)info.dli_saddr;
        if (off)
            snprintf(buf, len, "%.96s+0x%" PRIxPTR, info.dli_sname, off);
        else
            snprintf(buf, len, "%.96s", info.dli_sname);
    } else if (info.dli_fname && info.dli_fbase) {
        /* The offset in the file's mapping is what addr2line -e wants. */
        snprintf(buf, len, "%.96s+0x%" PRIxPTR, file_of(info.dli_fname),
                 (uintptr_t)addr - (uintptr_t)info.dli_fbase);
    } else {
        snprintf(buf, len, "%p", addr);
    }
}

void weft__task_describe(const struct weft__task_info *info, char *buf,
                         size_t len)
{
    char fn[128], site[128];
    symbolize((void *)info->fn, fn, sizeof fn);
    symbolize(info->spawn_site, site, sizeof site);
    /* A description longer than buf is cut short: fine for a report. */
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
    int n;
    if (info->name)
        n = snprintf(buf, len,
                 "task %" PRIu32 ".%" PRIu32 " \"%.64s\" (fn %s, "
                 "spawned at %s)",
                 info->index + 1, info->gen, info->name, fn, site);
    else
        n = snprintf(buf, len,
                     "task %" PRIu32 ".%" PRIu32 " (fn %s, spawned at "
                     "%s)",
                     info->index + 1, info->gen, fn, site);
#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif
    (void)n;
}

/* ---- The dump ------------------------------------------------------------ */

/* Held by each dump while it reads the runtime, and once by stop after the
 * runtime is unpublished: a dump either sees no runtime or finishes
 * before the runtime is freed. */
static pthread_mutex_t dump_lock = PTHREAD_MUTEX_INITIALIZER;

void weft__dump_quiesce(void)
{
    pthread_mutex_lock(&dump_lock);
    pthread_mutex_unlock(&dump_lock);
}

struct dump {
    struct weft__runtime *rt;
    FILE *out;
    uint64_t now;
    unsigned listed, running, ready, waiting, finished;
};

static int running_on(struct weft__runtime *rt, struct weft__task *t)
{
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (atomic_load_explicit(&rt->workers[i]->running,
                                 memory_order_relaxed) == t)
            return (int)i;
    return -1;
}

__attribute__((format(printf, 3, 4))) static void append(char *buf, size_t len,
                                                         const char *fmt, ...)
{
    size_t n = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, len - n, fmt, ap);
    va_end(ap);
}

static void dump_task(struct weft__task *t, void *arg)
{
    struct dump *d = arg;
    struct weft__task_info info;
    if (!weft__task_read(t, &info))
        return;
    char state[200];
    int worker;
    if (info.state & TASK_FINISHED) {
        snprintf(state, sizeof state, "finished, not joined");
        d->finished++;
    } else if ((worker = running_on(d->rt, t)) >= 0) {
        snprintf(state, sizeof state, "running on worker %d", worker);
        d->running++;
    } else {
        uint32_t park = atomic_load_explicit(&t->park, memory_order_relaxed);
        uint32_t kind =
            atomic_load_explicit(&t->wait_kind, memory_order_relaxed);
        const char *what =
            atomic_load_explicit(&t->wait_what, memory_order_relaxed);
        if (kind != WAIT_NONE &&
            (park == PARK_PARKING || park == PARK_PARKED)) {
            if (what == weft__blocking_what)
                snprintf(state, sizeof state, "waiting on a blocking call (%s)",
                         weft__blocking_queued(d->rt, t)
                             ? "queued for a pool thread"
                             : "running on a pool thread");
            else
                snprintf(state, sizeof state, "waiting on %.64s",
                         what ? what : "an event");
            d->waiting++;
        } else {
            snprintf(state, sizeof state, "%s",
                     info.started ? "ready" : "ready, not started yet");
            d->ready++;
        }
    }
    bool alive = !(info.state & TASK_FINISHED);
    if (alive && atomic_load_explicit(&t->cancel, memory_order_relaxed))
        append(state, sizeof state, ", cancel requested");
    if (alive && info.deadline != UINT64_MAX) {
        if (info.deadline <= d->now)
            append(state, sizeof state, ", deadline passed");
        else
            append(state, sizeof state, ", deadline in %" PRIu64 " ms",
                   (info.deadline - d->now) / 1000000u);
    }
    if (info.pinned)
        append(state, sizeof state, ", pinned to worker %u",
               (unsigned)info.home);
    char who[320];
    weft__task_describe(&info, who, sizeof who);
    fprintf(d->out, "  %s: %s\n", who, state);
    d->listed++;
}

WEFT_API int weft_dump(FILE *out)
{
    if (!out) {
        weft__misuse("weft_dump", "out is NULL");
        return -EINVAL;
    }
    pthread_mutex_lock(&dump_lock);
    struct weft__runtime *rt = weft__runtime();
    if (!rt) {
        pthread_mutex_unlock(&dump_lock);
        return -ESRCH;
    }
    struct weft__blocking_stats bs;
    weft__blocking_stats(rt, &bs);
    fprintf(out,
            "weft: dump: %u worker%s; blocking pool: %u of %u threads (%u "
            "idle), %u call%s running, %zu queued\n",
            rt->nworkers, rt->nworkers == 1 ? "" : "s", bs.threads,
            bs.max_threads, bs.idle, bs.running, bs.running == 1 ? "" : "s",
            bs.queued);
    struct dump d = {.rt = rt, .out = out, .now = weft_now_ns()};
    weft__task_for_each(rt, dump_task, &d);
    fprintf(out,
            "weft: dump: %u live task%s: %u running, %u ready, %u waiting, "
            "%u finished but not joined\n",
            d.listed, d.listed == 1 ? "" : "s", d.running, d.ready, d.waiting,
            d.finished);
    fflush(out);
    pthread_mutex_unlock(&dump_lock);
    return (int)d.listed;
}

/* ---- Dumping on a signal ------------------------------------------------- */

/* The handler writes a byte into a pipe that a thread of ours reads: 'd'
 * asks for a dump, 'q' (written by weft_dump_on_signal(0)) ends the
 * thread. The pipe is made once and kept for the life of the process, so a
 * handler that runs late never writes into a reused descriptor. */
static pthread_mutex_t signal_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int signal_pipe_w = -1; /* read by the handler */
static int signal_pipe_r = -1;
static int signal_installed;             /* under signal_lock; 0: none */
static struct sigaction signal_previous; /* under signal_lock */
static pthread_t signal_thread;
static bool signal_thread_running; /* under signal_lock */

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    char c = 'd';
    ssize_t n = write(
        atomic_load_explicit(&signal_pipe_w, memory_order_acquire), &c, 1);
    (void)n; /* a full pipe already holds a request */
    errno = saved;
}

static void *signal_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd pfd = {.fd = signal_pipe_r, .events = POLLIN};
        if (poll(&pfd, 1, -1) < 0)
            continue; /* EINTR */
        char buf[64];
        ssize_t n = read(signal_pipe_r, buf, sizeof buf);
        if (n <= 0)
            continue; /* EAGAIN, EINTR */
        if (memchr(buf, 'd', (size_t)n) && weft_dump(stderr) == -ESRCH)
            weft__warn("dump: no runtime is running");
        if (memchr(buf, 'q', (size_t)n))
            return NULL;
    }
}

static bool catchable(int sig)
{
    switch (sig) {
    case SIGKILL:
    case SIGSTOP:
    case SIGSEGV:
    case SIGBUS:
    case SIGFPE:
    case SIGILL:
    case SIGABRT:
    case SIGTRAP:
        return false;
    default:
        return sig > 0 && sig < NSIG;
    }
}

static void stop_signal_thread(void)
{
    char c = 'q';
    ssize_t n = write(
        atomic_load_explicit(&signal_pipe_w, memory_order_relaxed), &c, 1);
    (void)n;
    pthread_join(signal_thread, NULL);
    signal_thread_running = false;
}

WEFT_API int weft_dump_on_signal(int sig)
{
    if (sig != 0 && !catchable(sig)) {
        weft__misuse("weft_dump_on_signal", "not a signal weft may catch");
        return -EINVAL;
    }
    int err = 0;
    pthread_mutex_lock(&signal_lock);
    if (sig == signal_installed)
        goto out;
    if (sig == 0) {
        sigaction(signal_installed, &signal_previous, NULL);
        signal_installed = 0;
        stop_signal_thread();
        goto out;
    }
    if (signal_pipe_r < 0) {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
            err = -errno;
            goto out;
        }
        signal_pipe_r = fds[0];
        /* Release: the handler's acquire load finds the descriptor
         * complete (it is published before any handler is installed). */
        atomic_store_explicit(&signal_pipe_w, fds[1], memory_order_release);
    }
    bool started = false;
    if (!signal_thread_running) {
        char buf[64];
        while (read(signal_pipe_r, buf, sizeof buf) > 0)
            ; /* requests left by a handler that ran after a removal */
        err = -pthread_create(&signal_thread, NULL, signal_main, NULL);
        if (err)
            goto out;
        pthread_setname_np(signal_thread, "weft-dump");
        signal_thread_running = started = true;
    }
    struct sigaction sa, previous;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, &previous) != 0) {
        err = -errno;
        if (started)
            stop_signal_thread();
        goto out;
    }
    if (signal_installed)
        sigaction(signal_installed, &signal_previous, NULL);
    signal_installed = sig;
    signal_previous = previous;
out:
    pthread_mutex_unlock(&signal_lock);
    return err;
}
