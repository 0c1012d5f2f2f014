/* test_thr_loader.c — the static-data scan and the dynamic loader's lock.
 *
 * dl_iterate_phdr holds the loader's write lock while it runs its
 * callback. A thread the collector stops inside its own callback (it does
 * not poll there, so it is suspended by signal) holds that lock, and a
 * collector that called dl_iterate_phdr then waited for ever.
 *
 *  1. An attached thread spins inside its dl_iterate_phdr callback, outside
 *     a blocking region (stopped there by signal) or inside one (left
 *     running); a collection by the main thread or by another attached
 *     thread completes, well before the spin ends. Markers 1 and 3.
 *  2. The two walks of platform/loader.c, with the lock and without it,
 *     report the same segments, a library loaded with dlopen included.
 *  3. rudo__os_static_segments_stopped while an unattached thread holds the
 *     lock: it walks without the lock after its timeout (and so does the
 *     next call, while the helper still waits), then with the helper once
 *     the lock is free; the segments are the same each time. A stop
 *     meanwhile gives up on the waiting helper after its second and says
 *     so; the helper then ends by itself when the lock is free.
 *  4. rudo_static_segments from a root callback while a thread is stopped
 *     holding the lock: the callback returns, the main program is module
 *     0, and a pointer held only in static data keeps its object.
 *  5. The helper's start and stop in quick succession, before the new
 *     helper has run (as rudo_heap_destroy right after a second thread
 *     attached): every stop ends its helper, and the process is back to
 *     its thread count each time. A helper once read its generation when
 *     it first ran, after the stop had moved it on: it then served the
 *     next generation unasked, and the next stop joined a helper that
 *     never exits (a hang of test_roots_claims in CI; 3 runs in about
 *     1,200 here). */
#include <dlfcn.h>
#include <link.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "platform/platform.h"
#include "rudo.h"
#include "testlib.h"

static atomic_int inside, release_walk;
static uint64_t spin_ns;

/* Holds the loader's lock in its first callback: spins spin_ns, or until
 * release_walk is set. */
static int walk_cb(struct dl_phdr_info *info, size_t size, void *data) {
    (void)info;
    (void)size;
    int *first = data;
    if (*first) {
        *first = 0;
        atomic_store_explicit(&inside, 1, memory_order_release);
        uint64_t t0 = test_now_ns();
        while (test_now_ns() - t0 < spin_ns &&
               !atomic_load_explicit(&release_walk, memory_order_acquire)) {
        }
    }
    return 0;
}

static void walk_holding(void) {
    int first = 1;
    dl_iterate_phdr(walk_cb, &first);
}

static bool in_region;

static void *walker(void *arg) {
    (void)arg;
    CHECK_EQ(rudo_thread_attach(), RUDO_OK);
    if (in_region)
        rudo_blocking_enter();
    walk_holding();
    if (in_region)
        rudo_blocking_leave();
    rudo_thread_detach();
    return NULL;
}

/* Attached before the walker takes the lock (an attach walks the modules
 * too, and would wait for the walker's callback, a running thread's);
 * collects when told. */
static atomic_int collector_ready, collector_go;
static void *collector(void *arg) {
    (void)arg;
    CHECK_EQ(rudo_thread_attach(), RUDO_OK);
    atomic_store_explicit(&collector_ready, 1, memory_order_release);
    while (!atomic_load_explicit(&collector_go, memory_order_acquire))
        rudo_safepoint();
    rudo_collect();
    rudo_thread_detach();
    return NULL;
}

static void wait_inside(void) {
    while (!atomic_load_explicit(&inside, memory_order_acquire)) {
    }
}

/* ---- 1. collections while a thread holds the loader's lock ---------------- */

static void one_case(unsigned markers, bool region, bool second_thread) {
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.markers = markers;
    test_heap_create(&cfg);
    atomic_store(&inside, 0);
    atomic_store(&release_walk, 0);
    in_region = region;
    /* In a region the collector waits for the callback to end; stopped
     * there, it must not. */
    spin_ns = region ? 50 * 1000000ull : 20ull * 1000000000ull;
    rudo_stats st;
    rudo_get_stats(&st);
    uint64_t before = st.collections;
    pthread_t w, c;
    atomic_store(&collector_ready, 0);
    atomic_store(&collector_go, 0);
    if (second_thread) {
        pthread_create(&c, NULL, collector, NULL);
        while (!atomic_load_explicit(&collector_ready, memory_order_acquire))
            rudo_safepoint();
    }
    pthread_create(&w, NULL, walker, NULL);
    wait_inside();
    uint64_t t0 = test_now_ns();
    if (second_thread) {
        atomic_store_explicit(&collector_go, 1, memory_order_release);
        rudo_blocking_enter();
        pthread_join(c, NULL);
        rudo_blocking_leave();
    } else {
        rudo_collect();
    }
    uint64_t took = test_now_ns() - t0;
    atomic_store_explicit(&release_walk, 1, memory_order_release);
    rudo_blocking_enter();
    pthread_join(w, NULL);
    rudo_blocking_leave();
    rudo_get_stats(&st);
    CHECK_EQ(st.collections, before + 1);
    /* Stopped in its callback: done long before the 20 s spin would end
     * (the helper's 50 ms, the stop's signal, slow sanitizers). */
    if (!region && took >= 10ull * 1000000000ull)
        fprintf(stderr, "markers %u, second thread %d: collection took %.0f ms\n",
                markers, second_thread, took / 1e6);
    CHECK(region || took < 10ull * 1000000000ull);
    rudo_heap_destroy();
}

