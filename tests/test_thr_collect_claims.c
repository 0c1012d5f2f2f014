/* test_thr_collect_claims.c — the claims of rudo.h's "Collection" section
 * that no other test checks, one check each (the others: test_thr_control,
 * test_listener, test_max_heap_cap, test_gen, test_misuse_ctx, test_errors,
 * test_finalize, test_thr_collect_storm, test_thr_blocking):
 *
 *  - every call of the section aborts with "rudo: <function>: no heap"
 *    before a heap exists (project rule: a message, never a crash);
 *  - rudo_collect_minor "aborts as rudo_collect does": unattached thread,
 *    blocking region, trace callback; rudo_collect and rudo_collect_minor
 *    abort from a listener's begin and phase ("must not ... collect") and
 *    from a root callback;
 *  - rudo_disable: the heap-limit message; weak slots not cleared and
 *    finalizers not run while disabled (allocation's trigger, GC stress,
 *    rudo_collect, rudo_collect_minor); disable and enable from a thread
 *    that is not attached;
 *  - rudo_hold_collections: no wait (it may be called with the world
 *    stopped), and a collection that started before the flag became
 *    nonzero runs to its end;
 *  - rudo_set_growth: RUDO_EINVAL with a message for every value that is
 *    not in (0, 1000] (negative, -0, NaN, infinities, just above 1000),
 *    RUDO_OK at 1000 and just above 0; growth and growth_limit take effect
 *    at the next collection's trigger;
 *  - rudo_set_max_heap: SIZE_MAX and values at or above the reservation
 *    mean no bound (and no budget); a value below the pages in use stops
 *    growth there (NULL, the handler, no new pages), and 0 lifts it;
 *    rudo_set_max_heap_cap returns RUDO_OK for 0 and SIZE_MAX;
 *  - rudo_set_initial_heap: with generations, the floor of the major rule;
 *    SIZE_MAX is accepted and the heap limit still collects;
 *  - rudo_gc_event: number is 1 for the first collection; live_bytes and
 *    heap_bytes are the statistics' after the collection; begin sees the
 *    number, ttsp, minor and phase_ns[STOP] (= ttsp) set and the rest zero;
 *  - the calls that wait while a collection runs abort with a message when
 *    made from inside one (a listener's begin, a root or trace callback),
 *    where they would wait for themselves (they used to hang, silently);
 *  - the listener: begin and phase run with the world stopped, on the
 *    collecting thread (the callback too); end after it resumed, with the
 *    callback's event; it is copied; any member may be NULL;
 *  - the collection callback: after the world resumed, on every
 *    collection (explicit, minor, automatic), with its data; NULL removes;
 *    it may allocate, and a collection it starts calls it again, nested;
 *  - rudo_collect_minor: concurrent requests are served by one collection.
 *
 * Precise setup (no stack or static-data scanning): roots are explicit. */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rudo.h"
#include "testlib.h"


#define MIB ((size_t)1 << 20)

static unsigned long oom_calls;
static void on_oom(size_t size, void *data) {
    (void)size;
    (void)data;
    oom_calls++;
}

/* Whether a heap asked to be generational (or not) is: RUDO_GENERATIONAL
 * overrides the config. */
static bool gen_mode(bool asked) {
    long env = test_env_long("RUDO_GENERATIONAL", -1);
    return env == -1 ? asked : env != 0;
}

/* A precise heap with the OOM counter: generational or not. */
static void make_heap(bool gen, unsigned markers) {
    rudo_config cfg = test_precise_config(markers);
    cfg.generational = gen;
    cfg.on_oom = on_oom;
    test_heap_create(&cfg);
}

static rudo_stats stats(void) {
    rudo_stats st;
    rudo_get_stats(&st);
    return st;
}

/* Allocates `total` bytes of 4 KiB atomic garbage; returns the number of
 * collections that ran meanwhile. */
