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
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/lock.h"
#include "base/slotset.h"
#include "platform/platform.h"
#include "rudo.h"

struct rudo__heap;
struct rudo__mutator;
struct rudo__mark_pool;

#define RUDO_PAGE_SHIFT 16
#define RUDO_PAGE_SIZE ((size_t)1 << RUDO_PAGE_SHIFT)
#define RUDO_MAX_CELLS (RUDO_PAGE_SIZE / RUDO_GRANULE) /* 4096 */
#define RUDO_BITMAP_WORDS (RUDO_MAX_CELLS / 64)       /* 64 */
#define RUDO_RESERVE_DEFAULT ((size_t)64 << 30)      /* 64 GiB */
#define RUDO_GROWTH_MAX 1000.0 /* largest growth factor (rudo.h) */
#define RUDO_POISON_BYTE 0xdb  /* fills dead cells in poison mode */
/* Collections over which the pages in use are remembered for the release
 * hysteresis (rudo__pages_release_due). */
#define RUDO_RETAIN_WINDOW 4
/* The most pages a refill takes under one heap_lock acquisition (alloc.c). */
#define RUDO_PAGE_BATCH_MAX 8
#define RUDO_CARDS_PER_PAGE (RUDO_PAGE_SIZE >> RUDO_CARD_SHIFT) /* 128 */
/* Without interior pointers (rudo_config.interior_pointers false): the
 * offsets into an object that conservative words may hold besides 0
 * (rudo_register_displacement) are below this. */
#define RUDO_DISPLACEMENT_MAX 1024u

/* ---- sizeclass.c ---------------------------------------------------------
 * RUDO_NCLASSES classes: 16..128 by 16, then 8 classes per power of two up
 * to 32 KiB. Waste beyond 16-byte rounding is below 1/9 of the cell (docs/design.md). */
#define RUDO_NCLASSES 72
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
    /* The following pages of a large object ("tails") have no type of
     * their own: their descriptors are never written and read as free,
     * uncommitted pages; heap->tail_dist says which span they belong to. */
};

/* Page descriptor. Bit i of a bitmap describes cell i (small pages) or the
 * object (bit 0, large pages).
 *
 * Invariants (checked by rudo__page_check):
 *  - small: cell_size = rudo__class_size[cls], ncells = PAGE_SIZE/cell_size,
 *    and no bitmap bit >= ncells is set;
 *  - mark ⊆ alloc once marking ends (only allocated cells are marked —
 *    docs/design.md, "The allocation bit rule"), and fin ⊆ alloc;
 *  - a small page is in exactly one place: an allocator (owner_list a
 *    free-list head, "current"; RUDO_OWNER_CLAIMED while the allocator
 *    that took it sweeps it; RUDO_OWNER_STASHED in its batch of pages
 *    taken ahead, alloc.c), the heap's avail list of its (kind, class), or
 *    no list (full); a large object's first page is on the large list; a
 *    free page is in the free map, and on the release list while
 *    committed. Collections start with no page claimed or stashed;
 *  - alloc is exact for pages that are not current (a stashed page's bits
 *    are what they were on the avail list). For a current page, a
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
    /* In use, but its memory is recycled and not yet zeroed: the thread
     * that took it zeroes it after heap_lock (rudo__pages_zero). */
    uint8_t unzeroed;
    /* Ephemeron fixpoint (mark.c), collector only: 1 = holds keys of
     * pending ephemerons, 2 = and an object on it was marked since the
     * fixpoint last looked at them; 0 otherwise and between collections. */
    uint8_t ephem;
    /* Generations (sweep.c): alloc ⊆ mark is known (a minor collection's
     * prepare has nothing to do here); on the heap's touched list (handed
     * to an allocator, or a large object made, since the last collection). */
    uint8_t settled, touched;
    /* Of an atomic kind (RUDO_TRACE_ATOMIC): marked cells are not traced.
     * With scan_mask, set when the page gets its kind (alloc.c) and read
     * by the markers instead of the kind record. */
    uint8_t noscan;
    uint32_t kind;
    /* Marked cells counted by the last eager sweep: what a minor
     * collection, which sweeps only touched pages, keeps for the others. */
    uint32_t live_cells;
    size_t cell_size;    /* small: class size; large: usable size (>= 16) */
    uint32_t ncells;     /* small: cells in the page; large: 1 */
    uint32_t owner;      /* id of the mutator that last allocated here */
    uint32_t recip;      /* small: ceil(2^32 / cell_size), for offset/size */
    /* Small pages of a layout kind whose cell and layout fit one bitmap
     * word (rudo__kind_scan_mask): the pointer words of a cell. 0: trace
     * through the kind record. */
    uint64_t scan_mask;
    size_t span;         /* large: pages in the span */
    _Atomic uint64_t swept_gc; /* gc_count when last swept (relaxed: as alloc) */
    uint64_t release_at; /* free: gc_count after which memory is released */
    /* current: the allocator's free-list head. Stored with release and
     * loaded with acquire, so a query that sees NULL also sees the alloc
     * bits written before it (rudo__find_object). RUDO_OWNER_CLAIMED while
     * an allocator that took the page off its avail list (or its stash)
     * sweeps it (alloc.c), so that rudo_free leaves the page alone
     * meanwhile; RUDO_OWNER_STASHED / RUDO_OWNER_FREEING in an allocator's
     * batch (below; docs/threads.md gives each store's order). */
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

