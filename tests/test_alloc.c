/* test_alloc.c — allocation: every small size class, large objects, zeroing
 * (also of memory reused after a collection), 16-byte alignment, the object
 * queries (rudo_size, rudo_base, rudo_kind_of, rudo_is_heap_ptr),
 * rudo_alloc_array and rudo_realloc.
 *
 * Runs with the default configuration (conservative stack and static-data
 * scanning): objects a check still needs are held in locals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

/* Addresses recorded outside the heap are stored XOR this mask so that the
 * record never looks like a pointer to a conservative scan. */
#define MASK ((uintptr_t)0x5a5a5a5a5a5a5a5aULL)

static rudo_kind k_traced; /* a callback kind: word 0 is a pointer */

static void trace_word0(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    rudo_visit(tr, (void **)obj);
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static bool all_zero(const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != 0)
            return false;
    return true;
}

/* Overwrites the dead part of the stack so stale copies of pointers from
 * earlier calls do not act as conservative roots.
 * Not instrumented: AddressSanitizer would leave unwritten redzones around
 * buf, keeping whatever stale words lay there. */
__attribute__((noinline, no_sanitize_address)) static void clobber_stack(void) {
    char buf[32 * 1024];
    memset(buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

/* Per-object failures are counted and only the first few printed, so a
 * broken size class does not flood the log; one CHECK per property. */
static unsigned long n_bad;
static void bad(const char *what, size_t req, const void *p, size_t got) {
    if (n_bad++ < 20)
        fprintf(stderr, "  bad object: %s (request %zu -> %p, usable %zu)\n", what, req, p,
                got);
}

/* Everything rudo_alloc promises about a fresh object of `req` bytes. */
static void check_fresh(void *p, rudo_kind kind, size_t req) {
    if (p == NULL) {
        bad("NULL", req, p, 0);
        return;
    }
    size_t got = rudo_size(p);
    char *c = p;
    if (got < req)
        bad("usable size < requested", req, p, got);
    /* Size classes waste at most 12.5% over the granule-rounded size. */
    if (req >= 16 && req <= 2048 && got > round16(req) && (got - round16(req)) * 8 > got)
        bad("size class wastes more than 12.5%", req, p, got);
    if (((uintptr_t)p & 15) != 0)
        bad("not 16-byte aligned", req, p, got);
    /* Every usable byte is zero (the usable size is part of the object). */
    if (!all_zero(p, got))
        bad("not zeroed", req, p, got);
    if (rudo_kind_of(p) != kind)
        bad("wrong kind", req, p, got);
    if (rudo_base(p) != p || rudo_base(c + got / 2) != p || rudo_base(c + got - 1) != p)
        bad("rudo_base of an interior address", req, p, got);
    if (!rudo_is_heap_ptr(p) || !rudo_is_heap_ptr(c + got - 1))
        bad("rudo_is_heap_ptr false", req, p, got);
}

static unsigned char pattern_of(size_t i) { return (unsigned char)(i % 251 + 1); }

/* Every size 1..1024, then every multiple of 16 up to RUDO_SMALL_MAX and its
 * neighbours, plus the first large sizes. The objects of the first range are
 * kept alive and filled with distinct patterns: live objects must not overlap
 * and must survive a collection untouched. */
__attribute__((noinline)) static void test_size_classes(rudo_kind kind) {
    enum { N = 1024 };
    n_bad = 0;
    void **volatile keep = rudo_alloc_array(RUDO_KIND_CONSERVATIVE, N + 1, sizeof(void *));
    CHECK(keep != NULL);
    for (size_t s = 1; s <= N; s++) {
        void *p = rudo_alloc(kind, s);
        check_fresh(p, kind, s);
        if (p) {
            memset(p, pattern_of(s), rudo_size(p));
            keep[s] = p;
        }
    }
    for (size_t m = N + 16; m <= RUDO_SMALL_MAX + 16; m += 16) {
        size_t sizes[3] = {m - 1, m, m + 1};
        for (int j = 0; j < 3; j++) {
            void *p = rudo_alloc(kind, sizes[j]);
            check_fresh(p, kind, sizes[j]);
        }
    }
    rudo_collect();
    unsigned long overlapped = 0;
    for (size_t s = 1; s <= N; s++) {
        unsigned char *p = keep[s];
        if (p == NULL)
            continue;
        size_t got = rudo_size(p);
        for (size_t i = 0; i < got; i++)
            if (p[i] != pattern_of(s)) {
                if (overlapped++ < 10)
                    fprintf(stderr, "  object of %zu bytes at %p corrupted at %zu\n", s,
                            (void *)p, i);
                break;
            }
        if (!rudo__debug_is_marked(p))
            overlapped++;
    }
    CHECK(overlapped == 0);
    CHECK(n_bad == 0);
    keep = NULL;
}

/* Large objects: usable size, alignment, zeroing, interior queries, and the
 * whole object is writable. */
__attribute__((noinline)) static void test_large(void) {
    static const size_t sizes[] = {RUDO_SMALL_MAX + 1, 64u << 10, 1u << 20, 100u << 20};
    n_bad = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t s = sizes[i];
        unsigned char *p = rudo_alloc(RUDO_KIND_ATOMIC, s);
        check_fresh(p, RUDO_KIND_ATOMIC, s);
        if (p == NULL)
            continue;
        memset(p, 0xC3, s);
        CHECK(rudo_base(p + s / 3) == p);
        CHECK(rudo_base(p + s - 1) == p);
        CHECK(rudo_is_heap_ptr(p + s / 2));
        rudo_collect(); /* p is held by this frame */
        CHECK(rudo__debug_is_marked(p));
        CHECK(p[0] == 0xC3 && p[s / 2] == 0xC3 && p[s - 1] == 0xC3);
    }
    /* A large object of a traced kind. */
    void *t = rudo_alloc(k_traced, 200000);
    check_fresh(t, k_traced, 200000);
    CHECK(n_bad == 0);
}

static int cmp_uptr(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* Allocates n objects of `size` bytes filled with 0xAA, held only by this
 * frame, except every 8th, which is stored in `keep` (a live conservative
 * array) when keep is not NULL. Records the (masked) addresses of the others
 * in rec and returns their number: they are garbage once this returns. */
__attribute__((noinline)) static size_t
make_dirty_garbage(rudo_kind kind, size_t size, size_t n, uintptr_t *rec, void **keep) {
    void **arr = rudo_alloc_array(RUDO_KIND_CONSERVATIVE, n, sizeof(void *));
    size_t ng = 0;
    for (size_t i = 0; i < n; i++) {
        void *o = rudo_alloc(kind, size);
        memset(o, 0xAA, rudo_size(o));
        arr[i] = o;
        if (keep && i % 8 == 0)
            keep[i / 8] = o;
        else
            rec[ng++] = (uintptr_t)o ^ MASK;
    }
    __asm__ volatile("" : : "r"(arr) : "memory");
    return ng;
}

/* Unmasks and sorts a record of addresses. */
static void unmask_sort(uintptr_t *rec, size_t n) {
    for (size_t i = 0; i < n; i++)
        rec[i] ^= MASK;
    qsort(rec, n, sizeof *rec, cmp_uptr);
}

/* Whether [a, a+len) overlaps one of the recorded objects of old_size bytes
 * (rec sorted, unmasked). */
static bool overlaps_old(const uintptr_t *rec, size_t n, size_t old_size, uintptr_t a,
                         size_t len) {
    size_t lo = 0, hi = n; /* find the last rec <= a + len - 1 */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (rec[mid] <= a + len - 1)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && rec[lo - 1] + old_size > a;
}

/* A malloc'd table of count slots registered as a root range, which keeps
 * what a reuse check allocates alive until the count is done: the
 * allocator then has to move on over the freed cells. Without it, in GC
 * stress mode (RUDO_GC_STRESS) a collection every few allocations would
 * free the new objects again and hand the same few cells out over and
 * over, never reaching most of the memory the check looks for. */
static void **hold_begin(size_t count) {
    void **hold = calloc(count, sizeof *hold);
    if (hold == NULL)
        abort();
    rudo_root_add_range(hold, hold + count);
    return hold;
}

static void hold_end(void **hold) {
    CHECK(rudo_root_remove_range(hold) == RUDO_OK);
    free(hold);
}

/* Allocates count objects of `size` bytes of `kind`, each checked by
 * check_fresh and held until all are allocated (hold_begin), and returns
 * how many overlap the ng recorded garbage objects of the same size (rec
 * sorted, unmasked). */
static size_t alloc_count_reused(rudo_kind kind, size_t size, size_t count,
                                 const uintptr_t *rec, size_t ng) {
    void **hold = hold_begin(count);
    size_t reused = 0;
    for (size_t i = 0; i < count; i++) {
        void *p = rudo_alloc(kind, size);
        hold[i] = p;
        check_fresh(p, kind, size);
        if (p && overlaps_old(rec, ng, size, (uintptr_t)p, size))
            reused++;
    }
    hold_end(hold);
    return reused;
}

/* Memory freed by a collection and handed out again must be zero: dirty
 * garbage, collect, allocate again (same class, another class, large) and
 * check every new object is zero. The same-class case must actually reuse
 * the freed memory, or the check would prove nothing: it runs in a fresh
 * heap, whose free-page pool then holds only the pages just freed (in an
 * older heap the pool may hand out other free pages first). */
__attribute__((noinline)) static void test_zero_after_reuse(int which) {
    enum { N = 10000 };
    const size_t size = 64;
    CHECK(rudo_heap_create(NULL) == RUDO_OK);
    k_traced = rudo_kind_traced("alloc-traced", trace_word0);
    rudo_kind kind = which == 0   ? RUDO_KIND_CONSERVATIVE
                     : which == 1 ? RUDO_KIND_ATOMIC
                                  : k_traced;
    uintptr_t *rec = malloc(N * sizeof *rec);
    n_bad = 0;

    /* 1. Whole pages of garbage: the pages return to the free pool. */
    size_t ng = make_dirty_garbage(kind, size, N, rec, NULL);
    unmask_sort(rec, ng);
    clobber_stack();
    rudo_collect();
    size_t reused = alloc_count_reused(kind, size, 2 * N, rec, ng);
    /* Conservative scanning may retain a few of them; most must be reused. */
    if (reused < ng / 2)
        fprintf(stderr, "  kind %u: only %zu of %zu freed cells reused by %d allocations\n",
                (unsigned)kind, reused, ng, 2 * N);
    CHECK(reused >= ng / 2);
    CHECK(n_bad == 0);

    /* 2. Pages where every 8th object survives: the freed cells between the
     * survivors are reused (a lazily swept page), and must be zero; the
     * survivors keep their contents. */
    void **volatile keep =
        rudo_alloc_array(RUDO_KIND_CONSERVATIVE, N / 8 + 1, sizeof(void *));
    ng = make_dirty_garbage(kind, size, N, rec, keep);
    unmask_sort(rec, ng);
    clobber_stack();
    rudo_collect();
    reused = alloc_count_reused(kind, size, ng, rec, ng);
    if (reused < ng / 2)
        fprintf(stderr, "  kind %u: only %zu of %zu cells freed between survivors reused\n",
                (unsigned)kind, reused, ng);
    CHECK(reused >= ng / 2);
    CHECK(n_bad == 0);
    size_t damaged = 0;
    for (size_t i = 0; i < N / 8; i++) {
        const unsigned char *o = keep[i];
        for (size_t b = 0; b < size; b++)
            if (o[b] != 0xAA) {
                damaged++;
                break;
            }
    }
    CHECK(damaged == 0);
    keep = NULL;

    /* 3. Another size class on (possibly) the same pages. */
    ng = make_dirty_garbage(kind, size, N, rec, NULL);
    unmask_sort(rec, ng);
    clobber_stack();
    rudo_collect();
    reused = 0;
    for (size_t i = 0; i < N; i++) {
        void *p = rudo_alloc(kind, 400);
        check_fresh(p, kind, 400);
        if (p && overlaps_old(rec, ng, size, (uintptr_t)p, rudo_size(p)))
            reused++;
    }
    printf("test_zero_after_reuse(kind %u): %zu of %d objects of another class "
           "reused freed memory\n",
           (unsigned)kind, reused, N);
    CHECK(n_bad == 0);

    /* 4. Large objects. */
    (void)make_dirty_garbage(kind, 1u << 20, 8, rec, NULL);
    clobber_stack();
    rudo_collect();
    for (int i = 0; i < 8; i++)
        check_fresh(rudo_alloc(kind, 1u << 20), kind, 1u << 20);
    CHECK(n_bad == 0);
    free(rec);
    rudo_heap_destroy();
}

/* Addresses that are not in the heap. */
static int a_static_int;
__attribute__((noinline)) static void test_not_heap(void) {
    int local = 0;
    char *m = malloc(256);
    CHECK(!rudo_is_heap_ptr(&local));
    CHECK(!rudo_is_heap_ptr(m));
    CHECK(!rudo_is_heap_ptr(m + 100));
    CHECK(!rudo_is_heap_ptr(&a_static_int));
    CHECK(!rudo_is_heap_ptr(NULL));
    CHECK(rudo_base(&local) == NULL);
    CHECK(rudo_base(m) == NULL);
    CHECK(rudo_base(&a_static_int) == NULL);
    free(m);
}

__attribute__((noinline)) static void test_kind_of(void) {
    rudo_kind ks[6];
    ks[0] = RUDO_KIND_CONSERVATIVE;
    ks[1] = RUDO_KIND_ATOMIC;
    ks[2] = k_traced;
    ks[3] = rudo_kind_atomic("alloc-atomic");
    ks[4] = rudo_kind_conservative("alloc-conservative");
    static const uint64_t layout[1] = {0x5};
    ks[5] = rudo_kind_layout("alloc-layout", 3, layout);
    for (int i = 0; i < 6; i++) {
        void *small = rudo_alloc(ks[i], 48);
        void *large = rudo_alloc(ks[i], 100000);
        CHECK(small && rudo_kind_of(small) == ks[i]);
        CHECK(large && rudo_kind_of(large) == ks[i]);
    }
    void *a = rudo_malloc(10), *b = rudo_malloc_atomic(10);
    CHECK(rudo_kind_of(a) == RUDO_KIND_CONSERVATIVE);
    CHECK(rudo_kind_of(b) == RUDO_KIND_ATOMIC);
}

__attribute__((noinline)) static void test_alloc_array(void) {
    n_bad = 0;
    void *a = rudo_alloc_array(k_traced, 100, 24);
    check_fresh(a, k_traced, 2400);
    void *b = rudo_alloc_array(RUDO_KIND_ATOMIC, 1000, 1000);
    check_fresh(b, RUDO_KIND_ATOMIC, 1000000);
    void *c = rudo_alloc_array(RUDO_KIND_CONSERVATIVE, 1, 1);
    check_fresh(c, RUDO_KIND_CONSERVATIVE, 1);
    CHECK(n_bad == 0);
}

static unsigned char rpat(size_t i) { return (unsigned char)(i * 7 + 3); }

/* Grows and shrinks one object through small and large sizes: the kind is
 * kept, the old contents are preserved up to min(old usable, new), and bytes
 * past the old usable size are zero. */
__attribute__((noinline)) static void test_realloc_kind(rudo_kind kind) {
    static const size_t steps[] = {40,       100,  1000, 5000,  40000,
                                   2u << 20, 3000, 10,   20000, 70000};
    unsigned char *p = rudo_alloc(kind, 24);
    memset(p, 0, rudo_size(p));
    for (size_t i = 0; i < rudo_size(p); i++)
        p[i] = rpat(i);
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        size_t n = steps[s];
        size_t old = rudo_size(p);
        unsigned char *q = rudo_realloc(p, n);
        CHECK(q != NULL);
        if (q == NULL)
            return;
        CHECK(rudo_kind_of(q) == kind);
        CHECK(rudo_size(q) >= n);
        CHECK(((uintptr_t)q & 15) == 0);
        size_t keep = old < n ? old : n, bad_at = (size_t)-1;
        for (size_t i = 0; i < keep && bad_at == (size_t)-1; i++)
            if (q[i] != rpat(i))
                bad_at = i;
        for (size_t i = old; i < n && bad_at == (size_t)-1; i++)
            if (q[i] != 0)
                bad_at = i;
        if (bad_at != (size_t)-1)
            fprintf(stderr, "  realloc %zu -> %zu (kind %u): wrong byte at %zu\n", old, n,
                    (unsigned)kind, bad_at);
        CHECK(bad_at == (size_t)-1);
        for (size_t i = 0; i < rudo_size(q); i++)
            q[i] = rpat(i);
        p = q;
    }
    rudo_collect();
    CHECK(rudo__debug_is_marked(p));
    CHECK(p[0] == rpat(0) && p[69999] == rpat(69999));
}

/* Builds a conservative object whose only reference to a child is in its
 * contents, grows it with rudo_realloc, and returns the new object (the
 * child's address does not leave this frame). */
__attribute__((noinline)) static void **make_grown_parent(void) {
    unsigned char *child = rudo_malloc_atomic(64);
    memset(child, 0x77, 64);
    void **parent = rudo_malloc(16);
    parent[1] = child;
    return rudo_realloc(parent, 100000);
}

__attribute__((noinline)) static void test_realloc(void) {
    void *n = rudo_realloc(NULL, 100);
    CHECK(n != NULL && rudo_kind_of(n) == RUDO_KIND_CONSERVATIVE);
    CHECK(n && rudo_size(n) >= 100 && all_zero(n, rudo_size(n)));
    test_realloc_kind(RUDO_KIND_ATOMIC);
    test_realloc_kind(RUDO_KIND_CONSERVATIVE);
    test_realloc_kind(rudo_kind_atomic("realloc-atomic"));
    test_realloc_kind(rudo_kind_conservative("realloc-conservative"));

    /* A pointer copied by realloc still keeps its target alive. */
    void **volatile parent = make_grown_parent();
    clobber_stack();
    rudo_collect();
    rudo_collect();
    unsigned char *child = parent[1];
    CHECK(rudo__debug_is_marked(parent));
    CHECK(child != NULL && rudo__debug_is_marked(child));
    CHECK(child && child[0] == 0x77 && child[63] == 0x77);
    parent = NULL;
}

/* Cells that die and stay unswept through a second collection are freed
 * by that collection without being zeroed; the page's next sweep must still
 * hand them out zeroed. Every other object is kept so the pages are not
 * freed whole (which would zero them anyway). */
static void **zero_holder;

/* All n cells are held until the last is allocated, so that the dead half
 * lies between the kept ones even when collections run during the fill (GC
 * stress mode), which would otherwise recycle each dead cell at once. */
__attribute__((noinline)) static void fill_half_kept(rudo_kind kind, size_t n) {
    void **hold = hold_begin(n);
    for (size_t i = 0; i < n; i++) {
        unsigned char *o = rudo_alloc(kind, 48);
        hold[i] = o;
        memset(o, 0xAA, rudo_size(o));
        if (i % 2 == 0)
            zero_holder[i / 2] = o;
    }
    hold_end(hold);
}

__attribute__((noinline)) static void test_zero_after_two_collections(void) {
    enum { N = 20000 };
    CHECK(rudo_heap_create(NULL) == RUDO_OK);
    rudo_kind kind = rudo_kind_conservative("two-collections");
    zero_holder = rudo_alloc_array(RUDO_KIND_CONSERVATIVE, N / 2, sizeof(void *));
    rudo_root_add((void **)&zero_holder);
    fill_half_kept(kind, N);
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (size_t i = 0; i < N / 2; i++) {
        uintptr_t a = (uintptr_t)zero_holder[i];
        lo = a < lo ? a : lo;
        hi = a > hi ? a : hi;
    }
    clobber_stack();
    rudo_collect(); /* half of the cells die; their pages stay unswept */
    rudo_collect(); /* they are freed unswept: the pages become dirty */
    size_t bad = 0, got = 0, reused = 0;
    void **hold = hold_begin(N / 2); /* the new objects fill the dead cells */
    for (size_t i = 0; i < N / 2; i++) {
        unsigned char *o = rudo_alloc(kind, 48);
        hold[i] = o;
        got += o != NULL;
        reused += (uintptr_t)o > lo && (uintptr_t)o < hi;
        if (o && !all_zero(o, rudo_size(o)))
            bad++;
    }
    hold_end(hold);
    CHECK(got == N / 2);
    CHECK(reused >= N / 4); /* the dead cells between the kept ones */
    CHECK(bad == 0);
    for (size_t i = 0; i < N / 2; i++)
        bad += ((unsigned char *)zero_holder[i])[47] != 0xAA;
    CHECK(bad == 0); /* the kept half is intact */
    CHECK(rudo_root_remove((void **)&zero_holder) == RUDO_OK);
    rudo_heap_destroy();
}

int main(void) {
    CHECK(rudo_heap_create(NULL) == RUDO_OK);
    k_traced = rudo_kind_traced("alloc-traced", trace_word0);

    test_size_classes(RUDO_KIND_CONSERVATIVE);
    test_size_classes(RUDO_KIND_ATOMIC);
    test_size_classes(k_traced);
    test_large();
    test_not_heap();
    test_kind_of();
    test_alloc_array();
    test_realloc();
    rudo_heap_destroy();

    /* A new heap is mapped where the old one was, so a stale pointer left on
     * the stack by an earlier heap could alias and retain an object of the
     * next one. Test functions are noinline (main's frame holds no heap
     * pointer), and the stack below main is cleared before each heap. */
    for (int which = 0; which < 3; which++) {
        clobber_stack();
        test_zero_after_reuse(which);
    }
    clobber_stack();
    test_zero_after_two_collections();
    return test_report();
}
