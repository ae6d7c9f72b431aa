/* io/listen.c: listening sockets and accept. Entry points: weft_listen,
 * weft_accept, and weft__listen_close (from weft_close).
 *
 * A listener made by weft_listen gets a shared state (struct
 * weft__listener, found by fd in a small table): a multishot accept armed
 * on one worker's ring keeps accepting connections, and queues them for
 * whichever fiber calls weft_accept, on any worker. One SQE then serves
 * many accepts, and a connection that arrives while the accepting fiber is
 * busy is already accepted when it asks. Any other listening fd, or a
 * kernel that refuses multishot accept (-EINVAL, before 5.19), takes the
 * simple path: one IORING_OP_ACCEPT per call, on the caller's ring.
 *
 * The protocol (L: the listener's state; its mutex guards every field but
 * req and link):
 *  L1. Arm: a fiber that finds the queue empty and nothing armed reserves
 *      an SQE (no lock held: reserving may reap), takes the lock, and if
 *      still needed arms the multishot on its own ring, which becomes L's
 *      home. Only the home's owner thread touches req and link, and only
 *      it reaps L's completions.
 *  L2. Wait: with the lock held the fiber begins a WAIT_DIRECT wait (so a
 *      deadline or a cancel ends it at once: no kernel buffer is involved)
 *      and queues its node; it unlinks the node itself if it was not woken
 *      by L.
 *  L3. A completion (home thread, under the lock) hands the new fd to the
 *      first waiter whose wake succeeds (the fd is written into its node
 *      first); if none, it is queued. An error goes to one waiter, or is
 *      kept for the next caller (EMFILE: the caller is told, and keeps
 *      serving). When the multishot ends (no F_MORE) and fibers still
 *      wait, the home arms it again for them.
 *  L4. Backpressure: with WEFT__LISTEN_HIGH connections queued and nobody
 *      taking them, the home cancels the multishot; the next caller that
 *      finds the queue empty arms it again (L1).
 *  L5. Close (weft_close, any thread): L is marked closing (it leaves the
 *      table only once the fd is closed, so that a racing weft_accept
 *      finds it and fails with -EBADF), waiters are woken with -EBADF,
 *      queued connections are closed, and the multishot is cancelled:
 *      directly on the home thread, else by a message to the home
 *      (sched/worker.c). The closer then waits, uncancellably, for the
 *      multishot's last completion (connections accepted meanwhile are
 *      closed as they come), because until then the ring holds the socket
 *      open: only then is the fd closed, so that the port is free when
 *      weft_close returns. L is freed when its last reference goes (table,
 *      waiting fibers, the armed multishot, a posted message, each one
 *      reference), by whoever drops it.
 *  L6. A ring that exits cancels what is armed on it and reaps until each
 *      has ended (io/ring.c); the last ring to exit forgets every listener,
 *      closing the connections nobody took. The listening fds stay open:
 *      they are the caller's.
 * Must never: lose an accepted fd (each is handed over, queued, or closed),
 * touch req or link off the home thread, or hold L's lock while reserving
 * SQEs or across a switch. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/ring.h"

#define WEFT__LISTEN_HIGH 64u

/* A waiting fiber's node, on its stack. */
struct acc_node {
    struct acc_node *prev, *next;
    struct weft__waiter *wt;
    uint32_t seq;
    bool linked;
    int fd; /* written before a successful wake with outcome 0 */
};

/* Wake outcomes besides 0 (an fd in the node) and -errno. */
#define OUTCOME_RETRY_SIMPLE 1 /* the kernel refused multishot: go simple */

