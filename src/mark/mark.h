/* mark.h — the marker (internal): mark bits, the mark stack, tracing
 * objects by kind, and the mark phase. */
#ifndef RUDO_MARK_H
#define RUDO_MARK_H
#include "heap/heap.h"

#define RUDO_SLOTBUF 256

/* One marker's state. The tracer handed to trace callbacks comes first so
 * rudo__tracer_flush can find the marker from it. */
typedef struct rudo__marker {
    rudo_tracer tr;
    void **slotbuf[RUDO_SLOTBUF]; /* slots reported by a trace callback */
    rudo__heap *h;
    uintptr_t limit;              /* hwm << PAGE_SHIFT: bound of heap offsets */
    void **stack;                 /* mark stack of object bases */
    size_t n, cap;
    size_t high_water;            /* largest n seen */
    uint64_t objects_marked;
    uint64_t overflows;           /* pushes deferred for lack of memory */
    bool overflowed;              /* some page has overflow set */
} rudo__marker;

/* The whole mark phase of a full collection, with the world stopped:
 * roots, transitive closure, finalizable objects, deferred pages. */
void rudo__mark_phase(rudo__heap *h);

/* Marks the object containing value v if it is an allocated heap object
 * not yet marked, and queues it for tracing. */
void rudo__mark_value(rudo__marker *mk, void *v);

/* Test hook: the next n mark-stack growths fail. */
void rudo__mark_fail_growth(unsigned n);
/* Statistics of the last mark phase (for tests and the log). */
typedef struct rudo__mark_stats {
    uint64_t objects_marked, overflows;
    size_t high_water;
} rudo__mark_stats;
rudo__mark_stats rudo__mark_last_stats(void);

#endif
