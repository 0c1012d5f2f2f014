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
#include <sys/types.h>
#include <time.h>

#include "platform/platform.h"
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
/* Waits on cv, releasing and re-taking l (which stays on the held stack).
 * Cancellation is disabled during the wait (see lock.c). */
void rudo__lock_wait(rudo__lock *l, pthread_cond_t *cv);
/* As rudo__lock_wait, until the absolute CLOCK_MONOTONIC time *deadline
 * (cv must use that clock); true if the deadline passed. */
bool rudo__lock_timedwait(rudo__lock *l, pthread_cond_t *cv,
                          const struct timespec *deadline);
/* Disables thread cancellation, returning the old state for
 * rudo__nocancel_end, around rudo code that must not be cancelled halfway
 * (it would exit holding a lock or with the handshake half done). */
int rudo__nocancel_begin(void);
void rudo__nocancel_end(int old);
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

/* Words of rudo__mutator.spill: more than the frames of rudo__capture_roots
 * and of any function calling it need in every build (it aborts if not). */
#define RUDO_SPILL_WORDS 256

typedef struct rudo__mutator {
    struct rudo__mutator_fast fast; /* must stay first: rudo__tl points here */
    /* Per kind: the allocation state. fast.lists[k] points at
     * kalloc[k]->lists, except in GC stress mode, where it stays NULL so
     * that every allocation takes the slow path (alloc.c). */
    rudo__kind_alloc *kalloc[RUDO_MAX_KINDS];
    uint32_t id;                    /* distinct per attach; owner of pages */
    pid_t tid;                      /* kernel thread id, for messages */
    pthread_t thread;               /* for its name (pthread_getname_np) */
    int state;                      /* rudo__mutator_state; under gc_lock */
    /* The stack the thread runs on, [stack_lo, stack_hi): found at attach,
     * or declared by rudo_stack_set. Written by the thread itself while
     * RUNNING; read by the collector only while the thread is stopped or
     * blocked, which gc_lock orders after the writes. */
    void *stack_lo;
    void *stack_hi;
    /* Recorded by rudo__capture_roots: the collector scans the stack from
     * stack_sp (the frame of the function that captured) to stack_hi, and
     * spill[0 .. nspill-1], a copy of the frames below stack_sp at the
     * capture, which hold the callee-saved registers (docs/threads.md). */
    void *stack_sp;
    size_t nspill;
    void *spill[RUDO_SPILL_WORDS];
    /* The thread's static TLS blocks (ntls ranges), recorded at attach. */
    struct rudo__tls_block { void *lo, *hi; } *tls;
    size_t ntls;
    void **handles;                 /* scoped handle slots */
    size_t nhandles, cap_handles;
    unsigned scope_depth;
    struct rudo__mutator *next, *prev;
} rudo__mutator;

/* The calling thread's mutator, or NULL if it is not attached. Kept
 * apart from rudo__tl, which points at another (empty) fast-path state
 * while the thread is in a blocking region (safepoint.c). initial-exec:
 * read on every slow path, so no __tls_get_addr in the shared library. */
extern __thread rudo__mutator *rudo__me __attribute__((tls_model("initial-exec")));
static inline rudo__mutator *rudo__self(void) { return rudo__me; }
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
 * it before taking gc_lock in any path that may park or block. A macro,
 * because the registers must be spilled by the calling function F itself:
 * F's prologue saves its caller's callee-saved registers in F's frame
 * before F changes them; rudo__capture_roots_at (noinline, below F's frame)
 * copies F's frame into m->spill and starts the stack scan at the top of
 * F's frame, so the copy stays valid after F returns (rudo_blocking_enter
 * returns before the collection that reads it). Aborts, naming the calling
 * function (rudo_collect for internal ones), if the stack pointer is not in
 * the declared stack [m->stack_lo, m->stack_hi). */
#define rudo__capture_roots(m)                                                  \
    (RUDO_OS_SPILL_REGISTERS(),                                                 \
     rudo__capture_roots_at((m), RUDO_OS_FRAME_TOP(), __func__))
void rudo__capture_roots_at(rudo__mutator *m, void *frame_top, const char *fn);
/* At attach, in the attaching thread: records m's stack bounds and static
 * TLS blocks. RUDO_OK, RUDO_ESTATE if the stack cannot be found, RUDO_ENOMEM. */
int rudo__mutator_stack_init(rudo__mutator *m);
struct rudo__heap;
/* With gc_lock held: if a collection is running, park m as stopped until
 * no collection runs. m may be NULL (not attached: just wait). */
void rudo__park(struct rudo__heap *h, rudo__mutator *m);
/* Delay before the first "not stopped" report (RUDO_STOP_WARN_MS). */
#define RUDO_STOP_WARN_DEFAULT_MS 2000u
/* At heap creation: initialises stopped_cv (on CLOCK_MONOTONIC, for the
 * collector's timed wait) and sets stop_warn_ms (0 = never report). */
void rudo__handshake_init(struct rudo__heap *h, unsigned stop_warn_ms);
/* In a forked child, with gc_lock held and no collection running: makes
 * the handshake's condition variables new (waiters of vanished threads may
 * linger in them) and clears the stop request. */
void rudo__handshake_fork_child(struct rudo__heap *h);

/* The name of the kind whose trace callback this thread is running, NULL
 * outside trace callbacks (set around the call in mark.c). */
extern __thread const char *rudo__tracing_kind
    __attribute__((tls_model("initial-exec")));
/* Aborts with "rudo: fn: ..." if the calling thread runs a trace callback
 * or is inside a blocking region: calls that may allocate or collect would
 * park it forever there (or touch the heap behind the collector's back).
 * `what` completes "trace callbacks must not ...". */
void rudo__check_context(const char *fn, const char *what);

#endif
