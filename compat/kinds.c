/* kinds.c — bdwgc's object kinds, free lists, mark descriptors and mark
 * procedures (gc_mark.h, gc_inline.h) on rudo's kinds and tracers.
 *
 * A kind made by GC_new_kind gets a rudo kind of its own: a conservative
 * one for "the whole object" (a LENGTH descriptor of 0 with the size
 * added), an atomic one for "nothing", and otherwise a trace callback that
 * decodes the descriptor at every trace (compat_trace_descr): LENGTH scans
 * the first bytes, BITMAP exactly the words its bits name, PROC calls the
 * client's mark procedure, PER_OBJECT reads the real descriptor from the
 * object or from its type. rudo's trace callbacks are not told their
 * kind, so each kind number has a trampoline of its own (trace_k0 ..).
 *
 * Mark procedures report through GC_mark_and_push, which marks at once
 * through the tracer of the callback that called the procedure (a thread-
 * local: markers run callbacks in parallel, each with its own tracer);
 * the mark stack they are given is a small array on the caller's stack,
 * so a procedure that pushes entries itself (mse_start, mse_descr) works,
 * and those entries are scanned when it returns. */
#include "kinds.h"

#include <stdio.h>
#include <stdlib.h>

GC_API void GC_printf(const char *fmt, ...);

struct compat_kinds compat_kinds = {.nprocs = GC_RESERVED_MARK_PROCS,
                                    .typed_proc = GC_MAX_MARK_PROCS,
                                    .array_proc = GC_MAX_MARK_PROCS};

/* The tracer of the trace or root callback running on this thread, for
 * GC_mark_and_push, GC_push_all and the mark-bit calls; NULL outside. */
static __thread rudo_tracer *cur_tracer;

/* Entries a mark procedure may push itself per call; bdwgc's procedures
 * check the limit they are given, as bdwgc requires. */
#define MS_ENTRIES 64
/* How deep descriptors may lead to descriptors (PER_OBJECT to PER_OBJECT,
 * pushed entries to mark procedures); bdwgc has no bound, a bad type
 * would loop. */
#define MAX_DEPTH 8

/* ---- descriptors ---- */

static void call_proc(unsigned index, char *obj, GC_word env, rudo_tracer *tr,
                      unsigned depth) {
    GC_mark_proc mp = compat_kinds.procs[index];
    if (!mp) {
        static atomic_int once;
        compat_warn_once(&once, "GC Warning: a mark descriptor names a mark "
                              "procedure that was never registered (ignored)\n");
        return;
    }
    struct GC_ms_entry stack[MS_ENTRIES + 1];
    rudo_tracer *saved = cur_tracer;
    cur_tracer = tr;
    struct GC_ms_entry *top = mp((GC_word *)(void *)obj, stack, stack + MS_ENTRIES, env);
    cur_tracer = saved;
    if (top < stack || top > stack + MS_ENTRIES) {
        static atomic_int once;
        compat_warn_once(&once, "GC Warning: a mark procedure returned a mark "
                              "stack pointer outside its stack (ignored)\n");
        return;
    }
    /* Entries (stack, top] were pushed by the procedure itself. */
    for (struct GC_ms_entry *e = stack + 1; e <= top; e++)
        compat_trace_descr(e->mse_start, SIZE_MAX, e->mse_descr, tr, depth + 1);
}