static uint64_t churn(size_t total) {
    uint64_t c0 = stats().collections;
    for (size_t n = 0; n < total; n += 4096) {
        char *p = rudo_malloc_atomic(4096);
        if (!p) {
            CHECK(p != NULL);
            break;
        }
        p[0] = 1;
    }
    return stats().collections - c0;
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ======================================================================== */
/* Death tests: each child makes its own heap; an alarm turns a hang into  */
/* a failure (SIGALRM is no SIGABRT).                                       */
/* ======================================================================== */

static void child_heap(bool gen, unsigned markers) {
    alarm(10);
    make_heap(gen, markers);
}

/* ---- no heap ---- */
static void nh_collect_minor(void *a) { (void)a; rudo_collect_minor(); }
static void nh_disable(void *a) { (void)a; rudo_disable(); }
static void nh_enable(void *a) { (void)a; rudo_enable(); }
static void nh_is_disabled(void *a) { (void)a; (void)rudo_is_disabled(); }
static void nh_max_heap(void *a) { (void)a; (void)rudo_set_max_heap(MIB); }
static void nh_max_heap_cap(void *a) { (void)a; (void)rudo_set_max_heap_cap(MIB); }
static void nh_growth(void *a) { (void)a; (void)rudo_set_growth(2.0, 0); }
static void nh_listener(void *a) {
    (void)a;
    rudo_gc_listener l = {0};
    rudo_set_gc_listener(&l);
}
static void nh_callback(void *a) { (void)a; rudo_set_gc_callback(NULL, NULL); }

/* ---- rudo_collect_minor as rudo_collect ---- */
static void *minor_unattached_thread(void *a) {
    (void)a;
    rudo_collect_minor();
    return NULL;
}
static void minor_unattached(void *a) {
    (void)a;
    child_heap(true, 1);
    pthread_t t;
    pthread_create(&t, NULL, minor_unattached_thread, NULL);
    pthread_join(t, NULL);
}
static void minor_in_region(void *a) {
    (void)a;
    child_heap(true, 1);
    rudo_blocking_enter();
    rudo_collect_minor();
}
static void *trace_root;
static void trace_minor(void *obj, size_t size, rudo_tracer *tr) {
    (void)obj;
    (void)size;
    (void)tr;
    rudo_collect_minor();
}
static void minor_in_trace(void *a) {
    (void)a;
    child_heap(true, 1);
    rudo_root_add(&trace_root);
    trace_root = rudo_alloc(rudo_kind_traced("claims/minor-in-trace", trace_minor), 32);
    rudo_collect();
}

/* ---- collecting from a listener or a root callback ---- */
static void begin_collects(const rudo_gc_event *ev, void *data) {
    (void)ev;
    (void)data;
    rudo_collect();
}
static void phase_collects_minor(rudo_gc_phase ph, uint64_t ns, void *data) {
    (void)ns;
    (void)data;
    if (ph == RUDO_PHASE_MARK)
        rudo_collect_minor();
}
static void collect_in_begin(void *a) {
    (void)a;
    child_heap(false, 2);
    rudo_gc_listener l = {.begin = begin_collects};
    rudo_set_gc_listener(&l);
    rudo_collect();
}
static void minor_in_phase(void *a) {
    (void)a;
    child_heap(true, 2);
    rudo_gc_listener l = {.phase = phase_collects_minor};
    rudo_set_gc_listener(&l);
    rudo_collect_minor();
}
static void root_cb_collects(rudo_tracer *tr, void *data) {
    (void)tr;
    (void)data;
    rudo_collect();
}
static void collect_in_root_cb(void *a) {
    (void)a;
    child_heap(false, (unsigned)(uintptr_t)a);
    rudo_root_callback_add(root_cb_collects, NULL);
    rudo_collect();
}

/* ---- calls that wait for the end of a collection, made from inside one:
 * they would park the collecting thread (or a marker) until the collection
 * it runs ends, for ever; they abort with a message instead (rudo.h's
 * conventions; rudo__lock_idle). Before, they hung without a word. */
static int hang_which;
static void begin_waits(const rudo_gc_event *ev, void *data) {
    (void)ev;
    (void)data;
    switch (hang_which) {
    case 0: rudo_disable(); break;
    case 1: (void)rudo_set_max_heap(0); break;
    case 2: (void)rudo_set_max_heap_cap(0); break;
    case 3: (void)rudo_set_growth(2.0, 0); break;
    case 4: (void)rudo_set_initial_heap(0); break;
    case 5: rudo_set_gc_listener(NULL); break;
    case 6: rudo_set_gc_callback(NULL, NULL); break;
    case 7: { rudo_stats st; rudo_get_stats(&st); } break;
    case 8: rudo_root_add(&trace_root); break;
    case 9: (void)rudo_weak_register(&trace_root); break;
    }
}
static void waits_in_begin(void *a) {
    hang_which = (int)(uintptr_t)a;
    child_heap(false, 1);
    alarm(3);
    rudo_gc_listener l = {.begin = begin_waits};
    rudo_set_gc_listener(&l);
    rudo_collect();
}
static void root_cb_disables(rudo_tracer *tr, void *data) {
    (void)tr;
    (void)data;
    rudo_disable();
}
static void disable_in_root_cb(void *a) {
    (void)a;
    child_heap(false, 1);
    alarm(3);
    rudo_root_callback_add(root_cb_disables, NULL);
    rudo_collect();
}
static void trace_disables(void *obj, size_t size, rudo_tracer *tr) {
    (void)obj;
    (void)size;
    (void)tr;
    rudo_disable();
}
static void disable_in_trace(void *a) {
    (void)a;
    child_heap(false, 1);
    alarm(3);
    rudo_root_add(&trace_root);
    trace_root = rudo_alloc(rudo_kind_traced("claims/disable-in-trace", trace_disables), 32);
    rudo_collect();
}

static void death_tests(void) {
    static const struct {
        const char *what;
        void (*fn)(void *);
        const char *needle;
    } no_heap[] = {
        {"rudo_collect_minor without a heap", nh_collect_minor, "rudo: rudo_collect_minor: no heap"},
        {"rudo_disable without a heap", nh_disable, "rudo: rudo_disable: no heap"},
        {"rudo_enable without a heap", nh_enable, "rudo: rudo_enable: no heap"},
        {"rudo_is_disabled without a heap", nh_is_disabled, "rudo: rudo_is_disabled: no heap"},
        {"rudo_set_max_heap without a heap", nh_max_heap, "rudo: rudo_set_max_heap: no heap"},
        {"rudo_set_max_heap_cap without a heap", nh_max_heap_cap,
         "rudo: rudo_set_max_heap_cap: no heap"},
        {"rudo_set_growth without a heap", nh_growth, "rudo: rudo_set_growth: no heap"},
        {"rudo_set_gc_listener without a heap", nh_listener, "rudo: rudo_set_gc_listener: no heap"},
        {"rudo_set_gc_callback without a heap", nh_callback, "rudo: rudo_set_gc_callback: no heap"},
    };
    for (size_t i = 0; i < sizeof no_heap / sizeof *no_heap; i++)
        expect_death(no_heap[i].what, no_heap[i].fn, NULL, no_heap[i].needle);

    expect_death("rudo_collect_minor: unattached thread", minor_unattached, NULL,
                 "rudo: rudo_collect_minor: the calling thread is not attached");
    expect_death("rudo_collect_minor in a blocking region", minor_in_region, NULL,
                 "rudo: rudo_collect_minor: called inside a blocking region");
    expect_death("rudo_collect_minor in a trace callback", minor_in_trace, NULL,
                 "rudo: rudo_collect_minor: called from the trace callback of kind "
                 "'claims/minor-in-trace' (trace callbacks must not collect)");
    expect_death("rudo_collect in a listener's begin", collect_in_begin, NULL,
                 "rudo: rudo_collect: called from the trace callback of kind "
                 "'(gc listener)' (trace callbacks must not collect)");
    expect_death("rudo_collect_minor in a listener's phase", minor_in_phase, NULL,
                 "rudo: rudo_collect_minor: called from the trace callback of kind "
                 "'(gc listener)' (trace callbacks must not collect)");
    expect_death("rudo_collect in a root callback (1 marker)", collect_in_root_cb,
                 (void *)(uintptr_t)1,
                 "rudo: rudo_collect: called from the trace callback of kind '(root callback)'");
    expect_death("rudo_collect in a root callback (3 markers)", collect_in_root_cb,
                 (void *)(uintptr_t)3,
                 "rudo: rudo_collect: called from the trace callback of kind '(root callback)'");
    static const char *const waits[] = {
        "rudo_disable",          "rudo_set_max_heap",    "rudo_set_max_heap_cap",
        "rudo_set_growth",       "rudo_set_initial_heap", "rudo_set_gc_listener",
        "rudo_set_gc_callback",  "rudo_get_stats",       "rudo_root_add",
        "rudo_weak_register",
    };
    for (uintptr_t i = 0; i < sizeof waits / sizeof *waits; i++) {
        char what[96], needle[192];
        snprintf(what, sizeof what, "%s from a listener's begin", waits[i]);
        snprintf(needle, sizeof needle, "rudo: %s: called from the trace callback of "
                 "kind '(gc listener)' (trace callbacks must not wait for a "
                 "collection to end)", waits[i]);
        expect_death(what, waits_in_begin, (void *)i, needle);
    }
    expect_death("rudo_disable from a root callback", disable_in_root_cb, NULL,
                 "rudo: rudo_disable: called from the trace callback of kind "
                 "'(root callback)' (trace callbacks must not wait");
    expect_death("rudo_disable from a trace callback", disable_in_trace, NULL,
                 "rudo: rudo_disable: called from the trace callback of kind "
                 "'claims/disable-in-trace' (trace callbacks must not wait");
}

/* ======================================================================== */
/* rudo_disable                                                             */
/* ======================================================================== */

static int fin_calls;
static void fin_count(void *obj, void *data) {
    (void)obj;
    (void)data;
    fin_calls++;
}

/* While disabled: no collection of any source (allocation's trigger,
 * rudo_collect, rudo_collect_minor, GC stress when `stress`), so a weak
 * slot to an unreachable object keeps it and its finalizer does not run;
 * after rudo_enable the next collection clears and finalizes. */
static void test_disabled_keeps(bool gen, bool stress) {
    if (stress)
        setenv("RUDO_GC_STRESS", "50", 1);
    make_heap(gen, 2);
    if (stress)
        unsetenv("RUDO_GC_STRESS");
    /* Disabled first: in stress mode the allocations below collect. */
    rudo_disable();
    static void *weak;
    weak = rudo_malloc_atomic(64);
    CHECK_EQ(rudo_weak_register(&weak), RUDO_OK);
    void *target = weak;
    fin_calls = 0;
    CHECK_EQ(rudo_finalizer_register(rudo_malloc(64), fin_count, NULL), RUDO_OK);
    uint64_t c0 = stats().collections;
    uint64_t during = churn(stress ? 4 * MIB : 32 * MIB); /* 8x the trigger */
    rudo_collect();
    rudo_collect_minor();
    CHECK_EQ(during, 0);
    CHECK_EQ(stats().collections, c0);
    CHECK(weak == target);
    CHECK_EQ(fin_calls, 0);
    rudo_enable();
    rudo_collect();
    CHECK(weak == NULL);
    CHECK_EQ(fin_calls, 1);
    CHECK(stats().collections > c0);
    if (stress) /* enabled, stress mode collects again */
        CHECK(churn(4 * MIB) >= 10);
    rudo_heap_destroy();
}

/* At max_heap while disabled: the message (the handler then NULL is
 * test_thr_control's). */
static void test_disabled_limit_message(void) {
    make_heap(false, 1);
    CHECK_EQ(rudo_set_max_heap(4 * MIB), RUDO_OK);
    rudo_disable();
    oom_calls = 0;
    size_t ok = 0;
    test_capture_begin();
    while (rudo_malloc_atomic(4000) != NULL && ok < 100000)
        ok++;
    char msg[1024];
    test_captured(msg, sizeof msg);
    test_capture_end();
    CHECK(ok > 100 && ok < 2000);
    CHECK_EQ(oom_calls, 1ul);
    CHECK(strstr(msg, "rudo: rudo_alloc: heap limit reached while collection is "
                      "disabled (rudo_disable)") != NULL);
    CHECK(strstr(msg, "rudo_hold_collections") == NULL); /* the other message */
    rudo_enable();
    CHECK(rudo_malloc_atomic(4000) != NULL);
    rudo_heap_destroy();
}

/* "Thread-safe": a thread that is not attached may disable and enable. */
static bool unattached_saw_disabled;
static void *unattached_disable(void *a) {
    (void)a;
    rudo_disable();
    return NULL;
}
static void *unattached_enable(void *a) {
    (void)a;
    unattached_saw_disabled = rudo_is_disabled();
    rudo_enable();
    return NULL;
}
static void join_blocking(pthread_t t) {
    rudo_blocking_enter();
    pthread_join(t, NULL);
    rudo_blocking_leave();
}
static void test_disable_unattached(void) {
    make_heap(false, 1);
    pthread_t t;
    pthread_create(&t, NULL, unattached_disable, NULL);
    join_blocking(t);
    CHECK(rudo_is_disabled());
    uint64_t c0 = stats().collections;
    rudo_collect();
    CHECK_EQ(stats().collections, c0);
    pthread_create(&t, NULL, unattached_enable, NULL);
    join_blocking(t);
    CHECK(unattached_saw_disabled);
    CHECK(!rudo_is_disabled());
    rudo_collect();
    CHECK_EQ(stats().collections, c0 + 1);
    rudo_heap_destroy();
}

/* ======================================================================== */
/* rudo_hold_collections                                                    */
/* ======================================================================== */

/* Installed from a listener's begin (world stopped: "no wait"), the flag
 * does not stop the collection under way ("runs to its end"); the next
 * explicit one is held. */
static int hold_flag = 1;
static const int *hold_prev = (const int *)1;
static uint64_t hold_end_number;
static void begin_holds(const rudo_gc_event *ev, void *data) {
    (void)ev;
    (void)data;
    hold_prev = rudo_hold_collections(&hold_flag);
}
static void end_holds(const rudo_gc_event *ev, void *data) {
    (void)data;
    hold_end_number = ev->number;
}
static void test_hold_from_begin(void) {
    make_heap(false, 2);
    static void *weak;
    weak = rudo_malloc_atomic(64);
    CHECK_EQ(rudo_weak_register(&weak), RUDO_OK);
    rudo_gc_listener l = {.begin = begin_holds, .end = end_holds};
    rudo_set_gc_listener(&l);
    uint64_t c0 = stats().collections;
    rudo_collect();
    CHECK(hold_prev == NULL);
    CHECK_EQ(stats().collections, c0 + 1);
    CHECK_EQ(hold_end_number, c0 + 1);
    CHECK(weak == NULL); /* the collection did its work */
    rudo_set_gc_listener(NULL);
    rudo_collect();
    CHECK_EQ(stats().collections, c0 + 1);
    CHECK(rudo_hold_collections(NULL) == &hold_flag);
    rudo_collect();
    CHECK_EQ(stats().collections, c0 + 2);
    rudo_heap_destroy();
}

/* ======================================================================== */
/* rudo_set_growth, rudo_set_max_heap, rudo_set_max_heap_cap,               */
/* rudo_set_initial_heap                                                    */
/* ======================================================================== */

static void test_growth_values(void) {
    make_heap(false, 1);
    const double bad[] = {-1.0, -0.0, 0.0, -1e-300, NAN, -NAN, INFINITY, -INFINITY,
                          0x1.f400000000001p+9 /* 1000 + 1 ulp */, 1001.0, DBL_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        test_capture_begin();
        int rc = rudo_set_growth(bad[i], 0);
        char msg[512];
        test_captured(msg, sizeof msg);
        test_capture_end();
        if (rc != RUDO_EINVAL || strstr(msg, "rudo: rudo_set_growth: ") == NULL)
            fprintf(stderr, "rudo_set_growth(%g): rc %d, message '%s'\n", bad[i], rc, msg);
        CHECK_EQ(rc, RUDO_EINVAL);
        CHECK(strstr(msg, "rudo: rudo_set_growth: ") != NULL);
    }
    CHECK_EQ(rudo_set_growth(1000.0, 0), RUDO_OK);
    CHECK_EQ(rudo_set_growth(DBL_MIN, SIZE_MAX), RUDO_OK);
    CHECK_EQ(rudo_set_growth(1e-9, 0), RUDO_OK);
    CHECK_EQ(rudo_set_growth(1.25, 16 * MIB), RUDO_OK);
    rudo_heap_destroy();
}

/* growth and growth_limit at the next collection's trigger: 1 MiB live,
 * no initial_heap floor, 24 MiB of garbage. */
static void *live_obj;
static void test_growth_effect(void) {
    if (gen_mode(false))
        return; /* the generational trigger is the nursery's */
    make_heap(false, 1);
    rudo_root_add(&live_obj);
    live_obj = rudo_malloc_atomic(MIB);
    CHECK_EQ(rudo_set_initial_heap(0), RUDO_OK);
    CHECK_EQ(rudo_set_growth(40.0, 0), RUDO_OK); /* trigger 40 MiB */
    rudo_collect();
    uint64_t wide = churn(24 * MIB);
    CHECK_EQ(rudo_set_growth(2.0, 0), RUDO_OK); /* trigger 2 MiB */
    rudo_collect();
    uint64_t narrow = churn(24 * MIB);
    CHECK_EQ(rudo_set_growth(40.0, MIB), RUDO_OK); /* live + 1 MiB: 2 MiB */
    rudo_collect();
    uint64_t limited = churn(24 * MIB);
    if (test_env_long("TEST_VERBOSE", 0))
        printf("growth 40: %llu collections, growth 2: %llu, growth 40 limit 1 MiB: %llu\n",
               (unsigned long long)wide, (unsigned long long)narrow,
               (unsigned long long)limited);
    if (!test_stress_on())
        CHECK_EQ(wide, 0);
    CHECK(narrow >= 6);
    CHECK(limited >= 6);
    rudo_root_remove(&live_obj);
    rudo_heap_destroy();
}

/* SIZE_MAX and values at or above the 64 GiB reservation: no bound and no
 * budget (the growth rule's trigger: collections in 24 MiB of garbage). */
static void test_max_heap_huge(void) {
    if (gen_mode(false))
        return; /* the generational trigger is the nursery's */
    make_heap(false, 1);
    rudo_root_add(&live_obj);
    live_obj = rudo_malloc_atomic(MIB);
    CHECK_EQ(rudo_set_initial_heap(0), RUDO_OK);
    CHECK_EQ(rudo_set_growth(2.0, 0), RUDO_OK);
    const size_t huge[] = {SIZE_MAX, (size_t)64 << 30, (size_t)1 << 40, SIZE_MAX - 1};
    for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
        CHECK_EQ(rudo_set_max_heap(huge[i]), RUDO_OK);
        rudo_collect();
        uint64_t n = churn(24 * MIB);
        if (n < 6)
            fprintf(stderr, "rudo_set_max_heap(%zu): %llu collections\n", huge[i],
                    (unsigned long long)n);
        CHECK(n >= 6);
    }
    /* No bound: 64 MiB at once. */
    void *big = rudo_malloc_atomic(64 * MIB);
    CHECK(big != NULL);
    big = NULL;
    CHECK_EQ(rudo_set_max_heap_cap(SIZE_MAX), RUDO_OK);
    CHECK_EQ(rudo_set_max_heap_cap(0), RUDO_OK);
    CHECK_EQ(rudo_set_max_heap(0), RUDO_OK);
    rudo_root_remove(&live_obj);
    rudo_heap_destroy();
}

