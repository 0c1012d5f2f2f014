/* roots.c — registered roots (precise slots and conservative ranges) and
 * root enumeration. */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "platform/platform.h"
#include "roots/roots.h"

void rudo__roots_init(rudo__heap *h) {
    rudo__lock_init(&h->roots.lock, RUDO_RANK_ROOTS, "roots_lock");
}

void rudo__roots_destroy(rudo__heap *h) {
    rudo__roots *r = &h->roots;
    rudo__slotset_free(&r->slots);
    rudo__slotset_free(&r->weak);
    rudo__slotset_free(&r->weak_long);
    rudo__meta_free(r->skipped);
    rudo__meta_free(r->ranges);
    rudo__meta_free(r->cbs);
    r->cbs = NULL;
    r->ncbs = r->cap_cbs = 0;
    r->ranges = NULL;
    r->nranges = r->cap_ranges = 0;
    rudo__lock_destroy(&r->lock);
}

/* The registry changes only while no collection runs: markers read the
 * registered slots after the enumeration released roots_lock, so a slot
 * removed (and freed) meanwhile would be read after its end. Returns the
 * registry, locked. */
rudo__roots *rudo__registry_begin(rudo__heap *h, const char *fn) {
    rudo__lock_idle(h, fn);
    rudo__lock_acquire(&h->roots.lock);
    return &h->roots;
}

void rudo__registry_end(rudo__heap *h) {
    rudo__lock_release(&h->roots.lock);
    rudo__lock_release(&h->world.lock);
}

void rudo_root_add(void **slot) {
    const char *fn = "rudo_root_add";
    rudo__heap *h = rudo__need_heap(fn);
    if (!slot)
        rudo__fatal(fn, "slot is NULL");
    if ((uintptr_t)slot % sizeof(void *))
        rudo__fatal(fn, "slot %p is not aligned to a pointer", (void *)slot);
    rudo__roots *r = rudo__registry_begin(h, fn);
    bool added = rudo__slotset_add(&r->slots, slot, fn);
    rudo__registry_end(h);
    if (!added)
        rudo__fatal(fn, "slot %p is already a root", (void *)slot);
}

int rudo_root_remove(void **slot) {
    const char *fn = "rudo_root_remove";
    rudo__heap *h = rudo__need_heap(fn);
    rudo__roots *r = rudo__registry_begin(h, fn);
    bool removed = rudo__slotset_remove(&r->slots, slot);
    rudo__registry_end(h);
    if (!removed) {
        rudo__warn(fn, "slot %p was never added", (void *)slot);
        return RUDO_ENOENT;
    }
    return RUDO_OK;
}

void rudo_root_add_range(void *start, void *end) {
    const char *fn = "rudo_root_add_range";
    rudo__heap *h = rudo__need_heap(fn);
    if ((char *)start > (char *)end)
        rudo__fatal(fn, "start %p is above end %p", start, end);
    /* Every collection reads the range: a hole in it (a NULL start, a
     * stale or made-up address) would fault there, far from the mistake. */
    if (start != end && !rudo__os_mapped(start, end))
        rudo__fatal(fn, "[%p, %p) is not all mapped memory", start, end);
    rudo__roots *r = rudo__registry_begin(h, fn);
    if (r->nranges == r->cap_ranges)
        r->ranges = rudo__grow(r->ranges, &r->cap_ranges, sizeof *r->ranges, 16,
                               fn, "out of memory");
    r->ranges[r->nranges++] = (struct rudo__root_range){start, end};
    rudo__registry_end(h);
}

int rudo_root_remove_range(void *start) {
    const char *fn = "rudo_root_remove_range";
    rudo__heap *h = rudo__need_heap(fn);
    rudo__roots *r = rudo__registry_begin(h, fn);
    for (size_t i = 0; i < r->nranges; i++) {
        if (r->ranges[i].lo == start) {
            r->ranges[i] = r->ranges[--r->nranges];
            rudo__registry_end(h);
            return RUDO_OK;
        }
    }
    rudo__registry_end(h);
    rudo__warn(fn, "no range starts at %p", start);
    return RUDO_ENOENT;
}

