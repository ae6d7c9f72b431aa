/* tests/sched_mutex.c: the mutex: mutual exclusion across workers (a
 * non-atomic counter), ownership errors, deadlines and cancels racing the
 * hand-over (a failed lock never owns), bounded bypass (no waiter starves),
 * destroy, and plain threads sharing a mutex with fibers. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

#include "runtime/runtime.h"
#include "sched/sched.h"
#include "sched/sync.h"
#include "support/weft_test.h"

static void cancel_task(weft_task_t h)
{
    struct weft__runtime *rt = weft__runtime();
    struct weft__task *t = weft__task_lookup(rt, h.id_);
    cr_assert_not_null(t);
    weft__task_cancel(rt, t);
}

static size_t queued(weft_mutex_t *m)
{
    pthread_mutex_lock(&m->qlock);
    size_t n = m->waiters.len;
    pthread_mutex_unlock(&m->qlock);
    return n;
}

static void await_queued(weft_mutex_t *m, size_t k)
{
    while (queued(m) < k)
        weft_sleep_ns(10000);
}

static void set_scope(uint64_t deadline)
{
    weft__task_self(weft__worker_self())->deadline = deadline;
}

/* ---- Mutual exclusion ------------------------------------------------------ */

struct excl {
    weft_mutex_t *m;
    long counter; /* plain: only the mutex protects it */
    int per;
    uint64_t seed;
};

static intptr_t incrementer(void *arg)
{
    struct excl *e = arg;
    uint64_t rng = e->seed ^ (uint64_t)(uintptr_t)&rng;
    for (int i = 0; i < e->per; i++) {
        cr_assert_eq(weft_mutex_lock(e->m), 0);
        long c = e->counter;
        if (test_rand(&rng) % 16 == 0)
            weft_yield(); /* hold it across a switch now and then */
        else
            random_spin(&rng);
        e->counter = c + 1;
        cr_assert_eq(weft_mutex_unlock(e->m), 0);
    }
    return 0;
}

