/* tests/support/weft_test.h: what the runtime suites share: how to run a
 * test body as a task, and how much smaller counts get under sanitizers
 * (which slow everything 5-20x; the invariants checked stay the same). */
#ifndef WEFT_TESTS_SUPPORT_H
#define WEFT_TESTS_SUPPORT_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include <weft.h>

/* ThreadSanitizer also caps threads plus fibers alive at once at 8128
 * (each costs it ~800 KB): tests that keep many tasks alive at once stay
 * below that when scaled. */
#if defined(__SANITIZE_THREAD__)
#define WEFT_TEST_SCALE 25
#elif defined(__SANITIZE_ADDRESS__)
#define WEFT_TEST_SCALE 10
#else
#define WEFT_TEST_SCALE 1
#endif
#define SCALED(n) ((n) / WEFT_TEST_SCALE)

/* Run fn(arg) as the main task of a runtime with `workers` workers (0: the
 * default) and return its result; the test fails if the runtime cannot
 * start. */
static inline intptr_t run_with(unsigned workers, weft_fn fn, void *arg)
{
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = workers;
    intptr_t result = -1;
    int err = weft_run(&cfg, fn, arg, &result);
    cr_assert_eq(err, 0, "weft_run failed: %d", err);
    return result;
}

static inline intptr_t run_cfg(const weft_config_t *cfg, weft_fn fn, void *arg)
{
    intptr_t result = -1;
    int err = weft_run(cfg, fn, arg, &result);
    cr_assert_eq(err, 0, "weft_run failed: %d", err);
    return result;
}

/* A small deterministic PRNG for randomized timing (xorshift64). */
static inline uint64_t test_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Burn a few hundred ns, a random amount: shakes up interleavings. */
static inline void random_spin(uint64_t *s)
{
    unsigned n = (unsigned)(test_rand(s) % 256);
    for (volatile unsigned i = 0; i < n; i++)
        ;
}

#endif
