/* test_misuse_ctx.c — calls made where they cannot work abort with a
 * message instead of parking forever: allocating, collecting or polling a
 * safepoint from a trace callback (on the collecting thread or on a marker
 * thread, which is not attached: the message names the kind either way),
 * and allocating or collecting inside a blocking region. Each case runs in
 * a forked child (expect_death) that makes its own heap; an alarm turns a
 * hang (the behaviour before these checks) into a failure. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "rudo.h"
#include "testlib.h"

static void *volatile root; /* static data is scanned */
static pthread_t main_thread;

static void make_heap(unsigned markers) {
    alarm(20); /* the child does not inherit the parent's alarm */
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.markers = markers;
    if (rudo_heap_create(&cfg) != RUDO_OK)
        _exit(2);
}

/* ---- trace callbacks --------------------------------------------------------- */
static void trace_alloc(void *obj, size_t size, rudo_tracer *tr) {
    (void)obj;
    (void)size;
    (void)tr;
    root = rudo_malloc(16);
}

static void trace_collect(void *obj, size_t size, rudo_tracer *tr) {
    (void)obj;
    (void)size;
    (void)tr;
    rudo_collect();
}

static void trace_safepoint(void *obj, size_t size, rudo_tracer *tr) {
    (void)obj;
    (void)size;
    (void)tr;
    rudo_safepoint();
}

/* Collects once with a root object of a kind traced by fn. */
static void collect_traced(const char *name, rudo_trace_fn fn) {
    rudo_kind k = rudo_kind_traced(name, fn);
    root = rudo_alloc(k, 32);
    rudo_collect();
}

static void alloc_in_trace(void *a) {
    (void)a;
    make_heap(1); /* the callback runs on the collecting thread */
    collect_traced("ctx/alloc-in-trace", trace_alloc);
}

static void collect_in_trace(void *a) {
    (void)a;
    make_heap(1);
    collect_traced("ctx/collect-in-trace", trace_collect);
}

static void safepoint_in_trace(void *a) {
    (void)a;
    make_heap(1);
    collect_traced("ctx/safepoint-in-trace", trace_safepoint);
}

/* On a marker thread: the root is a wide node; its children are traced
 * by whichever marker takes them. The collecting thread waits in the
 * callback (up to 3 s) so that a helper steals one and allocates there. */
#define WIDE 4096
typedef struct wide {
    void *child[WIDE];
} wide;
static atomic_int helper_traced;

static void trace_wide(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    wide *w = obj;
    for (int i = 0; i < WIDE; i++)
        rudo_visit(tr, &w->child[i]);
}

static void trace_leaf_alloc(void *obj, size_t size, rudo_tracer *tr) {
    (void)obj;
    (void)size;
    (void)tr;
    if (!pthread_equal(pthread_self(), main_thread)) {
        atomic_store(&helper_traced, 1);
        root = rudo_malloc(16); /* not attached: must still name the kind */
    }
    for (int i = 0; i < 3000 && !atomic_load(&helper_traced); i++)
        usleep(1000);
    root = rudo_malloc(16);
}

static void alloc_in_trace_helper(void *a) {
    (void)a;
    make_heap(4);
    main_thread = pthread_self();
    rudo_kind kw = rudo_kind_traced("ctx/wide", trace_wide);
    rudo_kind kl = rudo_kind_traced("ctx/leaf-alloc", trace_leaf_alloc);
    wide *w = rudo_alloc(kw, sizeof *w);
    root = w;
    for (int i = 0; i < WIDE; i++)
        w->child[i] = rudo_alloc(kl, 16);
    rudo_collect();
}

/* ---- blocking regions ------------------------------------------------------- */
static void alloc_large_in_region(void *a) {
    (void)a;
    make_heap(1);
    rudo_blocking_enter();
    root = rudo_malloc(1u << 20); /* large: always the slow path */
}

static void alloc_first_in_region(void *a) {
    (void)a;
    make_heap(1);
    rudo_kind k = rudo_kind_atomic("ctx/fresh");
    rudo_blocking_enter();
    root = rudo_alloc(k, 24); /* first of its kind: the slow path */
}

static void alloc_warm_in_region(void *a) {
    (void)a;
    make_heap(1);
    root = rudo_malloc(24); /* the thread now has a free list of this class */
    rudo_blocking_enter();
    root = rudo_malloc(24); /* would be the inline fast path */
}

static void collect_in_region(void *a) {
    (void)a;
    make_heap(1);
    rudo_blocking_enter();
    rudo_collect();
}

int main(void) {
    test_start_watchdog();
    expect_death("rudo_alloc in a trace callback (collecting thread)",
                 alloc_in_trace, NULL,
                 "rudo: rudo_alloc: called from the trace callback of kind "
                 "'ctx/alloc-in-trace' (trace callbacks must not allocate)");
    expect_death("rudo_alloc in a trace callback (marker thread)",
                 alloc_in_trace_helper, NULL,
                 "rudo: rudo_alloc: called from the trace callback of kind "
                 "'ctx/leaf-alloc' (trace callbacks must not allocate)");
    expect_death("rudo_collect in a trace callback", collect_in_trace, NULL,
                 "rudo: rudo_collect: called from the trace callback of kind "
                 "'ctx/collect-in-trace' (trace callbacks must not collect)");
    expect_death("rudo_safepoint in a trace callback", safepoint_in_trace, NULL,
                 "rudo: rudo_safepoint: called from the trace callback of kind "
                 "'ctx/safepoint-in-trace' (trace callbacks must not call "
                 "rudo_safepoint)");
    static const char region_msg[] =
        "called inside a blocking region (call rudo_blocking_leave first)";
    char want[160];
    snprintf(want, sizeof want, "rudo: rudo_alloc: %s", region_msg);
    expect_death("large rudo_alloc in a blocking region", alloc_large_in_region,
                 NULL, want);
    expect_death("first rudo_alloc of a kind in a blocking region",
                 alloc_first_in_region, NULL, want);
    expect_death("rudo_alloc from a warm free list in a blocking region",
                 alloc_warm_in_region, NULL, want);
    snprintf(want, sizeof want, "rudo: rudo_collect: %s", region_msg);
    expect_death("rudo_collect in a blocking region", collect_in_region, NULL,
                 want);

    /* The right use still works: trace callbacks that only visit, and
     * allocation after leaving a region. */
    CHECK_EQ(rudo_heap_create(NULL), RUDO_OK);
    rudo_kind kw = rudo_kind_traced("ctx/ok", trace_wide);
    wide *w = rudo_alloc(kw, sizeof *w);
    root = w;
    w->child[0] = rudo_malloc(16);
    rudo_collect();
    rudo_blocking_enter();
    rudo_blocking_leave();
    void *p = rudo_malloc(1u << 20);
    CHECK(p != NULL);
    CHECK(rudo_is_heap_ptr(w->child[0]));
    root = NULL;
    rudo_heap_destroy();
    return test_report();
}