static intptr_t excl_body(void *arg)
{
    struct excl *e = arg;
    weft_task_t t[16];
    for (int i = 0; i < 16; i++)
        cr_assert_eq(weft_spawn(&t[i], incrementer, e), 0);
    for (int i = 0; i < 16; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    return 0;
}

Test(mutex, sixteen_fibers_increment_a_plain_counter_exactly, .timeout = 120)
{
    static const unsigned workers[] = {1, 2, 4, 8, 16};
    for (size_t k = 0; k < sizeof workers / sizeof workers[0]; k++) {
        weft_config_t cfg;
        weft_config_init(&cfg);
        cfg.workers = workers[k];
        cfg.shuffle_seed = k + 1;
        struct excl e = {.per = SCALED(20000), .seed = k};
        cr_assert_eq(weft_mutex_create(&e.m), 0);
        cr_assert_eq(run_cfg(&cfg, excl_body, &e), 0);
        cr_assert_eq(e.counter, 16L * e.per, "%u workers: %ld", workers[k],
                     e.counter);
        cr_assert_eq(weft_mutex_destroy(e.m), 0);
    }
}

/* ---- Ownership ----------------------------------------------------------------*/

static intptr_t unlock_it(void *arg)
{
    return weft_mutex_unlock(arg);
}

static void *thread_unlock(void *arg)
{
    return (void *)(intptr_t)weft_mutex_unlock(arg);
}

/* Locks m, reports, waits until told to let go, then unlocks. */
struct keeper {
    weft_mutex_t *m;
    sem_t locked, release;
    int lock_result, unlock_result;
};

static void *thread_lock_and_keep(void *arg)
{
    struct keeper *k = arg;
    k->lock_result = weft_mutex_lock(k->m);
    sem_post(&k->locked);
    sem_wait(&k->release);
    k->unlock_result = weft_mutex_unlock(k->m);
    return NULL;
}

static intptr_t ownership_body(void *arg)
{
    (void)arg;
    weft_mutex_t *m;
    cr_assert_eq(weft_mutex_create(&m), 0);
    cr_assert_eq(weft_mutex_unlock(m), -EPERM, "not locked");
    cr_assert_eq(weft_mutex_lock(m), 0);
    cr_assert_eq(weft_mutex_lock(m), -EDEADLK, "not recursive");
    cr_assert_eq(weft_mutex_trylock(m), -EAGAIN);
    cr_assert_eq(weft_mutex_destroy(m), -EBUSY, "locked");
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, unlock_it, m), 0);
    cr_assert_eq(weft_join(t), -EPERM, "another task cannot unlock it");
    pthread_t th;
    void *res;
    cr_assert_eq(pthread_create(&th, NULL, thread_unlock, m), 0);
    pthread_join(th, &res);
    cr_assert_eq((intptr_t)res, -EPERM, "nor can a plain thread");
    cr_assert_eq(weft_mutex_unlock(m), 0, "the owner still can");
    cr_assert_eq(weft_mutex_unlock(m), -EPERM, "but only once");

    /* A plain thread's lock: fibers cannot unlock it. */
    struct keeper k = {.m = m};
    sem_init(&k.locked, 0, 0);
    sem_init(&k.release, 0, 0);
    cr_assert_eq(pthread_create(&th, NULL, thread_lock_and_keep, &k), 0);
    while (sem_trywait(&k.locked) != 0)
        weft_sleep_ms(1); /* do not block the worker the thread may need */
    cr_assert_eq(k.lock_result, 0);
    cr_assert_eq(weft_mutex_unlock(m), -EPERM);
    cr_assert_eq(weft_mutex_trylock(m), -EAGAIN);
    cr_assert_eq(weft_mutex_destroy(m), -EBUSY, "held by the thread");

    /* Bad handles. */
    cr_assert_eq(weft_mutex_create(NULL), -EINVAL);
    cr_assert_eq(weft_mutex_lock(NULL), -EINVAL);
    cr_assert_eq(weft_mutex_unlock(NULL), -EINVAL);
    weft_chan_t *ch;
    cr_assert_eq(weft_chan_create(&ch, 1, 1), 0);
    cr_assert_eq(weft_mutex_lock((weft_mutex_t *)ch), -EINVAL);
    cr_assert_eq(weft_mutex_trylock((weft_mutex_t *)ch), -EINVAL);
    cr_assert_eq(weft_mutex_destroy((weft_mutex_t *)ch), -EINVAL);
    cr_assert_eq(weft_chan_destroy(ch), 0);
    sem_post(&k.release);
    pthread_join(th, NULL);
    cr_assert_eq(k.unlock_result, 0, "the owning thread can unlock it");
    cr_assert_eq(weft_mutex_destroy(m), 0);
    sem_destroy(&k.locked);
    sem_destroy(&k.release);
    return 0;
}

Test(mutex, only_the_owner_may_unlock, .timeout = 30)
{
    cr_assert_eq(run_with(2, ownership_body, NULL), 0);
}

/* ---- Deadlines, cancels, destroy while waited on -------------------------- */

static intptr_t lock_body(void *arg)
{
    int r = weft_mutex_lock(arg);
    if (r == 0)
        cr_assert_eq(weft_mutex_unlock(arg), 0);
    else
        cr_assert_eq(weft_mutex_unlock(arg), -EPERM, "a failed lock owns it");
    return r;
}

static intptr_t waits_body(void *arg)
{
    (void)arg;
    weft_mutex_t *m;
    cr_assert_eq(weft_mutex_create(&m), 0);
    cr_assert_eq(weft_mutex_lock_until(m, 0), 0, "free: a past deadline is fine");
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, lock_body, m), 0);
    await_queued(m, 1);
    cr_assert_eq(weft_mutex_destroy(m), -EBUSY);
    cancel_task(t);
    cr_assert_eq(weft_join(t), -ECANCELED);
    cr_assert_eq(queued(m), 0);
    cr_assert_eq(weft_spawn(&t, lock_body, m), 0);
    await_queued(m, 1);
    cr_assert_eq(weft_mutex_unlock(m), 0);
    cr_assert_eq(weft_join(t), 0, "the waiter got it once it was free");

    cr_assert_eq(weft_spawn(&t, lock_body, m), 0); /* takes and drops it */
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(weft_mutex_lock(m), 0);
    cr_assert_eq(weft_spawn(&t, unlock_it, m), 0);
    cr_assert_eq(weft_join(t), -EPERM);
    cr_assert_eq(weft_mutex_unlock(m), 0);
    cr_assert_eq(weft_mutex_destroy(m), 0);
    return 0;
}

