/* test_thr_attach.c — threads attaching and detaching continuously.
 *
 * 4 worker slots each run 250 cycles (1000 in all at TEST_SCALE=1), in two
 * halves; a cycle is a new pthread that attaches, allocates ~300 objects of
 * seven size classes (and every fourth cycle a large one), keeps a chain of
 * three in a shared ring of precise roots and drops the rest, then detaches
 * and exits. Every eighth cycle thread exits while still attached: its
 * thread-exit destructor must detach it. Meanwhile two threads allocate
 * continuously (and sometimes collect), so attaches and detaches overlap
 * collections and the pages detached threads hand back get reused.
 *
 * Checks:
 *  - rudo_thread_attach: RUDO_ESTATE without a heap, RUDO_EEXIST when
 *    attached, rudo_thread_is_attached before and after detach;
 *  - nothing reachable is freed: each chain in the ring is verified (ids,
 *    payload checksums) when it is replaced, after every half and at the
 *    end, usually long after the thread that allocated it has gone;
 *  - stats.threads_attached is back to 1 once every cycle thread has been
 *    joined (detached or destructed);
 *  - heap_bytes does not grow with the number of cycles. After each half
 *    (500 cycles) the ring is verified, cleared, and the heap collected
 *    four times (more than release_delay, so empty pages go back to the
 *    OS); then nothing allocated by the cycle or churn threads is
 *    reachable, and heap_bytes must be within HEAP_SLACK (2 MiB, 32 pages
 *    of 64 KiB) of the baseline: room for main's own allocation pages (7
 *    size classes) and nothing else. A heap that kept any page per
 *    detached thread would hold hundreds of pages after 500 cycles (one
 *    mutation that leaks only the pages still tagged with a detached owner
 *    when they empty reaches 10 MiB). With the ring still full the bound
 *    is 32 MiB (its 96 objects may pin up to 96 pages: 6 MiB, plus the
 *    working set); the peak must stay under 64 MiB (the working set is
 *    about initial_heap of garbage plus ~8 current pages per attached
 *    thread, while ~190 MiB are allocated in all);
 *  - live_bytes returns to the baseline at the same points: with the ring
 *    cleared and the stacks of exited threads no longer scanned, it is
 *    within 256 KiB (stale words on main's own stack) of its value before
 *    the run.
 *  - a batch of threads that all exit attached leaves the heap consistent:
 *    their chains survive collections and the heap verifier passes.
 *
 * Environment: TEST_SCALE (factor, default 1), TEST_TIMEOUT (s, default 500). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

/* ---- objects -------------------------------------------------------------- */

typedef struct obj {
    struct obj *next;
    uint64_t id, n, check; /* check = test_mix64(id ^ n) */
    uint64_t data[];       /* data[i] = test_mix64(id + i) */
} obj;

static rudo_kind kind_obj;
static atomic_ullong next_id = 1;
static atomic_long failures;

static void fail(const char *what) {
    if (atomic_fetch_add(&failures, 1) < 20)
        fprintf(stderr, "FAIL: %s\n", what);
}

static void trace_obj(void *o, size_t size, rudo_tracer *tr) {
    (void)size;
    rudo_visit(tr, (void **)&((obj *)o)->next);
}

static const uint64_t size_words[] = {0, 2, 8, 20, 60, 120, 370}; /* 32 B .. 3 KiB */

static obj *new_obj(uint64_t id, uint64_t n) {
    obj *o = rudo_alloc(kind_obj, sizeof(obj) + n * sizeof(uint64_t));
    if (o == NULL) {
        fprintf(stderr, "rudo_alloc returned NULL\n");
        abort();
    }
    o->id = id;
    o->n = n;
    for (uint64_t i = 0; i < n; i++)
        o->data[i] = test_mix64(id + i);
    o->check = test_mix64(id ^ n);
    return o;
}

static bool obj_ok(const obj *o, uint64_t id) {
    if (o == NULL || o->id != id || o->check != test_mix64(id ^ o->n) || o->n > 5000)
        return false;
    for (uint64_t i = 0; i < o->n; i++)
        if (o->data[i] != test_mix64(id + i))
            return false;
    return true;
}

/* ---- the ring of kept chains (precise roots) -------------------------------- */

#define NKEPT 32
#define CHAIN 3
static void *kept[NKEPT];
static uint64_t kept_id[NKEPT]; /* head id; the chain's ids are head, head+1, ... */
static pthread_mutex_t kept_mu = PTHREAD_MUTEX_INITIALIZER;

