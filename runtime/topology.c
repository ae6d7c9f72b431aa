/* runtime/topology.c: the machine as hwloc sees it, reduced to what the
 * scheduler asks at start-up: how many cores, which core each worker runs
 * on, how far apart two workers are, and whom each should steal from first.
 * Entry point: weft__topology_load(). This is the only file that includes
 * <hwloc.h>; it must never let an hwloc type or errno escape, and it must
 * never walk hwloc's tree per query (everything a query needs is computed
 * once, at load). After load a topology is read-only, so any number of
 * threads may query it and pin themselves at once (hwloc allows concurrent
 * reads of one instance); load and free must not overlap other calls. */
#include "runtime/topology.h"

#include <errno.h>
#include <fcntl.h>
#include <hwloc.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef WEFT_DEBUG_LEVEL
#define WEFT_DEBUG_LEVEL 0
#endif

/* One schedulable unit: a core, or a PU when the topology has no cores.
 * The three pointers name the hwloc objects that decide distance classes;
 * two units are compared by pointer equality alone, so a distance query
 * costs a few loads and never touches hwloc. */
struct unit {
    hwloc_obj_t obj; /* the core (or PU) itself; its cpuset is what we pin */
    /* The outermost L1..L3 cache above the unit, NULL if none. Caches nest,
     * so two units share some L1..L3 cache exactly when these are equal. */
    hwloc_obj_t cache;
    /* The nearest ancestor with NUMA memory attached: the unit's local
     * memory. The root when no ancestor has any (a memory-less package in
     * an XML file), so never NULL. */
    hwloc_obj_t numa_home;
    /* The enclosing package, or the root when hwloc reports none (then the
     * whole machine is taken as one package). */
    hwloc_obj_t package;
};

struct weft__topology {
    hwloc_topology_t topo;
    struct unit *units; /* in hwloc's logical order: package 0 first */
    unsigned nunits;
    bool real;        /* this machine's: pinning is meaningful */
    bool pus_as_core; /* no HWLOC_OBJ_CORE in the topology: units are PUs */
};

/* A programming error by the caller (a worker index out of range): say so
 * and stop in debug builds; release builds fall back to a defined result
 * documented at each call site. */
static void misuse(const char *fn, unsigned n, unsigned worker)
{
#if WEFT_DEBUG_LEVEL >= 1
    fprintf(stderr, "weft: %s: worker %u of %u is out of range\n", fn, worker,
            n);
    abort();
#else
    (void)fn;
    (void)n;
    (void)worker;
#endif
}

/* hwloc reports failure as -1 with errno set; our callers want -errno. The
 * fallback covers a library path that forgot to set errno. */
static int neg_errno(int fallback)
{
    int e = errno;
    return e > 0 ? -e : fallback;
}

/* Checks that the XML file can be read, so that a missing file is -ENOENT
 * (hwloc's own report for it is documented only as EINVAL). */
static int check_xml_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = -errno;
    else if (S_ISDIR(st.st_mode))
        rc = -EISDIR;
    close(fd);
    return rc;
}

/* Restricts a real topology to the PUs the calling thread may run on. hwloc
 * already drops what the cgroup forbids, but not what sched_setaffinity
 * (taskset, numactl --physcpubind) forbids; the worker threads inherit the
 * calling thread's mask, so that mask is what "may run on" means here. */
static int restrict_to_binding(hwloc_topology_t topo)
{
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (set == NULL)
        return -ENOMEM;
    int rc = 0;
    if (hwloc_get_cpubind(topo, set, HWLOC_CPUBIND_THREAD) != 0)
        goto out; /* binding unsupported here: nothing to restrict to */
    hwloc_const_cpuset_t all = hwloc_topology_get_topology_cpuset(topo);
    /* An empty intersection cannot happen for a running thread; restrict
     * would reject it with EINVAL, so keep the topology whole instead. */
    if (hwloc_bitmap_isincluded(all, set) || !hwloc_bitmap_intersects(all, set))
        goto out;
    /* REMOVE_CPULESS: a package whose PUs are all excluded but which holds
     * a NUMA node would otherwise stay, and describe() would count it. */
    if (hwloc_topology_restrict(topo, set, HWLOC_RESTRICT_FLAG_REMOVE_CPULESS))
        rc = neg_errno(-ENOMEM);
out:
    hwloc_bitmap_free(set);
    return rc;
}

static hwloc_obj_t outermost_shared_cache(hwloc_obj_t obj)
{
    hwloc_obj_t found = NULL;
    for (hwloc_obj_t p = obj->parent; p != NULL; p = p->parent) {
        /* L4 and beyond are left out on purpose: the distance classes
         * promise L1..L3, and an L4 (eDRAM, memory-side) spans a package
         * and says nothing that SAME_NUMA does not. */
        if (hwloc_obj_type_is_cache(p->type) && p->attr->cache.depth <= 3)
            found = p;
    }
    return found;
}

/* The nearest ancestor (or the object itself) with NUMA memory attached.
 * Comparing these, rather than intersecting nodesets, matters on machines
 * with CPU-less memory (CXL, NVDIMM) attached high in the tree: such a node
 * is in the nodeset of every core below it, so cores of two NUMA groups
 * (SNC, NPS2) would look alike although their local memories differ. */
