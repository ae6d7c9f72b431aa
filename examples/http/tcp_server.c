/* examples/http/tcp_server.c: listeners, acceptors, connection tasks and
 * the graceful stop of tcp_server.h (whose top comment gives the stop's
 * steps). Entry points: tcp_server_start, tcp_server_stop.
 *
 * The registry of open connections (a list under a pthread mutex, held
 * only for a few instructions and never across a switch) exists for the
 * stop: a connection's fd is shut down only while its task has it
 * registered, and the task closes it only after leaving the registry.
 * Must never: hold the registry's lock across a weft call that can switch,
 * or touch a connection after its task unregistered it. */
#include "tcp_server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct tcp_conn {
    struct tcp_conn *prev, *next; /* in the registry, under s->lock */
    struct tcp_server *s;
    int fd;
    weft_task_t task;
};

struct listener {
    struct tcp_server *s;
    int fd;
    weft_task_t acceptor;
};

struct tcp_server {
    struct tcp_server_config cfg;
    int port;
    unsigned nlisteners;
    struct listener *listeners;
    weft_waitgroup_t *conns_wg;   /* connection tasks alive */
    _Atomic uint64_t accepted, open;
    _Atomic bool draining;
    _Atomic uint64_t emfile_note_ns; /* when "out of fds" was last said */
    pthread_mutex_t lock;         /* the registry */
    struct tcp_conn registry;     /* sentinel of a circular list */
};

bool tcp_server_draining(const struct tcp_server *s)
{
    return atomic_load_explicit(&s->draining, memory_order_relaxed);
}

int tcp_server_port(const struct tcp_server *s)
{
    return s->port;
}

uint64_t tcp_server_accepted(const struct tcp_server *s)
{
    return atomic_load_explicit(&s->accepted, memory_order_relaxed);
}

uint64_t tcp_server_open(const struct tcp_server *s)
{
    return atomic_load_explicit(&s->open, memory_order_relaxed);
}

/* ---- Connections ------------------------------------------------------------- */

static intptr_t conn_main(void *arg)
{
    struct tcp_conn *c = arg;
    struct tcp_server *s = c->s;
    /* Registered only if no stop began: the stop's pass over the
     * registry (under the same lock) then cannot miss this connection. */
    pthread_mutex_lock(&s->lock);
    bool serve = !tcp_server_draining(s);
    if (serve) {
        c->task = weft_self();
        c->next = &s->registry;
        c->prev = s->registry.prev;
        s->registry.prev->next = c;
        s->registry.prev = c;
    }
    pthread_mutex_unlock(&s->lock);
    if (serve) {
        s->cfg.serve(s, c->fd, s->cfg.ctx);
        pthread_mutex_lock(&s->lock);
        c->prev->next = c->next;
        c->next->prev = c->prev;
        pthread_mutex_unlock(&s->lock);
    }
    weft_close(c->fd);
    free(c);
    atomic_fetch_sub_explicit(&s->open, 1, memory_order_relaxed);
    /* The last touch of s: the stop may free it once the count is 0. */
    weft_waitgroup_done(s->conns_wg);
    return 0;
}

static int start_conn(struct tcp_server *s, int fd)
{
    if (s->cfg.nodelay) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    struct tcp_conn *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    c->s = s;
    c->fd = fd;
    c->task = WEFT_TASK_NONE;
    int err = weft_waitgroup_add(s->conns_wg, 1);
    if (err) {
        free(c);
        return err;
    }
    atomic_fetch_add_explicit(&s->open, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->accepted, 1, memory_order_relaxed);
    weft_spawn_opts_t opts = {.flags = 0, .name = s->cfg.name};
    err = weft_spawn_ex(NULL, conn_main, c, &opts);
    if (err) {
        free(c);
        atomic_fetch_sub_explicit(&s->open, 1, memory_order_relaxed);
        weft_waitgroup_done(s->conns_wg);
    }
    return err;
}

/* ---- Accepting ----------------------------------------------------------------- */

/* Out of fds: say so at most once a second, and let the connections that
 * are served finish some first. The connection waits in the backlog. */
