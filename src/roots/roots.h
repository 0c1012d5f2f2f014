/* roots.h — the root set (internal): precise root slots, conservative
 * ranges, scoped handles, and the one function that enumerates every root
 * for every kind of collection. */
#ifndef RUDO_ROOTS_H
#define RUDO_ROOTS_H
#include "heap/heap.h"

/* What a root enumeration reports: conservative ranges (every aligned word
 * may be a pointer, interior pointers included) and precise slots. */
typedef struct rudo__root_visitor {
    void (*range)(struct rudo__root_visitor *v, void *lo, void *hi);
    void (*slot)(struct rudo__root_visitor *v, void **slot);
} rudo__root_visitor;

/* Reports every root: each mutator's saved registers, stack and static TLS
 * blocks (if scan_stacks), its handles, the registered slots and ranges, static data
 * (if scan_static_data), and objects waiting for their finalizer. Called
 * with the world stopped. */
void rudo__roots_enumerate(rudo__heap *h, rudo__root_visitor *v);

void rudo__roots_init(rudo__heap *h);
void rudo__roots_destroy(rudo__heap *h);

/* Handle chunks of a mutator (handles.c). */
void rudo__handles_enumerate(rudo__mutator *m, rudo__root_visitor *v);
void rudo__handles_free(rudo__mutator *m);

#endif
