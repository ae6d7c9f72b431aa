/* tests/io_resolve.c: name resolution on the blocking pool: names from
 * /etc/hosts (no network needed), numeric hosts parsed without the pool,
 * services, many lookups at once across workers, connecting by name, from
 * a plain thread, and errors. No test depends on DNS. */
#include <stdatomic.h>
#include <stdlib.h>

#include "io_test.h"

static bool has(const weft_addr_t *out, int n, const char *want)
{
    for (int i = 0; i < n; i++) {
        char buf[64];
        if (weft_addr_format(&out[i], buf, sizeof buf) > 0 &&
            strcmp(buf, want) == 0)
            return true;
    }
    return false;
}

static intptr_t basic_main(void *arg)
{
    (void)arg;
    weft_addr_t out[8];
    int n = weft_resolve("localhost", "80", AF_UNSPEC, SOCK_STREAM, out, 8);
    cr_assert_geq(n, 1, "localhost: %s", strerror(-n));
    cr_assert(has(out, n, "127.0.0.1:80"));
    n = weft_resolve("localhost", "8080", AF_INET, 0, out, 8);
    cr_assert_eq(n, 1); /* SOCK_STREAM/DGRAM/RAW duplicates merged */
    cr_assert(has(out, n, "127.0.0.1:8080"));
    n = weft_resolve("127.0.0.1", "9", AF_UNSPEC, SOCK_STREAM, out, 8);
    cr_assert_eq(n, 1);
    cr_assert(has(out, n, "127.0.0.1:9"));
    n = weft_resolve("::1", NULL, AF_UNSPEC, SOCK_DGRAM, out, 8);
    cr_assert_eq(n, 1);
    cr_assert(has(out, n, "[::1]:0"));
    cr_assert_eq(weft_resolve("::1", "1", AF_INET, 0, out, 8), -ENOENT);
    if (access("/etc/services", R_OK) == 0) {
        n = weft_resolve("localhost", "http", AF_INET, SOCK_STREAM, out, 8);
        cr_assert_eq(n, 1);
        cr_assert(has(out, n, "127.0.0.1:80"));
    }
    /* Errors change nothing. */
    weft_addr_t keep;
    memset(&keep, 0x11, sizeof keep);
    out[0] = keep;
    cr_assert_eq(weft_resolve("localhost", "no-such-service-weft", AF_INET,
                              SOCK_STREAM, out, 8), -ENOENT);
    cr_assert_eq(weft_resolve(NULL, "80", AF_UNSPEC, 0, out, 8), -EINVAL);
    cr_assert_eq(weft_resolve("", "80", AF_UNSPEC, 0, out, 8), -EINVAL);
    cr_assert_eq(weft_resolve("localhost", "80", AF_UNIX, 0, out, 8), -EINVAL);
    cr_assert_eq(weft_resolve("localhost", "80", AF_INET, SOCK_RAW, out, 8),
                 -EINVAL);
    cr_assert_eq(weft_resolve("localhost", "80", AF_INET, 0, out, 0), -EINVAL);
    cr_assert_eq(weft_resolve("localhost", "80", AF_INET, 0, NULL, 8), -EINVAL);
    cr_assert_eq(memcmp(&out[0], &keep, sizeof keep), 0);
    return 0;
}

Test(resolve, hosts_numbers_and_services, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, basic_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static atomic_int resolved;

static intptr_t one_lookup(void *arg)
{
    (void)arg;
    weft_addr_t out[4];
    int n = weft_resolve("localhost", "443", AF_INET, SOCK_STREAM, out, 4);
    cr_assert_eq(n, 1, "resolve: %d", n);
    cr_assert(has(out, n, "127.0.0.1:443"));
    atomic_fetch_add(&resolved, 1);
    return 0;
}

static intptr_t many_main(void *arg)
{
    (void)arg;
    enum { N = 200 };
    atomic_store(&resolved, 0);
    weft_task_t t[N];
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_spawn(&t[i], one_lookup, NULL), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    cr_assert_eq(atomic_load(&resolved), N);
    return 0;
}

Test(resolve, many_lookups_at_once_on_the_pool, .timeout = 60)
{
    int before = fd_count();
    cr_assert_eq(run_io(16, 0, many_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t host_main(void *arg)
{
    (void)arg;
    weft_addr_t addr;
    int lfd = listen_loopback(&addr, 0, 0);
    char port[16];
    snprintf(port, sizeof port, "%d", weft_addr_port(&addr));
    int c = weft_connect_host("localhost", port, WEFT_NO_DEADLINE);
    cr_assert_geq(c, 0, "connect_host: %s", strerror(-c));
    int s = weft_accept(lfd, NULL, WEFT_NO_DEADLINE);
    cr_assert_geq(s, 0);
    cr_assert_eq(weft_send_all(c, "name", 4, NULL, WEFT_NO_DEADLINE), 4);
    char buf[4];
    cr_assert_eq(weft_recv_exact(s, buf, 4, NULL, WEFT_NO_DEADLINE), 4);
    weft_close(c);
    weft_close(s);
    weft_close(lfd);
    /* Nobody listens there now. */
    cr_assert_eq(weft_connect_host("127.0.0.1", port, WEFT_NO_DEADLINE),
                 -ECONNREFUSED);
    cr_assert_eq(weft_connect_host(NULL, port, WEFT_NO_DEADLINE), -EINVAL);
    return 0;
}

Test(resolve, connect_by_name, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, host_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

Test(resolve, from_a_plain_thread, .timeout = 30)
{
    /* No runtime at all: getaddrinfo runs on the calling thread. */
    weft_addr_t out[4];
    int n = weft_resolve("localhost", "22", AF_INET, SOCK_STREAM, out, 4);
    cr_assert_eq(n, 1);
    cr_assert(has(out, n, "127.0.0.1:22"));
}
