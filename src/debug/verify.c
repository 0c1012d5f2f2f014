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

/* A live (marked) object that refers to one given to rudo_free since the
 * last collection: the program freed an object it still uses. Only heap
 * references count: a stale copy on a stack or in a register is common
 * and harmless once the program stops using it. */
static void check_freed(rudo__heap *h, void *from, void *v) {
    rudo__page *p, *fp;
    size_t i;
    char *cell = rudo__cell_of(h, v, &p, &i);
    if (!cell || !rudo__slotset_contains(&h->freed, (void **)(void *)cell))
        return;
    const char *from_kind = "?";
    if (rudo__cell_of(h, from, &fp, &i))
        from_kind = h->kinds[fp->kind].name;
    rudo__fatal("rudo verify", "object %p (kind %s) still refers to %p "
                "(kind %s), which was freed with rudo_free", from, from_kind,
                (void *)cell, h->kinds[p->kind].name);
}

/* Which words refer to an object, as marking reads them: any address
 * inside it, its base only (RUDO_KIND_BASE_ONLY), or its base plus a
 * registered displacement (conservative words, interior_pointers false). */
enum ref_rule { REF_INTERIOR, REF_BASE, REF_DISPLACED };

static bool refers(rudo__heap *h, void *v, enum ref_rule rule) {
    rudo__page *p;
    size_t i;
    char *cell = rudo__cell_of(h, v, &p, &i);
    if (!cell)
        return false;
    size_t d = (size_t)((char *)v - cell);
    switch (rule) {
    case REF_INTERIOR:
        return true;
    case REF_BASE:
        return d == 0;
    case REF_DISPLACED:
        return d == 0 || (d < RUDO_DISPLACEMENT_MAX &&
                          ((h->displacements[d / 64] >> (d % 64)) & 1));
    }
    return true;
}

static void check_word(rudo__heap *h, void *from, void *v, enum ref_rule rule) {
    if (rule != REF_INTERIOR && !refers(h, v, rule))
        return; /* marking ignores this word */
    if (RUDO_UNLIKELY(h->freed.live != 0))
        check_freed(h, from, v);
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
    enum ref_rule rule;     /* reported slots */
    enum ref_rule crule;    /* reported values and ranges (conservative) */
} vtracer;

static void vflush(rudo_tracer *tr) {
    vtracer *t = (vtracer *)tr;
    rudo__heap *h = rudo__the_heap;
    for (void ***s = t->buf; s < t->tr.rudo__cur; s++)
        check_word(h, t->obj, **s, t->rule);
    t->tr.rudo__cur = t->buf;
}

/* rudo_visit_value and rudo_visit_range: checked at once, with the rule
 * of a conservative word, as marking applies it. */
static void vvalue(rudo_tracer *tr, void *v) {
    vtracer *t = (vtracer *)tr;
    check_word(rudo__the_heap, t->obj, v, t->crule);
}

__attribute__((no_sanitize_address, no_sanitize_thread)) static void
vrange(rudo_tracer *tr, void *lo, void *hi) {
    uintptr_t a = ((uintptr_t)lo + sizeof(void *) - 1) & ~(uintptr_t)(sizeof(void *) - 1);
    for (void **w = (void **)a; (char *)(w + 1) <= (char *)hi; w++)
        vvalue(tr, *w);
}

/* The card check looks at slots: values and ranges have none to judge. */
static void cvalue(rudo_tracer *tr, void *v) {
    (void)tr;
    (void)v;
}
static void crange(rudo_tracer *tr, void *lo, void *hi) {
    (void)tr;
    (void)lo;
    (void)hi;
}

/* rudo_visit_mark_only names no reference: nothing to check (the object
 * it marked may hold unmarked ones, which its own check reports). */
static void vmark_only(rudo_tracer *tr, const void *p) {
    (void)tr;
    (void)p;
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
    enum ref_rule precise = k->base_only ? REF_BASE : REF_INTERIOR;
    enum ref_rule conservative = h->cfg.interior_pointers ? REF_INTERIOR : REF_DISPLACED;
    switch (k->tracing) {
    case RUDO_TRACE_ATOMIC:
        break;
    case RUDO_TRACE_CONSERVATIVE:
        for (size_t i = 0; i < nw; i++)
            check_word(h, obj, w[i], conservative);
        break;
    case RUDO_TRACE_LAYOUT:
        for (size_t i = 0; i < nw; i++)
            if (rudo__bit(k->layout, i % k->layout_words))
                check_word(h, obj, w[i], precise);
        break;
    case RUDO_TRACE_CALLBACK: {
        vtracer t;
        t.tr.rudo__cur = t.buf;
        t.tr.rudo__end = t.buf + 64;
        t.tr.rudo__flush = vflush;
        t.tr.rudo__weak = vweak;
        t.tr.rudo__value = vvalue;
        t.tr.rudo__range = vrange;
        t.tr.rudo__mark_only = vmark_only;
        t.obj = obj;
        t.rule = precise;
        t.crule = conservative;
        k->trace(obj, p->cell_size, &t.tr);
        vflush(&t.tr);
        break;
    }
    case RUDO_TRACE_EPHEMERON:
        /* After the fixpoint, an ephemeron's key is reachable (then the
         * value must be marked) or it was cleared with its value. */
        check_word(h, obj, w[0], REF_INTERIOR);
        check_word(h, obj, w[1], REF_INTERIOR);
        break;
    }
}

/* The objects freed since the last collection have been checked: they die
 * in this one (a root may still have reached one: the program freed it,
 * and its memory is reused as in a build without verification). Their
 * fin bits (set by rudo_free, so no kind finalizer runs) go with the cell
 * when the page is swept. */
