/*
 * alloc_rate.c — allocation-rate microbenchmark: small objects of mixed
 * sizes, most of them short-lived.
 *
 * Half the objects are nodes (32 to 128 bytes, two pointer words; a quarter
 * of them own a 16-64 byte blob through their first word), half are blobs of
 * 8 to 256 bytes (one in 64 of them 512 to 4096 bytes). Every new object
 * enters a window of the 16 most recent objects; the one it pushes out dies,
 * except one in 16, which moves to a ring of --ring slots and dies when the
 * ring comes round again (about ring * 16 allocations later). Each object
 * carries a stamp that is checked when it dies. Pointer stores into objects
 * that may have survived a collection go through bk_write (generational
 * mode).
 */
#include "backend.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

#define WINDOW 16
#define N_NODE_TYPES 5

typedef struct Item {
    void *obj;
    uint64_t stamp;
    int type; /* -1: blob; else index into node_types */
} Item;

/* A node: an owned blob (or NULL), a spare pointer word, then data. */
typedef struct Node {
    void *child;
    void *spare;
    uint64_t stamp;
} Node;

static const size_t node_sizes[N_NODE_TYPES] = {32, 48, 64, 96, 128};
static bk_type node_types[N_NODE_TYPES];

/* The ring of survivors (a pointer array in the measured heap, rooted). */
static void **ring;
/* Stamp and type of each ring entry (plain data, outside the heap). */
static Item *ring_meta;

static Item make_item(bench_rng *rng, uint64_t stamp) {
    uint64_t r = bench_rand(rng);
    Item it = {.stamp = stamp};
    if (r & 1) {
        it.type = (int)((r >> 1) % N_NODE_TYPES);
        Node *n = bk_alloc(node_types[it.type]);
        n->spare = NULL;
        n->stamp = stamp;
        if (((r >> 8) & 3) == 0) {
            size_t cs = 16 + 8 * ((r >> 10) % 7);
            uint64_t *c = bk_alloc_blob(cs);
            c[0] = ~stamp;
            /* After an allocation (the blob's), so through the barrier. */
            bk_write(n, &n->child, c);
        } else {
            n->child = NULL;
        }
        it.obj = n;
    } else {
        it.type = -1;
        size_t size = 8 + 8 * ((r >> 1) % 32);
        if (((r >> 16) & 63) == 0)
            size = 512 + 8 * ((r >> 22) % 449);
        uint64_t *b = bk_alloc_blob(size);
        b[0] = stamp;
        b[size / 8 - 1] = stamp;
        it.obj = b;
    }
    return it;
}

/* Checks the stamp of a dying object, then frees it (malloc backends). */
static void kill_item(Item it) {
    if (it.type >= 0) {
        Node *n = it.obj;
        if (n->stamp != it.stamp || n->spare != NULL)
            bench_fail("alloc-rate: node stamp %llx, expected %llx",
                       (unsigned long long)n->stamp, (unsigned long long)it.stamp);
        if (n->child != NULL) {
            if (((uint64_t *)n->child)[0] != ~it.stamp)
                bench_fail("alloc-rate: child blob corrupted");
            bk_free(n->child);
        }
    } else if (((uint64_t *)it.obj)[0] != it.stamp) {
        bench_fail("alloc-rate: blob stamp %llx, expected %llx",
                   (unsigned long long)((uint64_t *)it.obj)[0], (unsigned long long)it.stamp);
    }
    bk_free(it.obj);
}

int main(int argc, char **argv) {
    bench_start(argc, argv, "[--count 30000000] [--ring 65536]");
    long count = bench_opt_long("--count", 30000000);
    long ring_size = bench_opt_long("--ring", 65536);
    if (count < 1 || ring_size < 1)
        bench_fail("alloc-rate: option out of range");

    bk_init(1);
    for (int i = 0; i < N_NODE_TYPES; i++)
        node_types[i] = bk_node_type("alloc-rate-node", node_sizes[i], 2);
    ring = bk_alloc_ptrs((size_t)ring_size);
    bk_root_add((void **)&ring);
    ring_meta = calloc((size_t)ring_size, sizeof *ring_meta);
    if (ring_meta == NULL)
        bench_fail("out of memory");

    bench_rng rng = {0x9E3779B97F4A7C15ULL};
    /* The window lives on the stack, which the collectors scan. */
    Item window[WINDOW] = {{0}};
    long ring_pos = 0;
    for (long i = 0; i < count; i++) {
        Item it = make_item(&rng, (uint64_t)i * 0x9E3779B97F4A7C15ULL + 1);
        int w = (int)(i % WINDOW);
        Item old = window[w];
        window[w] = it;
        if (old.obj == NULL)
            continue;
        if ((bench_rand(&rng) & 15) == 0) {
            Item dead = ring_meta[ring_pos];
            bk_write(ring, &ring[ring_pos], old.obj);
            ring_meta[ring_pos] = old;
            if (dead.obj != NULL)
                kill_item(dead);
            ring_pos = ring_pos + 1 == ring_size ? 0 : ring_pos + 1;
        } else {
            kill_item(old);
        }
    }
    for (int w = 0; w < WINDOW; w++) {
        if (window[w].obj != NULL)
            kill_item(window[w]);
    }
    for (long r = 0; r < ring_size; r++) {
        if (ring_meta[r].obj != NULL)
            kill_item(ring_meta[r]);
        ring[r] = NULL;
    }
    char extra[96];
    snprintf(extra, sizeof extra, "allocs=%ld", count);
    bench_result("alloc-rate", 1, extra);
    return 0;
}
