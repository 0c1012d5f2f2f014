/* test_thr_sigstop.c — issue 12's acceptance test for signal suspension:
 * an attached thread that waits outside a blocking region no longer holds
 * collections up.
 *  - the main thread sits in pthread_join (native API, no blocking
 *    region) while a worker collects 1000 times: it finishes, and the
 *    objects the main thread holds only in its frame survive intact;
 *  - the same with the main thread waiting on a condition variable, and
 *    on a mutex another thread holds;
 *  - the main thread was suspended by signal (the debug counter), and
 *    from the second collection on at once (the whole run stays far below
 *    1000 times the delay);
 *  - rudo_thread_attach_flags: unknown flags, double attach, and
 *    RUDO_ATTACH_SIGNAL with signal suspension off;
 *  - invalid signal settings are rejected with a message.
 * Before the change the first case hung forever (the watchdog printed, the
 * collection never ended): the test's TEST_TIMEOUT watchdog fails it. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "debug/debug.h"
#include "rudo.h"
#include "testlib.h"

#define COLLECTIONS 1000

static rudo_kind k_node;

typedef test_lnode node;



/* ---- the worker that collects ---------------------------------------------- */
static atomic_int collected;

static void *collector_main(void *arg) {
    (void)arg;
    if (rudo_thread_attach() != RUDO_OK)
        abort(); /* no CHECK off the main thread: its counters are not atomic */
    for (int i = 0; i < COLLECTIONS; i++) {
        void *volatile junk = rudo_malloc(64 + (size_t)(i % 7) * 16);
        (void)junk;
        rudo_collect();
        atomic_fetch_add(&collected, 1);
    }
    rudo_thread_detach();
    return NULL;
}

static uint64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void test_join(void) {
    node *mine = test_list_make(k_node, 200, 1000);
    uint64_t stops0 = rudo__debug_signal_stops();
    uint64_t t0 = now_ms();
    atomic_store(&collected, 0);
    pthread_t t;
    pthread_create(&t, NULL, collector_main, NULL);
    pthread_join(t, NULL); /* no blocking region: the point of the test */
    uint64_t ms = now_ms() - t0;
    uint64_t stops = rudo__debug_signal_stops() - stops0;
    printf("join: %d collections in %llu ms, %llu signal stops\n",
           atomic_load(&collected), (unsigned long long)ms,
           (unsigned long long)stops);
    CHECK_EQ(atomic_load(&collected), COLLECTIONS);
    /* The main thread was stopped by signal in (nearly) every collection. */
    CHECK(stops >= COLLECTIONS / 2);
    CHECK(test_list_ok(mine, 200, 1000));
}

/* ---- a condition variable ---------------------------------------------------- */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done;