/* A value below the pages in use now stops growth there: 8 MiB of live
 * 1 KiB objects, then max_heap 1 MiB (and 1 byte): more live objects meet
 * NULL and the handler, the heap does not grow, what was there is intact;
 * 0 lifts the bound. */
static uintptr_t *chain; /* 1 KiB nodes: [0] next, [1] index, [2] check */
static void *chain_make(size_t n) {
    for (size_t i = 0; i < n; i++) {
        uintptr_t *x = rudo_malloc(1024);
        if (!x)
            return NULL;
        x[0] = (uintptr_t)chain;
        x[1] = i;
        x[2] = (uintptr_t)test_mix64(i);
        chain = x;
    }
    return chain;
}
static bool chain_ok(size_t n) {
    const uintptr_t *x = chain;
    for (size_t i = n; i-- > 0; x = (const uintptr_t *)x[0])
        if (!x || x[1] != i || x[2] != (uintptr_t)test_mix64(i))
            return false;
    return x == NULL;
}
static void test_max_heap_below(size_t bound) {
    make_heap(false, 1);
    rudo_root_add((void **)&chain);
    chain = NULL;
    CHECK(chain_make(8192) != NULL);
    size_t before = stats().heap_bytes;
    CHECK_EQ(rudo_set_max_heap(bound), RUDO_OK);
    oom_calls = 0;
    static void *extra;
    extra = NULL;
    rudo_root_add(&extra);
    size_t got = 0;
    for (; got < 100000; got++) {
        void **x = rudo_malloc(1000);
        if (!x)
            break;
        x[0] = extra;
        extra = x;
    }
    rudo_stats st = stats();
    if (test_env_long("TEST_VERBOSE", 0))
        printf("max_heap %zu below %zu in use: %zu more objects, heap %zu\n", bound, before,
               got, st.heap_bytes);
    CHECK(before >= 8 * MIB);
    CHECK(got < 100000);
    CHECK_EQ(oom_calls, 1ul);
    CHECK(st.heap_bytes <= before);
    CHECK(chain_ok(8192));
    CHECK_EQ(rudo_set_max_heap(0), RUDO_OK);
    CHECK(rudo_malloc(1000) != NULL);
    CHECK(rudo_malloc_atomic(4 * MIB) != NULL);
    extra = NULL;
    chain = NULL;
    rudo_heap_destroy();
}

