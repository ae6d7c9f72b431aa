/* sched/wait_any.c: waiting for the first of many tasks and futures
 * (asyncio.wait with FIRST_COMPLETED). Entry points: weft_wait_any,
 * weft_wait_any_task.
 *
 * One wait (waiter, seq) and one registration per item: a watcher on each
 * task (sched/join.c), a weft__fwait on each future (sched/future.c), each
 * ending the wait with its item's index. The first to end it wins (the
 * wait protocol's CAS); afterwards every registration is withdrawn, each
 * under its own object's lock. An item already done when registered ends
 * the wait at once and stops the registration there, so among items done
 * before the call the lowest index wins. Nothing is consumed.
 * Must never: return before every registration is withdrawn (they live in
 * this call's memory), or report an item that is not done. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "runtime/runtime.h"
#include "sched/coord.h"
#include "sched/sched.h"

/* Small calls keep their registrations on the stack. */
#define STACK_ITEMS 8u

struct node {
    struct weft__watch watch; /* tasks */
    struct weft__fwait fw;    /* futures */
    struct weft__waiter *waiter;
    uint32_t seq;
    int32_t index;
    bool registered;
};

static void task_done(struct weft__watch *wa, struct weft__task *t)
{
    (void)t;
    struct node *n = (struct node *)((char *)wa - offsetof(struct node, watch));
    weft__waiter_wake(n->waiter, n->seq, n->index);
}

static int validate(struct weft__runtime *rt, const weft_waitable_t *items,
                    size_t n)
{
    if (!items || n == 0 || n > INT32_MAX) {
        weft__misuse("weft_wait_any", "items NULL, or n is 0 or above "
                                      "INT32_MAX");
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        switch (items[i].kind) {
        case WEFT_WAITABLE_TASK: {
            if (!rt)
                return -ESRCH;
            struct weft__task *t = weft__task_lookup(rt, items[i].task.id_);
            uint64_t st = t ? atomic_load_explicit(&t->state,
                                                   memory_order_acquire)
                            : 0;
            if (!t || (uint32_t)(st >> 32) != (uint32_t)(items[i].task.id_ >> 32) ||
                !(st & TASK_LIVE) || (st & TASK_DETACHED)) {
                weft__misuse("weft_wait_any", "not a live task handle (zero, "
                                              "spent or detached)");
                return -EINVAL;
            }
            break;
        }
        case WEFT_WAITABLE_FUTURE:
            if (weft__future_check(items[i].future, "weft_wait_any") < 0)
                return -EINVAL;
            break;
        default:
            weft__misuse("weft_wait_any", "an item of unknown kind");
            return -EINVAL;
        }
    }
    return 0;
}

WEFT_API int weft_wait_any(const weft_waitable_t *items, size_t n,
                           uint64_t deadline_ns)
{
    struct weft__runtime *rt = weft__runtime();
    int err = validate(rt, items, n);
    if (err < 0)
        return err;
    struct node local[STACK_ITEMS];
    struct node *nodes = local;
    if (n > STACK_ITEMS) {
        nodes = malloc(n * sizeof *nodes);
        if (!nodes)
            return -ENOMEM;
    }
    struct weft__worker *w = weft__worker_self();
    struct weft__waiter *wt = weft__waiter_self(w);
    uint32_t seq = weft__waiter_begin(wt, WAIT_DIRECT, "wait_any");
    size_t registered = 0;
    for (size_t i = 0; i < n; i++) {
        struct node *nd = &nodes[i];
        nd->waiter = wt;
        nd->seq = seq;
        nd->index = (int32_t)i;
        nd->registered = false;
        int r;
        if (items[i].kind == WEFT_WAITABLE_TASK) {
            nd->watch.fn = task_done;
            r = weft__task_watch(rt, items[i].task, &nd->watch);
        } else {
            nd->fw.waiter = wt;
            nd->fw.seq = seq;
            nd->fw.outcome = (int32_t)i;
            r = weft__future_watch(items[i].future, &nd->fw);
        }
        registered = i + 1;
        if (r == 0) {
            nd->registered = true;
            continue;
        }
        /* Done already (1), or gone stale since validate (-EINVAL: a
         * handle joined by someone else meanwhile). */
        weft__waiter_wake(wt, seq, r == 1 ? (int32_t)i : -EINVAL);
        break;
    }
    int32_t r = weft__waiter_block(&w, wt, seq, deadline_ns);
    for (size_t i = 0; i < registered; i++) {
        if (!nodes[i].registered)
            continue;
        if (items[i].kind == WEFT_WAITABLE_TASK)
            weft__task_unwatch(&nodes[i].watch);
        else
            weft__future_unwatch(items[i].future, &nodes[i].fw);
    }
    if (nodes != local)
        free(nodes);
    return r;
}

WEFT_API int weft_wait_any_task(const weft_task_t *tasks, size_t n,
                                uint64_t deadline_ns)
{
    if (!tasks || n == 0 || n > INT32_MAX) {
        weft__misuse("weft_wait_any_task", "tasks NULL, or n is 0 or above "
                                           "INT32_MAX");
        return -EINVAL;
    }
    weft_waitable_t local[STACK_ITEMS];
    weft_waitable_t *items = local;
    if (n > STACK_ITEMS) {
        items = malloc(n * sizeof *items);
        if (!items)
            return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        items[i] = weft_waitable_task(tasks[i]);
    int r = weft_wait_any(items, n, deadline_ns);
    if (items != local)
        free(items);
    return r;
}
