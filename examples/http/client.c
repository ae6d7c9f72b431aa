/* examples/http/client.c: the HTTP/1.1 client of client.h. Entry points:
 * http_url_parse, http_client_get.
 *
 * A request's state lives on its fiber's stack and is kept small (no
 * receive buffer: responses land in the worker's pooled buffers, and the
 * parser keeps no header list), so ten thousand requests in flight cost
 * about one stack page each. Each host's pool of idle connections is a
 * stack of fds under a pthread mutex held for a few instructions, never
 * across a switch.
 * Must never: put a connection back in the pool unless the response on
 * it was read whole and said keep-alive, or leak an fd on any error. */
#include "client.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <weft.h>

#include "inbuf.h"
#include "parser.h"

#define MAX_ADDRS 8

struct host {
    struct host *next; /* the client's list, under its lock */
    char name[256];
    char port[6];
    /* The lookup: the first request resolves, under `resolving`; the
     * others wait on it. naddrs > 0 publishes addrs (release/acquire). */
    weft_mutex_t *resolving;
    _Atomic int naddrs;
    weft_addr_t addrs[MAX_ADDRS];
    /* Idle connections, a stack: the most recently used is the most
     * likely to be alive. Under lock. */
    pthread_mutex_t lock;
    int *idle;
    unsigned nidle, cap;
};

struct http_client {
    struct http_client_config cfg;
    pthread_mutex_t lock; /* the host list */
    struct host *hosts;
};

/* ---- URLs --------------------------------------------------------------------- */

int http_url_parse(const char *url, struct http_url *out)
{
    if (!url || !out)
        return -EINVAL;
    const char *sep = strstr(url, "://");
    if (!sep)
        return -EINVAL;
    if ((size_t)(sep - url) != 4 || strncasecmp(url, "http", 4) != 0)
        return -EPROTONOSUPPORT;
    const char *a = sep + 3;
    size_t alen = strcspn(a, "/?#");
    const char *rest = a + alen;
    struct http_url u;
    memset(&u, 0, sizeof u);
    if (memchr(a, '@', alen))
        return -EINVAL; /* user info: not for a plain-text client */
    const char *port = NULL;
    size_t hlen;
    if (alen && a[0] == '[') {
        const char *close = memchr(a, ']', alen);
        if (!close)
            return -EINVAL;
        hlen = (size_t)(close - a - 1);
        if (hlen >= sizeof u.host)
            return -ENAMETOOLONG;
        memcpy(u.host, a + 1, hlen);
        if (close + 1 < a + alen) {
            if (close[1] != ':')
                return -EINVAL;
            port = close + 2;
        }
    } else {
        const char *colon = memchr(a, ':', alen);
        hlen = colon ? (size_t)(colon - a) : alen;
        if (hlen >= sizeof u.host)
            return -ENAMETOOLONG;
        memcpy(u.host, a, hlen);
        if (colon)
            port = colon + 1;
    }
    if (hlen == 0)
        return -EINVAL;
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)u.host[i];
        if (c <= ' ' || c == 0x7f || c == '/' || c == '\\')
            return -EINVAL;
    }
    if (port) {
        size_t plen = (size_t)(a + alen - port);
        unsigned long v = 0;
        if (plen == 0 || plen > 5)
            return -EINVAL;
        for (size_t i = 0; i < plen; i++) {
            if (port[i] < '0' || port[i] > '9')
                return -EINVAL;
            v = v * 10 + (unsigned long)(port[i] - '0');
        }
        if (v == 0 || v > 65535)
            return -EINVAL;
        snprintf(u.port, sizeof u.port, "%lu", v);
    } else {
        strcpy(u.port, "80");
    }
    bool v6 = strchr(u.host, ':') != NULL;
    snprintf(u.authority, sizeof u.authority, "%s%s%s%s%s", v6 ? "[" : "",
             u.host, v6 ? "]" : "", strcmp(u.port, "80") ? ":" : "",
             strcmp(u.port, "80") ? u.port : "");
    u.path = rest;
    u.path_len = strcspn(rest, "#");
    for (size_t i = 0; i < u.path_len; i++) {
        unsigned char c = (unsigned char)rest[i];
        if (c <= ' ' || c == 0x7f)
            return -EINVAL; /* would break the request line */
    }
    u.slash = u.path_len == 0 || rest[0] == '?';
    *out = u;
    return 0;
}

/* ---- Hosts and their pools ------------------------------------------------------ */

int http_client_create(const struct http_client_config *cfg,
                       struct http_client **out)
{
    if (!out)
        return -EINVAL;
    struct http_client *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    if (cfg)
        c->cfg = *cfg;
    if (!c->cfg.max_idle_per_host)
        c->cfg.max_idle_per_host = 256;
    if (!c->cfg.max_head)
        c->cfg.max_head = 16384;
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return 0;
}

