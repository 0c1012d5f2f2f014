/* test_stacks.c — collecting while the thread runs on another stack
 * (makecontext/swapcontext), declared with rudo_stack_set.
 *
 *  1. On a malloc'd coroutine stack, declared with rudo_stack_set, an
 *     object referenced only from that stack survives collections.
 *  2. Switched back (the thread's own stack declared again), collections
 *     work and an object on the thread's stack survives.
 *  3. The suspended coroutine stack is not scanned by itself: registered
 *     with rudo_root_add_range (with the context it was saved in), the
 *     object it references survives; once the range is removed, the object
 *     is finalized, which shows the test observes the collector.
 *  4. Death test: collecting on a coroutine stack that was not declared
 *     aborts with a message naming rudo_stack_set (the old code scanned
 *     from the coroutine's stack pointer to the top of the thread's stack:
 *     a crash or silently missed roots).
 * Precise config: static data is not scanned (the contexts are globals). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

#define CO_SIZE (256 * 1024)

static rudo_kind k_probe;
static int finalized[8]; /* finalizer runs per probe id */

static void probe_finalize(void *obj, void *data) {
    (void)data;
    uint64_t id = *(uint64_t *)obj;
    if (id < 8)
        finalized[id]++;
}

__attribute__((noinline)) static void *new_probe(uint64_t id) {
    uint64_t *p = rudo_alloc(k_probe, 64);
    p[0] = id;
    return p;
}

static bool alive(void *p, uint64_t id) {
    return rudo__debug_is_marked(p) && finalized[id] == 0 && *(uint64_t *)p == id;
}

/* Overwrites the dead stack below the caller. Not instrumented: ASan would
 * leave the redzones around buf unwritten. */
__attribute__((noinline, no_sanitize_address)) static void clobber_stack(void) {
    char buf[16 * 1024];
    memset(buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

__attribute__((noinline)) static void collect_several(void) {
    clobber_stack();
    for (int i = 0; i < 3; i++)
        rudo_collect();
}

static ucontext_t main_ctx, co_ctx;
static char *co_stack;
static void *main_lo, *main_hi;
static void *volatile co_probe; /* probe 2, for the main thread's checks */

/* Runs on the coroutine stack. */
static void co_body(void) {
    /* 1. Declare the stack first: the next rudo call may collect. */
    CHECK_EQ(rudo_stack_set(co_stack, co_stack + CO_SIZE), RUDO_OK);
    void *lo, *hi;
    rudo_stack_get(&lo, &hi);
    CHECK(lo == co_stack && hi == co_stack + CO_SIZE);
    void *volatile p1 = new_probe(1);
    collect_several();
    bool ok = alive(p1, 1);
    printf("on the coroutine stack: %s (finalized %d)\n", ok ? "survived" : "LOST",
           finalized[1]);
    test_check(ok, "object referenced only from the declared coroutine stack survives",
               __FILE__, __LINE__);
    p1 = NULL;
    /* Probe 2 stays referenced from this (soon suspended) stack alone. */
    void *volatile p2 = new_probe(2);
    co_probe = p2;
    /* Declared just before the switch: no rudo call comes between. */
    CHECK_EQ(rudo_stack_set(main_lo, main_hi), RUDO_OK);
    swapcontext(&co_ctx, &main_ctx);
    abort(); /* never resumed */
}

__attribute__((noinline)) static void test_coroutine(void) {
    rudo_stack_get(&main_lo, &main_hi);
    CHECK(main_lo != NULL && (char *)main_lo < (char *)main_hi);
    co_stack = malloc(CO_SIZE);
    CHECK(co_stack != NULL);
    getcontext(&co_ctx);
    co_ctx.uc_stack.ss_sp = co_stack;
    co_ctx.uc_stack.ss_size = CO_SIZE;
    co_ctx.uc_link = NULL;
    makecontext(&co_ctx, co_body, 0);
    swapcontext(&main_ctx, &co_ctx);

    /* 2. Back on the thread's stack (co_body declared it again). The
     * suspended coroutine is scanned only while registered (3). */
    rudo_root_add_range(co_stack, co_stack + CO_SIZE);
    rudo_root_add_range(&co_ctx, &co_ctx + 1);
    void *volatile p3 = new_probe(3);
    collect_several();
    bool ok = alive(p3, 3);
    printf("back on the thread's stack: %s (finalized %d)\n", ok ? "survived" : "LOST",
           finalized[3]);
    test_check(ok, "object on the thread's own stack survives after switching back",
               __FILE__, __LINE__);
    p3 = NULL;

    /* 3. The suspended coroutine: scanned only while registered. */
    ok = alive(co_probe, 2);
    printf("suspended coroutine stack, registered: %s (finalized %d)\n",
           ok ? "survived" : "LOST", finalized[2]);
    test_check(ok, "object on a registered suspended stack survives", __FILE__, __LINE__);
    CHECK_EQ(rudo_root_remove_range(co_stack), RUDO_OK);
    CHECK_EQ(rudo_root_remove_range(&co_ctx), RUDO_OK);
    co_probe = NULL;
    collect_several();
    printf("suspended coroutine stack, not registered: finalized %d\n", finalized[2]);
    CHECK_EQ(finalized[2], 1);
    free(co_stack); /* the coroutine is never resumed */
    co_stack = NULL;
}

/* 4. In a child: collect on a coroutine stack nobody declared. */
static void undeclared_body(void) {
    (void)new_probe(4);
    rudo_collect(); /* aborts */
    _exit(0);
}

static void collect_on_undeclared_stack(void *arg) {
    (void)arg;
    char *stack = malloc(CO_SIZE);
    getcontext(&co_ctx);
    co_ctx.uc_stack.ss_sp = stack;
    co_ctx.uc_stack.ss_size = CO_SIZE;
    co_ctx.uc_link = NULL;
    makecontext(&co_ctx, undeclared_body, 0);
    swapcontext(&main_ctx, &co_ctx);
}

static void stack_set_inverted(void *arg) {
    (void)arg;
    char buf[64];
    /* Not fatal: an error code with a message. */
    if (rudo_stack_set(buf + 64, buf) == RUDO_EINVAL)
        abort();
}

int main(void) {
    test_start_watchdog();
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.scan_static_data = false;
    cfg.markers = 1;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    rudo_kind_desc d = {0};
    d.name = "probe";
    d.tracing = RUDO_TRACE_ATOMIC;
    d.finalize = probe_finalize;
    k_probe = rudo_kind_register(&d);

    test_coroutine();
    expect_death("collecting on an undeclared coroutine stack",
                 collect_on_undeclared_stack, NULL,
                 "rudo: rudo_collect: the stack pointer");
    expect_death("collecting on an undeclared coroutine stack (remedy)",
                 collect_on_undeclared_stack, NULL, "declare the stack with rudo_stack_set");
    expect_death("rudo_stack_set with lo >= hi", stack_set_inverted, NULL,
                 "rudo: rudo_stack_set: invalid stack");

    rudo_heap_destroy();
    return test_report();
}
