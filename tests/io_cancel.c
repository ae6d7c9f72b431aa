/* tests/io_cancel.c: cancelling tasks blocked in I/O. A cancelled call
 * returns -ECANCELED only after its operation's own completion, so the
 * kernel never writes into the caller's buffer afterwards: the tests free
 * or unmap the buffer as soon as the call returns, then let the peer send,
 * and check that every byte reaches the next reader intact (a cancelled
 * recv that still lived would have taken them, or faulted on the unmapped
 * page). If the operation won the race, the call returns its real result
 * and the cancel ends the task's next wait instead. Cancels come from
 * fibers on other workers and from plain threads. */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "io_test.h"

static void pair(int *c, int *s)
{
    weft_addr_t addr;
    int lfd = listen_loopback(&addr, 0, 0);
    *c = weft_connect(&addr, WEFT_NO_DEADLINE);
    *s = weft_accept(lfd, NULL, WEFT_NO_DEADLINE);
    cr_assert(*c >= 0 && *s >= 0);
    cr_assert_eq(weft_close(lfd), 0);
}

/* Wait until task t is parked in a wait named `what` (for ordering only:
 * a cancel before that must work too, and is tested separately). */
static void wait_blocked(volatile atomic_int *started)
{
    while (!atomic_load(started))
        weft_sleep_ms(1);
    weft_sleep_ms(2);
}

/* ---- A recv cancelled, then the peer sends -------------------------------- */

struct victim {
    int fd;
    bool unmap; /* the buffer is a page, unmapped after the call */
    atomic_int started;
    ssize_t r;
};

static intptr_t recv_victim(void *arg)
{
    struct victim *v = arg;
    size_t len = 4096;
    unsigned char *buf;
    if (v->unmap) {
        buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        cr_assert_neq(buf, MAP_FAILED);
    } else {
        buf = malloc(len);
        cr_assert(buf);
    }
    memset(buf, 0xaa, len);
    atomic_store(&v->started, 1);
    v->r = weft_recv(v->fd, buf, len, 0, WEFT_NO_DEADLINE);
    if (v->r == -ECANCELED)
        for (size_t i = 0; i < len; i++)
            cr_assert_eq(buf[i], 0xaa, "byte %zu written after cancel", i);
    /* Gone at once: a kernel write from here on would be a use after free
     * (malloc) or fault (munmap). */
    if (v->unmap)
        munmap(buf, len);
    else
        free(buf);
    return 0;
}

static void *cancel_from_thread(void *arg)
{
    weft_task_t *t = arg;
    cr_assert_eq(weft_cancel(*t), 0);
    return NULL;
}

static intptr_t cancel_then_send(void *arg)
{
    int how = (int)(intptr_t)arg; /* 0: fiber, 1: plain thread */
    for (int round = 0; round < 8; round++) {
        int c, s;
        pair(&c, &s);
        struct victim v = {.fd = s, .unmap = round & 1};
        atomic_init(&v.started, 0);
        weft_task_t t;
        cr_assert_eq(weft_spawn(&t, recv_victim, &v), 0);
        wait_blocked(&v.started);
        if (how == 0) {
            cr_assert_eq(weft_cancel(t), 0);
        } else {
            pthread_t th;
            cr_assert_eq(pthread_create(&th, NULL, cancel_from_thread, &t), 0);
            cr_assert_eq(pthread_join(th, NULL), 0);
        }
        cr_assert_eq(weft_join(t), 0);
        cr_assert_eq(v.r, -ECANCELED);
        /* Now the peer sends: every byte reaches the next reader. */
        char msg[64];
        for (int i = 0; i < 64; i++)
            msg[i] = (char)(i * 7 + round);
        cr_assert_eq(weft_send_all(c, msg, sizeof msg, NULL, WEFT_NO_DEADLINE),
                     (ssize_t)sizeof msg);
        char got[64];
        cr_assert_eq(weft_recv_exact(s, got, sizeof got, NULL,
                                     WEFT_NO_DEADLINE), (ssize_t)sizeof got);
        cr_assert_eq(memcmp(got, msg, sizeof msg), 0);
        weft_close(c);
        weft_close(s);
    }
    return 0;
}

