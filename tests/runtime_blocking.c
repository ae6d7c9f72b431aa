/* tests/runtime_blocking.c: the blocking pool: every call runs exactly once
 * on a plain thread and its result reaches its fiber, never more threads
 * than the bound, a queued call that is cancelled or times out never runs,
 * a running one is waited for, and stop with calls in flight loses none. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "runtime/runtime.h"
#include "sched/sched.h"
#include "support/weft_test.h"

/* ---- Helpers ------------------------------------------------------------- */

static void nap_us(unsigned us)
{
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL);
}

static struct weft__blocking_stats stats(void)
{
    struct weft__blocking_stats s;
    weft__blocking_stats(weft__runtime(), &s);
    return s;
}

/* From a fiber: wait (sleeping) until the pool reaches a state. */
static void await_running(unsigned running)
{
    while (stats().running != running)
        weft_sleep_ms(1);
}

static void await_queued(size_t queued)
{
    while (stats().queued != queued)
        weft_sleep_ms(1);
}

static void cancel(weft_task_t h)
{
    struct weft__runtime *rt = weft__runtime();
    weft__task_cancel(rt, weft__task_lookup(rt, weft_task_id(h)));
}

/* The calling task's deadline scope, as weft's deadline API sets it. */
static void set_deadline(uint64_t deadline)
{
    weft__task_self(weft__worker_self())->deadline = deadline;
}

static weft_config_t pool_cfg(unsigned workers, unsigned threads)
{
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = workers;
    cfg.blocking_threads = threads;
    return cfg;
}

/* A call that blocks its thread until the gate opens. */
static _Atomic int gate_open;

static intptr_t gate_fn(void *arg)
{
    (void)arg;
    while (!atomic_load(&gate_open))
        nap_us(100);
    return 42;
}

static _Atomic int marked;

static intptr_t mark_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&marked, 1);
    return 7;
}

/* ---- Exact accounting under load ----------------------------------------- */

#define CALLS_PER_TASK 8

struct load {
    unsigned tasks;
    unsigned max_threads;
    _Atomic unsigned *runs; /* per call: how many times it ran */
    _Atomic unsigned concurrent, max_concurrent;
    _Atomic unsigned on_worker; /* calls that found themselves on a worker */
    _Atomic uint64_t sum;
};

struct load_arg {
    struct load *load;
    unsigned call;
};

static intptr_t load_fn(void *arg)
{
    struct load_arg *a = arg;
    struct load *l = a->load;
    if (weft_in_fiber() || weft_worker_index() != -EPERM)
        atomic_fetch_add(&l->on_worker, 1);
    unsigned now = atomic_fetch_add(&l->concurrent, 1) + 1;
    unsigned seen = atomic_load(&l->max_concurrent);
    while (now > seen &&
           !atomic_compare_exchange_weak(&l->max_concurrent, &seen, now))
        ;
    uint64_t seed = a->call * 2654435761u + 1;
    if (test_rand(&seed) % 4 == 0)
        nap_us((unsigned)(test_rand(&seed) % 200));
    else
        random_spin(&seed);
    atomic_fetch_add(&l->runs[a->call], 1);
    atomic_fetch_sub(&l->concurrent, 1);
    return (intptr_t)a->call * 3 + 1;
}

static intptr_t load_task(void *arg)
{
    struct load_arg *base = arg;
    uint64_t seed = base->call + 99;
    uint64_t sum = 0;
    for (unsigned i = 0; i < CALLS_PER_TASK; i++) {
        struct load_arg a = {base->load, base->call + i};
        if (test_rand(&seed) % 3 == 0)
            weft_yield();
        intptr_t r = weft_run_blocking(load_fn, &a);
        cr_assert_eq(r, (intptr_t)a.call * 3 + 1);
        sum += (uint64_t)r;
    }
    atomic_fetch_add(&base->load->sum, sum);
    return 0;
}

