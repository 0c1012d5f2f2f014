/* testlib.h — the small test harness shared by rudo's tests.
 *
 * CHECK(cond) records a failure (with file, line and the expression) and
 * goes on; a test program ends with `return test_report();`, which prints
 * "N passed, N failed" and returns nonzero if anything failed.
 * expect_death() runs a function in a forked child and checks that it
 * aborts with a message containing a given text. The test_thr_* programs
 * share the helpers below it: work scaled by TEST_SCALE, a watchdog bounded
 * by TEST_TIMEOUT, hashing, and barriers inside blocking regions. */
#ifndef RUDO_TESTLIB_H
#define RUDO_TESTLIB_H
#include <pthread.h>
#include <sys/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rudo.h"

/* Which sanitizer the test is built with, as gcc (__SANITIZE_*__) and
 * clang (__has_feature) say it: 1 or 0. Tests shorten runs under them, or
 * work around what a sanitizer cannot model. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_UNDER_ASAN 1
#endif
#endif
#ifndef TEST_UNDER_ASAN
#define TEST_UNDER_ASAN 0
#endif
#if defined(__SANITIZE_THREAD__)
#define TEST_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_UNDER_TSAN 1
#endif
#endif
#ifndef TEST_UNDER_TSAN
#define TEST_UNDER_TSAN 0
#endif

extern unsigned long test_passed, test_failed;

void test_check(bool ok, const char *expr, const char *file, int line);
#define CHECK(cond) test_check((cond) ? true : false, #cond, __FILE__, __LINE__)
#define CHECK_EQ(a, b)                                                          \
    test_check((a) == (b), #a " == " #b, __FILE__, __LINE__)

/* Prints the summary; returns the process exit status. */
int test_report(void);

/* Runs fn(arg) in a child process. Passes if the child dies by SIGABRT
 * and its stderr contains `needle`. A child still running after
 * TEST_DEATH_TIMEOUT seconds (default 60) fails the check, with its
 * threads' stacks (gdb, if installed) and then SIGKILL; under
 * ThreadSanitizer the case runs once more first (a child of a
 * multi-threaded fork may deadlock in that runtime). */
void expect_death(const char *what, void (*fn)(void *), void *arg,
                  const char *needle);

/* waitpid(pid) for a forked child, bounded by TEST_DEATH_TIMEOUT seconds
 * (default 60): past it, prints the child's threads' stacks (gdb, if
 * installed), kills it (SIGKILL) and returns that status. Returns the
 * wait status. */
int test_wait_child(pid_t pid);

/* The defaults with precise roots only (no stack or static-data scanning)
 * and the given number of markers (0 = the default): what tests that
 * check exact survivors start from. */
rudo_config test_precise_config(unsigned markers);
/* test_precise_config with no collection but the test's own while less
 * than `room` bytes are allocated: initial_heap and a fixed nursery of
 * `room` (the cross-product tests, which count what each collection
 * keeps). */
rudo_config test_manual_config(unsigned markers, size_t room);
/* rudo_heap_create, or a message and exit status 2 (a setup failure, not
 * a check). */
void test_heap_create(const rudo_config *cfg);

/* Deterministic pseudo-random numbers (xorshift64*). */
uint64_t test_rand(uint64_t *state);

/* Current value of an environment variable as an integer, or def. */
long test_env_long(const char *name, long def);

/* True when RUDO_GC_STRESS asks for collections the test does not run
 * itself: a test that counts what one collection finds then accepts what
 * the earlier ones found. */
bool test_stress_on(void);

/* n times TEST_SCALE (a positive factor, default 1), at least 1. */
long test_scaled(long n);

/* Monotonic clock, nanoseconds. */
uint64_t test_now_ns(void);

/* Whether the cross-product tests run their whole product: TEST_LONG
 * nonzero, or --long among the arguments. If so, the watchdog's default
 * becomes 10 hours (TEST_TIMEOUT still wins); call before
 * test_start_watchdog. */
bool test_long_mode(int argc, char **argv);

/* A second attached thread that runs jobs for the main one: started with
 * test_worker_start (it attaches itself), stopped (joined, detached) with
 * test_worker_stop; test_on_worker runs fn(arg) there and waits for it in
 * a blocking region, so the job may collect. One worker at a time. */
