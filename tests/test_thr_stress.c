/* test_thr_stress.c — multi-threaded shadow-model stress test.
 *
 * T threads (default 4) each run a seeded pseudo-random program that builds
 * and rewires a graph of nodes (a traced kind: four child slots, a pointer
 * to a private "tag", an id, a payload and a checksum). Each thread keeps a
 * shadow of its graph in malloc'd memory, by ids (pointers only XORed with
 * a mask), so the shadow is never a root. The heap scans neither stacks nor
 * static data: the only roots are the registered precise root slots, so
 * reachability is exactly what the shadow says.
 *
 * Reclamation is observed through finalizers: every node points to its own
 * tag, an object of an atomic kind with a finalizer, referenced by nothing
 * else. Nodes have no finalizer, so a tag becomes unreachable in the very
 * collection its node does and nothing is held back for finalization order.
 * The finalizer counts the tag's id.
 *
 * Checks:
 *  - no thread runs while a trace callback does (the world is stopped);
 *  - after every forced collection (random points, random threads) the
 *    thread verifies every node reachable from its roots: id, payload,
 *    checksum, child pointers equal to the shadow's, tag intact, and its tag
 *    not finalized;
 *  - at checkpoints all threads park at a barrier (in blocking regions); one
 *    collects, and then, over all threads' shadows and the shared slots:
 *    every reachable node is intact and marked, and its tag was never
 *    finalized; every unreachable node's tag was finalized exactly once
 *    (exact: precise roots only); live_bytes lies between the reachable
 *    objects' requested sizes and a bound over their usable sizes; the heap
 *    verifier passes;
 *  - threads also publish frozen leaves in shared root slots and link other
 *    threads' leaves into their graphs, so nodes are reachable across
 *    threads;
 *  - at the end, with every thread's roots removed, only the shared leaves
 *    survive; with the shared slots removed too, every tag was finalized
 *    once and stats.finalizers_run agrees.
 *
 * Usage: test_thr_stress [SEED [STEPS [THREADS]]] — STEPS per thread;
 * defaults: fixed seed, 50000 * TEST_SCALE steps, 4 threads.
 * Environment: TEST_SCALE (factor, default 1), TEST_TIMEOUT (s, default 500). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

/* ---- objects -------------------------------------------------------------- */

#define MAXC 4
#define TAG_MAGIC 0x7a67u

typedef struct tag {
    uint64_t id;
    uint64_t magic;
} tag;

typedef struct node {
    struct node *child[MAXC];
    tag *tag;
    uint64_t id;
    uint64_t npay;
    uint64_t check; /* node_check(id, npay) */
    uint64_t payload[];
} node;

static uint64_t node_check(uint64_t id, uint64_t npay) { return test_mix64(id * 0x51ed27u ^ npay); }
static uint64_t pay_word(uint64_t id, uint64_t i) { return test_mix64(id * 131 + i + 7); }

static rudo_kind kind_node, kind_tag;

/* Trace callbacks run with the world stopped: a running mutator must never
 * see one in progress. */
static atomic_int tracing_now;

static void trace_node(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    node *n = obj;
    atomic_fetch_add(&tracing_now, 1);
    for (int k = 0; k < MAXC; k++)
        rudo_visit(tr, (void **)&n->child[k]);
    rudo_visit(tr, (void **)&n->tag);
    atomic_fetch_sub(&tracing_now, 1);
}

/* ---- shadow --------------------------------------------------------------- */

static const uintptr_t MASK = (uintptr_t)0x5a5a5a5a5a5a5a5aULL;

typedef struct shadow {
    uintptr_t pxor;       /* node address ^ MASK */
    uint64_t child[MAXC]; /* child id + 1; 0 = NULL */
    uint32_t npay;
    uint8_t frozen;       /* published leaf: never changed again */
} shadow;

#define NROOTS 16
#define LIVE_TARGET 2000 /* above this many own reachable nodes, new ones replace roots */
#define NSHARED 8

static int nthreads;
static uint64_t cap;         /* ids per thread: thread t owns [t*cap, (t+1)*cap) */
static shadow *sh;           /* nthreads * cap entries */
static atomic_uint *fin;     /* per id: times its tag was finalized */
static atomic_long finalized_total;

