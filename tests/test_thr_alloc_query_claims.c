/* test_thr_alloc_query_claims.c — the claims of rudo.h's "Allocation",
 * "The write barrier (generational mode)", "Queries" and "Statistics"
 * sections that no other test checks (the others: test_alloc,
 * test_alloc_more, test_oom, test_oom_rules, test_thr_oom_race, test_gen,
 * test_thr_query_matrix, test_thr_query_race, test_errors, test_misuse_ctx,
 * test_free, test_listener, test_thr_alloc_scale, test_thr_mark):
 *
 *  - allocation: zeroed and 16-aligned at every size class, for four
 *    kinds, on memory dirtied and reclaimed (by collection and by
 *    rudo_free); huge sizes (SIZE_MAX, SIZE_MAX/2, SIZE_MAX-15, just over
 *    max_heap) give NULL after the handler and without a collection, also
 *    through rudo_alloc_array, rudo_alloc_aligned and rudo_realloc (the
 *    old object unchanged); the heap-full rule (one collection when live
 *    data plus the request exceed max_heap); the give-up bounds for a
 *    request the free room cannot serve (64 collections small, 8 large);
 *    the aborts of rudo_alloc_array, rudo_alloc_aligned, rudo_realloc and
 *    rudo_free without a heap, unattached, in a blocking region, in a
 *    trace callback, with an unknown kind;
 *  - the barrier: rudo_write and rudo_write_range keep a young object
 *    stored only through the barrier into an old one (small and large
 *    parents of layout and callback kinds, slots in the first, a middle
 *    and the last card) through minor collections, with 1, 2 and 4
 *    markers, with generations asked by the config field and by
 *    RUDO_GENERATIONAL=1; `obj` is not read (NULL); slots outside the
 *    heap; calls without a heap, after rudo_heap_destroy, in a non-
 *    generational heap; rudo_write_range: len 0, exact end, the aborts
 *    (NULL obj, interior obj, start before obj, end past obj), a
 *    non-generational heap ignoring a bad range, a call from an unattached
 *    thread; stores into an object made since the last allocation need no
 *    barrier;
 *  - queries: without a heap each aborts with a message; rudo_heap_bounds
 *    with NULL arguments, from an unattached thread, fixed over growth;
 *    interior queries at the first, a middle and the last cell of a page
 *    for every size class (a light version of test_thr_query_matrix);
 *  - statistics: collections = minor + major (all major without
 *    generations); pauses (max <= total, total = minor + major totals,
 *    mark + sweep <= pause); bytes_allocated and thread bytes_allocated
 *    against the program's own count (never behind, ahead by at most a
 *    page per class in use); live_bytes and promoted_bytes_total exact;
 *    finalizers_run; threads_attached; markers (0 = online CPUs);
 *    heap_peak_bytes; thread stats' collections and collect_ns per thread;
 *    rudo_get_thread_stats aborts (NULL, unattached); marker stats: 0
 *    before the first collection, the count when max is 0, objects_marked
 *    summing to the live objects.
 *
 * Precise setup (test_precise_config): only registered roots count. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "debug/debug.h"
#include "heap/heap.h"
#include "rudo.h"
#include "testlib.h"

/* ThreadSanitizer ends a child that starts threads after a multi-threaded
 * fork unless told otherwise; the death tests' children start an unattached
 * thread, and the heap's markers may be running when they fork. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "die_after_fork=0"; }

#ifndef RUDO_TEST_DEBUG_BUILD
#define RUDO_TEST_DEBUG_BUILD 0
#endif

#define MIB ((size_t)1 << 20)
#define PAGE ((size_t)65536)

/* Whether a heap asked to be generational (or not) is: RUDO_GENERATIONAL
 * overrides the config. */
static bool gen_mode(bool asked) {
    long env = test_env_long("RUDO_GENERATIONAL", -1);
    return env == -1 ? asked : env != 0;
}
/* Whether rudo_free reuses memory at once (not with verification on). */
static bool verify_on(void) {
    return RUDO_TEST_DEBUG_BUILD || test_env_long("RUDO_VERIFY", 0) != 0;
}

static unsigned long oom_calls;
static size_t oom_last;
static void on_oom(size_t size, void *data) {
    (void)data;
    oom_calls++;
    oom_last = size;
}

#define MAX_IDS 512
static rudo_kind k_probe; /* atomic, finalizable; word 0 is the id */
static int finalized[MAX_IDS];
static void probe_fin(void *obj, void *data) {
    (void)data;
    uint64_t id = *(uint64_t *)obj;
    if (id < MAX_IDS)
        __atomic_fetch_add(&finalized[id], 1, __ATOMIC_SEQ_CST);
}
static void *probe(uint64_t id) {
    uint64_t *p = rudo_alloc(k_probe, 32);
    CHECK(p != NULL);
    if (p) {
        p[0] = id;
        p[1] = test_mix64(id);
    }
    return p;
}
static bool probe_ok(const void *p, uint64_t id) {
    const uint64_t *w = p;
    return w && w[0] == id && w[1] == test_mix64(id);
}

static rudo_kind k_layout, k_cb; /* every word a pointer */
static void trace_all(void *obj, size_t size, rudo_tracer *tr) {
    void **w = obj;
    for (size_t i = 0; i < size / sizeof(void *); i++)
        rudo_visit(tr, &w[i]);
}

static void register_kinds(void) {
    rudo_kind_desc d = {.name = "allocq/probe", .tracing = RUDO_TRACE_ATOMIC,
                        .finalize = probe_fin};
    k_probe = rudo_kind_register(&d);
    static const uint64_t all = 1;
    k_layout = rudo_kind_layout("allocq/layout", 1, &all);
    k_cb = rudo_kind_traced("allocq/cb", trace_all);
    memset(finalized, 0, sizeof finalized);
}

static void make_heap_cfg(rudo_config *cfg) {
    cfg->on_oom = on_oom;
    test_heap_create(cfg);
    register_kinds();
    oom_calls = 0;
}
static void make_heap(unsigned markers, bool gen) {
    rudo_config cfg = test_precise_config(markers);
    cfg.generational = gen;
    cfg.initial_heap = 64 * MIB; /* no collection but the test's own */
    cfg.nursery = 64 * MIB;
    make_heap_cfg(&cfg);
}

static rudo_stats stats(void) {
    rudo_stats st;
    rudo_get_stats(&st);
    return st;
}

static bool all_zero(const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return false;
    return true;
}

/* Runs fn(arg) on a fresh thread that never attaches; the caller waits in
 * a blocking region. */
struct job {
    void (*fn)(void *);
    void *arg;
};
static void *run_unattached_trampoline(void *a) {
    struct job *j = a;
    j->fn(j->arg);
    return NULL;
}
static void on_unattached(void (*fn)(void *), void *arg) {
    pthread_t t;
    struct job j = {fn, arg};
    void *pa = &j;
    rudo_blocking_enter();
    pthread_create(&t, NULL, run_unattached_trampoline, pa);
    pthread_join(t, NULL);
    rudo_blocking_leave();
}

/* ======================================================================== */
/* Allocation                                                               */
/* ======================================================================== */

