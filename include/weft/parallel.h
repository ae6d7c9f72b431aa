/* weft/parallel.h: loops split across every worker: parallel_for and
 * parallel_reduce over an integer index range. */
#ifndef WEFT_PARALLEL_H
#define WEFT_PARALLEL_H

#include "base.h"

WEFT_EXTERN_C_BEGIN

/* The body of a parallel loop: handle the indices [begin, end). It runs on
 * any worker, several bodies at once; it may spawn, wait and nest loops. */
typedef void (*weft_range_fn)(int64_t begin, int64_t end, void *arg);

/* Run body over [begin, end) in pieces of about `grain` indices (0: chosen
 * automatically), on every worker. Each worker starts on its own contiguous
 * share, so pages first touched by one parallel_for are read by the same
 * worker in the next one over the same range; an idle worker steals the
 * larger half of the largest share left. Returns 0 once every index was
 * handled; -EINVAL if begin > end or grain < 0 or body is NULL; -EPERM on a
 * plain thread (use weft_block_on); -ENOMEM. An empty range returns 0. */
WEFT_API int weft_parallel_for(int64_t begin, int64_t end, int64_t grain,
                               weft_range_fn body, void *arg);

/* How to reduce: partial results of `size` bytes (at most 256), set to the
 * identity, accumulated by body over sub-ranges, then merged pairwise by
 * combine. combine must be associative and commutative: which sub-ranges
 * land in which partial varies from run to run. */
typedef struct weft_reducer {
    size_t size;
    void (*identity)(void *partial, void *arg);
    void (*body)(int64_t begin, int64_t end, void *partial, void *arg);
    void (*combine)(void *into, const void *from, void *arg);
} weft_reducer_t;

/* Reduce [begin, end) into *result (reducer->size bytes). An empty range
 * stores the identity. Errors as weft_parallel_for, and -EINVAL for a NULL
 * or malformed reducer or result; on error *result is untouched. */
WEFT_API int weft_parallel_reduce(int64_t begin, int64_t end, int64_t grain,
                                  const weft_reducer_t *reducer, void *arg,
                                  void *result);

WEFT_EXTERN_C_END

#endif /* WEFT_PARALLEL_H */
