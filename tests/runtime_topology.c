/* tests/runtime_topology.c: runtime/topology.c on synthetic and XML
 * topologies that model machines this box is not (two sockets, SMT, NUMA
 * inside a package, CPU-less memory), and on the real machine. This file
 * includes <hwloc.h> only to build fixtures and an independent reference:
 * a slow walk of hwloc's tree that every fast distance must agree with. */
#include <criterion/criterion.h>

#include <errno.h>
#include <hwloc.h>
#include <hwloc/glibc-sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/topology.h"

#ifndef WEFT_DEBUG_LEVEL
#define WEFT_DEBUG_LEVEL 0
#endif

/* 2 sockets x 16 cores x 2 threads, one L3 per socket, one NUMA node. */
#define SMT2 "pack:2 l3:1 core:16 pu:2"
/* Every class at once: per package 2 NUMA groups, per group 2 L3s, per L3
 * 4 cores. Core 0 shares its L3 with 1-3, its NUMA node with 4-7, its
 * package with 8-15; 16-31 are in the other package. */
#define NUMA4 "pack:2 group:2 [numa] l3:2 core:4 pu:1"
/* hwloc folds the NUMA level into the L3 here: one node per L3. */
#define NUMA_PER_L3 "pack:2 numa:2 l3:1 core:8 pu:1"
/* One NUMA node per package, two L3s in each. */
#define NUMA_PER_PACK "pack:2 [numa] l3:2 core:8 pu:1"
/* No package, no cache (hwloc requires PUs as the last synthetic level, so
 * "core:64" alone is malformed). */
#define FLAT64 "core:64 pu:1"
/* Every cache private to its core: nothing is ever SAME_CACHE. */
#define PRIVATE_L2 "pack:2 core:4 l2:1 pu:2"
/* No cores at all: the PUs stand in for them. */
#define NO_CORES "pack:2 l2:2 pu:2"

static struct weft__topology *load(const char *spec)
{
    struct weft__topology *t = NULL;
    int rc = weft__topology_load(spec, &t);
    cr_assert_eq(rc, 0, "load(\"%s\") = %d", spec ? spec : "(null)", rc);
    cr_assert_not_null(t);
    return t;
}

/* ---- The reference: hwloc's tree, walked per pair ------------------------ */

struct ref {
    hwloc_topology_t topo;
    hwloc_obj_type_t unit;
    unsigned units;
};

static void ref_open(struct ref *r, const char *spec)
{
    cr_assert_eq(hwloc_topology_init(&r->topo), 0);
    if (spec[0] == '/' || spec[0] == '.')
        cr_assert_eq(hwloc_topology_set_xml(r->topo, spec), 0);
    else
        cr_assert_eq(hwloc_topology_set_synthetic(r->topo, spec), 0);
    cr_assert_eq(hwloc_topology_load(r->topo), 0);
    r->unit = HWLOC_OBJ_CORE;
    int nb = hwloc_get_nbobjs_by_type(r->topo, r->unit);
    if (nb <= 0) {
        r->unit = HWLOC_OBJ_PU;
        nb = hwloc_get_nbobjs_by_type(r->topo, r->unit);
    }
    cr_assert_gt(nb, 0);
    r->units = (unsigned)nb;
}

static hwloc_obj_t ref_package(const struct ref *r, hwloc_obj_t o)
{
    hwloc_obj_t p =
        hwloc_get_ancestor_obj_by_type(r->topo, HWLOC_OBJ_PACKAGE, o);
    return p ? p : hwloc_get_root_obj(r->topo);
}

/* Valid for topologies without CPU-less NUMA nodes, where intersecting
 * nodesets means sharing local memory. */
static enum weft__distance ref_distance(const struct ref *r, unsigned a,
                                        unsigned b)
{
    hwloc_obj_t oa = hwloc_get_obj_by_type(r->topo, r->unit, a % r->units);
    hwloc_obj_t ob = hwloc_get_obj_by_type(r->topo, r->unit, b % r->units);
    if (oa == ob)
        return WEFT_DIST_SAME_CORE;
    for (hwloc_obj_t p = hwloc_get_common_ancestor_obj(r->topo, oa, ob); p;
         p = p->parent)
        if (hwloc_obj_type_is_cache(p->type) && p->attr->cache.depth <= 3)
            return WEFT_DIST_SAME_CACHE;
    if (ref_package(r, oa) != ref_package(r, ob))
        return WEFT_DIST_REMOTE;
    if (hwloc_bitmap_intersects(oa->nodeset, ob->nodeset))
        return WEFT_DIST_SAME_NUMA;
    return WEFT_DIST_SAME_PACKAGE;
}

