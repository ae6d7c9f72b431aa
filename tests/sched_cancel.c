/* tests/sched_cancel.c: cancelling tasks: each kind of wait ends with
 * -ECANCELED once, the task decides what it returns, finished tasks are
 * left alone, stale handles are refused, and a cancel never lands on a task
 * that merely reuses a cancelled one's descriptor. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "support/weft_test.h"

#define HOUR_MS (3600ull * 1000)

static intptr_t sleep_hour(void *arg)
{
    (void)arg;
    return weft_sleep_ms(HOUR_MS);
}

/* Sleep until cancelled; then show the request was one-shot: a short sleep
 * afterwards completes. */
static intptr_t sleep_then_clean_up(void *arg)
{
    atomic_int *stage = arg;
    int r = weft_sleep_ms(HOUR_MS);
    if (r != -ECANCELED)
        return 1000 + r;
    atomic_store(stage, 1);
    int again = weft_sleep_ns(1000);
    if (again != 0)
        return 2000 + again;
    return weft_cancelled() == 1 ? -ECANCELED : 3000;
}

static intptr_t cancel_sleeper(void *arg)
{
    (void)arg;
    atomic_int stage = 0;
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, sleep_then_clean_up, &stage), 0);
    weft_sleep_ms(2);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t), -ECANCELED, "the joiner sees what it returned");
    cr_assert_eq(atomic_load(&stage), 1);
    return 0;
}

Test(cancel, sleep_ends_once_and_the_task_cleans_up, .timeout = 30)
{
    cr_assert_eq(run_with(2, cancel_sleeper, NULL), 0);
}

/* ---- A cancel before any wait reaches the next one --------------------- */

static intptr_t wait_for_go(void *arg)
{
    atomic_int *go = arg;
    while (!atomic_load(go))
        weft_yield(); /* yield is not a wait: it never reports a cancel */
    return weft_sleep_ms(HOUR_MS);
}

static intptr_t cancel_before_wait(void *arg)
{
    (void)arg;
    atomic_int go = 0;
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, wait_for_go, &go), 0);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_cancel(t), 0, "a second request merges with the first");
    atomic_store(&go, 1);
    cr_assert_eq(weft_join(t), -ECANCELED);
    return 0;
}

Test(cancel, request_before_the_first_wait_ends_the_next_wait, .timeout = 30)
{
    cr_assert_eq(run_with(2, cancel_before_wait, NULL), 0);
}

/* ---- Finished tasks, bad handles, self ----------------------------------- */

static intptr_t seven(void *arg)
{
    (void)arg;
    return 7;
}

static intptr_t cancel_finished(void *arg)
{
    (void)arg;
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, seven, NULL), 0);
    cr_assert_eq(weft_wait_any_task(&t, 1, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_cancel(t), 0, "finished: nothing to do");
    cr_assert_eq(weft_join(t), 7, "and nothing changed");
    cr_assert_eq(weft_cancel(t), -EINVAL, "a spent handle");
    cr_assert_eq(weft_cancel(WEFT_TASK_NONE), -EINVAL);
    weft_task_t never = {((uint64_t)5 << 32) | 0xfffffff0u};
    cr_assert_eq(weft_cancel(never), -EINVAL, "an index never issued");

    weft_task_t d;
    cr_assert_eq(weft_spawn(&d, sleep_hour, NULL), 0);
    cr_assert_eq(weft_detach(d), 0);
    cr_assert_eq(weft_cancel(d), 0, "a detached task can be cancelled");
    return 0;
}

Test(cancel, finished_tasks_and_bad_handles, .timeout = 30)
{
    cr_assert_eq(run_with(2, cancel_finished, NULL), 0);
}

static intptr_t cancel_self(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_cancelled(), 0);
    cr_assert_eq(weft_cancel(weft_self()), 0);
    cr_assert_eq(weft_cancelled(), 1);
    cr_assert_eq(weft_sleep_ms(HOUR_MS), -ECANCELED);
    cr_assert_eq(weft_cancelled(), 1, "the mark stays after the request is "
                                      "consumed");
    cr_assert_eq(weft_sleep_ns(1000), 0);
    return 0;
}