struct weft__listener {
    int fd;
    _Atomic unsigned refs;
    struct weft__listener *tnext; /* the table's chain, under table_lock */
    pthread_mutex_t lock;
    /* Under lock. */
    int *q; /* accepted fds, a ring of qcap */
    unsigned qhead, qlen, qcap;
    int pending_err; /* for the next caller: -EMFILE, ... */
    struct acc_node *whead, *wtail;
    bool armed;        /* a multishot is in flight on home */
    bool cancel_sent;  /* and a cancel for it is queued or asked */
    bool closing;
    bool no_multishot; /* the kernel refused it */
    unsigned served;   /* accepts served from the queue, for fairness */
    struct weft__ring *home;
    struct weft__waiter *closer; /* waits for the multishot's end (L5) */
    uint32_t closer_seq;
    /* The home's owner only. */
    struct weft__io_req req;
    struct weft__io_link link; /* in home->armed_listeners */
    struct weft__msg msg;      /* the close message (L5) */
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft__listener *table;

static struct weft__listener *of_req(struct weft__io_req *req)
{
    return (struct weft__listener *)((char *)req -
                                     offsetof(struct weft__listener, req));
}

static struct weft__listener *of_link(struct weft__io_link *l)
{
    return (struct weft__listener *)((char *)l -
                                     offsetof(struct weft__listener, link));
}

/* ---- References and the table ---------------------------------------------- */

static void destroy(struct weft__listener *L)
{
    for (unsigned i = 0; i < L->qlen; i++)
        close(L->q[(L->qhead + i) % L->qcap]);
    free(L->q);
    pthread_mutex_destroy(&L->lock);
    free(L);
}

static void ref(struct weft__listener *L)
{
    atomic_fetch_add_explicit(&L->refs, 1, memory_order_relaxed);
}

static void put(struct weft__listener *L)
{
    /* acq_rel: whoever frees sees every write made under the other refs. */
    if (atomic_fetch_sub_explicit(&L->refs, 1, memory_order_acq_rel) == 1)
        destroy(L);
}

static struct weft__listener *table_get(int fd)
{
    pthread_mutex_lock(&table_lock);
    struct weft__listener *L = table;
    while (L && L->fd != fd)
        L = L->tnext;
    if (L)
        ref(L);
    pthread_mutex_unlock(&table_lock);
    return L;
}

/* Take L for fd out of the table; the table's reference passes to the
 * caller. */
static struct weft__listener *table_remove(int fd)
{
    pthread_mutex_lock(&table_lock);
    struct weft__listener **pp = &table;
    while (*pp && (*pp)->fd != fd)
        pp = &(*pp)->tnext;
    struct weft__listener *L = *pp;
    if (L)
        *pp = L->tnext;
    pthread_mutex_unlock(&table_lock);
    return L;
}

/* Take this L out of the table if it is still there; true if it was (the
 * table's reference then passes to the caller). */
static bool table_remove_entry(struct weft__listener *L)
{
    pthread_mutex_lock(&table_lock);
    struct weft__listener **pp = &table;
    while (*pp && *pp != L)
        pp = &(*pp)->tnext;
    bool found = *pp != NULL;
    if (found)
        *pp = L->tnext;
    pthread_mutex_unlock(&table_lock);
    return found;
}

/* ---- Handing over ------------------------------------------------------------ */

static struct acc_node *pop_waiter(struct weft__listener *L)
{
    struct acc_node *n = L->whead;
    if (n) {
        L->whead = n->next;
        if (L->whead)
            L->whead->prev = NULL;
        else
            L->wtail = NULL;
        n->linked = false;
    }
    return n;
}

static void unlink_waiter(struct weft__listener *L, struct acc_node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        L->whead = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        L->wtail = n->prev;
    n->linked = false;
}

/* L3, under the lock: give fd (or an error, fd < 0) to a waiter. A node
 * must not be touched after a successful wake. */
static bool hand_over(struct weft__listener *L, int fd_or_err)
{
    struct acc_node *n;
    while ((n = pop_waiter(L))) {
        if (fd_or_err >= 0) {
            n->fd = fd_or_err;
            if (weft__waiter_wake(n->wt, n->seq, 0))
                return true;
        } else if (weft__waiter_wake(n->wt, n->seq, fd_or_err)) {
            return true;
        }
        /* Its wait ended otherwise (deadline, cancel): it will find its
         * node unlinked. Try the next. */
    }
    return false;
}

static bool push_fd(struct weft__listener *L, int fd)
{
    if (L->qlen == L->qcap) {
        unsigned cap = L->qcap ? L->qcap * 2 : 16;
        int *q = malloc(cap * sizeof *q);
        if (!q)
            return false;
        for (unsigned i = 0; i < L->qlen; i++)
            q[i] = L->q[(L->qhead + i) % L->qcap];
        free(L->q);
        L->q = q;
        L->qhead = 0;
        L->qcap = cap;
    }
    L->q[(L->qhead + L->qlen) % L->qcap] = fd;
    L->qlen++;
    return true;
}

static int pop_fd(struct weft__listener *L)
{
    int fd = L->q[L->qhead];
    L->qhead = (L->qhead + 1) % L->qcap;
    L->qlen--;
    return fd;
}

/* ---- The multishot, on its home ------------------------------------------------ */

/* Queue a cancel for L's multishot. Home thread, no lock held; the caller
 * holds a reference. */
static void cancel_multishot(struct weft__ring *r, struct weft__listener *L)
{
    weft__ring_reserve(r, 1);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    io_uring_prep_cancel(sqe, &L->req, 0);
    io_uring_sqe_set_data(sqe, NULL);
    weft__ring_submit(r);
}

static void accept_complete(struct weft__io_req *req, int32_t res,
                            uint32_t cflags);

/* L1: arm the multishot on r (r's owner thread) if still needed. No lock
 * held on entry. */
static void try_arm(struct weft__ring *r, struct weft__listener *L)
{
    weft__ring_reserve(r, 1);
    pthread_mutex_lock(&L->lock);
    if (!L->armed && !L->closing && !L->no_multishot && !r->exiting) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
        io_uring_prep_multishot_accept(sqe, L->fd, NULL, NULL,
                                       SOCK_NONBLOCK | SOCK_CLOEXEC);
        io_uring_sqe_set_data(sqe, &L->req);
        L->armed = true;
        L->cancel_sent = false;
        L->home = r;
        ref(L); /* the armed multishot's */
        L->link.prev = r->armed_listeners.prev;
        L->link.next = &r->armed_listeners;
        r->armed_listeners.prev->next = &L->link;
        r->armed_listeners.prev = &L->link;
    }
    pthread_mutex_unlock(&L->lock);
}

