/* test_thr_collect_storm.c — every thread requests a collection at once.
 *
 * T threads (4, then 8) finish a round at a barrier (inside a blocking
 * region), then meet at a spinning start line (polling rudo_safepoint) and
 * all call rudo_collect(); 200 rounds each (TEST_SCALE scales them). The
 * initial heap is large (64 MiB), so the only collections are the ones
 * these calls run. The little allocation between rounds comes after the
 * round's count is taken (a third barrier): in GC stress mode
 * (RUDO_GC_STRESS) the collections it runs fall between the rounds.
 *
 * Checks:
 *  - no deadlock: the test finishes (a watchdog fails it otherwise);
 *  - each call returned after a full collection that started after the
 *    call: shared_tree's root node (a precise root, traced exactly once per
 *    collection) was traced between the start of the call and its return,
 *    and no trace callback is running when it returns;
 *  - per round: stats.collections after the round >= its value before the
 *    round + 1;
 *  - per round also: at most T collections (never more
 *    collections than requests);
 *  - coalescing ("one collection serves them all"): over all rounds, fewer
 *    collections than calls (the rounds' collections, summed);
 *  - the gc callback saw every collection exactly once (event numbers are
 *    distinct, consecutive, and as many as stats.collections advanced) with
 *    consistent timings (ttsp and mark within the pause) and
 *    live_bytes <= heap_bytes;
 *  - allocations stay valid: every thread keeps trees on its stack and in
 *    a precise root and verifies them every round; a tree shared by all
 *    threads is verified by all.
 *
 * Environment: TEST_SCALE (factor, default 1), TEST_TIMEOUT (s, default 500). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rudo.h"
#include "testlib.h"

/* ---- helpers -------------------------------------------------------------- */

static uint64_t collections(void) {
    rudo_stats st;
    rudo_get_stats(&st);
    return st.collections;
}

/* ---- trees ---------------------------------------------------------------- */

typedef test_tnode tnode;

static rudo_kind kind_tree;

/* Trace callbacks run with the world stopped: while one runs, no attached
 * thread outside a blocking region may be running. Mutators check that
 * tracing_now is 0 whenever they run (e.g. right after rudo_collect). */
static atomic_int tracing_now;
static atomic_long world_violations;
/* Times the root node of shared_tree was traced: once per full collection
 * (its mark bit stops a second visit). */
static atomic_long root_traced;
static const void *shared_root_node; /* set before any thread starts */

static void trace_tree(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    tnode *n = obj;
    atomic_fetch_add(&tracing_now, 1);
    if (obj == shared_root_node)
        atomic_fetch_add(&root_traced, 1);
    rudo_visit(tr, (void **)&n->left);
    rudo_visit(tr, (void **)&n->right);
    atomic_fetch_sub(&tracing_now, 1);
}

static void world_check(void) {
    if (atomic_load(&tracing_now) != 0)
        atomic_fetch_add(&world_violations, 1);
}

static tnode *make_tree(int depth, uint64_t *rng) {
    return test_tree_make(kind_tree, depth, rng);
}

static bool tree_ok(const tnode *n) {
    if (n == NULL)
        return true;
    return tree_ok(n->left) && tree_ok(n->right) && n->sum == test_tree_sum(n);
}

/* ---- gc callback ------------------------------------------------------------ */

static atomic_uchar *event_seen; /* by event number, calloc'd */
static uint64_t max_events;
static atomic_long cb_calls, cb_bad;

static void gc_cb(const rudo_gc_event *ev, void *data) {
    (void)data;
    atomic_fetch_add(&cb_calls, 1);
    if (ev->number == 0 || ev->number >= max_events) {
        atomic_fetch_add(&cb_bad, 1);
        return;
    }
    atomic_fetch_add(&event_seen[ev->number], 1);
    if (ev->ttsp_ns > ev->pause_ns || ev->mark_ns > ev->pause_ns ||
        ev->live_bytes > ev->heap_bytes)
        atomic_fetch_add(&cb_bad, 1);
}

/* ---- the storm -------------------------------------------------------------- */

static tnode *shared_tree; /* a precise root (static data is not scanned) */
static uint64_t shared_sum;

typedef struct storm {
    int nthreads;
    long rounds;
    pthread_barrier_t barrier;
    uint64_t round_before; /* written by thread 0 between barriers */
    atomic_long ready;       /* arrivals at the start line, all rounds */
    atomic_long unmarked_calls; /* calls during which shared_tree was not traced */
    atomic_long bad_rounds;  /* rounds with 0 or more than T collections */
    atomic_long bad_trees;
    uint64_t total; /* collections during the rounds, summed (thread 0) */
} storm;

