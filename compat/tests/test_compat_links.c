/* test_compat_links.c — bdwgc's disappearing links through rudo's
 * libgc.so.1 (docs/compat.md, "Disappearing links"): links holding
 * disguised pointers, flags or the object itself; in static data, in heap
 * objects and in malloc'd memory; GC_register_disappearing_link (the
 * object holding the link); short links cleared before finalizers and
 * long ones after (with resurrection); registering again; the return
 * codes of registration, unregistration and moves; many links across size
 * classes, exactly counted; bad arguments.
 *
 * With RUDO_COMPAT_ON_SYSTEM=1 (and LD_PRELOAD of Debian's libgc.so.1: the
 * ctest test_compat_links_on_bdwgc) the same checks run on bdwgc, except
 * the ones about rudo's own choices (marked). */
#define GC_THREADS 1
#include <gc.h>

#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compat_gc_test.h"
#include "compat_test.h"

static int on_system;

/* Exact on rudo; bdwgc may keep an object or two through a stale word. */
static int count_ok(size_t got, size_t want) {
    return on_system ? got <= want && got + 2 >= want : got == want;
}


/* Disguised pointers to objects kept alive (in an uncollectable table). */
static void **held;

/* ---- where links live, what they hold ---- */

static GC_hidden_pointer static_link;       /* static data: disguised */
static void *static_flag;                   /* static data: a flag */
static void **malloc_links;                 /* malloc'd: plain pointers */
static void **atomic_links;                 /* in a pointer-free heap object */

__attribute__((noinline)) static void make_linked(void) {
    void *a = GC_malloc(40), *b = GC_malloc(40), *c = GC_malloc(300), *d = GC_malloc(5000);
    static_link = GC_HIDE_POINTER(a);
    CHECK(GC_general_register_disappearing_link((void **)&static_link, a) == GC_SUCCESS);
    static_flag = (void *)(uintptr_t)13; /* bdwgc's gctest: a flag, not a pointer */
    CHECK(GC_general_register_disappearing_link(&static_flag, b) == GC_SUCCESS);
    malloc_links[0] = c;
    CHECK(GC_general_register_disappearing_link(&malloc_links[0], c) == GC_SUCCESS);
    atomic_links[0] = d;
    CHECK(GC_general_register_disappearing_link(&atomic_links[0], d) == GC_SUCCESS);
    /* The same objects again, kept alive: their links stay. */
    void *e = GC_malloc(40);
    held[0] = e;
    malloc_links[1] = (void *)GC_HIDE_POINTER(e);
    CHECK(GC_general_register_disappearing_link(&malloc_links[1], e) == GC_SUCCESS);
    CHECK(GC_general_register_disappearing_link(&malloc_links[1], e) == GC_DUPLICATE);
}

static void test_places(void) {
    malloc_links = calloc(4, sizeof *malloc_links);
    atomic_links = GC_malloc_atomic_uncollectable(4 * sizeof(void *));
    memset(atomic_links, 0, 4 * sizeof(void *));
    make_linked();
    collect();
    CHECK(static_link == 0);
    CHECK(static_flag == NULL);
    CHECK(malloc_links[0] == NULL);
    CHECK(atomic_links[0] == NULL);
    CHECK(malloc_links[1] == (void *)GC_HIDE_POINTER(held[0]));
    /* A cleared link's registration has ended; a live one's has not. */
    CHECK(GC_unregister_disappearing_link((void **)&static_link) == 0);
    CHECK(GC_unregister_disappearing_link(&malloc_links[1]) == 1);
    CHECK(GC_unregister_disappearing_link(&malloc_links[1]) == 0);
    held[0] = NULL;
    collect();
    CHECK(malloc_links[1] != NULL); /* unregistered: left alone */
    /* Links must not outlive their memory (bdwgc's rule too). */
    GC_unregister_disappearing_link(&malloc_links[0]);
    GC_unregister_disappearing_link(&atomic_links[0]);
    GC_unregister_disappearing_link(&static_flag);
    free(malloc_links);
    GC_free(atomic_links);
}

/* ---- GC_register_disappearing_link: the link's own object ---- */

struct holder {
    void *weak;   /* the link */
    int id;
};
static int holder_fin_calls, holder_saw_null;
static void holder_fin(void *obj, void *cd) {
    (void)cd;
    holder_fin_calls++;
    holder_saw_null += ((struct holder *)obj)->weak == NULL;
}

__attribute__((noinline)) static void make_holder(void) {
    struct holder *h = GC_malloc_atomic(sizeof *h); /* the link is not a strong ref */
    h->weak = GC_malloc(16);
    held[1] = h->weak;                     /* its value stays alive */
    h->id = 1;
    CHECK(GC_register_disappearing_link(&h->weak) == GC_SUCCESS);
    CHECK(GC_register_disappearing_link(&h->weak) == GC_DUPLICATE);
    GC_register_finalizer(h, holder_fin, NULL, NULL, NULL);
}

