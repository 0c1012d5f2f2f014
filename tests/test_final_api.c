/* test_final_api.c — per-object finalizers, guardians and on-demand
 * finalization (rudo.h), each claim on its own, with 1 and 3 markers.
 * Precise setup: the registered root is the only root. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

static void *root;

typedef struct obj {
    struct obj *next;
    uint64_t stamp;
} obj;

static rudo_kind k_obj;

static void trace_obj(void *o, size_t size, rudo_tracer *tr) {
    (void)size;
    rudo_visit(tr, (void **)&((obj *)o)->next);
}

static obj *new_obj(uint64_t stamp) {
    obj *o = rudo_alloc(k_obj, sizeof *o);
    o->stamp = stamp;
    return o;
}

static int calls;
static void *last_obj, *last_data;
static bool saw_intact;
static bool resurrect;
static void fin(void *o, void *data) {
    calls++;
    last_obj = o;
    last_data = data;
    obj *x = o;
    /* What it references is intact (a chain of stamps stamp, stamp+1). */
    saw_intact = !x->next || x->next->stamp == x->stamp + 1;
    if (resurrect)
        root = o;
}

static void test_register(void) {
    static int tag;
    calls = 0;
    obj *o = new_obj(1);
    CHECK_EQ(rudo_finalizer_register(o, fin, &tag), RUDO_OK);
    CHECK_EQ(rudo_finalizer_register(o, fin, &tag), RUDO_EEXIST);
    rudo_guardian *g = rudo_guardian_new();
    CHECK_EQ(rudo_guardian_register(g, o), RUDO_EEXIST);
    rudo_guardian_destroy(g);
    void *addr = o;
    o = NULL;
    rudo_collect();
    CHECK_EQ(calls, 1);
    CHECK(last_obj == addr && last_data == &tag);
    rudo_collect();
    CHECK_EQ(calls, 1); /* once */
    /* A live object's finalizer does not run; unregistered, never. */
    obj *live = new_obj(2);
    root = live;
    CHECK_EQ(rudo_finalizer_register(live, fin, NULL), RUDO_OK);
    rudo_collect();
    CHECK_EQ(calls, 1);
    CHECK_EQ(rudo_finalizer_unregister(live), RUDO_OK);
    CHECK_EQ(rudo_finalizer_unregister(live), RUDO_ENOENT);
    root = NULL;
    live = NULL;
    rudo_collect();
    CHECK_EQ(calls, 1);
}

/* A references B, both registered, both die: both finalized after the
 * same collection, each seeing what it references intact. */
static void test_die_together(void) {
    calls = 0;
    obj *a = new_obj(10), *b = new_obj(11);
    a->next = b;
    b->next = NULL;
    CHECK_EQ(rudo_finalizer_register(a, fin, NULL), RUDO_OK);
    CHECK_EQ(rudo_finalizer_register(b, fin, NULL), RUDO_OK);
    a = b = NULL;
    saw_intact = false;
    rudo_collect();
    CHECK_EQ(calls, 2);
    CHECK(saw_intact);
}

/* Resurrection: the object lives on, is not finalized again; short weak
 * slots are NULL, long ones point to it. */
static void test_resurrect(void) {
    calls = 0;
    resurrect = true;
    void **ws = calloc(2, sizeof *ws);
    obj *o = new_obj(20);
    ws[0] = ws[1] = o;
    CHECK_EQ(rudo_weak_register(&ws[0]), RUDO_OK);
    CHECK_EQ(rudo_weak_register_long(&ws[1]), RUDO_OK);
    CHECK_EQ(rudo_finalizer_register(o, fin, NULL), RUDO_OK);
    o = NULL;
    rudo_collect();
    resurrect = false;
    CHECK_EQ(calls, 1);
    CHECK(root != NULL && ((obj *)root)->stamp == 20);
    CHECK(ws[0] == NULL);
    CHECK(ws[1] == root);
    rudo_collect();
    CHECK_EQ(calls, 1);
    CHECK(ws[1] == root);
    root = NULL;
    rudo_collect();
    CHECK(ws[1] == NULL);
    CHECK_EQ(calls, 1);
    rudo_weak_unregister(&ws[0]);
    rudo_weak_unregister(&ws[1]);
    free(ws);
}

