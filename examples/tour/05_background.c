/* examples/tour/05_background.c (weft-tour-background): a background job
 * that repeats until it is cancelled.
 *
 *   async def heartbeat():
 *       try:
 *           while True:
 *               print("beat")
 *               await asyncio.sleep(1)
 *       except asyncio.CancelledError:
 *           print("heartbeat stopped")
 *           raise
 *
 *   async def main():
 *       task = asyncio.create_task(heartbeat())
 *       await asyncio.sleep(3.5)
 *       task.cancel()
 *       try:
 *           await task
 *       except asyncio.CancelledError:
 *           print("main: heartbeat is cancelled")
 *
 *   asyncio.run(main())
 *
 * It beats at 0, 1, 2 and 3 s. weft_cancel makes the task's current wait
 * (or its next) return -ECANCELED: the task cleans up and returns it, as
 * the Python re-raises CancelledError, and its awaiter sees it. */
#include "tour.h"

static intptr_t heartbeat(void *arg)
{
    (void)arg;
    for (;;) {
        printf("beat\n");
        int err = tour_sleep(1);
        if (err == -ECANCELED) { /* except asyncio.CancelledError: */
            printf("heartbeat stopped\n");
            return err; /* raise */
        }
    }
}

static intptr_t main_task(void *arg)
{
    (void)arg;
    weft_task_t task;
    weft_spawn(&task, heartbeat, NULL);
    tour_sleep(3.5);
    weft_cancel(task); /* task.cancel() */
    if (weft_join(task) == -ECANCELED)
        printf("main: heartbeat is cancelled\n");
    return 0;
}

int main(void)
{
    return tour_run(main_task);
}
