/* threads.h — ranked locks, mutators (attached threads) and the
 * stop-the-world handshake (internal). The handshake protocol is described
 * in docs/threads.md; the lock ranks in docs/locking.md. */
#ifndef RUDO_THREADS_H
#define RUDO_THREADS_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ucontext.h>

#include "rudo.h"

/* ---- lock.c: locks with a rank ------------------------------------------
 * A thread may only take a lock whose rank is above every lock it holds.
 * The checker (always compiled, enabled by RUDO_DEBUG builds, the
 * RUDO_LOCK_CHECK=1 environment variable or rudo__lock_check_enable) keeps
 * a per-thread stack of held locks and aborts naming both locks. */
typedef struct rudo__lock {
    pthread_mutex_t mutex;
    int rank;
    const char *name;
} rudo__lock;

enum {
    RUDO_RANK_GC = 10,      /* heap->gc_lock: handshake, mutator list */
    RUDO_RANK_HEAP = 20,    /* heap->heap_lock: page pool, page lists, kinds */
    RUDO_RANK_MARK = 25,    /* pool->lock: marker coordination, inboxes */
    RUDO_RANK_ROOTS = 30,   /* roots_lock (roots.c): precise roots and ranges */
    RUDO_RANK_FINAL = 40,   /* final_lock (finalize.c): pending finalizers */
    RUDO_RANK_TEST = 1000,  /* locks made by tests */
};

void rudo__lock_init(rudo__lock *l, int rank, const char *name);
void rudo__lock_destroy(rudo__lock *l);
void rudo__lock_acquire(rudo__lock *l);
void rudo__lock_release(rudo__lock *l);
/* Waits on cv, releasing and re-taking l (which stays on the held stack). */
void rudo__lock_wait(rudo__lock *l, pthread_cond_t *cv);
void rudo__lock_check_enable(bool on);
bool rudo__lock_check_enabled(void);

/* ---- mutator.c: attached threads ---------------------------------------- */
enum rudo__mutator_state {
    RUDO_MUT_RUNNING = 0, /* may touch the heap */
    RUDO_MUT_STOPPED = 1, /* parked at a safepoint until the collection ends */
    RUDO_MUT_BLOCKED = 2, /* in a blocking region: promises not to touch it */
};

struct rudo__page;

/* Per thread, per kind: the free-list head of each size class (read by the
 * inline fast path through rudo__tl->lists[kind]) and the page each list
 * allocates from. Invariant: lists[c] != NULL implies pages[c] != NULL and
 * lists[c] points into pages[c]. */
#define RUDO_NCLASSES 72
typedef struct rudo__kind_alloc {
    void *lists[RUDO_NCLASSES];
    struct rudo__page *pages[RUDO_NCLASSES];
} rudo__kind_alloc;

typedef struct rudo__mutator {
    struct rudo__mutator_fast fast; /* must stay first: rudo__tl points here */
    /* Per kind: the allocation state. fast.lists[k] points at
     * kalloc[k]->lists, except in GC stress mode, where it stays NULL so
     * that every allocation takes the slow path (alloc.c). */
    rudo__kind_alloc *kalloc[RUDO_MAX_KINDS];
    uint32_t id;                    /* distinct per attach; owner of pages */
    int state;                      /* rudo__mutator_state; under gc_lock */
    void *stack_hi;                 /* highest address of the stack */
    void *stack_sp;                 /* lowest live address when stopped */
    ucontext_t regs;                /* registers saved when stopped */
    void **handles;                 /* scoped handle slots */
    size_t nhandles, cap_handles;
    unsigned scope_depth;
    struct rudo__mutator *next, *prev;
} rudo__mutator;

/* The calling thread's mutator, or NULL if it is not attached. */
static inline rudo__mutator *rudo__self(void) {
    return (rudo__mutator *)rudo__tl;
}
/* Aborts with "rudo: fn: ..." unless a heap exists and the thread is
 * attached; returns the mutator. */
rudo__mutator *rudo__need_mutator(const char *fn);
/* Attach/detach internals used by heap creation and destruction. */
int rudo__mutator_attach(void);
void rudo__mutator_detach(rudo__mutator *m);
void rudo__mutators_init(void);

/* ---- safepoint.c: the stop-the-world handshake ---------------------------- */
/* Runs a full collection with the world stopped (or waits for the one
 * another thread is running), then runs due finalizers. */
void rudo__collect(rudo__mutator *m, const char *reason);
/* Records the thread's registers and stack pointer for the collector: call
 * it before taking gc_lock in any path that may park. */
void rudo__capture_roots(rudo__mutator *m);
struct rudo__heap;
/* With gc_lock held: if a collection is running, park m as stopped until
 * no collection runs. m may be NULL (not attached: just wait). */
void rudo__park(struct rudo__heap *h, rudo__mutator *m);

#endif