/* With generations, initial_heap is the least old data the major rule
 * compares with: at 1 GiB, old data growing from 0 to 16 MiB runs no
 * major collection; at 0, growing it from 16 to 32 MiB runs one (after
 * 24 MiB, 1.5 times the last major's). */
static test_lnode *old_list;
static void retain(size_t bytes) {
    for (size_t n = 0; n < bytes; n += 1024) {
        test_lnode *x = rudo_malloc(1024);
        if (!x) {
            CHECK(x != NULL);
            return;
        }
        x->next = old_list; /* young to old: no barrier */
        old_list = x;       /* a root */
    }
}
static void test_initial_heap_gen(void) {
    if (!gen_mode(true))
        return; /* RUDO_GENERATIONAL=0 */
    rudo_config cfg = test_precise_config(1);
    cfg.generational = true;
    cfg.nursery = MIB;
    cfg.nursery_adapt = false;
    cfg.nursery_per_thread = false;
    cfg.initial_heap = MIB;
    test_heap_create(&cfg);
    rudo_root_add((void **)&old_list);
    CHECK_EQ(rudo_set_initial_heap((size_t)1 << 30), RUDO_OK);
    rudo_stats a = stats();
    retain(16 * MIB);
    rudo_stats b = stats();
    CHECK_EQ(rudo_set_initial_heap(0), RUDO_OK);
    rudo_collect(); /* major: 16 MiB old */
    rudo_stats c = stats();
    retain(16 * MIB);
    rudo_stats d = stats();
    if (test_env_long("TEST_VERBOSE", 0))
        printf("gen, initial_heap 1 GiB: %llu minors, %llu majors; 0: %llu minors, "
               "%llu majors\n",
               (unsigned long long)(b.minor_collections - a.minor_collections),
               (unsigned long long)(b.major_collections - a.major_collections),
               (unsigned long long)(d.minor_collections - c.minor_collections),
               (unsigned long long)(d.major_collections - c.major_collections));
    CHECK(b.minor_collections - a.minor_collections >= 8);
    if (!test_stress_on())
        CHECK_EQ(b.major_collections - a.major_collections, 0);
    CHECK(d.major_collections - c.major_collections >= 1);
    old_list = NULL;
    rudo_heap_destroy();
}

