/* test_roots_claims.c — the claims of rudo.h's "Roots" section that no
 * other test checks, one by one (the others: test_roots, test_roots_
 * unaligned, test_weak, test_thr_control, test_visit_mark_only,
 * test_handles, test_thr_handles, test_interior, test_errors).
 *
 *  - root slots: NULL aborts with a message; removing NULL (never added)
 *    is RUDO_ENOENT; the root calls work from an unattached thread;
 *  - ranges: empty, duplicate and overlapping ranges;
 *  - displacements: huge offsets are refused with a message, an offset
 *    not below the object's size does not count, the call is accepted
 *    without the mode;
 *  - weak slots: a slot in a registered range is strong; a slot in an
 *    untraced word of a layout or callback kind is weak; rudo_weak_
 *    registered for long slots, moved slots and slots in dead objects;
 *    the long variants' aborts; NULL slots in the query calls;
 *  - root callbacks: called once per collection; first callbacks in the
 *    order added, on the collecting thread, before the others; EEXIST
 *    across the two calls; a NULL fn aborts;
 *  - thread root callbacks: the collecting thread's own, replacement, end
 *    at detach, abort when unattached;
 *  - every call of the section without a heap, and the registry calls from
 *    a root callback or a trace callback, abort with a message (no hang:
 *    each child has an alarm);
 *  - generational mode: root slots, ranges, handles and callbacks keep
 *    young objects through minor collections, also a root slot rewritten
 *    after its first target was promoted; weak slots in minor collections.
 *
 * Precise setup (test_precise_config): only registered roots count. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

#define MAX_IDS 256
static rudo_kind k_probe; /* atomic, finalizable; word 0 is the id */
static int finalized[MAX_IDS];

static void probe_fin(void *obj, void *data) {
    (void)data;
    uint64_t id = *(uint64_t *)obj;
    if (id < MAX_IDS)
        finalized[id]++;
}

static void *probe(uint64_t id) {
    uint64_t *p = rudo_alloc(k_probe, 32);
    p[0] = id;
    return p;
}

static void make_heap(unsigned markers, bool generational) {
    rudo_config cfg = test_precise_config(markers);
    cfg.generational = generational;
    cfg.initial_heap = 64u << 20; /* no collection but the test's own */
    test_heap_create(&cfg);
    rudo_kind_desc d = {.name = "claims/probe", .tracing = RUDO_TRACE_ATOMIC,
                        .finalize = probe_fin};
    k_probe = rudo_kind_register(&d);
    memset(finalized, 0, sizeof finalized);
}

/* ---- root slots ---------------------------------------------------------- */

static void *g_root_a, *g_root_b;

/* rudo.h: "Removes a precise root. Returns RUDO_OK, or RUDO_ENOENT (and
 * prints a message naming the function) if the slot was never added." */
static void test_remove_null(void) {
    rudo_root_add(&g_root_a);
    /* NULL is the slot table's empty marker: once the table exists, a
     * lookup of NULL must not "find" an empty entry (it once did: RUDO_OK,
     * silently, and the entry became a tombstone). */
    test_capture_begin();
    int rc = rudo_root_remove(NULL);
    char buf[512];
    const char *msg = test_captured(buf, sizeof buf);
    test_capture_end();
    CHECK_EQ(rc, RUDO_ENOENT);
    CHECK(strstr(msg, "rudo_root_remove") != NULL);
    CHECK_EQ(rudo_root_remove(&g_root_a), RUDO_OK);
    CHECK_EQ(rudo_root_remove(&g_root_a), RUDO_ENOENT);
}

/* The consequence of that bug: 64 calls of rudo_root_remove(NULL) turned
 * every empty entry of the 64-entry table into a tombstone; the next probe
 * for a slot not in the table never met an empty entry, and rudo_root_add
 * hung with the world lock held. The child has 3 s. */
