/* tests/io_test.h: what the I/O suites (tests/io_*.c) share: counting open
 * fds (every test checks that it leaves none behind), loopback listeners,
 * and the fd limit. */
#ifndef WEFT_TESTS_IO_TEST_H
#define WEFT_TESTS_IO_TEST_H

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/weft_test.h"

/* Open fds of this process (the directory's own fd is not counted). */
static inline int fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert(d, "opendir /proc/self/fd: %s", strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

/* A TCP listener on 127.0.0.1 (or ::1 with v6) on a free port; *addr gets
 * its address. */
static inline int listen_loopback(weft_addr_t *addr, int v6, int backlog)
{
    cr_assert_eq(weft_addr_ip(addr, v6 ? "::1" : "127.0.0.1", 0), 0);
    int fd = weft_listen(addr, backlog, WEFT_REUSEADDR);
    cr_assert_geq(fd, 0, "weft_listen: %s", strerror(-fd));
    cr_assert_eq(weft_addr_local(fd, addr), 0);
    return fd;
}

/* Raise the soft fd limit to the hard one; returns the new limit. */
static inline rlim_t raise_fd_limit(void)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    return rl.rlim_cur;
}

/* A runtime of n workers (oversubscribed beyond the 2 cores on purpose),
 * with a shuffled schedule when seed is not 0. */
static inline intptr_t run_io(unsigned workers, uint64_t seed, weft_fn fn,
                              void *arg)
{
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = workers;
    cfg.pin = WEFT_PIN_OFF;
    cfg.shuffle_seed = seed;
    return run_cfg(&cfg, fn, arg);
}

/* A byte of a test pattern, at stream position i of stream s. */
static inline unsigned char pattern(uint64_t s, uint64_t i)
{
    uint64_t x = (s + 1) * 0x9E3779B97F4A7C15ull ^ (i * 0xBF58476D1CE4E5B9ull);
    x ^= x >> 29;
    return (unsigned char)(x ^ (x >> 17));
}

#endif
