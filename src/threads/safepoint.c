/* safepoint.c — the stop-the-world handshake.
 *
 * State (under gc_lock): `collecting`, `nrunning` (attached threads in
 * RUNNING state) and each mutator's state. Protocol (docs/threads.md):
 *  1. A thread that wants a collection records its own roots, takes
 *     gc_lock; if a collection is already running it parks (step 3) and
 *     returns when it ends: concurrent requests share one collection.
 *     Otherwise it sets `collecting` and rudo__stop_requested, and waits on
 *     stopped_sem (gc_lock released) until every other thread is STOPPED,
 *     BLOCKED or suspended by signal (sigstop.c); a thread that has not
 *     stopped within signal_stop_ms, or that never polls, is signalled.
 *  2. It releases gc_lock and collects. Threads that stop, block or try to
 *     attach meanwhile take gc_lock and wait on resume_cv.
 *  3. A RUNNING thread that polls (allocation slow path, rudo_safepoint)
 *     and sees the request records its registers and stack pointer, takes
 *     gc_lock, becomes STOPPED, decrements nrunning, posts stopped_sem if
 *     the collector may be done waiting (wake_collector), and
 *     waits on resume_cv until `collecting` is false; then it is RUNNING.
 *     A thread that is STOPPED stays so across back-to-back collections
 *     (its roots cannot change while it waits); a new stop first lets the
 *     threads parked in the last one leave (let_parked_go), so that they
 *     are not starved.
 *  4. Entering a blocking region is stopping without waiting; leaving it
 *     waits while a collection runs.
 *  5. The collector takes gc_lock, lets the threads it suspended go,
 *     clears `collecting` and the request, broadcasts resume_cv, releases
 *     gc_lock, then runs finalizers.
 * Everything a mutator wrote before stopping is visible to the collector
 * and everything the collector wrote is visible to the mutator after it
 * resumes, because both sides pass through gc_lock (a thread suspended by
 * signal: through sig_ack and sig_go, sigstop.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "heap/heap.h"
#include "threads/threads.h"
#include "platform/platform.h"

RUDO_API int rudo__stop_requested;

static void set_stop_requested(int v);

/* initial-exec: set around every trace callback, so no __tls_get_addr
 * call in the shared library (as rudo__tl). */
__thread const char *rudo__tracing_kind __attribute__((tls_model("initial-exec")));

void rudo__check_context(const char *fn, const char *what) {
    /* Checked before anything that needs the thread to be attached: marker
     * helper threads are not, and the message must name the kind there too. */
    const char *kind = rudo__tracing_kind;
    if (RUDO_UNLIKELY(kind != NULL))
        rudo__fatal(fn, "called from the trace callback of kind '%s' "
                    "(trace callbacks must not %s)", kind, what);
    rudo__mutator *m = rudo__self();
    /* Reading our own state without gc_lock is safe: only the thread
     * itself ever writes it (rudo__park, the blocking calls, attach; the
     * others merely read it under gc_lock), so this read races with no
     * write. */
    if (RUDO_UNLIKELY(m && m->state == RUDO_MUT_BLOCKED))
        rudo__fatal(fn, "called inside a blocking region "
                    "(call rudo_blocking_leave first)");
}

/* The reports back off exponentially up to this interval. */
#define STOP_WARN_MAX_MS 60000u

/* A thread signalled in this stop that has not answered is signalled
 * again this often: a signal its handler deferred (it was inside rudo, in
 * a path that does not end at a safepoint) or that arrived while it was
 * parked is retried. */
#define RESIGNAL_NS 10000000u

void rudo__handshake_fork_child(rudo__heap *h) {
    /* Waiters of vanished threads may linger in the old ones. */
    sem_init(&h->world.stopped_sem, 0, 0);
    rudo__os_cond_init_monotonic(&h->world.resume_cv); /* deadlines: rudo__park */
    rudo__os_cond_init_monotonic(&h->world.left_cv);   /* deadlines: let_parked_go */
    h->world.nwaiting = 0;
    h->world.collecting = false;
    atomic_store_explicit(&h->world.stopped_at_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&h->world.stuck_next_ns, 0, memory_order_relaxed);
    set_stop_requested(0);
    rudo__os_ticker_fork_child(&h->world.watch);
}

