/* examples/http/inbuf.h: a connection's input, for the HTTP server and
 * client. Entry points: http_inbuf_fill, http_inbuf_keep.
 *
 * Data is received into the worker's pooled buffers (weft_recv_pooled), so
 * a connection waiting for its next message holds no memory of its own:
 * ten thousand idle keep-alive connections cost ten thousand fds, not ten
 * thousand buffers. Complete messages are parsed where they landed (zero
 * copy). Only a message that arrived in pieces is copied, once, into a
 * small heap buffer of the connection's, where its later pieces are
 * received directly.
 *
 * Usage: parse and consume what is available; then http_inbuf_keep (the
 * rest is a partial message: keep it, give the pooled buffer back); then
 * http_inbuf_fill to receive more. Also call http_inbuf_keep before a long
 * wait (a slow handler) so that no pooled buffer is held across it.
 * Fibers only. Must never: hold a pooled buffer across a fill, or lose
 * unconsumed bytes. */
#ifndef WEFT_EXAMPLES_HTTP_INBUF_H
#define WEFT_EXAMPLES_HTTP_INBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <weft.h>

struct http_inbuf {
    const char *data; /* the unconsumed bytes are data[off..len) */
    size_t off, len;
    weft_rbuf_t rb;   /* the pooled buffer data points into, if any */
    char *heap;       /* for a partial message: cap bytes, made on demand */
    size_t cap;
};

/* An empty input whose partial messages may take up to max_partial bytes
 * (at least WEFT_RBUF_SIZE is used, so that any received chunk fits). */
void http_inbuf_init(struct http_inbuf *in, size_t max_partial);

/* Give everything back. */
void http_inbuf_free(struct http_inbuf *in);

static inline size_t http_inbuf_avail(const struct http_inbuf *in)
{
    return in->len - in->off;
}

static inline const char *http_inbuf_ptr(const struct http_inbuf *in)
{
    return in->data + in->off;
}

static inline void http_inbuf_consume(struct http_inbuf *in, size_t n)
{
    in->off += n;
}

/* Keep the unconsumed bytes (moving them to the start of the heap buffer)
 * and give the pooled buffer back. Returns 0, or -ENOMEM (nothing
 * changed). */
int http_inbuf_keep(struct http_inbuf *in);

/* Receive more, after http_inbuf_keep: into a pooled buffer if nothing is
 * kept, else after the kept bytes. Returns the bytes received (> 0), 0 at
 * the end of the stream, -ENOBUFS if the kept bytes fill the heap buffer
 * (a message larger than max_partial), or weft_recv's errors (-ETIMEDOUT
 * at deadline_ns, -ECANCELED, -ECONNRESET, ...). */
ssize_t http_inbuf_fill(struct http_inbuf *in, int fd, uint64_t deadline_ns);

#endif /* WEFT_EXAMPLES_HTTP_INBUF_H */
