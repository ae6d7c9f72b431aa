/* tests/sched_chan.c: channels: order, capacity, rendezvous, close, destroy,
 * bad input, and under many producers and consumers across workers, with
 * deadlines and cancels racing the hand-offs, that every item sent arrives
 * exactly once (and an item whose send failed never arrives). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "runtime/runtime.h"
#include "sched/sched.h"
#include "sched/sync.h"
#include "support/weft_test.h"

/* ---- Helpers that look inside -------------------------------------------- */

/* Cancel a task through the core (the same request weft_cancel makes). */
static void cancel_task(weft_task_t h)
{
    struct weft__runtime *rt = weft__runtime();
    struct weft__task *t = weft__task_lookup(rt, h.id_);
    cr_assert_not_null(t);
    weft__task_cancel(rt, t);
}

/* Blocked waits queued on ch now. */
static size_t queued(weft_chan_t *ch)
{
    pthread_mutex_lock(&ch->lock);
    size_t n = ch->senders.len + ch->receivers.len;
    pthread_mutex_unlock(&ch->lock);
    return n;
}

/* From a fiber: let others run until k waits are queued on ch. */
static void await_queued(weft_chan_t *ch, size_t k)
{
    while (queued(ch) < k)
        weft_sleep_ns(10000);
}

static void set_scope(uint64_t deadline)
{
    weft__task_self(weft__worker_self())->deadline = deadline;
}

/* Items of the stress tests: a value, then a payload derived from it (so a
 * torn or stale copy shows). Channels are made with item sizes 4 (the value
 * alone: small items travel in the wait node) and BIG (bigger than a node's
 * scratch: copied after the wake). */
#define BIG 96
struct item {
    uint32_t v;
    uint32_t pad[BIG / 4 - 1];
};

static void item_fill(struct item *it, uint32_t v, size_t size)
{
    it->v = v;
    for (size_t i = 0; i < size / 4 - 1; i++)
        it->pad[i] = v * 2654435761u + (uint32_t)i;
}

static void item_check(const struct item *it, size_t size)
{
    for (size_t i = 0; i < size / 4 - 1; i++)
        cr_assert_eq(it->pad[i], it->v * 2654435761u + (uint32_t)i,
                     "torn item %u", it->v);
}

/* ---- Single-fiber behaviour --------------------------------------------- */

static intptr_t order_body(void *arg)
{
    (void)arg;
    weft_chan_t *ch;
    cr_assert_eq(weft_chan_create(&ch, sizeof(int), 4), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_chan_send(ch, &i), 0);
    int x = 99;
    cr_assert_eq(weft_chan_try_send(ch, &x), -EAGAIN, "full");
    cr_assert_eq(weft_chan_len(ch), 4);
    for (int round = 0; round < 10; round++) { /* wrap around the ring */
        int v;
        cr_assert_eq(weft_chan_recv(ch, &v), 0);
        cr_assert_eq(v, round);
        int next = round + 4;
        cr_assert_eq(weft_chan_try_send(ch, &next), 0);
    }
    for (int i = 10; i < 14; i++) {
        int v;
        cr_assert_eq(weft_chan_try_recv(ch, &v), 0);
        cr_assert_eq(v, i);
    }
    int v = -7;
    cr_assert_eq(weft_chan_try_recv(ch, &v), -EAGAIN, "empty");
    cr_assert_eq(v, -7, "a failed receive leaves the buffer alone");
    cr_assert_eq(weft_chan_recv_until(ch, &v, weft_now_ns() + 1000000),
                 -ETIMEDOUT);
    cr_assert_eq(v, -7);
    cr_assert_eq(weft_chan_len(ch), 0);
    cr_assert_eq(weft_chan_destroy(ch), 0);
    return 0;
}

Test(chan, buffered_items_leave_in_order, .timeout = 30)
{
    cr_assert_eq(run_with(1, order_body, NULL), 0);
}

