/* tests/sched_future.c: futures: one value (or error) for every waiter,
 * fibers and plain threads alike; set from threads that never touch the
 * runtime, or with no runtime at all; refused misuse (setting twice,
 * destroying with waiters, dead or foreign futures); many producers and
 * consumers across workers with exact accounting. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "support/weft_test.h"

#define MS 1000000ull

static intptr_t wait_value(void *arg)
{
    intptr_t v = -1;
    int r = weft_future_wait(arg, &v);
    return r < 0 ? r : v;
}

static intptr_t basics(void *arg)
{
    (void)arg;
    weft_future_t *f;
    cr_assert_eq(weft_future_create(&f), 0);
    cr_assert_eq(weft_future_try_get(f, NULL), -EAGAIN);
    weft_task_t t[10];
    for (int i = 0; i < 10; i++)
        cr_assert_eq(weft_spawn(&t[i], wait_value, f), 0);
    cr_assert_eq(weft_future_set(f, 123), 0);
    cr_assert_eq(weft_future_set(f, 456), -EALREADY);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(weft_join(t[i]), 123);
    intptr_t v = 0;
    cr_assert_eq(weft_future_try_get(f, &v), 0);
    cr_assert_eq(v, 123, "the first result stays");
    cr_assert_eq(weft_future_wait(f, &v), 0, "set: no wait");
    cr_assert_eq(weft_future_wait(f, NULL), 0);
    cr_assert_eq(weft_future_destroy(f), 0);

    /* An error is a result like any other. */
    cr_assert_eq(weft_future_create(&f), 0);
    cr_assert_eq(weft_spawn(&t[0], wait_value, f), 0);
    cr_assert_eq(weft_future_set(f, -ECONNRESET), 0);
    cr_assert_eq(weft_join(t[0]), -ECONNRESET);
    cr_assert_eq(weft_future_destroy(f), 0);
    return 0;
}

Test(future, every_waiter_gets_the_one_result, .timeout = 30)
{
    cr_assert_eq(run_with(2, basics, NULL), 0);
}

/* On one worker the helper runs only once the main task is parked in its
 * wait, so the wait is surely inside when destroy is tried. */
static intptr_t try_destroy_then_set(void *arg)
{
    weft_future_t *f = arg;
    int busy = weft_future_destroy(f);
    cr_assert_eq(weft_future_set(f, 5), 0);
    return busy;
}

static intptr_t destroy_busy(void *arg)
{
    (void)arg;
    weft_future_t *f;
    cr_assert_eq(weft_future_create(&f), 0);
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, try_destroy_then_set, f), 0);
    intptr_t v = 0;
    cr_assert_eq(weft_future_wait(f, &v), 0);
    cr_assert_eq(v, 5);
    cr_assert_eq(weft_join(t), -EBUSY, "a waiter was inside");
    cr_assert_eq(weft_future_destroy(f), 0, "and once it returned, fine");
    return 0;
}

Test(future, destroy_with_a_waiter_inside_is_refused, .timeout = 30)
{
    cr_assert_eq(run_with(1, destroy_busy, NULL), 0);
}

