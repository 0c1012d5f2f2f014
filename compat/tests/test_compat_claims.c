/* test_compat_claims.c — bdwgc's documented API (Debian's 8.2.2 headers,
 * /usr/include/gc/) against rudo's libgc.so.1, claim by claim, for what the
 * other compat tests do not check: calls before GC_INIT, allocation of six
 * kinds x 23 sizes, GC_realloc across kinds and sizes, impossible sizes
 * (NULL and the OOM function's argument), GC_free of bad pointers,
 * GC_malloc_many, GC_strdup/strndup, unaligned GC_add_roots and
 * GC_remove_roots, links whose holder dies, finalizers that allocate and
 * collect, statistics (heap, free and unmapped bytes), the finalizer
 * notifier, threads made by GC_pthread_create and registered by hand, the
 * stack-bottom handle, the dump calls, GC_disable from several threads.
 *
 * It checks at start that it runs on rudo's library; with
 * RUDO_COMPAT_ON_SYSTEM=1 and Debian's libgc.so.1 preloaded it checks the
 * same claims on bdwgc (the *_on_bdwgc test), which validates them. The
 * claims rudo once failed are marked "once" below. */
#define GC_THREADS 1
#include <gc.h>
#include <gc/gc_inline.h>
#include <gc/gc_mark.h>
#include <gc/gc_typed.h>
#include <gc/javaxfc.h>

/* Plain pthreads where asked for (gc.h redirects the names). */
#undef pthread_create
#undef pthread_join
#undef pthread_detach
#undef pthread_exit

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


static unsigned long passed, failed;
static void check(int ok, const char *expr, int line) {
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "test_compat_claims.c:%d: check failed: %s\n", line, expr);
    }
}
#define CHECK(c) check((c) ? 1 : 0, #c, __LINE__)

static int on_system; /* RUDO_COMPAT_ON_SYSTEM: running on Debian's bdwgc */

static int lib_is_rudo(void) {
    Dl_info info;
    void *(*fn)(size_t) = GC_malloc;
    void *addr;
    memcpy(&addr, &fn, sizeof addr);
    return dladdr(addr, &info) && info.dli_fname &&
           strstr(info.dli_fname, "/compat/libgc.so") != NULL;
}

__attribute__((noinline, no_sanitize_address)) static void scrub(void) {
    volatile char buf[32768];
    memset((char *)buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory"); /* buf escapes: the memset stays */
}
static void collect(void) {
    scrub();
    GC_gcollect();
}

static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}
static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
}
static int intact(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7))
            return 0;
    return 1;
}

/* ---- OOM function ---- */
static int oom_calls;
static size_t oom_last;
static void *count_oom(size_t n) {
    oom_calls++;
    oom_last = n;
    return NULL;
}

/* ---- warnings ---- */
static int warnings;
static void count_warn(char *msg, GC_word arg) {
    (void)msg;
    (void)arg;
    warnings++;
}

/* ======================================================================
 * 0. Before initialization, in a child process (so the parent starts
 *    uninitialized): a setter that bdwgc runs without initializing must
 *    not freeze the settings read at GC_init.
 * ==================================================================== */
static int run_child(int which) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int code = 0;
        if (which == 0) {
            /* gc.h:635-638 GC_set_max_heap_size: "This setter function is
             * unsynchronized": bdwgc only stores GC_max_heapsize; it does
             * not initialize. */
            GC_set_max_heap_size((GC_word)4 << 30);
            if (GC_is_init_called())
                code |= 1;
            /* gc.h:193-205: GC_all_interior_pointers "Typically should not
             * be changed after GC initialization ... also affects whether
             * sizes are increased by at least a byte": set before GC_INIT,
             * GC_malloc(16) is a 16-byte object. */
            GC_set_all_interior_pointers(0);
            GC_INIT();
            void *p = GC_malloc(16);
            if (!p || GC_size(p) != 16)
                code |= 2;
        } else {
            /* gc.h:882 GC_enable_incremental: "Safe to call before
             * GC_INIT(). Includes a GC_init() call." */
            GC_enable_incremental();
            if (!GC_is_init_called())
                code |= 1;
        }
        _exit(code);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

static void preinit_child(void) {
    int c0 = run_child(0), c1 = run_child(1);
    CHECK(c0 != 255 && c1 != 255);
    /* Once: GC_set_max_heap_size called compat_init(), so the heap was
     * made then, and GC_set_all_interior_pointers(0) that follows was too
     * late: GC_size(GC_malloc(16)) was 32, not 16. */
    CHECK(c0 == 0);
    /* Once: GC_enable_incremental was empty: no init. */
    CHECK(c1 == 0);
}