Test(cancel, a_task_may_cancel_itself, .timeout = 30)
{
    cr_assert_eq(run_with(1, cancel_self, NULL), 0);
}

Test(cancel, plain_threads_and_no_runtime, .timeout = 30)
{
    cr_assert_eq(weft_cancelled(), -EPERM);
    cr_assert_eq(weft_cancel(WEFT_TASK_NONE), -ESRCH);
}

/* ---- Every kind of wait ----------------------------------------------------- */

enum wait_kind { W_JOIN, W_FUTURE, W_GATHER, W_WAIT_ANY, W_GROUP, W_SLEEP, W_N };

struct victim {
    enum wait_kind kind;
    weft_future_t *f;
    weft_task_t other;        /* a long sleeper to join, gather, wait_any */
    weft_group_t *group;      /* W_GROUP */
    atomic_int waiting;
    int result;
};

static intptr_t victim(void *arg)
{
    struct victim *v = arg;
    intptr_t res = 0;
    atomic_store(&v->waiting, 1);
    switch (v->kind) {
    case W_JOIN:
        v->result = weft_join_until(v->other, WEFT_NO_DEADLINE, &res);
        break;
    case W_FUTURE:
        v->result = weft_future_wait(v->f, &res);
        break;
    case W_GATHER: {
        intptr_t r[1];
        v->result = weft_gather(&v->other, 1, r);
        res = r[0];
        break;
    }
    case W_WAIT_ANY: {
        weft_waitable_t items[2] = {weft_waitable_task(v->other),
                                    weft_waitable_future(v->f)};
        v->result = weft_wait_any(items, 2, WEFT_NO_DEADLINE);
        break;
    }
    case W_GROUP:
        cr_assert_eq(weft_group_spawn(v->group, NULL, sleep_hour, NULL), 0);
        cr_assert_eq(weft_group_spawn(v->group, NULL, sleep_hour, NULL), 0);
        v->result = weft_group_wait(v->group);
        cr_assert_eq(weft_group_destroy(v->group), 0, "the children are gone");
        break;
    case W_SLEEP:
        v->result = weft_sleep_ms(HOUR_MS);
        break;
    default:
        break;
    }
    (void)res;
    return 0;
}

static intptr_t cancel_each_wait(void *arg)
{
    (void)arg;
    for (int k = 0; k < W_N; k++) {
        struct victim v = {.kind = (enum wait_kind)k};
        atomic_init(&v.waiting, 0);
        cr_assert_eq(weft_future_create(&v.f), 0);
        cr_assert_eq(weft_spawn(&v.other, sleep_hour, NULL), 0);
        if (k == W_GROUP)
            cr_assert_eq(weft_group_create(&v.group), 0);
        weft_task_t t;
        cr_assert_eq(weft_spawn(&t, victim, &v), 0);
        while (!atomic_load(&v.waiting))
            weft_yield();
        weft_sleep_ms(2); /* let it block */
        cr_assert_eq(weft_cancel(t), 0);
        cr_assert_eq(weft_join(t), 0);
        switch (k) {
        case W_GATHER:
            /* The gathered task was cancelled with the gatherer and
             * joined by it: its handle is spent. */
            cr_assert_eq(v.result, -ECANCELED, "gather");
            cr_assert_eq(weft_join(v.other), -EINVAL);
            break;
        case W_GROUP:
            cr_assert_eq(v.result, -ECANCELED, "group wait");
            cr_assert_eq(weft_cancel(v.other), 0);
            cr_assert_eq(weft_join(v.other), -ECANCELED);
            break;
        default:
            cr_assert_eq(v.result, -ECANCELED, "wait kind %d", k);
            /* The object waited on is untouched. */
            cr_assert_eq(weft_cancel(v.other), 0);
            cr_assert_eq(weft_join(v.other), -ECANCELED);
        }
        cr_assert_eq(weft_future_try_get(v.f, NULL), -EAGAIN);
        cr_assert_eq(weft_future_destroy(v.f), 0);
    }
    return 0;
}