/* ---- 2, 3. the two walks ----------------------------------------------------- */

#define MAXSEG 512
struct seg {
    char *lo, *hi;
    unsigned module;
};
struct segs {
    size_t n;
    struct seg s[MAXSEG];
    bool main_first; /* a segment of module 0 contains &main_data */
};
static int main_data = 1; /* in the program's .data */

static void add_seg(void *lo, void *hi, unsigned module, void *arg) {
    struct segs *g = arg;
    if (g->n < MAXSEG)
        g->s[g->n++] = (struct seg){lo, hi, module};
    if (module == 0 && (char *)&main_data >= (char *)lo && (char *)&main_data < (char *)hi)
        g->main_first = true;
}

static int cmp_seg(const void *a, const void *b) {
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    return x < y ? -1 : x > y;
}

/* Same ranges (the module numbers may differ between walks only in the
 * order of namespaces, which is the same here). */
static bool same(struct segs *a, struct segs *b) {
    if (a->n != b->n || a->n == MAXSEG)
        return false;
    qsort(a->s, a->n, sizeof a->s[0], cmp_seg);
    qsort(b->s, b->n, sizeof b->s[0], cmp_seg);
    for (size_t i = 0; i < a->n; i++)
        if (a->s[i].lo != b->s[i].lo || a->s[i].hi != b->s[i].hi ||
            a->s[i].module != b->s[i].module)
            return false;
    return true;
}

static struct segs locked_walk, unlocked_walk, stopped_walk;

static void test_walks_agree(void) {
    /* A library the program does not link: its segments must appear in
     * both walks (glibc's compatibility stubs are always there). */
    void *lib = dlopen("libutil.so.1", RTLD_NOW);
    if (!lib)
        lib = dlopen("libanl.so.1", RTLD_NOW);
    memset(&locked_walk, 0, sizeof locked_walk);
    memset(&unlocked_walk, 0, sizeof unlocked_walk);
    rudo__os_static_segments(add_seg, &locked_walk);
    rudo__os_static_segments_unlocked(add_seg, &unlocked_walk);
    CHECK(locked_walk.n >= 2);
    CHECK(locked_walk.main_first && unlocked_walk.main_first);
    CHECK(same(&locked_walk, &unlocked_walk));
    if (lib)
        dlclose(lib);
}

static void *holder(void *arg) {
    (void)arg;
    walk_holding();
    return NULL;
}

static void test_stopped_walk(void) {
    CHECK(rudo__os_loader_start());
    memset(&locked_walk, 0, sizeof locked_walk);
    rudo__os_static_segments(add_seg, &locked_walk);
    /* Free lock: the helper takes it and holds it for us. */
    memset(&stopped_walk, 0, sizeof stopped_walk);
    CHECK_EQ(rudo__os_static_segments_stopped(add_seg, &stopped_walk, 5000),
             RUDO__OS_WALK_HELPER);
    CHECK(same(&locked_walk, &stopped_walk));
    /* Held by another thread: the timeout, then the walk without it. */
    atomic_store(&inside, 0);
    atomic_store(&release_walk, 0);
    spin_ns = 20ull * 1000000000ull;
    pthread_t t;
    pthread_create(&t, NULL, holder, NULL);
    wait_inside();
    uint64_t t0 = test_now_ns();
    memset(&stopped_walk, 0, sizeof stopped_walk);
    CHECK_EQ(rudo__os_static_segments_stopped(add_seg, &stopped_walk, 50),
             RUDO__OS_WALK_UNLOCKED);
    uint64_t took = test_now_ns() - t0;
    CHECK(took >= 40 * 1000000ull && took < 10ull * 1000000000ull);
    CHECK(same(&locked_walk, &stopped_walk));
    /* The helper still waits for the lock: this call waits its own time
     * for it, then walks without the lock too. */
    memset(&stopped_walk, 0, sizeof stopped_walk);
    t0 = test_now_ns();
    CHECK_EQ(rudo__os_static_segments_stopped(add_seg, &stopped_walk, 50),
             RUDO__OS_WALK_UNLOCKED);
    took = test_now_ns() - t0;
    CHECK(took >= 40 * 1000000ull && took < 10ull * 1000000000ull);
    CHECK(same(&locked_walk, &stopped_walk));
    /* A stop now gives up on the helper, which waits for the lock, after
     * its second, and says so (rudo_heap_destroy prints a message then);
     * the helper ends by itself once the lock is free. */
    long threads = test_thread_count();
    t0 = test_now_ns();
    CHECK(!rudo__os_loader_stop());
    took = test_now_ns() - t0;
    CHECK(took >= 900 * 1000000ull && took < 10ull * 1000000000ull);
    atomic_store_explicit(&release_walk, 1, memory_order_release);
    pthread_join(t, NULL);
    CHECK(test_threads_back_to(threads - 2)); /* the holder and the helper */
    /* A stop with no helper, and one whose helper is idle: ended. */
    CHECK(rudo__os_loader_stop());
    CHECK(rudo__os_loader_start());
    CHECK(rudo__os_loader_stop());
    CHECK(rudo__os_loader_start());
    /* Free again: the new helper serves this request (within its 5 s). */
    memset(&stopped_walk, 0, sizeof stopped_walk);
    CHECK_EQ(rudo__os_static_segments_stopped(add_seg, &stopped_walk, 5000),
             RUDO__OS_WALK_HELPER);
    CHECK(same(&locked_walk, &stopped_walk));
}

