/* typed.c — bdwgc's typed allocation (gc_typed.h), gcj allocation
 * (gc_gcj.h) and finalized allocation (gc_disclaim.h), each made, as in
 * bdwgc, of kinds with descriptors that kinds.c decodes.
 *
 *  - Typed objects (GC_malloc_explicitly_typed) carry their descriptor in
 *    their last word; their kind's descriptor says so (PER_OBJECT at the
 *    size minus a word, bdwgc's own encoding). Only the words the
 *    descriptor names are traced: Guile keeps weak slots in the others.
 *  - Typed arrays (GC_calloc_explicitly_typed) end with three words:
 *    element size, count, descriptor; their kind's PROC descriptor names
 *    a procedure of this file, decoded in place (kinds.c), since it needs
 *    the object's size.
 *  - Bitmaps of more than 62 words become a PROC descriptor of another
 *    procedure of this file; its env is the address of a copy of the
 *    bitmap (never freed: bdwgc's descriptors live for ever too).
 *  - gcj objects hold their type in word 0, and the type holds the
 *    descriptor in its second word (PER_OBJECT with a negative offset).
 *  - Finalized objects hold their closure in word 0 (tagged with 1); the
 *    client gets the address after it. Their kind's disclaim procedure
 *    calls the closure (kinds.c makes it a rudo kind finalizer).
 * Kind and procedure numbers are taken in bdwgc's order, so a client sees
 * the numbers bdwgc would give. */
#include "kinds.h"

#include <stdlib.h>
#include <string.h>

typedef GC_word GC_descr;

/* An extended bitmap (more than COMPAT_BITMAP_BITS words). */
struct ext_bitmap {
    struct ext_bitmap *next; /* every one made, so none looks leaked */
    size_t nbits;
    GC_word bits[]; /* bit i of bits[i / 64]: word i is a pointer */
};

static struct {
    pthread_once_t typed_once, fin_once;
    int explicit_kind, array_kind;
    int finalized_kind;
    pthread_mutex_t gcj_lock;
    bool gcj_ready;
    struct ext_bitmap *bitmaps; /* under compat.lock */
} typed = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, 0, 0, 0,
           PTHREAD_MUTEX_INITIALIZER, false, NULL};

/* ---- the typed procedures ---- */

void compat_typed_trace(GC_word env, char *obj, size_t size, rudo_tracer *tr) {
    const struct ext_bitmap *bm = (const struct ext_bitmap *)(uintptr_t)env;
    if (!bm)
        return;
    void **w = (void **)(void *)obj;
    size_t n = size / sizeof(void *);
    if (n > bm->nbits)
        n = bm->nbits;
    for (size_t i = 0; i < n; i++)
        if ((bm->bits[i / 64] >> (i % 64)) & 1)
            rudo_visit_value(tr, w[i]);
}

void compat_array_trace(char *obj, size_t size, rudo_tracer *tr, unsigned depth) {
    if (size == SIZE_MAX || size < 3 * sizeof(GC_word))
        return; /* pushed by a client: its size is not known */
    GC_word *trailer = (GC_word *)(void *)(obj + size) - 3;
    size_t lb = trailer[0], n = trailer[1];
    GC_descr d = trailer[2];
    size_t room = size - 3 * sizeof(GC_word);
    if (lb == 0 || n > room / lb)
        return; /* not filled in yet (a collection during the allocation) */
    if (lb % sizeof(GC_word) != 0) {
        /* Elements off word alignment: bdwgc scans such arrays whole. */
        rudo_visit_range(tr, obj, obj + n * lb);
        return;
    }
    for (size_t i = 0; i < n; i++)
        compat_trace_descr(obj + i * lb, lb, d, tr, depth + 1);
}

/* The procedures as bdwgc mark procedures, for a client that pushes such
 * a descriptor on the mark stack itself: the extended bitmap knows its
 * length; an array does not know its size there, and is left to the
 * trace of the object that holds it. */
static struct GC_ms_entry *typed_mark_proc(GC_word *addr, struct GC_ms_entry *msp,
                                           struct GC_ms_entry *msl, GC_word env) {
    const struct ext_bitmap *bm = (const struct ext_bitmap *)(uintptr_t)env;
    for (size_t i = 0; bm && i < bm->nbits; i++)
        if ((bm->bits[i / 64] >> (i % 64)) & 1)
            msp = GC_mark_and_push((void *)addr[i], msp, msl, (void **)&addr[i]);
    return msp;
}
static struct GC_ms_entry *array_mark_proc(GC_word *addr, struct GC_ms_entry *msp,
                                           struct GC_ms_entry *msl, GC_word env) {
    (void)addr;
    (void)msl;
    (void)env;
    return msp;
}

