/* sched/timer_wheel.c: each worker's hierarchical timing wheel. The worker
 * loop calls weft__wheel_next_expiry (how long it may park) and
 * weft__wheel_expire (fire what is due); sleeps and deadlines arm and disarm
 * their timers with add and remove. It must never allocate, lock, read a
 * clock, walk empty ticks one by one, or fire a timer before its deadline.
 *
 * A timer's tick td is its deadline rounded up to a whole tick. w->tick (E)
 * is the first tick not yet processed. A timer with td >= E is placed by the
 * highest 6-bit group in which td and E differ (Tokio's placement): that
 * group's number is its level, td's bits in it its slot. Invariants:
 *  1. Level 0 holds the ticks of E's 64-tick block; a level-0 slot holds
 *     exactly one tick. The slot of E itself is "current": expire may have
 *     fired part of it (the timers whose deadline had passed mid-tick).
 *  2. An occupied slot of level L > 0 lies strictly after E's slot in that
 *     level, and level 0's after or at it: no level wraps around, so a
 *     level's earliest slot is its lowest set bit.
 *  3. Every event of level L (a level-0 tick to fire, a higher slot to
 *     cascade when E reaches its first tick) precedes every event of level
 *     L+1, so the next event is the lowest set bit of the lowest non-empty
 *     level. When E reaches a slot of level L > 0, its timers are placed
 *     again relative to the new E, each strictly lower: a timer moves at
 *     most once per level.
 *  4. A tick in a later 2^42-tick block than E's waits on `overflow`, whose
 *     event is the start of the block of overflow_min (a lower bound on the
 *     overflow ticks, exact after each cascade).
 *  5. A timer added with td < E waits on `due`. Its deadline is at most
 *     (E - 1) ticks, before every slotted deadline, so due fires first.
 *  6. cur_sorted (due_sorted) true: the current slot (due) is in deadline
 *     order. Appending in order keeps it; an out-of-order append clears it
 *     and the next partial firing sorts the list again.
 *
 * Expire walks the events from E to the tick of now. It fires each batch
 * (the due list, a level-0 slot, the due part of the current slot) as soon
 * as it has sorted it, while its timers are in cache; the batch waits on
 * `firing`, where they stay armed so that a callback may remove them. A
 * timer added while expire runs waits on `deferred` and is placed when
 * expire returns, so it never fires in that call, whatever its deadline. */
#include "timer_wheel.h"

#include <stdio.h>
#include <stdlib.h>

#ifndef WEFT_DEBUG_LEVEL
#define WEFT_DEBUG_LEVEL 0
#endif

#define LEVELS     WEFT_TIMER_LEVELS
#define SLOTS      WEFT_TIMER_SLOTS
#define LBITS      WEFT_TIMER_LEVEL_BITS
#define SLOT_MASK  ((uint64_t)SLOTS - 1)
#define SHIFT      WEFT_TIMER_TICK_SHIFT
#define WHEEL_BITS (LEVELS * LBITS) /* a block of 2^42 ticks */
/* The tick of deadline UINT64_MAX, 2^48: the largest tick there is. */
#define TICK_LIMIT ((UINT64_MAX >> SHIFT) + 1)

enum {
    WHERE_OVERFLOW = LEVELS * SLOTS, /* below: level * SLOTS + slot */
    WHERE_DUE,
    WHERE_FIRING,
    WHERE_DEFERRED,
};

_Static_assert(SLOTS <= 64, "a level's occupancy is one 64-bit word");
_Static_assert(WHEEL_BITS < 64, "block arithmetic shifts by WHEEL_BITS");
_Static_assert(SHIFT > 0 && SHIFT < 64, "a tick is a power of two ns");

#if WEFT_DEBUG_LEVEL >= 1
__attribute__((noreturn, cold)) static void misuse(const char *what)
{
    fprintf(stderr, "weft: timer wheel misuse: %s\n", what);
    abort();
}
#define MISUSE(what) misuse(what)
#else
#define MISUSE(what) ((void)0)
#endif

/* The deadline rounded up: a timer never fires before its deadline. */
static inline uint64_t ceil_tick(uint64_t ns)
{
    return (ns >> SHIFT) + ((ns & (WEFT_TIMER_TICK_NS - 1)) != 0);
}