Test(cancel, every_kind_of_wait_ends_with_ecanceled, .timeout = 60)
{
    cr_assert_eq(run_with(2, cancel_each_wait, NULL), 0);
}

/* ---- A cancel from a plain thread racing the wake-up ------------------- */

#define RACES SCALED(5000)

struct race {
    weft_future_t *f;
    weft_task_t t;
    atomic_int ready, done;
};

static intptr_t race_waiter(void *arg)
{
    struct race *r = arg;
    intptr_t v = -1;
    atomic_store(&r->ready, 1);
    int rc = weft_future_wait(r->f, &v);
    if (rc == 0)
        return v == 42 ? 1 : -1000;
    return rc == -ECANCELED ? 2 : -2000 + rc;
}

static void *race_thread(void *arg)
{
    struct race *r = arg;
    uint64_t seed = (uint64_t)(uintptr_t)arg | 1;
    for (int i = 0; i < RACES; i++) {
        while (!atomic_load(&r[i].ready))
            ;
        if (test_rand(&seed) & 1) {
            random_spin(&seed);
            weft_cancel(r[i].t);
            weft_future_set(r[i].f, 42);
        } else {
            weft_future_set(r[i].f, 42);
            random_spin(&seed);
            weft_cancel(r[i].t);
        }
        atomic_store(&r[i].done, 1);
    }
    return NULL;
}

static intptr_t cancel_races_set(void *arg)
{
    (void)arg;
    static struct race r[RACES];
    for (int i = 0; i < RACES; i++) {
        atomic_init(&r[i].ready, 0);
        atomic_init(&r[i].done, 0);
        cr_assert_eq(weft_future_create(&r[i].f), 0);
    }
    pthread_t th;
    pthread_create(&th, NULL, race_thread, r);
    int woken = 0, cancelled = 0;
    for (int i = 0; i < RACES; i++) {
        cr_assert_eq(weft_spawn(&r[i].t, race_waiter, &r[i]), 0);
        intptr_t res = weft_join(r[i].t);
        if (res == 1)
            woken++;
        else if (res == 2)
            cancelled++;
        else
            cr_assert_fail("iteration %d: %ld", i, (long)res);
        /* Whatever won, the value is in the future. */
        while (!atomic_load(&r[i].done))
            weft_yield();
        intptr_t v = 0;
        cr_assert_eq(weft_future_try_get(r[i].f, &v) == 0 ? v : -1, 42);
    }
    pthread_join(th, NULL);
    for (int i = 0; i < RACES; i++)
        cr_assert_eq(weft_future_destroy(r[i].f), 0);
    cr_assert_eq(woken + cancelled, RACES, "exactly one outcome each");
    return 0;
}

Test(cancel, cancel_racing_a_wakeup_has_one_outcome, .timeout = 120)
{
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 3;
    cfg.shuffle_seed = 1234;
    cr_assert_eq(run_cfg(&cfg, cancel_races_set, NULL), 0);
}

/* ---- Stale handles never cancel the task that reuses a descriptor ------ */

#define ROUNDS SCALED(20000)

static atomic_int bystander_cancels;
static atomic_int stop_cancelling;

static intptr_t quick(void *arg)
{
    /* A few short waits, any of which a misdirected cancel would end. */
    for (int i = 0; i < 3; i++) {
        int r = weft_sleep_ns(1);
        if (r == -ECANCELED)
            return -ECANCELED;
    }
    return (intptr_t)arg;
}

static intptr_t bystander(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        if (weft_sleep_ns(1) == -ECANCELED)
            atomic_fetch_add(&bystander_cancels, 1);
    return 0;
}

static _Atomic uint64_t target_slot;

static void *canceller(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_cancelling)) {
        weft_task_t t = {atomic_load(&target_slot)};
        if (t.id_) {
            int r = weft_cancel(t);
            cr_assert(r == 0 || r == -EINVAL, "cancel: %d", r);
        }
    }
    return NULL;
}