static void *root_range[64]; /* a registered conservative range */

/* rudo.h: "zeroed (but for a RUDO_KIND_UNINIT kind), aligned to 16
 * bytes", at every size class, also on memory a dead object dirtied
 * (reclaimed by a collection, or by rudo_free) and for large objects. */
static void test_zero_align(void) {
    make_heap(1, false);
    rudo_kind kinds[4] = {RUDO_KIND_CONSERVATIVE, RUDO_KIND_ATOMIC, k_layout, k_cb};
    size_t bad_zero = 0, bad_align = 0, n = 0;
    for (int round = 0; round < 3; round++) {
        for (int kk = 0; kk < 4; kk++) {
            for (unsigned c = 0; c < RUDO_NCLASSES; c++) {
                size_t sz = rudo__class_size[c];
                size_t req[2] = {sz, c ? rudo__class_size[c - 1] + 1 : 1};
                for (int r = 0; r < 2; r++) {
                    for (int j = 0; j < 3; j++) {
                        unsigned char *p = rudo_alloc(kinds[kk], req[r]);
                        n++;
                        if (!p || ((uintptr_t)p & 15))
                            bad_align++;
                        if (!p)
                            continue;
                        if (!all_zero(p, rudo_size(p)))
                            bad_zero++;
                        /* Dirty it with non-pointer bytes (pointer kinds:
                         * words that are not heap addresses). */
                        memset(p, 0x11, rudo_size(p));
                        if (round == 1 && j == 1)
                            rudo_free(p); /* on the current page */
                    }
                }
            }
            /* Large: 1, 2 and 5 pages. */
            size_t large[3] = {RUDO_SMALL_MAX + 1, 2 * PAGE - 8, 5 * PAGE + 100};
            for (int l = 0; l < 3; l++) {
                unsigned char *p = rudo_alloc(kinds[kk], large[l]);
                n++;
                if (!p || ((uintptr_t)p & 15))
                    bad_align++;
                if (!p)
                    continue;
                if (!all_zero(p, rudo_size(p)))
                    bad_zero++;
                memset(p, 0x11, rudo_size(p));
                if (round == 1)
                    rudo_free(p);
            }
        }
        rudo_collect(); /* everything dies: the next round reuses it */
    }
    CHECK_EQ(bad_zero, (size_t)0);
    CHECK_EQ(bad_align, (size_t)0);
    CHECK(n > 1000);
    /* rudo_free on a retired page, then reuse of that cell at once. */
    unsigned char *a = rudo_alloc(RUDO_KIND_ATOMIC, 48);
    root_range[0] = a;
    rudo_root_add_range(root_range, root_range + 1);
    rudo_collect(); /* a's page is retired now */
    memset(a, 0x22, 48);
    root_range[0] = NULL;
    rudo_free(a);
    bool zero = true;
    for (int i = 0; i < 2000; i++) {
        unsigned char *b = rudo_alloc(RUDO_KIND_ATOMIC, 48);
        zero = zero && all_zero(b, 48);
        memset(b, 0x33, 48);
    }
    CHECK(zero);
    CHECK_EQ(rudo_root_remove_range(root_range), RUDO_OK);
    rudo_heap_destroy();
}

/* rudo.h: "A request that can never fit (larger than max_heap or the
 * reservation, SIZE_MAX included) returns NULL at once, without a
 * collection", after calling the OOM handler; rudo_alloc_array,
 * rudo_alloc_aligned and rudo_realloc "as rudo_alloc". */
static void test_huge(void) {
    rudo_config cfg = test_precise_config(1);
    cfg.initial_heap = 64 * MIB;
    cfg.max_heap = 4 * MIB;
    make_heap_cfg(&cfg);
    void *lo, *hi;
    rudo_heap_bounds(&lo, &hi);
    size_t reserve = (size_t)((char *)hi - (char *)lo);
    size_t sizes[] = {SIZE_MAX, SIZE_MAX - 15, SIZE_MAX / 2, SIZE_MAX / 2 + 1,
                      reserve + 1, 4 * MIB + 1, 4 * MIB + PAGE};
    size_t ns = sizeof sizes / sizeof sizes[0];
    rudo_kind kinds[3] = {RUDO_KIND_CONSERVATIVE, RUDO_KIND_ATOMIC, k_cb};
    uint64_t c0 = stats().collections;
    for (size_t i = 0; i < ns; i++) {
        for (int kk = 0; kk < 3; kk++) {
            oom_calls = 0;
            CHECK(rudo_alloc(kinds[kk], sizes[i]) == NULL);
            CHECK_EQ(oom_calls, 1ul);
            CHECK_EQ(oom_last, sizes[i]);
        }
        oom_calls = 0;
        CHECK(rudo_alloc_aligned(RUDO_KIND_ATOMIC, sizes[i], 4096) == NULL);
        CHECK(rudo_alloc_aligned(RUDO_KIND_ATOMIC, sizes[i], 64) == NULL);
        CHECK(rudo_malloc(sizes[i]) == NULL);
        CHECK(rudo_malloc_atomic(sizes[i]) == NULL);
        CHECK_EQ(oom_calls, 4ul);
    }
    /* n * elem_size that does not overflow but can never fit. */
    oom_calls = 0;
    CHECK(rudo_alloc_array(RUDO_KIND_ATOMIC, SIZE_MAX / 2, 2) == NULL);
    CHECK(rudo_alloc_array(RUDO_KIND_ATOMIC, 1, SIZE_MAX) == NULL);
    CHECK(rudo_alloc_array(RUDO_KIND_ATOMIC, 5, MIB) == NULL);
    CHECK_EQ(oom_calls, 3ul);
    /* rudo_realloc to a size that never fits: NULL, the old object as it
     * was. */
    uint64_t *o = rudo_malloc_atomic(64);
    root_range[0] = o;
    rudo_root_add_range(root_range, root_range + 1);
    for (int i = 0; i < 8; i++)
        o[i] = 100 + (uint64_t)i;
    oom_calls = 0;
    CHECK(rudo_realloc(o, SIZE_MAX) == NULL);
    CHECK(rudo_realloc(o, SIZE_MAX / 2) == NULL);
    CHECK(rudo_realloc(o, 4 * MIB + 1) == NULL);
    CHECK_EQ(oom_calls, 3ul);
    bool same = rudo_size(o) == 64;
    for (int i = 0; i < 8; i++)
        same = same && o[i] == 100 + (uint64_t)i;
    CHECK(same);
    /* NULL obj: as rudo_alloc of the conservative kind. */
    void *r = rudo_realloc(NULL, 40);
    CHECK(r != NULL && rudo_kind_of(r) == RUDO_KIND_CONSERVATIVE && rudo_size(r) >= 40);
    CHECK(rudo_realloc(NULL, SIZE_MAX) == NULL);
    if (!test_stress_on())
        CHECK_EQ(stats().collections, c0); /* "without a collection" */
    /* A request of exactly max_heap fits in an empty heap. */
    root_range[0] = NULL;
    rudo_collect();
    void *whole = rudo_malloc_atomic(4 * MIB);
    CHECK(whole != NULL);
    CHECK_EQ(rudo_root_remove_range(root_range), RUDO_OK);
    rudo_heap_destroy();
}

