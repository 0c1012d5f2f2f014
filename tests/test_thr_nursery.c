/* test_thr_nursery.c — the per-thread nursery (rudo_config.nursery_per_
 * thread, docs/design.md "Policy").
 *
 * T threads allocate garbage in strict turns (a turn counter; a thread
 * waiting for its turn polls rudo_safepoint), each its own quota per
 * turn, 48 MiB in all through a 1 MiB nursery, in generational mode. The
 * turns make each thread's share of every cycle exact whatever the
 * scheduler does, so the number of minor collections is predictable:
 *  - one thread: about 48;
 *  - two threads with equal quotas: about 24 with the per-thread nursery
 *    (it doubles: 2.0 allocating threads), about 48 without it, and with
 *    RUDO_NURSERY_PER_THREAD=0 overriding the configuration;
 *  - two threads, one with 1/20 of the other's quota: the shared count is
 *    1 / (0.952^2 + 0.048^2) = 1.1 threads, about 44: a thread that
 *    allocates a little does not double the nursery;
 *  - four threads with equal quotas: the count is capped at the online
 *    CPUs, about 48 / min(4, CPUs).
 * Out-of-range environment values are refused. The counts are skipped
 * under GC stress mode, which adds collections of its own. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "rudo.h"
#include "testlib.h"

#define MIB ((size_t)1 << 20)
#define TOTAL (48 * MIB)
#define OBJ 64
#define MAXT 4

static atomic_uint turn;        /* whose turn: thread index */
/* Failures in the threads: CHECK is for the main thread alone (testlib's
 * counters are plain), so the threads count here and main checks it. */
static atomic_ulong errors;
static unsigned nthreads;
static size_t quota[MAXT];      /* bytes per turn */
static size_t rounds;

static void run_turns(unsigned me) {
    for (size_t r = 0; r < rounds; r++) {
        /* Acquire/release: the turn hands the heap over in order; only
         * the scheduling depends on it, not rudo's correctness. */
        while (atomic_load_explicit(&turn, memory_order_acquire) != me) {
            rudo_safepoint();
            sched_yield();
        }
        for (size_t b = 0; b < quota[me]; b += OBJ)
            if (!rudo_alloc(RUDO_KIND_ATOMIC, OBJ))
                atomic_fetch_add_explicit(&errors, 1, memory_order_relaxed);
        atomic_store_explicit(&turn, (me + 1) % nthreads, memory_order_release);
    }
}

static void *worker(void *arg) {
    unsigned me = (unsigned)(uintptr_t)arg;
    if (rudo_thread_attach() != RUDO_OK) {
        atomic_fetch_add_explicit(&errors, 1, memory_order_relaxed);
        return NULL;
    }
    run_turns(me);
    rudo_thread_detach();
    return NULL;
}

/* Minor collections for threads allocating with these relative weights
 * (48 MiB in all); per_thread is the configuration's setting. */
static uint64_t minors(unsigned t, const unsigned *weight, bool per_thread) {
    rudo_config cfg = test_precise_config(1);
    cfg.generational = true;
    cfg.nursery = MIB;
    cfg.initial_heap = MIB;
    cfg.nursery_per_thread = per_thread;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    nthreads = t;
    unsigned sum = 0;
    for (unsigned i = 0; i < t; i++)
        sum += weight[i];
    /* 16 KiB per turn for weight 1 of an equal pair: many turns per
     * nursery, so each cycle sees the quotas' proportions. */
    size_t unit = 32 * 1024 / sum;
    unit -= unit % OBJ;
    for (unsigned i = 0; i < t; i++)
        quota[i] = unit * weight[i];
    rounds = TOTAL / (unit * sum);
    atomic_store_explicit(&turn, 0, memory_order_relaxed);
    pthread_t th[MAXT];
    int joined = 0;
    for (unsigned i = 1; i < t; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i) != 0) {
            /* The turns would wait for it forever. */
            fprintf(stderr, "test_thr_nursery: pthread_create failed\n");
            abort();
        }
    run_turns(0);
    for (unsigned i = 1; i < t; i++) {
        /* Joining is waiting: the others may still collect meanwhile. */
        rudo_blocking_enter();
        joined += pthread_join(th[i], NULL) == 0;
        rudo_blocking_leave();
    }
    /* The threads are gone: main alone uses CHECK from here. */
    CHECK_EQ(joined, (int)t - 1);
    CHECK_EQ(atomic_load_explicit(&errors, memory_order_relaxed), 0ul);
    rudo_stats st;
    rudo_get_stats(&st);
    rudo_heap_destroy();
    return st.minor_collections;
}

/* Out-of-range environment values are refused with a message. */
static void refusals(void) {
    rudo_config cfg = test_precise_config(1);
    setenv("RUDO_NURSERY_PER_THREAD", "2", 1);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_EINVAL);
    setenv("RUDO_NURSERY_PER_THREAD", "-1", 1);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_EINVAL);
    setenv("RUDO_NURSERY_PER_THREAD", "yes", 1);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_EINVAL);
    unsetenv("RUDO_NURSERY_PER_THREAD");
}

int main(void) {
    test_start_watchdog();
    unsetenv("RUDO_GENERATIONAL");
    unsetenv("RUDO_NURSERY");
    unsetenv("RUDO_NURSERY_PER_THREAD");
    if (test_stress_on()) {
        /* Its collections would change the counts, not what they check:
         * only the refusals run. */
        printf("minor counts skipped: GC stress mode adds collections\n");
        refusals();
        return test_report();
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    static const unsigned one[] = {1}, pair[] = {1, 1}, skew[] = {20, 1},
                          four[] = {1, 1, 1, 1};
    uint64_t single = minors(1, one, true);
    uint64_t shared = minors(2, pair, false);
    uint64_t scaled = minors(2, pair, true);
    uint64_t skewed = minors(2, skew, true);
    uint64_t quad = minors(4, four, true);
    setenv("RUDO_NURSERY_PER_THREAD", "0", 1);
    uint64_t env_off = minors(2, pair, true);
    printf("minors for 48 MiB through a 1 MiB nursery (%ld CPUs): 1 thread %llu; "
           "2 threads: shared %llu, per thread %llu, RUDO_NURSERY_PER_THREAD=0 %llu, "
           "one 20x the other %llu; 4 threads %llu\n", cpus,
           (unsigned long long)single, (unsigned long long)shared,
           (unsigned long long)scaled, (unsigned long long)env_off,
           (unsigned long long)skewed, (unsigned long long)quad);
    CHECK(single >= 36 && single <= 60);
    /* One nursery for two threads: as many minors as for one. */
    CHECK(shared * 5 >= single * 4 && shared * 4 <= single * 5);
    CHECK(env_off * 5 >= single * 4 && env_off * 4 <= single * 5);
    if (cpus >= 2) {
        /* Doubled: about half; the first cycle still ran at 1 MiB. */
        CHECK(scaled * 10 <= single * 6 && scaled * 10 >= single * 4);
        /* 1.1 threads: about 0.9 of the single thread's minors. */
        CHECK(skewed * 10 >= single * 8 && skewed * 10 > scaled * 14);
        /* Four alike, capped at the CPUs. */
        uint64_t div = cpus < 4 ? (uint64_t)cpus : 4;
        CHECK(quad * div * 10 >= single * 8 && quad * div * 10 <= single * 13);
    } else {
        printf("one CPU: the nursery is not scaled (the cap)\n");
        CHECK(scaled * 5 >= single * 4);
    }
    refusals();
    return test_report();
}
