/* test_free.c — rudo_free, with precise roots only (no stack scanning, so
 * what a collection keeps is exactly what the test roots).
 * Part 1 runs with the build's own verification setting (on in RUDO_DEBUG
 * builds), part 2 on a heap created with RUDO_VERIFY=1:
 *  - NULL is a no-op;
 *  - an object on a page no thread allocates from is free at once and its
 *    cell is the next one its size class hands out (without verification);
 *    with verification it is kept until the next collection, poisoned;
 *  - an object on the thread's current page is zeroed and reclaimed by the
 *    next collection;
 *  - a large object's pages go back at once (heap_bytes in rudo_get_stats);
 *  - kind and per-object finalizers of freed objects do not run;
 *  - interior, non-heap and double frees abort with messages; with
 *    verification, a heap object still referring to a freed one aborts
 *    the next collection naming both. */
#include <stdlib.h>
#include <string.h>

#include "heap/heap.h"
#include "rudo.h"
#include "testlib.h"

#define SMALL 48  /* a size class of its own kind below */
#define LARGE (1u << 20)

static rudo_kind k_small, k_fin;
static int kind_fin_runs, obj_fin_runs;

static void count_kind_fin(void *obj, void *data) {
    (void)obj;
    (void)data;
    kind_fin_runs++;
}
static void count_obj_fin(void *obj, void *data) {
    (void)obj;
    (void)data;
    obj_fin_runs++;
}

static bool verifying(void) { return rudo__the_heap->verify; }

static bool all_bytes(const void *p, size_t n, unsigned char b) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != b)
            return false;
    return true;
}

/* A rooted conservative array of n slots (the test's roots). */
static void **keep;
static void **roots(size_t n) {
    static void *root;
    rudo_root_add(&root);
    root = keep = rudo_malloc(n * sizeof(void *));
    return keep;
}

static void setup_kinds(void) {
    k_small = rudo_kind_atomic("free-small");
    k_fin = rudo_kind_atomic("free-fin");
    rudo_kind_set_finalizer(k_fin, count_kind_fin, NULL);
}

/* Fills one page of k_small exactly, collects (the page is then full and
 * not current), frees one object in it and allocates again. */
static void test_reuse(void) {
    size_t ncells = RUDO_PAGE_SIZE / SMALL;
    void **objs = roots(ncells);
    for (size_t i = 0; i < ncells; i++) {
        objs[i] = rudo_alloc(k_small, SMALL);
        memset(objs[i], 0x5a, SMALL);
    }
    rudo_collect();
    void *victim = objs[100];
    objs[100] = NULL;
    rudo_free(victim);
    if (!verifying()) {
        CHECK(!rudo_is_heap_ptr(victim));
        void *again = rudo_alloc(k_small, SMALL);
        CHECK(again == victim);
        CHECK(all_bytes(again, SMALL, 0)); /* zeroed, as any allocation */
        objs[100] = again;
    } else {
        /* Quarantined until the next collection: still allocated,
         * poisoned, not handed out. */
        CHECK(rudo_is_heap_ptr(victim));
        CHECK(all_bytes(victim, SMALL, RUDO_POISON_BYTE));
        rudo_stats st0, st1;
        rudo_get_stats(&st0);
        void *other = rudo_alloc(k_small, SMALL);
        rudo_get_stats(&st1);
        /* (A collection in that allocation, as in GC stress mode, ends
         * the quarantine.) */
        CHECK(other != victim || st1.collections != st0.collections);
        rudo_collect();
        CHECK(!rudo_is_heap_ptr(victim));
    }
    /* The others are intact. */
    size_t ok = 0;
    for (size_t i = 0; i < ncells; i++)
        ok += i == 100 || all_bytes(objs[i], SMALL, 0x5a);
    CHECK_EQ(ok, ncells);
    keep[0] = NULL;
    memset(keep, 0, ncells * sizeof(void *));
}

/* An object of the thread's current page: zeroed (or poisoned) at once,
 * reclaimed by the next collection. */
static void test_current(void) {
    char *a = rudo_alloc(k_small, SMALL);
    char *b = rudo_alloc(k_small, SMALL);
    keep[0] = b;
    memset(a, 0x77, SMALL);
    memset(b, 0x66, SMALL);
    rudo_free(a);
    CHECK(all_bytes(a, SMALL, verifying() ? RUDO_POISON_BYTE : 0));
    CHECK(rudo_is_heap_ptr(a)); /* until the next collection */
    rudo_collect();
    CHECK(!rudo_is_heap_ptr(a));
    CHECK(all_bytes(b, SMALL, 0x66));
    keep[0] = NULL;
}

