/* runtime/watchdog.c: the watchdog: reports a fiber that holds its worker
 * longer than cfg.watchdog_ns without giving it up. Entry points:
 * weft__watchdog_start, weft__watchdog_stop.
 *
 * Workers keep, for anyone to read, a switch counter bumped at every switch
 * and every yield, and the task switched to last (sched/sched.h:
 * switches, running). A thread of its own samples them every quarter
 * threshold. A worker whose counter has not moved since the sample that
 * first saw its current value, for at least the threshold, while a task is
 * running on it, has had that task for at least that long: the task is
 * reported once per stall, and once more when the counter moves again.
 * Nothing is added to the switch path; the cost is this thread's wake-ups.
 *
 * The counter and the running task are written with relaxed stores and read
 * with relaxed loads: they carry no data, only "something happened", and a
 * torn pair (a new counter with the old task) lasts one sample at most.
 * The task's identity is read as runtime/dump.c explains.
 *
 * Must never: touch a worker's state beyond those two atomics, or report a
 * fiber that switched within the threshold. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/runtime.h"
#include "sched/sched.h"

/* Samples are at least 1 ms apart, however fine the threshold. */
#define MIN_PERIOD_NS 1000000ull

/* What the last samples saw of one worker. */
struct watch {
    uint64_t switches;       /* the counter's value */
    struct weft__task *task; /* the task running, NULL: none */
    uint64_t since;          /* when a sample first saw this pair */
    bool reported;           /* this stall was reported */
    uint32_t index, gen;     /* the reported task, for the second report */
};

struct weft__watchdog {
    struct weft__runtime *rt;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; signalled by stop */
    bool stop;           /* under lock */
    uint64_t threshold, period;
    struct watch *watch; /* one per worker; the watchdog thread's alone */
};

static void ms_text(uint64_t ns, char *buf, size_t len)
{
    if (ns < 10000000000ull)
        snprintf(buf, len, "%" PRIu64 " ms", ns / 1000000u);
    else
        snprintf(buf, len, "%.1f s", (double)ns / 1e9);
}

static void sample(struct weft__watchdog *d, uint64_t now)
{
    struct weft__runtime *rt = d->rt;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct weft__worker *w = rt->workers[i];
        struct watch *s = &d->watch[i];
        uint64_t switches =
            atomic_load_explicit(&w->switches, memory_order_relaxed);
        struct weft__task *task =
            atomic_load_explicit(&w->running, memory_order_relaxed);
        if (switches != s->switches || task != s->task) {
            if (s->reported) {
                char held[32];
                ms_text(now - s->since, held, sizeof held);
                weft__warn("watchdog: task %" PRIu32 ".%" PRIu32
                           " gave worker %u back after about %s",
                           s->index + 1, s->gen, i, held);
            }
            s->switches = switches;
            s->task = task;
            s->since = now;
            s->reported = false;
            continue;
        }
        if (!task || s->reported || now - s->since < d->threshold)
            continue;
        struct weft__task_info info;
        if (!weft__task_read(task, &info))
            continue; /* it finished as we looked: the stall is over */
        /* Still the same stall once its identity was read? */
        if (atomic_load_explicit(&w->switches, memory_order_relaxed) !=
            switches)
            continue;
        char who[320], held[32], limit[32];
        weft__task_describe(&info, who, sizeof who);
        ms_text(now - s->since, held, sizeof held);
        ms_text(d->threshold, limit, sizeof limit);
        weft__warn("watchdog: %s has held worker %u for at least %s without "
                   "yielding (threshold %s): yield in long loops, or move "
                   "blocking work to weft_run_blocking",
                   who, i, held, limit);
        s->reported = true;
        s->index = info.index;
        s->gen = info.gen;
    }
}

static void *watchdog_main(void *arg)
{
    struct weft__watchdog *d = arg;
    pthread_mutex_lock(&d->lock);
    uint64_t next = weft_now_ns() + d->period;
    while (!d->stop) {
        struct timespec ts = {.tv_sec = (time_t)(next / 1000000000u),
                              .tv_nsec = (long)(next % 1000000000u)};
        int r = pthread_cond_timedwait(&d->cond, &d->lock, &ts);
        if (d->stop) {
            /* A last look: the stalls that ended since say so. */
            sample(d, weft_now_ns());
            break;
        }
        uint64_t now = weft_now_ns();
        if (r != ETIMEDOUT && now < next)
            continue; /* spurious */
        pthread_mutex_unlock(&d->lock);
        sample(d, now);
        pthread_mutex_lock(&d->lock);
        next = now + d->period;
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

int weft__watchdog_start(struct weft__runtime *rt)
{
    uint64_t threshold = rt->cfg.watchdog_ns;
    if (threshold == UINT64_MAX)
        return 0;
    struct weft__watchdog *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    d->watch = calloc(rt->nworkers, sizeof *d->watch);
    if (!d->watch) {
        free(d);
        return -ENOMEM;
    }
    d->rt = rt;
    d->threshold = threshold;
    d->period = threshold / 4 < MIN_PERIOD_NS ? MIN_PERIOD_NS : threshold / 4;
    uint64_t now = weft_now_ns();
    for (unsigned i = 0; i < rt->nworkers; i++)
        d->watch[i].since = now;
    pthread_mutex_init(&d->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cond, &ca);
    pthread_condattr_destroy(&ca);
    int err = pthread_create(&d->thread, NULL, watchdog_main, d);
    if (err) {
        pthread_cond_destroy(&d->cond);
        pthread_mutex_destroy(&d->lock);
        free(d->watch);
        free(d);
        return -err;
    }
    pthread_setname_np(d->thread, "weft-watchdog");
    rt->watchdog = d;
    return 0;
}

void weft__watchdog_stop(struct weft__runtime *rt)
{
    struct weft__watchdog *d = rt->watchdog;
    if (!d)
        return;
    pthread_mutex_lock(&d->lock);
    d->stop = true;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
    free(d->watch);
    free(d);
    rt->watchdog = NULL;
}
