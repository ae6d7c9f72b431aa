/* runtime/overflow.c: turning a fiber's stack overflow into a clear report.
 * Entry points: weft__overflow_install (process), weft__overflow_thread_init
 * (each worker thread).
 *
 * A fiber that runs off the bottom of its stack touches its guard zone and
 * takes SIGSEGV. The handler runs on the worker's alternate signal stack
 * (the fiber's own stack is exhausted), recognises a guard hit by address,
 * names the task (id, name, function, where it was spawned) and the stack
 * size, and aborts. Any other SIGSEGV goes to the handler that was there
 * before, or to the default action.
 * Must never: swallow a fault that is not a guard hit, or return into a
 * fiber that overflowed. */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "sched/sched.h"

#define ALTSTACK_SIZE ((size_t)64 * 1024)

static struct sigaction previous;
static bool installed;

static const char *symbol(void *addr, char *buf, size_t len)
{
    /* dladdr is not async-signal-safe, but we abort right after: the worst
     * case is a report without names. */
    Dl_info info;
    if (addr && dladdr(addr, &info) && info.dli_sname) {
        snprintf(buf, len, "%s", info.dli_sname);
    } else {
        snprintf(buf, len, "%p", addr);
    }
    return buf;
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    struct weft__runtime *rt = weft__runtime();
    void *top = rt ? weft__stack_guard_hit(rt, si->si_addr) : NULL;
    if (top) {
        struct weft__worker *w = weft__worker_self();
        struct weft__task *t = weft__task_self(w);
        char msg[512], fn[128], site[128];
        if (t && t->stack == top) {
            uint64_t st = atomic_load_explicit(&t->state, memory_order_relaxed);
            snprintf(msg, sizeof msg,
                     "weft: fatal: stack overflow in task %u.%u (%s, "
                     "function %s, spawned from %s): it used all of its "
                     "%zu-byte stack (fault at %p). Raise "
                     "weft_config_t.stack_size or move large buffers off "
                     "the stack.\n",
                     t->index + 1, (unsigned)(st >> 32),
                     t->name ? t->name : "unnamed",
                     symbol((void *)t->fn, fn, sizeof fn),
                     symbol(t->spawn_site, site, sizeof site),
                     weft__stack_size(rt), si->si_addr);
        } else {
            snprintf(msg, sizeof msg,
                     "weft: fatal: stack overflow into the guard of the "
                     "fiber stack at %p (%zu bytes), fault at %p\n",
                     top, weft__stack_size(rt), si->si_addr);
        }
        ssize_t n = write(STDERR_FILENO, msg, strlen(msg));
        (void)n;
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    /* Not ours. */
    if (previous.sa_flags & SA_SIGINFO) {
        previous.sa_sigaction(sig, si, uc);
        return;
    }
    if (previous.sa_handler == SIG_IGN || previous.sa_handler == SIG_DFL) {
        /* Re-run the faulting instruction with the default action. */
        signal(SIGSEGV, SIG_DFL);
        return;
    }
    previous.sa_handler(sig);
}

int weft__overflow_install(struct weft__runtime *rt)
{
    (void)rt;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &previous) != 0)
        return -errno;
    installed = true;
    return 0;
}

void weft__overflow_uninstall(void)
{
    if (installed) {
        sigaction(SIGSEGV, &previous, NULL);
        installed = false;
    }
}

int weft__overflow_thread_init(void **altstack)
{
    void *p = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    stack_t ss = {.ss_sp = p, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        int err = -errno;
        munmap(p, ALTSTACK_SIZE);
        return err;
    }
    *altstack = p;
    return 0;
}

void weft__overflow_thread_exit(void *altstack)
{
    if (!altstack)
        return;
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(altstack, ALTSTACK_SIZE);
}
