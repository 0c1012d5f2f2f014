/* mark.c — marking an object and tracing it by kind, and the mark phase.
 *
 * An object is traced once: only the marker whose fetch-or set its mark bit
 * queues it (on its own deque, or in the inbox of the marker that owns its
 * page). When a deque cannot grow (no memory), the object stays marked and
 * its page is flagged `overflow`; after the parallel phase, flagged pages
 * are scanned for marked cells, which are traced again (a second trace is
 * harmless: the children are marked already or get marked now). Only
 * flagged pages are rescanned, never the heap. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "mark/mark.h"
#include "platform/platform.h"
#include "threads/threads.h"

#define STACK_INITIAL 1024

void rudo__mark_fail_growth(unsigned n) {
    rudo__need_heap("rudo__mark_fail_growth")->mark.fail_growths = n;
}

/* The size private stacks start at: the last collection's high water. */

/* Around a trace or root callback: says which, for the collector's report
 * on a marker that does not finish (parallel.c). Relaxed: a label. */
static inline void callback_begin(rudo__marker *mk, const char *what) {
    atomic_store_explicit(&mk->in_callback, what, memory_order_relaxed);
}
static inline void callback_end(rudo__marker *mk) {
    atomic_store_explicit(&mk->in_callback, NULL, memory_order_relaxed);
}

static size_t stack_hint(const rudo__heap *h) {
    return h->mark.stack_hint ? h->mark.stack_hint : STACK_INITIAL;
}

/* Sets the mark bit of cell i; true if this call set it. Relaxed: the bit
 * is only a claim token. The object's contents were published to the
 * markers by the stop-the-world handshake and the pool's start signal
 * (mutexes), not by the bit. A lone marker needs no read-modify-write. */
static inline bool set_mark(rudo__marker *mk, rudo__page *p, size_t i) {
    _Atomic uint64_t *w = &p->bits[i / 64].mark;
    uint64_t bit = (uint64_t)1 << (i % 64);
    uint64_t old = atomic_load_explicit(w, memory_order_relaxed);
    if (old & bit)
        return false;
    if (mk->single) {
        atomic_store_explicit(w, old | bit, memory_order_relaxed);
        return true;
    }
    return !(atomic_fetch_or_explicit(w, bit, memory_order_relaxed) & bit);
}

static void defer(rudo__marker *mk, rudo__page *p) {
    /* Relaxed: read after the markers are joined (pool lock). */
    __atomic_store_n(&p->overflow, 1, __ATOMIC_RELAXED);
    atomic_store_explicit(&mk->h->mark.overflowed, true, memory_order_relaxed);
    mk->st.overflows++;
}

/* Makes room for one more push: reuses the space that sharing freed at the
 * bottom once it is half the stack (so compaction is amortised O(1)),
 * otherwise doubles the stack. */
static bool grow_local(rudo__marker *mk) {
    if (mk->local_lo && mk->local_lo >= mk->local_cap / 2) {
        size_t n = mk->local_n - mk->local_lo;
        memmove(mk->local, mk->local + mk->local_lo, n * sizeof *mk->local);
        mk->local_lo = 0;
        mk->local_n = n;
        return true;
    }
    if (mk->h->mark.fail_growths)
        return false;
    size_t cap = mk->local_cap ? mk->local_cap * 2 : stack_hint(mk->h);
    void **n = rudo__meta_realloc_n(mk->local, cap, sizeof *n);
    if (!n)
        return false;
    mk->local = n;
    mk->local_cap = cap;
    mk->st.deque_growths++;
    return true;
}

static inline void push(rudo__marker *mk, void *obj, rudo__page *p) {
    if (RUDO_LIKELY(mk->local_n < mk->local_cap) || grow_local(mk)) {
        mk->local[mk->local_n++] = obj;
        if (RUDO_UNLIKELY(mk->local_n - mk->local_lo > mk->local_high))
            mk->local_high = mk->local_n - mk->local_lo;
        return;
    }
    /* The private stack cannot grow: the shared deque may still have room. */
    if (RUDO_UNLIKELY(mk->h->mark.fail_growths))
        rudo__deque_fail_next_growth(&mk->dq);
    if (!rudo__deque_push(&mk->dq, obj))
        defer(mk, p);
}

/* rudo__marker.note */
#define NOTE_WAKE 1u
#define NOTE_RECORD 2u

/* Ephemeron fixpoint: an object was marked on page p, which holds keys of
 * pending ephemerons: the fixpoint looks at them again (serial). */
static void wake_page(rudo__heap *h, rudo__page *p) {
    p->ephem = 2;
    struct rudo__mark_state *s = &h->mark;
    if (s->nwoken == s->cap_woken)
        s->woken = rudo__grow(s->woken, &s->cap_woken, sizeof *s->woken, 64,
                               "rudo_collect", "out of memory for the ephemeron fixpoint");
    s->woken[s->nwoken++] = (size_t)(p - h->pages);
}

/* Cell obj of page p was just marked while mk->note is set (serial). */
static __attribute__((noinline)) void note_mark(rudo__marker *mk, char *obj, rudo__page *p) {
    if ((mk->note & NOTE_WAKE) && p->ephem == 1)
        wake_page(mk->h, p);
    if (mk->note & NOTE_RECORD) {
        if (mk->nrecorded == mk->cap_recorded)
            mk->recorded = rudo__grow(mk->recorded, &mk->cap_recorded, sizeof *mk->recorded,
                                      256, "rudo_collect", "out of memory for weak fields");
        mk->recorded[mk->nrecorded++] = obj;
    }
}

/* Marks cell i of page p, whose base is obj (found by one of the lookups
 * below), and queues it to be traced. */
