/* test_weak.c — weak slots (rudo_weak_register and friends) and weak
 * fields reported by trace callbacks (rudo_visit_weak), each claim of
 * rudo.h on its own, with 1 and 3 markers.
 *
 * Precise setup (no stack or static-data scanning). Weak slots live in
 * malloc'd memory or in atomic objects, which the collector does not scan:
 * a weak slot must not also be a strong reference (rudo.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

/* What the last collection cleared, and the sum since a test reset it
 * (collections the test did not ask for, under RUDO_GC_STRESS, clear
 * slots too). */
static uint64_t last_weak_cleared, sum_weak_cleared;
static void on_gc(const rudo_gc_event *ev, void *data) {
    (void)data;
    last_weak_cleared = ev->weak_cleared;
    sum_weak_cleared += ev->weak_cleared;
}

static void *root; /* a registered precise root */

static void make_heap(unsigned markers) {
    rudo_config cfg = test_precise_config(markers);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    rudo_set_gc_callback(on_gc, NULL);
    root = NULL;
    rudo_root_add(&root);
}

static void end_heap(void) {
    rudo_root_remove(&root);
    rudo_heap_destroy();
}

/* A short weak slot is cleared when its target dies, kept while the target
 * is reachable, and ignored once unregistered. */
static void test_short(void) {
    void **slots = calloc(3, sizeof *slots);
    void *alive = rudo_malloc_atomic(40);
    root = alive;
    slots[0] = rudo_malloc_atomic(40);        /* dies */
    slots[1] = alive;                         /* lives */
    slots[2] = rudo_malloc_atomic(40);        /* dies, but unregistered */
    void *stale = slots[2];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(rudo_weak_register(&slots[i]), RUDO_OK);
    CHECK_EQ(rudo_weak_unregister(&slots[2]), RUDO_OK);
    rudo_collect();
    CHECK(slots[0] == NULL);
    CHECK(slots[1] == alive);
    CHECK(slots[2] == stale); /* left alone */
    CHECK_EQ(last_weak_cleared, (uint64_t)1);
    /* The slot stays registered: a new dead target is cleared too. */
    slots[1] = rudo_malloc_atomic(40);
    rudo_collect();
    CHECK(slots[1] == NULL);
    /* Non-heap values are left alone. */
    static int outside;
    slots[0] = &outside;
    rudo_collect();
    CHECK(slots[0] == &outside);
    CHECK_EQ(rudo_weak_unregister(&slots[0]), RUDO_OK);
    CHECK_EQ(rudo_weak_unregister(&slots[1]), RUDO_OK);
    root = NULL;
    free(slots);
}

/* Interior pointers count as pointers to their object, as everywhere. */
static void test_interior(void) {
    void **slot = calloc(1, sizeof *slot);
    char *obj = rudo_malloc_atomic(128);
    root = obj;
    *slot = obj + 100;
    CHECK_EQ(rudo_weak_register(slot), RUDO_OK);
    rudo_collect();
    CHECK(*slot == obj + 100);
    root = NULL;
    rudo_collect();
    CHECK(*slot == NULL);
    CHECK_EQ(rudo_weak_unregister(slot), RUDO_OK);
    free(slot);
}

/* The registration calls' results. */
static void test_registration(void) {
    void **s = calloc(4, sizeof *s);
    CHECK_EQ(rudo_weak_register(&s[0]), RUDO_OK);
    CHECK_EQ(rudo_weak_register(&s[0]), RUDO_EEXIST);
    CHECK_EQ(rudo_weak_register_long(&s[0]), RUDO_EEXIST);
    CHECK_EQ(rudo_weak_register_long(&s[1]), RUDO_OK);
    CHECK_EQ(rudo_weak_register(&s[1]), RUDO_EEXIST);
    CHECK_EQ(rudo_weak_unregister(&s[2]), RUDO_ENOENT);
    CHECK_EQ(rudo_weak_move(&s[2], &s[3]), RUDO_ENOENT);
    CHECK_EQ(rudo_weak_move(&s[0], &s[1]), RUDO_EEXIST);
    /* A failed move changed nothing. */
    CHECK_EQ(rudo_weak_unregister(&s[0]), RUDO_OK);
    CHECK_EQ(rudo_weak_unregister(&s[1]), RUDO_OK);
    CHECK_EQ(rudo_weak_unregister(&s[0]), RUDO_ENOENT);
    free(s);
}