static intptr_t bad_input_body(void *arg)
{
    (void)arg;
    weft_chan_t *ch;
    cr_assert_eq(weft_chan_create(NULL, 4, 4), -EINVAL);
    cr_assert_eq(weft_chan_create(&ch, SIZE_MAX / 2, 3), -EINVAL,
                 "capacity * item_size overflows");
    cr_assert_eq(weft_chan_create(&ch, 8, 2), 0);
    int x = 0;
    cr_assert_eq(weft_chan_send(NULL, &x), -EINVAL);
    cr_assert_eq(weft_chan_recv(NULL, &x), -EINVAL);
    cr_assert_eq(weft_chan_close(NULL), -EINVAL);
    cr_assert_eq(weft_chan_destroy(NULL), -EINVAL);
    cr_assert_eq(weft_chan_len(NULL), -EINVAL);
    cr_assert_eq(weft_chan_send(ch, NULL), -EINVAL, "NULL item");
    cr_assert_eq(weft_chan_recv(ch, NULL), -EINVAL, "NULL item");
    /* A foreign object: another kind of weft object, and plain memory. */
    weft_mutex_t *m;
    cr_assert_eq(weft_mutex_create(&m), 0);
    cr_assert_eq(weft_chan_send((weft_chan_t *)m, &x), -EINVAL);
    cr_assert_eq(weft_chan_try_recv((weft_chan_t *)m, &x), -EINVAL);
    uint64_t junk[16] = {0};
    cr_assert_eq(weft_chan_close((weft_chan_t *)junk), -EINVAL);
    cr_assert_eq(weft_mutex_destroy(m), 0);
    cr_assert_eq(weft_chan_len(ch), 0, "nothing changed");
    cr_assert_eq(weft_chan_destroy(ch), 0);
    return 0;
}

Test(chan, bad_input_is_refused, .timeout = 30)
{
    cr_assert_eq(run_with(1, bad_input_body, NULL), 0);
}

static intptr_t zero_size_body(void *arg)
{
    (void)arg;
    weft_chan_t *ch;
    cr_assert_eq(weft_chan_create(&ch, 0, 2), 0);
    cr_assert_eq(weft_chan_send(ch, NULL), 0);
    cr_assert_eq(weft_chan_send(ch, NULL), 0);
    cr_assert_eq(weft_chan_try_send(ch, NULL), -EAGAIN);
    cr_assert_eq(weft_chan_len(ch), 2);
    cr_assert_eq(weft_chan_recv(ch, NULL), 0);
    cr_assert_eq(weft_chan_recv(ch, NULL), 0);
    cr_assert_eq(weft_chan_try_recv(ch, NULL), -EAGAIN);
    cr_assert_eq(weft_chan_destroy(ch), 0);
    return 0;
}

Test(chan, zero_size_items_are_signals, .timeout = 30)
{
    cr_assert_eq(run_with(1, zero_size_body, NULL), 0);
}

/* ---- Rendezvous, close, destroy ----------------------------------------- */

struct one {
    weft_chan_t *ch;
    int value;
    int result;
};

static intptr_t send_one(void *arg)
{
    struct one *o = arg;
    return weft_chan_send(o->ch, &o->value);
}

static intptr_t recv_one(void *arg)
{
    struct one *o = arg;
    int r = weft_chan_recv(o->ch, &o->value);
    return r;
}

static intptr_t rendezvous_body(void *arg)
{
    (void)arg;
    weft_chan_t *ch;
    cr_assert_eq(weft_chan_create(&ch, sizeof(int), 0), 0);
    int x = 5;
    cr_assert_eq(weft_chan_try_send(ch, &x), -EAGAIN, "nobody receives");
    cr_assert_eq(weft_chan_try_recv(ch, &x), -EAGAIN, "nobody sends");
    /* A blocked receiver takes a try_send. */
    struct one r = {.ch = ch, .value = -1};
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, recv_one, &r), 0);
    await_queued(ch, 1);
    x = 42;
    cr_assert_eq(weft_chan_try_send(ch, &x), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(r.value, 42);
    /* A blocked sender is taken by try_recv; its send then returns. */
    struct one s = {.ch = ch, .value = 77};
    cr_assert_eq(weft_spawn(&t, send_one, &s), 0);
    await_queued(ch, 1);
    int v = 0;
    cr_assert_eq(weft_chan_try_recv(ch, &v), 0);
    cr_assert_eq(v, 77);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(weft_chan_len(ch), 0, "an unbuffered channel holds nothing");
    cr_assert_eq(weft_chan_destroy(ch), 0);
    return 0;
}

