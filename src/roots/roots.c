/* roots.c — registered roots (precise slots and conservative ranges) and
 * root enumeration. */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "platform/platform.h"
#include "roots/roots.h"

/* The registry (rudo__roots, heap.h): an open-addressing hash set of slot
 * addresses (linear probing, tombstones) and an array of ranges. */
#define TOMB ((void **)1)

void rudo__roots_init(rudo__heap *h) {
    rudo__lock_init(&h->roots.lock, RUDO_RANK_ROOTS, "roots_lock");
}

void rudo__roots_destroy(rudo__heap *h) {
    rudo__roots *r = &h->roots;
    free(r->slots);
    free(r->ranges);
    r->slots = NULL;
    r->ranges = NULL;
    r->cap = r->used = r->live = r->nranges = r->cap_ranges = 0;
    rudo__lock_destroy(&r->lock);
}

static size_t hash_slot(void **s) {
    uint64_t x = (uint64_t)(uintptr_t)s;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

/* Index of s in the table, or of the empty cell where it would go. */
static size_t probe(const rudo__roots *r, void **s, bool for_insert) {
    size_t mask = r->cap - 1, i = hash_slot(s) & mask;
    size_t tomb = SIZE_MAX;
    for (;;) {
        if (r->slots[i] == NULL)
            return for_insert && tomb != SIZE_MAX ? tomb : i;
        if (r->slots[i] == TOMB) {
            if (tomb == SIZE_MAX)
                tomb = i;
        } else if (r->slots[i] == s) {
            return i;
        }
        i = (i + 1) & mask;
    }
}

static void rehash(rudo__roots *r, size_t cap) {
    void ***old = r->slots;
    size_t old_cap = r->cap;
    r->slots = calloc(cap, sizeof *r->slots);
    if (!r->slots)
        rudo__fatal("rudo_root_add", "out of memory growing the root table");
    r->cap = cap;
    r->used = r->live = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i] && old[i] != TOMB) {
            r->slots[probe(r, old[i], true)] = old[i];
            r->used++;
            r->live++;
        }
    }
    free(old);
}

/* The registry changes only while no collection runs: markers read the
 * registered slots after the enumeration released roots_lock, so a slot
 * removed (and freed) meanwhile would be read after its end. Returns the
 * registry, locked. */
static rudo__roots *registry_begin(rudo__heap *h) {
    rudo__lock_idle(h);
    rudo__lock_acquire(&h->roots.lock);
    return &h->roots;
}

static void registry_end(rudo__heap *h) {
    rudo__lock_release(&h->roots.lock);
    rudo__lock_release(&h->world.lock);
}

void rudo_root_add(void **slot) {
    const char *fn = "rudo_root_add";
    rudo__heap *h = rudo__need_heap(fn);
    if (!slot)
        rudo__fatal(fn, "slot is NULL");
    rudo__roots *r = registry_begin(h);
    if ((r->used + 1) * 2 > r->cap)
        rehash(r, r->cap ? (r->live * 4 > r->cap ? r->cap * 2 : r->cap) : 64);
    size_t i = probe(r, slot, false);
    if (r->slots[i] == slot) {
        registry_end(h);
        rudo__fatal(fn, "slot %p is already a root", (void *)slot);
    }
    i = probe(r, slot, true);
    if (r->slots[i] == NULL)
        r->used++;
    r->slots[i] = slot;
    r->live++;
    registry_end(h);
}

int rudo_root_remove(void **slot) {
    const char *fn = "rudo_root_remove";
    rudo__heap *h = rudo__need_heap(fn);
    rudo__roots *r = registry_begin(h);
    size_t i = r->cap ? probe(r, slot, false) : 0;
    if (!r->cap || r->slots[i] != slot) {
        registry_end(h);
        rudo__warn(fn, "slot %p was never added", (void *)slot);
        return RUDO_ENOENT;
    }
    r->slots[i] = TOMB;
    r->live--;
    registry_end(h);
    return RUDO_OK;
}

void rudo_root_add_range(void *start, void *end) {
    const char *fn = "rudo_root_add_range";
    rudo__heap *h = rudo__need_heap(fn);
    if ((char *)start > (char *)end)
        rudo__fatal(fn, "start %p is above end %p", start, end);
    rudo__roots *r = registry_begin(h);
    if (r->nranges == r->cap_ranges) {
        size_t cap = r->cap_ranges ? r->cap_ranges * 2 : 16;
        struct rudo__root_range *n = realloc(r->ranges, cap * sizeof *n);
        if (!n)
            rudo__fatal(fn, "out of memory");
        r->ranges = n;
        r->cap_ranges = cap;
    }
    r->ranges[r->nranges++] = (struct rudo__root_range){start, end};
    registry_end(h);
}

int rudo_root_remove_range(void *start) {
    const char *fn = "rudo_root_remove_range";
    rudo__heap *h = rudo__need_heap(fn);
    rudo__roots *r = registry_begin(h);
    for (size_t i = 0; i < r->nranges; i++) {
        if (r->ranges[i].lo == start) {
            r->ranges[i] = r->ranges[--r->nranges];
            registry_end(h);
            return RUDO_OK;
        }
    }
    registry_end(h);
    rudo__warn(fn, "no range starts at %p", start);
    return RUDO_ENOENT;
}

static void static_segment(void *lo, void *hi, void *arg) {
    rudo__root_visitor *v = arg;
    v->range(v, lo, hi);
}

void rudo__roots_enumerate(rudo__heap *h, rudo__root_visitor *v) {
    for (rudo__mutator *m = h->world.mutators; m; m = m->next) {
        if (h->cfg.scan_stacks) {
            /* The copy of the frames that hold the callee-saved registers,
             * then the stack above them (rudo__capture_roots). */
            v->range(v, m->spill, m->spill + m->nspill);
            v->range(v, m->stack_sp, m->stack_hi);
            /* Static TLS blocks; skip one the stack range already covers
             * (glibc's threads keep theirs at the top of the stack block),
             * which would only be scanned twice. */
            for (size_t i = 0; i < m->ntls; i++) {
                char *lo = m->tls[i].lo, *hi = m->tls[i].hi;
                if (lo >= (char *)m->stack_sp && hi <= (char *)m->stack_hi)
                    continue;
                v->range(v, lo, hi);
            }
        }
        rudo__handles_enumerate(m, v);
    }
    rudo__roots *r = &h->roots;
    rudo__lock_acquire(&r->lock);
    for (size_t i = 0; i < r->cap; i++)
        if (r->slots[i] && r->slots[i] != TOMB)
            v->slot(v, r->slots[i]);
    for (size_t i = 0; i < r->nranges; i++)
        v->range(v, r->ranges[i].lo, r->ranges[i].hi);
    rudo__lock_release(&r->lock);
    if (h->cfg.scan_static_data)
        rudo__os_static_segments(static_segment, v);
}
