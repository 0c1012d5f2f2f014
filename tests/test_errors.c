/* test_errors.c — misuse is reported, never silently accepted: each bad
 * call aborts with "rudo: <function>: ..." (checked in a forked child with
 * expect_death, the needle being the public function's name), and the
 * recoverable errors return their documented codes. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rudo.h"
#include "testlib.h"

/* Expects fn(arg) to abort with the documented message format
 * "rudo: <function>: <reason>" naming `function`. */
static void expect_abort(const char *what, void (*fn)(void *), void *arg,
                         const char *function) {
    char needle[96];
    snprintf(needle, sizeof needle, "rudo: %s: ", function);
    expect_death(what, fn, arg, needle);
}

/* One misuse: fn(arg) must abort naming `function` (see expect_abort). */
typedef struct abort_case {
    const char *what;
    void (*fn)(void *);
    void *arg;
    const char *function;
} abort_case;

/* expect_abort for each of n cases, in order. */
static void expect_aborts(const abort_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++)
        expect_abort(cases[i].what, cases[i].fn, cases[i].arg, cases[i].function);
}

static void *volatile sink;
static rudo_kind k_traced, k_layout;

static void trace_nothing(void *obj, size_t size, rudo_tracer *tr) {
    (void)obj;
    (void)size;
    (void)tr;
}

/* Runs fn with stderr redirected to a temporary file and returns what it
 * printed (static buffer). */
static const char *capture_stderr(void (*fn)(void *), void *arg) {
    static char buf[4096];
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    buf[n] = '\0';
    fclose(tmp);
    return buf;
}

/* Registers a kind described by name, tracing mode and layout_words, every
 * other field zero (the misuse cases below get one of them wrong). */
static void register_desc(const char *name, rudo_tracing tracing, size_t layout_words) {
    rudo_kind_desc d = {0};
    d.name = name;
    d.tracing = tracing;
    d.layout_words = layout_words;
    (void)rudo_kind_register(&d);
}

/* ---- calls before any heap exists ---- */
static void no_heap_alloc(void *a) {
    (void)a;
    sink = rudo_alloc(RUDO_KIND_CONSERVATIVE, 16);
}
static void no_heap_collect(void *a) {
    (void)a;
    rudo_collect();
}
static void no_heap_register(void *a) {
    (void)a;
    register_desc("x", RUDO_TRACE_ATOMIC, 0);
}
static void no_heap_stats(void *a) {
    (void)a;
    rudo_stats st;
    rudo_get_stats(&st);
}

/* ---- allocation ---- */
static void alloc_unknown_kind(void *a) {
    (void)a;
    sink = rudo_alloc(999, 16);
}
static void alloc_kind_out_of_range(void *a) {
    (void)a;
    sink = rudo_alloc(RUDO_MAX_KINDS + 5, 16);
}
static void alloc_zero(void *a) {
    (void)a;
    sink = rudo_alloc(RUDO_KIND_ATOMIC, 0);
}
static void alloc_array_overflow(void *a) {
    (void)a;
    sink = rudo_alloc_array(RUDO_KIND_ATOMIC, SIZE_MAX / 2, 4);
}

/* ---- queries on addresses that are not object bases ---- */
static void size_of_null(void *a) {
    (void)a;
    (void)rudo_size(NULL);
}
static void kind_of_null(void *a) {
    (void)a;
    (void)rudo_kind_of(NULL);
}
static void size_of_stack(void *a) {
    (void)a;
    int local = 0;
    sink = &local;
    (void)rudo_size(&local);
}
static void size_of_malloc(void *a) {
    (void)a;
    (void)rudo_size(calloc(1, 32));
}
static void size_of_interior(void *a) {
    (void)a;
    char *p = rudo_malloc(64);
    sink = p;
    (void)rudo_size(p + 16);
}
static void kind_of_stack(void *a) {
    (void)a;
    int local = 0;
    sink = &local;
    (void)rudo_kind_of(&local);
}
static void kind_of_malloc(void *a) {
    (void)a;
    (void)rudo_kind_of(calloc(1, 32));
}

