/* sweep.c — preparing pages for marking, the eager end-of-collection pass,
 * and the lazy sweep of one page. */
#include <string.h>

#include "base/base.h"
#include "platform/platform.h"
#include "sweep/sweep.h"

static inline uint64_t mark_word(const rudo__page *p, size_t w) {
    return rudo__ld(&p->bits[w].mark);
}

void rudo__sweep_fold(rudo__page *p, size_t end) {
    for (size_t w = 0; w * 64 < end; w++) {
        uint64_t was = rudo__ld(&p->bits[w].alloc);
        /* Cells from `end` on keep their bits (rudo__alloc_thaw_all). */
        uint64_t live = was & (mark_word(p, w) | ~rudo__valid_bits(end, w));
        /* Dead cells are free now but not zeroed: the page's next sweep
         * must zero all free cells, not only the newly dead ones. */
        if (was != live)
            p->dirty = 1;
        rudo__st(&p->bits[w].alloc, live);
        p->fin[w] &= live;
    }
}

void rudo__sweep_prepare(rudo__heap *h, bool major) {
    for (size_t pi = 0; pi < rudo__hwm(h); pi = rudo__pages_next(h, pi)) {
        rudo__page *p = &h->pages[pi];
        if (p->type != RUDO_PAGE_SMALL && p->type != RUDO_PAGE_LARGE)
            continue;
        bool unswept = rudo__ld(&p->swept_gc) < h->gc_count;
        /* Every page was retired first: alloc is exact only then (heap.h);
         * but for the pages of threads suspended by signal, which stay
         * current, are swept, and had their bits made exact in place
         * (rudo__alloc_freeze_all). */
        RUDO_ASSERT(atomic_load_explicit(&p->owner_list, memory_order_relaxed) == NULL ||
                    !unswept);
        /* A minor collection has nothing to do on a swept page: its alloc
         * bits are exact and its marks stay. On an unswept one the marks
         * are still those of the last collection (nothing was allocated
         * there since), so alloc & mark is what that collection left. */
        if (!major && (!unswept || p->settled))
            continue;
        /* After this pass alloc ⊆ mark; a major collection then clears
         * the marks, and its dead old cells unsettle the page again. */
        p->settled = !major;
        if (unswept)
            rudo__sweep_fold(p, p->ncells); /* cells that died earlier become free */
        if (major)
            for (size_t w = 0; w * 64 < p->ncells; w++)
                rudo__st(&p->bits[w].mark, 0);
        rudo__st(&p->swept_gc, h->gc_count);
    }
}

/* Poison mode (RUDO_DEBUG builds, RUDO_POISON=1): fills the cells that
 * died in this collection with RUDO_POISON_BYTE, so that a program still
 * using one reads a loud, non-pointer pattern instead of its old contents.
 * Safe for the free-cell invariant: dead cells are in alloc & ~mark, which
 * the page's lazy sweep zeroes (and a freed page is zeroed on reuse). */
static void poison_dead(rudo__page *p) {
    char *start = rudo__page_addr(p);
    if (p->type == RUDO_PAGE_LARGE) {
        /* The first page only: the tails go back to the OS with the object
         * (rudo__pages_free) and read as zero from then on. */
        if (!(mark_word(p, 0) & 1))
            memset(start, RUDO_POISON_BYTE,
                   p->cell_size < RUDO_PAGE_SIZE ? p->cell_size : RUDO_PAGE_SIZE);
        return;
    }
    for (size_t w = 0; w * 64 < p->ncells; w++) {
        uint64_t dead = rudo__ld(&p->bits[w].alloc) & ~mark_word(p, w);
        for (; dead; dead &= dead - 1) {
            size_t i = w * 64 + (size_t)__builtin_ctzll(dead);
            memset(start + i * p->cell_size, RUDO_POISON_BYTE, p->cell_size);
        }
    }
}

/* The eager sweep of one page (heap_lock held): its live cells counted,
 * its place (avail list, freed) decided. Adds what it had at the last
 * sweep to *was and what it has now to *now, as (bytes, dense units). */
static void sweep_one(rudo__heap *h, rudo__page *p, uint64_t was[2], uint64_t now[2]) {
    if (h->poison && (p->type == RUDO_PAGE_SMALL || p->type == RUDO_PAGE_LARGE))
        poison_dead(p);
    if (p->type == RUDO_PAGE_SMALL) {
        size_t n = 0;
        for (size_t w = 0; w * 64 < p->ncells; w++)
            n += (size_t)__builtin_popcountll(mark_word(p, w));
        was[0] += (uint64_t)p->live_cells * p->cell_size;
        was[1] += ((uint64_t)p->live_cells << 16) / p->ncells;
        now[0] += (uint64_t)n * p->cell_size;
        now[1] += ((uint64_t)n << 16) / p->ncells;
        p->live_cells = (uint32_t)n;
        /* Still current (a thread suspended by signal allocates from it):
         * it goes on no list and is not freed (alloc.c). */
        if (atomic_load_explicit(&p->owner_list, memory_order_relaxed) != NULL)
            return;
        if (n < p->ncells && n > 0)
            rudo__avail_add(h, p);
        else
            rudo__avail_remove(h, p);
        if (n == 0)
            rudo__pages_free(p, 1);
    } else if (p->type == RUDO_PAGE_LARGE) {
        was[0] += p->live_cells ? p->cell_size : 0;
        was[1] += p->live_cells ? (uint64_t)p->span << 16 : 0;
        if (mark_word(p, 0) & 1) {
            now[0] += p->cell_size;
            now[1] += (uint64_t)p->span << 16;
            p->live_cells = 1;
        } else {
            rudo__list_remove(&h->large, p);
            rudo__pages_free(p, p->span);
        }
    }
}

