/* test_compat_final.c — bdwgc's finalization through rudo's libgc.so.1
 * (docs/compat.md, "Finalization"): exact counts across size classes and
 * large objects in each order, bdwgc's orders on chains and self-cycles,
 * ofn/ocd and unregistering with fn 0, client data kept alive,
 * resurrection, on-demand mode with the notifier (through the setters and
 * through the variables), GC_finalize_all, the await proc, the start
 * callback and the stop function.
 *
 * With RUDO_COMPAT_ON_SYSTEM=1 the same binary checks the same behaviours
 * on the system's bdwgc (run with LD_PRELOAD of Debian's libgc.so.1; the
 * ctest test_compat_final_on_bdwgc does): the checks that describe rudo's
 * choices only (warnings, its dump text) are skipped there, so the rest is
 * shown to be bdwgc's behaviour.
 *
 * Objects are made in functions that are not inlined and held only
 * through disguised pointers, and the stack is scrubbed before each
 * collection, so conservative stack scanning keeps nothing by accident. */
#define GC_THREADS 1
#include <gc.h>
#include <gc/gc_mark.h> /* GC_set_start_callback */
#include <gc/javaxfc.h> /* GC_finalize_all */

#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compat_gc_test.h"
#include "compat_test.h"

static int on_system; /* RUDO_COMPAT_ON_SYSTEM: running on bdwgc */

/* A count of objects found dead: exact on rudo; bdwgc may keep one or two
 * through a stale word (its own frames, registers), so on bdwgc the count
 * may fall short by that much. */
static int count_ok(int got, int want) {
    return on_system ? got <= want && got >= want - 2 : got == want;
}


/* ---- counting finalizers ---- */

static int fin_calls;
static int fin_bad;      /* called on something that is not an object base */
static uintptr_t fin_tag_sum;
static void fin_count(void *obj, void *cd) {
    fin_calls++;
    if (GC_base(obj) != obj)
        fin_bad++;
    fin_tag_sum += (uintptr_t)cd;
}

typedef void (*reg_fn)(void *, GC_finalization_proc, void *, GC_finalization_proc *,
                       void **);

/* Sizes across the size classes, then large objects. */
static const size_t sizes[] = {1, 8, 16, 24, 40, 64, 100, 200, 500, 1000, 2040,
                               4000, 8000, 20000, 70000, 300000};
#define NSIZES (sizeof sizes / sizeof sizes[0])
#define PER_SIZE 24

/* held: an uncollectable table for the kept ones (filled at once: the
 * allocations here collect); keep: whether each is kept. */
__attribute__((noinline)) static void make_counted(reg_fn reg, void **held, char *keep,
                                                   int n_keep) {
    int k = 0;
    for (size_t s = 0; s < NSIZES; s++) {
        int per = sizes[s] > 10000 ? 4 : PER_SIZE;
        for (int i = 0; i < per; i++) {
            void *o = GC_malloc(sizes[s]);
            memset(o, 0x11, sizes[s]);
            reg(o, fin_count, (void *)(uintptr_t)(k + 1), NULL, NULL);
            if (k < n_keep) {
                keep[k] = i % 3 == 0;
                held[k] = keep[k] ? o : NULL;
            }
            k++;
        }
    }
}

static int total_objects(void) {
    int n = 0;
    for (size_t s = 0; s < NSIZES; s++)
        n += sizes[s] > 10000 ? 4 : PER_SIZE;
    return n;
}

/* The kept ones must stay reachable: put them in an uncollectable table. */
static void test_counts(const char *name, reg_fn reg) {
    int n = total_objects();
    char *keep = calloc((size_t)n, sizeof *keep);
    void **held = GC_malloc_uncollectable((size_t)n * sizeof(void *));
    fin_calls = fin_bad = 0;
    fin_tag_sum = 0;
    make_counted(reg, held, keep, n);
    int kept = 0;
    uintptr_t kept_tags = 0, all_tags = 0;
    for (int k = 0; k < n; k++) {
        all_tags += (uintptr_t)k + 1;
        if (keep[k]) {
            kept++;
            kept_tags += (uintptr_t)k + 1;
        }
    }
    collect();
    collect();
    printf("%s: %d objects, %d kept, %d finalized\n", name, n, kept, fin_calls);
    CHECK(count_ok(fin_calls, n - kept));
    CHECK(on_system || fin_tag_sum == all_tags - kept_tags);
    CHECK(fin_bad == 0);
    memset(held, 0, (size_t)n * sizeof(void *));
    collect();
    collect();
    CHECK(count_ok(fin_calls, n));
    CHECK(on_system || fin_tag_sum == all_tags);
    /* Nothing is left registered (on bdwgc: runs the stragglers, so the
     * next round starts clean). */
    int before = fin_calls;
    GC_finalize_all();
    CHECK(on_system || fin_calls == before);
    GC_free(held);
    free(keep);
}

