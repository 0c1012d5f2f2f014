/* suspend.c — suspending an attached thread by request until it is
 * resumed (rudo_thread_suspend, rudo_thread_resume; bdwgc's
 * GC_suspend_thread). docs/threads.md, "Suspending a thread by request".
 *
 * A running thread is suspended with the collector's suspend signal: its
 * handler (sigstop.c) saves its registers, stores ext_ack = ext_req and
 * parks until ext_req is even again; a collection treats it as stopped by
 * signal (it scans the saved registers and the stack) and never signals
 * it. A thread in a blocking region is only marked: it parks when it
 * leaves the region. A thread found inside rudo defers, and suspends
 * itself when it leaves rudo's code (rudo__stop_pending_park). Requests
 * are made with gc_lock held and no collection running, so a collection
 * sees each thread either suspended or not, never halfway. */
#include <time.h>

#include "base/base.h"
#include "heap/heap.h"
#include "threads/threads.h"
#include "platform/platform.h"

/* How often an unanswered suspend signal is sent again (a handler that
 * found the thread inside rudo, or outside its declared stack, did not
 * park), and the first delay before the suspender says what it waits for. */
#define RESEND_NS 10000000u
#define POLL_NS 200000

/* With gc_lock held: the attached thread t, or NULL. */
static rudo__mutator *find(rudo__heap *h, pthread_t t) {
    for (rudo__mutator *m = h->world.mutators; m; m = m->next)
        if (pthread_equal(m->thread, t))
            return m;
    return NULL;
}

/* Takes gc_lock when no collection runs, with the checks every entry point
 * makes; NULL (no lock held) if there is no heap. */
static rudo__heap *lock(const char *fn) {
    rudo__heap *h = rudo__the_heap;
    if (!h)
        return NULL;
    rudo__check_context(fn, "suspend or resume threads");
    rudo__lock_idle(h, fn);
    return h;
}

/* With gc_lock held and no collection running: waits until m (suspended
 * by request with ext_req = e, not BLOCKED, not the caller) has parked in
 * its handler, entered a blocking region, been resumed, or detached. gc_lock
 * is released while it sleeps (the thread may need it to get out of
 * rudo). Returns RUDO_OK, or RUDO_ENOENT if the thread detached first. */
static int wait_parked(rudo__heap *h, pthread_t t, uint32_t id, uint64_t e) {
    uint64_t t0 = rudo__now_ns(), sent = 0;
    unsigned delay = h->world.stop_warn_ms;
    uint64_t t_warn = delay ? t0 + (uint64_t)delay * 1000000u : UINT64_MAX;
    for (;;) {
        rudo__mutator *m = find(h, t);
        if (!m || m->id != id)
            return RUDO_ENOENT;
        /* Relaxed: written only under gc_lock, which we hold. */
        /* Not STOPPED: a thread parked at a safepoint can still be so
         * here, after the collection's end and before it woke up (it
         * sets its state back itself); it then returns to the program,
         * running. The signal is sent again until its handler parks. */
        if (atomic_load_explicit(&m->ext_req, memory_order_relaxed) != e ||
            m->state == RUDO_MUT_BLOCKED || rudo__sigstop_ext_parked(m))
            return RUDO_OK;
        uint64_t now = rudo__now_ns();
        if (sent == 0 || now - sent >= RESEND_NS) {
            /* Attached, so alive: detaching needs gc_lock, held here. */
            rudo__os_signal_send(m->thread, h->world.suspend_sig);
            sent = now;
        }
        if (now >= t_warn) {
            rudo__warn("rudo_thread_suspend", "waited %llu ms for mutator %u "
                       "(tid %ld) to stop: it blocks the suspend signal %d or "
                       "stays inside rudo; still waiting",
                       (unsigned long long)((now - t0) / 1000000), (unsigned)id,
                       (long)m->tid, h->world.suspend_sig);
            delay = delay > 30000u ? 60000u : delay * 2;
            t_warn = now + (uint64_t)delay * 1000000u;
        }
        rudo__lock_release(&h->world.lock);
        struct timespec ts = {0, POLL_NS};
        nanosleep(&ts, NULL);
        rudo__lock_idle(h, "rudo_thread_suspend");
    }
}

int rudo_thread_suspend(pthread_t thread) {
    const char *fn = "rudo_thread_suspend";
    rudo__heap *h = lock(fn);
    if (!h)
        return RUDO_ESTATE;
    rudo__mutator *m = find(h, thread), *self = rudo__self();
    int rc = RUDO_OK;
    if (!m) {
        rc = RUDO_ENOENT;
    } else if (rudo__ext_suspended(m)) {
        rc = RUDO_EEXIST;
    } else if (m != self && m->state != RUDO_MUT_BLOCKED && !rudo__sigstop_enabled(h)) {
        rc = RUDO_ESTATE; /* only a signal stops a running thread anywhere */
    } else {
        /* Relaxed: a number; gc_lock orders it for the collector, and the
         * handler reads it after the signal (a system call) or, when it
         * is already waiting, after the restart that follows each change. */
        uint64_t e = atomic_load_explicit(&m->ext_req, memory_order_relaxed) + 1;
        atomic_store_explicit(&m->ext_req, e, memory_order_relaxed);
        if (m == self)
            rudo__park_suspended(h, m); /* until another thread resumes it */
        else if (m->state != RUDO_MUT_BLOCKED) /* RUNNING, or STOPPED and waking */
            rc = wait_parked(h, thread, m->id, e);
        /* A thread in a blocking region parks when it leaves it. */
    }
    rudo__lock_release(&h->world.lock);
    return rc;
}

int rudo_thread_resume(pthread_t thread) {
    rudo__heap *h = lock("rudo_thread_resume");
    if (!h)
        return RUDO_ESTATE;
    rudo__mutator *m = find(h, thread);
    int rc = RUDO_OK;
    if (!m) {
        rc = RUDO_ENOENT;
    } else if (!rudo__ext_suspended(m)) {
        rc = RUDO_ESTATE;
    } else {
        /* Relaxed load: written only under gc_lock. Release: pairs with
         * the handler's acquire load, so the thread sees what this thread
         * wrote before it resumed it. */
        uint64_t e = atomic_load_explicit(&m->ext_req, memory_order_relaxed);
        atomic_store_explicit(&m->ext_req, e + 1, memory_order_release);
        /* Parked in its handler (or about to be): the restart signal ends
         * the wait; parked in a blocking region: resume_cv. */
        if (m->state == RUDO_MUT_RUNNING && rudo__sigstop_enabled(h))
            rudo__sigstop_send_restart(h, m);
        pthread_cond_broadcast(&h->world.resume_cv);
    }
    rudo__lock_release(&h->world.lock);
    return rc;
}

bool rudo_thread_is_suspended(pthread_t thread) {
    rudo__heap *h = rudo__the_heap;
    if (!h)
        return false;
    rudo__lock_acquire(&h->world.lock);
    rudo__mutator *m = find(h, thread);
    bool r = m && rudo__ext_suspended(m);
    rudo__lock_release(&h->world.lock);
    return r;
}
