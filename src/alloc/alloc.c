/* alloc.c — pages for allocation. The fast path (rudo_alloc in rudo.h)
 * pops the thread's free list of the size class; when the list is empty,
 * this file gives the class a new page: a page with free cells from the
 * heap's avail list (swept now: lazy sweeping) or a fresh one; and spans
 * for large objects. Collecting when there is none is the collector
 * layer's decision (src/gc/alloc_slow.c). */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/alloc.h"
#include "base/base.h"
#include "platform/platform.h"
#include "sweep/sweep.h"

__thread struct rudo__mutator_fast *rudo__tl
    __attribute__((tls_model("initial-exec"))) RUDO_API;

/* The index of the first cell from `head` on (all cells if head is NULL:
 * the list is empty, the page full). */
static size_t head_index(const rudo__page *p, const void *head) {
    char *start = rudo__page_addr(p);
    /* The list points into its page (rudo__kind_alloc's invariant). */
    RUDO_ASSERT(head == NULL || ((char *)head >= start &&
                                 (char *)head < start + RUDO_PAGE_SIZE));
    return head ? (size_t)((const char *)head - start) / p->cell_size : p->ncells;
}

/* Sets the alloc bits of cells [from, to); returns how many were clear:
 * the cells allocated from the page's list since it was swept or since
 * the bits below `from` were last made exact. */
static size_t set_alloc_range(rudo__page *p, size_t from, size_t to) {
    size_t n = 0;
    for (size_t w = from / 64; w * 64 < to; w++) {
        uint64_t bits = rudo__valid_bits(to, w);
        if (w == from / 64)
            bits &= ~(uint64_t)0 << (from % 64);
        uint64_t was = rudo__ld(&p->bits[w].alloc);
        n += (size_t)__builtin_popcountll(bits & ~was);
        rudo__st(&p->bits[w].alloc, was | bits);
    }
    return n;
}

/* Charges the collection trigger for n cells of page p, once they are
 * known to be allocated (their page is retired or frozen). Charging when
 * a page is taken instead would count its free cells in advance: right
 * after each collection every thread takes a page per size class it uses
 * (64 KiB each), and a small nursery was then mostly spent before any
 * allocation (a fixed 1 MiB nursery ran minors every 320 KiB of real
 * allocation on large-heap). Cells on current pages are not counted until
 * the page is retired: the trigger lags by at most one page per class in
 * use per thread. Relaxed: a counter read for triggering. */
static void charge_cells(rudo__heap *h, const rudo__page *p, size_t n) {
    if (n)
        atomic_fetch_add_explicit(&h->alloc_since_gc, n * p->cell_size,
                                  memory_order_relaxed);
}

/* Ends page p's time as the allocation page of its class. `head` is the
 * class's free-list head: cells from `exact` up to it were allocated since
 * the page was swept (lists are in address order), or since a collection
 * made the bits below `exact` exact; cells from it on are still free. */
static void retire_page(rudo__heap *h, rudo__page *p, void *head, size_t exact,
                        uint64_t *charge) {
    size_t n = set_alloc_range(p, exact, head_index(p, head));
    /* The owner's own retirement (a refill) charges the thread's count,
     * which the caller batches (gc/alloc_slow.c); the others go to the
     * heap at once. */
    if (charge)
        *charge += (uint64_t)n * p->cell_size;
    else
        charge_cells(h, p, n);
    /* Release: a query that sees NULL sees the alloc bits above (heap.h). */
    atomic_store_explicit(&p->owner_list, NULL, memory_order_release);
    if (head)
        rudo__avail_add(h, p);
}

static bool stash_return(rudo__heap *h, rudo__kind_alloc *ka, bool free_empty);

/* Calls fn for each current page of a thread's allocators: its kind
 * state and class. */
static void each_current(rudo__heap *h, rudo__kind_alloc **kalloc,
                         void (*fn)(rudo__heap *h, rudo__kind_alloc *ka, unsigned c)) {
    for (unsigned k = 0; k < RUDO_MAX_KINDS; k++) {
        rudo__kind_alloc *ka = kalloc[k];
        if (!ka)
            continue;
        for (unsigned c = 0; c < RUDO_NCLASSES; c++)
            if (ka->pages[c])
                fn(h, ka, c);
    }
}

