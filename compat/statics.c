/* statics.c — the static data of the program and of its shared libraries
 * as roots, found again at every collection (so libraries loaded later
 * are scanned too, and GC_no_dls is read each time).
 *
 * This file holds the library's only platform code (dl_iterate_phdr). It
 * runs as a rudo root callback, with the world stopped: it takes no lock of
 * its own (dl_iterate_phdr takes the loader's, which a thread stopped at a
 * safepoint does not hold: safepoints are rudo calls). Every aligned word
 * of a writable PT_LOAD segment that is not NULL is reported with
 * rudo_visit: the collector marks a slot's value only if it points into an
 * allocated object, interior pointers included, which is exactly a
 * conservative scan of the word. */
#include "compat.h"

#include <link.h>

/* Under AddressSanitizer, the redzones around instrumented globals are
 * skipped: they hold no program data, and the collector, instrumented
 * too, would report its read of them. */
#if defined(__SANITIZE_ADDRESS__)
#define COMPAT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COMPAT_ASAN 1
#endif
#endif
#ifdef COMPAT_ASAN
#include <sanitizer/asan_interface.h>
#define POISONED(w) (__asan_region_is_poisoned((void *)(w), sizeof(void *)) != NULL)
#else
#define POISONED(w) 0
#endif

static void scan_words(rudo_tracer *tr, char *lo, char *hi) {
    uintptr_t a = ((uintptr_t)lo + sizeof(void *) - 1) & ~(uintptr_t)(sizeof(void *) - 1);
    for (void **w = (void **)a; (char *)(w + 1) <= hi; w++)
        if (!POISONED(w))
            rudo_visit(tr, w);
}

struct scan_arg {
    rudo_tracer *tr;
    bool main_only;
    unsigned module;
};

static int module_cb(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct scan_arg *a = data;
    /* The first module glibc reports is the main program. */
    bool is_main = a->module++ == 0;
    if (a->main_only && !is_main)
        return 1; /* stop: nothing after the main program is scanned */
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W))
            continue;
        char *lo = (char *)(info->dlpi_addr + ph->p_vaddr);
        scan_words(a->tr, lo, lo + ph->p_memsz);
    }
    return 0;
}

void compat_static_roots(rudo_tracer *tr, void *data) {
    (void)data;
    /* Relaxed: the program sets it before it matters (bdwgc reads it in
     * the same way, at each collection). */
    struct scan_arg a = {tr, __atomic_load_n(&GC_no_dls, __ATOMIC_RELAXED) != 0, 0};
    dl_iterate_phdr(module_cb, &a);
}
