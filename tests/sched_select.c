/* tests/sched_select.c: select over channels: which case completes, mixed
 * sends and receives, closed channels, deadlines, cancels, fairness among
 * ready cases, bad input, and many selecting producers and consumers over
 * many channels with exact accounting while deadlines race the hand-offs. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

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

static size_t queued(weft_chan_t *ch)
{
    pthread_mutex_lock(&ch->lock);
    size_t n = ch->senders.len + ch->receivers.len;
    pthread_mutex_unlock(&ch->lock);
    return n;
}

static void await_queued(weft_chan_t *ch, size_t k)
{
    while (queued(ch) < k)
        weft_sleep_ns(10000);
}

static weft_chan_t *mk(size_t cap)
{
    weft_chan_t *ch;
    cr_assert_eq(weft_chan_create(&ch, sizeof(int), cap), 0);
    return ch;
}

/* ---- Basics ------------------------------------------------------------- */

static intptr_t ready_body(void *arg)
{
    (void)arg;
    weft_chan_t *a = mk(1), *b = mk(1);
    int in_a = -1, in_b = -1, x = 8;
    cr_assert_eq(weft_chan_send(b, &x), 0);
    weft_select_case_t cs[] = {
        {.chan = a, .op = WEFT_SELECT_RECV, .item = &in_a, .result = 99},
        {.chan = b, .op = WEFT_SELECT_RECV, .item = &in_b, .result = 99},
    };
    cr_assert_eq(weft_select(cs, 2), 1);
    cr_assert_eq(cs[1].result, 0);
    cr_assert_eq(cs[0].result, 99, "other cases are untouched");
    cr_assert_eq(in_b, 8);
    cr_assert_eq(in_a, -1);
    cr_assert_eq(weft_select_try(cs, 2), -EAGAIN, "nothing ready");
    cr_assert_eq(weft_select_until(cs, 2, weft_now_ns() + 1000000), -ETIMEDOUT);
    cr_assert_eq(in_a, -1);
    cr_assert_eq(in_b, 8, "a select that timed out wrote nothing");
    /* Mixed: a send to a full channel and a receive from an empty one;
     * neither is ready, then the send case becomes ready. */
    int y = 3;
    cr_assert_eq(weft_chan_send(a, &y), 0);
    int z = 4;
    weft_select_case_t mixed[] = {
        {.chan = a, .op = WEFT_SELECT_SEND, .item = &z},
        {.chan = b, .op = WEFT_SELECT_RECV, .item = &in_b},
    };
    cr_assert_eq(weft_select_try(mixed, 2), -EAGAIN);
    int v;
    cr_assert_eq(weft_chan_recv(a, &v), 0);
    cr_assert_eq(v, 3);
    cr_assert_eq(weft_select(mixed, 2), 0);
    cr_assert_eq(mixed[0].result, 0);
    cr_assert_eq(weft_chan_recv(a, &v), 0);
    cr_assert_eq(v, 4);
    /* NULL channels are never ready; no case at all waits for the deadline. */
    weft_select_case_t nil[] = {{.chan = NULL, .op = WEFT_SELECT_RECV}};
    cr_assert_eq(weft_select_try(nil, 1), -EAGAIN);
    cr_assert_eq(weft_select_until(nil, 1, weft_now_ns() + 100000), -ETIMEDOUT);
    cr_assert_eq(weft_select_until(NULL, 0, weft_now_ns() + 100000), -ETIMEDOUT);
    cr_assert_eq(weft_chan_destroy(a), 0);
    cr_assert_eq(weft_chan_destroy(b), 0);
    return 0;
}

Test(select, completes_exactly_the_ready_case, .timeout = 30)
{
    cr_assert_eq(run_with(1, ready_body, NULL), 0);
}

