/* weak.c — registered weak slots: the program's pointers that do not keep
 * their target alive and are cleared to NULL when it dies (bdwgc's
 * disappearing links). The order of the passes, and what "dies" means for
 * an object with a finalizer, are in docs/design.md, "Weak references". */
#include "base/base.h"
#include "roots/roots.h"

/* The registry changes only while no collection runs (as the roots':
 * rudo__lock_idle), so the passes, which run with the world stopped, see a
 * stable table. Returns the registry, locked. */
static rudo__roots *weak_begin(rudo__heap *h) {
    rudo__lock_idle(h);
    rudo__lock_acquire(&h->roots.lock);
    return &h->roots;
}

static void weak_end(rudo__heap *h) {
    rudo__lock_release(&h->roots.lock);
    rudo__lock_release(&h->world.lock);
}

static bool registered(const rudo__roots *r, void **slot) {
    return rudo__slotset_contains(&r->weak, slot) ||
           rudo__slotset_contains(&r->weak_long, slot);
}

static void check_slot(void **slot, const char *fn) {
    if (!slot)
        rudo__fatal(fn, "slot is NULL");
    if ((uintptr_t)slot % sizeof(void *))
        rudo__fatal(fn, "slot %p is not aligned to a pointer", (void *)slot);
}

static int weak_add(void **slot, bool is_long, const char *fn) {
    rudo__heap *h = rudo__need_heap(fn);
    check_slot(slot, fn);
    rudo__roots *r = weak_begin(h);
    int rc = RUDO_EEXIST; /* a slot is weak in one way only */
    if (!registered(r, slot)) {
        rudo__slotset_add(is_long ? &r->weak_long : &r->weak, slot, fn);
        rc = RUDO_OK;
    }
    weak_end(h);
    return rc;
}

int rudo_weak_register(void **slot) {
    return weak_add(slot, false, "rudo_weak_register");
}

int rudo_weak_register_long(void **slot) {
    return weak_add(slot, true, "rudo_weak_register_long");
}

int rudo_weak_unregister(void **slot) {
    const char *fn = "rudo_weak_unregister";
    rudo__heap *h = rudo__need_heap(fn);
    rudo__roots *r = weak_begin(h);
    bool found = rudo__slotset_remove(&r->weak, slot) ||
                 rudo__slotset_remove(&r->weak_long, slot);
    weak_end(h);
    return found ? RUDO_OK : RUDO_ENOENT;
}

int rudo_weak_move(void **from, void **to) {
    const char *fn = "rudo_weak_move";
    rudo__heap *h = rudo__need_heap(fn);
    check_slot(to, fn);
    rudo__roots *r = weak_begin(h);
    rudo__slotset *set = rudo__slotset_remove(&r->weak, from) ? &r->weak
                         : rudo__slotset_remove(&r->weak_long, from) ? &r->weak_long
                                                                     : NULL;
    int rc = RUDO_OK;
    if (!set) {
        rc = RUDO_ENOENT;
    } else if (registered(r, to)) {
        rudo__slotset_add(set, from, fn); /* as it was */
        rc = RUDO_EEXIST;
    } else {
        rudo__slotset_add(set, to, fn);
    }
    weak_end(h);
    return rc;
}

/* One set's pass (world stopped): a slot inside a heap object that died is
 * forgotten (its memory is about to be reused) when `final` is set, and
 * left for that pass otherwise (the object may yet be kept for a
 * finalizer); a slot whose target is in an unmarked cell is cleared. */
static uint64_t pass(rudo__heap *h, rudo__slotset *s, bool final) {
    uint64_t cleared = 0;
    for (size_t i = 0; i < s->cap; i++) {
        void **slot = rudo__slotset_at(s, i);
        if (!slot)
            continue;
        if (rudo__unmarked_cell(h, slot)) {
            if (final)
                rudo__slotset_remove_at(s, i);
            continue;
        }
        if (*slot && rudo__unmarked_cell(h, *slot)) {
            *slot = NULL;
            cleared++;
        }
    }
    return cleared;
}

uint64_t rudo__weak_clear(rudo__heap *h, bool after_finalization) {
    rudo__roots *r = &h->roots;
    rudo__lock_acquire(&r->lock);
    uint64_t cleared = pass(h, &r->weak, after_finalization);
    if (after_finalization)
        cleared += pass(h, &r->weak_long, true);
    rudo__lock_release(&r->lock);
    return cleared;
}
