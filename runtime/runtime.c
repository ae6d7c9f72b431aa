/* runtime/runtime.c: starting and stopping the runtime, and the worker
 * threads' lives. Entry points: weft_start, weft_stop, weft_run,
 * weft_block_on.
 *
 * Start-up, in order (a failure at any step undoes the ones before and
 * returns the error, with the cause printed):
 *  1. Load the topology and resolve the configuration.
 *  2. Probe io_uring once, so that "io_uring is disabled" is one clear
 *     message rather than one per worker.
 *  3. Build the shared state: scheduler, stack and task pools, workers,
 *     the blocking pool, and the watchdog's thread.
 *  4. Start one thread per worker. Each pins itself, creates its ring on its
 *     own thread (a single-issuer ring belongs to the thread that made it)
 *     and reports; start waits for all the reports.
 *  5. Publish the runtime (weft__rt) and let the workers run.
 * Shutdown (weft_stop):
 *  1. Mark the runtime stopping and cancel every live task; wait until no
 *     task is alive, cancelling again each second (a task may ignore one
 *     cancel and wait again).
 *  2. Stop the watchdog and the blocking pool (no call can be queued or
 *     running: each has a task waiting for it), wait for a dump in
 *     progress; tell the workers to exit, wake them, join their threads.
 *  3. Unpublish the runtime and free everything.
 * Must never: leave a half-started runtime behind, or return from stop while
 * a task can still run. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/io.h"
#include "runtime/runtime.h"
#include "runtime/topology.h"
#include "sched/sched.h"

struct weft__runtime *_Atomic weft__rt;

/* weft_start and weft_stop run one at a time. */
static pthread_mutex_t lifecycle_lock = PTHREAD_MUTEX_INITIALIZER;

uint64_t weft__live_tasks(struct weft__runtime *rt)
{
    /* Finished counts first: every finish we see was preceded by its spawn,
     * whose count the acquire makes visible to the reads that follow, so
     * spawned - finished never underflows and reads 0 only when every task
     * we know of has finished. */
    uint64_t finished = 0, spawned = 0;
    for (unsigned i = 0; i < rt->nworkers; i++)
        finished += atomic_load_explicit(&rt->workers[i]->finished,
                                         memory_order_acquire);
    for (unsigned i = 0; i < rt->nworkers; i++)
        spawned += atomic_load_explicit(&rt->workers[i]->spawned,
                                        memory_order_acquire);
    spawned += atomic_load_explicit(&rt->external_spawned, memory_order_acquire);
    return spawned - finished;
}

static void *worker_main(void *arg)
{
    struct weft__worker *w = arg;
    struct weft__runtime *rt = w->rt;
    char why[200] = "";
    int err = 0;

    weft__worker_set_self(w);
    if (rt->cfg.pin == WEFT_PIN_DEFAULT && weft__topology_is_real(rt->topo)) {
        int r = weft__topology_pin_self(rt->topo, rt->nworkers, w->index);
        if (r < 0 && w->index == 0)
            weft__warn("could not pin worker threads to their cores (%s); "
                       "running unpinned", strerror(-r));
    }
    err = weft__ring_init(w, rt->cfg.ring_entries, why, sizeof why);
    if (!err)
        err = weft__overflow_thread_init(&w->altstack);

    pthread_mutex_lock(&rt->start_lock);
    if (err && !rt->start_error) {
        rt->start_error = err;
        snprintf(rt->start_reason, sizeof rt->start_reason,
                 "worker %u: %s", w->index, why[0] ? why : strerror(-err));
    }
    rt->started++;
    pthread_cond_broadcast(&rt->start_cond);
    /* Wait for the verdict: every worker up, or start-up abandoned. */
    while (rt->started != UINT32_MAX && !atomic_load(&rt->exiting))
        pthread_cond_wait(&rt->start_cond, &rt->start_lock);
    pthread_mutex_unlock(&rt->start_lock);

    if (!atomic_load(&rt->exiting))
        weft__worker_loop(w);
    /* io/: end what the ring has in flight while this thread, its only
     * submitter, still exists; it is closed later, in destroy(). */
    weft__ring_quiesce(w);

    weft__stack_cache_flush(rt, w);
    weft__task_cache_flush(rt, w);
    /* The ring stays open until destroy() has joined every thread: other
     * threads may still wake this worker (write its eventfd) until then. */
    weft__overflow_thread_exit(w->altstack);
    weft__worker_set_self(NULL);
    return NULL;
}

