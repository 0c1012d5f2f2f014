/* test_thr_trees.c — several threads allocate, share and verify binary trees.
 *
 * For N = 2, 4 and 8 attached threads (more threads than this machine's two
 * cores on purpose) each thread:
 *  - builds binary trees of two kinds with the same struct (one described by
 *    a pointer layout, one by a trace callback); every node stores a
 *    checksum of its subtree, so a node that was freed and reused, or a
 *    child that was not traced, shows up as a wrong sum;
 *  - keeps some trees on its stack (conservative roots) and builds garbage
 *    trees, so automatic collections (initial_heap = 1 MiB) happen often;
 *  - publishes trees in shared slots: a global array registered with
 *    rudo_root_add. The heap does not scan static data, so those slots are
 *    roots only because they were registered;
 *  - links trees published by other threads under its own nodes;
 *  - forces collections and verifies its own and the shared trees after them,
 *    and that no trace callback is still running when rudo_collect returns
 *    (trace callbacks run with the world stopped);
 *  - hands trees to the next thread through a mailbox in malloc'd memory
 *    that holds the pointers XORed with a mask (not a root, and not a
 *    pointer even if it were scanned). Once the receiver holds them, the
 *    sender drops them and odd threads detach and exit, so trees allocated
 *    by a thread that no longer exists are reachable only from another
 *    thread's stack; the receivers collect and verify them.
 * Every thread detaches at the end. Main checks that the collection count
 * grew by at least the number of collections any one thread forced.
 *
 * Environment: TEST_SCALE (a factor, default 1) scales the work;
 * TEST_TIMEOUT (seconds, default 500) bounds the run (watchdog). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rudo.h"
#include "testlib.h"

/* ---- trees ---------------------------------------------------------------- */

typedef struct tnode {
    struct tnode *left, *right;
    uint64_t sum; /* combine(val, left->sum, right->sum) */
    uint64_t val;
} tnode;

static rudo_kind kind_layout, kind_traced;

/* Trace callbacks run with the world stopped: a running mutator must never
 * see one in progress (checked after every forced collection). */
static atomic_int tracing_now;

static void trace_tnode(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    tnode *n = obj;
    atomic_fetch_add(&tracing_now, 1);
    rudo_visit(tr, (void **)&n->left);
    rudo_visit(tr, (void **)&n->right);
    atomic_fetch_sub(&tracing_now, 1);
}

static uint64_t combine(uint64_t val, const tnode *l, const tnode *r) {
    return test_mix64(val ^ test_rotl(l ? l->sum : 0x1234, 17) ^
                      test_rotl(r ? r->sum : 0x5678, 41));
}

static tnode *new_node(uint64_t *rng) {
    rudo_kind k = (test_rand(rng) & 1) ? kind_layout : kind_traced;
    tnode *n = rudo_alloc(k, sizeof *n);
    if (n == NULL) {
        fprintf(stderr, "rudo_alloc returned NULL\n");
        abort();
    }
    return n;
}

/* Top-down: the parent is allocated first and holds each child before the
 * next allocation; the partial tree is reachable from this stack. */
static tnode *make_tree(int depth, uint64_t *rng) {
    tnode *n = new_node(rng);
    n->val = test_rand(rng);
    if (depth > 0) {
        n->left = make_tree(depth - 1, rng);
        n->right = make_tree(depth - 1, rng);
    }
    n->sum = combine(n->val, n->left, n->right);
    return n;
}

static atomic_long bad_nodes; /* nodes whose stored sum was wrong */

/* Recomputes every sum below n; counts nodes whose stored sum differs, or
 * that are not heap objects of one of the two tree kinds. Returns the
 * recomputed sum of n (0 for NULL). */
static uint64_t check_tree(const tnode *n, long *bad) {
    if (n == NULL)
        return 0;
    check_tree(n->left, bad);
    check_tree(n->right, bad);
    if (n->sum != combine(n->val, n->left, n->right))
        (*bad)++;
    return n->sum;
}

/* Verifies a whole tree against the root sum recorded when it was made. */
static bool tree_ok(const tnode *n, uint64_t want) {
    long bad = 0;
    if (n == NULL || !rudo_is_heap_ptr(n) || rudo_base(n) != n)
        return false;
    rudo_kind k = rudo_kind_of(n);
    if (k != kind_layout && k != kind_traced)
        return false;
    uint64_t got = check_tree(n, &bad);
    if (bad)
        atomic_fetch_add(&bad_nodes, bad);
    return bad == 0 && got == want;
}

