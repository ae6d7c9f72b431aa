/* tests/http_client.c: the HTTP client of examples/http/client.c (what
 * weft-fetch and the demo use): URL parsing; keep-alive reuse and the
 * retry when the server closed an idle pooled connection, against the
 * in-process server; every response framing (length, chunked, until the
 * close, none, an interim 100) and broken responses, against canned
 * answers from a fiber; refused connections, deadlines, name lookup on
 * the blocking pool, and many requests at once. fds are counted before and
 * after each test. */
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/weft_test.h"

#include "examples/http/client.h"
#include "examples/http/server.h"

#define NS_PER_MS 1000000ull
#define GUARD_NS (20000ull * NS_PER_MS)

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
    return n - 1;
}

/* ---- URLs ----------------------------------------------------------------------- */

Test(http_client, urls_parse_into_host_port_and_path)
{
    struct http_url u;
    const char *s = "http://example.com:8080/a/b?c=d#frag";
    cr_assert_eq(http_url_parse(s, &u), 0);
    cr_assert_str_eq(u.host, "example.com");
    cr_assert_str_eq(u.port, "8080");
    cr_assert_str_eq(u.authority, "example.com:8080");
    cr_assert_eq(u.path_len, strlen("/a/b?c=d"));
    cr_assert_eq(memcmp(u.path, "/a/b?c=d", u.path_len), 0);
    cr_assert_not(u.slash);

    cr_assert_eq(http_url_parse("HTTP://h", &u), 0);
    cr_assert_str_eq(u.port, "80");
    cr_assert_str_eq(u.authority, "h");
    cr_assert(u.slash);
    cr_assert_eq(u.path_len, 0);

    cr_assert_eq(http_url_parse("http://h?x=1", &u), 0);
    cr_assert(u.slash, "a query without a path gets one");
    cr_assert_eq(memcmp(u.path, "?x=1", u.path_len), 0);

    cr_assert_eq(http_url_parse("http://[::1]:9/p", &u), 0);
    cr_assert_str_eq(u.host, "::1");
    cr_assert_str_eq(u.port, "9");
    cr_assert_str_eq(u.authority, "[::1]:9");
}

