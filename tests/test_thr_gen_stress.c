/* test_thr_gen_stress.c — generational mode under a randomized workload,
 * checked against a shadow model.
 *
 * Each thread owns a table (a callback-kind object of TABLE slots, rooted
 * precisely) and builds a changing graph of nodes from it: new nodes
 * stored into the table, links between nodes (old to young, young to
 * old), slots dropped, garbage, and nodes of the conservative kind, whose
 * stores use no barrier. Every store into a layout or callback object goes
 * through rudo_write. A small nursery makes allocation run minor
 * collections, a low major_growth mixes in major ones, and thread 0 also
 * asks for both now and then. The shadow model records, outside the heap,
 * what each table slot and each node's two links hold (by node id); the
 * threads walk their graphs and compare with it: a node freed while
 * reachable shows up as a wrong id, checksum or link (its cell reused, or
 * poisoned in RUDO_DEBUG builds).
 *
 * Usage: test_thr_gen_stress [SEED [STEPS [THREADS MARKERS]]]. Without
 * THREADS and MARKERS it runs a fixed set of configurations (1-4 threads,
 * 1-4 markers, and one whose workers are stopped by signal) with fixed
 * seeds. TEST_SCALE multiplies the steps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#define TABLE 512

typedef struct node {
    struct node *a, *b;
    uint64_t id, check;
} node;

typedef struct table {
    node *slot[TABLE];
} table;

static rudo_kind k_node, k_table;
static unsigned nthreads;
static long steps;
static uint64_t seed;
static table *roots[8];            /* precise roots, one per thread */
static _Atomic unsigned long bad;  /* mismatches found */
static bool signal_attach;         /* workers attach with RUDO_ATTACH_SIGNAL */

static void trace_table(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    table *t = obj;
    for (int i = 0; i < TABLE; i++)
        rudo_visit(tr, (void **)&t->slot[i]);
}

typedef struct shadow {
    uint64_t slot[TABLE];  /* node id in each table slot, 0 = NULL */
    uint64_t *a, *b;       /* links of node id i (ids are 1, 2, ...) */
    size_t n, cap;
    unsigned tid;
} shadow;

static uint64_t gid(unsigned tid, uint64_t local) { return ((uint64_t)tid << 40) | local; }

static node *make(shadow *s, rudo_kind kind, node *a) {
    if (s->n + 1 >= s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->a = realloc(s->a, s->cap * sizeof *s->a);
        s->b = realloc(s->b, s->cap * sizeof *s->b);
        if (!s->a || !s->b)
            abort();
    }
    uint64_t local = ++s->n;
    node *n = rudo_alloc(kind, sizeof *n);
    if (!n) {
        fprintf(stderr, "test_thr_gen_stress: allocation returned NULL\n");
        abort();
    }
    n->id = gid(s->tid, local);
    n->check = test_mix64(n->id);
    /* Initializing stores into the object just made: no barrier needed
     * (no allocation or safepoint since), for either kind. */
    n->a = a;
    s->a[local] = a ? a->id & ((1ull << 40) - 1) : 0;
    s->b[local] = 0;
    return n;
}

/* Compares the node at `n` with the shadow's node `local`, `depth` deep. */
static void walk(const shadow *s, const node *n, uint64_t local, int depth) {
    if (local == 0) {
        if (n != NULL)
            bad++;
        return;
    }
    if (!n || n->id != gid(s->tid, local) || n->check != test_mix64(n->id)) {
        if (bad++ < 5)
            fprintf(stderr, "thread %u: node %llu lost or corrupt (at %p)\n", s->tid,
                    (unsigned long long)local, (const void *)n);
        return;
    }
    if (depth == 0)
        return;
    walk(s, n->a, s->a[local], depth - 1);
    walk(s, n->b, s->b[local], depth - 1);
}

static uint64_t local_of(const node *n) { return n ? n->id & ((1ull << 40) - 1) : 0; }

