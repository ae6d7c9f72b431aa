/* tests/support/criterion_tsan/selftest.c: the stand-in Criterion checked
 * against itself. Built plainly, it is the suite: every macro and option on
 * its passing path, and (suite "runner") checks of the verdicts the runner
 * prints for a second binary, <this binary>_failing, which is this file
 * built with -DCRT_SELFTEST_FAILING and holds only tests that must fail or
 * skip. Both builds must be made with the same sanitizer flags. It must
 * never depend on weft: it tests the harness alone. */
#include <criterion/criterion.h>

#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN 1
#endif
#endif
#ifndef TSAN
#define TSAN 0
#endif

#ifndef CRT_SELFTEST_FAILING

/* ---- Assertions on their passing path ---------------------------------- */

enum colour { RED, GREEN };

static int calls;
static const char *counted(const char *s)
{
    calls++;
    return s;
}

Test(assert, comparisons_work_on_any_scalar_type)
{
    unsigned u = 3;
    size_t z = 4;
    char c = 'x';
    double d = 0.5;
    enum colour e = GREEN;
    int arr[2];
    cr_assert(u == 3);
    cr_assert(u % 2 == 1, "u is %u", u);
    cr_assert_not(z == 5);
    cr_assert_eq(u, 3);
    cr_assert_eq(c, 'x', "a %s", "message");
    cr_assert_eq(e, GREEN);
    cr_assert_neq(d, 0.25);
    cr_assert_lt(&arr[0], &arr[1]);
    cr_assert_leq(z, 4);
    cr_assert_gt(z, u);
    cr_assert_geq(u, 3u, "%zu %u", z, u);
    cr_assert_eq(true, u > 2);
}

Test(assert, each_operand_is_evaluated_once)
{
    int n = 0;
    cr_assert_eq(++n, 1);
    cr_assert_neq(n++, 0);
    cr_assert_str_eq(counted("a"), counted("a"));
    cr_assert_float_eq(n++, 2.0, 0.0);
    cr_assert_eq(n, 3);
    cr_assert_eq(calls, 2);
}

Test(assert, pointers_strings_arrays_and_floats)
{
    int x = 0;
    char buf[8] = "abc";
    struct pair {
        int a, b;
    } p[2] = {{1, 2}, {3, 4}}, q[2] = {{1, 2}, {3, 4}};
    cr_assert_null(NULL);
    cr_assert_not_null(&x, "x at %p", (void *)&x);
    cr_assert_str_eq(buf, "abc");
    cr_assert_str_neq(buf, "abd");
    cr_assert_arr_eq(p, q, sizeof p);
    cr_assert_float_eq(0.1 + 0.2, 0.3, 1e-12);
    cr_assert_float_eq(1, 1.0f, 0);
    if (x)
        cr_assert_fail("not taken: %d", x);
}

Test(expect, passing_expectations_record_nothing)
{
    int arr[1] = {7}, same[1] = {7};
    cr_expect(1);
    cr_expect_not(0, "zero");
    cr_expect_eq(2, 2);
    cr_expect_neq(2, 3);
    cr_expect_lt(2, 3);
    cr_expect_leq(3, 3);
    cr_expect_gt(4, 3);
    cr_expect_geq(4, 4);
    cr_expect_null(NULL);
    cr_expect_not_null(arr);
    cr_expect_str_eq("a", "a");
    cr_expect_str_neq("a", "b");
    cr_expect_arr_eq(arr, same, sizeof arr);
    cr_expect_float_eq(1.0, 1.0 + 1e-9, 1e-6);
    if (!arr[0])
        cr_expect_fail();
}

/* ---- Options ----------------------------------------------------------- */

static int order[8];
static int steps;

static void mark(int what)
{
    order[steps++] = what;
}
static void suite_init(void)
{
    mark(1);
}
static void test_init(void)
{
    mark(2);
}
static void test_fini(void)
{
    mark(3);
    cr_assert_eq(steps, 4, "the test body ran before fini");
}
static void suite_fini(void)
{
    mark(4);
    cr_assert_eq(order[3], 3, "the test's fini runs before the suite's");
}

