/* io/addr.c: socket addresses as values (weft_addr_t): parsing numeric IP
 * and Unix addresses, formatting them, and reading a socket's own and
 * peer's. Entry points: weft_addr_*. Pure functions of their arguments but
 * for the two getsockname/getpeername wrappers; any thread.
 * Must never: resolve a name (weft_resolve does, on the blocking pool), or
 * change *out when it reports an error. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

WEFT_API int weft_addr_ip(weft_addr_t *out, const char *ip, uint16_t port)
{
    if (!out || !ip)
        return -EINVAL;
    weft_addr_t a;
    memset(&a, 0, sizeof a);
    if (inet_pton(AF_INET, ip, &a.u.in4.sin_addr) == 1) {
        a.u.in4.sin_family = AF_INET;
        a.u.in4.sin_port = htons(port);
        a.len = sizeof a.u.in4;
        *out = a;
        return 0;
    }
    /* IPv6, with an optional %scope (an interface name or index). */
    char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    size_t n = strlen(ip);
    if (n >= sizeof buf)
        return -EINVAL;
    memcpy(buf, ip, n + 1);
    char *scope = strchr(buf, '%');
    uint32_t scope_id = 0;
    if (scope) {
        *scope++ = '\0';
        if (!*scope)
            return -EINVAL;
        char *end;
        unsigned long v = strtoul(scope, &end, 10);
        if (*end == '\0' && v <= UINT32_MAX)
            scope_id = (uint32_t)v;
        else if (!(scope_id = if_nametoindex(scope)))
            return -EINVAL;
    }
    if (inet_pton(AF_INET6, buf, &a.u.in6.sin6_addr) != 1)
        return -EINVAL;
    a.u.in6.sin6_family = AF_INET6;
    a.u.in6.sin6_port = htons(port);
    a.u.in6.sin6_scope_id = scope_id;
    a.len = sizeof a.u.in6;
    *out = a;
    return 0;
}

WEFT_API int weft_addr_unix(weft_addr_t *out, const char *path)
{
    if (!out || !path || !*path)
        return -EINVAL;
    size_t n = strlen(path);
    weft_addr_t a;
    memset(&a, 0, sizeof a);
    a.u.un.sun_family = AF_UNIX;
    if (path[0] == '@') {
        /* Abstract: a leading NUL, then the name, not NUL-terminated. */
        if (n > sizeof a.u.un.sun_path)
            return -ENAMETOOLONG;
        memcpy(a.u.un.sun_path + 1, path + 1, n - 1);
        a.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        if (n >= sizeof a.u.un.sun_path)
            return -ENAMETOOLONG;
        memcpy(a.u.un.sun_path, path, n + 1);
        a.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    *out = a;
    return 0;
}

WEFT_API int weft_addr_from(weft_addr_t *out, const struct sockaddr *sa,
                            socklen_t len)
{
    if (!out || !sa || len < sizeof(sa_family_t))
        return -EINVAL;
    switch (sa->sa_family) {
    case AF_INET:
        if (len != sizeof(struct sockaddr_in))
            return -EINVAL;
        break;
    case AF_INET6:
        if (len != sizeof(struct sockaddr_in6))
            return -EINVAL;
        break;
    case AF_UNIX:
        if (len > sizeof(struct sockaddr_un))
            return -EINVAL;
        break;
    default:
        return -EINVAL;
    }
    weft_addr_t a;
    memset(&a, 0, sizeof a);
    memcpy(&a.u, sa, len);
    a.len = len;
    *out = a;
    return 0;
}

WEFT_API int weft_addr_port(const weft_addr_t *a)
{
    if (!a || !a->len)
        return -EINVAL;
    if (a->u.sa.sa_family == AF_INET)
        return ntohs(a->u.in4.sin_port);
    if (a->u.sa.sa_family == AF_INET6)
        return ntohs(a->u.in6.sin6_port);
    return -EINVAL;
}

WEFT_API int weft_addr_format(const weft_addr_t *a, char *buf, size_t len)
{
    if (!a || !a->len || (!buf && len))
        return -EINVAL;
    char host[INET6_ADDRSTRLEN];
    int n;
    switch (a->u.sa.sa_family) {
    case AF_INET:
        inet_ntop(AF_INET, &a->u.in4.sin_addr, host, sizeof host);
        n = snprintf(buf, len, "%s:%u", host, ntohs(a->u.in4.sin_port));
        break;
    case AF_INET6:
        inet_ntop(AF_INET6, &a->u.in6.sin6_addr, host, sizeof host);
        if (a->u.in6.sin6_scope_id)
            n = snprintf(buf, len, "[%s%%%u]:%u", host,
                         a->u.in6.sin6_scope_id, ntohs(a->u.in6.sin6_port));
        else
            n = snprintf(buf, len, "[%s]:%u", host, ntohs(a->u.in6.sin6_port));
        break;
    case AF_UNIX: {
        size_t plen = a->len > offsetof(struct sockaddr_un, sun_path)
                          ? a->len - offsetof(struct sockaddr_un, sun_path)
                          : 0;
        const char *p = a->u.un.sun_path;
        if (plen == 0) {
            n = snprintf(buf, len, "unix:");
        } else if (p[0] == '\0') {
            n = snprintf(buf, len, "unix:@%.*s", (int)(plen - 1), p + 1);
        } else {
            size_t l = strnlen(p, plen);
            n = snprintf(buf, len, "unix:%.*s", (int)l, p);
        }
        break;
    }
    default:
        return -EINVAL;
    }
    if (n < 0)
        return -EINVAL;
    return (size_t)n >= len ? -ENOSPC : n;
}

static int sockname(int fd, weft_addr_t *out, bool peer)
{
    if (fd < 0)
        return -EBADF;
    if (!out)
        return -EINVAL;
    weft_addr_t a;
    memset(&a, 0, sizeof a);
    a.len = sizeof a.u;
    int r = peer ? getpeername(fd, &a.u.sa, &a.len)
                 : getsockname(fd, &a.u.sa, &a.len);
    if (r < 0)
        return -errno;
    *out = a;
    return 0;
}

WEFT_API int weft_addr_local(int fd, weft_addr_t *out)
{
    return sockname(fd, out, false);
}

WEFT_API int weft_addr_peer(int fd, weft_addr_t *out)
{
    return sockname(fd, out, true);
}
