/* slotset.h — a set of slot addresses (void **) (internal): open
 * addressing with linear probing and tombstones. The root registry keeps
 * its precise roots in one, the weak registry its weak slots. Not
 * synchronised: the owner's lock guards it. */
#ifndef RUDO_SLOTSET_H
#define RUDO_SLOTSET_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A hash of an address, for open-addressing tables keyed by pointers
 * (splitmix64's finalizer: addresses share their low and high bits). */
static inline size_t rudo__hash_ptr(const void *p) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

typedef struct rudo__slotset {
    void ***slots;  /* table; NULL = empty, RUDO_SLOTSET_TOMB = deleted */
    void **vals;    /* a value per entry, or NULL until one is non-NULL
                     * (rudo__slotset_add_value: the weak registry's
                     * explicit targets); an entry without one reads NULL */
    size_t cap;     /* power of two, or 0 */
    size_t used;    /* live + tombstones */
    size_t live;
} rudo__slotset;

#define RUDO_SLOTSET_TOMB ((void **)1)

/* Adds slot; false (and nothing changes) if it is there already. Aborts,
 * naming fn, if memory for a bigger table cannot be had, or if slot is NULL
 * or RUDO_SLOTSET_TOMB (callers refuse those with their own message; the
 * lookups below report them absent). */
bool rudo__slotset_add(rudo__slotset *s, void **slot, const char *fn);
/* As rudo__slotset_add, and gives the entry the value val (NULL: none).
 * An entry added by rudo__slotset_add has the value NULL. */
bool rudo__slotset_add_value(rudo__slotset *s, void **slot, void *val, const char *fn);
/* The value of slot's entry (NULL if it has none or is not there). */
void *rudo__slotset_value(const rudo__slotset *s, void **slot);
/* Removes slot; false if it was not there. */
bool rudo__slotset_remove(rudo__slotset *s, void **slot);
/* Whether slot is in the set. */
bool rudo__slotset_contains(const rudo__slotset *s, void **slot);
/* Frees the table; the set is empty after. */
void rudo__slotset_free(rudo__slotset *s);

/* The slot in table entry i (0 <= i < cap), NULL if the entry is free:
 * for (size_t i = 0; i < s->cap; i++) if ((x = rudo__slotset_at(s, i))) */
static inline void **rudo__slotset_at(const rudo__slotset *s, size_t i) {
    void **x = s->slots[i];
    return x == RUDO_SLOTSET_TOMB ? NULL : x;
}
/* The value of entry i (as rudo__slotset_at). */
static inline void *rudo__slotset_value_at(const rudo__slotset *s, size_t i) {
    return s->vals ? s->vals[i] : NULL;
}
/* Removes the slot in entry i (from an iteration as above). */
static inline void rudo__slotset_remove_at(rudo__slotset *s, size_t i) {
    s->slots[i] = RUDO_SLOTSET_TOMB;
    s->live--;
}

#endif
