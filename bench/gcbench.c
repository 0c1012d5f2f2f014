/*
 * gcbench.c — GCBench, the Ellis/Kovac benchmark in Hans Boehm's C form:
 * a short-lived "stretch" tree, then a long-lived tree and a long-lived
 * array of doubles, then top-down (Populate) and bottom-up (MakeTree)
 * binary trees of depth 4, 6, ... 16, each built NumIters(depth) times so
 * every depth allocates the same number of nodes.
 *
 * With --threads T > 1, T threads each run the whole benchmark on their own
 * trees (multi-threaded GCBench); the main thread only waits.
 */
#include "backend.h"
#include "common.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct Node {
    struct Node *left, *right;
    int i, j;
} Node;

static bk_type NODE;
static int stretch_depth, long_lived_depth, min_depth, max_depth;
static long array_size;

static int tree_size(int depth) { return (1 << (depth + 1)) - 1; }

static int num_iters(int depth) {
    return 2 * tree_size(stretch_depth) / tree_size(depth);
}

static Node *new_node(Node *l, Node *r) {
    Node *n = bk_alloc(NODE);
    n->left = l;
    n->right = r;
    n->i = 0;
    n->j = 0;
    return n;
}

static void free_tree(Node *n) {
    while (n != NULL) {
        free_tree(n->left);
        Node *r = n->right;
        bk_free(n);
        n = r;
    }
}

/* Drops a tree: the malloc backends free every node. */
static void drop_tree(Node *n) {
    if (bk_must_free())
        free_tree(n);
}

/* Builds the tree top down: the node exists before its children. */
static void populate(int depth, Node *n) {
    if (depth <= 0)
        return;
    depth--;
    bk_write(n, &n->left, new_node(NULL, NULL));
    bk_write(n, &n->right, new_node(NULL, NULL));
    populate(depth, n->left);
    populate(depth, n->right);
}

/* Builds the tree bottom up: the children exist before the node. */
static Node *make_tree(int depth) {
    if (depth <= 0)
        return new_node(NULL, NULL);
    Node *l = make_tree(depth - 1);
    Node *r = make_tree(depth - 1);
    return new_node(l, r);
}

static long count_nodes(const Node *n) {
    long c = 0;
    while (n != NULL) {
        c += 1 + count_nodes(n->left);
        n = n->right;
    }
    return c;
}

static void time_construction(int depth) {
    int iters = num_iters(depth);
    for (int i = 0; i < iters; i++) {
        Node *t = new_node(NULL, NULL);
        populate(depth, t);
        drop_tree(t);
    }
    for (int i = 0; i < iters; i++) {
        Node *t = make_tree(depth);
        drop_tree(t);
    }
}

static void *run_gcbench(void *arg) {
    int attach = arg != NULL;
    if (attach)
        bk_thread_attach();

    Node *stretch = make_tree(stretch_depth);
    drop_tree(stretch);

    Node *long_lived = new_node(NULL, NULL);
    populate(long_lived_depth, long_lived);

    double *array = bk_alloc_blob((size_t)array_size * sizeof(double));
    for (long i = 0; i < array_size / 2; i++)
        array[i] = 1.0 / (double)i;

    for (int d = min_depth; d <= max_depth; d += 2)
        time_construction(d);

    if (long_lived == NULL || array[1000] != 1.0 / 1000)
        bench_fail("gcbench: long-lived data lost");
    long n = count_nodes(long_lived);
    if (n != tree_size(long_lived_depth))
        bench_fail("gcbench: long-lived tree has %ld nodes, expected %d", n,
                   tree_size(long_lived_depth));
    drop_tree(long_lived);
    bk_free(array);

    if (attach)
        bk_thread_detach();
    return NULL;
}

int main(int argc, char **argv) {
    bench_start(argc, argv,
                "[--threads T] [--stretch 18] [--long-lived 16] [--array 500000] "
                "[--min 4] [--max 16]");
    long threads = bench_opt_long("--threads", 1);
    stretch_depth = (int)bench_opt_long("--stretch", 18);
    long_lived_depth = (int)bench_opt_long("--long-lived", 16);
    array_size = bench_opt_long("--array", 500000);
    min_depth = (int)bench_opt_long("--min", 4);
    max_depth = (int)bench_opt_long("--max", 16);
    if (threads < 1 || threads > 256 || stretch_depth < 1 || stretch_depth > 28 ||
        long_lived_depth < 0 || long_lived_depth > 28 || array_size < 1001 || min_depth < 0 ||
        max_depth > stretch_depth)
        bench_fail("gcbench: option out of range");

    bk_init((unsigned)threads);
    NODE = bk_node_type("gcbench-node", sizeof(Node), 2);

    if (threads == 1) {
        run_gcbench(NULL);
    } else {
        pthread_t *tids = malloc((size_t)threads * sizeof *tids);
        if (tids == NULL)
            bench_fail("out of memory");
        for (long t = 0; t < threads; t++)
            if (pthread_create(&tids[t], NULL, run_gcbench, (void *)1) != 0)
                bench_fail("pthread_create failed");
        bk_blocking_enter();
        for (long t = 0; t < threads; t++)
            pthread_join(tids[t], NULL);
        bk_blocking_leave();
        free(tids);
    }
    bench_result(threads == 1 ? "gcbench" : "gcbench-mt", (unsigned)threads, NULL);
    return 0;
}