static void retire_one(rudo__heap *h, rudo__kind_alloc *ka, unsigned c) {
    retire_page(h, ka->pages[c], ka->lists[c], ka->exact_below[c], NULL);
    ka->pages[c] = NULL;
    ka->lists[c] = NULL;
    ka->exact_below[c] = 0;
}

void rudo__alloc_retire_all(rudo__heap *h, rudo__kind_alloc **kalloc) {
    each_current(h, kalloc, retire_one);
    rudo__alloc_unstash_all(h, kalloc);
}

void rudo__alloc_unstash_all(rudo__heap *h, rudo__kind_alloc **kalloc) {
    for (unsigned k = 0; k < RUDO_MAX_KINDS; k++)
        stash_return(h, kalloc[k], false);
}

bool rudo__alloc_unstash_free(rudo__heap *h, rudo__kind_alloc **kalloc) {
    bool any = false;
    rudo__lock_acquire(&h->heap_lock);
    for (unsigned k = 0; k < RUDO_MAX_KINDS; k++)
        any |= stash_return(h, kalloc[k], true);
    rudo__lock_release(&h->heap_lock);
    return any;
}

/* The head of a suspended thread's list. volatile: the collector reads
 * the word once, whatever the thread was doing to it (it is stopped now;
 * the handshake ordered its last store before this load). */
static void *frozen_head(rudo__kind_alloc *ka, unsigned c) {
    return *(void *volatile *)&ka->lists[c];
}

static void freeze_one(rudo__heap *h, rudo__kind_alloc *ka, unsigned c) {
    rudo__page *p = ka->pages[c];
    /* Current pages are always swept in this cycle: taken swept, or
     * thawed by the last collection. Prepare relies on it. */
    RUDO_ASSERT(rudo__ld(&p->swept_gc) == h->gc_count);
    charge_cells(h, p, set_alloc_range(p, ka->exact_below[c],
                                       head_index(p, frozen_head(ka, c))));
}

void rudo__alloc_freeze_all(rudo__heap *h, rudo__kind_alloc **kalloc) {
    each_current(h, kalloc, freeze_one);
    rudo__alloc_unstash_all(h, kalloc);
}

static void thaw_one(rudo__heap *h, rudo__kind_alloc *ka, unsigned c) {
    rudo__page *p = ka->pages[c];
    size_t head = head_index(p, frozen_head(ka, c));
    /* Only below the head. A dead cell above it is on no list (the list
     * skipped it: it was allocated when the page was swept), and the rule
     * that the cells from exact_below up to the head are allocated would
     * set its bit again once the head passed it: freed here, it came back
     * as a live object with its old contents, finalized a second time
     * (the fuzzer's repro). Left allocated, it is freed by the page's
     * next sweep or thaw, as any dead cell; its fin bit stays with it, so
     * it is not due again. Until then a stale conservative word may still
     * mark it, which a freed cell never is: it is zeroed (its dead or
     * poisoned words would be traced), as a new object reads. */
    rudo__sweep_fold(p, head);
    char *start = rudo__page_addr(p);
    for (size_t w = head / 64; w * 64 < p->ncells; w++) {
        uint64_t dead = rudo__ld(&p->bits[w].alloc) & ~rudo__ld(&p->bits[w].mark) &
                        rudo__valid_bits(p->ncells, w);
        if (w == head / 64)
            dead &= ~(uint64_t)0 << (head % 64);
        for (; dead; dead &= dead - 1)
            memset(start + (w * 64 + (size_t)__builtin_ctzll(dead)) * p->cell_size, 0,
                   p->cell_size);
    }
    rudo__st(&p->swept_gc, h->gc_count);
    ka->exact_below[c] = (uint32_t)head;
    /* Still being allocated from: the next minor collection must sweep
     * it like any page taken since (sweep.c). */
    rudo__page_touch(h, p);
    /* The cells the thread took since its last safepoint were marked in
     * this collection, so they are old now; but rudo.h lets the thread
     * store into them without the barrier (no collection can have made
     * them old, from where it stands: it passed no safepoint). Their
     * cards are dirtied for it, so the next minor collection scans them
     * (a young object stored so was freed: the fuzzer's repro). World
     * stopped: no barrier stores meanwhile. */
    if (h->gen.on)
        memset(rudo__page_cards(h, (size_t)(p - h->pages)), 1, RUDO_CARDS_PER_PAGE);
}

