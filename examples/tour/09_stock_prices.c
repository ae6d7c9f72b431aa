/* examples/tour/09_stock_prices.c (weft-tour-stock-prices): get two stock
 * prices concurrently.
 *
 *   async def call_api(message, result=1000, delay=3):
 *       print(message)
 *       await asyncio.sleep(delay)
 *       return result
 *
 *   async def main():
 *       start = time.perf_counter()
 *       task_1 = asyncio.create_task(
 *           call_api('Get stock price of GOOG...', 300))
 *       task_2 = asyncio.create_task(
 *           call_api('Get stock price of APPL...', 300))
 *       price = await task_1
 *       print(price)
 *       price = await task_2
 *       print(price)
 *       end = time.perf_counter()
 *       print(f'It took {round(end-start,0)} second(s) to complete.')
 *
 *   asyncio.run(main())
 *
 * Two calls of 3 s each take about 3 s in all. A task's result is its
 * return value: here the price. */
#include <math.h>

#include "tour.h"

struct api_call {
    const char *message;
    intptr_t result;
    double delay;
};

static intptr_t call_api(void *arg)
{
    const struct api_call *c = arg;
    printf("%s\n", c->message);
    int err = tour_sleep(c->delay);
    return err ? err : c->result;
}

static intptr_t main_task(void *arg)
{
    (void)arg;
    double start = tour_seconds();
    struct api_call goog = {"Get stock price of GOOG...", 300, 3};
    struct api_call appl = {"Get stock price of APPL...", 300, 3};
    weft_task_t task_1, task_2;
    weft_spawn(&task_1, call_api, &goog);
    weft_spawn(&task_2, call_api, &appl);
    intptr_t price = weft_join(task_1);
    printf("%ld\n", (long)price);
    price = weft_join(task_2);
    printf("%ld\n", (long)price);
    double end = tour_seconds();
    printf("It took %.1f second(s) to complete.\n", round(end - start));
    return 0;
}

int main(void)
{
    return tour_run(main_task);
}