static void accept_complete(struct weft__io_req *req, int32_t res,
                            uint32_t cflags)
{
    struct weft__listener *L = of_req(req);
    bool more = cflags & IORING_CQE_F_MORE;
    int drop_fd = -1;
    bool do_cancel = false, rearm = false;
    struct weft__ring *r;

    pthread_mutex_lock(&L->lock);
    r = L->home;
    if (!more) {
        L->armed = false;
        L->cancel_sent = false;
        L->link.prev->next = L->link.next;
        L->link.next->prev = L->link.prev;
        if (L->closer) {
            weft__waiter_wake(L->closer, L->closer_seq, 0);
            L->closer = NULL;
        }
    }
    if (res >= 0) {
        if (L->closing || (!hand_over(L, res) && !push_fd(L, res)))
            drop_fd = res; /* closing, or no memory to queue it */
    } else if (res == -EINVAL && !more) {
        /* Multishot accept unknown to this kernel (or the socket stopped
         * listening): everyone takes the simple path, which reports the
         * latter itself. */
        L->no_multishot = true;
        while (hand_over(L, OUTCOME_RETRY_SIMPLE))
            ;
    } else if (res == -ECANCELED) {
        /* Our own cancel: backpressure, close, or ring exit. */
    } else if (res < 0 && !L->closing) {
        if (!hand_over(L, res))
            L->pending_err = res;
    }
    if (L->armed && !L->cancel_sent && L->qlen >= WEFT__LISTEN_HIGH) {
        L->cancel_sent = true; /* L4 */
        do_cancel = true;
    }
    rearm = !L->armed && L->whead && !L->closing && !L->no_multishot;
    pthread_mutex_unlock(&L->lock);

    if (drop_fd >= 0)
        close(drop_fd);
    ref(L);
    if (do_cancel)
        cancel_multishot(r, L);
    if (rearm && !r->exiting)
        try_arm(r, L);
    if (!more)
        put(L); /* the armed multishot's */
    put(L);
}

static void close_msg_run(struct weft__worker *w, struct weft__msg *m)
{
    struct weft__listener *L =
        (struct weft__listener *)((char *)m -
                                  offsetof(struct weft__listener, msg));
    pthread_mutex_lock(&L->lock);
    bool armed = L->armed && L->home == w->ring;
    pthread_mutex_unlock(&L->lock);
    if (armed)
        cancel_multishot(w->ring, L);
    put(L); /* the message's */
}

/* L5: everything but closing the fd; returns once no multishot holds the
 * socket. The caller holds a reference. */
static void teardown(struct weft__listener *L)
{
    struct weft__worker *w = weft__worker_self();
    struct weft__waiter *wt = weft__waiter_self(w);
    uint32_t seq = 0;
    pthread_mutex_lock(&L->lock);
    if (L->closing) {
        /* Torn down already (two closes of one fd race): the first closer
         * waits for the multishot. */
        pthread_mutex_unlock(&L->lock);
        return;
    }
    L->closing = true;
    struct acc_node *n;
    while ((n = pop_waiter(L)))
        weft__waiter_wake(n->wt, n->seq, -EBADF);
    int *q = L->q;
    unsigned qhead = L->qhead, qlen = L->qlen, qcap = L->qcap;
    L->q = NULL;
    L->qhead = L->qlen = L->qcap = 0;
    bool armed = L->armed;
    bool cancel = armed && !L->cancel_sent;
    if (cancel)
        L->cancel_sent = true;
    if (armed) {
        seq = weft__waiter_begin(wt, WAIT_UNCANCELLABLE, "listener close");
        L->closer = wt;
        L->closer_seq = seq;
    }
    struct weft__ring *home = L->home;
    pthread_mutex_unlock(&L->lock);

    for (unsigned i = 0; i < qlen; i++)
        close(q[(qhead + i) % qcap]);
    free(q);
    if (cancel) {
        ref(L);
        if (w == home->worker) {
            cancel_multishot(home, L);
            put(L);
        } else {
            weft__worker_post(weft__runtime(), home->worker, &L->msg);
        }
    }
    if (armed)
        weft__waiter_block(&w, wt, seq, UINT64_MAX);
}

