/* test_handles.c — scoped handles (the inline fast paths of rudo.h and
 * their slow paths in src/threads/handles.c) with precise roots only: no
 * stack or static-data scanning, so an object survives a collection only
 * if a handle holds it. Weak slots tell which objects a collection kept.
 *  - objects held by handles survive collections, with intact contents;
 *    they die once their scope exits;
 *  - a handle's slot may be rewritten: the new target is the root;
 *  - thousands of handles in one scope (many chunks), nested scopes whose
 *    marks lie in several chunks, and loops that cross a chunk boundary
 *    every iteration (the spare chunk);
 *  - misuse aborts with a message: a handle outside any scope, exits out
 *    of order or twice, a never-entered scope, a scope entered by another
 *    thread, handles in a blocking region or on an unattached thread. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rudo.h"
#include "testlib.h"

#define MANY 5000

/* Weak slots in malloc'd memory (not scanned, so they do not root). */
static void **weak;
static size_t nweak;

static void watch(size_t i, void *obj) {
    weak[i] = obj;
    CHECK_EQ(rudo_weak_register(&weak[i]), RUDO_OK);
}

static void unwatch_all(void) {
    for (size_t i = 0; i < nweak; i++) {
        rudo_weak_unregister(&weak[i]);
        weak[i] = NULL;
    }
}

/* An atomic object holding its own number, so a survivor's contents can be
 * checked after the collections. */
static uint64_t *numbered(uint64_t n) {
    uint64_t *p = rudo_malloc_atomic(2 * sizeof *p);
    CHECK(p != NULL);
    p[0] = n;
    p[1] = ~n;
    return p;
}

static bool intact(const void *obj, uint64_t n) {
    const uint64_t *p = obj;
    return p != NULL && p[0] == n && p[1] == ~n;
}

/* Handles keep objects across collections; exiting the scope drops them. */
static void test_basic(void) {
    rudo_scope s;
    rudo_scope_enter(&s);
    void **h[8];
    for (uint64_t i = 0; i < 8; i++) {
        h[i] = rudo_handle(numbered(i));
        watch(i, *h[i]);
    }
    rudo_collect();
    rudo_collect();
    for (uint64_t i = 0; i < 8; i++) {
        CHECK(weak[i] == *h[i]);
        CHECK(intact(*h[i], i));
    }
    /* Rewriting a slot: the old target dies, the new one lives. */
    *h[3] = numbered(103);
    watch(8, *h[3]);
    rudo_collect();
    CHECK(weak[3] == NULL);
    CHECK(weak[8] == *h[3] && intact(*h[3], 103));
    *h[5] = NULL;
    rudo_collect();
    CHECK(weak[5] == NULL);
    rudo_scope_exit(&s);
    rudo_collect();
    for (size_t i = 0; i < 9; i++)
        CHECK(weak[i] == NULL);
    unwatch_all();
}

/* MANY handles in one scope: they span many chunks; each slot keeps its
 * address and its object. */
static void test_many(void) {
    void ***h = malloc(MANY * sizeof *h);
    rudo_scope s;
    rudo_scope_enter(&s);
    for (uint64_t i = 0; i < MANY; i++) {
        h[i] = rudo_handle(numbered(i));
        watch(i, *h[i]);
    }
    rudo_collect();
    size_t ok = 0, distinct = 0;
    for (uint64_t i = 0; i < MANY; i++) {
        ok += weak[i] == *h[i] && intact(*h[i], i);
        distinct += i == 0 || h[i] != h[i - 1];
    }
    CHECK_EQ(ok, (size_t)MANY);
    CHECK_EQ(distinct, (size_t)MANY);
    rudo_scope_exit(&s);
    rudo_collect();
    size_t dead = 0;
    for (size_t i = 0; i < MANY; i++)
        dead += weak[i] == NULL;
    CHECK_EQ(dead, (size_t)MANY);
    unwatch_all();
    free(h);
}

