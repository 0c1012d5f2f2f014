/* page.c — the page pool: spans of pages taken from and returned to the
 * reserved range, page lists, and releasing idle memory to the OS. */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "heap/heap.h"
#include "platform/platform.h"

void rudo__list_push(rudo__page_list *l, rudo__page *p) {
    p->prev = NULL;
    p->next = l->head;
    if (l->head)
        l->head->prev = p;
    l->head = p;
    l->count++;
}

void rudo__list_remove(rudo__page_list *l, rudo__page *p) {
    if (p->prev)
        p->prev->next = p->next;
    else
        l->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->next = p->prev = NULL;
    l->count--;
}

rudo__page *rudo__list_pop(rudo__page_list *l) {
    rudo__page *p = l->head;
    if (p)
        rudo__list_remove(l, p);
    return p;
}

void rudo__avail_add(rudo__heap *h, rudo__page *p) {
    if (p->listed)
        return;
    rudo__list_push(&h->avail[p->kind * RUDO_NCLASSES + p->cls], p);
    p->listed = 1;
}

void rudo__avail_remove(rudo__heap *h, rudo__page *p) {
    if (!p->listed)
        return;
    rudo__list_remove(&h->avail[p->kind * RUDO_NCLASSES + p->cls], p);
    p->listed = 0;
}

rudo__page *rudo__avail_pop(rudo__heap *h, rudo_kind kind, unsigned cls) {
    rudo__page *p = rudo__list_pop(&h->avail[kind * RUDO_NCLASSES + cls]);
    if (p)
        p->listed = 0;
    return p;
}

static bool is_free(const rudo__heap *h, size_t i) {
    return (h->free_map[i / 64] >> (i % 64)) & 1;
}

static void set_free(rudo__heap *h, size_t i, bool f) {
    if (f)
        h->free_map[i / 64] |= (uint64_t)1 << (i % 64);
    else
        h->free_map[i / 64] &= ~((uint64_t)1 << (i % 64));
}

/* First index >= from of a free page below hwm, or hwm. */
static size_t next_free(const rudo__heap *h, size_t from) {
    size_t i = from;
    while (i < rudo__hwm(h)) {
        uint64_t w = h->free_map[i / 64] >> (i % 64);
        if (w) {
            i += (size_t)__builtin_ctzll(w);
            return i < rudo__hwm(h) ? i : rudo__hwm(h);
        }
        i = (i / 64 + 1) * 64;
    }
    return rudo__hwm(h);
}

/* Finds n consecutive free pages below hwm (first fit), or returns hwm
 * when the span must be taken from the untouched end of the reservation
 * (possibly extending a free run that ends at hwm). */
static size_t find_span(rudo__heap *h, size_t n) {
    size_t i = next_free(h, h->free_hint);
    if (n == 1 || i == rudo__hwm(h))
        return i;
    while (i < rudo__hwm(h)) {
        size_t j = i;
        while (j < rudo__hwm(h) && j - i < n && is_free(h, j))
            j++;
        if (j - i == n || j == rudo__hwm(h))
            return i;
        i = next_free(h, j + 1);
    }
    return rudo__hwm(h);
}