static intptr_t load_main(void *arg)
{
    struct load *l = arg;
    weft_task_t *t = calloc(l->tasks, sizeof *t);
    struct load_arg *args = calloc(l->tasks, sizeof *args);
    cr_assert(t && args);
    for (unsigned i = 0; i < l->tasks; i++) {
        args[i] = (struct load_arg){l, i * CALLS_PER_TASK};
        cr_assert_eq(weft_spawn(&t[i], load_task, &args[i]), 0);
    }
    for (unsigned i = 0; i < l->tasks; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    struct weft__blocking_stats s = stats();
    cr_assert_eq(s.max_threads, l->max_threads);
    cr_assert_leq(s.threads, l->max_threads);
    cr_assert_eq(s.queued, 0);
    cr_assert_eq(s.running, 0);
    free(t);
    free(args);
    return 0;
}

static void run_load(unsigned workers, unsigned threads, unsigned tasks)
{
    unsigned calls = tasks * CALLS_PER_TASK;
    struct load l = {.tasks = tasks, .max_threads = threads};
    l.runs = calloc(calls, sizeof *l.runs);
    cr_assert_not_null(l.runs);
    weft_config_t cfg = pool_cfg(workers, threads);
    cr_assert_eq(run_cfg(&cfg, load_main, &l), 0);
    uint64_t expected = 0;
    for (unsigned c = 0; c < calls; c++) {
        cr_assert_eq(atomic_load(&l.runs[c]), 1, "call %u ran %u times", c,
                     atomic_load(&l.runs[c]));
        expected += (uint64_t)c * 3 + 1;
    }
    cr_assert_eq(atomic_load(&l.sum), expected);
    cr_assert_eq(atomic_load(&l.on_worker), 0,
                 "calls must run on plain threads, never on a worker");
    cr_assert_leq(atomic_load(&l.max_concurrent), threads,
                  "%u calls ran at once on a pool of %u",
                  atomic_load(&l.max_concurrent), threads);
    free(l.runs);
}

Test(blocking, every_call_runs_once_on_two_workers, .timeout = 120)
{
    for (int round = 0; round < 3; round++)
        run_load(2, 4, SCALED(300));
}

Test(blocking, every_call_runs_once_on_sixteen_workers, .timeout = 120)
{
    for (int round = 0; round < 3; round++)
        run_load(16, 8, SCALED(300));
}

Test(blocking, every_call_runs_once_shuffled, .timeout = 120)
{
    for (uint64_t seed = 1; seed <= 3; seed++) {
        unsigned calls = SCALED(200) * CALLS_PER_TASK;
        struct load l = {.tasks = SCALED(200), .max_threads = 3};
        l.runs = calloc(calls, sizeof *l.runs);
        weft_config_t cfg = pool_cfg(4, 3);
        cfg.shuffle_seed = seed;
        cr_assert_eq(run_cfg(&cfg, load_main, &l), 0);
        for (unsigned c = 0; c < calls; c++)
            cr_assert_eq(atomic_load(&l.runs[c]), 1);
        free(l.runs);
    }
}

/* ---- The bound ----------------------------------------------------------- */

#define BOUND 4

static _Atomic unsigned bound_now, bound_max;

/* Holds its thread until BOUND calls run at once: with fewer threads than
 * BOUND the test hangs (and times out), so reaching the gate proves the
 * pool grew to BOUND; the maximum proves it never went past. */
static intptr_t bound_fn(void *arg)
{
    (void)arg;
    unsigned now = atomic_fetch_add(&bound_now, 1) + 1;
    unsigned seen = atomic_load(&bound_max);
    while (now > seen && !atomic_compare_exchange_weak(&bound_max, &seen, now))
        ;
    while (atomic_load(&bound_max) < BOUND)
        nap_us(50);
    nap_us(200);
    atomic_fetch_sub(&bound_now, 1);
    return 1;
}

static intptr_t bound_caller(void *arg)
{
    (void)arg;
    return weft_run_blocking(bound_fn, NULL);
}

static intptr_t bound_run(void *arg)
{
    (void)arg;
    weft_task_t t[32];
    for (int i = 0; i < 32; i++)
        cr_assert_eq(weft_spawn(&t[i], bound_caller, NULL), 0);
    for (int i = 0; i < 32; i++)
        cr_assert_eq(weft_join(t[i]), 1);
    cr_assert_eq(stats().threads, BOUND);
    return 0;
}

Test(blocking, pool_grows_to_its_bound_and_never_past_it, .timeout = 60)
{
    weft_config_t cfg = pool_cfg(2, BOUND);
    cr_assert_eq(run_cfg(&cfg, bound_run, NULL), 0);
    cr_assert_eq(atomic_load(&bound_max), BOUND);
}

/* ---- Cancellation -------------------------------------------------------- */

struct after {
    intptr_t call; /* what weft_run_blocking returned */
    int next_wait; /* what the task's next wait returned */
};

static intptr_t call_then_sleep(void *arg)
{
    struct after *a = arg;
    a->call = weft_run_blocking(mark_fn, NULL);
    a->next_wait = weft_sleep_ms(1);
    return 0;
}

static intptr_t gate_then_sleep(void *arg)
{
    struct after *a = arg;
    a->call = weft_run_blocking(gate_fn, NULL);
    a->next_wait = weft_sleep_ms(10000);
    return 0;
}

static intptr_t gate_caller(void *arg)
{
    (void)arg;
    return weft_run_blocking(gate_fn, NULL);
}

static intptr_t cancel_queued(void *arg)
{
    uint64_t *seed = arg;
    atomic_store(&gate_open, 0);
    atomic_store(&marked, 0);
    weft_task_t holder, queued;
    cr_assert_eq(weft_spawn(&holder, gate_caller, NULL), 0);
    await_running(1);
    struct after a = {0};
    cr_assert_eq(weft_spawn(&queued, call_then_sleep, &a), 0);
    await_queued(1);
    if (test_rand(seed) % 2)
        weft_sleep_ms(1);
    cancel(queued);
    cr_assert_eq(weft_join(queued), 0);
    cr_assert_eq(a.call, -ECANCELED, "the queued call is removed");
    cr_assert_eq(a.next_wait, 0, "the cancel was consumed by the call");
    cr_assert_eq(stats().queued, 0);
    atomic_store(&gate_open, 1);
    cr_assert_eq(weft_join(holder), 42);
    cr_assert_eq(atomic_load(&marked), 0, "a removed call never runs");
    return 0;
}

Test(blocking, cancelling_a_queued_call_removes_it, .timeout = 60)
{
    uint64_t seed = 12345;
    for (int round = 0; round < SCALED(20) + 2; round++) {
        weft_config_t cfg = pool_cfg(2, 1);
        cr_assert_eq(run_cfg(&cfg, cancel_queued, &seed), 0);
    }
}

static intptr_t cancel_running(void *arg)
{
    (void)arg;
    atomic_store(&gate_open, 0);
    weft_task_t t;
    struct after a = {0};
    cr_assert_eq(weft_spawn(&t, gate_then_sleep, &a), 0);
    await_running(1);
    cancel(t);
    weft_sleep_ms(20);
    cr_assert_eq(stats().running, 1, "a running call is not abandoned");
    atomic_store(&gate_open, 1);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(a.call, 42, "a running call's result is returned");
    cr_assert_eq(a.next_wait, -ECANCELED,
                 "the cancel stays pending for the next wait");
    return 0;
}

Test(blocking, a_running_call_is_waited_for_and_the_cancel_stays_pending,
     .timeout = 60)
{
    for (int round = 0; round < 3; round++) {
        weft_config_t cfg = pool_cfg(2, 1);
        cr_assert_eq(run_cfg(&cfg, cancel_running, NULL), 0);
    }
}

static intptr_t cancelled_before(void *arg)
{
    (void)arg;
    /* A cancel already pending when the call is made: it never runs. */
    cancel(weft_self());
    intptr_t r = weft_run_blocking(mark_fn, NULL);
    return r;
}

Test(blocking, a_pending_cancel_stops_the_call_before_it_runs, .timeout = 30)
{
    atomic_store(&marked, 0);
    weft_config_t cfg = pool_cfg(2, 2);
    cr_assert_eq(run_cfg(&cfg, cancelled_before, NULL), -ECANCELED);
    cr_assert_eq(atomic_load(&marked), 0);
}

/* ---- Deadlines ----------------------------------------------------------- */

static intptr_t late_gate(void *arg)
{
    (void)arg;
    set_deadline(weft_now_ns() + 5000000); /* 5 ms: passes while it runs */
    intptr_t r = weft_run_blocking(gate_fn, NULL);
    set_deadline(UINT64_MAX);
    return r;
}

static intptr_t late_mark(void *arg)
{
    (void)arg;
    set_deadline(weft_now_ns() + 10000000); /* 10 ms: passes while queued */
    intptr_t r = weft_run_blocking(mark_fn, NULL);
    set_deadline(UINT64_MAX);
    return r;
}

static intptr_t deadlines(void *arg)
{
    (void)arg;
    atomic_store(&gate_open, 0);
    atomic_store(&marked, 0);
    weft_task_t running, queued;
    cr_assert_eq(weft_spawn(&running, late_gate, NULL), 0);
    await_running(1);
    cr_assert_eq(weft_spawn(&queued, late_mark, NULL), 0);
    cr_assert_eq(weft_join(queued), -ETIMEDOUT, "a queued call times out");
    cr_assert_eq(stats().queued, 0, "and leaves the queue");
    weft_sleep_ms(5);
    atomic_store(&gate_open, 1);
    cr_assert_eq(weft_join(running), 42,
                 "a running call is waited for past the deadline");
    cr_assert_eq(atomic_load(&marked), 0, "the timed-out call never ran");

    /* A deadline already passed: refused at once. */
    set_deadline(weft_now_ns() - 1);
    cr_assert_eq(weft_run_blocking(mark_fn, NULL), -ETIMEDOUT);
    set_deadline(UINT64_MAX);
    cr_assert_eq(atomic_load(&marked), 0);
    /* A deadline far away changes nothing. */
    set_deadline(weft_now_ns() + 60000000000ull);
    cr_assert_eq(weft_run_blocking(mark_fn, NULL), 7);
    set_deadline(UINT64_MAX);
    cr_assert_eq(atomic_load(&marked), 1);
    return 0;
}

Test(blocking, deadline_removes_a_queued_call_and_waits_for_a_running_one,
     .timeout = 60)
{
    for (int round = 0; round < 3; round++) {
        weft_config_t cfg = pool_cfg(2, 1);
        cr_assert_eq(run_cfg(&cfg, deadlines, NULL), 0);
    }
}

/* ---- Stop with calls in flight ------------------------------------------- */

struct flight {
    _Atomic unsigned started, completed, cancelled, other, ran;
};

static struct flight flight;

static intptr_t flight_fn(void *arg)
{
    (void)arg;
    nap_us(500);
    atomic_fetch_add(&flight.ran, 1);
    return 7;
}

static intptr_t flight_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&flight.started, 1);
    intptr_t r = weft_run_blocking(flight_fn, NULL);
    if (r == 7)
        atomic_fetch_add(&flight.completed, 1);
    else if (r == -ECANCELED)
        atomic_fetch_add(&flight.cancelled, 1);
    else
        atomic_fetch_add(&flight.other, 1);
    return 0;
}