/* Every pair of 2 x cores workers, so that same-core pairs are included. */
static void check_against_reference(const char *spec)
{
    struct ref r;
    ref_open(&r, spec);
    struct weft__topology *t = load(spec);
    cr_assert_eq(weft__topology_cores(t), r.units, "%s", spec);
    unsigned n = 2 * r.units;
    unsigned seen[WEFT_DIST_CLASSES] = {0};
    for (unsigned a = 0; a < n; a++) {
        for (unsigned b = 0; b < n; b++) {
            if (a == b)
                continue;
            enum weft__distance got = weft__topology_distance(t, n, a, b);
            enum weft__distance want = ref_distance(&r, a, b);
            if (got != want)
                cr_assert_fail("%s: distance(%u, %u) = %d, reference %d", spec,
                               a, b, got, want);
            seen[got]++;
        }
    }
    /* Oversubscribed by two, every worker has exactly one core-mate. */
    cr_assert_eq(seen[WEFT_DIST_SAME_CORE], n, "%s", spec);
    weft__topology_free(t);
    hwloc_topology_destroy(r.topo);
}

/* ---- Victim lists -------------------------------------------------------- */

/* The documented contract, checked in full: every other worker exactly
 * once, self never, classes contiguous and matching distance(), ties by
 * index. */
static void check_victims(const struct weft__topology *t, unsigned n,
                          unsigned self)
{
    unsigned *order = malloc(sizeof(*order) * (n > 1 ? n - 1 : 1));
    unsigned char *seen = calloc(n, 1);
    unsigned end[WEFT_DIST_CLASSES];
    cr_assert(order && seen);
    weft__topology_victims(t, n, self, order, end);
    cr_assert_eq(end[WEFT_DIST_CLASSES - 1], n - 1);
    unsigned i = 0;
    for (int d = 0; d < WEFT_DIST_CLASSES; d++) {
        cr_assert_geq(end[d], i, "class_end not monotonic at %d", d);
        unsigned prev = 0;
        for (unsigned first = i; i < end[d]; i++) {
            unsigned w = order[i];
            if (w >= n || w == self || seen[w])
                cr_assert_fail("order[%u] = %u (self %u, n %u)", i, w, self, n);
            seen[w] = 1;
            if (weft__topology_distance(t, n, self, w) !=
                (enum weft__distance)d)
                cr_assert_fail("worker %u is in class %d but at distance %d", w,
                               d, weft__topology_distance(t, n, self, w));
            if (i > first && w <= prev)
                cr_assert_fail("class %d not sorted by index at %u", d, i);
            prev = w;
        }
    }
    free(order);
    free(seen);
}

/* ---- Counts and placement ------------------------------------------------ */

Test(topology, counts_cores_not_pus)
{
    static const struct {
        const char *spec;
        unsigned cores;
    } cases[] = {
        {SMT2, 32},          {NUMA4, 32},  {NUMA_PER_L3, 32},
        {NUMA_PER_PACK, 32}, {FLAT64, 64}, {PRIVATE_L2, 8},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct weft__topology *t = load(cases[i].spec);
        cr_assert_eq(weft__topology_cores(t), cases[i].cores, "%s",
                     cases[i].spec);
        cr_assert_not(weft__topology_is_real(t));
        weft__topology_free(t);
    }
}

Test(topology, topology_without_cores_uses_pus)
{
    struct weft__topology *t = load(NO_CORES);
    cr_assert_eq(weft__topology_cores(t), 8);
    cr_assert_eq(weft__topology_distance(t, 8, 0, 1), WEFT_DIST_SAME_CACHE);
    cr_assert_eq(weft__topology_distance(t, 8, 0, 2), WEFT_DIST_SAME_NUMA);
    cr_assert_eq(weft__topology_distance(t, 8, 0, 4), WEFT_DIST_REMOTE);
    weft__topology_free(t);
}

Test(topology, core_of_is_identity_up_to_the_core_count)
{
    struct weft__topology *t = load(SMT2);
    for (unsigned n = 1; n <= 32; n++)
        for (unsigned w = 0; w < n; w++)
            cr_assert_eq(weft__topology_core_of(t, n, w), w);
    weft__topology_free(t);
}

Test(topology, core_of_round_robin_when_oversubscribed)
{
    struct weft__topology *t = load(SMT2);
    for (unsigned w = 0; w < 100; w++)
        cr_assert_eq(weft__topology_core_of(t, 100, w), w % 32);
    weft__topology_free(t);
}

Test(topology, workers_fill_package_zero_first)
{
    struct weft__topology *t = load(NUMA4);
    /* With 16 workers, all sit in package 0: nobody is remote. */
    for (unsigned a = 0; a < 16; a++)
        for (unsigned b = 0; b < 16; b++)
            cr_assert_neq(weft__topology_distance(t, 16, a, b),
                          WEFT_DIST_REMOTE);
    cr_assert_eq(weft__topology_distance(t, 17, 0, 16), WEFT_DIST_REMOTE);
    weft__topology_free(t);
}