/* owner_list of a page an allocator is claiming (above). */
#define RUDO_OWNER_CLAIMED ((void **)1)
/* owner_list of a page in an allocator's batch (alloc.c): taken off the
 * avail list or the free pool for one size class of one thread, not yet
 * swept by it; and of such a page while rudo_free changes its bits
 * (gc/free.c). The allocator claims a stashed page without heap_lock, by
 * compare-and-swap from STASHED to CLAIMED, so rudo_free, under heap_lock,
 * holds it off with FREEING for the few stores it makes. */
#define RUDO_OWNER_STASHED ((void **)2)
#define RUDO_OWNER_FREEING ((void **)3)
/* Whether owner_list value ol is a stashed page's: not current, its bits
 * as exact as on the avail list. */
static inline bool rudo__owner_stashed(void **ol) {
    return ol == RUDO_OWNER_STASHED || ol == RUDO_OWNER_FREEING;
}

/* A doubly linked list of pages. */
typedef struct rudo__page_list {
    rudo__page *head;
    size_t count;
} rudo__page_list;

void rudo__list_push(rudo__page_list *l, rudo__page *p);
/* Puts page p on the touched list (heap_lock held); see heap->touched. */
void rudo__page_touch(struct rudo__heap *h, rudo__page *p);
void rudo__list_remove(rudo__page_list *l, rudo__page *p);
rudo__page *rudo__list_pop(rudo__page_list *l);
/* The avail list of page p's (kind, class): pages with free cells, each
 * at most once (the `listed` flag). Put p on it unless it is there, take
 * it off if it is, or pop one (NULL if empty). heap_lock held. */
void rudo__avail_add(struct rudo__heap *h, rudo__page *p);
void rudo__avail_remove(struct rudo__heap *h, rudo__page *p);
rudo__page *rudo__avail_pop(struct rudo__heap *h, rudo_kind kind, unsigned cls);

/* Bits of the cells that exist in word w of a page with n cells. */
static inline uint64_t rudo__valid_bits(size_t n, size_t w) {
    if (w * 64 >= n)
        return 0;
    return n - w * 64 >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << (n - w * 64)) - 1;
}

/* Allocates a span of n pages from the free pool (heap_lock held): marks
 * them in use. NULL if max_heap or the reservation would be exceeded.
 * Recycled memory in the span (pages freed and not yet released to the OS)
 * is flagged `unzeroed` rather than zeroed here, so that the 64 KiB
 * memsets do not serialize every allocating thread on heap_lock; *scan is
 * then how many leading descriptors of the span the caller hands to
 * rudo__pages_zero (0: the whole span is fresh or released, hence zero).
 * The caller zeroes before anything else reads the memory: the span is
 * not yet typed (small) or not yet returned (large), and no collection
 * runs while it is inside the slow path. */
rudo__page *rudo__pages_alloc(size_t n, size_t *scan);
/* Zeroes the pages flagged unzeroed among the first `scan` pages of the
 * span p (without heap_lock: the span is the caller's alone). */