void rudo__handshake_init(rudo__heap *h, unsigned stop_warn_ms) {
    sem_init(&h->world.stopped_sem, 0, 0);
    rudo__os_cond_init_monotonic(&h->world.resume_cv); /* deadlines: rudo__park */
    rudo__os_cond_init_monotonic(&h->world.left_cv);   /* deadlines: let_parked_go */
    h->world.stop_warn_ms = stop_warn_ms;
    rudo__os_ticker_init(&h->world.watch);
}

/* The watch's tick. stop_seq: relaxed, a label (heap.h). */
static void watch_tick(void *arg) {
    rudo__heap *h = arg;
    rudo__world_report_stuck(h, __atomic_load_n(&h->world.stop_seq, __ATOMIC_RELAXED));
}

void rudo__world_watch_start(rudo__heap *h) {
    unsigned w = h->world.stop_warn_ms;
    /* A thread that cannot be made costs the report only. */
    if (w)
        (void)rudo__os_ticker_start(&h->world.watch, w / 2 ? w / 2 : 1, watch_tick, h);
}

void rudo__world_watch_stop(rudo__heap *h) { rudo__os_ticker_stop(&h->world.watch); }

void rudo__world_doing(rudo__heap *h, const char *what) {
    atomic_store_explicit(&h->world.doing, what, memory_order_relaxed);
}

/* Wakes the collector if it may be done waiting: when no thread but it
 * and those it signalled still runs (the signalled ones post for
 * themselves). Not one post per stopping thread: one wake-up of the
 * collector, not one per thread. With gc_lock held. */
static void wake_collector(rudo__heap *h) {
    if (h->world.collecting &&
        h->world.nrunning <= 1 + h->world.nsignalled + h->world.nparked)
        sem_post(&h->world.stopped_sem);
}

/* With gc_lock held: prints one line naming every attached thread other
 * than the collector `self` that is still RUNNING, and the remedy. Such a
 * thread cannot detach or exit meanwhile (both need gc_lock), so its
 * pthread_t is valid for pthread_getname_np. */
static void report_unstopped(rudo__heap *h, rudo__mutator *self, uint64_t seq,
                             uint64_t waited_ns) {
    char line[1024], name[16], signame[24] = "";
    size_t len = 0;
    unsigned n = 0, nblocked = 0;
    if (rudo__sigstop_enabled(h)) {
        const char *ab = rudo__os_signal_abbrev(h->world.suspend_sig);
        if (ab)
            snprintf(signame, sizeof signame, "SIG%s", ab);
        else
            snprintf(signame, sizeof signame, "signal %d", h->world.suspend_sig);
    }
    for (rudo__mutator *m = h->world.mutators; m; m = m->next) {
        if (m == self || m->state != RUDO_MUT_RUNNING || rudo__sigstop_acked(m, seq) ||
            rudo__sigstop_ext_parked(m))
            continue;
        n++;
        /* Signalled and silent: it blocks the signal, or it is inside rudo
         * and has not come out (the handler then defers the stop). */
        const char *why = "";
        if (m->sig_sent_ns) {
            int b = rudo__os_thread_blocks_signal((long)m->tid, h->world.suspend_sig);
            /* Relaxed: a diagnosis its handler left. */
            bool off_stack = atomic_load_explicit(&m->sig_bad_sp, memory_order_relaxed);
            why = b == 1 ? " blocks "
                : off_stack ? " runs outside its declared stack (rudo_stack_set), "
                              "so it ignores "
                : " has not answered ";
            nblocked += b == 1;
        }
        if (len >= sizeof line - 96)
            continue; /* counted, not named: the line has a bound */
        if (pthread_getname_np(m->thread, name, sizeof name) != 0)
            name[0] = '\0';
        int k = snprintf(line + len, sizeof line - len, "%smutator %u (tid %ld%s%s%s)%s%s",
                         n > 1 ? ", " : "", (unsigned)m->id, (long)m->tid,
                         name[0] ? ", name '" : "", name, name[0] ? "'" : "",
                         why, why[0] ? signame : "");
        if (k > 0)
            len += (size_t)k < sizeof line - len ? (size_t)k : sizeof line - len - 1;
    }
    if (n == 0)
        return;
    bool replaced = rudo__sigstop_enabled(h) && rudo__sigstop_suspend_replaced(h);
    rudo__warn("stop the world", "waited %llu ms for %u attached thread%s to "
               "stop: %s%s; %s%s%s%s%s%scall rudo_safepoint() in long loops, or wrap "
               "blocking calls in rudo_blocking_enter/leave",
               (unsigned long long)(waited_ns / 1000000), n, n > 1 ? "s" : "",
               line, len >= sizeof line - 96 ? " ..." : "",
               replaced ? "the program replaced the handler of " : "",
               replaced ? signame : "",
               replaced ? " (the suspend signal, RUDO_SUSPEND_SIGNAL): restore it, or " : "",
               nblocked ? "unblock " : "", nblocked ? signame : "",
               nblocked ? " (the suspend signal, RUDO_SUSPEND_SIGNAL) in attached "
                          "threads, or " : "");
}