static void *collector_then_signal(void *arg) {
    collector_main(arg);
    pthread_mutex_lock(&mu);
    done = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void test_condvar(void) {
    node *mine = test_list_make(k_node, 150, 5000);
    atomic_store(&collected, 0);
    done = 0;
    pthread_t t;
    pthread_create(&t, NULL, collector_then_signal, NULL);
    pthread_mutex_lock(&mu);
    while (!done)
        pthread_cond_wait(&cv, &mu); /* no blocking region */
    pthread_mutex_unlock(&mu);
    printf("condvar: %d collections\n", atomic_load(&collected));
    CHECK_EQ(atomic_load(&collected), COLLECTIONS);
    CHECK(test_list_ok(mine, 150, 5000));
    rudo_blocking_enter();
    pthread_join(t, NULL);
    rudo_blocking_leave();
}

/* ---- a mutex another thread holds ------------------------------------------------- */
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;

/* Unattached: holds `held` while a collector collects 1000 times. */
static void *holder_main(void *arg) {
    pthread_t *coll = arg;
    pthread_mutex_lock(&held);
    pthread_create(coll, NULL, collector_main, NULL);
    pthread_join(*coll, NULL);
    pthread_mutex_unlock(&held);
    return NULL;
}

static void test_mutex(void) {
    node *mine = test_list_make(k_node, 100, 9000);
    atomic_store(&collected, 0);
    pthread_t holder, coll;
    pthread_create(&holder, NULL, holder_main, &coll);
    while (pthread_mutex_trylock(&held) == 0) {
        /* the holder has not taken it yet */
        pthread_mutex_unlock(&held);
        usleep(100);
    }
    pthread_mutex_lock(&held); /* waits, attached, no blocking region */
    pthread_mutex_unlock(&held);
    printf("mutex: %d collections\n", atomic_load(&collected));
    CHECK_EQ(atomic_load(&collected), COLLECTIONS);
    CHECK(test_list_ok(mine, 100, 9000));
    rudo_blocking_enter();
    pthread_join(holder, NULL);
    rudo_blocking_leave();
}

/* ---- attach flags and settings ---------------------------------------------------- */
static int attach_rc[3];

static void *flags_main(void *arg) {
    (void)arg;
    attach_rc[0] = rudo_thread_attach_flags(1u << 5);
    attach_rc[1] = rudo_thread_attach_flags(RUDO_ATTACH_SIGNAL);
    attach_rc[2] = rudo_thread_attach_flags(RUDO_ATTACH_SIGNAL);
    if (attach_rc[1] == RUDO_OK)
        rudo_thread_detach();
    return NULL;
}

static void run_flags_thread(void) {
    pthread_t t;
    pthread_create(&t, NULL, flags_main, NULL);
    rudo_blocking_enter();
    pthread_join(t, NULL);
    rudo_blocking_leave();
}

/* rudo_heap_create's result and message with the environment variable
 * name set to value (NULL: unset), in a child process (stderr kept). */
static int create_with(const char *name, const char *value, const char *needle) {
    fflush(stdout);
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        rudo_heap_destroy();
        setenv(name, value, 1);
        int rc = rudo_heap_create(NULL);
        _exit(rc);
    }
    close(fds[1]);
    char buf[1024];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fds[0]);
    int st;
    st = test_wait_child(pid);
    if (needle && !strstr(buf, needle)) {
        printf("message '%s' lacks '%s'\n", buf, needle);
        return -2;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_flags(void) {
    run_flags_thread();
    CHECK_EQ(attach_rc[0], RUDO_EINVAL);
    CHECK_EQ(attach_rc[1], RUDO_OK);
    CHECK_EQ(attach_rc[2], RUDO_EEXIST);
    CHECK_EQ(create_with("RUDO_RESTART_SIGNAL", "30",
                         "suspend_signal and restart_signal must differ"),
             RUDO_EINVAL);
    CHECK_EQ(create_with("RUDO_SUSPEND_SIGNAL", "9", "signal 9 cannot"), RUDO_EINVAL);
    CHECK_EQ(create_with("RUDO_SUSPEND_SIGNAL", "11", "signal 11 cannot"), RUDO_EINVAL);
    CHECK_EQ(create_with("RUDO_SUSPEND_SIGNAL", "65", "RUDO_SUSPEND_SIGNAL"), RUDO_EINVAL);
    CHECK_EQ(create_with("RUDO_SUSPEND_SIGNAL", "40", NULL), RUDO_OK);
    /* Signals off: a thread that never polls could never be stopped. */
    rudo_heap_destroy();
    setenv("RUDO_SUSPEND_SIGNAL", "0", 1);
    CHECK_EQ(rudo_heap_create(NULL), RUDO_OK);
    unsetenv("RUDO_SUSPEND_SIGNAL");
    run_flags_thread();
    CHECK_EQ(attach_rc[1], RUDO_ESTATE);
    rudo_heap_destroy();
    rudo_config c;
    rudo_config_init(&c);
    c.scan_stacks = false;
    CHECK_EQ(rudo_heap_create(&c), RUDO_OK);
    run_flags_thread();
    CHECK_EQ(attach_rc[1], RUDO_ESTATE);
    rudo_heap_destroy();
    CHECK_EQ(rudo_heap_create(NULL), RUDO_OK);
}

int main(void) {
    test_start_watchdog();
    CHECK_EQ(rudo_heap_create(NULL), RUDO_OK);
    k_node = rudo_kind_conservative("sigstop/node");
    if (TEST_UNDER_TSAN) {
        /* ThreadSanitizer takes an asynchronous signal only at its next
         * interceptor call, and keeps it blocked meanwhile: a thread that
         * sits in pthread_join or on a mutex never runs the suspend
         * handler, and the collection waits for it (the report says it
         * blocks SIGPWR). Nothing to test there but the settings. */
        printf("skipped under ThreadSanitizer: the join, condition variable "
               "and mutex cases (it delays signals to its interceptors)\n");
    } else {
        test_join();
        test_condvar();
        test_mutex();
    }
    test_flags();
    rudo_heap_destroy();
    return test_report();
}
