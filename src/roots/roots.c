/* roots.c — registered roots (precise slots and conservative ranges) and
 * root enumeration. */
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "platform/platform.h"
#include "roots/roots.h"
#include "sweep/sweep.h"

/* The registry: an open-addressing hash set of slot addresses (linear
 * probing, tombstones) and an array of ranges, under roots_lock. */
#define TOMB ((void **)1)

static rudo__lock roots_lock;
static void ***slots;      /* table; NULL = empty, TOMB = deleted */
static size_t slots_cap;   /* power of two, or 0 */
static size_t slots_used;  /* live + tombstones */
static size_t slots_live;
static struct range { char *lo, *hi; } *ranges;
static size_t nranges, cap_ranges;

void rudo__roots_init(rudo__heap *h) {
    (void)h;
    rudo__lock_init(&roots_lock, RUDO_RANK_ROOTS, "roots_lock");
}

void rudo__roots_destroy(rudo__heap *h) {
    (void)h;
    free(slots);
    free(ranges);
    slots = NULL;
    ranges = NULL;
    slots_cap = slots_used = slots_live = nranges = cap_ranges = 0;
    rudo__lock_destroy(&roots_lock);
}

static size_t hash_slot(void **s) {
    uint64_t x = (uint64_t)(uintptr_t)s;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

/* Index of s in the table, or of the empty cell where it would go. */
static size_t probe(void **s, bool for_insert) {
    size_t mask = slots_cap - 1, i = hash_slot(s) & mask;
    size_t tomb = SIZE_MAX;
    for (;;) {
        if (slots[i] == NULL)
            return for_insert && tomb != SIZE_MAX ? tomb : i;
        if (slots[i] == TOMB) {
            if (tomb == SIZE_MAX)
                tomb = i;
        } else if (slots[i] == s) {
            return i;
        }
        i = (i + 1) & mask;
    }
}

static void rehash(size_t cap) {
    void ***old = slots;
    size_t old_cap = slots_cap;
    slots = calloc(cap, sizeof *slots);
    if (!slots)
        rudo__fatal("rudo_root_add", "out of memory growing the root table");
    slots_cap = cap;
    slots_used = slots_live = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i] && old[i] != TOMB) {
            slots[probe(old[i], true)] = old[i];
            slots_used++;
            slots_live++;
        }
    }
    free(old);
}

/* The registry changes only while no collection runs: markers read the
 * registered slots after the enumeration released roots_lock, so a slot
 * removed (and freed) meanwhile would be read after its end. */
static void registry_begin(rudo__heap *h) {
    rudo__lock_idle(h);
    rudo__lock_acquire(&roots_lock);
}

static void registry_end(rudo__heap *h) {
    rudo__lock_release(&roots_lock);
    rudo__lock_release(&h->gc_lock);
}

void rudo_root_add(void **slot) {
    const char *fn = "rudo_root_add";
    rudo__heap *h = rudo__need_heap(fn);
    if (!slot)
        rudo__fatal(fn, "slot is NULL");
    registry_begin(h);
    if ((slots_used + 1) * 2 > slots_cap)
        rehash(slots_cap ? (slots_live * 4 > slots_cap ? slots_cap * 2 : slots_cap)
                         : 64);
    size_t i = probe(slot, false);
    if (slots[i] == slot) {
        registry_end(h);
        rudo__fatal(fn, "slot %p is already a root", (void *)slot);
    }
    i = probe(slot, true);
    if (slots[i] == NULL)
        slots_used++;
    slots[i] = slot;
    slots_live++;
    registry_end(h);
}

int rudo_root_remove(void **slot) {
    const char *fn = "rudo_root_remove";
    rudo__heap *h = rudo__need_heap(fn);
    registry_begin(h);
    size_t i = slots_cap ? probe(slot, false) : 0;
    if (!slots_cap || slots[i] != slot) {
        registry_end(h);
        rudo__warn(fn, "slot %p was never added", (void *)slot);
        return RUDO_ENOENT;
    }
    slots[i] = TOMB;
    slots_live--;
    registry_end(h);
    return RUDO_OK;
}

void rudo_root_add_range(void *start, void *end) {
    const char *fn = "rudo_root_add_range";
    rudo__heap *h = rudo__need_heap(fn);
    if ((char *)start > (char *)end)
        rudo__fatal(fn, "start %p is above end %p", start, end);
    registry_begin(h);
    if (nranges == cap_ranges) {
        size_t cap = cap_ranges ? cap_ranges * 2 : 16;
        struct range *r = realloc(ranges, cap * sizeof *r);
        if (!r)
            rudo__fatal(fn, "out of memory");
        ranges = r;
        cap_ranges = cap;
    }
    ranges[nranges++] = (struct range){start, end};
    registry_end(h);
}

int rudo_root_remove_range(void *start) {
    const char *fn = "rudo_root_remove_range";
    rudo__heap *h = rudo__need_heap(fn);
    registry_begin(h);
    for (size_t i = 0; i < nranges; i++) {
        if (ranges[i].lo == start) {
            ranges[i] = ranges[--nranges];
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
    for (rudo__mutator *m = h->mutators; m; m = m->next) {
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
    rudo__lock_acquire(&roots_lock);
    for (size_t i = 0; i < slots_cap; i++)
        if (slots[i] && slots[i] != TOMB)
            v->slot(v, slots[i]);
    for (size_t i = 0; i < nranges; i++)
        v->range(v, ranges[i].lo, ranges[i].hi);
    rudo__lock_release(&roots_lock);
    if (h->cfg.scan_static_data)
        rudo__os_static_segments(static_segment, v);
    rudo__final_enumerate(h, v);
}
