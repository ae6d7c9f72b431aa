#!/usr/bin/env python3
"""perf/peers/fetch_aiohttp.py: bench_fetch's Python peer, what weft-fetch
does written with asyncio and aiohttp (run with Debian's /usr/bin/python3
and python3-aiohttp): fetch each URL COUNT times, at most CONCURRENCY
requests in flight (an asyncio.Semaphore, and the connector's limit),
reusing keep-alive connections, and print one summary line as weft-fetch
does.

    fetch_aiohttp.py [--count N] [--concurrency C] [--timeout MS] URL...

Exits 0 if every request got a 2xx answer, 1 otherwise."""

import argparse
import asyncio
import resource
import sys
import time

import aiohttp


async def fetch_all(args):
    sem = asyncio.Semaphore(args.concurrency)
    counts = {"ok": 0, "failed": 0}
    first_errors = []
    connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=args.timeout / 1000)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=timeout) as session:

        async def one(url):
            async with sem:
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                        if 200 <= resp.status < 300:
                            counts["ok"] += 1
                            return
                        err = "HTTP status %d" % resp.status
                except Exception as e:  # every failure counts, as in weft-fetch
                    err = "%s: %s" % (type(e).__name__, e)
                counts["failed"] += 1
                if len(first_errors) < 3:
                    first_errors.append("%s: %s" % (url, err))

        t0 = time.perf_counter()
        await asyncio.gather(*(one(u) for _ in range(args.count)
                               for u in args.urls))
        took = time.perf_counter() - t0
    for e in first_errors:
        print("fetch_aiohttp: %s" % e, file=sys.stderr)
    return counts["ok"], counts["failed"], took


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--timeout", type=int, default=30000, help="ms")
    ap.add_argument("urls", nargs="+")
    args = ap.parse_args()
    if args.count < 1 or args.concurrency < 1:
        ap.error("--count and --concurrency want positive numbers")
    # Thousands of connections need the whole fd limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ok, failed, took = asyncio.run(fetch_all(args))
    total = args.count * len(args.urls)
    print("fetch_aiohttp: %d requests (%d URL%s x %d, at most %d at once): "
          "%d succeeded, %d failed in %.3f s (%.0f requests/s)"
          % (total, len(args.urls), "" if len(args.urls) == 1 else "s",
             args.count, args.concurrency, ok, failed, took,
             (ok + failed) / took if took > 0 else 0))
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