/* ---- shared slots (precise roots) --------------------------------------- */

#define NSHARED 32
static void *shared_slot[NSHARED];  /* registered with rudo_root_add */
static uint64_t shared_sum[NSHARED];
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;

/* Takes shared_mu (test_mutex_lock: under ThreadSanitizer in a blocking
 * region; seen hanging without: the holder had taken the signal on
 * leaving pthread_mutex_lock). */
static void lock_shared(void) { test_mutex_lock(&shared_mu); }

/* ---- mailboxes for the cross-thread handoff ------------------------------- */

#define HANDOFF 6
static const uintptr_t XOR_MASK = (uintptr_t)0xa5a5a5a5a5a5a5a5ULL;

typedef struct mailbox {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int count;                  /* trees delivered */
    int acked;                  /* the receiver holds them */
    uintptr_t item[HANDOFF];    /* pointer ^ XOR_MASK */
    uint64_t sum[HANDOFF];
} mailbox;

/* ---- one run -------------------------------------------------------------- */

typedef struct run {
    int nthreads;
    long iters;
    int depth;
    int collect_every;
    pthread_barrier_t barrier;
    mailbox *boxes; /* calloc'd, one per thread */
    atomic_int odd_detached;
    atomic_long forced_max; /* most collections forced by a single thread */
    atomic_long checks_failed;
} run;

typedef struct worker {
    run *r;
    int idx;
} worker;

#define KEEP 6

