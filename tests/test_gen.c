/* test_gen.c — generational mode: sticky mark bits, the card-marking
 * barrier, minor and major collections, the remembered-set verifier.
 *
 * Precise roots only (no stack scanning), so what survives is exactly
 * what the roots and the heap reach. Whether an object is alive is read
 * through a short weak slot (outside the heap) that the collection clears
 * when it frees the object.
 *
 * The cross product: parents of each kind with a barrier (layout,
 * callback, ephemeron) and of the conservative kind (no barrier: always
 * dirty), at sizes from 16 bytes to a large object, at cells 0, 1 and the
 * last of their page, with the child's slot in the first and in a later
 * card of the parent, marked by 1, 2 and 4 markers. Each case: the parent
 * is made old by a major collection, a young child is stored into it, a
 * minor collection runs; the child must survive and keep its contents,
 * an unreferenced young object must die, and the parent, dropped, must
 * survive minors (old) and die at the next major. TEST_LONG=1 adds sizes
 * and marker counts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "debug/debug.h"
#include "testlib.h"

typedef struct node {
    struct node *a, *b;
    uint64_t id, check;
} node;

static rudo_kind k_node, k_arr, k_cb, k_eph;

/* Callback kind: every word is a slot (the object is an array of pointers). */
static void trace_all(void *obj, size_t size, rudo_tracer *tr) {
    void **w = obj;
    for (size_t i = 0; i < size / sizeof(void *); i++)
        rudo_visit(tr, &w[i]);
}

static node *new_node(uint64_t id) {
    node *n = rudo_alloc(k_node, sizeof *n);
    CHECK(n != NULL);
    n->id = id;
    n->check = test_mix64(id);
    return n;
}

static bool node_ok(const node *n, uint64_t id) {
    return n && n->id == id && n->check == test_mix64(id);
}

static void heap_up(unsigned markers) {
    rudo_config cfg = test_precise_config(markers);
    cfg.generational = true;
    cfg.nursery = 64 << 20; /* no automatic collection in the cases */
    cfg.initial_heap = 64 << 20;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    static const uint64_t two = 3, all = 1;
    k_node = rudo_kind_layout("gen-node", 4, &two);
    k_arr = rudo_kind_layout("gen-array", 1, &all);
    k_cb = rudo_kind_traced("gen-callback", trace_all);
    k_eph = rudo_kind_ephemeron("gen-ephemeron");
}

static void *w_child, *w_parent, *w_junk; /* weak slots (not in the heap) */
static void *root;                         /* precise root */

/* One case of the cross product; see the top of the file. */
static void one_case(rudo_kind kind, size_t size, int cell, size_t slot_off,
                     unsigned markers) {
    heap_up(markers);
    CHECK_EQ(rudo_weak_register(&w_child), RUDO_OK);
    CHECK_EQ(rudo_weak_register(&w_parent), RUDO_OK);
    CHECK_EQ(rudo_weak_register(&w_junk), RUDO_OK);
    rudo_root_add(&root);
    /* Parents in a row: with a small size, cells 0, 1 and last of a
     * fresh page; the one wanted is kept, the others dropped. */
    size_t per_page = size <= 32768 ? 65536 / ((size + 15) / 16 * 16) : 1;
    size_t want = cell == 2 ? per_page - 1 : (size_t)cell;
    if (want >= per_page)
        want = per_page - 1;
    void **keep = NULL;
    for (size_t i = 0; i <= want; i++) {
        void **p = rudo_alloc(kind, size);
        CHECK(p != NULL);
        if (i == want)
            keep = p;
    }
    root = keep;
    rudo_collect(); /* major: the parent is old */
    CHECK(rudo__debug_is_marked(keep));
    void **slot = (void **)((char *)keep + slot_off);
    node *child = new_node(7);
    child->a = new_node(8); /* young to young: no barrier needed */
    if (kind == k_eph) {
        /* key (slot 0) rooted through the parent itself: key == value
         * would not keep it; use a rooted key instead. */
        static node *key;
        key = new_node(9);
        rudo_root_add((void **)&key);
        rudo_write(keep, &keep[0], key);
        rudo_write(keep, &keep[1], child);
    } else if (kind == RUDO_KIND_CONSERVATIVE) {
        *slot = child; /* no barrier: the kind has none */
    } else {
        rudo_write(keep, slot, child);
    }
    w_child = child;
    w_junk = new_node(10);
    w_parent = keep;
    child = NULL;
    rudo_collect_minor();
    rudo_stats st;
    rudo_get_stats(&st);
    CHECK(st.minor_collections >= 1); /* more in GC stress mode */
    CHECK(w_child != NULL);
    CHECK(w_junk == NULL);
    node *c = w_child;
    CHECK(node_ok(c, 7));
    CHECK(c && node_ok(c->a, 8));
    /* Minors again: the child is old now, its own young child survives. */
    if (c) {
        rudo_write(c, (void **)&c->b, new_node(11));
        rudo_collect_minor();
        CHECK(node_ok(c->b, 11));
    }
    /* Dropped, the parent stays (old) through minors, dies at a major. */
    root = NULL;
    rudo_collect_minor();
    CHECK(w_parent != NULL);
    rudo_collect();
    CHECK(w_parent == NULL);
    CHECK(w_child == NULL);
    rudo_heap_destroy();
}

