/* examples/http/server.h: the HTTP/1.1 server of weft-http, usable in any
 * weft program (the demo starts one beside its client; the tests start
 * them on ephemeral ports). Entry points: http_server_start,
 * http_server_stop.
 *
 * It answers
 *   GET /              200 "Hello, World!" (text/plain, TechEmpower's
 *                      plaintext test)
 *   GET /delay?ms=N    the same, after sleeping N ms (a slow API to call)
 * HEAD as GET without the body; 404 for other paths, 405 for other
 * methods. Keep-alive, pipelining (answered in order, the answers to one
 * batch of requests sent together), request bodies (read and dropped),
 * Expect: 100-continue. Malformed requests get 400 (414, 431, 501, 505
 * where those say more) and the connection is closed; a client idle
 * between requests longer than idle_timeout_ms is closed; one that takes
 * longer than request_timeout_ms to send a request (trickling) gets 408 and
 * is closed; one that does not take a response within write_timeout_ms is
 * closed. tcp_server.h describes the graceful stop. It must never answer
 * a pipelined request before the ones sent ahead of it. */
#ifndef WEFT_EXAMPLES_HTTP_SERVER_H
#define WEFT_EXAMPLES_HTTP_SERVER_H

#include <stdbool.h>
#include <stdint.h>

struct http_server_config {
    const char *host;            /* numeric; NULL: "127.0.0.1" */
    uint16_t port;               /* 0: any free port */
    bool per_worker;             /* one SO_REUSEPORT listener per worker */
    uint32_t idle_timeout_ms;    /* 0: 10000 */
    uint32_t request_timeout_ms; /* from a request's first byte; 0: 10000 */
    uint32_t write_timeout_ms;   /* per response; 0: 10000 */
    uint32_t drain_timeout_ms;   /* for in-flight requests at stop; 0: 10000 */
    uint32_t max_head;           /* request line + headers; 0: 8192 */
    uint64_t max_body;           /* 0: 1 MiB; larger: 413 and close */
    uint32_t max_delay_ms;       /* the most /delay sleeps; 0: 60000 */
};

struct http_server;

/* Counts since the start (requests: answered with any status). */
struct http_server_stats {
    uint64_t connections; /* accepted */
    uint64_t open;        /* open now */
    uint64_t requests;    /* answered, on connections already closed */
};

/* Start serving (cfg NULL: the defaults). Returns 0 and *out, or -errno
 * (-EADDRINUSE, -EINVAL, -ENOMEM, ...). Fibers only. */
int http_server_start(const struct http_server_config *cfg,
                      struct http_server **out);

/* The port it listens on. */
int http_server_port(const struct http_server *s);

void http_server_stats(const struct http_server *s,
                       struct http_server_stats *out);

/* Stop: stop accepting, let in-flight requests finish (at most
 * drain_timeout_ms), close every connection, free the server; the final
 * counts go to *final if it is not NULL. Returns 0, or -ETIMEDOUT if some
 * connections had to be cut. Fibers only; once. */
int http_server_stop(struct http_server *s, struct http_server_stats *final);

#endif /* WEFT_EXAMPLES_HTTP_SERVER_H */
