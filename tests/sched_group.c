/* tests/sched_group.c: task groups: the wait waits for every child and no
 * child outlives it, the first failure cancels the siblings, every failure
 * is recorded, cancelling the owner reaches the children, nested groups,
 * the joining rule, misuse, and many groups with children spawning children
 * across 16 workers with exact accounting. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "support/weft_test.h"

#define MS 1000000ull
#define HOUR_MS (3600ull * 1000)

static atomic_int alive;     /* children running now */
static atomic_long ran_sum;  /* sum of args of children that completed */
static atomic_int cancelled; /* children that saw -ECANCELED */

static void reset_counters(void)
{
    atomic_store(&alive, 0);
    atomic_store(&ran_sum, 0);
    atomic_store(&cancelled, 0);
}

static intptr_t nap_child(void *arg)
{
    intptr_t i = (intptr_t)arg;
    atomic_fetch_add(&alive, 1);
    int r = weft_sleep_ns((uint64_t)(i % 17) * 20000);
    atomic_fetch_add(&ran_sum, (long)i);
    atomic_fetch_sub(&alive, 1);
    return r < 0 ? r : i;
}

static intptr_t hour_child(void *arg)
{
    (void)arg;
    atomic_fetch_add(&alive, 1);
    int r = weft_sleep_ms(HOUR_MS);
    if (r == -ECANCELED)
        atomic_fetch_add(&cancelled, 1);
    atomic_fetch_sub(&alive, 1);
    return r;
}

static intptr_t fail_child(void *arg)
{
    atomic_fetch_add(&alive, 1);
    weft_sleep_ms(2);
    atomic_fetch_sub(&alive, 1);
    return (intptr_t)arg;
}

static intptr_t gate_child(void *arg)
{
    return weft_future_wait(arg, NULL);
}

static intptr_t waits_for_all(void *arg)
{
    (void)arg;
    weft_group_t *g;
    weft_future_t *gate;
    cr_assert_eq(weft_future_create(&gate), 0);
    cr_assert_eq(weft_group_create(&g), 0);
    cr_assert_eq(weft_group_spawn(g, NULL, gate_child, gate), 0);
    weft_task_t kept[10];
    long expect = 0;
    for (intptr_t i = 0; i < 200; i++) {
        weft_task_t *h = i < 10 ? &kept[i] : NULL;
        cr_assert_eq(weft_group_spawn(g, h, nap_child, (void *)i), 0);
        expect += (long)i;
    }
    cr_assert_eq(weft_group_destroy(g), -EBUSY, "children alive");
    cr_assert_eq(weft_future_set(gate, 0), 0);
    cr_assert_eq(weft_group_wait(g), 0);
    cr_assert_eq(atomic_load(&alive), 0, "no child outlives the group");
    cr_assert_eq(atomic_load(&ran_sum), expect, "each ran once");
    cr_assert_eq(weft_group_errors(g, NULL, 0), 0);
    cr_assert_eq(weft_group_wait(g), 0, "a second wait returns at once");
    cr_assert_eq(weft_group_spawn(g, NULL, nap_child, NULL), -EPIPE,
                 "closed after a wait");
    cr_assert_eq(weft_group_destroy(g), 0);
    cr_assert_eq(weft_future_destroy(gate), 0);
    for (intptr_t i = 0; i < 10; i++)
        cr_assert_eq(weft_join(kept[i]), i, "handles outlive the group");
    return 0;
}

Test(group, wait_waits_for_every_child, .timeout = 30)
{
    reset_counters();
    cr_assert_eq(run_with(2, waits_for_all, NULL), 0);
}

static intptr_t first_failure(void *arg)
{
    (void)arg;
    weft_group_t *g;
    cr_assert_eq(weft_group_create(&g), 0);
    for (int i = 0; i < 30; i++)
        cr_assert_eq(weft_group_spawn(g, NULL, hour_child, NULL), 0);
    weft_task_t bad;
    cr_assert_eq(weft_group_spawn(g, &bad, fail_child, (void *)(intptr_t)-EIO),
                 0);
    cr_assert_eq(weft_group_wait(g), -EIO, "the first failure");
    cr_assert_eq(atomic_load(&alive), 0);
    cr_assert_eq(atomic_load(&cancelled), 30, "every sibling cancelled");
    weft_group_error_t e[4];
    cr_assert_eq(weft_group_errors(g, e, 4), 1, "cancelled siblings are not "
                                                "failures");
    cr_assert_eq(e[0].error, -EIO);
    cr_assert_eq(e[0].task_id, weft_task_id(bad));
    cr_assert_eq(weft_group_spawn(g, NULL, hour_child, NULL), -EPIPE,
                 "closed, after a wait returned");
    cr_assert_eq(weft_join(bad), -EIO);
    cr_assert_eq(weft_group_destroy(g), 0);
    return 0;
}