/* ---- Distances ----------------------------------------------------------- */

Test(topology, distance_classes_on_two_socket_smt)
{
    struct weft__topology *t = load(SMT2);
    cr_assert_eq(weft__topology_distance(t, 64, 0, 32), WEFT_DIST_SAME_CORE);
    cr_assert_eq(weft__topology_distance(t, 64, 47, 15), WEFT_DIST_SAME_CORE);
    cr_assert_eq(weft__topology_distance(t, 64, 0, 1), WEFT_DIST_SAME_CACHE);
    cr_assert_eq(weft__topology_distance(t, 64, 0, 15), WEFT_DIST_SAME_CACHE);
    cr_assert_eq(weft__topology_distance(t, 64, 17, 31), WEFT_DIST_SAME_CACHE);
    cr_assert_eq(weft__topology_distance(t, 64, 0, 16), WEFT_DIST_REMOTE);
    cr_assert_eq(weft__topology_distance(t, 64, 15, 48), WEFT_DIST_REMOTE);
    weft__topology_free(t);
}

Test(topology, distance_classes_with_numa_inside_packages)
{
    struct weft__topology *t = load(NUMA4);
    static const struct {
        unsigned a, b;
        enum weft__distance d;
    } pairs[] = {
        {0, 32, WEFT_DIST_SAME_CORE},     {5, 37, WEFT_DIST_SAME_CORE},
        {0, 3, WEFT_DIST_SAME_CACHE},     {4, 7, WEFT_DIST_SAME_CACHE},
        {0, 4, WEFT_DIST_SAME_NUMA},      {3, 7, WEFT_DIST_SAME_NUMA},
        {0, 8, WEFT_DIST_SAME_PACKAGE},   {7, 15, WEFT_DIST_SAME_PACKAGE},
        {0, 16, WEFT_DIST_REMOTE},        {15, 16, WEFT_DIST_REMOTE},
        {20, 28, WEFT_DIST_SAME_PACKAGE}, {16, 20, WEFT_DIST_SAME_NUMA},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        cr_assert_eq(weft__topology_distance(t, 64, pairs[i].a, pairs[i].b),
                     pairs[i].d, "distance(%u, %u)", pairs[i].a, pairs[i].b);
        cr_assert_eq(weft__topology_distance(t, 64, pairs[i].b, pairs[i].a),
                     pairs[i].d, "distance(%u, %u)", pairs[i].b, pairs[i].a);
    }
    weft__topology_free(t);
}

Test(topology, numa_node_per_l3_is_same_package_across_l3s)
{
    struct weft__topology *t = load(NUMA_PER_L3);
    cr_assert_eq(weft__topology_distance(t, 32, 0, 7), WEFT_DIST_SAME_CACHE);
    cr_assert_eq(weft__topology_distance(t, 32, 0, 8), WEFT_DIST_SAME_PACKAGE);
    cr_assert_eq(weft__topology_distance(t, 32, 0, 16), WEFT_DIST_REMOTE);
    weft__topology_free(t);
}

Test(topology, numa_node_per_package_is_same_numa_across_l3s)
{
    struct weft__topology *t = load(NUMA_PER_PACK);
    cr_assert_eq(weft__topology_distance(t, 32, 0, 7), WEFT_DIST_SAME_CACHE);
    cr_assert_eq(weft__topology_distance(t, 32, 0, 8), WEFT_DIST_SAME_NUMA);
    cr_assert_eq(weft__topology_distance(t, 32, 0, 16), WEFT_DIST_REMOTE);
    weft__topology_free(t);
}

Test(topology, flat_machine_is_one_numa_node)
{
    struct weft__topology *t = load(FLAT64);
    for (unsigned b = 1; b < 64; b++)
        cr_assert_eq(weft__topology_distance(t, 64, 0, b), WEFT_DIST_SAME_NUMA);
    cr_assert_eq(weft__topology_distance(t, 65, 0, 64), WEFT_DIST_SAME_CORE);
    weft__topology_free(t);
}

Test(topology, private_caches_are_never_shared)
{
    struct weft__topology *t = load(PRIVATE_L2);
    for (unsigned a = 0; a < 8; a++)
        for (unsigned b = 0; b < 8; b++)
            if (a != b)
                cr_assert_eq(weft__topology_distance(t, 8, a, b),
                             a / 4 == b / 4 ? WEFT_DIST_SAME_NUMA
                                            : WEFT_DIST_REMOTE,
                             "distance(%u, %u)", a, b);
    weft__topology_free(t);
}

