#include "testlib.h"

#include "heap/heap.h" /* RUDO_PAGE_SHIFT */
#include "rudo.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

unsigned long test_passed, test_failed;

void test_check(bool ok, const char *expr, const char *file, int line) {
    if (ok) {
        test_passed++;
    } else {
        test_failed++;
        fprintf(stderr, "FAIL %s:%d: %s\n", file, line, expr);
    }
}

int test_report(void) {
    printf("%lu passed, %lu failed\n", test_passed, test_failed);
    return test_failed == 0 && test_passed > 0 ? 0 : 1;
}

/* Prints the stacks of every thread of process pid to stderr with gdb,
 * if there is one (a hang's report; nothing otherwise). Uses only
 * async-signal-safe calls: the watchdog calls it from its handler. */
static void dump_stacks(pid_t pid) {
    static const char *const dirs[] = {"/usr/bin/gdb", "/bin/gdb", "/usr/local/bin/gdb"};
    const char *gdb = NULL;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0] && !gdb; i++)
        if (access(dirs[i], X_OK) == 0)
            gdb = dirs[i];
    if (!gdb)
        return;
    char arg[32];
    /* The pid in decimal, by hand: snprintf is not async-signal-safe. */
    char digits[24];
    int n = 0;
    for (long v = pid; v > 0 && n < 23; v /= 10)
        digits[n++] = (char)('0' + v % 10);
    int k = 0;
    while (n > 0)
        arg[k++] = digits[--n];
    arg[k] = '\0';
    /* Yama's ptrace_scope 1 lets a process trace only its descendants
     * unless the tracee names its tracer: allow any, for this report. */
    if (pid == getpid())
        prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    /* The raw system call, not fork(): no atfork handler runs (rudo's
     * take its locks, a sanitizer's take its own, and a hung thread may
     * hold any of them: the watchdog's report then hung too, in CI's ASan
     * stage), and the child only execs. */
    pid_t g = (pid_t)syscall(SYS_fork);
    if (g == 0) {
        dup2(2, 1);
        execl(gdb, gdb, "-batch", "-nx", "-p", arg, "-ex", "thread apply all bt", (char *)NULL);
        _exit(127);
    }
    /* At most a minute: gdb may hang too. */
    for (int i = 0; g > 0 && i < 600; i++) {
        if (waitpid(g, NULL, WNOHANG) != 0)
            return;
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    if (g > 0) {
        kill(g, SIGKILL);
        waitpid(g, NULL, 0);
    }
}

int test_wait_child(pid_t pid) {
    long limit_s = test_env_long("TEST_DEATH_TIMEOUT", 60);
    uint64_t deadline = test_now_ns() + (uint64_t)limit_s * 1000000000u;
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR))
            return status;
        if (test_now_ns() >= deadline)
            break;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "test: child %ld did not end in %ld s (TEST_DEATH_TIMEOUT); its threads:\n",
            (long)pid, limit_s);
    dump_stacks(pid);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}

void expect_death(const char *what, void (*fn)(void *), void *arg,
                  const char *needle) {
    /* The child's time: its own alarms (the tests' 10-20 s) end a child
     * stuck in rudo; this bounds one stuck where they cannot fire (a
     * ThreadSanitizer runtime lock inherited held through fork, which
     * defers the handler for ever). */
    long limit_s = test_env_long("TEST_DEATH_TIMEOUT", 60);
    for (int attempt = 0;; attempt++) {
        int pipefd[2];
        if (pipe(pipefd) != 0) {
            perror("pipe");
            exit(2);
        }
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            dup2(pipefd[1], 2);
            close(pipefd[0]);
            close(pipefd[1]);
            fn(arg);
            _exit(0); /* survived: the parent reports it */
        }
        close(pipefd[1]);
        char buf[8192];
        size_t len = 0;
        uint64_t deadline = test_now_ns() + (uint64_t)limit_s * 1000000000u;
        bool hung = false;
        for (;;) {
            uint64_t now = test_now_ns();
            if (now >= deadline) {
                hung = true;
                break;
            }
            struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
            int r = poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                continue; /* the deadline is checked above */
            /* Past the buffer, the rest is read and dropped: a child
             * must never block on a full pipe while this waits for it.
             * (Before, a child that wrote more than the buffer and the
             * pipe hold blocked in write, its SIGALRM handler, inherited
             * from the watchdog, too, and the parent in waitpid.) */
            char trash[4096];
            bool full = len == sizeof buf - 1;
            ssize_t n = full ? read(pipefd[0], trash, sizeof trash)
                             : read(pipefd[0], buf + len, sizeof buf - 1 - len);
            if (n <= 0)
                break; /* EOF: the child is gone (or closed stderr) */
            if (!full)
                len += (size_t)n;
        }
        buf[len] = '\0';
        close(pipefd[0]);
        int status = 0;
        if (hung) {
            fprintf(stderr, "death test '%s': the child (pid %ld) did not end in %ld s "
                    "(TEST_DEATH_TIMEOUT); its stderr so far: %s\nits threads:\n", what,
                    (long)pid, limit_s, buf);
            dump_stacks(pid);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
#if TEST_UNDER_TSAN
            /* ThreadSanitizer documents that a child of a multi-threaded
             * fork may deadlock in its runtime (die_after_fork=0): once,
             * the case runs again; the stacks above say where it hung. */
            if (attempt == 0) {
                fprintf(stderr, "death test '%s': running it again once "
                        "(ThreadSanitizer after fork)\n", what);
                continue;
            }
#endif
            test_check(false, what, __FILE__, __LINE__);
            return;
        }
        waitpid(pid, &status, 0);
        bool died = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
        bool found = strstr(buf, needle) != NULL;
        if (!died || !found)
            fprintf(stderr, "death test '%s': %s; wanted '%s' in stderr: %s\n", what,
                    died ? "aborted" : "did not abort", needle, buf);
        test_check(died && found, what, __FILE__, __LINE__);
        return;
    }
}