/* rudo.h: NULL "only when the heap is full: after a full collection that
 * this allocation ran ... the live data ... plus the request exceed
 * max_heap". Live data filling max_heap: the first request that does not
 * fit runs one collection, calls the handler and returns NULL. */
static void test_full_one_collection(void) {
    rudo_config cfg = test_precise_config(1);
    cfg.initial_heap = 64 * MIB;
    cfg.max_heap = MIB;
    make_heap_cfg(&cfg);
    /* A list of 16-byte conservative nodes, rooted at its head. */
    root_range[0] = NULL;
    rudo_root_add_range(root_range, root_range + 1);
    size_t nodes = 0;
    for (;;) {
        void **n = rudo_malloc(16);
        if (!n)
            break;
        n[0] = root_range[0];
        root_range[0] = n;
        nodes++;
    }
    CHECK_EQ(oom_calls, 1ul);
    /* 16 pages of 4096 cells: every one of them live. */
    CHECK_EQ(nodes, (size_t)16 * 4096);
    rudo_stats st = stats();
    CHECK_EQ(st.live_bytes, (size_t)MIB);
    CHECK_EQ(st.heap_bytes, (size_t)MIB);
    uint64_t c0 = st.collections;
    oom_calls = 0;
    CHECK(rudo_malloc(16) == NULL);
    CHECK(rudo_malloc(100000) == NULL);
    CHECK_EQ(oom_calls, 2ul);
    /* One full collection each, with generations too (a trigger of 0
     * once made every slow path collect: 3 majors per request). */
    uint64_t ran = stats().collections - c0;
    if (!test_stress_on())
        CHECK_EQ(ran, (uint64_t)2);
    if (!test_stress_on() && ran != 2)
        fprintf(stderr, "full heap: %llu collections for two requests\n", (unsigned long long)ran);
    /* Dropped, the room comes back. */
    root_range[0] = NULL;
    CHECK(rudo_malloc(100000) != NULL);
    CHECK_EQ(rudo_root_remove_range(root_range), RUDO_OK);
    rudo_heap_destroy();
}

/* rudo.h: "When the free room cannot serve the request (it lies in partly
 * used pages of other size classes, or no free span is long enough for a
 * large object), the allocation gives up after 64 collections (8 for a
 * large object) that did not make room." Every page of a 1 MiB heap holds
 * one live 16-byte object: almost all the room is free, none of it can
 * hold a 32 KiB object or a 2-page one. */
static void *keep_pages[32];
static void test_fragmented(void) {
    rudo_config cfg = test_precise_config(1);
    cfg.initial_heap = 64 * MIB;
    cfg.max_heap = MIB;
    make_heap_cfg(&cfg);
    rudo_root_add_range(keep_pages, keep_pages + 32);
    /* Everything allocated is kept until 16 pages are seen (GC stress
     * collections must not recycle the cells). */
    size_t cap = 17 * 4096;
    void **all = calloc(cap, sizeof *all);
    rudo_root_add_range(all, all + cap);
    size_t npages = 0;
    uintptr_t seen[32];
    for (size_t i = 0; i < cap && npages < 16; i++) {
        void *p = rudo_malloc_atomic(16);
        if (!p)
            break;
        all[i] = p;
        uintptr_t pg = (uintptr_t)p / PAGE;
        bool known = false;
        for (size_t k = 0; k < npages; k++)
            known = known || seen[k] == pg;
        if (!known) {
            seen[npages] = pg;
            keep_pages[npages++] = p;
        }
    }
    CHECK_EQ(rudo_root_remove_range(all), RUDO_OK);
    free(all);
    CHECK_EQ(npages, (size_t)16);
    rudo_collect();
    rudo_stats st = stats();
    CHECK_EQ(st.heap_bytes, (size_t)MIB);
    CHECK_EQ(st.live_bytes, (size_t)16 * 16);
    oom_calls = 0;
    uint64_t c0 = st.collections;
    CHECK(rudo_malloc_atomic(32768) == NULL);
    uint64_t small_runs = stats().collections - c0;
    CHECK_EQ(oom_calls, 1ul);
    c0 = stats().collections;
    CHECK(rudo_malloc_atomic(2 * PAGE) == NULL);
    uint64_t large_runs = stats().collections - c0;
    CHECK_EQ(oom_calls, 2ul);
    if (!test_stress_on()) {
        CHECK_EQ(small_runs, (uint64_t)64);
        CHECK_EQ(large_runs, (uint64_t)8);
    } else {
        CHECK(small_runs >= 64);
        CHECK(large_runs >= 8);
    }
    /* The 16-byte class still has room. */
    CHECK(rudo_malloc_atomic(16) != NULL);
    CHECK_EQ(oom_calls, 2ul);
    CHECK_EQ(rudo_root_remove_range(keep_pages), RUDO_OK);
    rudo_heap_destroy();
}

/* ======================================================================== */
/* The write barrier                                                        */
/* ======================================================================== */

static void *gen_root;

/* One parent (kind, size), made old; children stored at slots in its
 * first, a middle and its last card, through rudo_write and through
 * memcpy + rudo_write_range; three minors; they survive intact; a young
 * garbage probe dies in the first. Then the parent dropped: the children
 * die at the next major. ids from id0 (8 of them). */
static void barrier_case(rudo_kind kind, size_t size, uint64_t id0) {
    void **par = rudo_alloc(kind, size);
    CHECK(par != NULL);
    if (!par)
        return;
    gen_root = par;
    rudo_collect(); /* major: the parent is old */
    size_t words = rudo_size(par) / sizeof(void *);
    size_t slots[3] = {0, words / 2, words - 1};
    for (int i = 0; i < 3; i++)
        rudo_write(par, &par[slots[i]], probe(id0 + (uint64_t)i));
    void *tmp[3] = {probe(id0 + 3), probe(id0 + 4), probe(id0 + 5)};
    size_t at = words > 40 ? words / 3 : 1;
    memcpy(&par[at], tmp, 2 * sizeof(void *));
    rudo_write_range(par, &par[at], 2 * sizeof(void *));
    /* The range that ends exactly at the object's end. */
    par[words - 2] = tmp[2];
    rudo_write_range(par, &par[words - 2], 2 * sizeof(void *));
    memset(tmp, 0, sizeof tmp);
    (void)probe(id0 + 6); /* young garbage */
    for (int m = 0; m < 3; m++)
        rudo_collect_minor();
    CHECK_EQ(finalized[id0 + 6], 1);
    bool ok = true;
    for (int i = 0; i < 3; i++)
        ok = ok && probe_ok(par[slots[i]], id0 + (uint64_t)i) &&
             finalized[id0 + (uint64_t)i] == 0;
    ok = ok && probe_ok(par[at], id0 + 3) && probe_ok(par[at + 1], id0 + 4) &&
         probe_ok(par[words - 2], id0 + 5);
    for (int i = 3; i < 6; i++)
        ok = ok && finalized[id0 + (uint64_t)i] == 0;
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "barrier case: kind %u size %zu lost a child\n", kind, size);
    gen_root = NULL;
    rudo_collect_minor(); /* the parent is old: stays, and its children */
    for (int i = 0; i < 6; i++)
        CHECK_EQ(finalized[id0 + (uint64_t)i], 0);
    rudo_collect();
    for (int i = 0; i < 6; i++)
        CHECK_EQ(finalized[id0 + (uint64_t)i], 1);
}

