/* io/resolve.c: name resolution. Entry point: weft_resolve. getaddrinfo
 * blocks (files, DNS), so a fiber runs it on the blocking pool
 * (weft_run_blocking, runtime/blocking.c) while its worker runs others; a
 * numeric host and port are parsed at once without the pool. The call's
 * record lives on the fiber's stack, which is safe: the pool either never
 * runs it (cancelled while queued) or the fiber waits until it returned.
 * Must never: block a worker in getaddrinfo, or leak its result. */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "include/weft/blocking.h"
#include "runtime/runtime.h"

struct lookup {
    const char *host, *service;
    struct addrinfo hints;
    struct addrinfo *res;
    int gai;   /* getaddrinfo's return */
    int errnum; /* errno, for EAI_SYSTEM */
};

static intptr_t run_lookup(void *arg)
{
    struct lookup *l = arg;
    l->gai = getaddrinfo(l->host, l->service, &l->hints, &l->res);
    l->errnum = l->gai == EAI_SYSTEM ? errno : 0;
    return 0;
}

static int gai_errno(const struct lookup *l)
{
    switch (l->gai) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
    case EAI_SERVICE:
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_FAMILY:
    case EAI_SOCKTYPE:
    case EAI_BADFLAGS:
        return -EINVAL;
    case EAI_SYSTEM:
        return l->errnum ? -l->errnum : -EIO;
    default:
        return -EIO;
    }
}

/* A port given as digits, or -1. */
static int numeric_port(const char *service)
{
    if (!service)
        return 0;
    if (!*service)
        return -1;
    long v = 0;
    for (const char *p = service; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
        if (v > 65535)
            return -1;
    }
    return (int)v;
}

WEFT_API int weft_resolve(const char *host, const char *service, int family,
                          int socktype, weft_addr_t *out, size_t max)
{
    if (!host || !*host || !out || !max)
        return -EINVAL;
    if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
        return -EINVAL;
    if (socktype != 0 && socktype != SOCK_STREAM && socktype != SOCK_DGRAM)
        return -EINVAL;

    int port = numeric_port(service);
    weft_addr_t a;
    if (port >= 0 && weft_addr_ip(&a, host, (uint16_t)port) == 0) {
        if (family != AF_UNSPEC && a.u.sa.sa_family != family)
            return -ENOENT;
        out[0] = a;
        return 1;
    }

    struct lookup l;
    memset(&l, 0, sizeof l);
    l.host = host;
    l.service = service;
    l.hints.ai_family = family;
    l.hints.ai_socktype = socktype;
    if (weft_in_fiber()) {
        intptr_t r = weft_run_blocking(run_lookup, &l);
        if (r < 0)
            return (int)r; /* -ECANCELED, -ETIMEDOUT, -EAGAIN: it never ran */
    } else {
        run_lookup(&l);
    }
    if (l.gai)
        return gai_errno(&l);

    size_t n = 0;
    for (struct addrinfo *ai = l.res; ai && n < max; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        if (weft_addr_from(&a, ai->ai_addr, ai->ai_addrlen) < 0)
            continue;
        bool dup = false;
        for (size_t i = 0; i < n && !dup; i++)
            dup = out[i].len == a.len && memcmp(&out[i].u, &a.u, a.len) == 0;
        if (!dup)
            out[n++] = a;
    }
    freeaddrinfo(l.res);
    return n ? (int)n : -ENOENT;
}