static bool chain_ok(const obj *o, uint64_t head) {
    for (int k = 0; k < CHAIN; k++, o = o->next)
        if (!obj_ok(o, head + (uint64_t)k))
            return false;
    return o == NULL;
}

/* Builds a chain back to front; each partial chain is on this stack. */
static obj *make_chain(uint64_t *rng, uint64_t *head) {
    uint64_t base = atomic_fetch_add(&next_id, CHAIN);
    obj *c = NULL;
    for (int k = CHAIN - 1; k >= 0; k--) {
        obj *o = new_obj(base + (uint64_t)k, size_words[test_rand(rng) % 7]);
        o->next = c;
        c = o;
    }
    *head = base;
    return c;
}

/* Replaces ring slot s with a new chain, verifying the one it replaces.
 * No safepoint while kept_mu is held. */
static void keep_chain(int s, obj *c, uint64_t head) {
    test_mutex_lock(&kept_mu); /* a blocking region under TSan */
    if (kept[s] != NULL && !chain_ok(kept[s], kept_id[s]))
        fail("kept chain corrupt when replaced");
    kept[s] = c;
    kept_id[s] = head;
    pthread_mutex_unlock(&kept_mu);
}

static long verify_ring(void) {
    long bad = 0;
    test_mutex_lock(&kept_mu); /* a blocking region under TSan */
    for (int s = 0; s < NKEPT; s++)
        if (kept[s] != NULL && !chain_ok(kept[s], kept_id[s]))
            bad++;
    pthread_mutex_unlock(&kept_mu);
    return bad;
}

/* ---- cycle threads ---------------------------------------------------------- */

typedef struct cycle_arg {
    int slot;
    long cycle;
    bool detach;
} cycle_arg;

static void *cycle_thread(void *arg) {
    cycle_arg *ca = arg;
    if (rudo_thread_is_attached())
        fail("new thread already attached");
    if (rudo_thread_attach() != RUDO_OK) {
        fail("rudo_thread_attach");
        return NULL;
    }
    if (!rudo_thread_is_attached())
        fail("not attached after rudo_thread_attach");
    if (rudo_thread_attach() != RUDO_EEXIST)
        fail("second rudo_thread_attach did not return RUDO_EEXIST");
    uint64_t rng = test_mix64((uint64_t)ca->slot * 100003u + (uint64_t)ca->cycle) | 1;

    /* Garbage, with a few short-lived links so some is traced before dying. */
    obj *prev = NULL;
    uint64_t prev_id = 0;
    for (int i = 0; i < 300; i++) {
        uint64_t id = atomic_fetch_add(&next_id, 1);
        obj *o = new_obj(id, size_words[test_rand(&rng) % 7]);
        if (prev != NULL && !obj_ok(prev, prev_id))
            fail("fresh object corrupt");
        if (i % 10 != 0)
            o->next = prev;
        prev = o;
        prev_id = id;
    }
    if (ca->cycle % 4 == 0) {
        obj *big = new_obj(atomic_fetch_add(&next_id, 1), 5000); /* 40 KiB: large */
        if (!obj_ok(big, big->id))
            fail("large object corrupt");
    }
    prev = NULL;

    uint64_t head;
    obj *c = make_chain(&rng, &head);
    keep_chain((int)(test_rand(&rng) % NKEPT), c, head);
    if (!chain_ok(c, head))
        fail("own chain corrupt");

    if (ca->detach) {
        rudo_thread_detach();
        if (rudo_thread_is_attached())
            fail("still attached after rudo_thread_detach");
    }
    return NULL; /* still attached unless detach: the destructor detaches */
}

static long cycles_per_slot;

static void *slot_thread(void *arg) {
    int slot = (int)(intptr_t)arg; /* this thread never attaches */
    cycle_arg ca; /* lives until the cycle thread is joined */
    for (long i = 0; i < cycles_per_slot; i++) {
        ca.slot = slot;
        ca.cycle = i;
        ca.detach = i % 8 != 7;
        pthread_t t;
        if (pthread_create(&t, NULL, cycle_thread, &ca) != 0) {
            perror("pthread_create");
            abort();
        }
        pthread_join(t, NULL);
    }
    return NULL;
}

/* ---- churn threads ------------------------------------------------------------ */

static atomic_int churn_stop;