static void *worker(void *arg) {
    shadow *s = arg;
    /* With signal_attach the workers never poll: every collection stops
     * them with a signal, wherever they are (a barrier half done too). */
    if (s->tid != 0 && (signal_attach ? rudo_thread_attach_flags(RUDO_ATTACH_SIGNAL)
                                      : rudo_thread_attach()) != RUDO_OK)
        abort();
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + s->tid + 1;
    table *t = rudo_alloc(k_table, sizeof *t);
    roots[s->tid] = t;
    for (long step = 0; step < steps; step++) {
        unsigned r = (unsigned)(test_rand(&rng) % TABLE);
        unsigned q = (unsigned)(test_rand(&rng) % TABLE);
        unsigned op = (unsigned)(test_rand(&rng) % 100);
        t = roots[s->tid];
        if (op < 40) {
            /* A new node, linked to an existing one (young or old). */
            rudo_kind kind = op < 4 ? RUDO_KIND_CONSERVATIVE : k_node;
            node *n = make(s, kind, t->slot[q]);
            rudo_write(t, (void **)&t->slot[r], n);
            s->slot[r] = local_of(n);
        } else if (op < 60) {
            /* A link between two nodes of the table, either age. */
            node *x = t->slot[r], *y = t->slot[q];
            if (x) {
                if (rudo_kind_of(x) == RUDO_KIND_CONSERVATIVE)
                    x->b = y; /* no barrier: a conservative object */
                else
                    rudo_write(x, (void **)&x->b, y);
                s->b[local_of(x)] = local_of(y);
            }
        } else if (op < 70) {
            rudo_write(t, (void **)&t->slot[r], NULL);
            s->slot[r] = 0;
        } else if (op < 85) {
            /* Garbage, some of it pointing into the graph. */
            for (int i = 0; i < 8; i++)
                (void)make(s, k_node, t->slot[(r + (unsigned)i) % TABLE]);
        } else if (op < 99) {
            walk(s, t->slot[r], s->slot[r], 6);
        } else if (s->tid == 0) {
            if (test_rand(&rng) % 4 == 0)
                rudo_collect();
            else
                rudo_collect_minor();
        }
    }
    for (int i = 0; i < TABLE; i++)
        walk(s, t->slot[i], s->slot[i], 12);
    roots[s->tid] = NULL;
    if (s->tid != 0)
        rudo_thread_detach();
    return NULL;
}

static void run(unsigned threads, unsigned markers) {
    rudo_config cfg = test_precise_config(markers);
    cfg.generational = true;
    cfg.nursery = 256 << 10;
    cfg.initial_heap = 256 << 10;
    cfg.major_growth = 1.2;
    /* Suspension by signal needs the stacks scanned (rudo.h): a thread
     * stopped anywhere holds pointers in registers, not in roots. */
    cfg.scan_stacks = signal_attach;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    static const uint64_t two = 3;
    k_node = rudo_kind_layout("stress-node", 4, &two);
    k_table = rudo_kind_traced("stress-table", trace_table);
    for (unsigned i = 0; i < 8; i++)
        rudo_root_add((void **)&roots[i]);
    nthreads = threads;
    shadow *sh = calloc(threads, sizeof *sh);
    pthread_t th[8];
    for (unsigned i = 0; i < threads; i++)
        sh[i].tid = i;
    for (unsigned i = 1; i < threads; i++)
        if (pthread_create(&th[i], NULL, worker, &sh[i]) != 0)
            abort();
    worker(&sh[0]);
    rudo_blocking_enter();
    for (unsigned i = 1; i < threads; i++)
        pthread_join(th[i], NULL);
    rudo_blocking_leave();
    rudo_stats st;
    rudo_get_stats(&st);
    printf("threads %u markers %u%s: %llu minor, %llu major collections, "
           "promoted %llu KiB, %lu bad\n", threads, markers,
           signal_attach ? " (signal)" : "",
           (unsigned long long)st.minor_collections,
           (unsigned long long)st.major_collections,
           (unsigned long long)(st.promoted_bytes_total >> 10), (unsigned long)bad);
    CHECK(st.minor_collections > 0);
    CHECK(st.major_collections > 0);
    CHECK_EQ(bad, 0);
    for (unsigned i = 0; i < threads; i++) {
        free(sh[i].a);
        free(sh[i].b);
    }
    free(sh);
    rudo_heap_destroy();
}

int main(int argc, char **argv) {
    test_start_watchdog();
    seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 12345;
    long base = argc > 2 ? strtol(argv[2], NULL, 0) : 300000;
    if (TEST_UNDER_TSAN || TEST_UNDER_ASAN)
        base /= 4;
    if (getenv("RUDO_GC_STRESS"))
        base /= 10; /* a collection every few allocations already */
    steps = test_scaled(base);
    if (argc > 4) {
        unsigned t = (unsigned)atoi(argv[3]), m = (unsigned)atoi(argv[4]);
        if (t < 1 || t > 8 || m < 1) {
            fprintf(stderr, "usage: %s [SEED [STEPS [THREADS(1-8) MARKERS]]]\n", argv[0]);
            return 2;
        }
        run(t, m);
        return test_report();
    }
    static const unsigned configs[][3] = {{1, 1, 0}, {1, 4, 0}, {2, 2, 0}, {3, 1, 0},
                                          {4, 4, 0}, {3, 2, 1}};
    for (size_t i = 0; i < sizeof configs / sizeof *configs; i++) {
        seed += i;
        signal_attach = configs[i][2];
        run(configs[i][0], configs[i][1]);
    }
    return test_report();
}
