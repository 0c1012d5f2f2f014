/* test_thr_sig_late.c — a suspend signal handled late, with the context of
 * its arrival: ThreadSanitizer delivers an asynchronous signal at the
 * thread's next intercepted call, passing the context saved when it
 * arrived, while the thread has meanwhile entered deeper frames. An object
 * held only in those frames must survive the collection that stopped it.
 *
 * The test builds that case in every build, without depending on TSan's
 * timing (white box: it reads the thread's stop numbers, threads.h):
 *  1. A thread takes a context with getcontext() in a shallow frame: the
 *     "arrival". It blocks the suspend signal, so the real one will wait,
 *     and the restart signal, as the kernel (and TSan) would while the
 *     handler runs: the handler's wait relies on it to lose no restart.
 *  2. It descends (a 4 KiB alloca in between, so the frames below lie well
 *     past the red zone the scan allows below a stack pointer), allocates
 *     a probe object, keeps it only in a volatile local there, and spins
 *     without a safepoint until the collector has requested its stop.
 *  3. It calls rudo's suspend handler itself (as sigaction reports it) with
 *     the shallow context, as TSan would. The handler stops the thread; the
 *     main thread's collection runs; the handler returns at the resume.
 *  4. The probe must still be reachable through its weak reference, and
 *     its contents intact. The real signal, unblocked, then arrives stale.
 * Before the fix the scan began at the context's stack pointer: the probe's
 * frame was never scanned, and the collection cleared the weak reference
 * (test_compat_thr_inline lost objects so under TSan, 2 runs in 30). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

#include "rudo.h"
#include "testlib.h"
#include "debug/debug.h"
#include "threads/threads.h"

#if defined(__x86_64__) && defined(__linux__)

#include <alloca.h>

#define PATTERN 0x5eedf00dcafe1234ULL

static rudo_kind k_probe;
static void *weak_probe;          /* weak: not a root (no static data scan) */
static atomic_int ready;
static int sig, restart_sig;
static void (*handler)(int, siginfo_t *, void *);

/* Spins, with no safepoint, until the collector asked this thread to stop
 * (its number for the stop differs from the resume's). Relaxed: a flag
 * polled; the handler's own loads order what matters. */
static void wait_for_stop_request(void) {
    rudo__mutator *m = rudo__self();
    while (atomic_load_explicit(&m->sig_req, memory_order_relaxed) ==
           atomic_load_explicit(&m->sig_go, memory_order_relaxed))
        ;
}

static __attribute__((noinline)) int deeper(ucontext_t *arrival) {
    void *volatile probe = rudo_alloc(k_probe, 64);
    CHECK(probe != NULL);
    if (!probe)
        return 1;
    *(volatile uint64_t *)probe = PATTERN;
    weak_probe = probe;
    CHECK_EQ(rudo_weak_register(&weak_probe), RUDO_OK);
    atomic_store(&ready, 1);
    wait_for_stop_request();
    handler(sig, NULL, arrival); /* returns at the collection's resume */
    /* It was that collection's stop, by signal. */
    CHECK_EQ(rudo__debug_signal_stops(), 1u);
    rudo_stats st;
    rudo_get_stats(&st);
    CHECK_EQ(st.collections, 1u);
    CHECK(weak_probe != NULL);
    CHECK(weak_probe == probe);
    CHECK(*(volatile uint64_t *)probe == PATTERN);
    probe = NULL;
    return 0;
}

static __attribute__((noinline)) int descend(ucontext_t *arrival) {
    volatile char *pad = alloca(4096);
    pad[0] = 1;
    pad[4095] = 1;
    return deeper(arrival);
}

static void *victim(void *arg) {
    (void)arg;
    rudo_thread_attach();
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigaddset(&set, restart_sig);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
    ucontext_t arrival;
    CHECK_EQ(getcontext(&arrival), 0);
    descend(&arrival);
    /* The real suspend signal, pending since the collector sent it, is
     * stale now and ignored; the restart signal is a no-op. */
    CHECK_EQ(pthread_sigmask(SIG_UNBLOCK, &set, NULL), 0);
    rudo_thread_detach();
    return NULL;
}

int main(void) {
    test_start_watchdog();
    rudo_config cfg = test_precise_config(1);
    cfg.scan_stacks = true;      /* signal stops need the stack scan */
    cfg.signal_stop_ms = 1;      /* signal the spinning thread at once */
    int rc = rudo_heap_create(&cfg);
    CHECK_EQ(rc, RUDO_OK);
    if (rc != RUDO_OK)
        return test_report();
    sig = (int)cfg.suspend_signal;
    restart_sig = (int)cfg.restart_signal;
    struct sigaction sa;
    CHECK_EQ(sigaction(sig, NULL, &sa), 0);
    CHECK(sa.sa_flags & SA_SIGINFO);
    handler = sa.sa_sigaction;
    k_probe = rudo_kind_atomic("sig-late/probe");
    pthread_t t;
    pthread_create(&t, NULL, victim, NULL);
    while (!atomic_load(&ready))
        rudo_safepoint();
    rudo_collect(); /* stops the victim through its handler call */
    rudo_blocking_enter();
    pthread_join(t, NULL);
    rudo_blocking_leave();
    rudo_heap_destroy();
    return test_report();
}

#else
int main(void) {
    printf("test_thr_sig_late: x86-64 Linux only, skipped\n");
    return 0;
}
#endif
