/* platform.h — everything that depends on the operating system (internal).
 *
 * Linux x86-64 is the first platform; a port replaces src/platform/os.c. */
#ifndef RUDO_PLATFORM_H
#define RUDO_PLATFORM_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Reserves `size` bytes of address space, aligned to `align` (a power of
 * two), readable and writable but backed lazily. NULL on failure. */
void *rudo__os_reserve(size_t size, size_t align);
/* Releases a reservation made by rudo__os_reserve (whole). */
void rudo__os_release(void *p, size_t size);
/* Returns the memory of [p, p+size) to the OS; it reads as zero later. */
void rudo__os_decommit(void *p, size_t size);
/* Test hook: the next rudo__os_reserve fails. */
void rudo__os_fail_next_reserve(void);
/* Maps `size` bytes (a multiple of the page size) of zeroed memory for
 * the collector's own tables; NULL on failure. No user-space lock is
 * taken (a system call only), so it is safe while other threads are
 * stopped anywhere, inside malloc too. Not subject to the test hook. */
void *rudo__os_map(size_t size);
/* Unmaps a mapping of rudo__os_map. */
void rudo__os_unmap(void *p, size_t size);

/* Initialises cv on CLOCK_MONOTONIC, the clock of rudo__now_ns and of
 * every deadline rudo waits for (rudo__lock_timedwait). */
void rudo__os_cond_init_monotonic(pthread_cond_t *cv);

/* ---- A ticker (ticker.c) ---------------------------------------------------
 * A thread, made on first use, that calls fn(arg) every period_ms
 * milliseconds until stopped, with every signal blocked. For reports that
 * must come even when every other thread waits (a collection stuck in a
 * callback of a program with one thread). */
typedef struct rudo__os_ticker {
    pthread_mutex_t mu;         /* stop, the wait */
    pthread_cond_t cv;          /* CLOCK_MONOTONIC; signalled by stop */
    pthread_t thread;
    /* Whether the thread was made: set under mu, read unlocked by start's
     * fast test (acquire/release). */
    _Atomic bool running;
    bool stop;
    unsigned period_ms;
    void (*fn)(void *);
    void *arg;
} rudo__os_ticker;
/* Before any other call. */
void rudo__os_ticker_init(rudo__os_ticker *t);
/* Makes the thread if there is none yet (cheap once it runs: one atomic
 * load). Call it while no thread is stopped: it may create a thread.
 * false if the thread cannot be made. Thread-safe. */
bool rudo__os_ticker_start(rudo__os_ticker *t, unsigned period_ms, void (*fn)(void *),
                           void *arg);
/* Ends the thread, waiting for a call of fn under way to return; t is
 * then destroyed (init again to reuse it). */
void rudo__os_ticker_stop(rudo__os_ticker *t);
/* In a forked child: forgets the thread, which the child does not have;
 * the next start makes one. */
void rudo__os_ticker_fork_child(rudo__os_ticker *t);

/* Whether every page of [lo, hi) is mapped (readable or not: a guard page
 * counts as mapped). A system call per 256 pages. */
bool rudo__os_mapped(const void *lo, const void *hi);

/* Bounds of the calling thread's stack: *hi is the highest address (the
 * stack grows down from it). false if they cannot be found. */
bool rudo__os_stack_bounds(void **lo, void **hi);

/* ---- The loaded modules' static data (loader.c) -------------------------
 * Each calls fn(lo, hi, module, arg) for every writable loaded segment of
 * the program and its shared libraries (static data: .data and .bss);
 * module numbers the modules in the loader's order, 0 for the main
 * program. */
/* With dl_iterate_phdr, which holds the loader's write lock meanwhile: it
 * waits for a thread that holds it, even one stopped for ever. */
void rudo__os_static_segments(void (*fn)(void *lo, void *hi, unsigned module, void *arg),
                              void *arg);
/* Without the lock: the loader's module list (_r_debug) and the program
 * headers mapped in memory, each range checked with mincore before it is
 * read. Safe while someone who is not unmapping holds the lock (a module
 * being unmapped by a thread that does not hold it could be read as it
 * goes); for tests, and for rudo__os_static_segments_stopped. */
void rudo__os_static_segments_unlocked(void (*fn)(void *lo, void *hi, unsigned module,
                                                  void *arg),
                                       void *arg);
/* Starts the helper thread of rudo__os_static_segments_stopped once per
 * process (again in a forked child). Call it while no thread is stopped:
 * it may create a thread. false if it cannot (the calls below then use
 * dl_iterate_phdr directly). Thread-safe. */
bool rudo__os_loader_start(void);
/* Ends the helper thread (rudo_heap_destroy: a process without a heap has
 * no use for it, and a fork is then single-threaded again), waiting at
 * most a second for it to exit. false if it gave up: the helper still
 * waits for the loader's lock, which another thread holds, and exits by
 * itself once it gets it (detached). Thread-safe. */
bool rudo__os_loader_stop(void);
/* For a caller that may run while threads are stopped: the helper thread
 * walks with dl_iterate_phdr and holds the lock while fn runs; if it has
 * not got the lock after timeout_ms (a stopped thread holds it, most
 * likely), the walk is done without it (loader.c explains why that is
 * safe then). Returns how the segments were found. Thread-safe (callers
 * take turns). */
