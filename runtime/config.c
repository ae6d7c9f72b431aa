/* runtime/config.c: turning a weft_config_t and the environment into the
 * configuration a runtime starts with. Entry point: weft__config_resolve.
 * Must never: start anything, or accept a value it cannot honour. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

#define RING_DEFAULT 256u
#define RING_MIN 8u
#define RING_MAX 32768u
#define WATCHDOG_DEFAULT_NS (100ull * 1000 * 1000)

WEFT_API void weft_config_init(weft_config_t *cfg)
{
    if (cfg)
        memset(cfg, 0, sizeof *cfg);
}

static int fail(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Parse an unsigned decimal environment variable. 1: found, 0: unset,
 * -EINVAL: malformed. */
static int env_u64(const char *name, uint64_t *out)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || s[0] == '-')
        return -EINVAL;
    *out = v;
    return 1;
}

int weft__config_resolve(const weft_config_t *cfg, unsigned ncores,
                         weft_config_t *out, char *why, size_t whylen)
{
    weft_config_t c;
    if (cfg)
        c = *cfg;
    else
        weft_config_init(&c);

    for (size_t i = 0; i < sizeof c.reserved_ / sizeof c.reserved_[0]; i++)
        if (c.reserved_[i])
            return fail(why, whylen, "reserved configuration fields must be "
                                     "zero (initialise with weft_config_init)");

    uint64_t v;
    int r = env_u64("WEFT_WORKERS", &v);
    if (r < 0)
        return fail(why, whylen, "WEFT_WORKERS=%s is not a number",
                    getenv("WEFT_WORKERS"));
    if (r > 0) {
        if (v == 0 || v > WEFT_MAX_WORKERS)
            return fail(why, whylen, "WEFT_WORKERS=%" PRIu64
                        " is out of range (1..%u)", v, WEFT_MAX_WORKERS);
        c.workers = (unsigned)v;
    }
    if (c.workers == 0)
        c.workers = ncores ? ncores : 1;
    if (c.workers > WEFT_MAX_WORKERS)
        return fail(why, whylen, "%u workers is out of range (1..%u)",
                    c.workers, WEFT_MAX_WORKERS);

    r = env_u64("WEFT_PIN", &v);
    if (r < 0 || (r > 0 && v > 1))
        return fail(why, whylen, "WEFT_PIN must be 0 or 1");
    if (r > 0)
        c.pin = v ? WEFT_PIN_DEFAULT : WEFT_PIN_OFF;
    if (c.pin != WEFT_PIN_DEFAULT && c.pin != WEFT_PIN_OFF)
        return fail(why, whylen, "pin must be WEFT_PIN_DEFAULT or WEFT_PIN_OFF");

    if (c.stack_size == 0)
        c.stack_size = WEFT_STACK_DEFAULT;
    if (c.stack_size < WEFT_STACK_MIN || c.stack_size > WEFT_STACK_MAX)
        return fail(why, whylen,
                    "stack size %zu is out of range (%zu..%zu bytes)",
                    c.stack_size, WEFT_STACK_MIN, WEFT_STACK_MAX);

    if (c.ring_entries == 0)
        c.ring_entries = RING_DEFAULT;
    if (c.ring_entries < RING_MIN || c.ring_entries > RING_MAX ||
        (c.ring_entries & (c.ring_entries - 1)))
        return fail(why, whylen,
                    "ring_entries %u must be a power of two in %u..%u",
                    c.ring_entries, RING_MIN, RING_MAX);

    r = env_u64("WEFT_SHUFFLE", &v);
    if (r < 0)
        return fail(why, whylen, "WEFT_SHUFFLE must be a number (a seed)");
    if (r > 0)
        c.shuffle_seed = v;

    if (c.watchdog_ns == 0)
        c.watchdog_ns = WATCHDOG_DEFAULT_NS;

    *out = c;
    return 0;
}