void test_worker_start(void);
void test_on_worker(void (*fn)(void *), void *arg);
void test_worker_stop(void);

/* Zeroes 64 KiB of stack below the caller's frame: stale words that dead
 * frames left there (copies of pointers the test dropped) are gone
 * before a collection scans the stack. The caller's own frame and its
 * registers are not touched: keep the values to drop in callees. */
void test_scrub_stack(void);

/* Ends the process (status 3) after TEST_TIMEOUT seconds (default 500),
 * first printing its threads' stacks (gdb, if installed). A forked child
 * inherits the handler: its own alarm() prints its stacks the same way. */
void test_start_watchdog(void);

/* The number of threads of this process (/proc/self/status), or -1.
 * Makes no allocation. */
long test_thread_count(void);

/* Whether test_thread_count() comes back to `want` within 2 s: a joined
 * thread can still be counted for a moment (the kernel wakes the joiner
 * as the thread releases its memory, before the thread is reaped). A
 * thread that never exits stays counted. */
bool test_threads_back_to(long want);

/* A 64-bit mixing function (splitmix64's finalizer): hashes x. */
uint64_t test_mix64(uint64_t x);

/* x rotated left by r bits (0 < r < 64). */
uint64_t test_rotl(uint64_t x, int r);

/* pthread_barrier_wait inside a blocking region: a thread parked at the
 * barrier must not hold up collections of the others. */
void test_barrier_wait(pthread_barrier_t *b);

/* pthread_mutex_lock for an attached thread; under ThreadSanitizer inside
 * a blocking region. TSan holds back a signal that reaches a thread
 * blocked in pthread_mutex_lock until the call returns, so a waiter whose
 * lock is held by a thread suspended by signal (parked in its handler
 * until the collection ends) never answers the suspend signal, and the
 * collection waits for ever. README asks for a blocking region around
 * such waits; without TSan the waiter is suspended in its futex wait, as
 * any thread that does not poll, which the tests check there. */
void test_mutex_lock(pthread_mutex_t *mu);
/* A binary tree node whose sum checks its value and its children's sums,
 * for tests that build trees and verify them after collections. The
 * test registers the kind (with its own trace callback). */
typedef struct test_tnode {
    struct test_tnode *left, *right;
    uint64_t val, sum;
} test_tnode;

/* The checksum a node must hold. */
uint64_t test_tree_sum(const test_tnode *n);
/* A complete tree of the given depth of kind `kind`, with random values;
 * aborts if allocation returns NULL. */
test_tnode *test_tree_make(rudo_kind kind, int depth, uint64_t *rng);

/* A singly linked list node with a checked value, for tests that build
 * lists and verify them after collections. */
typedef struct test_lnode {
    struct test_lnode *next;
    uint64_t val, check;
} test_lnode;
/* A list of n nodes of kind `kind` (values seed .. seed+n-1, the last
 * first), held by the caller only; aborts if allocation returns NULL. */
test_lnode *test_list_make(rudo_kind kind, int n, uint64_t seed);
/* Whether x is exactly such a list, every node's check intact. */
bool test_list_ok(const test_lnode *x, int n, uint64_t seed);

/* Places objects at a given cell index: allocates objects of (kind,
 * size), a small size class's exact cell size, each through alloc(kind,
 * size, data) (which must not return NULL), until `need` of them lie in
 * cells 0 .. need-1 of one page, handed out in address order from cell 0
 * (a fresh page, or one swept empty); they are then run[0 .. need-1].
 * Returns false if no such run comes within `tries` allocations, or if
 * an object is not at a cell base of the size (the page arithmetic is
 * off). run must hold `need` pointers. */
bool test_page_run(rudo_kind kind, size_t size, size_t need, size_t tries,
                   void **run, void *(*alloc)(rudo_kind, size_t, void *),
                   void *data);

/* Captures the process's stderr (fd 2) in an unlinked temporary file from
 * test_capture_begin to test_capture_end; test_captured copies what it
 * received so far into buf (NUL-terminated, at most cap - 1 bytes) and
 * returns buf. test_captured only reads the file, so any thread may call
 * it while capturing. One capture at a time. */
void test_capture_begin(void);
const char *test_captured(char *buf, size_t cap);
void test_capture_end(void);

#endif
