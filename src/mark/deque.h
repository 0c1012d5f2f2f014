/* deque.h — the work-stealing deque of the parallel marker (internal).
 *
 * A Chase-Lev deque with the C11 memory orders of Lê, Pop, Cohen and
 * Zappa Nardelli, "Correct and Efficient Work-Stealing for Weak Memory
 * Models" (PPoPP 2013), Fig. 1. One thread, the *owner*, pushes and pops at
 * the bottom; any other thread (a *thief*) steals at the top. docs/deque.md
 * explains the algorithm and every fence.
 *
 * Items are `void *` (object pointers). NULL is not a valid item: pop
 * returns NULL to mean "empty".
 *
 * State. `top` and `bottom` are 64-bit signed indices (signed, so that
 * bottom - 1 at 0 is -1, not a huge value). `top` only grows, by a CAS;
 * `bottom` is written only by the owner: +1 per push, -1 per pop.
 * `array` is a circular buffer whose capacity is a power of two.
 *
 * Invariant (owner's view, outside a pop):
 *     0 <= bottom - top <= capacity,
 *     the live items are indices top .. bottom-1, index i in
 *     array->slot[i & (capacity - 1)];
 *     the owner's item at index i was pushed before the one at i + 1.
 * Thieves see a possibly stale `top`/`bottom` pair; the protocol below makes
 * that harmless.
 *
 * Protocol.
 *  - push (owner): read bottom b, top t; if b - t == capacity, grow (copy
 *    t..b-1 into an array twice as large, publish it, retire the old one);
 *    write the item into slot b; release fence; bottom = b + 1.
 *  - pop (owner): bottom = b - 1 (claims index b-1); seq_cst fence; read top
 *    t. If t < b-1 the item is the owner's without contention. If t == b-1 it
 *    is the last item and thieves may be after it: CAS top t -> t+1 decides
 *    (the loser sees empty), then bottom = b. If t > b-1 the deque was
 *    empty: bottom = b.
 *  - steal (thief): read top t; seq_cst fence; read bottom b; if t >= b the
 *    deque is empty. Otherwise read the item at index t, then CAS top
 *    t -> t+1; success means the item is ours, failure means another thief
 *    or the owner took index t first: the caller may retry.
 *  The two seq_cst fences order "pop writes bottom, then reads top" against
 *  "steal reads top, then reads bottom", so the owner and a thief cannot both
 *  believe they got the last item without the CAS deciding.
 *
 * Growth and reclamation. Arrays replaced by growth are never written again
 * but a thief may still be reading one; they go on a retired list that
 * rudo__deque_reclaim() frees. Call it only when no thief can be inside
 * rudo__deque_steal() on this deque (the marker: at the end of the mark
 * phase). If growth cannot get memory, push returns false and changes
 * nothing; the caller must keep the item some other way (slow path).
 *
 * Threads. init, destroy, reclaim, push, pop, and the statistics functions
 * are for the owner only (init/destroy/reclaim also with no thief running).
 * steal and size_hint may be called by any thread. The deque must be handed
 * to thieves with some synchronization after init (e.g. pthread_create).
 *
 * Layout. `top` (written by thieves) and `bottom` (written by the owner) are
 * on separate 64-byte cache lines. The struct is 64-byte aligned: allocate it
 * statically, on the stack, inside a struct, or with
 * aligned_alloc(alignof(rudo__deque), sizeof(rudo__deque)) — not plain
 * malloc. */
#ifndef RUDO_MARK_DEQUE_H
#define RUDO_MARK_DEQUE_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rudo__deque_array rudo__deque_array;
struct rudo__deque_array {
    size_t mask;                     /* capacity - 1 (capacity: power of 2) */
    rudo__deque_array *retired_next; /* owner only: next on the retired list */
    _Atomic(void *) slot[];
};

typedef struct rudo__deque {
    alignas(64) _Atomic int64_t top; /* next index to steal; CAS only */
    alignas(64) _Atomic int64_t bottom; /* next index to push; owner writes */
    _Atomic(rudo__deque_array *) array; /* owner writes (growth) */
    /* Owner only. */
    rudo__deque_array *retired; /* arrays replaced by growth */
    size_t high_water;          /* largest bottom - top seen by a push */
    size_t growths;             /* number of successful growths */
    bool fail_next_growth;      /* test hook */
} rudo__deque;

typedef enum rudo__steal_result {
    RUDO__STEAL_EMPTY = 0, /* the deque looked empty */
    RUDO__STEAL_OK,        /* *item holds the stolen item */
    RUDO__STEAL_RETRY,     /* lost a race for the top item; try again */
} rudo__steal_result;

/* Makes an empty deque whose array holds at least `capacity` items (rounded
 * up to a power of two, at least 1). Returns false if memory is short. */
bool rudo__deque_init(rudo__deque *q, size_t capacity);
/* Frees the array and the retired arrays. No thief may be running. */
void rudo__deque_destroy(rudo__deque *q);

/* Owner: pushes item (not NULL). Returns false, leaving the deque
 * unchanged, if the array was full and could not grow. */
bool rudo__deque_push(rudo__deque *q, void *item);
/* Owner: removes and returns the newest item, or NULL if empty. */
void *rudo__deque_pop(rudo__deque *q);
/* Any thread: tries to remove the oldest item into *item. */
rudo__steal_result rudo__deque_steal(rudo__deque *q, void **item);
/* Any thread: a racy estimate of the number of items. Exact for the
 * owner when it says 0 (only the owner pushes). Inline: the marker looks
 * at its own deque once per object on a chain (mark.c). */
static inline size_t rudo__deque_size_hint(rudo__deque *q) {
    /* relaxed: only an estimate; nothing is read through these values. */
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    return b > t ? (size_t)(b - t) : 0;
}

/* Owner, no thief running: frees the arrays retired by growth. */
void rudo__deque_reclaim(rudo__deque *q);

/* Owner: statistics since init. */
size_t rudo__deque_capacity(rudo__deque *q);
size_t rudo__deque_high_water(const rudo__deque *q);
size_t rudo__deque_growths(const rudo__deque *q);

/* Test hook (owner): the next growth fails as if malloc returned NULL. */
void rudo__deque_fail_next_growth(rudo__deque *q);

#endif
