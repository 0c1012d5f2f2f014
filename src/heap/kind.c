/* kind.c — the kind registry: how the collector finds pointers in objects.
 *
 * Publication. A kind record is written completely, under heap_lock, before
 * the store-release of nkinds that makes it count; every field except `fin`
 * is immutable from then on, so a thread that has seen nkinds > k through
 * an acquire load (or that learned k through some other happens-before
 * chain from that store) reads the record without a lock.
 *
 * Finalizers. A kind's finalizer and its argument change together: `fin`
 * points to an immutable {fn, data} record and a change swaps the pointer
 * (release; readers acquire). A reader may still hold the old record when
 * the pointer changes, so records are never freed before the heap is
 * destroyed; a record is reused when the same pair is set again, which
 * bounds them by the distinct pairs ever used. */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "heap/heap.h"

uint64_t rudo__kind_scan_mask(const rudo__kind *k, size_t cell_size) {
    size_t nw = cell_size / sizeof(void *), lw = k->layout_words;
    if (k->tracing != RUDO_TRACE_LAYOUT || k->base_only || nw > 64 || lw > 64)
        return 0;
    /* Bits at lw and above mean nothing (rudo.h). One struct per cell,
     * the common case, costs no iteration. */
    uint64_t lay = lw == 64 ? k->layout[0] : k->layout[0] & (((uint64_t)1 << lw) - 1);
    uint64_t m = lay;
    for (size_t s = lw; s < nw; s += lw)
        m |= lay << s; /* s < nw <= 64 */
    return nw == 64 ? m : m & (((uint64_t)1 << nw) - 1);
}

rudo__kind *rudo__kind_get(rudo_kind k, const char *fn) {
    rudo__heap *h = rudo__need_heap(fn);
    /* Acquire. A handle received with happens-before from its registration
     * (as rudo.h asks) would do with relaxed: coherence gives nkinds > k and
     * the record is already visible. But k comes from the user, who may
     * have got it without (a relaxed store, a guess): acquire, pairing with
     * the release in rudo_kind_register, makes every kind counted by the
     * value read complete here, so such a caller may be told that the kind
     * is unknown but never sees a half-written record. */
    unsigned n = atomic_load_explicit(&h->nkinds, memory_order_acquire);
    if (k >= n)
        rudo__fatal(fn, "unknown kind %u (%u kinds registered)", k, n);
    return &h->kinds[k];
}

/* The record for {fn, data}: an existing one if the pair was set before,
 * else a new one, kept on the heap's list (heap_lock held). NULL for no
 * finalizer. */
static const rudo__finalizer *finalizer_record(rudo__heap *h, rudo_finalize_fn fn,
                                               void *data, const char *where) {
    if (!fn)
        return NULL;
    for (const rudo__finalizer *r = h->fin_records; r; r = r->next)
        if (r->fn == fn && r->data == data)
            return r;
    rudo__finalizer *r = malloc(sizeof *r);
    if (!r) {
        rudo__lock_release(&h->heap_lock);
        rudo__fatal(where, "out of memory recording a finalizer");
    }
    r->fn = fn;
    r->data = data;
    r->next = h->fin_records;
    h->fin_records = r;
    return r;
}

static rudo_kind register_kind(const rudo_kind_desc *d, unsigned flags,
                               const char *fn);

rudo_kind rudo_kind_register(const rudo_kind_desc *d) {
    return register_kind(d, 0, "rudo_kind_register");
}

rudo_kind rudo_kind_register_flags(const rudo_kind_desc *d, unsigned flags) {
    return register_kind(d, flags, "rudo_kind_register_flags");
}

