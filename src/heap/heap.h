/* heap.h — the heap's data: pages, size classes, kinds and the heap itself
 * (internal). docs/design.md describes the layout in prose.
 *
 * The heap is one reserved, RUDO_PAGE_SIZE-aligned range of address space
 * cut into pages. Page i covers [base + i*PAGE_SIZE, base + (i+1)*PAGE_SIZE)
 * and is described by pages[i] in a side table, so address -> page is a
 * subtraction and a shift. A small page holds cells of one size class and
 * one kind; a large object occupies a span of whole pages. */
#ifndef RUDO_HEAP_H
#define RUDO_HEAP_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rudo.h"
#include "threads/threads.h"

#define RUDO_PAGE_SHIFT 16
#define RUDO_PAGE_SIZE ((size_t)1 << RUDO_PAGE_SHIFT)
#define RUDO_MAX_CELLS (RUDO_PAGE_SIZE / RUDO_GRANULE) /* 4096 */
#define RUDO_BITMAP_WORDS (RUDO_MAX_CELLS / 64)       /* 64 */
#define RUDO_RESERVE_DEFAULT ((size_t)64 << 30)      /* 64 GiB */

/* ---- sizeclass.c ---------------------------------------------------------
 * Classes: 16..128 by 16, then 8 classes per power of two up to 32 KiB.
 * Waste beyond 16-byte rounding is below 1/9 of the cell (docs/design.md). */
extern const uint32_t rudo__class_size[RUDO_NCLASSES];
/* Verifies both tables and the reciprocals; aborts on a mistake. */
void rudo__sizeclass_check(void);
static inline unsigned rudo__size_class(size_t size) {
    return rudo__class_of_granules[(size + RUDO_GRANULE - 1) / RUDO_GRANULE];
}

/* ---- page.c -------------------------------------------------------------- */
enum rudo__page_type {
    RUDO_PAGE_FREE = 0,  /* in the free pool */
    RUDO_PAGE_SMALL,     /* cells of one size class and kind */
    RUDO_PAGE_LARGE,     /* first page of a large object */
    RUDO_PAGE_TAIL,      /* a following page of a large object */
};

/* Page descriptor. Bit i of a bitmap describes cell i (small pages) or the
 * object (bit 0, large pages).
 *
 * Invariants (checked by rudo__page_check):
 *  - small: cell_size = rudo__class_size[cls], ncells = PAGE_SIZE/cell_size,
 *    and no bitmap bit >= ncells is set;
 *  - mark ⊆ alloc once marking ends (only allocated cells are marked —
 *    design brief decision 12), and fin ⊆ alloc;
 *  - a small page is in exactly one place: an allocator (owner_list !=
 *    NULL, "current"), the heap's avail list of its (kind, class), or no
 *    list (full); a large object's first page is on the large list; a free
 *    page is in the free map, and on the release list while committed;
 *  - alloc is exact for pages that are not current. For a current page, a
 *    cell is allocated iff its alloc bit is set or it lies below the
 *    allocator's free-list head (free lists are built and popped in address
 *    order), so the exact bits are recovered in O(bitmap words);
 *  - swept_gc < heap->gc_count means "unswept": the cells allocated are
 *    alloc & mark (the rest died in collection swept_gc+1 .. gc_count). */
typedef struct rudo__page {
    uint8_t type;        /* rudo__page_type */
    uint8_t cls;         /* small: size class */
    uint8_t committed;   /* memory may be non-zero (not released to the OS) */
    uint8_t overflow;    /* marked cells whose tracing was deferred */
    uint8_t listed;      /* on the avail list of its (kind, class) */
    uint8_t dirty;       /* some free cell may hold old data (see sweep.c) */
    uint32_t kind;
    size_t cell_size;    /* small: class size; large: usable size (>= 16) */
    uint32_t ncells;     /* small: cells in the page; large: 1 */
    uint32_t owner;      /* id of the mutator that last allocated here */
    uint32_t recip;      /* small: ceil(2^32 / cell_size), for offset/size */
    size_t span;         /* large: pages in the span; tail: distance to head */
    _Atomic uint64_t swept_gc; /* gc_count when last swept (relaxed: as alloc) */
    uint64_t release_at; /* free: gc_count after which memory is released */
    /* current: the allocator's free-list head. Stored with release and
     * loaded with acquire, so a query that sees NULL also sees the alloc
     * bits written before it (rudo__find_object). */
    void **_Atomic owner_list;
    struct rudo__page *next, *prev; /* list links */
    /* Mark and alloc words side by side: marking a cell reads both, so
     * they share a cache line. alloc is atomic (relaxed) only so that
     * queries from other threads (rudo_base ...) read it race-free; see
     * rudo__find_object. */
    struct rudo__bits {
        _Atomic uint64_t mark, alloc;
    } bits[RUDO_BITMAP_WORDS];
    uint64_t fin[RUDO_BITMAP_WORDS]; /* finalizer already queued */
} rudo__page;

