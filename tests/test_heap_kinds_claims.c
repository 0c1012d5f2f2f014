/* test_heap_kinds_claims.c — the claims of rudo.h's "Heap lifecycle",
 * "Kinds" and "Tracing (for trace callbacks)" sections that no other test
 * checks (the others: test_errors, test_options_readme, test_destroy,
 * test_kinds, test_thr_kinds, test_final_api, test_finalize, test_uninit,
 * test_interior, test_visit_value, test_visit_mark_only, test_weak,
 * test_thr_ephemeron, test_thr_threads_claims):
 *
 *  - without a heap: rudo_strerror for every code and unknown ones,
 *    rudo_config_init, rudo_heap_exists (also from another thread);
 *  - rudo_heap_create: NULL = defaults; RUDO_EEXIST for a second heap (also
 *    from another thread, which stays unattached); cfg->size 0 and too large
 *    rejected with a message, no heap left; a shorter (older) struct
 *    accepted; invalid signal pairs, mark_batch, signal_stop_ms,
 *    minor_pause_goal_us, major_growth rejected through heap creation;
 *    max_heap at or above the reservation (SIZE_MAX) means no bound;
 *  - the environment overrides reach the heap (not only the option table):
 *    RUDO_MARKERS, RUDO_HEAP_INITIAL, RUDO_HEAP_MAX, RUDO_GENERATIONAL,
 *    RUDO_INTERIOR_POINTERS;
 *  - rudo_heap_destroy aborts with a message from a trace callback, a root
 *    callback, a listener's begin and phase, a gc callback and finalizer run
 *    by rudo_collect or by an allocation, a finalizer run by
 *    rudo_run_finalizers; after destroy a new heap starts with the built-in
 *    kinds only;
 *  - kinds: the two built-in kinds, the first handle 2, the name copied and
 *    cut at 47 characters, RUDO_MAX_KINDS counts the built-in ones (1022
 *    more register, the last one works), the register_flags aborts and the
 *    accepted flag combinations, the shorthands' aborts, rudo_kind_name from
 *    an unattached thread;
 *  - tracing flavours x size classes x cell positions x markers 1, 2, 4:
 *    conservative, atomic, layout (2, 3 and 100 words, with junk bits beyond
 *    layout_words), callback (its size argument is the usable size) and
 *    layout with RUDO_KIND_BASE_ONLY, in cells 0, 1 and the last of a page
 *    of classes 16, 48, 1024, 3072 and 12288 bytes, and in a large object
 *    (chunk borders): a child in a pointer word survives, one in another
 *    word dies; an ephemeron's words after its two fields are not traced;
 *  - rudo_visit: NULL, tagged integers and non-heap values harmless; an
 *    interior value keeps its object (also with interior_pointers false);
 *    thousands of slots from one callback (the buffer flush);
 *    rudo_visit_weak: NULL and non-heap values left alone, cleared when the
 *    target dies, kept when it lives; rudo_visit_range: partial words at
 *    both ends ignored, lo >= hi reports nothing; rudo_visit_is_marked false
 *    for NULL and non-heap addresses; rudo_visit_value ignores free cells.
 *
 * Precise setup (test_precise_config): only registered roots count; liveness
 * is observed through short weak slots kept in malloc'd memory (not
 * scanned). */
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "debug/debug.h"
#include "heap/heap.h"
#include "rudo.h"
#include "testlib.h"

static void *volatile sink;

/* Runs fn(arg) with stderr captured; returns the text. */
static char capbuf[8192];
static const char *captured(void (*fn)(void *), void *arg) {
    test_capture_begin();
    fn(arg);
    const char *m = test_captured(capbuf, sizeof capbuf);
    test_capture_end();
    return m;
}

/* Short weak slots in malloc'd memory: the collector does not scan it. */
#define NWEAK 4096
static void **weak;
static size_t nweak;
static size_t watch(void *obj) {
    size_t i = nweak++;
    if (i >= NWEAK)
        abort();
    weak[i] = obj;
    if (rudo_weak_register(&weak[i]) != RUDO_OK)
        abort();
    return i;
}
static bool alive(size_t i) { return weak[i] != NULL; }
static void unwatch_all(void) {
    for (size_t i = 0; i < nweak; i++)
        rudo_weak_unregister(&weak[i]);
    nweak = 0;
}

/* A conservative root range holding what a case builds (so that GC stress
 * collections during the setup keep it); cleared before the case's own
 * collection. */
#define NHOLD 8192
static void **hold;
static size_t nhold;
static void *held(void *p) {
    if (nhold >= NHOLD)
        abort();
    hold[nhold++] = p;
    return p;
}
static void drop_held(void) {
    memset(hold, 0, NHOLD * sizeof *hold);
    nhold = 0;
}

static void precise_heap(unsigned markers) {
    rudo_config cfg = test_precise_config(markers);
    cfg.initial_heap = 256u << 20; /* no collection but the test's own */
    test_heap_create(&cfg);
    rudo_root_add_range(hold, hold + NHOLD);
}
static void end_heap(void) {
    unwatch_all();
    drop_held();
    rudo_heap_destroy();
}

/* ======================================================================== */
/* Heap lifecycle                                                           */
/* ======================================================================== */

/* rudo.h: rudo_strerror "Returns a static string describing an error
 * code; never NULL. Thread-safe; may be called without a heap." */
static void *strerror_job(void *a) {
    (void)a;
    for (int e = -2; e <= 7; e++)
        if (rudo_strerror(e) == NULL)
            return (void *)1;
    return rudo_strerror(INT32_MAX) ? NULL : (void *)1;
}
static void test_no_heap(void) {
    const char *s[6];
    for (int e = 0; e <= 5; e++) {
        s[e] = rudo_strerror(e);
        CHECK(s[e] != NULL && s[e][0] != '\0');
    }
    for (int a = 0; a <= 5; a++)
        for (int b = a + 1; b <= 5; b++)
            CHECK(strcmp(s[a], s[b]) != 0);
    CHECK(rudo_strerror(-1) != NULL);
    CHECK(rudo_strerror(99) != NULL);
    CHECK(rudo_strerror(RUDO_ENOMEM) == rudo_strerror(RUDO_ENOMEM)); /* static */
    pthread_t t;
    void *r;
    pthread_create(&t, NULL, strerror_job, NULL);
    pthread_join(t, &r);
    CHECK(r == NULL);
    /* rudo_config_init and rudo_heap_exists need no heap. */
    rudo_config c;
    memset(&c, 0x77, sizeof c);
    rudo_config_init(&c);
    CHECK(c.size == sizeof c && c.initial_heap == (size_t)4 << 20);
    CHECK(!rudo_heap_exists());
}

static void *exists_job(void *a) {
    (void)a;
    return (void *)(uintptr_t)(rudo_heap_exists() ? 1 : 0);
}
static void *create_job(void *a) {
    (void)a;
    int rc = rudo_heap_create(NULL);
    bool att = rudo_thread_is_attached();
    return (void *)(uintptr_t)(rc * 2 + att);
}
static intptr_t on_thread(void *(*fn)(void *), void *arg) {
    pthread_t t;
    void *r;
    if (rudo_thread_is_attached())
        rudo_blocking_enter();
    pthread_create(&t, NULL, fn, arg);
    pthread_join(t, &r);
    if (rudo_thread_is_attached())
        rudo_blocking_leave();
    return (intptr_t)r;
}

static int create_rc;
static const rudo_config *create_cfg;
static void do_create(void *a) {
    (void)a;
    create_rc = rudo_heap_create(create_cfg);
}
/* rudo_heap_create(cfg) must fail with RUDO_EINVAL, a message containing
 * needle, and leave no heap and no attached thread. */
static void expect_einval(const char *what, const rudo_config *cfg, const char *needle) {
    create_rc = -1;
    create_cfg = cfg;
    const char *msg = captured(do_create, NULL);
    bool ok = create_rc == RUDO_EINVAL && strstr(msg, needle) != NULL &&
              strstr(msg, "rudo: rudo_heap_create: ") != NULL &&
              !rudo_heap_exists() && !rudo_thread_is_attached();
    if (!ok)
        fprintf(stderr, "  %s: rc %d, heap %d, message: %s\n", what, create_rc,
                (int)rudo_heap_exists(), msg);
    test_check(ok, what, __FILE__, __LINE__);
    if (rudo_heap_exists())
        rudo_heap_destroy();
}

