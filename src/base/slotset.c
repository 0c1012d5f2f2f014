/* slotset.c — the set of slot addresses (slotset.h). */
#include <stdint.h>

#include "base/base.h"
#include "base/slotset.h"

/* NULL and RUDO_SLOTSET_TOMB mark free entries, so they are never keys:
 * a lookup of either would find a free entry and report it present (a
 * NULL remove would then turn an empty entry into a tombstone, and a table
 * of tombstones has no free entry left to end a probe). */
static bool is_key(void **slot) { return slot != NULL && slot != RUDO_SLOTSET_TOMB; }

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

/* Rebuilds the table with cap entries; with_vals: with a value array
 * (kept if there was one). */
static void rehash(rudo__slotset *s, size_t cap, bool with_vals, const char *fn) {
    void ***old = s->slots;
    void **old_vals = s->vals;
    size_t old_cap = s->cap;
    /* Meta memory, not malloc: the verifier's sets grow and are freed with
     * the world stopped, and a thread suspended by signal inside malloc
     * holds the arena lock that calloc or free may wait for (a fuzzer's
     * hang: end_quarantine's free, in a RUDO_DEBUG build). */
    s->slots = rudo__meta_realloc_n(NULL, cap, sizeof *s->slots);
    s->vals = with_vals || old_vals ? rudo__meta_realloc_n(NULL, cap, sizeof *s->vals) : NULL;
    if (!s->slots || ((with_vals || old_vals) && !s->vals))
        rudo__fatal(fn, "out of memory growing a slot table");
    s->cap = cap;
    s->used = s->live = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i] && old[i] != RUDO_SLOTSET_TOMB) {
            size_t j = probe(s, old[i], true);
            s->slots[j] = old[i];
            if (old_vals)
                s->vals[j] = old_vals[i];
            s->used++;
            s->live++;
        }
    }
    rudo__meta_free(old);
    rudo__meta_free(old_vals);
}

bool rudo__slotset_add(rudo__slotset *s, void **slot, const char *fn) {
    return rudo__slotset_add_value(s, slot, NULL, fn);
}

bool rudo__slotset_add_value(rudo__slotset *s, void **slot, void *val, const char *fn) {
    if (!is_key(slot))
        rudo__fatal(fn, "slot %p cannot be registered", (void *)slot);
    /* At most half used, counting tombstones; grow only when the live
     * entries fill a quarter, else rehashing in place clears tombstones. */
    if ((s->used + 1) * 2 > s->cap)
        rehash(s, s->cap ? (s->live * 4 > s->cap ? s->cap * 2 : s->cap) : 64,
               val != NULL, fn);
    else if (val && !s->vals)
        rehash(s, s->cap, true, fn); /* the first value: add the array */
    size_t i = probe(s, slot, false);
    if (s->slots[i] == slot)
        return false;
    i = probe(s, slot, true);
    if (s->slots[i] == NULL)
        s->used++;
    s->slots[i] = slot;
    if (s->vals)
        s->vals[i] = val;
    s->live++;
    return true;
}

void *rudo__slotset_value(const rudo__slotset *s, void **slot) {
    if (!s->cap || !s->vals || !is_key(slot))
        return NULL;
    size_t i = probe(s, slot, false);
    return s->slots[i] == slot ? s->vals[i] : NULL;
}

bool rudo__slotset_remove(rudo__slotset *s, void **slot) {
    if (!s->cap || !is_key(slot))
        return false;
    size_t i = probe(s, slot, false);
    if (s->slots[i] != slot)
        return false;
    rudo__slotset_remove_at(s, i);
    return true;
}

bool rudo__slotset_contains(const rudo__slotset *s, void **slot) {
    return s->cap && is_key(slot) && s->slots[probe(s, slot, false)] == slot;
}

void rudo__slotset_free(rudo__slotset *s) {
    rudo__meta_free(s->slots);
    rudo__meta_free(s->vals);
    *s = (rudo__slotset){0};
}
