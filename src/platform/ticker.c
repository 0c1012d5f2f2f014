/* ticker.c — a thread that calls a function at a fixed period, for the
 * reports that no other thread is there to make (platform.h). */
#include <errno.h>
#include <signal.h>
#include <time.h>

#include "platform/platform.h"

static void *ticker_main(void *arg) {
    rudo__os_ticker *t = arg;
    /* The collector's suspend and restart signals and the program's own
     * are not for this thread, which is never attached. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_mutex_lock(&t->mu);
    uint64_t at = rudo__now_ns();
    while (!t->stop) {
        at += (uint64_t)t->period_ms * 1000000u;
        struct timespec dl = rudo__os_mono_at(at);
        while (!t->stop && pthread_cond_timedwait(&t->cv, &t->mu, &dl) != ETIMEDOUT) {
        }
        if (t->stop)
            break;
        /* Without the lock: fn may take its time (a write to stderr), and
         * stop only has to wait for it to return. */
        pthread_mutex_unlock(&t->mu);
        t->fn(t->arg);
        pthread_mutex_lock(&t->mu);
        /* A tick that ran late (the machine was busy) does not make the
         * next ones come in a burst. */
        uint64_t now = rudo__now_ns();
        if (at < now)
            at = now;
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

void rudo__os_ticker_init(rudo__os_ticker *t) {
    pthread_mutex_init(&t->mu, NULL);
    rudo__os_cond_init_monotonic(&t->cv);
    atomic_store_explicit(&t->running, false, memory_order_relaxed);
    t->stop = false;
}

bool rudo__os_ticker_start(rudo__os_ticker *t, unsigned period_ms, void (*fn)(void *),
                           void *arg) {
    /* Acquire: pairs with the release below; a ticker seen running was
     * started with its fields set (they are not read here anyway). */
    if (atomic_load_explicit(&t->running, memory_order_acquire))
        return true;
    pthread_mutex_lock(&t->mu);
    bool ok = atomic_load_explicit(&t->running, memory_order_relaxed);
    if (!ok) {
        t->period_ms = period_ms ? period_ms : 1;
        t->fn = fn;
        t->arg = arg;
        t->stop = false;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, 256 * 1024); /* sanitizers want room */
        ok = pthread_create(&t->thread, &a, ticker_main, t) == 0;
        pthread_attr_destroy(&a);
        /* Release: pairs with the acquire above. */
        atomic_store_explicit(&t->running, ok, memory_order_release);
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void rudo__os_ticker_stop(rudo__os_ticker *t) {
    pthread_mutex_lock(&t->mu);
    bool running = atomic_load_explicit(&t->running, memory_order_relaxed);
    t->stop = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (running) {
        /* pthread_join is a cancellation point: a cancel must not leave
         * the thread running on a heap about to go. */
        int old;
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
        pthread_join(t->thread, NULL);
        pthread_setcancelstate(old, NULL);
    }
    atomic_store_explicit(&t->running, false, memory_order_relaxed);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
}

void rudo__os_ticker_fork_child(rudo__os_ticker *t) {
    /* The thread is not in the child, and may have held the mutex when
     * the address space was copied: start again from nothing. */
    rudo__os_ticker_init(t);
}
