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
    /* Per class: the alloc bits of pages[c] are exact for the cells below
     * this index; from it up to the head, every cell is allocated (the
     * frontier rule). 0 when the page became current; a collection that
     * finds the thread suspended by signal moves it to the head
     * (rudo__alloc_thaw_all). */
    uint32_t exact_below[RUDO_NCLASSES];
    /* Per class: pages taken ahead with the last one (a batch), chained
     * through their `next` link, owner_list RUDO_OWNER_STASHED (heap.h).
     * Only the owner thread pops them; a collection (retire or freeze),
     * detach or fork returns them to the avail lists. */
    struct rudo__page *stash[RUDO_NCLASSES];
    /* The adaptive batch size (0 reads as 1) and the uncontended refills
     * since it last changed (alloc.c, batch_size). */
    uint8_t batch, calm;
} rudo__kind_alloc;


/* Makes the alloc bits of every current page of m exact and detaches the
 * pages from m's free lists (a collection's start, or detach). With
 * heap_lock held, pages with free cells go on their avail lists, and so
 * do the pages stashed in m's batches. */
void rudo__alloc_retire_all(rudo__heap *h, rudo__kind_alloc **kalloc);
/* For a thread suspended by signal (it may be stopped in the middle of
 * the inline fast path's pop: head loaded, next not yet stored), with the
 * world stopped: its lists and pages are left as they are, and stay
 * current. rudo__alloc_freeze_all, before the collection's prepare, sets
 * the alloc bits of the cells between exact_below and the head read now
 * (at most one cell stale: see docs/threads.md), so marking sees every
 * allocated cell. rudo__alloc_thaw_all, after the sweep, makes each such
 * page a swept page of this collection: alloc &= mark below the head
 * (dead cells there become free and the page dirty; they are no longer on
 * any list and are reused when the page is swept after it is retired;
 * dead cells above the head stay allocated, zeroed, until the page's next
 * sweep or thaw, since the head passing them must not make them allocated
 * again), swept_gc, and exact_below = the head; and puts it back on the
 * touched list (heap_lock held), for the next minor collection. The freeze returns the
 * thread's stashed pages to the avail lists (the slow path, which alone
 * touches them, is never where a signal stops a thread). */
void rudo__alloc_freeze_all(rudo__heap *h, rudo__kind_alloc **kalloc);
void rudo__alloc_thaw_all(rudo__heap *h, rudo__kind_alloc **kalloc);
/* Returns the pages stashed in m's batches to their avail lists
 * (heap_lock held, m not allocating); rudo__alloc_retire_all and the
 * freeze do it too. In a forked child, before rudo__alloc_fork_child: the
 * forking thread keeps its current pages, not its stashes. */
void rudo__alloc_unstash_all(rudo__heap *h, rudo__kind_alloc **kalloc);
/* Gives back the pages stashed in m's batches (m is the calling thread:
 * takes heap_lock): empty ones to the free pool, the others to their
 * avail lists. Returns whether there were any. For the heap-full path
 * while collection is disabled, when no collection will return them. */
bool rudo__alloc_unstash_free(rudo__heap *h, rudo__kind_alloc **kalloc);
/* In a forked child (heap_lock held), after every surviving stash was
 * returned and the vanished threads' current pages were retired: releases
 * the pages that a thread which did not survive the fork had claimed to
 * sweep (take_page), was taking off its stash, or was making current
 * (rudo__alloc_refill publishes the page before it records it). `self` is
 * the forking thread's allocators (NULL if it is not attached): its
 * current pages alone stay current. */
void rudo__alloc_fork_child(rudo__heap *h, rudo__kind_alloc **self);
/* Gives size class c of ka a page with free cells (the full current page
 * is retired first) from ka's stash for c, class c's avail list or the
 * free pool, owned by mutator `owner`; returns the bytes of its free
 * cells, 0 if the heap limit or the reservation is reached. Adds to *used
 * the bytes of the cells the retired page had allocated, which the caller
 * charges to the trigger (gc/alloc_slow.c: per thread, in batches);
 * retirements by anyone else (rudo__alloc_retire_all, freeze) charge the
 * heap directly. Takes heap_lock unless the stash had a page; while the
 * lock is contended, it takes several pages per acquisition and stashes
 * the rest (alloc.c, "Page batches"). */
size_t rudo__alloc_refill(rudo__heap *h, rudo__kind_alloc *ka, uint32_t owner,
                          rudo_kind kind, unsigned c, uint64_t *used);
/* A large object of `usable` bytes spanning npages pages, or NULL if the
 * heap limit or the reservation is reached; the caller counts it. Takes
 * heap_lock. */
void *rudo__alloc_large(rudo__heap *h, uint32_t owner, rudo_kind kind,
                        size_t usable, size_t npages);

#endif