Test(chan, unbuffered_send_meets_a_receiver, .timeout = 30)
{
    cr_assert_eq(run_with(2, rendezvous_body, NULL), 0);
}

static intptr_t close_body(void *arg)
{
    (void)arg;
    weft_chan_t *ch;
    cr_assert_eq(weft_chan_create(&ch, sizeof(int), 8), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_chan_send(ch, &i), 0);
    cr_assert_eq(weft_chan_close(ch), 0);
    cr_assert_eq(weft_chan_close(ch), -EPIPE, "closing twice");
    int x = 9;
    cr_assert_eq(weft_chan_send(ch, &x), -EPIPE);
    cr_assert_eq(weft_chan_try_send(ch, &x), -EPIPE);
    for (int i = 0; i < 3; i++) {
        int v;
        cr_assert_eq(weft_chan_recv(ch, &v), 0, "drains first");
        cr_assert_eq(v, i);
    }
    int v = -3;
    cr_assert_eq(weft_chan_recv(ch, &v), -EPIPE);
    cr_assert_eq(weft_chan_try_recv(ch, &v), -EPIPE);
    cr_assert_eq(weft_chan_recv_until(ch, &v, 0), -EPIPE);
    cr_assert_eq(v, -3);
    cr_assert_eq(weft_chan_destroy(ch), 0);
    return 0;
}

Test(chan, close_lets_receivers_drain_then_reports_epipe, .timeout = 30)
{
    cr_assert_eq(run_with(1, close_body, NULL), 0);
}

