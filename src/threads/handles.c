/* handles.c — scoped handles: per-thread root slots that live until the
 * scope that made them exits.
 *
 * Slots sit in fixed chunks, so a handle's address never changes. The
 * inline fast paths in rudo.h bump a pointer through the newest chunk
 * (m->fast.hnext in [hbase, hlimit)); this file runs when they cannot: the
 * thread's first scope, a full chunk, a scope exit that leaves the newest
 * chunk, and misuse.
 *
 * Invariant (rudo__handles_ok): the chunks form a list from the newest
 * (the one holding hbase) through `prev`; every chunk but the newest is
 * full; the slots in use are those of the older chunks and [hbase, hnext)
 * of the newest; hdepth is the number of open scopes, and hnext is NULL
 * (no chunk yet) only while no scope is open. At most one emptied chunk
 * is kept aside (m->hspare) so a loop that crosses a chunk boundary does
 * not call malloc and free each time.
 *
 * A collector may read this state while the thread is stopped at any
 * instruction (signal-based suspension), so every update is ordered for a
 * reader on the thread's own instruction stream: a slot is written before
 * hnext covers it (rudo_handle), and a new chunk is linked and published
 * as hbase before hnext moves into it (push_chunk). A reader that finds
 * hnext outside [hbase, hlimit] is between those two stores and counts no
 * slot of the newest chunk, which is empty then. */
#include <stdlib.h>

#include "base/base.h"
#include "threads/threads.h"

#define CHUNK_SLOTS 254

typedef struct hchunk {
    struct hchunk *prev;
    void *pad;              /* keeps the chunk 2 KiB: slots fill the rest */
    void *slots[CHUNK_SLOTS];
} hchunk;
_Static_assert(sizeof(hchunk) == 2048, "a handle chunk is 2 KiB");

static hchunk *chunk_of_base(void **base) {
    return base ? (hchunk *)(void *)((char *)base - offsetof(hchunk, slots))
                : NULL;
}

static bool in_chunk(const hchunk *c, void **p) {
    return (uintptr_t)p - (uintptr_t)c->slots <= sizeof c->slots;
}

/* Makes a new, empty chunk the newest (the current newest is full or
 * absent). */
static void push_chunk(rudo__mutator *m, const char *fn) {
    hchunk *n = m->hspare;
    m->hspare = NULL;
    if (!n) {
        /* Inside rudo: a thread suspended by signal inside malloc could
         * hold a lock the collector's own malloc then waits for. */
        rudo__runtime_enter();
        n = malloc(sizeof *n);
        rudo__runtime_leave();
        if (!n)
            rudo__fatal(fn, "out of memory for a chunk of handles");
    }
    n->prev = chunk_of_base(m->fast.hbase);
    /* Signal fences: a collector reading this thread's state while it is
     * stopped in between sees the chunk linked before it is the newest,
     * and the newest before hnext points into it (see the file comment). */
    atomic_signal_fence(memory_order_release);
    m->fast.hbase = n->slots;
    m->fast.hlimit = n->slots + CHUNK_SLOTS;
    atomic_signal_fence(memory_order_release);
    m->fast.hnext = n->slots;
}

/* Drops the newest chunk: the one before it becomes the newest, with its
 * slots up to (not including) `next` in use. */
static void pop_chunk(rudo__mutator *m, void **next) {
    hchunk *c = chunk_of_base(m->fast.hbase);
    hchunk *p = c->prev;
    /* Lower hnext first: until hbase moves, a reader sees the newest chunk
     * empty (hnext outside it) and the older ones whole. */
    m->fast.hnext = next;
    atomic_signal_fence(memory_order_release);
    m->fast.hbase = p->slots;
    m->fast.hlimit = p->slots + CHUNK_SLOTS;
    if (m->hspare) {
        rudo__runtime_enter(); /* as in push_chunk */
        free(c);
        rudo__runtime_leave();
    } else {
        m->hspare = c;
    }
}

static rudo__mutator *handle_mutator(const char *fn) {
    rudo__mutator *m = rudo__need_mutator(fn);
    if (m->state == RUDO_MUT_BLOCKED)
        rudo__fatal(fn, "called inside a blocking region "
                    "(call rudo_blocking_leave first)");
    return m;
}

