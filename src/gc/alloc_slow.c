/* alloc_slow.c — the allocation slow path's policy: when to collect, when
 * to retry and when the heap is full (the out-of-memory rule), GC stress
 * mode, and the calls built on rudo_alloc. The pages themselves come from
 * the allocation layer (src/alloc/). */
#include <stdlib.h>
#include <string.h>

#include "alloc/alloc.h"
#include "gc/gc.h"

static bool disabled(const rudo__heap *h) {
    return rudo__collections_held(h);
}

/* Counts for m `taken` bytes (a refill's free cells, a large object's
 * span: the statistics) and `used` bytes (cells known allocated: the full
 * page a refill retired, a large object: the trigger). They go to m's own
 * counts first and to the heap's shared counters once a batch gathered
 * (threads.h: trigger / RUDO_COUNT_SHARE, at most RUDO_COUNT_BATCH_MAX):
 * the shared lines are then written once every few pages a thread takes
 * on a large heap, instead of twice at every page, which made them bounce
 * between allocating threads. Relaxed: m is the only writer while it runs
 * (threads.h); the trigger is a heuristic (see maybe_collect). */
static void count_taken(rudo__heap *h, rudo__mutator *m, uint64_t taken,
                        uint64_t used) {
    m->bytes_allocated += taken;
    uint64_t n = atomic_load_explicit(&m->count_pending, memory_order_relaxed) + taken;
    atomic_store_explicit(&m->count_pending, n, memory_order_relaxed);
    m->charge_pending += used;
    uint64_t batch = atomic_load_explicit(&h->trigger, memory_order_relaxed) / RUDO_COUNT_SHARE;
    if (batch > RUDO_COUNT_BATCH_MAX)
        batch = RUDO_COUNT_BATCH_MAX;
    if (n >= batch || m->charge_pending >= batch)
        rudo__mutator_count_flush(h, m);
}

/* Collects if the trigger is reached; returns whether it did. */
static bool maybe_collect(rudo__heap *h, rudo__mutator *m) {
    /* Relaxed: both are heuristics; a stale value delays or advances the
     * collection by at most one page's worth of allocation. The other
     * threads' unflushed charges are not seen: the collection comes less
     * than (threads - 1) * min(trigger / RUDO_COUNT_SHARE,
     * RUDO_COUNT_BATCH_MAX) bytes later for it (threads.h, docs/threads.md). */
    if (atomic_load_explicit(&h->alloc_since_gc, memory_order_relaxed) +
                m->charge_pending >=
            atomic_load_explicit(&h->trigger, memory_order_relaxed) &&
        !disabled(h)) {
        rudo__collect(m, "allocation", false);
        return true;
    }
    return false;
}

static void *out_of_memory(rudo__heap *h, rudo__mutator *m, size_t size) {
    if (h->cfg.on_oom) {
        /* The handler allocated (rudo.h forbids it), and that failed too:
         * calling it again would recurse until the stack overflowed. */
        if (m->in_oom)
            rudo__fatal("rudo_alloc", "the heap is full and the out-of-memory "
                        "handler allocated %zu bytes (it must not allocate "
                        "from the rudo heap: rudo.h, rudo_oom_fn)", size);
        m->in_oom = true;
        /* The program's code: it may be suspended there (rudo__alloc_slow). */
        unsigned depth = rudo__runtime_pause();
        h->cfg.on_oom(size, h->cfg.oom_data);
        rudo__runtime_resume(depth);
        m->in_oom = false;
    }
    return NULL;
}

/* The most pages the heap may ever hold: max_heap, or the reservation. */
static size_t limit_pages(rudo__heap *h) {
    /* Under heap_lock: rudo_set_max_heap may change it meanwhile. */
    rudo__lock_acquire(&h->heap_lock);
    size_t lim = h->npages, max = h->cfg.max_heap;
    rudo__lock_release(&h->heap_lock);
    if (max && max / RUDO_PAGE_SIZE < lim)
        lim = max / RUDO_PAGE_SIZE;
    return lim;
}

/* The most collections an allocation runs (or waits for) before it gives
 * up although the pages in use after each seemed to leave room for it.
 * For a small object the room was real (a free page existed after the
 * sweep) and other threads took it first: they are making progress, so
 * the bound only guards against a pathological livelock. For a large
 * object the free pages may be scattered, with no span long enough, and
 * no collection may ever change that: it gives up sooner. */
#define OOM_COLLECTIONS_SMALL 64
#define OOM_COLLECTIONS_LARGE 8

/* Called when a request found no room. `need` is the room it takes, in
 * units of 2^-16 page (bytes, as pages are 2^16 bytes): its cell size for
 * a small object, its span for a large one. Returns true when the heap is
 * full: a collection that this request ran or waited for (rudo__collect
 * returns only after a collection that started after the call) queued no
 * finalizers, and the live data it left, counted in pages as densely as
 * its size classes pack it (live_pages16), plus the request exceed the
 * limit. Otherwise it collects and returns false, and the caller retries.
 * A single collection is not conclusive: other threads may take the room
 * it made before this thread retries, and objects whose finalizer was due
 * stay allocated until the next one. live_pages16 and final_queued are
 * written by the collector with the world stopped; the handshake
 * (gc_lock) orders them before this read. */
