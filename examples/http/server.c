/* examples/http/server.c: the HTTP/1.1 server of server.h. Entry points:
 * http_server_start, http_server_stop; serve() is a connection's life.
 *
 * A connection is one task running serve(): receive (into the worker's
 * pooled buffers, inbuf.h), parse every complete request that arrived
 * (parser.h), append each answer to an output buffer on the task's stack,
 * and send the whole batch at once before waiting for more. Pipelined
 * requests are thus answered in order and together. The only request that
 * waits, /delay, first sends the answers before it and gives back its
 * pooled buffer, so a sleeping connection holds nothing but its stack.
 *
 * Timeouts are I/O deadlines: between requests the receive has the idle
 * deadline; once part of a request has arrived, every receive has that
 * request's one absolute deadline, set at its first wait (so trickling
 * does not extend it; a request that arrives whole never reads the clock);
 * a send that cannot complete at once gets the write deadline.
 * Must never: answer out of order, read past what the parser accepted as
 * one request, or keep a pooled buffer across a sleep. */
#include "server.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <weft.h>

#include "inbuf.h"
#include "parser.h"
#include "tcp_server.h"

struct http_server {
    struct http_server_config cfg; /* defaults filled in */
    uint64_t idle_ns, request_ns, write_ns;
    struct tcp_server *tcp;
    _Atomic uint64_t requests;
};

/* The output batch lives on the connection's stack: answers are a few
 * hundred bytes, so 4 KiB holds a batch of 16 pipelined ones. */
#define OUT_CAP 4096u
/* Lingering close: after a final answer, read (and drop) what the client
 * still sends for this long, so that closing does not reset the
 * connection before the client read the answer. */
#define LINGER_NS (1000ull * 1000 * 1000)
#define LINGER_BYTES (64u * 1024)

static const char hello[] = "Hello, World!";

/* ---- The Date header ------------------------------------------------------------- */

/* Formatted once a second per thread. Read and copied without a switch in
 * between: a fiber may move to another thread at any switch, so no
 * address of this is ever kept. */
static __thread struct {
    time_t sec;
    char text[64]; /* room for any year: snprintf must not truncate */
} date_cache;

#define DATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */

__attribute__((noinline)) static void put_date(char *dst)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                     "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != date_cache.sec || !date_cache.text[0]) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(date_cache.text, sizeof date_cache.text,
                 "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
                 tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        date_cache.sec = ts.tv_sec;
    }
    memcpy(dst, date_cache.text, DATE_LEN);
}

/* ---- The output batch ---------------------------------------------------------- */

struct out {
    int fd;
    uint32_t len;
    uint64_t write_ns;
    char buf[OUT_CAP];
};

/* Send the batch. The first try never waits (MSG_DONTWAIT): on loopback
 * and on most networks the socket takes it all at once, and then no
 * deadline (a kernel timer) is armed at all. */
static int out_flush(struct out *o)
{
    size_t len = o->len, done = 0;
    if (!len)
        return 0;
    o->len = 0;
    ssize_t r = weft_send(o->fd, o->buf, len, MSG_DONTWAIT, WEFT_NO_DEADLINE);
    if (r == (ssize_t)len)
        return 0;
    if (r < 0 && r != -EAGAIN)
        return (int)r;
    if (r > 0)
        done = (size_t)r;
    r = weft_send_all(o->fd, o->buf + done, len - done, NULL,
                      weft_now_ns() + o->write_ns);
    return r < 0 ? (int)r : 0;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* What to answer, decided when the request's head was parsed (its bytes
 * may be gone by the time the answer is written). */
struct answer {
    int status;
    uint32_t delay_ms;      /* /delay: sleep first */
    bool head_only;         /* HEAD: no body */
    bool close;             /* Connection: close, and close after it */
    bool keep_alive_10;     /* an HTTP/1.0 client asked for keep-alive */
    bool allow;             /* 405: say what is allowed */
    const char *body;       /* not 200: NULL is the reason and a newline */
};

/* The common answer, in few copies. */
static const char ok_head[] = "HTTP/1.1 200 OK\r\n"
                              "Server: weft\r\n"
                              "Content-Type: text/plain\r\n"
                              "Content-Length: 13\r\n"
                              "Date: ";

