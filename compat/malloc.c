/* malloc.c — allocation, explicit free, and the address queries.
 *
 * A request of n bytes allocates n + compat.extra bytes: with
 * GC_all_interior_pointers (bdwgc's default) that is one more byte, as in
 * bdwgc, so a pointer just past the requested end still points into the
 * object, GC_malloc(0) gets a unique object, and GC_size reports the size
 * class of n + 1 (GC_size(GC_malloc(16)) == 32). rudo recognizes interior
 * pointers always, so GC_all_interior_pointers = 0 only drops the byte. */
#include "compat.h"
#include "kinds.h"

#include <stdlib.h>
#include <string.h>

/* rudo_alloc's argument for a request of n bytes; 0 if it overflows. */
static inline size_t request(size_t n) {
    size_t sz = n + compat.extra;
    if (RUDO_UNLIKELY(sz < n))
        return 0;
    return sz ? sz : 1;
}

static inline void *alloc_kind(rudo_kind kind, size_t n) {
    compat_enter();
    size_t sz = request(n);
    void *p = RUDO_LIKELY(sz) ? rudo_alloc(kind, sz) : NULL;
    return RUDO_LIKELY(p != NULL) ? p : compat_oom(n);
}

GC_API void *GC_malloc(size_t n) { return alloc_kind(RUDO_KIND_CONSERVATIVE, n); }
/* Not cleared, as in bdwgc: PTRFREE is a RUDO_KIND_UNINIT kind (kinds.c),
 * known once compat_enter has made the heap. */
GC_API void *GC_malloc_atomic(size_t n) {
    compat_enter();
    return alloc_kind(compat_kinds.k[GC_I_PTRFREE].rk, n);
}
/* ignore_off_page promises a pointer near the start is kept: rudo keeps
 * objects alive through any interior pointer anyway. */
GC_API void *GC_malloc_ignore_off_page(size_t n) { return GC_malloc(n); }
GC_API void *GC_malloc_atomic_ignore_off_page(size_t n) { return GC_malloc_atomic(n); }
/* Stubborn objects are ordinary ones since bdwgc 7.x. */
GC_API void *GC_malloc_stubborn(size_t n) { return GC_malloc(n); }
GC_API void GC_change_stubborn(const void *p) { (void)p; }
GC_API void GC_end_stubborn_change(const void *p) { (void)p; }

/* ---- uncollectable objects ----
 * An uncollectable object is an ordinary rudo object held by a precise root
 * slot of its own (malloc'd, registered with rudo_root_add) until GC_free;
 * its contents are traced as its kind says. compat.unc maps the object to
 * its slot, for GC_free and GC_realloc. */

static size_t unc_hash(const void *p, size_t cap) {
    return (size_t)(((uintptr_t)p >> 4) * 0x9e3779b97f4a7c15u) & (cap - 1);
}

/* With compat.lock held. */
static bool unc_insert(void *obj, void **slot) {
    if (2 * (compat.nunc + 1) > compat.cap_unc) {
        size_t cap = compat.cap_unc ? 2 * compat.cap_unc : 64;
        struct compat_unc *t = calloc(cap, sizeof *t);
        if (!t)
            return false;
        for (size_t i = 0; i < compat.cap_unc; i++) {
            struct compat_unc e = compat.unc[i];
            if (!e.obj)
                continue;
            size_t j = unc_hash(e.obj, cap);
            while (t[j].obj)
                j = (j + 1) & (cap - 1);
            t[j] = e;
        }
        free(compat.unc);
        compat.unc = t;
        compat.cap_unc = cap;
    }
    size_t j = unc_hash(obj, compat.cap_unc);
    while (compat.unc[j].obj)
        j = (j + 1) & (compat.cap_unc - 1);
    compat.unc[j] = (struct compat_unc){obj, slot};
    /* Relaxed: no_uncollectables reads it as a hint (see there). */
    __atomic_store_n(&compat.nunc, compat.nunc + 1, __ATOMIC_RELAXED);
    return true;
}