/* Nested scopes, each with `per` handles, so that scope marks fall in
 * several chunks; collections inside; on the way out each level checks
 * that its own handles survived and the inner ones died. */
static size_t next_id;

static void nest(int depth, int per) {
    rudo_scope s;
    rudo_scope_enter(&s);
    size_t first = next_id;
    void **h[64];
    for (int i = 0; i < per; i++) {
        h[i] = rudo_handle(numbered(next_id));
        watch(next_id, *h[i]);
        next_id++;
    }
    size_t inner = next_id;
    if (depth > 0)
        nest(depth - 1, per);
    if (depth % 7 == 0)
        rudo_collect();
    for (int i = 0; i < per; i++)
        CHECK(intact(*h[i], first + (size_t)i) && weak[first + (size_t)i] == *h[i]);
    if (depth % 7 == 0 && depth > 0) {
        /* The inner scopes have exited: their objects died. */
        size_t alive = 0;
        for (size_t i = inner; i < next_id; i++)
            alive += weak[i] != NULL;
        CHECK_EQ(alive, (size_t)0);
    }
    rudo_scope_exit(&s);
}

static void test_nested(void) {
    next_id = 0;
    nest(60, 50); /* 3050 handles, about 12 chunks */
    rudo_collect();
    size_t alive = 0;
    for (size_t i = 0; i < next_id; i++)
        alive += weak[i] != NULL;
    CHECK_EQ(alive, (size_t)0);
    unwatch_all();
}

/* An outer scope fills the first chunk to 250 slots; then each iteration
 * opens a scope and makes 10 handles, crossing into the next chunk and
 * back (the spare chunk is reused, the outer handles stay). */
static void test_boundary(void) {
    rudo_scope outer;
    rudo_scope_enter(&outer);
    void **h[250];
    for (uint64_t i = 0; i < 250; i++) {
        h[i] = rudo_handle(numbered(i));
        watch(i, *h[i]);
    }
    void **first_inner = NULL;
    size_t same = 0;
    for (int it = 0; it < 2000; it++) {
        rudo_scope s;
        rudo_scope_enter(&s);
        void **hh[10];
        for (int j = 0; j < 10; j++)
            hh[j] = rudo_handle(numbered(1000 + (uint64_t)j));
        if (it == 0)
            first_inner = hh[9];
        same += hh[9] == first_inner; /* the same chunk every time */
        if (it % 500 == 0) {
            rudo_collect();
            for (int j = 0; j < 10; j++)
                CHECK(intact(*hh[j], 1000 + (uint64_t)j));
        }
        rudo_scope_exit(&s);
    }
    CHECK_EQ(same, (size_t)2000);
    rudo_collect();
    size_t ok = 0;
    for (uint64_t i = 0; i < 250; i++)
        ok += weak[i] == *h[i] && intact(*h[i], i);
    CHECK_EQ(ok, (size_t)250);
    rudo_scope_exit(&outer);
    unwatch_all();
}

/* ---- misuse (each runs in a child process) ---- */
static void *volatile sink;

static void handle_outside(void *a) {
    (void)a;
    rudo_scope s;
    rudo_scope_enter(&s);
    rudo_scope_exit(&s);
    sink = rudo_handle(NULL); /* a chunk exists, no scope is open */
}
static void exit_twice(void *a) {
    (void)a;
    rudo_scope s;
    rudo_scope_enter(&s);
    rudo_scope_exit(&s);
    rudo_scope_exit(&s);
}
static void exit_outer_first(void *a) {
    (void)a;
    rudo_scope s1, s2;
    rudo_scope_enter(&s1);
    for (int i = 0; i < 300; i++) /* s2 begins in a later chunk */
        sink = rudo_handle(NULL);
    rudo_scope_enter(&s2);
    rudo_scope_exit(&s1);
}
static void exit_never_entered(void *a) {
    (void)a;
    rudo_scope outer, s;
    rudo_scope_enter(&outer);
    memset(&s, 0, sizeof s);
    rudo_scope_exit(&s);
}
static void exit_stale_copy(void *a) {
    /* A copy of a scope that has exited, used again at the same depth
     * after fewer handles: its mark lies past the next free slot. */
    (void)a;
    rudo_scope outer, s, copy;
    rudo_scope_enter(&outer);
    sink = rudo_handle(NULL);
    rudo_scope_enter(&s);
    copy = s;
    rudo_scope_exit(&s);
    rudo_scope_exit(&outer);
    rudo_scope_enter(&outer);
    rudo_scope_enter(&s);
    rudo_scope_exit(&copy);
}