static void test_large(void) {
    rudo_collect();
    rudo_stats mid, after;
    void *big = rudo_malloc_atomic(LARGE);
    CHECK(big != NULL);
    rudo_get_stats(&mid);
    rudo_free(big);
    if (verifying()) {
        CHECK(rudo_is_heap_ptr(big));
        rudo_collect();
    }
    CHECK(!rudo_is_heap_ptr(big));
    rudo_get_stats(&after);
    /* Its tail pages (all but the first, which waits in the free pool)
     * are returned to the OS at once. */
    CHECK(after.heap_bytes + LARGE - RUDO_PAGE_SIZE <= mid.heap_bytes);
}

static void test_finalizers(void) {
    kind_fin_runs = obj_fin_runs = 0;
    /* Kind finalizer: one object on a page that is not current (after a
     * collection), one on the current page. */
    void *x = rudo_alloc(k_fin, 32);
    keep[0] = x;
    rudo_collect();
    void *y = rudo_alloc(k_fin, 64); /* another class: x's page stays
                                        * off any allocator */
    rudo_free(x);
    keep[0] = NULL;
    rudo_free(y);
    /* Per-object finalizer. */
    void *z = rudo_alloc(k_small, SMALL);
    CHECK_EQ(rudo_finalizer_register(z, count_obj_fin, NULL), RUDO_OK);
    rudo_free(z);
    rudo_collect();
    rudo_collect();
    CHECK_EQ(kind_fin_runs, 0);
    CHECK_EQ(obj_fin_runs, 0);
    /* The control: unfreed, unreachable objects are finalized. */
    void *w = rudo_alloc(k_fin, 32);
    CHECK_EQ(rudo_finalizer_register(rudo_alloc(k_small, SMALL), count_obj_fin, NULL),
             RUDO_OK);
    (void)w;
    rudo_collect();
    rudo_collect();
    CHECK_EQ(kind_fin_runs, 1);
    CHECK_EQ(obj_fin_runs, 1);
}

/* ---- misuse (each in a child process) ---- */
static void free_interior(void *a) {
    (void)a;
    char *p = rudo_malloc(64);
    rudo_free(p + 16);
}
static void free_stack(void *a) {
    (void)a;
    long x[4];
    rudo_free(x);
}
static void free_malloc(void *a) {
    (void)a;
    rudo_free(malloc(32));
}
static void free_large_twice(void *a) {
    (void)a;
    void *p = rudo_malloc(LARGE);
    rudo_free(p);
    rudo_free(p);
}
static void free_small_twice(void *a) {
    /* On a page that is not current: exact in every mode. */
    (void)a;
    void *p = rudo_malloc(SMALL);
    keep[0] = p;
    rudo_collect();
    keep[0] = NULL;
    rudo_free(p);
    rudo_free(p);
}
static void free_blocking(void *a) {
    (void)a;
    void *p = rudo_malloc(SMALL);
    rudo_blocking_enter();
    rudo_free(p);
}
static void free_referenced(void *a) {
    (void)a;
    void **holder = rudo_malloc(4 * sizeof(void *));
    keep[1] = holder;
    holder[2] = rudo_alloc(k_small, SMALL);
    rudo_free(holder[2]);
    rudo_collect();
}

static void misuse(void) {
    expect_death("rudo_free: interior pointer", free_interior, NULL,
                 "rudo_free: ");
    expect_death("rudo_free: stack address", free_stack, NULL,
                 "is not the base of an allocated heap object");
    expect_death("rudo_free: malloc'd address", free_malloc, NULL,
                 "is not the base of an allocated heap object");
    expect_death("rudo_free: large object twice", free_large_twice, NULL,
                 verifying() ? "rudo_free: " : "is not the base of an allocated heap object");
    expect_death("rudo_free: small object twice", free_small_twice, NULL,
                 verifying() ? "double free" : "is not the base of an allocated heap object");
    expect_death("rudo_free: blocking region", free_blocking, NULL,
                 "rudo_free: ");
}

static void part(void) {
    /* One marker: no marker threads, which ThreadSanitizer would refuse
     * to start in the forked children of the death tests. */
    rudo_config cfg = test_precise_config(1);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    setup_kinds();
    rudo_free(NULL);
    test_reuse();
    test_current();
    test_large();
    test_finalizers();
    misuse();
    if (verifying())
        expect_death("rudo verify: a freed object still referenced", free_referenced,
                     NULL, "still refers to");
    rudo_heap_destroy();
}

int main(void) {
    part();
    setenv("RUDO_VERIFY", "1", 1);
    part();
    return test_report();
}
