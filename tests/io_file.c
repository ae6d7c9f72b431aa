/* tests/io_file.c: files through the rings: write-then-read round trips at
 * random offsets checked against a copy in memory, many fibers writing
 * disjoint regions of one file, vectored I/O, the current position, sync
 * and stat, reading a whole file, and bad input. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "io_test.h"

static void temp_path(char *buf, size_t len, const char *what)
{
    snprintf(buf, len, "/tmp/weft-io-file-%d-%s", (int)getpid(), what);
    unlink(buf);
}

enum { FILE_SIZE = 1 << 20 };

static intptr_t roundtrip_main(void *arg)
{
    (void)arg;
    char path[96];
    temp_path(path, sizeof path, "roundtrip");
    int fd = weft_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600,
                            WEFT_NO_DEADLINE);
    cr_assert_geq(fd, 0, "open: %s", strerror(-fd));
    unsigned char *shadow = calloc(1, FILE_SIZE);
    unsigned char *buf = malloc(FILE_SIZE);
    cr_assert(shadow && buf);
    size_t high = 0; /* the file's size */
    uint64_t seed = 2024;
    int rounds = SCALED(2000) + 50;
    for (int i = 0; i < rounds; i++) {
        size_t off = test_rand(&seed) % (FILE_SIZE - 1);
        size_t len = 1 + test_rand(&seed) % 20000;
        if (len > FILE_SIZE - off)
            len = FILE_SIZE - off;
        if (test_rand(&seed) % 2) {
            for (size_t k = 0; k < len; k++)
                shadow[off + k] = buf[k] = (unsigned char)test_rand(&seed);
            cr_assert_eq(weft_file_write_all(fd, buf, len, (int64_t)off,
                                             WEFT_NO_DEADLINE), (ssize_t)len);
            if (off + len > high)
                high = off + len;
        } else {
            ssize_t n = weft_file_read(fd, buf, len, (int64_t)off,
                                       WEFT_NO_DEADLINE);
            size_t expect = off >= high ? 0 : (high - off < len ? high - off
                                                                : len);
            cr_assert_eq(n, (ssize_t)expect, "read at %zu", off);
            cr_assert_eq(memcmp(buf, shadow + off, expect), 0,
                         "content at %zu", off);
        }
    }
    /* The whole file, once more. */
    cr_assert_eq(weft_file_read(fd, buf, FILE_SIZE, 0, WEFT_NO_DEADLINE),
                 (ssize_t)high);
    cr_assert_eq(memcmp(buf, shadow, high), 0);
    weft_close(fd);
    unlink(path);
    free(shadow);
    free(buf);
    return 0;
}

Test(file, write_then_read_round_trips_at_offsets, .timeout = 60)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, roundtrip_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

/* Many fibers, each writing its own region in pieces, in random order. */
enum { WRITERS = 32, REGION = 32768 };
static int shared_fd;

static intptr_t region_writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t seed = (uint64_t)id + 1;
    unsigned char buf[4096];
    for (int piece = 0; piece < REGION / 4096; piece++) {
        int p = (piece * 5 + id) % (REGION / 4096); /* scrambled order */
        int64_t off = (int64_t)id * REGION + (int64_t)p * 4096;
        for (int k = 0; k < 4096; k++)
            buf[k] = pattern((uint64_t)id, (uint64_t)(p * 4096 + k));
        cr_assert_eq(weft_file_write(shared_fd, buf, sizeof buf, off,
                                     WEFT_NO_DEADLINE), 4096);
        if (test_rand(&seed) % 3 == 0)
            weft_yield();
    }
    return 0;
}

