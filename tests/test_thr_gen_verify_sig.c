/* test_thr_gen_verify_sig.c — the remembered-set verifier (RUDO_VERIFY=1)
 * against a thread suspended by signal between its plain stores and
 * rudo_write_range, which rudo.h allows when the thread still holds what
 * it stored.
 *
 * 1. Allowed: worker W (RUDO_ATTACH_SIGNAL) stores young items into an
 *    old array with plain stores and spins, the items in registers and on
 *    its stack, before it calls rudo_write_range. Minor collections run
 *    meanwhile. The verifier used to abort there, before marking ("whose
 *    card is clean": CI's debug stage, test_thr_gen_barrier_sig); it now
 *    notes the slot and checks after marking that the item was reached.
 *    Checked: no abort, the items are marked and keep their tags.
 * 2. Still reported: with W spinning (so the check is deferred), the main
 *    thread stores young items into the old array with no barrier and
 *    holds them nowhere: the verifier aborts after marking, naming the
 *    slot ("marking did not reach it"). Several items, so that a stale
 *    copy of one left in a register cannot hide them all.
 * test_scrub_stack (testlib) clears the dead frames below. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

/* ThreadSanitizer ends a child that starts threads after a multi-threaded
 * fork unless told otherwise; the death test's child starts W. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "die_after_fork=0"; }

#define NI 8

static void **O; /* rooted, old */
static rudo_kind k_item;
static atomic_int stored, go, done;

static void heap_up(void) {
    setenv("RUDO_VERIFY", "1", 1);
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.generational = true;
    cfg.scan_static_data = false;
    cfg.markers = 2;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    static const uint64_t lay[1] = {1};
    rudo_kind k_arr = rudo_kind_layout("array", 1, lay);
    k_item = rudo_kind_atomic("item");
    O = rudo_alloc(k_arr, 64 * sizeof(void *));
    rudo_root_add((void **)&O);
    rudo_collect(); /* O is old */
}

/* W: plain stores of young items into O, then a spin with the items held
 * (asm inputs), so a signal stops it there, before its rudo_write_range.
 * With hold 0 it spins holding nothing of them (part 2). */
static void *worker(void *arg) {
    int hold = *(int *)arg;
    if (rudo_thread_attach_flags(RUDO_ATTACH_SIGNAL) != RUDO_OK)
        abort();
    void *y[NI] = {0};
    if (hold) {
        for (int i = 0; i < NI; i++) {
            uint64_t *it = rudo_alloc(k_item, 16);
            it[0] = 0xabc0 + (uint64_t)i;
            y[i] = it;
        }
        for (int i = 0; i < NI; i++)
            O[i] = y[i]; /* plain: the barrier comes after the spin */
    }
    atomic_store(&stored, 1);
    while (!atomic_load_explicit(&go, memory_order_relaxed))
        __asm__ volatile("" : : "r"(y[0]), "r"(y[NI - 1]), "r"(y) : "memory");
    if (hold)
        rudo_write_range(O, &O[0], NI * sizeof(void *));
    __asm__ volatile("" : : "r"(y) : "memory");
    atomic_store(&done, 1);
    rudo_thread_detach();
    return NULL;
}

static void allowed(void) {
    heap_up();
    atomic_store(&stored, 0);
    atomic_store(&go, 0);
    atomic_store(&done, 0);
    static int hold = 1;
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, worker, &hold), 0);
    while (!atomic_load(&stored))
        rudo_safepoint();
    uint64_t s0 = rudo__debug_signal_stops();
    for (int n = 0; n < 8; n++)
        rudo_collect_minor(); /* W is suspended by signal each time */
    CHECK(rudo__debug_signal_stops() - s0 >= 8);
    for (int i = 0; i < NI; i++) {
        CHECK(rudo__debug_is_marked(O[i]));
        CHECK_EQ(((uint64_t *)O[i])[0], 0xabc0 + (uint64_t)i);
    }
    atomic_store(&go, 1);
    rudo_blocking_enter();
    pthread_join(t, NULL);
    rudo_blocking_leave();
    rudo_collect_minor();
    for (int i = 0; i < NI; i++)
        CHECK_EQ(((uint64_t *)O[i])[0], 0xabc0 + (uint64_t)i);
    rudo_root_remove((void **)&O);
    rudo_heap_destroy();
}

static __attribute__((noinline)) void store_unbarriered(void) {
    for (int i = 0; i < NI; i++)
        O[i] = rudo_alloc(k_item, 16); /* no barrier, held nowhere else */
}

static void lost(void *arg) {
    (void)arg;
    heap_up();
    atomic_store(&stored, 0); /* part 1 left them set */
    atomic_store(&go, 0);
    static int hold = 0;
    pthread_t t;
    if (pthread_create(&t, NULL, worker, &hold) != 0)
        abort();
    while (!atomic_load(&stored))
        rudo_safepoint();
    store_unbarriered();
    test_scrub_stack();
    rudo_collect_minor(); /* W is frozen: the check waits for marking */
    fprintf(stderr, "the minor collection did not abort\n");
    exit(0);
}

int main(void) {
    test_start_watchdog();
    allowed();
    expect_death("young items stored without the barrier, with a thread frozen", lost, NULL,
                 "marking did not reach it");
    return test_report();
}
