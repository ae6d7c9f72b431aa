/* runtime/context.c: building a context that has never run, for the
 * architecture-specific weft__switch. The frame layout is fixed by the .S
 * file of the architecture; the offsets are repeated here and checked. */
#include <stdint.h>
#include <string.h>

#include "context.h"

#if defined(__x86_64__)

void weft__context_trampoline(void);

/* Offsets into a suspended frame (switch_x86_64_sysv_elf.S, top comment). */
enum {
    FRAME_FPU = 0,
    FRAME_R15 = 8,
    FRAME_R14 = 16,
    FRAME_R13 = 24,
    FRAME_R12 = 32,
    FRAME_RBX = 40,
    FRAME_RBP = 48,
    FRAME_RET = 56,
    FRAME_SIZE = 64,
};
_Static_assert(FRAME_SIZE == WEFT_CONTEXT_INITIAL_FRAME,
               "context.h must describe the frame the .S file builds");
_Static_assert(FRAME_RET + 8 == FRAME_SIZE, "return address closes the frame");

void *weft__context_make(void *stack_top, void (*entry)(void *transfer))
{
    /* After weft__switch pops the frame and returns into the trampoline,
     * rsp = frame + FRAME_SIZE; the trampoline's call then needs rsp to be
     * 16-byte aligned, so the frame ends on a 16-byte boundary. */
    uintptr_t top = (uintptr_t)stack_top & ~(uintptr_t)15;
    unsigned char *frame = (unsigned char *)(top - FRAME_SIZE);
    uint32_t mxcsr;
    uint16_t fpucw;

    /* A new context starts with the FP environment of its creator, the way
     * a new thread inherits it. */
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    memset(frame, 0, FRAME_SIZE);
    memcpy(frame + FRAME_FPU, &mxcsr, sizeof mxcsr);
    memcpy(frame + FRAME_FPU + 4, &fpucw, sizeof fpucw);
    uintptr_t fn = (uintptr_t)entry, ret = (uintptr_t)weft__context_trampoline;
    memcpy(frame + FRAME_R12, &fn, sizeof fn);
    memcpy(frame + FRAME_RET, &ret, sizeof ret);
    return frame;
}

#else
#error "no context switch for this architecture yet: add runtime/arch/<abi>.S"
#endif
