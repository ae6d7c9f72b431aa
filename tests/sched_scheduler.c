/* tests/sched_scheduler.c: the scheduler under load: exact counts with a
 * million spawns, nested spawns, joins from other workers, more workers than
 * cores, shuffled scheduling order, and work actually spreading. */
#include <errno.h>
#include <stdatomic.h>

#include "support/weft_test.h"

static atomic_long ran;

static intptr_t count_one(void *arg)
{
    atomic_fetch_add_explicit(&ran, 1, memory_order_relaxed);
    return (intptr_t)arg;
}

struct many {
    long n;
    long joined_sum;
};

static intptr_t spawn_many(void *arg)
{
    struct many *m = arg;
    weft_task_t *t = malloc(sizeof *t * (size_t)m->n);
    cr_assert_not_null(t);
    for (long i = 0; i < m->n; i++)
        cr_assert_eq(weft_spawn(&t[i], count_one, (void *)(intptr_t)i), 0);
    long sum = 0;
    for (long i = 0; i < m->n; i++)
        sum += (long)weft_join(t[i]);
    m->joined_sum = sum;
    free(t);
    return 0;
}

static void million(unsigned workers, uint64_t shuffle)
{
    atomic_store(&ran, 0);
    struct many m = {.n = SCALED(1000000)};
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = workers;
    cfg.shuffle_seed = shuffle;
    cr_assert_eq(run_cfg(&cfg, spawn_many, &m), 0);
    cr_assert_eq(atomic_load(&ran), m.n, "every task ran exactly once");
    cr_assert_eq(m.joined_sum, m.n * (m.n - 1) / 2, "every result arrived");
}

Test(scheduler, million_spawns_one_worker, .timeout = 120)
{
    million(1, 0);
}

Test(scheduler, million_spawns_two_workers, .timeout = 120)
{
    million(2, 0);
}

Test(scheduler, million_spawns_shuffled, .timeout = 120)
{
    million(2, 12345);
}

/* A binary tree of tasks: each node spawns two children and joins them. */
static intptr_t tree(void *arg)
{
    intptr_t depth = (intptr_t)arg;
    atomic_fetch_add_explicit(&ran, 1, memory_order_relaxed);
    if (depth == 0)
        return 1;
    weft_task_t l, r;
    cr_assert_eq(weft_spawn(&l, tree, (void *)(depth - 1)), 0);
    cr_assert_eq(weft_spawn(&r, tree, (void *)(depth - 1)), 0);
    if (depth % 3 == 0)
        weft_yield();
    return weft_join(l) + weft_join(r);
}

static void nested(unsigned workers, uint64_t shuffle, intptr_t depth)
{
    atomic_store(&ran, 0);
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = workers;
    cfg.shuffle_seed = shuffle;
    cr_assert_eq(run_cfg(&cfg, tree, (void *)depth), (intptr_t)1 << depth,
                 "leaves counted through the joins");
    cr_assert_eq(atomic_load(&ran), ((long)1 << (depth + 1)) - 1);
}

Test(scheduler, nested_spawns_join_up_the_tree, .timeout = 120)
{
    nested(2, 0, WEFT_TEST_SCALE > 1 ? 12 : 15);
}

Test(scheduler, sixteen_workers_oversubscribed, .timeout = 120)
{
    nested(16, 0, WEFT_TEST_SCALE > 1 ? 11 : 14);
    million(16, 0);
}

Test(scheduler, shuffled_order_many_seeds, .timeout = 180)
{
    for (uint64_t seed = 1; seed <= 8; seed++)
        nested(1 + seed % 4, seed * 7919, 10);
}

/* Joins from other tasks than the spawner, on any worker. */
struct relay {
    weft_task_t target;
    intptr_t got;
};

static intptr_t join_other(void *arg)
{
    struct relay *r = arg;
    if ((uintptr_t)arg % 3 == 0)
        weft_yield();
    r->got = weft_join(r->target);
    return 0;
}

static intptr_t slow_value(void *arg)
{
    for (int i = 0; i < (intptr_t)arg % 5; i++)
        weft_yield();
    return (intptr_t)arg * 3;
}

static intptr_t cross_join(void *arg)
{
    (void)arg;
    enum { N = 2000 };
    static struct relay relays[N];
    weft_task_t joiners[N];
    for (intptr_t i = 0; i < N; i++) {
        cr_assert_eq(weft_spawn(&relays[i].target, slow_value, (void *)i), 0);
        relays[i].got = -1;
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_spawn(&joiners[i], join_other, &relays[i]), 0);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(weft_join(joiners[i]), 0);
        cr_assert_eq(relays[i].got, (intptr_t)i * 3);
    }
    return 0;
}

Test(scheduler, joins_from_other_tasks_and_workers, .timeout = 60)
{
    for (int round = 0; round < 5; round++)
        cr_assert_eq(run_with(2 + round % 3, cross_join, NULL), 0);
}

