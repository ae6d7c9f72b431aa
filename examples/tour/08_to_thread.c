/* examples/tour/08_to_thread.c (weft-tour-to-thread): send a blocking call
 * to a thread, and keep waiting on other things meanwhile.
 *
 *   def blocking_io():
 *       print(f"start blocking_io at {time.strftime('%X')}")
 *       time.sleep(1)   # any blocking call: a file, a library
 *       print(f"blocking_io complete at {time.strftime('%X')}")
 *
 *   async def main():
 *       print(f"started main at {time.strftime('%X')}")
 *       await asyncio.gather(
 *           asyncio.to_thread(blocking_io),
 *           asyncio.sleep(1))
 *       print(f"finished main at {time.strftime('%X')}")
 *
 *   asyncio.run(main())
 *
 * The whole takes about 1 s, not 2: the blocking call runs on the blocking
 * pool while the sleep waits on the worker. Times print as seconds since
 * main started, where the Python prints the clock. */
#include "tour.h"

static intptr_t blocking_io(void *arg)
{
    (void)arg;
    printf("start blocking_io at %.1f s\n", tour_seconds());
    tour_block(1); /* time.sleep(1): blocks this thread, a pool thread */
    printf("blocking_io complete at %.1f s\n", tour_seconds());
    return 0;
}

/* asyncio.to_thread(blocking_io), as a task to gather. */
static intptr_t to_thread(void *arg)
{
    (void)arg;
    return weft_run_blocking(blocking_io, NULL);
}

static intptr_t sleep_1(void *arg)
{
    (void)arg;
    return tour_sleep(1);
}

static intptr_t main_task(void *arg)
{
    (void)arg;
    printf("started main at %.1f s\n", tour_seconds());
    weft_task_t tasks[2];
    weft_spawn(&tasks[0], to_thread, NULL);
    weft_spawn(&tasks[1], sleep_1, NULL);
    int err = weft_gather(tasks, 2, NULL);
    printf("finished main at %.1f s\n", tour_seconds());
    return err;
}

int main(void)
{
    return tour_run(main_task);
}