void compat_trace_descr(char *obj, size_t size, GC_word d, rudo_tracer *tr,
                        unsigned depth) {
    if (depth > MAX_DEPTH) {
        static atomic_int once;
        compat_warn_once(&once, "GC Warning: mark descriptors nest too deep "
                              "(an object scanned conservatively)\n");
        if (size != SIZE_MAX)
            rudo_visit_range(tr, obj, obj + size);
        return;
    }
    switch (d & GC_DS_TAGS) {
    case GC_DS_LENGTH: {
        size_t len = d < size ? d : size;
        rudo_visit_range(tr, obj, obj + len);
        break;
    }
    case GC_DS_BITMAP: {
        /* Most significant bit first: word 0 is bit 63. Words past the
         * object (a bitmap longer than it) are not read. */
        void **w = (void **)(void *)obj;
        size_t nw = size / sizeof(void *);
        GC_word bits = d & ~GC_DS_TAGS;
        for (size_t i = 0; bits != 0 && i < nw; i++, bits <<= 1)
            if (bits >> 63)
                rudo_visit_value(tr, w[i]);
        break;
    }
    case GC_DS_PROC: {
        unsigned index = (unsigned)(d >> GC_DS_TAG_BITS) & (GC_MAX_MARK_PROCS - 1);
        GC_word env = d >> (GC_DS_TAG_BITS + GC_LOG_MAX_MARK_PROCS);
        if (index == compat_kinds.typed_proc)
            compat_typed_trace(env, obj, size, tr);
        else if (index == compat_kinds.array_proc)
            compat_array_trace(obj, size, tr, depth);
        else
            call_proc(index, obj, env, tr, depth);
        break;
    }
    case GC_DS_PER_OBJECT: {
        GC_word nd;
        if ((GC_signed_word)d >= 0) {
            /* At byte offset d & ~3 of the object. */
            size_t off = (size_t)(d & ~GC_DS_TAGS);
            if (size != SIZE_MAX && (off > size || size - off < sizeof(GC_word)))
                return;
            nd = *(GC_word *)(void *)(obj + off);
        } else {
            /* In the type that word 0 points to, at -(d + bias - 3). */
            char *type = *(char **)(void *)obj;
            if (!type)
                return;
            nd = *(GC_word *)(void *)(type - ((GC_signed_word)d +
                                              (GC_INDIR_PER_OBJ_BIAS - GC_DS_PER_OBJECT)));
        }
        if (nd != 0)
            compat_trace_descr(obj, size, nd, tr, depth + 1);
        break;
    }
    }
}

/* The trace callback of bdwgc kind k. */
static inline void trace_kind(unsigned k, void *obj, size_t size, rudo_tracer *tr) {
    const struct compat_kind *ck = &compat_kinds.k[k];
    GC_word d = ck->descr + (ck->adjust ? (GC_word)size : 0);
    compat_trace_descr(obj, size, d, tr, 0);
}

#define TRAMPOLINE(k)                                                          \
    static void trace_k##k(void *obj, size_t size, rudo_tracer *tr) {          \
        trace_kind(k, obj, size, tr);                                          \
    }
TRAMPOLINE(0) TRAMPOLINE(1) TRAMPOLINE(2) TRAMPOLINE(3) TRAMPOLINE(4)
TRAMPOLINE(5) TRAMPOLINE(6) TRAMPOLINE(7) TRAMPOLINE(8) TRAMPOLINE(9)
TRAMPOLINE(10) TRAMPOLINE(11) TRAMPOLINE(12) TRAMPOLINE(13) TRAMPOLINE(14)
TRAMPOLINE(15) TRAMPOLINE(16) TRAMPOLINE(17) TRAMPOLINE(18) TRAMPOLINE(19)
TRAMPOLINE(20) TRAMPOLINE(21) TRAMPOLINE(22) TRAMPOLINE(23)
static const rudo_trace_fn trampolines[COMPAT_MAX_KINDS] = {
    trace_k0, trace_k1, trace_k2, trace_k3, trace_k4, trace_k5,
    trace_k6, trace_k7, trace_k8, trace_k9, trace_k10, trace_k11,
    trace_k12, trace_k13, trace_k14, trace_k15, trace_k16, trace_k17,
    trace_k18, trace_k19, trace_k20, trace_k21, trace_k22, trace_k23};

/* ---- kinds and procedures ---- */

static void other_roots(rudo_tracer *tr, void *data);