size_t rudo__sweep_after_mark(rudo__heap *h, bool major) {
    uint64_t was[2] = {0, 0}, now[2] = {0, 0}; /* bytes, dense (heap.h) */
    rudo__lock_acquire(&h->heap_lock);
    rudo__pages_note_in_use(h);
    size_t live;
    if (major) {
        for (size_t pi = 0, next; pi < rudo__hwm(h); pi = next) {
            /* Taken first: freeing a large object below ends its span. */
            next = rudo__pages_next(h, pi);
            sweep_one(h, &h->pages[pi], was, now);
        }
        live = (size_t)now[0];
        h->live_pages16 = now[1];
    } else {
        /* A minor collection changes marks only where young objects are:
         * on the pages touched since the last collection. The others keep
         * their counts, place and memory; the totals move by the
         * difference on the touched ones. */
        for (size_t i = 0; i < h->ntouched; i++) {
            rudo__page *p = &h->pages[h->touched[i]];
            if (!p->touched)
                continue; /* listed twice (freed and taken again) */
            sweep_one(h, p, was, now);
        }
        live = (size_t)(h->live_bytes + now[0] - was[0]);
        h->live_pages16 = h->live_pages16 + now[1] - was[1];
    }
    /* Every collection ends the touched list: marks on the pages it held
     * are exact now, and counted. */
    for (size_t i = 0; i < h->ntouched; i++)
        h->pages[h->touched[i]].touched = 0;
    h->ntouched = 0;
    rudo__pages_release_due();
    rudo__lock_release(&h->heap_lock);
    return live;
}

size_t rudo__sweep_page(rudo__heap *h, rudo__page *p, void **head) {
    uint64_t t0 = rudo__now_ns();
    /* Not current and on no list (heap.h: a page is in exactly one place);
     * claimed by the allocator that sweeps it, if any (alloc.c). */
    void **ol = atomic_load_explicit(&p->owner_list, memory_order_relaxed);
    RUDO_ASSERT(p->type == RUDO_PAGE_SMALL && !p->listed &&
                (ol == NULL || ol == RUDO_OWNER_CLAIMED));
    (void)ol;
    RUDO_ASSERT_EXPENSIVE((rudo__page_check(p), true));
    bool unswept = rudo__ld(&p->swept_gc) < h->gc_count;
    char *start = rudo__page_addr(p);
    size_t size = p->cell_size, nfree = 0;
    void *list = NULL;
    /* A free cell is zero but for its first word (the free-list link)
     * unless it died since: cells allocated and now unmarked are zeroed,
     * in runs, one memset per run. A dirty page (cells that died in an
     * earlier collection were freed without a sweep) zeroes every free
     * cell. */
    bool dirty = p->dirty;
    /* A RUDO_KIND_UNINIT page zeroes nothing (heap.h, rudo__kind). */
    bool zero = !h->kinds[p->kind].uninit;
    /* Walk backwards so the list comes out in address order, which the
     * allocation frontier rule (heap.h) relies on. */
    for (size_t w = (p->ncells + 63) / 64; w-- > 0;) {
        uint64_t was = rudo__ld(&p->bits[w].alloc), live = was;
        if (unswept)
            live &= mark_word(p, w);
        rudo__st(&p->bits[w].alloc, live);
        p->fin[w] &= live;
        uint64_t free_bits = ~live & rudo__valid_bits(p->ncells, w);
        for (uint64_t z = zero ? (dirty ? free_bits : was & ~live) : 0; z;) {
            size_t b = (size_t)__builtin_ctzll(z);
            uint64_t rest = ~(z >> b);
            size_t n = rest ? (size_t)__builtin_ctzll(rest) : 64 - b;
            memset(start + (w * 64 + b) * size, 0, n * size);
            z = n + b >= 64 ? 0 : z & ~((((uint64_t)1 << n) - 1) << b);
        }
        while (free_bits) {
            size_t b = 63 - (size_t)__builtin_clzll(free_bits);
            free_bits &= ~((uint64_t)1 << b);
            void **cell = (void **)(start + (w * 64 + b) * size);
            *cell = list;
            list = cell;
            nfree++;
        }
    }
    p->dirty = 0;
    rudo__st(&p->swept_gc, h->gc_count);
    *head = list;
    atomic_fetch_add_explicit(&h->lazy_sweep_ns, rudo__now_ns() - t0,
                              memory_order_relaxed);
    return nfree;
}
