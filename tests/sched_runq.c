/* tests/sched_runq.c: the local run queue (sched/runq.c). Built twice: with
 * WEFT_RUNQ_CAPACITY=4 (wrap-around and overflow at once) and with the
 * default, so every test is written in terms of CAP. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sched/runq.h"

#define CAP WEFT_RUNQ_CAPACITY

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
    uint32_t id;
};

static uint32_t item_id(struct weft__qlink *l)
{
    return ((struct item *)((char *)l - offsetof(struct item, link)))->id;
}

/* Main thread only: Criterion's assertions cannot abort a test from another
 * thread, so the tests' threads count failures in a `bad` counter instead. */
static uint32_t id_of(struct weft__qlink *l)
{
    cr_assert_not_null(l);
    return item_id(l);
}

static struct item *make_items(uint32_t n)
{
    struct item *v = calloc(n, sizeof *v);
    cr_assert_not_null(v);
    for (uint32_t i = 0; i < n; i++)
        v[i].id = i;
    return v;
}

/* Heap-allocated: a ring is a few KiB and the stress tests use several. */
static struct weft__runq *new_runq(void)
{
    struct weft__runq *q = aligned_alloc(64, sizeof *q);
    cr_assert_not_null(q);
    weft__runq_init(q);
    return q;
}

/* Moves head and tail to start, as if start items had come and gone. */
static void set_start(struct weft__runq *q, uint32_t start)
{
    atomic_store(&q->head, start);
    atomic_store(&q->tail, start);
}

static void push_ok(struct weft__runq *q, struct item *it)
{
    struct weft__qlist spill;
    weft__qlist_init(&spill);
    cr_assert_eq(weft__runq_push(q, &it->link, &spill), 0);
    cr_assert_null(spill.head);
}

/* Starts tried for every layout test: from zero, across the ring's end, and
 * across the end of uint32. */
static const uint32_t starts[] = {0,
                                  1,
                                  CAP / 2u,
                                  CAP - 1u,
                                  3 * CAP,
                                  UINT32_MAX,
                                  UINT32_MAX - CAP / 2u,
                                  UINT32_MAX - CAP + 2u};
#define NSTARTS (sizeof starts / sizeof starts[0])

Test(runq, pops_in_fifo_order)
{
    struct weft__runq *q = new_runq();
    struct item *it = make_items(CAP);
    for (size_t s = 0; s < NSTARTS; s++) {
        set_start(q, starts[s]);
        for (uint32_t i = 0; i < CAP; i++)
            push_ok(q, &it[i]);
        cr_assert_eq(weft__runq_len(q), CAP);
        for (uint32_t i = 0; i < CAP; i++) {
            cr_assert_eq(id_of(weft__runq_pop(q)), i, "start %u", starts[s]);
            cr_assert_eq(weft__runq_len(q), CAP - i - 1u);
        }
        cr_assert_null(weft__runq_pop(q));
    }
    free(it);
    free(q);
}

Test(runq, pop_from_empty_returns_nothing)
{
    struct weft__runq *q = new_runq();
    struct item it = {.id = 7};
    cr_assert_null(weft__runq_pop(q));
    cr_assert_eq(weft__runq_len(q), 0);
    push_ok(q, &it);
    cr_assert_eq(id_of(weft__runq_pop(q)), 7);
    cr_assert_null(weft__runq_pop(q));
    cr_assert_null(weft__runq_pop(q));
    cr_assert_eq(weft__runq_len(q), 0);
    free(q);
}