static intptr_t close_blocked_body(void *arg)
{
    (void)arg;
    weft_chan_t *full, *empty;
    cr_assert_eq(weft_chan_create(&full, sizeof(int), 1), 0);
    cr_assert_eq(weft_chan_create(&empty, sizeof(int), 1), 0);
    int x = 1;
    cr_assert_eq(weft_chan_send(full, &x), 0);
    enum { K = 6 };
    struct one s[K], r[K];
    weft_task_t ts[K], tr[K];
    for (int i = 0; i < K; i++) {
        s[i] = (struct one){.ch = full, .value = 100 + i};
        r[i] = (struct one){.ch = empty, .value = -1};
        cr_assert_eq(weft_spawn(&ts[i], send_one, &s[i]), 0);
        cr_assert_eq(weft_spawn(&tr[i], recv_one, &r[i]), 0);
    }
    await_queued(full, K);
    await_queued(empty, K);
    cr_assert_eq(weft_chan_destroy(full), -EBUSY, "senders wait on it");
    cr_assert_eq(weft_chan_destroy(empty), -EBUSY, "receivers wait on it");
    cr_assert_eq(weft_chan_close(full), 0);
    cr_assert_eq(weft_chan_close(empty), 0);
    for (int i = 0; i < K; i++) {
        cr_assert_eq(weft_join(ts[i]), -EPIPE);
        cr_assert_eq(weft_join(tr[i]), -EPIPE);
        cr_assert_eq(r[i].value, -1);
    }
    /* The buffered item survives; the blocked senders' items never went in. */
    int v;
    cr_assert_eq(weft_chan_recv(full, &v), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(weft_chan_recv(full, &v), -EPIPE);
    cr_assert_eq(weft_chan_destroy(full), 0);
    cr_assert_eq(weft_chan_destroy(empty), 0);
    return 0;
}

Test(chan, close_wakes_blocked_senders_and_receivers, .timeout = 30)
{
    cr_assert_eq(run_with(2, close_blocked_body, NULL), 0);
}

/* ---- Cancellation and deadline scopes at each wait ----------------------- */

static intptr_t cancel_body(void *arg)
{
    (void)arg;
    weft_chan_t *ch;
    cr_assert_eq(weft_chan_create(&ch, sizeof(int), 0), 0);
    struct one r = {.ch = ch, .value = -1}, s = {.ch = ch, .value = 5};
    weft_task_t tr, ts;
    cr_assert_eq(weft_spawn(&tr, recv_one, &r), 0);
    await_queued(ch, 1);
    cancel_task(tr);
    cr_assert_eq(weft_join(tr), -ECANCELED);
    cr_assert_eq(r.value, -1);
    cr_assert_eq(queued(ch), 0, "the cancelled receiver left the queue");

    cr_assert_eq(weft_spawn(&ts, send_one, &s), 0);
    await_queued(ch, 1);
    cancel_task(ts);
    cr_assert_eq(weft_join(ts), -ECANCELED);
    int v;
    cr_assert_eq(weft_chan_try_recv(ch, &v), -EAGAIN,
                 "a cancelled send delivered nothing");

    /* A deadline scope ends both kinds of wait with -ETIMEDOUT. */
    set_scope(weft_now_ns() + 2000000);
    cr_assert_eq(weft_chan_recv(ch, &v), -ETIMEDOUT);
    set_scope(weft_now_ns() + 2000000);
    cr_assert_eq(weft_chan_send(ch, &v), -ETIMEDOUT);
    set_scope(UINT64_MAX);
    cr_assert_eq(weft_chan_destroy(ch), 0);
    return 0;
}

Test(chan, cancel_and_deadline_scope_end_blocked_waits, .timeout = 30)
{
    cr_assert_eq(run_with(2, cancel_body, NULL), 0);
}

/* ---- Many producers and consumers ---------------------------------------- */

struct mpmc {
    weft_chan_t *ch;
    size_t isz;
    int producers, consumers, per;
    _Atomic uint32_t *seen; /* per value: times received */
    atomic_llong sum;
    atomic_int received;
    uint64_t seed;
};

struct who {
    struct mpmc *m;
    int id;
};

static intptr_t producer(void *arg)
{
    struct who *w = arg;
    struct mpmc *m = w->m;
    uint64_t rng = m->seed * 31 + (uint64_t)w->id + 1;
    for (int i = 0; i < m->per; i++) {
        struct item it;
        item_fill(&it, (uint32_t)(w->id * m->per + i), m->isz);
        if (test_rand(&rng) % 8 == 0)
            weft_yield();
        random_spin(&rng);
        int r = weft_chan_send(m->ch, &it);
        cr_assert_eq(r, 0, "send: %d", r);
    }
    return 0;
}

static intptr_t consumer(void *arg)
{
    struct who *w = arg;
    struct mpmc *m = w->m;
    uint64_t rng = m->seed * 17 + (uint64_t)w->id + 7;
    for (;;) {
        struct item it;
        int r = weft_chan_recv(m->ch, &it);
        if (r == -EPIPE)
            return 0;
        cr_assert_eq(r, 0, "recv: %d", r);
        item_check(&it, m->isz);
        uint32_t v = it.v;
        cr_assert_lt(v, (uint32_t)(m->producers * m->per));
        atomic_fetch_add(&m->seen[v], 1);
        atomic_fetch_add(&m->sum, (long long)v);
        atomic_fetch_add(&m->received, 1);
        if (test_rand(&rng) % 8 == 0)
            weft_yield();
    }
}

static intptr_t mpmc_body(void *arg)
{
    struct mpmc *m = arg;
    int total = m->producers * m->per;
    m->seen = calloc((size_t)total, sizeof *m->seen);
    cr_assert_not_null(m->seen);
    struct who *ws = calloc((size_t)(m->producers + m->consumers), sizeof *ws);
    weft_task_t *ts =
        calloc((size_t)(m->producers + m->consumers), sizeof *ts);
    for (int i = 0; i < m->producers + m->consumers; i++) {
        ws[i] = (struct who){.m = m, .id = i < m->producers ? i : i - m->producers};
        cr_assert_eq(weft_spawn(&ts[i], i < m->producers ? producer : consumer,
                                &ws[i]),
                     0);
    }
    for (int i = 0; i < m->producers; i++)
        cr_assert_eq(weft_join(ts[i]), 0);
    cr_assert_eq(weft_chan_close(m->ch), 0);
    for (int i = m->producers; i < m->producers + m->consumers; i++)
        cr_assert_eq(weft_join(ts[i]), 0);
    cr_assert_eq(atomic_load(&m->received), total);
    for (int v = 0; v < total; v++)
        cr_assert_eq(atomic_load(&m->seen[v]), 1, "item %d seen %u times", v,
                     atomic_load(&m->seen[v]));
    cr_assert_eq(atomic_load(&m->sum), (long long)total * (total - 1) / 2);
    free(m->seen);
    free(ws);
    free(ts);
    return 0;
}

static void run_mpmc(unsigned workers, size_t capacity, size_t isz,
                     int producers, int consumers, int per, uint64_t seed)
{
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = workers;
    cfg.shuffle_seed = seed;
    struct mpmc m = {.producers = producers, .consumers = consumers,
                     .per = per, .seed = seed, .isz = isz};
    cr_assert_eq(weft_chan_create(&m.ch, isz, capacity), 0);
    cr_assert_eq(run_cfg(&cfg, mpmc_body, &m), 0);
    cr_assert_eq(weft_chan_destroy(m.ch), 0);
}

Test(chan, many_producers_and_consumers_deliver_each_item_once, .timeout = 120)
{
    static const size_t caps[] = {0, 1, 7, 64};
    static const unsigned workers[] = {1, 2, 4};
    uint64_t seed = 1;
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++)
        for (size_t w = 0; w < sizeof workers / sizeof workers[0]; w++)
            for (size_t isz = 4; isz <= BIG; isz += BIG - 4)
                run_mpmc(workers[w], caps[c], isz, 8, 8, SCALED(2000), seed++);
    /* Lopsided: many producers on one consumer, one producer on many. */
    run_mpmc(2, 3, 4, 16, 1, SCALED(2000), seed++);
    run_mpmc(2, 0, BIG, 1, 16, SCALED(20000), seed++);
}