static void remove_null_then_add(void) {
    pid_t pid = fork();
    if (pid == 0) {
        alarm(3);
        make_heap(1, false);
        rudo_root_add(&g_root_a);
        for (int i = 0; i < 64; i++)
            rudo_root_remove(NULL);
        rudo_root_add(&g_root_b); /* hangs */
        _exit(0);
    }
    int st;
    st = test_wait_child(pid);
    /* The alarm ends the child through testlib's watchdog (status 3). */
    bool hung = (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) ||
                (WIFEXITED(st) && WEXITSTATUS(st) == 3);
    if (hung)
        fprintf(stderr, "rudo_root_add hung after 64 rudo_root_remove(NULL)\n");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* rudo.h: the root calls are thread-safe (any thread: the registry is
 * not per thread). From a thread that never attached, a root added keeps
 * its object, and removing it releases the object. */
static void *unattached_root_job(void *arg) {
    int op = (int)(uintptr_t)arg;
    if (op == 0)
        rudo_root_add(&g_root_b);
    else if (op == 1)
        return (void *)(intptr_t)rudo_root_remove(&g_root_b);
    else if (op == 2)
        return (void *)(intptr_t)rudo_weak_register(&g_root_a);
    else
        return (void *)(intptr_t)rudo_weak_unregister(&g_root_a);
    return NULL;
}
static intptr_t on_unattached(int op) {
    pthread_t t;
    void *rc;
    rudo_blocking_enter();
    pthread_create(&t, NULL, unattached_root_job, (void *)(uintptr_t)op);
    pthread_join(t, &rc);
    rudo_blocking_leave();
    return (intptr_t)rc;
}
static void test_unattached_roots(void) {
    on_unattached(0);
    g_root_b = probe(1);
    rudo_collect();
    CHECK_EQ(finalized[1], 0);
    CHECK_EQ(on_unattached(1), (intptr_t)RUDO_OK);
    rudo_collect();
    CHECK_EQ(finalized[1], 1);
    g_root_b = NULL;
    /* A weak slot registered from there is cleared as any. */
    void **w = (void **)&g_root_a;
    CHECK_EQ(on_unattached(2), (intptr_t)RUDO_OK);
    *w = probe(2);
    rudo_collect();
    CHECK(*w == NULL);
    CHECK_EQ(on_unattached(3), (intptr_t)RUDO_OK);
}

/* ---- ranges ---------------------------------------------------------------- */

static void test_ranges(void) {
    uintptr_t *buf = calloc(16, sizeof *buf);
    /* Empty ranges (start == end, NULL too) are accepted and removable. */
    rudo_root_add_range(buf + 4, buf + 4);
    rudo_root_add_range(NULL, NULL);
    rudo_collect();
    CHECK_EQ(rudo_root_remove_range(buf + 4), RUDO_OK);
    CHECK_EQ(rudo_root_remove_range(NULL), RUDO_OK);

    /* The same range twice: one removal removes one of them. */
    buf[2] = (uintptr_t)probe(10);
    rudo_root_add_range(buf, buf + 8);
    rudo_root_add_range(buf, buf + 8);
    CHECK_EQ(rudo_root_remove_range(buf), RUDO_OK);
    rudo_collect();
    CHECK_EQ(finalized[10], 0);
    CHECK_EQ(rudo_root_remove_range(buf), RUDO_OK);
    CHECK_EQ(rudo_root_remove_range(buf), RUDO_ENOENT);
    rudo_collect();
    CHECK_EQ(finalized[10], 1);

    /* Overlapping ranges: the word they share is a root while either is. */
    buf[6] = (uintptr_t)probe(11);
    rudo_root_add_range(buf, buf + 8);
    rudo_root_add_range(buf + 4, buf + 12);
    CHECK_EQ(rudo_root_remove_range(buf), RUDO_OK);
    rudo_collect();
    CHECK_EQ(finalized[11], 0);
    CHECK_EQ(rudo_root_remove_range(buf + 4), RUDO_OK);
    rudo_collect();
    CHECK_EQ(finalized[11], 1);
    free(buf);
}

/* ---- displacements ---------------------------------------------------------- */

static void test_displacement_modes(void) {
    /* Without the mode (interior_pointers true, the default): accepted. */
    CHECK_EQ(rudo_register_displacement(8), RUDO_OK);
    /* Huge offsets: EINVAL with a message. */
    size_t bad[] = {1024, 4096, SIZE_MAX};
    for (size_t i = 0; i < 3; i++) {
        test_capture_begin();
        int rc = rudo_register_displacement(bad[i]);
        char buf[512];
        const char *msg = test_captured(buf, sizeof buf);
        test_capture_end();
        CHECK_EQ(rc, RUDO_EINVAL);
        CHECK(strstr(msg, "rudo_register_displacement") != NULL);
    }
}

/* With interior_pointers false: base + offset keeps the object only for an
 * offset below the object's size (rudo.h: "less than the object's size"). */
static void test_displacement_size(void) {
    rudo_config cfg = test_precise_config(1);
    cfg.interior_pointers = false;
    cfg.initial_heap = 64u << 20;
    test_heap_create(&cfg);
    CHECK_EQ(rudo_register_displacement(8), RUDO_OK);
    CHECK_EQ(rudo_register_displacement(200), RUDO_OK);
    uintptr_t *range = calloc(4, sizeof *range);
    rudo_root_add_range(range, range + 4);
    char *small = rudo_malloc_atomic(32);   /* 200 is past its end */
    char *big = rudo_malloc_atomic(512);    /* 200 is inside */
    char *tagged = rudo_malloc_atomic(32);  /* 8 is inside */
    range[0] = (uintptr_t)(small + 200);
    range[1] = (uintptr_t)(big + 200);
    range[2] = (uintptr_t)(tagged + 8);
    rudo_collect();
    CHECK(!rudo__debug_is_marked(small));
    CHECK(rudo__debug_is_marked(big));
    CHECK(rudo__debug_is_marked(tagged));
    CHECK_EQ(rudo_root_remove_range(range), RUDO_OK);
    free(range);
    rudo_heap_destroy();
}

/* ---- weak slots ------------------------------------------------------------ */

/* A weak slot in a registered range is scanned as a root: it keeps its
 * target. In a callback or layout kind a word the kind does not trace is
 * a weak slot like any other. */
static void trace_first_word(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    rudo_visit(tr, (void **)obj);
}
static void test_weak_where(void) {
    void **range = calloc(2, sizeof *range);
    rudo_root_add_range(range, range + 2);
    range[1] = probe(20);
    CHECK_EQ(rudo_weak_register(&range[1]), RUDO_OK);
    rudo_collect();
    CHECK(range[1] != NULL);
    CHECK_EQ(finalized[20], 0);
    CHECK_EQ(rudo_weak_unregister(&range[1]), RUDO_OK);
    CHECK_EQ(rudo_root_remove_range(range), RUDO_OK);
    free(range);

    const uint64_t layout = 1; /* word 0 only */
    rudo_kind kl = rudo_kind_layout("claims/layout", 4, &layout);
    rudo_kind kc = rudo_kind_traced("claims/cb", trace_first_word);
    rudo_kind kinds[2] = {kl, kc};
    for (int i = 0; i < 2; i++) {
        g_root_a = rudo_alloc(kinds[i], 4 * sizeof(void *));
        rudo_root_add(&g_root_a);
        void **o = g_root_a;
        rudo_write(o, &o[0], probe(21 + 2 * i)); /* traced: strong */
        o[2] = probe(22 + 2 * i);                /* untraced: weak */
        CHECK_EQ(rudo_weak_register(&o[2]), RUDO_OK);
        rudo_collect();
        CHECK(o[0] != NULL);
        CHECK_EQ(finalized[21 + 2 * i], 0);
        CHECK(o[2] == NULL);
        CHECK_EQ(finalized[22 + 2 * i], 1);
        CHECK_EQ(rudo_weak_unregister(&o[2]), RUDO_OK);
        CHECK_EQ(rudo_root_remove(&g_root_a), RUDO_OK);
        g_root_a = NULL;
    }
}

/* rudo_weak_registered: LONG for long slots, kept by a move; 0 for a slot
 * inside an object that died. */
static void test_weak_registered(void) {
    void **s = calloc(3, sizeof *s);
    CHECK_EQ(rudo_weak_register_long(&s[0]), RUDO_OK);
    CHECK_EQ(rudo_weak_registered(&s[0]), RUDO_WEAK_LONG);
    CHECK_EQ(rudo_weak_move(&s[0], &s[1]), RUDO_OK);
    CHECK_EQ(rudo_weak_registered(&s[0]), 0);
    CHECK_EQ(rudo_weak_registered(&s[1]), RUDO_WEAK_LONG);
    CHECK_EQ(rudo_weak_register(&s[2]), RUDO_OK);
    CHECK_EQ(rudo_weak_move(&s[2], &s[0]), RUDO_OK);
    CHECK_EQ(rudo_weak_registered(&s[0]), RUDO_WEAK_SHORT);
    /* A moved long slot still outlives its target's finalizer. */
    s[1] = probe(30);
    rudo_collect();
    CHECK_EQ(finalized[30], 1);
    CHECK(s[1] != NULL);
    rudo_collect();
    CHECK(s[1] == NULL);
    CHECK_EQ(rudo_weak_unregister(&s[0]), RUDO_OK);
    CHECK_EQ(rudo_weak_unregister(&s[1]), RUDO_OK);
    free(s);

    void **box = rudo_malloc_atomic(32);
    box[1] = probe(31);
    CHECK_EQ(rudo_weak_register_long(&box[1]), RUDO_OK);
    void **slot = &box[1];
    box = NULL;
    rudo_collect();
    rudo_collect();
    CHECK_EQ(rudo_weak_registered(slot), 0);
}

/* rudo.h: weak_registered / unregister / move of a slot never registered:
 * 0, RUDO_ENOENT, RUDO_ENOENT — NULL included. */
static void test_weak_null_queries(void) {
    static void *w, *to;
    CHECK_EQ(rudo_weak_register(&w), RUDO_OK); /* the table exists */
    CHECK_EQ(rudo_weak_registered(&to), 0);
    /* As rudo_root_remove(NULL): NULL once matched an empty entry of the
     * slot table (registered said RUDO_WEAK_SHORT, move registered `to`,
     * unregister said RUDO_OK). */
    CHECK_EQ(rudo_weak_registered(NULL), 0);
    CHECK_EQ(rudo_weak_move(NULL, &to), RUDO_ENOENT);
    CHECK_EQ(rudo_weak_registered(&to), 0);
    CHECK_EQ(rudo_weak_unregister(NULL), RUDO_ENOENT);
    rudo_weak_unregister(&to);
    CHECK_EQ(rudo_weak_unregister(&w), RUDO_OK);
}

/* ---- root callbacks -------------------------------------------------------- */

static int order[8], norder;
static int cb_calls;
static bool first_on_main = true, plain_after_first = true;
static pthread_t main_thread;
static void *cb_slot;

static void first_cb(rudo_tracer *tr, void *data) {
    (void)tr;
    if (!pthread_equal(pthread_self(), main_thread))
        first_on_main = false;
    int n = __atomic_fetch_add(&norder, 1, __ATOMIC_SEQ_CST);
    if (n < 8)
        order[n] = (int)(uintptr_t)data;
}
static void plain_cb(rudo_tracer *tr, void *data) {
    (void)data;
    if (__atomic_load_n(&norder, __ATOMIC_SEQ_CST) % 3 != 0 ||
        __atomic_load_n(&norder, __ATOMIC_SEQ_CST) == 0)
        plain_after_first = false;
    __atomic_fetch_add(&cb_calls, 1, __ATOMIC_SEQ_CST);
    rudo_visit(tr, &cb_slot);
}

static void test_callbacks(void) {
    main_thread = pthread_self();
    CHECK_EQ(rudo_root_callback_add(plain_cb, NULL), RUDO_OK);
    CHECK_EQ(rudo_root_callback_add_first(plain_cb, NULL), RUDO_EEXIST);
    /* Added in the order 3, 1, 2 (data), plain ones in between. */
    CHECK_EQ(rudo_root_callback_add_first(first_cb, (void *)3), RUDO_OK);
    CHECK_EQ(rudo_root_callback_add_first(first_cb, (void *)1), RUDO_OK);
    CHECK_EQ(rudo_root_callback_add_first(first_cb, (void *)2), RUDO_OK);
    CHECK_EQ(rudo_root_callback_add(first_cb, (void *)2), RUDO_EEXIST);
    cb_slot = probe(40);
    norder = cb_calls = 0;
    rudo_collect();
    CHECK_EQ(norder, 3);
    CHECK(order[0] == 3 && order[1] == 1 && order[2] == 2);
    CHECK_EQ(cb_calls, 1); /* once per collection */
    CHECK(first_on_main);
    CHECK(plain_after_first);
    CHECK_EQ(finalized[40], 0);
    rudo_collect();
    CHECK_EQ(cb_calls, 2);
    CHECK_EQ(norder, 6);
    CHECK(order[3] == 3 && order[4] == 1 && order[5] == 2);
    /* Removing the middle first one keeps the others' order. */
    CHECK_EQ(rudo_root_callback_remove(first_cb, (void *)1), RUDO_OK);
    test_capture_begin();
    CHECK_EQ(rudo_root_callback_remove(first_cb, (void *)1), RUDO_ENOENT);
    char buf[256];
    CHECK(strstr(test_captured(buf, sizeof buf), "rudo_root_callback_remove") != NULL);
    test_capture_end();
    CHECK_EQ(rudo_root_callback_remove(first_cb, (void *)3), RUDO_OK);
    CHECK_EQ(rudo_root_callback_remove(first_cb, (void *)2), RUDO_OK);
    CHECK_EQ(rudo_root_callback_remove(plain_cb, NULL), RUDO_OK);
    rudo_collect();
    CHECK_EQ(cb_calls, 2);
    CHECK_EQ(finalized[40], 1);
    cb_slot = NULL;
}

/* ---- thread root callbacks ------------------------------------------------- */

static int tcb_a, tcb_b;
static void thread_cb(rudo_tracer *tr, void *data) {
    __atomic_fetch_add((int *)data, 1, __ATOMIC_SEQ_CST);
    if (data == &tcb_b)
        rudo_visit(tr, &cb_slot);
}

static void *detach_with_callback(void *arg) {
    (void)arg;
    CHECK_EQ(rudo_thread_attach(), RUDO_OK);
    rudo_thread_root_callback(thread_cb, &tcb_a);
    rudo_thread_detach(); /* the callback ends here */
    return NULL;
}

static void test_thread_callbacks(void) {
    /* The collecting thread's own callback is called too; a second call
     * replaces the first (one per thread). */
    rudo_thread_root_callback(thread_cb, &tcb_a);
    rudo_thread_root_callback(thread_cb, &tcb_b);
    cb_slot = probe(50);
    tcb_a = tcb_b = 0;
    rudo_collect();
    CHECK_EQ(tcb_a, 0);
    CHECK_EQ(tcb_b, 1);
    CHECK_EQ(finalized[50], 0);
    rudo_thread_root_callback(NULL, NULL);
    rudo_collect();
    CHECK_EQ(tcb_b, 1);
    CHECK_EQ(finalized[50], 1);
    cb_slot = NULL;

    /* It ends when the thread detaches. */
    pthread_t t;
    rudo_blocking_enter();
    pthread_create(&t, NULL, detach_with_callback, NULL);
    pthread_join(t, NULL);
    rudo_blocking_leave();
    tcb_a = 0;
    rudo_collect();
    CHECK_EQ(tcb_a, 0);
}

/* ---- aborts ---------------------------------------------------------------- */

static void *slot_s;
static char unaligned_buf[32] __attribute__((aligned(8)));

static void heap1(void) { make_heap(1, false); }

static void d_root_add_null(void *a) { (void)a; heap1(); rudo_root_add(NULL); }
/* (void **)1 is the slot table's tombstone: refused as misaligned. */
static void d_root_add_misaligned(void *a) {
    heap1();
    rudo_root_add(a ? (void **)1 : (void **)(void *)(unaligned_buf + 4));
}
static void d_long_null(void *a) { (void)a; heap1(); rudo_weak_register_long(NULL); }
static void d_long_misaligned(void *a) {
    (void)a;
    heap1();
    rudo_weak_register_long((void **)(void *)(unaligned_buf + 4));
}
static void d_target_misaligned(void *a) {
    (void)a;
    heap1();
    rudo_weak_register_target((void **)(void *)(unaligned_buf + 1), unaligned_buf);
}
static void d_long_target_null(void *a) {
    (void)a;
    heap1();
    rudo_weak_register_long_target(&slot_s, NULL);
}
static void d_move_misaligned(void *a) {
    (void)a;
    heap1();
    rudo_weak_register(&slot_s);
    rudo_weak_move(&slot_s, (void **)(void *)(unaligned_buf + 2));
}
static void d_cb_null(void *a) { (void)a; heap1(); rudo_root_callback_add(NULL, NULL); }
static void d_cb_first_null(void *a) {
    (void)a;
    heap1();
    rudo_root_callback_add_first(NULL, NULL);
}

/* Without a heap: each call, by number. */
static void noop_cb(rudo_tracer *tr, void *data) { (void)tr; (void)data; }
static void d_no_heap(void *a) {
    switch ((int)(uintptr_t)a) {
    case 0: rudo_root_add(&slot_s); break;
    case 1: rudo_root_remove(&slot_s); break;
    case 2: rudo_root_add_range(unaligned_buf, unaligned_buf + 8); break;
    case 3: rudo_root_remove_range(unaligned_buf); break;
    case 4: rudo_register_displacement(8); break;
    case 5: rudo_weak_register_long(&slot_s); break;
    case 6: rudo_weak_register_target(&slot_s, unaligned_buf); break;
    case 7: rudo_weak_register_long_target(&slot_s, unaligned_buf); break;
    case 8: rudo_weak_registered(&slot_s); break;
    case 9: rudo_weak_unregister(&slot_s); break;
    case 10: rudo_weak_move(&slot_s, &slot_s); break;
    case 11: rudo_root_callback_add(noop_cb, NULL); break;
    case 12: rudo_root_callback_add_first(noop_cb, NULL); break;
    case 13: rudo_root_callback_remove(noop_cb, NULL); break;
    case 14: rudo_thread_root_callback(noop_cb, NULL); break;
    }
}
static const char *const no_heap_fn[] = {
    "rudo_root_add", "rudo_root_remove", "rudo_root_add_range", "rudo_root_remove_range",
    "rudo_register_displacement", "rudo_weak_register_long", "rudo_weak_register_target",
    "rudo_weak_register_long_target", "rudo_weak_registered", "rudo_weak_unregister",
    "rudo_weak_move", "rudo_root_callback_add", "rudo_root_callback_add_first",
    "rudo_root_callback_remove", "rudo_thread_root_callback"};
#define N_NO_HEAP (sizeof no_heap_fn / sizeof no_heap_fn[0])

/* From a thread that never attached. */
static void *unattached_thread_cb(void *a) {
    (void)a;
    rudo_thread_root_callback(noop_cb, NULL);
    return NULL;
}
static void d_thread_cb_unattached(void *a) {
    (void)a;
    heap1();
    pthread_t t;
    rudo_blocking_enter();
    pthread_create(&t, NULL, unattached_thread_cb, NULL);
    pthread_join(t, NULL);
}

/* The registry (and its neighbours) from a root callback, by number. */
static int inside_op;
static void misuse_cb(rudo_tracer *tr, void *data) {
    (void)tr;
    (void)data;
    static void *s2;
    switch (inside_op) {
    case 0: rudo_root_add(&s2); break;
    case 1: rudo_root_remove(&slot_s); break;
    case 2: rudo_root_add_range(unaligned_buf, unaligned_buf + 8); break;
    case 3: rudo_root_remove_range(unaligned_buf); break;
    case 4: rudo_register_displacement(8); break;
    case 5: rudo_weak_register(&s2); break;
    case 6: rudo_weak_registered(&slot_s); break;
    case 7: rudo_weak_unregister(&slot_s); break;
    case 8: rudo_weak_move(&slot_s, &s2); break;
    case 9: rudo_root_callback_add(noop_cb, NULL); break;
    case 10: rudo_root_callback_remove(misuse_cb, NULL); break;
    case 11: rudo_thread_root_callback(noop_cb, NULL); break;
    case 12: (void)rudo_malloc(16); break;
    case 13: rudo_collect(); break;
    }
}
static const char *const inside_fn[] = {
    "rudo_root_add", "rudo_root_remove", "rudo_root_add_range", "rudo_root_remove_range",
    "rudo_register_displacement", "rudo_weak_register", "rudo_weak_registered",
    "rudo_weak_unregister", "rudo_weak_move", "rudo_root_callback_add",
    "rudo_root_callback_remove", "rudo_thread_root_callback",
    "rudo_alloc" /* rudo_malloc's message names rudo_alloc */, "rudo_collect"};
#define N_INSIDE (sizeof inside_fn / sizeof inside_fn[0])
static void d_inside(void *a) {
    alarm(5); /* a hang is a failure, not a hang */
    inside_op = (int)(uintptr_t)a % 100;
    bool thread_cb = (uintptr_t)a / 100 % 2 == 1;
    unsigned markers = (uintptr_t)a >= 200 ? 3 : 1;
    make_heap(markers, false);
    rudo_root_add(&slot_s);
    rudo_root_add_range(unaligned_buf, unaligned_buf + 8);
    rudo_weak_register(&g_root_a);
    if (thread_cb)
        rudo_thread_root_callback(misuse_cb, NULL);
    else
        rudo_root_callback_add(misuse_cb, NULL);
    rudo_collect();
}
/* From a trace callback. */
static void trace_add_root(void *obj, size_t size, rudo_tracer *tr) {
    (void)obj;
    (void)size;
    (void)tr;
    rudo_root_add(&g_root_b);
}
static void d_trace_root_add(void *a) {
    (void)a;
    alarm(5);
    heap1();
    rudo_kind k = rudo_kind_traced("claims/adds-root", trace_add_root);
    rudo_root_add(&slot_s);
    slot_s = rudo_alloc(k, 16);
    rudo_collect();
}

static void test_aborts(void) {
    expect_death("rudo_root_add(NULL)", d_root_add_null, NULL,
                 "rudo: rudo_root_add: slot is NULL");
    expect_death("rudo_root_add misaligned", d_root_add_misaligned, NULL,
                 "rudo: rudo_root_add: slot");
    expect_death("rudo_root_add((void **)1)", d_root_add_misaligned, (void *)1,
                 "rudo: rudo_root_add: slot 0x1 is not aligned");
    expect_death("rudo_weak_register_long(NULL)", d_long_null, NULL,
                 "rudo: rudo_weak_register_long: slot is NULL");
    expect_death("rudo_weak_register_long misaligned", d_long_misaligned, NULL,
                 "rudo: rudo_weak_register_long: slot");
    expect_death("rudo_weak_register_target misaligned", d_target_misaligned, NULL,
                 "rudo: rudo_weak_register_target: slot");
    expect_death("rudo_weak_register_long_target NULL target", d_long_target_null, NULL,
                 "rudo: rudo_weak_register_long_target: the target is NULL");
    expect_death("rudo_weak_move to a misaligned slot", d_move_misaligned, NULL,
                 "rudo: rudo_weak_move: slot");
    expect_death("rudo_root_callback_add(NULL fn)", d_cb_null, NULL,
                 "rudo: rudo_root_callback_add");
    expect_death("rudo_root_callback_add_first(NULL fn)", d_cb_first_null, NULL,
                 "rudo: rudo_root_callback_add_first");
    char what[160], needle[160];
    for (size_t i = 0; i < N_NO_HEAP; i++) {
        snprintf(what, sizeof what, "%s without a heap", no_heap_fn[i]);
        snprintf(needle, sizeof needle, "rudo: %s: no heap", no_heap_fn[i]);
        expect_death(what, d_no_heap, (void *)(uintptr_t)i, needle);
    }
    expect_death("rudo_thread_root_callback from an unattached thread",
                 d_thread_cb_unattached, NULL,
                 "rudo: rudo_thread_root_callback: the calling thread is not attached");
    for (size_t base = 0; base <= 300; base += 100) {
        for (size_t i = 0; i < N_INSIDE; i++) {
            snprintf(what, sizeof what, "%s in a %s root callback (%s)", inside_fn[i],
                     base / 100 % 2 ? "thread" : "global",
                     base >= 200 ? "3 markers" : "1 marker");
            snprintf(needle, sizeof needle,
                     "rudo: %s: called from the trace callback of kind '(root callback)'",
                     inside_fn[i]);
            expect_death(what, d_inside, (void *)(uintptr_t)(base + i), needle);
        }
    }
    expect_death("rudo_root_add in a trace callback", d_trace_root_add, NULL,
                 "rudo: rudo_root_add: called from the trace callback of kind "
                 "'claims/adds-root'");
}

/* ---- generational mode ------------------------------------------------------- */

static void *gen_cb_slot;
static int gen_cb_calls;
static void gen_cb(rudo_tracer *tr, void *data) {
    (void)data;
    gen_cb_calls++;
    rudo_visit(tr, &gen_cb_slot);
}
static void *gen_thread_slot;
static void gen_thread_cb(rudo_tracer *tr, void *data) {
    (void)data;
    rudo_visit(tr, &gen_thread_slot);
}

static void test_generational(void) {
    make_heap(1, true);
    void **slot = calloc(1, sizeof *slot);
    uintptr_t *range = calloc(2, sizeof *range);
    rudo_root_add(slot);
    rudo_root_add_range(range, range + 2);
    CHECK_EQ(rudo_root_callback_add(gen_cb, NULL), RUDO_OK);
    rudo_thread_root_callback(gen_thread_cb, NULL);
    rudo_scope sc;
    rudo_scope_enter(&sc);
    void **h = rudo_handle(probe(60));
    *slot = probe(61);
    range[1] = (uintptr_t)probe(62) + 8; /* interior */
    gen_cb_slot = probe(63);
    gen_thread_slot = probe(64);
    (void)probe(65); /* garbage: a minor collection reclaims it */
    gen_cb_calls = 0;
    rudo_collect_minor();
    CHECK_EQ(gen_cb_calls, 1);
    for (int id = 60; id <= 64; id++)
        CHECK_EQ(finalized[id], 0);
    CHECK_EQ(finalized[65], 1);
    /* The first targets are old now; new young ones in the same roots. */
    *h = probe(70);
    *slot = probe(71);
    range[1] = (uintptr_t)probe(72);
    gen_cb_slot = probe(73);
    gen_thread_slot = probe(74);
    rudo_collect_minor();
    CHECK_EQ(gen_cb_calls, 2);
    for (int id = 70; id <= 74; id++)
        CHECK_EQ(finalized[id], 0);
    rudo_collect();
    for (int id = 60; id <= 64; id++)
        CHECK_EQ(finalized[id], 1); /* the old ones die in a full one */
    for (int id = 70; id <= 74; id++)
        CHECK_EQ(finalized[id], 0);

    /* Weak slots in minor collections: a young dead target clears the
     * short slot; the long one waits for the finalizer's end. */
    void **w = calloc(3, sizeof *w);
    CHECK_EQ(rudo_weak_register(&w[0]), RUDO_OK);
    CHECK_EQ(rudo_weak_register_long(&w[1]), RUDO_OK);
    CHECK_EQ(rudo_weak_register(&w[2]), RUDO_OK);
    void *young = probe(80);
    w[0] = young;
    w[1] = young;
    w[2] = *slot; /* an old, live target */
    young = NULL;
    rudo_collect_minor();
    CHECK_EQ(finalized[80], 1);
    CHECK(w[0] == NULL);
    CHECK(w[1] != NULL);
    CHECK(w[2] == *slot);
    rudo_collect();
    CHECK(w[1] == NULL);
    CHECK(w[2] == *slot);
    /* A young object whose only reference is a weak slot in an old
     * object's untraced word: cleared by the minor collection. */
    *slot = rudo_malloc_atomic(32);
    rudo_collect_minor(); /* the box is old now */
    void **box = *slot;
    box[1] = probe(81);
    CHECK_EQ(rudo_weak_register(&box[1]), RUDO_OK);
    rudo_collect_minor();
    CHECK(box[1] == NULL);
    CHECK_EQ(finalized[81], 1);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(rudo_weak_unregister(&w[i]), RUDO_OK);
    CHECK_EQ(rudo_weak_unregister(&box[1]), RUDO_OK);

    rudo_scope_exit(&sc);
    rudo_thread_root_callback(NULL, NULL);
    CHECK_EQ(rudo_root_callback_remove(gen_cb, NULL), RUDO_OK);
    CHECK_EQ(rudo_root_remove_range(range), RUDO_OK);
    CHECK_EQ(rudo_root_remove(slot), RUDO_OK);
    free(w);
    free(slot);
    free(range);
    rudo_heap_destroy();
}

int main(void) {
    test_start_watchdog();
    for (unsigned markers = 1; markers <= 3; markers += 2) {
        make_heap(markers, false);
        test_remove_null();
        test_unattached_roots();
        test_ranges();
        test_displacement_modes();
        test_weak_where();
        test_weak_registered();
        test_weak_null_queries();
        test_callbacks();
        test_thread_callbacks();
        rudo_heap_destroy();
    }
    test_displacement_size();
    test_generational();
    remove_null_then_add();
    test_aborts();
    return test_report();
}
