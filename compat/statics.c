/* statics.c — the static data of the program and of its shared libraries
 * as roots, found again at every collection (so libraries loaded later
 * are scanned too, and GC_no_dls is read each time).
 *
 * It runs as a rudo root callback, with the world stopped, and takes no
 * lock of its own. The segments come from rudo_static_segments, which does
 * not wait for ever on the dynamic loader's lock when a stopped thread
 * holds it (inside its own dl_iterate_phdr, or dlclose); dl_iterate_phdr
 * called here did, as bdwgc's does. Every aligned word
 * of a writable PT_LOAD segment that is not NULL is reported with
 * rudo_visit: the collector marks a slot's value only if it points into an
 * allocated object, interior pointers included, which is exactly a
 * conservative scan of the word.
 *
 * GC_exclude_static_roots takes ranges out of that scan (not out of
 * GC_add_roots ranges, which rudo scans itself). The exclusion table is
 * append-only between clears, so the root callback, which runs with the
 * world stopped and takes no lock, reads a consistent prefix: an entry is
 * written before the count that covers it is stored (release), and the
 * callback loads the count with acquire. A thread that is not registered,
 * and so not stopped, could still clear and refill the table during a
 * collection; the entries it rewrites then may be read half-written, and
 * that only changes which words of static data are scanned. */
#include "compat.h"

#include <stdatomic.h>


/* Under AddressSanitizer, the redzones around instrumented globals are
 * skipped: they hold no program data, and the collector, instrumented
 * too, would report its read of them. */
#if defined(__SANITIZE_ADDRESS__)
#define COMPAT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COMPAT_ASAN 1
#endif
#endif
#ifdef COMPAT_ASAN
#include <sanitizer/asan_interface.h>
#define POISONED(w) (__asan_region_is_poisoned((void *)(w), sizeof(void *)) != NULL)
#else
#define POISONED(w) 0
#endif

static void scan_words(rudo_tracer *tr, char *lo, char *hi) {
    uintptr_t a = ((uintptr_t)lo + sizeof(void *) - 1) & ~(uintptr_t)(sizeof(void *) - 1);
    for (void **w = (void **)a; (char *)(w + 1) <= hi; w++)
        if (!POISONED(w))
            rudo_visit(tr, w);
}

/* bdwgc's table holds 512 ranges, and it aborts past them; here a range
 * past them is not excluded (its words are scanned: only more is kept),
 * with a warning. */
#define MAX_EXCLUSIONS 512
static struct { uintptr_t lo, hi; } excl[MAX_EXCLUSIONS];
static atomic_size_t nexcl;

GC_API void GC_exclude_static_roots(void *start, void *finish) {
    /* bdwgc widens the range to whole words: a word that overlaps it at
     * all is not scanned. */
    uintptr_t w = sizeof(void *);
    uintptr_t lo = (uintptr_t)start & ~(w - 1);
    uintptr_t hi = (uintptr_t)finish;
    if (hi <= lo)
        return;
    hi = hi > UINTPTR_MAX - (w - 1) ? UINTPTR_MAX & ~(w - 1) : (hi + w - 1) & ~(w - 1);
    compat_lock();
    /* Relaxed: the writers are ordered by compat_lock. */
    size_t n = atomic_load_explicit(&nexcl, memory_order_relaxed);
    if (n == MAX_EXCLUSIONS) {
        compat_unlock();
        static atomic_int once;
        compat_warn_once(&once, "GC Warning: GC_exclude_static_roots: more than "
                                "512 ranges; the others are scanned\n");
        return;
    }
    excl[n].lo = lo;
    excl[n].hi = hi;
    /* Release: the callback that sees the count sees the entry. */
    atomic_store_explicit(&nexcl, n + 1, memory_order_release);
    compat_unlock();
}

GC_API void GC_clear_exclusion_table(void) {
    compat_lock();
    atomic_store_explicit(&nexcl, 0, memory_order_release);
    compat_unlock();
}

/* Scans [lo, hi) but for the excluded ranges: the next excluded range
 * that overlaps what is left, in address order, each time. */
static void scan_segment(rudo_tracer *tr, char *lo, char *hi, size_t n) {
    uintptr_t cur = (uintptr_t)lo, end = (uintptr_t)hi;
    while (cur < end) {
        uintptr_t next_lo = end, next_hi = end;
        for (size_t i = 0; i < n; i++)
            if (excl[i].hi > cur && excl[i].lo < end && excl[i].lo < next_lo) {
                next_lo = excl[i].lo;
                next_hi = excl[i].hi;
            }
        if (next_lo > cur)
            scan_words(tr, (char *)cur, (char *)next_lo);
        /* Overlapping ranges: the one that starts first ends the skip;
         * the loop then finds any that reaches further. */
        cur = next_hi > cur ? next_hi : cur;
        if (next_lo == end)
            break;
    }
}

struct scan_arg {
    rudo_tracer *tr;
    bool main_only;
    size_t nexcl;
};

static void segment(void *lo, void *hi, unsigned module, void *data) {
    struct scan_arg *a = data;
    /* Module 0 is the main program. */
    if (a->main_only && module != 0)
        return;
    scan_segment(a->tr, lo, hi, a->nexcl);
}

void compat_static_roots(rudo_tracer *tr, void *data) {
    (void)data;
    /* Relaxed: the program sets it before it matters (bdwgc reads it in
     * the same way, at each collection). */
    struct scan_arg a = {tr, __atomic_load_n(&GC_no_dls, __ATOMIC_RELAXED) != 0,
                         /* Acquire: see the file's comment. */
                         atomic_load_explicit(&nexcl, memory_order_acquire)};
    rudo_static_segments(segment, &a);
}