/* ======================================================================
 * 1. Before GC_INIT in this process
 * ==================================================================== */
static int static_word;

static void preinit(void) {
    int local = 0;
    CHECK(!GC_is_init_called());
    CHECK(GC_base(&static_word) == NULL && GC_base(&local) == NULL);
    CHECK(GC_get_heap_size() == 0 || on_system); /* bdwgc: 0 too, not promised */
    CHECK(GC_get_oom_fn() != NULL);
    /* gc.h:120-126 "GC_oom_fn ... By default this just returns NULL ...
     * GC_oom_fn must not be 0." Once: rudo's variable was NULL, so a
     * client that saved GC_oom_fn to chain to it called address 0. */
    CHECK(GC_oom_fn != NULL);
    CHECK(GC_get_oom_fn() == GC_oom_fn);
}

/* ======================================================================
 * 2. Allocation matrix: kinds x sizes
 * ==================================================================== */
static const size_t sizes[] = {0, 1, 7, 8, 15, 16, 17, 24, 100, 255, 256, 1000,
                               2048, 4095, 4096, 4097, 8192, 32768, 65536,
                               65537, 100000, 300000, (size_t)1 << 20};
#define NSIZES (sizeof sizes / sizeof sizes[0])

enum { A_MALLOC, A_ATOMIC, A_UNC, A_AUNC, A_IOP, A_AIOP, A_NKINDS };
static void *alloc_of(int k, size_t n) {
    switch (k) {
    case A_MALLOC: return GC_malloc(n);
    case A_ATOMIC: return GC_malloc_atomic(n);
    case A_UNC: return GC_malloc_uncollectable(n);
    case A_AUNC: return GC_malloc_atomic_uncollectable(n);
    case A_IOP: return GC_malloc_ignore_off_page(n);
    default: return GC_malloc_atomic_ignore_off_page(n);
    }
}
static int kind_is_atomic(int k) { return k == A_ATOMIC || k == A_AUNC || k == A_AIOP; }

static void alloc_matrix(void) {
    int bad_null = 0, bad_base = 0, bad_size = 0, bad_zero = 0, bad_fill = 0;
    for (int k = 0; k < A_NKINDS; k++) {
        unsigned char *objs[NSIZES];
        for (size_t i = 0; i < NSIZES; i++) {
            size_t n = sizes[i];
            unsigned char *p = alloc_of(k, n);
            objs[i] = p;
            if (!p) {
                bad_null++;
                continue;
            }
            if (GC_base(p) != p || (n > 1 && GC_base(p + n - 1) != p))
                bad_base++;
            /* gc.h:601 "The returned size may be slightly larger than what
             * was originally requested"; rudo adds the extra byte of
             * gc.h:202 to every kind (bdwgc not to uncollectable ones). */
            if (GC_size(p) < n || (!on_system && GC_size(p) < n + 1))
                bad_size++;
            /* gc.h:534 "The non-atomic versions guarantee that the new
             * object is cleared." */
            if (!kind_is_atomic(k) && !all_zero(p, n))
                bad_zero++;
            fill(p, n, (unsigned)(k * 31 + i));
        }
        collect();
        for (size_t i = 0; i < NSIZES; i++)
            if (objs[i] && !intact(objs[i], sizes[i], (unsigned)(k * 31 + i)))
                bad_fill++;
        for (size_t i = 0; i < NSIZES; i++)
            GC_free(objs[i]);
    }
    CHECK(bad_null == 0);
    CHECK(bad_base == 0);
    CHECK(bad_size == 0);
    CHECK(bad_zero == 0);
    CHECK(bad_fill == 0);
    GC_free(NULL); /* gc.h:563 no-op */
}

/* ======================================================================
 * 3. GC_realloc: shrink, grow, NULL, 0, kinds
 * ==================================================================== */