void rudo__pages_zero(rudo__page *p, size_t scan);
/* Returns a span to the free pool (heap_lock held). */
void rudo__pages_free(rudo__page *p, size_t n);
/* Returns to the OS the free pages whose delay has passed (heap_lock),
 * as long as the committed pages exceed the most pages in use at any of
 * the last RUDO_RETAIN_WINDOW collections: memory the program needed that
 * recently is kept for the next cycles, not released and faulted back in
 * (hysteresis; release_delay 0 turns both off: release at once). */
void rudo__pages_release_due(void);
/* Records the pages in use at the start of a collection's sweep. */
void rudo__pages_note_in_use(struct rudo__heap *h);
/* The next page after page i that a walk over the pages in use must
 * visit (hwm if none): past a large object's span at once (its tails have
 * nothing to visit) and past runs of free pages, so that a walk reads no
 * descriptor that was never written. Call with the world stopped or
 * heap_lock held. */
size_t rudo__pages_next(const struct rudo__heap *h, size_t i);
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
/* A finalizer with its argument: immutable once made, so a reader that
 * loads a kind's `fin` once gets a matching pair. Kept until the heap is
 * destroyed (a reader may still hold one after it is replaced). */
typedef struct rudo__finalizer {
    rudo_finalize_fn fn;           /* never NULL */
    void *data;
    struct rudo__finalizer *next;  /* the heap's list (heap_lock) */
} rudo__finalizer;

/* A kind record. Written before nkinds is released past it (kind.c), then
 * immutable except for `fin`. */
typedef struct rudo__kind {
    char name[48];
    rudo_tracing tracing;
    rudo_trace_fn trace;
    uint64_t *layout;      /* copy; LAYOUT only */
    size_t layout_words;
    /* The finalizer in effect, NULL if none: stored with release by
     * rudo_kind_set_finalizer, read with rudo__kind_fin. */
    _Atomic(const rudo__finalizer *) fin;
    bool base_only;        /* RUDO_KIND_BASE_ONLY: slots hold bases only */
    /* RUDO_KIND_UNINIT (atomic kinds only): the free cells of its small
     * pages hold garbage but for their link word, and its large objects
     * what recycled memory held; nothing zeroes them. A page leaves the
     * kind only through the free pool, which zeroes recycled memory
     * before it is typed again (rudo__pages_alloc). */
    bool uninit;
} rudo__kind;

/* The words of a cell of cell_size bytes that marking traces as a bitmap,
 * for a layout kind (not base-only) whose layout and cell both fit one
 * bitmap word: the layout's bits repeated every layout_words words, cut at
 * the cell's end. 0 for every other kind and size: the marker then goes
 * through the kind record. */
uint64_t rudo__kind_scan_mask(const rudo__kind *k, size_t cell_size);

/* The kind record of k; aborts naming fn if k is unknown. Loads nkinds
 * with acquire, so it suits handles that come straight from the user. */
rudo__kind *rudo__kind_get(rudo_kind k, const char *fn);

/* The finalizer of k now, NULL if none. Acquire: pairs with the release
 * store in rudo_kind_set_finalizer, so the record's fn and data are the
 * ones written before it was published. */
static inline const rudo__finalizer *rudo__kind_fin(const rudo__kind *k) {
    return atomic_load_explicit(&k->fin, memory_order_acquire);
}

/* What a root enumeration reports: conservative ranges (every aligned word
 * may be a pointer, interior pointers included) and precise slots. */
typedef struct rudo__root_visitor {
    void (*range)(struct rudo__root_visitor *v, void *lo, void *hi);
    void (*slot)(struct rudo__root_visitor *v, void **slot);
    /* A root callback (rudo_root_callback_add): fn(tracer, data) reports
     * precise slots when the marking that consumes it calls it. */
    void (*callback)(struct rudo__root_visitor *v, rudo_root_fn fn, void *data);
} rudo__root_visitor;

/* The world (threads/): the attached threads and the stop-the-world
 * handshake, under its lock, gc_lock (rank GC). */
