/*
 * barrier.c — the cost of the write barrier on a store-heavy loop.
 *
 * An old array of --slots pointer slots (a heap object) is overwritten
 * --stores times with pointers to a few heap nodes, in a pseudo-random
 * order, by four loops of the same shape:
 *   plain     a plain store (what the malloc backends and bdwgc do);
 *   barrier   bk_write (rudo: rudo_write, the store plus an unconditional
 *             card mark: shift, mask, byte store);
 *   filtered  rudo only: the card mark only if the slot is in the heap's
 *             range (a compare and a branch more);
 *   value     rudo only: the card mark only if the stored value and the
 *             slot are in the heap (filtering on the value too).
 * Each loop is a separate noinline function, so callgrind attributes its
 * instructions (docs/performance.md). No allocation happens in the loops.
 */
#include "backend.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct Node {
    struct Node *next;
    uint64_t val;
} Node;

static void **arr;
static Node *nodes[16];

#define STEP(i) (((i) * 2654435761u) & mask)

static __attribute__((noinline)) void loop_plain(size_t mask, long stores) {
    for (long i = 0; i < stores; i++)
        arr[STEP((size_t)i)] = nodes[i & 15];
}

static __attribute__((noinline)) void loop_barrier(size_t mask, long stores) {
    for (long i = 0; i < stores; i++)
        bk_write(arr, &arr[STEP((size_t)i)], nodes[i & 15]);
}

#if defined(BK_RUDO)
/* The variants rudo does not use, measured against it: both check that
 * the slot is in the heap's range (the first design of the barrier). */
static struct {
    uintptr_t base, size;
    uint8_t *cards;
} filt;

static __attribute__((noinline)) void loop_filtered(size_t mask, long stores) {
    for (long i = 0; i < stores; i++) {
        void **slot = &arr[STEP((size_t)i)];
        *slot = nodes[i & 15];
        uintptr_t off = (uintptr_t)slot - filt.base;
        if (off < filt.size)
            __atomic_store_n(&filt.cards[off >> RUDO_CARD_SHIFT], 1, __ATOMIC_RELAXED);
    }
}

static __attribute__((noinline)) void loop_value(size_t mask, long stores) {
    for (long i = 0; i < stores; i++) {
        void **slot = &arr[STEP((size_t)i)];
        void *v = nodes[i & 15];
        *slot = v;
        uintptr_t off = (uintptr_t)slot - filt.base;
        if ((uintptr_t)v - filt.base < filt.size && off < filt.size)
            __atomic_store_n(&filt.cards[off >> RUDO_CARD_SHIFT], 1, __ATOMIC_RELAXED);
    }
}
#endif

static double time_ns(void (*fn)(size_t, long), size_t mask, long stores) {
    uint64_t t = bench_now_ns();
    fn(mask, stores);
    return (double)(bench_now_ns() - t) / (double)stores;
}

int main(int argc, char **argv) {
    bench_start(argc, argv, "[--slots 65536] [--stores 200000000]");
    long slots = bench_opt_long("--slots", 65536);
    long stores = bench_opt_long("--stores", 200000000);
    if (slots < 16 || (slots & (slots - 1)) || stores < 1)
        bench_fail("barrier: --slots a power of two >= 16, --stores >= 1");
    bk_init(1);
    bk_type NODE = bk_node_type("barrier-node", sizeof(Node), 1);
    arr = bk_alloc_ptrs((size_t)slots);
    bk_root_add((void **)&arr);
    for (int i = 0; i < 16; i++) {
        nodes[i] = bk_alloc(NODE);
        nodes[i]->val = (uint64_t)i;
        bk_root_add((void **)&nodes[i]);
    }
    if (BK_GC)
        bk_collect(); /* the array and the nodes are old now */
    size_t mask = (size_t)slots - 1;
#if defined(BK_RUDO)
    /* The heap's range, from the card mask: a power of two aligned to its
     * size (heap.c). */
    filt.size = (rudo__barrier.mask + 1) << RUDO_CARD_SHIFT;
    filt.base = (uintptr_t)arr & ~(filt.size - 1);
    filt.cards = rudo__barrier.cards;
#endif
    /* Warm up, then the loops; the best of three of each. */
    loop_plain(mask, stores / 10);
    double best[4] = {1e9, 1e9, 1e9, 1e9};
    for (int r = 0; r < 3; r++) {
        double t = time_ns(loop_plain, mask, stores);
        best[0] = t < best[0] ? t : best[0];
        t = time_ns(loop_barrier, mask, stores);
        best[1] = t < best[1] ? t : best[1];
#if defined(BK_RUDO)
        t = time_ns(loop_filtered, mask, stores);
        best[2] = t < best[2] ? t : best[2];
        t = time_ns(loop_value, mask, stores);
        best[3] = t < best[3] ? t : best[3];
#endif
    }
    long sum = 0;
    for (long i = 0; i < slots; i++)
        sum += arr[i] ? (long)((Node *)arr[i])->val : 0;
    char extra[160];
    snprintf(extra, sizeof extra, "plain_ns=%.3f barrier_ns=%.3f filtered_ns=%.3f value_ns=%.3f "
             "check=%ld", best[0], best[1], best[2] < 1e9 ? best[2] : 0.0,
             best[3] < 1e9 ? best[3] : 0.0, sum);
    bench_result("barrier", 1, extra);
    return 0;
}