static void realloc_matrix(void) {
    static const size_t rs[] = {1, 16, 17, 100, 4096, 4097, 70000, 300000};
    const size_t nrs = sizeof rs / sizeof rs[0];
    int bad = 0, bad_zero = 0, bad_kind = 0;
    for (int k = 0; k < 4; k++) {
        for (size_t a = 0; a < nrs; a++) {
            for (size_t b = 0; b < nrs; b++) {
                size_t o = rs[a], n = rs[b];
                unsigned char *p = alloc_of(k, o);
                fill(p, o, (unsigned)(a + b));
                unsigned char *q = GC_realloc(p, n);
                if (!q) {
                    bad++;
                    continue;
                }
                size_t keep = o < n ? o : n;
                /* gc.h:611 "It does not change the content of the object
                 * from its beginning to the minimum of old size and
                 * new_size_in_bytes; the content above in case of object
                 * size growth is initialized to zero (not guaranteed for
                 * atomic object type)" */
                if (!intact(q, keep, (unsigned)(a + b)) || GC_base(q) != q || GC_size(q) < n)
                    bad++;
                if (!kind_is_atomic(k) && n > o && !all_zero(q + o, n - o))
                    bad_zero++;
                /* gc.h:609 "The resulting object has the same kind as the
                 * original." */
                int kk = GC_get_kind_and_size(q, NULL);
                int want = k == A_MALLOC ? GC_I_NORMAL : k == A_ATOMIC ? GC_I_PTRFREE
                                                                       : -1;
                if (want >= 0 && kk != want)
                    bad_kind++;
                if (k == A_UNC || k == A_AUNC)
                    GC_free(q);
            }
        }
    }
    CHECK(bad == 0);
    CHECK(bad_zero == 0);
    CHECK(bad_kind == 0);
    /* NULL: GC_malloc; 0: GC_free and NULL (gc.h:613-616). */
    unsigned char *z = GC_realloc(NULL, 40);
    CHECK(z && GC_base(z) == z && all_zero(z, 40));
    CHECK(GC_realloc(z, 0) == NULL);
    unsigned char *z0 = GC_realloc(NULL, 0);
    CHECK(z0 != NULL || on_system); /* equivalent to GC_malloc(0) */
}

/* ======================================================================
 * 4. Impossible sizes: NULL through the OOM function, never a crash
 * ==================================================================== */
static void huge_sizes(void) {
    GC_oom_func saved = GC_get_oom_fn();
    GC_set_oom_fn(count_oom);
    static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4096,
                                  SIZE_MAX / 2, (size_t)1 << 62, (size_t)1 << 50};
    int nonnull = 0, not_called = 0, wrong_arg = 0;
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        size_t n = huge[i];
        for (int k = 0; k < A_NKINDS; k++) {
            oom_calls = 0;
            oom_last = 0;
            if (alloc_of(k, n) != NULL)
                nonnull++;
            if (oom_calls < 1)
                not_called++;
            /* gc.h:121-122 "we return (*GC_oom_fn)(size)" */
            else if (oom_last != n)
                wrong_arg++;
        }
        void *p = GC_malloc(32);
        oom_calls = 0;
        if (GC_realloc(p, n) != NULL)
            nonnull++;
        if (oom_calls < 1)
            not_called++;
        CHECK(GC_base(p) == p); /* gc.h:619-620 untouched on failure */
        if (GC_realloc(NULL, n) != NULL)
            nonnull++;
        if (GC_malloc_explicitly_typed(n, 0) != NULL)
            nonnull++;
        if (GC_malloc_many(n) != NULL)
            nonnull++;
        if (GC_memalign(64, n) != NULL)
            nonnull++;
        if (GC_calloc_explicitly_typed(n, 16, 0) != NULL)
            nonnull++;
        void *out = &static_word;
        if (GC_posix_memalign(&out, 64, n) == 0)
            nonnull++;
    }
    CHECK(nonnull == 0);
    CHECK(not_called == 0);
    CHECK(wrong_arg == 0);
    GC_set_oom_fn(saved);
    /* Still usable afterwards. */
    void *q = GC_malloc(100);
    CHECK(q != NULL && GC_base(q) == q);
}

/* ======================================================================
 * 5. Bad input that bdwgc leaves undefined: rudo must not crash
 *    (rudo only: bdwgc does crash on some)
 * ==================================================================== */
static void bad_input(void) {
    if (on_system)
        return;
    int local = 0;
    void *m = malloc(32);
    char *obj = GC_malloc(64);
    int w0 = warnings;
    GC_free(&static_word);
    GC_free(&local);
    GC_free(m);
    GC_free(obj + 8); /* interior: ignored by rudo */
    CHECK(GC_base(obj) == obj);
    CHECK(warnings >= w0); /* no crash is the check */
    CHECK(GC_size(&static_word) == 0 && GC_base(m) == NULL);
    free(m);
    CHECK(GC_unregister_disappearing_link(NULL) == 0);
}