/* ---- kind registration ---- */
static void register_null(void *a) {
    (void)a;
    (void)rudo_kind_register(NULL);
}
static void register_null_name(void *a) {
    (void)a;
    register_desc(NULL, RUDO_TRACE_ATOMIC, 0);
}
static void register_bad_mode(void *a) {
    (void)a;
    register_desc("bad-mode", (rudo_tracing)42, 0);
}
static void register_callback_without_fn(void *a) {
    (void)a;
    register_desc("no-trace", RUDO_TRACE_CALLBACK, 0);
}
static void register_layout_without_bitmap(void *a) {
    (void)a;
    register_desc("no-layout", RUDO_TRACE_LAYOUT, 4);
}
static void register_layout_bad_words(void *a) {
    static const uint64_t bits[32] = {1};
    rudo_kind_desc d = {0};
    d.name = "bad-words";
    d.tracing = RUDO_TRACE_LAYOUT;
    d.layout = bits;
    d.layout_words = (size_t)(uintptr_t)a; /* 0 or 1025 */
    (void)rudo_kind_register(&d);
}
static void register_too_many(void *a) {
    (void)a;
    for (unsigned i = 0; i <= RUDO_MAX_KINDS; i++)
        (void)rudo_kind_atomic("many");
}
static void name_of_unknown_kind(void *a) {
    (void)a;
    (void)rudo_kind_name(777);
}
static void set_finalizer_unknown_kind(void *a) {
    (void)a;
    rudo_kind_set_finalizer(777, NULL, NULL);
}

/* ---- realloc ---- */
static void realloc_interior(void *a) {
    (void)a;
    char *p = rudo_malloc(64);
    sink = rudo_realloc(p + 16, 128);
}
static void realloc_zero(void *a) {
    (void)a;
    sink = rudo_realloc(rudo_malloc(64), 0);
}

/* ---- roots and scopes ---- */
/* NULL where a call writes its answer. */
static void stats_null(void *a) {
    (void)a;
    rudo_get_stats(NULL);
}
static void marker_stats_null(void *a) {
    (void)a;
    (void)rudo_get_marker_stats(NULL, 4);
}
static void config_init_null(void *a) {
    (void)a;
    rudo_config_init(NULL);
}
static void thread_stats_null(void *a) {
    (void)a;
    rudo_get_thread_stats(NULL);
}

/* A destroyed guardian, used again: a message, not a use after free. */
static void guardian_destroy_twice(void *a) {
    (void)a;
    rudo_guardian *g = rudo_guardian_new();
    rudo_guardian_destroy(g);
    rudo_guardian_destroy(g);
}
static void guardian_poll_destroyed(void *a) {
    (void)a;
    rudo_guardian *keep = rudo_guardian_new(); /* the list is not empty */
    rudo_guardian *g = rudo_guardian_new();
    rudo_guardian_destroy(g);
    (void)rudo_guardian_poll(g);
    rudo_guardian_destroy(keep);
}
static void guardian_register_destroyed(void *a) {
    (void)a;
    rudo_guardian *g = rudo_guardian_new();
    rudo_guardian_destroy(g);
    (void)rudo_guardian_register(g, rudo_malloc(32));
}
static void guardian_not_made(void *a) {
    (void)a;
    static char fake[64];
    (void)rudo_guardian_poll((rudo_guardian *)fake);
}

/* A declared stack whose top is past the user address space (a helper's
 * finding: the scan faulted, or split the range into tasks for ever). The
 * bounds hold the stack pointer, so the call itself cannot tell. */
static void stack_set_bogus_hi(void *a) {
    void *lo, *hi;
    rudo_stack_get(&lo, &hi);
    uintptr_t top = a ? (uintptr_t)a : UINTPTR_MAX & ~(uintptr_t)4095;
    CHECK_EQ(rudo_stack_set(lo, (void *)top), RUDO_OK);
    rudo_collect();
}

