/* sched/timer_wheel.h: a hierarchical timing wheel (Varghese and Lauck,
 * 1987; the shape of Tokio's and Linux's) holding each worker's timers.
 * Insert and remove are O(1); firing costs O(1) per timer plus at most one
 * move per level. A million sleeping fibers cost one intrusive node each and
 * do not slow the loop.
 *
 * Time is in nanoseconds of weft_now_ns(). The wheel counts ticks of
 * WEFT_TIMER_TICK_NS; a timer is placed in the tick that holds its deadline
 * rounded up, so it never fires before its deadline and at most one tick
 * after it (plus however late expire is called).
 *
 * Contract: no locking (the owner serialises calls); never allocates;
 * the caller owns each node's memory and keeps it alive while it is armed. */
#ifndef WEFT_SCHED_TIMER_WHEEL_H
#define WEFT_SCHED_TIMER_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEFT_TIMER_TICK_SHIFT 16u /* a tick is 2^16 ns = 65.536 us */
#define WEFT_TIMER_TICK_NS (1ull << WEFT_TIMER_TICK_SHIFT)
#define WEFT_TIMER_LEVEL_BITS 6u /* 64 slots per level */
#define WEFT_TIMER_SLOTS (1u << WEFT_TIMER_LEVEL_BITS)
#define WEFT_TIMER_LEVELS 7u /* 64^7 ticks: about 9 years, beyond: overflow */

struct weft__timer {
    struct weft__timer *next; /* in its list; wheel-owned while armed */
    struct weft__timer *prev;
    uint64_t deadline;        /* ns; set by add */
    uint32_t where;           /* which list while armed, internal */
    bool armed;               /* true from add until fired or removed */
};

/* Every field is private to timer_wheel.c; lists are circular and doubly
 * linked, a head's prev being the tail. */
struct weft__timer_wheel {
    uint64_t tick;                            /* ticks already processed */
    uint64_t occupied[WEFT_TIMER_LEVELS];     /* bit s: slot s not empty */
    struct weft__timer *slots[WEFT_TIMER_LEVELS][WEFT_TIMER_SLOTS];
    struct weft__timer *overflow;             /* beyond the last level */
    uint64_t overflow_min;                    /* <= every overflow tick */
    struct weft__timer *due;                  /* added in a processed tick */
    uint64_t due_min;                         /* <= every due deadline */
    struct weft__timer *firing;               /* collected by expire */
    struct weft__timer *deferred;             /* added during expire */
    uint64_t deferred_min;                    /* <= every deferred deadline */
    size_t count;                             /* armed timers */
    bool cur_sorted;                          /* slot of tick is in order */
    bool due_sorted;                          /* due is in order */
    bool expiring;                            /* inside expire */
    uint64_t check_ops, check_next;           /* WEFT_DEBUG_LEVEL >= 2 */
};

/* Start the wheel at time now_ns. */
void weft__wheel_init(struct weft__timer_wheel *w, uint64_t now_ns);

/* Arm t (not armed) to fire at deadline_ns. A deadline in the past fires on
 * the next expire. */
void weft__wheel_add(struct weft__timer_wheel *w, struct weft__timer *t,
                     uint64_t deadline_ns);

/* Disarm t, which must be armed in w. */
void weft__wheel_remove(struct weft__timer_wheel *w, struct weft__timer *t);

/* The time at which expire must next be called, in ns: never later than
 * the earliest armed deadline rounded up to its tick (it may be earlier, when
 * a higher level must be cascaded). UINT64_MAX when the wheel is empty. */
uint64_t weft__wheel_next_expiry(const struct weft__timer_wheel *w);

typedef void (*weft__timer_fire_fn)(struct weft__timer *t, void *ctx);

/* Fire every timer whose deadline is <= now_ns: each is disarmed, then
 * passed to fire, in non-decreasing deadline order. fire may add and remove
 * timers (including t itself again); what it adds never fires in this call,
 * even with a deadline <= now_ns, but on the next one. fire must not call
 * expire. Returns how many fired. */
size_t weft__wheel_expire(struct weft__timer_wheel *w, uint64_t now_ns,
                          weft__timer_fire_fn fire, void *ctx);

/* The number of armed timers. */
static inline size_t weft__wheel_count(const struct weft__timer_wheel *w)
{
    return w->count;
}

#endif /* WEFT_SCHED_TIMER_WHEEL_H */
