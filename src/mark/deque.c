/* deque.c — the work-stealing deque (see deque.h and docs/deque.md).
 *
 * The code follows Fig. 1 of Lê et al., PPoPP 2013 ("the paper"), with
 * signed indices (the paper's size_t `bottom - 1` wraps at 0) and a
 * power-of-two capacity (mask instead of %). Comments on memory orders
 * weaker than seq_cst say why they are enough. */
#include "mark/deque.h"
#include "base/base.h"

#include <assert.h>
#include <stdlib.h>

/* ThreadSanitizer does not model atomic_thread_fence, so it would not see
 * push's release fence + relaxed store of bottom as a release, and would
 * report the thief's reads of an object that the owner wrote before pushing
 * it. Under TSan only, that store is itself a release: strictly stronger,
 * same algorithm. */
#if defined(__SANITIZE_THREAD__)
#define RUDO__DEQUE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RUDO__DEQUE_TSAN 1
#endif
#endif
#ifdef RUDO__DEQUE_TSAN
#define PUSH_BOTTOM_ORDER memory_order_release
#else
#define PUSH_BOTTOM_ORDER memory_order_relaxed
#endif

static rudo__deque_array *array_new(size_t cap) {
    if (cap > (SIZE_MAX - sizeof(rudo__deque_array)) / sizeof(_Atomic(void *)))
        return NULL;
    /* Meta memory: deques grow while the world is stopped (base.h). */
    rudo__deque_array *a =
        rudo__meta_alloc(sizeof(rudo__deque_array) + cap * sizeof(_Atomic(void *)));
    if (a == NULL)
        return NULL;
    a->mask = cap - 1;
    a->retired_next = NULL;
    /* Not yet shared. Slots outside top..bottom-1 are read only by a thief
     * whose CAS then fails, but they must still hold a value. */
    for (size_t i = 0; i < cap; i++)
        atomic_init(&a->slot[i], NULL);
    return a;
}

bool rudo__deque_init(rudo__deque *q, size_t capacity) {
    size_t cap = 1;
    while (cap < capacity) {
        if (cap > SIZE_MAX / 2)
            return false;
        cap *= 2;
    }
    rudo__deque_array *a = array_new(cap);
    if (a == NULL)
        return false;
    /* Plain initialization: thieves get the deque only after some
     * synchronization with the owner (see deque.h). */
    atomic_init(&q->top, 0);
    atomic_init(&q->bottom, 0);
    atomic_init(&q->array, a);
    q->retired = NULL;
    q->high_water = 0;
    q->growths = 0;
    q->fail_next_growth = false;
    return true;
}

void rudo__deque_reclaim(rudo__deque *q) {
    rudo__deque_array *a = q->retired;
    while (a != NULL) {
        rudo__deque_array *next = a->retired_next;
        rudo__meta_free(a);
        a = next;
    }
    q->retired = NULL;
}

void rudo__deque_destroy(rudo__deque *q) {
    rudo__deque_reclaim(q);
    /* relaxed: no thief runs; the owner wrote `array` itself. */
    rudo__meta_free(atomic_load_explicit(&q->array, memory_order_relaxed));
    atomic_init(&q->array, NULL);
}

/* Owner: replaces the full array `old` (live indices t..b-1) by one twice
 * as large. Returns the new array, or NULL leaving everything unchanged. */
static rudo__deque_array *grow(rudo__deque *q, rudo__deque_array *old,
                               int64_t t, int64_t b) {
    if (q->fail_next_growth) {
        q->fail_next_growth = false;
        return NULL;
    }
    size_t cap = old->mask + 1;
    rudo__deque_array *a = cap > SIZE_MAX / 2 ? NULL : array_new(cap * 2);
    if (a == NULL)
        return NULL;
    for (int64_t i = t; i < b; i++) {
        /* relaxed load: the owner itself wrote every slot of `old`.
         * relaxed store: `a` is not shared yet; the release store of
         * q->array below publishes these writes. */
        void *x = atomic_load_explicit(&old->slot[(size_t)i & old->mask],
                                       memory_order_relaxed);
        atomic_store_explicit(&a->slot[(size_t)i & a->mask], x,
                              memory_order_relaxed);
    }
    /* release: pairs with the acquire load of q->array in steal (the paper's
     * consume), so a thief that sees `a` sees the copied slots. Thieves
     * still holding `old` read valid items from it: `old` is never written
     * again, and is not freed until rudo__deque_reclaim(). */
    atomic_store_explicit(&q->array, a, memory_order_release);
    old->retired_next = q->retired;
    q->retired = old;
    q->growths++;
    return a;
}