static void test_create(void) {
    /* NULL = the defaults; the creating thread is attached. */
    CHECK_EQ(rudo_heap_create(NULL), RUDO_OK);
    CHECK(rudo_heap_exists() && rudo_thread_is_attached());
    CHECK_EQ(on_thread(exists_job, NULL), 1); /* thread-safe, unattached */
    rudo_stats st;
    rudo_get_stats(&st);
    CHECK(st.markers >= 1 && st.threads_attached == 1);
    /* RUDO_EEXIST for a second heap, from the same thread and another one
     * (which is not attached by the failed call). */
    CHECK_EQ(rudo_heap_create(NULL), RUDO_EEXIST);
    rudo_config c;
    rudo_config_init(&c);
    CHECK_EQ(rudo_heap_create(&c), RUDO_EEXIST);
    CHECK_EQ(on_thread(create_job, NULL), RUDO_EEXIST * 2 + 0);
    rudo_get_stats(&st);
    CHECK_EQ(st.threads_attached, 1u);
    rudo_heap_destroy();
    CHECK(!rudo_heap_exists() && !rudo_thread_is_attached());
    CHECK_EQ(on_thread(exists_job, NULL), 0);

    /* cfg->size 0 (a zeroed struct) and larger than the library's. */
    rudo_config z;
    memset(&z, 0, sizeof z);
    expect_einval("heap_create: zeroed config (size 0)", &z, "rudo_config.size");
    rudo_config_init(&c);
    c.size = sizeof c + sizeof(void *);
    expect_einval("heap_create: size larger than the library's", &c,
                  "rudo_config_init");
    /* An older header's shorter struct: the rest keeps its defaults. */
    rudo_config old;
    memset(&old, 0xff, sizeof old); /* junk past size must not be read */
    old.size = offsetof(rudo_config, scan_static_data);
    old.initial_heap = 8u << 20;
    old.max_heap = 0;
    old.growth = 2.0;
    old.growth_limit = 0;
    CHECK_EQ(rudo_heap_create(&old), RUDO_OK);
    if (rudo_heap_exists()) {
        rudo_get_stats(&st);
        CHECK(st.markers >= 1 && st.markers <= 1024); /* not 0xffffffff */
        int su = -1, re = -1;
        rudo_stop_signals(&su, &re);
        CHECK(su == 30 && re == 24); /* the defaults, not junk */
        CHECK(rudo_malloc(64) != NULL);
        rudo_heap_destroy();
    }

    /* Invalid values, through heap creation: EINVAL and a message. */
    static const struct {
        const char *what, *needle;
        unsigned su, re, stop_ms, batch, goal;
        double major;
    } bad[] = {
        {"suspend_signal == restart_signal", "differ", 30, 30, 2, 512, 0, 1.5},
        {"suspend_signal SIGKILL", "signal 9", 9, 24, 2, 512, 0, 1.5},
        {"suspend_signal SIGSTOP", "signal 19", 19, 24, 2, 512, 0, 1.5},
        {"restart_signal SIGSEGV", "signal 11", 30, 11, 2, 512, 0, 1.5},
        {"restart_signal SIGABRT", "signal 6", 30, 6, 2, 512, 0, 1.5},
        {"restart_signal SIGTRAP", "signal 5", 30, 5, 2, 512, 0, 1.5},
        {"suspend_signal SIGFPE", "signal 8", 8, 24, 2, 512, 0, 1.5},
        {"suspend_signal 65", "suspend_signal", 65, 24, 2, 512, 0, 1.5},
        {"restart_signal 0", "restart_signal", 30, 0, 2, 512, 0, 1.5},
        {"restart_signal 65", "restart_signal", 30, 65, 2, 512, 0, 1.5},
        {"signal_stop_ms 3600001", "signal_stop_ms", 30, 24, 3600001, 512, 0, 1.5},
        {"mark_batch 0", "mark_batch", 30, 24, 2, 0, 0, 1.5},
        {"mark_batch 65537", "mark_batch", 30, 24, 2, 65537, 0, 1.5},
        {"minor_pause_goal_us 10000001", "minor_pause_goal_us", 30, 24, 2, 512,
         10000001, 1.5},
        {"major_growth 0.99", "major_growth", 30, 24, 2, 512, 0, 0.99},
        {"major_growth 1001", "major_growth", 30, 24, 2, 512, 0, 1001},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rudo_config_init(&c);
        c.suspend_signal = bad[i].su;
        c.restart_signal = bad[i].re;
        c.signal_stop_ms = bad[i].stop_ms;
        c.mark_batch = bad[i].batch;
        c.minor_pause_goal_us = bad[i].goal;
        c.major_growth = bad[i].major;
        char what[128];
        snprintf(what, sizeof what, "heap_create rejects %s", bad[i].what);
        expect_einval(what, &c, bad[i].needle);
    }
    /* The bounds themselves are accepted; suspend_signal 0 leaves
     * restart_signal unused. */
    rudo_config_init(&c);
    c.signal_stop_ms = 3600000;
    c.mark_batch = 65536;
    c.minor_pause_goal_us = 10000000;
    c.major_growth = 1000;
    c.suspend_signal = 64;
    c.restart_signal = 1;
    CHECK_EQ(rudo_heap_create(&c), RUDO_OK);
    if (rudo_heap_exists())
        rudo_heap_destroy();
    rudo_config_init(&c);
    c.suspend_signal = 0;
    c.restart_signal = 30;
    CHECK_EQ(rudo_heap_create(&c), RUDO_OK);
    if (rudo_heap_exists()) {
        int su = -1, re = -1;
        rudo_stop_signals(&su, &re);
        CHECK(su == 0 && re == 0);
        rudo_heap_destroy();
    }

    /* max_heap: any value at or above the reservation (64 GiB), SIZE_MAX
     * included, means no bound but the reservation. */
    const size_t maxes[] = {SIZE_MAX, (size_t)64 << 30, ((size_t)64 << 30) + 1};
    for (size_t i = 0; i < 3; i++) {
        rudo_config_init(&c);
        c.max_heap = maxes[i];
        CHECK_EQ(rudo_heap_create(&c), RUDO_OK);
        if (!rudo_heap_exists())
            continue;
        void *lo, *hi;
        rudo_heap_bounds(&lo, &hi);
        CHECK_EQ((size_t)((char *)hi - (char *)lo), (size_t)64 << 30);
        /* 64 MiB live in large objects: no bound hit. */
        static void *big[16];
        rudo_root_add_range(big, big + 16);
        bool ok = true;
        for (int j = 0; j < 16; j++)
            ok &= (big[j] = rudo_alloc(RUDO_KIND_ATOMIC, 4u << 20)) != NULL;
        CHECK(ok);
        memset(big, 0, sizeof big);
        rudo_heap_destroy();
    }
}

/* ---- environment overrides reach the heap ------------------------------- */

static int oom_calls;
static void count_oom(size_t size, void *data) {
    (void)size;
    (void)data;
    oom_calls++;
}

