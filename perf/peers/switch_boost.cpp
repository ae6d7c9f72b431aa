/* perf/peers/switch_boost.cpp: the switch benchmark's Boost peers. Entry
 * points: peer_boost_context_switch (the raw fcontext switch that
 * Boost.Context's callcc and Boost.Fiber are built on, the twin of
 * weft__switch) and peer_boost_fiber_yield (two fibers yielding to each
 * other through Boost.Fiber's default round-robin scheduler).
 * It must not let an exception cross into C: each is caught and reported. */
#include <boost/context/detail/fcontext.hpp>
#include <boost/context/fixedsize_stack.hpp>
#include <boost/fiber/all.hpp>

#include <cerrno>
#include <cstdio>
#include <exception>

#include "../bench.h"
#include "peers.h"

namespace bctx = boost::context::detail;

/* The other side of the ping-pong: hand control straight back, forever. It
 * is never resumed after the last round trip, and owns nothing, so it is
 * simply abandoned with its stack. */
static void bounce(bctx::transfer_t t)
{
    for (;;)
        t = bctx::jump_fcontext(t.fctx, t.data);
}

int peer_boost_context_switch(int64_t n, int runs, double *secs)
{
    try {
        boost::context::fixedsize_stack salloc(64 * 1024);
        boost::context::stack_context sc = salloc.allocate();
        bctx::fcontext_t other = bctx::make_fcontext(sc.sp, sc.size, bounce);
        for (int r = -1; r < runs; r++) {
            double t0 = bench_now();
            for (int64_t i = 0; i < n; i++)
                other = bctx::jump_fcontext(other, nullptr).fctx;
            double t1 = bench_now();
            if (r >= 0)
                secs[r] = t1 - t0;
        }
        salloc.deallocate(sc);
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "boost_context: %s\n", e.what());
        return -ENOMEM;
    }
}

int peer_boost_fiber_yield(int64_t n, int runs, double *secs)
{
    try {
        auto yielder = [n] {
            for (int64_t i = 0; i < n; i++)
                boost::this_fiber::yield();
        };
        for (int r = -1; r < runs; r++) {
            /* The main fiber waits in join, so the two fibers hand the
             * thread to each other directly through the scheduler. */
            double t0 = bench_now();
            boost::fibers::fiber a(yielder), b(yielder);
            a.join();
            b.join();
            double t1 = bench_now();
            if (r >= 0)
                secs[r] = t1 - t0;
        }
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "boost_fiber: %s\n", e.what());
        return -ENOMEM;
    }
}
