/* test_thr_query_race.c — address queries against collections that
 * suspend the querying thread by signal.
 *
 * One thread asks rudo_size, rudo_base (of an interior address) and
 * rudo_kind_of, over and over and without a safepoint, about objects it
 * has just allocated and still holds (in its frame, scanned
 * conservatively), of four kinds (conservative, atomic, RUDO_KIND_UNINIT,
 * a layout) and three sizes; another thread collects non-stop. The
 * querier is attached with RUDO_ATTACH_SIGNAL, so each collection
 * suspends it by signal at once, wherever it is: inside a query too.
 * Every answer must be the object's: a query whose loads straddle a
 * collection (the page's sweep stamp read before it, the heap's count
 * after) once called such a live object free, and rudo_size aborted with
 * "is not the base of a heap object" (seen in bdwgc's gctest). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rudo.h"
#include "testlib.h"

static rudo_kind kinds[4];
static const size_t sizes[3] = {16, 96, 2000};
static atomic_int done;
static atomic_long wrong, asked;
static atomic_long asked_live; /* raised as the querier starts */

static void *querier(void *arg) {
    (void)arg;
    if (rudo_thread_attach_flags(RUDO_ATTACH_SIGNAL) != RUDO_OK)
        abort();
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    long bad = 0, n = 0;
    while (!atomic_load_explicit(&done, memory_order_relaxed)) {
        unsigned k = (unsigned)(test_rand(&rng) % 4);
        size_t size = sizes[test_rand(&rng) % 3];
        char *volatile obj = rudo_alloc(kinds[k], size);
        for (int j = 0; j < 200; j++) {
            char *o = obj;
            bad += rudo_size(o) < size;
            bad += rudo_base(o + size / 2) != o;
            bad += rudo_kind_of(o) != kinds[k];
            n++;
        }
        if (n == 200)
            atomic_store(&asked_live, 1);
    }
    atomic_fetch_add(&wrong, bad);
    atomic_fetch_add(&asked, n);
    rudo_thread_detach();
    return NULL;
}

int main(void) {
    test_start_watchdog();
    rudo_config cfg;
    rudo_config_init(&cfg);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    kinds[0] = RUDO_KIND_CONSERVATIVE;
    kinds[1] = RUDO_KIND_ATOMIC;
    rudo_kind_desc d = {.name = "race/uninit", .tracing = RUDO_TRACE_ATOMIC};
    kinds[2] = rudo_kind_register_flags(&d, RUDO_KIND_UNINIT);
    static const uint64_t lay = 1;
    kinds[3] = rudo_kind_layout("race/layout", 1, &lay);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, querier, NULL), 0);
    /* The querier runs first, then between collections (100 us each). */
    while (atomic_load(&asked_live) == 0)
        sched_yield();
    /* Without the fix 3000 collections failed in 4 runs of 4; under
     * ThreadSanitizer each collection is slow (its static data is a root
     * range), so fewer. */
    long collections = test_scaled(TEST_UNDER_TSAN ? 600 : 3000);
    struct timespec gap = {0, 100000};
    for (long i = 0; i < collections; i++) {
        rudo_collect();
        nanosleep(&gap, NULL);
    }
    atomic_store(&done, 1);
    rudo_blocking_enter();
    CHECK_EQ(pthread_join(t, NULL), 0);
    rudo_blocking_leave();
    printf("%ld collections, %ld queries, %ld wrong answers\n", collections,
           atomic_load(&asked), atomic_load(&wrong));
    CHECK(atomic_load(&asked) > 0);
    CHECK_EQ(atomic_load(&wrong), 0);
    rudo_heap_destroy();
    return test_report();
}
