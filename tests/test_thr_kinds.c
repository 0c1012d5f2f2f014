/* test_thr_kinds.c — kinds registered and finalizers changed while other
 * threads allocate and collect.
 *
 * Two registrar threads (one attached, one not) each register NKINDS kinds
 * of the four tracing modes, publishing each handle to the other threads
 * with a release store, and between registrations change the finalizers of
 * their kinds at random among three settings: {fin_a, &tag_a},
 * {fin_b, &tag_b} and none. Three attached allocator threads meanwhile take
 * published kinds at random, allocate short chains of their objects (most
 * become garbage at once, a few stay on the stack for a while), check the
 * kind's name and the objects' kind, and call rudo_collect every few
 * rounds; the registrars keep changing finalizers until the allocators are
 * done. Finalizers run on the collecting threads while the pairs change.
 *
 * Checks:
 *  - a finalizer is always called with its own data: fin_a with &tag_a,
 *    fin_b with &tag_b (a torn {fn, data} pair fails the test);
 *  - finalizers did run (both of them);
 *  - every published handle names the kind registered under it (its name,
 *    rudo_kind_of of its objects), and the handles of all registrations are
 *    distinct and consecutive (2 .. 2 + 2*NKINDS - 1);
 *  - chains kept on the stack survive the collections.
 * Under ThreadSanitizer the test is the check that publishing a kind and
 * changing a finalizer race with no reader (allocation slow path, marking,
 * finalization).
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

#define NREG 2
#define NALLOC 3
#define NKINDS 40 /* per registrar */

static int tag_a, tag_b;
static atomic_long fin_a_calls, fin_b_calls, fin_mismatch;

static void fin_a(void *obj, void *data) {
    (void)obj;
    atomic_fetch_add(&fin_a_calls, 1);
    if (data != &tag_a)
        atomic_fetch_add(&fin_mismatch, 1);
}

static void fin_b(void *obj, void *data) {
    (void)obj;
    atomic_fetch_add(&fin_b_calls, 1);
    if (data != &tag_b)
        atomic_fetch_add(&fin_mismatch, 1);
}

/* Objects: word 0 links to the previous object of the chain (a pointer for
 * every mode but atomic), word 1 holds a check value. */
typedef struct node {
    struct node *prev;
    uint64_t check;
} node;

static void trace_prev(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    rudo_visit(tr, (void **)&((node *)obj)->prev);
}

static const uint64_t layout_prev[1] = {1}; /* word 0 is a pointer */

typedef struct registrar {
    int idx;
    bool attach;
    rudo_kind kinds[NKINDS];
    /* Handles kinds[0 .. n-1] are published: release by the registrar,
     * acquire by the allocators, which then read kinds[]. */
    atomic_int n;
    long changes;
} registrar;

static registrar regs[NREG];
static atomic_int allocators_done;
static atomic_long name_bad, kind_bad, chain_bad;

static void kind_name_of(char *buf, size_t len, int r, int i) {
    snprintf(buf, len, "thr_kinds/%d/%d", r, i);
}

static void change_finalizer(registrar *g, uint64_t *rng) {
    int n = atomic_load_explicit(&g->n, memory_order_relaxed); /* own */
    rudo_kind k = g->kinds[test_rand(rng) % (uint64_t)n];
    switch (test_rand(rng) % 8) {
    case 0:
        rudo_kind_set_finalizer(k, NULL, NULL);
        break;
    case 1: case 2: case 3:
        rudo_kind_set_finalizer(k, fin_a, &tag_a);
        break;
    default:
        rudo_kind_set_finalizer(k, fin_b, &tag_b);
        break;
    }
    g->changes++;
}

static void *registrar_main(void *arg) {
    registrar *g = arg;
    if (g->attach && rudo_thread_attach() != RUDO_OK) {
        atomic_fetch_add(&kind_bad, 1000);
        return NULL;
    }
    uint64_t rng = test_mix64((uint64_t)g->idx + 77) | 1;
    for (int i = 0; i < NKINDS; i++) {
        char name[32];
        kind_name_of(name, sizeof name, g->idx, i);
        rudo_kind_desc d;
        memset(&d, 0, sizeof d);
        d.name = name;
        switch (i % 4) {
        case 0: d.tracing = RUDO_TRACE_CONSERVATIVE; break;
        case 1: d.tracing = RUDO_TRACE_ATOMIC; break;
        case 2: d.tracing = RUDO_TRACE_CALLBACK; d.trace = trace_prev; break;
        default:
            d.tracing = RUDO_TRACE_LAYOUT;
            d.layout = layout_prev;
            d.layout_words = 2;
            break;
        }
        if (i % 2) {
            d.finalize = fin_a;
            d.finalize_data = &tag_a;
        } else {
            d.finalize = fin_b;
            d.finalize_data = &tag_b;
        }
        g->kinds[i] = rudo_kind_register(&d);
        /* Release: the allocators read kinds[i] after loading n. */
        atomic_store_explicit(&g->n, i + 1, memory_order_release);
        for (int j = 0; j < 8; j++) {
            change_finalizer(g, &rng);
            if (g->attach)
                rudo_safepoint(); /* never hold up a collection */
        }
        sched_yield();
    }
    /* Keep changing finalizers while the others allocate and collect. */
    while (!atomic_load(&allocators_done)) {
        change_finalizer(g, &rng);
        if (g->attach)
            rudo_safepoint();
        sched_yield();
    }
    if (g->attach)
        rudo_thread_detach();
    return NULL;
}

