/* alloc.h — the allocation slow path (internal): taking pages for a
 * thread's size classes, large objects, and giving pages back. */
#ifndef RUDO_ALLOC_H
#define RUDO_ALLOC_H
#include "heap/heap.h"

/* Per thread, per kind: the free-list head of each size class (read by the
 * inline fast path through rudo__tl->lists[kind]) and the page each list
 * allocates from. Invariant: lists[c] != NULL implies pages[c] != NULL and
 * lists[c] points into pages[c]. */
typedef struct rudo__kind_alloc {
    void *lists[RUDO_NCLASSES];
    struct rudo__page *pages[RUDO_NCLASSES];
} rudo__kind_alloc;


/* Makes the alloc bits of every current page of m exact and detaches the
 * pages from m's free lists (a collection's start, or detach). With
 * heap_lock held, pages with free cells go on their avail lists. */
void rudo__alloc_retire_all(rudo__heap *h, rudo__kind_alloc **kalloc);
/* Gives size class c of ka a page with free cells (the full current page
 * is retired first) from class c's avail list or the free pool, owned by
 * mutator `owner`; returns the bytes of its free cells, 0 if the heap
 * limit or the reservation is reached. Takes heap_lock. */
size_t rudo__alloc_refill(rudo__heap *h, rudo__kind_alloc *ka, uint32_t owner,
                          rudo_kind kind, unsigned c);
/* A large object of `usable` bytes spanning npages pages, or NULL if the
 * heap limit or the reservation is reached. Takes heap_lock. */
void *rudo__alloc_large(rudo__heap *h, uint32_t owner, rudo_kind kind,
                        size_t usable, size_t npages);

#endif
