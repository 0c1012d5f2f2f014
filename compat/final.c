/* final.c — bdwgc's finalization on rudo's per-object finalizers
 * (docs/compat.md, "Finalization").
 *
 * bdwgc's three orders map onto rudo's registrations: GC_register_finalizer
 * and _unreachable onto rudo_finalizer_register_ordered, _ignore_self onto
 * rudo_finalizer_register_ignore_self, _no_order onto
 * rudo_finalizer_register. rudo's finalizer gets a record of this file as
 * its data, and calls bdwgc's fn(obj, cd) from it (trampoline).
 *
 * bdwgc returns the previous finalizer (ofn, ocd), which rudo does not keep:
 * a table maps each registered object to its record. The table is the
 * finalizer side's own; rudo is authoritative for whether a registration is
 * still pending (a record whose object rudo has already queued is left to
 * its trampoline, which frees it).
 *
 * cd must keep what it points to alive until fn runs (bdwgc traces it): a
 * record whose cd is a heap pointer holds it in a precise root slot.
 *
 * Locking: fin_lock guards the table; taken inside a rudo blocking region
 * (as compat_lock), never while allocating, so a collection (and the
 * finalizers run after it) never waits for a thread that waits for it. */
#include "compat.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

/* gc.h's types of this part. */
typedef void (*GC_finalization_proc)(void *obj, void *client_data);
typedef void (*GC_finalizer_notifier_proc)(void);
typedef void (*GC_await_finalize_proc)(void *obj);

/* A registration: what rudo calls back with. */
struct fin_rec {
    GC_finalization_proc fn;
    void *cd;      /* a precise root while rooted (see above) */
    size_t disp;   /* the address registered, less the object's base */
    bool rooted;
};

/* obj -> record, open addressing with linear probing; NULL key = empty,
 * TOMB = deleted. Keys are not roots: a registration keeps nothing alive. */
#define TOMB ((void *)1)
static struct fin_entry { void *obj; struct fin_rec *rec; } *table;
static size_t cap, used, live;
static pthread_mutex_t fin_mutex = PTHREAD_MUTEX_INITIALIZER;

/* GC_set_await_finalize_proc's function. */
static GC_await_finalize_proc await_proc;
/* Set by the notifier when a collection queued finalizers in on-demand
 * mode; cleared by GC_invoke_finalizers (GC_should_invoke_finalizers). */
static atomic_int pending;
/* The on-demand mode last given to rudo (GC_finalize_on_demand's copy). */
static int applied_on_demand;
static pthread_mutex_t sync_mutex = PTHREAD_MUTEX_INITIALIZER;

static void fin_lock(void) {
    bool block = rudo_thread_is_attached() && !compat_in_blocking();
    if (block)
        compat_blocking_enter();
    pthread_mutex_lock(&fin_mutex);
    if (block)
        compat_blocking_leave();
}

static void fin_unlock(void) { pthread_mutex_unlock(&fin_mutex); }

static size_t slot_of(const void *obj, bool for_insert) {
    size_t mask = cap - 1, i = (size_t)(((uintptr_t)obj >> 4) * 0x9e3779b97f4a7c15u) & mask;
    size_t tomb = SIZE_MAX;
    for (;;) {
        void *o = table[i].obj;
        if (o == NULL)
            return for_insert && tomb != SIZE_MAX ? tomb : i;
        if (o == TOMB) {
            if (tomb == SIZE_MAX)
                tomb = i;
        } else if (o == obj) {
            return i;
        }
        i = (i + 1) & mask;
    }
}

/* With fin_lock held. */
static struct fin_rec *table_get(const void *obj) {
    if (!cap)
        return NULL;
    size_t i = slot_of(obj, false);
    return table[i].obj == obj ? table[i].rec : NULL;
}

static void table_del(const void *obj) {
    if (!cap)
        return;
    size_t i = slot_of(obj, false);
    if (table[i].obj == obj) {
        table[i].obj = TOMB;
        table[i].rec = NULL;
        live--;
    }
}