static void *shared_slot[NSHARED]; /* registered precise roots */
static uint64_t shared_id[NSHARED]; /* id + 1 */
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;

static node *ptr_of(uint64_t id) { return (node *)(sh[id].pxor ^ MASK); }

static void finalize_tag(void *obj, void *data) {
    (void)data;
    tag *g = obj;
    if (g->magic != TAG_MAGIC || g->id >= (uint64_t)nthreads * cap) {
        fprintf(stderr, "finalizer: corrupt tag %p (id %llu magic %llx)\n", obj,
                (unsigned long long)g->id, (unsigned long long)g->magic);
        atomic_fetch_add(&finalized_total, 1000000000L); /* fails the counts */
        return;
    }
    atomic_fetch_add(&fin[g->id], 1);
    atomic_fetch_add(&finalized_total, 1);
}

/* ---- per-thread state ------------------------------------------------------ */

typedef struct tstate {
    int idx;
    uint64_t rng;
    uint64_t next;          /* next sequence number; ids idx*cap + seq */
    void **roots;           /* malloc'd, NROOTS slots, registered */
    uint64_t rootid[NROOTS]; /* id + 1 */
    void **tmp;             /* malloc'd, one registered slot: in-flight object */
    uint32_t *seen;         /* per id: epoch of the last visit */
    uint32_t epoch;
    uint64_t *queue;        /* BFS queue (ids) */
    long own_live;          /* nodes reachable from own roots at last verify */
    long forced, failures;
    pthread_t tid;
} tstate;

static tstate *ts;
static long steps;
static long checkpoint_every;
static pthread_barrier_t bar;
static atomic_long total_failures;

static void fail(tstate *t, const char *what, uint64_t id) {
    if (t->failures++ < 20)
        fprintf(stderr, "thread %d: %s (node id %llu)\n", t->idx, what, (unsigned long long)id);
    atomic_fetch_add(&total_failures, 1);
}

/* Allocates a node with its tag; afterwards *t->tmp holds the node (rooted)
 * and the caller must link it before the next safepoint, then clear tmp.
 * Returns its id. */
static uint64_t new_node(tstate *t, bool frozen) {
    uint64_t seq = t->next++;
    if (seq >= cap) {
        fprintf(stderr, "stress: id space exhausted\n");
        abort();
    }
    uint64_t id = (uint64_t)t->idx * cap + seq;
    uint64_t r = test_rand(&t->rng) % 1000;
    uint64_t npay = r < 700 ? r % 5 : r < 950 ? 5 + r % 56 : r < 999 ? 61 + r % 940 : 5000;
    tag *g = rudo_alloc(kind_tag, sizeof(tag));
    if (g == NULL) {
        fprintf(stderr, "rudo_alloc returned NULL\n");
        abort();
    }
    g->id = id;
    g->magic = TAG_MAGIC;
    *t->tmp = g;
    node *n = rudo_alloc(kind_node, sizeof(node) + npay * sizeof(uint64_t));
    if (n == NULL) {
        fprintf(stderr, "rudo_alloc returned NULL\n");
        abort();
    }
    n->tag = *t->tmp; /* the tag survived the allocation through the root */
    n->id = id;
    n->npay = npay;
    for (uint64_t i = 0; i < npay; i++)
        n->payload[i] = pay_word(id, i);
    n->check = node_check(id, npay);
    *t->tmp = n;
    shadow *s = &sh[id];
    s->pxor = (uintptr_t)n ^ MASK;
    memset(s->child, 0, sizeof s->child);
    s->npay = (uint32_t)npay;
    s->frozen = frozen;
    return id;
}

/* A random node reachable from the thread's roots (id + 1), or 0. With
 * `own`, only a node this thread may rewire (its own and not frozen). */
