/* The lock-order checker: taking a lock whose rank is not above every lock
 * held aborts with a message naming both locks and ranks; the right order
 * passes; with the checker off, the wrong order is not reported. */
#include <rudo.h>
#include <stdio.h>

#include "debug/debug.h"
#include "testlib.h"
#include "threads/threads.h"

static void break_order(void *arg) {
    (void)arg;
    rudo__lock_check_enable(true);
    rudo__debug_break_lock_order();
}

static void equal_rank(void *arg) {
    (void)arg;
    rudo__lock a, b;
    rudo__lock_init(&a, RUDO_RANK_TEST, "test_a");
    rudo__lock_init(&b, RUDO_RANK_TEST, "test_b");
    rudo__lock_check_enable(true);
    rudo__lock_acquire(&a);
    rudo__lock_acquire(&b);
}

int main(void) {
    CHECK(rudo_heap_create(NULL) == RUDO_OK);
    expect_death("heap_lock then gc_lock", break_order, NULL,
                 "taking 'gc_lock' (rank 10) while holding 'heap_lock' (rank 20)");
    expect_death("two locks of equal rank", equal_rank, NULL,
                 "taking 'test_b' (rank 1000) while holding 'test_a' (rank 1000)");

    /* The right order, with the checker on, passes; so does a collection
     * and a thread's whole life with every internal lock checked. */
    rudo__lock_check_enable(true);
    rudo__lock a, b;
    rudo__lock_init(&a, RUDO_RANK_TEST, "low");
    rudo__lock_init(&b, RUDO_RANK_TEST + 1, "high");
    rudo__lock_acquire(&a);
    rudo__lock_acquire(&b);
    rudo__lock_release(&b);
    rudo__lock_release(&a);
    for (int i = 0; i < 1000; i++)
        CHECK(rudo_malloc(64) != NULL);
    rudo_collect();
    rudo_stats st;
    rudo_get_stats(&st);
    CHECK(st.collections >= 1);
    CHECK(rudo__lock_check_enabled());

    /* Checker off: the same wrong order is not reported (the hook returns). */
    rudo__lock_check_enable(false);
    rudo__debug_break_lock_order();
    CHECK(!rudo__lock_check_enabled());
    rudo_heap_destroy();
    return test_report();
}