/* Waits on stopped_sem until it is posted or the monotonic time `until`,
 * with gc_lock released meanwhile (stopping threads need it). */
static void wait_posted(rudo__heap *h, uint64_t until) {
    struct timespec t = rudo__os_mono_at(until);
    rudo__lock_release(&h->world.lock);
    /* Not a cancellation point here: a collection runs with cancellation
     * disabled (collect.c). EINTR: a signal of the program's; the caller
     * looks again. */
    sem_clockwait(&h->world.stopped_sem, CLOCK_MONOTONIC, &t);
    rudo__lock_acquire(&h->world.lock);
}

/* Whether m still holds stop seq up: running, not the collector, and not
 * stopped by signal, for this stop or by request (rudo_thread_suspend:
 * parked in its handler across collections, never signalled again). */
static bool holds_up(const rudo__mutator *m, const rudo__mutator *self, uint64_t seq) {
    return m != self && m->state == RUDO_MUT_RUNNING && !rudo__sigstop_acked(m, seq) &&
           !rudo__sigstop_ext_parked(m);
}

/* Whether the collector signals m now (t_sig: when the delay for
 * cooperating threads ends): threads that never poll, and threads that
 * needed a signal in the last collection (they are likely still where
 * no safepoint comes: in pthread_join, on a mutex), at once; the others
 * once the delay has passed; an unanswered signal again after
 * RESIGNAL_NS. */
static bool at_once(const rudo__heap *h, const rudo__mutator *m) {
    return (m->attach_flags & RUDO_ATTACH_SIGNAL) || m->sig_last ||
           h->world.signal_stop_ms == 0;
}

static bool signal_due(const rudo__heap *h, const rudo__mutator *m, uint64_t now,
                       uint64_t t_sig) {
    if (!at_once(h, m) && now < t_sig)
        return false;
    return m->sig_sent_ns == 0 || now - m->sig_sent_ns >= RESIGNAL_NS;
}

/* With gc_lock held and the stop requested: waits until every mutator but
 * the collector is stopped at a safepoint, blocked, or suspended by
 * signal, signalling those that are due (signal_due). A thread that
 * can be neither stopped nor signalled (it never polls and blocks the
 * suspend signal, or signals are off) would make this wait forever in
 * silence, so after stop_warn_ms, and then after doubling intervals, it
 * says which threads it waits for. */
static void wait_for_stop(rudo__heap *h, rudo__mutator *self, uint64_t t0,
                          uint64_t seq, bool raised) {
    bool sig = rudo__sigstop_enabled(h);
    unsigned delay = h->world.stop_warn_ms;
    uint64_t t_warn = delay ? t0 + (uint64_t)delay * 1000000u : UINT64_MAX;
    uint64_t t_sig = sig ? t0 + (uint64_t)h->world.signal_stop_ms * 1000000u
                         : UINT64_MAX;
    /* The request is raised at the latest RESIGNAL_NS after t0 (see
     * rudo__world_stop). */
    uint64_t t_raise = t0 + RESIGNAL_NS;
    for (;;) {
        uint64_t now = rudo__now_ns(), next = t_warn;
        bool waiting = false, early = false;
        for (rudo__mutator *m = h->world.mutators; m; m = m->next) {
            if (!holds_up(m, self, seq))
                continue;
            waiting = true;
            if (!sig)
                continue;
            early |= at_once(h, m);
            if (signal_due(h, m, now, t_sig))
                rudo__sigstop_send(h, m, seq);
            uint64_t t = m->sig_sent_ns ? m->sig_sent_ns + RESIGNAL_NS : t_sig;
            if (t < next)
                next = t;
        }
        if (!raised && (!early || now >= t_raise)) {
            set_stop_requested(1);
            raised = true;
        }
        if (!raised && t_raise < next)
            next = t_raise;
        if (!waiting)
            break;
        if (now >= t_warn) {
            report_unstopped(h, self, seq, now - t0);
            delay = delay > STOP_WARN_MAX_MS / 2 ? STOP_WARN_MAX_MS : delay * 2;
            t_warn = now + (uint64_t)delay * 1000000u;
            continue;
        }
        wait_posted(h, next);
    }
    /* Every thread still RUNNING is suspended in its handler now. */
    for (rudo__mutator *m = h->world.mutators; m; m = m->next) {
        m->sig_stopped = m != self && m->state == RUDO_MUT_RUNNING;
        if (!m->sig_stopped)
            continue;
        h->world.signal_stops++;
    }
}

