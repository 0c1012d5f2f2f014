/* final.h — finalization (internal): the queue of objects whose finalizer
 * is due. The collector finds the unreachable finalizable objects, queues
 * them and marks from them; queued objects are roots until their
 * finalizer has run. */
#ifndef RUDO_FINAL_H
#define RUDO_FINAL_H
#include "heap/heap.h"

void rudo__final_init(rudo__heap *h);
void rudo__final_destroy(rudo__heap *h);
/* Queues obj for its kind's finalizer (collector, world stopped). */
void rudo__final_queue(rudo__heap *h, void *obj);
/* After the closure from the roots: queues for their finalizer every
 * allocated object of a finalizable kind that is not marked and was not
 * queued before (its fin bit, set now), and returns them in *out (a malloc'd
 * array the caller frees), their number as the result; sets
 * h->final_queued. The collector then marks from each, so that every
 * finalizer sees its object intact. Queuing all before marking any means
 * objects that die together are finalized after the same collection, even
 * when one references another (in no particular order). */
size_t rudo__final_find_due(rudo__heap *h, void ***out);
/* Reports the queued objects as precise roots. */
void rudo__final_enumerate(rudo__heap *h, rudo__root_visitor *v);
/* Runs queued finalizers on the calling thread, outside every collector
 * lock; does nothing if this thread is already running finalizers. */
void rudo__final_run(rudo__heap *h);
/* fork handling, called by the atfork handlers (src/gc/fork.c): final_lock is held
 * across fork; in the child no thread is running finalizers any more. */
void rudo__final_fork_prepare(rudo__heap *h);
void rudo__final_fork_parent(rudo__heap *h);
void rudo__final_fork_child(rudo__heap *h);

#endif