enum { RUDO__OS_WALK_HELPER, RUDO__OS_WALK_UNLOCKED, RUDO__OS_WALK_DIRECT };
int rudo__os_static_segments_stopped(void (*fn)(void *lo, void *hi, unsigned module,
                                                void *arg),
                                     void *arg, unsigned timeout_ms);

/* Calls fn(lo, hi, arg) for every static TLS block of the calling thread
 * (one per loaded module with a PT_TLS segment whose block exists for this
 * thread), found with dl_iterate_phdr. The blocks are the calling thread's
 * own: another thread's are found only by calling this in that thread. */
void rudo__os_tls_blocks(void (*fn)(void *lo, void *hi, void *arg),
                         void *arg);

/* Register capture. A conservative scan must see the caller's values of
 * the callee-saved registers. RUDO_OS_SPILL_REGISTERS(), placed in a
 * function F, makes F's prologue store every callee-saved register in F's
 * frame before F changes any of them; RUDO_OS_FRAME_TOP() is the top of
 * F's frame (the canonical frame address: the caller's stack pointer at
 * the call). A noinline function called from F then finds all of F's
 * frame, those saved registers included, between its own frame address
 * and RUDO_OS_FRAME_TOP() of F. This is bdwgc's approach
 * (GC_with_callee_saves_pushed), and needs no register names: both GCC
 * and Clang implement the builtins on every target. */
#define RUDO_OS_SPILL_REGISTERS() __builtin_unwind_init()
#define RUDO_OS_FRAME_TOP() ((void *)__builtin_dwarf_cfa())

/* ---- Signals for suspending threads (threads/sigstop.c) -------------------
 * An SA_SIGINFO handler: the signal number, its siginfo_t and the
 * interrupted context (a ucontext_t), both opaque to the layers above. */
typedef void (*rudo__os_sig_fn)(int sig, void *info, void *context);
/* Installs fn for sig with SA_SIGINFO | SA_RESTART (system calls that the
 * signal interrupts are restarted where the kernel can) and every signal
 * blocked while it runs. false, with errno set, if sigaction refuses. */
bool rudo__os_signal_install(int sig, rudo__os_sig_fn fn);
/* Sends sig to the thread (pthread_kill). false if the thread is gone. */
bool rudo__os_signal_send(pthread_t thread, int sig);
/* Whether sig's handler is still fn, as rudo__os_signal_install left it
 * (the program may have replaced it since). */
bool rudo__os_signal_installed(int sig, rudo__os_sig_fn fn);
/* rudo__os_signal_wait returns after this long even without its signal. */
#define RUDO_OS_WAKE_POLL_NS 10000000L
/* In a signal handler: waits until a signal arrives with every signal
 * blocked but `wake` (and glibc's setxid signal, so that setuid in another
 * thread cannot deadlock on this one), or RUDO_OS_WAKE_POLL_NS passes (a
 * wake the program made the kernel drop, SIG_IGN, must not freeze the
 * thread). A raw ppoll: not a cancellation point, and glibc's
 * cancellation signal stays blocked, so a pthread_cancel cannot unwind
 * the thread from inside the handler.
 * Under ThreadSanitizer: a 50 µs sleep with every signal blocked (os.c
 * says why); callers loop until their condition holds either way.
 * Async-signal-safe. */
void rudo__os_signal_wait(int wake);
/* In a signal handler, first thing: blocks glibc's cancellation signal
 * for the rest of the handler (sigaction's mask cannot hold it). The
 * interrupted mask comes back when the handler returns. Async-signal-safe. */
void rudo__os_signal_block_cancel(void);
/* The interrupted thread's general registers from context, copied into
 * out[0 .. max-1]; returns how many words were copied. */
size_t rudo__os_context_words(const void *context, void **out, size_t max);
/* The interrupted thread's stack pointer. */
void *rudo__os_context_sp(const void *context);
/* Bytes below the stack pointer that a leaf function may use without
 * moving it (the x86-64 red zone): a scan of an interrupted thread's stack
 * starts that far below its stack pointer. */
#define RUDO_OS_RED_ZONE 128
/* 1 if the kernel thread tid of this process blocks sig, 0 if not, -1 if
 * it cannot be told (reads /proc/self/task/TID/status). */
int rudo__os_thread_blocks_signal(long tid, int sig);
/* The signal's name without "SIG" ("PWR"), or NULL if unknown. */
const char *rudo__os_signal_abbrev(int sig);
/* The highest signal number (SIGRTMAX). */
int rudo__os_signal_max(void);

/* A spin-wait hint to the CPU (x86 `pause`). */
static inline void rudo__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Monotonic clock in nanoseconds. */
uint64_t rudo__now_ns(void);

/* The rudo__now_ns time ns as a CLOCK_MONOTONIC deadline (for condition
 * variables made with rudo__os_cond_init_monotonic, sem_clockwait). */
static inline struct timespec rudo__os_mono_at(uint64_t ns) {
    return (struct timespec){(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
}

/* Number of online CPUs (at least 1). */
unsigned rudo__os_cpus(void);

#endif