Test(group, first_failure_cancels_the_siblings, .timeout = 30)
{
    reset_counters();
    cr_assert_eq(run_with(3, first_failure, NULL), 0);
}

static atomic_int fail_gate;

static intptr_t fail_now(void *arg)
{
    /* No wait: no cancel can stop it. It fails only once every sibling
     * was spawned (a failure closes the group to new children). */
    while (!atomic_load(&fail_gate))
        weft_yield();
    return (intptr_t)arg;
}

static intptr_t every_error(void *arg)
{
    (void)arg;
    weft_group_t *g;
    cr_assert_eq(weft_group_create(&g), 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(weft_group_spawn(g, NULL, hour_child, NULL), 0);
    for (intptr_t i = 1; i <= 20; i++)
        cr_assert_eq(weft_group_spawn(g, NULL, fail_now, (void *)-i), 0);
    atomic_store(&fail_gate, 1);
    int first = weft_group_wait(g);
    cr_assert(first <= -1 && first >= -20, "first: %d", first);
    weft_group_error_t e[32];
    cr_assert_eq(weft_group_errors(g, e, 32), 20, "every failure recorded");
    cr_assert_eq(e[0].error, first, "oldest first");
    long sum = 0;
    for (int i = 0; i < 20; i++)
        sum += (long)e[i].error;
    cr_assert_eq(sum, -210, "each failure once");
    cr_assert_eq(weft_group_errors(g, e, 3), 20, "cap: count still total");
    cr_assert_eq(atomic_load(&cancelled), 5);
    cr_assert_eq(weft_group_destroy(g), 0);
    return 0;
}

Test(group, every_failure_is_recorded, .timeout = 30)
{
    reset_counters();
    atomic_store(&fail_gate, 0);
    cr_assert_eq(run_with(2, every_error, NULL), 0);
}

/* ---- Cancelling the owner, nested groups --------------------------------- */

struct owner_arg {
    int children;
    int nest;          /* levels of groups below this one */
    bool wait_in_group;/* block in group_wait (else in a sleep) */
    atomic_int *ready;
};

static intptr_t owner(void *arg)
{
    struct owner_arg *o = arg;
    weft_group_t *g;
    cr_assert_eq(weft_group_create(&g), 0);
    struct owner_arg sub = *o;
    sub.nest = o->nest - 1;
    for (int i = 0; i < o->children; i++) {
        if (o->nest > 0)
            cr_assert_eq(weft_group_spawn(g, NULL, owner, &sub), 0);
        else
            cr_assert_eq(weft_group_spawn(g, NULL, hour_child, NULL), 0);
    }
    atomic_fetch_add(o->ready, 1);
    int r;
    if (o->wait_in_group) {
        r = weft_group_wait(g);
    } else {
        r = weft_sleep_ms(HOUR_MS);
        cr_assert_eq(r, -ECANCELED);
        /* The children were cancelled with the owner, not when it got to
         * its wait: the wait finds them ending or gone. */
        r = weft_group_wait(g);
        cr_assert(r == 0 || r == -ECANCELED, "%d", r);
        r = -ECANCELED;
    }
    cr_assert_eq(weft_group_destroy(g), 0);
    return r;
}

static intptr_t cancel_owners(void *arg)
{
    (void)arg;
    for (int mode = 0; mode < 2; mode++) {
        atomic_int ready = 0;
        /* 3 levels: owner -> 3 owners -> 3 owners each -> 3 sleepers each:
         * 1 + 3 + 9 groups, 27 sleepers. */
        struct owner_arg o = {.children = 3, .nest = 2,
                              .wait_in_group = mode == 0, .ready = &ready};
        weft_task_t t;
        cr_assert_eq(weft_spawn(&t, owner, &o), 0);
        /* Every owner has spawned; wait for every sleeper to be asleep. */
        while (atomic_load(&ready) < 13 || atomic_load(&alive) < 27)
            weft_sleep_ms(1);
        weft_sleep_ms(1);
        cr_assert_eq(atomic_load(&alive), 27);
        cr_assert_eq(weft_cancel(t), 0);
        cr_assert_eq(weft_join(t), -ECANCELED);
        cr_assert_eq(atomic_load(&alive), 0, "the whole tree is gone");
        cr_assert_eq(atomic_load(&cancelled), 27 * (mode + 1));
    }
    return 0;
}

Test(group, cancelling_the_owner_cancels_the_tree, .timeout = 30)
{
    reset_counters();
    cr_assert_eq(run_with(3, cancel_owners, NULL), 0);
}

/* A failure deep in the tree climbs up through the waits. */
static intptr_t inner_owner(void *arg)
{
    (void)arg;
    weft_group_t *g;
    cr_assert_eq(weft_group_create(&g), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_group_spawn(g, NULL, hour_child, NULL), 0);
    cr_assert_eq(weft_group_spawn(g, NULL, fail_child,
                                  (void *)(intptr_t)-ENOSPC),
                 0);
    int r = weft_group_wait(g);
    cr_assert_eq(weft_group_destroy(g), 0);
    return r;
}

static intptr_t nested_failure(void *arg)
{
    (void)arg;
    weft_group_t *g;
    cr_assert_eq(weft_group_create(&g), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_group_spawn(g, NULL, hour_child, NULL), 0);
    cr_assert_eq(weft_group_spawn(g, NULL, inner_owner, NULL), 0);
    cr_assert_eq(weft_group_wait(g), -ENOSPC);
    cr_assert_eq(atomic_load(&alive), 0);
    cr_assert_eq(atomic_load(&cancelled), 7, "4 inner, 3 outer");
    weft_group_error_t e[2];
    cr_assert_eq(weft_group_errors(g, e, 2), 1);
    cr_assert_eq(e[0].error, -ENOSPC);
    cr_assert_eq(weft_group_destroy(g), 0);
    return 0;
}

Test(group, nested_failure_reaches_the_outer_group, .timeout = 30)
{
    reset_counters();
    cr_assert_eq(run_with(2, nested_failure, NULL), 0);
}

/* A failure cancels the owner's current wait (asyncio's TaskGroup does),
 * so a body blocked elsewhere gets to its group wait. */
static intptr_t blocked_body(void *arg)
{
    (void)arg;
    weft_group_t *g;
    weft_future_t *never;
    cr_assert_eq(weft_future_create(&never), 0);
    cr_assert_eq(weft_group_create(&g), 0);
    cr_assert_eq(weft_group_spawn(g, NULL, fail_child,
                                  (void *)(intptr_t)-EPROTO),
                 0);
    cr_assert_eq(weft_future_wait(never, NULL), -ECANCELED);
    cr_assert_eq(weft_group_wait(g), -EPROTO);
    cr_assert_eq(weft_sleep_ns(1000), 0, "no cancel left pending");
    cr_assert_eq(weft_group_destroy(g), 0);
    cr_assert_eq(weft_future_destroy(never), 0);
    return 0;
}

Test(group, failure_interrupts_the_owners_body, .timeout = 30)
{
    reset_counters();
    cr_assert_eq(run_with(2, blocked_body, NULL), 0);
}

/* ---- Explicit cancel, misuse, the joining rule -------------------------------- */

static intptr_t explicit_cancel(void *arg)
{
    (void)arg;
    weft_group_t *g;
    cr_assert_eq(weft_group_create(&g), 0);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(weft_group_spawn(g, NULL, hour_child, NULL), 0);
    weft_sleep_ms(1);
    cr_assert_eq(weft_group_cancel(g), 0);
    cr_assert_eq(weft_group_spawn(g, NULL, hour_child, NULL), -ECANCELED);
    cr_assert_eq(weft_group_wait(g), -ECANCELED);
    cr_assert_eq(weft_group_errors(g, NULL, 0), 0);
    cr_assert_eq(atomic_load(&cancelled), 10);
    cr_assert_eq(weft_group_destroy(g), 0);
    return 0;
}

Test(group, explicit_cancel, .timeout = 30)
{
    reset_counters();
    cr_assert_eq(run_with(2, explicit_cancel, NULL), 0);
}

static weft_group_t *self_group;

static intptr_t waits_for_own_group(void *arg)
{
    (void)arg;
    return weft_group_wait(self_group);
}

static intptr_t group_misuse(void *arg)
{
    (void)arg;
    weft_group_t *g;
    cr_assert_eq(weft_group_create(NULL), -EINVAL);
    cr_assert_eq(weft_group_spawn(NULL, NULL, nap_child, NULL), -EINVAL);
    cr_assert_eq(weft_group_wait(NULL), -EINVAL);
    cr_assert_eq(weft_group_cancel(NULL), -EINVAL);
    cr_assert_eq(weft_group_destroy(NULL), -EINVAL);
    cr_assert_eq(weft_group_errors(NULL, NULL, 0), -EINVAL);
    cr_assert_eq(weft_group_create(&g), 0);
    cr_assert_eq(weft_group_spawn(g, NULL, NULL, NULL), -EINVAL, "fn NULL");
    weft_spawn_opts_t bad = {.flags = 0x80};
    cr_assert_eq(weft_group_spawn_ex(g, NULL, nap_child, NULL, &bad), -EINVAL);
    weft_group_error_t e;
    cr_assert_eq(weft_group_errors(g, NULL, 1), -EINVAL, "out NULL, cap 1");
    (void)e;
    self_group = g;
    weft_task_t t;
    cr_assert_eq(weft_group_spawn(g, &t, waits_for_own_group, NULL), 0);
    /* The failed spawns left no child; the one child failed. */
    cr_assert_eq(weft_group_wait(g), -EDEADLK, "a child waiting for its group");
    cr_assert_eq(weft_group_errors(g, NULL, 0), 1);
    cr_assert_eq(weft_join(t), -EDEADLK);
    cr_assert_eq(weft_group_destroy(g), 0);
    return 0;
}

Test(group, misuse_is_refused, .timeout = 30)
{
    cr_assert_eq(run_with(2, group_misuse, NULL), 0);
    weft_group_t *g;
    cr_assert_eq(weft_group_create(&g), -ESRCH, "no runtime");
}

/* The joining rule: a child of group B can be joined by B's owner, by other
 * children of B, and by tasks outside any group; a child of another group
 * A gets -EPERM, and the handle is untouched. */

static weft_task_t b_child;
static weft_group_t *group_b;

static intptr_t a_child_joins_b(void *arg)
{
    (void)arg;
    intptr_t r = 0;
    return weft_join_until(b_child, WEFT_NO_DEADLINE, &r) == -EPERM &&
                   weft_gather(&b_child, 1, NULL) == -EPERM
               ? 1
               : 0;
}

static intptr_t b_sibling_joins(void *arg)
{
    (void)arg;
    /* Returning -ECANCELED, uncancelled, would be a failure of B. */
    return weft_join(b_child) == -ECANCELED ? 7 : -1;
}

static intptr_t return_now(void *arg)
{
    return (intptr_t)arg;
}

static intptr_t a_child_owns_c(void *arg)
{
    (void)arg;
    /* A child of A creating its own group C may join C's children. */
    weft_group_t *c;
    cr_assert_eq(weft_group_create(&c), 0);
    weft_task_t k;
    cr_assert_eq(weft_group_spawn(c, &k, return_now, (void *)(intptr_t)5), 0);
    intptr_t r = weft_join(k);
    cr_assert_eq(weft_group_wait(c), 0);
    cr_assert_eq(weft_group_destroy(c), 0);
    return r;
}

static intptr_t join_rule(void *arg)
{
    (void)arg;
    weft_group_t *a;
    cr_assert_eq(weft_group_create(&a), 0);
    cr_assert_eq(weft_group_create(&group_b), 0);
    cr_assert_eq(weft_group_spawn(group_b, &b_child, hour_child, NULL), 0);
    weft_task_t ta, tb, tc;
    cr_assert_eq(weft_group_spawn(a, &ta, a_child_joins_b, NULL), 0);
    cr_assert_eq(weft_join(ta), 1, "-EPERM for a child of another group");
    cr_assert_eq(weft_group_spawn(a, &tc, a_child_owns_c, NULL), 0);
    cr_assert_eq(weft_join(tc), 5);
    cr_assert_eq(weft_group_spawn(group_b, &tb, b_sibling_joins, NULL), 0);
    weft_sleep_ms(1);
    cr_assert_eq(weft_cancel(b_child), 0);
    cr_assert_eq(weft_join(tb), 7, "a sibling may join");
    cr_assert_eq(weft_group_wait(a), 0);
    cr_assert_eq(weft_group_wait(group_b), 0);
    cr_assert_eq(weft_group_destroy(a), 0);
    cr_assert_eq(weft_group_destroy(group_b), 0);
    return 0;
}

Test(group, joining_rule, .timeout = 30)
{
    reset_counters();
    cr_assert_eq(run_with(2, join_rule, NULL), 0);
}

/* A group created by a plain thread: no owner to cancel; waits from the
 * thread. */
Test(group, plain_thread_groups, .timeout = 30)
{
    reset_counters();
    cr_assert_eq(weft_start(NULL), 0);
    weft_group_t *g;
    cr_assert_eq(weft_group_create(&g), 0);
    long expect = 0;
    for (intptr_t i = 0; i < 100; i++) {
        cr_assert_eq(weft_group_spawn(g, NULL, nap_child, (void *)i), 0);
        expect += (long)i;
    }
    cr_assert_eq(weft_group_wait(g), 0);
    cr_assert_eq(atomic_load(&ran_sum), expect);
    cr_assert_eq(weft_group_destroy(g), 0);
    cr_assert_eq(weft_stop(), 0);
}

/* ---- Many groups, children spawning children, 16 workers ----------------- */

#define TREES 9
#define FANOUT SCALED(150)
#define POOL (FANOUT * 13)

struct node;

struct tree_ctx {
    weft_group_t *g;
    struct node *pool;
    atomic_int next;
    atomic_int spawned, started, finished, leaves;
    int fail_at; /* the top node that fails, or -1 */
};

struct node {
    struct tree_ctx *tc;
    int depth, id;
};

static intptr_t grow(void *arg)
{
    struct node *n = arg;
    struct tree_ctx *tc = n->tc;
    atomic_fetch_add(&tc->started, 1);
    atomic_fetch_add(&alive, 1);
    uint64_t seed = (uint64_t)n->id * 2654435761u + 1;
    intptr_t r = 0;
    if (n->depth == 0) {
        r = weft_sleep_ns(test_rand(&seed) % 20000);
        if (r == 0)
            atomic_fetch_add(&tc->leaves, 1);
    } else {
        /* Spawn into the same group while its owner waits for it. */
        for (int i = 0; i < 3; i++) {
            int slot = atomic_fetch_add(&tc->next, 1);
            tc->pool[slot] = (struct node){tc, n->depth - 1, slot};
            int e = weft_group_spawn(tc->g, NULL, grow, &tc->pool[slot]);
            if (e == 0)
                atomic_fetch_add(&tc->spawned, 1);
            else
                cr_assert_eq(e, -ECANCELED, "only a failed group refuses");
        }
        r = weft_sleep_ns(test_rand(&seed) % 20000);
        if (r == 0 && n->id == tc->fail_at)
            r = -EREMOTEIO;
    }
    atomic_fetch_sub(&alive, 1);
    atomic_fetch_add(&tc->finished, 1);
    return r;
}

static intptr_t tree(void *arg)
{
    intptr_t k = (intptr_t)arg;
    struct tree_ctx tc = {.fail_at = k % 3 == 0 ? FANOUT / 2 : -1};
    tc.pool = calloc(POOL, sizeof *tc.pool);
    atomic_init(&tc.next, FANOUT);
    cr_assert_eq(weft_group_create(&tc.g), 0);
    for (int i = 0; i < FANOUT; i++) {
        tc.pool[i] = (struct node){&tc, 2, i};
        cr_assert_eq(weft_group_spawn(tc.g, NULL, grow, &tc.pool[i]), 0);
        atomic_fetch_add(&tc.spawned, 1);
    }
    int r = weft_group_wait(tc.g);
    /* Nothing lost, nothing run twice, nothing still running. */
    cr_assert_eq(atomic_load(&tc.started), atomic_load(&tc.spawned));
    cr_assert_eq(atomic_load(&tc.finished), atomic_load(&tc.spawned));
    if (tc.fail_at >= 0) {
        cr_assert_eq(r, -EREMOTEIO);
        weft_group_error_t e[2];
        cr_assert_eq(weft_group_errors(tc.g, e, 2), 1);
    } else {
        cr_assert_eq(r, 0);
        cr_assert_eq(atomic_load(&tc.spawned), POOL);
        cr_assert_eq(atomic_load(&tc.leaves), FANOUT * 9);
    }
    cr_assert_eq(weft_group_destroy(tc.g), 0);
    free(tc.pool);
    return 0;
}

static intptr_t forest(void *arg)
{
    (void)arg;
    weft_task_t t[TREES];
    for (intptr_t k = 0; k < TREES; k++)
        cr_assert_eq(weft_spawn(&t[k], tree, (void *)k), 0);
    for (int k = 0; k < TREES; k++)
        cr_assert_eq(weft_join(t[k]), 0);
    cr_assert_eq(atomic_load(&alive), 0, "no child outlived its group");
    return 0;
}

Test(group, many_groups_children_spawning_children_sixteen_workers,
     .timeout = 120)
{
    reset_counters();
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 16;
    cfg.pin = WEFT_PIN_OFF;
    cfg.shuffle_seed = 2024;
    cr_assert_eq(run_cfg(&cfg, forest, NULL), 0);
}
