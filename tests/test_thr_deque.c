/* test_thr_deque.c — the work-stealing deque (src/mark/deque.c).
 *
 * Single-threaded semantics, failing growth, then one owner and three
 * thieves passing N items (default 10^7; the environment variable TEST_SCALE
 * divides N, e.g. TEST_SCALE=10 for a slow sanitizer build). Every item is a
 * distinct integer 1..N; each must be consumed exactly once (count, sum,
 * xor, and a per-item seen counter), and the thief must see the payload the
 * owner wrote before pushing it. */
#include "mark/deque.h"
#include "testlib.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ITEM(i) ((void *)(uintptr_t)(i))
#define VAL(p) ((uint64_t)(uintptr_t)(p))

static uint64_t steal_val(rudo__deque *q) {
    void *x = NULL;
    rudo__steal_result r;
    while ((r = rudo__deque_steal(q, &x)) == RUDO__STEAL_RETRY)
        ;
    return r == RUDO__STEAL_OK ? VAL(x) : 0;
}

static void test_basic(void) {
    rudo__deque q;
    CHECK(rudo__deque_init(&q, 4));
    CHECK_EQ(rudo__deque_capacity(&q), 4);
    void *x = ITEM(99);
    CHECK(rudo__deque_pop(&q) == NULL);
    CHECK(rudo__deque_steal(&q, &x) == RUDO__STEAL_EMPTY);
    CHECK(x == ITEM(99)); /* untouched when empty */
    CHECK_EQ(rudo__deque_size_hint(&q), 0);

    for (int i = 1; i <= 3; i++) /* owner: LIFO */
        CHECK(rudo__deque_push(&q, ITEM(i)));
    CHECK_EQ(rudo__deque_size_hint(&q), 3);
    for (int i = 3; i >= 1; i--)
        CHECK(rudo__deque_pop(&q) == ITEM(i));
    CHECK(rudo__deque_pop(&q) == NULL);

    for (int i = 1; i <= 4; i++) /* thieves: FIFO; both ends mixed */
        CHECK(rudo__deque_push(&q, ITEM(i)));
    CHECK_EQ(steal_val(&q), 1);
    CHECK_EQ(steal_val(&q), 2);
    CHECK(rudo__deque_pop(&q) == ITEM(4));
    CHECK_EQ(steal_val(&q), 3);
    CHECK_EQ(steal_val(&q), 0);
    CHECK(rudo__deque_pop(&q) == NULL);
    CHECK_EQ(rudo__deque_growths(&q), 0);
    CHECK_EQ(rudo__deque_high_water(&q), 4);
    rudo__deque_destroy(&q);

    CHECK(rudo__deque_init(&q, 0)); /* rounding */
    CHECK_EQ(rudo__deque_capacity(&q), 1);
    rudo__deque_destroy(&q);
    CHECK(rudo__deque_init(&q, 1000)); /* pre-sized: no growth */
    CHECK_EQ(rudo__deque_capacity(&q), 1024);
    for (int i = 1; i <= 1000; i++)
        CHECK(rudo__deque_push(&q, ITEM(i)));
    CHECK_EQ(rudo__deque_growths(&q), 0);
    CHECK_EQ(rudo__deque_high_water(&q), 1000);
    rudo__deque_destroy(&q);
}

static void test_growth(void) {
    rudo__deque q;
    CHECK(rudo__deque_init(&q, 1));
    for (int i = 1; i <= 1000; i++)
        CHECK(rudo__deque_push(&q, ITEM(i)));
    CHECK_EQ(rudo__deque_capacity(&q), 1024);
    CHECK_EQ(rudo__deque_growths(&q), 10);
    CHECK_EQ(rudo__deque_high_water(&q), 1000);
    for (uint64_t i = 1; i <= 500; i++)
        CHECK_EQ(steal_val(&q), i);
    for (int i = 1000; i > 500; i--)
        CHECK(rudo__deque_pop(&q) == ITEM(i));
    CHECK(rudo__deque_pop(&q) == NULL);
    rudo__deque_reclaim(&q);
    rudo__deque_destroy(&q);

    /* Growth while the live items wrap around the end of the array. */
    CHECK(rudo__deque_init(&q, 4));
    for (int i = 1; i <= 3; i++)
        CHECK(rudo__deque_push(&q, ITEM(i)));
    CHECK_EQ(steal_val(&q), 1);
    CHECK_EQ(steal_val(&q), 2); /* top = 2: items 3.. start mid-array */
    for (int i = 4; i <= 20; i++)
        CHECK(rudo__deque_push(&q, ITEM(i)));
    CHECK_EQ(rudo__deque_growths(&q), 3);
    CHECK(rudo__deque_pop(&q) == ITEM(20));
    for (uint64_t i = 3; i <= 19; i++)
        CHECK_EQ(steal_val(&q), i);
    CHECK_EQ(steal_val(&q), 0);
    rudo__deque_destroy(&q); /* frees the retired arrays too */
}

