/* compat.h — internal interface of rudo's libgc.so.1 (bdwgc's ABI on top of
 * rudo). Declarations are grouped under the file that defines them.
 *
 * Locking: the library's own mutex (compat_lock) guards its tables (roots
 * added with GC_add_roots, uncollectable objects). It is taken inside a
 * rudo blocking region, so a thread waiting for it never delays a
 * collection; the holder may then call rudo (and stop at a safepoint) while
 * holding it. Nothing takes it with the world stopped. */
#ifndef RUDO_COMPAT_H
#define RUDO_COMPAT_H

#include "gc_abi.h"

#include <pthread.h>
#include <rudo.h>
#include <stdatomic.h>
#include <stdbool.h>

/* One process-wide state (bdwgc has one collector per process). */
struct compat_state {
    pthread_once_t once;
    atomic_bool ready;          /* init has completed */
    size_t extra;               /* bytes added to each request: 1 when
                                 * GC_all_interior_pointers was set at init */
    pthread_mutex_t lock;       /* see above */
    GC_warn_proc warn;          /* GC_set_warn_proc */
    pthread_mutex_t sync_lock;  /* init.c's sync_divisor */
    GC_word applied_divisor;    /* GC_free_space_divisor as last applied */
    /* rudo's reservation (rudo_heap_bounds), fixed at init: bdwgc's "in
     * the heap" is (heap_below, heap_end). One byte below its start, as
     * GC_least_plausible_heap_addr (init.c): this lies in scanned static
     * data, and the start itself is the first cell's address. */
    char *heap_below, *heap_end;
    size_t max_heap;            /* GC_set_max_heap_size's cap, 0: none */
    size_t requested;           /* the initial heap plus every GC_expand_hp
                                 * (compat_lock): rudo's initial_heap */
    atomic_int disabled;        /* GC_disable depth */
    uint64_t allocd_at_gc;      /* rudo_stats.bytes_allocated at the last
                                 * collection (GC_get_bytes_since_gc) */
    uint64_t freed_explicitly;  /* bytes given to GC_free since the last gc */
    /* GC_add_roots ranges, so GC_remove_roots can remove by interval. */
    struct compat_range { char *lo, *hi; } *ranges;
    size_t nranges, cap_ranges;
    /* Uncollectable objects: base -> the malloc'd precise root slot that
     * holds it (open addressing, linear probing, NULL key = empty). */
    struct compat_unc { void *obj; void **slot; } *unc;
    size_t nunc, cap_unc;
};
extern struct compat_state compat;

/* ---- init.c ---- */
/* Initializes on first use (every entry point that needs the heap calls
 * it) and attaches the calling thread if it is not attached. */
void compat_enter_slow(void);
static inline void compat_enter(void) {
    /* rudo__tl is NULL exactly when the thread is not attached (a thread
     * in a blocking region has a placeholder): one TLS load on the fast
     * path. */
    if (RUDO_UNLIKELY(rudo__tl == NULL))
        compat_enter_slow();
}
/* Ensures the heap exists without attaching (for calls valid from any
 * thread). */
void compat_init(void);
/* Takes and releases compat.lock (see the top of this file). */
void compat_lock(void);
void compat_unlock(void);
/* fork handlers: compat's locks are held across fork (init.c, threads.c). */
void compat_atfork_install(void);
void compat_threads_fork_prepare(void);
void compat_threads_fork_release(void);

/* GC_is_init_called (init.c), used by other files. */
GC_API int GC_is_init_called(void);

/* ---- warn.c ---- */
/* Passes msg (a printf format with at most one %lu/%p conversion, as
 * bdwgc's) and arg to the warn proc. */
void compat_warn(const char *msg, GC_word arg);
/* Warns once per flag: for stubs and for settings that are stored but not
 * acted on. msg is a literal naming the function. */
void compat_warn_once(atomic_int *flag, const char *msg);
/* The out-of-memory path of an allocation of `bytes`: GC_oom_fn's result. */
void *compat_oom(size_t bytes);
/* bdwgc's ABORT: GC_on_abort(msg) (GC_set_abort_func), then abort(). */
_Noreturn void compat_abort(const char *msg);
/* GC_on_abort's default (bdwgc's): prints msg and a newline on stderr. */
void compat_default_on_abort(const char *msg);
/* bdwgc's default out-of-memory function: returns NULL (GC_oom_fn's
 * initial value). */
void *compat_default_oom_fn(size_t bytes);

/* ---- control.c ---- */
/* The default pointer-check failure procedures (bdwgc's: they abort). */
void compat_default_same_obj_print_proc(void *p, void *q);
void compat_default_is_visible_print_proc(void *p);
void compat_default_is_valid_displacement_print_proc(void *p);

/* ---- malloc.c ---- */
/* True if p is the base of an object from GC_malloc_uncollectable. */
bool compat_is_uncollectable(const void *p);
/* True if p lies in the heap's reservation (bdwgc's GC_is_heap_ptr: "in
 * the GC heap", an object or not). False before initialization. */
bool compat_in_heap(const void *p);

/* ---- statics.c ---- */
/* The root callback that scans the program's static data (and, unless
 * GC_no_dls is set, every loaded library's) at each collection. */
void compat_static_roots(rudo_tracer *tr, void *data);

/* ---- threads.c ---- */
/* The one place where bdwgc's thread model meets rudo's (see threads.c). */
int compat_thread_attach(void);
void compat_thread_detach(void);
bool compat_in_blocking(void);
void compat_blocking_enter(void);
void compat_blocking_leave(void);
/* rudo_collect under the allocation lock, as bdwgc's explicit collections:
 * it waits for a GC_call_with_alloc_lock running on another thread, which
 * holds collections off (threads.c). Returns false, without collecting,
 * while rudo_disable holds collection off. */
bool compat_collect(void);
/* The allocation lock plus rudo_disable, for a function that must see no
 * collection (GC_call_with_alloc_lock, the disappearing links' changes);
 * an explicit collection on another thread waits for the end. Nest. */
void compat_exclusive_begin(void);
/* bdwgc's allocation lock (gc_mark.h's GC_alloc_lock, declared here for
 * this library's own callers: the fork handlers). */
GC_API void GC_alloc_lock(void);
GC_API void GC_alloc_unlock(void);
void compat_exclusive_end(void);

#endif /* RUDO_COMPAT_H */
