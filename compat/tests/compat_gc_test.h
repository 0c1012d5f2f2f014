/* compat_gc_test.h — helpers shared by the drop-in tests that count what a
 * collection frees (test_compat_final, test_compat_links, the threaded
 * link tests). Include it after <gc.h>; a test need not use them all. */
#ifndef RUDO_COMPAT_GC_TEST_H
#define RUDO_COMPAT_GC_TEST_H
#include <dlfcn.h>
#include <string.h>

/* Whether GC_malloc comes from this build's libgc.so.1 (not Debian's). */
__attribute__((unused)) static int on_rudo(void) {
    Dl_info info;
    void *(*fn)(size_t) = GC_malloc;
    void *addr;
    memcpy(&addr, &fn, sizeof addr);
    return dladdr(addr, &info) && info.dli_fname &&
           strstr(info.dli_fname, "compat/libgc.so.1") != NULL;
}

/* Overwrites the stack below the caller, where dead frames left pointers. */
__attribute__((noinline, no_sanitize_address)) static void scrub(void) {
    volatile char buf[16384];
    memset((char *)buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory"); /* buf escapes: the memset stays */
}

__attribute__((unused)) static void collect(void) {
    scrub();
    GC_gcollect();
}

/* The warn proc's messages, counted. */
__attribute__((unused)) static int warnings;
__attribute__((unused)) static void count_warn(char *msg, GC_word arg) {
    (void)msg;
    (void)arg;
    warnings++;
}
#endif
