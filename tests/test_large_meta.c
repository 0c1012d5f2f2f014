/* test_large_meta.c — a large object's bookkeeping does not grow with its
 * page count in resident memory.
 *
 * A 48 GiB object (8 GiB where the reservation is smaller) spans hundreds
 * of thousands of 64 KiB pages. Allocating it, collecting with it live,
 * finding its base from an interior pointer near its end, and freeing it
 * must add little resident memory: the side table costs 4 bytes a page
 * (3 MiB for 48 GiB), where a descriptor per page cost 1.6 KiB (1.2 GB).
 * Its pages are reused afterwards, for small and large objects alike. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

/* Resident set size of the process, in bytes. */
static size_t rss(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

int main(void) {
    rudo_config cfg = test_precise_config(0);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    static void *big;
    rudo_root_add(&big);

    size_t before = rss();
    size_t size = (size_t)48 << 30;
    big = rudo_malloc_atomic(size);
    if (!big) { /* a smaller reservation (ulimit -v, sanitizers) */
        size = (size_t)8 << 30;
        big = rudo_malloc_atomic(size);
    }
    CHECK(big != NULL);
    if (!big)
        return test_report();
    size_t pages = size >> 16;
    char *end = (char *)big + size - 1;
    *end = 42; /* touches one page of the object */
    CHECK(rudo_base(end) == big);
    CHECK(rudo_base((char *)big + size / 2 + 12345) == big);
    CHECK(rudo_size(big) == size);
    rudo_collect();
    CHECK(rudo__debug_is_marked(big));
    CHECK(rudo_base(end) == big);
    CHECK_EQ(*end, 42);
    size_t grown = rss() - before;
    printf("%zu GiB object (%zu pages): resident memory grew by %zu KiB\n",
           size >> 30, pages, grown >> 10);
    /* 4 bytes a page of side table, plus the touched pages; 1.6 KiB a
     * page (what a descriptor each would cost) is far above. */
    CHECK(grown < pages * 16 + ((size_t)8 << 20));

    /* Freed: its pages go back and are reused. */
    big = NULL;
    rudo_collect();
    rudo_stats st;
    rudo_get_stats(&st);
    CHECK(st.heap_bytes < ((size_t)64 << 20));
    CHECK(rudo_base(end) == NULL);
    static void *list;
    rudo_root_add(&list);
    for (int i = 0; i < 100000; i++) {
        void **x = rudo_malloc(64);
        CHECK(x != NULL);
        x[0] = list;
        list = x;
    }
    void *mid = rudo_malloc_atomic((size_t)1 << 30);
    CHECK(mid != NULL);
    CHECK(rudo_base((char *)mid + ((size_t)1 << 29)) == mid);
    rudo_collect();
    CHECK(rudo_base((char *)mid + ((size_t)1 << 29)) == NULL); /* it died */
    size_t n = 0;
    for (void **x = list; x; x = x[0])
        n++;
    CHECK_EQ(n, (size_t)100000);
    printf("resident after: %zu MiB\n", rss() >> 20);
    rudo_root_remove(&list);
    rudo_root_remove(&big);
    rudo_heap_destroy();
    return test_report();
}