/* ======================================================================
 * 6. GC_malloc_many / GC_NEXT (gc.h:1797-1802)
 * ==================================================================== */
static void malloc_many(void) {
    static const size_t ms[] = {1, 8, 16, 24, 100, 1000, 4096, 40000};
    int bad = 0;
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        size_t lb = ms[i];
        void *list = GC_malloc_many(lb);
        if (!list) {
            bad++;
            continue;
        }
        size_t count = 0;
        for (void *p = list; p; p = GC_NEXT(p)) {
            count++;
            if (GC_base(p) != p || GC_size(p) < lb)
                bad++;
            /* everything but the link is clear (NORMAL kind) */
            if (lb > sizeof(void *) && !all_zero((unsigned char *)p + sizeof(void *),
                                                 lb - sizeof(void *)))
                bad++;
            if (count > 100000)
                break;
        }
        if (count == 0 || count > 100000)
            bad++;
    }
    CHECK(bad == 0);
}

/* ======================================================================
 * 7. strdup / strndup edges
 * ==================================================================== */
static void strings(void) {
    char *e = GC_strdup("");
    CHECK(e && e[0] == '\0' && GC_base(e) == e);
    char *n0 = GC_strndup("abc", 0);
    CHECK(n0 && n0[0] == '\0');
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char *b = GC_strdup(big);
    CHECK(b && strcmp(b, big) == 0 && GC_size(b) >= sizeof big);
    char *bn = GC_strndup(big, 4096);
    CHECK(bn && strlen(bn) == 4096);
}

/* ======================================================================
 * Death detection: objects allocated out of line, each watched by a
 * disappearing link in static data holding a hidden pointer.
 * ==================================================================== */
#define NW 16
static void *watch_links[NW];

/* ======================================================================
 * 8. GC_remove_roots after GC_add_roots with unaligned bounds
 * ==================================================================== */
static void **roots_area; /* malloc'd: not scanned unless added */
__attribute__((noinline)) static void roots_fill(void) {
    for (int i = 0; i < NW; i++) {
        void *o = GC_malloc(48);
        roots_area[1 + i] = o;
        watch_links[i] = (void *)GC_HIDE_POINTER(o);
        GC_general_register_disappearing_link(&watch_links[i], o);
    }
}
static int count_cleared(void) {
    int n = 0;
    for (int i = 0; i < NW; i++)
        n += watch_links[i] == NULL;
    return n;
}
static void roots_rounding(void) {
    roots_area = calloc(NW + 4, sizeof(void *));
    char *lo = (char *)roots_area;
    /* gc.h:657 "Both segment start and end are not needed to be
     * pointer-aligned": bdwgc keeps [lo+8, lo+8*(NW+1)) (rounded inwards). */
    GC_add_roots(lo + 1, lo + sizeof(void *) * (NW + 1) + 1);
    roots_fill();
    collect();
    CHECK(count_cleared() == 0); /* the added range keeps them */
    /* gc.h:662 "Remove root segments located fully in the region." The
     * segment is the aligned one: [lo+8, lo+8*(NW+1)). */
    GC_remove_roots(lo + sizeof(void *), lo + sizeof(void *) * (NW + 1));
    collect();
    collect();
    int cleared = count_cleared();
    /* Once: rudo kept the range as given, [lo+1, ...+1), and compared
     * unrounded bounds: the root stayed. */
    CHECK(cleared >= NW - 2);
    /* Cleanup: remove it by its own (unaligned) bounds, which both do. */
    GC_remove_roots(lo, lo + sizeof(void *) * (NW + 4));
    collect();
    collect();
    CHECK(count_cleared() >= NW - 2);
    for (int i = 0; i < NW; i++)
        GC_unregister_disappearing_link(&watch_links[i]);
    free(roots_area);
}

/* ======================================================================
 * 9. A link whose holder dies disappears (gc.h:1254-1257 "A link
 *    disappears when ... the object containing this link is garbage
 *    collected")
 * ==================================================================== */
