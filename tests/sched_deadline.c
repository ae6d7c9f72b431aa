/* tests/sched_deadline.c: deadlines on waits and deadline scopes: scopes
 * nest and only ever shorten, pops must match pushes, every kind of wait
 * honours the scope, explicit deadlines on join, futures, gather, wait_any
 * and groups, and deadlines racing wake-ups give exactly one outcome. No
 * wall-clock upper bound is asserted: a wait that ignored its deadline
 * would hang and hit the suite's timeout instead. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "support/weft_test.h"

#define MS 1000000ull
#define HOUR_MS (3600ull * 1000)

static intptr_t sleep_hour(void *arg)
{
    (void)arg;
    return weft_sleep_ms(HOUR_MS);
}

/* ---- Scopes ---------------------------------------------------------------- */

static intptr_t scope_basics(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_deadline_current(), WEFT_NO_DEADLINE);
    weft_deadline_t d;
    uint64_t before = weft_now_ns();
    cr_assert_eq(weft_deadline_push_after(&d, 2 * MS), 0);
    cr_assert_geq(weft_deadline_current(), before + 2 * MS);
    cr_assert_eq(weft_deadline_expired(&d), 0);
    cr_assert_eq(weft_sleep_ms(HOUR_MS), -ETIMEDOUT, "the scope ends it");
    cr_assert_geq(weft_now_ns(), before + 2 * MS, "never early");
    cr_assert_eq(weft_deadline_expired(&d), 1);
    cr_assert_eq(weft_sleep_ns(1000), -ETIMEDOUT, "every wait in the scope");
    cr_assert_eq(weft_deadline_pop(&d), 0);
    cr_assert_eq(weft_deadline_current(), WEFT_NO_DEADLINE);
    cr_assert_eq(weft_sleep_ns(1000), 0, "outside the scope again");
    cr_assert_eq(weft_deadline_expired(&d), 1, "still answers after pop");
    return 0;
}

Test(deadline, scope_ends_waits_with_etimedout, .timeout = 30)
{
    cr_assert_eq(run_with(1, scope_basics, NULL), 0);
}

static intptr_t nesting(void *arg)
{
    (void)arg;
    weft_deadline_t outer, inner;
    /* An inner scope asking for more time gets none. */
    cr_assert_eq(weft_deadline_push_after(&outer, 3 * MS), 0);
    uint64_t od = weft_deadline_current();
    cr_assert_eq(weft_deadline_push_after(&inner, (int64_t)(3600 * 1000 * MS)),
                 0);
    cr_assert_eq(weft_deadline_current(), od, "never extended");
    cr_assert_eq(weft_sleep_ms(HOUR_MS), -ETIMEDOUT);
    cr_assert_eq(weft_deadline_expired(&outer), 1);
    cr_assert_eq(weft_deadline_expired(&inner), 0,
                 "the outer scope's deadline, not the inner's, passed");
    cr_assert_eq(weft_deadline_pop(&inner), 0);
    cr_assert_eq(weft_deadline_current(), od);
    cr_assert_eq(weft_deadline_pop(&outer), 0);

    /* An inner scope asking for less gets it, and pop restores the outer. */
    cr_assert_eq(weft_deadline_push_after(&outer, (int64_t)(3600 * 1000 * MS)),
                 0);
    od = weft_deadline_current();
    cr_assert_eq(weft_deadline_push_after(&inner, 2 * MS), 0);
    cr_assert_lt(weft_deadline_current(), od);
    cr_assert_eq(weft_sleep_ms(HOUR_MS), -ETIMEDOUT);
    cr_assert_eq(weft_deadline_expired(&inner), 1);
    cr_assert_eq(weft_deadline_pop(&inner), 0);
    cr_assert_eq(weft_deadline_current(), od);
    cr_assert_eq(weft_sleep_ns(1000), 0);
    cr_assert_eq(weft_deadline_pop(&outer), 0);

    /* Deep nesting, absolute deadlines, and a scope with no deadline. */
    weft_deadline_t s[10];
    uint64_t base = weft_now_ns() + 3600 * 1000 * MS;
    for (int i = 0; i < 10; i++) {
        uint64_t want = i == 5 ? WEFT_NO_DEADLINE : base - (uint64_t)i % 3 * MS;
        cr_assert_eq(weft_deadline_push(&s[i], want), 0);
    }
    cr_assert_eq(weft_deadline_current(), base - 2 * MS);
    for (int i = 9; i >= 0; i--)
        cr_assert_eq(weft_deadline_pop(&s[i]), 0);
    cr_assert_eq(weft_deadline_current(), WEFT_NO_DEADLINE);
    return 0;
}

