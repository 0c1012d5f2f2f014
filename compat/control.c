/* control.c — collection, enabling, heap limits, statistics, and bdwgc's
 * settings (get/set pairs). A setting rudo does not act on is stored and
 * read back; setting it away from bdwgc's default warns once (see
 * docs/compat.md for which ones). */
#include "compat.h"

#include <stdio.h>
#include <string.h>

/* ---- collection ---- */

/* The default stop function: GC_set_stop_func's, read by GC_gcollect
 * (bdwgc: by implicit collections too, which rudo starts itself). */
typedef int (*GC_stop_func)(void);
static GC_stop_func stop_func;
static int never_stop(void) { return 0; } /* bdwgc's default */

GC_API void GC_set_stop_func(GC_stop_func fn) {
    /* Release/acquire: a getter on another thread sees the function. */
    __atomic_store_n(&stop_func, fn, __ATOMIC_RELEASE);
}

GC_API GC_stop_func GC_get_stop_func(void) {
    GC_stop_func fn = __atomic_load_n(&stop_func, __ATOMIC_ACQUIRE);
    return fn ? fn : never_stop;
}

/* bdwgc calls the stop function first, before anything of the collection
 * is done, and gives up if it answers nonzero; later calls, during
 * marking, have no counterpart: a rudo collection once started is not
 * abandoned. GC_dont_gc, which GC_disable counts up, is read before it.
 * compat_collect (rudo_collect under the allocation lock, as bdwgc) is a
 * tail call: no frame of this function lies between the client's and the
 * collector's (a saved register of the client's, stale, would sit in it
 * and be scanned: the compat tests count deaths). */
GC_API void GC_gcollect(void) {
    compat_enter();
    /* Relaxed: a flag the program sets; bdwgc reads it the same way. */
    if (__atomic_load_n(&GC_dont_gc, __ATOMIC_RELAXED))
        return;
    /* Acquire: pairs with the release in GC_set_stop_func. */
    GC_stop_func stop = __atomic_load_n(&stop_func, __ATOMIC_ACQUIRE);
    if (stop && stop())
        return;
    compat_collect();
}

/* bdwgc: "ignores the default stop_func setting". */
GC_API void GC_gcollect_and_unmap(void) {
    compat_enter();
    if (__atomic_load_n(&GC_dont_gc, __ATOMIC_RELAXED))
        return;
    compat_collect();
}

GC_API int GC_try_to_collect(int (*stop)(void)) {
    compat_enter();
    if (__atomic_load_n(&GC_dont_gc, __ATOMIC_RELAXED))
        return 0;
    if ((stop ? stop : GC_get_stop_func())()) /* NULL: the default, as bdwgc */
        return 0;
    return compat_collect();
}

GC_API int GC_collect_a_little(void) {
    /* No incremental mode: there is never a collection in progress. */
    compat_enter();
    return 0;
}

/* bdwgc's GC_disable counts GC_dont_gc up and GC_enable counts it down:
 * the variable is the depth, so a client that reads it, or sets it and
 * asks GC_is_disabled, sees bdwgc's answer. compat.disabled counts the
 * rudo_disable calls made here, which GC_enable undoes. */
GC_API void GC_disable(void) {
    compat_enter();
    /* Relaxed: the counts only pair calls; rudo orders the effect. */
    __atomic_fetch_add(&GC_dont_gc, 1, __ATOMIC_RELAXED);
    atomic_fetch_add_explicit(&compat.disabled, 1, memory_order_relaxed);
    rudo_disable();
}

/* Decrements *v if it is positive; returns whether it did. */
static bool count_down(int *v) {
    int d = __atomic_load_n(v, __ATOMIC_RELAXED);
    while (d > 0 && !__atomic_compare_exchange_n(v, &d, d - 1, true, __ATOMIC_RELAXED,
                                                 __ATOMIC_RELAXED)) {
    }
    return d > 0;
}

GC_API void GC_enable(void) {
    compat_enter();
    if (!count_down(&GC_dont_gc)) { /* bdwgc asserts; rudo would abort */
        static atomic_int once;
        compat_warn_once(&once, "GC Warning: GC_enable without GC_disable (ignored)\n");
        return;
    }
    /* GC_dont_gc set by the program (or GC_DONT_GC) and counted down here
     * has no rudo_disable to undo. */
    int d = atomic_load_explicit(&compat.disabled, memory_order_relaxed);
    while (d > 0 && !atomic_compare_exchange_weak_explicit(
                        &compat.disabled, &d, d - 1, memory_order_relaxed,
                        memory_order_relaxed)) {
    }
    if (d > 0)
        rudo_enable();
}

