/* test_thr_control.c — root callbacks (global and per thread, strong and weak
 * slots), rudo_disable / rudo_enable, rudo_hold_collections, and the run-time settings
 * rudo_set_max_heap and rudo_set_growth; each claim of rudo.h, with death
 * tests for misuse. Precise setup: no stack or static-data scanning, so
 * the callbacks are the only roots. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

#define N 64
static void *stack_slots[N];   /* an "interpreter stack", not scanned */
static void *weak_root;        /* reported weakly */
static int calls;

static void visit_stack(rudo_tracer *tr, void *data) {
    (void)data;
    calls++;
    for (int i = 0; i < N; i++)
        rudo_visit(tr, &stack_slots[i]);
    rudo_visit_weak(tr, &weak_root);
}

static void other(rudo_tracer *tr, void *data) {
    (void)tr;
    (void)data;
}

static unsigned long oom_calls;
static void on_oom(size_t size, void *data) {
    (void)size;
    (void)data;
    oom_calls++;
}

static void make_heap(unsigned markers) {
    rudo_config cfg = test_precise_config(markers);
    cfg.on_oom = on_oom;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
}

static uint64_t collections(void) {
    rudo_stats st;
    rudo_get_stats(&st);
    return st.collections;
}

static void test_root_callback(void) {
    for (int i = 0; i < N; i++) {
        stack_slots[i] = rudo_malloc_atomic(32);
        memset(stack_slots[i], i, 32);
    }
    weak_root = rudo_malloc_atomic(32);
    void *first = stack_slots[0];
    CHECK_EQ(rudo_root_callback_add(visit_stack, NULL), RUDO_OK);
    CHECK_EQ(rudo_root_callback_add(visit_stack, NULL), RUDO_EEXIST);
    CHECK_EQ(rudo_root_callback_add(visit_stack, &calls), RUDO_OK); /* other data */
    CHECK_EQ(rudo_root_callback_remove(visit_stack, &calls), RUDO_OK);
    CHECK_EQ(rudo_root_callback_remove(other, NULL), RUDO_ENOENT);
    calls = 0;
    rudo_collect();
    CHECK_EQ(calls, 1);
    int intact = 0;
    for (int i = 0; i < N; i++)
        intact += rudo__debug_is_marked(stack_slots[i]) &&
                  ((unsigned char *)stack_slots[i])[31] == (unsigned char)i;
    CHECK_EQ(intact, N);
    /* The weak root had nothing else: cleared. */
    CHECK(weak_root == NULL);
    /* Removed, the callback's slots are no roots any more. */
    CHECK_EQ(rudo_root_callback_remove(visit_stack, NULL), RUDO_OK);
    rudo_collect();
    CHECK_EQ(calls, 1);
    CHECK(!rudo__debug_is_marked(first));
    for (int i = 0; i < N; i++)
        stack_slots[i] = NULL;
}

/* A thread's own callback, called while it waits in a blocking region. */
static void *thread_slot;
static void visit_thread(rudo_tracer *tr, void *data) {
    rudo_visit(tr, (void **)data);
}

static pthread_barrier_t bar;
static void *worker(void *arg) {
    (void)arg;
    CHECK_EQ(rudo_thread_attach(), RUDO_OK);
    thread_slot = rudo_malloc_atomic(48);
    rudo_thread_root_callback(visit_thread, &thread_slot);
    test_barrier_wait(&bar); /* main collects */
    test_barrier_wait(&bar); /* main checked */
    rudo_thread_root_callback(NULL, NULL);
    test_barrier_wait(&bar); /* main collects again */
    rudo_thread_detach();
    return NULL;
}

