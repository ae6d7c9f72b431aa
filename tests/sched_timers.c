/* tests/sched_timers.c: sleeping tasks: never early, in deadline order,
 * many at once, and cancelled at shutdown. No test asserts a wall-clock
 * upper bound: the machine is shared. */
#include <errno.h>
#include <stdatomic.h>

#include "support/weft_test.h"

static atomic_int early;
static atomic_int order_next;

struct nap {
    uint64_t ns;       /* sleep this long (random_naps) */
    uint64_t deadline; /* or until this absolute time (ordered_naps) */
    int rank;          /* order of waking */
};

static intptr_t nap(void *arg)
{
    struct nap *n = arg;
    uint64_t deadline = n->deadline ? n->deadline : weft_now_ns() + n->ns;
    int r = weft_sleep_until_ns(deadline);
    if (weft_now_ns() < deadline)
        atomic_fetch_add(&early, 1);
    n->rank = atomic_fetch_add(&order_next, 1);
    return r;
}

static intptr_t random_naps(void *arg)
{
    (void)arg;
    enum { N = 500 };
    static struct nap naps[N];
    weft_task_t t[N];
    uint64_t seed = 42;
    for (int i = 0; i < N; i++) {
        naps[i].ns = test_rand(&seed) % 20000000; /* up to 20 ms */
        naps[i].deadline = 0;
        cr_assert_eq(weft_spawn(&t[i], nap, &naps[i]), 0);
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    return 0;
}

Test(timers, sleeps_never_end_early, .timeout = 60)
{
    atomic_store(&early, 0);
    for (unsigned workers = 1; workers <= 3; workers++)
        cr_assert_eq(run_with(workers, random_naps, NULL), 0);
    cr_assert_eq(atomic_load(&early), 0);
}

static intptr_t ordered_naps(void *arg)
{
    (void)arg;
    enum { N = 40 };
    static struct nap naps[N];
    weft_task_t t[N];
    /* Spawned in shuffled order, absolute deadlines 3 ms apart (far more
     * than a timer tick) fixed before any task starts: however late a task
     * gets to run, the wake-up order is the deadline order. */
    uint64_t base = weft_now_ns() + 200000000;
    for (int k = 0; k < N; k++)
        naps[k].deadline = base + (uint64_t)(k + 1) * 3000000;
    for (int i = 0; i < N; i++) {
        int k = (i * 17) % N;
        cr_assert_eq(weft_spawn(&t[i], nap, &naps[k]), 0);
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    for (int k = 0; k < N; k++)
        cr_assert_eq(naps[k].rank, k, "nap %d woke %d-th", k, naps[k].rank);
    return 0;
}

Test(timers, sleepers_wake_in_deadline_order, .timeout = 60)
{
    atomic_store(&order_next, 0);
    atomic_store(&early, 0);
    cr_assert_eq(run_with(1, ordered_naps, NULL), 0);
    cr_assert_eq(atomic_load(&early), 0);
}

static atomic_long woke;

static intptr_t same_deadline(void *arg)
{
    uint64_t deadline = *(uint64_t *)arg;
    cr_assert_eq(weft_sleep_until_ns(deadline), 0);
    cr_assert_geq(weft_now_ns(), deadline);
    atomic_fetch_add(&woke, 1);
    return 0;
}

static intptr_t crowd(void *arg)
{
    (void)arg;
    long n = SCALED(100000);
    uint64_t deadline = weft_now_ns() + 50000000;
    for (long i = 0; i < n; i++)
        cr_assert_eq(weft_spawn(NULL, same_deadline, &deadline), 0);
    /* Outlive them all, then check. */
    while (atomic_load(&woke) < n)
        weft_sleep_ms(10);
    return 0;
}

Test(timers, a_hundred_thousand_sleepers_all_wake, .timeout = 120)
{
    atomic_store(&woke, 0);
    cr_assert_eq(run_with(2, crowd, NULL), 0);
    cr_assert_eq(atomic_load(&woke), SCALED(100000));
}

static intptr_t edge_cases(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_sleep_ns(0), 0, "a zero sleep is a yield");
    cr_assert_eq(weft_sleep_until_ns(0), 0, "a past deadline returns");
    cr_assert_eq(weft_sleep_until_ns(weft_now_ns() - 1000), 0);
    uint64_t t0 = weft_now_ns();
    cr_assert_eq(weft_sleep_ms(2), 0);
    cr_assert_geq(weft_now_ns() - t0, 2000000);
    return 0;
}

Test(timers, zero_and_past_deadlines_return_at_once, .timeout = 30)
{
    cr_assert_eq(run_with(1, edge_cases, NULL), 0);
}

static atomic_int cancelled;

static intptr_t sleep_forever(void *arg)
{
    (void)arg;
    if (weft_sleep_ns(UINT64_MAX) == -ECANCELED)
        atomic_fetch_add(&cancelled, 1);
    return 0;
}

static intptr_t abandon(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(weft_spawn(NULL, sleep_forever, NULL), 0);
    weft_sleep_ms(1);
    return 0;
}

Test(timers, endless_sleeps_are_cancelled_at_shutdown, .timeout = 30)
{
    atomic_store(&cancelled, 0);
    cr_assert_eq(run_with(2, abandon, NULL), 0);
    cr_assert_eq(atomic_load(&cancelled), 1000);
}

/* Timers racing their own cancellation from another thread. */
static intptr_t short_naps(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        int r = weft_sleep_ns(20000);
        if (r == -ECANCELED)
            return 1;
        cr_assert_eq(r, 0);
    }
    return 0;
}

static intptr_t nap_storm(void *arg)
{
    (void)arg;
    weft_task_t t[200];
    for (int i = 0; i < 200; i++)
        cr_assert_eq(weft_spawn(&t[i], short_naps, NULL), 0);
    for (int i = 0; i < 200; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    return 0;
}

Test(timers, many_short_naps_across_workers_shuffled, .timeout = 120)
{
    for (uint64_t seed = 0; seed < 4; seed++) {
        weft_config_t cfg;
        weft_config_init(&cfg);
        cfg.workers = 2 + (unsigned)seed;
        cfg.shuffle_seed = seed;
        cr_assert_eq(run_cfg(&cfg, nap_storm, NULL), 0);
    }
}
