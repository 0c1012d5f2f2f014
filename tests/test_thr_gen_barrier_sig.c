/* test_thr_gen_barrier_sig.c — generational mode: the barrier against a
 * thread that the collection suspends by signal anywhere (RUDO_ATTACH_SIGNAL).
 *
 * A worker fills a rooted, old array O with fresh atomic items, each store
 * through the barrier: rudo_write (mode 0), or a plain store followed by
 * rudo_write_range (mode 1; the item stays in a register until the call
 * returns, as rudo.h asks of a thread that can be suspended by signal).
 * The main thread runs minor collections back to back (a major every
 * 64th). A gc listener checks, with the world stopped after marking, that
 * every item O holds is marked; the worker checks each item's tag before
 * it replaces it (a freed item is handed out again and overwritten).
 *
 * Both failed before (a helper's repros): rudo_write stored before it
 * marked the card, and a suspension between the two left the item only in
 * an old object on a clean card; rudo_write_range looked the object up
 * before it marked the cards, and a suspension there parked the thread on
 * the lookup's way out, at a safepoint, with the cards still clean.
 * Modes x markers 1 and 2; TEST_SCALE lengthens each run. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

#define NS 16384

static void **O; /* the root */
static rudo_kind k_item;
static uint64_t expect[NS];
static atomic_int stop, mode, worker_up;
static atomic_long bad, stores;

static void *worker(void *arg) {
    (void)arg;
    if (rudo_thread_attach_flags(RUDO_ATTACH_SIGNAL) != RUDO_OK) {
        atomic_fetch_add(&bad, 1);
        return NULL;
    }
    atomic_store(&worker_up, 1);
    void **o = O;
    int md = atomic_load(&mode);
    uint64_t i = 1;
    /* Relaxed: only ends the loop; the join orders the rest. */
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        size_t j = i % NS;
        uint64_t *old = o[j];
        if (old && *(volatile uint64_t *)old != expect[j]) {
            if (atomic_fetch_add(&bad, 1) < 3)
                fprintf(stderr, "mode %d: O[%zu] = %p has tag %llu, expected %llu: "
                        "freed while reachable\n", md, j, (void *)old,
                        (unsigned long long)*old, (unsigned long long)expect[j]);
        }
        uint64_t *y = rudo_alloc(k_item, 16);
        y[0] = i;
        expect[j] = i;
        if (md == 0) {
            rudo_write(o, &o[j], y);
        } else {
            o[j] = y;
            rudo_write_range(o, &o[j], sizeof(void *));
            __asm__ volatile("" : : "r"(y)); /* held until the call returned */
        }
        i++;
    }
    atomic_fetch_add(&stores, (long)i);
    rudo_thread_detach();
    return NULL;
}

/* After marking, world stopped: every item O holds is marked. */
static void on_phase(rudo_gc_phase ph, uint64_t ns, void *data) {
    (void)ns;
    (void)data;
    if (ph != RUDO_PHASE_MARK)
        return;
    for (size_t j = 0; j < NS; j++) {
        void *x = O[j];
        if (x && !rudo__debug_is_marked(x) && atomic_fetch_add(&bad, 1) < 3)
            fprintf(stderr, "mode %d: O[%zu] = %p unmarked after marking\n",
                    atomic_load(&mode), j, x);
    }
}

static void run(int md, unsigned markers, long minors) {
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.generational = true;
    cfg.scan_static_data = false;
    cfg.markers = markers;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    static const uint64_t lay[1] = {1};
    rudo_kind k_arr = rudo_kind_layout("array", 1, lay);
    k_item = rudo_kind_atomic("item");
    O = rudo_alloc(k_arr, NS * sizeof(void *));
    rudo_root_add((void **)&O);
    rudo_collect(); /* O is old */
    rudo_gc_listener l = {0};
    l.phase = on_phase;
    rudo_set_gc_listener(&l);
    atomic_store(&mode, md);
    atomic_store(&stop, 0);
    atomic_store(&worker_up, 0);
    /* Which run an abort (the verifier's) came from. */
    printf("mode %d, markers %u: start\n", md, markers);
    fflush(stdout);
    uint64_t s0 = rudo__debug_signal_stops();
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, worker, NULL), 0);
    while (!atomic_load(&worker_up))
        rudo_safepoint();
    for (long n = 0; n < minors && atomic_load(&bad) == 0; n++) {
        if (n % 64 == 63)
            rudo_collect();
        else
            rudo_collect_minor();
    }
    atomic_store(&stop, 1);
    rudo_blocking_enter();
    pthread_join(t, NULL);
    rudo_blocking_leave();
    uint64_t sig = rudo__debug_signal_stops() - s0;
    printf("mode %d, markers %u: %ld collections, %llu signal stops\n", md, markers, minors,
           (unsigned long long)sig);
    CHECK(sig > 0); /* the worker was suspended by signal */
    rudo_set_gc_listener(NULL);
    rudo_root_remove((void **)&O);
    rudo_heap_destroy();
}

int main(void) {
    test_start_watchdog();
    long minors = test_scaled(TEST_UNDER_TSAN ? 100 : 600);
    for (int md = 0; md < 2; md++)
        for (unsigned mk = 1; mk <= 2; mk++)
            run(md, mk, minors);
    printf("%ld item stores\n", atomic_load(&stores));
    CHECK_EQ(atomic_load(&bad), 0);
    return test_report();
}
