/* tests/support/criterion_tsan/criterion/criterion.h: a stand-in for
 * Criterion's <criterion/criterion.h>, used only by the ThreadSanitizer build
 * (real Criterion aborts at start-up under TSan: Snaipe/Criterion#274). It
 * declares the subset of Criterion's API that weft's suites use; runner.c
 * supplies main(). It must never change what a test means: conditions are
 * evaluated exactly as Criterion writes them, once, in the caller's types.
 * See ../README.md for the subset and the differences. */
#ifndef WEFT_CRITERION_TSAN_H
#define WEFT_CRITERION_TSAN_H

/* What the real header brings in, so that the same sources compile. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- Registration ------------------------------------------------------ */

/* One test, or (fn == NULL) one TestSuite()'s options. The option fields
 * keep Criterion's names so that `.timeout = 30` means the same in both. */
struct weft__crt_test {
    const char *suite;
    const char *name;
    const char *file;
    int line;
    void (*fn)(void);
    void (*init)(void); /* in the child, before the test (after the suite's) */
    void (*fini)(void); /* in the child, after the test (before the suite's) */
    int signal;         /* the test passes only if it dies of this signal */
    int exit_code;      /* ... or only if it exits with this status */
    bool disabled;
    double timeout; /* seconds; 0: none */
    const char *description;
};

/* Entries are pointers, all of one type, so the section has no padding
 * between objects from different files; runner.c walks it between the
 * linker's __start_/__stop_ symbols. */
#define WEFT_CRT_REGISTER_(var)                                                \
    static const struct weft__crt_test *var##_entry                            \
        __attribute__((section("criterion_tsan_tests"), used)) = &var

