/* final.h — finalization (internal): the queue of objects whose finalizer
 * is due. The collector finds the unreachable finalizable objects, queues
 * them and marks from them; queued objects are roots until their
 * finalizer has run. */
#ifndef RUDO_FINAL_H
#define RUDO_FINAL_H
#include "heap/heap.h"

void rudo__final_init(rudo__heap *h);
void rudo__final_destroy(rudo__heap *h);
/* Registers e (a per-object finalizer, or a guardian's object); RUDO_OK,
 * or RUDO_EEXIST if e.obj has a registration already. No collection may
 * run (the caller holds gc_lock idle). */
int rudo__final_register(rudo__heap *h, rudo__final_entry e, const char *fn);
/* Forgets obj's registration; RUDO_OK or RUDO_ENOENT. As above. */
int rudo__final_unregister(rudo__heap *h, void *obj);
/* After the closure from the roots (world stopped): queues every
 * allocated, unmarked object of a finalizable kind not queued before (its
 * fin bit, set now) and every unmarked object with an unordered
 * per-object registration (which ends), and returns all of them in *out (a malloc'd
 * array the caller frees), their number as the result; sets
 * h->final_queued. The collector then marks from each, so that every
 * finalizer sees its object intact. Queuing all before marking any means
 * objects that die together are finalized after the same collection, even
 * when one references another (in no particular order). A minor
 * collection (major false) looks only at the pages touched since the last
 * collection: the others hold only old objects, all marked. */
size_t rudo__final_find_due(rudo__heap *h, bool major, void ***out);
/* Ordered finalization (bdwgc's order; docs/design.md, "Finalization"),
 * after rudo__final_find_due: the candidates are the unmarked objects with
 * an ordered registration (a malloc'd array in *out, their number as the
 * result). The collector marks what each candidate references (not the
 * candidate), and what the unordered due objects reach; then
 * rudo__final_ordered_due queues the candidates that are still unmarked
 * (nothing else dying refers to them), ends their registrations, adds
 * them to h->final_queued and returns them, for the collector to mark. */
size_t rudo__final_ordered_candidates(rudo__heap *h, void ***out);
/* Whether obj's (ordered) registration ignores obj's pointers into itself
 * (rudo_finalizer_register_ignore_self). As rudo__final_ordered_candidates. */
bool rudo__final_ignores_self(rudo__heap *h, void *obj);
size_t rudo__final_ordered_due(rudo__heap *h, void ***out);
/* Reports the queued objects and the guardians' ready objects as roots. */
void rudo__final_enumerate(rudo__heap *h, rudo__root_visitor *v);
/* Runs the due entries on the calling thread, outside every collector
 * lock: finalizers are called, guardians' objects handed to their
 * guardian. Does nothing if a thread is running them already, or if the
 * heap is in on-demand mode and `demanded` is false. Returns how many. */
size_t rudo__final_run(rudo__heap *h, bool demanded);
/* Guardians (final.c owns them; the API is the collector layer's). */
struct rudo_guardian *rudo__guardian_new(rudo__heap *h);
void rudo__guardian_destroy(rudo__heap *h, struct rudo_guardian *g);
void *rudo__guardian_poll(rudo__heap *h, struct rudo_guardian *g);
/* fork handling, called by the atfork handlers (src/gc/fork.c): final_lock
 * is held across fork; in the child no thread is running finalizers. */
void rudo__final_fork_prepare(rudo__heap *h);
void rudo__final_fork_parent(rudo__heap *h);
void rudo__final_fork_child(rudo__heap *h);

#endif