/* SIZE_MAX as initial_heap: no automatic collection by the trigger, but
 * the heap limit still collects (no NULL under an 8 MiB max_heap). */
static void test_initial_heap_huge(void) {
    make_heap(false, 1);
    CHECK_EQ(rudo_set_initial_heap(SIZE_MAX), RUDO_OK);
    CHECK_EQ(rudo_set_max_heap(8 * MIB), RUDO_OK);
    oom_calls = 0;
    uint64_t n = churn(32 * MIB);
    CHECK(n >= 2);
    CHECK_EQ(oom_calls, 0ul);
    CHECK(stats().heap_bytes <= 8 * MIB);
    rudo_heap_destroy();
}

/* ======================================================================== */
/* Events, the listener and the callback                                    */
/* ======================================================================== */

/* A thread that counts while it runs, polling safepoints: it advances
 * only while the world is not stopped. */
static atomic_long spin_count;
static atomic_int spin_stop;
static void *spinner(void *a) {
    (void)a;
    if (rudo_thread_attach() != RUDO_OK)
        abort();
    while (!atomic_load(&spin_stop)) {
        atomic_fetch_add(&spin_count, 1);
        rudo_safepoint();
    }
    rudo_thread_detach();
    return NULL;
}

/* Whether the spinner advances within 2 s. */
static bool spinner_runs(void) {
    long s0 = atomic_load(&spin_count);
    for (int i = 0; i < 2000; i++) {
        if (atomic_load(&spin_count) != s0)
            return true;
        sleep_ms(1);
    }
    return false;
}

