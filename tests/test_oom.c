/* test_oom.c — the heap limit (max_heap, RUDO_HEAP_MAX) and the OOM
 * handler: allocating live data past the limit calls the handler and then
 * returns NULL (no crash, the live data intact, committed memory within the
 * limit); after the data is dropped allocation works again; a large object
 * that does not fit returns NULL after calling the handler, which may itself
 * collect.
 *
 * Precise setup (scan_stacks = false, scan_static_data = false, one root
 * slot holding a linked list) so dropping the data really frees it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

#define MIB ((size_t)1 << 20)
#define NODE_SIZE 1024

struct node {
    struct node *next;
    uint64_t id;
    uint64_t check;
};

static unsigned long oom_calls;
static size_t oom_last_size;
static void *oom_last_data;
static bool oom_collects; /* the handler runs a collection itself */
static int oom_tag;

static enum { OOM_RETURN, OOM_ALLOCATE } oom_mode;

static void on_oom(size_t size, void *data) {
    oom_calls++;
    if (oom_mode == OOM_ALLOCATE) /* forbidden: it fails too, and recursed */
        (void)rudo_alloc(RUDO_KIND_ATOMIC, size);
    oom_last_size = size;
    oom_last_data = data;
    if (oom_collects)
        rudo_collect();
}

static void trace_node(void *obj, size_t size, rudo_tracer *tr) {
    (void)size;
    rudo_visit(tr, (void **)&((struct node *)obj)->next);
}

static void *g_list; /* the only root */
static rudo_kind k_node;

static uint64_t check_of(uint64_t id) { return ~id * 0x100000001b3ull; }

/* Prepends nodes until an allocation fails or `limit` nodes were added.
 * Returns the number added. */
static size_t grow_list(size_t limit) {
    size_t n = 0;
    while (n < limit) {
        struct node *x = rudo_alloc(k_node, NODE_SIZE);
        if (x == NULL)
            break;
        struct node *head = g_list;
        x->next = head;
        x->id = head ? head->id + 1 : 0;
        x->check = check_of(x->id);
        g_list = x;
        n++;
    }
    return n;
}

/* Walks the list: every node intact, ids count down to 0. */
static bool list_intact(size_t expected) {
    size_t n = 0;
    for (struct node *x = g_list; x; x = x->next, n++)
        if (x->id != expected - 1 - n || x->check != check_of(x->id))
            return false;
    return n == expected;
}

static rudo_stats stats(void) {
    rudo_stats st;
    rudo_get_stats(&st);
    return st;
}

static void create_heap(size_t max_heap) {
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.max_heap = max_heap;
    cfg.on_oom = on_oom;
    cfg.oom_data = &oom_tag;
    cfg.scan_stacks = false;
    cfg.scan_static_data = false;
    CHECK(rudo_heap_create(&cfg) == RUDO_OK);
    rudo_root_add(&g_list);
    k_node = rudo_kind_traced("oom-node", trace_node);
}

/* Runs fn(arg) in a forked child; passes if it returns true (the child
 * exits 0). An abort in the child shows its message on stderr. */
static void check_in_child(const char *what, bool (*fn)(size_t), size_t arg) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(arg) ? 0 : 1);
    int status = 0;
    status = test_wait_child(pid);
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok)
        fprintf(stderr, "  %s: child %s %d\n", what,
                WIFSIGNALED(status) ? "killed by signal" : "exited with",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    test_check(ok, what, __FILE__, __LINE__);
}

static bool alloc_larger_than_limit(size_t size) {
    unsigned long calls = oom_calls;
    void *p = rudo_alloc(RUDO_KIND_ATOMIC, size);
    if (p != NULL || oom_calls != calls + 1 || oom_last_size != size) {
        fprintf(stderr, "  rudo_alloc(%zu): %p, %lu OOM calls, last size %zu\n", size, p,
                oom_calls - calls, oom_last_size);
        return false;
    }
    return true;
}