static void scope_enter_null(void *a) {
    (void)a;
    rudo_scope_enter(NULL);
}
static void scope_exit_null(void *a) {
    (void)a;
    rudo_scope s;
    rudo_scope_enter(&s);
    rudo_scope_exit(NULL);
}
/* A range the collection could not read: it faulted in the next one. */
static void range_unmapped(void *a) {
    rudo_root_add_range(a, (void *)((uintptr_t)a + 4096)); /* a may be NULL */
    rudo_collect();
}

static void *slot;
static void root_add_twice(void *a) {
    (void)a;
    rudo_root_add(&slot);
    rudo_root_add(&slot);
}
static void range_backwards(void *a) {
    (void)a;
    static char buf[64];
    rudo_root_add_range(buf + 32, buf);
}
static void handle_outside_scope(void *a) {
    (void)a;
    sink = rudo_handle(rudo_malloc(8));
}
static void scopes_out_of_order(void *a) {
    (void)a;
    rudo_scope s1, s2;
    rudo_scope_enter(&s1);
    rudo_scope_enter(&s2);
    rudo_scope_exit(&s1);
}
static void nested_blocking(void *a) {
    (void)a;
    rudo_blocking_enter();
    rudo_blocking_enter();
}

/* ---- threads ---- */
static void *unattached_alloc(void *a) {
    (void)a;
    sink = rudo_alloc(RUDO_KIND_CONSERVATIVE, 16);
    return NULL;
}
static void *unattached_collect(void *a) {
    (void)a;
    rudo_collect();
    return NULL;
}
static void *unattached_detach(void *a) {
    (void)a;
    rudo_thread_detach();
    return NULL;
}
/* In the child process: a thread that never attached runs one of these. */
static void *(*const unattached_calls[])(void *) = {unattached_alloc, unattached_collect,
                                                    unattached_detach};
static void from_unattached_thread(void *which) {
    pthread_t t;
    pthread_create(&t, NULL, unattached_calls[(uintptr_t)which], NULL);
    pthread_join(t, NULL);
}

static pthread_mutex_t att_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t att_cv = PTHREAD_COND_INITIALIZER;
static bool att_ready;
static void *attach_and_wait(void *a) {
    (void)a;
    rudo_thread_attach();
    pthread_mutex_lock(&att_mu);
    att_ready = true;
    pthread_cond_signal(&att_cv);
    pthread_mutex_unlock(&att_mu);
    for (;;)
        pause();
    return NULL;
}
/* rudo_heap_destroy while another thread is attached. */
static void destroy_with_attached_thread(void *a) {
    (void)a;
    pthread_t t;
    pthread_create(&t, NULL, attach_and_wait, NULL);
    pthread_mutex_lock(&att_mu);
    while (!att_ready)
        pthread_cond_wait(&att_cv, &att_mu);
    pthread_mutex_unlock(&att_mu);
    rudo_heap_destroy();
}

/* ---- recoverable errors ---- */
static void *never_added;
static int remove_result;
static void remove_never_added(void *a) {
    (void)a;
    remove_result = rudo_root_remove(&never_added);
}
static void remove_range_never_added(void *a) {
    (void)a;
    remove_result = rudo_root_remove_range(&never_added);
}

static int create_rc;
static void do_create(void *cfg) { create_rc = rudo_heap_create(cfg); }

/* rudo_heap_create with an invalid environment variable or config value:
 * RUDO_EINVAL, a message naming the culprit, no heap left behind. */
static void expect_einval(const char *what, const rudo_config *cfg, const char *needle) {
    create_rc = -1;
    const char *msg = capture_stderr(do_create, (void *)cfg);
    bool ok = create_rc == RUDO_EINVAL && strstr(msg, needle) != NULL &&
              !rudo_heap_exists() && !rudo_thread_is_attached();
    if (!ok)
        fprintf(stderr, "  %s: rc %d, heap %d, message: %s\n", what, create_rc,
                (int)rudo_heap_exists(), msg);
    test_check(ok, what, __FILE__, __LINE__);
    if (rudo_heap_exists())
        rudo_heap_destroy();
}

