/* lock.c — mutexes with ranks and a lock-order checker. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/base.h"
#include "base/lock.h"

#define MAX_HELD 16

__thread _Atomic unsigned rudo__in_runtime __attribute__((tls_model("initial-exec")));

/* Per-thread stack of the locks this thread holds (checker only). */
static __thread rudo__lock *held[MAX_HELD];
static __thread int nheld;

/* Relaxed: the flag is set before threads that matter start (creation,
 * tests), and a stale read only skips or adds a check. */
static atomic_bool check_on =
#ifdef RUDO_DEBUG
    true;
#else
    false;
#endif

void rudo__lock_check_enable(bool on) {
    atomic_store_explicit(&check_on, on, memory_order_relaxed);
}

bool rudo__lock_check_enabled(void) {
    return atomic_load_explicit(&check_on, memory_order_relaxed);
}

void rudo__lock_init(rudo__lock *l, int rank, const char *name) {
    pthread_mutex_init(&l->mutex, NULL);
    l->rank = rank;
    l->name = name;
}

void rudo__lock_destroy(rudo__lock *l) { pthread_mutex_destroy(&l->mutex); }

static void check_order(rudo__lock *l) {
    for (int i = 0; i < nheld; i++) {
        if (held[i]->rank >= l->rank)
            rudo__fatal("lock order", "taking '%s' (rank %d) while holding '%s' "
                        "(rank %d): ranks must increase",
                        l->name, l->rank, held[i]->name, held[i]->rank);
    }
    if (nheld == MAX_HELD)
        rudo__fatal("lock order", "more than %d locks held", MAX_HELD);
}

bool rudo__lock_acquire_waited(rudo__lock *l) {
    bool check = rudo__lock_check_enabled();
    if (check)
        check_order(l);
    /* Raised before the mutex is taken and lowered after it is released:
     * the thread is never suspended by a signal while it holds it. */
    rudo__runtime_enter();
    bool waited = pthread_mutex_trylock(&l->mutex) != 0;
    if (waited)
        pthread_mutex_lock(&l->mutex);
    if (check)
        held[nheld++] = l;
    return waited;
}

void rudo__lock_acquire(rudo__lock *l) { (void)rudo__lock_acquire_waited(l); }

void rudo__lock_release(rudo__lock *l) {
    /* Remove l from the held stack if the checker recorded it (it may have
     * been enabled while l was held). */
    for (int i = nheld - 1; i >= 0; i--) {
        if (held[i] == l) {
            for (int j = i; j < nheld - 1; j++)
                held[j] = held[j + 1];
            nheld--;
            break;
        }
    }
    pthread_mutex_unlock(&l->mutex);
    rudo__runtime_exit();
}

/* pthread_cond_wait and pthread_cond_timedwait are cancellation points. A
 * thread cancelled inside one leaves it holding the mutex and runs its
 * cleanup and key destructors with it held: rudo's exit destructor then
 * deadlocks taking gc_lock, and so does every later collection. So every
 * internal wait runs with cancellation disabled; a cancel that arrives
 * meanwhile stays pending and acts at the caller's next cancellation point,
 * outside rudo. */
int rudo__nocancel_begin(void) {
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    return old;
}

void rudo__nocancel_end(int old) { pthread_setcancelstate(old, NULL); }

void rudo__lock_wait(rudo__lock *l, pthread_cond_t *cv) {
    int old = rudo__nocancel_begin();
    pthread_cond_wait(cv, &l->mutex);
    rudo__nocancel_end(old);
}

bool rudo__lock_timedwait(rudo__lock *l, pthread_cond_t *cv,
                          const struct timespec *deadline) {
    int old = rudo__nocancel_begin();
    int rc = pthread_cond_timedwait(cv, &l->mutex, deadline);
    rudo__nocancel_end(old);
    return rc == ETIMEDOUT;
}
