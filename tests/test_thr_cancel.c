/* test_thr_cancel.c — pthread_cancel of an attached thread while it waits
 * inside rudo (parked at a safepoint, in rudo_blocking_leave, attaching)
 * or sits in a cancellable call inside a blocking region. rudo's internal
 * waits run with cancellation disabled, so the cancel acts at the thread's
 * next cancellation point outside rudo; its exit destructor detaches it,
 * and collections go on. Before the fix a thread cancelled inside
 * pthread_cond_wait exited holding gc_lock and the process hung, which the
 * alarm below turns into a failure naming the case. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rudo.h"
#include "testlib.h"

static const char *volatile phase = "setup";

/* AddressSanitizer does not clear the shadow of the frames that
 * cancellation unwinds (google/sanitizers#1399): its own thread teardown
 * then reports a stack-buffer-overflow on them. A cleanup handler at the
 * bottom of every victim clears the stack's shadow as the unwinding passes,
 * which is what __asan_handle_no_return is for. */
#if TEST_UNDER_ASAN
#include <sanitizer/asan_interface.h>
static void forget_unwound_frames(void *arg) {
    (void)arg;
    __asan_handle_no_return();
}
#else
static void forget_unwound_frames(void *arg) { (void)arg; }
#endif

struct victim_start {
    void *(*fn)(void *);
};

static void *victim_main(void *arg) {
    void *(*fn)(void *) = ((struct victim_start *)arg)->fn;
    void *r;
    pthread_cleanup_push(forget_unwound_frames, NULL);
    r = fn(NULL);
    pthread_cleanup_pop(0);
    return r;
}

/* pthread_create of a thread that runs fn and may be cancelled. */
static void start_victim(pthread_t *t, void *(*fn)(void *)) {
    static struct victim_start starts[8];
    static unsigned next;
    struct victim_start *v = &starts[next++ % 8];
    v->fn = fn;
    pthread_create(t, NULL, victim_main, v);
}