static void *link_target; /* static root: the target stays alive */
static GC_hidden_pointer holder_hidden[NW];
__attribute__((noinline)) static void make_holders(int lng) {
    for (int i = 0; i < NW; i++) {
        void **h = GC_malloc(32);
        h[1] = (void *)GC_HIDE_POINTER(link_target);
        if (lng)
            GC_register_long_link(&h[1], link_target);
        else
            GC_general_register_disappearing_link(&h[1], link_target);
        holder_hidden[i] = GC_HIDE_POINTER(&h[1]);
    }
}
static void dangling_links(void) {
    link_target = GC_malloc(64);
    for (int lng = 0; lng < 2; lng++) {
        make_holders(lng);
        collect();
        collect();
        int gone = 0;
        for (int i = 0; i < NW; i++) {
            void **l = GC_REVEAL_POINTER(holder_hidden[i]);
            gone += (lng ? GC_unregister_long_link(l) : GC_unregister_disappearing_link(l)) == 0;
        }
        CHECK(gone >= NW - 2);
    }
    link_target = NULL;
}

/* ======================================================================
 * 10. Finalizers that allocate, collect, register links and finalizers
 * ==================================================================== */
static atomic_int fin_ran, fin_inner;
static void inner_fin(void *obj, void *cd) {
    (void)obj;
    (void)cd;
    atomic_fetch_add(&fin_inner, 1);
}
static void *fin_keep;
static void busy_fin(void *obj, void *cd) {
    (void)cd;
    atomic_fetch_add(&fin_ran, 1);
    /* Allocation and collection inside a finalizer (Guile, ECL). */
    void **p = GC_malloc(200);
    p[0] = GC_malloc_atomic(5000);
    GC_register_finalizer(p, inner_fin, NULL, NULL, NULL);
    static void *lk;
    GC_general_register_disappearing_link(&lk, p);
    GC_unregister_disappearing_link(&lk);
    if (atomic_load(&fin_ran) % 8 == 1)
        GC_gcollect();
    fin_keep = obj; /* resurrects; dropped below */
}
__attribute__((noinline)) static void make_finalizable(int n, size_t sz) {
    for (int i = 0; i < n; i++) {
        void *o = GC_malloc(sz);
        GC_register_finalizer(o, busy_fin, (void *)(uintptr_t)i, NULL, NULL);
    }
}
static void finalizers_reenter(void) {
    alarm(20);
    make_finalizable(40, 64);
    make_finalizable(5, 70000);
    for (int i = 0; i < 6; i++)
        collect();
    GC_invoke_finalizers();
    fin_keep = NULL;
    for (int i = 0; i < 4; i++)
        collect();
    GC_invoke_finalizers();
    alarm(0);
    CHECK(atomic_load(&fin_ran) >= 40);
    CHECK(atomic_load(&fin_inner) >= 20);
}

/* ======================================================================
 * 11. The calls gc.h says to make under GC_call_with_alloc_lock
 * ==================================================================== */
struct stats_out {
    GC_word gc_no;
    size_t heap, freeb, total;
    size_t prof;
    int parallel;
};
static void *stats_under_lock(void *data) {
    struct stats_out *o = data;
    struct GC_prof_stats_s ps;
    o->gc_no = GC_get_gc_no();                      /* gc.h:85 */
    o->heap = GC_get_heap_size();                   /* gc.h:719-732 */
    o->freeb = GC_get_free_bytes();
    o->total = GC_get_total_bytes();
    o->prof = GC_get_prof_stats_unsafe(&ps, sizeof ps); /* gc.h:832 */
    o->parallel = GC_get_parallel();
    (void)GC_get_size_map_at(8);                    /* gc.h:842 */
    return o;
}
static void *volatile lock_keep;
static void alloc_lock_calls(void) {
    struct stats_out o;
    /* Something live, so the heap is not empty (in a debug build the
     * earlier tests can leave it with no page at all). */
    lock_keep = GC_malloc(64);
    alarm(10);
    CHECK(GC_call_with_alloc_lock(stats_under_lock, &o) == &o);
    alarm(0);
    lock_keep = NULL;
    CHECK(o.heap > 0 && o.freeb <= o.heap && o.total > 0 && o.prof > 0);
    if (!(o.heap > 0 && o.freeb <= o.heap && o.total > 0 && o.prof > 0))
        fprintf(stderr, "  under the lock: heap %zu free %zu total %zu prof %zu\n", o.heap,
                o.freeb, o.total, o.prof);
    CHECK(o.gc_no == GC_get_gc_no());
}

/* ======================================================================
 * 12. Heap statistics against what is live
 * ==================================================================== */