static void test_own_object(void) {
    holder_fin_calls = holder_saw_null = 0;
    make_holder();
    collect();
    /* Cleared when the holder died, before its finalizer ran. */
    CHECK(holder_fin_calls == 1);
    CHECK(holder_saw_null == 1);
    held[1] = NULL;
}

/* ---- short before finalizers, long after ---- */

static void **short_link, **long_link; /* malloc'd */
static int lf_calls, lf_short_null, lf_long_set, lf_resurrect;
static void *lf_root; /* static: resurrects */
static void link_fin(void *obj, void *cd) {
    (void)cd;
    lf_calls++;
    lf_short_null += *short_link == NULL;
    lf_long_set += *long_link == (void *)GC_HIDE_POINTER(obj);
    if (lf_resurrect)
        lf_root = obj;
}

__attribute__((noinline)) static void make_finalizable_linked(void) {
    void *o = GC_malloc(64);
    *short_link = (void *)GC_HIDE_POINTER(o);
    *long_link = (void *)GC_HIDE_POINTER(o);
    CHECK(GC_general_register_disappearing_link(short_link, o) == GC_SUCCESS);
    CHECK(GC_register_long_link(long_link, o) == GC_SUCCESS);
    CHECK(GC_register_long_link(long_link, o) == GC_DUPLICATE);
    GC_register_finalizer(o, link_fin, NULL, NULL, NULL);
}

static void test_short_long(void) {
    short_link = malloc(sizeof *short_link);
    long_link = malloc(sizeof *long_link);
    for (int resurrect = 0; resurrect < 2; resurrect++) {
        lf_calls = lf_short_null = lf_long_set = 0;
        lf_resurrect = resurrect;
        make_finalizable_linked();
        collect();
        CHECK(lf_calls == 1 && lf_short_null == 1 && lf_long_set == 1);
        CHECK(*short_link == NULL);
        CHECK(*long_link != NULL); /* the object is still there */
        collect();
        if (resurrect) {
            CHECK(*long_link == (void *)GC_HIDE_POINTER(lf_root));
            lf_root = NULL;
            collect();
            CHECK(lf_calls == 1); /* not finalized twice */
        }
        if (on_system && *long_link != NULL) { /* a stale word kept it */
            GC_unregister_long_link(long_link);
            continue;
        }
        CHECK(*long_link == NULL);
        CHECK(GC_unregister_long_link(long_link) == 0); /* ended */
    }
    GC_unregister_disappearing_link(short_link);
    GC_unregister_long_link(long_link);
    free(short_link);
    free(long_link);
}

/* ---- registering again, moves, unregistering ---- */

__attribute__((noinline)) static void make_retarget(void **link) {
    void *first = GC_malloc(32), *second = GC_malloc(32);
    held[2] = first;
    *link = (void *)(uintptr_t)21;
    CHECK(GC_general_register_disappearing_link(link, first) == GC_SUCCESS);
    /* bdwgc keeps the last object a link was registered with. */
    CHECK(GC_general_register_disappearing_link(link, second) == GC_DUPLICATE);
}

__attribute__((noinline)) static void codes(void **m) {
    void *o = GC_malloc(32);
    held[3] = o;
    m[1] = o;
    CHECK(GC_general_register_disappearing_link(&m[1], o) == GC_SUCCESS);
    CHECK(GC_move_disappearing_link(&m[1], &m[1]) == GC_SUCCESS); /* a check */
    CHECK(GC_move_disappearing_link(&m[2], &m[3]) == GC_NOT_FOUND);
    CHECK(GC_move_disappearing_link(&m[1], &m[2]) == GC_SUCCESS);
    CHECK(m[2] == NULL); /* the contents are not moved */
    CHECK(GC_unregister_disappearing_link(&m[1]) == 0);
    m[3] = o;
    CHECK(GC_general_register_disappearing_link(&m[3], o) == GC_SUCCESS);
    CHECK(GC_move_disappearing_link(&m[2], &m[3]) == GC_DUPLICATE);
    CHECK(GC_unregister_disappearing_link(&m[2]) == 1);
    CHECK(GC_unregister_disappearing_link(&m[3]) == 1);

    /* Long links: their own table for moves and unregistering. */
    m[4] = o;
    CHECK(GC_register_long_link(&m[4], o) == GC_SUCCESS);
    CHECK(GC_move_disappearing_link(&m[4], &m[5]) == GC_NOT_FOUND);
    CHECK(GC_unregister_disappearing_link(&m[4]) == 0);
    CHECK(GC_move_long_link(&m[4], &m[5]) == GC_SUCCESS);
    CHECK(GC_move_long_link(&m[4], &m[6]) == GC_NOT_FOUND);
    m[6] = o;
    CHECK(GC_register_long_link(&m[6], o) == GC_SUCCESS);
    CHECK(GC_move_long_link(&m[5], &m[6]) == GC_DUPLICATE);
    CHECK(GC_unregister_long_link(&m[5]) == 1);
    CHECK(GC_unregister_long_link(&m[6]) == 1);
    CHECK(GC_unregister_long_link(&m[6]) == 0);

    /* A moved link still follows its object. */
    m[0] = (void *)(uintptr_t)5;
    CHECK(GC_general_register_disappearing_link(&m[0], o) == GC_SUCCESS);
    CHECK(GC_move_disappearing_link(&m[0], &m[7]) == GC_SUCCESS);
    m[7] = (void *)(uintptr_t)6;
}

