/* test_thr_page_batch.c — page batches (docs/design.md, "Page batches"):
 * a refill that finds heap_lock contended takes several pages at once and
 * keeps the others in a per-thread stash.
 *
 * 1. Adaptive (RUDO_PAGE_BATCH unset), one thread: no contention, so every
 *    refill takes one page (pages in use grow by one per page filled).
 * 2. RUDO_PAGE_BATCH=8: a class's first refill takes 8 fresh pages; the
 *    next 7 refills take none.
 * 3. Stashed avail pages: survivors on the pages of a stash keep their
 *    contents while the stash is used up; rudo_free of a survivor there
 *    frees it at once (its cell is handed out again before the stash runs
 *    out); queries see a stashed page's free cells as free and its objects
 *    as allocated; a collection returns every stash (no page is left
 *    stashed).
 * 4. Near the limit the batch shrinks: under a 1 MiB max_heap (16 pages)
 *    a refill takes one page.
 * 5. Two threads, RUDO_PAGE_BATCH=8: one allocates through its stash while
 *    the other frees the objects that lie on the stashed pages (rudo_free
 *    against the owner's lock-free claim), rounds apart; every survivor
 *    and every new object keeps its pattern.
 *
 * Precise roots only: survivors are exactly what the rooted array holds.
 * Under RUDO_GC_STRESS collections return stashes at any allocation, so
 * the page counts of parts 1, 2 and 4 are not checked there. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heap/heap.h"
#include "rudo.h"
#include "testlib.h"

#define SIZE 48 /* a class of its own kind */
#define CELLS (RUDO_PAGE_SIZE / SIZE)
#define PAGES 16

static rudo_kind k_obj;
static void *root;  /* the rooted array */
static void **keep; /* its slots */

static size_t in_use(void) {
    /* Read without heap_lock: this thread alone allocates here. */
    return rudo__the_heap->pages_in_use;
}

static void **owner_state(const void *obj) {
    const rudo__page *p = rudo__page_of(rudo__the_heap, obj);
    return atomic_load_explicit(&((rudo__page *)p)->owner_list, memory_order_acquire);
}

static uint64_t pattern(const void *p) { return test_mix64((uint64_t)(uintptr_t)p); }

static void fill(void *p) {
    uint64_t *w = p;
    for (size_t i = 0; i < SIZE / 8; i++)
        w[i] = pattern(p) + i;
}

static bool intact(const void *p) {
    const uint64_t *w = p;
    for (size_t i = 0; i < SIZE / 8; i++)
        if (w[i] != pattern(p) + i)
            return false;
    return true;
}

static void heap_up(const char *batch, size_t max_heap) {
    if (batch)
        setenv("RUDO_PAGE_BATCH", batch, 1);
    else
        unsetenv("RUDO_PAGE_BATCH");
    rudo_config cfg = test_precise_config(2);
    cfg.initial_heap = (size_t)64 << 20; /* no automatic collection */
    cfg.max_heap = max_heap;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    k_obj = rudo_kind_atomic("batch-obj");
    root = NULL;
    rudo_root_add(&root);
    root = keep = rudo_malloc(PAGES * CELLS * sizeof(void *));
}

static void heap_down(void) {
    rudo_heap_destroy();
    keep = NULL;
}

/* Allocates n objects of k_obj; returns the last. */
static void *alloc_n(size_t n) {
    void *p = NULL;
    for (size_t i = 0; i < n; i++) {
        p = rudo_alloc(k_obj, SIZE);
        if (!p)
            abort();
    }
    return p;
}

static void test_adaptive_one_thread(void) {
    heap_up(NULL, 0);
    size_t before = in_use();
    alloc_n(1);
    if (!test_stress_on()) {
        CHECK_EQ(in_use(), before + 1);
        alloc_n(CELLS * 3); /* three more pages, one at a time */
        CHECK_EQ(in_use(), before + 4);
    }
    heap_down();
}

static void test_fixed_fresh(void) {
    heap_up("8", 0);
    size_t before = in_use();
    alloc_n(1);
    if (!test_stress_on()) {
        CHECK_EQ(in_use(), before + 8);
        alloc_n(8 * CELLS - 1); /* the 8 pages, to their last cell */
        CHECK_EQ(in_use(), before + 8);
        alloc_n(1);
        CHECK_EQ(in_use(), before + 16);
    }
    heap_down();
}

/* PAGES full pages of survivors, then every other one dropped: after the
 * collection the pages are half free, on the avail list. */
static void make_half_pages(void) {
    for (size_t i = 0; i < PAGES * CELLS; i++) {
        keep[i] = rudo_alloc(k_obj, SIZE);
        fill(keep[i]);
    }
    rudo_collect();
    for (size_t i = 0; i < PAGES * CELLS; i += 2)
        keep[i] = NULL;
    rudo_collect();
}

static size_t count_stashed_pages(void) {
    rudo__heap *h = rudo__the_heap;
    size_t n = 0;
    for (size_t pi = 0; pi < rudo__hwm(h); pi = rudo__pages_next(h, pi))
        if (h->pages[pi].type == RUDO_PAGE_SMALL &&
            rudo__owner_stashed(atomic_load_explicit(&h->pages[pi].owner_list,
                                                     memory_order_acquire)))
            n++;
    return n;
}