static void heap_stats(void) {
    enum { NBIG = 20 };
    static void *volatile big[NBIG]; /* static: live */
    (void)big;
    collect();
    size_t total0 = GC_get_total_bytes();
    for (int i = 0; i < NBIG; i++)
        big[i] = GC_malloc_atomic(400000);
    collect();
    size_t live = (size_t)NBIG * 400000;
    /* gc.h:719 "Return the number of bytes in the heap ... Includes empty
     * blocks and fragmentation loss": at least what is live. */
    CHECK(GC_get_heap_size() >= live);
    size_t heap_live = GC_get_heap_size(), unmapped_live = GC_get_unmapped_bytes();
    CHECK(GC_get_heap_size() - GC_get_free_bytes() >= live / 2);
    /* gc.h:754 "Return the total number of bytes allocated in this
     * process. Never decreases" */
    size_t total1 = GC_get_total_bytes();
    CHECK(total1 >= total0 + live);
    for (int i = 0; i < NBIG; i++)
        big[i] = NULL;
    collect();
    CHECK(GC_get_total_bytes() >= total1);
    size_t heap_dead = GC_get_heap_size(), unmapped_dead = GC_get_unmapped_bytes();
    CHECK(GC_get_memory_use() <= heap_dead);
    /* gc.h:739 GC_get_unmapped_bytes: "the size (in bytes) of the
     * unmapped memory (which is returned to the OS ...)"; gc.h:779-781
     * heapsize_full "(including the area unmapped to OS). Same as
     * GC_get_heap_size() + GC_get_unmapped_bytes()". Memory given back to
     * the OS moves from the heap size to the unmapped bytes: the sum does
     * not fall. Once: rudo returned the dead pages to the OS (the heap
     * size drops from ~9 MB to ~1.3 MB) and reported 0 unmapped. */
    CHECK(heap_dead + unmapped_dead >= heap_live + unmapped_live);
}

/* ======================================================================
 * 13. The finalizer notifier is "Never invoked unless
 *     GC_finalize_on_demand is set" (gc.h:235)
 * ==================================================================== */
static atomic_int notified;
static void notifier(void) { atomic_fetch_add(&notified, 1); }
static atomic_int plain_fin;
static void plain_fin_fn(void *o, void *cd) {
    (void)o;
    (void)cd;
    atomic_fetch_add(&plain_fin, 1);
}
__attribute__((noinline)) static void make_plain_finalizable(int n) {
    for (int i = 0; i < n; i++)
        GC_register_finalizer_no_order(GC_malloc(32), plain_fin_fn, NULL, NULL, NULL);
}
static void notifier_auto(void) {
    CHECK(GC_get_finalize_on_demand() == 0);
    GC_set_finalizer_notifier(notifier);
    make_plain_finalizable(20);
    collect();
    collect();
    GC_invoke_finalizers();
    CHECK(atomic_load(&plain_fin) >= 15);
    CHECK(atomic_load(&notified) == 0);
    GC_set_finalizer_notifier(0);
}

/* ======================================================================
 * 14. Threads: 1, 2, 4 GC_pthread_create threads x sizes x atomic
 * ==================================================================== */