static uint64_t pick(tstate *t, bool own) {
    int r0 = (int)(test_rand(&t->rng) % NROOTS);
    uint64_t cur = 0;
    for (int i = 0; i < NROOTS && cur == 0; i++)
        cur = t->rootid[(r0 + i) % NROOTS];
    if (cur == 0)
        return 0;
    int depth = (int)(test_rand(&t->rng) % 8);
    for (int i = 0; i < depth; i++) {
        uint64_t c = sh[cur - 1].child[test_rand(&t->rng) % MAXC];
        if (c == 0)
            break;
        cur = c;
    }
    if (own && ((cur - 1) / cap != (uint64_t)t->idx || sh[cur - 1].frozen))
        return 0;
    return cur;
}

/* A node this thread may rewire that has an empty child slot (id + 1, and
 * the slot in *k), or 0 if a few tries find none. */
static uint64_t pick_with_room(tstate *t, int *k) {
    for (int tries = 0; tries < 8; tries++) {
        uint64_t a = pick(t, true);
        if (a == 0)
            continue;
        int k0 = (int)(test_rand(&t->rng) % MAXC);
        for (int i = 0; i < MAXC; i++)
            if (sh[a - 1].child[(k0 + i) % MAXC] == 0) {
                *k = (k0 + i) % MAXC;
                return a;
            }
    }
    return 0;
}

/* Checks one node against its shadow; returns false (and reports) if not. */
static bool node_ok(tstate *t, uint64_t id, bool check_marked) {
    node *n = ptr_of(id);
    const shadow *s = &sh[id];
    bool ok = true;
    if (n->id != id || n->npay != s->npay || n->check != node_check(id, s->npay)) {
        fail(t, "node header corrupt", id);
        return false;
    }
    for (uint64_t i = 0; i < s->npay; i++)
        if (n->payload[i] != pay_word(id, i)) {
            fail(t, "node payload corrupt", id);
            ok = false;
            break;
        }
    for (int k = 0; k < MAXC; k++) {
        node *want = s->child[k] ? ptr_of(s->child[k] - 1) : NULL;
        if (n->child[k] != want) {
            fail(t, "child pointer differs from the shadow", id);
            ok = false;
        }
    }
    if (n->tag == NULL || n->tag->id != id || n->tag->magic != TAG_MAGIC) {
        fail(t, "tag corrupt", id);
        ok = false;
    }
    if (atomic_load(&fin[id]) != 0) {
        fail(t, "reachable node's tag was finalized", id);
        ok = false;
    }
    if (check_marked && (!rudo__debug_is_marked(n) || !rudo__debug_is_marked(n->tag))) {
        fail(t, "reachable node not marked by the last collection", id);
        ok = false;
    }
    return ok;
}

/* Verifies every node reachable from this thread's roots. */
static void verify_own(tstate *t) {
    uint32_t ep = ++t->epoch;
    size_t head = 0, tail = 0;
    for (int r = 0; r < NROOTS; r++) {
        uint64_t id1 = t->rootid[r];
        if ((id1 ? (void *)ptr_of(id1 - 1) : NULL) != t->roots[r])
            fail(t, "root slot differs from the shadow", id1);
        if (id1 && t->seen[id1 - 1] != ep) {
            t->seen[id1 - 1] = ep;
            t->queue[tail++] = id1 - 1;
        }
    }
    while (head < tail) {
        uint64_t id = t->queue[head++];
        node_ok(t, id, false);
        for (int k = 0; k < MAXC; k++) {
            uint64_t c = sh[id].child[k];
            if (c && t->seen[c - 1] != ep) {
                t->seen[c - 1] = ep;
                t->queue[tail++] = c - 1;
            }
        }
    }
    t->own_live = (long)tail;
}