Test(deadline, inner_scopes_shorten_but_never_extend, .timeout = 30)
{
    cr_assert_eq(run_with(2, nesting, NULL), 0);
}

static intptr_t pop_other(void *arg)
{
    weft_deadline_t *d = arg;
    return weft_deadline_pop(d);
}

static intptr_t misuse(void *arg)
{
    (void)arg;
    weft_deadline_t a, b, never = {0};
    cr_assert_eq(weft_deadline_push(NULL, 0), -EINVAL);
    cr_assert_eq(weft_deadline_push_after(&a, -1), -EINVAL, "negative");
    cr_assert_eq(weft_deadline_current(), WEFT_NO_DEADLINE,
                 "failed pushes changed nothing");
    cr_assert_eq(weft_deadline_pop(&never), -EINVAL, "never pushed");
    cr_assert_eq(weft_deadline_pop(NULL), -EINVAL);
    cr_assert_eq(weft_deadline_expired(&never), -EINVAL);

    cr_assert_eq(weft_deadline_push_after(&a, 100 * (int64_t)MS), 0);
    cr_assert_eq(weft_deadline_push_after(&b, 50 * (int64_t)MS), 0);
    uint64_t cur = weft_deadline_current();
    cr_assert_eq(weft_deadline_pop(&a), -EINVAL, "out of order");
    cr_assert_eq(weft_deadline_current(), cur, "nothing changed");
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, pop_other, &b), 0);
    cr_assert_eq(weft_join(t), -EINVAL, "another task's scope");
    cr_assert_eq(weft_deadline_current(), cur);
    cr_assert_eq(weft_deadline_pop(&b), 0);
    cr_assert_eq(weft_deadline_pop(&b), -EINVAL, "twice");
    cr_assert_eq(weft_deadline_pop(&a), 0);
    cr_assert_eq(weft_deadline_current(), WEFT_NO_DEADLINE);
    return 0;
}

Test(deadline, misused_scopes_are_refused_and_change_nothing, .timeout = 30)
{
    cr_assert_eq(run_with(2, misuse, NULL), 0);
    weft_deadline_t d;
    cr_assert_eq(weft_deadline_push(&d, 0), -EPERM, "plain thread");
    cr_assert_eq(weft_deadline_push_after(&d, 1), -EPERM);
    cr_assert_eq(weft_deadline_pop(&d), -EPERM);
    cr_assert_eq(weft_deadline_current(), WEFT_NO_DEADLINE);
}

/* A scope left pushed when a task returns does not leak into the next task
 * that reuses its descriptor. */
static intptr_t leave_scope(void *arg)
{
    weft_deadline_t *d = arg;
    return weft_deadline_push_after(d, 0);
}

static intptr_t fresh(void *arg)
{
    (void)arg;
    return weft_deadline_current() == WEFT_NO_DEADLINE &&
           weft_sleep_ns(1000) == 0;
}

static intptr_t leaked_scopes(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        weft_deadline_t d;
        weft_task_t t;
        cr_assert_eq(weft_spawn(&t, leave_scope, &d), 0);
        cr_assert_eq(weft_join(t), 0);
        cr_assert_eq(weft_spawn(&t, fresh, NULL), 0);
        cr_assert_eq(weft_join(t), 1);
        cr_assert_eq(weft_deadline_pop(&d), -EINVAL, "a dead task's scope");
    }
    return 0;
}

Test(deadline, scopes_end_with_their_task, .timeout = 30)
{
    cr_assert_eq(run_with(1, leaked_scopes, NULL), 0);
}

/* ---- Every kind of wait honours the scope ---------------------------------- */

