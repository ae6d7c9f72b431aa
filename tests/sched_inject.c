/* tests/sched_inject.c: the injection queue and the MPSC inbox
 * (sched/inject.c). */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>

#include "sched/inject.h"

/* Sanitizer builds run fewer iterations: under ThreadSanitizer (clang's
 * above all) every atomic access costs ~100 ns. gcc defines
 * __SANITIZE_*__; clang 14 only answers __has_feature. */
#if defined(__has_feature)
#define HAS_FEATURE(x) __has_feature(x)
#else
#define HAS_FEATURE(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || HAS_FEATURE(thread_sanitizer)
#define SLOW 16
#elif defined(__SANITIZE_ADDRESS__) || HAS_FEATURE(address_sanitizer)
#define SLOW 4
#else
#define SLOW 1
#endif

struct item {
    struct weft__qlink link;
    uint32_t producer;
    uint32_t seq;
};

static struct item *item_of(struct weft__qlink *l)
{
    return (struct item *)((char *)l - offsetof(struct item, link));
}

/* Main thread only (Criterion cannot abort a test from another thread). */
static uint32_t seq_of(struct weft__qlink *l)
{
    cr_assert_not_null(l);
    return item_of(l)->seq;
}

static struct item *make_items(uint32_t n)
{
    struct item *v = calloc(n, sizeof *v);
    cr_assert_not_null(v);
    for (uint32_t i = 0; i < n; i++)
        v[i].seq = i;
    return v;
}

static uint32_t rnd(uint32_t *s) /* xorshift32 */
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void spin(uint32_t *seed, uint32_t max)
{
    uint32_t n = rnd(seed) % max;
    if (n == 0 && (rnd(seed) & 7u) == 0) {
        sched_yield();
        return;
    }
    for (uint32_t i = 0; i < n; i++)
        __asm__ volatile("" : "+r"(i)); /* kept, and not a memory access */
}

/* ---- Injection queue ---------------------------------------------------- */

Test(inject, pops_in_fifo_order)
{
    struct weft__inject q;
    struct item *it = make_items(10);
    weft__inject_init(&q);
    cr_assert_null(weft__inject_pop(&q));
    cr_assert_eq(weft__inject_len(&q), 0);
    for (uint32_t i = 0; i < 10; i++) {
        weft__inject_push(&q, &it[i].link);
        cr_assert_eq(weft__inject_len(&q), i + 1u);
    }
    for (uint32_t i = 0; i < 10; i++) {
        struct weft__qlink *l = weft__inject_pop(&q);
        cr_assert_eq(seq_of(l), i);
        cr_assert_null(l->next, "a popped item is unlinked");
        cr_assert_eq(weft__inject_len(&q), 9u - i);
    }
    cr_assert_null(weft__inject_pop(&q));
    weft__inject_destroy(&q);
    free(it);
}

Test(inject, pop_batch_takes_the_oldest_up_to_max)
{
    struct weft__inject q;
    struct item *it = make_items(11);
    weft__inject_init(&q);
    for (uint32_t i = 0; i < 10; i++)
        weft__inject_push(&q, &it[i].link);
    struct weft__qlist out;
    weft__qlist_init(&out);
    weft__qlist_push(&out, &it[10].link); /* already there: stays first */
    cr_assert_eq(weft__inject_pop_batch(&q, &out, 0), 0);
    cr_assert_eq(out.len, 1);
    cr_assert_eq(weft__inject_len(&q), 10);
    cr_assert_eq(weft__inject_pop_batch(&q, &out, 4), 4);
    cr_assert_eq(weft__inject_len(&q), 6);
    cr_assert_eq(weft__inject_pop_batch(&q, &out, 100), 6);
    cr_assert_eq(weft__inject_len(&q), 0);
    cr_assert_eq(weft__inject_pop_batch(&q, &out, 100), 0);
    cr_assert_eq(out.len, 11);
    cr_assert_eq(seq_of(weft__qlist_pop(&out)), 10);
    for (uint32_t i = 0; i < 10; i++)
        cr_assert_eq(seq_of(weft__qlist_pop(&out)), i);
    cr_assert_null(out.head);
    cr_assert_null(weft__inject_pop(&q));
    weft__inject_destroy(&q);
    free(it);
}