Test(mutex, cancel_ends_a_blocked_lock_without_owning, .timeout = 30)
{
    cr_assert_eq(run_with(2, waits_body, NULL), 0);
}

static intptr_t timed_lock(void *arg)
{
    weft_mutex_t *m = arg;
    int r = weft_mutex_lock_until(m, weft_now_ns() + 2000000);
    cr_assert_eq(weft_mutex_unlock(m), -EPERM);
    set_scope(weft_now_ns() + 2000000);
    int r2 = weft_mutex_lock(m);
    set_scope(UINT64_MAX);
    cr_assert_eq(r2, -ETIMEDOUT, "the deadline scope ends a lock wait");
    return r;
}

static intptr_t deadline_body(void *arg)
{
    (void)arg;
    weft_mutex_t *m;
    cr_assert_eq(weft_mutex_create(&m), 0);
    cr_assert_eq(weft_mutex_lock(m), 0);
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, timed_lock, m), 0);
    cr_assert_eq(weft_join(t), -ETIMEDOUT);
    cr_assert_eq(queued(m), 0);
    cr_assert_eq(weft_mutex_unlock(m), 0);
    cr_assert_eq(weft_mutex_trylock(m), 0, "left free and unpromised");
    cr_assert_eq(weft_mutex_unlock(m), 0);
    cr_assert_eq(weft_mutex_destroy(m), 0);
    return 0;
}

Test(mutex, deadline_ends_a_lock_wait_without_owning, .timeout = 30)
{
    cr_assert_eq(run_with(2, deadline_body, NULL), 0);
}

/* ---- Deadlines and cancels racing the hand-over --------------------------- */

struct race {
    weft_mutex_t *m;
    long counter;           /* under m */
    atomic_long successes;  /* locks that returned 0 */
    atomic_long failures;   /* -ETIMEDOUT / -ECANCELED */
    atomic_int done;
    int contenders, per;
    weft_task_t *tasks;
    uint64_t seed;
};

struct race_who {
    struct race *r;
    int id;
};

static intptr_t racer(void *arg)
{
    struct race_who *w = arg;
    struct race *r = w->r;
    uint64_t rng = r->seed * 1000003 + (uint64_t)w->id;
    for (int i = 0; i < r->per; i++) {
        int res;
        switch (test_rand(&rng) % 3) {
        case 0:
            res = weft_mutex_lock(r->m);
            break;
        case 1:
            res = weft_mutex_lock_until(r->m,
                                        weft_now_ns() + test_rand(&rng) % 20000);
            break;
        default:
            res = weft_mutex_trylock(r->m);
            if (res == -EAGAIN)
                continue;
        }
        if (res != 0) {
            cr_assert(res == -ETIMEDOUT || res == -ECANCELED, "lock: %d", res);
            cr_assert_eq(weft_mutex_unlock(r->m), -EPERM,
                         "a lock that failed owns the mutex");
            atomic_fetch_add(&r->failures, 1);
            continue;
        }
        r->counter++;
        atomic_fetch_add(&r->successes, 1);
        if (test_rand(&rng) % 4 == 0)
            weft_sleep_ns(test_rand(&rng) % 5000);
        else
            random_spin(&rng);
        cr_assert_eq(weft_mutex_unlock(r->m), 0);
        random_spin(&rng);
    }
    atomic_fetch_add(&r->done, 1);
    return 0;
}

static intptr_t race_canceller(void *arg)
{
    struct race *r = arg;
    uint64_t rng = r->seed + 77;
    while (atomic_load(&r->done) < r->contenders) {
        cancel_task(r->tasks[test_rand(&rng) % (uint64_t)r->contenders]);
        weft_sleep_ns(test_rand(&rng) % 30000);
    }
    return 0;
}

