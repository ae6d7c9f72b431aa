/* tests/runtime_dump.c: the dump lists every live task with its state,
 * name, function and spawn site, and a total; it is safe while tasks come
 * and go; the signal asks for one from a thread of weft's own. Linked with
 * ENABLE_EXPORTS so that dladdr names the non-static functions below. */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "sched/sched.h"
#include "support/weft_test.h"

static char *line_of(char *text, const char *id)
{
    /* The line that names the task ("task 3.1 " or "task 3.1:"). */
    size_t n = strlen(id);
    for (char *p = text; (p = strstr(p, id)); p += n)
        if (p[n] == ' ' || p[n] == ':') {
            char *start = p;
            while (start > text && start[-1] != '\n')
                start--;
            char *end = strchr(p, '\n');
            size_t len = end ? (size_t)(end - start) : strlen(start);
            char *line = calloc(1, len + 1);
            memcpy(line, start, len);
            return line;
        }
    return NULL;
}

static void id_of(weft_task_t t, char *buf, size_t len)
{
    uint64_t id = weft_task_id(t);
    snprintf(buf, len, "task %u.%u", (unsigned)(uint32_t)id,
             (unsigned)(id >> 32));
}

static void expect_line(char *text, weft_task_t t, const char *name,
                        const char *fn, const char *state)
{
    char id[32];
    id_of(t, id, sizeof id);
    char *line = line_of(text, id);
    cr_assert_not_null(line, "%s is listed:\n%s", id, text);
    if (name) {
        char quoted[64];
        snprintf(quoted, sizeof quoted, "\"%s\"", name);
        cr_assert_not_null(strstr(line, quoted), "name in: %s", line);
    }
    char fnpart[96];
    snprintf(fnpart, sizeof fnpart, "(fn %s,", fn);
    cr_assert_not_null(strstr(line, fnpart), "function in: %s", line);
    cr_assert_not_null(strstr(line, "spawned at dump_main+0x"),
                       "spawn site in: %s", line);
    cr_assert_not_null(strstr(line, state), "\"%s\" in: %s", state, line);
    free(line);
}

/* ---- Tasks in every state ------------------------------------------------ */

intptr_t dump_sleeper(void *arg);
intptr_t dump_joiner(void *arg);
intptr_t dump_quick(void *arg);
intptr_t dump_gate_caller(void *arg);
intptr_t dump_main(void *arg);

static _Atomic int gate_open;

static intptr_t gate(void *arg)
{
    (void)arg;
    while (!atomic_load(&gate_open)) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    return 1;
}

intptr_t dump_sleeper(void *arg)
{
    (void)arg;
    /* A deadline scope, as weft's deadline API sets one. */
    weft__task_self(weft__worker_self())->deadline =
        weft_now_ns() + 600000000000ull;
    weft_sleep_ms(100000); /* until cancelled */
    return 0;
}

intptr_t dump_joiner(void *arg)
{
    weft_task_t *t = arg;
    return weft_join(*t);
}

intptr_t dump_quick(void *arg)
{
    (void)arg;
    return 3;
}

intptr_t dump_gate_caller(void *arg)
{
    (void)arg;
    return weft_run_blocking(gate, NULL);
}

static bool finished(weft_task_t t)
{
    struct weft__runtime *rt = weft__runtime();
    struct weft__task *d = weft__task_lookup(rt, weft_task_id(t));
    return atomic_load(&d->state) & TASK_FINISHED;
}

static bool waiting(weft_task_t t)
{
    struct weft__runtime *rt = weft__runtime();
    struct weft__task *d = weft__task_lookup(rt, weft_task_id(t));
    return atomic_load(&d->park) == PARK_PARKED;
}

