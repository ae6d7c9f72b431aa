/* perf/peers/spawn_tbb.cpp: the spawn benchmark's oneTBB peer: n empty
 * lambdas run through one tbb::task_group and waited for, inside a
 * task_arena of the requested concurrency. Entry point: peer_tbb_spawn.
 * It must not let an exception cross into C. */
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <cerrno>
#include <cstdio>
#include <exception>

#include "../bench.h"
#include "peers.h"

int peer_tbb_spawn(unsigned threads, int64_t n, int runs, double *secs)
{
    try {
        tbb::task_arena arena(static_cast<int>(threads));
        for (int r = -1; r < runs; r++) {
            double t = 0;
            arena.execute([&] {
                tbb::task_group g;
                double t0 = bench_now();
                for (int64_t i = 0; i < n; i++)
                    g.run([] {});
                g.wait();
                t = bench_now() - t0;
            });
            if (r >= 0)
                secs[r] = t;
        }
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "tbb_task_group: %s\n", e.what());
        return -ENOMEM;
    }
}
