/* gc.h — the collector layer (internal), on top of every other: heap
 * creation and destruction with the options, the collection driver, the
 * allocation slow path's collect / retry / out-of-memory loop, statistics
 * and the GC log. No file outside src/gc/ includes this header or calls
 * what it declares (tools/layers.py checks the include direction). */
#ifndef RUDO_GC_H
#define RUDO_GC_H
#include "base/base.h"
#include "heap/heap.h"
#include "threads/threads.h"

/* Runs a collection with the world stopped (or waits for the one another
 * thread is running), then the collection callback and the finalizers
 * that became due. m is the calling thread's mutator. Without generations
 * every collection is full; with them it is major if `major` is set or the
 * policy chose one (collect.c), minor otherwise. */
void rudo__collect(rudo__mutator *m, const char *reason, bool major);

/* Prints the RUDO_GC_LOG line of the collection that just ended (world
 * stopped). */
void rudo__gc_log_line(rudo__heap *h, const char *reason, uint64_t pause,
                       uint64_t ttsp, uint64_t mark_ns, uint64_t sweep_ns,
                       size_t live);

/* Installs the fork handlers (once per process; fork.c). */
void rudo__gc_install_atfork(void);

/* Base of the allocated object containing a, its page in *pp; NULL if a
 * is not inside an allocated object. Exact outside collections for pages
 * that are not current; see the invariants above. A suspend signal is
 * deferred until it returns (the answer is one state of the heap). */
void *rudo__find_object(const rudo__heap *h, const void *a, rudo__page **pp);

#endif