Test(http_client, bad_urls_are_refused_and_change_nothing)
{
    struct http_url u, before;
    memset(&u, 0x5a, sizeof u);
    before = u;
    static const struct {
        const char *url;
        int err;
    } bad[] = {
        {"https://example.com/", -EPROTONOSUPPORT},
        {"ftp://example.com/", -EPROTONOSUPPORT},
        {"example.com/", -EINVAL},
        {"http://", -EINVAL},
        {"http:///path", -EINVAL},
        {"http://user:pw@host/", -EINVAL},
        {"http://host:/", -EINVAL},
        {"http://host:0/", -EINVAL},
        {"http://host:65536/", -EINVAL},
        {"http://host:12a/", -EINVAL},
        {"http://[::1/", -EINVAL},
        {"http://[::1]x/", -EINVAL},
        {"http://host/a b", -EINVAL},
        {"http://host/a\r\nX: y", -EINVAL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(http_url_parse(bad[i].url, &u), bad[i].err, "%s",
                     bad[i].url);
        cr_assert_eq(memcmp(&u, &before, sizeof u), 0);
    }
    char longhost[400] = "http://";
    memset(longhost + 7, 'a', 300);
    cr_assert_eq(http_url_parse(longhost, &u), -ENAMETOOLONG);
    cr_assert_eq(http_url_parse(NULL, &u), -EINVAL);
}

/* ---- Against the server ----------------------------------------------------------- */

struct against {
    struct http_server_config cfg;
    int want_stop; /* what http_server_stop returns */
    struct http_server_stats final;
    intptr_t (*body)(struct http_client *cl, int port);
};

static intptr_t against_main(void *arg)
{
    struct against *a = arg;
    struct http_server *s;
    cr_assert_eq(http_server_start(&a->cfg, &s), 0);
    struct http_client *cl;
    cr_assert_eq(http_client_create(NULL, &cl), 0);
    intptr_t r = a->body(cl, http_server_port(s));
    http_client_destroy(cl);
    cr_assert_eq(http_server_stop(s, &a->final), a->want_stop);
    return r;
}

static struct http_server_stats against_stop(struct http_server_config cfg,
                                             intptr_t (*body)(
                                                 struct http_client *, int),
                                             int want_stop)
{
    int fds = fd_count();
    struct against a = {.cfg = cfg, .body = body, .want_stop = want_stop};
    cr_assert_eq(run_with(2, against_main, &a), 0);
    cr_assert_eq(fd_count(), fds);
    return a.final;
}

static struct http_server_stats against_server(struct http_server_config cfg,
                                               intptr_t (*body)(
                                                   struct http_client *, int))
{
    return against_stop(cfg, body, 0);
}

static void url_of(struct http_url *u, char *buf, size_t len, int port,
                   const char *path)
{
    snprintf(buf, len, "http://127.0.0.1:%d%s", port, path);
    cr_assert_eq(http_url_parse(buf, u), 0);
}

static intptr_t reuse(struct http_client *cl, int port)
{
    char text[128];
    struct http_url u;
    url_of(&u, text, sizeof text, port, "/");
    struct http_result r;
    cr_assert_eq(http_client_get(cl, &u, &r, weft_now_ns() + GUARD_NS), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_bytes, 13);
    cr_assert_not(r.reused);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(http_client_get(cl, &u, &r, weft_now_ns() + GUARD_NS), 0);
        cr_assert_eq(r.status, 200);
        cr_assert(r.reused, "request %d did not reuse the connection", i);
    }
    /* The server closes the pooled connection while it idles (after
     * 100 ms): the next request notices and retries on a new one. */
    weft_sleep_ms(300);
    cr_assert_eq(http_client_get(cl, &u, &r, weft_now_ns() + GUARD_NS), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_not(r.reused);
    /* A status other than 2xx is a response like any. */
    url_of(&u, text, sizeof text, port, "/missing");
    cr_assert_eq(http_client_get(cl, &u, &r, weft_now_ns() + GUARD_NS), 0);
    cr_assert_eq(r.status, 404);
    cr_assert(r.reused);
    return 0;
}

Test(http_client, keep_alive_reuses_and_retries_a_closed_connection,
     .timeout = 60)
{
    struct http_server_config cfg = {.idle_timeout_ms = 100};
    struct http_server_stats st = against_server(cfg, reuse);
    cr_assert_eq(st.requests, 8);
    cr_assert_eq(st.connections, 2);
}

static intptr_t timeout(struct http_client *cl, int port)
{
    char text[128];
    struct http_url u;
    url_of(&u, text, sizeof text, port, "/delay?ms=3000");
    struct http_result r;
    uint64_t t0 = weft_now_ns();
    cr_assert_eq(http_client_get(cl, &u, &r, weft_now_ns() + 100 * NS_PER_MS),
                 -ETIMEDOUT);
    cr_assert_geq(weft_now_ns() - t0, 100 * NS_PER_MS);
    return 0;
}

Test(http_client, a_deadline_ends_a_slow_request, .timeout = 60)
{
    /* The server is still asleep in that request when it stops: it cuts
     * it after the drain timeout. */
    against_stop((struct http_server_config){.drain_timeout_ms = 100},
                 timeout, -ETIMEDOUT);
}

/* Many requests at once on one client, capped by a semaphore as
 * weft-fetch does. */
#define MANY SCALED(400)
#define CAP 50

struct many {
    struct http_client *cl;
    struct http_url url;
    weft_sem_t *sem;
    _Atomic int ok;
};

static intptr_t many_one(void *arg)
{
    struct many *m = arg;
    struct http_result r;
    int err = http_client_get(m->cl, &m->url, &r, weft_now_ns() + GUARD_NS);
    cr_assert_eq(err, 0, "get: %s", strerror(-err));
    cr_assert_eq(r.status, 200);
    atomic_fetch_add(&m->ok, 1);
    weft_sem_release(m->sem);
    return 0;
}

static intptr_t many(struct http_client *cl, int port)
{
    static struct many m;
    char text[128];
    memset(&m, 0, sizeof m);
    m.cl = cl;
    url_of(&m.url, text, sizeof text, port, "/delay?ms=2");
    cr_assert_eq(weft_sem_create(&m.sem, CAP, CAP), 0);
    for (int i = 0; i < MANY; i++) {
        cr_assert_eq(weft_sem_acquire(m.sem), 0);
        cr_assert_eq(weft_spawn(NULL, many_one, &m), 0);
    }
    for (int i = 0; i < CAP; i++)
        cr_assert_eq(weft_sem_acquire(m.sem), 0);
    cr_assert_eq(atomic_load(&m.ok), MANY);
    cr_assert_eq(weft_sem_destroy(m.sem), 0);
    return 0;
}

Test(http_client, many_requests_at_once_share_the_pool, .timeout = 120)
{
    struct http_server_stats st =
        against_server((struct http_server_config){0}, many);
    cr_assert_eq(st.requests, MANY);
    /* Never more connections than requests in flight at once. */
    cr_assert_leq(st.connections, CAP);
}

/* ---- Canned answers --------------------------------------------------------------- */

struct canned {
    const char *answer; /* sent whole after the request's head */
    bool close_after;   /* then close */
    int want_err;       /* what the client gets */
    int want_status;
    uint64_t want_body;
    bool reusable;      /* a second request reuses the connection */
};

struct canned_server {
    int lfd;
    const struct canned *c;
};

/* Answer requests on one connection with the canned answer. */
static intptr_t canned_serve(void *arg)
{
    struct canned_server *cs = arg;
    int fd = weft_accept(cs->lfd, NULL, weft_now_ns() + GUARD_NS);
    cr_assert_geq(fd, 0);
    char buf[4096];
    size_t len = 0;
    for (;;) {
        ssize_t n = weft_recv(fd, buf + len, sizeof buf - len, 0,
                              weft_now_ns() + GUARD_NS);
        if (n <= 0)
            break;
        len += (size_t)n;
        char *end;
        while ((end = memmem(buf, len, "\r\n\r\n", 4))) {
            size_t head = (size_t)(end - buf) + 4;
            memmove(buf, buf + head, len - head);
            len -= head;
            size_t alen = strlen(cs->c->answer);
            cr_assert_eq(weft_send_all(fd, cs->c->answer, alen, NULL,
                                       WEFT_NO_DEADLINE),
                         (ssize_t)alen);
            if (cs->c->close_after)
                goto out;
        }
    }
out:
    weft_close(fd);
    return 0;
}

static intptr_t canned_main(void *arg)
{
    const struct canned *c = arg;
    weft_addr_t a;
    cr_assert_eq(weft_addr_ip(&a, "127.0.0.1", 0), 0);
    struct canned_server cs = {.lfd = weft_listen(&a, 0, WEFT_REUSEADDR),
                               .c = c};
    cr_assert_geq(cs.lfd, 0);
    cr_assert_eq(weft_addr_local(cs.lfd, &a), 0);
    weft_task_t srv;
    cr_assert_eq(weft_spawn(&srv, canned_serve, &cs), 0);
    struct http_client *cl;
    cr_assert_eq(http_client_create(NULL, &cl), 0);
    char text[128];
    struct http_url u;
    snprintf(text, sizeof text, "http://127.0.0.1:%d/x", weft_addr_port(&a));
    cr_assert_eq(http_url_parse(text, &u), 0);
    struct http_result r;
    int err = http_client_get(cl, &u, &r, weft_now_ns() + GUARD_NS);
    cr_assert_eq(err, c->want_err, "%s: got %d", c->answer, err);
    if (!err) {
        cr_assert_eq(r.status, c->want_status, "%s", c->answer);
        cr_assert_eq(r.body_bytes, c->want_body, "%s", c->answer);
    }
    if (c->reusable) {
        /* The same connection carries the next one. */
        cr_assert_eq(http_client_get(cl, &u, &r, weft_now_ns() + GUARD_NS), 0);
        cr_assert(r.reused);
    }
    http_client_destroy(cl);
    cr_assert_eq(weft_join(srv), 0);
    weft_close(cs.lfd);
    return 0;
}

static void canned(const struct canned *c)
{
    int fds = fd_count();
    cr_assert_eq(run_with(1, canned_main, (void *)c), 0);
    cr_assert_eq(fd_count(), fds);
}

Test(http_client, every_response_framing_is_read, .timeout = 60)
{
    static const struct canned cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, 0, 200,
         5, true},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nT: 1\r\n\r\n",
         false, 0, 200, 7, true},
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
         "Content-Length: 2\r\n\r\nok",
         false, 0, 201, 2, true},
        {"HTTP/1.1 204 No Content\r\n\r\n", false, 0, 204, 0, true},
        {"HTTP/1.0 200 OK\r\n\r\nuntil the close", true, 0, 200, 15, false},
        {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
         "abc",
         true, 0, 200, 3, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        canned(&cases[i]);
}

