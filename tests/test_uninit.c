/*
 * test_uninit.c — atomic kinds registered with RUDO_KIND_UNINIT.
 *
 * What rudo.h promises and this checks, for nine small sizes (16 B up to
 * RUDO_SMALL_MAX), two large ones (a one-page span and a four-page one),
 * and 1 and 3 markers (and generational mode, as test_uninit_gen):
 *  - the flag is refused, with a message, for kinds that are traced, and
 *    unknown flags are refused;
 *  - live objects of the kind keep every byte across collections;
 *  - objects made from memory that dead ones held come back unzeroed
 *    (the point of the flag: neither the sweep nor the page pool wrote
 *    them);
 *  - new objects never overlap live ones;
 *  - pages the kind gave up serve conservative and layout objects of the
 *    same sizes, and those are all zero (the free pool zeroes recycled
 *    memory);
 *  - rudo_realloc to a larger size keeps the old bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rudo.h"
#include "testlib.h"

static rudo_kind k_raw;

static rudo_kind uninit_kind(rudo_tracing t) {
    static const uint64_t layout = 1;
    rudo_kind_desc d = {.name = "uninit/raw", .tracing = t, .layout = &layout,
                        .layout_words = 1};
    return rudo_kind_register_flags(&d, RUDO_KIND_UNINIT);
}

static void make_heap(unsigned markers) {
    rudo_config cfg = test_precise_config(markers);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK); /* attaches this thread */
}

static void bad_tracing(void *arg) {
    make_heap(1);
    uninit_kind((rudo_tracing)(intptr_t)arg);
}

static void bad_flag(void *arg) {
    (void)arg;
    make_heap(1);
    rudo_kind_desc d = {.name = "uninit/bad", .tracing = RUDO_TRACE_ATOMIC};
    rudo_kind_register_flags(&d, 4u);
}

/* Does any byte of [p + from, p + n) differ from b? */
static bool differs(const void *p, size_t from, size_t n, unsigned char b) {
    const unsigned char *c = p;
    for (size_t i = from; i < n; i++)
        if (c[i] != b)
            return true;
    return false;
}

/* One size: objects of the kind, half dropped, the space reused. */
static void one_size(size_t size, rudo_kind k_cons, rudo_kind k_lay) {
    size_t n = 3 * 65536 / size + 8;
    void **keep = calloc(n, sizeof *keep);
    CHECK(keep != NULL);
    rudo_root_add_range(keep, keep + n);
    for (size_t i = 0; i < n; i++) {
        keep[i] = rudo_alloc(k_raw, size);
        CHECK(keep[i] != NULL);
        memset(keep[i], 0xa5, size);
    }
    for (size_t i = 1; i < n; i += 2)
        keep[i] = NULL;
    rudo_collect();
    size_t intact = 0, reused = 0, overlap = 0;
    for (size_t i = 0; i < n; i += 2)
        intact += !differs(keep[i], 0, size, 0xa5);
    CHECK_EQ(intact, (n + 1) / 2);
    /* The odd slots get new objects, written with another pattern. */
    for (size_t i = 1; i < n; i += 2) {
        keep[i] = rudo_alloc(k_raw, size);
        CHECK(keep[i] != NULL);
        /* Word 0 was the free-list link (cleared by the allocation). */
        reused += differs(keep[i], sizeof(void *), size, 0);
        memset(keep[i], 0x5a, size);
    }
    for (size_t i = 0; i < n; i += 2)
        overlap += differs(keep[i], 0, size, 0xa5);
    CHECK_EQ(overlap, (size_t)0);
    if (reused == 0)
        printf("size %zu: nothing reused\n", size);
    CHECK(reused > 0); /* dead objects' memory came back as it was */
    /* rudo_realloc keeps the bytes it had. */
    void *grown = rudo_realloc(keep[0], size + 100);
    CHECK(grown != NULL && !differs(grown, 0, size, 0xa5));
    keep[0] = grown;
    /* All dead: their pages go back to the free pool, then serve other
     * kinds, zeroed. */
    memset(keep, 0, n * sizeof *keep);
    rudo_collect();
    rudo_collect();
    size_t dirty = 0;
    for (size_t i = 0; i < n; i++) {
        keep[i] = rudo_alloc(i % 2 ? k_cons : k_lay, size);
        CHECK(keep[i] != NULL);
        dirty += differs(keep[i], 0, size, 0);
    }
    CHECK_EQ(dirty, (size_t)0);
    rudo_root_remove_range(keep);
    free(keep);
}

/* A heap per size: the free pool then holds only this size's spans, so a
 * large object's memory is found again by the next one (first fit). */
static void run(unsigned markers) {
    static const size_t sizes[] = {16, 24, 48, 100, 256, 1000, 4096, 20000,
                                   RUDO_SMALL_MAX, RUDO_SMALL_MAX + 1, 200000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        make_heap(markers);
        k_raw = uninit_kind(RUDO_TRACE_ATOMIC);
        CHECK_EQ(rudo_kind_of(rudo_alloc(k_raw, 16)), k_raw);
        rudo_kind k_cons = rudo_kind_conservative("uninit/cons");
        static const uint64_t all = 1;
        rudo_kind k_lay = rudo_kind_layout("uninit/lay", 1, &all);
        one_size(sizes[i], k_cons, k_lay);
        rudo_heap_destroy();
    }
}

int main(void) {
    expect_death("RUDO_KIND_UNINIT on a layout kind", bad_tracing,
                 (void *)(intptr_t)RUDO_TRACE_LAYOUT, "RUDO_KIND_UNINIT needs a RUDO_TRACE_ATOMIC");
    expect_death("RUDO_KIND_UNINIT on a conservative kind", bad_tracing,
                 (void *)(intptr_t)RUDO_TRACE_CONSERVATIVE,
                 "RUDO_KIND_UNINIT needs a RUDO_TRACE_ATOMIC");
    expect_death("unknown kind flag", bad_flag, NULL, "unknown flags 0x4");
    run(1);
    run(3);
    return test_report();
}