static intptr_t race_body(void *arg)
{
    struct race *r = arg;
    r->tasks = calloc((size_t)r->contenders, sizeof *r->tasks);
    struct race_who *ws = calloc((size_t)r->contenders, sizeof *ws);
    for (int i = 0; i < r->contenders; i++) {
        ws[i] = (struct race_who){.r = r, .id = i};
        cr_assert_eq(weft_spawn(&r->tasks[i], racer, &ws[i]), 0);
    }
    weft_task_t c;
    cr_assert_eq(weft_spawn(&c, race_canceller, r), 0);
    cr_assert_eq(weft_join(c), 0);
    for (int i = 0; i < r->contenders; i++)
        cr_assert_eq(weft_join(r->tasks[i]), 0);
    free(r->tasks);
    free(ws);
    return 0;
}

Test(mutex, deadlines_and_cancels_racing_hand_overs_leave_one_owner,
     .timeout = 120)
{
    long failures = 0;
    int iterations = SCALED(100) > 12 ? SCALED(100) : 12;
    for (int it = 0; it < iterations; it++) {
        weft_config_t cfg;
        weft_config_init(&cfg);
        cfg.workers = 1 + (unsigned)(it % 4);
        cfg.shuffle_seed = (uint64_t)it + 500;
        struct race r = {.contenders = 10, .per = 300, .seed = (uint64_t)it};
        cr_assert_eq(weft_mutex_create(&r.m), 0);
        cr_assert_eq(run_cfg(&cfg, race_body, &r), 0);
        cr_assert_eq(r.counter, atomic_load(&r.successes));
        cr_assert_eq(weft_mutex_trylock(r.m), 0, "free at the end");
        cr_assert_eq(weft_mutex_unlock(r.m), 0);
        cr_assert_eq(weft_mutex_destroy(r.m), 0, "nothing left queued");
        failures += atomic_load(&r.failures);
    }
    cr_assert_gt(failures, 0, "no deadline or cancel ever won a race");
}

/* ---- Fairness ---------------------------------------------------------------*/

/* One worker: every contender yields while holding the mutex, so all the
 * others queue up behind it, and it takes the lock again right after
 * unlocking (a barge) unless the waiter at the head is owed its turn. The
 * bypass of a wait (acquisitions by others between asking and getting) is
 * then bounded by the barge limit: a waiter at the head gets it within
 * LIMIT + 1 acquisitions, one behind k others within about
 * (k + 1) * (LIMIT + 1). */
struct fair {
    weft_mutex_t *m;
    long acquisitions; /* under m */
    long max_bypass;   /* under m */
    int rounds, contenders;
};

static intptr_t fair_contender(void *arg)
{
    struct fair *f = arg;
    for (int i = 0; i < f->rounds; i++) {
        /* One worker, no switch before lock() queues us: this read is the
         * acquisition count at the moment we ask. */
        long asked = f->acquisitions;
        cr_assert_eq(weft_mutex_lock(f->m), 0);
        long bypass = f->acquisitions - asked;
        if (bypass > f->max_bypass)
            f->max_bypass = bypass;
        f->acquisitions++;
        weft_yield();
        cr_assert_eq(weft_mutex_unlock(f->m), 0);
    }
    return 0;
}

static intptr_t fair_body(void *arg)
{
    struct fair *f = arg;
    weft_task_t t[32];
    int n = f->contenders;
    for (int i = 0; i < n; i++)
        cr_assert_eq(weft_spawn(&t[i], fair_contender, f), 0);
    for (int i = 0; i < n; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    return n;
}

Test(mutex, no_waiter_is_bypassed_more_than_the_bound, .timeout = 60)
{
    static const int counts[] = {2, 4, 16, 32};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        int n = counts[k];
        struct fair f = {.rounds = SCALED(4000) > 200 ? SCALED(4000) : 200,
                         .contenders = n};
        cr_assert_eq(weft_mutex_create(&f.m), 0);
        cr_assert_eq(run_with(1, fair_body, &f), n);
        long bound = (long)n * (WEFT_MUTEX_BARGE_LIMIT + 1);
        cr_assert_leq(f.max_bypass, bound, "%d contenders: bypassed %ld times",
                      n, f.max_bypass);
        /* And it is not plain FIFO: barging happened, up to the limit. */
        if (f.rounds > (int)WEFT_MUTEX_BARGE_LIMIT)
            cr_assert_geq(f.max_bypass, (long)WEFT_MUTEX_BARGE_LIMIT);
        else
            cr_assert_geq(f.max_bypass, (long)f.rounds - 1);
        cr_assert_eq(f.acquisitions, (long)n * f.rounds);
        cr_assert_eq(weft_mutex_destroy(f.m), 0);
    }
}

