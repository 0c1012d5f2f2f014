/* homfly_torus.c — the libhomfly0 acceptance program (test compat_homfly):
 * the HOMFLY polynomials of the torus knots T(2,n), n = 3, 5, ..., 31,
 * through libhomfly (which allocates with bdwgc's GC_malloc and
 * GC_realloc). The input is libhomfly's format: the number of components;
 * per component the number of crossing passes and each pass as (crossing,
 * +1 over / -1 under); then each crossing's handedness. */
#include <homfly.h>
#include <stdio.h>

int main(void) {
    static char buf[4096];
    for (int n = 3; n <= 31; n += 2) {
        int k = snprintf(buf, sizeof buf, " 1 %d ", 2 * n);
        for (int i = 0; i < n; i++) /* first pass: over, under, ... */
            k += snprintf(buf + k, sizeof buf - (size_t)k, "%d %d ", i, i % 2 ? -1 : 1);
        for (int i = 0; i < n; i++) /* second pass: the other way */
            k += snprintf(buf + k, sizeof buf - (size_t)k, "%d %d ", i, i % 2 ? 1 : -1);
        for (int i = 0; i < n; i++)
            k += snprintf(buf + k, sizeof buf - (size_t)k, "%d 1 ", i);
        printf("T(2,%d): %s\n", n, homfly_str(buf));
    }
    return 0;
}
