/* lock.h — mutexes with a rank and a lock-order checker (internal). The
 * ranks and what each lock protects are in docs/locking.md. */
#ifndef RUDO_LOCK_H
#define RUDO_LOCK_H
#include <pthread.h>
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

#endif