static void test_env_overrides(void) {
    rudo_config c;
    rudo_stats st;
    /* RUDO_MARKERS over cfg.markers. */
    setenv("RUDO_MARKERS", "3", 1);
    c = test_precise_config(1);
    CHECK_EQ(rudo_heap_create(&c), RUDO_OK);
    unsetenv("RUDO_MARKERS");
    rudo_get_stats(&st);
    CHECK_EQ(st.markers, 3u);
    rudo_collect();
    CHECK_EQ(rudo_get_marker_stats(NULL, 0), 3u);
    rudo_heap_destroy();

    /* RUDO_HEAP_INITIAL over cfg.initial_heap: 8 MiB of garbage collects
     * with it at 1M, not with the config's 256 MiB. */
    for (int env = 0; env <= 1; env++) {
        if (env)
            setenv("RUDO_HEAP_INITIAL", "1M", 1);
        c = test_precise_config(1);
        c.initial_heap = 256u << 20;
        CHECK_EQ(rudo_heap_create(&c), RUDO_OK);
        unsetenv("RUDO_HEAP_INITIAL");
        for (int i = 0; i < 8 * 16; i++)
            sink = rudo_alloc(RUDO_KIND_ATOMIC, 64u << 10);
        rudo_get_stats(&st);
        if (!test_stress_on()) {
            if (env)
                CHECK(st.collections >= 1);
            else
                CHECK_EQ(st.collections, (uint64_t)0);
        }
        rudo_heap_destroy();
    }

    /* RUDO_HEAP_MAX over cfg.max_heap (0): 16 MiB live cannot fit in 4M. */
    setenv("RUDO_HEAP_MAX", "4M", 1);
    c = test_precise_config(1);
    c.on_oom = count_oom;
    oom_calls = 0;
    CHECK_EQ(rudo_heap_create(&c), RUDO_OK);
    unsetenv("RUDO_HEAP_MAX");
    {
        static void *keep[16];
        rudo_root_add_range(keep, keep + 16);
        int got = 0;
        for (int i = 0; i < 16; i++)
            got += (keep[i] = rudo_alloc(RUDO_KIND_ATOMIC, 1u << 20)) != NULL;
        CHECK(got < 16 && oom_calls > 0);
        memset(keep, 0, sizeof keep);
    }
    rudo_heap_destroy();

    /* RUDO_GENERATIONAL=1 over cfg.generational false. */
    setenv("RUDO_GENERATIONAL", "1", 1);
    c = test_precise_config(1);
    CHECK_EQ(rudo_heap_create(&c), RUDO_OK);
    unsetenv("RUDO_GENERATIONAL");
    rudo_collect_minor();
    rudo_get_stats(&st);
    CHECK(st.minor_collections >= 1);
    rudo_heap_destroy();

    /* RUDO_INTERIOR_POINTERS=0 over cfg.interior_pointers true: an
     * interior address in a conservative root range keeps nothing. */
    for (int env = 0; env <= 1; env++) {
        if (env)
            setenv("RUDO_INTERIOR_POINTERS", "0", 1);
        c = test_precise_config(1);
        CHECK_EQ(rudo_heap_create(&c), RUDO_OK);
        unsetenv("RUDO_INTERIOR_POINTERS");
        static void *range[1];
        weak = calloc(NWEAK, sizeof *weak);
        rudo_root_add_range(range, range + 1);
        char *o = rudo_alloc(RUDO_KIND_ATOMIC, 64);
        range[0] = o + 24;
        size_t w = watch(o);
        rudo_collect();
        CHECK(alive(w) == !env);
        range[0] = NULL;
        unwatch_all();
        free(weak);
        weak = NULL;
        rudo_heap_destroy();
    }
}


/* rudo_heap_create: "RUDO_ENOMEM if the address space cannot be
 * reserved": under a 1 GiB address-space limit (the reservation is
 * 64 GiB). No heap is left. */
static void test_enomem(void) {
    if (TEST_UNDER_TSAN || TEST_UNDER_ASAN)
        return; /* their shadow memory needs more than the limit */
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10);
        struct rlimit rl = {1u << 30, 1u << 30};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(2);
        int rc = rudo_heap_create(NULL);
        _exit(rc == RUDO_ENOMEM && !rudo_heap_exists() && !rudo_thread_is_attached() ? 0 : 1);
    }
    int st;
    st = test_wait_child(pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* rudo_heap_destroy: "The calling thread must be the only attached
 * thread (aborts otherwise)". An unattached thread may destroy a heap no
 * thread is attached to (the code allows it: nmutators == 0); one that
 * is not attached while another thread is aborts. */
static void *destroy_job(void *a) {
    (void)a;
    rudo_heap_destroy();
    return NULL;
}
static void destroy_unattached_other_attached(void *a) {
    (void)a;
    alarm(10);
    test_heap_create(NULL);
    pthread_t t;
    rudo_blocking_enter();
    pthread_create(&t, NULL, destroy_job, NULL);
    pthread_join(t, NULL);
    rudo_blocking_leave();
    _exit(0);
}
static void test_destroy_unattached(void) {
    test_heap_create(NULL);
    rudo_thread_detach();
    CHECK(rudo_heap_exists() && !rudo_thread_is_attached());
    rudo_heap_destroy(); /* no thread attached: allowed */
    CHECK(!rudo_heap_exists());
    test_heap_create(NULL);
    rudo_thread_detach();
    on_thread(destroy_job, NULL);
    CHECK(!rudo_heap_exists());
    expect_death("heap_destroy by an unattached thread while another is attached",
                 destroy_unattached_other_attached, NULL,
                 "rudo: rudo_heap_destroy: other threads are still attached");
}

/* scan_static_data (default true): a static variable keeps its object;
 * false: it does not (stacks not scanned either way). */
static void *volatile static_ref;
static void test_static_data(void) {
    for (int on = 0; on <= 1; on++) {
        rudo_config c = test_precise_config(1);
        c.scan_static_data = on;
        test_heap_create(&c);
        weak = calloc(NWEAK, sizeof *weak);
        static_ref = rudo_alloc(RUDO_KIND_ATOMIC, 48);
        size_t w = watch(static_ref);
        rudo_collect();
        CHECK(alive(w) == (bool)on);
        static_ref = NULL;
        unwatch_all();
        free(weak);
        weak = NULL;
        rudo_heap_destroy();
    }
}

/* RUDO_STEAL=0 and RUDO_INBOX=0 override mark_steal and mark_inbox: no
 * marker attempts a steal, none sends a batch. */
static rudo_kind k_tree;
static void trace_tree(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    test_tnode *n = obj;
    rudo_visit(tr, (void **)&n->left);
    rudo_visit(tr, (void **)&n->right);
}
static void test_env_switches(void) {
    static const char *const vars[] = {"RUDO_STEAL", "RUDO_INBOX"};
    for (int v = 0; v < 2; v++) {
        setenv(vars[v], "0", 1);
        rudo_config c = test_precise_config(4);
        c.mark_steal = true;
        c.mark_inbox = true;
        c.scan_stacks = true; /* test_tree_make holds nodes on its stack */
        c.initial_heap = 256u << 20;
        test_heap_create(&c);
        unsetenv(vars[v]);
        static void *root;
        rudo_root_add(&root);
        k_tree = rudo_kind_traced("claims/tree", trace_tree);
        uint64_t rng = 7;
        root = test_tree_make(k_tree, 14, &rng);
        rudo_collect();
        rudo_marker_stats ms[4];
        unsigned n = rudo_get_marker_stats(ms, 4);
        CHECK_EQ(n, 4u);
        uint64_t steals = 0, sent = 0, marked = 0;
        for (unsigned i = 0; i < n && i < 4; i++) {
            steals += ms[i].steals_attempted;
            sent += ms[i].batches_sent;
            marked += ms[i].objects_marked;
        }
        CHECK(marked >= (1u << 14) - 1);
        if (v == 0)
            CHECK_EQ(steals, (uint64_t)0);
        else
            CHECK_EQ(sent, (uint64_t)0);
        root = NULL;
        rudo_heap_destroy();
    }
}


/* rudo.h, rudo_heap_create: "Thread-safe against itself: of threads
 * creating at once, one creates the heap and the others get RUDO_EEXIST
 * (and stay unattached)". Before, gc.c tested rudo__the_heap (a plain
 * read) at entry and stored it much later (after the options, the 64 GiB
 * reservation, the locks): both calls could pass the test and return
 * RUDO_OK, the first heap leaked, and each thread was attached to a
 * different heap (about 1 run in 6 on 2 cores). */
static pthread_barrier_t create_bar;
static int race_rc[2];
static bool race_attached[2];
static void *race_create(void *a) {
    int i = (int)(uintptr_t)a;
    pthread_barrier_wait(&create_bar);
    race_rc[i] = rudo_heap_create(NULL);
    race_attached[i] = rudo_thread_is_attached();
    return NULL;
}
static void test_create_race(void) {
    int both = 0;
    for (int it = 0; it < 40; it++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(10);
            pthread_barrier_init(&create_bar, NULL, 2);
            pthread_t t[2];
            for (uintptr_t i = 0; i < 2; i++)
                pthread_create(&t[i], NULL, race_create, (void *)i);
            for (int i = 0; i < 2; i++)
                pthread_join(t[i], NULL);
            /* 0: one created and is attached, the other got EEXIST and is
             * not; 1: both created; 2: anything else. */
            int one = race_rc[0] == RUDO_OK ? 0 : 1;
            bool ok = race_rc[one] == RUDO_OK && race_rc[1 - one] == RUDO_EEXIST &&
                      race_attached[one] && !race_attached[1 - one] &&
                      rudo_heap_exists();
            _exit(ok ? 0 : race_rc[0] == RUDO_OK && race_rc[1] == RUDO_OK ? 1 : 2);
        }
        int st;
        st = test_wait_child(pid);
        both += WIFEXITED(st) && WEXITSTATUS(st) == 1;
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) != 2);
    }
    if (both)
        fprintf(stderr, "two concurrent rudo_heap_create both returned RUDO_OK in %d of 40 runs\n", both);
    CHECK_EQ(both, 0);
}