static void on_alarm(int sig) {
    (void)sig;
    const char *p = phase;
    (void)!write(2, "hang (deadlock after pthread_cancel?) in: ", 42);
    (void)!write(2, p, strlen(p));
    (void)!write(2, "\n", 1);
    _exit(3);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---- a collection that stalls in a trace callback ------------------------
 * The callback runs `stall_action` once, during marking, with the world
 * stopped: every other attached thread is parked or blocked meanwhile. It
 * calls no rudo function. */
static rudo_kind k_stall;
static void *volatile stall_root; /* static data is scanned */
static void (*volatile stall_action)(void);
static atomic_int stall_armed;

static void trace_stall(void *obj, size_t size, rudo_tracer *tr) {
    (void)obj;
    (void)size;
    (void)tr;
    /* acq_rel: the action pointer was written before arming. */
    if (atomic_exchange_explicit(&stall_armed, 0, memory_order_acq_rel)) {
        void (*fn)(void) = stall_action;
        fn();
    }
}

static void collect_with(void (*fn)(void)) {
    stall_action = fn;
    atomic_store_explicit(&stall_armed, 1, memory_order_release);
    rudo_collect();
    CHECK_EQ(atomic_load(&stall_armed), 0); /* the action ran */
}

static unsigned attached(void) {
    rudo_stats st;
    rudo_get_stats(&st);
    return st.threads_attached;
}

/* Joins t inside a blocking region (the waiting rule) and checks that it
 * ended by cancellation. */
static void join_cancelled(pthread_t t) {
    void *ret = NULL;
    rudo_blocking_enter();
    int rc = pthread_join(t, &ret);
    rudo_blocking_leave();
    CHECK_EQ(rc, 0);
    CHECK(ret == PTHREAD_CANCELED);
}

/* Collections still complete and the cancelled thread is gone. */
static void check_world_ok(void) {
    CHECK_EQ(attached(), 1u);
    rudo_stats a, b;
    rudo_get_stats(&a);
    for (int i = 0; i < 3; i++) {
        void *volatile p = rudo_malloc(64);
        (void)p;
        rudo_collect();
    }
    rudo_get_stats(&b);
    CHECK(b.collections >= a.collections + 3);
}

static pthread_t victim;
static atomic_int ready, step;

static void spin_until(atomic_int *v, int want) {
    while (atomic_load(v) != want)
        sched_yield();
}

/* ---- 1: parked at a safepoint ----------------------------------------------- */
static void *parked_main(void *arg) {
    (void)arg;
    rudo_thread_attach();
    void *volatile mine = rudo_malloc(32);
    (void)mine;
    atomic_store(&ready, 1);
    for (;;) {
        rudo_safepoint();
        pthread_testcancel();
    }
    return NULL;
}

static void cancel_parked(void) {
    /* The world is stopped: the victim waits in rudo__park. */
    pthread_cancel(victim);
    sleep_ms(200); /* a cancel acting in the wait would now hold gc_lock */
}

static void test_cancel_parked(void) {
    phase = "cancel a thread parked at a safepoint";
    atomic_store(&ready, 0);
    start_victim(&victim, parked_main);
    spin_until(&ready, 1);
    collect_with(cancel_parked);
    join_cancelled(victim);
    check_world_ok();
}

/* ---- 2: waiting in rudo_blocking_leave -------------------------------------- */
static void *leave_main(void *arg) {
    (void)arg;
    rudo_thread_attach();
    rudo_blocking_enter();
    atomic_store(&ready, 1);
    spin_until(&step, 1); /* sched_yield: not a cancellation point */
    atomic_store(&step, 2);
    rudo_blocking_leave(); /* waits: a collection runs */
    for (;;) {
        rudo_safepoint();
        pthread_testcancel();
    }
    return NULL;
}

static void cancel_leaving(void) {
    atomic_store(&step, 1);
    spin_until(&step, 2);
    sleep_ms(100); /* now inside rudo_blocking_leave's wait */
    pthread_cancel(victim);
    sleep_ms(200);
}

static void test_cancel_leaving(void) {
    phase = "cancel a thread waiting in rudo_blocking_leave";
    atomic_store(&ready, 0);
    atomic_store(&step, 0);
    start_victim(&victim, leave_main);
    spin_until(&ready, 1);
    collect_with(cancel_leaving);
    join_cancelled(victim);
    check_world_ok();
}

/* ---- 3: waiting in rudo_thread_attach --------------------------------------- */
static void *attach_main(void *arg) {
    (void)arg;
    atomic_store(&ready, 1);
    spin_until(&step, 1);
    atomic_store(&step, 2);
    rudo_thread_attach(); /* waits: a collection runs */
    for (;;) {
        rudo_safepoint();
        pthread_testcancel();
    }
    return NULL;
}

static void test_cancel_attaching(void) {
    phase = "cancel a thread waiting in rudo_thread_attach";
    atomic_store(&ready, 0);
    atomic_store(&step, 0);
    start_victim(&victim, attach_main);
    spin_until(&ready, 1);
    collect_with(cancel_leaving); /* same choreography */
    join_cancelled(victim);
    check_world_ok();
}

/* ---- 4: cancelled in a cancellable call inside a blocking region ---------- */
static pthread_mutex_t never_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never_cv = PTHREAD_COND_INITIALIZER;

static void unlock_never(void *arg) {
    (void)arg;
    pthread_mutex_unlock(&never_mutex);
}

static void *region_main(void *arg) {
    (void)arg;
    rudo_thread_attach();
    void *volatile mine = rudo_malloc(32);
    (void)mine;
    rudo_blocking_enter();
    atomic_store(&ready, 1);
    /* A program's own wait, a cancellation point. (pthread_cond_wait
     * rather than pause or read: ThreadSanitizer loses track of a thread
     * cancelled inside those and reports false races afterwards.) */
    pthread_mutex_lock(&never_mutex);
    pthread_cleanup_push(unlock_never, NULL);
    for (;;)
        pthread_cond_wait(&never_cv, &never_mutex);
    pthread_cleanup_pop(1);
    return NULL;
}

static void test_cancel_in_region(bool during_collection) {
    phase = during_collection
                ? "cancel a thread in a blocking region during a collection"
                : "cancel a thread in a blocking region";
    atomic_store(&ready, 0);
    start_victim(&victim, region_main);
    spin_until(&ready, 1);
    if (during_collection) {
        /* Its exit destructor leaves the region, waiting for the end of
         * the collection, then detaches. */
        collect_with(cancel_parked);
    } else {
        pthread_cancel(victim);
    }
    join_cancelled(victim);
    check_world_ok();
}

int main(void) {
    signal(SIGALRM, on_alarm);
    alarm((unsigned)test_env_long("TEST_TIMEOUT", 120));
    int rc = rudo_heap_create(NULL);
    CHECK_EQ(rc, RUDO_OK);
    if (rc != RUDO_OK)
        return test_report();
    k_stall = rudo_kind_traced("cancel/stall", trace_stall);
    stall_root = rudo_alloc(k_stall, 16);

    /* CANCEL_CASE=n runs case n alone (1 to 5), e.g. to see each one hang
     * on a build without the fix. */
    long only = test_env_long("CANCEL_CASE", 0);
    if (!only || only == 1)
        test_cancel_parked();
    if (!only || only == 2)
        test_cancel_leaving();
    if (!only || only == 3)
        test_cancel_attaching();
    if (!only || only == 4)
        test_cancel_in_region(false);
    if (!only || only == 5)
        test_cancel_in_region(true);

    phase = "teardown";
    stall_root = NULL;
    rudo_heap_destroy();
    return test_report();
}