static rudo_scope foreign;
static void *enter_foreign(void *a) {
    (void)a;
    rudo_thread_attach();
    rudo_scope_enter(&foreign);
    return NULL; /* the thread exits: detached by the destructor */
}
static void exit_foreign(void *a) {
    (void)a;
    rudo_scope mine;
    rudo_scope_enter(&mine); /* depth 1, as the foreign scope */
    pthread_t t;
    rudo_blocking_enter();
    pthread_create(&t, NULL, enter_foreign, NULL);
    pthread_join(t, NULL);
    rudo_blocking_leave();
    rudo_scope_exit(&foreign);
}
static void handle_blocking(void *a) {
    (void)a;
    rudo_scope s;
    rudo_scope_enter(&s);
    rudo_blocking_enter();
    sink = rudo_handle(NULL);
}
static void scope_blocking(void *a) {
    (void)a;
    rudo_scope s;
    rudo_blocking_enter();
    rudo_scope_enter(&s);
}
static void *unattached(void *a) {
    rudo_scope s;
    if (a)
        sink = rudo_handle(NULL);
    else
        rudo_scope_enter(&s);
    return NULL;
}
static void from_unattached(void *a) {
    pthread_t t;
    pthread_create(&t, NULL, unattached, a);
    pthread_join(t, NULL);
}

int main(void) {
    rudo_config cfg = test_precise_config(0);
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    nweak = MANY;
    weak = calloc(nweak, sizeof *weak);
    test_basic();
    test_many();
    test_nested();
    test_boundary();

    expect_death("rudo_handle: no scope open", handle_outside, NULL,
                 "rudo_handle: no scope is open");
    expect_death("rudo_scope_exit: twice", exit_twice, NULL,
                 "rudo_scope_exit: scopes must exit in reverse order");
    expect_death("rudo_scope_exit: outer before inner", exit_outer_first, NULL,
                 "rudo_scope_exit: scopes must exit in reverse order");
    expect_death("rudo_scope_exit: never entered", exit_never_entered, NULL,
                 "rudo_scope_exit: scopes must exit in reverse order");
    expect_death("rudo_scope_exit: stale copy", exit_stale_copy, NULL,
                 "rudo_scope_exit: the scope was not entered by this thread");
    expect_death("rudo_handle: blocking region", handle_blocking, NULL,
                 "rudo_handle: called inside a blocking region");
    expect_death("rudo_scope_enter: blocking region", scope_blocking, NULL,
                 "rudo_scope_enter: called inside a blocking region");
    /* These start a thread in the forked child, which ThreadSanitizer
     * does not support. */
    if (!TEST_UNDER_TSAN) {
        expect_death("rudo_scope_exit: another thread's scope", exit_foreign, NULL,
                     "rudo_scope_exit: the scope was not entered by this thread");
        expect_death("rudo_scope_enter: unattached", from_unattached, NULL,
                     "rudo_scope_enter: the calling thread is not attached");
        expect_death("rudo_handle: unattached", from_unattached, (void *)1,
                     "rudo_handle: the calling thread is not attached");
    }

    free(weak);
    rudo_heap_destroy();
    return test_report();
}