GC_API int GC_is_disabled(void) {
    return __atomic_load_n(&GC_dont_gc, __ATOMIC_RELAXED) != 0;
}

/* bdwgc grows the heap by at least MINHINCR blocks (256 KiB), and fails
 * past GC_set_max_heap_size's cap; then it uses the heap it was asked
 * for before it collects (GC_requested_heapsize). rudo maps pages on
 * demand inside its reservation, so the heap does not grow now
 * (GC_get_heap_size stays), but the expansion is added to initial_heap,
 * the least allocation between two collections (rudo_set_initial_heap). */
GC_API int GC_expand_hp(size_t bytes) {
    compat_init();
    size_t b = bytes < ((size_t)256 << 10) ? (size_t)256 << 10 : bytes;
    if (b > SIZE_MAX - 4095)
        return 0;
    b = (b + 4095) & ~(size_t)4095;
    rudo_stats st;
    rudo_get_stats(&st);
    size_t heap = st.heap_bytes;
    size_t cap = __atomic_load_n(&compat.max_heap, __ATOMIC_RELAXED);
    size_t room = (size_t)(compat.heap_end - compat.heap_below - 1);
    if (cap && cap < room)
        room = cap;
    if (b > room || heap > room - b)
        return 0;
    compat_lock();
    compat.requested = compat.requested > SIZE_MAX - b ? SIZE_MAX : compat.requested + b;
    size_t req = compat.requested;
    compat_unlock();
    rudo_set_initial_heap(req);
    return 1;
}

GC_API void GC_set_max_heap_size(GC_word n) {
    /* A cap, as bdwgc's: never the collection target (ECL sets 1 GiB). */
    __atomic_store_n(&compat.max_heap, (size_t)n, __ATOMIC_RELAXED);
    /* Before GC_init: kept for it (init.c), as bdwgc keeps it, so that the
     * settings made after this call and before GC_INIT still count
     * (GC_all_interior_pointers is read at init). Acquire: see init.c. */
    if (!atomic_load_explicit(&compat.ready, memory_order_acquire))
        return;
    rudo_set_max_heap_cap(n);
}

GC_API void GC_set_free_space_divisor(GC_word d) {
    if (d == 0)
        d = 1;
    __atomic_store_n(&GC_free_space_divisor, d, __ATOMIC_RELAXED);
    if (GC_is_init_called())
        rudo_set_growth(2.0 / (double)d, 0); /* as init.c's divisor_growth */
}

GC_API GC_word GC_get_free_space_divisor(void) {
    return __atomic_load_n(&GC_free_space_divisor, __ATOMIC_RELAXED);
}

GC_API unsigned GC_get_version(void) { return GC_VERSION_WORD; }

/* ---- statistics ---- */

static void stats(rudo_stats *st) {
    if (GC_is_init_called())
        rudo_get_stats(st);
    else
        memset(st, 0, sizeof *st);
}

static size_t since_gc(const rudo_stats *st) {
    /* Relaxed: see after_collection (init.c). */
    uint64_t at = __atomic_load_n(&compat.allocd_at_gc, __ATOMIC_RELAXED);
    return st->bytes_allocated > at ? (size_t)(st->bytes_allocated - at) : 0;
}

static size_t free_bytes(const rudo_stats *st) {
    size_t used = st->live_bytes + since_gc(st);
    return st->heap_bytes > used ? st->heap_bytes - used : 0;
}

GC_API size_t GC_get_heap_size(void) { rudo_stats st; stats(&st); return st.heap_bytes; }
GC_API size_t GC_get_free_bytes(void) { rudo_stats st; stats(&st); return free_bytes(&st); }
/* Returned to the OS: bdwgc counts its unmapped blocks, which its heap
 * size leaves out; here, pages committed once (the peak) and not now. */