static void set_stop_requested(int v) {
    /* Relaxed: the flag only prompts threads to take gc_lock soon; all the
     * ordering comes from gc_lock (see the protocol above). */
    __atomic_store_n(&rudo__stop_requested, v, __ATOMIC_RELAXED);
}

/* Copies the words [from, to) to dst. They are stack frames, parts of which
 * AddressSanitizer marks as redzones: the loads are not instrumented, and
 * volatile so that the loop does not become a (checked) memcpy call. */
__attribute__((no_sanitize_address, no_sanitize_thread)) static void
copy_words(void **dst, void *const volatile *from, void *const volatile *to) {
    while (from < to)
        *dst++ = *from++;
}

/* noinline: this frame must lie below the frame of the function F that
 * expanded rudo__capture_roots (threads.h). F's prologue saved every
 * callee-saved register of F's caller in F's frame, so [here, frame_top)
 * holds them all: values still in registers when F was entered are in
 * those save slots, and values F's callers saved earlier are in their own
 * frames, above frame_top, which the scan of [frame_top, stack_hi) reads.
 * The copy is taken because F's frame need not outlive the capture:
 * rudo_blocking_enter returns to its caller, whose next calls overwrite it
 * while a collection may scan the thread. */
__attribute__((noinline)) void rudo__capture_roots_at(rudo__mutator *m, void *frame_top,
                                                      const char *fn) {
    uintptr_t w = sizeof(void *);
    void **here = (void **)((uintptr_t)__builtin_frame_address(0) & ~(w - 1));
    void **top = (void **)(((uintptr_t)frame_top + w - 1) & ~(w - 1));
    /* A stack pointer outside the declared stack (a coroutine stack that
     * was not declared) would make [sp, stack_hi) span unrelated memory:
     * refuse instead of scanning it. */
    if ((char *)here < (char *)m->stack_lo || (char *)top > (char *)m->stack_hi)
        rudo__fatal(strncmp(fn, "rudo__", 6) == 0 ? "rudo_collect" : fn,
                    "the stack pointer %p is outside the thread's stack "
                    "[%p, %p); declare the stack with rudo_stack_set",
                    (void *)here, m->stack_lo, m->stack_hi);
    size_t n = (size_t)(top - here);
    if (top < here || n > RUDO_SPILL_WORDS)
        rudo__fatal(fn, "internal error: %zu bytes of frames to save "
                    "(room for %zu)", (size_t)((char *)top - (char *)here),
                    (size_t)RUDO_SPILL_WORDS * w);
    copy_words(m->spill, here, top);
    m->nspill = n;
    m->stack_sp = top;
}

void rudo__check_not_collecting(const char *fn) {
    /* Inside a collection (on the collecting thread or a marker), a wait
     * for the end of the running one is for the collection that runs this
     * very call. */
    const char *kind = rudo__tracing_kind;
    if (RUDO_UNLIKELY(kind != NULL))
        rudo__fatal(fn, "called from the trace callback of kind '%s' (trace "
                    "callbacks must not wait for a collection to end)", kind);
}

void rudo__check_not_busy(const rudo__mutator *m, const char *fn, const char *why) {
    if (RUDO_UNLIKELY(m && m->busy))
        rudo__fatal(fn, "called from a finalizer or collection callback "
                    "while the allocation or collection that ran it is under "
                    "way %s", why);
}