Test(topology, distance_agrees_with_a_walk_of_hwlocs_tree)
{
    static const char *specs[] = {
        SMT2,   NUMA4,      NUMA_PER_L3, NUMA_PER_PACK,
        FLAT64, PRIVATE_L2, NO_CORES,    "pack:3 l3:2 l2:2 core:2 pu:2"};
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
        check_against_reference(specs[i]);
}

/* A CPU-less node (CXL, NVDIMM) attached to the machine is in the nodeset
 * of every core, so intersecting nodesets would put all cores in one NUMA
 * class. Here each package holds two groups with a NUMA node each (Intel's
 * SNC, AMD's NPS2) and node 4 is CPU-less at the root: cores of one group
 * are SAME_NUMA, of two groups SAME_PACKAGE, of two packages REMOTE. */
/* clang-format off */
#define XML_SETS(CPUS, NODES)                                                  \
    " cpuset=\"" CPUS "\" complete_cpuset=\"" CPUS "\""                        \
    " nodeset=\"" NODES "\" complete_nodeset=\"" NODES "\""
#define XML_CORE(OS, CPU, NODES)                                               \
    "<object type=\"Core\" os_index=\"" OS "\"" XML_SETS(CPU, NODES) ">\n"     \
    "<object type=\"PU\" os_index=\"" OS "\"" XML_SETS(CPU, NODES) "/>\n"      \
    "</object>\n"
/* A group of cores C0 and C1 with NUMA node OS attached. */
#define XML_GROUP(OS, CPUS, NODE, NODES, C0, CPU0, C1, CPU1)                   \
    "<object type=\"Group\"" XML_SETS(CPUS, NODES) ">\n"                       \
    "<object type=\"NUMANode\" os_index=\"" OS "\"" XML_SETS(CPUS, NODE)       \
    "/>\n"                                                                     \
    XML_CORE(C0, CPU0, NODES) XML_CORE(C1, CPU1, NODES)                        \
    "</object>\n"
#define XML_PACKAGE(OS, CPUS, NODES, GROUPS)                                   \
    "<object type=\"Package\" os_index=\"" OS "\"" XML_SETS(CPUS, NODES)       \
    ">\n" GROUPS "</object>\n"

