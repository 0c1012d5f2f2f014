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

#include "alloc/alloc.h"
#include "base/lock.h"
#include "platform/platform.h"
#include "rudo.h"

/* ---- mutator.c: attached threads ---------------------------------------- */
enum rudo__mutator_state {
    RUDO_MUT_RUNNING = 0, /* may touch the heap */
    RUDO_MUT_STOPPED = 1, /* parked at a safepoint until the collection ends */
    RUDO_MUT_BLOCKED = 2, /* in a blocking region: promises not to touch it */
};

/* A thread adds what it counts to the heap's shared counters once
 * trigger / RUDO_COUNT_SHARE bytes gathered in either of its two counts
 * (rudo__mutator.count_pending, charge_pending), at most
 * RUDO_COUNT_BATCH_MAX (4 pages). Each other thread's unflushed charge is
 * below that batch, so a collection starts less than (threads - 1) * batch
 * bytes after the trigger is reached: 64 KiB (a page) per thread with the
 * default 4 MiB initial_heap, at most 256 KiB per thread, 1/64 of the
 * trigger, on large heaps. */
#define RUDO_COUNT_SHARE 64
#define RUDO_COUNT_BATCH_MAX ((uint64_t)256 << 10)

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
    /* Per-thread statistics (rudo_get_thread_stats), written by the thread
     * itself (bytes) or as the collector it ran (collections, time). */
    uint64_t bytes_allocated, collections, collect_ns;
    /* How many rudo calls of this thread are under way that run program
     * code (a collection's callbacks and finalizers) and use the thread's
     * state or the heap again after it returns: an allocation, a
     * collection, rudo_run_finalizers. rudo_thread_detach and
     * rudo_heap_destroy abort meanwhile (they would free that state).
     * Only the thread itself reads or writes it. */
    unsigned busy;
    /* The out-of-memory handler runs (gc/alloc_slow.c): an allocation it
     * makes that fails too aborts with a message instead of calling it
     * again, which would recurse until the stack overflowed. Thread's own. */
    bool in_oom;
    /* Not yet added to the heap's counters (gc/alloc_slow.c), each below
     * the batch (RUDO_COUNT_SHARE) between the thread's slow paths:
     * count_pending, bytes taken (refills' free cells, large objects) for
     * bytes_allocated; charge_pending, bytes of cells known allocated (its
     * retired full pages, large objects) for alloc_since_gc. Written by
     * the thread inside rudo, or for it by the collector with the world
     * stopped (folded in at each collection), at detach, in the forked
     * child; count_pending is read relaxed by rudo_get_stats. One writer
     * at any time: relaxed load and store (atomic only for that reader). */
    _Atomic uint64_t count_pending;
    uint64_t charge_pending;
    /* The bytes of charge_pending flushed since the last collection: this
     * thread's share of the cycle's allocation, which the collector reads
     * and zeroes with the world stopped (the per-thread nursery: gc/
     * collect.c). Written as charge_pending is. */
    uint64_t cycle_charged;
    rudo_root_fn root_fn;           /* rudo_thread_root_callback */
    void *root_data;
    /* Scoped handles: the chunks are reached from fast.hbase; one emptied
     * chunk is kept aside for reuse (handles.c). */
    void *hspare;
    /* The thread's last large object and its size (gc/alloc_slow.c): if
     * a collection stops the thread by signal before its next allocation
     * or safepoint, the object is old afterwards, yet rudo.h lets the
     * thread store into it without the barrier; the collection dirties its
     * cards (collect.c), as thawing does for the small cells. Only the
     * thread writes them; the collector reads them with the world stopped. */
    void *fresh_large;
    size_t fresh_large_len;
    /* Parked by a deferred stop (rudo__stop_pending_park): the suspend
     * signal found the thread inside a rudo call that is no safepoint by
     * rudo.h (rudo_base, rudo_write_range ...), and it parked on leaving.
     * Its fresh objects keep their exemption from the barrier, as a thread
     * stopped by signal does: the collection freezes and thaws its pages
     * as for one (collect.c). Written by the thread before it takes
     * gc_lock to park and after it has left; read by the collector while
     * it is parked. */
    bool deferred_park;
    struct rudo__mutator *next, *prev;
    /* Signal suspension (sigstop.c, docs/threads.md). attach_flags: the
     * RUDO_ATTACH_* flags it attached with. The three sequence numbers
     * are the handshake with the thread's suspend handler: the collector
     * stores sig_req (the stop's number) before it sends the signal; the
     * handler, once it saved the registers, stores sig_ack; the collector
     * stores sig_go at the resume, and the handler returns when it sees
     * it. A signal whose sig_req equals sig_go is stale and ignored. */
    unsigned attach_flags;
    _Atomic uint64_t sig_req, sig_ack, sig_go;
    /* Set by the handler when it found the thread inside rudo
     * (rudo__in_runtime > 0): the thread parks when it leaves. Only this
     * thread and its handler touch it. */
    _Atomic int stop_pending;
    /* Written by the handler before sig_ack (release): the interrupted
     * general registers and where the stack scan starts (the interrupted
     * stack pointer less the red zone). sig_bad_sp: the last signal found
     * that pointer outside [stack_lo, stack_hi), and did not stop. */
    void *sig_sp;
    _Atomic bool sig_bad_sp;
    size_t nsig_regs;
    void *sig_regs[32];
    /* The collector's own (under gc_lock or with the world stopped):
     * stopped by signal in the current collection (its roots are the
     * sig_* copy, its pages stay current: alloc.c); stopped by signal
     * in the last one (signalled at once in the next); when it was last
     * signalled in this stop (0 = not yet). */
    bool sig_stopped, sig_last;
    uint64_t sig_sent_ns;
    /* Suspension by request (rudo_thread_suspend, suspend.c). ext_req is
     * odd while the thread is suspended by request: it grows by one at
     * each suspend and resume, written under gc_lock with no collection
     * running, read by the thread's suspend handler. ext_ack: the value
     * of ext_req the handler parked for, stored (release) after it saved
     * the registers; while the two are equal and odd the thread is parked
     * in its handler, and collections treat it as stopped by signal. */
    _Atomic uint64_t ext_req, ext_ack;
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
/* Adds m's unflushed counts to the heap's counters and zeroes them.
 * Called by m itself, or for m by a thread that owns it: the collector
 * with the world stopped, detach, the forked child. */
