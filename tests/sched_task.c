/* tests/sched_task.c: tasks' lives: spawn, join, detach, self, yield, and
 * every misuse of a handle. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "support/weft_test.h"

static intptr_t twice(void *arg)
{
    return 2 * (intptr_t)arg;
}

static intptr_t fails(void *arg)
{
    (void)arg;
    return -ENOENT;
}

static intptr_t join_results(void *arg)
{
    (void)arg;
    weft_task_t t[200];
    for (intptr_t i = 0; i < 200; i++)
        cr_assert_eq(weft_spawn(&t[i], twice, (void *)i), 0);
    for (intptr_t i = 0; i < 200; i++)
        cr_assert_eq(weft_join(t[i]), 2 * i);
    weft_task_t f;
    cr_assert_eq(weft_spawn(&f, fails, NULL), 0);
    cr_assert_eq(weft_join(f), -ENOENT, "a task's error reaches its joiner");
    return 7;
}

Test(task, join_returns_each_result_and_error, .timeout = 30)
{
    cr_assert_eq(run_with(2, join_results, NULL), 7);
}

static intptr_t misuse(void *arg)
{
    (void)arg;
    weft_task_t t;
    cr_assert_eq(weft_join(WEFT_TASK_NONE), -EINVAL);
    cr_assert_eq(weft_detach(WEFT_TASK_NONE), -EINVAL);
    cr_assert_eq(weft_join(weft_self()), -EINVAL, "joining oneself");
    cr_assert_eq(weft_spawn(&t, NULL, NULL), -EINVAL);
    weft_spawn_opts_t bad = {.flags = 0x80};
    cr_assert_eq(weft_spawn_ex(&t, twice, NULL, &bad), -EINVAL);

    cr_assert_eq(weft_spawn(&t, twice, (void *)3), 0);
    cr_assert_eq(weft_join(t), 6);
    cr_assert_eq(weft_join(t), -EINVAL, "joining twice");
    cr_assert_eq(weft_detach(t), -EINVAL, "detaching a joined task");

    cr_assert_eq(weft_spawn(&t, twice, (void *)3), 0);
    cr_assert_eq(weft_detach(t), 0);
    cr_assert_eq(weft_detach(t), -EINVAL, "detaching twice");
    cr_assert_eq(weft_join(t), -EINVAL, "joining a detached task");
    return 0;
}

Test(task, misused_handles_are_refused, .timeout = 30)
{
    cr_assert_eq(run_with(2, misuse, NULL), 0);
}

static intptr_t stale(void *arg)
{
    (void)arg;
    weft_task_t old;
    cr_assert_eq(weft_spawn(&old, twice, (void *)1), 0);
    cr_assert_eq(weft_join(old), 2);
    /* Reuse the descriptor many times over: the old handle must never
     * name one of the new tasks. */
    for (int round = 0; round < 50; round++) {
        weft_task_t t[64];
        for (int i = 0; i < 64; i++)
            cr_assert_eq(weft_spawn(&t[i], twice, (void *)(intptr_t)i), 0);
        cr_assert_eq(weft_join(old), -EINVAL);
        cr_assert_eq(weft_detach(old), -EINVAL);
        for (int i = 0; i < 64; i++)
            cr_assert_eq(weft_join(t[i]), 2 * i);
    }
    return 0;
}

Test(task, stale_handle_never_names_a_reused_descriptor, .timeout = 30)
{
    cr_assert_eq(run_with(2, stale, NULL), 0);
}

static intptr_t report_self(void *arg)
{
    weft_task_t *out = arg;
    *out = weft_self();
    return (intptr_t)weft_task_id(weft_self());
}

static intptr_t self_check(void *arg)
{
    (void)arg;
    weft_task_t seen = WEFT_TASK_NONE, t;
    cr_assert_eq(weft_spawn(&t, report_self, &seen), 0);
    intptr_t id = weft_join(t);
    cr_assert_eq((uint64_t)id, weft_task_id(t));
    cr_assert_eq(seen.id_, t.id_);
    cr_assert_neq(weft_task_id(weft_self()), 0);
    cr_assert_eq(weft_in_fiber(), 1);
    cr_assert_geq(weft_worker_index(), 0);
    cr_assert_eq(weft_worker_count(), 3);
    return 0;
}

Test(task, self_names_the_running_task, .timeout = 30)
{
    cr_assert_eq(run_with(3, self_check, NULL), 0);
}

Test(task, fiber_only_calls_refuse_plain_threads, .timeout = 30)
{
    cr_assert_eq(weft_yield(), -EPERM);
    cr_assert_eq(weft_sleep_ms(1), -EPERM);
    cr_assert_eq(weft_worker_index(), -EPERM);
    cr_assert_eq(weft_in_fiber(), 0);
    cr_assert_eq(weft_self().id_, 0);
    weft_task_t t = WEFT_TASK_NONE;
    cr_assert_eq(weft_spawn(&t, twice, NULL), -ESRCH, "no runtime yet");
    cr_assert_eq(weft_join(t), -ESRCH);
    cr_assert_eq(weft_worker_count(), -ESRCH);
    cr_assert_eq(weft_stop(), -ESRCH);
    intptr_t r;
    cr_assert_eq(weft_block_on(twice, NULL, &r), -ESRCH);

    cr_assert_eq(weft_start(NULL), 0);
    cr_assert_eq(weft_start(NULL), -EBUSY);
    weft_spawn_opts_t pinned = {.flags = WEFT_SPAWN_PINNED};
    cr_assert_eq(weft_spawn_ex(&t, twice, NULL, &pinned), -EPERM,
                 "a plain thread has no worker to pin to");
    cr_assert_eq(weft_yield(), -EPERM);
    cr_assert_eq(weft_block_on(twice, (void *)21, &r), 0);
    cr_assert_eq(r, 42);
    cr_assert_eq(weft_stop(), 0);
    cr_assert_eq(weft_stop(), -ESRCH);
}