static const char cpuless_xml[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<!DOCTYPE topology SYSTEM \"hwloc2.dtd\">\n"
    "<topology version=\"2.0\">\n"
    "<object type=\"Machine\" os_index=\"0\"" XML_SETS("0xff", "0x1f")
    " allowed_cpuset=\"0xff\" allowed_nodeset=\"0x1f\">\n"
    "<object type=\"NUMANode\" os_index=\"4\"" XML_SETS("0xff", "0x10")
    "/>\n"
    XML_PACKAGE("0", "0x0f", "0x13",
        XML_GROUP("0", "0x03", "0x01", "0x11", "0", "0x01", "1", "0x02")
        XML_GROUP("1", "0x0c", "0x02", "0x12", "2", "0x04", "3", "0x08"))
    XML_PACKAGE("1", "0xf0", "0x1c",
        XML_GROUP("2", "0x30", "0x04", "0x14", "4", "0x10", "5", "0x20")
        XML_GROUP("3", "0xc0", "0x08", "0x18", "6", "0x40", "7", "0x80"))
    "</object>\n"
    "</topology>\n";
/* clang-format on */

static char tmp_path[64];

static void remove_tmp(void)
{
    if (tmp_path[0] != '\0')
        unlink(tmp_path);
}

static void make_tmp(void)
{
    strcpy(tmp_path, "/tmp/weft_topology_XXXXXX");
    int fd = mkstemp(tmp_path);
    cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
    close(fd);
}

static void write_tmp(const char *text)
{
    make_tmp();
    FILE *f = fopen(tmp_path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fputs(text, f) >= 0, true);
    cr_assert_eq(fclose(f), 0);
}

Test(topology, cpuless_numa_node_does_not_merge_numa_classes,
     .fini = remove_tmp)
{
    write_tmp(cpuless_xml);
    struct ref r;
    ref_open(&r, tmp_path);
    /* The premise: nodesets of cores in different groups, even packages,
     * do intersect (in node 4). */
    cr_assert_eq(hwloc_get_nbobjs_by_type(r.topo, HWLOC_OBJ_NUMANODE), 5);
    cr_assert_eq(hwloc_get_nbobjs_by_type(r.topo, HWLOC_OBJ_GROUP), 4);
    hwloc_obj_t c0 = hwloc_get_obj_by_type(r.topo, HWLOC_OBJ_CORE, 0);
    hwloc_obj_t c2 = hwloc_get_obj_by_type(r.topo, HWLOC_OBJ_CORE, 2);
    hwloc_obj_t c4 = hwloc_get_obj_by_type(r.topo, HWLOC_OBJ_CORE, 4);
    cr_assert(hwloc_bitmap_intersects(c0->nodeset, c2->nodeset));
    cr_assert(hwloc_bitmap_intersects(c0->nodeset, c4->nodeset));
    hwloc_topology_destroy(r.topo);

    struct weft__topology *t = load(tmp_path);
    cr_assert_eq(weft__topology_cores(t), 8);
    for (unsigned a = 0; a < 8; a++) {
        for (unsigned b = 0; b < 8; b++) {
            if (a == b)
                continue;
            enum weft__distance want = a / 4 != b / 4   ? WEFT_DIST_REMOTE
                                       : a / 2 != b / 2 ? WEFT_DIST_SAME_PACKAGE
                                                        : WEFT_DIST_SAME_NUMA;
            cr_assert_eq(weft__topology_distance(t, 8, a, b), want,
                         "distance(%u, %u)", a, b);
        }
    }
    char buf[120];
    weft__topology_describe(t, buf, sizeof(buf));
    cr_assert_str_eq(buf, "2 packages, 8 cores, 8 PUs, 5 NUMA nodes, "
                          "no cache info");
    weft__topology_free(t);
}

/* ---- Victims ------------------------------------------------------------- */

Test(topology, victims_of_worker_zero_are_nearest_first)
{
    struct weft__topology *t = load(SMT2);
    unsigned order[31], end[WEFT_DIST_CLASSES];
    weft__topology_victims(t, 32, 0, order, end);
    unsigned want_end[WEFT_DIST_CLASSES] = {0, 15, 15, 15, 31};
    cr_assert_arr_eq(end, want_end, sizeof(end));
    for (unsigned i = 0; i < 31; i++)
        cr_assert_eq(order[i], i + 1, "order[%u]", i);
    check_victims(t, 32, 0);
    weft__topology_free(t);
}

Test(topology, victims_of_a_worker_in_package_one)
{
    struct weft__topology *t = load(SMT2);
    /* 64 workers on 32 cores: worker 20 shares core 20 with worker 52. */
    unsigned order[63], end[WEFT_DIST_CLASSES];
    weft__topology_victims(t, 64, 20, order, end);
    unsigned want_end[WEFT_DIST_CLASSES] = {1, 31, 31, 31, 63};
    cr_assert_arr_eq(end, want_end, sizeof(end));
    /* Then package 1 (cores 16-31: workers 16-31 and 48-63) by index, then
     * package 0. */
    unsigned want[63], k = 0;
    want[k++] = 52;
    for (unsigned w = 16; w < 64; w++)
        if (w != 20 && w != 52 && (w / 16) % 2 == 1)
            want[k++] = w;
    for (unsigned w = 0; w < 64; w++)
        if ((w / 16) % 2 == 0)
            want[k++] = w;
    cr_assert_eq(k, 63);
    cr_assert_arr_eq(order, want, sizeof(want));
    check_victims(t, 64, 20);
    weft__topology_free(t);
}

Test(topology, victims_cover_every_class)
{
    struct weft__topology *t = load(NUMA4);
    unsigned order[63], end[WEFT_DIST_CLASSES];
    weft__topology_victims(t, 64, 5, order, end);
    /* Core-mate 37; L3 4,6,7 (+36,38,39); NUMA 0-3 (+32-35);
     * package 8-15 (+40-47); remote 16-31 (+48-63). */
    unsigned want_end[WEFT_DIST_CLASSES] = {1, 7, 15, 31, 63};
    cr_assert_arr_eq(end, want_end, sizeof(end));
    unsigned want_head[] = {37, 4, 6, 7,  36, 38, 39, 0,
                            1,  2, 3, 32, 33, 34, 35};
    cr_assert_arr_eq(order, want_head, sizeof(want_head));
    check_victims(t, 64, 5);
    weft__topology_free(t);
}

Test(topology, victims_for_1024_workers_obey_the_contract)
{
    struct weft__topology *t = load(NUMA4);
    for (unsigned self = 0; self < 1024; self++)
        check_victims(t, 1024, self);
    weft__topology_free(t);
}

Test(topology, single_worker_has_no_victims)
{
    struct weft__topology *t = load(SMT2);
    unsigned order[1] = {12345};
    unsigned end[WEFT_DIST_CLASSES] = {9, 9, 9, 9, 9};
    weft__topology_victims(t, 1, 0, order, end);
    for (int d = 0; d < WEFT_DIST_CLASSES; d++)
        cr_assert_eq(end[d], 0);
    cr_assert_eq(order[0], 12345, "order must not be written");
    weft__topology_free(t);
}

/* ---- Loading from XML, and bad specs ------------------------------------- */

static void export_xml(const char *spec, const char *path)
{
    hwloc_topology_t topo;
    cr_assert_eq(hwloc_topology_init(&topo), 0);
    cr_assert_eq(hwloc_topology_set_synthetic(topo, spec), 0);
    cr_assert_eq(hwloc_topology_load(topo), 0);
    cr_assert_eq(hwloc_topology_export_xml(topo, path, 0), 0);
    hwloc_topology_destroy(topo);
}

static void assert_same_topology(const struct weft__topology *a,
                                 const struct weft__topology *b)
{
    unsigned cores = weft__topology_cores(a);
    cr_assert_eq(weft__topology_cores(b), cores);
    unsigned n = 2 * cores;
    for (unsigned x = 0; x < n; x++)
        for (unsigned y = 0; y < n; y++)
            if (weft__topology_distance(a, n, x, y) !=
                weft__topology_distance(b, n, x, y))
                cr_assert_fail("distance(%u, %u) differs", x, y);
    char da[200], db[200];
    weft__topology_describe(a, da, sizeof(da));
    weft__topology_describe(b, db, sizeof(db));
    cr_assert_str_eq(da, db);
}

Test(topology, xml_round_trip_by_absolute_path, .fini = remove_tmp)
{
    make_tmp();
    export_xml(NUMA4, tmp_path);
    struct weft__topology *syn = load(NUMA4);
    struct weft__topology *xml = load(tmp_path);
    cr_assert_not(weft__topology_is_real(xml));
    assert_same_topology(syn, xml);
    cr_assert_eq(weft__topology_pin_self(xml, 1, 0), -ENOTSUP);
    weft__topology_free(syn);
    weft__topology_free(xml);
}

Test(topology, xml_round_trip_by_relative_path, .fini = remove_tmp)
{
    make_tmp();
    export_xml(SMT2, tmp_path);
    cr_assert_eq(chdir("/tmp"), 0);
    char rel[80];
    snprintf(rel, sizeof(rel), "./%s", tmp_path + strlen("/tmp/"));
    struct weft__topology *syn = load(SMT2);
    struct weft__topology *xml = load(rel);
    assert_same_topology(syn, xml);
    weft__topology_free(syn);
    weft__topology_free(xml);
}

static void assert_load_fails(const char *spec, int want)
{
    struct weft__topology *sentinel = (struct weft__topology *)&sentinel;
    struct weft__topology *t = sentinel;
    int rc = weft__topology_load(spec, &t);
    cr_assert_eq(rc, want, "load(\"%s\") = %d, want %d", spec, rc, want);
    cr_assert_eq(t, sentinel, "load(\"%s\") wrote *out on failure", spec);
}

Test(topology, malformed_spec_is_einval)
{
    assert_load_fails("", -EINVAL);
    assert_load_fails("pack:2 bogus:3 pu:1", -EINVAL);
    assert_load_fails("core:64", -EINVAL); /* last level must be PUs */
    assert_load_fails("pack:0 pu:1", -EINVAL);
    assert_load_fails("pack:2 core:", -EINVAL);
    assert_load_fails("topology.xml", -EINVAL); /* no '/' or '.': synthetic */
}

Test(topology, missing_xml_file_is_enoent)
{
    assert_load_fails("/nonexistent/weft/topology.xml", -ENOENT);
    assert_load_fails("./nonexistent-weft-topology.xml", -ENOENT);
}

Test(topology, malformed_xml_file_is_einval, .fini = remove_tmp)
{
    write_tmp("<?xml version=\"1.0\"?>\n<topology>not a topology\n");
    assert_load_fails(tmp_path, -EINVAL);
}

Test(topology, directory_as_xml_is_eisdir)
{
    assert_load_fails("/tmp", -EISDIR);
}

Test(topology, null_out_is_einval)
{
    cr_assert_eq(weft__topology_load(SMT2, NULL), -EINVAL);
    weft__topology_free(NULL); /* a no-op, like free(NULL) */
}

/* ---- Pinning ------------------------------------------------------------- */

Test(topology, pin_on_synthetic_is_enotsup)
{
    struct weft__topology *t = load(SMT2);
    cpu_set_t before, after;
    cr_assert_eq(sched_getaffinity(0, sizeof(before), &before), 0);
    cr_assert_eq(weft__topology_pin_self(t, 4, 3), -ENOTSUP);
    cr_assert_eq(sched_getaffinity(0, sizeof(after), &after), 0);
    cr_assert(CPU_EQUAL(&before, &after), "affinity changed");
    weft__topology_free(t);
}

Test(topology, pin_out_of_range_is_einval)
{
    struct weft__topology *t = load(NULL);
    cr_assert_eq(weft__topology_pin_self(t, 2, 2), -EINVAL);
    cr_assert_eq(weft__topology_pin_self(t, 0, 0), -EINVAL);
    weft__topology_free(t);
}

/* The cores that the calling thread's affinity touches, counted with hwloc
 * on its own (glibc's mask converted, not hwloc's get_cpubind). */
static unsigned cores_in_affinity(void)
{
    cpu_set_t mask;
    cr_assert_eq(sched_getaffinity(0, sizeof(mask), &mask), 0);
    hwloc_topology_t topo;
    cr_assert_eq(hwloc_topology_init(&topo), 0);
    cr_assert_eq(hwloc_topology_load(topo), 0);
    hwloc_cpuset_t set = hwloc_bitmap_alloc();
    cr_assert_eq(
        hwloc_cpuset_from_glibc_sched_affinity(topo, set, &mask, sizeof(mask)),
        0);
    hwloc_obj_type_t type = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) > 0
                                ? HWLOC_OBJ_CORE
                                : HWLOC_OBJ_PU;
    unsigned count = 0;
    hwloc_obj_t o = NULL;
    while ((o = hwloc_get_next_obj_by_type(topo, type, o)) != NULL)
        count += hwloc_bitmap_intersects(o->cpuset, set);
    hwloc_bitmap_free(set);
    hwloc_topology_destroy(topo);
    return count;
}