intptr_t dump_main(void *arg)
{
    (void)arg;
    atomic_store(&gate_open, 0);
    weft_task_t sleeper, joiner, quick, running_call, queued_call, pinned,
        fresh;
    weft_spawn_opts_t o = {.name = "sleeper"};
    cr_assert_eq(weft_spawn_ex(&sleeper, dump_sleeper, NULL, &o), 0);
    o.name = "joiner";
    cr_assert_eq(weft_spawn_ex(&joiner, dump_joiner, &sleeper, &o), 0);
    o.name = "quick";
    cr_assert_eq(weft_spawn_ex(&quick, dump_quick, NULL, &o), 0);
    o.name = "in-pool";
    cr_assert_eq(weft_spawn_ex(&running_call, dump_gate_caller, NULL, &o), 0);
    o.name = "in-queue";
    cr_assert_eq(weft_spawn_ex(&queued_call, dump_gate_caller, NULL, &o), 0);
    o = (weft_spawn_opts_t){.name = "pinned", .flags = WEFT_SPAWN_PINNED};
    cr_assert_eq(weft_spawn_ex(&pinned, dump_sleeper, NULL, &o), 0);
    /* Let them all reach their waits. */
    struct weft__blocking_stats bs;
    do {
        weft_sleep_ms(2);
        weft__blocking_stats(weft__runtime(), &bs);
    } while (bs.running != 1 || bs.queued != 1 || !finished(quick) ||
             !waiting(sleeper) || !waiting(joiner) || !waiting(pinned));
    /* The running call's task is cancelled: the call goes on, and the
     * request stays pending. */
    struct weft__runtime *rt = weft__runtime();
    weft__task_cancel(rt, weft__task_lookup(rt, weft_task_id(running_call)));
    /* Spawned last, with one worker busy running us: not started yet. */
    cr_assert_eq(weft_spawn(&fresh, dump_quick, NULL), 0);

    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    cr_assert_not_null(out);
    int listed = weft_dump(out);
    fclose(out);
    fprintf(stderr, "%s", text); /* in the test's log */

    cr_assert_eq(listed, 8, "main and the seven it spawned:\n%s", text);
    expect_line(text, sleeper, "sleeper", "dump_sleeper", "waiting on sleep");
    expect_line(text, sleeper, NULL, "dump_sleeper", ", deadline in ");
    expect_line(text, joiner, "joiner", "dump_joiner", "waiting on join");
    expect_line(text, quick, "quick", "dump_quick", "finished, not joined");
    expect_line(text, running_call, "in-pool", "dump_gate_caller",
                "waiting on a blocking call (running on a pool thread), "
                "cancel requested");
    expect_line(text, queued_call, "in-queue", "dump_gate_caller",
                "waiting on a blocking call (queued for a pool thread)");
    expect_line(text, pinned, "pinned", "dump_sleeper", ", pinned to worker 0");
    expect_line(text, fresh, NULL, "dump_quick", "ready, not started yet");
    char id[32];
    id_of(weft_self(), id, sizeof id);
    char *self = line_of(text, id);
    cr_assert_not_null(self, "%s", text);
    cr_assert_not_null(strstr(self, "(fn dump_main, spawned at weft_block_on"),
                       "%s", self);
    cr_assert_not_null(strstr(self, ": running on worker 0"), "%s", self);
    free(self);
    cr_assert_not_null(strstr(text, "weft: dump: 1 worker; blocking pool: "
                                    "1 of 1 threads (0 idle), 1 call "
                                    "running, 1 queued"),
                       "%s", text);
    cr_assert_not_null(strstr(text, "weft: dump: 8 live tasks: 1 running, 1 "
                                    "ready, 5 waiting, 1 finished but not "
                                    "joined"),
                       "%s", text);
    free(text);

    atomic_store(&gate_open, 1);
    cr_assert_eq(weft_join(running_call), 1);
    cr_assert_eq(weft_join(queued_call), 1);
    cr_assert_eq(weft_join(quick), 3);
    cr_assert_eq(weft_join(fresh), 3);
    return 0;
}

Test(dump, lists_every_live_task_with_its_state, .timeout = 60)
{
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 1;
    cfg.blocking_threads = 1;
    /* The sleepers, the joiner and the pinned task are cancelled by stop. */
    cr_assert_eq(run_cfg(&cfg, dump_main, NULL), 0);
}

Test(dump, refuses_bad_arguments, .timeout = 30)
{
    cr_assert_eq(weft_dump(stdout), -ESRCH, "no runtime");
    cr_assert_eq(weft_dump(NULL), -EINVAL);
}

/* ---- Dumping while tasks come and go ------------------------------------- */

static _Atomic int churning;

static intptr_t churn_child(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg * 7919 + 1;
    random_spin(&seed);
    if (test_rand(&seed) % 2)
        weft_yield();
    return 0;
}

