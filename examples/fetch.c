/* examples/fetch.c (weft-fetch): fetch URLs concurrently, with at most C
 * requests in flight, over keep-alive connections, and report how many
 * succeeded (a 2xx answer), how many failed, and the wall time.
 *
 * The seed scenario: a hundred API endpoints that each take a second are
 * 100 s one after another (--concurrency 1) and about 1 s at once:
 *
 *   weft-fetch --count 100 --concurrency 100 http://127.0.0.1:8080/delay?ms=1000
 *
 * The limit is a semaphore: the main task takes a unit before it spawns a
 * request's task, which gives it back when done, so at most C tasks (and
 * stacks) exist at a time however many requests there are; taking all C
 * units at the end waits for the last ones. The HTTP client with its
 * per-host connection pool is examples/http/client.c; names are resolved
 * on the blocking pool (weft_resolve).
 *
 * Usage: weft-fetch [--count N] [--concurrency C] [--timeout MS]
 *                   [--workers W] URL...
 * Prints one summary line on stdout; the first few failures on stderr.
 * Exits 0 if every request succeeded, 1 if any failed, 2 on bad usage.
 * Must never have more than C requests (or tasks) alive at once. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

#include "http/cli.h"
#include "http/client.h"

#define REPORT_FAILURES 3

struct target {
    struct fetch *f;
    const char *text;
    struct http_url url;
};

struct fetch {
    uint64_t count, concurrency, timeout_ns;
    struct target *targets;
    size_t ntargets;
    struct http_client *client;
    weft_sem_t *slots;
    _Atomic uint64_t ok, failed;
    _Atomic unsigned reported;
    double seconds;
};

static void report(struct fetch *f, const struct target *t, int err,
                   int status)
{
    if (atomic_fetch_add(&f->reported, 1) >= REPORT_FAILURES)
        return;
    if (err)
        fprintf(stderr, "weft-fetch: %s: %s\n", t->text, strerror(-err));
    else
        fprintf(stderr, "weft-fetch: %s: HTTP status %d\n", t->text, status);
}

/* One request, as its own task. */
static intptr_t fetch_one(void *arg)
{
    struct target *t = arg;
    struct fetch *f = t->f;
    struct http_result res;
    int err = http_client_get(f->client, &t->url, &res,
                              weft_now_ns() + f->timeout_ns);
    if (!err && res.status >= 200 && res.status < 300) {
        atomic_fetch_add_explicit(&f->ok, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&f->failed, 1, memory_order_relaxed);
        report(f, t, err, err ? 0 : res.status);
    }
    /* The last touch of f: the main task may finish once all units are
     * back. */
    weft_sem_release(f->slots);
    return 0;
}

static intptr_t fetch_main(void *arg)
{
    struct fetch *f = arg;
    struct http_client_config ccfg = {
        .max_idle_per_host = f->concurrency > 65536 ? 65536
                                                    : (unsigned)f->concurrency,
    };
    int err = http_client_create(&ccfg, &f->client);
    if (err)
        return err;
    if ((err = weft_sem_create(&f->slots, (uint32_t)f->concurrency,
                               (uint32_t)f->concurrency))) {
        http_client_destroy(f->client);
        return err;
    }
    uint64_t t0 = weft_now_ns();
    for (uint64_t i = 0; i < f->count; i++) {
        for (size_t j = 0; j < f->ntargets; j++) {
            if ((err = weft_sem_acquire(f->slots)))
                goto wait_all; /* cancelled */
            if ((err = weft_spawn(NULL, fetch_one, &f->targets[j]))) {
                weft_sem_release(f->slots);
                atomic_fetch_add(&f->failed, 1);
                report(f, &f->targets[j], err, 0);
            }
        }
    }
wait_all:
    /* Every unit back: every request is done. */
    for (uint64_t k = 0; k < f->concurrency; k++)
        while (weft_sem_acquire(f->slots) == -ECANCELED)
            ;
    f->seconds = (double)(weft_now_ns() - t0) / 1e9;
    weft_sem_destroy(f->slots);
    http_client_destroy(f->client);
    return err;
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: weft-fetch [--count N] [--concurrency C] [--timeout MS] "
            "[--workers W] URL...\n"
            "  --count N        fetch each URL N times (default 1)\n"
            "  --concurrency C  at most C requests in flight (default 100)\n"
            "  --timeout MS     per request (default 30000)\n"
            "  --workers W      worker threads (default: one per core)\n"
            "  URL              http://host[:port][/path] (no https: no TLS "
            "here)\n");
}

int main(int argc, char **argv)
{
    static struct fetch f;
    f.count = 1;
    f.concurrency = 100;
    f.timeout_ns = 30000ull * 1000000;
    uint64_t workers = 0, v;
    f.targets = calloc((size_t)argc, sizeof *f.targets);
    if (!f.targets)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
            usage(stdout);
            return 0;
        }
        if (strncmp(opt, "--", 2) != 0) {
            struct target *t = &f.targets[f.ntargets];
            int err = http_url_parse(opt, &t->url);
            if (err) {
                fprintf(stderr, "weft-fetch: %s: %s\n", opt,
                        err == -EPROTONOSUPPORT
                            ? "only http:// URLs (no TLS in this example)"
                            : "not a URL of the form http://host[:port]/path");
                return 2;
            }
            t->f = &f;
            t->text = opt;
            f.ntargets++;
            continue;
        }
        if (!strcmp(opt, "--count") && cli_uint(val, 1, 1000000000, &v)) {
            f.count = v;
        } else if (!strcmp(opt, "--concurrency") &&
                   cli_uint(val, 1, 1000000, &v)) {
            f.concurrency = v;
        } else if (!strcmp(opt, "--timeout") &&
                   cli_uint(val, 1, 86400000, &v)) {
            f.timeout_ns = v * 1000000ull;
        } else if (!strcmp(opt, "--workers") &&
                   cli_uint(val, 1, WEFT_MAX_WORKERS, &v)) {
            workers = v;
        } else {
            fprintf(stderr, "weft-fetch: bad argument '%s%s%s'\n", opt,
                    val ? " " : "", val ? val : "");
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (f.ntargets == 0) {
        usage(stderr);
        return 2;
    }
    cli_raise_fd_limit();
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = (unsigned)workers;
    intptr_t result = 0;
    int err = weft_run(&cfg, fetch_main, &f, &result);
    if (err || result) {
        fprintf(stderr, "weft-fetch: %s\n", strerror(-(err ? err : (int)result)));
        return 1;
    }
    uint64_t total = f.count * f.ntargets;
    uint64_t ok = atomic_load(&f.ok), failed = atomic_load(&f.failed);
    printf("weft-fetch: %llu requests (%zu URL%s x %llu, at most %llu at "
           "once): %llu succeeded, %llu failed in %.3f s (%.0f requests/s)\n",
           (unsigned long long)total, f.ntargets, f.ntargets == 1 ? "" : "s",
           (unsigned long long)f.count, (unsigned long long)f.concurrency,
           (unsigned long long)ok, (unsigned long long)failed, f.seconds,
           f.seconds > 0 ? (double)(ok + failed) / f.seconds : 0.0);
    free(f.targets);
    return failed ? 1 : 0;
}