static const char *kname(rudo_kind k) {
    return k == k_node ? "layout" : k == k_arr ? "array" : k == k_cb ? "callback"
           : k == k_eph ? "ephemeron" : "conservative";
}

static void cross_product(bool full) {
    const size_t sizes_ci[] = {16, 48, 528, 4000, 20000, 100000};
    const size_t sizes_long[] = {16, 32, 48, 64, 112, 256, 528, 1024, 4000,
                                 8192, 12000, 20000, 32768, 40000, 100000, 1 << 20};
    const size_t *sizes = full ? sizes_long : sizes_ci;
    size_t nsizes = full ? sizeof sizes_long / sizeof *sizes_long
                         : sizeof sizes_ci / sizeof *sizes_ci;
    const unsigned markers_ci[] = {1, 2, 4}, markers_long[] = {1, 2, 3, 4, 7};
    const unsigned *mks = full ? markers_long : markers_ci;
    size_t nmks = full ? 5 : 3;
    unsigned long before = test_failed, cases = 0;
    /* Kind handles are the same in every heap (made in the same order). */
    heap_up(1);
    rudo_kind kinds[5] = {k_node, k_arr, k_cb, k_eph, RUDO_KIND_CONSERVATIVE};
    rudo_heap_destroy();
    for (int kk = 0; kk < 5; kk++) {
        for (size_t si = 0; si < nsizes; si++) {
            for (int cell = 0; cell < 3; cell++) {
                for (int far = 0; far < 2; far++) {
                    for (size_t mi = 0; mi < nmks; mi++) {
                        size_t size = sizes[si];
                        rudo_kind kind = kinds[kk];
                        if (kind == k_node && size % 32)
                            continue; /* the layout repeats every 32 bytes */
                        if (kind == k_eph && (size > 16 || far))
                            continue; /* an ephemeron is two words */
                        if (kind != k_eph && size < 2 * sizeof(void *))
                            continue;
                        size_t off = far ? (size / 2 / 32) * 32 : 0;
                        unsigned long f0 = test_failed;
                        one_case(kind, size, cell, off, mks[mi]);
                        cases++;
                        if (test_failed != f0)
                            fprintf(stderr, "FAILED case: kind %s size %zu cell %d "
                                    "slot +%zu markers %u\n", kname(kind), size,
                                    cell, off, mks[mi]);
                    }
                }
            }
        }
    }
    printf("cross product: %lu cases, %lu failed checks\n", cases, test_failed - before);
}

/* A store without the barrier into an old object: the verifier, before
 * the minor collection marks, names the object and the slot. */
static node *bad_parent;
static void missing_barrier(void *arg) {
    (void)arg;
    setenv("RUDO_VERIFY", "1", 1);
    heap_up(1);
    rudo_root_add((void **)&bad_parent);
    bad_parent = new_node(1);
    rudo_collect();
    bad_parent->b = new_node(2); /* plain store: no barrier */
    rudo_collect_minor();
}

/* The same through a weak field (rudo_visit_weak): a minor collection
 * looks at an old object's weak fields only on dirty cards, so without
 * the barrier a young target is freed and the field left dangling. */