static void test_thread_callback(void) {
    pthread_barrier_init(&bar, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    test_barrier_wait(&bar);
    rudo_collect();
    void *obj = thread_slot;
    CHECK(rudo__debug_is_marked(obj));
    test_barrier_wait(&bar);
    test_barrier_wait(&bar);
    rudo_collect();
    CHECK(!rudo__debug_is_marked(obj));
    rudo_blocking_enter();
    pthread_join(t, NULL);
    rudo_blocking_leave();
    pthread_barrier_destroy(&bar);
}

static void test_disable(void) {
    uint64_t before = collections();
    rudo_disable();
    rudo_disable();
    CHECK(rudo_is_disabled());
    int nulls = 0;
    for (int i = 0; i < 50000; i++) /* 50 MB of garbage: 12x the trigger */
        nulls += rudo_malloc_atomic(1000) == NULL;
    CHECK_EQ(nulls, 0);
    rudo_collect(); /* a no-op while disabled */
    CHECK_EQ(collections(), before);
    rudo_enable();
    CHECK(rudo_is_disabled()); /* nested: one disable left */
    rudo_collect();
    CHECK_EQ(collections(), before);
    rudo_enable();
    CHECK(!rudo_is_disabled());
    rudo_collect();
    CHECK_EQ(collections(), before + 1);
}

/* rudo_disable against a collection requested just before it: the other
 * thread announces each request, this thread (not at a safepoint) lets it
 * start, then disables and reaches safepoints. Once rudo_disable returns
 * no collection may complete until rudo_enable: the one requested before
 * is waited for inside rudo_disable. */
static atomic_int race_stop, race_go;
static atomic_long race_requests;
static atomic_int race_attach_rc; /* checked by the main thread (testlib's counters are its own) */
static void *race_collector(void *arg) {
    (void)arg;
    atomic_store(&race_attach_rc, rudo_thread_attach());
    while (!atomic_load(&race_stop)) {
        if (!atomic_load(&race_go)) {
            rudo_safepoint();
            continue;
        }
        atomic_store(&race_go, 0);
        atomic_fetch_add(&race_requests, 1); /* announced, then requested */
        rudo_collect();
    }
    rudo_thread_detach();
    return NULL;
}

/* Counted with the world stopped: a collection that ran is counted by the
 * time any stopped thread runs again (reading it is no safepoint). */
static atomic_long race_begins;
static void race_begin(const rudo_gc_event *ev, void *data) {
    (void)ev;
    (void)data;
    atomic_fetch_add(&race_begins, 1);
}

static double race_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_disable_race(void) {
    atomic_store(&race_stop, 0);
    atomic_store(&race_requests, 0);
    rudo_gc_listener l = {.begin = race_begin};
    rudo_set_gc_listener(&l);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, race_collector, NULL), 0);
    int violations = 0, rounds = 20;
    for (int r = 0; r < rounds; r++) {
        long before = atomic_load(&race_requests);
        atomic_store(&race_go, 1);
        /* No safepoint here: the request, once made, waits for us. */
        double t0 = race_ms();
        while (atomic_load(&race_requests) == before && race_ms() - t0 < 5000) {
        }
        t0 = race_ms();
        while (race_ms() - t0 < 2) { /* let it pass its "disabled?" test */
        }
        rudo_disable();
        long c0 = atomic_load(&race_begins);
        for (int i = 0; i < 20; i++) /* safepoints, where it could run */
            rudo_malloc_atomic(64);
        rudo_safepoint();
        violations += atomic_load(&race_begins) != c0;
        rudo_enable();
        rudo_safepoint();
    }
    /* Enabled, the same request does collect (the counter works). */
    long b0 = atomic_load(&race_begins);
    atomic_store(&race_go, 1);
    double t0 = race_ms();
    while (atomic_load(&race_begins) == b0 && race_ms() - t0 < 5000)
        rudo_safepoint();
    CHECK(atomic_load(&race_begins) > b0);
    atomic_store(&race_stop, 1);
    rudo_blocking_enter();
    pthread_join(t, NULL);
    rudo_blocking_leave();
    CHECK_EQ(atomic_load(&race_attach_rc), RUDO_OK);
    CHECK_EQ(violations, 0);
    CHECK_EQ(atomic_load(&race_requests), (long)rounds + 1);
    rudo_set_gc_listener(NULL);
    rudo_collect(); /* the garbage made while disabled goes */
}

/* Disabled, at the limit: the out-of-memory path, with its message. */
static void test_disabled_limit(void) {
    CHECK_EQ(rudo_set_max_heap((size_t)4 << 20), RUDO_OK);
    rudo_disable();
    oom_calls = 0;
    size_t ok = 0;
    while (rudo_malloc_atomic(4000) != NULL && ok < 100000)
        ok++;
    CHECK(ok > 100 && ok < 2000); /* 4 MiB of 4000-byte cells, about 1000 */
    CHECK_EQ(oom_calls, 1ul);
    rudo_enable();
    /* Enabled again, the garbage goes and allocation works. */
    CHECK(rudo_malloc_atomic(4000) != NULL);
    CHECK_EQ(rudo_set_max_heap(0), RUDO_OK);
}

