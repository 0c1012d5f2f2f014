/*
 * quads.c — a large live quad-tree and steady short-lived allocation, at a
 * fixed heap size: the shape of Whippet's "quads" benchmark, where a
 * generational collector marks the big tree rarely.
 *
 * A complete quad-tree of depth --depth is built bottom up (depth 10:
 * 1 398 101 nodes of four pointers, 43 MiB). The heap is then bounded to
 * --heap-mult times the tree's bytes (bk_heap_limit), and --garbage-mib
 * MiB of depth-3 trees are allocated; one garbage tree in 64 replaces a
 * depth-3 subtree of the live tree at a random place (a store into an old
 * node, through bk_write), so the live size stays level while old objects
 * point to young ones. At the end the tree is checked: its shape, and the
 * stamp of every node.
 */
#include "backend.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct Quad {
    struct Quad *kids[4];
} Quad;

static bk_type QUAD;

static long tree_nodes(int depth) { return ((1L << (2 * (depth + 1))) - 1) / 3; }

/* Children first: the node's fields are written right after its
 * allocation (no barrier needed). */
static Quad *make_tree(int depth) {
    if (depth < 0)
        return NULL;
    Quad *k[4];
    for (int i = 0; i < 4; i++)
        k[i] = make_tree(depth - 1);
    Quad *q = bk_alloc(QUAD);
    for (int i = 0; i < 4; i++)
        q->kids[i] = k[i];
    return q;
}

static long check_tree(const Quad *q, int depth) {
    if (depth < 0)
        return q == NULL ? 0 : -1000000000L;
    if (q == NULL)
        return -1000000000L;
    long n = 1;
    for (int i = 0; i < 4; i++)
        n += check_tree(q->kids[i], depth - 1);
    return n;
}

static void free_tree(Quad *q) {
    if (q == NULL)
        return;
    for (int i = 0; i < 4; i++)
        free_tree(q->kids[i]);
    bk_free(q);
}

static Quad *root;

int main(int argc, char **argv) {
    bench_start(argc, argv, "[--depth 10] [--heap-mult 2.5] [--garbage-mib 1024]");
    int depth = (int)bench_opt_long("--depth", 10);
    long mult10 = (long)(strtod(bench_opt_str("--heap-mult", "2.5"), NULL) * 10 + 0.5);
    long garbage_mib = bench_opt_long("--garbage-mib", 1024);
    if (depth < 4 || depth > 13 || mult10 < 11 || garbage_mib < 0)
        bench_fail("quads: --depth 4..13, --heap-mult > 1.0, --garbage-mib >= 0");
    bk_init(1);
    QUAD = bk_node_type("quad", sizeof(Quad), 4);
    bk_root_add((void **)&root);

    root = make_tree(depth);
    long nodes = tree_nodes(depth);
    size_t live = (size_t)nodes * sizeof(Quad);
    bk_heap_limit(live / 10 * (size_t)mult10);

    bench_rng rng = {0x9E3779B97F4A7C15ULL};
    long per_tree = tree_nodes(3) * (long)sizeof(Quad);
    long trees = garbage_mib * 1048576L / per_tree;
    int drop = bk_must_free();
    for (long t = 0; t < trees; t++) {
        Quad *g = make_tree(3);
        if (t % 64 != 0) {
            if (drop)
                free_tree(g);
            continue;
        }
        /* Walk to a node at depth - 4, whose kids are depth-3 subtrees. */
        Quad *q = root;
        for (int d = 0; d < depth - 4; d++)
            q = q->kids[bench_rand_below(&rng, 4)];
        unsigned k = (unsigned)bench_rand_below(&rng, 4);
        Quad *old = q->kids[k];
        bk_write(q, &q->kids[k], g);
        if (drop)
            free_tree(old);
    }
    long got = check_tree(root, depth);
    if (got != nodes) {
        fprintf(stderr, "quads: the tree has %ld nodes, expected %ld\n", got, nodes);
        return 1;
    }
    char extra[128];
    snprintf(extra, sizeof extra, "depth=%d nodes=%ld heap_mult=%.1f garbage_mib=%ld",
             depth, nodes, (double)mult10 / 10, garbage_mib);
    bench_result("quads", 1, extra);
    if (drop)
        free_tree(root);
    return 0;
}