static bool heap_full(rudo__heap *h, rudo__mutator *m, uint64_t need,
                      bool large, unsigned *collections) {
    if (disabled(h)) {
        /* No collection returns this thread's stashed pages (alloc.c,
         * page batches): give them back and retry. Those of other threads
         * stay theirs until rudo_enable (docs/design.md). */
        if (rudo__alloc_unstash_free(h, m->kalloc))
            return false;
        if (atomic_load_explicit(&h->disabled, memory_order_relaxed) > 0)
            rudo__warn("rudo_alloc", "heap limit reached while collection is "
                       "disabled (rudo_disable)");
        else
            rudo__warn("rudo_alloc", "heap limit reached while collections "
                       "are held off (rudo_hold_collections)");
        return true;
    }
    uint64_t lim = (uint64_t)limit_pages(h) << RUDO_PAGE_SHIFT;
    /* Only a major collection's live data counts: a minor one's includes
     * the dead old objects it did not look at. */
    if (*collections > 0 && h->final_queued == 0 && !h->gen.minor &&
        (need > lim || h->live_pages16 > lim - need))
        return true;
    if (*collections == (large ? OOM_COLLECTIONS_LARGE : OOM_COLLECTIONS_SMALL))
        return true;
    ++*collections;
    rudo__collect(m, "heap limit", true);
    return false;
}

/* GC stress mode (RUDO_GC_STRESS=N): a collection every N allocations,
 * counted over all threads. Relaxed: a counter; which thread collects
 * does not matter. */
static void stress_tick(rudo__heap *h, rudo__mutator *m) {
    uint64_t n = atomic_fetch_add_explicit(&h->stress_count, 1,
                                           memory_order_relaxed) + 1;
    /* With generations, every fourth is major: stress mode then mixes
     * both kinds, at every allocation site. */
    if (n % h->gc_stress == 0)
        rudo__collect(m, "stress", n / h->gc_stress % 4 == 0);
}

/* The thread's allocation state for `kind`, created on first use. The
 * inline fast path sees it through fast.lists, except in stress mode,
 * where every allocation must come here to be counted. */
static rudo__kind_alloc *kind_alloc(rudo__heap *h, rudo__mutator *m,
                                    rudo_kind kind) {
    rudo__kind_alloc *ka = m->kalloc[kind];
    if (RUDO_LIKELY(ka != NULL))
        return ka;
    ka = calloc(1, sizeof *ka);
    if (!ka)
        rudo__fatal("rudo_alloc", "out of memory for thread allocation state");
    m->kalloc[kind] = ka;
    if (!h->gc_stress)
        m->fast.lists[kind] = ka->lists;
    return ka;
}

static void *alloc_small(rudo__heap *h, rudo__mutator *m, rudo_kind kind,
                         size_t size) {
    rudo__kind_alloc *ka = kind_alloc(h, m, kind);
    unsigned c = rudo__size_class(size);
    unsigned collections = 0;
    for (;;) {
        void **cell = ka->lists[c];
        if (cell) {
            ka->lists[c] = *cell;
            *cell = NULL;
            return cell;
        }
        /* A collection here runs finalizers (and a listener) on this
         * thread, and they may allocate in this class: then it has a list
         * again, which the refill must not overwrite (alloc.h). */
        if (maybe_collect(h, m) && ka->lists[c])
            continue;
        uint64_t used = 0;
        size_t got = rudo__alloc_refill(h, ka, m->id, kind, c, &used);
        count_taken(h, m, got, used);
        if (!got && heap_full(h, m, rudo__class_size[c], false, &collections))
            return out_of_memory(h, m, size);
    }
}

static void *alloc_large(rudo__heap *h, rudo__mutator *m, rudo_kind kind,
                         size_t usable, size_t npages) {
    maybe_collect(h, m);
    unsigned collections = 0;
    for (;;) {
        void *obj = rudo__alloc_large(h, m->id, kind, usable, npages);
        if (obj) {
            m->fresh_large = obj;
            m->fresh_large_len = usable;
            /* Allocated whole at once: the trigger is charged now too. */
            count_taken(h, m, (uint64_t)npages * RUDO_PAGE_SIZE,
                        (uint64_t)npages * RUDO_PAGE_SIZE);
            return obj;
        }
        if (heap_full(h, m, (uint64_t)npages << RUDO_PAGE_SHIFT, true, &collections))
            return out_of_memory(h, m, usable);
    }
}

static void *alloc_slow(rudo_kind kind, size_t size);

