/* perf/peers/switch_ucontext.c: the switch benchmark's ucontext peer,
 * swapcontext between two contexts. Entry point: peer_ucontext_switch.
 * It shows why weft does not use ucontext: glibc's swapcontext saves and
 * restores the signal mask with a system call on every switch. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

#include "../bench.h"
#include "peers.h"

static ucontext_t main_uc, other_uc;

static void bounce(void)
{
    for (;;)
        swapcontext(&other_uc, &main_uc);
}

int peer_ucontext_switch(int64_t n, int runs, double *secs)
{
    size_t size = 64 * 1024;
    void *stack = malloc(size);
    if (stack == NULL || getcontext(&other_uc) != 0) {
        free(stack);
        fprintf(stderr, "ucontext: cannot set up a context\n");
        return -ENOMEM;
    }
    other_uc.uc_stack.ss_sp = stack;
    other_uc.uc_stack.ss_size = size;
    other_uc.uc_link = NULL;
    makecontext(&other_uc, bounce, 0);
    for (int r = -1; r < runs; r++) {
        double t0 = bench_now();
        for (int64_t i = 0; i < n; i++)
            swapcontext(&main_uc, &other_uc);
        double t1 = bench_now();
        if (r >= 0)
            secs[r] = t1 - t0;
    }
    /* The other context is suspended inside bounce and never resumed. */
    free(stack);
    return 0;
}