static void typed_init(void) {
    /* bdwgc's GC_init_explicit_typing, in its order. */
    typed.explicit_kind = (int)compat_new_kind(
        (GC_word)(-(GC_signed_word)sizeof(GC_word)) | GC_DS_PER_OBJECT, 1, 1);
    unsigned tp = compat_new_proc(typed_mark_proc);
    unsigned ap = compat_new_proc(array_mark_proc);
    /* Before the array kind exists no object can carry ap. */
    compat_kinds.typed_proc = tp;
    compat_kinds.array_proc = ap;
    typed.array_kind = (int)compat_new_kind(GC_MAKE_PROC(ap, 0), 0, 1);
}

static void need_typed(void) {
    compat_init();
    pthread_once(&typed.typed_once, typed_init);
}

/* ---- descriptors ---- */

GC_API GC_descr GC_make_descriptor(const GC_word *bm, size_t len) {
    need_typed();
    if (!bm && len) {
        static atomic_int once;
        compat_warn_once(&once, "GC Warning: GC_make_descriptor: NULL bitmap "
                                "(no pointers)\n");
        return 0;
    }
    /* The last pointer word; none: no pointers (a LENGTH of 0). */
    size_t last = len;
    while (last > 0 && !((bm[(last - 1) / 64] >> ((last - 1) % 64)) & 1))
        last--;
    if (last == 0)
        return 0;
    bool all = true;
    for (size_t i = 0; i < last && all; i++)
        all = (bm[i / 64] >> (i % 64)) & 1;
    if (all)
        return (GC_descr)(last * sizeof(GC_word)) | GC_DS_LENGTH;
    if (last <= COMPAT_BITMAP_BITS) {
        GC_descr d = 0;
        for (size_t i = 0; i < last; i++)
            if ((bm[i / 64] >> (i % 64)) & 1)
                d |= (GC_word)1 << (63 - i);
        return d | GC_DS_BITMAP;
    }
    size_t nw = (last + 63) / 64;
    struct ext_bitmap *e = malloc(sizeof *e + nw * sizeof(GC_word));
    if (!e) {
        /* bdwgc falls back to scanning the object whole. */
        return (GC_descr)(last * sizeof(GC_word)) | GC_DS_LENGTH;
    }
    e->nbits = last;
    memcpy(e->bits, bm, nw * sizeof(GC_word));
    if (last % 64)
        e->bits[nw - 1] &= ((GC_word)1 << (last % 64)) - 1;
    compat_lock();
    e->next = typed.bitmaps;
    typed.bitmaps = e;
    compat_unlock();
    return GC_MAKE_PROC(compat_kinds.typed_proc, (GC_word)(uintptr_t)e);
}

/* ---- typed allocation ---- */

static void *typed_alloc(int kind, size_t sz, size_t lb) {
    compat_enter();
    void *p = sz >= lb ? rudo_alloc(compat_kinds.k[kind].rk, sz) : NULL;
    return p ? p : compat_oom(lb);
}

GC_API void *GC_malloc_explicitly_typed(size_t lb, GC_descr d) {
    need_typed();
    /* bdwgc: one word more for the descriptor, no extra byte. */
    GC_word *op = typed_alloc(typed.explicit_kind, lb + sizeof(GC_word), lb);
    if (!op || !rudo_is_heap_ptr(op))
        return op;
    op[rudo_size(op) / sizeof(GC_word) - 1] = d;
    return op;
}

GC_API void *GC_malloc_explicitly_typed_ignore_off_page(size_t lb, GC_descr d) {
    return GC_malloc_explicitly_typed(lb, d);
}

GC_API void *GC_calloc_explicitly_typed(size_t n, size_t lb, GC_descr d) {
    need_typed();
    if (lb != 0 && n > (SIZE_MAX - 3 * sizeof(GC_word)) / lb)
        return compat_oom(SIZE_MAX);
    size_t bytes = n * lb;
    GC_word *op = typed_alloc(typed.array_kind, bytes + 3 * sizeof(GC_word), bytes);
    if (!op || !rudo_is_heap_ptr(op))
        return op;
    GC_word *trailer = op + rudo_size(op) / sizeof(GC_word) - 3;
    /* The element size last: the trace reads a zero size as "not filled
     * in". A thread suspended by signal runs its stores in program order
     * for the collector, given the compiler keeps them in order. */
    trailer[1] = n;
    trailer[2] = d;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    trailer[0] = lb;
    return op;
}

/* ---- gcj ---- */

/* bdwgc: the descriptor lies at MARK_DESCR_OFFSET (one word) in the type
 * that word 0 points to. */
#define MARK_DESCR_OFFSET sizeof(GC_word)