static void test_codes(void) {
    void **m = calloc(8, sizeof *m);
    make_retarget(&m[0]);
    collect();
    CHECK(m[0] == NULL); /* `second` died; `first` is alive */
    held[2] = NULL;
    codes(m);
    held[3] = NULL;
    collect();
    CHECK(m[7] == NULL);
    CHECK(m[0] == (void *)(uintptr_t)5);
    for (int i = 0; i < 8; i++) {
        GC_unregister_disappearing_link(&m[i]);
        GC_unregister_long_link(&m[i]);
    }
    free(m);
}

/* ---- many links, exactly counted ---- */

static const size_t sizes[] = {8, 16, 32, 48, 96, 200, 512, 1000, 3000, 9000, 40000, 200000};
#define NSIZES (sizeof sizes / sizeof sizes[0])
#define PER 40

__attribute__((noinline)) static void make_many(void **links, void **keep) {
    for (size_t s = 0; s < NSIZES; s++) {
        for (int i = 0; i < PER; i++) {
            size_t k = s * PER + (size_t)i;
            void *o = GC_malloc(sizes[s]);
            links[k] = (void *)GC_HIDE_POINTER(o);
            if (i % 4 == 0)
                keep[k] = o;
            int rc = i % 2 ? GC_register_long_link(&links[k], o)
                           : GC_general_register_disappearing_link(&links[k], o);
            CHECK(rc == GC_SUCCESS);
        }
    }
}

static void test_many(void) {
    size_t n = NSIZES * PER;
    void **links = calloc(n, sizeof *links);
    void **keep = GC_malloc_uncollectable(n * sizeof *keep);
    make_many(links, keep);
    collect();
    size_t cleared = 0, wrong = 0;
    for (size_t k = 0; k < n; k++) {
        cleared += links[k] == NULL;
        /* A kept object's link holds it; a dead one's is cleared, or, on
         * bdwgc only, kept by a stale word (count_ok's margin). */
        if (keep[k])
            wrong += links[k] != (void *)GC_HIDE_POINTER(keep[k]);
        else if (!on_system)
            wrong += links[k] != NULL;
    }
    printf("links: %zu registered, %zu cleared\n", n, cleared);
    /* Exact on rudo. bdwgc kept one dead object of the 360 once in a CI
     * run under load (its scan of a stale word), hence count_ok. */
    CHECK(count_ok(cleared, n - n / 4));
    CHECK(wrong == 0);
    memset(keep, 0, n * sizeof *keep);
    collect();
    cleared = 0;
    for (size_t k = 0; k < n; k++)
        cleared += links[k] == NULL;
    printf("links: %zu cleared after the rest died\n", cleared);
    CHECK(count_ok(cleared, n));
    for (size_t k = 0; k < n; k++) {
        GC_unregister_disappearing_link(&links[k]);
        GC_unregister_long_link(&links[k]);
    }
    GC_free(keep);
    free(links);
}

/* ---- bad arguments: a message, never a crash (rudo's choice) ---- */

/* NULL links are passed on purpose (gc.h declares them non-null). */
__attribute__((no_sanitize("nonnull-attribute"))) static void test_bad(void) {
    int w0 = warnings;
    static void *outside;
    CHECK(GC_register_disappearing_link(&outside) == GC_NO_MEMORY);
    char buf[16];
    void *o = GC_malloc(16);
    CHECK(GC_general_register_disappearing_link((void **)(void *)(buf + 1), o) ==
          GC_NO_MEMORY);
    void **volatile null_link = NULL; /* gc.h declares these non-null */
    CHECK(GC_move_disappearing_link(&outside, null_link) == GC_NOT_FOUND);
    CHECK(GC_unregister_disappearing_link(null_link) == 0);
    CHECK(warnings == w0 + 3);
    /* An object outside the heap: registered, never cleared. */
    static int not_heap;
    void **l = malloc(sizeof *l);
    *l = &not_heap;
    CHECK(GC_general_register_disappearing_link(l, &not_heap) == GC_SUCCESS);
    collect();
    CHECK(*l == &not_heap);
    CHECK(GC_unregister_disappearing_link(l) == 1);
    free(l);
}

int main(void) {
    on_system = getenv("RUDO_COMPAT_ON_SYSTEM") != NULL;
    CHECK(on_system ? !on_rudo() : on_rudo());
    GC_INIT();
    GC_set_warn_proc(count_warn);
    held = GC_malloc_uncollectable(8 * sizeof *held);
    test_places();
    test_own_object();
    test_short_long();
    test_codes();
    test_many();
    if (!on_system)
        test_bad();
    return ct_report();
}
