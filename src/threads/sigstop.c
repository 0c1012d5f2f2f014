/* sigstop.c — suspending with a signal the attached threads that do not
 * reach a safepoint: the suspend handler, sending, resuming.
 * docs/threads.md, "Threads that do not poll", has the protocol and the
 * argument; the short version:
 *  - the collector (gc_lock held) stores m->sig_req = seq, the number of
 *    the stop, and sends the suspend signal;
 *  - the handler ignores a stale signal (sig_req == sig_go: that stop has
 *    ended) and one that finds the thread inside rudo (rudo__in_runtime >
 *    0: it may hold a collector lock or be halfway through an update the
 *    collector reads); it then sets stop_pending, and the thread parks at
 *    a safepoint when it leaves rudo's code;
 *  - otherwise it copies the interrupted registers and stack pointer into
 *    the mutator, stores sig_ack = seq with release (the collector's
 *    acquire load then sees the copy), posts stopped_sem, and waits in
 *    rt_sigsuspend until sig_go == seq;
 *  - the resume stores sig_go = seq with release (the handler's acquire
 *    load then sees everything the collection wrote) and sends the restart
 *    signal to every thread signalled in that stop. The restart signal is
 *    blocked in the handler except inside rt_sigsuspend, so one sent
 *    between the handler's check and its wait stays pending and ends the
 *    wait at once: no restart is lost, and the resume need not wait for
 *    acknowledgements. A later stop's suspend signal, if it comes while
 *    the handler still runs, stays pending (every signal is blocked in the
 *    handler) and is taken after it returns, with the new sig_req.
 * The handler calls only async-signal-safe functions: atomics, sem_post,
 * raw rt_sigprocmask and rt_sigsuspend, clock_gettime, and, in the report
 * of a stop that lasts (rudo__world_report_stuck), snprintf of integers
 * and strings into a stack buffer and write(2). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#include "base/base.h"
#include "heap/heap.h"
#include "threads/threads.h"
#include "platform/platform.h"

/* Signals that cannot be caught, or that report the program's own faults
 * (a handler of ours would hide them). */
static bool unusable(unsigned sig) {
    return sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV || sig == SIGBUS ||
           sig == SIGILL || sig == SIGFPE || sig == SIGTRAP || sig == SIGABRT;
}

int rudo__sigstop_check(const rudo_config *c) {
    const char *fn = "rudo_heap_create";
    if (c->suspend_signal == 0)
        return RUDO_OK; /* off: restart_signal is unused */
    if ((int)c->suspend_signal > rudo__os_signal_max() ||
        (int)c->restart_signal > rudo__os_signal_max()) {
        rudo__warn(fn, "suspend_signal %u and restart_signal %u must be at "
                   "most %d", c->suspend_signal, c->restart_signal,
                   rudo__os_signal_max());
        return RUDO_EINVAL;
    }
    if (c->suspend_signal == c->restart_signal) {
        rudo__warn(fn, "suspend_signal and restart_signal must differ (both %u)",
                   c->suspend_signal);
        return RUDO_EINVAL;
    }
    unsigned bad = unusable(c->suspend_signal) ? c->suspend_signal
                 : unusable(c->restart_signal) ? c->restart_signal : 0;
    if (bad) {
        rudo__warn(fn, "signal %u cannot suspend or restart threads (it "
                   "cannot be caught or reports faults)", bad);
        return RUDO_EINVAL;
    }
    return RUDO_OK;
}

bool rudo__sigstop_enabled(const rudo__heap *h) {
    return h->world.suspend_sig != 0 && h->cfg.scan_stacks;
}

/* The restart signal: ends the handler's wait. Nothing to do here; a
 * restart that arrives outside the wait (it is sent to every thread the
 * stop signalled, some of which stopped at a safepoint instead) is
 * harmless. */
static void restart_handler(int sig, void *info, void *context) {
    (void)sig;
    (void)info;
    (void)context;
}