/* The time at which tick k starts, saturated: 2^48 << 16 does not fit. */
static inline uint64_t tick_ns(uint64_t k)
{
    return k >= TICK_LIMIT ? UINT64_MAX : k << SHIFT;
}

/* ---- Circular doubly linked lists ------------------------------------- */

static inline void list_push(struct weft__timer **head, struct weft__timer *t)
{
    struct weft__timer *h = *head;
    if (!h) {
        t->next = t->prev = t;
        *head = t;
        return;
    }
    t->next = h;
    t->prev = h->prev;
    h->prev->next = t;
    h->prev = t;
}

/* Returns true when t was the last one. */
static inline bool list_unlink(struct weft__timer **head, struct weft__timer *t)
{
    if (t->next == t) {
        *head = NULL;
        return true;
    }
    t->prev->next = t->next;
    t->next->prev = t->prev;
    if (*head == t)
        *head = t->next;
    return false;
}

/* Stable merge of two NULL-terminated chains; a's come first on ties. */
static struct weft__timer *merge(struct weft__timer *a, struct weft__timer *b)
{
    struct weft__timer *first = NULL, **link = &first;
    while (a && b) {
        if (b->deadline < a->deadline) {
            *link = b;
            link = &b->next;
            b = b->next;
        } else {
            *link = a;
            link = &a->next;
            a = a->next;
        }
    }
    *link = a ? a : b;
    return first;
}

/* Sort a list by deadline: a bottom-up merge sort in O(k log k) and no
 * memory but a binary counter of runs (the scheme of Linux's list_sort),
 * which merges runs while they are still in cache. An already sorted list
 * costs one pass. Equal deadlines keep their order in the list, but that is
 * not the order of their adds: cascades reorder (see place_all). */
static void list_sort(struct weft__timer **head)
{
    struct weft__timer *h = *head, *p = h;
    if (!h)
        return;
    while (p->next != h && p->deadline <= p->next->deadline)
        p = p->next;
    if (p->next == h)
        return;

    struct weft__timer *runs[64] = {0}; /* runs[k]: 2^k timers or none */
    unsigned top = 0;
    h->prev->next = NULL;
    while (h) {
        struct weft__timer *run = h;
        h = h->next;
        run->next = NULL;
        unsigned k = 0;
        /* runs[k] holds earlier timers than run: it goes first. */
        for (; runs[k]; k++) {
            run = merge(runs[k], run);
            runs[k] = NULL;
        }
        runs[k] = run;
        if (k > top)
            top = k;
    }
    struct weft__timer *out = NULL;
    for (unsigned k = 0; k <= top; k++)
        if (runs[k])
            out = merge(runs[k], out);

    for (p = out; p->next; p = p->next)
        p->next->prev = p;
    p->next = out;
    out->prev = p;
    *head = out;
}

/* ---- Placement --------------------------------------------------------- */

static inline struct weft__timer **list_of(struct weft__timer_wheel *w,
                                           uint32_t where)
{
    if (where < WHERE_OVERFLOW)
        return &w->slots[where / SLOTS][where % SLOTS];
    switch (where) {
    case WHERE_OVERFLOW:
        return &w->overflow;
    case WHERE_DUE:
        return &w->due;
    case WHERE_FIRING:
        return &w->firing;
    default:
        return &w->deferred;
    }
}

/* Put t, whose tick is >= w->tick, in its slot or on overflow. */
static void place(struct weft__timer_wheel *w, struct weft__timer *t)
{
    uint64_t td = ceil_tick(t->deadline);
    uint64_t diff = td ^ w->tick;
    if (diff >> WHEEL_BITS) {
        if (td < w->overflow_min)
            w->overflow_min = td;
        t->where = WHERE_OVERFLOW;
        list_push(&w->overflow, t);
        return;
    }
    /* "| SLOT_MASK": ticks of E's own block go to level 0. */
    unsigned level =
        (63u - (unsigned)__builtin_clzll(diff | SLOT_MASK)) / LBITS;
    unsigned slot = (unsigned)(td >> (level * LBITS)) & SLOT_MASK;
    struct weft__timer **head = &w->slots[level][slot];
    if (td == w->tick) /* the current slot (invariant 6) */
        w->cur_sorted =
            !*head || (w->cur_sorted && (*head)->prev->deadline <= t->deadline);
    t->where = level * SLOTS + slot;
    list_push(head, t);
    w->occupied[level] |= 1ull << slot;
}

