/* test_thr_weak_stress.c — a shadow-model stress of weak slots and
 * ephemerons. Each thread owns a graph of nodes (two strong fields) and
 * ephemerons (key, value), rooted through a precise holder, and a set of
 * registered weak slots. It mutates the graph at random (new objects,
 * links, dropped links and roots, weak targets), collects, and checks
 * the collector against its model, which computes reachability with the
 * ephemeron rule (a value counts only while its key is reachable
 * otherwise, iterated to a fixpoint) and predicts exactly:
 *  - which objects survive, and that their contents are intact;
 *  - which ephemerons are cleared (key and value NULL);
 *  - which weak slots are NULL.
 * Configurations: 1-4 threads x 1, 2, 7 markers, routing on and off;
 * precise roots only. TEST_SEED and TEST_SCALE change the runs,
 * TEST_CONFIG=n runs configuration n alone. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rudo.h"
#include "testlib.h"

#define MAXOBJ 192
#define NROOT 16
#define NWEAK 48

typedef struct node {
    struct node *field[2];
    uint64_t stamp;
} node;

static rudo_kind k_node, k_eph;
static atomic_long errors;

static void trace_node(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    node *n = obj;
    rudo_visit(tr, (void **)&n->field[0]);
    rudo_visit(tr, (void **)&n->field[1]);
}

/* The model of one thread's objects. Edges are indices (-1 none). */
typedef struct model {
    int n;                      /* objects in the model (dense) */
    void *ptr[MAXOBJ];
    bool is_eph[MAXOBJ];
    int edge[MAXOBJ][2];        /* node: fields; ephemeron: key, value */
    uint64_t stamp[MAXOBJ];
    int root[NROOT];            /* object in each root slot */
    void **holder;              /* the root slots, a rooted heap array */
    void **weak;                /* NWEAK registered weak slots (malloc) */
    int weak_target[NWEAK];
    uint64_t rng;
    long bad;
} model;

/* Reachability with the ephemeron rule: a node's fields are strong; an
 * ephemeron's value counts only once its key is reached. */
static void reach(const model *m, bool *r) {
    memset(r, 0, sizeof(bool) * MAXOBJ);
    int stack[MAXOBJ * 2], sp = 0;
    for (int i = 0; i < NROOT; i++)
        if (m->root[i] >= 0 && !r[m->root[i]])
            r[m->root[i]] = true, stack[sp++] = m->root[i];
    for (;;) {
        while (sp) {
            int x = stack[--sp];
            if (m->is_eph[x])
                continue; /* values: in the fixpoint below */
            for (int f = 0; f < 2; f++) {
                int y = m->edge[x][f];
                if (y >= 0 && !r[y])
                    r[y] = true, stack[sp++] = y;
            }
        }
        bool more = false;
        for (int x = 0; x < m->n; x++) {
            int k = m->edge[x][0], v = m->edge[x][1];
            if (r[x] && m->is_eph[x] && v >= 0 && !r[v] && (k < 0 || r[k])) {
                r[v] = true;
                stack[sp++] = v;
                more = true;
            }
        }
        if (!more)
            return;
    }
}

static void fail(model *m, const char *what, int i) {
    if (m->bad++ < 5)
        fprintf(stderr, "weak stress: %s (object/slot %d)\n", what, i);
    atomic_fetch_add(&errors, 1);
}

/* Stores object i in the heap: its fields from the model. */
static void write_obj(model *m, int i) {
    void *e0 = m->edge[i][0] >= 0 ? m->ptr[m->edge[i][0]] : NULL;
    void *e1 = m->edge[i][1] >= 0 ? m->ptr[m->edge[i][1]] : NULL;
    if (m->is_eph[i]) {
        rudo_ephemeron *e = m->ptr[i];
        e->key = e0;
        e->value = e1;
    } else {
        node *n = m->ptr[i];
        n->field[0] = e0;
        n->field[1] = e1;
    }
}

