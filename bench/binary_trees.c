/*
 * binary_trees.c — the Computer Language Benchmarks Game's binary-trees,
 * single-threaded: a stretch tree of depth max+1, a long-lived tree of depth
 * max, then for depth = 4, 6, ... max, 2^(max - depth + 4) bottom-up trees
 * of that depth, each walked (checked) and dropped. Nodes are two pointers
 * (16 bytes).
 */
#include "backend.h"
#include "common.h"

#include <stdio.h>

typedef struct TreeNode {
    struct TreeNode *left, *right;
} TreeNode;

static bk_type NODE;

static TreeNode *bottom_up(int depth) {
    TreeNode *n = bk_alloc(NODE);
    if (depth > 0) {
        /* The node is allocated first, as in the benchmarks game's C
         * program; its fields are NULL while the children are built. */
        bk_write(n, &n->left, bottom_up(depth - 1));
        bk_write(n, &n->right, bottom_up(depth - 1));
    } else {
        n->left = n->right = NULL;
    }
    return n;
}

static long item_check(const TreeNode *t) {
    if (t->left == NULL)
        return 1;
    return 1 + item_check(t->left) + item_check(t->right);
}

static void free_tree(TreeNode *t) {
    if (t->left != NULL) {
        free_tree(t->left);
        free_tree(t->right);
    }
    bk_free(t);
}

static void drop_tree(TreeNode *t) {
    if (bk_must_free())
        free_tree(t);
}

static long expected(int depth) { return (2L << depth) - 1; }

int main(int argc, char **argv) {
    bench_start(argc, argv, "[--depth 18] [--quiet]");
    const int min_depth = 4;
    int n = (int)bench_opt_long("--depth", 18);
    if (n < 0 || n > 28)
        bench_fail("binary-trees: --depth out of range");
    int max_depth = n < min_depth + 2 ? min_depth + 2 : n;

    bk_init(1);
    NODE = bk_node_type("binary-trees-node", sizeof(TreeNode), 2);

    TreeNode *stretch = bottom_up(max_depth + 1);
    long c = item_check(stretch);
    if (c != expected(max_depth + 1))
        bench_fail("binary-trees: stretch tree check %ld", c);
    drop_tree(stretch);

    TreeNode *long_lived = bottom_up(max_depth);

    for (int d = min_depth; d <= max_depth; d += 2) {
        long iterations = 1L << (max_depth - d + min_depth);
        long check = 0;
        for (long i = 0; i < iterations; i++) {
            TreeNode *t = bottom_up(d);
            check += item_check(t);
            drop_tree(t);
        }
        if (check != iterations * expected(d))
            bench_fail("binary-trees: depth %d check %ld", d, check);
    }
    c = item_check(long_lived);
    if (c != expected(max_depth))
        bench_fail("binary-trees: long-lived tree check %ld", c);
    drop_tree(long_lived);

    char extra[64];
    snprintf(extra, sizeof extra, "depth=%d", max_depth);
    bench_result("binary-trees", 1, extra);
    return 0;
}