static bool is_neg_errno(int rc)
{
    return rc < 0 && rc > -4096;
}

Test(topology, real_machine_loads_and_pins_worker_zero)
{
    unsigned want = cores_in_affinity();
    struct weft__topology *t = load(NULL);
    cr_assert(weft__topology_is_real(t));
    cr_assert_geq(weft__topology_cores(t), 1);
    cr_assert_eq(weft__topology_cores(t), want,
                 "cores %u, but the affinity mask touches %u",
                 weft__topology_cores(t), want);
    cpu_set_t before, after;
    cr_assert_eq(sched_getaffinity(0, sizeof(before), &before), 0);
    int rc = weft__topology_pin_self(t, 1, 0);
    cr_assert(rc == 0 || is_neg_errno(rc), "pin returned %d", rc);
    cr_assert_eq(sched_getaffinity(0, sizeof(after), &after), 0);
    if (rc == 0) {
        cpu_set_t both;
        CPU_AND(&both, &before, &after);
        cr_assert_gt(CPU_COUNT(&after), 0);
        cr_assert(CPU_EQUAL(&both, &after), "pinned outside the old mask");
    }
    char buf[160];
    weft__topology_describe(t, buf, sizeof(buf));
    cr_assert_neq(strstr(buf, "core"), NULL, "%s", buf);
    weft__topology_free(t);
}

