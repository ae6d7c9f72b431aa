/* sched/group.c: task groups (asyncio.TaskGroup, Trio's nurseries,
 * libdill's bundles). Entry points: weft_group_create/spawn/wait/cancel/
 * errors/destroy, and the hooks of sched/coord.h: weft__group_child_
 * finished and weft__group_owner_finished (from the finisher), weft__
 * groups_cancel_owned (from cancel.c), weft__group_may_join (from join).
 *
 * A child is linked into its group's live list by weft__spawn's prepare
 * hook, under the group's lock, before it can run: so it can neither run
 * nor finish unaccounted, and a cancel of the group reaches it even before
 * it first runs. When it returns, the finisher (still before anyone can
 * see it finished, so before its descriptor can be freed) unlinks it,
 * records a failure, and wakes the group's waiters once the last child is
 * gone. A live child's descriptor therefore never vanishes while it is on
 * the list: holding the group's lock makes it safe to cancel.
 *
 * A task's group, its links in the live list and its list of created
 * groups are in its entry beside the descriptor (task_ext.c).
 *
 * Cancellation spreads down the tree of groups: cancelling a task cancels
 * the groups it created, whose children are cancelled, and so on. The walk
 * holds the tree lock, which keeps every task's list of created groups
 * and the groups on it in place, and takes group locks from ancestor to
 * descendant (lock order: sched/coord.h).
 *
 * The first failure (a child returning < 0, other than -ECANCELED with
 * TASK_CANCELLED set) cancels the siblings and the owner's current wait, as
 * asyncio and Trio do, so that a body blocked on something the failed
 * child should have provided does not hang; the owner gets only the
 * one-shot cancel, not the TASK_CANCELLED mark, so its own group (if it is
 * a child) still sees the error it returns.
 *
 * Failures are stored in an array that group_spawn grows, so that it always
 * has room for every live child's failure: the finisher never allocates.
 * Must never: free a group that a child, a waiter or a canceller can still
 * reach, or let a wait return while a child runs. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "sched/coord.h"
#include "sched/sched.h"

#define GROUP_ALIVE 0x47524f55u /* "GROU" */
#define GROUP_DEAD 0x44454144u  /* "DEAD" */

/* A wait for the group to empty, in the waiter's frame; under the lock. */
struct gwait {
    struct gwait *next, *prev;
    struct weft__waiter *waiter;
    uint32_t seq;
    bool linked;
};

struct weft_group {
    _Atomic uint32_t magic; /* read without the lock, to refuse bad input */
    pthread_mutex_t lock;
    struct weft__runtime *rt;
    /* Under the tree lock: the task that created it (NULL: a plain thread,
     * or it finished), and the group it created before this one. */
    struct weft__task *owner;
    struct weft_group *owner_next;
    /* Under lock: */
    struct weft__task *live; /* through the entries' group_prev/next */
    size_t nlive;
    struct gwait *waiters;
    unsigned nwaiting;       /* waits entered and not returned */
    unsigned owner_waits;    /* of those, the owner's */
    bool cancelled;
    bool closed;             /* a wait returned: no more children */
    weft_group_error_t *errors;
    size_t nerrors, errcap;  /* errcap >= nerrors + nlive, always */
};

static pthread_mutex_t tree_lock = PTHREAD_MUTEX_INITIALIZER;

static int check(weft_group_t *g, const char *fn)
{
    if (!g ||
        atomic_load_explicit(&g->magic, memory_order_relaxed) != GROUP_ALIVE) {
        weft__misuse(fn, "not a live group (NULL, destroyed, or not a "
                         "group)");
        return -EINVAL;
    }
    return 0;
}

/* Lock g and check it again: a racing destroy has marked it dead. */
static int lock_alive(weft_group_t *g, const char *fn)
{
    if (check(g, fn) < 0)
        return -EINVAL;
    pthread_mutex_lock(&g->lock);
    if (atomic_load_explicit(&g->magic, memory_order_relaxed) != GROUP_ALIVE) {
        pthread_mutex_unlock(&g->lock);
        weft__misuse(fn, "the group was destroyed");
        return -EINVAL;
    }
    return 0;
}