static int out_of_fds(struct tcp_server *s, int err)
{
    uint64_t now = weft_now_ns();
    uint64_t last = atomic_load_explicit(&s->emfile_note_ns,
                                         memory_order_relaxed);
    if ((last == 0 || now - last > 1000000000ull) &&
        atomic_compare_exchange_strong_explicit(&s->emfile_note_ns, &last,
                                                now, memory_order_relaxed,
                                                memory_order_relaxed))
        fprintf(stderr, "%s: accept: %s; serving the open connections, "
                "accepting again when fds free up\n",
                s->cfg.label ? s->cfg.label : "server", strerror(-err));
    return weft_sleep_ms(20);
}

static intptr_t acceptor(void *arg)
{
    struct listener *l = arg;
    struct tcp_server *s = l->s;
    const int lfd = l->fd; /* set before this task was spawned */
    for (;;) {
        int fd = weft_accept(lfd, NULL, WEFT_NO_DEADLINE);
        if (fd >= 0) {
            int err = start_conn(s, fd);
            if (err)
                weft_close(fd); /* no memory: refuse this one, go on */
            continue;
        }
        switch (fd) {
        case -EMFILE:
        case -ENFILE:
        case -ENOBUFS:
        case -ENOMEM:
            if (out_of_fds(s, fd) == -ECANCELED)
                return 0;
            break;
        case -ECONNABORTED: /* the peer gave up while queued */
        case -EPERM:        /* a firewall said no */
        case -EPROTO:
        case -EINTR:
        case -EAGAIN:
            break;
        case -EBADF:      /* the listener was closed under us */
        case -ECANCELED:  /* the stop (close_listeners), or the runtime ends */
            return 0;
        default:
            fprintf(stderr, "%s: accept: %s; no longer accepting\n",
                    s->cfg.label ? s->cfg.label : "server", strerror(-fd));
            return fd;
        }
    }
}

/* Per-worker listeners: each acceptor is spawned pinned from a loop body
 * that runs on its own worker. weft_parallel_for gives share i to worker i
 * first; each body waits until all have started, so that no worker runs
 * two shares (a body would otherwise be free to steal the next one). The
 * wait has a deadline: if a worker is too busy to start its share, the
 * others go on and its share lands elsewhere (an acceptor runs either
 * way; only its placement suffers). */
#define PLACEMENT_NS (1000ull * 1000 * 1000)

struct placement {
    struct tcp_server *s;
    weft_waitgroup_t *started;
    _Atomic int err;
};

static void place_acceptor(int64_t begin, int64_t end, void *arg)
{
    struct placement *pl = arg;
    for (int64_t i = begin; i < end; i++) {
        struct listener *l = &pl->s->listeners[i];
        weft_spawn_opts_t opts = {.flags = WEFT_SPAWN_PINNED,
                                  .name = "acceptor"};
        int err = weft_spawn_ex(&l->acceptor, acceptor, l, &opts);
        if (err) {
            l->acceptor = WEFT_TASK_NONE;
            atomic_store(&pl->err, err);
        }
        weft_waitgroup_done(pl->started);
    }
    weft_waitgroup_wait_until(pl->started, weft_now_ns() + PLACEMENT_NS);
}

static int start_acceptors(struct tcp_server *s)
{
    if (s->nlisteners == 1) {
        weft_spawn_opts_t opts = {.flags = 0, .name = "acceptor"};
        return weft_spawn_ex(&s->listeners[0].acceptor, acceptor,
                             &s->listeners[0], &opts);
    }
    struct placement pl = {.s = s};
    int err = weft_waitgroup_create(&pl.started);
    if (err)
        return err;
    weft_waitgroup_add(pl.started, s->nlisteners);
    err = weft_parallel_for(0, s->nlisteners, 1, place_acceptor, &pl);
    weft_waitgroup_destroy(pl.started);
    return err ? err : atomic_load(&pl.err);
}

/* ---- Start and stop -------------------------------------------------------------- */

/* The acceptors end first (a cancel ends their accept, or their next
 * one), and only then are the listeners closed: an acceptor never calls
 * weft_accept on a number that was closed and maybe reused. */
