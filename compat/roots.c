/* roots.c — GC_add_roots, GC_remove_roots, GC_clear_roots.
 *
 * bdwgc keeps root intervals: adding one that starts where another starts
 * extends it, and GC_remove_roots(lo, hi) removes every interval inside
 * [lo, hi). rudo's ranges are removed by their start, so the intervals
 * added through this interface are kept in compat.ranges as well, rounded
 * inwards to whole words as bdwgc keeps them. */
#include "compat.h"

#include <stdio.h>
#include <stdlib.h>

GC_API void GC_add_roots(void *lo, void *hi) {
    compat_init();
    /* As bdwgc, the interval kept is rounded inwards to whole words (only
     * those are scanned anyway): GC_remove_roots compares against it. */
    uintptr_t w = sizeof(void *);
    lo = (void *)(((uintptr_t)lo + w - 1) & ~(w - 1));
    hi = (void *)((uintptr_t)hi & ~(w - 1));
    if ((char *)lo >= (char *)hi)
        return;
    compat_lock();
    for (size_t i = 0; i < compat.nranges; i++) {
        struct compat_range *r = &compat.ranges[i];
        if (r->lo == (char *)lo) {
            if ((char *)hi > r->hi) {
                rudo_root_remove_range(r->lo);
                r->hi = hi;
                rudo_root_add_range(r->lo, r->hi);
            }
            compat_unlock();
            return;
        }
    }
    if (compat.nranges == compat.cap_ranges) {
        size_t cap = compat.cap_ranges ? 2 * compat.cap_ranges : 16;
        struct compat_range *t = realloc(compat.ranges, cap * sizeof *t);
        if (!t) {
            compat_unlock();
            fprintf(stderr, "rudo-compat: GC_add_roots: out of memory\n");
            abort(); /* bdwgc aborts too: "Too many root sets" */
        }
        compat.ranges = t;
        compat.cap_ranges = cap;
    }
    compat.ranges[compat.nranges++] = (struct compat_range){lo, hi};
    rudo_root_add_range(lo, hi);
    compat_unlock();
}

GC_API void GC_remove_roots(void *lo, void *hi) {
    compat_init();
    compat_lock();
    size_t k = 0;
    for (size_t i = 0; i < compat.nranges; i++) {
        struct compat_range r = compat.ranges[i];
        if (r.lo >= (char *)lo && r.hi <= (char *)hi)
            rudo_root_remove_range(r.lo);
        else
            compat.ranges[k++] = r;
    }
    compat.nranges = k;
    compat_unlock();
}

GC_API void GC_clear_roots(void) {
    compat_init();
    compat_lock();
    for (size_t i = 0; i < compat.nranges; i++)
        rudo_root_remove_range(compat.ranges[i].lo);
    compat.nranges = 0;
    compat_unlock();
}
