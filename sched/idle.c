/* sched/idle.c: which workers sleep, which search for work, and who wakes
 * whom. Entry points: weft__idle_notify, weft__idle_park,
 * weft__idle_begin_search / end_search, weft__idle_unpark.
 *
 * At most half the workers search (steal) at once, so that one spawn does
 * not wake every core (Go's nmspinning, Tokio's num_searching). A worker
 * woken to look for work is counted as searching by whoever woke it, so a
 * burst of spawns wakes one worker, which wakes the next only when it finds
 * work (Go's "the last spinning thread that finds work wakes another").
 *
 * Notify (after work was made stealable):
 *   N1. If a worker is searching, it will find the work: return. If none is
 *       parked, everyone is busy: return. These two loads carry no fence
 *       after a local run-queue push, so a notify can be missed when it
 *       races with a worker going to sleep; the pushing worker then runs
 *       the task itself, and its next maintenance turn (sched/worker.c)
 *       notifies again while its queue holds more than one task. Pushes to
 *       the injection queue or an inbox pass through a lock or a CAS, a
 *       full barrier, and cannot be missed.
 *   N2. Under idle_lock, pop a sleeper, count it as searching, and unpark
 *       it.
 * Park (a worker found nothing):
 *   P1. Stop searching. Under idle_lock, join the sleepers.
 *   P2. seq_cst fence, then look once more at every place work can appear
 *       (injection queue, inbox, other run queues). If there is any, leave
 *       the sleepers and return: the caller looks again.
 *   P3. Exchange park_state to PARKED; if it was NOTIFIED, an unpark came
 *       after P1: do not sleep.
 *   P4. Wait in the ring until a completion, the next timer, or an unpark
 *       (an eventfd write the ring reads).
 *   P5. park_state = RUNNING. Under idle_lock, leave the sleepers if still
 *       there; if a notifier removed us, we were counted as searching.
 * Unpark (a specific worker): exchange park_state to NOTIFIED; if it was
 * PARKED, wake its ring.
 *
 * Must never: sleep while work it could take is visible, or leave the
 * searching count off by one (a lost searcher stalls stealing). */
#include <errno.h>
#include <stdlib.h>

#include "io/io.h"
#include "runtime/runtime.h"
#include "sched/sched.h"

enum { W_RUNNING = 0, W_PARKED = 1, W_NOTIFIED = 2 };

void weft__idle_unpark(struct weft__runtime *rt, struct weft__worker *w)
{
    (void)rt;
    /* acq_rel: pairs with P3's exchange; whichever comes second sees the
     * other. */
    if (atomic_exchange_explicit(&w->park_state, W_NOTIFIED,
                                 memory_order_acq_rel) == W_PARKED)
        weft__ring_wake(w);
}

void weft__idle_notify(struct weft__runtime *rt)
{
    struct weft__sched *s = rt->sched;
    /* N1 */
    if (atomic_load_explicit(&s->num_searching, memory_order_relaxed) != 0)
        return;
    if (atomic_load_explicit(&s->num_parked, memory_order_relaxed) == 0)
        return;
    /* N2 */
    struct weft__worker *wake = NULL;
    pthread_mutex_lock(&s->idle_lock);
    if (atomic_load_explicit(&s->num_searching, memory_order_relaxed) == 0 &&
        s->nsleepers > 0) {
        unsigned i = s->sleepers[--s->nsleepers];
        s->is_sleeping[i] = false;
        atomic_fetch_sub(&s->num_parked, 1);
        atomic_fetch_add(&s->num_searching, 1);
        wake = rt->workers[i];
    }
    pthread_mutex_unlock(&s->idle_lock);
    if (wake)
        weft__idle_unpark(rt, wake);
}

bool weft__idle_begin_search(struct weft__runtime *rt, struct weft__worker *w)
{
    if (w->searching)
        return true;
    struct weft__sched *s = rt->sched;
    uint32_t n = atomic_load_explicit(&s->num_searching, memory_order_relaxed);
    for (;;) {
        if (2 * n >= rt->nworkers)
            return false;
        if (atomic_compare_exchange_weak(&s->num_searching, &n, n + 1))
            break;
    }
    w->searching = true;
    return true;
}