static void note(run *r, bool ok, const char *what, int idx) {
    if (!ok) {
        atomic_fetch_add(&r->checks_failed, 1);
        fprintf(stderr, "thread %d: %s failed\n", idx, what);
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    run *r = w->r;
    int me = w->idx, n = r->nthreads;
    uint64_t rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(me + 1) + (uint64_t)n;
    long forced = 0;

    if (rudo_thread_attach() != RUDO_OK) {
        note(r, false, "rudo_thread_attach", me);
        return NULL;
    }
    note(r, rudo_thread_is_attached(), "rudo_thread_is_attached", me);

    /* Own trees, on this stack. pure[j]: mine[j] is a fresh tree (may be
     * published); otherwise it is a link node over a shared tree. */
    tnode *mine[KEEP];
    uint64_t mine_sum[KEEP];
    bool pure[KEEP];
    for (int j = 0; j < KEEP; j++) {
        mine[j] = make_tree(r->depth, &rng);
        mine_sum[j] = mine[j]->sum;
        pure[j] = true;
    }

    for (long it = 0; it < r->iters; it++) {
        /* Garbage: drives automatic collections. */
        tnode *g = make_tree(r->depth + 1, &rng);
        note(r, tree_ok(g, g->sum), "fresh garbage tree", me);
        g = NULL;

        /* Replace one kept tree with a fresh one. */
        int j = (int)(test_rand(&rng) % KEEP);
        note(r, tree_ok(mine[j], mine_sum[j]), "kept tree before replacement", me);
        mine[j] = make_tree(r->depth, &rng);
        mine_sum[j] = mine[j]->sum;
        pure[j] = true;

        /* Publish a fresh tree. */
        if (test_rand(&rng) % 2 == 0) {
            int s = (int)(test_rand(&rng) % NSHARED);
            int k = (int)(test_rand(&rng) % KEEP);
            if (pure[k]) {
                lock_shared();
                shared_slot[s] = mine[k];
                shared_sum[s] = mine_sum[k];
                pthread_mutex_unlock(&shared_mu);
            }
        }

        /* Take a shared tree (probably another thread's), verify it and link
         * it under a new node of ours together with one of our trees. */
        {
            int s = (int)(test_rand(&rng) % NSHARED);
            lock_shared();
            tnode *t = shared_slot[s];
            uint64_t tsum = shared_sum[s];
            pthread_mutex_unlock(&shared_mu);
            int k = (int)(test_rand(&rng) % KEEP);
            if (t != NULL) {
                note(r, tree_ok(t, tsum), "shared tree", me);
                if (pure[k]) {
                    tnode *link = new_node(&rng); /* t and mine[k] on the stack */
                    link->val = test_rand(&rng);
                    link->left = t;
                    link->right = mine[k];
                    link->sum = combine(link->val, link->left, link->right);
                    mine[k] = link;
                    mine_sum[k] = link->sum;
                    pure[k] = false;
                }
            }
        }

        /* Forced collection, then verify everything we can see. */
        if (it % r->collect_every == r->collect_every - 1) {
            rudo_collect();
            note(r, atomic_load(&tracing_now) == 0, "world stopped during tracing", me);
            forced++;
            for (int k = 0; k < KEEP; k++)
                note(r, tree_ok(mine[k], mine_sum[k]), "kept tree after collection", me);
            tnode *snap[NSHARED];
            uint64_t snap_sum[NSHARED];
            lock_shared();
            memcpy(snap, shared_slot, sizeof snap);
            memcpy(snap_sum, shared_sum, sizeof snap_sum);
            pthread_mutex_unlock(&shared_mu);
            for (int s = 0; s < NSHARED; s++)
                if (snap[s] != NULL)
                    note(r, tree_ok(snap[s], snap_sum[s]), "shared tree after collection", me);
        }
    }

    /* ---- handoff: thread me sends to me+1, receives from me-1 ---------- */
    test_barrier_wait(&r->barrier);
    tnode *held[HANDOFF];
    tnode *got[HANDOFF];
    uint64_t got_sum[HANDOFF];
    mailbox *out = &r->boxes[(me + 1) % n], *in = &r->boxes[me];
    for (int k = 0; k < HANDOFF; k++)
        held[k] = make_tree(r->depth, &rng);
    test_mutex_lock(&out->mu);
    for (int k = 0; k < HANDOFF; k++) {
        out->item[k] = (uintptr_t)held[k] ^ XOR_MASK;
        out->sum[k] = held[k]->sum;
    }
    out->count = HANDOFF;
    pthread_cond_broadcast(&out->cv);
    pthread_mutex_unlock(&out->mu);

    /* Receive. The sender still holds the trees on its stack until we ack. */
    uintptr_t xored[HANDOFF];
    rudo_blocking_enter();
    pthread_mutex_lock(&in->mu);
    while (in->count < HANDOFF)
        pthread_cond_wait(&in->cv, &in->mu);
    memcpy(xored, in->item, sizeof xored);
    memcpy(got_sum, in->sum, sizeof got_sum);
    pthread_mutex_unlock(&in->mu);
    rudo_blocking_leave();
    for (int k = 0; k < HANDOFF; k++)
        got[k] = (tnode *)(xored[k] ^ XOR_MASK);
    memset(xored, 0, sizeof xored);
    test_mutex_lock(&in->mu);
    in->acked = 1;
    pthread_cond_broadcast(&in->cv);
    pthread_mutex_unlock(&in->mu);

    /* Wait until the receiver holds ours, then drop them. */
    rudo_blocking_enter();
    pthread_mutex_lock(&out->mu);
    while (!out->acked)
        pthread_cond_wait(&out->cv, &out->mu);
    pthread_mutex_unlock(&out->mu);
    rudo_blocking_leave();
    for (int k = 0; k < HANDOFF; k++)
        ((tnode *volatile *)held)[k] = NULL;
    for (int k = 0; k < KEEP; k++)
        ((tnode *volatile *)mine)[k] = NULL;

    test_barrier_wait(&r->barrier);
    if (me % 2 == 1) {
        /* The trees we received die with us; the ones we sent now live only
         * on thread me+1's stack. */
        rudo_thread_detach();
        note(r, !rudo_thread_is_attached(), "detached", me);
        atomic_fetch_add(&r->odd_detached, 1);
        long f = atomic_load(&r->forced_max);
        while (forced > f && !atomic_compare_exchange_weak(&r->forced_max, &f, forced)) {
        }
        return NULL;
    }

    /* Even threads: wait (at safepoints) until every odd thread is gone, then
     * collect, churn and verify the trees their dead senders allocated. */
    while (atomic_load(&r->odd_detached) < n / 2) {
        rudo_safepoint();
        sched_yield();
    }
    rudo_stats st;
    rudo_get_stats(&st);
    note(r, st.threads_attached >= 2 && st.threads_attached <= 1u + (unsigned)n / 2,
         "threads_attached after odd threads detached", me);
    for (int rep = 0; rep < 3; rep++) {
        tnode *g = make_tree(r->depth + 1, &rng);
        (void)g;
        rudo_collect();
        forced++;
        for (int k = 0; k < HANDOFF; k++)
            note(r, tree_ok(got[k], got_sum[k]), "tree received from a detached thread", me);
    }
    long f = atomic_load(&r->forced_max);
    while (forced > f && !atomic_compare_exchange_weak(&r->forced_max, &f, forced)) {
    }
    rudo_thread_detach();
    note(r, !rudo_thread_is_attached(), "detached", me);
    return NULL;
}

static void run_threads(int nthreads) {
    run r;
    memset(&r, 0, sizeof r);
    r.nthreads = nthreads;
    r.depth = 8;
    r.iters = test_scaled(1600) / nthreads;
    if (r.iters < 4)
        r.iters = 4;
    r.collect_every = 4;
    pthread_barrier_init(&r.barrier, NULL, (unsigned)nthreads);
    r.boxes = calloc((size_t)nthreads, sizeof *r.boxes);
    for (int i = 0; i < nthreads; i++) {
        pthread_mutex_init(&r.boxes[i].mu, NULL);
        pthread_cond_init(&r.boxes[i].cv, NULL);
    }

    rudo_stats before, after;
    rudo_get_stats(&before);
    pthread_t tid[8];
    worker w[8];
    for (int i = 0; i < nthreads; i++) {
        w[i].r = &r;
        w[i].idx = i;
        if (pthread_create(&tid[i], NULL, worker_main, &w[i]) != 0) {
            perror("pthread_create");
            abort();
        }
    }
    /* Joining blocks: do it in a blocking region. */
    rudo_blocking_enter();
    for (int i = 0; i < nthreads; i++)
        pthread_join(tid[i], NULL);
    rudo_blocking_leave();
    rudo_get_stats(&after);

    printf("N=%d: %ld iterations/thread, %llu collections (max forced by one thread %ld)\n",
           nthreads, r.iters, (unsigned long long)(after.collections - before.collections),
           atomic_load(&r.forced_max));
    CHECK_EQ(atomic_load(&r.checks_failed), 0);
    /* Each rudo_collect call returns after a collection that started after
     * it, so one thread's sequential calls are distinct collections. */
    CHECK(after.collections >= before.collections + (uint64_t)atomic_load(&r.forced_max));
    CHECK(after.collections > before.collections);
    CHECK_EQ(after.threads_attached, 1u);

    /* The shared trees are still intact after every writer is gone. */
    rudo_collect();
    lock_shared();
    for (int s = 0; s < NSHARED; s++)
        if (shared_slot[s] != NULL)
            CHECK(tree_ok(shared_slot[s], shared_sum[s]));
    pthread_mutex_unlock(&shared_mu);

    for (int i = 0; i < nthreads; i++) {
        pthread_mutex_destroy(&r.boxes[i].mu);
        pthread_cond_destroy(&r.boxes[i].cv);
    }
    free(r.boxes);
    pthread_barrier_destroy(&r.barrier);
}

int main(void) {
    test_start_watchdog();
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.initial_heap = 1u << 20;
    cfg.scan_static_data = false; /* shared_slot is a root only via rudo_root_add */
    int rc = rudo_heap_create(&cfg);
    CHECK_EQ(rc, RUDO_OK);
    if (rc != RUDO_OK)
        return test_report();

    static const uint64_t layout[1] = {0x3}; /* words 0 and 1: left, right */
    kind_layout = rudo_kind_layout("tree/layout", 4, layout);
    kind_traced = rudo_kind_traced("tree/traced", trace_tnode);
    for (int s = 0; s < NSHARED; s++)
        rudo_root_add(&shared_slot[s]);

    /* Automatic collections happen with a 1 MiB initial heap: 8 MiB of
     * garbage from one thread without rudo_collect. */
    {
        rudo_stats a, b;
        rudo_get_stats(&a);
        uint64_t rng = 42;
        for (int i = 0; i < 128; i++) /* 128 trees of 2047 nodes of 32 bytes */
            (void)make_tree(10, &rng);
        rudo_get_stats(&b);
        printf("automatic collections for 8 MiB of garbage: %llu\n",
               (unsigned long long)(b.collections - a.collections));
        CHECK(b.collections >= a.collections + 4);
    }

    rudo_stats start;
    rudo_get_stats(&start);
    run_threads(2);
    run_threads(4);
    run_threads(8);
    rudo_stats end;
    rudo_get_stats(&end);
    CHECK(end.collections > start.collections);
    CHECK_EQ(atomic_load(&bad_nodes), 0);

    for (int s = 0; s < NSHARED; s++)
        CHECK_EQ(rudo_root_remove(&shared_slot[s]), RUDO_OK);
    rudo_heap_destroy();
    return test_report();
}
