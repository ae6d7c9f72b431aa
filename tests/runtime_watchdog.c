/* tests/runtime_watchdog.c: the watchdog reports a fiber that holds its
 * worker past the threshold, once, by id, name, function and spawn site,
 * and says when it lets go; it stays silent about fibers that yield, sleep
 * or wait, and when it is off. stderr is captured into a memfd.
 * The binary is linked with ENABLE_EXPORTS so that dladdr names the
 * non-static functions below. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "support/weft_test.h"

/* ---- Capturing stderr ---------------------------------------------------- */

static int saved_stderr = -1, capture_fd = -1;

static void capture_begin(void)
{
    capture_fd = memfd_create("stderr", 0);
    cr_assert_geq(capture_fd, 0);
    saved_stderr = dup(STDERR_FILENO);
    cr_assert_geq(saved_stderr, 0);
    cr_assert_geq(dup2(capture_fd, STDERR_FILENO), 0);
}

/* Stop capturing; the text captured (caller frees). */
static char *capture_end(void)
{
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    off_t len = lseek(capture_fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)len + 1);
    cr_assert_not_null(text);
    cr_assert_eq(pread(capture_fd, text, (size_t)len, 0), len);
    close(capture_fd);
    /* Show it in the test's log too. */
    fprintf(stderr, "%s", text);
    return text;
}

static unsigned count(const char *text, const char *needle)
{
    unsigned n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static weft_config_t watch_cfg(unsigned workers, uint64_t threshold_ns)
{
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = workers;
    cfg.watchdog_ns = threshold_ns;
    return cfg;
}

/* ---- A fiber that spins -------------------------------------------------- */

/* Non-static, so that dladdr can name them in the report. */
intptr_t watchdog_spinner(void *arg);
intptr_t watchdog_spin_main(void *arg);

struct spin {
    uint64_t ns; /* how long to hold the worker */
    char id[32]; /* "task <index>.<gen>" of the spinner */
};

intptr_t watchdog_spinner(void *arg)
{
    const struct spin *s = arg;
    uint64_t until = weft_now_ns() + s->ns;
    while (weft_now_ns() < until)
        ; /* holds its worker: no yield, no wait */
    return 1;
}

intptr_t watchdog_spin_main(void *arg)
{
    struct spin *s = arg;
    weft_task_t t;
    weft_spawn_opts_t opts = {.name = "spinner"};
    cr_assert_eq(weft_spawn_ex(&t, watchdog_spinner, s, &opts), 0);
    uint64_t id = weft_task_id(t);
    snprintf(s->id, sizeof s->id, "task %u.%u", (unsigned)(uint32_t)id,
             (unsigned)(id >> 32));
    return weft_join(t);
}

Test(watchdog, reports_a_fiber_that_spins_once_with_its_identity, .timeout = 60)
{
    for (unsigned workers = 1; workers <= 2; workers++) {
        struct spin s = {.ns = 400000000}; /* 400 ms against 50 ms */
        weft_config_t cfg = watch_cfg(workers, 50000000);
        capture_begin();
        intptr_t r = run_cfg(&cfg, watchdog_spin_main, &s);
        char *text = capture_end();
        cr_assert_eq(r, 1);
        char held[96];
        snprintf(held, sizeof held, "watchdog: %s \"spinner\"", s.id);
        cr_assert_eq(count(text, held), 1,
                     "one report per stall, naming the task: %s", text);
        cr_assert_eq(count(text, "has held worker"), 1, "%s", text);
        cr_assert_not_null(strstr(text, "fn watchdog_spinner,"),
                           "the function, by name: %s", text);
        cr_assert_not_null(strstr(text, "spawned at watchdog_spin_main+0x"),
                           "where it was spawned: %s", text);
        cr_assert_not_null(strstr(text, "threshold 50 ms"), "%s", text);
        char back[96];
        snprintf(back, sizeof back, "watchdog: %s gave worker", s.id);
        cr_assert_eq(count(text, back), 1, "and when it let go: %s", text);
        free(text);
    }
}

/* Two spinners in a row on one worker: two stalls, two reports. */
static intptr_t two_stalls(void *arg)
{
    struct spin *s = arg;
    intptr_t a = watchdog_spin_main(s);
    weft_sleep_ms(30);
    return a + watchdog_spin_main(s);
}

Test(watchdog, reports_each_stall, .timeout = 60)
{
    struct spin s = {.ns = 250000000};
    weft_config_t cfg = watch_cfg(1, 50000000);
    capture_begin();
    intptr_t r = run_cfg(&cfg, two_stalls, &s);
    char *text = capture_end();
    cr_assert_eq(r, 2);
    cr_assert_eq(count(text, "has held worker 0"), 2, "%s", text);
    cr_assert_eq(count(text, "gave worker 0 back"), 2, "%s", text);
    free(text);
}

Test(watchdog, is_silent_when_off, .timeout = 60)
{
    struct spin s = {.ns = 300000000};
    weft_config_t cfg = watch_cfg(1, UINT64_MAX);
    capture_begin();
    intptr_t r = run_cfg(&cfg, watchdog_spin_main, &s);
    char *text = capture_end();
    cr_assert_eq(r, 1);
    cr_assert_null(strstr(text, "watchdog"), "%s", text);
    free(text);
}

/* ---- Fibers that give their worker up ------------------------------------ */

/* Busy for 5 ms at a time between yields, for 1.5 s in all: far longer
 * than the threshold, but never holding the worker near it. Alone on its
 * worker, a yield finds nothing else to run and returns at once, with no
 * switch (only one in 61 passes through the loop): it must still count,
 * or 61 slices would look like a 305 ms stall. */
static intptr_t yielder(void *arg)
{
    (void)arg;
    uint64_t end = weft_now_ns() + 1500000000ull;
    while (weft_now_ns() < end) {
        uint64_t slice = weft_now_ns() + 5000000;
        while (weft_now_ns() < slice)
            ;
        weft_yield();
    }
    return 1;
}

static intptr_t sleepy(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++)
        weft_sleep_ms(25);
    return 1;
}

/* One yielder per worker, and a sleeper. */
static intptr_t quiet_main(void *arg)
{
    (void)arg;
    int workers = weft_worker_count();
    weft_task_t t[3];
    cr_assert_eq(weft_spawn(&t[0], sleepy, NULL), 0);
    for (int i = 1; i <= workers; i++)
        cr_assert_eq(weft_spawn(&t[i], yielder, NULL), 0);
    intptr_t sum = 0;
    for (int i = 0; i <= workers; i++)
        sum += weft_join(t[i]);
    weft_sleep_ms(300); /* idle workers are not stalls either */
    return sum;
}

Test(watchdog, is_silent_about_fibers_that_yield_sleep_or_wait, .timeout = 60)
{
    /* The threshold leaves room for a loaded machine that does not run a
     * worker thread for a while: that would look like a stall. */
    for (unsigned workers = 1; workers <= 2; workers++) {
        weft_config_t cfg = watch_cfg(workers, 250000000);
        capture_begin();
        intptr_t r = run_cfg(&cfg, quiet_main, NULL);
        char *text = capture_end();
        cr_assert_eq(r, 1 + workers);
        cr_assert_null(strstr(text, "watchdog"), "%s", text);
        free(text);
    }
}