static intptr_t stale_cancels(void *arg)
{
    (void)arg;
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, canceller, NULL);
    int hit = 0, missed = 0;
    for (int i = 0; i < ROUNDS; i++) {
        weft_task_t t, b;
        cr_assert_eq(weft_spawn(&t, quick, (void *)(intptr_t)(i + 1)), 0);
        atomic_store(&target_slot, t.id_);
        intptr_t r = weft_join(t);
        /* The target's descriptor is free now and the cancellers still aim
         * at its old handle: the bystander likely reuses the descriptor. */
        cr_assert_eq(weft_spawn(&b, bystander, NULL), 0);
        cr_assert_eq(weft_join(b), 0);
        if (r == -ECANCELED)
            hit++;
        else if (r == i + 1)
            missed++;
        else
            cr_assert_fail("round %d returned %ld", i, (long)r);
    }
    atomic_store(&stop_cancelling, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(hit + missed, ROUNDS);
    cr_assert_eq(atomic_load(&bystander_cancels), 0,
                 "a stale handle cancelled an unrelated task");
    return 0;
}

Test(cancel, stale_handles_never_cancel_a_reused_descriptor, .timeout = 120)
{
    atomic_store(&bystander_cancels, 0);
    atomic_store(&stop_cancelling, 0);
    atomic_store(&target_slot, 0);
    cr_assert_eq(run_with(1, stale_cancels, NULL), 0);
}

/* ---- Many cancellers, many tasks, 16 workers on 2 cores ------------------- */

#define MANY SCALED(3000)

static atomic_long finished_sum;

static intptr_t worker_task(void *arg)
{
    intptr_t i = (intptr_t)arg;
    uint64_t seed = (uint64_t)i * 7919 + 1;
    for (int k = 0; k < 4; k++) {
        int r = (test_rand(&seed) & 1) ? weft_sleep_ns(test_rand(&seed) % 20000)
                                       : weft_yield();
        if (r == -ECANCELED)
            return -ECANCELED;
    }
    atomic_fetch_add(&finished_sum, (long)i);
    return i;
}

struct shoot {
    weft_task_t *tasks;
    int from, to;
};

static intptr_t shooter(void *arg)
{
    struct shoot *s = arg;
    uint64_t seed = (uint64_t)s->from + 3;
    for (int i = s->from; i < s->to; i++) {
        if (test_rand(&seed) % 3 == 0)
            cr_assert_eq(weft_cancel(s->tasks[i]), 0);
        if (test_rand(&seed) % 8 == 0)
            weft_yield();
    }
    return 0;
}

static intptr_t many_cancels(void *arg)
{
    (void)arg;
    static weft_task_t tasks[MANY];
    for (intptr_t i = 0; i < MANY; i++)
        cr_assert_eq(weft_spawn(&tasks[i], worker_task, (void *)i), 0);
    struct shoot s[4];
    weft_task_t sh[4];
    for (int k = 0; k < 4; k++) {
        s[k] = (struct shoot){tasks, k * MANY / 4, (k + 1) * MANY / 4};
        cr_assert_eq(weft_spawn(&sh[k], shooter, &s[k]), 0);
    }
    for (int k = 0; k < 4; k++)
        cr_assert_eq(weft_join(sh[k]), 0);
    long sum = 0;
    int cancelled = 0;
    for (intptr_t i = 0; i < MANY; i++) {
        intptr_t r = weft_join(tasks[i]);
        if (r == -ECANCELED)
            cancelled++;
        else {
            cr_assert_eq(r, i);
            sum += (long)i;
        }
    }
    cr_assert_eq(sum, atomic_load(&finished_sum),
                 "every task that finished normally was counted once");
    (void)cancelled;
    return 0;
}

Test(cancel, many_tasks_many_cancellers_sixteen_workers, .timeout = 120)
{
    atomic_store(&finished_sum, 0);
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 16;
    cfg.pin = WEFT_PIN_OFF;
    cfg.shuffle_seed = 99;
    cr_assert_eq(run_cfg(&cfg, many_cancels, NULL), 0);
}