static void barrier_cases(void) {
    rudo_root_add(&gen_root);
    rudo_kind kinds[2] = {k_layout, k_cb};
    size_t sizes[4] = {48, 1040, 32768, MIB + 4096};
    uint64_t id = 10;
    for (int kk = 0; kk < 2; kk++)
        for (int s = 0; s < 4; s++, id += 8)
            barrier_case(kinds[kk], sizes[s], id);
    /* rudo.h: no barrier is needed for a store "into an object made since
     * the calling thread's last allocation or safepoint". */
    void *child = probe(300);
    void **fresh = rudo_alloc(k_layout, 64);
    fresh[3] = child; /* plain store */
    gen_root = fresh;
    child = NULL;
    rudo_collect_minor();
    rudo_collect_minor();
    CHECK(probe_ok(fresh[3], 300));
    CHECK_EQ(finalized[300], 0);
    gen_root = NULL;
    rudo_collect();
    CHECK_EQ(rudo_root_remove(&gen_root), RUDO_OK);
}

/* rudo.h: generational mode by the config field, and by
 * RUDO_GENERATIONAL=1 (in a child: the variable is read at creation). */
static void test_barrier_gen(void) {
    unsigned mk[3] = {1, 2, 4};
    for (int i = 0; i < 3; i++) {
        make_heap(mk[i], true);
        barrier_cases();
        rudo_stats st = stats();
        if (gen_mode(true))
            CHECK(st.minor_collections >= 8 * 4);
        rudo_heap_destroy();
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        setenv("RUDO_GENERATIONAL", "1", 1);
        unsigned long f0 = test_failed;
        make_heap(2, false);
        barrier_cases();
        bool minors = stats().minor_collections > 0;
        rudo_heap_destroy();
        _exit(test_failed == f0 && minors ? 0 : 1);
    }
    int st;
    st = test_wait_child(pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void *static_slot;
static void write_range_job(void *arg) {
    void **par = arg;
    par[5] = static_slot; /* a young probe, by a plain store */
    rudo_write_range(par, &par[5], sizeof(void *));
}

/* The calls' edges. */
static void test_barrier_edges(void) {
    /* Without a heap: rudo_write stores (its card is the dummy byte). */
    void *local = NULL;
    rudo_write(NULL, &local, &local);
    CHECK(local == (void *)&local);
    rudo_write(NULL, &static_slot, &local);
    CHECK(static_slot == (void *)&local);

    for (int gen = 0; gen < 2; gen++) {
        make_heap(2, gen == 1);
        bool g = gen_mode(gen == 1);
        rudo_root_add(&gen_root);
        /* `obj` is not read: NULL works as any. */
        void **par = rudo_alloc(k_layout, 128);
        gen_root = par;
        rudo_collect();
        rudo_write(NULL, &par[2], probe(400));
        /* Slots outside the heap (a static, a stack word). */
        void *stack_word = NULL;
        rudo_write(par, &stack_word, par);
        rudo_write(par, &static_slot, par);
        CHECK(stack_word == (void *)par && static_slot == (void *)par);
        static_slot = NULL;
        /* len 0 does nothing, whatever obj is. */
        rudo_write_range(NULL, NULL, 0);
        rudo_write_range(&local, &local, 0);
        /* A non-generational heap ignores even a bad range. */
        if (!g) {
            rudo_write_range(&local, &local, 64);
            rudo_write_range(par, &par[100], 512);
            rudo_write_range(NULL, par, 8);
        }
        /* From an unattached thread (rudo_write_range is thread-safe;
         * the main thread waits in a blocking region). */
        static_slot = probe(401);
        on_unattached(write_range_job, par);
        static_slot = NULL;
        if (g)
            rudo_collect_minor();
        rudo_collect_minor(); /* a major one without generations */
        CHECK(probe_ok(par[2], 400));
        CHECK(probe_ok(par[5], 401));
        CHECK_EQ(finalized[400], 0);
        CHECK_EQ(finalized[401], 0);
        rudo_stats st = stats();
        if (!g) {
            CHECK_EQ(st.minor_collections, (uint64_t)0);
            CHECK_EQ(st.major_collections, st.collections);
        }
        gen_root = NULL;
        rudo_collect();
        CHECK_EQ(finalized[400], 1);
        CHECK_EQ(rudo_root_remove(&gen_root), RUDO_OK);
        rudo_heap_destroy();
    }
    /* After rudo_heap_destroy: the barrier is back on the dummy byte. */
    local = NULL;
    rudo_write(NULL, &local, &local);
    CHECK(local == (void *)&local);
}

/* ---- barrier aborts ---- */
static void child_gen_heap(void) {
    alarm(10);
    make_heap(1, true);
}
static void d_range(void *a) {
    child_gen_heap();
    if (!gen_mode(true))
        abort(); /* the case needs generations: passes trivially */
    void **o = rudo_alloc(k_layout, 64);
    switch ((int)(uintptr_t)a) {
    case 0: rudo_write_range(NULL, o, 8); break;          /* NULL obj */
    case 1: rudo_write_range(&o[1], &o[1], 8); break;     /* interior obj */
    case 2: rudo_write_range(o, (char *)o - 8, 16); break; /* start before obj */
    case 3: rudo_write_range(o, &o[7], 16); break;        /* end past obj */
    case 4: rudo_write_range(o, &o[8], 1); break;         /* at the end */
    case 5: rudo_write_range(o, o, SIZE_MAX); break;      /* huge len */
    case 6: rudo_write_range(o, (char *)o - 1, SIZE_MAX); break; /* wraps */
    }
}
static void d_range_no_heap(void *a) {
    (void)a;
    static void *x[2];
    rudo_write_range(x, x, sizeof x);
}

/* ======================================================================== */
/* Queries                                                                  */
/* ======================================================================== */

static void d_query_no_heap(void *a) {
    static char buf[32];
    void *lo, *hi;
    switch ((int)(uintptr_t)a) {
    case 0: (void)rudo_is_heap_ptr(buf); break;
    case 1: (void)rudo_base(buf); break;
    case 2: (void)rudo_size(buf); break;
    case 3: (void)rudo_kind_of(buf); break;
    case 4: rudo_heap_bounds(&lo, &hi); break;
    case 5: (void)rudo_is_heap_ptr(NULL); break;
    case 6: (void)rudo_base(NULL); break;
    }
}
static const char *const query_fn[] = {"rudo_is_heap_ptr", "rudo_base", "rudo_size",
                                       "rudo_kind_of", "rudo_heap_bounds",
                                       "rudo_is_heap_ptr", "rudo_base"};

static void *bounds_lo, *bounds_hi;
static void bounds_job(void *arg) {
    (void)arg;
    rudo_heap_bounds(&bounds_lo, NULL);
    rudo_heap_bounds(NULL, &bounds_hi);
    rudo_heap_bounds(NULL, NULL);
}

/* Every size class: the first, a middle and the last cell of a page,
 * queried at the base, base + 1, the middle and the last byte, and one
 * past the cell; then freed (rudo_free, on a retired page): not an object
 * (with verification on, it stays allocated until the next collection);
 * large objects at every page of their span. */
static void *run_alloc(rudo_kind kind, size_t size, void *data) {
    (void)data;
    return rudo_alloc(kind, size);
}
static void test_queries(void) {
    make_heap(1, false);
    void *lo, *hi;
    rudo_heap_bounds(&lo, &hi);
    CHECK(lo != NULL && (char *)hi > (char *)lo);
    /* From an unattached thread, either argument NULL. */
    on_unattached(bounds_job, NULL);
    CHECK(bounds_lo == lo && bounds_hi == hi);
    rudo_kind kinds[3] = {RUDO_KIND_ATOMIC, k_layout, k_cb};
    size_t bad = 0, cases = 0, skipped = 0;
    static void *run[4096];
    rudo_root_add_range(run, run + 4096);
    for (int kk = 0; kk < 3; kk++) {
        for (unsigned c = 0; c < RUDO_NCLASSES; c++) {
            size_t sz = rudo__class_size[c];
            size_t per = PAGE / sz;
            if (!test_page_run(kinds[kk], sz, per, 3 * per + 64, run, run_alloc, NULL)) {
                skipped++;
                continue;
            }
            size_t cells[3] = {0, per / 2, per - 1};
            for (int ci = 0; ci < 3; ci++) {
                char *b = run[cells[ci]];
                cases++;
                size_t offs[4] = {0, 1, sz / 2, sz - 1};
                for (int o = 0; o < 4; o++)
                    if (rudo_base(b + offs[o]) != b || !rudo_is_heap_ptr(b + offs[o]))
                        bad++;
                if (rudo_size(b) != sz || rudo_kind_of(b) != kinds[kk])
                    bad++, fprintf(stderr, "query: size/kind c%u ci%d\n", c, ci);
                if ((char *)b < (char *)lo || b + sz > (char *)hi)
                    bad++;
                /* One past the cell: the next cell, or the page's tail. */
                void *nb = rudo_base(b + sz);
                if (cells[ci] == per - 1 ? (nb != NULL && nb != b + sz) : nb != b + sz)
                    bad++, fprintf(stderr, "query: next cell c%u ci%d nb %p b %p\n", c, ci, nb, (void*)b);
                if (nb == b)
                    bad++;
            }
            /* Retire the page, free the three cells, query them. */
            rudo_collect();
            for (int ci = 0; ci < 3; ci++) {
                char *b = run[cells[ci]];
                run[cells[ci]] = NULL;
                if (!b)
                    continue;
                rudo_free(b);
                bool gone = rudo_base(b) == NULL && !rudo_is_heap_ptr(b + sz / 2);
                if (verify_on() ? !(rudo_base(b) == b) : !gone)
                    bad++, fprintf(stderr, "query: freed k%d c%u ci%d\n", kk, c, ci);
            }
            memset(run, 0, per * sizeof(void *));
        }
    }
    CHECK_EQ(bad, (size_t)0);
    CHECK(cases > 150);
    if (skipped)
        fprintf(stderr, "queries: %zu classes found no fresh page run\n", skipped);
    /* Large objects: every page of the span; the slack after the usable
     * size is not the object. */
    size_t lsz[3] = {RUDO_SMALL_MAX + 1, 3 * PAGE - 40, 4 * PAGE};
    for (int l = 0; l < 3; l++) {
        for (int kk = 0; kk < 3; kk++) {
            char *b = rudo_alloc(kinds[kk], lsz[l]);
            run[0] = b;
            size_t us = rudo_size(b);
            CHECK_EQ(us, (lsz[l] + 15) & ~(size_t)15);
            bool ok = rudo_kind_of(b) == kinds[kk];
            for (size_t off = 0; off < us; off += PAGE / 2)
                ok = ok && rudo_base(b + off) == b;
            ok = ok && rudo_base(b + us - 1) == b;
            if (us % PAGE)
                ok = ok && rudo_base(b + us) == NULL && !rudo_is_heap_ptr(b + us);
            CHECK(ok);
            run[0] = NULL;
            rudo_free(b);
            if (!verify_on())
                CHECK(rudo_base(b) == NULL && !rudo_is_heap_ptr(b + PAGE / 2));
        }
    }
    /* The bounds do not move as the heap grows. */
    for (int i = 0; i < 40; i++)
        run[i] = rudo_malloc_atomic(MIB);
    void *lo2, *hi2;
    rudo_heap_bounds(&lo2, &hi2);
    CHECK(lo2 == lo && hi2 == hi);
    bool inside = true;
    for (int i = 0; i < 40; i++)
        inside = inside && (char *)run[i] >= (char *)lo &&
                 (char *)run[i] + MIB <= (char *)hi;
    CHECK(inside);
    memset(run, 0, sizeof run);
    CHECK_EQ(rudo_root_remove_range(run), RUDO_OK);
    rudo_heap_destroy();
}

/* ======================================================================== */
/* Statistics                                                               */
/* ======================================================================== */

static void check_pause_invariants(const rudo_stats *st) {
    CHECK(st->pause_ns_max <= st->pause_ns_total);
    CHECK(st->minor_pause_ns_max <= st->minor_pause_ns_total);
    CHECK(st->major_pause_ns_max <= st->major_pause_ns_total);
    CHECK_EQ(st->pause_ns_total, st->minor_pause_ns_total + st->major_pause_ns_total);
    CHECK(st->pause_ns_max == st->minor_pause_ns_max ||
          st->pause_ns_max == st->major_pause_ns_max);
    CHECK(st->mark_ns_total + st->sweep_ns_total <= st->pause_ns_total);
    CHECK(st->ttsp_ns_median <= st->ttsp_ns_max);
    CHECK_EQ(st->collections, st->minor_collections + st->major_collections);
    CHECK(st->heap_bytes <= st->heap_peak_bytes);
    CHECK_EQ(st->heap_bytes % PAGE, (size_t)0);
    if (st->collections > 0)
        CHECK(st->pause_ns_total > 0 && st->pause_ns_max > 0);
}

static void *stats_root;
static void stats_alloc_job(void *arg) {
    size_t n = (size_t)(uintptr_t)arg;
    for (size_t i = 0; i < n; i++)
        (void)rudo_malloc_atomic(4096);
}
static rudo_thread_stats worker_ts0, worker_ts1;
static unsigned worker_saw_threads;
static void worker_stats_job(void *arg) {
    (void)arg;
    worker_saw_threads = stats().threads_attached;
    rudo_get_thread_stats(&worker_ts0);
    stats_alloc_job((void *)(uintptr_t)256); /* 1 MiB */
    rudo_collect();
    rudo_collect();
    rudo_get_thread_stats(&worker_ts1);
}

static void test_stats(bool gen, unsigned markers) {
    make_heap(markers, gen);
    bool g = gen_mode(gen);
    rudo_stats st = stats();
    if (!test_stress_on()) {
        CHECK_EQ(st.collections, (uint64_t)0);
        CHECK_EQ(rudo_get_marker_stats(NULL, 0), 0u); /* before the first */
    }
    check_pause_invariants(&st);
    CHECK_EQ(st.markers, markers);
    CHECK_EQ(st.threads_attached, 1u);
    CHECK_EQ(st.finalizers_run, (uint64_t)0);

    /* bytes_allocated: never behind the program's count, ahead by at most
     * the free cells of the pages its allocators hold (one per class). */
    rudo_thread_stats ts0, ts1;
    rudo_get_thread_stats(&ts0);
    uint64_t b0 = st.bytes_allocated;
    uint64_t mine = 0;
    size_t szs[5] = {16, 48, 1000, 4000, 20000};
    for (int r = 0; r < 5; r++) {
        for (int i = 0; i < 500; i++)
            (void)rudo_malloc_atomic(szs[r]);
        mine += 500 * (uint64_t)rudo__class_size[rudo__size_class(szs[r])];
    }
    (void)rudo_malloc_atomic(3 * PAGE); /* counted as its 3 pages */
    mine += 3 * PAGE;
    st = stats();
    rudo_get_thread_stats(&ts1);
    uint64_t got = st.bytes_allocated - b0, tgot = ts1.bytes_allocated - ts0.bytes_allocated;
    CHECK(got >= mine);
    CHECK(tgot >= mine);
    /* GC stress collections retire pages: more pages are taken. */
    if (!test_stress_on()) {
        CHECK(got <= mine + 5 * PAGE);
        CHECK(tgot <= mine + 5 * PAGE);
        CHECK_EQ(tgot, got);
    }

    /* live_bytes after a major: exactly the cells the roots reach. */
    rudo_root_add(&stats_root);
    void **arr = rudo_alloc(k_layout, 800); /* class 896 */
    stats_root = arr;
    for (int i = 0; i < 100; i++)
        rudo_write(arr, &arr[i], probe((uint64_t)i));
    rudo_collect();
    st = stats();
    size_t expect_live = rudo_size(arr) + 100 * 32;
    CHECK_EQ(st.live_bytes, expect_live);
    CHECK(st.heap_bytes >= st.live_bytes);
    /* Marker statistics: the live objects, each marked once. */
    rudo_marker_stats ms[8];
    unsigned nm = rudo_get_marker_stats(ms, 8);
    CHECK_EQ(nm, markers);
    CHECK_EQ(rudo_get_marker_stats(NULL, 0), markers); /* may exceed max */
    uint64_t marked = 0;
    for (unsigned i = 0; i < nm && i < 8; i++)
        marked += ms[i].objects_marked;
    CHECK_EQ(marked, (uint64_t)101);
    /* finalizers_run: the 100 probes, dropped. */
    stats_root = NULL;
    rudo_collect();
    st = stats();
    CHECK_EQ(st.finalizers_run, (uint64_t)100);
    /* Finalized objects stay allocated until the next collection. */
    rudo_collect();
    st = stats();
    CHECK_EQ(st.live_bytes, (size_t)0);

    /* promoted_bytes_total: the young bytes a minor made old. */
    rudo_stats s0 = stats();
    arr = rudo_alloc(k_layout, 800);
    stats_root = arr;
    /* Through the barrier: a GC stress collection in probe() may make
     * arr old before the store. */
    for (int i = 0; i < 50; i++)
        rudo_write(arr, &arr[i], probe(200 + (uint64_t)i));
    for (int i = 0; i < 50; i++)
        (void)rudo_malloc_atomic(32);      /* young garbage */
    rudo_collect_minor();
    st = stats();
    if (g) {
        CHECK(test_stress_on() ? st.minor_collections > s0.minor_collections
                              : st.minor_collections - s0.minor_collections == 1);
        if (!test_stress_on())
            CHECK_EQ(st.promoted_bytes_total - s0.promoted_bytes_total,
                     (uint64_t)(rudo_size(arr) + 50 * 32));
        /* Old now: a second minor promotes nothing. */
        s0 = st;
        rudo_collect_minor();
        st = stats();
        if (!test_stress_on())
            CHECK_EQ(st.promoted_bytes_total, s0.promoted_bytes_total);
    } else {
        CHECK_EQ(st.minor_collections, (uint64_t)0);
        CHECK_EQ(st.promoted_bytes_total, (uint64_t)0);
        CHECK_EQ(st.major_collections, st.collections);
        CHECK_EQ(st.minor_pause_ns_total, (uint64_t)0);
    }
    check_pause_invariants(&st);
    stats_root = NULL;
    rudo_collect();

    /* Per-thread figures: the worker's allocation and collections are its
     * own; the main thread's are unchanged meanwhile. */
    test_worker_start();
    rudo_get_thread_stats(&ts0);
    st = stats();
    uint64_t pause0 = st.pause_ns_total;
    test_on_worker(worker_stats_job, NULL);
    CHECK_EQ(worker_saw_threads, 2u);
    rudo_get_thread_stats(&ts1);
    rudo_stats st2 = stats();
    CHECK_EQ(ts1.bytes_allocated, ts0.bytes_allocated);
    if (!test_stress_on()) {
        CHECK_EQ(ts1.collections, ts0.collections);
        CHECK_EQ(worker_ts1.collections - worker_ts0.collections, (uint64_t)2);
    } else {
        CHECK(worker_ts1.collections - worker_ts0.collections >= 2);
    }
    CHECK(worker_ts1.bytes_allocated - worker_ts0.bytes_allocated >= MIB);
    CHECK(worker_ts1.collect_ns > worker_ts0.collect_ns);
    CHECK(worker_ts1.collect_ns - worker_ts0.collect_ns <= st2.pause_ns_total - pause0);
    CHECK(st2.bytes_allocated - st.bytes_allocated >= MIB);
    test_worker_stop();
    CHECK_EQ(stats().threads_attached, 1u);
    /* The main thread's collect_ns sums its own collections' pauses. */
    rudo_get_thread_stats(&ts0);
    st = stats();
    rudo_collect();
    rudo_collect();
    rudo_get_thread_stats(&ts1);
    st2 = stats();
    if (!test_stress_on())
        CHECK_EQ(ts1.collect_ns - ts0.collect_ns, st2.pause_ns_total - st.pause_ns_total);
    check_pause_invariants(&st2);
    CHECK(st2.lazy_sweep_ns_total >= st.lazy_sweep_ns_total);
    CHECK_EQ(rudo_root_remove(&stats_root), RUDO_OK);
    rudo_heap_destroy();
}


/* Statistics across frees, minors and re-attachment. */
static rudo_thread_stats reattach_ts[3];
static void *reattach_thread(void *arg) {
    (void)arg;
    rudo_thread_attach();
    stats_alloc_job((void *)(uintptr_t)64); /* 256 KiB */
    rudo_get_thread_stats(&reattach_ts[0]);
    rudo_thread_detach();
    rudo_thread_attach();
    rudo_get_thread_stats(&reattach_ts[1]);
    stats_alloc_job((void *)(uintptr_t)16); /* 64 KiB */
    rudo_get_thread_stats(&reattach_ts[2]);
    rudo_thread_detach();
    return NULL;
}
static void test_stats_more(void) {
    make_heap(1, true);
    bool g = gen_mode(true);
    rudo_root_add(&stats_root);
    /* heap_peak_bytes: the maximum, kept when the heap shrinks. */
    void **big = rudo_alloc(k_layout, 64);
    stats_root = big;
    for (int i = 0; i < 8; i++)
        rudo_write(big, &big[i], rudo_malloc_atomic(2 * MIB));
    rudo_stats st = stats();
    size_t high = st.heap_bytes;
    CHECK(high >= 16 * MIB);
    stats_root = NULL;
    rudo_collect();
    st = stats();
    CHECK(st.heap_bytes < high);
    CHECK(st.heap_peak_bytes >= high);

    /* "young bytes made old by minors": an old large object freed with
     * rudo_free before a minor that promotes 10 objects. */
    void **holder = rudo_alloc(k_layout, 800);
    stats_root = holder;
    void *old_big = rudo_malloc_atomic(MIB);
    rudo_write(holder, &holder[0], old_big);
    rudo_collect(); /* holder and old_big old */
    rudo_write(holder, &holder[0], NULL);
    if (!verify_on())
        rudo_free(old_big);
    old_big = NULL;
    rudo_stats s0 = stats();
    for (int i = 1; i <= 10; i++)
        rudo_write(holder, &holder[i], rudo_malloc_atomic(32));
    rudo_collect_minor();
    st = stats();
    if (g && !test_stress_on() && !verify_on()) {
        CHECK_EQ(st.promoted_bytes_total - s0.promoted_bytes_total, (uint64_t)320);
        /* rudo.h: after a minor, old objects freed with rudo_free still
         * count until the next major (a minor re-counts only touched
         * pages): the 1 MiB object freed above is still in. */
        CHECK_EQ(st.live_bytes, s0.live_bytes + 320);
    }
    /* live_bytes after a minor: rudo.h says old objects that died since
     * the last major still count. */
    rudo_collect();
    size_t live_major = stats().live_bytes;
    void **dead_old = (void **)holder[1];
    (void)dead_old;
    rudo_write(holder, &holder[1], NULL); /* an old 32-byte object dies */
    rudo_collect_minor();
    st = stats();
    if (g && !test_stress_on()) {
        CHECK_EQ(st.live_bytes, live_major);
    }
    stats_root = NULL;
    rudo_collect();

    /* rudo_get_thread_stats: "since it attached" — a re-attached thread
     * starts from zero. */
    pthread_t t;
    rudo_blocking_enter();
    pthread_create(&t, NULL, reattach_thread, NULL);
    pthread_join(t, NULL);
    rudo_blocking_leave();
    CHECK(reattach_ts[0].bytes_allocated >= 256 * 1024);
    CHECK(reattach_ts[1].bytes_allocated == 0);
    CHECK_EQ(reattach_ts[1].collections, (uint64_t)0);
    CHECK(reattach_ts[2].bytes_allocated >= 64 * 1024 &&
          reattach_ts[2].bytes_allocated < reattach_ts[0].bytes_allocated);
    CHECK_EQ(rudo_root_remove(&stats_root), RUDO_OK);
    rudo_heap_destroy();
}

/* markers 0 = the number of online CPUs. */
static void test_stats_markers_default(void) {
    if (getenv("RUDO_MARKERS"))
        return;
    rudo_config cfg = test_precise_config(0);
    make_heap_cfg(&cfg);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK_EQ((long)stats().markers, cpus);
    rudo_collect();
    CHECK_EQ((long)rudo_get_marker_stats(NULL, 0), cpus);
    rudo_heap_destroy();
}

/* ======================================================================== */
/* Aborts                                                                   */
/* ======================================================================== */

static void child_heap(void) {
    alarm(10);
    make_heap(1, false);
}

/* Without a heap, by number. */
static void d_no_heap(void *a) {
    alarm(10);
    rudo_thread_stats ts;
    rudo_marker_stats ms;
    static char buf[64] __attribute__((aligned(16)));
    switch ((int)(uintptr_t)a) {
    case 0: (void)rudo_alloc_array(RUDO_KIND_ATOMIC, 2, 8); break;
    case 1: (void)rudo_alloc_aligned(RUDO_KIND_ATOMIC, 64, 64); break;
    case 2: (void)rudo_realloc(buf, 64); break;
    case 3: rudo_free(buf); break;
    case 4: (void)rudo_malloc(16); break;
    case 5: (void)rudo_malloc_atomic(16); break;
    case 6: rudo_get_thread_stats(&ts); break;
    case 7: (void)rudo_get_marker_stats(&ms, 1); break;
    case 8: (void)rudo_realloc(NULL, 64); break;
    case 9: (void)rudo_alloc(RUDO_KIND_ATOMIC, SIZE_MAX); break;
    }
}
/* rudo_malloc is rudo_alloc: the message names it. The calls built on
 * rudo_alloc (array, aligned, realloc, realloc of NULL too) name
 * themselves: they check the caller first. */
static const char *const no_heap_needle[] = {
    "rudo: rudo_alloc_array: no heap", "rudo: rudo_alloc_aligned: no heap",
    "rudo: rudo_realloc: no heap", "rudo: rudo_free: no heap",
    "rudo: rudo_alloc: no heap", "rudo: rudo_alloc: no heap",
    "rudo: rudo_get_thread_stats: no heap", "rudo: rudo_get_marker_stats: no heap",
    "rudo: rudo_realloc: no heap", "rudo: rudo_alloc: no heap"};
#define N_NO_HEAP (sizeof no_heap_needle / sizeof no_heap_needle[0])

/* From an unattached thread, by number (the main thread waits in a
 * blocking region). */
static void *shared_obj;
static void unattached_op(void *a) {
    rudo_thread_stats ts;
    switch ((int)(uintptr_t)a) {
    case 0: (void)rudo_alloc_array(RUDO_KIND_ATOMIC, 2, 8); break;
    case 1: (void)rudo_alloc_aligned(RUDO_KIND_ATOMIC, 64, 64); break;
    case 2: (void)rudo_realloc(shared_obj, 4096); break; /* grows */
    case 3: rudo_free(shared_obj); break;
    case 4: rudo_get_thread_stats(&ts); break;
    case 5: (void)rudo_realloc(shared_obj, 16); break; /* shrinks */
    }
}
static void d_unattached(void *a) {
    child_heap();
    shared_obj = rudo_malloc(64);
    on_unattached(unattached_op, a);
}
static const char *const unattached_fn[] = {
    "rudo: rudo_alloc_array: the calling thread is not attached",
    "rudo: rudo_alloc_aligned: the calling thread is not attached",
    "rudo: rudo_realloc: the calling thread is not attached",
    "rudo: rudo_free: the calling thread is not attached",
    "rudo: rudo_get_thread_stats: the calling thread is not attached",
    "rudo: rudo_realloc: the calling thread is not attached"};

/* In a blocking region, by number. */
static void d_blocking(void *a) {
    child_heap();
    void *o = rudo_malloc(64);
    rudo_blocking_enter();
    switch ((int)(uintptr_t)a) {
    case 0: (void)rudo_alloc_array(RUDO_KIND_ATOMIC, 2, 8); break;
    case 1: (void)rudo_alloc_aligned(RUDO_KIND_ATOMIC, 64, 64); break;
    case 2: (void)rudo_realloc(o, 4096); break;
    case 3: (void)rudo_realloc(o, 16); break;
    }
}

/* In a trace callback, by number. */
static int trace_op;
static void *trace_target;
static void trace_misuse(void *obj, size_t size, rudo_tracer *tr) {
    (void)obj;
    (void)size;
    (void)tr;
    switch (trace_op) {
    case 0: (void)rudo_alloc_array(RUDO_KIND_ATOMIC, 2, 8); break;
    case 1: (void)rudo_alloc_aligned(RUDO_KIND_ATOMIC, 64, 64); break;
    case 2: (void)rudo_realloc(trace_target, 4096); break;
    case 3: rudo_free(trace_target); break;
    case 4: (void)rudo_realloc(trace_target, 16); break;
    }
}
static void d_trace(void *a) {
    child_heap();
    trace_op = (int)(uintptr_t)a;
    rudo_kind k = rudo_kind_traced("allocq/misuse", trace_misuse);
    trace_target = rudo_malloc(64);
    rudo_root_add(&trace_target);
    static void *holder;
    holder = rudo_alloc(k, 16);
    rudo_root_add(&holder);
    rudo_collect();
}

/* Other argument errors. */
static void d_misc(void *a) {
    child_heap();
    switch ((int)(uintptr_t)a) {
    case 0: (void)rudo_alloc_array(RUDO_KIND_ATOMIC, 0, 8); break;
    case 1: (void)rudo_alloc_array(RUDO_KIND_ATOMIC, SIZE_MAX, 2); break;
    case 2: (void)rudo_alloc_aligned(999, 64, 64); break;
    case 3: (void)rudo_alloc_array(999, 2, 8); break;
    case 4: (void)rudo_alloc_aligned(RUDO_KIND_ATOMIC, 0, 64); break;
    case 5: (void)rudo_alloc_aligned(RUDO_KIND_ATOMIC, 64, 0); break;
    case 6: (void)rudo_alloc_aligned(RUDO_KIND_ATOMIC, 64, 2 * PAGE); break;
    case 7: {
        void *o = rudo_malloc(64);
        rudo_realloc((char *)o + 16, 128); /* interior */
        break;
    }
    case 8: {
        static char stack_like[64];
        rudo_realloc(stack_like, 128); /* not from rudo */
        break;
    }
    case 9: {
        void *o = rudo_malloc(100000);
        if (!verify_on())
            rudo_free(o);
        else
            rudo_collect(); /* unreachable (precise): gone */
        rudo_realloc(o, 128); /* freed */
        break;
    }
    case 10: (void)rudo_alloc(RUDO_KIND_ATOMIC, 0); break;
    case 11: (void)rudo_malloc(0); break;
    case 12: rudo_get_thread_stats(NULL); break;
    case 13: {
        void *o = rudo_malloc(64);
        (void)rudo_realloc(o, 0);
        break;
    }
    }
}
static const char *const misc_needle[] = {
    "rudo: rudo_alloc_array: size 0", "rudo: rudo_alloc_array: ", "unknown kind 999", "unknown kind 999",
    "rudo: rudo_alloc_aligned: size 0", "rudo: rudo_alloc_aligned: alignment 0",
    "rudo: rudo_alloc_aligned: alignment 131072",
    "rudo: rudo_realloc: ", "rudo: rudo_realloc: ", "rudo: rudo_realloc: ",
    "rudo: rudo_alloc: size 0", "rudo: rudo_alloc: size 0",
    "rudo: rudo_get_thread_stats: out is NULL", "rudo: rudo_realloc: size 0"};
#define N_MISC (sizeof misc_needle / sizeof misc_needle[0])

static void test_aborts(void) {
    char what[160];
    for (size_t i = 0; i < N_NO_HEAP; i++) {
        snprintf(what, sizeof what, "no heap #%zu", i);
        expect_death(what, d_no_heap, (void *)(uintptr_t)i, no_heap_needle[i]);
    }
    for (size_t i = 0; i < 7; i++) {
        snprintf(what, sizeof what, "%s without a heap (#%zu)", query_fn[i], i);
        char needle[96];
        snprintf(needle, sizeof needle, "rudo: %s: no heap", query_fn[i]);
        expect_death(what, d_query_no_heap, (void *)(uintptr_t)i, needle);
    }
    expect_death("rudo_write_range without a heap", d_range_no_heap, NULL,
                 "rudo: rudo_write_range: no heap");
    for (size_t i = 0; i < 6; i++) {
        snprintf(what, sizeof what, "unattached #%zu", i);
        expect_death(what, d_unattached, (void *)(uintptr_t)i, unattached_fn[i]);
    }
    const char *blk[4] = {"blocking region", "blocking region", "blocking region",
                          "blocking region"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(what, sizeof what, "blocking region #%zu", i);
        expect_death(what, d_blocking, (void *)(uintptr_t)i, blk[i]);
    }
    const char *tr[5] = {"called from the trace callback of kind 'allocq/misuse'",
                         "called from the trace callback of kind 'allocq/misuse'",
                         "called from the trace callback of kind 'allocq/misuse'",
                         "rudo: rudo_free: called from the trace callback",
                         "called from the trace callback of kind 'allocq/misuse'"};
    for (size_t i = 0; i < 5; i++) {
        snprintf(what, sizeof what, "trace callback #%zu", i);
        expect_death(what, d_trace, (void *)(uintptr_t)i, tr[i]);
    }
    for (size_t i = 0; i < N_MISC; i++) {
        snprintf(what, sizeof what, "misc #%zu", i);
        expect_death(what, d_misc, (void *)(uintptr_t)i, misc_needle[i]);
    }
    if (gen_mode(true)) {
        const char *rn[7] = {"rudo: rudo_write_range: (nil) is not the base",
                             "rudo: rudo_write_range: ", "rudo: rudo_write_range: range",
                             "rudo: rudo_write_range: range", "rudo: rudo_write_range: range",
                             "rudo: rudo_write_range: range", "rudo: rudo_write_range: range"};
        for (size_t i = 0; i < 7; i++) {
            snprintf(what, sizeof what, "rudo_write_range #%zu", i);
            expect_death(what, d_range, (void *)(uintptr_t)i, rn[i]);
        }
    }
}


int main(void) {
    test_start_watchdog();
    uint64_t t0 = test_now_ns();
    test_zero_align();
    test_huge();
    test_full_one_collection();
    test_fragmented();
    test_barrier_gen();
    test_barrier_edges();
    test_queries();
    for (unsigned markers = 1; markers <= 4; markers *= 2) {
        test_stats(false, markers);
        test_stats(true, markers);
    }
    test_stats_more();
    test_stats_markers_default();
    test_aborts();
    fprintf(stderr, "time %.2f s\n", (double)(test_now_ns() - t0) / 1e9);
    return test_report();
}
