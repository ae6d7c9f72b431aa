/* tests/io_poll.c: readiness waits (weft_wait_fd): readable and writable,
 * hang-ups and errors, driving a non-blocking socket the way a TLS or
 * database library would, many waiters across 16 workers, deadlines and
 * bad input. */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "io_test.h"

struct pipe_wait {
    int rfd, wfd;
    int revents;
};

static intptr_t pipe_reader(void *arg)
{
    struct pipe_wait *p = arg;
    p->revents = weft_wait_fd(p->rfd, POLLIN, WEFT_NO_DEADLINE);
    return 0;
}

static intptr_t basic_main(void *arg)
{
    (void)arg;
    int p[2];
    cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    struct pipe_wait pw = {.rfd = p[0], .wfd = p[1]};
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, pipe_reader, &pw), 0);
    weft_sleep_ms(5);
    cr_assert_eq(write(p[1], "!", 1), 1);
    cr_assert_eq(weft_join(t), 0);
    cr_assert(pw.revents & POLLIN, "revents %x", pw.revents);
    /* A pipe with room is writable at once. */
    int r = weft_wait_fd(p[1], POLLOUT, WEFT_NO_DEADLINE);
    cr_assert(r > 0 && (r & POLLOUT), "revents %x", r);
    /* Readable and writable asked together: what is ready is reported. */
    r = weft_wait_fd(p[0], POLLIN | POLLOUT, WEFT_NO_DEADLINE);
    cr_assert(r & POLLIN);
    /* The writer gone: the reader sees a hang-up once drained. */
    char c;
    cr_assert_eq(read(p[0], &c, 1), 1);
    cr_assert_eq(weft_close(p[1]), 0);
    r = weft_wait_fd(p[0], POLLIN, WEFT_NO_DEADLINE);
    cr_assert(r & POLLHUP, "revents %x", r);
    cr_assert_eq(weft_close(p[0]), 0);
    /* The reader gone: the writer sees an error. */
    cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    cr_assert_eq(weft_close(p[0]), 0);
    r = weft_wait_fd(p[1], POLLOUT, WEFT_NO_DEADLINE);
    cr_assert(r & POLLERR, "revents %x", r);
    cr_assert_eq(weft_close(p[1]), 0);
    return 0;
}

Test(poll, readable_writable_and_hangup, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, basic_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

/* A "library" that only knows non-blocking read/write and asks to be
 * called again when its fd is ready. */
static ssize_t lib_read_all(int fd, char *buf, size_t len)
{
    size_t off = 0;
    int waits = 0;
    while (off < len) {
        ssize_t n = read(fd, buf + off, len - off);
        if (n > 0) {
            off += (size_t)n;
        } else if (n == 0) {
            break;
        } else if (errno == EAGAIN) {
            int r = weft_wait_fd(fd, POLLIN, WEFT_NO_DEADLINE);
            cr_assert_gt(r, 0);
            waits++;
        } else {
            return -errno;
        }
    }
    cr_assert_gt(waits, 0);
    return (ssize_t)off;
}

static atomic_int drain_go;

static ssize_t lib_write_all(int fd, const char *buf, size_t len, int *waits)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, buf + off, len - off);
        if (n > 0) {
            off += (size_t)n;
        } else if (errno == EAGAIN) {
            atomic_store(&drain_go, 1); /* the peer may drain from now on */
            int r = weft_wait_fd(fd, POLLOUT, WEFT_NO_DEADLINE);
            cr_assert_gt(r, 0);
            (*waits)++;
        } else {
            return -errno;
        }
    }
    return (ssize_t)off;
}

struct lib {
    int fd;
    char *data;
    size_t len;
    int waits;
};

static intptr_t lib_peer(void *arg)
{
    struct lib *l = arg;
    /* Dribble the message out in pieces, with pauses. */
    uint64_t seed = 3;
    size_t off = 0;
    while (off < l->len) {
        size_t n = 1 + test_rand(&seed) % 5000;
        if (n > l->len - off)
            n = l->len - off;
        cr_assert_eq(weft_send_all(l->fd, l->data + off, n, NULL,
                                   WEFT_NO_DEADLINE), (ssize_t)n);
        off += n;
        weft_sleep_ns(test_rand(&seed) % 500000);
    }
    return 0;
}

static intptr_t lib_drain(void *arg)
{
    struct lib *l = arg;
    while (!atomic_load(&drain_go))
        weft_sleep_ms(1);
    cr_assert_eq(weft_recv_exact(l->fd, l->data, l->len, NULL,
                                 WEFT_NO_DEADLINE), (ssize_t)l->len);
    return 0;
}