void rudo__alloc_thaw_all(rudo__heap *h, rudo__kind_alloc **kalloc) {
    each_current(h, kalloc, thaw_one);
}

/* Gives page p its kind and cell size, and what the markers read from
 * the page instead of the kind record (heap.h: noscan, scan_mask; the
 * mask is 0 for objects over 64 words, which take the kind's way). */
static void set_kind(rudo__heap *h, rudo__page *p, rudo_kind kind, size_t cell_size) {
    const rudo__kind *k = &h->kinds[kind];
    p->kind = kind;
    p->cell_size = cell_size;
    p->noscan = k->tracing == RUDO_TRACE_ATOMIC;
    p->scan_mask = rudo__kind_scan_mask(k, cell_size);
}

/* ---- Page batches -----------------------------------------------------
 * Every refill used to take heap_lock once for its one page: about 8,600
 * acquisitions in one GCBench, and with many threads allocating, a lock
 * whose line every refill moves between cores. While the lock is
 * contended (another thread held it when the refill came), a thread takes
 * up to RUDO_PAGE_BATCH_MAX pages per acquisition: the first becomes
 * current, the others wait in its stash for the class (alloc.h), and its
 * next refills take them without the lock. The batch doubles at each
 * contended acquisition and halves after BATCH_CALM uncontended ones, so
 * a thread that meets no contention (one thread, or a few on a large
 * heap) takes one page as before, and the stash, which keeps pages away
 * from the other threads until the next collection, stays empty.
 * RUDO_PAGE_BATCH fixes the size instead (tests, A/B runs).
 *
 * A stashed page is claimed for sweeping without heap_lock, by a
 * compare-and-swap of owner_list from STASHED to CLAIMED; rudo_free,
 * which changes a stashed page's bits under heap_lock, first swaps
 * STASHED to FREEING and back (gc/free.c), so that the two never write
 * the page at once: the claim waits out FREEING (a few stores with no
 * safepoint), and a rudo_free that finds CLAIMED waits for the sweep, as
 * for a page claimed off the avail list. */
#define BATCH_CALM 16

/* How many pages this refill takes, given whether it waited for the lock. */
static unsigned batch_size(const rudo__heap *h, rudo__kind_alloc *ka, bool waited) {
    /* While collections are held off nothing would return a stash before
     * they run again (a heuristic, as in the slow path). */
    if (rudo__collections_held(h))
        return 1;
    if (h->page_batch)
        return h->page_batch;
    unsigned b = ka->batch ? ka->batch : 1;
    if (waited) {
        ka->calm = 0;
        if (b < RUDO_PAGE_BATCH_MAX)
            b *= 2;
    } else if (b > 1 && ++ka->calm >= BATCH_CALM) {
        ka->calm = 0;
        b /= 2;
    }
    ka->batch = (uint8_t)b;
    return b;
}

/* Bounds a batch of `want` pages by the room left under the heap limit
 * (heap_lock held): at most 1/16 of it. Near the limit every page counts,
 * and pages stashed by one thread make the others collect: with 4 threads
 * under a 512 KiB max_heap (8 pages), batches of 8 had them collect in
 * turns for minutes, each collection returning the stashes that another
 * thread then took whole. */
static unsigned batch_cap(const rudo__heap *h, unsigned want) {
    size_t lim = h->npages;
    if (h->cfg.max_heap && h->cfg.max_heap / RUDO_PAGE_SIZE < lim)
        lim = h->cfg.max_heap / RUDO_PAGE_SIZE;
    size_t room = lim > h->pages_in_use ? lim - h->pages_in_use : 0;
    if (want > room / 16)
        want = room >= 16 ? (unsigned)(room / 16) : 1;
    return want;
}

