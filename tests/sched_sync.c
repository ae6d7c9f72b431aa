/* tests/sched_sync.c: condition variables, semaphores, events and
 * wait-groups: their contracts, cancellation and deadlines at each wait
 * (a cancelled cond wait returns owning its mutex), and exact accounting
 * under many fibers across workers with deadlines racing the wake-ups
 * (no signal, unit or wake-up lost or counted twice). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "runtime/runtime.h"
#include "sched/sched.h"
#include "support/weft_test.h"

static struct weft__task *task_of(weft_task_t h)
{
    struct weft__task *t = weft__task_lookup(weft__runtime(), h.id_);
    cr_assert_not_null(t);
    return t;
}

static void cancel_task(weft_task_t h)
{
    weft__task_cancel(weft__runtime(), task_of(h));
}

/* From a fiber: let others run until task h is in a wait. */
static void await_blocked(weft_task_t h)
{
    struct weft__task *t = task_of(h);
    while ((uint32_t)atomic_load(&t->waiter.word) != WEFT_WAIT_PENDING)
        weft_sleep_ns(10000);
    weft_sleep_ns(200000); /* most likely parked by now; either way works */
}

static void set_scope(uint64_t deadline)
{
    weft__task_self(weft__worker_self())->deadline = deadline;
}

/* ---- Condition variables ------------------------------------------------- */

#define RING 4

struct buffer {
    weft_mutex_t *m;
    weft_cond_t *not_empty, *not_full;
    int ring[RING];
    int head, count; /* under m */
    bool done;       /* under m: no more items will come */
    int producers, consumers, per;
    _Atomic uint32_t *seen;
    atomic_int timeouts;
    uint64_t seed;
};

struct buffer_who {
    struct buffer *b;
    int id;
};

/* Half the waits have short deadlines: a timeout (or a spurious return)
 * just re-checks the predicate. */
static int timed_wait(struct buffer *b, weft_cond_t *c, uint64_t *rng)
{
    if (test_rand(rng) % 2) {
        int r = weft_cond_wait_until(c, b->m, weft_now_ns() + test_rand(rng) % 20000);
        if (r == -ETIMEDOUT)
            atomic_fetch_add(&b->timeouts, 1);
        return r == -ETIMEDOUT ? 0 : r;
    }
    return weft_cond_wait(c, b->m);
}

static intptr_t cond_producer(void *arg)
{
    struct buffer_who *w = arg;
    struct buffer *b = w->b;
    uint64_t rng = b->seed * 3 + (uint64_t)w->id;
    for (int i = 0; i < b->per; i++) {
        cr_assert_eq(weft_mutex_lock(b->m), 0);
        while (b->count == RING)
            cr_assert_eq(timed_wait(b, b->not_full, &rng), 0);
        b->ring[(b->head + b->count) % RING] = w->id * b->per + i;
        b->count++;
        cr_assert_eq(weft_cond_signal(b->not_empty), 0);
        cr_assert_eq(weft_mutex_unlock(b->m), 0);
        random_spin(&rng);
    }
    return 0;
}

static intptr_t cond_consumer(void *arg)
{
    struct buffer_who *w = arg;
    struct buffer *b = w->b;
    uint64_t rng = b->seed * 5 + (uint64_t)w->id;
    cr_assert_eq(weft_mutex_lock(b->m), 0);
    for (;;) {
        while (b->count == 0 && !b->done)
            cr_assert_eq(timed_wait(b, b->not_empty, &rng), 0);
        if (b->count == 0)
            break;
        int v = b->ring[b->head];
        b->head = (b->head + 1) % RING;
        b->count--;
        cr_assert_eq(weft_cond_signal(b->not_full), 0);
        cr_assert_eq(weft_mutex_unlock(b->m), 0);
        atomic_fetch_add(&b->seen[v], 1);
        random_spin(&rng);
        cr_assert_eq(weft_mutex_lock(b->m), 0);
    }
    cr_assert_eq(weft_mutex_unlock(b->m), 0);
    return 0;
}