static inline void rudo__mutator_count_flush(struct rudo__heap *h, rudo__mutator *m) {
    /* Relaxed: counters (see the fields); the caller is m's one writer. */
    uint64_t n = atomic_load_explicit(&m->count_pending, memory_order_relaxed);
    if (n) {
        atomic_fetch_add_explicit(&h->bytes_allocated, n, memory_order_relaxed);
        atomic_store_explicit(&m->count_pending, 0, memory_order_relaxed);
    }
    if (m->charge_pending) {
        atomic_fetch_add_explicit(&h->alloc_since_gc, m->charge_pending,
                                  memory_order_relaxed);
        m->cycle_charged += m->charge_pending;
        m->charge_pending = 0;
    }
}
/* Attach/detach internals used by heap creation and destruction. */
int rudo__mutator_attach(unsigned flags);
void rudo__mutator_detach(rudo__mutator *m);
void rudo__mutators_init(void);
/* In a forked child, with gc_lock and heap_lock held and no collection
 * running: forgets every mutator but the calling thread's (their threads
 * do not exist in the child; their pages go back to the heap) and resets
 * the handshake. */
void rudo__mutators_fork_child(struct rudo__heap *h);

/* ---- the runtime depth (base/lock.h) ------------------------------------- */
/* Leaves rudo code entered with rudo__runtime_enter; if the suspend
 * handler found the thread inside and it is now outside, parks it at a
 * safepoint (the collection is waiting for it). */
