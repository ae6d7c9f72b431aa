/* tests/sched_parallel.c: parallel_for and parallel_reduce: every index
 * exactly once, exact sums for odd sizes and grains, empty ranges, nesting,
 * many loops at once, and bad input. */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "support/weft_test.h"

struct marks {
    int64_t base;
    atomic_uchar *hit;
};

static void mark(int64_t begin, int64_t end, void *arg)
{
    struct marks *m = arg;
    for (int64_t i = begin; i < end; i++)
        atomic_fetch_add_explicit(&m->hit[i - m->base], 1,
                                  memory_order_relaxed);
}

static void check_for(int64_t begin, int64_t end, int64_t grain)
{
    int64_t n = end - begin;
    struct marks m = {.base = begin, .hit = calloc((size_t)n + 1, 1)};
    cr_assert_not_null(m.hit);
    cr_assert_eq(weft_parallel_for(begin, end, grain, mark, &m), 0);
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(atomic_load(&m.hit[i]), 1,
                     "index %lld of [%lld, %lld) grain %lld ran %d times",
                     (long long)(begin + i), (long long)begin, (long long)end,
                     (long long)grain, (int)atomic_load(&m.hit[i]));
    free(m.hit);
}

static intptr_t for_shapes(void *arg)
{
    (void)arg;
    static const int64_t sizes[] = {1, 2, 3, 7, 63, 64, 65, 1000, 4097, 100003};
    static const int64_t grains[] = {0, 1, 2, 3, 17, 1000, 1 << 20};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
            check_for(0, sizes[s], grains[g]);
            check_for(-sizes[s] / 2, sizes[s] - sizes[s] / 2, grains[g]);
        }
    cr_assert_eq(weft_parallel_for(5, 5, 0, mark, NULL), 0, "empty range");
    return 0;
}

Test(parallel, for_runs_every_index_exactly_once, .timeout = 120)
{
    for (unsigned w = 1; w <= 4; w++)
        cr_assert_eq(run_with(w, for_shapes, NULL), 0);
}

static void sum_id(void *p, void *arg)
{
    (void)arg;
    *(int64_t *)p = 0;
}

static void sum_body(int64_t b, int64_t e, void *p, void *arg)
{
    (void)arg;
    int64_t s = 0;
    for (int64_t i = b; i < e; i++)
        s += i;
    *(int64_t *)p += s;
}

static void sum_combine(void *into, const void *from, void *arg)
{
    (void)arg;
    *(int64_t *)into += *(const int64_t *)from;
}

static const weft_reducer_t summer = {sizeof(int64_t), sum_id, sum_body,
                                      sum_combine};

static int64_t closed_form(int64_t b, int64_t e)
{
    /* sum of b..e-1 */
    return (e - b) * (b + e - 1) / 2;
}

static intptr_t reduce_shapes(void *arg)
{
    (void)arg;
    static const int64_t sizes[] = {1, 2, 3, 5, 127, 128, 129, 9999, 1000003};
    static const int64_t grains[] = {0, 1, 7, 4096};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
            if (grains[g] == 1 && sizes[s] > 10000)
                continue; /* a million 1-index pieces: slow, adds nothing */
            int64_t r = -1;
            int64_t b = -(sizes[s] / 3);
            cr_assert_eq(weft_parallel_reduce(b, b + sizes[s], grains[g],
                                              &summer, NULL, &r),
                         0);
            cr_assert_eq(r, closed_form(b, b + sizes[s]), "size %lld grain %lld",
                         (long long)sizes[s], (long long)grains[g]);
        }
    int64_t r = 99;
    cr_assert_eq(weft_parallel_reduce(10, 10, 0, &summer, NULL, &r), 0);
    cr_assert_eq(r, 0, "an empty range reduces to the identity");
    return 0;
}

Test(parallel, reduce_is_exact_for_odd_sizes_and_grains, .timeout = 120)
{
    for (unsigned w = 1; w <= 3; w++)
        cr_assert_eq(run_with(w, reduce_shapes, NULL), 0);
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 3;
    cfg.shuffle_seed = 77;
    cr_assert_eq(run_cfg(&cfg, reduce_shapes, NULL), 0);
}