static rudo_kind register_kind(const rudo_kind_desc *d, unsigned flags,
                               const char *fn) {
    rudo__heap *h = rudo__need_heap(fn);
    if (!d)
        rudo__fatal(fn, "desc is NULL");
    if (!d->name)
        rudo__fatal(fn, "kind name is NULL");
    switch (d->tracing) {
    case RUDO_TRACE_CONSERVATIVE:
    case RUDO_TRACE_ATOMIC:
    case RUDO_TRACE_EPHEMERON:
        break;
    case RUDO_TRACE_CALLBACK:
        if (!d->trace)
            rudo__fatal(fn, "kind '%s': RUDO_TRACE_CALLBACK without a trace "
                        "function", d->name);
        break;
    case RUDO_TRACE_LAYOUT:
        if (!d->layout || d->layout_words == 0 || d->layout_words > 1024)
            rudo__fatal(fn, "kind '%s': a layout needs 1 to 1024 words and a "
                        "bitmap (got %zu words, bitmap %p)", d->name,
                        d->layout_words, (const void *)d->layout);
        break;
    default:
        rudo__fatal(fn, "kind '%s': unknown tracing mode %d", d->name,
                    (int)d->tracing);
    }
    const unsigned known = RUDO_KIND_BASE_ONLY | RUDO_KIND_UNINIT;
    if (flags & ~known)
        rudo__fatal(fn, "kind '%s': unknown flags 0x%x", d->name, flags & ~known);
    if ((flags & RUDO_KIND_UNINIT) && d->tracing != RUDO_TRACE_ATOMIC)
        rudo__fatal(fn, "kind '%s': RUDO_KIND_UNINIT needs a RUDO_TRACE_ATOMIC "
                    "kind (a traced object must start zeroed)", d->name);
    if ((flags & RUDO_KIND_BASE_ONLY) && d->tracing != RUDO_TRACE_LAYOUT &&
        d->tracing != RUDO_TRACE_CALLBACK)
        rudo__fatal(fn, "kind '%s': RUDO_KIND_BASE_ONLY needs a layout or "
                    "callback kind (its precise slots)", d->name);
    uint64_t *layout = NULL;
    if (d->tracing == RUDO_TRACE_LAYOUT) {
        size_t n = (d->layout_words + 63) / 64;
        layout = malloc(n * sizeof *layout);
        if (!layout)
            rudo__fatal(fn, "out of memory copying the layout");
        memcpy(layout, d->layout, n * sizeof *layout);
    }
    rudo__lock_acquire(&h->heap_lock);
    /* Relaxed: heap_lock orders the writers, and only writers change it. */
    unsigned id = atomic_load_explicit(&h->nkinds, memory_order_relaxed);
    if (id == RUDO_MAX_KINDS) {
        rudo__lock_release(&h->heap_lock);
        free(layout);
        rudo__fatal(fn, "too many kinds (at most %u)", RUDO_MAX_KINDS);
    }
    /* The slot is unpublished (id >= nkinds): no reader looks at it yet, so
     * plain writes are safe. */
    rudo__kind *k = &h->kinds[id];
    memset(k->name, 0, sizeof k->name);
    strncpy(k->name, d->name, sizeof k->name - 1);
    k->tracing = d->tracing;
    k->trace = d->trace;
    k->layout = layout;
    k->layout_words = d->layout_words;
    k->base_only = (flags & RUDO_KIND_BASE_ONLY) != 0;
    k->uninit = (flags & RUDO_KIND_UNINIT) != 0;
    /* Relaxed: published by the release store of nkinds just below. */
    atomic_store_explicit(&k->fin,
                          finalizer_record(h, d->finalize, d->finalize_data, fn),
                          memory_order_relaxed);
    /* Release: publishes the record written above to every thread that
     * loads nkinds with acquire (rudo__kind_get, the allocation slow path). */
    atomic_store_explicit(&h->nkinds, id + 1, memory_order_release);
    rudo__lock_release(&h->heap_lock);
    return id;
}

rudo_kind rudo_kind_traced(const char *name, rudo_trace_fn trace) {
    rudo_kind_desc d = {.name = name, .tracing = RUDO_TRACE_CALLBACK,
                        .trace = trace};
    return rudo_kind_register(&d);
}

rudo_kind rudo_kind_layout(const char *name, size_t words,
                           const uint64_t *layout) {
    rudo_kind_desc d = {.name = name, .tracing = RUDO_TRACE_LAYOUT,
                        .layout = layout, .layout_words = words};
    return rudo_kind_register(&d);
}

rudo_kind rudo_kind_conservative(const char *name) {
    rudo_kind_desc d = {.name = name, .tracing = RUDO_TRACE_CONSERVATIVE};
    return rudo_kind_register(&d);
}

rudo_kind rudo_kind_ephemeron(const char *name) {
    rudo_kind_desc d = {.name = name, .tracing = RUDO_TRACE_EPHEMERON};
    return rudo_kind_register(&d);
}

rudo_kind rudo_kind_atomic(const char *name) {
    rudo_kind_desc d = {.name = name, .tracing = RUDO_TRACE_ATOMIC};
    return rudo_kind_register(&d);
}

void rudo_kind_set_finalizer(rudo_kind kind, rudo_finalize_fn fn, void *data) {
    const char *where = "rudo_kind_set_finalizer";
    rudo__kind *k = rudo__kind_get(kind, where);
    rudo__heap *h = rudo__the_heap;
    /* heap_lock guards the record list (lookup and insertion). */
    rudo__lock_acquire(&h->heap_lock);
    const rudo__finalizer *r = finalizer_record(h, fn, data, where);
    /* Release: a reader that loads r (acquire, rudo__kind_fin) sees its
     * fn and data as written above. */
    atomic_store_explicit(&k->fin, r, memory_order_release);
    rudo__lock_release(&h->heap_lock);
}

const char *rudo_kind_name(rudo_kind kind) {
    /* The name is immutable once the kind is published. */
    return rudo__kind_get(kind, "rudo_kind_name")->name;
}

void rudo__kinds_destroy(rudo__heap *h) {
    /* Relaxed: the heap is being destroyed by its only thread. */
    unsigned n = atomic_load_explicit(&h->nkinds, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++)
        free(h->kinds[i].layout);
    for (rudo__finalizer *r = h->fin_records, *next; r; r = next) {
        next = r->next;
        free(r);
    }
    h->fin_records = NULL;
}