#define Test(Suite, Name, ...)                                                 \
    static void weft__crt_fn_##Suite##_##Name(void);                           \
    static const struct weft__crt_test weft__crt_t_##Suite##_##Name = {        \
        .suite = #Suite,                                                       \
        .name = #Name,                                                         \
        .file = __FILE__,                                                      \
        .line = __LINE__,                                                      \
        .fn = weft__crt_fn_##Suite##_##Name,                                   \
        __VA_ARGS__};                                                          \
    WEFT_CRT_REGISTER_(weft__crt_t_##Suite##_##Name);                          \
    static void weft__crt_fn_##Suite##_##Name(void)

/* Options given here apply to every test of the suite that does not set
 * its own; .init/.fini run around the test's own, and .disabled disables
 * all. */
#define TestSuite(Suite, ...)                                                  \
    static const struct weft__crt_test weft__crt_s_##Suite = {                 \
        .suite = #Suite, .file = __FILE__, .line = __LINE__, __VA_ARGS__};     \
    WEFT_CRT_REGISTER_(weft__crt_s_##Suite)

/* ---- Reporting (runner.c) ---------------------------------------------- */

/* Record a failure, from any thread of the test: an assert's ends the test
 * there (the child exits), an expect's lets it go on and fail at the end.
 * fmt is " " followed by the caller's optional message: the space makes an
 * absent message a valid, non-empty format, and is skipped when printing;
 * without a message, dflt is printed with s1..s3 as its %s arguments (the
 * stringified expressions travel as arguments, never inside a format, as
 * they may contain '%'). */
void weft__crt_assert_failed(const char *file, int line, const char *dflt,
                             const char *s1, const char *s2, const char *s3,
                             const char *fmt, ...)
    __attribute__((format(printf, 7, 8), noreturn));
void weft__crt_expect_failed(const char *file, int line, const char *dflt,
                             const char *s1, const char *s2, const char *s3,
                             const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* Ends the test as skipped; never returns. */
void weft__crt_skip(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
/* level: 0 info (shown with --verbose), 1 warning, 2 error. */
void weft__crt_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- Assertions -------------------------------------------------------- */

/* fatal is the literal 1 (assert) or 0 (expect). */
#define WEFT_CRT_REPORT_(fatal, ...) WEFT_CRT_REPORT_##fatal##_(__VA_ARGS__)
#define WEFT_CRT_REPORT_1_           weft__crt_assert_failed
#define WEFT_CRT_REPORT_0_           weft__crt_expect_failed

#define WEFT_CRT_CHECK_(fatal, cond, dflt, s1, s2, s3, ...)                    \
    do {                                                                       \
        if (!(cond))                                                           \
            WEFT_CRT_REPORT_(fatal, __FILE__, __LINE__, (dflt), (s1), (s2),    \
                             (s3), " " __VA_ARGS__);                           \
    } while (0)

#define WEFT_CRT_TRUE_(fatal, cond, ...)                                       \
    WEFT_CRT_CHECK_(fatal, cond, "The expression %s is false.", #cond, NULL,   \
                    NULL, __VA_ARGS__)
#define WEFT_CRT_FALSE_(fatal, cond, ...)                                      \
    WEFT_CRT_CHECK_(fatal, !(cond), "The expression !(%s) is false.", #cond,   \
                    NULL, NULL, __VA_ARGS__)
/* Scalars of any type, compared as Criterion does: with the operator itself,
 * so the usual conversions (and warnings) are the same. */
/* (Unformatted: clang-format would glue the operator to its operands.) */
/* clang-format off */
#define WEFT_CRT_OP_(fatal, op, a, b, ...)                                     \
    WEFT_CRT_CHECK_(fatal, (a) op (b), "The expression %s is false.",          \
                    "(" #a ") " #op " (" #b ")", NULL, NULL, __VA_ARGS__)
#define WEFT_CRT_NULL_(fatal, op, what, p, ...)                                \
    WEFT_CRT_CHECK_(fatal, (p) op NULL, "%s " what ".", #p, NULL, NULL,        \
                    __VA_ARGS__)
/* clang-format on */
/* Strings are evaluated once, so the message can show both. */
#define WEFT_CRT_STR_(fatal, op, a, b, ...)                                    \
    do {                                                                       \
        const char *weft__crt_sa = (a), *weft__crt_sb = (b);                   \
        WEFT_CRT_CHECK_(fatal, strcmp(weft__crt_sa, weft__crt_sb) op 0,        \
                        "The expression (as strings) %s is false: "            \
                        "actual=`%s` expected=`%s`.",                          \
                        "(" #a ") " #op " (" #b ")", weft__crt_sa,             \
                        weft__crt_sb, __VA_ARGS__);                            \
    } while (0)
#define WEFT_CRT_ARR_(fatal, a, b, size, ...)                                  \
    WEFT_CRT_CHECK_(fatal, !memcmp((a), (b), (size)),                          \
                    "The expression memcmp(%s, %s, %s) == 0 is false.", #a,    \
                    #b, #size, __VA_ARGS__)
/* |a - b| <= eps, in long double so that each operand is evaluated once. */
#define WEFT_CRT_FLOAT_(fatal, a, b, eps, ...)                                 \
    do {                                                                       \
        long double weft__crt_fa = (a), weft__crt_fb = (b),                    \
                    weft__crt_fe = (eps);                                      \
        WEFT_CRT_CHECK_(fatal,                                                 \
                        weft__crt_fb - weft__crt_fa <= weft__crt_fe &&         \
                            weft__crt_fa - weft__crt_fb <= weft__crt_fe,       \
                        "The expression |(%s) - (%s)| <= (%s) is false.", #a,  \
                        #b, #eps, __VA_ARGS__);                                \
    } while (0)
#define WEFT_CRT_FAIL_(fatal, ...)                                             \
    WEFT_CRT_REPORT_(fatal, __FILE__, __LINE__,                                \
                     "The conditions for this assertion were not met.", NULL,  \
                     NULL, NULL, " " __VA_ARGS__)

/* cr_assert*: a failure ends the test. */
#define cr_assert(cond, ...)     WEFT_CRT_TRUE_(1, cond, __VA_ARGS__)
#define cr_assert_not(cond, ...) WEFT_CRT_FALSE_(1, cond, __VA_ARGS__)
#define cr_assert_eq(a, b, ...)  WEFT_CRT_OP_(1, ==, a, b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) WEFT_CRT_OP_(1, !=, a, b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...)  WEFT_CRT_OP_(1, <, a, b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) WEFT_CRT_OP_(1, <=, a, b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...)  WEFT_CRT_OP_(1, >, a, b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) WEFT_CRT_OP_(1, >=, a, b, __VA_ARGS__)
#define cr_assert_null(p, ...)                                                 \
    WEFT_CRT_NULL_(1, ==, "is not null", p, __VA_ARGS__)
#define cr_assert_not_null(p, ...)                                             \
    WEFT_CRT_NULL_(1, !=, "is null", p, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)  WEFT_CRT_STR_(1, ==, a, b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) WEFT_CRT_STR_(1, !=, a, b, __VA_ARGS__)
#define cr_assert_arr_eq(a, b, size, ...)                                      \
    WEFT_CRT_ARR_(1, a, b, size, __VA_ARGS__)
#define cr_assert_float_eq(a, b, eps, ...)                                     \
    WEFT_CRT_FLOAT_(1, a, b, eps, __VA_ARGS__)
#define cr_assert_fail(...) WEFT_CRT_FAIL_(1, __VA_ARGS__)

/* cr_expect*: a failure is recorded and the test goes on. */
#define cr_expect(cond, ...)     WEFT_CRT_TRUE_(0, cond, __VA_ARGS__)
#define cr_expect_not(cond, ...) WEFT_CRT_FALSE_(0, cond, __VA_ARGS__)
#define cr_expect_eq(a, b, ...)  WEFT_CRT_OP_(0, ==, a, b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...) WEFT_CRT_OP_(0, !=, a, b, __VA_ARGS__)
#define cr_expect_lt(a, b, ...)  WEFT_CRT_OP_(0, <, a, b, __VA_ARGS__)
#define cr_expect_leq(a, b, ...) WEFT_CRT_OP_(0, <=, a, b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...)  WEFT_CRT_OP_(0, >, a, b, __VA_ARGS__)
#define cr_expect_geq(a, b, ...) WEFT_CRT_OP_(0, >=, a, b, __VA_ARGS__)
#define cr_expect_null(p, ...)                                                 \
    WEFT_CRT_NULL_(0, ==, "is not null", p, __VA_ARGS__)
#define cr_expect_not_null(p, ...)                                             \
    WEFT_CRT_NULL_(0, !=, "is null", p, __VA_ARGS__)
#define cr_expect_str_eq(a, b, ...)  WEFT_CRT_STR_(0, ==, a, b, __VA_ARGS__)
#define cr_expect_str_neq(a, b, ...) WEFT_CRT_STR_(0, !=, a, b, __VA_ARGS__)
#define cr_expect_arr_eq(a, b, size, ...)                                      \
    WEFT_CRT_ARR_(0, a, b, size, __VA_ARGS__)
#define cr_expect_float_eq(a, b, eps, ...)                                     \
    WEFT_CRT_FLOAT_(0, a, b, eps, __VA_ARGS__)
#define cr_expect_fail(...) WEFT_CRT_FAIL_(0, __VA_ARGS__)

#define cr_skip_test(...) weft__crt_skip(__FILE__, __LINE__, " " __VA_ARGS__)

#define cr_log_info(...)  weft__crt_log(0, __VA_ARGS__)
#define cr_log_warn(...)  weft__crt_log(1, __VA_ARGS__)
#define cr_log_error(...) weft__crt_log(2, __VA_ARGS__)

#endif
