/* alloc.h — the allocation slow path (internal): taking pages for a
 * thread's size classes, large objects, and giving pages back. */
#ifndef RUDO_ALLOC_H
#define RUDO_ALLOC_H
#include "heap/heap.h"

/* Makes the alloc bits of every current page of m exact and detaches the
 * pages from m's free lists (a collection's start, or detach). With
 * heap_lock held, pages with free cells go on their avail lists. */
void rudo__alloc_retire_all(rudo__heap *h, rudo__mutator *m);

#endif