/* Many workers: hogs take and drop the mutex in a tight loop, never
 * yielding, for as long as a victim has not had its turns; the victim
 * must finish (the suite's timeout is the assertion). A liveness check
 * across workers: how much it waits depends on the OS's timing there, so
 * the bound itself is checked on one worker, above. */
struct hog {
    weft_mutex_t *m;
    atomic_bool victim_done;
    long hog_acquisitions; /* under m */
    int victim_turns;
};

static intptr_t hog(void *arg)
{
    struct hog *h = arg;
    while (!atomic_load_explicit(&h->victim_done, memory_order_relaxed)) {
        cr_assert_eq(weft_mutex_lock(h->m), 0);
        h->hog_acquisitions++;
        cr_assert_eq(weft_mutex_unlock(h->m), 0);
    }
    return 0;
}

static intptr_t victim(void *arg)
{
    struct hog *h = arg;
    for (int i = 0; i < h->victim_turns; i++) {
        cr_assert_eq(weft_mutex_lock(h->m), 0);
        cr_assert_eq(weft_mutex_unlock(h->m), 0);
    }
    atomic_store(&h->victim_done, true);
    return 0;
}

static intptr_t hog_body(void *arg)
{
    struct hog *h = arg;
    int nw = weft_worker_count();
    weft_task_t hogs[16], v;
    for (int i = 0; i < nw; i++)
        cr_assert_eq(weft_spawn(&hogs[i], hog, h), 0);
    cr_assert_eq(weft_spawn(&v, victim, h), 0);
    cr_assert_eq(weft_join(v), 0);
    for (int i = 0; i < nw; i++)
        cr_assert_eq(weft_join(hogs[i]), 0);
    return 0;
}

Test(mutex, hogs_on_every_worker_do_not_starve_a_waiter, .timeout = 60)
{
    for (unsigned w = 2; w <= 4; w *= 2) {
        struct hog h = {.victim_turns = SCALED(2000)};
        cr_assert_eq(weft_mutex_create(&h.m), 0);
        cr_assert_eq(run_with(w, hog_body, &h), 0);
        cr_assert_gt(h.hog_acquisitions, 0);
        cr_assert_eq(weft_mutex_destroy(h.m), 0);
    }
}

/* ---- Plain threads and fibers share one mutex ------------------------------ */

struct shared {
    weft_mutex_t *m;
    long counter;
    int per;
};

static void *thread_incrementer(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < s->per; i++) {
        cr_assert_eq(weft_mutex_lock(s->m), 0);
        s->counter++;
        cr_assert_eq(weft_mutex_unlock(s->m), 0);
    }
    return NULL;
}

static intptr_t fiber_incrementer(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < s->per; i++) {
        cr_assert_eq(weft_mutex_lock(s->m), 0);
        s->counter++;
        if (i % 64 == 0)
            weft_yield();
        cr_assert_eq(weft_mutex_unlock(s->m), 0);
    }
    return 0;
}

Test(mutex, plain_threads_and_fibers_share_a_mutex, .timeout = 60)
{
    enum { THREADS = 3, FIBERS = 8 };
    struct shared s = {.per = SCALED(20000)};
    cr_assert_eq(weft_mutex_create(&s.m), 0);
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 2;
    cr_assert_eq(weft_start(&cfg), 0);
    weft_task_t t[FIBERS];
    for (int i = 0; i < FIBERS; i++)
        cr_assert_eq(weft_spawn(&t[i], fiber_incrementer, &s), 0);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, thread_incrementer, &s), 0);
    for (int i = 0; i < FIBERS; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(weft_stop(), 0);
    cr_assert_eq(s.counter, (long)(THREADS + FIBERS) * s.per);
    cr_assert_eq(weft_mutex_destroy(s.m), 0);
}