static void end_quarantine(rudo__heap *h) {
    if (h->freed.live == 0)
        return;
    for (size_t k = 0; k < h->freed.cap; k++) {
        void **obj = rudo__slotset_at(&h->freed, k);
        rudo__page *p;
        size_t i;
        if (obj && rudo__cell_of(h, obj, &p, &i)) {
            _Atomic uint64_t *w = &p->bits[i / 64].mark;
            rudo__st(w, rudo__ld(w) & ~((uint64_t)1 << (i % 64)));
        }
    }
    rudo__slotset_free(&h->freed);
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
    end_quarantine(h);
}

/* ---- the remembered set (generational mode) ---- */

static void report_card(rudo__heap *h, const rudo__page *p, char *obj, void **slot,
                        const char *when) {
    rudo__fatal("rudo verify", "old object %p (kind '%s') holds young object "
                "%p in slot %p (offset %zu), whose card is clean%s: a store "
                "without rudo_write (generational mode)", (void *)obj,
                h->kinds[p->kind].name, *slot, (void *)slot,
                (size_t)((char *)slot - obj), when);
}

/* Slot `slot` of old object obj holds v: it must not be a young object
 * unless the slot's card is dirty. With h->cards_hold (a thread is
 * frozen) the slot is only noted, for rudo__debug_verify_cards_held. */
static void check_card(rudo__heap *h, const rudo__page *p, char *obj, void **slot) {
    bool marked;
    void *v = *slot;
    if (!raw_lookup(h, v, &marked) || marked)
        return;
    size_t card = (size_t)((char *)slot - h->base) >> RUDO_CARD_SHIFT;
    if (h->cards[card])
        return;
    if (h->cards_hold) {
        rudo__slotset_add_value(&h->cards_held, slot, obj, "rudo verify");
        return;
    }
    report_card(h, p, obj, slot, "");
}

typedef struct {
    rudo_tracer tr;
    void **buf[64];
    const rudo__page *p;
    char *obj;
} ctracer;

static void cflush(rudo_tracer *tr) {
    ctracer *t = (ctracer *)tr;
    for (void ***s = t->buf; s < t->tr.rudo__cur; s++)
        check_card(rudo__the_heap, t->p, t->obj, *s);
    t->tr.rudo__cur = t->buf;
}

/* A weak field needs the barrier too: a minor collection reports the
 * weak fields of old objects only on dirty cards, so a young target
 * stored without it is freed and the field left dangling, not cleared. */
static void cweak(rudo_tracer *tr, void **slot) {
    ctracer *t = (ctracer *)tr;
    check_card(rudo__the_heap, t->p, t->obj, slot);
}

static void verify_old_object(rudo__heap *h, const rudo__page *p, char *obj) {
    const rudo__kind *k = &h->kinds[p->kind];
    void **w = (void **)obj;
    size_t nw = p->cell_size / sizeof(void *);
    switch (k->tracing) {
    case RUDO_TRACE_ATOMIC:
    case RUDO_TRACE_CONSERVATIVE: /* no barrier: scanned whole by minors */
        break;
    case RUDO_TRACE_LAYOUT:
        for (size_t i = 0; i < nw; i++)
            if (rudo__bit(k->layout, i % k->layout_words))
                check_card(h, p, obj, &w[i]);
        break;
    case RUDO_TRACE_CALLBACK: {
        ctracer t;
        t.tr.rudo__cur = t.buf;
        t.tr.rudo__end = t.buf + 64;
        t.tr.rudo__flush = cflush;
        t.tr.rudo__weak = cweak;
        t.tr.rudo__value = cvalue;
        t.tr.rudo__range = crange;
        t.tr.rudo__mark_only = vmark_only;
        t.p = p;
        t.obj = obj;
        k->trace(obj, p->cell_size, &t.tr);
        cflush(&t.tr);
        break;
    }
    case RUDO_TRACE_EPHEMERON:
        /* The key too: an old ephemeron on a clean card is not looked at,
         * so a young key would never be judged. */
        check_card(h, p, obj, &w[0]);
        check_card(h, p, obj, &w[1]);
        break;
    }
}

void rudo__debug_verify_cards(bool hold) {
    rudo__heap *h = rudo__need_heap("rudo__debug_verify_cards");
    h->cards_hold = hold;
    for (size_t pi = 0; pi < rudo__hwm(h); pi = rudo__pages_next(h, pi)) {
        rudo__page *p = &h->pages[pi];
        if (p->type != RUDO_PAGE_SMALL && p->type != RUDO_PAGE_LARGE)
            continue;
        char *start = rudo__page_addr(p);
        for (size_t i = 0; i < p->ncells; i++)
            if (rudo__marked(p, i))
                verify_old_object(h, p, start + i * p->cell_size);
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
    rudo__lock_idle(h, "rudo__debug_signal_stops");
    uint64_t n = h->world.signal_stops;
    rudo__lock_release(&h->world.lock);
    return n;
}

void rudo__debug_verify_cards_held(void) {
    rudo__heap *h = rudo__need_heap("rudo__debug_verify_cards_held");
    h->cards_hold = false;
    if (h->cards_held.live == 0)
        return;
    for (size_t k = 0; k < h->cards_held.cap; k++) {
        void **slot = rudo__slotset_at(&h->cards_held, k);
        char *obj = rudo__slotset_value_at(&h->cards_held, k);
        bool marked;
        rudo__page *p;
        size_t i;
        /* The world is still stopped: the slot holds what it held. */
        if (slot && raw_lookup(h, *slot, &marked) && !marked &&
            rudo__cell_of(h, obj, &p, &i))
            report_card(h, p, obj, slot, ", and marking did not reach it");
    }
    rudo__slotset_free(&h->cards_held);
}