/* A kind finalizer and a per-object one both run. */
static int kind_calls;
static void kind_fin(void *o, void *data) {
    (void)o;
    (void)data;
    kind_calls++;
}

static void test_with_kind_finalizer(void) {
    rudo_kind_desc d = {.name = "final/kind", .tracing = RUDO_TRACE_ATOMIC,
                        .finalize = kind_fin};
    rudo_kind k = rudo_kind_register(&d);
    calls = kind_calls = 0;
    void *o = rudo_alloc(k, 16);
    memset(o, 0, 16);
    CHECK_EQ(rudo_finalizer_register(o, fin, NULL), RUDO_OK);
    o = NULL;
    rudo_collect();
    CHECK_EQ(kind_calls, 1);
    CHECK_EQ(calls, 1);
}

/* Guardians: the dropped half comes back, intact, once each; then they
 * are ordinary objects. */
#define NG 100
static void test_guardian(void) {
    rudo_guardian *g = rudo_guardian_new();
    CHECK(g != NULL);
    void **keep = rudo_malloc(NG * sizeof(void *));
    root = keep;
    obj *all[NG];
    for (int i = 0; i < NG; i++) {
        all[i] = new_obj(1000 + (uint64_t)i);
        CHECK_EQ(rudo_guardian_register(g, all[i]), RUDO_OK);
        if (i % 2 == 0)
            keep[i] = all[i];
    }
    bool seen[NG] = {false};
    int got = 0, bad = 0;
    void *back[NG];
    /* Nothing is due before a collection; under RUDO_GC_STRESS the
     * allocations above ran some, and what they found is polled too. */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            rudo_collect();
        for (obj *o; (o = rudo_guardian_poll(g));) {
            int i = (int)(o->stamp - 1000);
            if (i < 0 || i >= NG || i % 2 == 0 || seen[i] || all[i] != o)
                bad++;
            else
                seen[i] = true;
            back[got++] = o;
        }
        if (pass == 0 && !test_stress_on())
            CHECK_EQ(got, 0);
    }
    CHECK_EQ(got, NG / 2);
    CHECK_EQ(bad, 0);
    /* Polled objects are ordinary: they die when unreachable, silently. */
    for (int i = 0; i < got; i++)
        keep[(i * 2 + 1) % NG] = NULL; /* the odd slots were empty anyway */
    (void)back;
    rudo_collect();
    CHECK(rudo_guardian_poll(g) == NULL);
    /* The kept half, dropped now, comes back too; destroying the guardian
     * with objects not yet polled drops them. */
    for (int i = 0; i < NG; i++)
        keep[i] = NULL;
    rudo_collect();
    rudo_guardian_destroy(g);
    rudo_collect();
    size_t still = 0;
    for (int i = 0; i < NG; i++)
        still += rudo__debug_is_marked(all[i]);
    CHECK_EQ(still, (size_t)0);
    root = NULL;
}

/* On-demand: nothing runs until rudo_run_finalizers; the notifier says
 * when there is something to run. */
static int notified;
static void notifier(void *data) {
    (void)data;
    notified++;
}

static void test_on_demand(void) {
    rudo_set_finalization(true, notifier, NULL);
    calls = notified = 0;
    obj *o = new_obj(30);
    CHECK_EQ(rudo_finalizer_register(o, fin, NULL), RUDO_OK);
    o = NULL;
    rudo_collect();
    CHECK_EQ(calls, 0);
    CHECK_EQ(notified, 1);
    rudo_collect(); /* still waiting, and still alive: it is a root */
    CHECK_EQ(calls, 0);
    CHECK_EQ(notified, 1);
    CHECK_EQ(rudo_run_finalizers(), (size_t)1);
    CHECK_EQ(calls, 1);
    CHECK_EQ(rudo_run_finalizers(), (size_t)0);
    rudo_set_finalization(false, NULL, NULL);
    o = new_obj(31);
    CHECK_EQ(rudo_finalizer_register(o, fin, NULL), RUDO_OK);
    o = NULL;
    rudo_collect();
    CHECK_EQ(calls, 2);
    CHECK_EQ(notified, 1);
}

/* Ordered finalization: A -> B both die: A first, B a collection later;
 * a chain goes one a collection, in order; a cycle is kept and counted;
 * an unordered object referring to an ordered one goes first. */
