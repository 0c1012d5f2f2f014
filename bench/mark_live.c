/*
 * mark_live.c — marking a large live heap: build a graph of --objects
 * 32-byte nodes (three pointer words and a data word), then force
 * --collections full collections and report the mark time of each and the
 * marking throughput. Collector backends only.
 *
 * Shapes (--shape):
 *   tree   balanced binary trees: one complete tree, allocated depth-first,
 *          so memory order follows the tree;
 *   graph  a random graph: the nodes of a complete binary tree laid out in
 *          a random permutation of allocation order (every node reachable,
 *          depth log2 n, no locality), plus one random cross edge per node;
 *   list   one linked list of half the nodes next to one wide array
 *          holding pointers to the other half (a single large object).
 */
#include "backend.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct MNode {
    struct MNode *a, *b, *c;
    uint64_t id;
} MNode;

static bk_type MNODE;
static MNode *root;      /* tree, graph, list head */
static MNode **wide;     /* list shape: the wide array */
static MNode **scratch;  /* graph shape: all nodes while wiring */

static MNode *new_node(uint64_t id) {
    MNode *n = bk_alloc(MNODE);
    n->a = n->b = n->c = NULL;
    n->id = id;
    return n;
}

static MNode *build_tree(long count, uint64_t *next_id) {
    if (count == 0)
        return NULL;
    MNode *n = new_node((*next_id)++);
    long rest = count - 1;
    n->a = build_tree(rest / 2, next_id);
    n->b = build_tree(rest - rest / 2, next_id);
    return n;
}

/* Allocates n nodes, then wires node perm[i] to perm[2i+1], perm[2i+2] and
 * a random node. The scratch array keeps them reachable while wiring. */
static void build_graph(long n) {
    scratch = (MNode **)bk_alloc_ptrs((size_t)n);
    for (long i = 0; i < n; i++)
        scratch[i] = new_node((uint64_t)i);
    uint32_t *perm = malloc((size_t)n * sizeof *perm);
    if (perm == NULL)
        bench_fail("out of memory");
    for (long i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    bench_rng rng = {0x853C49E6748FEA9BULL};
    for (long i = n - 1; i > 0; i--) {
        long j = (long)bench_rand_below(&rng, (uint64_t)i + 1);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (long i = 0; i < n; i++) {
        MNode *x = scratch[perm[i]];
        x->a = 2 * i + 1 < n ? scratch[perm[2 * i + 1]] : NULL;
        x->b = 2 * i + 2 < n ? scratch[perm[2 * i + 2]] : NULL;
        x->c = scratch[bench_rand_below(&rng, (uint64_t)n)];
    }
    root = scratch[perm[0]];
    free(perm);
    bk_free(scratch); /* the nodes stay: the malloc backends never run this */
    scratch = NULL;
}

static void build_list(long n) {
    long half = n / 2;
    MNode *head = NULL;
    for (long i = 0; i < half; i++) {
        MNode *x = new_node((uint64_t)i);
        x->a = head;
        head = x;
    }
    root = head;
    wide = (MNode **)bk_alloc_ptrs((size_t)(n - half));
    for (long i = 0; i < n - half; i++)
        wide[i] = new_node((uint64_t)(half + i));
}

/* Counts the nodes reachable through a and b (tree edges; the list's a). */
static long count_reachable(const MNode *x) {
    long c = 0;
    while (x != NULL) {
        c += 1 + count_reachable(x->b);
        x = x->a;
    }
    return c;
}

static long verify(const char *shape, long n) {
    long c = count_reachable(root);
    if (strcmp(shape, "list") == 0) {
        for (long i = 0; i < n - n / 2; i++)
            if (wide[i] == NULL || wide[i]->id != (uint64_t)(n / 2 + i))
                bench_fail("mark-list: wide array entry %ld corrupted", i);
        c += n - n / 2;
    }
    return c;
}

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    bench_start(argc, argv, "--shape tree|graph|list [--objects 4000000] [--collections 5]");
    const char *shape = bench_opt_str("--shape", "tree");
    long n = bench_opt_long("--objects", 4000000);
    long collections = bench_opt_long("--collections", 5);
    if (n < 2 || n > 0x7fffffffL || collections < 1 || collections > 1000)
        bench_fail("mark-live: option out of range");
    if (strcmp(shape, "tree") != 0 && strcmp(shape, "graph") != 0 && strcmp(shape, "list") != 0)
        bench_fail("mark-live: unknown shape '%s'", shape);

    bk_init(1);
    MNODE = bk_node_type("mark-live-node", sizeof(MNode), 3);
    bk_root_add((void **)&root);
    bk_root_add((void **)&wide);
    bk_root_add((void **)&scratch);

    if (shape[0] == 't') {
        uint64_t next_id = 0;
        root = build_tree(n, &next_id);
    } else if (shape[0] == 'g') {
        build_graph(n);
    } else {
        build_list(n);
    }
    long reach = verify(shape, n);
    if (reach != n)
        bench_fail("mark-%s: %ld nodes reachable, expected %ld", shape, reach, n);

    /* One collection to settle whatever the build left (unswept pages,
     * the graph's scratch array), then the measured ones. */
    bk_collect();
    size_t first = bench_gc_count();
    for (long i = 0; i < collections; i++)
        bk_collect();
    size_t last = bench_gc_count();
    if (last - first != (size_t)collections)
        bench_fail("mark-live: %zu collections recorded for %ld forced", last - first,
                   collections);
    uint64_t *marks = malloc((size_t)collections * sizeof *marks);
    if (marks == NULL)
        bench_fail("out of memory");
    for (long i = 0; i < collections; i++)
        marks[i] = bench_gc_mark_ns(first + (size_t)i);
    qsort(marks, (size_t)collections, sizeof *marks, cmp_u64);
    uint64_t median = marks[collections / 2];
    uint64_t best = marks[0];
    free(marks);

    reach = verify(shape, n);
    if (reach != n)
        bench_fail("mark-%s: %ld nodes reachable after collections, expected %ld", shape, reach,
                   n);

    char name[32], extra[160];
    snprintf(name, sizeof name, "mark-%s", shape);
    snprintf(extra, sizeof extra, "objects=%ld mark_ms=%.2f mark_min_ms=%.2f mark_mobj_s=%.1f",
             n, (double)median / 1e6, (double)best / 1e6,
             median > 0 ? (double)n / ((double)median / 1e9) / 1e6 : 0.0);
    bench_result(name, 1, extra);
    return 0;
}