static intptr_t regions_main(void *arg)
{
    (void)arg;
    char path[96];
    temp_path(path, sizeof path, "regions");
    shared_fd = weft_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600,
                               WEFT_NO_DEADLINE);
    cr_assert_geq(shared_fd, 0);
    weft_task_t t[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        cr_assert_eq(weft_spawn(&t[i], region_writer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < WRITERS; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    cr_assert_eq(weft_file_sync(shared_fd, WEFT_SYNC_DATA, WEFT_NO_DEADLINE), 0);
    void *data;
    ssize_t n = weft_file_read_all(path, &data, 0, WEFT_NO_DEADLINE);
    cr_assert_eq(n, (ssize_t)WRITERS * REGION);
    unsigned char *d = data;
    for (int id = 0; id < WRITERS; id++)
        for (int k = 0; k < REGION; k++)
            cr_assert_eq(d[id * REGION + k], pattern((uint64_t)id, (uint64_t)k),
                         "writer %d byte %d", id, k);
    free(data);
    weft_close(shared_fd);
    unlink(path);
    return 0;
}

Test(file, many_fibers_write_disjoint_regions, .timeout = 60)
{
    int before = fd_count();
    cr_assert_eq(run_io(16, 0, regions_main, NULL), 0);
    cr_assert_eq(run_io(16, 99, regions_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t vectors_main(void *arg)
{
    (void)arg;
    char path[96];
    temp_path(path, sizeof path, "vectors");
    int fd = weft_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600,
                            WEFT_NO_DEADLINE);
    cr_assert_geq(fd, 0);
    char a[] = "hello, ", b[] = "vectored ", c[] = "world";
    struct iovec out[3] = {{a, 7}, {b, 9}, {c, 5}};
    cr_assert_eq(weft_file_writev(fd, out, 3, 100, WEFT_NO_DEADLINE), 21);
    char x[10] = {0}, y[11] = {0};
    struct iovec in[2] = {{x, 10}, {y, 11}};
    cr_assert_eq(weft_file_readv(fd, in, 2, 100, WEFT_NO_DEADLINE), 21);
    cr_assert_eq(memcmp(x, "hello, vec", 10), 0);
    cr_assert_eq(memcmp(y, "tored world", 11), 0);
    /* The hole before offset 100 reads as zeros. */
    char hole[100];
    memset(hole, 1, sizeof hole);
    cr_assert_eq(weft_file_read(fd, hole, 100, 0, WEFT_NO_DEADLINE), 100);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(hole[i], 0);
    /* At the current position (-1): sequential, and the position moves. */
    int g = weft_file_open(path, O_RDONLY, 0, WEFT_NO_DEADLINE);
    cr_assert_geq(g, 0);
    char seq[60];
    cr_assert_eq(weft_file_read(g, seq, 60, -1, WEFT_NO_DEADLINE), 60);
    cr_assert_eq(weft_read(g, seq, 60, WEFT_NO_DEADLINE), 60);
    cr_assert_eq(memcmp(seq + 40, "hello, vec", 10), 0);
    cr_assert_eq(weft_read(g, seq, 60, WEFT_NO_DEADLINE), 1); /* "d" */
    cr_assert_eq(weft_read(g, seq, 60, WEFT_NO_DEADLINE), 0); /* end */
    weft_close(g);
    weft_close(fd);
    unlink(path);
    return 0;
}

Test(file, vectored_io_and_the_current_position, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, vectors_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t stat_main(void *arg)
{
    (void)arg;
    char path[96];
    temp_path(path, sizeof path, "stat");
    int fd = weft_file_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640,
                            WEFT_NO_DEADLINE);
    cr_assert_geq(fd, 0);
    static char block[12345];
    memset(block, 'z', sizeof block);
    cr_assert_eq(weft_file_write_all(fd, block, sizeof block, 0,
                                     WEFT_NO_DEADLINE), (ssize_t)sizeof block);
    cr_assert_eq(weft_file_sync(fd, 0, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_file_sync(fd, WEFT_SYNC_DATA, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_file_sync(fd, 0x80, WEFT_NO_DEADLINE), -EINVAL);
    weft_stat_t st, st2;
    cr_assert_eq(weft_file_fstat(fd, &st, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(st.size, sizeof block);
    cr_assert(S_ISREG(st.mode));
    cr_assert_eq(st.mode & 0777, 0640);
    cr_assert_gt(st.mtime_ns, 0);
    cr_assert_eq(weft_file_stat(path, &st2, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(st2.ino, st.ino);
    cr_assert_eq(st2.size, st.size);
    cr_assert_eq(weft_file_stat("/", &st2, WEFT_NO_DEADLINE), 0);
    cr_assert(S_ISDIR(st2.mode));
    memset(&st2, 0x77, sizeof st2);
    cr_assert_eq(weft_file_stat("/no/such/file", &st2, WEFT_NO_DEADLINE),
                 -ENOENT);
    cr_assert_eq(st2.size, 0x7777777777777777ull); /* untouched */
    weft_close(fd);
    unlink(path);
    return 0;
}

Test(file, sync_and_stat, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, stat_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t read_all_main(void *arg)
{
    (void)arg;
    char path[96];
    temp_path(path, sizeof path, "all");
    int fd = weft_file_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600,
                            WEFT_NO_DEADLINE);
    size_t len = 300000 + 17; /* not a multiple of anything */
    unsigned char *buf = malloc(len);
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern(5, i);
    cr_assert_eq(weft_file_write_all(fd, buf, len, 0, WEFT_NO_DEADLINE),
                 (ssize_t)len);
    weft_close(fd);
    void *data = NULL;
    cr_assert_eq(weft_file_read_all(path, &data, 0, WEFT_NO_DEADLINE),
                 (ssize_t)len);
    cr_assert_eq(memcmp(data, buf, len), 0);
    cr_assert_eq(((char *)data)[len], '\0');
    free(data);
    void *untouched = (void *)0x1234;
    cr_assert_eq(weft_file_read_all(path, &untouched, len - 1,
                                    WEFT_NO_DEADLINE), -EFBIG);
    cr_assert_eq(untouched, (void *)0x1234);
    cr_assert_eq(weft_file_read_all("/no/such/file", &untouched, 0,
                                    WEFT_NO_DEADLINE), -ENOENT);
    cr_assert_eq(weft_file_read_all(NULL, &untouched, 0, WEFT_NO_DEADLINE),
                 -EINVAL);
    /* A /proc file says size 0 but has content. */
    ssize_t n = weft_file_read_all("/proc/self/status", &data, 0,
                                   WEFT_NO_DEADLINE);
    cr_assert_gt(n, 0);
    cr_assert_neq(strstr(data, "Name:"), NULL);
    free(data);
    /* An empty file: length 0 and an empty string. */
    fd = weft_file_open(path, O_WRONLY | O_TRUNC, 0, WEFT_NO_DEADLINE);
    weft_close(fd);
    cr_assert_eq(weft_file_read_all(path, &data, 0, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(((char *)data)[0], '\0');
    free(data);
    unlink(path);
    free(buf);
    return 0;
}

Test(file, read_a_whole_file, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, read_all_main, NULL), 0);
    cr_assert_eq(fd_count(), before);
}

static intptr_t bad_main(void *arg)
{
    (void)arg;
    char path[96];
    temp_path(path, sizeof path, "bad");
    char buf[8];
    memset(buf, 0x3c, sizeof buf);
    cr_assert_eq(weft_file_open(NULL, O_RDONLY, 0, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_file_open("/no/such/dir/x", O_RDONLY, 0,
                                WEFT_NO_DEADLINE), -ENOENT);
    int fd = weft_file_open(path, O_RDONLY | O_CREAT, 0600, WEFT_NO_DEADLINE);
    cr_assert_geq(fd, 0);
    cr_assert_eq(weft_file_read(-1, buf, 8, 0, WEFT_NO_DEADLINE), -EBADF);
    cr_assert_eq(weft_file_read(fd, buf, 8, -2, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_file_read(fd, NULL, 8, 0, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_file_read(fd, buf, (size_t)-8, 0, WEFT_NO_DEADLINE),
                 -EINVAL);
    cr_assert_eq(weft_file_write(fd, "x", 1, 0, WEFT_NO_DEADLINE), -EBADF);
    cr_assert_eq(weft_file_write_all(fd, "x", 1, -1, WEFT_NO_DEADLINE),
                 -EINVAL);
    cr_assert_eq(weft_file_readv(fd, NULL, 2, 0, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_file_fstat(fd, NULL, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_file_stat(NULL, NULL, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_file_sync(-1, 0, WEFT_NO_DEADLINE), -EBADF);
    cr_assert_eq(weft_file_read(fd, buf, 0, 0, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_close(fd), 0);
    cr_assert_eq(weft_file_read(fd, buf, 8, 0, WEFT_NO_DEADLINE), -EBADF);
    cr_assert_eq(weft_file_read(fd, buf, 0, 0, WEFT_NO_DEADLINE), -EBADF);
    for (size_t i = 0; i < sizeof buf; i++)
        cr_assert_eq(buf[i], 0x3c);
    unlink(path);
    return 0;
}

Test(file, bad_input_changes_nothing, .timeout = 30)
{
    int before = fd_count();
    cr_assert_eq(run_io(2, 0, bad_main, NULL), 0);
    char buf[4];
    cr_assert_eq(weft_file_read(0, buf, 4, 0, WEFT_NO_DEADLINE), -EPERM);
    cr_assert_eq(weft_file_open("/", O_RDONLY, 0, WEFT_NO_DEADLINE), -EPERM);
    cr_assert_eq(fd_count(), before);
}