/* ---- Deadlines and cancels racing hand-offs ------------------------------- */

#define RACE_SENTINEL 0xdeadbeefu

struct race {
    weft_chan_t *ch;
    size_t isz;
    int senders, receivers, per;
    _Atomic uint8_t *sent_ok;   /* per value: its send returned 0 */
    _Atomic uint32_t *received; /* per value: times received */
    atomic_int send_fail, recv_fail, cancels;
    atomic_int senders_done;
    weft_task_t *tasks;
    uint64_t seed;
};

struct race_who {
    struct race *r;
    int id;
};

static intptr_t race_sender(void *arg)
{
    struct race_who *w = arg;
    struct race *r = w->r;
    uint64_t rng = r->seed * 13 + (uint64_t)w->id;
    for (int i = 0; i < r->per; i++) {
        uint32_t v = (uint32_t)(w->id * r->per + i);
        struct item it;
        item_fill(&it, v, r->isz);
        int res;
        if (test_rand(&rng) % 4 == 0)
            res = weft_chan_send(r->ch, &it);
        else
            res = weft_chan_send_until(
                r->ch, &it, weft_now_ns() + test_rand(&rng) % 30000);
        item_fill(&it, ~0u, r->isz); /* the channel kept no pointer to it */
        if (res == 0)
            atomic_store(&r->sent_ok[v], 1);
        else {
            cr_assert(res == -ETIMEDOUT || res == -ECANCELED, "send: %d", res);
            atomic_fetch_add(&r->send_fail, 1);
        }
        random_spin(&rng);
    }
    atomic_fetch_add(&r->senders_done, 1);
    return 0;
}

static intptr_t race_receiver(void *arg)
{
    struct race_who *w = arg;
    struct race *r = w->r;
    uint64_t rng = r->seed * 7 + (uint64_t)w->id;
    for (;;) {
        struct item it;
        memset(&it, 0xa5, sizeof it);
        it.v = RACE_SENTINEL;
        int res;
        if (test_rand(&rng) % 4 == 0)
            res = weft_chan_recv(r->ch, &it);
        else
            res = weft_chan_recv_until(
                r->ch, &it, weft_now_ns() + test_rand(&rng) % 30000);
        if (res == -EPIPE)
            return 0;
        if (res == 0) {
            item_check(&it, r->isz);
            cr_assert_lt(it.v, (uint32_t)(r->senders * r->per));
            atomic_fetch_add(&r->received[it.v], 1);
        } else {
            cr_assert(res == -ETIMEDOUT || res == -ECANCELED, "recv: %d", res);
            cr_assert_eq(it.v, RACE_SENTINEL, "a failed recv wrote the buffer");
            for (size_t i = 0; i < BIG / 4 - 1; i++)
                cr_assert_eq(it.pad[i], 0xa5a5a5a5u,
                             "a failed recv wrote the buffer");
            atomic_fetch_add(&r->recv_fail, 1);
        }
        random_spin(&rng);
    }
}