void compat_kinds_init(void) {
    /* bdwgc's predefined kinds: PTRFREE, NORMAL, UNCOLLECTABLE,
     * AUNCOLLECTABLE (malloc.c keeps the uncollectable ones rooted).
     * PTRFREE objects are not cleared, as in bdwgc (GC_malloc_atomic:
     * "the object is not cleared"): a RUDO_KIND_UNINIT kind, so the
     * collector does not zero what the program overwrites anyway. */
    rudo_kind_desc ptrfree = {.name = "bdwgc-ptrfree", .tracing = RUDO_TRACE_ATOMIC};
    compat_kinds.k[GC_I_PTRFREE] =
        (struct compat_kind){.rk = rudo_kind_register_flags(&ptrfree, RUDO_KIND_UNINIT)};
    compat_kinds.k[GC_I_NORMAL] =
        (struct compat_kind){.adjust = true, .rk = RUDO_KIND_CONSERVATIVE};
    compat_kinds.k[GC_I_UNCOLLECTABLE] =
        (struct compat_kind){.adjust = true, .rk = RUDO_KIND_CONSERVATIVE};
    compat_kinds.k[GC_I_AUNCOLLECTABLE] = (struct compat_kind){.rk = RUDO_KIND_ATOMIC};
    compat_kinds.n = 4;
    /* First, alone, as bdwgc calls it before it scans the thread stacks:
     * the objects it marks with GC_set_mark_bit are then not traced when
     * a stack names them (ECL's env->stack). */
    rudo_root_callback_add_first(other_roots, NULL);
}

unsigned compat_new_kind(GC_word descr, int adjust, int clear) {
    (void)clear; /* rudo zeroes every object */
    compat_init();
    compat_lock();
    unsigned k = compat_kinds.n;
    if (k == COMPAT_MAX_KINDS) {
        compat_unlock();
        fprintf(stderr, "rudo-compat: GC_new_kind: too many kinds (bdwgc's "
                        "limit is %d)\n", COMPAT_MAX_KINDS);
        abort();
    }
    char name[32];
    snprintf(name, sizeof name, "bdwgc kind %u", k);
    struct compat_kind *ck = &compat_kinds.k[k];
    ck->descr = descr;
    ck->adjust = adjust != 0;
    if (descr == 0 && adjust)
        ck->rk = rudo_kind_conservative(name); /* the whole object */
    else if (descr == 0)
        ck->rk = rudo_kind_atomic(name); /* no words */
    else
        ck->rk = rudo_kind_traced(name, trampolines[k]);
    compat_kinds.n = k + 1;
    compat_unlock();
    return k;
}

unsigned compat_new_proc(GC_mark_proc proc) {
    compat_lock();
    unsigned i = compat_kinds.nprocs;
    if (i == GC_MAX_MARK_PROCS) {
        compat_unlock();
        fprintf(stderr, "rudo-compat: GC_new_proc: too many mark procedures "
                        "(bdwgc's limit is %u)\n", GC_MAX_MARK_PROCS);
        abort();
    }
    compat_kinds.procs[i] = proc;
    compat_kinds.nprocs = i + 1;
    compat_unlock();
    return i;
}

/* bdwgc's free lists are arrays of MAXOBJGRANULES + 1 heads, one per
 * size in granules. rudo allocates from its own per-thread lists, so the
 * array stays empty: a client that reads it finds no object and calls
 * the allocator. Like bdwgc's, it lives in the collected heap; it is
 * uncollectable here, as it lives as long as its kind (for ever). */
#define FREE_LIST_HEADS 129
GC_API void *GC_malloc_atomic_uncollectable(size_t n);
GC_API void **GC_new_free_list_inner(void) {
    return GC_malloc_atomic_uncollectable(FREE_LIST_HEADS * sizeof(void *));
}
GC_API void **GC_new_free_list(void) { return GC_new_free_list_inner(); }

static unsigned new_kind_checked(void **fl, GC_word descr, int adjust, int clear) {
    if (!fl) {
        static atomic_int once;
        compat_warn_once(&once, "GC Warning: GC_new_kind: NULL free list "
                                "(accepted: rudo does not use it)\n");
    }
    return compat_new_kind(descr, adjust, clear);
}
GC_API unsigned GC_new_kind_inner(void **fl, GC_word descr, int adjust, int clear) {
    return new_kind_checked(fl, descr, adjust, clear);
}
GC_API unsigned GC_new_kind(void **fl, GC_word descr, int adjust, int clear) {
    return new_kind_checked(fl, descr, adjust, clear);
}
GC_API unsigned GC_new_proc_inner(GC_mark_proc proc) { return compat_new_proc(proc); }
GC_API unsigned GC_new_proc(GC_mark_proc proc) { return compat_new_proc(proc); }

/* ---- allocation ---- */