/* A moved registration follows its new slot; the old one is plain memory. */
static void test_move(void) {
    void **s = calloc(2, sizeof *s);
    CHECK_EQ(rudo_weak_register(&s[0]), RUDO_OK);
    CHECK_EQ(rudo_weak_move(&s[0], &s[1]), RUDO_OK);
    s[0] = rudo_malloc_atomic(24);
    void *old = s[0];
    s[1] = rudo_malloc_atomic(24);
    rudo_collect();
    CHECK(s[0] == old);
    CHECK(s[1] == NULL);
    /* Moving onto itself keeps it. */
    CHECK_EQ(rudo_weak_move(&s[1], &s[1]), RUDO_OK);
    s[1] = rudo_malloc_atomic(24);
    rudo_collect();
    CHECK(s[1] == NULL);
    CHECK_EQ(rudo_weak_unregister(&s[1]), RUDO_OK);
    CHECK_EQ(rudo_weak_unregister(&s[0]), RUDO_ENOENT);
    free(s);
}

/* A weak slot inside a heap object that dies is forgotten: nothing is
 * written into the memory once it is reused. */
static void test_slot_in_dead_object(void) {
    void **container = rudo_malloc_atomic(32);
    void *neighbour = rudo_malloc_atomic(32); /* keeps the page in use */
    root = neighbour;
    container[1] = rudo_malloc_atomic(32);
    CHECK_EQ(rudo_weak_register(&container[1]), RUDO_OK);
    void **slot = &container[1];
    container = NULL;
    rudo_collect();
    /* Forgotten with its object. */
    CHECK_EQ(rudo_weak_unregister(slot), RUDO_ENOENT);
    /* And a live container's slot is cleared normally. */
    void **live = rudo_malloc_atomic(32);
    root = live;
    live[1] = rudo_malloc_atomic(32);
    CHECK_EQ(rudo_weak_register(&live[1]), RUDO_OK);
    rudo_collect();
    CHECK(live[1] == NULL);
    CHECK_EQ(rudo_weak_unregister(&live[1]), RUDO_OK);
    root = NULL;
}

/* Short and long slots to a finalizable object: the short one is NULL when
 * the finalizer runs; the long one still points to the object, and is
 * cleared only when the object is reclaimed. A finalizer that resurrects
 * its object keeps the long slot. */
static void **fin_short, **fin_long;
static int fin_calls;
static bool fin_saw_short_null, fin_saw_long_obj, fin_resurrect;
static void finalizer(void *obj, void *data) {
    (void)data;
    fin_calls++;
    fin_saw_short_null = *fin_short == NULL;
    fin_saw_long_obj = *fin_long == obj;
    if (fin_resurrect)
        root = obj;
}

static void test_finalizable(void) {
    rudo_kind_desc d = {.name = "weak/fin", .tracing = RUDO_TRACE_ATOMIC,
                        .finalize = finalizer};
    rudo_kind k = rudo_kind_register(&d);
    fin_short = calloc(1, sizeof *fin_short);
    fin_long = calloc(1, sizeof *fin_long);
    CHECK_EQ(rudo_weak_register(fin_short), RUDO_OK);
    CHECK_EQ(rudo_weak_register_long(fin_long), RUDO_OK);
    for (int resurrect = 0; resurrect < 2; resurrect++) {
        fin_resurrect = resurrect;
        fin_calls = 0;
        void *obj = rudo_alloc(k, 48);
        *fin_short = obj;
        *fin_long = obj;
        obj = NULL;
        rudo_collect(); /* finds it dead, queues its finalizer, runs it */
        CHECK_EQ(fin_calls, 1);
        CHECK(fin_saw_short_null);
        CHECK(fin_saw_long_obj);
        CHECK(*fin_short == NULL);
        CHECK(*fin_long != NULL);
        rudo_collect(); /* reclaimed now, unless resurrected */
        if (resurrect) {
            CHECK(*fin_long == root);
            CHECK(*fin_short == NULL);
            root = NULL;
            rudo_collect(); /* dies again: no second finalizer */
            CHECK_EQ(fin_calls, 1);
        }
        CHECK(*fin_long == NULL);
    }
    CHECK_EQ(rudo_weak_unregister(fin_short), RUDO_OK);
    CHECK_EQ(rudo_weak_unregister(fin_long), RUDO_OK);
    free(fin_short);
    free(fin_long);
}

/* Explicit targets (rudo_weak_register_target / _long_target): the slot
 * holds anything (a disguised pointer, a flag); it is cleared when the
 * target dies, its registration then ends; a move keeps the target; the
 * long one outlives a finalizer, the short one does not; many slots at
 * once exercise the table's growth with values. */
static void *tg_short_seen, *tg_long_seen;
static void **tg_short, **tg_long;
static void tg_fin(void *obj, void *data) {
    (void)obj;
    (void)data;
    tg_short_seen = *tg_short;
    tg_long_seen = *tg_long;
}