struct thr_arg {
    int id, rounds;
    int bad;
};
static atomic_int stop_collector;
static void *collector_thread(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_collector)) {
        GC_gcollect();
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}
static void *worker(void *p) {
    struct thr_arg *a = p;
    static const size_t ts[] = {8, 16, 48, 200, 4096, 4097, 70000};
    enum { NT = sizeof ts / sizeof ts[0] };
    for (int r = 0; r < a->rounds; r++) {
        void **holder = GC_malloc(sizeof(void *) * NT * 2);
        for (int i = 0; i < NT; i++) {
            unsigned char *x = GC_malloc(ts[i]);
            unsigned char *y = GC_malloc_atomic(ts[i]);
            if (!x || !y || !all_zero(x, ts[i])) {
                a->bad++;
                continue;
            }
            fill(x, ts[i], (unsigned)(a->id + i + r));
            fill(y, ts[i], (unsigned)(a->id * 3 + i + r));
            holder[2 * i] = x;
            holder[2 * i + 1] = y;
        }
        for (int j = 0; j < 50; j++)
            (void)GC_malloc(64 + (size_t)j); /* garbage */
        for (int i = 0; i < NT; i++) {
            if (!holder[2 * i])
                continue;
            if (!intact(holder[2 * i], ts[i], (unsigned)(a->id + i + r)) ||
                !intact(holder[2 * i + 1], ts[i], (unsigned)(a->id * 3 + i + r)))
                a->bad++;
        }
    }
    return p;
}
static void *exit_thread(void *p) {
    (void)p;
    unsigned char *r = GC_malloc(3000);
    fill(r, 3000, 99);
    GC_pthread_exit(r); /* gc.h redirects pthread_exit here */
    return NULL;
}
static void thread_exit_value(void) {
    pthread_t t;
    void *ret = NULL;
    CHECK(GC_pthread_create(&t, NULL, exit_thread, NULL) == 0);
    CHECK(GC_pthread_join(t, &ret) == 0 && ret != NULL);
    collect();
    collect();
    CHECK(ret && GC_base(ret) == ret && intact(ret, 3000, 99));
}
static void threads_matrix(void) {
    static const int counts[] = {1, 2, 4};
    pthread_t col;
    atomic_store(&stop_collector, 0);
    CHECK(GC_pthread_create(&col, NULL, collector_thread, NULL) == 0);
    for (size_t c = 0; c < 3; c++) {
        int n = counts[c];
        pthread_t t[4];
        struct thr_arg a[4];
        for (int i = 0; i < n; i++) {
            a[i] = (struct thr_arg){i, 40, 0};
            CHECK(GC_pthread_create(&t[i], NULL, worker, &a[i]) == 0);
        }
        int bad = 0;
        for (int i = 0; i < n; i++) {
            void *ret = NULL;
            CHECK(GC_pthread_join(t[i], &ret) == 0 && ret == &a[i]);
            bad += a[i].bad;
        }
        CHECK(bad == 0);
    }
    atomic_store(&stop_collector, 1);
    CHECK(GC_pthread_join(col, NULL) == 0);
}

/* Plain threads registering themselves (gc.h:1554-1602). */
static void *plain_register(void *p) {
    int *res = p;
    struct GC_stack_base sb;
    res[0] = GC_thread_is_registered();
    res[1] = GC_get_stack_base(&sb);
    res[2] = GC_register_my_thread(&sb);
    res[3] = GC_register_my_thread(&sb);
    res[4] = GC_thread_is_registered();
    struct thr_arg a = {7, 10, 0};
    worker(&a);
    res[5] = a.bad;
    res[6] = GC_unregister_my_thread();
    res[7] = GC_thread_is_registered();
    /* Registering again after unregistering (thread-key destructors do). */
    res[8] = GC_register_my_thread(&sb);
    res[9] = GC_unregister_my_thread();
    return NULL;
}
static void plain_threads(void) {
    GC_allow_register_threads();
    pthread_t col;
    atomic_store(&stop_collector, 0);
    CHECK(GC_pthread_create(&col, NULL, collector_thread, NULL) == 0);
    for (int n = 1; n <= 4; n *= 2) {
        pthread_t t[4];
        int res[4][10];
        for (int i = 0; i < n; i++)
            CHECK(pthread_create(&t[i], NULL, plain_register, res[i]) == 0);
        for (int i = 0; i < n; i++) {
            pthread_join(t[i], NULL);
            CHECK(res[i][0] == 0 && res[i][1] == GC_SUCCESS);
            CHECK(res[i][2] == GC_SUCCESS && res[i][3] == GC_DUPLICATE);
            CHECK(res[i][4] == 1 && res[i][5] == 0);
            CHECK(res[i][6] == GC_SUCCESS && res[i][7] == 0);
            CHECK(res[i][8] == GC_SUCCESS && res[i][9] == GC_SUCCESS);
        }
    }
    atomic_store(&stop_collector, 1);
    GC_pthread_join(col, NULL);
}

/* ======================================================================
 * 15. GC_get_my_stackbottom's handle (gc.h:1648-1670)
 * ==================================================================== */
