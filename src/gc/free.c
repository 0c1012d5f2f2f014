/* free.c — rudo_free: an object the program knows is dead goes back at
 * once, without waiting for a collection to find it unreachable.
 *
 * What "back" means depends on the page (heap.h, page invariants):
 *  - a small page that is not current: its alloc bits are exact (or, for
 *    an unswept page, alloc & mark), so clearing the cell's alloc, mark and
 *    fin bits makes it free; the cell is zeroed (a free cell is zero but
 *    for the link its page's next sweep writes), and the page goes on its
 *    avail list if it was full, so the next allocation of its class may
 *    reuse the cell. The mark bit is cleared too: with sticky mark bits a
 *    set one would mean "old, survived". A page stashed in an allocator's
 *    batch (alloc.c) is treated so too, but stays in the stash.
 *  - a current page (an allocator's): cells below the allocator's free-list
 *    head count as allocated whatever their bits say, and the list cannot
 *    take the cell back out of address order. The object is zeroed, so it
 *    keeps nothing alive, and its fin bit set, so its kind's finalizer does
 *    not run on it; the next collection finds it unreachable and reclaims
 *    it.
 *  - a large object: its span goes back to the free pool at once.
 *
 * Verification (RUDO_DEBUG builds, RUDO_VERIFY=1): nothing is reused
 * before the next collection. The object stays allocated, quarantined in
 * heap->freed, its contents poisoned (zeroed for trace-callback kinds,
 * whose callbacks interpret the contents); the verifier reports a marked
 * object that still refers to it, then ends the quarantine (verify.c). */
#include <string.h>

#include "final/final.h"
#include "gc/gc.h"
#include "platform/platform.h"
#include "roots/roots.h"

/* The object's page, cell index and whether it is a current page, under
 * heap_lock; aborts unless obj is the base of an allocated object. */
static rudo__page *freed_page(rudo__heap *h, void *obj, size_t *ip,
                              const char *fn) {
    rudo__page *p = NULL;
    if (rudo__find_object(h, obj, &p) != obj)
        rudo__fatal(fn, "%p is not the base of an allocated heap object "
                    "(freed already, an interior pointer, or not from rudo)",
                    obj);
    *ip = p->type == RUDO_PAGE_SMALL
              ? (size_t)((char *)obj - rudo__page_addr(p)) / p->cell_size
              : 0;
    return p;
}

/* Clears bit i of each of the page's bitmaps. */
static void clear_bits(rudo__page *p, size_t i) {
    uint64_t keep = ~((uint64_t)1 << (i % 64));
    struct rudo__bits *b = &p->bits[i / 64];
    rudo__st(&b->alloc, rudo__ld(&b->alloc) & keep);
    rudo__st(&b->mark, rudo__ld(&b->mark) & keep);
    p->fin[i / 64] &= keep;
}

static void quarantine(rudo__heap *h, rudo__page *p, size_t i, void *obj,
                       const char *fn) {
    if (!rudo__slotset_add(&h->freed, obj, fn))
        rudo__fatal(fn, "%p was freed already (double free)", obj);
    /* The finalizer bit: its kind's finalizer does not run on it. */
    p->fin[i / 64] |= (uint64_t)1 << (i % 64);
    size_t n = p->cell_size;
    if (p->type == RUDO_PAGE_LARGE && n > RUDO_PAGE_SIZE)
        n = RUDO_PAGE_SIZE; /* as poison mode: the first page */
    bool callback = h->kinds[p->kind].tracing == RUDO_TRACE_CALLBACK;
    memset(obj, callback ? 0 : RUDO_POISON_BYTE, n);
}

void rudo_free(void *obj) {
    const char *fn = "rudo_free";
    if (!obj)
        return;
    /* Attached and running: no collection runs until this thread reaches a
     * safepoint, so the page states below hold while it works. */
    rudo__need_mutator(fn);
    rudo__check_context(fn, "free objects");
    rudo__heap *h = rudo__the_heap;
    size_t i;
    size_t size = freed_page(h, obj, &i, fn)->cell_size;
    /* A per-object finalizer or guardian registration ends unrun (as
     * bdwgc's GC_free). Before heap_lock: final_lock is not nested in it. */
    rudo__final_unregister(h, obj);
    /* Weak slots inside it are forgotten, as for an object that dies in a
     * collection (rudo.h): its cell may be reused before the next one,
     * which would clear a word of the new object (found by a fuzzer). */
    rudo__weak_forget_inside(h, obj, (char *)obj + size);
    rudo__page *p;
    void **ol;
    bool stashed = false;
    for (;;) {
        rudo__lock_acquire(&h->heap_lock);
        p = freed_page(h, obj, &i, fn); /* again: a racing free */
        /* Acquire: a page seen retired (NULL) is seen with the alloc bits
         * its retirement wrote (retire_page runs without heap_lock). */
        ol = atomic_load_explicit(&p->owner_list, memory_order_acquire);
        /* In an allocator's batch (alloc.c): its owner claims it without
         * heap_lock, so it is held off (FREEING) while the bits change
         * below; then it is an avail page that stays where it is. A
         * failed swap found it claimed: the owner is sweeping it (or it
         * has swept it since: acquire then, as the load above). The
         * release store of STASHED below publishes the changes to the
         * owner's claim. */
        if (ol == RUDO_OWNER_STASHED &&
            atomic_compare_exchange_strong_explicit(&p->owner_list, &ol,
                                                    RUDO_OWNER_FREEING,
                                                    memory_order_acquire,
                                                    memory_order_acquire)) {
            stashed = true;
            ol = NULL;
            break;
        }
        if (ol != RUDO_OWNER_CLAIMED)
            break;
        /* An allocator is sweeping the page to make it current: a matter
         * of one page's sweep, with no safepoint in it (alloc.c). */
        rudo__lock_release(&h->heap_lock);
        rudo__cpu_relax();
    }
    if (h->verify) {
        quarantine(h, p, i, obj, fn);
    } else if (p->type == RUDO_PAGE_LARGE) {
        rudo__list_remove(&h->large, p);
        rudo__pages_free(p, p->span);
    } else if (ol) {
        /* Current. Its owner may retire it meanwhile (without heap_lock):
         * the cell then counts as allocated all the same, with its fin bit
         * set (the owner writes no fin bit), until the next collection.
         * Its mark bit goes: with generations a set mark is what makes an
         * object old, and a minor collection keeps every old object, so
         * an old object freed here stayed allocated until the next major
         * one (the owner writes no mark bit either, and no collection
         * runs while this thread does). */
        memset(obj, 0, p->cell_size);
        p->fin[i / 64] |= (uint64_t)1 << (i % 64);
        struct rudo__bits *b = &p->bits[i / 64];
        rudo__st(&b->mark, rudo__ld(&b->mark) & ~((uint64_t)1 << (i % 64)));
    } else {
        memset(obj, 0, p->cell_size);
        clear_bits(p, i);
        if (!stashed)
            rudo__avail_add(h, p); /* nothing if listed already */
    }
    if (stashed)
        atomic_store_explicit(&p->owner_list, RUDO_OWNER_STASHED, memory_order_release);
    rudo__lock_release(&h->heap_lock);
}
