/* init.c — bdwgc's variables, and initialization on first use.
 *
 * bdwgc initializes itself at the first allocation, and chase, mmv and
 * debfoster never call GC_init: every entry point that needs the heap goes
 * through compat_enter() or compat_init(). Initialization creates rudo's
 * heap from bdwgc's settings (the variables below as the program left them
 * before the first call, and bdwgc's environment variables), attaches the
 * calling thread, and installs the root callback that scans static data
 * (statics.c) and the collection callback that keeps GC_gc_no current. */
#include "compat.h"
#include "kinds.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct compat_state compat = {
    .once = PTHREAD_ONCE_INIT,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .sync_lock = PTHREAD_MUTEX_INITIALIZER,
};

/* ---- initialization ---- */

/* A size from one of bdwgc's environment variables (decimal, with an
 * optional k/K, m/M or g/G suffix, as bdwgc's GC_parse_mem_size_arg), or 0
 * if unset or malformed. */
static size_t env_size(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s)
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return 0;
    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: break;
    }
    return *end ? 0 : (size_t)v;
}

/* bdwgc's free-space divisor D collects once about 2 * live / D bytes were
 * allocated (for pointer-bearing data; its min_bytes_allocd): rudo's
 * trigger is the bytes allocated since the last collection exceeding
 * live * growth (rudo.h), so growth = 2 / D (the heap stays near
 * (1 + 2 / D) * live, as bdwgc's), with no absolute bound on the step
 * (bdwgc has none). 1 + 2 / D, used before, let ECL's heap reach 2.6 times
 * its live data (docs/performance.md). */
static double divisor_growth(GC_word d) { return 2.0 / (double)(d ? d : 1); }
static void apply_divisor(rudo_config *cfg, GC_word d) {
    cfg->growth = divisor_growth(d);
    cfg->growth_limit = 0;
}

static void report_at_exit(void) {
    /* Names the file this code was loaded from, so a test can tell rudo's
     * libgc.so.1 from the system's. */
    Dl_info info;
    const char *path = dladdr(&compat, &info) && info.dli_fname
                           ? info.dli_fname : "?";
    fprintf(stderr, "rudo-compat: %s: %lu collections\n", path,
            (unsigned long)__atomic_load_n(&GC_gc_no, __ATOMIC_RELAXED));
}

/* GC_free_space_divisor, which clients may write directly, read again
 * after every collection (and at initialization) and applied as the growth
 * factor. Runs on the collecting thread after the world resumed, where
 * rudo's setters may be called. Two threads may finish collections at the
 * same time: one of them applies it (trylock; the next collection catches
 * up), and neither waits for the other (the one that waits on a lock
 * while another collection starts would hold that collection up). */
static void sync_divisor(void) {
    if (pthread_mutex_trylock(&compat.sync_lock) != 0)
        return;
    /* Relaxed: a plain setting the program writes; no order is implied. */
    GC_word d = __atomic_load_n(&GC_free_space_divisor, __ATOMIC_RELAXED);
    if (d != compat.applied_divisor && d != 0) {
        compat.applied_divisor = d;
        rudo_set_growth(divisor_growth(d), 0);
    }
    pthread_mutex_unlock(&compat.sync_lock);
}

static void after_collection(const rudo_gc_event *ev, void *data) {
    (void)data;
    rudo_stats st;
    rudo_get_stats(&st);
    /* Atomic, relaxed: the callback runs after the world is resumed, so
     * those of two collections in a row may overlap on two threads (and
     * GC_get_bytes_since_gc reads meanwhile); either value is a fair
     * "since the last collection" figure, no order is implied. */
    __atomic_store_n(&compat.allocd_at_gc, st.bytes_allocated, __ATOMIC_RELAXED);
    __atomic_store_n(&compat.freed_explicitly, 0, __ATOMIC_RELAXED);
    /* Relaxed: clients read it as a plain counter, with no order implied
     * (bdwgc updates it under its lock, which readers do not take). */
    __atomic_store_n(&GC_gc_no, (GC_word)ev->number, __ATOMIC_RELAXED);
    sync_divisor();
}