static intptr_t churn(void *arg)
{
    (void)arg;
    uint64_t seed = 42;
    while (atomic_load(&churning)) {
        weft_task_t t[16];
        for (uintptr_t i = 0; i < 16; i++) {
            weft_spawn_opts_t o = {.name = (i & 1) ? "odd" : NULL};
            cr_assert_eq(weft_spawn_ex(&t[i], churn_child,
                                       (void *)(test_rand(&seed) + i), &o),
                         0);
        }
        for (int i = 0; i < 16; i++)
            cr_assert_eq(weft_join(t[i]), 0);
        weft_spawn(NULL, churn_child, NULL); /* detached ones too */
    }
    return 0;
}

Test(dump, is_safe_while_tasks_come_and_go, .timeout = 120)
{
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 4;
    cr_assert_eq(weft_start(&cfg), 0);
    atomic_store(&churning, 1);
    weft_task_t t[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_spawn(&t[i], churn, NULL), 0);
    FILE *sink = fopen("/dev/null", "w");
    cr_assert_not_null(sink);
    for (int i = 0; i < SCALED(200) + 20; i++) {
        int n = weft_dump(sink);
        /* At least the three churners; at most every descriptor. */
        cr_assert_geq(n, 3);
    }
    fclose(sink);
    atomic_store(&churning, 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    cr_assert_eq(weft_stop(), 0);
}

/* ---- The signal ---------------------------------------------------------- */

static int saved_stderr = -1, capture_fd = -1;

static void capture_begin(void)
{
    capture_fd = memfd_create("stderr", 0);
    cr_assert_geq(capture_fd, 0);
    saved_stderr = dup(STDERR_FILENO);
    cr_assert_geq(dup2(capture_fd, STDERR_FILENO), 0);
}

/* Wait (up to 10 s) until the captured text holds needle n times. */
static bool captured(const char *needle, unsigned n)
{
    for (int i = 0; i < 1000; i++) {
        off_t len = lseek(capture_fd, 0, SEEK_END);
        char *text = calloc(1, (size_t)len + 1);
        cr_assert_eq(pread(capture_fd, text, (size_t)len, 0), len);
        unsigned found = 0;
        for (const char *p = text; (p = strstr(p, needle)); p++)
            found++;
        free(text);
        if (found >= n)
            return true;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static void capture_end(void)
{
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    close(capture_fd);
}

static intptr_t parked_forever(void *arg)
{
    (void)arg;
    weft_sleep_ms(100000);
    return 0;
}

Test(dump, a_signal_asks_for_a_dump_from_weft_s_thread, .timeout = 60)
{
    cr_assert_eq(weft_dump_on_signal(SIGKILL), -EINVAL);
    cr_assert_eq(weft_dump_on_signal(SIGSEGV), -EINVAL);
    cr_assert_eq(weft_dump_on_signal(-1), -EINVAL);
    cr_assert_eq(weft_dump_on_signal(NSIG), -EINVAL);

    capture_begin();
    cr_assert_eq(weft_dump_on_signal(SIGUSR1), 0);
    cr_assert_eq(weft_dump_on_signal(SIGUSR1), 0, "installing twice is fine");
    kill(getpid(), SIGUSR1);
    cr_assert(captured("dump: no runtime is running", 1));

    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 2;
    cr_assert_eq(weft_start(&cfg), 0);
    weft_task_t t;
    weft_spawn_opts_t o = {.name = "parked-forever"};
    cr_assert_eq(weft_spawn_ex(&t, parked_forever, NULL, &o), 0);
    kill(getpid(), SIGUSR1);
    cr_assert(captured("\"parked-forever\"", 1));
    cr_assert(captured("weft: dump: 1 live task:", 1));

    /* Moved to another signal: the first one's action is restored. */
    cr_assert_eq(weft_dump_on_signal(SIGUSR2), 0);
    struct sigaction sa;
    sigaction(SIGUSR1, NULL, &sa);
    cr_assert_eq(sa.sa_handler, SIG_DFL);
    kill(getpid(), SIGUSR2);
    cr_assert(captured("weft: dump: 1 live task:", 2));

    cr_assert_eq(weft_dump_on_signal(0), 0);
    sigaction(SIGUSR2, NULL, &sa);
    cr_assert_eq(sa.sa_handler, SIG_DFL, "removed: the action is restored");
    cr_assert_eq(weft_dump_on_signal(0), 0, "removing twice is fine");
    capture_end();
    cr_assert_eq(weft_stop(), 0);
}