/* A doubly linked list of pages. */
typedef struct rudo__page_list {
    rudo__page *head;
    size_t count;
} rudo__page_list;

void rudo__list_push(rudo__page_list *l, rudo__page *p);
void rudo__list_remove(rudo__page_list *l, rudo__page *p);
rudo__page *rudo__list_pop(rudo__page_list *l);

/* Allocates a span of n pages from the free pool (heap_lock held): marks
 * them in use, zeroes recycled memory. NULL if max_heap or the reservation
 * would be exceeded. */
rudo__page *rudo__pages_alloc(size_t n);
/* Returns a span to the free pool (heap_lock held). */
void rudo__pages_free(rudo__page *p, size_t n);
/* Returns to the OS the free pages whose delay has passed (heap_lock). */
void rudo__pages_release_due(void);
/* Checks the page invariants; aborts naming the violated one. */
void rudo__page_check(const rudo__page *p);

static inline char *rudo__page_addr(const rudo__page *p);
/* ceil(2^32 / size): multiplying an offset by it and shifting right by 32
 * divides by size (see rudo__cell_index). */
static inline uint32_t rudo__recip(size_t size) {
    return (uint32_t)((((uint64_t)1 << 32) + size - 1) / size);
}
static inline size_t rudo__cell_index(const rudo__page *p, uintptr_t off) {
    /* off < PAGE_SIZE = 2^16 and cell_size <= 2^15, so the product fits in
     * 64 bits and the rounding error of recip stays below one cell;
     * rudo__sizeclass_check verifies it at every heap creation. */
    return (size_t)(((uint64_t)off * p->recip) >> 32);
}

/* ---- kind.c --------------------------------------------------------------- */
typedef struct rudo__kind {
    char name[48];
    rudo_tracing tracing;
    rudo_trace_fn trace;
    uint64_t *layout;      /* copy; LAYOUT only */
    size_t layout_words;
    rudo_finalize_fn finalize;
    void *finalize_data;
} rudo__kind;

/* The kind record of k; aborts naming fn if k is unknown. */
rudo__kind *rudo__kind_get(rudo_kind k, const char *fn);

/* ---- heap.c -------------------------------------------------------------- */
typedef struct rudo__heap {
    rudo_config cfg;
    char *base;                 /* reserved range */
    size_t reserve;             /* its size */
    size_t npages;              /* pages in the reservation */
    rudo__page *pages;          /* descriptors, one per page */
    size_t pages_map_bytes;

    /* gc_lock (rank GC): handshake state and the mutator list. */
    rudo__lock gc_lock;
    pthread_cond_t stopped_cv;  /* a mutator stopped or blocked */
    pthread_cond_t resume_cv;   /* a collection ended */
    bool collecting;
    unsigned nrunning;          /* mutators in RUNNING state */
    unsigned nmutators;
    uint32_t next_mutator_id;
    rudo__mutator *mutators;

    /* heap_lock (rank HEAP): the page pool and lists, the kinds. */
    rudo__lock heap_lock;
    /* Pages ever handed out (bump index). Written under heap_lock; read
     * relaxed by queries, which only need it to bound the descriptor table:
     * the descriptor of any page they legitimately look at was written
     * before the object they hold was published to them. */
    _Atomic size_t hwm;
    size_t free_hint;           /* no free page below this index */
    uint64_t *free_map;         /* bit i set: page i is free */
    size_t free_map_bytes;
    size_t pages_in_use;        /* small + large pages */
    size_t pages_committed;     /* in use + free but not released */
    size_t pages_committed_peak;
    rudo__page_list release;    /* free, committed pages (by release_at) */
    rudo__page_list *avail;     /* [kind*NCLASSES+cls] pages with free cells */
    rudo__page_list large;      /* large objects */
    rudo__kind kinds[RUDO_MAX_KINDS];
    unsigned nkinds;

    /* Allocation accounting; relaxed atomics: counters read for triggering
     * and statistics, where a slightly stale value is harmless. */
    _Atomic uint64_t bytes_allocated;  /* since creation */
    _Atomic uint64_t alloc_since_gc;
    _Atomic uint64_t trigger;          /* collect when alloc_since_gc >= */

    /* Written only by the collector with the world stopped. */
    uint64_t gc_count;
    size_t live_bytes;
    struct rudo__gc_stats {
        uint64_t mark_ns, sweep_ns, pause_ns, pause_max, ttsp_max;
        uint64_t ttsp_ring[1024];
    } st;
    _Atomic uint64_t finalizers_run;
    _Atomic uint64_t lazy_sweep_ns;
    struct rudo__mark_pool *pool; /* markers; created at the first collection */
    rudo_gc_callback gc_callback;
    void *gc_callback_data;
    bool verify;                /* RUDO_DEBUG build or RUDO_VERIFY=1 */
    bool gc_log;                /* RUDO_GC_LOG=1 */
} rudo__heap;