static intptr_t buffer_body(void *arg)
{
    struct buffer *b = arg;
    int n = b->producers + b->consumers;
    weft_task_t t[32];
    struct buffer_who ws[32];
    for (int i = 0; i < n; i++) {
        ws[i] = (struct buffer_who){.b = b, .id = i < b->producers ? i : i - b->producers};
        cr_assert_eq(weft_spawn(&t[i], i < b->producers ? cond_producer
                                                          : cond_consumer,
                                &ws[i]),
                     0);
    }
    for (int i = 0; i < b->producers; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    cr_assert_eq(weft_mutex_lock(b->m), 0);
    b->done = true;
    cr_assert_eq(weft_cond_broadcast(b->not_empty), 0);
    cr_assert_eq(weft_mutex_unlock(b->m), 0);
    for (int i = b->producers; i < n; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    return 0;
}

Test(cond, bounded_buffer_delivers_each_item_once, .timeout = 120)
{
    int timeouts = 0;
    for (unsigned it = 0; it < 6; it++) {
        weft_config_t cfg;
        weft_config_init(&cfg);
        cfg.workers = 1 + it % 3;
        cfg.shuffle_seed = it + 1;
        struct buffer b = {.producers = 6, .consumers = 6,
                           .per = SCALED(3000), .seed = it};
        int total = b.producers * b.per;
        b.seen = calloc((size_t)total, sizeof *b.seen);
        cr_assert_eq(weft_mutex_create(&b.m), 0);
        cr_assert_eq(weft_cond_create(&b.not_empty), 0);
        cr_assert_eq(weft_cond_create(&b.not_full), 0);
        cr_assert_eq(run_cfg(&cfg, buffer_body, &b), 0);
        for (int v = 0; v < total; v++)
            cr_assert_eq(atomic_load(&b.seen[v]), 1, "item %d", v);
        cr_assert_eq(weft_cond_destroy(b.not_empty), 0);
        cr_assert_eq(weft_cond_destroy(b.not_full), 0);
        cr_assert_eq(weft_mutex_destroy(b.m), 0);
        timeouts += atomic_load(&b.timeouts);
        free(b.seen);
    }
    cr_assert_gt(timeouts, 0, "deadlines never raced the signals");
}

struct cw {
    weft_mutex_t *m;
    weft_cond_t *c;
    atomic_int woken;
    atomic_bool returned;
    int mode; /* 0 wait, 1 wait_until far, 2 scope */
};

/* Waits on c and reports whether it returned owning m. */
static intptr_t cond_waiter(void *arg)
{
    struct cw *w = arg;
    cr_assert_eq(weft_mutex_lock(w->m), 0);
    int r;
    if (w->mode == 2) {
        set_scope(weft_now_ns() + 2000000);
        r = weft_cond_wait(w->c, w->m);
        set_scope(UINT64_MAX);
    } else if (w->mode == 1) {
        r = weft_cond_wait_until(w->c, w->m, weft_now_ns() + 2000000);
    } else {
        r = weft_cond_wait(w->c, w->m);
    }
    atomic_fetch_add(&w->woken, 1);
    atomic_store(&w->returned, true);
    cr_assert_eq(weft_mutex_unlock(w->m), 0, "returned without the mutex");
    return r;
}

static intptr_t cond_cancel_body(void *arg)
{
    (void)arg;
    struct cw w = {0};
    cr_assert_eq(weft_mutex_create(&w.m), 0);
    cr_assert_eq(weft_cond_create(&w.c), 0);
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, cond_waiter, &w), 0);
    await_blocked(t);
    cr_assert_eq(weft_cond_destroy(w.c), -EBUSY);
    /* Hold the mutex while cancelling: the waiter cannot return until we
     * let go. */
    cr_assert_eq(weft_mutex_lock(w.m), 0);
    cancel_task(t);
    weft_sleep_ns(2000000);
    cr_assert_not(atomic_load(&w.returned), "returned while we held the mutex");
    cr_assert_eq(weft_mutex_unlock(w.m), 0);
    cr_assert_eq(weft_join(t), -ECANCELED);

    /* Deadlines: wait_until and a deadline scope, both owning on return. */
    for (int mode = 1; mode <= 2; mode++) {
        w.mode = mode;
        cr_assert_eq(weft_spawn(&t, cond_waiter, &w), 0);
        cr_assert_eq(weft_join(t), -ETIMEDOUT);
    }

    /* Misuse: the mutex must be held by the caller. */
    cr_assert_eq(weft_cond_wait(w.c, w.m), -EPERM);
    cr_assert_eq(weft_cond_wait_until(w.c, w.m, 0), -EPERM);
    cr_assert_eq(weft_cond_wait(NULL, w.m), -EINVAL);
    cr_assert_eq(weft_cond_wait(w.c, NULL), -EINVAL);
    cr_assert_eq(weft_cond_signal((weft_cond_t *)w.m), -EINVAL);
    cr_assert_eq(weft_cond_create(NULL), -EINVAL);
    cr_assert_eq(weft_cond_destroy(w.c), 0);
    cr_assert_eq(weft_mutex_destroy(w.m), 0);
    return 0;
}