void rudo__scope_enter_slow(rudo_scope *scope) {
    const char *fn = "rudo_scope_enter";
    if (!scope)
        rudo__fatal(fn, "scope is NULL");
    rudo__mutator *m = handle_mutator(fn);
    if (!m->fast.hnext)
        push_chunk(m, fn); /* the thread's first scope */
    scope->rudo__mark = m->fast.hnext;
    scope->rudo__depth = ++m->fast.hdepth;
    RUDO_ASSERT(rudo__handles_ok(m));
}

void rudo__scope_exit_slow(rudo_scope *scope) {
    const char *fn = "rudo_scope_exit";
    if (!scope)
        rudo__fatal(fn, "scope is NULL");
    rudo__mutator *m = handle_mutator(fn);
    unsigned depth = m->fast.hdepth;
    if (scope->rudo__depth != depth || depth == 0)
        rudo__fatal(fn, "scopes must exit in reverse order of entry "
                    "(exiting depth %u, innermost is %u)",
                    scope->rudo__depth, depth);
    /* The scope began in an older chunk: find it before changing anything,
     * so that a scope of another thread (whose mark is in none of ours)
     * aborts with the state intact. */
    hchunk *c = chunk_of_base(m->fast.hbase);
    while (c && !in_chunk(c, scope->rudo__mark))
        c = c->prev;
    if (!c || (c == chunk_of_base(m->fast.hbase) &&
               (uintptr_t)scope->rudo__mark > (uintptr_t)m->fast.hnext))
        rudo__fatal(fn, "the scope was not entered by this thread, or not "
                    "since its last exit (scopes and handles are per thread)");
    while (chunk_of_base(m->fast.hbase) != c)
        pop_chunk(m, scope->rudo__mark);
    m->fast.hnext = scope->rudo__mark;
    m->fast.hdepth = depth - 1;
    RUDO_ASSERT(rudo__handles_ok(m));
}

void **rudo__handle_slow(void *obj) {
    const char *fn = "rudo_handle";
    rudo__mutator *m = handle_mutator(fn);
    if (m->fast.hdepth == 0)
        rudo__fatal(fn, "no scope is open (call rudo_scope_enter first)");
    if (m->fast.hnext == m->fast.hlimit)
        push_chunk(m, fn);
    void **slot = m->fast.hnext;
    *slot = obj;
    atomic_signal_fence(memory_order_release); /* as in rudo_handle */
    m->fast.hnext = slot + 1;
    RUDO_ASSERT(rudo__handles_ok(m));
    return slot;
}

void rudo__handles_enumerate(rudo__mutator *m, rudo__root_visitor *v) {
    hchunk *c = chunk_of_base(m->fast.hbase);
    if (!c)
        return;
    void **next = m->fast.hnext;
    if (in_chunk(c, next))
        for (void **s = c->slots; s < next; s++)
            v->slot(v, s);
    for (c = c->prev; c; c = c->prev)
        for (size_t i = 0; i < CHUNK_SLOTS; i++)
            v->slot(v, &c->slots[i]);
}

/* The invariant in the file comment, as far as it is O(1): checked after
 * each slow path (not by the collector, which may find the thread between
 * two stores of push_chunk or pop_chunk). */
bool rudo__handles_ok(const rudo__mutator *m) {
    const struct rudo__mutator_fast *f = &m->fast;
    if (!f->hbase)
        return !f->hnext && !f->hlimit && f->hdepth == 0;
    return f->hlimit == f->hbase + CHUNK_SLOTS &&
           in_chunk(chunk_of_base(f->hbase), f->hnext);
}

void rudo__handles_free(rudo__mutator *m) {
    hchunk *c = chunk_of_base(m->fast.hbase);
    while (c) {
        hchunk *p = c->prev;
        free(c);
        c = p;
    }
    free(m->hspare);
    m->hspare = NULL;
    m->fast.hnext = m->fast.hbase = m->fast.hlimit = NULL;
    m->fast.hdepth = 0;
}