Test(cancel, recv_cancelled_by_a_fiber_leaves_the_bytes_to_the_next_reader,
     .timeout = 60)
{
    int before = fd_count();
    cr_assert_eq(run_io(4, 0, cancel_then_send, (void *)0), 0);
    cr_assert_eq(run_io(1, 0, cancel_then_send, (void *)0), 0);
    cr_assert_eq(fd_count(), before);
}

Test(cancel, recv_cancelled_by_a_plain_thread_leaves_the_bytes_to_the_next_reader,
     .timeout = 60)
{
    int before = fd_count();
    cr_assert_eq(run_io(4, 0, cancel_then_send, (void *)1), 0);
    cr_assert_eq(run_io(1, 0, cancel_then_send, (void *)1), 0);
    cr_assert_eq(fd_count(), before);
}

/* ---- Cancel racing with the data ------------------------------------------- */

struct racer {
    int fd;
    uint64_t seed;
    ssize_t r;
    int next_wait; /* what the wait after the recv returned */
    unsigned char byte;
};

static intptr_t race_victim(void *arg)
{
    struct racer *v = arg;
    unsigned char *buf = malloc(16);
    cr_assert(buf);
    v->r = weft_recv(v->fd, buf, 16, 0, WEFT_NO_DEADLINE);
    if (v->r == 1)
        v->byte = buf[0];
    free(buf);
    /* If the data won, the cancel is still pending: it ends this wait. */
    v->next_wait = weft_sleep_ms(v->r == 1 ? 10000 : 0);
    return 0;
}

static intptr_t race_main(void *arg)
{
    (void)arg;
    uint64_t seed = 12345;
    int won_data = 0, won_cancel = 0;
    int rounds = SCALED(400) + 20;
    for (int round = 0; round < rounds; round++) {
        int c, s;
        pair(&c, &s);
        struct racer v = {.fd = s};
        weft_task_t t;
        cr_assert_eq(weft_spawn(&t, race_victim, &v), 0);
        if (test_rand(&seed) % 2)
            weft_yield();
        random_spin(&seed);
        unsigned char b = (unsigned char)round;
        bool send_first = test_rand(&seed) % 2;
        if (send_first)
            cr_assert_eq(weft_send(c, &b, 1, 0, WEFT_NO_DEADLINE), 1);
        random_spin(&seed);
        cr_assert_eq(weft_cancel(t), 0);
        if (!send_first)
            cr_assert_eq(weft_send(c, &b, 1, 0, WEFT_NO_DEADLINE), 1);
        cr_assert_eq(weft_join(t), 0);
        if (v.r == 1) {
            /* The recv completed first: it has the byte, and the cancel
             * ended the next wait. */
            won_data++;
            cr_assert_eq(v.byte, b);
            cr_assert_eq(v.next_wait, -ECANCELED);
        } else {
            /* The cancel won: the byte is still in the socket. */
            won_cancel++;
            cr_assert_eq(v.r, -ECANCELED, "recv: %zd", v.r);
            cr_assert_eq(v.next_wait, 0);
            unsigned char got;
            cr_assert_eq(weft_recv(s, &got, 1, 0, WEFT_NO_DEADLINE), 1);
            cr_assert_eq(got, b);
        }
        weft_close(c);
        weft_close(s);
    }
    cr_assert_eq(won_data + won_cancel, rounds);
    return 0;
}

