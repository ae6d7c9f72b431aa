/* tests/http_server.c: the HTTP server of examples/http/server.c, started
 * in-process on an ephemeral loopback port and driven with real sockets,
 * from fibers (weft sockets) and from plain threads (blocking sockets):
 * keep-alive, pipelining, HEAD, 404/405, request bodies, 100-continue,
 * HTTP/1.0, 400/414/431, the idle and request timeouts, /delay, many
 * concurrent clients, running out of fds, and the graceful stop. Every test
 * counts the process's fds before and after, and checks the server's
 * request count exactly. No test asserts a wall-clock upper bound. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "support/weft_test.h"

#include "examples/http/parser.h"
#include "examples/http/server.h"

#define NS_PER_MS 1000000ull
/* A guard against hangs, not a bound being tested. */
#define GUARD_NS (20000ull * NS_PER_MS)

/* ---- The process's fds ------------------------------------------------------ */

static int fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own */
}

/* ---- A test: the server and a body that drives it --------------------------- */

struct ctx {
    struct http_server_config cfg;
    struct http_server *server;
    int port;
    void *arg;
    intptr_t (*body)(struct ctx *c);
    struct http_server_stats final;
    int stop_err;
};

static intptr_t harness(void *arg)
{
    struct ctx *c = arg;
    int err = http_server_start(&c->cfg, &c->server);
    cr_assert_eq(err, 0, "http_server_start: %s", strerror(-err));
    c->port = http_server_port(c->server);
    cr_assert_gt(c->port, 0);
    intptr_t r = c->body(c);
    c->stop_err = http_server_stop(c->server, &c->final);
    return r;
}

/* Run body against a fresh server (cfg's zero fields: short test values),
 * on `workers` workers; check fds; return the final counts. */
static struct ctx run_server(unsigned workers, struct http_server_config cfg,
                             intptr_t (*body)(struct ctx *c), void *arg)
{
    int fds = fd_count();
    struct ctx c;
    memset(&c, 0, sizeof c);
    if (!cfg.idle_timeout_ms)
        cfg.idle_timeout_ms = 5000;
    if (!cfg.request_timeout_ms)
        cfg.request_timeout_ms = 5000;
    if (!cfg.drain_timeout_ms)
        cfg.drain_timeout_ms = 5000;
    c.cfg = cfg;
    c.body = body;
    c.arg = arg;
    weft_config_t wc;
    weft_config_init(&wc);
    wc.workers = workers;
    wc.pin = WEFT_PIN_OFF;
    intptr_t r = run_cfg(&wc, harness, &c);
    cr_assert_eq(r, 0, "the test body failed: %ld", (long)r);
    cr_assert_eq(c.stop_err, 0, "http_server_stop: %s", strerror(-c.stop_err));
    cr_assert_eq(fd_count(), fds, "fds before %d, after %d", fds, fd_count());
    return c;
}

/* ---- A client on a fiber or a plain thread ------------------------------------ */

#define CLIENT_BUF 65536

/* The buffer is on the heap: fiber stacks are 64 KiB. */
struct client {
    int fd;
    bool fiber;
    char *buf;
    size_t len, off;
};