static inline __attribute__((always_inline)) void
mark_cell(rudo__marker *mk, char *obj, rudo__page *p, size_t i) {
    /* Only allocated cells are marked (alloc is exact now: heap.h). */
    if (!rudo__allocated(p, i) || !set_mark(mk, p, i))
        return;
    RUDO_ASSERT(p->type == RUDO_PAGE_SMALL || p->type == RUDO_PAGE_LARGE);
    mk->st.objects_marked++;
    if (RUDO_UNLIKELY(mk->note))
        note_mark(mk, obj, p);
    if (p->noscan) /* an atomic kind: nothing to trace */
        return;
    rudo__mark_pool *pool = mk->pool;
    if (pool->route) {
        unsigned dest = p->owner % pool->n;
        if (dest != mk->id) {
            mk->ops->send(mk, dest, obj);
            return;
        }
    }
    push(mk, obj, p);
}

/* A word that may point anywhere inside an object. */
static inline __attribute__((always_inline)) void mark_value(rudo__marker *mk,
                                                             void *v) {
    rudo__page *p;
    size_t i;
    /* The common word is an object's base. Then the queued value is v
     * itself, chosen by a branch the processor predicts, not the base
     * computed from v (page, reciprocal multiply, cell size multiply):
     * on a dependent chain (a list) the next object's address is then
     * ready as soon as its word is loaded, and the base computation leaves
     * the critical path. `same` is v hidden from the compiler (an empty
     * asm), and the branch compares obj with v, not with same: otherwise
     * the compiler substitutes obj for same in the taken branch and merges
     * the two calls into one with the data dependency again
     * (docs/performance.md, "Queueing the loaded word"). */
    void *same = v;
    __asm__("" : "+r"(same));
    char *obj = rudo__cell_of(mk->h, v, &p, &i);
    if (!obj)
        return;
    if (RUDO_LIKELY(obj == (char *)v))
        mark_cell(mk, (char *)same, p, i);
    else
        mark_cell(mk, obj, p, i);
}

/* A slot of a RUDO_KIND_BASE_ONLY kind: only an object's base counts. */
static inline __attribute__((always_inline)) void mark_base(rudo__marker *mk,
                                                            void *v) {
    rudo__page *p;
    size_t i;
    char *obj = rudo__cell_of_base(mk->h, v, &p, &i);
    if (obj)
        mark_cell(mk, obj, p, i);
}

/* A conservative word without interior pointers (interior_pointers
 * false): an object's base, or its base plus a registered displacement. */
static inline __attribute__((always_inline)) void
mark_displaced(rudo__marker *mk, void *v) {
    rudo__page *p;
    size_t i;
    char *obj = rudo__cell_of(mk->h, v, &p, &i);
    if (!obj)
        return;
    size_t d = (size_t)((char *)v - obj);
    if (d != 0 && (d >= RUDO_DISPLACEMENT_MAX ||
                   !((mk->h->displacements[d / 64] >> (d % 64)) & 1)))
        return;
    mark_cell(mk, obj, p, i);
}

void rudo__mark_push(rudo__marker *mk, void *obj) {
    rudo__page *p = rudo__head_page_of(mk->h, obj);
    push(mk, obj, p);
}

/* Conservative scan of [lo, hi): every aligned word may be a pointer. Not
 * instrumented by sanitizers: it reads stacks (with redzones) and memory
 * other threads may write (blocked threads' stacks, static data) by
 * design; a stale word only retains an object longer. */
__attribute__((no_sanitize_address, no_sanitize_thread)) static void
scan_range(rudo__marker *mk, void *lo, void *hi) {
    uintptr_t a = ((uintptr_t)lo + sizeof(void *) - 1) & ~(uintptr_t)(sizeof(void *) - 1);
    if (RUDO_UNLIKELY(!mk->h->cfg.interior_pointers)) {
        for (void **w = (void **)a; (char *)(w + 1) <= (char *)hi; w++)
            mark_displaced(mk, *w);
        return;
    }
    for (void **w = (void **)a; (char *)(w + 1) <= (char *)hi; w++)
        mark_value(mk, *w);
}

/* Processes the slots a trace callback reported. */
static void flush_slots(rudo_tracer *tr) {
    rudo__marker *mk = (rudo__marker *)tr;
    void ***end = mk->tr.rudo__cur;
    mk->tr.rudo__cur = mk->slotbuf;
    if (RUDO_UNLIKELY(mk->base_only_slots)) {
        for (void ***s = mk->slotbuf; s < end; s++)
            mark_base(mk, **s);
        return;
    }
    for (void ***s = mk->slotbuf; s < end; s++)
        mark_value(mk, **s);
}

void rudo__tracer_flush(rudo_tracer *tr) { tr->rudo__flush(tr); }

/* rudo_visit_value: a conservative word (the heap's interior-pointer
 * rule), marked at once; nothing references a slot afterwards. */
static void value_visit(rudo_tracer *tr, void *v) {
    rudo__marker *mk = (rudo__marker *)tr;
    if (RUDO_UNLIKELY(!mk->h->cfg.interior_pointers))
        mark_displaced(mk, v);
    else
        mark_value(mk, v);
}

/* rudo_visit_range: as a conservative root range. */
static void range_visit(rudo_tracer *tr, void *lo, void *hi) {
    scan_range((rudo__marker *)tr, lo, hi);
}

/* rudo_visit_mark_only: the mark bit alone; nothing is queued, so the
 * object is never traced in this collection (bdwgc's GC_set_mark_bit:
 * ECL marks its interpreter stack so, and scans only its live part). */