static void *churn_thread(void *arg) {
    intptr_t idx = (intptr_t)arg;
    if (rudo_thread_attach() != RUDO_OK) {
        fail("churn attach");
        return NULL;
    }
    uint64_t rng = 0xc0ffee + (uint64_t)idx;
    enum { WIN = 32 };
    obj *win[WIN];
    uint64_t win_id[WIN];
    for (int i = 0; i < WIN; i++) {
        win_id[i] = atomic_fetch_add(&next_id, 1);
        win[i] = new_obj(win_id[i], size_words[test_rand(&rng) % 7]);
    }
    for (long n = 1; !atomic_load(&churn_stop); n++) {
        int i = (int)(test_rand(&rng) % WIN);
        if (!obj_ok(win[i], win_id[i]))
            fail("churn object corrupt");
        win_id[i] = atomic_fetch_add(&next_id, 1);
        win[i] = new_obj(win_id[i], size_words[test_rand(&rng) % 7]);
        if (n % 3000 == 0)
            rudo_collect();
    }
    for (int i = 0; i < WIN; i++)
        if (!obj_ok(win[i], win_id[i]))
            fail("churn object corrupt at the end");
    rudo_thread_detach();
    return NULL;
}

/* ---- phases run from main ---------------------------------------------------- */

/* Runs one half: 4 slots x cycles_per_slot cycles, 2 churn threads. */
static void run_cycles(void) {
    enum { NSLOT = 4, NCHURN = 2 };
    pthread_t slot[NSLOT], churn[NCHURN];
    atomic_store(&churn_stop, 0);
    for (intptr_t i = 0; i < NCHURN; i++)
        pthread_create(&churn[i], NULL, churn_thread, (void *)i);
    for (intptr_t i = 0; i < NSLOT; i++)
        pthread_create(&slot[i], NULL, slot_thread, (void *)i);
    rudo_blocking_enter();
    for (int i = 0; i < NSLOT; i++)
        pthread_join(slot[i], NULL);
    atomic_store(&churn_stop, 1);
    for (int i = 0; i < NCHURN; i++)
        pthread_join(churn[i], NULL);
    rudo_blocking_leave();
}

/* Verifies the ring from a short-lived attached thread, so that no pointer
 * into the ring stays behind on main's stack. */
static void *verifier_thread(void *arg) {
    long *bad = arg;
    if (rudo_thread_attach() != RUDO_OK) {
        *bad = -1;
        return NULL;
    }
    *bad = verify_ring();
    rudo_thread_detach();
    return NULL;
}

static long verify_ring_in_thread(void) {
    long bad = 0;
    pthread_t t;
    pthread_create(&t, NULL, verifier_thread, &bad);
    rudo_blocking_enter();
    pthread_join(t, NULL);
    rudo_blocking_leave();
    return bad;
}

/* Overwrites the part of main's stack that deeper calls may have used. */
static void collect_n(int n) {
    for (int i = 0; i < n; i++)
        rudo_collect();
}

/* Bounds on heap_bytes (see the file comment): with the ring cleared, a
 * few pages (main's allocation pages); with the ring full, the pages its
 * objects pin; at the peak, the working set. */
#define HEAP_SLACK ((size_t)2 << 20)
#define FULL_RING_SLACK ((size_t)32 << 20)
#define PEAK_SLACK ((size_t)64 << 20)
#define LIVE_SLACK ((size_t)256 << 10)

/* Clears the ring, collects and checks that live_bytes and heap_bytes are
 * back near the baseline. */
static void drain_to_baseline(const rudo_stats *base, const char *when) {
    test_mutex_lock(&kept_mu); /* a blocking region under TSan */
    memset(kept, 0, sizeof kept);
    pthread_mutex_unlock(&kept_mu);
    test_scrub_stack();
    /* More than the release hysteresis (the most pages in use at any of
     * the last 4 collections stay committed, heap.h RUDO_RETAIN_WINDOW)
     * plus release_delay (2): empty pages then go back to the OS. */
    collect_n(8);
    rudo_stats st;
    rudo_get_stats(&st);
    printf("%s, ring cleared: live %zu, heap %zu (baseline live %zu, heap %zu)\n", when,
           st.live_bytes, st.heap_bytes, base->live_bytes, base->heap_bytes);
    CHECK(st.live_bytes <= base->live_bytes + LIVE_SLACK);
    CHECK(st.heap_bytes <= base->heap_bytes + HEAP_SLACK);
    CHECK_EQ(st.threads_attached, 1u);
}