static intptr_t bad_body(void *arg)
{
    (void)arg;
    weft_chan_t *a = mk(1);
    int x = 1;
    cr_assert_eq(weft_chan_send(a, &x), 0);
    weft_select_case_t bad_op[] = {
        {.chan = a, .op = WEFT_SELECT_RECV, .item = &x},
        {.chan = a, .op = 7, .item = &x},
    };
    cr_assert_eq(weft_select_try(bad_op, 2), -EINVAL);
    weft_mutex_t *m;
    cr_assert_eq(weft_mutex_create(&m), 0);
    weft_select_case_t foreign[] = {
        {.chan = a, .op = WEFT_SELECT_RECV, .item = &x},
        {.chan = (weft_chan_t *)m, .op = WEFT_SELECT_RECV, .item = &x},
    };
    cr_assert_eq(weft_select(foreign, 2), -EINVAL);
    weft_select_case_t null_item[] = {
        {.chan = a, .op = WEFT_SELECT_RECV, .item = NULL},
    };
    cr_assert_eq(weft_select(null_item, 1), -EINVAL);
    cr_assert_eq(weft_select(NULL, 3), -EINVAL);
    cr_assert_eq(weft_chan_len(a), 1, "nothing was done");
    cr_assert_eq(weft_mutex_destroy(m), 0);
    cr_assert_eq(weft_chan_destroy(a), 0);
    return 0;
}

Test(select, bad_input_is_refused_and_does_nothing, .timeout = 30)
{
    cr_assert_eq(run_with(1, bad_body, NULL), 0);
}

/* ---- Blocking, close, cancel --------------------------------------------- */

struct sel {
    weft_select_case_t cs[4];
    int n;
    int in[4];
};

static intptr_t select_body(void *arg)
{
    struct sel *s = arg;
    return weft_select(s->cs, (size_t)s->n);
}

static intptr_t blocking_body(void *arg)
{
    (void)arg;
    weft_chan_t *a = mk(0), *b = mk(0), *c = mk(1);
    int full = 1;
    cr_assert_eq(weft_chan_send(c, &full), 0);
    struct sel s = {.n = 3};
    int out = 55;
    s.cs[0] = (weft_select_case_t){.chan = a, .op = WEFT_SELECT_RECV, .item = &s.in[0]};
    s.cs[1] = (weft_select_case_t){.chan = b, .op = WEFT_SELECT_RECV, .item = &s.in[1]};
    s.cs[2] = (weft_select_case_t){.chan = c, .op = WEFT_SELECT_SEND, .item = &out};
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, select_body, &s), 0);
    await_queued(b, 1);
    cr_assert_eq(queued(a), 1, "one node per case");
    cr_assert_eq(queued(c), 1);
    int x = 21;
    cr_assert_eq(weft_chan_send(b, &x), 0);
    cr_assert_eq(weft_join(t), 1);
    cr_assert_eq(s.cs[1].result, 0);
    cr_assert_eq(s.in[1], 21);
    cr_assert_eq(queued(a) + queued(b) + queued(c), 0, "every node left");
    int v;
    cr_assert_eq(weft_chan_recv(c, &v), 0);
    cr_assert_eq(v, 1, "the send case did not happen");

    /* Woken by the send case this time: a receiver makes room in c. */
    cr_assert_eq(weft_chan_send(c, &full), 0);
    cr_assert_eq(weft_spawn(&t, select_body, &s), 0);
    await_queued(c, 1);
    cr_assert_eq(weft_chan_recv(c, &v), 0);
    cr_assert_eq(weft_join(t), 2);
    cr_assert_eq(s.cs[2].result, 0);
    cr_assert_eq(weft_chan_recv(c, &v), 0);
    cr_assert_eq(v, 55);

    /* Close while blocked: the closed case completes with -EPIPE. */
    cr_assert_eq(weft_chan_send(c, &full), 0);
    cr_assert_eq(weft_spawn(&t, select_body, &s), 0);
    await_queued(a, 1);
    cr_assert_eq(weft_chan_close(a), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(s.cs[0].result, -EPIPE);
    /* A closed channel is ready at once. */
    cr_assert_eq(weft_select_try(s.cs, 1), 0);

    /* Cancel while blocked. */
    s.cs[0].chan = NULL;
    cr_assert_eq(weft_spawn(&t, select_body, &s), 0);
    await_queued(b, 1);
    cr_assert_eq(weft_chan_destroy(b), -EBUSY);
    cancel_task(t);
    cr_assert_eq(weft_join(t), -ECANCELED);
    cr_assert_eq(queued(b) + queued(c), 0);
    cr_assert_eq(weft_chan_len(c), 1);
    cr_assert_eq(weft_chan_destroy(a), 0);
    cr_assert_eq(weft_chan_destroy(b), 0);
    cr_assert_eq(weft_chan_destroy(c), 0);
    return 0;
}