Test(inject, push_list_appends_in_order_and_empties_the_source)
{
    struct weft__inject q;
    struct item *it = make_items(8);
    weft__inject_init(&q);
    struct weft__qlist list;
    weft__qlist_init(&list);
    weft__inject_push_list(&q, &list); /* empty: nothing changes */
    cr_assert_eq(weft__inject_len(&q), 0);
    weft__inject_push(&q, &it[0].link);
    weft__inject_push(&q, &it[1].link);
    for (uint32_t i = 2; i < 7; i++)
        weft__qlist_push(&list, &it[i].link);
    weft__inject_push_list(&q, &list);
    cr_assert_null(list.head);
    cr_assert_null(list.tail);
    cr_assert_eq(list.len, 0);
    cr_assert_eq(weft__inject_len(&q), 7);
    weft__inject_push(&q, &it[7].link); /* the list's tail was linked right */
    cr_assert_eq(weft__inject_len(&q), 8);
    for (uint32_t i = 0; i < 8; i++)
        cr_assert_eq(seq_of(weft__inject_pop(&q)), i);
    cr_assert_null(weft__inject_pop(&q));
    weft__inject_destroy(&q);
    free(it);
}

/* Many producers, many consumers. Each consumer checks that it sees every
 * producer's items in increasing order (the queue is FIFO and each producer
 * pushes in order); the main thread checks that each item came out once. */
enum { PRODUCERS = 3, CONSUMERS = 3 };

struct mpmc {
    struct weft__inject q;
    struct item *items; /* producer p owns items[p * per .. (p + 1) * per) */
    uint32_t per;
    _Atomic uint32_t *seen;
    _Atomic uint32_t producers_left;
    _Atomic uint32_t taken;
    _Atomic uint32_t bad; /* order or identity errors seen by consumers */
};

struct role {
    void *ctx; /* struct mpmc or struct inbox */
    uint32_t self;
};

static void *producer_main(void *p)
{
    struct role *r = p;
    struct mpmc *m = r->ctx;
    struct item *mine = &m->items[r->self * m->per];
    uint32_t seed = 77u + r->self * 131u;
    for (uint32_t i = 0; i < m->per;) {
        if (rnd(&seed) % 3u == 0) { /* a batch, as a spilling worker does */
            struct weft__qlist list;
            weft__qlist_init(&list);
            for (uint32_t k = 1 + rnd(&seed) % 8u; k && i < m->per; k--, i++) {
                mine[i] = (struct item){.producer = r->self, .seq = i};
                weft__qlist_push(&list, &mine[i].link);
            }
            weft__inject_push_list(&m->q, &list);
        } else {
            mine[i] = (struct item){.producer = r->self, .seq = i};
            weft__inject_push(&m->q, &mine[i].link);
            i++;
        }
        spin(&seed, 64);
    }
    atomic_fetch_sub(&m->producers_left, 1);
    return NULL;
}

static void consume(struct mpmc *m, struct weft__qlink *l, uint32_t *last)
{
    struct item *it = item_of(l);
    uint32_t p = it->producer, seq = it->seq;
    if (p >= PRODUCERS || seq >= m->per || it != &m->items[p * m->per + seq] ||
        (last[p] != UINT32_MAX && seq <= last[p])) {
        atomic_fetch_add(&m->bad, 1);
        return;
    }
    last[p] = seq;
    atomic_fetch_add_explicit(&m->seen[p * m->per + seq], 1,
                              memory_order_relaxed);
    it->seq = UINT32_MAX; /* a second delivery would show as bad */
}

static void *consumer_main(void *p)
{
    struct role *r = p;
    struct mpmc *m = r->ctx;
    uint32_t last[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++)
        last[i] = UINT32_MAX;
    uint32_t seed = 991u + r->self * 17u;
    /* Stop at the first attempt that finds nothing after every producer has
     * finished, so that a lost item fails the test instead of hanging it. */
    for (bool finished = false; !finished;) {
        finished = atomic_load(&m->producers_left) == 0;
        uint32_t n = 0;
        if (rnd(&seed) & 1u) {
            struct weft__qlink *l = weft__inject_pop(&m->q);
            if (l) {
                consume(m, l, last);
                n = 1;
            }
        } else {
            struct weft__qlist out;
            weft__qlist_init(&out);
            n = (uint32_t)weft__inject_pop_batch(&m->q, &out,
                                                 1 + rnd(&seed) % 16u);
            if (n != out.len)
                atomic_fetch_add(&m->bad, 1);
            for (struct weft__qlink *l; (l = weft__qlist_pop(&out));)
                consume(m, l, last);
        }
        atomic_fetch_add(&m->taken, n);
        if (n)
            finished = false;
        spin(&seed, 64);
    }
    return NULL;
}

