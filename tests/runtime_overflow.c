/* tests/runtime_overflow.c: a fiber that overflows its stack is reported by
 * name with its stack size, and the process aborts: no silent corruption.
 * The overflow runs in a child process whose stderr we read. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/weft_test.h"

static volatile int sink;
static volatile intptr_t null_address;

/* Recursion the compiler cannot see the end of (it depends on sink). */
static int recurse(int depth)
{
    volatile char frame[512];
    frame[0] = (char)depth;
    sink += frame[0];
    if (sink == -12345)
        return 0;
    return recurse(depth + 1) + frame[1];
}

static intptr_t overflow(void *arg)
{
    (void)arg;
    return recurse(0);
}

static intptr_t spawn_overflow(void *arg)
{
    (void)arg;
    weft_task_t t;
    weft_spawn_opts_t opts = {.name = "deep-recursion"};
    weft_spawn_ex(&t, overflow, NULL, &opts);
    return weft_join(t);
}

#if defined(__SANITIZE_ADDRESS__)
/* Let weft's SIGSEGV handler run under ASan too: it is what is tested. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allow_user_segv_handler=1";
}
#endif

Test(overflow, stack_overflow_names_the_fiber_and_aborts, .timeout = 60)
{
    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(pipefd[1], STDERR_FILENO);
        close(pipefd[0]);
        weft_config_t cfg;
        weft_config_init(&cfg);
        cfg.workers = 2;
        cfg.stack_size = 32 * 1024;
        intptr_t r;
        weft_run(&cfg, spawn_overflow, NULL, &r);
        _exit(0); /* not reached: the overflow aborts */
    }
    close(pipefd[1]);
    char buf[4096];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof buf - 1 &&
           (n = read(pipefd[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = 0;
    close(pipefd[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status), "the child must die, not exit: %s", buf);
    cr_assert_eq(WTERMSIG(status), SIGABRT, "%s", buf);
    cr_assert_not_null(strstr(buf, "stack overflow in task"), "%s", buf);
    cr_assert_not_null(strstr(buf, "deep-recursion"), "%s", buf);
    cr_assert_not_null(strstr(buf, "overflow"), "%s", buf);
    /* The report names the usable size (the 32 KiB asked for, rounded up
     * to whole pages). */
    cr_assert_not_null(strstr(buf, "-byte stack"), "%s", buf);
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
/* An ordinary segfault must not be mistaken for an overflow. */
static intptr_t null_write(void *arg)
{
    (void)arg;
    *(volatile int *)null_address = 1;
    return 0;
}

/* (Sanitizers turn a SIGSEGV into their own report and exit instead.) */
Test(overflow, other_faults_keep_their_default_action, .timeout = 60,
     .signal = SIGSEGV)
{
    null_address = 0;
    intptr_t r;
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 1;
    weft_run(&cfg, null_write, NULL, &r);
}
#endif
