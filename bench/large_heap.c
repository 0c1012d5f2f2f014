/*
 * large_heap.c — a steady large live heap with churn, to show pause times.
 *
 * A table of records is built until about --live-mib MiB are live; each
 * record is a 32-byte node holding a binary tree of depth --tree-depth
 * (32-byte nodes) and a blob of 256 to 2048 bytes. Then records are replaced
 * at random positions, --churn times the table size in total, so the live
 * size stays level while the program allocates churn * live bytes. Each
 * dropped record is checked (stamps in every node and at both ends of the
 * blob) on its way out, and the whole table at the end.
 */
#include "backend.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct TNode {
    struct TNode *left, *right;
    uint64_t stamp;
    uint64_t pad;
} TNode;

typedef struct Record {
    TNode *tree;
    uint64_t *blob;
    uint64_t stamp;
    uint64_t blob_words;
} Record;

static bk_type TNODE, RECORD;
static int tree_depth;
static Record **table; /* in the measured heap, rooted */
static uint64_t *table_stamp; /* expected stamps, outside the heap */

static TNode *make_tree(int depth, uint64_t stamp) {
    TNode *n = bk_alloc(TNODE);
    n->stamp = stamp;
    n->pad = 0;
    bk_write(n, &n->left, depth > 0 ? make_tree(depth - 1, stamp) : NULL);
    bk_write(n, &n->right, depth > 0 ? make_tree(depth - 1, stamp) : NULL);
    return n;
}

static Record *make_record(bench_rng *rng, uint64_t stamp) {
    Record *r = bk_alloc(RECORD);
    r->stamp = stamp;
    r->blob = NULL;
    bk_write(r, &r->tree, make_tree(tree_depth, stamp));
    size_t words = 32 + bench_rand_below(rng, 225); /* 256 .. 2048 bytes */
    uint64_t *b = bk_alloc_blob(words * sizeof(uint64_t));
    b[0] = stamp;
    b[words - 1] = ~stamp;
    bk_write(r, &r->blob, b);
    r->blob_words = words;
    return r;
}

/* Checks a tree; frees it when the backend needs that. Returns its size. */
static long check_tree(TNode *n, uint64_t stamp, int drop) {
    long c = 0;
    while (n != NULL) {
        if (n->stamp != stamp)
            bench_fail("large-heap: tree node stamp %llx, expected %llx",
                       (unsigned long long)n->stamp, (unsigned long long)stamp);
        c += 1 + check_tree(n->left, stamp, drop);
        TNode *next = n->right;
        if (drop)
            bk_free(n);
        n = next;
    }
    return c;
}

static void check_record(Record *r, uint64_t stamp, int drop) {
    if (r->stamp != stamp)
        bench_fail("large-heap: record stamp %llx, expected %llx",
                   (unsigned long long)r->stamp, (unsigned long long)stamp);
    if (r->blob[0] != stamp || r->blob[r->blob_words - 1] != ~stamp)
        bench_fail("large-heap: blob corrupted");
    long c = check_tree(r->tree, stamp, drop);
    if (c != (2L << tree_depth) - 1)
        bench_fail("large-heap: tree has %ld nodes", c);
    if (drop) {
        bk_free(r->blob);
        bk_free(r);
    }
}

int main(int argc, char **argv) {
    bench_start(argc, argv, "[--live-mib 256] [--churn 3] [--tree-depth 4]");
    long live_mib = bench_opt_long("--live-mib", 256);
    long churn = bench_opt_long("--churn", 3);
    tree_depth = (int)bench_opt_long("--tree-depth", 4);
    if (live_mib < 1 || churn < 0 || tree_depth < 0 || tree_depth > 16)
        bench_fail("large-heap: option out of range");

    bk_init(1);
    TNODE = bk_node_type("large-heap-tnode", sizeof(TNode), 2);
    RECORD = bk_node_type("large-heap-record", sizeof(Record), 2);

    /* Mean record: the node, the tree, a blob of 1152 bytes on average. */
    long record_bytes = (long)sizeof(Record) + ((2L << tree_depth) - 1) * (long)sizeof(TNode) + 1152;
    long n = live_mib * 1048576L / record_bytes;
    if (n < 1)
        n = 1;
    table = (Record **)bk_alloc_ptrs((size_t)n);
    bk_root_add((void **)&table);
    table_stamp = malloc((size_t)n * sizeof *table_stamp);
    if (table_stamp == NULL)
        bench_fail("out of memory");

    bench_rng rng = {0x2545F4914F6CDD1DULL};
    uint64_t next_stamp = 1;
    for (long i = 0; i < n; i++) {
        table_stamp[i] = next_stamp;
        bk_write(table, &table[i], make_record(&rng, next_stamp++));
    }
    long replacements = churn * n;
    int drop = bk_must_free();
    for (long k = 0; k < replacements; k++) {
        long i = (long)bench_rand_below(&rng, (uint64_t)n);
        Record *old = table[i];
        table[i] = NULL;
        check_record(old, table_stamp[i], drop);
        table_stamp[i] = next_stamp;
        bk_write(table, &table[i], make_record(&rng, next_stamp++));
    }
    for (long i = 0; i < n; i++) {
        check_record(table[i], table_stamp[i], drop);
        table[i] = NULL;
    }
    char extra[96];
    snprintf(extra, sizeof extra, "records=%ld live_mib=%ld churn=%ld", n, live_mib, churn);
    bench_result("large-heap", 1, extra);
    return 0;
}
