/* slotset.c — the set of slot addresses (slotset.h). */
#include <stdint.h>
#include <stdlib.h>

#include "base/base.h"
#include "base/slotset.h"

/* Index of slot in the table, or of the entry where it would go (the first
 * tombstone on its probe path if for_insert). The table has a free entry:
 * it is at most half used. */
static size_t probe(const rudo__slotset *s, void **slot, bool for_insert) {
    size_t mask = s->cap - 1, i = rudo__hash_ptr(slot) & mask;
    size_t tomb = SIZE_MAX;
    for (;;) {
        if (s->slots[i] == NULL)
            return for_insert && tomb != SIZE_MAX ? tomb : i;
        if (s->slots[i] == RUDO_SLOTSET_TOMB) {
            if (tomb == SIZE_MAX)
                tomb = i;
        } else if (s->slots[i] == slot) {
            return i;
        }
        i = (i + 1) & mask;
    }
}

static void rehash(rudo__slotset *s, size_t cap, const char *fn) {
    void ***old = s->slots;
    size_t old_cap = s->cap;
    s->slots = calloc(cap, sizeof *s->slots);
    if (!s->slots)
        rudo__fatal(fn, "out of memory growing a slot table");
    s->cap = cap;
    s->used = s->live = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i] && old[i] != RUDO_SLOTSET_TOMB) {
            s->slots[probe(s, old[i], true)] = old[i];
            s->used++;
            s->live++;
        }
    }
    free(old);
}

bool rudo__slotset_add(rudo__slotset *s, void **slot, const char *fn) {
    /* At most half used, counting tombstones; grow only when the live
     * entries fill a quarter, else rehashing in place clears tombstones. */
    if ((s->used + 1) * 2 > s->cap)
        rehash(s, s->cap ? (s->live * 4 > s->cap ? s->cap * 2 : s->cap) : 64, fn);
    size_t i = probe(s, slot, false);
    if (s->slots[i] == slot)
        return false;
    i = probe(s, slot, true);
    if (s->slots[i] == NULL)
        s->used++;
    s->slots[i] = slot;
    s->live++;
    return true;
}

bool rudo__slotset_remove(rudo__slotset *s, void **slot) {
    if (!s->cap)
        return false;
    size_t i = probe(s, slot, false);
    if (s->slots[i] != slot)
        return false;
    rudo__slotset_remove_at(s, i);
    return true;
}

bool rudo__slotset_contains(const rudo__slotset *s, void **slot) {
    return s->cap && s->slots[probe(s, slot, false)] == slot;
}

void rudo__slotset_free(rudo__slotset *s) {
    free(s->slots);
    *s = (rudo__slotset){0};
}