Test(select, waits_for_the_first_case_and_leaves_the_others, .timeout = 30)
{
    cr_assert_eq(run_with(2, blocking_body, NULL), 0);
}

static intptr_t same_chan_body(void *arg)
{
    (void)arg;
    /* One channel in two cases: a send and a receive on an unbuffered
     * channel; another fiber receives, so the send case completes. */
    weft_chan_t *a = mk(0);
    struct sel s = {.n = 2};
    int out = 9;
    s.cs[0] = (weft_select_case_t){.chan = a, .op = WEFT_SELECT_RECV, .item = &s.in[0]};
    s.cs[1] = (weft_select_case_t){.chan = a, .op = WEFT_SELECT_SEND, .item = &out};
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, select_body, &s), 0);
    await_queued(a, 2);
    int v;
    cr_assert_eq(weft_chan_recv(a, &v), 0);
    cr_assert_eq(v, 9);
    cr_assert_eq(weft_join(t), 1);
    cr_assert_eq(queued(a), 0);
    cr_assert_eq(weft_chan_destroy(a), 0);
    return 0;
}

Test(select, one_channel_may_appear_in_several_cases, .timeout = 30)
{
    cr_assert_eq(run_with(2, same_chan_body, NULL), 0);
}

static intptr_t fair_body(void *arg)
{
    (void)arg;
    weft_chan_t *a = mk(1), *b = mk(1);
    int count[2] = {0, 0};
    int x = 0, in;
    weft_select_case_t cs[] = {
        {.chan = a, .op = WEFT_SELECT_RECV, .item = &in},
        {.chan = b, .op = WEFT_SELECT_RECV, .item = &in},
    };
    for (int i = 0; i < 2000; i++) {
        if (weft_chan_len(a) == 0)
            cr_assert_eq(weft_chan_send(a, &x), 0);
        if (weft_chan_len(b) == 0)
            cr_assert_eq(weft_chan_send(b, &x), 0);
        int r = weft_select(cs, 2);
        cr_assert(r == 0 || r == 1);
        count[r]++;
    }
    cr_assert_gt(count[0], 500, "case 0 chosen %d times of 2000", count[0]);
    cr_assert_gt(count[1], 500, "case 1 chosen %d times of 2000", count[1]);
    weft_chan_destroy(a);
    weft_chan_destroy(b);
    return 0;
}

Test(select, ready_cases_are_chosen_at_random, .timeout = 30)
{
    cr_assert_eq(run_with(1, fair_body, NULL), 0);
}

/* ---- Many channels, many selectors --------------------------------------- */

#define NCHANS 24 /* more than select's on-stack cases */

/* Items: an int, alone (small: it travels in the wait node) or followed by
 * a payload derived from it (BIG bytes: copied after the wake). */
#define BIG 80
struct item {
    int v;
    int pad[BIG / 4 - 1];
};

static void item_fill(struct item *it, int v, size_t size)
{
    it->v = v;
    for (size_t i = 0; i < size / 4 - 1; i++)
        it->pad[i] = v * 31 + (int)i;
}

static void item_check(const struct item *it, size_t size)
{
    for (size_t i = 0; i < size / 4 - 1; i++)
        cr_assert_eq(it->pad[i], it->v * 31 + (int)i, "torn item %d", it->v);
}

struct many {
    weft_chan_t *ch[NCHANS];
    size_t isz;
    int producers, consumers, per;
    _Atomic uint8_t *sent_ok;
    _Atomic uint32_t *received;
    atomic_int send_fail, recv_fail;
    uint64_t seed;
    bool deadlines;
};

struct many_who {
    struct many *m;
    int id;
};