static hwloc_obj_t numa_home(hwloc_topology_t topo, hwloc_obj_t obj)
{
    for (hwloc_obj_t p = obj; p != NULL; p = p->parent)
        if (p->memory_arity > 0)
            return p;
    return hwloc_get_root_obj(topo);
}

static hwloc_obj_t package_of(hwloc_topology_t topo, hwloc_obj_t obj)
{
    hwloc_obj_t p =
        hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, obj);
    return p != NULL ? p : hwloc_get_root_obj(topo);
}

static int build_units(struct weft__topology *t)
{
    hwloc_obj_type_t type = HWLOC_OBJ_CORE;
    int nb = hwloc_get_nbobjs_by_type(t->topo, type);
    if (nb <= 0) {
        type = HWLOC_OBJ_PU;
        nb = hwloc_get_nbobjs_by_type(t->topo, type);
        t->pus_as_core = true;
    }
    if (nb <= 0)
        return -EINVAL; /* a topology without a single PU is unusable */
    t->units = calloc((size_t)nb, sizeof(*t->units));
    if (t->units == NULL)
        return -ENOMEM;
    t->nunits = (unsigned)nb;
    for (unsigned i = 0; i < t->nunits; i++) {
        hwloc_obj_t o = hwloc_get_obj_by_type(t->topo, type, i);
        t->units[i].obj = o;
        t->units[i].cache = outermost_shared_cache(o);
        t->units[i].numa_home = numa_home(t->topo, o);
        t->units[i].package = package_of(t->topo, o);
    }
    return 0;
}

static int configure(hwloc_topology_t topo, const char *spec)
{
    if (spec == NULL)
        return 0;
    if (spec[0] == '/' || spec[0] == '.') {
        int rc = check_xml_file(spec);
        if (rc != 0)
            return rc;
        if (hwloc_topology_set_xml(topo, spec) != 0)
            return errno == ENOMEM ? -ENOMEM : -EINVAL;
        return 0;
    }
    if (hwloc_topology_set_synthetic(topo, spec) != 0)
        return errno == ENOMEM ? -ENOMEM : -EINVAL;
    return 0;
}

int weft__topology_load(const char *spec, struct weft__topology **out)
{
    if (out == NULL)
        return -EINVAL;
    struct weft__topology *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    int rc;
    if (hwloc_topology_init(&t->topo) != 0) {
        rc = neg_errno(-ENOMEM);
        free(t);
        return rc;
    }
    rc = configure(t->topo, spec);
    if (rc != 0)
        goto fail;
    if (hwloc_topology_load(t->topo) != 0) {
        /* For XML this is a file hwloc could open but not parse. */
        rc = errno == ENOMEM ? -ENOMEM
             : spec != NULL  ? -EINVAL
                             : neg_errno(-EIO);
        goto fail;
    }
    /* hwloc_topology_is_thissystem, not spec == NULL: HWLOC_XMLFILE or
     * HWLOC_SYNTHETIC in the environment replace the real machine even
     * when no spec is given, and HWLOC_THISSYSTEM=1 vouches for an XML. */
    t->real = hwloc_topology_is_thissystem(t->topo);
    if (t->real) {
        rc = restrict_to_binding(t->topo);
        if (rc != 0)
            goto fail;
    }
    rc = build_units(t);
    if (rc != 0)
        goto fail;
    *out = t;
    return 0;
fail:
    hwloc_topology_destroy(t->topo);
    free(t->units);
    free(t);
    return rc;
}

void weft__topology_free(struct weft__topology *t)
{
    if (t == NULL)
        return;
    hwloc_topology_destroy(t->topo);
    free(t->units);
    free(t);
}

bool weft__topology_is_real(const struct weft__topology *t)
{
    return t->real;
}

unsigned weft__topology_cores(const struct weft__topology *t)
{
    return t->nunits;
}

/* Out of range (debug builds stop in misuse()): the worker index is still
 * reduced modulo the cores, so the result is a valid core. */
unsigned weft__topology_core_of(const struct weft__topology *t, unsigned n,
                                unsigned worker)
{
    if (worker >= n)
        misuse("weft__topology_core_of", n, worker);
    return worker % t->nunits;
}

static enum weft__distance unit_distance(const struct weft__topology *t,
                                         unsigned ua, unsigned ub)
{
    const struct unit *a = &t->units[ua], *b = &t->units[ub];
    if (ua == ub)
        return WEFT_DIST_SAME_CORE;
    if (a->cache != NULL && a->cache == b->cache)
        return WEFT_DIST_SAME_CACHE;
    /* SAME_NUMA also requires the same package so that the classes nest:
     * where one NUMA node spans packages (AMD NPS0, VMs that hide NUMA), a
     * worker in the other package is still farther than one in ours. */
    if (a->package != b->package)
        return WEFT_DIST_REMOTE;
    if (a->numa_home == b->numa_home)
        return WEFT_DIST_SAME_NUMA;
    return WEFT_DIST_SAME_PACKAGE;
}

