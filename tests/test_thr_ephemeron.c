/* test_thr_ephemeron.c — ephemerons (rudo_kind_ephemeron), each case of
 * docs/marking.md on its own, with 1, 2 and 7 markers and with routing on:
 *  - a value is kept exactly while its key is reachable from elsewhere;
 *  - a value that references its own key does not keep it alive;
 *  - chains k1 -> v1 = k2 -> v2 ... resolve in any allocation order;
 *  - a key reachable only from another ephemeron's value;
 *  - a key held only by a weak slot dies, and the weak slot is cleared;
 *  - a table of 100 000 ephemerons of which a known half die: the dead
 *    half is cleared (key and value NULL), the count is reported, the live
 *    half keeps key and value.
 * Precise setup: the only roots are the registered slots (objects under
 * construction are parked in rooted slots too, so the cases also hold
 * under GC stress mode, which CI runs). It is a
 * test_thr_ test (the markers are threads) so that ThreadSanitizer sees
 * the pending lists and the fixpoint. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

static uint64_t last_cleared, total_cleared;
static void on_gc(const rudo_gc_event *ev, void *data) {
    (void)data;
    last_cleared = ev->ephemerons_cleared;
    total_cleared += ev->ephemerons_cleared;
}

static void *root;
static rudo_kind k_eph, k_node;

typedef struct node {
    struct node *next; /* a strong field */
    uint64_t id;
} node;

static void trace_node(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    rudo_visit(tr, (void **)&((node *)obj)->next);
}

static node *new_node(uint64_t id) {
    node *n = rudo_alloc(k_node, sizeof *n);
    n->id = id;
    return n;
}

static rudo_ephemeron *new_eph(void *key, void *value) {
    rudo_ephemeron *e = rudo_alloc(k_eph, sizeof *e);
    e->key = key;
    e->value = value;
    return e;
}

/* Roots for objects under construction: the setup is precise (no stack
 * scanning), and under GC stress mode a collection runs inside any
 * allocation, so an object held only in a local until the next one is
 * stored would be freed. tmp[0] and tmp[1] hold an ephemeron's key and
 * value while it is allocated (eph_of), tmp[2] whatever a case builds. */
static void *tmp[3];

static rudo_ephemeron *eph_of(void *key, void *value) {
    tmp[0] = key;
    tmp[1] = value;
    rudo_ephemeron *e = new_eph(key, value);
    tmp[0] = tmp[1] = NULL;
    return e;
}

/* Holds n pointers strongly (a conservative object, rooted via root). */
static void **holder(size_t n) {
    void **h = rudo_malloc(n * sizeof(void *));
    root = h;
    return h;
}

static void test_basic(void) {
    void **h = holder(4);
    node *key = new_node(1);
    h[1] = key;
    h[0] = eph_of(key, new_node(2));
    rudo_collect();
    rudo_ephemeron *e = h[0];
    CHECK(e->key == key);
    CHECK(e->value && ((node *)e->value)->id == 2);
    CHECK(rudo__debug_is_marked(e->value));
    /* Drop the key: key and value go, the entry is cleared. */
    h[1] = NULL;
    void *value = e->value;
    rudo_collect();
    CHECK(e->key == NULL && e->value == NULL);
    CHECK_EQ(last_cleared, (uint64_t)1);
    CHECK(!rudo__debug_is_marked(value));
    /* NULL and non-heap keys count as reachable. */
    static int outside;
    h[2] = eph_of(NULL, new_node(3));
    h[3] = eph_of(&outside, new_node(4));
    rudo_collect();
    CHECK(((rudo_ephemeron *)h[2])->value != NULL);
    CHECK(((rudo_ephemeron *)h[3])->value != NULL &&
          ((rudo_ephemeron *)h[3])->key == &outside);
    CHECK_EQ(last_cleared, (uint64_t)0);
    root = NULL;
}

/* The value references its own key: that does not keep the key. */
static void test_self_reference(void) {
    void **h = holder(1);
    node *key = new_node(10);
    tmp[2] = key;
    node *value = new_node(11);
    value->next = key;
    h[0] = eph_of(key, value);
    tmp[2] = NULL;
    key = NULL;
    value = NULL;
    rudo_collect();
    rudo_ephemeron *e = h[0];
    CHECK(e->key == NULL && e->value == NULL);
    root = NULL;
}

/* Chains: e_i has key k_i and value k_{i+1}; only k_0 is held. All values
 * survive; with k_0 dropped, all die. The ephemerons are allocated in a
 * shuffled order so the markers meet them in any order. */
static void test_chain(size_t n, uint64_t seed) {
    void **h = holder(n + 1);
    node **k = calloc(n + 1, sizeof *k);
    rudo_root_add_range(k, k + n + 1); /* while the entries are made */
    for (size_t i = 0; i <= n; i++)
        k[i] = new_node(100 + i);
    size_t *order = malloc(n * sizeof *order);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = test_rand(&seed) % i;
        size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        h[1 + order[i]] = new_eph(k[order[i]], k[order[i] + 1]);
    h[0] = k[0];
    CHECK_EQ(rudo_root_remove_range(k), RUDO_OK);
    rudo_collect();
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        rudo_ephemeron *e = h[1 + i];
        ok += e->key && e->value && ((node *)e->value)->id == 100 + i + 1 &&
              ((node *)e->key)->id == 100 + i;
    }
    CHECK_EQ(ok, n);
    CHECK_EQ(last_cleared, (uint64_t)0);
    h[0] = NULL;
    rudo_collect();
    size_t cleared = 0;
    for (size_t i = 0; i < n; i++) {
        rudo_ephemeron *e = h[1 + i];
        cleared += e->key == NULL && e->value == NULL;
    }
    CHECK_EQ(cleared, n);
    CHECK_EQ(last_cleared, (uint64_t)n);
    free(k);
    free(order);
    root = NULL;
}