void weft__idle_end_search(struct weft__runtime *rt, struct weft__worker *w,
                           bool found_work)
{
    if (!w->searching)
        return;
    w->searching = false;
    uint32_t prev = atomic_fetch_sub(&rt->sched->num_searching, 1);
    if (prev == 1 && found_work)
        weft__idle_notify(rt);
}

bool weft__work_visible(struct weft__runtime *rt, struct weft__worker *w)
{
    if (weft__inject_len(&rt->sched->inject))
        return true;
    if (w->pinned.head || !weft__mpsc_empty(&w->inbox))
        return true;
    if (weft__runq_len(&w->runq))
        return true;
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (weft__runq_len(&rt->workers[i]->runq) ||
            atomic_load_explicit(&rt->workers[i]->runnext,
                                 memory_order_relaxed))
            return true;
    return false;
}

static void leave_sleepers(struct weft__sched *s, struct weft__worker *w)
{
    pthread_mutex_lock(&s->idle_lock);
    if (s->is_sleeping[w->index]) {
        for (unsigned i = 0; i < s->nsleepers; i++) {
            if (s->sleepers[i] == w->index) {
                s->sleepers[i] = s->sleepers[--s->nsleepers];
                break;
            }
        }
        s->is_sleeping[w->index] = false;
        atomic_fetch_sub(&s->num_parked, 1);
    } else {
        /* A notifier took us off the list and counted us as searching. */
        w->searching = true;
    }
    pthread_mutex_unlock(&s->idle_lock);
}

void weft__idle_park(struct weft__runtime *rt, struct weft__worker *w,
                     uint64_t deadline)
{
    struct weft__sched *s = rt->sched;
    /* P1 */
    weft__idle_end_search(rt, w, false);
    pthread_mutex_lock(&s->idle_lock);
    s->sleepers[s->nsleepers++] = w->index;
    s->is_sleeping[w->index] = true;
    atomic_fetch_add(&s->num_parked, 1);
    pthread_mutex_unlock(&s->idle_lock);

    /* P2: the fence orders our joining the sleepers before the loads
     * below, against a pusher's push before its notify. */
    atomic_thread_fence(memory_order_seq_cst);
    if (weft__work_visible(rt, w) ||
        atomic_load_explicit(&rt->exiting, memory_order_acquire)) {
        leave_sleepers(s, w);
        return;
    }
    /* P3 */
    if (atomic_exchange_explicit(&w->park_state, W_PARKED,
                                 memory_order_acq_rel) != W_NOTIFIED)
        weft__ring_wait(w, deadline); /* P4 */
    /* P5 */
    atomic_store_explicit(&w->park_state, W_RUNNING, memory_order_release);
    leave_sleepers(s, w);
}

void weft__idle_wake_all(struct weft__runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++)
        weft__idle_unpark(rt, rt->workers[i]);
}

int weft__sched_init(struct weft__runtime *rt)
{
    struct weft__sched *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->sleepers = calloc(rt->nworkers, sizeof *s->sleepers);
    s->is_sleeping = calloc(rt->nworkers, sizeof *s->is_sleeping);
    if (!s->sleepers || !s->is_sleeping) {
        free(s->sleepers);
        free(s->is_sleeping);
        free(s);
        return -ENOMEM;
    }
    weft__inject_init(&s->inject);
    pthread_mutex_init(&s->idle_lock, NULL);
    rt->sched = s;
    return 0;
}

void weft__sched_destroy(struct weft__runtime *rt)
{
    struct weft__sched *s = rt->sched;
    if (!s)
        return;
    weft__inject_destroy(&s->inject);
    pthread_mutex_destroy(&s->idle_lock);
    free(s->sleepers);
    free(s->is_sleeping);
    free(s);
    rt->sched = NULL;
}
