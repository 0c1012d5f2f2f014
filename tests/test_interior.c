/* test_interior.c — base-pointer-only marking, with precise roots only (no
 * stack or static scanning) plus one conservative root range the test
 * fills, so what survives is exactly what the test points at. Weak slots
 * tell which objects a collection kept.
 *  - by default, a conservative word pointing inside an object keeps it;
 *  - with interior_pointers false (config or RUDO_INTERIOR_POINTERS=0),
 *    only the base or base + a registered displacement does, in root
 *    ranges and in objects of conservative kinds;
 *  - RUDO_KIND_BASE_ONLY layout and callback kinds: an interior value in
 *    a field does not keep its object, a base does; other kinds' fields
 *    keep it either way;
 *  - misuse: flags on the wrong kind, unknown flags, bad displacements. */
#include <stdlib.h>
#include <string.h>

#include "heap/heap.h"
#include "rudo.h"
#include "testlib.h"

#define N 16

static void **range;  /* malloc'd, registered as a conservative range */
static void **weak;   /* malloc'd: weak slots, one per target */

static void *target(size_t i) {
    void *p = rudo_malloc_atomic(64);
    weak[i] = p;
    CHECK_EQ(rudo_weak_register(&weak[i]), RUDO_OK);
    return p;
}

static void heap(bool interior) {
    rudo_config cfg = test_precise_config(0);
    cfg.interior_pointers = interior;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    range = calloc(N, sizeof *range);
    weak = calloc(N, sizeof *weak);
    rudo_root_add_range(range, range + N);
}

static void done(void) {
    rudo_root_remove_range(range);
    for (size_t i = 0; i < N; i++)
        rudo_weak_unregister(&weak[i]);
    free(range);
    free(weak);
    rudo_heap_destroy();
}

static bool kept(size_t i) { return weak[i] != NULL; }

/* Root-range words at offsets 0, 8, 24 and 63 into four objects. */
static void roots_case(bool interior, bool displaced24) {
    heap(interior);
    if (displaced24)
        CHECK_EQ(rudo_register_displacement(24), RUDO_OK);
    static const size_t off[4] = {0, 8, 24, 63};
    for (size_t i = 0; i < 4; i++)
        range[i] = (char *)target(i) + off[i];
    rudo_collect();
    CHECK(kept(0));
    CHECK(kept(1) == interior);
    CHECK(kept(2) == (interior || displaced24));
    CHECK(kept(3) == interior);
    done();
}

/* The same through an object of the conservative kind. */
static void conservative_kind_case(bool interior) {
    heap(interior);
    void **holder = rudo_malloc(4 * sizeof(void *));
    range[0] = holder;
    holder[0] = target(1);
    holder[1] = (char *)target(2) + 16;
    rudo_collect();
    CHECK(kept(1));
    CHECK(kept(2) == interior);
    done();
}

/* Precise kinds: fields 0 and 1 are pointers; field 0 holds a base, field
 * 1 an interior address. */
static rudo_kind kinds[4];

static void trace2(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    void **w = obj;
    rudo_visit(tr, &w[0]);
    rudo_visit(tr, &w[1]);
}

static void precise_case(bool interior_conservative) {
    heap(interior_conservative); /* the heap option must not matter here */
    static const uint64_t layout = 3;
    kinds[0] = rudo_kind_layout("layout", 4, &layout);
    rudo_kind_desc d = {.name = "layout-base", .tracing = RUDO_TRACE_LAYOUT,
                        .layout = &layout, .layout_words = 4};
    kinds[1] = rudo_kind_register_flags(&d, RUDO_KIND_BASE_ONLY);
    kinds[2] = rudo_kind_traced("traced", trace2);
    rudo_kind_desc t = {.name = "traced-base", .tracing = RUDO_TRACE_CALLBACK,
                        .trace = trace2};
    kinds[3] = rudo_kind_register_flags(&t, RUDO_KIND_BASE_ONLY);
    for (size_t k = 0; k < 4; k++) {
        void **holder = rudo_alloc(kinds[k], 4 * sizeof(void *));
        range[k] = holder;
        holder[0] = target(2 * k);
        holder[1] = (char *)target(2 * k + 1) + 32;
    }
    rudo_collect();
    for (size_t k = 0; k < 4; k++) {
        bool base_only = k == 1 || k == 3;
        CHECK(kept(2 * k));
        CHECK(kept(2 * k + 1) == !base_only);
    }
    /* A base-only slot with an address in a large object's tail pages, or
     * past its first page: ignored without a lookup of its span. */
    void **holder = range[1];
    char *big = rudo_malloc_atomic(3 * RUDO_PAGE_SIZE);
    weak[9] = big;
    CHECK_EQ(rudo_weak_register(&weak[9]), RUDO_OK);
    holder[1] = big + 2 * RUDO_PAGE_SIZE + 16;
    rudo_collect();
    CHECK(!kept(9));
    done();
}

static void env_case(void) {
    setenv("RUDO_INTERIOR_POINTERS", "0", 1);
    rudo_config cfg = test_precise_config(0);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    CHECK(!rudo__the_heap->cfg.interior_pointers);
    rudo_heap_destroy();
    unsetenv("RUDO_INTERIOR_POINTERS");
}

/* ---- misuse ---- */
static void flags_on_conservative(void *a) {
    (void)a;
    rudo_kind_desc d = {.name = "c", .tracing = RUDO_TRACE_CONSERVATIVE};
    rudo_kind_register_flags(&d, RUDO_KIND_BASE_ONLY);
}
static void unknown_flags(void *a) {
    (void)a;
    rudo_kind_desc d = {.name = "u", .tracing = RUDO_TRACE_ATOMIC};
    rudo_kind_register_flags(&d, 0x80);
}

int main(void) {
    for (int interior = 1; interior >= 0; interior--) {
        roots_case(interior, false);
        roots_case(interior, true);
        conservative_kind_case(interior);
        precise_case(interior);
    }
    env_case();

    heap(true);
    CHECK_EQ(rudo_register_displacement(0), RUDO_EINVAL);
    CHECK_EQ(rudo_register_displacement(RUDO_DISPLACEMENT_MAX), RUDO_EINVAL);
    CHECK_EQ(rudo_register_displacement(1), RUDO_OK);
    CHECK_EQ(rudo_register_displacement(1), RUDO_OK);
    expect_death("rudo_kind_register_flags: base-only conservative kind",
                 flags_on_conservative, NULL, "RUDO_KIND_BASE_ONLY needs");
    expect_death("rudo_kind_register_flags: unknown flags", unknown_flags, NULL,
                 "rudo_kind_register_flags: kind 'u': unknown flags");
    done();
    return test_report();
}