/* Yield-heavy tasks: every yield returns, nothing runs twice at once. */
struct yielder {
    atomic_int inside;
    long count;
};

static intptr_t yield_loop(void *arg)
{
    struct yielder *y = arg;
    uint64_t seed = (uintptr_t)arg | 1;
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(atomic_fetch_add(&y->inside, 1), 0,
                     "a task runs on one worker at a time");
        y->count++;
        random_spin(&seed);
        atomic_fetch_sub(&y->inside, 1);
        weft_yield();
    }
    return 0;
}

static intptr_t yielders(void *arg)
{
    (void)arg;
    enum { N = 64 };
    static struct yielder ys[N];
    weft_task_t t[N];
    for (int i = 0; i < N; i++) {
        atomic_init(&ys[i].inside, 0);
        ys[i].count = 0;
        cr_assert_eq(weft_spawn(&t[i], yield_loop, &ys[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(weft_join(t[i]), 0);
        cr_assert_eq(ys[i].count, 1000);
    }
    return 0;
}

Test(scheduler, yielding_tasks_never_run_twice_at_once, .timeout = 120)
{
    cr_assert_eq(run_with(2, yielders, NULL), 0);
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 4;
    cfg.shuffle_seed = 99;
    cr_assert_eq(run_cfg(&cfg, yielders, NULL), 0);
}

/* Work spreads: CPU-bound tasks spawned on one worker end up on both. */
static atomic_int seen_on[2];

static intptr_t spin_a_while(void *arg)
{
    (void)arg;
    uint64_t until = weft_now_ns() + 2000000;
    while (weft_now_ns() < until)
        ;
    int w = weft_worker_index();
    if (w >= 0 && w < 2)
        atomic_fetch_add(&seen_on[w], 1);
    return 0;
}

static intptr_t spread(void *arg)
{
    (void)arg;
    weft_task_t t[200];
    for (int i = 0; i < 200; i++)
        cr_assert_eq(weft_spawn(&t[i], spin_a_while, NULL), 0);
    for (int i = 0; i < 200; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    return 0;
}

Test(scheduler, idle_workers_steal_work, .timeout = 60)
{
    atomic_store(&seen_on[0], 0);
    atomic_store(&seen_on[1], 0);
    cr_assert_eq(run_with(2, spread, NULL), 0);
    cr_assert_eq(atomic_load(&seen_on[0]) + atomic_load(&seen_on[1]), 200);
    cr_assert_gt(atomic_load(&seen_on[0]), 0);
    cr_assert_gt(atomic_load(&seen_on[1]), 0);
}

/* A synthetic 2-socket, 64-core machine: 64 workers (pinning is off for
 * synthetic topologies) run everything exactly once. */
Test(scheduler, synthetic_two_socket_topology_runs_everything, .timeout = 120)
{
    atomic_store(&ran, 0);
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.topology = "pack:2 l3:1 core:32 pu:1";
    cr_assert_eq(run_cfg(&cfg, tree, (void *)(intptr_t)12), 4096);
    cr_assert_eq(atomic_load(&ran), 8191);
}

/* A task woken by a running task goes to that worker's runnext slot. The
 * slot must be stealable (Tokio's was not, tokio#4941): if the waker then
 * computes without yielding, another worker must run the woken task. */
struct runnext_case {
    weft_event_t *go;
    atomic_int ran_on; /* worker index + 1 */
};

static intptr_t woken_one(void *arg)
{
    struct runnext_case *c = arg;
    cr_assert_eq(weft_event_wait(c->go), 0);
    atomic_store(&c->ran_on, weft_worker_index() + 1);
    return 0;
}

static intptr_t waker_that_hogs(void *arg)
{
    (void)arg;
    struct runnext_case c;
    atomic_init(&c.ran_on, 0);
    cr_assert_eq(weft_event_create(&c.go), 0);
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, woken_one, &c), 0);
    weft_sleep_ms(20); /* it parks on the event */
    int me = weft_worker_index();
    cr_assert_eq(weft_event_set(c.go), 0);
    uint64_t until = weft_now_ns() + 10ull * 1000 * 1000 * 1000;
    while (atomic_load(&c.ran_on) == 0 && weft_now_ns() < until)
        ; /* hog the worker: no yield */
    int ran_on = atomic_load(&c.ran_on);
    cr_assert_neq(ran_on, 0, "the woken task never ran while its waker hogged");
    cr_assert_neq(ran_on - 1, me);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(weft_event_destroy(c.go), 0);
    return 0;
}

Test(scheduler, a_woken_task_is_stolen_from_a_hogging_waker, .timeout = 120)
{
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 2;
    cfg.watchdog_ns = UINT64_MAX;
    for (int i = 0; i < 5; i++)
        cr_assert_eq(run_cfg(&cfg, waker_that_hogs, NULL), 0);
}
