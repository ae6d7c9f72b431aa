/* runtime/report.c: how weft tells a person something went wrong: fatal
 * invariant failures, misuse of the API, and warnings. Everything goes to
 * stderr with a "weft:" prefix, in one write so lines from several workers
 * do not interleave. Must never: allocate or take a lock (it may run while
 * the runtime is in a bad state). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime/runtime.h"

static void emit(const char *prefix, const char *fmt, va_list ap)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "weft: %s", prefix);
    if (n < 0)
        return;
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof buf - 2)
        len = sizeof buf - 2;
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}

void weft__panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit("fatal: ", fmt, ap);
    va_end(ap);
    abort();
}

void weft__warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit("", fmt, ap);
    va_end(ap);
}

void weft__misuse(const char *fn, const char *what)
{
    /* Debug builds name the mistake; every build returns the error code,
     * so that tests of bad input run the same in both. */
#if WEFT_DEBUG_LEVEL >= 1
    weft__warn("misuse: %s: %s", fn, what);
#else
    (void)fn;
    (void)what;
#endif
}