Test(blocking, stop_with_calls_in_flight_loses_none, .timeout = 120)
{
    for (int round = 0; round < 5; round++) {
        memset(&flight, 0, sizeof flight);
        weft_config_t cfg = pool_cfg(2, 2);
        cr_assert_eq(weft_start(&cfg), 0);
        unsigned n = SCALED(100) + 10;
        for (unsigned i = 0; i < n; i++)
            cr_assert_eq(weft_spawn(NULL, flight_task, NULL), 0);
        nap_us((unsigned)(round * 1000));
        cr_assert_eq(weft_stop(), 0);
        unsigned started = atomic_load(&flight.started);
        unsigned completed = atomic_load(&flight.completed);
        cr_assert_eq(atomic_load(&flight.other), 0);
        cr_assert_eq(started, completed + atomic_load(&flight.cancelled),
                     "every call that was made returned");
        cr_assert_eq(atomic_load(&flight.ran), completed,
                     "every call that ran reached its task, no other ran");
        cr_assert_leq(started, n);
    }
}

/* ---- Plain threads, nesting, idle threads, configuration ----------------- */

static intptr_t whoami(void *arg)
{
    *(pthread_t *)arg = pthread_self();
    return 5;
}

static intptr_t nested(void *arg)
{
    pthread_t *inner = arg;
    pthread_t outer = pthread_self();
    intptr_t r = weft_run_blocking(whoami, inner);
    cr_assert(pthread_equal(outer, *inner),
              "a call made from a pool thread runs inline");
    return r + 1;
}