Test(inject, many_producers_and_consumers_take_each_item_once, .timeout = 120)
{
    struct mpmc m = {.per = 20000u / SLOW};
    const uint32_t total = PRODUCERS * m.per;
    weft__inject_init(&m.q);
    m.items = make_items(total);
    m.seen = calloc(total, sizeof m.seen[0]);
    cr_assert_not_null(m.seen);
    for (int round = 0; round < 20; round++) {
        for (uint32_t i = 0; i < total; i++)
            atomic_store(&m.seen[i], 0);
        atomic_store(&m.taken, 0);
        atomic_store(&m.producers_left, PRODUCERS);
        pthread_t pt[PRODUCERS], ct[CONSUMERS];
        struct role pr[PRODUCERS], cs[CONSUMERS];
        for (uint32_t i = 0; i < PRODUCERS; i++) {
            pr[i] = (struct role){.ctx = &m, .self = i};
            cr_assert_eq(pthread_create(&pt[i], NULL, producer_main, &pr[i]),
                         0);
        }
        for (uint32_t i = 0; i < CONSUMERS; i++) {
            cs[i] = (struct role){.ctx = &m, .self = i};
            cr_assert_eq(pthread_create(&ct[i], NULL, consumer_main, &cs[i]),
                         0);
        }
        for (int i = 0; i < PRODUCERS; i++)
            cr_assert_eq(pthread_join(pt[i], NULL), 0);
        for (int i = 0; i < CONSUMERS; i++)
            cr_assert_eq(pthread_join(ct[i], NULL), 0);
        cr_assert_eq(atomic_load(&m.bad), 0, "round %d", round);
        cr_assert_eq(atomic_load(&m.taken), total);
        for (uint32_t i = 0; i < total; i++)
            cr_assert_eq(atomic_load(&m.seen[i]), 1, "item %u", i);
        cr_assert_eq(weft__inject_len(&m.q), 0);
        cr_assert_null(weft__inject_pop(&m.q));
    }
    weft__inject_destroy(&m.q);
    free(m.seen);
    free(m.items);
}

/* ---- MPSC inbox --------------------------------------------------------- */

Test(mpsc, take_all_returns_oldest_first)
{
    struct weft__mpsc q;
    struct item *it = make_items(6);
    weft__mpsc_init(&q);
    struct weft__qlist out;
    weft__qlist_init(&out);
    weft__qlist_push(&out, &it[5].link); /* already there: stays first */
    cr_assert_eq(weft__mpsc_take_all(&q, &out), 0);
    cr_assert_eq(out.len, 1);
    for (uint32_t i = 0; i < 5; i++)
        weft__mpsc_push(&q, &it[i].link);
    cr_assert_eq(weft__mpsc_take_all(&q, &out), 5);
    cr_assert(weft__mpsc_empty(&q));
    cr_assert_eq(out.len, 6);
    cr_assert_eq(out.tail, &it[4].link);
    cr_assert_null(out.tail->next);
    cr_assert_eq(seq_of(weft__qlist_pop(&out)), 5);
    for (uint32_t i = 0; i < 5; i++)
        cr_assert_eq(seq_of(weft__qlist_pop(&out)), i);
    cr_assert_null(out.head);
    cr_assert_eq(weft__mpsc_take_all(&q, &out), 0);
    cr_assert_null(out.head);
    free(it);
}