/* ---- 4. rudo_static_segments from a root callback ---------------------------- */

static void *static_only;  /* the only reference to its object */
static bool cb_main_seen;
static int cb_calls;

static void visit_segment(void *lo, void *hi, unsigned module, void *data) {
    rudo_tracer *tr = data;
    if (module == 0 && (char *)&static_only >= (char *)lo && (char *)&static_only < (char *)hi)
        cb_main_seen = true;
    rudo_visit_range(tr, lo, hi);
}

static void statics_cb(rudo_tracer *tr, void *data) {
    (void)data;
    cb_calls++;
    rudo_static_segments(visit_segment, tr);
}

static __attribute__((noinline)) void make_static_only(void **weak) {
    static_only = rudo_malloc(64);
    *weak = static_only;
}

static void test_root_callback(unsigned markers) {
    /* Static data only from the callback. Stacks are scanned: signal
     * suspension needs it, to stop the walker in its callback. */
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.markers = markers;
    cfg.scan_static_data = false;
    test_heap_create(&cfg);
    CHECK_EQ(rudo_root_callback_add(statics_cb, NULL), RUDO_OK);
    void **weak = malloc(sizeof *weak);
    make_static_only(weak);
    CHECK_EQ(rudo_weak_register(weak), RUDO_OK);
    cb_calls = 0;
    cb_main_seen = false;
    atomic_store(&inside, 0);
    atomic_store(&release_walk, 0);
    in_region = false;
    spin_ns = 20ull * 1000000000ull;
    pthread_t w;
    pthread_create(&w, NULL, walker, NULL);
    wait_inside();
    rudo_collect();
    atomic_store_explicit(&release_walk, 1, memory_order_release);
    rudo_blocking_enter();
    pthread_join(w, NULL);
    rudo_blocking_leave();
    CHECK_EQ(cb_calls, 1);
    CHECK(cb_main_seen);
    CHECK(*weak == static_only && static_only != NULL);
    /* Dropped from static data: the next collection frees it, unless a
     * stale word on a scanned stack still holds it (not checked). */
    static_only = NULL;
    rudo_collect();
    rudo_weak_unregister(weak);
    free(weak);
    CHECK_EQ(rudo_root_callback_remove(statics_cb, NULL), RUDO_OK);
    rudo_heap_destroy();
}

static void d_null_fn(void *a) {
    (void)a;
    rudo_heap_create(NULL);
    rudo_static_segments(NULL, NULL);
}
static void d_no_heap(void *a) {
    (void)a;
    rudo_static_segments(add_seg, &locked_walk);
}

static void *nothing(void *a) { return a; }

static void test_start_stop_quick(void) {
    /* ThreadSanitizer starts a thread of its own at the first
     * pthread_create: one created and joined first, and a moment for it
     * to be reaped, before the count is taken. */
    pthread_t t;
    pthread_create(&t, NULL, nothing, NULL);
    pthread_join(t, NULL);
    usleep(20000);
    long before = test_thread_count();
    CHECK(before >= 1);
    int bad = 0;
    for (int i = 0; i < 300; i++) {
        CHECK(rudo__os_loader_start());
        /* Sometimes after the helper has run, most often before. */
        if (i % 3 == 2)
            usleep(1000);
        rudo__os_loader_stop();
        bad += !test_threads_back_to(before);
    }
    CHECK_EQ(bad, 0);
}

int main(void) {
    test_start_watchdog();
    test_start_stop_quick();
    for (unsigned markers = 1; markers <= 3; markers += 2)
        for (int region = 0; region <= 1; region++)
            for (int second = 0; second <= 1; second++)
                one_case(markers, region, second);
    test_walks_agree();
    test_stopped_walk();
    test_root_callback(1);
    test_root_callback(3);
    expect_death("rudo_static_segments(NULL)", d_null_fn, NULL,
                 "rudo: rudo_static_segments: fn is NULL");
    expect_death("rudo_static_segments without a heap", d_no_heap, NULL,
                 "rudo: rudo_static_segments: no heap");
    return test_report();
}
