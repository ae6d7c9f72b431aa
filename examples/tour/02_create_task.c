/* examples/tour/02_create_task.c (weft-tour-create-task): create tasks, then
 * await them.
 *
 *   async def task_example(name, delay):
 *       print(f"Task {name} starting.")
 *       await asyncio.sleep(delay)
 *       print(f"Task {name} completed.")
 *
 *   async def main():
 *       task1 = asyncio.create_task(task_example("A", 2))
 *       task2 = asyncio.create_task(task_example("B", 1))
 *       await task1
 *       await task2
 *
 *   asyncio.run(main())
 *
 * Both tasks wait at once: B finishes first, and the whole takes about 2 s.
 * A task's arguments travel in a struct that outlives it. */
#include "tour.h"

struct example {
    const char *name;
    double delay;
};

static intptr_t task_example(void *arg)
{
    const struct example *e = arg;
    printf("Task %s starting.\n", e->name);
    tour_sleep(e->delay);
    printf("Task %s completed.\n", e->name);
    return 0;
}

static intptr_t main_task(void *arg)
{
    (void)arg;
    struct example a = {"A", 2}, b = {"B", 1};
    weft_task_t task1, task2;
    weft_spawn(&task1, task_example, &a); /* asyncio.create_task(...) */
    weft_spawn(&task2, task_example, &b);
    weft_join(task1); /* await task1 */
    weft_join(task2);
    return 0;
}

int main(void)
{
    return tour_run(main_task);
}