static rudo_gc_event ev_begin, ev_end, ev_cb;
static long spin_at_begin, spin_at_sweep;
static int n_begin, n_end, n_cb, n_phase;
static bool end_running, cb_running, cb_data_ok;
static pthread_t collector;            /* the thread that calls rudo_collect */
static int off_collector;              /* begin or phase on another thread */
static int tag_a, tag_b;

static void l_begin(const rudo_gc_event *ev, void *data) {
    (void)data;
    n_begin++;
    off_collector += !pthread_equal(pthread_self(), collector);
    memcpy(&ev_begin, ev, sizeof ev_begin);
    spin_at_begin = atomic_load(&spin_count);
    sleep_ms(5); /* the spinner would advance meanwhile if it ran */
}
static void l_phase(rudo_gc_phase ph, uint64_t ns, void *data) {
    (void)ns;
    (void)data;
    n_phase++;
    off_collector += !pthread_equal(pthread_self(), collector);
    if (ph == RUDO_PHASE_SWEEP)
        spin_at_sweep = atomic_load(&spin_count);
}
static void l_end(const rudo_gc_event *ev, void *data) {
    (void)data;
    n_end++;
    memcpy(&ev_end, ev, sizeof ev_end);
    end_running = spinner_runs();
}
static void on_gc(const rudo_gc_event *ev, void *data) {
    n_cb++;
    off_collector += !pthread_equal(pthread_self(), collector);
    cb_data_ok = data == &tag_a;
    memcpy(&ev_cb, ev, sizeof ev_cb);
    cb_running = spinner_runs();
}

static void reset_counts(void) {
    n_begin = n_end = n_cb = n_phase = 0;
    memset(&ev_begin, 0xa5, sizeof ev_begin);
    memset(&ev_end, 0x5a, sizeof ev_end);
    memset(&ev_cb, 0x3c, sizeof ev_cb);
}

/* The begin event: number, ttsp_ns, minor and phase_ns[STOP] (= ttsp_ns)
 * set, the rest zero. */