void rudo__lock_idle(rudo__heap *h, const char *fn) {
    rudo__check_not_collecting(fn);
    rudo__mutator *m = rudo__self();
    /* The capture must not be interrupted by a suspension (it would save
     * its registers into the copy being made); once gc_lock is held, the
     * lock keeps the depth raised until the caller releases it. */
    rudo__runtime_enter();
    if (m)
        rudo__capture_roots(m);
    rudo__lock_acquire(&h->world.lock);
    rudo__park(h, m);
    rudo__runtime_exit();
}

void rudo__world_report_stuck(rudo__heap *h, uint64_t seq) {
    /* Relaxed: clock readings (heap.h); a stale pair from a stop that has
     * just ended fails the exchange or reports a stop that did last that
     * long. */
    uint64_t at = atomic_load_explicit(&h->world.stopped_at_ns, memory_order_relaxed);
    uint64_t next = atomic_load_explicit(&h->world.stuck_next_ns, memory_order_relaxed);
    if (!at || !next || next < at)
        return;
    uint64_t now = rudo__now_ns();
    if (now < next)
        return;
    /* The delays double (W, 2W, 4W ... after the stop), then stay at
     * STOP_WARN_MAX_MS. One waiter wins each deadline: the others see the
     * exchange fail. */
    uint64_t gap = next - at, cap = STOP_WARN_MAX_MS * 1000000ull;
    uint64_t later = next + (gap < cap ? (gap ? gap : 1) : cap);
    if (!atomic_compare_exchange_strong_explicit(&h->world.stuck_next_ns, &next, later,
                                                 memory_order_relaxed, memory_order_relaxed))
        return;
    /* Relaxed: a label (rudo__world_doing). */
    const char *doing = atomic_load_explicit(&h->world.doing, memory_order_relaxed);
    rudo__warn("collection", "the world has been stopped for %llu ms by "
               "collection %llu (%s); a trace or root callback, or a gc "
               "listener, may be waiting for a stopped thread (they must not "
               "take locks that mutators may hold) or not returning; still "
               "waiting",
               (unsigned long long)((now - at) / 1000000),
               (unsigned long long)seq, doing ? doing : "working");
}

void rudo__park(rudo__heap *h, rudo__mutator *m) {
    if (!h->world.collecting)
        return;
    if (m && m->state == RUDO_MUT_RUNNING) {
        m->state = RUDO_MUT_STOPPED;
        h->world.nrunning--;
        wake_collector(h);
    }
    h->world.nwaiting++;
    while (h->world.collecting) {
        /* Once the world is stopped, the collection is the collector's and
         * its callbacks' work alone; a wait far past stop_warn_ms is most
         * likely a callback that waits for a stopped thread (rudo.h forbids
         * it) or never returns. The first waiter past each doubling of the
         * delay says so, as the stop does for threads that do not stop. */
        if (!h->world.stop_warn_ms) {
            rudo__lock_wait(&h->world.lock, &h->world.resume_cv);
            continue;
        }
        /* Before the stop completes (next 0) the collector reports the
         * threads it waits for; look again after stop_warn_ms. */
        uint64_t next = atomic_load_explicit(&h->world.stuck_next_ns, memory_order_relaxed);
        uint64_t until = next ? next : rudo__now_ns() + (uint64_t)h->world.stop_warn_ms * 1000000u;
        struct timespec dl = rudo__os_mono_at(until);
        if (rudo__lock_timedwait(&h->world.lock, &h->world.resume_cv, &dl) &&
            h->world.collecting)
            rudo__world_report_stuck(h, h->world.stop_seq);
    }
    if (--h->world.nwaiting == 0)
        pthread_cond_broadcast(&h->world.left_cv);
    if (m && m->state == RUDO_MUT_STOPPED) {
        m->state = RUDO_MUT_RUNNING;
        h->world.nrunning++;
    }
}