static uint64_t cycles_seen;
static void on_gc(const rudo_gc_event *ev, void *data) {
    (void)data;
    cycles_seen = ev->ordered_cycles;
}

static uint64_t order[8];
static int norder;
static void fin_order(void *o, void *data) {
    (void)data;
    if (norder < 8)
        order[norder++] = ((obj *)o)->stamp;
}

static void test_ordered(void) {
    rudo_set_gc_callback(on_gc, NULL);
    /* A chain of 5: o0 -> o1 -> ... -> o4, all ordered, all dead. */
    norder = 0;
    obj *chain[5];
    for (int i = 0; i < 5; i++)
        chain[i] = new_obj(40 + (uint64_t)i);
    for (int i = 0; i < 4; i++)
        chain[i]->next = chain[i + 1];
    /* Registered in reverse, so the map's order is not the answer. */
    for (int i = 4; i >= 0; i--)
        CHECK_EQ(rudo_finalizer_register_ordered(chain[i], fin_order, NULL), RUDO_OK);
    for (int i = 0; i < 5; i++)
        chain[i] = NULL;
    for (int c = 0; c < 5; c++) {
        rudo_collect();
        CHECK_EQ(norder, c + 1);
    }
    bool in_order = norder == 5;
    for (int i = 0; i < norder; i++)
        in_order = in_order && order[i] == 40 + (uint64_t)i;
    CHECK(in_order);
    CHECK_EQ(cycles_seen, (uint64_t)0);

    /* A cycle A <-> B: never finalized, counted, kept alive. */
    norder = 0;
    obj *a = new_obj(50), *b = new_obj(51);
    a->next = b;
    b->next = a;
    CHECK_EQ(rudo_finalizer_register_ordered(a, fin_order, NULL), RUDO_OK);
    CHECK_EQ(rudo_finalizer_register_ordered(b, fin_order, NULL), RUDO_OK);
    void *pa = a, *pb = b;
    a = b = NULL;
    rudo_collect();
    rudo_collect();
    CHECK_EQ(norder, 0);
    CHECK_EQ(cycles_seen, (uint64_t)1);
    CHECK(rudo__debug_is_marked(pa) && rudo__debug_is_marked(pb));
    /* Unregistering one does not break it: A still reaches itself. */
    CHECK_EQ(rudo_finalizer_unregister(pb), RUDO_OK);
    rudo_collect();
    CHECK_EQ(norder, 0);
    CHECK_EQ(cycles_seen, (uint64_t)1);
    /* Breaking the pointer does: A is finalized, then both go. */
    ((obj *)pb)->next = NULL;
    rudo_collect();
    CHECK_EQ(norder, 1);
    CHECK_EQ(order[0], (uint64_t)50);
    CHECK_EQ(cycles_seen, (uint64_t)0);
    rudo_collect();
    CHECK(!rudo__debug_is_marked(pa) && !rudo__debug_is_marked(pb));

    /* An unordered U refers to an ordered X: U first, X next time. */
    norder = 0;
    obj *un = new_obj(60), *x = new_obj(61);
    un->next = x;
    CHECK_EQ(rudo_finalizer_register(un, fin_order, NULL), RUDO_OK);
    CHECK_EQ(rudo_finalizer_register_ordered(x, fin_order, NULL), RUDO_OK);
    un = x = NULL;
    rudo_collect();
    CHECK_EQ(norder, 1);
    CHECK_EQ(order[0], (uint64_t)60);
    rudo_collect();
    CHECK_EQ(norder, 2);
    CHECK_EQ(order[1], (uint64_t)61);
    rudo_set_gc_callback(NULL, NULL);
}

/* rudo_finalizer_register_ignore_self: a pointer from an object to itself
 * (its base or inside it) does not count, a longer cycle still does, and
 * the order of a chain is kept; the same self-cycle with the plain ordered
 * registration is never finalized. */
