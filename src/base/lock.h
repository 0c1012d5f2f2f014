/* lock.h — mutexes with a rank and a lock-order checker (internal). The
 * ranks and what each lock protects are in docs/locking.md. */
#ifndef RUDO_LOCK_H
#define RUDO_LOCK_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

/* A thread may only take a lock whose rank is above every lock it holds.
 * The checker (always compiled, enabled by RUDO_DEBUG builds, the
 * RUDO_LOCK_CHECK=1 environment variable or rudo__lock_check_enable) keeps
 * a per-thread stack of held locks and aborts naming both locks. */
typedef struct rudo__lock {
    pthread_mutex_t mutex;
    int rank;
    const char *name;
} rudo__lock;

enum {
    RUDO_RANK_GC = 10,      /* heap->world.lock: handshake, mutator list */
    RUDO_RANK_HEAP = 20,    /* heap->heap_lock: page pool, page lists, kinds */
    RUDO_RANK_MARK = 25,    /* pool->lock: marker coordination, inboxes */
    RUDO_RANK_ROOTS = 30,   /* heap->roots.lock: precise roots and ranges */
    RUDO_RANK_FINAL = 40,   /* heap->final.lock: pending finalizers */
    RUDO_RANK_LOADER = 50,  /* heap->loader_lock: an attach's dl_iterate_phdr */
    RUDO_RANK_TEST = 1000,  /* locks made by tests */
};

/* How deep the calling thread is in rudo's own code: raised by every lock
 * acquisition (until its release) and by rudo__runtime_enter (threads.h)
 * around the slow paths that write what the collector reads. A thread may
 * be suspended by a signal only while it is 0 (threads/sigstop.c): then it
 * holds no collector lock and is in no half-done update. Written only by
 * its own thread; the one other reader is that thread's suspend handler,
 * so relaxed accesses and a signal fence are enough (no RMW: a handler
 * that interrupts the load-add-store sees the old value, as if it came
 * before). initial-exec: read in a signal handler and on every lock. */
extern __thread _Atomic unsigned rudo__in_runtime
    __attribute__((tls_model("initial-exec")));
static inline void rudo__runtime_enter(void) {
    atomic_store_explicit(&rudo__in_runtime,
                          atomic_load_explicit(&rudo__in_runtime, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    /* The runtime's own accesses stay after the increment. */
    atomic_signal_fence(memory_order_seq_cst);
}
/* Lowers the depth; returns the new one. */
static inline unsigned rudo__runtime_exit(void) {
    atomic_signal_fence(memory_order_seq_cst);
    unsigned d = atomic_load_explicit(&rudo__in_runtime, memory_order_relaxed) - 1;
    atomic_store_explicit(&rudo__in_runtime, d, memory_order_relaxed);
    return d;
}
/* Around user code that rudo calls (finalizers, callbacks, the OOM
 * handler): the thread may be suspended there like anywhere in the
 * program. rudo__runtime_pause returns the depth for rudo__runtime_resume. */
static inline unsigned rudo__runtime_pause(void) {
    atomic_signal_fence(memory_order_seq_cst);
    unsigned d = atomic_load_explicit(&rudo__in_runtime, memory_order_relaxed);
    atomic_store_explicit(&rudo__in_runtime, 0, memory_order_relaxed);
    return d;
}
static inline void rudo__runtime_resume(unsigned d) {
    atomic_store_explicit(&rudo__in_runtime, d, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
}

void rudo__lock_init(rudo__lock *l, int rank, const char *name);
void rudo__lock_destroy(rudo__lock *l);
void rudo__lock_acquire(rudo__lock *l);
/* As rudo__lock_acquire; returns true if another thread held l, so that
 * the caller had to wait: a contention signal for policies that take
 * more per acquisition when a lock is busy (alloc.c, page batches). */
bool rudo__lock_acquire_waited(rudo__lock *l);
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

#endif