/* ---- Hooks ---------------------------------------------------------------------- */

/* L5. L stays in the table, marked closing, until the fd is closed: a
 * weft_accept that looks fd up meanwhile finds it and returns -EBADF.
 * Were L removed first, such a call would take the simple path and arm a
 * plain accept on the closing socket, which holds the socket open in the
 * ring and waits forever once the fd is gone. */
struct weft__listener *weft__listen_close(int fd)
{
    struct weft__listener *L = table_get(fd); /* the closer's reference */
    if (L)
        teardown(L);
    return L;
}

void weft__listen_closed(struct weft__listener *L)
{
    /* Not found: a weft_listen that got the fd's number after the close
     * already took this stale entry out. */
    if (table_remove_entry(L))
        put(L); /* the table's */
    put(L);     /* the closer's */
}

void weft__listen_ring_cancel(struct weft__ring *r)
{
    /* Cancelling may reap and so change the list: start over after each. */
    for (;;) {
        struct weft__listener *L = NULL;
        for (struct weft__io_link *l = r->armed_listeners.next;
             l != &r->armed_listeners; l = l->next) {
            struct weft__listener *c = of_link(l);
            pthread_mutex_lock(&c->lock);
            bool pick = !c->cancel_sent;
            if (pick)
                c->cancel_sent = true;
            pthread_mutex_unlock(&c->lock);
            if (pick) {
                L = c;
                break;
            }
        }
        if (!L)
            return;
        ref(L);
        cancel_multishot(r, L);
        put(L);
    }
}

void weft__listen_forget_all(void)
{
    pthread_mutex_lock(&table_lock);
    struct weft__listener *L = table;
    table = NULL;
    pthread_mutex_unlock(&table_lock);
    while (L) {
        struct weft__listener *next = L->tnext;
        put(L); /* the table's: the last, as no task and no ring is left */
        L = next;
    }
}

/* ---- The calls ------------------------------------------------------------------- */

static int set_opt(int fd, int level, int name)
{
    int one = 1;
    return setsockopt(fd, level, name, &one, sizeof one) < 0 ? -errno : 0;
}

static int apply_flags(int fd, int family, unsigned flags)
{
    int err = 0;
    if ((flags & WEFT_REUSEADDR) && (err = set_opt(fd, SOL_SOCKET, SO_REUSEADDR)))
        return err;
    if ((flags & WEFT_REUSEPORT) && (err = set_opt(fd, SOL_SOCKET, SO_REUSEPORT)))
        return err;
    if (flags & WEFT_V6ONLY) {
        if (family != AF_INET6)
            return -EINVAL;
        if ((err = set_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY)))
            return err;
    }
    return 0;
}

/* A socket of addr's family and type, options set, bound. */
int weft__bound_socket(const weft_addr_t *addr, int type, unsigned flags)
{
    if (!addr || !addr->len || addr->len > sizeof addr->u)
        return -EINVAL;
    if (flags & ~(WEFT_REUSEADDR | WEFT_REUSEPORT | WEFT_V6ONLY))
        return -EINVAL;
    int family = addr->u.sa.sa_family;
    if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
        return -EINVAL;
    int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int err = apply_flags(fd, family, flags);
    if (!err && bind(fd, &addr->u.sa, addr->len) < 0)
        err = -errno;
    if (err) {
        close(fd);
        return err;
    }
    return fd;
}