void rudo__safepoint_slow(void) {
    rudo__mutator *m = rudo__self();
    rudo__heap *h = rudo__the_heap;
    /* The collector itself would park here for its own collection. */
    if (RUDO_UNLIKELY(rudo__tracing_kind != NULL))
        rudo__check_context("rudo_safepoint", "call rudo_safepoint");
    if (!m || !h)
        return;
    rudo__runtime_enter();
    rudo__capture_roots(m);
    rudo__lock_acquire(&h->world.lock);
    rudo__park(h, m);
    rudo__lock_release(&h->world.lock);
    /* Relaxed: this thread's own flag. Parked: a deferred stop is done;
     * a deferred suspension by request is not (rudo__stop_pending_park
     * serves it when the thread leaves rudo). */
    atomic_store_explicit(&m->stop_pending, rudo__sigstop_ext_due(m), memory_order_relaxed);
    rudo__runtime_exit();
}

/* How long a new stop waits, at most, for the threads still parked from
 * the last one to leave rudo__park. They were woken when it ended; this
 * is the time for them to be scheduled, not for any work of theirs. */
#define LET_GO_NS 20000000u

/* With gc_lock held and no collection running: gives the threads parked
 * in the last collection the lock first. Without it a thread that
 * collects back to back (rudo_collect in a loop, or GC stress mode)
 * retakes gc_lock as soon as it drops it, and the parked threads, woken
 * but not yet running, find the next collection under way: they never
 * run again (a test took minutes instead of seconds). They only have to
 * take the lock and leave; a thread that cannot (stopped in a debugger)
 * delays each stop by LET_GO_NS. */
static void let_parked_go(rudo__heap *h) {
    if (h->world.nwaiting == 0)
        return;
    struct timespec dl = rudo__os_mono_at(rudo__now_ns() + LET_GO_NS);
    while (h->world.nwaiting > 0 && !h->world.collecting)
        if (rudo__lock_timedwait(&h->world.lock, &h->world.left_cv, &dl))
            break; /* timed out */
}

bool rudo__world_stop(rudo__heap *h, rudo__mutator *m, uint64_t t0) {
    rudo__lock_acquire(&h->world.lock);
    let_parked_go(h);
    if (h->world.collecting) {
        rudo__park(h, m);
        rudo__lock_release(&h->world.lock);
        return false;
    }
    h->world.collecting = true;
    uint64_t seq = h->world.stop_seq + 1;
    /* Relaxed: the watch reads it as a label (heap.h). */
    __atomic_store_n(&h->world.stop_seq, seq, __ATOMIC_RELAXED);
    h->world.nsignalled = 0;
    h->world.nparked = 0;
    for (rudo__mutator *o = h->world.mutators; o; o = o->next)
        h->world.nparked += o->state == RUDO_MUT_RUNNING && rudo__sigstop_ext_parked(o);
    /* Posts left over from the last stop would only wake us early. */
    while (sem_trywait(&h->world.stopped_sem) == 0) {
    }
    /* Threads signalled at once (at_once) are signalled before the request
     * is raised, and it is raised only when they have all answered (or
     * parked, their handler having found them inside rudo), or after
     * RESIGNAL_NS: they are suspended wherever they run, as a program that
     * never polls is, rather than sent to a safepoint by the allocation
     * fast path, which polls the request (the stress test relies on it). */
    bool raise = true;
    if (rudo__sigstop_enabled(h))
        for (rudo__mutator *o = h->world.mutators; o; o = o->next)
            if (holds_up(o, m, seq) && at_once(h, o)) {
                rudo__sigstop_send(h, o, seq);
                raise = false;
            }
    if (raise)
        set_stop_requested(1);
    wait_for_stop(h, m, t0, seq, raise);
    uint64_t now = rudo__now_ns();
    atomic_store_explicit(&h->world.stopped_at_ns, now, memory_order_relaxed);
    atomic_store_explicit(&h->world.stuck_next_ns,
                          h->world.stop_warn_ms ? now + h->world.stop_warn_ms * 1000000ull : 0,
                          memory_order_relaxed);
    rudo__world_doing(h, "stopping");
    rudo__lock_release(&h->world.lock);
    return true;
}

void rudo__world_resume(rudo__heap *h) {
    rudo__lock_acquire(&h->world.lock);
    atomic_store_explicit(&h->world.stopped_at_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&h->world.stuck_next_ns, 0, memory_order_relaxed);
    rudo__sigstop_resume(h, h->world.stop_seq);
    h->world.collecting = false;
    set_stop_requested(0);
    pthread_cond_broadcast(&h->world.resume_cv);
    rudo__lock_release(&h->world.lock);
}

