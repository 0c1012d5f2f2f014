/* sweep.h — sweeping (internal).
 *
 * A collection ends with an eager pass over the page descriptors that
 * counts live bytes, frees pages with no live cell and large objects that
 * died, and lists pages with free cells on their (kind, class) avail list.
 * The cells of those pages are swept lazily: an allocator that takes a page
 * builds its free list (rudo__sweep_page). */
#ifndef RUDO_SWEEP_H
#define RUDO_SWEEP_H
#include "heap/heap.h"

/* ---- sweep.c ---- */
/* Before marking: make every page's alloc bits exact (cells that died in
 * an earlier collection and were never swept become free) and, for a
 * major collection, clear the marks. A minor collection keeps them: a set
 * mark bit is what makes an object old (docs/design.md, "Generations"). */
void rudo__sweep_prepare(rudo__heap *h, bool major);
/* Folds the marks into the alloc bits (alloc &= mark, fin &= alloc) of
 * cells [0, end): the cells allocated and unmarked there are free from now
 * on, unzeroed (the page is flagged dirty if there were any). The cells
 * from `end` on are left as they are. */
void rudo__sweep_fold(rudo__page *p, size_t end);
/* After marking: the eager pass described above, over every page (major)
 * or over the pages touched since the last collection (minor: the others
 * cannot have changed). Returns live bytes. */
size_t rudo__sweep_after_mark(rudo__heap *h, bool major);
/* Builds the free list of page p (not current, not on a list), zeroing its
 * free cells. Returns the number of free cells; *head gets the list, in
 * address order. */
size_t rudo__sweep_page(rudo__heap *h, rudo__page *p, void **head);

#endif
