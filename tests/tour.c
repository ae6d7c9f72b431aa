/* tests/tour.c: the asyncio tour (examples/tour/) runs and prints what the
 * Python prints, and waits that should overlap do. Each example runs as a
 * child process with its sleeps scaled (WEFT_TOUR_SCALE) and reports how
 * long its main took, in the tour's own seconds (WEFT_TOUR_TIMES). Sleeps
 * never end early, so a time at least the longest wait is a guarantee; the
 * check that waits overlapped is only "well under their sum". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/weft_test.h"

#ifndef WEFT_TOUR_DIR
#error "WEFT_TOUR_DIR must name the directory of the tour's programs"
#endif

#define SCALE "0.25"

struct run {
    char *out, *err; /* stdout and stderr */
    int status;
    double seconds; /* main's time, in tour seconds */
};

static char *slurp(int fd)
{
    off_t len = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)len + 1);
    cr_assert_not_null(text);
    cr_assert_eq(pread(fd, text, (size_t)len, 0), len);
    close(fd);
    return text;
}

static struct run run(const char *program)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", WEFT_TOUR_DIR, program);
    int out = memfd_create("stdout", 0), err = memfd_create("stderr", 0);
    cr_assert(out >= 0 && err >= 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(out, STDOUT_FILENO);
        dup2(err, STDERR_FILENO);
        setenv("WEFT_TOUR_SCALE", SCALE, 1);
        setenv("WEFT_TOUR_TIMES", "1", 1);
        /* The tour's line order is asyncio's, on one worker. */
        unsetenv("WEFT_WORKERS");
        unsetenv("WEFT_SHUFFLE");
        execl(path, program, (char *)NULL);
        _exit(127);
    }
    struct run r = {0};
    cr_assert_eq(waitpid(pid, &r.status, 0), pid);
    r.out = slurp(out);
    r.err = slurp(err);
    const char *t = strstr(r.err, "tour: main took ");
    r.seconds = t ? strtod(t + strlen("tour: main took "), NULL) : -1;
    cr_log_info("%s:\n%s%s", program, r.out, r.err);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0,
              "%s failed (status %#x):\n%s%s", program, r.status, r.out, r.err);
    cr_assert_geq(r.seconds, 0, "%s reported no time: %s", program, r.err);
    return r;
}

static void done(struct run *r)
{
    free(r->out);
    free(r->err);
}

static unsigned count_lines(const char *text, const char *line)
{
    unsigned n = 0;
    size_t len = strlen(line);
    for (const char *p = text; *p;) {
        const char *end = strchr(p, '\n');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l == len && strncmp(p, line, len) == 0)
            n++;
        p += l + (end ? 1 : 0);
    }
    return n;
}

Test(tour, hello_prints_around_a_sleep, .timeout = 60)
{
    struct run r = run("weft-tour-hello");
    cr_assert_str_eq(r.out, "Hello ...\n... World!\n");
    cr_assert_geq(r.seconds, 1.0, "the sleep lasted: %f", r.seconds);
    done(&r);
}

Test(tour, create_task_runs_both_tasks_at_once, .timeout = 60)
{
    struct run r = run("weft-tour-create-task");
    cr_assert_str_eq(r.out, "Task A starting.\n"
                            "Task B starting.\n"
                            "Task B completed.\n"
                            "Task A completed.\n");
    cr_assert_geq(r.seconds, 2.0);
    cr_assert_lt(r.seconds, 2.6, "waits of 2 s and 1 s overlap: %f", r.seconds);
    done(&r);
}

Test(tour, gather_finishes_out_of_order_in_the_longest_time, .timeout = 60)
{
    struct run r = run("weft-tour-gather");
    cr_assert_str_eq(r.out, "Task 2 Completed\nTask 1 Completed\n");
    cr_assert_geq(r.seconds, 2.0);
    cr_assert_lt(r.seconds, 2.6, "about 2 s, not 3: %f", r.seconds);
    done(&r);
}

Test(tour, error_in_a_task_reaches_its_awaiter, .timeout = 60)
{
    struct run r = run("weft-tour-error");
    cr_assert_str_eq(r.out, "Caught an error: Invalid argument\n");
    done(&r);
}

Test(tour, background_job_repeats_until_cancelled, .timeout = 60)
{
    struct run r = run("weft-tour-background");
    /* Beats at 0, 1, 2, 3; the cancel at 3.5 leaves room on either side. */
    unsigned beats = count_lines(r.out, "beat");
    cr_assert(beats >= 3 && beats <= 5, "%u beats:\n%s", beats, r.out);
    const char *tail = "heartbeat stopped\nmain: heartbeat is cancelled\n";
    size_t n = strlen(r.out), t = strlen(tail);
    cr_assert(n > t && strcmp(r.out + n - t, tail) == 0, "%s", r.out);
    unsigned lines = 0;
    for (const char *p = r.out; (p = strchr(p, '\n')); p++)
        lines++;
    cr_assert_eq(lines, beats + 2, "nothing but beats, then the end:\n%s",
                 r.out);
    cr_assert_geq(r.seconds, 3.5);
    done(&r);
}

Test(tour, timeout_gives_up_long_before_the_operation_ends, .timeout = 60)
{
    struct run r = run("weft-tour-timeout");
    cr_assert_str_eq(r.out, "The operation timed out\n");
    cr_assert_geq(r.seconds, 1.0);
    cr_assert_lt(r.seconds, 5.0, "1 s, not 10: %f", r.seconds);
    done(&r);
}

Test(tour, queue_hands_each_item_from_producer_to_consumer, .timeout = 60)
{
    struct run r = run("weft-tour-queue");
    cr_assert_str_eq(r.out, "Produced 0\nConsumed 0\n"
                            "Produced 1\nConsumed 1\n"
                            "Produced 2\nConsumed 2\n"
                            "Produced 3\nConsumed 3\n"
                            "Produced 4\nConsumed 4\n");
    cr_assert_geq(r.seconds, 0.5);
    done(&r);
}

Test(tour, to_thread_overlaps_a_blocking_call_with_a_sleep, .timeout = 60)
{
    struct run r = run("weft-tour-to-thread");
    const char *order[] = {"started main at ", "start blocking_io at ",
                           "blocking_io complete at ", "finished main at "};
    const char *p = r.out;
    for (int i = 0; i < 4; i++) {
        cr_assert(strncmp(p, order[i], strlen(order[i])) == 0,
                  "line %d should start \"%s\":\n%s", i + 1, order[i], r.out);
        p = strchr(p, '\n');
        cr_assert_not_null(p);
        p++;
    }
    cr_assert_eq(*p, 0, "%s", r.out);
    cr_assert_geq(r.seconds, 1.0);
    cr_assert_lt(r.seconds, 1.6, "about 1 s, not 2: %f", r.seconds);
    done(&r);
}

Test(tour, stock_prices_come_back_together, .timeout = 60)
{
    struct run r = run("weft-tour-stock-prices");
    const char *head = "Get stock price of GOOG...\n"
                       "Get stock price of APPL...\n"
                       "300\n"
                       "300\n"
                       "It took ";
    cr_assert(strncmp(r.out, head, strlen(head)) == 0, "%s", r.out);
    double took = strtod(r.out + strlen(head), NULL);
    cr_assert(took == 3.0 || took == 4.0, "%s", r.out);
    cr_assert_not_null(strstr(r.out, " second(s) to complete.\n"), "%s", r.out);
    cr_assert_geq(r.seconds, 3.0);
    cr_assert_lt(r.seconds, 4.5, "about 3 s, not 6: %f", r.seconds);
    done(&r);
}
