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

/* The collector's wait for stopped threads is timed (stop_warn_ms): a
 * monotonic clock, so setting the wall clock does not move it. */
static void init_stopped_cv(rudo__heap *h) {
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&h->world.stopped_cv, &a);
    pthread_condattr_destroy(&a);
}

void rudo__handshake_fork_child(rudo__heap *h) {
    init_stopped_cv(h);
    pthread_cond_init(&h->world.resume_cv, NULL);
    h->world.collecting = false;
    set_stop_requested(0);
}

void rudo__handshake_init(rudo__heap *h, unsigned stop_warn_ms) {
    init_stopped_cv(h);
    h->world.stop_warn_ms = stop_warn_ms;
}

/* The monotonic time ms milliseconds from now. */
static struct timespec deadline_after(unsigned ms) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* With gc_lock held: prints one line naming every attached thread other
 * than the collector `self` that is still RUNNING, and the remedy. Such a
 * thread cannot detach or exit meanwhile (both need gc_lock), so its
 * pthread_t is valid for pthread_getname_np. */
static void report_unstopped(rudo__heap *h, rudo__mutator *self,
                             uint64_t waited_ns) {
    char line[1024], name[16];
    size_t len = 0;
    unsigned n = 0;
    for (rudo__mutator *m = h->world.mutators; m; m = m->next) {
        if (m == self || m->state != RUDO_MUT_RUNNING)
            continue;
        n++;
        if (len >= sizeof line - 64)
            continue; /* counted, not named: the line has a bound */
        if (pthread_getname_np(m->thread, name, sizeof name) != 0)
            name[0] = '\0';
        int k = snprintf(line + len, sizeof line - len,
                         name[0] ? "%smutator %u (tid %ld, name '%s')"
                                 : "%smutator %u (tid %ld)%s",
                         n > 1 ? ", " : "", (unsigned)m->id, (long)m->tid, name);
        if (k > 0)
            len += (size_t)k < sizeof line - len ? (size_t)k : sizeof line - len - 1;
    }
    if (n == 0)
        return;
    rudo__warn("stop the world", "waited %llu ms for %u attached thread%s to "
               "stop: %s%s; call rudo_safepoint() in long loops, or wrap "
               "blocking calls in rudo_blocking_enter/leave",
               (unsigned long long)(waited_ns / 1000000), n, n > 1 ? "s" : "",
               line, len >= sizeof line - 64 ? " ..." : "");
}

/* With gc_lock held and the stop requested: waits until the collector is
 * the only RUNNING thread. A thread that never polls (a loop without a
 * safepoint, a blocking call outside a blocking region) would make this
 * wait forever in silence, so after stop_warn_ms, and then after doubling
 * intervals, it says which threads it waits for. */
static void wait_for_stop(rudo__heap *h, rudo__mutator *self, uint64_t t0) {
    unsigned delay = h->world.stop_warn_ms;
    if (delay == 0) {
        while (h->world.nrunning > 1)
            rudo__lock_wait(&h->world.lock, &h->world.stopped_cv);
        return;
    }
    struct timespec deadline = deadline_after(delay);
    while (h->world.nrunning > 1) {
        if (!rudo__lock_timedwait(&h->world.lock, &h->world.stopped_cv, &deadline) ||
            h->world.nrunning <= 1)
            continue;
        report_unstopped(h, self, rudo__now_ns() - t0);
        delay = delay > STOP_WARN_MAX_MS / 2 ? STOP_WARN_MAX_MS : delay * 2;
        deadline = deadline_after(delay);
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

void rudo__lock_idle(rudo__heap *h) {
    rudo__mutator *m = rudo__self();
    if (m)
        rudo__capture_roots(m);
    rudo__lock_acquire(&h->world.lock);
    rudo__park(h, m);
}

void rudo__park(rudo__heap *h, rudo__mutator *m) {
    if (!h->world.collecting)
        return;
    if (m && m->state == RUDO_MUT_RUNNING) {
        m->state = RUDO_MUT_STOPPED;
        h->world.nrunning--;
        /* Only the last thread to stop wakes the collector, which waits
         * for nrunning == 1: one context switch instead of one per thread. */
        if (h->world.nrunning <= 1)
            pthread_cond_signal(&h->world.stopped_cv);
    }
    while (h->world.collecting)
        rudo__lock_wait(&h->world.lock, &h->world.resume_cv);
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
    rudo__capture_roots(m);
    rudo__lock_acquire(&h->world.lock);
    rudo__park(h, m);
    rudo__lock_release(&h->world.lock);
}

bool rudo__world_stop(rudo__heap *h, rudo__mutator *m, uint64_t t0) {
    rudo__lock_acquire(&h->world.lock);
    if (h->world.collecting) {
        rudo__park(h, m);
        rudo__lock_release(&h->world.lock);
        return false;
    }
    h->world.collecting = true;
    set_stop_requested(1);
    wait_for_stop(h, m, t0);
    rudo__lock_release(&h->world.lock);
    return true;
}

void rudo__world_resume(rudo__heap *h) {
    rudo__lock_acquire(&h->world.lock);
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
    rudo__mutator *m = rudo__need_mutator(fn);
    rudo__heap *h = rudo__the_heap;
    if (m->state == RUDO_MUT_BLOCKED)
        rudo__fatal(fn, "already in a blocking region (regions do not nest)");
    rudo__capture_roots(m);
    rudo__lock_acquire(&h->world.lock);
    m->state = RUDO_MUT_BLOCKED;
    rudo__tl = (struct rudo__mutator_fast *)&blocked_fast; /* only read */
    h->world.nrunning--;
    if (h->world.collecting && h->world.nrunning <= 1)
        pthread_cond_signal(&h->world.stopped_cv); /* as in rudo__park */
    rudo__lock_release(&h->world.lock);
}

void rudo_blocking_leave(void) {
    const char *fn = "rudo_blocking_leave";
    rudo__mutator *m = rudo__need_mutator(fn);
    rudo__heap *h = rudo__the_heap;
    if (m->state != RUDO_MUT_BLOCKED)
        rudo__fatal(fn, "not in a blocking region");
    rudo__lock_acquire(&h->world.lock);
    while (h->world.collecting)
        rudo__lock_wait(&h->world.lock, &h->world.resume_cv);
    m->state = RUDO_MUT_RUNNING;
    rudo__tl = &m->fast;
    h->world.nrunning++;
    rudo__lock_release(&h->world.lock);
}