static intptr_t lib_main(void *arg)
{
    (void)arg;
    weft_addr_t addr;
    int lfd = listen_loopback(&addr, 0, 0);
    int c = weft_connect(&addr, WEFT_NO_DEADLINE);
    int s = weft_accept(lfd, NULL, WEFT_NO_DEADLINE);
    cr_assert(c >= 0 && s >= 0);
    size_t len = 200000;
    char *data = malloc(len), *in = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (char)pattern(1, i);
    struct lib l = {.fd = c, .data = data, .len = len};
    weft_task_t t;
    cr_assert_eq(weft_spawn(&t, lib_peer, &l), 0);
    cr_assert_eq(lib_read_all(s, in, len), (ssize_t)len);
    cr_assert_eq(memcmp(in, data, len), 0);
    cr_assert_eq(weft_join(t), 0);
    /* The other way: fill the socket until it pushes back, then wait for
     * room while the peer drains. */
    int small = 4096;
    cr_assert_eq(setsockopt(s, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    memset(in, 0, len);
    /* The peer drains only once the socket pushed back: the library must
     * wait for room at least once. */
    atomic_store(&drain_go, 0);
    struct lib drain = {.fd = c, .data = in, .len = len};
    weft_task_t d;
    cr_assert_eq(weft_spawn(&d, lib_drain, &drain), 0);
    int waits = 0;
    cr_assert_eq(lib_write_all(s, data, len, &waits), (ssize_t)len);
    cr_assert_eq(weft_join(d), 0);
    cr_assert_gt(waits, 0);
    cr_assert_eq(memcmp(in, data, len), 0);
    weft_close(c);
    weft_close(s);
    weft_close(lfd);
    free(data);
    free(in);
    return 0;
}

Test(poll, drives_a_nonblocking_library, .timeout = 60)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, lib_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

enum { WAITERS = 200 };
static int waiter_pipes[WAITERS][2];
static atomic_int woke;

static intptr_t many_waiter(void *arg)
{
    int i = (int)(intptr_t)arg;
    int r = weft_wait_fd(waiter_pipes[i][0], POLLIN, WEFT_NO_DEADLINE);
    cr_assert(r & POLLIN);
    char c;
    cr_assert_eq(read(waiter_pipes[i][0], &c, 1), 1);
    cr_assert_eq(c, (char)i);
    atomic_fetch_add(&woke, 1);
    return 0;
}

static intptr_t many_main(void *arg)
{
    (void)arg;
    atomic_store(&woke, 0);
    weft_task_t t[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        cr_assert_eq(pipe2(waiter_pipes[i], O_NONBLOCK | O_CLOEXEC), 0);
        cr_assert_eq(weft_spawn(&t[i], many_waiter, (void *)(intptr_t)i), 0);
    }
    weft_sleep_ms(5);
    uint64_t seed = 8;
    int order[WAITERS];
    for (int i = 0; i < WAITERS; i++)
        order[i] = i;
    for (int i = WAITERS - 1; i > 0; i--) {
        int j = (int)(test_rand(&seed) % (uint64_t)(i + 1));
        int x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    for (int k = 0; k < WAITERS; k++) {
        char c = (char)order[k];
        cr_assert_eq(weft_write(waiter_pipes[order[k]][1], &c, 1,
                                WEFT_NO_DEADLINE), 1);
        if (k % 16 == 0)
            weft_yield();
    }
    for (int i = 0; i < WAITERS; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    cr_assert_eq(atomic_load(&woke), WAITERS);
    for (int i = 0; i < WAITERS; i++) {
        weft_close(waiter_pipes[i][0]);
        weft_close(waiter_pipes[i][1]);
    }
    return 0;
}

Test(poll, many_waiters_across_sixteen_workers, .timeout = 60)
{
    int before = fd_count();
    cr_assert_eq(run_io(16, 0, many_main, NULL), 0);
    cr_assert_eq(run_io(16, 21, many_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t bad_main(void *arg)
{
    (void)arg;
    int p[2];
    cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    uint64_t t0 = weft_now_ns();
    cr_assert_eq(weft_wait_fd(p[0], POLLIN, t0 + 10000000), -ETIMEDOUT);
    cr_assert_geq(weft_now_ns(), t0 + 10000000);
    cr_assert_eq(weft_wait_fd(-1, POLLIN, WEFT_NO_DEADLINE), -EBADF);
    cr_assert_eq(weft_wait_fd(p[0], 0, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_wait_fd(p[0], 0x40000000u, WEFT_NO_DEADLINE), -EINVAL);
    int dead = p[0];
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(weft_wait_fd(dead, POLLIN, WEFT_NO_DEADLINE), -EBADF);
    cr_assert_eq(weft_close(p[1]), 0);
    return 0;
}

Test(poll, deadlines_and_bad_input, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, bad_main, NULL), 0);
    cr_assert_eq(weft_wait_fd(0, POLLIN, WEFT_NO_DEADLINE), -EPERM);
    cr_assert_eq(fd_count(), before);
}