static void destroy(struct weft__runtime *rt, unsigned nthreads)
{
    /* First the tools: no task is left to wait on the blocking pool, and
     * the watchdog and any dump in progress read the workers and tasks
     * freed below (the runtime is already unpublished). */
    weft__watchdog_stop(rt);
    weft__blocking_stop(rt);
    weft__dump_quiesce();
    if (nthreads) {
        atomic_store(&rt->exiting, true);
        pthread_mutex_lock(&rt->start_lock);
        pthread_cond_broadcast(&rt->start_cond);
        pthread_mutex_unlock(&rt->start_lock);
        weft__idle_wake_all(rt);
        for (unsigned i = 0; i < nthreads; i++)
            pthread_join(rt->workers[i]->thread, NULL);
        /* No thread can wake a worker any more: now close the rings. */
        for (unsigned i = 0; i < nthreads; i++)
            weft__ring_exit(rt->workers[i]);
    }
    if (rt->workers) {
        for (unsigned i = 0; i < rt->nworkers; i++) {
            if (rt->workers[i]) {
                weft__worker_destroy(rt, rt->workers[i]);
                free(rt->workers[i]);
            }
        }
        free(rt->workers);
    }
    weft__overflow_uninstall();
    weft__task_pool_destroy(rt);
    weft__stack_pool_destroy(rt);
    weft__sched_destroy(rt);
    if (rt->topo)
        weft__topology_free(rt->topo);
    pthread_mutex_destroy(&rt->start_lock);
    pthread_cond_destroy(&rt->start_cond);
    free(rt);
}

static int start(const weft_config_t *cfg)
{
    char why[256] = "";
    int err;
    if (weft__worker_self())
        return -EPERM;
    if (weft__runtime())
        return -EBUSY;

    struct weft__runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    pthread_mutex_init(&rt->start_lock, NULL);
    pthread_cond_init(&rt->start_cond, NULL);

    /* Step 1 */
    err = weft__topology_load(cfg ? cfg->topology : NULL, &rt->topo);
    if (err) {
        weft__warn("cannot load the topology '%s': %s",
                   cfg && cfg->topology ? cfg->topology : "(this machine)",
                   strerror(-err));
        goto fail;
    }
    err = weft__config_resolve(cfg, weft__topology_cores(rt->topo), &rt->cfg,
                               why, sizeof why);
    if (err) {
        weft__warn("invalid configuration: %s", why);
        goto fail;
    }
    rt->nworkers = rt->cfg.workers;

    /* Step 2 */
    err = weft__ring_probe(why, sizeof why);
    if (err) {
        weft__warn("io_uring is unusable: %s", why);
        goto fail;
    }

    /* Step 3 */
    if ((err = weft__sched_init(rt)) || (err = weft__task_pool_init(rt)) ||
        (err = weft__stack_pool_init(rt, rt->cfg.stack_size)))
        goto fail;
    rt->workers = calloc(rt->nworkers, sizeof *rt->workers);
    if (!rt->workers) {
        err = -ENOMEM;
        goto fail;
    }
    for (unsigned i = 0; i < rt->nworkers; i++) {
        rt->workers[i] = aligned_alloc(64, (sizeof(struct weft__worker) + 63) &
                                               ~(size_t)63);
        if (!rt->workers[i]) {
            err = -ENOMEM;
            goto fail;
        }
        memset(rt->workers[i], 0, sizeof(struct weft__worker));
        if ((err = weft__worker_init(rt, rt->workers[i], i)))
            goto fail;
    }
    if ((err = weft__overflow_install(rt)))
        goto fail;
    /* The blocking pool (no thread until a call needs one) and the
     * watchdog's thread, which samples the workers built above. */
    if ((err = weft__blocking_start(rt)) || (err = weft__watchdog_start(rt)))
        goto fail;

    /* Step 4 */
    unsigned nthreads = 0;
    for (; nthreads < rt->nworkers; nthreads++) {
        err = -pthread_create(&rt->workers[nthreads]->thread, NULL,
                              worker_main, rt->workers[nthreads]);
        if (err)
            break;
    }
    pthread_mutex_lock(&rt->start_lock);
    while (rt->started < nthreads)
        pthread_cond_wait(&rt->start_cond, &rt->start_lock);
    if (!err)
        err = rt->start_error;
    if (err) {
        pthread_mutex_unlock(&rt->start_lock);
        if (rt->start_reason[0])
            weft__warn("start-up failed: %s", rt->start_reason);
        else
            weft__warn("start-up failed: %s", strerror(-err));
        destroy(rt, nthreads);
        return err;
    }
    /* Step 5 */
    atomic_store_explicit(&weft__rt, rt, memory_order_release);
    rt->started = UINT32_MAX;
    pthread_cond_broadcast(&rt->start_cond);
    pthread_mutex_unlock(&rt->start_lock);
    return 0;

fail:
    destroy(rt, 0);
    return err;
}