static size_t unmapped(const rudo_stats *st) {
    return st->heap_peak_bytes > st->heap_bytes ? st->heap_peak_bytes - st->heap_bytes : 0;
}
GC_API size_t GC_get_unmapped_bytes(void) { rudo_stats st; stats(&st); return unmapped(&st); }
GC_API size_t GC_get_bytes_since_gc(void) { rudo_stats st; stats(&st); return since_gc(&st); }
GC_API size_t GC_get_total_bytes(void) { rudo_stats st; stats(&st); return st.bytes_allocated; }
GC_API size_t GC_get_obtained_from_os_bytes(void) { rudo_stats st; stats(&st); return st.heap_peak_bytes; }
GC_API size_t GC_get_memory_use(void) {
    rudo_stats st;
    stats(&st);
    return st.heap_bytes - free_bytes(&st);
}
GC_API size_t GC_get_expl_freed_bytes_since_gc(void) {
    return __atomic_load_n(&compat.freed_explicitly, __ATOMIC_RELAXED);
}
GC_API GC_word GC_get_gc_no(void) { return __atomic_load_n(&GC_gc_no, __ATOMIC_RELAXED); }
GC_API int GC_get_parallel(void) {
    rudo_stats st;
    stats(&st);
    return st.markers > 1 ? (int)st.markers - 1 : 0;
}
GC_API unsigned long GC_get_full_gc_total_time(void) {
    rudo_stats st;
    stats(&st);
    return (unsigned long)(st.pause_ns_total / 1000000u);
}

static size_t unmapped_bytes_of(const rudo_stats *st) { return unmapped(st); }

GC_API void GC_get_heap_usage_safe(GC_word *heap, GC_word *freeb, GC_word *unmapped,
                                   GC_word *since, GC_word *total) {
    rudo_stats st;
    stats(&st);
    if (heap) *heap = st.heap_bytes;
    if (freeb) *freeb = free_bytes(&st);
    if (unmapped) *unmapped = unmapped_bytes_of(&st);
    if (since) *since = since_gc(&st);
    if (total) *total = st.bytes_allocated;
}

GC_API size_t GC_get_prof_stats(struct GC_prof_stats_s *out, size_t sz) {
    rudo_stats st;
    stats(&st);
    struct GC_prof_stats_s s;
    memset(&s, 0xff, sizeof s); /* bdwgc: unknown fields are all ones */
    /* bdwgc: heapsize_full = GC_get_heap_size() + GC_get_unmapped_bytes(),
     * free_bytes_full = GC_get_free_bytes() + GC_get_unmapped_bytes(). */
    s.heapsize_full = st.heap_bytes + unmapped(&st);
    s.free_bytes_full = free_bytes(&st) + unmapped(&st);
    s.unmapped_bytes = unmapped(&st);
    s.bytes_allocd_since_gc = since_gc(&st);
    s.allocd_bytes_before_gc = __atomic_load_n(&compat.allocd_at_gc, __ATOMIC_RELAXED);
    s.non_gc_bytes = GC_non_gc_bytes;
    s.gc_no = GC_get_gc_no();
    s.markers_m1 = (GC_word)GC_get_parallel();
    s.expl_freed_bytes_since_gc = GC_get_expl_freed_bytes_since_gc();
    s.obtained_from_os_bytes = st.heap_peak_bytes;
    size_t n = sz < sizeof s ? sz : sizeof s;
    memcpy(out, &s, n);
    if (sz > sizeof s)
        memset((char *)out + sizeof s, 0xff, sz - sizeof s);
    return n;
}

GC_API size_t GC_get_prof_stats_unsafe(struct GC_prof_stats_s *out, size_t sz) {
    return GC_get_prof_stats(out, sz);
}

GC_API size_t GC_get_size_map_at(int i) {
    /* The request rounded to granules, extra byte included (rudo's size
     * class may be larger; GC_size tells); -1 beyond small objects. */
    if (i < 0 || (size_t)i + compat.extra > RUDO_SMALL_MAX)
        return (size_t)-1;
    return ((size_t)i + compat.extra + RUDO_GRANULE - 1) & ~(size_t)(RUDO_GRANULE - 1);
}

/* Keeps a value alive to the compiler, as bdwgc's. */
static volatile GC_word noop_sink;
GC_API void GC_noop1(GC_word x) { noop_sink = x; }

GC_API void GC_incr_bytes_allocd(size_t n) { (void)n; }
GC_API void GC_incr_bytes_freed(size_t n) { (void)n; }