/* Put t in the wheel: in a slot, on overflow or, if its tick has been
 * processed already, on due. */
static void arm(struct weft__timer_wheel *w, struct weft__timer *t)
{
    if (ceil_tick(t->deadline) >= w->tick) {
        place(w, t);
        return;
    }
    w->due_sorted =
        !w->due || (w->due_sorted && w->due->prev->deadline <= t->deadline);
    if (t->deadline < w->due_min)
        w->due_min = t->deadline;
    t->where = WHERE_DUE;
    list_push(&w->due, t);
}

/* The tick of the wheel's next event, UINT64_MAX if it has none, and where
 * it is: *level LEVELS means the overflow list (invariants 2 to 4). */
static uint64_t next_event(const struct weft__timer_wheel *w, unsigned *level,
                           unsigned *slot)
{
    for (unsigned l = 0; l < LEVELS; l++) {
        uint64_t occ = w->occupied[l];
        if (!occ)
            continue;
        unsigned s = (unsigned)__builtin_ctzll(occ);
        unsigned block = (l + 1) * LBITS;
        *level = l;
        *slot = s;
        return (w->tick >> block << block) | ((uint64_t)s << (l * LBITS));
    }
    if (w->overflow) {
        *level = LEVELS;
        *slot = 0;
        return w->overflow_min >> WHEEL_BITS << WHEEL_BITS;
    }
    return UINT64_MAX;
}

static inline void set_tick(struct weft__timer_wheel *w, uint64_t tick)
{
    if (tick != w->tick) {
        w->tick = tick;
        /* Unknown until looked at; place() sets it on an empty slot. */
        w->cur_sorted = false;
    }
}

static struct weft__timer *take_slot(struct weft__timer_wheel *w,
                                     unsigned level, unsigned slot)
{
    struct weft__timer *list = w->slots[level][slot];
    w->slots[level][slot] = NULL;
    w->occupied[level] &= ~(1ull << slot);
    return list;
}

/* Place every timer of a detached list again, relative to w->tick. The
 * walk is a chain of cache misses on a large wheel, so it is done from
 * both ends at once: two independent chains of loads overlap. */
static void place_all(struct weft__timer_wheel *w, struct weft__timer *list)
{
    if (!list)
        return;
    struct weft__timer *fwd = list, *back = list->prev;
    while (fwd != back) {
        struct weft__timer *f = fwd, *b = back;
        fwd = fwd->next;
        back = back->prev;
        place(w, f);
        place(w, b);
        if (b == fwd) /* the two ends met */
            return;
    }
    place(w, fwd);
}

/* Move the leading timers of a sorted list whose deadline is <= now to
 * firing. */
static void take_due(struct weft__timer_wheel *w, struct weft__timer **head,
                     uint64_t now)
{
    struct weft__timer *t;
    while ((t = *head) && t->deadline <= now) {
        list_unlink(head, t);
        t->where = WHERE_FIRING;
        list_push(&w->firing, t);
    }
}

static inline void disarm(struct weft__timer_wheel *w, struct weft__timer *t)
{
    t->armed = false;
    t->next = t->prev = NULL;
    w->count--;
}

/* Fire the batch on firing, in order; callbacks may remove from it. */
static size_t fire_batch(struct weft__timer_wheel *w, weft__timer_fire_fn fire,
                         void *ctx)
{
    size_t fired = 0;
    struct weft__timer *t;
    while ((t = w->firing)) {
        list_unlink(&w->firing, t);
        disarm(w, t);
        fired++;
        fire(t, ctx);
    }
    return fired;
}

/* ---- Invariant checks (WEFT_DEBUG_LEVEL >= 2) -------------------------- */

#if WEFT_DEBUG_LEVEL >= 2
__attribute__((noreturn, cold)) static void broken(const char *what, int line)
{
    fprintf(stderr, "weft: timer wheel invariant broken: %s (line %d)\n", what,
            line);
    abort();
}
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            broken(#cond, __LINE__);                                           \
    } while (0)