static void check_begin_event(const rudo_gc_event *b, const rudo_gc_event *e) {
    CHECK_EQ(b->number, e->number);
    CHECK_EQ(b->ttsp_ns, e->ttsp_ns);
    CHECK_EQ(b->pause_ns, 0);
    CHECK_EQ(b->mark_ns, 0);
    CHECK_EQ(b->sweep_ns, 0);
    CHECK_EQ(b->live_bytes, 0);
    CHECK_EQ(b->heap_bytes, 0);
    CHECK_EQ(b->weak_cleared, 0);
    CHECK_EQ(b->ephemerons_cleared, 0);
    CHECK_EQ(b->ordered_cycles, 0);
    CHECK_EQ(b->promoted_bytes, 0);
    for (int i = RUDO_PHASE_ROOTS; i < RUDO_PHASE_COUNT; i++)
        CHECK_EQ(b->phase_ns[i], 0);
    CHECK_EQ(b->phase_ns[RUDO_PHASE_STOP], b->ttsp_ns);
    CHECK_EQ(b->minor, e->minor);
}

static void test_events(bool gen) {
    make_heap(gen, 2);
    static void *keep, *weak;
    rudo_root_add(&keep);
    keep = rudo_malloc(4096);
    weak = rudo_malloc_atomic(100);
    CHECK_EQ(rudo_weak_register(&weak), RUDO_OK);
    atomic_store(&spin_stop, 0);
    pthread_t t;
    pthread_create(&t, NULL, spinner, NULL);
    CHECK(spinner_runs());

    /* The listener is copied: changing or freeing the caller's struct
     * afterwards changes nothing. */
    rudo_gc_listener *l = malloc(sizeof *l);
    *l = (rudo_gc_listener){l_begin, l_phase, l_end, &tag_a};
    rudo_set_gc_listener(l);
    memset(l, 0, sizeof *l);
    free(l);
    rudo_set_gc_callback(on_gc, &tag_a);
    collector = pthread_self();
    off_collector = 0;
    reset_counts();
    rudo_collect();
    rudo_stats st = stats();
    CHECK_EQ(off_collector, 0); /* begin, phase, the callback: the collecting thread */
    CHECK(n_begin == 1 && n_end == 1 && n_cb == 1 && n_phase == RUDO_PHASE_COUNT);
    CHECK(cb_data_ok);
    /* number: 1 for the first collection. */
    CHECK_EQ(ev_end.number, 1);
    CHECK_EQ(ev_cb.number, 1);
    /* end gets the callback's event. */
    CHECK(memcmp(&ev_end, &ev_cb, sizeof ev_end) == 0);
    check_begin_event(&ev_begin, &ev_end);
    /* live_bytes and heap_bytes: after the collection. */
    CHECK_EQ(ev_end.live_bytes, st.live_bytes);
    CHECK_EQ(ev_end.heap_bytes, st.heap_bytes);
    CHECK(ev_end.live_bytes >= 4096);
    CHECK_EQ(ev_end.weak_cleared, 1);
    CHECK(!ev_end.minor);
    /* begin and the phases with the world stopped; end and the callback
     * after it resumed. */
    CHECK_EQ(spin_at_sweep, spin_at_begin);
    CHECK(end_running);
    CHECK(cb_running);

    /* Minor collections are reported too (a full one without generations). */
    reset_counts();
    rudo_collect_minor();
    CHECK(n_begin == 1 && n_end == 1 && n_cb == 1);
    CHECK_EQ(ev_cb.number, 2);
    CHECK_EQ(ev_cb.minor, gen_mode(gen));
    check_begin_event(&ev_begin, &ev_end);

    /* Automatic collections: every one reported, numbered in sequence. */
    reset_counts();
    uint64_t c0 = stats().collections;
    uint64_t n = churn(16 * MIB);
    CHECK(n >= 1);
    CHECK_EQ((uint64_t)n_cb, n);
    CHECK_EQ((uint64_t)n_end, n);
    CHECK_EQ(ev_cb.number, c0 + n);

    /* Any member may be NULL: all of them, or all but phase. */
    rudo_gc_listener none = {0};
    rudo_set_gc_listener(&none);
    reset_counts();
    rudo_collect();
    CHECK(n_begin == 0 && n_end == 0 && n_phase == 0 && n_cb == 1);
    rudo_gc_listener phase_only = {.phase = l_phase, .data = &tag_b};
    rudo_set_gc_listener(&phase_only);
    reset_counts();
    rudo_collect();
    CHECK(n_begin == 0 && n_end == 0 && n_phase == RUDO_PHASE_COUNT && n_cb == 1);
    rudo_set_gc_listener(NULL);

    /* NULL removes the callback. */
    rudo_set_gc_callback(NULL, NULL);
    reset_counts();
    rudo_collect();
    CHECK_EQ(n_cb, 0);
    CHECK_EQ(n_phase, 0);

    atomic_store(&spin_stop, 1);
    join_blocking(t);
    rudo_root_remove(&keep);
    rudo_heap_destroy();
}

/* ======================================================================== */
/* rudo_collect_minor: concurrent requests served by one collection         */
/* ======================================================================== */

/* Two threads meet at a spinning start line (polling safepoints), then
 * both call rudo_collect_minor, round after round (as
 * test_thr_collect_storm does for rudo_collect). Each round runs one or
 * two collections; over all rounds, fewer than the calls. */
