/* final_api.c — the public calls of finalization: per-object finalizers,
 * guardians, and when finalizers run. The mechanism is src/final/. */
#include "final/final.h"
#include "gc/gc.h"

/* The heap, with gc_lock taken at a moment when no collection runs (the
 * registrations are read by the collector with the world stopped), and
 * obj checked to be the base of an allocated object. */
static rudo__heap *begin_obj(void *obj, const char *fn) {
    rudo__heap *h = rudo__need_heap(fn);
    if (!obj)
        rudo__fatal(fn, "the object is NULL");
    if (rudo__find_object(h, obj, NULL) != obj)
        rudo__fatal(fn, "%p is not the base of a heap object", obj);
    rudo__lock_idle(h, fn);
    return h;
}

static int register_fn(void *obj, rudo_finalize_fn fn, void *data,
                       bool ordered, bool ignore_self, const char *name) {
    if (!fn)
        rudo__fatal(name, "the finalizer is NULL (use rudo_finalizer_unregister)");
    rudo__heap *h = begin_obj(obj, name);
    int rc = rudo__final_register(
        h, (rudo__final_entry){obj, fn, data, NULL, ordered, ignore_self}, name);
    rudo__lock_release(&h->world.lock);
    return rc;
}

int rudo_finalizer_register(void *obj, rudo_finalize_fn fn, void *data) {
    return register_fn(obj, fn, data, false, false, "rudo_finalizer_register");
}

int rudo_finalizer_register_ordered(void *obj, rudo_finalize_fn fn, void *data) {
    return register_fn(obj, fn, data, true, false, "rudo_finalizer_register_ordered");
}

int rudo_finalizer_register_ignore_self(void *obj, rudo_finalize_fn fn, void *data) {
    return register_fn(obj, fn, data, true, true, "rudo_finalizer_register_ignore_self");
}

int rudo_finalizer_unregister(void *obj) {
    rudo__heap *h = begin_obj(obj, "rudo_finalizer_unregister");
    int rc = rudo__final_unregister(h, obj);
    rudo__lock_release(&h->world.lock);
    return rc;
}

rudo_guardian *rudo_guardian_new(void) {
    return rudo__guardian_new(rudo__need_heap("rudo_guardian_new"));
}

void rudo_guardian_destroy(rudo_guardian *g) {
    const char *fn = "rudo_guardian_destroy";
    rudo__heap *h = rudo__need_heap(fn);
    if (!g)
        rudo__fatal(fn, "the guardian is NULL");
    rudo__lock_idle(h, fn);
    rudo__guardian_destroy(h, g);
    rudo__lock_release(&h->world.lock);
}

int rudo_guardian_register(rudo_guardian *g, void *obj) {
    const char *fn = "rudo_guardian_register";
    if (!g)
        rudo__fatal(fn, "the guardian is NULL");
    rudo__heap *h = begin_obj(obj, fn);
    int rc = rudo__final_register(h, (rudo__final_entry){obj, NULL, NULL, g, false, false}, fn);
    rudo__lock_release(&h->world.lock);
    return rc;
}

void *rudo_guardian_poll(rudo_guardian *g) {
    const char *fn = "rudo_guardian_poll";
    rudo__heap *h = rudo__need_heap(fn);
    if (!g)
        rudo__fatal(fn, "the guardian is NULL");
    /* A plain lock, no collection exclusion needed: a collection only
     * reads the ready queue (as roots) under the same lock. The result is
     * returned to an attached caller, which holds it from here. */
    rudo__need_mutator(fn);
    return rudo__guardian_poll(h, g);
}

size_t rudo_run_finalizers(void) {
    const char *fn = "rudo_run_finalizers";
    rudo__check_context(fn, "run finalizers");
    rudo__mutator *m = rudo__need_mutator(fn);
    /* The finalizers run below must not destroy the heap or detach the
     * thread: the loop goes on with both (rudo__mutator.busy). */
    m->busy++;
    size_t n = rudo__final_run(rudo__the_heap, true);
    m->busy--;
    return n;
}

void rudo_set_finalization(bool on_demand, void (*notify)(void *data),
                           void *data) {
    rudo__heap *h = rudo__need_heap("rudo_set_finalization");
    rudo__lock_idle(h, "rudo_set_finalization");
    rudo__lock_acquire(&h->final.lock);
    h->final.on_demand = on_demand;
    h->final.notify = notify;
    h->final.notify_data = data;
    rudo__lock_release(&h->final.lock);
    rudo__lock_release(&h->world.lock);
}
