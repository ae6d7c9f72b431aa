/* runtime/arch/switch_x86_64_sysv_elf.S: the context switch for x86-64,
 * System V ABI, ELF (see runtime/context.h for the contract).
 *
 * A suspended context's stack, from its saved stack pointer upwards:
 *
 *   offset  0  MXCSR (4 bytes), x87 control word (2 bytes), unused (2)
 *   offset  8  r15
 *   offset 16  r14
 *   offset 24  r13
 *   offset 32  r12
 *   offset 40  rbx
 *   offset 48  rbp
 *   offset 56  return address (where the context resumes)
 *
 * Only the callee-saved registers and the FP control words are saved: the
 * caller of weft__switch has already saved anything else it needs, as for any
 * call. runtime/context.c checks these offsets with _Static_assert.
 *
 * Two choices are measured, not guessed (perf/switch.c):
 *  - The resume is a `jmp` through a register, not a `ret`: a `ret` into
 *    another stack never matches the return-stack predictor and costs a
 *    mispredict on every switch (Boost.Context does the same).
 *  - LDMXCSR serialises on some Intel parts (over 60 ns per switch in a VM
 *    here). The control words are loaded only when the resumed context's
 *    differ from the ones just saved, which is almost never. The MXCSR status
 *    flags (bits 0-5) are not callee-saved state in the ABI and are ignored. */

    .text

    /* void *weft__switch(void **save_sp  (rdi),
     *                    void *load_sp   (rsi),
     *                    void *transfer  (rdx)) */
    .globl  weft__switch
    .hidden weft__switch
    .type   weft__switch, @function
    .p2align 4
weft__switch:
    .cfi_startproc
    endbr64
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    leaq    -8(%rsp), %rsp
    stmxcsr (%rsp)
    fnstcw  4(%rsp)

    movq    %rsp, (%rdi)        /* the old context is now complete */
    movq    %rsp, %r9           /* keep its FP words at hand to compare */
    movq    %rsi, %rsp          /* from here on we run on the new stack */

    movl    (%rsp), %ecx
    xorl    (%r9), %ecx
    andl    $0xffc0, %ecx       /* MXCSR control bits differ? */
    jnz     1f
    movzwl  4(%rsp), %ecx
    cmpw    4(%r9), %cx         /* x87 control word differs? */
    jne     1f
2:
    leaq    8(%rsp), %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    popq    %r8

    movq    %rdx, %rax          /* transfer: the return value ...           */
    movq    %rdx, %rdi          /* ... and the entry argument of a new one  */
    jmpq    *%r8
1:
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    jmp     2b
    .cfi_endproc
    .size   weft__switch, .-weft__switch

    /* The first code a new context runs: weft__switch jumps here with the
     * transfer value in rdi and rsp 16-byte aligned; r12 holds the entry
     * function, placed there by weft__context_make. */
    .globl  weft__context_trampoline
    .hidden weft__context_trampoline
    .type   weft__context_trampoline, @function
    .p2align 4
weft__context_trampoline:
    .cfi_startproc
    .cfi_undefined rip          /* the outermost frame: debuggers stop here */
    endbr64
    xorl    %ebp, %ebp
    callq   *%r12
    ud2                         /* entry functions never return */
    .cfi_endproc
    .size   weft__context_trampoline, .-weft__context_trampoline

    .section .note.GNU-stack,"",@progbits