/* Saves what the collector scans for m, interrupted in context; false
 * if the interrupted stack pointer is outside the declared stack (the
 * thread is between rudo_stack_set and its stack switch, or on a stack it
 * never declared): [sp, stack_hi) would span unrelated memory.
 *
 * The scan starts at this function's own frame when the handler runs on
 * the thread's stack (no alternate signal stack), below the context's
 * stack pointer: the handler (suspend_handler, which spilled its caller's
 * callee-saved registers, and stays live while the thread is stopped)
 * and the signal frame the kernel pushed, with its saved registers, lie
 * in between. The context need not be the thread's state at the stop:
 * ThreadSanitizer delivers an asynchronous signal late, at the thread's
 * next intercepted call, with the context of its arrival, and the frames
 * the thread entered since, with registers spilled in them, lay below
 * that stack pointer: test_compat_thr_inline lost an object held only
 * there (2 runs in 30 under TSan). noinline: the frame must lie below the
 * handler's. */
static __attribute__((noinline)) bool save_context(rudo__mutator *m, const void *context) {
    char *sp = rudo__os_context_sp(context);
    /* The declared stack was written by this very thread (rudo_stack_set,
     * inside rudo, so not halfway now). */
    bool bad = sp < (char *)m->stack_lo || sp > (char *)m->stack_hi;
    /* Relaxed: a diagnosis for the collector's report. */
    atomic_store_explicit(&m->sig_bad_sp, bad, memory_order_relaxed);
    if (bad)
        return false;
    m->nsig_regs = rudo__os_context_words(context, m->sig_regs,
                                          sizeof m->sig_regs / sizeof m->sig_regs[0]);
    /* A leaf function may keep values below its stack pointer. */
    char *lo = sp - RUDO_OS_RED_ZONE;
    char *here = __builtin_frame_address(0);
    if (here >= (char *)m->stack_lo && here < lo)
        lo = here;
    m->sig_sp = lo < (char *)m->stack_lo ? m->stack_lo : lo;
    return true;
}