static void test_target(void) {
    enum { N = 300 };
    void **s = calloc(N + 1, sizeof *s);
    void **keep = rudo_malloc(N * sizeof(void *)); /* a conservative object */
    root = keep;
    for (int i = 0; i < N; i++) {
        void *o = rudo_malloc_atomic(16 + (size_t)(i % 7) * 24);
        s[i] = (void *)~(uintptr_t)o; /* disguised: not a heap pointer */
        if (i % 3 == 0)
            keep[i] = o;
        CHECK_EQ(i % 2 ? rudo_weak_register_long_target(&s[i], (char *)o + (i % 5))
                       : rudo_weak_register_target(&s[i], o),
                 RUDO_OK);
    }
    CHECK_EQ(rudo_weak_register_target(&s[0], keep), RUDO_EEXIST);
    CHECK_EQ(rudo_weak_register(&s[0]), RUDO_EEXIST);
    CHECK_EQ(rudo_weak_registered(&s[0]), RUDO_WEAK_SHORT);
    /* s[3]: a kept target (a collection may already have ended the
     * registrations of dead ones, under RUDO_GC_STRESS). */
    CHECK_EQ(rudo_weak_registered(&s[3]), RUDO_WEAK_LONG);
    CHECK_EQ(rudo_weak_registered(&s[N]), 0);
    rudo_collect();
    int wrong = 0;
    for (int i = 0; i < N; i++)
        wrong += i % 3 == 0 ? s[i] == NULL : s[i] != NULL;
    CHECK_EQ(wrong, 0);
    /* Cleared ones are forgotten; live ones still registered. */
    CHECK_EQ(rudo_weak_registered(&s[1]), 0);
    CHECK_EQ(rudo_weak_unregister(&s[1]), RUDO_ENOENT);
    CHECK_EQ(rudo_weak_unregister(&s[3]), RUDO_OK);
    /* A move keeps the target: s[6] -> s[N], then its target dies. */
    void *saved = s[6];
    CHECK_EQ(rudo_weak_move(&s[6], &s[N]), RUDO_OK);
    s[N] = saved;
    keep[6] = NULL;
    rudo_collect();
    CHECK(s[N] == NULL);
    CHECK(s[6] == saved); /* no longer registered */
    for (int i = 0; i < N; i += 3)
        rudo_weak_unregister(&s[i]);
    free(s);

    /* Short vs long around a finalizer. */
    tg_short = calloc(1, sizeof *tg_short);
    tg_long = calloc(1, sizeof *tg_long);
    void *o = rudo_malloc(32);
    *tg_short = (void *)(uintptr_t)13; /* a flag, as bdwgc's gctest uses */
    *tg_long = (void *)(uintptr_t)14;
    CHECK_EQ(rudo_weak_register_target(tg_short, o), RUDO_OK);
    CHECK_EQ(rudo_weak_register_long_target(tg_long, o), RUDO_OK);
    CHECK_EQ(rudo_finalizer_register(o, tg_fin, NULL), RUDO_OK);
    o = NULL;
    tg_short_seen = tg_long_seen = (void *)1;
    rudo_collect();
    CHECK(tg_short_seen == NULL);
    CHECK(tg_long_seen == (void *)(uintptr_t)14);
    CHECK(*tg_long == (void *)(uintptr_t)14); /* kept for its finalizer */
    rudo_collect();
    CHECK(*tg_long == NULL);
    /* A link inside its own target (bdwgc's GC_register_disappearing_link):
     * cleared before the target's finalizer runs, although the target is
     * kept for it; it is in an atomic object, so it is not a strong ref. */
    void **ts = tg_short, **tl = tg_long;
    void **holder = rudo_malloc_atomic(4 * sizeof(void *));
    holder[1] = (void *)(uintptr_t)16;
    tg_short = &holder[1];
    tg_long = &holder[2];
    holder[2] = (void *)(uintptr_t)17;
    CHECK_EQ(rudo_weak_register_target(&holder[1], holder), RUDO_OK);
    CHECK_EQ(rudo_finalizer_register(holder, tg_fin, NULL), RUDO_OK);
    holder = NULL;
    tg_short_seen = (void *)1;
    rudo_collect();
    CHECK(tg_short_seen == NULL);
    CHECK(tg_long_seen == (void *)(uintptr_t)17);
    rudo_collect();
    tg_short = ts;
    tg_long = tl;
    /* A target outside the heap is never cleared. */
    static int outside;
    *tg_short = (void *)(uintptr_t)15;
    CHECK_EQ(rudo_weak_register_target(tg_short, &outside), RUDO_OK);
    rudo_collect();
    CHECK(*tg_short == (void *)(uintptr_t)15);
    CHECK_EQ(rudo_weak_unregister(tg_short), RUDO_OK);
    free(tg_short);
    free(tg_long);
    root = NULL;
}

