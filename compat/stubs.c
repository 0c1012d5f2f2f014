/* stubs.c — the entry points of Debian's libgc1 8.2.2 that rudo's
 * libgc.so.1 does not implement yet (docs/compat.md lists them; tier 2,
 * issue 13, implements most). They exist so that every client starts: 11
 * of Debian's 22 client packages link with BIND_NOW, and the dynamic
 * linker refuses to start one whose imports are not all defined.
 *
 * Each returns bdwgc's documented failure value (NULL, 0, or the result
 * code named) and reports once through the warn proc. Each is declared
 * without parameters: on x86-64 (System V ABI) a function that ignores
 * its arguments may be called with any, and none of these returns a
 * structure or a floating-point value. Generated once from the symbols
 * file and bdwgc's gc.h return types; edit by hand from now on (test
 * compat_exports checks this list against docs/compat.md). */
#include "compat.h"

#define STUB_WARN(name)                                                        \
    static atomic_int once;                                                    \
    compat_warn_once(&once, "GC Warning: rudo's libgc.so.1: " #name            \
                            " is not implemented (stub)\n")
#define STUB_VOID(name)                                                        \
    GC_API void name(void);                                                    \
    GC_API void name(void) { STUB_WARN(name); }
#define STUB_PTR(name)                                                         \
    GC_API void *name(void);                                                   \
    GC_API void *name(void) { STUB_WARN(name); return NULL; }
#define STUB_INT(name, fail)                                                   \
    GC_API int name(void);                                                     \
    GC_API int name(void) { STUB_WARN(name); return (fail); }
#define STUB_WORD(name, fail)                                                  \
    GC_API GC_word name(void);                                                 \
    GC_API GC_word name(void) { STUB_WARN(name); return (fail); }

STUB_VOID(GC_dump)
STUB_VOID(GC_dump_named)
STUB_VOID(GC_dump_regions)
STUB_VOID(GC_enumerate_reachable_objects_inner)
STUB_PTR(GC_get_on_thread_event)
STUB_PTR(GC_get_toggleref_func)
STUB_INT(GC_is_tmp_root, 0)
STUB_VOID(GC_register_altstack)
STUB_VOID(GC_register_has_static_roots_callback)
STUB_VOID(GC_set_on_thread_event)
STUB_VOID(GC_set_toggleref_func)
STUB_VOID(GC_start_incremental_collection)
STUB_VOID(GC_start_world_external)
STUB_VOID(GC_stop_world_external)
STUB_INT(GC_toggleref_add, GC_NO_MEMORY /* 2 */)
