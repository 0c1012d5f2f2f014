/* warn.c — the warn proc, the out-of-memory function, the abort function
 * and bdwgc's printf family. */
#include "compat.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* bdwgc's default: the message is a printf format with one word argument,
 * already prefixed "GC Warning: ". */
static void default_warn_proc(char *msg, GC_word arg) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    fprintf(stderr, msg, arg);
#pragma GCC diagnostic pop
}

static GC_warn_proc current_warn(void) {
    /* Acquire: a proc set by another thread is complete before use. */
    GC_warn_proc w = __atomic_load_n(&compat.warn, __ATOMIC_ACQUIRE);
    return w ? w : default_warn_proc;
}

void compat_warn(const char *msg, GC_word arg) {
    current_warn()((char *)msg, arg);
}

void compat_warn_once(atomic_int *flag, const char *msg) {
    /* Relaxed: only the once-ness matters, not any order. */
    if (atomic_exchange_explicit(flag, 1, memory_order_relaxed) == 0)
        compat_warn(msg, 0);
}

void *compat_oom(size_t bytes) {
    /* Read at every failure: old clients assign GC_oom_fn directly. */
    GC_oom_func fn = __atomic_load_n(&GC_oom_fn, __ATOMIC_ACQUIRE);
    return fn ? fn(bytes) : NULL;
}

GC_API void GC_set_warn_proc(GC_warn_proc p) {
    /* Release: pairs with current_warn. */
    __atomic_store_n(&compat.warn, p, __ATOMIC_RELEASE);
}

GC_API GC_warn_proc GC_get_warn_proc(void) { return current_warn(); }

GC_API void GC_ignore_warn_proc(char *msg, GC_word arg) {
    (void)msg;
    (void)arg;
}

GC_API void GC_set_oom_fn(GC_oom_func fn) {
    __atomic_store_n(&GC_oom_fn, fn, __ATOMIC_RELEASE);
}

/* bdwgc's default OOM function returns NULL. It is GC_oom_fn's initial
 * value (vars.c): gc.h says the variable is never 0, and an old client that
 * saves it to chain to it calls what it saved. */
void *compat_default_oom_fn(size_t bytes) {
    (void)bytes;
    return NULL;
}

GC_API GC_oom_func GC_get_oom_fn(void) {
    GC_oom_func fn = __atomic_load_n(&GC_oom_fn, __ATOMIC_ACQUIRE);
    return fn ? fn : compat_default_oom_fn;
}

/* bdwgc's default abort function: the message and a newline on stderr
 * (abort() follows it, in compat_abort). A client that chains to the
 * function it replaced (GC_get_abort_func before GC_set_abort_func) gets
 * this one, never NULL. */
void compat_default_on_abort(const char *msg) {
    if (msg)
        fprintf(stderr, "%s\n", msg);
}

/* GC_on_abort is the storage, as in bdwgc (vars.c: its default above). */
GC_API void GC_set_abort_func(GC_abort_func fn) {
    /* Release: pairs with the acquire in GC_get_abort_func and
     * compat_abort. rudo's own fatal errors print and abort without it. */
    __atomic_store_n(&GC_on_abort, fn, __ATOMIC_RELEASE);
}

GC_API GC_abort_func GC_get_abort_func(void) {
    return __atomic_load_n(&GC_on_abort, __ATOMIC_ACQUIRE);
}

void compat_abort(const char *msg) {
    GC_abort_func fn = GC_get_abort_func();
    if (fn)
        fn(msg);
    abort();
}

GC_API void GC_abort_on_oom(void) {
    fprintf(stderr, "rudo-compat: out of memory\n");
    abort();
}

GC_API void GC_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fflush(stdout);
}

GC_API void GC_err_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

GC_API void GC_log_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

GC_API void GC_set_log_fd(int fd) {
    (void)fd; /* GC_log_printf writes to stderr */
}
