/* examples/http/tcp_server.h: the skeleton of a TCP server on weft, shared
 * by weft-http and weft-echo: listeners, acceptor tasks, one task per
 * connection, and a graceful stop. Entry points: tcp_server_start,
 * tcp_server_stop.
 *
 * Listening: one shared listener (its multishot accept runs on one worker;
 * the connection tasks spread over every worker by work stealing), or one
 * SO_REUSEPORT listener per worker, each with an acceptor task pinned to
 * its worker (the kernel spreads connections by their addresses).
 *
 * Stopping (tcp_server_stop), in order:
 *  1. draining is set: connection tasks that start from now on close at
 *     once, and serve functions see tcp_server_draining() and close after
 *     the response in progress;
 *  2. the listeners are closed (weft_close ends their acceptors' waits);
 *     connections not yet accepted are refused by the kernel;
 *  3. every open connection gets shutdown(SHUT_RD): one waiting for a
 *     request reads the end of the stream and closes; one busy with a
 *     request finishes it (sends still work) and then closes;
 *  4. the stop waits for every connection task, at most drain_timeout_ms;
 *     past that, the rest are shut down both ways and cancelled.
 * Must never: close a connection's fd while its task may still use it,
 * or free the server while a connection task runs. */
#ifndef WEFT_EXAMPLES_HTTP_TCP_SERVER_H
#define WEFT_EXAMPLES_HTTP_TCP_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <weft.h>

struct tcp_server;

/* A connection's life: called on its own task; returns when the
 * connection is done. The skeleton closes fd afterwards. */
typedef void (*tcp_serve_fn)(struct tcp_server *s, int fd, void *ctx);

struct tcp_server_config {
    const char *host;   /* a numeric address; NULL: "127.0.0.1" */
    uint16_t port;      /* 0: any free port (see tcp_server_port) */
    bool per_worker;    /* one SO_REUSEPORT listener per worker */
    bool nodelay;       /* TCP_NODELAY on every connection */
    uint32_t drain_timeout_ms; /* 0: 10000 */
    const char *name;   /* names the tasks in weft_dump ("http conn") */
    const char *label;  /* names the server in messages ("weft-echo") */
    tcp_serve_fn serve;
    void *ctx;          /* passed to serve */
};

/* Listen and start accepting. Returns 0 and *out, or -errno (-EINVAL for
 * a bad host or a NULL serve, -EADDRINUSE, -ENOMEM, ...) with nothing left
 * behind. Fibers only. */
int tcp_server_start(const struct tcp_server_config *cfg,
                     struct tcp_server **out);

/* The port it listens on. */
int tcp_server_port(const struct tcp_server *s);

/* Whether a stop has begun: a serve function checks it between requests. */
bool tcp_server_draining(const struct tcp_server *s);

/* Connections accepted so far, and open now. */
uint64_t tcp_server_accepted(const struct tcp_server *s);
uint64_t tcp_server_open(const struct tcp_server *s);

/* Stop as the header describes and free the server; *accepted (if not
 * NULL) gets the connections accepted in all. Returns 0, or -ETIMEDOUT if
 * connections had to be cancelled after the drain timeout. Fibers only;
 * once. */
int tcp_server_stop(struct tcp_server *s, uint64_t *accepted);

#endif /* WEFT_EXAMPLES_HTTP_TCP_SERVER_H */