/* With compat.lock held: the entry's index, or SIZE_MAX. */
static size_t unc_find(const void *obj) {
    if (!compat.cap_unc)
        return SIZE_MAX;
    for (size_t j = unc_hash(obj, compat.cap_unc);; j = (j + 1) & (compat.cap_unc - 1)) {
        if (compat.unc[j].obj == obj)
            return j;
        if (!compat.unc[j].obj)
            return SIZE_MAX;
    }
}

/* With compat.lock held: removes entry j (backward-shift deletion, so
 * probes stay unbroken) and returns its slot. */
static void **unc_remove(size_t j) {
    void **slot = compat.unc[j].slot;
    size_t cap = compat.cap_unc;
    compat.unc[j].obj = NULL;
    for (size_t k = (j + 1) & (cap - 1); compat.unc[k].obj; k = (k + 1) & (cap - 1)) {
        size_t home = unc_hash(compat.unc[k].obj, cap);
        /* Move k into the hole j if its home is not in (j, k]. */
        if ((k > j && (home <= j || home > k)) || (k < j && home <= j && home > k)) {
            compat.unc[j] = compat.unc[k];
            compat.unc[k].obj = NULL;
            j = k;
        }
    }
    __atomic_store_n(&compat.nunc, compat.nunc - 1, __ATOMIC_RELAXED);
    return slot;
}

/* True when no uncollectable object exists: GC_free and GC_realloc then
 * skip the table and its lock. Relaxed, without the lock: an object made
 * uncollectable by this thread was counted by this thread (program
 * order), and one made by another thread reached this one through the
 * program's own synchronization, which orders the count too. */
static bool no_uncollectables(void) {
    return __atomic_load_n(&compat.nunc, __ATOMIC_RELAXED) == 0;
}

bool compat_is_uncollectable(const void *p) {
    if (no_uncollectables())
        return false;
    compat_lock();
    bool r = unc_find(p) != SIZE_MAX;
    compat_unlock();
    return r;
}

static void *alloc_uncollectable(rudo_kind kind, size_t n) {
    void *p = alloc_kind(kind, n);
    if (!p || !rudo_is_heap_ptr(p)) /* NULL, or the OOM function's answer */
        return p;
    void **slot = malloc(sizeof *slot);
    if (!slot)
        return compat_oom(n);
    *slot = p;
    rudo_root_add(slot);
    compat_lock();
    bool ok = unc_insert(p, slot);
    compat_unlock();
    if (!ok) {
        rudo_root_remove(slot);
        free(slot);
        return compat_oom(n);
    }
    return p;
}

GC_API void *GC_malloc_uncollectable(size_t n) {
    return alloc_uncollectable(RUDO_KIND_CONSERVATIVE, n);
}
GC_API void *GC_malloc_atomic_uncollectable(size_t n) {
    return alloc_uncollectable(RUDO_KIND_ATOMIC, n);
}

/* The predefined kinds of GC_malloc_kind and GC_generic_malloc; other kind
 * numbers come from GC_new_kind (kinds.c). */
static void *alloc_bdwgc_kind(size_t n, int k) {
    switch (k) {
    case GC_I_PTRFREE: return GC_malloc_atomic(n);
    case GC_I_NORMAL: return GC_malloc(n);
    case GC_I_UNCOLLECTABLE: return GC_malloc_uncollectable(n);
    case GC_I_AUNCOLLECTABLE: return GC_malloc_atomic_uncollectable(n);
    default: return compat_kind_alloc(n, k);
    }
}

GC_API void *GC_malloc_kind(size_t n, int k) { return alloc_bdwgc_kind(n, k); }
GC_API void *GC_malloc_kind_global(size_t n, int k) { return alloc_bdwgc_kind(n, k); }
GC_API void *GC_generic_malloc(size_t n, int k) { return alloc_bdwgc_kind(n, k); }
GC_API void *GC_generic_malloc_ignore_off_page(size_t n, int k) { return alloc_bdwgc_kind(n, k); }
GC_API void *GC_generic_or_special_malloc(size_t n, int k) { return alloc_bdwgc_kind(n, k); }
/* Uncollectable is a property of bdwgc's two predefined kinds: for a kind
 * made by GC_new_kind, bdwgc allocates an ordinary object, and so does
 * this. */