bool rudo__deque_push(rudo__deque *q, void *item) {
    assert(item != NULL);
    /* relaxed: only the owner writes bottom. */
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    /* acquire (as in the paper): pairs with the seq_cst CAS of the thief
     * that advanced top, so that thief's read of slot t happens before we
     * overwrite that slot with a later index (wrap-around). With relaxed, the
     * thief could read the new item and a CAS that then succeeds would
     * take the wrong item. */
    int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
    /* relaxed: only the owner writes array. */
    rudo__deque_array *a = atomic_load_explicit(&q->array, memory_order_relaxed);
    if ((size_t)(b - t) > a->mask) { /* full */
        a = grow(q, a, t, b);
        if (a == NULL)
            return false;
    }
    /* relaxed: published by the release fence + store of bottom below. */
    atomic_store_explicit(&a->slot[(size_t)b & a->mask], item,
                          memory_order_relaxed);
    /* release fence: a thief whose acquire load of bottom reads b+1 (or a
     * later owner store) sees the slot write and everything the owner did
     * before the push (e.g. marking the object). */
    atomic_thread_fence(memory_order_release);
    /* relaxed (paper): the fence above gives it release semantics. */
    atomic_store_explicit(&q->bottom, b + 1, PUSH_BOTTOM_ORDER);
    if ((size_t)(b + 1 - t) > q->high_water)
        q->high_water = (size_t)(b + 1 - t);
    return true;
}

void *rudo__deque_pop(rudo__deque *q) {
    /* relaxed: only the owner writes bottom and array. */
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed) - 1;
    rudo__deque_array *a = atomic_load_explicit(&q->array, memory_order_relaxed);
    /* relaxed: the seq_cst fence below orders this store before the load of
     * top; that store->load order is all the claim on index b needs. */
    atomic_store_explicit(&q->bottom, b, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    /* relaxed: ordered by the fence; a thief that took index b has fenced
     * too, so either we see its top or it sees our bottom (the paper's
     * argument for the pair of seq_cst fences). */
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    if (t > b) { /* empty */
        /* relaxed: restores bottom == top; a thief seeing b or b+1 finds
         * the deque empty either way. */
        atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
        return NULL;
    }
    /* relaxed: the owner wrote this slot itself. */
    void *x = atomic_load_explicit(&a->slot[(size_t)b & a->mask],
                                   memory_order_relaxed);
    if (t == b) { /* the last item: race thieves for it on top */
        /* failure relaxed: we only learn that a thief won; nothing read
         * after depends on it. */
        if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1,
                                                     memory_order_seq_cst,
                                                     memory_order_relaxed))
            x = NULL;
        /* relaxed: the deque is empty (top == b + 1 either way); nothing is
         * published by this store. */
        atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
    }
    return x;
}

rudo__steal_result rudo__deque_steal(rudo__deque *q, void **item) {
    /* acquire: pairs with the seq_cst CAS that wrote this top (a pop of the
     * last item or another steal), so the bottom we read next is no older
     * than the one that thread saw: a new top is never combined with a
     * stale, larger bottom. */
    int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
    atomic_thread_fence(memory_order_seq_cst);
    /* acquire: pairs with push's release fence, making slot t's item (and
     * what the owner wrote before pushing it) visible. */
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_acquire);
    if (t >= b)
        return RUDO__STEAL_EMPTY;
    /* acquire (the paper's consume): pairs with the release store in grow,
     * so a new array's copied slots are visible. */
    rudo__deque_array *a = atomic_load_explicit(&q->array, memory_order_acquire);
    /* relaxed: made visible by the acquire load of bottom (or of array);
     * read before the CAS, as in the paper: after a successful CAS the owner
     * may overwrite the slot. */
    void *x = atomic_load_explicit(&a->slot[(size_t)t & a->mask],
                                   memory_order_relaxed);
    /* failure relaxed: we give up and return RETRY without using t. */
    if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1,
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed))
        return RUDO__STEAL_RETRY;
    *item = x;
    return RUDO__STEAL_OK;
}

size_t rudo__deque_capacity(rudo__deque *q) {
    /* relaxed: only the owner writes array. */
    return atomic_load_explicit(&q->array, memory_order_relaxed)->mask + 1;
}

size_t rudo__deque_high_water(const rudo__deque *q) { return q->high_water; }

size_t rudo__deque_growths(const rudo__deque *q) { return q->growths; }

void rudo__deque_fail_next_growth(rudo__deque *q) { q->fail_next_growth = true; }
