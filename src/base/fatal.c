/* fatal.c — error messages, and growing an array or dying. A message is
 * formatted into a stack buffer and written with one write(2): no
 * allocation, no lock, usable with the heap inconsistent. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"

static void vreport(const char *fn, const char *fmt, va_list ap) {
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "rudo: %s: ", fn);
    if (n < 0)
        n = 0;
    if ((size_t)n < sizeof buf) {
        int m = vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n >= sizeof buf - 1)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(2, buf, (size_t)n);
    (void)w;
}

void rudo__fatal(const char *fn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(fn, fmt, ap);
    va_end(ap);
    abort();
}

void rudo__warn(const char *fn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(fn, fmt, ap);
    va_end(ap);
}

void *rudo__grow(void *items, size_t *cap, size_t elem, size_t first,
                 const char *fn, const char *message) {
    size_t c = *cap ? *cap * 2 : first;
    /* Meta memory: most of these lists grow while the world is stopped. */
    void *n = rudo__meta_realloc_n(items, c, elem);
    if (!n)
        rudo__fatal(fn, "%s", message);
    *cap = c;
    return n;
}
