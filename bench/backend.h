/*
 * backend.h — the small memory-management interface every benchmark in
 * bench/ is written against.
 *
 * Each benchmark is one .c file; it is linked once per backend:
 *   backend_rudo.c   rudo (this project), precise layout kinds
 *   backend_bdwgc.c  the Boehm-Demers-Weiser collector (Debian libgc-dev)
 *   backend_malloc.c explicit malloc/free: glibc, or mimalloc when compiled
 *                    with BK_MIMALLOC
 * The build defines BK_GC to 1 for the collector backends and 0 for the
 * malloc backends, so a benchmark can skip the work of freeing (walking a
 * dead tree) when nobody needs it: that walk is part of the cost of explicit
 * memory management, not of garbage collection.
 *
 * Rules a benchmark follows so that one source serves every backend:
 *  - every object it drops is passed to bk_free() (or to a walk guarded by
 *    bk_must_free()); the collector backends ignore it;
 *  - pointers held only in static data are registered with bk_root_add();
 *  - a thread other than the main one calls bk_thread_attach() before its
 *    first allocation and bk_thread_detach() before it ends;
 *  - the main thread brackets a wait for other threads (pthread_join) with
 *    bk_blocking_enter()/bk_blocking_leave(), so a collection started by a
 *    worker does not wait for it.
 */
#ifndef BENCH_BACKEND_H
#define BENCH_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef BK_GC
#error "bench/backend.h: the build must define BK_GC (1 = collector, 0 = malloc)"
#endif

/* A node type: `size` bytes whose first `nptrs` words are pointers to other
 * objects (or NULL) and whose remaining words hold no pointers. `id` is the
 * backend's handle for it (rudo: a layout kind). */
typedef struct bk_type {
    uint32_t size;
    uint32_t id;
} bk_type;

/* The backend's name as printed in results: "rudo", "bdwgc", "glibc",
 * "mimalloc". */
const char *bk_name(void);

/* Sets the memory manager up on the main thread. `threads` is the number of
 * threads that will allocate (the main thread included). */
void bk_init(unsigned threads);

/* Called by each extra thread before its first allocation / before it ends. */
void bk_thread_attach(void);
void bk_thread_detach(void);

/* Brackets a region where the calling thread neither allocates nor touches
 * heap objects (e.g. pthread_join). */
void bk_blocking_enter(void);
void bk_blocking_leave(void);

/* Declares a node type; call after bk_init, on the main thread. */
bk_type bk_node_type(const char *name, size_t size, unsigned nptrs);

/* Allocates one node of type t. Never returns NULL. The contents are
 * unspecified (the collectors hand out zeroed memory, malloc does not), so
 * the benchmarks write every field. */
void *bk_alloc(bk_type t);

/* Allocates an array of n pointers, all NULL. */
void **bk_alloc_ptrs(size_t n);

/* Allocates `size` bytes that hold no pointers; contents unspecified. */
void *bk_alloc_blob(size_t size);

/* Stores p into the pointer field *slot of heap object obj. The benchmarks
 * write every pointer field of an object that may have survived a
 * collection through it (all but the initializing stores right after the
 * allocation): it is rudo's write barrier (rudo_write), which generational
 * mode needs, and a plain store for the other backends. */
#if defined(BK_RUDO)
#include <rudo.h>
static inline void bk_write(void *obj, void *slot, void *p) {
    rudo_write(obj, (void **)slot, p);
}
#else
static inline void bk_write(void *obj, void *slot, void *p) {
    (void)obj;
    *(void **)slot = p;
}
#endif

/* Bounds the heap to `bytes` (rudo: max_heap, bdwgc: the maximum heap
 * size; nothing for malloc), for benchmarks run at a fixed heap size. */
void bk_heap_limit(size_t bytes);

/* Frees an object the program has dropped: free() for the malloc backends,
 * nothing for the collectors. */
void bk_free(void *p);

/* True when dropped objects must be passed to bk_free (malloc backends). */
static inline bool bk_must_free(void) { return !BK_GC; }

/* Registers / removes a static pointer slot as a root. */
void bk_root_add(void **slot);
void bk_root_remove(void **slot);

/* Weak slots (bench/weak_refs.c; the collector backends only).
 * A weak slot is a pointer-sized location in memory the collector does not
 * scan (malloc'd memory) holding a pointer to the base of a heap object, or
 * NULL; it does not keep its target alive, and a collection that finds the
 * target unreachable stores NULL into it (the short rule: before any
 * finalizer runs).
 *  - bk_weak_register(slot) binds the slot to its current value *slot
 *    (not NULL). Call it again after storing a different object into the
 *    slot, including into a slot the collector has cleared (rudo: the
 *    registration is of the location and survives the clearing, so the
 *    call is a cheap no-op returning RUDO_EEXIST; bdwgc: a cleared link is
 *    dropped by the collector and a changed one must be re-bound to its
 *    new object, GC_general_register_disappearing_link does both).
 *  - bk_weak_unregister(slot) forgets it (a slot that was cleared may have
 *    been forgotten already: not an error).
 * Single-threaded use only: bdwgc wants its allocation lock held while a
 * disappearing link is read when other threads may collect.
 * The malloc backends have no collector: bk_has_weak() is false there and
 * the two calls do nothing. */
bool bk_has_weak(void);
void bk_weak_register(void **slot);
void bk_weak_unregister(void **slot);

/* Totals over all collections so far, as the collector reports them, of
 * weak slots cleared and of ephemerons cleared; -1 when the backend does
 * not report them (bdwgc, malloc). rudo: rudo_gc_event.weak_cleared and
 * .ephemerons_cleared. */
int64_t bk_weak_cleared_total(void);
int64_t bk_ephemerons_cleared_total(void);

/* Runs a full collection now (no-op for malloc). */
void bk_collect(void);

/* Number of marker threads the collector uses (0 for malloc). */
unsigned bk_markers(void);

/* Prints what each marker did in the last collection, one line per marker
 *   MARKER i marked=M traced=T steals=WON/ATTEMPTED sent=S recv=R
 *          idle_us=I hw=H
 * and one summary line
 *   MARKERS n=N traced_min=.. traced_med=.. traced_max=.. balance=MAX/MIN
 *           steals_won=.. steals_attempted=.. batches_sent=..
 * (rudo: rudo_get_marker_stats; the other backends print nothing). */
void bk_print_marker_stats(void);

/* Writes backend-specific result fields ("key=value ...", or "") into buf:
 * rudo reports its time to safepoint, ttsp_med_us and ttsp_max_us. */
void bk_result_extra(char *buf, size_t size);

#endif /* BENCH_BACKEND_H */
