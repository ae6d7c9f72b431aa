/* examples/http/client.h: a small HTTP/1.1 client for fibers (http:// only,
 * GET only) with a pool of keep-alive connections per host, for weft-fetch
 * and the demo. Entry points: http_url_parse, http_client_get.
 *
 * Host names are resolved once per host, on the blocking pool
 * (weft_resolve); numeric addresses need no lookup. A request takes an
 * idle connection to its host if there is one, else connects; afterwards
 * the connection goes back to the pool if the response allows it (HTTP/1.1
 * keep-alive, a body of known length read whole). A request that fails on
 * a reused connection before any byte of the response arrived (the server
 * closed it while idle) is retried once on a new connection, as GET is
 * idempotent. It must never reuse a connection whose response was not read
 * whole, nor send anything but GET (only GET may be retried safely). */
#ifndef WEFT_EXAMPLES_HTTP_CLIENT_H
#define WEFT_EXAMPLES_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A parsed http:// URL. path points into the string given to
 * http_url_parse, which must outlive the struct. */
struct http_url {
    char host[256];    /* a name, an IPv4 address, or an IPv6 one (no []) */
    char port[6];      /* "80" unless given */
    char authority[270]; /* host[:port] as the Host header says it */
    const char *path;  /* the path and query, without any #fragment */
    size_t path_len;
    bool slash;        /* path is empty or starts at '?': send "/" first */
};

/* Parse "http://host[:port][/path][?query][#fragment]". Returns 0, or
 * -EINVAL (malformed, user info, an empty host, a bad port),
 * -EPROTONOSUPPORT (another scheme, https:// included: no TLS here),
 * -ENAMETOOLONG (a host over 255 bytes). *out is untouched on error. */
int http_url_parse(const char *url, struct http_url *out);

struct http_client_config {
    unsigned max_idle_per_host; /* idle connections kept; 0: 256 */
    uint32_t max_head;          /* response head limit; 0: 16384 */
};

/* The outcome of a request that got a response. */
struct http_result {
    int status;          /* 100..999 */
    uint64_t body_bytes; /* received (and dropped) */
    bool reused;         /* it went over a pooled connection */
};

struct http_client;

/* Create a client (cfg NULL: defaults). Returns 0 and *out, -ENOMEM or
 * -EINVAL. Any thread. */
int http_client_create(const struct http_client_config *cfg,
                       struct http_client **out);

/* GET url and read the response. Returns 0 and *res, or -errno: the
 * lookup's (-ENOENT, -EAGAIN), the connection's (-ECONNREFUSED, ...),
 * -ETIMEDOUT at deadline_ns, -ECANCELED, -EPROTO (a malformed or
 * truncated response), -ENOMEM. Fibers only; any number at once. */
int http_client_get(struct http_client *c, const struct http_url *url,
                    struct http_result *res, uint64_t deadline_ns);

/* Close the idle connections and free the client. No request may be in
 * progress. Any thread. */
void http_client_destroy(struct http_client *c);

#endif /* WEFT_EXAMPLES_HTTP_CLIENT_H */