static void test_config_errors(void) {
    rudo_heap_destroy();
    CHECK(!rudo_heap_exists());
    static const struct {
        const char *var, *val;
    } bad_env[] = {{"RUDO_HEAP_MAX", "banana"},
                   {"RUDO_HEAP_MAX", "12Q"},
                   {"RUDO_HEAP_INITIAL", "lots"},
                   {"RUDO_GROWTH", "fast"},
                   {"RUDO_MARKERS", "many"},
                   /* negative values are not 2^64 - 1 */
                   {"RUDO_HEAP_MAX", "-1"},
                   {"RUDO_HEAP_INITIAL", "-1"},
                   {"RUDO_GROWTH_LIMIT", "-64M"},
                   {"RUDO_HEAP_MAX", " 16M"},
                   {"RUDO_MARKERS", "-1"},
                   {"RUDO_MARK_BATCH", "-3"},
                   {"RUDO_GC_STRESS", "-1"},
                   {"RUDO_GC_STRESS", "often"},
                   /* a growth whose trigger overflows */
                   {"RUDO_GROWTH", "1e300"},
                   {"RUDO_GROWTH", "inf"},
                   {"RUDO_GROWTH", "nan"},
                   {"RUDO_GROWTH", "1000.5"},
                   /* only plain decimal numbers: no blanks, '+', hex */
                   {"RUDO_GROWTH", "0x10"},
                   {"RUDO_GROWTH", "+2"},
                   {"RUDO_GROWTH", " 2"},
                   {"RUDO_GROWTH", ".e1"},
                   {"RUDO_MARKERS", "+2"},
                   {"RUDO_MARKERS", " 2"},
                   {"RUDO_MARKERS", "0x2"},
                   {"RUDO_MARKERS", "2 "},
                   {"RUDO_HEAP_MAX", "16M "}};
    for (size_t i = 0; i < sizeof bad_env / sizeof bad_env[0]; i++) {
        char what[96];
        snprintf(what, sizeof what, "rudo_heap_create: %s=%s", bad_env[i].var,
                 bad_env[i].val);
        setenv(bad_env[i].var, bad_env[i].val, 1);
        expect_einval(what, NULL, bad_env[i].var);
        unsetenv(bad_env[i].var);
    }
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.growth = 0.0;
    expect_einval("rudo_heap_create: growth 0", &cfg, "growth");
    cfg.growth = -1.0;
    expect_einval("rudo_heap_create: growth -1", &cfg, "growth");
    cfg.growth = 1e300;
    expect_einval("rudo_heap_create: growth 1e300", &cfg, "growth");
    cfg.growth = 1000.0; /* the documented maximum is accepted */
    CHECK(rudo_heap_create(&cfg) == RUDO_OK);
    rudo_heap_destroy();

    /* Plain decimal forms are accepted. */
    static const char *good_growth[] = {"2", "1.5", "0.5", "2e0", "25E-1", ".5"};
    for (size_t i = 0; i < sizeof good_growth / sizeof *good_growth; i++) {
        setenv("RUDO_GROWTH", good_growth[i], 1);
        int rc = rudo_heap_create(NULL);
        if (rc != RUDO_OK)
            fprintf(stderr, "  RUDO_GROWTH=%s refused\n", good_growth[i]);
        CHECK(rc == RUDO_OK);
        rudo_heap_destroy();
    }
    unsetenv("RUDO_GROWTH");

    /* A valid value with a suffix is accepted. */
    setenv("RUDO_HEAP_MAX", "16M", 1);
    CHECK(rudo_heap_create(NULL) == RUDO_OK);
    unsetenv("RUDO_HEAP_MAX");
    CHECK(rudo_malloc(100) != NULL);
    rudo_heap_destroy();
}

