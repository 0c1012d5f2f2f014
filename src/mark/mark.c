/* mark.c — marking: from roots, through objects by kind, with a mark stack
 * that grows and never drops work.
 *
 * An object is queued only by the marker that set its mark bit, so it is
 * traced once. When the mark stack cannot grow (no memory), the object
 * stays marked and its page is flagged `overflow`; after the stack drains,
 * flagged pages are scanned for marked cells, which are traced again (a
 * second trace of an object is harmless: its children are already marked
 * or get marked now). Only flagged pages are rescanned, never the heap. */
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "mark/mark.h"
#include "roots/roots.h"
#include "sweep/sweep.h"

#define STACK_INITIAL 4096

static unsigned fail_growths; /* test hook; world stopped when read */
static rudo__mark_stats last_stats;
static size_t stack_hint = STACK_INITIAL; /* previous high-water mark */

void rudo__mark_fail_growth(unsigned n) { fail_growths = n; }
rudo__mark_stats rudo__mark_last_stats(void) { return last_stats; }

/* Sets the mark bit of cell i; true if this call set it. Relaxed: the bit
 * is only a claim token. The object's contents were published to the
 * collector by the stop-the-world handshake (a mutex), not by the bit. */
static inline bool set_mark(rudo__page *p, size_t i) {
    _Atomic uint64_t *w = &p->mark[i / 64];
    uint64_t bit = (uint64_t)1 << (i % 64);
    if (atomic_load_explicit(w, memory_order_relaxed) & bit)
        return false;
    return !(atomic_fetch_or_explicit(w, bit, memory_order_relaxed) & bit);
}

static bool grow(rudo__marker *mk) {
    if (fail_growths) {
        fail_growths--;
        return false;
    }
    size_t cap = mk->cap ? mk->cap * 2 : stack_hint;
    void **s = realloc(mk->stack, cap * sizeof *s);
    if (!s)
        return false;
    mk->stack = s;
    mk->cap = cap;
    return true;
}

static inline void push(rudo__marker *mk, void *obj, rudo__page *p) {
    if (RUDO_UNLIKELY(mk->n == mk->cap) && !grow(mk)) {
        p->overflow = 1;
        mk->overflowed = true;
        mk->overflows++;
        return;
    }
    mk->stack[mk->n++] = obj;
    if (mk->n > mk->high_water)
        mk->high_water = mk->n;
}

void rudo__mark_value(rudo__marker *mk, void *v) {
    rudo__heap *h = mk->h;
    uintptr_t off = (uintptr_t)v - (uintptr_t)h->base;
    if (off >= mk->limit)
        return;
    rudo__page *p = &h->pages[off >> RUDO_PAGE_SHIFT];
    char *obj;
    size_t i;
    if (p->type == RUDO_PAGE_SMALL) {
        i = rudo__cell_index(p, off & (RUDO_PAGE_SIZE - 1));
        if (i >= p->ncells)
            return;
        obj = h->base + (off & ~(uintptr_t)(RUDO_PAGE_SIZE - 1)) + i * p->cell_size;
    } else if (p->type == RUDO_PAGE_LARGE || p->type == RUDO_PAGE_TAIL) {
        if (p->type == RUDO_PAGE_TAIL)
            p -= p->span;
        obj = rudo__page_addr(p);
        if ((uintptr_t)v - (uintptr_t)obj >= p->cell_size)
            return;
        i = 0;
    } else {
        return;
    }
    /* Decision 12: only allocated cells are marked (alloc is exact now). */
    if (!rudo__abit(p->alloc, i) || !set_mark(p, i))
        return;
    mk->objects_marked++;
    if (h->kinds[p->kind].tracing != RUDO_TRACE_ATOMIC)
        push(mk, obj, p);
}

/* Conservative scan of [lo, hi): every aligned word may be a pointer. Not
 * instrumented by sanitizers: it reads stacks (with redzones) and other
 * threads' memory by design. */
__attribute__((no_sanitize_address, no_sanitize_thread)) static void
scan_range(rudo__marker *mk, void *lo, void *hi) {
    uintptr_t a = ((uintptr_t)lo + sizeof(void *) - 1) & ~(uintptr_t)(sizeof(void *) - 1);
    for (void **w = (void **)a; (char *)(w + 1) <= (char *)hi; w++)
        rudo__mark_value(mk, *w);
}

/* Processes the slots a trace callback reported. */
static void flush_slots(rudo__marker *mk) {
    void ***end = mk->tr.rudo__cur;
    mk->tr.rudo__cur = mk->slotbuf;
    for (void ***s = mk->slotbuf; s < end; s++)
        rudo__mark_value(mk, **s);
}

static void marker_flush(rudo_tracer *tr) { flush_slots((rudo__marker *)tr); }

void rudo__tracer_flush(rudo_tracer *tr) { tr->rudo__flush(tr); }