static void mark_only_visit(rudo_tracer *tr, const void *p) {
    rudo__marker *mk = (rudo__marker *)tr;
    rudo__page *pg;
    size_t i;
    char *obj = rudo__cell_of(mk->h, p, &pg, &i);
    if (!obj || !rudo__allocated(pg, i) || !set_mark(mk, pg, i))
        return;
    mk->st.objects_marked++;
    if (RUDO_UNLIKELY(mk->note))
        note_mark(mk, obj, pg);
}

bool rudo_visit_is_marked(rudo_tracer *tr, const void *p) {
    (void)tr; /* any tracer: the bits are the heap's */
    rudo__heap *h = rudo__the_heap;
    rudo__page *pg;
    size_t i;
    if (!h || !rudo__cell_of(h, p, &pg, &i))
        return false;
    return rudo__marked(pg, i);
}

static void drain_overflow(rudo__marker *mk);

/* rudo_visit_weak: keeps the slot for rudo__mark_weak_clear. */
static void weak_slot(rudo_tracer *tr, void **slot) {
    rudo__marker *mk = (rudo__marker *)tr;
    if (mk->nweak == mk->cap_weak)
        mk->weak = rudo__grow(mk->weak, &mk->cap_weak, sizeof *mk->weak, 256,
                               "rudo_collect", "out of memory for weak slots");
    mk->weak[mk->nweak++] = slot;
}

static int cmp_pending(const void *a, const void *b) {
    size_t x = ((const struct rudo__pending *)a)->page;
    size_t y = ((const struct rudo__pending *)b)->page;
    return x < y ? -1 : x > y;
}

/* Looks at pending ephemeron e once: marks its value (and what that
 * reaches) if its key is marked now, and returns true; false if it still
 * waits. */
static bool try_ephemeron(rudo__heap *h, rudo__marker *mk0, rudo_ephemeron *e) {
    if (rudo__unmarked_cell(h, e->key))
        return false;
    if (e->value) {
        mark_value(mk0, e->value);
        rudo__mark_drain(mk0);
        drain_overflow(mk0);
    }
    return true;
}