/* ---- settings ----
 * HONOURED: acted on. STORED: read back, not acted on; a value other than
 * bdwgc's default warns once. */
#define STORED_INT(name, var, dflt)                                             \
    GC_API void GC_set_##name(int v) {                                          \
        static atomic_int once;                                                 \
        if (v != (dflt))                                                        \
            compat_warn_once(&once, "GC Warning: rudo's libgc.so.1: GC_set_"    \
                                    #name " is stored but not acted on\n");     \
        __atomic_store_n(&(var), v, __ATOMIC_RELAXED);                          \
    }                                                                           \
    GC_API int GC_get_##name(void) { return __atomic_load_n(&(var), __ATOMIC_RELAXED); }

static int s_rate = 10, s_max_prior = 1, s_force_unmap, s_pages_exec,
           s_manual_vdb, s_disable_auto, s_markers_count, s_suspend_sig = 30,
           s_restart_sig = 24; /* SIGPWR, SIGXCPU: bdwgc's pair */

STORED_INT(dont_expand, GC_dont_expand, 0)
STORED_INT(dont_precollect, GC_dont_precollect, 0)
STORED_INT(full_freq, GC_full_freq, 19)
STORED_INT(find_leak, GC_find_leak, 0)
STORED_INT(java_finalization, GC_java_finalization, 1)
/* GC_set_finalize_on_demand is honoured: final.c. */
STORED_INT(rate, s_rate, 10)
STORED_INT(max_prior_attempts, s_max_prior, 1)
STORED_INT(force_unmap_on_gcollect, s_force_unmap, 0)
/* 0: Debian's build maps no executable heap pages (nor does rudo). */
STORED_INT(pages_executable, s_pages_exec, 0)
STORED_INT(manual_vdb_allowed, s_manual_vdb, 0)
STORED_INT(disable_automatic_collection, s_disable_auto, 0)
STORED_INT(suspend_signal, s_suspend_sig, 30)
STORED_INT(thr_restart_signal, s_restart_sig, 24)

GC_API void GC_set_markers_count(unsigned n) { (void)n; s_markers_count = (int)n; }

/* GC_no_dls is honoured: statics.c reads it at every collection. */
GC_API void GC_set_no_dls(int v) { __atomic_store_n(&GC_no_dls, v, __ATOMIC_RELAXED); }
GC_API int GC_get_no_dls(void) { return __atomic_load_n(&GC_no_dls, __ATOMIC_RELAXED); }

/* Honoured when set before initialization, as bdwgc (which ignores a later
 * change too). */
GC_API void GC_set_all_interior_pointers(int v) {
    __atomic_store_n(&GC_all_interior_pointers, v ? 1 : 0, __ATOMIC_RELAXED);
}
GC_API int GC_get_all_interior_pointers(void) {
    return __atomic_load_n(&GC_all_interior_pointers, __ATOMIC_RELAXED);
}

GC_API void GC_set_max_retries(GC_word v) { __atomic_store_n(&GC_max_retries, v, __ATOMIC_RELAXED); }
GC_API GC_word GC_get_max_retries(void) { return __atomic_load_n(&GC_max_retries, __ATOMIC_RELAXED); }
GC_API void GC_set_non_gc_bytes(GC_word v) { __atomic_store_n(&GC_non_gc_bytes, v, __ATOMIC_RELAXED); }
GC_API GC_word GC_get_non_gc_bytes(void) { return __atomic_load_n(&GC_non_gc_bytes, __ATOMIC_RELAXED); }
GC_API void GC_set_time_limit(unsigned long v) { __atomic_store_n(&GC_time_limit, v, __ATOMIC_RELAXED); }
GC_API unsigned long GC_get_time_limit(void) { return __atomic_load_n(&GC_time_limit, __ATOMIC_RELAXED); }

static size_t s_min_bytes_allocd = 1, s_allocd_per_finalizer = 10000;
GC_API void GC_set_min_bytes_allocd(size_t v) { s_min_bytes_allocd = v ? v : 1; }
GC_API size_t GC_get_min_bytes_allocd(void) { return s_min_bytes_allocd; }
GC_API void GC_set_allocd_bytes_per_finalizer(GC_word v) { s_allocd_per_finalizer = v; }
GC_API GC_word GC_get_allocd_bytes_per_finalizer(void) { return s_allocd_per_finalizer; }