/* taskset is not a cgroup: hwloc's default discovery ignores it, so this
 * checks that load(NULL) restricts to the calling thread's mask itself. */
Test(topology, real_machine_is_restricted_to_the_affinity_mask)
{
    cpu_set_t all, one, after;
    cr_assert_eq(sched_getaffinity(0, sizeof(all), &all), 0);
    int last = -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &all))
            last = c;
    cr_assert_geq(last, 0);
    CPU_ZERO(&one);
    CPU_SET(last, &one);
    if (sched_setaffinity(0, sizeof(one), &one) != 0)
        cr_skip_test("sched_setaffinity: %s", strerror(errno));

    struct weft__topology *t = load(NULL);
    cr_assert_eq(weft__topology_cores(t), 1);
    char buf[160];
    weft__topology_describe(t, buf, sizeof(buf));
    cr_assert_neq(strstr(buf, " 1 core, 1 PU,"), NULL, "%s", buf);
    cr_assert_eq(weft__topology_pin_self(t, 3, 2), 0);
    cr_assert_eq(sched_getaffinity(0, sizeof(after), &after), 0);
    cr_assert(CPU_EQUAL(&one, &after), "pinned away from CPU %d", last);
    weft__topology_free(t);
}

struct pinner {
    const struct weft__topology *t;
    unsigned n, worker, seed;
    int rc;
    cpu_set_t mask;
};

static void *pin_thread(void *arg)
{
    struct pinner *p = arg;
    /* Stagger the threads so that the calls overlap differently each round:
     * a few yields, their number drawn from the round's seed. */
    unsigned r = p->seed * 2654435761u + p->worker * 40503u;
    for (unsigned i = (r >> 16) % 8; i > 0; i--)
        sched_yield();
    p->rc = weft__topology_pin_self(p->t, p->n, p->worker);
    if (sched_getaffinity(0, sizeof(p->mask), &p->mask) != 0)
        p->rc = -errno;
    return NULL;
}

