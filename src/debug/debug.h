/* debug.h — heap verifier and test hooks (internal).
 *
 * The verifier is ordinary code compiled into every build; it runs after
 * each collection when the library is built with RUDO_DEBUG or when the
 * environment sets RUDO_VERIFY=1. Tests call the hooks directly (they link
 * the static library). */
#ifndef RUDO_DEBUG_H
#define RUDO_DEBUG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

/* Whether the object whose base is obj was marked by the last collection
 * (false if that collection freed its page). Aborts if obj is outside the
 * heap's pages. */
bool rudo__debug_is_marked(const void *obj);

/* Verifies the heap now (after a collection's marking: every slot of every
 * marked object points to a marked object or outside the heap; no free cell
 * is marked). Aborts with a message on the first violation. Call from an
 * attached thread with no collection running. */
void rudo__debug_verify_heap(void);

/* The remembered-set check of generational mode, before a minor
 * collection marks anything: every pointer from an old (marked) object of
 * a kind with a barrier to a young (allocated, unmarked) one lies on a
 * dirty card. Aborts naming the object, its kind, the slot and the young
 * object otherwise (a store that skipped rudo_write). World stopped.
 * With hold (some thread was stopped by signal, or by a deferred stop),
 * such a slot is only noted: rudo.h allows that thread to be between its
 * plain stores and rudo_write_range, the young object still in its
 * registers or stack. rudo__debug_verify_cards_held, after the marking
 * closure, then aborts for each noted slot whose young object is still
 * unmarked (the collection would free it) and forgets the rest. */
void rudo__debug_verify_cards(bool hold);
void rudo__debug_verify_cards_held(void);

/* Number of pages in the free pool and number of pages in use. */
size_t rudo__debug_free_pages(void);
size_t rudo__debug_used_pages(void);

/* Verifier test hooks: set or clear the mark bit of the cell containing
 * addr (it must be in a heap page), to corrupt the mark state on purpose. */
void rudo__debug_set_mark(const void *addr, bool marked);

/* Lock-order test hook: takes heap_lock, then gc_lock (the wrong order),
 * then releases both. With the checker enabled this aborts naming both
 * locks; with it disabled it returns (nothing else holds them). */
void rudo__debug_break_lock_order(void);

/* Marker pool state after a collection: number of markers, and whether
 * every helper finished the last mark phase and waits for the next one
 * (no marker left waiting inside a phase). */
unsigned rudo__debug_markers(void);
bool rudo__debug_markers_quiescent(void);

/* Threads stopped by signal, over every collection of the heap. Call from
 * an attached thread. */
uint64_t rudo__debug_signal_stops(void);

#endif