void http_client_destroy(struct http_client *c)
{
    if (!c)
        return;
    struct host *h = c->hosts;
    while (h) {
        struct host *next = h->next;
        for (unsigned i = 0; i < h->nidle; i++)
            weft_close(h->idle[i]);
        free(h->idle);
        weft_mutex_destroy(h->resolving);
        pthread_mutex_destroy(&h->lock);
        free(h);
        h = next;
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static struct host *host_of(struct http_client *c, const struct http_url *u)
{
    pthread_mutex_lock(&c->lock);
    struct host *h = c->hosts;
    while (h && (strcmp(h->name, u->host) || strcmp(h->port, u->port)))
        h = h->next;
    if (!h && (h = calloc(1, sizeof *h))) {
        if (weft_mutex_create(&h->resolving)) {
            free(h);
            h = NULL;
        } else {
            strcpy(h->name, u->host);
            strcpy(h->port, u->port);
            pthread_mutex_init(&h->lock, NULL);
            h->next = c->hosts;
            c->hosts = h;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return h;
}

/* The host's addresses: looked up once (on the blocking pool for a name),
 * by whichever request comes first; the others wait for it. */
static int resolve(struct host *h)
{
    /* acquire: the addresses written before naddrs was published. */
    int n = atomic_load_explicit(&h->naddrs, memory_order_acquire);
    if (n > 0)
        return n;
    int err = weft_mutex_lock(h->resolving);
    if (err)
        return err;
    n = atomic_load_explicit(&h->naddrs, memory_order_acquire);
    if (n == 0) {
        weft_addr_t addrs[MAX_ADDRS];
        n = weft_resolve(h->name, h->port, AF_UNSPEC, SOCK_STREAM, addrs,
                         MAX_ADDRS);
        if (n > 0) {
            memcpy(h->addrs, addrs, sizeof addrs[0] * (size_t)n);
            /* release: pairs with the acquire loads above. */
            atomic_store_explicit(&h->naddrs, n, memory_order_release);
        }
    }
    weft_mutex_unlock(h->resolving);
    return n;
}

static int pool_take(struct host *h)
{
    int fd = -1;
    pthread_mutex_lock(&h->lock);
    if (h->nidle)
        fd = h->idle[--h->nidle];
    pthread_mutex_unlock(&h->lock);
    return fd;
}

/* Keep fd for the next request, or close it if the pool is full. */
static void pool_put(struct http_client *c, struct host *h, int fd)
{
    bool kept = false;
    pthread_mutex_lock(&h->lock);
    if (h->nidle < c->cfg.max_idle_per_host) {
        if (h->nidle == h->cap) {
            unsigned cap = h->cap ? h->cap * 2 : 16;
            int *idle = realloc(h->idle, cap * sizeof *idle);
            if (idle) {
                h->idle = idle;
                h->cap = cap;
            }
        }
        if (h->nidle < h->cap) {
            h->idle[h->nidle++] = fd;
            kept = true;
        }
    }
    pthread_mutex_unlock(&h->lock);
    if (!kept)
        weft_close(fd);
}

/* No TCP_NODELAY: each request is one write, sent only after the
 * previous response was read whole (which acknowledged everything sent
 * before), so Nagle's algorithm never holds one back. */
static int connect_host(struct host *h, int naddrs, uint64_t deadline)
{
    int err = -ECONNREFUSED;
    for (int i = 0; i < naddrs; i++) {
        int fd = weft_connect(&h->addrs[i], deadline);
        if (fd >= 0)
            return fd;
        err = fd;
        if (err == -ETIMEDOUT || err == -ECANCELED || err == -EMFILE ||
            err == -ENFILE)
            break;
    }
    return err;
}

/* ---- One exchange ------------------------------------------------------------------ */

static int send_request(int fd, const struct http_url *u, uint64_t deadline)
{
    static const char ua[] = " HTTP/1.1\r\nUser-Agent: weft-fetch\r\n"
                             "Accept: */*\r\nHost: ";
    size_t alen = strlen(u->authority);
    size_t len = 4 + u->slash + u->path_len + sizeof ua - 1 + alen + 4;
    char small[512];
    char *buf = len <= sizeof small ? small : malloc(len);
    if (!buf)
        return -ENOMEM;
    char *p = buf;
    memcpy(p, "GET ", 4);
    p += 4;
    if (u->slash)
        *p++ = '/';
    memcpy(p, u->path, u->path_len);
    p += u->path_len;
    memcpy(p, ua, sizeof ua - 1);
    p += sizeof ua - 1;
    memcpy(p, u->authority, alen);
    p += alen;
    memcpy(p, "\r\n\r\n", 4);
    ssize_t r = weft_send_all(fd, buf, len, NULL, deadline);
    if (buf != small)
        free(buf);
    return r < 0 ? (int)r : 0;
}

/* Read one response on fd. Returns 0 (*reusable: the connection may carry
 * another request), or -errno; *got_bytes: any byte arrived. */
static int read_response(const struct http_client *c, int fd,
                         struct http_result *res, uint64_t deadline,
                         bool *reusable, bool *got_bytes)
{
    struct http_inbuf in;
    struct http_parser p;
    struct http_chunked ck;
    http_inbuf_init(&in, c->cfg.max_head);
    http_parser_init(&p, HTTP_RESPONSE, c->cfg.max_head, NULL, 0);
    enum { HEAD, BODY_LENGTH, BODY_CHUNKED, BODY_CLOSE } st = HEAD;
    uint64_t left = 0;
    int err = 0;
    res->body_bytes = 0;
    *reusable = false;
    for (;;) {
        size_t avail = http_inbuf_avail(&in);
        if (st == HEAD && avail) {
            int r = http_parse(&p, http_inbuf_ptr(&in), avail);
            if (r < 0) {
                err = -EPROTO;
                break;
            }
            if (r > 0) {
                http_inbuf_consume(&in, (size_t)r);
                int status = p.head.status;
                if (status >= 100 && status < 200 && status != 101) {
                    /* An interim response (100 Continue): the real one
                     * follows. */
                    http_parser_init(&p, HTTP_RESPONSE, c->cfg.max_head,
                                     NULL, 0);
                    continue;
                }
                res->status = status;
                if (status == 204 || status == 304 || status == 101) {
                    *reusable = p.head.keep_alive && status != 101;
                    break;
                }
                if (p.head.chunked) {
                    http_chunked_init(&ck);
                    st = BODY_CHUNKED;
                } else if (p.head.has_length) {
                    left = p.head.content_length;
                    st = BODY_LENGTH;
                    if (left == 0) {
                        *reusable = p.head.keep_alive;
                        break;
                    }
                } else {
                    st = BODY_CLOSE;
                }
                continue;
            }
        } else if (st == BODY_LENGTH && avail) {
            size_t n = avail < left ? avail : (size_t)left;
            http_inbuf_consume(&in, n);
            res->body_bytes += n;
            left -= n;
            if (left == 0) {
                /* Bytes beyond the body: the server sent more than asked
                 * for, so the connection is not in a known state. */
                *reusable = p.head.keep_alive && http_inbuf_avail(&in) == 0;
                break;
            }
            continue;
        } else if (st == BODY_CHUNKED && avail) {
            size_t used, off, n;
            int r = http_chunked_step(&ck, http_inbuf_ptr(&in), avail, &used,
                                      &off, &n);
            http_inbuf_consume(&in, used);
            res->body_bytes += n;
            if (r == HTTP_CHUNKED_BAD) {
                err = -EPROTO;
                break;
            }
            if (r == HTTP_CHUNKED_DONE) {
                *reusable = p.head.keep_alive && http_inbuf_avail(&in) == 0;
                break;
            }
            continue;
        } else if (st == BODY_CLOSE && avail) {
            res->body_bytes += avail;
            http_inbuf_consume(&in, avail);
            continue;
        }
        /* Everything that arrived is used: receive more. */
        if ((err = http_inbuf_keep(&in)))
            break;
        ssize_t n = http_inbuf_fill(&in, fd, deadline);
        if (n > 0) {
            *got_bytes = true;
            continue;
        }
        if (n == 0 && st == BODY_CLOSE)
            break; /* the end of the stream ends this body */
        if (n == 0)
            err = *got_bytes ? -EPROTO : -ECONNRESET; /* truncated */
        else
            err = n == -ENOBUFS ? -EPROTO : (int)n;
        break;
    }
    http_inbuf_free(&in);
    return err;
}

int http_client_get(struct http_client *c, const struct http_url *url,
                    struct http_result *res, uint64_t deadline_ns)
{
    if (!c || !url || !res)
        return -EINVAL;
    struct host *h = host_of(c, url);
    if (!h)
        return -ENOMEM;
    int naddrs = resolve(h);
    if (naddrs < 0)
        return naddrs;
    for (int attempt = 0;; attempt++) {
        int fd = attempt == 0 ? pool_take(h) : -1;
        bool reused = fd >= 0;
        if (!reused && (fd = connect_host(h, naddrs, deadline_ns)) < 0)
            return fd;
        bool reusable = false, got_bytes = false;
        int err = send_request(fd, url, deadline_ns);
        if (!err)
            err = read_response(c, fd, res, deadline_ns, &reusable,
                                &got_bytes);
        if (!err) {
            res->reused = reused;
            if (reusable)
                pool_put(c, h, fd);
            else
                weft_close(fd);
            return 0;
        }
        weft_close(fd);
        /* A pooled connection the server closed while it was idle: try
         * once more on a new one. */
        if (!reused || got_bytes ||
            (err != -ECONNRESET && err != -EPIPE && err != -ECONNABORTED))
            return err;
    }
}
