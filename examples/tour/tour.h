/* examples/tour/tour.h: the little the tour's programs share, so that each
 * program reads like the Python beside it.
 *
 *  - tour_sleep(s) is `await asyncio.sleep(s)`: the fiber waits, its worker
 *    runs others. tour_block(s) is `time.sleep(s)`: it blocks the thread.
 *    Both scale their seconds by WEFT_TOUR_SCALE (default 1), so that the
 *    tests run the tour in a fraction of the time: WEFT_TOUR_SCALE=0.1
 *    turns every second into 100 ms.
 *  - tour_seconds() is time.perf_counter() since main started, in the
 *    tour's seconds (unscaled), so that printed times read the same at any
 *    scale.
 *  - tour_run(main) is asyncio.run(main()), on one worker, as asyncio runs
 *    one event loop (WEFT_WORKERS=N runs the same program on N workers).
 *    With WEFT_TOUR_TIMES=1 it also reports on stderr how long main took,
 *    in the tour's seconds: the tests check that waits overlapped.
 *
 * Everything else in the tour is plain weft, as a user would write it. */
#ifndef WEFT_TOUR_H
#define WEFT_TOUR_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <weft.h>

static inline double tour_scale(void)
{
    static double scale;
    if (scale == 0) {
        const char *s = getenv("WEFT_TOUR_SCALE");
        char *end;
        double v = s ? strtod(s, &end) : 1.0;
        if (!s || *end || !(v > 0 && v <= 1000)) {
            if (s)
                fprintf(stderr,
                        "tour: ignoring WEFT_TOUR_SCALE=%s (want a "
                        "number above 0)\n",
                        s);
            v = 1.0;
        }
        scale = v;
    }
    return scale;
}

/* Tour seconds to real nanoseconds. */
static inline uint64_t tour_ns(double seconds)
{
    return (uint64_t)(seconds * tour_scale() * 1e9);
}

/* await asyncio.sleep(seconds): 0, or -ECANCELED / -ETIMEDOUT if the wait
 * was cut short. */
static inline int tour_sleep(double seconds)
{
    return weft_sleep_ns(tour_ns(seconds));
}

/* time.sleep(seconds): blocks the calling thread. */
static inline void tour_block(double seconds)
{
    uint64_t ns = tour_ns(seconds);
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static uint64_t tour_start_ns, tour_end_ns;
static weft_fn tour_main_fn;

/* Seconds since main started, in tour seconds. */
static inline double tour_seconds(void)
{
    return (double)(weft_now_ns() - tour_start_ns) / 1e9 / tour_scale();
}

static inline intptr_t tour_main(void *arg)
{
    tour_start_ns = weft_now_ns();
    intptr_t result = tour_main_fn(arg);
    tour_end_ns = weft_now_ns();
    return result;
}

/* asyncio.run(main()): 0 if main returned 0, 1 otherwise. */
static inline int tour_run(weft_fn main_fn)
{
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 1;
    tour_main_fn = main_fn;
    intptr_t result = 0;
    int err = weft_run(&cfg, tour_main, NULL, &result);
    if (err) {
        fprintf(stderr, "weft_run: %s\n", strerror(-err));
        return 1;
    }
    fflush(stdout);
    if (getenv("WEFT_TOUR_TIMES"))
        fprintf(stderr, "tour: main took %.3f s\n",
                (double)(tour_end_ns - tour_start_ns) / 1e9 / tour_scale());
    return result == 0 ? 0 : 1;
}

#endif /* WEFT_TOUR_H */