/* ---- markers far beyond the CPUs ---------------------------------------- */

/* rudo.h, markers: "1 to 1024; 0 = number of online CPUs"; rudo_heap_
 * create: "RUDO_EINVAL if a config value ... is invalid (a message names
 * it)". The config's markers once had no upper bound (RUDO_MARKERS had
 * 1024): rudo_heap_create accepted UINT_MAX or 1 << 20, and the first
 * collection aborted ("out of memory for the marker pool") or ran for
 * many seconds making threads, instead of creation rejecting the value. */
static void huge_markers(void *a) {
    (void)a;
    alarm(10);
    rudo_config c = test_precise_config(UINT_MAX);
    int rc = rudo_heap_create(&c);
    if (rc == RUDO_EINVAL)
        _exit(0);
    rudo_collect();
    _exit(1);
}
static void test_huge_markers(void) {
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", 1);
        dup2(fd, 2);
        huge_markers(NULL);
    }
    int st;
    st = test_wait_child(pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- rudo_heap_destroy where it must abort ------------------------------ */

static rudo_kind k_leafcb;
static void trace_destroy(void *obj, size_t size, rudo_tracer *tr) {
    (void)obj;
    (void)size;
    (void)tr;
    rudo_heap_destroy();
}
static void root_destroy(rudo_tracer *tr, void *data) {
    (void)tr;
    (void)data;
    rudo_heap_destroy();
}
static void begin_destroy(const rudo_gc_event *ev, void *data) {
    (void)ev;
    (void)data;
    rudo_heap_destroy();
}
static void phase_destroy(rudo_gc_phase ph, uint64_t ns, void *data) {
    (void)ns;
    (void)data;
    if (ph == RUDO_PHASE_MARK)
        rudo_heap_destroy();
}
static void gccb_destroy(const rudo_gc_event *ev, void *data) {
    (void)ev;
    (void)data;
    rudo_heap_destroy();
}
static void fin_destroy(void *obj, void *data) {
    (void)obj;
    (void)data;
    rudo_heap_destroy();
}
static void *g_root;
static void destroy_child(void *arg) {
    int which = (int)(uintptr_t)arg;
    alarm(10);
    rudo_config c = test_precise_config(which == 9 ? 2 : 1);
    c.initial_heap = which == 5 || which == 7 ? (1u << 20) : (64u << 20);
    if (rudo_heap_create(&c) != RUDO_OK)
        _exit(2);
    rudo_root_add(&g_root);
    switch (which) {
    case 0: /* trace callback */
    case 9: /* trace callback, two markers */
        k_leafcb = rudo_kind_traced("claims/destroy-trace", trace_destroy);
        g_root = rudo_alloc(k_leafcb, 32);
        rudo_collect();
        break;
    case 1:
        rudo_root_callback_add(root_destroy, NULL);
        rudo_collect();
        break;
    case 2: {
        rudo_gc_listener l = {.begin = begin_destroy};
        rudo_set_gc_listener(&l);
        rudo_collect();
        break;
    }
    case 3: {
        rudo_gc_listener l = {.phase = phase_destroy};
        rudo_set_gc_listener(&l);
        rudo_collect();
        break;
    }
    case 4: /* gc callback of rudo_collect */
        rudo_set_gc_callback(gccb_destroy, NULL);
        rudo_collect();
        break;
    case 5: /* gc callback of an allocation's collection */
        rudo_set_gc_callback(gccb_destroy, NULL);
        for (int i = 0; i < 100000; i++)
            sink = rudo_alloc(RUDO_KIND_ATOMIC, 1024);
        break;
    case 6: /* a finalizer run by rudo_collect */
    case 7: /* ... by an allocation */
    case 8: /* ... by rudo_run_finalizers */
    {
        rudo_kind_desc d = {.name = "claims/destroy-fin",
                            .tracing = RUDO_TRACE_ATOMIC,
                            .finalize = fin_destroy};
        rudo_kind kf = rudo_kind_register(&d);
        if (which == 8)
            rudo_set_finalization(true, NULL, NULL);
        for (int i = 0; i < 64; i++)
            sink = rudo_alloc(kf, 32);
        sink = NULL;
        if (which == 7) {
            for (int i = 0; i < 100000; i++)
                sink = rudo_alloc(i % 8 ? RUDO_KIND_ATOMIC : kf, 1024);
        } else {
            rudo_collect();
            if (which == 8)
                rudo_run_finalizers();
        }
        break;
    }
    }
    _exit(0); /* survived */
}

static void test_destroy_aborts(void) {
    static const struct {
        const char *what, *needle;
    } cases[] = {
        {"heap_destroy from a trace callback", "rudo: rudo_heap_destroy: called from the trace callback"},
        {"heap_destroy from a root callback", "rudo: rudo_heap_destroy: called from the trace callback of kind '(root callback)'"},
        {"heap_destroy from a listener's begin", "rudo: rudo_heap_destroy: called from the trace callback of kind '(gc listener)'"},
        {"heap_destroy from a listener's phase", "rudo: rudo_heap_destroy: called from the trace callback of kind '(gc listener)'"},
        {"heap_destroy from rudo_collect's gc callback", "rudo: rudo_heap_destroy: called from a finalizer or collection callback"},
        {"heap_destroy from an allocation's gc callback", "rudo: rudo_heap_destroy: called from a finalizer or collection callback"},
        {"heap_destroy from a finalizer run by rudo_collect", "rudo: rudo_heap_destroy: called from a finalizer or collection callback"},
        {"heap_destroy from a finalizer run by an allocation", "rudo: rudo_heap_destroy: called from a finalizer or collection callback"},
        {"heap_destroy from a finalizer run by rudo_run_finalizers", "rudo: rudo_heap_destroy: called from a finalizer or collection callback"},
        {"heap_destroy from a trace callback, 2 markers", "rudo: rudo_heap_destroy: called from the trace callback"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_death(cases[i].what, destroy_child, (void *)(uintptr_t)i, cases[i].needle);
}

/* After destroy a new heap has the built-in kinds only; handles of the old
 * heap are unknown there. */
static void unknown_old_kind(void *a) {
    alarm(10);
    (void)rudo_kind_name((rudo_kind)(uintptr_t)a);
}
static void test_recreate(void) {
    test_heap_create(NULL);
    rudo_kind a = rudo_kind_atomic("claims/old-a");
    rudo_kind b = rudo_kind_atomic("claims/old-b");
    CHECK(a == 2 && b == 3);
    rudo_heap_destroy();
    test_heap_create(NULL);
    expect_death("kind of a destroyed heap is unknown in the next", unknown_old_kind,
                 (void *)(uintptr_t)b, "rudo: rudo_kind_name: unknown kind 3");
    CHECK(rudo_kind_atomic("claims/new") == 2);
    rudo_heap_destroy();
}

/* ======================================================================== */
/* Kinds                                                                    */
/* ======================================================================== */

static void *name_job(void *a) {
    return (void *)rudo_kind_name((rudo_kind)(uintptr_t)a);
}

static void test_kind_basics(void) {
    test_heap_create(NULL);
    /* The two built-in kinds. */
    CHECK_EQ(RUDO_KIND_CONSERVATIVE, 0u);
    CHECK_EQ(RUDO_KIND_ATOMIC, 1u);
    CHECK(strcmp(rudo_kind_name(RUDO_KIND_CONSERVATIVE), "conservative") == 0);
    CHECK(strcmp(rudo_kind_name(RUDO_KIND_ATOMIC), "atomic") == 0);
    void *o = rudo_alloc(RUDO_KIND_CONSERVATIVE, 24);
    CHECK(rudo_kind_of(o) == RUDO_KIND_CONSERVATIVE);
    o = rudo_alloc(RUDO_KIND_ATOMIC, 24);
    CHECK(rudo_kind_of(o) == RUDO_KIND_ATOMIC);
    /* The name is copied, at most 47 characters kept; an empty one is a
     * name. */
    char name[100];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    rudo_kind k = rudo_kind_conservative(name);
    CHECK_EQ(k, 2u);
    memset(name, 'x', 10);
    const char *kn = rudo_kind_name(k);
    CHECK(strlen(kn) == 47 && strspn(kn, "n") == 47);
    CHECK(rudo_kind_name(k) == kn); /* stable */
    memcpy(name, "exact47", 7);
    name[47] = '\0';
    rudo_kind k47 = rudo_kind_atomic(name);
    CHECK(strcmp(rudo_kind_name(k47), name) == 0);
    name[46] = '\0';
    rudo_kind k46 = rudo_kind_atomic(name);
    CHECK(strcmp(rudo_kind_name(k46), name) == 0);
    rudo_kind ke = rudo_kind_atomic("");
    CHECK(strcmp(rudo_kind_name(ke), "") == 0);
    /* rudo_kind_name from an unattached thread. */
    const char *from_thread = (const char *)on_thread(name_job, (void *)(uintptr_t)k);
    CHECK(from_thread == kn);
    /* The layout is copied too (the caller's array may change). */
    uint64_t lay = 1;
    rudo_kind kl = rudo_kind_layout("claims/copied-layout", 1, &lay);
    lay = 0;
    static void *root;
    rudo_root_add(&root);
    weak = calloc(NWEAK, sizeof *weak);
    void **p = rudo_alloc(kl, 16);
    root = p;
    p[0] = rudo_alloc(RUDO_KIND_ATOMIC, 16);
    size_t w = watch(p[0]);
    rudo_collect();
    CHECK(alive(w));
    unwatch_all();
    free(weak);
    weak = NULL;
    root = NULL;
    rudo_root_remove(&root);
    rudo_heap_destroy();
}

/* RUDO_MAX_KINDS counts the two built-in kinds: 1022 more register, with
 * handles 2 .. 1023, and the last one works; the next aborts. */
static void trace_one(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    rudo_visit(tr, (void **)obj);
}
static void test_max_kinds(void) {
    test_heap_create(NULL);
    char name[32];
    rudo_kind last = 0;
    bool seq = true;
    for (unsigned i = 2; i < RUDO_MAX_KINDS - 1; i++) {
        snprintf(name, sizeof name, "claims/k%u", i);
        seq &= rudo_kind_atomic(name) == i;
    }
    last = rudo_kind_traced("claims/last", trace_one);
    CHECK(seq);
    CHECK_EQ(last, RUDO_MAX_KINDS - 1);
    CHECK(strcmp(rudo_kind_name(RUDO_MAX_KINDS - 2), "claims/k1022") == 0);
    static void *root;
    rudo_root_add(&root);
    weak = calloc(NWEAK, sizeof *weak);
    void **p = rudo_alloc(last, 16);
    root = p;
    CHECK(rudo_kind_of(p) == last);
    p[0] = rudo_alloc(RUDO_MAX_KINDS - 2, 16);
    size_t w = watch(p[0]);
    rudo_collect();
    CHECK(alive(w));
    unwatch_all();
    free(weak);
    weak = NULL;
    root = NULL;
    rudo_root_remove(&root);
    rudo_heap_destroy();
}
static void max_kinds_abort(void *a) {
    (void)a;
    alarm(10);
    test_heap_create(NULL);
    char name[32];
    for (unsigned i = 2; i < RUDO_MAX_KINDS; i++) {
        snprintf(name, sizeof name, "k%u", i);
        if (rudo_kind_atomic(name) != i)
            _exit(3);
    }
    (void)rudo_kind_atomic("one-too-many");
}

/* ---- flags and shorthands: aborts and accepted combinations ------------- */

static void trace_nothing(void *obj, size_t size, rudo_tracer *tr) {
    (void)obj;
    (void)size;
    (void)tr;
}
static const uint64_t lay1[1] = {1};
static void flags_case(void *a) {
    unsigned c = (unsigned)(uintptr_t)a;
    alarm(10);
    test_heap_create(NULL);
    rudo_kind_desc d = {.name = "claims/flags", .trace = trace_nothing,
                        .layout = lay1, .layout_words = 1};
    unsigned flags = 0;
    switch (c) {
    case 0: d.tracing = RUDO_TRACE_ATOMIC; flags = 4; break;
    case 1: d.tracing = RUDO_TRACE_LAYOUT; flags = 0x80000000u; break;
    case 2: d.tracing = RUDO_TRACE_ATOMIC; flags = RUDO_KIND_BASE_ONLY; break;
    case 3: d.tracing = RUDO_TRACE_CONSERVATIVE; flags = RUDO_KIND_BASE_ONLY; break;
    case 4: d.tracing = RUDO_TRACE_EPHEMERON; flags = RUDO_KIND_BASE_ONLY; break;
    case 5: d.tracing = RUDO_TRACE_CONSERVATIVE; flags = RUDO_KIND_UNINIT; break;
    case 6: d.tracing = RUDO_TRACE_LAYOUT; flags = RUDO_KIND_UNINIT; break;
    case 7: d.tracing = RUDO_TRACE_CALLBACK; flags = RUDO_KIND_UNINIT; break;
    case 8: d.tracing = RUDO_TRACE_EPHEMERON; flags = RUDO_KIND_UNINIT; break;
    case 9: d.tracing = RUDO_TRACE_LAYOUT; flags = RUDO_KIND_BASE_ONLY | RUDO_KIND_UNINIT; break;
    /* rudo_kind_register_flags aborts as rudo_kind_register too. */
    case 10: d.tracing = RUDO_TRACE_CALLBACK; d.trace = NULL; break;
    case 11: d.tracing = (rudo_tracing)7; break;
    case 12: d.name = NULL; d.tracing = RUDO_TRACE_ATOMIC; break;
    }
    (void)rudo_kind_register_flags(&d, flags);
}
static void shorthand_case(void *a) {
    unsigned c = (unsigned)(uintptr_t)a;
    alarm(10);
    test_heap_create(NULL);
    switch (c) {
    case 0: (void)rudo_kind_traced("claims/t", NULL); break;
    case 1: (void)rudo_kind_traced(NULL, trace_nothing); break;
    case 2: (void)rudo_kind_layout("claims/l", 0, lay1); break;
    case 3: (void)rudo_kind_layout("claims/l", 1025, lay1); break;
    case 4: (void)rudo_kind_layout("claims/l", 1, NULL); break;
    case 5: (void)rudo_kind_layout(NULL, 1, lay1); break;
    case 6: (void)rudo_kind_conservative(NULL); break;
    case 7: (void)rudo_kind_atomic(NULL); break;
    case 8: (void)rudo_kind_ephemeron(NULL); break;
    case 9: (void)rudo_kind_register_flags(NULL, 0); break;
    }
}
static void no_heap_kind(void *a) {
    unsigned c = (unsigned)(uintptr_t)a;
    alarm(10);
    rudo_kind_desc d = {.name = "x", .tracing = RUDO_TRACE_ATOMIC};
    switch (c) {
    case 0: (void)rudo_kind_register_flags(&d, 0); break;
    case 1: (void)rudo_kind_traced("x", trace_nothing); break;
    case 2: (void)rudo_kind_layout("x", 1, lay1); break;
    case 3: (void)rudo_kind_conservative("x"); break;
    case 4: (void)rudo_kind_atomic("x"); break;
    case 5: (void)rudo_kind_ephemeron("x"); break;
    case 6: (void)rudo_kind_name(0); break;
    case 7: rudo_kind_set_finalizer(1, NULL, NULL); break;
    }
}

static void test_kind_aborts(void) {
    expect_death("kind 1025 (beyond RUDO_MAX_KINDS) aborts", max_kinds_abort, NULL,
                 "rudo: rudo_kind_register: too many kinds (at most 1024)");
    static const char *const flag_msgs[] = {
        "unknown flags 0x4", "unknown flags 0x80000000",
        "RUDO_KIND_BASE_ONLY needs", "RUDO_KIND_BASE_ONLY needs",
        "RUDO_KIND_BASE_ONLY needs", "RUDO_KIND_UNINIT needs",
        "RUDO_KIND_UNINIT needs", "RUDO_KIND_UNINIT needs",
        "RUDO_KIND_UNINIT needs", "RUDO_KIND_UNINIT needs",
        "RUDO_TRACE_CALLBACK without a trace function", "unknown tracing mode 7", "kind name is NULL",
    };
    for (unsigned i = 0; i < sizeof flag_msgs / sizeof flag_msgs[0]; i++) {
        char what[64], needle[128];
        snprintf(what, sizeof what, "rudo_kind_register_flags case %u", i);
        snprintf(needle, sizeof needle, "rudo: rudo_kind_register_flags: %s%s",
                 i < 12 ? "kind 'claims/flags': " : "", flag_msgs[i]);
        expect_death(what, flags_case, (void *)(uintptr_t)i, needle);
    }
    static const char *const sh_msgs[] = {
        "without a trace function", "kind name is NULL", "1 to 1024 words",
        "1 to 1024 words", "1 to 1024 words", "kind name is NULL",
        "kind name is NULL", "kind name is NULL", "kind name is NULL",
        "desc is NULL",
    };
    for (unsigned i = 0; i < sizeof sh_msgs / sizeof sh_msgs[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "kind shorthand misuse case %u", i);
        expect_death(what, shorthand_case, (void *)(uintptr_t)i, sh_msgs[i]);
    }
    for (unsigned i = 0; i < 8; i++) {
        char what[64];
        snprintf(what, sizeof what, "kind call %u without a heap", i);
        expect_death(what, no_heap_kind, (void *)(uintptr_t)i, "no heap");
    }
    /* Accepted: BASE_ONLY for layout and callback kinds, UNINIT for
     * atomic ones, flags 0 for every mode. */
    test_heap_create(NULL);
    rudo_kind_desc d = {.name = "claims/ok", .trace = trace_nothing,
                        .layout = lay1, .layout_words = 1};
    d.tracing = RUDO_TRACE_LAYOUT;
    CHECK(rudo_kind_register_flags(&d, RUDO_KIND_BASE_ONLY) == 2);
    d.tracing = RUDO_TRACE_CALLBACK;
    CHECK(rudo_kind_register_flags(&d, RUDO_KIND_BASE_ONLY) == 3);
    d.tracing = RUDO_TRACE_ATOMIC;
    CHECK(rudo_kind_register_flags(&d, RUDO_KIND_UNINIT) == 4);
    rudo_kind next = 5;
    for (int t = 0; t <= 4; t++) {
        d.tracing = (rudo_tracing)t;
        CHECK(rudo_kind_register_flags(&d, 0) == next++);
    }
    rudo_heap_destroy();
}

/* ======================================================================== */
/* Flavours x size classes x cell positions x markers                        */
/* ======================================================================== */

enum { F_CONS, F_ATOMIC, F_LAY2, F_LAY3, F_LAY100, F_CALLBACK, F_LAY3_BASE, NFLAV };
static const char *const flav_name[NFLAV] = {"conservative", "atomic", "layout2",
                                             "layout3", "layout100", "callback",
                                             "layout3-base-only"};
/* Junk bits beyond layout_words in every layout: "the rest mean nothing". */
static const uint64_t lay2[1] = {0x1u | ~(uint64_t)3};
static const uint64_t lay3[1] = {0x5u | ~(uint64_t)7};
static const uint64_t lay100[2] = {0x1u, 0x1u | ((uint64_t)1 << 35) | ~(((uint64_t)1 << 36) - 1)};

static bool is_ptr(int f, size_t w) {
    switch (f) {
    case F_CONS: return true;
    case F_ATOMIC: return false;
    case F_LAY2: return w % 2 == 0;
    case F_LAY3:
    case F_LAY3_BASE:
    case F_CALLBACK: return w % 3 != 1;
    case F_LAY100: {
        size_t j = w % 100;
        return j == 0 || j == 64 || j == 99;
    }
    }
    return false;
}

static size_t cb_size;        /* the size the callback's objects have */
static int cb_size_bad, cb_calls;
static void trace_pattern(void *obj, size_t size, rudo_tracer *tr) {
    __atomic_fetch_add(&cb_calls, 1, __ATOMIC_RELAXED);
    if (size != __atomic_load_n(&cb_size, __ATOMIC_RELAXED))
        __atomic_fetch_add(&cb_size_bad, 1, __ATOMIC_RELAXED);
    void **w = obj;
    for (size_t i = 0; i < size / sizeof(void *); i++)
        if (i % 3 != 1)
            rudo_visit(tr, &w[i]);
}

static rudo_kind flav_kind[NFLAV];
static void register_flavours(void) {
    flav_kind[F_CONS] = rudo_kind_conservative("claims/cons");
    flav_kind[F_ATOMIC] = rudo_kind_atomic("claims/atomic");
    flav_kind[F_LAY2] = rudo_kind_layout("claims/lay2", 2, lay2);
    flav_kind[F_LAY3] = rudo_kind_layout("claims/lay3", 3, lay3);
    flav_kind[F_LAY100] = rudo_kind_layout("claims/lay100", 100, lay100);
    flav_kind[F_CALLBACK] = rudo_kind_traced("claims/cb", trace_pattern);
    rudo_kind_desc d = {.name = "claims/lay3-base", .tracing = RUDO_TRACE_LAYOUT,
                        .layout = lay3, .layout_words = 3};
    flav_kind[F_LAY3_BASE] = rudo_kind_register_flags(&d, RUDO_KIND_BASE_ONLY);
}

static void *alloc_plain(rudo_kind k, size_t size, void *data) {
    (void)data;
    void *p = rudo_alloc(k, size);
    if (!p)
        abort();
    return held(p);
}

/* Word indices probed in an object of nw words. */
static size_t probe_words(size_t nw, size_t *out) {
    static const size_t cand[] = {0, 1, 2, 3, 4, 5, 63, 64, 65, 99, 100, 101,
                                  1023, 1024, 1025, 1026, 2047, 2048, 2049};
    size_t n = 0;
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++)
        if (cand[i] < nw)
            out[n++] = cand[i];
    if (nw > 1 && out[n - 1] != nw - 1) {
        out[n++] = nw - 2;
        out[n++] = nw - 1;
    }
    return n;
}

static int matrix_bad;
/* Fills parent (nw words) with a fresh child at each probed word;
 * records (weak index, expected survival). */
struct probe {
    size_t weak;
    bool want;
    size_t word;
};
static size_t fill_parent(int f, void **parent, size_t nw, struct probe *pr) {
    size_t words[32];
    size_t n = probe_words(nw, words);
    for (size_t i = 0; i < n; i++) {
        void *c = held(rudo_alloc(RUDO_KIND_ATOMIC, 16));
        parent[words[i]] = c;
        pr[i].weak = watch(c);
        pr[i].want = is_ptr(f, words[i]);
        pr[i].word = words[i];
    }
    return n;
}

static const size_t msizes[] = {16, 48, 1024, 3072, 12288, 100000};

static void matrix_for_markers(unsigned markers) {
    precise_heap(markers);
    weak = calloc(NWEAK, sizeof *weak);
    register_flavours();
    static void *run[4096];
    for (int f = 0; f < NFLAV; f++) {
        for (size_t si = 0; si < sizeof msizes / sizeof msizes[0]; si++) {
            size_t size = msizes[si];
            bool large = size > RUDO_SMALL_MAX;
            __atomic_store_n(&cb_size, large ? 0 : size, __ATOMIC_RELAXED);
            void *parents[3];
            size_t nparents, positions[3];
            if (large) {
                parents[0] = alloc_plain(flav_kind[f], size, NULL);
                __atomic_store_n(&cb_size, rudo_size(parents[0]), __ATOMIC_RELAXED);
                nparents = 1;
                positions[0] = 0;
            } else {
                size_t ncells = RUDO_PAGE_SIZE / size;
                if (!test_page_run(flav_kind[f], size, ncells, 4 * ncells + 64, run,
                                   alloc_plain, NULL)) {
                    fprintf(stderr, "no page run for %s %zu\n", flav_name[f], size);
                    matrix_bad++;
                    continue;
                }
                /* run[] is held through alloc_plain's hold entries. */
                positions[0] = 0;
                positions[1] = 1;
                positions[2] = ncells - 1;
                nparents = 3;
                for (int i = 0; i < 3; i++)
                    parents[i] = run[positions[i]];
            }
            size_t nw = (large ? rudo_size(parents[0]) : size) / sizeof(void *);
            struct probe pr[3][32];
            size_t np[3];
            for (size_t i = 0; i < nparents; i++)
                np[i] = fill_parent(f, parents[i], nw, pr[i]);
            /* Only the parents stay rooted. */
            drop_held();
            for (size_t i = 0; i < nparents; i++)
                held(parents[i]);
            __atomic_store_n(&cb_size_bad, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&cb_calls, 0, __ATOMIC_RELAXED);
            rudo_collect();
            for (size_t i = 0; i < nparents; i++)
                for (size_t j = 0; j < np[i]; j++)
                    if (alive(pr[i][j].weak) != pr[i][j].want) {
                        if (matrix_bad++ < 20)
                            fprintf(stderr,
                                    "  markers %u %s size %zu cell %zu word %zu: "
                                    "child %s, wanted %s\n",
                                    markers, flav_name[f], size, positions[i],
                                    pr[i][j].word, alive(pr[i][j].weak) ? "alive" : "dead",
                                    pr[i][j].want ? "alive" : "dead");
                    }
            if (f == F_CALLBACK) {
                CHECK(cb_calls >= (int)nparents);
                CHECK_EQ(cb_size_bad, 0); /* size is the usable size */
            }
            drop_held();
            unwatch_all();
        }
    }
    free(weak);
    weak = NULL;
    end_heap();
}

static void test_matrix(void) {
    static const unsigned mk[] = {1, 2, 4};
    for (size_t i = 0; i < 3; i++) {
        matrix_bad = 0;
        matrix_for_markers(mk[i]);
        char what[96];
        snprintf(what, sizeof what, "flavour x size x cell matrix, %u markers", mk[i]);
        test_check(matrix_bad == 0, what, __FILE__, __LINE__);
    }
}

/* rudo.h, rudo_kind_ephemeron: "Words after the two fields are not
 * traced." The key is alive (rooted), so the value is traced. */
static void test_ephemeron_tail(void) {
    static const unsigned mk[] = {1, 2, 4};
    for (size_t m = 0; m < 3; m++) {
        precise_heap(mk[m]);
        weak = calloc(NWEAK, sizeof *weak);
        rudo_kind ke = rudo_kind_ephemeron("claims/eph");
        void **e = held(rudo_alloc(ke, 64));
        void *key = held(rudo_alloc(RUDO_KIND_ATOMIC, 16));
        e[0] = key;
        e[1] = held(rudo_alloc(RUDO_KIND_ATOMIC, 16));
        e[2] = held(rudo_alloc(RUDO_KIND_ATOMIC, 16));
        e[7] = held(rudo_alloc(RUDO_KIND_ATOMIC, 16));
        size_t wv = watch(e[1]), w2 = watch(e[2]), w7 = watch(e[7]);
        drop_held();
        held(e);
        held(key);
        rudo_collect();
        CHECK(alive(wv) && !alive(w2) && !alive(w7));
        free(weak);
        weak = NULL;
        nweak = 0;
        end_heap();
    }
}

/* ======================================================================== */
/* Tracing                                                                  */
/* ======================================================================== */

/* One callback kind whose objects say what to report: word 0 the mode,
 * the rest data. */
enum { T_SLOTS, T_JUNK, T_WEAK, T_RANGE, T_MARKED, T_MARKONLY };
static int t_bad;
static void trace_modes(void *obj, size_t size, rudo_tracer *tr) {
    uintptr_t *w = obj;
    size_t nw = size / sizeof(void *);
    switch (w[0]) {
    case T_SLOTS: /* every word after the mode is a slot */
        for (size_t i = 1; i < nw; i++)
            rudo_visit(tr, (void **)&w[i]);
        break;
    case T_JUNK: { /* NULL, tagged integers, non-heap addresses */
        static void *junk[6];
        junk[0] = NULL;
        junk[1] = (void *)(uintptr_t)0x3; /* a tagged fixnum */
        junk[2] = (void *)(uintptr_t)0xdeadbeefcafe1ull;
        junk[3] = &t_bad;
        junk[4] = (void *)(uintptr_t)-16;
        junk[5] = (void *)(uintptr_t)4096;
        for (int i = 0; i < 6; i++)
            rudo_visit(tr, &junk[i]);
        for (size_t i = 1; i < nw; i++)
            rudo_visit(tr, (void **)&w[i]);
        break;
    }
    case T_WEAK: /* words 1.. are weak slots */
        for (size_t i = 1; i < nw; i++)
            rudo_visit_weak(tr, (void **)&w[i]);
        break;
    case T_RANGE: /* word 1: byte offset lo, word 2: byte offset hi of a
                   * range inside the object */
        rudo_visit_range(tr, (char *)obj + w[1], (char *)obj + w[2]);
        break;
    case T_MARKONLY: /* word 1: marked without tracing */
        rudo_visit_mark_only(tr, (void *)w[1]);
        if (!rudo_visit_is_marked(tr, (void *)w[1]))
            __atomic_fetch_add(&t_bad, 1, __ATOMIC_RELAXED);
        break;
    case T_MARKED:
        if (rudo_visit_is_marked(tr, NULL) || rudo_visit_is_marked(tr, &t_bad) ||
            rudo_visit_is_marked(tr, (void *)(uintptr_t)0x10))
            __atomic_fetch_add(&t_bad, 1, __ATOMIC_RELAXED);
        if (!rudo_visit_is_marked(tr, obj)) /* being traced: marked */
            __atomic_fetch_add(&t_bad, 1, __ATOMIC_RELAXED);
        break;
    }
}

static void test_tracing(unsigned markers, bool interior) {
    rudo_config cfg = test_precise_config(markers);
    cfg.initial_heap = 256u << 20;
    cfg.interior_pointers = interior;
    test_heap_create(&cfg);
    rudo_root_add_range(hold, hold + NHOLD);
    weak = calloc(NWEAK, sizeof *weak);
    rudo_kind kt = rudo_kind_traced("claims/modes", trace_modes);
    t_bad = 0;

    /* rudo_visit: a slot holding an interior address keeps its object
     * (precise slots are not affected by interior_pointers). */
    uintptr_t *o = held(rudo_alloc(kt, 64));
    o[0] = T_SLOTS;
    char *c1 = held(rudo_alloc(RUDO_KIND_ATOMIC, 64));
    char *c2 = held(rudo_alloc(RUDO_KIND_ATOMIC, 64));
    char *c3 = held(rudo_alloc(RUDO_KIND_ATOMIC, 5000));
    o[1] = (uintptr_t)(c1 + 40);
    o[2] = (uintptr_t)c2;
    o[3] = (uintptr_t)(c3 + 4999); /* last byte */
    o[4] = (uintptr_t)(c2 + 64);   /* one past: not c2 (maybe the next cell) */
    size_t w1 = watch(c1), w2 = watch(c2), w3 = watch(c3);
    /* Junk values, NULL, tagged integers: harmless. */
    uintptr_t *j = held(rudo_alloc(kt, 48));
    j[0] = T_JUNK;
    char *c4 = held(rudo_alloc(RUDO_KIND_ATOMIC, 16));
    j[1] = (uintptr_t)c4;
    j[2] = 0x7;
    j[3] = (uintptr_t)-1;
    size_t w4 = watch(c4);
    /* Thousands of slots from one call: the buffer flushes. */
    size_t nslots = 3000;
    uintptr_t *big = held(rudo_alloc(kt, (nslots + 1) * sizeof(void *)));
    big[0] = T_SLOTS;
    size_t wbig0 = nweak;
    for (size_t i = 1; i <= nslots; i++) {
        void *c = held(rudo_alloc(RUDO_KIND_ATOMIC, 16));
        big[i] = (uintptr_t)c;
        watch(c);
    }
    /* rudo_visit_weak: cleared when the target dies; kept when it lives;
     * NULL and non-heap values left alone. */
    uintptr_t *wk = held(rudo_alloc(kt, 64));
    wk[0] = T_WEAK;
    char *dies = held(rudo_alloc(RUDO_KIND_ATOMIC, 16));
    char *lives = held(rudo_alloc(RUDO_KIND_ATOMIC, 16));
    wk[1] = (uintptr_t)dies;
    wk[2] = (uintptr_t)lives;
    wk[3] = 0;
    wk[4] = (uintptr_t)&t_bad;
    wk[5] = 0x1235;
    size_t wdies = watch(dies);
    /* rudo_visit_range: words in [lo, hi), partial words at both ends
     * ignored. Object words: 0 mode, 1 lo, 2 hi, 3..7 candidates. */
    uintptr_t *rg = held(rudo_alloc(kt, 64));
    rg[0] = T_RANGE;
    rg[1] = 3 * 8 + 1; /* starts inside word 3: word 3 ignored */
    rg[2] = 7 * 8 + 7; /* ends inside word 7: word 7 ignored */
    char *r3 = held(rudo_alloc(RUDO_KIND_ATOMIC, 16));
    char *r4 = held(rudo_alloc(RUDO_KIND_ATOMIC, 16));
    char *r6 = held(rudo_alloc(RUDO_KIND_ATOMIC, 16));
    char *r7 = held(rudo_alloc(RUDO_KIND_ATOMIC, 16));
    rg[3] = (uintptr_t)r3;
    rg[4] = (uintptr_t)r4;
    rg[5] = 0x5; /* junk */
    rg[6] = (uintptr_t)(r6 + 8); /* interior: the heap's rule */
    rg[7] = (uintptr_t)r7;
    size_t wr3 = watch(r3), wr4 = watch(r4), wr6 = watch(r6), wr7 = watch(r7);
    /* lo >= hi reports nothing. */
    uintptr_t *rg2 = held(rudo_alloc(kt, 48));
    rg2[0] = T_RANGE;
    rg2[1] = 40;
    rg2[2] = 24;
    char *r5 = held(rudo_alloc(RUDO_KIND_ATOMIC, 16));
    rg2[3] = (uintptr_t)r5;
    rg2[4] = (uintptr_t)r5;
    size_t wr5 = watch(r5);
    uintptr_t *rg3 = held(rudo_alloc(kt, 48));
    rg3[0] = T_RANGE;
    rg3[1] = 24;
    rg3[2] = 24;
    char *r8 = held(rudo_alloc(RUDO_KIND_ATOMIC, 16));
    rg3[3] = (uintptr_t)r8;
    size_t wr8 = watch(r8);
    /* rudo_visit_is_marked. */
    uintptr_t *mk = held(rudo_alloc(kt, 16));
    mk[0] = T_MARKED;

    /* rudo_visit_mark_only from a trace callback: the object survives,
     * what it refers to does not (on its account). The verifier reports
     * such an object ("holds an allocated but unmarked object"): not in
     * debug builds. */
    uintptr_t *mo = held(rudo_alloc(kt, 16));
    mo[0] = T_MARKONLY;
#ifndef RUDO_TEST_DEBUG_BUILD
    void **moc = held(rudo_alloc(RUDO_KIND_CONSERVATIVE, 32));
    moc[0] = held(rudo_alloc(RUDO_KIND_ATOMIC, 16));
    mo[1] = (uintptr_t)moc;
    size_t wmoc = watch(moc), wmog = watch(moc[0]);
#else
    mo[1] = (uintptr_t)held(rudo_alloc(RUDO_KIND_ATOMIC, 16));
    size_t wmoc = watch((void *)mo[1]);
#endif

    void *keep[] = {o, j, big, wk, lives, rg, rg2, rg3, mk, mo};
    drop_held();
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        held(keep[i]);
    rudo_collect();

    CHECK(alive(w1));  /* interior slot value */
    CHECK(alive(w2));
    CHECK(alive(w3));  /* last byte of a large-ish object */
    CHECK(alive(w4));  /* junk ignored, real slot kept */
    size_t big_alive = 0;
    for (size_t i = 0; i < nslots; i++)
        big_alive += alive(wbig0 + i);
    CHECK_EQ(big_alive, nslots);
    CHECK(!alive(wdies) && wk[1] == 0);
    CHECK(wk[2] == (uintptr_t)lives);
    CHECK(wk[3] == 0 && wk[4] == (uintptr_t)&t_bad && wk[5] == 0x1235);
    CHECK(!alive(wr3)); /* partial word at the start */
    CHECK(alive(wr4));
    CHECK(alive(wr6) == interior);
    CHECK(!alive(wr7)); /* partial word at the end */
    CHECK(!alive(wr5)); /* lo > hi */
    CHECK(!alive(wr8)); /* lo == hi */
    CHECK_EQ(t_bad, 0);
    CHECK(alive(wmoc));
#ifndef RUDO_TEST_DEBUG_BUILD
    CHECK(!alive(wmog));
#endif

    unwatch_all();
    free(weak);
    weak = NULL;
    end_heap();
}

/* rudo_visit_value "Values that do not point into an allocated heap object
 * (... addresses of free cells) are ignored": a cell of the current page
 * never handed out, and a large object given back by rudo_free (its pages
 * return at once), keep nothing alive, are not marked, and do not fault.
 * (A small object freed on a page its thread allocates from is not free:
 * rudo.h says it is reclaimed by the next collection, and until then it
 * counts as allocated; not checked here.) */
static void *free_cell, *freed_large;
static void root_free_cell(rudo_tracer *tr, void *data) {
    (void)data;
    rudo_visit_value(tr, free_cell);
    rudo_visit_value(tr, (char *)free_cell + 8);
    if (rudo_visit_is_marked(tr, free_cell))
        t_bad++;
#ifndef RUDO_TEST_DEBUG_BUILD /* verification keeps freed objects a cycle */
    rudo_visit_value(tr, freed_large);
    rudo_visit_value(tr, (char *)freed_large + 70000);
    if (rudo_visit_is_marked(tr, freed_large))
        t_bad += 100;
#endif
}
static void test_free_cell_value(void) {
    precise_heap(1);
    weak = calloc(NWEAK, sizeof *weak);
    t_bad = 0;
    char *b = held(rudo_alloc(RUDO_KIND_ATOMIC, 32));
    free_cell = b + 32 * 64; /* 64 cells on: not handed out yet */
    freed_large = rudo_alloc(RUDO_KIND_CONSERVATIVE, 200000);
    rudo_free(freed_large);
    rudo_root_callback_add(root_free_cell, NULL);
    size_t wb = watch(b);
    rudo_collect();
    CHECK(alive(wb));
    CHECK_EQ(t_bad, 0);
    rudo_root_callback_remove(root_free_cell, NULL);
    unwatch_all();
    free(weak);
    weak = NULL;
    end_heap();
}

int main(void) {
    hold = calloc(NHOLD, sizeof *hold);
    test_no_heap();
    test_create();
    test_env_overrides();
    test_enomem();
    test_destroy_unattached();
    test_static_data();
    test_env_switches();
    test_huge_markers();
    test_create_race();
    test_destroy_aborts();
    test_recreate();
    test_kind_basics();
    test_max_kinds();
    test_kind_aborts();
    test_matrix();
    test_ephemeron_tail();
    static const unsigned mk[] = {1, 2, 4};
    for (size_t i = 0; i < 3; i++) {
        test_tracing(mk[i], true);
        test_tracing(mk[i], false);
    }
    test_free_cell_value();
    free(hold);
    return test_report();
}