/* Check one list and add its length to *n. */
static void check_list(const struct weft__timer_wheel *w,
                       const struct weft__timer *head, uint32_t where,
                       bool sorted, size_t *n)
{
    const struct weft__timer *t = head;
    if (!t)
        return;
    do {
        uint64_t td = ceil_tick(t->deadline);
        CHECK(t->armed && t->where == where);
        CHECK(t->next->prev == t && t->prev->next == t);
        CHECK(!sorted || t->next == head || t->deadline <= t->next->deadline);
        if (where < WHERE_OVERFLOW) {
            uint64_t diff = td ^ w->tick;
            unsigned level = where / SLOTS;
            CHECK(td >= w->tick && (diff >> WHEEL_BITS) == 0);
            CHECK((63u - (unsigned)__builtin_clzll(diff | SLOT_MASK)) / LBITS ==
                  level);
            CHECK(((td >> (level * LBITS)) & SLOT_MASK) == where % SLOTS);
        } else if (where == WHERE_OVERFLOW) {
            CHECK(td >= w->tick && (td ^ w->tick) >> WHEEL_BITS);
            CHECK(td >= w->overflow_min);
        } else if (where == WHERE_DUE) {
            CHECK(td < w->tick && t->deadline >= w->due_min);
        } else if (where == WHERE_DEFERRED) {
            CHECK(w->expiring && t->deadline >= w->deferred_min);
        }
        CHECK(++*n <= w->count); /* also stops a cycle that misses head */
        t = t->next;
    } while (t != head);
}

static void check_all(const struct weft__timer_wheel *w)
{
    size_t n = 0;
    for (unsigned l = 0; l < LEVELS; l++) {
        for (unsigned s = 0; s < SLOTS; s++) {
            const struct weft__timer *head = w->slots[l][s];
            bool current = l == 0 && s == (w->tick & SLOT_MASK);
            CHECK(!head == !(w->occupied[l] & (1ull << s)));
            check_list(w, head, l * SLOTS + s, current && w->cur_sorted, &n);
        }
    }
    check_list(w, w->overflow, WHERE_OVERFLOW, false, &n);
    check_list(w, w->due, WHERE_DUE, w->due_sorted, &n);
    check_list(w, w->firing, WHERE_FIRING, true, &n);
    check_list(w, w->deferred, WHERE_DEFERRED, false, &n);
    CHECK(n == w->count);
}

/* A full check walks every timer, so it runs on a schedule that keeps its
 * cost to a few nodes per call: on every call while the wheel is small,
 * after count/4 further calls when it is large. */
static void debug_check(struct weft__timer_wheel *w)
{
    if (++w->check_ops < w->check_next)
        return;
    check_all(w);
    w->check_next = w->check_ops + w->count / 4 + 1;
}
#else
static inline void debug_check(struct weft__timer_wheel *w)
{
    (void)w;
}
#endif

/* ---- Entry points ------------------------------------------------------ */

void weft__wheel_init(struct weft__timer_wheel *w, uint64_t now_ns)
{
    *w = (struct weft__timer_wheel){
        /* Every tick up to now's is processed: a deadline <= now is due. */
        .tick = (now_ns >> SHIFT) + 1,
        .overflow_min = UINT64_MAX,
        .due_min = UINT64_MAX,
        .deferred_min = UINT64_MAX,
        .cur_sorted = true,
        .due_sorted = true,
    };
}

void weft__wheel_add(struct weft__timer_wheel *w, struct weft__timer *t,
                     uint64_t deadline_ns)
{
    if (t->armed) {
        MISUSE("add of a timer that is already armed");
        return;
    }
    t->deadline = deadline_ns;
    t->armed = true;
    w->count++;
    if (w->expiring) {
        if (deadline_ns < w->deferred_min)
            w->deferred_min = deadline_ns;
        t->where = WHERE_DEFERRED;
        list_push(&w->deferred, t);
    } else {
        arm(w, t);
    }
    debug_check(w);
}