static intptr_t each_wait(void *arg)
{
    (void)arg;
    weft_deadline_t d;
    weft_task_t sleeper;
    weft_future_t *f;
    cr_assert_eq(weft_future_create(&f), 0);
    cr_assert_eq(weft_spawn(&sleeper, sleep_hour, NULL), 0);
    intptr_t res;

    cr_assert_eq(weft_deadline_push_after(&d, 1 * MS), 0);
    cr_assert_eq(weft_join(sleeper), -ETIMEDOUT, "join");
    cr_assert_eq(weft_join_until(sleeper, WEFT_NO_DEADLINE, &res), -ETIMEDOUT);
    cr_assert_eq(weft_future_wait(f, &res), -ETIMEDOUT, "future");
    cr_assert_eq(weft_wait_any_task(&sleeper, 1, WEFT_NO_DEADLINE), -ETIMEDOUT,
                 "wait_any");
    weft_group_t *g;
    cr_assert_eq(weft_group_create(&g), 0);
    cr_assert_eq(weft_group_spawn(g, NULL, sleep_hour, NULL), 0);
    cr_assert_eq(weft_group_wait(g), -ETIMEDOUT, "group: children cancelled");
    cr_assert_eq(weft_group_destroy(g), 0, "and gone");
    cr_assert_eq(weft_sleep_ms(HOUR_MS), -ETIMEDOUT, "sleep");
    cr_assert_eq(weft_deadline_pop(&d), 0);

    /* Nothing the waits timed out on was consumed. */
    cr_assert_eq(weft_future_set(f, 5), 0);
    cr_assert_eq(weft_future_wait(f, &res), 0);
    cr_assert_eq(res, 5);

    /* gather, last: it cancels what it waited for when cut short. */
    cr_assert_eq(weft_deadline_push_after(&d, 1 * MS), 0);
    intptr_t r[1] = {0};
    cr_assert_eq(weft_gather(&sleeper, 1, r), -ETIMEDOUT, "gather");
    cr_assert_eq(r[0], -ECANCELED, "the task was cancelled and joined");
    cr_assert_eq(weft_join(sleeper), -EINVAL, "spent");
    cr_assert_eq(weft_deadline_pop(&d), 0);
    cr_assert_eq(weft_future_destroy(f), 0);
    return 0;
}

Test(deadline, every_wait_honours_the_scope, .timeout = 30)
{
    cr_assert_eq(run_with(2, each_wait, NULL), 0);
}

/* ---- Explicit deadlines ------------------------------------------------------ */

static intptr_t times_out_itself(void *arg)
{
    (void)arg;
    return -ETIMEDOUT;
}

static intptr_t explicit_deadlines(void *arg)
{
    (void)arg;
    weft_task_t t;
    intptr_t res = 1;
    cr_assert_eq(weft_spawn(&t, sleep_hour, NULL), 0);
    cr_assert_eq(weft_join_until(t, weft_now_ns() + MS, &res), -ETIMEDOUT);
    cr_assert_eq(res, 1, "untouched");
    cr_assert_eq(weft_join_until(t, 0, &res), -ETIMEDOUT, "already past");
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join_until(t, WEFT_NO_DEADLINE, &res), 0,
                 "still joinable after its timeouts");
    cr_assert_eq(res, -ECANCELED);

    /* A task returning -ETIMEDOUT is told apart from a join timing out. */
    cr_assert_eq(weft_spawn(&t, times_out_itself, NULL), 0);
    cr_assert_eq(weft_join_until(t, WEFT_NO_DEADLINE, &res), 0);
    cr_assert_eq(res, -ETIMEDOUT);

    weft_future_t *f;
    cr_assert_eq(weft_future_create(&f), 0);
    cr_assert_eq(weft_future_wait_until(f, weft_now_ns() + MS, &res),
                 -ETIMEDOUT);
    weft_task_t many[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_spawn(&many[i], sleep_hour, NULL), 0);
    cr_assert_eq(weft_wait_any_task(many, 3, weft_now_ns() + MS), -ETIMEDOUT);
    intptr_t r[3];
    cr_assert_eq(weft_gather_ex(many, 3, r, 0, weft_now_ns() + MS),
                 -ETIMEDOUT);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(r[i], -ECANCELED);
    weft_group_t *g;
    cr_assert_eq(weft_group_create(&g), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_group_spawn(g, NULL, sleep_hour, NULL), 0);
    cr_assert_eq(weft_group_wait_until(g, weft_now_ns() + MS), -ETIMEDOUT);
    cr_assert_eq(weft_group_errors(g, NULL, 0), 0,
                 "cancelled children are not failures");
    cr_assert_eq(weft_group_destroy(g), 0);
    cr_assert_eq(weft_future_destroy(f), 0);
    return 0;
}