/* ---- order ---- */

struct node {
    struct node *next;
    int id;
};

static int order[16];
static int norder;
static void fin_order(void *obj, void *cd) {
    (void)cd;
    if (norder < 16)
        order[norder++] = ((struct node *)obj)->id;
}

static uintptr_t hid[8]; /* disguised pointers, static data */

__attribute__((noinline)) static void make_chain(reg_fn reg, int len, int base_id) {
    struct node *prev = NULL;
    for (int i = len - 1; i >= 0; i--) {
        struct node *n = GC_malloc(sizeof *n);
        n->id = base_id + i;
        n->next = prev;
        prev = n;
        hid[i] = ~(uintptr_t)n;
    }
    /* Registered tail first, so the registration order is not the answer. */
    for (int i = len - 1; i >= 0; i--)
        reg((void *)~hid[i], fin_order, NULL, NULL, NULL);
}

/* n->next = n, or a two-cycle a <-> b. */
__attribute__((noinline)) static void make_self(reg_fn reg, int id, int interior) {
    struct node *n = GC_malloc(sizeof *n);
    n->id = id;
    n->next = interior ? (struct node *)(void *)&n->id : n;
    reg(n, fin_order, NULL, NULL, NULL);
    hid[0] = ~(uintptr_t)n;
}

__attribute__((noinline)) static void make_pair(reg_fn reg, int id) {
    struct node *a = GC_malloc(sizeof *a), *b = GC_malloc(sizeof *b);
    a->id = id;
    b->id = id + 1;
    a->next = b;
    b->next = a;
    reg(a, fin_order, NULL, NULL, NULL);
    reg(b, fin_order, NULL, NULL, NULL);
    hid[0] = ~(uintptr_t)a;
    hid[1] = ~(uintptr_t)b;
}

__attribute__((noinline)) static void make_unreachable_pair(void) {
    struct node *u = GC_malloc(sizeof *u), *x = GC_malloc(sizeof *x);
    u->id = 70;
    x->id = 71;
    u->next = x;
    GC_register_finalizer_no_order(u, fin_order, NULL, NULL, NULL);
    GC_register_finalizer_unreachable(x, fin_order, NULL, NULL, NULL);
}

static void test_order(void) {
    /* Ordered: a chain of 4 goes one a collection, head first. */
    norder = 0;
    make_chain(GC_register_finalizer, 4, 10);
    for (int c = 1; c <= 4; c++) {
        collect();
        CHECK(norder == c);
    }
    CHECK(order[0] == 10 && order[1] == 11 && order[2] == 12 && order[3] == 13);
    /* ignore_self keeps the chain's order too. */
    norder = 0;
    make_chain(GC_register_finalizer_ignore_self, 3, 20);
    collect();
    CHECK(norder == 1 && order[0] == 20);
    collect();
    collect();
    CHECK(norder == 3 && order[1] == 21 && order[2] == 22);
    /* No order: the whole chain in one collection. */
    norder = 0;
    make_chain(GC_register_finalizer_no_order, 4, 30);
    collect();
    CHECK(norder == 4);

    /* A self-cycle: never with the ordered default, at once with
     * ignore_self (a pointer to its base, or inside itself). */
    norder = 0;
    make_self(GC_register_finalizer, 40, 0);
    uintptr_t ordered_self = hid[0];
    collect();
    collect();
    CHECK(norder == 0);
    make_self(GC_register_finalizer_ignore_self, 41, 0);
    collect();
    CHECK(norder == 1 && order[0] == 41);
    make_self(GC_register_finalizer_ignore_self, 42, 1);
    collect();
    CHECK(norder == 2 && order[1] == 42);
    make_self(GC_register_finalizer_no_order, 43, 0);
    collect();
    CHECK(norder == 3 && order[2] == 43);
    /* The ordered self-cycle is still there; unregistering returns its
     * finalizer, and it is then simply collected. */
    GC_finalization_proc ofn = NULL;
    void *ocd = (void *)1;
    GC_register_finalizer((void *)~ordered_self, 0, NULL, &ofn, &ocd);
    CHECK(ofn == fin_order);
    CHECK(ocd == NULL);
    collect();
    CHECK(norder == 3);

    /* A two-object cycle is a real cycle for ignore_self too. */
    norder = 0;
    make_pair(GC_register_finalizer_ignore_self, 50);
    collect();
    collect();
    CHECK(norder == 0);
    GC_register_finalizer_ignore_self((void *)~hid[0], 0, NULL, NULL, NULL);
    GC_register_finalizer_ignore_self((void *)~hid[1], 0, NULL, NULL, NULL);
    /* With no order both go at once. */
    make_pair(GC_register_finalizer_no_order, 60);
    collect();
    CHECK(norder == 2 && order[0] + order[1] == 60 + 61);
    /* The "unreachable" order waits for the no_order one referring to it. */
    norder = 0;
    make_unreachable_pair();
    collect();
    CHECK(norder == 1 && order[0] == 70);
    collect();
    CHECK(norder == 2 && order[1] == 71);
}

