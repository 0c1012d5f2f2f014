/* test_compat_api.c — rudo's libgc.so.1 through bdwgc's API: implicit
 * initialization, bdwgc's observable defaults, the tier-1 functions and
 * variables, a stub's single warning, and roots in a library loaded after
 * initialization (docs/compat.md). */
#define GC_THREADS 1
#include <gc.h>
#include <gc/gc_inline.h> /* GC_I_PTRFREE, GC_I_NORMAL */
#include <gc/gc_mark.h> /* the plausible heap bounds */

#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compat_test.h"

static int warnings;
static char last_warning[256];
static void count_warn(char *msg, GC_word arg) {
    (void)arg;
    warnings++;
    snprintf(last_warning, sizeof last_warning, "%s", msg);
}

static int events[6]; /* GC_EVENT_START .. GC_EVENT_END */
static void count_event(GC_EventType ev) {
    if ((unsigned)ev < 6)
        events[ev]++;
}

static int oom_calls;
static void *count_oom(size_t n) {
    (void)n;
    oom_calls++;
    return NULL;
}

/* Allocation churn: enough garbage of one size to make cells be reused. */
static void churn(size_t size, int n) {
    for (int i = 0; i < n; i++) {
        char *p = GC_malloc(size);
        memset(p, 0x5a, size);
    }
}

/* count pointer-free objects of n bytes filled with 0xc3, all dead once
 * two collections have run. */
static void atomic_garbage(size_t n, size_t count) {
    for (size_t i = 0; i < count; i++)
        memset(GC_malloc_atomic(n), 0xc3, n);
    GC_gcollect();
    GC_gcollect();
}

/* Objects whose only reference is somewhere the test chooses: made in
 * functions that are not inlined, so no copy stays in main's frame. */
static uintptr_t hidden_static; /* an interior pointer, stored plainly */
__attribute__((noinline)) static void make_interior(void) {
    unsigned char *p = GC_malloc(200);
    fill(p, 200, 11);
    hidden_static = (uintptr_t)(p + 150);
}

static void **malloc_table; /* malloc'd: not scanned unless GC_add_roots */
__attribute__((noinline)) static void make_rooted(void) {
    unsigned char *p = GC_malloc_atomic(96);
    fill(p, 96, 23);
    malloc_table[3] = p;
}

static uintptr_t unc_xor; /* the uncollectable's address, disguised */
__attribute__((noinline)) static void make_uncollectable(void) {
    void **u = GC_malloc_uncollectable(64);
    unsigned char *child = GC_malloc_atomic(80);
    fill(child, 80, 37);
    u[0] = child;
    unc_xor = (uintptr_t)u ^ 0xa5a5a5a5u;
}

/* True if GC_malloc comes from rudo's libgc.so.1 (the build's), not the
 * system's: the test must not pass by running on bdwgc. */
static int on_rudo(void) {
    Dl_info info;
    void *(*fn)(size_t) = GC_malloc;
    void *addr;
    memcpy(&addr, &fn, sizeof addr); /* a function's address, as data */
    return dladdr(addr, &info) && info.dli_fname &&
           strstr(info.dli_fname, "compat/libgc.so.1") != NULL;
}