static bool valid_kind(int k, const char *who) {
    if (k >= 0 && (unsigned)k < compat_kinds.n)
        return true;
    compat_warn(who, (GC_word)k);
    return false;
}

/* An object of kind k >= 4 (a made kind) of exactly sz bytes. */
static void *alloc_made(int k, size_t sz) {
    compat_enter();
    void *p = rudo_alloc(compat_kinds.k[k].rk, sz);
    compat_disclaim_track((unsigned)k, p);
    return p;
}

void *compat_kind_alloc(size_t n, int k) {
    compat_init();
    if (!valid_kind(k, "GC Warning: GC_generic_malloc: unknown kind %lu (NULL)\n"))
        return NULL;
    if (k < 4)
        return GC_generic_malloc(n, k);
    size_t sz = n + compat.extra;
    void *p = sz >= n ? alloc_made(k, sz ? sz : 1) : NULL;
    return p ? p : compat_oom(n);
}

/* The most objects one GC_generic_malloc_many call hands out: about a
 * bdwgc block's worth (4 KiB), at most 256. */
#define MANY_BYTES 4096
#define MANY_MAX 256

GC_API void GC_generic_malloc_many(size_t lb, int k, void **result) {
    if (!result) {
        static atomic_int once;
        compat_warn_once(&once, "GC Warning: GC_generic_malloc_many: NULL "
                                "result pointer (ignored)\n");
        return;
    }
    compat_init();
    if (!valid_kind(k, "GC Warning: GC_generic_malloc_many: unknown kind %lu (NULL)\n")) {
        *result = NULL;
        return;
    }
    /* bdwgc asks for a multiple of the granule and adds no extra byte
     * here (gc_inline.h adds its own); larger objects come one at a time
     * from GC_generic_malloc, which does. */
    size_t sz = lb == 0 ? RUDO_GRANULE : lb;
    if (sz > RUDO_SMALL_MAX) {
        void *op = compat_kind_alloc(lb, k);
        if (op && rudo_is_heap_ptr(op))
            *(void **)op = NULL;
        *result = op;
        return;
    }
    sz = (sz + RUDO_GRANULE - 1) & ~(size_t)(RUDO_GRANULE - 1);
    size_t want = MANY_BYTES / sz;
    if (want == 0)
        want = 1;
    if (want > MANY_MAX)
        want = MANY_MAX;
    /* The objects stay in this array, on the scanned stack, until they
     * are linked: a collection during the loop (each allocation is a
     * safepoint) sees them all, pointer-free ones included. From then on
     * the caller keeps them (gc_inline.h: it must trace the list, even
     * of pointer-free objects). */
    void *objs[MANY_MAX];
    size_t n = 0;
    while (n < want) {
        void *op;
        if (k >= 4)
            op = alloc_made(k, sz);
        else if (k == GC_I_NORMAL || k == GC_I_PTRFREE) {
            compat_enter();
            op = rudo_alloc(compat_kinds.k[k].rk, sz);
        } else
            op = GC_generic_malloc(sz - compat.extra, k); /* uncollectable */
        if (!op)
            break;
        objs[n++] = op;
    }
    for (size_t i = 0; i + 1 < n; i++)
        *(void **)objs[i] = objs[i + 1];
    if (n)
        *(void **)objs[n - 1] = NULL;
    *result = n ? objs[0] : NULL;
}

GC_API void *GC_malloc_many(size_t lb) {
    void *result;
    size_t sz = lb + compat.extra;
    GC_generic_malloc_many(sz >= lb ? sz : lb, GC_I_NORMAL, &result);
    return result;
}

GC_API int GC_get_kind_and_size(const void *p, size_t *psize) {
    compat_init();
    void *base = p ? rudo_base(p) : NULL;
    if (!base) {
        static atomic_int once;
        compat_warn_once(&once, "GC Warning: GC_get_kind_and_size: not a heap "
                                "object (-1)\n");
        return -1;
    }
    if (psize)
        *psize = rudo_size(base);
    rudo_kind rk = rudo_kind_of(base);
    if (rk == RUDO_KIND_CONSERVATIVE)
        return compat_is_uncollectable(base) ? GC_I_UNCOLLECTABLE : GC_I_NORMAL;
    if (rk == compat_kinds.k[GC_I_PTRFREE].rk)
        return GC_I_PTRFREE;
    if (rk == RUDO_KIND_ATOMIC)
        return compat_is_uncollectable(base) ? GC_I_AUNCOLLECTABLE : GC_I_PTRFREE;
    unsigned n = compat_kinds.n;
    for (unsigned k = 4; k < n; k++)
        if (compat_kinds.k[k].rk == rk)
            return (int)k;
    return -1; /* a rudo kind no bdwgc kind maps to (not reached) */
}

