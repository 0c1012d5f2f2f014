/* test_thr_suspend.c — rudo_thread_suspend / rudo_thread_resume /
 * rudo_thread_is_suspended (include/rudo.h, docs/threads.md).
 *  1. A worker that spins and allocates (attached plainly, and with
 *     RUDO_ATTACH_SIGNAL) is suspended: its counter does not move while
 *     collections run, and the object only its stack holds survives them
 *     (a weak slot on it stays set, its contents intact); once resumed it
 *     makes progress again.
 *  2. A worker in a blocking region is suspended at once and stays in the
 *     region when it tries to leave, until resumed.
 *  3. A thread that suspends itself waits until another resumes it.
 *  4. Misuse gets an error code, never a hang: an unattached thread,
 *     suspending twice, resuming a thread that is not suspended.
 *  5. Suspend/resume cycles while another thread allocates and collects
 *     (TEST_LONG=1: more cycles). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rudo.h"
#include "testlib.h"

#define MASK ((uintptr_t)0x5a5a5a5a5a5a5a5aull)
#define WORDS 16

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static atomic_ulong progress;
static atomic_int stop, ready;
/* The worker's kept object, hidden from the conservative scan of statics. */
static atomic_uintptr_t hidden;

static void *fill(void) {
    uintptr_t *p = rudo_malloc(WORDS * sizeof *p);
    for (int i = 0; i < WORDS; i++)
        p[i] = (uintptr_t)p * 31u + (uintptr_t)i;
    return p;
}

static bool intact(const uintptr_t *p) {
    for (int i = 0; i < WORDS; i++)
        if (p[i] != (uintptr_t)p * 31u + (uintptr_t)i)
            return false;
    return true;
}

/* Spins and allocates; `keep` lives on its stack only. */
static void *spinner(void *arg) {
    unsigned flags = (unsigned)(uintptr_t)arg;
    if (rudo_thread_attach_flags(flags) != RUDO_OK)
        abort(); /* no CHECK off the main thread: its counters are not atomic */
    void *volatile keep = fill();
    atomic_store(&hidden, (uintptr_t)keep ^ MASK);
    atomic_store(&ready, 1);
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        void *volatile junk = rudo_malloc(48);
        (void)junk;
        atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
    }
    if (!intact(keep))
        abort();
    rudo_thread_detach();
    return NULL;
}

/* Waits (at most 10 s) until progress passes `from`. */
static bool advances(unsigned long from) {
    for (int i = 0; i < 10000; i++) {
        if (atomic_load(&progress) > from)
            return true;
        sleep_ms(1);
    }
    return false;
}

static void start(pthread_t *t, void *(*fn)(void *), void *arg) {
    atomic_store(&stop, 0);
    atomic_store(&ready, 0);
    atomic_store(&progress, 0);
    CHECK_EQ(pthread_create(t, NULL, fn, arg), 0);
    while (!atomic_load(&ready))
        sleep_ms(1);
}

/* Joins t inside a blocking region (t may need a collection to end). */
static void join(pthread_t t) {
    rudo_blocking_enter();
    pthread_join(t, NULL);
    rudo_blocking_leave();
}

static void finish(pthread_t t) {
    atomic_store(&stop, 1);
    join(t);
}

/* Suspended: no progress across collections; the kept object survives. */
static void check_suspended_across_collections(pthread_t t) {
    CHECK(rudo_thread_is_suspended(t));
    void **slot = malloc(sizeof *slot); /* not a root: malloc'd */
    *slot = (void *)(atomic_load(&hidden) ^ MASK);
    CHECK_EQ(rudo_weak_register(slot), RUDO_OK);
    unsigned long before = atomic_load(&progress);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 2000; j++) {
            void *volatile g = rudo_malloc(64);
            (void)g;
        }
        rudo_collect();
        sleep_ms(5);
    }
    CHECK_EQ(atomic_load(&progress), before);
    CHECK(*slot != NULL);
    CHECK(*slot != NULL && intact(*slot));
    rudo_weak_unregister(slot);
    free(slot);
}

static void case_running(unsigned flags) {
    pthread_t t;
    start(&t, spinner, (void *)(uintptr_t)flags);
    CHECK(!rudo_thread_is_suspended(t));
    CHECK(advances(0));
    CHECK_EQ(rudo_thread_suspend(t), RUDO_OK);
    /* Misuse on a suspended thread. */
    CHECK_EQ(rudo_thread_suspend(t), RUDO_EEXIST);
    check_suspended_across_collections(t);
    unsigned long at = atomic_load(&progress);
    CHECK_EQ(rudo_thread_resume(t), RUDO_OK);
    CHECK(!rudo_thread_is_suspended(t));
    CHECK_EQ(rudo_thread_resume(t), RUDO_ESTATE);
    CHECK(advances(at));
    finish(t);
}

/* t, suspended and stopped before its counted step: it stays suspended
 * across collections without making the step, then makes it once resumed,
 * and ends. */
static void stays_then_goes(pthread_t t) {
    check_suspended_across_collections(t);
    CHECK_EQ(atomic_load(&progress), 0);
    CHECK_EQ(rudo_thread_resume(t), RUDO_OK);
    CHECK(advances(0));
    join(t);
}