GC_API void GC_set_on_heap_resize(void (*fn)(GC_word)) { __atomic_store_n(&GC_on_heap_resize, fn, __ATOMIC_RELEASE); }
GC_API void (*GC_get_on_heap_resize(void))(GC_word) { return __atomic_load_n(&GC_on_heap_resize, __ATOMIC_ACQUIRE); }

GC_API int GC_is_incremental_mode(void) { return 0; }
GC_API int GC_incremental_protection_needs(void) { return 0; /* GC_PROTECTS_NONE */ }

GC_API struct GC_timeval_s GC_get_time_limit_tv(void) {
    struct GC_timeval_s tv = {GC_get_time_limit(), 0};
    return tv;
}
GC_API void GC_set_time_limit_tv(struct GC_timeval_s tv) { GC_set_time_limit(tv.tv_ms); }

GC_API void *GC_clear_stack(void *arg) { return arg; }

/* ---- pointer checks (bdwgc's ptr_chck.c, compiled into every build) ----
 * A failed check calls the program's print procedure (a variable, vars.c)
 * and returns the argument; the defaults abort, as bdwgc's. "In the heap"
 * is the reservation (bdwgc: a block of its heap). */

void compat_default_same_obj_print_proc(void *p, void *q) {
    char msg[128];
    snprintf(msg, sizeof msg, "GC_same_obj test failed: %p and %p are not in the same object",
             p, q);
    compat_abort(msg);
}

void compat_default_is_visible_print_proc(void *p) {
    char msg[96];
    snprintf(msg, sizeof msg, "GC_is_visible test failed: %p not GC-visible", p);
    compat_abort(msg);
}

void compat_default_is_valid_displacement_print_proc(void *p) {
    char msg[96];
    snprintf(msg, sizeof msg, "GC_is_valid_displacement test failed: %p not valid", p);
    compat_abort(msg);
}

/* bdwgc: fails if p and q are not in one object; succeeds if neither is
 * in the heap. Where p is in the heap but in no allocated object (a free
 * cell), rudo knows no cell bounds: q passes unless it is in an object
 * or outside the heap (bdwgc would also fail a q in another free cell). */
GC_API void *GC_same_obj(void *p, void *q) {
    compat_enter();
    bool fail;
    if (!compat_in_heap(p)) {
        fail = compat_in_heap(q);
    } else {
        char *base = rudo_base(p);
        if (base)
            fail = (char *)q < base || (char *)q >= base + rudo_size(base);
        else
            fail = !compat_in_heap(q) || rudo_base(q) != NULL;
    }
    if (fail) {
        /* Acquire: the program may set the procedure on another thread. */
        void (*fn)(void *, void *) = __atomic_load_n(&GC_same_obj_print_proc, __ATOMIC_ACQUIRE);
        if (fn)
            fn(p, q);
    }
    return p;
}

/* bdwgc's threaded build checks only that p is word-aligned and, in the
 * heap, that GC_base finds an object (its free cells pass there, and rudo
 * cannot tell a free cell from the slack it would fail, so heap addresses
 * are not checked here: a check can only fail where bdwgc's would). */
GC_API void *GC_is_visible(void *p) {
    compat_enter();
    if ((uintptr_t)p & (sizeof(void *) - 1)) {
        void (*fn)(void *) = __atomic_load_n(&GC_is_visible_print_proc, __ATOMIC_ACQUIRE);
        if (fn)
            fn(p);
    }
    return p;
}

/* With all interior pointers recognized (rudo's only mode) bdwgc fails
 * only an address in a heap block outside every cell, which rudo cannot
 * tell from a free cell: it never fails here. */
GC_API void *GC_is_valid_displacement(void *p) {
    compat_enter();
    return p;
}

GC_API void *GC_pre_incr(void **p, ptrdiff_t how_much) {
    void *initial = *p;
    *p = GC_same_obj((char *)initial + how_much, initial);
    return *p;
}

GC_API void *GC_post_incr(void **p, ptrdiff_t how_much) {
    void *initial = *p;
    *p = GC_same_obj((char *)initial + how_much, initial);
    return initial;
}

/* Every displacement is valid already: rudo recognizes all interior
 * pointers. */
GC_API void GC_register_displacement(size_t off) { (void)off; }
GC_API void GC_debug_register_displacement(size_t off) { (void)off; }