typedef struct rudo__world {
    rudo__lock lock;            /* "gc_lock" */
    /* Posted when a mutator stopped or blocked and the collector may be
     * done waiting, and by the suspend handler (a semaphore: the one wake-
     * up a signal handler may give). */
    sem_t stopped_sem;
    pthread_cond_t resume_cv;   /* a collection ended (CLOCK_MONOTONIC) */
    /* Under gc_lock: threads in rudo__park's wait, and the condition the
     * last of them to leave it after a collection signals: the next stop
     * waits (briefly) for them, or a thread that collects back to back
     * would retake gc_lock before they ever run (CLOCK_MONOTONIC). */
    unsigned nwaiting;
    pthread_cond_t left_cv;
    bool collecting;
    /* When the current stop completed, and when a waiting thread next
     * reports that the world is still stopped (stop_warn_ms after the stop,
     * then at doubling delays): a trace or root callback that waits for a
     * stopped thread otherwise hangs every thread silently. 0 while no stop
     * is complete. Written under gc_lock; read by parked threads and by the
     * suspend handler (which cannot take the lock), and advanced by
     * whichever of them reports (rudo__world_report_stuck). Atomic for that
     * handler; relaxed everywhere: they are clock readings that publish
     * nothing. */
    _Atomic uint64_t stopped_at_ns, stuck_next_ns;
    /* What the collector is doing now (a phase name), for that report:
     * written by the collector, read by parked threads (relaxed: a label). */
    _Atomic(const char *) doing;
    unsigned nrunning;          /* mutators in RUNNING state */
    unsigned nmutators;
    uint32_t next_mutator_id;
    struct rudo__mutator *mutators;
    /* First delay, in ms, before the collector names the threads it still
     * waits for (RUDO_STOP_WARN_MS; 0 = never); set at creation. */
    unsigned stop_warn_ms;
    /* Signal suspension (threads/sigstop.c), set at creation: the signals
     * (suspend_sig 0 = off) and the delay before a running thread that has
     * not stopped is signalled. */
    int suspend_sig, restart_sig;
    bool restart_warned;        /* under gc_lock: the replaced-handler warning */
    unsigned signal_stop_ms;
    /* Under gc_lock: the number of the current (or last) stop, and how
     * many threads it signalled; signal_stops counts threads stopped by
     * signal over all collections (tests). stop_seq is also read, relaxed,
     * by the watch (a label in its report), so it is written relaxed. */
    uint64_t stop_seq;
    unsigned nsignalled;
    /* Under gc_lock: threads parked by request (rudo_thread_suspend) when
     * the current stop began: RUNNING, yet they never post stopped_sem. */
    unsigned nparked;
    uint64_t signal_stops;
    /* The watch (safepoint.c, rudo__world_watch_start): a ticker thread
     * that reports a stop that lasts when no waiting thread is there to. */
    rudo__os_ticker watch;
} rudo__world;

/* The root registry (roots.c), under its lock (rank ROOTS): an open-
 * addressing hash set of precise slot addresses and an array of ranges. */
typedef struct rudo__roots {
    rudo__lock lock;
    rudo__slotset slots;    /* precise roots */
    /* Weak slots (weak.c): cleared when their target is unreachable
     * (weak), or only once it is reclaimed, after finalization (weak_long). */
    rudo__slotset weak, weak_long;
    size_t *skipped;        /* weak entries left for the last pass (weak.c) */
    size_t nskipped, cap_skipped;
    struct rudo__root_range { char *lo, *hi; } *ranges;
    size_t nranges, cap_ranges;
    /* Root callbacks (rudo_root_callback_add). */
    struct rudo__root_cb { rudo_root_fn fn; void *data; bool first; } *cbs;
    size_t ncbs, cap_cbs;
} rudo__roots;

/* Finalization (final.c), under its lock (rank FINAL). */
struct rudo_guardian;
/* What runs for an object that died: its own finalizer (fn), delivery to
 * a guardian, or (both NULL) its kind's finalizer. */
