/* test_compat_thr_join.c — bdwgc's thread calls on rudo's libgc.so.1: a
 * thread made by GC_pthread_create (through gc.h's redirection of
 * pthread_create) collects 1000 times while the main thread waits in
 * GC_pthread_join; a thread that registers itself with
 * GC_register_my_thread allocates and collects; GC_do_blocking and
 * GC_call_with_gc_active nest; a registered thread that never polls is
 * suspended by signal at each of 200 collections and keeps its object;
 * GC_suspend_thread stops it (its counter does not move across
 * collections) until GC_resume_thread, a second call of either is a
 * no-op, an unregistered thread is ignored, and a finished thread not yet
 * joined is marked suspended (as bdwgc's gctest expects). */
#define GC_THREADS 1
#include <gc.h>
#include <gc/javaxfc.h>

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "compat_test.h"

static int plain_create(pthread_t *t, void *(*fn)(void *), void *arg);

#if defined(__SANITIZE_THREAD__)
#define CT_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CT_UNDER_TSAN 1
#endif
#endif
#ifndef CT_UNDER_TSAN
#define CT_UNDER_TSAN 0
#endif

static void *collector(void *arg) {
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        char *p = GC_malloc(64);
        memset(p, 1, 64);
        GC_gcollect();
    }
    return GC_malloc(8); /* a heap result, handed to the joiner */
}

static void *self_registered(void *arg) {
    struct GC_stack_base sb;
    int ok = GC_get_stack_base(&sb) == GC_SUCCESS;
    int r1 = GC_register_my_thread(&sb), r2 = GC_register_my_thread(&sb);
    if (r1 != GC_SUCCESS || r2 != GC_DUPLICATE)
        fprintf(stderr, "GC_register_my_thread: %d, then %d\n", r1, r2);
    ok = ok && r1 == GC_SUCCESS && r2 == GC_DUPLICATE;
    for (int i = 0; i < 100; i++) {
        void **p = GC_malloc(32);
        p[0] = GC_malloc(16);
        if (i % 10 == 0)
            GC_gcollect();
    }
    ok = ok && GC_thread_is_registered();
    ok = ok && GC_unregister_my_thread() == GC_SUCCESS;
    *(int *)arg = ok;
    return NULL;
}

/* A registered thread that never polls: it spins on a flag, its only
 * reference to a heap object in a local, while the main thread collects.
 * Stopped by signal at every collection (compat/threads.c); the object
 * must survive. It also blocks every signal through GC_pthread_sigmask,
 * which must leave the suspend and restart signals unblocked. */
static _Atomic int spin_stop, spin_ready; /* atomic: read by other threads (TSan) */
static volatile unsigned long spin_count;
static void *spinner(void *arg) {
    sigset_t all, now;
    sigfillset(&all);
    GC_pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    int unblocked = !sigismember(&now, SIGPWR) && !sigismember(&now, SIGXCPU);
    char *volatile p = GC_malloc(4096);
    memset(p, 0x5a, 4096);
    spin_ready = 1;
    unsigned long spins = 0;
    while (!spin_stop)
        spin_count = ++spins;
    int intact = 1;
    for (int i = 0; i < 4096; i++)
        intact = intact && p[i] == 0x5a;
    if (!unblocked || !intact)
        fprintf(stderr, "spinner: stop signals %s, object %s\n",
                unblocked ? "unblocked" : "BLOCKED", intact ? "intact" : "CHANGED");
    *(int *)arg = unblocked && intact && spins > 0;
    return NULL;
}

static _Atomic int finished;
static void *finisher(void *arg) {
    finished = 1;
    return arg;
}

static void *waiter(void *arg) {
    while (!spin_stop)
        sched_yield();
    return arg;
}

static void *active(void *data) {
    void *p = GC_malloc(16); /* allowed again inside */
    *(void **)data = p;
    return p;
}

static void *blocked(void *data) {
    return GC_call_with_gc_active(active, data);
}

int main(void) {
    GC_INIT();
    GC_allow_register_threads();
    GC_word before = GC_get_gc_no();
    pthread_t t; /* pthread_create is GC_pthread_create here */
    CHECK(pthread_create(&t, NULL, collector, NULL) == 0);
    void *res = NULL;
    CHECK(pthread_join(t, &res) == 0);
    CHECK(GC_get_gc_no() >= before + 1000);
    CHECK(GC_is_heap_ptr(res));

    int ok = 0;
    pthread_t s;
    /* A plain thread, not made by GC_pthread_create. */
    CHECK(plain_create(&s, self_registered, &ok) == 0);
    CHECK(GC_pthread_join(s, NULL) == 0);
    CHECK(ok);

#if CT_UNDER_TSAN
    /* ThreadSanitizer delivers signals only at its interceptors, and the
     * spinner calls none: it could never be stopped. */
    printf("skipped under ThreadSanitizer: a thread that never polls\n");
    if (0)
#endif
    {
    int spun = 0;
    pthread_t sp; /* GC_pthread_create */
    CHECK(pthread_create(&sp, NULL, spinner, &spun) == 0);
    while (!spin_ready)
        sched_yield(); /* registered and spinning before the collections */
    GC_word at = GC_get_gc_no();
    for (int i = 0; i < 200; i++) {
        char *q = GC_malloc(4096); /* garbage, to reuse the spinner's cells */
        memset(q, 0xa5, 4096);
        GC_gcollect();
    }
    CHECK(GC_get_gc_no() >= at + 200);
    CHECK(!GC_is_thread_suspended(sp));
    GC_suspend_thread(sp);
    CHECK(GC_is_thread_suspended(sp));
    GC_suspend_thread(sp); /* no-op */
    unsigned long c0 = spin_count;
    for (int i = 0; i < 20; i++) {
        char *q = GC_malloc(4096);
        memset(q, 0xa5, 4096);
        GC_gcollect();
    }
    CHECK(spin_count == c0);
    GC_resume_thread(sp);
    CHECK(!GC_is_thread_suspended(sp));
    GC_resume_thread(sp); /* no-op */
    for (int i = 0; i < 100000 && spin_count == c0; i++)
        sched_yield();
    CHECK(spin_count != c0);
    spin_stop = 1;
    CHECK(pthread_join(sp, NULL) == 0);
    CHECK(spun);
    }

    /* Finished, not joined: only marked (bdwgc keeps its record). */
    pthread_t f; /* GC_pthread_create */
    CHECK(pthread_create(&f, NULL, finisher, NULL) == 0);
    while (!finished)
        sched_yield();
    struct timespec ms20 = {0, 20000000};
    nanosleep(&ms20, NULL); /* past its detach */
    GC_suspend_thread(f);
    CHECK(GC_is_thread_suspended(f));
    GC_resume_thread(f);
    CHECK(!GC_is_thread_suspended(f));
    CHECK(pthread_join(f, NULL) == 0);
    /* Unregistered: ignored. */
    spin_stop = 0;
    CHECK(plain_create(&f, waiter, NULL) == 0);
    GC_suspend_thread(f);
    CHECK(!GC_is_thread_suspended(f));
    GC_resume_thread(f);
    spin_stop = 1;
    CHECK(pthread_join(f, NULL) == 0);

    void *slot = NULL;
    void *r = GC_do_blocking(blocked, &slot);
    CHECK(r != NULL && r == slot && GC_is_heap_ptr(r));
    return ct_report();
}

/* gc.h defines pthread_create as GC_pthread_create; this one is libc's. */
#undef pthread_create
static int plain_create(pthread_t *t, void *(*fn)(void *), void *arg) {
    return pthread_create(t, NULL, fn, arg);
}