/* A random object reachable now, or -1. */
static int pick(model *m, const bool *r) {
    int live[MAXOBJ], n = 0;
    for (int i = 0; i < m->n; i++)
        if (r[i])
            live[n++] = i;
    return n ? live[test_rand(&m->rng) % (uint64_t)n] : -1;
}

static void step(model *m) {
    bool r[MAXOBJ];
    reach(m, r);
    switch (test_rand(&m->rng) % 8) {
    case 0:
    case 1: { /* a new object, into a root slot at once (precise roots) */
        if (m->n == MAXOBJ)
            break;
        int i = m->n;
        bool eph = test_rand(&m->rng) % 3 == 0;
        void *p = eph ? rudo_alloc(k_eph, sizeof(rudo_ephemeron))
                      : rudo_alloc(k_node, sizeof(node));
        int slot = (int)(test_rand(&m->rng) % NROOT);
        m->holder[slot] = p;
        m->root[slot] = i;
        m->n++;
        m->ptr[i] = p;
        m->is_eph[i] = eph;
        m->edge[i][0] = m->edge[i][1] = -1;
        m->stamp[i] = test_rand(&m->rng) | 1;
        if (!eph)
            ((node *)p)->stamp = m->stamp[i];
        /* Now every object reachable before is still a candidate target
         * (the root slot it replaced may have dropped some: recompute). */
        reach(m, r);
        for (int f = 0; f < 2; f++)
            if (test_rand(&m->rng) % 2)
                m->edge[i][f] = pick(m, r);
        write_obj(m, i);
        break;
    }
    case 2: /* a link between reachable objects */
    case 3: {
        /* Only nodes change: an ephemeron's fields are set once, when it
         * is made. Another thread's collection may clear an ephemeron
         * whose key died meanwhile, and rewriting its fields from the
         * model would store the dead key back (a dangling pointer, which
         * no correct program writes). */
        int x = pick(m, r);
        if (x < 0 || m->is_eph[x])
            break;
        m->edge[x][test_rand(&m->rng) % 2] = test_rand(&m->rng) % 4 ? pick(m, r) : -1;
        write_obj(m, x);
        break;
    }
    case 4: { /* drop a root */
        int slot = (int)(test_rand(&m->rng) % NROOT);
        m->holder[slot] = NULL;
        m->root[slot] = -1;
        break;
    }
    case 5: { /* re-root a reachable object */
        int x = pick(m, r), slot = (int)(test_rand(&m->rng) % NROOT);
        if (x >= 0) {
            m->holder[slot] = m->ptr[x];
            m->root[slot] = x;
        }
        break;
    }
    default: { /* aim a weak slot */
        int w = (int)(test_rand(&m->rng) % NWEAK), x = pick(m, r);
        m->weak[w] = x >= 0 ? m->ptr[x] : NULL;
        m->weak_target[w] = x;
        break;
    }
    }
}