/* ---- ofn / ocd, fn 0, bad objects ---- */

static int f1_calls, f2_calls;
static void f1(void *obj, void *cd) { (void)obj; (void)cd; f1_calls++; }
static void f2(void *obj, void *cd) { (void)obj; (void)cd; f2_calls++; }

__attribute__((noinline)) static void make_replaced(void) {
    void *o = GC_malloc(48);
    GC_finalization_proc ofn = f2;
    void *ocd = (void *)5;
    GC_register_finalizer(o, f1, (void *)7, &ofn, &ocd);
    CHECK(ofn == 0 && ocd == 0);
    GC_register_finalizer_no_order(o, f2, (void *)8, &ofn, &ocd);
    CHECK(ofn == f1 && ocd == (void *)7);
    /* bdwgc's debugging variant wants a GC_debug_malloc object. */
    (on_system ? GC_register_finalizer : GC_debug_register_finalizer)(o, f2, (void *)9,
                                                                       &ofn, &ocd);
    CHECK(ofn == f2 && ocd == (void *)8);
    hid[0] = ~(uintptr_t)o;
}

__attribute__((noinline)) static void make_removed(void) {
    void *o = GC_malloc(48);
    GC_register_finalizer_ignore_self(o, f1, (void *)3, NULL, NULL);
    GC_finalization_proc ofn = NULL;
    void *ocd = NULL;
    GC_register_finalizer(o, 0, NULL, &ofn, &ocd);
    CHECK(ofn == f1 && ocd == (void *)3);
    GC_register_finalizer(o, 0, NULL, &ofn, &ocd);
    CHECK(ofn == 0 && ocd == 0);
}

static int static_obj[8];

/* NULL objects are passed on purpose (gc.h declares them non-null). */
/* ---- an address inside the object ----
 * bdwgc keys a registration by the address given and tests the mark of
 * the object holding it; fn gets that address. ECL registers its conses
 * by their tagged pointer, base + 1. Offsets inside the first 16 bytes
 * (bdwgc's granule, whose mark bit is the object's), in a small and a
 * large object, in each order. */
static uintptr_t interior_hidden; /* ~address: no root for the scan */
static int interior_calls, interior_right;
static void fin_interior(void *obj, void *cd) {
    (void)cd;
    interior_calls++;
    interior_right += (uintptr_t)obj == ~interior_hidden;
}
static char *volatile interior_keep;
__attribute__((noinline)) static void make_interior(reg_fn reg, size_t size, size_t disp,
                                                   int keep) {
    char *o = GC_malloc(size);
    interior_hidden = ~(uintptr_t)(o + disp);
    reg(o + disp, fin_interior, NULL, NULL, NULL);
    if (keep)
        interior_keep = o;
}
static void test_interior(void) {
    static const reg_fn regs[] = {GC_register_finalizer, GC_register_finalizer_no_order,
                                  GC_register_finalizer_ignore_self,
                                  GC_register_finalizer_unreachable};
    static const size_t lens[] = {16, 64, 100000}, disps[] = {1, 8, 15};
    for (size_t r = 0; r < sizeof regs / sizeof *regs; r++)
        for (size_t s = 0; s < sizeof lens / sizeof *lens; s++)
            for (size_t d = 0; d < sizeof disps / sizeof *disps; d++) {
                interior_calls = interior_right = 0;
                make_interior(regs[r], lens[s], disps[d], 1);
                collect(); /* reachable (from its base): not run */
                CHECK(interior_calls == 0);
                interior_keep = NULL;
                collect();
                CHECK(count_ok(interior_calls, 1) && interior_right == interior_calls);
                collect();
                CHECK(interior_calls <= 1);
            }
    /* The same object by another address inside it: its registration
     * (ofn is the first one's fn). Rudo only: bdwgc keys by address. */
    if (!on_system) {
        char *o = GC_malloc(32);
        GC_finalization_proc ofn = 0;
        GC_register_finalizer_no_order(o + 1, fin_interior, NULL, NULL, NULL);
        GC_register_finalizer_no_order(o, 0, NULL, &ofn, NULL);
        CHECK(ofn == fin_interior);
        interior_calls = 0;
        o = NULL;
        collect();
        CHECK(interior_calls == 0); /* unregistered */
    }
}