typedef struct rudo__final_entry {
    void *obj;
    rudo_finalize_fn fn;
    void *data;
    struct rudo_guardian *guardian;
    bool ordered;           /* after what refers to it (final.c) */
    bool ignore_self;       /* ordered, its pointers into itself ignored */
} rudo__final_entry;
typedef struct rudo__final {
    rudo__lock lock;
    /* Due, each a FIFO: objects whose kind's finalizer is due (a pointer
     * each: most queued objects are these), and per-object entries. */
    void **kq;
    size_t khead, ktail, kcap;
    rudo__final_entry *queue;
    size_t head, tail, cap;
    bool running;           /* a thread is running finalizers (one at a time) */
    bool on_demand;         /* run only by rudo_run_finalizers */
    void (*notify)(void *data); /* told when finalizers became due */
    void *notify_data;
    /* Per-object registrations (rudo_finalizer_register, guardians): an
     * open-addressing map from object base to entry, linear probing;
     * obj NULL = empty, RUDO__FINAL_TOMB = deleted. */
    rudo__final_entry *reg;
    size_t reg_cap, reg_used, reg_live;
    struct rudo_guardian *guardians; /* every guardian (roots: their queues) */
} rudo__final;
#define RUDO__FINAL_TOMB ((void *)1)

/* What a mark phase did, summed over the markers (mark.c). */
typedef struct rudo__mark_stats {
    uint64_t objects_marked, overflows;
    size_t high_water;
} rudo__mark_stats;

/* ---- heap.c -------------------------------------------------------------- */

