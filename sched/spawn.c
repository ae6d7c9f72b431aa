/* sched/spawn.c: creating tasks. Entry points: weft_spawn, weft_spawn_ex,
 * weft__spawn (with a hook for groups), weft__spawn_on. A spawn allocates a
 * descriptor (no stack: the task gets one when it first runs) and makes it
 * ready on the spawning worker, or in the injection queue when the caller
 * is a plain thread.
 * Must never: leave a descriptor behind when it fails, or run fn when it
 * reports failure. */
#include <errno.h>

#include "runtime/runtime.h"
#include "sched/sched.h"

static void count_spawn(struct weft__runtime *rt, struct weft__worker *w)
{
    if (w)
        /* Only this worker writes its count; release pairs with the
         * acquire in weft__live_tasks. */
        atomic_store_explicit(
            &w->spawned,
            atomic_load_explicit(&w->spawned, memory_order_relaxed) + 1,
            memory_order_release);
    else
        atomic_fetch_add_explicit(&rt->external_spawned, 1,
                                  memory_order_release);
}

static inline int spawn(weft_task_t *out, weft_fn fn, void *arg,
                        const weft_spawn_opts_t *opts, void *site,
                        int (*prepare)(struct weft__task *t, void *ctx),
                        void *ctx)
{
    struct weft__runtime *rt = weft__runtime();
    if (!rt)
        return -ESRCH;
    if (!fn) {
        weft__misuse("weft_spawn", "fn is NULL");
        return -EINVAL;
    }
    unsigned flags = opts ? opts->flags : 0;
    if (flags & ~WEFT_SPAWN_PINNED) {
        weft__misuse("weft_spawn_ex", "unknown flags");
        return -EINVAL;
    }
    struct weft__worker *w = weft__worker_self();
    if ((flags & WEFT_SPAWN_PINNED) && !w) {
        weft__misuse("weft_spawn_ex",
                     "WEFT_SPAWN_PINNED from a plain thread: no worker to "
                     "pin to");
        return -EPERM;
    }
    if (weft__stack_reserve_check(rt, w) != 0)
        return -ENOMEM;
    struct weft__task *t = weft__task_alloc(rt, w);
    if (!t)
        return -ENOMEM;
    t->fn = fn;
    t->arg = arg;
    t->name = opts ? opts->name : NULL;
    t->spawn_site = site;
    if (flags & WEFT_SPAWN_PINNED) {
        t->flags |= TFLAG_PINNED;
        t->home = (uint16_t)w->index;
    }
    uint64_t st = atomic_load_explicit(&t->state, memory_order_relaxed);
    if (!out)
        atomic_store_explicit(&t->state, st | TASK_DETACHED,
                              memory_order_relaxed);
    if (prepare) {
        int err = prepare(t, ctx);
        if (err) {
            weft__task_free(rt, w, t); /* never queued: nobody saw it */
            return err;
        }
    }
    if (out)
        out->id_ = weft__task_handle(t, (uint32_t)(st >> 32));
    count_spawn(rt, w);
    weft__enqueue(rt, w, t);
    return 0;
}

WEFT_API int weft_spawn(weft_task_t *task, weft_fn fn, void *arg)
{
    return spawn(task, fn, arg, NULL, __builtin_return_address(0), NULL,
                 NULL);
}

WEFT_API int weft_spawn_ex(weft_task_t *task, weft_fn fn, void *arg,
                           const weft_spawn_opts_t *opts)
{
    return spawn(task, fn, arg, opts, __builtin_return_address(0), NULL,
                 NULL);
}

int weft__spawn(weft_task_t *out, weft_fn fn, void *arg,
                const weft_spawn_opts_t *opts, void *site,
                int (*prepare)(struct weft__task *t, void *ctx), void *ctx)
{
    return spawn(out, fn, arg, opts, site, prepare, ctx);
}

int weft__spawn_on(struct weft__runtime *rt, struct weft__worker *self,
                   unsigned worker, weft_fn fn, void *arg)
{
    struct weft__task *t = weft__task_alloc(rt, self);
    if (!t)
        return -ENOMEM;
    t->fn = fn;
    t->arg = arg;
    t->name = "weft parallel helper";
    t->spawn_site = __builtin_return_address(0);
    /* Pinned to its target: it exists to work where its share of the data
     * was first touched. */
    t->flags |= TFLAG_PINNED;
    t->home = (uint16_t)worker;
    uint64_t st = atomic_load_explicit(&t->state, memory_order_relaxed);
    atomic_store_explicit(&t->state, st | TASK_DETACHED, memory_order_relaxed);
    count_spawn(rt, self);
    weft__enqueue(rt, self, t);
    return 0;
}

WEFT_API weft_task_t weft_self(void)
{
    struct weft__worker *w = weft__worker_self();
    struct weft__task *t = weft__task_self(w);
    if (!t)
        return WEFT_TASK_NONE;
    uint64_t st = atomic_load_explicit(&t->state, memory_order_relaxed);
    return (weft_task_t){weft__task_handle(t, (uint32_t)(st >> 32))};
}

WEFT_API uint64_t weft_task_id(weft_task_t task)
{
    return task.id_;
}
