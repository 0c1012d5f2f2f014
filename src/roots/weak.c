/* weak.c — registered weak slots: the program's pointers that do not keep
 * their target alive and are cleared to NULL when it dies (bdwgc's
 * disappearing links). The order of the passes, and what "dies" means for
 * an object with a finalizer, are in docs/design.md, "Weak references". */
#include <stdlib.h>

#include "base/base.h"
#include "roots/roots.h"

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

/* target NULL: the slot's own value is its target. */
static int weak_add(void **slot, const void *target, bool is_long, const char *fn) {
    rudo__heap *h = rudo__need_heap(fn);
    check_slot(slot, fn);
    /* The call waits while a collection runs, and the slot is not weak
     * yet: its value, held nowhere else (the program stored it and let it
     * go), would be freed during the wait and then registered, a dangling
     * weak slot. Held here, in a frame the stack scan reads (the roots are
     * captured below this one), it stays until the registration is made;
     * from then on the slot is cleared if it dies. A test with six threads
     * found it, in one run of ten. */
    const void *volatile hold = target ? target : *(void *volatile *)slot;
    rudo__roots *r = rudo__registry_begin(h, fn);
    int rc = RUDO_EEXIST; /* a slot is weak in one way only */
    if (!registered(r, slot)) {
        rudo__slotset_add_value(is_long ? &r->weak_long : &r->weak, slot,
                                (void *)(uintptr_t)target, fn);
        rc = RUDO_OK;
    }
    rudo__registry_end(h);
    (void)hold; /* a read: the value is kept until here */
    return rc;
}

int rudo_weak_register(void **slot) {
    return weak_add(slot, NULL, false, "rudo_weak_register");
}

int rudo_weak_register_long(void **slot) {
    return weak_add(slot, NULL, true, "rudo_weak_register_long");
}

int rudo_weak_register_target(void **slot, const void *target) {
    if (!target)
        rudo__fatal("rudo_weak_register_target", "the target is NULL");
    return weak_add(slot, target, false, "rudo_weak_register_target");
}

int rudo_weak_register_long_target(void **slot, const void *target) {
    if (!target)
        rudo__fatal("rudo_weak_register_long_target", "the target is NULL");
    return weak_add(slot, target, true, "rudo_weak_register_long_target");
}

int rudo_weak_registered(void **slot) {
    rudo__heap *h = rudo__need_heap("rudo_weak_registered");
    rudo__roots *r = rudo__registry_begin(h, "rudo_weak_registered");
    int kind = rudo__slotset_contains(&r->weak, slot)        ? RUDO_WEAK_SHORT
               : rudo__slotset_contains(&r->weak_long, slot) ? RUDO_WEAK_LONG
                                                             : 0;
    rudo__registry_end(h);
    return kind;
}

int rudo_weak_unregister(void **slot) {
    const char *fn = "rudo_weak_unregister";
    rudo__heap *h = rudo__need_heap(fn);
    rudo__roots *r = rudo__registry_begin(h, fn);
    bool found = rudo__slotset_remove(&r->weak, slot) ||
                 rudo__slotset_remove(&r->weak_long, slot);
    rudo__registry_end(h);
    return found ? RUDO_OK : RUDO_ENOENT;
}

int rudo_weak_move(void **from, void **to) {
    const char *fn = "rudo_weak_move";
    rudo__heap *h = rudo__need_heap(fn);
    check_slot(to, fn);
    rudo__roots *r = rudo__registry_begin(h, fn);
    /* The target travels with the registration (NULL: none). */
    void *target = rudo__slotset_contains(&r->weak, from)
                       ? rudo__slotset_value(&r->weak, from)
                       : rudo__slotset_value(&r->weak_long, from);
    rudo__slotset *set = rudo__slotset_remove(&r->weak, from) ? &r->weak
                         : rudo__slotset_remove(&r->weak_long, from) ? &r->weak_long
                                                                     : NULL;
    int rc = RUDO_OK;
    if (!set) {
        rc = RUDO_ENOENT;
    } else if (registered(r, to)) {
        rudo__slotset_add_value(set, from, target, fn); /* as it was */
        rc = RUDO_EEXIST;
    } else {
        rudo__slotset_add_value(set, to, target, fn);
    }
    rudo__registry_end(h);
    return rc;
}

/* True if p lies in the heap's range but not in an allocated cell (a
 * free cell, or a page not in use, maybe unmapped): memory not to write. */
static bool in_free_cell(const rudo__heap *h, const void *p) {
    if ((uintptr_t)p - (uintptr_t)h->base >= h->reserve)
        return false; /* outside the heap: the program's memory */
    rudo__page *pg;
    size_t i;
    return !rudo__cell_of(h, p, &pg, &i) || !rudo__allocated(pg, i);
}