typedef struct rudo__heap {
    rudo_config cfg;
    char *base;                 /* reserved range */
    size_t reserve;             /* its size */
    size_t npages;              /* pages in the reservation */
    bool max_heap_cap;          /* rudo_set_max_heap_cap: max_heap is no budget */
    rudo__page *pages;          /* descriptors, one per page */
    size_t pages_map_bytes;

    rudo__world world;          /* attached threads, handshake (threads/) */

    /* heap_lock (rank HEAP): the page pool and lists, the kinds. */
    rudo__lock heap_lock;
    /* loader_lock (rank LOADER, the highest): held around the
     * dl_iterate_phdr call of an attach (a thread's TLS blocks), so that
     * the atfork prepare handler, which takes it last, never forks while
     * that call holds the dynamic loader's lock: glibc does not reset that
     * lock in the child, whose next call would wait for ever
     * (src/gc/fork.c). The static-data scan needs no such lock: no fork
     * happens during a collection. */
    rudo__lock loader_lock;
    /* Pages ever handed out (bump index). Written under heap_lock; read
     * relaxed by queries, which only need it to bound the descriptor table:
     * the descriptor of any page they legitimately look at was written
     * before the object they hold was published to them. */
    _Atomic size_t hwm;
    size_t free_hint;           /* no free page below this index */
    /* tail_dist[i]: for a tail page of a large object (any page of its
     * span but the first), the distance to the first; 0 for every other
     * page. A side table of 4 bytes a page, so that a large object's
     * bookkeeping does not make a 1.6 KiB descriptor resident per page
     * (a 63 GiB object would take 1.6 GB). Written under heap_lock; read
     * relaxed by queries, for the reason given at hwm. */
    _Atomic uint32_t *tail_dist;
    size_t tail_dist_bytes;
    uint64_t *free_map;         /* bit i set: page i is free */
    size_t free_map_bytes;
    size_t pages_in_use;        /* small + large pages */
    size_t pages_committed;     /* in use + free but not released */
    size_t pages_committed_peak;
    rudo__page_list release;    /* free, committed pages (by release_at) */
    /* Pages in use at each of the last RUDO_RETAIN_WINDOW collections
     * (before their sweep: the high point of each cycle), indexed by
     * gc_count % RUDO_RETAIN_WINDOW. The release list is returned to the
     * OS only beyond their maximum (rudo__pages_release_due). */
    size_t in_use_recent[RUDO_RETAIN_WINDOW];
    rudo__page_list *avail;     /* [kind*NCLASSES+cls] pages with free cells */
    rudo__page_list large;      /* large objects */
    /* Pages handed to allocators and large objects made since the last
     * collection (heap_lock): the only pages whose marks a minor
     * collection can change, hence all its eager sweep visits. */
    size_t *touched;
    size_t ntouched, cap_touched;
    /* The card table (generational mode): cards[i] != 0 if a store went
     * through the barrier into [base + i*512, base + (i+1)*512) since the
     * last collection. Written by the barrier (rudo.h), read and cleared by
     * the collector with the world stopped. */
    uint8_t *cards;
    size_t cards_bytes;
    /* The kinds: kinds[0 .. nkinds-1] are published and immutable but for
     * their `fin` (kind.c). nkinds is written under heap_lock with release
     * after the record; a reader given a handle by the user loads it with
     * acquire (rudo__kind_get). */
    rudo__kind kinds[RUDO_MAX_KINDS];
    _Atomic unsigned nkinds;
    rudo__finalizer *fin_records; /* every finalizer record (heap_lock) */

    /* Allocation accounting; relaxed atomics: counters read for triggering
     * and statistics, where a slightly stale value is harmless. Each thread
     * counts its refills in its own count_pending and adds them here in
     * batches of up to RUDO_COUNT_BATCH_MAX bytes (gc/alloc_slow.c), so these lines
     * are written once every few pages a thread takes, not at every page;
     * the totals are this plus every attached thread's count_pending. The
     * two written lines sit apart from `trigger` (read at every refill, by
     * every thread, written only by the collector) and from the fields
     * around them, so that their writes do not evict what other threads
     * only read. */
    char pad_count0[64];
    _Atomic uint64_t bytes_allocated;  /* since creation */
    _Atomic uint64_t alloc_since_gc;
    char pad_count1[64 - 2 * sizeof(uint64_t)];
    _Atomic uint64_t trigger;          /* collect when alloc_since_gc >= */
    char pad_count2[64 - sizeof(uint64_t)];

    /* Written only by the collector with the world stopped. */
    uint64_t gc_count;
    size_t live_bytes;
    uint64_t weak_cleared;      /* weak slots the last collection cleared */
    uint64_t ephemerons_cleared; /* and ephemerons */
    uint64_t ordered_cycles;    /* ordered finalizable objects on a cycle */
    /* The live data after the last collection in pages, as densely as
     * its size classes can pack it, in units of 2^-16 page: a small page
     * counts live cells / cells per page, a large object its span. What
     * the out-of-memory rule compares with the limit (alloc.c). */
    uint64_t live_pages16;
    size_t final_queued;        /* finalizers the last collection queued */
    struct rudo__gc_stats {
        uint64_t mark_ns, sweep_ns, pause_ns, pause_max, ttsp_max;
        uint64_t ttsp_ring[1024];
    } st;
    _Atomic uint64_t finalizers_run;
    _Atomic uint64_t lazy_sweep_ns;
    rudo__roots roots;          /* registered roots (roots.c) */
    rudo__final final;          /* finalization queue (final.c) */
    struct rudo__mark_pool *pool; /* markers; created at the first collection */
    /* Marking's state between collections (mark.c), touched by the
     * collector alone. */
    struct rudo__mark_state {
        unsigned fail_growths;  /* test hook: collections left in which
                                 * mark-stack growth fails */
        size_t stack_hint;      /* private stacks' first size (0: default) */
        /* Some page was flagged overflow in this collection. Relaxed:
         * read by the collector after joining the markers (pool lock). */
        atomic_bool overflowed;
        rudo__mark_stats last; /* the last mark phase, summed */
        /* The ephemeron fixpoint's pending entries, sorted by key page,
         * and the pages woken by new marks (mark.c, collector only). */
        struct rudo__pending { size_t page; rudo_ephemeron *e; } *pending;
        size_t npending, cap_pending;
        size_t *woken;
        size_t nwoken, cap_woken;
    } mark;
    /* Generations (docs/design.md, "Generations"): sticky mark bits. A
     * set mark bit between collections means "old" (survived one); minor
     * collections keep the bits and mark from the roots and the dirty
     * cards, major ones clear them and mark everything. Collector only,
     * world stopped, but for `on` (immutable after creation). */
    struct rudo__gen {
        bool on;                /* cfg.generational */
        bool minor;             /* the collection running is a minor one */
        bool next_major;        /* the policy's choice for the next one */
        size_t major_live;      /* live bytes after the last major one */
        size_t nursery;         /* now (adapts: collect.c); 0 = not yet */
        /* The last nursery chosen: at least nursery x threads (a max_heap
         * budget may then set a larger trigger: set_trigger). */
        size_t nursery_total;
        /* The allocating threads of the cycle just ended (collect.c:
         * allocating_threads), 1 to the online CPUs. */
        double threads;
        unsigned cpus;          /* online at creation: the cap of `threads` */
        uint64_t minors, majors;
        uint64_t minor_pause_ns, minor_pause_max;
        uint64_t major_pause_ns, major_pause_max;
        uint64_t promoted;      /* bytes, all minors */
        uint64_t last_promoted; /* by the last minor */
        uint64_t card_pages;    /* pages the last minor scanned cards of */
        /* Pause per young byte of minor collections (ns; a moving average,
         * 0 = none measured yet), and whether the pause goal capped the
         * nursery last time (cfg.minor_pause_goal_us; collect.c). */
        double pause_per_byte;
        bool goal_capped;
    } gen;
    rudo_gc_callback gc_callback;
    void *gc_callback_data;
    rudo_gc_listener listener;  /* copied; under gc_lock, read stopped */
    bool has_listener;
    /* GC stress mode: collect every gc_stress allocations (RUDO_GC_STRESS;
     * 0 = off), counted in stress_count (relaxed: a counter). */
    unsigned gc_stress;
    /* Pages a refill takes per heap_lock acquisition (RUDO_PAGE_BATCH):
     * 0 = adaptive (alloc.c), 1 = one, up to RUDO_PAGE_BATCH_MAX. */
    unsigned page_batch;
    /* rudo_disable nesting depth; relaxed: read by the slow path, whose
     * decision to collect only needs some recent value (rudo.h). */
    _Atomic unsigned disabled;
    /* rudo_hold_collections: collections are held off while the int it
     * points to is nonzero (NULL: none). The pointer is loaded with
     * acquire, pairing with the release that installs it; the flag itself
     * is the program's, read relaxed: a setting like `disabled`. */
    _Atomic(const int *) hold;
    _Atomic uint64_t stress_count;
    bool poison;                /* fill dead cells (RUDO_DEBUG, RUDO_POISON) */
    bool verify;                /* RUDO_DEBUG build or RUDO_VERIFY=1 */
    /* With verify: the objects given to rudo_free since the last
     * collection, kept allocated (quarantined) until then (gc/free.c,
     * heap_lock; read by the verifier with the world stopped). */
    rudo__slotset freed;
    /* With verify, in a minor collection with a frozen thread: the slots
     * (value: their object) that held young objects on clean cards before
     * marking, checked again after it (debug/verify.c; world stopped). */
    bool cards_hold;
    rudo__slotset cards_held;
    /* Bit d set: a conservative word at an object's base + d counts
     * (rudo_register_displacement; read by markers with the world
     * stopped, written while no collection runs). */
    uint64_t displacements[RUDO_DISPLACEMENT_MAX / 64];
    bool gc_log;                /* RUDO_GC_LOG=1 */
} rudo__heap;