typedef struct worker {
    storm *s;
    int idx;
    void **root; /* malloc'd slot, registered */
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    storm *s = w->s;
    if (rudo_thread_attach() != RUDO_OK) {
        atomic_fetch_add(&s->bad_trees, 1000);
        return NULL;
    }
    uint64_t rng = test_mix64((uint64_t)w->idx + 1) | 1;
    tnode *mine = make_tree(7, &rng); /* on the stack */
    uint64_t mine_sum = mine->sum;
    *w->root = make_tree(7, &rng);
    uint64_t root_sum = ((tnode *)*w->root)->sum;

    for (long r = 0; r < s->rounds; r++) {
        test_barrier_wait(&s->barrier);
        if (w->idx == 0)
            s->round_before = collections();
        /* The start line: a spin barrier, so that every thread is running
         * (not held in rudo_blocking_leave by the first one's collection)
         * when it calls rudo_collect. Spinning polls safepoints. */
        atomic_fetch_add(&s->ready, 1);
        while (atomic_load(&s->ready) < (long)s->nthreads * (r + 1)) {
            rudo_safepoint();
            sched_yield();
        }

        /* No rudo call between the start line and rudo_collect (a call
         * that may wait, such as rudo_get_stats, would keep threads from
         * requesting at the same moment). */
        long tr0 = atomic_load(&root_traced);
        rudo_collect();
        /* Marked after the call began, and over when it returned. */
        if (atomic_load(&root_traced) < tr0 + 1)
            atomic_fetch_add(&s->unmarked_calls, 1);
        world_check();

        if (!tree_ok(mine) || mine->sum != mine_sum || !tree_ok(*w->root) ||
            ((tnode *)*w->root)->sum != root_sum || !tree_ok(shared_tree) ||
            shared_tree->sum != shared_sum)
            atomic_fetch_add(&s->bad_trees, 1);
        world_check();

        test_barrier_wait(&s->barrier); /* everyone is back */
        if (w->idx == 0) {
            uint64_t after = collections();
            if (after < s->round_before + 1 || after > s->round_before + (uint64_t)s->nthreads)
                atomic_fetch_add(&s->bad_rounds, 1);
            s->total += after - s->round_before;
        }
        test_barrier_wait(&s->barrier); /* the round is counted */
        /* A little allocation between rounds (well below initial_heap). */
        if (r % 8 == 0) {
            mine = make_tree(5, &rng);
            mine_sum = mine->sum;
        }
        if (r % 16 == 0) {
            *w->root = make_tree(5, &rng);
            root_sum = ((tnode *)*w->root)->sum;
        }
    }
    rudo_thread_detach();
    return NULL;
}

static void run_storm(int nthreads) {
    storm s;
    memset(&s, 0, sizeof s);
    s.nthreads = nthreads;
    s.rounds = test_scaled(200);
    pthread_barrier_init(&s.barrier, NULL, (unsigned)nthreads);
    pthread_t tid[8];
    worker w[8];
    uint64_t before = collections();
    for (int i = 0; i < nthreads; i++) {
        w[i].s = &s;
        w[i].idx = i;
        w[i].root = calloc(1, sizeof(void *));
        rudo_root_add(w[i].root);
        pthread_create(&tid[i], NULL, worker_main, &w[i]);
    }
    rudo_blocking_enter();
    for (int i = 0; i < nthreads; i++)
        pthread_join(tid[i], NULL);
    rudo_blocking_leave();
    uint64_t after = collections();
    long calls = (long)nthreads * s.rounds;
    printf("T=%d: %ld rounds, %ld rudo_collect calls, %llu collections (%.2f per round)\n",
           nthreads, s.rounds, calls, (unsigned long long)s.total,
           (double)s.total / (double)s.rounds);
    CHECK_EQ(atomic_load(&s.unmarked_calls), 0);
    CHECK_EQ(atomic_load(&world_violations), 0);
    CHECK_EQ(atomic_load(&s.bad_rounds), 0);
    CHECK_EQ(atomic_load(&s.bad_trees), 0);
    CHECK(s.total >= (uint64_t)s.rounds);
    CHECK(s.total < (uint64_t)calls); /* some calls were served together */
    CHECK(after - before >= s.total);
    for (int i = 0; i < nthreads; i++) {
        CHECK_EQ(rudo_root_remove(w[i].root), RUDO_OK);
        free(w[i].root);
    }
    pthread_barrier_destroy(&s.barrier);
}

int main(void) {
    test_start_watchdog();
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.initial_heap = (size_t)64 << 20; /* no automatic collection */
    cfg.scan_static_data = false;         /* shared_tree: a root via rudo_root_add */
    int rc = rudo_heap_create(&cfg);
    CHECK_EQ(rc, RUDO_OK);
    if (rc != RUDO_OK)
        return test_report();
    kind_tree = rudo_kind_traced("storm/tree", trace_tree);
    uint64_t rng = 12345;
    rudo_root_add((void **)&shared_tree);
    shared_tree = make_tree(8, &rng);
    shared_sum = shared_tree->sum;
    shared_root_node = shared_tree;
    /* At most one collection per call, plus a few; in GC stress mode also
     * one per N allocations: the trees, 2 of depth 7 per thread and storm,
     * 2 of depth 5 every 8 rounds at most. */
    max_events = (uint64_t)test_scaled(200) * (4 + 8) + 64;
    long stress = test_env_long("RUDO_GC_STRESS", 0);
    if (stress > 0)
        max_events += ((4 + 8) * (2 * 255 + (uint64_t)(test_scaled(200) / 8 + 1) * 2 * 63) +
                       511) / (uint64_t)stress + 64;
    event_seen = calloc(max_events, sizeof *event_seen);
    if (event_seen == NULL) {
        perror("calloc");
        return 2;
    }
    rudo_set_gc_callback(gc_cb, NULL);

    uint64_t c0 = collections();
    run_storm(4);
    run_storm(8);
    rudo_collect();
    uint64_t c1 = collections();

    /* Every collection reported once, numbered c0+1 .. c1. */
    CHECK_EQ((uint64_t)atomic_load(&cb_calls), c1 - c0);
    CHECK_EQ(atomic_load(&cb_bad), 0);
    long missing = 0, dup = 0;
    for (uint64_t n = c0 + 1; n <= c1 && n < max_events; n++) {
        unsigned char seen = atomic_load(&event_seen[n]);
        missing += seen == 0;
        dup += seen > 1;
    }
    CHECK_EQ(missing, 0);
    CHECK_EQ(dup, 0);
    CHECK(tree_ok(shared_tree) && shared_tree->sum == shared_sum);

    rudo_set_gc_callback(NULL, NULL);
    CHECK_EQ(rudo_root_remove((void **)&shared_tree), RUDO_OK);
    rudo_heap_destroy();
    free(event_seen);
    return test_report();
}