typedef struct wbox {
    void *weak;
} wbox;
static void trace_wbox(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    rudo_visit_weak(tr, &((wbox *)obj)->weak);
}
static wbox *bad_box;
static void missing_barrier_weak(void *arg) {
    (void)arg;
    setenv("RUDO_VERIFY", "1", 1);
    heap_up(1);
    rudo_kind k = rudo_kind_traced("wbox", trace_wbox);
    rudo_root_add((void **)&bad_box);
    bad_box = rudo_alloc(k, sizeof *bad_box);
    rudo_collect();
    bad_box->weak = rudo_malloc_atomic(32); /* plain store: no barrier */
    rudo_collect_minor();
}

static void range_outside(void *arg) {
    (void)arg;
    heap_up(1);
    void **a = rudo_alloc(k_arr, 64);
    rudo_write_range(a, a + 4, 64); /* past the end */
}

static void range_not_object(void *arg) {
    (void)arg;
    heap_up(1);
    static void *x[4];
    rudo_write_range(x, x, sizeof x);
}

/* Bulk copies: memcpy into an old array, then rudo_write_range. */
static void bulk_copy(void) {
    heap_up(2);
    static void **arr;
    rudo_root_add((void **)&arr);
    arr = rudo_alloc(k_arr, 4096 * sizeof(void *));
    rudo_collect();
    node *tmp[64];
    for (int i = 0; i < 64; i++)
        tmp[i] = new_node(100 + (uint64_t)i);
    memcpy(arr + 3000, tmp, sizeof tmp);
    rudo_write_range(arr, arr + 3000, sizeof tmp);
    memset(tmp, 0, sizeof tmp);
    rudo_collect_minor();
    bool ok = true;
    for (int i = 0; i < 64; i++)
        ok = ok && node_ok(arr[3000 + i], 100 + (uint64_t)i);
    CHECK(ok);
    rudo_write_range(arr, arr, 0); /* nothing */
    rudo_heap_destroy();
}

/* Ephemerons in minors: an old ephemeron whose young key dies is cleared;
 * one whose key lives keeps its value. */
static void ephemerons(void) {
    heap_up(2);
    static rudo_ephemeron *e1, *e2;
    static node *key2;
    rudo_root_add((void **)&e1);
    rudo_root_add((void **)&e2);
    rudo_root_add((void **)&key2);
    e1 = rudo_alloc(k_eph, sizeof *e1);
    e2 = rudo_alloc(k_eph, sizeof *e2);
    rudo_collect();
    rudo_write(e1, &e1->key, new_node(1));
    rudo_write(e1, &e1->value, new_node(2));
    key2 = new_node(3);
    rudo_write(e2, &e2->key, key2);
    rudo_write(e2, &e2->value, new_node(4));
    rudo_collect_minor();
    CHECK(e1->key == NULL && e1->value == NULL);
    CHECK(e2->key == key2 && node_ok(e2->value, 4));
    rudo_heap_destroy();
}

/* A young finalizable object dies in a minor collection: its finalizer
 * runs after it. */
static int finalized;
static void fin(void *obj, void *data) {
    (void)obj;
    (void)data;
    finalized++;
}
static void finalizers(void) {
    heap_up(1);
    finalized = 0;
    node *n = new_node(5);
    CHECK_EQ(rudo_finalizer_register(n, fin, NULL), RUDO_OK);
    n = NULL;
    rudo_collect_minor();
    CHECK_EQ(finalized, 1);
    /* A kind's finalizer: a young object that dies is finalized after a
     * minor collection; an old one only after a major one. */
    static const uint64_t two = 3;
    rudo_kind kf = rudo_kind_layout("gen-final", 4, &two);
    rudo_kind_set_finalizer(kf, fin, NULL);
    static node *old_one;
    rudo_root_add((void **)&old_one);
    old_one = rudo_alloc(kf, sizeof(node));
    rudo_collect(); /* old */
    (void)rudo_alloc(kf, sizeof(node)); /* young garbage */
    old_one = NULL;
    finalized = 0;
    rudo_collect_minor();
    CHECK_EQ(finalized, 1); /* the young one */
    rudo_collect_minor();
    CHECK_EQ(finalized, 1); /* the old one is still old */
    rudo_collect();
    CHECK_EQ(finalized, 2);
    rudo_heap_destroy();
}

/* The policy: with a small nursery, allocation runs minors; retained data
 * growing past major_growth runs majors; the event says which. */
