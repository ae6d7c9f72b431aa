/* examples/http/inbuf.c: a connection's input (inbuf.h). Entry points:
 * http_inbuf_fill, http_inbuf_keep. Must never hold a pooled buffer across
 * a fill or lose an unconsumed byte. */
#include "inbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void http_inbuf_init(struct http_inbuf *in, size_t max_partial)
{
    memset(in, 0, sizeof *in);
    in->cap = max_partial < WEFT_RBUF_SIZE ? WEFT_RBUF_SIZE : max_partial;
}

void http_inbuf_free(struct http_inbuf *in)
{
    weft_rbuf_release(&in->rb);
    free(in->heap);
    in->heap = NULL;
    in->data = NULL;
    in->off = in->len = 0;
}

int http_inbuf_keep(struct http_inbuf *in)
{
    size_t n = http_inbuf_avail(in);
    if (n && in->data != in->heap) {
        /* In a pooled buffer (at most WEFT_RBUF_SIZE <= cap bytes). */
        if (!in->heap && !(in->heap = malloc(in->cap)))
            return -ENOMEM;
        memcpy(in->heap, in->data + in->off, n);
    } else if (n && in->off) {
        memmove(in->heap, in->heap + in->off, n);
    }
    weft_rbuf_release(&in->rb);
    in->data = n ? in->heap : NULL;
    in->off = 0;
    in->len = n;
    return 0;
}

ssize_t http_inbuf_fill(struct http_inbuf *in, int fd, uint64_t deadline_ns)
{
    if (http_inbuf_avail(in) == 0) {
        weft_rbuf_release(&in->rb);
        in->data = NULL;
        in->off = in->len = 0;
        ssize_t n = weft_recv_pooled(fd, &in->rb, deadline_ns);
        if (n > 0) {
            in->data = in->rb.data;
            in->len = (size_t)n;
        }
        return n;
    }
    /* Kept bytes: receive after them, in the heap buffer. */
    if (in->data != in->heap || in->off != 0) {
        int err = http_inbuf_keep(in);
        if (err)
            return err;
    }
    if (in->len == in->cap)
        return -ENOBUFS;
    ssize_t n = weft_recv(fd, in->heap + in->len, in->cap - in->len, 0,
                          deadline_ns);
    if (n > 0)
        in->len += (size_t)n;
    return n;
}