/* No incremental mode: bdwgc ignores the request where it has none too;
 * it does initialize (gc.h: "Includes a GC_init() call"). */
GC_API void GC_enable_incremental(void) { compat_init(); }
GC_API void GC_start_performance_measurement(void) {}

/* Stores with a write barrier in bdwgc's incremental mode; there is none
 * here, so they are plain stores. */
GC_API void GC_ptr_store_and_dirty(void *p, const void *q) { *(const void **)p = q; }
GC_API void GC_debug_ptr_store_and_dirty(void *p, const void *q) { *(const void **)p = q; }

/* ---- collection events ----
 * bdwgc's event callback, fed from a rudo collection listener:
 * GC_EVENT_START when the world is stopped (bdwgc's START comes before
 * the stop, so the time to stop is not inside START..END here),
 * GC_EVENT_MARK_START after the roots phase, GC_EVENT_MARK_END after
 * marking, GC_EVENT_RECLAIM_START / _END around the weak/finalization and
 * sweep phases, and GC_EVENT_END after the world resumed. The callback
 * runs with the world stopped for all but END, as bdwgc's may; it must not
 * allocate. */
enum {
    GC_EVENT_START, GC_EVENT_MARK_START, GC_EVENT_MARK_END,
    GC_EVENT_RECLAIM_START, GC_EVENT_RECLAIM_END, GC_EVENT_END
};
typedef void (*GC_on_collection_event_proc)(int event);
static GC_on_collection_event_proc on_event;

/* GC_set_start_callback's function: called at the start of each
 * collection, with the world stopped (bdwgc: with its lock held); it must
 * not allocate. */
typedef void (*GC_start_callback_proc)(void);
static GC_start_callback_proc start_cb;

static GC_on_collection_event_proc event_fn(void) {
    /* Acquire: pairs with the release in GC_set_on_collection_event. */
    return __atomic_load_n(&on_event, __ATOMIC_ACQUIRE);
}

static void ev_begin(const rudo_gc_event *ev, void *data) {
    (void)ev;
    (void)data;
    /* Acquire: pairs with the release in GC_set_start_callback. */
    GC_start_callback_proc start = __atomic_load_n(&start_cb, __ATOMIC_ACQUIRE);
    if (start)
        start();
    GC_on_collection_event_proc fn = event_fn();
    if (fn)
        fn(GC_EVENT_START);
}

static void ev_phase(rudo_gc_phase phase, uint64_t ns, void *data) {
    (void)ns;
    (void)data;
    GC_on_collection_event_proc fn = event_fn();
    if (!fn)
        return;
    if (phase == RUDO_PHASE_ROOTS) {
        fn(GC_EVENT_MARK_START);
    } else if (phase == RUDO_PHASE_MARK) {
        fn(GC_EVENT_MARK_END);
        fn(GC_EVENT_RECLAIM_START);
    } else if (phase == RUDO_PHASE_SWEEP) {
        fn(GC_EVENT_RECLAIM_END);
    }
}

static void ev_end(const rudo_gc_event *ev, void *data) {
    (void)ev;
    (void)data;
    GC_on_collection_event_proc fn = event_fn();
    if (fn)
        fn(GC_EVENT_END);
}

/* The listener serves both callbacks: installed once, when the first is
 * set; it tests the pointers at each event. */
static void install_listener(void) {
    static atomic_int installed;
    /* Relaxed: only one caller may install; the listener call orders the rest. */
    if (!atomic_exchange_explicit(&installed, 1, memory_order_relaxed)) {
        rudo_gc_listener l = {ev_begin, ev_phase, ev_end, NULL};
        rudo_set_gc_listener(&l);
    }
}

GC_API void GC_set_on_collection_event(GC_on_collection_event_proc fn) {
    compat_init();
    __atomic_store_n(&on_event, fn, __ATOMIC_RELEASE);
    if (fn)
        install_listener();
}

GC_API void GC_set_start_callback(GC_start_callback_proc fn) {
    compat_init();
    __atomic_store_n(&start_cb, fn, __ATOMIC_RELEASE);
    if (fn)
        install_listener();
}

GC_API GC_start_callback_proc GC_get_start_callback(void) {
    return __atomic_load_n(&start_cb, __ATOMIC_ACQUIRE);
}

GC_API GC_on_collection_event_proc GC_get_on_collection_event(void) { return event_fn(); }