static intptr_t bad_input(void *arg)
{
    (void)arg;
    intptr_t v;
    cr_assert_eq(weft_future_create(NULL), -EINVAL);
    cr_assert_eq(weft_future_set(NULL, 1), -EINVAL);
    cr_assert_eq(weft_future_wait(NULL, &v), -EINVAL);
    cr_assert_eq(weft_future_try_get(NULL, &v), -EINVAL);
    cr_assert_eq(weft_future_destroy(NULL), -EINVAL);
    /* Something that is not a future. */
    static _Alignas(64) unsigned char junk[256];
    memset(junk, 0x5a, sizeof junk);
    weft_future_t *fake = (weft_future_t *)junk;
    cr_assert_eq(weft_future_wait(fake, &v), -EINVAL);
    cr_assert_eq(weft_future_set(fake, 1), -EINVAL);
    cr_assert_eq(weft_future_destroy(fake), -EINVAL);
    weft_waitable_t w = weft_waitable_future(fake);
    cr_assert_eq(weft_wait_any(&w, 1, WEFT_NO_DEADLINE), -EINVAL);
#if WEFT_DEBUG_LEVEL >= 1
    /* Debug builds keep a destroyed future's memory, so this is reliable
     * there (release builds free it: using it is undefined). */
    weft_future_t *f;
    cr_assert_eq(weft_future_create(&f), 0);
    cr_assert_eq(weft_future_destroy(f), 0);
    cr_assert_eq(weft_future_wait(f, &v), -EINVAL, "destroyed");
    cr_assert_eq(weft_future_set(f, 1), -EINVAL);
    cr_assert_eq(weft_future_destroy(f), -EINVAL, "destroyed twice");
    w = weft_waitable_future(f);
    cr_assert_eq(weft_wait_any(&w, 1, WEFT_NO_DEADLINE), -EINVAL);
#endif
    return 0;
}

Test(future, misuse_is_refused, .timeout = 30)
{
    cr_assert_eq(run_with(1, bad_input, NULL), 0);
}

/* ---- No runtime: plain threads only ------------------------------------ */

static void *thread_wait(void *arg)
{
    intptr_t v = -1;
    int r = weft_future_wait(arg, &v);
    return (void *)(r < 0 ? r : v);
}

static void *thread_set(void *arg)
{
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    return (void *)(intptr_t)weft_future_set(arg, 99);
}

Test(future, works_without_a_runtime, .timeout = 30)
{
    weft_future_t *f;
    cr_assert_eq(weft_future_create(&f), 0);
    pthread_t w[4], s;
    for (int i = 0; i < 4; i++)
        pthread_create(&w[i], NULL, thread_wait, f);
    pthread_create(&s, NULL, thread_set, f);
    void *r;
    pthread_join(s, &r);
    cr_assert_eq((intptr_t)r, 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(w[i], &r);
        cr_assert_eq((intptr_t)r, 99);
    }
    cr_assert_eq(weft_future_destroy(f), 0);
}

/* ---- Set from a foreign thread, waited on by fibers and threads --------- */

struct foreign {
    weft_future_t *f;
    atomic_int fibers_waiting;
};

static intptr_t fiber_waits(void *arg)
{
    struct foreign *fo = arg;
    atomic_fetch_add(&fo->fibers_waiting, 1);
    intptr_t v = 0;
    cr_assert_eq(weft_future_wait(fo->f, &v), 0);
    return v;
}

static void *foreign_setter(void *arg)
{
    struct foreign *fo = arg;
    /* Never calls into the runtime except through the future. */
    while (atomic_load(&fo->fibers_waiting) < 50)
        sched_yield();
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    cr_assert_eq(weft_future_set(fo->f, 31337), 0);
    return NULL;
}

Test(future, set_from_a_foreign_thread_wakes_fibers_and_threads,
     .timeout = 60)
{
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 3;
    cr_assert_eq(weft_start(&cfg), 0);
    struct foreign fo;
    atomic_init(&fo.fibers_waiting, 0);
    cr_assert_eq(weft_future_create(&fo.f), 0);
    weft_task_t t[50];
    for (int i = 0; i < 50; i++)
        cr_assert_eq(weft_spawn(&t[i], fiber_waits, &fo), 0);
    pthread_t th[3], setter;
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, thread_wait, fo.f);
    pthread_create(&setter, NULL, foreign_setter, &fo);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(weft_join(t[i]), 31337);
    void *r;
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], &r);
        cr_assert_eq((intptr_t)r, 31337);
    }
    pthread_join(setter, NULL);
    cr_assert_eq(weft_future_destroy(fo.f), 0);
    cr_assert_eq(weft_stop(), 0);
}

/* ---- Cancelling one waiter leaves the others alone -------------------------- */