/* The fast-path state of a thread in a blocking region: no free lists, so
 * every rudo_alloc there takes the slow path, which aborts with a message
 * (rudo__check_context) instead of handing out a cell while a collection
 * may be sweeping the thread's pages. Only ever read. */
static const struct rudo__mutator_fast blocked_fast;

void rudo_blocking_enter(void) {
    const char *fn = "rudo_blocking_enter";
    /* Inside a collection the collecting thread would leave it BLOCKED,
     * and the matching leave would wait for that collection's end. */
    rudo__check_not_collecting(fn);
    rudo__mutator *m = rudo__need_mutator(fn);
    rudo__heap *h = rudo__the_heap;
    if (m->state == RUDO_MUT_BLOCKED)
        rudo__fatal(fn, "already in a blocking region (regions do not nest)");
    rudo__runtime_enter(); /* as in rudo__lock_idle */
    rudo__capture_roots(m);
    rudo__lock_acquire(&h->world.lock);
    m->state = RUDO_MUT_BLOCKED;
    rudo__tl = (struct rudo__mutator_fast *)&blocked_fast; /* only read */
    h->world.nrunning--;
    wake_collector(h);
    rudo__lock_release(&h->world.lock);
    rudo__runtime_leave();
}

void rudo__park_suspended(rudo__heap *h, rudo__mutator *m) {
    /* As rudo_blocking_enter, then rudo_blocking_leave. */
    m->state = RUDO_MUT_BLOCKED;
    rudo__tl = (struct rudo__mutator_fast *)&blocked_fast; /* only read */
    h->world.nrunning--;
    wake_collector(h);
    /* Only another thread's rudo_thread_resume ends the wait (an
     * unattached one may call it too, so the call cannot refuse). When no
     * other thread is attached that is most likely never: after
     * stop_warn_ms, and then at doubling delays, say so. */
    uint64_t t0 = rudo__now_ns(), delay = h->world.stop_warn_ms;
    uint64_t next = delay ? t0 + delay * 1000000u : 0;
    while (h->world.collecting || rudo__ext_suspended(m)) {
        if (!next) {
            rudo__lock_wait(&h->world.lock, &h->world.resume_cv);
            continue;
        }
        struct timespec dl = rudo__os_mono_at(next);
        if (!rudo__lock_timedwait(&h->world.lock, &h->world.resume_cv, &dl))
            continue;
        uint64_t now = rudo__now_ns();
        if (rudo__ext_suspended(m) && h->world.nmutators == 1)
            rudo__warn("rudo_thread_suspend", "mutator %u suspended itself %llu ms "
                       "ago and no other thread is attached: only "
                       "rudo_thread_resume from another thread ends the wait; "
                       "still waiting", (unsigned)m->id,
                       (unsigned long long)((now - t0) / 1000000));
        delay = delay > STOP_WARN_MAX_MS / 2 ? STOP_WARN_MAX_MS : delay * 2;
        next = now + delay * 1000000u;
    }
    m->state = RUDO_MUT_RUNNING;
    rudo__tl = &m->fast;
    h->world.nrunning++;
}

void rudo_blocking_leave(void) {
    const char *fn = "rudo_blocking_leave";
    rudo__check_not_collecting(fn); /* it waits for a running collection */
    rudo__mutator *m = rudo__need_mutator(fn);
    rudo__heap *h = rudo__the_heap;
    if (m->state != RUDO_MUT_BLOCKED)
        rudo__fatal(fn, "not in a blocking region");
    rudo__lock_acquire(&h->world.lock);
    /* Suspended by request while blocked (rudo_thread_suspend): it stays
     * in the region until resumed; its roots are those of the enter. */
    while (h->world.collecting || rudo__ext_suspended(m))
        rudo__lock_wait(&h->world.lock, &h->world.resume_cv);
    m->state = RUDO_MUT_RUNNING;
    rudo__tl = &m->fast;
    h->world.nrunning++;
    /* Relaxed: this thread's own flag; a stop deferred while it was
     * blocked belonged to a collection that has ended. */
    atomic_store_explicit(&m->stop_pending, 0, memory_order_relaxed);
    rudo__lock_release(&h->world.lock);
}
