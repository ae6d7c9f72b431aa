/* examples/tour/03_gather.c (weft-tour-gather): run two coroutines at once
 * and wait for both.
 *
 *   async def task1():
 *       await asyncio.sleep(2)
 *       print("Task 1 Completed")
 *
 *   async def task2():
 *       await asyncio.sleep(1)
 *       print("Task 2 Completed")
 *
 *   async def main():
 *       await asyncio.gather(task1(), task2())
 *
 *   asyncio.run(main())
 *
 * Task 2 prints first, and the whole takes about 2 s, not 3. asyncio.gather
 * wraps coroutines in tasks; in weft the tasks are spawned first, then
 * gathered. Their results land in an array, errors included (asyncio's
 * return_exceptions=True). */
#include "tour.h"

static intptr_t task1(void *arg)
{
    (void)arg;
    tour_sleep(2);
    printf("Task 1 Completed\n");
    return 0;
}

static intptr_t task2(void *arg)
{
    (void)arg;
    tour_sleep(1);
    printf("Task 2 Completed\n");
    return 0;
}

static intptr_t main_task(void *arg)
{
    (void)arg;
    weft_task_t tasks[2];
    intptr_t results[2];
    weft_spawn(&tasks[0], task1, NULL);
    weft_spawn(&tasks[1], task2, NULL);
    return weft_gather(tasks, 2, results); /* await asyncio.gather(...) */
}

int main(void)
{
    return tour_run(main_task);
}
