/* test_thr_sigfork.c — fork and pthread_cancel with threads that are
 * suspended by signal.
 *  - fork: threads attached with RUDO_ATTACH_SIGNAL allocate in tight
 *    loops (mid-pop at any instant) while another thread collects; the
 *    main thread forks repeatedly. Each child, where the allocators do not
 *    exist (their mutators are dropped, their pages retired, half-done pop
 *    and all), allocates, collects, checks a list it built before the
 *    fork and one it builds after, and exits 0.
 *  - pthread_cancel: an attached thread waits, outside a blocking region,
 *    in pthread_cond_wait (a cancellation point) while another thread
 *    collects: it is suspended by signal there again and again. Cancelling
 *    it ends it (PTHREAD_CANCELED, its cleanup handler ran, its exit
 *    destructor detached it: the attached count drops) and collections go
 *    on; a cancel that arrives while the thread is suspended waits in the
 *    suspend handler (the cancellation signal is blocked there) and acts
 *    after the resume. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

/* ThreadSanitizer ends a process that forks while it has threads unless
 * told otherwise (as test_thr_fork). */
const char *__tsan_default_options(void) { return "die_after_fork=0"; }

typedef test_lnode node;

static rudo_kind k_node;


static atomic_int stop_all;

static void *alloc_main(void *arg) {
    uint64_t rng = (uint64_t)(uintptr_t)arg * 77 + 1;
    if (rudo_thread_attach_flags(RUDO_ATTACH_SIGNAL) != RUDO_OK)
        abort(); /* no CHECK off the main thread: its counters are not atomic */
    node *keep = NULL;
    while (!atomic_load_explicit(&stop_all, memory_order_relaxed)) {
        size_t size = 16 + 16 * (test_rand(&rng) % 12);
        node *x = rudo_alloc(k_node, size);
        x->next = (test_rand(&rng) & 7) ? keep : NULL;
        keep = x;
    }
    rudo_thread_detach();
    return NULL;
}

static void *collect_main(void *arg) {
    (void)arg;
    rudo_thread_attach();
    while (!atomic_load_explicit(&stop_all, memory_order_relaxed)) {
        rudo_collect();
        rudo_blocking_enter();
        struct timespec ts = {0, 300000};
        nanosleep(&ts, NULL);
        rudo_blocking_leave();
    }
    rudo_thread_detach();
    return NULL;
}

static void test_fork(void) {
    atomic_store(&stop_all, 0);
    node *before = test_list_make(k_node, 300, 42);
    pthread_t a[2], c;
    for (int i = 0; i < 2; i++)
        pthread_create(&a[i], NULL, alloc_main, (void *)(uintptr_t)(i + 1));
    pthread_create(&c, NULL, collect_main, NULL);
    int rounds = TEST_UNDER_TSAN ? 3 : 20, ok = 0;
    for (int r = 0; r < rounds; r++) {
        struct timespec ts = {0, 2000000};
        rudo_blocking_enter();
        nanosleep(&ts, NULL);
        rudo_blocking_leave();
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            /* The child: one thread, the heap usable. */
            node *after = test_list_make(k_node, 2000, 7);
            for (int i = 0; i < 5; i++) {
                rudo_collect();
                void *volatile junk = test_list_make(k_node, 500, 99);
                (void)junk;
            }
            rudo_stats st;
            rudo_get_stats(&st);
            bool good = test_list_ok(before, 300, 42) && test_list_ok(after, 2000, 7) &&
                        st.threads_attached == 1;
            _exit(good ? 0 : 1);
        }
        int status = -1;
        rudo_blocking_enter();
        status = test_wait_child(pid);
        rudo_blocking_leave();
        ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    atomic_store(&stop_all, 1);
    rudo_blocking_enter();
    for (int i = 0; i < 2; i++)
        pthread_join(a[i], NULL);
    pthread_join(c, NULL);
    rudo_blocking_leave();
    printf("fork: %d of %d children passed\n", ok, rounds);
    CHECK_EQ(ok, rounds);
    CHECK(test_list_ok(before, 300, 42));
}

/* ---- pthread_cancel ---------------------------------------------------------------- */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static atomic_int waiting, cleaned;

static void cleanup(void *arg) {
    (void)arg;
    pthread_mutex_unlock(&mu);
    atomic_store(&cleaned, 1);
}

static void *waiter_main(void *arg) {
    (void)arg;
    rudo_thread_attach();
    node *mine = test_list_make(k_node, 50, 3);
    (void)mine;
    pthread_mutex_lock(&mu);
    pthread_cleanup_push(cleanup, NULL);
    atomic_store(&waiting, 1);
    for (;;)
        pthread_cond_wait(&never, &mu); /* no blocking region */
    pthread_cleanup_pop(1);
    return NULL;
}

static void test_cancel(void) {
    atomic_store(&stop_all, 0);
    atomic_store(&waiting, 0);
    pthread_t w, c;
    pthread_create(&w, NULL, waiter_main, NULL);
    while (!atomic_load(&waiting))
        sched_yield();
    uint64_t stops0 = rudo__debug_signal_stops();
    pthread_create(&c, NULL, collect_main, NULL);
    /* Let collections suspend the waiter a number of times. */
    while (rudo__debug_signal_stops() - stops0 < 20) {
        rudo_blocking_enter();
        sched_yield();
        rudo_blocking_leave();
    }
    pthread_cancel(w);
    void *res = NULL;
    rudo_blocking_enter();
    pthread_join(w, &res);
    rudo_blocking_leave();
    CHECK(res == PTHREAD_CANCELED);
    CHECK_EQ(atomic_load(&cleaned), 1);
    rudo_stats st;
    rudo_get_stats(&st);
    uint64_t before = st.collections;
    /* Collections go on without the cancelled thread. */
    for (int i = 0; i < 50; i++)
        rudo_collect();
    rudo_get_stats(&st);
    CHECK(st.collections >= before + 50);
    atomic_store(&stop_all, 1);
    rudo_blocking_enter();
    pthread_join(c, NULL);
    rudo_blocking_leave();
    rudo_get_stats(&st);
    CHECK_EQ(st.threads_attached, 1u);
}

int main(void) {
    test_start_watchdog();
    CHECK_EQ(rudo_heap_create(NULL), RUDO_OK);
    k_node = rudo_kind_conservative("sigfork/node");
    /* AddressSanitizer's allocator (clang 14) has no fork handlers: a
     * thread of the parent inside malloc at the fork leaves its lock held
     * in the child, whose first malloc (a marker thread's start) then
     * waits forever. Seen once in CI; glibc's malloc handles fork. */
    if (TEST_UNDER_ASAN)
        printf("skipped under AddressSanitizer: fork while threads allocate\n");
    else
        test_fork();
    /* ThreadSanitizer's pthread_cond_wait interceptor fails an internal
     * check ("in_blocking_func") when a thread cancelled in it was
     * suspended by a signal there: a limit of the tool, seen in 1 run of
     * 2 under load. */
    if (TEST_UNDER_TSAN)
        printf("skipped under ThreadSanitizer: cancelling a thread suspended "
               "in pthread_cond_wait\n");
    else
        test_cancel();
    rudo_heap_destroy();
    return test_report();
}