int main(void) {
    /* Before any heap exists. */
    CHECK(!rudo_heap_exists());
    CHECK(rudo_thread_attach() == RUDO_ESTATE);
    const abort_case no_heap[] = {
        {"rudo_alloc without a heap", no_heap_alloc, NULL, "rudo_alloc"},
        {"rudo_collect without a heap", no_heap_collect, NULL, "rudo_collect"},
        {"rudo_kind_register without a heap", no_heap_register, NULL, "rudo_kind_register"},
        {"rudo_get_stats without a heap", no_heap_stats, NULL, "rudo_get_stats"},
    };
    expect_aborts(no_heap, sizeof no_heap / sizeof no_heap[0]);
    for (int e = 0; e <= 6; e++)
        CHECK(rudo_strerror(e) != NULL && rudo_strerror(e)[0] != '\0');
    CHECK(rudo_strerror(-1) != NULL && rudo_strerror(1000) != NULL);

    CHECK(rudo_heap_create(NULL) == RUDO_OK);
    CHECK(rudo_heap_create(NULL) == RUDO_EEXIST); /* twice */
    CHECK(rudo_heap_exists());
    CHECK(rudo_thread_attach() == RUDO_EEXIST); /* creating attached us */
    k_traced = rudo_kind_traced("traced", trace_nothing);
    static const uint64_t bits[1] = {1};
    k_layout = rudo_kind_layout("layout", 1, bits);
    CHECK(rudo_malloc(16) != NULL); /* the failed second create broke nothing */

    const abort_case misuse[] = {
        /* allocation */
        {"rudo_alloc: unknown kind 999", alloc_unknown_kind, NULL, "rudo_alloc"},
        {"rudo_alloc: kind >= RUDO_MAX_KINDS", alloc_kind_out_of_range, NULL, "rudo_alloc"},
        {"rudo_alloc: size 0", alloc_zero, NULL, "rudo_alloc"},
        {"rudo_alloc_array: n * size overflows", alloc_array_overflow, NULL,
         "rudo_alloc_array"},
        /* queries on addresses that are not object bases */
        {"rudo_size: NULL", size_of_null, NULL, "rudo_size"},
        {"rudo_kind_of: NULL", kind_of_null, NULL, "rudo_kind_of"},
        {"rudo_size: stack address", size_of_stack, NULL, "rudo_size"},
        {"rudo_size: malloc'd address", size_of_malloc, NULL, "rudo_size"},
        {"rudo_size: interior address", size_of_interior, NULL, "rudo_size"},
        {"rudo_kind_of: stack address", kind_of_stack, NULL, "rudo_kind_of"},
        {"rudo_kind_of: malloc'd address", kind_of_malloc, NULL, "rudo_kind_of"},
        /* kind registration */
        {"rudo_kind_register: NULL desc", register_null, NULL, "rudo_kind_register"},
        {"rudo_kind_register: NULL name", register_null_name, NULL, "rudo_kind_register"},
        {"rudo_kind_register: unknown tracing mode", register_bad_mode, NULL,
         "rudo_kind_register"},
        {"rudo_kind_register: callback kind without trace fn", register_callback_without_fn,
         NULL, "rudo_kind_register"},
        {"rudo_kind_register: layout kind without layout", register_layout_without_bitmap,
         NULL, "rudo_kind_register"},
        {"rudo_kind_register: layout_words 0", register_layout_bad_words,
         (void *)(uintptr_t)0, "rudo_kind_register"},
        {"rudo_kind_register: layout_words 1025", register_layout_bad_words,
         (void *)(uintptr_t)1025, "rudo_kind_register"},
        {"rudo_kind_register: more than RUDO_MAX_KINDS", register_too_many, NULL,
         "rudo_kind_register"},
        {"rudo_kind_name: unknown kind", name_of_unknown_kind, NULL, "rudo_kind_name"},
        {"rudo_kind_set_finalizer: unknown kind", set_finalizer_unknown_kind, NULL,
         "rudo_kind_set_finalizer"},
        /* NULL output pointers */
        {"rudo_get_stats: NULL", stats_null, NULL, "rudo_get_stats"},
        {"rudo_get_marker_stats: NULL, max 4", marker_stats_null, NULL,
         "rudo_get_marker_stats"},
        {"rudo_config_init: NULL", config_init_null, NULL, "rudo_config_init"},
        {"rudo_get_thread_stats: NULL", thread_stats_null, NULL, "rudo_get_thread_stats"},
        /* guardians */
        {"rudo_guardian_destroy: twice", guardian_destroy_twice, NULL,
         "rudo_guardian_destroy"},
        {"rudo_guardian_poll: destroyed", guardian_poll_destroyed, NULL, "rudo_guardian_poll"},
        {"rudo_guardian_register: destroyed", guardian_register_destroyed, NULL,
         "rudo_guardian_register"},
        {"rudo_guardian_poll: not a guardian", guardian_not_made, NULL, "rudo_guardian_poll"},
        /* stacks */
        {"rudo_stack_set: hi = 2^64 - 4096", stack_set_bogus_hi, NULL, "rudo_stack_set"},
        {"rudo_stack_set: hi = 2^47 + 2^40", stack_set_bogus_hi,
         (void *)(((uintptr_t)1 << 47) + ((uintptr_t)1 << 40)), "rudo_stack_set"},
        /* realloc */
        {"rudo_realloc: interior pointer", realloc_interior, NULL, "rudo_realloc"},
        {"rudo_realloc: size 0", realloc_zero, NULL, "rudo_realloc"},
        /* roots and scopes */
        {"rudo_root_add: same slot twice", root_add_twice, NULL, "rudo_root_add"},
        {"rudo_root_add_range: start > end", range_backwards, NULL, "rudo_root_add_range"},
        {"rudo_scope_enter: NULL", scope_enter_null, NULL, "rudo_scope_enter"},
        {"rudo_scope_exit: NULL", scope_exit_null, NULL, "rudo_scope_exit"},
        {"rudo_root_add_range: [NULL, 4096)", range_unmapped, NULL, "rudo_root_add_range"},
        {"rudo_root_add_range: past the user space", range_unmapped,
         (void *)(((uintptr_t)1 << 47) + 4096), "rudo_root_add_range"},
        {"rudo_handle: outside any scope", handle_outside_scope, NULL, "rudo_handle"},
        {"rudo_scope_exit: out of order", scopes_out_of_order, NULL, "rudo_scope_exit"},
        {"rudo_blocking_enter: nested", nested_blocking, NULL, "rudo_blocking_enter"},
        /* threads */
        {"rudo_alloc: unattached thread", from_unattached_thread, (void *)(uintptr_t)0,
         "rudo_alloc"},
        {"rudo_collect: unattached thread", from_unattached_thread, (void *)(uintptr_t)1,
         "rudo_collect"},
        {"rudo_thread_detach: unattached thread", from_unattached_thread,
         (void *)(uintptr_t)2, "rudo_thread_detach"},
        {"rudo_heap_destroy: another thread attached", destroy_with_attached_thread, NULL,
         "rudo_heap_destroy"},
    };
    expect_aborts(misuse, sizeof misuse / sizeof misuse[0]);
    /* max 0: out may be NULL, a count only (one marker or more once a
     * collection ran). */
    rudo_collect();
    CHECK(rudo_get_marker_stats(NULL, 0) >= 1);

    /* Removing what was never added: ENOENT and a message, no abort. */
    const char *msg = capture_stderr(remove_never_added, NULL);
    CHECK(remove_result == RUDO_ENOENT);
    CHECK(strstr(msg, "rudo_root_remove") != NULL);
    (void)capture_stderr(remove_range_never_added, NULL); /* may warn */
    CHECK(remove_result == RUDO_ENOENT);

    test_config_errors();
    return test_report();
}