GC_API void *GC_generic_malloc_uncollectable(size_t n, int k) {
    if (k == GC_I_PTRFREE || k == GC_I_AUNCOLLECTABLE)
        return GC_malloc_atomic_uncollectable(n);
    if (k == GC_I_NORMAL || k == GC_I_UNCOLLECTABLE)
        return GC_malloc_uncollectable(n);
    return compat_kind_alloc(n, k);
}

/* ---- free ----
 * rudo_free hands the cell back to its page (or zeroes it, on a page a
 * thread is allocating from, for the next collection to reclaim: rudo.h).
 * An uncollectable object loses its root first. */
GC_API void GC_free(void *p) {
    if (!p)
        return;
    compat_enter();
    void *base = rudo_base(p);
    if (base != p) {
        static atomic_int once;
        compat_warn_once(&once, "GC Warning: GC_free: not the start of a heap "
                                "object (ignored)\n");
        return;
    }
    void **slot = NULL;
    if (!no_uncollectables()) {
        compat_lock();
        size_t j = unc_find(p);
        slot = j != SIZE_MAX ? unc_remove(j) : NULL;
        compat_unlock();
    }
    if (slot) {
        rudo_root_remove(slot);
        free(slot);
    }
    size_t sz = rudo_size(p);
    rudo_free(p);
    /* Relaxed: a statistic. */
    __atomic_fetch_add(&compat.freed_explicitly, sz, __ATOMIC_RELAXED);
}

/* ---- realloc, strdup ---- */

/* bdwgc's rules: the object stays where it is while the new size fits
 * and is at least half of it, its bytes past the new size cleared (so a
 * later growth in place reads zeros, as gc.h promises for non-atomic
 * kinds, and no stale pointer is traced); otherwise a new object of the
 * same kind (uncollectable ones stay uncollectable) gets the contents and
 * the old one is freed, as gc.h says, so that a shrunk large buffer does
 * not keep its pages. */
GC_API void *GC_realloc(void *p, size_t n) {
    if (!p)
        return GC_malloc(n);
    if (n == 0) { /* bdwgc 8.2: frees, returns NULL */
        GC_free(p);
        return NULL;
    }
    compat_enter();
    if (rudo_base(p) != p) {
        static atomic_int once;
        compat_warn_once(&once, "GC Warning: GC_realloc: not the start of a heap "
                                "object\n");
        return NULL;
    }
    size_t old = rudo_size(p);
    size_t sz = request(n);
    if (RUDO_UNLIKELY(!sz))
        return compat_oom(n);
    if (sz <= old && n >= old / 2) {
        memset((char *)p + n, 0, old - n);
        return p;
    }
    rudo_kind k = rudo_kind_of(p);
    void *q = compat_is_uncollectable(p) ? alloc_uncollectable(k, n) : alloc_kind(k, n);
    if (q && rudo_is_heap_ptr(q)) { /* not the OOM function's answer */
        memcpy(q, p, old < n ? old : n);
        GC_free(p);
    }
    return q;
}

GC_API char *GC_strdup(const char *s) {
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *d = GC_malloc_atomic(n + 1);
    if (d && rudo_is_heap_ptr(d))
        memcpy(d, s, n + 1);
    return d;
}