static bool chain_ok(const node *n, size_t len, uint64_t seed) {
    for (size_t i = len; i-- > 0; n = n->prev) {
        if (!n || n->check != test_mix64(seed + i))
            return false;
    }
    return true;
}

static bool all_registered(void) {
    for (int i = 0; i < NREG; i++)
        if (atomic_load(&regs[i].n) < NKINDS)
            return false;
    return true;
}

static void *allocator_main(void *arg) {
    int idx = (int)(intptr_t)arg;
    if (rudo_thread_attach() != RUDO_OK) {
        atomic_fetch_add(&kind_bad, 1000);
        return NULL;
    }
    uint64_t rng = test_mix64((uint64_t)idx + 1000) | 1;
    long rounds = test_scaled(1000);
    /* A chain kept on the stack across rounds (conservative stack scan). */
    node *kept = NULL;
    size_t kept_len = 0;
    uint64_t kept_seed = 0;
    /* At least `rounds`, and on until every kind is registered, so that
     * allocation overlaps the registrations. */
    for (long r = 0; r < rounds || !all_registered(); r++) {
        int gi = (int)(test_rand(&rng) % NREG);
        registrar *g = &regs[gi];
        /* Acquire: pairs with the registrar's release of n. */
        int n = atomic_load_explicit(&g->n, memory_order_acquire);
        if (n == 0) {
            rudo_safepoint();
            sched_yield();
            continue;
        }
        int ki = (int)(test_rand(&rng) % (uint64_t)n);
        rudo_kind k = g->kinds[ki];
        char want[32];
        kind_name_of(want, sizeof want, gi, ki);
        if (strcmp(rudo_kind_name(k), want) != 0)
            atomic_fetch_add(&name_bad, 1);
        bool pointers = ki % 4 != 1;
        size_t len = 1 + (size_t)(test_rand(&rng) % 12);
        uint64_t seed = test_rand(&rng);
        node *prev = NULL;
        for (size_t i = 0; i < len; i++) {
            size_t size = 16 + (size_t)(test_rand(&rng) % 4) * 16;
            node *o = rudo_alloc(k, size);
            if (!o) {
                atomic_fetch_add(&chain_bad, 1);
                break;
            }
            if (rudo_kind_of(o) != k)
                atomic_fetch_add(&kind_bad, 1);
            o->prev = pointers ? prev : NULL;
            o->check = test_mix64(seed + i);
            prev = o;
        }
        if (pointers && r % 5 == 0) {
            if (kept && !chain_ok(kept, kept_len, kept_seed))
                atomic_fetch_add(&chain_bad, 1);
            kept = prev;
            kept_len = len;
            kept_seed = seed;
        }
        if (r % 4 == 0)
            rudo_collect();
    }
    if (kept && !chain_ok(kept, kept_len, kept_seed))
        atomic_fetch_add(&chain_bad, 1);
    rudo_thread_detach();
    return NULL;
}

static int cmp_kind(const void *a, const void *b) {
    rudo_kind x = *(const rudo_kind *)a, y = *(const rudo_kind *)b;
    return (x > y) - (x < y);
}

int main(void) {
    test_start_watchdog();
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.markers = 3; /* parallel marking reads the kinds too */
    int rc = rudo_heap_create(&cfg);
    CHECK_EQ(rc, RUDO_OK);
    if (rc != RUDO_OK)
        return test_report();

    pthread_t rt[NREG], at[NALLOC];
    for (int i = 0; i < NREG; i++) {
        regs[i].idx = i;
        regs[i].attach = i == 0;
        pthread_create(&rt[i], NULL, registrar_main, &regs[i]);
    }
    for (int i = 0; i < NALLOC; i++)
        pthread_create(&at[i], NULL, allocator_main, (void *)(intptr_t)i);
    /* Joining waits for attached threads: inside a blocking region, so
     * that this thread does not hold up their collections. */
    rudo_blocking_enter();
    for (int i = 0; i < NALLOC; i++)
        pthread_join(at[i], NULL);
    atomic_store(&allocators_done, 1);
    for (int i = 0; i < NREG; i++)
        pthread_join(rt[i], NULL);
    rudo_blocking_leave();

    /* Every object is garbage now: with every kind on fin_a, the objects
     * not finalized yet run fin_a. */
    for (int i = 0; i < NREG; i++)
        for (int j = 0; j < NKINDS; j++)
            rudo_kind_set_finalizer(regs[i].kinds[j], fin_a, &tag_a);
    rudo_collect();
    rudo_collect();

    rudo_kind all[NREG * NKINDS];
    for (int i = 0; i < NREG; i++) {
        CHECK_EQ(atomic_load(&regs[i].n), NKINDS);
        memcpy(&all[i * NKINDS], regs[i].kinds, sizeof regs[i].kinds);
    }
    qsort(all, NREG * NKINDS, sizeof all[0], cmp_kind);
    long bad_handles = 0;
    for (int i = 0; i < NREG * NKINDS; i++)
        bad_handles += all[i] != (rudo_kind)(2 + i);
    CHECK_EQ(bad_handles, 0);

    long a = atomic_load(&fin_a_calls), b = atomic_load(&fin_b_calls);
    printf("%ld + %ld finalizer changes; finalizers run: fin_a %ld, fin_b %ld\n",
           regs[0].changes, regs[1].changes, a, b);
    CHECK_EQ(atomic_load(&fin_mismatch), 0);
    CHECK(a > 0);
    CHECK(b > 0);
    CHECK_EQ(atomic_load(&name_bad), 0);
    CHECK_EQ(atomic_load(&kind_bad), 0);
    CHECK_EQ(atomic_load(&chain_bad), 0);
    rudo_heap_destroy();
    return test_report();
}
