/* examples/tour/07_queue.c (weft-tour-queue): a producer and a consumer
 * that talk through a queue.
 *
 *   async def producer(queue):
 *       for i in range(5):
 *           await asyncio.sleep(0.1)
 *           await queue.put(i)
 *           print(f"Produced {i}")
 *       await queue.put(None)
 *
 *   async def consumer(queue):
 *       while True:
 *           item = await queue.get()
 *           if item is None:
 *               break
 *           print(f"Consumed {item}")
 *
 *   async def main():
 *       queue = asyncio.Queue()
 *       await asyncio.gather(producer(queue), consumer(queue))
 *
 *   asyncio.run(main())
 *
 * asyncio.Queue is a weft channel: fixed-size items, a bound on how many
 * wait in it, and a close instead of the None sentinel: once the producer
 * closes it, the consumer receives what is left and then -EPIPE. */
#include "tour.h"

static intptr_t producer(void *arg)
{
    weft_chan_t *queue = arg;
    for (int i = 0; i < 5; i++) {
        tour_sleep(0.1);
        weft_chan_send(queue, &i); /* await queue.put(i) */
        printf("Produced %d\n", i);
    }
    weft_chan_close(queue); /* await queue.put(None) */
    return 0;
}

static intptr_t consumer(void *arg)
{
    weft_chan_t *queue = arg;
    int item;
    while (weft_chan_recv(queue, &item) == 0) /* item = await queue.get() */
        printf("Consumed %d\n", item);
    return 0;
}

static intptr_t main_task(void *arg)
{
    (void)arg;
    weft_chan_t *queue;
    if (weft_chan_create(&queue, sizeof(int), 16) != 0)
        return 1;
    weft_task_t tasks[2];
    weft_spawn(&tasks[0], producer, queue);
    weft_spawn(&tasks[1], consumer, queue);
    int err = weft_gather(tasks, 2, NULL);
    weft_chan_destroy(queue);
    return err;
}

int main(void)
{
    return tour_run(main_task);
}
