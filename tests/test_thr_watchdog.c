/* test_thr_watchdog.c — a collection that waits for a thread that never
 * polls says so: after RUDO_STOP_WARN_MS (here 200 ms), then after doubling
 * intervals, one line on stderr names every attached thread that has not
 * stopped (rudo mutator id, kernel tid, pthread name) and the remedy.
 * Cases: two threads spinning without a safepoint; a thread blocked on a
 * pthread mutex outside a blocking region; RUDO_STOP_WARN_MS=0 (silent);
 * an invalid value (a warning, the default is used). Before the fix the
 * collection waited in silence: the helper that releases the threads
 * gives up after 15 s and the checks fail. These cases run with signal
 * suspension off (RUDO_SUSPEND_SIGNAL=0), where such threads can only be
 * waited for; with it on they are suspended by signal, and
 * test_thr_sigblock checks the report for a thread that blocks the
 * signal. */
#include <pthread.h>
#include <sched.h>
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

static size_t count(const char *hay, const char *needle) {
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* ---- the threads that do not stop ------------------------------------------ */
static atomic_int release, nready;
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;

typedef struct worker {
    const char *name;
    bool use_mutex; /* wait in pthread_mutex_lock, else spin */
    pthread_t thread;
    long tid;
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    rudo_thread_attach();
    pthread_setname_np(pthread_self(), w->name);
    w->tid = (long)syscall(SYS_gettid);
    void *volatile mine = rudo_malloc(48);
    (void)mine;
    atomic_fetch_add(&nready, 1);
    if (w->use_mutex) {
        pthread_mutex_lock(&held); /* no blocking region: the misuse */
        pthread_mutex_unlock(&held);
    } else {
        while (!atomic_load(&release)) {
            /* no rudo_safepoint(): the misuse */
        }
    }
    rudo_safepoint();
    rudo_thread_detach();
    return NULL;
}

/* Unattached helper: waits until every worker was named in `want_lines`
 * report lines (or 15 s), then lets the workers go. */
typedef struct releaser {
    worker *w;
    int nw;
    size_t want_lines;
    long waited_ms;
} releaser;

static void *releaser_main(void *arg) {
    releaser *r = arg;
    static char buf[16384];
    for (r->waited_ms = 0; r->waited_ms < 15000; r->waited_ms += 20) {
        const char *text = test_captured(buf, sizeof buf);
        bool all = true;
        for (int i = 0; i < r->nw; i++)
            if (count(text, r->w[i].name) < r->want_lines)
                all = false;
        if (all)
            break;
        sleep_ms(20);
    }
    atomic_store(&release, 1);
    return NULL;
}

/* Unattached: holds `held` until the release. */
static atomic_int holding;
static void *holder_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&held);
    atomic_store(&holding, 1);
    while (!atomic_load(&release))
        sleep_ms(5);
    pthread_mutex_unlock(&held);
    return NULL;
}

/* Starts the workers, collects while they do not stop, and returns what
 * stderr received (static buffer). */
static const char *stall_collection(worker *w, int nw, size_t want_lines) {
    static char buf[16384];
    atomic_store(&release, 0);
    atomic_store(&nready, 0);
    pthread_t holder;
    atomic_store(&holding, 0);
    if (w[0].use_mutex) {
        pthread_create(&holder, NULL, holder_main, NULL);
        while (!atomic_load(&holding))
            sched_yield();
    }
    for (int i = 0; i < nw; i++)
        pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
    while (atomic_load(&nready) < nw)
        sched_yield();
    test_capture_begin();
    releaser r = {w, nw, want_lines, 0};
    pthread_t rt;
    pthread_create(&rt, NULL, releaser_main, &r);
    rudo_collect(); /* returns once the workers reached rudo_safepoint */
    rudo_blocking_enter();
    pthread_join(rt, NULL);
    if (w[0].use_mutex)
        pthread_join(holder, NULL);
    for (int i = 0; i < nw; i++)
        pthread_join(w[i].thread, NULL);
    rudo_blocking_leave();
    const char *text = test_captured(buf, sizeof buf);
    test_capture_end();
    printf("released after %ld ms; stderr:\n%s", r.waited_ms, text);
    return text;
}

/* The "waited N ms" figure of the report line `line` (0-based), or -1. */
static long waited_ms(const char *text, int line) {
    const char *p = text;
    for (int i = 0; i <= line; i++) {
        p = strstr(p, "rudo: stop the world: waited ");
        if (!p)
            return -1;
        if (i < line)
            p++;
    }
    return strtol(p + strlen("rudo: stop the world: waited "), NULL, 10);
}