int main(void) {
    CHECK(on_rudo());
    /* Before initialization: nothing is plausible. */
    CHECK(!GC_is_init_called());
    CHECK(GC_least_plausible_heap_addr == (void *)~(uintptr_t)0);
    CHECK(GC_greatest_plausible_heap_addr == NULL);
    GC_set_warn_proc(count_warn);
    CHECK(GC_get_warn_proc() == count_warn);

    /* The first allocation initializes (no GC_init call). */
    void *p16 = GC_malloc(16);
    CHECK(p16 != NULL);
    CHECK(GC_is_init_called());
    CHECK(GC_size(p16) == 32); /* 16 + bdwgc's extra byte, rounded */
    CHECK((char *)GC_least_plausible_heap_addr <= (char *)p16);
    CHECK((char *)GC_greatest_plausible_heap_addr >= (char *)p16);
    CHECK(GC_is_heap_ptr(p16));
    CHECK(!GC_is_heap_ptr(&warnings));
    CHECK(GC_base((char *)p16 + 17) == p16); /* interior, past the request */
    CHECK(GC_base(&warnings) == NULL);

    void *z1 = GC_malloc(0), *z2 = GC_malloc(0);
    CHECK(z1 != NULL && z2 != NULL && z1 != z2);
    CHECK(GC_get_version() == 0x80202);
    CHECK(GC_get_free_space_divisor() == 3);
    CHECK(GC_free_space_divisor == 3);
    CHECK(GC_all_interior_pointers == 1);
    CHECK(GC_get_all_interior_pointers() == 1);
    CHECK(GC_stackbottom != NULL && GC_stackbottom > (char *)&p16);
    CHECK(GC_expand_hp(1 << 20) == 1);

    /* Collections advance GC_gc_no, the variable and the getter. */
    GC_word before = GC_gc_no;
    GC_gcollect();
    CHECK(GC_gc_no == before + 1);
    CHECK(GC_get_gc_no() == GC_gc_no);

    /* A direct write of the divisor is applied after the next collection,
     * from the collection callback (rudo_set_growth there must not hang). */
    GC_free_space_divisor = 4;
    GC_gcollect();
    CHECK(GC_get_free_space_divisor() == 4);
    GC_set_free_space_divisor(3);

    /* Collection events, in bdwgc's order. */
    GC_set_on_collection_event(count_event);
    CHECK(GC_get_on_collection_event() == count_event);
    GC_gcollect();
    CHECK(events[GC_EVENT_START] == 1 && events[GC_EVENT_MARK_START] == 1 &&
          events[GC_EVENT_MARK_END] == 1 && events[GC_EVENT_RECLAIM_START] == 1 &&
          events[GC_EVENT_RECLAIM_END] == 1 && events[GC_EVENT_END] == 1);
    GC_set_on_collection_event(0);
    GC_gcollect();
    CHECK(events[GC_EVENT_END] == 1);

    /* An interior pointer in static data keeps its object. */
    make_interior();
    for (int i = 0; i < 5; i++) {
        churn(200, 20000);
        GC_gcollect();
    }
    unsigned char *ip = GC_base((void *)hidden_static);
    CHECK(ip != NULL && intact(ip, 200, 11));
    hidden_static = 0;

    /* GC_add_roots: a malloc'd table becomes a root. */
    malloc_table = calloc(16, sizeof *malloc_table);
    GC_add_roots(malloc_table, malloc_table + 16);
    make_rooted();
    for (int i = 0; i < 5; i++) {
        churn(96, 20000);
        GC_gcollect();
    }
    CHECK(intact(malloc_table[3], 96, 23));
    GC_remove_roots(malloc_table, malloc_table + 16);
    GC_add_roots(malloc_table, malloc_table + 16);
    GC_clear_roots();

    /* Uncollectable objects live, and keep what they point to, with no
     * reference from anywhere; GC_free releases them. */
    make_uncollectable();
    for (int i = 0; i < 5; i++) {
        churn(64, 20000);
        churn(80, 20000);
        GC_gcollect();
    }
    void **u = (void **)(unc_xor ^ 0xa5a5a5a5u);
    CHECK(GC_base(u) == u);
    CHECK(GC_base(u[0]) == u[0] && intact(u[0], 80, 37));
    GC_free(u);
    u = NULL;

    /* GC_free is rudo_free: the contents are gone (zeroed for reuse, or
     * poisoned in a verifier build). */
    unsigned char *f = GC_malloc(48);
    fill(f, 48, 5);
    GC_free(f);
    CHECK(!intact(f, 48, 5));
    GC_free(NULL);

    /* realloc keeps the contents; strdup and strndup copy. */
    char *r = GC_malloc(10);
    memcpy(r, "abcdefghi", 10);
    r = GC_realloc(r, 5000);
    CHECK(r != NULL && memcmp(r, "abcdefghi", 10) == 0 && GC_size(r) >= 5001);
    CHECK(GC_realloc(r, 0) == NULL);
    char *d = GC_strdup("hello");
    CHECK(d && strcmp(d, "hello") == 0 && GC_is_heap_ptr(d));
    char *dn = GC_strndup("hello", 3);
    CHECK(dn && strcmp(dn, "hel") == 0);

    /* GC_disable holds off collections. */
    GC_disable();
    CHECK(GC_is_disabled());
    before = GC_gc_no;
    churn(1000, 20000);
    CHECK(GC_gc_no == before);
    GC_enable();
    CHECK(!GC_is_disabled());

    /* The OOM function is called, then NULL is returned. */
    GC_set_oom_fn(count_oom);
    CHECK(GC_get_oom_fn() == count_oom);
    GC_set_max_heap_size(64u << 20);
    CHECK(GC_malloc(256u << 20) == NULL);
    CHECK(oom_calls == 1);
    GC_set_max_heap_size(0);

    /* Statistics. */
    CHECK(GC_get_heap_size() > 0);
    CHECK(GC_get_total_bytes() > (size_t)20000 * 1000);
    struct GC_prof_stats_s ps;
    CHECK(GC_get_prof_stats(&ps, sizeof ps) == sizeof ps);
    CHECK(ps.gc_no == GC_gc_no && ps.heapsize_full == GC_get_heap_size());

    /* A stub returns its failure value and warns once. */
    int w0 = warnings;
    CHECK(GC_toggleref_add(p16, 1) == GC_NO_MEMORY);
    CHECK(warnings == w0 + 1);
    CHECK(strstr(last_warning, "GC_toggleref_add") != NULL);
    CHECK(GC_toggleref_add(p16, 1) == GC_NO_MEMORY);
    CHECK(warnings == w0 + 1);

    /* Stacks and blocking. */
    struct GC_stack_base sb;
    CHECK(GC_get_stack_base(&sb) == GC_SUCCESS);
    CHECK((char *)sb.mem_base > (char *)&sb);
    CHECK(GC_thread_is_registered());

    /* A library loaded after initialization: its static data is a root. */
    void *h = dlopen(LATE_LIB, RTLD_NOW);
    CHECK(h != NULL);
    if (!h)
        fprintf(stderr, "dlopen: %s\n", dlerror());
    if (h) {
        void (*set)(void *);
        void *(*get)(void);
        void *sym = dlsym(h, "late_set");
        memcpy(&set, &sym, sizeof set); /* POSIX: dlsym's result as a function */
        sym = dlsym(h, "late_get");
        memcpy(&get, &sym, sizeof get);
        unsigned char *o = GC_malloc_atomic(112);
        fill(o, 112, 41);
        set(o);
        o = NULL;
        for (int i = 0; i < 5; i++) {
            churn(112, 20000);
            GC_gcollect();
        }
        CHECK(intact(get(), 112, 41));
    }

    /* GC_malloc_atomic does not clear, as bdwgc ("the object is not
     * cleared"): after pointer-free objects of a size die, new ones of
     * that size find their bytes (or, in a RUDO_DEBUG build, the poison
     * the sweep wrote over them); GC_malloc's objects of the same sizes,
     * on pages the pointer-free ones may have given back, are all zero.
     * Both are PTRFREE and NORMAL to GC_get_kind_and_size. */
    static const size_t asizes[] = {24, 200, 3000, 50000};
    for (size_t si = 0; si < sizeof asizes / sizeof asizes[0]; si++) {
        size_t n = asizes[si], count = (4u << 20) / n, reused = 0, nonzero = 0;
        atomic_garbage(n, count);
        for (size_t i = 0; i < count; i++) {
            unsigned char *a = GC_malloc_atomic(n);
            reused += a[n / 2] != 0; /* 0xc3, or RUDO_DEBUG's poison */
        }
        CHECK(reused > 0);
        atomic_garbage(n, count);
        for (size_t i = 0; i < count; i++) {
            unsigned char *c = GC_malloc(n);
            for (size_t b = 0; b < n; b++)
                nonzero += c[b] != 0;
        }
        CHECK(nonzero == 0);
        size_t ks = 0;
        CHECK(GC_get_kind_and_size(GC_malloc_atomic(n), &ks) == GC_I_PTRFREE && ks >= n);
        CHECK(GC_get_kind_and_size(GC_malloc(n), &ks) == GC_I_NORMAL && ks >= n);
    }
    return ct_report();
}