static void trace_object(rudo__marker *mk, char *obj, rudo__page *p) {
    const rudo__kind *k = &mk->h->kinds[p->kind];
    size_t size = p->cell_size;
    switch (k->tracing) {
    case RUDO_TRACE_ATOMIC:
        break;
    case RUDO_TRACE_CONSERVATIVE:
        scan_range(mk, obj, obj + size);
        break;
    case RUDO_TRACE_LAYOUT: {
        void **w = (void **)obj;
        size_t nw = size / sizeof(void *), lw = k->layout_words;
        for (size_t i = 0, j = 0; i < nw; i++) {
            if (rudo__bit(k->layout, j) && w[i])
                rudo__mark_value(mk, w[i]);
            if (++j == lw)
                j = 0;
        }
        break;
    }
    case RUDO_TRACE_CALLBACK:
        k->trace(obj, size, &mk->tr);
        flush_slots(mk);
        break;
    }
}

static void drain(rudo__marker *mk) {
    rudo__heap *h = mk->h;
    while (mk->n) {
        char *obj = mk->stack[--mk->n];
        rudo__page *p = rudo__page_of(h, obj);
        if (p->type == RUDO_PAGE_TAIL)
            p -= p->span;
        trace_object(mk, obj, p);
    }
}

/* Traces every marked cell of overflowed pages until none is left. */
static void drain_overflow(rudo__marker *mk) {
    rudo__heap *h = mk->h;
    while (mk->overflowed) {
        mk->overflowed = false;
        for (size_t pi = 0; pi < rudo__hwm(h); pi++) {
            rudo__page *p = &h->pages[pi];
            if (!p->overflow)
                continue;
            p->overflow = 0;
            char *start = rudo__page_addr(p);
            for (size_t i = 0; i < p->ncells; i++) {
                if (rudo__abit(p->mark, i)) {
                    trace_object(mk, start + i * p->cell_size, p);
                    drain(mk);
                }
            }
        }
    }
}

static void visit_range(rudo__root_visitor *v, void *lo, void *hi);
static void visit_slot(rudo__root_visitor *v, void **slot);

typedef struct {
    rudo__root_visitor v;
    rudo__marker *mk;
} mark_visitor;

static void visit_range(rudo__root_visitor *v, void *lo, void *hi) {
    scan_range(((mark_visitor *)v)->mk, lo, hi);
}

static void visit_slot(rudo__root_visitor *v, void **slot) {
    rudo__mark_value(((mark_visitor *)v)->mk, *slot);
}

/* Finalizable objects that are not marked are all queued for their
 * finalizer first, then marked with everything they reach, so every
 * finalizer sees its object intact. Queuing all before marking any means
 * objects that die together are finalized in the same collection, even
 * when one references another (in no particular order). The fin bit makes
 * this happen once per object. */
static void mark_finalizable(rudo__marker *mk) {
    rudo__heap *h = mk->h;
    void **due_objs = NULL;
    size_t ndue = 0, cap = 0;
    for (size_t pi = 0; pi < rudo__hwm(h); pi++) {
        rudo__page *p = &h->pages[pi];
        if ((p->type != RUDO_PAGE_SMALL && p->type != RUDO_PAGE_LARGE) ||
            !h->kinds[p->kind].finalize)
            continue;
        char *start = rudo__page_addr(p);
        for (size_t w = 0; w * 64 < p->ncells; w++) {
            uint64_t due = rudo__ld(&p->alloc[w]) & ~p->fin[w] & ~rudo__ld(&p->mark[w]);
            while (due) {
                size_t i = w * 64 + (size_t)__builtin_ctzll(due);
                due &= due - 1;
                p->fin[w] |= (uint64_t)1 << (i % 64);
                if (ndue == cap) {
                    cap = cap ? cap * 2 : 256;
                    void **n = realloc(due_objs, cap * sizeof *n);
                    if (!n)
                        rudo__fatal("rudo_collect", "out of memory queueing finalizers");
                    due_objs = n;
                }
                due_objs[ndue++] = start + i * p->cell_size;
            }
        }
    }
    for (size_t i = 0; i < ndue; i++)
        rudo__final_queue(h, due_objs[i]);
    for (size_t i = 0; i < ndue; i++) {
        rudo__mark_value(mk, due_objs[i]);
        drain(mk);
    }
    free(due_objs);
}

void rudo__mark_phase(rudo__heap *h) {
    rudo__marker *mk = calloc(1, sizeof *mk);
    if (!mk)
        rudo__fatal("rudo_collect", "out of memory for the marker");
    mk->h = h;
    mk->limit = (uintptr_t)rudo__hwm(h) << RUDO_PAGE_SHIFT;
    mk->tr.rudo__cur = mk->slotbuf;
    mk->tr.rudo__end = mk->slotbuf + RUDO_SLOTBUF;
    mk->tr.rudo__flush = marker_flush;
    grow(mk);

    mark_visitor v = {{visit_range, visit_slot}, mk};
    rudo__roots_enumerate(h, &v.v);
    drain(mk);
    drain_overflow(mk);
    mark_finalizable(mk);
    drain_overflow(mk);

    last_stats = (rudo__mark_stats){mk->objects_marked, mk->overflows,
                                    mk->high_water};
    if (mk->high_water > stack_hint)
        stack_hint = mk->high_water;
    free(mk->stack);
    free(mk);
}