static void test_limit(void) {
    const size_t max = 16 * MIB;
    create_heap(max);

    /* 1. Live data past the limit: the handler runs, then NULL. The cap
     * (4x the limit) ends the loop if the limit is not enforced. */
    size_t n = grow_list(4 * max / NODE_SIZE);
    printf("limit %zu MiB: %zu nodes (%zu KiB) before NULL, %lu OOM calls\n", max / MIB, n,
           n * NODE_SIZE / 1024, oom_calls);
    CHECK(n < 4 * max / NODE_SIZE);  /* an allocation returned NULL */
    CHECK(n * NODE_SIZE >= max / 2); /* ... but not long before the limit */
    CHECK(oom_calls >= 1);
    CHECK(oom_last_size == NODE_SIZE);
    CHECK(oom_last_data == &oom_tag);
    rudo_stats st = stats();
    CHECK(st.heap_bytes <= max);
    CHECK(st.heap_peak_bytes <= max);
    CHECK(list_intact(n));

    /* Still full: the next attempt fails the same way. */
    unsigned long calls = oom_calls;
    CHECK(rudo_alloc(k_node, NODE_SIZE) == NULL);
    CHECK(oom_calls == calls + 1);

    /* 2. Drop the data: allocation works again, without the handler. */
    g_list = NULL;
    rudo_collect();
    calls = oom_calls;
    size_t again = grow_list(8 * MIB / NODE_SIZE);
    CHECK(again == 8 * MIB / NODE_SIZE);
    CHECK(oom_calls == calls);
    CHECK(list_intact(again));

    /* 3. Large objects: one larger than the whole limit (in a child
     * process, so that an abort there does not end this test), and one that
     * does not fit next to the 8 MiB still live. The handler collects. */
    oom_collects = true;
    check_in_child("a large object larger than max_heap: NULL after the OOM handler",
                   alloc_larger_than_limit, 2 * max);
    calls = oom_calls;
    CHECK(rudo_alloc(RUDO_KIND_ATOMIC, 12 * MIB) == NULL);
    CHECK(oom_calls == calls + 1);
    CHECK(oom_last_size == 12 * MIB);
    CHECK(list_intact(again));
    oom_collects = false;

    /* Without the list the 12 MiB object fits. */
    g_list = NULL;
    rudo_collect();
    calls = oom_calls;
    unsigned char *big = rudo_alloc(RUDO_KIND_ATOMIC, 12 * MIB);
    CHECK(big != NULL);
    if (big) {
        CHECK(big[0] == 0 && big[12 * MIB - 1] == 0);
        memset(big, 1, 12 * MIB);
    }
    CHECK(oom_calls == calls);
    CHECK(stats().heap_peak_bytes <= max);

    CHECK(rudo_root_remove(&g_list) == RUDO_OK);
    rudo_heap_destroy();
}

/* The limit can come from the environment. */
static void test_env_limit(void) {
    setenv("RUDO_HEAP_MAX", "8M", 1);
    create_heap(0);
    unsetenv("RUDO_HEAP_MAX");
    oom_calls = 0;
    size_t n = grow_list(64 * MIB / NODE_SIZE);
    printf("RUDO_HEAP_MAX=8M: %zu nodes (%zu KiB) before NULL\n", n, n * NODE_SIZE / 1024);
    CHECK(n * NODE_SIZE <= 8 * MIB);
    CHECK(n * NODE_SIZE >= 4 * MIB);
    CHECK(oom_calls >= 1);
    CHECK(stats().heap_peak_bytes <= 8 * MIB);
    g_list = NULL;
    CHECK(rudo_root_remove(&g_list) == RUDO_OK);
    rudo_heap_destroy();
}

/* The handler allocates (rudo.h forbids it): the allocation fails too and
 * aborts with a message, instead of calling the handler again until the
 * stack overflows (a crash, no message: a helper's finding). */
static void oom_handler_allocates(void *arg) {
    (void)arg;
    create_heap(8 * MIB);
    oom_mode = OOM_ALLOCATE;
    (void)rudo_alloc(RUDO_KIND_ATOMIC, 64 * MIB);
}

/* Recurses `depth` frames (each with a buffer the compiler keeps), then
 * makes an allocation that cannot fit. */
static __attribute__((noinline)) void *deep_fail(int depth) {
    volatile char pad[256];
    pad[0] = (char)depth;
    void *p = depth > 0 ? deep_fail(depth - 1) : rudo_alloc(RUDO_KIND_ATOMIC, 64 * MIB);
    return pad[0] == (char)depth ? p : NULL;
}

/* A handler that returns leaves no trace: later failures, deeper on the
 * stack and shallower, call it again and do not abort (the flag that
 * catches a handler's own failing allocation is cleared). */
static void test_oom_again(void) {
    create_heap(8 * MIB);
    oom_mode = OOM_RETURN;
    unsigned long calls = oom_calls;
    static const int depths[] = {0, 40, 3, 80, 1, 0};
    for (size_t i = 0; i < sizeof depths / sizeof *depths; i++)
        CHECK(deep_fail(depths[i]) == NULL);
    CHECK_EQ(oom_calls - calls, (unsigned long)6);
    CHECK(rudo_malloc(100) != NULL);
    rudo_heap_destroy();
}

int main(void) {
    expect_death("an OOM handler that allocates", oom_handler_allocates, NULL,
                 "out-of-memory handler allocated");
    test_oom_again();
    test_limit();
    test_env_limit();
    return test_report();
}
