/* cards.c — what a minor collection marks besides the roots: the old
 * objects on dirty cards.
 *
 * Generational mode keeps mark bits between collections (sticky marks): a
 * marked object is old. A minor collection does not clear them, so it
 * never traces an old object through marking; it treats every old object
 * as live. What old objects may hold that marking would miss are pointers
 * to young objects stored since the last collection, and every such store
 * went through the barrier (rudo.h, rudo_write), which dirtied the card of
 * the slot. So tracing the old objects on dirty cards, plus the roots,
 * reaches every young object that is reachable (docs/design.md,
 * "Generations", states the invariant).
 *
 * Kinds without a barrier count as dirty everywhere: conservative objects
 * are written by plain C. Atomic objects hold no pointers.
 *
 * The tasks are made before anything is marked, and they save the mark
 * bits of their page then: while tasks run, other markers mark young
 * objects on the same pages, and a task must trace only the objects that
 * were old when the collection began (a young one is traced by whoever
 * marked it; tracing it again would be harmless, but ephemerons would be
 * counted twice). Tasks are divided among the markers as root tasks are
 * (mark.c), and what they mark goes through the deques, so minor
 * collections are parallel like major ones. Cards are cleared only after
 * marking has ended (rudo__cards_clear). */
#include "base/base.h"
#include "mark/mark.h"

/* Whether any of the n cards from c is dirty. */
static bool any_dirty(const uint8_t *c, size_t n) {
    /* Cards come in whole pages (128 bytes, 8-byte aligned): words. */
    const uint64_t *w = (const uint64_t *)(const void *)c;
    for (size_t i = 0; i < n / 8; i++)
        if (w[i])
            return true;
    for (size_t i = n / 8 * 8; i < n; i++)
        if (c[i])
            return true;
    return false;
}

/* A small page: saves its marks; false (nothing saved) if none is set. */
static bool save_marks(rudo__mark_pool *pool, const rudo__page *p, size_t *at) {
    size_t nw = (p->ncells + 63) / 64;
    if (pool->nsnap + nw > pool->cap_snap) {
        size_t cap = pool->cap_snap;
        while (cap < pool->nsnap + nw)
            pool->snap = rudo__grow(pool->snap, &cap, sizeof *pool->snap, 4096,
                                    "rudo_collect", "out of memory for card tasks");
        pool->cap_snap = cap;
    }
    uint64_t any = 0;
    for (size_t w = 0; w < nw; w++)
        any |= pool->snap[pool->nsnap + w] = rudo__ld(&p->bits[w].mark);
    if (!any)
        return false;
    *at = pool->nsnap;
    pool->nsnap += nw;
    return true;
}

size_t rudo__mark_cards(rudo__heap *h) {
    rudo__mark_pool *pool = h->pool;
    pool->nsnap = 0;
    size_t pages = 0;
    for (size_t pi = 0; pi < rudo__hwm(h); pi = rudo__pages_next(h, pi)) {
        rudo__page *p = &h->pages[pi];
        if (p->type != RUDO_PAGE_SMALL && p->type != RUDO_PAGE_LARGE)
            continue;
        rudo_tracing tr = h->kinds[p->kind].tracing;
        if (tr == RUDO_TRACE_ATOMIC)
            continue;
        bool all = tr == RUDO_TRACE_CONSERVATIVE;
        const uint8_t *cards = rudo__page_cards(h, pi);
        if (p->type == RUDO_PAGE_SMALL) {
            size_t snap;
            if ((all || any_dirty(cards, RUDO_CARDS_PER_PAGE)) &&
                save_marks(pool, p, &snap)) {
                rudo__mark_add_task(pool, (struct rudo__root_task){
                    .type = RUDO_TASK_CARDS, .all = all, .first = pi,
                    .c0 = 0, .c1 = RUDO_CARDS_PER_PAGE, .snap = snap});
                pages++;
            }
            continue;
        }
        /* A large object: young (unmarked) ones are traced if reached. */
        if (!rudo__marked(p, 0))
            continue;
        size_t ncards = (p->cell_size + ((size_t)1 << RUDO_CARD_SHIFT) - 1) >> RUDO_CARD_SHIFT;
        if (tr == RUDO_TRACE_CALLBACK || tr == RUDO_TRACE_EPHEMERON) {
            /* Traced whole: a trace callback cannot be cut into cards. */
            if (any_dirty(cards, ncards)) {
                rudo__mark_add_task(pool, (struct rudo__root_task){
                    .type = RUDO_TASK_CARDS, .first = pi, .c0 = 0,
                    .c1 = (uint32_t)ncards});
                pages++;
            }
            continue;
        }
        /* Words, card by card: one task per page of the span that has a
         * dirty card, so a wide array is shared among markers. */
        for (size_t c = 0; c < ncards; c += RUDO_CARDS_PER_PAGE) {
            size_t n = ncards - c < RUDO_CARDS_PER_PAGE ? ncards - c : RUDO_CARDS_PER_PAGE;
            if (all || any_dirty(cards + c, n)) {
                rudo__mark_add_task(pool, (struct rudo__root_task){
                    .type = RUDO_TASK_CARDS, .all = all, .first = pi,
                    .c0 = (uint32_t)c, .c1 = (uint32_t)(c + n)});
                pages++;
            }
        }
    }
    return pages;
}