Test(runq, push_to_full_spills_older_half_and_the_item)
{
    struct weft__runq *q = new_runq();
    struct item *it = make_items(CAP + 2u);
    struct item *first = &it[CAP + 1u]; /* already in the spill list */
    for (size_t s = 0; s < NSTARTS; s++) {
        set_start(q, starts[s]);
        for (uint32_t i = 0; i < CAP; i++)
            push_ok(q, &it[i]);
        struct weft__qlist spill;
        weft__qlist_init(&spill);
        weft__qlist_push(&spill, &first->link);
        cr_assert_eq(weft__runq_push(q, &it[CAP].link, &spill), CAP / 2u + 1u);
        /* Appended after what was there: the older half, then the item. */
        cr_assert_eq(spill.len, CAP / 2u + 2u);
        cr_assert_eq(id_of(weft__qlist_pop(&spill)), CAP + 1u);
        for (uint32_t i = 0; i < CAP / 2u; i++)
            cr_assert_eq(id_of(weft__qlist_pop(&spill)), i);
        cr_assert_eq(id_of(weft__qlist_pop(&spill)), CAP);
        cr_assert_null(spill.head);
        /* The newer half stays, in order, and there is room again. */
        cr_assert_eq(weft__runq_len(q), CAP / 2u);
        for (uint32_t i = CAP / 2u; i < CAP; i++)
            cr_assert_eq(id_of(weft__runq_pop(q)), i, "start %u", starts[s]);
        cr_assert_null(weft__runq_pop(q));
    }
    free(it);
    free(q);
}