/* Append the answer to the batch (sending the batch first if it is full).
 * Returns 0 or a send's error. */
static int put_answer(struct out *o, const struct answer *a)
{
    if (o->len + 512 > OUT_CAP) {
        int err = out_flush(o);
        if (err)
            return err;
    }
    char *p = o->buf + o->len;
    if (a->status == 200 && !a->close && !a->keep_alive_10) {
        p = put(p, ok_head, sizeof ok_head - 1);
        put_date(p);
        p += DATE_LEN;
        p = PUT_LIT(p, "\r\n\r\n");
        if (!a->head_only)
            p = put(p, hello, sizeof hello - 1);
        o->len = (uint32_t)(p - o->buf);
        return 0;
    }
    const char *reason = http_reason(a->status);
    char body[64];
    const char *b = a->body;
    size_t blen;
    if (a->status == 200) {
        b = hello;
        blen = sizeof hello - 1;
    } else if (b) {
        blen = strlen(b);
    } else {
        blen = (size_t)snprintf(body, sizeof body, "%s\n", reason);
        b = body;
    }
    p = PUT_LIT(p, "HTTP/1.1 ");
    p = put_u64(p, (uint64_t)a->status);
    *p++ = ' ';
    p = put(p, reason, strlen(reason));
    p = PUT_LIT(p, "\r\nServer: weft\r\nContent-Type: text/plain\r\n"
                   "Content-Length: ");
    p = put_u64(p, blen);
    p = PUT_LIT(p, "\r\nDate: ");
    put_date(p);
    p += DATE_LEN;
    p = PUT_LIT(p, "\r\n");
    if (a->allow)
        p = PUT_LIT(p, "Allow: GET, HEAD\r\n");
    if (a->close)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (a->keep_alive_10)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    p = PUT_LIT(p, "\r\n");
    if (!a->head_only)
        p = put(p, b, blen);
    o->len = (uint32_t)(p - o->buf);
    return 0;
}

/* ---- Routing ------------------------------------------------------------------- */

/* The value of query parameter `ms` as a number <= max, or -1. */
static int64_t query_ms(const char *q, size_t len, uint32_t max)
{
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && q[end] != '&')
            end++;
        if (end - i > 3 && memcmp(q + i, "ms=", 3) == 0) {
            int64_t v = 0;
            size_t j = i + 3;
            for (; j < end; j++) {
                if (q[j] < '0' || q[j] > '9' || v > max)
                    return -1;
                v = v * 10 + (q[j] - '0');
            }
            return v <= max ? v : -1;
        }
        i = end + 1;
    }
    return -1;
}

static void route(const struct http_server *s, const struct http_head *h,
                  const char *buf, struct answer *a)
{
    memset(a, 0, sizeof *a);
    a->close = !h->keep_alive;
    a->keep_alive_10 = h->minor == 0 && h->keep_alive;
    bool get = http_span_eq(buf, h->method, "GET");
    bool head = http_span_eq(buf, h->method, "HEAD");
    a->head_only = head;

    const char *t = http_ptr(buf, h->target);
    size_t tlen = h->target.len;
    /* The absolute form (RFC 9112 3.2.2): drop the scheme and authority. */
    if (tlen >= 7 && strncasecmp(t, "http://", 7) == 0) {
        size_t i = 7;
        while (i < tlen && t[i] != '/' && t[i] != '?')
            i++;
        t += i;
        tlen -= i;
    }
    size_t plen = 0;
    while (plen < tlen && t[plen] != '?')
        plen++;
    const char *q = plen < tlen ? t + plen + 1 : t + tlen;
    size_t qlen = plen < tlen ? tlen - plen - 1 : 0;

    bool root = plen == 0 || (plen == 1 && t[0] == '/');
    bool delay = plen == 6 && memcmp(t, "/delay", 6) == 0;
    if (!root && !delay) {
        a->status = 404;
        return;
    }
    if (!get && !head) {
        a->status = 405;
        a->allow = true;
        return;
    }
    a->status = 200;
    if (delay) {
        int64_t ms = query_ms(q, qlen, s->cfg.max_delay_ms);
        if (ms < 0) {
            a->status = 400;
            a->body = "/delay wants ?ms=N, N a number of milliseconds "
                      "(at most the server's limit)\n";
            return;
        }
        a->delay_ms = (uint32_t)ms;
    }
}