static atomic_long line_count;
static atomic_int minor_attach_rc;
static long minor_rounds;
/* The spinning barrier of two threads: the n-th meeting (from 1). */
static void start_line(long n) {
    atomic_fetch_add(&line_count, 1);
    while (atomic_load(&line_count) < 2 * n)
        rudo_safepoint();
}
static void *minor_caller(void *a) {
    (void)a;
    atomic_store(&minor_attach_rc, rudo_thread_attach());
    for (long r = 0; r < minor_rounds; r++) {
        start_line(2 * r + 1);
        rudo_collect_minor();
        start_line(2 * r + 2);
    }
    rudo_thread_detach();
    return NULL;
}

static void test_minor_coalesce(void) {
    rudo_config cfg = test_precise_config(1);
    cfg.generational = true;
    cfg.initial_heap = 256 * MIB; /* no collection but the calls' */
    cfg.nursery = 256 * MIB;
    cfg.nursery_adapt = false;
    test_heap_create(&cfg);
    static void *keep;
    rudo_root_add(&keep);
    keep = rudo_malloc(64);
    atomic_store(&line_count, 0);
    minor_rounds = test_scaled(200);
    rudo_stats a = stats();
    pthread_t t;
    pthread_create(&t, NULL, minor_caller, NULL);
    uint64_t bad_rounds = 0, prev = a.collections;
    for (long r = 0; r < minor_rounds; r++) {
        start_line(2 * r + 1);
        rudo_collect_minor();
        start_line(2 * r + 2);
        uint64_t now = stats().collections;
        bad_rounds += now - prev < 1 || now - prev > 2; /* one per call at most */
        prev = now;
    }
    join_blocking(t);
    rudo_stats b = stats();
    uint64_t ran = b.collections - a.collections;
    uint64_t calls = 2 * (uint64_t)minor_rounds;
    if (test_env_long("TEST_VERBOSE", 0))
        printf("collect_minor: %llu calls, %llu collections\n", (unsigned long long)calls,
               (unsigned long long)ran);
    CHECK_EQ(atomic_load(&minor_attach_rc), RUDO_OK);
    CHECK_EQ(bad_rounds, 0);
    CHECK(ran < calls); /* some calls were served by the other's collection */
    if (!test_stress_on() && gen_mode(true))
        CHECK_EQ(b.minor_collections - a.minor_collections, ran);
    CHECK(rudo_size(keep) >= 64);
    rudo_root_remove(&keep);
    rudo_heap_destroy();
}

/* ---- the collection callback may allocate and collect ------------------ */
enum { CB_OBJS = 64 };
static void **cb_objs;             /* a root: the objects the callback made */
static int cb_depth, cb_max_depth, cb_calls;

static void cb_allocates(const rudo_gc_event *ev, void *data) {
    (void)ev;
    CHECK(data == &cb_objs);
    cb_calls++;
    if (++cb_depth > cb_max_depth)
        cb_max_depth = cb_depth;
    for (int i = 0; i < CB_OBJS; i++) {
        uint64_t *o = rudo_malloc_atomic(24);
        CHECK(o != NULL);
        if (!o)
            break;
        o[0] = (uint64_t)(uintptr_t)o ^ 0x77;
        cb_objs[i] = o;
    }
    if (cb_depth == 1)
        rudo_collect(); /* nested: calls this callback again, at depth 2 */
    cb_depth--;
}

static void test_callback_allocates(bool gen) {
    make_heap(gen, 2);
    cb_objs = rudo_malloc(CB_OBJS * sizeof(void *));
    rudo_root_add((void **)&cb_objs);
    cb_depth = cb_max_depth = cb_calls = 0;
    rudo_set_gc_callback(cb_allocates, &cb_objs);
    rudo_collect();
    rudo_set_gc_callback(NULL, NULL);
    CHECK_EQ(cb_calls, 2);
    CHECK_EQ(cb_max_depth, 2);
    CHECK_EQ(cb_depth, 0);
    CHECK_EQ(stats().collections, 2u);
    /* What the nested call made survives the collections that follow. */
    rudo_collect();
    churn(4 * MIB);
    long bad = 0;
    for (int i = 0; i < CB_OBJS; i++) {
        uint64_t *o = cb_objs[i];
        bad += !o || o[0] != ((uint64_t)(uintptr_t)o ^ 0x77);
    }
    CHECK_EQ(bad, 0);
    rudo_root_remove((void **)&cb_objs);
    rudo_heap_destroy();
}

int main(void) {
    uint64_t t0 = test_now_ns();
    test_start_watchdog();
    death_tests(); /* before any heap and any thread: the children fork */
    test_disabled_keeps(false, false);
    test_disabled_keeps(true, false);
    test_disabled_keeps(false, true);
    test_disabled_limit_message();
    test_disable_unattached();
    test_hold_from_begin();
    test_growth_values();
    test_growth_effect();
    test_max_heap_huge();
    test_max_heap_below(MIB);
    test_max_heap_below(1);
    test_initial_heap_gen();
    test_initial_heap_huge();
    test_events(false);
    test_events(true);
    test_minor_coalesce();
    test_callback_allocates(false);
    test_callback_allocates(true);
    if (test_env_long("TEST_VERBOSE", 0))
        printf("%.2f s\n", (double)(test_now_ns() - t0) / 1e9);
    return test_report();
}