/* rudo_hold_collections: while the flag is nonzero no collection starts,
 * automatic or explicit; an object the collector cannot see survives;
 * rudo_is_disabled stays false; NULL removes the hold; the previous flag
 * is returned. */
static int hold_flag, other_flag;
static void test_hold(void) {
    CHECK(rudo_hold_collections(&hold_flag) == NULL);
    uint64_t before = collections();
    /* Installed but zero: collections run. */
    rudo_collect();
    CHECK_EQ(collections(), before + 1);
    before = collections();
    unsigned char *hidden = rudo_malloc(300);
    memset(hidden, 0x5a, 300);
    uintptr_t h = ~(uintptr_t)hidden; /* no root, no word points to it */
    hidden = NULL;
    hold_flag = 1;
    CHECK(!rudo_is_disabled());
    int nulls = 0;
    for (int i = 0; i < 50000; i++) /* 50 MB of garbage: 12x the trigger */
        nulls += rudo_malloc_atomic(1000) == NULL;
    CHECK_EQ(nulls, 0);
    rudo_collect();       /* no-ops while held */
    rudo_collect_minor();
    CHECK_EQ(collections(), before);
    unsigned char *back = (unsigned char *)~h;
    int same = 0;
    for (int i = 0; i < 300; i++)
        same += back[i] == 0x5a;
    CHECK_EQ(same, 300);
    /* Any value but zero holds. */
    hold_flag = -7;
    rudo_collect();
    CHECK_EQ(collections(), before);
    /* Replaced by another flag, which is zero: the old one no longer holds. */
    CHECK(rudo_hold_collections(&other_flag) == &hold_flag);
    rudo_collect();
    CHECK_EQ(collections(), before + 1);
    /* Removed: neither holds. */
    other_flag = 1;
    CHECK(rudo_hold_collections(NULL) == &other_flag);
    rudo_collect();
    CHECK_EQ(collections(), before + 2);
    /* With rudo_disable as well, both must clear. */
    CHECK(rudo_hold_collections(&hold_flag) == NULL);
    hold_flag = 0;
    rudo_disable();
    hold_flag = 1;
    rudo_enable();
    rudo_collect();
    CHECK_EQ(collections(), before + 2);
    hold_flag = 0;
    rudo_collect();
    CHECK_EQ(collections(), before + 3);
    /* Automatic collections resume when the flag clears. */
    for (int i = 0; i < 50000; i++)
        nulls += rudo_malloc_atomic(1000) == NULL;
    CHECK(nulls == 0 && collections() > before + 3);
    other_flag = 0;
    rudo_hold_collections(NULL);
}

/* Held at the limit: the out-of-memory path with its message, then
 * allocation works again once the flag clears. */
static void test_hold_limit(void) {
    CHECK_EQ(rudo_set_max_heap((size_t)4 << 20), RUDO_OK);
    rudo_hold_collections(&hold_flag);
    hold_flag = 1;
    oom_calls = 0;
    size_t ok = 0;
    test_capture_begin();
    while (rudo_malloc_atomic(4000) != NULL && ok < 100000)
        ok++;
    char msg[512];
    test_captured(msg, sizeof msg);
    test_capture_end();
    CHECK(ok > 100 && ok < 2000); /* 4 MiB of 4000-byte cells, about 1000 */
    CHECK_EQ(oom_calls, 1ul);
    CHECK(strstr(msg, "rudo: rudo_alloc: heap limit reached while collections "
                      "are held off (rudo_hold_collections)") != NULL);
    hold_flag = 0;
    CHECK(rudo_malloc_atomic(4000) != NULL);
    rudo_hold_collections(NULL);
    CHECK_EQ(rudo_set_max_heap(0), RUDO_OK);
}

/* Threads: the flag, set by this thread with a plain store before the
 * others start, holds off the collections every allocating thread would
 * trigger; cleared (atomically, while they run), theirs start again. */