static intptr_t race_canceller(void *arg)
{
    struct race *r = arg;
    uint64_t rng = r->seed * 3 + 1;
    int n = r->senders + r->receivers;
    /* Every handle stays unjoined while this runs: a joined one may name a
     * reused descriptor. */
    while (atomic_load(&r->senders_done) < r->senders) {
        cancel_task(r->tasks[test_rand(&rng) % (uint64_t)n]);
        atomic_fetch_add(&r->cancels, 1);
        weft_sleep_ns(test_rand(&rng) % 20000);
    }
    return 0;
}

static intptr_t race_body(void *arg)
{
    struct race *r = arg;
    int total = r->senders * r->per;
    int n = r->senders + r->receivers;
    r->sent_ok = calloc((size_t)total, sizeof *r->sent_ok);
    r->received = calloc((size_t)total, sizeof *r->received);
    r->tasks = calloc((size_t)n, sizeof *r->tasks);
    struct race_who *ws = calloc((size_t)n, sizeof *ws);
    for (int i = 0; i < n; i++) {
        ws[i] = (struct race_who){.r = r,
                                  .id = i < r->senders ? i : i - r->senders};
        cr_assert_eq(weft_spawn(&r->tasks[i],
                                i < r->senders ? race_sender : race_receiver,
                                &ws[i]),
                     0);
    }
    weft_task_t canceller;
    cr_assert_eq(weft_spawn(&canceller, race_canceller, r), 0);
    cr_assert_eq(weft_join(canceller), 0);
    for (int i = 0; i < r->senders; i++)
        cr_assert_eq(weft_join(r->tasks[i]), 0);
    cr_assert_eq(weft_chan_close(r->ch), 0);
    for (int i = r->senders; i < n; i++)
        cr_assert_eq(weft_join(r->tasks[i]), 0);
    int delivered = 0;
    for (int v = 0; v < total; v++) {
        uint32_t got = atomic_load(&r->received[v]);
        cr_assert_eq(got, atomic_load(&r->sent_ok[v]),
                     "item %d: sent_ok %u, received %u times", v,
                     (unsigned)atomic_load(&r->sent_ok[v]), got);
        delivered += (int)got;
    }
    cr_assert_eq(delivered + atomic_load(&r->send_fail), total);
    free(r->sent_ok);
    free(r->received);
    free(r->tasks);
    free(ws);
    return 0;
}

Test(chan, deadlines_and_cancels_never_lose_or_duplicate_items, .timeout = 120)
{
    int iterations = SCALED(300) > 12 ? SCALED(300) : 12;
    int fails = 0, cancels = 0;
    for (int it = 0; it < iterations; it++) {
        weft_config_t cfg;
        weft_config_init(&cfg);
        cfg.workers = 1 + (unsigned)(it % 3);
        cfg.shuffle_seed = (uint64_t)it + 1000;
        struct race r = {.senders = 6, .receivers = 6, .per = 300,
                         .seed = (uint64_t)it + 1,
                         .isz = it % 2 ? BIG : sizeof(uint32_t)};
        cr_assert_eq(weft_chan_create(&r.ch, r.isz,
                                      (size_t)(it / 2 % 3)),
                     0);
        cr_assert_eq(run_cfg(&cfg, race_body, &r), 0);
        cr_assert_eq(weft_chan_destroy(r.ch), 0);
        fails += atomic_load(&r.send_fail) + atomic_load(&r.recv_fail);
        cancels += atomic_load(&r.cancels);
    }
    /* The test means something only if the races happened. */
    cr_assert_gt(fails, 0);
    cr_assert_gt(cancels, 0);
}

/* ---- Plain threads and fibers on one channel ------------------------------ */

struct mixed {
    weft_chan_t *to_fibers, *to_threads;
    int per;
    _Atomic uint32_t *seen;
    atomic_int fiber_got, thread_got;
};

struct mixed_who {
    struct mixed *m;
    int id;
};

static void *thread_producer(void *arg)
{
    struct mixed_who *w = arg;
    for (int i = 0; i < w->m->per; i++) {
        uint32_t v = (uint32_t)(w->id * w->m->per + i);
        cr_assert_eq(weft_chan_send(w->m->to_fibers, &v), 0);
    }
    return NULL;
}