Test(mpsc, push_reports_whether_the_inbox_was_empty)
{
    struct weft__mpsc q;
    struct item *it = make_items(4);
    weft__mpsc_init(&q);
    cr_assert(weft__mpsc_empty(&q));
    cr_assert(weft__mpsc_push(&q, &it[0].link));
    cr_assert_not(weft__mpsc_empty(&q));
    cr_assert_not(weft__mpsc_push(&q, &it[1].link));
    cr_assert_not(weft__mpsc_push(&q, &it[2].link));
    struct weft__qlist out;
    weft__qlist_init(&out);
    cr_assert_eq(weft__mpsc_take_all(&q, &out), 3);
    cr_assert(weft__mpsc_empty(&q));
    cr_assert(weft__mpsc_push(&q, &it[3].link), "empty again after take_all");
    cr_assert_eq(weft__mpsc_take_all(&q, &out), 1);
    cr_assert_eq(out.len, 4);
    free(it);
}

/* Many producers push while the owner takes concurrently. Exact checks: every
 * item once, each producer's items in order, and as many "was empty" pushes
 * as non-empty takes (each starts and each ends one non-empty stretch). */
enum { SENDERS = 3 };

struct inbox {
    struct weft__mpsc q;
    struct item *items; /* sender p owns items[p * per .. (p + 1) * per) */
    uint32_t per;
    _Atomic uint32_t was_empty; /* pushes that returned true */
    _Atomic uint32_t senders_left;
};

static void *sender_main(void *p)
{
    struct role *r = p;
    struct inbox *b = r->ctx;
    struct item *mine = &b->items[r->self * b->per];
    uint32_t seed = 4242u + r->self * 613u;
    for (uint32_t i = 0; i < b->per; i++) {
        mine[i] = (struct item){.producer = r->self, .seq = i};
        if (weft__mpsc_push(&b->q, &mine[i].link))
            atomic_fetch_add(&b->was_empty, 1);
        spin(&seed, 64);
    }
    atomic_fetch_sub(&b->senders_left, 1);
    return NULL;
}

Test(mpsc, many_producers_one_consumer_take_each_item_once, .timeout = 120)
{
    struct inbox b = {.per = 30000u / SLOW};
    const uint32_t total = SENDERS * b.per;
    b.items = make_items(total);
    uint8_t *seen = calloc(total, 1);
    cr_assert_not_null(seen);
    for (int round = 0; round < 20; round++) {
        weft__mpsc_init(&b.q);
        atomic_store(&b.was_empty, 0);
        atomic_store(&b.senders_left, SENDERS);
        for (uint32_t i = 0; i < total; i++)
            seen[i] = 0;
        pthread_t th[SENDERS];
        struct role roles[SENDERS];
        for (uint32_t i = 0; i < SENDERS; i++) {
            roles[i] = (struct role){.ctx = &b, .self = i};
            cr_assert_eq(pthread_create(&th[i], NULL, sender_main, &roles[i]),
                         0);
        }
        uint32_t got = 0, takes = 0, seed = 5u + (uint32_t)round;
        uint32_t last[SENDERS] = {0};
        bool any[SENDERS] = {false};
        /* Until a take finds nothing after every sender finished: a lost
         * item fails the count below instead of hanging the test. */
        for (bool finished = false; !finished;) {
            finished = atomic_load(&b.senders_left) == 0;
            struct weft__qlist out;
            weft__qlist_init(&out);
            size_t n = weft__mpsc_take_all(&b.q, &out);
            cr_assert_eq(n, out.len);
            takes += n > 0;
            if (n)
                finished = false;
            for (struct weft__qlink *l; (l = weft__qlist_pop(&out));) {
                struct item *it = item_of(l);
                cr_assert_lt(it->producer, SENDERS);
                cr_assert_lt(it->seq, b.per);
                cr_assert_eq(it, &b.items[it->producer * b.per + it->seq]);
                cr_assert(!any[it->producer] || it->seq > last[it->producer],
                          "sender %u: %u after %u", it->producer, it->seq,
                          last[it->producer]);
                any[it->producer] = true;
                last[it->producer] = it->seq;
                cr_assert_eq(seen[it - b.items]++, 0);
                got++;
            }
            spin(&seed, 256);
        }
        for (int i = 0; i < SENDERS; i++)
            cr_assert_eq(pthread_join(th[i], NULL), 0);
        cr_assert(weft__mpsc_empty(&b.q));
        cr_assert_eq(got, total);
        cr_assert_eq(atomic_load(&b.was_empty), takes);
    }
    free(seen);
    free(b.items);
}
