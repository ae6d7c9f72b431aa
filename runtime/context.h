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

/* A context that has never run: when first switched to, it calls
 * entry(transfer) on the stack that ends at stack_top (exclusive, 16-byte
 * aligned is not required: it is aligned here). entry must never return.
 * Returns the initial stack pointer to pass to weft__switch. */
void *weft__context_make(void *stack_top, void (*entry)(void *transfer));

/* Bytes of the stack that weft__context_make uses at the top. */
#define WEFT_CONTEXT_INITIAL_FRAME 64u

#endif /* WEFT_RUNTIME_CONTEXT_H */