Test(topology, workers_pinning_at_once_each_get_their_core, .timeout = 30)
{
    struct weft__topology *t = load(NULL);
    unsigned cores = weft__topology_cores(t);
    unsigned n = 2 * cores + 1;
    struct pinner *p = calloc(n, sizeof(*p));
    pthread_t *th = calloc(n, sizeof(*th));
    cr_assert(p && th);
    for (int round = 0; round < 20; round++) {
        for (unsigned i = 0; i < n; i++) {
            p[i] = (struct pinner){
                .t = t, .n = n, .worker = i, .seed = (unsigned)round + 1};
            cr_assert_eq(pthread_create(&th[i], NULL, pin_thread, &p[i]), 0);
        }
        for (unsigned i = 0; i < n; i++)
            cr_assert_eq(pthread_join(th[i], NULL), 0);
        if (p[0].rc != 0) {
            cr_assert(is_neg_errno(p[0].rc), "pin returned %d", p[0].rc);
            cr_skip_test("pinning is not allowed here: %s", strerror(-p[0].rc));
        }
        for (unsigned i = 0; i < n; i++) {
            cr_assert_eq(p[i].rc, 0, "worker %u: %d", i, p[i].rc);
            cr_assert_gt(CPU_COUNT(&p[i].mask), 0);
            for (unsigned j = 0; j < i; j++) {
                cpu_set_t both;
                CPU_AND(&both, &p[i].mask, &p[j].mask);
                if (i % cores == j % cores)
                    cr_assert(CPU_EQUAL(&p[i].mask, &p[j].mask),
                              "workers %u and %u share a core", i, j);
                else
                    cr_assert_eq(CPU_COUNT(&both), 0,
                                 "workers %u and %u overlap", i, j);
            }
        }
    }
    free(p);
    free(th);
    weft__topology_free(t);
}

/* ---- describe() ---------------------------------------------------------- */

static void assert_describes(const char *spec, const char *want)
{
    struct weft__topology *t = load(spec);
    char buf[200];
    weft__topology_describe(t, buf, sizeof(buf));
    cr_assert_str_eq(buf, want, "%s", spec);
    weft__topology_free(t);
}

Test(topology, describe_synthetic_topologies)
{
    assert_describes(SMT2, "2 packages, 32 cores, 64 PUs, 1 NUMA node, "
                           "L3 shared by 16");
    assert_describes(NUMA4, "2 packages, 32 cores, 32 PUs, 4 NUMA nodes, "
                            "L3 shared by 4");
    assert_describes(FLAT64, "0 packages, 64 cores, 64 PUs, 1 NUMA node, "
                             "no cache info");
    assert_describes(PRIVATE_L2, "2 packages, 8 cores, 16 PUs, 1 NUMA node, "
                                 "L2 per core");
    assert_describes(NO_CORES, "2 packages, 0 cores (PUs used as cores), "
                               "8 PUs, 1 NUMA node, L2 shared by 2");
    assert_describes("pack:1 l3:1 core:2 pu:1",
                     "1 package, 2 cores, 2 PUs, 1 NUMA node, "
                     "L3 shared by 2");
}

Test(topology, describe_truncates_to_the_buffer)
{
    struct weft__topology *t = load(SMT2);
    char buf[12];
    memset(buf, 'x', sizeof(buf));
    weft__topology_describe(t, buf, sizeof(buf));
    cr_assert_str_eq(buf, "2 packages,");
    weft__topology_describe(t, buf, 0);
    cr_assert_str_eq(buf, "2 packages,", "len 0 must not write");
    /* Cut inside the cache clause, which is written separately. */
    char mid[50];
    weft__topology_describe(t, mid, sizeof(mid));
    cr_assert_str_eq(mid, "2 packages, 32 cores, 64 PUs, 1 NUMA node, L3 sha");
    weft__topology_free(t);
}

/* ---- Misuse -------------------------------------------------------------- */

#if WEFT_DEBUG_LEVEL >= 1
Test(topology, core_of_out_of_range_aborts, .signal = SIGABRT)
{
    struct weft__topology *t = load(SMT2);
    weft__topology_core_of(t, 4, 4);
}

Test(topology, victims_out_of_range_aborts, .signal = SIGABRT)
{
    struct weft__topology *t = load(SMT2);
    unsigned order[4], end[WEFT_DIST_CLASSES];
    weft__topology_victims(t, 4, 7, order, end);
}
#else
Test(topology, victims_out_of_range_lists_nobody)
{
    struct weft__topology *t = load(SMT2);
    unsigned order[3] = {7, 7, 7};
    unsigned end[WEFT_DIST_CLASSES] = {9, 9, 9, 9, 9};
    weft__topology_victims(t, 4, 4, order, end);
    for (int d = 0; d < WEFT_DIST_CLASSES; d++)
        cr_assert_eq(end[d], 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(order[i], 7);
    cr_assert_lt(weft__topology_core_of(t, 4, 40), 32);
    weft__topology_free(t);
}
#endif