/* Puts page p, taken for class c, in ka's stash. Release: a query that
 * sees STASHED trusts the page's bits as on the avail list (gc/query.c),
 * so the bits written before (a retirement, a rudo_free, the typing of a
 * fresh page) must be visible with it; rudo_free reads the state under
 * heap_lock, and its FREEING swap continues this release sequence. */
static void stash_push(rudo__kind_alloc *ka, unsigned c, rudo__page *p) {
    atomic_store_explicit(&p->owner_list, RUDO_OWNER_STASHED, memory_order_release);
    p->next = ka->stash[c];
    ka->stash[c] = p;
}

/* Claims stashed page p for this thread's sweep. Acquire on success: the
 * bits a rudo_free changed while it held the page (its release store of
 * STASHED) are seen by the sweep. A failure that reads FREEING waits for
 * that rudo_free (a weak CAS may also fail spuriously). */
static void stash_claim(rudo__page *p) {
    void **want = RUDO_OWNER_STASHED;
    unsigned spins = 0;
    while (!atomic_compare_exchange_weak_explicit(&p->owner_list, &want,
                                                  RUDO_OWNER_CLAIMED,
                                                  memory_order_acquire,
                                                  memory_order_relaxed)) {
        /* Any other state means the page left the stash behind its
         * owner's back: say so rather than wait for ever. */
        if (!rudo__owner_stashed(want))
            rudo__fatal("rudo_alloc", "internal error: stashed page %p found "
                        "in state %p", (void *)rudo__page_addr(p), (void *)want);
        /* A preempted rudo_free holds it: give it the CPU after a while. */
        if (want == RUDO_OWNER_FREEING && ++spins % 64 == 0)
            sched_yield();
        else if (want == RUDO_OWNER_FREEING)
            rudo__cpu_relax();
        want = RUDO_OWNER_STASHED;
    }
}

/* Whether stashed page p has no cell allocated: a fresh page, or one
 * emptied by rudo_free since it was stashed (bits exact: swept). */
static bool stashed_empty(const rudo__heap *h, const rudo__page *p) {
    if (rudo__ld(&p->swept_gc) != h->gc_count)
        return false;
    for (size_t w = 0; w * 64 < p->ncells; w++)
        if (rudo__ld(&p->bits[w].alloc))
            return false;
    return true;
}

/* Returns ka's stashed pages to their avail lists, or, with free_empty,
 * those with no cell allocated to the free pool (heap_lock held, the
 * owner not allocating: stopped, detaching, gone in a fork, or the
 * caller). A page whose claim began (CLAIMED: its taker vanished in a
 * fork) is left to rudo__alloc_fork_child. Release, as retire_page: a
 * reader that sees NULL sees the bits. Returns whether it gave any back. */
static bool stash_return(rudo__heap *h, rudo__kind_alloc *ka, bool free_empty) {
    bool any = false;
    if (!ka)
        return false;
    for (unsigned c = 0; c < RUDO_NCLASSES; c++) {
        rudo__page *p = ka->stash[c];
        ka->stash[c] = NULL;
        while (p) {
            rudo__page *next = p->next;
            p->next = NULL;
            if (atomic_load_explicit(&p->owner_list, memory_order_relaxed) ==
                RUDO_OWNER_STASHED) {
                any = true;
                if (free_empty && stashed_empty(h, p)) {
                    rudo__pages_free(p, 1); /* owner_list NULL too */
                } else {
                    atomic_store_explicit(&p->owner_list, NULL, memory_order_release);
                    rudo__avail_add(h, p);
                }
            }
            p = next;
        }
    }
    return any;
}