static pthread_barrier_t hold_bar;
static void *hold_worker(void *arg) {
    (void)arg;
    rudo_thread_attach();
    long nulls = 0;
    for (int i = 0; i < 20000; i++)
        nulls += rudo_malloc_atomic(1000) == NULL;
    test_barrier_wait(&hold_bar); /* phase 1 done */
    test_barrier_wait(&hold_bar); /* flag cleared */
    for (int i = 0; i < 20000; i++)
        nulls += rudo_malloc_atomic(1000) == NULL;
    rudo_thread_detach();
    return (void *)nulls;
}
static void test_hold_threads(void) {
    rudo_hold_collections(&hold_flag);
    hold_flag = 1;
    uint64_t before = collections();
    pthread_barrier_init(&hold_bar, NULL, 3);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, hold_worker, NULL);
    test_barrier_wait(&hold_bar);
    CHECK_EQ(collections(), before); /* 40 MB allocated, held */
    __atomic_store_n(&hold_flag, 0, __ATOMIC_RELAXED);
    test_barrier_wait(&hold_bar);
    long nulls = 0;
    rudo_blocking_enter(); /* the workers collect meanwhile */
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(t[i], &r);
        nulls += (long)r;
    }
    rudo_blocking_leave();
    pthread_barrier_destroy(&hold_bar);
    CHECK_EQ(nulls, 0l);
    CHECK(collections() > before);
    rudo_hold_collections(NULL);
}

/* GC stress mode's collections are held off too. */
static void test_hold_stress(void) {
    setenv("RUDO_GC_STRESS", "100", 1);
    make_heap(2);
    unsetenv("RUDO_GC_STRESS");
    rudo_hold_collections(&hold_flag);
    hold_flag = 1;
    uint64_t before = collections();
    for (int i = 0; i < 10000; i++)
        rudo_malloc(16);
    CHECK_EQ(collections(), before);
    hold_flag = 0;
    for (int i = 0; i < 10000; i++)
        rudo_malloc(16);
    CHECK(collections() >= before + 90);
    rudo_hold_collections(NULL);
    rudo_heap_destroy();
}

static void hold_no_heap(void *a) {
    (void)a;
    rudo_hold_collections(&hold_flag);
}

/* rudo_set_initial_heap: raised, it holds the next automatic collection
 * off at once until that much is allocated; lowered, the old floor ends
 * with the next collection; 0 leaves the growth rule alone. */
static void test_set_initial_heap(void) {
    rudo_collect();
    uint64_t before = collections();
    CHECK_EQ(rudo_set_initial_heap((size_t)96 << 20), RUDO_OK);
    for (int i = 0; i < 64 * 1024; i++) /* 64 MiB of garbage */
        (void)rudo_malloc_atomic(1000);
    CHECK_EQ(collections(), before);
    /* Lowered to 0, and a collection sets the trigger again: the growth
     * rule alone (live is tiny: the trigger is far below 64 MiB) collects
     * several times in 64 MiB. */
    CHECK_EQ(rudo_set_initial_heap(0), RUDO_OK);
    rudo_collect();
    before = collections();
    for (int i = 0; i < 64 * 1024; i++)
        (void)rudo_malloc_atomic(1000);
    CHECK(collections() >= before + 4);
    CHECK_EQ(rudo_set_initial_heap((size_t)4 << 20), RUDO_OK); /* the default */
}

static void initial_no_heap(void *a) {
    (void)a;
    rudo_set_initial_heap(1);
}

/* rudo_set_max_heap bounds the heap from now on; 0 lifts it. */
static void test_set_max_heap(void) {
    static void *list;
    list = NULL;
    rudo_root_add(&list);
    CHECK_EQ(rudo_set_max_heap((size_t)8 << 20), RUDO_OK);
    size_t n = 0;
    for (;;) {
        void **x = rudo_malloc(1024);
        if (!x)
            break;
        x[0] = list;
        list = x;
        n++;
    }
    printf("max_heap 8 MiB: %zu KiB of live 1 KiB objects\n", n);
    CHECK(n > 6000 && n <= 8192);
    CHECK_EQ(rudo_set_max_heap(0), RUDO_OK);
    CHECK(rudo_malloc(1024) != NULL);
    list = NULL;
    rudo_root_remove(&list);
    /* Growth: validated like the config. */
    CHECK_EQ(rudo_set_growth(0.0, 0), RUDO_EINVAL);
    CHECK_EQ(rudo_set_growth(1e300, 0), RUDO_EINVAL);
    CHECK_EQ(rudo_set_growth(2.0, (size_t)1 << 20), RUDO_OK);
    CHECK_EQ(rudo_set_growth(1.25, (size_t)16 << 20), RUDO_OK);
}