/* Send each item by selecting over a random subset of the channels. */
static intptr_t many_producer(void *arg)
{
    struct many_who *w = arg;
    struct many *m = w->m;
    uint64_t rng = m->seed * 101 + (uint64_t)w->id;
    for (int i = 0; i < m->per; i++) {
        int v = w->id * m->per + i;
        struct item it;
        item_fill(&it, v, m->isz);
        weft_select_case_t cs[NCHANS];
        int k = 1 + (int)(test_rand(&rng) % NCHANS);
        for (int j = 0; j < k; j++)
            cs[j] = (weft_select_case_t){
                .chan = m->ch[test_rand(&rng) % NCHANS],
                .op = WEFT_SELECT_SEND, .item = &it};
        int r;
        if (m->deadlines && test_rand(&rng) % 2)
            r = weft_select_until(cs, (size_t)k,
                                  weft_now_ns() + test_rand(&rng) % 40000);
        else
            r = weft_select(cs, (size_t)k);
        if (r >= 0) {
            cr_assert_lt(r, k);
            cr_assert_eq(cs[r].result, 0);
            atomic_store(&m->sent_ok[v], 1);
        } else {
            cr_assert_eq(r, -ETIMEDOUT);
            atomic_fetch_add(&m->send_fail, 1);
        }
    }
    return 0;
}

/* Receive by selecting over every channel until each is closed and
 * drained; a drained channel's case is then switched off (Go's nil
 * channel). */
static intptr_t many_consumer(void *arg)
{
    struct many_who *w = arg;
    struct many *m = w->m;
    uint64_t rng = m->seed * 37 + (uint64_t)w->id;
    struct item in[NCHANS];
    weft_select_case_t cs[NCHANS];
    for (int j = 0; j < NCHANS; j++)
        cs[j] = (weft_select_case_t){.chan = m->ch[j], .op = WEFT_SELECT_RECV,
                                     .item = &in[j]};
    int open = NCHANS;
    while (open > 0) {
        for (int j = 0; j < NCHANS; j++)
            in[j].v = -1;
        int r;
        if (m->deadlines && test_rand(&rng) % 2)
            r = weft_select_until(cs, NCHANS,
                                  weft_now_ns() + test_rand(&rng) % 40000);
        else
            r = weft_select(cs, NCHANS);
        if (r == -ETIMEDOUT) {
            for (int j = 0; j < NCHANS; j++)
                cr_assert_eq(in[j].v, -1, "a select that timed out wrote");
            atomic_fetch_add(&m->recv_fail, 1);
            continue;
        }
        cr_assert_geq(r, 0);
        if (cs[r].result == -EPIPE) {
            cs[r].chan = NULL; /* closed and drained: never ready again */
            open--;
            continue;
        }
        cr_assert_eq(cs[r].result, 0);
        for (int j = 0; j < NCHANS; j++)
            if (j != r)
                cr_assert_eq(in[j].v, -1, "only the chosen case moved");
        item_check(&in[r], m->isz);
        int v = in[r].v;
        cr_assert(v >= 0 && v < m->producers * m->per);
        atomic_fetch_add(&m->received[v], 1);
    }
    return 0;
}

static intptr_t many_body(void *arg)
{
    struct many *m = arg;
    int n = m->producers + m->consumers;
    int total = m->producers * m->per;
    m->sent_ok = calloc((size_t)total, sizeof *m->sent_ok);
    m->received = calloc((size_t)total, sizeof *m->received);
    weft_task_t *ts = calloc((size_t)n, sizeof *ts);
    struct many_who *ws = calloc((size_t)n, sizeof *ws);
    for (int i = 0; i < n; i++) {
        ws[i] = (struct many_who){.m = m, .id = i < m->producers ? i : i - m->producers};
        cr_assert_eq(weft_spawn(&ts[i], i < m->producers ? many_producer
                                                           : many_consumer,
                                &ws[i]),
                     0);
    }
    for (int i = 0; i < m->producers; i++)
        cr_assert_eq(weft_join(ts[i]), 0);
    for (int j = 0; j < NCHANS; j++)
        cr_assert_eq(weft_chan_close(m->ch[j]), 0);
    for (int i = m->producers; i < n; i++)
        cr_assert_eq(weft_join(ts[i]), 0);
    int delivered = 0;
    for (int v = 0; v < total; v++) {
        cr_assert_eq(atomic_load(&m->received[v]), atomic_load(&m->sent_ok[v]),
                     "item %d: sent_ok %u, received %u times", v,
                     (unsigned)atomic_load(&m->sent_ok[v]),
                     atomic_load(&m->received[v]));
        delivered += (int)atomic_load(&m->received[v]);
    }
    cr_assert_eq(delivered + atomic_load(&m->send_fail), total);
    free(m->sent_ok);
    free(m->received);
    free(ts);
    free(ws);
    return 0;
}