static void *thread_consumer(void *arg)
{
    struct mixed_who *w = arg;
    for (;;) {
        uint32_t v;
        int r = weft_chan_recv_until(w->m->to_threads, &v,
                                     weft_now_ns() + 50000000);
        if (r == -EPIPE)
            return NULL;
        if (r == -ETIMEDOUT)
            continue;
        cr_assert_eq(r, 0);
        atomic_fetch_add(&w->m->seen[v], 1);
        atomic_fetch_add(&w->m->thread_got, 1);
    }
}

static intptr_t fiber_relay(void *arg)
{
    /* Receive from the threads, forward to the threads. */
    struct mixed *m = arg;
    for (;;) {
        uint32_t v;
        int r = weft_chan_recv(m->to_fibers, &v);
        if (r == -EPIPE)
            return 0;
        cr_assert_eq(r, 0);
        atomic_fetch_add(&m->fiber_got, 1);
        cr_assert_eq(weft_chan_send(m->to_threads, &v), 0);
    }
}

Test(chan, plain_threads_and_fibers_share_channels, .timeout = 60)
{
    enum { THREADS = 3, FIBERS = 4 };
    struct mixed m = {.per = SCALED(20000)};
    int total = THREADS * m.per;
    m.seen = calloc((size_t)total, sizeof *m.seen);
    cr_assert_eq(weft_chan_create(&m.to_fibers, sizeof(uint32_t), 0), 0);
    cr_assert_eq(weft_chan_create(&m.to_threads, sizeof(uint32_t), 4), 0);
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 2;
    cr_assert_eq(weft_start(&cfg), 0);
    weft_task_t relays[FIBERS];
    for (int i = 0; i < FIBERS; i++)
        cr_assert_eq(weft_spawn(&relays[i], fiber_relay, &m), 0);
    pthread_t prod[THREADS], cons[THREADS];
    struct mixed_who who[THREADS];
    for (int i = 0; i < THREADS; i++) {
        who[i] = (struct mixed_who){.m = &m, .id = i};
        cr_assert_eq(pthread_create(&prod[i], NULL, thread_producer, &who[i]), 0);
        cr_assert_eq(pthread_create(&cons[i], NULL, thread_consumer, &who[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(prod[i], NULL);
    cr_assert_eq(weft_chan_close(m.to_fibers), 0);
    for (int i = 0; i < FIBERS; i++)
        cr_assert_eq(weft_join(relays[i]), 0);
    cr_assert_eq(weft_chan_close(m.to_threads), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(cons[i], NULL);
    cr_assert_eq(weft_stop(), 0);
    cr_assert_eq(atomic_load(&m.fiber_got), total);
    cr_assert_eq(atomic_load(&m.thread_got), total);
    for (int v = 0; v < total; v++)
        cr_assert_eq(atomic_load(&m.seen[v]), 1);
    cr_assert_eq(weft_chan_destroy(m.to_fibers), 0);
    cr_assert_eq(weft_chan_destroy(m.to_threads), 0);
    free(m.seen);
}

Test(chan, works_between_threads_without_a_runtime, .timeout = 30)
{
    weft_chan_t *ch;
    cr_assert_eq(weft_chan_create(&ch, sizeof(uint32_t), 0), 0);
    struct mixed m = {.to_threads = ch, .per = SCALED(5000)};
    m.seen = calloc((size_t)m.per, sizeof *m.seen);
    struct mixed_who who = {.m = &m, .id = 0};
    pthread_t cons;
    cr_assert_eq(pthread_create(&cons, NULL, thread_consumer, &who), 0);
    for (int i = 0; i < m.per; i++) {
        uint32_t v = (uint32_t)i;
        cr_assert_eq(weft_chan_send(ch, &v), 0);
    }
    cr_assert_eq(weft_chan_close(ch), 0);
    pthread_join(cons, NULL);
    cr_assert_eq(atomic_load(&m.thread_got), m.per);
    uint32_t v;
    cr_assert_eq(weft_chan_send_until(ch, &v, 0), -EPIPE);
    cr_assert_eq(weft_chan_destroy(ch), 0);
    free(m.seen);
}
