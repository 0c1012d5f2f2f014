/* test_roots_unaligned.c — "every aligned word inside [start, end) is a
 * root" (rudo.h, rudo_root_add_range), for ranges whose start and end are
 * not word-aligned and which are long enough to be cut into several
 * marking tasks (the collector cuts ranges into 16 KiB chunks: a chunk
 * boundary inside a word once lost that word).
 *
 * Every aligned word wholly inside the range points to its own object;
 * the word that straddles each end does not count. Precise setup (no
 * stack or static-data scanning): the range is the only root. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

#define RANGE (64 * 1024 + 32)

static void one_case(size_t k_start, size_t k_end) {
    /* Room for the range plus one word on each side. */
    char *buf = aligned_alloc(16, RANGE + 64);
    memset(buf, 0, RANGE + 64);
    char *lo = buf + 16 + k_start, *hi = buf + 16 + RANGE - k_end;
    uintptr_t first = ((uintptr_t)lo + 7) & ~(uintptr_t)7;
    size_t nwords = 0;
    for (uintptr_t a = first; a + 8 <= (uintptr_t)hi; a += 8)
        nwords++;
    void **objs = malloc(nwords * sizeof *objs);
    /* Registered first, so that every object is a root from the moment
     * it is written there: under GC stress mode a collection runs inside
     * the allocations below. */
    rudo_root_add_range(lo, hi);
    size_t i = 0;
    for (uintptr_t a = first; a + 8 <= (uintptr_t)hi; a += 8, i++) {
        objs[i] = rudo_malloc_atomic(16);
        memcpy((void *)a, &objs[i], sizeof(void *));
    }
    /* A pointer in the word that straddles the end: not a root. */
    uintptr_t straddle = (((uintptr_t)hi) & ~(uintptr_t)7);
    void *outside = NULL;
    if (straddle < (uintptr_t)hi && straddle + 8 > (uintptr_t)hi) {
        outside = rudo_malloc_atomic(16);
        memcpy((void *)straddle, &outside, sizeof(void *));
    }
    rudo_collect();
    size_t lost = 0, first_lost = SIZE_MAX;
    for (i = 0; i < nwords; i++) {
        if (!rudo__debug_is_marked(objs[i])) {
            if (first_lost == SIZE_MAX)
                first_lost = (size_t)((uintptr_t)first + 8 * i - (uintptr_t)lo);
            lost++;
        }
    }
    if (lost)
        fprintf(stderr, "range +%zu/-%zu: %zu of %zu objects lost, first at byte %zu\n",
                k_start, k_end, lost, nwords, first_lost);
    CHECK_EQ(lost, (size_t)0);
    if (outside)
        CHECK(!rudo__debug_is_marked(outside));
    CHECK_EQ(rudo_root_remove_range(lo), RUDO_OK);
    free(objs);
    free(buf);
}

int main(void) {
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.scan_stacks = false;
    cfg.scan_static_data = false;
    for (unsigned markers = 1; markers <= 3; markers += 2) {
        cfg.markers = markers;
        CHECK(rudo_heap_create(&cfg) == RUDO_OK);
        for (size_t ks = 0; ks < 8; ks++)
            for (size_t ke = 0; ke < 8; ke += 3)
                one_case(ks, ke);
        rudo_heap_destroy();
    }
    return test_report();
}