enum weft__distance weft__topology_distance(const struct weft__topology *t,
                                            unsigned n, unsigned a, unsigned b)
{
    if (a >= n || b >= n)
        misuse("weft__topology_distance", n, a >= n ? a : b);
    return unit_distance(t, a % t->nunits, b % t->nunits);
}

/* A counting sort by class: walking the workers in index order keeps ties
 * ordered by index, and the whole call is O(n) with O(1) per pair. Out of
 * range (debug builds stop in misuse()): no victims, class_end all 0. */
void weft__topology_victims(const struct weft__topology *t, unsigned n,
                            unsigned self, unsigned *order, unsigned *class_end)
{
    unsigned start[WEFT_DIST_CLASSES] = {0};
    if (self >= n) {
        misuse("weft__topology_victims", n, self);
        memset(class_end, 0, WEFT_DIST_CLASSES * sizeof(*class_end));
        return;
    }
    unsigned me = self % t->nunits;
    for (unsigned w = 0; w < n; w++)
        if (w != self)
            start[unit_distance(t, me, w % t->nunits)]++;
    unsigned sum = 0;
    for (int d = 0; d < WEFT_DIST_CLASSES; d++) {
        unsigned count = start[d];
        start[d] = sum;
        sum += count;
        class_end[d] = sum;
    }
    for (unsigned w = 0; w < n; w++)
        if (w != self)
            order[start[unit_distance(t, me, w % t->nunits)]++] = w;
}

int weft__topology_pin_self(const struct weft__topology *t, unsigned n,
                            unsigned worker)
{
    if (worker >= n)
        return -EINVAL;
    if (!t->real)
        return -ENOTSUP;
    hwloc_const_cpuset_t set = t->units[worker % t->nunits].obj->cpuset;
    if (hwloc_set_cpubind(t->topo, set, HWLOC_CPUBIND_THREAD) != 0)
        return neg_errno(-EINVAL);
    return 0;
}

static const char *plural(unsigned count, const char *one, const char *many)
{
    return count == 1 ? one : many;
}

/* "L3 shared by 16": the outermost of L3, L2, L1 that the topology has,
 * with how many units sit under one of them ("8-16" when they differ, as
 * on hybrid parts where E-cores share an L2 and P-cores do not). */
static int describe_cache(const struct weft__topology *t, char *buf, size_t len)
{
    static const hwloc_obj_type_t types[] = {
        HWLOC_OBJ_L3CACHE, HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L1CACHE};
    hwloc_obj_type_t unit_type = t->pus_as_core ? HWLOC_OBJ_PU : HWLOC_OBJ_CORE;
    for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
        int nb = hwloc_get_nbobjs_by_type(t->topo, types[k]);
        if (nb <= 0)
            continue;
        unsigned lo = UINT_MAX, hi = 0;
        for (int i = 0; i < nb; i++) {
            hwloc_obj_t c =
                hwloc_get_obj_by_type(t->topo, types[k], (unsigned)i);
            int m = hwloc_get_nbobjs_inside_cpuset_by_type(t->topo, c->cpuset,
                                                           unit_type);
            unsigned u = m > 0 ? (unsigned)m : 0;
            lo = u < lo ? u : lo;
            hi = u > hi ? u : hi;
        }
        unsigned level = 3 - (unsigned)k;
        if (hi <= 1)
            return snprintf(buf, len, ", L%u per %s", level,
                            t->pus_as_core ? "PU" : "core");
        if (lo == hi)
            return snprintf(buf, len, ", L%u shared by %u", level, hi);
        return snprintf(buf, len, ", L%u shared by %u-%u", level, lo, hi);
    }
    return snprintf(buf, len, ", no cache info");
}

void weft__topology_describe(const struct weft__topology *t, char *buf,
                             size_t len)
{
    if (len == 0)
        return;
    int npkg = hwloc_get_nbobjs_by_type(t->topo, HWLOC_OBJ_PACKAGE);
    int ncore = hwloc_get_nbobjs_by_type(t->topo, HWLOC_OBJ_CORE);
    int npu = hwloc_get_nbobjs_by_type(t->topo, HWLOC_OBJ_PU);
    int nnuma = hwloc_get_nbobjs_by_type(t->topo, HWLOC_OBJ_NUMANODE);
    unsigned pkg = npkg > 0 ? (unsigned)npkg : 0;
    unsigned core = ncore > 0 ? (unsigned)ncore : 0;
    unsigned pu = npu > 0 ? (unsigned)npu : 0;
    unsigned numa = nnuma > 0 ? (unsigned)nnuma : 0;
    int w = snprintf(
        buf, len, "%u %s, %u %s%s, %u %s, %u %s", pkg,
        plural(pkg, "package", "packages"), core, plural(core, "core", "cores"),
        t->pus_as_core ? " (PUs used as cores)" : "", pu,
        plural(pu, "PU", "PUs"), numa, plural(numa, "NUMA node", "NUMA nodes"));
    if (w < 0 || (size_t)w >= len)
        return; /* truncated: snprintf has already terminated buf */
    describe_cache(t, buf + w, len - (size_t)w);
}