/* Judges registered slot i of set s (world stopped): clears it if its
 * target (the explicit one, else the slot's value) is in an unmarked
 * cell. A slot inside an unmarked heap object is reported (returns
 * false): the object may yet be kept for a finalizer (step 2), or it dies
 * now (step 4), and only step 4 can say which. Its value is judged all
 * the same in step 2 (`early`, short slots): whether the target is
 * reachable is decided by the closure from the roots, before finalization
 * marks what dying objects reach, so the finalizers of the object and of
 * the target find the slot NULL (rudo.h, rudo_weak_register); judged in
 * step 4 instead, a target kept for a finalizer would keep its short slot.
 * A slot with an explicit target is forgotten once cleared: the target's
 * memory will be reused, and a new object there must not clear the slot
 * again. */
static bool judge(rudo__heap *h, rudo__slotset *s, size_t i, bool early, uint64_t *cleared) {
    void **slot = rudo__slotset_at(s, i);
    if (!slot)
        return true;
    void *target = rudo__slotset_value_at(s, i);
    if (target && rudo__unmarked_cell(h, target)) {
        /* Decided by the target alone, wherever the slot lies: bdwgc's
         * GC_register_disappearing_link names the object holding the
         * link, and its finalizer must find the link cleared. A slot in
         * a cell that is not allocated is not written (free memory). */
        if (!in_free_cell(h, slot)) {
            *slot = NULL;
            ++*cleared;
        }
        rudo__slotset_remove_at(s, i);
        return true;
    }
    if (rudo__unmarked_cell(h, slot)) {
        /* Inside an unreachable object (a free cell is not written). */
        if (early && !target && *slot && !in_free_cell(h, slot) &&
            rudo__unmarked_cell(h, *slot)) {
            *slot = NULL;
            ++*cleared;
        }
        return false;
    }
    if (!target && *slot && rudo__unmarked_cell(h, *slot)) {
        *slot = NULL;
        ++*cleared;
    }
    return true;
}

/* Forgets slot i if its container is still unmarked, else judges it. */
static void judge_final(rudo__heap *h, rudo__slotset *s, size_t i, uint64_t *cleared) {
    if (!judge(h, s, i, false, cleared))
        rudo__slotset_remove_at(s, i);
}

uint64_t rudo__weak_clear(rudo__heap *h, bool after_finalization) {
    rudo__roots *r = &h->roots;
    uint64_t cleared = 0;
    rudo__lock_acquire(&r->lock);
    if (!after_finalization) {
        /* Step 2: every short slot; those inside unmarked objects are
         * remembered for step 4 (forgotten there if the object died), the
         * others are decided for good (marks only grow, and the world
         * stays stopped). */
        r->nskipped = 0;
        for (size_t i = 0; i < r->weak.cap; i++) {
            if (judge(h, &r->weak, i, true, &cleared))
                continue;
            if (r->nskipped == r->cap_skipped)
                r->skipped = rudo__grow(r->skipped, &r->cap_skipped, sizeof *r->skipped, 64,
                                       "rudo_collect", "out of memory for weak slots");
            r->skipped[r->nskipped++] = i;
        }
    } else {
        /* Step 4: the short slots step 2 left, and every long one. */
        for (size_t k = 0; k < r->nskipped; k++)
            judge_final(h, &r->weak, r->skipped[k], &cleared);
        r->nskipped = 0;
        for (size_t i = 0; i < r->weak_long.cap; i++)
            judge_final(h, &r->weak_long, i, &cleared);
    }
    rudo__lock_release(&r->lock);
    return cleared;
}

static void forget_inside(rudo__slotset *s, const char *lo, const char *hi) {
    for (size_t i = 0; i < s->cap; i++) {
        void **slot = rudo__slotset_at(s, i);
        if (slot && (const char *)slot >= lo && (const char *)slot < hi)
            rudo__slotset_remove_at(s, i);
    }
}

void rudo__weak_forget_inside(rudo__heap *h, void *lo, void *hi) {
    /* roots_lock alone, not rudo__registry_begin: the caller is attached
     * and running, so no collection is under way (it would have to stop
     * this thread first), and none starts before the lock is released (a
     * thread holding a rudo lock is not suspended by signal). Waiting for
     * a collection here, as the registry calls do, would let it free the
     * object rudo_free is about to free. */
    rudo__roots *r = &h->roots;
    rudo__lock_acquire(&r->lock);
    /* A walk of the tables: rudo_free of objects is rare next to the
     * allocations, and a program with no weak slots pays the lock only. */
    if (r->weak.live)
        forget_inside(&r->weak, lo, hi);
    if (r->weak_long.live)
        forget_inside(&r->weak_long, lo, hi);
    rudo__lock_release(&r->lock);
}