rudo_config test_precise_config(unsigned markers) {
    rudo_config cfg;
    rudo_config_init(&cfg);
    cfg.scan_stacks = false;
    cfg.scan_static_data = false;
    cfg.markers = markers;
    return cfg;
}

uint64_t test_rand(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

long test_env_long(const char *name, long def) {
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 0) : def;
}

bool test_stress_on(void) { return test_env_long("RUDO_GC_STRESS", 0) != 0; }

long test_scaled(long n) {
    const char *s = getenv("TEST_SCALE");
    double f = s && *s ? strtod(s, NULL) : 1.0;
    if (!(f > 0))
        f = 1.0;
    long v = (long)((double)n * f);
    return v < 1 ? 1 : v;
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "watchdog: test did not finish in time (deadlock?); "
                              "the threads (with gdb installed):\n";
    (void)!write(2, msg, sizeof msg - 1);
    dump_stacks(getpid());
    _exit(3);
}

void test_start_watchdog(void) {
    signal(SIGALRM, on_alarm);
    alarm((unsigned)test_env_long("TEST_TIMEOUT", 500));
}

__attribute__((noinline, no_sanitize_address)) void test_scrub_stack(void) {
    volatile char buf[64 * 1024];
    memset((char *)buf, 0, sizeof buf);
    /* buf is an input: it escapes, so the memset stays (clang and GCC
     * dropped it otherwise, a memory clobber notwithstanding). */
    __asm__ volatile("" : : "r"(buf) : "memory");
}

uint64_t test_mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t test_rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

void test_barrier_wait(pthread_barrier_t *b) {
    rudo_blocking_enter();
    pthread_barrier_wait(b);
    rudo_blocking_leave();
}

void test_mutex_lock(pthread_mutex_t *mu) {
#if TEST_UNDER_TSAN
    rudo_blocking_enter();
    pthread_mutex_lock(mu);
    rudo_blocking_leave();
#else
    pthread_mutex_lock(mu);
#endif
}

uint64_t test_tree_sum(const test_tnode *n) {
    return test_mix64(n->val ^ (n->left ? n->left->sum * 3 : 1) ^
                      (n->right ? n->right->sum * 5 : 2));
}

test_tnode *test_tree_make(rudo_kind kind, int depth, uint64_t *rng) {
    test_tnode *n = rudo_alloc(kind, sizeof *n);
    if (n == NULL) {
        fprintf(stderr, "rudo_alloc returned NULL\n");
        abort();
    }
    n->val = test_rand(rng);
    if (depth > 0) {
        n->left = test_tree_make(kind, depth - 1, rng);
        n->right = test_tree_make(kind, depth - 1, rng);
    }
    n->sum = test_tree_sum(n);
    return n;
}

test_lnode *test_list_make(rudo_kind kind, int n, uint64_t seed) {
    test_lnode *head = NULL;
    for (int i = 0; i < n; i++) {
        test_lnode *x = rudo_alloc(kind, sizeof *x);
        if (!x) {
            fprintf(stderr, "test_list_make: allocation returned NULL\n");
            abort();
        }
        x->next = head;
        x->val = seed + (uint64_t)i;
        x->check = test_mix64(x->val ^ 0x5bd1e995u);
        head = x;
    }
    return head;
}

bool test_list_ok(const test_lnode *x, int n, uint64_t seed) {
    for (int i = n - 1; i >= 0; i--, x = x->next)
        if (!x || x->val != seed + (uint64_t)i || x->check != test_mix64(x->val ^ 0x5bd1e995u))
            return false;
    return x == NULL;
}

static int cap_fd = -1, saved_fd = -1;

void test_capture_begin(void) {
    char path[] = "/tmp/rudo-test-stderr-XXXXXX";
    cap_fd = mkstemp(path);
    if (cap_fd < 0) {
        perror("mkstemp");
        exit(2);
    }
    unlink(path);
    fflush(stderr);
    saved_fd = dup(2);
    dup2(cap_fd, 2);
}