static void client_open(struct client *cl, int port, bool fiber)
{
    memset(cl, 0, sizeof *cl);
    cl->fiber = fiber;
    cl->buf = malloc(CLIENT_BUF);
    cr_assert_not_null(cl->buf);
    weft_addr_t a;
    cr_assert_eq(weft_addr_ip(&a, "127.0.0.1", (uint16_t)port), 0);
    if (fiber) {
        cl->fd = weft_connect(&a, weft_now_ns() + GUARD_NS);
        cr_assert_geq(cl->fd, 0, "connect: %s", strerror(-cl->fd));
        return;
    }
    cl->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(cl->fd, 0);
    struct timeval tv = {.tv_sec = GUARD_NS / 1000000000ull};
    setsockopt(cl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(cl->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    cr_assert_eq(connect(cl->fd, &a.u.sa, a.len), 0, "connect: %s",
                 strerror(errno));
}

static void client_close(struct client *cl)
{
    if (cl->fd >= 0)
        cr_assert_eq(cl->fiber ? weft_close(cl->fd) : close(cl->fd), 0);
    cl->fd = -1;
    free(cl->buf);
    cl->buf = NULL;
}

static void client_send(struct client *cl, const char *s, size_t len)
{
    if (cl->fiber) {
        cr_assert_eq(weft_send_all(cl->fd, s, len, NULL,
                                   weft_now_ns() + GUARD_NS),
                     (ssize_t)len);
        return;
    }
    while (len) {
        ssize_t n = send(cl->fd, s, len, MSG_NOSIGNAL);
        cr_assert_gt(n, 0, "send: %s", strerror(errno));
        s += n;
        len -= (size_t)n;
    }
}

#define SEND(cl, lit) client_send((cl), (lit), sizeof(lit) - 1)

/* Receive more: bytes received, 0 at the end of the stream, or -errno. */
static ssize_t client_fill(struct client *cl)
{
    if (cl->off == cl->len)
        cl->off = cl->len = 0;
    cr_assert_lt(cl->len, CLIENT_BUF, "response too large");
    ssize_t n;
    if (cl->fiber) {
        n = weft_recv(cl->fd, cl->buf + cl->len, CLIENT_BUF - cl->len, 0,
                      weft_now_ns() + GUARD_NS);
    } else {
        n = recv(cl->fd, cl->buf + cl->len, CLIENT_BUF - cl->len, 0);
        if (n < 0)
            n = -errno;
    }
    cr_assert_neq(n, -ETIMEDOUT, "no answer within the guard time");
    cr_assert_neq(n, -EAGAIN, "no answer within the guard time");
    if (n > 0)
        cl->len += (size_t)n;
    return n;
}

struct resp {
    int status;
    char body[256];
    size_t body_len;
    bool conn_close, conn_keep_alive, has_date;
    char ctype[64];
};

/* Read one response; false if the stream ended before its first byte. */
static bool client_read(struct client *cl, struct resp *r, bool head_request)
{
    struct http_parser p;
    struct http_header h[32];
    memset(r, 0, sizeof *r);
    http_parser_init(&p, HTTP_RESPONSE, 16384, h, 32);
    int n;
    for (;;) {
        if (cl->off < cl->len) {
            n = http_parse(&p, cl->buf + cl->off, cl->len - cl->off);
            cr_assert_geq(n, 0, "malformed response: %d", n);
            if (n > 0)
                break;
        }
        if (cl->off > 0 && cl->off < cl->len) {
            memmove(cl->buf, cl->buf + cl->off, cl->len - cl->off);
            cl->len -= cl->off;
            cl->off = 0;
        }
        ssize_t got = client_fill(cl);
        if (got == 0 && cl->off == cl->len)
            return false;
        cr_assert_gt(got, 0, "the stream ended in a response: %zd", got);
    }
    const char *b = cl->buf + cl->off;
    r->status = p.head.status;
    for (unsigned i = 0; i < p.head.nheaders; i++) {
        if (http_span_ieq(b, h[i].name, "connection")) {
            r->conn_close |= http_span_ieq(b, h[i].value, "close");
            r->conn_keep_alive |= http_span_ieq(b, h[i].value, "keep-alive");
        } else if (http_span_ieq(b, h[i].name, "date")) {
            r->has_date = true;
        } else if (http_span_ieq(b, h[i].name, "content-type")) {
            snprintf(r->ctype, sizeof r->ctype, "%.*s", (int)h[i].value.len,
                     b + h[i].value.off);
        }
    }
    cr_assert(p.head.has_length, "the server always says Content-Length");
    size_t body = head_request ? 0 : (size_t)p.head.content_length;
    cr_assert_lt(body, sizeof r->body);
    cl->off += (size_t)n;
    while (cl->len - cl->off < body)
        cr_assert_gt(client_fill(cl), 0, "the stream ended in a body");
    memcpy(r->body, cl->buf + cl->off, body);
    r->body_len = body;
    cl->off += body;
    return true;
}

/* The stream ends (the server closed) with nothing more in it. */
static void client_expect_eof(struct client *cl)
{
    cr_assert_eq(cl->off, cl->len, "bytes after the last response");
    ssize_t n = client_fill(cl);
    cr_assert(n == 0 || n == -ECONNRESET, "expected the end, got %zd", n);
}

static void expect_hello(const struct resp *r)
{
    cr_assert_eq(r->status, 200);
    cr_assert_eq(r->body_len, 13);
    cr_assert_eq(memcmp(r->body, "Hello, World!", 13), 0);
    cr_assert_str_eq(r->ctype, "text/plain");
    cr_assert(r->has_date);
}

/* ---- Basics ----------------------------------------------------------------------- */

static intptr_t one_get(struct ctx *c)
{
    struct client cl;
    client_open(&cl, c->port, true);
    SEND(&cl, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    struct resp r;
    cr_assert(client_read(&cl, &r, false));
    expect_hello(&r);
    cr_assert_not(r.conn_close);
    client_close(&cl);
    return 0;
}

Test(http_server, get_root_answers_hello_world, .timeout = 60)
{
    struct ctx c = run_server(1, (struct http_server_config){0}, one_get, NULL);
    cr_assert_eq(c.final.requests, 1);
    cr_assert_eq(c.final.connections, 1);
}

static intptr_t keep_alive(struct ctx *c)
{
    struct client cl;
    client_open(&cl, c->port, true);
    for (int i = 0; i < 200; i++) {
        SEND(&cl, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        struct resp r;
        cr_assert(client_read(&cl, &r, false));
        expect_hello(&r);
    }
    /* The last one asks to close: the server answers and closes. */
    SEND(&cl, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    struct resp r;
    cr_assert(client_read(&cl, &r, false));
    expect_hello(&r);
    cr_assert(r.conn_close);
    client_expect_eof(&cl);
    client_close(&cl);
    return 0;
}

Test(http_server, keep_alive_serves_many_requests_on_one_connection,
     .timeout = 60)
{
    struct ctx c = run_server(2, (struct http_server_config){0}, keep_alive,
                              NULL);
    cr_assert_eq(c.final.requests, 201);
    cr_assert_eq(c.final.connections, 1);
}

static intptr_t methods(struct ctx *c)
{
    struct client cl;
    client_open(&cl, c->port, true);
    struct resp r;
    SEND(&cl, "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(client_read(&cl, &r, true));
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 0);
    SEND(&cl, "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(client_read(&cl, &r, false));
    cr_assert_eq(r.status, 404);
    SEND(&cl, "DELETE / HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(client_read(&cl, &r, false));
    cr_assert_eq(r.status, 405);
    /* The absolute form and a query on / are still the root. */
    SEND(&cl, "GET http://t/?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(client_read(&cl, &r, false));
    expect_hello(&r);
    /* A bad /delay query is 400 but the connection lives on. */
    SEND(&cl, "GET /delay?ms=abc HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(client_read(&cl, &r, false));
    cr_assert_eq(r.status, 400);
    cr_assert_not(r.conn_close);
    SEND(&cl, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(client_read(&cl, &r, false));
    expect_hello(&r);
    client_close(&cl);
    return 0;
}

Test(http_server, head_404_405_and_bad_queries, .timeout = 60)
{
    struct ctx c = run_server(1, (struct http_server_config){0}, methods, NULL);
    cr_assert_eq(c.final.requests, 6);
}

static intptr_t bodies(struct ctx *c)
{
    struct client cl;
    client_open(&cl, c->port, true);
    struct resp r;
    /* A body of known length, then a chunked one, then a GET: each body is
     * read and dropped, and the next request is found after it. */
    SEND(&cl, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n"
              "hello world"
              "PUT / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
              "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n"
              "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        cr_assert(client_read(&cl, &r, false));
        cr_assert_eq(r.status, i < 2 ? 405 : 200, "request %d", i);
    }
    /* Expect: 100-continue: the interim answer first, then the body. */
    SEND(&cl, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
              "Expect: 100-continue\r\n\r\n");
    const char *cont = "HTTP/1.1 100 Continue\r\n\r\n";
    while (cl.len - cl.off < strlen(cont))
        cr_assert_gt(client_fill(&cl), 0);
    cr_assert_eq(memcmp(cl.buf + cl.off, cont, strlen(cont)), 0);
    cl.off += strlen(cont);
    SEND(&cl, "body");
    cr_assert(client_read(&cl, &r, false));
    cr_assert_eq(r.status, 405);
    /* A body over the limit: 413, and the connection is closed. */
    SEND(&cl, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n\r\n");
    cr_assert(client_read(&cl, &r, false));
    cr_assert_eq(r.status, 413);
    cr_assert(r.conn_close);
    client_expect_eof(&cl);
    client_close(&cl);
    return 0;
}

Test(http_server, request_bodies_are_read_and_dropped, .timeout = 60)
{
    struct ctx c = run_server(2, (struct http_server_config){0}, bodies, NULL);
    cr_assert_eq(c.final.requests, 4); /* the 413 is not a request served */
}

static intptr_t http10(struct ctx *c)
{
    struct client cl;
    struct resp r;
    client_open(&cl, c->port, true);
    /* ab's keep-alive: HTTP/1.0 with Connection: Keep-Alive. */
    for (int i = 0; i < 3; i++) {
        SEND(&cl, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        cr_assert(client_read(&cl, &r, false));
        expect_hello(&r);
        cr_assert(r.conn_keep_alive, "a 1.0 client must be told");
    }
    /* Plain 1.0: one request, then the close. */
    SEND(&cl, "GET / HTTP/1.0\r\n\r\n");
    cr_assert(client_read(&cl, &r, false));
    expect_hello(&r);
    cr_assert(r.conn_close);
    client_expect_eof(&cl);
    client_close(&cl);
    return 0;
}

Test(http_server, http_1_0_keep_alive_as_ab_sends_it, .timeout = 60)
{
    struct ctx c = run_server(1, (struct http_server_config){0}, http10, NULL);
    cr_assert_eq(c.final.requests, 4);
}

/* ---- Pipelining -------------------------------------------------------------------- */

static intptr_t pipelined(struct ctx *c)
{
    struct client cl;
    client_open(&cl, c->port, true);
    /* 16 requests in one send, of four kinds, answered in order. */
    char req[4096];
    size_t len = 0;
    for (int i = 0; i < 16; i++) {
        static const char *kinds[] = {
            "GET / HTTP/1.1\r\nHost: t\r\n\r\n",
            "GET /delay?ms=3 HTTP/1.1\r\nHost: t\r\n\r\n",
            "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n",
            "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n",
        };
        len += (size_t)sprintf(req + len, "%s", kinds[i % 4]);
    }
    client_send(&cl, req, len);
    for (int i = 0; i < 16; i++) {
        struct resp r;
        cr_assert(client_read(&cl, &r, i % 4 == 3));
        cr_assert_eq(r.status, i % 4 == 2 ? 404 : 200, "answer %d", i);
    }
    /* 16 plain GETs in one send: the answers come back in one send, so on
     * loopback the first receive holds all of them. */
    len = 0;
    for (int i = 0; i < 16; i++)
        len += (size_t)sprintf(req + len, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    client_send(&cl, req, len);
    cr_assert_eq(cl.off, cl.len);
    cl.off = cl.len = 0;
    ssize_t got = client_fill(&cl);
    struct resp r;
    cr_assert(client_read(&cl, &r, false));
    size_t one = (size_t)got >= cl.off ? cl.off : 0;
    cr_assert_eq((size_t)got, 16 * one, "one receive got %zd bytes, not 16 "
                 "answers of %zu", got, one);
    for (int i = 1; i < 16; i++) {
        cr_assert(client_read(&cl, &r, false));
        expect_hello(&r);
    }
    /* Pipelined and trickled a few bytes at a time, splitting requests
     * anywhere. */
    len = 0;
    for (int i = 0; i < 8; i++)
        len += (size_t)sprintf(req + len, "GET /%s HTTP/1.1\r\nHost: t\r\n\r\n",
                               i % 2 ? "x" : "");
    uint64_t seed = 12345;
    for (size_t at = 0; at < len;) {
        size_t n = 1 + test_rand(&seed) % 13;
        if (n > len - at)
            n = len - at;
        client_send(&cl, req + at, n);
        at += n;
        if (test_rand(&seed) % 3 == 0)
            weft_sleep_ms(1);
    }
    for (int i = 0; i < 8; i++) {
        cr_assert(client_read(&cl, &r, false));
        cr_assert_eq(r.status, i % 2 ? 404 : 200, "answer %d", i);
    }
    client_close(&cl);
    return 0;
}

Test(http_server, pipelined_requests_are_answered_in_order, .timeout = 60)
{
    struct ctx c = run_server(2, (struct http_server_config){0}, pipelined,
                              NULL);
    cr_assert_eq(c.final.requests, 40);
}

/* ---- Bad requests -------------------------------------------------------------------- */

struct bad_case {
    const char *req;
    size_t len;
    int status;
};

static intptr_t bad_requests(struct ctx *c)
{
    const struct bad_case *cases = c->arg;
    for (; cases->req; cases++) {
        struct client cl;
        client_open(&cl, c->port, true);
        /* A good request first: the bad one ends a live connection. */
        SEND(&cl, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        client_send(&cl, cases->req, cases->len);
        struct resp r;
        cr_assert(client_read(&cl, &r, false));
        expect_hello(&r);
        cr_assert(client_read(&cl, &r, false));
        cr_assert_eq(r.status, cases->status, "%.40s: %d, not %d", cases->req,
                     r.status, cases->status);
        cr_assert(r.conn_close);
        client_expect_eof(&cl);
        client_close(&cl);
    }
    return 0;
}

Test(http_server, malformed_and_oversized_requests_are_refused_and_closed,
     .timeout = 60)
{
    static char big_head[10000], long_uri[10000];
    size_t n = (size_t)sprintf(big_head, "GET / HTTP/1.1\r\nHost: t\r\nX: ");
    memset(big_head + n, 'a', sizeof big_head - n - 4);
    memcpy(big_head + sizeof big_head - 4, "\r\n\r\n", 4);
    memcpy(long_uri, "GET /", 5);
    memset(long_uri + 5, 'a', sizeof long_uri - 5);
    static struct bad_case cases[] = {
        {"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 0, 400},
        {"GET / HTTP/1.1\r\n\r\n", 0, 400},
        {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0, 400},
        {"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 0, 505},
        {"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 0,
         501},
        {"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         "zz\r\n", 0, 400},
        {big_head, sizeof big_head, 431},
        {long_uri, sizeof long_uri, 414},
        {NULL, 0, 0},
    };
    for (struct bad_case *k = cases; k->req; k++)
        if (!k->len)
            k->len = strlen(k->req);
    struct ctx c = run_server(2, (struct http_server_config){0}, bad_requests,
                              cases);
    cr_assert_eq(c.final.requests, 8); /* the good ones */
    cr_assert_eq(c.final.connections, 8);
}

/* ---- Timeouts and /delay -------------------------------------------------------------- */

static intptr_t idle_close(struct ctx *c)
{
    struct client cl;
    client_open(&cl, c->port, true);
    SEND(&cl, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    struct resp r;
    cr_assert(client_read(&cl, &r, false));
    uint64_t t0 = weft_now_ns();
    /* Then nothing: the server closes it, quietly, no earlier than the
     * idle timeout. */
    client_expect_eof(&cl);
    cr_assert_geq(weft_now_ns() - t0, 150 * NS_PER_MS);
    client_close(&cl);
    return 0;
}

Test(http_server, an_idle_client_is_closed_after_the_idle_timeout,
     .timeout = 60)
{
    struct http_server_config cfg = {.idle_timeout_ms = 150};
    struct ctx c = run_server(1, cfg, idle_close, NULL);
    cr_assert_eq(c.final.requests, 1);
}

static intptr_t trickle(struct ctx *c)
{
    struct client cl;
    client_open(&cl, c->port, true);
    static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: "
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    uint64_t t0 = weft_now_ns();
    /* One byte every 10 ms: each arrives well within the idle timeout,
     * but the whole request cannot within the request timeout. */
    size_t i = 0;
    for (; i < sizeof req - 1; i++) {
        ssize_t n = weft_send(cl.fd, req + i, 1, 0, WEFT_NO_DEADLINE);
        if (n != 1)
            break; /* the server closed: the 408 is waiting */
        if (weft_wait_fd(cl.fd, POLLIN, weft_now_ns() + 10 * NS_PER_MS) > 0)
            break; /* the answer came */
    }
    cr_assert_lt(i, sizeof req - 1, "the server waited for the whole trickle");
    struct resp r;
    cr_assert(client_read(&cl, &r, false));
    cr_assert_eq(r.status, 408);
    cr_assert(r.conn_close);
    cr_assert_geq(weft_now_ns() - t0, 300 * NS_PER_MS);
    client_expect_eof(&cl);
    client_close(&cl);
    return 0;
}

Test(http_server, a_trickling_client_gets_408_after_the_request_timeout,
     .timeout = 60)
{
    struct http_server_config cfg = {.idle_timeout_ms = 1000,
                                     .request_timeout_ms = 300};
    struct ctx c = run_server(2, cfg, trickle, NULL);
    cr_assert_eq(c.final.requests, 0);
}

static intptr_t delay(struct ctx *c)
{
    struct client cl;
    client_open(&cl, c->port, true);
    uint64_t t0 = weft_now_ns();
    SEND(&cl, "GET /delay?ms=80 HTTP/1.1\r\nHost: t\r\n\r\n");
    struct resp r;
    cr_assert(client_read(&cl, &r, false));
    expect_hello(&r);
    cr_assert_geq(weft_now_ns() - t0, 80 * NS_PER_MS);
    /* Beyond the server's limit: 400. */
    SEND(&cl, "GET /delay?ms=100001 HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(client_read(&cl, &r, false));
    cr_assert_eq(r.status, 400);
    client_close(&cl);
    return 0;
}

Test(http_server, delay_answers_after_sleeping, .timeout = 60)
{
    struct http_server_config cfg = {.max_delay_ms = 100000};
    struct ctx c = run_server(1, cfg, delay, NULL);
    cr_assert_eq(c.final.requests, 2);
}

/* Many /delay requests at once overlap: a hundred 100 ms sleeps take far
 * less than their sum (10 s). */
struct delays {
    struct ctx *c;
    _Atomic int ok;
};

static intptr_t one_delay(void *arg)
{
    struct delays *d = arg;
    struct client cl;
    client_open(&cl, d->c->port, true);
    SEND(&cl, "GET /delay?ms=100 HTTP/1.1\r\nHost: t\r\n\r\n");
    struct resp r;
    cr_assert(client_read(&cl, &r, false));
    expect_hello(&r);
    client_close(&cl);
    atomic_fetch_add(&d->ok, 1);
    return 0;
}

static intptr_t many_delays(struct ctx *c)
{
    struct delays d = {.c = c};
    weft_task_t t[100];
    uint64_t t0 = weft_now_ns();
    for (int i = 0; i < 100; i++)
        cr_assert_eq(weft_spawn(&t[i], one_delay, &d), 0);
    cr_assert_eq(weft_gather(t, 100, NULL), 0);
    uint64_t took = weft_now_ns() - t0;
    cr_assert_eq(atomic_load(&d.ok), 100);
    cr_assert_geq(took, 100 * NS_PER_MS);
    cr_assert_lt(took, 5000 * NS_PER_MS, "the waits did not overlap");
    return 0;
}

Test(http_server, concurrent_delays_overlap, .timeout = 60)
{
    struct ctx c = run_server(2, (struct http_server_config){0}, many_delays,
                              NULL);
    cr_assert_eq(c.final.requests, 100);
    cr_assert_eq(c.final.connections, 100);
}

/* ---- Concurrent clients: fibers and threads ----------------------------------------- */

#define FIBER_CLIENTS SCALED(200)
#define THREAD_CLIENTS 4
#define ROUNDS 20

struct load {
    struct ctx *c;
    _Atomic uint64_t answers;
    uint64_t id;
};

/* ROUNDS rounds of 1..4 pipelined requests of random kinds, on one
 * connection; every answer checked. */
static void drive(struct load *l, uint64_t id, bool fiber)
{
    uint64_t seed = id * 2654435761u + 1;
    struct client cl;
    client_open(&cl, l->c->port, fiber);
    uint64_t answers = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int depth = 1 + (int)(test_rand(&seed) % 4);
        int kinds[4];
        char req[512];
        size_t len = 0;
        for (int k = 0; k < depth; k++) {
            kinds[k] = (int)(test_rand(&seed) % 3);
            len += (size_t)sprintf(
                req + len, "%s HTTP/1.1\r\nHost: t\r\n\r\n",
                kinds[k] == 0 ? "GET /" : kinds[k] == 1 ? "GET /delay?ms=1"
                                                        : "GET /missing");
        }
        client_send(&cl, req, len);
        for (int k = 0; k < depth; k++) {
            struct resp r;
            cr_assert(client_read(&cl, &r, false));
            cr_assert_eq(r.status, kinds[k] == 2 ? 404 : 200);
            answers++;
        }
        if (fiber && test_rand(&seed) % 4 == 0)
            weft_yield();
    }
    client_close(&cl);
    atomic_fetch_add(&l->answers, answers);
}

struct fiber_client {
    struct load *l;
    uint64_t id;
};

static intptr_t fiber_client(void *arg)
{
    struct fiber_client *f = arg;
    drive(f->l, f->id, true);
    return 0;
}

struct thread_client {
    pthread_t tid;
    struct load *l;
    uint64_t id;
};

static void *thread_client(void *arg)
{
    struct thread_client *t = arg;
    drive(t->l, t->id, false);
    return NULL;
}

static intptr_t join_threads(void *arg)
{
    struct thread_client *t = arg;
    for (int i = 0; i < THREAD_CLIENTS; i++)
        pthread_join(t[i].tid, NULL);
    return 0;
}

static intptr_t concurrent(struct ctx *c)
{
    struct load *l = c->arg;
    l->c = c;
    struct thread_client threads[THREAD_CLIENTS];
    for (int i = 0; i < THREAD_CLIENTS; i++) {
        threads[i] = (struct thread_client){.l = l, .id = 100000 + (uint64_t)i};
        cr_assert_eq(pthread_create(&threads[i].tid, NULL, thread_client,
                                    &threads[i]), 0);
    }
    static struct fiber_client fibers[FIBER_CLIENTS];
    weft_task_t tasks[FIBER_CLIENTS];
    for (int i = 0; i < FIBER_CLIENTS; i++) {
        fibers[i] = (struct fiber_client){.l = l, .id = (uint64_t)i};
        cr_assert_eq(weft_spawn(&tasks[i], fiber_client, &fibers[i]), 0);
    }
    cr_assert_eq(weft_gather(tasks, FIBER_CLIENTS, NULL), 0);
    /* The threads block in their own syscalls: wait for them off the
     * workers. */
    cr_assert_eq(weft_run_blocking(join_threads, threads), 0);
    return 0;
}

static void concurrent_clients(unsigned workers, bool per_worker)
{
    static struct load l;
    memset(&l, 0, sizeof l);
    struct http_server_config cfg = {.per_worker = per_worker};
    struct ctx c = run_server(workers, cfg, concurrent, &l);
    uint64_t answers = atomic_load(&l.answers);
    cr_assert_eq(c.final.requests, answers, "server %llu, clients %llu",
                 (unsigned long long)c.final.requests,
                 (unsigned long long)answers);
    cr_assert_eq(c.final.connections, FIBER_CLIENTS + THREAD_CLIENTS);
}

Test(http_server, concurrent_fiber_and_thread_clients, .timeout = 120)
{
    concurrent_clients(4, false);
}

Test(http_server, per_worker_listeners_serve_the_same, .timeout = 120)
{
    concurrent_clients(3, true);
}

/* ---- Running out of fds ---------------------------------------------------------------- */

#define FD_CLIENTS 6
#define FD_ROOM 3 /* connections the server can accept at the lowered limit */

static intptr_t out_of_fds(struct ctx *c)
{
    /* Every client socket exists before the limit drops. Then the free
     * fds below the limit are made exactly FD_ROOM: every lower hole is
     * filled with a placeholder, FD_ROOM more go on top, the limit is set
     * just above them, and those FD_ROOM are closed again. */
    int fds[FD_CLIENTS], fillers[256], nfill = 0, room[FD_ROOM];
    for (int i = 0; i < FD_CLIENTS; i++) {
        fds[i] = weft_socket(AF_INET, SOCK_STREAM, 0);
        cr_assert_geq(fds[i], 0);
    }
    int top = fds[FD_CLIENTS - 1];
    for (;;) {
        int f = dup(fds[0]);
        cr_assert_geq(f, 0);
        if (f > top) {
            close(f);
            break;
        }
        cr_assert_lt(nfill, 256);
        fillers[nfill++] = f;
    }
    for (int i = 0; i < FD_ROOM; i++) {
        room[i] = dup(fds[0]);
        cr_assert_gt(room[i], top);
        top = room[i];
    }
    struct rlimit old, rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    rl = old;
    rl.rlim_cur = (rlim_t)top + 1;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    for (int i = 0; i < FD_ROOM; i++)
        close(room[i]);
    weft_addr_t a;
    cr_assert_eq(weft_addr_ip(&a, "127.0.0.1", (uint16_t)c->port), 0);
    for (int i = 0; i < FD_CLIENTS; i++)
        cr_assert_eq(weft_connect_fd(fds[i], &a, weft_now_ns() + GUARD_NS), 0);
    /* Those the server could accept are served; the others wait. */
    static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    int served = 0;
    bool done[FD_CLIENTS] = {0};
    for (int i = 0; i < FD_CLIENTS; i++)
        cr_assert_eq(weft_send_all(fds[i], req, sizeof req - 1, NULL,
                                   WEFT_NO_DEADLINE),
                     (ssize_t)sizeof req - 1);
    for (int i = 0; i < FD_CLIENTS; i++) {
        if (weft_wait_fd(fds[i], POLLIN, weft_now_ns() + 300 * NS_PER_MS) > 0) {
            char buf[512];
            cr_assert_gt(weft_recv(fds[i], buf, sizeof buf, 0,
                                   WEFT_NO_DEADLINE), 0);
            done[i] = true;
            served++;
        }
    }
    /* Not checked: served <= FD_ROOM. The count of free fds is exact only
     * if nothing else opens one meanwhile, and ThreadSanitizer's own
     * thread does. */
    cr_assert_lt(served, FD_CLIENTS, "the limit did not bite");
    /* Closing served clients frees the server's fds: the rest get in. */
    for (int i = 0; i < FD_CLIENTS; i++)
        if (done[i]) {
            cr_assert_eq(weft_close(fds[i]), 0);
            fds[i] = -1;
        }
    for (int i = 0; i < FD_CLIENTS; i++) {
        if (fds[i] < 0)
            continue;
        char buf[512];
        ssize_t n = weft_recv(fds[i], buf, sizeof buf, 0,
                              weft_now_ns() + GUARD_NS);
        cr_assert_gt(n, 0, "client %d never served: %zd", i, n);
        cr_assert_eq(memcmp(buf, "HTTP/1.1 200 OK", 15), 0);
        cr_assert_eq(weft_close(fds[i]), 0);
        fds[i] = -1;
        served++;
    }
    cr_assert_eq(served, FD_CLIENTS);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    for (int i = 0; i < nfill; i++)
        close(fillers[i]);
    return 0;
}

Test(http_server, running_out_of_fds_serves_on_and_recovers, .timeout = 60)
{
    struct ctx c = run_server(2, (struct http_server_config){0}, out_of_fds,
                              NULL);
    cr_assert_eq(c.final.requests, FD_CLIENTS);
}

/* ---- The graceful stop -------------------------------------------------------------------- */

struct stopping {
    struct ctx *c;
    _Atomic int phase; /* 1: the slow request is in, 2: it was answered */
};

static intptr_t slow_client(void *arg)
{
    struct stopping *st = arg;
    struct client cl;
    client_open(&cl, st->c->port, true);
    SEND(&cl, "GET /delay?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n");
    atomic_store(&st->phase, 1);
    struct resp r;
    cr_assert(client_read(&cl, &r, false));
    expect_hello(&r);
    cr_assert(r.conn_close, "a draining server says it closes");
    client_expect_eof(&cl);
    client_close(&cl);
    atomic_store(&st->phase, 2);
    return 0;
}

static intptr_t stop_body(void *arg)
{
    struct stopping *st = arg;
    struct ctx *c = st->c;
    int fds = fd_count();
    cr_assert_eq(http_server_start(&c->cfg, &c->server), 0);
    c->port = http_server_port(c->server);
    /* An idle keep-alive connection, and one with a request in flight. */
    struct client idle;
    client_open(&idle, c->port, true);
    SEND(&idle, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    struct resp r;
    cr_assert(client_read(&idle, &r, false));
    weft_task_t slow;
    cr_assert_eq(weft_spawn(&slow, slow_client, st), 0);
    while (atomic_load(&st->phase) < 1)
        weft_sleep_ms(1);
    weft_sleep_ms(50); /* the request reaches the server's sleep */
    uint64_t t0 = weft_now_ns();
    cr_assert_eq(http_server_stop(c->server, &c->final), 0);
    /* The stop waited for the slow request (whose sleep began at most
     * 50 ms before the stop), and the answer reached the client whole. */
    cr_assert_geq(weft_now_ns() - t0, 200 * NS_PER_MS, "%llu ns",
                  (unsigned long long)(weft_now_ns() - t0));
    cr_assert_eq(weft_join(slow), 0);
    cr_assert_eq(atomic_load(&st->phase), 2);
    client_expect_eof(&idle);
    client_close(&idle);
    /* Nobody listens any more. */
    weft_addr_t a;
    cr_assert_eq(weft_addr_ip(&a, "127.0.0.1", (uint16_t)c->port), 0);
    int fd = weft_connect(&a, weft_now_ns() + GUARD_NS);
    cr_assert_eq(fd, -ECONNREFUSED);
    cr_assert_eq(fd_count(), fds);
    return 0;
}

Test(http_server, stop_finishes_requests_in_flight_and_closes_idle_ones,
     .timeout = 60)
{
    int fds = fd_count();
    struct ctx c;
    memset(&c, 0, sizeof c);
    c.cfg.idle_timeout_ms = 10000;
    struct stopping st = {.c = &c};
    cr_assert_eq(run_with(2, stop_body, &st), 0);
    cr_assert_eq(c.final.requests, 2);
    cr_assert_eq(c.final.connections, 2);
    cr_assert_eq(fd_count(), fds);
}

static intptr_t stuck_body(void *arg)
{
    struct ctx *c = arg;
    cr_assert_eq(http_server_start(&c->cfg, &c->server), 0);
    c->port = http_server_port(c->server);
    /* A request that sleeps far beyond the drain timeout: the stop cuts
     * it. */
    struct client cl;
    client_open(&cl, c->port, true);
    SEND(&cl, "GET /delay?ms=60000 HTTP/1.1\r\nHost: t\r\n\r\n");
    weft_sleep_ms(50);
    uint64_t t0 = weft_now_ns();
    cr_assert_eq(http_server_stop(c->server, &c->final), -ETIMEDOUT);
    cr_assert_geq(weft_now_ns() - t0, 100 * NS_PER_MS);
    client_expect_eof(&cl);
    client_close(&cl);
    return 0;
}

Test(http_server, stop_cuts_what_outlives_the_drain_timeout, .timeout = 60)
{
    int fds = fd_count();
    struct ctx c;
    memset(&c, 0, sizeof c);
    c.cfg.drain_timeout_ms = 100;
    cr_assert_eq(run_with(2, stuck_body, &c), 0);
    cr_assert_eq(c.final.requests, 0);
    cr_assert_eq(fd_count(), fds);
}