__attribute__((no_sanitize("nonnull-attribute"))) static void test_ofn(void) {
    f1_calls = f2_calls = 0;
    make_replaced();
    collect();
    CHECK(f1_calls == 0 && f2_calls == 1); /* only the last one runs */
    make_removed();
    collect();
    CHECK(f1_calls == 0 && f2_calls == 1);
    /* Outside the heap: fn ignored, *ofn and *ocd set to NULL. */
    GC_finalization_proc ofn = f1;
    void *ocd = (void *)1;
    GC_register_finalizer(static_obj, f2, NULL, &ofn, &ocd);
    CHECK(ofn == 0 && ocd == 0);
    ofn = f1;
    void *volatile null_obj = NULL;
    GC_register_finalizer_no_order(null_obj, f2, NULL, &ofn, NULL);
    CHECK(ofn == 0);
    test_interior();
}

/* ---- client data kept alive ---- */

static int cd_intact;
static void fin_cd(void *obj, void *cd) {
    (void)obj;
    unsigned char *p = cd;
    int ok = 1;
    for (int i = 0; i < 500; i++)
        ok &= p[i] == (unsigned char)(i * 3);
    cd_intact += ok;
}

__attribute__((noinline)) static void make_with_cd(void) {
    void *o = GC_malloc(32);
    unsigned char *cd = GC_malloc_atomic(500);
    for (int i = 0; i < 500; i++)
        cd[i] = (unsigned char)(i * 3);
    GC_register_finalizer(o, fin_cd, cd, NULL, NULL);
}

__attribute__((noinline)) static void churn(void) {
    for (int i = 0; i < 20000; i++)
        memset(GC_malloc_atomic(500), 0x77, 500);
}

static void test_client_data(void) {
    cd_intact = 0;
    make_with_cd();
    for (int r = 0; r < 3; r++) { /* the object stays alive: kept by nothing */
        churn();
    }
    collect();
    CHECK(cd_intact == 1);
}

/* ---- resurrection ---- */

static void *resurrected; /* static data: a root */
static int res_calls;
static int res_reregister;
static void fin_resurrect(void *obj, void *cd) {
    (void)cd;
    res_calls++;
    resurrected = obj;
    if (res_reregister) {
        res_reregister = 0;
        GC_register_finalizer(obj, fin_resurrect, NULL, NULL, NULL);
    }
}

__attribute__((noinline)) static void make_resurrecting(void) {
    struct node *n = GC_malloc(sizeof *n);
    n->id = 99;
    n->next = GC_malloc(sizeof *n); /* what it reaches stays too */
    n->next->id = 100;
    GC_register_finalizer(n, fin_resurrect, NULL, NULL, NULL);
}

static void test_resurrect(void) {
    res_calls = 0;
    res_reregister = 1;
    make_resurrecting();
    collect();
    CHECK(res_calls == 1);
    struct node *n = resurrected;
    CHECK(n && n->id == 99 && n->next->id == 100);
    n = NULL;
    resurrected = NULL;
    collect(); /* registered again from its finalizer: runs again */
    CHECK(res_calls == 2);
    CHECK(resurrected != NULL);
    resurrected = NULL;
    collect(); /* not registered any more */
    collect();
    CHECK(res_calls == 2);
}

/* ---- on demand ---- */

static int notified;
static void notifier(void) { notified++; }
static int notified2;
static void notifier2(void) { notified2++; }

__attribute__((noinline)) static void make_garbage_with_finalizers(int n) {
    for (int i = 0; i < n; i++)
        GC_register_finalizer(GC_malloc(16 + (size_t)i * 8), fin_count, NULL, NULL, NULL);
}