static void static_segment(void *lo, void *hi, unsigned module, void *arg) {
    (void)module;
    rudo__root_visitor *v = arg;
    v->range(v, lo, hi);
}

void rudo__static_segments(rudo__heap *h,
                           void (*fn)(void *lo, void *hi, unsigned module, void *arg),
                           void *arg) {
    /* A thread stopped for this collection (parked, or suspended by
     * signal) may hold the dynamic loader's lock, inside its own
     * dl_iterate_phdr or dlclose: then dl_iterate_phdr here would wait
     * for ever. Threads in blocking regions run, and release it. */
    bool others_stopped = false;
    for (rudo__mutator *m = h->world.mutators; m; m = m->next)
        others_stopped |= m->state == RUDO_MUT_STOPPED || m->sig_stopped;
    if (others_stopped)
        rudo__os_static_segments_stopped(fn, arg, RUDO_LOADER_WAIT_MS);
    else
        rudo__os_static_segments(fn, arg);
}

void rudo_static_segments(rudo_segment_fn fn, void *data) {
    const char *name = "rudo_static_segments";
    rudo__heap *h = rudo__need_heap(name);
    if (!fn)
        rudo__fatal(name, "fn is NULL");
    /* Inside a collection (a root callback, on the collecting thread or a
     * marker) the mutators' states are stable and say who is stopped;
     * outside, none is stopped by this heap. */
    if (rudo__tracing_kind)
        rudo__static_segments(h, fn, data);
    else
        rudo__os_static_segments(fn, data);
}

void rudo__roots_enumerate(rudo__heap *h, rudo__root_visitor *v) {
    for (rudo__mutator *m = h->world.mutators; m; m = m->next) {
        if (h->cfg.scan_stacks) {
            /* The copy of the frames that hold the callee-saved registers,
             * then the stack above them (rudo__capture_roots); for a
             * thread suspended by signal, the registers its handler
             * copied and the stack from the interrupted stack pointer
             * (threads/sigstop.c). */
            void **regs = m->sig_stopped ? m->sig_regs : m->spill;
            size_t nregs = m->sig_stopped ? m->nsig_regs : m->nspill;
            char *sp = m->sig_stopped ? m->sig_sp : m->stack_sp;
            v->range(v, regs, regs + nregs);
            /* Bounds declared with rudo_stack_set are the program's word:
             * a wrong one (hi past the stack's end, or far past the
             * user address space) would have the scan fault, or split
             * the range into tasks forever. A system call per thread. */
            if (!rudo__os_mapped(sp, m->stack_hi))
                rudo__fatal("rudo_stack_set", "mutator %u's stack, [%p, %p) from its "
                            "stack pointer, is not all mapped memory: the bounds "
                            "declared with rudo_stack_set (or found when it "
                            "attached) are wrong", (unsigned)m->id, (void *)sp,
                            m->stack_hi);
            v->range(v, sp, m->stack_hi);
            /* Static TLS blocks; skip one the stack range already covers
             * (glibc's threads keep theirs at the top of the stack block),
             * which would only be scanned twice. */
            for (size_t i = 0; i < m->ntls; i++) {
                char *lo = m->tls[i].lo, *hi = m->tls[i].hi;
                if (lo >= sp && hi <= (char *)m->stack_hi)
                    continue;
                v->range(v, lo, hi);
            }
        }
        rudo__handles_enumerate(m, v);
    }
    rudo__roots *r = &h->roots;
    rudo__lock_acquire(&r->lock);
    for (size_t i = 0; i < r->slots.cap; i++) {
        void **s = rudo__slotset_at(&r->slots, i);
        if (s)
            v->slot(v, s);
    }
    for (size_t i = 0; i < r->nranges; i++)
        v->range(v, r->ranges[i].lo, r->ranges[i].hi);
    rudo__lock_release(&r->lock);
    /* Without loader_lock: no fork happens during a collection (the fork
     * handler waits for its end), and the collector must not wait for a
     * thread that attaches: the program may hold the loader's lock itself,
     * in a dl_iterate_phdr callback that collected, while the attaching
     * thread waits for it holding loader_lock. */
    if (h->cfg.scan_static_data)
        rudo__static_segments(h, static_segment, v);
}