GC_API void GC_print_free_list(int k, size_t lg) {
    GC_printf("Free list %d (kind %d): none: rudo's libgc.so.1 allocates "
              "from per-thread lists of its own\n", (int)lg, k);
}

GC_API void GC_register_describe_type_fn(int k, GC_describe_type_fn fn) {
    compat_init();
    if (!valid_kind(k, "GC Warning: GC_register_describe_type_fn: unknown kind %lu\n"))
        return;
    compat_lock();
    compat_kinds.k[k].describe = fn; /* stored: nothing prints objects */
    compat_unlock();
}

/* ---- disclaim ----
 * With mark_unconditionally (bdwgc's mark_from_all) bdwgc marks from
 * every object of the kind, unreachable ones too: whatever a dead object
 * references is marked, so it is neither disclaimed nor reclaimed in that
 * cycle, and only objects that no other dying object of the kind
 * references are disclaimed (while sweeping). That is rudo's ordered
 * finalization, cycles included (a cycle, or an object that points to
 * itself, is kept for ever in both), so each object of such a kind gets
 * an ordered per-object finalizer when it is allocated (a kind finalizer
 * is unordered: a pair's car, dying with it, could be disclaimed first).
 * Objects allocated before the procedure was registered are not
 * disclaimed. Without mark_unconditionally the procedure is the rudo
 * kind's finalizer (unordered; rudo still keeps what a dying object
 * references, for that collection).
 *
 * The procedure runs after the collection, on the thread that collected,
 * while the program runs: bdwgc's GC_set_mark_bit on an object waiting to
 * be disclaimed (a weak map handing it out again) keeps it, and the
 * procedure sees it as marked through GC_is_marked. So GC_set_mark_bit,
 * outside marking, on an object of an ordered disclaim kind that has no
 * registration (it was found unreachable and is waiting) records it in
 * `disclaim_marks`; GC_is_marked on the object being disclaimed answers
 * from that record, which the disclaim consumes. A nonzero result keeps
 * the object: it is registered again. */

/* The set of waiting objects marked since they were found unreachable:
 * open addressing, NULL empty, TOMB removed. Under marks_lock (a leaf). */
#define MARKS_TOMB ((void *)1)
static struct {
    pthread_mutex_t lock;
    void **slot;
    size_t cap, used; /* used counts tombs */
} disclaim_marks = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};

/* The object whose disclaim procedure runs on this thread, or NULL. */
static __thread void *cur_disclaim;

static size_t marks_probe(void *obj, bool insert) {
    size_t mask = disclaim_marks.cap - 1;
    size_t i = (size_t)(((uintptr_t)obj >> 4) * 0x9E3779B97F4A7C15u) & mask;
    size_t tomb = SIZE_MAX;
    for (;;) {
        void *o = disclaim_marks.slot[i];
        if (o == NULL)
            return insert && tomb != SIZE_MAX ? tomb : i;
        if (o == MARKS_TOMB) {
            if (tomb == SIZE_MAX)
                tomb = i;
        } else if (o == obj) {
            return i;
        }
        i = (i + 1) & mask;
    }
}