/* ---- Cancellation down the tree ------------------------------------------ */

static void cancel_group_locked(weft_group_t *g);

/* Tree lock held; t cannot vanish (a live child under its group's lock,
 * or pinned by the caller). */
static void cancel_task_locked(struct weft__runtime *rt, struct weft__task *t)
{
    /* Release: published to the task with the cancel below (cancel.c). */
    uint64_t st = atomic_fetch_or_explicit(&t->state, TASK_CANCELLED,
                                           memory_order_release);
    weft__task_cancel(rt, t);
    if (st & TASK_OWNS_GROUPS) {
        for (weft_group_t *g = weft__task_ext_get(t)->groups; g;
             g = g->owner_next) {
            pthread_mutex_lock(&g->lock);
            cancel_group_locked(g);
            pthread_mutex_unlock(&g->lock);
        }
    }
}

/* Tree lock and g's lock held. */
static void cancel_group_locked(weft_group_t *g)
{
    g->cancelled = true;
    for (struct weft__task *c = g->live; c;
         c = weft__task_ext_get(c)->group_next)
        cancel_task_locked(g->rt, c);
}

void weft__groups_cancel_owned(struct weft__runtime *rt, struct weft__task *t)
{
    (void)rt;
    pthread_mutex_lock(&tree_lock);
    for (weft_group_t *g = weft__task_ext_get(t)->groups; g;
         g = g->owner_next) {
        pthread_mutex_lock(&g->lock);
        cancel_group_locked(g);
        pthread_mutex_unlock(&g->lock);
    }
    pthread_mutex_unlock(&tree_lock);
}

/* The first failure: cancel the siblings, the groups the owner created
 * inside this one (created later, so earlier on its list), and the owner's
 * current wait, unless that wait is on this group (it ends anyway once the
 * cancelled siblings are gone, and a cancel it cannot take would stay
 * pending for the owner's next wait). Tree lock and g's lock held. */
static void fail_locked(weft_group_t *g)
{
    cancel_group_locked(g);
    struct weft__task *owner = g->owner;
    if (!owner || g->owner_waits)
        return;
    for (weft_group_t *inner = weft__task_ext_get(owner)->groups;
         inner && inner != g; inner = inner->owner_next) {
        pthread_mutex_lock(&inner->lock);
        cancel_group_locked(inner);
        pthread_mutex_unlock(&inner->lock);
    }
    /* The owner is alive: it clears g->owner under the tree lock before
     * its descriptor can be freed (weft__group_owner_finished). */
    weft__task_cancel(g->rt, owner);
}

/* ---- Children ------------------------------------------------------------- */

static void wake_waiters(weft_group_t *g)
{
    struct gwait *n;
    while ((n = g->waiters) != NULL) {
        g->waiters = n->next;
        if (n->next)
            n->next->prev = NULL;
        n->linked = false;
        /* Not touched again: its waiter returns once it has our lock. */
        weft__waiter_wake(n->waiter, n->seq, 0);
    }
}

/* weft__spawn's hook, under g's lock: the child is linked before it can
 * run. */
static int prepare_child(struct weft__task *t, void *ctx)
{
    weft_group_t *g = ctx;
    struct weft__task_ext *x = weft__task_ext(t);
    if (!x)
        return -ENOMEM;
    /* Relaxed: weft__enqueue publishes the new task with all its fields,
     * and its entry with them. */
    atomic_fetch_or_explicit(&t->state, TASK_IN_GROUP, memory_order_relaxed);
    atomic_store_explicit(&x->group, g, memory_order_relaxed);
    x->group_prev = NULL;
    x->group_next = g->live;
    if (g->live)
        weft__task_ext_get(g->live)->group_prev = t;
    g->live = t;
    g->nlive++;
    return 0;
}