WEFT_API int weft_listen(const weft_addr_t *addr, int backlog, unsigned flags)
{
    if (backlog < 0)
        return -EINVAL;
    int fd = weft__bound_socket(addr, SOCK_STREAM, flags);
    if (fd < 0)
        return fd;
    if (listen(fd, backlog ? backlog : SOMAXCONN) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    /* Without memory for the shared state the listener still works, by
     * the simple path. */
    struct weft__listener *L = calloc(1, sizeof *L);
    if (L) {
        L->fd = fd;
        atomic_init(&L->refs, 1); /* the table's */
        pthread_mutex_init(&L->lock, NULL);
        L->req.complete = accept_complete;
        L->msg.run = close_msg_run;
        /* A stale entry for this number (its fd closed with close(2), not
         * weft_close) is torn down as weft_close would have. */
        struct weft__listener *old = table_remove(fd);
        if (old) {
            teardown(old);
            put(old);
        }
        pthread_mutex_lock(&table_lock);
        L->tnext = table;
        table = L;
        pthread_mutex_unlock(&table_lock);
    }
    return fd;
}

static int accept_simple(struct weft__worker *w, int lfd, weft_addr_t *peer,
                         uint64_t deadline)
{
    weft_addr_t tmp;
    memset(&tmp, 0, sizeof tmp);
    socklen_t len = sizeof tmp.u;
    struct io_uring_sqe *sqe = weft__io_sqe(w, deadline);
    io_uring_prep_accept(sqe, lfd, peer ? &tmp.u.sa : NULL, peer ? &len : NULL,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
    int r = weft__io_wait(&w, sqe, deadline, "accept", WEFT__IO_CANCELLABLE,
                          NULL);
    if (r >= 0 && peer) {
        tmp.len = len;
        *peer = tmp;
    }
    return r;
}

/* Returns an fd or -errno; *simple set: take the simple path instead. */
static int accept_listener(struct weft__worker **wp, struct weft__listener *L,
                           uint64_t deadline, bool *simple)
{
    struct weft__worker *w = *wp;
    struct weft__waiter *wt = weft__waiter_self(w);
    for (;;) {
        pthread_mutex_lock(&L->lock);
        if (L->closing) {
            pthread_mutex_unlock(&L->lock);
            return -EBADF;
        }
        if (L->qlen) {
            int fd = pop_fd(L);
            bool yield = (++L->served & 15) == 0;
            pthread_mutex_unlock(&L->lock);
            /* Served from the queue, an accept loop never parks: let the
             * handlers it spawned run now and then. */
            if (yield)
                weft_yield();
            *wp = weft__worker_self();
            return fd;
        }
        if (L->pending_err) {
            int e = L->pending_err;
            L->pending_err = 0;
            pthread_mutex_unlock(&L->lock);
            return e;
        }
        if (L->no_multishot) {
            pthread_mutex_unlock(&L->lock);
            *simple = true;
            return -EINVAL;
        }
        if (!L->armed) {
            pthread_mutex_unlock(&L->lock);
            try_arm(w->ring, L); /* L1; then look again */
            pthread_mutex_lock(&L->lock);
            if (!L->armed || L->qlen || L->closing || L->pending_err) {
                pthread_mutex_unlock(&L->lock);
                continue;
            }
        }
        /* L2 */
        struct acc_node node = {.prev = L->wtail, .next = NULL, .wt = wt,
                                .linked = true, .fd = -1};
        node.seq = weft__waiter_begin(wt, WAIT_DIRECT, "accept");
        if (L->wtail)
            L->wtail->next = &node;
        else
            L->whead = &node;
        L->wtail = &node;
        pthread_mutex_unlock(&L->lock);
        /* The arming SQE, if any, goes by the batching rule. */
        weft__ring_queued(w);
        int32_t r = weft__waiter_block(&w, wt, node.seq, deadline);
        *wp = w;
        pthread_mutex_lock(&L->lock);
        if (node.linked)
            unlink_waiter(L, &node);
        pthread_mutex_unlock(&L->lock);
        if (r == 0)
            return node.fd;
        if (r == OUTCOME_RETRY_SIMPLE)
            continue;
        return r;
    }
}

WEFT_API int weft_accept(int lfd, weft_addr_t *peer, uint64_t deadline_ns)
{
    if (lfd < 0)
        return -EBADF;
    struct weft__worker *w;
    int err = weft__io_begin(&w, &deadline_ns);
    if (err) {
        if (err == -EPERM)
            weft__misuse("weft_accept", "called from a plain thread, not a "
                                        "fiber");
        return err;
    }
    struct weft__listener *L = table_get(lfd);
    if (!L)
        return accept_simple(w, lfd, peer, deadline_ns);
    bool simple = false;
    int fd = accept_listener(&w, L, deadline_ns, &simple);
    put(L);
    if (simple)
        return accept_simple(w, lfd, peer, deadline_ns);
    if (fd >= 0 && peer && weft_addr_peer(fd, peer) < 0)
        memset(peer, 0, sizeof *peer); /* reset already: no address */
    return fd;
}
