/* examples/tour/06_timeout.c (weft-tour-timeout): wait with a timeout.
 *
 *   async def slow_operation():
 *       await asyncio.sleep(10)
 *       return "done"
 *
 *   async def main():
 *       try:
 *           result = await asyncio.wait_for(slow_operation(), timeout=1.0)
 *           print(result)
 *       except asyncio.TimeoutError:
 *           print("The operation timed out")
 *
 *   asyncio.run(main())
 *
 * It gives up after 1 s, not 10. asyncio.wait_for cancels the task it gave
 * up on and waits for it to finish; so does this program: weft_join_until
 * returns -ETIMEDOUT and leaves the task running, for the caller to decide.
 * (asyncio.timeout(1), a deadline for every wait in a block, is
 * weft_deadline_push_after / weft_deadline_pop.) */
#include "tour.h"

static intptr_t slow_operation(void *arg)
{
    (void)arg;
    int err = tour_sleep(10);
    if (err)
        return err;
    return 1; /* "done" */
}

static intptr_t main_task(void *arg)
{
    (void)arg;
    weft_task_t task;
    weft_spawn(&task, slow_operation, NULL);
    intptr_t result;
    int err = weft_join_until(task, weft_now_ns() + tour_ns(1.0), &result);
    if (err == -ETIMEDOUT) { /* except asyncio.TimeoutError: */
        weft_cancel(task);   /* what wait_for does on a timeout */
        weft_join(task);
        printf("The operation timed out\n");
    } else if (err == 0 && result == 1) {
        printf("done\n");
    }
    return 0;
}

int main(void)
{
    return tour_run(main_task);
}