Test(http_client, broken_responses_are_eproto, .timeout = 60)
{
    static const struct canned cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true, -EPROTO,
         0, 0, false},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", true,
         -EPROTO, 0, 0, false},
        {"SSH-2.0-OpenSSH_9.2\r\n", true, -EPROTO, 0, 0, false},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
         true, -EPROTO, 0, 0, false},
        {"", true, -ECONNRESET, 0, 0, false}, /* closed without a word */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        canned(&cases[i]);
}

/* ---- Connecting -------------------------------------------------------------------- */

static intptr_t refused(void *arg)
{
    (void)arg;
    /* A port nobody listens on: bind one and close it. */
    weft_addr_t a;
    cr_assert_eq(weft_addr_ip(&a, "127.0.0.1", 0), 0);
    int lfd = weft_listen(&a, 0, 0);
    cr_assert_geq(lfd, 0);
    cr_assert_eq(weft_addr_local(lfd, &a), 0);
    weft_close(lfd);
    struct http_client *cl;
    cr_assert_eq(http_client_create(NULL, &cl), 0);
    char text[128];
    struct http_url u;
    snprintf(text, sizeof text, "http://127.0.0.1:%d/", weft_addr_port(&a));
    cr_assert_eq(http_url_parse(text, &u), 0);
    struct http_result r;
    cr_assert_eq(http_client_get(cl, &u, &r, weft_now_ns() + GUARD_NS),
                 -ECONNREFUSED);
    http_client_destroy(cl);
    return 0;
}