static intptr_t cancel_one(void *arg)
{
    (void)arg;
    weft_future_t *f;
    cr_assert_eq(weft_future_create(&f), 0);
    weft_task_t a, b;
    cr_assert_eq(weft_spawn(&a, wait_value, f), 0);
    cr_assert_eq(weft_spawn(&b, wait_value, f), 0);
    weft_sleep_ms(2);
    cr_assert_eq(weft_cancel(a), 0);
    cr_assert_eq(weft_join(a), -ECANCELED);
    cr_assert_eq(weft_future_set(f, 8), 0);
    cr_assert_eq(weft_join(b), 8);
    cr_assert_eq(weft_future_destroy(f), 0);
    return 0;
}

Test(future, cancelling_a_waiter_leaves_the_others, .timeout = 30)
{
    cr_assert_eq(run_with(2, cancel_one, NULL), 0);
}

/* ---- Many producers and consumers, 16 workers on 2 cores ------------------- */

#define NFUT SCALED(20000)
#define CONSUMERS 4

static weft_future_t *futs[NFUT];
static atomic_long consumed_sum;

static intptr_t consumer(void *arg)
{
    intptr_t k = (intptr_t)arg;
    long sum = 0;
    for (int i = (int)k; i < NFUT; i += 1) {
        intptr_t v = 0;
        cr_assert_eq(weft_future_wait(futs[i], &v), 0);
        cr_assert_eq(v, (intptr_t)i * 3);
        sum += (long)v;
    }
    atomic_fetch_add(&consumed_sum, sum);
    return 0;
}

static intptr_t fiber_producer(void *arg)
{
    intptr_t k = (intptr_t)arg;
    uint64_t seed = (uint64_t)k + 11;
    for (int i = (int)k; i < NFUT; i += 4) {
        if (test_rand(&seed) % 4 == 0)
            weft_yield();
        cr_assert_eq(weft_future_set(futs[i], (intptr_t)i * 3), 0);
    }
    return 0;
}

static void *thread_producer(void *arg)
{
    intptr_t k = (intptr_t)arg;
    uint64_t seed = (uint64_t)k + 17;
    for (int i = (int)k; i < NFUT; i += 4) {
        random_spin(&seed);
        cr_assert_eq(weft_future_set(futs[i], (intptr_t)i * 3), 0);
    }
    return NULL;
}

Test(future, many_producers_and_consumers_sixteen_workers, .timeout = 120)
{
    atomic_store(&consumed_sum, 0);
    for (int i = 0; i < NFUT; i++)
        cr_assert_eq(weft_future_create(&futs[i]), 0);
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 16;
    cfg.pin = WEFT_PIN_OFF;
    cfg.shuffle_seed = 4242;
    cr_assert_eq(weft_start(&cfg), 0);
    weft_task_t c[CONSUMERS], p[2];
    /* Consumers each wait for every future, starting at a different one. */
    for (intptr_t k = 0; k < CONSUMERS; k++)
        cr_assert_eq(weft_spawn(&c[k], consumer, (void *)(k * NFUT / 8)), 0);
    /* Half the futures are set by fibers, half by foreign threads. */
    for (intptr_t k = 0; k < 2; k++)
        cr_assert_eq(weft_spawn(&p[k], fiber_producer, (void *)k), 0);
    pthread_t th[2];
    for (intptr_t k = 0; k < 2; k++)
        pthread_create(&th[k], NULL, thread_producer, (void *)(k + 2));
    for (int k = 0; k < 2; k++)
        cr_assert_eq(weft_join(p[k]), 0);
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < CONSUMERS; k++)
        cr_assert_eq(weft_join(c[k]), 0);
    cr_assert_eq(weft_stop(), 0);
    long expect = 0;
    for (int k = 0; k < CONSUMERS; k++)
        for (int i = k * NFUT / 8; i < NFUT; i++)
            expect += (long)i * 3;
    cr_assert_eq(atomic_load(&consumed_sum), expect);
    for (int i = 0; i < NFUT; i++) {
        cr_assert_eq(weft_future_set(futs[i], 0), -EALREADY);
        cr_assert_eq(weft_future_destroy(futs[i]), 0);
    }
}