void weft__group_child_finished(struct weft__runtime *rt,
                                struct weft__task *t)
{
    (void)rt;
    struct weft__task_ext *x = weft__task_ext_get(t);
    weft_group_t *g = atomic_load_explicit(&x->group, memory_order_relaxed);
    /* Acquire: a TASK_CANCELLED set before the cancel that made the task
     * return -ECANCELED is seen. */
    uint64_t st = atomic_load_explicit(&t->state, memory_order_acquire);
    intptr_t r = t->result;
    bool failed = r < 0 && !(r == -ECANCELED && (st & TASK_CANCELLED));
    if (failed)
        pthread_mutex_lock(&tree_lock);
    pthread_mutex_lock(&g->lock);
    if (x->group_prev)
        weft__task_ext_get(x->group_prev)->group_next = x->group_next;
    else
        g->live = x->group_next;
    if (x->group_next)
        weft__task_ext_get(x->group_next)->group_prev = x->group_prev;
    x->group_prev = x->group_next = NULL;
    atomic_store_explicit(&x->group, NULL, memory_order_relaxed);
    g->nlive--;
    if (failed) {
        g->errors[g->nerrors++] = (weft_group_error_t){
            .task_id = weft__task_handle(t, (uint32_t)(st >> 32)),
            .error = r,
        };
        if (g->nerrors == 1)
            fail_locked(g);
    }
    if (g->nlive == 0)
        wake_waiters(g);
    pthread_mutex_unlock(&g->lock);
    if (failed)
        pthread_mutex_unlock(&tree_lock);
}

void weft__group_owner_finished(struct weft__task *t)
{
    unsigned left = 0;
    struct weft__task_ext *x = weft__task_ext_get(t);
    pthread_mutex_lock(&tree_lock);
    weft_group_t *g = x->groups;
    while (g) {
        weft_group_t *next = g->owner_next;
        g->owner = NULL;
        g->owner_next = NULL;
        g = next;
        left++;
    }
    x->groups = NULL;
    pthread_mutex_unlock(&tree_lock);
    if (left)
        weft__misuse("weft_group_destroy",
                     "a task finished without destroying the groups it "
                     "created: cancelling it can no longer reach them");
}

/* The group self is a live child of, or NULL. */
static weft_group_t *group_of(struct weft__task *self)
{
    uint64_t st = atomic_load_explicit(&self->state, memory_order_relaxed);
    if (!(st & TASK_IN_GROUP))
        return NULL;
    return atomic_load_explicit(&weft__task_ext_get(self)->group,
                                memory_order_relaxed);
}

bool weft__group_may_join(struct weft__task *self, struct weft__task *t)
{
    /* t is claimed by the caller, so its entry stays its own; its group
     * pointer is compared, never followed (t may finish meanwhile, and
     * then the rule no longer applies). */
    weft_group_t *g =
        atomic_load_explicit(&weft__task_ext_get(t)->group,
                             memory_order_relaxed);
    if (!g)
        return true;
    weft_group_t *mine = group_of(self);
    if (!mine || mine == g)
        return true;
    bool owns = false;
    if (atomic_load_explicit(&self->state, memory_order_relaxed) &
        TASK_OWNS_GROUPS) {
        pthread_mutex_lock(&tree_lock);
        for (weft_group_t *o = weft__task_ext_get(self)->groups; o && !owns;
             o = o->owner_next)
            owns = o == g;
        pthread_mutex_unlock(&tree_lock);
    }
    return owns;
}

/* ---- The API ------------------------------------------------------------- */