static uint64_t ev_minor, ev_major, ev_promoted;
static void on_gc(const rudo_gc_event *ev, void *data) {
    (void)data;
    if (ev->minor)
        ev_minor++, ev_promoted += ev->promoted_bytes;
    else
        ev_major++;
}
static void policy(void) {
    rudo_config cfg = test_precise_config(1);
    cfg.generational = true;
    cfg.nursery = 1 << 20;
    cfg.initial_heap = 1 << 20;
    cfg.major_growth = 1.5;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    static const uint64_t two = 3, all = 1;
    k_node = rudo_kind_layout("gen-node", 4, &two);
    k_arr = rudo_kind_layout("gen-array", 1, &all);
    ev_minor = ev_major = ev_promoted = 0;
    rudo_set_gc_callback(on_gc, NULL);
    static void **keep;
    rudo_root_add((void **)&keep);
    keep = rudo_alloc(k_arr, 20000 * sizeof(void *));
    for (uint64_t i = 0; i < 400000; i++) {
        node *n = new_node(i);
        /* 1 in 4 stored; each slot overwritten 5 times: old data dies. */
        if (i % 4 == 0)
            rudo_write(keep, &keep[(i / 4) % 20000], n);
    }
    rudo_stats st;
    rudo_get_stats(&st);
    CHECK(st.minor_collections > 5);
    CHECK(st.major_collections >= 1);
    CHECK_EQ(st.minor_collections, ev_minor);
    CHECK_EQ(st.major_collections, ev_major);
    CHECK(st.promoted_bytes_total > 0);
    CHECK_EQ(st.promoted_bytes_total, ev_promoted);
    CHECK(st.minor_pause_ns_total > 0 && st.major_pause_ns_total > 0);
    bool ok = true;
    for (uint64_t j = 0; j < 20000; j++) {
        /* The last writer of slot j: the largest i = 4 * (j + 20000 k). */
        uint64_t last = 0;
        for (uint64_t i = j * 4; i < 400000; i += 4 * 20000)
            last = i;
        ok = ok && node_ok(keep[j], last);
    }
    CHECK(ok);
    rudo_heap_destroy();
}

/* A workload where everything survives: with nursery_adapt the nursery
 * doubles, so it runs fewer minor collections than with a fixed one. */
static uint64_t survivors_run(bool adapt, size_t nursery, unsigned goal_us) {
    rudo_config cfg = test_precise_config(1);
    cfg.generational = true;
    cfg.nursery = nursery;
    cfg.initial_heap = 256 << 10;
    cfg.nursery_adapt = adapt;
    cfg.minor_pause_goal_us = goal_us;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    static const uint64_t two = 3, all = 1;
    k_node = rudo_kind_layout("gen-node", 4, &two);
    k_arr = rudo_kind_layout("gen-array", 1, &all);
    static void **keep;
    rudo_root_add((void **)&keep);
    keep = rudo_alloc(k_arr, 200000 * sizeof(void *));
    for (uint64_t i = 0; i < 200000; i++)
        rudo_write(keep, &keep[i], new_node(i));
    bool ok = true;
    for (uint64_t i = 0; i < 200000; i++)
        ok = ok && node_ok(keep[i], i);
    CHECK(ok);
    rudo_stats st;
    rudo_get_stats(&st);
    rudo_heap_destroy();
    return st.minor_collections;
}

static uint64_t survivors_minors(bool adapt) {
    return survivors_run(adapt, 256 << 10, 0);
}

static void adapt(void) {
    uint64_t fixed = survivors_minors(false), adaptive = survivors_minors(true);
    printf("all survive: %llu minors with a fixed nursery, %llu adaptive\n",
           (unsigned long long)fixed, (unsigned long long)adaptive);
    CHECK(fixed >= 12); /* 6.4 MB of nodes through a 256 KiB nursery */
    CHECK(adaptive * 2 < fixed);
}

/* minor_pause_goal_us: a goal no minor collection can meet takes the
 * nursery down to its floor (nursery / 16, at least 256 KiB), so the
 * same work runs many more minor collections, but never more than the
 * floor allows; a goal every minor meets changes nothing. Out-of-range
 * values are rejected. */