extern rudo__heap *rudo__the_heap;

/* Points the inline barrier (rudo.h) at h's card table if h is
 * generational, or turns it off (h NULL or not generational). Call while
 * no mutator runs: at creation and destruction. */
void rudo__barrier_publish(const rudo__heap *h);

/* The card-table entries of page pi. */
static inline uint8_t *rudo__page_cards(const rudo__heap *h, size_t pi) {
    return h->cards + pi * RUDO_CARDS_PER_PAGE;
}

/* Marks the cards of the len bytes (len > 0) at start, inside the heap.
 * Relaxed, as the inline barrier's stores (rudo.h): they publish nothing;
 * the handshake orders them for the collection. */
static inline void rudo__cards_mark(rudo__heap *h, const void *start, size_t len) {
    size_t first = (size_t)((const char *)start - h->base) >> RUDO_CARD_SHIFT;
    size_t last = (size_t)((const char *)start + len - 1 - h->base) >> RUDO_CARD_SHIFT;
    for (size_t c = first; c <= last; c++)
        __atomic_store_n(&h->cards[c], 1, __ATOMIC_RELAXED);
}

static inline size_t rudo__hwm(const rudo__heap *h) {
    return atomic_load_explicit(&h->hwm, memory_order_relaxed);
}

/* Reserves h's address space (per h->cfg.max_heap) and its side tables
 * (descriptors, free map, tail_dist, avail lists); false if the OS refuses
 * (nothing stays mapped then). rudo__heap_unmap releases them all. */
bool rudo__heap_map(rudo__heap *h);
void rudo__heap_unmap(rudo__heap *h);

/* The heap; aborts with "rudo: fn: no heap" if none exists. */
rudo__heap *rudo__need_heap(const char *fn);