WEFT_API int weft_group_create(weft_group_t **out)
{
    if (!out) {
        weft__misuse("weft_group_create", "out is NULL");
        return -EINVAL;
    }
    struct weft__runtime *rt = weft__runtime();
    if (!rt)
        return -ESRCH;
    weft_group_t *g = calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    pthread_mutex_init(&g->lock, NULL);
    g->rt = rt;
    atomic_init(&g->magic, GROUP_ALIVE);
    struct weft__task *self = weft__task_self(weft__worker_self());
    struct weft__task_ext *x = self ? weft__task_ext(self) : NULL;
    if (self && !x) {
        pthread_mutex_destroy(&g->lock);
        free(g);
        return -ENOMEM;
    }
    if (self) {
        pthread_mutex_lock(&tree_lock);
        g->owner = self;
        g->owner_next = x->groups;
        x->groups = g;
        /* Relaxed: cancellers read the list under the tree lock; the
         * finisher runs after this task, on its behalf. */
        atomic_fetch_or_explicit(&self->state, TASK_OWNS_GROUPS,
                                 memory_order_relaxed);
        pthread_mutex_unlock(&tree_lock);
    }
    *out = g;
    return 0;
}

static int group_spawn(weft_group_t *g, weft_task_t *task, weft_fn fn,
                       void *arg, const weft_spawn_opts_t *opts, void *site)
{
    struct weft__runtime *rt = weft__runtime();
    if (!rt)
        return -ESRCH;
    if (lock_alive(g, "weft_group_spawn") < 0)
        return -EINVAL;
    int r = 0;
    if (g->rt != rt) {
        weft__misuse("weft_group_spawn", "the group belongs to a runtime "
                                         "that stopped");
        r = -EINVAL;
    } else if (g->closed) {
        weft__misuse("weft_group_spawn", "a wait on the group returned: it "
                                         "is closed");
        r = -EPIPE;
    } else if (g->cancelled) {
        r = -ECANCELED;
    } else if (g->errcap < g->nerrors + g->nlive + 1) {
        size_t cap = 2 * (g->nerrors + g->nlive + 1);
        if (cap < 16)
            cap = 16;
        weft_group_error_t *e = realloc(g->errors, cap * sizeof *e);
        if (!e)
            r = -ENOMEM;
        else {
            g->errors = e;
            g->errcap = cap;
        }
    }
    if (r == 0)
        r = weft__spawn(task, fn, arg, opts, site, prepare_child, g);
    pthread_mutex_unlock(&g->lock);
    return r;
}

WEFT_API int weft_group_spawn(weft_group_t *g, weft_task_t *task, weft_fn fn,
                              void *arg)
{
    return group_spawn(g, task, fn, arg, NULL, __builtin_return_address(0));
}

WEFT_API int weft_group_spawn_ex(weft_group_t *g, weft_task_t *task,
                                 weft_fn fn, void *arg,
                                 const weft_spawn_opts_t *opts)
{
    return group_spawn(g, task, fn, arg, opts, __builtin_return_address(0));
}

/* Wait (lock held) until the group empties or the wait ends otherwise;
 * returns with the lock held. */
static int32_t wait_locked(weft_group_t *g, struct weft__worker **wp,
                           struct weft__waiter *wt, uint32_t kind,
                           uint64_t deadline)
{
    struct gwait n = {.waiter = wt, .prev = NULL, .next = g->waiters};
    n.seq = weft__waiter_begin(wt, kind, "group");
    if (n.next)
        n.next->prev = &n;
    g->waiters = &n;
    n.linked = true;
    pthread_mutex_unlock(&g->lock);
    int32_t r = weft__waiter_block(wp, wt, n.seq, deadline);
    pthread_mutex_lock(&g->lock);
    if (n.linked) {
        if (n.prev)
            n.prev->next = n.next;
        else
            g->waiters = n.next;
        if (n.next)
            n.next->prev = n.prev;
    }
    return r;
}

