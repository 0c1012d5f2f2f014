/* Address space: the heap reserves 64 GiB, and where that is refused
 * (ulimit -v, valgrind) it halves the request until it succeeds, down to
 * 1 GiB; the smaller heap works like the full one. */
#include <rudo.h>

#include "heap/heap.h"
#include "platform/platform.h"
#include "testlib.h"

static void use_heap(void) {
    void **keep = rudo_malloc(64 * sizeof(void *));
    for (int i = 0; i < 64; i++)
        keep[i] = rudo_malloc_atomic(1000);
    for (int i = 0; i < 100000; i++)
        (void)rudo_malloc(48); /* garbage */
    rudo_collect();
    int intact = 0;
    for (int i = 0; i < 64; i++)
        intact += rudo_is_heap_ptr(keep[i]) && rudo_size(keep[i]) >= 1000;
    CHECK(intact == 64);
}

int main(void) {
    CHECK(rudo_heap_create(NULL) == RUDO_OK);
    CHECK(rudo__the_heap->reserve == RUDO_RESERVE_DEFAULT);
    use_heap();
    rudo_heap_destroy();

    rudo__os_fail_next_reserve(); /* the first, 64 GiB request fails */
    CHECK(rudo_heap_create(NULL) == RUDO_OK);
    CHECK(rudo__the_heap->reserve == RUDO_RESERVE_DEFAULT / 2);
    CHECK(rudo__the_heap->npages == (RUDO_RESERVE_DEFAULT / 2) >> RUDO_PAGE_SHIFT);
    use_heap();
    rudo_heap_destroy();
    return test_report();
}
