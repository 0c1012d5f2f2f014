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
 *
 * With --build-threads T > 1 the nodes are allocated by T threads (the main
 * thread waits), so their pages have T different owners (rudo's routing
 * sends an object to the marker owner % markers): the tree's 2^k >= T
 * subtrees below the top k levels are built one per thread in turn; the
 * graph's and the list's nodes are allocated in T contiguous ranges, one
 * per thread, and wired by the main thread. The shape in memory is the
 * same as with one thread, except that each thread allocates from its own
 * pages.
 *
 * After the result line, the collector backends may print what each marker
 * did in the last collection (bk_print_marker_stats: MARKER / MARKERS
 * lines, rudo only).
 */
#include "backend.h"
#include "common.h"

#include <pthread.h>
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
static MNode **scratch;  /* graph and list shapes: all nodes while wiring */
static long build_threads = 1;

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

/* ---- building with several threads -------------------------------------- */

typedef struct Job {
    MNode **slot; /* where the subtree goes (a field of a top node) */
    long count;
    uint64_t first_id;
} Job;

static Job *jobs;
static long njobs;

typedef struct Worker {
    pthread_t tid;
    long index;
    char shape;
    long n;
} Worker;

static void *worker_main(void *arg) {
    Worker *w = arg;
    bk_thread_attach();
    if (w->shape == 't') {
        for (long j = w->index; j < njobs; j += build_threads) {
            uint64_t next_id = jobs[j].first_id;
            *jobs[j].slot = build_tree(jobs[j].count, &next_id);
        }
    } else {
        long lo = w->n * w->index / build_threads, hi = w->n * (w->index + 1) / build_threads;
        for (long i = lo; i < hi; i++)
            scratch[i] = new_node((uint64_t)i);
    }
    bk_thread_detach();
    return NULL;
}

static void run_workers(char shape, long n) {
    Worker *ws = calloc((size_t)build_threads, sizeof *ws);
    if (ws == NULL)
        bench_fail("out of memory");
    for (long t = 0; t < build_threads; t++) {
        ws[t] = (Worker){.index = t, .shape = shape, .n = n};
        if (pthread_create(&ws[t].tid, NULL, worker_main, &ws[t]) != 0)
            bench_fail("pthread_create failed");
    }
    bk_blocking_enter();
    for (long t = 0; t < build_threads; t++)
        pthread_join(ws[t].tid, NULL);
    bk_blocking_leave();
    free(ws);
}

/* Builds the top `levels` levels of a tree of `count` nodes on the main
 * thread and records a job for each subtree below them. */
static MNode *build_top(long count, int levels, uint64_t *next_id) {
    if (count == 0)
        return NULL;
    MNode *n = new_node((*next_id)++);
    long rest = count - 1;
    long ca = rest / 2, cb = rest - rest / 2;
    if (levels == 1) {
        jobs[njobs++] = (Job){&n->a, ca, *next_id};
        *next_id += (uint64_t)ca;
        jobs[njobs++] = (Job){&n->b, cb, *next_id};
        *next_id += (uint64_t)cb;
    } else {
        n->a = build_top(ca, levels - 1, next_id);
        n->b = build_top(cb, levels - 1, next_id);
    }
    return n;
}

static __attribute__((noinline)) void build_tree_threads(long n) {
    int levels = 0;
    while ((1L << levels) < build_threads)
        levels++;
    if (levels == 0)
        levels = 1;
    jobs = calloc((size_t)1 << levels, sizeof *jobs);
    if (jobs == NULL)
        bench_fail("out of memory");
    uint64_t next_id = 0;
    root = build_top(n, levels, &next_id); /* rooted before the workers run */
    run_workers('t', n);
    free(jobs);
    jobs = NULL;
}

/* Allocates scratch[0 .. n-1], by build_threads threads when above 1. */
static void alloc_scratch(long n) {
    scratch = (MNode **)bk_alloc_ptrs((size_t)n);
    if (build_threads > 1) {
        run_workers('g', n);
    } else {
        for (long i = 0; i < n; i++)
            scratch[i] = new_node((uint64_t)i);
    }
}

/* Allocates n nodes, then wires node perm[i] to perm[2i+1], perm[2i+2] and
 * a random node. The scratch array keeps them reachable while wiring. */
static __attribute__((noinline)) void build_graph(long n) {
    alloc_scratch(n);
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

static __attribute__((noinline)) void build_list(long n) {
    long half = n / 2;
    if (build_threads > 1) {
        /* Nodes from the threads; the list links them in reverse order of
         * allocation, as the one-thread build does. */
        alloc_scratch(n);
        MNode *head = NULL;
        for (long i = 0; i < half; i++) {
            scratch[i]->a = head;
            head = scratch[i];
        }
        root = head;
        wide = (MNode **)bk_alloc_ptrs((size_t)(n - half));
        for (long i = 0; i < n - half; i++)
            wide[i] = scratch[half + i];
        bk_free(scratch);
        scratch = NULL;
        return;
    }
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

static __attribute__((noinline)) void build(char shape, long n) {
    if (shape == 't') {
        if (build_threads > 1) {
            build_tree_threads(n);
        } else {
            uint64_t next_id = 0;
            root = build_tree(n, &next_id);
        }
    } else if (shape == 'g') {
        build_graph(n);
    } else {
        build_list(n);
    }
}

/* Overwrites the stack below the caller's frame, where the build left
 * pointers (the graph's scratch array, nodes); a conservative stack scan
 * would otherwise find them and keep e.g. the scratch array alive, which
 * turns the random graph into an array of nodes traced in allocation order.
 * The build functions are not inlined, so no pointer of theirs stays in
 * main's frame. */
static __attribute__((noinline)) void clear_stack(void) {
    volatile uint64_t junk[32768];
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        junk[i] = 0;
}

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    bench_start(argc, argv,
                "--shape tree|graph|list [--objects 4000000] [--collections 5] "
                "[--build-threads 1]");
    const char *shape = bench_opt_str("--shape", "tree");
    long n = bench_opt_long("--objects", 4000000);
    long collections = bench_opt_long("--collections", 5);
    build_threads = bench_opt_long("--build-threads", 1);
    if (n < 2 || n > 0x7fffffffL || collections < 1 || collections > 1000 ||
        build_threads < 1 || build_threads > 64)
        bench_fail("mark-live: option out of range");
    if (strcmp(shape, "tree") != 0 && strcmp(shape, "graph") != 0 && strcmp(shape, "list") != 0)
        bench_fail("mark-live: unknown shape '%s'", shape);

    bk_init((unsigned)build_threads);
    MNODE = bk_node_type("mark-live-node", sizeof(MNode), 3);
    bk_root_add((void **)&root);
    bk_root_add((void **)&wide);
    bk_root_add((void **)&scratch);

    build(shape[0], n);
    clear_stack();
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

    char name[32], extra[200];
    snprintf(name, sizeof name, "mark-%s", shape);
    snprintf(extra, sizeof extra,
             "objects=%ld mark_ms=%.2f mark_min_ms=%.2f mark_mobj_s=%.1f build_threads=%ld", n,
             (double)median / 1e6, (double)best / 1e6,
             median > 0 ? (double)n / ((double)median / 1e9) / 1e6 : 0.0, build_threads);
    bench_result(name, 1, extra);
    bk_print_marker_stats();
    return 0;
}