void rudo__stop_pending_park(void);
static inline void rudo__runtime_leave(void) {
    if (rudo__runtime_exit() == 0 &&
        /* Relaxed: written by this thread's own signal handler. */
        RUDO_UNLIKELY(rudo__me && atomic_load_explicit(&rudo__me->stop_pending,
                                                       memory_order_relaxed)))
        rudo__stop_pending_park();
}

/* ---- sigstop.c: suspending threads with a signal ------------------------- */
struct rudo__heap;
/* Checks the signal settings of a config: RUDO_OK, or RUDO_EINVAL after a
 * "rudo: rudo_heap_create: ..." message (equal signals, one that cannot
 * be caught or that the program's faults use). */
int rudo__sigstop_check(const rudo_config *c);
/* At heap creation: records the settings and installs both handlers (they
 * stay installed after the heap is destroyed: a late signal is ignored).
 * RUDO_OK, or RUDO_EINVAL with a message if sigaction refuses. */
int rudo__sigstop_init(struct rudo__heap *h);
/* True if the collector may suspend threads with signals. */
bool rudo__sigstop_enabled(const struct rudo__heap *h);
/* With gc_lock held: sends the suspend signal to m for stop `seq`. */
void rudo__sigstop_send(struct rudo__heap *h, rudo__mutator *m, uint64_t seq);
/* With gc_lock held: whether m's handler acknowledged stop `seq`. */
bool rudo__sigstop_acked(const rudo__mutator *m, uint64_t seq);
/* With gc_lock held: whether m is parked in its suspend handler by
 * request (rudo_thread_suspend), its registers saved. */
bool rudo__sigstop_ext_parked(const rudo__mutator *m);
/* Whether m is suspended by request and its handler has not parked for
 * it yet (a hint for m's own thread, which leaves rudo to be suspended). */
bool rudo__sigstop_ext_due(const rudo__mutator *m);
/* With gc_lock held: whether m is suspended by request (it may not have
 * stopped yet). */
static inline bool rudo__ext_suspended(const rudo__mutator *m) {
    /* Relaxed: written only under gc_lock, which the caller holds. */
    return atomic_load_explicit(&m->ext_req, memory_order_relaxed) & 1;
}
/* With gc_lock held, no collection running, m the calling thread, RUNNING
 * and suspended by request (its roots captured): waits as in a blocking
 * region until it is resumed (rudo_thread_resume) and no collection runs. */
void rudo__park_suspended(struct rudo__heap *h, rudo__mutator *m);
/* With gc_lock held, at the resume: lets every thread signalled in stop
 * `seq` go (sig_go, then the restart signal). */
void rudo__sigstop_resume(struct rudo__heap *h, uint64_t seq);
/* Sends m the restart signal, unless the program replaced its handler
 * (then warns once: the thread's handler stops waiting by itself within
 * RUDO_OS_WAKE_POLL_NS). Under gc_lock. */
void rudo__sigstop_send_restart(struct rudo__heap *h, rudo__mutator *m);
/* Whether the program replaced the suspend signal's handler since the heap
 * installed it (the stop report says so). */
bool rudo__sigstop_suspend_replaced(struct rudo__heap *h);

/* ---- handles.c: a mutator's scoped handle slots (precise roots) ---------- */
void rudo__handles_enumerate(rudo__mutator *m, rudo__root_visitor *v);
void rudo__handles_free(rudo__mutator *m);
/* True if m's handle state keeps its invariant (handles.c). */
bool rudo__handles_ok(const rudo__mutator *m);


/* ---- safepoint.c: the stop-the-world handshake ---------------------------- */
struct rudo__heap;
/* Called by a thread that wants a collection, after capturing its roots;
 * t0 is when it asked. If a collection is already running, parks m until
 * it ends and returns false: concurrent requests share one collection.
 * Otherwise sets `collecting` and the stop request, waits (saying after
 * stop_warn_ms which threads it waits for) until m is the only running
 * thread, and returns true: the world is stopped until rudo__world_resume.
 * Both take and release gc_lock. */
