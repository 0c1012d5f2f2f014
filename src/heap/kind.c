/* kind.c — the kind registry: how the collector finds pointers in objects. */
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "heap/heap.h"

rudo__kind *rudo__kind_get(rudo_kind k, const char *fn) {
    rudo__heap *h = rudo__need_heap(fn);
    /* nkinds only grows, under heap_lock; kinds are registered before the
     * threads that use them learn their handles. */
    if (k >= h->nkinds)
        rudo__fatal(fn, "unknown kind %u (%u kinds registered)", k, h->nkinds);
    return &h->kinds[k];
}

rudo_kind rudo_kind_register(const rudo_kind_desc *d) {
    const char *fn = "rudo_kind_register";
    rudo__heap *h = rudo__need_heap(fn);
    if (!d)
        rudo__fatal(fn, "desc is NULL");
    if (!d->name)
        rudo__fatal(fn, "kind name is NULL");
    switch (d->tracing) {
    case RUDO_TRACE_CONSERVATIVE:
    case RUDO_TRACE_ATOMIC:
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
    uint64_t *layout = NULL;
    if (d->tracing == RUDO_TRACE_LAYOUT) {
        size_t n = (d->layout_words + 63) / 64;
        layout = malloc(n * sizeof *layout);
        if (!layout)
            rudo__fatal(fn, "out of memory copying the layout");
        memcpy(layout, d->layout, n * sizeof *layout);
    }
    rudo__lock_acquire(&h->heap_lock);
    if (h->nkinds == RUDO_MAX_KINDS) {
        rudo__lock_release(&h->heap_lock);
        rudo__fatal(fn, "too many kinds (at most %u)", RUDO_MAX_KINDS);
    }
    rudo__kind *k = &h->kinds[h->nkinds];
    memset(k, 0, sizeof *k);
    strncpy(k->name, d->name, sizeof k->name - 1);
    k->tracing = d->tracing;
    k->trace = d->trace;
    k->layout = layout;
    k->layout_words = d->layout_words;
    k->finalize = d->finalize;
    k->finalize_data = d->finalize_data;
    rudo_kind id = h->nkinds++;
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

rudo_kind rudo_kind_atomic(const char *name) {
    rudo_kind_desc d = {.name = name, .tracing = RUDO_TRACE_ATOMIC};
    return rudo_kind_register(&d);
}

void rudo_kind_set_finalizer(rudo_kind kind, rudo_finalize_fn fn, void *data) {
    rudo__kind *k = rudo__kind_get(kind, "rudo_kind_set_finalizer");
    rudo__heap *h = rudo__the_heap;
    rudo__lock_acquire(&h->heap_lock);
    k->finalize = fn;
    k->finalize_data = data;
    rudo__lock_release(&h->heap_lock);
}

const char *rudo_kind_name(rudo_kind kind) {
    return rudo__kind_get(kind, "rudo_kind_name")->name;
}