/* Frees the kinds' layouts and finalizer records (heap destruction, kind.c). */
void rudo__kinds_destroy(rudo__heap *h);

static inline char *rudo__page_addr(const rudo__page *p) {
    return rudo__the_heap->base +
           ((size_t)(p - rudo__the_heap->pages) << RUDO_PAGE_SHIFT);
}

/* The first page of the span holding a, an address inside an object (a
 * tail page of a large object leads to its first page). */
static inline rudo__page *rudo__head_page_of(const rudo__heap *h, const void *a) {
    size_t pi = ((uintptr_t)a - (uintptr_t)h->base) >> RUDO_PAGE_SHIFT;
    if (h->pages[pi].type == RUDO_PAGE_FREE)
        pi -= atomic_load_explicit(&h->tail_dist[pi], memory_order_relaxed);
    return &h->pages[pi];
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
    uintptr_t off = (uintptr_t)a - (uintptr_t)h->base;
    if (off >= (rudo__hwm(h) << RUDO_PAGE_SHIFT))
        return NULL;
    /* Works with the page index, not rudo__page_addr: descriptors are not
     * a power of two in size, so p - pages would cost a multiplication. */
    size_t pi = off >> RUDO_PAGE_SHIFT;
    rudo__page *p = &h->pages[pi];
    if (RUDO_UNLIKELY(p->type == RUDO_PAGE_FREE)) {
        /* A free page, or a tail of a large object (rudo__head_page_of). */
        size_t d = atomic_load_explicit(&h->tail_dist[pi], memory_order_relaxed);
        if (d == 0)
            return NULL;
        p -= d;
        pi -= d;
    }
    char *start = h->base + (pi << RUDO_PAGE_SHIFT);
    off = (uintptr_t)a - (uintptr_t)start;
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

/* As rudo__cell_of, for an address that must be a cell's base (base-only
 * slots, RUDO_KIND_BASE_ONLY): NULL unless a is exactly the start of a
 * cell of a small page or of a large object. Cheaper on what it rejects:
 * an address that is not granule-aligned fails before any load, and one
 * in a free page or a large object's tail fails without the tail_dist
 * walk (a tail holds no base). */
static inline char *rudo__cell_of_base(const rudo__heap *h, const void *a,
                                       rudo__page **pp, size_t *ip) {
    uintptr_t off = (uintptr_t)a - (uintptr_t)h->base;
    if ((off & (RUDO_GRANULE - 1)) || off >= (rudo__hwm(h) << RUDO_PAGE_SHIFT))
        return NULL;
    rudo__page *p = &h->pages[off >> RUDO_PAGE_SHIFT];
    uintptr_t in = off & (RUDO_PAGE_SIZE - 1);
    size_t i;
    if (p->type == RUDO_PAGE_SMALL) {
        i = rudo__cell_index(p, in);
        if (i >= p->ncells || i * p->cell_size != in)
            return NULL;
    } else if (p->type == RUDO_PAGE_LARGE && in == 0) {
        i = 0;
    } else {
        return NULL;
    }
    *pp = p;
    *ip = i;
    return (char *)a;
}

/* After marking: true if v points into a heap cell that is not marked (an
 * object the collection found unreachable, or a stale pointer into a free
 * cell), false if it points to a marked object or outside the heap. What
 * clears a weak slot. */
static inline bool rudo__unmarked_cell(const rudo__heap *h, const void *v) {
    rudo__page *p;
    size_t i;
    if (!rudo__cell_of(h, v, &p, &i))
        return false;
    return !((atomic_load_explicit(&p->bits[i / 64].mark, memory_order_relaxed) >>
              (i % 64)) & 1);
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


/* Whether collections are held off now: rudo_disable, or the flag of
 * rudo_hold_collections set. Relaxed loads of settings (see the fields):
 * the callers' decisions are heuristics or are made again under gc_lock. */
static inline bool rudo__collections_held(const rudo__heap *h) {
    if (atomic_load_explicit(&h->disabled, memory_order_relaxed) > 0)
        return true;
    const int *flag = atomic_load_explicit(&h->hold, memory_order_acquire);
    return flag && __atomic_load_n(flag, __ATOMIC_RELAXED) != 0;
}

#endif
