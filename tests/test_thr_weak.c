/* test_thr_weak.c — weak slots under threads: several attached threads
 * register, unregister and move weak slots, drop and keep their targets
 * and collect, while the others do the same. Each thread keeps a model:
 * after a rudo_collect (a collection whose marking came after the call),
 * a slot whose target it keeps points to it, a slot whose target it
 * dropped before the call is NULL, and a slot it unregistered holds what
 * it held. Run with 1, 2 and 3 markers; a ThreadSanitizer build checks the
 * registry against the collector. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "rudo.h"
#include "testlib.h"

#define THREADS 3
#define SLOTS 128

static atomic_long errors;

struct model {
    void **slot;     /* malloc'd: not scanned, so the slots are only weak */
    void **keep;     /* a conservative heap array, rooted: the kept targets */
    bool *registered;
};

static void *worker(void *arg) {
    uint64_t rng = 0x9e3779b97f4a7c15ull * (1 + (uintptr_t)arg);
    if (rudo_thread_attach() != RUDO_OK) {
        atomic_fetch_add(&errors, 1);
        return NULL;
    }
    struct model m;
    m.slot = calloc(SLOTS + 1, sizeof *m.slot);
    m.registered = calloc(SLOTS, sizeof *m.registered);
    void **keep_root = calloc(1, sizeof *keep_root);
    rudo_root_add(keep_root);
    m.keep = rudo_malloc(SLOTS * sizeof(void *));
    *keep_root = m.keep;
    long rounds = test_scaled(40);
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < SLOTS; i++) {
            switch (test_rand(&rng) % 6) {
            case 0: /* a new target, kept */
                m.keep[i] = rudo_malloc_atomic(16 + test_rand(&rng) % 200);
                m.slot[i] = m.keep[i];
                break;
            case 1: /* drop the target */
                m.keep[i] = NULL;
                break;
            case 2: /* register or unregister */
                if (m.registered[i]) {
                    if (rudo_weak_unregister(&m.slot[i]) != RUDO_OK)
                        atomic_fetch_add(&errors, 1);
                    m.registered[i] = false;
                } else {
                    if (rudo_weak_register(&m.slot[i]) != RUDO_OK)
                        atomic_fetch_add(&errors, 1);
                    m.registered[i] = true;
                }
                break;
            case 3: /* move through the spare slot and back */
                if (m.registered[i]) {
                    m.slot[SLOTS] = m.slot[i];
                    if (rudo_weak_move(&m.slot[i], &m.slot[SLOTS]) != RUDO_OK ||
                        rudo_weak_move(&m.slot[SLOTS], &m.slot[i]) != RUDO_OK)
                        atomic_fetch_add(&errors, 1);
                }
                break;
            default:
                break;
            }
        }
        void *before[SLOTS];
        for (int i = 0; i < SLOTS; i++)
            before[i] = m.slot[i];
        rudo_collect();
        for (int i = 0; i < SLOTS; i++) {
            void *want;
            if (!m.registered[i])
                want = before[i];            /* plain memory */
            else if (m.keep[i] && before[i] == m.keep[i])
                want = m.keep[i];            /* alive */
            else
                want = NULL;                 /* its target died */
            if (m.slot[i] != want) {
                fprintf(stderr, "thread %lu slot %d: %p, want %p\n",
                        (unsigned long)(uintptr_t)arg, i, m.slot[i], want);
                atomic_fetch_add(&errors, 1);
            }
            /* From here on, an unregistered slot pointing to a dead object
             * would dangle: point it at the kept one (or nothing). */
            if (!m.registered[i])
                m.slot[i] = m.keep[i];
        }
    }
    for (int i = 0; i < SLOTS; i++)
        if (m.registered[i])
            rudo_weak_unregister(&m.slot[i]);
    rudo_root_remove(keep_root);
    free(keep_root);
    free(m.slot);
    free(m.registered);
    rudo_thread_detach();
    return NULL;
}

int main(void) {
    test_start_watchdog();
    for (unsigned markers = 1; markers <= 3; markers++) {
        rudo_config cfg = test_precise_config(markers);
        CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
        rudo_thread_detach(); /* the main thread only waits */
        pthread_t t[THREADS];
        for (uintptr_t i = 0; i < THREADS; i++)
            pthread_create(&t[i], NULL, worker, (void *)i);
        for (int i = 0; i < THREADS; i++)
            pthread_join(t[i], NULL);
        CHECK_EQ(rudo_thread_attach(), RUDO_OK);
        rudo_heap_destroy();
    }
    CHECK_EQ(atomic_load(&errors), 0);
    return test_report();
}