/* One random operation. */
static void step(tstate *t) {
    uint64_t op = test_rand(&t->rng) % 100;
    if (op < 40) { /* allocate a node; hang it from an empty slot or a root */
        uint64_t id = new_node(t, false);
        int k = 0;
        uint64_t a = t->own_live > LIVE_TARGET ? 0 : pick_with_room(t, &k);
        if (a != 0) {
            ptr_of(a - 1)->child[k] = *t->tmp;
            sh[a - 1].child[k] = id + 1;
        } else { /* over the target, or no room found: use a root */
            int r = (int)(test_rand(&t->rng) % NROOTS);
            if (t->own_live <= LIVE_TARGET)
                for (int i = 0; i < NROOTS && t->rootid[r] != 0; i++)
                    r = (r + 1) % NROOTS; /* an empty one if there is one */
            t->roots[r] = *t->tmp;
            t->rootid[r] = id + 1;
        }
        *t->tmp = NULL;
    } else if (op < 56) { /* rewire an edge (mostly filling an empty slot) */
        uint64_t a = pick(t, true);
        if (a == 0)
            return;
        uint64_t b = test_rand(&t->rng) % 10 == 0 ? 0 : pick(t, false);
        int k = (int)(test_rand(&t->rng) % MAXC);
        if (test_rand(&t->rng) % 8 != 0)
            for (int i = 0; i < MAXC && sh[a - 1].child[k] != 0; i++)
                k = (k + 1) % MAXC;
        ptr_of(a - 1)->child[k] = b ? ptr_of(b - 1) : NULL;
        sh[a - 1].child[k] = b;
    } else if (op < 58) { /* set or clear a root */
        int r = (int)(test_rand(&t->rng) % NROOTS);
        uint64_t b = test_rand(&t->rng) % 4 == 0 ? 0 : pick(t, false);
        t->roots[r] = b ? ptr_of(b - 1) : NULL;
        t->rootid[r] = b;
    } else if (op < 61) { /* publish a frozen leaf */
        uint64_t id = new_node(t, true);
        int s = (int)(test_rand(&t->rng) % NSHARED);
        test_mutex_lock(&shared_mu);
        shared_slot[s] = *t->tmp;
        shared_id[s] = id + 1;
        pthread_mutex_unlock(&shared_mu);
        *t->tmp = NULL;
    } else if (op < 65) { /* take a shared leaf into the graph */
        int s = (int)(test_rand(&t->rng) % NSHARED);
        test_mutex_lock(&shared_mu);
        void *p = shared_slot[s];
        uint64_t pid = shared_id[s];
        pthread_mutex_unlock(&shared_mu);
        if (pid == 0)
            return;
        /* No safepoint until p is linked: p cannot be collected meanwhile. */
        int k = 0;
        uint64_t a = pick_with_room(t, &k);
        if (a != 0) {
            ptr_of(a - 1)->child[k] = p;
            sh[a - 1].child[k] = pid;
        } else { /* an empty root slot, if there is one */
            int r0 = (int)(test_rand(&t->rng) % NROOTS);
            for (int i = 0; i < NROOTS; i++) {
                int r = (r0 + i) % NROOTS;
                if (t->rootid[r] == 0) {
                    t->roots[r] = p;
                    t->rootid[r] = pid;
                    break;
                }
            }
        }
    } else if (op < 66) { /* forced collection, then verify */
        rudo_collect();
        if (atomic_load(&tracing_now) != 0)
            fail(t, "a trace callback runs after rudo_collect returned", 0);
        t->forced++;
        verify_own(t);
    } else { /* read a random path */
        if (atomic_load(&tracing_now) != 0)
            fail(t, "a mutator runs while a trace callback runs", 0);
        uint64_t a = pick(t, false);
        if (a != 0 && ptr_of(a - 1)->id != a - 1)
            fail(t, "node id differs on a walk", a - 1);
    }
}

/* ---- global exact check (all threads parked) ------------------------------ */

static uint32_t *gseen;
static uint64_t *gqueue;
static uint32_t gepoch;

/* Checks over every thread's shadow: reachable nodes intact, marked, not
 * finalized; unreachable nodes finalized exactly once. `with_roots`: count
 * the threads' root slots (false after the threads removed them);
 * `with_shared`: count the shared slots. */