/* Small page: the old objects that overlap a dirty card, each once. */
static void small_task(rudo__marker *mk, const struct rudo__root_task *t) {
    rudo__heap *h = mk->h;
    rudo__page *p = &h->pages[t->first];
    const uint64_t *old = mk->pool->snap + t->snap;
    char *start = rudo__page_addr(p);
    if (t->all) {
        for (size_t w = 0; w * 64 < p->ncells; w++)
            for (uint64_t b = old[w]; b; b &= b - 1)
                rudo__mark_trace_in(mk, start + (w * 64 + (size_t)__builtin_ctzll(b)) *
                                                    p->cell_size, p);
        return;
    }
    const uint8_t *cards = rudo__page_cards(h, t->first);
    size_t next = 0; /* cells below it were looked at */
    for (size_t c = 0; c < RUDO_CARDS_PER_PAGE; c++) {
        if (!cards[c])
            continue;
        size_t lo = rudo__cell_index(p, c << RUDO_CARD_SHIFT);
        if (lo >= p->ncells)
            break; /* the slack after the last cell */
        size_t hi = rudo__cell_index(p, ((c + 1) << RUDO_CARD_SHIFT) - 1);
        if (hi >= p->ncells)
            hi = p->ncells - 1;
        for (size_t i = lo > next ? lo : next; i <= hi; i++)
            if (rudo__bit(old, i))
                rudo__mark_trace_in(mk, start + i * p->cell_size, p);
        next = hi + 1;
    }
}

void rudo__cards_task(rudo__marker *mk, const struct rudo__root_task *t) {
    rudo__heap *h = mk->h;
    rudo__page *p = &h->pages[t->first];
    if (p->type == RUDO_PAGE_SMALL) {
        small_task(mk, t);
        return;
    }
    const rudo__kind *k = &h->kinds[p->kind];
    char *obj = rudo__page_addr(p);
    if (k->tracing == RUDO_TRACE_CALLBACK || k->tracing == RUDO_TRACE_EPHEMERON) {
        rudo__mark_trace_in(mk, obj, p);
        return;
    }
    const uint8_t *cards = rudo__page_cards(h, t->first);
    const size_t card_words = ((size_t)1 << RUDO_CARD_SHIFT) / sizeof(void *);
    size_t nw = p->cell_size / sizeof(void *);
    for (size_t c = t->c0; c < t->c1; c++) {
        if (!t->all && !cards[c])
            continue;
        size_t from = c * card_words;
        size_t to = from + card_words < nw ? from + card_words : nw;
        rudo__mark_scan_words(mk, k, obj, from, to);
    }
}

/* Clears n cards from c (whole pages: words), writing only the words that
 * are not zero: the cards of memory never written through the barrier
 * stay untouched, so they never become resident (a 48 GiB object has
 * 96 MiB of cards). */
static void clear_cards(uint8_t *c, size_t n) {
    uint64_t *w = (uint64_t *)(void *)c;
    for (size_t i = 0; i < n / 8; i++)
        if (w[i])
            w[i] = 0;
}

void rudo__cards_clear(rudo__heap *h) {
    for (size_t pi = 0; pi < rudo__hwm(h); pi = rudo__pages_next(h, pi)) {
        rudo__page *p = &h->pages[pi];
        if (p->type != RUDO_PAGE_SMALL && p->type != RUDO_PAGE_LARGE)
            continue;
        /* Atomic objects are never scanned, whatever their cards say. */
        if (h->kinds[p->kind].tracing == RUDO_TRACE_ATOMIC)
            continue;
        size_t n = p->type == RUDO_PAGE_LARGE ? p->span : 1;
        clear_cards(rudo__page_cards(h, pi), n * RUDO_CARDS_PER_PAGE);
    }
}