/* ---- 2. suspended in a blocking region ---- */
static atomic_int in_region;

static void *blocker(void *arg) {
    (void)arg;
    if (rudo_thread_attach() != RUDO_OK)
        abort();
    void *volatile keep = fill();
    atomic_store(&hidden, (uintptr_t)keep ^ MASK);
    rudo_blocking_enter();
    atomic_store(&in_region, 1);
    atomic_store(&ready, 1);
    while (!atomic_load(&stop))
        sleep_ms(1);
    rudo_blocking_leave(); /* parks here while suspended */
    atomic_fetch_add(&progress, 1);
    if (!intact(keep))
        abort();
    rudo_thread_detach();
    return NULL;
}

static void case_blocked(void) {
    pthread_t t;
    start(&t, blocker, NULL);
    CHECK_EQ(rudo_thread_suspend(t), RUDO_OK);
    atomic_store(&stop, 1); /* it tries to leave the region */
    sleep_ms(20);
    stays_then_goes(t);
}

/* ---- 3. suspending oneself ---- */
static void *self_suspender(void *arg) {
    (void)arg;
    if (rudo_thread_attach() != RUDO_OK)
        abort();
    void *volatile keep = fill();
    atomic_store(&hidden, (uintptr_t)keep ^ MASK);
    atomic_store(&ready, 1);
    if (rudo_thread_suspend(pthread_self()) != RUDO_OK) /* until resumed */
        abort();
    atomic_fetch_add(&progress, 1);
    if (!intact(keep))
        abort();
    rudo_thread_detach();
    return NULL;
}

static void case_self(void) {
    pthread_t t;
    start(&t, self_suspender, NULL);
    for (int i = 0; i < 10000 && !rudo_thread_is_suspended(t); i++)
        sleep_ms(1);
    sleep_ms(10);
    stays_then_goes(t);
}

/* ---- 4. misuse ---- */
static void *unattached(void *arg) {
    (void)arg;
    while (!atomic_load(&stop))
        sleep_ms(1);
    return NULL;
}

static void case_misuse(void) {
    atomic_store(&stop, 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, unattached, NULL), 0);
    CHECK_EQ(rudo_thread_suspend(t), RUDO_ENOENT);
    CHECK_EQ(rudo_thread_resume(t), RUDO_ENOENT);
    CHECK(!rudo_thread_is_suspended(t));
    CHECK_EQ(rudo_thread_resume(pthread_self()), RUDO_ESTATE);
    CHECK(!rudo_thread_is_suspended(pthread_self()));
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
}

/* ---- 5. cycles while another thread collects ---- */
static atomic_int storm_stop;

static void *storm(void *arg) {
    (void)arg;
    if (rudo_thread_attach() != RUDO_OK)
        abort();
    for (unsigned long i = 0; !atomic_load(&storm_stop); i++) {
        void *volatile g = rudo_malloc(256);
        (void)g;
        /* Then a pause: a suspension waits for no collection to run, and
         * back-to-back collections (200 ms each under TSan, which scans
         * libtsan's large static data) make the cycles three times
         * slower there. */
        if (i % 512 == 0) {
            rudo_collect();
            sleep_ms(2);
        }
    }
    rudo_thread_detach();
    return NULL;
}

static void case_cycles(void) {
    pthread_t t, s;
    start(&t, spinner, (void *)(uintptr_t)RUDO_ATTACH_SIGNAL);
    atomic_store(&storm_stop, 0);
    CHECK_EQ(pthread_create(&s, NULL, storm, NULL), 0);
    long n = test_scaled(200);
    int bad_suspend = 0, bad_moved = 0, bad_resume = 0;
    for (long i = 0; i < n; i++) {
        int rc = rudo_thread_suspend(t);
        if (rc != RUDO_OK && bad_suspend++ == 0)
            fprintf(stderr, "cycle %ld: rudo_thread_suspend gave %d\n", i, rc);
        unsigned long p = atomic_load(&progress);
        if (i % 16 == 0)
            rudo_collect();
        unsigned long q = atomic_load(&progress);
        if (q != p && bad_moved++ == 0)
            fprintf(stderr, "cycle %ld: progress moved %lu -> %lu while suspended\n", i, p, q);
        rc = rudo_thread_resume(t);
        if (rc != RUDO_OK && bad_resume++ == 0)
            fprintf(stderr, "cycle %ld: rudo_thread_resume gave %d\n", i, rc);
    }
    CHECK_EQ(bad_suspend, 0);
    CHECK_EQ(bad_moved, 0);
    CHECK_EQ(bad_resume, 0);
    CHECK(advances(atomic_load(&progress)));
    atomic_store(&storm_stop, 1);
    join(s);
    finish(t); /* the spinner aborts if its kept object was damaged */
}

int main(void) {
    test_start_watchdog();
    CHECK_EQ(rudo_thread_suspend(pthread_self()), RUDO_ESTATE); /* no heap */
    CHECK(!rudo_thread_is_suspended(pthread_self()));
    CHECK_EQ(rudo_heap_create(NULL), RUDO_OK);
    case_misuse();
    case_running(0);
    case_running(RUDO_ATTACH_SIGNAL);
    case_blocked();
    case_self();
    case_cycles();
    rudo_heap_destroy();
    return test_report();
}