static void suspend_handler(int sig, void *info, void *context) {
    (void)sig;
    (void)info;
    /* The interrupted code's callee-saved registers, into this frame,
     * which save_context's scan covers (see there). */
    RUDO_OS_SPILL_REGISTERS();
    int saved_errno = errno;
    /* First: glibc's cancellation signal must not unwind the thread from
     * here while the collector scans its stack. */
    rudo__os_signal_block_cancel();
    rudo__mutator *m = rudo__me;
    /* Attached threads exist only while the heap does (destroy needs the
     * others detached), so the heap is there if m is. */
    rudo__heap *h = m ? rudo__the_heap : NULL;
    if (!h)
        goto out;
    /* Relaxed: only the number is needed; what the thread must see of the
     * collection comes through sig_go (acquire, below). */
    uint64_t req = atomic_load_explicit(&m->sig_req, memory_order_relaxed);
    /* A suspension by request not yet parked for; what the thread must
     * see of the suspender comes through the acquire loads in the wait. */
    bool ext_due = rudo__sigstop_ext_due(m);
    /* Relaxed: only the collector writes sig_go, under gc_lock, and the
     * comparison only tells a stale signal (that stop has ended). */
    if (req == atomic_load_explicit(&m->sig_go, memory_order_relaxed) && !ext_due)
        goto out;
    /* Relaxed: this thread's own counter (base/lock.h). */
    if (atomic_load_explicit(&rudo__in_runtime, memory_order_relaxed) != 0) {
        /* Relaxed: read by this thread when it leaves rudo. */
        atomic_store_explicit(&m->stop_pending, 1, memory_order_relaxed);
        goto out;
    }
    /* The thread writes its state only inside rudo (under gc_lock), so it
     * is not halfway: a thread in a blocking region, or parked, had its
     * roots recorded already and must not overwrite them now. */
    if (m->state != RUDO_MUT_RUNNING)
        goto out;
    if (!save_context(m, context))
        goto out; /* not stopped: the collector signals again later */
    int restart = h->world.restart_sig;
    /* Parked while a stop is in progress for the thread (sig_req !=
     * sig_go) or while it is suspended by request (ext_req odd). Each is
     * acknowledged here, the first time the loop sees it: a stop or a
     * suspension that begins while the thread waits here finds its
     * registers saved already. It sleeps only after acknowledging what
     * holds it, and every change of either condition is followed by the
     * restart signal (the collection's resume, rudo_thread_resume), which
     * ends the sleep; a new stop or suspension cannot begin while it
     * sleeps for the other one without such a change first (requests wait
     * for collections to end; a collection does not signal a thread parked
     * by request). The values are reread at each turn: a stop that
     * signalled it while it was parked by request is over once its
     * sig_go is stored, whatever number this handler started with. */
    for (;;) {
        /* Acquire: pairs with rudo_thread_resume's release store, so the
         * thread sees what the resumer wrote before it goes on. */
        uint64_t e = atomic_load_explicit(&m->ext_req, memory_order_acquire);
        /* Relaxed: this handler's own earlier store. */
        if ((e & 1) && atomic_load_explicit(&m->ext_ack, memory_order_relaxed) != e) {
            /* Release: the suspender's and the collector's acquire loads
             * of ext_ack see the copy. */
            atomic_store_explicit(&m->ext_ack, e, memory_order_release);
            /* A collection that began meanwhile looks again. */
            sem_post(&h->world.stopped_sem);
        }
        /* Relaxed: a number (see above). Acquire on sig_go: pairs with the
         * release store at the resume, so the thread sees everything the
         * collection wrote before it goes on. */
        uint64_t r = atomic_load_explicit(&m->sig_req, memory_order_relaxed);
        if (r != atomic_load_explicit(&m->sig_go, memory_order_acquire)) {
            /* Relaxed: this handler's own earlier store. */
            if (atomic_load_explicit(&m->sig_ack, memory_order_relaxed) != r) {
                /* Release: the collector's acquire load of sig_ack sees
                 * the copy. */
                atomic_store_explicit(&m->sig_ack, r, memory_order_release);
                sem_post(&h->world.stopped_sem);
            }
            /* A collection stuck in a callback that waits for this thread
             * (or one like it) is reported from here too: when every other
             * thread was suspended by signal, no parked thread is there to
             * say it, and the stop would hang silently. */
            rudo__world_report_stuck(h, r);
        } else if (!(e & 1)) {
            break;
        }
        rudo__os_signal_wait(restart);
    }
out:
    errno = saved_errno;
}

int rudo__sigstop_init(rudo__heap *h) {
    h->world.suspend_sig = (int)h->cfg.suspend_signal;
    h->world.restart_sig = (int)h->cfg.restart_signal;
    h->world.signal_stop_ms = h->cfg.signal_stop_ms;
    if (h->world.suspend_sig == 0)
        return RUDO_OK;
    if (!rudo__os_signal_install(h->world.restart_sig, restart_handler) ||
        !rudo__os_signal_install(h->world.suspend_sig, suspend_handler)) {
        rudo__warn("rudo_heap_create", "cannot install the handlers of "
                   "signals %d and %d", h->world.suspend_sig, h->world.restart_sig);
        return RUDO_EINVAL;
    }
    return RUDO_OK;
}

void rudo__sigstop_send(rudo__heap *h, rudo__mutator *m, uint64_t seq) {
    if (atomic_load_explicit(&m->sig_req, memory_order_relaxed) != seq)
        h->world.nsignalled++;
    /* Relaxed: the handler needs only the number, and the signal is sent
     * after the store (pthread_kill is a system call: the kernel orders
     * the store before the handler runs). */
    atomic_store_explicit(&m->sig_req, seq, memory_order_relaxed);
    m->sig_sent_ns = rudo__now_ns();
    /* The thread is attached, so alive: detaching and exiting need
     * gc_lock, which the caller holds. */
    rudo__os_signal_send(m->thread, h->world.suspend_sig);
}