Test(cond, cancelled_and_timed_out_waits_return_owning_the_mutex, .timeout = 30)
{
    cr_assert_eq(run_with(2, cond_cancel_body, NULL), 0);
}

static intptr_t signal_body(void *arg)
{
    (void)arg;
    enum { K = 5 };
    struct cw w = {0};
    cr_assert_eq(weft_mutex_create(&w.m), 0);
    cr_assert_eq(weft_cond_create(&w.c), 0);
    cr_assert_eq(weft_cond_signal(w.c), 0, "nobody waits: a no-op");
    weft_task_t t[K];
    for (int i = 0; i < K; i++) {
        cr_assert_eq(weft_spawn(&t[i], cond_waiter, &w), 0);
        await_blocked(t[i]);
    }
    cr_assert_eq(weft_cond_signal(w.c), 0);
    while (atomic_load(&w.woken) < 1)
        weft_sleep_ns(10000);
    weft_sleep_ns(2000000);
    cr_assert_eq(atomic_load(&w.woken), 1, "signal wakes one");
    cr_assert_eq(weft_cond_broadcast(w.c), 0);
    for (int i = 0; i < K; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    cr_assert_eq(atomic_load(&w.woken), K);
    cr_assert_eq(weft_cond_destroy(w.c), 0);
    cr_assert_eq(weft_mutex_destroy(w.m), 0);
    return 0;
}

Test(cond, signal_wakes_one_and_broadcast_wakes_all, .timeout = 30)
{
    cr_assert_eq(run_with(2, signal_body, NULL), 0);
}

/* ---- Semaphores ----------------------------------------------------------- */

struct semt {
    weft_sem_t *s;
    atomic_int inside, max_inside;
    atomic_long acquired, failed;
    atomic_int done;
    int per, n;
    weft_task_t *tasks;
    bool cancels;
    uint64_t seed;
};

struct sem_who {
    struct semt *st;
    int id;
};

static intptr_t sem_user(void *arg)
{
    struct sem_who *w = arg;
    struct semt *st = w->st;
    uint64_t rng = st->seed * 11 + (uint64_t)w->id;
    for (int i = 0; i < st->per; i++) {
        int r;
        switch (test_rand(&rng) % 3) {
        case 0:
            r = weft_sem_acquire(st->s);
            break;
        case 1:
            r = weft_sem_acquire_until(st->s,
                                       weft_now_ns() + test_rand(&rng) % 20000);
            break;
        default:
            r = weft_sem_try_acquire(st->s);
        }
        if (r != 0) {
            cr_assert(r == -ETIMEDOUT || r == -ECANCELED || r == -EAGAIN,
                      "acquire: %d", r);
            atomic_fetch_add(&st->failed, 1);
            continue;
        }
        int in = atomic_fetch_add(&st->inside, 1) + 1;
        int mx = atomic_load(&st->max_inside);
        while (in > mx && !atomic_compare_exchange_weak(&st->max_inside, &mx, in))
            ;
        atomic_fetch_add(&st->acquired, 1);
        if (test_rand(&rng) % 4 == 0)
            weft_yield();
        else
            random_spin(&rng);
        atomic_fetch_sub(&st->inside, 1);
        cr_assert_eq(weft_sem_release(st->s), 0);
    }
    atomic_fetch_add(&st->done, 1);
    return 0;
}

static intptr_t sem_canceller(void *arg)
{
    struct semt *st = arg;
    uint64_t rng = st->seed + 5;
    while (atomic_load(&st->done) < st->n) {
        cancel_task(st->tasks[test_rand(&rng) % (uint64_t)st->n]);
        weft_sleep_ns(test_rand(&rng) % 30000);
    }
    return 0;
}

static intptr_t sem_body(void *arg)
{
    struct semt *st = arg;
    st->tasks = calloc((size_t)st->n, sizeof *st->tasks);
    struct sem_who *ws = calloc((size_t)st->n, sizeof *ws);
    for (int i = 0; i < st->n; i++) {
        ws[i] = (struct sem_who){.st = st, .id = i};
        cr_assert_eq(weft_spawn(&st->tasks[i], sem_user, &ws[i]), 0);
    }
    weft_task_t c;
    if (st->cancels) {
        cr_assert_eq(weft_spawn(&c, sem_canceller, st), 0);
        cr_assert_eq(weft_join(c), 0);
    }
    for (int i = 0; i < st->n; i++)
        cr_assert_eq(weft_join(st->tasks[i]), 0);
    free(st->tasks);
    free(ws);
    return 0;
}

Test(sem, units_bound_concurrency_and_none_is_lost, .timeout = 120)
{
    long failed = 0;
    int iterations = SCALED(60) > 6 ? SCALED(60) : 6;
    for (int it = 0; it < iterations; it++) {
        weft_config_t cfg;
        weft_config_init(&cfg);
        cfg.workers = 1 + (unsigned)(it % 4);
        cfg.shuffle_seed = (uint64_t)it + 9;
        struct semt st = {.per = 300, .n = 16, .cancels = it % 2,
                          .seed = (uint64_t)it};
        cr_assert_eq(weft_sem_create(&st.s, 3, 3), 0);
        cr_assert_eq(run_cfg(&cfg, sem_body, &st), 0);
        cr_assert_leq(atomic_load(&st.max_inside), 3);
        cr_assert_eq(weft_sem_value(st.s), 3, "a unit was lost or made up");
        cr_assert_eq(atomic_load(&st.acquired) + atomic_load(&st.failed),
                     (long)st.n * st.per);
        failed += atomic_load(&st.failed);
        cr_assert_eq(weft_sem_destroy(st.s), 0);
    }
    cr_assert_gt(failed, 0);
}

struct order {
    weft_sem_t *s;
    int id;
    int *log;
    atomic_int *pos;
};

static intptr_t sem_queuer(void *arg)
{
    struct order *o = arg;
    int r = weft_sem_acquire(o->s);
    if (r == 0)
        o->log[atomic_fetch_add(o->pos, 1)] = o->id;
    return r;
}

static intptr_t sem_api_body(void *arg)
{
    (void)arg;
    weft_sem_t *s;
    cr_assert_eq(weft_sem_create(NULL, 0, 0), -EINVAL);
    cr_assert_eq(weft_sem_create(&s, 5, 4), -EINVAL, "value above max");
    cr_assert_eq(weft_sem_create(&s, 1, 2), 0);
    cr_assert_eq(weft_sem_release(s), 0);
    cr_assert_eq(weft_sem_release(s), -EOVERFLOW);
    cr_assert_eq(weft_sem_value(s), 2, "the failed release changed nothing");
    cr_assert_eq(weft_sem_try_acquire(s), 0);
    cr_assert_eq(weft_sem_acquire_until(s, 0), 0, "ready: a past deadline is fine");
    cr_assert_eq(weft_sem_try_acquire(s), -EAGAIN);
    cr_assert_eq(weft_sem_acquire_until(s, weft_now_ns() + 1000000), -ETIMEDOUT);
    set_scope(weft_now_ns() + 1000000);
    cr_assert_eq(weft_sem_acquire(s), -ETIMEDOUT);
    set_scope(UINT64_MAX);
    cr_assert_eq(weft_sem_value(s), 0);

    /* FIFO: waiters queued one after another get units in that order. */
    enum { K = 5 };
    int log[K];
    atomic_int pos = 0;
    struct order o[K];
    weft_task_t t[K];
    for (int i = 0; i < K; i++) {
        o[i] = (struct order){.s = s, .id = i, .log = log, .pos = &pos};
        cr_assert_eq(weft_spawn(&t[i], sem_queuer, &o[i]), 0);
        await_blocked(t[i]);
    }
    cr_assert_eq(weft_sem_destroy(s), -EBUSY);
    for (int i = 0; i < K; i++) {
        cr_assert_eq(weft_sem_release(s), 0);
        while (atomic_load(&pos) < i + 1)
            weft_sleep_ns(10000);
    }
    for (int i = 0; i < K; i++) {
        cr_assert_eq(weft_join(t[i]), 0);
        cr_assert_eq(log[i], i, "served out of order");
    }
    cr_assert_eq(weft_sem_value(s), 0);

    /* Cancel a blocked acquire: no unit taken. */
    cr_assert_eq(weft_spawn(&t[0], sem_queuer, &o[0]), 0);
    await_blocked(t[0]);
    cancel_task(t[0]);
    cr_assert_eq(weft_join(t[0]), -ECANCELED);
    cr_assert_eq(weft_sem_release(s), 0);
    cr_assert_eq(weft_sem_value(s), 1);
    cr_assert_eq(weft_sem_acquire(NULL), -EINVAL);
    cr_assert_eq(weft_sem_release((weft_sem_t *)&pos), -EINVAL);
    cr_assert_eq(weft_sem_destroy(s), 0);
    return 0;
}

Test(sem, errors_order_and_cancel, .timeout = 30)
{
    cr_assert_eq(run_with(2, sem_api_body, NULL), 0);
}

/* ---- Events ------------------------------------------------------------------*/

struct ev {
    weft_event_t *e;
    atomic_int woke;
};

static intptr_t event_waiter(void *arg)
{
    struct ev *v = arg;
    int r = weft_event_wait(v->e);
    if (r == 0)
        atomic_fetch_add(&v->woke, 1);
    return r;
}

static void *thread_event_waiter(void *arg)
{
    return (void *)(intptr_t)event_waiter(arg);
}

static intptr_t event_body(void *arg)
{
    (void)arg;
    enum { K = 20 };
    struct ev v = {0};
    cr_assert_eq(weft_event_create(&v.e), 0);
    cr_assert_eq(weft_event_is_set(v.e), 0);
    cr_assert_eq(weft_event_wait_until(v.e, weft_now_ns() + 1000000), -ETIMEDOUT);
    weft_task_t t[K];
    for (int i = 0; i < K; i++)
        cr_assert_eq(weft_spawn(&t[i], event_waiter, &v), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, thread_event_waiter, &v), 0);
    await_blocked(t[K - 1]);
    cr_assert_eq(weft_event_destroy(v.e), -EBUSY);
    cr_assert_eq(atomic_load(&v.woke), 0);
    cr_assert_eq(weft_event_set(v.e), 0);
    for (int i = 0; i < K; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    void *res;
    pthread_join(th, &res);
    cr_assert_eq((intptr_t)res, 0);
    cr_assert_eq(atomic_load(&v.woke), K + 1);
    cr_assert_eq(weft_event_is_set(v.e), 1);
    cr_assert_eq(weft_event_wait(v.e), 0, "set: returns at once");
    cr_assert_eq(weft_event_set(v.e), 0, "setting twice is fine");
    cr_assert_eq(weft_event_clear(v.e), 0);
    cr_assert_eq(weft_event_is_set(v.e), 0);
    set_scope(weft_now_ns() + 1000000);
    cr_assert_eq(weft_event_wait(v.e), -ETIMEDOUT);
    set_scope(UINT64_MAX);
    cr_assert_eq(weft_spawn(&t[0], event_waiter, &v), 0);
    await_blocked(t[0]);
    cancel_task(t[0]);
    cr_assert_eq(weft_join(t[0]), -ECANCELED);
    cr_assert_eq(weft_event_wait(NULL), -EINVAL);
    cr_assert_eq(weft_event_set((weft_event_t *)&v.woke), -EINVAL);
    cr_assert_eq(weft_event_create(NULL), -EINVAL);
    cr_assert_eq(weft_event_destroy(v.e), 0);
    return 0;
}

Test(event, set_wakes_every_waiter_and_clear_resets, .timeout = 30)
{
    cr_assert_eq(run_with(2, event_body, NULL), 0);
}

/* Set and clear race with timed waits: every wait returns 0 or
 * -ETIMEDOUT, and one that returned 0 saw the event set at some point. */
struct ev_race {
    weft_event_t *e;
    atomic_bool stop;
    atomic_long ok, timeouts;
};

static intptr_t ev_flipper(void *arg)
{
    struct ev_race *r = arg;
    uint64_t rng = 99;
    while (!atomic_load(&r->stop)) {
        cr_assert_eq(weft_event_set(r->e), 0);
        random_spin(&rng);
        cr_assert_eq(weft_event_clear(r->e), 0);
        weft_sleep_ns(test_rand(&rng) % 20000);
    }
    return 0;
}

static intptr_t ev_timed_waiter(void *arg)
{
    struct ev_race *r = arg;
    uint64_t rng = (uint64_t)(uintptr_t)&rng;
    for (int i = 0; i < 200; i++) {
        int res = weft_event_wait_until(r->e, weft_now_ns() + test_rand(&rng) % 20000);
        cr_assert(res == 0 || res == -ETIMEDOUT, "%d", res);
        atomic_fetch_add(res == 0 ? &r->ok : &r->timeouts, 1);
    }
    return 0;
}

static intptr_t ev_race_body(void *arg)
{
    struct ev_race *r = arg;
    weft_task_t f, w[8];
    cr_assert_eq(weft_spawn(&f, ev_flipper, r), 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(weft_spawn(&w[i], ev_timed_waiter, r), 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(weft_join(w[i]), 0);
    atomic_store(&r->stop, true);
    cr_assert_eq(weft_join(f), 0);
    return 0;
}

Test(event, set_and_clear_racing_timed_waits, .timeout = 60)
{
    for (unsigned it = 0; it < 4; it++) {
        weft_config_t cfg;
        weft_config_init(&cfg);
        cfg.workers = 1 + it % 2;
        cfg.shuffle_seed = it + 1;
        struct ev_race r = {0};
        cr_assert_eq(weft_event_create(&r.e), 0);
        cr_assert_eq(run_cfg(&cfg, ev_race_body, &r), 0);
        cr_assert_eq(atomic_load(&r.ok) + atomic_load(&r.timeouts), 8 * 200);
        cr_assert_eq(weft_event_destroy(r.e), 0, "no waiter left behind");
    }
}

/* ---- Wait-groups ---------------------------------------------------------- */

struct wgt {
    weft_waitgroup_t *wg;
    atomic_int finished;
    int jobs;
};

static intptr_t wg_job(void *arg)
{
    struct wgt *g = arg;
    uint64_t rng = (uint64_t)(uintptr_t)&rng;
    if (test_rand(&rng) % 2)
        weft_sleep_ns(test_rand(&rng) % 100000);
    atomic_fetch_add(&g->finished, 1);
    cr_assert_eq(weft_waitgroup_done(g->wg), 0);
    return 0;
}

static intptr_t wg_waiter(void *arg)
{
    struct wgt *g = arg;
    int r = weft_waitgroup_wait(g->wg);
    if (r == 0)
        cr_assert_eq(atomic_load(&g->finished), g->jobs, "woken too early");
    return r;
}

static void *thread_wg_waiter(void *arg)
{
    return (void *)(intptr_t)wg_waiter(arg);
}

static intptr_t wg_body(void *arg)
{
    (void)arg;
    struct wgt g = {.jobs = 200};
    cr_assert_eq(weft_waitgroup_create(&g.wg), 0);
    cr_assert_eq(weft_waitgroup_wait(g.wg), 0, "zero: returns at once");
    cr_assert_eq(weft_waitgroup_done(g.wg), -EINVAL, "below zero");
    cr_assert_eq(weft_waitgroup_add(g.wg, INT64_MIN), -EINVAL);
    cr_assert_eq(weft_waitgroup_add(g.wg, g.jobs), 0);
    cr_assert_eq(weft_waitgroup_add(g.wg, INT64_MAX), -EOVERFLOW);
    cr_assert_eq(weft_waitgroup_add(g.wg, -(int64_t)g.jobs - 1), -EINVAL);
    cr_assert_eq(weft_waitgroup_wait_until(g.wg, weft_now_ns() + 1000000),
                 -ETIMEDOUT);
    weft_task_t w[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_spawn(&w[i], wg_waiter, &g), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, thread_wg_waiter, &g), 0);
    await_blocked(w[3]);
    cr_assert_eq(weft_waitgroup_destroy(g.wg), -EBUSY);
    for (int i = 0; i < g.jobs; i++)
        cr_assert_eq(weft_spawn(NULL, wg_job, &g), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_join(w[i]), 0);
    void *res;
    pthread_join(th, &res);
    cr_assert_eq((intptr_t)res, 0);
    cr_assert_eq(atomic_load(&g.finished), g.jobs);
    cr_assert_eq(weft_waitgroup_done(g.wg), -EINVAL);

    /* Cancel and deadline scope at the wait. */
    cr_assert_eq(weft_waitgroup_add(g.wg, 1), 0);
    cr_assert_eq(weft_spawn(&w[0], wg_waiter, &g), 0);
    await_blocked(w[0]);
    cancel_task(w[0]);
    cr_assert_eq(weft_join(w[0]), -ECANCELED);
    set_scope(weft_now_ns() + 1000000);
    cr_assert_eq(weft_waitgroup_wait(g.wg), -ETIMEDOUT);
    set_scope(UINT64_MAX);
    cr_assert_eq(weft_waitgroup_done(g.wg), 0);
    cr_assert_eq(weft_waitgroup_wait(NULL), -EINVAL);
    cr_assert_eq(weft_waitgroup_add((weft_waitgroup_t *)&g, 1), -EINVAL);
    cr_assert_eq(weft_waitgroup_create(NULL), -EINVAL);
    cr_assert_eq(weft_waitgroup_destroy(g.wg), 0);
    return 0;
}

Test(waitgroup, waiters_wake_when_every_job_is_done, .timeout = 30)
{
    cr_assert_eq(run_with(2, wg_body, NULL), 0);
}
