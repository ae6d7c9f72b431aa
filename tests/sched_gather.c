/* tests/sched_gather.c: gather (every result and error, or fail-fast) and
 * wait_any (the first of many tasks and futures, nothing consumed): their
 * results, their refusal of bad input with nothing changed, no task
 * outliving a gather, several watchers on one task, and many of both at
 * once across 16 workers. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "support/weft_test.h"

#define MS 1000000ull
#define HOUR_MS (3600ull * 1000)

static atomic_int running;

static intptr_t sleep_hour(void *arg)
{
    (void)arg;
    return weft_sleep_ms(HOUR_MS);
}

/* Returns arg after a short random sleep; odd args are errors (-arg). */
static intptr_t result_of(void *arg)
{
    intptr_t i = (intptr_t)arg;
    atomic_fetch_add(&running, 1);
    weft_sleep_ns((uint64_t)(i * 7919 % 50) * 1000);
    atomic_fetch_sub(&running, 1);
    return i % 2 ? -i : i;
}

static intptr_t gather_all(void *arg)
{
    (void)arg;
    enum { N = 300 };
    weft_task_t t[N];
    intptr_t r[N];
    for (intptr_t i = 0; i < N; i++)
        cr_assert_eq(weft_spawn(&t[i], result_of, (void *)i), 0);
    cr_assert_eq(weft_gather(t, N, r), 0, "all finished");
    cr_assert_eq(atomic_load(&running), 0, "no task outlives the call");
    for (intptr_t i = 0; i < N; i++) {
        cr_assert_eq(r[i], i % 2 ? -i : i, "result %ld", (long)i);
        cr_assert_eq(weft_join(t[i]), -EINVAL, "every handle is spent");
    }
    /* Without a result array, and with nothing to gather. */
    for (intptr_t i = 0; i < N; i++)
        cr_assert_eq(weft_spawn(&t[i], result_of, (void *)i), 0);
    cr_assert_eq(weft_gather(t, N, NULL), 0);
    cr_assert_eq(weft_gather(NULL, 0, NULL), 0);
    return 0;
}

Test(gather, every_result_and_every_error_in_order, .timeout = 30)
{
    atomic_store(&running, 0);
    cr_assert_eq(run_with(2, gather_all, NULL), 0);
}

static intptr_t gather_bad(void *arg)
{
    (void)arg;
    weft_task_t t[3];
    intptr_t r[3] = {0};
    for (intptr_t i = 0; i < 3; i++)
        cr_assert_eq(weft_spawn(&t[i], result_of, (void *)(2 * i)), 0);
    weft_task_t dup[3] = {t[0], t[1], t[0]};
    cr_assert_eq(weft_gather(dup, 3, r), -EINVAL, "a repeated handle");
    weft_task_t zero[3] = {t[0], WEFT_TASK_NONE, t[1]};
    cr_assert_eq(weft_gather(zero, 3, r), -EINVAL, "the zero handle");
    cr_assert_eq(weft_gather(NULL, 3, r), -EINVAL);
    cr_assert_eq(weft_gather_ex(t, 3, r, 0x10, WEFT_NO_DEADLINE), -EINVAL,
                 "unknown flags");
    weft_task_t me[2] = {t[0], weft_self()};
    cr_assert_eq(weft_gather(me, 2, r), -EINVAL, "the caller itself");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(r[i], 0, "nothing stored");
    /* Nothing changed: every handle still joins. */
    for (intptr_t i = 0; i < 3; i++)
        cr_assert_eq(weft_join(t[i]), 2 * i);
    cr_assert_eq(weft_gather(t, 3, r), -EINVAL, "spent handles");
    return 0;
}

Test(gather, bad_input_changes_nothing, .timeout = 30)
{
    cr_assert_eq(run_with(2, gather_bad, NULL), 0);
    weft_task_t t = WEFT_TASK_NONE;
    cr_assert_eq(weft_gather(&t, 1, NULL), -ESRCH, "no runtime");
}

static intptr_t fail_after(void *arg)
{
    weft_sleep_ms(2);
    return (intptr_t)arg;
}