const char *test_captured(char *buf, size_t cap) {
    ssize_t n = pread(cap_fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

void test_capture_end(void) {
    fflush(stderr);
    dup2(saved_fd, 2);
    close(saved_fd);
    close(cap_fd);
    saved_fd = cap_fd = -1;
}

bool test_page_run(rudo_kind kind, size_t size, size_t need, size_t tries,
                   void **run, void *(*alloc)(rudo_kind, size_t, void *),
                   void *data) {
    const uintptr_t page_mask = ((uintptr_t)1 << RUDO_PAGE_SHIFT) - 1;
    size_t len = 0;
    uintptr_t page = 0;
    for (size_t t = 0; t < tries; t++) {
        void *x = alloc(kind, size, data);
        uintptr_t a = (uintptr_t)x;
        size_t off = a & page_mask, idx = off / size;
        if (off % size != 0)
            return false; /* not a cell base: the page arithmetic is off */
        if (idx == 0) {
            page = a >> RUDO_PAGE_SHIFT;
            len = 0;
            run[len++] = x;
        } else if (len > 0 && a >> RUDO_PAGE_SHIFT == page && idx == len) {
            run[len++] = x;
        } else {
            len = 0;
        }
        if (len == need)
            return true;
    }
    return false;
}

uint64_t test_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool test_long_mode(int argc, char **argv) {
    bool full = test_env_long("TEST_LONG", 0) != 0;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--long") == 0)
            full = true;
    if (full)
        setenv("TEST_TIMEOUT", "36000", 0);
    return full;
}

/* The worker's job slot, under jmu: jstate 0 idle, 1 posted, 2 done. */
static pthread_t worker;
static pthread_mutex_t jmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jcv = PTHREAD_COND_INITIALIZER;
static void (*jfn)(void *);
static void *jarg;
static int jstate;
static bool jquit;

/* Waits in blocking regions: the main thread may collect meanwhile. */
static void *worker_main(void *arg) {
    (void)arg;
    if (rudo_thread_attach() != RUDO_OK) {
        fprintf(stderr, "test worker: rudo_thread_attach failed\n");
        abort();
    }
    for (;;) {
        rudo_blocking_enter();
        pthread_mutex_lock(&jmu);
        while (jstate != 1 && !jquit)
            pthread_cond_wait(&jcv, &jmu);
        bool quit = jstate != 1;
        void (*fn)(void *) = jfn;
        void *a = jarg;
        pthread_mutex_unlock(&jmu);
        rudo_blocking_leave();
        if (quit)
            break;
        fn(a);
        rudo_blocking_enter();
        pthread_mutex_lock(&jmu);
        jstate = 2;
        pthread_cond_broadcast(&jcv);
        pthread_mutex_unlock(&jmu);
        rudo_blocking_leave();
    }
    rudo_thread_detach();
    return NULL;
}

void test_worker_start(void) {
    jquit = false;
    jstate = 0;
    if (pthread_create(&worker, NULL, worker_main, NULL) != 0) {
        perror("pthread_create");
        exit(2);
    }
}

void test_on_worker(void (*fn)(void *), void *arg) {
    rudo_blocking_enter();
    pthread_mutex_lock(&jmu);
    jfn = fn;
    jarg = arg;
    jstate = 1;
    pthread_cond_broadcast(&jcv);
    while (jstate != 2)
        pthread_cond_wait(&jcv, &jmu);
    jstate = 0;
    pthread_mutex_unlock(&jmu);
    rudo_blocking_leave();
}

void test_worker_stop(void) {
    rudo_blocking_enter();
    pthread_mutex_lock(&jmu);
    jquit = true;
    pthread_cond_broadcast(&jcv);
    pthread_mutex_unlock(&jmu);
    pthread_join(worker, NULL);
    rudo_blocking_leave();
}

rudo_config test_manual_config(unsigned markers, size_t room) {
    rudo_config cfg = test_precise_config(markers);
    cfg.initial_heap = room;
    cfg.nursery = room;
    cfg.nursery_adapt = false;
    return cfg;
}

void test_heap_create(const rudo_config *cfg) {
    int rc = rudo_heap_create(cfg);
    if (rc != RUDO_OK) {
        fprintf(stderr, "rudo_heap_create: %s\n", rudo_strerror(rc));
        exit(2);
    }
}

long test_thread_count(void) {
    static char buf[8192]; /* static: no allocation while a test measures */
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0)
        return -1;
    size_t len = 0;
    ssize_t n;
    while (len < sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    close(fd);
    buf[len] = '\0';
    const char *t = strstr(buf, "\nThreads:");
    return t ? strtol(t + 9, NULL, 10) : -1;
}

bool test_threads_back_to(long want) {
    for (int i = 0; i < 2000; i++) {
        if (test_thread_count() == want)
            return true;
        usleep(1000);
    }
    return false;
}
