/* test_page_batch_disabled.c — page batches while collection is disabled
 * (rudo.h, rudo_disable: "the heap grows; when it reaches max_heap ...
 * takes the out-of-memory path"). No collection returns stashed pages
 * then, so the heap-full path gives back the thread's own stashes (empty
 * ones to the free pool) before it reports the heap full. Before that,
 * with RUDO_PAGE_BATCH=8, large objects of 1 MiB under a 16 MiB max_heap
 * met NULL after 10 (84 empty pages, 5.25 MiB, sat in the stashes of the
 * 12 size classes used before), against 15 with batches of 1. Run as is
 * and with RUDO_PAGE_BATCH=8 (tests/CMakeLists.txt). Written by the
 * review of the page batches. */
#include <stdio.h>

#include "rudo.h"
#include "testlib.h"

int main(void) {
    rudo_config cfg = test_precise_config(1);
    cfg.initial_heap = (size_t)64 << 20; /* no automatic collection */
    cfg.max_heap = (size_t)16 << 20;     /* 256 pages */
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    rudo_kind k = rudo_kind_atomic("small");
    /* One object in each of 12 classes: 12 refills, each of which may take
     * a batch (the cap, 1/16 of the room left, is above 8 here). */
    static const size_t sizes[] = {16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256};
    for (unsigned i = 0; i < sizeof sizes / sizeof *sizes; i++)
        CHECK(rudo_alloc(k, sizes[i]) != NULL);
    rudo_disable();
    size_t got = 0;
    while (rudo_alloc(k, (size_t)1 << 20))
        got++;
    rudo_enable();
    printf("1 MiB objects before NULL: %zu (16 MiB limit, 12 small pages in use)\n", got);
    /* 12 small pages and 16 per 1 MiB object: 15 fit (252 of 256 pages);
     * with batches of 8 the 12 refills took 96 pages, 84 of them stashed
     * and empty, and 10 fit. */
    CHECK(got >= 13);
    rudo_heap_destroy();
    return test_report();
}