static void marks_add(void *obj) {
    pthread_mutex_lock(&disclaim_marks.lock);
    if ((disclaim_marks.used + 1) * 2 > disclaim_marks.cap) {
        void **old = disclaim_marks.slot;
        size_t old_cap = disclaim_marks.cap;
        size_t cap = old_cap ? old_cap * 2 : 64;
        void **n = calloc(cap, sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&disclaim_marks.lock);
            static atomic_int once;
            compat_warn_once(&once, "GC Warning: GC_set_mark_bit: out of memory "
                                    "(the mark is not kept)\n");
            return;
        }
        disclaim_marks.slot = n;
        disclaim_marks.cap = cap;
        disclaim_marks.used = 0;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i] && old[i] != MARKS_TOMB) {
                n[marks_probe(old[i], true)] = old[i];
                disclaim_marks.used++;
            }
        free(old);
    }
    size_t i = marks_probe(obj, false);
    if (disclaim_marks.slot[i] != obj) {
        i = marks_probe(obj, true);
        if (disclaim_marks.slot[i] == NULL)
            disclaim_marks.used++;
        disclaim_marks.slot[i] = obj;
    }
    pthread_mutex_unlock(&disclaim_marks.lock);
}

/* Whether obj is in the set; take removes it. */
static bool marks_has(void *obj, bool take) {
    pthread_mutex_lock(&disclaim_marks.lock);
    bool found = false;
    if (disclaim_marks.cap) {
        size_t i = marks_probe(obj, false);
        found = disclaim_marks.slot[i] == obj;
        if (found && take)
            disclaim_marks.slot[i] = MARKS_TOMB;
    }
    pthread_mutex_unlock(&disclaim_marks.lock);
    return found;
}

static void disclaim_fin(void *obj, void *data);

static int disclaim_register(unsigned k, void *obj) {
    void *data = (void *)(uintptr_t)k;
    return compat_kinds.k[k].disclaim_ordered
               ? rudo_finalizer_register_ordered(obj, disclaim_fin, data)
               : rudo_finalizer_register(obj, disclaim_fin, data);
}

static void disclaim_fin(void *obj, void *data) {
    unsigned k = (unsigned)(uintptr_t)data;
    GC_disclaim_proc proc = compat_kinds.k[k].disclaim;
    if (!proc)
        return;
    void *saved = cur_disclaim;
    cur_disclaim = obj;
    int keep = proc(obj);
    cur_disclaim = saved;
    if (compat_kinds.k[k].disclaim_ordered)
        (void)marks_has(obj, true); /* consumed: the next cycle starts afresh */
    if (keep != 0 && disclaim_register(k, obj) != RUDO_OK) {
        static atomic_int once;
        compat_warn_once(&once, "GC Warning: a disclaim procedure kept an "
                                "object that has a finalizer: it is not "
                                "disclaimed again\n");
    }
}

void compat_disclaim_track(unsigned k, void *obj) {
    /* Plain reads: the procedure is registered before the kind's objects
     * are allocated (as bdwgc requires), and a kind's entry is not
     * changed afterwards. */
    if (obj && compat_kinds.k[k].disclaim && compat_kinds.k[k].disclaim_ordered)
        (void)disclaim_register(k, obj); /* a new object: not registered */
}

void compat_set_disclaim(int k, GC_disclaim_proc proc, bool mark_from_all) {
    compat_init();
    if (!valid_kind(k, "GC Warning: GC_register_disclaim_proc: unknown kind %lu\n"))
        return;
    compat_lock();
    compat_kinds.k[k].disclaim = proc;
    compat_kinds.k[k].disclaim_ordered = proc && mark_from_all;
    compat_unlock();
    rudo_kind_set_finalizer(compat_kinds.k[k].rk,
                            proc && !mark_from_all ? disclaim_fin : NULL,
                            (void *)(uintptr_t)k);
}

GC_API void GC_register_disclaim_proc(int k, GC_disclaim_proc proc, int mark_from_all) {
    compat_set_disclaim(k, proc, mark_from_all != 0);
}

/* The bdwgc kind of the made kind rk, or 0 if none. */
static unsigned made_kind_of(rudo_kind rk) {
    unsigned n = compat_kinds.n;
    for (unsigned k = 4; k < n; k++)
        if (compat_kinds.k[k].rk == rk)
            return k;
    return 0;
}

/* GC_set_mark_bit outside marking (see above). */
static void disclaim_set_mark(void *base) {
    unsigned k = made_kind_of(rudo_kind_of(base));
    if (k == 0 || !compat_kinds.k[k].disclaim_ordered)
        return;
    if (rudo_finalizer_unregister(base) == RUDO_OK) {
        /* Registered: not found unreachable; nothing to record. */
        (void)disclaim_register(k, base);
        return;
    }
    marks_add(base);
}

