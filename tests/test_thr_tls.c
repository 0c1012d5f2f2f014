/* test_thr_tls.c — __thread variables of attached threads are roots.
 *
 * A heap pointer held only in a `static __thread` variable, of the main
 * thread and of a worker thread (which waits in a blocking region while the
 * main thread collects), survives collections; once the variable is
 * cleared, the next collection finalizes the object, which shows the test
 * observes what the collector retains. The main thread's TLS block is not
 * on its stack (glibc allocates it in the dynamic loader), so only the
 * explicit TLS scan can find it; a worker's lies at the top of its stack
 * block. Precise config: no static data scan, one marker. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

static rudo_kind k_probe;
static atomic_int finalized[4]; /* finalizer runs per probe id */

static void probe_finalize(void *obj, void *data) {
    (void)data;
    uint64_t id = *(uint64_t *)obj;
    if (id < 4)
        atomic_fetch_add_explicit(&finalized[id], 1, memory_order_relaxed);
}

static int fin(int id) {
    return atomic_load_explicit(&finalized[id], memory_order_relaxed);
}

/* ThreadSanitizer keeps its per-thread state in a large static TLS block
 * of the program, which the TLS scan reads too; stale addresses there may
 * retain a probe after its variable is cleared. Under TSan the "cleared"
 * checks only print. */
#define UNDER_TSAN TEST_UNDER_TSAN
#define CHECK_FREED(id)                                                         \
    do {                                                                        \
        if (!UNDER_TSAN)                                                        \
            CHECK_EQ(fin(id), 1);                                               \
    } while (0)

/* The only reference to each thread's probe. */
static __thread void *tls_obj;

/* Allocates the probe straight into the TLS variable: no copy stays in a
 * live frame or register of the caller. */
__attribute__((noinline)) static void set_tls_probe(uint64_t id) {
    uint64_t *p = rudo_alloc(k_probe, 64);
    p[0] = id;
    tls_obj = p;
}

/* Overwrites the dead stack below the caller (copies left by the
 * allocation). Not instrumented: ASan would leave redzones unwritten. */
__attribute__((noinline, no_sanitize_address)) static void clobber_stack(void) {
    char buf[16 * 1024];
    memset(buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

/* Survives: marked by the last collection, not finalized, intact. */
static bool alive(void *p, uint64_t id) {
    return rudo__debug_is_marked(p) && fin((int)id) == 0 && *(uint64_t *)p == id;
}

__attribute__((noinline)) static void collect_several(void) {
    clobber_stack();
    for (int i = 0; i < 3; i++)
        rudo_collect();
}

/* ---- the main thread ------------------------------------------------------ */
__attribute__((noinline)) static void test_main_thread(void) {
    set_tls_probe(1);
    collect_several();
    bool ok = alive(tls_obj, 1);
    printf("main thread TLS: %s (finalized %d)\n", ok ? "survived" : "LOST", fin(1));
    test_check(ok, "object held only in the main thread's __thread variable survives",
               __FILE__, __LINE__);
    tls_obj = NULL;
    collect_several();
    printf("main thread TLS cleared: finalized %d\n", fin(1));
    CHECK_FREED(1);
}

/* ---- a worker thread ------------------------------------------------------- */
static pthread_barrier_t bar;
static void *volatile worker_obj; /* for the main thread's checks only */

static void *worker(void *arg) {
    (void)arg;
    if (rudo_thread_attach() != RUDO_OK) /* CHECK is for the main thread */
        abort();
    set_tls_probe(2);
    worker_obj = tls_obj;
    /* Hide the copy the main thread checks with from the scan: it is a
     * global, and static data is not scanned, but be explicit. */
    clobber_stack();
    test_barrier_wait(&bar); /* 1: the probe is set */
    test_barrier_wait(&bar); /* 2: the main thread collected */
    tls_obj = NULL;
    test_barrier_wait(&bar); /* 3: cleared */
    test_barrier_wait(&bar); /* 4: the main thread collected again */
    rudo_thread_detach();
    return NULL;
}

__attribute__((noinline)) static void test_worker_thread(void) {
    pthread_barrier_init(&bar, NULL, 2);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, worker, NULL), 0);
    test_barrier_wait(&bar); /* 1 */
    collect_several();
    bool ok = alive(worker_obj, 2);
    printf("worker thread TLS: %s (finalized %d)\n", ok ? "survived" : "LOST", fin(2));
    test_check(ok, "object held only in a worker's __thread variable survives",
               __FILE__, __LINE__);
    test_barrier_wait(&bar); /* 2 */
    test_barrier_wait(&bar); /* 3 */
    worker_obj = NULL;
    collect_several();
    printf("worker thread TLS cleared: finalized %d\n", fin(2));
    CHECK_FREED(2);
    test_barrier_wait(&bar); /* 4 */
    rudo_blocking_enter();
    pthread_join(t, NULL);
    rudo_blocking_leave();
    pthread_barrier_destroy(&bar);
}

int main(void) {
    test_start_watchdog();
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.scan_static_data = false; /* the TLS scan alone must find them */
    cfg.markers = 1;
    CHECK_EQ(rudo_heap_create(&cfg), RUDO_OK);
    rudo_kind_desc d = {0};
    d.name = "probe";
    d.tracing = RUDO_TRACE_ATOMIC;
    d.finalize = probe_finalize;
    k_probe = rudo_kind_register(&d);

    test_main_thread();
    test_worker_thread();

    rudo_heap_destroy();
    return test_report();
}