rudo__page *rudo__pages_alloc(size_t n, size_t *scan) {
    rudo__heap *h = rudo__the_heap;
    *scan = 0;
    /* As divisions: n may be anything a caller computed from a size. */
    if (h->cfg.max_heap && (n > h->cfg.max_heap / RUDO_PAGE_SIZE ||
                            h->pages_in_use > h->cfg.max_heap / RUDO_PAGE_SIZE - n))
        return NULL;
    if (n > h->npages)
        return NULL;
    size_t i = find_span(h, n);
    if (i > h->npages - n)
        return NULL;
    size_t old_hwm = rudo__hwm(h);
    if (i + n > old_hwm) {
        /* Descriptors past hwm were never written: they read as free,
         * uncommitted pages, and their memory is fresh (zero). */
        for (size_t j = old_hwm; j < i + n; j++)
            set_free(h, j, true);
        /* Relaxed: see the field (heap.h); heap_lock orders the writers. */
        atomic_store_explicit(&h->hwm, i + n, memory_order_relaxed);
    }
    for (size_t j = i; j < i + n; j++) {
        set_free(h, j, false);
        h->pages_committed++;
        /* A tail's descriptor is read only where it may have been
         * written (below the old hwm): a fresh span writes the first
         * descriptor alone. */
        if (j < old_hwm || j == i) {
            rudo__page *p = &h->pages[j];
            if (p->committed) {
                /* Recycled memory: the caller zeroes it (rudo__pages_zero);
                 * fresh or released memory is already zero. It was
                 * counted as committed already. */
                rudo__list_remove(&h->release, p);
                p->unzeroed = 1;
                *scan = j - i + 1;
                h->pages_committed--;
            }
            /* A tail stays "uncommitted": its memory is released with the
             * object (rudo__pages_free). */
            p->committed = j == i;
        }
        if (j > i) /* relaxed: see tail_dist (heap.h) */
            atomic_store_explicit(&h->tail_dist[j], (uint32_t)(j - i),
                                  memory_order_relaxed);
    }
    rudo__page *p = &h->pages[i];
    p->type = RUDO_PAGE_FREE; /* until the caller gives it its type */
    p->live_cells = 0;
    p->settled = 0;
    p->span = 0;
    p->overflow = 0;
    p->dirty = 0;
    if (i == h->free_hint)
        h->free_hint = i + n;
    h->pages_in_use += n;
    if (h->pages_committed > h->pages_committed_peak)
        h->pages_committed_peak = h->pages_committed;
    return p;
}

void rudo__pages_zero(rudo__page *p, size_t scan) {
    for (size_t j = 0; j < scan; j++)
        if (p[j].unzeroed) {
            memset(rudo__page_addr(&p[j]), 0, RUDO_PAGE_SIZE);
            p[j].unzeroed = 0;
        }
}

void rudo__pages_free(rudo__page *p, size_t n) {
    rudo__heap *h = rudo__the_heap;
    size_t first = (size_t)(p - h->pages);
    /* Off every list: not current, not on its avail list. */
    RUDO_ASSERT(!p->listed && n >= 1 && first + n <= rudo__hwm(h));
    p->type = RUDO_PAGE_FREE;
    /* Relaxed: the page was not current (retired earlier, with release). */
    atomic_store_explicit(&p->owner_list, NULL, memory_order_relaxed);
    p->release_at = h->gc_count + h->cfg.release_delay;
    memset(p->fin, 0, sizeof p->fin);
    for (size_t w = 0; w < RUDO_BITMAP_WORDS; w++) {
        rudo__st(&p->bits[w].mark, 0);
        rudo__st(&p->bits[w].alloc, 0);
    }
    set_free(h, first, true);
    rudo__list_push(&h->release, p);
    if (n > 1) {
        /* The tails go back to the OS at once: their descriptors were
         * left as "free, uncommitted", which is now true again. Keeping
         * them committed for release_delay would need a descriptor each. */
        for (size_t j = first + 1; j < first + n; j++) {
            set_free(h, j, true);
            /* Relaxed: see tail_dist (heap.h). */
            atomic_store_explicit(&h->tail_dist[j], 0, memory_order_relaxed);
        }
        rudo__os_decommit(h->base + ((first + 1) << RUDO_PAGE_SHIFT),
                          (n - 1) << RUDO_PAGE_SHIFT);
        h->pages_committed -= n - 1;
    }
    if (first < h->free_hint)
        h->free_hint = first;
    h->pages_in_use -= n;
}

size_t rudo__pages_next(const struct rudo__heap *h, size_t i) {
    const rudo__page *p = &h->pages[i];
    i += p->type == RUDO_PAGE_LARGE ? p->span : 1;
    /* Skip free pages a word of the free map at a time. */
    size_t hwm = rudo__hwm(h);
    while (i < hwm) {
        uint64_t used = ~(h->free_map[i / 64] >> (i % 64));
        if (i % 64)
            used &= ~(uint64_t)0 >> (i % 64);
        if (used)
            return i + (size_t)__builtin_ctzll(used) < hwm
                       ? i + (size_t)__builtin_ctzll(used) : hwm;
        i = (i / 64 + 1) * 64;
    }
    return hwm;
}