static void close_listeners(struct tcp_server *s)
{
    for (unsigned i = 0; i < s->nlisteners; i++)
        if (s->listeners[i].acceptor.id_)
            weft_cancel(s->listeners[i].acceptor);
    for (unsigned i = 0; i < s->nlisteners; i++) {
        if (s->listeners[i].acceptor.id_)
            weft_join(s->listeners[i].acceptor);
        s->listeners[i].acceptor = WEFT_TASK_NONE;
    }
    for (unsigned i = 0; i < s->nlisteners; i++) {
        if (s->listeners[i].fd >= 0)
            weft_close(s->listeners[i].fd);
        s->listeners[i].fd = -1;
    }
}

static void destroy(struct tcp_server *s)
{
    free(s->listeners);
    if (s->conns_wg)
        weft_waitgroup_destroy(s->conns_wg);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int tcp_server_start(const struct tcp_server_config *cfg,
                     struct tcp_server **out)
{
    if (!cfg || !cfg->serve || !out)
        return -EINVAL;
    if (!weft_in_fiber())
        return -EPERM;
    weft_addr_t addr;
    int err = weft_addr_ip(&addr, cfg->host ? cfg->host : "127.0.0.1",
                           cfg->port);
    if (err)
        return err;
    struct tcp_server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->cfg = *cfg;
    if (!s->cfg.drain_timeout_ms)
        s->cfg.drain_timeout_ms = 10000;
    pthread_mutex_init(&s->lock, NULL);
    s->registry.next = s->registry.prev = &s->registry;
    int workers = weft_worker_count();
    s->nlisteners = cfg->per_worker && workers > 1 ? (unsigned)workers : 1;
    s->listeners = calloc(s->nlisteners, sizeof *s->listeners);
    if (!s->listeners || (err = weft_waitgroup_create(&s->conns_wg))) {
        destroy(s);
        return err ? err : -ENOMEM;
    }
    for (unsigned i = 0; i < s->nlisteners; i++)
        s->listeners[i].fd = -1;
    unsigned flags = WEFT_REUSEADDR | (s->nlisteners > 1 ? WEFT_REUSEPORT : 0);
    for (unsigned i = 0; i < s->nlisteners; i++) {
        struct listener *l = &s->listeners[i];
        l->s = s;
        l->fd = weft_listen(&addr, 0, flags);
        if (l->fd < 0) {
            err = l->fd;
            l->fd = -1;
            close_listeners(s);
            destroy(s);
            return err;
        }
        if (i == 0) {
            /* Port 0 picked a port: the other listeners share it. */
            weft_addr_t bound;
            if ((err = weft_addr_local(l->fd, &bound))) {
                close_listeners(s);
                destroy(s);
                return err;
            }
            s->port = weft_addr_port(&bound);
            addr = bound;
        }
    }
    if ((err = start_acceptors(s))) {
        close_listeners(s);
        destroy(s);
        return err;
    }
    *out = s;
    return 0;
}

/* Under s->lock: shut every registered connection down (`how`), and
 * cancel their tasks if asked. */
static void shut_all(struct tcp_server *s, int how, bool cancel)
{
    pthread_mutex_lock(&s->lock);
    for (struct tcp_conn *c = s->registry.next; c != &s->registry;
         c = c->next) {
        shutdown(c->fd, how);
        if (cancel)
            weft_cancel(c->task);
    }
    pthread_mutex_unlock(&s->lock);
}

int tcp_server_stop(struct tcp_server *s, uint64_t *accepted)
{
    if (!s)
        return -EINVAL;
    /* 1: under the lock, so that a connection registers either before
     * (and gets step 3) or sees draining. */
    pthread_mutex_lock(&s->lock);
    atomic_store_explicit(&s->draining, true, memory_order_relaxed);
    pthread_mutex_unlock(&s->lock);
    close_listeners(s);           /* 2 */
    shut_all(s, SHUT_RD, false);  /* 3 */
    uint64_t deadline = weft_now_ns() +
                        (uint64_t)s->cfg.drain_timeout_ms * 1000000ull;
    int rc = 0;
    for (;;) {                    /* 4 */
        int err = weft_waitgroup_wait_until(s->conns_wg, deadline);
        if (err == 0)
            break;
        /* Past the deadline, or this task was cancelled: end the rest.
         * The next wait has no deadline (they end promptly now). */
        rc = -ETIMEDOUT;
        shut_all(s, SHUT_RDWR, true);
        deadline = WEFT_NO_DEADLINE;
    }
    if (accepted)
        *accepted = tcp_server_accepted(s);
    destroy(s);
    return rc;
}