static void test_ignore_self(void) {
    rudo_set_gc_callback(on_gc, NULL);
    norder = 0;
    obj *s = new_obj(70), *t = new_obj(71);
    s->next = s;                   /* a self-cycle */
    t->next = (obj *)(void *)&t->stamp; /* inside itself */
    CHECK_EQ(rudo_finalizer_register_ignore_self(s, fin_order, NULL), RUDO_OK);
    CHECK_EQ(rudo_finalizer_register_ignore_self(t, fin_order, NULL), RUDO_OK);
    obj *o = new_obj(72);
    o->next = o;
    CHECK_EQ(rudo_finalizer_register_ordered(o, fin_order, NULL), RUDO_OK);
    void *po = o;
    s = t = o = NULL;
    rudo_collect();
    CHECK_EQ(norder, 2);
    CHECK(norder == 2 && order[0] + order[1] == 70 + 71);
    CHECK_EQ(cycles_seen, (uint64_t)1); /* the plain ordered one */
    CHECK_EQ(rudo_finalizer_unregister(po), RUDO_OK);

    /* A <-> B, both ignore_self: a real cycle, never finalized. */
    norder = 0;
    obj *a = new_obj(73), *b = new_obj(74);
    a->next = b;
    b->next = a;
    CHECK_EQ(rudo_finalizer_register_ignore_self(a, fin_order, NULL), RUDO_OK);
    CHECK_EQ(rudo_finalizer_register_ignore_self(b, fin_order, NULL), RUDO_OK);
    void *pa = a, *pb = b;
    a = b = NULL;
    rudo_collect();
    CHECK_EQ(norder, 0);
    CHECK_EQ(cycles_seen, (uint64_t)1);
    CHECK_EQ(rudo_finalizer_unregister(pa), RUDO_OK);
    CHECK_EQ(rudo_finalizer_unregister(pb), RUDO_OK);

    /* A chain c0 -> c1 -> c2, each also pointing to itself via `self`
     * words: one a collection, in order. */
    norder = 0;
    obj *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = new_obj(80 + (uint64_t)i);
    c[0]->next = c[1];
    c[1]->next = c[2];
    c[2]->next = c[2];
    for (int i = 2; i >= 0; i--)
        CHECK_EQ(rudo_finalizer_register_ignore_self(c[i], fin_order, NULL), RUDO_OK);
    for (int i = 0; i < 3; i++)
        c[i] = NULL;
    for (int k = 0; k < 3; k++) {
        rudo_collect();
        CHECK_EQ(norder, k + 1);
        CHECK(norder == k + 1 && order[k] == 80 + (uint64_t)k);
    }
    rudo_set_gc_callback(NULL, NULL);
}

/* ignore_self on objects wider than a mark chunk (8 KiB), pointing to
 * themselves only from far past their first chunk: a lone marker scans a
 * wide object chunk by chunk, the later chunks after what the first
 * reached, so the registration's self-scan must take the object whole.
 * A small-page class over 8 KiB and a large object, each pointing to its
 * base from its last word and inside itself from its middle. */
static int nbig;
static void fin_big(void *o, void *data) {
    (void)o;
    (void)data;
    nbig++;
}

static void test_ignore_self_wide(void) {
    const size_t sizes[] = {12 * 1024, 100 * 1024};
    for (size_t s = 0; s < 2; s++) {
        nbig = 0;
        void **big = rudo_malloc(sizes[s]);
        size_t nw = sizes[s] / sizeof(void *);
        big[nw - 1] = big;
        big[nw / 2] = &big[5];
        CHECK_EQ(rudo_finalizer_register_ignore_self(big, fin_big, NULL), RUDO_OK);
        big = NULL;
        rudo_collect();
        CHECK_EQ(nbig, 1);
    }
}

static void make_heap(unsigned markers) {
    rudo_config cfg = test_precise_config(markers);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    root = NULL;
    rudo_root_add(&root);
    k_obj = rudo_kind_traced("final/obj", trace_obj);
}

static void reg_null(void *a) {
    (void)a;
    make_heap(1);
    rudo_finalizer_register(NULL, fin, NULL);
}
static void reg_interior(void *a) {
    (void)a;
    make_heap(1);
    char *o = rudo_malloc(64);
    rudo_finalizer_register(o + 8, fin, NULL);
}
static void reg_null_fn(void *a) {
    (void)a;
    make_heap(1);
    rudo_finalizer_register(rudo_malloc(16), NULL, NULL);
}
static void guardian_null(void *a) {
    (void)a;
    make_heap(1);
    rudo_guardian_register(NULL, rudo_malloc(16));
}

