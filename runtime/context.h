/* runtime/context.h: the machine context switch, the one piece of weft that
 * is written per architecture (runtime/arch/). A context is only a saved
 * stack pointer: everything else a suspended fiber needs (callee-saved
 * registers, the FP control words, where to resume) is pushed on its own
 * stack by weft__switch.
 *
 * Contract: no allocation, no syscalls, no knowledge of tasks or workers. */
#ifndef WEFT_RUNTIME_CONTEXT_H
#define WEFT_RUNTIME_CONTEXT_H

#include <stddef.h>

/* Save the caller's context, storing its stack pointer in *save_sp, and
 * resume the context whose stack pointer is load_sp. The resumed side
 * receives `transfer`: as the return value of its own weft__switch, or as
 * the argument of its entry function if it was never run. */
void *weft__switch(void **save_sp, void *load_sp, void *transfer);

#if defined(__x86_64__)
/* weft__switch, entered without a call instruction. A `call` pushes an
 * entry on the CPU's return-stack predictor that weft__switch never pops
 * (it leaves through a jmp into the other stack), so every return after a
 * switch would be predicted one frame off: three or four mispredicts per
 * switch in the scheduler. Pushing the return address by hand keeps the
 * predictor aligned with the frames the resumed context returns through,
 * which in the scheduler are the same call sites as the suspended one's
 * (measured: perf/switch.c, yield round trip). It steps over the 128-byte
 * red zone first, since the compiler may keep data there. Everything a call
 * may clobber is declared clobbered. */
static inline __attribute__((always_inline)) void *
weft__switch_inline(void **save_sp, void *load_sp, void *transfer)
{
    register void **rdi __asm__("rdi") = save_sp;
    register void *rsi __asm__("rsi") = load_sp;
    register void *rdx __asm__("rdx") = transfer;
    void *result;
    __asm__ volatile("leaq -128(%%rsp), %%rsp\n\t"
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "jmp weft__switch\n"
                     "1:\n\t"
                     "leaq 128(%%rsp), %%rsp"
                     : "+r"(rdi), "+r"(rsi), "+r"(rdx), "=a"(result)
                     :
                     : "rcx", "r8", "r9", "r10", "r11", "xmm0", "xmm1",
                       "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                       "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
                       "xmm15", "memory", "cc");
    return result;
}
#else
#define weft__switch_inline weft__switch
#endif

/* A context that has never run: when first switched to, it calls
 * entry(transfer) on the stack that ends at stack_top (exclusive, 16-byte
 * aligned is not required: it is aligned here). entry must never return.
 * Returns the initial stack pointer to pass to weft__switch. */
void *weft__context_make(void *stack_top, void (*entry)(void *transfer));

/* Bytes of the stack that weft__context_make uses at the top. */
#define WEFT_CONTEXT_INITIAL_FRAME 64u

#endif /* WEFT_RUNTIME_CONTEXT_H */
