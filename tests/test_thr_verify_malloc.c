/* test_thr_verify_malloc.c — with the verifier on (RUDO_VERIFY=1), a
 * collection never waits for a malloc lock that a thread suspended by
 * signal holds.
 *
 * docs/threads.md lets a thread suspended by signal hold any lock of the
 * C library it was inside, a malloc arena's included, so the collector
 * must not call malloc or free with the world stopped. The verifier's set
 * of objects given to rudo_free (kept allocated until the next
 * collection) was a calloc'd table, grown by the thread that called
 * rudo_free (in its arena) and freed by the collection: a worker that
 * calls rudo_free and malloc in a loop, suspended inside malloc, hung the
 * collection for ever (a fuzzer's find). Worker W does exactly that while
 * the main thread collects; the check is that the collections end (a
 * hang fails by the watchdog, with the stacks) and that rudo_free's
 * objects were quarantined (W's count). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "rudo.h"
#include "testlib.h"

static atomic_int stop, up;
static atomic_long frees;

static void *worker(void *arg) {
    (void)arg;
    if (rudo_thread_attach_flags(RUDO_ATTACH_SIGNAL) != RUDO_OK)
        abort();
    atomic_store(&up, 1);
    unsigned r = 1;
    long n = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int i = 0; i < 8; i++) {
            void *o = rudo_malloc(64);
            rudo_free(o); /* grows the quarantine's table, in this arena */
            n++;
        }
        for (int k = 0; k < 64; k++) {
            r = r * 1103515245u + 12345u;
            void *volatile p = malloc(16 + (r >> 16) % 4096);
            free(p);
        }
    }
    atomic_store(&frees, n);
    rudo_thread_detach();
    return NULL;
}

int main(void) {
    test_start_watchdog();
    setenv("RUDO_VERIFY", "1", 1);
    long rounds = test_scaled(TEST_UNDER_TSAN ? 100 : 400);
    for (int gen = 0; gen < 2; gen++) {
        rudo_config cfg;
        rudo_config_init(&cfg);
        cfg.scan_static_data = false;
        cfg.generational = gen;
        test_heap_create(&cfg);
        atomic_store(&stop, 0);
        atomic_store(&up, 0);
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, worker, NULL), 0);
        while (!atomic_load(&up))
            rudo_safepoint();
        for (long i = 0; i < rounds; i++) {
            if (gen && i % 4 != 0)
                rudo_collect_minor();
            else
                rudo_collect();
        }
        atomic_store(&stop, 1);
        rudo_blocking_enter();
        pthread_join(t, NULL);
        rudo_blocking_leave();
        printf("generational %d: %ld collections, %ld rudo_free calls on the worker\n", gen,
               rounds, atomic_load(&frees));
        CHECK(atomic_load(&frees) > 0);
        rudo_heap_destroy();
    }
    return test_report();
}
