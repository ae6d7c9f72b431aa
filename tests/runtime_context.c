/* tests/runtime_context.c: the raw context switch (runtime/arch/). */
#include <criterion/criterion.h>
#include <fenv.h>
#include <stdint.h>
#include <stdlib.h>

#include "runtime/context.h"

static void *main_sp, *fiber_sp;
static long fiber_steps;

static void counting_entry(void *transfer)
{
    long n = (long)(intptr_t)transfer;
    for (;;) {
        fiber_steps += n;
        n = (long)(intptr_t)weft__switch(&fiber_sp, main_sp,
                                         (void *)(intptr_t)(n + 1));
    }
}

Test(context, switch_passes_transfer_both_ways)
{
    size_t size = 64 * 1024;
    char *stack = malloc(size);
    fiber_steps = 0;
    fiber_sp = weft__context_make(stack + size, counting_entry);
    intptr_t back = (intptr_t)weft__switch(&main_sp, fiber_sp, (void *)5);
    cr_assert_eq(back, 6, "the entry got 5 and answered 5 + 1");
    cr_assert_eq(fiber_steps, 5);
    for (intptr_t i = 10; i < 1010; i++) {
        back = (intptr_t)weft__switch(&main_sp, fiber_sp, (void *)i);
        cr_assert_eq(back, i + 1);
    }
    cr_assert_eq(fiber_steps, 5 + (10 + 1009) * 1000 / 2);
    free(stack);
}

static void *entry_stack_top;
static uintptr_t entry_sp_mod16;

static void alignment_entry(void *transfer)
{
    (void)transfer;
    /* A frame's address taken here must respect the ABI's alignment. */
    _Alignas(16) char probe[16];
    entry_sp_mod16 = (uintptr_t)probe % 16;
    weft__switch(&fiber_sp, main_sp, NULL);
    abort();
}

Test(context, new_context_is_abi_aligned_for_any_top)
{
    for (int off = 0; off < 16; off++) {
        /* A fresh stack each time: the last fiber never returned, and its
         * frames stay poisoned for ASan. */
        char *stack = malloc(64 * 1024 + 64);
        entry_stack_top = stack + 64 * 1024 + off;
        entry_sp_mod16 = 99;
        fiber_sp = weft__context_make(entry_stack_top, alignment_entry);
        weft__switch(&main_sp, fiber_sp, NULL);
        cr_assert_eq(entry_sp_mod16, 0, "top offset %d", off);
        cr_assert((char *)fiber_sp < (char *)entry_stack_top);
        free(stack);
    }
}

static int fiber_round_mode;

static void rounding_entry(void *transfer)
{
    (void)transfer;
    fesetround(FE_UPWARD);
    for (;;) {
        fiber_round_mode = fegetround();
        weft__switch(&fiber_sp, main_sp, NULL);
    }
}

Test(context, fp_control_words_belong_to_each_context)
{
    char *stack = malloc(64 * 1024);
    fesetround(FE_TONEAREST);
    fiber_sp = weft__context_make(stack + 64 * 1024, rounding_entry);
    for (int i = 0; i < 100; i++) {
        weft__switch(&main_sp, fiber_sp, NULL);
        cr_assert_eq(fiber_round_mode, FE_UPWARD);
        cr_assert_eq(fegetround(), FE_TONEAREST,
                     "the fiber's rounding mode must not leak into ours");
    }
    free(stack);
}