static intptr_t nested_main(void *arg)
{
    return weft_run_blocking(nested, arg);
}

Test(blocking, plain_threads_and_pool_threads_run_calls_inline, .timeout = 30)
{
    pthread_t who;
    cr_assert_eq(weft_run_blocking(whoami, &who), 5);
    cr_assert(pthread_equal(who, pthread_self()));
    cr_assert_eq(weft_run_blocking(NULL, NULL), -EINVAL);
    cr_assert_eq(run_with(2, nested_main, &who), 6);
}

static intptr_t null_fn(void *arg)
{
    (void)arg;
    return weft_run_blocking(NULL, NULL);
}

Test(blocking, a_null_function_is_refused, .timeout = 30)
{
    cr_assert_eq(run_with(1, null_fn, NULL), -EINVAL);
}

static intptr_t sleeper(void *arg)
{
    (void)arg;
    nap_us(1000);
    return 1;
}

static intptr_t sleeper_caller(void *arg)
{
    (void)arg;
    return weft_run_blocking(sleeper, NULL);
}

static intptr_t idle_exit(void *arg)
{
    (void)arg;
    weft_task_t t[8];
    for (int i = 0; i < 8; i++)
        cr_assert_eq(weft_spawn(&t[i], sleeper_caller, NULL), 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(weft_join(t[i]), 1);
    cr_assert_gt(stats().threads, 0);
    uint64_t give_up = weft_now_ns() + 10000000000ull;
    while (stats().threads > 0 && weft_now_ns() < give_up)
        weft_sleep_ms(5);
    cr_assert_eq(stats().threads, 0, "idle threads exit");
    /* And the pool starts threads again afterwards. */
    cr_assert_eq(weft_run_blocking(sleeper, NULL), 1);
    return 0;
}

Test(blocking, idle_threads_exit_and_new_ones_start, .timeout = 60)
{
    uint64_t saved = weft__blocking_idle_ns;
    weft__blocking_idle_ns = 20000000; /* 20 ms */
    weft_config_t cfg = pool_cfg(2, 4);
    cr_assert_eq(run_cfg(&cfg, idle_exit, NULL), 0);
    weft__blocking_idle_ns = saved;
}

/* ---- Threads that cannot start ------------------------------------------- */

static _Atomic unsigned got_ok, got_again, got_other;

static intptr_t start_failure_task(void *arg)
{
    (void)arg;
    intptr_t r = weft_run_blocking(mark_fn, NULL);
    if (r == 7)
        atomic_fetch_add(&got_ok, 1);
    else if (r == -EAGAIN)
        atomic_fetch_add(&got_again, 1);
    else
        atomic_fetch_add(&got_other, 1);
    return 0;
}

static intptr_t start_failures(void *arg)
{
    unsigned n = *(unsigned *)arg;
    weft_task_t *t = calloc(n, sizeof *t);
    cr_assert_not_null(t);
    for (unsigned i = 0; i < n; i++)
        cr_assert_eq(weft_spawn(&t[i], start_failure_task, NULL), 0);
    for (unsigned i = 0; i < n; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    free(t);
    /* The pool works again once threads start. */
    cr_assert_eq(weft_run_blocking(mark_fn, NULL), 7);
    return 0;
}

/* A pool whose threads cannot start fails the calls that no thread would
 * ever take with -EAGAIN, runs the others, and never strands one. */
Test(blocking, calls_fail_with_eagain_when_no_thread_can_start, .timeout = 120)
{
    for (unsigned round = 0; round < 10; round++) {
        unsigned n = 16;
        atomic_store(&got_ok, 0);
        atomic_store(&got_again, 0);
        atomic_store(&got_other, 0);
        atomic_store(&marked, 0);
        atomic_store(&weft__blocking_fail_starts, 1 + round % 3);
        weft_config_t cfg = pool_cfg(2, 1 + round % 2);
        cr_assert_eq(run_cfg(&cfg, start_failures, &n), 0);
        cr_assert_eq(atomic_load(&got_other), 0);
        cr_assert_eq(atomic_load(&got_ok) + atomic_load(&got_again), n);
        cr_assert_geq(atomic_load(&got_again), 1);
        cr_assert_eq((unsigned)atomic_load(&marked), atomic_load(&got_ok) + 1,
                     "the calls that returned 7 ran, and only those");
    }
    atomic_store(&weft__blocking_fail_starts, 0);
}

Test(blocking, an_out_of_range_pool_size_is_refused, .timeout = 30)
{
    weft_config_t cfg = pool_cfg(1, WEFT_BLOCKING_THREADS_MAX + 1);
    cr_assert_eq(weft_start(&cfg), -EINVAL);
    cr_assert_null(weft__runtime());
    cfg.blocking_threads = WEFT_BLOCKING_THREADS_MAX;
    cr_assert_eq(weft_start(&cfg), 0);
    cr_assert_eq(stats().max_threads, WEFT_BLOCKING_THREADS_MAX);
    cr_assert_eq(weft_stop(), 0);
    cfg.blocking_threads = 0;
    cr_assert_eq(weft_start(&cfg), 0);
    cr_assert_eq(stats().max_threads, WEFT_BLOCKING_THREADS_DEFAULT);
    cr_assert_eq(weft_stop(), 0);
}