void weft__wheel_remove(struct weft__timer_wheel *w, struct weft__timer *t)
{
    if (!t->armed) {
        MISUSE("remove of a timer that is not armed");
        return;
    }
#if WEFT_DEBUG_LEVEL >= 1
    if (t->where > WHERE_DEFERRED || w->count == 0)
        misuse("remove of a timer armed in no wheel or in another one");
#endif
    uint32_t where = t->where;
    if (list_unlink(list_of(w, where), t)) {
        if (where < WHERE_OVERFLOW) {
            w->occupied[where / SLOTS] &= ~(1ull << (where % SLOTS));
        } else if (where == WHERE_OVERFLOW) {
            w->overflow_min = UINT64_MAX;
        } else if (where == WHERE_DUE) {
            w->due_min = UINT64_MAX;
            w->due_sorted = true;
        } else if (where == WHERE_DEFERRED) {
            w->deferred_min = UINT64_MAX;
        }
    }
    disarm(w, t);
    debug_check(w);
}

uint64_t weft__wheel_next_expiry(const struct weft__timer_wheel *w)
{
    unsigned level, slot;
    uint64_t at = next_event(w, &level, &slot);
    uint64_t first = at == UINT64_MAX ? UINT64_MAX : tick_ns(at);
    /* Off the slots, the earliest deadline is known exactly (a sorted list)
     * or by a lower bound. Due's precede every event; inside expire,
     * firing's and deferred's need not. */
    uint64_t d = UINT64_MAX;
    if (w->due)
        d = w->due_sorted ? w->due->deadline : w->due_min;
    if (w->firing && w->firing->deadline < d)
        d = w->firing->deadline;
    if (w->deferred && w->deferred_min < d)
        d = w->deferred_min;
    if (d != UINT64_MAX && tick_ns(ceil_tick(d)) < first)
        first = tick_ns(ceil_tick(d));
    return first;
}

size_t weft__wheel_expire(struct weft__timer_wheel *w, uint64_t now_ns,
                          weft__timer_fire_fn fire, void *ctx)
{
    if (!fire) {
        MISUSE("expire without a fire function");
        return 0;
    }
    if (w->expiring) {
        MISUSE("expire called from a fire callback");
        return 0;
    }
    w->expiring = true;
    size_t fired = 0;
    /* Ticks up to now's are wholly due; the next one may be in part. */
    uint64_t target = (now_ns >> SHIFT) + 1;

    /* Due deadlines precede all others (invariant 5). */
    if (w->due) {
        if (!w->due_sorted) {
            list_sort(&w->due);
            w->due_sorted = true;
        }
        take_due(w, &w->due, now_ns); /* all of it, unless now went back */
        if (!w->due)
            w->due_min = UINT64_MAX;
        fired += fire_batch(w, fire, ctx);
    }

    /* Visit the events up to target, lowest first (invariant 3). */
    while (target > w->tick) {
        unsigned level, slot;
        uint64_t at = next_event(w, &level, &slot);
        /* A slot to cascade at target is done now, so that target's own
         * timers are all on level 0 below. */
        if (at > target || (at == target && level == 0))
            break;
        set_tick(w, at);
        if (level == 0) {
            w->firing = take_slot(w, 0, slot);
            list_sort(&w->firing);
            struct weft__timer *t = w->firing;
            do {
                t->where = WHERE_FIRING;
                t = t->next;
            } while (t != w->firing);
            fired += fire_batch(w, fire, ctx);
        } else if (level < LEVELS) {
            place_all(w, take_slot(w, level, slot));
        } else {
            struct weft__timer *list = w->overflow;
            w->overflow = NULL;
            w->overflow_min = UINT64_MAX;
            place_all(w, list);
        }
    }
    if (target > w->tick)
        set_tick(w, target);

    /* The current slot's deadlines are in (tick - 1, tick] ticks. */
    if (now_ns > (w->tick - 1) << SHIFT) {
        unsigned s = w->tick & SLOT_MASK;
        struct weft__timer **head = &w->slots[0][s];
        if (*head) {
            if (!w->cur_sorted) {
                list_sort(head);
                w->cur_sorted = true;
            }
            take_due(w, head, now_ns);
            if (!*head)
                w->occupied[0] &= ~(1ull << s);
            fired += fire_batch(w, fire, ctx);
        }
    }

    w->expiring = false;
    struct weft__timer *t;
    while ((t = w->deferred)) {
        list_unlink(&w->deferred, t);
        arm(w, t);
    }
    w->deferred_min = UINT64_MAX;
    debug_check(w);
    return fired;
}
