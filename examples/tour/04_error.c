/* examples/tour/04_error.c (weft-tour-error): an error raised in a task,
 * caught by whoever awaits it.
 *
 *   async def may_fail():
 *       raise ValueError("Something went wrong!")
 *
 *   async def main():
 *       task = asyncio.create_task(may_fail())
 *       try:
 *           await task
 *       except ValueError as e:
 *           print(f"Caught an error: {e}")
 *
 *   asyncio.run(main())
 *
 * C has no exceptions: a weft task fails by returning a negative errno
 * value, and weft_join hands it to the awaiter, who checks it. -EINVAL is
 * C's ValueError; strerror gives its message. */
#include "tour.h"

static intptr_t may_fail(void *arg)
{
    (void)arg;
    return -EINVAL; /* raise ValueError(...) */
}

static intptr_t main_task(void *arg)
{
    (void)arg;
    weft_task_t task;
    weft_spawn(&task, may_fail, NULL);
    intptr_t r = weft_join(task); /* try: await task */
    if (r == -EINVAL)             /* except ValueError as e: */
        printf("Caught an error: %s\n", strerror((int)-r));
    return 0;
}

int main(void)
{
    return tour_run(main_task);
}
