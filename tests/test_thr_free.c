/* test_thr_free.c — rudo_free from several threads while others allocate
 * and collect. Producers allocate objects (small ones of several classes,
 * now and then a large one) filled with a pattern derived from their
 * address, and hand them to consumers through a rooted ring; consumers
 * check the pattern and free them, so objects are freed by a thread other
 * than the one whose current page they are on, and on pages that other
 * threads are taking for allocation. Each thread also frees some of its
 * own objects at once. A free that released the wrong cell, or a cell
 * handed out twice, shows as a broken pattern. A collector thread collects
 * throughout. Run with 1 and 3 markers. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rudo.h"
#include "testlib.h"

#define PRODUCERS 2
#define CONSUMERS 2
#define RING 256

static atomic_long errors;
static atomic_int producing;
static void *_Atomic *ring; /* malloc'd, a conservative root range */
static rudo_kind k_obj;

static uint64_t pattern(const void *p, size_t i) {
    return test_mix64((uint64_t)(uintptr_t)p + i);
}

static void fill(uint64_t *p, size_t words) {
    for (size_t i = 0; i < words; i++)
        p[i] = pattern(p, i);
}

static void check(const uint64_t *p, size_t words) {
    for (size_t i = 0; i < words; i++)
        if (p[i] != pattern(p, i)) {
            atomic_fetch_add(&errors, 1);
            return;
        }
}

static void *producer(void *arg) {
    uint64_t rng = 0x9e3779b97f4a7c15ull * (1 + (uintptr_t)arg);
    rudo_thread_attach();
    long n = test_scaled(TEST_UNDER_TSAN ? 4000 : 40000);
    for (long i = 0; i < n; i++) {
        size_t size = test_rand(&rng) % 500 == 0 ? 40000 + (size_t)(test_rand(&rng) % 100000)
                                                 : 16 + (size_t)(test_rand(&rng) % 20) * 16;
        uint64_t *p = rudo_alloc(k_obj, size);
        if (!p)
            abort();
        fill(p, rudo_size(p) / 8 < 5000 ? rudo_size(p) / 8 : 5000);
        if (test_rand(&rng) % 4 == 0) { /* freed by its own thread */
            rudo_free(p);
            continue;
        }
        /* Stacks are not scanned: a handle keeps p while the loop below
         * may stop at a safepoint. */
        rudo_scope scope;
        rudo_scope_enter(&scope);
        (void)rudo_handle(p);
        /* Into a free ring slot (release: the pattern is written first;
         * the consumer's acquire exchange pairs with it). */
        for (size_t s = test_rand(&rng) % RING;; s = (s + 1) % RING) {
            void *expected = NULL;
            if (atomic_compare_exchange_strong_explicit(&ring[s], &expected, p,
                                                        memory_order_release,
                                                        memory_order_relaxed))
                break;
            rudo_safepoint();
        }
        rudo_scope_exit(&scope);
    }
    atomic_fetch_sub(&producing, 1);
    rudo_thread_detach();
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    rudo_thread_attach();
    for (;;) {
        bool any = false;
        for (size_t s = 0; s < RING; s++) {
            uint64_t *p = atomic_exchange_explicit(&ring[s], NULL, memory_order_acquire);
            if (!p)
                continue;
            any = true;
            check(p, rudo_size(p) / 8 < 5000 ? rudo_size(p) / 8 : 5000);
            rudo_free(p);
        }
        if (!any && atomic_load(&producing) == 0)
            break;
        rudo_safepoint();
    }
    rudo_thread_detach();
    return NULL;
}

static void *collector(void *arg) {
    (void)arg;
    rudo_thread_attach();
    while (atomic_load(&producing) > 0) {
        rudo_collect();
        for (int i = 0; i < 200 && atomic_load(&producing) > 0; i++)
            (void)rudo_malloc(64); /* garbage on a page of its own */
    }
    rudo_thread_detach();
    return NULL;
}

static void run(unsigned markers) {
    rudo_config cfg = test_precise_config(markers);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    k_obj = rudo_kind_atomic("freed");
    ring = calloc(RING, sizeof *ring);
    rudo_root_add_range((void *)ring, (void *)(ring + RING));
    atomic_store(&producing, PRODUCERS);
    pthread_t t[PRODUCERS + CONSUMERS + 1];
    int n = 0;
    rudo_blocking_enter();
    for (uintptr_t i = 0; i < PRODUCERS; i++)
        pthread_create(&t[n++], NULL, producer, (void *)i);
    for (uintptr_t i = 0; i < CONSUMERS; i++)
        pthread_create(&t[n++], NULL, consumer, (void *)i);
    pthread_create(&t[n++], NULL, collector, NULL);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    rudo_blocking_leave();
    rudo_root_remove_range((void *)ring);
    free(ring);
    rudo_stats st;
    rudo_get_stats(&st);
    CHECK(st.collections > 0);
    rudo_heap_destroy();
}

int main(void) {
    test_start_watchdog();
    run(1);
    run(3);
    CHECK_EQ(atomic_load(&errors), 0);
    return test_report();
}