static void alloc_in_root_cb(rudo_tracer *tr, void *data) {
    (void)tr;
    (void)data;
    (void)rudo_malloc(16);
}
static void root_cb_allocates(void *a) {
    (void)a;
    make_heap(2);
    rudo_root_callback_add(alloc_in_root_cb, NULL);
    rudo_collect();
}
static void enable_unmatched(void *a) {
    (void)a;
    make_heap(1);
    rudo_enable();
}
static void null_callback(void *a) {
    (void)a;
    make_heap(1);
    rudo_root_callback_add(NULL, NULL);
}
static void thread_cb_unattached(void *a) {
    (void)a;
    make_heap(1);
    rudo_thread_detach();
    rudo_thread_root_callback(visit_thread, NULL);
}

/* Root callbacks are root tasks of the parallel marking: with several
 * markers, two callbacks run at the same time. Each waits (boundedly) for
 * the other to start; run one after another, the first would wait out its
 * bound alone. Each also reports its own slots, which must survive. */
static _Atomic int cb_started, cb_overlap;
static void *par_slots[2][1000];
static void concurrent_cb(rudo_tracer *tr, void *data) {
    void **slots = data;
    if (atomic_fetch_add(&cb_started, 1) == 0) {
        /* The first to start waits for the second to start meanwhile. */
        for (int spin = 0; spin < 2000 && atomic_load(&cb_started) < 2; spin++) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        if (atomic_load(&cb_started) >= 2)
            atomic_store(&cb_overlap, 1);
    }
    for (int i = 0; i < 1000; i++)
        rudo_visit(tr, &slots[i]);
}

static void test_parallel_callbacks(void) {
    make_heap(2);
    void *w[2] = {NULL, NULL};
    for (int c = 0; c < 2; c++) {
        for (int i = 0; i < 1000; i++)
            par_slots[c][i] = rudo_alloc(RUDO_KIND_CONSERVATIVE, 32);
        w[c] = par_slots[c][999];
        CHECK_EQ(rudo_root_callback_add(concurrent_cb, par_slots[c]), RUDO_OK);
    }
    static void *weak[2];
    weak[0] = w[0];
    weak[1] = w[1];
    CHECK_EQ(rudo_weak_register(&weak[0]), RUDO_OK);
    CHECK_EQ(rudo_weak_register(&weak[1]), RUDO_OK);
    atomic_store(&cb_started, 0);
    atomic_store(&cb_overlap, 0);
    rudo_collect();
    CHECK(atomic_load(&cb_overlap) == 1);
    CHECK(weak[0] == w[0] && weak[1] == w[1]); /* reported: kept */
    CHECK_EQ(rudo_root_callback_remove(concurrent_cb, par_slots[0]), RUDO_OK);
    CHECK_EQ(rudo_root_callback_remove(concurrent_cb, par_slots[1]), RUDO_OK);
    rudo_heap_destroy();
}

int main(void) {
    test_start_watchdog();
    test_parallel_callbacks();
    unsigned markers[] = {1, 3};
    for (size_t m = 0; m < 2; m++) {
        make_heap(markers[m]);
        test_root_callback();
        test_thread_callback();
        test_disable();
        test_disable_race();
        test_disabled_limit();
        test_hold();
        test_hold_limit();
        test_hold_threads();
        test_set_initial_heap();
        test_set_max_heap();
        rudo_heap_destroy();
    }
    expect_death("rudo_alloc in a root callback", root_cb_allocates, NULL,
                 "rudo: rudo_alloc: called from the trace callback of kind "
                 "'(root callback)'");
    expect_death("rudo_enable without rudo_disable", enable_unmatched, NULL,
                 "rudo: rudo_enable: collection is not disabled");
    test_hold_stress();
    expect_death("rudo_set_initial_heap without a heap", initial_no_heap, NULL,
                 "rudo: rudo_set_initial_heap: no heap");
    expect_death("rudo_hold_collections without a heap", hold_no_heap, NULL,
                 "rudo: rudo_hold_collections: no heap");
    expect_death("rudo_root_callback_add(NULL)", null_callback, NULL,
                 "rudo: rudo_root_callback_add: the callback is NULL");
    expect_death("rudo_thread_root_callback unattached", thread_cb_unattached,
                 NULL, "rudo: rudo_thread_root_callback: the calling thread is "
                       "not attached");
    return test_report();
}
