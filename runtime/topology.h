/* runtime/topology.h: where workers run and whom they steal from, decided
 * from the machine's topology as hwloc sees it (or from a synthetic or XML
 * topology, so tests can model a 2-socket, 64-core machine on any box).
 *
 * Contract: topology.c is the only file that includes <hwloc.h>; no hwloc
 * type crosses this header. Loading and querying may allocate; none of these
 * calls is on a hot path (they run at start-up). */
#ifndef WEFT_RUNTIME_TOPOLOGY_H
#define WEFT_RUNTIME_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>

struct weft__topology;

/* Distance classes between two workers, nearest first. */
enum weft__distance {
    WEFT_DIST_SAME_CORE = 0,  /* two workers on one core (oversubscribed) */
    WEFT_DIST_SAME_CACHE = 1, /* share an L2 or L3 cache */
    WEFT_DIST_SAME_NUMA = 2,  /* same NUMA node, no shared cache */
    WEFT_DIST_SAME_PACKAGE = 3,
    WEFT_DIST_REMOTE = 4,
    WEFT_DIST_CLASSES = 5
};

/* Load a topology. spec NULL: this machine (only the cores this process may
 * run on). spec starting with '/' or '.': an hwloc XML file. Otherwise an
 * hwloc synthetic description such as "pack:2 l3:1 core:16 pu:2".
 * Returns 0 or -EINVAL (malformed spec), -ENOENT (no such file), -ENOMEM. */
int weft__topology_load(const char *spec, struct weft__topology **out);
void weft__topology_free(struct weft__topology *t);

/* True if the topology is this machine's, so threads can be pinned to it. */
bool weft__topology_is_real(const struct weft__topology *t);

/* The number of cores (hwloc's HWLOC_OBJ_CORE; PUs if cores are unknown). */
unsigned weft__topology_cores(const struct weft__topology *t);

/* The core that worker i of n runs on: workers are spread over cores in
 * order, round robin when n exceeds the number of cores. */
unsigned weft__topology_core_of(const struct weft__topology *t, unsigned n,
                                unsigned worker);

/* How far apart workers a and b (of n) are. */
enum weft__distance weft__topology_distance(const struct weft__topology *t,
                                            unsigned n, unsigned a,
                                            unsigned b);

/* The other n-1 workers of worker `self`, nearest first: order[] receives
 * them sorted by distance (ties by index), class_end[d] the index in order[]
 * one past the last worker of distance class d (so class d is
 * order[class_end[d-1] .. class_end[d]), with class_end[-1] taken as 0).
 * order must hold n-1 entries, class_end WEFT_DIST_CLASSES. */
void weft__topology_victims(const struct weft__topology *t, unsigned n,
                            unsigned self, unsigned *order,
                            unsigned *class_end);

/* Pin the calling thread to the core of worker i of n. Returns 0, -ENOTSUP
 * for a topology that is not this machine's, or -errno from the kernel. */
int weft__topology_pin_self(const struct weft__topology *t, unsigned n,
                            unsigned worker);

/* A one-line description for logs: "1 package, 2 cores, 2 PUs, 1 NUMA". */
void weft__topology_describe(const struct weft__topology *t, char *buf,
                             size_t len);

#endif /* WEFT_RUNTIME_TOPOLOGY_H */
