/* examples/tour/01_hello.c (weft-tour-hello): hello, with a sleep.
 *
 *   import asyncio
 *
 *   async def main():
 *       print('Hello ...')
 *       await asyncio.sleep(1)
 *       print('... World!')
 *
 *   asyncio.run(main())
 *
 * A task is a function that takes a pointer and returns an intptr_t: its
 * result, or a negative errno value for an error. */
#include "tour.h"

static intptr_t main_task(void *arg)
{
    (void)arg;
    printf("Hello ...\n");
    tour_sleep(1); /* await asyncio.sleep(1) */
    printf("... World!\n");
    return 0;
}

int main(void)
{
    return tour_run(main_task); /* asyncio.run(main()) */
}
