/* sched/task_ext.c: the coordination state of a task (its watchers, its
 * group, the groups it created), kept beside the task descriptor rather
 * than in it. Entry points: weft__task_ext, weft__task_ext_get.
 *
 * Why beside: spawn+join of a plain task never needs this state, and every
 * byte added to struct weft__task is paid by every spawn (a million queued
 * tasks touch their descriptors' cache lines several times each; 48 more
 * bytes cost a third more per spawn+join). So the state sits in a table
 * parallel to the task table, indexed by the descriptor's index, in chunks
 * of WEFT_TASKS_PER_CHUNK allocated the first time a task of that chunk
 * needs one. A TASK_* bit in the task's state word (WATCHED, IN_GROUP,
 * OWNS_GROUPS) says that its entry may be in use, so paths that find no
 * bit set never look here.
 *
 * An entry is empty whenever its task has finished (join.c and group.c
 * empty it before the task is marked finished), so it is ready for the
 * descriptor's next life, and for the next runtime's: the table outlives
 * runtimes, since descriptor indexes mean the same in each.
 * Must never: allocate on a switch path (entries that a finisher reads
 * exist already: the bit was set after the entry was made). */
#include <stdlib.h>

#include "runtime/runtime.h"
#include "sched/coord.h"

static struct weft__task_ext *_Atomic chunks[WEFT_TASK_CHUNKS];

struct weft__task_ext *weft__task_ext(struct weft__task *t)
{
    uint32_t c = t->index / WEFT_TASKS_PER_CHUNK;
    /* Acquire: pairs with the release of the CAS that installed it. */
    struct weft__task_ext *chunk =
        atomic_load_explicit(&chunks[c], memory_order_acquire);
    if (!chunk) {
        struct weft__task_ext *fresh =
            calloc(WEFT_TASKS_PER_CHUNK, sizeof *fresh);
        if (!fresh)
            return NULL;
        /* acq_rel: publishes the zeroed chunk; a loser reads the winner's. */
        if (atomic_compare_exchange_strong_explicit(&chunks[c], &chunk, fresh,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire))
            chunk = fresh;
        else
            free(fresh);
    }
    return &chunk[t->index % WEFT_TASKS_PER_CHUNK];
}

struct weft__task_ext *weft__task_ext_get(struct weft__task *t)
{
    struct weft__task_ext *chunk = atomic_load_explicit(
        &chunks[t->index / WEFT_TASKS_PER_CHUNK], memory_order_acquire);
    WEFT_ASSERT(chunk != NULL);
    return &chunk[t->index % WEFT_TASKS_PER_CHUNK];
}
