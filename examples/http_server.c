/* examples/http_server.c (weft-http): an HTTP/1.1 server on every worker.
 *
 *   GET /              200 "Hello, World!" (TechEmpower's plaintext test)
 *   GET /delay?ms=N    the same after N ms: a slow API to call
 *
 * Keep-alive and pipelining; bad requests get 400 (or 414/431/501/505) and
 * a close; idle and trickling clients are closed after a timeout. On
 * SIGINT or SIGTERM it stops accepting, finishes the requests in flight,
 * closes every connection and exits 0. The server itself is
 * examples/http/server.c (its parser examples/http/parser.c); this file is
 * the program around it.
 *
 * Usage: weft-http [--port P] [--workers N] [--host ADDR]
 *                  [--per-worker-listeners] [--idle-timeout MS]
 *                  [--request-timeout MS]
 * It prints "weft-http: listening on http://ADDR:PORT/ ..." on stdout once
 * it accepts (with --port 0, the port it got). Must never take a signal in
 * a handler: SIGINT and SIGTERM are blocked before the runtime starts and
 * read from a signalfd by the main task (examples/http/cli.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

#include "http/cli.h"
#include "http/server.h"

struct app {
    struct http_server_config cfg;
    int sigfd;
};

static intptr_t app_main(void *arg)
{
    struct app *a = arg;
    struct http_server *s;
    int err = http_server_start(&a->cfg, &s);
    if (err) {
        fprintf(stderr, "weft-http: cannot listen on %s port %u: %s\n",
                a->cfg.host, a->cfg.port, strerror(-err));
        return err;
    }
    int workers = weft_worker_count();
    printf("weft-http: listening on http://%s%s%s:%d/ with %d worker%s\n",
           strchr(a->cfg.host, ':') ? "[" : "", a->cfg.host,
           strchr(a->cfg.host, ':') ? "]" : "", http_server_port(s), workers,
           workers == 1 ? "" : "s");
    fflush(stdout);

    /* The main task waits for a signal; the server's tasks do the work. */
    int sig = cli_signals_wait(a->sigfd);
    fprintf(stderr, "weft-http: %s: finishing the requests in flight\n",
            sig > 0 ? strsignal(sig) : strerror(-sig));
    struct http_server_stats st;
    err = http_server_stop(s, &st);
    fprintf(stderr, "weft-http: stopped after %llu requests on %llu "
            "connections%s\n", (unsigned long long)st.requests,
            (unsigned long long)st.connections,
            err ? " (some connections were cut after the drain timeout)" : "");
    return 0;
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: weft-http [--port P] [--workers N] [--host ADDR]\n"
            "                 [--per-worker-listeners] [--idle-timeout MS]\n"
            "                 [--request-timeout MS]\n"
            "  --port P                 port to listen on (default 8080; 0: "
            "any free port)\n"
            "  --workers N              worker threads (default: one per "
            "core)\n"
            "  --host ADDR              numeric address to listen on "
            "(default 127.0.0.1)\n"
            "  --per-worker-listeners   one SO_REUSEPORT listener per "
            "worker instead of\n"
            "                           one shared listener\n"
            "  --idle-timeout MS        close keep-alive connections idle "
            "this long (10000)\n"
            "  --request-timeout MS     a request must arrive whole within "
            "this (10000)\n");
}

int main(int argc, char **argv)
{
    struct app a;
    memset(&a, 0, sizeof a);
    a.cfg.host = "127.0.0.1";
    a.cfg.port = 8080;
    uint64_t workers = 0, v;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(opt, "--per-worker-listeners")) {
            a.cfg.per_worker = true;
            continue;
        } else if (!strcmp(opt, "--port") && cli_uint(val, 0, 65535, &v)) {
            a.cfg.port = (uint16_t)v;
        } else if (!strcmp(opt, "--workers") &&
                   cli_uint(val, 1, WEFT_MAX_WORKERS, &v)) {
            workers = v;
        } else if (!strcmp(opt, "--host") && val) {
            a.cfg.host = val;
        } else if (!strcmp(opt, "--idle-timeout") &&
                   cli_uint(val, 1, UINT32_MAX, &v)) {
            a.cfg.idle_timeout_ms = (uint32_t)v;
        } else if (!strcmp(opt, "--request-timeout") &&
                   cli_uint(val, 1, UINT32_MAX, &v)) {
            a.cfg.request_timeout_ms = (uint32_t)v;
        } else {
            fprintf(stderr, "weft-http: bad argument '%s%s%s'\n", opt,
                    val ? " " : "", val ? val : "");
            usage(stderr);
            return 2;
        }
        i++;
    }
    weft_addr_t probe;
    if (weft_addr_ip(&probe, a.cfg.host, 0)) {
        fprintf(stderr, "weft-http: --host wants a numeric IPv4 or IPv6 "
                "address, not '%s'\n", a.cfg.host);
        return 2;
    }
    cli_raise_fd_limit();
    a.sigfd = cli_signals_block();
    if (a.sigfd < 0) {
        fprintf(stderr, "weft-http: signalfd: %s\n", strerror(-a.sigfd));
        return 1;
    }
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = (unsigned)workers;
    intptr_t result = 0;
    int err = weft_run(&cfg, app_main, &a, &result);
    if (err) {
        fprintf(stderr, "weft-http: cannot start the runtime: %s\n",
                strerror(-err));
        return 1;
    }
    return result == 0 ? 0 : 1;
}