void rudo__pages_note_in_use(rudo__heap *h) {
    h->in_use_recent[h->gc_count % RUDO_RETAIN_WINDOW] = h->pages_in_use;
}

static void release_one(rudo__heap *h, rudo__page *p) {
    rudo__list_remove(&h->release, p);
    rudo__os_decommit(rudo__page_addr(p), RUDO_PAGE_SIZE);
    p->committed = 0;
    h->pages_committed--;
}

/* Highest address first (qsort). */
static int by_address_down(const void *a, const void *b) {
    const rudo__page *x = *(rudo__page *const *)a, *y = *(rudo__page *const *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

void rudo__pages_release_due(void) {
    rudo__heap *h = rudo__the_heap;
    /* The hysteresis target: what the program had in use at the high
     * point of any recent cycle. Pages allocated next come from the lowest
     * free index (find_span), so the pages kept are the lowest due ones:
     * releasing from the top keeps exactly those that the next cycles
     * take first, and lets the high end of the heap go. */
    size_t keep = 0;
    if (h->cfg.release_delay)
        for (unsigned i = 0; i < RUDO_RETAIN_WINDOW; i++)
            if (h->in_use_recent[i] > keep)
                keep = h->in_use_recent[i];
    if (h->pages_committed <= keep)
        return;
    size_t n = 0;
    /* Meta memory and rudo__sort: the world is stopped (base.h). */
    rudo__page **due = h->release.count ? rudo__meta_alloc(h->release.count * sizeof *due) : NULL;
    for (rudo__page *p = h->release.head, *next; p; p = next) {
        next = p->next;
        if (p->release_at > h->gc_count)
            continue;
        if (due)
            due[n++] = p;
        else if (h->pages_committed > keep)
            release_one(h, p); /* no memory to sort: in list order */
    }
    if (!due)
        return;
    rudo__sort(due, n, sizeof *due, by_address_down);
    for (size_t i = 0; i < n && h->pages_committed > keep; i++)
        release_one(h, due[i]);
    rudo__meta_free(due);
}

void rudo__page_check(const rudo__page *p) {
    const char *fn = "rudo__page_check";
    size_t idx = (size_t)(p - rudo__the_heap->pages);
    if (p->type == RUDO_PAGE_SMALL) {
        if (p->cls >= RUDO_NCLASSES || p->cell_size != rudo__class_size[p->cls] ||
            p->ncells != RUDO_PAGE_SIZE / p->cell_size)
            rudo__fatal(fn, "page %zu: size class fields disagree", idx);
        for (size_t w = 0; w < RUDO_BITMAP_WORDS; w++) {
            uint64_t m = rudo__ld(&p->bits[w].mark), a = rudo__ld(&p->bits[w].alloc);
            uint64_t valid = rudo__valid_bits(p->ncells, w);
            if ((m | a | p->fin[w]) & ~valid)
                rudo__fatal(fn, "page %zu: bit beyond the last cell", idx);
            if (p->fin[w] & ~a)
                rudo__fatal(fn, "page %zu: finalized cell not allocated", idx);
        }
    } else if (p->type == RUDO_PAGE_LARGE) {
        if (p->span == 0 || p->ncells != 1)
            rudo__fatal(fn, "page %zu: large object without span", idx);
    }
}

void rudo__page_touch(rudo__heap *h, rudo__page *p) {
    /* New cells will be allocated here: unmarked, young. */
    p->settled = 0;
    if (p->touched)
        return;
    if (h->ntouched == h->cap_touched)
        h->touched = rudo__grow(h->touched, &h->cap_touched, sizeof *h->touched, 256,
                                "rudo_alloc", "out of memory for the touched-page list");
    h->touched[h->ntouched++] = (size_t)(p - h->pages);
    p->touched = 1;
}
