/* test_thr_sigblock.c — a thread that can be neither stopped at a
 * safepoint nor signalled: it blocks the suspend signal (as Guile and ECL
 * do on some threads) and spins without polling. The collection waits for
 * it (cooperatively: rudo cannot suspend it), and after RUDO_STOP_WARN_MS
 * (here 200 ms) says so in one line that names the thread, says that it
 * blocks SIGPWR and what to do. A helper then lets the thread reach a
 * safepoint; the collection completes and the test ends. A second case
 * blocks the signal in a thread waiting in pthread_join: the same report,
 * and the collection completes when the join returns. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "rudo.h"
#include "testlib.h"

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static atomic_int release, ready;
static long worker_tid;

static void block_suspend_signal(void) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPWR);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
}

static void *spinner_main(void *arg) {
    (void)arg;
    block_suspend_signal();
    if (rudo_thread_attach() != RUDO_OK)
        abort(); /* no CHECK off the main thread: its counters are not atomic */
    pthread_setname_np(pthread_self(), "rudo-sigblock");
    worker_tid = (long)syscall(SYS_gettid);
    void *volatile mine = rudo_malloc(32);
    (void)mine;
    atomic_store(&ready, 1);
    while (!atomic_load(&release)) {
        /* no safepoint, suspend signal blocked: the misuse */
    }
    rudo_safepoint(); /* the collection waits for this */
    rudo_thread_detach();
    return NULL;
}

/* Unattached: waits until the report names the thread (or 15 s). */
static void *releaser_main(void *arg) {
    (void)arg;
    static char buf[8192];
    for (int ms = 0; ms < 15000; ms += 20) {
        if (strstr(test_captured(buf, sizeof buf), "rudo-sigblock"))
            break;
        sleep_ms(20);
    }
    atomic_store(&release, 1);
    return NULL;
}

static const char *stall(void *(*worker)(void *)) {
    static char buf[8192];
    atomic_store(&release, 0);
    atomic_store(&ready, 0);
    pthread_t w, r;
    pthread_create(&w, NULL, worker, NULL);
    while (!atomic_load(&ready))
        sleep_ms(1);
    test_capture_begin();
    pthread_create(&r, NULL, releaser_main, NULL);
    rudo_collect(); /* returns once the worker reached its safepoint */
    rudo_blocking_enter();
    pthread_join(r, NULL);
    pthread_join(w, NULL);
    rudo_blocking_leave();
    const char *text = test_captured(buf, sizeof buf);
    test_capture_end();
    printf("stderr:\n%s", text);
    return text;
}

static void check_report(const char *text) {
    char want[128];
    snprintf(want, sizeof want, "(tid %ld, name 'rudo-sigblock') blocks SIGPWR", worker_tid);
    CHECK(strstr(text, "rudo: stop the world: waited ") != NULL);
    CHECK(strstr(text, want) != NULL);
    CHECK(strstr(text, "unblock SIGPWR (the suspend signal, RUDO_SUSPEND_SIGNAL) "
                       "in attached threads, or call rudo_safepoint() in long "
                       "loops, or wrap blocking calls in rudo_blocking_enter/leave") != NULL);
}

/* ---- blocked in pthread_join with the signal blocked ------------------------- */
static void *sleeper_main(void *arg) {
    (void)arg;
    while (!atomic_load(&release))
        sleep_ms(5);
    return NULL;
}

static void *joiner_main(void *arg) {
    (void)arg;
    block_suspend_signal();
    if (rudo_thread_attach() != RUDO_OK)
        abort(); /* no CHECK off the main thread: its counters are not atomic */
    pthread_setname_np(pthread_self(), "rudo-sigblock");
    worker_tid = (long)syscall(SYS_gettid);
    pthread_t s;
    pthread_create(&s, NULL, sleeper_main, NULL);
    atomic_store(&ready, 1);
    pthread_join(s, NULL); /* no blocking region, signal blocked */
    rudo_safepoint();
    rudo_thread_detach();
    return NULL;
}

int main(void) {
    test_start_watchdog();
    setenv("RUDO_STOP_WARN_MS", "200", 1);
    CHECK_EQ(rudo_heap_create(NULL), RUDO_OK);
    check_report(stall(spinner_main));
    check_report(stall(joiner_main));
    rudo_heap_destroy();
    return test_report();
}