static intptr_t fail_fast(void *arg)
{
    (void)arg;
    enum { N = 20 };
    weft_task_t t[N];
    intptr_t r[N];
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_spawn(&t[i], i == 13 ? fail_after : sleep_hour,
                                (void *)(intptr_t)-EIO),
                     0);
    cr_assert_eq(weft_gather_ex(t, N, r, WEFT_GATHER_FAIL_FAST,
                                WEFT_NO_DEADLINE),
                 -EIO);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(r[i], i == 13 ? -EIO : -ECANCELED, "task %d", i);
        cr_assert_eq(weft_join(t[i]), -EINVAL);
    }
    /* All succeed: 0, and the results. */
    for (intptr_t i = 0; i < N; i++)
        cr_assert_eq(weft_spawn(&t[i], result_of, (void *)(2 * i)), 0);
    cr_assert_eq(weft_gather_ex(t, N, r, WEFT_GATHER_FAIL_FAST,
                                WEFT_NO_DEADLINE),
                 0);
    for (intptr_t i = 0; i < N; i++)
        cr_assert_eq(r[i], 2 * i);
    /* A task that failed before the call. */
    cr_assert_eq(weft_spawn(&t[0], fail_after, (void *)(intptr_t)-ENOENT), 0);
    cr_assert_eq(weft_spawn(&t[1], sleep_hour, NULL), 0);
    weft_sleep_ms(10);
    cr_assert_eq(weft_gather_ex(t, 2, r, WEFT_GATHER_FAIL_FAST,
                                WEFT_NO_DEADLINE),
                 -ENOENT);
    cr_assert_eq(r[1], -ECANCELED);
    return 0;
}

Test(gather, fail_fast_cancels_the_rest_and_waits_for_them, .timeout = 30)
{
    cr_assert_eq(run_with(2, fail_fast, NULL), 0);
}

static void *plain_gather(void *arg)
{
    (void)arg;
    weft_task_t t[50];
    intptr_t r[50];
    for (intptr_t i = 0; i < 50; i++)
        cr_assert_eq(weft_spawn(&t[i], result_of, (void *)i), 0);
    cr_assert_eq(weft_gather(t, 50, r), 0);
    for (intptr_t i = 0; i < 50; i++)
        cr_assert_eq(r[i], i % 2 ? -i : i);
    for (intptr_t i = 0; i < 50; i++)
        cr_assert_eq(weft_spawn(&t[i], i == 7 ? fail_after : sleep_hour,
                                (void *)(intptr_t)-EPIPE),
                     0);
    cr_assert_eq(weft_gather_ex(t, 50, r, WEFT_GATHER_FAIL_FAST,
                                WEFT_NO_DEADLINE),
                 -EPIPE);
    return NULL;
}