/* ---- marking from client code ---- */

static rudo_tracer *tracer_for(const char *who) {
    rudo_tracer *tr = cur_tracer;
    if (!tr) {
        static atomic_int once;
        compat_warn_once(&once, who);
    }
    return tr;
}

GC_API struct GC_ms_entry *GC_mark_and_push(void *obj, struct GC_ms_entry *msp,
                                            struct GC_ms_entry *msl, void **src) {
    (void)msl;
    (void)src;
    rudo_tracer *tr = tracer_for("GC Warning: GC_mark_and_push called outside "
                                 "a mark procedure (ignored)\n");
    if (tr)
        rudo_visit_value(tr, obj);
    return msp;
}

static void push_range(void *bottom, void *top, const char *who) {
    rudo_tracer *tr = tracer_for(who);
    if (tr)
        rudo_visit_range(tr, bottom, top);
}
GC_API void GC_push_all(void *bottom, void *top) {
    push_range(bottom, top, "GC Warning: GC_push_all called outside marking "
                            "(ignored)\n");
}
GC_API void GC_push_all_eager(void *bottom, void *top) {
    push_range(bottom, top, "GC Warning: GC_push_all_eager called outside "
                            "marking (ignored)\n");
}
GC_API void GC_push_conditional(void *bottom, void *top, int all) {
    (void)all; /* no incremental mode: every page counts as dirty */
    push_range(bottom, top, "GC Warning: GC_push_conditional called outside "
                            "marking (ignored)\n");
}

/* Mark bits: during marking (from a mark procedure, GC_push_other_roots
 * or a disclaim procedure's marking) the running collection's; outside,
 * every allocated object counts as marked (it survived the last
 * collection or was allocated since). */
GC_API int GC_is_marked(const void *p) {
    rudo_tracer *tr = cur_tracer;
    if (tr)
        return rudo_visit_is_marked(tr, p);
    compat_init();
    if (!rudo_is_heap_ptr(p))
        return 0;
    /* The object being disclaimed is unmarked unless GC_set_mark_bit
     * kept it since it was found unreachable. */
    void *base = cur_disclaim ? rudo_base(p) : NULL;
    if (base && base == cur_disclaim)
        return marks_has(base, false) ? 1 : 0;
    return 1;
}
GC_API void GC_set_mark_bit(const void *p) {
    /* During marking, the object alone, as bdwgc: ECL marks its
     * interpreter stacks so and pushes only their live part, [stack,
     * top); tracing them whole kept whatever the stale words above the
     * top named. Outside marking it only matters to an object waiting for
     * its disclaim procedure ("disclaim" above); for the others the next
     * collection decides. */
    rudo_tracer *tr = cur_tracer;
    if (tr) {
        rudo_visit_mark_only(tr, p);
        return;
    }
    compat_init();
    void *base = rudo_is_heap_ptr(p) ? rudo_base(p) : NULL;
    if (base)
        disclaim_set_mark(base);
}
GC_API void GC_clear_mark_bit(const void *p) {
    (void)p;
    static atomic_int once;
    compat_warn_once(&once, "GC Warning: GC_clear_mark_bit has no effect on "
                            "rudo (a mark is never taken back)\n");
}

/* ---- GC_push_other_roots ----
 * ECL assigns the variable directly, so it is read afresh at every
 * collection, by a root callback registered at initialization. */
void compat_default_push_other_roots(void) {}

static void other_roots(rudo_tracer *tr, void *data) {
    (void)data;
    /* A plain read: mutators are stopped, and the stop handshake orders
     * their last store before this load. */
    void (*fn)(void) = GC_push_other_roots;
    if (!fn || fn == compat_default_push_other_roots)
        return;
    rudo_tracer *saved = cur_tracer;
    cur_tracer = tr;
    fn();
    cur_tracer = saved;
}

GC_API void GC_set_push_other_roots(GC_push_other_roots_proc fn) {
    GC_push_other_roots = fn;
}
GC_API GC_push_other_roots_proc GC_get_push_other_roots(void) {
    return GC_push_other_roots;
}