static void pause_goal(void) {
    size_t big = 4u << 20;
    uint64_t none = survivors_run(false, big, 0);
    uint64_t tight = survivors_run(false, big, 1);
    uint64_t loose = survivors_run(false, big, 10000000);
    printf("pause goal: %llu minors without, %llu with 1 us, %llu with 10 s\n",
           (unsigned long long)none, (unsigned long long)tight,
           (unsigned long long)loose);
    CHECK(none <= 4);
    CHECK(tight >= 4 * none && tight >= 8);
    /* 8 MB of nodes and array through a 256 KiB floor: about 30. */
    CHECK(tight <= 40);
    CHECK_EQ(loose, none);
    rudo_config cfg = test_precise_config(1);
    cfg.generational = true;
    cfg.minor_pause_goal_us = 10000001;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_EINVAL);
    cfg.minor_pause_goal_us = 0;
    setenv("RUDO_MINOR_PAUSE_GOAL_US", "-5", 1);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_EINVAL);
    setenv("RUDO_MINOR_PAUSE_GOAL_US", "500", 1);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    rudo_heap_destroy();
    unsetenv("RUDO_MINOR_PAUSE_GOAL_US");
}

/* rudo_free of old and young objects between minor and major
 * collections: the memory is reused, the survivors stay intact. */
static void frees(void) {
    heap_up(2);
    static void **arr;
    rudo_root_add((void **)&arr);
    arr = rudo_alloc(k_arr, 1000 * sizeof(void *));
    for (int i = 0; i < 1000; i++)
        rudo_write(arr, &arr[i], new_node((uint64_t)i));
    rudo_collect(); /* all old */
    for (int i = 0; i < 1000; i += 2) {
        node *n = arr[i];
        rudo_write(arr, &arr[i], NULL);
        rudo_free(n); /* an old object */
    }
    node *young = new_node(5000);
    rudo_free(young);
    rudo_collect_minor();
    for (int i = 0; i < 1000; i += 2)
        rudo_write(arr, &arr[i], new_node(10000 + (uint64_t)i));
    rudo_collect_minor();
    rudo_collect();
    bool ok = true;
    for (int i = 0; i < 1000; i++)
        ok = ok && node_ok(arr[i], i % 2 ? (uint64_t)i : 10000 + (uint64_t)i);
    CHECK(ok);
    rudo_heap_destroy();
}

/* RUDO_GENERATIONAL overrides the config both ways. */
static void env_switch(void) {
    setenv("RUDO_GENERATIONAL", "1", 1);
    rudo_config cfg = test_precise_config(1);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    rudo_collect_minor();
    rudo_stats st;
    rudo_get_stats(&st);
    CHECK_EQ(st.minor_collections, 1);
    rudo_heap_destroy();
    setenv("RUDO_GENERATIONAL", "0", 1);
    cfg.generational = true;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    rudo_collect_minor(); /* a full collection then */
    rudo_get_stats(&st);
    CHECK_EQ(st.minor_collections, 0);
    CHECK_EQ(st.collections, 1);
    rudo_heap_destroy();
    setenv("RUDO_GENERATIONAL", "2", 1);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_EINVAL);
    unsetenv("RUDO_GENERATIONAL");
    cfg.major_growth = 0.5;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_EINVAL);
}

/* Without generations the barrier is a plain store. */
static void barrier_off(void) {
    rudo_config cfg = test_precise_config(1);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    static void *slot;
    int x;
    rudo_write(NULL, &slot, &x);
    CHECK(slot == &x);
    rudo_heap_destroy();
    rudo_write(NULL, &slot, NULL); /* no heap: still a store */
    CHECK(slot == NULL);
}

int main(void) {
    test_start_watchdog();
    unsetenv("RUDO_GENERATIONAL");
    bool full = test_env_long("TEST_LONG", 0) != 0;
    cross_product(full);
    bulk_copy();
    ephemerons();
    finalizers();
    policy();
    if (!getenv("RUDO_GC_STRESS"))
        adapt(), pause_goal(); /* count collections */
    frees();
    env_switch();
    barrier_off();
    expect_death("store without the barrier", missing_barrier, NULL,
                 "a store without rudo_write");
    expect_death("weak field stored without the barrier", missing_barrier_weak, NULL,
                 "a store without rudo_write");
    expect_death("rudo_write_range past the object", range_outside, NULL,
                 "is not inside object");
    expect_death("rudo_write_range of a non-heap object", range_not_object, NULL,
                 "is not the base of a heap object");
    return test_report();
}
