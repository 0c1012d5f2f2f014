/* safepoint.c — the stop-the-world handshake.
 *
 * State (under gc_lock): `collecting`, `nrunning` (attached threads in
 * RUNNING state) and each mutator's state. Protocol (docs/threads.md):
 *  1. A thread that wants a collection records its own roots, takes
 *     gc_lock; if a collection is already running it parks (step 3) and
 *     returns when it ends: concurrent requests share one collection.
 *     Otherwise it sets `collecting` and rudo__stop_requested, and waits on
 *     stopped_cv until it is the only RUNNING thread.
 *  2. It releases gc_lock and collects. Threads that stop, block or try to
 *     attach meanwhile take gc_lock and wait on resume_cv.
 *  3. A RUNNING thread that polls (allocation slow path, rudo_safepoint)
 *     and sees the request records its registers and stack pointer, takes
 *     gc_lock, becomes STOPPED, decrements nrunning, signals stopped_cv if
 *     it was the last one running besides the collector, and
 *     waits on resume_cv until `collecting` is false; then it is RUNNING.
 *     A thread that is STOPPED stays so across back-to-back collections
 *     (its roots cannot change while it waits).
 *  4. Entering a blocking region is stopping without waiting; leaving it
 *     waits while a collection runs.
 *  5. The collector takes gc_lock, clears `collecting` and the request,
 *     broadcasts resume_cv, releases gc_lock, then runs finalizers.
 * Everything a mutator wrote before stopping is visible to the collector
 * and everything the collector wrote is visible to the mutator after it
 * resumes, because both sides pass through gc_lock. */
#include <stdio.h>

#include "debug/debug.h"
#include "heap/heap.h"
#include "platform/platform.h"
#include "sweep/sweep.h"

RUDO_API int rudo__stop_requested;

static void set_stop_requested(int v) {
    /* Relaxed: the flag only prompts threads to take gc_lock soon; all the
     * ordering comes from gc_lock (see the protocol above). */
    __atomic_store_n(&rudo__stop_requested, v, __ATOMIC_RELAXED);
}

__attribute__((noinline)) void rudo__capture_roots(rudo__mutator *m) {
    rudo__os_save_registers(&m->regs);
    /* Everything above this frame belongs to the callers whose roots
     * matter; frames below it are rudo's own. */
    m->stack_sp = __builtin_frame_address(0);
}

void rudo__park(rudo__heap *h, rudo__mutator *m) {
    if (!h->collecting)
        return;
    if (m && m->state == RUDO_MUT_RUNNING) {
        m->state = RUDO_MUT_STOPPED;
        h->nrunning--;
        /* Only the last thread to stop wakes the collector, which waits
         * for nrunning == 1: one context switch instead of one per thread. */
        if (h->nrunning <= 1)
            pthread_cond_signal(&h->stopped_cv);
    }
    while (h->collecting)
        rudo__lock_wait(&h->gc_lock, &h->resume_cv);
    if (m && m->state == RUDO_MUT_STOPPED) {
        m->state = RUDO_MUT_RUNNING;
        h->nrunning++;
    }
}

void rudo__safepoint_slow(void) {
    rudo__mutator *m = rudo__self();
    rudo__heap *h = rudo__the_heap;
    if (!m || !h)
        return;
    rudo__capture_roots(m);
    rudo__lock_acquire(&h->gc_lock);
    rudo__park(h, m);
    rudo__lock_release(&h->gc_lock);
}

void rudo__collect(rudo__mutator *m, const char *reason) {
    rudo__heap *h = rudo__the_heap;
    rudo__capture_roots(m);
    uint64_t t0 = rudo__now_ns();
    rudo__lock_acquire(&h->gc_lock);
    if (h->collecting) {
        rudo__park(h, m);
        rudo__lock_release(&h->gc_lock);
        rudo__final_run(h, m);
        return;
    }
    h->collecting = true;
    set_stop_requested(1);
    while (h->nrunning > 1)
        rudo__lock_wait(&h->gc_lock, &h->stopped_cv);
    uint64_t ttsp = rudo__now_ns() - t0;
    rudo__lock_release(&h->gc_lock);

    rudo_gc_event ev;
    rudo__run_collection(h, reason, t0, ttsp, &ev);

    rudo__lock_acquire(&h->gc_lock);
    h->collecting = false;
    set_stop_requested(0);
    pthread_cond_broadcast(&h->resume_cv);
    rudo_gc_callback cb = h->gc_callback;
    void *cb_data = h->gc_callback_data;
    rudo__lock_release(&h->gc_lock);
    if (cb)
        cb(&ev, cb_data);
    rudo__final_run(h, m);
}

void rudo_collect(void) {
    rudo__collect(rudo__need_mutator("rudo_collect"), "explicit");
}

void rudo_blocking_enter(void) {
    const char *fn = "rudo_blocking_enter";
    rudo__mutator *m = rudo__need_mutator(fn);
    rudo__heap *h = rudo__the_heap;
    if (m->state == RUDO_MUT_BLOCKED)
        rudo__fatal(fn, "already in a blocking region (regions do not nest)");
    rudo__capture_roots(m);
    rudo__lock_acquire(&h->gc_lock);
    m->state = RUDO_MUT_BLOCKED;
    h->nrunning--;
    if (h->collecting && h->nrunning <= 1)
        pthread_cond_signal(&h->stopped_cv); /* as in rudo__park */
    rudo__lock_release(&h->gc_lock);
}

void rudo_blocking_leave(void) {
    const char *fn = "rudo_blocking_leave";
    rudo__mutator *m = rudo__need_mutator(fn);
    rudo__heap *h = rudo__the_heap;
    if (m->state != RUDO_MUT_BLOCKED)
        rudo__fatal(fn, "not in a blocking region");
    rudo__lock_acquire(&h->gc_lock);
    while (h->collecting)
        rudo__lock_wait(&h->gc_lock, &h->resume_cv);
    m->state = RUDO_MUT_RUNNING;
    h->nrunning++;
    rudo__lock_release(&h->gc_lock);
}