/* A weak table: a callback kind whose entries are weak fields. */
#define TABLE 1000
typedef struct table {
    size_t n;
    void *entry[TABLE];
} table;

static void trace_table(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    table *t = obj;
    for (size_t i = 0; i < t->n; i++)
        rudo_visit_weak(tr, &t->entry[i]);
}

/* The table is held before the next allocation, and its entries are
 * stored through the barrier: in GC stress mode (RUDO_GC_STRESS) with
 * generations a collection during the filling can make the table old, and
 * a minor one then visits its weak fields only if their card is dirty. */
static void test_visit_weak(void) {
    rudo_kind kt = rudo_kind_traced("weak/table", trace_table);
    void **keep = rudo_alloc(RUDO_KIND_CONSERVATIVE, (TABLE / 2 + 1) * sizeof(void *));
    root = keep;
    table *t = rudo_alloc(kt, sizeof *t);
    keep[0] = t;
    t->n = TABLE;
    sum_weak_cleared = 0;
    for (size_t i = 0; i < TABLE; i++) {
        rudo_write(t, &t->entry[i], rudo_malloc_atomic(16 + i % 64));
        if (i % 2 == 0)
            keep[1 + i / 2] = t->entry[i];
    }
    rudo_collect();
    size_t alive = 0, cleared = 0;
    for (size_t i = 0; i < TABLE; i++) {
        if (i % 2 == 0)
            alive += t->entry[i] == keep[1 + i / 2];
        else
            cleared += t->entry[i] == NULL;
    }
    CHECK_EQ(alive, (size_t)TABLE / 2);
    CHECK_EQ(cleared, (size_t)TABLE / 2);
    CHECK_EQ(sum_weak_cleared, (uint64_t)TABLE / 2);
    /* Weak fields do not keep entries alive even when the table is the
     * only one that sees them. */
    for (size_t i = 0; i < TABLE / 2; i++)
        keep[1 + i] = NULL;
    rudo_collect();
    size_t left = 0;
    for (size_t i = 0; i < TABLE; i++)
        left += t->entry[i] != NULL;
    CHECK_EQ(left, (size_t)0);
    root = NULL;
}

/* What rudo.h warns: a weak slot that is also scanned (here: inside a
 * conservative object) is a strong reference too, and keeps its target. */
static void test_scanned_slot_is_strong(void) {
    void **box = rudo_malloc(16);
    root = box;
    box[0] = rudo_malloc_atomic(16);
    void *target = box[0];
    CHECK_EQ(rudo_weak_register(&box[0]), RUDO_OK);
    rudo_collect();
    CHECK(box[0] == target);
    CHECK_EQ(rudo_weak_unregister(&box[0]), RUDO_OK);
    root = NULL;
}

static void register_null(void *a) {
    (void)a;
    make_heap(1);
    rudo_weak_register(NULL);
}
static void register_misaligned(void *a) {
    (void)a;
    make_heap(1);
    static char buf[32];
    rudo_weak_register((void **)(void *)(buf + 3));
}
static void move_to_null(void *a) {
    (void)a;
    make_heap(1);
    static void *s;
    rudo_weak_register(&s);
    rudo_weak_move(&s, NULL);
}
static void register_null_target(void *a) {
    (void)a;
    make_heap(1);
    static void *s;
    rudo_weak_register_target(&s, NULL);
}
static void register_no_heap(void *a) {
    (void)a;
    static void *s;
    rudo_weak_register(&s);
}

int main(void) {
    unsigned markers[] = {1, 3};
    for (size_t m = 0; m < 2; m++) {
        make_heap(markers[m]);
        test_short();
        test_interior();
        test_registration();
        test_move();
        test_slot_in_dead_object();
        test_finalizable();
        test_visit_weak();
        test_scanned_slot_is_strong();
        test_target();
        end_heap();
    }
    expect_death("rudo_weak_register(NULL)", register_null, NULL,
                 "rudo: rudo_weak_register: slot is NULL");
    expect_death("rudo_weak_register of a misaligned slot", register_misaligned,
                 NULL, "rudo: rudo_weak_register: slot");
    expect_death("rudo_weak_move to NULL", move_to_null, NULL,
                 "rudo: rudo_weak_move: slot is NULL");
    expect_death("rudo_weak_register_target(NULL target)", register_null_target, NULL,
                 "rudo: rudo_weak_register_target: the target is NULL");
    expect_death("rudo_weak_register without a heap", register_no_heap, NULL,
                 "rudo: rudo_weak_register: no heap");
    return test_report();
}