static void global_check(tstate *t, bool with_roots, bool with_shared, bool check_marked,
                         long newly_finalized) {
    uint32_t ep = ++gepoch;
    size_t head = 0, tail = 0;
#define GPUSH(id1)                                                                  \
    do {                                                                            \
        uint64_t id1_ = (id1);                                                      \
        if (id1_ && gseen[id1_ - 1] != ep) {                                        \
            gseen[id1_ - 1] = ep;                                                   \
            gqueue[tail++] = id1_ - 1;                                              \
        }                                                                           \
    } while (0)
    if (with_roots)
        for (int u = 0; u < nthreads; u++)
            for (int r = 0; r < NROOTS; r++)
                GPUSH(ts[u].rootid[r]);
    if (with_shared)
        for (int s = 0; s < NSHARED; s++)
            GPUSH(shared_id[s]);
    size_t req = 0, usable = 0;
    while (head < tail) {
        uint64_t id = gqueue[head++];
        if (node_ok(t, id, check_marked)) {
            node *n = ptr_of(id);
            req += sizeof(node) + sh[id].npay * sizeof(uint64_t) + sizeof(tag);
            usable += rudo_size(n) + rudo_size(n->tag);
        }
        for (int k = 0; k < MAXC; k++)
            GPUSH(sh[id].child[k]);
    }
#undef GPUSH
    long unreached = 0, wrong = 0;
    for (int u = 0; u < nthreads; u++)
        for (uint64_t seq = 0; seq < ts[u].next; seq++) {
            uint64_t id = (uint64_t)u * cap + seq;
            unsigned f = atomic_load(&fin[id]);
            if (gseen[id] == ep)
                continue; /* node_ok checked f == 0 */
            unreached++;
            if (f != 1) {
                if (wrong++ < 10)
                    fprintf(stderr, "unreachable node %llu: tag finalized %u times\n",
                            (unsigned long long)id, f);
            }
        }
    CHECK_EQ(wrong, 0);
    rudo_stats st;
    rudo_get_stats(&st);
    CHECK(st.live_bytes >= req);
    CHECK(st.live_bytes <= 2 * usable + (size_t)newly_finalized * 64 + 65536);
    printf("checkpoint: %zu reachable, %ld unreachable, live_bytes %zu (requested %zu, usable "
           "%zu)\n",
           tail, unreached, st.live_bytes, req, usable);
}

static void checkpoint(tstate *t) {
    rudo_blocking_enter();
    pthread_barrier_wait(&bar);
    if (t->idx == 0) {
        rudo_blocking_leave();
        long before = atomic_load(&finalized_total);
        rudo_collect();
        long newly = atomic_load(&finalized_total) - before;
        global_check(t, true, true, true, newly);
        rudo__debug_verify_heap();
        rudo_blocking_enter();
    }
    pthread_barrier_wait(&bar);
    rudo_blocking_leave();
}

static void *thread_main(void *arg) {
    tstate *t = arg;
    if (rudo_thread_attach() != RUDO_OK) {
        fail(t, "rudo_thread_attach", 0);
        return NULL;
    }
    for (int r = 0; r < NROOTS; r++)
        rudo_root_add(&t->roots[r]);
    rudo_root_add(t->tmp);
    for (long i = 1; i <= steps; i++) {
        step(t);
        if (i % checkpoint_every == 0 || i == steps)
            checkpoint(t);
    }
    verify_own(t);
    for (int r = 0; r < NROOTS; r++) {
        if (rudo_root_remove(&t->roots[r]) != RUDO_OK)
            fail(t, "rudo_root_remove", 0);
        t->rootid[r] = 0;
    }
    if (rudo_root_remove(t->tmp) != RUDO_OK)
        fail(t, "rudo_root_remove", 0);
    rudo_thread_detach();
    return NULL;
}