TestSuite(fixtures, .init = suite_init, .fini = suite_fini, .timeout = 30);

Test(fixtures, suite_init_then_test_init_then_fini, .init = test_init,
     .fini = test_fini, .description = "fixture order")
{
    cr_assert_eq(steps, 2);
    cr_assert_eq(order[0], 1, "suite init first");
    cr_assert_eq(order[1], 2, "then the test's");
    mark(9);
}

Test(options, expected_signal_passes, .signal = SIGABRT)
{
    abort();
}

Test(options, expected_exit_code_passes, .exit_code = 3)
{
    exit(3);
}

Test(options, a_test_within_its_timeout_passes, .timeout = 10)
{
    usleep(1000);
    cr_assert(1);
}

/* ---- Threads and processes inside a test ------------------------------- */

static atomic_int checked;

static void *checker(void *arg)
{
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(i % 3 < 3, true);
        cr_expect_geq(i, 0);
        atomic_fetch_add_explicit(&checked, 1, memory_order_relaxed);
    }
    return arg;
}

Test(threads, assertions_from_many_threads, .timeout = 30)
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, checker, NULL), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_join(th[i], NULL), 0);
    cr_assert_eq(atomic_load(&checked), 4000);
}

Test(threads, a_test_may_fork_and_wait, .timeout = 30)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0)
        _exit(7);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 7);
}

/* ---- The runner's verdicts, on the failing binary ---------------------- */

static char out[256 * 1024];

/* Run <this binary>_failing with up to two arguments; its stdout and stderr
 * land in out. Returns its exit status. */