static void *main_handle;
static struct GC_stack_base main_sb;
struct sb_res {
    void *before, *after;
};
static struct GC_stack_base sb_mine;
static void *set_main_locked(void *p) {
    (void)p;
    /* "Set the cool end of the user (coroutine) stack of the specified
     * thread. The GC thread handle is either the one returned by
     * GC_get_my_stackbottom or NULL ... The caller should hold the GC
     * lock". The main thread's own value: a no-op for bdwgc. */
    GC_set_stackbottom(main_handle, &main_sb);
    return NULL;
}
static void *restore_locked(void *p) {
    (void)p;
    GC_set_stackbottom(NULL, &sb_mine); /* undo, for rudo */
    return NULL;
}
__attribute__((unused)) static void *sb_thread(void *p) {
    struct sb_res *r = p;
    struct GC_stack_base now;
    GC_get_my_stackbottom(&sb_mine); /* it takes the GC lock itself */
    r->before = sb_mine.mem_base;
    GC_call_with_alloc_lock(set_main_locked, NULL);
    GC_get_my_stackbottom(&now);
    r->after = now.mem_base;
    GC_call_with_alloc_lock(restore_locked, NULL);
    return NULL;
}
static void stackbottom_handle(void) {
    struct GC_stack_base sb1, sb2;
    void *h1 = GC_get_my_stackbottom(&sb1);
    void *h2 = GC_get_my_stackbottom(&sb2);
    CHECK(h1 != NULL && h2 != NULL && sb1.mem_base == sb2.mem_base);
    CHECK((char *)sb1.mem_base > (char *)&sb1);
    main_handle = h1;
    main_sb = sb1;
    /* Same thread, NULL handle: sets its own (and back). */
    GC_set_stackbottom(NULL, &sb1);
    void *h3 = GC_get_my_stackbottom(&sb2);
    CHECK(sb2.mem_base == sb1.mem_base && h3 != NULL);
    /* gc.h:1653 "Returns the GC-internal non-NULL handle of the thread":
     * one per thread. Once: rudo returned the caller's struct address,
     * a different "handle" per call. */
    CHECK(h1 == h2);
    /* ... "which could be passed to GC_set_stackbottom later" (gc.h:1654,
     * 1660-1663: "of the specified thread"). Once: rudo ignored the
     * handle and set the calling thread's stack bottom to the main
     * thread's (a collection then crashed). Now another thread's handle is
     * ignored, with a warning: the caller's stack stays its own. */
    struct sb_res r;
    pthread_t t;
    CHECK(GC_pthread_create(&t, NULL, sb_thread, &r) == 0);
    GC_pthread_join(t, NULL);
    CHECK(r.after == r.before);
}

/* ======================================================================
 * 16. Dump and print calls do not crash (gc.h:1709-1731)
 * ==================================================================== */
static void dumps(void) {
    fflush(stdout);
    int saved = dup(1);
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) {
        dup2(fileno(devnull), 1);
        GC_dump();
        GC_dump_named("claims");
        GC_dump_named(NULL);
        GC_dump_regions();
        GC_dump_finalization();
        GC_print_free_list(GC_I_NORMAL, 2);
        fflush(stdout);
        dup2(saved, 1);
        fclose(devnull);
    }
    close(saved);
    CHECK(1);
}

/* ======================================================================
 * 17. GC_disable / GC_enable across threads and GC_try_to_collect
 * ==================================================================== */
static int no_stop(void) { return 0; }
static void *disable_thread(void *p) {
    (void)p;
    for (int i = 0; i < 200; i++) {
        GC_disable();
        (void)GC_malloc(100);
        GC_enable();
    }
    return NULL;
}
static void disable_threads(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        GC_pthread_create(&t[i], NULL, disable_thread, NULL);
    for (int i = 0; i < 4; i++)
        GC_pthread_join(t[i], NULL);
    CHECK(!GC_is_disabled());
    GC_word n = GC_get_gc_no();
    CHECK(GC_try_to_collect(no_stop) == 1 && GC_get_gc_no() > n);
}

int main(void) {
    const char *sys = getenv("RUDO_COMPAT_ON_SYSTEM");
    on_system = sys && *sys && strcmp(sys, "0") != 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    preinit_child();
    preinit();
    GC_INIT();
    if (on_system ? lib_is_rudo() : !lib_is_rudo()) {
        fprintf(stderr, "test_compat_claims: wrong libgc.so.1 loaded (want %s)\n",
                on_system ? "the system's" : "rudo's");
        return 2;
    }
    GC_set_warn_proc(count_warn);
    alloc_matrix();
    realloc_matrix();
    huge_sizes();
    bad_input();
    malloc_many();
    strings();
    roots_rounding();
    dangling_links();
    finalizers_reenter();
    alloc_lock_calls();
    heap_stats();
    notifier_auto();
    threads_matrix();
    thread_exit_value();
    plain_threads();
    stackbottom_handle();
    dumps();
    disable_threads();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("test_compat_claims (%s): %lu passed, %lu failed, %.2f s\n",
           on_system ? "system bdwgc" : "rudo", passed, failed, secs);
    return failed ? 1 : 0;
}
