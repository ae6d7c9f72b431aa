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
 *  6. `firing` holds, in deadline order, what expire has collected and not
 *     yet fired; those timers stay armed, so a fire callback may remove them.
 *  7. cur_sorted (due_sorted) true: the current slot (due) is in deadline
 *     order. Appending in order keeps it; an out-of-order append clears it
 *     and the next partial firing sorts the list again.
 *
 * Expire collects everything due into `firing` first and only then calls
 * fire, so whatever a callback adds is placed relative to the final E and
 * waits for the next call, whatever its deadline. */
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

enum { WHERE_OVERFLOW = LEVELS * SLOTS, WHERE_DUE, WHERE_FIRING };

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

/* Append the whole list src to dst. */
static inline void list_splice(struct weft__timer **dst,
                               struct weft__timer *src)
{
    struct weft__timer *d = *dst;
    if (!src)
        return;
    if (!d) {
        *dst = src;
        return;
    }
    struct weft__timer *dtail = d->prev, *stail = src->prev;
    dtail->next = src;
    src->prev = dtail;
    stail->next = d;
    d->prev = stail;
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

/* Sort a list by deadline, stably: equal deadlines fire in the order they
 * were queued. A bottom-up merge sort in O(k log k) and no memory but a
 * binary counter of runs (the scheme of Linux's list_sort): it merges runs
 * while they are still in cache. An already sorted list costs one pass. */
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
    if (where == WHERE_OVERFLOW)
        return &w->overflow;
    if (where == WHERE_DUE)
        return &w->due;
    return &w->firing;
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
    if (td == w->tick) /* the current slot (invariant 7) */
        w->cur_sorted =
            !*head || (w->cur_sorted && (*head)->prev->deadline <= t->deadline);
    t->where = level * SLOTS + slot;
    list_push(head, t);
    w->occupied[level] |= 1ull << slot;
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

/* Place every timer of a detached list again, relative to w->tick. */
static void place_all(struct weft__timer_wheel *w, struct weft__timer *list)
{
    if (!list)
        return;
    list->prev->next = NULL;
    while (list) {
        struct weft__timer *t = list;
        list = list->next;
        place(w, t);
    }
}

/* Move the leading timers of a sorted list whose deadline is <= now to the
 * end of firing. */
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
    if (ceil_tick(deadline_ns) >= w->tick) {
        place(w, t);
    } else {
        w->due_sorted =
            !w->due || (w->due_sorted && w->due->prev->deadline <= deadline_ns);
        if (deadline_ns < w->due_min)
            w->due_min = deadline_ns;
        t->where = WHERE_DUE;
        list_push(&w->due, t);
    }
    debug_check(w);
}

static inline void disarm(struct weft__timer_wheel *w, struct weft__timer *t)
{
    t->armed = false;
    t->next = t->prev = NULL;
    w->count--;
}

void weft__wheel_remove(struct weft__timer_wheel *w, struct weft__timer *t)
{
    if (!t->armed) {
        MISUSE("remove of a timer that is not armed");
        return;
    }
#if WEFT_DEBUG_LEVEL >= 1
    if (t->where > WHERE_FIRING || w->count == 0)
        misuse("remove of a timer armed in no wheel or in another one");
#endif
    uint32_t where = t->where;
    if (list_unlink(list_of(w, where), t)) {
        if (where < WHERE_OVERFLOW)
            w->occupied[where / SLOTS] &= ~(1ull << (where % SLOTS));
        else if (where == WHERE_OVERFLOW)
            w->overflow_min = UINT64_MAX;
        else if (where == WHERE_DUE) {
            w->due_min = UINT64_MAX;
            w->due_sorted = true;
        }
    }
    disarm(w, t);
    debug_check(w);
}

uint64_t weft__wheel_next_expiry(const struct weft__timer_wheel *w)
{
    /* Timers on firing and due precede every slotted one (invariant 5);
     * firing is sorted, and due is, or has a lower bound. */
    if (w->firing || w->due) {
        uint64_t first = UINT64_MAX;
        if (w->firing)
            first = w->firing->deadline;
        if (w->due) {
            uint64_t d = w->due_sorted ? w->due->deadline : w->due_min;
            if (d < first)
                first = d;
        }
        return tick_ns(ceil_tick(first));
    }
    unsigned level, slot;
    uint64_t at = next_event(w, &level, &slot);
    return at == UINT64_MAX ? UINT64_MAX : tick_ns(at);
}

/* Move every timer whose deadline is <= now to firing, in deadline order,
 * and advance w->tick to the tick after now's, visiting only events. */
static void collect(struct weft__timer_wheel *w, uint64_t now)
{
    /* Ticks up to now's are wholly due; the next one may be in part. */
    uint64_t target = (now >> SHIFT) + 1;

    if (w->due) {
        if (!w->due_sorted) {
            list_sort(&w->due);
            w->due_sorted = true;
        }
        take_due(w, &w->due, now); /* all of it, unless now went back */
        if (!w->due)
            w->due_min = UINT64_MAX;
    }

    while (target > w->tick) {
        unsigned level, slot;
        uint64_t at = next_event(w, &level, &slot);
        /* A slot to cascade at target is done now, so that target's own
         * timers are all on level 0 below. */
        if (at > target || (at == target && level == 0))
            break;
        set_tick(w, at);
        if (level == 0) {
            struct weft__timer *list = take_slot(w, 0, slot), *t;
            list_sort(&list);
            t = list;
            do {
                t->where = WHERE_FIRING;
                t = t->next;
            } while (t != list);
            list_splice(&w->firing, list);
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

    /* The current slot's deadlines are in ((tick - 1), tick] ticks. */
    if (now > (w->tick - 1) << SHIFT) {
        unsigned s = w->tick & SLOT_MASK;
        struct weft__timer **head = &w->slots[0][s];
        if (*head) {
            if (!w->cur_sorted) {
                list_sort(head);
                w->cur_sorted = true;
            }
            take_due(w, head, now);
            if (!*head)
                w->occupied[0] &= ~(1ull << s);
        }
    }
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
    collect(w, now_ns);
    debug_check(w);

    size_t fired = 0;
    struct weft__timer *t;
    while ((t = w->firing)) {
        list_unlink(&w->firing, t);
        disarm(w, t);
        fired++;
        fire(t, ctx);
    }
    w->expiring = false;
    debug_check(w);
    return fired;
}