Test(deadline, explicit_deadlines_on_every_wait, .timeout = 30)
{
    cr_assert_eq(run_with(2, explicit_deadlines, NULL), 0);
}

/* Plain threads: explicit deadlines work, on futures even without a
 * runtime. */
Test(deadline, plain_threads_wait_with_deadlines, .timeout = 30)
{
    weft_future_t *f;
    intptr_t res;
    cr_assert_eq(weft_future_create(&f), 0);
    uint64_t t0 = weft_now_ns();
    cr_assert_eq(weft_future_wait_until(f, t0 + 2 * MS, &res), -ETIMEDOUT);
    cr_assert_geq(weft_now_ns(), t0 + 2 * MS, "never early");

    cr_assert_eq(weft_start(NULL), 0);
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, sleep_hour, NULL), 0);
    cr_assert_eq(weft_join_until(t, weft_now_ns() + 2 * MS, &res), -ETIMEDOUT);
    cr_assert_eq(weft_wait_any_task(&t, 1, weft_now_ns() + MS), -ETIMEDOUT);
    cr_assert_eq(weft_future_wait_until(f, weft_now_ns() + MS, &res),
                 -ETIMEDOUT);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join_until(t, WEFT_NO_DEADLINE, &res), 0);
    cr_assert_eq(res, -ECANCELED);
    cr_assert_eq(weft_stop(), 0);
    cr_assert_eq(weft_future_destroy(f), 0);
}

/* ---- Deadlines racing wake-ups: exactly one outcome ------------------------ */

#define RACES SCALED(3000)

struct race {
    weft_future_t *f;
    uint64_t deadline;
};

static intptr_t setter(void *arg)
{
    struct race *r = arg;
    /* Set right around the waiter's deadline. */
    while (weft_now_ns() + 2000 < r->deadline)
        weft_yield();
    return weft_future_set(r->f, 7);
}

static intptr_t finisher(void *arg)
{
    uint64_t deadline = (uint64_t)(uintptr_t)arg;
    while (weft_now_ns() + 2000 < deadline)
        weft_yield();
    return 11;
}

static intptr_t races(void *arg)
{
    (void)arg;
    int woken = 0, timed_out = 0, joined = 0, join_timeouts = 0;
    uint64_t seed = 5;
    for (int i = 0; i < RACES; i++) {
        struct race r;
        cr_assert_eq(weft_future_create(&r.f), 0);
        r.deadline = weft_now_ns() + 20000 + test_rand(&seed) % 20000;
        weft_task_t s;
        cr_assert_eq(weft_spawn(&s, setter, &r), 0);
        intptr_t v = 0;
        int rc = weft_future_wait_until(r.f, r.deadline, &v);
        if (rc == 0) {
            cr_assert_eq(v, 7);
            woken++;
        } else {
            cr_assert_eq(rc, -ETIMEDOUT);
            timed_out++;
        }
        cr_assert_eq(weft_join(s), 0);
        cr_assert_eq(weft_future_try_get(r.f, &v), 0, "the value stays");
        cr_assert_eq(v, 7);
        cr_assert_eq(weft_future_destroy(r.f), 0);

        /* A join racing its task's end: never a lost result. */
        uint64_t d = weft_now_ns() + 20000 + test_rand(&seed) % 20000;
        weft_task_t t;
        cr_assert_eq(weft_spawn(&t, finisher, (void *)(uintptr_t)d), 0);
        intptr_t res = 0;
        rc = weft_join_until(t, d, &res);
        if (rc == 0) {
            joined++;
        } else {
            cr_assert_eq(rc, -ETIMEDOUT);
            join_timeouts++;
            cr_assert_eq(weft_join_until(t, WEFT_NO_DEADLINE, &res), 0);
        }
        cr_assert_eq(res, 11);
    }
    cr_assert_eq(woken + timed_out, RACES);
    cr_assert_eq(joined + join_timeouts, RACES);
    return 0;
}

Test(deadline, deadlines_racing_wakeups_have_one_outcome, .timeout = 120)
{
    for (uint64_t seed = 1; seed <= 3; seed++) {
        weft_config_t cfg;
        weft_config_init(&cfg);
        cfg.workers = 2 + (unsigned)seed % 2;
        cfg.shuffle_seed = seed * 7777;
        cr_assert_eq(run_cfg(&cfg, races, NULL), 0);
    }
}