static const char remedy[] = "call rudo_safepoint() in long loops, or wrap "
                             "blocking calls in rudo_blocking_enter/leave";

static void test_spinners(void) {
    worker w[2] = {{"rudo-spin-a", false, 0, 0}, {"rudo-spin-b", false, 0, 0}};
    const char *text = stall_collection(w, 2, 2);
    size_t lines = count(text, "rudo: stop the world: ");
    CHECK(lines >= 2);
    /* One line per round, naming both threads. */
    CHECK_EQ(count(text, "name 'rudo-spin-a'"), lines);
    CHECK_EQ(count(text, "name 'rudo-spin-b'"), lines);
    CHECK_EQ(count(text, remedy), lines);
    CHECK(strstr(text, "for 2 attached threads to stop: mutator ") != NULL);
    for (int i = 0; i < 2; i++) {
        char want[96];
        snprintf(want, sizeof want, "(tid %ld, name '%s')", w[i].tid, w[i].name);
        CHECK(strstr(text, want) != NULL);
    }
    /* Exponential backoff: 200 ms, then 400 more. */
    CHECK(waited_ms(text, 0) >= 200);
    CHECK(waited_ms(text, 1) >= 600);
}

static void test_mutex_waiter(void) {
    worker w[1] = {{"rudo-mutexwait", true, 0, 0}};
    const char *text = stall_collection(w, 1, 1);
    char want[96];
    snprintf(want, sizeof want, "for 1 attached thread to stop: mutator ");
    CHECK(strstr(text, want) != NULL);
    snprintf(want, sizeof want, "(tid %ld, name 'rudo-mutexwait')", w[0].tid);
    CHECK(strstr(text, want) != NULL);
    CHECK(strstr(text, remedy) != NULL);
}

/* Recreates the heap with RUDO_STOP_WARN_MS set to v; returns what heap
 * creation printed (static buffer). It must return want_rc; a failed
 * creation is retried without the variable, so a heap exists after. */
static const char *recreate(const char *v, int want_rc) {
    static char buf[4096];
    if (rudo_heap_exists())
        rudo_heap_destroy();
    setenv("RUDO_STOP_WARN_MS", v, 1);
    test_capture_begin();
    int rc = rudo_heap_create(NULL);
    const char *text = test_captured(buf, sizeof buf);
    test_capture_end();
    CHECK_EQ(rc, want_rc);
    if (rc != RUDO_OK) {
        unsetenv("RUDO_STOP_WARN_MS");
        CHECK_EQ(rudo_heap_create(NULL), RUDO_OK);
    }
    return text;
}

/* With 0 the collector waits without a word: a helper releases the
 * spinner after 700 ms, and nothing is printed. */
static void *timed_release(void *arg) {
    (void)arg;
    sleep_ms(700);
    atomic_store(&release, 1);
    return NULL;
}

static void test_disabled(void) {
    recreate("0", RUDO_OK);
    worker w = {"rudo-silent", false, 0, 0};
    atomic_store(&release, 0);
    atomic_store(&nready, 0);
    pthread_create(&w.thread, NULL, worker_main, &w);
    while (atomic_load(&nready) < 1)
        sched_yield();
    static char buf[4096];
    test_capture_begin();
    pthread_t t;
    pthread_create(&t, NULL, timed_release, NULL);
    rudo_collect();
    rudo_blocking_enter();
    pthread_join(t, NULL);
    pthread_join(w.thread, NULL);
    rudo_blocking_leave();
    const char *text = test_captured(buf, sizeof buf);
    test_capture_end();
    CHECK(strstr(text, "stop the world") == NULL);
}

static void test_invalid(void) {
    const char *text = recreate("soon", RUDO_EINVAL);
    CHECK(strstr(text, "rudo: rudo_heap_create: invalid RUDO_STOP_WARN_MS='soon'") != NULL);
    text = recreate("-5", RUDO_EINVAL);
    CHECK(strstr(text, "invalid RUDO_STOP_WARN_MS='-5'") != NULL);
    text = recreate("200", RUDO_OK);
    CHECK(text[0] == '\0');
}

int main(void) {
    test_start_watchdog();
    setenv("RUDO_SUSPEND_SIGNAL", "0", 1);
    setenv("RUDO_STOP_WARN_MS", "200", 1);
    int rc = rudo_heap_create(NULL);
    CHECK_EQ(rc, RUDO_OK);
    if (rc != RUDO_OK)
        return test_report();
    test_spinners();
    test_mutex_waiter();
    test_disabled();
    test_invalid();
    rudo_heap_destroy();
    return test_report();
}
