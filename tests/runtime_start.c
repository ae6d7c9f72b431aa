/* tests/runtime_start.c: starting a runtime: configuration checks, the
 * environment, io_uring being unusable, and running out of memory. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "support/weft_test.h"

static intptr_t nothing(void *arg)
{
    (void)arg;
    return 5;
}

static void expect_start(const weft_config_t *cfg, int expect)
{
    int err = weft_start(cfg);
    cr_assert_eq(err, expect, "weft_start returned %d, expected %d", err,
                 expect);
    if (err == 0)
        cr_assert_eq(weft_stop(), 0);
    else
        cr_assert_eq(weft_worker_count(), -ESRCH, "nothing was left running");
}

Test(start, bad_configurations_are_refused, .timeout = 30)
{
    weft_config_t c;
    weft_config_init(&c);
    c.workers = WEFT_MAX_WORKERS + 1;
    expect_start(&c, -EINVAL);
    c.workers = 100000000;
    expect_start(&c, -EINVAL);

    weft_config_init(&c);
    c.stack_size = WEFT_STACK_MIN - 1;
    expect_start(&c, -EINVAL);
    c.stack_size = 100;
    expect_start(&c, -EINVAL);
    c.stack_size = WEFT_STACK_MAX + 1;
    expect_start(&c, -EINVAL);

    weft_config_init(&c);
    c.ring_entries = 100; /* not a power of two */
    expect_start(&c, -EINVAL);
    c.ring_entries = 4;
    expect_start(&c, -EINVAL);
    c.ring_entries = 65536;
    expect_start(&c, -EINVAL);

    weft_config_init(&c);
    c.pin = 7;
    expect_start(&c, -EINVAL);

    weft_config_init(&c);
    c.reserved_[3] = 1;
    expect_start(&c, -EINVAL);

    weft_config_init(&c);
    c.topology = "pack:banana";
    expect_start(&c, -EINVAL);
    c.topology = "/nonexistent/topology.xml";
    expect_start(&c, -ENOENT);

    intptr_t r = 0;
    cr_assert_eq(weft_run(NULL, NULL, NULL, &r), -EINVAL);
}

Test(start, good_edge_configurations_start, .timeout = 30)
{
    weft_config_t c;
    weft_config_init(&c);
    c.workers = 1;
    c.stack_size = WEFT_STACK_MIN;
    c.ring_entries = 8;
    c.pin = WEFT_PIN_OFF;
    cr_assert_eq(run_cfg(&c, nothing, NULL), 5);
    c.workers = 3;
    c.stack_size = 1 << 20;
    c.ring_entries = 4096;
    c.pin = WEFT_PIN_DEFAULT;
    cr_assert_eq(run_cfg(&c, nothing, NULL), 5);
}

Test(start, environment_overrides_and_is_checked, .timeout = 30)
{
    setenv("WEFT_WORKERS", "3", 1);
    cr_assert_eq(weft_start(NULL), 0);
    cr_assert_eq(weft_worker_count(), 3);
    cr_assert_eq(weft_stop(), 0);

    setenv("WEFT_WORKERS", "abc", 1);
    expect_start(NULL, -EINVAL);
    setenv("WEFT_WORKERS", "0", 1);
    expect_start(NULL, -EINVAL);
    setenv("WEFT_WORKERS", "-2", 1);
    expect_start(NULL, -EINVAL);
    unsetenv("WEFT_WORKERS");

    setenv("WEFT_PIN", "2", 1);
    expect_start(NULL, -EINVAL);
    setenv("WEFT_PIN", "0", 1);
    expect_start(NULL, 0);
    unsetenv("WEFT_PIN");

    setenv("WEFT_SHUFFLE", "x1", 1);
    expect_start(NULL, -EINVAL);
    setenv("WEFT_SHUFFLE", "17", 1);
    expect_start(NULL, 0);
    unsetenv("WEFT_SHUFFLE");
}

/* Forbid io_uring_setup in this (forked) test process with a seccomp
 * filter, as a container's default profile does. */
static void block_io_uring(int err)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0],
                              .filter = filter};
    cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    cr_assert_eq(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog), 0);
}

Test(start, io_uring_blocked_by_seccomp_enosys_is_reported, .timeout = 30)
{
    block_io_uring(ENOSYS);
    intptr_t r = 0;
    cr_assert_eq(weft_run(NULL, nothing, NULL, &r), -ENOSYS);
    cr_assert_eq(r, 0, "main never ran");
    cr_assert_eq(weft_worker_count(), -ESRCH);
    /* And it stays a clean refusal when asked again. */
    cr_assert_eq(weft_start(NULL), -ENOSYS);
}

Test(start, io_uring_blocked_by_seccomp_eperm_is_reported, .timeout = 30)
{
    block_io_uring(EPERM);
    cr_assert_eq(weft_start(NULL), -EPERM);
    cr_assert_eq(weft_stop(), -ESRCH);
}

/* ---- Out of memory for stacks ---------------------------------------------- */

#if WEFT_TEST_SCALE == 1
static intptr_t hold(void *arg)
{
    (void)arg;
    weft_sleep_ms(3600 * 1000); /* until shutdown cancels it */
    return 0;
}

static intptr_t exhaust(void *arg)
{
    (void)arg;
    /* Let the address space grow by 40 MiB at most from here: less than one
     * chunk of stacks. Spawn tasks that keep their stacks until a spawn is
     * refused. */
    struct rlimit old, lim;
    cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    cr_assert_eq(fscanf(f, "%lu", &pages), 1);
    fclose(f);
    lim = old;
    lim.rlim_cur = pages * 4096ul + (40ul << 20);
    cr_assert_eq(setrlimit(RLIMIT_AS, &lim), 0);

    int err = 0;
    long spawned = 0;
    for (long i = 0; i < 1000000 && !err; i++) {
        err = weft_spawn(NULL, hold, NULL);
        if (!err)
            spawned++;
        if (i % 64 == 0)
            weft_yield(); /* let them run and take their stacks */
    }
    cr_assert_eq(err, -ENOMEM, "spawn reports the exhaustion");
    cr_assert_gt(spawned, 0);
    /* With the limit lifted, the runtime carries on. */
    cr_assert_eq(setrlimit(RLIMIT_AS, &old), 0);
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, nothing, NULL), 0);
    cr_assert_eq(weft_join(t), 5);
    return spawned;
}
#endif

Test(start, running_out_of_stacks_fails_spawn_cleanly, .timeout = 60)
{
#if WEFT_TEST_SCALE > 1
    cr_skip_test("sanitizers reserve terabytes of address space: "
                 "RLIMIT_AS cannot model exhaustion under them");
#else
    intptr_t spawned = run_with(2, exhaust, NULL);
    cr_assert_gt(spawned, 0);
#endif
}
