/* query.c — address queries (rudo_is_heap_ptr, rudo_base, rudo_size,
 * rudo_kind_of): here, not in the heap layer, because an address in the
 * calling thread's own allocation page is judged by its free list. */
#include "gc/gc.h"

static void *find_object_in(const rudo__heap *h, const void *a, rudo__page **pp) {
    rudo__page *p;
    size_t i;
    char *cell = rudo__cell_of(h, a, &p, &i);
    if (!cell)
        return NULL;
    /* Acquire: seeing NULL, the alloc bits written before it are visible. */
    void **ol = atomic_load_explicit(&p->owner_list, memory_order_acquire);
    /* A stashed page (alloc.c) is not current: its bits are exact, or
     * alloc & mark if it is unswept, as on the avail list. */
    if (rudo__owner_stashed(ol))
        ol = NULL;
    bool allocated = rudo__allocated(p, i);
    if (rudo__ld(&p->swept_gc) < h->gc_count) {
        allocated = allocated && rudo__marked(p, i);
    } else if (!allocated && ol) {
        /* A current page. On the caller's own, cells below the free-list
         * head were allocated (exact). Another thread's free list cannot be
         * read without a race: there every cell counts as allocated, which
         * is right for every object the caller can legitimately hold. */
        rudo__mutator *self = rudo__self();
        rudo__kind_alloc *ka =
            self ? self->kalloc[p->kind] : NULL;
        if (ka && ol == &ka->lists[p->cls]) {
            char *head = *ol;
            allocated = head == NULL || cell < head;
        } else {
            allocated = true;
        }
    }
    if (!allocated)
        return NULL;
    if (pp)
        *pp = p;
    return cell;
}

void *rudo__find_object(const rudo__heap *h, const void *a, rudo__page **pp) {
    /* Inside the runtime, so that a suspend signal waits until the answer
     * is complete: the loads above are not one snapshot, and a collection
     * run while this thread was suspended between them (the page's
     * swept_gc read before it, gc_count after; the alloc bit read before
     * the freeze set it) made a live object of the caller's own page read
     * as free, and rudo_size abort on it (seen once in bdwgc's gctest). A
     * signal that lands here parks the thread on the way out, as it would
     * have stopped it a moment later. */
    rudo__runtime_enter();
    void *obj = find_object_in(h, a, pp);
    rudo__runtime_leave();
    return obj;
}

bool rudo_is_heap_ptr(const void *p) {
    rudo__heap *h = rudo__need_heap("rudo_is_heap_ptr");
    return rudo__find_object(h, p, NULL) != NULL;
}

void *rudo_base(const void *p) {
    rudo__heap *h = rudo__need_heap("rudo_base");
    return rudo__find_object(h, p, NULL);
}

/* The page of the object whose base is p; aborts naming fn otherwise. */
static rudo__page *object_page(const void *p, const char *fn) {
    rudo__heap *h = rudo__need_heap(fn);
    rudo__page *pg = NULL;
    if (!p) /* find_object's NULL answer would look like a match */
        rudo__fatal(fn, "the object is NULL");
    if (rudo__find_object(h, p, &pg) != p)
        rudo__fatal(fn, "%p is not the base of a heap object", p);
    return pg;
}

size_t rudo_size(const void *p) {
    return object_page(p, "rudo_size")->cell_size;
}

rudo_kind rudo_kind_of(const void *p) {
    return object_page(p, "rudo_kind_of")->kind;
}



void rudo_heap_bounds(void **lo, void **hi) {
    rudo__heap *h = rudo__need_heap("rudo_heap_bounds");
    /* The reservation never moves or grows while the heap exists, so the
     * fields are read without a lock. */
    if (lo)
        *lo = h->base;
    if (hi)
        *hi = h->base + h->reserve;
}

void rudo_stop_signals(int *suspend, int *restart) {
    rudo__heap *h = rudo__need_heap("rudo_stop_signals");
    /* Immutable after creation; scan_stacks false turns signals off too
     * (rudo_thread_attach_flags). */
    bool on = h->cfg.suspend_signal != 0 && h->cfg.scan_stacks;
    if (suspend)
        *suspend = on ? (int)h->cfg.suspend_signal : 0;
    if (restart)
        *restart = on ? (int)h->cfg.restart_signal : 0;
}
