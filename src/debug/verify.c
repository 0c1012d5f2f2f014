/* verify.c — the heap verifier and test hooks. Ordinary code behind a
 * runtime flag (RUDO_DEBUG builds, RUDO_VERIFY=1), so it cannot rot. */
#include "debug/debug.h"
#include "heap/heap.h"
#include "mark/mark.h"
#include "threads/threads.h"

/* The allocated cell containing v and its mark, read from the raw bits
 * (after marking, find_object would call every unmarked cell free). */
static bool raw_lookup(rudo__heap *h, void *v, bool *marked) {
    rudo__page *p;
    size_t i;
    if (!rudo__cell_of(h, v, &p, &i) || !rudo__allocated(p, i))
        return false;
    *marked = rudo__marked(p, i);
    return true;
}

static void check_word(rudo__heap *h, void *from, void *v) {
    bool marked;
    if (raw_lookup(h, v, &marked) && !marked)
        rudo__fatal("rudo verify", "marked object %p holds %p, an allocated "
                    "but unmarked object", from, v);
}

/* Tracer for callback kinds: checks each reported slot at flush time. */
typedef struct {
    rudo_tracer tr;
    void **buf[64];
    void *obj;
} vtracer;

static void vflush(rudo_tracer *tr) {
    vtracer *t = (vtracer *)tr;
    rudo__heap *h = rudo__the_heap;
    for (void ***s = t->buf; s < t->tr.rudo__cur; s++)
        check_word(h, t->obj, **s);
    t->tr.rudo__cur = t->buf;
}

/* A weak slot may point to an object the collection did not mark (and
 * cleared it already, or will): nothing to check. */
static void vweak(rudo_tracer *tr, void **slot) {
    (void)tr;
    (void)slot;
}

static void verify_object(rudo__heap *h, rudo__page *p, char *obj) {
    const rudo__kind *k = &h->kinds[p->kind];
    void **w = (void **)obj;
    size_t nw = p->cell_size / sizeof(void *);
    switch (k->tracing) {
    case RUDO_TRACE_ATOMIC:
        break;
    case RUDO_TRACE_CONSERVATIVE:
        for (size_t i = 0; i < nw; i++)
            check_word(h, obj, w[i]);
        break;
    case RUDO_TRACE_LAYOUT:
        for (size_t i = 0; i < nw; i++)
            if (rudo__bit(k->layout, i % k->layout_words))
                check_word(h, obj, w[i]);
        break;
    case RUDO_TRACE_CALLBACK: {
        vtracer t;
        t.tr.rudo__cur = t.buf;
        t.tr.rudo__end = t.buf + 64;
        t.tr.rudo__flush = vflush;
        t.tr.rudo__weak = vweak;
        t.obj = obj;
        k->trace(obj, p->cell_size, &t.tr);
        vflush(&t.tr);
        break;
    }
    case RUDO_TRACE_EPHEMERON:
        /* After the fixpoint, an ephemeron's key is reachable (then the
         * value must be marked) or it was cleared with its value. */
        check_word(h, obj, w[0]);
        check_word(h, obj, w[1]);
        break;
    }
}

void rudo__debug_verify_heap(void) {
    rudo__heap *h = rudo__need_heap("rudo__debug_verify_heap");
    for (size_t pi = 0; pi < rudo__hwm(h); pi = rudo__pages_next(h, pi)) {
        rudo__page *p = &h->pages[pi];
        if (p->type != RUDO_PAGE_SMALL && p->type != RUDO_PAGE_LARGE)
            continue;
        rudo__page_check(p);
        char *start = rudo__page_addr(p);
        for (size_t i = 0; i < p->ncells; i++) {
            bool m = rudo__marked(p, i);
            if (m && !rudo__allocated(p, i))
                rudo__fatal("rudo verify", "free cell %p is marked",
                            (void *)(start + i * p->cell_size));
            if (m)
                verify_object(h, p, start + i * p->cell_size);
        }
    }
}

bool rudo__debug_is_marked(const void *obj) {
    rudo__heap *h = rudo__need_heap("rudo__debug_is_marked");
    rudo__page *p = rudo__page_of(h, obj);
    size_t i;
    if (!p)
        rudo__fatal("rudo__debug_is_marked", "%p is not in the heap", obj);
    if (!rudo__cell_of(h, obj, &p, &i))
        return false; /* the last collection found its whole page dead */
    return rudo__marked(p, i);
}

size_t rudo__debug_free_pages(void) {
    rudo__heap *h = rudo__need_heap("rudo__debug_free_pages");
    return rudo__hwm(h) - h->pages_in_use;
}

size_t rudo__debug_used_pages(void) {
    return rudo__need_heap("rudo__debug_used_pages")->pages_in_use;
}

void rudo__debug_break_lock_order(void) {
    rudo__heap *h = rudo__need_heap("rudo__debug_break_lock_order");
    rudo__lock_acquire(&h->heap_lock);
    rudo__lock_acquire(&h->world.lock);
    rudo__lock_release(&h->world.lock);
    rudo__lock_release(&h->heap_lock);
}

unsigned rudo__debug_markers(void) {
    rudo__heap *h = rudo__need_heap("rudo__debug_markers");
    return h->pool ? h->pool->n : 0;
}

bool rudo__debug_markers_quiescent(void) {
    rudo__heap *h = rudo__need_heap("rudo__debug_markers_quiescent");
    rudo__mark_pool *pool = h->pool;
    if (!pool)
        return true;
    rudo__lock_acquire(&pool->lock);
    bool ok = pool->done && pool->active == 0 && pool->finished == pool->n - 1;
    for (unsigned i = 0; i < pool->n; i++)
        ok = ok && pool->m[i]->inbox_n == 0;
    rudo__lock_release(&pool->lock);
    return ok;
}

void rudo__debug_set_mark(const void *addr, bool marked) {
    rudo__heap *h = rudo__need_heap("rudo__debug_set_mark");
    rudo__page *p;
    size_t i;
    if (!rudo__cell_of(h, addr, &p, &i))
        rudo__fatal("rudo__debug_set_mark", "%p is not in a heap cell", addr);
    _Atomic uint64_t *w = &p->bits[i / 64].mark;
    uint64_t bit = (uint64_t)1 << (i % 64);
    rudo__st(w, marked ? rudo__ld(w) | bit : rudo__ld(w) & ~bit);
}

uint64_t rudo__debug_signal_stops(void) {
    rudo__heap *h = rudo__need_heap("rudo__debug_signal_stops");
    /* Under gc_lock, with no collection running: the collector counts it. */
    rudo__lock_idle(h);
    uint64_t n = h->world.signal_stops;
    rudo__lock_release(&h->world.lock);
    return n;
}