static void init_once(void) {
    rudo_config cfg;
    rudo_config_init(&cfg);
    /* statics.c scans static data itself, so that GC_no_dls can be read at
     * every collection. */
    cfg.scan_static_data = false;
    size_t v;
    if ((v = env_size("GC_FREE_SPACE_DIVISOR")) != 0)
        GC_free_space_divisor = v;
    apply_divisor(&cfg, GC_free_space_divisor);
    /* bdwgc's first heap is MINHINCR (64) blocks of 4 KiB, and it collects
     * before growing it: the first collection comes after about 256 KiB
     * rather than rudo's 4 MiB, which programs that only show an effect
     * once something was collected (disclaim_weakmap_test) rely on. */
    cfg.initial_heap = (size_t)256 << 10;
    if ((v = env_size("GC_INITIAL_HEAP_SIZE")) != 0)
        cfg.initial_heap = v;
    size_t gc_max = env_size("GC_MAXIMUM_HEAP_SIZE");
    /* Else a GC_set_max_heap_size made before GC_init (control.c). */
    if (gc_max == 0)
        gc_max = __atomic_load_n(&compat.max_heap, __ATOMIC_RELAXED);
    if (gc_max != 0)
        cfg.max_heap = gc_max;
    if (getenv("GC_DONT_GC"))
        GC_dont_gc = 1;
    /* GC_all_interior_pointers is read once, as bdwgc does at GC_init:
     * one extra byte per object, so that a pointer just past the end of
     * the requested size still points into the object. */
    compat.extra = GC_all_interior_pointers ? 1 : 0;
    int rc = rudo_heap_create(&cfg); /* the RUDO_* variables win */
    /* GC_expand_hp adds to it (control.c); RUDO_HEAP_INITIAL, read by
     * rudo_heap_create, is not seen here, and an expansion replaces it. */
    compat.requested = cfg.initial_heap;
    if (rc != RUDO_OK) {
        fprintf(stderr, "rudo-compat: GC_init: cannot create the heap: %s\n",
                rudo_strerror(rc));
        abort();
    }
    /* After rudo's own handlers (heap creation registers them): ours then
     * run first in prepare, so the lock order is that of the library's
     * calls (this lock, then rudo's). */
    static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
    pthread_once(&atfork_once, compat_atfork_install);
    /* bdwgc's maximum is a cap, not a budget (GC_set_max_heap_size);
     * RUDO_HEAP_MAX, which won, keeps rudo's meaning. */
    if (gc_max != 0 && !getenv("RUDO_HEAP_MAX")) {
        rudo_set_max_heap_cap(gc_max);
        compat.max_heap = gc_max; /* GC_expand_hp's bound */
    }
    void *lo, *hi;
    rudo_heap_bounds(&lo, &hi);
    compat.heap_below = (char *)lo - 1;
    compat.heap_end = hi;
    /* One byte outside the reservation at each end: the variables lie in
     * scanned static data (ours, and the clients' copies), and the heap's
     * first cell starts at lo, so lo itself would keep that object alive
     * for ever. Clients only compare against them. */
    GC_least_plausible_heap_addr = (char *)lo - 1;
    GC_greatest_plausible_heap_addr = hi;
    void *slo, *shi;
    rudo_stack_get(&slo, &shi);
    if (GC_stackbottom && GC_stackbottom > (char *)slo &&
        GC_stackbottom <= (char *)shi)
        rudo_stack_set(slo, GC_stackbottom); /* the program's choice */
    else
        GC_stackbottom = shi;
    compat.applied_divisor = GC_free_space_divisor; /* applied above */
    rudo_root_callback_add(compat_static_roots, NULL);
    compat_kinds_init();
    rudo_set_gc_callback(after_collection, NULL);
    /* bdwgc collects neither automatically nor on request while
     * GC_dont_gc is nonzero, written directly by the program or counted
     * by GC_disable; rudo reads it each time a collection would start. */
    rudo_hold_collections(&GC_dont_gc);
    const char *rep = getenv("RUDO_COMPAT_REPORT");
    if (rep && *rep && strcmp(rep, "0") != 0)
        atexit(report_at_exit);
    /* Release: a thread that sees ready sees the heap and the variables. */
    atomic_store_explicit(&compat.ready, true, memory_order_release);
}

void compat_init(void) {
    /* Acquire: pairs with the release in init_once. */
    if (RUDO_LIKELY(atomic_load_explicit(&compat.ready, memory_order_acquire)))
        return;
    pthread_once(&compat.once, init_once);
}

void compat_enter_slow(void) {
    compat_init();
    if (!rudo_thread_is_attached())
        compat_thread_attach();
}

void compat_lock(void) {
    bool block = rudo_heap_exists() && rudo_thread_is_attached() &&
                 !compat_in_blocking();
    if (block)
        compat_blocking_enter();
    pthread_mutex_lock(&compat.lock);
    if (block)
        compat_blocking_leave();
}

void compat_unlock(void) { pthread_mutex_unlock(&compat.lock); }

/* fork: a child must not inherit this lock, or the allocation lock, held
 * by a thread that does not exist there (bdwgc's test forks while other
 * threads allocate and collect; its own handlers take its allocation lock
 * the same way). The allocation lock comes first: a section under it may
 * take compat.lock (a finalizer's registration), and a collection under
 * it (compat_collect) needs rudo's locks, which rudo's own handlers,
 * installed before these and so run after them, take last. */
static void atfork_prepare(void) {
    GC_alloc_lock();
    compat_lock();
    compat_threads_fork_prepare();
}
static void atfork_release(void) {
    compat_threads_fork_release();
    compat_unlock();
    GC_alloc_unlock();
}
void compat_atfork_install(void) {
    pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

GC_API void GC_init(void) { compat_enter(); }

GC_API int GC_is_init_called(void) {
    return atomic_load_explicit(&compat.ready, memory_order_acquire);
}

GC_API void GC_deinit(void) {
    /* bdwgc frees its locks here; rudo's heap lives until exit (objects
     * may still be in use by atexit handlers). */
}