/* Makes fresh page p (from the free pool, taken for class c) a small page
 * of (kind, c) with every cell free, swept in this cycle; its memory is
 * zeroed after heap_lock (rudo__pages_zero). Under heap_lock: a forked
 * child whose taker vanished before the zeroing then finds a small page
 * on no list with no cell allocated, which its next collection frees
 * (the zeroing is redone when the pool hands it out again); a page still
 * typed free would be lost to it. */
static void type_small_page(rudo__heap *h, rudo__page *p, rudo_kind kind,
                            unsigned c) {
    p->type = RUDO_PAGE_SMALL;
    p->cls = (uint8_t)c;
    set_kind(h, p, kind, rudo__class_size[c]);
    p->ncells = (uint32_t)(RUDO_PAGE_SIZE / p->cell_size);
    p->recip = rudo__recip(p->cell_size);
    rudo__st(&p->swept_gc, h->gc_count);
}

/* A page of (kind, class c) with free cells for ka, its list in *head, or
 * NULL if the heap limit or the reservation is reached. */
static rudo__page *take_page(rudo__heap *h, rudo__kind_alloc *ka, rudo_kind kind,
                             unsigned c, void **head, size_t *nfree) {
    for (;;) {
        unsigned want = 1;
        rudo__page *p = ka->stash[c];
        if (p) {
            ka->stash[c] = p->next;
            p->next = NULL;
            stash_claim(p);
        } else {
            bool waited = rudo__lock_acquire_waited(&h->heap_lock);
            want = batch_cap(h, batch_size(h, ka, waited));
            p = rudo__avail_pop(h, kind, c);
            if (p) {
                rudo__page_touch(h, p);
                /* Claimed until it is current (rudo__alloc_refill) or
                 * left full: rudo_free, which takes heap_lock, waits
                 * meanwhile rather than change the bits the sweep
                 * rewrites. Relaxed: heap_lock orders it for rudo_free. */
                atomic_store_explicit(&p->owner_list, RUDO_OWNER_CLAIMED,
                                      memory_order_relaxed);
                for (unsigned i = 1; i < want; i++) {
                    rudo__page *q = rudo__avail_pop(h, kind, c);
                    if (!q)
                        break;
                    rudo__page_touch(h, q);
                    stash_push(ka, c, q);
                }
                rudo__lock_release(&h->heap_lock);
            }
        }
        if (p) {
            *nfree = rudo__sweep_page(h, p, head);
            if (*nfree)
                return p;
            /* Full after all: leave it unlisted. Release, as retire_page:
             * a reader that sees NULL sees the alloc bits of the sweep. */
            atomic_store_explicit(&p->owner_list, NULL, memory_order_release);
            continue;
        }
        /* heap_lock is held: nothing on the avail list. Fresh pages. */
        rudo__page *fresh[RUDO_PAGE_BATCH_MAX];
        size_t scans[RUDO_PAGE_BATCH_MAX];
        unsigned n = 0;
        while (n < want && (fresh[n] = rudo__pages_alloc(1, &scans[n])) != NULL) {
            rudo__page_touch(h, fresh[n]);
            type_small_page(h, fresh[n++], kind, c);
        }
        rudo__lock_release(&h->heap_lock);
        if (n == 0)
            return NULL;
        /* Recycled memory is zeroed here, outside heap_lock (heap.h), but
         * for a RUDO_KIND_UNINIT kind, whose free cells need no zeros. */
        bool zero = !h->kinds[kind].uninit;
        for (unsigned i = 1; i < n; i++) {
            if (zero)
                rudo__pages_zero(fresh[i], scans[i]);
            stash_push(ka, c, fresh[i]);
        }
        p = fresh[0];
        if (zero)
            rudo__pages_zero(p, scans[0]);
        /* The memory is zero now: only the links need writing. */
        char *start = rudo__page_addr(p);
        void *list = NULL;
        for (size_t i = p->ncells; i-- > 0;) {
            void **cell = (void **)(start + i * p->cell_size);
            *cell = list;
            list = cell;
        }
        *head = list;
        *nfree = p->ncells;
        return p;
    }
}