static void test_stashed_avail(void) {
    heap_up("8", 0);
    make_half_pages();
    void *first = alloc_n(1); /* takes 8 of the 16 half-free pages */
    fill(first);
    keep[0] = first; /* slot 0 was dropped: rooted from here on */
    /* A survivor on a stashed page, and a free cell next to it. */
    void *victim = NULL, *dead = NULL;
    size_t vi = 0;
    for (size_t i = 1; i < PAGES * CELLS; i += 2)
        if (keep[i] && owner_state(keep[i]) == RUDO_OWNER_STASHED) {
            vi = i;
            victim = keep[i];
            dead = (char *)victim - SIZE; /* slot i - 1: dropped */
            break;
        }
    CHECK(victim != NULL);
    if (!test_stress_on())
        CHECK_EQ(count_stashed_pages(), (size_t)7);
    if (victim && owner_state(dead) == RUDO_OWNER_STASHED &&
        rudo__page_of(rudo__the_heap, dead) == rudo__page_of(rudo__the_heap, victim)) {
        CHECK(rudo_base((char *)victim + 5) == victim);
        CHECK(rudo_is_heap_ptr(victim));
        CHECK(rudo_size(victim) == SIZE);
        CHECK(!rudo_is_heap_ptr(dead));
        CHECK(rudo_base(dead) == NULL);
    }
    bool reused = false;
    if (victim) {
        keep[vi] = NULL;
        rudo_free(victim);
        if (!rudo__the_heap->verify)
            CHECK(!rudo_is_heap_ptr(victim));
        /* The stash's cells (half of 8 pages, the victim's among them
         * unless verification quarantines it) come before any new page. */
        size_t n = 8 * CELLS / 2;
        for (size_t i = 0; i < n; i++) {
            void *p = rudo_alloc(k_obj, SIZE);
            reused |= p == victim;
            fill(p);
        }
    }
    if (!rudo__the_heap->verify && !test_stress_on())
        CHECK(reused);
    bool all_intact = intact(first);
    for (size_t i = 1; i < PAGES * CELLS; i += 2)
        if (keep[i] && !intact(keep[i]))
            all_intact = false;
    CHECK(all_intact);
    rudo_collect();
    CHECK_EQ(count_stashed_pages(), (size_t)0);
    all_intact = true;
    for (size_t i = 1; i < PAGES * CELLS; i += 2)
        if (keep[i] && !intact(keep[i]))
            all_intact = false;
    CHECK(all_intact);
    heap_down();
}

static void test_capped_near_limit(void) {
    heap_up("8", (size_t)1 << 20);
    /* The heap holds the root array (PAGES * CELLS words: 3 pages) already;
     * 13 pages are left, under the 16 the cap needs for a batch of 1. */
    size_t before = in_use();
    alloc_n(1);
    if (!test_stress_on())
        CHECK_EQ(in_use(), before + 1);
    heap_down();
}

/* Part 5: the main thread allocates, a helper frees. */
static pthread_barrier_t round_start;
static atomic_int helper_errors;
/* The victims, rooted until the helper frees each (a collection may come
 * at any allocation under RUDO_GC_STRESS): a rooted heap array. */
static void *vroot;
static void **victims;
static size_t nvictims;

static void *freer(void *arg) {
    (void)arg;
    rudo_thread_attach();
    for (int r = 0; r < (int)test_scaled(6); r++) {
        test_barrier_wait(&round_start);
        for (size_t i = 0; i < nvictims; i++) {
            void *v = victims[i];
            victims[i] = NULL; /* no reference to a freed object remains */
            if (!intact(v))
                atomic_fetch_add_explicit(&helper_errors, 1, memory_order_relaxed);
            rudo_free(v);
        }
        test_barrier_wait(&round_start);
    }
    rudo_thread_detach();
    return NULL;
}

static void test_free_against_claim(void) {
    heap_up("8", 0);
    vroot = NULL;
    rudo_root_add(&vroot);
    vroot = victims = rudo_malloc(8 * CELLS * sizeof(void *));
    pthread_barrier_init(&round_start, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, freer, NULL);
    long bad_new = 0, bad_kept = 0;
    for (int r = 0; r < (int)test_scaled(6); r++) {
        make_half_pages();
        alloc_n(1); /* 7 pages stashed */
        /* The survivors on stashed pages go to the helper, out of the
         * roots (a freed object must not stay referenced: the verifier of
         * RUDO_DEBUG builds reports it). */
        nvictims = 0;
        for (size_t i = 1; i < PAGES * CELLS; i += 2)
            if (keep[i] && owner_state(keep[i]) == RUDO_OWNER_STASHED &&
                nvictims < 8 * CELLS && i % 4 == 1) {
                victims[nvictims++] = keep[i];
                keep[i] = NULL;
            }
        test_barrier_wait(&round_start);
        /* Claims the stashed pages while the helper frees on them. */
        for (size_t i = 0; i < 8 * CELLS / 2; i++) {
            void *p = rudo_alloc(k_obj, SIZE);
            fill(p);
            if (!intact(p))
                bad_new++;
        }
        test_barrier_wait(&round_start);
        for (size_t i = 1; i < PAGES * CELLS; i += 2)
            if (keep[i] && !intact(keep[i]))
                bad_kept++;
        for (size_t i = 0; i < PAGES * CELLS; i++)
            keep[i] = NULL;
    }
    pthread_join(t, NULL);
    pthread_barrier_destroy(&round_start);
    CHECK_EQ(bad_new, 0);
    CHECK_EQ(bad_kept, 0);
    CHECK_EQ(atomic_load(&helper_errors), 0);
    heap_down();
}

int main(void) {
    test_start_watchdog();
    test_adaptive_one_thread();
    test_fixed_fresh();
    test_stashed_avail();
    test_capped_near_limit();
    test_free_against_claim();
    return test_report();
}