static void test_on_demand(void) {
    CHECK(GC_get_finalize_on_demand() == 0);
    CHECK(GC_get_finalizer_notifier() == NULL);
    CHECK(GC_should_invoke_finalizers() == 0);
    GC_set_finalize_on_demand(1);
    GC_set_finalizer_notifier(notifier);
    CHECK(GC_get_finalize_on_demand() == 1 && GC_finalize_on_demand == 1);
    CHECK(GC_get_finalizer_notifier() == notifier);
    fin_calls = notified = 0;
    make_garbage_with_finalizers(10);
    collect();
    CHECK(fin_calls == 0);
    CHECK(notified == 1);
    CHECK(GC_should_invoke_finalizers() != 0);
    collect(); /* nothing new due: no second notice (bdwgc: notifies again) */
    CHECK((on_system ? notified >= 1 : notified == 1) && fin_calls == 0);
    notified = 1;
    int ran = GC_invoke_finalizers();
    CHECK(ran == 10 && fin_calls == 10);
    CHECK(GC_should_invoke_finalizers() == 0);
    CHECK(GC_invoke_finalizers() == 0);

    /* The variables, as programs assign them. */
    GC_finalizer_notifier = notifier2;
    make_garbage_with_finalizers(3);
    collect();
    CHECK(notified2 == 1 && notified == 1 && fin_calls == 10);
    CHECK(GC_invoke_finalizers() == 3);
    GC_finalize_on_demand = 0;
    GC_finalizer_notifier = 0;
    make_garbage_with_finalizers(4); /* a registration reads the variable */
    collect();
    CHECK(fin_calls == 17);
    CHECK(notified2 == 1);
}

/* ---- GC_finalize_all, the await proc ---- */

static int awaited;
static void await_proc(void *obj) {
    if (GC_base(obj) == obj)
        awaited++;
}

/* noinline: `held` must not outlive this frame in a callee-saved register
 * of the caller. GC_free gives its cell back, the next allocations of its
 * size class take it, and a stale copy of the address in a register would
 * keep that new object (seen in a Release build: main kept it in r13). */
__attribute__((noinline)) static void finalize_all_reachable(void) {
    void **held = GC_malloc_uncollectable(5 * sizeof(void *));
    fin_calls = 0;
    for (int i = 0; i < 5; i++) {
        held[i] = GC_malloc(24);
        GC_register_finalizer(held[i], fin_count, NULL, NULL, NULL);
    }
    GC_finalize_all(); /* reachable or not */
    CHECK(fin_calls == 5);
    GC_finalize_all();
    CHECK(fin_calls == 5);
    collect();
    CHECK(fin_calls == 5); /* the registrations are gone */
    GC_free(held);
}

static void test_finalize_all(void) {
    GC_finalize_all(); /* earlier tests' leftovers (the ordered cycles) */
    finalize_all_reachable();
    CHECK(GC_get_await_finalize_proc() == NULL);
    GC_set_await_finalize_proc(await_proc);
    CHECK(GC_get_await_finalize_proc() == await_proc);
    awaited = 0;
    make_garbage_with_finalizers(6);
    collect();
    CHECK(count_ok(fin_calls, 11));
    CHECK(count_ok(awaited, 6));
    GC_set_await_finalize_proc(0);
}

/* ---- start callback, stop function ---- */

static int starts;
static void on_start(void) { starts++; }
static int never(void) { return 0; }

static void test_callbacks(void) {
    CHECK(GC_get_start_callback() == NULL);
    GC_set_start_callback(on_start);
    CHECK(GC_get_start_callback() == on_start);
    starts = 0;
    GC_gcollect();
    GC_gcollect();
    CHECK(starts == 2);
    GC_set_start_callback(0);
    GC_gcollect();
    CHECK(starts == 2);
    CHECK(GC_get_stop_func() != 0);
    GC_set_stop_func(never);
    CHECK(GC_get_stop_func() == never);
    CHECK(GC_get_java_finalization() == 1 && GC_java_finalization == 1);
}

int main(void) {
    on_system = getenv("RUDO_COMPAT_ON_SYSTEM") != NULL;
    CHECK(on_system ? !on_rudo() : on_rudo());
    GC_INIT();
    GC_set_warn_proc(count_warn);
    test_counts("ordered", GC_register_finalizer);
    test_counts("ignore_self", GC_register_finalizer_ignore_self);
    test_counts("no_order", GC_register_finalizer_no_order);
    if (!on_system) /* bdwgc's wants GC_debug_malloc objects */
        test_counts("debug", GC_debug_register_finalizer);
    test_order();
    test_ofn();
    test_client_data();
    test_resurrect();
    test_on_demand();
    test_finalize_all();
    test_callbacks();
    if (!on_system)
        GC_dump_finalization();
    return ct_report();
}