static void *exit_attached_thread(void *arg) {
    int s = (int)(intptr_t)arg;
    if (rudo_thread_attach() != RUDO_OK) {
        fail("attach");
        return NULL;
    }
    uint64_t rng = 0xdead + (uint64_t)s, head;
    for (int i = 0; i < 50; i++)
        (void)new_obj(atomic_fetch_add(&next_id, 1), size_words[test_rand(&rng) % 7]);
    obj *c = make_chain(&rng, &head);
    keep_chain(s % NKEPT, c, head);
    return NULL; /* exits attached */
}

int main(void) {
    test_start_watchdog();
    /* Without a heap. */
    CHECK_EQ(rudo_thread_attach(), RUDO_ESTATE);
    CHECK(!rudo_thread_is_attached());

    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.initial_heap = 1u << 20;
    cfg.scan_static_data = false; /* the ring is a root only through rudo_root_add */
    int rc = rudo_heap_create(&cfg);
    CHECK_EQ(rc, RUDO_OK);
    if (rc != RUDO_OK)
        return test_report();
    CHECK(rudo_thread_is_attached());
    CHECK_EQ(rudo_thread_attach(), RUDO_EEXIST);
    kind_obj = rudo_kind_traced("attach/obj", trace_obj);
    for (int s = 0; s < NKEPT; s++)
        rudo_root_add(&kept[s]);

    test_scrub_stack();
    collect_n(4);
    rudo_stats base;
    rudo_get_stats(&base);
    CHECK_EQ(base.threads_attached, 1u);
    printf("baseline: live %zu, heap %zu\n", base.live_bytes, base.heap_bytes);

    cycles_per_slot = test_scaled(250) / 2;
    if (cycles_per_slot < 8)
        cycles_per_slot = 8;
    for (int half = 0; half < 2; half++) {
        run_cycles();
        rudo_stats st;
        rudo_get_stats(&st);
        CHECK_EQ(st.threads_attached, 1u);
        CHECK_EQ(verify_ring_in_thread(), 0);
        /* More than the release hysteresis (the most pages in use at any of
     * the last 4 collections stay committed, heap.h RUDO_RETAIN_WINDOW)
     * plus release_delay (2): empty pages then go back to the OS. */
    collect_n(8);
        CHECK_EQ(verify_ring_in_thread(), 0);
        rudo_get_stats(&st);
        printf("after %ld cycles: live %zu, heap %zu, peak %zu, collections %llu\n",
               4 * cycles_per_slot * (half + 1), st.live_bytes, st.heap_bytes,
               st.heap_peak_bytes, (unsigned long long)st.collections);
        CHECK(st.heap_bytes <= base.heap_bytes + FULL_RING_SLACK);
        CHECK(st.heap_peak_bytes <= base.heap_bytes + PEAK_SLACK);
        drain_to_baseline(&base, "after a half");
    }

    /* Threads that exit attached: their destructor detaches them. */
    {
        enum { NEXIT = 16 };
        pthread_t t[NEXIT];
        for (intptr_t i = 0; i < NEXIT; i++)
            pthread_create(&t[i], NULL, exit_attached_thread, (void *)i);
        rudo_blocking_enter();
        for (int i = 0; i < NEXIT; i++)
            pthread_join(t[i], NULL);
        rudo_blocking_leave();
        rudo_stats st;
        rudo_get_stats(&st);
        CHECK_EQ(st.threads_attached, 1u);
        collect_n(3);
        rudo__debug_verify_heap();
        CHECK_EQ(verify_ring_in_thread(), 0);
        /* Allocation after they are gone reuses their pages. */
        uint64_t rng = 1;
        for (int i = 0; i < 2000; i++)
            (void)new_obj(atomic_fetch_add(&next_id, 1), size_words[test_rand(&rng) % 7]);
        collect_n(1);
        CHECK_EQ(verify_ring_in_thread(), 0);
    }

    drain_to_baseline(&base, "end");
    rudo_stats end;
    rudo_get_stats(&end);
    CHECK(end.collections > base.collections);
    CHECK_EQ(atomic_load(&failures), 0);

    for (int s = 0; s < NKEPT; s++)
        CHECK_EQ(rudo_root_remove(&kept[s]), RUDO_OK);
    rudo_heap_destroy();
    return test_report();
}