/* Nested: each outer index reduces its own inner range. */
static void nested_body(int64_t b, int64_t e, void *p, void *arg)
{
    (void)arg;
    for (int64_t i = b; i < e; i++) {
        int64_t inner = 0;
        cr_assert_eq(weft_parallel_reduce(0, 1000 + i, 0, &summer, NULL, &inner),
                     0);
        *(int64_t *)p += inner;
    }
}

static intptr_t nested(void *arg)
{
    (void)arg;
    weft_reducer_t outer = summer;
    outer.body = nested_body;
    int64_t r = 0;
    cr_assert_eq(weft_parallel_reduce(0, 64, 1, &outer, NULL, &r), 0);
    int64_t expect = 0;
    for (int64_t i = 0; i < 64; i++)
        expect += closed_form(0, 1000 + i);
    cr_assert_eq(r, expect);
    return 0;
}

Test(parallel, nested_loops_are_exact, .timeout = 120)
{
    for (unsigned w = 1; w <= 4; w++)
        cr_assert_eq(run_with(w, nested, NULL), 0);
}

/* Many tasks run loops at the same time. */
static intptr_t one_loop(void *arg)
{
    int64_t n = 20000 + (intptr_t)arg * 37;
    int64_t r = 0;
    cr_assert_eq(weft_parallel_reduce(0, n, (intptr_t)arg % 3 * 50, &summer,
                                      NULL, &r),
                 0);
    return r == closed_form(0, n) ? 0 : 1;
}

static intptr_t many_loops(void *arg)
{
    (void)arg;
    weft_task_t t[100];
    for (intptr_t i = 0; i < 100; i++)
        cr_assert_eq(weft_spawn(&t[i], one_loop, (void *)i), 0);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    return 0;
}

Test(parallel, many_tasks_run_loops_at_once, .timeout = 120)
{
    cr_assert_eq(run_with(2, many_loops, NULL), 0);
    cr_assert_eq(run_with(8, many_loops, NULL), 0);
}

static void noop(int64_t b, int64_t e, void *arg)
{
    (void)b;
    (void)e;
    (void)arg;
}

static intptr_t bad_input(void *arg)
{
    (void)arg;
    int64_t r = 1234;
    cr_assert_eq(weft_parallel_for(5, 4, 0, noop, NULL), -EINVAL);
    cr_assert_eq(weft_parallel_for(0, 4, -1, noop, NULL), -EINVAL);
    cr_assert_eq(weft_parallel_for(0, 4, 0, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_parallel_for(INT64_MIN, INT64_MAX, 0, noop, NULL),
                 -EINVAL, "more than INT64_MAX indices");
    cr_assert_eq(weft_parallel_reduce(5, 4, 0, &summer, NULL, &r), -EINVAL);
    cr_assert_eq(weft_parallel_reduce(0, 4, 0, NULL, NULL, &r), -EINVAL);
    cr_assert_eq(weft_parallel_reduce(0, 4, 0, &summer, NULL, NULL), -EINVAL);
    weft_reducer_t big = summer;
    big.size = 4096;
    cr_assert_eq(weft_parallel_reduce(0, 4, 0, &big, NULL, &r), -EINVAL);
    weft_reducer_t none = summer;
    none.combine = NULL;
    cr_assert_eq(weft_parallel_reduce(0, 4, 0, &none, NULL, &r), -EINVAL);
    cr_assert_eq(r, 1234, "a failed call leaves the result untouched");
    return 0;
}

Test(parallel, bad_input_is_refused_and_changes_nothing, .timeout = 30)
{
    cr_assert_eq(run_with(2, bad_input, NULL), 0);
    int64_t r = 5;
    cr_assert_eq(weft_parallel_for(0, 10, 0, noop, NULL), -EPERM);
    cr_assert_eq(weft_parallel_reduce(0, 10, 0, &summer, NULL, &r), -EPERM);
    cr_assert_eq(r, 5);
}
