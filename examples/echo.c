/* examples/echo.c (weft-echo): a TCP echo server on every worker: each
 * connection is a task that sends back whatever it receives.
 *
 * The receive goes into the worker's pooled buffers (weft_recv_pooled), so
 * an idle connection holds no buffer; the buffer goes back to the pool as
 * soon as its bytes are sent. On SIGINT or SIGTERM it stops accepting,
 * ends every connection (each reads the end of its stream), and exits 0.
 * Listeners, acceptors and the stop are examples/http/tcp_server.c, shared
 * with weft-http.
 *
 * Usage: weft-echo [--port P] [--workers N] [--host ADDR]
 *                  [--per-worker-listeners] [--idle-timeout MS]
 * It prints "weft-echo: listening on ADDR:PORT ..." on stdout. Must never
 * hold a pooled buffer while it waits for the peer to send more. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

#include "http/cli.h"
#include "http/tcp_server.h"

struct app {
    const char *host;
    uint16_t port;
    bool per_worker;
    uint64_t idle_ns; /* 0: none */
    int sigfd;
    _Atomic uint64_t bytes;
};

static void echo(struct tcp_server *s, int fd, void *ctx)
{
    struct app *a = ctx;
    uint64_t bytes = 0;
    (void)s;
    for (;;) {
        weft_rbuf_t rb;
        uint64_t deadline = a->idle_ns ? weft_now_ns() + a->idle_ns
                                       : WEFT_NO_DEADLINE;
        ssize_t n = weft_recv_pooled(fd, &rb, deadline);
        if (n <= 0)
            break; /* the end of the stream, idle, reset, or the stop */
        ssize_t w = weft_send_all(fd, rb.data, rb.len, NULL, WEFT_NO_DEADLINE);
        weft_rbuf_release(&rb);
        if (w < 0)
            break;
        bytes += (uint64_t)n;
    }
    atomic_fetch_add_explicit(&a->bytes, bytes, memory_order_relaxed);
}

static intptr_t app_main(void *arg)
{
    struct app *a = arg;
    struct tcp_server_config cfg = {
        .host = a->host,
        .port = a->port,
        .per_worker = a->per_worker,
        .nodelay = true,
        .name = "echo conn",
        .label = "weft-echo",
        .serve = echo,
        .ctx = a,
    };
    struct tcp_server *s;
    int err = tcp_server_start(&cfg, &s);
    if (err) {
        fprintf(stderr, "weft-echo: cannot listen on %s port %u: %s\n",
                a->host, a->port, strerror(-err));
        return err;
    }
    int workers = weft_worker_count();
    printf("weft-echo: listening on %s%s%s:%d with %d worker%s\n",
           strchr(a->host, ':') ? "[" : "", a->host,
           strchr(a->host, ':') ? "]" : "", tcp_server_port(s), workers,
           workers == 1 ? "" : "s");
    fflush(stdout);
    int sig = cli_signals_wait(a->sigfd);
    fprintf(stderr, "weft-echo: %s: closing\n",
            sig > 0 ? strsignal(sig) : strerror(-sig));
    uint64_t conns = 0;
    tcp_server_stop(s, &conns);
    fprintf(stderr, "weft-echo: stopped after echoing %llu bytes on %llu "
            "connections\n", (unsigned long long)atomic_load(&a->bytes),
            (unsigned long long)conns);
    return 0;
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: weft-echo [--port P] [--workers N] [--host ADDR]\n"
            "                 [--per-worker-listeners] [--idle-timeout MS]\n"
            "  --port P                port to listen on (default 7007; 0: "
            "any free port)\n"
            "  --workers N             worker threads (default: one per "
            "core)\n"
            "  --host ADDR             numeric address to listen on (default "
            "127.0.0.1)\n"
            "  --per-worker-listeners  one SO_REUSEPORT listener per worker\n"
            "  --idle-timeout MS       close connections idle this long "
            "(default: never)\n");
}

int main(int argc, char **argv)
{
    static struct app a;
    a.host = "127.0.0.1";
    a.port = 7007;
    uint64_t workers = 0, v;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(opt, "--per-worker-listeners")) {
            a.per_worker = true;
            continue;
        } else if (!strcmp(opt, "--port") && cli_uint(val, 0, 65535, &v)) {
            a.port = (uint16_t)v;
        } else if (!strcmp(opt, "--workers") &&
                   cli_uint(val, 1, WEFT_MAX_WORKERS, &v)) {
            workers = v;
        } else if (!strcmp(opt, "--host") && val) {
            a.host = val;
        } else if (!strcmp(opt, "--idle-timeout") &&
                   cli_uint(val, 1, UINT32_MAX, &v)) {
            a.idle_ns = v * 1000000ull;
        } else {
            fprintf(stderr, "weft-echo: bad argument '%s%s%s'\n", opt,
                    val ? " " : "", val ? val : "");
            usage(stderr);
            return 2;
        }
        i++;
    }
    weft_addr_t probe;
    if (weft_addr_ip(&probe, a.host, 0)) {
        fprintf(stderr, "weft-echo: --host wants a numeric IPv4 or IPv6 "
                "address, not '%s'\n", a.host);
        return 2;
    }
    cli_raise_fd_limit();
    a.sigfd = cli_signals_block();
    if (a.sigfd < 0) {
        fprintf(stderr, "weft-echo: signalfd: %s\n", strerror(-a.sigfd));
        return 1;
    }
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = (unsigned)workers;
    intptr_t result = 0;
    int err = weft_run(&cfg, app_main, &a, &result);
    if (err) {
        fprintf(stderr, "weft-echo: cannot start the runtime: %s\n",
                strerror(-err));
        return 1;
    }
    return result == 0 ? 0 : 1;
}