extern rudo__heap *rudo__the_heap;

static inline size_t rudo__hwm(const rudo__heap *h) {
    return atomic_load_explicit(&h->hwm, memory_order_relaxed);
}

/* Takes gc_lock at a moment when no collection runs; while it waits, an
 * attached caller parks as at a safepoint (the collection may be waiting
 * for it). The caller releases gc_lock. */
void rudo__lock_idle(rudo__heap *h);

/* The heap; aborts with "rudo: fn: no heap" if none exists. */
rudo__heap *rudo__need_heap(const char *fn);

static inline char *rudo__page_addr(const rudo__page *p) {
    return rudo__the_heap->base +
           ((size_t)(p - rudo__the_heap->pages) << RUDO_PAGE_SHIFT);
}

/* The page containing address a, or NULL if a is outside the pages ever
 * used. */
static inline rudo__page *rudo__page_of(const rudo__heap *h, const void *a) {
    uintptr_t off = (uintptr_t)a - (uintptr_t)h->base;
    if (off >= (rudo__hwm(h) << RUDO_PAGE_SHIFT))
        return NULL;
    return &h->pages[off >> RUDO_PAGE_SHIFT];
}

/* The cell containing address a: its page (the head page for a large
 * object) in *pp, its index in *ip, its base as the result; NULL if a is in
 * no cell (outside the pages ever used, in a free page, in the slack after
 * the last cell). Says nothing about whether the cell is allocated. */
static inline char *rudo__cell_of(const rudo__heap *h, const void *a,
                                  rudo__page **pp, size_t *ip) {
    rudo__page *p = rudo__page_of(h, a);
    if (!p)
        return NULL;
    if (p->type == RUDO_PAGE_TAIL)
        p -= p->span;
    char *start = rudo__page_addr(p);
    uintptr_t off = (uintptr_t)a - (uintptr_t)start;
    size_t i;
    if (p->type == RUDO_PAGE_SMALL) {
        i = rudo__cell_index(p, off);
        if (i >= p->ncells)
            return NULL;
    } else if (p->type == RUDO_PAGE_LARGE) {
        if (off >= p->cell_size)
            return NULL;
        i = 0;
    } else {
        return NULL;
    }
    *pp = p;
    *ip = i;
    return start + i * p->cell_size;
}

static inline bool rudo__bit(const uint64_t *bm, size_t i) {
    return (bm[i / 64] >> (i % 64)) & 1;
}

/* Relaxed accessors of the atomic bitmaps and fields (mark bits, alloc
 * bits, swept_gc). Relaxed is enough: the collector and the allocators
 * order their accesses through gc_lock and heap_lock; these atomics only
 * make concurrent queries and mark-bit claims race-free. */
static inline uint64_t rudo__ld(const _Atomic uint64_t *w) {
    return atomic_load_explicit(w, memory_order_relaxed);
}
static inline void rudo__st(_Atomic uint64_t *w, uint64_t v) {
    atomic_store_explicit(w, v, memory_order_relaxed);
}
static inline bool rudo__marked(const rudo__page *p, size_t i) {
    return (rudo__ld(&p->bits[i / 64].mark) >> (i % 64)) & 1;
}
static inline bool rudo__allocated(const rudo__page *p, size_t i) {
    return (rudo__ld(&p->bits[i / 64].alloc) >> (i % 64)) & 1;
}

/* ---- collect.c ---- */
/* The collection itself, with the world stopped: retire allocation pages,
 * prepare, mark, verify (if enabled), eager sweep, statistics, log.
 * t_request is when the collection was requested, ttsp how long stopping
 * took. Fills *ev. */
void rudo__run_collection(rudo__heap *h, const char *reason,
                          uint64_t t_request, uint64_t ttsp, rudo_gc_event *ev);

/* Base of the allocated object containing a, its page in *pp; NULL if a
 * is not inside an allocated object. Exact outside collections for pages
 * that are not current; see the invariants above. */
void *rudo__find_object(const rudo__heap *h, const void *a, rudo__page **pp);

#endif