/* A chain stored so that the closure meets it in the worst order: entry i
 * (key k_i, value k_{i+1}) at holder slot 1 + i, traced last to first, so
 * only the entry of k_0 resolves during the closure and the fixpoint must
 * go down the whole chain. */
static void test_chain_worst_order(size_t n) {
    void **h = holder(n + 1);
    node **k = calloc(n + 1, sizeof *k);
    rudo_root_add_range(k, k + n + 1); /* while the entries are made */
    for (size_t i = 0; i <= n; i++)
        k[i] = new_node(7000 + i);
    for (size_t i = 0; i < n; i++)
        h[1 + i] = new_eph(k[i], k[i + 1]);
    h[0] = k[0];
    CHECK_EQ(rudo_root_remove_range(k), RUDO_OK);
    free(k);
    rudo_collect();
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        rudo_ephemeron *e = h[1 + i];
        ok += e->value && ((node *)e->value)->id == 7000 + i + 1;
    }
    CHECK_EQ(ok, n);
    root = NULL;
}

/* A key reachable only from another ephemeron's value (whose key is held):
 * it counts as reachable. */
static void test_key_from_other_value(void) {
    void **h = holder(3);
    node *k1 = new_node(1);
    h[2] = k1;
    node *k2 = new_node(2);
    tmp[2] = k2;
    node *v1 = new_node(3);
    v1->next = k2; /* k2 only through e1's value */
    h[0] = eph_of(k1, v1);
    h[1] = eph_of(k2, new_node(4));
    tmp[2] = NULL;
    k1 = k2 = v1 = NULL;
    rudo_collect();
    rudo_ephemeron *e2 = h[1];
    CHECK(e2->key != NULL && e2->value != NULL &&
          ((node *)e2->value)->id == 4);
    root = NULL;
}

/* A key held only by a weak slot dies; the slot is cleared too. */
static void test_key_in_weak_slot(void) {
    void **h = holder(1);
    void **weak = calloc(1, sizeof *weak);
    node *key = new_node(7);
    tmp[2] = key;
    h[0] = eph_of(key, new_node(8));
    *weak = key;
    CHECK_EQ(rudo_weak_register(weak), RUDO_OK);
    tmp[2] = NULL;
    key = NULL;
    rudo_collect();
    rudo_ephemeron *e = h[0];
    CHECK(e->key == NULL && e->value == NULL);
    CHECK(*weak == NULL);
    CHECK_EQ(rudo_weak_unregister(weak), RUDO_OK);
    free(weak);
    root = NULL;
}

/* A table of n ephemerons; the even keys are held. */
static void test_table(size_t n) {
    /* Table and key holder in one conservative object: [table | keys]. */
    void **h = holder(n + n / 2);
    /* Building it may collect already (odd keys die at once): count the
     * entries cleared over every collection from here. */
    total_cleared = 0;
    for (size_t i = 0; i < n; i++) {
        node *key = new_node(i);
        tmp[2] = key;
        node *value = new_node(i + n);
        h[i] = eph_of(key, value);
        if (i % 2 == 0)
            h[n + i / 2] = key;
        tmp[2] = NULL;
    }
    rudo_collect();
    size_t live = 0, dead = 0;
    for (size_t i = 0; i < n; i++) {
        rudo_ephemeron *e = h[i];
        if (i % 2 == 0)
            live += e->key == h[n + i / 2] && e->value &&
                    ((node *)e->value)->id == i + n;
        else
            dead += e->key == NULL && e->value == NULL;
    }
    printf("table of %zu: %zu live, %zu cleared, %llu reported\n", n, live,
           dead, (unsigned long long)total_cleared);
    CHECK_EQ(live, n / 2);
    CHECK_EQ(dead, n / 2);
    CHECK_EQ(total_cleared, (uint64_t)(n / 2));
    root = NULL;
}

int main(void) {
    test_start_watchdog();
    struct { unsigned markers; bool route; } cfgs[] = {
        {1, false}, {2, false}, {7, false}, {2, true}, {7, true}};
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        rudo_config cfg = test_precise_config(cfgs[c].markers);
        cfg.mark_route = cfgs[c].route;
        CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
        rudo_set_gc_callback(on_gc, NULL);
        rudo_root_add(&root);
        rudo_root_add_range(tmp, tmp + 3);
        k_eph = rudo_kind_ephemeron("ephemeron");
        k_node = rudo_kind_traced("node", trace_node);
        test_basic();
        test_self_reference();
        test_chain(1, 1);
        test_chain(50, 2 + c);
        test_chain(2000, 3 + c);
        test_chain_worst_order(20000);
        test_key_from_other_value();
        test_key_in_weak_slot();
        test_table(test_scaled(100000));
        rudo_root_remove(&root);
        CHECK_EQ(rudo_root_remove_range(tmp), RUDO_OK);
        rudo_heap_destroy();
    }
    return test_report();
}