int main(int argc, char **argv) {
    test_start_watchdog();
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 0x5eed2024u;
    steps = argc > 2 ? strtol(argv[2], NULL, 0) : test_scaled(50000);
    nthreads = argc > 3 ? atoi(argv[3]) : 4;
    if (steps < 1 || nthreads < 1 || nthreads > 64) {
        fprintf(stderr, "usage: %s [SEED [STEPS [THREADS]]]\n", argv[0]);
        return 2;
    }
    checkpoint_every = steps / 6 > 0 ? steps / 6 : 1;
    cap = (uint64_t)steps + 16;
    printf("seed %llu, %ld steps x %d threads\n", (unsigned long long)seed, steps, nthreads);

    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.initial_heap = 256u << 10;
    cfg.scan_stacks = false;
    cfg.scan_static_data = false;
    int rc = rudo_heap_create(&cfg);
    CHECK_EQ(rc, RUDO_OK);
    if (rc != RUDO_OK)
        return test_report();
    kind_node = rudo_kind_traced("stress/node", trace_node);
    rudo_kind_desc td = {.name = "stress/tag", .tracing = RUDO_TRACE_ATOMIC,
                         .finalize = finalize_tag};
    kind_tag = rudo_kind_register(&td);
    for (int s = 0; s < NSHARED; s++)
        rudo_root_add(&shared_slot[s]);

    size_t nids = (size_t)nthreads * cap;
    sh = calloc(nids, sizeof *sh);
    fin = calloc(nids, sizeof *fin);
    gseen = calloc(nids, sizeof *gseen);
    gqueue = calloc(nids, sizeof *gqueue);
    ts = calloc((size_t)nthreads, sizeof *ts);
    if (!sh || !fin || !gseen || !gqueue || !ts) {
        perror("calloc");
        return 2;
    }
    for (int u = 0; u < nthreads; u++) {
        ts[u].idx = u;
        ts[u].rng = test_mix64(seed ^ (0x1000u + (uint64_t)u)) | 1;
        ts[u].roots = calloc(NROOTS, sizeof(void *));
        ts[u].tmp = calloc(1, sizeof(void *));
        ts[u].seen = calloc(nids, sizeof(uint32_t));
        ts[u].queue = calloc(nids, sizeof(uint64_t));
        if (!ts[u].roots || !ts[u].tmp || !ts[u].seen || !ts[u].queue) {
            perror("calloc");
            return 2;
        }
    }
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads);

    rudo_stats st0, st1;
    rudo_get_stats(&st0);
    for (int u = 0; u < nthreads; u++)
        if (pthread_create(&ts[u].tid, NULL, thread_main, &ts[u]) != 0) {
            perror("pthread_create");
            abort();
        }
    rudo_blocking_enter();
    for (int u = 0; u < nthreads; u++)
        pthread_join(ts[u].tid, NULL);
    rudo_blocking_leave();
    rudo_get_stats(&st1);

    long forced_max = 0, nodes = 0;
    for (int u = 0; u < nthreads; u++) {
        if (ts[u].forced > forced_max)
            forced_max = ts[u].forced;
        nodes += (long)ts[u].next;
    }
    printf("%llu collections (max forced by one thread %ld), %ld nodes\n",
           (unsigned long long)(st1.collections - st0.collections), forced_max, nodes);
    CHECK(st1.collections >= st0.collections + (uint64_t)forced_max);
    CHECK_EQ(st1.threads_attached, 1u);

    /* Threads' roots are gone: only the shared leaves survive. */
    tstate mainst = {.idx = -1};
    long before = atomic_load(&finalized_total);
    rudo_collect();
    global_check(&mainst, false, true, true, atomic_load(&finalized_total) - before);
    /* Shared slots gone too: everything is finalized exactly once. */
    for (int s = 0; s < NSHARED; s++) {
        CHECK_EQ(rudo_root_remove(&shared_slot[s]), RUDO_OK);
        shared_slot[s] = NULL;
    }
    rudo_collect();
    global_check(&mainst, false, false, false, 0);
    CHECK_EQ(atomic_load(&finalized_total), nodes);
    rudo_stats st2;
    rudo_get_stats(&st2);
    CHECK_EQ(st2.finalizers_run - st0.finalizers_run, (uint64_t)nodes);
    CHECK_EQ(atomic_load(&total_failures), 0);
    CHECK(mainst.failures == 0);

    rudo_heap_destroy();
    for (int u = 0; u < nthreads; u++) {
        free(ts[u].roots);
        free(ts[u].tmp);
        free(ts[u].seen);
        free(ts[u].queue);
    }
    free(ts);
    free(sh);
    free(fin);
    free(gseen);
    free(gqueue);
    pthread_barrier_destroy(&bar);
    return test_report();
}
