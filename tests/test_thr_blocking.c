/* test_thr_blocking.c — blocking regions (rudo_blocking_enter/leave).
 *
 * What rudo.h promises, and what is tested here:
 *  1. "Collections proceed without waiting for it": a thread parks in a
 *     blocking region for at least a second; meanwhile the main thread runs
 *     20 collections. The parked thread raises a flag only after it has left
 *     the region, so if any of those collections had waited for it the flag
 *     would be set by the time they returned. The parked thread stays in the
 *     region until main is done (at least 1 s, at most a 20 s fallback so a
 *     broken collector fails instead of hanging): no timing assertion.
 *  2. "Its stack (as of rudo_blocking_enter) is still scanned": the parked
 *     thread's tree is referenced only from its stack; after the collections
 *     every node is marked, intact, and survives the thread's own allocation
 *     of the same kind (which would reuse freed cells).
 *  3. "Leaving waits for a running collection to end": a kind's trace
 *     callback runs during marking, with the world stopped, so it is inside
 *     the collection. It blocks until the parked thread has called
 *     rudo_blocking_leave, waits 200 ms more and sets mark_done as its last
 *     action. The leaver must see mark_done set when rudo_blocking_leave
 *     returns. (The gc callback cannot serve: it runs after the world is
 *     resumed, which is when a leaver may already go.)
 *  4. Threads entering and leaving regions in a tight loop while others
 *     collect keep their data.
 *  5. Misuse aborts: nested regions; detaching inside a region.
 *
 * Environment: TEST_SCALE (factor, default 1), TEST_TIMEOUT (s, default 500). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

/* ---- helpers -------------------------------------------------------------- */

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void sleep_us(long us) {
    struct timespec ts = {0, us * 1000L};
    nanosleep(&ts, NULL);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Polls a flag at safepoints (an attached thread must not just spin: a
 * collection would wait for it). */
static void wait_flag_attached(atomic_int *flag) {
    while (!atomic_load(flag)) {
        rudo_safepoint();
        sleep_ms(1);
    }
}

/* Polls a flag every poll_ms for up to 20 s (a fallback, so that a broken
 * collector fails instead of hanging) without reaching safepoints (for a
 * thread in a blocking region, or a trace callback); returns the flag. */
static int wait_flag_timed(atomic_int *flag, long poll_ms) {
    double deadline = now_s() + 20.0;
    while (!atomic_load(flag) && now_s() < deadline)
        sleep_ms(poll_ms);
    return atomic_load(flag);
}

/* Attaches the calling thread; counts a failure in *failures if it cannot. */
static bool attach_or_count(atomic_int *failures) {
    if (rudo_thread_attach() == RUDO_OK)
        return true;
    atomic_fetch_add(failures, 1);
    return false;
}

/* Joins n threads inside a blocking region (collections need not wait). */
static void join_blocking(const pthread_t *tid, int n) {
    rudo_blocking_enter();
    for (int i = 0; i < n; i++)
        pthread_join(tid[i], NULL);
    rudo_blocking_leave();
}

/* ---- trees ---------------------------------------------------------------- */

typedef test_tnode tnode;

static rudo_kind kind_tree;

static void trace_tree(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    tnode *n = obj;
    rudo_visit(tr, (void **)&n->left);
    rudo_visit(tr, (void **)&n->right);
}

static tnode *make_tree(int depth, uint64_t *rng) {
    return test_tree_make(kind_tree, depth, rng);
}

/* Number of nodes whose sum is wrong (or, with marks, that are unmarked). */
static long tree_bad(const tnode *n, bool marks) {
    if (n == NULL)
        return 0;
    long bad = tree_bad(n->left, marks) + tree_bad(n->right, marks);
    if (n->sum != test_tree_sum(n))
        bad++;
    if (marks && (!rudo_is_heap_ptr(n) || rudo_base(n) != n || !rudo__debug_is_marked(n)))
        bad++;
    return bad;
}

/* ---- 1 and 2: a parked thread does not delay collections ------------------ */

static atomic_int parked, left_region, main_done, parked_failures;

static void *parked_thread(void *arg) {
    (void)arg;
    if (!attach_or_count(&parked_failures))
        return NULL;
    uint64_t rng = 77;
    /* Only this stack references the tree. */
    tnode *volatile root = make_tree(10, &rng);
    uint64_t want = root->sum;

    rudo_blocking_enter();
    atomic_store(&parked, 1);
    sleep_ms(1000);
    (void)wait_flag_timed(&main_done, 5);
    rudo_blocking_leave();
    atomic_store(&left_region, 1);

    /* Main is joining us in a blocking region: no collection since its last. */
    long bad = tree_bad(root, true);
    if (bad != 0 || root->sum != want) {
        fprintf(stderr, "parked thread: %ld nodes bad/unmarked after the collections\n", bad);
        atomic_fetch_add(&parked_failures, 1);
    }
    /* Allocate the same kind: cells wrongly freed would be reused now. */
    for (int i = 0; i < 16; i++)
        (void)make_tree(10, &rng);
    bad = tree_bad(root, false);
    if (bad != 0 || root->sum != want) {
        fprintf(stderr, "parked thread: %ld nodes bad after allocating\n", bad);
        atomic_fetch_add(&parked_failures, 1);
    }
    rudo_collect();
    bad = tree_bad(root, true);
    if (bad != 0) {
        fprintf(stderr, "parked thread: %ld nodes bad after its own collection\n", bad);
        atomic_fetch_add(&parked_failures, 1);
    }
    rudo_thread_detach();
    return NULL;
}

static void test_parked_does_not_delay(void) {
    pthread_t tid;
    pthread_create(&tid, NULL, parked_thread, NULL);
    wait_flag_attached(&parked);

    rudo_stats a, b;
    rudo_get_stats(&a);
    uint64_t rng = 5;
    double t0 = now_s();
    for (int i = 0; i < 20; i++) {
        (void)make_tree(9, &rng); /* garbage */
        rudo_collect();
    }
    double t1 = now_s();
    rudo_get_stats(&b);
    int left_early = atomic_load(&left_region);
    atomic_store(&main_done, 1);
    printf("20 collections while a thread was parked: %.3f s; parked thread %s\n", t1 - t0,
           left_early ? "HAD LEFT (collections waited for it)" : "still parked");
    CHECK(!left_early);
    CHECK(b.collections >= a.collections + 20);
    CHECK_EQ(b.threads_attached, 2u);

    join_blocking(&tid, 1);
    CHECK(atomic_load(&left_region));
    CHECK_EQ(atomic_load(&parked_failures), 0);
}

/* ---- 3: leaving waits for the running collection --------------------------- */

typedef struct slow {
    void *child;
} slow;

static atomic_int slow_armed, in_mark, leave_called, mark_done, trace_timed_out;
static atomic_int leaver_parked, leaver_saw_in_mark, leaver_saw_done, leaver_failures;
static pthread_t collector_thread;
static atomic_int cb_on_collector, cb_calls;
static void *slow_root;

static void trace_slow(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    slow *s = obj;
    rudo_visit(tr, &s->child);
    if (!atomic_exchange(&slow_armed, 0))
        return;
    atomic_store(&in_mark, 1);
    if (!wait_flag_timed(&leave_called, 1))
        atomic_store(&trace_timed_out, 1);
    sleep_ms(200); /* a leave that does not wait returns meanwhile */
    atomic_store(&mark_done, 1);
}

static void gc_cb(const rudo_gc_event *ev, void *data) {
    (void)ev;
    (void)data;
    atomic_fetch_add(&cb_calls, 1);
    if (pthread_equal(pthread_self(), collector_thread) && atomic_load(&mark_done))
        atomic_store(&cb_on_collector, 1);
}

static void *leaver_thread(void *arg) {
    (void)arg;
    if (!attach_or_count(&leaver_failures))
        return NULL;
    uint64_t rng = 99;
    tnode *volatile root = make_tree(8, &rng);
    uint64_t want = root->sum;

    rudo_blocking_enter();
    atomic_store(&leaver_parked, 1);
    atomic_store(&leaver_saw_in_mark, wait_flag_timed(&in_mark, 1));
    atomic_store(&leave_called, 1);
    rudo_blocking_leave();
    atomic_store(&leaver_saw_done, atomic_load(&mark_done));

    if (tree_bad(root, false) != 0 || root->sum != want)
        atomic_fetch_add(&leaver_failures, 1);
    rudo_thread_detach();
    return NULL;
}

static void test_leave_waits(void) {
    rudo_kind kslow = rudo_kind_traced("blocking/slow", trace_slow);
    slow_root = rudo_alloc(kslow, sizeof(slow));
    rudo_root_add(&slow_root);
    collector_thread = pthread_self();
    rudo_set_gc_callback(gc_cb, NULL);

    pthread_t tid;
    pthread_create(&tid, NULL, leaver_thread, NULL);
    wait_flag_attached(&leaver_parked);
    atomic_store(&slow_armed, 1);
    rudo_collect(); /* its marking waits for the leaver to call leave */
    CHECK(!atomic_load(&trace_timed_out));
    CHECK(atomic_load(&mark_done));

    join_blocking(&tid, 1);
    CHECK(atomic_load(&leaver_saw_in_mark));
    /* The central check: rudo_blocking_leave did not return mid-collection. */
    CHECK(atomic_load(&leaver_saw_done));
    CHECK_EQ(atomic_load(&leaver_failures), 0);
    /* The gc callback ran on the collecting thread, after marking. */
    CHECK(atomic_load(&cb_on_collector));
    CHECK(atomic_load(&cb_calls) >= 1);
    rudo_set_gc_callback(NULL, NULL);
    CHECK_EQ(rudo_root_remove(&slow_root), RUDO_OK);
}

/* ---- 4: rapid enter/leave while others collect ---------------------------- */

static atomic_int churn_done, churn_failures;
static atomic_long churn_regions;
static long churn_iters;

static void *churn_thread(void *arg) {
    uintptr_t idx = (uintptr_t)arg;
    if (!attach_or_count(&churn_failures))
        return NULL;
    uint64_t rng = 1000 + idx;
    tnode *keep[4];
    uint64_t want[4];
    for (int i = 0; i < 4; i++) {
        keep[i] = make_tree(6, &rng);
        want[i] = keep[i]->sum;
    }
    long n = 0;
    while (n < churn_iters) {
        rudo_blocking_enter();
        if (n % 16 == 0)
            sched_yield();
        rudo_blocking_leave();
        n++;
        int i = (int)(test_rand(&rng) % 4);
        if (tree_bad(keep[i], false) != 0 || keep[i]->sum != want[i]) {
            atomic_fetch_add(&churn_failures, 1);
            break;
        }
        if (n % 8 == 0) {
            keep[i] = make_tree(6, &rng);
            want[i] = keep[i]->sum;
        }
    }
    atomic_fetch_add(&churn_regions, n);
    atomic_fetch_add(&churn_done, 1);
    rudo_thread_detach();
    return NULL;
}

static void test_churn(void) {
    enum { NCHURN = 3 };
    pthread_t tid[NCHURN];
    churn_iters = test_scaled(20000);
    rudo_stats a, b;
    rudo_get_stats(&a);
    for (uintptr_t i = 0; i < NCHURN; i++)
        pthread_create(&tid[i], NULL, churn_thread, (void *)i);
    uint64_t rng = 3;
    long rounds = 0;
    while (atomic_load(&churn_done) < NCHURN) { /* collect until they finish */
        (void)make_tree(5, &rng);
        rudo_collect();
        rounds++;
        if (rounds % 4 == 0)
            sleep_us(100); /* back-to-back collections would starve them */
    }
    join_blocking(tid, NCHURN);
    rudo_get_stats(&b);
    printf("churn: %ld collections, %ld blocking regions\n",
           (long)(b.collections - a.collections), atomic_load(&churn_regions));
    CHECK(b.collections >= a.collections + (uint64_t)rounds);
    CHECK_EQ(atomic_load(&churn_failures), 0);
    CHECK_EQ(atomic_load(&churn_regions), NCHURN * churn_iters);
}

/* ---- 5: misuse ------------------------------------------------------------- */

/* These run in a forked child, which does not inherit the watchdog. */
static void nested_region(void *arg) {
    (void)arg;
    alarm(30);
    rudo_blocking_enter();
    rudo_blocking_enter();
}

static void detach_in_region(void *arg) {
    (void)arg;
    alarm(30);
    rudo_blocking_enter();
    rudo_thread_detach();
}

int main(void) {
    test_start_watchdog();
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.initial_heap = 1u << 20;
    cfg.scan_static_data = false; /* roots: stacks and slow_root (registered) */
    int rc = rudo_heap_create(&cfg);
    CHECK_EQ(rc, RUDO_OK);
    if (rc != RUDO_OK)
        return test_report();
    kind_tree = rudo_kind_traced("blocking/tree", trace_tree);

    /* Death tests first, while the process has one thread (fork). */
    expect_death("nested blocking regions abort", nested_region, NULL, "rudo_blocking_enter");
    expect_death("detach inside a blocking region aborts", detach_in_region, NULL,
                 "rudo_thread_detach");

    test_parked_does_not_delay();
    test_leave_waits();
    test_churn();

    rudo_heap_destroy();
    return test_report();
}
