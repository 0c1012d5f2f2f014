/* test_max_heap_cap.c — rudo_set_max_heap_cap against rudo_set_max_heap
 * (rudo.h): with 64 MiB as a budget the trigger waits for the room left
 * under it, so a program with 1 MiB live allocating 96 MiB of garbage
 * collects a few times and its heap grows toward the bound; as a cap the
 * growth rule keeps collecting (many more collections, a peak heap far
 * below the bound), in flat and generational mode. The bound still holds:
 * with 1 MiB live under a 4 MiB cap, allocation never grows the heap
 * past it. rudo_set_max_heap makes it a budget again. Precise setup.
 *
 * The triggers the last collections set are checked too (the room under
 * the budget; the growth rule under the cap). In GC stress mode
 * (RUDO_GC_STRESS) a collection every few allocations restarts the
 * count long before either trigger, so both churns collect as often and
 * peak alike: only those trigger checks then say budget from cap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heap/heap.h"
#include "rudo.h"
#include "testlib.h"

#define MIB ((size_t)1 << 20)

static void *live;

/* The bytes of allocation at which the next collection starts, as the
 * last collection set it. */
static uint64_t trigger_now(void) {
    return atomic_load_explicit(&rudo__the_heap->trigger, memory_order_relaxed);
}

/* Collections run while allocating `total` bytes of 4 KiB garbage, and
 * the heap's peak, in *peak. */
static uint64_t churn(size_t total, size_t *peak) {
    rudo_stats a, b;
    rudo_get_stats(&a);
    for (size_t n = 0; n < total; n += 4096) {
        char *p = rudo_alloc(RUDO_KIND_ATOMIC, 4096);
        CHECK(p != NULL);
        if (!p)
            break;
        p[0] = 1;
    }
    rudo_get_stats(&b);
    *peak = b.heap_peak_bytes;
    return b.collections - a.collections;
}

static void run(bool generational) {
    rudo_config cfg = test_precise_config(1);
    cfg.generational = generational;
    cfg.initial_heap = 2 * MIB;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    rudo_root_add(&live);
    live = rudo_alloc(RUDO_KIND_ATOMIC, MIB);
    size_t peak_budget, peak_cap;
    CHECK_EQ(rudo_set_max_heap(64 * MIB), RUDO_OK);
    uint64_t budget = churn(96 * MIB, &peak_budget);
    uint64_t trigger_budget = trigger_now();
    rudo_heap_destroy();

    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    rudo_root_add(&live);
    live = rudo_alloc(RUDO_KIND_ATOMIC, MIB);
    CHECK_EQ(rudo_set_max_heap_cap(64 * MIB), RUDO_OK);
    uint64_t cap = churn(96 * MIB, &peak_cap);
    uint64_t trigger_cap = trigger_now();
    if (test_env_long("TEST_VERBOSE", 0))
        printf("gen %d: budget %llu collections, peak %zu, trigger %llu; cap %llu, peak %zu, "
               "trigger %llu\n",
               generational, (unsigned long long)budget, peak_budget,
               (unsigned long long)trigger_budget, (unsigned long long)cap, peak_cap,
               (unsigned long long)trigger_cap);
    if (!test_stress_on()) {
        CHECK(cap >= 2 * budget && cap >= 8);
        CHECK(peak_budget > 24 * MIB);
    }
    CHECK(peak_cap < 16 * MIB);
    CHECK(trigger_budget >= 2 * trigger_cap);
    CHECK(trigger_cap < 16 * MIB);
    CHECK(trigger_budget > 24 * MIB);
    /* The cap still bounds the heap. */
    CHECK_EQ(rudo_set_max_heap_cap(4 * MIB), RUDO_OK);
    size_t peak_small;
    rudo_collect();
    churn(32 * MIB, &peak_small);
    rudo_stats s;
    rudo_get_stats(&s);
    CHECK(s.heap_bytes <= 4 * MIB);
    /* A budget again: the next trigger waits for the room under it. */
    CHECK_EQ(rudo_set_max_heap(64 * MIB), RUDO_OK);
    rudo_collect();
    size_t peak_again;
    uint64_t again = churn(48 * MIB, &peak_again);
    CHECK(again <= budget + 1);
    CHECK(trigger_now() > 24 * MIB);
    rudo_root_remove(&live);
    rudo_heap_destroy();
}

int main(void) {
    run(false);
    run(true);
    return test_report();
}