bool rudo__sigstop_acked(const rudo__mutator *m, uint64_t seq) {
    /* Acquire: pairs with the handler's release store, so the registers
     * and stack pointer it saved are visible. */
    return atomic_load_explicit(&m->sig_ack, memory_order_acquire) == seq;
}

bool rudo__sigstop_suspend_replaced(rudo__heap *h) {
    return !rudo__os_signal_installed(h->world.suspend_sig, suspend_handler);
}

void rudo__sigstop_send_restart(rudo__heap *h, rudo__mutator *m) {
    /* A program that replaced the restart signal's handler: sending it
     * would run theirs, or kill the process (SIGXCPU's default action
     * dumps core). Not sent then: the suspended handler's wait ends by
     * itself within RUDO_OS_WAKE_POLL_NS. */
    int sig = h->world.restart_sig;
    if (rudo__os_signal_installed(sig, restart_handler)) {
        rudo__os_signal_send(m->thread, sig);
        return;
    }
    if (!h->world.restart_warned) {
        h->world.restart_warned = true;
        rudo__warn("resume", "the program replaced the handler of signal %d (the "
                   "restart signal, RUDO_RESTART_SIGNAL): threads suspended by "
                   "signal resume only after up to %ld ms", sig,
                   RUDO_OS_WAKE_POLL_NS / 1000000);
    }
}

void rudo__sigstop_resume(rudo__heap *h, uint64_t seq) {
    for (rudo__mutator *m = h->world.mutators; m; m = m->next) {
        m->sig_last = m->sig_stopped;
        m->sig_stopped = false;
        m->sig_sent_ns = 0;
        if (atomic_load_explicit(&m->sig_req, memory_order_relaxed) != seq)
            continue;
        /* Release: the handler's acquire load sees the collection's writes
         * (the heap, the thread's pages) before the thread goes on. */
        atomic_store_explicit(&m->sig_go, seq, memory_order_release);
        rudo__sigstop_send_restart(h, m);
    }
}

void rudo__stop_pending_park(void) {
    rudo__mutator *m = rudo__me;
    if (!m)
        return;
    /* Relaxed: this thread's own flag (its handler sets it). */
    atomic_store_explicit(&m->stop_pending, 0, memory_order_relaxed);
    if (m->state == RUDO_MUT_RUNNING) {
        m->deferred_park = true;
        rudo__safepoint_slow();
        m->deferred_park = false;
    }
    /* A suspension by request that found the thread inside rudo: now that
     * it is outside, it suspends itself in its own handler (pthread_kill to
     * oneself delivers before it returns), which parks as for the
     * suspender's signal. Relaxed: the handler decides again. */
    rudo__heap *h = rudo__the_heap;
    if (rudo__sigstop_ext_due(m) && m->state == RUDO_MUT_RUNNING && h &&
        rudo__sigstop_enabled(h))
        rudo__os_signal_send(m->thread, h->world.suspend_sig);
}

bool rudo__sigstop_ext_due(const rudo__mutator *m) {
    /* Relaxed: read by m's own thread (ext_req is a number written under
     * gc_lock; ext_ack is its handler's own store); the handler's wait
     * decides again with acquire loads. */
    uint64_t e = atomic_load_explicit(&m->ext_req, memory_order_relaxed);
    return (e & 1) && atomic_load_explicit(&m->ext_ack, memory_order_relaxed) != e;
}

bool rudo__sigstop_ext_parked(const rudo__mutator *m) {
    /* Relaxed: ext_req is written only under gc_lock, which the caller
     * holds. Acquire: pairs with the handler's release store of ext_ack,
     * so the registers and stack pointer it saved are visible. */
    uint64_t e = atomic_load_explicit(&m->ext_req, memory_order_relaxed);
    return (e & 1) && atomic_load_explicit(&m->ext_ack, memory_order_acquire) == e;
}