/* ---- A connection -------------------------------------------------------------- */

/* After a final answer: stop sending, drop what the client still sends
 * for a while (or until it closes), so that the close does not turn into
 * a reset that destroys the answer in the client's receive buffer. */
static void linger(int fd, struct http_inbuf *in)
{
    weft_shutdown(fd, SHUT_WR);
    uint64_t deadline = weft_now_ns() + LINGER_NS;
    size_t total = 0;
    in->off = in->len; /* drop what is buffered */
    while (total < LINGER_BYTES) {
        ssize_t n = http_inbuf_fill(in, fd, deadline);
        if (n <= 0)
            break;
        total += (size_t)n;
        in->off = in->len;
    }
}

/* A final answer (an error): send it with what is batched, then close. */
static void fail(struct out *o, struct http_inbuf *in, int status)
{
    struct answer a = {.status = status, .close = true};
    if (put_answer(o, &a) == 0 && out_flush(o) == 0)
        linger(o->fd, in);
}

static void serve(struct tcp_server *ts, int fd, void *ctx)
{
    struct http_server *s = ctx;
    struct http_inbuf in;
    struct http_parser p;
    struct http_chunked ck;
    struct answer a;
    struct out o;
    o.fd = fd;
    o.len = 0;
    o.write_ns = s->write_ns;
    http_inbuf_init(&in, s->cfg.max_head);
    bool in_request = false; /* some bytes of the next request arrived */
    bool in_body = false;
    uint64_t req_deadline = 0; /* 0: not yet waited for this request */
    uint64_t body_left = 0, body_seen = 0;
    uint64_t answered = 0;

    for (;;) {
        /* Answer every request that is complete in what arrived. */
        for (;;) {
            if (!in_body) {
                size_t avail = http_inbuf_avail(&in);
                if (!avail)
                    break;
                if (!in_request) {
                    in_request = true;
                    req_deadline = 0;
                    http_parser_init(&p, HTTP_REQUEST, s->cfg.max_head,
                                     NULL, 0);
                }
                int r = http_parse(&p, http_inbuf_ptr(&in), avail);
                if (r == HTTP_INCOMPLETE)
                    break;
                if (r < 0) {
                    fail(&o, &in, -r);
                    goto out;
                }
                route(s, &p.head, http_inbuf_ptr(&in), &a);
                http_inbuf_consume(&in, (size_t)r);
                if (p.head.chunked) {
                    http_chunked_init(&ck);
                    in_body = true;
                    body_seen = 0;
                } else if (p.head.has_length && p.head.content_length) {
                    if (p.head.content_length > s->cfg.max_body) {
                        fail(&o, &in, 413);
                        goto out;
                    }
                    in_body = true;
                    body_left = p.head.content_length;
                }
                if (in_body && p.head.expect_continue &&
                    http_inbuf_avail(&in) == 0) {
                    /* The client waits for this before it sends the body. */
                    if (o.len + 25 > OUT_CAP && out_flush(&o))
                        goto out;
                    memcpy(o.buf + o.len, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                    o.len += 25;
                    if (out_flush(&o))
                        goto out;
                }
            }
            if (in_body) {
                /* Read and drop the body. */
                size_t avail = http_inbuf_avail(&in);
                if (p.head.chunked) {
                    int r = HTTP_CHUNKED_MORE;
                    while (avail) {
                        size_t used, off, n;
                        r = http_chunked_step(&ck, http_inbuf_ptr(&in), avail,
                                              &used, &off, &n);
                        http_inbuf_consume(&in, used);
                        avail -= used;
                        body_seen += n;
                        if (r == HTTP_CHUNKED_BAD) {
                            fail(&o, &in, 400);
                            goto out;
                        }
                        if (body_seen > s->cfg.max_body) {
                            fail(&o, &in, 413);
                            goto out;
                        }
                        if (r == HTTP_CHUNKED_DONE)
                            break;
                    }
                    if (r != HTTP_CHUNKED_DONE)
                        break; /* more to come */
                } else {
                    size_t n = avail < body_left ? avail : (size_t)body_left;
                    http_inbuf_consume(&in, n);
                    body_left -= n;
                    if (body_left)
                        break;
                }
                in_body = false;
            }
            /* The request is complete: answer it. */
            in_request = false;
            if (a.delay_ms) {
                /* Answers before this one go now, and no pooled buffer is
                 * held while sleeping. */
                if (out_flush(&o) || http_inbuf_keep(&in))
                    goto out;
                if (weft_sleep_ms(a.delay_ms))
                    goto out; /* cancelled: the server is being cut */
            }
            if (tcp_server_draining(ts))
                a.close = true;
            if (put_answer(&o, &a))
                goto out;
            answered++;
            if (a.close) {
                if (out_flush(&o) == 0)
                    linger(fd, &in);
                goto out;
            }
        }
        /* Nothing complete is left: send the batch, wait for more. */
        if (out_flush(&o) || tcp_server_draining(ts) || http_inbuf_keep(&in))
            goto out;
        uint64_t now = weft_now_ns();
        if (in_request && !req_deadline)
            req_deadline = now + s->request_ns;
        ssize_t n = http_inbuf_fill(&in, fd, in_request ? req_deadline
                                                        : now + s->idle_ns);
        if (n > 0)
            continue;
        if (n == -ETIMEDOUT && in_request)
            fail(&o, &in, 408); /* a trickling client */
        /* Otherwise: the client closed, went idle, reset; or the server
         * is being cut (-ECANCELED). */
        goto out;
    }
out:
    http_inbuf_free(&in);
    atomic_fetch_add_explicit(&s->requests, answered, memory_order_relaxed);
}

/* ---- Start and stop -------------------------------------------------------------- */

int http_server_start(const struct http_server_config *cfg,
                      struct http_server **out)
{
    if (!out)
        return -EINVAL;
    struct http_server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    if (cfg)
        s->cfg = *cfg;
    struct http_server_config *c = &s->cfg;
    if (!c->idle_timeout_ms)
        c->idle_timeout_ms = 10000;
    if (!c->request_timeout_ms)
        c->request_timeout_ms = 10000;
    if (!c->write_timeout_ms)
        c->write_timeout_ms = 10000;
    if (!c->max_head)
        c->max_head = HTTP_DEFAULT_MAX_HEAD;
    if (c->max_head > HTTP_MAX_HEAD_LIMIT)
        c->max_head = HTTP_MAX_HEAD_LIMIT;
    if (!c->max_body)
        c->max_body = 1u << 20;
    if (!c->max_delay_ms)
        c->max_delay_ms = 60000;
    s->idle_ns = (uint64_t)c->idle_timeout_ms * 1000000ull;
    s->request_ns = (uint64_t)c->request_timeout_ms * 1000000ull;
    s->write_ns = (uint64_t)c->write_timeout_ms * 1000000ull;
    struct tcp_server_config tc = {
        .host = c->host,
        .port = c->port,
        .per_worker = c->per_worker,
        .nodelay = true,
        .drain_timeout_ms = c->drain_timeout_ms,
        .name = "http conn",
        .label = "http server",
        .serve = serve,
        .ctx = s,
    };
    int err = tcp_server_start(&tc, &s->tcp);
    if (err) {
        free(s);
        return err;
    }
    *out = s;
    return 0;
}

int http_server_port(const struct http_server *s)
{
    return tcp_server_port(s->tcp);
}

void http_server_stats(const struct http_server *s,
                       struct http_server_stats *out)
{
    out->connections = tcp_server_accepted(s->tcp);
    out->open = tcp_server_open(s->tcp);
    out->requests = atomic_load_explicit(&s->requests, memory_order_relaxed);
}

int http_server_stop(struct http_server *s, struct http_server_stats *final)
{
    if (!s)
        return -EINVAL;
    uint64_t accepted = 0;
    int err = tcp_server_stop(s->tcp, &accepted);
    if (final) {
        final->connections = accepted;
        final->open = 0;
        final->requests =
            atomic_load_explicit(&s->requests, memory_order_relaxed);
    }
    free(s);
    return err;
}