size_t rudo__alloc_refill(rudo__heap *h, rudo__kind_alloc *ka, uint32_t owner,
                         rudo_kind kind, unsigned c, uint64_t *used) {
    /* Called when the class's free list is empty (rudo__kind_alloc). */
    RUDO_ASSERT(ka->lists[c] == NULL);
    if (ka->pages[c]) {
        retire_page(h, ka->pages[c], NULL, ka->exact_below[c], used); /* full */
        ka->pages[c] = NULL;
    }
    ka->exact_below[c] = 0; /* the next page's bits are exact (swept) */
    void *head;
    size_t nfree;
    rudo__page *p = take_page(h, ka, kind, c, &head, &nfree);
    if (!p)
        return 0;
    p->owner = owner;
    /* Release, paired with the acquire in rudo__find_object (heap.h). */
    atomic_store_explicit(&p->owner_list, &ka->lists[c], memory_order_release);
    ka->pages[c] = p;
    ka->lists[c] = head;
    return nfree * p->cell_size;
}

void *rudo__alloc_large(rudo__heap *h, uint32_t owner, rudo_kind kind,
                        size_t usable, size_t npages) {
    rudo__lock_acquire(&h->heap_lock);
    size_t scan;
    rudo__page *p = rudo__pages_alloc(npages, &scan);
    if (p) {
        p->type = RUDO_PAGE_LARGE;
        set_kind(h, p, kind, usable);
        p->ncells = 1;
        p->span = npages;
        p->owner = owner;
        rudo__st(&p->swept_gc, h->gc_count);
        rudo__st(&p->bits[0].alloc, 1);
        rudo__list_push(&h->large, p);
        rudo__page_touch(h, p);
    }
    rudo__lock_release(&h->heap_lock);
    if (!p)
        return NULL;
    /* Outside heap_lock (heap.h): the object is not returned yet. The
     * caller charges it, whole, to the trigger and the statistics. A
     * RUDO_KIND_UNINIT object keeps what recycled memory held: when it
     * dies its span goes back to the free pool, which flags the memory
     * for zeroing again before another kind takes it. */
    if (!h->kinds[kind].uninit)
        rudo__pages_zero(p, scan);
    return rudo__page_addr(p);
}

/* Whether small page p is one of the current pages of allocators
 * `self` (NULL: no allocators). */
static bool self_current(rudo__kind_alloc **self, const rudo__page *p) {
    rudo__kind_alloc *ka = self ? self[p->kind] : NULL;
    return ka && ka->pages[p->cls] == p;
}

void rudo__alloc_fork_child(rudo__heap *h, rudo__kind_alloc **self) {
    for (size_t pi = 0; pi < rudo__hwm(h); pi = rudo__pages_next(h, pi)) {
        rudo__page *p = &h->pages[pi];
        /* A thread that vanished in the fork was sweeping it (take_page):
         * the page stays off every list, unswept as far as anyone knows
         * (a partial sweep only did some of what prepare does again), and
         * dirty, since some dead cells may not have been zeroed. Relaxed:
         * the child has one thread. */
        void **ol = atomic_load_explicit(&p->owner_list, memory_order_relaxed);
        /* Or it was stashed, and the vanished thread was taking it off its
         * stash (the stashes of the threads gone were returned first).
         * Or the vanished thread had published it as current, its list
         * the thread's, and not yet recorded it in its allocator, so the
         * retirement of that thread's pages missed it: nothing was
         * allocated from it (the refill had not returned), so its bits
         * are the sweep's, exact; its free cells hold links (dirty).
         * Every other page with an owner is the forking thread's current
         * page: its stashes went back, and it was in fork(), not in a
         * refill. */
        if (p->type == RUDO_PAGE_SMALL && ol != NULL && !self_current(self, p)) {
            atomic_store_explicit(&p->owner_list, NULL, memory_order_relaxed);
            p->dirty = 1;
        }
        /* A large object whose taker vanished before zeroing its recycled
         * memory (rudo__alloc_large): zero it now, so that it reads as
         * fresh wherever it is found. */
        if (p->type == RUDO_PAGE_LARGE)
            rudo__pages_zero(p, p->span);
    }
}