static int run_failing(const char *arg1, const char *arg2)
{
    char bin[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", bin, sizeof bin - 16);
    cr_assert_gt(n, 0);
    strcpy(bin + n, "_failing");
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        execl(bin, bin, arg1, arg2, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    /* Past the buffer, keep reading into spill: a blocked writer would
     * never exit. */
    size_t len = 0;
    char spill[4096];
    for (;;) {
        bool full = len == sizeof out - 1;
        n = read(p[0], full ? spill : out + len,
                 full ? sizeof spill : sizeof out - 1 - len);
        if (n <= 0)
            break;
        len += full ? 0 : (size_t)n;
    }
    out[len] = 0;
    close(p[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "%s did not exit: status %#x", bin, status);
    return WEXITSTATUS(status);
}

/* Does some line of out match the fnmatch pattern? */
static bool has_line(const char *pattern)
{
    char line[2048];
    for (const char *at = out; *at;) {
        size_t len = strcspn(at, "\n");
        snprintf(line, sizeof line, "%.*s", (int)len, at);
        if (fnmatch(pattern, line, 0) == 0)
            return true;
        at += len + (at[len] == '\n');
    }
    return false;
}

#define F(name, msg) "\\[FAIL] fails::" #name ": *selftest.c:*: " msg
static const char *const expected[] = {
    F(assert_eq_ends_the_test, "The expression (one) == (two) is false."),
    F(a_message_replaces_the_default, "custom 42%"),
    F(percent_in_an_expression_is_printed_as_is,
      "The expression x % 2 == 0 is false."),
    F(expect_records_and_goes_on, "first"),
    F(expect_records_and_goes_on, "second"),
    "\\[WARN] still running after two failed expects",
    F(assert_not_ends_the_test, "The expression !(1) is false."),
    F(every_expect_kind_reports, "The expression (1) != (1) is false."),
    F(every_expect_kind_reports, "The expression (2) < (1) is false."),
    F(every_expect_kind_reports, "The expression (2) <= (1) is false."),
    F(every_expect_kind_reports, "The expression (1) > (2) is false."),
    F(every_expect_kind_reports, "The expression (1) >= (2) is false."),
    F(every_expect_kind_reports, "&x is not null."),
    F(every_expect_kind_reports,
      "(*0) is null."), /* NULL, as the compiler spells it */
    F(every_expect_kind_reports,
      "The expression (as strings) (\"ab\") == "
      "(\"ac\") is false: actual=`ab` expected=`ac`."),
    F(every_expect_kind_reports,
      "The expression (as strings) (\"ab\") != "
      "(\"ab\") is false: actual=`ab` expected=`ab`."),
    F(every_expect_kind_reports,
      "The expression memcmp(a, b, sizeof a) == 0 is false."),
    F(every_expect_kind_reports,
      "The expression |(1.0) - (1.5)| <= (0.1) is false."),
    F(every_expect_kind_reports,
      "The conditions for this assertion were not met."),
    "\\[SKIP] fails::skip_says_why: *selftest.c:*: no io_uring here",
    "\\[SKIP] fails::skip_wins_over_an_expected_signal: *selftest.c:*: skipped",
    F(a_missing_signal_fails, "exited with status 0; expected signal 6 *"),
    F(the_wrong_signal_is_a_crash,
      "crashed: signal 15 (*), not the signal expected"),
    F(a_crash_is_reported, "crashed: signal 15 (*)"),
    F(the_wrong_exit_code_fails, "exited with status 2, expected 3"),
    F(a_hung_test_times_out, "timed out after 0.3 s"),
    "\\[FAIL] slow::a_suite_timeout_applies: *: timed out after 0.3 s",
    F(fini_runs_after_a_failed_assert, "stop"),
    "\\[WARN] fini ran",
    F(an_assert_in_another_thread_ends_the_test, "from a thread"),
    F(an_expect_that_cannot_be_reported_still_fails,
      "exited with status 1, expected 0"),
    F(thousands_of_failed_expects_are_capped, "expect 0"),
    ("\\[FAIL] fails::thousands_of_failed_expects_are_capped: "
     "(more failures, not kept)"),
#if TSAN
    F(a_data_race_fails_under_tsan, "exited with status 66, expected 0 (66: *"),
#endif
};

Test(runner, the_failing_binary_reports_each_failure, .timeout = 120)
{
    cr_assert_eq(run_failing(NULL, NULL), 1, "exit status\n%s", out);
    for (size_t i = 0; i < sizeof expected / sizeof *expected; i++)
        cr_expect(has_line(expected[i]), "no line matches '%s'", expected[i]);
    cr_expect_null(strstr(out, "not reached"), "%s", out);
    cr_expect_null(strstr(out, "hidden"), "cr_log_info without --verbose");
    cr_expect(has_line("\\[====] Synthesis: Tested: * | Passing: 0 | "
                       "Failing: * | Crashing: 2"));
    /* 17 tests fail (18 with the race); 3 are skipped, one as disabled. */
    cr_expect(has_line(TSAN ? "0 passed, 18 failed, 3 skipped"
                            : "0 passed, 17 failed, 3 skipped"),
              "%s", out);
    /* The line holds the assert's own line. */
    const char *at = strstr(out, "[FAIL] fails::the_line_is_the_asserts: ");
    int file_line = 0, own_line = -1;
    cr_assert_not_null(at);
    cr_assert_eq(
        sscanf(at, "[FAIL] %*s %*[^:]:%d: line %d", &file_line, &own_line), 2,
        "%.200s", at);
    cr_assert_eq(file_line, own_line);
}

Test(runner, filter_list_and_options, .timeout = 60)
{
    cr_assert_eq(run_failing("--filter=fails/a_*", "--always-succeed"), 0);
    cr_assert(has_line(TSAN ? "\\[====] Synthesis: Tested: 5 | Passing: 0 | "
                              "Failing: 5 | Crashing: 1"
                            : "\\[====] Synthesis: Tested: 4 | Passing: 0 | "
                              "Failing: 4 | Crashing: 1"),
              "%s", out);
    cr_assert_eq(run_failing("--jobs", "1"), 1);
    cr_assert_eq(run_failing("-l", NULL), 0);
    cr_assert(has_line(TSAN ? "fails: 20 tests" : "fails: 19 tests"), "%s",
              out);
    cr_assert(has_line("|-- disabled_tests_are_skipped (skipped)"), "%s", out);
    cr_assert(has_line("slow: 1 test"), "%s", out);
    cr_assert_eq(run_failing("--no-such-option", NULL), 2);
    cr_assert_eq(run_failing("--filter=nothing", NULL), 0);
    cr_assert(has_line("0 passed, 0 failed"), "%s", out);
}

#else /* CRT_SELFTEST_FAILING: every test here must fail or be skipped */

static int one = 1, two = 2;

Test(fails, assert_eq_ends_the_test)
{
    cr_assert_eq(one, two);
    cr_log_error("not reached");
}

Test(fails, a_message_replaces_the_default)
{
    cr_assert_eq(1, 2, "custom %d%%", 42);
}

Test(fails, percent_in_an_expression_is_printed_as_is)
{
    int x = 3;
    cr_assert(x % 2 == 0);
}

Test(fails, the_line_is_the_asserts)
{
    cr_assert_fail("line %d", __LINE__);
}

Test(fails, expect_records_and_goes_on)
{
    cr_expect_eq(1, 2, "first");
    cr_expect(false, "second");
    cr_log_info("hidden");
    cr_log_warn("still running after two failed expects");
}

Test(fails, assert_not_ends_the_test)
{
    cr_assert_not(1);
    cr_log_error("not reached");
}

Test(fails, every_expect_kind_reports)
{
    int x = 0, a[2] = {1, 2}, b[2] = {1, 3};
    cr_expect_neq(1, 1);
    cr_expect_lt(2, 1);
    cr_expect_leq(2, 1);
    cr_expect_gt(1, 2);
    cr_expect_geq(1, 2);
    cr_expect_null(&x);
    cr_expect_not_null(NULL);
    cr_expect_str_eq("ab", "ac");
    cr_expect_str_neq("ab", "ab");
    cr_expect_arr_eq(a, b, sizeof a);
    cr_expect_float_eq(1.0, 1.5, 0.1);
    cr_expect_fail();
}

Test(fails, skip_says_why)
{
    cr_skip_test("no %s here", "io_uring");
}

Test(fails, skip_wins_over_an_expected_signal, .signal = SIGSEGV)
{
    cr_skip_test();
}

Test(fails, disabled_tests_are_skipped, .disabled = true)
{
    cr_log_error("not reached");
}

Test(fails, a_missing_signal_fails, .signal = SIGABRT) {}

/* SIGTERM, not SIGSEGV: sanitizers turn a SEGV into a report and an exit. */
Test(fails, the_wrong_signal_is_a_crash, .signal = SIGABRT)
{
    raise(SIGTERM);
}

Test(fails, a_crash_is_reported)
{
    raise(SIGTERM);
}

Test(fails, the_wrong_exit_code_fails, .exit_code = 3)
{
    exit(2);
}

Test(fails, a_hung_test_times_out, .timeout = 0.3)
{
    for (;;)
        pause();
}

TestSuite(slow, .timeout = 0.3);

Test(slow, a_suite_timeout_applies)
{
    for (;;)
        pause();
}

static void fini_warns(void)
{
    cr_log_warn("fini ran");
}

Test(fails, fini_runs_after_a_failed_assert, .fini = fini_warns)
{
    cr_assert_fail("stop");
}

static void *failing_thread(void *arg)
{
    cr_assert_fail("from a thread");
    return arg;
}

Test(fails, an_assert_in_another_thread_ends_the_test, .timeout = 30)
{
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, failing_thread, NULL), 0);
    pthread_join(th, NULL);
    cr_log_error("not reached");
}

Test(fails, an_expect_that_cannot_be_reported_still_fails)
{
    closefrom(3); /* the runner's pipe among them */
    cr_expect_fail("into the void");
    cr_log_error("not reached");
}

Test(fails, thousands_of_failed_expects_are_capped, .timeout = 60)
{
    for (int i = 0; i < 5000; i++)
        cr_expect_fail("expect %d", i);
}

#if TSAN
static int racy;

static void *race(void *arg)
{
    for (int i = 0; i < 10000; i++)
        racy++;
    return arg;
}

Test(fails, a_data_race_fails_under_tsan, .timeout = 60)
{
    pthread_t a, b;
    cr_assert_eq(pthread_create(&a, NULL, race, NULL), 0);
    cr_assert_eq(pthread_create(&b, NULL, race, NULL), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
}
#endif

#endif