/* xorshift32: cheap per-thread randomness for timing and choices. */
static uint32_t rnd(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

Test(runq, wraps_around_over_many_cycles)
{
    /* A model FIFO (model[mh..mt)) checks every pop and every spill. */
    enum { N = 200000 };
    struct weft__runq *q = new_runq();
    struct item *it = make_items(N);
    uint32_t model[CAP + 1u], mh = 0, mt = 0;
    uint32_t seed = 12345, pushed = 0, delivered = 0;
    set_start(q, UINT32_MAX - 3u * CAP); /* cross the uint32 end too */
    while (delivered < N) {
        uint32_t pushes = rnd(&seed) % (CAP + 2u);
        for (uint32_t i = 0; i < pushes && pushed < N; i++) {
            struct weft__qlist spill;
            weft__qlist_init(&spill);
            size_t moved = weft__runq_push(q, &it[pushed].link, &spill);
            cr_assert_eq(moved, spill.len);
            if (moved) { /* the older half, oldest first, then the new one */
                cr_assert_eq(mt - mh, CAP);
                cr_assert_eq(moved, CAP / 2u + 1u);
                for (uint32_t j = 0; j < CAP / 2u; j++)
                    cr_assert_eq(id_of(weft__qlist_pop(&spill)),
                                 model[mh++ % (CAP + 1u)]);
                cr_assert_eq(id_of(weft__qlist_pop(&spill)), pushed);
                delivered += (uint32_t)moved;
            } else {
                model[mt++ % (CAP + 1u)] = pushed;
            }
            pushed++;
            cr_assert_eq(weft__runq_len(q), mt - mh);
        }
        uint32_t pops = rnd(&seed) % (CAP + 2u);
        for (uint32_t i = 0; i < pops; i++) {
            struct weft__qlink *l = weft__runq_pop(q);
            if (mh == mt) {
                cr_assert_null(l);
                break;
            }
            cr_assert_eq(id_of(l), model[mh++ % (CAP + 1u)]);
            delivered++;
        }
        cr_assert_eq(weft__runq_len(q), mt - mh);
    }
    cr_assert_eq(pushed, N);
    cr_assert_null(weft__runq_pop(q));
    free(it);
    free(q);
}

Test(runq, steal_from_empty_returns_nothing)
{
    struct weft__runq *thief = new_runq(), *victim = new_runq();
    struct item it = {.id = 1};
    cr_assert_null(weft__runq_steal(thief, victim));
    cr_assert_eq(weft__runq_len(thief), 0);
    /* Emptied by pops: still nothing, and the indexes did not move. */
    push_ok(victim, &it);
    cr_assert_not_null(weft__runq_pop(victim));
    cr_assert_null(weft__runq_steal(thief, victim));
    cr_assert_eq(atomic_load(&victim->head), 1);
    cr_assert_eq(atomic_load(&victim->tail), 1);
    cr_assert_eq(atomic_load(&thief->tail), 0);
    free(thief);
    free(victim);
}

Test(runq, steal_takes_older_half_and_returns_newest_of_them)
{
    struct weft__runq *thief = new_runq(), *victim = new_runq();
    struct item *it = make_items(CAP);
    for (size_t s = 0; s < NSTARTS; s++) {
        for (uint32_t k = 1; k <= CAP; k++) {
            set_start(victim, starts[s]);
            set_start(thief, starts[NSTARTS - 1u - s]);
            for (uint32_t i = 0; i < k; i++)
                push_ok(victim, &it[i]);
            uint32_t n = k - k / 2u; /* half, rounded up */
            cr_assert_eq(id_of(weft__runq_steal(thief, victim)), n - 1u,
                         "k %u start %u", k, starts[s]);
            cr_assert_eq(weft__runq_len(thief), n - 1u);
            cr_assert_eq(weft__runq_len(victim), k - n);
            for (uint32_t i = 0; i < n - 1u; i++)
                cr_assert_eq(id_of(weft__runq_pop(thief)), i);
            cr_assert_null(weft__runq_pop(thief));
            for (uint32_t i = n; i < k; i++)
                cr_assert_eq(id_of(weft__runq_pop(victim)), i);
            cr_assert_null(weft__runq_pop(victim));
        }
    }
    free(it);
    free(thief);
    free(victim);
}

Test(runq, steal_into_a_busy_queue_takes_at_most_its_room)
{
    struct weft__runq *thief = new_runq(), *victim = new_runq();
    struct item *mine = make_items(CAP), *theirs = make_items(CAP);
    for (uint32_t i = 0; i < CAP; i++) {
        push_ok(victim, &theirs[i]);
        mine[i].id = 1000u + i;
    }
    /* Full thief: nothing moves. */
    for (uint32_t i = 0; i < CAP; i++)
        push_ok(thief, &mine[i]);
    cr_assert_null(weft__runq_steal(thief, victim));
    cr_assert_eq(weft__runq_len(victim), CAP);
    /* One free slot: exactly one item moves, and is returned. */
    cr_assert_eq(id_of(weft__runq_pop(thief)), 1000u);
    cr_assert_eq(id_of(weft__runq_steal(thief, victim)), 0u);
    cr_assert_eq(weft__runq_len(thief), CAP - 1u);
    cr_assert_eq(weft__runq_len(victim), CAP - 1u);
    /* A queue cannot steal from itself. */
    cr_assert_null(weft__runq_steal(victim, victim));
    cr_assert_eq(weft__runq_len(victim), CAP - 1u);
    free(mine);
    free(theirs);
    free(thief);
    free(victim);
}

/* ---- Concurrency ------------------------------------------------------- */

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

enum { THIEVES = 3 };

struct stress {
    struct weft__runq *owner;
    struct weft__runq *q[THIEVES];
    _Atomic uint32_t *seen; /* per item: how many times it was delivered */
    struct item *items;
    uint32_t n;
    uint32_t seed;
    _Atomic bool done;
    pthread_mutex_t spill_lock;
    struct weft__qlist spilled; /* guarded by spill_lock */
    _Atomic uint32_t steals;    /* successful steals, to show they happen */
    _Atomic uint32_t bad;       /* items that were not ours */
};

/* The owner writes each item's id just before pushing it, and whoever runs
 * it reads and then clears it, as a task's body would: plain accesses, so
 * ThreadSanitizer reports any hand-over that is not ordered. */
static void deliver(struct stress *s, struct weft__qlink *l)
{
    struct item *it = (struct item *)((char *)l - offsetof(struct item, link));
    uint32_t id = it->id;
    if (id < s->n && it == &s->items[id])
        atomic_fetch_add_explicit(&s->seen[id], 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&s->bad, 1, memory_order_relaxed);
    it->id = UINT32_MAX;
}

struct thief_arg {
    struct stress *s;
    int self;
};

/* Steal from the owner (or, now and then, a fellow thief), run what was
 * stolen, drain the own queue; once the owner is done, drain and stop. */
static void *thief_main(void *p)
{
    struct thief_arg *a = p;
    struct stress *s = a->s;
    struct weft__runq *mine = s->q[a->self];
    uint32_t seed = s->seed ^ (0x9e3779b9u * (uint32_t)(a->self + 1));
    while (!atomic_load(&s->done)) {
        uint32_t r = rnd(&seed) % 8u;
        struct weft__runq *victim =
            r < THIEVES ? s->q[(a->self + 1 + (int)r) % THIEVES] : s->owner;
        struct weft__qlink *l = weft__runq_steal(mine, victim);
        if (l) {
            atomic_fetch_add_explicit(&s->steals, 1, memory_order_relaxed);
            deliver(s, l);
        }
        spin(&seed, 64);
        for (; (l = weft__runq_pop(mine)); spin(&seed, 16))
            deliver(s, l);
    }
    for (struct weft__qlink *l; (l = weft__runq_pop(mine));)
        deliver(s, l);
    return NULL;
}

static void stress_round(struct stress *s)
{
    weft__runq_init(s->owner);
    for (int i = 0; i < THIEVES; i++)
        weft__runq_init(s->q[i]);
    memset(s->seen, 0, s->n * sizeof s->seen[0]);
    atomic_store(&s->done, false);
    weft__qlist_init(&s->spilled);

    pthread_t th[THIEVES];
    struct thief_arg args[THIEVES];
    for (int i = 0; i < THIEVES; i++) {
        args[i] = (struct thief_arg){.s = s, .self = i};
        cr_assert_eq(pthread_create(&th[i], NULL, thief_main, &args[i]), 0);
    }
    uint32_t seed = s->seed;
    for (uint32_t i = 0; i < s->n; i++) {
        struct weft__qlist spill;
        weft__qlist_init(&spill);
        s->items[i].id = i;
        if (weft__runq_push(s->owner, &s->items[i].link, &spill)) {
            pthread_mutex_lock(&s->spill_lock);
            weft__qlist_append(&s->spilled, &spill);
            pthread_mutex_unlock(&s->spill_lock);
        }
        if (rnd(&seed) % 4u == 0) {
            struct weft__qlink *l = weft__runq_pop(s->owner);
            if (l)
                deliver(s, l);
        }
        spin(&seed, 32);
    }
    for (struct weft__qlink *l; (l = weft__runq_pop(s->owner));)
        deliver(s, l);
    atomic_store(&s->done, true);
    for (int i = 0; i < THIEVES; i++)
        cr_assert_eq(pthread_join(th[i], NULL), 0);

    for (struct weft__qlink *l; (l = weft__qlist_pop(&s->spilled));)
        deliver(s, l);
    cr_assert_eq(atomic_load(&s->bad), 0);
    for (uint32_t i = 0; i < s->n; i++)
        cr_assert_eq(atomic_load(&s->seen[i]), 1, "item %u seen %u times", i,
                     atomic_load(&s->seen[i]));
    cr_assert_eq(weft__runq_len(s->owner), 0);
    for (int i = 0; i < THIEVES; i++)
        cr_assert_eq(weft__runq_len(s->q[i]), 0);
}

Test(runq, many_thieves_deliver_every_item_exactly_once, .timeout = 120)
{
    struct stress s = {.n = 4 * CAP + 3000u};
    const int rounds = 800 / SLOW;
    s.owner = new_runq();
    for (int i = 0; i < THIEVES; i++)
        s.q[i] = new_runq();
    s.items = make_items(s.n);
    s.seen = calloc(s.n, sizeof s.seen[0]);
    cr_assert_not_null(s.seen);
    pthread_mutex_init(&s.spill_lock, NULL);
    for (int r = 0; r < rounds; r++) {
        s.seed = 0x2545f491u * (uint32_t)(r + 1);
        stress_round(&s);
    }
    /* Not a timing claim: with thousands of items per round, a run where no
     * thief ever got anything would mean steal never succeeds. */
    cr_assert_gt(atomic_load(&s.steals), 0);
    pthread_mutex_destroy(&s.spill_lock);
    free(s.seen);
    free(s.items);
    for (int i = 0; i < THIEVES; i++)
        free(s.q[i]);
    free(s.owner);
}

/* ---- The last item: owner's pop against thieves' steals ------------------
 * Each round the owner pushes one item, every thread waits at a start line,
 * then after a random spin all go for it at once. Exactly one may get it. */

enum { RACERS = 2 };

struct last {
    struct weft__runq *owner;
    struct weft__runq *q[RACERS];
    _Atomic uint32_t gate;    /* round number the racers may start */
    _Atomic uint32_t ready;   /* racers that have seen the gate open */
    _Atomic uint32_t arrived; /* racers finished with the current round */
    _Atomic uint32_t got;     /* deliveries in the current round */
    _Atomic uint32_t stolen;  /* rounds a thief won, over the whole test */
    _Atomic uint32_t bad;     /* wrong item, or a thief's queue not empty */
    uint32_t rounds;
};

/* Wait until *v >= want. Spin a while before yielding: on 2 cores a yield
 * per check would let the owner finish every round before a racer is back
 * on a CPU. The spin uses relaxed loads, which ThreadSanitizer makes far
 * cheaper than acquires; the loop's exit check is the acquire. */
static void wait_for(_Atomic uint32_t *v, uint32_t want)
{
    for (int i = 0; atomic_load_explicit(v, memory_order_acquire) < want; i++) {
        for (int k = 0; k < 100; k++)
            if (atomic_load_explicit(v, memory_order_relaxed) >= want)
                break;
        if (i >= 10)
            sched_yield();
    }
}

struct racer_arg {
    struct last *l;
    int self;
};

static void *racer_main(void *p)
{
    struct racer_arg *a = p;
    struct last *l = a->l;
    uint32_t seed = 0xdeadbeefu + (uint32_t)a->self * 7919u;
    for (uint32_t r = 1; r <= l->rounds; r++) {
        wait_for(&l->gate, r);
        atomic_fetch_add(&l->ready, 1);
        spin(&seed, 48);
        struct weft__qlink *got = weft__runq_steal(l->q[a->self], l->owner);
        if (got) {
            atomic_fetch_add(&l->got, 1);
            atomic_fetch_add(&l->stolen, 1);
            if (item_id(got) != r)
                atomic_fetch_add(&l->bad, 1);
        }
        /* One item, half rounded up is one: it is returned, never queued. */
        if (weft__runq_len(l->q[a->self]) != 0)
            atomic_fetch_add(&l->bad, 1);
        atomic_fetch_add(&l->arrived, 1);
    }
    return NULL;
}

Test(runq, owner_pop_races_thieves_for_the_last_item, .timeout = 120)
{
    struct last l = {.rounds = 40000u / SLOW};
    l.owner = new_runq();
    for (int i = 0; i < RACERS; i++)
        l.q[i] = new_runq();
    pthread_t th[RACERS];
    struct racer_arg args[RACERS];
    for (int i = 0; i < RACERS; i++) {
        args[i] = (struct racer_arg){.l = &l, .self = i};
        cr_assert_eq(pthread_create(&th[i], NULL, racer_main, &args[i]), 0);
    }
    struct item it = {.id = 0};
    uint32_t seed = 99, popped = 0;
    for (uint32_t r = 1; r <= l.rounds; r++) {
        it.id = r;
        push_ok(l.owner, &it);
        atomic_store(&l.got, 0);
        atomic_store(&l.arrived, 0);
        atomic_store(&l.ready, 0);
        atomic_store(&l.gate, r);
        /* Start with the first racer: waiting for all would, on 2 cores,
         * mean waiting for the one that ran last, and it would win. */
        wait_for(&l.ready, 1);
        spin(&seed, 64);
        struct weft__qlink *got = weft__runq_pop(l.owner);
        if (got) {
            cr_assert_eq(id_of(got), r);
            atomic_fetch_add(&l.got, 1);
            popped++;
        }
        wait_for(&l.arrived, RACERS);
        cr_assert_eq(atomic_load(&l.got), 1, "round %u: delivered %u times", r,
                     atomic_load(&l.got));
        cr_assert_eq(atomic_load(&l.bad), 0, "round %u", r);
        cr_assert_null(weft__runq_pop(l.owner));
        cr_assert_eq(weft__runq_len(l.owner), 0);
    }
    for (int i = 0; i < RACERS; i++)
        cr_assert_eq(pthread_join(th[i], NULL), 0);
    cr_assert_eq(popped + atomic_load(&l.stolen), l.rounds);
    for (int i = 0; i < RACERS; i++)
        free(l.q[i]);
    free(l.owner);
}
