/* tests/sched_timer_wheel.c: the timing wheel against a model of its
 * contract. Time is simulated: every test passes explicit now values, so
 * nothing here reads a clock. Random cases come from a seeded xorshift; a
 * failure prints WEFT_TEST_SEED=<seed>, and running with that variable set
 * replays the case. */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sched/timer_wheel.h"

#define TICK WEFT_TIMER_TICK_NS
#define MS   1000000ull
#define SEC  1000000000ull
#define HOUR (3600ull * SEC)
#define YEAR (31557600ull * SEC) /* 365.25 days; 584 years fit in 64 bits */

/* Sanitized builds run the random tests for fewer rounds. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif
#define ROUNDS(n) (SANITIZED ? ((n) + 3) / 4 : (n))

/* ---- Seeded randomness ------------------------------------------------- */

static uint64_t seed;
static uint64_t rng;

static void seed_rng(uint64_t fallback)
{
    const char *env = getenv("WEFT_TEST_SEED");
    seed = env && *env ? strtoull(env, NULL, 0) : fallback;
    rng = seed ? seed : 0x9e3779b97f4a7c15ull; /* xorshift needs state != 0 */
}

/* xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift
 * generators, scrambled", 2016). */
static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}

static uint64_t below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

#define CHECK(cond, fmt, ...)                                                  \
    cr_assert((cond), "[WEFT_TEST_SEED=%" PRIu64 "] " fmt, seed, ##__VA_ARGS__)

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* The contract's bound on next_expiry: d rounded up to a whole tick, in ns
 * (saturated: deadlines in the last tick round up past UINT64_MAX). */
static uint64_t tick_time(uint64_t d)
{
    uint64_t k = d / TICK + (d % TICK != 0);
    return k > UINT64_MAX / TICK ? UINT64_MAX : k * TICK;
}

/* A distance ahead, drawn from every scale the wheel handles: within a
 * tick, on tick and level boundaries, each level, and past the last one. */
static uint64_t rand_span(void)
{
    switch (below(11)) {
    case 0:
        return below(2 * TICK);
    case 1:
        return (1 + below(64)) * TICK - 1 + below(3);
    case 2: {
        unsigned level = (unsigned)below(WEFT_TIMER_LEVELS + 1);
        uint64_t unit = 1ull << (level * WEFT_TIMER_LEVEL_BITS);
        return (1 + below(63)) * unit * TICK - 1 + below(3);
    }
    case 3:
        return below(64 * 64 * TICK);
    case 4:
        return below(SEC);
    case 5:
        return below(60 * SEC);
    case 6:
        return below(HOUR);
    case 7:
        return below(30 * 24 * HOUR);
    case 8:
        return below(20 * YEAR);
    case 9:
        return below(500 * YEAR);
    default:
        return below(10 * MS);
    }
}

/* ---- The model ---------------------------------------------------------- */

struct tnode {
    struct weft__timer t;
    uint64_t deadline; /* as the test armed it */
    uint64_t fired_at; /* the now of the expire that fired it */
    uint32_t fires;
    bool live;    /* armed, as the test sees it */
    bool used;    /* armed by the test at least once */
    bool removed; /* removed since last armed */
};

static struct tnode *node_of(struct weft__timer *t)
{
    return (struct tnode *)((char *)t - offsetof(struct tnode, t));
}

struct harness {
    struct weft__timer_wheel w;
    struct tnode *nodes;
    size_t n;
    uint64_t now;        /* the test's current time: the last expire's now */
    uint64_t tick;       /* the first tick not yet processed, as in the wheel */
    uint64_t last;       /* deadline of the last timer fired */
    bool order_per_call; /* past deadlines were added: order only per call */
    size_t live;
    size_t fired;
    /* Failures seen in the callback, asserted after expire returns. */
    size_t early, twice, disorder, still_armed;
};

static struct harness H;

static void h_init(size_t n, uint64_t now)
{
    free(H.nodes);
    memset(&H, 0, sizeof H);
    H.nodes = calloc(n ? n : 1, sizeof *H.nodes);
    cr_assert_not_null(H.nodes);
    H.n = n;
    H.now = now;
    H.tick = now / TICK + 1;
    weft__wheel_init(&H.w, now);
}

static void h_fini(void)
{
    free(H.nodes);
    H.nodes = NULL;
}

static void h_add(struct tnode *x, uint64_t deadline)
{
    x->deadline = deadline;
    x->live = x->used = true;
    x->removed = false;
    x->fires = 0;
    H.live++;
    weft__wheel_add(&H.w, &x->t, deadline);
    CHECK(x->t.armed, "add left the timer disarmed");
}

static void h_remove(struct tnode *x)
{
    x->live = false;
    x->removed = true;
    H.live--;
    weft__wheel_remove(&H.w, &x->t);
    CHECK(!x->t.armed, "remove left the timer armed");
}

static void on_fire(struct weft__timer *t, void *ctx)
{
    struct harness *h = ctx;
    struct tnode *x = node_of(t);
    h->still_armed += t->armed;
    h->early += x->deadline > h->now;
    h->disorder += x->deadline < h->last;
    h->twice += !x->live;
    h->last = x->deadline;
    x->fires++;
    x->fired_at = h->now;
    x->live = false;
    h->live--;
    h->fired++;
}

static size_t h_expire(uint64_t now)
{
    size_t before = H.fired;
    H.now = now;
    if (now / TICK + 1 > H.tick)
        H.tick = now / TICK + 1;
    if (H.order_per_call)
        H.last = 0;
    size_t n = weft__wheel_expire(&H.w, now, on_fire, &H);
    CHECK(n == H.fired - before, "expire returned %zu, fired %zu", n,
          H.fired - before);
    CHECK(H.early == 0, "%zu timers fired before their deadline", H.early);
    CHECK(H.twice == 0, "%zu timers fired twice or after removal", H.twice);
    CHECK(H.disorder == 0, "%zu timers fired out of deadline order",
          H.disorder);
    CHECK(H.still_armed == 0, "%zu timers were still armed in fire",
          H.still_armed);
    CHECK(weft__wheel_count(&H.w) == H.live, "count %zu, armed %zu",
          weft__wheel_count(&H.w), H.live);
    return n;
}

/* After an expire: every timer due by now has fired, exactly once. */
static void h_verify(void)
{
    for (size_t i = 0; i < H.n; i++) {
        const struct tnode *x = &H.nodes[i];
        CHECK(x->t.armed == x->live, "timer %zu: armed %d, expected %d", i,
              x->t.armed, x->live);
        if (x->live)
            CHECK(x->deadline > H.now,
                  "timer %zu (deadline %" PRIu64 ") not fired at %" PRIu64, i,
                  x->deadline, H.now);
        CHECK(x->fires <= 1, "timer %zu fired %u times", i, x->fires);
    }
}

/* next_expiry is no later than the earliest deadline's tick, is UINT64_MAX
 * for an empty wheel, and lies after now while nothing is due. It is that
 * tick exactly when the tick is in level 0's block (the 64 ticks from the
 * first unprocessed one's aligned start): then there is nothing to cascade
 * first. */
static void h_check_next_expiry(void)
{
    uint64_t first = UINT64_MAX, first_tick = UINT64_MAX;
    bool due = false;
    for (size_t i = 0; i < H.n; i++) {
        const struct tnode *x = &H.nodes[i];
        if (!x->live)
            continue;
        uint64_t tt = tick_time(x->deadline);
        uint64_t td = x->deadline / TICK + (x->deadline % TICK != 0);
        if (tt < first)
            first = tt;
        if (td < first_tick)
            first_tick = td;
        due |= x->deadline <= H.now;
    }
    uint64_t ne = weft__wheel_next_expiry(&H.w);
    if (H.live == 0)
        CHECK(ne == UINT64_MAX, "empty wheel: next_expiry %" PRIu64, ne);
    CHECK(ne <= first, "next_expiry %" PRIu64 " after first tick %" PRIu64, ne,
          first);
    if (!due && H.now != UINT64_MAX)
        CHECK(ne > H.now, "nothing due at %" PRIu64 " but next_expiry %" PRIu64,
              H.now, ne);
    if (H.live && first_tick >= H.tick &&
        first_tick >> WEFT_TIMER_LEVEL_BITS == H.tick >> WEFT_TIMER_LEVEL_BITS)
        CHECK(ne == first, "next_expiry %" PRIu64 ", first tick at %" PRIu64,
              ne, first);
}

/* ---- Ordering and timeliness ------------------------------------------ */

/* The wheel starts no threads; the timeout turns a hang into a failure. */
TestSuite(timer_wheel, .timeout = 120);

Test(timer_wheel, empty_wheel_has_no_expiry_and_fires_nothing)
{
    seed_rng(1);
    h_init(0, 12345);
    CHECK(weft__wheel_next_expiry(&H.w) == UINT64_MAX, "empty next_expiry");
    CHECK(h_expire(HOUR) == 0, "empty wheel fired");
    CHECK(h_expire(UINT64_MAX) == 0, "empty wheel fired");
    CHECK(weft__wheel_count(&H.w) == 0, "count");
    h_fini();
}

Test(timer_wheel, random_deadlines_fire_in_order_once_and_never_early)
{
    seed_rng(0x5eed0001);
    for (int round = 0; round < ROUNDS(16); round++) {
        size_t n = 3000;
        uint64_t start = round % 4 == 0 ? 0 : below(100 * YEAR);
        h_init(n, start);
        for (size_t i = 0; i < n; i++)
            h_add(&H.nodes[i],
                  i % 500 == 7 ? UINT64_MAX : sat_add(start, rand_span()));
        h_check_next_expiry();
        for (int step = 0; step < 400 && H.live; step++) {
            uint64_t to = H.now;
            switch (below(6)) {
            case 0:
                to = sat_add(to, below(3 * TICK));
                break;
            case 1:
                to = sat_add(to, below(100 * MS));
                break;
            case 2: {
                uint64_t ne = weft__wheel_next_expiry(&H.w);
                to = ne > to ? sat_add(ne, below(TICK)) : to;
                break;
            }
            case 3:
            case 4: {
                const struct tnode *x = &H.nodes[below(n)];
                if (x->live)
                    to = x->deadline - (x->deadline > to && below(2));
                break;
            }
            default:
                to = sat_add(to, below(YEAR));
                break;
            }
            h_expire(to);
            h_verify();
            h_check_next_expiry();
        }
        h_expire(UINT64_MAX);
        h_verify();
        CHECK(H.live == 0 && H.fired == n, "round %d: %zu of %zu fired", round,
              H.fired, n);
        CHECK(weft__wheel_next_expiry(&H.w) == UINT64_MAX, "wheel not empty");
    }
    h_fini();
}

Test(timer_wheel, never_fires_early_at_tick_boundaries)
{
    /* Tick boundaries 2^shift + delta: level edges, block edges, the end. */
    static const struct {
        unsigned shift;
        int delta;
    } edges[] = {{0, 0},   {1, 0},  {6, -1}, {6, 0},  {6, 1},
                 {12, -1}, {12, 0}, {12, 1}, {18, 0}, {18, 1},
                 {24, 0},  {30, 0}, {36, 0}, {41, 3}, {42, -1},
                 {42, 0},  {42, 1}, {47, 0}, {48, -3}};
    /* Deadlines and nows as offsets from the boundary, in ns. */
    const int64_t t = (int64_t)TICK;
    const int64_t doff[] = {-1, 0, 1, -t + 1, t - 1, t};
    const int64_t noff[] = {-t, -t + 1, -2,    -1, 0,    1,
                            2,  t - 2,  t - 1, t,  2 * t};
    const size_t nd = sizeof doff / sizeof *doff;
    seed_rng(0x5eed0002);
    for (size_t b = 0; b < sizeof edges / sizeof *edges; b++) {
        uint64_t k = (1ull << edges[b].shift) + (uint64_t)edges[b].delta;
        uint64_t kt = k * TICK;
        /* Start far before, just before, and inside the previous tick. */
        uint64_t starts[] = {0, (k - 1) * TICK - (k > 1) * below(TICK),
                             kt - 1 - below(TICK / 2), below(kt - 2)};
        for (size_t s = 0; s < sizeof starts / sizeof *starts; s++) {
            uint64_t start = starts[s];
            h_init(nd, start);
            uint64_t deadlines[sizeof doff / sizeof *doff];
            for (size_t i = 0; i < nd; i++)
                h_add(&H.nodes[i], deadlines[i] = kt + (uint64_t)doff[i]);
            h_check_next_expiry();
            for (size_t i = 0; i < sizeof noff / sizeof *noff; i++) {
                uint64_t now = kt + (uint64_t)noff[i];
                if (now < H.now)
                    continue;
                h_expire(now);
                h_verify();
                h_check_next_expiry();
                for (size_t j = 0; j < nd; j++)
                    CHECK(H.nodes[j].live == (deadlines[j] > now),
                          "tick %" PRIu64 ", start %" PRIu64
                          ": deadline %" PRIu64 " at now %" PRIu64 ": armed %d",
                          k, start, deadlines[j], now, H.nodes[j].live);
            }
            CHECK(H.live == 0, "all fired");
        }
    }
    h_fini();
}

Test(timer_wheel, driven_by_next_expiry_every_timer_fires_within_a_tick)
{
    seed_rng(0x5eed0003);
    for (int round = 0; round < ROUNDS(8); round++) {
        size_t n = 4000;
        uint64_t start = below(50 * YEAR);
        h_init(n, start);
        for (size_t i = 0; i < n; i++)
            h_add(&H.nodes[i], sat_add(start, rand_span()));
        size_t calls = 0;
        while (H.live) {
            uint64_t ne = weft__wheel_next_expiry(&H.w);
            CHECK(ne > H.now, "next_expiry %" PRIu64 " not after now %" PRIu64,
                  ne, H.now);
            h_expire(ne);
            h_check_next_expiry();
            /* Every call fires a tick or cascades a slot: a bounded number
             * of calls, whatever the span of time. */
            CHECK(++calls <= n * (WEFT_TIMER_LEVELS + 2), "%zu calls", calls);
        }
        for (size_t i = 0; i < n; i++) {
            const struct tnode *x = &H.nodes[i];
            CHECK(x->fires == 1, "timer %zu fired %u times", i, x->fires);
            CHECK(x->fired_at - x->deadline < TICK,
                  "deadline %" PRIu64 " fired at %" PRIu64, x->deadline,
                  x->fired_at);
        }
    }
    h_fini();
}

/* ---- Cascading --------------------------------------------------------- */

/* Arm timers at the edges of every level and far past the last, then
 * advance from start in big jumps (small_steps false) or crawl across each
 * deadline in sub-tick steps, checking after every call that exactly the
 * due ones fired. */
static void cascade_case(uint64_t start, bool small_steps)
{
    uint64_t dl[256];
    size_t n = 0;
    for (unsigned level = 0; level <= WEFT_TIMER_LEVELS; level++) {
        uint64_t unit = (1ull << (level * WEFT_TIMER_LEVEL_BITS)) * TICK;
        static const uint64_t mult[] = {1, 2, 63, 64};
        for (size_t m = 0; m < 4; m++)
            for (int d = -1; d <= 1 && mult[m] <= UINT64_MAX / unit; d++)
                dl[n++] = sat_add(start, mult[m] * unit + (uint64_t)d);
    }
    static const uint64_t far[] = {1 * YEAR, 10 * YEAR, 100 * YEAR, 300 * YEAR,
                                   500 * YEAR};
    for (size_t i = 0; i < sizeof far / sizeof *far; i++)
        dl[n++] = sat_add(start, far[i]);
    /* Just across the next 2^42-tick block boundary. */
    uint64_t block = 1ull << (WEFT_TIMER_LEVELS * WEFT_TIMER_LEVEL_BITS);
    uint64_t cross = (start / TICK / block + 1) * block;
    if (cross < UINT64_MAX / TICK - 2) {
        dl[n++] = cross * TICK - 1;
        dl[n++] = cross * TICK;
        dl[n++] = cross * TICK + 1;
    }
    dl[n++] = UINT64_MAX - TICK;
    dl[n++] = UINT64_MAX - 1;
    dl[n++] = UINT64_MAX;
    cr_assert(n <= sizeof dl / sizeof *dl);

    h_init(n, start);
    for (size_t i = 0; i < n; i++) {
        /* Deadlines on the same tick stress one slot: add in random order. */
        size_t j = i + below(n - i);
        uint64_t tmp = dl[i];
        dl[i] = dl[j];
        dl[j] = tmp;
        h_add(&H.nodes[i], dl[i]);
    }
    h_check_next_expiry();
    while (H.live) {
        uint64_t first = UINT64_MAX;
        for (size_t i = 0; i < n; i++)
            if (H.nodes[i].live && H.nodes[i].deadline < first)
                first = H.nodes[i].deadline;
        if (small_steps) {
            uint64_t to = first > 3 * TICK ? first - 3 * TICK : 0;
            if (to > H.now) {
                h_expire(to);
                h_verify();
                h_check_next_expiry();
            }
            while (H.now < UINT64_MAX && H.now <= sat_add(first, 2 * TICK)) {
                h_expire(sat_add(H.now, 1 + below(TICK / 3)));
                h_verify();
                h_check_next_expiry();
            }
        } else {
            if (first - 1 > H.now) {
                h_expire(first - 1);
                h_verify();
                h_check_next_expiry();
            }
            h_expire(first);
            h_verify();
            h_check_next_expiry();
        }
    }
    CHECK(H.fired == n, "%zu of %zu fired", H.fired, n);
}

Test(timer_wheel, cascades_through_every_level_and_overflow_in_big_jumps)
{
    seed_rng(0x5eed0004);
    uint64_t block_ns = (1ull << 42) * TICK;
    uint64_t starts[] = {0,
                         1,
                         TICK - 1,
                         below(YEAR),
                         below(200 * YEAR),
                         block_ns - 3 * TICK + 5,
                         block_ns - 1,
                         3 * block_ns};
    for (size_t i = 0; i < sizeof starts / sizeof *starts; i++)
        cascade_case(starts[i], false);
    h_fini();
}

Test(timer_wheel, cascades_through_every_level_and_overflow_in_small_steps)
{
    seed_rng(0x5eed0005);
    uint64_t block_ns = (1ull << 42) * TICK;
    uint64_t starts[] = {0, below(YEAR), block_ns - 3 * TICK + 5,
                         2 * block_ns - 1};
    for (size_t i = 0; i < sizeof starts / sizeof *starts; i++)
        cascade_case(starts[i], true);
    h_fini();
}

/* ---- Removal ----------------------------------------------------------- */

Test(timer_wheel, removed_timers_never_fire_and_the_rest_do)
{
    seed_rng(0x5eed0006);
    for (int round = 0; round < ROUNDS(4); round++) {
        size_t n = 20000;
        uint64_t start = below(10 * YEAR);
        h_init(n, start);
        H.order_per_call = true; /* past deadlines are armed below */
        /* A quarter stays spare, to be armed in the past later. */
        for (size_t i = 0; i < n; i++)
            if (i % 4)
                h_add(&H.nodes[i], sat_add(start, rand_span()));
        for (size_t i = 0; i < n; i++)
            if (H.nodes[i].live && below(3) == 0)
                h_remove(&H.nodes[i]);
        CHECK(weft__wheel_count(&H.w) == H.live, "count after removals");
        h_check_next_expiry();
        for (int step = 0; step < 60 && H.live; step++) {
            h_expire(sat_add(H.now, below(2) ? below(SEC) : below(5 * YEAR)));
            h_verify();
            for (int k = 0; k < 200; k++) {
                struct tnode *x = &H.nodes[below(n)];
                if (x->live && below(2))
                    h_remove(x);
                else if (!x->used)
                    /* Arm a spare in the past: it goes on due. */
                    h_add(x, below(H.now + 1));
            }
            /* Remove some of what is now due or on overflow. */
            for (int k = 0; k < 50; k++) {
                struct tnode *x = &H.nodes[below(n)];
                if (x->live &&
                    (x->deadline <= H.now || x->deadline - H.now > 10 * YEAR))
                    h_remove(x);
            }
            h_check_next_expiry();
        }
        h_expire(UINT64_MAX);
        h_verify();
        size_t removed = 0, used = 0;
        for (size_t i = 0; i < n; i++) {
            const struct tnode *x = &H.nodes[i];
            used += x->used;
            if (x->removed) {
                removed++;
                CHECK(x->fires == 0, "removed timer %zu fired", i);
            } else {
                CHECK(x->fires == x->used, "timer %zu fired %u times", i,
                      x->fires);
            }
        }
        CHECK(removed > n / 5 && used > n * 3 / 4 && H.fired == used - removed,
              "%zu armed, %zu removed, %zu fired", used, removed, H.fired);
    }
    h_fini();
}

Test(timer_wheel, removing_the_last_timer_of_a_list_leaves_nothing_behind)
{
    seed_rng(0x5eed0013);
    uint64_t start = 5 * HOUR + 4321;
    for (unsigned level = 0; level <= WEFT_TIMER_LEVELS + 1; level++) {
        /* level LEVELS: overflow; LEVELS + 1: due (a past deadline). */
        uint64_t unit = level < WEFT_TIMER_LEVELS
                            ? (1ull << (level * WEFT_TIMER_LEVEL_BITS)) * TICK
                            : 0;
        uint64_t d = level < WEFT_TIMER_LEVELS ? start + (1 + below(60)) * unit
                     : level == WEFT_TIMER_LEVELS ? start + 50 * YEAR
                                                  : below(start);
        h_init(2, start);
        h_add(&H.nodes[0], d);
        h_check_next_expiry();
        h_remove(&H.nodes[0]);
        CHECK(weft__wheel_next_expiry(&H.w) == UINT64_MAX,
              "list %u: empty wheel, next_expiry %" PRIu64, level,
              weft__wheel_next_expiry(&H.w));
        /* With a later timer left, next_expiry moves on to it. */
        h_add(&H.nodes[0], d);
        h_add(&H.nodes[1], start + 2 * TICK);
        h_remove(&H.nodes[0]);
        CHECK(weft__wheel_next_expiry(&H.w) == tick_time(start + 2 * TICK),
              "list %u: next_expiry %" PRIu64, level,
              weft__wheel_next_expiry(&H.w));
        CHECK(h_expire(UINT64_MAX) == 1, "only the remaining one fires");
    }
    h_fini();
}

Test(timer_wheel, next_expiry_bounds_hold_after_every_operation)
{
    seed_rng(0x5eed0007);
    size_t n = 1500;
    h_init(n, below(YEAR));
    H.order_per_call = true;
    for (int op = 0; op < ROUNDS(40000); op++) {
        /* Half the time use only a few nodes, so that slots empty. */
        size_t pool = op / 5000 % 2 ? n : 8;
        struct tnode *x = &H.nodes[below(pool)];
        switch (below(10)) {
        case 0:
        case 1:
        case 2:
        case 3:
            if (!x->live)
                h_add(x, below(20) ? sat_add(H.now, rand_span())
                                   : below(H.now + 1));
            break;
        case 4:
        case 5:
            if (x->live)
                h_remove(x);
            break;
        default: {
            uint64_t step = below(4)   ? below(2 * TICK)
                            : below(3) ? below(SEC)
                                       : rand_span();
            h_expire(sat_add(H.now, step));
            h_verify();
            break;
        }
        }
        h_check_next_expiry();
    }
    h_fini();
}

/* ---- Time and deadline edges ------------------------------------------ */

Test(timer_wheel, past_deadlines_fire_on_the_next_expire)
{
    seed_rng(0x5eed0008);
    uint64_t now = HOUR + 12345;
    h_init(6, now);
    H.order_per_call = true;
    uint64_t deadlines[] = {0, 1, now - TICK, now - 1, now, now + 1};
    for (size_t i = 0; i < 6; i++)
        h_add(&H.nodes[i], deadlines[i]);
    h_check_next_expiry();
    CHECK(weft__wheel_next_expiry(&H.w) == 0, "deadline 0's tick starts at 0");
    CHECK(h_expire(now) == 5, "the five past deadlines fire");
    CHECK(H.nodes[5].live, "the future one waits");
    h_check_next_expiry();
    /* Past deadlines after the wheel moved on, in shuffled order. */
    for (size_t i = 0; i < 5; i++)
        h_add(&H.nodes[i], below(now));
    h_check_next_expiry();
    CHECK(h_expire(now) == 5, "past deadlines added later fire");
    CHECK(h_expire(now + 1) == 1, "the last one fires at its deadline");
    h_fini();
}

Test(timer_wheel, deadline_uint64_max_is_armed_without_overflow)
{
    seed_rng(0x5eed0009);
    uint64_t top_tick = (UINT64_MAX / TICK) * TICK;
    h_init(7, 0);
    H.order_per_call = true;
    uint64_t deadlines[] = {UINT64_MAX,      UINT64_MAX - 1,    top_tick + 1,
                            top_tick,        UINT64_MAX - TICK, 1ull << 63,
                            (1ull << 63) + 1};
    for (size_t i = 0; i < 7; i++)
        h_add(&H.nodes[i], deadlines[i]);
    h_check_next_expiry();
    uint64_t nows[] = {(1ull << 63) - 1,  1ull << 63, UINT64_MAX - TICK - 1,
                       UINT64_MAX - TICK, top_tick,   UINT64_MAX - 1,
                       UINT64_MAX};
    size_t expect[] = {0, 1, 1, 1, 1, 2, 1};
    for (size_t i = 0; i < 7; i++) {
        CHECK(h_expire(nows[i]) == expect[i], "at %" PRIu64, nows[i]);
        h_verify();
        h_check_next_expiry();
    }
    /* A wheel at the end of time still takes timers. */
    h_add(&H.nodes[0], UINT64_MAX);
    h_add(&H.nodes[1], 5);
    CHECK(h_expire(UINT64_MAX) == 2, "both fire at the end of time");
    h_init(1, UINT64_MAX);
    h_add(&H.nodes[0], UINT64_MAX);
    CHECK(h_expire(UINT64_MAX) == 1, "a wheel started at UINT64_MAX fires");
    h_fini();
}

Test(timer_wheel, an_earlier_now_fires_nothing_early)
{
    seed_rng(0x5eed000a);
    h_init(3, 0);
    H.order_per_call = true;
    h_add(&H.nodes[0], 100 * MS);
    CHECK(h_expire(200 * MS) == 1, "fires");
    h_add(&H.nodes[1], 60 * MS); /* on due: its tick is processed */
    h_add(&H.nodes[2], 150 * MS);
    CHECK(h_expire(50 * MS) == 0, "now went back: nothing is due at 50 ms");
    h_check_next_expiry();
    CHECK(h_expire(60 * MS) == 1, "60 ms fires at 60 ms");
    CHECK(h_expire(149 * MS) == 0, "150 ms waits");
    CHECK(h_expire(150 * MS) == 1, "150 ms fires at 150 ms");
    h_fini();
}

Test(timer_wheel, timers_sharing_a_tick_fire_in_deadline_order_mid_tick)
{
    seed_rng(0x5eed000b);
    for (int round = 0; round < ROUNDS(8); round++) {
        /* Round 0 fills the current slot; the others a slot ahead, which
         * is reached by a jump first. */
        uint64_t k = 1000 + below(1ull << 30);
        uint64_t ahead = round == 0 ? 0
                         : below(4) ? 1 + below(63)
                                    : below(1u << 20);
        uint64_t base =
            (k + ahead) * TICK; /* the tick's deadlines: (base, base + TICK] */
        size_t n = 3000;
        h_init(n, k * TICK);
        H.order_per_call = true;
        for (size_t i = 0; i < n / 2; i++)
            h_add(&H.nodes[i], base + 1 + below(TICK));
        if (ahead)
            h_expire(base - below(TICK));
        size_t added = n / 2;
        uint64_t now = base;
        while (now < base + TICK) {
            now += 1 + below(TICK / 64);
            if (now > base + TICK)
                now = base + TICK;
            h_expire(now);
            h_verify();
            h_check_next_expiry();
            /* Out-of-order appends to the partly fired slot, some already
             * due (they fire on the next call). */
            for (int j = 0; j < 20 && added < n; j++)
                h_add(&H.nodes[added++],
                      now + 1 - below(TICK / 8) + below(base + TICK - now));
        }
        h_expire(base + TICK);
        h_verify();
        CHECK(H.live == 0 && H.fired == added, "%zu of %zu fired", H.fired,
              added);
    }
    h_fini();
}

/* ---- Callbacks that change the wheel ----------------------------------- */

struct cb_ctx {
    size_t calls;
    uint64_t now;
    uint64_t rearm_delta; /* re-add with deadline + delta (0: don't) */
    bool rearm_before;    /* re-add with deadline - 1, before now */
    struct tnode *victims[4];
    struct tnode *spawn[3];
    uint64_t spawn_at[3];
    uint64_t seen[8]; /* next_expiry inside each of the first callbacks */
};

static void cb_fire(struct weft__timer *t, void *arg)
{
    struct cb_ctx *c = arg;
    struct tnode *x = node_of(t);
    cr_assert(!t->armed && x->deadline <= c->now, "fired early or armed");
    x->fires++;
    c->calls++;
    if (c->rearm_before && x->fires == 1)
        weft__wheel_add(&H.w, t, x->deadline - 1);
    if (c->rearm_delta)
        weft__wheel_add(&H.w, t, x->deadline += c->rearm_delta);
    for (size_t i = 0; i < 4; i++) {
        if (c->victims[i] && c->victims[i]->t.armed)
            weft__wheel_remove(&H.w, &c->victims[i]->t);
        c->victims[i] = NULL;
    }
    for (size_t i = 0; i < 3; i++) {
        if (c->spawn[i])
            weft__wheel_add(&H.w, &c->spawn[i]->t, c->spawn_at[i]);
        c->spawn[i] = NULL;
    }
    if (c->calls <= 8)
        c->seen[c->calls - 1] = weft__wheel_next_expiry(&H.w);
}

Test(timer_wheel, a_timer_readded_in_the_past_by_its_callback_fires_next_call)
{
    seed_rng(0x5eed000c);
    struct cb_ctx c = {.rearm_before = true, .now = SEC};
    h_init(100, 0);
    for (size_t i = 0; i < 100; i++)
        weft__wheel_add(&H.w, &H.nodes[i].t,
                        H.nodes[i].deadline = (1 + below(900)) * MS);
    CHECK(weft__wheel_expire(&H.w, SEC, cb_fire, &c) == 100,
          "each fires once in the first call");
    CHECK(weft__wheel_count(&H.w) == 100, "all re-armed");
    CHECK(weft__wheel_next_expiry(&H.w) <= SEC, "re-armed ones are due");
    CHECK(weft__wheel_expire(&H.w, SEC, cb_fire, &c) == 100,
          "they fire on the next call, at the same now");
    CHECK(weft__wheel_count(&H.w) == 0 && c.calls == 200, "%zu calls", c.calls);
    h_fini();
}

Test(timer_wheel, a_periodic_timer_late_by_many_periods_fires_once_per_call)
{
    seed_rng(0x5eed000d);
    struct cb_ctx c = {.rearm_delta = 10 * MS};
    h_init(3, 0);
    for (size_t i = 0; i < 3; i++)
        weft__wheel_add(&H.w, &H.nodes[i].t,
                        H.nodes[i].deadline = (i + 1) * MS);
    /* On time: driven by next_expiry, each fires every period. */
    uint64_t now = 0;
    while (c.calls < 30) {
        now = weft__wheel_next_expiry(&H.w);
        c.now = now;
        weft__wheel_expire(&H.w, now, cb_fire, &c);
    }
    for (size_t i = 0; i < 3; i++)
        CHECK(H.nodes[i].fires == 10, "timer %zu fired %u times", i,
              H.nodes[i].fires);
    /* A second late: one firing per timer per call, never a storm. */
    c.now = now + SEC;
    for (int call = 1; call <= 5; call++) {
        CHECK(weft__wheel_expire(&H.w, c.now, cb_fire, &c) == 3,
              "call %d fires each once", call);
        CHECK(weft__wheel_count(&H.w) == 3, "still armed");
    }
    h_fini();
}

/* Arm n timers at deadlines (ns) on a wheel started at start; the first
 * one's callback removes the victims (indices); expire at now. Returns how
 * many fired and checks that exactly the others did. */
static size_t remove_in_callback(uint64_t start, const uint64_t *deadlines,
                                 size_t n, const size_t *victims, size_t nv,
                                 uint64_t now)
{
    struct cb_ctx c = {.now = now};
    h_init(n, start);
    for (size_t i = 0; i < n; i++)
        weft__wheel_add(&H.w, &H.nodes[i].t,
                        H.nodes[i].deadline = deadlines[i]);
    for (size_t v = 0; v < nv; v++)
        c.victims[v] = &H.nodes[victims[v]];
    size_t fired = weft__wheel_expire(&H.w, now, cb_fire, &c);
    for (size_t i = 0; i < n; i++) {
        bool victim = false;
        for (size_t v = 0; v < nv; v++)
            victim |= victims[v] == i;
        CHECK(H.nodes[i].fires == !victim, "timer %zu fired %u times", i,
              H.nodes[i].fires);
    }
    CHECK(weft__wheel_count(&H.w) == 0, "count %zu", weft__wheel_count(&H.w));
    CHECK(weft__wheel_expire(&H.w, UINT64_MAX, cb_fire, &c) == 0, "none left");
    return fired;
}

Test(timer_wheel, a_callback_may_remove_timers_due_in_the_same_call)
{
    seed_rng(0x5eed000e);
    /* From its own slot's batch (10 ms + 5 shares the first one's tick),
     * from later ticks of the same call, and from a higher level. */
    uint64_t wheel[] = {10 * MS,     10 * MS + 5, 20 * MS,
                        20 * MS + 1, 5 * SEC,     30 * MS};
    size_t wheel_victims[] = {1, 2, 4, 5};
    CHECK(remove_in_callback(0, wheel, 6, wheel_victims, 4, SEC) == 2,
          "slot batch");
    /* From the batch of past deadlines (the due list). */
    uint64_t past[] = {100 * MS, 200 * MS, 300 * MS};
    size_t past_victims[] = {1};
    CHECK(remove_in_callback(SEC, past, 3, past_victims, 1, SEC) == 2,
          "due batch");
    /* From the due part of the current tick, fired mid-tick. */
    uint64_t k = 1000 * TICK;
    uint64_t partial[] = {k + 10, k + 20, k + 30, k + 200};
    size_t partial_victims[] = {1, 3};
    CHECK(remove_in_callback(k, partial, 4, partial_victims, 2, k + 100) == 2,
          "current tick batch");
    h_fini();
}

Test(timer_wheel, timers_added_by_a_callback_wait_for_the_next_call)
{
    seed_rng(0x5eed000f);
    uint64_t now = 3 * SEC + 777;
    struct cb_ctx c = {.now = now};
    h_init(5, 0);
    weft__wheel_add(&H.w, &H.nodes[0].t, H.nodes[0].deadline = SEC);
    weft__wheel_add(&H.w, &H.nodes[1].t, H.nodes[1].deadline = 2 * SEC);
    c.spawn[0] = &H.nodes[2];
    c.spawn_at[0] = 0;
    c.spawn[1] = &H.nodes[3];
    c.spawn_at[1] = now; /* due, in the tick being fired */
    c.spawn[2] = &H.nodes[4];
    c.spawn_at[2] = now + MS;
    H.nodes[2].deadline = 0;
    H.nodes[3].deadline = now;
    H.nodes[4].deadline = now + MS;
    CHECK(weft__wheel_expire(&H.w, now, cb_fire, &c) == 2,
          "only the two armed before the call fire");
    CHECK(c.seen[1] == 0,
          "next_expiry in the second callback: the spawned deadline 0");
    CHECK(weft__wheel_count(&H.w) == 3, "three spawned");
    CHECK(weft__wheel_next_expiry(&H.w) <= now, "two are due");
    CHECK(weft__wheel_expire(&H.w, now, cb_fire, &c) == 2, "now they fire");
    CHECK(weft__wheel_expire(&H.w, now + MS - 1, cb_fire, &c) == 0, "waits");
    c.now = now + MS;
    CHECK(weft__wheel_expire(&H.w, now + MS, cb_fire, &c) == 1, "fires");
    h_fini();
}

Test(timer_wheel, next_expiry_inside_a_callback_is_no_later_than_the_rest)
{
    seed_rng(0x5eed0010);
    struct cb_ctx c = {.now = 10 * MS};
    h_init(6, 0);
    /* The first two share a tick; the others lie across a 64-tick block
     * boundary (tick 128, 8.4 ms), on level 1 when the first ones fire. */
    uint64_t deadlines[] = {5 * MS, 5 * MS + 10, 7 * MS + 3, 9 * MS,
                            10 * MS + 1};
    for (size_t i = 0; i < 5; i++)
        weft__wheel_add(&H.w, &H.nodes[i].t,
                        H.nodes[i].deadline = deadlines[i]);
    CHECK(weft__wheel_expire(&H.w, 10 * MS, cb_fire, &c) == 4, "four due");
    for (size_t i = 0; i < 4; i++)
        CHECK(c.seen[i] <= tick_time(deadlines[i + 1]) && c.seen[i] > 5 * MS,
              "in callback %zu: %" PRIu64 ", next deadline's tick %" PRIu64, i,
              c.seen[i], tick_time(deadlines[i + 1]));
    CHECK(weft__wheel_next_expiry(&H.w) == tick_time(10 * MS + 1),
          "after: %" PRIu64, weft__wheel_next_expiry(&H.w));
    /* A timer a callback adds counts at once, though it waits to fire. */
    c.now = 20 * MS;
    c.spawn[0] = &H.nodes[5];
    c.spawn_at[0] = 15 * MS;
    H.nodes[5].deadline = 15 * MS;
    weft__wheel_add(&H.w, &H.nodes[0].t, H.nodes[0].deadline = 12 * MS);
    CHECK(weft__wheel_expire(&H.w, 20 * MS, cb_fire, &c) == 2, "10 and 12");
    CHECK(c.seen[5] <= tick_time(15 * MS), "deferred: %" PRIu64, c.seen[5]);
    CHECK(weft__wheel_next_expiry(&H.w) <= 20 * MS, "15 ms is due");
    CHECK(weft__wheel_expire(&H.w, 20 * MS, cb_fire, &c) == 1, "15 ms fires");
    h_fini();
}

/* ---- A million timers ------------------------------------------------- */

struct million {
    uint64_t now, last;
    size_t fired, early, disorder;
};

static void million_fire(struct weft__timer *t, void *arg)
{
    struct million *m = arg;
    struct tnode *x = node_of(t);
    m->early += x->deadline > m->now;
    m->disorder += x->deadline < m->last;
    m->last = x->deadline;
    x->fires++;
    m->fired++;
}

#define MILLION 1000000u

Test(timer_wheel, a_million_timers_fire_in_one_jump)
{
    seed_rng(0x5eed0011);
    uint64_t start = below(YEAR);
    h_init(MILLION, start);
    uint64_t last = 0;
    for (size_t i = 0; i < MILLION; i++) {
        uint64_t d =
            sat_add(start, below(64) ? below(10 * 60 * SEC) : below(20 * YEAR));
        weft__wheel_add(&H.w, &H.nodes[i].t, H.nodes[i].deadline = d);
        if (d > last)
            last = d;
    }
    CHECK(weft__wheel_count(&H.w) == MILLION, "count");
    struct million m = {.now = last};
    CHECK(weft__wheel_expire(&H.w, last, million_fire, &m) == MILLION,
          "%zu fired", m.fired);
    CHECK(m.fired == MILLION && !m.early && !m.disorder,
          "fired %zu, early %zu, out of order %zu", m.fired, m.early,
          m.disorder);
    CHECK(weft__wheel_count(&H.w) == 0, "count after");
    CHECK(weft__wheel_next_expiry(&H.w) == UINT64_MAX, "empty");
    for (size_t i = 0; i < MILLION; i++)
        CHECK(H.nodes[i].fires == 1, "timer %zu fired %u times", i,
              H.nodes[i].fires);
    h_fini();
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

Test(timer_wheel, a_million_timers_fire_in_1ms_steps)
{
    seed_rng(0x5eed0012);
    uint64_t start = below(YEAR);
    uint64_t span = 20 * SEC;
    uint64_t *sorted = malloc(MILLION * sizeof *sorted);
    cr_assert_not_null(sorted);
    h_init(MILLION, start);
    for (size_t i = 0; i < MILLION; i++) {
        uint64_t d = start + below(span);
        weft__wheel_add(&H.w, &H.nodes[i].t, H.nodes[i].deadline = d);
        sorted[i] = d;
    }
    qsort(sorted, MILLION, sizeof *sorted, cmp_u64);
    struct million m = {0};
    size_t due = 0;
    for (uint64_t now = start + MS; m.fired < MILLION; now += MS) {
        m.now = now;
        size_t n = weft__wheel_expire(&H.w, now, million_fire, &m);
        while (due < MILLION && sorted[due] <= now)
            due++;
        CHECK(m.fired == due, "at %" PRIu64 ": %zu fired, %zu due", now,
              m.fired, due);
        CHECK(weft__wheel_count(&H.w) == MILLION - due, "count");
        CHECK(n <= due, "returned %zu", n);
        CHECK(now <= start + span + MS, "not done by the end");
    }
    CHECK(!m.early && !m.disorder, "early %zu, out of order %zu", m.early,
          m.disorder);
    for (size_t i = 0; i < MILLION; i++)
        CHECK(H.nodes[i].fires == 1, "timer %zu fired %u times", i,
              H.nodes[i].fires);
    free(sorted);
    h_fini();
}

/* ---- Misuse (debug builds) --------------------------------------------- */

#if WEFT_DEBUG_LEVEL >= 1
Test(timer_wheel, adding_an_armed_timer_aborts_in_debug_builds,
     .signal = SIGABRT)
{
    struct weft__timer_wheel w;
    struct weft__timer t = {0};
    weft__wheel_init(&w, 0);
    weft__wheel_add(&w, &t, SEC);
    weft__wheel_add(&w, &t, 2 * SEC);
}

Test(timer_wheel, removing_a_disarmed_timer_aborts_in_debug_builds,
     .signal = SIGABRT)
{
    struct weft__timer_wheel w;
    struct weft__timer t = {0};
    weft__wheel_init(&w, 0);
    weft__wheel_add(&w, &t, SEC);
    weft__wheel_remove(&w, &t);
    weft__wheel_remove(&w, &t);
}

static void reenter(struct weft__timer *t, void *ctx)
{
    weft__wheel_expire(ctx, UINT64_MAX, reenter, ctx);
    (void)t;
}

Test(timer_wheel, expire_from_a_callback_aborts_in_debug_builds,
     .signal = SIGABRT)
{
    struct weft__timer_wheel w;
    struct weft__timer t = {0};
    weft__wheel_init(&w, 0);
    weft__wheel_add(&w, &t, SEC);
    weft__wheel_expire(&w, SEC, reenter, &w);
}
#endif