static intptr_t nested_block_on(void *arg)
{
    (void)arg;
    intptr_t r;
    cr_assert_eq(weft_block_on(twice, NULL, &r), -EPERM);
    cr_assert_eq(weft_start(NULL), -EPERM);
    cr_assert_eq(weft_stop(), -EPERM);
    return 0;
}

Test(task, runtime_calls_refuse_fibers, .timeout = 30)
{
    cr_assert_eq(run_with(1, nested_block_on, NULL), 0);
}

/* ---- Pinned tasks never move ---------------------------------------------- */

static atomic_int moved;

static intptr_t pinned_body(void *arg)
{
    (void)arg;
    int home = weft_worker_index();
    for (int i = 0; i < 200; i++) {
        if (i % 3 == 0)
            weft_sleep_ns(1000);
        else
            weft_yield();
        if (weft_worker_index() != home)
            atomic_fetch_add(&moved, 1);
    }
    return home;
}

static intptr_t busy(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++)
        weft_yield();
    return 0;
}

static intptr_t pinned_main(void *arg)
{
    (void)arg;
    weft_task_t p[32], b[64];
    weft_spawn_opts_t pin = {.flags = WEFT_SPAWN_PINNED, .name = "pinned"};
    int me = weft_worker_index();
    for (int i = 0; i < 32; i++)
        cr_assert_eq(weft_spawn_ex(&p[i], pinned_body, NULL, &pin), 0);
    for (int i = 0; i < 64; i++)
        cr_assert_eq(weft_spawn(&b[i], busy, NULL), 0);
    for (int i = 0; i < 32; i++)
        cr_assert_eq(weft_join(p[i]), me, "pinned to the spawner's worker");
    for (int i = 0; i < 64; i++)
        cr_assert_eq(weft_join(b[i]), 0);
    return 0;
}

Test(task, pinned_tasks_stay_on_their_worker, .timeout = 60)
{
    atomic_store(&moved, 0);
    cr_assert_eq(run_with(4, pinned_main, NULL), 0);
    cr_assert_eq(atomic_load(&moved), 0);
}

/* ---- Spawning and joining from plain threads -------------------------------- */

static atomic_long external_sum;

static intptr_t add_to_sum(void *arg)
{
    atomic_fetch_add(&external_sum, (long)(intptr_t)arg);
    if ((intptr_t)arg % 7 == 0)
        weft_yield();
    return (intptr_t)arg;
}

static void *external_thread(void *arg)
{
    long base = (long)(intptr_t)arg;
    for (long i = 0; i < 2000; i++) {
        weft_task_t t;
        if (i % 2) {
            cr_assert_eq(weft_spawn(NULL, add_to_sum, (void *)(base + i)), 0);
        } else {
            cr_assert_eq(weft_spawn(&t, add_to_sum, (void *)(base + i)), 0);
            cr_assert_eq(weft_join(t), base + i);
        }
    }
    return NULL;
}

Test(task, plain_threads_spawn_and_join, .timeout = 60)
{
    atomic_store(&external_sum, 0);
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 3;
    cr_assert_eq(weft_start(&cfg), 0);
    pthread_t th[4];
    for (long i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, external_thread, (void *)(i * 100000));
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    /* weft_stop waits for the detached ones too. */
    cr_assert_eq(weft_stop(), 0);
    long expect = 0;
    for (long t = 0; t < 4; t++)
        for (long i = 0; i < 2000; i++)
            expect += t * 100000 + i;
    cr_assert_eq(atomic_load(&external_sum), expect);
}

/* ---- Shutdown cancels what is left --------------------------------------- */

static atomic_int cancelled_sleepers;

static intptr_t sleep_long(void *arg)
{
    (void)arg;
    int r = weft_sleep_ms(3600 * 1000);
    if (r == -ECANCELED)
        atomic_fetch_add(&cancelled_sleepers, 1);
    return r;
}

static intptr_t leave_sleepers(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        cr_assert_eq(weft_spawn(NULL, sleep_long, NULL), 0);
    weft_task_t kept;
    cr_assert_eq(weft_spawn(&kept, sleep_long, NULL), 0);
    weft_sleep_ms(5);
    return 0; /* `kept` is never joined: shutdown must still end it */
}

Test(task, shutdown_cancels_live_tasks_and_waits_for_them, .timeout = 30)
{
    atomic_store(&cancelled_sleepers, 0);
    cr_assert_eq(run_with(2, leave_sleepers, NULL), 0);
    cr_assert_eq(atomic_load(&cancelled_sleepers), 101);
}

/* ---- Runtimes come and go -------------------------------------------------- */

Test(task, runtime_restarts_cleanly_many_times, .timeout = 60)
{
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(run_with(1 + i % 4, join_results, NULL), 7);
    }
}

/* A plain thread's spawn must wake a parked worker, also when it is the
 * only one (its own pushes never need a wake-up; this one does). */
Test(task, plain_thread_spawn_wakes_the_only_parked_worker, .timeout = 60)
{
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 1;
    cr_assert_eq(weft_start(&cfg), 0);
    for (int i = 0; i < 10; i++) {
        struct timespec ts = {0, 20 * 1000 * 1000}; /* let the worker park */
        nanosleep(&ts, NULL);
        intptr_t r = 0;
        cr_assert_eq(weft_block_on(twice, (void *)(intptr_t)i, &r), 0);
        cr_assert_eq(r, 2 * i);
    }
    cr_assert_eq(weft_stop(), 0);
}