Test(gather, from_plain_threads, .timeout = 30)
{
    cr_assert_eq(weft_start(NULL), 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, plain_gather, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(weft_stop(), 0);
}

/* ---- Many gathers at once, 16 workers on 2 cores ----------------------------- */

#define GATHERERS 8
#define PER SCALED(1000)

static atomic_long leaf_sum;

static intptr_t leaf(void *arg)
{
    intptr_t i = (intptr_t)arg;
    uint64_t seed = (uint64_t)i + 1;
    if (test_rand(&seed) % 3 == 0)
        weft_yield();
    if (i % 97 == 13)
        return -EDOM;
    atomic_fetch_add(&leaf_sum, (long)i);
    return i;
}

static intptr_t gatherer(void *arg)
{
    intptr_t k = (intptr_t)arg;
    weft_task_t *t = malloc(PER * sizeof *t);
    intptr_t *r = malloc(PER * sizeof *r);
    for (int round = 0; round < 3; round++) {
        for (intptr_t i = 0; i < PER; i++)
            cr_assert_eq(weft_spawn(&t[i], leaf, (void *)(k * PER + i)), 0);
        if (round == 2) {
            /* Fail-fast: the leaves never wait (a yield is not a wait), so
             * the cancels reach none of them and each still returns its
             * own result. */
            bool any_fails = false;
            for (intptr_t j = k * PER; j < (k + 1) * PER; j++)
                any_fails |= j % 97 == 13;
            int e = weft_gather_ex(t, PER, r, WEFT_GATHER_FAIL_FAST,
                                   WEFT_NO_DEADLINE);
            cr_assert_eq(e, any_fails ? -EDOM : 0);
            for (intptr_t i = 0; i < PER; i++) {
                intptr_t j = k * PER + i;
                cr_assert_eq(r[i], j % 97 == 13 ? -EDOM : j);
            }
        } else {
            cr_assert_eq(weft_gather(t, PER, r), 0);
            for (intptr_t i = 0; i < PER; i++) {
                intptr_t j = k * PER + i;
                cr_assert_eq(r[i], j % 97 == 13 ? -EDOM : j);
            }
        }
    }
    free(t);
    free(r);
    return 0;
}

static intptr_t many_gathers(void *arg)
{
    (void)arg;
    weft_task_t g[GATHERERS];
    for (intptr_t k = 0; k < GATHERERS; k++)
        cr_assert_eq(weft_spawn(&g[k], gatherer, (void *)k), 0);
    intptr_t r[GATHERERS];
    cr_assert_eq(weft_gather(g, GATHERERS, r), 0);
    for (int k = 0; k < GATHERERS; k++)
        cr_assert_eq(r[k], 0);
    return 0;
}

Test(gather, many_gathers_sixteen_workers, .timeout = 120)
{
    atomic_store(&leaf_sum, 0);
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 16;
    cfg.pin = WEFT_PIN_OFF;
    cfg.shuffle_seed = 31;
    cr_assert_eq(run_cfg(&cfg, many_gathers, NULL), 0);
    /* Every round ran every leaf exactly once. */
    long expect = 0;
    for (long j = 0; j < (long)GATHERERS * PER; j++)
        if (j % 97 != 13)
            expect += 3 * j;
    cr_assert_eq(atomic_load(&leaf_sum), expect);
}

/* ---- wait_any -------------------------------------------------------------------- */

static intptr_t after_ms(void *arg)
{
    weft_sleep_ms((uint64_t)(intptr_t)arg);
    return (intptr_t)arg;
}

static intptr_t first_of(void *arg)
{
    (void)arg;
    weft_task_t t[4];
    cr_assert_eq(weft_spawn(&t[0], sleep_hour, NULL), 0);
    cr_assert_eq(weft_spawn(&t[1], sleep_hour, NULL), 0);
    cr_assert_eq(weft_spawn(&t[2], after_ms, (void *)(intptr_t)3), 0);
    cr_assert_eq(weft_spawn(&t[3], sleep_hour, NULL), 0);
    cr_assert_eq(weft_wait_any_task(t, 4, WEFT_NO_DEADLINE), 2);
    cr_assert_eq(weft_wait_any_task(t, 4, WEFT_NO_DEADLINE), 2,
                 "nothing consumed: still done");
    cr_assert_eq(weft_join(t[2]), 3, "the handle is still the caller's");
    cr_assert_eq(weft_wait_any_task(t, 4, WEFT_NO_DEADLINE), -EINVAL,
                 "a spent handle");
    for (int i = 0; i < 4; i += 1 + (i == 1))
        cr_assert_eq(weft_cancel(t[i]), 0);
    /* Several done: the lowest index. A deadline already past turns
     * wait_any into a poll. */
    weft_task_t rest[3] = {t[0], t[1], t[3]};
    for (int i = 0; i < 3; i++)
        while (weft_wait_any_task(&rest[i], 1, 0) != 0)
            weft_sleep_ms(1);
    cr_assert_eq(weft_wait_any_task(rest, 3, WEFT_NO_DEADLINE), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_join(rest[i]), -ECANCELED);
    return 0;
}

Test(wait_any, returns_the_first_done_and_consumes_nothing, .timeout = 30)
{
    cr_assert_eq(run_with(2, first_of, NULL), 0);
}

static void *late_set(void *arg)
{
    struct timespec ts = {0, 3000000};
    nanosleep(&ts, NULL);
    weft_future_set(arg, 77);
    return NULL;
}

static intptr_t mixed(void *arg)
{
    (void)arg;
    weft_future_t *f, *g;
    cr_assert_eq(weft_future_create(&f), 0);
    cr_assert_eq(weft_future_create(&g), 0);
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, sleep_hour, NULL), 0);
    weft_waitable_t items[3] = {weft_waitable_task(t), weft_waitable_future(f),
                                weft_waitable_future(g)};
    pthread_t th;
    pthread_create(&th, NULL, late_set, g);
    cr_assert_eq(weft_wait_any(items, 3, WEFT_NO_DEADLINE), 2,
                 "the future a foreign thread set");
    pthread_join(th, NULL);
    cr_assert_eq(weft_future_destroy(f), 0, "registrations withdrawn");
    cr_assert_eq(weft_future_destroy(g), 0);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_wait_any(items, 1, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_join(t), -ECANCELED);
    return 0;
}

Test(wait_any, tasks_and_futures_together, .timeout = 30)
{
    cr_assert_eq(run_with(2, mixed, NULL), 0);
}

