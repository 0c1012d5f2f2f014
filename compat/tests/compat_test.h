/* compat_test.h — the checks of the libgc.so.1 tests. They link against
 * rudo's libgc.so.1 only (rudo's own names are not exported from it), so
 * they cannot use tests/testlib.c; this is its CHECK and report, in the
 * same output format. Built against Debian's <gc.h>, as real clients. */
#ifndef RUDO_COMPAT_TEST_H
#define RUDO_COMPAT_TEST_H
#include <stddef.h>
#include <stdio.h>

static unsigned long ct_passed, ct_failed;

static void ct_check(int ok, const char *expr, const char *file, int line) {
    if (ok) {
        ct_passed++;
    } else {
        ct_failed++;
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expr);
    }
}
#define CHECK(c) ct_check((c) ? 1 : 0, #c, __FILE__, __LINE__)

static int ct_report(void) {
    printf("%lu passed, %lu failed\n", ct_passed, ct_failed);
    return ct_failed ? 1 : 0;
}
/* Fills an object with a pattern that a reused (zeroed, then churned)
 * cell would not hold; intact() tells whether it still holds it. */
static inline void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
}
static inline int intact(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7))
            return 0;
    return 1;
}
#endif
