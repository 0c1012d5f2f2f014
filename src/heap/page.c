/* page.c — the page pool: spans of pages taken from and returned to the
 * reserved range, page lists, and releasing idle memory to the OS. */
#include <string.h>

#include "debug/debug.h"
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

rudo__page *rudo__pages_alloc(size_t n) {
    rudo__heap *h = rudo__the_heap;
    if (h->cfg.max_heap &&
        (h->pages_in_use + n) * RUDO_PAGE_SIZE > h->cfg.max_heap)
        return NULL;
    size_t i = find_span(h, n);
    if (i + n > h->npages)
        return NULL;
    if (i + n > rudo__hwm(h)) {
        for (size_t j = rudo__hwm(h); j < i + n; j++) {
            memset(&h->pages[j], 0, offsetof(rudo__page, bits));
            set_free(h, j, true);
        }
        /* Relaxed: see the field (heap.h); heap_lock orders the writers. */
        atomic_store_explicit(&h->hwm, i + n, memory_order_relaxed);
    }
    for (size_t j = i; j < i + n; j++) {
        rudo__page *p = &h->pages[j];
        set_free(h, j, false);
        if (p->committed) {
            /* Recycled memory: zero it now; fresh or released memory is
             * already zero. */
            rudo__list_remove(&h->release, p);
            memset(h->base + (j << RUDO_PAGE_SHIFT), 0, RUDO_PAGE_SIZE);
        } else {
            h->pages_committed++;
        }
        p->committed = 1;
        p->type = RUDO_PAGE_TAIL;
        p->span = j - i;
        p->overflow = 0;
        p->dirty = 0;
    }
    if (i == h->free_hint)
        h->free_hint = i + n;
    h->pages_in_use += n;
    if (h->pages_committed > h->pages_committed_peak)
        h->pages_committed_peak = h->pages_committed;
    return &h->pages[i];
}

void rudo__pages_free(rudo__page *p, size_t n) {
    rudo__heap *h = rudo__the_heap;
    size_t first = (size_t)(p - h->pages);
    for (size_t j = first; j < first + n; j++) {
        rudo__page *q = &h->pages[j];
        q->type = RUDO_PAGE_FREE;
        /* Relaxed: the page was not current (retired earlier, with release). */
        atomic_store_explicit(&q->owner_list, NULL, memory_order_relaxed);
        q->release_at = h->gc_count + h->cfg.release_delay;
        memset(q->fin, 0, sizeof q->fin);
        for (size_t w = 0; w < RUDO_BITMAP_WORDS; w++) {
            rudo__st(&q->bits[w].mark, 0);
            rudo__st(&q->bits[w].alloc, 0);
        }
        set_free(h, j, true);
        rudo__list_push(&h->release, q);
    }
    if (first < h->free_hint)
        h->free_hint = first;
    h->pages_in_use -= n;
}

void rudo__pages_release_due(void) {
    rudo__heap *h = rudo__the_heap;
    rudo__page *p = h->release.head;
    while (p) {
        rudo__page *next = p->next;
        if (p->release_at <= h->gc_count) {
            rudo__list_remove(&h->release, p);
            rudo__os_decommit(rudo__page_addr(p), RUDO_PAGE_SIZE);
            p->committed = 0;
            h->pages_committed--;
        }
        p = next;
    }
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
            uint64_t valid = w * 64 >= p->ncells ? 0
                             : (p->ncells - w * 64 >= 64 ? ~(uint64_t)0
                                : (((uint64_t)1 << (p->ncells - w * 64)) - 1));
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