static intptr_t wait_any_bad(void *arg)
{
    (void)arg;
    weft_task_t t, d;
    cr_assert_eq(weft_spawn(&t, sleep_hour, NULL), 0);
    cr_assert_eq(weft_spawn(&d, sleep_hour, NULL), 0);
    cr_assert_eq(weft_detach(d), 0);
    weft_waitable_t ok = weft_waitable_task(t);
    cr_assert_eq(weft_wait_any(&ok, 0, WEFT_NO_DEADLINE), -EINVAL, "n == 0");
    cr_assert_eq(weft_wait_any(NULL, 1, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_wait_any(&ok, (size_t)INT32_MAX + 1, WEFT_NO_DEADLINE),
                 -EINVAL);
    weft_waitable_t bad[2] = {ok, {.kind = 42}};
    cr_assert_eq(weft_wait_any(bad, 2, WEFT_NO_DEADLINE), -EINVAL, "kind");
    bad[1] = weft_waitable_task(WEFT_TASK_NONE);
    cr_assert_eq(weft_wait_any(bad, 2, WEFT_NO_DEADLINE), -EINVAL, "zero");
    bad[1] = weft_waitable_task(d);
    cr_assert_eq(weft_wait_any(bad, 2, WEFT_NO_DEADLINE), -EINVAL, "detached");
    bad[1] = weft_waitable_future(NULL);
    cr_assert_eq(weft_wait_any(bad, 2, WEFT_NO_DEADLINE), -EINVAL, "future");
    cr_assert_eq(weft_wait_any_task(NULL, 1, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_cancel(d), 0);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t), -ECANCELED, "nothing changed");
    return 0;
}

Test(wait_any, bad_input_is_refused, .timeout = 30)
{
    cr_assert_eq(run_with(2, wait_any_bad, NULL), 0);
}

/* Many fibers watch the same tasks at once while another joins them: every
 * watcher sees a finished one, and joins are unaffected. */

#define WATCHERS 24
#define WROUNDS SCALED(1000)

static weft_task_t shared[4];
static atomic_int watch_round_done;

static intptr_t short_task(void *arg)
{
    uint64_t seed = (uint64_t)(intptr_t)arg;
    weft_sleep_ns(test_rand(&seed) % 30000);
    return (intptr_t)arg;
}

static intptr_t watcher(void *arg)
{
    (void)arg;
    int idx = weft_wait_any_task(shared, 4, WEFT_NO_DEADLINE);
    cr_assert(idx >= 0 && idx < 4, "wait_any: %d", idx);
    atomic_fetch_add(&watch_round_done, 1);
    return idx;
}

static intptr_t many_watchers(void *arg)
{
    (void)arg;
    for (int round = 0; round < WROUNDS; round++) {
        for (int i = 0; i < 4; i++)
            cr_assert_eq(weft_spawn(&shared[i], short_task,
                                    (void *)(intptr_t)(round * 4 + i + 1)),
                         0);
        weft_task_t w[WATCHERS];
        for (int i = 0; i < WATCHERS; i++)
            cr_assert_eq(weft_spawn(&w[i], watcher, NULL), 0);
        /* The watchers may still be registering while the tasks end and
         * are joined: join only after every watcher returned. */
        intptr_t r[WATCHERS];
        cr_assert_eq(weft_gather(w, WATCHERS, r), 0);
        for (int i = 0; i < 4; i++)
            cr_assert_eq(weft_join(shared[i]), round * 4 + i + 1);
    }
    cr_assert_eq(atomic_load(&watch_round_done), WROUNDS * WATCHERS);
    return 0;
}

Test(wait_any, many_watchers_on_the_same_tasks_sixteen_workers,
     .timeout = 120)
{
    atomic_store(&watch_round_done, 0);
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 16;
    cfg.pin = WEFT_PIN_OFF;
    cfg.shuffle_seed = 8;
    cr_assert_eq(run_cfg(&cfg, many_watchers, NULL), 0);
}

/* A wait_any racing a join of the same task by another fiber. */

struct pair {
    weft_task_t t;
    atomic_int go;
};

static intptr_t joiner(void *arg)
{
    struct pair *p = arg;
    while (!atomic_load(&p->go))
        weft_yield();
    return weft_join(p->t);
}

static intptr_t join_and_watch(void *arg)
{
    (void)arg;
    for (int i = 0; i < SCALED(2000); i++) {
        struct pair p;
        atomic_init(&p.go, 0);
        cr_assert_eq(weft_spawn(&p.t, short_task, (void *)(intptr_t)(i + 1)),
                     0);
        weft_task_t j;
        cr_assert_eq(weft_spawn(&j, joiner, &p), 0);
        atomic_store(&p.go, 1);
        int r = weft_wait_any_task(&p.t, 1, WEFT_NO_DEADLINE);
        /* Done (0), or already joined and freed by the joiner (-EINVAL):
         * never anything else, never a hang. */
        cr_assert(r == 0 || r == -EINVAL, "wait_any: %d", r);
        cr_assert_eq(weft_join(j), i + 1);
    }
    return 0;
}

Test(wait_any, racing_a_join_of_the_same_task, .timeout = 120)
{
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 3;
    cfg.shuffle_seed = 77;
    cr_assert_eq(run_cfg(&cfg, join_and_watch, NULL), 0);
}
