/*
 * barrier.c — the cost of the write barrier on a store-heavy loop.
 *
 * An old array of --slots pointer slots (a heap object) is overwritten
 * --stores times with pointers to a few heap nodes, in a pseudo-random
 * order, by four loops of the same shape:
 *   plain     a plain store (what the malloc backends and bdwgc do);
 *   barrier   bk_write (rudo: rudo_write, the store plus the filtered card
 *             mark: one compare against the heap's range);
 *   uncond    rudo only: the store plus an unconditional card mark (no
 *             range check: valid only for slots inside the heap);
 *   value     rudo only: the card mark only when the stored value is a
 *             heap pointer (filtering on the value, as well as the slot).
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
static __attribute__((noinline)) void loop_uncond(size_t mask, long stores) {
    uint8_t *bias = rudo__barrier.cards - (rudo__barrier.base >> RUDO_CARD_SHIFT);
    for (long i = 0; i < stores; i++) {
        void **slot = &arr[STEP((size_t)i)];
        *slot = nodes[i & 15];
        __atomic_store_n(&bias[(uintptr_t)slot >> RUDO_CARD_SHIFT], 1, __ATOMIC_RELAXED);
    }
}

static __attribute__((noinline)) void loop_value(size_t mask, long stores) {
    for (long i = 0; i < stores; i++) {
        void **slot = &arr[STEP((size_t)i)];
        void *v = nodes[i & 15];
        *slot = v;
        if ((uintptr_t)v - rudo__barrier.base < rudo__barrier.size)
            rudo__card_mark(slot);
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
    /* Warm up, then the loops; the best of three of each. */
    loop_plain(mask, stores / 10);
    double best[4] = {1e9, 1e9, 1e9, 1e9};
    for (int r = 0; r < 3; r++) {
        double t = time_ns(loop_plain, mask, stores);
        best[0] = t < best[0] ? t : best[0];
        t = time_ns(loop_barrier, mask, stores);
        best[1] = t < best[1] ? t : best[1];
#if defined(BK_RUDO)
        if (rudo__barrier.size) {
            t = time_ns(loop_uncond, mask, stores);
            best[2] = t < best[2] ? t : best[2];
        }
        t = time_ns(loop_value, mask, stores);
        best[3] = t < best[3] ? t : best[3];
#endif
    }
    long sum = 0;
    for (long i = 0; i < slots; i++)
        sum += arr[i] ? (long)((Node *)arr[i])->val : 0;
    char extra[160];
    snprintf(extra, sizeof extra, "plain_ns=%.3f barrier_ns=%.3f uncond_ns=%.3f value_ns=%.3f "
             "check=%ld", best[0], best[1], best[2] < 1e9 ? best[2] : 0.0,
             best[3] < 1e9 ? best[3] : 0.0, sum);
    bench_result("barrier", 1, extra);
    return 0;
}