/* A finalizer that allocates in the size class whose empty free list
 * started the collection: when the allocation slow path comes back from
 * the collection (and the finalizers it ran), the class may have a list
 * again. It must be used, not overwritten by a new page (RUDO_DEBUG
 * builds asserted: Guile's weak tables on libgc.so.1 met it at start-up).
 * The finalizers' objects and the loop's are all intact and distinct. */
#define FIN_KEPT 1024
static obj *fin_kept[FIN_KEPT];
static unsigned fin_next;
static uint64_t fin_allocs;
static void fin_alloc(void *o, void *data) {
    (void)o;
    (void)data;
    for (int i = 0; i < 3; i++) {
        obj *x = new_obj(0xf1f1000000000000ull | fin_allocs++);
        fin_kept[fin_next++ % FIN_KEPT] = x;
    }
}

static void test_alloc_in_finalizer(unsigned markers) {
    rudo_config cfg = test_precise_config(markers);
    cfg.initial_heap = 256 << 10;
    cfg.nursery = 256 << 10; /* as often under RUDO_GENERATIONAL=1 */
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    static const uint64_t first = 1;
    k_obj = rudo_kind_layout("fin-alloc-obj", 2, &first);
    rudo_root_add_range(fin_kept, fin_kept + FIN_KEPT);
    static obj *mine[FIN_KEPT];
    rudo_root_add_range(mine, mine + FIN_KEPT);
    fin_next = 0;
    fin_allocs = 0;
    for (uint64_t i = 0; i < 400000; i++) {
        obj *o = new_obj(i);
        mine[i % FIN_KEPT] = o;
        /* One in 8 dies with a finalizer that allocates three. */
        if (i % 8 == 0)
            CHECK_EQ(rudo_finalizer_register(o, fin_alloc, NULL), RUDO_OK);
    }
    rudo_stats st;
    rudo_get_stats(&st);
    bool ok = true;
    for (unsigned j = 0; j < FIN_KEPT; j++) {
        /* The last i with i % FIN_KEPT == j. */
        uint64_t want = 400000 - FIN_KEPT + (j + FIN_KEPT - 400000 % FIN_KEPT) % FIN_KEPT;
        ok = ok && mine[j]->stamp == want;
        if (fin_kept[j])
            ok = ok && (fin_kept[j]->stamp >> 48) == 0xf1f1 && fin_kept[j]->next == NULL;
        for (unsigned k = 0; k < FIN_KEPT && ok; k++)
            ok = (void *)mine[j] != (void *)fin_kept[k];
    }
    printf("finalizers allocating: %llu collections, %llu objects allocated by "
           "finalizers, all intact: %s\n", (unsigned long long)st.collections,
           (unsigned long long)fin_allocs, ok ? "yes" : "no");
    CHECK(ok);
    CHECK(st.collections >= 10);
    CHECK(fin_allocs >= 3000);
    memset(fin_kept, 0, sizeof fin_kept);
    memset(mine, 0, sizeof mine);
    rudo_heap_destroy();
}

int main(void) {
    unsigned markers[] = {1, 3};
    for (size_t m = 0; m < 2; m++) {
        make_heap(markers[m]);
        test_register();
        test_die_together();
        test_resurrect();
        test_with_kind_finalizer();
        test_guardian();
        test_on_demand();
        test_ordered();
        test_ignore_self();
        test_ignore_self_wide();
        rudo_root_remove(&root);
        rudo_heap_destroy();
    }
    test_alloc_in_finalizer(1);
    test_alloc_in_finalizer(3);
    expect_death("rudo_finalizer_register(NULL)", reg_null, NULL,
                 "rudo: rudo_finalizer_register: the object is NULL");
    expect_death("rudo_finalizer_register of an interior pointer", reg_interior,
                 NULL, "is not the base of a heap object");
    expect_death("rudo_finalizer_register without a finalizer", reg_null_fn,
                 NULL, "rudo: rudo_finalizer_register: the finalizer is NULL");
    expect_death("rudo_guardian_register(NULL, ...)", guardian_null, NULL,
                 "rudo: rudo_guardian_register: the guardian is NULL");
    return test_report();
}