/* ---- root callbacks ---------------------------------------------------------- */

static int callback_add(rudo_root_fn fn, void *data, bool first, const char *name) {
    rudo__heap *h = rudo__need_heap(name);
    if (!fn)
        rudo__fatal(name, "the callback is NULL");
    rudo__roots *r = rudo__registry_begin(h, name);
    int rc = RUDO_OK;
    for (size_t i = 0; i < r->ncbs; i++)
        if (r->cbs[i].fn == fn && r->cbs[i].data == data)
            rc = RUDO_EEXIST;
    if (rc == RUDO_OK) {
        if (r->ncbs == r->cap_cbs)
            r->cbs = rudo__grow(r->cbs, &r->cap_cbs, sizeof *r->cbs, 8,
                                   name, "out of memory");
        r->cbs[r->ncbs++] = (struct rudo__root_cb){fn, data, first};
    }
    rudo__registry_end(h);
    return rc;
}

int rudo_root_callback_add(rudo_root_fn fn, void *data) {
    return callback_add(fn, data, false, "rudo_root_callback_add");
}

int rudo_root_callback_add_first(rudo_root_fn fn, void *data) {
    return callback_add(fn, data, true, "rudo_root_callback_add_first");
}

int rudo_root_callback_remove(rudo_root_fn fn, void *data) {
    rudo__heap *h = rudo__need_heap("rudo_root_callback_remove");
    rudo__roots *r = rudo__registry_begin(h, "rudo_root_callback_remove");
    int rc = RUDO_ENOENT;
    for (size_t i = 0; i < r->ncbs; i++) {
        if (r->cbs[i].fn == fn && r->cbs[i].data == data) {
            /* Keeps the order: callbacks run in the order they were added. */
            for (size_t j = i + 1; j < r->ncbs; j++)
                r->cbs[j - 1] = r->cbs[j];
            r->ncbs--;
            rc = RUDO_OK;
            break;
        }
    }
    rudo__registry_end(h);
    if (rc == RUDO_ENOENT)
        rudo__warn("rudo_root_callback_remove", "the pair (fn, data) was never added");
    return rc;
}

void rudo_thread_root_callback(rudo_root_fn fn, void *data) {
    /* First: a root callback runs on the collecting thread or on a marker
     * (not attached); the message must not depend on which. */
    rudo__check_not_collecting("rudo_thread_root_callback");
    rudo__mutator *m = rudo__need_mutator("rudo_thread_root_callback");
    rudo__heap *h = rudo__the_heap;
    /* Under gc_lock, with no collection running: the collector reads the
     * pair while the thread is stopped. */
    rudo__lock_idle(h, "rudo_thread_root_callback");
    m->root_fn = fn;
    m->root_data = data;
    rudo__lock_release(&h->world.lock);
}

void rudo__roots_callbacks_first(rudo__heap *h, rudo__root_visitor *v) {
    rudo__roots *r = &h->roots;
    for (size_t i = 0; i < r->ncbs; i++)
        if (r->cbs[i].first)
            v->callback(v, r->cbs[i].fn, r->cbs[i].data);
}

void rudo__roots_callbacks(rudo__heap *h, rudo__root_visitor *v) {
    rudo__roots *r = &h->roots;
    for (size_t i = 0; i < r->ncbs; i++)
        if (!r->cbs[i].first)
            v->callback(v, r->cbs[i].fn, r->cbs[i].data);
    for (rudo__mutator *m = h->world.mutators; m; m = m->next)
        if (m->root_fn)
            v->callback(v, m->root_fn, m->root_data);
}