GC_API void GC_init_gcj_malloc(int mp_index, void *mp) {
    compat_init();
    pthread_mutex_lock(&typed.gcj_lock);
    if (typed.gcj_ready) {
        pthread_mutex_unlock(&typed.gcj_lock);
        return;
    }
    if (mp_index < 0 || (unsigned)mp_index >= compat_kinds.nprocs) {
        pthread_mutex_unlock(&typed.gcj_lock);
        compat_warn("GC Warning: GC_init_gcj_malloc: bad mark procedure index "
                    "%lu (ignored)\n", (GC_word)mp_index);
        return;
    }
    if (mp)
        compat_kinds.procs[mp_index] = (GC_mark_proc)(uintptr_t)mp;
    GC_gcj_kind = (int)compat_new_kind(
        (GC_word)(-(GC_signed_word)MARK_DESCR_OFFSET - GC_INDIR_PER_OBJ_BIAS) |
            GC_DS_PER_OBJECT, 0, 1);
    /* bdwgc's debugging kind (objects with a debug header, marked by the
     * client's procedure with env 1); GC_debug_gcj_malloc allocates plain
     * gcj objects, so it stays empty. */
    GC_gcj_debug_kind = (int)compat_new_kind(GC_MAKE_PROC(mp_index, 1), 0, 1);
    /* Release, by the mutex: a thread that sees gcj_ready sees the kinds. */
    typed.gcj_ready = true;
    pthread_mutex_unlock(&typed.gcj_lock);
}

GC_API void *GC_gcj_malloc(size_t lb, void *vtable) {
    pthread_mutex_lock(&typed.gcj_lock);
    bool ready = typed.gcj_ready;
    pthread_mutex_unlock(&typed.gcj_lock);
    if (!ready) {
        static atomic_int once;
        compat_warn_once(&once, "GC Warning: GC_gcj_malloc before "
                                "GC_init_gcj_malloc (initialized now)\n");
        GC_init_gcj_malloc(0, NULL);
    }
    compat_enter();
    size_t sz = lb + compat.extra;
    void **op = sz >= lb ? rudo_alloc(compat_kinds.k[GC_gcj_kind].rk, sz ? sz : 1) : NULL;
    if (!op)
        return compat_oom(lb);
    op[0] = vtable;
    return op;
}

GC_API void *GC_gcj_malloc_ignore_off_page(size_t lb, void *vtable) {
    return GC_gcj_malloc(lb, vtable);
}

GC_API void *GC_debug_gcj_malloc(size_t lb, void *vtable, const char *s, int i) {
    (void)s;
    (void)i;
    return GC_gcj_malloc(lb, vtable);
}

/* ---- finalized allocation (gc_disclaim.h) ---- */

typedef void (*GC_finalization_proc)(void *obj, void *client_data);
struct GC_finalizer_closure {
    GC_finalization_proc proc;
    void *cd;
};
#define FINALIZER_CLOSURE_FLAG 1

static int finalized_disclaim(void *obj) {
    GC_word w = *(GC_word *)obj;
    if (w & FINALIZER_CLOSURE_FLAG) {
        const struct GC_finalizer_closure *fc =
            (const struct GC_finalizer_closure *)(uintptr_t)(w & ~(GC_word)FINALIZER_CLOSURE_FLAG);
        fc->proc((GC_word *)obj + 1, fc->cd);
    }
    return 0;
}

static void finalized_init(void) {
    /* bdwgc's order: the displacements (the client's pointer is one word
     * in; the tagged closure pointer), then the kind: the whole object
     * scanned, closure included. */
    rudo_register_displacement(sizeof(GC_word));
    rudo_register_displacement(FINALIZER_CLOSURE_FLAG);
    typed.finalized_kind = (int)compat_new_kind(GC_DS_LENGTH, 1, 1);
    compat_set_disclaim(typed.finalized_kind, finalized_disclaim, true);
}

GC_API void GC_init_finalized_malloc(void) {
    compat_init();
    pthread_once(&typed.fin_once, finalized_init);
}

GC_API void *GC_finalized_malloc(size_t lb, const struct GC_finalizer_closure *fc) {
    GC_init_finalized_malloc();
    compat_enter();
    size_t sz = lb + sizeof(GC_word) + compat.extra;
    GC_word *op = sz >= lb ? rudo_alloc(compat_kinds.k[typed.finalized_kind].rk, sz) : NULL;
    if (!op)
        return compat_oom(lb);
    compat_disclaim_track((unsigned)typed.finalized_kind, op);
    if (!fc) {
        static atomic_int once;
        compat_warn_once(&once, "GC Warning: GC_finalized_malloc: NULL closure "
                                "(the object is never finalized)\n");
    } else {
        op[0] = (GC_word)(uintptr_t)fc | FINALIZER_CLOSURE_FLAG;
    }
    return op + 1;
}