static void test_failing_growth(void) {
    rudo__deque q;
    CHECK(rudo__deque_init(&q, 4));
    for (int i = 1; i <= 4; i++)
        CHECK(rudo__deque_push(&q, ITEM(i)));
    CHECK_EQ(steal_val(&q), 1);
    CHECK(rudo__deque_push(&q, ITEM(5))); /* wraps; still no growth */
    rudo__deque_fail_next_growth(&q);
    CHECK(!rudo__deque_push(&q, ITEM(6))); /* full, growth fails */
    CHECK_EQ(rudo__deque_growths(&q), 0);
    CHECK_EQ(rudo__deque_capacity(&q), 4);
    CHECK_EQ(rudo__deque_size_hint(&q), 4);
    CHECK(rudo__deque_pop(&q) == ITEM(5)); /* nothing lost or added */
    CHECK_EQ(steal_val(&q), 2);
    CHECK_EQ(steal_val(&q), 3);
    CHECK(rudo__deque_pop(&q) == ITEM(4));
    CHECK(rudo__deque_pop(&q) == NULL);
    /* The hook fails one growth only. */
    for (int i = 1; i <= 5; i++)
        CHECK(rudo__deque_push(&q, ITEM(i)));
    CHECK_EQ(rudo__deque_growths(&q), 1);
    for (int i = 5; i >= 1; i--)
        CHECK(rudo__deque_pop(&q) == ITEM(i));
    rudo__deque_destroy(&q);
}

/* ---- One owner, three thieves. ---- */

enum { THIEVES = 3 };

struct tally {
    uint64_t count, sum, xor, bad;
};

struct run {
    rudo__deque q;
    uint64_t n;
    uint32_t *payload;           /* payload[i]: written by the owner before pushing i */
    _Atomic unsigned char *seen; /* seen[i]: times item i was consumed */
    atomic_bool done;            /* the owner pushed everything and drained */
};

struct thief {
    pthread_t tid;
    struct run *r;
    struct tally t;
};

static uint32_t mix(uint64_t i) { return (uint32_t)(i * 2654435761u) ^ 0x5bd1e995u; }

static void consume(struct run *r, struct tally *t, uint64_t i) {
    if (i == 0 || i > r->n) {
        t->bad++;
        return;
    }
    if (r->payload[i] != mix(i)) /* plain read: published by the push */
        t->bad++;
    /* relaxed: a counter; main reads it after joining the threads. */
    atomic_fetch_add_explicit(&r->seen[i], 1, memory_order_relaxed);
    t->count++;
    t->sum += i;
    t->xor ^= i;
}

static void *thief_main(void *arg) {
    struct thief *th = arg;
    for (;;) {
        void *x;
        rudo__steal_result s = rudo__deque_steal(&th->r->q, &x);
        if (s == RUDO__STEAL_OK) {
            consume(th->r, &th->t, VAL(x));
        } else if (s == RUDO__STEAL_EMPTY) {
            /* acquire: pairs with the owner's release store of done, made
             * after it drained the deque, so no item can be left. */
            if (atomic_load_explicit(&th->r->done, memory_order_acquire))
                break;
            sched_yield(); /* let the owner run on a small machine */
        } /* RETRY: contended, go again at once */
    }
    return NULL;
}

/* init_cap: the deque's initial capacity. limit: if nonzero, the owner keeps
 * at most this many items (so a deque pre-sized to limit never grows).
 * fail_every: if nonzero, growth fails on every push whose index is a
 * multiple of it (1: always); a failed push takes the slow path (the owner
 * consumes the item itself). */
