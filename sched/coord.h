/* sched/coord.h: what the coordination files share (join.c, cancel.c,
 * deadline.c, future.c, gather.c, wait_any.c, group.c, quarantine.c,
 * task_ext.c): a task's coordination state beside its descriptor,
 * completion
 * watchers on tasks, claimed joins, cancelling a task that cannot vanish,
 * and the group and future hooks.
 *
 * Locks, in the only order they may nest (a lock is never taken while a
 * later one in this list is held):
 *  1. a task's stripe lock (join.c, weft__task_lock): its watchers list and
 *     weft_cancel's pin;
 *  2. group.c's tree lock: every task's list of groups it created, and the
 *     existence of groups;
 *  3. group locks; two are held at once only under the tree lock, which
 *     serialises every such walk;
 *  4. a future's lock (never held with any of the above);
 * and, innermost, the scheduler's own (injection queue, idle set, timers),
 * taken by weft__waiter_wake and weft__enqueue. None is ever held across a
 * switch.
 * Must never: call a watcher or wake a waiter after the memory it names may
 * be gone (see each function's contract). */
#ifndef WEFT_SCHED_COORD_H
#define WEFT_SCHED_COORD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/runtime.h"
#include "sched/sched.h"

/* ---- A task's coordination state (task_ext.c) ----------------------------- */

struct weft__watch;

/* Beside each descriptor, not in it (task_ext.c says why). Empty again
 * before its task is marked finished. */
struct weft__task_ext {
    /* Completion watchers (join.c), under the task's stripe lock. */
    struct weft__watch *watchers;
    /* The group it is a live child of, NULL once it finished (group.c);
     * its links in that group's live list, under the group's lock. */
    struct weft_group *_Atomic group;
    struct weft__task *group_prev, *group_next;
    /* The groups it created and has not destroyed, innermost (newest)
     * first, under group.c's tree lock. */
    struct weft_group *groups;
};

/* t's entry, made on first use: NULL if that needs memory there is none
 * of. Not on a switch path. */
struct weft__task_ext *weft__task_ext(struct weft__task *t);
/* t's entry, which a TASK_WATCHED, TASK_IN_GROUP or TASK_OWNS_GROUPS bit
 * says exists. */
struct weft__task_ext *weft__task_ext_get(struct weft__task *t);

/* ---- Completion watchers (join.c) ---------------------------------------- */

/* A watcher of one task's completion, for waits that do not consume the
 * handle (wait_any) or that watch many tasks at once (gather's fail-fast
 * mode). fn runs once, on the thread that finishes the task, under the
 * task's stripe lock and before anyone can see the task finished: it may
 * read t->result and wake waiters, nothing slower. */
struct weft__watch {
    struct weft__watch *next, *prev;
    struct weft__task *task;
    void (*fn)(struct weft__watch *wa, struct weft__task *t);
    bool linked; /* under the stripe lock */
};

/* The stripe lock of t (lock 1 above). */
pthread_mutex_t *weft__task_lock(struct weft__task *t);

/* Watch the task named by h (not detached): 0 if wa is now linked, 1 if
 * the task already finished (wa not linked), -EINVAL if h is zero, stale,
 * or detached, -ENOMEM. */
int weft__task_watch(struct weft__runtime *rt, weft_task_t h,
                     struct weft__watch *wa);
/* Unlink wa if it is still linked. Safe after fn ran. */
void weft__task_unwatch(struct weft__watch *wa);

/* ---- Claimed joins (join.c) --------------------------------------------- */

/* Claim the task named by h for joining, as weft_join does (the handle's
 * checks, the group rule), and return it in *out. 0, -EINVAL, -EPERM; fn
 * names the caller in misuse messages. */
int weft__task_claim(struct weft__runtime *rt, struct weft__worker *w,
                     weft_task_t h, const char *fn, struct weft__task **out);
/* Give a claim back (the handle is live again). */
void weft__task_unclaim(struct weft__task *t);
/* Wait for a claimed task to finish, then store its result and free it:
 * 0. kind WAIT_DIRECT ends early at deadline, the deadline scope or a
 * cancel (-ETIMEDOUT, -ECANCELED: the claim is kept); WAIT_UNCANCELLABLE
 * waits whatever happens (deadline ignored). *wp: the caller's worker,
 * updated. Fibers and plain threads. */
int weft__join_claimed(struct weft__runtime *rt, struct weft__worker **wp,
                       struct weft__task *t, uint32_t kind, uint64_t deadline,
                       intptr_t *result);
/* Link wa to t, which the caller claimed (so it cannot be freed) and
 * whose entry exists (weft__task_ext): as weft__task_watch, 0 or 1. */
int weft__task_watch_claimed(struct weft__task *t, struct weft__watch *wa);

/* ---- Cancelling (cancel.c) ------------------------------------------------ */

/* Cancel t, which cannot be freed meanwhile (claimed, or a live child held
 * under its group's lock): mark it TASK_CANCELLED, end its current or next
 * wait with -ECANCELED, and cancel the groups it created. No stripe lock
 * held by the caller; not under the tree lock (group.c has its own). */
void weft__cancel_live(struct weft__runtime *rt, struct weft__task *t);

/* ---- Futures (future.c) ----------------------------------------------------- */

/* A wait on a future: set() unlinks it and ends (waiter, seq) with
 * outcome. Lives in the waiter's frame; under the future's lock. */
struct weft__fwait {
    struct weft__fwait *next, *prev;
    struct weft__waiter *waiter;
    uint32_t seq;
    int32_t outcome;
    bool linked;
};

/* 0 if f is a live future, else -EINVAL (with a misuse message for fn). */
int weft__future_check(weft_future_t *f, const char *fn);
/* Register fw (waiter, seq, outcome filled in): 0 if linked (the wait
 * then counts against destroy until unwatch), 1 if f is already set
 * (nothing registered), -EINVAL if f is not a live future. */
int weft__future_watch(weft_future_t *f, struct weft__fwait *fw);
/* Unlink fw if still linked, and end its count. */
void weft__future_unwatch(weft_future_t *f, struct weft__fwait *fw);

/* ---- Destroyed objects (quarantine.c) ---------------------------------------- */

/* Free obj with release(obj), at once in release builds, later in debug
 * builds, so that calls on it after destroy still find its dead magic. */
void weft__quarantine(void *obj, void (*release)(void *obj));

/* ---- Groups (group.c) ------------------------------------------------------ */

/* Cancel every group t created (t cannot be freed meanwhile). Takes the
 * tree lock. */
void weft__groups_cancel_owned(struct weft__runtime *rt, struct weft__task *t);
/* From the finisher, before the task is marked finished: t was a child
 * (TASK_IN_GROUP) and has just returned; account for it in its group. */
void weft__group_child_finished(struct weft__runtime *rt,
                                struct weft__task *t);
/* From the finisher: t created groups (TASK_OWNS_GROUPS); any it did not
 * destroy lose their owner (cancelling t can no longer reach them). */
void weft__group_owner_finished(struct weft__task *t);
/* The joining rule (weft/coord.h): may self join t? */
bool weft__group_may_join(struct weft__task *self, struct weft__task *t);

#endif /* WEFT_SCHED_COORD_H */