Test(cancel, a_cancel_racing_the_data_loses_no_byte, .timeout = 120)
{
    int before = fd_count();
    cr_assert_eq(run_io(4, 0, race_main, NULL), 0);
    cr_assert_eq(run_io(16, 0xbeef, race_main, NULL), 0);
    cr_assert_eq(run_io(1, 7, race_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

/* ---- Only the cancelled operations end -------------------------------------- */

enum { MANY = 100 };

struct many {
    int c[MANY], s[MANY];
    ssize_t r[MANY];
    unsigned char got[MANY];
    atomic_int blocked;
};

static struct many *many_state;

static intptr_t many_victim(void *arg)
{
    int i = (int)(intptr_t)arg;
    struct many *m = many_state;
    atomic_fetch_add(&m->blocked, 1);
    m->r[i] = weft_recv(m->s[i], &m->got[i], 1, 0, WEFT_NO_DEADLINE);
    return 0;
}

static intptr_t many_main(void *arg)
{
    (void)arg;
    struct many *m = calloc(1, sizeof *m);
    cr_assert(m);
    many_state = m;
    for (int i = 0; i < MANY; i++)
        pair(&m->c[i], &m->s[i]);
    weft_task_t t[MANY];
    for (int i = 0; i < MANY; i++)
        cr_assert_eq(weft_spawn(&t[i], many_victim, (void *)(intptr_t)i), 0);
    while (atomic_load(&m->blocked) < MANY)
        weft_sleep_ms(1);
    weft_sleep_ms(5);
    uint64_t seed = 99;
    bool cancelled[MANY] = {0};
    for (int i = 0; i < MANY; i++)
        if (test_rand(&seed) % 2) {
            cancelled[i] = true;
            cr_assert_eq(weft_cancel(t[i]), 0);
        }
    for (int i = 0; i < MANY; i++)
        if (cancelled[i])
            cr_assert_eq(weft_join(t[i]), 0);
    /* The others still wait: give them their byte. */
    for (int i = 0; i < MANY; i++) {
        unsigned char b = (unsigned char)i;
        cr_assert_eq(weft_send(m->c[i], &b, 1, 0, WEFT_NO_DEADLINE), 1);
    }
    for (int i = 0; i < MANY; i++) {
        if (!cancelled[i])
            cr_assert_eq(weft_join(t[i]), 0);
        if (cancelled[i]) {
            cr_assert_eq(m->r[i], -ECANCELED, "task %d: %zd", i, m->r[i]);
            unsigned char b;
            cr_assert_eq(weft_recv(m->s[i], &b, 1, 0, WEFT_NO_DEADLINE), 1);
            cr_assert_eq(b, (unsigned char)i);
        } else {
            cr_assert_eq(m->r[i], 1, "task %d: %zd", i, m->r[i]);
            cr_assert_eq(m->got[i], (unsigned char)i);
        }
        weft_close(m->c[i]);
        weft_close(m->s[i]);
    }
    free(m);
    return 0;
}

Test(cancel, only_the_cancelled_operations_end, .timeout = 60)
{
    int before = fd_count();
    cr_assert_eq(run_io(1, 0, many_main, NULL), 0);
    cr_assert_eq(run_io(16, 0, many_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

/* ---- Every kind of wait -------------------------------------------------------- */

static int wait_fd_arg;
static atomic_int kind_started;

static intptr_t wait_fd_victim(void *arg)
{
    (void)arg;
    atomic_store(&kind_started, 1);
    return weft_wait_fd(wait_fd_arg, POLLIN, WEFT_NO_DEADLINE);
}

static intptr_t accept_victim(void *arg)
{
    atomic_store(&kind_started, 1);
    return weft_accept((int)(intptr_t)arg, NULL, WEFT_NO_DEADLINE);
}

static intptr_t fifo_victim(void *arg)
{
    char buf[8];
    atomic_store(&kind_started, 1);
    return weft_file_read((int)(intptr_t)arg, buf, sizeof buf, -1,
                          WEFT_NO_DEADLINE);
}

static intptr_t deadline_victim(void *arg)
{
    char buf[8];
    atomic_store(&kind_started, 1);
    return weft_recv((int)(intptr_t)arg, buf, sizeof buf, 0,
                     weft_now_ns() + 60000000000ull);
}

static intptr_t cancel_kind(weft_fn fn, void *arg)
{
    atomic_store(&kind_started, 0);
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, fn, arg), 0);
    wait_blocked(&kind_started);
    cr_assert_eq(weft_cancel(t), 0);
    return weft_join(t);
}

static intptr_t kinds_main(void *arg)
{
    (void)arg;
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    wait_fd_arg = p[0];
    cr_assert_eq(cancel_kind(wait_fd_victim, NULL), -ECANCELED);

    /* A weft listener (a multishot accept, or a wait on its queue) and a
     * plain one (one accept operation). */
    weft_addr_t addr;
    int lfd = listen_loopback(&addr, 0, 0);
    cr_assert_eq(cancel_kind(accept_victim, (void *)(intptr_t)lfd), -ECANCELED);
    int plain = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    weft_addr_t any;
    cr_assert_eq(weft_addr_ip(&any, "127.0.0.1", 0), 0);
    cr_assert_eq(bind(plain, &any.u.sa, any.len), 0);
    cr_assert_eq(listen(plain, 4), 0);
    cr_assert_eq(cancel_kind(accept_victim, (void *)(intptr_t)plain),
                 -ECANCELED);
    /* Both still accept afterwards. */
    int c = weft_connect(&addr, WEFT_NO_DEADLINE);
    int s = weft_accept(lfd, NULL, WEFT_NO_DEADLINE);
    cr_assert(c >= 0 && s >= 0);
    cr_assert_eq(cancel_kind(deadline_victim, (void *)(intptr_t)s), -ECANCELED);
    weft_close(c);
    weft_close(s);
    weft_close(plain);
    weft_close(lfd);

    /* A FIFO with no writer data: a file read that blocks. */
    char path[64];
    snprintf(path, sizeof path, "/tmp/weft-io-cancel-%d.fifo", (int)getpid());
    unlink(path);
    cr_assert_eq(mkfifo(path, 0600), 0);
    int f = weft_file_open(path, O_RDWR, 0, WEFT_NO_DEADLINE);
    cr_assert_geq(f, 0);
    cr_assert_eq(cancel_kind(fifo_victim, (void *)(intptr_t)f), -ECANCELED);
    /* The FIFO still works: nothing was lost or consumed. */
    cr_assert_eq(weft_write(f, "fifo", 4, WEFT_NO_DEADLINE), 4);
    char buf[4];
    cr_assert_eq(weft_file_read(f, buf, 4, -1, WEFT_NO_DEADLINE), 4);
    cr_assert_eq(memcmp(buf, "fifo", 4), 0);
    weft_close(f);
    unlink(path);
    weft_close(p[0]);
    weft_close(p[1]);
    return 0;
}

Test(cancel, every_kind_of_io_wait_is_cancellable, .timeout = 60)
{
    int before = fd_count();
    cr_assert_eq(run_io(4, 0, kinds_main, NULL), 0);
    cr_assert_eq(run_io(1, 0, kinds_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

/* ---- A pending cancel, and cancel against deadline ---------------------------- */

static intptr_t pending_main(void *arg)
{
    (void)arg;
    int c, s;
    pair(&c, &s);
    cr_assert_eq(weft_send(c, "x", 1, 0, WEFT_NO_DEADLINE), 1);
    /* A cancel that arrives while the task runs ends its next I/O at
     * once, even though data is there, and only that one. */
    cr_assert_eq(weft_cancel(weft_self()), 0);
    char b;
    cr_assert_eq(weft_recv(s, &b, 1, 0, WEFT_NO_DEADLINE), -ECANCELED);
    cr_assert_eq(weft_recv(s, &b, 1, 0, WEFT_NO_DEADLINE), 1);
    cr_assert_eq(b, 'x');
    weft_close(c);
    weft_close(s);
    return 0;
}

Test(cancel, a_pending_cancel_ends_the_next_io_once, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, pending_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

struct both {
    int fd;
    uint64_t delay;
    ssize_t r;
    int next;
};

static intptr_t both_victim(void *arg)
{
    struct both *v = arg;
    char buf[4];
    v->r = weft_recv(v->fd, buf, sizeof buf, 0, weft_now_ns() + v->delay);
    v->next = weft_sleep_ms(v->r == -ETIMEDOUT ? 10000 : 0);
    return 0;
}

static intptr_t both_main(void *arg)
{
    (void)arg;
    uint64_t seed = 4242;
    int timeouts = 0, cancels = 0;
    int rounds = SCALED(200) + 10;
    for (int i = 0; i < rounds; i++) {
        int c, s;
        pair(&c, &s);
        struct both v = {.fd = s, .delay = 200000 + test_rand(&seed) % 400000};
        weft_task_t t;
        cr_assert_eq(weft_spawn(&t, both_victim, &v), 0);
        weft_sleep_ns(test_rand(&seed) % 600000);
        cr_assert_eq(weft_cancel(t), 0);
        cr_assert_eq(weft_join(t), 0);
        if (v.r == -ETIMEDOUT) {
            /* The deadline won: the cancel is still pending. */
            timeouts++;
            cr_assert_eq(v.next, -ECANCELED);
        } else {
            cancels++;
            cr_assert_eq(v.r, -ECANCELED, "recv: %zd", v.r);
            cr_assert_eq(v.next, 0);
        }
        weft_close(c);
        weft_close(s);
    }
    cr_assert_eq(timeouts + cancels, rounds);
    return 0;
}

Test(cancel, cancel_and_deadline_race_to_one_outcome, .timeout = 120)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, both_main, NULL), 0);
    cr_assert_eq(run_io(16, 5, both_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}