static void run_threads(const char *name, uint64_t n, size_t init_cap,
                        size_t limit, uint64_t fail_every) {
    struct run r;
    struct thief th[THIEVES];
    struct tally own = {0, 0, 0, 0};
    uint64_t rng = 0x9e3779b97f4a7c15u, failed = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r.n = n;
    r.payload = malloc((n + 1) * sizeof *r.payload);
    r.seen = calloc(n + 1, sizeof *r.seen);
    CHECK(r.payload != NULL && r.seen != NULL);
    if (r.payload == NULL || r.seen == NULL)
        return;
    atomic_init(&r.done, false);
    CHECK(rudo__deque_init(&r.q, init_cap));
    for (int k = 0; k < THIEVES; k++) {
        th[k].r = &r;
        th[k].t = own;
        CHECK(pthread_create(&th[k].tid, NULL, thief_main, &th[k]) == 0);
    }

    uint64_t next = 1;
    while (next <= n) {
        uint64_t rnd = test_rand(&rng);
        size_t burst = (rnd & 3) == 0 ? 1 : 1 + (size_t)(rnd >> 8) % 256;
        if (limit != 0 && rudo__deque_size_hint(&r.q) + burst > limit) {
            for (size_t k = 0; k < burst; k++) { /* too full: pop instead */
                void *x = rudo__deque_pop(&r.q);
                if (x != NULL)
                    consume(&r, &own, VAL(x));
            }
            continue;
        }
        for (size_t k = 0; k < burst && next <= n; k++, next++) {
            r.payload[next] = mix(next);
            if (fail_every != 0 && next % fail_every == 0)
                rudo__deque_fail_next_growth(&r.q);
            if (!rudo__deque_push(&r.q, ITEM(next))) {
                failed++; /* the slow path */
                consume(&r, &own, next);
            }
        }
        size_t pops = (size_t)(rnd >> 40) % (burst + 1); /* 0..burst */
        for (size_t k = 0; k < pops; k++) {
            void *x = rudo__deque_pop(&r.q);
            if (x != NULL)
                consume(&r, &own, VAL(x));
        }
    }
    for (void *x; (x = rudo__deque_pop(&r.q)) != NULL;)
        consume(&r, &own, VAL(x));
    atomic_store_explicit(&r.done, true, memory_order_release);

    struct tally all = own;
    uint64_t stolen = 0;
    for (int k = 0; k < THIEVES; k++) {
        CHECK(pthread_join(th[k].tid, NULL) == 0);
        all.count += th[k].t.count;
        all.sum += th[k].t.sum;
        all.xor ^= th[k].t.xor;
        all.bad += th[k].t.bad;
        stolen += th[k].t.count;
    }
    uint64_t want_xor = 0, dup = 0, lost = 0;
    for (uint64_t i = 1; i <= n; i++) {
        want_xor ^= i;
        unsigned s = atomic_load_explicit(&r.seen[i], memory_order_relaxed);
        dup += s > 1;
        lost += s == 0;
    }
    CHECK_EQ(all.bad, 0);
    CHECK_EQ(all.count, n);
    CHECK_EQ(all.sum, n * (n + 1) / 2);
    CHECK_EQ(all.xor, want_xor);
    CHECK_EQ(dup, 0);
    CHECK_EQ(lost, 0);
    CHECK(stolen > 0);
    CHECK_EQ(rudo__deque_size_hint(&r.q), 0);
    if (limit != 0 && limit <= init_cap)
        CHECK_EQ(rudo__deque_growths(&r.q), 0);
    if (fail_every == 1) {
        CHECK(failed > 0);
        CHECK_EQ(rudo__deque_growths(&r.q), 0);
    } else if (limit == 0) {
        CHECK(rudo__deque_growths(&r.q) > 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%-16s n=%llu stolen=%llu failed-push=%llu growths=%zu "
           "capacity=%zu high-water=%zu  %.2fs\n",
           name, (unsigned long long)n, (unsigned long long)stolen,
           (unsigned long long)failed, rudo__deque_growths(&r.q),
           rudo__deque_capacity(&r.q), rudo__deque_high_water(&r.q),
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    rudo__deque_reclaim(&r.q); /* no thief runs any more */
    rudo__deque_destroy(&r.q);
    free(r.payload);
    free(r.seen);
}

int main(void) {
    test_basic();
    test_growth();
    test_failing_growth();
    long scale = test_env_long("TEST_SCALE", 1);
    uint64_t n = 10000000 / (uint64_t)(scale > 0 ? scale : 1);
    run_threads("presized", n, 1024, 1024, 0);
    run_threads("growing", n, 2, 0, 1000);
    run_threads("growth-fails", n, 64, 0, 1);
    return test_report();
}