GC_API char *GC_strndup(const char *s, size_t max) {
    if (!s)
        return NULL;
    size_t n = strnlen(s, max);
    char *d = GC_malloc_atomic(n + 1);
    if (d && rudo_is_heap_ptr(d)) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* bdwgc: alignments up to a granule are GC_malloc's; a power of two up
 * to a block is honoured, and a larger one fails through the OOM
 * function. rudo aligns powers of two up to its page (64 KiB). Any other
 * alignment bdwgc meets by offsetting into a larger object (an interior
 * pointer, which both collectors keep the object alive by), and so does
 * this. */
GC_API void *GC_memalign(size_t align, size_t n) {
    if (align <= RUDO_GRANULE)
        return GC_malloc(n);
    if (align > 65536u)
        return compat_oom(n);
    if (align & (align - 1)) {
        if (n > SIZE_MAX - align)
            return compat_oom(n);
        char *p = GC_malloc(n + align - 1);
        if (!p || !rudo_is_heap_ptr(p))
            return p;
        return p + (align - (uintptr_t)p % align) % align;
    }
    compat_enter();
    size_t sz = request(n);
    void *p = sz ? rudo_alloc_aligned(RUDO_KIND_CONSERVATIVE, sz, align) : NULL;
    return p ? p : compat_oom(n);
}

GC_API int GC_posix_memalign(void **out, size_t align, size_t n) {
    if (align < sizeof(void *) || (align & (align - 1)))
        return 22; /* EINVAL; *out unchanged */
    /* bdwgc stores the result, NULL included, before testing it. */
    if ((*out = GC_memalign(align, n)) == NULL)
        return 12; /* ENOMEM */
    return 0;
}

/* ---- the debugging allocators map to the plain ones ---- */
GC_API void *GC_debug_malloc(size_t n, const char *s, int i) { (void)s; (void)i; return GC_malloc(n); }
GC_API void *GC_debug_malloc_atomic(size_t n, const char *s, int i) { (void)s; (void)i; return GC_malloc_atomic(n); }
GC_API void *GC_debug_malloc_uncollectable(size_t n, const char *s, int i) { (void)s; (void)i; return GC_malloc_uncollectable(n); }
GC_API void *GC_debug_malloc_atomic_uncollectable(size_t n, const char *s, int i) { (void)s; (void)i; return GC_malloc_atomic_uncollectable(n); }
GC_API void *GC_debug_malloc_ignore_off_page(size_t n, const char *s, int i) { (void)s; (void)i; return GC_malloc(n); }
GC_API void *GC_debug_malloc_atomic_ignore_off_page(size_t n, const char *s, int i) { (void)s; (void)i; return GC_malloc_atomic(n); }
GC_API void *GC_debug_malloc_stubborn(size_t n, const char *s, int i) { (void)s; (void)i; return GC_malloc(n); }
GC_API void *GC_debug_malloc_replacement(size_t n) { return GC_malloc(n); }
GC_API void *GC_debug_realloc(void *p, size_t n, const char *s, int i) { (void)s; (void)i; return GC_realloc(p, n); }
GC_API void *GC_debug_realloc_replacement(void *p, size_t n) { return GC_realloc(p, n); }
GC_API void *GC_debug_generic_or_special_malloc(size_t n, int k, const char *s, int i) { (void)s; (void)i; return alloc_bdwgc_kind(n, k); }
GC_API char *GC_debug_strdup(const char *str, const char *s, int i) { (void)s; (void)i; return GC_strdup(str); }
GC_API char *GC_debug_strndup(const char *str, size_t n, const char *s, int i) { (void)s; (void)i; return GC_strndup(str, n); }
GC_API void GC_debug_free(void *p) { GC_free(p); }
GC_API void GC_debug_change_stubborn(const void *p) { (void)p; }
GC_API void GC_debug_end_stubborn_change(const void *p) { (void)p; }
GC_API size_t GC_get_debug_header_size(void) { return GC_debug_header_size; }

/* ---- queries ---- */

GC_API void *GC_base(void *p) {
    if (!atomic_load_explicit(&compat.ready, memory_order_acquire))
        return NULL;
    return rudo_base(p);
}

GC_API size_t GC_size(const void *p) {
    if (!atomic_load_explicit(&compat.ready, memory_order_acquire))
        return 0;
    void *base = rudo_base(p);
    return base ? rudo_size(base) : 0;
}

bool compat_in_heap(const void *p) {
    if (!atomic_load_explicit(&compat.ready, memory_order_acquire))
        return false;
    return (const char *)p > compat.heap_below && (const char *)p < compat.heap_end;
}

/* bdwgc: "points to somewhere in GC heap", an allocated object or not (a
 * freed or collected one's address still answers 1 there): the heap's
 * reservation, which holds nothing but heap objects. */
GC_API int GC_is_heap_ptr(const void *p) { return compat_in_heap(p); }