WEFT_API int weft_start(const weft_config_t *cfg)
{
    pthread_mutex_lock(&lifecycle_lock);
    int err = start(cfg);
    pthread_mutex_unlock(&lifecycle_lock);
    return err;
}

static void cancel_live(struct weft__task *t, void *ctx)
{
    uint64_t st = atomic_load_explicit(&t->state, memory_order_acquire);
    if ((st & TASK_LIVE) && !(st & TASK_FINISHED))
        weft__task_cancel(ctx, t);
}

WEFT_API int weft_stop(void)
{
    if (weft__worker_self())
        return -EPERM;
    pthread_mutex_lock(&lifecycle_lock);
    struct weft__runtime *rt = weft__runtime();
    if (!rt) {
        pthread_mutex_unlock(&lifecycle_lock);
        return -ESRCH;
    }
    /* Step 1 */
    atomic_store(&rt->stopping, true);
    uint64_t next_cancel = 0;
    for (unsigned ms = 0;; ms++) {
        uint64_t now = weft_now_ns();
        if (now >= next_cancel) {
            weft__task_for_each(rt, cancel_live, rt);
            if (next_cancel) {
                weft__warn("stop is waiting for %" PRIu64 " tasks that "
                           "did not finish when cancelled",
                           weft__live_tasks(rt));
                weft__blocking_warn_running(rt);
            }
            next_cancel = now + 1000000000ull;
        }
        if (weft__live_tasks(rt) == 0)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    /* Steps 2 and 3 */
    atomic_store_explicit(&weft__rt, NULL, memory_order_release);
    destroy(rt, rt->nworkers);
    pthread_mutex_unlock(&lifecycle_lock);
    return 0;
}

WEFT_API int weft_block_on(weft_fn fn, void *arg, intptr_t *result)
{
    if (weft__worker_self())
        return -EPERM;
    if (!weft__runtime())
        return -ESRCH;
    weft_task_t t;
    int err = weft_spawn(&t, fn, arg);
    if (err)
        return err;
    intptr_t r = weft_join(t);
    if (result)
        *result = r;
    return 0;
}

WEFT_API int weft_run(const weft_config_t *cfg, weft_fn main_fn, void *arg,
                      intptr_t *result)
{
    if (!main_fn)
        return -EINVAL;
    int err = weft_start(cfg);
    if (err)
        return err;
    err = weft_block_on(main_fn, arg, result);
    int stop_err = weft_stop();
    return err ? err : stop_err;
}

WEFT_API int weft_worker_count(void)
{
    struct weft__runtime *rt = weft__runtime();
    return rt ? (int)rt->nworkers : -ESRCH;
}

WEFT_API int weft_worker_index(void)
{
    struct weft__worker *w = weft__worker_self();
    return w && w->current ? (int)w->index : -EPERM;
}

WEFT_API int weft_in_fiber(void)
{
    return weft__task_self(weft__worker_self()) != NULL;
}