Test(http_client, a_refused_connection_is_reported, .timeout = 60)
{
    int fds = fd_count();
    cr_assert_eq(run_with(1, refused, NULL), 0);
    cr_assert_eq(fd_count(), fds);
}

static intptr_t by_name(struct http_client *cl, int port)
{
    /* "localhost" goes through getaddrinfo on the blocking pool; it may
     * give ::1 first, which nobody listens on: the client tries each
     * address. */
    char text[128];
    struct http_url u;
    snprintf(text, sizeof text, "http://localhost:%d/", port);
    cr_assert_eq(http_url_parse(text, &u), 0);
    struct http_result r;
    int err = http_client_get(cl, &u, &r, weft_now_ns() + GUARD_NS);
    cr_assert_eq(err, 0, "get: %s", strerror(-err));
    cr_assert_eq(r.status, 200);
    snprintf(text, sizeof text, "http://no-such-host.invalid:%d/", port);
    cr_assert_eq(http_url_parse(text, &u), 0);
    err = http_client_get(cl, &u, &r, weft_now_ns() + GUARD_NS);
    cr_assert(err == -ENOENT || err == -EAGAIN, "got %d", err);
    return 0;
}

Test(http_client, names_are_resolved_on_the_blocking_pool, .timeout = 60)
{
    against_server((struct http_server_config){0}, by_name);
}