static void run_many(unsigned workers, bool deadlines, int per, uint64_t seed,
                     int *fails)
{
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = workers;
    cfg.shuffle_seed = seed;
    struct many m = {.producers = 8, .consumers = 8, .per = per, .seed = seed,
                     .deadlines = deadlines,
                     .isz = seed % 2 ? BIG : sizeof(int)};
    for (int j = 0; j < NCHANS; j++)
        cr_assert_eq(weft_chan_create(&m.ch[j], m.isz, (size_t)(j % 3)), 0);
    cr_assert_eq(run_cfg(&cfg, many_body, &m), 0);
    for (int j = 0; j < NCHANS; j++)
        cr_assert_eq(weft_chan_destroy(m.ch[j]), 0);
    *fails += atomic_load(&m.send_fail) + atomic_load(&m.recv_fail);
}

Test(select, many_selectors_over_many_channels_deliver_each_item_once,
     .timeout = 120)
{
    int fails = 0;
    run_many(1, false, SCALED(2000), 1, &fails);
    run_many(2, false, SCALED(2000), 2, &fails);
    run_many(2, false, SCALED(2000), 3, &fails);
    run_many(4, false, SCALED(1000), 4, &fails);
    cr_assert_eq(fails, 0);
}

Test(select, deadlines_racing_hand_offs_lose_nothing, .timeout = 120)
{
    int fails = 0;
    int iterations = SCALED(60) > 6 ? SCALED(60) : 6;
    for (int it = 0; it < iterations; it++)
        run_many(1 + (unsigned)(it % 3), true, 200, 100 + (uint64_t)it, &fails);
    cr_assert_gt(fails, 0, "the deadlines never fired: the test proved nothing");
}

/* ---- A plain thread selecting against fibers ------------------------------ */

struct thread_sel {
    weft_chan_t *a, *b;
    int per;
    atomic_int got;
    long long sum;
};

static void *thread_selector(void *arg)
{
    struct thread_sel *t = arg;
    int ia, ib;
    weft_select_case_t cs[] = {
        {.chan = t->a, .op = WEFT_SELECT_RECV, .item = &ia},
        {.chan = t->b, .op = WEFT_SELECT_RECV, .item = &ib},
    };
    int open = 2;
    while (open) {
        int r = weft_select(cs, 2);
        cr_assert_geq(r, 0);
        if (cs[r].result == -EPIPE) {
            cs[r].chan = NULL;
            open--;
            continue;
        }
        t->sum += r == 0 ? ia : ib;
        atomic_fetch_add(&t->got, 1);
    }
    return NULL;
}

static intptr_t fiber_sender(void *arg)
{
    struct thread_sel *t = arg;
    for (int i = 1; i <= t->per; i++) {
        weft_chan_t *ch = i % 2 ? t->a : t->b;
        cr_assert_eq(weft_chan_send(ch, &i), 0);
    }
    return 0;
}

Test(select, plain_thread_selects_over_channels_fed_by_fibers, .timeout = 60)
{
    struct thread_sel t = {.per = SCALED(20000)};
    cr_assert_eq(weft_chan_create(&t.a, sizeof(int), 0), 0);
    cr_assert_eq(weft_chan_create(&t.b, sizeof(int), 2), 0);
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 2;
    cr_assert_eq(weft_start(&cfg), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, thread_selector, &t), 0);
    intptr_t r;
    cr_assert_eq(weft_block_on(fiber_sender, &t, &r), 0);
    cr_assert_eq(r, 0);
    cr_assert_eq(weft_chan_close(t.a), 0);
    cr_assert_eq(weft_chan_close(t.b), 0);
    pthread_join(th, NULL);
    cr_assert_eq(weft_stop(), 0);
    cr_assert_eq(atomic_load(&t.got), t.per);
    cr_assert_eq(t.sum, (long long)t.per * (t.per + 1) / 2);
    cr_assert_eq(weft_chan_destroy(t.a), 0);
    cr_assert_eq(weft_chan_destroy(t.b), 0);
}