bool rudo__world_stop(struct rudo__heap *h, rudo__mutator *m, uint64_t t0);
/* Ends the collection: clears `collecting` and the stop request and wakes
 * every parked thread. */
void rudo__world_resume(struct rudo__heap *h);
/* The collector, with the world stopped: names what it does now, for the
 * report a parked thread prints when the stop lasts (rudo__park). */
void rudo__world_doing(struct rudo__heap *h, const char *what);
/* Called by threads that wait for a stop to end, parked (gc_lock held) or
 * in the suspend handler (no lock): once the stop has lasted past its next
 * report deadline (stop_warn_ms, then doubling), the one caller that
 * advances the deadline says that the world is still stopped, by
 * collection seq, and what the collector is doing. Uses only atomics, the
 * monotonic clock and rudo__warn, whose formatting (%llu, %s) neither
 * allocates nor locks: usable in a signal handler. */
void rudo__world_report_stuck(struct rudo__heap *h, uint64_t seq);
/* Starts the watch if it is not running yet (stop_warn_ms 0: never): a
 * thread that calls rudo__world_report_stuck every stop_warn_ms / 2 ms.
 * The waiters above are not always there: in a program with one thread
 * and one marker, a trace or root callback stuck on the collector left
 * nobody to say so (and with several markers, a collection whose every
 * marker is stuck in a callback, or whose other threads are all in
 * blocking regions). Call it while no thread is stopped (it may create a
 * thread); cheap once the watch runs. Thread-safe. */
void rudo__world_watch_start(struct rudo__heap *h);
/* Ends the watch (rudo_heap_destroy). */
void rudo__world_watch_stop(struct rudo__heap *h);
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
int rudo__mutator_stack_init(rudo__heap *h, rudo__mutator *m);
struct rudo__heap;
/* Takes gc_lock at a moment when no collection runs; while it waits, an
 * attached caller parks as at a safepoint (the collection may be waiting
 * for it). The caller releases gc_lock. Aborts, naming fn, if called from
 * inside a collection (a trace or root callback, a listener's begin or
 * phase: rudo__tracing_kind set), which would wait for itself. */
void rudo__lock_idle(struct rudo__heap *h, const char *fn);
/* With gc_lock held: if a collection is running, park m as stopped until
 * no collection runs. m may be NULL (not attached: just wait). */
void rudo__park(struct rudo__heap *h, rudo__mutator *m);
/* bdwgc's pair: SIGPWR suspends, SIGXCPU restarts (rudo_config). */
#define RUDO_SUSPEND_SIGNAL_DEFAULT 30
#define RUDO_RESTART_SIGNAL_DEFAULT 24
/* How long a collection waits for a thread at a safepoint before it
 * signals it (rudo_config.signal_stop_ms). */
#define RUDO_SIGNAL_STOP_DEFAULT_MS 2u
/* Delay before the first "not stopped" report (RUDO_STOP_WARN_MS). */
#define RUDO_STOP_WARN_DEFAULT_MS 2000u
/* At heap creation: initialises stopped_sem and sets stop_warn_ms (0 =
 * never report). */
void rudo__handshake_init(struct rudo__heap *h, unsigned stop_warn_ms);
/* In a forked child, with gc_lock held and no collection running: makes
 * the handshake's condition variable and semaphore new (waiters of vanished threads may
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
/* Aborts with "rudo: fn: ..." if the calling thread runs inside a
 * collection (a trace or root callback, a listener's begin or phase:
 * rudo__tracing_kind set), where fn, which waits for the end of any
 * running collection, would wait for its own. */
void rudo__check_not_collecting(const char *fn);
/* Aborts with "rudo: fn: ..." if m (the caller's mutator, or NULL) is
 * busy (rudo__mutator.busy): fn would free what the call under way uses
 * when the finalizer or callback returns; `why` ends the message. */
void rudo__check_not_busy(const rudo__mutator *m, const char *fn, const char *why);

#endif
