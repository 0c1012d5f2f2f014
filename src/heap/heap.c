/* heap.c — the heap pointer, error strings, and address queries. Creating
 * and destroying the heap is the collector layer's (src/gc/gc.c). */
#include <stdlib.h>

#include "platform/platform.h"

#include "base/base.h"
#include "heap/heap.h"

rudo__heap *rudo__the_heap;

/* Where the barrier's card marks go when there is no heap: one byte that
 * nobody reads (rudo.h). */
static uint8_t no_cards[1];

/* The inline barrier's copy of the heap's card table (rudo.h): written by
 * rudo__barrier_publish while no mutator runs (heap creation and
 * destruction), read plainly by the barrier afterwards. */
struct rudo__barrier rudo__barrier = {no_cards, 0};

void rudo__barrier_publish(const rudo__heap *h) {
    /* The real table even when the heap is not generational: the marks
     * then land on cards nobody reads, instead of all on one byte that
     * every thread would write. */
    if (h)
        rudo__barrier = (struct rudo__barrier){h->cards,
                                               (h->reserve >> RUDO_CARD_SHIFT) - 1};
    else
        rudo__barrier = (struct rudo__barrier){no_cards, 0};
}

rudo__heap *rudo__need_heap(const char *fn) {
    rudo__heap *h = rudo__the_heap;
    if (RUDO_UNLIKELY(!h))
        rudo__fatal(fn, "no heap (call rudo_heap_create first)");
    return h;
}

const char *rudo_strerror(int err) {
    switch (err) {
    case RUDO_OK: return "success";
    case RUDO_EINVAL: return "invalid argument";
    case RUDO_EEXIST: return "already exists";
    case RUDO_ENOENT: return "not found";
    case RUDO_ENOMEM: return "out of memory";
    case RUDO_ESTATE: return "wrong state";
    default: return "unknown error";
    }
}

/* ---- the heap's memory ------------------------------------------------------ */

static void *map_table(size_t bytes) {
    return rudo__os_reserve(bytes, 4096);
}

bool rudo__heap_map(rudo__heap *h) {
    h->reserve = RUDO_RESERVE_DEFAULT;
    /* A small max_heap reserves twice what it bounds (plus a page):
     * max_heap bounds the pages in use, not the address range, and the
     * slack lets a large object find a span past pages that fragmentation
     * left scattered. Written as a comparison with a quotient: max_heap may
     * be anything up to SIZE_MAX, which means "no bound but the
     * reservation". */
    if (h->cfg.max_heap && h->cfg.max_heap < (h->reserve - 2 * RUDO_PAGE_SIZE) / 2) {
        size_t want = 2 * h->cfg.max_heap + RUDO_PAGE_SIZE;
        /* A power of two (see below). */
        h->reserve = RUDO_PAGE_SIZE;
        while (h->reserve < want)
            h->reserve *= 2;
    }
    /* The range is a power of two aligned to its size, so the barrier
     * finds a slot's card with a shift and a mask, with no range check:
     * (addr >> 9) & (reserve / 512 - 1) is the card of an address in the
     * heap, and some card for any other address (rudo.h). */
    h->base = rudo__os_reserve(h->reserve, h->reserve);
    /* Where address space is limited (ulimit -v, valgrind), take less. */
    while (!h->base && h->reserve > ((size_t)1 << 30) &&
           (!h->cfg.max_heap || h->reserve / 2 > h->cfg.max_heap)) {
        h->reserve /= 2;
        h->base = rudo__os_reserve(h->reserve, h->reserve);
    }
    h->npages = h->reserve >> RUDO_PAGE_SHIFT;
    h->pages_map_bytes = h->npages * sizeof(rudo__page);
    h->pages = h->base ? map_table(h->pages_map_bytes) : NULL;
    h->free_map_bytes = (h->npages + 63) / 64 * 8;
    h->free_map = h->pages ? map_table(h->free_map_bytes) : NULL;
    h->tail_dist_bytes = h->npages * sizeof *h->tail_dist;
    h->tail_dist = h->free_map ? map_table(h->tail_dist_bytes) : NULL;
    size_t lists = (size_t)RUDO_MAX_KINDS * RUDO_NCLASSES * sizeof(rudo__page_list);
    h->avail = h->tail_dist ? map_table(lists) : NULL;
    /* A byte per card of the reservation (1/512 of it, reserved: only the
     * cards of pages that are written to become resident). */
    h->cards_bytes = h->reserve >> RUDO_CARD_SHIFT;
    h->cards = h->avail ? map_table(h->cards_bytes) : NULL;
    if (!h->cards) {
        if (h->avail) rudo__os_release(h->avail, lists);
        if (h->tail_dist) rudo__os_release((void *)h->tail_dist, h->tail_dist_bytes);
        if (h->free_map) rudo__os_release(h->free_map, h->free_map_bytes);
        if (h->pages) rudo__os_release(h->pages, h->pages_map_bytes);
        if (h->base) rudo__os_release(h->base, h->reserve);
        return false;
    }
    return true;
}

void rudo__heap_unmap(rudo__heap *h) {
    rudo__os_release(h->cards, h->cards_bytes);
    rudo__os_release(h->avail,
                     (size_t)RUDO_MAX_KINDS * RUDO_NCLASSES * sizeof(rudo__page_list));
    rudo__os_release((void *)h->tail_dist, h->tail_dist_bytes);
    rudo__os_release(h->free_map, h->free_map_bytes);
    rudo__os_release(h->pages, h->pages_map_bytes);
    rudo__os_release(h->base, h->reserve);
}