void rudo__mark_ephemerons(rudo__heap *h) {
    rudo__marker *mk0 = h->pool->m[0];
    struct rudo__mark_state *s = &h->mark;
    /* docs/marking.md, "Ephemerons". Every pending entry is looked at once
     * (keys may have been marked since they were queued, by other markers
     * or by the marking since); those still waiting are kept sorted by
     * their key's page, and the pages flagged. From then on, while the
     * collector marks, marking an object on a flagged page wakes that page
     * (wake_page), and only the entries of woken pages are looked at
     * again. Values traced meanwhile may queue new ephemerons on the
     * collector's list: each is looked at once and joins the sorted set.
     * It ends when no page is woken and no entry is new: no waiting key
     * can have been marked since its entry was last looked at. */
    s->npending = 0;
    s->nwoken = 0;
    mk0->note |= NOTE_WAKE;
    for (;;) {
        /* New entries (all of them, the first time): look once, keep the
         * waiting ones. */
        size_t before = s->npending;
        for (unsigned m = 0; m < h->pool->n; m++) {
            rudo__marker *mk = h->pool->m[m];
            /* try_ephemeron may append to mk0's list: nephem is read
             * afresh, and entries are taken from the end. */
            while (mk->nephem > 0) {
                rudo_ephemeron *e = mk->ephem[--mk->nephem];
                if (try_ephemeron(h, mk0, e))
                    continue;
                if (s->npending == s->cap_pending)
                    s->pending = rudo__grow(s->pending, &s->cap_pending, sizeof *s->pending, 256,
                                           "rudo_collect", "out of memory for the ephemeron fixpoint");
                /* Flagged at once: a mark on the page from here on wakes
                 * it; marks before were seen by the look just taken. */
                rudo__page *p = rudo__head_page_of(h, e->key);
                if (p->ephem == 0)
                    p->ephem = 1;
                s->pending[s->npending++] = (struct rudo__pending){(size_t)(p - h->pages), e};
            }
        }
        /* Sorted before any woken page is looked at (the wakes of this
         * batch are only queued). */
        if (s->npending > before)
            rudo__sort(s->pending, s->npending, sizeof *s->pending, cmp_pending);
        if (s->nwoken == 0 && mk0->nephem == 0)
            break;
        /* Woken pages: look again at their entries only. */
        while (s->nwoken > 0) {
            size_t page = s->woken[--s->nwoken];
            h->pages[page].ephem = 1;
            size_t lo = 0, hi = s->npending;
            while (lo < hi) { /* the first entry of the page */
                size_t mid = lo + (hi - lo) / 2;
                if (s->pending[mid].page < page)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            for (size_t i = lo; i < s->npending && s->pending[i].page == page; i++)
                if (s->pending[i].e && try_ephemeron(h, mk0, s->pending[i].e))
                    s->pending[i].e = NULL;
        }
    }
    mk0->note &= (uint8_t)~NOTE_WAKE;
    /* The entries still waiting go back to the collector's list (for the
     * next fixpoint and for clearing); the pages forget their flags. */
    size_t keep = 0;
    for (size_t i = 0; i < s->npending; i++) {
        h->pages[s->pending[i].page].ephem = 0;
        if (s->pending[i].e)
            s->pending[keep++] = s->pending[i];
    }
    for (size_t i = 0; i < keep; i++) {
        if (mk0->nephem == mk0->cap_ephem)
            mk0->ephem = rudo__grow(mk0->ephem, &mk0->cap_ephem, sizeof *mk0->ephem, 256,
                                   "rudo_collect", "out of memory for pending ephemerons");
        mk0->ephem[mk0->nephem++] = s->pending[i].e;
    }
    s->npending = 0;
}

uint64_t rudo__mark_ephemerons_clear(rudo__heap *h) {
    uint64_t cleared = 0;
    for (unsigned m = 0; m < h->pool->n; m++) {
        rudo__marker *mk = h->pool->m[m];
        for (size_t i = 0; i < mk->nephem; i++) {
            mk->ephem[i]->key = NULL;
            mk->ephem[i]->value = NULL;
            cleared++;
        }
        mk->nephem = 0;
    }
    return cleared;
}

/* Sets (on) or clears the mark bits of the objects mk recorded. */
static void set_recorded(rudo__heap *h, const rudo__marker *mk, bool on) {
    for (size_t k = 0; k < mk->nrecorded; k++) {
        rudo__page *p = NULL;
        size_t i = 0;
        rudo__cell_of(h, mk->recorded[k], &p, &i);
        _Atomic uint64_t *w = &p->bits[i / 64].mark;
        uint64_t bit = (uint64_t)1 << (i % 64);
        uint64_t v = atomic_load_explicit(w, memory_order_relaxed);
        atomic_store_explicit(w, on ? v | bit : v & ~bit, memory_order_relaxed);
    }
}

/* The weak fields are judged by the short rule (rudo.h, rudo_visit_weak):
 * by the closure from the roots. The first call (step 2 of docs/design.md,
 * "Weak references") judges the fields reported so far and starts
 * recording what the collector marks from then on: finalization marks the
 * objects due and what they reach, and traces them, which reports their
 * weak fields. The second call (step 4) judges those with the recorded
 * marks cleared meanwhile, so that a field whose target only finalization
 * kept is cleared too (the finalizers of both find it NULL), then sets
 * them again. The world is stopped and the collector marks alone. */
uint64_t rudo__mark_weak_clear(rudo__heap *h) {
    rudo__marker *mk0 = h->pool->m[0];
    bool after = mk0->weak_pass++ > 0;
    bool fresh = false;
    for (unsigned m = 0; m < h->pool->n; m++)
        fresh |= h->pool->m[m]->weak_done < h->pool->m[m]->nweak;
    bool unmark = after && fresh && mk0->nrecorded > 0;
    if (unmark)
        set_recorded(h, mk0, false);
    uint64_t cleared = 0;
    for (unsigned m = 0; m < h->pool->n; m++) {
        rudo__marker *mk = h->pool->m[m];
        for (size_t i = mk->weak_done; i < mk->nweak; i++) {
            void **slot = mk->weak[i];
            if (*slot && rudo__unmarked_cell(h, *slot)) {
                *slot = NULL;
                cleared++;
            }
        }
        mk->weak_done = mk->nweak;
    }
    if (unmark)
        set_recorded(h, mk0, true);
    if (after) {
        mk0->note &= (uint8_t)~NOTE_RECORD;
        mk0->nrecorded = 0;
    } else {
        mk0->note |= NOTE_RECORD;
    }
    return cleared;
}

/* Marks through the pointer words in [from, to) of a layout kind's object
 * at w (the layout repeats every layout_words words). */
static inline __attribute__((always_inline)) void
scan_layout(rudo__marker *mk, const rudo__kind *k, void **w, size_t from,
            size_t to, bool base_only) {
    size_t lw = k->layout_words;
    if (lw <= 64) {
        /* One bitmap word (its lw bits: the rest mean nothing, rudo.h),
         * repeated per struct; the structs cut by from and to are masked,
         * the others scanned whole. */
        uint64_t all = lw == 64 ? ~(uint64_t)0 : ((uint64_t)1 << lw) - 1;
        uint64_t lay = k->layout[0] & all;
        if (lay == all) { /* every word (an array of pointers) */
            for (size_t i = from; i < to; i++)
                if (w[i]) {
                    if (base_only)
                        mark_base(mk, w[i]);
                    else
                        mark_value(mk, w[i]);
                }
            return;
        }
        /* (from is 0 but for chunks: no division on the common path) */
        for (size_t base = from ? from - from % lw : 0; base < to; base += lw) {
            uint64_t m = lay;
            if (RUDO_UNLIKELY(base < from)) /* the first struct of a chunk */
                m &= ~(((uint64_t)1 << (from - base)) - 1);
            if (to - base < lw) /* the last struct, cut by the cell or chunk */
                m &= ((uint64_t)1 << (to - base)) - 1;
            for (; m; m &= m - 1) {
                size_t i = base + (size_t)__builtin_ctzll(m);
                if (w[i]) {
                    if (base_only)
                        mark_base(mk, w[i]);
                    else
                        mark_value(mk, w[i]);
                }
            }
        }
        return;
    }
    for (size_t i = from, j = from ? from % lw : 0; i < to; i++) {
        if (rudo__bit(k->layout, j) && w[i]) {
            if (base_only)
                mark_base(mk, w[i]);
            else
                mark_value(mk, w[i]);
        }
        if (++j == lw)
            j = 0;
    }
}

/* Marks through words [from, to) of obj, of a conservative or layout kind
 * (a layout repeats every layout_words words). scan_layout is inlined
 * twice, with base_only a constant, so the common kind's loop carries no
 * test of the flag per slot. */
static inline __attribute__((always_inline)) void
scan_words(rudo__marker *mk, const rudo__kind *k, char *obj, size_t from,
           size_t to) {
    void **w = (void **)obj;
    if (k->tracing == RUDO_TRACE_CONSERVATIVE)
        scan_range(mk, w + from, w + to);
    else if (RUDO_UNLIKELY(k->base_only)) /* RUDO_KIND_BASE_ONLY */
        scan_layout(mk, k, w, from, to, true);
    else
        scan_layout(mk, k, w, from, to, false);
}

/* Large scanned objects are cut into chunks that are queued separately,
 * so a wide array is shared among markers instead of scanned by one. A
 * queued chunk is its address with a tag in the low bits (objects are
 * 16-byte aligned, and so are chunks, which start a multiple of 8 KiB into
 * one): CHUNK_TAG for a chunk queued with all its siblings at once
 * (several markers: trace_chunked), CHAIN_TAG for one that queues the next
 * chunk when it is traced (a lone marker: trace_chained). */
#define CHUNK_WORDS 1024 /* 8 KiB */
#define CHUNK_TAG 1u
#define CHAIN_TAG 3u
#define TAG_MASK 15u

/* Queues the chunks after the first of a large object, then scans the
 * first. The chunks go straight to the shared deque (the private stack
 * only if the deque cannot grow), and parked markers are told: a wide
 * array is the work they wait for, and left on the private stack it would
 * be shared only 64 objects later, half of it at a time, while the first
 * chunk's children pile up on top of it. Out of line: the common, small
 * object stays on the fast path. */
static __attribute__((noinline)) void trace_chunked(rudo__marker *mk,
                                                    char *obj, rudo__page *p) {
    size_t nw = p->cell_size / sizeof(void *);
    bool shared = mk->pool->steal;
    for (size_t from = CHUNK_WORDS; from < nw; from += CHUNK_WORDS) {
        char *chunk = obj + from * sizeof(void *) + CHUNK_TAG;
        if (RUDO_UNLIKELY(mk->h->mark.fail_growths)) /* test hook */
            rudo__deque_fail_next_growth(&mk->dq);
        if (!shared || !rudo__deque_push(&mk->dq, chunk))
            push(mk, chunk, p);
    }
    if (shared)
        mk->ops->offer(mk);
    scan_words(mk, &mk->h->kinds[p->kind], obj, 0, CHUNK_WORDS);
}

/* Scans words [from, from + CHUNK_WORDS) of obj (of nw words, on page p),
 * after queueing the rest of it as one chained chunk, below the children
 * this chunk pushes. A lone marker thus holds at most a chunk's children
 * and one chunk of each wide object on its stack, as bdwgc does with its
 * mark stack: scanning a 2 M-entry array at once put 2 M children on the
 * stack (16 MiB, pushed and popped through the cache) before any of them
 * was traced. Out of line, as trace_chunked. */
static __attribute__((noinline)) void trace_chained(rudo__marker *mk, char *obj,
                                                    rudo__page *p, size_t from,
                                                    size_t nw) {
    size_t to = from + CHUNK_WORDS;
    if (to < nw)
        push(mk, obj + to * sizeof(void *) + CHAIN_TAG, p);
    else
        to = nw;
    scan_words(mk, &mk->h->kinds[p->kind], obj, from, to);
}

/* Traces one queued chunk (its address tagged: CHUNK_TAG or CHAIN_TAG).
 * The chunk belongs to the cell that contains it: on a small page
 * (classes over 8 KiB) that cell need not start at the page, and word
 * offsets (hence layout positions) count from the cell's base. */
static __attribute__((noinline)) void trace_chunk(rudo__marker *mk, char *item) {
    unsigned tag = (unsigned)((uintptr_t)item & TAG_MASK);
    char *addr = item - tag;
    rudo__page *p = NULL;
    size_t ci;
    /* Never NULL: the chunk was queued from inside a marked cell. */
    char *obj = rudo__cell_of(mk->h, addr, &p, &ci);
    size_t from = (size_t)(addr - obj) / sizeof(void *);
    size_t nw = p->cell_size / sizeof(void *);
    if (tag == CHAIN_TAG) {
        trace_chained(mk, obj, p, from, nw);
        return;
    }
    RUDO_ASSERT(tag == CHUNK_TAG);
    size_t to = nw - from > CHUNK_WORDS ? from + CHUNK_WORDS : nw;
    scan_words(mk, &mk->h->kinds[p->kind], obj, from, to);
}

/* An ephemeron's value is marked now if its key is known to be reachable
 * (marked, NULL, or outside the heap); otherwise the ephemeron waits on
 * this marker's pending list for rudo__mark_ephemerons. The key is never
 * marked through the ephemeron. Another marker may mark the key a moment
 * later: then the fixpoint, which runs after every marker has finished,
 * sees the key marked and marks the value (docs/marking.md). */
static void trace_ephemeron(rudo__marker *mk, rudo_ephemeron *e) {
    if (e->key && rudo__unmarked_cell(mk->h, e->key)) {
        if (mk->nephem == mk->cap_ephem)
            mk->ephem = rudo__grow(mk->ephem, &mk->cap_ephem, sizeof *mk->ephem, 256,
                                   "rudo_collect", "out of memory for pending ephemerons");
        mk->ephem[mk->nephem++] = e;
        return;
    }
    if (e->value)
        mark_value(mk, e->value);
}

void rudo__mark_scan_words(rudo__marker *mk, const rudo__kind *k, char *obj,
                           size_t from, size_t to) {
    scan_words(mk, k, obj, from, to);
}

static void trace_in(rudo__marker *mk, char *obj, rudo__page *p);
void rudo__mark_trace_in(rudo__marker *mk, char *obj, rudo__page *p) {
    trace_in(mk, obj, p);
}

static void trace_in(rudo__marker *mk, char *obj, rudo__page *p) {
    const rudo__kind *k = &mk->h->kinds[p->kind];
    size_t nw = p->cell_size / sizeof(void *);
    mk->st.objects_traced++;
    switch (k->tracing) {
    case RUDO_TRACE_ATOMIC:
        break;
    case RUDO_TRACE_CONSERVATIVE:
    case RUDO_TRACE_LAYOUT:
        if (RUDO_LIKELY(nw <= CHUNK_WORDS) || mk->whole)
            scan_words(mk, k, obj, 0, nw);
        else if (!mk->single)
            trace_chunked(mk, obj, p);
        else
            trace_chained(mk, obj, p, 0, nw);
        break;
    case RUDO_TRACE_CALLBACK:
        /* Lets rudo_alloc, rudo_collect and rudo_safepoint name the kind
         * and abort instead of parking forever (rudo__check_context). */
        rudo__tracing_kind = k->name;
        callback_begin(mk, k->name);
        mk->base_only_slots = k->base_only; /* read by flush_slots */
        k->trace(obj, p->cell_size, &mk->tr);
        callback_end(mk);
        rudo__tracing_kind = NULL;
        flush_slots(&mk->tr);
        mk->base_only_slots = false;
        break;
    case RUDO_TRACE_EPHEMERON:
        trace_ephemeron(mk, (rudo_ephemeron *)(void *)obj);
        break;
    }
}

/* Traces a queued object (not a chunk) on page p. The common object, of a
 * layout kind whose pointer words fit one bitmap word, is scanned here
 * with its page's mask (rudo__page.scan_mask): no kind record, no per-slot
 * range tests (in a profile of a linked list the general layout loop and
 * the kind tests were a third of its marking; a per-marker cache of masks
 * by kind still cost 9 instructions an object to check). Everything else
 * goes to trace_in. Inlined into the drain loop, its hot caller. */
static inline __attribute__((always_inline)) void trace_obj(rudo__marker *mk,
                                                            char *obj,
                                                            rudo__page *p) {
    uint64_t m = p->scan_mask;
    if (RUDO_UNLIKELY(m == 0)) {
        trace_in(mk, obj, p);
        return;
    }
    mk->st.objects_traced++;
    void **w = (void **)obj;
    for (; m; m &= m - 1) {
        void *v = w[__builtin_ctzll(m)];
        if (v)
            mark_value(mk, v);
    }
}

static inline __attribute__((always_inline)) void trace_item(rudo__marker *mk,
                                                             char *item) {
    if (RUDO_UNLIKELY((uintptr_t)item & CHUNK_TAG)) {
        trace_chunk(mk, item);
        return;
    }
    /* A queued object is a cell's base, never in a large object's tail
     * page, so its page is the one it is in: no tail_dist test. */
    rudo__heap *h = mk->h;
    trace_obj(mk, item, &h->pages[((uintptr_t)item - (uintptr_t)h->base) >> RUDO_PAGE_SHIFT]);
}

void rudo__mark_trace(rudo__marker *mk, char *item) { trace_item(mk, item); }

/* Moves the oldest half of the private stack (objects found first: near
 * the roots, so likely the largest subgraphs) to the shared deque, where
 * thieves can take it. Done when markers are parked, or when the deque is
 * empty and the private stack is deep, so a marker that wakes finds work. */
static void share(rudo__marker *mk) {
    rudo__mark_pool *pool = mk->pool;
    if (mk->single)
        return;
    bool hungry = atomic_load_explicit(&pool->nidle, memory_order_relaxed) > 0;
    if (hungry && pool->route)
        mk->ops->flush(mk); /* partial batches may be what they wait for */
    size_t count = mk->local_n - mk->local_lo;
    if (!pool->steal || count < 2)
        return;
    if (!hungry && (count < 64 || rudo__deque_size_hint(&mk->dq) > 0))
        return;
    size_t k = count / 2;
    if (k > 256)
        k = 256;
    size_t moved = 0;
    while (moved < k && rudo__deque_push(&mk->dq, mk->local[mk->local_lo + moved]))
        moved++;
    mk->local_lo += moved;
    if (hungry)
        mk->ops->offer(mk);
}

/* Objects pass through a small FIFO between the stack and tracing: each is
 * prefetched when it enters and traced PREFETCH_DEPTH pops later, so the
 * cache miss on its first word overlaps with tracing the objects before
 * it (profiles showed that load as half the marking time).
 *
 * A chain (a linked list: each object's one child is all there is to do)
 * has nothing to overlap: when the FIFO is empty and the private stack
 * holds one object, that object is traced at once, without the FIFO and
 * its prefetch. The shared deque is looked at only when the FIFO and the
 * private stack are both empty: the owner's relaxed look at its indices
 * is exact when it says empty (only the owner pushes, thieves only take),
 * which spares the pop's seq_cst fence on a deque that is empty. */
#define PREFETCH_DEPTH 8

void rudo__mark_drain(rudo__marker *mk) {
    void *ring[PREFETCH_DEPTH];
    unsigned head = 0, n = 0;
    /* Fixed during a drain (the serial tail sets it between drains). */
    const bool single = mk->single;
    for (;;) {
        void *obj;
        size_t avail = mk->local_n - mk->local_lo;
        if (n == 0 && avail <= 1) {
            if (avail == 1) {
                obj = mk->local[mk->local_n - 1];
                mk->local_n = mk->local_lo = 0;
            } else if (rudo__deque_size_hint(&mk->dq) == 0 ||
                       !(obj = rudo__deque_pop(&mk->dq))) {
                return;
            }
        } else {
            /* In registers: stores to the FIFO could alias the fields. */
            size_t ln = mk->local_n, lo = mk->local_lo;
            void **local = mk->local;
            while (n < PREFETCH_DEPTH && ln > lo) {
                void *o = local[--ln];
                __builtin_prefetch(o);
                ring[(head + n) % PREFETCH_DEPTH] = o;
                n++;
            }
            if (ln == lo)
                mk->local_lo = ln = 0; /* reuse the space shared away */
            mk->local_n = ln;
            obj = ring[head];
            head = (head + 1) % PREFETCH_DEPTH;
            n--;
        }
        trace_item(mk, obj);
        if (!single && RUDO_UNLIKELY(++mk->since_wake_check == 64)) {
            mk->since_wake_check = 0;
            share(mk);
        }
    }
}

/* Traces every marked cell of overflowed pages until none is left
 * (collector only, after the parallel phase). */
static void drain_overflow(rudo__marker *mk) {
    rudo__heap *h = mk->h;
    while (atomic_exchange_explicit(&h->mark.overflowed, false, memory_order_relaxed)) {
        for (size_t pi = 0; pi < rudo__hwm(h); pi = rudo__pages_next(h, pi)) {
            rudo__page *p = &h->pages[pi];
            if (!p->overflow)
                continue;
            p->overflow = 0;
            char *start = rudo__page_addr(p);
            for (size_t i = 0; i < p->ncells; i++) {
                if (rudo__marked(p, i)) {
                    trace_in(mk, start + i * p->cell_size, p);
                    rudo__mark_drain(mk);
                }
            }
        }
    }
}

/* ---- root tasks -------------------------------------------------------------
 * The collector enumerates the roots into tasks (ranges cut into chunks,
 * runs of precise slots) that markers take with a fetch-add, so roots are
 * divided among markers. */
#define RANGE_CHUNK 16384
#define SLOT_RUN 256

void rudo__mark_add_task(rudo__mark_pool *pool, struct rudo__root_task t) {
    if (pool->ntasks == pool->cap_tasks)
        pool->tasks = rudo__grow(pool->tasks, &pool->cap_tasks, sizeof *pool->tasks, 256,
                               "rudo_collect", "out of memory for root tasks");
    pool->tasks[pool->ntasks++] = t;
}


static void task_range(rudo__root_visitor *v, void *lo, void *hi) {
    rudo__mark_pool *pool = ((task_visitor *)v)->pool;
    /* Chunks start at an aligned word: scan_range drops the partial word
     * at each end of its range, so a chunk boundary inside a word would
     * lose that word (RANGE_CHUNK is a multiple of the word size). */
    uintptr_t a0 = ((uintptr_t)lo + sizeof(void *) - 1) & ~(uintptr_t)(sizeof(void *) - 1);
    for (char *a = (char *)a0; a < (char *)hi; a += RANGE_CHUNK) {
        char *b = (char *)hi - a > RANGE_CHUNK ? a + RANGE_CHUNK : hi;
        rudo__mark_add_task(pool, (struct rudo__root_task){
            .type = RUDO_TASK_RANGE, .lo = a, .hi = b});
    }
}

static void task_slot(rudo__root_visitor *v, void **slot) {
    rudo__mark_pool *pool = ((task_visitor *)v)->pool;
    if (pool->nslots == pool->cap_slots)
        pool->slots = rudo__grow(pool->slots, &pool->cap_slots, sizeof *pool->slots, 1024,
                               "rudo_collect", "out of memory for root slots");
    pool->slots[pool->nslots++] = slot;
}

static void task_callback(rudo__root_visitor *v, rudo_root_fn fn, void *data) {
    rudo__mark_add_task(((task_visitor *)v)->pool, (struct rudo__root_task){
        .type = RUDO_TASK_CALLBACK, .fn = fn, .data = data});
}

void rudo__mark_root_task(rudo__marker *mk, size_t i) {
    rudo__mark_pool *pool = mk->pool;
    struct rudo__root_task *t = &pool->tasks[i];
    switch (t->type) {
    case RUDO_TASK_RANGE:
        scan_range(mk, t->lo, t->hi);
        break;
    case RUDO_TASK_SLOTS:
        for (size_t j = t->first; j < t->first + t->count; j++)
            mark_value(mk, *pool->slots[j]);
        break;
    case RUDO_TASK_CARDS:
        rudo__cards_task(mk, t);
        break;
    case RUDO_TASK_CALLBACK:
        /* On whichever marker takes it, concurrently with the other
         * tasks (rudo.h states the contract). A callback that allocates,
         * collects or calls rudo_safepoint aborts with a message instead
         * of parking forever (rudo__check_context). */
        rudo__tracing_kind = "(root callback)";
        callback_begin(mk, "(root callback)");
        t->fn(&mk->tr, t->data);
        callback_end(mk);
        rudo__tracing_kind = NULL;
        flush_slots(&mk->tr);
        break;
    }
}

/* ---- the phase --------------------------------------------------------------- */

static void setup_marker(rudo__marker *mk) {
    memset(&mk->st, 0, sizeof mk->st);
    mk->tr.rudo__cur = mk->slotbuf;
    mk->tr.rudo__end = mk->slotbuf + RUDO_SLOTBUF;
    mk->tr.rudo__flush = flush_slots;
    mk->tr.rudo__weak = weak_slot;
    mk->tr.rudo__value = value_visit;
    mk->tr.rudo__range = range_visit;
    mk->tr.rudo__mark_only = mark_only_visit;
    mk->nweak = mk->weak_done = 0;
    mk->nephem = 0;
    mk->note = 0;
    mk->nrecorded = 0;
    mk->weak_pass = 0;
    mk->since_wake_check = 0;
    mk->single = mk->pool->n == 1;
    mk->local_lo = mk->local_n = mk->local_high = 0;
    rudo__heap *h = mk->h;
    if (h->mark.fail_growths) {
        /* Test hook: tiny stacks that cannot grow. */
        rudo__meta_free(mk->local);
        mk->local = rudo__meta_alloc(16 * sizeof *mk->local);
        mk->local_cap = mk->local ? 16 : 0;
    } else if (mk->local_cap < stack_hint(h)) {
        rudo__meta_free(mk->local);
        mk->local = NULL;
        mk->local_cap = 0;
        grow_local(mk); /* pre-sized from the last high-water mark */
        mk->st.deque_growths = 0;
    }
    size_t hint = h->mark.fail_growths ? 16 : 256;
    if (!rudo__deque_init(&mk->dq, hint) && !rudo__deque_init(&mk->dq, 16))
        rudo__fatal("rudo_collect", "out of memory for the mark deque");
}

static void finish_marker(rudo__marker *mk) {
    mk->st.deque_high_water = mk->local_high + rudo__deque_high_water(&mk->dq);
    mk->st.deque_growths += rudo__deque_growths(&mk->dq);
    rudo__deque_destroy(&mk->dq); /* frees retired arrays: no thief is left */
}

/* rudo_root_callback_add_first's callbacks: run at once, on the
 * collecting thread as marker 0, before any root task exists, so their
 * marks (rudo_visit_mark_only's above all) precede every other root's.
 * What they mark waits on marker 0's stack and is traced with the rest.
 * Routing is off meanwhile: the other markers have not started. */
static void now_callback(rudo__root_visitor *v, rudo_root_fn fn, void *data) {
    rudo__mark_pool *pool = ((task_visitor *)v)->pool;
    rudo__marker *mk = pool->m[0];
    bool route = pool->route;
    pool->route = false;
    rudo__tracing_kind = "(root callback)";
    callback_begin(mk, "(root callback)");
    fn(&mk->tr, data);
    callback_end(mk);
    rudo__tracing_kind = NULL;
    flush_slots(&mk->tr);
    pool->route = route;
}

rudo__root_visitor *rudo__mark_first_visitor(rudo__heap *h) {
    rudo__mark_pool *pool = h->pool;
    pool->first = (task_visitor){{task_range, task_slot, now_callback}, pool};
    return &pool->first.v;
}

rudo__root_visitor *rudo__mark_begin(rudo__heap *h) {
    rudo__mark_pool *pool = rudo__pool_get(h);
    for (unsigned i = 0; i < pool->n; i++)
        setup_marker(pool->m[i]);
    pool->ntasks = pool->nslots = 0;
    pool->roots = (task_visitor){{task_range, task_slot, task_callback}, pool};
    return &pool->roots.v;
}


void rudo__mark_closure(rudo__heap *h) {
    rudo__mark_pool *pool = h->pool;
    for (size_t j = 0; j < pool->nslots; j += SLOT_RUN) {
        size_t n = pool->nslots - j < SLOT_RUN ? pool->nslots - j : SLOT_RUN;
        rudo__mark_add_task(pool, (struct rudo__root_task){
            .type = RUDO_TASK_SLOTS, .first = j, .count = n});
    }
    /* Relaxed: markers read it after the pool's start signal (a mutex). */
    atomic_store_explicit(&pool->next_task, 0, memory_order_relaxed);
    rudo__pool_mark(pool);
    /* From here on the collector marks alone (the helpers are parked): no
     * routing, no sharing, plain mark-bit stores, until rudo__mark_end. */
    rudo__marker *mk = pool->m[0];
    pool->saved_route = pool->route;
    pool->saved_single = mk->single;
    pool->route = false;
    mk->single = true;
    drain_overflow(mk);
}

void rudo__mark_from(rudo__heap *h, void *obj) {
    rudo__marker *mk = h->pool->m[0];
    mark_value(mk, obj);
    rudo__mark_drain(mk);
    drain_overflow(mk);
}

void rudo__mark_children(rudo__heap *h, void *obj) {
    rudo__marker *mk = h->pool->m[0];
    trace_in(mk, obj, rudo__head_page_of(h, obj));
    rudo__mark_drain(mk);
    drain_overflow(mk);
}

void rudo__mark_children_ignore_self(rudo__heap *h, void *obj) {
    rudo__marker *mk = h->pool->m[0];
    rudo__page *p = NULL;
    size_t i = 0;
    if (rudo__cell_of(h, obj, &p, &i) != obj)
        return; /* not a base: nothing of its own to trace (see header) */
    RUDO_ASSERT(mk->single);
    _Atomic uint64_t *w = &p->bits[i / 64].mark;
    uint64_t bit = (uint64_t)1 << (i % 64);
    /* Marked while its own words are scanned, so a self-pointer finds it
     * marked and does nothing; unmarked again before what those words
     * reached is traced, so a cycle through other objects still marks it.
     * This works because in the serial phase after
     * rudo__mark_closure (single) trace_in, told to take the object
     * whole (no chained chunks left for later), scans the words at once
     * and only queues what they reach. Relaxed: one marker, world
     * stopped. */
    atomic_store_explicit(w, atomic_load_explicit(w, memory_order_relaxed) | bit,
                          memory_order_relaxed);
    mk->whole = true;
    trace_in(mk, obj, rudo__head_page_of(h, obj));
    mk->whole = false;
    atomic_store_explicit(w, atomic_load_explicit(w, memory_order_relaxed) & ~bit,
                          memory_order_relaxed);
    rudo__mark_drain(mk);
    drain_overflow(mk);
}

void rudo__mark_end(rudo__heap *h) {
    rudo__mark_pool *pool = h->pool;
    pool->route = pool->saved_route;
    pool->m[0]->single = pool->saved_single;
    rudo__mark_stats sum = {0, 0, 0};
    for (unsigned i = 0; i < pool->n; i++) {
        finish_marker(pool->m[i]);
        sum.objects_marked += pool->m[i]->st.objects_marked;
        sum.overflows += pool->m[i]->st.overflows;
        if (pool->m[i]->st.deque_high_water > sum.high_water)
            sum.high_water = pool->m[i]->st.deque_high_water;
    }
    h->mark.last = sum;
    if (sum.high_water > stack_hint(h))
        h->mark.stack_hint = sum.high_water;
    if (h->mark.fail_growths)
        h->mark.fail_growths--;
}
