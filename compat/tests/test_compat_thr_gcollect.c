/* test_compat_thr_gcollect.c — an explicit collection is never lost to
 * another thread's short exclusive section. bdwgc's GC_gcollect takes the
 * allocation lock, so it waits for a GC_call_with_alloc_lock function or a
 * disappearing link's registration on another thread, then collects.
 * rudo's libgc.so.1 once returned without collecting when it met one
 * (rudo_collect does so while collections are held off): Guile's weak
 * tables, which work under the lock on another thread, then kept dead
 * entries after (gc). Here a second thread runs such sections without
 * pause (the lock's function, a link's registration, move and removal)
 * while the main thread asks for collections: each GC_gcollect and each
 * GC_try_to_collect must advance GC_get_gc_no, and a link to an object
 * dropped before the request must be cleared by it. Then forks, with
 * those sections and collections running on two other threads: the child
 * must not inherit the allocation lock held (a child of bdwgc's gctest
 * once hung so in GC_gcollect); it collects, takes the lock and exits.
 * Also run on the system's bdwgc. */
#define GC_THREADS 1
#include <gc.h>

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ThreadSanitizer ends a child that starts threads after a multi-threaded
 * fork unless told otherwise; the children here collect, which
 * starts marker threads. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "die_after_fork=0"; }

#include "compat_gc_test.h"
#include "compat_test.h"

static atomic_int stop, forking;
static atomic_long sections;

/* While the main thread forks: its fork handler needs the allocation lock,
 * which these loops take again as soon as they drop it (a mutex is not
 * fair). Under AddressSanitizer a collection scans ~10 MiB of the
 * runtime's static data word by word, and the main thread starved for
 * minutes (CI's ASan stage timed out at 300 s). A pause after each turn
 * lets it in; the loops still run while it forks. */
static void pause_if_forking(void) {
    if (atomic_load(&forking))
        usleep(200);
}

/* Long enough that a request often arrives inside one (about 100 µs). */
static void *busy(void *data) {
    (void)data;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 100000);
    return NULL;
}

static void *worker(void *arg) {
    (void)arg;
    void **slots = malloc(2 * sizeof *slots); /* not scanned */
    void *keep = GC_malloc(32);               /* on this stack: live */
    while (!atomic_load(&stop)) {
        GC_call_with_alloc_lock(busy, NULL);
        slots[0] = (void *)GC_HIDE_POINTER(keep);
        GC_general_register_disappearing_link(&slots[0], keep);
        GC_move_disappearing_link(&slots[0], &slots[1]);
        GC_unregister_disappearing_link(&slots[1]);
        atomic_fetch_add(&sections, 1);
        pause_if_forking();
    }
    free(slots);
    return keep; /* keeps it live to the end */
}

static int never(void) { return 0; }

static void *collector(void *arg) {
    (void)arg;
    while (!atomic_load(&stop)) {
        GC_gcollect();
        pause_if_forking();
    }
    return NULL;
}

/* Forks n children; returns how many did not exit 0 within 20 s each. */
static int fork_children(int n) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            GC_gcollect();
            GC_call_with_alloc_lock(busy, NULL);
            void *p = GC_malloc(64);
            _exit(p ? 0 : 3);
        }
        if (pid < 0) {
            bad++;
            continue;
        }
        int status = 0, waited = 0;
        while (waitpid(pid, &status, WNOHANG) == 0) {
            if (++waited > 20000) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                fprintf(stderr, "fork %d: the child hung\n", i);
                break;
            }
            usleep(1000);
        }
        bad += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    return bad;
}

static void **dead_slot; /* malloc'd: not scanned */

__attribute__((noinline)) static void make_dead_linked(void) {
    void *o = GC_malloc(48);
    *dead_slot = (void *)GC_HIDE_POINTER(o);
    CHECK(GC_general_register_disappearing_link(dead_slot, o) == GC_SUCCESS);
}

int main(void) {
    GC_INIT();
    dead_slot = malloc(sizeof *dead_slot);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker, NULL) == 0); /* GC_pthread_create */
    while (atomic_load(&sections) < 3)
        ; /* the worker is under way */
    int rounds = 200, lost = 0, tried_lost = 0, not_cleared = 0;
    for (int r = 0; r < rounds; r++) {
        GC_word n0 = GC_get_gc_no();
        GC_gcollect();
        if (GC_get_gc_no() == n0)
            lost++;
        n0 = GC_get_gc_no();
        if (!GC_try_to_collect(never) || GC_get_gc_no() == n0)
            tried_lost++;
        if (r % 20 == 0) {
            /* A dead object's link: one request clears it (no stale
             * pointer to it: made in a frame that has returned, then
             * scrubbed, and the link is in malloc'd memory). */
            make_dead_linked();
            scrub();
            GC_gcollect();
            not_cleared += *dead_slot != NULL;
            GC_unregister_disappearing_link(dead_slot);
        }
    }
    pthread_t c;
    atomic_store(&forking, 1);
    CHECK(pthread_create(&c, NULL, collector, NULL) == 0);
    int forks = 40, bad_forks = fork_children(forks);
    atomic_store(&stop, 1);
    long s = atomic_load(&sections);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(pthread_join(c, NULL) == 0);
    printf("fork: %d children with sections and collections running, %d failed\n",
           forks, bad_forks);
    CHECK(bad_forks == 0);
    printf("gcollect: %d rounds against %ld exclusive sections: GC_gcollect lost %d, "
           "GC_try_to_collect lost %d, links not cleared %d of %d\n",
           rounds, s, lost, tried_lost, not_cleared, (rounds + 19) / 20);
    CHECK(lost == 0);
    CHECK(tried_lost == 0);
    CHECK(not_cleared == 0);
    CHECK(s > rounds / 10); /* the sections did run meanwhile */
    free(dead_slot);
    return ct_report();
}
