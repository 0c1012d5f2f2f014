/* base.h — what every layer may use (internal): fatal errors, warnings
 * and graded assertions. Below it is only the platform layer.
 *
 * Messages have the form "rudo: <function>: <reason>" (rudo.h). */
#ifndef RUDO_BASE_H
#define RUDO_BASE_H
#include <stddef.h>

#include "rudo.h"

/* Prints "rudo: <fn>: <message>" to stderr and aborts. Allocation-free and
 * lock-free, so it is safe anywhere, even with the heap inconsistent. */
_Noreturn void rudo__fatal(const char *fn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints "rudo: <fn>: <message>" to stderr and returns. */
void rudo__warn(const char *fn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Doubles the capacity *cap of the array items of elem-byte elements
 * (to `first` if it is 0) and returns the moved array; aborts with
 * "rudo: <fn>: <message>" if memory cannot be had. The one growth step of
 * rudo's work lists whose failure is fatal. The array is meta memory
 * (below): free it with rudo__meta_free. */
void *rudo__grow(void *items, size_t *cap, size_t elem, size_t first,
                 const char *fn, const char *message);

/* Memory for the collector's own tables that grow while the world is
 * stopped (meta.c says why not malloc: a thread stopped inside malloc may
 * hold the lock that a realloc needs). rudo__meta_alloc returns a zeroed,
 * 16-byte aligned block of `size` bytes, or NULL; rudo__meta_realloc
 * grows or shrinks one (NULL: a new block), keeping its contents, NULL on
 * failure with the block left as it was; rudo__meta_free frees one (NULL:
 * nothing). Blocks are mappings of whole pages: for tables, not for small
 * objects. Thread-safe; no lock taken. */
void *rudo__meta_alloc(size_t size);
void *rudo__meta_realloc(void *p, size_t size);
void rudo__meta_free(void *p);
/* rudo__meta_realloc to n elements of `size` bytes; NULL (the block left
 * as it was) also when n * size overflows. */
void *rudo__meta_realloc_n(void *p, size_t n, size_t size);
/* Sorts n elements of `size` bytes as qsort does (not stable), without
 * allocating (glibc's qsort may call malloc). */
void rudo__sort(void *items, size_t n, size_t size, int (*cmp)(const void *, const void *));

/* Graded assertions, at the invariants the docs state.
 *  - RUDO_ASSERT(c): cheap checks, compiled in RUDO_DEBUG builds and in
 *    builds without NDEBUG (CMake's Debug; Release and RelWithDebInfo
 *    define NDEBUG).
 *  - RUDO_ASSERT_EXPENSIVE(c): checks that cost a loop or more, compiled
 *    only in RUDO_DEBUG builds.
 * A failed assertion aborts through rudo__fatal naming the file, the line
 * and the condition. Both evaluate nothing when compiled out. */
#if defined(RUDO_DEBUG) || !defined(NDEBUG)
#define RUDO_ASSERT(c)                                                          \
    ((c) ? (void)0 : rudo__fatal("assertion", "%s:%d: %s", __FILE__, __LINE__, #c))
#else
#define RUDO_ASSERT(c) ((void)0)
#endif
#ifdef RUDO_DEBUG
#define RUDO_ASSERT_EXPENSIVE(c) RUDO_ASSERT(c)
#else
#define RUDO_ASSERT_EXPENSIVE(c) ((void)0)
#endif

#endif