/* False if memory is short (nothing changes). */
static bool table_put(void *obj, struct fin_rec *rec) {
    if ((used + 1) * 2 > cap) {
        size_t ncap = cap && live * 4 > cap ? cap * 2 : cap ? cap : 64;
        struct fin_entry *n = calloc(ncap, sizeof *n), *old = table;
        if (!n)
            return false;
        size_t old_cap = cap;
        table = n;
        cap = ncap;
        used = live = 0;
        for (size_t i = 0; i < old_cap; i++) {
            if (old[i].obj && old[i].obj != TOMB) {
                table[slot_of(old[i].obj, true)] = old[i];
                used++;
                live++;
            }
        }
        free(old);
    }
    size_t i = slot_of(obj, false);
    if (table[i].obj != obj) {
        i = slot_of(obj, true);
        if (table[i].obj == NULL)
            used++;
        live++;
    }
    table[i].obj = obj;
    table[i].rec = rec;
    return true;
}

static void rec_free(struct fin_rec *r) {
    if (r->rooted)
        rudo_root_remove(&r->cd);
    free(r);
}

/* GC_finalize_on_demand is a variable programs assign: it is read again by
 * every finalization call, and rudo's mode follows it. */
static void notify(void *data);
static void sync_mode(void) {
    int want = __atomic_load_n(&GC_finalize_on_demand, __ATOMIC_RELAXED) != 0;
    /* Relaxed: a hint; the mutex orders the change itself. */
    if (want == __atomic_load_n(&applied_on_demand, __ATOMIC_RELAXED))
        return;
    pthread_mutex_lock(&sync_mutex);
    if (want != applied_on_demand) {
        rudo_set_finalization(want, notify, NULL);
        __atomic_store_n(&applied_on_demand, want, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&sync_mutex);
}

/* rudo's notifier (on-demand mode, after a collection that queued
 * finalizers; it must not allocate, as bdwgc's). */
static void notify(void *data) {
    (void)data;
    /* Release: pairs with the acquire in GC_should_invoke_finalizers, so
     * a thread that sees the flag and invokes finds the queue filled. */
    atomic_store_explicit(&pending, 1, memory_order_release);
    GC_finalizer_notifier_proc fn = __atomic_load_n(&GC_finalizer_notifier, __ATOMIC_RELAXED);
    if (fn)
        fn();
}

/* What rudo calls: bdwgc's fn(obj, cd), once, with obj the address that
 * was registered (rudo hands over the base). */
static void trampoline(void *obj, void *data) {
    struct fin_rec *r = data;
    void *given = (char *)obj + r->disp;
    fin_lock();
    /* The table may name a newer registration (the object came back to
     * life through another finalizer and was registered again). */
    if (table_get(obj) == r)
        table_del(obj);
    fin_unlock();
    /* Acquire: pairs with the release in GC_set_await_finalize_proc. */
    GC_await_finalize_proc aw = __atomic_load_n(&await_proc, __ATOMIC_ACQUIRE);
    if (aw)
        aw(given);
    r->fn(given, r->cd);
    rec_free(r);
}

enum order { ORDERED, IGNORE_SELF, NO_ORDER };

static void register_finalizer(void *obj, GC_finalization_proc fn, void *cd,
                               GC_finalization_proc *ofn, void **ocd,
                               enum order order) {
    compat_enter();
    sync_mode();
    /* bdwgc ignores NULL and non-heap addresses. It keys a registration by
     * the address given, which may be inside the object: ECL registers
     * its conses by their tagged pointer, base + 1 (CMP.0009). The
     * object's base is the key here (rudo keeps one registration per
     * object; two addresses in one object share it), and fn gets the
     * address given. */
    void *base = obj ? rudo_base(obj) : NULL;
    if (!base) {
        if (ofn)
            *ofn = 0;
        if (ocd)
            *ocd = 0;
        return;
    }
    size_t disp = (size_t)((char *)obj - (char *)base);
    obj = base;
    struct fin_rec *nr = NULL;
    if (fn) {
        nr = malloc(sizeof *nr);
        if (!nr) {
            compat_warn("GC Warning: rudo's libgc.so.1: out of memory registering "
                        "a finalizer for %p\n", (GC_word)obj);
            return; /* as bdwgc: *ofn, *ocd unchanged */
        }
        nr->fn = fn;
        nr->cd = cd;
        nr->disp = disp;
        nr->rooted = rudo_is_heap_ptr(cd);
        if (nr->rooted)
            rudo_root_add(&nr->cd);
    }
    fin_lock();
    struct fin_rec *old = table_get(obj);
    if (old) {
        table_del(obj);
        /* ENOENT: rudo queued it already (its trampoline frees it), or
         * GC_free ended it (the record leaks; it is small). Either way the
         * object has no registration now, as in bdwgc. */
        if (rudo_finalizer_unregister(obj) != RUDO_OK)
            old = NULL;
    }
    if (ofn)
        *ofn = old ? old->fn : 0;
    if (ocd)
        *ocd = old ? old->cd : 0;
    bool failed = false;
    if (nr) {
        int rc = order == ORDERED       ? rudo_finalizer_register_ordered(obj, trampoline, nr)
                 : order == IGNORE_SELF ? rudo_finalizer_register_ignore_self(obj, trampoline, nr)
                                        : rudo_finalizer_register(obj, trampoline, nr);
        /* rc is RUDO_OK: the object has no registration now (above), and
         * only this file registers per-object finalizers for clients. */
        failed = rc != RUDO_OK || !table_put(obj, nr);
        if (failed && rc == RUDO_OK)
            rudo_finalizer_unregister(obj);
    }
    fin_unlock();
    if (failed) {
        compat_warn("GC Warning: rudo's libgc.so.1: cannot register a finalizer "
                    "for %p\n", (GC_word)obj);
        rec_free(nr);
    }
    if (old)
        rec_free(old);
}

GC_API void GC_register_finalizer(void *obj, GC_finalization_proc fn, void *cd,
                                  GC_finalization_proc *ofn, void **ocd) {
    register_finalizer(obj, fn, cd, ofn, ocd, ORDERED);
}

GC_API void GC_register_finalizer_ignore_self(void *obj, GC_finalization_proc fn,
                                              void *cd, GC_finalization_proc *ofn,
                                              void **ocd) {
    register_finalizer(obj, fn, cd, ofn, ocd, IGNORE_SELF);
}

GC_API void GC_register_finalizer_no_order(void *obj, GC_finalization_proc fn,
                                           void *cd, GC_finalization_proc *ofn,
                                           void **ocd) {
    register_finalizer(obj, fn, cd, ofn, ocd, NO_ORDER);
}

/* bdwgc's "unreachable" order (not run while any dying finalizable object,
 * ordered or not, refers to it; cycles kept) is rudo's ordered mode. */
GC_API void GC_register_finalizer_unreachable(void *obj, GC_finalization_proc fn,
                                              void *cd, GC_finalization_proc *ofn,
                                              void **ocd) {
    register_finalizer(obj, fn, cd, ofn, ocd, ORDERED);
}

/* The debugging variants: GC_debug_malloc adds no header here
 * (GC_debug_header_size is 0), so obj is the object itself. */
GC_API void GC_debug_register_finalizer(void *obj, GC_finalization_proc fn, void *cd,
                                        GC_finalization_proc *ofn, void **ocd) {
    GC_register_finalizer(obj, fn, cd, ofn, ocd);
}
GC_API void GC_debug_register_finalizer_ignore_self(void *obj, GC_finalization_proc fn,
                                                    void *cd, GC_finalization_proc *ofn,
                                                    void **ocd) {
    GC_register_finalizer_ignore_self(obj, fn, cd, ofn, ocd);
}
GC_API void GC_debug_register_finalizer_no_order(void *obj, GC_finalization_proc fn,
                                                 void *cd, GC_finalization_proc *ofn,
                                                 void **ocd) {
    GC_register_finalizer_no_order(obj, fn, cd, ofn, ocd);
}
GC_API void GC_debug_register_finalizer_unreachable(void *obj, GC_finalization_proc fn,
                                                    void *cd, GC_finalization_proc *ofn,
                                                    void **ocd) {
    GC_register_finalizer_unreachable(obj, fn, cd, ofn, ocd);
}

/* ---- when finalizers run ---- */

GC_API void GC_set_finalize_on_demand(int v) {
    __atomic_store_n(&GC_finalize_on_demand, v, __ATOMIC_RELAXED);
    if (GC_is_init_called())
        sync_mode();
}

GC_API int GC_get_finalize_on_demand(void) {
    return __atomic_load_n(&GC_finalize_on_demand, __ATOMIC_RELAXED);
}

/* bdwgc: "both the setter and the getter acquire the GC lock"; the
 * variable is the storage, read by the notifier at each call. */
GC_API void GC_set_finalizer_notifier(GC_finalizer_notifier_proc fn) {
    __atomic_store_n(&GC_finalizer_notifier, fn, __ATOMIC_RELEASE);
}

GC_API GC_finalizer_notifier_proc GC_get_finalizer_notifier(void) {
    return __atomic_load_n(&GC_finalizer_notifier, __ATOMIC_ACQUIRE);
}

GC_API void GC_set_await_finalize_proc(GC_await_finalize_proc fn) {
    /* Release: the function's data is ready before the pointer is seen. */
    __atomic_store_n(&await_proc, fn, __ATOMIC_RELEASE);
}

GC_API GC_await_finalize_proc GC_get_await_finalize_proc(void) {
    return __atomic_load_n(&await_proc, __ATOMIC_ACQUIRE);
}

GC_API int GC_should_invoke_finalizers(void) {
    if (!GC_is_init_called())
        return 0;
    sync_mode();
    /* Acquire: see notify. */
    return atomic_load_explicit(&pending, memory_order_acquire);
}

GC_API int GC_invoke_finalizers(void) {
    compat_enter();
    sync_mode();
    /* Cleared first: a collection during the run sets it again. Relaxed:
     * the run itself is ordered by rudo's finalization lock. */
    atomic_store_explicit(&pending, 0, memory_order_relaxed);
    size_t n = rudo_run_finalizers();
    return n > (size_t)INT_MAX ? INT_MAX : (int)n;
}

/* Runs every registered finalizer, reachable objects' included, until none
 * is left (bdwgc: at exit, or to drain). The objects are held in a heap
 * array (conservatively scanned) while their finalizers run. */
GC_API void GC_finalize_all(void) {
    compat_enter();
    sync_mode();
    for (int round = 0;; round++) {
        atomic_store_explicit(&pending, 0, memory_order_relaxed);
        rudo_run_finalizers();
        fin_lock();
        size_t n = live;
        fin_unlock();
        if (n == 0)
            return;
        if (round == 1000) {
            compat_warn("GC Warning: rudo's libgc.so.1: GC_finalize_all: finalizers "
                        "keep registering (%lu left); giving up\n", (GC_word)n);
            return;
        }
        /* Allocated outside the lock (an allocation may collect and run
         * finalizers, which take it). Objects and records interleaved. */
        void **held = rudo_malloc(2 * n * sizeof *held);
        if (!held) {
            compat_warn("GC Warning: rudo's libgc.so.1: GC_finalize_all: out of "
                        "memory\n", 0);
            return;
        }
        size_t k = 0;
        fin_lock();
        for (size_t i = 0; i < cap && k < n; i++) {
            void *obj = table[i].obj;
            if (!obj || obj == TOMB)
                continue;
            struct fin_rec *r = table[i].rec;
            table[i].obj = TOMB;
            table[i].rec = NULL;
            live--;
            if (rudo_finalizer_unregister(obj) != RUDO_OK)
                continue; /* queued already, or freed (see register) */
            held[2 * k] = obj;
            held[2 * k + 1] = r;
            k++;
        }
        fin_unlock();
        for (size_t i = 0; i < k; i++) {
            struct fin_rec *r = held[2 * i + 1];
            r->fn((char *)held[2 * i] + r->disp, r->cd);
            rec_free(r);
            held[2 * i] = NULL;
        }
    }
}

/* A listing of the registrations, to stdout (bdwgc prints its tables). */
GC_API void GC_dump_finalization(void) {
    compat_init();
    fin_lock();
    printf("Finalizers (rudo's libgc.so.1): %lu registered\n", (unsigned long)live);
    for (size_t i = 0; i < cap; i++) {
        if (table[i].obj && table[i].obj != TOMB)
            printf("  %p: fn %p, cd %p\n", table[i].obj,
                   (void *)(uintptr_t)table[i].rec->fn, table[i].rec->cd);
    }
    fin_unlock();
    printf("Disappearing links: kept by rudo's weak registry (not listed)\n");
    fflush(stdout);
}

/* bdwgc pushes its finalization tables as roots here; rudo marks its own. */
GC_API void GC_push_finalizer_structures(void) {}
