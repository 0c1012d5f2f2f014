/* roots.h — the root set (internal): precise root slots, conservative
 * ranges, scoped handles, and the one function that enumerates every root
 * for every kind of collection. */
#ifndef RUDO_ROOTS_H
#define RUDO_ROOTS_H
#include "heap/heap.h"
#include "threads/threads.h"


/* How long the static-data scan waits for the loader helper to get the
 * dynamic loader's lock before it walks the modules without it
 * (platform/loader.c). */
#define RUDO_LOADER_WAIT_MS 50

/* Calls fn for every writable segment of the loaded modules (0: the main
 * program), during a collection, without waiting for ever on the dynamic
 * loader's lock held by a stopped thread. */
void rudo__static_segments(rudo__heap *h,
                           void (*fn)(void *lo, void *hi, unsigned module, void *arg),
                           void *arg);

/* Reports every root: each mutator's saved registers, stack and static TLS
 * blocks (if scan_stacks), its handles, the registered slots and ranges, static data
 * (if scan_static_data). Called with the world stopped. */
void rudo__roots_enumerate(rudo__heap *h, rudo__root_visitor *v);

void rudo__roots_init(rudo__heap *h);
void rudo__roots_destroy(rudo__heap *h);

/* The registry (slots, ranges, weak slots, callbacks) changes only while
 * no collection runs: takes gc_lock when none runs (rudo__lock_idle: an
 * attached caller parks meanwhile) and roots_lock, and returns the
 * registry; rudo__registry_end releases both. */
rudo__roots *rudo__registry_begin(rudo__heap *h, const char *fn);
void rudo__registry_end(rudo__heap *h);

/* Shows v the root callbacks, global ones in the order added, then each
 * mutator's (world stopped); the marking calls them (mark.c). */
void rudo__roots_callbacks(rudo__heap *h, rudo__root_visitor *v);
/* The callbacks added with rudo_root_callback_add_first (the others are
 * rudo__roots_callbacks'), in the order they were added. */
void rudo__roots_callbacks_first(rudo__heap *h, rudo__root_visitor *v);

/* ---- weak.c ---- */
/* Clears the registered weak slots whose target is in an unmarked cell
 * (world stopped, after marking). Before the objects due for finalization
 * are marked (after_finalization false) it does the (short) weak slots;
 * after, the long ones too, and forgets the slots that lie inside objects
 * that died. Returns the number cleared. */
uint64_t rudo__weak_clear(rudo__heap *h, bool after_finalization);
/* Forgets the weak slots (short and long) that lie in [lo, hi): an object
 * freed with rudo_free dies, and its cell may be handed out at once. The
 * caller is attached and running (no collection is under way); takes
 * roots_lock, never waits for a collection. */
void rudo__weak_forget_inside(rudo__heap *h, void *lo, void *hi);

#endif