WEFT_API int weft_group_wait_until(weft_group_t *g, uint64_t deadline_ns)
{
    if (check(g, "weft_group_wait") < 0)
        return -EINVAL;
    struct weft__worker *w = weft__worker_self();
    struct weft__task *self = weft__task_self(w);
    if (self && group_of(self) == g) {
        weft__misuse("weft_group_wait", "a child cannot wait for its own "
                                        "group: it would wait for itself");
        return -EDEADLK;
    }
    struct weft__waiter *wt = weft__waiter_self(w);
    bool is_owner = false;
    if (self) {
        pthread_mutex_lock(&tree_lock);
        is_owner = g->owner == self;
        pthread_mutex_unlock(&tree_lock);
    }
    if (lock_alive(g, "weft_group_wait") < 0)
        return -EINVAL;
    g->nwaiting++;
    g->owner_waits += is_owner;
    int32_t r = 0;
    if (g->nlive) {
        r = wait_locked(g, &w, wt, WAIT_DIRECT, deadline_ns);
        if (r < 0 && g->nlive) {
            /* Cut short: the children go too, and we still wait for them
             * (no child outlives its group). */
            pthread_mutex_unlock(&g->lock);
            pthread_mutex_lock(&tree_lock);
            pthread_mutex_lock(&g->lock);
            cancel_group_locked(g);
            pthread_mutex_unlock(&tree_lock);
            while (g->nlive)
                wait_locked(g, &w, wt, WAIT_UNCANCELLABLE, UINT64_MAX);
        }
    }
    g->closed = true;
    int ret = 0;
    if (g->nerrors) {
        intptr_t e = g->errors[0].error;
        ret = e < INT_MIN ? INT_MIN : (int)e;
    } else if (r < 0) {
        ret = r;
    } else if (g->cancelled) {
        ret = -ECANCELED;
    }
    g->nwaiting--;
    g->owner_waits -= is_owner;
    pthread_mutex_unlock(&g->lock);
    return ret;
}

WEFT_API int weft_group_wait(weft_group_t *g)
{
    return weft_group_wait_until(g, UINT64_MAX);
}

WEFT_API int weft_group_cancel(weft_group_t *g)
{
    if (check(g, "weft_group_cancel") < 0)
        return -EINVAL;
    pthread_mutex_lock(&tree_lock);
    if (lock_alive(g, "weft_group_cancel") < 0) {
        pthread_mutex_unlock(&tree_lock);
        return -EINVAL;
    }
    cancel_group_locked(g);
    pthread_mutex_unlock(&g->lock);
    pthread_mutex_unlock(&tree_lock);
    return 0;
}

WEFT_API int weft_group_errors(weft_group_t *g, weft_group_error_t *out,
                               size_t cap)
{
    if (cap && !out) {
        weft__misuse("weft_group_errors", "out is NULL");
        return -EINVAL;
    }
    if (lock_alive(g, "weft_group_errors") < 0)
        return -EINVAL;
    size_t n = g->nerrors < cap ? g->nerrors : cap;
    if (n)
        memcpy(out, g->errors, n * sizeof *out);
    int total = g->nerrors > INT_MAX ? INT_MAX : (int)g->nerrors;
    pthread_mutex_unlock(&g->lock);
    return total;
}

static void release(void *p)
{
    weft_group_t *g = p;
    pthread_mutex_destroy(&g->lock);
    free(g->errors);
    free(g);
}

WEFT_API int weft_group_destroy(weft_group_t *g)
{
    if (check(g, "weft_group_destroy") < 0)
        return -EINVAL;
    pthread_mutex_lock(&tree_lock);
    if (lock_alive(g, "weft_group_destroy") < 0) {
        pthread_mutex_unlock(&tree_lock);
        return -EINVAL;
    }
    if (g->nlive || g->nwaiting) {
        pthread_mutex_unlock(&g->lock);
        pthread_mutex_unlock(&tree_lock);
        weft__misuse("weft_group_destroy", "children are alive or waits on "
                                           "it have not returned");
        return -EBUSY;
    }
    if (g->owner) {
        weft_group_t **pp = &weft__task_ext_get(g->owner)->groups;
        while (*pp != g)
            pp = &(*pp)->owner_next;
        *pp = g->owner_next;
    }
    atomic_store_explicit(&g->magic, GROUP_DEAD, memory_order_relaxed);
    pthread_mutex_unlock(&g->lock);
    pthread_mutex_unlock(&tree_lock);
    weft__quarantine(g, release);
    return 0;
}
