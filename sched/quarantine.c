/* sched/quarantine.c: a delay between destroying an object of the public
 * API (a future, a group) and freeing its memory, in debug builds. Entry
 * point: weft__quarantine.
 *
 * Waiting on a destroyed object is the caller's bug; each object keeps a
 * magic number so that calls made on it afterwards return -EINVAL. That
 * check reads the object's memory, which is only reliable while the memory
 * is still allocated: debug builds (WEFT_DEBUG_LEVEL >= 1) therefore keep
 * the last QUARANTINE destroyed objects (their magic set to dead) and free
 * the oldest as new ones arrive. Release builds free at once.
 * Must never: free an object the caller has not destroyed. */
#include <pthread.h>
#include <stdlib.h>

#include "runtime/runtime.h"
#include "sched/coord.h"

#if WEFT_DEBUG_LEVEL >= 1
#define QUARANTINE 256u

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct held {
    void *obj;
    void (*release)(void *obj);
} held[QUARANTINE];
static unsigned next;
#endif

void weft__quarantine(void *obj, void (*release)(void *obj))
{
#if WEFT_DEBUG_LEVEL >= 1
    pthread_mutex_lock(&lock);
    struct held old = held[next];
    held[next] = (struct held){obj, release};
    next = (next + 1) % QUARANTINE;
    pthread_mutex_unlock(&lock);
    if (old.obj)
        old.release(old.obj);
#else
    release(obj);
#endif
}