void *rudo__alloc_slow(rudo_kind kind, size_t size) {
    /* The whole slow path is inside rudo: a thread suspended by signal
     * there could hold heap_lock, be halfway through the lazy sweep of a
     * page, or through setting up its lists; the suspend handler defers
     * the stop to the exit of this function, at a safepoint (sigstop.c).
     * The object returned is in this frame when the thread parks there,
     * so the safepoint's capture keeps it. */
    rudo__runtime_enter();
    /* A collection's callbacks and finalizers may run below: they must
     * not free this thread's state (rudo_thread_detach, heap destroy),
     * which the allocation reads again when they return. */
    rudo__mutator *m = rudo__me;
    if (m)
        m->busy++;
    void *obj = alloc_slow(kind, size);
    if (m)
        m->busy--;
    rudo__runtime_leave();
    return obj;
}

static void *alloc_slow(rudo_kind kind, size_t size) {
    const char *fn = "rudo_alloc";
    rudo__check_context(fn, "allocate");
    rudo__mutator *m = rudo__need_mutator(fn);
    rudo__heap *h = rudo__the_heap;
    /* Acquire: the kind handle comes from the user (see rudo__kind_get). */
    unsigned nkinds = atomic_load_explicit(&h->nkinds, memory_order_acquire);
    if (kind >= nkinds)
        rudo__fatal(fn, "unknown kind %u (%u kinds registered)", kind, nkinds);
    if (size == 0)
        rudo__fatal(fn, "size 0 (kind '%s')", h->kinds[kind].name);
    rudo_safepoint();
    if (RUDO_UNLIKELY(h->gc_stress) && !disabled(h))
        stress_tick(h, m);
    if (size <= RUDO_SMALL_MAX)
        return alloc_small(h, m, kind, size);
    /* A request that can never fit goes straight to the out-of-memory
     * path: no collection could make room for it. */
    if (size > limit_pages(h) * RUDO_PAGE_SIZE)
        return out_of_memory(h, m, size);
    size_t usable = (size + RUDO_GRANULE - 1) & ~(size_t)(RUDO_GRANULE - 1);
    return alloc_large(h, m, kind, usable,
                       (usable + RUDO_PAGE_SIZE - 1) >> RUDO_PAGE_SHIFT);
}

/* The calls built on rudo_alloc check their caller first, so that misuse
 * is reported under their own name (and a realloc that stays in place,
 * which allocates nothing, is checked all the same). */
static void check_caller(const char *fn) {
    rudo__check_context(fn, "allocate");
    rudo__need_mutator(fn);
}

void *rudo_alloc_array(rudo_kind kind, size_t n, size_t elem_size) {
    const char *fn = "rudo_alloc_array";
    check_caller(fn);
    size_t bytes;
    if (__builtin_mul_overflow(n, elem_size, &bytes))
        rudo__fatal(fn, "%zu * %zu bytes overflows", n, elem_size);
    if (bytes == 0)
        rudo__fatal(fn, "size 0 (%zu elements of %zu bytes)", n, elem_size);
    return rudo_alloc(kind, bytes);
}

void *rudo_realloc(void *obj, size_t size) {
    const char *fn = "rudo_realloc";
    check_caller(fn);
    if (!obj)
        return rudo_alloc(RUDO_KIND_CONSERVATIVE, size);
    rudo__heap *h = rudo__the_heap;
    rudo__page *p;
    if (rudo__find_object(h, obj, &p) != obj)
        rudo__fatal(fn, "%p is not the base of a heap object", obj);
    if (size == 0)
        rudo__fatal(fn, "size 0");
    size_t old = p->cell_size;
    if (size <= old) {
        memset((char *)obj + size, 0, old - size);
        return obj;
    }
    void *n = rudo_alloc(p->kind, size);
    if (n)
        memcpy(n, obj, old);
    return n;
}

void *rudo_alloc_aligned(rudo_kind kind, size_t size, size_t align) {
    const char *fn = "rudo_alloc_aligned";
    check_caller(fn);
    if (align == 0 || (align & (align - 1)) || align > RUDO_PAGE_SIZE)
        rudo__fatal(fn, "alignment %zu is not a power of two up to %zu", align,
                    (size_t)RUDO_PAGE_SIZE);
    if (size == 0)
        rudo__fatal(fn, "size 0");
    if (align <= RUDO_GRANULE)
        return rudo_alloc(kind, size);
    /* Cells start at multiples of their size from a page boundary (64 KiB
     * aligned): a class whose size is a multiple of align gives aligned
     * cells. Large objects start at a page. */
    for (unsigned c = rudo__size_class(size <= RUDO_SMALL_MAX ? size : RUDO_SMALL_MAX);
         size <= RUDO_SMALL_MAX && c < RUDO_NCLASSES; c++)
        if (rudo__class_size[c] >= size && rudo__class_size[c] % align == 0)
            return rudo_alloc(kind, rudo__class_size[c]);
    return rudo_alloc(kind, size > RUDO_SMALL_MAX ? size : RUDO_SMALL_MAX + 1);
}