/* After a collection: check the predictions, then forget the dead. */
static void check(model *m) {
    bool r[MAXOBJ];
    reach(m, r);
    for (int w = 0; w < NWEAK; w++) {
        int t = m->weak_target[w];
        void *want = t >= 0 && r[t] ? m->ptr[t] : NULL;
        if (m->weak[w] != want)
            fail(m, want ? "weak slot cleared, target alive" : "weak slot not cleared", w);
        if (!want)
            m->weak_target[w] = -1;
    }
    for (int i = 0; i < m->n; i++) {
        if (!r[i])
            continue;
        if (m->is_eph[i]) {
            rudo_ephemeron *e = m->ptr[i];
            int k = m->edge[i][0];
            if (k >= 0 && !r[k]) { /* key died: must be cleared */
                if (e->key || e->value) {
                    fail(m, "ephemeron with a dead key not cleared", i);
                }
                m->edge[i][0] = m->edge[i][1] = -1;
            } else {
                int v = m->edge[i][1];
                if (e->key != (k >= 0 ? m->ptr[k] : NULL) ||
                    e->value != (v >= 0 ? m->ptr[v] : NULL))
                    fail(m, "live ephemeron changed", i);
            }
        } else {
            node *n = m->ptr[i];
            if (n->stamp != m->stamp[i])
                fail(m, "node contents changed (freed and reused?)", i);
            for (int f = 0; f < 2; f++) {
                int y = m->edge[i][f];
                if (n->field[f] != (y >= 0 ? m->ptr[y] : NULL))
                    fail(m, "node field changed", i);
            }
        }
    }
    /* Compact the model to the survivors (their indices change). */
    int map[MAXOBJ], n = 0;
    for (int i = 0; i < m->n; i++)
        map[i] = r[i] ? n++ : -1;
    for (int i = 0; i < m->n; i++) {
        if (map[i] < 0)
            continue;
        int j = map[i];
        m->ptr[j] = m->ptr[i];
        m->is_eph[j] = m->is_eph[i];
        m->stamp[j] = m->stamp[i];
        for (int f = 0; f < 2; f++)
            m->edge[j][f] = m->edge[i][f] >= 0 ? map[m->edge[i][f]] : -1;
    }
    m->n = n;
    for (int s = 0; s < NROOT; s++)
        m->root[s] = m->root[s] >= 0 ? map[m->root[s]] : -1;
    for (int w = 0; w < NWEAK; w++)
        m->weak_target[w] = m->weak_target[w] >= 0 ? map[m->weak_target[w]] : -1;
}

static void *worker(void *arg) {
    model *m = calloc(1, sizeof *m);
    m->rng = (uint64_t)test_env_long("TEST_SEED", 42) * 0x9e3779b97f4a7c15ull +
             (uintptr_t)arg * 7919 + 1;
    if (rudo_thread_attach() != RUDO_OK) {
        atomic_fetch_add(&errors, 1);
        free(m);
        return NULL;
    }
    void **holder_root = calloc(1, sizeof *holder_root);
    rudo_root_add(holder_root);
    m->holder = rudo_malloc(NROOT * sizeof(void *));
    *holder_root = m->holder;
    m->weak = calloc(NWEAK, sizeof *m->weak);
    for (int s = 0; s < NROOT; s++)
        m->root[s] = -1;
    for (int w = 0; w < NWEAK; w++) {
        m->weak_target[w] = -1;
        if (rudo_weak_register(&m->weak[w]) != RUDO_OK)
            atomic_fetch_add(&errors, 1);
    }
    long rounds = test_scaled(60);
    for (long round = 0; round < rounds; round++) {
        int steps = 10 + (int)(test_rand(&m->rng) % 30);
        for (int s = 0; s < steps; s++)
            step(m);
        rudo_collect();
        check(m);
    }
    for (int w = 0; w < NWEAK; w++)
        rudo_weak_unregister(&m->weak[w]);
    free(m->weak);
    rudo_root_remove(holder_root);
    free(holder_root);
    rudo_thread_detach();
    free(m);
    return NULL;
}

int main(void) {
    test_start_watchdog();
    struct { unsigned threads, markers; bool route; } cfgs[] = {
        {1, 1, false}, {2, 2, false}, {3, 7, false},
        {4, 2, true},  {2, 7, true},  {4, 1, false}};
    long only = test_env_long("TEST_CONFIG", -1);
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        if (only >= 0 && (size_t)only != c)
            continue;
        rudo_config cfg = test_precise_config(cfgs[c].markers);
        cfg.mark_route = cfgs[c].route;
        CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
        k_node = rudo_kind_traced("stress/node", trace_node);
        k_eph = rudo_kind_ephemeron("stress/ephemeron");
        rudo_thread_detach(); /* the main thread only waits */
        pthread_t t[4];
        for (unsigned i = 0; i < cfgs[c].threads; i++)
            pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(c * 4 + i));
        for (unsigned i = 0; i < cfgs[c].threads; i++)
            pthread_join(t[i], NULL);
        CHECK_EQ(rudo_thread_attach(), RUDO_OK);
        rudo_heap_destroy();
    }
    CHECK_EQ(atomic_load(&errors), 0);
    return test_report();
}
